//! HTTP routes, with and without the `/v1` prefix, as LiteLLM serves them.

mod chat;
mod dispatch;
pub mod error;
mod health;
mod messages;
mod models;

use crate::auth;
use crate::config::Config;
use crate::credentials::CredentialStore;
use crate::images::ImageFetcher;
use crate::router::Router;
use crate::transport::Transport;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use llmux_core::{ApiError, Secret};
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub router: Router,
    pub transport: Transport,
    pub credentials: CredentialStore,
    /// Inlines remote images for Bedrock, when enabled.
    pub images: Option<ImageFetcher>,
    pub master_key: Option<Secret>,
    pub drop_params: bool,
    pub num_retries: u32,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    pub model_count: usize,
    models_json: Bytes,
    model_info_json: Bytes,
}

impl AppState {
    pub fn new(config: Config, transport: Transport) -> Result<AppState, String> {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let models_json = models::models_json(&config.deployments, created);
        let model_info_json = models::model_info_json(&config.deployments);
        let model_count = config.model_names().len();
        let credentials = CredentialStore::new(&config.deployments, &config.env)?;
        let images = if config.fetch_image_urls {
            Some(
                ImageFetcher::new(config.fetch_image_urls_allow_private)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        Ok(AppState {
            credentials,
            images,
            router: Router::new(config.deployments),
            transport,
            master_key: config.master_key,
            drop_params: config.drop_params,
            num_retries: config.num_retries,
            request_timeout: config.request_timeout,
            max_request_bytes: config.max_request_bytes,
            model_count,
            models_json,
            model_info_json,
        })
    }
}

pub fn app(state: Arc<AppState>) -> axum::Router {
    let protected = axum::Router::new()
        .route("/chat/completions", post(chat::chat_completions))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(messages::messages))
        .route("/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/messages/count_tokens", post(messages::count_tokens))
        .route("/models", get(models::list))
        .route("/v1/models", get(models::list))
        .route("/model/info", get(models::info))
        .route("/v1/model/info", get(models::info))
        .route("/health/readiness", get(health::readiness))
        .route("/v1/health/readiness", get(health::readiness));
    let public = axum::Router::new()
        .route("/health/liveliness", get(health::liveness))
        .route("/health/liveness", get(health::liveness))
        .route("/v1/health/liveliness", get(health::liveness))
        .route("/v1/health/liveness", get(health::liveness));
    public
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_request_bytes))
        .with_state(state)
}

/// Proof that the request carries a valid llmux key: every handler of a
/// protected route takes one as its first argument. (An extractor rather
/// than a middleware layer, which would box and clone the route's service
/// on every request.)
pub struct Authorized;

impl FromRequestParts<Arc<AppState>> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if auth::authorized(app.master_key.as_ref(), &parts.headers) {
            return Ok(Authorized);
        }
        let err = ApiError::unauthorized(
            "Authentication error: invalid or missing API key. Send your llmux key as \
             `Authorization: Bearer <key>` (or in `x-api-key`, `api-key`, `x-litellm-api-key`).",
        );
        if parts.uri.path().contains("/messages") {
            return Err(messages::anthropic_error(&err));
        }
        Err(error::error_response(&err))
    }
}

/// The request body, or the error a client should see (413 over the limit).
fn body_or_error(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    match body {
        Ok(b) => Ok(b),
        Err(rej) if rej.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(rej) => Err(ApiError::bad_request(rej.body_text())),
    }
}

async fn not_found(req: Request) -> Response {
    error::error_response(&ApiError::new(
        404,
        format!("Unknown route: {} {}", req.method(), req.uri().path()),
    ))
}

async fn method_not_allowed(req: Request) -> Response {
    error::error_response(&ApiError::new(
        405,
        format!(
            "Method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    ))
}
