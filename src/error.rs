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
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return CoreError::Conflict("that name is already taken".into());
            }
        }
        CoreError::Storage(e)
    }
}
