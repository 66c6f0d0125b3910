#!/usr/bin/env python3
"""Pages for the capture-job tests, served to the guests (user-mode networking: 10.0.2.2).

  /page/N   answers at once with "job-page-N"
  /slow/N   answers after SLOW seconds (a VM can be killed while it waits)
  /hang     never answers
Every request is appended to HITS (one path per line) so a test can count the tries.
Usage: job_site.py PORT HITS [SLOW]
"""
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, hits = int(sys.argv[1]), sys.argv[2]
slow = float(sys.argv[3]) if len(sys.argv) > 3 else 6
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with lock, open(hits, "a") as f:
            f.write(self.path + "\n")
        if self.path.startswith("/hang"):
            time.sleep(3600)
            return
        if self.path.startswith("/slow/"):
            time.sleep(slow)
        name = self.path.strip("/").replace("/", "-")
        body = f"<!doctype html><html><head><title>{name}</title></head><body><p>job-{name}-text</p></body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
