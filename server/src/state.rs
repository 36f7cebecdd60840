//! Shared state handed to every handler.

use app::server::ConsoleContext;
use axum::extract::FromRef;
use keygate::store::Store;
use keygate::throttle::SignInThrottle;
use keygate::usage::UsageTracker;
use leptos::config::LeptosOptions;
use std::sync::{Arc, Mutex};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub usage: Arc<UsageTracker>,
    /// The issuer URL (RFC 8414), without a trailing slash.
    pub issuer: String,
    pub console: ConsoleContext,
}

impl AppState {
    pub fn new(leptos_options: LeptosOptions, store: Store, issuer: &str) -> Self {
        let console = ConsoleContext {
            store: store.clone(),
            setup_code: Arc::new(Mutex::new(None)),
            sign_in_throttle: Arc::new(Mutex::new(SignInThrottle::new())),
        };
        AppState {
            leptos_options,
            store,
            usage: Arc::new(UsageTracker::new()),
            issuer: issuer.trim_end_matches('/').to_owned(),
            console,
        }
    }

    /// Whether the console should mark cookies `Secure`.
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}
