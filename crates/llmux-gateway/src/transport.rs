//! The pooled HTTP client for every upstream. Knows nothing of any
//! provider's format: sends an `UpstreamRequest`, hands back the response.
//!
//! It is hyper's own client (`hyper-util`) over rustls, driven directly:
//! the URL is parsed once into an `http::Uri`, headers and body are moved
//! into the request as they are, and the response comes back as hyper's
//! streaming body, with nothing in between.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use llmux_core::ApiError;
use llmux_core::providers::UpstreamRequest;
use std::error::Error;
use std::time::Duration;

/// An upstream answer: head read, body still streaming.
pub type UpstreamResponse = http::Response<hyper::body::Incoming>;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The read buffer of an upstream connection. Fixed rather than hyper's
/// adaptive 8 KB and up, so thousands of open streams, whose events are a
/// few hundred bytes, do not each hold 8 KB. Not smaller: a burst of events
/// larger than one read costs a read and a client write more (2 KB cost
/// a streamed request about 8 µs of CPU in `bench/`, for 2 KB less a stream).
const READ_BUF: usize = 4096;

/// One connection pool per worker thread: a request is sent on a
/// connection owned by its own worker's runtime, so the response wakes a
/// task on the same thread.
#[derive(Clone)]
pub struct Transport {
    clients: std::sync::Arc<[HttpClient]>,
}

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as worker `n` (its pool is `n`).
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct TransportError(String);

impl Transport {
    pub fn new(workers: usize) -> Result<Transport, TransportError> {
        let tls = tls_config()?;
        let clients: Vec<HttpClient> = (0..workers.max(1))
            .map(|_| build_client(tls.clone()))
            .collect();
        Ok(Transport {
            clients: clients.into(),
        })
    }

    fn client(&self) -> &HttpClient {
        let n = WORKER.with(|w| w.get());
        &self.clients[n % self.clients.len()]
    }

    /// Sends the request and waits for the response head, at most `timeout`.
    pub async fn send(
        &self,
        req: UpstreamRequest,
        host: &str,
        timeout: Duration,
    ) -> Result<UpstreamResponse, ApiError> {
        let request = build_request(req.url, req.headers, req.body, host)?;
        match tokio::time::timeout(timeout, self.client().request(request)).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "The upstream at {host} did not answer within {}s.",
                timeout.as_secs_f64()
            ))
            .retryable(true)),
            Ok(Err(e)) => Err(upstream_error(host, &e, e.is_connect())),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// A form POST (OAuth token exchanges): status and body.
    pub async fn post_form(
        &self,
        url: &str,
        body: String,
        timeout: Duration,
    ) -> Result<(u16, Bytes), ApiError> {
        let host = host_of(url);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let request = build_request(url.to_owned(), headers, Bytes::from(body), &host)?;
        let fut = async {
            let resp = self
                .client()
                .request(request)
                .await
                .map_err(|e| upstream_error(&host, &e, e.is_connect()))?;
            let status = resp.status().as_u16();
            let body = collect(resp.into_body(), &host).await?;
            Ok::<_, ApiError>((status, body))
        };
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "The token endpoint at {host} timed out."
            ))
            .retryable(true)),
            Ok(r) => r,
        }
    }
}

/// The whole of a response body (a body that came in one piece is handed on
/// as it is, without a copy).
pub async fn collect(body: hyper::body::Incoming, host: &str) -> Result<Bytes, ApiError> {
    match body.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(upstream_error(host, &e, false)),
    }
}

fn build_request(
    url: String,
    headers: http::HeaderMap,
    body: Bytes,
    host: &str,
) -> Result<http::Request<Full<Bytes>>, ApiError> {
    let uri: http::Uri = url.try_into().map_err(|_| {
        ApiError::bad_gateway(format!(
            "The upstream URL for {host} is not a valid URL; check api_base."
        ))
    })?;
    let mut request = http::Request::new(Full::new(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// rustls with the platform's trust store (aws-lc-rs), as reqwest sets it up.
fn tls_config() -> Result<rustls::ClientConfig, TransportError> {
    use hyper_rustls::ConfigBuilderExt;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError(e.to_string()))?
        .try_with_platform_verifier()
        .map_err(|e| TransportError(e.to_string()))
        .map(|b| b.with_no_client_auth())
}

fn build_client(tls: rustls::ClientConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    // Upstream redirects are never followed (hyper's client does not): a
    // provider that redirects a POST is misconfigured, and following could
    // leak the key.
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http1_read_buf_exact_size(READ_BUF)
        .build(https)
}

/// A transport failure as a client-facing error, without the URL (which
/// could carry credentials).
pub fn upstream_error(host: &str, e: &(dyn Error + 'static), connect: bool) -> ApiError {
    let mut detail = String::new();
    let mut source: Option<&(dyn Error + 'static)> = Some(e);
    let mut timeout = false;
    while let Some(s) = source {
        let text = s.to_string();
        timeout |= s
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
            || matches!(s.downcast_ref::<std::io::Error>(), Some(io) if io.kind() == std::io::ErrorKind::TimedOut);
        if !text.is_empty() {
            detail = text;
        }
        source = s.source();
    }
    if timeout {
        return ApiError::gateway_timeout(format!("The upstream at {host} timed out."))
            .retryable(true);
    }
    let what = if connect {
        "could not be reached"
    } else if e.downcast_ref::<hyper::Error>().is_some() {
        "broke off its response"
    } else {
        "failed"
    };
    let mut msg = format!("The upstream at {host} {what}");
    if !detail.is_empty() {
        msg.push_str(": ");
        msg.push_str(&detail);
    }
    msg.push('.');
    ApiError::bad_gateway(msg).retryable(true)
}

/// `scheme://host:port` of a URL, nothing more.
pub fn host_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if scheme.is_empty() {
        host.to_owned()
    } else {
        format!("{scheme}://{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_drops_path_query_and_userinfo() {
        assert_eq!(
            host_of("https://user:pw@api.example.com:8443/v1/chat?key=x"),
            "https://api.example.com:8443"
        );
        assert_eq!(host_of("http://127.0.0.1:9/v1"), "http://127.0.0.1:9");
    }
}
