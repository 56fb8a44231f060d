//! Anthropic's Messages API for clients such as Claude Code:
//! `POST /v1/messages` and `POST /v1/messages/count_tokens`. In front of a
//! Claude deployment the request passes through unchanged (version and beta
//! headers included) and the answer is relayed as it comes; in front of any
//! other it goes through the canonical format and back.

use super::AppState;
use super::dispatch::{self, ClientFormat, Who};
use crate::keys::Admission;
use crate::router::DeploymentState;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use llmux_core::inbound::anthropic::{self as inbound, MessagesEncoder, Target};
use llmux_core::providers::anthropic::{self as claude, passthrough::MessagesPassthrough};
use llmux_core::providers::{self, ChatCall};
use llmux_core::types::RawChatRequest;
use llmux_core::types::anthropic::{MessagesRequest, MessagesResponse, error_json};
use llmux_core::types::raw::Rewrite;
use llmux_core::{ApiError, ProviderKind};
use serde_json::json;
use std::sync::Arc;

use llmux_core::providers::GATEWAY_FIELDS;

/// An error in Anthropic's shape.
pub fn anthropic_error(e: &ApiError) -> Response {
    let mut r = super::error::error_response(e);
    *r.body_mut() = Body::from(error_json(e));
    r
}

/// The answer to a request whose key and body have been read.
pub async fn messages(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
    who: Option<Arc<Admission>>,
) -> Response {
    let started = app.metrics.as_ref().map(|_| std::time::Instant::now());
    let mut model = None;
    if let (Some(who), Ok(body)) = (&who, &body) {
        // With a virtual key: the prompt's size, for a stream its client
        // leaves early.
        who.estimate_prompt(body);
    }
    let resp = match body {
        Ok(body) => match handle(app, headers, &body, &mut model, who.as_ref()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(status = e.status, error = %e.message, "messages request failed");
                anthropic_error(&e)
            }
        },
        Err(e) => anthropic_error(&e),
    };
    dispatch::record_request(app, model.as_deref(), &resp, started, who.as_ref());
    resp
}

async fn handle(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    body: &Bytes,
    model: &mut Option<String>,
    who: Who<'_>,
) -> Result<Response, ApiError> {
    // A model none of whose deployments is Claude's is only ever
    // translated: its request is read once, typed, and never split.
    if dispatch::translated_only(app, body, |p| p == ProviderKind::Anthropic) {
        // Boxed: the typed request would otherwise take room in every
        // Messages request's future.
        return Box::pin(only_translated(app, body, model, who)).await;
    }

    let req = RawChatRequest::parse(body)?;
    let steer = dispatch::split_steering(app, &req, who)?;
    dispatch::note_model(app, model, &steer);
    if let Some(check) = dispatch::allow(app, &steer)? {
        check.await?;
    }
    let drop_params = steer.drop_params;
    let req = &req;
    dispatch::with_retries(app, &steer, |state| async move {
        if state.deployment.provider == ProviderKind::Anthropic {
            return passthrough(app, state, req, headers, who).await;
        }
        // Read typed only for a deployment that translates, on each such
        // attempt.
        let parsed = parse_messages(body)?;
        // Boxed: the translation holds both request forms across the
        // upstream call, and unboxed every pass-through request's future
        // would be that large too.
        Box::pin(translated(app, state, parsed, body.len(), drop_params, who)).await
    })
    .await
}

/// A request for a model none of whose deployments is Claude's: read
/// once, typed, and never split.
async fn only_translated(
    app: &Arc<AppState>,
    body: &Bytes,
    model: &mut Option<String>,
    who: Who<'_>,
) -> Result<Response, ApiError> {
    let req = parse_messages(body)?;
    let steer = dispatch::steering(app, &req.model, &req.extra, who)?;
    dispatch::note_model(app, model, &steer);
    if let Some(check) = dispatch::allow(app, &steer)? {
        check.await?;
    }
    let drop_params = steer.drop_params;
    let mut first = Some(req);
    dispatch::with_retries(app, &steer, move |state| {
        let req = first.take();
        async move {
            // A retry reads the body again rather than every request
            // keeping a copy of it for one.
            let req = match req {
                Some(r) => r,
                None => parse_messages(body)?,
            };
            Box::pin(translated(app, state, req, body.len(), drop_params, who)).await
        }
    })
    .await
}

fn parse_messages(body: &[u8]) -> Result<MessagesRequest, ApiError> {
    dispatch::read_typed(body, "Messages request")
}

/// The client's request for a Claude endpoint: its body with the model
/// replaced (and any `role: "system"` entries moved to `system`), its
/// `anthropic-version` and `anthropic-beta` forwarded, the deployment's key.
fn to_claude(
    dep: &llmux_core::Deployment,
    req: &RawChatRequest<'_>,
    client_headers: &HeaderMap,
    endpoint: &str,
) -> providers::UpstreamRequest {
    let hoisted = req
        .get("messages")
        .and_then(|m| claude::hoist_system(m, req.get("system")));
    let set: Vec<(&str, &str)> = match &hoisted {
        Some((messages, system)) => {
            vec![("messages", messages.as_str()), ("system", system.as_str())]
        }
        None => vec![],
    };
    let body = req.write(&Rewrite {
        model: &dep.upstream_model,
        remove: GATEWAY_FIELDS,
        set: &set,
        ..Default::default()
    });
    let version = client_headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok());
    let betas: Vec<&str> = client_headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    providers::UpstreamRequest {
        url: claude::messages_url(dep.api_base.as_deref(), endpoint),
        headers: claude::headers(dep, version, &betas),
        body: Bytes::from(body),
    }
}

/// The request as the client sent it, to Claude; the answer as Claude sent it.
async fn passthrough(
    app: &Arc<AppState>,
    state: Arc<DeploymentState>,
    req: &RawChatRequest<'_>,
    client_headers: &HeaderMap,
    who: Who<'_>,
) -> Result<Response, ApiError> {
    let dep = &state.deployment;
    let upstream = to_claude(dep, req, client_headers, "messages");
    let up = dispatch::send(app, &state, upstream, req.is_stream(), |s, h, b| {
        providers::error_response(dep, s, h, b)
    })
    .await?;
    if req.is_stream() {
        return Ok(dispatch::stream_response(
            app.clone(),
            state.clone(),
            up,
            Box::new(MessagesPassthrough::new()),
            ClientFormat::Raw,
            who.cloned(),
        ));
    }
    let (_, _, body) = up.body().await?;
    let usage = serde_json::from_slice::<MessagesResponse>(&body)
        .map_err(|e| {
            ApiError::bad_gateway(format!(
                "The upstream returned a malformed Messages response: {e}"
            ))
            .retryable(true)
        })?
        .usage
        .to_openai();
    let cost = dispatch::record_usage(app, &state, Some(&usage), who);
    Ok(dispatch::json_response(body, &state, cost, who))
}

/// Messages → canonical → the deployment's provider → canonical → Messages.
async fn translated(
    app: &Arc<AppState>,
    state: Arc<DeploymentState>,
    req: MessagesRequest,
    body_len: usize,
    drop_params: bool,
    who: Who<'_>,
) -> Result<Response, ApiError> {
    let dep = &state.deployment;
    let client_model = req.model.clone();
    let target = Target {
        openai_proper: dep.provider == ProviderKind::Azure
            || (dep.provider == ProviderKind::OpenAi && dep.api_base.is_none()),
        supports_reasoning: dep.info.flag("supports_reasoning"),
        claude: dep.provider == ProviderKind::Bedrock && providers::bedrock::is_claude(dep),
        plain_system: matches!(dep.provider, ProviderKind::Groq | ProviderKind::DeepSeek),
        deepseek: dep.provider == ProviderKind::DeepSeek,
        drop_params,
    };
    let mut canonical = inbound::to_canonical(req, target)?;
    if let (Some(f), ProviderKind::Bedrock) = (&app.images, dep.provider) {
        if let Some(inlined) = f.inline(&canonical).await? {
            canonical = inlined;
        }
    }
    // An OpenAI-compatible provider is sent the canonical request as JSON,
    // written by hand (`json::WriteJson`) and split like a client's body.
    // A translating one takes the typed request as it is: writing the whole
    // conversation and splitting it again would only serve to read
    // `stream` back.
    let bytes;
    let raw = if providers::passes_through(dep.provider) {
        bytes = llmux_core::json::written_body(
            &canonical,
            llmux_core::json::translated_size(body_len),
        )?;
        RawChatRequest::parse(&bytes)?
    } else {
        RawChatRequest::from_typed(&canonical, body_len)
    };
    let call = ChatCall {
        request: &raw,
        typed: Some(&canonical),
        drop_params,
    };
    let creds = app.credentials.for_deployment(dep, &app.transport).await?;
    let upstream = providers::build_chat_request(dep, &call, &creds)?;
    let up = dispatch::send(app, &state, upstream, raw.is_stream(), |s, h, b| {
        providers::error_response(dep, s, h, b)
    })
    .await?;
    if raw.is_stream() {
        let translator = providers::chat_stream(dep, &call)?;
        let format = ClientFormat::Anthropic(Box::new(MessagesEncoder::new(&client_model)));
        return Ok(dispatch::stream_response(
            app.clone(),
            state.clone(),
            up,
            translator,
            format,
            who.cloned(),
        ));
    }
    let (status, headers, body) = up.body().await?;
    let out = providers::typed_chat_response(dep, &call, status, &headers, body)?;
    let cost = dispatch::record_usage(app, &state, out.usage.as_ref(), who);
    // The answer typed: read once, or taken as translated, never written
    // and read back.
    let message = inbound::from_canonical(out.into_typed()?, &client_model);
    let body = serde_json::to_vec(&message).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(dispatch::json_response(body, &state, cost, who))
}

/// `POST /v1/messages/count_tokens`: Claude counts for Claude deployments;
/// for others, a local estimate (OpenAI's o200k tokenizer), marked as such
/// in the `x-llmux-token-count: estimate` header.
pub async fn count_tokens(
    who: super::Authorized,
    State(app): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = match super::read_body(body, app.max_request_bytes).await {
        Ok(b) => b,
        Err(e) => return anthropic_error(&e),
    };
    match count(&app, &parts.headers, &body, &who).await {
        Ok(r) => r,
        Err(e) => anthropic_error(&e),
    }
}

async fn count(
    app: &Arc<AppState>,
    client_headers: &HeaderMap,
    body: &Bytes,
    who: &super::Authorized,
) -> Result<Response, ApiError> {
    let req = RawChatRequest::parse(body)?;
    let group = app.router.group(req.model())?;
    if let Some(key) = &who.0 {
        let s = key.settings();
        if !s.allows(req.model()) && !s.allows(&group.name) {
            return Err(crate::keys::model_denied(&s.models, req.model()));
        }
    }
    let claude_dep = group
        .deployments
        .iter()
        .find(|d| d.deployment.provider == ProviderKind::Anthropic)
        .cloned();
    if let Some(state) = claude_dep {
        let dep = &state.deployment;
        let upstream = to_claude(dep, &req, client_headers, "messages/count_tokens");
        let up = dispatch::send(app, &state, upstream, false, |s, h, b| {
            providers::error_response(dep, s, h, b)
        })
        .await?;
        let (_, _, body) = up.body().await?;
        return Ok(dispatch::json_response(body, &state, None, None));
    }
    let typed: MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid count_tokens request: {e}")))?;
    let n = inbound::tokens::estimate(&typed);
    let mut r = Response::new(Body::from(json!({"input_tokens": n}).to_string()));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert("x-llmux-token-count", HeaderValue::from_static("estimate"));
    Ok(r)
}
