"""Conformance: the official `openai` Python SDK against `llmux serve` in front of `llmux mock`."""

from __future__ import annotations

import json
import re
import time

import httpx
import openai
import pytest

from conftest import (
    ANTHROPIC_KEY,
    AWS_SECRET,
    MASTER_KEY,
    UPSTREAM_KEY,
    assert_no_secret,
    assert_openai_error,
)

MOCK_TEXT = "Hello from llmux mock."

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "days": {"type": "integer"},
                    "metric": {"type": "boolean"},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a timezone",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
            },
        },
    },
]

# A 1x1 transparent PNG.
PNG_DATA_URL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------------------
# Plain chat


def test_plain_chat(client, mock, marker):
    resp = client.chat.completions.create(
        model="gpt-4o", messages=user(f"say hi {marker}"), temperature=0
    )
    assert resp.object == "chat.completion"
    assert isinstance(resp.id, str) and resp.id
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == MOCK_TEXT
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert isinstance(resp.usage.prompt_tokens, int) and resp.usage.prompt_tokens > 0
    assert isinstance(resp.usage.completion_tokens, int) and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    up = mock.one_request_with(marker)
    assert up["method"] == "POST"
    assert up["path"].endswith("/chat/completions")
    # Only the model id and the auth change on the way upstream.
    assert up["body"]["model"] == "gpt-4o"
    assert up["headers"].get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert MASTER_KEY not in json.dumps(up["headers"]), "the client's key was forwarded upstream"


def test_response_headers_carry_the_deployment_and_the_cost(gateway, client, marker):
    """LiteLLM's `x-litellm-response-cost`: usage priced at the model's own
    prices as `/v1/model/info` lists them (cache reads at their rate)."""
    with gateway.http() as h:
        r = h.get("/v1/model/info", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        info = {e["model_name"]: e for e in r.json()["data"]}["gpt-4o"]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=user(f"say hi {marker}")
    )
    resp = raw.parse()
    prices = info["model_info"]
    cached = resp.usage.prompt_tokens_details.cached_tokens if resp.usage.prompt_tokens_details else 0
    expected = (
        (resp.usage.prompt_tokens - (cached or 0)) * prices["input_cost_per_token"]
        + (cached or 0) * prices.get("cache_read_input_token_cost", prices["input_cost_per_token"])
        + resp.usage.completion_tokens * prices["output_cost_per_token"]
    )
    header = raw.headers["x-litellm-response-cost"]
    assert re.fullmatch(r"\d+\.\d{10}", header), header
    assert float(header) == pytest.approx(expected, abs=1e-10)
    assert float(header) > 0
    assert raw.headers["x-litellm-model-id"] == info["model_info"]["id"]


def test_plain_chat_without_v1_prefix(gateway, mock, marker):
    with openai.OpenAI(
        base_url=gateway.base, api_key=MASTER_KEY, timeout=30, max_retries=0
    ) as c:
        resp = c.chat.completions.create(model="gpt-4o", messages=user(marker))
    assert resp.choices[0].message.content == MOCK_TEXT
    assert mock.one_request_with(marker)["body"]["model"] == "gpt-4o"


def test_mock_content_steering(client, marker):
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=user(marker),
        extra_body={"mock": {"content": "custom answer here"}},
    )
    assert resp.choices[0].message.content == "custom answer here"


def test_request_passes_through_unchanged(client, mock, marker):
    """Every field sent (known or not) reaches the upstream as sent; only `model` is rewritten."""
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": marker}]},
        {"role": "assistant", "content": "ok", "name": "bot"},
        {"role": "user", "content": "again"},
    ]
    extra = {
        "custom_vendor_field": {"nested": [1, 2.5, "x", None, True]},
        "metadata": {"trace": marker},
        "mock": {"content": "fine"},
    }
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        temperature=0.25,
        top_p=0.5,
        max_tokens=77,
        seed=42,
        stop=["\n\n"],
        user="user-123",
        logit_bias={"50256": -100},
        extra_body=extra,
    )
    assert resp.choices[0].message.content == "fine"
    body = mock.one_request_with(marker)["body"]
    sent = {
        "messages": messages,
        "temperature": 0.25,
        "top_p": 0.5,
        "max_tokens": 77,
        "seed": 42,
        "stop": ["\n\n"],
        "user": "user-123",
        "logit_bias": {"50256": -100},
        **extra,
    }
    for k, v in sent.items():
        assert k in body, f"field {k!r} was dropped on the way upstream"
        assert body[k] == v, f"field {k!r} changed on the way upstream: {body[k]!r} != {v!r}"
    assert body["model"] == "gpt-4o-mini"


def test_no_secret_in_chat_response(gateway, marker):
    with gateway.http() as h:
        r = h.post(
            "/v1/chat/completions",
            headers=gateway.auth(),
            json={"model": "gpt-4o", "messages": user(marker)},
        )
    assert r.status_code == 200, r.text
    assert_no_secret(r.text)


# ---------------------------------------------------------------------------
# Streaming


def test_streaming_with_include_usage(client, mock, marker):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=user(marker),
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock": {"cached_tokens": 7}},
    )
    chunks = list(stream)
    assert len(chunks) >= 3, chunks
    for c in chunks:
        assert c.object == "chat.completion.chunk"

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == MOCK_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]

    last = chunks[-1]
    assert last.choices == [], "the usage chunk must carry an empty choices array"
    assert last.usage is not None
    assert isinstance(last.usage.prompt_tokens, int) and last.usage.prompt_tokens > 0
    assert isinstance(last.usage.completion_tokens, int) and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 7
    assert all(c.usage is None for c in chunks[:-1]), "usage appeared before the final chunk"

    up = mock.one_request_with(marker)["body"]
    assert up["stream"] is True
    assert up["stream_options"] == {"include_usage": True}


def test_streaming_raw_sse_ends_with_usage_then_done(gateway, marker):
    """The wire format: `data:` events, the usage event has "choices": [], then `data: [DONE]`."""
    body = {
        "model": "gpt-4o",
        "messages": user(marker),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with gateway.http() as h, h.stream(
        "POST", "/v1/chat/completions", headers=gateway.auth(), json=body
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data:"):].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    usage_event = json.loads(data[-2])
    assert usage_event["choices"] == []
    assert isinstance(usage_event["usage"]["prompt_tokens"], int)
    for d in data[:-2]:
        assert json.loads(d).get("choices"), f"a non-final event without choices: {d}"


def test_streaming_without_include_usage_has_no_usage_chunk(client, marker):
    chunks = list(
        client.chat.completions.create(model="gpt-4o", messages=user(marker), stream=True)
    )
    assert chunks
    assert all(c.choices for c in chunks), "a usage-only chunk arrived without include_usage"
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == MOCK_TEXT


def test_streaming_is_not_buffered(client, marker):
    """Chunks reach the client as the upstream sends them, not all at the end."""
    words = "one two three four five six seven eight"
    start = time.monotonic()
    arrivals = []
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=user(marker),
        stream=True,
        extra_body={"mock": {"content": words, "tokens_per_sec": 8}},
    )
    text = ""
    for c in stream:
        if c.choices and c.choices[0].delta.content:
            text += c.choices[0].delta.content
            arrivals.append(time.monotonic() - start)
    assert text == words
    assert len(arrivals) >= 3, arrivals
    # The mock paces the content over about a second; a buffering gateway
    # would deliver every chunk at the same moment.
    assert arrivals[-1] - arrivals[0] >= 0.3, f"chunks arrived together (buffered?): {arrivals}"


# ---------------------------------------------------------------------------
# Tools


def _check_args(call, tool):
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    props = tool["function"]["parameters"]["properties"]
    for name, value in args.items():
        assert name in props, f"argument {name!r} not in the tool's schema"
        want = props[name]["type"]
        if want == "string":
            assert value == "mock"
        elif want in ("integer", "number"):
            assert value == 1
        elif want == "boolean":
            assert value is True
    for req in tool["function"]["parameters"].get("required", []):
        assert req in args


def test_tool_call(client, mock, marker):
    resp = client.chat.completions.create(
        model="gpt-4o", messages=user(f"weather? {marker}"), tools=TOOLS, tool_choice="auto"
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].id == "call_mock_0"
    assert calls[0].function.name == "get_weather"
    _check_args(calls[0], TOOLS[0])

    up = mock.one_request_with(marker)["body"]
    assert up["tools"] == TOOLS
    assert up["tool_choice"] == "auto"


def test_tool_choice_named_function(client, marker):
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=user(marker),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]
    _check_args(calls[0], TOOLS[1])


def test_parallel_tool_calls_then_tool_results(client, mock, marker):
    messages = user(f"weather and time {marker}")
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=TOOLS,
        parallel_tool_calls=True,
        extra_body={"mock": {"tool_calls": 2}},
    )
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    assert [c.id for c in msg.tool_calls] == ["call_mock_0", "call_mock_1"]
    assert [c.function.name for c in msg.tool_calls] == ["get_weather", "get_time"]
    for call, tool in zip(msg.tool_calls, TOOLS):
        _check_args(call, tool)
    assert mock.one_request_with(marker)["body"]["parallel_tool_calls"] is True

    # Second turn: the assistant's tool calls and one result per call.
    turn2_marker = marker + "-turn2"
    messages2 = messages + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in msg.tool_calls
            ],
        },
        {"role": "tool", "tool_call_id": "call_mock_0", "content": "sunny, 21C"},
        {"role": "tool", "tool_call_id": "call_mock_1", "content": f"12:00 {turn2_marker}"},
    ]
    resp2 = client.chat.completions.create(model="gpt-4o", messages=messages2, tools=TOOLS)
    assert resp2.choices[0].finish_reason == "stop"
    assert resp2.choices[0].message.content == MOCK_TEXT
    assert not resp2.choices[0].message.tool_calls
    up2 = mock.one_request_with(turn2_marker)["body"]
    assert up2["messages"] == messages2


def test_streaming_tool_calls(client, marker):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=user(marker),
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock": {"tool_calls": 2}},
    )
    calls: dict[int, dict] = {}
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        if not chunk.choices:
            continue
        ch = chunk.choices[0]
        finish = ch.finish_reason or finish
        for tc in ch.delta.tool_calls or []:
            acc = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                acc["id"] = tc.id
            if tc.function and tc.function.name:
                acc["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                acc["arguments"] += tc.function.arguments
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [calls[i]["id"] for i in (0, 1)] == ["call_mock_0", "call_mock_1"]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    for i in (0, 1):
        assert isinstance(json.loads(calls[i]["arguments"]), dict)
    assert usage is not None and usage.completion_tokens > 0


# ---------------------------------------------------------------------------
# Images


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_image_content_parts_pass_through(client, mock, marker, stream):
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
    resp = client.chat.completions.create(model="gpt-4o", messages=messages, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in resp if c.choices)
    else:
        text = resp.choices[0].message.content
    assert text == MOCK_TEXT
    assert mock.one_request_with(marker)["body"]["messages"] == messages


# ---------------------------------------------------------------------------
# Errors


def test_missing_key_is_401(gateway):
    with gateway.http() as h:
        for path in ("/v1/chat/completions", "/chat/completions"):
            r = h.post(path, json={"model": "gpt-4o", "messages": user("hi")})
            assert_openai_error(r, 401)
        for path in ("/v1/models", "/models", "/v1/model/info", "/model/info"):
            assert_openai_error(h.get(path), 401)


def test_wrong_key_is_401(gateway, mock, marker):
    with gateway.client(api_key="sk-wrong") as c:
        with pytest.raises(openai.AuthenticationError) as ei:
            c.chat.completions.create(model="gpt-4o", messages=user(marker))
    assert ei.value.status_code == 401
    assert_openai_error(ei.value.response, 401)
    assert mock.requests_with(marker) == [], "an unauthenticated request reached the upstream"


def test_wrong_key_in_other_headers_is_401(gateway):
    with gateway.http() as h:
        for header in ("x-api-key", "api-key", "x-litellm-api-key", "x-goog-api-key"):
            r = h.get("/v1/model/info", headers={header: "sk-wrong"})
            assert_openai_error(r, 401)


def test_health_liveliness_is_public(gateway):
    with gateway.http() as h:
        for path in ("/health/liveliness", "/health/liveness"):
            r = h.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text)


def test_unknown_model_is_404(client, mock, marker):
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="no-such-model-xyz", messages=user(marker))
    assert ei.value.status_code == 404
    err = assert_openai_error(ei.value.response, 404)
    assert "no-such-model-xyz" in err["message"]
    assert mock.requests_with(marker) == []


def test_malformed_json_is_400(gateway):
    with gateway.http() as h:
        r = h.post(
            "/v1/chat/completions",
            headers={**gateway.auth(), "Content-Type": "application/json"},
            content=b'{"model": "gpt-4o", "messages": [',
        )
    assert_openai_error(r, 400)


def test_missing_messages_is_400_naming_the_field(gateway):
    with gateway.http() as h:
        r = h.post("/v1/chat/completions", headers=gateway.auth(), json={"model": "gpt-4o"})
    err = assert_openai_error(r, 400)
    assert "messages" in err["message"]


def test_missing_model_is_400_naming_the_field(gateway):
    with gateway.http() as h:
        r = h.post("/v1/chat/completions", headers=gateway.auth(), json={"messages": user("hi")})
    err = assert_openai_error(r, 400)
    assert "model" in err["message"]


def test_upstream_429_passes_through_after_retries(client, mock, marker):
    msg = f"Rate limit reached for gpt-4o {marker}"
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(
            model="gpt-4o",
            messages=user(marker),
            extra_body={"mock": {"status": 429, "message": msg, "retry_after": 1}},
        )
    assert ei.value.status_code == 429
    err = assert_openai_error(ei.value.response, 429)
    assert msg in err["message"], "the upstream's error message must reach the client"
    # num_retries: 2 -> the first try and two retries.
    assert len(mock.requests_with(marker)) == 3


def test_upstream_429_keeps_retry_after_header(client, marker):
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(
            model="gpt-4o",
            messages=user(marker),
            extra_body={"mock": {"status": 429, "retry_after": 1}},
        )
    assert ei.value.response.headers.get("retry-after") == "1"


@pytest.mark.parametrize("status,fail_times", [(429, 1), (500, 2)])
def test_retry_succeeds_after_transient_failures(client, mock, marker, status, fail_times):
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=user(marker),
        extra_body={"mock": {"status": status, "fail_times": fail_times, "key": marker}},
    )
    assert resp.choices[0].message.content == MOCK_TEXT
    assert len(mock.requests_with(marker)) == fail_times + 1


def test_upstream_error_message_and_status_kept(client, marker):
    msg = f"This model's maximum context length is 8192 tokens {marker}"
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(
            model="gpt-4o",
            messages=user(marker),
            extra_body={"mock": {"status": 400, "message": msg}},
        )
    err = assert_openai_error(ei.value.response, 400)
    assert msg in err["message"]


def test_reset_mid_stream_raises(client, marker):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=user(marker),
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock": {"content": "a b c d e f g h", "reset_after_chunks": 3}},
    )
    got = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            got.append(chunk)
    assert not any(c.usage for c in got), "a truncated stream must not look complete"


def test_reset_mid_stream_ends_with_error_event(gateway, marker):
    body = {
        "model": "gpt-4o",
        "messages": user(marker),
        "stream": True,
        "mock": {"content": "a b c d e f g h", "reset_after_chunks": 3},
    }
    with gateway.http() as h, h.stream(
        "POST", "/v1/chat/completions", headers=gateway.auth(), json=body
    ) as r:
        assert r.status_code == 200
        data = [line[len("data:"):].strip() for line in r.iter_lines() if line.startswith("data:")]
    events = [json.loads(d) for d in data if d != "[DONE]"]
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert errors, f"the stream ended without an error event: {data}"
    assert isinstance(errors[-1]["error"].get("message"), str) and errors[-1]["error"]["message"]
    assert events[-1] is errors[-1], "the error event must be the last event"
    assert_no_secret("\n".join(data))


def test_malformed_upstream_body_is_502(client, marker):
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(
            model="gpt-4o", messages=user(marker), extra_body={"mock": {"malformed": True}}
        )
    assert ei.value.status_code == 502
    assert_openai_error(ei.value.response, 502)


def test_unreachable_upstream_is_502(client):
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model="dead-upstream", messages=user("hi"))
    assert ei.value.status_code == 502
    assert_openai_error(ei.value.response, 502)


def test_upstream_timeout_is_504(client, marker):
    # `local-slow` has litellm_params.timeout: 1 (second); the mock waits 5 s.
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(
            model="local-slow",
            messages=user(marker),
            extra_body={"mock": {"first_byte_delay_ms": 5000}},
        )
    assert ei.value.status_code == 504
    assert_openai_error(ei.value.response, 504)


# ---------------------------------------------------------------------------
# Models and model info


def test_models_list(client, gateway):
    ids = [m.id for m in client.models.list()]
    for name in gateway.models:
        assert name in ids
    with gateway.http() as h:
        for path in ("/v1/models", "/models"):
            r = h.get(path, headers=gateway.auth())
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["object"] == "list"
            assert {m["id"] for m in body["data"]} >= set(gateway.models)
            for m in body["data"]:
                assert m["object"] == "model"
            assert_no_secret(r.text)


MODEL_INFO_FIELDS = {
    "id": str,
    "key": str,
    "max_tokens": (int, type(None)),
    "max_input_tokens": (int, type(None)),
    "max_output_tokens": (int, type(None)),
    "input_cost_per_token": (int, float, type(None)),
    "output_cost_per_token": (int, float, type(None)),
    "cache_creation_input_token_cost": (int, float, type(None)),
    "cache_read_input_token_cost": (int, float, type(None)),
    "litellm_provider": str,
    "mode": str,
    "supports_vision": bool,
    "supports_function_calling": bool,
    "supports_tool_choice": bool,
    "supports_prompt_caching": bool,
    "supports_reasoning": bool,
    "supports_computer_use": bool,
}

AUTH_HEADERS = {
    "authorization": {"Authorization": f"Bearer {MASTER_KEY}"},
    "x-litellm-api-key": {"x-litellm-api-key": MASTER_KEY},
    "x-api-key": {"x-api-key": MASTER_KEY},
    "api-key": {"api-key": MASTER_KEY},
    "x-goog-api-key": {"x-goog-api-key": MASTER_KEY},
}


@pytest.mark.parametrize("path", ["/v1/model/info", "/model/info"])
@pytest.mark.parametrize("header", list(AUTH_HEADERS))
def test_model_info(gateway, path, header):
    with gateway.http() as h:
        r = h.get(path, headers=AUTH_HEADERS[header])
    assert r.status_code == 200, r.text
    assert_no_secret(r.text)
    data = r.json()["data"]
    by_name = {e["model_name"]: e for e in data}
    assert set(by_name) >= set(gateway.models)
    for entry in data:
        params = entry["litellm_params"]
        assert isinstance(params["model"], str)
        assert "api_key" not in params
        info = entry["model_info"]
        for k, types in MODEL_INFO_FIELDS.items():
            assert k in info, f"{entry['model_name']}: model_info lacks {k!r}"
            assert isinstance(info[k], types), f"{entry['model_name']}: {k}={info[k]!r}"

    gpt = by_name["gpt-4o"]
    assert gpt["litellm_params"]["model"] == "openai/gpt-4o"
    gi = gpt["model_info"]
    assert gi["litellm_provider"] == "openai"
    assert gi["mode"] == "chat"
    assert gi["max_input_tokens"] > 0 and gi["max_output_tokens"] > 0
    assert gi["input_cost_per_token"] > 0 and gi["output_cost_per_token"] > 0
    assert gi["supports_vision"] is True
    assert gi["supports_function_calling"] is True

    claude = by_name["claude-sonnet-4"]
    assert claude["litellm_params"]["model"] == "anthropic/claude-sonnet-4-20250514"
    assert claude["model_info"]["litellm_provider"] == "anthropic"
    assert claude["model_info"]["supports_prompt_caching"] is True


def test_open_gateway_accepts_any_key(open_gateway, mock, marker):
    """No master key: Roo Code sends `Bearer dummy-key`, and no key at all also passes."""
    with open_gateway.client(api_key="dummy-key") as c:
        resp = c.chat.completions.create(model="gpt-4o", messages=user(marker))
        assert resp.choices[0].message.content == MOCK_TEXT
        assert "gpt-4o" in [m.id for m in c.models.list()]
    up = mock.one_request_with(marker)
    assert up["headers"].get("authorization") == f"Bearer {UPSTREAM_KEY}"
    with open_gateway.http() as h:
        r = h.get("/v1/model/info")
        assert r.status_code == 200, r.text
        assert_no_secret(r.text)
        r = h.post("/chat/completions", json={"model": "gpt-4o", "messages": user("hi")})
        assert r.status_code == 200, r.text
