//! `POST /chat/completions`: parse just enough to route, pick a deployment,
//! let its provider build the upstream call, send it, and relay the answer
//! (whole, or event by event). Retries and cooldowns wrap the attempt; the
//! provider and transport know nothing of them.

use super::AppState;
use super::error::error_response;
use crate::router::{DeploymentState, ModelGroup, Unavailable};
use crate::transport::{host_of, upstream_error};
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use llmux_core::providers::{self, ChatCall, StreamEvent, StreamTranslator};
use llmux_core::types::RawChatRequest;
use llmux_core::{ApiError, Usage, cost};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The most retries a request may ask for with `num_retries`.
const MAX_RETRIES: u32 = 10;
/// The longest `Retry-After` llmux waits out itself before retrying.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// Upstream error bodies beyond this are cut (they are for humans).
const MAX_ERROR_BODY: usize = 64 * 1024;

static MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
static RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");

pub async fn chat_completions(
    State(app): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) if rej.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
            return error_response(&ApiError::payload_too_large(app.max_request_bytes));
        }
        Err(rej) => return error_response(&ApiError::bad_request(rej.body_text())),
    };
    match handle(&app, &body).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(status = e.status, error = %e.message, "chat request failed");
            error_response(&e)
        }
    }
}

async fn handle(app: &Arc<AppState>, body: &Bytes) -> Result<Response, ApiError> {
    let req = RawChatRequest::parse(body)?;
    let group = app
        .router
        .group(req.model())
        .ok_or_else(|| ApiError::model_not_found(req.model()))?;
    let drop_params = req
        .get_as::<bool>("drop_params")?
        .unwrap_or(app.drop_params);
    let num_retries = req
        .get_as::<u32>("num_retries")?
        .map_or(app.num_retries, |n| n.min(MAX_RETRIES));
    let call = ChatCall {
        request: &req,
        drop_params,
    };

    let mut tried = Vec::with_capacity(1);
    let mut attempt: u32 = 0;
    loop {
        let (i, state) = app.router.pick(group, &tried).map_err(|u| match u {
            Unavailable::RateLimited { retry_after } => ApiError::new(
                429,
                format!(
                    "Every deployment of `{}` is at its rpm/tpm limit; try again shortly.",
                    group.name
                ),
            )
            .with_retry_after(Some(retry_after)),
        })?;
        tried.push(i);
        match attempt_once(app, &state, &call).await {
            Ok(resp) => return Ok(resp),
            Err(err) => {
                if !err.retryable {
                    return Err(err);
                }
                app.router.cool_down(group, &state);
                if attempt >= num_retries {
                    return Err(err);
                }
                let Some(wait) = backoff(group, attempt, err.retry_after) else {
                    return Err(err);
                };
                tracing::warn!(
                    model = %group.name,
                    deployment = %state.deployment.id,
                    status = err.status,
                    attempt = attempt + 1,
                    wait_ms = wait.as_millis() as u64,
                    "upstream failed, retrying: {}",
                    err.message
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// How long to wait before the next attempt, or `None` to give up now
/// (the upstream asked for a longer pause than is worth holding a client).
fn backoff(group: &ModelGroup, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let others = group.deployments.len() > 1;
    match retry_after {
        Some(wait) if wait <= MAX_RETRY_WAIT => Some(wait),
        Some(_) if others => Some(Duration::ZERO),
        Some(_) => None,
        // Another deployment can be tried at once; the same one gets a
        // growing pause (0.25 s, 0.5 s, 1 s, … at most 4 s).
        None if others => Some(Duration::ZERO),
        None => Some(Duration::from_millis(250u64 << attempt.min(4))),
    }
}

async fn attempt_once(
    app: &Arc<AppState>,
    state: &Arc<DeploymentState>,
    call: &ChatCall<'_, '_>,
) -> Result<Response, ApiError> {
    let dep = &state.deployment;
    let upstream = providers::build_chat_request(dep, call)?;
    let host = host_of(&upstream.url);
    let timeout = dep.timeout.unwrap_or(app.request_timeout);
    let resp = app.transport.send(upstream, timeout).await?;
    let status = resp.status().as_u16();

    if !(200..300).contains(&status) {
        let headers = resp.headers().clone();
        let body = read_limited(resp, timeout, MAX_ERROR_BODY).await;
        return Err(providers::error_response(dep, status, &headers, &body));
    }

    if call.request.is_stream() {
        let translator = providers::chat_stream(dep, call)?;
        return Ok(stream_response(
            app.clone(),
            state.clone(),
            resp,
            translator,
            timeout,
            host,
        ));
    }

    let headers = resp.headers().clone();
    let body = match tokio::time::timeout(timeout, resp.bytes()).await {
        Err(_) => {
            return Err(ApiError::gateway_timeout(format!(
                "The upstream at {host} did not finish its response within {}s.",
                timeout.as_secs_f64()
            ))
            .retryable(true));
        }
        Ok(Err(e)) => return Err(upstream_error(&host, &e)),
        Ok(Ok(b)) => b,
    };
    let out = providers::chat_response(dep, call, status, &headers, body)?;
    let cost = record_usage(app, state, out.usage.as_ref());

    let mut r = Response::new(Body::from(out.body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&dep.id) {
        h.insert(MODEL_ID.clone(), v);
    }
    if let Some(c) = cost.and_then(|c| HeaderValue::from_str(&format!("{c:.10}")).ok()) {
        h.insert(RESPONSE_COST.clone(), c);
    }
    Ok(r)
}

/// Reads at most `max` bytes of a body within `timeout`; whatever arrived.
async fn read_limited(resp: reqwest::Response, timeout: Duration, max: usize) -> Bytes {
    let mut buf = BytesMut::new();
    let mut stream = resp.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            let room = max.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() >= max {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout.min(Duration::from_secs(30)), read).await;
    buf.freeze()
}

/// Usage → tpm window, cost, log line. Off the hot path in spirit: no I/O.
fn record_usage(app: &AppState, state: &DeploymentState, usage: Option<&Usage>) -> Option<f64> {
    let usage = usage?;
    app.router.record_tokens(state, usage.total_tokens);
    let c = cost::cost(usage, &state.deployment.info);
    tracing::debug!(
        model = %state.deployment.model_name,
        deployment = %state.deployment.id,
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        cached_tokens = usage.cached_tokens(),
        cost = c.unwrap_or(0.0),
        "usage"
    );
    c
}

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// One stream's state. Dropped when the client goes away, which drops the
/// upstream response and so cancels the upstream request.
struct Relay {
    upstream: Upstream,
    translator: Box<dyn StreamTranslator>,
    events: Vec<StreamEvent>,
    timeout: Duration,
    host: String,
    done: bool,
    app: Arc<AppState>,
    state: Arc<DeploymentState>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Whatever was used is accounted, even if the client left early.
        record_usage(&self.app, &self.state, self.translator.usage());
    }
}

impl Relay {
    /// The next bytes for the client: every event one upstream read gave.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        while !self.done {
            match tokio::time::timeout(self.timeout, self.upstream.next()).await {
                Err(_) => self.events.push(StreamEvent::Error(
                    ApiError::gateway_timeout(format!(
                        "The upstream at {} sent nothing for {}s mid-stream.",
                        self.host,
                        self.timeout.as_secs_f64()
                    ))
                    .retryable(true),
                )),
                Ok(None) => {
                    self.translator.finish(&mut self.events);
                    self.done = true;
                }
                Ok(Some(Err(e))) => {
                    let mut err = upstream_error(&self.host, &e);
                    err.message = format!("The stream broke off: {}", err.message);
                    self.events.push(StreamEvent::Error(err));
                }
                Ok(Some(Ok(bytes))) => self.translator.push(&bytes, &mut self.events),
            }
            let out = self.frame();
            if !out.is_empty() {
                return Some(out);
            }
        }
        None
    }

    /// SSE framing; an error or `[DONE]` ends the stream.
    fn frame(&mut self) -> Bytes {
        let mut buf = BytesMut::new();
        for ev in self.events.drain(..) {
            match ev {
                StreamEvent::Data(d) => {
                    buf.reserve(d.len() + 8);
                    buf.put_slice(b"data: ");
                    buf.put_slice(&d);
                    buf.put_slice(b"\n\n");
                }
                StreamEvent::Comment(c) => {
                    buf.put_slice(b": ");
                    buf.put_slice(&c);
                    buf.put_slice(b"\n\n");
                }
                StreamEvent::Done => {
                    buf.put_slice(b"data: [DONE]\n\n");
                    self.done = true;
                    break;
                }
                StreamEvent::Error(mut e) => {
                    if let Some(k) = &self.state.deployment.api_key {
                        e.redact(k.expose());
                    }
                    tracing::warn!(
                        deployment = %self.state.deployment.id,
                        status = e.status,
                        "stream failed: {}",
                        e.message
                    );
                    buf.put_slice(b"data: ");
                    buf.put_slice(&e.to_json());
                    buf.put_slice(b"\n\n");
                    self.done = true;
                    break;
                }
            }
        }
        self.events.clear();
        buf.freeze()
    }
}

fn stream_response(
    app: Arc<AppState>,
    state: Arc<DeploymentState>,
    resp: reqwest::Response,
    translator: Box<dyn StreamTranslator>,
    timeout: Duration,
    host: String,
) -> Response {
    let id = HeaderValue::from_str(&state.deployment.id).ok();
    let relay = Relay {
        upstream: Box::pin(resp.bytes_stream()),
        translator,
        events: Vec::with_capacity(8),
        timeout,
        host,
        done: false,
        app,
        state,
    };
    let body = futures_util::stream::unfold(relay, |mut relay| async move {
        let bytes = relay.next_bytes().await?;
        Some((Ok::<Bytes, Infallible>(bytes), relay))
    });
    let mut r = Response::new(Body::from_stream(body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    if let Some(id) = id {
        h.insert(MODEL_ID.clone(), id);
    }
    r
}
