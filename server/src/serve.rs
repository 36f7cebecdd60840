//! `keygate serve`: start-up, background flushing, graceful shutdown.

use crate::state::AppState;
use keygate::store::Store;
use leptos::config::{Env, LeptosOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

/// Connections the metrics listener serves at once.
const METRICS_MAX_CONNECTIONS: usize = 16;

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

/// The site's options. The output name carries the assets' fingerprint
/// (`keygate.<fp>`), so pages name this build's files (see `assets`).
pub fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    let base = std::env::var("LEPTOS_OUTPUT_NAME").unwrap_or_else(|_| "keygate".into());
    let root = site_root();
    let pkg = std::env::var("LEPTOS_SITE_PKG_DIR").unwrap_or_else(|_| "pkg".into());
    let fingerprint = crate::assets::fingerprint(&PathBuf::from(&root).join(&pkg), &base);
    LeptosOptions::builder()
        .output_name(format!("{base}.{fingerprint}"))
        .site_root(root)
        .site_pkg_dir(pkg)
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
    /// Peers whose `X-Forwarded-For` is believed; empty means loopback.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Days between automatic signing-key rotations.
    pub key_rotation_days: i64,
    /// Days without a use after which an application is dormant.
    pub dormant_after_days: i64,
    /// The key-encryption key's file (`--key-file`).
    pub key_file: std::path::PathBuf,
    /// Where to serve Prometheus metrics (`--metrics-addr`), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
}

/// A positive whole number from the environment, if `name` holds one.
fn env_positive(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).filter(|v| *v > 0)
}

/// The flush interval: `KEYGATE_USAGE_FLUSH_SECONDS` (tests raise it to
/// prove the shutdown flush), else [`USAGE_FLUSH_INTERVAL`].
fn flush_interval() -> Duration {
    env_positive("KEYGATE_USAGE_FLUSH_SECONDS").map(Duration::from_secs).unwrap_or(USAGE_FLUSH_INTERVAL)
}

pub async fn run(store: Store, config: ServeConfig) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    // Raises the open-file limit before anything else opens files.
    let limits = ConnectionLimits::from_env();
    store.migrate().await?;
    let kek = keygate::usecase::keys::open_key_file(&store, &config.key_file, crate::now()).await?;
    store.watch_client_changes();
    let listener = TcpListener::bind(config.addr).await?;
    let local = listener.local_addr()?;
    let issuer = config.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let settings = crate::state::ServeSettings {
        public_url_configured: config.public_url.is_some(),
        dormant_after_days: config.dormant_after_days,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let state = AppState::with_settings(leptos_options(local), store.clone(), &issuer, kek.clone(), settings).await?;

    if let Some(code) = keygate::usecase::admins::open_setup(&store, crate::now()).await? {
        // Printed, not logged: it is a one-time credential for the operator.
        // Any instance on this database accepts it.
        println!("No administrator exists yet. Create the owner account with this one-time link:");
        println!("  {}/setup?code={code}", state.issuer);
    }

    let router = crate::build_router(state.clone()).await?;
    let metrics_server = match config.metrics_addr {
        Some(addr) => {
            let handle = crate::metrics::install()?;
            let listener = TcpListener::bind(addr).await?;
            let metrics_local = listener.local_addr()?;
            tracing::info!(addr = %metrics_local, "serving metrics at /metrics");
            println!("Metrics on http://{metrics_local}/metrics");
            let app = crate::metrics::router(state.clone(), handle);
            // The public listener's timeouts, and a few connections: a
            // scraper needs one, and a client holding many cannot take the
            // process's file descriptors from the public listener.
            let metrics_limits = ConnectionLimits { max_connections: METRICS_MAX_CONNECTIONS, ..limits };
            Some(tokio::spawn(serve_connections(listener, app, metrics_limits, std::future::pending())))
        }
        None => None,
    };
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
    let rotation_period = config.key_rotation_days.max(1) * 86_400;
    let sender = crate::webhook_sender::spawn(store.clone(), kek.clone())?;
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            // Once per cluster: an instance that finds another pruning skips it.
            let store = &prune_state.store;
            let job = store.prune(crate::now(), token_retention, audit_retention);
            match store.exclusively(keygate::store::JOB_PRUNE, job).await {
                Ok(Some((tokens, events))) if tokens + events > 0 => {
                    tracing::info!(tokens, audit_events = events, "pruned past retention")
                }
                Ok(Some(_)) => {}
                Ok(None) => tracing::debug!("another instance is pruning"),
                Err(e) => tracing::error!(error = %e, "pruning failed"),
            }
            match keygate::usecase::keys::rotate_if_due(store, &kek, rotation_period, crate::now()).await {
                Ok(Some(key)) => tracing::info!(kid = %key.kid, signs_from = key.signs_from, "signing key rotated"),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "signing key rotation failed"),
            }
        }
    });

    // Expired tokens come off their applications' live counts a minute
    // after they expire (readers subtract the newer ones), once per cluster.
    let sweep_store = store.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let job = sweep_store.sweep_expired_tokens(crate::now());
            match sweep_store.exclusively(keygate::store::JOB_SWEEP, job).await {
                Ok(Some(swept)) if swept > 0 => tracing::debug!(swept, "expired tokens swept from live counts"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "sweeping expired tokens failed"),
            }
        }
    });

    let alert_store = store.clone();
    let dormant_after_days = config.dormant_after_days;
    let alerts = tokio::spawn(async move {
        // First a minute after start: start-up stays quick and light.
        let period = Duration::from_secs(60);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = crate::now();
            match keygate::usecase::alerts::fire_due_alerts(&alert_store, now, dormant_after_days).await {
                Ok(0) => {}
                Ok(fired) => tracing::info!(fired, "lifecycle alerts fired"),
                Err(e) => tracing::error!(error = %e, "lifecycle alerts failed"),
            }
            match alert_store.roll_up_activity(now).await {
                Ok(0) => {}
                Ok(moved) => tracing::info!(minutes = moved, "activity rolled up into hours"),
                Err(e) => tracing::error!(error = %e, "activity roll-up failed"),
            }
            // Finished deliveries stay in the log for 30 days.
            if let Err(e) = alert_store.prune_deliveries(now - 30 * 86_400).await {
                tracing::error!(error = %e, "pruning webhook deliveries failed");
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
    serve_connections(listener, router, limits, shutdown_signal()).await;

    // Waits out a flush in progress (its batch is written), then stops
    // the task where it waits, before the last flush below.
    let flushing = state.flushing.lock().await;
    flusher.abort();
    drop(flushing);
    pruner.abort();
    alerts.abort();
    sweeper.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    // A delivery in flight keeps its claim and is sent again after it
    // lapses (receivers de-duplicate by webhook-id).
    sender.abort();
    let pending = state.usage.pending_count();
    state.flush().await;
    tracing::info!(last_used_records = pending, "pending writes flushed at shutdown");
    store.close().await;
    tracing::info!("keygate stopped");
    Ok(())
}

/// What bounds each connection and their number.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this once they have begun.
    pub header_read_timeout: Duration,
    /// A connection with no byte in either direction for this long is
    /// closed: idle keep-alive connections, and ones that never send.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
}

pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl ConnectionLimits {
    /// The defaults, or `KEYGATE_HEADER_READ_TIMEOUT_SECONDS`,
    /// `KEYGATE_IDLE_TIMEOUT_SECONDS` and `KEYGATE_MAX_CONNECTIONS`. Raises the soft open-file limit to the hard
    /// one first, so the default cap (leaving room for the database and
    /// logs) is as high as the system allows.
    pub fn from_env() -> Self {
        let files = raise_open_file_limit();
        let default_cap = files.saturating_sub(128).clamp(64, 10_000) as usize;
        ConnectionLimits {
            header_read_timeout: body_read_timeout(),
            idle_timeout: env_positive("KEYGATE_IDLE_TIMEOUT_SECONDS")
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
            max_connections: env_positive("KEYGATE_MAX_CONNECTIONS").map(|n| n as usize).unwrap_or(default_cap),
        }
    }
}

/// How long a request's body may take to arrive, counted from the start of
/// the request: the header-read timeout (`KEYGATE_HEADER_READ_TIMEOUT_SECONDS`).
pub fn body_read_timeout() -> Duration {
    env_positive("KEYGATE_HEADER_READ_TIMEOUT_SECONDS").map(Duration::from_secs).unwrap_or(DEFAULT_HEADER_READ_TIMEOUT)
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(1024)
        }
    }
}

/// Accepts and serves connections until `shutdown`, then lets requests in
/// flight finish (up to 30 s). Unlike `axum::serve`, every connection has a
/// header-read deadline (slowloris) and an idle deadline, and their number
/// is capped, so idle sockets cannot exhaust descriptors.
pub async fn serve_connections(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        "connection limits"
    );
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = tower::ServiceExt::map_request(router.clone(), move |mut req: axum::http::Request<_>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(crate::idle_io::IdleTimeoutIo::new(
                    stream,
                    limits.header_read_timeout,
                    limits.idle_timeout,
                )),
                service,
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are clients going away or timing out.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still busy 30 s after shutdown began");
    }
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
