//! OAuth 2.0 endpoints: authorization server metadata (RFC 8414), the token
//! endpoint's client-credentials grant (RFC 6749 §4.4), introspection
//! (RFC 7662) and revocation (RFC 7009).

use crate::form::{basic_credentials, read_form, FormParams};
use crate::http_error::{no_store, HttpError};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keygate::activity::{ActivityKind, RefusalReason};
use keygate::client::ClientRecord;
use keygate::grant::{self, ClientAuthFailure, OAuthError, OAuthErrorCode};
use keygate::model::SecretId;
use keygate::network::ClientAddress;
use keygate::ratelimit::RateDecision;
use keygate::scope::INTROSPECT_SCOPE;
use keygate::secret::{AccessToken, ClientSecret};
use keygate::store::{ActorKind, AuditRecord, IssueError};
use serde_json::json;

/// The client's address as the router resolved it (a trusted proxy's
/// `X-Forwarded-For`, else the peer).
pub fn client_ip(req: &Request) -> Option<String> {
    req.extensions().get::<ClientAddress>().and_then(ClientAddress::text)
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub async fn metadata(State(state): State<AppState>) -> Result<Response, HttpError> {
    let scopes: Vec<String> = state.store.list_scopes().await?.into_iter().map(|s| s.name).collect();
    let issuer = &state.issuer;
    let methods = ["client_secret_basic", "client_secret_post"];
    Ok(Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "response_types_supported": [],
        "scopes_supported": scopes,
        "service_documentation": format!("{issuer}/api/v1/openapi.json"),
    }))
    .into_response())
}

/// The public keys of JWT access tokens (RFC 7517). Caches may keep it
/// for [`JWKS_MAX_AGE_SECONDS`]; a rotated-in key is published twice that
/// long before it signs, so a cached copy always knows the signing key.
///
/// [`JWKS_MAX_AGE_SECONDS`]: keygate::jwt::JWKS_MAX_AGE_SECONDS
pub async fn jwks(State(state): State<AppState>) -> Result<Response, HttpError> {
    let body = keygate::keyring::jwks(&state.store, crate::now()).await?;
    let mut r = Json(body).into_response();
    let cache = format!("public, max-age={}", keygate::jwt::JWKS_MAX_AGE_SECONDS);
    if let Ok(v) = HeaderValue::from_str(&cache) {
        r.headers_mut().insert(axum::http::header::CACHE_CONTROL, v);
    }
    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    Ok(r)
}

/// Adds `X-RateLimit-*` headers describing the hourly quota.
pub fn rate_headers(response: &mut Response, d: &RateDecision) {
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at));
}

/// An identified application whose requests are counted, and where from.
#[derive(Clone, Copy)]
pub struct Metered<'a> {
    pub id: keygate::ApplicationId,
    pub name: &'a str,
    pub per_second: i64,
    pub per_hour: i64,
    pub ip: Option<&'a str>,
}

impl<'a> Metered<'a> {
    pub fn client(c: &'a ClientRecord, ip: Option<&'a str>) -> Self {
        Metered { id: c.id, name: &c.name, per_second: c.rate_per_second, per_hour: c.rate_per_hour, ip }
    }

    pub fn bearer(ctx: &'a keygate::store::TokenContext, ip: Option<&'a str>) -> Self {
        Metered {
            id: ctx.application_id,
            name: &ctx.application_name,
            per_second: ctx.rate_per_second,
            per_hour: ctx.rate_per_hour,
            ip,
        }
    }

    /// An audit record of a failure this application's caller met.
    fn failure(&self, action: keygate::AuditAction, details: serde_json::Value) -> AuditRecord {
        let mut rec = AuditRecord::new(crate::now(), ActorKind::Application, action)
            .on_application(self.id, self.name)
            .from_ip(self.ip.map(str::to_owned));
        rec.actor_id = Some(self.id.0);
        rec.actor_name = Some(self.name.to_owned());
        rec.details = details;
        rec
    }
}

/// Counts one request of an identified application; 429 past its limits,
/// audited (folded: one event a minute per application and limit).
/// On PostgreSQL the counters live in the database, so the limits hold
/// across every instance; on SQLite (one process) they live in memory.
pub async fn count_request(state: &AppState, app: Metered<'_>) -> Result<RateDecision, Response> {
    let (per_second, per_hour) = (app.per_second, app.per_hour);
    let d = match state.store.count_shared_request(app.id, per_second, per_hour).await {
        Ok(Some(d)) => d,
        Ok(None) => state.rate.check(&app.id, per_second, per_hour, now_ms()),
        Err(e) => return Err(HttpError::from(e).into_response()),
    };
    if d.allowed {
        return Ok(d);
    }
    state.count(app.id, ActivityKind::Refused(RefusalReason::RateLimited));
    let (limit, description) = if d.remaining == 0 {
        ("per_hour", format!("the hourly quota of {per_hour} requests is used up"))
    } else {
        ("per_second", format!("more than {per_second} requests in one second"))
    };
    let details = json!({ "limit": limit, "per_second": per_second, "per_hour": per_hour });
    let rec = app.failure(keygate::AuditAction::ApplicationRateLimited, details);
    state.audit_deduplicated(&format!("rate:{}:{limit}", app.id.0), rec).await;
    let mut r = HttpError::RateLimited { retry_after: d.retry_after, description }.into_response();
    rate_headers(&mut r, &d);
    Err(r)
}

/// Authenticates the client of an OAuth request (Basic or body
/// credentials), auditing failures with their reason while telling the
/// client only `invalid_client`. Repeated failures from one address are
/// answered 429 (and no longer audited one by one), but the secret is
/// always checked first: a correct secret is never refused because of
/// someone else's failures.
pub async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &mut FormParams,
    ip: Option<String>,
    now: i64,
) -> Result<(ClientRecord, SecretId), Response> {
    let basic = basic_credentials(headers).map_err(IntoResponse::into_response)?;
    let presented = grant::select_client_credentials(basic, form.take("client_id"), form.take("client_secret"))
        .map_err(|e| HttpError::oauth(e).into_response())?;
    let client_id = presented.client_id.as_str();
    // Longer IDs, or ones with control characters, are never Keygate's.
    let found = if client_id.len() <= 64 && !client_id.chars().any(char::is_control) {
        state.store.client_for_authentication(client_id).await.map_err(|e| HttpError::from(e).into_response())?
    } else {
        None
    };
    let secret = ClientSecret::from_presented(presented.client_secret.clone());
    let outcome = match &found {
        // Hash and compare as for a known client, so both paths cost the same.
        None => {
            std::hint::black_box(unknown_client_digest().matches(&secret.digest()));
            Err(ClientAuthFailure::UnknownClient)
        }
        Some(c) => c.authenticate(&secret, now, ip.as_deref().and_then(|ip| ip.parse().ok())),
    };
    match (found, outcome) {
        (Some(client), Ok(proven)) => {
            state.usage.record_secret(proven, now, ip);
            Ok((client, proven))
        }
        (found, outcome) => {
            let (minute, retry_after) = keygate::ratelimit::failed_auth_window(now_ms());
            let keys = keygate::ratelimit::failed_auth_keys(client_id, ip.as_deref());
            let counted = state
                .store
                .count_failed_client_auth(&keys, minute)
                .await
                .map_err(|e| HttpError::from(e).into_response())?;
            // By what was wrong with the request (the secret is checked
            // even when the address is throttled): a flood of wrong
            // secrets is not the application going over its rate limit.
            let refusal = match &found {
                Some(_) => outcome.err().and_then(RefusalReason::of_client_failure),
                None => None,
            };
            match (&found, refusal) {
                (Some(c), Some(reason)) => state.count(c.id, ActivityKind::Refused(reason)),
                _ => state.count_unattributed_refusal("unknown_client"),
            }
            if !counted {
                return Err(HttpError::RateLimited {
                    retry_after,
                    description: "too many failed client authentications from this address; wait before trying again"
                        .into(),
                }
                .into_response());
            }
            let reason = outcome.err().unwrap_or(ClientAuthFailure::UnknownClient);
            let shown_id = grant::client_id_for_audit(client_id);
            let mut rec = AuditRecord::new(now, ActorKind::Anonymous, keygate::AuditAction::ClientAuthenticationFailed)
                .from_ip(ip.clone());
            if let Some(c) = &found {
                rec.actor_kind = ActorKind::Application;
                rec.actor_id = Some(c.id.0);
                rec.actor_name = Some(c.name.clone());
                rec = rec.on_application(c.id, &c.name);
            }
            rec.details = json!({ "reason": reason.as_str(), "client_id": shown_id });
            // Unknown client IDs from one address fold into one event a
            // minute (the first ID named, the rest counted): a scan of
            // made-up IDs writes no more than a repeated wrong secret, so
            // both cost the same and the log cannot be flooded.
            let key = match &found {
                Some(_) => format!("auth:{shown_id}:{}:{}", ip.as_deref().unwrap_or("-"), reason.as_str()),
                None => format!("auth:unknown:{}", ip.as_deref().unwrap_or("-")),
            };
            state.audit_deduplicated(&key, rec).await;
            // Debug formatting escapes control characters: a presented
            // client ID cannot forge or break log lines.
            tracing::info!(client_id = ?shown_id, reason = reason.as_str(), "client authentication failed");
            Err(HttpError::oauth(OAuthError::invalid_client()).into_response())
        }
    }
}

/// A digest no secret matches, compared against when the client is unknown.
fn unknown_client_digest() -> &'static keygate::secret::SecretDigest {
    static DIGEST: std::sync::OnceLock<keygate::secret::SecretDigest> = std::sync::OnceLock::new();
    DIGEST.get_or_init(|| ClientSecret::generate().digest())
}

pub async fn token(State(state): State<AppState>, req: Request) -> Response {
    issue(&state, req).await.unwrap_or_else(|r| r)
}

async fn issue(state: &AppState, req: Request) -> Result<Response, Response> {
    let now = crate::now();
    let ip = client_ip(&req);
    let (parts, body) = req.into_parts();
    // Parse the Basic header first so a malformed one is invalid_request
    // whatever the body says.
    basic_credentials(&parts.headers).map_err(IntoResponse::into_response)?;
    let mut form = read_form(&parts.headers, body).await.map_err(IntoResponse::into_response)?;
    match form.get("grant_type") {
        None => return Err(HttpError::invalid_request("grant_type is required").into_response()),
        Some("client_credentials") => {}
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(HttpError::oauth(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!("grant_type {shown} is not supported; use client_credentials"),
            ))
            .into_response());
        }
    }
    let (client, proven) = authenticate_client(state, &parts.headers, &mut form, ip.clone(), now).await?;
    let metered = Metered::client(&client, ip.as_deref());
    let quota = count_request(state, metered).await?;
    let with_quota = |e: HttpError| {
        let mut r = e.into_response();
        rate_headers(&mut r, &quota);
        r
    };
    // RFC 8707 `resource` (repeatable) and `audience` name the resource
    // servers the token is for.
    let mut targets = form.take_all("resource");
    targets.extend(form.take("audience"));
    let known = if targets.iter().any(|t| !client.scope_servers.iter().any(|(_, server)| server == t)) {
        state.store.resource_server_identifiers().await.map_err(|e| with_quota(e.into()))?
    } else {
        Vec::new()
    };
    let resolved = grant::resolve_grant(form.get("scope"), &targets, &client.scopes, &client.scope_servers, |t| {
        known.iter().any(|k| k == t)
    });
    // RFC 9068 §2.2: a JWT access token names its audience; one that
    // names none would be refused by every verifier.
    let resolved = resolved.and_then(|(scopes, audience)| match client.token_format {
        keygate::TokenFormat::Jwt if audience.is_empty() => Err(OAuthError::new(
            OAuthErrorCode::InvalidTarget,
            "a JWT access token needs an audience, and none of these scopes belongs to a resource server; \
             attach the scopes to one",
        )),
        _ => Ok((scopes, audience)),
    });
    let (scopes, audience) = match resolved {
        Ok(granted) => granted,
        Err(e) => {
            state.count(client.id, ActivityKind::Refused(RefusalReason::Scope));
            // What was asked, bounded (the audit record bounds it again).
            let requested: String = form.get("scope").unwrap_or("").chars().take(200).collect();
            let resources: Vec<String> = targets.iter().take(5).map(|t| t.chars().take(200).collect()).collect();
            let error = e.code.as_str();
            let details = json!({ "error": error, "requested": requested, "resources": resources });
            let rec = metered.failure(keygate::AuditAction::ApplicationScopeRefused, details);
            // One event a minute per application and error, whatever was
            // asked (the first request's words kept, the rest counted):
            // varying the text cannot multiply audit rows.
            let key = format!("scope:{}:{error}", client.id.0);
            state.audit_deduplicated(&key, rec).await;
            return Err(with_quota(HttpError::oauth(e)));
        }
    };
    let mut prepared = match client.token_format {
        keygate::TokenFormat::Opaque => keygate::store::TokenToIssue::opaque(scopes, audience),
        keygate::TokenFormat::Jwt => {
            state.keyring.sign_access_token(&client, scopes, audience, now).await.map_err(|e| with_quota(e.into()))?
        }
    };
    prepared.proven_by = Some(proven);
    let issued = match state.store.issue_prepared_token(&client, prepared, now).await {
        Ok(t) => t,
        Err(IssueError::ClientChanged) => return Err(with_quota(HttpError::oauth(OAuthError::invalid_client()))),
        Err(IssueError::Core(e)) => return Err(with_quota(e.into())),
    };
    tracing::info!(client_id = %client.client_id, token_id = %issued.id, evicted = issued.evicted, "token issued");
    if issued.evicted > 0 {
        // Each eviction is one event, folded a minute at a time per application.
        let rec = metered.failure(keygate::AuditAction::TokenEvicted, json!({ "cap": issued.cap }));
        for _ in 0..issued.evicted {
            state.audit_deduplicated(&format!("evict:{}", client.id.0), rec.clone()).await;
        }
    }
    state.count(client.id, ActivityKind::Issued);
    crate::metrics::token_issued(client.token_format);
    let mut response = (
        StatusCode::OK,
        Json(json!({
            "access_token": issued.token.expose(),
            "token_type": "Bearer",
            "expires_in": issued.expires_at - now,
            "scope": issued.scopes.to_string(),
        })),
    )
        .into_response();
    no_store(&mut response);
    rate_headers(&mut response, &quota);
    Ok(response)
}

/// RFC 7662. An application introspects its own tokens; a resource
/// server's introspection client, the tokens meant for that server (whose
/// audience includes it); one allowed the `introspect` scope, every
/// application's. Anything else (unknown, expired, revoked, foreign) is
/// `{"active": false}`.
pub async fn introspect(State(state): State<AppState>, req: Request) -> Response {
    let now = crate::now();
    let ip = client_ip(&req);
    let (parts, body) = req.into_parts();
    let result: Result<Response, Response> = async {
        let mut form = read_form(&parts.headers, body).await.map_err(IntoResponse::into_response)?;
        let (client, _) = authenticate_client(&state, &parts.headers, &mut form, ip.clone(), now).await?;
        let quota = count_request(&state, Metered::client(&client, ip.as_deref())).await?;
        let Some(token) = form.take("token") else {
            let mut r = HttpError::invalid_request("the token parameter is required").into_response();
            rate_headers(&mut r, &quota);
            return Err(r);
        };
        let checked = state.store.check_token(&AccessToken::from_presented(token), now).await;
        let body = match checked {
            Ok(Ok(ctx)) if may_introspect(&client, &ctx) => {
                state.usage.record(ctx.token_id, now, None);
                state.count(ctx.application_id, ActivityKind::Used);
                let scope = match shown_scopes(&state, &client, &ctx).await {
                    Ok(scope) => scope,
                    Err(e) => {
                        let mut r = HttpError::from(e).into_response();
                        rate_headers(&mut r, &quota);
                        return Err(r);
                    }
                };
                json!({
                    "active": true,
                    "client_id": ctx.client_id,
                    "scope": scope,
                    "exp": ctx.expires_at,
                    "iat": ctx.issued_at,
                    "token_type": "Bearer",
                    "sub": ctx.client_id,
                    "aud": ctx.audience,
                    "iss": state.issuer,
                })
            }
            Ok(_) => json!({ "active": false }),
            Err(e) => {
                let mut r = HttpError::from(e).into_response();
                rate_headers(&mut r, &quota);
                return Err(r);
            }
        };
        let mut r = Json(body).into_response();
        no_store(&mut r);
        rate_headers(&mut r, &quota);
        Ok(r)
    }
    .await;
    result.unwrap_or_else(|r| r)
}

/// Whether `client` may see the details of the token `ctx`.
fn may_introspect(client: &ClientRecord, ctx: &keygate::store::TokenContext) -> bool {
    ctx.application_id == client.id
        || client.scopes.contains(INTROSPECT_SCOPE)
        || client.introspects.as_ref().is_some_and(|server| ctx.audience.contains(server))
}

/// The scopes an introspecting client is told: all of them, unless it sees
/// the token only as a resource server's introspection client; then just
/// the scopes that belong to its server.
async fn shown_scopes(
    state: &AppState,
    client: &ClientRecord,
    ctx: &keygate::store::TokenContext,
) -> Result<String, keygate::CoreError> {
    let Some(server) = client.introspects.as_ref() else { return Ok(ctx.scopes.to_string()) };
    if ctx.application_id == client.id || client.scopes.contains(INTROSPECT_SCOPE) {
        return Ok(ctx.scopes.to_string());
    }
    let owners = state.store.scope_servers().await?;
    let shown: Vec<&str> = ctx
        .scopes
        .iter()
        .map(|s| s.as_str())
        .filter(|s| owners.iter().any(|(scope, owner)| scope == s && owner == server))
        .collect();
    Ok(shown.join(" "))
}

/// RFC 7009. An application revokes only its own tokens; an unknown or
/// foreign token gets 200 all the same, so the answer reveals nothing.
pub async fn revoke(State(state): State<AppState>, req: Request) -> Response {
    let now = crate::now();
    let ip = client_ip(&req);
    let (parts, body) = req.into_parts();
    let result: Result<Response, Response> = async {
        let mut form = read_form(&parts.headers, body).await.map_err(IntoResponse::into_response)?;
        let (client, _) = authenticate_client(&state, &parts.headers, &mut form, ip.clone(), now).await?;
        let quota = count_request(&state, Metered::client(&client, ip.as_deref())).await?;
        let Some(token) = form.take("token") else {
            let mut r = HttpError::invalid_request("the token parameter is required").into_response();
            rate_headers(&mut r, &quota);
            return Err(r);
        };
        let owned = match state.store.check_token(&AccessToken::from_presented(token), now).await {
            Ok(Ok(ctx)) if ctx.application_id == client.id => Some(ctx),
            Ok(_) => None,
            Err(e) => return Err(HttpError::from(e).into_response()),
        };
        if let Some(ctx) = owned {
            keygate::usecase::tokens::revoke_own_token(&state.store, &client, &ctx, now, ip)
                .await
                .map_err(|e| HttpError::from(e).into_response())?;
        }
        let mut r = StatusCode::OK.into_response();
        no_store(&mut r);
        rate_headers(&mut r, &quota);
        Ok(r)
    }
    .await;
    result.unwrap_or_else(|r| r)
}
