//! Error responses of the HTTP layer: RFC 6749 §5.2 JSON bodies on the
//! OAuth endpoints, RFC 6750 challenges on the API. Internal errors are
//! logged with their detail and answered with an opaque message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keygate::grant::{OAuthError, OAuthErrorCode};
use keygate::CoreError;
use serde_json::json;

/// An error as the HTTP layer answers it.
#[derive(Debug)]
pub enum HttpError {
    OAuth {
        status: StatusCode,
        error: OAuthError,
        challenge: Option<String>,
    },
    /// A management API refusal: `{"error": code, "error_description", "field"?}`.
    Api {
        status: StatusCode,
        code: &'static str,
        description: String,
        field: Option<&'static str>,
    },
    /// 429, with `Retry-After`.
    RateLimited {
        retry_after: i64,
        description: String,
    },
    Internal,
    /// 503: the database is unavailable for now.
    Unavailable,
}

impl HttpError {
    /// The status RFC 6749 §5.2 gives each code on the token endpoint.
    pub fn oauth(error: OAuthError) -> Self {
        let (status, challenge) = match error.code {
            OAuthErrorCode::InvalidClient => {
                (StatusCode::UNAUTHORIZED, Some("Basic realm=\"keygate\", charset=\"UTF-8\"".to_owned()))
            }
            OAuthErrorCode::InvalidToken => (StatusCode::UNAUTHORIZED, None),
            OAuthErrorCode::InsufficientScope => (StatusCode::FORBIDDEN, None),
            _ => (StatusCode::BAD_REQUEST, None),
        };
        HttpError::OAuth { status, error, challenge }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::oauth(OAuthError::invalid_request(description))
    }

    pub fn with_status(self, status: StatusCode) -> Self {
        match self {
            HttpError::OAuth { error, challenge, .. } => HttpError::OAuth { status, error, challenge },
            other => other,
        }
    }

    pub fn with_challenge(self, challenge: String) -> Self {
        match self {
            HttpError::OAuth { status, error, .. } => HttpError::OAuth { status, error, challenge: Some(challenge) },
            other => other,
        }
    }
}

impl HttpError {
    pub fn api(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        HttpError::Api { status, code, description: description.into(), field: None }
    }
    pub fn not_found(what: &str) -> Self {
        Self::api(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
}

impl From<CoreError> for HttpError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid { field, message } => HttpError::Api {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                description: message,
                field: Some(field),
            },
            CoreError::NotFound(what) => HttpError::not_found(what),
            CoreError::Conflict(m) | CoreError::Refused(m) => HttpError::api(StatusCode::CONFLICT, "conflict", m),
            // A token lacking scopes: RFC 6750 `insufficient_scope`, naming them.
            CoreError::Forbidden { message, missing_scopes } if !missing_scopes.is_empty() => {
                let scope = missing_scopes.join(" ");
                HttpError::oauth(OAuthError::new(OAuthErrorCode::InsufficientScope, message.clone())).with_challenge(
                    crate::bearer::challenge(Some(OAuthErrorCode::InsufficientScope), &message, Some(&scope)),
                )
            }
            CoreError::Forbidden { message, .. } => HttpError::api(StatusCode::FORBIDDEN, "forbidden", message),
            CoreError::Throttled { message, retry_after } => {
                HttpError::RateLimited { retry_after, description: message }
            }
            CoreError::Unavailable(_) => HttpError::Unavailable,
            CoreError::Storage(err) => {
                tracing::error!(error = %err, "storage error");
                HttpError::Internal
            }
            CoreError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                HttpError::Internal
            }
        }
    }
}

pub fn no_store(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = match self {
            HttpError::OAuth { status, error, challenge } => {
                let body = json!({ "error": error.code.as_str(), "error_description": error.description });
                let mut r = (status, Json(body)).into_response();
                if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, c);
                }
                r
            }
            HttpError::Api { status, code, description, field } => {
                let mut body = json!({ "error": code, "error_description": description });
                if let Some(f) = field {
                    body["field"] = json!(f);
                }
                (status, Json(body)).into_response()
            }
            HttpError::RateLimited { retry_after, description } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({ "error": "rate_limited", "error_description": description })),
                )
                    .into_response();
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
                r
            }
            HttpError::Unavailable => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": "temporarily_unavailable", "error_description": "the database is unavailable; try again shortly" })),
                )
                    .into_response();
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
                r
            }
            HttpError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "server_error", "error_description": "internal error; see the server log" })),
            )
                .into_response(),
        };
        no_store(&mut response);
        response
    }
}
