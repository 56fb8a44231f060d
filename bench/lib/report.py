#!/usr/bin/env python3
"""Collects the benchmark's measurements (one JSON object a line in a results
file) and renders the markdown: the side-by-side load table, the resource
rows, and each target of issue 6 with PASS/FAIL.

  report.py wrk RESULTS OUTPUT_FILE key=value...   a wrk run (its WRK line)
  report.py oha RESULTS OUTPUT_FILE key=value...   an oha run (its JSON)
  report.py put RESULTS key=value...               any other measurement
  report.py render RESULTS                          the markdown, to stdout
"""

import json
import sys

CLK_TCK = 100  # overwritten by a `clk_tck` record


def kv(args):
    out = {}
    for a in args:
        k, v = a.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def append(results, rec):
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")


def from_wrk(path):
    line = next((l for l in open(path) if l.startswith("WRK ")), None)
    if line is None:
        raise SystemExit(f"{path}: no WRK line (did wrk fail?)\n" + open(path).read())
    w = json.loads(line[4:])
    return {
        "requests": w["requests"],
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "p50": w["p50"], "p99": w["p99"], "p999": w["p999"],
        "errors": w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"],
    }


def from_oha(path):
    d = json.load(open(path))
    codes = d.get("statusCodeDistribution") or {}
    ok = codes.get("200", 0)
    bad = sum(n for c, n in codes.items() if c != "200")
    failed = sum((d.get("errorDistribution") or {}).values())
    p = d["latencyPercentiles"]
    us = lambda s: round((s or 0) * 1e6)  # noqa: E731
    return {
        "requests": ok + bad,
        "rps": (ok + bad) / d["summary"]["total"],
        "p50": us(p["p50"]), "p99": us(p["p99"]), "p999": us(p["p99.9"]),
        "errors": bad + failed,
        "error_kinds": d.get("errorDistribution") or {},
    }


def load(results):
    return [json.loads(l) for l in open(results) if l.strip()]


# ---------------------------------------------------------------- rendering

def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def lat(r):
    return f"{fmt_int(r['p50'])} / {fmt_int(r['p99'])} / {fmt_int(r['p999'])}"


def cpu_us(r):
    """The server's CPU time per request, in µs, from the /proc ticks of the run
    (nginx's workers for a direct run, llmux for a run through it)."""
    if r.get("cpu_ticks") is None or not r.get("requests"):
        return None
    return r["cpu_ticks"] / CLK_TCK * 1e6 / r["requests"]


def stolen_ms(r):
    """CPU time the hypervisor took from the machine's vCPUs during the run,
    in ms (None when the run did not record it)."""
    if r.get("steal_ticks") is None:
        return None
    return r["steal_ticks"] / CLK_TCK * 1e3


def stolen_share(r, meta):
    """Stolen time as a share of all the vCPU time of the run, in %."""
    ms, secs = stolen_ms(r), meta.get("duration_s")
    if ms is None or not secs:
        return None
    return ms / (secs * 1e3 * meta.get("cores", 2)) * 100


def worker_split(r):
    """Each llmux worker thread's share of the workers' CPU time during the
    run, as "52 / 48" (None when not recorded or nothing ran)."""
    before, after = r.get("worker_ticks_before"), r.get("worker_ticks_after")
    if not isinstance(before, list) or not isinstance(after, list) or len(before) != len(after):
        return None
    used = [a - b for a, b in zip(after, before)]
    total = sum(used)
    if total <= 0:
        return None
    return " / ".join(f"{u / total * 100:.0f}" for u in used)


STOLEN_NOTE = 1.0  # % of the vCPU time: past it a row says so next to its verdict
STOLEN_NOTE_MARK = "host stole CPU"


def render(results):
    global CLK_TCK
    recs = load(results)
    meta = {}
    for r in recs:
        if r.get("kind") == "meta":
            meta.update({k: v for k, v in r.items() if k != "kind"})
    CLK_TCK = meta.get("clk_tck", 100)
    rows = {}
    order = []
    for r in recs:
        if r.get("kind") != "load":
            continue
        key = (r["scenario"], r["load"])
        if key not in rows:
            rows[key] = {}
            order.append(key)
        rows[key][r["target"]] = r

    out = []
    p = out.append
    p(f"## llmux vs direct: {meta.get('mode', '?')} run, {meta.get('date', '?')}")
    p("")
    p(f"Machine: {meta.get('machine', '?')}. Load average before / after: "
      f"{meta.get('load_before', '?')} / {meta.get('load_after', '?')}. "
      f"Each row: {meta.get('duration_s', '?')} s per side after a "
      f"{meta.get('warmup_s', '?')} s warm-up, direct then through llmux, back to back. "
      "Latencies in µs; closed loop = wrk, open loop = oha -q with latency correction.")
    try:
        busy = float(str(meta.get("load_before", "0")).split()[0])
    except ValueError:
        busy = 0
    if busy > 0.5:
        p("")
        p(f"Caution: the 1-minute load average was {busy} before the run: other work was "
          "using these 2 cores, so throughput and tail latencies are noisier than on an idle machine.")
    p("")
    p("| scenario | conns / rate | direct req/s | llmux req/s | ratio | "
      "p50 / p99 / p99.9 direct | p50 / p99 / p99.9 llmux | added p50 / p99 | "
      "CPU µs/req nginx / llmux | errors direct / llmux | stolen ms direct / llmux |")
    p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for key in order:
        d, l = rows[key].get("direct"), rows[key].get("llmux")
        if not d or not l:
            continue
        added = f"{l['p50'] - d['p50']:+,} / {l['p99'] - d['p99']:+,}"
        cd, cl = cpu_us(d), cpu_us(l)
        cpu = f"{'–' if cd is None else f'{cd:.1f}'} / {'–' if cl is None else f'{cl:.1f}'}"
        p(f"| {key[0]} | {key[1]} | {fmt_int(d['rps'])} | {fmt_int(l['rps'])} | "
          f"{l['rps'] / d['rps'] * 100:.0f} % | {lat(d)} | {lat(l)} | {added} | "
          f"{cpu} | {d['errors']} / {l['errors']} | "
          f"{fmt_int(stolen_ms(d))} / {fmt_int(stolen_ms(l))} |")
    if any(stolen_ms(r) is not None for k in order for r in rows[k].values()):
        p("")
        p("Stolen: CPU time the hypervisor took from this machine's vCPUs while the side ran "
          "(the steal column of /proc/stat, all vCPUs). A process whose vCPU is taken away "
          "stalls for that long, whatever it was doing, so a side that lost much of it shows "
          "tail latencies (and less throughput) that its code does not explain.")
    split = [(k, worker_split(rows[k]["llmux"])) for k in order
             if rows[k].get("llmux") and worker_split(rows[k]["llmux"])]
    if split:
        p("")
        p("llmux's CPU time by worker thread during the llmux side (%, in thread order): "
          "connections are spread over the workers, so each should take about its share "
          "once there are more connections than workers. "
          + "; ".join(f"{k[0]}, {k[1]}: {s}" for k, s in split) + ".")
    ref = [k for k in order if rows[k].get("nginx-proxy") and rows[k].get("direct")
           and rows[k].get("llmux")]
    if ref:
        p("")
        p("Reference: the pass-through rows also went through nginx as a plain reverse proxy "
          "(`proxy_pass` with keep-alive upstream connections, no buffering, one worker per core) "
          "in front of the same upstream, between the direct and the llmux side. It is what "
          "the least a proxy does per request costs on this machine.")
        p("")
        p("| scenario | conns / rate | direct req/s | nginx proxy req/s | ratio | llmux ratio | "
          "added p50 / p99 nginx proxy | added p50 / p99 llmux | CPU µs/req nginx proxy / llmux | "
          "stolen ms nginx proxy |")
        p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
        for key in ref:
            d, n, l = rows[key]["direct"], rows[key]["nginx-proxy"], rows[key]["llmux"]
            cn, cl = cpu_us(n), cpu_us(l)
            cpu = f"{'–' if cn is None else f'{cn:.1f}'} / {'–' if cl is None else f'{cl:.1f}'}"
            p(f"| {key[0]} | {key[1]} | {fmt_int(d['rps'])} | {fmt_int(n['rps'])} | "
              f"{n['rps'] / d['rps'] * 100:.0f} % | {l['rps'] / d['rps'] * 100:.0f} % | "
              f"{n['p50'] - d['p50']:+,} / {n['p99'] - d['p99']:+,} | "
              f"{l['p50'] - d['p50']:+,} / {l['p99'] - d['p99']:+,} | {cpu} | "
              f"{fmt_int(stolen_ms(n))} |")
    for note in meta.get("notes", []):
        p("")
        p(f"Note: {note}")

    res = {r["name"]: r for r in recs if r.get("kind") == "resource"}
    p("")
    p("| resource | value |")
    p("|---|--:|")
    for name, r in res.items():
        p(f"| {r['label']} | {r['text']} |")

    p("")
    p("| target (issue 6) | measured | result |")
    p("|---|---|---|")
    verdicts = targets(rows, order, res, meta)
    for t in verdicts:
        p(f"| {t[0]} | {t[1]} | {t[2]} |")
    if any(STOLEN_NOTE_MARK in t[1] for t in verdicts):
        p("")
        p(f"{STOLEN_NOTE_MARK}: the hypervisor took more than {STOLEN_NOTE:.0f} % of the vCPU "
          "time while one side of this row ran (its share in brackets); the verdict stands as "
          "measured, but run the row again before reading much into it.")
    return "\n".join(out) + "\n"


def verdict(ok):
    return "—" if ok is None else ("PASS" if ok else "**FAIL**")


def stolen_text(sides, meta):
    """' (host stole CPU: 3.1 % / 0.2 %)' when either side of a row lost more
    than STOLEN_NOTE % of the vCPU time to the hypervisor, else ''."""
    shares = [stolen_share(r, meta) for r in sides]
    if not any(x is not None and x > STOLEN_NOTE for x in shares):
        return ""
    text = " / ".join("–" if x is None else f"{x:.1f} %" for x in shares)
    return f" ({STOLEN_NOTE_MARK}: {text})"


def targets(rows, order, res, meta):
    out = []
    # Added latency where llmux is not saturated: 1 connection and the fixed rates.
    for key in order:
        scen, load_ = key
        if not (load_ == "1 conn" or load_.endswith("req/s")):
            continue
        d, l = rows[key].get("direct"), rows[key].get("llmux")
        if not d or not l:
            continue
        a50, a99 = l["p50"] - d["p50"], l["p99"] - d["p99"]
        out.append((f"added p50 ≤ 60 µs, p99 ≤ 250 µs: {scen}, {load_}",
                    f"{a50:+} µs / {a99:+} µs" + stolen_text((d, l), meta),
                    verdict(a50 <= 60 and a99 <= 250 and l["errors"] == 0)))
    for key in order:
        scen, load_ = key
        if load_ not in ("64 conns", "256 conns"):
            continue
        d, l = rows[key].get("direct"), rows[key].get("llmux")
        if not d or not l:
            continue
        ratio = l["rps"] / d["rps"] * 100
        out.append((f"throughput ≥ 40 % of direct: {scen}, {load_}",
                    f"{ratio:.0f} % ({l['rps']:,.0f} vs {d['rps']:,.0f} req/s)"
                    + stolen_text((d, l), meta),
                    verdict(ratio >= 40 and l["errors"] == 0)))
    # CPU per request on the pass-through path: at the fixed rates (where a
    # production gateway spends its life) and at 64 connections (saturated,
    # where per-request overheads are shared most).
    for key in order:
        scen, load_ = key
        if scen not in ("non-streaming", "streaming"):
            continue
        if not (load_.endswith("req/s") or load_ == "64 conns"):
            continue
        l = rows[key].get("llmux")
        c = cpu_us(l) if l else None
        if c is None:
            continue
        out.append((f"CPU ≤ 25 µs per request: {scen}, {load_}",
                    f"{c:.1f} µs" + stolen_text((l,), meta),
                    verdict(c <= 25)))
    r = res.get("idle_rss")
    if r:
        out.append(("idle RSS ≤ 15 MB", r["text"], verdict(r["value"] <= 15)))
    r = res.get("streams_rss")
    if r:
        held = r.get("streams")
        ok = r["value"] <= 300 and r.get("errors") == 0 and r.get("max_open") == held
        if held >= 10000:
            note, v = "", verdict(ok)
        elif meta.get("fd_limited"):
            # Each stream is two sockets in llmux; a hard fd limit that
            # cannot be raised caps how many one process can hold.
            note = (f" — only {held:,} held: the hard fd limit here is {meta.get('nofile'):,} "
                    "and cannot be raised, and each stream is 2 sockets in llmux")
            v = verdict(ok) + f" at {held:,}"
        else:
            note, v = f" — only {held:,} held (--streams)", verdict(None)
        out.append(("RSS ≤ 300 MB with 10,000 open streams, 0 errors", r["text"] + note, v))
    r = res.get("startup")
    if r:
        out.append(("startup ≤ 50 ms", r["text"], verdict(r["value"] <= 50)))
    return out


def main():
    cmd, results = sys.argv[1], sys.argv[2]
    if cmd == "wrk":
        append(results, {**kv(sys.argv[4:]), "kind": "load", **from_wrk(sys.argv[3])})
    elif cmd == "oha":
        append(results, {**kv(sys.argv[4:]), "kind": "load", **from_oha(sys.argv[3])})
    elif cmd == "put":
        append(results, kv(sys.argv[3:]))
    elif cmd == "render":
        sys.stdout.write(render(results))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
