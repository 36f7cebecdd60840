//! Keygate's domain core: applications, client secrets, tokens, scopes, the
//! OAuth client-credentials grant rules, administrators and the audit trail.
//!
//! Nothing here speaks HTTP or renders UI. The wasm-safe part (model types,
//! scope syntax, validation, DTOs) compiles for the browser; storage,
//! secret generation and hashing sit behind the `ssr` feature. Every rule
//! that depends on the clock takes `now` as an argument.

pub mod activity;
pub mod audit_action;
pub mod audit_dedup;
pub mod audit_text;
pub mod error;
pub mod grant;
pub mod model;
pub mod network;
#[cfg(feature = "ssr")]
pub mod password_work;
#[cfg(feature = "ssr")]
pub mod ratelimit;
pub mod scope;
pub mod snippets;
pub mod throttle;
pub mod time_fmt;

#[cfg(feature = "ssr")]
pub mod client;
#[cfg(feature = "ssr")]
pub mod jwt;
#[cfg(feature = "ssr")]
pub mod keyring;
#[cfg(feature = "ssr")]
pub mod secret;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod usage;
#[cfg(feature = "ssr")]
pub mod usecase;
#[cfg(feature = "ssr")]
pub mod webhook;

pub use audit_action::AuditAction;
pub use error::CoreError;
pub use model::*;
pub use scope::{ScopeName, ScopeSet};
