//! `keygate serve`: start-up, background flushing, graceful shutdown.

use crate::state::AppState;
use keygate::store::Store;
use leptos::config::{Env, LeptosOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

/// How often pending last-use records are written.
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Where the compiled site (wasm, JS, CSS) lives: `LEPTOS_SITE_ROOT` when
/// cargo-leptos set it; else `target/site` under the working directory; else
/// `../site` beside the binary (`target/release/keygate` → `target/site`).
pub fn site_root() -> String {
    if let Ok(root) = std::env::var("LEPTOS_SITE_ROOT") {
        return root;
    }
    let cwd = PathBuf::from("target/site");
    if cwd.join("pkg").is_dir() {
        return cwd.display().to_string();
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(|d| d.parent()).map(|d| d.join("site")))
        .filter(|d| d.join("pkg").is_dir())
    {
        return beside.display().to_string();
    }
    cwd.display().to_string()
}

pub fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(std::env::var("LEPTOS_OUTPUT_NAME").unwrap_or_else(|_| "keygate".into()))
        .site_root(site_root())
        .site_pkg_dir(std::env::var("LEPTOS_SITE_PKG_DIR").unwrap_or_else(|_| "pkg".into()))
        .site_addr(addr)
        .env(Env::PROD)
        .build()
}

pub struct ServeConfig {
    pub addr: SocketAddr,
    pub public_url: Option<String>,
    /// Expired or revoked tokens are deleted this long after they died.
    pub token_retention_days: i64,
    /// Audit events are deleted after this long.
    pub audit_retention_days: i64,
}

/// The flush interval: `KEYGATE_USAGE_FLUSH_SECONDS` (tests raise it to
/// prove the shutdown flush), else [`USAGE_FLUSH_INTERVAL`].
fn flush_interval() -> Duration {
    std::env::var("KEYGATE_USAGE_FLUSH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(USAGE_FLUSH_INTERVAL)
}

pub async fn run(store: Store, config: ServeConfig) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    store.migrate().await?;
    let listener = TcpListener::bind(config.addr).await?;
    let local = listener.local_addr()?;
    let issuer = config.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let state = AppState::new(leptos_options(local), store.clone(), &issuer);

    if store.admin_count().await? == 0 {
        let code = keygate::secret::generate_setup_code();
        if let Ok(mut slot) = state.console.setup_code.lock() {
            *slot = Some(code.clone());
        }
        // Printed, not logged: it is a one-time credential for the operator.
        println!("No administrator exists yet. Create the owner account with this one-time link:");
        println!("  {}/setup?code={code}", state.issuer);
    }

    let router = crate::build_router(state.clone()).await?;
    let flush_state = state.clone();
    let flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(flush_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            flush_state.flush().await;
            flush_state.rate.prune(crate::oauth::now_ms());
        }
    });
    let prune_state = state.clone();
    let (token_retention, audit_retention) =
        (config.token_retention_days * 86_400, config.audit_retention_days * 86_400);
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match prune_state.store.prune(crate::now(), token_retention, audit_retention).await {
                Ok((tokens, events)) if tokens + events > 0 => {
                    tracing::info!(tokens, audit_events = events, "pruned past retention")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pruning failed"),
            }
        }
    });

    tracing::info!(
        addr = %local,
        issuer = %state.issuer,
        startup_ms = started.elapsed().as_millis() as u64,
        "keygate listening"
    );
    println!("Keygate listening on http://{local}");
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    flusher.abort();
    pruner.abort();
    let pending = state.usage.pending_count();
    state.flush().await;
    tracing::info!(last_used_records = pending, "pending writes flushed at shutdown");
    store.close().await;
    tracing::info!("keygate stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
