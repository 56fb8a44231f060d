"""Conformance for Anthropic's formats, against `llmux serve` in front of `llmux mock`:

* the official `anthropic` SDK drives `/v1/messages` and `/v1/messages/count_tokens`,
  as Claude Code does, against a Claude deployment (`claude-sonnet-4`: passed
  through) and an OpenAI-compatible one (`gpt-4o`: translated both ways);
* the `openai` SDK drives the Claude deployment through `/v1/chat/completions`
  (tools, parallel tool results, images, Roo Code-style `cache_control`,
  reasoning, streaming, parameters Anthropic lacks).

The mock is steered with `<mock>{...}</mock>` tags in message text (see
docs/mock.md): the tag survives every translation, and Anthropic bodies cannot
carry a `mock` field.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from conftest import (
    ANTHROPIC_KEY,
    CLIENT_TIMEOUT_S,
    MASTER_KEY,
    UPSTREAM_KEY,
    assert_no_secret,
    assert_openai_error,
)
from test_openai_sdk import MOCK_TEXT, PNG_DATA_URL, TOOLS, _check_args

CLAUDE = "claude-sonnet-4"  # anthropic/claude-sonnet-4-20250514 at the mock
CLAUDE_UPSTREAM = "claude-sonnet-4-20250514"
GPT = "gpt-4o"  # openai/gpt-4o at the mock
THINKING_TEXT = "Let me think about this."
ANTHROPIC_VERSION = "2023-06-01"
SDK_ANTHROPIC_VERSION = anthropic._constants.ANTHROPIC_API_VERSION  # the SDK's default header

# The same two tools as test_openai_sdk.TOOLS, in Anthropic's shape.
A_TOOLS = [
    {
        "name": t["function"]["name"],
        "description": t["function"]["description"],
        "input_schema": t["function"]["parameters"],
    }
    for t in TOOLS
]


def tag(**directives: Any) -> str:
    """A mock directive to put inside message text."""
    return f"<mock>{json.dumps(directives)}</mock>"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def make_client(gateway, **kw: Any) -> anthropic.Anthropic:
    if "auth_token" not in kw and "api_key" not in kw:
        kw["api_key"] = gateway.master_key or "dummy-key"
    return anthropic.Anthropic(
        base_url=gateway.base, timeout=CLIENT_TIMEOUT_S, max_retries=0, **kw
    )


@pytest.fixture
def aclient(gateway):
    with make_client(gateway) as c:
        yield c


def assert_anthropic_error(resp: httpx.Response, status: int, err_type: str | None = None) -> dict:
    """The response has `status` and Anthropic's error shape
    `{"type": "error", "error": {"type", "message"}}`, and no secret."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert_no_secret(resp.text)
    body = resp.json()
    assert isinstance(body, dict) and body.get("type") == "error", body
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("type"), str) and err["type"], body
    assert isinstance(err.get("message"), str) and err["message"], body
    if err_type is not None:
        assert err["type"] == err_type, body
    return err


def assert_upstream_auth_is_deployments(up: dict) -> None:
    """The upstream Claude call carries the deployment's key, never the client's."""
    h = up["headers"]
    assert h.get("x-api-key") == ANTHROPIC_KEY, h
    assert MASTER_KEY not in json.dumps(h), "the client's key was forwarded upstream"
    assert "authorization" not in h or ANTHROPIC_KEY in h["authorization"], h


def collect_stream(events: list[Any]) -> tuple[list[dict], Any, Any]:
    """Check the Messages stream grammar and rebuild its content blocks.

    message_start, (ping), per block content_block_start / _delta* / _stop with
    consecutive indexes and no interleaving, message_delta, message_stop.
    Returns (blocks, message_start.message, message_delta).
    """
    types = [e.type for e in events]
    assert types and types[0] == "message_start", types
    assert types[-1] == "message_stop", types
    assert types[-2] == "message_delta", types
    assert types.count("message_start") == 1 and types.count("message_delta") == 1, types
    blocks: list[dict] = []
    open_index = None
    for e in events[1:-2]:
        if e.type == "ping":
            continue
        if e.type == "content_block_start":
            assert open_index is None, f"block {e.index} started inside block {open_index}: {types}"
            assert e.index == len(blocks), f"block index {e.index}, expected {len(blocks)}: {types}"
            blocks.append(e.content_block.model_dump(exclude_none=True))
            open_index = e.index
        elif e.type == "content_block_delta":
            assert e.index == open_index, f"delta for block {e.index} while {open_index} is open"
            d = e.delta
            b = blocks[-1]
            if d.type == "text_delta":
                assert b["type"] == "text", (b, d)
                b["text"] += d.text
            elif d.type == "input_json_delta":
                assert b["type"] == "tool_use", (b, d)
                b["_json"] = b.get("_json", "") + d.partial_json
            elif d.type == "thinking_delta":
                assert b["type"] == "thinking", (b, d)
                b["thinking"] += d.thinking
            elif d.type == "signature_delta":
                assert b["type"] == "thinking", (b, d)
                b["signature"] = b.get("signature", "") + d.signature
            else:
                pytest.fail(f"unexpected delta {d!r}")
        elif e.type == "content_block_stop":
            assert e.index == open_index, f"stop for block {e.index} while {open_index} is open"
            open_index = None
        else:
            pytest.fail(f"unexpected event {e.type!r} inside the message: {types}")
    assert open_index is None, f"block {open_index} never stopped: {types}"
    for b in blocks:
        if b["type"] == "tool_use" and "_json" in b:
            b["input"] = json.loads(b.pop("_json"))
    return blocks, events[0].message, events[-2]


def count_cache_control(x: Any) -> int:
    if isinstance(x, dict):
        own = 1 if x.get("cache_control") is not None else 0
        return own + sum(count_cache_control(v) for k, v in x.items() if k != "cache_control")
    if isinstance(x, list):
        return sum(count_cache_control(v) for v in x)
    return 0


def cache_control_paths(x: Any, path: str = "") -> list[str]:
    out = []
    if isinstance(x, dict):
        if x.get("cache_control") is not None:
            out.append(path or "/")
        for k, v in x.items():
            if k != "cache_control":
                out += cache_control_paths(v, f"{path}/{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += cache_control_paths(v, f"{path}/{i}")
    return out


def replay_input_tokens(mock, up: dict) -> int:
    """What the mock reports as `input_tokens` for this exact upstream body
    (it counts body bytes / 4): the body replayed to the mock directly."""
    with httpx.Client(timeout=CLIENT_TIMEOUT_S, trust_env=False) as h:
        r = h.post(
            mock.base + "/v1/messages",
            headers={
                "x-api-key": "replay",
                "anthropic-version": ANTHROPIC_VERSION,
                "content-type": "application/json",
            },
            content=json.dumps(up["body"], separators=(",", ":"), ensure_ascii=False).encode(),
        )
    assert r.status_code == 200, r.text
    return r.json()["usage"]["input_tokens"]


# ===========================================================================
# 1a. The anthropic SDK on /v1/messages, Claude deployment: pass-through


def test_messages_plain_claude(aclient, mock, marker):
    msg = aclient.messages.create(
        model=CLAUDE,
        max_tokens=256,
        system="You are terse.",
        messages=user(f"say hi {marker}"),
        metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.5},  # not a create() argument in this SDK major
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert isinstance(msg.id, str) and msg.id
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == MOCK_TEXT
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0

    up = mock.one_request_with(marker)
    assert up["method"] == "POST"
    assert up["path"] == "/v1/messages"
    assert_upstream_auth_is_deployments(up)
    # The version the SDK sent, as it sent it.
    assert up["headers"].get("anthropic-version") == SDK_ANTHROPIC_VERSION
    # Pass-through: only the model id changes.
    assert up["body"] == {
        "model": CLAUDE_UPSTREAM,
        "max_tokens": 256,
        "system": "You are terse.",
        "messages": user(f"say hi {marker}"),
        "temperature": 0.5,
        "metadata": {"user_id": "u-1"},
    }


def test_messages_auth_token_like_claude_code(gateway, mock, marker):
    """ANTHROPIC_AUTH_TOKEN: the SDK sends `Authorization: Bearer <token>`."""
    with make_client(gateway, auth_token=MASTER_KEY) as c:
        msg = c.messages.create(model=CLAUDE, max_tokens=64, messages=user(marker))
    assert msg.content[0].text == MOCK_TEXT
    assert_upstream_auth_is_deployments(mock.one_request_with(marker))


def test_messages_x_api_key_and_beta_query_like_claude_code(gateway, mock, marker):
    """ANTHROPIC_API_KEY: Claude Code sends `x-api-key`, to `/v1/messages?beta=true`."""
    with gateway.http() as h:
        r = h.post(
            "/v1/messages?beta=true",
            headers={"x-api-key": MASTER_KEY, "anthropic-version": ANTHROPIC_VERSION},
            json={"model": CLAUDE, "max_tokens": 64, "messages": user(marker)},
        )
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == MOCK_TEXT
    assert_no_secret(r.text)
    assert_upstream_auth_is_deployments(mock.one_request_with(marker))


def test_messages_default_anthropic_version_added(gateway, mock, marker):
    """A client that sends no `anthropic-version` (curl) still gets an answer:
    the upstream requires the header."""
    with gateway.http() as h:
        r = h.post(
            "/v1/messages",
            headers=gateway.auth(),
            json={"model": CLAUDE, "max_tokens": 64, "messages": user(marker)},
        )
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == MOCK_TEXT
    assert mock.one_request_with(marker)["headers"].get("anthropic-version") == ANTHROPIC_VERSION


def test_messages_without_v1_prefix(gateway, mock, marker):
    with gateway.http() as h:
        r = h.post(
            "/messages",
            headers={**gateway.auth(), "anthropic-version": ANTHROPIC_VERSION},
            json={"model": CLAUDE, "max_tokens": 64, "messages": user(marker)},
        )
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == MOCK_TEXT


def test_messages_version_and_beta_headers_forwarded(aclient, mock, marker):
    betas = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    version = "2023-01-01"  # not the SDK's default nor the gateway's
    msg = aclient.messages.create(
        model=CLAUDE,
        max_tokens=64,
        messages=user(marker),
        extra_headers={"anthropic-beta": betas, "anthropic-version": version},
    )
    assert msg.content[0].text == MOCK_TEXT
    up = mock.one_request_with(marker)
    assert up["headers"].get("anthropic-version") == version
    assert up["headers"].get("anthropic-beta") == betas
    assert_upstream_auth_is_deployments(up)


def test_messages_stream_helper_claude(aclient, mock, marker):
    text = f"{marker} {tag(cached_tokens=5, cache_creation_tokens=7, content='one two three four')}"
    with aclient.messages.stream(model=CLAUDE, max_tokens=128, messages=user(text)) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == "one two three four"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == "one two three four"
    assert final.stop_reason == "end_turn"
    u = final.usage
    assert u.input_tokens > 0
    assert u.output_tokens == 4
    assert u.cache_read_input_tokens == 5
    assert u.cache_creation_input_tokens == 7
    up = mock.one_request_with(marker)
    assert up["body"]["stream"] is True
    assert_upstream_auth_is_deployments(up)


def test_messages_create_stream_claude_event_order(aclient, marker):
    text = f"{marker} {tag(cached_tokens=5, cache_creation_tokens=7)}"
    events = list(aclient.messages.create(model=CLAUDE, max_tokens=128, messages=user(text), stream=True))
    blocks, start, delta = collect_stream(events)
    assert blocks == [{"type": "text", "text": MOCK_TEXT}]
    assert start.usage.input_tokens > 0
    assert start.usage.cache_read_input_tokens == 5
    assert start.usage.cache_creation_input_tokens == 7
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens > 0


def test_messages_stream_raw_sse_relayed_claude(gateway, marker):
    """The wire format reaching Claude Code: `event:` + `data:` pairs, as Anthropic sends them."""
    body = {"model": CLAUDE, "max_tokens": 64, "stream": True, "messages": user(marker)}
    with gateway.http() as h, h.stream(
        "POST",
        "/v1/messages",
        headers={**gateway.auth(), "anthropic-version": ANTHROPIC_VERSION},
        json=body,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.strip()]
    names = [line[len("event:"):].strip() for line in lines if line.startswith("event:")]
    datas = [json.loads(line[len("data:"):]) for line in lines if line.startswith("data:")]
    assert len(names) == len(datas)
    assert [d["type"] for d in datas] == names
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "ping" in names, "the upstream's ping must be relayed too"
    assert_no_secret("\n".join(lines))


def test_messages_tools_two_turns_claude(aclient, mock, marker):
    messages = user(f"weather and time? {marker} {tag(tool_calls=2)}")
    msg = aclient.messages.create(model=CLAUDE, max_tokens=256, messages=messages, tools=A_TOOLS)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [u.id for u in uses] == ["toolu_mock_0", "toolu_mock_1"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert isinstance(uses[0].input, dict) and uses[0].input.get("location") == "mock"
    assert uses[1].input == {"timezone": "mock"}
    up = mock.one_request_with(marker)
    assert up["body"]["tools"] == A_TOOLS

    turn2 = marker + "-turn2"
    messages2 = messages + [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": u.id, "name": u.name, "input": u.input} for u in uses
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_mock_0", "content": "sunny, 21C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_mock_1",
                    "content": [{"type": "text", "text": f"12:00 {turn2}"}],
                },
            ],
        },
    ]
    msg2 = aclient.messages.create(model=CLAUDE, max_tokens=256, messages=messages2, tools=A_TOOLS)
    assert msg2.stop_reason == "end_turn"
    assert [b.type for b in msg2.content] == ["text"]
    assert msg2.content[0].text == MOCK_TEXT
    assert mock.one_request_with(turn2)["body"]["messages"] == messages2


def test_messages_tools_stream_claude(aclient, marker):
    with aclient.messages.stream(
        model=CLAUDE, max_tokens=256, messages=user(marker), tools=A_TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
    ) as s:
        events = list(s)
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name, b.input) for b in final.content] == [
        ("tool_use", "toolu_mock_0", "get_time", {"timezone": "mock"})
    ]
    assert any(e.type == "input_json" for e in events), "no input_json_delta reached the SDK"


def test_messages_thinking_round_trip_claude(aclient, mock, marker):
    text = f"think {marker} {tag(redacted_thinking=True)}"
    msg = aclient.messages.create(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user(text),
    )
    assert [b.type for b in msg.content] == ["thinking", "redacted_thinking", "text"]
    th, red, txt = msg.content
    assert th.thinking == THINKING_TEXT
    assert isinstance(th.signature, str) and th.signature
    assert isinstance(red.data, str) and red.data
    assert txt.text == MOCK_TEXT
    assert mock.one_request_with(marker)["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}

    turn2 = marker + "-turn2"
    assistant_content = [
        {"type": "thinking", "thinking": th.thinking, "signature": th.signature},
        {"type": "redacted_thinking", "data": red.data},
        {"type": "text", "text": txt.text},
    ]
    messages2 = user(text) + [
        {"role": "assistant", "content": assistant_content},
        {"role": "user", "content": f"and now? {turn2}"},
    ]
    msg2 = aclient.messages.create(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=messages2,
    )
    assert msg2.content[-1].text == MOCK_TEXT
    up2 = mock.one_request_with(turn2)["body"]
    assert up2["messages"][1]["content"] == assistant_content, "thinking blocks changed on the way"


def test_messages_thinking_stream_claude(aclient, marker):
    text = f"{marker} {tag(thinking='first second third')}"
    events = list(
        aclient.messages.create(
            model=CLAUDE,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=user(text),
            stream=True,
        )
    )
    blocks, _, delta = collect_stream(events)
    assert [b["type"] for b in blocks] == ["thinking", "text"]
    assert blocks[0]["thinking"] == "first second third"
    assert blocks[0]["signature"]
    assert blocks[1]["text"] == MOCK_TEXT
    assert delta.delta.stop_reason == "end_turn"


def test_count_tokens_claude_calls_upstream(aclient, mock, marker):
    res = aclient.messages.count_tokens(
        model=CLAUDE, system="sys", messages=user(f"count me {marker}"), tools=A_TOOLS
    )
    assert isinstance(res.input_tokens, int) and res.input_tokens > 0
    up = mock.one_request_with(marker)
    assert up["path"] == "/v1/messages/count_tokens"
    assert up["body"]["model"] == CLAUDE_UPSTREAM
    assert up["body"]["tools"] == A_TOOLS
    assert_upstream_auth_is_deployments(up)


def test_messages_529_overloaded_claude(aclient, mock, marker):
    message = f"Overloaded right now {marker}"
    with pytest.raises(anthropic.InternalServerError) as ei:
        aclient.messages.create(
            model=CLAUDE, max_tokens=64, messages=user(f"{marker} {tag(status=529, message=message)}")
        )
    assert ei.value.status_code in (503, 529), ei.value.status_code
    err = assert_anthropic_error(ei.value.response, ei.value.status_code)
    assert message in err["message"], "the upstream's message must reach the client"
    assert err["type"] == "overloaded_error", err
    # Retryable: the first try and num_retries: 2 more.
    assert len(mock.requests_with(marker)) == 3


def test_messages_rate_limit_keeps_status_and_retry_after_claude(aclient, marker):
    message = f"slow down {marker}"
    with pytest.raises(anthropic.RateLimitError) as ei:
        aclient.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=user(f"{marker} {tag(status=429, message=message, retry_after=1)}"),
        )
    err = assert_anthropic_error(ei.value.response, 429, "rate_limit_error")
    assert message in err["message"]
    assert ei.value.response.headers.get("retry-after") == "1"


def test_messages_upstream_400_kept_claude(aclient, mock, marker):
    """Claude's own validation errors reach the client as Claude said them."""
    with pytest.raises(anthropic.BadRequestError) as ei:
        aclient.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=[{"role": "assistant", "content": "I start"}, {"role": "user", "content": marker}],
        )
    err = assert_anthropic_error(ei.value.response, 400, "invalid_request_error")
    assert "user" in err["message"], err
    assert len(mock.requests_with(marker)) == 1, "a 400 must not be retried"


@pytest.mark.parametrize("how", ["create", "stream_helper"])
def test_messages_error_event_mid_stream_raises_claude(aclient, marker, how):
    message = f"Overloaded mid-stream {marker}"
    text = f"{marker} {tag(content='a b c d e f g h', error_event_after=4, message=message)}"
    got = []
    with pytest.raises(anthropic.APIError) as ei:
        if how == "create":
            for e in aclient.messages.create(model=CLAUDE, max_tokens=64, messages=user(text), stream=True):
                got.append(e.type)
        else:
            with aclient.messages.stream(model=CLAUDE, max_tokens=64, messages=user(text)) as s:
                for e in s:
                    got.append(e.type)
                s.get_final_message()
    assert message in str(ei.value), str(ei.value)
    assert "message_stop" not in got, f"a truncated stream looked complete: {got}"


def test_messages_missing_key_is_401_anthropic_shape(gateway, mock, marker):
    with gateway.http() as h:
        for path in ("/v1/messages", "/messages", "/v1/messages/count_tokens"):
            r = h.post(
                path,
                headers={"anthropic-version": ANTHROPIC_VERSION},
                json={"model": CLAUDE, "max_tokens": 64, "messages": user(marker)},
            )
            assert_anthropic_error(r, 401, "authentication_error")
    assert mock.requests_with(marker) == []


def test_messages_wrong_key_is_401_sdk(gateway, mock, marker):
    for kw in ({"api_key": "sk-wrong"}, {"auth_token": "sk-wrong"}):
        with make_client(gateway, **kw) as c:
            with pytest.raises(anthropic.AuthenticationError) as ei:
                c.messages.create(model=CLAUDE, max_tokens=64, messages=user(marker))
        assert_anthropic_error(ei.value.response, 401, "authentication_error")
    assert mock.requests_with(marker) == []


def test_messages_unknown_model_is_404_anthropic_shape(aclient, mock, marker):
    with pytest.raises(anthropic.NotFoundError) as ei:
        aclient.messages.create(model="no-such-model-xyz", max_tokens=64, messages=user(marker))
    err = assert_anthropic_error(ei.value.response, 404, "not_found_error")
    assert "no-such-model-xyz" in err["message"]
    with pytest.raises(anthropic.NotFoundError) as ei:
        aclient.messages.count_tokens(model="no-such-model-xyz", messages=user(marker))
    assert_anthropic_error(ei.value.response, 404, "not_found_error")
    assert mock.requests_with(marker) == []


def test_messages_malformed_json_is_400_anthropic_shape(gateway):
    with gateway.http() as h:
        r = h.post(
            "/v1/messages",
            headers={**gateway.auth(), "content-type": "application/json"},
            content=b'{"model": "claude-sonnet-4", "messages": [',
        )
    assert_anthropic_error(r, 400, "invalid_request_error")


# ===========================================================================
# 1b. The anthropic SDK on /v1/messages, OpenAI-compatible deployment: translated


def test_messages_plain_translated(aclient, mock, marker):
    msg = aclient.messages.create(
        model=GPT,
        max_tokens=100,
        system="You are terse.",
        messages=user(f"say hi {marker}"),
        stop_sequences=["END"],
        extra_body={"temperature": 0.5},
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.id and msg.model == GPT
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == MOCK_TEXT
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0

    up = mock.one_request_with(marker)
    assert up["path"] == "/v1/chat/completions"
    assert up["headers"].get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert MASTER_KEY not in json.dumps(up["headers"])
    b = up["body"]
    assert b["model"] == "gpt-4o"
    assert b["messages"][0]["role"] == "system"
    sys_content = b["messages"][0]["content"]
    sys_text = sys_content if isinstance(sys_content, str) else "".join(p["text"] for p in sys_content)
    assert sys_text == "You are terse."
    assert b["messages"][1]["role"] == "user"
    assert marker in json.dumps(b["messages"][1]["content"])
    assert b.get("max_tokens", b.get("max_completion_tokens")) == 100
    assert b["temperature"] == 0.5
    assert b["stop"] in (["END"], "END")


@pytest.mark.parametrize(
    "path, model, auth",
    [("/v1/messages", GPT, "x-api-key"), ("/v1/chat/completions", CLAUDE, "authorization")],
)
def test_translated_request_is_the_same_whichever_member_comes_first(gateway, mock, marker, path, model, auth):
    # A body with `model` first is read typed at once; one with `messages`
    # first (as the anthropic Python SDK and the openai one before version 3
    # write it) is scanned for its model, then read typed. Both reach the
    # upstream alike, and get the same errors.
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        auth: MASTER_KEY if auth == "x-api-key" else f"Bearer {MASTER_KEY}",
    }
    content = [{"type": "text", "text": 'fix "this"\n\tplease'}, {"type": "text", "text": "now"}]
    if path == "/v1/messages":
        content = [{"type": "text", "text": 'fix "this"\n\tplease', "cache_control": {"type": "ephemeral"}}]
    sent = []
    with gateway.http() as h:
        for order in ("model-first", "messages-first"):
            m = f"{marker}-{order}"
            fields = {
                "model": model,
                "messages": [{"role": "user", "content": [{"type": "text", "text": m}] + content}],
                "max_tokens": 64,
                "temperature": 0.25,
                "num_retries": 0,
            }
            if order == "messages-first":
                fields = {"messages": fields.pop("messages"), **fields}
            r = h.post(path, headers=headers, content=json.dumps(fields))
            assert r.status_code == 200, r.text
            body = json.dumps(mock.one_request_with(m)["body"])
            sent.append(body.replace(m, "MARK"))

            bad = {"model": model, "messages": "hi"}
            if order == "messages-first":
                bad = {"messages": "hi", "model": model}
            r = h.post(path, headers=headers, content=json.dumps(bad))
            assert r.status_code == 400 and "`messages` must be an array" in r.text, r.text
    assert sent[0] == sent[1]
    assert "num_retries" not in sent[0]


def test_messages_stream_translated_event_sequence(aclient, mock, marker):
    text = f"{marker} {tag(content='alpha beta gamma')}"
    events = list(aclient.messages.create(model=GPT, max_tokens=64, messages=user(text), stream=True))
    blocks, start, delta = collect_stream(events)
    assert blocks == [{"type": "text", "text": "alpha beta gamma"}]
    assert start.role == "assistant" and start.model == GPT
    assert start.content == []
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens > 0, "message_delta must carry the upstream's usage"
    up = mock.one_request_with(marker)["body"]
    assert up["stream"] is True


def test_messages_stream_helper_translated(aclient, marker):
    with aclient.messages.stream(model=GPT, max_tokens=64, messages=user(marker)) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == MOCK_TEXT
    assert final.content[0].text == MOCK_TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_messages_tools_two_turns_translated(aclient, mock, marker):
    messages = user(f"weather and time? {marker} {tag(tool_calls=2)}")
    msg = aclient.messages.create(model=GPT, max_tokens=256, messages=messages, tools=A_TOOLS)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [u.id for u in uses] == ["call_mock_0", "call_mock_1"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    for u in uses:
        assert isinstance(u.input, dict), u
    assert uses[0].input.get("location") == "mock"
    assert uses[1].input == {"timezone": "mock"}
    up = mock.one_request_with(marker)["body"]
    assert [t["type"] for t in up["tools"]] == ["function", "function"]
    assert [t["function"]["name"] for t in up["tools"]] == ["get_weather", "get_time"]
    assert up["tools"][0]["function"]["parameters"] == A_TOOLS[0]["input_schema"]

    turn2 = marker + "-turn2"
    messages2 = messages + [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Checking."}]
            + [{"type": "tool_use", "id": u.id, "name": u.name, "input": u.input} for u in uses],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_mock_0", "content": "sunny, 21C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_mock_1",
                    "content": [{"type": "text", "text": f"12:00 {turn2}"}],
                },
            ],
        },
    ]
    msg2 = aclient.messages.create(model=GPT, max_tokens=256, messages=messages2, tools=A_TOOLS)
    assert msg2.stop_reason == "end_turn"
    assert msg2.content[0].text == MOCK_TEXT
    up2 = mock.one_request_with(turn2)["body"]["messages"]
    assistant = [m for m in up2 if m["role"] == "assistant"]
    assert len(assistant) == 1
    calls = assistant[0]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_mock_0", "call_mock_1"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [u.input for u in uses]
    tool_msgs = [m for m in up2 if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["call_mock_0", "call_mock_1"]
    assert json.dumps(tool_msgs[0]["content"]).count("sunny, 21C") == 1
    assert turn2 in json.dumps(tool_msgs[1]["content"])
    # The tool results follow the assistant turn directly.
    i = up2.index(assistant[0])
    assert up2[i + 1 : i + 3] == tool_msgs


def test_messages_tools_stream_translated(aclient, marker):
    text = f"{marker} {tag(tool_calls=2)}"
    events = list(
        aclient.messages.create(model=GPT, max_tokens=256, messages=user(text), tools=A_TOOLS, stream=True)
    )
    blocks, _, delta = collect_stream(events)
    assert [(b["type"], b["id"], b["name"]) for b in blocks] == [
        ("tool_use", "call_mock_0", "get_weather"),
        ("tool_use", "call_mock_1", "get_time"),
    ]
    assert blocks[0]["input"].get("location") == "mock"
    assert blocks[1]["input"] == {"timezone": "mock"}
    assert delta.delta.stop_reason == "tool_use"


def test_messages_system_role_inside_messages_accepted(aclient, mock, marker):
    msg = aclient.messages.create(
        model=GPT,
        max_tokens=64,
        messages=[
            {"role": "system", "content": f"Be brief {marker}"},
            {"role": "user", "content": "hi"},
        ],
    )
    assert msg.content[0].text == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]["messages"]
    assert up[0]["role"] == "system"
    assert up[-1]["role"] == "user"


def test_messages_system_role_inside_messages_claude(aclient, mock, marker):
    """Also in front of Claude, which refuses the role: llmux moves it to `system`."""
    msg = aclient.messages.create(
        model=CLAUDE,
        max_tokens=64,
        system="Rule one.",
        messages=[
            {"role": "system", "content": f"Be brief {marker}"},
            {"role": "user", "content": "hi"},
        ],
    )
    assert msg.content[0].text == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]
    assert [m["role"] for m in up["messages"]] == ["user"]
    assert [b["text"] for b in up["system"]] == ["Rule one.", f"Be brief {marker}"]


def test_count_tokens_translated_is_local_estimate(aclient, mock, marker):
    raw = aclient.messages.with_raw_response.count_tokens(
        model=GPT, system="sys", messages=user(f"count these words please {marker}"), tools=A_TOOLS
    )
    assert raw.headers.get("x-llmux-token-count") == "estimate"
    res = raw.parse()
    assert isinstance(res.input_tokens, int) and res.input_tokens > 0
    assert mock.requests_with(marker) == [], "an estimate must not call the upstream"
    bigger = aclient.messages.count_tokens(
        model=GPT, messages=user(f"count these words please {marker} " + "more words " * 50)
    )
    assert bigger.input_tokens > res.input_tokens - len(json.dumps(A_TOOLS)) // 4


def test_messages_upstream_error_translated(aclient, marker):
    message = f"bad things {marker}"
    with pytest.raises(anthropic.BadRequestError) as ei:
        aclient.messages.create(
            model=GPT, max_tokens=64, messages=user(f"{marker} {tag(status=400, message=message)}")
        )
    err = assert_anthropic_error(ei.value.response, 400, "invalid_request_error")
    assert message in err["message"]


def test_messages_reset_mid_stream_translated_raises(aclient, marker):
    text = f"{marker} {tag(content='a b c d e f g h', reset_after_chunks=3)}"
    got = []
    with pytest.raises(anthropic.APIError):
        for e in aclient.messages.create(model=GPT, max_tokens=64, messages=user(text), stream=True):
            got.append(e.type)
    assert "message_stop" not in got, f"a truncated stream looked complete: {got}"


# ===========================================================================
# 2. The openai SDK on /v1/chat/completions, Claude deployment: translated


def test_chat_claude_plain(client, mock, marker):
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "system", "content": "Be terse."}, *user(f"hi {marker}")],
        max_tokens=100,
        temperature=0.2,
        stop=["END"],
        user="user-42",
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == MOCK_TEXT
    assert resp.choices[0].finish_reason == "stop"
    u = resp.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    up = mock.one_request_with(marker)
    assert up["path"] == "/v1/messages"
    assert_upstream_auth_is_deployments(up)
    assert up["headers"].get("anthropic-version")
    b = up["body"]
    assert b["model"] == CLAUDE_UPSTREAM
    assert b["max_tokens"] == 100
    assert b["temperature"] == 0.2
    assert b["stop_sequences"] == ["END"]
    assert b["metadata"] == {"user_id": "user-42"}
    sys_text = b["system"] if isinstance(b["system"], str) else "".join(x["text"] for x in b["system"])
    assert sys_text == "Be terse."
    assert [m["role"] for m in b["messages"]] == ["user"]


def test_chat_claude_parallel_tools_then_both_results(client, mock, marker):
    messages = user(f"weather and time {marker} {tag(tool_calls=2)}")
    resp = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.id for c in calls] == ["toolu_mock_0", "toolu_mock_1"]
    assert [c.type for c in calls] == ["function", "function"]
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    for call, tool in zip(calls, TOOLS):
        _check_args(call, tool)
    up = mock.one_request_with(marker)["body"]
    assert up["tools"] == A_TOOLS

    turn2 = marker + "-turn2"
    messages2 = messages + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.function.name, "arguments": c.function.arguments}}
                for c in calls
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_mock_0", "content": "sunny, 21C"},
        {"role": "tool", "tool_call_id": "toolu_mock_1", "content": f"12:00 {turn2}"},
    ]
    resp2 = client.chat.completions.create(model=CLAUDE, messages=messages2, tools=TOOLS)
    assert resp2.choices[0].finish_reason == "stop"
    assert resp2.choices[0].message.content == MOCK_TEXT
    up2 = mock.one_request_with(turn2)["body"]["messages"]
    assert [m["role"] for m in up2] == ["user", "assistant", "user"]
    uses = [b for b in up2[1]["content"] if b["type"] == "tool_use"]
    assert [(u["id"], u["name"]) for u in uses] == [("toolu_mock_0", "get_weather"), ("toolu_mock_1", "get_time")]
    assert [u["input"] for u in uses] == [json.loads(c.function.arguments) for c in calls]
    results = up2[2]["content"]
    assert [r["type"] for r in results] == ["tool_result", "tool_result"], "one user turn, two results"
    assert [r["tool_use_id"] for r in results] == ["toolu_mock_0", "toolu_mock_1"]
    assert "sunny, 21C" in json.dumps(results[0].get("content"))
    assert turn2 in json.dumps(results[1].get("content"))


def test_chat_claude_tool_choice_and_parallel_flag(client, mock, marker):
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=user(marker),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]
    up = mock.one_request_with(marker)["body"]
    assert up["tool_choice"] == {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}


def test_chat_claude_strict_tools_not_sent(client, mock, marker):
    strict_tools = [
        {**t, "function": {**t["function"], "strict": True}} for t in TOOLS
    ]
    resp = client.chat.completions.create(model=CLAUDE, messages=user(marker), tools=strict_tools)
    assert resp.choices[0].finish_reason == "tool_calls"
    up = mock.one_request_with(marker)["body"]
    assert up["tools"] == A_TOOLS
    assert "strict" not in json.dumps(up["tools"])


def test_chat_claude_images(client, mock, marker):
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
    resp = client.chat.completions.create(model=CLAUDE, messages=messages)
    assert resp.choices[0].message.content == MOCK_TEXT
    content = mock.one_request_with(marker)["body"]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": f"What is in these images? {marker}"}
    assert content[1] == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": PNG_DATA_URL.split(",", 1)[1],
        },
    }
    assert content[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/images/cat.png"},
    }


def test_chat_claude_roo_code_cache_control(client, mock, marker):
    """Roo Code marks the system prompt and the last user message(s) ephemeral."""
    eph = {"type": "ephemeral"}
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You are Roo.", "cache_control": eph}]},
        {"role": "user", "content": [{"type": "text", "text": "first task"}]},
        {"role": "assistant", "content": "On it."},
        {"role": "user", "content": [{"type": "text", "text": f"next {marker}", "cache_control": eph}]},
    ]
    resp = client.chat.completions.create(model=CLAUDE, messages=messages)
    assert resp.choices[0].message.content == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]
    assert up["system"] == [{"type": "text", "text": "You are Roo.", "cache_control": eph}]
    assert [m["role"] for m in up["messages"]] == ["user", "assistant", "user"]
    first = up["messages"][0]["content"]
    first_blocks = [{"type": "text", "text": first}] if isinstance(first, str) else first
    assert all("cache_control" not in b for b in first_blocks)
    assert up["messages"][2]["content"] == [{"type": "text", "text": f"next {marker}", "cache_control": eph}]
    assert count_cache_control(up) == 2


def test_chat_claude_cache_control_on_message_level(client, mock, marker):
    """`cache_control` on a message (string content) lands on its last block."""
    eph = {"type": "ephemeral"}
    messages = [
        {"role": "system", "content": "You are Roo.", "cache_control": eph},
        {"role": "user", "content": f"next {marker}", "cache_control": eph},
    ]
    resp = client.chat.completions.create(model=CLAUDE, messages=messages)
    assert resp.choices[0].message.content == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]
    assert up["system"][-1].get("cache_control") == eph
    assert up["messages"][-1]["content"][-1].get("cache_control") == eph
    assert count_cache_control(up) == 2


def test_chat_claude_more_than_4_cache_breakpoints(client, mock, marker):
    eph = {"type": "ephemeral"}

    def messages(m: str) -> list[dict]:
        out = [{"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": eph}]}]
        for i in range(5):
            out.append({"role": "user", "content": [{"type": "text", "text": f"u{i} {m}", "cache_control": eph}]})
            if i < 4:
                out.append({"role": "assistant", "content": f"a{i}"})
        return out

    sent = messages(marker)
    assert count_cache_control(sent) == 6
    resp = client.chat.completions.create(model=CLAUDE, messages=sent)
    assert resp.choices[0].message.content == MOCK_TEXT, "never an upstream 400"
    up = mock.requests_with(marker)
    assert len(up) == 1
    assert count_cache_control(up[0]["body"]) == 4
    # Deterministic: the same request shape keeps the same breakpoints.
    marker2 = marker + "-again"
    client.chat.completions.create(model=CLAUDE, messages=messages(marker2))
    up2 = mock.one_request_with(marker2)
    assert cache_control_paths(up2["body"]) == cache_control_paths(up[0]["body"])
    # The newest breakpoint (the last user message) is among those kept.
    assert up[0]["body"]["messages"][-1]["content"][-1].get("cache_control") == eph


def test_chat_claude_reasoning(client, mock, marker):
    text = f"think {marker} {tag(cached_tokens=5, cache_creation_tokens=7)}"
    resp = client.chat.completions.create(model=CLAUDE, messages=user(text), reasoning_effort="low")
    msg = resp.choices[0].message
    assert msg.content == MOCK_TEXT
    assert resp.choices[0].finish_reason == "stop"
    extra = msg.model_extra or {}
    assert extra.get("reasoning_content") == THINKING_TEXT
    blocks = extra.get("thinking_blocks")
    assert isinstance(blocks, list) and len(blocks) == 1, extra
    assert blocks[0]["type"] == "thinking"
    assert blocks[0]["thinking"] == THINKING_TEXT
    assert isinstance(blocks[0].get("signature"), str) and blocks[0]["signature"]

    up = mock.one_request_with(marker)
    assert up["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert up["body"]["max_tokens"] > 1024

    u = resp.usage
    input_tokens = replay_input_tokens(mock, up)
    assert u.prompt_tokens == input_tokens + 5 + 7, (
        f"prompt_tokens {u.prompt_tokens} must be input {input_tokens} + cache reads 5 + writes 7"
    )
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 5
    uextra = u.model_extra or {}
    assert uextra.get("cache_read_input_tokens") == 5, uextra
    assert uextra.get("cache_creation_input_tokens") == 7, uextra
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens

    # The thinking block goes back with its signature on the next turn.
    turn2 = marker + "-turn2"
    messages2 = user(text) + [
        {"role": "assistant", "content": msg.content, "thinking_blocks": blocks},
        {"role": "user", "content": f"more {turn2}"},
    ]
    resp2 = client.chat.completions.create(model=CLAUDE, messages=messages2, reasoning_effort="low")
    assert resp2.choices[0].message.content == MOCK_TEXT
    up2 = mock.one_request_with(turn2)["body"]["messages"]
    assert up2[1]["role"] == "assistant"
    assert up2[1]["content"][0] == {
        "type": "thinking",
        "thinking": THINKING_TEXT,
        "signature": blocks[0]["signature"],
    }


def test_chat_claude_thinking_param(client, mock, marker):
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=user(marker),
        max_tokens=4096,
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}},
    )
    assert (resp.choices[0].message.model_extra or {}).get("reasoning_content") == THINKING_TEXT
    up = mock.one_request_with(marker)["body"]
    assert up["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert up["max_tokens"] == 4096


def test_chat_claude_streaming_include_usage(client, mock, marker):
    text = f"{marker} {tag(cached_tokens=5, cache_creation_tokens=7, content='one two three')}"
    chunks = list(
        client.chat.completions.create(
            model=CLAUDE, messages=user(text), stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks
    for c in chunks:
        assert c.object == "chat.completion.chunk"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [], "the usage chunk must come last with an empty choices array"
    assert all(c.usage is None for c in chunks[:-1])
    u = last.usage
    assert u.completion_tokens == 3
    assert u.prompt_tokens > 12
    assert u.prompt_tokens_details.cached_tokens == 5
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    up = mock.one_request_with(marker)["body"]
    assert up["stream"] is True
    assert "stream_options" not in up


def test_chat_claude_streaming_tools_and_reasoning(client, marker):
    text = f"{marker} {tag(tool_calls=2, thinking='hmm let me see')}"
    stream = client.chat.completions.create(
        model=CLAUDE,
        messages=user(text),
        tools=TOOLS,
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict] = {}
    reasoning = ""
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        if not chunk.choices:
            continue
        ch = chunk.choices[0]
        finish = ch.finish_reason or finish
        reasoning += (ch.delta.model_extra or {}).get("reasoning_content") or ""
        for tc in ch.delta.tool_calls or []:
            acc = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                acc["id"] = tc.id
            if tc.function and tc.function.name:
                acc["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                acc["arguments"] += tc.function.arguments
    assert reasoning == "hmm let me see"
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1], calls
    assert [calls[i]["id"] for i in (0, 1)] == ["toolu_mock_0", "toolu_mock_1"]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["arguments"]) == {"timezone": "mock"}
    assert json.loads(calls[0]["arguments"]).get("location") == "mock"
    assert usage is not None and usage.completion_tokens > 0


def test_chat_claude_unsupported_param_is_400(client, mock, marker):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=CLAUDE, messages=user(marker), presence_penalty=0.5)
    err = assert_openai_error(ei.value.response, 400)
    assert "presence_penalty" in err["message"]
    assert mock.requests_with(marker) == []


def test_chat_claude_unsupported_param_dropped(client, mock, marker):
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=user(marker),
        presence_penalty=0.5,
        extra_body={"drop_params": True},
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]
    assert "presence_penalty" not in up
    assert "drop_params" not in up


def test_chat_claude_529_is_503_after_retries(client, mock, marker):
    message = f"Overloaded now {marker}"
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(
            model=CLAUDE, messages=user(f"{marker} {tag(status=529, message=message)}")
        )
    err = assert_openai_error(ei.value.response, 503)
    assert message in err["message"]
    assert len(mock.requests_with(marker)) == 3


def test_chat_claude_error_event_mid_stream_raises(client, marker):
    text = f"{marker} {tag(content='a b c d e f g h', error_event_after=4)}"
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model=CLAUDE, messages=user(text), stream=True, stream_options={"include_usage": True}
        ):
            got.append(chunk)
    assert not any(c.usage for c in got), "a truncated stream must not look complete"
    assert not any(c.choices and c.choices[0].finish_reason for c in got)


@pytest.mark.parametrize(
    "stop_reason,finish",
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_chat_claude_finish_reasons(client, marker, stop_reason, finish):
    text = f"{marker} {tag(stop_reason=stop_reason, stop_sequence='END')}"
    resp = client.chat.completions.create(model=CLAUDE, messages=user(text), stop=["END"])
    assert resp.choices[0].finish_reason == finish


# ===========================================================================
# More of what coding agents send


def test_messages_several_beta_headers_forwarded(gateway, mock, marker):
    """Claude Code may repeat `anthropic-beta`; every value reaches Claude."""
    with gateway.http() as h:
        r = h.post(
            "/v1/messages",
            headers=[
                ("authorization", f"Bearer {MASTER_KEY}"),
                ("anthropic-version", ANTHROPIC_VERSION),
                ("anthropic-beta", "claude-code-20250219"),
                ("anthropic-beta", "interleaved-thinking-2025-05-14"),
            ],
            json={"model": CLAUDE, "max_tokens": 64, "messages": user(marker)},
        )
    assert r.status_code == 200, r.text
    got = mock.one_request_with(marker)["headers"].get("anthropic-beta") or ""
    assert {b.strip() for b in got.split(",")} == {
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
    }, got


def test_messages_gateway_fields_not_sent_to_claude(aclient, mock, marker):
    msg = aclient.messages.create(
        model=CLAUDE, max_tokens=64, messages=user(marker),
        extra_body={"drop_params": True, "num_retries": 0},
    )
    assert msg.content[0].text == MOCK_TEXT
    body = mock.one_request_with(marker)["body"]
    assert "drop_params" not in body and "num_retries" not in body


def test_messages_stream_529_before_first_byte_claude(aclient, mock, marker):
    """An upstream error before the stream starts is an HTTP error, not a 200 stream."""
    with pytest.raises(anthropic.InternalServerError) as ei:
        list(
            aclient.messages.create(
                model=CLAUDE, max_tokens=64, stream=True,
                messages=user(f"{marker} {tag(status=529)}"),
            )
        )
    assert ei.value.status_code in (503, 529)
    assert len(mock.requests_with(marker)) == 3


def test_count_tokens_claude_error_in_anthropic_shape(aclient, marker):
    with pytest.raises(anthropic.RateLimitError) as ei:
        aclient.messages.count_tokens(
            model=CLAUDE, messages=user(f"{marker} {tag(status=429, message='count slower')}")
        )
    err = assert_anthropic_error(ei.value.response, 429, "rate_limit_error")
    assert "count slower" in err["message"]


def test_messages_claude_code_like_request_translated(aclient, mock, marker):
    """What Claude Code sends, in front of GPT: system blocks with cache_control,
    metadata, thinking, tool_choice, stream, beta headers."""
    eph = {"type": "ephemeral"}
    tools = [{**A_TOOLS[0], "cache_control": eph}, A_TOOLS[1]]
    with aclient.messages.stream(
        model=GPT,
        max_tokens=32000,
        system=[
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": f"Project notes {marker}", "cache_control": eph},
        ],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": eph}]}],
        tools=tools,
        tool_choice={"type": "auto"},
        metadata={"user_id": "user_abc_account__session_1"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_headers={"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["tool_use"]
    assert final.content[0].id == "call_mock_0"
    up = mock.one_request_with(marker)["body"]
    assert up["messages"][0]["role"] == "system"
    assert "You are Claude Code." in json.dumps(up["messages"][0])
    assert [t["function"]["name"] for t in up["tools"]] == ["get_weather", "get_time"]
    assert up.get("tool_choice") in ("auto", None)


@pytest.mark.parametrize(
    "tool_choice,expected",
    [
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_time"}, {"type": "function", "function": {"name": "get_time"}}),
    ],
    ids=["any", "none", "named"],
)
def test_messages_tool_choice_translated(aclient, mock, marker, tool_choice, expected):
    msg = aclient.messages.create(
        model=GPT, max_tokens=64, messages=user(marker), tools=A_TOOLS, tool_choice=tool_choice
    )
    up = mock.one_request_with(marker)["body"]
    assert up["tool_choice"] == expected
    if tool_choice["type"] == "none":
        assert msg.stop_reason == "end_turn"
    else:
        assert msg.stop_reason == "tool_use"


def test_messages_disable_parallel_tool_use_translated(aclient, mock, marker):
    aclient.messages.create(
        model=GPT, max_tokens=64, messages=user(marker), tools=A_TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    up = mock.one_request_with(marker)["body"]
    assert up["parallel_tool_calls"] is False


def test_messages_images_translated(aclient, mock, marker):
    b64 = PNG_DATA_URL.split(",", 1)[1]
    msg = aclient.messages.create(
        model=GPT,
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"what is this {marker}"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
    assert msg.content[0].text == MOCK_TEXT
    parts = mock.one_request_with(marker)["body"]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
    assert parts[1]["image_url"]["url"] == PNG_DATA_URL
    assert parts[2]["image_url"]["url"] == "https://example.com/cat.png"


def test_messages_usage_with_cache_translated(aclient, mock, marker):
    """OpenAI's prompt_tokens include cached ones; Anthropic's input_tokens do not."""
    text = f"{marker} {tag(cached_tokens=7)}"
    msg = aclient.messages.create(model=GPT, max_tokens=64, messages=user(text))
    up = mock.one_request_with(marker)
    with httpx.Client(timeout=CLIENT_TIMEOUT_S, trust_env=False) as h:
        r = h.post(
            mock.base + "/v1/chat/completions",
            headers={"authorization": "Bearer replay", "content-type": "application/json"},
            content=json.dumps(up["body"], separators=(",", ":"), ensure_ascii=False).encode(),
        )
    prompt_tokens = r.json()["usage"]["prompt_tokens"]
    assert msg.usage.cache_read_input_tokens == 7
    assert msg.usage.input_tokens == prompt_tokens - 7


def test_messages_thinking_to_non_reasoning_model_translated(aclient, mock, marker):
    """Claude Code sends `thinking`; gpt-4o cannot think: the request still works."""
    msg = aclient.messages.create(
        model=GPT, max_tokens=2048, messages=user(marker),
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == MOCK_TEXT


def test_chat_claude_consecutive_roles_merged_and_prefill(client, mock, marker):
    messages = [
        {"role": "system", "content": "one"},
        {"role": "user", "content": f"a {marker}"},
        {"role": "user", "content": "b"},
        {"role": "system", "content": "two"},
        {"role": "assistant", "content": "The answer is"},
    ]
    resp = client.chat.completions.create(model=CLAUDE, messages=messages)
    assert resp.choices[0].message.content == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]
    assert [m["role"] for m in up["messages"]] == ["user", "assistant"]
    assert "a " + marker in json.dumps(up["messages"][0]) and '"b"' in json.dumps(up["messages"][0])
    sys_text = json.dumps(up["system"])
    assert "one" in sys_text and "two" in sys_text
    last = up["messages"][-1]["content"]
    assert (last if isinstance(last, str) else last[-1]["text"]) == "The answer is"


@pytest.mark.parametrize(
    "tool_choice,expected",
    [("required", {"type": "any"}), ("none", {"type": "none"}), ("auto", {"type": "auto"})],
)
def test_chat_claude_tool_choice(client, mock, marker, tool_choice, expected):
    resp = client.chat.completions.create(
        model=CLAUDE, messages=user(marker), tools=TOOLS, tool_choice=tool_choice
    )
    up = mock.one_request_with(marker)["body"]
    assert up["tool_choice"] == expected
    want = "stop" if tool_choice == "none" else "tool_calls"
    assert resp.choices[0].finish_reason == want


def test_chat_claude_response_format_json_schema(client, mock, marker):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=user(marker),
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    choice = resp.choices[0]
    assert json.loads(choice.message.content) == {"name": "mock", "age": 1}
    assert not choice.message.tool_calls
    assert choice.finish_reason == "stop"
    up = mock.one_request_with(marker)["body"]
    assert len(up["tools"]) == 1 and up["tools"][0]["input_schema"] == schema
    assert up["tool_choice"] == {"type": "tool", "name": up["tools"][0]["name"]}


def test_chat_claude_redacted_thinking_round_trip(client, mock, marker):
    text = f"{marker} {tag(redacted_thinking=True)}"
    resp = client.chat.completions.create(model=CLAUDE, messages=user(text), reasoning_effort="low")
    blocks = (resp.choices[0].message.model_extra or {}).get("thinking_blocks")
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking"], blocks
    assert blocks[1].get("data")
    turn2 = marker + "-turn2"
    messages2 = user(text) + [
        {"role": "assistant", "content": resp.choices[0].message.content, "thinking_blocks": blocks},
        {"role": "user", "content": turn2},
    ]
    client.chat.completions.create(model=CLAUDE, messages=messages2, reasoning_effort="low")
    up2 = mock.one_request_with(turn2)["body"]["messages"][1]["content"]
    assert up2[0] == {"type": "thinking", "thinking": THINKING_TEXT, "signature": blocks[0]["signature"]}
    assert up2[1] == {"type": "redacted_thinking", "data": blocks[1]["data"]}


def test_chat_claude_pdf_file_part(client, mock, marker):
    pdf_b64 = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"summarize {marker}"},
                    {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf_b64}"}},
                ],
            }
        ],
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    parts = mock.one_request_with(marker)["body"]["messages"][0]["content"]
    doc = parts[1]
    assert doc["type"] == "document"
    assert doc["source"] == {"type": "base64", "media_type": "application/pdf", "data": pdf_b64}


@pytest.mark.parametrize(
    "status,exc,err_type",
    [
        (401, openai.AuthenticationError, None),
        (403, openai.PermissionDeniedError, None),
        (413, openai.APIStatusError, None),
        (500, openai.InternalServerError, None),
    ],
)
def test_chat_claude_upstream_errors_mapped(client, marker, status, exc, err_type):
    message = f"upstream says {status} {marker}"
    with pytest.raises(exc) as ei:
        client.chat.completions.create(
            model=CLAUDE, messages=user(f"{marker} {tag(status=status, message=message)}")
        )
    err = assert_openai_error(ei.value.response, status)
    assert message in err["message"]


# ---------------------------------------------------------------------------
# Streams are relayed as they come, and a client hanging up reaches the upstream


def _mock_stats(mock) -> dict:
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        r = h.get(mock.base + "/mock/stats")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("model", [CLAUDE, GPT], ids=["claude", "translated"])
def test_messages_stream_is_not_buffered(aclient, marker, model):
    words = "one two three four five six seven eight"
    text = f"{marker} {tag(content=words, tokens_per_sec=8)}"
    start = time.monotonic()
    arrivals = []
    got = ""
    for e in aclient.messages.create(model=model, max_tokens=64, messages=user(text), stream=True):
        if e.type == "content_block_delta" and e.delta.type == "text_delta":
            got += e.delta.text
            arrivals.append(time.monotonic() - start)
    assert got == words
    assert len(arrivals) >= 3, arrivals
    assert arrivals[-1] - arrivals[0] >= 0.3, f"deltas arrived together (buffered?): {arrivals}"


@pytest.mark.parametrize("model", [CLAUDE, GPT], ids=["claude", "translated"])
def test_messages_client_hangup_cancels_upstream_stream(aclient, mock, marker, model):
    before = _mock_stats(mock)["streams_cancelled"]
    words = " ".join(f"w{i}" for i in range(40))
    text = f"{marker} {tag(content=words, tokens_per_sec=10)}"
    stream = aclient.messages.create(model=model, max_tokens=64, messages=user(text), stream=True)
    for e in stream:
        if e.type == "content_block_delta":
            break
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _mock_stats(mock)["streams_cancelled"] > before:
            break
        time.sleep(0.05)
    assert _mock_stats(mock)["streams_cancelled"] > before, "the upstream stream was not cancelled"


# ---------------------------------------------------------------------------
# More of the OpenAI → Claude mapping


@pytest.mark.parametrize(
    "param,value",
    [("frequency_penalty", 0.5), ("logit_bias", {"50256": -100}), ("n", 2), ("logprobs", True)],
)
def test_chat_claude_other_unsupported_params_are_400(client, mock, marker, param, value):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=CLAUDE, messages=user(marker), **{param: value})
    err = assert_openai_error(ei.value.response, 400)
    assert param in err["message"]
    assert mock.requests_with(marker) == []


def test_chat_claude_max_completion_tokens_and_top_k(client, mock, marker):
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=user(marker),
        max_completion_tokens=321,
        top_p=0.9,
        stop="END",
        extra_body={"top_k": 5},
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]
    assert up["max_tokens"] == 321
    assert up["top_p"] == 0.9
    assert up["top_k"] == 5
    assert up["stop_sequences"] == ["END"]


def test_chat_claude_default_max_tokens_from_catalog(client, mock, marker):
    client.chat.completions.create(model=CLAUDE, messages=user(marker))
    up = mock.one_request_with(marker)["body"]
    assert isinstance(up["max_tokens"], int) and up["max_tokens"] >= 4096


def test_chat_claude_empty_tool_result(client, mock, marker):
    messages = user(marker) + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "toolu_x", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "toolu_x", "content": ""},
    ]
    resp = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS)
    assert resp.choices[0].message.content == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]["messages"]
    assert up[2]["content"][0]["type"] == "tool_result"
    assert up[2]["content"][0]["tool_use_id"] == "toolu_x"


def test_messages_empty_and_error_tool_result_translated(aclient, mock, marker):
    messages = user(marker) + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_x", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_x", "is_error": True}]},
    ]
    msg = aclient.messages.create(model=GPT, max_tokens=64, messages=messages, tools=A_TOOLS)
    assert msg.content[0].text == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]["messages"]
    tool = [m for m in up if m["role"] == "tool"]
    assert len(tool) == 1 and tool[0]["tool_call_id"] == "call_x"
    assert isinstance(tool[0]["content"], (str, list))


def test_messages_stream_raw_sse_translated(gateway, marker):
    """Translated streams speak the same wire format: `event:` names matching
    each `data:` type; an upstream failure mid-stream ends with `event: error`."""
    def sse(body: dict) -> tuple[list[str], list[dict]]:
        with gateway.http() as h, h.stream(
            "POST",
            "/v1/messages",
            headers={**gateway.auth(), "anthropic-version": ANTHROPIC_VERSION},
            json=body,
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line.strip()]
        assert_no_secret("\n".join(lines))
        names = [line[len("event:"):].strip() for line in lines if line.startswith("event:")]
        datas = [json.loads(line[len("data:"):]) for line in lines if line.startswith("data:")]
        assert len(names) == len(datas), lines
        assert [d["type"] for d in datas] == names
        return names, datas

    names, _ = sse({"model": GPT, "max_tokens": 64, "stream": True, "messages": user(marker)})
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]

    text = f"{marker}-reset {tag(content='a b c d e f g h', reset_after_chunks=3)}"
    names, datas = sse({"model": GPT, "max_tokens": 64, "stream": True, "messages": user(text)})
    assert names[-1] == "error", names
    assert "message_stop" not in names
    err = datas[-1]["error"]
    assert isinstance(err.get("type"), str) and err["type"]
    assert isinstance(err.get("message"), str) and err["message"]


def test_messages_stream_usage_with_cache_translated(aclient, mock, marker):
    text = f"{marker} {tag(cached_tokens=7, content='x y z')}"
    with aclient.messages.stream(model=GPT, max_tokens=64, messages=user(text)) as s:
        final = s.get_final_message()
    up = mock.one_request_with(marker)
    with httpx.Client(timeout=CLIENT_TIMEOUT_S, trust_env=False) as h:
        r = h.post(
            mock.base + "/v1/chat/completions",
            headers={"authorization": "Bearer replay", "content-type": "application/json"},
            content=json.dumps(up["body"], separators=(",", ":"), ensure_ascii=False).encode(),
        )
    # The same bytes replayed (stream and all): the prompt count is the same.
    data = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and "[DONE]" not in line]
    prompt_tokens = [d["usage"]["prompt_tokens"] for d in data if d.get("usage")][-1]
    assert final.usage.output_tokens == 3
    assert final.usage.cache_read_input_tokens == 7
    assert final.usage.input_tokens == prompt_tokens - 7


def test_chat_claude_json_mode_while_thinking(client, mock, marker):
    """Claude refuses a forced tool while it thinks: JSON mode with
    reasoning offers the JSON tool instead, and the answer is still JSON."""
    resp = client.chat.completions.create(
        model=CLAUDE, messages=user(marker), response_format={"type": "json_object"}, reasoning_effort="low"
    )
    choice = resp.choices[0]
    assert not choice.message.tool_calls
    assert isinstance(json.loads(choice.message.content), dict)
    up = mock.one_request_with(marker)["body"]
    assert "tool_choice" not in up
    assert up["thinking"]["type"] == "enabled"


def test_chat_claude_history_from_another_model(client, mock, marker):
    """An agent that switches to Claude mid-task sends tool calls another
    model made, with ids Claude refuses (`functions.read:0`): they are
    renamed, the same in the call and its result, and the turn goes through.
    An email as `user` is not sent as Claude's user_id, which refuses it."""
    calls = [
        {"id": f"functions.get_weather:{i}", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        for i in range(2)
    ]
    messages = user("weather twice") + [
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": f"rainy {marker}"},
    ]
    resp = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS, user="dev@example.com")
    assert resp.choices[0].message.content == MOCK_TEXT
    up = mock.one_request_with(marker)["body"]
    ids = [b["id"] for b in up["messages"][1]["content"] if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for b in up["messages"][2]["content"] if b["type"] == "tool_result"]
    assert ids == results and len(set(ids)) == 2
    assert "metadata" not in up


def test_chat_claude_web_search_options_become_the_web_search_tool(client, mock, marker):
    resp = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": f"latest news {marker}"}],
        web_search_options={
            "search_context_size": "low",
            "user_location": {"type": "approximate", "approximate": {"country": "GB", "city": "London"}},
        },
    )
    body = mock.one_request_with(marker)["body"]
    assert body["tools"] == [
        {
            "type": "web_search_20250305",
            "name": "web_search",
            "max_uses": 1,
            "user_location": {"type": "approximate", "country": "GB", "city": "London"},
        }
    ]
    assert "web_search_options" not in body


MOCK_SEARCH_TEXT = "Let me search the web. The mock web says hello."
MOCK_SEARCH_URL = "https://example.com/llmux-mock"


def test_chat_claude_web_search_results_citations_and_cost(gateway, client, mock, marker):
    """Claude searched: its answer's text, and what has no OpenAI field as
    LiteLLM carries it in `provider_specific_fields` (the search, its
    results, the citations); the search counted in usage and priced in the
    cost header at the model's per-search price from /model/info."""
    raw = client.chat.completions.with_raw_response.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": f"what does the web say {marker}"}],
        web_search_options={},
    )
    resp = raw.parse()
    msg = resp.choices[0].message
    assert msg.content == MOCK_SEARCH_TEXT
    assert not msg.tool_calls, "Anthropic ran the search; the client must not"
    assert resp.choices[0].finish_reason == "stop"
    fields = msg.model_extra["provider_specific_fields"]
    (call,) = fields["server_tool_use"]
    assert call["name"] == "web_search" and marker in call["input"]["query"]
    (results,) = fields["web_search_results"]
    assert results["tool_use_id"] == call["id"]
    assert results["content"][0]["url"] == MOCK_SEARCH_URL
    (cited,) = fields["citations"]
    assert cited[0]["type"] == "web_search_result_location" and cited[0]["url"] == MOCK_SEARCH_URL
    assert resp.usage.model_extra["server_tool_use"] == {"web_search_requests": 1}

    with gateway.http() as h:
        r = h.get("/v1/model/info", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        info = {e["model_name"]: e for e in r.json()["data"]}[CLAUDE]["model_info"]
    assert info["supports_web_search"] is True
    per_search = info["search_context_cost_per_query"]["search_context_size_medium"]
    assert per_search == 0.01
    u = resp.usage
    cached = u.model_extra.get("cache_read_input_tokens") or 0
    written = u.model_extra.get("cache_creation_input_tokens") or 0
    tokens = (
        (u.prompt_tokens - cached - written) * info["input_cost_per_token"]
        + cached * info["cache_read_input_token_cost"]
        + written * info["cache_creation_input_token_cost"]
        + u.completion_tokens * info["output_cost_per_token"]
    )
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(tokens + per_search, abs=1e-9)


def test_chat_claude_web_search_streamed(client, mock, marker):
    """The same search streamed: the call (its input gathered), the results
    and the citation arrive as chunks' `provider_specific_fields`, the text
    as content, the search count in the usage chunk."""
    stream = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": f"search it {marker}"}],
        web_search_options={"search_context_size": "high"},
        stream=True,
        stream_options={"include_usage": True},
    )
    text, fields, usage = "", [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            assert not ch.delta.tool_calls
            text += ch.delta.content or ""
            extra = (ch.delta.model_extra or {}).get("provider_specific_fields")
            if extra:
                fields.append(extra)
    assert text == MOCK_SEARCH_TEXT
    assert [next(iter(f)) for f in fields] == ["server_tool_use", "web_search_results", "citation"]
    call = fields[0]["server_tool_use"][0]
    assert call["input"]["query"].endswith(marker), call
    assert fields[1]["web_search_results"][0]["tool_use_id"] == call["id"]
    assert fields[2]["citation"]["url"] == MOCK_SEARCH_URL
    assert usage.model_extra["server_tool_use"] == {"web_search_requests": 1}
    assert mock.one_request_with(marker)["body"]["tools"][0]["max_uses"] == 10


def test_messages_web_search_blocks_pass_through_to_claude_code(aclient, mock, marker):
    """Claude Code's own web search tool through /v1/messages: Claude's
    search blocks reach the Anthropic SDK as Claude sent them, whole and
    streamed, with the search count."""
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    msg = aclient.messages.create(
        model=CLAUDE, max_tokens=256, tools=tools,
        messages=[{"role": "user", "content": f"search {marker}"}],
    )
    assert [b.type for b in msg.content] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    assert msg.content[3].citations[0].url == MOCK_SEARCH_URL
    assert msg.usage.server_tool_use.web_search_requests == 1
    with aclient.messages.stream(
        model=CLAUDE, max_tokens=256, tools=tools,
        messages=[{"role": "user", "content": f"search again {marker}"}],
    ) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    assert final.content[1].input == {"query": f"search again {marker}"}
    assert final.usage.server_tool_use.web_search_requests == 1


def test_chat_claude_web_search_tool_written_as_anthropic_writes_it(client, mock, marker):
    """Anthropic's own tool in `tools`, without an OpenAI `function` (as
    LiteLLM accepts it): sent as written, answered with a search."""
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2,
            "allowed_domains": ["example.com"]}
    resp = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": f"look it up {marker}"}], tools=[tool],
    )
    assert resp.choices[0].message.content == MOCK_SEARCH_TEXT
    assert resp.usage.model_extra["server_tool_use"] == {"web_search_requests": 1}
    assert mock.one_request_with(marker)["body"]["tools"] == [tool]
