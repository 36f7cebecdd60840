//! Rules of the client-credentials grant (RFC 6749 §4.4) and of bearer-token
//! checks (RFC 6750), free of HTTP: the server maps these outcomes onto
//! status codes and headers.

use crate::scope::ScopeSet;
use serde::{Deserialize, Serialize};
use std::fmt;

/// RFC 6749 §5.2 error codes (and RFC 6750 §3.1 for bearer tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidToken,
    InsufficientScope,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::InvalidToken => "invalid_token",
            OAuthErrorCode::InsufficientScope => "insufficient_scope",
        }
    }
}

/// An OAuth error with a description meant for the client's developer. The
/// description never says whether a client ID exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        OAuthError { code, description: description.into() }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client() -> Self {
        Self::new(OAuthErrorCode::InvalidClient, "client authentication failed")
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

/// Client credentials as presented, before they are checked against storage.
/// Debug is redacted: the secret must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedClient {
    pub client_id: String,
    pub client_secret: String,
    pub method: ClientAuthMethod,
}

impl fmt::Debug for PresentedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("method", &self.method)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

/// Decides which credentials a request carries (RFC 6749 §2.3.1): HTTP Basic
/// or `client_id`/`client_secret` in the body, never both secrets. A body
/// `client_id` next to Basic is accepted only when it names the same client.
pub fn select_client_credentials(
    basic: Option<(String, String)>,
    body_client_id: Option<String>,
    body_client_secret: Option<String>,
) -> Result<PresentedClient, OAuthError> {
    match (basic, body_client_id, body_client_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "the client authenticated with both HTTP Basic and client_secret in the body; use one method",
        )),
        (Some((id, secret)), body_id, None) => {
            if body_id.as_ref().is_some_and(|b| *b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body does not match the HTTP Basic credentials",
                ));
            }
            Ok(PresentedClient { client_id: id, client_secret: secret, method: ClientAuthMethod::ClientSecretBasic })
        }
        (None, Some(id), Some(secret)) => {
            Ok(PresentedClient { client_id: id, client_secret: secret, method: ClientAuthMethod::ClientSecretPost })
        }
        (None, _, _) => Err(OAuthError::invalid_client()),
    }
}

/// The scopes a token receives: the requested subset of the application's
/// allowed scopes, or all of them when `scope` is absent (RFC 6749 §3.3 lets
/// the server choose a documented default).
pub fn resolve_scopes(requested: Option<&str>, allowed: &ScopeSet) -> Result<ScopeSet, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.clone());
    };
    let asked = ScopeSet::parse(requested).map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
    let missing = asked.not_in(allowed);
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            format!("the application is not allowed the scope(s): {}", list.join(" ")),
        ));
    }
    Ok(asked)
}

/// Why a client failed to authenticate. The client is told only
/// `invalid_client`; the audit log keeps the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthFailure {
    UnknownClient,
    WrongSecret,
    ApplicationDisabled,
}

impl ClientAuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthFailure::UnknownClient => "unknown_client",
            ClientAuthFailure::WrongSecret => "wrong_secret",
            ClientAuthFailure::ApplicationDisabled => "application_disabled",
        }
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    Unknown,
    Expired { expired_at: i64 },
    Revoked { reason: String },
    ApplicationDisabled,
}

impl TokenRejection {
    pub fn description(&self) -> &'static str {
        match self {
            TokenRejection::Unknown => "the access token is not recognised",
            TokenRejection::Expired { .. } => "the access token has expired",
            TokenRejection::Revoked { .. } => "the access token has been revoked",
            TokenRejection::ApplicationDisabled => "the application of this access token is disabled",
        }
    }

    /// Audit action for a refused token use; unknown tokens are not audited
    /// (they identify nobody).
    pub fn audit_reason(&self) -> Option<String> {
        match self {
            TokenRejection::Unknown => None,
            TokenRejection::Expired { .. } => Some("expired".into()),
            TokenRejection::Revoked { reason } => Some(format!("revoked:{reason}")),
            TokenRejection::ApplicationDisabled => Some("application_disabled".into()),
        }
    }
}

/// What a token check reads about a stored token and its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokenState {
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    pub expires_at: i64,
    pub application_enabled: bool,
}

/// Whether a stored token may be used at `now`: revoked first, then
/// expired (from its expiry second on), then a disabled application.
pub fn judge_token(t: &StoredTokenState, now: i64) -> Result<(), TokenRejection> {
    match crate::model::token_state(t.revoked_at, t.expires_at, now) {
        crate::model::TokenState::Revoked => {
            Err(TokenRejection::Revoked { reason: t.revoked_reason.clone().unwrap_or_else(|| "revoked".into()) })
        }
        crate::model::TokenState::Expired => Err(TokenRejection::Expired { expired_at: t.expires_at }),
        crate::model::TokenState::Active if !t.application_enabled => Err(TokenRejection::ApplicationDisabled),
        crate::model::TokenState::Active => Ok(()),
    }
}

/// How many of the newest valid endpoint tokens stay once a new one is in:
/// the cap, and never fewer than the one just issued.
pub fn tokens_kept_after_issue(max_tokens: i64) -> i64 {
    max_tokens.max(1)
}

/// When a token issued at `now` with lifetime `ttl` expires.
pub fn expiry(now: i64, ttl_seconds: i64) -> i64 {
    now.saturating_add(ttl_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> ScopeSet {
        ScopeSet::parse("applications:read tokens:read").unwrap()
    }

    #[test]
    fn absent_scope_means_all_allowed() {
        assert_eq!(resolve_scopes(None, &allowed()).unwrap(), allowed());
    }

    #[test]
    fn subset_granted_superset_refused() {
        assert_eq!(resolve_scopes(Some("tokens:read"), &allowed()).unwrap().to_string(), "tokens:read");
        let e = resolve_scopes(Some("tokens:read audit:read"), &allowed()).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidScope);
        assert!(e.description.contains("audit:read"));
        assert_eq!(resolve_scopes(Some("BAD"), &allowed()).unwrap_err().code, OAuthErrorCode::InvalidScope);
    }

    #[test]
    fn empty_scope_parameter_grants_nothing() {
        assert!(resolve_scopes(Some(""), &allowed()).unwrap().is_empty());
    }

    #[test]
    fn client_credential_selection() {
        let b = Some(("id".to_string(), "s".to_string()));
        assert_eq!(
            select_client_credentials(b.clone(), None, None).unwrap().method,
            ClientAuthMethod::ClientSecretBasic
        );
        assert!(select_client_credentials(b.clone(), Some("id".into()), None).is_ok());
        assert_eq!(
            select_client_credentials(b.clone(), Some("other".into()), None).unwrap_err().code,
            OAuthErrorCode::InvalidRequest
        );
        assert_eq!(
            select_client_credentials(b, None, Some("s".into())).unwrap_err().code,
            OAuthErrorCode::InvalidRequest
        );
        assert_eq!(
            select_client_credentials(None, Some("id".into()), Some("s".into())).unwrap().method,
            ClientAuthMethod::ClientSecretPost
        );
        assert_eq!(
            select_client_credentials(None, Some("id".into()), None).unwrap_err().code,
            OAuthErrorCode::InvalidClient
        );
    }

    #[test]
    fn presented_client_debug_is_redacted() {
        let p = select_client_credentials(None, Some("id".into()), Some("kgs_supersecret".into())).unwrap();
        assert!(!format!("{p:?}").contains("supersecret"));
    }

    #[test]
    fn token_judgement_order() {
        let t = StoredTokenState { revoked_at: None, revoked_reason: None, expires_at: 100, application_enabled: true };
        assert_eq!(judge_token(&t, 99), Ok(()));
        assert_eq!(judge_token(&t, 100), Err(TokenRejection::Expired { expired_at: 100 }));
        let off = StoredTokenState { application_enabled: false, ..t.clone() };
        assert_eq!(judge_token(&off, 50), Err(TokenRejection::ApplicationDisabled));
        let revoked = StoredTokenState { revoked_at: Some(10), revoked_reason: Some("x".into()), ..off };
        assert_eq!(judge_token(&revoked, 200), Err(TokenRejection::Revoked { reason: "x".into() }));
    }

    #[test]
    fn cap_arithmetic() {
        assert_eq!(tokens_kept_after_issue(30), 30);
        assert_eq!(tokens_kept_after_issue(0), 1);
        assert_eq!(expiry(1000, 3600), 4600);
    }
}
