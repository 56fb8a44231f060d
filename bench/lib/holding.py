"""What hold_streams.py and hold_requests.py share: the request they send,
reading llmux's memory, raising the descriptor limit, and running every
connection while RSS is sampled. Stdlib only."""

import asyncio
import json
import resource
import time

SEM_OPENING = 256  # connections being opened at once (keeps the accept queue short)


def rss_kb(pid, field="VmRSS"):
    """A field of /proc/PID/status in KB (VmRSS, VmHWM); 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def raise_fd_limit():
    """The soft descriptor limit raised to the hard one; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def sample(pid, out, key, all_held, stop):
    """Every 250 ms until `stop`: the largest RSS seen into out["rss_max_kb"],
    and into out[key] the largest seen while `all_held()` is true."""
    while not stop.is_set():
        rss = rss_kb(pid)
        out["rss_max_kb"] = max(out.get("rss_max_kb", 0), rss)
        if all_held():
            out[key] = max(out.get(key, 0), rss)
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except asyncio.TimeoutError:
            pass


class Tally:
    """Good answers, and errors counted by kind."""

    def __init__(self):
        self.ok = 0
        self.errors = {}

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1


def post_request(port, key, payload):
    """A chat completions POST with PAYLOAD as its JSON body, as raw HTTP/1.1
    bytes; `Connection: close`, so an answer ends with its connection."""
    body = json.dumps(payload).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


async def hold(pid, out, key, all_held, start, limit_s, tally):
    """Runs the coroutines `start(deadline)` returns, all at once, while
    RSS is sampled (see `sample`), then adds the tally, the run's length and
    VmHWM to `out`. Returns when the run started (time.monotonic())."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(pid, out, key, all_held, stop))
    t0 = time.monotonic()
    await asyncio.gather(*start(t0 + limit_s))
    stop.set()
    await sampler
    out.update({
        "ok": tally.ok,
        "errors": sum(tally.errors.values()),
        "error_kinds": tally.errors,
        "total_s": round(time.monotonic() - t0, 2),
        "hwm_kb": rss_kb(pid, "VmHWM"),
    })
    return t0
