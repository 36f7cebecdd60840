//! Server-side helpers for server functions: the shared context, the
//! session, and the role checks every server function starts with.

use crate::error::AppError;
use keygate::password_work::PasswordWork;
use keygate::store::Store;
use keygate::{AdminId, AdminView};
use tower_sessions::Session;

pub const SESSION_ADMIN_KEY: &str = "admin_id";
/// The administrator's session binding at sign-in (see
/// `StoredSession::admin_bound_to`).
pub const SESSION_BINDING_KEY: &str = "binding";
/// Put into a session's data by the session store when it loads one whose
/// administrator and binding still hold (read in the same query), and
/// never written back.
pub const SESSION_VERIFIED_ADMIN_KEY: &str = "verified_admin";

/// What the console's server functions need; the server provides it as
/// Leptos context for every request. Everything else the console keeps
/// between requests (sessions, throttles, setup codes, one-time secrets)
/// is in the database, so every instance on it sees the same.
#[derive(Clone)]
pub struct ConsoleContext(std::sync::Arc<ConsoleShared>);

impl ConsoleContext {
    pub fn new(shared: ConsoleShared) -> Self {
        ConsoleContext(std::sync::Arc::new(shared))
    }
}

/// One clone per request and per server function: one reference count,
/// not one per field.
impl std::ops::Deref for ConsoleContext {
    type Target = ConsoleShared;
    fn deref(&self) -> &ConsoleShared {
        &self.0
    }
}

pub struct ConsoleShared {
    pub store: Store,
    /// Every argon2id hash and verification runs here, bounded.
    pub password_work: PasswordWork,
    /// Seals webhook signing secrets.
    pub kek: keygate::jwt::KeyEncryptionKey,
    /// Days without a use after which an application is dormant.
    pub dormant_after_days: i64,
    /// The server's public base URL (the issuer), for the snippets.
    pub public_url: String,
    /// Whether `--public-url` named it (else it is the listening address).
    pub public_url_configured: bool,
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
    leptos_axum::extract::<axum::Extension<keygate::network::ClientAddress>>().await.ok().and_then(|a| a.0.text())
}

fn session_error(e: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %e, "session store error");
    AppError::Internal
}

/// The signed-in administrator, read from the database with the session on
/// every request so a role change, password reset or removal takes effect
/// at once.
pub async fn current_admin() -> Result<Option<AdminView>, AppError> {
    let session = session().await?;
    let Some(id) = session.get::<i64>(SESSION_ADMIN_KEY).await.map_err(session_error)? else {
        return Ok(None);
    };
    match session.get::<AdminView>(SESSION_VERIFIED_ADMIN_KEY).await.map_err(session_error)? {
        Some(admin) if admin.id == AdminId(id) => Ok(Some(admin)),
        _ => {
            session.flush().await.map_err(session_error)?;
            Ok(None)
        }
    }
}

/// The signed-in administrator, unless they must first replace a password
/// someone else chose.
pub async fn require_admin() -> Result<AdminView, AppError> {
    let admin = require_signed_in().await?;
    if admin.must_change_password {
        return Err(AppError::PasswordChangeRequired);
    }
    Ok(admin)
}

/// The signed-in administrator, even one who must change their password
/// (the account page and its form).
pub async fn require_signed_in() -> Result<AdminView, AppError> {
    current_admin().await?.ok_or(AppError::Unauthenticated)
}

/// The signed-in administrator as the caller of a use case, which checks
/// the role itself.
pub async fn caller() -> Result<keygate::usecase::Caller, AppError> {
    let admin = require_admin().await?;
    Ok(keygate::usecase::Caller::administrator(admin, now(), client_ip().await))
}

pub async fn sign_in_session(admin: &AdminView, binding: &keygate::SessionBinding) -> Result<(), AppError> {
    let session = session().await?;
    // A fresh ID at sign-in defeats session fixation.
    session.cycle_id().await.map_err(session_error)?;
    // Whoever was signed in before in this browser is not the one now; the
    // rest of this request sees who is (never stored: see the session store).
    session.insert(SESSION_VERIFIED_ADMIN_KEY, admin).await.map_err(session_error)?;
    session.insert(SESSION_ADMIN_KEY, admin.id.0).await.map_err(session_error)?;
    session.insert(SESSION_BINDING_KEY, &binding.0).await.map_err(session_error)?;
    Ok(())
}
