//! What every model route shares: retries around an attempt, sending and
//! reading upstream responses, relaying a stream, and usage accounting.
//! Routes differ only in how they build the upstream call and shape the
//! answer.

use super::AppState;
use crate::keys::Admission;
use crate::metrics;
use crate::router::{DeploymentState, GroupRef, ModelGroup, Tracked, Unavailable};
use crate::transport::{UpstreamBody, UpstreamResponse, collect, upstream_error};
use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use http_body::Frame;
use http_body_util::BodyDataStream;
use llmux_core::inbound::anthropic::MessagesEncoder;
use llmux_core::providers::{StreamEvent, StreamTranslator, UpstreamRequest};
use llmux_core::types::RawChatRequest;
use llmux_core::{ApiError, ProviderKind, Usage};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The most retries a request may ask for with `num_retries`.
pub const MAX_RETRIES: u32 = 10;
/// The longest `Retry-After` llmux waits out itself before retrying.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// Upstream error bodies beyond this are cut (they are for humans).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The request's admission, when the gateway has virtual keys: whose it
/// is, for the key's models and spend.
pub type Who<'a> = Option<&'a Arc<Admission>>;

pub static MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
pub static RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
pub static CALL_ID: HeaderName = HeaderName::from_static("x-litellm-call-id");

/// With virtual keys on, LiteLLM's `x-litellm-call-id` (the `request_id`
/// of the answer's row at `/spend/logs`) and, for a virtual key, its
/// spend, budget and limits ([`Admission::key_headers`]).
fn key_headers(h: &mut http::HeaderMap, who: Who<'_>) {
    let Some(a) = who else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&a.request_id) {
        h.insert(CALL_ID.clone(), v);
    }
    a.key_headers(h);
}

/// What a request asks of the gateway: its model's group, LiteLLM's
/// `drop_params`, `num_retries` and `fallbacks` (the request's, else the
/// config's).
pub struct Steering<'a> {
    pub group: GroupRef<'a>,
    /// The alias the request named its model by, if it did.
    pub alias: Option<&'a str>,
    pub drop_params: bool,
    pub num_retries: u32,
    /// The model names the request names as its fallbacks, if it does.
    pub fallbacks: Option<Vec<String>>,
    /// The request's virtual key, if it has one: its limits on a model
    /// hold on the fallbacks too.
    pub key: Who<'a>,
}

/// Runs `attempt` on a deployment of the request's group, and again on the
/// next one (or the same, after a pause) while it fails in a retryable
/// way; then, if it still fails, on the groups of its fallbacks in turn,
/// each with the same retries (LiteLLM's `fallbacks`,
/// `context_window_fallbacks` and `content_policy_fallbacks`).
pub async fn with_retries<F, Fut>(
    app: &AppState,
    steer: &Steering<'_>,
    mut attempt: F,
) -> Result<Response, ApiError>
where
    F: FnMut(Arc<DeploymentState>) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let err = match retries(app, &steer.group, steer.num_retries, &mut attempt).await {
        Ok(resp) => return Ok(resp),
        Err(err) => err,
    };
    let Some(list) = fallbacks_for(app, steer, &err) else {
        return Err(err);
    };
    // Boxed: every request's future would otherwise hold the fallbacks'
    // room, which few requests take.
    Box::pin(fall_back(app, steer, list, err, &mut attempt)).await
}

/// The fallbacks in turn, until one answers; else the last failure.
async fn fall_back<F, Fut>(
    app: &AppState,
    steer: &Steering<'_>,
    list: &[String],
    err: ApiError,
    attempt: &mut F,
) -> Result<Response, ApiError>
where
    F: FnMut(Arc<DeploymentState>) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let mut last = err;
    for (n, name) in list.iter().enumerate() {
        let Ok(group) = app.router.group(name) else {
            continue;
        };
        // A list for every model (`*`) may name the one that just failed
        // (or an alias of it).
        if group.name == steer.group.name {
            continue;
        }
        // The key's limits on the fallback's model hold as on the model
        // asked for: one it is over is passed by, and said so if no
        // other answers.
        if let Some(check) = steer
            .key
            .and_then(|a| model_limits(app, a, name, &group.name))
        {
            if let Err(e) = check.await {
                last = e;
                continue;
            }
        }
        tracing::warn!(
            model = %steer.group.name,
            fallback = %name,
            status = last.status,
            "model failed, falling back: {}",
            last.message
        );
        let result = retries(app, &group, steer.num_retries, attempt).await;
        if let Some(m) = &app.metrics {
            m.fallback(&steer.group.name, name, last.status, result.is_ok());
        }
        match result {
            Ok(mut resp) => {
                resp.headers_mut()
                    .insert(&ATTEMPTED_FALLBACKS, HeaderValue::from(n + 1));
                return Ok(resp);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

pub static ATTEMPTED_FALLBACKS: HeaderName =
    HeaderName::from_static("x-litellm-attempted-fallbacks");

/// The fallbacks that apply to a model's failure `err`, if any: a prompt
/// too long takes the context-window list, a content-policy refusal its
/// own, and either, or any failure retries could have mended (an upstream
/// down, overloaded, timing out, or refusing the deployment's key), the
/// request's or the config's `fallbacks`. A request the upstream found
/// wrong is not sent elsewhere.
fn fallbacks_for<'a>(
    app: &'a AppState,
    steer: &'a Steering<'_>,
    err: &ApiError,
) -> Option<&'a [String]> {
    // The list of the alias the request named, else the model's own, else
    // that of its name without the provider prefix (`openai/gpt-4o` →
    // `gpt-4o`), else its wildcard route's, else LiteLLM's default for
    // every model (`*`).
    let group = &steer.group;
    let of = |map: &'a crate::config::FallbackMap| {
        steer
            .alias
            .and_then(|a| map.get(a))
            .or_else(|| map.get(group.name.as_str()))
            .or_else(|| ProviderKind::split_model(&group.name).and_then(|(_, bare)| map.get(bare)))
            .or_else(|| group.pattern.as_deref().and_then(|p| map.get(p)))
            .or_else(|| map.get("*"))
    };
    let too_long = context_window_exceeded(err);
    let special = if too_long {
        of(&app.fallbacks.context_window)
    } else if err.code.as_deref() == Some("content_filter")
        || err.code.as_deref() == Some("content_policy_violation")
    {
        of(&app.fallbacks.content_policy)
    } else {
        None
    };
    if let Some(list) = special.filter(|l| !l.is_empty()) {
        return Some(list);
    }
    let general = err.retryable || matches!(err.status, 401 | 403 | 404) || too_long;
    if !general {
        return None;
    }
    steer
        .fallbacks
        .as_deref()
        .or_else(|| of(&app.fallbacks.any).map(Vec::as_slice))
        .filter(|l| !l.is_empty())
}

/// Whether the upstream refused the prompt as longer than the model
/// takes, by OpenAI's code or the words each provider uses.
fn context_window_exceeded(err: &ApiError) -> bool {
    if !matches!(err.status, 400 | 413) {
        return false;
    }
    if err.code.as_deref() == Some("context_length_exceeded") {
        return true;
    }
    let m = err.message.to_ascii_lowercase();
    [
        "context length",
        "context window",
        "prompt is too long",
        "input is too long",
        "too many input tokens",
        "exceeds the maximum number of tokens",
        "maximum context",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// The retries within one group.
async fn retries<F, Fut>(
    app: &AppState,
    group: &ModelGroup,
    num_retries: u32,
    attempt: &mut F,
) -> Result<Response, ApiError>
where
    F: FnMut(Arc<DeploymentState>) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let mut tried = Vec::with_capacity(1);
    let mut n: u32 = 0;
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
        let tracked = app.router.track(&state);
        let started = app.metrics.as_ref().map(|_| std::time::Instant::now());
        let result = attempt(state.clone()).await;
        if let Some(t) = &tracked {
            app.router
                .answered(t, result.as_ref().err().map(|e| e.status));
        }
        if let (Some(m), Some(started)) = (&app.metrics, started) {
            let failed = result.as_ref().err().map(|e| e.status);
            let stream = result.as_ref().is_ok_and(is_stream);
            m.call(&state, &group.name, failed, stream, started.elapsed());
        }
        let err = match result {
            Ok(resp) => {
                return Ok(match tracked.filter(Tracked::is_busy) {
                    // In flight until the answer is sent (a stream: its end).
                    Some(busy) => resp.map(|body| Body::new(Held { body, _busy: busy })),
                    None => resp,
                });
            }
            Err(err) => err,
        };
        // Not in flight while it waits to be tried again.
        drop(tracked);
        let untried = tried.len() < group.deployments.len();
        // The upstream refused this deployment's key, or does not know its
        // model: the deployment is misconfigured, not the request. Another
        // deployment of the group may serve; this one rests.
        let misconfigured = matches!(err.status, 401 | 403 | 404) && group.deployments.len() > 1;
        if !err.retryable && !misconfigured {
            return Err(err);
        }
        if app.router.cool_down(group, &state) {
            if let Some(m) = &app.metrics {
                m.cooled_down(&state, err.status);
            }
        }
        if n >= num_retries || (!err.retryable && !untried) {
            return Err(err);
        }
        let Some(wait) = backoff(group, n, err.retry_after, untried) else {
            return Err(err);
        };
        tracing::warn!(
            model = %group.name,
            deployment = %state.deployment.id,
            status = err.status,
            attempt = n + 1,
            wait_ms = wait.as_millis() as u64,
            "upstream failed, retrying: {}",
            err.message
        );
        tokio::time::sleep(wait).await;
        n += 1;
    }
}

/// A response body that keeps its request counted in flight until it is
/// sent or dropped.
struct Held {
    body: Body,
    _busy: Tracked,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A request body read typed. When it does not read, the error is the one
/// the split of the body gives (which names the field for the common
/// mistakes: no model, `messages` not a list, a body that is not an
/// object), as when every request was split first; else serde's.
pub fn read_typed<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    llmux_core::json::from_bytes(body).map_err(|e| match RawChatRequest::parse(body) {
        Err(named) => named,
        Ok(_) => ApiError::bad_request(format!("Invalid {what}: {e}")),
    })
}

/// Whether a request's model is only ever translated: none of its
/// deployments speaks a provider that `takes_body` (one sent the client's
/// body as it is), so the body need not be split. Known from the config
/// alone when no model takes bodies as they are (yes) or every model may
/// (no), else by a scan for the body's top-level `model`
/// ([`RawChatRequest::model_of`]); `false` when it cannot be known so.
pub fn translated_only(app: &AppState, body: &[u8], takes_body: fn(ProviderKind) -> bool) -> bool {
    if !app.router.serves_any(takes_body) {
        return true;
    }
    if !app.router.some_model_lacks(takes_body) {
        return false;
    }
    match RawChatRequest::model_of(body) {
        Some(model) => app
            .router
            .group(model)
            .is_ok_and(|g| !g.serves_any(takes_body)),
        None => false,
    }
}

/// What a typed request asks of the gateway, its LiteLLM members read as
/// [`RawChatRequest::get_as`] reads them from a split request.
pub fn steering<'a>(
    app: &'a AppState,
    model: &str,
    extra: &serde_json::Map<String, serde_json::Value>,
    key: Who<'a>,
) -> Result<Steering<'a>, ApiError> {
    fn field<T: serde::de::DeserializeOwned>(
        extra: &serde_json::Map<String, serde_json::Value>,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        match extra.get(name) {
            None => Ok(None),
            Some(v) => <Option<T> as serde::Deserialize>::deserialize(v)
                .map_err(|e| ApiError::invalid_field(name, format!("Invalid `{name}`: {e}"))),
        }
    }
    let group = group_of(app, model)?;
    let (drop_params, num_retries) = settings(
        app,
        field(extra, "drop_params")?,
        field(extra, "num_retries")?,
    );
    Ok(Steering {
        group,
        alias: app.router.alias(model),
        drop_params,
        num_retries,
        fallbacks: field(extra, "fallbacks")?,
        key,
    })
}

/// The same for a split request.
pub fn split_steering<'a>(
    app: &'a AppState,
    req: &RawChatRequest<'_>,
    key: Who<'a>,
) -> Result<Steering<'a>, ApiError> {
    let group = group_of(app, req.model())?;
    let (drop_params, num_retries) =
        settings(app, req.get_as("drop_params")?, req.get_as("num_retries")?);
    Ok(Steering {
        group,
        alias: app.router.alias(req.model()),
        drop_params,
        num_retries,
        fallbacks: req.get_as("fallbacks")?,
        key,
    })
}

fn group_of<'a>(app: &'a AppState, model: &str) -> Result<GroupRef<'a>, ApiError> {
    app.router.group(model)
}

/// `drop_params` and `num_retries` as a request gives them (retries capped
/// at [`MAX_RETRIES`]), else the config's.
fn settings(app: &AppState, drop_params: Option<bool>, num_retries: Option<u32>) -> (bool, u32) {
    (
        drop_params.unwrap_or(app.drop_params),
        num_retries.map_or(app.num_retries, |n| n.min(MAX_RETRIES)),
    )
}

/// How long to wait before the next attempt, or `None` to give up now
/// (the upstream asked for a longer pause than is worth holding a client).
/// A deployment not tried yet is tried at once: the failed one's
/// `Retry-After` is its own, not the group's.
fn backoff(
    group: &ModelGroup,
    attempt: u32,
    retry_after: Option<Duration>,
    untried: bool,
) -> Option<Duration> {
    let others = group.deployments.len() > 1;
    match retry_after {
        _ if untried => Some(Duration::ZERO),
        Some(wait) if wait <= MAX_RETRY_WAIT => Some(wait),
        Some(_) if others => Some(Duration::ZERO),
        Some(_) => None,
        // Another deployment can be tried at once; the same one gets a
        // growing pause (0.25 s, 0.5 s, 1 s, … at most 4 s).
        None if others => Some(Duration::ZERO),
        None => Some(Duration::from_millis(250u64 << attempt.min(4))),
    }
}

/// An upstream answer with a success status, head read, body not yet.
pub struct Upstream {
    pub resp: UpstreamResponse,
    pub status: u16,
    pub host: Arc<str>,
    pub timeout: Duration,
    /// When the request was sent: a whole answer's wait counts from here.
    pub started: tokio::time::Instant,
}

/// Sends the request; a non-success status comes back as the provider's
/// error (read by `to_error`).
/// `stream`: the answer is a stream, whose wait is for its first byte and
/// each gap (`stream_timeout`, else `timeout`); a whole answer's is for
/// all of it, head and body (`timeout`).
pub async fn send(
    app: &AppState,
    state: &DeploymentState,
    upstream: UpstreamRequest,
    stream: bool,
    to_error: impl FnOnce(u16, &http::HeaderMap, &[u8]) -> ApiError,
) -> Result<Upstream, ApiError> {
    let dep = &state.deployment;
    let timeout = match stream {
        true => dep.stream_timeout.or(dep.timeout),
        false => dep.timeout,
    }
    .unwrap_or(app.request_timeout);
    let started = tokio::time::Instant::now();
    let (resp, host) = app.transport.send(upstream, timeout).await?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let (parts, body) = resp.into_parts();
        let body = read_limited(body, timeout, MAX_ERROR_BODY).await;
        return Err(to_error(status, &parts.headers, &body));
    }
    Ok(Upstream {
        resp,
        status,
        host,
        timeout,
        started,
    })
}

impl Upstream {
    /// The whole body, within the timeout.
    pub async fn body(self) -> Result<(u16, http::HeaderMap, Bytes), ApiError> {
        let (parts, body) = self.resp.into_parts();
        let deadline = self.started + self.timeout;
        match tokio::time::timeout_at(deadline, collect(body, &self.host)).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "The upstream at {} did not finish its response within {}s.",
                self.host,
                self.timeout.as_secs_f64()
            ))
            .retryable(true)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(b)) => Ok((self.status, parts.headers, b)),
        }
    }
}

/// Reads at most `max` bytes of a body within `timeout`; whatever arrived.
async fn read_limited(body: UpstreamBody, timeout: Duration, max: usize) -> Bytes {
    let mut buf = BytesMut::new();
    let mut stream = BodyDataStream::new(body);
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

/// The name a request asked for its model by (an alias, or the model's
/// own), kept for its metrics when they are on.
pub fn note_model(app: &AppState, seen: &mut Option<String>, steer: &Steering<'_>) {
    if app.metrics.is_some() {
        *seen = Some(steer.alias.unwrap_or(&steer.group.name).to_owned());
    }
}

/// A request answered (the model it asked for, if it got as far as
/// naming one the gateway serves): its metrics, when they are on.
pub fn record_request(
    app: &AppState,
    model: Option<&str>,
    resp: &Response,
    started: Option<std::time::Instant>,
    who: Who<'_>,
) {
    if let (Some(m), Some(started)) = (&app.metrics, started) {
        let status = resp.status().as_u16();
        let key = who.and_then(|a| a.entry()).map(|e| e.settings());
        m.request(
            model.unwrap_or(""),
            status,
            is_stream(resp),
            started.elapsed(),
            key.as_deref().map_or(metrics::NO_KEY, metrics::key_labels),
        );
    }
}

/// An answer that is a stream (its end is not waited for).
fn is_stream(resp: &Response) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// A check still to make before a request goes upstream, which only some
/// requests have: boxed, so that the others' futures do not carry its room.
pub type Check<'a> = Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send + 'a>>;

/// Whether the request's key may use the model it names, and every model
/// the request names as its fallbacks (else a key could reach any model
/// through them). If the key limits the model it names
/// (`model_rpm_limit`, `model_tpm_limit`), the check of those limits, to
/// be awaited before the request goes on.
pub fn allow<'a>(
    app: &'a AppState,
    steer: &'a Steering<'_>,
) -> Result<Option<Check<'a>>, ApiError> {
    let Some(a) = steer.key else {
        return Ok(None);
    };
    let requested = steer.alias.unwrap_or(&steer.group.name);
    a.allows(requested, &steer.group.name)?;
    for f in steer.fallbacks.iter().flatten() {
        // By the name given, or the model it stands for (an alias).
        let group = app.router.group(f).map(|g| g.name.clone()).ok();
        a.allows(f, group.as_deref().unwrap_or(f))?;
    }
    Ok(model_limits(app, a, requested, &steer.group.name))
}

/// The check of a key's limits on the model `requested` (served by
/// `group`), if it sets any there.
fn model_limits<'a>(
    app: &'a AppState,
    a: &'a Admission,
    requested: &'a str,
    group: &'a str,
) -> Option<Check<'a>> {
    if !a.model_limited(requested, group) {
        return None;
    }
    let shared = app.keys.as_ref().and_then(|k| k.shared());
    Some(Box::pin(a.model_limits(shared, requested, group)))
}

/// Usage → tpm window, cost, metrics, the key's spend, log line. No I/O
/// (spend is queued for the writer).
pub fn record_usage(
    app: &AppState,
    state: &DeploymentState,
    usage: Option<&Usage>,
    who: Who<'_>,
) -> Option<f64> {
    let usage = usage?;
    app.router.record_tokens(state, usage.total_tokens);
    let c = usage
        .cost
        .filter(|c| c.is_finite() && *c >= 0.0)
        .or_else(|| state.prices.map(|p| p.cost(usage)));
    if let Some(m) = &app.metrics {
        let key = who.and_then(|a| a.entry()).map(|e| e.settings());
        m.usage(
            state,
            usage.prompt_tokens,
            usage.completion_tokens,
            c,
            key.as_deref().map_or(metrics::NO_KEY, metrics::key_labels),
        );
    }
    if let (Some(keys), Some(a)) = (&app.keys, who) {
        keys.record_usage(a, &state.deployment, usage, c);
    }
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

/// A JSON answer with the deployment id, when known the cost, and with
/// virtual keys the id its spend-log row has.
pub fn json_response(
    body: impl Into<Body>,
    state: &DeploymentState,
    cost: Option<f64>,
    who: Who<'_>,
) -> Response {
    let mut r = Response::new(body.into());
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    key_headers(h, who);
    if let Some(v) = &state.id_header {
        h.insert(MODEL_ID.clone(), v.clone());
    }
    if let Some(c) = cost.and_then(cost_header) {
        h.insert(RESPONSE_COST.clone(), c);
    }
    r
}

/// A cost in USD with ten decimals, as `format!("{c:.10}")` writes it, but
/// in integers for any cost below a million dollars: exact decimal float
/// formatting took a thousand instructions a request, and `format_args!`
/// with padding 600.
fn cost_header(c: f64) -> Option<HeaderValue> {
    const SCALE: f64 = 1e10;
    if !(0.0..1e6).contains(&c) {
        return HeaderValue::try_from(format!("{c:.10}")).ok();
    }
    let scaled = (c * SCALE).round() as u64;
    let (mut int, mut frac) = (scaled / SCALE as u64, scaled % SCALE as u64);
    // Digits written from the right: ten of the fraction, then the integer
    // part (at most 7 digits below a million).
    let mut buf = [0u8; 24];
    let mut at = buf.len();
    let mut put = |b: u8| {
        at -= 1;
        buf[at] = b;
    };
    for _ in 0..10 {
        put(b'0' + (frac % 10) as u8);
        frac /= 10;
    }
    put(b'.');
    loop {
        put(b'0' + (int % 10) as u8);
        int /= 10;
        if int == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&buf[at..]).ok()
}

/// How the client wants stream events.
pub enum ClientFormat {
    /// OpenAI chunks, `data: …` lines.
    OpenAi,
    /// Anthropic's named events, encoded from canonical chunks.
    Anthropic(Box<MessagesEncoder>),
    /// Already framed by the translator (Anthropic pass-through).
    Raw,
}

/// One stream's state. Dropped when the client goes away, which drops the
/// upstream response and so cancels the upstream request.
struct Relay {
    upstream: UpstreamBody,
    translator: Box<dyn StreamTranslator>,
    format: ClientFormat,
    events: Vec<StreamEvent>,
    timeout: Duration,
    /// When the upstream has been silent for `timeout`; pushed back after
    /// every read (pushing a timer later costs nothing, a new one per read
    /// would register and remove a timer each time).
    silence: Pin<Box<tokio::time::Sleep>>,
    host: Arc<str>,
    done: bool,
    app: Arc<AppState>,
    state: Arc<DeploymentState>,
    /// The key's admission: its parallel slot is held to the stream's end.
    who: Option<Arc<Admission>>,
    /// Events the upstream's stream gave so far.
    events_seen: u64,
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Whatever was used is accounted, even if the client left early:
        // with a virtual key, a stream left before the upstream said its
        // usage is charged an estimate of it (its budget is not a stop
        // button away).
        let estimate = match &self.who {
            Some(who) if !self.done => who.left_early(self.translator.usage(), self.events_seen),
            _ => None,
        };
        record_usage(
            &self.app,
            &self.state,
            estimate.as_ref().or(self.translator.usage()),
            self.who.as_ref(),
        );
    }
}

/// The client's response body: every event one upstream read gave, framed,
/// as one write. A body polled directly rather than an async stream: no
/// future to build and box per stream, no state machine per read.
impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while !this.done {
            // The upstream first; the silence timer only when it has nothing.
            let next = match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(item) => Ok(item),
                Poll::Pending => match this.silence.as_mut().poll(cx) {
                    Poll::Ready(()) => Err(()),
                    Poll::Pending => return Poll::Pending,
                },
            };
            match next {
                Err(()) => this.events.push(StreamEvent::error(
                    ApiError::gateway_timeout(format!(
                        "The upstream at {} sent nothing for {}s mid-stream.",
                        this.host,
                        this.timeout.as_secs_f64()
                    ))
                    .retryable(true),
                )),
                Ok(None) => {
                    this.translator.finish(&mut this.events);
                    this.done = true;
                }
                Ok(Some(Err(e))) => {
                    let mut err = upstream_error(&this.host, &e, false);
                    err.message = format!("The stream broke off: {}", err.message);
                    this.events.push(StreamEvent::error(err));
                }
                Ok(Some(Ok(frame))) => {
                    // Trailers, which no provider sends, are skipped.
                    let Ok(bytes) = frame.into_data() else {
                        continue;
                    };
                    let next = tokio::time::Instant::now() + this.timeout;
                    this.silence.as_mut().reset(next);
                    this.translator.push(&bytes, &mut this.events);
                }
            }
            let out = this.frame();
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
        Poll::Ready(None)
    }
}

impl Relay {
    /// SSE framing; an error or the end stops the stream.
    fn frame(&mut self) -> Bytes {
        self.events_seen += self.events.len() as u64;
        for ev in &mut self.events {
            if let StreamEvent::Error(e) = ev {
                if let Some(k) = &self.state.deployment.api_key {
                    e.redact(k.expose());
                }
                tracing::warn!(
                    deployment = %self.state.deployment.id,
                    status = e.status,
                    "stream failed: {}",
                    e.message
                );
            }
        }
        if let ClientFormat::Anthropic(enc) = &mut self.format {
            enc.encode(&mut self.events);
        }
        // One allocation for the whole write: every event's size is known.
        let size: usize = self
            .events
            .iter()
            .map(|ev| match ev {
                StreamEvent::Data(d) => d.len() + 8,
                StreamEvent::Comment(c) => c.len() + 4,
                StreamEvent::Raw(r) => r.len(),
                StreamEvent::Done => 14,
                StreamEvent::Error(_) => 0,
            })
            .sum();
        let mut buf = BytesMut::with_capacity(size);
        for ev in self.events.drain(..) {
            match ev {
                StreamEvent::Data(d) => {
                    buf.put_slice(b"data: ");
                    buf.put_slice(&d);
                    buf.put_slice(b"\n\n");
                }
                StreamEvent::Comment(c) => {
                    buf.put_slice(b": ");
                    buf.put_slice(&c);
                    buf.put_slice(b"\n\n");
                }
                StreamEvent::Raw(r) => buf.put_slice(&r),
                StreamEvent::Done => {
                    if matches!(self.format, ClientFormat::OpenAi) {
                        buf.put_slice(b"data: [DONE]\n\n");
                    }
                    self.done = true;
                    break;
                }
                StreamEvent::Error(e) => {
                    match self.format {
                        ClientFormat::OpenAi => {
                            buf.put_slice(b"data: ");
                            buf.put_slice(&e.to_json());
                            buf.put_slice(b"\n\n");
                        }
                        _ => {
                            buf.put_slice(b"event: error\ndata: ");
                            buf.put_slice(&llmux_core::types::anthropic::error_json(&e));
                            buf.put_slice(b"\n\n");
                        }
                    }
                    self.done = true;
                    break;
                }
            }
        }
        self.events.clear();
        if let ClientFormat::Anthropic(enc) = &self.format {
            // The encoder ends the stream itself (message_stop or error).
            if enc.is_done() {
                self.done = true;
            }
        }
        buf.freeze()
    }
}

pub fn stream_response(
    app: Arc<AppState>,
    state: Arc<DeploymentState>,
    upstream: Upstream,
    translator: Box<dyn StreamTranslator>,
    format: ClientFormat,
    who: Option<Arc<Admission>>,
) -> Response {
    let id = state.id_header.clone();
    // Made only for a request on a keys database (`who` goes to the relay).
    let keyed = who.as_ref().map(|a| {
        let mut h = http::HeaderMap::new();
        key_headers(&mut h, Some(a));
        h
    });
    let relay = Relay {
        // The head is dropped here, so hyper can reuse its read buffer.
        upstream: upstream.resp.into_body(),
        translator,
        format,
        events: Vec::new(),
        timeout: upstream.timeout,
        silence: Box::pin(tokio::time::sleep(upstream.timeout)),
        host: upstream.host,
        done: false,
        app,
        state,
        who,
        events_seen: 0,
    };
    let mut r = Response::new(Body::new(relay));
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
    if let Some(keyed) = keyed {
        h.extend(keyed);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_header_reads_as_ten_decimals_do() {
        // Per-token prices as the catalog has them, times token counts.
        let prices = [1.5e-7, 6e-7, 2.5e-6, 3e-6, 3.75e-6, 1e-5, 1.5e-5, 7.5e-5];
        for p in prices {
            for tokens in (0..200_000u64).step_by(997) {
                let c = tokens as f64 * p;
                let header = cost_header(c).unwrap();
                assert_eq!(
                    header.to_str().unwrap(),
                    format!("{c:.10}"),
                    "{tokens} x {p}"
                );
            }
        }
        assert_eq!(cost_header(0.0).unwrap(), "0.0000000000");
        assert_eq!(cost_header(12.5).unwrap(), "12.5000000000");
        assert_eq!(cost_header(2e6).unwrap(), "2000000.0000000000");
    }
}
