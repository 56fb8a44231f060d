//! Binding, serving and shutting down.

use crate::banner::banner;
use crate::config::Config;
use crate::routes::{AppState, Gateway};
use crate::transport::Transport;
use futures_util::FutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
/// The calling runtime only waits for signals.
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
    let state = AppState::new(config, Transport::new()?).map_err(ServeError::Config)?;
    let app = Gateway::new(Arc::new(state));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), ServeError>>();
    for worker in 0..workers {
        let mut mine = Vec::with_capacity(listeners.len());
        for l in &listeners {
            mine.push(l.try_clone()?);
        }
        let app = app.clone();
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("llmux-worker-{worker}"))
            .spawn(move || {
                let r = run_worker(mine, app, stop);
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
        }
    }
    Ok(())
}

/// One worker: its own current-thread runtime serving every listener until
/// `stop` turns true and its connections have finished.
fn run_worker(
    listeners: Vec<std::net::TcpListener>,
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
        let mut servers = tokio::task::JoinSet::new();
        for l in listeners {
            let listener = TcpListener::from_std(l)?;
            servers.spawn(accept_loop(listener, app.clone(), stop.clone()));
        }
        let mut result = Ok(());
        while let Some(r) = servers.join_next().await {
            if let Ok(Err(e)) = r {
                result = Err(e.into());
                break;
            }
        }
        heartbeat.abort();
        result
    })
}

/// How long a client may take to send a request head before the connection
/// is closed (a connection that never finishes its head holds memory).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections and serves each with HTTP/1.1 on this worker until
/// `stop`; then lets the open ones finish their current request.
///
/// hyper's HTTP/1 connection is used directly rather than through a
/// protocol-sniffing server: sniffing reads the first bytes into a side
/// buffer and makes hyper grow its read buffer to 16 KB on every
/// connection. Clients of an OpenAI-style API speak HTTP/1.1 (as they do to
/// LiteLLM).
async fn accept_loop(
    listener: TcpListener,
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
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        // Small SSE writes must leave at once, not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), app.clone());
        let conn = graceful.watch(conn);
        // `map`, not `async move { conn.await }`: an async block keeps the
        // moved-in connection and the one it awaits side by side, which
        // made every connection's task twice its size (1.6 KB, not 0.8).
        tokio::spawn(conn.map(|r| {
            if let Err(e) = r {
                tracing::debug!("connection ended with an error: {e}");
            }
        }));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
