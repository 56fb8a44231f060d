"""Replicas counting a virtual key's rate limits together in Redis, as a
LiteLLM admin configures it (`litellm_settings.cache` with `cache_params`,
or `router_settings.redis_host`): requests a minute, tokens a minute and
requests at once hold across every replica; when Redis is gone each replica
counts alone, and together again once it is back. Deployments' rpm and
cooldowns hold across replicas too."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import (
    MASTER_KEY,
    REDIS_PASSWORD,
    UPSTREAM_KEY,
    Gateway,
    Mock,
    Redis,
    SlowStream,
    gateway_config,
    serve_config,
)
from test_keys import away_from_a_minute_edge, chat, eventually, generate, refused


def start(mock: Mock, tmp: Path, db: Path, redis: Redis, name: str, how: str) -> Gateway:
    """A replica on the SQLite file `db`, counting limits in `redis`, named
    the way `how` says: LiteLLM's cache settings or its router's."""
    text = gateway_config(mock.base, MASTER_KEY) + f"  database_url: sqlite://{db}\n  key_sync_interval: 0.2\n"
    if how == "cache_params":
        text = text.replace(
            "litellm_settings:\n",
            "litellm_settings:\n  cache: true\n  cache_params:\n    type: redis\n"
            f"    host: 127.0.0.1\n    port: {redis.port}\n    password: {REDIS_PASSWORD}\n"
            "    ttl: 600\n",
        )
    else:
        text += (
            f"router_settings:\n  redis_host: 127.0.0.1\n  redis_port: {redis.port}\n"
            f"  redis_password: {REDIS_PASSWORD}\n"
        )
    return Gateway(proc=serve_config(name, text, tmp), master_key=MASTER_KEY, config_text=text)


@pytest.fixture(scope="module")
def replicas(mock, redis_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shared")
    db = tmp / "llmux.db"
    one = start(mock, tmp, db, redis_server, "shared-1", "cache_params")
    # The second names the same Redis as LiteLLM's router settings do.
    two = start(mock, tmp, db, redis_server, "shared-2", "router_settings")
    try:
        yield one, two
    finally:
        one.proc.stop()
        two.proc.stop()
    for gw in (one, two):
        log = gw.proc.log_path.read_text()
        for secret in (REDIS_PASSWORD, MASTER_KEY, UPSTREAM_KEY):
            assert secret not in log, f"{secret!r} in {gw.proc.name}'s log"


def test_a_keys_requests_a_minute_are_counted_across_replicas(replicas, redis_server):
    one, two = replicas
    away_from_a_minute_edge()
    made = generate(one, rpm_limit=3)
    key = made["key"]
    for gw in (one, two, one):
        assert chat(gw, key).http_response.status_code == 200
    # Counted under the key's hash, never the key.
    assert redis_server.command("HGET", f"llmux:limits:{{{made['token']}}}", "requests") == "3"
    # Each replica has served at most two: alone, each would let a third in.
    with pytest.raises(openai.RateLimitError) as e:
        chat(two, key)
    assert "rpm_limit" in e.value.body["message"]
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    assert refused(one, key) == 429


def test_what_is_left_of_a_keys_limits_is_said_as_every_replica_counted_it(replicas):
    one, two = replicas
    away_from_a_minute_edge()
    key = generate(one, rpm_limit=10, model_rpm_limit={"gpt-4o-mini": 4})["key"]
    left = [
        (h["x-ratelimit-remaining-requests"], h["x-litellm-key-remaining-requests-gpt-4o-mini"])
        for h in (chat(gw, key).headers for gw in (one, two, one))
    ]
    assert left == [("9", "3"), ("8", "2"), ("7", "1")]


def test_a_keys_tokens_a_minute_are_counted_across_replicas(replicas, redis_server):
    one, two = replicas
    away_from_a_minute_edge()
    made = generate(one, tpm_limit=5)
    key = made["key"]
    r = chat(one, key)
    used = r.parse().usage.total_tokens
    assert used > 5
    # The tokens are counted in Redis as the answer is sent; the other
    # replica, which has served the key nothing, refuses it from then on.
    counts = f"llmux:limits:{{{made['token']}}}"
    assert eventually(lambda: redis_server.command("HGET", counts, "tokens") == str(used))
    with pytest.raises(openai.RateLimitError) as e:
        chat(two, key)
    assert "tpm_limit" in e.value.body["message"]


def test_a_keys_limits_on_a_model_are_counted_across_replicas(replicas, redis_server):
    one, two = replicas
    away_from_a_minute_edge()
    made = generate(one, model_rpm_limit={"gpt-4o-mini": 3}, model_tpm_limit={"gpt-4o": 5})
    key = made["key"]
    for gw in (one, two, one):
        assert chat(gw, key).http_response.status_code == 200
    counts = f"llmux:limits:{{{made['token']}}}:model:gpt-4o-mini"
    assert redis_server.command("HGET", counts, "requests") == "3"
    with pytest.raises(openai.RateLimitError) as e:
        chat(two, key)
    assert "model_rpm_limit" in e.value.body["message"]
    # Tokens on gpt-4o: used on one replica, refused on the other.
    used = chat(one, key, model="gpt-4o").parse().usage.total_tokens
    tokens = f"llmux:limits:{{{made['token']}}}:model:gpt-4o"
    assert eventually(lambda: redis_server.command("HGET", tokens, "tokens") == str(used))
    with pytest.raises(openai.RateLimitError) as e:
        chat(two, key, model="gpt-4o")
    assert "model_tpm_limit" in e.value.body["message"]


def test_a_stream_on_one_replica_holds_the_keys_only_slot_on_the_other(replicas):
    one, two = replicas
    key = generate(one, max_parallel_requests=1)["key"]
    stream = SlowStream(one, key, "a b c d e f g h", 10)
    try:
        assert stream.opened.wait(10)
        with pytest.raises(openai.RateLimitError) as e:
            chat(two, key)
        assert "parallel" in e.value.body["message"]
    finally:
        stream.join()
    assert stream.text is not None
    # Given back when the stream ends: the other replica serves the key.
    assert eventually(lambda: refused(two, key) is None)


def test_readiness_names_redis_and_says_it_answers(replicas):
    one, _ = replicas
    with httpx.Client(base_url=one.base, trust_env=False, timeout=10) as h:
        body = h.get("/health/readiness").json()
    assert body["cache"] == "redis" and body["redis"] == "connected", body


def test_without_redis_each_replica_counts_alone_and_together_again_once_it_is_back(replicas, redis_server):
    one, two = replicas
    away_from_a_minute_edge()
    key = generate(one, rpm_limit=2)["key"]
    redis_server.stop()
    try:
        # Served without waiting on the missing Redis: each replica
        # counts the key's requests itself, and still refuses past them.
        started = time.monotonic()
        for gw in (one, one):
            assert chat(gw, key).http_response.status_code == 200
        assert refused(one, key) == 429
        assert chat(two, key).http_response.status_code == 200
        assert time.monotonic() - started < 10
        with httpx.Client(base_url=one.base, trust_env=False, timeout=10) as h:
            body = h.get("/health/readiness").json()
        assert body["status"] == "healthy" and body["redis"] == "disconnected", body
    finally:
        redis_server.start()

    # Back: the counts are shared again (a new key, as the old one's
    # requests this minute were counted apart).
    def connected() -> bool:
        with httpx.Client(base_url=two.base, trust_env=False, timeout=10) as h:
            return h.get("/health/readiness").json()["redis"] == "connected"

    assert eventually(connected, within=10)
    # Redis is asked again a second after it last failed.
    time.sleep(1.2)
    away_from_a_minute_edge()
    fresh = generate(one, rpm_limit=1)["key"]
    assert chat(one, fresh).http_response.status_code == 200
    assert refused(two, fresh) == 429


def test_a_replica_that_stops_without_giving_its_slots_back_loses_them(mock, redis_server, tmp_path):
    """A replica killed mid-stream never gives the key's slot back; the
    others take it as free once it has not said it holds it for 30 s. A
    live replica's long stream keeps its slot all the while."""
    db = tmp_path / "llmux.db"
    one = start(mock, tmp_path, db, redis_server, "stale-1", "cache_params")
    two = start(mock, tmp_path, db, redis_server, "stale-2", "cache_params")
    streams: list[SlowStream] = []
    try:
        killed_key = generate(one, max_parallel_requests=1)["key"]
        kept = generate(one, max_parallel_requests=1)
        # 80 tokens at one a second: open all through the test.
        streams += [SlowStream(two, kept["key"], "a " * 80, 1), SlowStream(one, killed_key, "a " * 80, 1)]
        assert all(s.opened.wait(10) for s in streams)
        one.proc.popen.kill()
        one.proc.popen.wait(10)
        killed_at = time.monotonic()
        assert refused(two, killed_key) == 429
        assert eventually(lambda: refused(two, killed_key) is None, within=45)
        # Not before the dead replica's last word went stale.
        assert time.monotonic() - killed_at > 15
        # The live replica has said it still holds its stream, as long
        # after it began: in the last 15 s.
        inflight = f"llmux:limits:{{{kept['token']}}}:inflight"
        assert redis_server.command("ZCOUNT", inflight, str(int(time.time()) - 15), "+inf") == ":1"
    finally:
        one.proc.stop()
        two.proc.stop()
        for s in streams:
            s.end()


def test_a_replica_that_shuts_down_gives_its_slots_back(mock, redis_server, tmp_path):
    """A replica stopped (SIGTERM) while a stream is open lets it finish,
    then gives its slot back before it exits: another replica serves the
    key at once, not 30 s later."""
    db = tmp_path / "llmux.db"
    one = start(mock, tmp_path, db, redis_server, "shutdown-1", "cache_params")
    two = start(mock, tmp_path, db, redis_server, "shutdown-2", "cache_params")
    try:
        key = generate(one, max_parallel_requests=1)["key"]
        stream = SlowStream(one, key, "a b c d e f g h", 4)
        assert stream.opened.wait(10)
        assert refused(two, key) == 429
        one.proc.popen.terminate()
        stream.join()
        assert stream.text and "h" in stream.text, "the open stream finished"
        one.proc.popen.wait(20)
        assert refused(two, key) is None
    finally:
        one.proc.stop()
        two.proc.stop()


def router_config(mock: Mock, redis: Redis) -> str:
    """Two models: `limited` (one deployment, 3 requests a minute) and
    `pair` (a deployment that answers, and one whose upstream does not know
    the path: the first request it gets cools it down)."""
    return f"""model_list:
  - model_name: limited
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{mock.base}/v1", api_key: {UPSTREAM_KEY}, rpm: 3}}
  - model_name: pair
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{mock.base}/v1", api_key: {UPSTREAM_KEY}}}
    model_info: {{id: pair-good}}
  - model_name: pair
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{mock.base}/broken/v1", api_key: {UPSTREAM_KEY}}}
    model_info: {{id: pair-broken}}
litellm_settings:
  callbacks: ["prometheus"]
router_settings:
  redis_host: 127.0.0.1
  redis_port: {redis.port}
  redis_password: {REDIS_PASSWORD}
  cooldown_time: 120
"""


def post(gw: Gateway, model: str) -> httpx.Response:
    with httpx.Client(base_url=gw.base, trust_env=False, timeout=30) as h:
        return h.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})


def deployment_state(gw: Gateway, id: str) -> str | None:
    with httpx.Client(base_url=gw.base, trust_env=False, timeout=10) as h:
        text = h.get("/metrics").text
    for line in text.splitlines():
        if line.startswith("litellm_deployment_state{") and f'model_id="{id}"' in line:
            return line.rsplit(" ", 1)[1]
    return None


@pytest.fixture
def routers(mock, redis_server, tmp_path):
    redis_server.command("FLUSHALL")
    text = router_config(mock, redis_server)
    one = Gateway(proc=serve_config("router-1", text, tmp_path), master_key=None, config_text=text)
    two = Gateway(proc=serve_config("router-2", text, tmp_path), master_key=None, config_text=text)
    try:
        yield one, two
    finally:
        one.proc.stop()
        two.proc.stop()


def test_a_deployments_rpm_holds_across_replicas(routers):
    one, two = routers
    away_from_a_minute_edge()
    assert [post(gw, "limited").status_code for gw in (one, one, two)] == [200, 200, 200]
    # Once replicas have told each other (every second), each knows the
    # deployment has served its 3 this minute: neither sends a fourth
    # (alone, each has served fewer than 3).
    time.sleep(4)
    for gw in (two, one):
        r = post(gw, "limited")
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60


def test_a_deployment_one_replica_saw_failing_rests_on_the_other(routers):
    one, two = routers
    # Round robin sends one of two requests to the broken deployment: it
    # fails (and is cooled down), the request is retried on the good one.
    for _ in range(2):
        r = post(one, "pair")
        assert r.status_code == 200 and r.headers["x-litellm-model-id"] == "pair-good", r.text
    assert deployment_state(one, "pair-broken") == "2"
    # The other replica, which never called it, rests it too, and sends
    # it nothing.
    assert eventually(lambda: deployment_state(two, "pair-broken") == "2", within=5)
    for _ in range(4):
        assert post(two, "pair").headers["x-litellm-model-id"] == "pair-good"
    with httpx.Client(base_url=two.base, trust_env=False, timeout=10) as h:
        metrics = h.get("/metrics").text
    assert not any(
        line.startswith("litellm_deployment_failure_responses_total") and "pair-broken" in line
        for line in metrics.splitlines()
    ), metrics
