"""Conformance for Google Gemini, against `llmux serve` in front of `llmux mock`:

* the `openai` SDK drives a `gemini/…` (AI Studio) deployment through
  `/v1/chat/completions`: plain and streaming chat, usage, parallel tool calls
  and their results, tool-schema cleaning, `tool_choice`, images, reasoning,
  Gemini 3 thought signatures across turns, `response_format`, unsupported
  parameters, finish reasons, blocked prompts, Google's errors;
* the API key never travels in a URL;
* a `vertex_ai/…` deployment with a service-account key generated here: the
  signed JWT is checked against the test's public key, the access token is
  cached, refreshed before expiry (a mock issuing 3-second tokens), and never
  reaches a client;
* the `anthropic` SDK drives the gemini deployment through `/v1/messages`.

The module starts its own mocks and gateways (their counters, such as
`tokens_issued`, must start from zero), with the process helpers of
conftest.py. The mock is steered with `<mock>{...}</mock>` tags in message
text (docs/mock.md): the tag survives the translation to Gemini's format.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx
import openai
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import (
    CLIENT_TIMEOUT_S,
    MASTER_KEY,
    Mock,
    Proc,
    free_port,
    serve_config,
    start_process,
)
from test_anthropic import A_TOOLS, collect_stream, make_client
from test_openai_sdk import MOCK_TEXT, PNG_DATA_URL, TOOLS, _check_args

GEMINI_KEY = "AIzaSy-gemini-test-secret-0123456789"
FLASH = "gemini-flash"  # gemini/gemini-2.5-flash
FLASH_UPSTREAM = "gemini-2.5-flash"
G3 = "gemini-3-pro"  # gemini/gemini-3-pro-preview: thought signatures enforced
G3_UPSTREAM = "gemini-3-pro-preview"
VERTEX = "vertex-flash"  # vertex_ai/gemini-2.5-flash, credentials from a key file
VERTEX_INLINE = "vertex-inline"  # the same, with the key's JSON inline in the config
VERTEX_PROJECT = "llmux-test-project-42"
VERTEX_LOCATION = "us-central1"
VERTEX_INLINE_LOCATION = "europe-west4"
SA_EMAIL = "llmux-test@llmux-test-project-42.iam.gserviceaccount.com"
SA_KEY_ID = "0123456789abcdef0123456789abcdef01234567"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SKIP_SIGNATURE = "skip_thought_signature_validator"
THINKING_TEXT = "Let me think about this."  # the mock's default thought
THINKING_WORDS = 5

def tag(**directives: Any) -> str:
    """A mock directive to put inside message text."""
    return f"<mock>{json.dumps(directives)}</mock>"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# ===========================================================================
# Processes: a mock, a service-account key, a gateway


@dataclass
class SaKey:
    private_key: rsa.RSAPrivateKey
    token_uri: str
    path: Path
    json_text: str

    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()


def make_service_account(tmp: Path, token_uri: str) -> SaKey:
    """A service-account key file as Google issues it, with a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": VERTEX_PROJECT,
        "private_key_id": SA_KEY_ID,
        "private_key": pem,
        "client_email": SA_EMAIL,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    text = json.dumps(info)
    path = tmp / "service-account.json"
    path.write_text(text)
    return SaKey(private_key=key, token_uri=token_uri, path=path, json_text=text)


def start_mock(name: str, tmp: Path, *extra: str) -> Mock:
    port = free_port()
    proc = start_process(
        name, ["mock", "--host", "127.0.0.1", "--port", str(port), *extra], tmp, port, "/v1/models"
    )
    return Mock(proc)


@dataclass
class GemGateway:
    proc: Proc
    master_key: str
    config_text: str

    @property
    def base(self) -> str:
        return self.proc.base

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base + "/v1", api_key=self.master_key, timeout=CLIENT_TIMEOUT_S, max_retries=0
        )

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=CLIENT_TIMEOUT_S, trust_env=False)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}


def yaml_single_quoted(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def gem_config(mock_base: str, sa: SaKey, *, inline: bool = True) -> str:
    lines = [
        "model_list:",
        f"  - model_name: {FLASH}",
        "    litellm_params:",
        f"      model: gemini/{FLASH_UPSTREAM}",
        f"      api_key: {GEMINI_KEY}",
        f'      api_base: "{mock_base}"',
        f"  - model_name: {G3}",
        "    litellm_params:",
        f"      model: gemini/{G3_UPSTREAM}",
        f"      api_key: {GEMINI_KEY}",
        f'      api_base: "{mock_base}"',
        f"  - model_name: {VERTEX}",
        "    litellm_params:",
        f"      model: vertex_ai/{FLASH_UPSTREAM}",
        f"      vertex_project: {VERTEX_PROJECT}",
        f"      vertex_location: {VERTEX_LOCATION}",
        f'      vertex_credentials: "{sa.path}"',
        f'      api_base: "{mock_base}"',
    ]
    if inline:
        lines += [
            f"  - model_name: {VERTEX_INLINE}",
            "    litellm_params:",
            f"      model: vertex_ai/{FLASH_UPSTREAM}",
            f"      vertex_project: {VERTEX_PROJECT}",
            f"      vertex_location: {VERTEX_INLINE_LOCATION}",
            f"      vertex_credentials: {yaml_single_quoted(sa.json_text)}",
            f'      api_base: "{mock_base}"',
        ]
    lines += [
        "litellm_settings:",
        "  num_retries: 2",
        "general_settings:",
        f"  master_key: {MASTER_KEY}",
    ]
    return "\n".join(lines) + "\n"


def start_gem_gateway(name: str, mock: Mock, sa: SaKey, tmp: Path, **kw: Any) -> GemGateway:
    text = gem_config(mock.base, sa, **kw)
    return GemGateway(proc=serve_config(name, text, tmp), master_key=MASTER_KEY, config_text=text)


@pytest.fixture(scope="module")
def gem_mock(tmp_path_factory) -> Iterator[Mock]:
    m = start_mock("gem-mock", tmp_path_factory.mktemp("gem-mock"))
    try:
        yield m
    finally:
        m.proc.stop()


@pytest.fixture(scope="module")
def sa_key(gem_mock, tmp_path_factory) -> SaKey:
    return make_service_account(tmp_path_factory.mktemp("sa"), gem_mock.base + "/token")


@pytest.fixture(scope="module")
def gem_gateway(gem_mock, sa_key, tmp_path_factory) -> Iterator[GemGateway]:
    gw = start_gem_gateway("gem-gateway", gem_mock, sa_key, tmp_path_factory.mktemp("gem-gateway"))
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture
def gclient(gem_gateway) -> Iterator[openai.OpenAI]:
    with gem_gateway.client() as c:
        yield c


_LOG_FIXTURES = ("gem_gateway", "gem_mock", "fresh_vertex", "short_ttl_vertex")


@pytest.fixture(autouse=True)
def _gem_logs_on_failure(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for name in _LOG_FIXTURES:
            if name in request.fixturenames:
                obj = request.getfixturevalue(name)
                procs = obj if isinstance(obj, tuple) else (obj,)
                for o in procs:
                    p = getattr(o, "proc", None)
                    if p is not None:
                        print(f"\n--- {p.name} log ({p.log_path}) ---\n{p.log_tail(40)}")


def mock_stats(mock: Mock) -> dict:
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        r = h.get(mock.base + "/mock/stats")
    assert r.status_code == 200, r.text
    return r.json()


def gemini_requests(mock: Mock, marker: str) -> list[dict]:
    return [r for r in mock.requests_with(marker) if ":generateContent" in r["path"] or ":streamGenerateContent" in r["path"]]


def one_gemini_request(mock: Mock, marker: str) -> dict:
    found = gemini_requests(mock, marker)
    assert len(found) == 1, f"expected 1 upstream Gemini request carrying {marker!r}, got {len(found)}"
    return found[0]


def assert_error_shape(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert_no_google_secret(resp.text)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    for k in ("message", "type", "param", "code"):
        assert k in err, f"error object lacks {k!r}: {err}"
    assert isinstance(err["message"], str) and err["message"], err
    return err


def assert_no_google_secret(text: str) -> None:
    assert GEMINI_KEY not in text, "the Gemini API key leaked into a response body"
    assert "ya29." not in text, "a Vertex access token leaked into a response body"
    assert "PRIVATE KEY" not in text, "the service-account key leaked into a response body"
    assert MASTER_KEY not in text, "the master key leaked into a response body"


def collect_chat_stream(chunks: list[Any]) -> dict:
    """Rebuild a streamed chat completion (choice 0): text, reasoning, tool
    calls by index, finish reasons, and the usage chunk."""
    text = ""
    reasoning = ""
    calls: dict[int, dict] = {}
    finishes = []
    usage = None
    for c in chunks:
        assert c.object == "chat.completion.chunk"
        if c.usage is not None:
            usage = c.usage
        if not c.choices:
            continue
        ch = c.choices[0]
        if ch.finish_reason:
            finishes.append(ch.finish_reason)
        d = ch.delta
        text += d.content or ""
        reasoning += (d.model_extra or {}).get("reasoning_content") or ""
        for tc in d.tool_calls or []:
            acc = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": "", "psf": None})
            if tc.id:
                assert acc["id"] is None, f"tool call {tc.index} got a second id"
                acc["id"] = tc.id
            if tc.function and tc.function.name:
                acc["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                acc["arguments"] += tc.function.arguments
            psf = (tc.model_extra or {}).get("provider_specific_fields")
            if psf:
                acc["psf"] = psf
    return {
        "text": text,
        "reasoning": reasoning,
        "calls": calls,
        "finishes": finishes,
        "usage": usage,
    }


def psf(call: Any) -> dict:
    """A response tool call's provider_specific_fields (an extra field)."""
    extra = call.model_extra or {}
    return extra.get("provider_specific_fields") or {}


def history_call(call: Any, keep_psf: bool = True) -> dict:
    d = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }
    if keep_psf and psf(call):
        d["provider_specific_fields"] = psf(call)
    return d


def function_calls(content: dict) -> list[dict]:
    return [p for p in content["parts"] if "functionCall" in p]


def function_responses(content: dict) -> list[dict]:
    return [p for p in content["parts"] if "functionResponse" in p]


# ===========================================================================
# 1. gemini/ deployment, the openai SDK


def test_gemini_plain_chat(gclient, gem_mock, marker):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"say hi {marker}"},
        {"role": "user", "content": "and be quick"},  # consecutive user turns: merged
    ]
    resp = gclient.chat.completions.create(
        model=FLASH,
        messages=messages,
        temperature=0.3,
        top_p=0.9,
        max_tokens=99,
        stop=["END"],
        seed=7,
    )
    assert resp.object == "chat.completion"
    assert isinstance(resp.id, str) and resp.id
    assert len(resp.choices) == 1
    ch = resp.choices[0]
    assert ch.message.role == "assistant"
    assert ch.message.content == MOCK_TEXT
    assert ch.finish_reason == "stop"
    assert not ch.message.tool_calls
    u = resp.usage
    assert u.prompt_tokens > 0 and u.completion_tokens == len(MOCK_TEXT.split())
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens

    up = one_gemini_request(gem_mock, marker)
    assert up["method"] == "POST"
    assert up["path"] == f"/v1beta/models/{FLASH_UPSTREAM}:generateContent"
    assert up["headers"].get("x-goog-api-key") == GEMINI_KEY
    assert "authorization" not in up["headers"], up["headers"]
    assert MASTER_KEY not in json.dumps(up["headers"])
    b = up["body"]
    assert b["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    assert [c["role"] for c in b["contents"]] == ["user"]
    assert [p["text"] for p in b["contents"][0]["parts"]] == [f"say hi {marker}", "and be quick"]
    gc = b["generationConfig"]
    assert gc["temperature"] == 0.3
    assert gc["topP"] == 0.9
    assert gc["maxOutputTokens"] == 99
    assert gc["stopSequences"] == ["END"]
    assert gc["seed"] == 7
    assert "model" not in b and "messages" not in b


def test_gemini_multi_turn_roles(gclient, gem_mock, marker):
    messages = [
        {"role": "user", "content": f"first {marker}"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    resp = gclient.chat.completions.create(model=FLASH, messages=messages)
    assert resp.choices[0].message.content == MOCK_TEXT
    b = one_gemini_request(gem_mock, marker)["body"]
    assert [c["role"] for c in b["contents"]] == ["user", "model", "user"]
    assert b["contents"][1]["parts"] == [{"text": "an answer"}]


def test_gemini_streaming_include_usage_cached_and_reasoning_tokens(gclient, gem_mock, marker):
    words = "one two three"
    text = f"{marker} {tag(content=words, cached_tokens=7)}"
    chunks = list(
        gclient.chat.completions.create(
            model=FLASH,
            messages=user(text),
            stream=True,
            stream_options={"include_usage": True},
            reasoning_effort="low",  # thinking on: thoughtsTokenCount reported
        )
    )
    got = collect_chat_stream(chunks)
    assert got["text"] == words
    assert got["reasoning"] == THINKING_TEXT
    assert got["finishes"] == ["stop"]
    last = chunks[-1]
    assert last.choices == [], "the usage chunk must carry an empty choices array"
    assert all(c.usage is None for c in chunks[:-1]), "usage appeared before the final chunk"
    u = last.usage
    assert u is not None
    assert u.prompt_tokens >= 7, "Gemini counts cached tokens in the prompt"
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 7
    assert u.completion_tokens_details is not None
    assert u.completion_tokens_details.reasoning_tokens == THINKING_WORDS
    # Thinking tokens count as completion tokens, as OpenAI counts them.
    assert u.completion_tokens == len(words.split()) + THINKING_WORDS
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens

    up = one_gemini_request(gem_mock, marker)
    assert up["path"] == f"/v1beta/models/{FLASH_UPSTREAM}:streamGenerateContent"
    assert "alt=sse" in (up["query"] or ""), up["query"]
    assert up["headers"].get("x-goog-api-key") == GEMINI_KEY


def test_gemini_streaming_without_include_usage(gclient, marker):
    chunks = list(gclient.chat.completions.create(model=FLASH, messages=user(marker), stream=True))
    assert chunks and all(c.choices for c in chunks), "a usage-only chunk arrived without include_usage"
    assert all(c.usage is None for c in chunks)
    got = collect_chat_stream(chunks)
    assert got["text"] == MOCK_TEXT
    assert got["finishes"] == ["stop"]


def test_gemini_streaming_raw_sse_ends_with_usage_then_done(gem_gateway, marker):
    body = {
        "model": FLASH,
        "messages": user(marker),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with gem_gateway.http() as h, h.stream(
        "POST", "/v1/chat/completions", headers=gem_gateway.auth(), json=body
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data:"):].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    usage_event = json.loads(data[-2])
    assert usage_event["choices"] == []
    assert usage_event["usage"]["prompt_tokens"] > 0
    ids = {json.loads(d)["id"] for d in data[:-1]}
    assert len(ids) == 1, f"chunks of one completion carry different ids: {ids}"
    assert_no_google_secret("\n".join(data))


def test_gemini_non_stream_usage_matches_stream(gclient, marker):
    text = f"{marker} {tag(content='alpha beta', cached_tokens=3)}"
    resp = gclient.chat.completions.create(model=FLASH, messages=user(text), reasoning_effort="low")
    u = resp.usage
    assert u.prompt_tokens_details.cached_tokens == 3
    assert u.completion_tokens_details.reasoning_tokens == THINKING_WORDS
    assert u.completion_tokens == 2 + THINKING_WORDS
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


# ---------------------------------------------------------------------------
# Tools


def test_gemini_parallel_tool_calls_then_results(gclient, gem_mock, marker):
    messages = user(f"weather and time? {marker} {tag(tool_calls=2)}")
    resp = gclient.chat.completions.create(model=FLASH, messages=messages, tools=TOOLS)
    ch = resp.choices[0]
    assert ch.finish_reason == "tool_calls"
    calls = ch.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert all(c.type == "function" for c in calls)
    ids = [c.id for c in calls]
    assert all(isinstance(i, str) and i for i in ids), ids
    assert len(set(ids)) == 2, f"tool-call ids are not unique: {ids}"
    for call, tool in zip(calls, TOOLS):
        _check_args(call, tool)
    up = one_gemini_request(gem_mock, marker)["body"]
    decls = up["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in decls] == ["get_weather", "get_time"]
    assert decls[0]["description"] == "Current weather for a city"
    assert decls[0]["parameters"]["properties"]["location"]["type"].lower() == "string"

    # A second request: ids never repeat across responses either.
    again = gclient.chat.completions.create(model=FLASH, messages=messages, tools=TOOLS)
    assert not set(ids) & {c.id for c in again.choices[0].message.tool_calls}, "ids reused across responses"

    # Second turn: the results, in the calls' order.
    turn2 = marker + "-turn2"
    messages2 = messages + [
        {"role": "assistant", "content": None, "tool_calls": [history_call(c) for c in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": f"12:00 {turn2}"},
    ]
    resp2 = gclient.chat.completions.create(model=FLASH, messages=messages2, tools=TOOLS)
    assert resp2.choices[0].finish_reason == "stop"
    assert resp2.choices[0].message.content == MOCK_TEXT
    assert not resp2.choices[0].message.tool_calls

    contents = one_gemini_request(gem_mock, turn2)["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    fcs = function_calls(contents[1])
    assert [p["functionCall"]["name"] for p in fcs] == ["get_weather", "get_time"]
    assert [p["functionCall"]["args"] for p in fcs] == [json.loads(c.function.arguments) for c in calls]
    frs = function_responses(contents[2])
    assert len(frs) == len(contents[2]["parts"]) == 2
    assert [p["functionResponse"]["name"] for p in frs] == ["get_weather", "get_time"]
    assert "sunny, 21C" in json.dumps(frs[0]["functionResponse"]["response"])
    assert turn2 in json.dumps(frs[1]["functionResponse"]["response"])
    assert all(isinstance(p["functionResponse"]["response"], dict) for p in frs)


def test_gemini_tool_results_out_of_order_matched_by_id(gclient, gem_mock, marker):
    """Results sent in the reverse order of the calls: each functionResponse
    takes the name of the call its tool_call_id points at."""
    messages = user(f"both {marker} {tag(tool_calls=2)}")
    calls = gclient.chat.completions.create(model=FLASH, messages=messages, tools=TOOLS).choices[0].message.tool_calls
    turn2 = marker + "-rev"
    messages2 = messages + [
        {"role": "assistant", "content": None, "tool_calls": [history_call(c) for c in calls]},
        {"role": "tool", "tool_call_id": calls[1].id, "content": f"12:00 {turn2}"},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    resp2 = gclient.chat.completions.create(model=FLASH, messages=messages2, tools=TOOLS)
    assert resp2.choices[0].message.content == MOCK_TEXT
    frs = function_responses(one_gemini_request(gem_mock, turn2)["body"]["contents"][-1])
    assert [p["functionResponse"]["name"] for p in frs] == ["get_time", "get_weather"]
    assert turn2 in json.dumps(frs[0]) and "sunny" in json.dumps(frs[1])


def test_gemini_streaming_parallel_tool_calls(gclient, marker):
    chunks = list(
        gclient.chat.completions.create(
            model=FLASH,
            messages=user(f"{marker} {tag(tool_calls=2)}"),
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    got = collect_chat_stream(chunks)
    assert got["finishes"] == ["tool_calls"]
    calls = got["calls"]
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    ids = [calls[i]["id"] for i in (0, 1)]
    assert all(ids) and len(set(ids)) == 2, ids
    assert json.loads(calls[0]["arguments"]).get("location") == "mock"
    assert json.loads(calls[1]["arguments"]) == {"timezone": "mock"}
    assert got["usage"] is not None and got["usage"].completion_tokens == 20


SCHEMA_TOOL = {
    "type": "function",
    "function": {
        "name": "create_order",
        "description": "Place an order",
        "strict": True,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": False,
            "$defs": {
                "Address": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "city": {"type": "string"},
                        "zip": {"type": "string", "format": "uri"},
                    },
                    "required": ["city"],
                },
                "Item": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string"},
                        "qty": {"type": "integer"},
                    },
                    "required": ["sku", "qty"],
                    "additionalProperties": False,
                },
            },
            "properties": {
                "address": {"$ref": "#/$defs/Address", "description": "Where to ship"},
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "gift": {"type": ["boolean", "null"]},
                "when": {"type": "string", "format": "date-time"},
            },
            "required": ["address", "items", "note", "gift", "when"],
        },
    },
}

_FORBIDDEN_SCHEMA_KEYS = {"$ref", "$defs", "definitions", "additionalProperties", "strict", "$schema"}


def _schema_keys(x: Any) -> set[str]:
    if isinstance(x, dict):
        out = set(x)
        for v in x.values():
            out |= _schema_keys(v)
        return out
    if isinstance(x, list):
        out: set[str] = set()
        for v in x:
            out |= _schema_keys(v)
        return out
    return set()


def _schema_types(x: Any) -> list[str]:
    """Every `type` value in a schema, lower-cased (lists flattened)."""
    out: list[str] = []
    if isinstance(x, dict):
        t = x.get("type")
        for v in t if isinstance(t, list) else [t]:
            if isinstance(v, str):
                out.append(v.lower())
        for k, v in x.items():
            if k not in ("type", "default", "example", "enum"):
                out += _schema_types(v)
    elif isinstance(x, list):
        for v in x:
            out += _schema_types(v)
    return out


def _nullable_of(prop: dict, want: str) -> None:
    """`prop` is `want`-typed and nullable, with no null type left."""
    assert "null" not in _schema_types(prop), f"a null type reached Gemini: {prop}"
    if "anyOf" in prop:
        types = [o.get("type", "").lower() for o in prop["anyOf"]]
        assert types == [want], prop
        assert prop.get("nullable") is True or prop["anyOf"][0].get("nullable") is True, prop
    else:
        assert prop.get("type", "").lower() == want, prop
        assert prop.get("nullable") is True, prop


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gemini_tool_schema_cleaned(gclient, gem_mock, marker, stream):
    resp = gclient.chat.completions.create(
        model=FLASH, messages=user(f"order {marker}"), tools=[SCHEMA_TOOL], stream=stream
    )
    if stream:
        got = collect_chat_stream(list(resp))
        assert got["finishes"] == ["tool_calls"]
        assert [c["name"] for c in got["calls"].values()] == ["create_order"]
        args = json.loads(got["calls"][0]["arguments"])
    else:
        calls = resp.choices[0].message.tool_calls
        assert [c.function.name for c in calls] == ["create_order"]
        args = json.loads(calls[0].function.arguments)
    assert args["address"]["city"] == "mock"
    assert args["items"] == []

    up = one_gemini_request(gem_mock, marker)["body"]
    decl = up["tools"][0]["functionDeclarations"][0]
    assert set(decl) <= {"name", "description", "parameters"}, decl
    params = decl["parameters"]
    leftover = _schema_keys(params) & _FORBIDDEN_SCHEMA_KEYS
    assert not leftover, f"keywords Gemini refuses reached it: {leftover}: {params}"
    props = params["properties"]
    # $ref inlined, its sibling description kept.
    assert props["address"]["type"].lower() == "object"
    assert set(props["address"]["properties"]) == {"city", "zip"}
    assert props["address"]["required"] == ["city"]
    assert props["address"].get("description") == "Where to ship"
    assert "format" not in props["address"]["properties"]["zip"], "an unsupported format was kept"
    assert props["items"]["items"]["properties"]["qty"]["type"].lower() == "integer"
    assert props["when"].get("format") == "date-time"
    _nullable_of(props["note"], "string")
    _nullable_of(props["gift"], "boolean")
    assert params["required"] == ["address", "items", "note", "gift", "when"]


@pytest.mark.parametrize(
    "tool_choice,config,answer",
    [
        ({"type": "function", "function": {"name": "get_time"}}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}, ["get_time"]),
        ("required", {"mode": "ANY"}, ["get_weather"]),
        ("auto", {"mode": "AUTO"}, ["get_weather"]),
        ("none", {"mode": "NONE"}, None),
    ],
    ids=["named", "required", "auto", "none"],
)
def test_gemini_tool_choice(gclient, gem_mock, marker, tool_choice, config, answer):
    resp = gclient.chat.completions.create(
        model=FLASH, messages=user(marker), tools=TOOLS, tool_choice=tool_choice
    )
    msg = resp.choices[0].message
    if answer is None:
        assert not msg.tool_calls and msg.content == MOCK_TEXT
        assert resp.choices[0].finish_reason == "stop"
    else:
        assert [c.function.name for c in msg.tool_calls] == answer
        assert resp.choices[0].finish_reason == "tool_calls"
    up = one_gemini_request(gem_mock, marker)["body"]
    fcc = up["toolConfig"]["functionCallingConfig"]
    assert fcc["mode"].upper() == config["mode"]
    assert fcc.get("allowedFunctionNames") == config.get("allowedFunctionNames")


# ---------------------------------------------------------------------------
# Images


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gemini_images(gclient, gem_mock, marker, stream):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"What is in these images? {marker}"},
                {"type": "image_url", "image_url": {"url": PNG_DATA_URL, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/images/cat.png"}},
            ],
        }
    ]
    resp = gclient.chat.completions.create(model=FLASH, messages=messages, stream=stream)
    text = collect_chat_stream(list(resp))["text"] if stream else resp.choices[0].message.content
    assert text == MOCK_TEXT
    parts = one_gemini_request(gem_mock, marker)["body"]["contents"][0]["parts"]
    assert len(parts) == 3, parts
    assert parts[0] == {"text": f"What is in these images? {marker}"}
    inline = parts[1].get("inlineData") or parts[1].get("inline_data")
    assert inline is not None, parts[1]
    assert inline.get("mimeType", inline.get("mime_type")) == "image/png"
    assert inline["data"] == PNG_DATA_URL.split(",", 1)[1]
    base64.b64decode(inline["data"], validate=True)
    fd = parts[2].get("fileData") or parts[2].get("file_data")
    assert fd is not None, parts[2]
    assert fd.get("fileUri", fd.get("file_uri")) == "https://example.com/images/cat.png"
    assert fd.get("mimeType", fd.get("mime_type")) == "image/png"


# ---------------------------------------------------------------------------
# Reasoning


def test_gemini_reasoning_effort(gclient, gem_mock, marker):
    text = f"{marker} {tag(thinking='Thinking hard about it now')}"
    resp = gclient.chat.completions.create(model=FLASH, messages=user(text), reasoning_effort="low")
    msg = resp.choices[0].message
    assert msg.content == MOCK_TEXT
    assert (msg.model_extra or {}).get("reasoning_content") == "Thinking hard about it now"
    assert resp.usage.completion_tokens_details.reasoning_tokens == 5
    assert resp.usage.completion_tokens == len(MOCK_TEXT.split()) + 5
    tc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]["thinkingConfig"]
    assert tc.get("includeThoughts") is True, tc
    # Gemini 2.5 takes a budget; "low" is a small, non-zero one.
    assert isinstance(tc.get("thinkingBudget"), int) and 0 < tc["thinkingBudget"] <= 4096, tc
    assert "thinkingLevel" not in tc


def test_gemini_3_thinks_least_when_asked_not_to_think(gclient, gem_mock, marker):
    """Gemini 3 cannot stop thinking; without a thinkingConfig it thinks its
    most. `reasoning_effort: none` asks for its least, hidden."""
    resp = gclient.chat.completions.create(model=G3, messages=user(marker), reasoning_effort="none")
    assert resp.choices[0].message.content
    tc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]["thinkingConfig"]
    assert tc == {"thinkingLevel": "low", "includeThoughts": False}, tc


def test_gemini_reasoning_streamed(gclient, marker):
    got = collect_chat_stream(
        list(gclient.chat.completions.create(model=FLASH, messages=user(marker), reasoning_effort="medium", stream=True))
    )
    assert got["reasoning"] == THINKING_TEXT
    assert got["text"] == MOCK_TEXT
    assert got["finishes"] == ["stop"]


def test_gemini_no_reasoning_without_effort(gclient, gem_mock, marker):
    resp = gclient.chat.completions.create(model=FLASH, messages=user(marker))
    assert not (resp.choices[0].message.model_extra or {}).get("reasoning_content")
    gc = one_gemini_request(gem_mock, marker)["body"].get("generationConfig") or {}
    assert "thinkingConfig" not in gc


def test_gemini3_reasoning_effort_is_a_level(gclient, gem_mock, marker):
    resp = gclient.chat.completions.create(model=G3, messages=user(marker), reasoning_effort="low")
    assert resp.choices[0].message.content == MOCK_TEXT
    assert (resp.choices[0].message.model_extra or {}).get("reasoning_content") == THINKING_TEXT
    tc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]["thinkingConfig"]
    assert str(tc.get("thinkingLevel", "")).upper() == "LOW", tc
    assert "thinkingBudget" not in tc


# ---------------------------------------------------------------------------
# Gemini 3: thought signatures across turns


def test_gemini3_thought_signature_round_trip(gclient, gem_mock, marker):
    messages = user(f"weather and time? {marker} {tag(tool_calls=2)}")
    resp = gclient.chat.completions.create(model=G3, messages=messages, tools=TOOLS)
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    sig = psf(calls[0]).get("thought_signature")
    assert isinstance(sig, str) and sig, f"no thought signature on the first call: {calls[0]}"
    base64.b64decode(sig, validate=True)
    assert not psf(calls[1]).get("thought_signature"), "Gemini signs only the first parallel call"

    turn2 = marker + "-turn2"
    messages2 = messages + [
        {"role": "assistant", "content": None, "tool_calls": [history_call(c) for c in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": f"noon {turn2}"},
    ]
    resp2 = gclient.chat.completions.create(model=G3, messages=messages2, tools=TOOLS)
    assert resp2.choices[0].message.content == MOCK_TEXT
    contents = one_gemini_request(gem_mock, turn2)["body"]["contents"]
    fcs = function_calls(contents[1])
    assert fcs[0].get("thoughtSignature") == sig, "the signature was not sent back as it came"
    assert [p["functionCall"]["name"] for p in fcs] == ["get_weather", "get_time"]


def test_gemini3_thought_signature_streamed_round_trip(gclient, gem_mock, marker):
    messages = user(f"weather? {marker}")
    got = collect_chat_stream(
        list(gclient.chat.completions.create(model=G3, messages=messages, tools=TOOLS, stream=True))
    )
    assert got["finishes"] == ["tool_calls"]
    call = got["calls"][0]
    sig = (call["psf"] or {}).get("thought_signature")
    assert isinstance(sig, str) and sig, f"no thought signature on the streamed call: {call}"
    turn2 = marker + "-turn2"
    messages2 = messages + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                    "provider_specific_fields": call["psf"],
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": f"sunny {turn2}"},
    ]
    got2 = collect_chat_stream(
        list(gclient.chat.completions.create(model=G3, messages=messages2, tools=TOOLS, stream=True))
    )
    assert got2["text"] == MOCK_TEXT
    fcs = function_calls(one_gemini_request(gem_mock, turn2)["body"]["contents"][1])
    assert fcs[0].get("thoughtSignature") == sig


def test_gemini3_history_call_without_signature_uses_skip_value(gclient, gem_mock, marker):
    """A tool call that did not come from Gemini (another model, or a client
    that dropped the field) still works: llmux sends Google's skip value."""
    messages = [
        {"role": "user", "content": f"weather? {marker}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_from_elsewhere",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_from_elsewhere", "content": "sunny"},
    ]
    resp = gclient.chat.completions.create(model=G3, messages=messages, tools=TOOLS)
    assert resp.choices[0].message.content == MOCK_TEXT
    contents = one_gemini_request(gem_mock, marker)["body"]["contents"]
    fcs = function_calls(contents[1])
    assert fcs[0]["functionCall"] == {"name": "get_weather", "args": {"location": "Paris"}}
    assert fcs[0].get("thoughtSignature") == SKIP_SIGNATURE


def test_gemini3_client_sent_skip_value_accepted(gclient, gem_mock, marker):
    messages = [
        {"role": "user", "content": f"time? {marker}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"timezone": "UTC"}'},
                    "provider_specific_fields": {"thought_signature": SKIP_SIGNATURE},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
    ]
    resp = gclient.chat.completions.create(model=G3, messages=messages, tools=TOOLS)
    assert resp.choices[0].message.content == MOCK_TEXT
    fcs = function_calls(one_gemini_request(gem_mock, marker)["body"]["contents"][1])
    assert fcs[0].get("thoughtSignature") == SKIP_SIGNATURE


# ---------------------------------------------------------------------------
# response_format


def test_gemini_response_format_json_schema(gclient, gem_mock, marker):
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "city": {"type": "string"},
            "temp": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city", "temp", "tags"],
    }
    resp = gclient.chat.completions.create(
        model=FLASH,
        messages=user(f"weather as JSON {marker}"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "strict": True, "schema": schema},
        },
    )
    data = json.loads(resp.choices[0].message.content)
    assert data == {"city": "mock", "temp": 1, "tags": []}
    gc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]
    assert gc["responseMimeType"] == "application/json"
    rs = gc["responseSchema"]
    assert not _schema_keys(rs) & _FORBIDDEN_SCHEMA_KEYS, rs
    assert set(rs["properties"]) == {"city", "temp", "tags"}
    assert rs["required"] == ["city", "temp", "tags"]


def test_gemini_response_format_json_object(gclient, gem_mock, marker):
    resp = gclient.chat.completions.create(
        model=FLASH, messages=user(f"JSON please {marker}"), response_format={"type": "json_object"}
    )
    assert json.loads(resp.choices[0].message.content) == {}
    gc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]
    assert gc["responseMimeType"] == "application/json"
    assert "responseSchema" not in gc


# ---------------------------------------------------------------------------
# Parameters Gemini cannot honour


def test_gemini_unsupported_param_is_400(gclient, gem_mock, marker):
    with pytest.raises(openai.BadRequestError) as ei:
        gclient.chat.completions.create(model=FLASH, messages=user(marker), logit_bias={"50256": -100})
    err = assert_error_shape(ei.value.response, 400)
    assert "logit_bias" in err["message"]
    assert gemini_requests(gem_mock, marker) == []


def test_gemini_unsupported_param_dropped(gclient, gem_mock, marker):
    resp = gclient.chat.completions.create(
        model=FLASH,
        messages=user(marker),
        logit_bias={"50256": -100},
        extra_body={"drop_params": True},
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    body = json.dumps(one_gemini_request(gem_mock, marker)["body"])
    assert "logit_bias" not in body and "logitBias" not in body
    assert "drop_params" not in body


def test_gemini_n_and_penalties_mapped(gclient, gem_mock, marker):
    resp = gclient.chat.completions.create(
        model=FLASH,
        messages=user(marker),
        n=2,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        max_completion_tokens=50,
    )
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.message.content == MOCK_TEXT for c in resp.choices)
    gc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]
    assert gc["candidateCount"] == 2
    assert gc["presencePenalty"] == 0.5
    assert gc["frequencyPenalty"] == 0.25
    assert gc["maxOutputTokens"] == 50


# ---------------------------------------------------------------------------
# Finish reasons, blocked prompts


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    "reason,finish",
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
    ],
)
def test_gemini_finish_reasons(gclient, marker, reason, finish, stream):
    text = f"{marker} {tag(finish_reason=reason)}"
    if stream:
        got = collect_chat_stream(list(gclient.chat.completions.create(model=FLASH, messages=user(text), stream=True)))
        assert got["finishes"] == [finish]
    else:
        resp = gclient.chat.completions.create(model=FLASH, messages=user(text))
        assert resp.choices[0].finish_reason == finish


def test_gemini_blocked_prompt_is_clear_400(gclient, gem_mock, marker):
    with pytest.raises(openai.BadRequestError) as ei:
        gclient.chat.completions.create(model=FLASH, messages=user(f"{marker} {tag(block_reason='SAFETY')}"))
    err = assert_error_shape(ei.value.response, 400)
    assert "SAFETY" in err["message"] and "block" in err["message"].lower(), err
    # Not a transient failure: no retry.
    assert len(gemini_requests(gem_mock, marker)) == 1


def test_gemini_blocked_prompt_streaming_raises(gclient, marker):
    got = []
    with pytest.raises(openai.APIError) as ei:
        for c in gclient.chat.completions.create(
            model=FLASH, messages=user(f"{marker} {tag(block_reason='PROHIBITED_CONTENT')}"), stream=True
        ):
            got.append(c)
    assert "PROHIBITED_CONTENT" in str(ei.value.message), ei.value
    assert not any(c.choices and c.choices[0].finish_reason == "stop" for c in got)


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"])
def test_gemini_failed_function_call_is_an_error_not_an_empty_stop(gclient, gem_mock, marker, reason):
    """Gemini ending an answer with a function call it could not write, and
    nothing else, is a failure an agent must see, not an empty answer that
    reads as the end of its task: a 502 naming it, retried first (the next
    sample usually works); streamed, an error instead of a finish."""
    text = f"{marker} {tag(finish_reason=reason)}"
    with pytest.raises(openai.APIStatusError) as ei:
        gclient.chat.completions.create(model=FLASH, messages=user(text), tools=TOOLS)
    err = assert_error_shape(ei.value.response, 502)
    assert reason in err["message"], err
    assert len(gemini_requests(gem_mock, marker)) == 3, "num_retries: 2 -> three attempts"
    got = []
    with pytest.raises(openai.APIError) as ei:
        for c in gclient.chat.completions.create(model=FLASH, messages=user(text), tools=TOOLS, stream=True):
            got.append(c)
    assert reason in str(ei.value.message), ei.value
    assert not any(c.choices and c.choices[0].finish_reason for c in got)


# ---------------------------------------------------------------------------
# Google's errors


def test_gemini_429_resource_exhausted_retried_then_kept(gclient, gem_mock, marker):
    message = f"Quota exceeded {marker}"
    with pytest.raises(openai.RateLimitError) as ei:
        gclient.chat.completions.create(
            model=FLASH, messages=user(f"{marker} {tag(status=429, message=message, retry_after=1)}")
        )
    err = assert_error_shape(ei.value.response, 429)
    assert message in err["message"]
    assert ei.value.response.headers.get("retry-after") == "1"
    assert len(gemini_requests(gem_mock, marker)) == 3, "num_retries: 2 -> three attempts"


def test_gemini_429_then_success_after_retry(gclient, gem_mock, marker):
    resp = gclient.chat.completions.create(
        model=FLASH, messages=user(f"{marker} {tag(status=429, fail_times=1, key=marker)}")
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    assert len(gemini_requests(gem_mock, marker)) == 2


def test_gemini_503_unavailable(gclient, gem_mock, marker):
    with pytest.raises(openai.InternalServerError) as ei:
        gclient.chat.completions.create(model=FLASH, messages=user(f"{marker} {tag(status=503)}"))
    err = assert_error_shape(ei.value.response, 503)
    assert "overloaded" in err["message"].lower(), err
    assert len(gemini_requests(gem_mock, marker)) == 3


def test_gemini_400_invalid_argument_message_kept(gclient, gem_mock, marker):
    message = f"Request contains an invalid argument {marker}"
    with pytest.raises(openai.BadRequestError) as ei:
        gclient.chat.completions.create(model=FLASH, messages=user(f"{marker} {tag(status=400, message=message)}"))
    err = assert_error_shape(ei.value.response, 400)
    assert message in err["message"]
    assert len(gemini_requests(gem_mock, marker)) == 1, "a 400 must not be retried"


@pytest.mark.parametrize(
    "status,exc",
    [
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (500, openai.InternalServerError),
        (504, openai.InternalServerError),
    ],
)
def test_gemini_other_google_errors_mapped(gclient, marker, status, exc):
    message = f"google says {status} {marker}"
    with pytest.raises(exc) as ei:
        gclient.chat.completions.create(model=FLASH, messages=user(f"{marker} {tag(status=status, message=message)}"))
    err = assert_error_shape(ei.value.response, status)
    assert message in err["message"]


def test_gemini_real_validation_error_reaches_client(gclient, gem_mock, marker):
    """A real INVALID_ARGUMENT from the upstream's validation (here: a
    function name Gemini refuses) comes back as a 400 with Google's text."""
    bad = {"type": "function", "function": {"name": "9starts-with-digit", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    with pytest.raises(openai.BadRequestError) as ei:
        gclient.chat.completions.create(model=FLASH, messages=user(marker), tools=[bad])
    err = assert_error_shape(ei.value.response, 400)
    assert "9starts-with-digit" in err["message"] or "name" in err["message"], err


@pytest.mark.parametrize("how", ["error_event", "reset"])
def test_gemini_error_mid_stream_raises(gclient, marker, how):
    directive = (
        dict(content="a b c d e f g h", error_event_after=3)
        if how == "error_event"
        else dict(content="a b c d e f g h", reset_after_chunks=3)
    )
    got = []
    with pytest.raises(openai.APIError) as ei:
        for c in gclient.chat.completions.create(
            model=FLASH,
            messages=user(f"{marker} {tag(**directive)}"),
            stream=True,
            stream_options={"include_usage": True},
        ):
            got.append(c)
    if how == "error_event":
        assert "overloaded" in str(ei.value.message).lower(), ei.value
    assert got, "no chunk arrived before the error"
    assert not any(c.usage for c in got), "a truncated stream must not look complete"
    assert not any(c.choices and c.choices[0].finish_reason for c in got)


def test_gemini_error_event_mid_stream_raw(gem_gateway, marker):
    body = {
        "model": FLASH,
        "messages": user(f"{marker} {tag(content='a b c d e f', error_event_after=2, message='boom ' + marker)}"),
        "stream": True,
    }
    with gem_gateway.http() as h, h.stream("POST", "/v1/chat/completions", headers=gem_gateway.auth(), json=body) as r:
        assert r.status_code == 200
        data = [line[len("data:"):].strip() for line in r.iter_lines() if line.startswith("data:")]
    events = [json.loads(d) for d in data if d != "[DONE]"]
    errors = [e for e in events if "error" in e]
    assert errors and events[-1] is errors[-1], data
    assert ("boom " + marker) in errors[-1]["error"]["message"]
    assert_no_google_secret("\n".join(data))


# ===========================================================================
# 2. The API key never travels in a URL


def test_gemini_key_never_in_any_url(gclient, gem_gateway, gem_mock, marker):
    # Make sure every kind of call has happened at least once, then scan all.
    gclient.chat.completions.create(model=FLASH, messages=user(marker))
    list(gclient.chat.completions.create(model=FLASH, messages=user(marker), stream=True))
    list(gclient.chat.completions.create(model=G3, messages=user(marker), tools=TOOLS, stream=True))
    with pytest.raises(openai.RateLimitError):
        gclient.chat.completions.create(model=FLASH, messages=user(f"{marker} {tag(status=429)}"))
    gclient.chat.completions.create(model=VERTEX, messages=user(marker))

    recorded = gem_mock.requests()
    studio = [r for r in recorded if r["path"].startswith("/v1beta/models/")]
    assert len(studio) >= 6, f"too few AI Studio requests recorded: {len(studio)}"
    for r in recorded:
        url = (r["path"] or "") + "?" + (r["query"] or "")
        assert GEMINI_KEY not in url, f"the API key is in a URL: {r['method']} {url}"
        assert GEMINI_KEY not in urllib.parse.unquote(url), f"the API key is in a URL: {url}"
        assert "key=" not in (r["query"] or ""), f"a key parameter in a URL: {url}"
        assert "ya29." not in urllib.parse.unquote(url), f"an access token is in a URL: {url}"
    for r in studio:
        assert r["headers"].get("x-goog-api-key") == GEMINI_KEY, r["headers"]
    for r in recorded:
        if "/projects/" in r["path"]:
            assert "x-goog-api-key" not in r["headers"], "the Gemini key was sent to Vertex"


# ===========================================================================
# 3. vertex_ai/ deployment with a service-account key made here


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def token_requests(mock: Mock) -> list[dict]:
    return [r for r in mock.requests() if r["path"] == "/token"]


def check_assertion(req: dict, sa: SaKey) -> dict:
    """The recorded token request is a valid jwt-bearer grant signed with the
    service account's key; returns the claims."""
    assert req["method"] == "POST"
    ctype = req["headers"].get("content-type", "")
    assert ctype.startswith("application/x-www-form-urlencoded"), ctype
    body = req["body"]
    assert isinstance(body, str), f"the token request body is not a form: {body!r}"
    form = urllib.parse.parse_qs(body, strict_parsing=True)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"], form
    (jwt,) = form["assertion"]
    head_b64, claims_b64, sig_b64 = jwt.split(".")
    header = json.loads(b64url_decode(head_b64))
    claims = json.loads(b64url_decode(claims_b64))
    assert header["alg"] == "RS256", header
    assert header.get("kid") == SA_KEY_ID, header
    try:
        sa.public_key().verify(
            b64url_decode(sig_b64),
            f"{head_b64}.{claims_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        pytest.fail("the JWT's RS256 signature does not verify with the service account's public key")
    assert claims["iss"] == SA_EMAIL
    assert CLOUD_PLATFORM in claims["scope"].split(), claims
    assert claims["aud"] == sa.token_uri
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    assert abs(claims["iat"] - time.time()) < 120, "iat is not now"
    return claims


def vertex_path(location: str, method: str) -> str:
    return (
        f"/v1/projects/{VERTEX_PROJECT}/locations/{location}/publishers/google/models/"
        f"{FLASH_UPSTREAM}:{method}"
    )


def bearer_of(req: dict) -> str:
    auth = req["headers"].get("authorization", "")
    assert auth.startswith("Bearer "), req["headers"]
    return auth[len("Bearer "):]


@pytest.fixture
def fresh_vertex(tmp_path) -> Iterator[tuple[Mock, GemGateway, SaKey]]:
    """A mock and a gateway of the test's own: `tokens_issued` starts at 0."""
    m = start_mock("vertex-mock", tmp_path)
    gw = None
    try:
        sa = make_service_account(tmp_path, m.base + "/token")
        gw = start_gem_gateway("vertex-gateway", m, sa, tmp_path, inline=False)
        yield m, gw, sa
    finally:
        if gw is not None:
            gw.proc.stop()
        m.proc.stop()


@pytest.fixture
def short_ttl_vertex(tmp_path) -> Iterator[tuple[Mock, GemGateway, SaKey]]:
    """A mock issuing 3-second tokens: llmux refreshes them after 2.25 s."""
    m = start_mock("vertex-mock-ttl3", tmp_path, "--token-ttl", "3")
    gw = None
    try:
        sa = make_service_account(tmp_path, m.base + "/token")
        gw = start_gem_gateway("vertex-gateway-ttl3", m, sa, tmp_path, inline=False)
        yield m, gw, sa
    finally:
        if gw is not None:
            gw.proc.stop()
        m.proc.stop()


def test_vertex_plain_chat(gem_gateway, gem_mock, sa_key, marker):
    with gem_gateway.http() as h:
        r = h.post(
            "/v1/chat/completions",
            headers=gem_gateway.auth(),
            json={
                "model": VERTEX,
                "messages": [{"role": "system", "content": "Be brief."}, *user(f"hi {marker}")],
                "max_tokens": 40,
            },
        )
    assert r.status_code == 200, r.text
    assert_no_google_secret(r.text)
    body = r.json()
    assert body["choices"][0]["message"]["content"] == MOCK_TEXT
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] > 0

    up = one_gemini_request(gem_mock, marker)
    assert up["path"] == vertex_path(VERTEX_LOCATION, "generateContent")
    assert bearer_of(up).startswith("ya29.mock-")
    assert "x-goog-api-key" not in up["headers"]
    assert up["body"]["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert up["body"]["generationConfig"]["maxOutputTokens"] == 40
    tokens = token_requests(gem_mock)
    assert tokens, "no token request reached the mock"
    check_assertion(tokens[0], sa_key)


def test_vertex_streaming(gem_gateway, gem_mock, marker):
    text = f"{marker} {tag(content='one two three', cached_tokens=4)}"
    body = {
        "model": VERTEX,
        "messages": user(text),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with gem_gateway.http() as h, h.stream(
        "POST", "/v1/chat/completions", headers=gem_gateway.auth(), json=body
    ) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    raw = "\n".join(lines)
    assert_no_google_secret(raw)
    data = [line[len("data:"):].strip() for line in lines if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == "one two three"
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    up = one_gemini_request(gem_mock, marker)
    assert up["path"] == vertex_path(VERTEX_LOCATION, "streamGenerateContent")
    assert "alt=sse" in (up["query"] or "")
    assert bearer_of(up).startswith("ya29.mock-")


def test_vertex_streaming_openai_sdk_with_tools(gclient, gem_mock, marker):
    got = collect_chat_stream(
        list(
            gclient.chat.completions.create(
                model=VERTEX,
                messages=user(f"{marker} {tag(tool_calls=2)}"),
                tools=TOOLS,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    )
    assert got["finishes"] == ["tool_calls"]
    assert [got["calls"][i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert got["usage"] is not None


def test_vertex_inline_json_credentials(gclient, gem_mock, marker):
    resp = gclient.chat.completions.create(model=VERTEX_INLINE, messages=user(marker))
    assert resp.choices[0].message.content == MOCK_TEXT
    up = one_gemini_request(gem_mock, marker)
    assert up["path"] == vertex_path(VERTEX_INLINE_LOCATION, "generateContent")
    assert bearer_of(up).startswith("ya29.mock-")


def test_vertex_errors_mapped_without_token(gem_gateway, gem_mock, marker):
    message = f"vertex quota {marker}"
    with gem_gateway.http() as h:
        r = h.post(
            "/v1/chat/completions",
            headers=gem_gateway.auth(),
            json={"model": VERTEX, "messages": user(f"{marker} {tag(status=400, message=message)}")},
        )
    err = assert_error_shape(r, 400)
    assert message in err["message"]


def test_vertex_token_exchange_and_reuse(fresh_vertex, marker):
    mock, gw, sa = fresh_vertex
    assert mock_stats(mock)["tokens_issued"] == 0
    with gw.client() as c:
        # Concurrent first calls: one token request, not a stampede.
        errors: list[BaseException] = []

        def call(i: int) -> None:
            try:
                r = c.chat.completions.create(model=VERTEX, messages=user(f"{marker}-c{i}"))
                assert r.choices[0].message.content == MOCK_TEXT
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in threads), "a concurrent call hung"
        assert not errors, errors
        for i in range(3):
            r = c.chat.completions.create(model=VERTEX, messages=user(f"{marker}-s{i}"))
            assert r.choices[0].message.content == MOCK_TEXT
        list(c.chat.completions.create(model=VERTEX, messages=user(f"{marker}-stream"), stream=True))
    assert mock_stats(mock)["tokens_issued"] == 1, "the access token was not reused"
    tokens = token_requests(mock)
    assert len(tokens) == 1
    check_assertion(tokens[0], sa)
    chats = gemini_requests(mock, marker)
    assert len(chats) == 8
    assert {bearer_of(r) for r in chats} == {"ya29.mock-1"}
    for r in chats:
        assert r["path"].startswith(f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/")


def test_vertex_token_refreshed_before_expiry(short_ttl_vertex, marker):
    """3-second tokens: refreshed once less than a quarter of their life
    (0.75 s) is left, so a call 2.6 s after the first gets a new token; and
    calls keep working across expiries."""
    mock, gw, sa = short_ttl_vertex
    start = time.monotonic()
    with gw.client() as c:

        def ok(tag_: str) -> None:
            r = c.chat.completions.create(model=VERTEX, messages=user(f"{marker}-{tag_}"))
            assert r.choices[0].message.content == MOCK_TEXT

        ok("a")
        ok("b")  # well within the first token's life: reused
        assert mock_stats(mock)["tokens_issued"] == 1
        time.sleep(2.6)  # past the refresh point (2.25 s), before expiry (3 s)
        ok("c")
        assert mock_stats(mock)["tokens_issued"] == 2, "the token was not refreshed before expiry"
        ok("d")
        assert mock_stats(mock)["tokens_issued"] == 2
        time.sleep(3.3)  # past the second token's expiry
        got = collect_chat_stream(
            list(c.chat.completions.create(model=VERTEX, messages=user(f"{marker}-e"), stream=True))
        )
        assert got["text"] == MOCK_TEXT
        assert mock_stats(mock)["tokens_issued"] == 3
    assert time.monotonic() - start < 30
    by = {m: bearer_of(gemini_requests(mock, f"{marker}-{m}")[0]) for m in "abcde"}
    assert by["a"] == by["b"] == "ya29.mock-1"
    assert by["c"] == by["d"] == "ya29.mock-2"
    assert by["e"] == "ya29.mock-3"
    for t in token_requests(mock):
        check_assertion(t, sa)


# ===========================================================================
# 4. /v1/messages (the anthropic SDK) in front of the gemini deployment


@pytest.fixture
def aclient(gem_gateway):
    with make_client(gem_gateway) as c:
        yield c


def test_messages_plain_gemini(aclient, gem_mock, marker):
    msg = aclient.messages.create(
        model=FLASH,
        max_tokens=100,
        system="You are terse.",
        messages=user(f"say hi {marker}"),
        stop_sequences=["END"],
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == MOCK_TEXT
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    up = one_gemini_request(gem_mock, marker)
    assert up["path"] == f"/v1beta/models/{FLASH_UPSTREAM}:generateContent"
    assert up["headers"].get("x-goog-api-key") == GEMINI_KEY
    b = up["body"]
    assert b["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    assert b["generationConfig"]["maxOutputTokens"] == 100
    assert b["generationConfig"]["stopSequences"] == ["END"]


def test_messages_gateway_fields_steer_llmux_and_go_no_further(aclient, gem_mock, marker):
    # LiteLLM's per-request num_retries and drop_params are the gateway's:
    # honoured on the Messages route in front of a translated model, never
    # refused as unsupported by the model, never sent to Google.
    msg = aclient.messages.create(
        model=FLASH,
        max_tokens=50,
        messages=user(f"hi {marker}"),
        extra_body={"drop_params": False, "num_retries": 1},
    )
    assert msg.content[0].text == MOCK_TEXT
    body = one_gemini_request(gem_mock, marker)["body"]
    assert "drop_params" not in json.dumps(body) and "num_retries" not in json.dumps(body)

    busy = f"busy {marker}"
    with pytest.raises(anthropic.RateLimitError):
        aclient.messages.create(
            model=FLASH,
            max_tokens=50,
            messages=user(f"{busy} {tag(status=429, message='quota', retry_after=1)}"),
            extra_body={"num_retries": 0},
        )
    assert len(gemini_requests(gem_mock, busy)) == 1, "num_retries: 0 in the body -> one attempt"

    # A retry sends the same request again, read afresh from the client's body.
    again = f"again {marker}"
    msg = aclient.messages.create(
        model=FLASH,
        max_tokens=50,
        system="be brief",
        messages=user(f"{again} {tag(status=429, fail_times=1, key=again)}"),
    )
    assert msg.content[0].text == MOCK_TEXT
    tries = gemini_requests(gem_mock, again)
    assert len(tries) == 2 and tries[0]["body"] == tries[1]["body"]
    assert tries[1]["body"]["systemInstruction"]["parts"] == [{"text": "be brief"}]


def test_messages_stream_gemini_text(aclient, marker):
    with aclient.messages.stream(
        model=FLASH, max_tokens=64, messages=user(f"{marker} {tag(content='alpha beta gamma')}")
    ) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == "alpha beta gamma"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_messages_stream_gemini_tool_call(aclient, gem_mock, marker):
    events = list(
        aclient.messages.create(
            model=FLASH,
            max_tokens=256,
            messages=user(f"weather and time? {marker} {tag(tool_calls=2)}"),
            tools=A_TOOLS,
            stream=True,
        )
    )
    blocks, start, delta = collect_stream(events)
    assert [(b["type"], b["name"]) for b in blocks] == [("tool_use", "get_weather"), ("tool_use", "get_time")]
    ids = [b["id"] for b in blocks]
    assert all(ids) and len(set(ids)) == 2, ids
    assert blocks[0]["input"].get("location") == "mock"
    assert blocks[1]["input"] == {"timezone": "mock"}
    assert delta.delta.stop_reason == "tool_use"
    decls = one_gemini_request(gem_mock, marker)["body"]["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in decls] == ["get_weather", "get_time"]

    # Second turn with the results, through the Messages API.
    turn2 = marker + "-turn2"
    messages2 = user(f"weather and time? {marker}") + [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": b["id"], "name": b["name"], "input": b["input"]} for b in blocks],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": ids[0], "content": "sunny"},
                {"type": "tool_result", "tool_use_id": ids[1], "content": [{"type": "text", "text": f"noon {turn2}"}]},
            ],
        },
    ]
    with aclient.messages.stream(model=FLASH, max_tokens=256, messages=messages2, tools=A_TOOLS) as s:
        final = s.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == MOCK_TEXT
    contents = one_gemini_request(gem_mock, turn2)["body"]["contents"]
    assert [p["functionResponse"]["name"] for p in function_responses(contents[-1])] == ["get_weather", "get_time"]


def test_messages_gemini_error_in_anthropic_shape(gem_gateway, marker):
    with gem_gateway.http() as h:
        r = h.post(
            "/v1/messages",
            headers={**gem_gateway.auth(), "anthropic-version": "2023-06-01"},
            json={
                "model": FLASH,
                "max_tokens": 64,
                "messages": user(f"{marker} {tag(status=400, message='bad thing ' + marker)}"),
            },
        )
    assert r.status_code == 400, r.text
    body = r.json()
    assert body.get("type") == "error" and ("bad thing " + marker) in body["error"]["message"], body
    assert_no_google_secret(r.text)


# ===========================================================================
# More of what clients send


def _declaration_for(gclient, gem_mock, marker, tool) -> tuple[Any, dict]:
    resp = gclient.chat.completions.create(model=FLASH, messages=user(f"go {marker}"), tools=[tool])
    decl = one_gemini_request(gem_mock, marker)["body"]["tools"][0]["functionDeclarations"][0]
    return resp, decl


def test_gemini_schema_optional_model_ref_with_null(gclient, gem_mock, marker):
    """Pydantic's `Optional[Model]`: `anyOf: [{"$ref": …}, {"type": "null"}]`."""
    tool = {
        "type": "function",
        "function": {
            "name": "save",
            "parameters": {
                "type": "object",
                "definitions": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
                "properties": {
                    "pet": {"anyOf": [{"$ref": "#/definitions/Pet"}, {"type": "null"}], "default": None},
                    "kind": {"type": "string", "enum": ["cat", "dog"]},
                },
                "required": ["kind"],
            },
        },
    }
    resp, decl = _declaration_for(gclient, gem_mock, marker, tool)
    assert resp.choices[0].message.tool_calls[0].function.name == "save"
    props = decl["parameters"]["properties"]
    assert not _schema_keys(decl) & _FORBIDDEN_SCHEMA_KEYS, decl
    _nullable_of(props["pet"], "object")
    assert props["kind"]["enum"] == ["cat", "dog"]


@pytest.mark.parametrize(
    "prop",
    [
        # MCP servers send these (integer enums: Gemini's enum is strings only).
        {"type": "integer", "enum": [1, 2, 3]},
        # Valid JSON Schema; Gemini wants `items` on every array.
        {"type": "array"},
        {"type": "string", "const": "fast"},
        {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        {"type": "object", "properties": {"x": {"type": "string"}}, "patternProperties": {"^a": {"type": "string"}}},
    ],
    ids=["integer-enum", "array-without-items", "const", "oneOf", "patternProperties"],
)
def test_gemini_schema_other_keywords_gemini_refuses(gclient, gem_mock, marker, prop):
    """JSON Schema Gemini's Schema cannot take must still reach it in a form
    it accepts (the mock answers 400 as Google does otherwise)."""
    tool = {
        "type": "function",
        "function": {
            "name": "set_level",
            "parameters": {"type": "object", "properties": {"value": prop, "name": {"type": "string"}}, "required": ["name"]},
        },
    }
    resp, decl = _declaration_for(gclient, gem_mock, marker, tool)
    assert resp.choices[0].message.tool_calls[0].function.name == "set_level"
    assert not _schema_keys(decl) & {"const", "oneOf", "patternProperties"}, decl


def test_gemini_tool_without_parameters(gclient, gem_mock, marker):
    tool = {"type": "function", "function": {"name": "ping", "description": "Ping", "parameters": {"type": "object", "properties": {}}}}
    resp, decl = _declaration_for(gclient, gem_mock, marker, tool)
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "ping" and json.loads(call.function.arguments) == {}
    assert decl["name"] == "ping"


def test_gemini_pdf_file_part_and_developer_role(gclient, gem_mock, marker):
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    messages = [
        {"role": "developer", "content": "Be precise."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"summarize {marker}"},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
            ],
        },
    ]
    resp = gclient.chat.completions.create(model=FLASH, messages=messages)
    assert resp.choices[0].message.content == MOCK_TEXT
    b = one_gemini_request(gem_mock, marker)["body"]
    assert b["systemInstruction"]["parts"] == [{"text": "Be precise."}]
    assert b["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "application/pdf", "data": pdf}}


def test_gemini_tool_result_as_text_parts(gclient, gem_mock, marker):
    messages = [
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": '{"timezone":"UTC"}'}}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": f"noon {marker}"}]},
    ]
    resp = gclient.chat.completions.create(model=FLASH, messages=messages, tools=TOOLS)
    assert resp.choices[0].message.content == MOCK_TEXT
    contents = one_gemini_request(gem_mock, marker)["body"]["contents"]
    assert contents[1]["parts"][0] == {"text": "Checking."}
    assert function_calls(contents[1])[0]["functionCall"] == {"name": "get_time", "args": {"timezone": "UTC"}}
    fr = function_responses(contents[2])[0]["functionResponse"]
    assert fr["name"] == "get_time" and f"noon {marker}" in json.dumps(fr["response"])


def test_gemini3_sequential_steps_each_keep_their_signature(gclient, gem_mock, marker):
    """user → call A → result → call B → result: each step's call goes back
    with its own signature (the mock checks every step of the current turn).
    The mock makes one step per request, so B comes from a second request."""
    messages = user(f"plan {marker}")
    a = gclient.chat.completions.create(model=G3, messages=messages, tools=TOOLS).choices[0].message.tool_calls[0]
    b = gclient.chat.completions.create(
        model=G3,
        messages=user(f"again {marker}-b"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    ).choices[0].message.tool_calls[0]
    sig_a, sig_b = psf(a).get("thought_signature"), psf(b).get("thought_signature")
    assert sig_a and sig_b and sig_a != sig_b, (sig_a, sig_b)
    history = messages + [
        {"role": "assistant", "content": None, "tool_calls": [history_call(a)]},
        {"role": "tool", "tool_call_id": a.id, "content": "sunny"},
        {"role": "assistant", "content": None, "tool_calls": [history_call(b)]},
        {"role": "tool", "tool_call_id": b.id, "content": f"noon {marker}-s3"},
    ]
    r = gclient.chat.completions.create(model=G3, messages=history, tools=TOOLS)
    assert r.choices[0].message.content == MOCK_TEXT
    contents = one_gemini_request(gem_mock, f"{marker}-s3")["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    sigs = [function_calls(c)[0].get("thoughtSignature") for c in contents if c["role"] == "model"]
    assert sigs == [sig_a, sig_b]


def test_messages_thinking_on_gemini(aclient, gem_mock, marker):
    msg = aclient.messages.create(
        model=FLASH,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user(f"think {marker}"),
    )
    types = [b.type for b in msg.content]
    assert types == ["thinking", "text"], types
    assert msg.content[0].thinking == THINKING_TEXT
    assert msg.content[1].text == MOCK_TEXT
    tc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]["thinkingConfig"]
    assert tc.get("thinkingBudget") == 1024 and tc.get("includeThoughts") is True, tc


@pytest.mark.parametrize("how", ["unreachable", "rejects"])
def test_vertex_token_exchange_failure_is_clear_error(tmp_path, marker, how):
    """The token exchange fails (nothing listens at token_uri, or the token
    endpoint refuses the JWT: here its audience, as the query is not part of
    the URL the mock expects): a clear error naming the authentication step,
    no secret, and no call to the model."""
    m = start_mock(f"vertex-mock-{how}", tmp_path)
    gw = None
    try:
        token_uri = (
            f"http://127.0.0.1:{free_port()}/token" if how == "unreachable" else m.base + "/token?aud=x"
        )
        sa = make_service_account(tmp_path, token_uri)
        gw = start_gem_gateway(f"vertex-gateway-{how}", m, sa, tmp_path, inline=False)
        with gw.http() as h:
            r = h.post("/v1/chat/completions", headers=gw.auth(), json={"model": VERTEX, "messages": user(marker)})
        assert r.status_code in (401, 500, 502, 503), r.text
        err = assert_error_shape(r, r.status_code)
        msg = err["message"].lower()
        assert "token" in msg or "auth" in msg or "credential" in msg, (
            f"the error does not say the Vertex token exchange failed: {err}"
        )
        assert gemini_requests(m, marker) == []
    finally:
        if gw is not None:
            gw.proc.stop()
        m.proc.stop()


def test_messages_gemini3_tool_round_trip(aclient, gem_mock, marker):
    """Claude Code in front of Gemini 3: tool_use blocks come back without any
    Gemini field, and the next turn must still pass the signature check."""
    first = user(f"weather? {marker}")
    msg = aclient.messages.create(model=G3, max_tokens=256, messages=first, tools=A_TOOLS)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather"]
    turn2 = marker + "-turn2"
    messages2 = first + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": f"sunny {turn2}"}]},
    ]
    msg2 = aclient.messages.create(model=G3, max_tokens=256, messages=messages2, tools=A_TOOLS)
    assert msg2.stop_reason == "end_turn"
    assert msg2.content[-1].text == MOCK_TEXT
    fcs = function_calls(one_gemini_request(gem_mock, turn2)["body"]["contents"][1])
    assert fcs and fcs[0].get("thoughtSignature"), fcs


def test_messages_thinking_history_on_gemini(aclient, gem_mock, marker):
    """A thinking block from an earlier answer, sent back as Claude Code does."""
    first = user(f"think {marker}")
    msg = aclient.messages.create(
        model=FLASH, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024}, messages=first
    )
    turn2 = marker + "-turn2"
    messages2 = first + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": f"and now? {turn2}"},
    ]
    msg2 = aclient.messages.create(
        model=FLASH, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024}, messages=messages2
    )
    assert msg2.content[-1].text == MOCK_TEXT
    contents = one_gemini_request(gem_mock, turn2)["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert {"text": MOCK_TEXT} in contents[1]["parts"]


def test_no_secret_in_gateway_log(gem_gateway, gclient, marker):
    """After everything above, the gateway's log holds no credential."""
    gclient.chat.completions.create(model=VERTEX, messages=user(marker))
    log = gem_gateway.proc.log_path.read_text(errors="replace")
    assert GEMINI_KEY not in log, "the Gemini API key is in the gateway's log"
    assert "ya29." not in log, "a Vertex access token is in the gateway's log"
    assert "PRIVATE KEY" not in log, "the service-account key is in the gateway's log"


def test_vertex_credentials_from_environment(tmp_path, monkeypatch, marker):
    """No vertex_credentials nor vertex_project in the config: the key file
    from GOOGLE_APPLICATION_CREDENTIALS, the project from its project_id, the
    default location us-central1."""
    m = start_mock("vertex-mock-env", tmp_path)
    gw = None
    try:
        sa = make_service_account(tmp_path, m.base + "/token")
        config = tmp_path / "env.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {VERTEX}\n"
            "    litellm_params:\n"
            f"      model: vertex_ai/{FLASH_UPSTREAM}\n"
            f'      api_base: "{m.base}"\n'
            f"general_settings:\n  master_key: {MASTER_KEY}\n"
        )
        for var in ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT", "VERTEXAI_LOCATION", "VERTEX_LOCATION"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa.path))
        port = free_port()
        proc = start_process(
            "vertex-gateway-env",
            ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            tmp_path,
            port,
            "/health/liveliness",
        )
        gw = GemGateway(proc=proc, master_key=MASTER_KEY, config_text=config.read_text())
        with gw.client() as c:
            resp = c.chat.completions.create(model=VERTEX, messages=user(marker))
        assert resp.choices[0].message.content == MOCK_TEXT
        up = one_gemini_request(m, marker)
        assert up["path"] == vertex_path("us-central1", "generateContent")
        (tok,) = token_requests(m)
        check_assertion(tok, sa)
    finally:
        if gw is not None:
            gw.proc.stop()
        m.proc.stop()


@pytest.mark.parametrize(
    "extra,config",
    [
        ({"top_k": 40}, {"topK": 40}),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
    ],
    ids=["top_k", "stop-string"],
)
def test_gemini_more_generation_params(gclient, gem_mock, marker, extra, config):
    resp = gclient.chat.completions.create(model=FLASH, messages=user(marker), extra_body=extra)
    assert resp.choices[0].message.content == MOCK_TEXT
    gc = one_gemini_request(gem_mock, marker)["body"]["generationConfig"]
    for k, v in config.items():
        assert gc.get(k) == v, gc


def test_gemini_safety_settings_passed_through(gclient, gem_mock, marker):
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    resp = gclient.chat.completions.create(
        model=FLASH, messages=user(marker), extra_body={"safety_settings": settings}
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    assert one_gemini_request(gem_mock, marker)["body"]["safetySettings"] == settings


@pytest.mark.parametrize("model", [FLASH, VERTEX])
def test_gemini_stream_is_not_buffered(gclient, marker, model):
    words = "one two three four five six seven eight"
    start = time.monotonic()
    arrivals = []
    text = ""
    for c in gclient.chat.completions.create(
        model=model, messages=user(f"{marker} {tag(content=words, tokens_per_sec=8)}"), stream=True
    ):
        if c.choices and c.choices[0].delta.content:
            text += c.choices[0].delta.content
            arrivals.append(time.monotonic() - start)
    assert text == words
    assert len(arrivals) >= 3, arrivals
    assert arrivals[-1] - arrivals[0] >= 0.3, f"chunks arrived together (buffered?): {arrivals}"


def test_gemini_client_hangup_cancels_upstream_stream(gclient, gem_mock, marker):
    before = mock_stats(gem_mock)["streams_cancelled"]
    words = " ".join(f"w{i}" for i in range(40))
    stream = gclient.chat.completions.create(
        model=FLASH, messages=user(f"{marker} {tag(content=words, tokens_per_sec=10)}"), stream=True
    )
    for c in stream:
        if c.choices and c.choices[0].delta.content:
            break
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and mock_stats(gem_mock)["streams_cancelled"] <= before:
        time.sleep(0.05)
    assert mock_stats(gem_mock)["streams_cancelled"] > before, "the upstream stream was not cancelled"


# ===========================================================================
# Grounding with Google Search


MOCK_SEARCH_URI = "https://example.com/llmux-mock"


@pytest.mark.parametrize("how", ["tool", "web_search_options"])
def test_gemini_google_search_grounding(gclient, gem_mock, marker, how):
    """Gemini's own search tool as LiteLLM users write it
    (`tools=[{"googleSearch": {}}]`), or OpenAI's `web_search_options`:
    sent as Google Search; the answer's grounding comes back as LiteLLM's
    `vertex_ai_grounding_metadata`, its searches counted in usage."""
    ask = {"tools": [{"googleSearch": {}}]} if how == "tool" else {"web_search_options": {}}
    resp = gclient.chat.completions.create(model=FLASH, messages=user(f"who won {marker}"), **ask)
    assert resp.choices[0].message.content == MOCK_TEXT
    assert not resp.choices[0].message.tool_calls
    (g,) = resp.model_extra["vertex_ai_grounding_metadata"]
    assert g["webSearchQueries"] == [f"who won {marker}"]
    assert g["groundingChunks"][0]["web"]["uri"] == MOCK_SEARCH_URI
    assert g["groundingSupports"][0]["segment"]["text"] == MOCK_TEXT
    assert resp.model_extra["vertex_ai_safety_results"] == []
    assert resp.usage.model_extra["server_tool_use"] == {"web_search_requests": 1}
    raw = gclient.chat.completions.with_raw_response.create(
        model=FLASH, messages=user(f"again {marker}"), **ask
    )
    # Grounding is not priced by the catalog: the cost is the tokens'.
    u = raw.parse().usage
    info = gclient.get("/model/info", cast_to=httpx.Response).json()
    (entry,) = [e for e in info["data"] if e["model_name"] == FLASH]
    mi = entry["model_info"]
    assert mi["supports_web_search"] is True and mi["search_context_cost_per_query"] is None
    tokens = u.prompt_tokens * mi["input_cost_per_token"] + u.completion_tokens * mi["output_cost_per_token"]
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(tokens, abs=1e-9)
    body = gemini_requests(gem_mock, marker)[0]["body"]
    assert body["tools"] == [{"googleSearch": {}}]
    assert "web_search_options" not in body


def test_gemini_google_search_grounding_streamed(gclient, gem_mock, marker):
    stream = gclient.chat.completions.create(
        model=FLASH, messages=user(f"search {marker}"), stream=True,
        stream_options={"include_usage": True},
        tools=[{"google_search": {}}],
    )
    text, grounding, usage = "", [], None
    for chunk in stream:
        text += "".join(c.delta.content or "" for c in chunk.choices)
        if chunk.model_extra.get("vertex_ai_grounding_metadata"):
            grounding += chunk.model_extra["vertex_ai_grounding_metadata"]
        usage = chunk.usage or usage
    assert text == MOCK_TEXT
    (g,) = grounding
    assert g["webSearchQueries"] == [f"search {marker}"]
    assert usage.model_extra["server_tool_use"] == {"web_search_requests": 1}
    assert one_gemini_request(gem_mock, marker)["body"]["tools"] == [{"google_search": {}}]


def test_gemini_foreign_tool_type_is_a_clear_400(gclient, gem_mock, marker):
    with pytest.raises(openai.BadRequestError) as ei:
        gclient.chat.completions.create(
            model=FLASH, messages=user(marker),
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    err = assert_error_shape(ei.value.response, 400)
    assert "web_search_20250305" in err["message"] and err["param"] == "tools[0]"
    assert gemini_requests(gem_mock, marker) == []
