//! The real binary against `llmux mock`: what a user of the gateway relies on
//! beyond what the SDK conformance suites (clients/) check.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn openai_config(mock: &Proc, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://{}/v1
      api_key: {UPSTREAM_KEY}
{extra}
"#,
        mock.addr
    )
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let mock = mock(&[]);
    let gw = gateway(&openai_config(&mock, ""), &[]);
    let mut body = chat("gpt-4o");
    body["stream"] = json!(true);
    body["mock"] =
        json!({"content": "one two three four five six seven eight nine ten", "tokens_per_sec": 4});
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    drop(stream);

    let cancelled = eventually(Duration::from_secs(5), || async {
        mock_stats(&mock).await["streams_cancelled"] == 1
    })
    .await;
    assert!(
        cancelled,
        "upstream stream still running: {}",
        mock_stats(&mock).await
    );
    assert_eq!(mock_stats(&mock).await["streams_completed"], 0);
}

#[tokio::test]
async fn sigterm_lets_open_streams_finish_refuses_new_connections_and_exits() {
    let mock = mock(&[]);
    let mut gw = gateway(&openai_config(&mock, ""), &[]);
    let mut body = chat("gpt-4o");
    body["stream"] = json!(true);
    body["mock"] = json!({"content": "a b c d e f g h", "tokens_per_sec": 8});
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut got = stream.next().await.unwrap().unwrap().to_vec();

    gw.terminate();
    // Shutting down: a new connection is not served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(
        fresh
            .get(gw.url("/health/liveliness"))
            .send()
            .await
            .is_err()
    );
    // The stream in flight runs to its end.
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(got).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains("\" h\""), "the last word arrived: {text}");
    let status = gw.wait_exit(Duration::from_secs(5)).expect("llmux exits");
    assert!(status.success(), "{status:?}");
}

/// A gateway in front of `mock` that wants `MASTER_KEY`.
fn keyed_gateway(mock: &Proc) -> Proc {
    let config = openai_config(
        mock,
        &format!("general_settings: {{master_key: {MASTER_KEY}}}"),
    );
    gateway(&config, &[])
}

#[tokio::test]
async fn every_route_but_the_health_probes_needs_the_master_key() {
    let mock = mock(&[]);
    let gw = keyed_gateway(&mock);
    let chat = chat("gpt-4o");
    let messages = json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let protected: &[(&str, Option<&Value>)] = &[
        ("/chat/completions", Some(&chat)),
        ("/v1/chat/completions", Some(&chat)),
        ("/messages", Some(&messages)),
        ("/v1/messages", Some(&messages)),
        ("/messages/count_tokens", Some(&messages)),
        ("/v1/messages/count_tokens", Some(&messages)),
        ("/models", None),
        ("/v1/models", None),
        ("/model/info", None),
        ("/v1/model/info", None),
        ("/health", None),
        ("/v1/health", None),
    ];
    for (path, body) in protected {
        for key in [
            None,
            Some("Bearer sk-wrong"),
            Some(&*format!("Bearer {MASTER_KEY}")),
        ] {
            let mut req = match body {
                Some(b) => client().post(gw.url(path)).json(b),
                None => client().get(gw.url(path)),
            };
            if let Some(k) = key {
                req = req.header("authorization", k);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let err: Value = resp.json().await.unwrap_or(Value::Null);
            if key.is_some_and(|k| k.contains(MASTER_KEY)) {
                assert_eq!(status, 200, "{path} with the key: {err}");
                continue;
            }
            assert_eq!(status, 401, "{path} with {key:?}");
            // Anthropic-shaped on the Messages routes, OpenAI-shaped elsewhere.
            if path.contains("/messages") {
                assert_eq!(err["type"], "error", "{path}: {err}");
                assert_eq!(
                    err["error"]["type"], "authentication_error",
                    "{path}: {err}"
                );
            } else {
                assert!(
                    err["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("API key"),
                    "{path}: {err}"
                );
            }
        }
    }
    for path in [
        "/health/liveliness",
        "/health/liveness",
        "/v1/health/liveliness",
        "/health/readiness",
        "/v1/health/readiness",
    ] {
        let resp = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_browser_page_may_call_the_gateway() {
    let mock = mock(&[]);
    let gw = keyed_gateway(&mock);
    let page = "http://localhost:3000";
    // The preflight: no key needed, anything may follow.
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", page)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], page);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization, content-type"
    );
    // The call itself, its answer readable by the page, headers included;
    // a refusal too.
    for (path, key) in [
        ("/v1/chat/completions", Some(MASTER_KEY)),
        ("/v1/models", Some(MASTER_KEY)),
        ("/v1/chat/completions", None),
    ] {
        let mut req = if path.contains("chat") {
            client().post(gw.url(path)).json(&chat("gpt-4o"))
        } else {
            client().get(gw.url(path))
        };
        req = req.header("origin", page);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            page,
            "{path}"
        );
        assert!(
            resp.headers()["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("x-litellm-model-id")
        );
    }
    // No origin, no CORS headers: a server-side client sees nothing new.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {MASTER_KEY}"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn stream_events_are_relayed_as_they_arrive() {
    let mock = mock(&[]);
    let gw = gateway(&openai_config(&mock, ""), &[]);
    let mut body = chat("gpt-4o");
    body["stream"] = json!(true);
    body["mock"] = json!({"content": "a b c d e", "tokens_per_sec": 5});
    let start = Instant::now();
    let resp = post_json(&gw, "/chat/completions", &body).await;
    let mut stream = resp.bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if chunk.windows(9).any(|w| w == b"\"content\"") {
            arrivals.push(start.elapsed());
        }
    }
    // Six pieces with content at 0.2 s apart: if llmux buffered, they would
    // arrive together at the end.
    assert!(arrivals.len() >= 5, "{arrivals:?}");
    assert!(
        arrivals[0] < Duration::from_millis(500),
        "first token late: {arrivals:?}"
    );
    assert!(
        *arrivals.last().unwrap() - arrivals[0] >= Duration::from_millis(600),
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_in_openai_shape() {
    let mock = mock(&[]);
    let gw = gateway(
        &openai_config(&mock, "general_settings: {max_request_size_mb: 1}"),
        &[],
    );
    let big = "x".repeat(2 * 1024 * 1024);
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": big}]});
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 413);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("limit"),
        "{err}"
    );
    // The Messages routes answer in Anthropic's shape.
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let resp = post_json(&gw, path, &body).await;
        assert_eq!(resp.status(), 413, "{path}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["type"], "error", "{path}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("limit"),
            "{path}: {err}"
        );
    }
    // A body under the limit still works.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn other_methods_and_paths_near_the_hot_routes_get_405_and_404() {
    let mock = mock(&[]);
    let gw = gateway(&openai_config(&mock, ""), &[]);
    for path in ["/v1/chat/completions", "/chat/completions", "/v1/messages"] {
        let resp = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 405, "GET {path}");
        let err: Value = resp.json().await.unwrap();
        assert!(err["error"]["message"].is_string(), "GET {path}: {err}");
    }
    for path in ["/v1/chat/completions/", "/v2/chat/completions"] {
        let resp = post_json(&gw, path, &chat("gpt-4o")).await;
        assert_eq!(resp.status(), 404, "POST {path}");
    }
}

#[tokio::test]
async fn serves_the_catalog_from_environment_keys_alone() {
    let mock = mock(&[]);
    let base = format!("http://{}/v1", mock.addr);
    let gw = gateway_from_env(&[("OPENAI_API_KEY", UPSTREAM_KEY), ("OPENAI_API_BASE", &base)]);
    let ids = model_ids(&gw).await;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for name in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-3.5-turbo",
        "gpt-4",
        "gpt-4-32k",
        "gpt-3.5-turbo-16k",
    ] {
        assert!(ids.contains(&name), "{name} not served: {ids:?}");
    }
    assert!(
        !ids.iter().any(|i| i.starts_with("claude")),
        "no Anthropic key, no Claude: {ids:?}"
    );

    let resp = client()
        .post(gw.url("/chat/completions"))
        .json(&chat("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sent = mock_requests(&mock).await;
    let last = sent.last().unwrap();
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert_eq!(last["body"]["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn azure_deployments_get_their_url_version_and_api_key_header() {
    let mock = mock(&[]);
    let cfg = format!(
        r#"
model_list:
  - model_name: gpt-4
    litellm_params:
      model: azure/my-gpt4
      api_base: http://{}
      api_key: os.environ/AZ_KEY
      api_version: "2024-06-01"
    model_info: {{base_model: azure/gpt-4}}
"#,
        mock.addr
    );
    let gw = gateway(&cfg, &[("AZ_KEY", UPSTREAM_KEY)]);
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat("gpt-4"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let sent = mock_requests(&mock).await;
    let r = sent.last().unwrap();
    assert_eq!(r["path"], "/openai/deployments/my-gpt4/chat/completions");
    assert_eq!(r["query"], "api-version=2024-06-01");
    assert_eq!(r["headers"]["api-key"], UPSTREAM_KEY);
    assert!(r["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn a_dead_deployment_fails_over_to_a_live_one() {
    let mock = mock(&[]);
    let cfg = format!(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:9/v1", api_key: k1}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k2}}
litellm_settings: {{num_retries: 1}}
"#,
        mock.addr
    );
    let gw = gateway(&cfg, &[]);
    for _ in 0..4 {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("gpt-4o"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

/// Two deployments of one model, the first answering `fault` (a mock run
/// with these flags), the second well.
fn sick_and_well(sick: &Proc, well: &Proc) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k1}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k2}}
"#,
        sick.addr, well.addr
    )
}

#[tokio::test]
async fn a_retry_after_does_not_hold_a_request_another_deployment_can_serve() {
    let sick = mock(&["--fault-status", "429", "--retry-after", "8"]);
    let well = mock(&[]);
    let gw = gateway(&sick_and_well(&sick, &well), &[]);
    let start = Instant::now();
    for _ in 0..4 {
        let resp = post_json(&gw, "/v1/chat/completions", &chat("gpt-4o")).await;
        assert_eq!(resp.status(), 200);
    }
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "waited out the sick deployment's Retry-After: {:?}",
        start.elapsed()
    );
    assert!(
        !mock_requests(&sick).await.is_empty(),
        "the sick one was tried"
    );
}

#[tokio::test]
async fn a_deployment_whose_key_is_refused_fails_over_and_rests() {
    for status in ["401", "403", "404"] {
        let sick = mock(&["--fault-status", status]);
        let well = mock(&[]);
        let gw = gateway(&sick_and_well(&sick, &well), &[]);
        for _ in 0..6 {
            let resp = post_json(&gw, "/v1/chat/completions", &chat("gpt-4o")).await;
            assert_eq!(resp.status(), 200, "{status}");
        }
        // Cooled down after its first refusal: not asked six times over.
        let asked = mock_requests(&sick).await.len();
        assert_eq!(
            asked, 1,
            "{status}: the refusing deployment was asked {asked} times"
        );
    }
    // One deployment alone: its refusal is the answer, not retried.
    let sick = mock(&["--fault-status", "401"]);
    let gw = gateway(&openai_config(&sick, ""), &[]);
    let resp = post_json(&gw, "/v1/chat/completions", &chat("gpt-4o")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(mock_requests(&sick).await.len(), 1);
}

#[tokio::test]
async fn litellm_request_fields_that_steer_the_gateway_are_not_sent_upstream() {
    let mock = mock(&[]);
    let gw = gateway(&openai_config(&mock, ""), &[]);
    let mut body = chat("gpt-4o");
    for (k, v) in [
        ("fallbacks", json!(["gpt-4o-mini"])),
        (
            "context_window_fallbacks",
            json!([{"gpt-4o": ["gpt-4o-mini"]}]),
        ),
        ("num_retries", json!(1)),
        ("drop_params", json!(true)),
        ("user", json!("u-1")),
    ] {
        body[k] = v;
    }
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let sent = &mock_requests(&mock).await[0]["body"];
    for k in [
        "fallbacks",
        "context_window_fallbacks",
        "num_retries",
        "drop_params",
    ] {
        assert!(sent.get(k).is_none(), "{k} went upstream: {sent}");
    }
    assert_eq!(sent["user"], "u-1", "the client's own fields still go");
}

#[tokio::test]
async fn a_model_that_fails_falls_back_to_the_models_its_config_or_request_names() {
    let dead = mock(&["--fault-status", "503"]);
    let live = mock(&[]);
    let cfg = format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{dead}/v1", api_key: k1}}
  - model_name: backup
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://{live}/v1", api_key: k2}}
  - model_name: big
    litellm_params: {{model: openai/gpt-4.1, api_base: "http://{live}/v1", api_key: k3}}
  - model_name: lone
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{dead}/v1", api_key: k4}}
litellm_settings:
  num_retries: 1
  fallbacks: [{{"primary": ["backup"]}}]
  context_window_fallbacks: [{{"backup": ["big"]}}]
"#,
        dead = dead.addr,
        live = live.addr
    );
    let gw = gateway(&cfg, &[]);
    // The config's fallback, streamed and not, after the retries.
    for stream in [false, true] {
        let mut body = chat("primary");
        body["stream"] = json!(stream);
        let resp = post_json(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status(), 200, "stream: {stream}");
        assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "1");
        let text = resp.text().await.unwrap();
        let whole = if stream {
            "[DONE]"
        } else {
            "Hello from llmux mock."
        };
        assert!(text.contains(whole), "{text}");
    }
    let sent = mock_requests(&live).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0]["body"]["model"], "gpt-4o-mini",
        "the backup's own model id"
    );
    // Claude Code's Messages API falls back the same way.
    let msg = json!({"model": "primary", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let resp = post_json(&gw, "/v1/messages", &msg).await;
    assert_eq!(resp.status(), 200);
    let m: Value = resp.json().await.unwrap();
    assert_eq!(m["content"][0]["text"], "Hello from llmux mock.");
    assert_eq!(mock_requests(&live).await.len(), 3);
    // The request's own fallbacks, for a model the config gives none.
    let mut body = chat("lone");
    body["fallbacks"] = json!(["big"]);
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    assert!(
        mock_requests(&live).await.last().unwrap()["body"]
            .get("fallbacks")
            .is_none(),
        "fallbacks steer the gateway, they are not sent"
    );
    // Without fallbacks the failure is the answer.
    let resp = post_json(&gw, "/v1/chat/completions", &chat("lone")).await;
    assert_eq!(resp.status(), 503);
    // A prompt too long takes the context-window list; a request the
    // upstream found wrong otherwise is not sent elsewhere.
    let mut body = chat("backup");
    body["mock"] = json!({"status": 400, "fail_times": 1, "key": "cw-1",
        "message": "This model's maximum context length is 128000 tokens."});
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "1");
    let last = mock_requests(&live).await.last().unwrap().clone();
    assert_eq!(last["body"]["model"], "gpt-4.1");
    let mut body = chat("backup");
    body["mock"] = json!({"status": 400, "fail_times": 1, "key": "bad-1", "message": "Invalid value for temperature."});
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn rpm_limits_answer_429_with_retry_after() {
    let mock = mock(&[]);
    let gw = gateway(
        &format!(
            r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k, rpm: 2}}
"#,
            mock.addr
        ),
        &[],
    );
    // Windows are calendar minutes: the three requests do not straddle
    // one's end.
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        % 60.0;
    if into > 55.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.5 - into)).await;
    }
    let mut statuses = vec![];
    let mut retry_after = None;
    for _ in 0..3 {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("gpt-4o"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if let Some(v) = resp.headers().get("retry-after") {
            retry_after = v.to_str().ok().and_then(|s| s.parse::<u64>().ok());
        }
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(
        mock_requests(&mock).await.len(),
        2,
        "the limited request never reached upstream"
    );
}

#[tokio::test]
async fn stream_timeout_is_a_streams_wait_and_timeout_a_whole_answers() {
    let mock = mock(&[]);
    let gw = gateway(
        &format!(
            r#"
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k, timeout: 30, stream_timeout: 1}}
litellm_settings: {{num_retries: 0}}
"#,
            mock.addr
        ),
        &[],
    );
    // A stream whose first byte is late: given up after stream_timeout,
    // not timeout.
    let mut body = chat("m");
    body["stream"] = json!(true);
    body["mock"] = json!({"first_byte_delay_ms": 4000});
    let t = Instant::now();
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A whole answer as slow is waited for: stream_timeout is not its.
    let mut body = chat("m");
    body["mock"] = json!({"first_byte_delay_ms": 2000});
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let info = get_json(&gw, "/v1/model/info").await;
    let params = &info["data"][0]["litellm_params"];
    assert_eq!(
        (
            params["timeout"].as_f64(),
            params["stream_timeout"].as_f64()
        ),
        (Some(30.0), Some(1.0))
    );
}

#[tokio::test]
async fn a_stalled_stream_ends_with_a_timeout_error_event() {
    let mock = mock(&[]);
    let gw = gateway(
        &format!(
            r#"
model_list:
  - model_name: slow
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k, timeout: 1}}
"#,
            mock.addr
        ),
        &[],
    );
    let mut body = chat("slow");
    body["stream"] = json!(true);
    body["mock"] = json!({"content": "a b c", "tokens_per_sec": 0.4});
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let err: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sent nothing"),
        "{err}"
    );
    assert!(
        !text.contains("[DONE]"),
        "a broken stream must not look complete"
    );

    // And a slow first byte is a 504.
    let mut body = chat("slow");
    body["mock"] = json!({"first_byte_delay_ms": 3000});
    let t = Instant::now();
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn openrouter_and_groq_names_resolve_and_carry_their_headers() {
    let mock = mock(&[]);
    let cfg = format!(
        r#"
model_list:
  - model_name: or-groq
    litellm_params: {{model: openrouter/groq, api_base: "http://{a}/v1", api_key: k}}
  - model_name: fast
    litellm_params: {{model: groq/llama3-70b, api_base: "http://{a}/v1", api_key: k}}
"#,
        a = mock.addr
    );
    let gw = gateway(&cfg, &[]);
    for m in ["or-groq", "fast"] {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat(m))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let sent = mock_requests(&mock).await;
    let or = &sent[0];
    assert!(
        or["body"]["model"].as_str().unwrap().contains('/'),
        "{}",
        or["body"]
    );
    assert!(
        or["body"]["provider"]["order"].is_array(),
        "routed to Groq: {}",
        or["body"]
    );
    assert_eq!(or["headers"]["x-title"], "llmux");
    assert!(or["headers"]["http-referer"].is_string());
    assert_eq!(sent[1]["body"]["model"], "llama3-70b-8192");
}

#[tokio::test]
async fn openrouter_says_what_a_call_cost_and_that_is_the_cost() {
    let mock = mock(&[]);
    let cfg = format!(
        r#"
model_list:
  - model_name: or
    litellm_params: {{model: openrouter/some-lab/unlisted-model, api_base: "http://{a}/v1", api_key: k}}
"#,
        a = mock.addr
    );
    let gw = gateway(&cfg, &[]);
    for stream in [false, true] {
        let mut body = chat("or");
        body["stream"] = json!(stream);
        let resp = post_json(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status(), 200);
        let header = resp
            .headers()
            .get("x-litellm-response-cost")
            .map(|v| v.to_str().unwrap().parse::<f64>().unwrap());
        let text = resp.text().await.unwrap();
        if stream {
            // A stream's cost is known at its end, past the headers.
            assert!(header.is_none());
            continue;
        }
        let answer: Value = serde_json::from_str(&text).unwrap();
        let cost = answer["usage"]["cost"]
            .as_f64()
            .expect("OpenRouter reported a cost");
        let header = header.expect("a model the catalog does not price still has a cost");
        assert!((header - cost).abs() < 1e-9, "{header} vs {cost}");
    }
    let sent = mock_requests(&mock).await;
    assert_eq!(sent[0]["body"]["usage"], json!({"include": true}));
    // A client's own `usage` is kept.
    let mut body = chat("or");
    body["usage"] = json!({"include": false});
    post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(
        mock_requests(&mock).await[2]["body"]["usage"],
        json!({"include": false})
    );
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_errors() {
    let mock = mock(&[]);
    let cfg = format!(
        "{}general_settings: {{master_key: {MASTER_KEY}}}\n",
        openai_config(&mock, "")
    );
    let gw = {
        // Debug logging: the most a user could turn on.
        let dir = TempDir::new("secrets");
        let path = dir.0.join("c.yaml");
        std::fs::write(&path, &cfg).unwrap();
        let _keep = dir;
        gateway(&cfg, &[("LLMUX_LOG", "debug")])
    };
    let auth = format!("Bearer {MASTER_KEY}");
    let c = client();
    let mut bodies = vec![];
    let mut body = chat("gpt-4o");
    body["mock"] =
        json!({"status": 401, "message": format!("Incorrect API key provided: {UPSTREAM_KEY}")});
    for req in [
        c.post(gw.url("/v1/chat/completions"))
            .header("authorization", &auth)
            .json(&chat("gpt-4o")),
        c.post(gw.url("/v1/chat/completions"))
            .header("authorization", &auth)
            .json(&body),
        c.post(gw.url("/v1/chat/completions"))
            .header("authorization", "Bearer wrong")
            .json(&chat("gpt-4o")),
        c.get(gw.url("/v1/model/info"))
            .header("authorization", &auth),
    ] {
        bodies.push(req.send().await.unwrap().text().await.unwrap());
    }
    let all = bodies.join("\n");
    assert!(
        all.contains("[redacted]"),
        "the upstream's echo of the key is redacted: {all}"
    );
    for secret in [UPSTREAM_KEY, MASTER_KEY, "Bearer wrong"] {
        assert!(!all.contains(secret), "{secret} in a response");
        assert!(!gw.stderr().contains(secret), "{secret} in the log");
    }
}

/// A TLS front for `mock`: serves `cert` and pipes each connection to the
/// mock in plain HTTP. Its port, and how many TLS sessions it accepted.
#[allow(clippy::unwrap_used)] // test support: failing loudly is the point
async fn tls_front(
    mock: &Proc,
    cert: &rcgen::Certificate,
    key: &rcgen::KeyPair,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_rustls::rustls;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let (count, upstream) = (accepted.clone(), mock.addr.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, count, upstream) = (acceptor.clone(), count.clone(), upstream.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mut plain = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn tls_upstreams_are_verified_and_their_connections_reused() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mock = mock(&[]);
    // A private CA the gateway is told to trust, and a certificate for
    // localhost it signed; and a self-signed one nobody vouches for.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let localhost = || CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = localhost().signed_by(&key, &issuer).unwrap();
    let (port, sessions) = tls_front(&mock, &cert, &key).await;
    let rogue_key = KeyPair::generate().unwrap();
    let rogue = localhost().self_signed(&rogue_key).unwrap();
    let (rogue_port, rogue_sessions) = tls_front(&mock, &rogue, &rogue_key).await;

    let dir = TempDir::new("ca");
    let ca_path = dir.0.join("ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let cfg = format!(
        r#"
model_list:
  - model_name: secure
    litellm_params: {{model: openai/gpt-4o, api_base: "https://localhost:{port}/v1", api_key: {UPSTREAM_KEY}}}
  - model_name: rogue
    litellm_params: {{model: openai/gpt-4o, api_base: "https://localhost:{rogue_port}/v1", api_key: {UPSTREAM_KEY}}}
litellm_settings: {{num_retries: 0}}
"#
    );
    // One worker, so every request uses the same connection pool.
    let gw = gateway(
        &cfg,
        &[
            ("SSL_CERT_FILE", ca_path.to_str().unwrap()),
            ("LLMUX_WORKERS", "1"),
        ],
    );

    for _ in 0..3 {
        let resp = post_json(&gw, "/v1/chat/completions", &chat("secure")).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert!(
            !v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{v}"
        );
    }
    let mut body = chat("secure");
    body["stream"] = json!(true);
    let resp = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    assert_eq!(
        sessions.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "four requests, one TLS session"
    );
    let auth_header = &mock_requests(&mock).await[0]["headers"]["authorization"];
    assert_eq!(auth_header, &json!(format!("Bearer {UPSTREAM_KEY}")));

    let resp = post_json(&gw, "/v1/chat/completions", &chat("rogue")).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("https://localhost:")
            && msg.contains("could not be reached")
            && msg.contains("certificate"),
        "{v}"
    );
    assert_eq!(rogue_sessions.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn check_validates_a_config_and_prints_what_it_serves() {
    let dir = TempDir::new("check");
    let good = dir.0.join("good.yaml");
    std::fs::write(
        &good,
        format!(
            "model_list:\n  - model_name: fast\n    litellm_params: {{model: groq/llama3-70b, api_key: {UPSTREAM_KEY}}}\n\
             \x20 - model_name: local\n    litellm_params: {{model: openai/m, api_base: \"https://u:base-secret@h.example/v1?key=base-secret\"}}\n\
             \x20 - model_name: \"team/*\"\n    litellm_params: {{model: \"openai/*\", api_base: \"https://u:base-secret@w.example/v1\"}}\n\
             router_settings: {{routing_strategy: latency-based-routing, redis_host: r.internal, redis_password: redis-secret-pw}}\n\
             general_settings: {{master_key: sk-m, database_url: \"sqlite:///var/lib/llmux/keys.db\"}}\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", good.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("fast") && stdout.contains("llama3-70b-8192"),
        "{stdout}"
    );
    assert!(
        stdout.contains("routing_strategy=latency-based-routing")
            && !stdout.contains("router_settings.redis_host: "),
        "{stdout}"
    );
    // The Redis it names is where replicas share state; its password is
    // not printed.
    assert!(
        stdout.contains("and cooldowns, in redis://r.internal:6379/0"),
        "{stdout}"
    );
    assert!(!stdout.contains("redis-secret-pw"), "{stdout}");
    assert!(!stdout.contains(UPSTREAM_KEY), "{stdout}");
    assert!(
        stdout.contains("virtual keys: on, kept in sqlite:///var/lib/llmux/keys.db"),
        "{stdout}"
    );
    // A base URL's credentials are not printed; the base is.
    assert!(
        !stdout.contains("base-secret")
            && stdout.contains("https://h.example/v1")
            && stdout.contains("https://w.example/v1"),
        "{stdout}"
    );

    let bad = dir.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "model_list:\n  - model_name: x\n    litellm_params: {model: nobody-knows}\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("openai/nobody-knows"), "{stderr}");
}

#[test]
fn the_readme_lists_every_catalog_name_with_what_it_resolves_to() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let catalog = llmux_core::Catalog::builtin().unwrap();
    for (_, e) in catalog.iter() {
        let row = format!("| `{}` |", e.name);
        let line = readme
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("README has no row for {}", e.name));
        assert!(
            line.contains(&format!("`{}`", e.upstream)),
            "README row for {} does not say it resolves to {}",
            e.name,
            e.upstream
        );
    }
}

#[tokio::test]
async fn wildcard_routes_serve_every_model_they_match() {
    let a = mock(&[]);
    let b = mock(&[]);
    let dead = mock(&["--fault-status", "503"]);
    let cfg = format!(
        r#"
model_list:
  - model_name: "anthropic/*"
    litellm_params: {{model: "anthropic/*", api_base: "http://{a}", api_key: k-ant}}
  - model_name: "team/*"
    litellm_params: {{model: "openai/*", api_base: "http://{a}/v1", api_key: k-a}}
  - model_name: "team/*"
    litellm_params: {{model: "openai/*", api_base: "http://{b}/v1", api_key: k-b}}
  - model_name: team/special
    litellm_params: {{model: openai/gpt-4.1, api_base: "http://{b}/v1", api_key: k-s}}
  - model_name: "down/*"
    litellm_params: {{model: "openai/*", api_base: "http://{dead}/v1", api_key: k-d}}
  - model_name: "dead/*"
    litellm_params: {{model: "openai/*", api_base: "http://{dead}/v1", api_key: k-d}}
litellm_settings:
  num_retries: 0
  fallbacks: [{{"down/*": ["team/gpt-4o-mini"]}}, {{"*": ["dead/gpt-4o", "team/gpt-4.1"]}}]
"#,
        a = a.addr,
        b = b.addr,
        dead = dead.addr
    );
    let gw = gateway(&cfg, &[]);

    // `anthropic/*` → Anthropic, the short name resolved as a listed one is.
    let resp = post_json(
        &gw,
        "/v1/chat/completions",
        &chat("anthropic/claude-sonnet-4"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-litellm-model-id"].clone();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from llmux mock."
    );
    let sent = mock_requests(&a).await;
    let sent = sent.last().unwrap();
    assert_eq!(sent["path"], "/v1/messages");
    assert_eq!(sent["body"]["model"], "claude-sonnet-4-20250514");
    assert_eq!(sent["headers"]["x-api-key"], "k-ant");
    // A bare name no pattern matches is tried under its provider's prefix;
    // every model of a route is the route's one deployment (one id).
    let resp = post_json(
        &gw,
        "/v1/chat/completions",
        &chat("claude-3-5-haiku-20241022"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-model-id"], id);
    assert_eq!(
        mock_requests(&a).await.last().unwrap()["body"]["model"],
        "claude-3-5-haiku-20241022"
    );
    // Claude Code's Messages API, streamed.
    let msg = json!({"model": "anthropic/claude-sonnet-4", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let resp = post_json(&gw, "/v1/messages", &msg).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("message_stop"));

    // `team/*` → `openai/*` over two deployments in turn; a name the
    // config lists wins over the pattern.
    for _ in 0..4 {
        let mut body = chat("team/gpt-4o-mini");
        body["stream"] = json!(true);
        let resp = post_json(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("[DONE]"));
    }
    let to = |sent: Vec<Value>, model: &str| {
        sent.iter()
            .filter(|r| r["body"]["model"] == model)
            .map(|r| r["headers"]["authorization"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        to(mock_requests(&a).await, "gpt-4o-mini"),
        ["Bearer k-a"; 2]
    );
    assert_eq!(
        to(mock_requests(&b).await, "gpt-4o-mini"),
        ["Bearer k-b"; 2]
    );
    let resp = post_json(&gw, "/v1/chat/completions", &chat("team/special")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(to(mock_requests(&b).await, "gpt-4.1"), ["Bearer k-s"]);

    // A name nothing serves is still a 404.
    let resp = post_json(&gw, "/v1/chat/completions", &chat("other/model")).await;
    assert_eq!(resp.status(), 404);

    // A route's fallbacks apply to every model it serves, before `*`'s.
    let resp = post_json(&gw, "/v1/chat/completions", &chat("down/gpt-4o")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "1");
    assert_eq!(mock_requests(&dead).await.len(), 1);
    assert_eq!(
        mock_requests(&a).await.last().unwrap()["body"]["model"],
        "gpt-4o-mini"
    );
    // `*`'s list serves the rest, without trying the failed model again.
    let resp = post_json(&gw, "/v1/chat/completions", &chat("dead/gpt-4o")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "2");
    assert_eq!(mock_requests(&dead).await.len(), 2, "dead/gpt-4o once");
    assert_eq!(
        mock_requests(&b).await.last().unwrap()["body"]["model"],
        "gpt-4.1"
    );

    // The models the catalog knows are listed by the names that serve
    // them, with their prices and context windows; the patterns are not.
    let ids = model_ids(&gw).await;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert!(ids.contains(&"team/special"), "{ids:?}");
    assert!(
        ids.contains(&"anthropic/claude-sonnet-4-20250514"),
        "{ids:?}"
    );
    assert!(ids.contains(&"team/gpt-4o-mini"), "{ids:?}");
    assert!(!ids.iter().any(|i| i.contains('*')), "{ids:?}");
    let info = get_json(&gw, "/v1/model/info").await;
    let sonnet = info["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_name"] == "anthropic/claude-sonnet-4-20250514")
        .unwrap();
    assert!(sonnet["model_info"]["max_input_tokens"].as_u64().unwrap() > 100_000);
    assert!(
        sonnet["model_info"]["input_cost_per_token"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(!info.to_string().contains("k-ant"), "no key in /model/info");
}

#[tokio::test]
async fn a_catch_all_route_signs_bedrock_requests_and_only_those() {
    let m = mock(&[]);
    let cfg = format!(
        r#"
model_list:
  - model_name: "*"
    litellm_params: {{model: "*", api_base: "http://{}"}}
"#,
        m.addr
    );
    let gw = gateway(
        &cfg,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDWILDCARD"),
            ("AWS_SECRET_ACCESS_KEY", "wildcard-secret"),
            ("AWS_REGION", "eu-west-1"),
            ("OPENAI_API_KEY", "sk-oa-env"),
        ],
    );
    let resp = post_json(
        &gw,
        "/v1/chat/completions",
        &chat("bedrock/amazon.nova-lite"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sent = mock_requests(&m).await.last().unwrap().clone();
    assert_eq!(sent["path"], "/model/amazon.nova-lite-v1%3A0/converse");
    let auth = sent["headers"]["authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDWILDCARD/")
            && auth.contains("/eu-west-1/bedrock/"),
        "{auth}"
    );
    let resp = post_json(&gw, "/v1/chat/completions", &chat("openai/gpt-4o-mini")).await;
    assert_eq!(resp.status(), 200);
    let sent = mock_requests(&m).await.last().unwrap().clone();
    assert_eq!(sent["headers"]["authorization"], "Bearer sk-oa-env");
    assert!(sent["headers"].get("x-amz-date").is_none(), "{sent}");
    assert!(!gw.stderr().contains("wildcard-secret"));
}

#[tokio::test]
async fn a_catch_all_route_serves_what_its_name_tells_and_says_what_it_cannot() {
    let m = mock(&[]);
    let cfg = format!(
        r#"
model_list:
  - model_name: "*"
    litellm_params: {{model: "*", api_base: "http://{}/v1", api_key: k}}
"#,
        m.addr
    );
    let gw = gateway(&cfg, &[]);
    let resp = post_json(&gw, "/v1/chat/completions", &chat("gpt-4o-mini")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        mock_requests(&m).await.last().unwrap()["body"]["model"],
        "gpt-4o-mini"
    );
    let resp = post_json(&gw, "/v1/chat/completions", &chat("mystery-model")).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`mystery-model` matches `*`") && msg.contains("provider prefix"),
        "{msg}"
    );
    assert!(!msg.contains("model_list["), "{msg}");
}

#[tokio::test]
async fn model_group_aliases_are_served_and_listed_unless_hidden() {
    let m = mock(&[]);
    let dead = mock(&["--fault-status", "503"]);
    let cfg = format!(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{m}/v1", api_key: k}}
  - model_name: backup
    litellm_params: {{model: openai/gpt-4.1, api_base: "http://{m}/v1", api_key: k}}
  - model_name: down
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{dead}/v1", api_key: k}}
router_settings:
  num_retries: 0
  default_fallbacks: [gpt-4o]
  model_group_alias:
    gpt-4: gpt-4o
    quiet: {{model: gpt-4o, hidden: true}}
    old-down: down
litellm_settings:
  fallbacks: [{{"old-down": ["backup"]}}]
"#,
        m = m.addr,
        dead = dead.addr
    );
    let gw = gateway(&cfg, &[]);
    for name in ["gpt-4", "quiet"] {
        let resp = post_json(&gw, "/v1/chat/completions", &chat(name)).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(
            mock_requests(&m).await.last().unwrap()["body"]["model"],
            "gpt-4o"
        );
    }
    // Claude Code's Messages API too.
    let msg = json!({"model": "gpt-4", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let resp = post_json(&gw, "/v1/messages", &msg).await;
    assert_eq!(resp.status(), 200);
    let ids = model_ids(&gw).await;
    assert!(
        ids.contains(&"gpt-4".to_owned()) && ids.contains(&"gpt-4o".to_owned()),
        "{ids:?}"
    );
    assert!(!ids.contains(&"quiet".to_owned()), "{ids:?}");
    let info = get_json(&gw, "/v1/model/info").await;
    let alias = info["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["model_name"] == "gpt-4")
        .unwrap();
    assert_eq!(alias["litellm_params"]["model"], "openai/gpt-4o");
    assert!(alias["model_info"]["max_input_tokens"].as_u64().unwrap() > 0);

    // Fallbacks keyed by the alias a request names apply to it; a model
    // with none of its own takes the default ones.
    let last_model = || async { mock_requests(&m).await.last().unwrap()["body"]["model"].clone() };
    let resp = post_json(&gw, "/v1/chat/completions", &chat("old-down")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "1");
    assert_eq!(last_model().await, "gpt-4.1");
    let resp = post_json(&gw, "/v1/chat/completions", &chat("down")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "1");
    assert_eq!(last_model().await, "gpt-4o");
}

fn two_deployments(a: &Proc, b: &Proc, strategy: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k}}
  - model_name: m
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{}/v1", api_key: k}}
router_settings: {{routing_strategy: {strategy}}}
"#,
        a.addr, b.addr
    )
}

#[tokio::test]
async fn latency_based_routing_sends_to_the_faster_deployment() {
    let slow = mock(&["--latency-ms", "500"]);
    let fast = mock(&[]);
    let gw = gateway(&two_deployments(&slow, &fast, "latency-based-routing"), &[]);
    for _ in 0..8 {
        let resp = post_json(&gw, "/v1/chat/completions", &chat("m")).await;
        assert_eq!(resp.status(), 200);
    }
    // Each is measured once; then the faster serves.
    assert_eq!(mock_requests(&slow).await.len(), 1);
    assert_eq!(mock_requests(&fast).await.len(), 7);
}

/// Sends requests for `model` until the mock `m` has taken one more
/// (for at most 5 s).
async fn until_served_by(gw: &Proc, m: &Proc, model: &str) -> bool {
    let n = mock_requests(m).await.len();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        post_json(gw, "/v1/chat/completions", &chat(model)).await;
        if mock_requests(m).await.len() > n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn least_busy_routing_counts_a_stream_until_its_end() {
    let a = mock(&[]);
    let b = mock(&[]);
    let gw = gateway(&two_deployments(&a, &b, "least-busy"), &[]);
    let slow_stream = || {
        let mut body = chat("m");
        body["stream"] = json!(true);
        body["mock"] = json!({"content": "one two three four five six seven eight nine ten", "tokens_per_sec": 5});
        body
    };
    let resp = post_json(&gw, "/v1/chat/completions", &slow_stream()).await;
    assert_eq!(resp.status(), 200);
    let (busy, idle) = if mock_requests(&a).await.is_empty() {
        (&b, &a)
    } else {
        (&a, &b)
    };
    // While the stream runs (2 s), every other request goes to the idle one.
    for _ in 0..4 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("m")).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(mock_requests(busy).await.len(), 1);
    assert_eq!(mock_requests(idle).await.len(), 4);
    // Once it has ended, the busy one serves again.
    assert!(resp.text().await.unwrap().contains("[DONE]"));
    assert!(until_served_by(&gw, busy, "m").await);
    // A client that leaves mid-stream frees its deployment too.
    for m in [&a, &b] {
        client()
            .delete(m.url("/mock/requests"))
            .send()
            .await
            .unwrap();
    }
    let resp = post_json(&gw, "/v1/chat/completions", &slow_stream()).await;
    assert_eq!(resp.status(), 200);
    let left = if mock_requests(&a).await.is_empty() {
        &b
    } else {
        &a
    };
    drop(resp);
    assert!(until_served_by(&gw, left, "m").await);
}

#[tokio::test]
async fn cooldowns_rest_a_failing_deployment_unless_turned_off() {
    let sick = mock(&["--fault-status", "503"]);
    let well = mock(&[]);
    for (settings, sick_calls) in [
        ("", 1..=1),
        ("router_settings: {disable_cooldowns: true}", 2..=6),
    ] {
        let gw = gateway(&format!("{}{settings}\n", sick_and_well(&sick, &well)), &[]);
        client()
            .delete(sick.url("/mock/requests"))
            .send()
            .await
            .unwrap();
        for _ in 0..6 {
            let resp = post_json(&gw, "/v1/chat/completions", &chat("gpt-4o")).await;
            assert_eq!(resp.status(), 200);
        }
        let n = mock_requests(&sick).await.len();
        assert!(
            sick_calls.contains(&n),
            "{settings:?}: the sick one was tried {n} times"
        );
    }
}

#[tokio::test]
async fn health_asks_every_deployment_and_names_the_failing_ones() {
    let well = mock(&[]);
    let sick = mock(&["--fault-status", "503"]);
    let cfg = format!(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{well}/v1", api_key: {UPSTREAM_KEY}}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "http://{sick}/v1", api_key: {UPSTREAM_KEY}}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4, api_base: "http://{well}", api_key: {UPSTREAM_KEY}}}
  - model_name: "anthropic/*"
    litellm_params: {{model: "anthropic/*", api_base: "http://{well}", api_key: {UPSTREAM_KEY}}}
    model_info: {{health_check_model: anthropic/claude-3-5-haiku-20241022}}
  - model_name: "my-org/*"
    litellm_params: {{model: "openai/*", api_base: "http://{sick}/v1", api_key: {UPSTREAM_KEY}}}
  - model_name: "broken/*"
    litellm_params: {{model: "openai/*", api_base: "http://{well}/v1", api_key: {UPSTREAM_KEY}}}
    model_info: {{health_check_model: claude}}
general_settings: {{master_key: {MASTER_KEY}}}
"#,
        well = well.addr,
        sick = sick.addr
    );
    let gw = gateway(&cfg, &[]);
    let health = |query: &'static str| {
        let gw = &gw;
        async move {
            let r = client()
                .get(gw.url(&format!("/health{query}")))
                .bearer_auth(MASTER_KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            assert!(!text.contains(UPSTREAM_KEY), "{text}");
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let h = health("").await;
    // The listed three; the wildcard route with a health_check_model,
    // through it; the one naming a model another route serves, as
    // unhealthy; the one naming none, not at all.
    assert_eq!(
        (h["healthy_count"].as_u64(), h["unhealthy_count"].as_u64()),
        (Some(3), Some(2)),
        "{h}"
    );
    let names: Vec<&str> = h["healthy_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["model_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"anthropic/claude-3-5-haiku-20241022"),
        "{h}"
    );
    let misnamed = h["unhealthy_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model_name"] == "claude")
        .unwrap_or_else(|| panic!("{h}"));
    assert!(
        misnamed["error"]
            .as_str()
            .unwrap()
            .contains("health_check_model"),
        "{h}"
    );
    let bad = h["unhealthy_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model_name"] == "gpt-4o")
        .unwrap_or_else(|| panic!("{h}"));
    assert_eq!(bad["api_base"], format!("http://{}/v1", sick.addr));
    assert_eq!(bad["model_name"], "gpt-4o");
    assert!(
        bad["error"].as_str().unwrap().contains("503")
            || !bad["error"].as_str().unwrap().is_empty(),
        "{bad}"
    );
    // The checks are real requests, in each provider's own format.
    let paths: Vec<String> = mock_requests(&well)
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        paths.contains(&"/v1/chat/completions".to_owned())
            && paths.contains(&"/v1/messages".to_owned()),
        "{paths:?}"
    );
    // One model, or one deployment; a wildcard route by its pattern or
    // the model it is checked with (`claude` is both a listed model and
    // the misnamed route's check).
    let h = health("?model=claude").await;
    assert_eq!(
        (h["healthy_count"].as_u64(), h["unhealthy_count"].as_u64()),
        (Some(1), Some(1)),
        "{h}"
    );
    let h = health("?model=anthropic/*").await;
    assert_eq!(
        (h["healthy_count"].as_u64(), h["unhealthy_count"].as_u64()),
        (Some(1), Some(0)),
        "{h}"
    );
    assert_eq!(
        h["healthy_endpoints"][0]["model_name"],
        "anthropic/claude-3-5-haiku-20241022"
    );
    let id = bad["model_id"].as_str().unwrap().to_owned();
    let r = client()
        .get(gw.url(&format!("/health?model_id={id}")))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    let h: Value = r.json().await.unwrap();
    assert_eq!(
        (h["healthy_count"].as_u64(), h["unhealthy_count"].as_u64()),
        (Some(0), Some(1)),
        "{h}"
    );
}
