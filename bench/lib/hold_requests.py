#!/usr/bin/env python3
"""Holds N concurrent non-streaming chat requests in flight through llmux
while a slow upstream (`llmux mock`, told by each request to wait before it
answers) keeps them waiting, and samples llmux's RSS while all N are in
flight at once: what a gateway holds for each long call to a model that
thinks before it answers. Every request must answer 200 with a JSON body
that has `choices`; anything else is counted as an error. Stdlib only
(asyncio), bounded in time. Prints one JSON line."""

import argparse
import asyncio
import json
import time

from holding import SEM_OPENING, Tally, hold, post_request, raise_fd_limit, rss_kb


class Stats(Tally):
    def __init__(self):
        super().__init__()
        self.sent = 0
        self.answered = 0
        self.all_sent_at = None


async def one(host, port, request, stats, sem, deadline):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout=30
            )
            writer.write(request)
            await asyncio.wait_for(writer.drain(), timeout=30)
        except (OSError, asyncio.TimeoutError) as e:
            stats.error("connect_" + type(e).__name__)
            return
    stats.sent += 1
    try:
        # Connection: close, so the answer ends with the connection.
        answer = await asyncio.wait_for(
            reader.read(), timeout=max(1, deadline - time.monotonic())
        )
    except asyncio.TimeoutError:
        stats.error("timeout")
        writer.close()
        return
    except OSError as e:
        stats.error("read_" + type(e).__name__)
        writer.close()
        return
    stats.answered += 1
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        stats.error("status_" + (status[1].decode() if len(status) > 1 else "none"))
    elif b'"choices"' not in body:
        stats.error("no_choices")
    else:
        stats.ok += 1


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="llmux's pid, for RSS")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--wait-ms", type=int, default=20000, help="the upstream's wait before answering")
    ap.add_argument("--model", default="bench-slow")
    ap.add_argument("--key", default="none")
    ap.add_argument("--limit-s", type=float, default=180, help="hard time limit")
    a = ap.parse_args()

    hard = raise_fd_limit()

    request = post_request(a.port, a.key, {
        "model": a.model,
        "messages": [{"role": "user", "content": "Think hard, then answer."}],
        "mock": {"first_byte_delay_ms": a.wait_ms},
    })

    stats = Stats()
    out = {"requests": a.requests, "nofile": hard, "rss_before_kb": rss_kb(a.pid)}

    def all_in_flight():
        # All sent and none answered yet: every request is in flight.
        if stats.sent < a.requests or stats.answered > 0:
            return False
        if stats.all_sent_at is None:
            stats.all_sent_at = time.monotonic()
        return True

    sem = asyncio.Semaphore(SEM_OPENING)
    t0 = await hold(
        a.pid, out, "rss_all_in_flight_kb", all_in_flight,
        lambda deadline: (
            one("127.0.0.1", a.port, request, stats, sem, deadline) for _ in range(a.requests)
        ),
        a.limit_s, stats,
    )
    out["sent"] = stats.sent
    out["all_sent_after_s"] = round(stats.all_sent_at - t0, 2) if stats.all_sent_at else None
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
