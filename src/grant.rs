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
    /// RFC 8707 §2: an unknown resource, or one the client may not reach.
    InvalidTarget,
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
            OAuthErrorCode::InvalidTarget => "invalid_target",
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

/// Which resource server each scope belongs to: `(scope, identifier)` pairs
/// for the scopes that belong to one.
pub type ScopeServers = [(String, String)];

/// The audience of a token carrying `scopes` when no resource was asked
/// for: every resource server one of its scopes belongs to, sorted.
pub fn audience_of(scopes: &ScopeSet, scope_servers: &ScopeServers) -> Vec<String> {
    let mut aud: Vec<String> =
        scope_servers.iter().filter(|(scope, _)| scopes.contains(scope)).map(|(_, server)| server.clone()).collect();
    aud.sort();
    aud.dedup();
    aud
}

/// A token request's scopes and audience (RFC 8707 `resource`, or
/// `audience`): with targets, the token is for them and carries only the
/// requested (or all allowed) scopes that belong to them; without, it
/// carries the requested scopes and is for every server they belong to.
/// `is_known` says whether an identifier names a resource server at all,
/// so an unknown one and one the client has no scope on are told apart.
pub fn resolve_grant(
    requested: Option<&str>,
    targets: &[String],
    allowed: &ScopeSet,
    scope_servers: &ScopeServers,
    is_known: impl Fn(&str) -> bool,
) -> Result<(ScopeSet, Vec<String>), OAuthError> {
    let scopes = resolve_scopes(requested, allowed)?;
    if targets.is_empty() {
        let audience = audience_of(&scopes, scope_servers);
        return Ok((scopes, audience));
    }
    let mut audience: Vec<String> = targets.to_vec();
    audience.sort();
    audience.dedup();
    for target in &audience {
        let shown: String = target.chars().take(100).collect();
        if crate::model::validate_identifier(target).is_err() {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                format!("the resource \"{shown}\" is not an absolute URI without a fragment"),
            ));
        }
        let reachable = scope_servers.iter().any(|(scope, server)| server == target && allowed.contains(scope));
        if !reachable {
            let why = if is_known(target) {
                format!("the application has no scope on the resource server {shown}")
            } else {
                format!("{shown} is not a resource server Keygate knows")
            };
            return Err(OAuthError::new(OAuthErrorCode::InvalidTarget, why));
        }
    }
    let kept = ScopeSet::from_names(
        scopes
            .iter()
            .filter(|scope| {
                scope_servers.iter().any(|(s, server)| s == scope.as_str() && audience.iter().any(|a| a == server))
            })
            .map(|s| s.as_str()),
    )
    .unwrap_or_default();
    if kept.is_empty() && requested.is_some_and(|r| !r.trim().is_empty()) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "none of the requested scopes belongs to the requested resource server(s)",
        ));
    }
    Ok((kept, audience))
}

/// Why a client failed to authenticate. The client is told only
/// `invalid_client`; the audit log keeps the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthFailure {
    UnknownClient,
    WrongSecret,
    ApplicationDisabled,
    /// The secret was right, the address outside the application's allowlist.
    AddressNotAllowed,
}

impl ClientAuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthFailure::UnknownClient => "unknown_client",
            ClientAuthFailure::WrongSecret => "wrong_secret",
            ClientAuthFailure::ApplicationDisabled => "application_disabled",
            ClientAuthFailure::AddressNotAllowed => "address_not_allowed",
        }
    }
}

/// A presented client ID as logs and audit events may show it. Clients
/// that swap their ID and secret would otherwise put a live secret into
/// the log: anything shaped like a Keygate secret or token is replaced by
/// its kind, and anything else long enough to be a secret by its length.
pub fn client_id_for_audit(presented: &str) -> String {
    const SECRET_PREFIXES: [(&str, &str); 3] =
        [("kgs_", "a client secret"), ("kgt_", "an access token"), ("whsec_", "a webhook secret")];
    for (prefix, what) in SECRET_PREFIXES {
        if presented.starts_with(prefix) {
            return format!("<{what}, not shown>");
        }
    }
    let n = presented.chars().count();
    if !presented.starts_with("kgc_") && n >= 32 {
        return format!("<{n} characters, not shown>");
    }
    crate::model::bounded_text(presented, 64)
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    Unknown,
    Expired {
        expired_at: i64,
    },
    Revoked {
        reason: String,
    },
    ApplicationDisabled,
    /// A valid token used from outside its application's allowlist.
    AddressNotAllowed,
}

impl TokenRejection {
    pub fn description(&self) -> &'static str {
        match self {
            TokenRejection::Unknown => "the access token is not recognised",
            TokenRejection::Expired { .. } => "the access token has expired",
            TokenRejection::Revoked { .. } => "the access token has been revoked",
            TokenRejection::ApplicationDisabled => "the application of this access token is disabled",
            TokenRejection::AddressNotAllowed => "the access token may not be used from this address",
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
            TokenRejection::AddressNotAllowed => Some("address_not_allowed".into()),
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

    fn servers() -> Vec<(String, String)> {
        vec![
            ("applications:read".into(), "urn:keygate:api".into()),
            ("tokens:read".into(), "urn:keygate:api".into()),
            ("billing:read".into(), "https://billing.internal/".into()),
        ]
    }

    #[test]
    fn secrets_presented_as_client_ids_are_not_shown() {
        assert_eq!(client_id_for_audit("kgc_abc"), "kgc_abc");
        assert_eq!(client_id_for_audit("someone-typo"), "someone-typo");
        assert_eq!(client_id_for_audit(&format!("kgs_{}", "a".repeat(43))), "<a client secret, not shown>");
        assert_eq!(client_id_for_audit("kgt_x"), "<an access token, not shown>");
        assert_eq!(client_id_for_audit(&"x".repeat(40)), "<40 characters, not shown>");
    }

    #[test]
    fn audience_follows_scopes_without_a_target() {
        let allowed = ScopeSet::parse("applications:read billing:read other").unwrap();
        let (scopes, aud) = resolve_grant(None, &[], &allowed, &servers(), |_| true).unwrap();
        assert_eq!(scopes, allowed);
        assert_eq!(aud, vec!["https://billing.internal/".to_string(), "urn:keygate:api".to_string()]);
        let (_, aud) = resolve_grant(Some("other"), &[], &allowed, &servers(), |_| true).unwrap();
        assert!(aud.is_empty(), "a scope of no resource server gives no audience");
    }

    #[test]
    fn a_target_narrows_scopes_and_audience() {
        let allowed = ScopeSet::parse("applications:read billing:read").unwrap();
        let billing = vec!["https://billing.internal/".to_string()];
        let (scopes, aud) = resolve_grant(None, &billing, &allowed, &servers(), |_| true).unwrap();
        assert_eq!(scopes.to_string(), "billing:read");
        assert_eq!(aud, billing);
        // Requested scopes of another server are left out, not refused...
        let (scopes, _) =
            resolve_grant(Some("billing:read applications:read"), &billing, &allowed, &servers(), |_| true).unwrap();
        assert_eq!(scopes.to_string(), "billing:read");
        // ...unless nothing is left.
        let e = resolve_grant(Some("applications:read"), &billing, &allowed, &servers(), |_| true).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidScope);
    }

    #[test]
    fn unknown_or_unreachable_targets_are_invalid_target() {
        let allowed = ScopeSet::parse("applications:read").unwrap();
        let known = |t: &str| t == "https://billing.internal/";
        let e = resolve_grant(None, &["https://nowhere/".into()], &allowed, &servers(), known).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidTarget);
        assert!(e.description.contains("not a resource server"));
        let e = resolve_grant(None, &["https://billing.internal/".into()], &allowed, &servers(), known).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidTarget);
        assert!(e.description.contains("no scope"));
        let e = resolve_grant(None, &["not a uri".into()], &allowed, &servers(), known).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidTarget);
    }

    #[test]
    fn cap_arithmetic() {
        assert_eq!(tokens_kept_after_issue(30), 30);
        assert_eq!(tokens_kept_after_issue(0), 1);
        assert_eq!(expiry(1000, 3600), 4600);
    }
}
