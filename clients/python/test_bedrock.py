"""Conformance for Amazon Bedrock (Converse and ConverseStream) through llmux.

Part 1, the signing and the bodies, judged by botocore: `bedrock_verifier.py`
plays Bedrock Runtime, recomputes the SigV4 signature of every request llmux
sends with botocore and validates every body against botocore's
`bedrock-runtime` Converse / ConverseStream input shapes (see its docstring).
Gateways point deployments at it with static keys, static keys with a session
token, an inference-profile ARN model id (percent-encoded in the path), keys
and region from the environment, a named profile in a shared credentials
file, and a Bedrock API key (bearer). The `openai` SDK sends plain chat,
streaming, tools with tool results, an image data URL, a system message,
`cache_control` and `reasoning_effort` on a Claude model; every request the
verifier saw must be signed exactly as botocore signs it and carry a valid
body.

Part 2, behaviour, against `llmux mock`'s Bedrock routes (`POST
/model/{modelId}/converse` and `/converse-stream`, JSON and the binary event
stream; docs/mock.md): the `openai` SDK drives a Nova deployment and a
Claude-on-Bedrock one with tools, parallel tool results (OpenAI ids rewritten
to Bedrock's pattern, consistently between `toolUse` and `toolResult`),
images, caching, reasoning round-tripped as `thinking_blocks`, streaming with
usage last, exceptions mid-stream (a throttling exception makes the SDK
raise), HTTP errors mapped with their messages kept, and history holding tool
blocks with no tools in the request. The mock is steered with
`<mock>{...}</mock>` tags in message text (they survive the translation to
Converse); the Bedrock-only directives used here are `exception_after` /
`exception` (an exception frame mid-stream) and `error_type` (the
`x-amzn-ErrorType` sent with `status`).

Until llmux's Bedrock provider is in the binary, every test here fails with
"llmux answered 501: the Bedrock provider is not in this binary yet".
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock as _mock

import anthropic
import httpx
import openai
import pytest

import conftest
from conftest import (
    CLIENT_TIMEOUT_S,
    MASTER_KEY,
    Mock,
    Proc,
    assert_no_secret,
    assert_openai_error,
    free_port,
    start_process,
)
from test_bedrock_verifier import (
    AKID,
    AKID_TOKEN,
    BEARER,
    PNG_B64,
    PROFILE_ARN,
    REGION,
    REGION_TOKEN,
    SECRET,
    SECRET_TOKEN,
    SESSION_TOKEN,
    VerifierProc,
    describe,
    model_path,
    start_verifier,
)
from test_gemini import collect_chat_stream
from test_openai_sdk import MOCK_TEXT, PNG_DATA_URL, TOOLS

VERIFIER_TEXT = "Hello from the Bedrock verifier."

# More credentials the verifier knows: from the gateway's environment, and a
# named profile in a shared credentials file.
AKID_ENV = "ASIALLMUXTESTENV0003"
SECRET_ENV = "llmuxTestSecretKey/00000000000000000env3"
TOKEN_ENV = "IQoJb3JpZ2luX2VjEnv//////////llmux+env/token=="
REGION_ENV = "eu-central-1"
AKID_PROFILE = "AKIDLLMUXTESTPROF004"
SECRET_PROFILE = "llmuxTestSecretKey/0000000000000profile4"
PROFILE = "llmux-test"
REGION_PROFILE = "ap-southeast-2"
AWS_SECRETS = (SECRET, SECRET_TOKEN, SECRET_ENV, SECRET_PROFILE, SESSION_TOKEN, TOKEN_ENV, BEARER)

CLAUDE_ID = "us.anthropic.claude-sonnet-4-20250514-v1:0"
NOVA_ID = "amazon.nova-pro-v1:0"
NOVA_LITE_ID = "amazon.nova-lite-v1:0"

# Deployments in front of the verifier: name -> (upstream model id, access key, region)
V_CLAUDE = "bv-claude"  # static keys
V_TOKEN = "bv-nova-token"  # static keys + session token, `bedrock/converse/…`, api_base
V_ARN = "bv-arn"  # an inference-profile ARN
V_ENV = "bv-env"  # keys, token and region from the environment
V_PROFILE = "bv-profile"  # aws_profile_name + AWS_SHARED_CREDENTIALS_FILE
V_BEARER = "bv-bearer"  # AWS_BEARER_TOKEN_BEDROCK
V_EXPECT = {
    V_CLAUDE: (CLAUDE_ID, AKID, REGION),
    V_TOKEN: (NOVA_ID, AKID_TOKEN, REGION_TOKEN),
    V_ARN: (PROFILE_ARN, AKID, REGION),
    V_ENV: (NOVA_LITE_ID, AKID_ENV, REGION_ENV),
    V_PROFILE: (NOVA_LITE_ID, AKID_PROFILE, REGION_PROFILE),
    V_BEARER: (NOVA_ID, None, None),
}
THREE = [V_CLAUDE, V_TOKEN, V_ARN]

# Deployments in front of `llmux mock`
NOVA = "nova"  # bedrock/amazon.nova-pro-v1:0
CLAUDE = "claude-bedrock"  # bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0
GPT_OSS = "gpt-oss-bedrock"  # bedrock/openai.gpt-oss-120b-1:0
NOVA_2 = "nova-2"  # bedrock/us.amazon.nova-2-lite-v1:0

# Bedrock's toolUseId: botocore's model says [a-zA-Z0-9_.:-]{1,64}; Claude
# models behind Converse refuse anything but [a-zA-Z0-9_-], so that is what an
# id llmux rewrites must look like.
TOOL_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
NOT_YET = "llmux answered 501: the Bedrock provider is not in this binary yet"


def tag(**directives: Any) -> str:
    return f"<mock>{json.dumps(directives)}</mock>"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# ===========================================================================
# Processes


def _aws_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The gateway's environment: no AWS setting from this machine leaks in
    (no credentials file, no instance metadata), plus `extra`."""
    env = conftest.child_env()
    for k in list(env):
        if k.startswith("AWS_"):
            del env[k]
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp / "no-aws-credentials")
    env["AWS_CONFIG_FILE"] = str(tmp / "no-aws-config")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


@dataclass
class BGateway:
    proc: Proc
    config_text: str

    @property
    def base(self) -> str:
        return self.proc.base

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base + "/v1", api_key=MASTER_KEY, timeout=CLIENT_TIMEOUT_S, max_retries=0)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=CLIENT_TIMEOUT_S, trust_env=False)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {MASTER_KEY}"}


def q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def deployment(name: str, model: str, **params: str) -> list[str]:
    lines = [f"  - model_name: {name}", "    litellm_params:", f"      model: {q(model)}"]
    lines += [f"      {k}: {q(v)}" for k, v in params.items()]
    return lines


def start_gateway(name: str, tmp: Path, deployments: list[list[str]], env: dict[str, str], retries: int) -> BGateway:
    lines = ["model_list:"]
    for d in deployments:
        lines += d
    lines += ["litellm_settings:", f"  num_retries: {retries}", "general_settings:", f"  master_key: {MASTER_KEY}"]
    text = "\n".join(lines) + "\n"
    (tmp / "config.yaml").write_text(text)
    port = free_port()
    with _mock.patch.object(conftest, "child_env", lambda: env):
        proc = start_process(
            name,
            ["serve", "--config", str(tmp / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)],
            tmp,
            port,
            "/health/liveliness",
        )
    return BGateway(proc=proc, config_text=text)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory) -> Iterator[VerifierProc]:
    v = start_verifier(
        tmp_path_factory.mktemp("bedrock-verifier"),
        "--access-key-id", AKID,
        "--secret-access-key", SECRET,
        "--region", REGION,
        "--credential", f"{AKID_TOKEN},{SECRET_TOKEN},{SESSION_TOKEN},{REGION_TOKEN}",
        "--credential", f"{AKID_ENV},{SECRET_ENV},{TOKEN_ENV},{REGION_ENV}",
        "--credential", f"{AKID_PROFILE},{SECRET_PROFILE},,{REGION_PROFILE}",
        "--bearer-token", BEARER,
    )  # fmt: skip
    try:
        yield v
    finally:
        v.stop()


@pytest.fixture(scope="module")
def vgw(verifier, tmp_path_factory) -> Iterator[BGateway]:
    """Static keys, a session token, an ARN: all in front of the verifier."""
    tmp = tmp_path_factory.mktemp("bedrock-vgw")
    deps = [
        deployment(
            V_CLAUDE, f"bedrock/{CLAUDE_ID}",
            aws_access_key_id=AKID, aws_secret_access_key=SECRET, aws_region_name=REGION,
            aws_bedrock_runtime_endpoint=verifier.base,
        ),
        deployment(
            V_TOKEN, f"bedrock/converse/{NOVA_ID}",
            aws_access_key_id=AKID_TOKEN, aws_secret_access_key=SECRET_TOKEN,
            aws_session_token=SESSION_TOKEN, aws_region_name=REGION_TOKEN, api_base=verifier.base,
        ),
        deployment(
            V_ARN, f"bedrock/{PROFILE_ARN}",
            aws_access_key_id=AKID, aws_secret_access_key=SECRET, aws_region_name=REGION,
            aws_bedrock_runtime_endpoint=verifier.base,
        ),
    ]  # fmt: skip
    gw = start_gateway("gateway-bedrock-verifier", tmp, deps, _aws_env(tmp), retries=0)
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture(scope="module")
def vgw_env(verifier, tmp_path_factory) -> Iterator[BGateway]:
    """Credentials from the environment and from a named profile."""
    tmp = tmp_path_factory.mktemp("bedrock-vgw-env")
    creds = tmp / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id = AKIDWRONGDEFAULT0000\naws_secret_access_key = wrong\n\n"
        f"[{PROFILE}]\naws_access_key_id = {AKID_PROFILE}\naws_secret_access_key = {SECRET_PROFILE}\n"
    )
    config = tmp / "config"
    config.write_text(f"[default]\nregion = us-east-2\n\n[profile {PROFILE}]\nregion = {REGION_PROFILE}\n")
    env = _aws_env(
        tmp,
        AWS_ACCESS_KEY_ID=AKID_ENV,
        AWS_SECRET_ACCESS_KEY=SECRET_ENV,
        AWS_SESSION_TOKEN=TOKEN_ENV,
        AWS_REGION=REGION_ENV,
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_CONFIG_FILE=str(config),
    )
    deps = [
        deployment(V_ENV, f"bedrock/{NOVA_LITE_ID}", aws_bedrock_runtime_endpoint=verifier.base),
        deployment(
            V_PROFILE, f"bedrock/{NOVA_LITE_ID}",
            aws_profile_name=PROFILE, aws_region_name=REGION_PROFILE, aws_bedrock_runtime_endpoint=verifier.base,
        ),
    ]  # fmt: skip
    gw = start_gateway("gateway-bedrock-env", tmp, deps, env, retries=0)
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture(scope="module")
def vgw_bearer(verifier, tmp_path_factory) -> Iterator[BGateway]:
    """A Bedrock API key (AWS_BEARER_TOKEN_BEDROCK): bearer auth, no SigV4."""
    tmp = tmp_path_factory.mktemp("bedrock-vgw-bearer")
    env = _aws_env(tmp, AWS_BEARER_TOKEN_BEDROCK=BEARER, AWS_REGION=REGION)
    deps = [deployment(V_BEARER, f"bedrock/{NOVA_ID}", aws_bedrock_runtime_endpoint=verifier.base)]
    gw = start_gateway("gateway-bedrock-bearer", tmp, deps, env, retries=0)
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture(scope="module")
def bmock(tmp_path_factory) -> Iterator[Mock]:
    tmp = tmp_path_factory.mktemp("bedrock-mock")
    port = free_port()
    proc = start_process("mock-bedrock", ["mock", "--host", "127.0.0.1", "--port", str(port)], tmp, port, "/v1/models")
    try:
        yield Mock(proc)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def mgw(bmock, tmp_path_factory) -> Iterator[BGateway]:
    """Nova and Claude-on-Bedrock in front of `llmux mock`."""
    tmp = tmp_path_factory.mktemp("bedrock-mgw")
    keys = dict(aws_access_key_id=AKID, aws_secret_access_key=SECRET, aws_region_name=REGION)
    deps = [
        deployment(NOVA, f"bedrock/{NOVA_ID}", aws_bedrock_runtime_endpoint=bmock.base, **keys),
        deployment(CLAUDE, f"bedrock/{CLAUDE_ID}", aws_bedrock_runtime_endpoint=bmock.base, **keys),
        deployment(GPT_OSS, "bedrock/openai.gpt-oss-120b-1:0", aws_bedrock_runtime_endpoint=bmock.base, **keys),
        deployment(NOVA_2, "bedrock/us.amazon.nova-2-lite-v1:0", aws_bedrock_runtime_endpoint=bmock.base, **keys),
    ]
    gw = start_gateway("gateway-bedrock-mock", tmp, deps, _aws_env(tmp), retries=2)
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture
def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


@pytest.fixture
def vclient(vgw) -> Iterator[openai.OpenAI]:
    with vgw.client() as c:
        yield c


@pytest.fixture
def mclient(mgw) -> Iterator[openai.OpenAI]:
    with mgw.client() as c:
        yield c


@pytest.fixture(autouse=True)
def _logs_on_failure(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed:
        return
    for name in ("vgw", "vgw_env", "vgw_bearer", "mgw", "bmock"):
        if name in request.fixturenames:
            proc = request.getfixturevalue(name).proc
            print(f"\n--- {proc.name} log ({proc.log_path}) ---\n{proc.log_tail(30)}")
    if "verifier" in request.fixturenames:
        v = request.getfixturevalue("verifier")
        print(f"\n--- bedrock verifier log ---\n{v.log_tail(30)}")


# ===========================================================================
# Helpers


def bedrock_call(fn: Callable[[], Any], verifier: VerifierProc | None = None, marker: str | None = None) -> Any:
    """Run a client call; a 501 means llmux has no Bedrock provider yet, and
    any other error shows what the verifier made of the request."""
    try:
        return fn()
    except openai.APIStatusError as e:
        if e.status_code == 501:
            pytest.fail(f"{NOT_YET}: {e.message}", pytrace=False)
        if verifier is not None and marker is not None:
            recs = [r for r in verifier.results() if marker in json.dumps(r.get("body"))]
            shown = "\n".join(describe(r) for r in recs) or "(the verifier received no request carrying the marker)"
            pytest.fail(f"llmux answered {e.status_code}: {e.message}\n--- the verifier's records ---\n{shown}", pytrace=False)
        raise


def verified(verifier: VerifierProc, marker: str, deployment_name: str, n: int | None = None) -> list[dict]:
    """The verifier's records of the requests carrying `marker`: each signed
    exactly as botocore signs it, with a body valid for botocore's input shape,
    to the path botocore would call, with the deployment's key and region."""
    recs = [r for r in verifier.results() if marker in json.dumps(r.get("body"))]
    assert recs, f"the verifier received no request carrying {marker}"
    if n is not None:
        assert len(recs) == n, f"expected {n} upstream requests, got {len(recs)}"
    model_id, akid, region = V_EXPECT[deployment_name]
    for r in recs:
        assert r["signature_ok"], "llmux's SigV4 signature differs from botocore's:\n" + describe(r)
        assert r["validation_errors"] == [], "the Converse body fails botocore's validation:\n" + describe(r)
        assert r["model_id"] == model_id, describe(r)
        assert r["path_ok"], f"the model id is not encoded as botocore encodes it:\n{describe(r)}"
        if akid is None:
            assert r["auth_scheme"] == "bearer", describe(r)
            assert "x-amz-security-token" not in r["headers"]
        else:
            assert r["auth_scheme"] == "sigv4"
            assert r["access_key_id"] == akid, describe(r)
            assert f"/{region}/bedrock/aws4_request" in r["received_authorization"], describe(r)
            assert "x-amz-date" in r["signed_headers"] and "host" in r["signed_headers"]
        assert r["headers"].get("content-type", "").startswith("application/json")
    return recs


def one_verified(verifier: VerifierProc, marker: str, deployment_name: str) -> dict:
    return verified(verifier, marker, deployment_name, n=1)[0]


def blocks_of(body: dict, kind: str) -> list[dict]:
    """Every content block of `kind` in the Converse body's messages."""
    return [b[kind] for m in body.get("messages", []) for b in m.get("content", []) if kind in b]


def history_with_tool_calls(marker: str, ids: list[str]) -> list[dict]:
    """A user turn, an assistant turn calling tools with these ids, and their results."""
    names = ["get_weather", "get_time"]
    args = [{"location": "Paris"}, {"timezone": "Europe/Paris"}]
    calls = [
        {"id": i, "type": "function", "function": {"name": names[k % 2], "arguments": json.dumps(args[k % 2])}}
        for k, i in enumerate(ids)
    ]
    msgs: list[dict] = [
        {"role": "user", "content": f"Weather and time in Paris? {marker}"},
        {"role": "assistant", "content": None, "tool_calls": calls},
    ]
    for k, i in enumerate(ids):
        msgs.append({"role": "tool", "tool_call_id": i, "content": f"result {k} for {marker}"})
    return msgs


# Ids a client may carry over from another provider: '.' and ':' (OpenAI
# Responses / other gateways), '/' '+' '=' (base64), and too long.
ODD_IDS = ["call_abc.def:123", "call_" + "Zm9v/YmFy+YmF6=" * 6]


# ===========================================================================
# Part 1: signatures and bodies, judged by botocore


@pytest.mark.parametrize("dep", THREE)
def test_v_plain_chat_signed(vclient, verifier, marker, dep):
    resp = bedrock_call(
        lambda: vclient.chat.completions.create(model=dep, messages=user(f"Hello {marker}")), verifier, marker
    )
    assert resp.choices[0].message.content == VERIFIER_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens == len(VERIFIER_TEXT.split())
    rec = one_verified(verifier, marker, dep)
    assert rec["operation"] == "Converse"
    assert rec["path"] == model_path(V_EXPECT[dep][0], "Converse")
    if dep == V_TOKEN:
        assert rec["headers"].get("x-amz-security-token") == SESSION_TOKEN
        assert "x-amz-security-token" in rec["signed_headers"]
    else:
        assert "x-amz-security-token" not in rec["headers"]
    if dep == V_ARN:  # the ARN's ':' and '/' are encoded: one path segment
        assert rec["path"].count("/") == 3 and "%2Fus.anthropic" in rec["path"], rec["path"]


@pytest.mark.parametrize("dep", THREE)
def test_v_streaming_signed(vclient, verifier, marker, dep):
    def run():
        return list(
            vclient.chat.completions.create(
                model=dep, messages=user(f"Hello {marker}"), stream=True, stream_options={"include_usage": True}
            )
        )

    chunks = bedrock_call(run, verifier, marker)
    got = collect_chat_stream(chunks)
    assert got["text"] == VERIFIER_TEXT
    assert got["finishes"] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None, "usage must come last, with choices: []"
    assert chunks[-1].usage.completion_tokens == len(VERIFIER_TEXT.split())
    rec = one_verified(verifier, marker, dep)
    assert rec["operation"] == "ConverseStream"
    assert rec["path"] == model_path(V_EXPECT[dep][0], "ConverseStream")


def test_v_system_message(vclient, verifier, marker):
    msgs = [{"role": "system", "content": f"Be brief. {marker}"}, {"role": "user", "content": "Hi"}]
    bedrock_call(lambda: vclient.chat.completions.create(model=V_TOKEN, messages=msgs), verifier, marker)
    body = one_verified(verifier, marker, V_TOKEN)["body"]
    assert body["system"] == [{"text": f"Be brief. {marker}"}]
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_v_inference_config(vclient, verifier, marker):
    bedrock_call(
        lambda: vclient.chat.completions.create(
            model=V_TOKEN, messages=user(marker), max_tokens=77, temperature=0.25, top_p=0.5, stop=["END", "STOP"]
        ),
        verifier,
        marker,
    )
    cfg = one_verified(verifier, marker, V_TOKEN)["body"]["inferenceConfig"]
    assert cfg == {"maxTokens": 77, "temperature": 0.25, "topP": 0.5, "stopSequences": ["END", "STOP"]}


@pytest.mark.parametrize("dep", [V_CLAUDE, V_TOKEN])
def test_v_tools_with_tool_results(vclient, verifier, marker, dep):
    msgs = history_with_tool_calls(marker, ODD_IDS)
    bedrock_call(
        lambda: vclient.chat.completions.create(model=dep, messages=msgs, tools=TOOLS, tool_choice="auto"),
        verifier,
        marker,
    )
    body = one_verified(verifier, marker, dep)["body"]
    specs = [t["toolSpec"] for t in body["toolConfig"]["tools"] if "toolSpec" in t]
    assert [s["name"] for s in specs] == ["get_weather", "get_time"]
    assert specs[0]["inputSchema"]["json"]["required"] == ["location"]
    assert specs[0]["description"] == "Current weather for a city"
    uses = blocks_of(body, "toolUse")
    results = blocks_of(body, "toolResult")
    assert [u["input"] for u in uses] == [{"location": "Paris"}, {"timezone": "Europe/Paris"}]
    assert [u["toolUseId"] for u in uses] == [r["toolUseId"] for r in results]
    for u in uses:
        assert TOOL_ID_RE.fullmatch(u["toolUseId"]), u["toolUseId"]
    # both results in one user turn, right after the assistant's
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"], roles


def test_v_image_data_url(vclient, verifier, marker):
    content = [{"type": "text", "text": f"What is this? {marker}"}, {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
    bedrock_call(
        lambda: vclient.chat.completions.create(model=V_CLAUDE, messages=[{"role": "user", "content": content}]),
        verifier,
        marker,
    )
    body = one_verified(verifier, marker, V_CLAUDE)["body"]
    (img,) = blocks_of(body, "image")
    assert img["format"] == "png"
    assert base64.b64decode(img["source"]["bytes"]) == base64.b64decode(PNG_B64)


def test_v_cache_control_on_claude(vclient, verifier, marker):
    eph = {"type": "ephemeral"}
    msgs = [
        {"role": "system", "content": [{"type": "text", "text": f"A long system prompt. {marker}", "cache_control": eph}]},
        {"role": "user", "content": [{"type": "text", "text": "A long document.", "cache_control": eph}, {"type": "text", "text": "Question?"}]},
    ]
    bedrock_call(lambda: vclient.chat.completions.create(model=V_CLAUDE, messages=msgs), verifier, marker)
    body = one_verified(verifier, marker, V_CLAUDE)["body"]
    assert body["system"][0] == {"text": f"A long system prompt. {marker}"}
    assert "cachePoint" in body["system"][1], body["system"]
    content = body["messages"][0]["content"]
    assert content[0] == {"text": "A long document."}
    assert "cachePoint" in content[1], content
    assert content[2] == {"text": "Question?"}


def test_v_reasoning_effort_on_claude(vclient, verifier, marker):
    bedrock_call(
        lambda: vclient.chat.completions.create(model=V_CLAUDE, messages=user(marker), reasoning_effort="low"),
        verifier,
        marker,
    )
    body = one_verified(verifier, marker, V_CLAUDE)["body"]
    extra = body.get("additionalModelRequestFields") or {}
    thinking = extra.get("thinking")
    assert isinstance(thinking, dict) and thinking.get("type") == "enabled", body
    assert thinking["budget_tokens"] >= 1024
    assert body["inferenceConfig"]["maxTokens"] > thinking["budget_tokens"]


def test_v_tool_history_without_tools(vclient, verifier, marker):
    msgs = history_with_tool_calls(marker, ["call_1"]) + [{"role": "user", "content": "Thanks, summarize."}]
    msgs.insert(3, {"role": "assistant", "content": "It is sunny."})
    bedrock_call(lambda: vclient.chat.completions.create(model=V_TOKEN, messages=msgs), verifier, marker)
    body = one_verified(verifier, marker, V_TOKEN)["body"]
    assert body["toolConfig"]["tools"], "history with tool blocks needs a toolConfig"


def test_v_env_credentials(vgw_env, verifier, marker):
    with vgw_env.client() as c:
        bedrock_call(lambda: c.chat.completions.create(model=V_ENV, messages=user(marker)), verifier, marker)
    rec = one_verified(verifier, marker, V_ENV)
    assert rec["headers"].get("x-amz-security-token") == TOKEN_ENV


def test_v_profile_credentials(vgw_env, verifier, marker):
    with vgw_env.client() as c:
        bedrock_call(lambda: c.chat.completions.create(model=V_PROFILE, messages=user(marker)), verifier, marker)
    rec = one_verified(verifier, marker, V_PROFILE)
    assert "x-amz-security-token" not in rec["headers"], "the profile has no session token"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_v_bearer_token(vgw_bearer, verifier, marker, stream):
    with vgw_bearer.client() as c:
        def run():
            r = c.chat.completions.create(model=V_BEARER, messages=user(marker), stream=stream)
            return list(r) if stream else r

        bedrock_call(run, verifier, marker)
    one_verified(verifier, marker, V_BEARER)


def test_v_no_aws_secret_in_responses(vgw, marker):
    with vgw.http() as h:
        r = h.post("/v1/chat/completions", headers=vgw.auth(), json={"model": V_TOKEN, "messages": user(marker)})
        if r.status_code == 501:
            pytest.fail(NOT_YET, pytrace=False)
        assert r.status_code == 200, r.text
        r2 = h.get("/v1/model/info", headers=vgw.auth())
    for s in AWS_SECRETS:
        assert s not in r.text, "an AWS secret leaked into a chat response"
        assert s not in r2.text, "an AWS secret leaked into /v1/model/info"


def test_v_every_request_verified(verifier):
    """Whatever else llmux sent (retries included) passed too."""
    recs = verifier.results()
    if not recs:
        pytest.skip("the verifier received no request (the tests above say why)")
    bad = [r for r in recs if not r.get("ok")]
    assert not bad, f"{len(bad)} of {len(recs)} requests failed:\n" + "\n".join(describe(r) for r in bad[:5])


# ===========================================================================
# Part 2: the openai SDK against `llmux mock`'s Bedrock routes


def upstream(bmock: Mock, marker: str, n: int | None = 1) -> list[dict]:
    recs = [r for r in bmock.requests_with(marker) if str(r["path"]).startswith("/model/")]
    if n is not None:
        assert len(recs) == n, f"expected {n} Bedrock requests carrying {marker}, got {len(recs)}"
    return recs


def one_upstream(bmock: Mock, marker: str) -> dict:
    return upstream(bmock, marker, 1)[0]


def upstream_call(up: dict) -> str:
    """The recorded request's path with the model id decoded (the encoding
    itself is judged by botocore in part 1)."""
    return urllib.parse.unquote(up["path"])


@pytest.mark.parametrize("model,model_id", [(NOVA, NOVA_ID), (CLAUDE, CLAUDE_ID)])
def test_m_plain_chat(mclient, bmock, marker, model, model_id):
    resp = bedrock_call(lambda: mclient.chat.completions.create(model=model, messages=user(marker)))
    assert resp.choices[0].message.content == MOCK_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.object == "chat.completion"
    u = resp.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    up = one_upstream(bmock, marker)
    assert upstream_call(up) == f"/model/{model_id}/converse"
    assert up["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + AKID)
    assert up["body"]["messages"][0] == {"role": "user", "content": [{"text": marker}]}


@pytest.mark.parametrize("model", [NOVA, CLAUDE])
def test_m_streaming_include_usage(mclient, bmock, marker, model):
    text = f"{marker} {tag(content='one two three four', cached_tokens=6, cache_creation_tokens=9)}"

    def run():
        return list(
            mclient.chat.completions.create(
                model=model, messages=user(text), stream=True, stream_options={"include_usage": True}
            )
        )

    chunks = bedrock_call(run)
    got = collect_chat_stream(chunks)
    assert got["text"] == "one two three four"
    assert got["finishes"] == ["stop"]
    last = chunks[-1]
    assert last.choices == [], "the usage chunk must come last with an empty choices array"
    assert all(c.usage is None for c in chunks[:-1])
    u = last.usage
    assert u.completion_tokens == 4
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 6
    extra = u.model_extra or {}
    assert extra.get("cache_read_input_tokens") == 6, extra
    assert extra.get("cache_creation_input_tokens") == 9, extra
    assert u.prompt_tokens >= 6 + 9
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    up = one_upstream(bmock, marker)
    assert up["path"].endswith("/converse-stream")
    assert "stream" not in up["body"] and "stream_options" not in up["body"]


def test_m_split_frames(mclient, marker):
    """Event-stream frames cut across reads are put back together."""
    text = f"{marker} {tag(content='a b c d e', split_frames=True)}"
    chunks = bedrock_call(
        lambda: list(mclient.chat.completions.create(model=NOVA, messages=user(text), stream=True))
    )
    assert collect_chat_stream(chunks)["text"] == "a b c d e"


@pytest.mark.parametrize("model", [NOVA, CLAUDE])
def test_m_parallel_tool_calls_then_results(mclient, bmock, marker, model):
    text = f"Weather and time? {marker} {tag(tool_calls=2)}"
    resp = bedrock_call(lambda: mclient.chat.completions.create(model=model, messages=user(text), tools=TOOLS))
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1].function.arguments) == {"timezone": "mock"}
    assert json.loads(calls[0].function.arguments).get("location") == "mock"
    ids = [c.id for c in calls]
    assert len(set(ids)) == 2 and all(ids)
    up = one_upstream(bmock, marker)
    spec = up["body"]["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "get_weather" and spec["inputSchema"]["json"]["type"] == "object"

    turn2 = marker + "-results"
    history = user(text) + [
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump(exclude_none=True) for c in calls]},
        {"role": "tool", "tool_call_id": ids[0], "content": f"sunny {turn2}"},
        {"role": "tool", "tool_call_id": ids[1], "content": "12:00"},
    ]
    resp2 = bedrock_call(lambda: mclient.chat.completions.create(model=model, messages=history, tools=TOOLS))
    assert resp2.choices[0].message.content == MOCK_TEXT
    assert resp2.choices[0].finish_reason == "stop"
    body = one_upstream(bmock, turn2)["body"]
    uses, results = blocks_of(body, "toolUse"), blocks_of(body, "toolResult")
    assert [u["toolUseId"] for u in uses] == [r["toolUseId"] for r in results]
    assert [r["content"][0]["text"] for r in results] == [f"sunny {turn2}", "12:00"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


@pytest.mark.parametrize("model", [NOVA, CLAUDE])
def test_m_foreign_tool_ids_rewritten(mclient, bmock, marker, model):
    msgs = history_with_tool_calls(marker, ODD_IDS)
    resp = bedrock_call(lambda: mclient.chat.completions.create(model=model, messages=msgs, tools=TOOLS))
    assert resp.choices[0].message.content == MOCK_TEXT
    body = one_upstream(bmock, marker)["body"]
    uses, results = blocks_of(body, "toolUse"), blocks_of(body, "toolResult")
    use_ids = [u["toolUseId"] for u in uses]
    assert use_ids == [r["toolUseId"] for r in results], "toolUse and toolResult ids must be rewritten alike"
    assert len(set(use_ids)) == 2
    for i in use_ids:
        assert TOOL_ID_RE.fullmatch(i), f"{i!r} is not a valid Bedrock toolUseId (pattern, at most 64 chars)"


def test_m_streaming_tool_calls(mclient, marker):
    text = f"{marker} {tag(tool_calls=2)}"
    chunks = bedrock_call(
        lambda: list(
            mclient.chat.completions.create(
                model=CLAUDE, messages=user(text), tools=TOOLS, stream=True, stream_options={"include_usage": True}
            )
        )
    )
    got = collect_chat_stream(chunks)
    assert got["finishes"] == ["tool_calls"]
    assert sorted(got["calls"]) == [0, 1]
    assert [got["calls"][i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert json.loads(got["calls"][1]["arguments"]) == {"timezone": "mock"}
    assert all(got["calls"][i]["id"] for i in (0, 1))
    assert got["usage"] is not None and chunks[-1].choices == []


@pytest.mark.parametrize("stream", [False, True])
def test_m_response_format_json_schema_is_the_answer(mclient, bmock, marker, stream):
    """JSON mode rides on a forced tool; the client gets its input as the
    answer's text, streamed or not, never a tool call it did not offer."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    if stream:
        chunks = bedrock_call(
            lambda: list(
                mclient.chat.completions.create(model=CLAUDE, messages=user(marker), response_format=fmt, stream=True)
            )
        )
        got = collect_chat_stream(chunks)
        text, calls, finish = got["text"], got["calls"], got["finishes"]
    else:
        resp = bedrock_call(
            lambda: mclient.chat.completions.create(model=CLAUDE, messages=user(marker), response_format=fmt)
        )
        choice = resp.choices[0]
        text, calls, finish = choice.message.content, choice.message.tool_calls, [choice.finish_reason]
    assert json.loads(text) == {"name": "mock", "age": 1}
    assert not calls
    assert finish == ["stop"]
    tool = one_upstream(bmock, marker)["body"]["toolConfig"]
    assert tool["tools"][0]["toolSpec"]["inputSchema"]["json"] == schema
    assert tool["toolChoice"] == {"tool": {"name": tool["tools"][0]["toolSpec"]["name"]}}


@pytest.mark.parametrize("model", [NOVA, CLAUDE])
def test_m_image(mclient, bmock, marker, model):
    content = [{"type": "text", "text": f"What is this? {marker}"}, {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
    resp = bedrock_call(
        lambda: mclient.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    (img,) = blocks_of(one_upstream(bmock, marker)["body"], "image")
    assert img["format"] == "png"
    assert base64.b64decode(img["source"]["bytes"]) == base64.b64decode(PNG_B64)


def test_m_https_image_refused_by_default(mclient, bmock, marker):
    """Fetching image URLs is off unless the config enables it: a clear 400,
    and nothing is sent upstream."""
    content = [{"type": "text", "text": marker}, {"type": "image_url", "image_url": {"url": "https://127.0.0.1:1/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as ei:
        bedrock_call(
            lambda: mclient.chat.completions.create(model=NOVA, messages=[{"role": "user", "content": content}])
        )
    assert_openai_error(ei.value.response, 400)
    upstream(bmock, marker, n=0)


def test_m_caching_on_claude(mclient, bmock, marker):
    eph = {"type": "ephemeral"}
    msgs = [
        {"role": "system", "content": [{"type": "text", "text": "Long instructions.", "cache_control": eph}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"Long document {marker} {tag(cached_tokens=40)}", "cache_control": eph},
                {"type": "text", "text": "Question?"},
            ],
        },
    ]
    resp = bedrock_call(lambda: mclient.chat.completions.create(model=CLAUDE, messages=msgs))
    assert resp.usage.prompt_tokens_details.cached_tokens == 40
    body = one_upstream(bmock, marker)["body"]
    assert [("cachePoint" in b) for b in body["system"]] == [False, True]
    assert [("cachePoint" in b) for b in body["messages"][0]["content"]] == [False, True, False]
    assert "cache_control" not in json.dumps(body)


def test_m_reasoning_round_trip_on_claude(mclient, bmock, marker):
    thought = "pondering the weather carefully"
    text = f"{marker} {tag(thinking=thought)}"
    resp = bedrock_call(
        lambda: mclient.chat.completions.create(model=CLAUDE, messages=user(text), reasoning_effort="low")
    )
    msg = resp.choices[0].message
    assert msg.content == MOCK_TEXT
    extra = msg.model_extra or {}
    assert extra.get("reasoning_content") == thought
    blocks = extra.get("thinking_blocks")
    assert isinstance(blocks, list) and len(blocks) == 1, extra
    assert blocks[0]["type"] == "thinking" and blocks[0]["thinking"] == thought
    assert isinstance(blocks[0].get("signature"), str) and blocks[0]["signature"]
    fields = one_upstream(bmock, marker)["body"]["additionalModelRequestFields"]
    assert fields["thinking"]["type"] == "enabled" and fields["thinking"]["budget_tokens"] >= 1024

    turn2 = marker + "-turn2"
    msgs2 = user(text) + [
        {"role": "assistant", "content": msg.content, "thinking_blocks": blocks},
        {"role": "user", "content": f"more {turn2}"},
    ]
    bedrock_call(lambda: mclient.chat.completions.create(model=CLAUDE, messages=msgs2, reasoning_effort="low"))
    up2 = one_upstream(bmock, turn2)["body"]["messages"]
    assert up2[1]["role"] == "assistant"
    assert up2[1]["content"][0] == {
        "reasoningContent": {"reasoningText": {"text": thought, "signature": blocks[0]["signature"]}}
    }
    assert up2[1]["content"][1] == {"text": MOCK_TEXT}


@pytest.mark.parametrize(
    "model,asked,sent",
    [
        (GPT_OSS, "high", {"reasoning_effort": "high"}),
        (GPT_OSS, "minimal", {"reasoning_effort": "low"}),
        (NOVA_2, "medium", {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_m_reasoning_effort_on_gpt_oss_and_nova_2(mclient, bmock, marker, model, asked, sent, stream):
    thought = "weighing the options"
    text = f"{marker} {tag(thinking=thought)}"

    def run():
        return mclient.chat.completions.create(
            model=model, messages=user(text), reasoning_effort=asked, stream=stream
        )

    resp = bedrock_call(run)
    if stream:
        got = collect_chat_stream(list(resp))
        assert got["text"] == MOCK_TEXT
        assert got["reasoning"] == thought
    else:
        msg = resp.choices[0].message
        assert msg.content == MOCK_TEXT
        assert (msg.model_extra or {}).get("reasoning_content") == thought
    assert one_upstream(bmock, marker)["body"]["additionalModelRequestFields"] == sent


def test_m_nova_2_without_reasoning_is_sent_none(mclient, bmock, marker):
    resp = bedrock_call(
        lambda: mclient.chat.completions.create(model=NOVA_2, messages=user(marker), reasoning_effort="none")
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    assert "additionalModelRequestFields" not in one_upstream(bmock, marker)["body"]


def test_m_streaming_reasoning_on_claude(mclient, marker):
    thought = "step by step now"
    text = f"{marker} {tag(thinking=thought, content='done here')}"
    chunks = bedrock_call(
        lambda: list(
            mclient.chat.completions.create(
                model=CLAUDE, messages=user(text), reasoning_effort="low", stream=True, stream_options={"include_usage": True}
            )
        )
    )
    got = collect_chat_stream(chunks)
    assert got["reasoning"] == thought
    assert got["text"] == "done here"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_m_tool_history_without_tools(mclient, bmock, marker):
    # The mock calls any tool it is given unless told not to; a real model
    # would not call a tool it was never offered in this turn either.
    msgs = history_with_tool_calls(marker, ["call_1"]) + [
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": f"Thanks, summarize. {tag(tool_calls=0)}"},
    ]
    resp = bedrock_call(lambda: mclient.chat.completions.create(model=NOVA, messages=msgs))
    assert resp.choices[0].message.content == MOCK_TEXT
    assert resp.choices[0].finish_reason == "stop"
    body = one_upstream(bmock, marker)["body"]
    tools = body["toolConfig"]["tools"]
    assert len(tools) >= 1 and "toolSpec" in tools[0], body["toolConfig"]
    assert "toolChoice" not in body["toolConfig"] or "any" not in body["toolConfig"]["toolChoice"]


@pytest.mark.parametrize(
    "exception", ["throttlingException", "modelStreamErrorException", "serviceUnavailableException"]
)
def test_m_exception_mid_stream_raises(mclient, marker, exception):
    message = f"upstream says stop {marker}"
    text = f"{marker} {tag(content='a b c d e f g h', exception_after=3, exception=exception, message=message)}"
    got: list[Any] = []

    def run():
        for c in mclient.chat.completions.create(
            model=NOVA, messages=user(text), stream=True, stream_options={"include_usage": True}
        ):
            got.append(c)

    with pytest.raises(openai.APIError) as ei:
        bedrock_call(run)
    err = str(ei.value.message)
    assert message in err or exception.replace("Exception", "").lower() in err.lower(), err
    assert got, "no chunk arrived before the exception"
    assert not any(c.usage for c in got), "a truncated stream must not look complete"
    assert not any(c.choices and c.choices[0].finish_reason for c in got)


def test_m_throttling_mid_stream_raw(mgw, marker):
    """The raw SSE: chunks, then an error event last, no [DONE] before it."""
    text = f"{marker} {tag(content='a b c d e f', exception_after=2)}"
    body = {"model": NOVA, "messages": user(text), "stream": True}
    with mgw.http() as h, h.stream("POST", "/v1/chat/completions", headers=mgw.auth(), json=body) as r:
        if r.status_code == 501:
            pytest.fail(NOT_YET, pytrace=False)
        assert r.status_code == 200
        data = [line[len("data:"):].strip() for line in r.iter_lines() if line.startswith("data:")]
    events = [json.loads(d) for d in data if d != "[DONE]"]
    errors = [e for e in events if "error" in e]
    assert errors and events[-1] is errors[-1], data
    assert any(e.get("choices") for e in events[:-1]), "content came before the exception"
    assert_no_secret("\n".join(data))


def test_m_throttling_retried_then_surfaced(mclient, bmock, marker):
    message = f"Too many requests, please wait before trying again. {marker}"
    with pytest.raises(openai.RateLimitError) as ei:
        bedrock_call(
            lambda: mclient.chat.completions.create(model=NOVA, messages=user(f"{marker} {tag(status=429, message=message)}"))
        )
    err = assert_openai_error(ei.value.response, 429)
    assert message in err["message"]
    assert len(upstream(bmock, marker, n=None)) == 3, "num_retries: 2 means three attempts"


def test_m_throttling_retried_then_succeeds(mclient, bmock, marker):
    text = f"{marker} {tag(status=429, fail_times=1, key=marker)}"
    resp = bedrock_call(lambda: mclient.chat.completions.create(model=NOVA, messages=user(text)))
    assert resp.choices[0].message.content == MOCK_TEXT
    assert len(upstream(bmock, marker, n=None)) == 2


def test_m_validation_exception_kept(mclient, bmock, marker):
    message = f"The model returned the following errors: messages.0: bad thing {marker}"
    with pytest.raises(openai.BadRequestError) as ei:
        bedrock_call(
            lambda: mclient.chat.completions.create(model=CLAUDE, messages=user(f"{marker} {tag(status=400, message=message)}"))
        )
    err = assert_openai_error(ei.value.response, 400)
    assert message in err["message"]
    assert len(upstream(bmock, marker, n=None)) == 1, "a 400 is not retried"


@pytest.mark.parametrize(
    "status,error_type,want",
    [
        (403, "AccessDeniedException", 403),
        (404, "ResourceNotFoundException", 404),
        (408, "ModelTimeoutException", 408),
        (503, "ServiceUnavailableException", 503),
        (429, "ModelNotReadyException", 503),
    ],
)
def test_m_error_types_mapped(mclient, marker, status, error_type, want):
    message = f"bedrock says {error_type} {marker}"
    text = f"{marker} {tag(status=status, error_type=error_type, message=message)}"
    with pytest.raises(openai.APIStatusError) as ei:
        bedrock_call(lambda: mclient.chat.completions.create(model=NOVA, messages=user(text)))
    err = assert_openai_error(ei.value.response, want)
    assert message in err["message"]


def test_m_anthropic_messages_in_front_of_bedrock(mgw, bmock, marker):
    with anthropic.Anthropic(base_url=mgw.base, api_key=MASTER_KEY, timeout=CLIENT_TIMEOUT_S, max_retries=0) as c:
        try:
            msg = c.messages.create(model=CLAUDE, max_tokens=256, messages=[{"role": "user", "content": marker}])
        except anthropic.APIStatusError as e:
            if e.status_code == 501:
                pytest.fail(f"{NOT_YET}: {e.message}", pytrace=False)
            raise
    assert msg.content[0].type == "text" and msg.content[0].text == MOCK_TEXT
    assert msg.stop_reason == "end_turn"
    up = one_upstream(bmock, marker)
    assert upstream_call(up) == f"/model/{CLAUDE_ID}/converse"
    assert up["body"]["inferenceConfig"]["maxTokens"] == 256


def test_m_files_of_every_converse_format_and_repeated_names(mclient, bmock, marker):
    """Text, Markdown and Word files become documents Converse takes; a
    name used again later in the conversation (every turn's files are sent
    again) is made unique, or Bedrock refuses the request."""
    def file(mime: str, data: bytes, name: str | None = None) -> dict:
        f = {"file_data": f"data:{mime};base64,{base64.b64encode(data).decode()}"}
        if name:
            f["filename"] = name
        return {"type": "file", "file": f}

    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "read"}, file("text/plain", b"notes"), file(docx, b"PK", "spec.docx")]},
        {"role": "assistant", "content": "Read them."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"and these {marker}"},
                file("text/markdown", b"# H"),
                file(docx, b"PK2", "spec.docx"),
            ],
        },
    ]
    resp = bedrock_call(lambda: mclient.chat.completions.create(model=CLAUDE, messages=msgs))
    assert resp.choices[0].message.content == MOCK_TEXT
    docs = blocks_of(one_upstream(bmock, marker)["body"], "document")
    assert [d["format"] for d in docs] == ["txt", "docx", "md", "docx"]
    names = [d["name"] for d in docs]
    assert len(set(names)) == 4, names


def test_m_cache_point_stays_after_the_marked_message(mclient, bmock, marker):
    """A message marked for caching, then the question as its own message:
    the cache point sits between them, so the marked text is what is cached."""
    eph = {"type": "ephemeral"}
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": f"Long document {marker}", "cache_control": eph}]},
        {"role": "user", "content": "Question?"},
    ]
    bedrock_call(lambda: mclient.chat.completions.create(model=CLAUDE, messages=msgs))
    content = one_upstream(bmock, marker)["body"]["messages"][0]["content"]
    assert [next(iter(b)) for b in content] == ["text", "cachePoint", "text"]
    assert content[0]["text"].startswith("Long document")


@pytest.mark.parametrize("stream", [False, True])
def test_m_json_mode_while_claude_thinks(mclient, bmock, marker, stream):
    """Claude refuses a forced tool while it thinks: JSON mode with
    reasoning offers the JSON tool instead, and the answer is still JSON."""
    fmt = {"type": "json_object"}
    kw = dict(model=CLAUDE, messages=user(marker), response_format=fmt, reasoning_effort="low")
    if stream:
        got = collect_chat_stream(bedrock_call(lambda: list(mclient.chat.completions.create(stream=True, **kw))))
        text, calls = got["text"], got["calls"]
    else:
        resp = bedrock_call(lambda: mclient.chat.completions.create(**kw))
        text, calls = resp.choices[0].message.content, resp.choices[0].message.tool_calls
    assert not calls
    assert isinstance(json.loads(text), dict)
    body = one_upstream(bmock, marker)["body"]
    assert "toolChoice" not in body["toolConfig"]
    assert body["additionalModelRequestFields"]["thinking"]["type"] == "enabled"


def test_m_claude_code_thinking_tool_loop_in_front_of_bedrock(mgw, bmock, marker):
    """Claude Code with thinking on, through the Messages API, to Claude on
    Bedrock: the signed thinking it gets back goes back with the tool result,
    streamed and whole, so the second turn of a tool loop is accepted."""
    tools = [{"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
    thinking = {"type": "enabled", "budget_tokens": 2000}
    with anthropic.Anthropic(base_url=mgw.base, api_key=MASTER_KEY, timeout=CLIENT_TIMEOUT_S, max_retries=0) as c:
        for stream in (False, True):
            first = [{"role": "user", "content": f"read a {marker}"}]
            kw = dict(model=CLAUDE, max_tokens=4000, tools=tools, thinking=thinking)
            if stream:
                with c.messages.stream(messages=first, **kw) as s:
                    msg = s.get_final_message()
            else:
                msg = c.messages.create(messages=first, **kw)
            kinds = [b.type for b in msg.content]
            assert kinds[0] == "thinking" and "tool_use" in kinds, kinds
            assert msg.content[0].signature, "the signature reaches the client"
            call = next(b for b in msg.content if b.type == "tool_use")
            second = first + [
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "A"}]},
            ]
            reply = c.messages.create(messages=second, **kw)
            assert reply.content[-1].type in ("text", "tool_use")
    ups = upstream(bmock, marker, n=None)
    assert len(ups) == 4
    for up in ups:
        assert up["body"]["additionalModelRequestFields"]["thinking"] == thinking, "the budget as the client set it"
    for up in (ups[1], ups[3]):
        asst = up["body"]["messages"][1]["content"]
        assert "reasoningContent" in asst[0] and asst[0]["reasoningContent"]["reasoningText"]["signature"]
