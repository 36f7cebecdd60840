//! OAuth 2.0 endpoints: authorization server metadata (RFC 8414) and the
//! token endpoint's client-credentials grant (RFC 6749 §4.4).

use crate::form::{basic_credentials, read_form};
use crate::http_error::{no_store, HttpError};
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keygate::grant::{self, ClientAuthFailure, OAuthError, OAuthErrorCode};
use keygate::secret::ClientSecret;
use keygate::store::{ActorKind, AuditRecord, ClientRecord, IssueError};
use serde_json::json;
use std::net::SocketAddr;

pub fn client_ip(req: &Request) -> Option<String> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

pub async fn metadata(State(state): State<AppState>) -> Result<Response, HttpError> {
    let scopes: Vec<String> = state.store.list_scopes().await?.into_iter().map(|s| s.name).collect();
    let issuer = &state.issuer;
    Ok(Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": scopes,
        "service_documentation": format!("{issuer}/api/v1/openapi.json"),
    }))
    .into_response())
}

/// Authenticates the client of a token request, auditing every failure
/// with its reason while telling the client only `invalid_client`.
pub async fn authenticate_client(
    state: &AppState,
    client_id: &str,
    secret: &str,
    ip: Option<String>,
    now: i64,
) -> Result<ClientRecord, HttpError> {
    let found = if client_id.len() <= 64 { state.store.client_by_client_id(client_id).await? } else { None };
    let failure = match &found {
        None => Err(ClientAuthFailure::UnknownClient),
        Some(c) => c.authenticate(&ClientSecret::from_presented(secret)),
    };
    match (found, failure) {
        (Some(client), Ok(())) => Ok(client),
        (found, Err(reason)) => {
            let mut rec = AuditRecord::new(now, ActorKind::Anonymous, "client.authentication_failed").from_ip(ip);
            if let Some(c) = &found {
                rec.actor_kind = ActorKind::Application;
                rec.actor_id = Some(c.id.0);
                rec.actor_name = Some(c.name.clone());
                rec = rec.on_application(c.id, &c.name);
            }
            let shown_id: String = client_id.chars().take(64).collect();
            rec.details = json!({ "reason": reason.as_str(), "client_id": shown_id });
            if let Err(e) = state.store.record_audit(&rec).await {
                tracing::error!(error = %e, "could not audit a failed client authentication");
            }
            tracing::info!(client_id = %shown_id, reason = reason.as_str(), "client authentication failed");
            Err(HttpError::oauth(OAuthError::invalid_client()))
        }
        (None, Ok(())) => Err(HttpError::oauth(OAuthError::invalid_client())),
    }
}

pub async fn token(State(state): State<AppState>, req: Request) -> Response {
    match issue(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn issue(state: &AppState, req: Request) -> Result<Response, HttpError> {
    let now = crate::now();
    let ip = client_ip(&req);
    let (parts, body) = req.into_parts();
    let basic = basic_credentials(&parts.headers)?;
    let mut form = read_form(&parts.headers, body).await?;
    match form.get("grant_type") {
        None => return Err(HttpError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(HttpError::oauth(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!("grant_type {shown} is not supported; use client_credentials"),
            )));
        }
    }
    let presented =
        grant::select_client_credentials(basic, form.take("client_id"), form.take("client_secret"))
            .map_err(HttpError::oauth)?;
    let client = authenticate_client(state, &presented.client_id, &presented.client_secret, ip, now).await?;
    let scopes = grant::resolve_scopes(form.get("scope"), &client.scopes).map_err(HttpError::oauth)?;
    let issued = match state.store.issue_endpoint_token(&client, scopes, now).await {
        Ok(t) => t,
        Err(IssueError::ClientChanged) => return Err(HttpError::oauth(OAuthError::invalid_client())),
        Err(IssueError::Core(e)) => return Err(e.into()),
    };
    tracing::info!(
        client_id = %client.client_id,
        token_id = %issued.id,
        evicted = issued.evicted,
        "token issued"
    );
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
    Ok(response)
}
