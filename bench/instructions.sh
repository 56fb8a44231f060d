#!/usr/bin/env bash
# User-space instructions llmux executes per request, counted by valgrind
# (callgrind's Ir), for the pass-through paths and the translated ones
# (an OpenAI request answered by an Anthropic upstream). Unlike CPU time on a shared
# VM, the count barely moves between runs, so it shows what a code change
# saves.
#
#   bench/instructions.sh              the four paths, about 25 s
#   LLMUX_BIN=path bench/instructions.sh
#
# The nginx upstream and the request bodies are the load benchmark's
# (bench/lib). For each path llmux runs under callgrind twice, serving 500 and
# then 2,500 requests (oha, 4 connections); the difference divided by 2,000
# is the cost of a request, start-up and shutdown cancelled out.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
LIB=$BENCH/lib
ROOT=$(dirname "$BENCH")
cd "$ROOT"

need=()
command -v nginx > /dev/null || need+=(nginx)
command -v valgrind > /dev/null || need+=(valgrind)
command -v curl > /dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi
OHA=$BENCH/.tools/bin/oha
[ -x "$OHA" ] || RUSTC_WRAPPER='' cargo install oha --locked --root "$BENCH/.tools" >&2
if [ -n "${LLMUX_BIN:-}" ]; then
    LLMUX=$LLMUX_BIN
else
    cargo build --release -p llmux >&2
    LLMUX=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/llmux
fi

RUN=$(mktemp -d /tmp/llmux-instr.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

NGINX_PORT=$(free_port)
PORT=$(free_port)
mkdir -p "$RUN/nginx"
python3 "$LIB/nginx_conf.py" "$RUN/nginx" "$NGINX_PORT" > "$RUN/nginx/nginx.conf"
nginx -p "$RUN/nginx" -e "$RUN/nginx/error.log" -c "$RUN/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
cat > "$RUN/config.yaml" << EOF
model_list:
  - model_name: bench
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:$NGINX_PORT/v1", api_key: sk-up}
  - model_name: bench-stream
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:$NGINX_PORT/stream/v1", api_key: sk-up}
  - model_name: bench-claude
    litellm_params: {model: anthropic/claude-sonnet-4-5-20250929, api_base: "http://127.0.0.1:$NGINX_PORT/anthropic", api_key: sk-up}
  - model_name: bench-claude-stream
    litellm_params: {model: anthropic/claude-sonnet-4-5-20250929, api_base: "http://127.0.0.1:$NGINX_PORT/anthropic-stream", api_key: sk-up}
litellm_settings: {num_retries: 0}
general_settings: {master_key: sk-bench}
EOF

# Total Ir of one llmux run that serves N requests with BODY.
run() { # BODY N
    rm -f "$RUN"/cg.out.*
    valgrind --tool=callgrind --callgrind-out-file="$RUN/cg.out.%p" \
        "$LLMUX" serve --config "$RUN/config.yaml" --host 127.0.0.1 --port "$PORT" \
        > "$RUN/valgrind.log" 2>&1 &
    local vg=$! i
    for i in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/health/liveliness" && break
        sleep 0.2
    done
    "$OHA" -n "$2" -c 4 --no-tui --output-format json -m POST -D "$1" \
        -T application/json -H "Authorization: Bearer sk-bench" \
        "http://127.0.0.1:$PORT/v1/chat/completions" > "$RUN/oha.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
        s=d['statusCodeDistribution']; assert list(s)==['200'], s" "$RUN/oha.json"
    kill -TERM "$vg"
    wait "$vg" || true
    cat "$RUN"/cg.out.* | awk '/^summary:/ {s += $2} END {print s}'
}

printf '| path | user instructions per request |\n|---|--:|\n'
for path in non-streaming:request.json streaming:request-stream.json \
    "translated (Anthropic):request-claude.json" \
    "translated (Anthropic), streaming:request-claude-stream.json"; do
    name=${path%%:*} body=$LIB/${path#*:}
    a=$(run "$body" 500)
    b=$(run "$body" 2500)
    printf '| %s | %s |\n' "$name" "$(python3 -c "print(f'{($b - $a) / 2000:,.0f}')")"
done
