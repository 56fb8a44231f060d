"""Prometheus metrics at /metrics, as LiteLLM's `prometheus` callback names
them: read with prometheus_client's own parser (an independent check of
the exposition format) after driving the gateway with the openai SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    ANTHROPIC_KEY,
    MASTER_KEY,
    UPSTREAM_KEY,
    Gateway,
    Mock,
    gateway_config,
    serve_config,
)


def start(mock: Mock, tmp: Path, extra: str) -> Gateway:
    text = gateway_config(mock.base, MASTER_KEY).replace(
        "litellm_settings:\n", "litellm_settings:\n" + extra, 1
    )
    proc = serve_config("gateway-metrics", text, tmp)
    return Gateway(proc=proc, master_key=MASTER_KEY, config_text=text)


@pytest.fixture(scope="module")
def metered(mock, tmp_path_factory) -> Iterator[Gateway]:
    gw = start(mock, tmp_path_factory.mktemp("metered"), '  callbacks: ["prometheus"]\n')
    try:
        yield gw
    finally:
        gw.proc.stop()


def scrape(gw: Gateway, headers: dict | None = None) -> dict[tuple[str, frozenset], float]:
    """Every sample, by name and labels."""
    with gw.http() as h:
        r = h.get("/metrics", headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    for secret in (UPSTREAM_KEY, ANTHROPIC_KEY, MASTER_KEY):
        assert secret not in r.text
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name: str, **labels) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_metrics_count_requests_tokens_spend_and_failures(metered, marker):
    before = scrape(metered)
    c = metered.client()
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"hi {marker}"}]
    )
    resp = raw.parse()
    cost = float(raw.headers["x-litellm-response-cost"])
    chunks = list(
        c.chat.completions.create(
            model="claude-sonnet-4",
            messages=[{"role": "user", "content": f"stream {marker}"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = chunks[-1].usage
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model=f"no-such-model-{marker}", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        metered.client(api_key="sk-wrong").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.APIStatusError):
        c.chat.completions.create(model="dead-upstream", messages=[{"role": "user", "content": "x"}])

    after = scrape(metered)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "litellm_proxy_total_requests_metric_total"
    assert grew(total, requested_model="gpt-4o", status_code="200") == 1
    assert grew(total, requested_model="claude-sonnet-4", status_code="200") == 1
    # A name the gateway does not serve is not a label (a client could make
    # any number of them).
    assert grew(total, requested_model="", status_code="404") == 1
    assert not any(marker in dict(ls).get("requested_model", "") for (_, ls) in after)
    assert grew(total, requested_model="", status_code="401") == 1
    # What the client saw for the dead upstream (a 502 or 503).
    dead = [dict(ls)["status_code"] for (n, ls) in after if n == total and ("requested_model", "dead-upstream") in ls]
    assert len(dead) == 1 and dead[0].startswith("5"), dead
    failed = "litellm_proxy_failed_requests_metric_total"
    assert grew(failed, requested_model="dead-upstream") == 1
    assert grew(failed, exception_status="401") == 1

    ok = "litellm_deployment_success_responses_total"
    assert grew(ok, litellm_model_name="openai/gpt-4o", api_provider="openai", requested_model="gpt-4o") == 1
    assert grew(ok, api_provider="anthropic", requested_model="claude-sonnet-4") == 1
    # The dead upstream was tried once and retried (num_retries: 2).
    assert grew("litellm_deployment_failure_responses_total", requested_model="dead-upstream") == 3
    assert grew("litellm_deployment_total_requests_total", requested_model="dead-upstream") == 3

    tokens = "litellm_input_tokens_metric_total"
    assert grew(tokens, requested_model="gpt-4o") == resp.usage.prompt_tokens
    assert grew("litellm_output_tokens_metric_total", requested_model="gpt-4o") == resp.usage.completion_tokens
    assert grew("litellm_total_tokens_metric_total", requested_model="claude-sonnet-4") == streamed.total_tokens
    assert grew("litellm_spend_metric_total", requested_model="gpt-4o") == pytest.approx(cost, abs=1e-9)

    assert grew("litellm_request_total_latency_metric_count", requested_model="gpt-4o") == 1
    # A stream is timed to its first byte; its whole length is not waited for.
    ttft = "litellm_llm_api_time_to_first_token_metric_count"
    assert grew(ttft, model="anthropic/claude-sonnet-4-20250514") == 1
    assert grew("litellm_llm_api_latency_metric_count", model="openai/gpt-4o", requested_model="gpt-4o") == 1
    assert grew("litellm_request_total_latency_metric_count", requested_model="claude-sonnet-4") == 0
    states = {dict(ls)["model_id"]: v for (n, ls), v in after.items() if n == "litellm_deployment_state"}
    assert len(states) == 5 and set(states.values()) == {0.0}


def test_metrics_are_off_unless_the_callback_is_on(gateway):
    with gateway.http() as h:
        r = h.get("/metrics", headers=gateway.auth())
    assert r.status_code == 404


def test_metrics_can_require_the_master_key(mock, tmp_path):
    gw = start(
        mock, tmp_path, '  callbacks: ["prometheus"]\n  require_auth_for_metrics_endpoint: true\n'
    )
    try:
        with gw.http() as h:
            assert h.get("/metrics").status_code == 401
            assert h.get("/metrics", headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
        samples = scrape(gw, gw.auth())
        assert any(n == "litellm_deployment_state" for (n, _) in samples)
    finally:
        gw.proc.stop()


def test_metrics_count_fallbacks(mock, tmp_path, marker):
    """A model whose upstream is down falls back to another: the fallback
    is counted with the model that failed, the one that answered, and why."""
    gw = start(
        mock,
        tmp_path,
        '  callbacks: ["prometheus"]\n  fallbacks: [{"dead-upstream": ["gpt-4o"]}]\n',
    )
    try:
        resp = gw.client().chat.completions.create(
            model="dead-upstream", messages=[{"role": "user", "content": f"hi {marker}"}]
        )
        assert resp.choices[0].message.content
        samples = scrape(gw)
        ok = value(
            samples,
            "litellm_deployment_successful_fallbacks_total",
            requested_model="dead-upstream",
            fallback_model="gpt-4o",
        )
        assert ok == 1
        assert value(samples, "litellm_deployment_failed_fallbacks_total") == 0
        # The request itself succeeded, under the name it asked for.
        assert value(
            samples, "litellm_proxy_total_requests_metric_total", requested_model="dead-upstream", status_code="200"
        ) == 1
    finally:
        gw.proc.stop()
