//! The one pooled HTTP client for every upstream. Knows nothing of any
//! provider's format: sends an `UpstreamRequest`, hands back the response.

use llmux_core::ApiError;
use llmux_core::providers::UpstreamRequest;
use std::error::Error as _;
use std::time::Duration;

/// One connection pool per worker thread: a request is sent on a
/// connection owned by its own worker's runtime, so the response wakes a
/// task on the same thread.
#[derive(Clone)]
pub struct Transport {
    clients: std::sync::Arc<[reqwest::Client]>,
}

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as worker `n` (its pool is `n`).
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

impl Transport {
    pub fn new(workers: usize) -> Result<Transport, reqwest::Error> {
        let clients = (0..workers.max(1))
            .map(|_| build_client())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Transport {
            clients: clients.into(),
        })
    }

    fn client(&self) -> &reqwest::Client {
        let n = WORKER.with(|w| w.get());
        &self.clients[n % self.clients.len()]
    }

    /// Sends the request and waits for the response head, at most `timeout`.
    pub async fn send(
        &self,
        req: UpstreamRequest,
        timeout: Duration,
    ) -> Result<reqwest::Response, ApiError> {
        let host = host_of(&req.url);
        let fut = self
            .client()
            .post(&req.url)
            .headers(req.headers)
            .body(req.body)
            .send();
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "The upstream at {host} did not answer within {}s.",
                timeout.as_secs_f64()
            ))
            .retryable(true)),
            Ok(Err(e)) => Err(upstream_error(&host, &e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

impl Transport {
    /// A form POST (OAuth token exchanges): status and body.
    pub async fn post_form(
        &self,
        url: &str,
        body: String,
        timeout: Duration,
    ) -> Result<(u16, bytes::Bytes), ApiError> {
        let host = host_of(url);
        let fut = async {
            let resp = self
                .client()
                .post(url)
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
                .send()
                .await?;
            let status = resp.status().as_u16();
            Ok::<_, reqwest::Error>((status, resp.bytes().await?))
        };
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "The token endpoint at {host} timed out."
            ))
            .retryable(true)),
            Ok(Err(e)) => Err(upstream_error(&host, &e)),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        // Upstream redirects are not followed: a provider that redirects
        // a POST is misconfigured, and following could leak the key.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A transport failure as a client-facing error, without the URL (which
/// could carry credentials).
pub fn upstream_error(host: &str, e: &reqwest::Error) -> ApiError {
    let mut detail = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        return ApiError::gateway_timeout(format!("The upstream at {host} timed out."))
            .retryable(true);
    }
    let what = if e.is_connect() {
        "could not be reached"
    } else if e.is_body() || e.is_decode() {
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
