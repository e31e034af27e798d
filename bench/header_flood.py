#!/usr/bin/env python3
# The hub's memory under a flood of header bytes (issue 11, docs/security.md "Connections"):
# a real `deltasync serve` on 127.0.0.1 with the defaults; one connection sends a request
# line, then 4 KB header lines as fast as the hub reads them, until the hub answers or
# MEGABYTES were sent (then ends the head). Prints how much was sent, the answer's status
# line, and the hub's RSS (VmRSS of /proc/<pid>/status) before, at its peak and after.
# Usage: bench/header_flood.py [DELTASYNC_BINARY] [MEGABYTES]   (defaults build/server/deltasync, 100)
import re
import select
import socket
import subprocess
import sys
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "build/server/deltasync"
total = int(sys.argv[2] if len(sys.argv) > 2 else 100) << 20

hub = subprocess.Popen([binary, "serve", "--db", ":memory:", "--listen", "127.0.0.1:0"],
                       stderr=subprocess.PIPE, text=True)
port = None
while port is None:
    line = hub.stderr.readline()
    if not line:
        sys.exit("the hub did not start")
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if m:
        port = int(m.group(1))


def rss_mb():
    with open(f"/proc/{hub.pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1]) / 1024
    return -1


try:
    time.sleep(0.3)
    before = peak = rss_mb()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    chunk = (b"X-Pad: " + b"p" * 4089 + b"\r\n") * 16
    sent, answered = 0, False
    try:
        while sent < total:
            if select.select([s], [], [], 0)[0]:
                answered = True
                break
            s.sendall(chunk)
            sent += len(chunk)
            if sent % (8 << 20) == 0:
                peak = max(peak, rss_mb())
        if not answered:
            s.sendall(b"\r\n")
    except OSError as e:
        print("send:", e)
    s.settimeout(20)
    try:
        answer = s.recv(200).split(b"\r\n")[0].decode(errors="replace")
    except OSError as e:
        answer = repr(e)
    peak = max(peak, rss_mb())
    time.sleep(0.5)
    after = rss_mb()
    print(f"sent {sent / 1e6:.1f} MB; answer {answer!r}; hub RSS before {before:.1f} MB, "
          f"peak {peak:.1f} MB, after {after:.1f} MB")
finally:
    hub.kill()
    hub.wait()
