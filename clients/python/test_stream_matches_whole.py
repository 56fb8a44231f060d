"""A streamed answer says what the whole answer says, on every provider.

The same request goes to each provider's deployment twice, once with
`stream: true`, and the stream the SDK reassembles must carry the same text,
reasoning, tool calls (names and parsed arguments), finish reason and output
and cache token counts as the whole answer: on the chat route (the openai
SDK) and on the Messages route (the anthropic SDK, as Claude Code). Each
provider's stream is translated by its own code, separately from its whole
answer, so this is where they can drift apart (Bedrock's JSON mode once
streamed its forced tool as a tool call while the whole answer gave text).

Prompt token counts are left out: `llmux mock` estimates them from the
request body, which is longer when the body itself says `stream`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from conftest import Mock
from test_anthropic import A_TOOLS, tag
from test_bedrock import MASTER_KEY, BGateway, _aws_env, deployment, start_gateway
from test_gemini import collect_chat_stream
from test_openai_sdk import TOOLS

# (model_name, litellm model, extra params); the mock speaks every format.
DEPLOYMENTS = {
    "openai": ("openai/gpt-4o", {"api_key": "sk-up-openai"}),
    "anthropic": ("anthropic/claude-sonnet-4-20250514", {"api_key": "sk-ant-up"}),
    "gemini": ("gemini/gemini-2.5-flash", {"api_key": "AIzaSy-stream-whole-0123456789"}),
    "bedrock": (
        "bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0",
        {"aws_access_key_id": "AKIDSTREAMWHOLE0000", "aws_secret_access_key": "stream-whole-secret", "aws_region_name": "us-east-1"},
    ),
}
MODELS = list(DEPLOYMENTS)
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]},
    },
}


@pytest.fixture(scope="module")
def gw(mock: Mock, tmp_path_factory) -> Iterator[BGateway]:
    tmp = tmp_path_factory.mktemp("stream-whole")
    deps = []
    for name, (model, params) in DEPLOYMENTS.items():
        base = {"aws_bedrock_runtime_endpoint": mock.base} if name == "bedrock" else {"api_base": mock.base + ("/v1" if name == "openai" else "")}
        deps.append(deployment(name, model, **base, **params))
    gw = start_gateway("gateway-stream-whole", tmp, deps, _aws_env(tmp), retries=0)
    try:
        yield gw
    finally:
        gw.proc.stop()


# The chat route ----------------------------------------------------------------------------

CHAT_CASES = {
    "escapes": lambda m: dict(messages=[{"role": "user", "content": f"{m} " + tag(content='a "q" \\ back\nslash é 🦀 \u0001 \u2028 end')}]),
    "one_tool": lambda m: dict(messages=[{"role": "user", "content": f"{m} " + tag(tool_calls=1)}], tools=TOOLS),
    "two_tools": lambda m: dict(messages=[{"role": "user", "content": f"{m} " + tag(tool_calls=2)}], tools=TOOLS),
    "json_object": lambda m: dict(messages=[{"role": "user", "content": f"{m} json"}], response_format={"type": "json_object"}),
    "json_schema": lambda m: dict(messages=[{"role": "user", "content": f"{m} json"}], response_format=SCHEMA),
    "reasoning": lambda m: dict(
        messages=[{"role": "user", "content": f"{m} " + tag(thinking='think "hard" \\ é')}], reasoning_effort="low", max_tokens=4096
    ),
    "cache": lambda m: dict(messages=[{"role": "user", "content": f"{m} " + tag(cached_tokens=7, cache_creation_tokens=3)}]),
}


def chat_whole(c: openai.OpenAI, model: str, kw: dict) -> dict:
    r = c.chat.completions.create(model=model, **kw)
    ch = r.choices[0]
    extra = ch.message.model_extra or {}
    return {
        "text": ch.message.content or "",
        "reasoning": extra.get("reasoning_content") or "",
        "calls": [(t.function.name, json.loads(t.function.arguments)) for t in ch.message.tool_calls or []],
        "finish": [ch.finish_reason],
        "output": r.usage.completion_tokens,
        "cached": r.usage.prompt_tokens_details.cached_tokens if r.usage.prompt_tokens_details else None,
    }


def chat_streamed(c: openai.OpenAI, model: str, kw: dict) -> dict:
    got = collect_chat_stream(list(c.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True}, **kw)))
    usage = got["usage"]
    assert usage is not None, "no usage chunk"
    return {
        "text": got["text"],
        "reasoning": got["reasoning"],
        "calls": [(call["name"], json.loads(call["arguments"])) for _, call in sorted(got["calls"].items())],
        "finish": got["finishes"],
        "output": usage.completion_tokens,
        "cached": usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None,
    }


@pytest.mark.parametrize("case", list(CHAT_CASES))
@pytest.mark.parametrize("model", MODELS)
def test_chat_stream_matches_whole(gw, model, case, marker):
    with gw.client() as c:
        kw = CHAT_CASES[case](marker)
        whole, streamed = chat_whole(c, model, kw), chat_streamed(c, model, kw)
    assert streamed == whole
    # What each case is about is in the answer at all.
    if case.endswith("tool") or case.endswith("tools"):
        assert len(whole["calls"]) == (1 if case == "one_tool" else 2) and whole["finish"] == ["tool_calls"]
    elif case.startswith("json"):
        assert not whole["calls"] and whole["finish"] == ["stop"]
        # OpenAI takes `response_format` as it is, and the mock's OpenAI
        # answer is its plain text; the others carry JSON mode themselves.
        if model != "openai":
            assert isinstance(json.loads(whole["text"]), dict), whole["text"]
    elif case == "escapes":
        assert whole["text"] == 'a "q" \\ back\nslash é 🦀 \u0001 \u2028 end'


# The Messages route (Claude Code in front of each provider) --------------------------------

MESSAGES_CASES = {
    "escapes": lambda m: dict(messages=[{"role": "user", "content": f"{m} " + tag(content='a "q" \\ back\nslash é 🦀 \u0001 end')}]),
    "tools": lambda m: dict(
        messages=[{"role": "user", "content": f"{m} " + tag(tool_calls=2)}],
        tools=A_TOOLS,
    ),
    "thinking": lambda m: dict(
        messages=[{"role": "user", "content": f"{m} " + tag(thinking='hmm "deep"')}], thinking={"type": "enabled", "budget_tokens": 1024}
    ),
    "cache": lambda m: dict(messages=[{"role": "user", "content": f"{m} " + tag(cached_tokens=7, cache_creation_tokens=3)}]),
}


def messages_view(msg: Any) -> dict:
    blocks = []
    for b in msg.content:
        if b.type == "text":
            blocks.append(("text", b.text))
        elif b.type == "thinking":
            blocks.append(("thinking", b.thinking))
        elif b.type == "tool_use":
            blocks.append(("tool_use", b.name, b.input))
        else:
            blocks.append((b.type,))
    u = msg.usage
    return {
        "blocks": blocks,
        "stop": msg.stop_reason,
        "output": u.output_tokens,
        "cache": (u.cache_read_input_tokens, u.cache_creation_input_tokens),
    }


@pytest.mark.parametrize("case", list(MESSAGES_CASES))
@pytest.mark.parametrize("model", MODELS)
def test_messages_stream_matches_whole(gw, model, case, marker):
    a = anthropic.Anthropic(base_url=gw.base, api_key=MASTER_KEY, max_retries=0)
    kw = MESSAGES_CASES[case](marker)
    whole = messages_view(a.messages.create(model=model, max_tokens=2048, **kw))
    with a.messages.stream(model=model, max_tokens=2048, **kw) as s:
        streamed = messages_view(s.get_final_message())
    assert streamed == whole
    if case == "tools":
        assert [b[0] for b in whole["blocks"]] == ["tool_use", "tool_use"] and whole["stop"] == "tool_use"
    elif case == "escapes":
        assert whole["blocks"] == [("text", 'a "q" \\ back\nslash é 🦀 \u0001 end')]
