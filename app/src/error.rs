//! The one error type of the UI layer. Server functions return it; its text
//! is shown to the administrator as is, so it never carries SQL or internals.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("your session has ended; please sign in")]
    Unauthenticated,
    /// Signed in with a password someone else chose: nothing else until
    /// they choose their own (on `/account`).
    #[error("choose your own password first (your password was set by someone else)")]
    PasswordChangeRequired,
    #[error("{0}")]
    Forbidden(String),
    /// A field's input was refused; `field` names the form input.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Refused(String),
    /// Too many attempts, or the server is busy: wait `retry_after` seconds.
    #[error("{message}")]
    Throttled { message: String, retry_after: i64 },
    #[error("{0} not found")]
    NotFound(String),
    /// The database cannot be reached for now.
    #[error("{0}")]
    Unavailable(String),
    #[error("something went wrong on the server; the details are in its log")]
    Internal,
    #[error("the request did not reach the server: {0}")]
    Transport(String),
}

impl AppError {
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid { field: field.to_owned(), message: message.into() }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

impl From<keygate::CoreError> for AppError {
    fn from(e: keygate::CoreError) -> Self {
        use keygate::CoreError as C;
        match e {
            C::Invalid { field, message } => AppError::Invalid { field: field.to_owned(), message },
            C::NotFound(what) => AppError::NotFound(what.to_owned()),
            C::Conflict(m) | C::Refused(m) => AppError::Refused(m),
            C::Forbidden { message, .. } => AppError::Forbidden(message),
            C::Throttled { message, retry_after } => AppError::Throttled { message, retry_after },
            #[cfg(feature = "ssr")]
            C::Storage(err) => {
                tracing::error!(error = %err, "storage error in a server function");
                AppError::Internal
            }
            C::Unavailable(m) => AppError::Unavailable(m),
            C::Internal(m) => {
                #[cfg(feature = "ssr")]
                tracing::error!(error = %m, "internal error in a server function");
                let _ = m;
                AppError::Internal
            }
        }
    }
}
