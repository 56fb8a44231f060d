"""Fixtures that run the real `llmux` binary: `llmux mock` as the upstream and
`llmux serve` as the gateway under test, each on a free local port.

The binary is `$LLMUX_BIN`, or `<repo>/target/debug/llmux` when unset.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "llmux"

MASTER_KEY = "sk-master-test"
UPSTREAM_KEY = "sk-upstream-secret"
ANTHROPIC_KEY = "sk-ant-secret-x"
AWS_SECRET = "aws-secret-access-key-x"
# Every secret the gateway knows; none may ever appear in a response body.
SECRETS = (UPSTREAM_KEY, ANTHROPIC_KEY, AWS_SECRET)

STARTUP_TIMEOUT_S = 20.0
CLIENT_TIMEOUT_S = 30.0

# Variables that could make `llmux serve` serve more than the config says, or
# require a key we did not set.
_SCRUBBED_ENV = (
    "LLMUX_MASTER_KEY",
    "LITELLM_MASTER_KEY",
    "DATABASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
    "AZURE_API_VERSION",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)

# Local traffic must never go through a proxy from the environment.
os.environ["NO_PROXY"] = ",".join(
    filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"])
)


def llmux_bin() -> Path:
    path = Path(os.environ.get("LLMUX_BIN") or DEFAULT_BIN)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"llmux binary not found or not executable at {path}.\n"
            "Build it first (`cargo build -p llmux` from the repo root) or set "
            "LLMUX_BIN to the binary's path.",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.setdefault("RUST_BACKTRACE", "1")
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    base: str

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def start_process(name: str, args: list[str], log_dir: Path, port: int, ready_path: str) -> Proc:
    """Start `llmux <args>` and wait (bounded) until GET ready_path answers 200."""
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")
    cmd = [str(llmux_bin()), *args]
    popen = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env()
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    proc = Proc(name=name, popen=popen, log_path=log_path, base=base)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_err = "no answer yet"
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                pytest.fail(
                    f"`{' '.join(cmd)}` exited with code {popen.returncode} before it was ready.\n"
                    f"--- {log_path} ---\n{proc.log_tail()}",
                    pytrace=False,
                )
            try:
                r = http.get(base + ready_path)
                if r.status_code == 200:
                    return proc
                last_err = f"GET {ready_path} -> {r.status_code}"
            except httpx.HTTPError as e:
                last_err = repr(e)
            time.sleep(0.1)
    proc.stop()
    pytest.fail(
        f"`{' '.join(cmd)}` was not ready within {STARTUP_TIMEOUT_S:.0f}s ({last_err}).\n"
        f"--- {log_path} ---\n{proc.log_tail()}",
        pytrace=False,
    )
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------
# The mock upstream


@dataclass
class Mock:
    proc: Proc

    @property
    def base(self) -> str:
        return self.proc.base

    def requests(self) -> list[dict[str, Any]]:
        """GET /mock/requests, normalized to a list of
        {method, path, query, headers: {lower-name: value}, body}."""
        with httpx.Client(timeout=10.0, trust_env=False) as http:
            r = http.get(self.base + "/mock/requests")
        assert r.status_code == 200, r.text
        data = r.json()
        if isinstance(data, dict):
            for k in ("requests", "data", "items"):
                if isinstance(data.get(k), list):
                    data = data[k]
                    break
        assert isinstance(data, list), f"unexpected /mock/requests shape: {data!r:.500}"
        return [_normalize_recorded(x) for x in data]

    def requests_with(self, marker: str) -> list[dict[str, Any]]:
        """The recorded requests whose JSON body contains `marker` anywhere."""
        return [r for r in self.requests() if marker in json.dumps(r["body"])]

    def one_request_with(self, marker: str) -> dict[str, Any]:
        found = self.requests_with(marker)
        assert len(found) == 1, f"expected 1 upstream request carrying {marker!r}, got {len(found)}"
        return found[0]


def _normalize_recorded(x: dict[str, Any]) -> dict[str, Any]:
    headers = x.get("headers") or {}
    if isinstance(headers, list):  # [[name, value], ...] or [{name, value}, ...]
        pairs = [
            (h["name"], h["value"]) if isinstance(h, dict) else (h[0], h[1]) for h in headers
        ]
    else:
        pairs = list(headers.items())
    body = x.get("body", x.get("json"))
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            pass
    return {
        "method": x.get("method"),
        "path": x.get("path"),
        "query": x.get("query"),
        "headers": {str(k).lower(): v for k, v in pairs},
        "body": body,
    }


@pytest.fixture(scope="session")
def mock(tmp_path_factory) -> Iterator[Mock]:
    port = free_port()
    proc = start_process(
        "mock",
        ["mock", "--host", "127.0.0.1", "--port", str(port)],
        tmp_path_factory.mktemp("mock"),
        port,
        "/v1/models",
    )
    try:
        yield Mock(proc)
    finally:
        proc.stop()


# ---------------------------------------------------------------------------
# The gateway


@dataclass
class Gateway:
    proc: Proc
    master_key: str | None
    config_text: str
    models: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.proc.base

    def client(self, api_key: str | None = None, **kw: Any) -> openai.OpenAI:
        key = api_key if api_key is not None else (self.master_key or "dummy-key")
        return openai.OpenAI(
            base_url=self.base + "/v1",
            api_key=key,
            timeout=CLIENT_TIMEOUT_S,
            max_retries=0,
            **kw,
        )

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=CLIENT_TIMEOUT_S, trust_env=False)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"} if self.master_key else {}


def gateway_config(mock_base: str, master_key: str | None) -> str:
    dead_port = free_port()  # nothing listens here: "upstream unreachable"
    lines = [
        "model_list:",
        "  - model_name: gpt-4o",
        "    litellm_params:",
        "      model: openai/gpt-4o",
        f'      api_base: "{mock_base}/v1"',
        f"      api_key: {UPSTREAM_KEY}",
        "  - model_name: gpt-4o-mini",
        "    litellm_params:",
        "      model: openai/gpt-4o-mini",
        f'      api_base: "{mock_base}/v1"',
        f"      api_key: {UPSTREAM_KEY}",
        "  - model_name: local-slow",  # for the upstream timeout test
        "    litellm_params:",
        "      model: openai/gpt-4o",
        f'      api_base: "{mock_base}/v1"',
        f"      api_key: {UPSTREAM_KEY}",
        "      timeout: 1",
        "  - model_name: dead-upstream",
        "    litellm_params:",
        "      model: openai/gpt-4o",
        f'      api_base: "http://127.0.0.1:{dead_port}/v1"',
        f"      api_key: {UPSTREAM_KEY}",
        "  - model_name: claude-sonnet-4",  # the mock speaks Anthropic's Messages API too
        "    litellm_params:",
        "      model: anthropic/claude-sonnet-4-20250514",
        f'      api_base: "{mock_base}"',
        f"      api_key: {ANTHROPIC_KEY}",
        "litellm_settings:",
        "  num_retries: 2",
    ]
    if master_key:
        lines += ["general_settings:", f"  master_key: {master_key}"]
    return "\n".join(lines) + "\n"


GATEWAY_MODELS = ["gpt-4o", "gpt-4o-mini", "local-slow", "dead-upstream", "claude-sonnet-4"]


def serve_config(name: str, config_text: str, tmp_dir: Path) -> Proc:
    """`llmux serve` with this config text (written to `<tmp_dir>/<name>.yaml`),
    once it answers its liveness probe."""
    config = tmp_dir / f"{name}.yaml"
    config.write_text(config_text)
    port = free_port()
    return start_process(
        name,
        ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        tmp_dir,
        port,
        "/health/liveliness",
    )


def start_gateway(name: str, mock: Mock, tmp_dir: Path, master_key: str | None) -> Gateway:
    config_text = gateway_config(mock.base, master_key)
    proc = serve_config(name, config_text, tmp_dir)
    return Gateway(proc=proc, master_key=master_key, config_text=config_text, models=GATEWAY_MODELS)


@pytest.fixture(scope="session")
def gateway(mock, tmp_path_factory) -> Iterator[Gateway]:
    """The gateway with master key `sk-master-test`."""
    gw = start_gateway("gateway", mock, tmp_path_factory.mktemp("gateway"), MASTER_KEY)
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture(scope="session")
def open_gateway(mock, tmp_path_factory) -> Iterator[Gateway]:
    """A second gateway with no master key: every request passes."""
    gw = start_gateway("gateway-open", mock, tmp_path_factory.mktemp("gateway-open"), None)
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture
def client(gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as c:
        yield c


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    with gateway.http() as h:
        yield h


@pytest.fixture
def marker() -> str:
    """A unique string to put in a request, to find it again in /mock/requests."""
    return f"marker-{uuid.uuid4().hex}"


@pytest.fixture(autouse=True)
def _gateway_log_on_failure(request):
    """When a test fails, print the tail of the gateway's log with it."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for fixture_name in ("gateway", "open_gateway", "mock"):
            if fixture_name in request.fixturenames:
                obj = request.getfixturevalue(fixture_name)
                proc = obj.proc
                print(f"\n--- {proc.name} log ({proc.log_path}) ---\n{proc.log_tail(40)}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


# ---------------------------------------------------------------------------
# Shared assertions


def assert_openai_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    """The response has `status` and an OpenAI-shaped error body, and no secret."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert_no_secret(resp.text)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    for k in ("message", "type", "param", "code"):
        assert k in err, f"error object lacks {k!r}: {err}"
    assert isinstance(err["message"], str) and err["message"], err
    return err


def assert_no_secret(text: str) -> None:
    for s in SECRETS:
        assert s not in text, f"secret {s!r} leaked into a response body"
    assert MASTER_KEY not in text, "the master key leaked into a response body"


# ---------------------------------------------------------------------------
# PostgreSQL, for virtual keys shared by replicas: a private server started
# from the installed binaries (test.sh installs them), password-protected,
# on a free loopback port, gone when the session ends.

PG_USER = "llmux"
PG_PASSWORD = "pg-secret-password"


@dataclass
class Postgres:
    bindir: Path
    port: int
    socket_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        r = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            env={**child_env(), "PGPASSWORD": PG_PASSWORD}, capture_output=True, text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def new_database(self) -> str:
        name = f"llmux_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}")
        return name


def _postgres_bindir() -> Path | None:
    import glob
    import re

    def version(d: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([0-9.]+)/bin$", d)
        return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if os.access(Path(d) / "initdb", os.X_OK):
            return Path(d)
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        d = Path(out.stdout.strip())
        return d if (d / "initdb").is_file() else None
    except OSError:
        return None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    import atexit
    import pwd
    import shutil
    import tempfile

    bindir = _postgres_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (test.sh installs it)", pytrace=False)
        pytest.skip("PostgreSQL is not installed (apt install postgresql)")
    # initdb refuses root: as root, the server runs as `postgres`, in a
    # directory of its own under /tmp (pytest's temporary directory is
    # root's alone).
    as_pg: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, PostgreSQL needs a `postgres` user to run as", pytrace=False)
        as_pg = ["runuser", "-u", "postgres", "--"]
    env = {**child_env(), "LC_ALL": "C"}
    root = Path(tempfile.mkdtemp(prefix="llmux-pg-", dir="/tmp"))
    data = root / "data"
    pg_ctl = [*as_pg, str(bindir / "pg_ctl"), "-D", str(data)]
    started = False

    def stop() -> None:
        if started:
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, env=env, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    # Stopped even if the session ends without its teardown (a killed run
    # leaves no server behind as long as Python exits).
    atexit.register(stop)
    try:
        pwfile = root / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if as_pg:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        r = subprocess.run(
            [*as_pg, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
            capture_output=True, text=True, env=env, timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        # A free port may be taken before the server binds it: tried again
        # on another.
        for _ in range(3):
            port = free_port()
            opts = (f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            r = subprocess.run(
                [*pg_ctl, "-l", str(root / "server.log"), "-w", "-t", "60", "-o", opts, "start"],
                capture_output=True, text=True, env=env, timeout=90,
            )
            started = True
            if r.returncode == 0:
                break
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, env=env, timeout=60)
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        assert r.returncode == 0, r.stdout + r.stderr + log
        yield Postgres(bindir=bindir, port=port, socket_dir=root)
    finally:
        stop()
        atexit.unregister(stop)
        started = False


class SlowStream:
    """A chat stream of `words` at `per_sec` tokens a second, read in a thread
    of its own with `key`: `opened` once its first chunk is read, `text` once
    it has ended (None if it broke: a gateway killed under it), `end()` to
    close it early and wait for the thread."""

    def __init__(self, gw: "Gateway", key: str, words: str, per_sec: float) -> None:
        import threading

        self.opened = threading.Event()
        self.text: str | None = None
        self._stop = threading.Event()
        content = 'Hi <mock>{"tokens_per_sec": %s, "content": "%s"}</mock>' % (per_sec, words)
        self._thread = threading.Thread(target=self._read, args=(gw, key, content))
        self._thread.start()

    def _read(self, gw: "Gateway", key: str, content: str) -> None:
        try:
            s = gw.client(api_key=key).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": content}], stream=True
            )
            text = ""
            for chunk in s:
                self.opened.set()
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                if self._stop.is_set():
                    s.close()
                    break
            self.text = text
        except (openai.APIError, httpx.HTTPError):
            pass

    def join(self, timeout: float = 20) -> None:
        self._thread.join(timeout)

    def end(self) -> None:
        self._stop.set()
        self.join()


# ---------------------------------------------------------------------------
# Redis, where replicas count the virtual keys' rate limits together: a
# private server from the installed binary (test.sh installs it),
# password-protected, on a free loopback port, nothing saved to disk.

REDIS_PASSWORD = "redis-secret-password"


@dataclass
class Redis:
    binary: Path
    port: int
    root: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        """Starts the server (again, after `stop`) on its port, once it answers."""
        log = open(self.root / "redis.log", "ab")
        self.popen = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
             "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError((self.root / "redis.log").read_text(errors="replace"))
            try:
                if self.command("PING") == "+PONG":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer within 20 s")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def command(self, *args: str) -> str:
        """One command (after AUTH): its reply's first line, or a bulk
        string's value."""
        def encode(parts: tuple[str, ...]) -> bytes:
            out = f"*{len(parts)}\r\n".encode()
            for p in parts:
                b = p.encode()
                out += f"${len(b)}\r\n".encode() + b + b"\r\n"
            return out

        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(encode(("AUTH", REDIS_PASSWORD)) + encode(args))
            data = b""

            def complete() -> bool:
                lines = data.split(b"\r\n")
                if len(lines) < 3:
                    return False
                bulk = lines[1].startswith(b"$") and lines[1] != b"$-1"
                return len(lines) >= (4 if bulk else 3)

            while not complete():
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            lines = data.split(b"\r\n")
            assert lines[0] == b"+OK", lines[0]
            if lines[1].startswith(b"$") and lines[1] != b"$-1":
                return lines[2].decode()
            return lines[1].decode()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    import atexit
    import shutil
    import tempfile

    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (test.sh installs it)", pytrace=False)
        pytest.skip("redis-server is not installed (apt install redis-server)")
    root = Path(tempfile.mkdtemp(prefix="llmux-redis-", dir="/tmp"))
    server = Redis(binary=Path(binary), port=free_port(), root=root)
    atexit.register(server.stop)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)
        shutil.rmtree(root, ignore_errors=True)
