//! Health probes, in LiteLLM's shapes.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `/health/liveliness` and `/health/liveness`: public, always cheap.
pub async fn liveness() -> Response {
    Json("I'm alive!").into_response()
}

/// `/health/readiness`: the process can serve. Public, as LiteLLM's is
/// (a probe sends no key); it tells nothing a caller could misuse.
pub async fn readiness(State(app): State<Arc<AppState>>) -> Response {
    Json(json!({
        "status": "healthy",
        "db": "Not connected",
        "cache": null,
        "llmux_version": env!("CARGO_PKG_VERSION"),
        "models": app.model_count,
    }))
    .into_response()
}
