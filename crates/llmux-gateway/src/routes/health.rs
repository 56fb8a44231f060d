//! Health probes, in LiteLLM's shapes.

use super::AppState;
use crate::router::DeploymentState;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use llmux_core::ApiError;
use llmux_core::providers::ChatCall;
use llmux_core::types::{ChatCompletionRequest, RawChatRequest};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long one deployment's check may take (LiteLLM's default).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// `/health/liveliness` and `/health/liveness`: public, always cheap.
pub async fn liveness() -> Response {
    Json("I'm alive!").into_response()
}

/// `/health/readiness`: the process can serve. Public, as LiteLLM's is
/// (a probe sends no key); it tells nothing a caller could misuse. `db`
/// is the keys' database as LiteLLM reports its own: `connected` if it
/// answers within a second, `disconnected` if not (keys held in memory
/// are still served, so the process stays ready), `Not connected`
/// without one. `cache` is `redis` when the keys' rate limits are counted
/// in Redis (LiteLLM names its cache so), and `redis` says whether it
/// answers (if not, they are counted per process).
pub async fn readiness(State(app): State<Arc<AppState>>) -> Response {
    // Both asked at once: a probe's answer within a second.
    let wait = std::time::Duration::from_secs(1);
    let shared = app.keys.as_ref().and_then(|k| k.shared());
    let (db, redis) = tokio::join!(
        async {
            match &app.keys {
                None => "Not connected",
                Some(keys) => match keys.store().ping(wait).await {
                    true => "connected",
                    false => "disconnected",
                },
            }
        },
        async {
            match shared {
                None => None,
                Some(s) => Some(match s.ping(wait).await {
                    Ok(()) => "connected",
                    Err(_) => "disconnected",
                }),
            }
        }
    );
    Json(json!({
        "status": "healthy",
        "db": db,
        "cache": shared.map(|_| "redis"),
        "redis": redis,
        "llmux_version": env!("CARGO_PKG_VERSION"),
        "models": app.model_count,
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
pub struct Which {
    /// A model name: its deployments only.
    model: Option<String>,
    /// A deployment id: that one only.
    model_id: Option<String>,
}

/// `/health`: LiteLLM's check of every deployment the config lists (or of
/// one model's, or one deployment's), each with a tiny real chat request,
/// all at once. It costs a few tokens a deployment, so it needs the master
/// key (a virtual key's budget and models do not cover it).
pub async fn models(
    who: super::Authorized,
    State(app): State<Arc<AppState>>,
    Query(which): Query<Which>,
) -> Response {
    if who.0.is_some() {
        return super::error::error_response(&llmux_core::ApiError::new(
            403,
            "Only the master key may run health checks (each calls every deployment).",
        ));
    }
    let mut wanted: Vec<Arc<DeploymentState>> = app
        .router
        .listed()
        .into_iter()
        .filter(|d| {
            let d = &d.deployment;
            which.model.as_ref().is_none_or(|m| *m == d.model_name)
                && which.model_id.as_ref().is_none_or(|id| *id == d.id)
        })
        .cloned()
        .collect();
    // Wildcard routes, through the model each names for its check (LiteLLM's
    // `health_check_model`); routes without one are not checked.
    let mut unbuilt = Vec::new();
    for c in app.router.wildcard_health() {
        // `?model=` names the route's pattern or its check's model.
        if which
            .model
            .as_ref()
            .is_some_and(|m| *m != c.model && **m != *c.pattern)
            || which.model_id.as_ref().is_some_and(|i| *i != c.id)
        {
            continue;
        }
        match c.found {
            Ok(state) => wanted.push(state),
            Err(e) => {
                let mut endpoint = Map::new();
                endpoint.insert("model_name".into(), c.model.into());
                endpoint.insert("model_id".into(), c.id.into());
                unbuilt.push((endpoint, Some(e.message)));
            }
        }
    }
    let checks = wanted.into_iter().map(|state| {
        let app = app.clone();
        async move {
            let result = tokio::time::timeout(CHECK_TIMEOUT, check(&app, state.clone())).await;
            let error = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.message),
                Err(_) => Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
            };
            (endpoint(&state), error)
        }
    });
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    let results = futures_util::future::join_all(checks).await;
    for (mut endpoint, error) in results.into_iter().chain(unbuilt) {
        match error {
            None => healthy.push(Value::Object(endpoint)),
            Some(e) => {
                endpoint.insert("error".into(), e.into());
                unhealthy.push(Value::Object(endpoint));
            }
        }
    }
    Json(json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
    }))
    .into_response()
}

/// One deployment asked a one-line question, as a client's request to it
/// would be sent (its provider's translation, its credentials).
async fn check(app: &Arc<AppState>, state: Arc<DeploymentState>) -> Result<(), ApiError> {
    let body = Bytes::from(
        json!({
            "model": state.deployment.model_name,
            "messages": [{"role": "user", "content": "Hey how's it going?"}],
            "max_tokens": 16,
        })
        .to_string(),
    );
    let typed: ChatCompletionRequest = super::dispatch::read_typed(&body, "health check")?;
    let raw = RawChatRequest::parse(&body)?;
    let call = ChatCall {
        request: &raw,
        typed: Some(&typed),
        drop_params: true,
    };
    super::chat::attempt(app, state, &call, None)
        .await
        .map(drop)
}

/// A deployment as `/health` shows it: its public `litellm_params`, its
/// model name and id.
fn endpoint(state: &DeploymentState) -> Map<String, Value> {
    let d = &state.deployment;
    let mut e = super::models::public_params(d);
    e.insert("model_name".into(), d.model_name.clone().into());
    e.insert("model_id".into(), d.id.clone().into());
    e
}
