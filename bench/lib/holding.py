"""What hold_streams.py and hold_requests.py share: reading llmux's memory,
raising the descriptor limit, and sampling RSS while every connection is
held. Stdlib only."""

import asyncio
import resource

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
