"""LiteLLM's wildcard routes, driven with the official SDKs.

A config that says `anthropic/*` or `my-org/*` serves every model those
names match, lists the models the catalog knows under them, and routes
Claude Code's Messages API the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import anthropic
import httpx
import openai
import pytest

from conftest import (
    ANTHROPIC_KEY,
    CLIENT_TIMEOUT_S,
    MASTER_KEY,
    UPSTREAM_KEY,
    Proc,
    assert_no_secret,
    free_port,
    start_process,
)


@pytest.fixture(scope="module")
def wild(mock, tmp_path_factory) -> Iterator[Proc]:
    tmp: Path = tmp_path_factory.mktemp("wildcard")
    config = tmp / "config.yaml"
    config.write_text(
        "\n".join(
            [
                "model_list:",
                '  - model_name: "anthropic/*"',
                "    litellm_params:",
                '      model: "anthropic/*"',
                f'      api_base: "{mock.base}"',
                f"      api_key: {ANTHROPIC_KEY}",
                '  - model_name: "my-org/*"',
                "    litellm_params:",
                '      model: "openai/*"',
                f'      api_base: "{mock.base}/v1"',
                f"      api_key: {UPSTREAM_KEY}",
                "general_settings:",
                f"  master_key: {MASTER_KEY}",
                "",
            ]
        )
    )
    port = free_port()
    proc = start_process(
        "gateway-wildcard",
        ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        tmp,
        port,
        "/health/liveliness",
    )
    try:
        yield proc
    finally:
        proc.stop()


def test_the_openai_sdk_reaches_any_model_a_pattern_matches(wild, mock, marker):
    client = openai.OpenAI(
        base_url=wild.base + "/v1", api_key=MASTER_KEY, timeout=CLIENT_TIMEOUT_S, max_retries=0
    )
    r = client.chat.completions.create(
        model="my-org/gpt-4.1-mini", messages=[{"role": "user", "content": marker}]
    )
    assert r.choices[0].message.content == "Hello from llmux mock."
    sent = mock.one_request_with(marker)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-4.1-mini"
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"

    stream = client.chat.completions.create(
        model="anthropic/claude-sonnet-4",
        messages=[{"role": "user", "content": marker + "-s"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from llmux mock."
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    sent = mock.one_request_with(marker + "-s")
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["model"] == "claude-sonnet-4-20250514"

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="elsewhere/gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )


def test_claude_code_reaches_a_pattern_through_the_messages_api(wild, mock, marker):
    client = anthropic.Anthropic(
        base_url=wild.base, api_key=MASTER_KEY, timeout=CLIENT_TIMEOUT_S, max_retries=0
    )
    m = client.messages.create(
        model="anthropic/claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": marker}],
    )
    assert m.content[0].text == "Hello from llmux mock."
    assert m.stop_reason == "end_turn"
    sent = mock.one_request_with(marker)
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    # The same client on an OpenAI model a pattern serves: translated.
    m = client.messages.create(
        model="my-org/gpt-4o", max_tokens=50, messages=[{"role": "user", "content": marker + "-o"}]
    )
    assert m.content[0].text == "Hello from llmux mock."
    assert mock.one_request_with(marker + "-o")["path"] == "/v1/chat/completions"


def test_the_model_list_names_what_the_patterns_serve(wild):
    with httpx.Client(base_url=wild.base, timeout=CLIENT_TIMEOUT_S, trust_env=False) as http:
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        models = http.get("/v1/models", headers=auth)
        info = http.get("/v1/model/info", headers=auth)
    assert models.status_code == 200 and info.status_code == 200
    ids = [m["id"] for m in models.json()["data"]]
    assert "anthropic/claude-sonnet-4-20250514" in ids
    assert "my-org/gpt-4o" in ids
    assert not any("*" in i for i in ids)
    by_name = {m["model_name"]: m for m in info.json()["data"]}
    assert set(by_name) == set(ids)
    gpt = by_name["my-org/gpt-4o"]
    assert gpt["litellm_params"]["custom_llm_provider"] == "openai"
    assert gpt["model_info"]["max_input_tokens"] >= 128000
    assert gpt["model_info"]["input_cost_per_token"] > 0
    assert_no_secret(info.text)
    # Every listed model answers.
    client = openai.OpenAI(
        base_url=wild.base + "/v1", api_key=MASTER_KEY, timeout=CLIENT_TIMEOUT_S, max_retries=0
    )
    for name in ("anthropic/claude-3-5-haiku-20241022", "my-org/o3-mini"):
        assert name in ids
        r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Hello from llmux mock."
