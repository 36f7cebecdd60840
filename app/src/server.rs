//! Server-side helpers for server functions: the shared context, the
//! session, and the role checks every server function starts with.

use crate::error::AppError;
use keygate::store::{AuditRecord, Store};
use keygate::throttle::SignInThrottle;
use keygate::{AdminId, AdminView};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tower_sessions::Session;

pub const SESSION_ADMIN_KEY: &str = "admin_id";

/// What the console's server functions need; the server provides it as
/// Leptos context for every request.
#[derive(Clone)]
pub struct ConsoleContext {
    pub store: Store,
    /// The one-time code of the setup link, while no administrator exists.
    pub setup_code: Arc<Mutex<Option<String>>>,
    pub sign_in_throttle: Arc<Mutex<SignInThrottle>>,
}

pub fn context() -> Result<ConsoleContext, AppError> {
    leptos::prelude::use_context::<ConsoleContext>().ok_or_else(|| {
        tracing::error!("ConsoleContext missing from a server function's context");
        AppError::Internal
    })
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|e| {
        tracing::error!(error = %e, "session layer missing");
        AppError::Internal
    })
}

pub async fn client_ip() -> Option<String> {
    leptos_axum::extract::<axum::extract::ConnectInfo<SocketAddr>>().await.ok().map(|c| c.0.ip().to_string())
}

fn session_error(e: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %e, "session store error");
    AppError::Internal
}

/// The signed-in administrator, re-read from the database on every call so
/// a role change or removal takes effect at once.
pub async fn current_admin() -> Result<Option<AdminView>, AppError> {
    let ctx = context()?;
    let session = session().await?;
    let Some(id) = session.get::<i64>(SESSION_ADMIN_KEY).await.map_err(session_error)? else {
        return Ok(None);
    };
    let admin = ctx.store.admin(AdminId(id)).await?;
    if admin.is_none() {
        session.flush().await.map_err(session_error)?;
    }
    Ok(admin)
}

pub async fn require_admin() -> Result<AdminView, AppError> {
    current_admin().await?.ok_or(AppError::Unauthenticated)
}

/// For server functions that change something: viewers are refused here,
/// whatever the page showed them.
pub async fn require_writer() -> Result<AdminView, AppError> {
    let admin = require_admin().await?;
    if !admin.role.can_write() {
        return Err(AppError::Forbidden(format!("{} is a viewer; viewers cannot change anything", admin.username)));
    }
    Ok(admin)
}

pub async fn sign_in_session(admin: &AdminView) -> Result<(), AppError> {
    let session = session().await?;
    // A fresh ID at sign-in defeats session fixation.
    session.cycle_id().await.map_err(session_error)?;
    session.insert(SESSION_ADMIN_KEY, admin.id.0).await.map_err(session_error)?;
    Ok(())
}

/// Records an audit event, with the caller's address when the record has none.
pub async fn audit(mut record: AuditRecord) {
    if record.client_ip.is_none() {
        record.client_ip = client_ip().await;
    }
    if let Ok(ctx) = context() {
        if let Err(e) = ctx.store.record_audit(&record).await {
            tracing::error!(error = %e, action = %record.action, "could not record an audit event");
        }
    }
}
