//! The pooled HTTP client for every upstream. Knows nothing of any
//! provider's format: sends an `UpstreamRequest`, hands back the response.
//!
//! hyper's HTTP/1.1 client connections (`hyper::client::conn::http1`) over
//! hyper-util's connector (DNS, happy eyeballs, TCP options) and rustls,
//! pooled here rather than by hyper-util's generic pool. Each worker thread
//! keeps its own idle connections, so a request's upstream connection lives
//! on the worker serving it, and a pool check-out is a `Vec::pop` with no
//! lock, no key allocation and no task spawned per request. A connection
//! goes back to its worker's pool when its response body has been read to
//! the end ([`UpstreamBody`]); one dropped half-read is closed instead.
//!
//! Upstreams are spoken to in HTTP/1.1, as LiteLLM's clients do: a stream is
//! one connection, and no stream ever waits behind another for an HTTP/2
//! connection's stream limit.

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::HOST;
use http::{HeaderValue, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use llmux_core::ApiError;
use llmux_core::providers::UpstreamRequest;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower_service::Service;

/// An upstream answer: head read, body still streaming.
pub type UpstreamResponse = http::Response<UpstreamBody>;

type Sender = http1::SendRequest<Full<Bytes>>;
type Connector = HttpsConnector<HttpConnector>;

/// The read buffer of an upstream connection. Fixed rather than hyper's
/// adaptive 8 KB and up, so thousands of open streams, whose events are a
/// few hundred bytes, do not each hold 8 KB. Not smaller: a burst of events
/// larger than one read costs a read and a client write more (2 KB cost
/// a streamed request about 8 µs of CPU in `bench/`, for 2 KB less a stream).
const READ_BUF: usize = 4096;

/// An idle connection unused this many seconds (heartbeat ticks, see
/// [`tick`]) is closed.
const IDLE_TICKS: u64 = 90;

/// At most this many idle connections are kept per upstream and worker.
const MAX_IDLE: usize = 1024;

/// How the gateway reaches its upstreams. Cheap to clone; the pools
/// themselves are per thread.
#[derive(Clone)]
pub struct Transport {
    connector: Connector,
}

/// An upstream's pool key: its scheme and authority. The authority is
/// shared with every response body that will give a connection back.
#[derive(Clone)]
struct PoolKey {
    https: bool,
    authority: Arc<str>,
}

/// One upstream's idle connections on one thread.
struct HostPool {
    key: PoolKey,
    /// The `Host` header every request to it carries, built once.
    host: HeaderValue,
    /// Idle connections with the tick they went idle at; the most recently
    /// used last, so it is used first (it is the likeliest still open).
    idle: Vec<(Sender, u64)>,
}

/// The few upstreams a gateway has come from its config, not from clients,
/// so a fast hash is safe here (std's SipHash took 0.7 k instructions a
/// request, at check-out and return).
type ByAuthority = HashMap<Box<str>, HostPool, foldhash::fast::RandomState>;

#[derive(Default)]
struct Pools {
    /// By authority, one map per scheme, so a lookup borrows the request's
    /// authority instead of building a key.
    http: ByAuthority,
    https: ByAuthority,
}

impl Pools {
    fn get(&mut self, https: bool, authority: &str) -> Option<&mut HostPool> {
        if https {
            &mut self.https
        } else {
            &mut self.http
        }
        .get_mut(authority)
    }

    /// The upstream's pool, made the first time it is needed; `None` for
    /// an authority that is no valid `Host` header (no request has one).
    fn entry(&mut self, https: bool, authority: &str) -> Option<&mut HostPool> {
        let map = if https {
            &mut self.https
        } else {
            &mut self.http
        };
        if !map.contains_key(authority) {
            let pool = HostPool {
                key: PoolKey {
                    https,
                    authority: Arc::from(authority),
                },
                host: HeaderValue::from_str(authority).ok()?,
                idle: Vec::new(),
            };
            return Some(map.entry(authority.into()).or_insert(pool));
        }
        map.get_mut(authority)
    }
}

/// A URL's parts, parsed once per worker: requests go to the few URLs the
/// config names (parsing one, and the host for errors, took 2 k
/// instructions a request).
#[derive(Clone)]
struct Parsed {
    https: bool,
    authority: http::uri::Authority,
    path: http::uri::PathAndQuery,
    /// Scheme and authority without credentials, for errors and logs.
    host: Arc<str>,
}

/// At most this many URLs are kept parsed per worker; past it, the cache
/// starts again (URLs come from the config, so it is never reached but by
/// a config with thousands of deployments).
const MAX_PARSED: usize = 4096;

type ParsedUrls = HashMap<Box<str>, Parsed, foldhash::fast::RandomState>;

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::new(Pools::default());
    static PARSED: RefCell<ParsedUrls> = RefCell::new(ParsedUrls::default());
    /// Seconds since this worker started, advanced by [`tick`].
    static NOW: Cell<u64> = const { Cell::new(0) };
}

/// Called once a second by each worker: advances its clock and closes the
/// connections idle longer than 90 s.
pub fn tick() {
    let now = NOW.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    POOLS.with_borrow_mut(|p| {
        for host in p.http.values_mut().chain(p.https.values_mut()) {
            host.idle
                .retain(|(s, at)| now - at <= IDLE_TICKS && !s.is_closed());
        }
    });
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct TransportError(String);

/// A connection checked out of the pool or freshly made.
struct Checkout {
    sender: Sender,
    key: PoolKey,
    host: HeaderValue,
    reused: bool,
}

impl Transport {
    pub fn new() -> Result<Transport, TransportError> {
        Ok(Transport {
            connector: build_connector(tls_config()?),
        })
    }

    /// Sends the request and waits for the response head, at most `timeout`.
    /// With the response, the upstream's scheme and authority (its URL
    /// without path or credentials), to name it in errors.
    pub async fn send(
        &self,
        req: UpstreamRequest,
        timeout: Duration,
    ) -> Result<(UpstreamResponse, Arc<str>), ApiError> {
        let (request, host) = build_request(&req.url, req.headers, req.body)?;
        match tokio::time::timeout(timeout, self.request(request, &host)).await {
            Err(_) => Err(ApiError::gateway_timeout(format!(
                "The upstream at {host} did not answer within {}s.",
                timeout.as_secs_f64()
            ))
            .retryable(true)),
            Ok(r) => Ok((r?, host)),
        }
    }

    /// A form POST (OAuth token exchanges): status and body.
    pub async fn post_form(
        &self,
        url: &str,
        body: String,
        timeout: Duration,
    ) -> Result<(u16, Bytes), ApiError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let (request, host) = build_request(url, headers, Bytes::from(body))?;
        let fut = async {
            let resp = self.request(request, &host).await?;
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

    /// Sends on a pooled connection, or a new one. A request that a reused
    /// connection closed before it was sent (the upstream hung up on an idle
    /// connection) is sent again on another; one that may have reached the
    /// upstream is not.
    async fn request(&self, request: Target, host: &str) -> Result<UpstreamResponse, ApiError> {
        let Target {
            mut req,
            https,
            authority,
        } = request;
        loop {
            let mut conn = match checkout(https, authority.as_str()).await {
                Some(c) => c,
                None => self.connect(https, &authority, host).await?,
            };
            req.headers_mut()
                .entry(HOST)
                .or_insert_with(|| conn.host.clone());
            match conn.sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let body = UpstreamBody {
                        inner: body,
                        conn: Some((conn.sender, conn.key)),
                    };
                    return Ok(http::Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if conn.reused => {
                        tracing::debug!(
                            "upstream connection closed before the request went out; retrying"
                        );
                        req = unsent;
                    }
                    _ => return Err(upstream_error(host, e.error(), false)),
                },
            }
        }
    }

    /// A new connection (TCP, TLS when `https`, the HTTP/1.1 handshake),
    /// its connection task spawned on this worker.
    async fn connect(
        &self,
        https: bool,
        authority: &http::uri::Authority,
        host: &str,
    ) -> Result<Checkout, ApiError> {
        let unreachable = |e: &(dyn Error + 'static)| upstream_error(host, e, true);
        let uri = Uri::builder()
            .scheme(if https { "https" } else { "http" })
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| unreachable(&e))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| unreachable(&*e))?;
        let io = Io::from(connector.call(uri).await.map_err(|e| unreachable(&*e))?);
        let (sender, conn) = http1::Builder::new()
            .read_buf_exact_size(Some(READ_BUF))
            .handshake(io)
            .await
            .map_err(|e| unreachable(&e))?;
        // `map` rather than an async block, which would hold the connection
        // twice (see `server::accept_loop`).
        tokio::spawn(conn.map(|r| {
            if let Err(e) = r {
                tracing::debug!("upstream connection ended: {e}");
            }
        }));
        let (key, host) = POOLS
            .with_borrow_mut(|p| {
                p.entry(https, authority.as_str())
                    .map(|h| (h.key.clone(), h.host.clone()))
            })
            .ok_or_else(|| invalid_url(host))?;
        Ok(Checkout {
            sender,
            key,
            host,
            reused: false,
        })
    }
}

/// A connection's socket. A TLS session is about 1 KB of state, boxed so
/// that plain-HTTP upstreams (local model servers, sidecars) do not carry
/// its size in every connection task.
enum Io {
    Plain(TokioIo<TcpStream>),
    Tls(Box<MaybeHttpsStream<TokioIo<TcpStream>>>),
}

impl From<MaybeHttpsStream<TokioIo<TcpStream>>> for Io {
    fn from(s: MaybeHttpsStream<TokioIo<TcpStream>>) -> Io {
        match s {
            MaybeHttpsStream::Http(tcp) => Io::Plain(tcp),
            tls => Io::Tls(Box::new(tls)),
        }
    }
}

/// Calls the same method on whichever socket it is.
macro_rules! either {
    ($io:expr, $s:ident => $call:expr) => {
        match $io.get_mut() {
            Io::Plain($s) => {
                let $s = Pin::new($s);
                $call
            }
            Io::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
        }
    };
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        either!(self, s => s.poll_read(cx, buf))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        either!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        either!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        either!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        either!(self, s => s.poll_shutdown(cx))
    }
}

/// An idle connection to the upstream, ready for a request; connections
/// the upstream has closed meanwhile are dropped on the way.
async fn checkout(https: bool, authority: &str) -> Option<Checkout> {
    loop {
        let now = NOW.with(Cell::get);
        let (mut sender, key, host) = POOLS.with_borrow_mut(|p| {
            let h = p.get(https, authority)?;
            loop {
                let (s, at) = h.idle.pop()?;
                if now - at <= IDLE_TICKS && !s.is_closed() {
                    return Some((s, h.key.clone(), h.host.clone()));
                }
            }
        })?;
        // Ready at once, unless its last response ended a moment ago and
        // the connection task has not yet taken note.
        if sender.is_ready() || sender.ready().await.is_ok() {
            return Some(Checkout {
                sender,
                key,
                host,
                reused: true,
            });
        }
    }
}

/// Gives a connection whose response was read to the end back to this
/// thread's pool.
fn release(sender: Sender, key: PoolKey) {
    if sender.is_closed() {
        return;
    }
    let now = NOW.with(Cell::get);
    // A body read on another thread than its connection was made on (not
    // a worker) gives the connection to that thread's pool.
    POOLS.with_borrow_mut(|p| {
        if let Some(h) = p.entry(key.https, &key.authority) {
            if h.idle.len() < MAX_IDLE {
                h.idle.push((sender, now));
            }
        }
    });
}

/// An upstream response body. When it has been read to the end, its
/// connection goes back to the pool; dropped before that, the connection
/// is closed (it still carries the rest of this response).
pub struct UpstreamBody {
    inner: hyper::body::Incoming,
    conn: Option<(Sender, PoolKey)>,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some((sender, key)) = self.conn.take() {
            release(sender, key);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The whole of a response body (a body that came in one piece is handed on
/// as it is, without a copy).
pub async fn collect(body: UpstreamBody, host: &str) -> Result<Bytes, ApiError> {
    match body.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(upstream_error(host, &e, false)),
    }
}

/// A request in origin form, with where it goes.
struct Target {
    req: http::Request<Full<Bytes>>,
    https: bool,
    authority: http::uri::Authority,
}

fn build_request(
    url: &str,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(Target, Arc<str>), ApiError> {
    let Parsed {
        https,
        authority,
        path,
        host,
    } = parsed(url).ok_or_else(|| invalid_url(&host_of(url)))?;
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = Uri::from(path);
    *req.headers_mut() = headers;
    let target = Target {
        req,
        https,
        authority,
    };
    Ok((target, host))
}

/// The URL's parts, from this worker's cache; `None` for a URL that is not
/// an absolute `http` or `https` one.
fn parsed(url: &str) -> Option<Parsed> {
    if let Some(p) = PARSED.with_borrow(|m| m.get(url).cloned()) {
        return Some(p);
    }
    let parts = Uri::try_from(url).ok()?.into_parts();
    let https = match parts.scheme.as_ref().map(http::uri::Scheme::as_str) {
        Some("https") => true,
        Some("http") => false,
        _ => return None,
    };
    let p = Parsed {
        https,
        authority: parts.authority?,
        path: parts
            .path_and_query
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        host: Arc::from(host_of(url)),
    };
    PARSED.with_borrow_mut(|m| {
        if m.len() >= MAX_PARSED {
            m.clear();
        }
        m.insert(url.into(), p.clone());
    });
    Some(p)
}

fn invalid_url(host: &str) -> ApiError {
    ApiError::bad_gateway(format!(
        "The upstream URL for {host} is not a valid URL; check api_base."
    ))
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

fn build_connector(tls: rustls::ClientConfig) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    // Upstream redirects are never followed (nothing here follows them): a
    // provider that redirects a POST is misconfigured, and following could
    // leak the key.
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
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
/// Called for every request, so without `format!` or iterator chains: the
/// common URL, with no user info, has it as a prefix.
pub fn host_of(url: &str) -> String {
    let (scheme_len, rest) = match url.find("://") {
        Some(i) => (i + 3, &url[i + 3..]),
        None => (0, url),
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        None => url[..scheme_len + authority.len()].to_owned(),
        Some(at) => [&url[..scheme_len], &authority[at + 1..]].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// An upstream that answers every request on a connection with `body`
    /// and reports each connection it accepts and each one that ends.
    /// With `close`, it hangs up after each answer (without saying so).
    async fn upstream(
        body: &'static str,
        close: bool,
    ) -> (String, mpsc::UnboundedReceiver<&'static str>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                tx.send("accept").unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            tx.send("closed").unwrap();
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        // Requests here have small bodies: the head's end and
                        // the Content-Length tell where one ends.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            assert!(
                                head.starts_with("post /v1/chat/completions http/1.1"),
                                "{head}"
                            );
                            assert!(head.contains("\r\nhost: 127.0.0.1:"), "{head}");
                            let len: usize = head
                                .split("content-length: ")
                                .nth(1)
                                .and_then(|v| v.split("\r\n").next())
                                .map_or(0, |v| v.parse().unwrap());
                            if buf.len() < end + 4 + len {
                                break;
                            }
                            buf.drain(..end + 4 + len);
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            sock.write_all(answer.as_bytes()).await.unwrap();
                            if close {
                                tx.send("closed").unwrap();
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, rx)
    }

    async fn post(t: &Transport, url: &str) -> UpstreamResponse {
        let req = UpstreamRequest {
            url: url.to_owned(),
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
        };
        t.send(req, Duration::from_secs(5)).await.unwrap().0
    }

    async fn body(t: &Transport, url: &str) -> Bytes {
        collect(post(t, url).await.into_body(), "h").await.unwrap()
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_reused() {
        let t = Transport::new().unwrap();
        let (url, mut events) = upstream("{\"ok\":1}", false).await;
        for _ in 0..3 {
            assert_eq!(body(&t, &url).await, "{\"ok\":1}");
        }
        assert_eq!(events.recv().await, Some("accept"));
        assert!(events.try_recv().is_err(), "three requests, one connection");
    }

    #[tokio::test]
    async fn a_body_dropped_half_read_closes_its_connection() {
        let t = Transport::new().unwrap();
        let (url, mut events) = upstream("{\"ok\":1}", false).await;
        drop(post(&t, &url).await);
        assert_eq!(events.recv().await, Some("accept"));
        assert_eq!(events.recv().await, Some("closed"));
        assert_eq!(body(&t, &url).await, "{\"ok\":1}");
        assert_eq!(events.recv().await, Some("accept"));
    }

    #[tokio::test]
    async fn an_upstream_hanging_up_between_requests_costs_no_request() {
        let t = Transport::new().unwrap();
        let (url, mut events) = upstream("{\"ok\":1}", true).await;
        for _ in 0..5 {
            assert_eq!(body(&t, &url).await, "{\"ok\":1}");
        }
        let accepted = std::iter::from_fn(|| events.try_recv().ok())
            .filter(|e| *e == "accept")
            .count();
        assert_eq!(accepted, 5);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_90_seconds() {
        let t = Transport::new().unwrap();
        let (url, mut events) = upstream("{\"ok\":1}", false).await;
        body(&t, &url).await;
        assert_eq!(events.recv().await, Some("accept"));
        for _ in 0..IDLE_TICKS {
            tick();
        }
        body(&t, &url).await;
        assert!(events.try_recv().is_err(), "still pooled after 90 s");
        for _ in 0..=IDLE_TICKS {
            tick();
        }
        assert_eq!(events.recv().await, Some("closed"));
    }

    #[test]
    fn a_url_is_parsed_once_and_read_the_same_from_the_cache() {
        let url = "https://user:pw@api.example.com:8443/v1/chat/completions?api-version=1";
        for _ in 0..2 {
            let p = parsed(url).unwrap();
            assert!(p.https);
            assert_eq!(p.authority.as_str(), "user:pw@api.example.com:8443");
            assert_eq!(p.path.as_str(), "/v1/chat/completions?api-version=1");
            assert_eq!(&*p.host, "https://api.example.com:8443");
        }
        let p = parsed("http://127.0.0.1:9").unwrap();
        assert!(!p.https);
        assert_eq!(p.path.as_str(), "/");
        for bad in ["ftp://a.example/x", "/v1/chat", "not a url", ""] {
            assert!(parsed(bad).is_none(), "{bad}");
        }
        let err = build_request(
            "ftp://user:secret@a.example/x",
            http::HeaderMap::new(),
            Bytes::new(),
        )
        .err()
        .unwrap();
        assert_eq!(err.status, 502);
        assert!(!err.message.contains("secret"), "{}", err.message);
    }

    #[test]
    fn host_of_drops_path_query_and_userinfo() {
        assert_eq!(
            host_of("https://user:pw@api.example.com:8443/v1/chat?key=x"),
            "https://api.example.com:8443"
        );
        assert_eq!(host_of("http://127.0.0.1:9/v1"), "http://127.0.0.1:9");
        assert_eq!(host_of("http://a.example?x=1"), "http://a.example");
        assert_eq!(host_of("http://u@b.example#f"), "http://b.example");
        assert_eq!(host_of("c.example:80/v1"), "c.example:80");
        assert_eq!(host_of("https://d.example"), "https://d.example");
    }
}
