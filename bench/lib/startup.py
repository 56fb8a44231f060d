#!/usr/bin/env python3
"""Startup time to the first served request: spawn `llmux serve`, poll
GET /health/liveliness as fast as possible, stop the clock at the first 200.
Repeats a few times and prints one JSON line with every sample in ms."""

import argparse
import json
import signal
import socket
import subprocess
import time

REQ = b"GET /health/liveliness HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def probe(port):
    """True when the server answered 200; False while it is not up yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(REQ)
            head = s.recv(64)
            return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def once(cmd, port, limit_s):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < limit_s:
            if probe(port):
                return (time.perf_counter() - t0) * 1000
            if p.poll() is not None:
                raise SystemExit(f"llmux exited with {p.returncode} before serving")
            time.sleep(0.0002)
        return None
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    cmd = [a.bin, "serve", "--config", a.config, "--host", "127.0.0.1", "--port", str(a.port)]
    samples = []
    for _ in range(a.runs):
        ms = once(cmd, a.port, 10.0)
        samples.append(round(ms, 2) if ms is not None else None)
        time.sleep(0.2)
    print(json.dumps({"startup_ms": samples}))


if __name__ == "__main__":
    main()
