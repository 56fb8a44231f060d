#!/usr/bin/env bash
# Runs every llmux test: formatting and lints, Rust unit and integration tests
# (the real binary against `llmux mock`), and the conformance suites that drive
# the running gateway with the official `openai` SDKs (Python, and Node making
# Roo Code's exact requests), virtual keys on SQLite and on a private
# PostgreSQL server, and replicas sharing rate limits in a private Redis.
# Installs what it needs on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

say() { printf '\n==> %s\n' "$*"; }
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

if ! have cargo; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cargo is missing: install Rust from https://rustup.rs and run again" >&2
        exit 1
    fi
fi
have python3 || apt_install python3 python3-venv
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
have npm || apt_install nodejs npm
# PostgreSQL's server: the virtual-key tests start a private one on loopback.
have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
    have pg_config && [ -x "$(pg_config --bindir)/initdb" ]
}
if ! have_postgres; then
    # The server's binaries only: no system cluster created and started.
    apt_install postgresql-common
    conf=/etc/postgresql-common/createcluster.conf
    if [ -f "$conf" ]; then
        sed -i 's/^#\?\s*create_main_cluster.*/create_main_cluster = false/' "$conf"
    fi
    apt_install postgresql
fi
# Redis's server: the shared rate-limit tests start a private one on loopback.
have redis-server || apt_install redis-server

say "cargo fmt --check"
cargo fmt --all -- --check

say "the release builds' profile fits Cargo.lock and the release profile (pgo/README.md)"
python3 pgo/fingerprint.py --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test (unit + integration against the real binary)"
cargo build --workspace --locked
export LLMUX_BIN="$ROOT/target/debug/llmux"
cargo test --workspace --locked

say "Python conformance (official openai SDK)"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r clients/python/requirements.txt
"$VENV/bin/python" -m pytest -q clients/python

say "Node conformance (Roo Code's requests with the openai npm package)"
(cd clients/node && npm ci --no-audit --no-fund --loglevel=error && npm test)
