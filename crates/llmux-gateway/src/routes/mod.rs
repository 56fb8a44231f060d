//! HTTP routes, with and without the `/v1` prefix, as LiteLLM serves them.

mod chat;
mod dispatch;
pub mod error;
mod health;
mod keys;
mod messages;
mod models;

pub use models::public_url;

use crate::auth;
use crate::config::Config;
use crate::credentials::CredentialStore;
use crate::images::ImageFetcher;
use crate::router::Router;
use crate::transport::Transport;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::routing::{get, post};
use bytes::Bytes;
use http::HeaderValue;
use llmux_core::{ApiError, Secret};
use std::convert::Infallible;
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
    pub fallbacks: crate::config::Fallbacks,
    pub request_timeout: Duration,
    pub max_request_bytes: usize,
    /// Prometheus metrics, when the config turns them on.
    pub metrics: Option<crate::metrics::Metrics>,
    metrics_auth: bool,
    /// Virtual keys and spend, when the config names a database.
    pub keys: Option<Arc<crate::keys::Keys>>,
    /// What the key routes fill in and bound (LiteLLM's
    /// `default_key_generate_params`, `upperbound_key_generate_params`).
    pub key_params: crate::keys::KeyParams,
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
        let listed = models::listed(&config);
        let models_json = models::models_json(&listed, created);
        let model_info_json = models::model_info_json(&listed);
        let model_count = config.model_names().len();
        let probes = config.wildcards.credential_probes();
        let with_probes: Vec<_> = config.deployments.iter().chain(&probes).cloned().collect();
        let credentials = CredentialStore::new(&with_probes, &config.env)?;
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
            router: Router::with_wildcards(config.deployments, config.wildcards)
                .with_aliases(&config.aliases)
                .with_strategy(config.routing_strategy)
                .with_cooldowns(config.cooldowns),
            transport,
            master_key: config.master_key,
            drop_params: config.drop_params,
            num_retries: config.num_retries,
            fallbacks: config.fallbacks,
            request_timeout: config.request_timeout,
            max_request_bytes: config.max_request_bytes,
            metrics: config.metrics.map(|_| crate::metrics::Metrics::new()),
            metrics_auth: config.metrics.is_some_and(|m| m.require_auth),
            keys: None,
            key_params: config.key_params,
            model_count,
            models_json,
            model_info_json,
        })
    }
}

pub fn app(state: Arc<AppState>) -> axum::Router {
    let protected = axum::Router::new()
        .route("/chat/completions", post(post_chat))
        .route("/v1/chat/completions", post(post_chat))
        .route("/v1/messages", post(post_messages))
        .route("/messages", post(post_messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/messages/count_tokens", post(messages::count_tokens))
        .route("/models", get(models::list))
        .route("/v1/models", get(models::list))
        .route("/model/info", get(models::info))
        .route("/v1/model/info", get(models::info))
        .route("/health", get(health::models))
        .route("/v1/health", get(health::models));
    // LiteLLM's key and spend routes (the master key, checked in each).
    let manage = axum::Router::new()
        .route("/key/generate", post(keys::generate))
        .route("/key/update", post(keys::update))
        .route("/key/delete", post(keys::delete))
        .route("/key/block", post(keys::block))
        .route("/key/unblock", post(keys::unblock))
        .route("/key/regenerate", post(keys::regenerate))
        .route("/key/{key}/regenerate", post(keys::regenerate_path))
        .route("/key/info", get(keys::info))
        .route("/key/list", get(keys::list))
        .route("/spend/logs", get(keys::spend_logs));
    let manage = axum::Router::new()
        .merge(manage.clone())
        .nest("/v1", manage);
    let metrics_on = state.metrics.is_some();
    // Probes are public, as LiteLLM's are: a Kubernetes probe sends no key.
    let public = axum::Router::new()
        .route("/health/readiness", get(health::readiness))
        .route("/v1/health/readiness", get(health::readiness))
        .route("/health/liveliness", get(health::liveness))
        .route("/health/liveness", get(health::liveness))
        .route("/v1/health/liveliness", get(health::liveness))
        .route("/v1/health/liveness", get(health::liveness));
    let public = if metrics_on {
        public
            .route("/metrics", get(metrics))
            .route("/v1/metrics", get(metrics))
    } else {
        public
    };
    public
        .merge(protected)
        .merge(manage)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_request_bytes))
        .with_state(state)
}

/// The two routes nearly every request takes: chat completions, and the
/// Messages API for Claude Code.
#[derive(Clone, Copy)]
enum Hot {
    Chat,
    Messages,
}

impl Hot {
    fn of(method: &http::Method, path: &str) -> Option<Hot> {
        if method != http::Method::POST {
            return None;
        }
        match path {
            "/v1/chat/completions" | "/chat/completions" => Some(Hot::Chat),
            "/v1/messages" | "/messages" => Some(Hot::Messages),
            _ => None,
        }
    }
}

/// `GET /metrics`: Prometheus's text format. Open, as LiteLLM's is, unless
/// `require_auth_for_metrics_endpoint` asks for the master key.
async fn metrics(State(app): State<Arc<AppState>>, req: Request) -> Response {
    if app.metrics_auth && !auth::authorized(app.master_key.as_ref(), req.headers()) {
        return unauthorized(req.uri().path());
    }
    let Some(m) = &app.metrics else {
        return error::error_response(&ApiError::new(404, "Metrics are off."));
    };
    let mut resp = Response::new(axum::body::Body::from(
        m.render(&app.router, app.keys.as_deref()),
    ));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

async fn post_chat(State(app): State<Arc<AppState>>, req: Request) -> Response {
    serve_chat(app, req).await
}

async fn post_messages(State(app): State<Arc<AppState>>, req: Request) -> Response {
    serve_messages(app, req).await
}

// A POST to a hot route, start to finish: the key, the body (413 over the
// limit), the handler; the same code whether axum routed the request or
// `Gateway` did. One function per route rather than one with a `match`: an
// async fn's future is as large as its largest branch, and a chat request
// should not allocate and copy room for the Messages route's.

/// `POST /v1/chat/completions`, start to finish.
async fn serve_chat<B>(app: Arc<AppState>, req: http::Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let who = match app.admit(req.headers(), "acompletion").await {
        Ok(who) => who,
        Err(e) => {
            let resp = error::error_response(&e);
            dispatch::record_request(&app, None, &resp, Some(std::time::Instant::now()), None);
            return resp;
        }
    };
    // The head is not needed past here: dropped, so the future does not
    // hold it across the upstream call.
    let body = read_body(req.into_body(), app.max_request_bytes).await;
    chat::chat_completions(&app, body, who).await
}

/// `POST /v1/messages`, start to finish (its headers carry Anthropic's
/// version and betas).
async fn serve_messages<B>(app: Arc<AppState>, req: http::Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let who = match app.admit(req.headers(), "anthropic_messages").await {
        Ok(who) => who,
        Err(e) => {
            let resp = messages::anthropic_error(&e);
            dispatch::record_request(&app, None, &resp, Some(std::time::Instant::now()), None);
            return resp;
        }
    };
    let (parts, body) = req.into_parts();
    let body = read_body(body, app.max_request_bytes).await;
    messages::messages(&app, &parts.headers, body, who).await
}

/// The whole request body, or the error a client should see (413 over the
/// limit).
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "Failed to read the request body: {e}"
        ))),
    }
}

/// The service every connection is served by. A POST to a hot route goes
/// straight to [`serve_chat`] or [`serve_messages`]; everything else
/// through axum's router. axum's routing, extractors and layers cost a
/// request seven allocations (the direct way makes one, its boxed future)
/// and about 6 k instructions, a tenth of a pass-through request's own.
#[derive(Clone)]
pub struct Gateway {
    app: Arc<AppState>,
    router: axum::Router,
}

impl Gateway {
    pub fn new(app: Arc<AppState>) -> Gateway {
        Gateway {
            router: self::app(app.clone()),
            app,
        }
    }
}

type HotFuture = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Gateway {
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Either<HotFuture, RouteFuture<Infallible>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        use futures_util::future::Either;
        // A browser's request names its page's origin: the answer lets the
        // page read it (CORS), as LiteLLM's does for any origin. Keys travel
        // in headers, never cookies, so no origin gains a credential.
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        if let (Some(o), true) = (&origin, req.method() == http::Method::OPTIONS) {
            let resp = preflight(o.clone(), req.headers());
            return Either::Left(Box::pin(std::future::ready(Ok(resp))));
        }
        match Hot::of(req.method(), req.uri().path()) {
            Some(route) => {
                let app = self.app.clone();
                let fut: HotFuture = match (route, origin) {
                    (Hot::Chat, None) => Box::pin(async move { Ok(serve_chat(app, req).await) }),
                    (Hot::Messages, None) => {
                        Box::pin(async move { Ok(serve_messages(app, req).await) })
                    }
                    (Hot::Chat, Some(o)) => {
                        Box::pin(async move { Ok(cors(o, serve_chat(app, req).await)) })
                    }
                    (Hot::Messages, Some(o)) => {
                        Box::pin(async move { Ok(cors(o, serve_messages(app, req).await)) })
                    }
                };
                Either::Left(fut)
            }
            None => match origin {
                None => Either::Right(tower_service::Service::call(&mut self.router.clone(), req)),
                Some(o) => {
                    let routed = tower_service::Service::call(&mut self.router.clone(), req);
                    Either::Left(Box::pin(async move { routed.await.map(|r| cors(o, r)) }))
                }
            },
        }
    }
}

/// The answer to a browser's preflight (`OPTIONS` with `Origin`): any
/// origin, method and header may follow, for a day.
fn preflight(origin: HeaderValue, headers: &http::HeaderMap) -> Response {
    use http::header;
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = http::StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let asked = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    resp
}

/// An answer a browser page of `origin` may read, the gateway's own
/// headers (model id, cost) included.
fn cors(origin: HeaderValue, mut resp: Response) -> Response {
    use http::header;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "x-litellm-model-id, x-litellm-response-cost, x-litellm-call-id, \
             x-litellm-attempted-fallbacks, retry-after, x-litellm-key-spend, \
             x-litellm-key-max-budget, x-litellm-key-rpm-limit, x-litellm-key-tpm-limit, \
             x-ratelimit-limit-requests, x-ratelimit-remaining-requests, \
             x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens",
        ),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
    resp
}

impl AppState {
    /// Lets a model request in: with virtual keys, its key checked against
    /// its limits (the admission holds its parallel slot); without, the
    /// master key if one is set.
    async fn admit(
        &self,
        headers: &http::HeaderMap,
        call_type: &'static str,
    ) -> Result<Option<Arc<crate::keys::Admission>>, ApiError> {
        match &self.keys {
            Some(keys) => keys
                .admit(self.master_key.as_ref(), headers, call_type)
                .await
                .map(Some),
            None if auth::authorized(self.master_key.as_ref(), headers) => Ok(None),
            None => Err(auth::invalid_key()),
        }
    }
}

/// Proof that the request carries a valid llmux key: every handler of a
/// protected route takes one as its first argument, and with it the
/// virtual key, if it is one (for the models it may see). (An extractor
/// rather than a middleware layer, which would box and clone the route's
/// service on every request.)
pub struct Authorized(pub Option<Arc<crate::keys::KeyEntry>>);

impl FromRequestParts<Arc<AppState>> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let who = match &app.keys {
            Some(keys) => keys.identify(app.master_key.as_ref(), &parts.headers).await,
            None if auth::authorized(app.master_key.as_ref(), &parts.headers) => {
                Ok(crate::keys::Identity::Master)
            }
            None => Err(auth::invalid_key()),
        };
        match who {
            Ok(crate::keys::Identity::Master) => Ok(Authorized(None)),
            Ok(crate::keys::Identity::Key(k)) => Ok(Authorized(Some(k))),
            Err(e) => Err(rejected(parts.uri.path(), &e)),
        }
    }
}

/// An auth error, in Anthropic's shape on its routes and OpenAI's elsewhere.
fn rejected(path: &str, err: &ApiError) -> Response {
    if path.contains("/messages") {
        return messages::anthropic_error(err);
    }
    error::error_response(err)
}

fn unauthorized(path: &str) -> Response {
    rejected(path, &auth::invalid_key())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, load_file};
    use http_body_util::Full;

    fn app() -> Arc<AppState> {
        let path = std::env::temp_dir().join(format!("llmux-routes-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-x}\n",
        )
        .unwrap();
        let config = load_file(
            &path,
            &llmux_core::Catalog::builtin().unwrap(),
            &Env::fixed(&[]),
        );
        std::fs::remove_file(&path).unwrap();
        let config = config.unwrap();
        Arc::new(AppState::new(config, Transport::new().unwrap()).unwrap())
    }

    /// The future a hot request is served by is the request's whole state
    /// while the upstream takes its time: thousands of long calls in flight
    /// hold thousands of them. A heavy branch that only some requests take
    /// (a token exchange, fetching images, translating a Messages request)
    /// belongs in a box of its own, not in every request's future. Boxed,
    /// the futures are 3,552 and 3,688 bytes in a debug build (64 and 72 of
    /// them the virtual key's admission, carried to each attempt; 3,480
    /// and 3,616 without); unboxed, the token exchange alone made the chat
    /// one 3,832, the translation the Messages one 5,488, and all of them
    /// together (with one future for both routes) 15 KB.
    #[test]
    fn a_request_in_flight_holds_a_small_future() {
        let app = app();
        let req = || http::Request::new(Full::new(Bytes::from_static(b"{}")));
        let chat = std::mem::size_of_val(&serve_chat(app.clone(), req()));
        let messages = std::mem::size_of_val(&serve_messages(app, req()));
        assert!(chat <= 3_600, "a chat request's future is {chat} bytes");
        assert!(
            messages <= 4_000,
            "a Messages request's future is {messages} bytes"
        );
    }
}
