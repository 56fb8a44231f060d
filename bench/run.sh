#!/usr/bin/env bash
# The side-by-side load benchmark (issue 6): the same requests sent direct to
# an instant upstream (nginx answering fixed OpenAI and Anthropic JSON and SSE
# bodies) and through llmux in front of it, row by row in one run; then
# llmux's resources and the targets with PASS/FAIL. Prints one markdown
# report and writes it to bench/results.md (raw data: bench/results.jsonl).
# See bench/README.md.
#
#   bench/run.sh                  the full run (10 s a side per row, about 15 minutes)
#   bench/run.sh --quick          2 s a side per row, for a smoke test (about 7 minutes)
#   bench/run.sh --streams N      hold N slow streams instead of 10,000
#   LLMUX_BIN=path bench/run.sh   benchmark that binary instead of building one
#
# Installs what it needs on a fresh Debian machine (nginx, wrk, curl, python3
# from apt; oha with cargo into bench/.tools). Every process it starts is
# stopped on exit; all traffic goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
LIB=$BENCH/lib

MODE=full
STREAMS=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --streams) STREAMS=$2; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$MODE" = quick ]; then
    DUR=2 WARM=1 STARTUP_RUNS=5
else
    DUR=10 WARM=2 STARTUP_RUNS=20
fi
CONNS=(1 16 64 256)
RATES=(1000 10000)
STREAM_WORDS=200    # a slow stream: 200 chunks at 10/s = 20 s, so all are open at once
KEY=sk-bench-master # llmux's master key: auth runs on every request, as in production

say() { printf '\n==> %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
    if [ "$(id -u)" = 0 ] && have apt-get; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "missing: $* (install it and run again)" >&2
        exit 1
    fi
}

# ------------------------------------------------------------------ tools
say "tools"
if ! have cargo; then
    [ -x "$HOME/.cargo/bin/cargo" ] || { echo "cargo is missing: install Rust from https://rustup.rs" >&2; exit 1; }
    export PATH="$HOME/.cargo/bin:$PATH"
fi
have nginx || [ -x /usr/sbin/nginx ] || apt_install nginx
export PATH="$PATH:/usr/sbin"
have wrk || apt_install wrk
have curl || apt_install curl
have pgrep || apt_install procps
have python3 || apt_install python3
OHA=$BENCH/.tools/bin/oha
if [ ! -x "$OHA" ]; then
    say "installing oha into bench/.tools (once)"
    RUSTC_WRAPPER='' cargo install oha --locked --root "$BENCH/.tools" >&2 || OHA=""
fi

if [ -n "${LLMUX_BIN:-}" ]; then
    say "using LLMUX_BIN=$LLMUX_BIN (not building)"
    LLMUX=$LLMUX_BIN
else
    say "cargo build --release -p llmux"
    cargo build --release -p llmux >&2
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    LLMUX=$TARGET_DIR/release/llmux
fi

# 10,000 streams need 10,000 client fds plus 10,000 upstream fds in llmux.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)

# ------------------------------------------------------------------ processes
RUN=$(mktemp -d /tmp/llmux-bench.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Waits (at most 10 s) until a URL answers 200.
wait_ok() {
    local i
    for i in $(seq 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$@")" = 200 ] && return 0
        sleep 0.05
    done
    echo "no answer from $*" >&2
    return 1
}
commas() { python3 -c "print(f'{$1:,}')"; }
cpu_ticks() { # PID... : user + system clock ticks, summed
    local p t=0
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}
# CPU time the hypervisor took from this VM's vCPUs (all of them), in clock
# ticks: /proc/stat's steal column. Stolen time stalls whatever was running,
# so a row that lost much of it has noisier latencies than the code explains.
steal_ticks() { awk '$1 == "cpu" {print $9}' /proc/stat; }
# llmux's CPU clock ticks per worker thread, in thread order: "[t0,t1,...]".
# A worker that serves most of the connections alone shows here.
worker_ticks() {
    local t out=""
    for t in /proc/"$1"/task/*; do
        case "$(cat "$t/comm" 2> /dev/null)" in
            llmux-worker-*) out="$out${out:+,}$(awk '{print $14 + $15}' "$t/stat")" ;;
        esac
    done
    echo "[$out]"
}
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
MOCK_PORT=$(free_port)
LLMUX_PORT=$(free_port)
STARTUP_PORT=$(free_port)

say "nginx (instant upstream) on 127.0.0.1:$NGINX_PORT"
mkdir -p "$RUN/nginx"
python3 "$LIB/nginx_conf.py" "$RUN/nginx" "$NGINX_PORT" > "$RUN/nginx/nginx.conf"
nginx -p "$RUN/nginx" -e "$RUN/nginx/error.log" -c "$RUN/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_ok -X POST -d '{}' "http://127.0.0.1:$NGINX_PORT/v1/chat/completions"

say "nginx as a reverse proxy (the reference) on 127.0.0.1:$PROXY_PORT"
mkdir -p "$RUN/proxy"
python3 "$LIB/nginx_conf.py" "$RUN/proxy" "$PROXY_PORT" --proxy "$NGINX_PORT" > "$RUN/proxy/nginx.conf"
nginx -p "$RUN/proxy" -e "$RUN/proxy/error.log" -c "$RUN/proxy/nginx.conf" -g 'daemon off;' &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_ok -X POST -d '{}' "http://127.0.0.1:$PROXY_PORT/v1/chat/completions"

say "llmux mock (slow upstream, 10 tokens/s) on 127.0.0.1:$MOCK_PORT"
"$LLMUX" mock --port "$MOCK_PORT" --tokens-per-sec 10 > "$RUN/mock.log" 2>&1 &
PIDS+=($!)
wait_ok "http://127.0.0.1:$MOCK_PORT/v1/models"

cat > "$RUN/config.yaml" <<EOF
model_list:
  - model_name: bench                  # non-streaming: nginx's fixed JSON
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$NGINX_PORT/v1
      api_key: sk-bench-upstream
  - model_name: bench-stream           # streaming: nginx's fixed SSE body
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$NGINX_PORT/stream/v1
      api_key: sk-bench-upstream
  - model_name: bench-claude           # translated: nginx's fixed Anthropic Messages JSON
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: http://127.0.0.1:$NGINX_PORT/anthropic
      api_key: sk-bench-upstream
  - model_name: bench-claude-stream    # translated: nginx's fixed Anthropic SSE
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: http://127.0.0.1:$NGINX_PORT/anthropic-stream
      api_key: sk-bench-upstream
  - model_name: bench-slow             # slow streams: llmux mock at 10 tokens/s
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-bench-upstream
litellm_settings:
  num_retries: 0                       # an upstream failure shows as an error, not a retry
general_settings:
  master_key: $KEY
EOF

say "llmux serve on 127.0.0.1:$LLMUX_PORT"
"$LLMUX" serve --config "$RUN/config.yaml" --host 127.0.0.1 --port "$LLMUX_PORT" > "$RUN/llmux.log" 2>&1 &
LLMUX_PID=$!
PIDS+=("$LLMUX_PID")
wait_ok "http://127.0.0.1:$LLMUX_PORT/health/liveliness"
sleep 1
IDLE_RSS_KB=$(status_kb "$LLMUX_PID" VmRSS)

RESULTS=$RUN/results.jsonl
put() { python3 "$LIB/report.py" put "$RESULTS" "$@"; }
put kind=meta mode="$MODE" date="$(date -u '+%Y-%m-%d %H:%M UTC')" duration_s=$DUR warmup_s=$WARM \
    clk_tck="$(getconf CLK_TCK)" cores="$(nproc)" load_before="\"$(cut -d' ' -f1-3 /proc/loadavg)\"" \
    machine="\"$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), nginx $(nginx -v 2>&1 | cut -d/ -f2), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)\""

# ------------------------------------------------------------------ sanity
say "sanity: nginx serves the fixtures, llmux answers each path correctly"
D=http://127.0.0.1:$NGINX_PORT
L=http://127.0.0.1:$LLMUX_PORT
P=http://127.0.0.1:$PROXY_PORT
for path in /v1/chat/completions /stream/v1/chat/completions; do
    cmp -s <(curl -s -X POST -d @"$LIB/request.json" "$D$path") \
           <(curl -s -X POST -d @"$LIB/request.json" "$P$path") \
        || { echo "the reference proxy does not relay $path byte for byte" >&2; exit 1; }
done
python3 "$LIB/check.py" "$D" "$L" "$KEY" >&2

# ------------------------------------------------------------------ load rows
# wrk: closed loop (each connection sends its next request when the last ends).
wrk_once() { # URL CONNS SECONDS BODY
    local threads=2
    [ "$2" -lt 2 ] && threads=1
    BENCH_BODY=$4 BENCH_KEY=$KEY wrk -t"$threads" -c"$2" -d"$3"s --timeout 5s -s "$LIB/post.lua" "$1"
}
# oha: open loop at a fixed rate; latency counted from when each request was due.
oha_once() { # URL RATE SECONDS BODY
    "$OHA" -z "$3"s -q "$2" -c 32 -w --latency-correction --no-tui --output-format json \
        -m POST -D "$4" -T application/json -H "Authorization: Bearer $KEY" "$1"
}

# One row: the same load direct to nginx, then through llmux, back to back.
# The direct side sends what a client of that upstream sends (for the
# translated rows, an Anthropic Messages request); the llmux side sends the
# OpenAI request a client of llmux sends. On the pass-through rows the same
# load also goes through the reference proxy (nginx proxying to nginx).
row() { # TOOL SCENARIO LOAD_LABEL LOAD
    local tool=$1 scenario=$2 label=$3 load=$4 target url body c0 c1 s0 s1 w0 w1 who workers
    local targets=(direct llmux)
    [ -n "$REFERENCE" ] && targets=(direct nginx-proxy llmux)
    for target in "${targets[@]}"; do
        if [ "$target" = direct ]; then
            url=$D$DIRECT_PATH body=$DIRECT_BODY
            who=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')   # CPU of nginx's workers
        elif [ "$target" = nginx-proxy ]; then
            url=$P$DIRECT_PATH body=$DIRECT_BODY
            who=$(pgrep -P "$PROXY_PID" | tr '\n' ' ')   # CPU of the proxy's workers
        else
            url=$L/v1/chat/completions body=$LLMUX_BODY
            who=$LLMUX_PID
        fi
        "${tool}_once" "$url" "$load" "$WARM" "$body" > /dev/null
        c0=$(cpu_ticks $who) s0=$(steal_ticks) w0=$(worker_ticks "$LLMUX_PID")
        "${tool}_once" "$url" "$load" "$DUR" "$body" > "$RUN/out" 2>&1 \
            || { echo "$tool failed:" >&2; cat "$RUN/out" >&2; exit 1; }
        c1=$(cpu_ticks $who) s1=$(steal_ticks) w1=$(worker_ticks "$LLMUX_PID")
        workers=()
        [ "$target" = llmux ] && workers=(worker_ticks_before="$w0" worker_ticks_after="$w1")
        python3 "$LIB/report.py" "$tool" "$RESULTS" "$RUN/out" \
            scenario="$scenario" load="$label" target="$target" cpu_ticks=$((c1 - c0)) \
            steal_ticks=$((s1 - s0)) "${workers[@]}"
    done
    printf '  %-34s %-12s done\n' "$scenario" "$label" >&2
}

# Sets the scenario: its name, and what each side sends where.
scenario() {
    case "$1" in
        plain) SCEN="non-streaming" DIRECT_PATH=/v1/chat/completions REFERENCE=1 \
               DIRECT_BODY=$LIB/request.json LLMUX_BODY=$LIB/request.json ;;
        stream) SCEN="streaming" DIRECT_PATH=/stream/v1/chat/completions REFERENCE=1 \
               DIRECT_BODY=$LIB/request-stream.json LLMUX_BODY=$LIB/request-stream.json ;;
        claude) SCEN="translated (Anthropic)" DIRECT_PATH=/anthropic/v1/messages REFERENCE= \
               DIRECT_BODY=$LIB/anthropic-request.json LLMUX_BODY=$LIB/request-claude.json ;;
        claude-stream) SCEN="translated (Anthropic), streaming" DIRECT_PATH=/anthropic-stream/v1/messages REFERENCE= \
               DIRECT_BODY=$LIB/anthropic-request-stream.json LLMUX_BODY=$LIB/request-claude-stream.json ;;
    esac
}
SCENARIOS=(plain stream claude claude-stream)

for sc in "${SCENARIOS[@]}"; do
    scenario "$sc"
    say "closed loop (wrk), $SCEN"
    for c in "${CONNS[@]}"; do
        label="$c conns"
        [ "$c" = 1 ] && label="1 conn"
        row wrk "$SCEN" "$label" "$c"
    done
done
if [ -n "$OHA" ]; then
    for sc in "${SCENARIOS[@]}"; do
        scenario "$sc"
        say "open loop (oha -q), $SCEN"
        for r in "${RATES[@]}"; do
            row oha "$SCEN" "$(commas "$r") req/s" "$r"
        done
    done
else
    put kind=meta notes='["oha could not be installed: the open-loop rows (1,000 and 10,000 req/s) were skipped."]'
fi

PEAK_RSS_KB=$(status_kb "$LLMUX_PID" VmHWM)
sleep 2
IDLE_AFTER_KB=$(status_kb "$LLMUX_PID" VmRSS)

# ------------------------------------------------------------------ resources
# A fresh llmux holds the slow streams, so its memory is theirs alone. Each
# stream costs llmux two descriptors (client and upstream sockets): where the
# hard fd limit cannot be raised (a container without CAP_SYS_RESOURCE), the
# most streams that fit are held, and the report says so.
SLOW_PORT=$(free_port)
"$LLMUX" serve --config "$RUN/config.yaml" --host 127.0.0.1 --port "$SLOW_PORT" > "$RUN/llmux-slow.log" 2>&1 &
SLOW_PID=$!
PIDS+=("$SLOW_PID")
wait_ok "http://127.0.0.1:$SLOW_PORT/health/liveliness"
FDS_IDLE=$(ls "/proc/$SLOW_PID/fd" | wc -l)
FIT=$(( (NOFILE - FDS_IDLE - 16) / 2 ))
HOLD=$STREAMS
if [ "$HOLD" -gt "$FIT" ]; then
    HOLD=$FIT
    put kind=meta fd_limited="$STREAMS" nofile="$NOFILE"
fi
say "holding $HOLD concurrent slow streams through llmux (fd limit $NOFILE, $FDS_IDLE in use)"
c0=$(cpu_ticks "$SLOW_PID")
python3 "$LIB/hold_streams.py" --port "$SLOW_PORT" --pid "$SLOW_PID" --key "$KEY" \
    --streams "$HOLD" --words "$STREAM_WORDS" > "$RUN/streams.json"
STREAMS_CPU_TICKS=$(( $(cpu_ticks "$SLOW_PID") - c0 ))
kill "$SLOW_PID" 2>/dev/null || true   # its idle upstream connections would hold the mock's descriptors
cat "$RUN/streams.json" >&2

# Long non-streaming calls (a model that thinks before it answers) hold a
# request in flight without a byte moving: another fresh llmux, as many
# requests as streams above, each answered after 20 s.
INFLIGHT_PORT=$(free_port)
"$LLMUX" serve --config "$RUN/config.yaml" --host 127.0.0.1 --port "$INFLIGHT_PORT" > "$RUN/llmux-inflight.log" 2>&1 &
INFLIGHT_PID=$!
PIDS+=("$INFLIGHT_PID")
wait_ok "http://127.0.0.1:$INFLIGHT_PORT/health/liveliness"
say "holding $HOLD concurrent non-streaming requests in flight through llmux"
python3 "$LIB/hold_requests.py" --port "$INFLIGHT_PORT" --pid "$INFLIGHT_PID" --key "$KEY" \
    --requests "$HOLD" --wait-ms 20000 > "$RUN/inflight.json"
cat "$RUN/inflight.json" >&2
kill "$INFLIGHT_PID" 2>/dev/null || true

say "startup time ($STARTUP_RUNS starts)"
python3 "$LIB/startup.py" --bin "$LLMUX" --config "$RUN/config.yaml" --port "$STARTUP_PORT" \
    --runs "$STARTUP_RUNS" > "$RUN/startup.json"

BIN_BYTES=$(stat -c %s "$LLMUX")
python3 - "$RESULTS" "$RUN/streams.json" "$RUN/startup.json" "$RUN/inflight.json" <<EOF
import json, statistics, sys
results, streams, startup, inflight = sys.argv[1:5]
def put(**r):
    with open(results, "a") as f:
        f.write(json.dumps({"kind": "resource", **r}) + "\n")
mb = lambda kb: kb / 1024
put(name="idle_rss", label="RSS at idle (after start, before any request)",
    value=mb($IDLE_RSS_KB), text=f"{mb($IDLE_RSS_KB):.1f} MB")
put(name="peak_rss", label="peak RSS under load (VmHWM after every load row)",
    value=mb($PEAK_RSS_KB), text=f"{mb($PEAK_RSS_KB):.1f} MB")
put(name="idle_after", label="RSS at idle after the load rows",
    value=mb($IDLE_AFTER_KB), text=f"{mb($IDLE_AFTER_KB):.1f} MB")
s = json.load(open(streams))
rss = s.get("rss_all_open_kb", 0)
kinds = ", ".join(f"{k}: {v}" for k, v in s["error_kinds"].items()) or "none"
per_stream = (rss - s["rss_before_kb"]) / max(1, s["max_open"])
put(name="streams_rss", value=mb(rss), streams=s["streams"], errors=s["errors"], max_open=s["max_open"],
    label=f"RSS with {s['streams']:,} concurrent open streams (slow upstream, 10 tokens/s)",
    text=f"{mb(rss):.1f} MB ({per_stream:.0f} KB a stream); {s['max_open']:,} open at once "
         f"(all after {s['all_open_after_s']} s), {s['ok']:,} completed, {s['errors']} errors ({kinds}); "
         f"VmHWM {mb(s['hwm_kb']):.1f} MB")
f = json.load(open(inflight))
rss = f.get("rss_all_in_flight_kb")
kinds = ", ".join(f"{k}: {v}" for k, v in f["error_kinds"].items()) or "none"
if rss:
    held = (f"{mb(rss):.1f} MB ({(rss - f['rss_before_kb']) / f['sent']:.0f} KB a request); "
            f"all sent after {f['all_sent_after_s']} s")
else:
    held = f"never all in flight at once ({f['sent']:,} sent)"
put(name="inflight_rss", value=mb(rss or 0), requests=f["requests"], errors=f["errors"],
    label=f"RSS with {f['requests']:,} non-streaming requests in flight (slow upstream, 20 s to answer)",
    text=f"{held}, {f['ok']:,} answered, {f['errors']} errors ({kinds}); VmHWM {mb(f['hwm_kb']):.1f} MB")
events = s["ok"] * ($STREAM_WORDS + 4)  # role, one chunk a word, finish, usage, [DONE]
if events:
    cpu_us = $STREAMS_CPU_TICKS / $(getconf CLK_TCK) * 1e6 / events
    put(name="streams_cpu", label="llmux CPU per relayed stream event (during the open-streams row)",
        value=cpu_us, text=f"{cpu_us:.1f} µs ({events:,} events in {s['total_s']} s)")
t = [x for x in json.load(open(startup))["startup_ms"] if x is not None]
med = statistics.median(t) if t else 1e9
put(name="startup", label=f"startup to first served request (median of {len(t)})", value=med,
    text=f"{med:.1f} ms (min {min(t):.1f}, max {max(t):.1f})" if t else "never answered")
put(name="binary", label="release binary size (stripped)", value=$BIN_BYTES,
    text=f"{$BIN_BYTES / 1048576:.1f} MB ({$BIN_BYTES:,} bytes)")
EOF
put kind=meta load_after="\"$(cut -d' ' -f1-3 /proc/loadavg)\""

# ------------------------------------------------------------------ report
python3 "$LIB/report.py" render "$RESULTS" | tee "$BENCH/results.md"
cp "$RESULTS" "$BENCH/results.jsonl"
