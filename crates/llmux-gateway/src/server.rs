//! Binding, serving and shutting down.

use crate::banner::banner;
use crate::config::Config;
use crate::routes::{AppState, app};
use crate::transport::Transport;
use axum::serve::ListenerExt;
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
    let state = AppState::new(config, Transport::new(workers)?).map_err(ServeError::Config)?;
    let app = app(Arc::new(state));

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
                let r = run_worker(worker, mine, app, stop);
                let _ = done.send(r);
            })?;
    }
    drop(done_tx);
    print!("{text}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let mut running = workers;
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
            let drain = async {
                while running > 0 && done_rx.recv().await.is_some() {
                    running -= 1;
                }
            };
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, drain).await;
        }
    }
    Ok(())
}

/// One worker: its own current-thread runtime serving every listener until
/// `stop` turns true and its connections have finished.
fn run_worker(
    worker: usize,
    listeners: Vec<std::net::TcpListener>,
    app: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServeError> {
    crate::transport::set_worker(worker);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut servers = tokio::task::JoinSet::new();
        for l in listeners {
            let listener = TcpListener::from_std(l)?;
            let mut stop = stop.clone();
            // Small SSE writes must leave at once, not wait for Nagle.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            // `into_make_service` hands each connection a clone of the router
            // (an `Arc`), where serving the `Router` itself would rebuild its
            // route table per connection (about 10 KB each).
            let server = axum::serve(listener, app.clone().into_make_service())
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
            servers.spawn(server.into_future());
        }
        while let Some(r) = servers.join_next().await {
            if let Ok(Err(e)) = r {
                return Err(e.into());
            }
        }
        Ok(())
    })
}

/// `localhost` means both loopbacks, on the same port, so clients that
/// resolve it to ::1 first connect too; anything else is bound as given.
/// The sockets are non-blocking (tokio's backlog of 1,024), ready for every
/// worker's runtime.
async fn bind(host: &str, port: u16) -> Result<Vec<std::net::TcpListener>, ServeError> {
    async fn one(host: &str, port: u16) -> Result<std::net::TcpListener, ServeError> {
        let l = TcpListener::bind((host, port))
            .await
            .map_err(|source| ServeError::Bind {
                addr: format!("{host}:{port}"),
                source,
            })?;
        Ok(l.into_std()?)
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
