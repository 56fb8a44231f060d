//! Binding, serving and shutting down.

use crate::banner::banner;
use crate::config::Config;
use crate::routes::{AppState, Gateway};
use crate::transport::Transport;
use futures_util::FutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long open streams get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] crate::transport::TransportError),
    #[error("{0}")]
    Config(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the gateway until SIGINT/SIGTERM: one single-threaded runtime per
/// worker thread (`workers`, normally one per core), each accepting on the
/// same listening sockets and serving its connections start to finish.
///
/// A request and the upstream connection it uses live on the same thread,
/// so handing a response from one to the other is a local wake-up, not a
/// cross-thread one; each worker keeps its own upstream connection pool.
/// New connections are spread over the workers ([`Balance`]). The calling
/// runtime only waits for signals.
pub async fn serve(
    config: Config,
    host: &str,
    port: u16,
    workers: usize,
) -> Result<(), ServeError> {
    let listeners = bind(host, port).await?;
    let addr: SocketAddr = listeners[0].local_addr()?;
    let text = banner(&config, addr);
    let workers = workers.max(1);
    let database_url = config.database_url.clone();
    let master_key = config.master_key.clone();
    let key_sync = config.key_sync;
    let redis = config.redis.clone();
    let mut state = AppState::new(config, Transport::new()?).map_err(ServeError::Config)?;
    // The spend writer runs on this runtime, beside the signal handler.
    let keys = match (database_url, master_key) {
        (Some(url), Some(master)) => Some(
            crate::keys::Keys::open(url.expose(), &master)
                .await
                .map_err(|e| ServeError::Config(format!("general_settings.database_url: {e}")))?,
        ),
        _ => None,
    };
    if let Some(k) = &keys {
        tracing::info!(
            keys = k.count(),
            database = k.store().backend().name(),
            "virtual keys loaded"
        );
        k.sync_every(key_sync);
        if let Some(r) = &redis {
            let shared = k
                .share_limits(r)
                .map_err(|e| ServeError::Config(format!("{}: {e}", r.from)))?;
            // Not fatal: limits are counted here until Redis answers.
            match shared.ping(std::time::Duration::from_secs(2)).await {
                Ok(()) => tracing::info!(redis = %shared.place, "rate limits are counted in Redis"),
                Err(e) => tracing::warn!(
                    redis = %shared.place,
                    "Redis did not answer ({e}); rate limits are counted per process until it does"
                ),
            }
        }
    }
    state.keys = keys.clone();
    let state = Arc::new(state);
    if let Some(r) = &redis {
        // Deployments' counts and cooldowns, with or without keys.
        crate::router_sync::start(Arc::downgrade(&state), r)
            .map_err(|e| ServeError::Config(format!("{}: {e}", r.from)))?;
    }
    let app = Gateway::new(state);
    let (balance, inboxes) = Balance::new(workers);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), ServeError>>();
    for (worker, inbox) in inboxes.into_iter().enumerate() {
        let mut mine = Vec::with_capacity(listeners.len());
        for l in &listeners {
            mine.push(l.try_clone()?);
        }
        let app = app.clone();
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        let balance = balance.clone();
        std::thread::Builder::new()
            .name(format!("llmux-worker-{worker}"))
            .spawn(move || {
                let r = run_worker(worker, mine, inbox, balance, app, stop);
                let _ = done.send(r);
            })?;
    }
    drop(done_tx);
    // The workers hold the sockets now; once they let go at shutdown, new
    // connections are refused rather than left waiting in the backlog.
    drop(listeners);
    print!("{text}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    tokio::select! {
        r = done_rx.recv() => {
            // A worker stopping on its own is a failure: stop the others.
            let _ = stop_tx.send(true);
            if let Some(Err(e)) = r {
                return Err(e);
            }
            return Err(ServeError::Config("a worker thread stopped unexpectedly".into()));
        }
        _ = shutdown_signal() => {
            tracing::info!("shutting down; open streams get {}s to finish", SHUTDOWN_GRACE.as_secs());
            let _ = stop_tx.send(true);
            // Every worker holds a sender: the channel ends when all are done.
            let drain = async { while done_rx.recv().await.is_some() {} };
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, drain).await;
            if let Some(k) = &keys {
                k.flush(Duration::from_secs(5)).await;
            }
        }
    }
    Ok(())
}

/// One worker: its own current-thread runtime serving the connections it
/// accepts on every listener, and those other workers hand it, until `stop`
/// turns true and its connections have finished.
fn run_worker(
    me: usize,
    listeners: Vec<std::net::TcpListener>,
    inbox: Inbox,
    balance: Arc<Balance>,
    app: Gateway,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // tokio wakes its I/O driver (an eventfd write, then a spurious
        // epoll return) whenever a timer is registered that expires before
        // every timer already set, which with an empty timer wheel is every
        // request's first timeout. A timer that never lies more than a
        // second ahead keeps request timeouts (30 s and more) from ever
        // being the earliest: two system calls saved per request, for one
        // wake-up a second. The same tick closes this worker's upstream
        // connections that have been idle too long.
        let heartbeat = tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                crate::transport::tick();
            }
        });
        let mut tokio_listeners = Vec::with_capacity(listeners.len());
        for l in listeners {
            tokio_listeners.push(TcpListener::from_std(l)?);
        }
        let result = accept_loop(me, tokio_listeners, inbox, &balance, app, stop).await;
        heartbeat.abort();
        result.map_err(ServeError::from)
    })
}

/// A connection handed from the worker that accepted it to the one that
/// serves it, counted as that one's already.
type Handoff = (std::net::TcpStream, Open);
type Inbox = tokio::sync::mpsc::UnboundedReceiver<Handoff>;

/// Spreads connections over the workers. Every worker accepts on the
/// shared listening sockets, and whichever is awake first takes what is
/// waiting there: a burst of new connections (a load balancer's or a
/// client pool's, opened at once) can land on one worker and leave the
/// others idle, for as long as the connections stay open. So the worker
/// that accepts a connection serves it only if no other worker has fewer
/// open; else it hands the connection to the one with fewest. Connections
/// opened together are so spread evenly: open connections differ by at
/// most one between workers, until some close. A connection stays on its
/// worker for its life, with its upstream connections.
struct Balance {
    open: Box<[AtomicUsize]>,
    inboxes: Box<[tokio::sync::mpsc::UnboundedSender<Handoff>]>,
}

/// One open connection, counted on its worker until dropped.
struct Open {
    balance: Arc<Balance>,
    worker: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.balance.open[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balance {
    /// A balance over `workers`, and each worker's inbox.
    fn new(workers: usize) -> (Arc<Self>, Vec<Inbox>) {
        let (senders, inboxes) = (0..workers.max(1))
            .map(|_| tokio::sync::mpsc::unbounded_channel())
            .unzip::<_, _, Vec<_>, Vec<_>>();
        let balance = Balance {
            open: (0..senders.len()).map(|_| AtomicUsize::new(0)).collect(),
            inboxes: senders.into_boxed_slice(),
        };
        (Arc::new(balance), inboxes)
    }

    /// Where a connection accepted by worker `me` is to be served: `me`,
    /// unless another worker has fewer open connections (the first such
    /// with the fewest). It is counted there at once.
    fn place(self: &Arc<Self>, me: usize) -> Open {
        let mut worker = me;
        let mut fewest = self.open[me].load(Ordering::Relaxed);
        for (i, open) in self.open.iter().enumerate() {
            let n = open.load(Ordering::Relaxed);
            if n < fewest {
                worker = i;
                fewest = n;
            }
        }
        self.claim(worker)
    }

    /// A connection counted on `worker`.
    fn claim(self: &Arc<Self>, worker: usize) -> Open {
        self.open[worker].fetch_add(1, Ordering::Relaxed);
        Open {
            balance: self.clone(),
            worker,
        }
    }

    /// Open connections per worker.
    #[cfg(test)]
    fn open(&self) -> Vec<usize> {
        self.open
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

/// How long a client may take to send a request head before the connection
/// is closed (a connection that never finishes its head holds memory).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections and takes those other workers hand over, and
/// serves each with HTTP/1.1 on this worker until `stop`; then lets the
/// open ones finish their current request.
///
/// hyper's HTTP/1 connection is used directly rather than through a
/// protocol-sniffing server: sniffing reads the first bytes into a side
/// buffer and makes hyper grow its read buffer to 16 KB on every
/// connection. Clients of an OpenAI-style API speak HTTP/1.1 (as they do to
/// LiteLLM).
async fn accept_loop(
    me: usize,
    listeners: Vec<TcpListener>,
    mut inbox: Inbox,
    balance: &Arc<Balance>,
    app: Gateway,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stopped = std::pin::pin!(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    let mut first = 0;
    loop {
        let (tcp, open) = tokio::select! {
            r = std::future::poll_fn(|cx| poll_accept(&listeners, &mut first, cx)) => match r {
                Ok(tcp) => {
                    // Small SSE writes must leave at once, not wait for Nagle.
                    let _ = tcp.set_nodelay(true);
                    let open = balance.place(me);
                    if open.worker == me {
                        (tcp, open)
                    } else {
                        match hand_over(balance, me, tcp, open) {
                            Some(kept) => kept,
                            None => continue,
                        }
                    }
                }
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            Some((tcp, open)) = inbox.recv() => match TcpStream::from_std(tcp) {
                Ok(tcp) => (tcp, open),
                Err(e) => {
                    tracing::debug!("cannot take over a connection: {e}");
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), app.clone());
        let conn = graceful.watch(conn);
        // `map`, not `async move { conn.await }`: an async block keeps the
        // moved-in connection and the one it awaits side by side, which
        // made every connection's task twice its size (1.6 KB, not 0.8).
        // The connection is counted on this worker until its task ends.
        tokio::spawn(conn.map(move |r| {
            drop(open);
            if let Err(e) = r {
                tracing::debug!("connection ended with an error: {e}");
            }
        }));
    }
    // Connections handed over but not yet taken close with the inbox.
    drop(listeners);
    drop(inbox);
    graceful.shutdown().await;
    Ok(())
}

/// The next connection waiting on any of `listeners`, trying them in turn
/// from `first` so that none waits behind a busy one.
fn poll_accept(
    listeners: &[TcpListener],
    first: &mut usize,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<TcpStream>> {
    let n = listeners.len();
    for k in 0..n {
        let i = (*first + k) % n;
        if let std::task::Poll::Ready(r) = listeners[i].poll_accept(cx) {
            *first = (i + 1) % n;
            return std::task::Poll::Ready(r.map(|(tcp, _)| tcp));
        }
    }
    std::task::Poll::Pending
}

/// Sends a connection `me` accepted to the worker `open` counts it on:
/// `None` once sent (or if the socket could not leave this worker's
/// runtime, which closes it). If that worker no longer takes connections
/// (it is stopping), `me` keeps the connection and it is returned.
fn hand_over(
    balance: &Arc<Balance>,
    me: usize,
    tcp: TcpStream,
    open: Open,
) -> Option<(TcpStream, Open)> {
    let tcp = match tcp.into_std() {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::debug!("cannot hand a connection over: {e}");
            return None;
        }
    };
    let (tcp, open) = match balance.inboxes[open.worker].send((tcp, open)) {
        Ok(()) => return None,
        Err(tokio::sync::mpsc::error::SendError(back)) => back,
    };
    drop(open);
    let open = balance.claim(me);
    match TcpStream::from_std(tcp) {
        Ok(tcp) => Some((tcp, open)),
        Err(e) => {
            tracing::debug!("cannot take a connection back: {e}");
            None
        }
    }
}

/// An accept that failed: per-connection errors are skipped; running out of
/// descriptors or memory pauses accepting briefly instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::warn!("accept failed: {e}; pausing for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// `localhost` means both loopbacks, on the same port, so clients that
/// resolve it to ::1 first connect too; anything else is bound as given.
/// The sockets are non-blocking, ready for every worker's runtime, with a
/// backlog of 1,024 so a burst of new connections is not dropped.
async fn bind(host: &str, port: u16) -> Result<Vec<std::net::TcpListener>, ServeError> {
    async fn one(host: &str, port: u16) -> Result<std::net::TcpListener, ServeError> {
        let err = |source| ServeError::Bind {
            addr: format!("{host}:{port}"),
            source,
        };
        let mut last = None;
        for addr in tokio::net::lookup_host((host, port)).await.map_err(err)? {
            let socket = match addr {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            };
            let listener = socket.and_then(|s| {
                s.set_reuseaddr(true)?;
                s.bind(addr)?;
                s.listen(1024)
            });
            match listener {
                Ok(l) => return Ok(l.into_std()?),
                Err(e) => last = Some(e),
            }
        }
        Err(err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address to listen on")
        })))
    }
    if host != "localhost" {
        return Ok(vec![one(host, port).await?]);
    }
    let v4 = one("127.0.0.1", port).await?;
    let port = v4.local_addr()?.port();
    let mut listeners = vec![v4];
    // No IPv6 on this machine is fine: 127.0.0.1 serves.
    if let Ok(v6) = one("::1", port).await {
        listeners.push(v6);
    }
    Ok(listeners)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A worker that accepts everything alone (the others asleep) still
    /// spreads the connections, and a closed connection makes room where
    /// it was.
    #[test]
    fn connections_go_to_the_worker_with_fewest_open() {
        let (balance, _inboxes) = Balance::new(3);
        let mut held: Vec<Open> = (0..30).map(|_| balance.place(0)).collect();
        assert_eq!(balance.open(), [10, 10, 10]);
        // The accepting worker keeps a connection when none has fewer.
        held.push(balance.place(2));
        assert_eq!(balance.open(), [10, 10, 11]);
        held.retain(|o| o.worker != 1);
        assert_eq!(balance.open(), [10, 0, 11]);
        let more: Vec<Open> = (0..10).map(|_| balance.place(2)).collect();
        assert!(more.iter().all(|o| o.worker == 1));
        drop((held, more));
        assert_eq!(balance.open(), [0, 0, 0]);
    }

    /// One 200 answer read off a keep-alive connection.
    fn read_answer(tcp: &mut std::net::TcpStream) -> String {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(tcp.read(&mut byte).unwrap(), 1, "the connection closed");
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        tcp.read_exact(&mut body).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        String::from_utf8(body).unwrap()
    }

    /// 64 connections opened at once, as wrk or a client's pool opens
    /// them, are served half by each of two workers, whichever accepted
    /// them; the ones handed over are served like the others.
    #[test]
    fn connections_opened_at_once_are_spread_over_the_workers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listeners = rt.block_on(bind("127.0.0.1", 0)).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let path = std::env::temp_dir().join(format!("llmux-server-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-x}\n",
        )
        .unwrap();
        let config = crate::config::load_file(
            &path,
            &llmux_core::Catalog::builtin().unwrap(),
            &crate::Env::fixed(&[]),
        );
        std::fs::remove_file(&path).unwrap();
        let state = AppState::new(config.unwrap(), Transport::new().unwrap()).unwrap();
        let app = Gateway::new(Arc::new(state));
        let (balance, inboxes) = Balance::new(2);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let workers: Vec<_> = inboxes
            .into_iter()
            .enumerate()
            .map(|(i, inbox)| {
                let mine = listeners.iter().map(|l| l.try_clone().unwrap()).collect();
                let (balance, app, stop) = (balance.clone(), app.clone(), stop_rx.clone());
                std::thread::spawn(move || run_worker(i, mine, inbox, balance, app, stop))
            })
            .collect();
        drop(listeners);

        let mut conns: Vec<std::net::TcpStream> = (0..64)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        for tcp in &mut conns {
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            tcp.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
        }
        for tcp in &mut conns {
            assert_eq!(read_answer(tcp), "\"I'm alive!\"");
        }
        let open = balance.open();
        assert_eq!(open.iter().sum::<usize>(), 64, "{open:?}");
        assert!(open[0].abs_diff(open[1]) <= 1, "open per worker: {open:?}");
        // Each connection still serves its next request where it is.
        for tcp in &mut conns {
            tcp.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            assert_eq!(read_answer(tcp), "\"I'm alive!\"");
        }

        drop(conns);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while balance.open() != [0, 0] {
            assert!(
                std::time::Instant::now() < deadline,
                "closed connections still counted: {:?}",
                balance.open()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        stop_tx.send(true).unwrap();
        for w in workers {
            w.join().unwrap().unwrap();
        }
    }
}
