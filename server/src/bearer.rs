//! Bearer-token authentication for `/api/v1` (RFC 6750), as a middleware
//! that also counts the request against the application's rate limits and
//! reports the quota on the response.

use crate::http_error::HttpError;
use crate::oauth::{count_request, rate_headers, Metered};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keygate::activity::{ActivityKind, RefusalReason};
use keygate::grant::{OAuthError, OAuthErrorCode};
use keygate::secret::AccessToken;
use keygate::store::{ActorKind, AuditRecord, TokenContext};
use serde_json::json;

/// The verified caller of an API route.
#[derive(Debug, Clone)]
pub struct Bearer(pub TokenContext);

const REALM: &str = "keygate";

pub fn challenge(code: Option<OAuthErrorCode>, description: &str, scope: Option<&str>) -> String {
    let mut c = format!("Bearer realm=\"{REALM}\"");
    if let Some(code) = code {
        c.push_str(&format!(", error=\"{}\", error_description=\"{description}\"", code.as_str()));
    }
    if let Some(scope) = scope {
        c.push_str(&format!(", scope=\"{scope}\""));
    }
    c
}

/// 401 without a token: the challenge carries no error code (RFC 6750 §3.1).
fn missing_token() -> HttpError {
    HttpError::invalid_request("a bearer token is required in the Authorization header")
        .with_status(StatusCode::UNAUTHORIZED)
        .with_challenge(challenge(None, "", None))
}

pub fn invalid_token(description: &str) -> HttpError {
    HttpError::oauth(OAuthError::new(OAuthErrorCode::InvalidToken, description)).with_challenge(challenge(
        Some(OAuthErrorCode::InvalidToken),
        description,
        None,
    ))
}

impl Bearer {
    /// 403 `insufficient_scope` unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), HttpError> {
        if self.0.scopes.contains(scope) {
            return Ok(());
        }
        let description = format!("this route needs the scope {scope}");
        Err(HttpError::oauth(OAuthError::new(OAuthErrorCode::InsufficientScope, description.clone()))
            .with_challenge(challenge(Some(OAuthErrorCode::InsufficientScope), &description, Some(scope))))
    }

    /// An audit record with this caller's application as the actor.
    pub fn audit(&self, at: i64, action: keygate::AuditAction) -> AuditRecord {
        let mut r = AuditRecord::new(at, ActorKind::Application, action);
        r.actor_id = Some(self.0.application_id.0);
        r.actor_name = Some(self.0.application_name.clone());
        r.details = json!({ "via": "api", "token_id": self.0.token_id.0 });
        r
    }
}

/// Verifies the bearer token with one indexed lookup, records its use in
/// memory, and audits refusals (de-duplicated per token, reason and minute).
/// `via` names the entry point in the audit events of refusals.
pub async fn verify_bearer(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<String>,
    via: &'static str,
) -> Result<TokenContext, HttpError> {
    let now = crate::now();
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(missing_token()) };
    if values.next().is_some() {
        return Err(HttpError::invalid_request("the Authorization header is repeated"));
    }
    let value = value.to_str().map_err(|_| invalid_token("the Authorization header is not ASCII"))?;
    let Some((scheme, token)) = value.split_once(' ') else { return Err(missing_token()) };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing_token());
    }
    let token = AccessToken::from_presented(token.trim());
    let checked = state.store.check_token(&token, now).await?.and_then(|ctx| {
        // A valid token from outside its application's allowlist is
        // refused and audited like an expired one.
        match ctx.check_origin(ip.as_deref().and_then(|ip| ip.parse().ok())) {
            Ok(()) => Ok(ctx),
            Err(rejection) => Err(keygate::store::RejectedToken {
                rejection,
                token_id: Some(ctx.token_id),
                application_id: Some(ctx.application_id),
                application_name: Some(ctx.application_name),
                token_name: ctx.token_name,
            }),
        }
    });
    match checked {
        Ok(ctx) => {
            // Counted as a use by the caller once the request is served:
            // a request refused for its rate or scope is no successful use.
            state.usage.record(ctx.token_id, now, ip);
            Ok(ctx)
        }
        Err(rejected) => {
            match (RefusalReason::of_token_rejection(&rejected.rejection), rejected.application_id) {
                (Some(reason), Some(app)) => state.count(app, ActivityKind::Refused(reason)),
                _ => state.count_unattributed_refusal("invalid_token"),
            }
            if let (Some(reason), Some(app), Some(token_id)) =
                (rejected.rejection.audit_reason(), rejected.application_id, rejected.token_id)
            {
                let name = rejected.application_name.clone().unwrap_or_default();
                let mut rec = AuditRecord::new(now, ActorKind::Application, keygate::AuditAction::TokenRefused)
                    .on_application(app, &name)
                    .from_ip(ip);
                rec.actor_id = Some(app.0);
                rec.actor_name = Some(name);
                rec.details = json!({ "reason": reason, "token_id": token_id.0, "via": via });
                if let Some(token) = &rejected.token_name {
                    rec = rec.with("token", json!(token));
                }
                // Per address too: a second address is its own event.
                let key = format!("token:{}:{reason}:{via}:{}", token_id.0, rec.client_ip.as_deref().unwrap_or("-"));
                state.audit_deduplicated(&key, rec).await;
            }
            Err(invalid_token(rejected.rejection.description()))
        }
    }
}

pub async fn require_bearer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<keygate::network::ClientAddress>().and_then(|a| a.text());
    let headers = req.headers().clone();
    let ctx = match verify_bearer(&state, &headers, ip.clone(), "api").await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let quota = match count_request(&state, Metered::bearer(&ctx, ip.as_deref())).await {
        Ok(q) => q,
        Err(r) => return r,
    };
    let app = ctx.application_id;
    req.extensions_mut().insert(Bearer(ctx));
    let mut response = next.run(req).await;
    // A route's scope refusal (the route or the use case said so).
    if response.status() == StatusCode::FORBIDDEN
        && response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("insufficient_scope"))
    {
        state.count(app, ActivityKind::Refused(RefusalReason::Scope));
    } else {
        state.count(app, ActivityKind::Used);
    }
    rate_headers(&mut response, &quota);
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Bearer>().cloned().ok_or_else(missing_token)
    }
}
