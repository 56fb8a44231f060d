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
    Client(#[from] reqwest::Error),
    #[error("{0}")]
    Config(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn serve(config: Config, host: &str, port: u16) -> Result<(), ServeError> {
    let listeners = bind(host, port).await?;
    let addr: SocketAddr = listeners[0].local_addr()?;
    let text = banner(&config, addr);
    let state = AppState::new(config, Transport::new()?).map_err(ServeError::Config)?;
    let app = app(Arc::new(state));
    print!("{text}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let mut stop = stop_rx.clone();
        // Small SSE writes must leave at once, not wait for Nagle.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, app.clone()).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        servers.spawn(server.into_future());
    }
    tokio::select! {
        r = servers.join_next() => {
            if let Some(Ok(Err(e))) = r {
                return Err(e.into());
            }
        }
        _ = shutdown_signal() => {
            tracing::info!("shutting down; open streams get {}s to finish", SHUTDOWN_GRACE.as_secs());
            let _ = stop_tx.send(true);
            let drain = async { while servers.join_next().await.is_some() {} };
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, drain).await;
        }
    }
    Ok(())
}

/// `localhost` means both loopbacks, on the same port, so clients that
/// resolve it to ::1 first connect too; anything else is bound as given.
async fn bind(host: &str, port: u16) -> Result<Vec<TcpListener>, ServeError> {
    let bind_err = |addr: String| move |source| ServeError::Bind { addr, source };
    if host != "localhost" {
        let l = TcpListener::bind((host, port))
            .await
            .map_err(bind_err(format!("{host}:{port}")))?;
        return Ok(vec![l]);
    }
    let v4 = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(bind_err(format!("127.0.0.1:{port}")))?;
    let port = v4.local_addr()?.port();
    let mut listeners = vec![v4];
    // No IPv6 on this machine is fine: 127.0.0.1 serves.
    if let Ok(v6) = TcpListener::bind(("::1", port)).await {
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
