//! The `keygate` binary's library: configuration, router wiring, the OAuth
//! endpoints, the bearer-protected API, sessions and static files.

pub mod api;
pub mod assets;
pub mod bearer;
pub mod cli;
pub mod console_guard;
pub mod form;
pub mod forward_auth;
pub mod http_error;
pub mod idle_io;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod router;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod webhook_sender;

pub use router::build_router;
pub use state::AppState;

/// Unix seconds now: the one place the server reads the clock for the core.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
