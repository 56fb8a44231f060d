#!/usr/bin/env python3
"""Holds N concurrent streaming chat requests open through llmux while a slow
upstream (`llmux mock --tokens-per-sec 10`) paces them, and samples llmux's
RSS while all N are open at once. Every stream must answer 200 and end with
`data: [DONE]` and no error event; anything else is counted as an error.
Stdlib only (asyncio protocols), bounded in time. Prints one JSON line."""

import argparse
import asyncio
import json
import time

from holding import SEM_OPENING, Tally, hold, post_request, raise_fd_limit, rss_kb


class Stats(Tally):
    def __init__(self):
        super().__init__()
        self.open_now = 0
        self.max_open = 0
        self.first_all_open = None


class StreamClient(asyncio.Protocol):
    def __init__(self, request, stats, opened, finished):
        self.request = request
        self.stats = stats
        self.opened = opened  # future: resolved at the first body bytes (or failure)
        self.finished = finished  # future: resolved when the stream is over
        self.head = b""
        self.in_body = False
        self.tail = b""
        self.is_open = False
        self.result = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def _end(self, result):
        if self.result is not None:
            return
        self.result = result
        if self.is_open:
            self.stats.open_now -= 1
        if result == "ok":
            self.stats.ok += 1
        else:
            self.stats.error(result)
        if not self.opened.done():
            self.opened.set_result(False)
        if not self.finished.done():
            self.finished.set_result(result)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data):
        if self.result is not None:
            return
        if not self.in_body:
            self.head += data
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                return
            status_line = self.head.split(b"\r\n", 1)[0]
            parts = status_line.split()
            if len(parts) < 2 or parts[1] != b"200":
                self._end("status_" + (parts[1].decode() if len(parts) > 1 else "bad"))
                return
            self.in_body = True
            data = self.head[i + 4:]
            if not data:
                return
        if not self.is_open:
            self.is_open = True
            s = self.stats
            s.open_now += 1
            s.max_open = max(s.max_open, s.open_now)
            if not self.opened.done():
                self.opened.set_result(True)
        buf = self.tail + data
        if b'data: {"error"' in buf:
            self._end("error_event")
        elif b"data: [DONE]" in buf:
            self._end("ok")
        else:
            self.tail = buf[-32:]

    def connection_lost(self, exc):
        self._end("closed_before_done")


async def one(loop, host, port, request, stats, sem, deadline):
    opened = loop.create_future()
    finished = loop.create_future()
    async with sem:
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: StreamClient(request, stats, opened, finished), host, port
                ),
                timeout=30,
            )
        except (OSError, asyncio.TimeoutError) as e:
            stats.error("connect_" + type(e).__name__)
            return
        try:
            await asyncio.wait_for(opened, timeout=30)
        except asyncio.TimeoutError:
            stats.error("no_first_byte")
            transport.close()
            return
    try:
        await asyncio.wait_for(finished, timeout=max(1, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        stats.error("timeout")
        transport.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="llmux's pid, for RSS")
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--words", type=int, default=200, help="answer length (10/s upstream)")
    ap.add_argument("--model", default="bench-slow")
    ap.add_argument("--key", default="none")
    ap.add_argument("--limit-s", type=float, default=180, help="hard time limit")
    a = ap.parse_args()

    hard = raise_fd_limit()

    content = " ".join(f"w{i}" for i in range(a.words))
    request = post_request(a.port, a.key, {
        "model": a.model,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "mock": {"content": content},
    })

    loop = asyncio.get_running_loop()
    stats = Stats()
    out = {"streams": a.streams, "nofile": hard, "rss_before_kb": rss_kb(a.pid)}

    def all_open():
        if stats.open_now < a.streams:
            return False
        if stats.first_all_open is None:
            stats.first_all_open = time.monotonic()
        return True

    sem = asyncio.Semaphore(SEM_OPENING)
    t0 = await hold(
        a.pid, out, "rss_all_open_kb", all_open,
        lambda deadline: (
            one(loop, "127.0.0.1", a.port, request, stats, sem, deadline)
            for _ in range(a.streams)
        ),
        a.limit_s, stats,
    )
    out["max_open"] = stats.max_open
    out["all_open_after_s"] = round(stats.first_all_open - t0, 2) if stats.first_all_open else None
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
