//! Server-side helpers for server functions: the shared context, the
//! session, and the role checks every server function starts with.

use crate::error::AppError;
use keygate::password_work::{PasswordBusy, PasswordWork, BUSY_RETRY_AFTER_SECONDS};
use keygate::store::Store;
use keygate::throttle::{sign_in_keys, AttemptOutcome, SignInThrottle, ThrottlePolicy};
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
    /// Every argon2id hash and verification runs here, bounded.
    pub password_work: PasswordWork,
    /// Secrets and tokens waiting to be shown once.
    pub flashes: Arc<FlashVault>,
}

/// One-time secrets between the action that made them and the page that
/// shows them, in memory only; unclaimed ones vanish after ten minutes.
#[derive(Debug, Default)]
pub struct FlashVault {
    items: Mutex<std::collections::HashMap<String, (crate::apps::Flash, std::time::Instant)>>,
}

const FLASH_TTL: std::time::Duration = std::time::Duration::from_secs(600);
const FLASH_MAX: usize = 10_000;

impl FlashVault {
    /// Stores a flash and returns the random key the session keeps.
    pub fn put(&self, flash: crate::apps::Flash) -> String {
        let id = keygate::secret::generate_setup_code();
        if let Ok(mut items) = self.items.lock() {
            items.retain(|_, (_, at)| at.elapsed() < FLASH_TTL);
            if items.len() < FLASH_MAX {
                items.insert(id.clone(), (flash, std::time::Instant::now()));
            }
        }
        id
    }

    /// Takes the flash out if it belongs to this application's page.
    pub fn take(&self, id: &str, application_id: i64) -> Option<crate::apps::Flash> {
        let mut items = self.items.lock().ok()?;
        match items.get(id) {
            Some((f, at)) if f.application_id == application_id && at.elapsed() < FLASH_TTL => {
                items.remove(id).map(|(f, _)| f)
            }
            _ => None,
        }
    }
}

/// The refusal when the password workers and their queue are full.
pub fn password_busy(_: PasswordBusy) -> AppError {
    AppError::Throttled {
        message: "the server is busy checking other passwords; try again in a moment".into(),
        retry_after: BUSY_RETRY_AFTER_SECONDS,
    }
}

/// A sign-in attempt reserved in the throttle. Dropping it without an
/// outcome (the request went away mid-check) counts as a failure, so
/// abandoning requests cannot be used to dodge the throttle.
pub struct SignInAttempt {
    throttle: Arc<Mutex<SignInThrottle>>,
    keys: [(String, ThrottlePolicy); 2],
    finished: bool,
}

impl SignInAttempt {
    /// Reserves the attempt, or refuses with the time to wait.
    pub fn reserve(ctx: &ConsoleContext, username: &str, ip: Option<&str>, now: i64) -> Result<Self, AppError> {
        let keys = sign_in_keys(username, ip);
        let mut throttle = ctx.sign_in_throttle.lock().map_err(|_| AppError::Internal)?;
        throttle.try_reserve(&keys, now).map_err(|wait| AppError::Throttled {
            message: format!("too many failed sign-ins from here; try again in {wait} seconds"),
            retry_after: wait,
        })?;
        Ok(SignInAttempt { throttle: ctx.sign_in_throttle.clone(), keys, finished: false })
    }

    pub fn finish(mut self, outcome: AttemptOutcome) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: AttemptOutcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Ok(mut t) = self.throttle.lock() {
            t.finish(&self.keys, outcome, now());
        }
    }
}

impl Drop for SignInAttempt {
    fn drop(&mut self) {
        self.record(AttemptOutcome::Failed);
    }
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

/// The signed-in administrator as the caller of a use case, which checks
/// the role itself.
pub async fn caller() -> Result<keygate::usecase::Caller, AppError> {
    let admin = require_admin().await?;
    Ok(keygate::usecase::Caller::administrator(admin, now(), client_ip().await))
}

pub async fn sign_in_session(admin: &AdminView) -> Result<(), AppError> {
    let session = session().await?;
    // A fresh ID at sign-in defeats session fixation.
    session.cycle_id().await.map_err(session_error)?;
    session.insert(SESSION_ADMIN_KEY, admin.id.0).await.map_err(session_error)?;
    Ok(())
}
