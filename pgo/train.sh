#!/usr/bin/env bash
# Trains pgo/llmux.profdata, the profile release builds of llmux are
# optimized with (see pgo/README.md).
#
#   pgo/train.sh
#
# Builds an instrumented llmux, runs it as a gateway in front of `llmux mock`
# (every provider format, streaming and not, tools, the Messages API, model
# lists and errors; requests in pgo/requests), and merges what it counted
# into pgo/llmux.profdata. Needs llvm-profdata of rustc's LLVM version
# (installed from apt when missing) and oha (installed with cargo into
# bench/.tools when missing). Takes about 10 minutes on 2 cores. The profile
# fits only builds by the same rustc with the same Cargo.lock and release
# profile; what those were is saved beside it, in pgo/trained-with.
set -euo pipefail

PGO=$(CDPATH='' cd -- "$(dirname "$0")" && pwd)
ROOT=$(dirname "$PGO")
cd "$ROOT"
say() { printf '\n==> %s\n' "$*" >&2; }

# --------------------------------------------------------------- tools
vv=$(rustc -vV)
llvm=$(sed -n 's/^LLVM version: \([0-9]*\).*/\1/p' <<< "$vv")
host=$(sed -n 's/^host: //p' <<< "$vv")
[ -n "$llvm" ] || { echo "rustc -vV names no LLVM version: cannot pick llvm-profdata" >&2; exit 1; }
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$PROFDATA" ]; then
    PROFDATA=llvm-profdata-$llvm
    if ! command -v "$PROFDATA" > /dev/null; then
        say "installing llvm-$llvm (for llvm-profdata-$llvm, rustc's LLVM)"
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$llvm" > /dev/null
    fi
    command -v "$PROFDATA" > /dev/null || {
        echo "no llvm-profdata for LLVM $llvm: install llvm-$llvm (apt.llvm.org has it)" >&2
        echo "or rustup's llvm-tools component, then run again" >&2
        exit 1
    }
fi
OHA=$ROOT/bench/.tools/bin/oha
# Without the wrapper: oha has no use for llmux's profile.
[ -x "$OHA" ] || RUSTC_WRAPPER='' cargo install oha --locked --root "$ROOT/bench/.tools"

# --------------------------------------------------------------- build
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local rc=$?
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        kill "$p" 2> /dev/null || true
        wait "$p" 2> /dev/null || true
    done
    if [ $rc -ne 0 ]; then
        for log in "$WORK"/*.log; do
            [ -f "$log" ] && { echo "--- ${log##*/}" >&2; tail -20 "$log" >&2; }
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

say "building an instrumented llmux (target/pgo-train)"
# RUSTFLAGS replaces the wrapper's profile: an instrumented build uses none.
RUSTFLAGS="-Cprofile-generate=$WORK/build" \
    cargo build --release --locked -p llmux --target-dir "$ROOT/target/pgo-train"
BIN=$ROOT/target/pgo-train/release/llmux

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {
    for _ in $(seq 100); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "not up: $1" >&2
    exit 1
}

# --------------------------------------------------------------- run
MOCK_PORT=$(free_port)
# The mock is the same binary; its counts are not the gateway's.
LLVM_PROFILE_FILE=$WORK/mock/%p.profraw "$BIN" mock --port "$MOCK_PORT" > "$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$MOCK_PORT/v1/models"

MOCK=http://127.0.0.1:$MOCK_PORT
KEY=sk-pgo-master
cat > "$WORK/config.yaml" << EOF
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o, api_base: "$MOCK/v1", api_key: sk-pgo-upstream}
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4-5-20250929, api_base: "$MOCK", api_key: sk-pgo-upstream}
  - model_name: gemini
    litellm_params: {model: gemini/gemini-2.5-flash, api_base: "$MOCK", api_key: pgo-gemini-key}
  - model_name: bedrock
    litellm_params:
      model: bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0
      aws_access_key_id: AKIDPGOTRAINING0000
      aws_secret_access_key: pgo-secret
      aws_region_name: us-east-1
      aws_bedrock_runtime_endpoint: "$MOCK"
litellm_settings: {num_retries: 0}
general_settings: {master_key: $KEY}
EOF
PORT=$(free_port)
LLVM_PROFILE_FILE=$WORK/serve/%p.profraw "$BIN" serve --config "$WORK/config.yaml" \
    --host 127.0.0.1 --port "$PORT" > "$WORK/serve.log" 2>&1 &
SERVE=$!
PIDS+=($SERVE)
wait_up "http://127.0.0.1:$PORT/health/liveliness"
GW=http://127.0.0.1:$PORT

# load REQUESTS STATUS METHOD PATH [BODY [HEADER]]: REQUESTS requests, 4 at a
# time, each of which must answer STATUS.
load() {
    local n=$1 status=$2 method=$3 path=$4 body=${5:-} header=${6:-"Authorization: Bearer $KEY"}
    local args=(-n "$n" -c 4 --no-tui --output-format json -m "$method" -H "$header")
    [ -n "$body" ] && args+=(-D "$PGO/requests/$body" -T application/json)
    "$OHA" "${args[@]}" "$GW$path" > "$WORK/oha.json"
    python3 - "$WORK/oha.json" "$status" "$n" "$method $path ${body:-}" << 'EOF'
import json, sys
codes = json.load(open(sys.argv[1])).get("statusCodeDistribution", {})
got = codes.get(sys.argv[2], 0)
print(f"  {sys.argv[4]:<55} {got:>6} x {sys.argv[2]}", file=sys.stderr)
sys.exit(0 if got == int(sys.argv[3]) else f"expected {sys.argv[3]} x {sys.argv[2]}, got {codes}")
EOF
}

say "training load"
CHAT=/v1/chat/completions
MSG=/v1/messages
ANT="x-api-key: $KEY"
# Pass-through first and most: most traffic is OpenAI-format.
for s in "" -stream; do
    load 30000 200 POST $CHAT "openai$s.json"
    load 5000 200 POST $CHAT "openai-tools$s.json"
    load 15000 200 POST $CHAT "anthropic$s.json"
    load 3000 200 POST $CHAT "anthropic-tools$s.json"
    load 5000 200 POST $CHAT "gemini$s.json"
    load 5000 200 POST $CHAT "bedrock$s.json"
    load 15000 200 POST $MSG "messages$s.json" "$ANT"
    load 3000 200 POST $MSG "messages-tools$s.json" "$ANT"
    load 5000 200 POST $MSG "messages-openai$s.json" "$ANT"
done
# Bodies in the Python SDKs' order: `messages` before `model` on the chat
# route (the openai SDK before version 3), `max_tokens` and `messages`
# before it on the Messages route (the anthropic SDK); the route finds the
# model by a scan.
load 5000 200 POST $CHAT openai-sdk.json
load 3000 200 POST $CHAT anthropic-sdk.json
load 3000 200 POST $MSG messages-sdk.json "$ANT"
load 3000 200 POST $MSG messages-openai-sdk.json "$ANT"
load 1000 200 GET /v1/models
load 1000 200 GET /v1/model/info
load 1000 404 POST $CHAT unknown-model.json
load 1000 400 POST $CHAT malformed.json
load 1000 401 POST $CHAT openai.json "Authorization: Bearer wrong-key"

# The profile is written when the gateway exits (it has 30 s to).
kill -TERM "$SERVE"
for _ in $(seq 300); do
    kill -0 "$SERVE" 2> /dev/null || break
    sleep 0.1
done
wait "$SERVE" || true
set -- "$WORK"/serve/*.profraw
[ -f "$1" ] || { echo "the gateway wrote no profile" >&2; exit 1; }
"$PROFDATA" merge --sparse -o "$PGO/llmux.profdata" "$@"
# What the profile fits: the rustc wrapper reads it, test.sh checks it.
python3 "$PGO/fingerprint.py" > "$PGO/trained-with"
say "wrote pgo/llmux.profdata ($(wc -c < "$PGO/llmux.profdata") bytes)"
