//! Binding, serving and shutting down.

use crate::banner::banner;
use crate::config::Config;
use crate::routes::{app, AppState};
use crate::transport::Transport;
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
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn serve(config: Config, host: &str, port: u16) -> Result<(), ServeError> {
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|source| ServeError::Bind {
            addr: format!("{host}:{port}"),
            source,
        })?;
    let addr: SocketAddr = listener.local_addr()?;
    let text = banner(&config, addr);
    let state = Arc::new(AppState::new(config, Transport::new()?));
    print!("{text}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down; open streams get {}s to finish", SHUTDOWN_GRACE.as_secs());
        let _ = tx.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        r = &mut server => r?,
        _ = async { let _ = rx.await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {}
    }
    Ok(())
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
