//! `llmux mock`: a fake upstream speaking OpenAI's Chat Completions,
//! Anthropic's Messages API, Google's Gemini API (AI Studio and Vertex AI,
//! with a service-account token endpoint) and Amazon Bedrock's Converse API
//! (JSON and the binary event stream) (see docs/mock.md). It answers like a provider,
//! streams at a set pace, records what it received, and injects faults on
//! request.

mod answer;
mod anthropic;
mod bedrock;
mod gemini;

use answer::{Answer, MockOptions};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use llmux_core::types::ChatCompletionRequest;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests kept for `GET /mock/requests`.
const MAX_RECORDED: usize = 1000;

#[derive(clap::Args, Clone, Debug)]
pub struct MockArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, short = 'p', default_value_t = 9000)]
    port: u16,
    /// Delay before the response headers, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Pace of streamed chunks (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    tokens_per_sec: f64,
    /// Answer every chat request with this HTTP status.
    #[arg(long)]
    fault_status: Option<u16>,
    /// `Retry-After` seconds sent with `--fault-status`.
    #[arg(long)]
    retry_after: Option<u64>,
    /// Lifetime of the access tokens `POST /token` issues (Vertex AI), in
    /// seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl: u64,
}

struct MockState {
    args: MockArgs,
    requests: Mutex<VecDeque<Value>>,
    failures: Mutex<HashMap<String, u64>>,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_cancelled: AtomicU64,
    /// Access tokens issued by `POST /token`, with their expiry.
    tokens: Mutex<HashMap<String, Instant>>,
    tokens_issued: AtomicU64,
}

/// Counts a stream as completed when its last event went out, or as
/// cancelled when it is dropped before that (the client hung up).
struct StreamGuard {
    state: Arc<MockState>,
    completed: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.completed {
            &self.state.streams_completed
        } else {
            &self.state.streams_cancelled
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn run(args: MockArgs) -> Result<(), std::io::Error> {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(MockState {
        args,
        requests: Mutex::new(VecDeque::new()),
        failures: Mutex::new(HashMap::new()),
        streams_started: AtomicU64::new(0),
        streams_completed: AtomicU64::new(0),
        streams_cancelled: AtomicU64::new(0),
        tokens: Mutex::new(HashMap::new()),
        tokens_issued: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route("/v1/messages", post(anthropic::messages))
        .route("/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/messages/count_tokens", post(anthropic::count_tokens))
        // Gemini (AI Studio): `{model}:{method}` in one wildcard, since a
        // path parameter cannot end at the ':'.
        .route("/v1beta/models/{*rest}", post(gemini::studio))
        .route("/v1/models/{*rest}", post(gemini::studio))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{*rest}",
            post(gemini::vertex),
        )
        .route(
            "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{*rest}",
            post(gemini::vertex),
        )
        .route("/token", post(gemini::token))
        // Bedrock Runtime: the model id arrives percent-encoded in one
        // segment (`…-v1%3A0`, ARNs with `%3A` and `%2F`).
        .route("/model/{model_id}/converse", post(bedrock::converse))
        .route(
            "/model/{model_id}/converse-stream",
            post(bedrock::converse_stream),
        )
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/mock/requests", get(recorded).delete(forget))
        .route("/mock/stats", get(stats))
        .with_state(state);
    println!(
        "llmux mock (OpenAI-, Anthropic-, Gemini- and Bedrock-compatible) listening on http://{addr}/v1"
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

async fn models() -> Json<Value> {
    let data: Vec<Value> = ["gpt-4o", "gpt-4o-mini", "mock-model"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "llmux-mock"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn recorded(State(s): State<Arc<MockState>>) -> Json<Value> {
    let list: Vec<Value> = s
        .requests
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    Json(Value::Array(list))
}

async fn stats(State(s): State<Arc<MockState>>) -> Json<Value> {
    Json(json!({
        "streams_started": s.streams_started.load(Ordering::Relaxed),
        "streams_completed": s.streams_completed.load(Ordering::Relaxed),
        "streams_cancelled": s.streams_cancelled.load(Ordering::Relaxed),
        "tokens_issued": s.tokens_issued.load(Ordering::Relaxed),
    }))
}

async fn forget(State(s): State<Arc<MockState>>) -> StatusCode {
    if let Ok(mut r) = s.requests.lock() {
        r.clear();
    }
    StatusCode::NO_CONTENT
}

async fn azure_chat(
    State(s): State<Arc<MockState>>,
    Path(deployment): Path<String>,
    req: Request,
) -> Response {
    handle(s, req, Some(deployment)).await
}

async fn chat(State(s): State<Arc<MockState>>, req: Request) -> Response {
    handle(s, req, None).await
}

async fn handle(s: Arc<MockState>, req: Request, deployment: Option<String>) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return error(400, "could not read the body", None),
    };
    record(&s, &parts.method, &parts.uri, &parts.headers, &body);

    let request: ChatCompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(400, &format!("Invalid request body: {e}"), None),
    };
    let body_field = request.extra.get("mock");
    let opts = match body_field {
        Some(m) if !m.is_null() => MockOptions::read(Some(m), &parts.headers, &Value::Null),
        _ => {
            let value = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
            MockOptions::read(None, &parts.headers, &value)
        }
    };
    let opts = match opts {
        Ok(o) => o,
        Err(e) => return error(400, &format!("Invalid mock directive: {e}"), None),
    };

    if let Some(f) = fault(&s, &opts) {
        return error(
            f.status,
            f.message.as_deref().unwrap_or("mock fault"),
            f.retry_after,
        );
    }

    let delay = opts.first_byte_delay_ms.unwrap_or(s.args.latency_ms);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }

    let model = deployment.unwrap_or_else(|| request.model.clone());
    let answer = Answer::new(&request, &opts, &model, body.len());
    if request.is_stream() {
        let tps = opts.tokens_per_sec.unwrap_or(s.args.tokens_per_sec);
        s.streams_started.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard {
            state: s.clone(),
            completed: false,
        };
        return stream(answer, request.include_usage(), tps, &opts, guard);
    }
    if opts.malformed {
        return raw(
            200,
            "application/json",
            Bytes::from_static(b"{\"id\":\"chatcmpl-broken\",\"choices\":[{\"index\":0,"),
        );
    }
    Json(answer.completion()).into_response()
}

/// A fault to answer with instead of a response.
struct Fault {
    status: u16,
    /// The directive's `message`; each API has its own default.
    message: Option<String>,
    retry_after: Option<u64>,
}

/// `--fault-status`, or the `status` directive (with `fail_times` + `key`:
/// only the first `fail_times` requests with this key fail).
fn fault(s: &MockState, opts: &MockOptions) -> Option<Fault> {
    if let Some(status) = s.args.fault_status {
        return Some(Fault {
            status,
            message: Some("mock fault (--fault-status)".to_owned()),
            retry_after: s.args.retry_after,
        });
    }
    let status = opts.status?;
    let fail = match (&opts.key, opts.fail_times) {
        (Some(key), Some(times)) => {
            let mut f = s.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = f.entry(key.clone()).or_insert(0);
            *n += 1;
            *n <= times
        }
        _ => true,
    };
    fail.then(|| Fault {
        status,
        message: opts.message.clone(),
        retry_after: opts.retry_after,
    })
}

fn stream(
    answer: Answer,
    include_usage: bool,
    tokens_per_sec: f64,
    opts: &MockOptions,
    guard: StreamGuard,
) -> Response {
    let mut events: Vec<Bytes> = answer
        .chunks(include_usage)
        .into_iter()
        .map(|c| Bytes::from(format!("data: {c}\n\n")))
        .collect();
    if opts.malformed {
        events.insert(
            1.min(events.len()),
            Bytes::from_static(b"data: {\"id\":\"broken\",\"choices\":[{\n\n"),
        );
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    event_stream(
        events,
        opts.reset_after_chunks,
        tokens_per_sec,
        guard,
        "text/event-stream",
    )
}

/// A streaming response sending these SSE events, one every
/// 1/`tokens_per_sec` seconds (0: no pause), dropping the connection
/// before event `reset_after` when set.
fn event_stream(
    events: Vec<Bytes>,
    reset_after: Option<usize>,
    tokens_per_sec: f64,
    guard: StreamGuard,
    content_type: &'static str,
) -> Response {
    paced_stream(
        events,
        reset_after,
        tokens_per_sec,
        guard,
        content_type,
        false,
    )
}

/// The pause between the two halves of an event when they are split.
const SPLIT_PAUSE: Duration = Duration::from_millis(15);

/// [`event_stream`], writing each event in two halves with a short pause
/// between them when `split` is set (so that a client sees a binary frame
/// cut across reads).
fn paced_stream(
    events: Vec<Bytes>,
    reset_after: Option<usize>,
    tokens_per_sec: f64,
    guard: StreamGuard,
    content_type: &'static str,
    split: bool,
) -> Response {
    let pause = (tokens_per_sec > 0.0).then(|| Duration::from_secs_f64(1.0 / tokens_per_sec));
    let body = futures_util::stream::unfold(
        (events.into_iter(), 0usize, false, guard, None::<Bytes>),
        move |(mut it, n, ended, mut guard, rest)| async move {
            if ended {
                return None;
            }
            if let Some(second) = rest {
                tokio::time::sleep(SPLIT_PAUSE).await;
                if it.len() == 0 {
                    guard.completed = true;
                }
                return Some((Ok(second), (it, n, false, guard, None)));
            }
            if reset_after == Some(n) {
                // Let what was sent reach the wire first (the server would
                // otherwise drop it with the connection), then fail: an
                // error from the body makes the server drop the connection
                // without ending the chunked body, a reset mid-stream.
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return Some((
                    Err(std::io::Error::other("mock reset")),
                    (it, n, true, guard, None),
                ));
            }
            let mut ev = it.next()?;
            if let (Some(p), true) = (pause, n > 0) {
                tokio::time::sleep(p).await;
            }
            if split && ev.len() > 1 {
                let second = ev.split_off(ev.len() / 2);
                return Some((Ok(ev), (it, n + 1, false, guard, Some(second))));
            }
            if it.len() == 0 {
                guard.completed = true;
            }
            Some((
                Ok::<Bytes, std::io::Error>(ev),
                (it, n + 1, false, guard, None),
            ))
        },
    );
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

fn raw(status: u16, content_type: &'static str, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// An error the way OpenAI sends one.
fn error(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let (kind, code) = match status {
        400 => ("invalid_request_error", Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        404 => ("invalid_request_error", json!("model_not_found")),
        429 => ("requests", json!("rate_limit_exceeded")),
        _ => ("server_error", Value::Null),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut r = raw(status, "application/json", Bytes::from(body.to_string()));
    if let Some(secs) = retry_after {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn record(s: &MockState, method: &http::Method, uri: &http::Uri, headers: &HeaderMap, body: &[u8]) {
    record_with(s, method, uri, headers, body, serde_json::Map::new());
}

/// [`record`], with more fields for the entry (which replace the usual
/// ones of the same name).
fn record_with(
    s: &MockState,
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    extra: serde_json::Map<String, Value>,
) {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::from(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(body).into_owned()));
    let mut entry = json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or(""),
        "headers": headers,
        "body": body,
    });
    if let Some(e) = entry.as_object_mut() {
        e.extend(extra);
    }
    if let Ok(mut r) = s.requests.lock() {
        if r.len() >= MAX_RECORDED {
            r.pop_front();
        }
        r.push_back(entry);
    }
}
