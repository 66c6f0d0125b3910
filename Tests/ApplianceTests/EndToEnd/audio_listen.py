#!/usr/bin/env python3
"""Listens to an appliance audio URL over HTTP, as a Tuner device would.

  audio_listen.py URL SECONDS OUT   writes what arrives in SECONDS (or until the server ends the
                                    stream) to OUT; prints JSON: bytes, seconds, ended_by_server,
                                    status
  audio_listen.py --stall URL SECONDS
                                    sends the request and never reads (tiny receive buffer);
                                    prints JSON after SECONDS
"""
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def listen(url, seconds, out):
    started = time.monotonic()
    total = 0
    ended = False
    try:
        with urllib.request.urlopen(url, timeout=10) as response, open(out, "wb") as f:
            status = response.status
            # Reading from the socket directly (not the buffered reader) so a slow server shows.
            while time.monotonic() - started < seconds:
                chunk = response.read1(65536)
                if not chunk:
                    ended = True
                    break
                f.write(chunk)
                f.flush()  # the test watches the file to know the stream is open
                total += len(chunk)
    except urllib.error.HTTPError as error:
        status = error.code
    print(json.dumps({"status": status, "bytes": total, "ended_by_server": ended,
                      "seconds": round(time.monotonic() - started, 3)}))


def stall(url, seconds):
    parts = urllib.parse.urlsplit(url)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((parts.hostname, parts.port or 80))
    s.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    time.sleep(seconds)
    s.close()
    print(json.dumps({"stalled_seconds": seconds}))


if __name__ == "__main__":
    if sys.argv[1] == "--stall":
        stall(sys.argv[2], float(sys.argv[3]))
    else:
        listen(sys.argv[1], float(sys.argv[2]), sys.argv[3])
