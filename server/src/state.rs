//! Shared state handed to every handler.

use app::server::ConsoleContext;
use axum::extract::FromRef;
use keygate::audit_dedup::AuditDeduper;
use keygate::ratelimit::RateLimiter;
use keygate::store::Store;
use keygate::usage::UsageTracker;
use keygate::ApplicationId;
use leptos::config::LeptosOptions;
use std::sync::Arc;

/// Shared state handed to every handler: one reference-counted value, so
/// each of the many clones a request makes (every extractor and layer
/// takes one) is one atomic increment, not one per field (measured: a
/// sixth of a console page's CPU time went to cloning and dropping them).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;
    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// How `keygate serve` was configured, where it differs from the defaults
/// tests run with.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Whether `--public-url` was given.
    pub public_url_configured: bool,
    pub dormant_after_days: i64,
    /// `--trusted-proxy`; empty means loopback only.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            public_url_configured: false,
            dormant_after_days: keygate::DEFAULT_DORMANT_AFTER_DAYS,
            trusted_proxies: Vec::new(),
        }
    }
}

pub struct SharedState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub usage: Arc<UsageTracker>,
    /// Per-application activity per minute, for the charts.
    pub activity: Arc<keygate::activity::ActivityCounter>,
    /// Held by a flush: shutdown waits for one in progress before its own,
    /// so nothing taken from memory is dropped half-written.
    pub flushing: Arc<tokio::sync::Mutex<()>>,
    /// The issuer URL (RFC 8414), without a trailing slash.
    pub issuer: String,
    pub console: ConsoleContext,
    /// Per-application request counters (token endpoint, API, introspection).
    pub rate: Arc<RateLimiter<ApplicationId>>,
    /// Folds repeated refusals into one audit event per minute.
    pub audit_dedup: Arc<AuditDeduper>,
    /// Signs the outcome a form post hands to the next page (a cookie).
    pub form_outcomes: crate::console_guard::FormOutcomeSigner,
    /// Whether `--public-url` was given: then only its origin may post to
    /// the console (see `console_guard::csrf_refusal`).
    pub public_url_configured: bool,
    /// Signs JWT access tokens.
    pub keyring: Arc<keygate::keyring::Keyring>,
    /// Peers whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl AppState {
    /// The state of a server on `store`, with the keys every instance on
    /// its database shares.
    /// Makes the first JWT signing key when the database has none.
    pub async fn new(
        leptos_options: LeptosOptions,
        store: Store,
        issuer: &str,
        kek: keygate::jwt::KeyEncryptionKey,
    ) -> Result<Self, keygate::CoreError> {
        Self::with_settings(leptos_options, store, issuer, kek, ServeSettings::default()).await
    }

    /// `new`, configured as `keygate serve` was.
    pub async fn with_settings(
        leptos_options: LeptosOptions,
        store: Store,
        issuer: &str,
        kek: keygate::jwt::KeyEncryptionKey,
        settings: ServeSettings,
    ) -> Result<Self, keygate::CoreError> {
        let console = ConsoleContext::new(app::server::ConsoleShared {
            store: store.clone(),
            password_work: keygate::password_work::PasswordWork::for_this_machine(),
            kek: kek.clone(),
            dormant_after_days: settings.dormant_after_days,
            public_url: issuer.trim_end_matches('/').to_owned(),
            public_url_configured: settings.public_url_configured,
        });
        let form_outcomes = crate::console_guard::FormOutcomeSigner::shared(&store, &kek).await?;
        keygate::usecase::keys::ensure_signing_key(&store, &kek, crate::now()).await?;
        let issuer = issuer.trim_end_matches('/').to_owned();
        let keyring = Arc::new(keygate::keyring::Keyring::new(store.clone(), kek, issuer.clone()));
        let trusted_proxies = if settings.trusted_proxies.is_empty() {
            crate::forward_auth::loopback()
        } else {
            settings.trusted_proxies
        };
        Ok(AppState(Arc::new(SharedState {
            leptos_options,
            store,
            usage: Arc::new(UsageTracker::new()),
            activity: Arc::new(keygate::activity::ActivityCounter::new()),
            flushing: Arc::default(),
            issuer,
            console,
            rate: Arc::new(RateLimiter::new()),
            audit_dedup: Arc::new(AuditDeduper::new()),
            form_outcomes,
            public_url_configured: settings.public_url_configured,
            keyring,
            trusted_proxies: Arc::new(trusted_proxies),
        })))
    }

    /// Counts a token issued, a use or a refusal for an application's
    /// charts (in memory) and in the metrics.
    pub fn count(&self, app: ApplicationId, kind: keygate::activity::ActivityKind) {
        self.activity.record(app, crate::now(), kind);
        crate::metrics::activity(kind);
    }

    /// Counts a refusal that names no application (unknown client ID or
    /// token): metrics only.
    pub fn count_unattributed_refusal(&self, reason: &'static str) {
        crate::metrics::refusal(reason);
    }

    /// Records a noisy audit event at most once per key and minute; repeats
    /// raise the stored event's `count` at the next flush.
    pub async fn audit_deduplicated(&self, key: &str, mut record: keygate::store::AuditRecord) {
        if !self.audit_dedup.observe(key, record.at) {
            return;
        }
        if let serde_json::Value::Object(map) = &mut record.details {
            map.insert("count".into(), serde_json::json!(1));
        }
        match self.store.record_audit(&record).await {
            Ok(id) => self.audit_dedup.attach(key, id.0),
            Err(e) => tracing::error!(error = %e, action = %record.action, "could not record an audit event"),
        }
    }

    /// Writes pending last-use times and audit counts.
    pub async fn flush(&self) {
        let _flushing = self.flushing.lock().await;
        if let Err(e) = self.usage.flush(&self.store).await {
            tracing::error!(error = %e, "last-used flush failed; will retry");
        }
        if let Err(e) = self.activity.flush(&self.store).await {
            tracing::error!(error = %e, "activity flush failed; will retry");
        }
        let counts = self.audit_dedup.take_dirty();
        if let Err(e) = self.store.update_audit_counts(&counts).await {
            tracing::error!(error = %e, "audit count flush failed");
        }
    }

    /// Whether the console should mark cookies `Secure`.
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}
