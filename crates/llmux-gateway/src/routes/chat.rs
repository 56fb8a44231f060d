//! `POST /chat/completions`: parse just enough to route, pick a deployment,
//! let its provider build the upstream call, send it, and relay the answer
//! (whole, or event by event).

use super::AppState;
use super::dispatch::{self, ClientFormat, Who};
use super::error::error_response;
use crate::keys::Admission;
use crate::router::DeploymentState;
use axum::response::Response;
use bytes::Bytes;
use llmux_core::providers::{self, ChatCall};
use llmux_core::types::{ChatCompletionRequest, RawChatRequest};
use llmux_core::{ApiError, ProviderKind};
use std::sync::Arc;

/// The answer to a request whose key and body have been read.
pub async fn chat_completions(
    app: &Arc<AppState>,
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
        Ok(body) => match handle(app, &body, &mut model, who.as_ref()).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(status = e.status, error = %e.message, "chat request failed");
                error_response(&e)
            }
        },
        Err(e) => error_response(&e),
    };
    dispatch::record_request(app, model.as_deref(), &resp, started, who.as_ref());
    resp
}

async fn handle(
    app: &Arc<AppState>,
    body: &Bytes,
    model: &mut Option<String>,
    who: Who<'_>,
) -> Result<Response, ApiError> {
    // A model none of whose deployments takes the body as it is (an
    // OpenAI-compatible API) is only ever translated: its request is read
    // once, typed, and never split, and every attempt takes it as read.
    if dispatch::translated_only(app, body, providers::passes_through) {
        return Box::pin(translated(app, body, model, who)).await;
    }
    let req = RawChatRequest::parse(body)?;
    let steer = dispatch::split_steering(app, &req, who)?;
    dispatch::note_model(app, model, &steer);
    if let Some(check) = dispatch::allow(app, &steer)? {
        check.await?;
    }
    let call = ChatCall {
        request: &req,
        typed: None,
        drop_params: steer.drop_params,
    };
    dispatch::with_retries(app, &steer, |state| attempt(app, state, &call, who)).await
}

/// A request for a model that only translates, read typed and only so.
async fn translated(
    app: &Arc<AppState>,
    body: &Bytes,
    model: &mut Option<String>,
    who: Who<'_>,
) -> Result<Response, ApiError> {
    let typed: ChatCompletionRequest = dispatch::read_typed(body, "chat completion request")?;
    let steer = dispatch::steering(app, &typed.model, &typed.extra, who)?;
    dispatch::note_model(app, model, &steer);
    if let Some(check) = dispatch::allow(app, &steer)? {
        check.await?;
    }
    let req = RawChatRequest::from_typed(&typed, body.len());
    let call = ChatCall {
        request: &req,
        typed: Some(&typed),
        drop_params: steer.drop_params,
    };
    dispatch::with_retries(app, &steer, |state| async {
        if providers::passes_through(state.deployment.provider) {
            // A fallback to a model that takes the body as it is: the
            // client's body, split now.
            let raw = RawChatRequest::parse(body)?;
            let call = ChatCall {
                request: &raw,
                typed: Some(&typed),
                drop_params: steer.drop_params,
            };
            return attempt(app, state, &call, who).await;
        }
        attempt(app, state, &call, who).await
    })
    .await
}

/// One try on one deployment.
pub async fn attempt(
    app: &Arc<AppState>,
    state: Arc<DeploymentState>,
    call: &ChatCall<'_, '_>,
    who: Who<'_>,
) -> Result<Response, ApiError> {
    let dep = &state.deployment;
    // Bedrock takes images inline only: fetch remote ones when enabled.
    // Boxed, so the common case does not hold a typed request's room
    // across the upstream call.
    let inlined = match (&app.images, dep.provider) {
        (Some(f), ProviderKind::Bedrock)
            if call.typed.is_some()
                || call
                    .request
                    .get("messages")
                    .is_some_and(|m| m.get().contains("\"http")) =>
        {
            f.inline(&*call.typed()?).await?.map(Box::new)
        }
        _ => None,
    };
    let raw;
    let rewritten;
    let call = match inlined.as_deref() {
        Some(typed) => {
            // Bedrock translates: it takes the typed request as it is.
            raw = RawChatRequest::from_typed(typed, call.request.body_len());
            rewritten = ChatCall {
                request: &raw,
                typed: Some(typed),
                drop_params: call.drop_params,
            };
            &rewritten
        }
        None => call,
    };
    let creds = app.credentials.for_deployment(dep, &app.transport).await?;
    let upstream = providers::build_chat_request(dep, call, &creds)?;
    let up = dispatch::send(
        app,
        &state,
        upstream,
        call.request.is_stream(),
        |s, h, b| providers::error_response(dep, s, h, b),
    )
    .await?;
    if call.request.is_stream() {
        let translator = providers::chat_stream(dep, call)?;
        return Ok(dispatch::stream_response(
            app.clone(),
            state.clone(),
            up,
            translator,
            ClientFormat::OpenAi,
            who.cloned(),
        ));
    }
    let (status, headers, body) = up.body().await?;
    let out = providers::chat_response(dep, call, status, &headers, body)?;
    let cost = dispatch::record_usage(app, &state, out.usage.as_ref(), who);
    Ok(dispatch::json_response(out.into_body()?, &state, cost, who))
}
