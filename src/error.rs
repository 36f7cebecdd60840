//! The core's error type. Its `Display` is safe to show to an administrator;
//! storage failures keep their detail in `source` only, for the logs.

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A field failed validation; `field` names the input so a form can show
    /// the message beside it.
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Refused(String),
    /// The actor may not do this: a viewer changing something, an
    /// administrator who is not an owner, or an application token lacking
    /// `missing_scopes` (the scope ceiling).
    #[error("{message}")]
    Forbidden { message: String, missing_scopes: Vec<String> },
    /// Too many attempts, or the server is busy: try again in `retry_after` seconds.
    #[error("{message}")]
    Throttled { message: String, retry_after: i64 },
    /// The database cannot be reached (at start, or while serving: then
    /// the server answers 503 and recovers by itself when it returns).
    #[error("{0}")]
    Unavailable(String),
    #[cfg(feature = "ssr")]
    #[error("internal storage error")]
    Storage(#[source] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        CoreError::Invalid { field, message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        CoreError::Forbidden { message: message.into(), missing_scopes: Vec::new() }
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for CoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                CoreError::Conflict("that name is already taken".into())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %e, "the database is unavailable");
                CoreError::Unavailable("the database is unavailable; try again shortly".into())
            }
            // PostgreSQL refusing connections for now: connection exceptions
            // (08…), shutdown or start-up (57P0…), too many connections
            // (53300), a database closed to connections (55000).
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0") || c == "53300" || c == "55000") =>
            {
                tracing::warn!(error = %e, "the database is unavailable");
                CoreError::Unavailable("the database is unavailable; try again shortly".into())
            }
            // Text PostgreSQL cannot store (a NUL character) in a filter or
            // a name looked up: the input is refused, not the server broken.
            // (Fields that are stored refuse NUL in validation, on both
            // backends alike.)
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "22021") => {
                CoreError::invalid("input", "text may not contain NUL characters")
            }
            _ => CoreError::Storage(e),
        }
    }
}
