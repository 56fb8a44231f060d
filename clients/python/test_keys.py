"""Virtual keys, budgets, limits and spend, as a LiteLLM proxy admin and its
users meet them: keys made at /key/generate with the master key, used with
the official openai and anthropic SDKs, their spend read at /key/info and
/spend/logs, the gateway restarted on the same SQLite file; the same on
PostgreSQL, and replicas sharing one PostgreSQL database."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    ANTHROPIC_KEY,
    CLIENT_TIMEOUT_S,
    MASTER_KEY,
    PG_PASSWORD,
    UPSTREAM_KEY,
    Gateway,
    Mock,
    Postgres,
    SlowStream,
    child_env,
    gateway_config,
    llmux_bin,
    serve_config,
)

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


def start(mock: Mock, tmp: Path, db: Path | str, name: str = "gateway-keys") -> Gateway:
    """A gateway with virtual keys in `db`: a SQLite file, or a database URL.
    Keys are read again every 0.2 s, for what other replicas changed."""
    url = db if isinstance(db, str) else f"sqlite://{db}"
    text = gateway_config(mock.base, MASTER_KEY) + f"  database_url: {url}\n  key_sync_interval: 0.2\n"
    text += "router_settings:\n  model_group_alias:\n    mini: gpt-4o-mini\n"
    return Gateway(proc=serve_config(name, text, tmp), master_key=MASTER_KEY, config_text=text)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def keyed(request, mock, tmp_path_factory) -> Iterator[tuple[Gateway, Path | str]]:
    """The keyed gateway, on SQLite and on PostgreSQL."""
    tmp = tmp_path_factory.mktemp("keys")
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres")
        db: Path | str = pg.url(pg.new_database())
    else:
        db = tmp / "llmux.db"
    gw = start(mock, tmp, db, f"gateway-keys-{request.param}")
    try:
        yield gw, db
    finally:
        gw.proc.stop()


def admin(gw: Gateway, path: str, body: dict[str, Any] | None = None, **params: Any) -> httpx.Response:
    with gw.http() as h:
        if body is None:
            return h.get(path, headers=ADMIN, params=params)
        return h.post(path, headers=ADMIN, json=body)


def generate(gw: Gateway, **body: Any) -> dict[str, Any]:
    r = admin(gw, "/key/generate", body)
    assert r.status_code == 200, r.text
    return r.json()


def info(gw: Gateway, key: str) -> dict[str, Any]:
    r = admin(gw, "/key/info", key=key)
    assert r.status_code == 200, r.text
    return r.json()["info"]


def spend_logs(gw: Gateway, **params: Any) -> list[dict[str, Any]]:
    r = admin(gw, "/spend/logs", **params)
    assert r.status_code == 200, r.text
    return r.json()


def eventually(check, within: float = 3.0):
    """`check()`'s value once it is truthy, polled for at most `within` s: a
    stream's accounting happens as its body is dropped, just after the
    client has read its end."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def away_from_a_minute_edge() -> None:
    """Rate windows are calendar minutes: a test that sends several requests
    does not let them straddle one's end."""
    into = time.time() % 60
    if into > 55:
        time.sleep(60.5 - into)


def chat(gw: Gateway, key: str, model: str = "gpt-4o-mini", **kw: Any):
    return gw.client(api_key=key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], **kw
    )


def test_a_key_made_with_the_master_key_serves_its_models_and_counts_its_spend(keyed):
    gw, _ = keyed
    made = generate(gw, models=["gpt-4o-mini"], key_alias="alice", user_id="u-alice", max_budget=10)
    key = made["key"]
    assert key.startswith("sk-") and made["key_name"] == "sk-..." + key[-4:]
    assert made["token"] == made["token_id"] and len(made["token"]) == 64
    assert made["models"] == ["gpt-4o-mini"] and made["spend"] == 0

    raw = chat(gw, key)
    cost = float(raw.headers["x-litellm-response-cost"])
    usage = raw.parse().usage
    assert cost > 0

    # A model not on its list: 401, as LiteLLM answers.
    with pytest.raises(openai.AuthenticationError) as e:
        chat(gw, key, model="gpt-4o")
    assert e.value.body["type"] == "key_model_access_denied"
    assert "gpt-4o-mini" in e.value.body["message"]

    # It sees only its models.
    listed = [m.id for m in gw.client(api_key=key).models.list()]
    assert listed == ["gpt-4o-mini"]
    with gw.http() as h:
        r = h.get("/v1/model/info", headers={"Authorization": f"Bearer {key}"})
    assert [m["model_name"] for m in r.json()["data"]] == ["gpt-4o-mini"]

    # Its spend, by the key itself and by the admin.
    with gw.http() as h:
        own = h.get("/key/info", headers={"Authorization": f"Bearer {key}"})
    assert own.status_code == 200, own.text
    assert own.json()["info"]["spend"] == pytest.approx(cost, rel=1e-6)
    assert info(gw, key)["spend"] == pytest.approx(cost, rel=1e-6)
    assert info(gw, made["token"])["key_alias"] == "alice"

    rows = spend_logs(gw, api_key=key)
    assert len(rows) == 1
    row = rows[0]
    # The answer names its row, as LiteLLM's x-litellm-call-id does.
    assert raw.headers["x-litellm-call-id"] == row["request_id"]
    assert spend_logs(gw, request_id=row["request_id"]) == [row]
    assert row["api_key"] == made["token"]
    assert row["spend"] == pytest.approx(cost, rel=1e-6)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
    assert row["model_group"] == "gpt-4o-mini" and row["call_type"] == "acompletion"
    assert row["user"] == "u-alice" and row["metadata"]["user_api_key_alias"] == "alice"
    assert row["startTime"] <= row["endTime"]
    assert spend_logs(gw, user_id="u-alice") == rows


def test_a_streamed_answer_counts_when_it_ends(keyed):
    gw, _ = keyed
    key = generate(gw, models=["gpt-4o-mini", "claude-sonnet-4"])["key"]
    stream = gw.client(api_key=key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage][-1]
    call_id = stream.response.headers["x-litellm-call-id"]
    rows = eventually(lambda: spend_logs(gw, api_key=key))
    assert [r["total_tokens"] for r in rows] == [usage.total_tokens]
    assert rows[0]["request_id"] == call_id
    assert rows[0]["spend"] > 0
    assert info(gw, key)["spend"] == pytest.approx(rows[0]["spend"], rel=1e-6)

    # Claude Code's way in: the anthropic SDK, the key in x-api-key.
    claude = anthropic.Anthropic(
        base_url=gw.base, api_key=key, timeout=CLIENT_TIMEOUT_S, max_retries=0
    )
    msg = claude.messages.create(
        model="claude-sonnet-4", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    )
    with claude.messages.stream(
        model="claude-sonnet-4", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as s:
        streamed = s.get_final_message()
    rows = eventually(lambda: len(spend_logs(gw, api_key=key)) == 3 and spend_logs(gw, api_key=key))
    assert [r["call_type"] for r in rows[:2]] == ["anthropic_messages"] * 2
    assert {r["prompt_tokens"] for r in rows[:2]} == {
        msg.usage.input_tokens,
        streamed.usage.input_tokens,
    }
    assert info(gw, key)["spend"] == pytest.approx(sum(r["spend"] for r in rows), rel=1e-6)


def test_a_stream_its_client_leaves_early_is_charged_an_estimate(keyed):
    """A user pressing stop (Roo Code, Claude Code) before the upstream's
    usage: the key is charged for the prompt and what it was sent, not
    nothing."""
    gw, _ = keyed
    key = generate(gw, models=["gpt-4o-mini", "claude-sonnet-4"])["key"]
    words = " ".join(f"w{i}" for i in range(60))
    slow = f'<mock>{{"content": "{words}", "tokens_per_sec": 20}}</mock>'
    prompt = "Refactor this module. " * 50 + slow
    stream = gw.client(api_key=key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    seen = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
            if seen == 3:
                break
    stream.close()
    rows = eventually(lambda: spend_logs(gw, api_key=key))
    assert len(rows) == 1, rows
    row = rows[0]
    # About four bytes of the request a token: the prompt is ~1,200 bytes.
    assert 250 <= row["prompt_tokens"] <= 500, row
    assert 3 <= row["completion_tokens"] < 60, row
    assert row["spend"] > 0
    assert info(gw, key)["spend"] == pytest.approx(row["spend"], rel=1e-6)

    # Claude Code's stream: the input tokens Claude gave at its start.
    claude = anthropic.Anthropic(base_url=gw.base, api_key=key, timeout=CLIENT_TIMEOUT_S, max_retries=0)
    with claude.messages.stream(
        model="claude-sonnet-4", max_tokens=200, messages=[{"role": "user", "content": prompt}]
    ) as s:
        for i, _ in enumerate(s.text_stream):
            if i == 2:
                break
    rows = eventually(lambda: len(spend_logs(gw, api_key=key)) == 2 and spend_logs(gw, api_key=key))
    claude_row = rows[0]
    assert claude_row["call_type"] == "anthropic_messages", claude_row
    assert claude_row["prompt_tokens"] > 0 and claude_row["completion_tokens"] >= 3, claude_row
    assert claude_row["spend"] > 0


def test_over_budget_a_key_is_refused_until_its_budget_is_raised(keyed):
    gw, _ = keyed
    key = generate(gw, max_budget=0.0000001)["key"]
    chat(gw, key)  # under budget when it starts
    with pytest.raises(openai.BadRequestError) as e:
        chat(gw, key)
    assert e.value.body["type"] == "budget_exceeded"
    assert "Max budget: 0.0000001" in e.value.body["message"]
    # The Messages API refuses it too, in Anthropic's shape.
    claude = anthropic.Anthropic(base_url=gw.base, api_key=key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model="claude-sonnet-4", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    r = admin(gw, "/key/update", {"key": key, "max_budget": 1})
    assert r.status_code == 200 and r.json()["max_budget"] == 1
    assert chat(gw, key).http_response.status_code == 200


def test_a_budget_on_a_model_stops_that_model_only(keyed):
    gw, _ = keyed
    made = generate(
        gw,
        model_max_budget={
            "gpt-4o-mini": {"budget_limit": "0.0000001", "time_period": "1d"},
            "claude-sonnet-4": {"max_budget": 0.0000001},
        },
    )
    key = made["key"]
    assert made["model_max_budget"]["claude-sonnet-4"] == {"max_budget": 0.0000001}
    chat(gw, key, model="mini")  # under budget when it starts; through an alias of it
    with pytest.raises(openai.BadRequestError) as e:
        chat(gw, key)
    assert e.value.body["type"] == "budget_exceeded"
    assert "gpt-4o-mini" in e.value.body["message"] and "model_max_budget" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        chat(gw, key, model="mini")
    # Other models go on; the Messages API refuses a spent one in Anthropic's shape.
    assert chat(gw, key, model="gpt-4o").http_response.status_code == 200
    claude = anthropic.Anthropic(base_url=gw.base, api_key=key, max_retries=0)
    ask = dict(model="claude-sonnet-4", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    claude.messages.create(**ask)
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(**ask)
    assert "claude-sonnet-4" in e.value.body["error"]["message"]
    i = info(gw, key)
    assert i["model_spend"]["gpt-4o-mini"] > 0 and i["spend"] > i["model_spend"]["gpt-4o-mini"]
    # Raised: served again.
    r = admin(gw, "/key/update", {"key": key, "model_max_budget": {"gpt-4o-mini": {"max_budget": 10}}})
    assert r.status_code == 200, r.text
    assert chat(gw, key).http_response.status_code == 200


def test_rate_limits_answer_429_with_retry_after(keyed):
    gw, _ = keyed
    away_from_a_minute_edge()
    key = generate(gw, rpm_limit=2)["key"]
    chat(gw, key)
    chat(gw, key)
    with pytest.raises(openai.RateLimitError) as e:
        chat(gw, key)
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    assert "rpm_limit" in e.value.body["message"]


def test_limits_per_model_hold_each_model_apart_through_both_apis(keyed):
    gw, _ = keyed
    away_from_a_minute_edge()
    made = generate(gw, model_rpm_limit={"gpt-4o-mini": 2}, model_tpm_limit={"claude-sonnet-4": 5})
    # Kept in the key's metadata, as LiteLLM keeps them, and echoed.
    assert made["model_rpm_limit"] == {"gpt-4o-mini": 2}
    key = made["key"]
    assert info(gw, key)["metadata"]["model_tpm_limit"] == {"claude-sonnet-4": 5}
    chat(gw, key)
    chat(gw, key)
    with pytest.raises(openai.RateLimitError) as e:
        chat(gw, key)
    assert "gpt-4o-mini" in e.value.body["message"] and "model_rpm_limit" in e.value.body["message"]
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    # Another model is not limited by it.
    for _ in range(3):
        assert chat(gw, key, model="gpt-4o").http_response.status_code == 200
    # Tokens a minute on Claude, through the Messages API: the first answer
    # uses more than 5, and the next is refused in Anthropic's shape.
    claude = anthropic.Anthropic(base_url=gw.base, api_key=key, max_retries=0)
    ask = dict(model="claude-sonnet-4", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    claude.messages.create(**ask)

    def refused_on_claude() -> bool:
        try:
            claude.messages.create(**ask)
            return False
        except anthropic.RateLimitError as e:
            assert e.body["error"]["type"] == "rate_limit_error", e.body
            assert "model_tpm_limit" in e.body["error"]["message"]
            return True

    assert eventually(refused_on_claude)
    # Taken out at /key/update: the model is served again.
    r = admin(gw, "/key/update", {"key": key, "model_rpm_limit": None})
    assert r.status_code == 200, r.text
    assert "model_rpm_limit" not in r.json()["metadata"]
    assert chat(gw, key).http_response.status_code == 200


def test_answers_carry_the_keys_spend_budget_and_what_is_left_of_its_limits(keyed):
    """LiteLLM's headers: the key's spend, budget and limits, OpenAI's
    x-ratelimit-* for its own rpm / tpm, and what is left on a model it
    limits, on a JSON answer and on a stream."""
    gw, _ = keyed
    away_from_a_minute_edge()
    made = generate(
        gw,
        max_budget=10,
        rpm_limit=5,
        tpm_limit=100_000,
        model_rpm_limit={"gpt-4o-mini": 3},
        model_tpm_limit={"gpt-4o-mini": 1_000},
    )
    key = made["key"]
    first = chat(gw, key)
    h = first.headers
    assert h["x-litellm-key-max-budget"] == "10.0"
    assert h["x-litellm-key-rpm-limit"] == h["x-ratelimit-limit-requests"] == "5"
    assert h["x-litellm-key-tpm-limit"] == h["x-ratelimit-limit-tokens"] == "100000"
    # This request counted; its tokens not known when it was let in.
    assert h["x-ratelimit-remaining-requests"] == "4"
    assert h["x-ratelimit-remaining-tokens"] == "100000"
    assert h["x-litellm-key-remaining-requests-gpt-4o-mini"] == "2"
    assert h["x-litellm-key-remaining-tokens-gpt-4o-mini"] == "1000"
    # The JSON answer's own cost is in the spend it reports.
    assert float(h["x-litellm-key-spend"]) == pytest.approx(float(h["x-litellm-response-cost"]))
    assert float(h["x-litellm-key-spend"]) == pytest.approx(info(gw, key)["spend"])
    used = first.parse().usage.total_tokens

    # A stream carries them too, with the first answer's tokens counted.
    with gw.client(api_key=key).chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as r:
        h = r.headers
        assert h["x-ratelimit-remaining-requests"] == "3"
        assert h["x-ratelimit-remaining-tokens"] == str(100_000 - used)
        assert h["x-litellm-key-remaining-requests-gpt-4o-mini"] == "1"
        assert h["x-litellm-key-remaining-tokens-gpt-4o-mini"] == str(1_000 - used)
        assert float(h["x-litellm-key-spend"]) > 0
        for _ in r.iter_lines():
            pass
    # Another model: the key's own limits go on counting, the model's are not there.
    h = chat(gw, key, model="gpt-4o").headers
    assert h["x-ratelimit-remaining-requests"] == "2"
    assert not any(n.startswith("x-litellm-key-remaining-") for n in h)

    # A key without limits or budget says its spend only; the master key none of it.
    plain = generate(gw)["key"]
    h = chat(gw, plain).headers
    assert float(h["x-litellm-key-spend"]) > 0
    assert not any(n.startswith(("x-ratelimit-", "x-litellm-key-")) and n != "x-litellm-key-spend" for n in h)
    h = chat(gw, MASTER_KEY).headers
    assert h["x-litellm-call-id"].startswith("req_")
    assert not any(n.startswith(("x-ratelimit-", "x-litellm-key-")) for n in h)


def test_a_keys_limit_on_a_model_holds_on_the_fallbacks_it_names(keyed):
    gw, _ = keyed
    away_from_a_minute_edge()
    key = generate(gw, model_rpm_limit={"gpt-4o": 1})["key"]
    # The model asked for is down: its fallback answers, and is counted.
    r = chat(gw, key, model="dead-upstream", extra_body={"fallbacks": ["gpt-4o"]})
    assert r.http_response.status_code == 200
    with pytest.raises(openai.RateLimitError) as e:
        chat(gw, key, model="gpt-4o")
    assert "gpt-4o" in e.value.body["message"]
    # Over its limit, the fallback is passed by, and the answer says why.
    with pytest.raises(openai.RateLimitError) as e:
        chat(gw, key, model="dead-upstream", extra_body={"fallbacks": ["gpt-4o"]})
    assert "model_rpm_limit" in e.value.body["message"]


def test_a_stream_holds_its_parallel_slot_until_it_ends(keyed):
    gw, _ = keyed
    key = generate(gw, max_parallel_requests=1)["key"]
    stream = SlowStream(gw, key, "a b c d e f g h", 10)
    assert stream.opened.wait(10)
    with pytest.raises(openai.RateLimitError) as e:
        chat(gw, key)
    assert "parallel" in e.value.body["message"]
    stream.join()
    assert stream.text is not None

    def free() -> bool:
        try:
            return chat(gw, key).http_response.status_code == 200
        except openai.RateLimitError:
            return False

    assert eventually(free), "the slot comes back when the stream ends"


def test_blocked_deleted_and_regenerated_keys(keyed):
    gw, _ = keyed
    made = generate(gw, key_alias="rotating")
    key = made["key"]
    chat(gw, key)
    assert admin(gw, "/key/block", {"key": key}).json()["blocked"] is True
    with pytest.raises(openai.AuthenticationError) as e:
        chat(gw, key)
    assert "blocked" in e.value.body["message"]
    admin(gw, "/key/unblock", {"key": key})
    chat(gw, key)

    spent = info(gw, key)["spend"]
    r = admin(gw, "/key/regenerate", {"key": key})
    assert r.status_code == 200, r.text
    new = r.json()["key"]
    assert new != key and r.json()["key_alias"] == "rotating"
    assert r.json()["spend"] == pytest.approx(spent)
    with pytest.raises(openai.AuthenticationError):
        chat(gw, key)
    chat(gw, new)

    # The same by path, as LiteLLM's UI calls it.
    r = admin(gw, f"/key/{new}/regenerate", {})
    assert r.status_code == 200, r.text
    with pytest.raises(openai.AuthenticationError):
        chat(gw, new)
    new = r.json()["key"]
    chat(gw, new)

    r = admin(gw, "/key/delete", {"key_aliases": ["rotating"]})
    assert r.json() == {"deleted_keys": ["rotating"]}
    with pytest.raises(openai.AuthenticationError):
        chat(gw, new)
    assert admin(gw, "/key/delete", {"keys": [new]}).status_code == 404
    assert admin(gw, "/key/info", key=new).status_code == 404


def test_keys_are_refused_bad_settings_and_admin_routes(keyed):
    gw, _ = keyed
    key = generate(gw)["key"]
    user = {"Authorization": f"Bearer {key}"}
    with gw.http() as h:
        for method, path in [
            ("POST", "/key/generate"),
            ("GET", "/key/list"),
            ("GET", "/spend/logs"),
            ("POST", "/v1/key/generate"),
        ]:
            r = h.request(method, path, headers=user, json={})
            assert r.status_code == 403, (path, r.text)
        other = generate(gw)["token"]
        assert h.get("/key/info", params={"key": other}, headers=user).status_code == 403
        assert h.post("/key/generate", json={}).status_code == 401
        # Health checks call every deployment: not a virtual key's to run.
        assert h.get("/health", headers=user).status_code == 403
    for body, field in [
        ({"max_budget": -1}, "max_budget"),
        ({"duration": "soon"}, "duration"),
        ({"models": "gpt-4o"}, "models"),
        ({"key": "not-sk"}, "key"),
        ({"model_max_budget": {"gpt-4o": 1}}, "model_max_budget"),
        ({"model_max_budget": {"openai/*": {"max_budget": 1}}}, "model_max_budget"),
        ({"model_max_budget": {"mini": {"max_budget": 1}}}, "model_max_budget"),
        ({"model_rpm_limit": {"gpt-4o": "2"}}, "model_rpm_limit"),
        ({"metadata": {"model_tpm_limit": [5]}}, "model_tpm_limit"),
        ({"key": MASTER_KEY}, "key"),
        ({"rpm_limit": 2**63}, "rpm_limit"),
        ({"duration": "36501d"}, "duration"),
    ]:
        r = admin(gw, "/key/generate", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == field
    generate(gw, key_alias="taken")
    r = admin(gw, "/key/generate", {"key_alias": "taken"})
    assert r.status_code == 400 and "already exists" in r.text
    # An unset LiteLLM field in the shape its UI sends is fine.
    generate(gw, aliases={}, config={}, tags=None, send_invite_email=False)


def test_spend_logs_for_a_date_range_are_summed_by_day_as_litellm_sums_them(keyed):
    gw, _ = keyed
    made = generate(gw, user_id="u-summed")
    key = made["key"]
    costs = {"gpt-4o-mini": 0.0, "gpt-4o": 0.0}
    for model in ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o"):
        costs[model] += float(chat(gw, key, model=model).headers["x-litellm-response-cost"])
    total = sum(costs.values())
    today = time.gmtime()
    yesterday = time.gmtime(time.time() - 86_400)
    day = lambda t: time.strftime("%Y-%m-%d", t)  # noqa: E731
    summary = spend_logs(gw, api_key=key, start_date=day(yesterday), end_date=day(today))
    # A row a day, the empty one too (unless the test ran across midnight).
    assert [d["startTime"] for d in summary] == [day(yesterday), day(today)]
    spent = summary[1] if summary[1]["spend"] else summary[0]
    assert spent["spend"] == pytest.approx(total)
    assert spent[made["token"]] == pytest.approx(total)
    assert spent["users"] == {"u-summed": pytest.approx(total)}
    assert spent["models"] == {m: pytest.approx(c) for m, c in costs.items()}
    # `summarize=false` gives the rows.
    rows = spend_logs(gw, api_key=key, start_date=day(yesterday), end_date=day(today), summarize="false")
    assert len(rows) == 3 and all(r["api_key"] == made["token"] for r in rows)
    for params, field in [
        ({"start_date": day(today), "end_date": day(yesterday)}, "end_date"),
        ({"start_date": "2000-01-01", "end_date": "2030-01-01"}, "end_date"),
        ({"start_date": day(today), "end_date": day(today), "summarize": "maybe"}, "summarize"),
    ]:
        r = admin(gw, "/spend/logs", **params)
        assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


def test_keys_made_get_the_configs_defaults_and_stay_within_its_bounds(mock, tmp_path):
    """LiteLLM's default_key_generate_params fill what /key/generate leaves
    out; its upperbound_key_generate_params fill the rest and refuse more,
    at /key/generate, /key/update and /key/regenerate."""
    text = gateway_config(mock.base, MASTER_KEY) + f"  database_url: sqlite://{tmp_path / 'llmux.db'}\n"
    text = text.replace(
        "litellm_settings:\n",
        "litellm_settings:\n"
        "  default_key_generate_params:\n"
        "    max_budget: 5\n"
        "    models: [gpt-4o-mini]\n"
        "    budget_duration: 30d\n"
        "  upperbound_key_generate_params:\n"
        "    max_budget: 100\n"
        "    rpm_limit: 60\n"
        "    duration: 90d\n",
        1,
    )
    gw = Gateway(proc=serve_config("gateway-key-params", text, tmp_path), master_key=MASTER_KEY, config_text=text)
    try:
        made = generate(gw, models=[], metadata={})
        assert made["max_budget"] == 5 and made["budget_duration"] == "30d"
        assert made["models"] == ["gpt-4o-mini"] and made["rpm_limit"] == 60
        expires = datetime.fromisoformat(made["expires"].replace("Z", "+00:00"))
        assert abs((expires - datetime.now(timezone.utc)) - timedelta(days=90)) < timedelta(minutes=1)
        key = made["key"]
        assert chat(gw, key).http_response.status_code == 200
        with pytest.raises(openai.AuthenticationError):
            chat(gw, key, model="gpt-4o")
        # What a body gives is kept, within the bounds.
        own = generate(gw, models=["gpt-4o"], max_budget=50, rpm_limit=10, duration="1h")
        assert own["models"] == ["gpt-4o"] and own["max_budget"] == 50 and own["rpm_limit"] == 10

        def refused(path: str, body: dict, field: str) -> None:
            r = admin(gw, path, body)
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["param"] == field
            assert err["message"].startswith(f"{field} is over max limit set in config - user_value="), err

        refused("/key/generate", {"max_budget": 500}, "max_budget")
        refused("/key/generate", {"duration": "91d"}, "duration")
        refused("/key/update", {"key": key, "rpm_limit": 61}, "rpm_limit")
        # Cleared, a bounded field would be no limit at all.
        refused("/key/update", {"key": key, "rpm_limit": None}, "rpm_limit")
        refused("/key/regenerate", {"key": key, "max_budget": 1000}, "max_budget")
        # Refused changes changed nothing: the key still works, as it was.
        assert chat(gw, key).http_response.status_code == 200
        assert info(gw, key)["rpm_limit"] == 60
        r = admin(gw, "/key/update", {"key": key, "rpm_limit": 30})
        assert r.status_code == 200 and r.json()["rpm_limit"] == 30
    finally:
        gw.proc.stop()


def test_an_expired_key_is_refused(keyed):
    gw, _ = keyed
    key = generate(gw, duration="1s")["key"]
    assert info(gw, key)["expires"] is not None
    chat(gw, key)  # a key lives at least its duration
    time.sleep(2.1)
    with pytest.raises(openai.AuthenticationError) as e:
        chat(gw, key)
    assert "Expired" in e.value.body["message"]


def test_key_list_pages_and_filters(keyed):
    gw, _ = keyed
    for i in range(3):
        generate(gw, team_id="team-pages", key_alias=f"page-{i}")
    r = admin(gw, "/key/list", team_id="team-pages", size=2).json()
    assert (r["total_count"], r["total_pages"], len(r["keys"])) == (3, 2, 2)
    second = admin(gw, "/key/list", team_id="team-pages", size=2, page=2).json()
    assert len(second["keys"]) == 1 and second["keys"][0] not in r["keys"]
    full = admin(gw, "/key/list", key_alias="page-1", return_full_object="true").json()
    assert [k["key_alias"] for k in full["keys"]] == ["page-1"]


def test_keys_and_spend_survive_a_restart_and_are_stored_hashed(mock, tmp_path):
    db = tmp_path / "llmux.db"
    gw = start(mock, tmp_path, db, "gateway-keys-1")
    try:
        made = generate(gw, key_alias="durable", max_budget=5)
        key = made["key"]
        cost = float(chat(gw, key).headers["x-litellm-response-cost"])
        master_cost = float(chat(gw, MASTER_KEY).headers["x-litellm-response-cost"])
    finally:
        gw.proc.stop()  # SIGTERM: queued spend is written before exit
    log = gw.proc.log_path.read_text()
    for secret in (key, MASTER_KEY, UPSTREAM_KEY, ANTHROPIC_KEY):
        assert secret not in log

    with sqlite3.connect(db) as c:
        stored = c.execute("SELECT token, spend FROM llmux_keys").fetchall()
        logged = c.execute("SELECT count(*) FROM llmux_spend_logs").fetchone()[0]
    assert stored == [(made["token"], pytest.approx(cost))]
    assert logged == 2, "the master key's requests are logged too"
    for f in tmp_path.glob("llmux.db*"):
        assert key.encode() not in f.read_bytes()

    gw = start(mock, tmp_path, db, "gateway-keys-2")
    try:
        assert info(gw, key)["spend"] == pytest.approx(cost)
        assert chat(gw, key).http_response.status_code == 200
        rows = spend_logs(gw)
        assert len(rows) == 3
        master_rows = [r for r in rows if r["api_key"] != made["token"]]
        assert [r["spend"] for r in master_rows] == [pytest.approx(master_cost)]
        r = admin(gw, "/key/regenerate", {"key": key, "max_budget": 7})
        assert r.status_code == 200, r.text
        new = r.json()["key"]
        assert r.json()["max_budget"] == 7
        chat(gw, new)
        spent = info(gw, new)["spend"]
    finally:
        gw.proc.stop()

    # The regenerated key is the one that works after a restart.
    gw = start(mock, tmp_path, db, "gateway-keys-3")
    try:
        with pytest.raises(openai.AuthenticationError):
            chat(gw, key)
        assert info(gw, new)["spend"] == pytest.approx(spent)
        assert chat(gw, new).http_response.status_code == 200
    finally:
        gw.proc.stop()


def test_readiness_says_the_keys_database_answers(keyed, gateway):
    gw, _ = keyed
    with gw.http() as h:
        r = h.get("/health/readiness")
    assert r.status_code == 200 and r.json()["db"] == "connected", r.text
    with gateway.http() as h:
        assert h.get("/health/readiness").json()["db"] == "Not connected"


def test_without_a_database_key_routes_say_how_to_get_one(gateway):
    with gateway.http() as h:
        r = h.post("/key/generate", headers=ADMIN, json={})
    assert r.status_code == 400
    assert "database_url" in r.json()["error"]["message"]


def test_a_key_cannot_reach_other_models_through_request_fallbacks(keyed, mock):
    gw, _ = keyed
    key = generate(gw, models=["dead-upstream"])["key"]
    with pytest.raises(openai.AuthenticationError) as e:
        chat(gw, key, model="dead-upstream", extra_body={"fallbacks": ["gpt-4o"]})
    assert e.value.body["type"] == "key_model_access_denied"
    assert "gpt-4o" in e.value.body["message"]
    marker = "fallback-not-taken"
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key=key).chat.completions.create(
            model="dead-upstream",
            messages=[{"role": "user", "content": marker}],
            extra_body={"fallbacks": ["gpt-4o"]},
        )
    assert mock.requests_with(marker) == []


def test_metrics_label_requests_tokens_and_spend_by_key_and_show_budgets(mock, tmp_path):
    text = (
        gateway_config(mock.base, MASTER_KEY).replace(
            "litellm_settings:\n", 'litellm_settings:\n  callbacks: ["prometheus"]\n', 1
        )
        + f"  database_url: sqlite://{tmp_path / 'llmux.db'}\n"
    )
    gw = Gateway(
        proc=serve_config("gateway-keys-metrics", text, tmp_path), master_key=MASTER_KEY, config_text=text
    )
    try:
        made = generate(gw, key_alias="metered", team_id="t1", user_id="u1", max_budget=2)
        cost = float(chat(gw, made["key"]).headers["x-litellm-response-cost"])
        chat(gw, MASTER_KEY)
        with gw.http() as h:
            body = h.get("/metrics").text
    finally:
        gw.proc.stop()
    samples = [s for f in text_string_to_metric_families(body) for s in f.samples]

    def one(name: str, **labels: str) -> float:
        found = [
            s.value for s in samples if s.name == name and labels.items() <= s.labels.items()
        ]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    mine = {"hashed_api_key": made["token"], "api_key_alias": "metered", "team": "t1", "user": "u1"}
    assert one("litellm_proxy_total_requests_metric_total", **mine, status_code="200") == 1
    assert one("litellm_spend_metric_total", **mine) == pytest.approx(cost)
    assert one("litellm_total_tokens_metric_total", **mine) > 0
    # The master key's requests carry no key labels (its hash is not shown).
    assert one("litellm_proxy_total_requests_metric_total", hashed_api_key="", status_code="200") == 1
    assert hashlib.sha256(MASTER_KEY.encode()).hexdigest() not in body
    key = {"hashed_api_key": made["token"], "api_key_alias": "metered"}
    assert one("litellm_api_key_max_budget_metric", **key) == 2
    assert one("litellm_remaining_api_key_budget_metric", **key) == pytest.approx(2 - cost)


def refused(gw: Gateway, key: str) -> int | None:
    """The status a chat with `key` is refused with, or None if it is served."""
    try:
        chat(gw, key)
        return None
    except openai.APIStatusError as e:
        return e.status_code


def test_replicas_on_one_postgres_database_share_keys_changes_and_spend(mock, postgres: Postgres, tmp_path):
    url = postgres.url(postgres.new_database())
    one = start(mock, tmp_path, url, "replica-1")
    two = start(mock, tmp_path, url, "replica-2")
    try:
        made = generate(one, models=["gpt-4o-mini"], key_alias="shared", max_budget=100)
        key = made["key"]
        # Made on one replica: the other's admin routes and clients find it
        # at once.
        assert info(two, key)["key_alias"] == "shared"
        costs = [float(chat(gw, key).headers["x-litellm-response-cost"]) for gw in (two, one, two)]
        total = sum(costs)
        # Each replica's spend reaches the key's record, and each replica
        # reads the others'.
        for gw in (one, two):
            assert eventually(lambda gw=gw: info(gw, key)["spend"] == pytest.approx(total)), info(gw, key)
            assert eventually(lambda gw=gw: len(spend_logs(gw, api_key=key)) == 3)
        database = url.rsplit("/", 1)[1]
        stored = postgres.psql(f"SELECT spend FROM llmux_keys WHERE token = '{made['token']}'", database)
        assert float(stored) == pytest.approx(total)

        # Blocked on one: refused on the other within the sync interval.
        assert admin(one, "/key/block", {"key": key}).status_code == 200
        assert eventually(lambda: refused(two, key) == 401)
        assert admin(two, "/key/unblock", {"key": key}).status_code == 200
        assert eventually(lambda: refused(one, key) is None)

        # Regenerated on two: the new key works on one at once, with the
        # record's spend; the old one stops there.
        r = admin(two, f"/key/{key}/regenerate", {})
        assert r.status_code == 200, r.text
        new = r.json()["key"]
        assert chat(one, new).http_response.status_code == 200
        assert eventually(lambda: refused(one, key) == 401)
        assert info(one, new)["spend"] > total

        # Deleted on one: gone on two.
        r = admin(one, "/key/delete", {"keys": [new]})
        assert r.status_code == 200, r.text
        assert eventually(lambda: refused(two, new) == 401)

        # A budget no replica spends alone but the two spend together
        # stops the key on both.
        cost = costs[0]
        budget = generate(two, models=["gpt-4o-mini"], max_budget=cost * 1.5)["key"]
        assert refused(one, budget) is None
        assert refused(two, budget) is None
        # Each replica spent one request's cost, under the budget; once
        # each has read the other's, both refuse the key.
        for gw in (one, two):
            assert eventually(lambda gw=gw: info(gw, budget)["spend"] == pytest.approx(2 * cost))
            assert refused(gw, budget) == 400

        # The same for a budget on a model: read from the spend log.
        per_model = generate(one, model_max_budget={"gpt-4o-mini": {"max_budget": cost * 1.5}})["key"]
        assert refused(one, per_model) is None
        assert refused(two, per_model) is None
        for gw in (one, two):
            spent = lambda gw=gw: info(gw, per_model)["model_spend"]["gpt-4o-mini"]  # noqa: E731
            assert eventually(lambda: spent() == pytest.approx(2 * cost)), spent()
            assert refused(gw, per_model) == 400
            assert chat(gw, per_model, model="gpt-4o").http_response.status_code == 200
    finally:
        one.proc.stop()
        two.proc.stop()
    for gw in (one, two):
        log = gw.proc.log_path.read_text()
        for secret in (PG_PASSWORD, key, new, budget, per_model, MASTER_KEY, UPSTREAM_KEY):
            assert secret not in log, f"{secret!r} in {gw.proc.name}'s log"

    # A replica started again finds both replicas' spend logs.
    again = start(mock, tmp_path, url, "replica-3")
    try:
        rows = spend_logs(again, api_key=made["token"])
        assert len(rows) >= 3
    finally:
        again.proc.stop()


def test_a_postgres_database_is_shown_without_its_password_and_a_wrong_one_stops_the_start(
    mock, postgres: Postgres, tmp_path
):
    db = postgres.new_database()
    good = postgres.url(db)
    config = tmp_path / "pg.yaml"
    config.write_text(gateway_config(mock.base, MASTER_KEY) + f"  database_url: {good}\n")
    out = subprocess.run([str(llmux_bin()), "check", str(config)], capture_output=True, text=True,
                         env=child_env(), timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"virtual keys: on, kept in postgresql://127.0.0.1:{postgres.port}/{db}" in out.stdout
    assert PG_PASSWORD not in out.stdout + out.stderr

    wrong = good.replace(PG_PASSWORD, "not-the-password-x")
    config.write_text(gateway_config(mock.base, MASTER_KEY) + f"  database_url: {wrong}\n")
    out = subprocess.run(
        [str(llmux_bin()), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )
    said = out.stdout + out.stderr
    assert out.returncode != 0
    assert "general_settings.database_url" in said and "password" in said, said
    assert "not-the-password-x" not in said


# LiteLLM's tables as its Prisma schema creates them (the columns the import
# reads, and some it must pass over).
LITELLM_TABLES = '''
CREATE TABLE "LiteLLM_TeamTable" (
    "team_id" TEXT NOT NULL PRIMARY KEY, "team_alias" TEXT, "models" TEXT[],
    "max_budget" DOUBLE PRECISION, "tpm_limit" BIGINT, "rpm_limit" BIGINT,
    "max_parallel_requests" INTEGER, "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "blocked" BOOLEAN NOT NULL DEFAULT false, "metadata" JSONB NOT NULL DEFAULT '{}',
    "model_max_budget" JSONB NOT NULL DEFAULT '{}');
CREATE TABLE "LiteLLM_UserTable" (
    "user_id" TEXT NOT NULL PRIMARY KEY, "max_budget" DOUBLE PRECISION,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0, "models" TEXT[],
    "tpm_limit" BIGINT, "rpm_limit" BIGINT, "model_max_budget" JSONB NOT NULL DEFAULT '{}');
CREATE TABLE "LiteLLM_VerificationToken" (
    "token" TEXT NOT NULL PRIMARY KEY, "key_name" TEXT, "key_alias" TEXT,
    "soft_budget_cooldown" BOOLEAN NOT NULL DEFAULT false,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0, "expires" TIMESTAMP(3), "models" TEXT[],
    "aliases" JSONB NOT NULL DEFAULT '{}', "config" JSONB NOT NULL DEFAULT '{}',
    "user_id" TEXT, "team_id" TEXT, "permissions" JSONB NOT NULL DEFAULT '{}',
    "max_parallel_requests" INTEGER, "metadata" JSONB NOT NULL DEFAULT '{}', "blocked" BOOLEAN,
    "tpm_limit" BIGINT, "rpm_limit" BIGINT, "max_budget" DOUBLE PRECISION,
    "budget_duration" TEXT, "budget_reset_at" TIMESTAMP(3),
    "allowed_cache_controls" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "allowed_routes" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "model_spend" JSONB NOT NULL DEFAULT '{}', "model_max_budget" JSONB NOT NULL DEFAULT '{}',
    "budget_id" TEXT, "organization_id" TEXT, "object_permission_id" TEXT,
    "created_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP, "created_by" TEXT,
    "updated_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP, "updated_by" TEXT);
'''


def test_keys_a_litellm_proxy_made_in_its_postgres_database_go_on_working(mock, postgres: Postgres, tmp_path):
    database = postgres.new_database()
    sha = lambda k: hashlib.sha256(k.encode()).hexdigest()  # noqa: E731
    plain, team_key, held = "sk-litellm-made-plain", "sk-litellm-made-team", "sk-litellm-made-held"
    per_model = "sk-litellm-made-per-model"
    litellm_master = "sk-litellm-old-master"
    postgres.psql(LITELLM_TABLES, database)
    postgres.psql(
        "INSERT INTO \"LiteLLM_TeamTable\" (team_id, models) VALUES ('t-eng', ARRAY['gpt-4o-mini']);"
        "INSERT INTO \"LiteLLM_TeamTable\" (team_id, models, max_budget) VALUES ('t-capped', ARRAY[]::TEXT[], 5);"
        "INSERT INTO \"LiteLLM_VerificationToken\" (token, key_name, key_alias, spend, max_budget, models, "
        f"  metadata, expires) VALUES ('{sha(plain)}', 'sk-...lain', 'from-litellm', 0.5, 0.50001, "
        "  ARRAY['gpt-4o-mini', 'claude-sonnet-4'], '{\"owner\": \"ops\"}', now() + interval '30 days');"
        f"INSERT INTO \"LiteLLM_VerificationToken\" (token, team_id, models) VALUES ('{sha(team_key)}', 't-eng', ARRAY[]::TEXT[]);"
        f"INSERT INTO \"LiteLLM_VerificationToken\" (token, key_alias, team_id, models) "
        f"  VALUES ('{sha(held)}', 'capped', 't-capped', ARRAY[]::TEXT[]);"
        # LiteLLM keeps a key's limits per model in its metadata.
        f"INSERT INTO \"LiteLLM_VerificationToken\" (token, models, metadata) VALUES ('{sha(per_model)}', "
        "  ARRAY[]::TEXT[], '{\"model_rpm_limit\": {\"gpt-4o-mini\": 1}}');"
        # LiteLLM keeps its own master key's hash as a key.
        f"INSERT INTO \"LiteLLM_VerificationToken\" (token, user_id, models) "
        f"  VALUES ('{sha(litellm_master)}', 'default_user_id', ARRAY[]::TEXT[]);",
        database,
    )
    gw = start(mock, tmp_path, postgres.url(database), "gateway-from-litellm")
    try:
        # Its spend came along: a little more, and its budget is spent.
        assert chat(gw, plain).http_response.status_code == 200
        assert eventually(lambda: refused(gw, plain) == 400)
        i = info(gw, plain)
        assert i["key_alias"] == "from-litellm" and i["metadata"]["owner"] == "ops"
        assert i["models"] == ["gpt-4o-mini", "claude-sonnet-4"]
        assert i["spend"] > 0.5
        # A team's key keeps its team's models.
        assert chat(gw, team_key).http_response.status_code == 200
        with pytest.raises(openai.AuthenticationError):
            chat(gw, team_key, model="gpt-4o")
        # A key with a limit on a model keeps it.
        away_from_a_minute_edge()
        assert chat(gw, per_model).http_response.status_code == 200
        assert refused(gw, per_model) == 429
        assert chat(gw, per_model, model="gpt-4o").http_response.status_code == 200
        # A key whose team has a budget llmux does not enforce is held,
        # blocked, and says why.
        assert refused(gw, held) == 401
        why = info(gw, held)["metadata"]["llmux_import_held"]
        assert why == ["its team's budget or limits (t-capped)"]
        # LiteLLM's master key is not a key with every model here.
        assert refused(gw, litellm_master) == 401
        assert "admin" in info(gw, litellm_master)["metadata"]["llmux_import_held"][0]
        r = admin(gw, "/key/delete", {"key_aliases": ["capped"]})
        assert r.status_code == 200, r.text
    finally:
        gw.proc.stop()
    log = gw.proc.log_path.read_text()
    assert "took the keys of LiteLLM's database" in log and "capped" in log
    for secret in (plain, team_key, held, per_model, litellm_master, PG_PASSWORD):
        assert secret not in log
    # LiteLLM's own rows are left as they were.
    assert postgres.psql('SELECT count(*) FROM "LiteLLM_VerificationToken"', database) == "5"

    # Taken once: a key deleted since does not come back.
    gw = start(mock, tmp_path, postgres.url(database), "gateway-from-litellm-2")
    try:
        assert refused(gw, held) == 401
        assert admin(gw, "/key/info", key=held).status_code == 404
        assert refused(gw, team_key) is None
    finally:
        gw.proc.stop()


def test_a_prisma_url_with_a_schema_finds_litellm_keys_there_and_keeps_llmux_tables_there(
    mock, postgres: Postgres, tmp_path
):
    database = postgres.new_database()
    key = "sk-in-a-schema"
    sha = hashlib.sha256(key.encode()).hexdigest()
    postgres.psql(
        "CREATE SCHEMA team_a; SET search_path TO team_a;" + LITELLM_TABLES
        + f"INSERT INTO \"LiteLLM_VerificationToken\" (token, models) VALUES ('{sha}', ARRAY['gpt-4o-mini']);",
        database,
    )
    url = postgres.url(database) + "?schema=team_a&connection_limit=4&pool_timeout=20"
    gw = start(mock, tmp_path, url, "gateway-schema")
    try:
        assert chat(gw, key).http_response.status_code == 200
        assert refused(gw, key) is None
    finally:
        gw.proc.stop()
    assert postgres.psql("SELECT to_regclass('team_a.llmux_keys') IS NOT NULL", database) == "t"
    assert postgres.psql("SELECT to_regclass('public.llmux_keys') IS NULL", database) == "t"
    log = gw.proc.log_path.read_text()
    assert "unrecognized connect parameter" not in log and PG_PASSWORD not in log

    # A schema that is not there yet is made, as Prisma makes it.
    fresh = postgres.url(postgres.new_database()) + "?schema=fresh_one"
    gw = start(mock, tmp_path, fresh, "gateway-schema-new")
    try:
        made = generate(gw, models=["gpt-4o-mini"])
        assert chat(gw, made["key"]).http_response.status_code == 200
    finally:
        gw.proc.stop()
