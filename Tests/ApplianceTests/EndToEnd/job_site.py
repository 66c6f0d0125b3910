#!/usr/bin/env python3
"""Pages for the capture-job tests, served to the guests on BIND (the host's address on libvirt's
NAT network).

  /page/N   answers at once with "job-page-N"
  /slow/N   answers after SLOW seconds (a VM can be killed while it waits)
  /hang     never answers
Every request is appended to HITS (one "CLIENT-IP PATH" per line) so a test can count the tries.
Usage: job_site.py BIND PORT HITS [SLOW]
"""
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

bind, port, hits = sys.argv[1], int(sys.argv[2]), sys.argv[3]
slow = float(sys.argv[4]) if len(sys.argv) > 4 else 6
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with lock, open(hits, "a") as f:
            f.write(f"{self.client_address[0]} {self.path}\n")
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
ThreadingHTTPServer((bind, port), Handler).serve_forever()
