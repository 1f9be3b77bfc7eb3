//! driftwatch: continuous proof that replicated tables have converged, and an exact
//! account of how when they have not.
//!
//! Data flows one way: config → runtime (databases, status) → engines (through
//! database::Database) → compare → status and metrics → http; a script's row changes go
//! compare → diff → script → http or the CLI. `main.rs` is a thin CLI over [`serve`],
//! [`check::check`] and [`diff::write`].

pub mod api;
pub mod check;
pub mod compare;
pub mod config;
pub(crate) mod connections;
pub(crate) mod database;
pub mod demo;
pub(crate) mod dialect;
pub mod diff;
pub mod engine;
pub(crate) mod events;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod page;
pub(crate) mod passes;
pub(crate) mod replication;
pub mod runtime;
pub(crate) mod scheduler;
pub mod script;
pub mod state;
pub mod status;
pub mod table;
pub mod telemetry;
pub mod value;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// Runs the service on `listener` until `shutdown` completes: the validation loops and
/// the HTTP server. Tests pass a listener bound to port 0.
pub async fn serve(
    config: config::Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    let has_token = config.server.api_token.is_some();
    let row_data = addr.ip().is_loopback() || has_token;
    if !row_data {
        tracing::warn!(%addr, "listening beyond loopback without an api token: responses will carry no row keys; set server.api_token_file");
    }
    let mut runtime = runtime::Runtime::new(config)?;
    runtime.open_state()?;
    let runtime = Arc::new(runtime);
    events::register(&runtime.metrics);
    let scripts = Arc::new(tokio::sync::Semaphore::new(
        runtime.config.server.max_concurrent_scripts,
    ));
    let app = Arc::new(http::App {
        runtime: runtime.clone(),
        ready: AtomicBool::new(false),
        row_data,
        scripts,
    });
    let cancel = CancellationToken::new();
    let loops = {
        let (app, cancel) = (app.clone(), cancel.clone());
        tokio::spawn(async move {
            app.runtime.probe().await;
            app.ready.store(true, Ordering::Release);
            app.runtime.clone().run(cancel).await;
        })
    };
    tracing::info!(%addr, "driftwatch listening");
    let server = &app.runtime.config.server;
    let limits = connections::Limits {
        header_read_timeout: server.header_read_timeout,
        max_connections: server.max_connections,
    };
    let stop = cancel.clone();
    connections::serve(listener, http::router(app), limits, async move {
        tokio::select! {
            _ = shutdown => {}
            _ = stop.cancelled() => {}
        }
        stop.cancel();
    })
    .await?;
    cancel.cancel();
    let _ = loops.await;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
