//! The bearer-protected management API, `/api/v1`. Every route is declared
//! with `utoipa::path` and registered through `utoipa_axum::routes!`, so the
//! OpenAPI document at `/api/v1/openapi.json` is generated from the same
//! declarations that build the router.

use crate::bearer::{require_bearer, Bearer};
use crate::http_error::HttpError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keygate::grant::{OAuthError, OAuthErrorCode};
use keygate::store::{ApplicationQuery, ApplicationSort, AuditQuery};
use keygate::{
    ApplicationId, ApplicationSettings, ApplicationView, AuditEventView, ScopeSet, TokenId, TokenSource, TokenState,
    TokenView,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const MAX_JSON_BYTES: usize = 64 * 1024;

// ------------------------------------------------------------ extractors

/// A JSON body: `application/json`, at most 64 KiB, unknown fields refused
/// (the DTOs deny them), every refusal a 400 with a JSON error body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(HttpError::bad_request("the request body must be application/json"));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BYTES).await.map_err(|e| {
            match crate::idle_io::body_read_failure(&e) {
                StatusCode::REQUEST_TIMEOUT => HttpError::api(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request",
                    "the request body did not arrive in time",
                ),
                _ => HttpError::api(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    format!("the request body is larger than {MAX_JSON_BYTES} bytes"),
                ),
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| HttpError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters, refused with a JSON 400 when malformed.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(ApiQuery)
            .map_err(|e| HttpError::bad_request(format!("invalid query parameters: {e}")))
    }
}

/// The highest page number (keeps the row offset far from overflowing).
const MAX_PAGE: i64 = 1_000_000;

/// Paging parameters within the ranges the OpenAPI document states.
fn paging(page: Option<i64>, per_page: Option<i64>, max_per_page: i64) -> Result<(i64, i64), HttpError> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(HttpError::Api {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: format!("page is between 1 and {MAX_PAGE}"),
            field: Some("page"),
        });
    }
    if !(1..=max_per_page).contains(&per_page) {
        return Err(HttpError::Api {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: format!("per_page is between 1 and {max_per_page}"),
            field: Some("per_page"),
        });
    }
    Ok((page, per_page))
}

fn parse_id(raw: &str, what: &str) -> Result<i64, HttpError> {
    raw.parse::<i64>().map_err(|_| HttpError::not_found(what))
}

// ------------------------------------------------------------------ DTOs

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationPage {
    pub items: Vec<ApplicationView>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListApplicationsParams {
    /// Substring of the name or client ID.
    #[param(max_length = 200)]
    pub search: Option<String>,
    /// `name` (default) or `newest`.
    #[param(pattern = "^(name|newest)$")]
    pub sort: Option<String>,
    /// From 1 to 1000000; a page past the end is empty.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApplication {
    /// 1 to 100 characters, no control characters, unique.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub notes: String,
    /// Names from the scope catalogue, each held by the calling token.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[schema(minimum = 60, maximum = 86400)]
    pub token_ttl_seconds: Option<i64>,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_tokens: Option<i64>,
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_per_second: Option<i64>,
    #[schema(minimum = 1, maximum = 100000000)]
    pub rate_per_hour: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApplication {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(max_length = 4000)]
    pub notes: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// `false` revokes every token of the application; `true` later does
    /// not bring them back.
    pub enabled: Option<bool>,
    #[schema(minimum = 60, maximum = 86400)]
    pub token_ttl_seconds: Option<i64>,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_tokens: Option<i64>,
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_per_second: Option<i64>,
    #[schema(minimum = 1, maximum = 100000000)]
    pub rate_per_hour: Option<i64>,
}

/// The only response that shows a client secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationWithSecret {
    pub application: ApplicationView,
    pub client_secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegeneratedSecret {
    pub client_id: String,
    pub client_secret: String,
    /// Tokens revoked by the regeneration.
    pub tokens_revoked: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenItem {
    #[serde(flatten)]
    pub token: TokenView,
    pub state: TokenState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenItem>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// A subset of the application's allowed scopes (default: none).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime in seconds; give this or `expires_at`.
    pub expires_in: Option<i64>,
    /// Unix seconds; give this or `expires_in`.
    pub expires_at: Option<i64>,
}

/// The only response that shows a minted token.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintedToken {
    pub token: TokenView,
    pub access_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventView>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub application_id: Option<i64>,
    /// An action (`token.refused`) or a family (`token`); anything else is 400.
    #[param(max_length = 100)]
    pub action: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// From 1 to 1000000; a page past the end is empty.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub error_description: String,
}

// ------------------------------------------------------------- OpenAPI doc

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers every protected route can give besides its own: no or a bad
/// token, a missing scope, the rate limit, malformed input.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for op in ops.into_iter().flatten() {
                let r = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    r.entry(status.to_owned()).or_insert_with(|| error(description).into());
                };
                add("400", "Malformed input: the body, a parameter or a field (named in `field`)");
                add("401", "No bearer token, or an unknown, expired or revoked one (`invalid_token`)");
                add("403", "The token lacks a scope this route or this application needs (`insufficient_scope`)");
                add("404", "No such resource");
                add("409", "Refused by a rule, e.g. a token for a disabled application");
                add("413", "The body is larger than 64 KiB");
                add("429", "The application's per-second or hourly rate limit; see `Retry-After`");
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Keygate API", version = "1", description = "Manage API applications, tokens and the audit log with bearer tokens from /oauth2/token."),
    modifiers(&BearerSecurity),
    components(schemas(ErrorBody)),
    security(("bearer" = []))
)]
struct ApiDoc;

// --------------------------------------------------------------- scope rule

/// An API caller cannot hand out scopes it does not hold itself, so a token
/// with `applications:write` cannot widen its own application's reach.
fn check_grantable(caller: &Bearer, scopes: &ScopeSet) -> Result<(), HttpError> {
    let beyond = scopes.not_in(&caller.0.scopes);
    if beyond.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = beyond.iter().map(|s| s.as_str()).collect();
    Err(HttpError::Api {
        status: StatusCode::FORBIDDEN,
        code: "insufficient_scope",
        description: format!("the calling token does not hold, so cannot grant: {}", names.join(", ")),
        field: Some("scopes"),
    })
}

/// An API caller may act on an application only when that application's
/// allowed scopes are all in the calling token: otherwise a token with
/// `applications:write` could take over a more powerful application by
/// regenerating its secret or minting a token for it. Refusals are audited.
async fn check_ceiling(
    state: &AppState,
    caller: &Bearer,
    target: &ApplicationView,
    operation: &str,
) -> Result<(), HttpError> {
    // A stored scope list that does not parse is refused, never read as empty.
    let target_scopes = ScopeSet::from_names(&target.scopes).map_err(|e| {
        tracing::error!(application = target.id.0, error = %e, "stored scopes do not parse");
        HttpError::Internal
    })?;
    let beyond = target_scopes.not_in(&caller.0.scopes);
    if beyond.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = beyond.iter().map(|s| s.as_str()).collect();
    let mut rec = caller
        .audit(crate::now(), keygate::AuditAction::ApplicationAccessRefused)
        .on_application(target.id, &target.name);
    rec.details["reason"] = json!("scope_ceiling");
    rec.details["operation"] = json!(operation);
    rec.details["missing_scopes"] = json!(names);
    audit(state, rec).await;
    let description = format!(
        "the application holds scopes the calling token does not ({}); a token may act only on applications \
         whose scopes it holds itself",
        names.join(", ")
    );
    Err(HttpError::oauth(OAuthError::new(OAuthErrorCode::InsufficientScope, description.clone())).with_challenge(
        crate::bearer::challenge(Some(OAuthErrorCode::InsufficientScope), &description, Some(&names.join(" "))),
    ))
}

fn scope_set(names: &[String]) -> Result<ScopeSet, HttpError> {
    ScopeSet::from_names(names).map_err(|m| HttpError::Api {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        description: m,
        field: Some("scopes"),
    })
}

async fn audit(state: &AppState, rec: keygate::store::AuditRecord) {
    if let Err(e) = state.store.record_audit(&rec).await {
        tracing::error!(error = %e, action = %rec.action, "could not record an audit event");
    }
}

// ---------------------------------------------------------------- handlers

/// The calling application and the token's scopes and expiry.
#[utoipa::path(get, path = "/api/v1/me", tag = "me",
    responses((status = 200, description = "The caller", body = Object), (status = 401, body = ErrorBody)))]
async fn me(Bearer(ctx): Bearer) -> Json<Value> {
    Json(json!({
        "application": { "id": ctx.application_id, "client_id": ctx.client_id, "name": ctx.application_name },
        "token": {
            "id": ctx.token_id,
            "name": ctx.token_name,
            "scopes": ctx.scopes.names(),
            "scope": ctx.scopes.to_string(),
            "issued_at": ctx.issued_at,
            "expires_at": ctx.expires_at,
        }
    }))
}

/// List applications (scope `applications:read`).
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", params(ListApplicationsParams),
    responses((status = 200, body = ApplicationPage), (status = 403, body = ErrorBody)))]
async fn list_applications(
    State(state): State<AppState>,
    caller: Bearer,
    ApiQuery(p): ApiQuery<ListApplicationsParams>,
) -> Result<Json<ApplicationPage>, HttpError> {
    caller.require_scope("applications:read")?;
    let sort = match p.sort.as_deref() {
        None | Some("name") => ApplicationSort::Name,
        Some("newest") => ApplicationSort::Newest,
        Some(other) => return Err(HttpError::bad_request(format!("sort must be name or newest, not {other}"))),
    };
    let (page, per_page) = paging(p.page, p.per_page, 200)?;
    if p.search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(HttpError::bad_request("search has at most 200 characters"));
    }
    let q = ApplicationQuery { search: p.search, sort, page, per_page };
    let page = state.store.list_applications(&q, crate::now()).await?;
    Ok(Json(ApplicationPage { items: page.items, total: page.total, page: page.page, per_page: page.per_page }))
}

/// Create an application; the client secret is in this response only
/// (scope `applications:write`).
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", request_body = CreateApplication,
    responses((status = 201, body = ApplicationWithSecret), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_application(
    State(state): State<AppState>,
    caller: Bearer,
    ApiJson(body): ApiJson<CreateApplication>,
) -> Result<Response, HttpError> {
    caller.require_scope("applications:write")?;
    let scopes = scope_set(&body.scopes)?;
    check_grantable(&caller, &scopes)?;
    let mut s = ApplicationSettings::new(body.name);
    s.notes = body.notes;
    s.scopes = scopes;
    s.token_ttl_seconds = body.token_ttl_seconds.unwrap_or(s.token_ttl_seconds);
    s.max_tokens = body.max_tokens.unwrap_or(s.max_tokens);
    s.rate_per_second = body.rate_per_second.unwrap_or(s.rate_per_second);
    s.rate_per_hour = body.rate_per_hour.unwrap_or(s.rate_per_hour);
    let now = crate::now();
    let (app, secret) = state.store.create_application(s, now).await?;
    audit(&state, caller.audit(now, keygate::AuditAction::ApplicationCreated).on_application(app.id, &app.name)).await;
    let mut r = (
        StatusCode::CREATED,
        Json(ApplicationWithSecret { application: app, client_secret: secret.expose().to_owned() }),
    )
        .into_response();
    crate::http_error::no_store(&mut r);
    Ok(r)
}

/// One application (scope `applications:read`).
#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications", params(("id" = i64, Path)),
    responses((status = 200, body = ApplicationView), (status = 404, body = ErrorBody)))]
async fn get_application(
    State(state): State<AppState>,
    caller: Bearer,
    Path(id): Path<String>,
) -> Result<Json<ApplicationView>, HttpError> {
    caller.require_scope("applications:read")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let app = state.store.require_application(id, crate::now()).await?;
    Ok(Json(app))
}

/// Change an application; absent fields keep their value (scope `applications:write`).
#[utoipa::path(patch, path = "/api/v1/applications/{id}", tag = "applications", params(("id" = i64, Path)), request_body = UpdateApplication,
    responses((status = 200, body = ApplicationView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_application(
    State(state): State<AppState>,
    caller: Bearer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateApplication>,
) -> Result<Json<ApplicationView>, HttpError> {
    caller.require_scope("applications:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let now = crate::now();
    let current = state.store.require_application(id, now).await?;
    check_ceiling(&state, &caller, &current, "update").await?;
    let mut settings = ApplicationSettings::of(&current);
    if let Some(names) = &body.scopes {
        let set = scope_set(names)?;
        check_grantable(&caller, &set)?;
        settings.scopes = set;
    }
    settings.name = body.name.unwrap_or(settings.name);
    settings.notes = body.notes.unwrap_or(settings.notes);
    settings.token_ttl_seconds = body.token_ttl_seconds.unwrap_or(settings.token_ttl_seconds);
    settings.max_tokens = body.max_tokens.unwrap_or(settings.max_tokens);
    settings.rate_per_second = body.rate_per_second.unwrap_or(settings.rate_per_second);
    settings.rate_per_hour = body.rate_per_hour.unwrap_or(settings.rate_per_hour);
    let enabled = body.enabled.unwrap_or(current.enabled);
    let app = state.store.update_application(id, settings, enabled, now).await?;
    audit(&state, caller.audit(now, keygate::AuditAction::ApplicationUpdated).on_application(app.id, &app.name)).await;
    Ok(Json(app))
}

/// Delete an application and its tokens (scope `applications:write`).
#[utoipa::path(delete, path = "/api/v1/applications/{id}", tag = "applications", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_application(
    State(state): State<AppState>,
    caller: Bearer,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    caller.require_scope("applications:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let now = crate::now();
    let current = state.store.require_application(id, now).await?;
    check_ceiling(&state, &caller, &current, "delete").await?;
    let name = state.store.delete_application(id).await?;
    audit(&state, caller.audit(now, keygate::AuditAction::ApplicationDeleted).on_application(id, &name)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Regenerate the client secret; every token of the application is revoked
/// and the new secret is in this response only (scope `applications:write`).
#[utoipa::path(post, path = "/api/v1/applications/{id}/secret", tag = "applications", params(("id" = i64, Path)),
    responses((status = 200, body = RegeneratedSecret), (status = 404, body = ErrorBody)))]
async fn regenerate_secret(
    State(state): State<AppState>,
    caller: Bearer,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    caller.require_scope("applications:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let now = crate::now();
    let app = state.store.require_application(id, now).await?;
    check_ceiling(&state, &caller, &app, "regenerate_secret").await?;
    let (secret, revoked) = state.store.regenerate_secret(id, now).await?;
    let mut rec = caller.audit(now, keygate::AuditAction::ApplicationSecretRegenerated).on_application(id, &app.name);
    rec.details["tokens_revoked"] = json!(revoked);
    audit(&state, rec).await;
    let mut r = Json(RegeneratedSecret {
        client_id: app.client_id,
        client_secret: secret.expose().to_owned(),
        tokens_revoked: revoked,
    })
    .into_response();
    crate::http_error::no_store(&mut r);
    Ok(r)
}

/// The tokens of an application, newest first (scope `tokens:read`).
#[utoipa::path(get, path = "/api/v1/applications/{id}/tokens", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 200, body = TokenList), (status = 404, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Bearer,
    Path(id): Path<String>,
) -> Result<Json<TokenList>, HttpError> {
    caller.require_scope("tokens:read")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let now = crate::now();
    let app = state.store.require_application(id, now).await?;
    check_ceiling(&state, &caller, &app, "list_tokens").await?;
    let items = state
        .store
        .list_tokens(id)
        .await?
        .into_iter()
        .map(|mut t| {
            // Uses not yet flushed still count as the latest use.
            if let Some(at) = state.usage.pending_for(t.id) {
                t.last_used_at = Some(t.last_used_at.map_or(at, |db| db.max(at)));
            }
            TokenItem { state: t.state(now), token: t }
        })
        .collect();
    Ok(Json(TokenList { items }))
}

/// Mint a named token; the token is in this response only (scope `tokens:write`).
#[utoipa::path(post, path = "/api/v1/applications/{id}/tokens", tag = "tokens", params(("id" = i64, Path)), request_body = MintToken,
    responses((status = 201, body = MintedToken), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mint_token(
    State(state): State<AppState>,
    caller: Bearer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MintToken>,
) -> Result<Response, HttpError> {
    caller.require_scope("tokens:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let now = crate::now();
    let app = state.store.require_application(id, now).await?;
    check_ceiling(&state, &caller, &app, "mint_token").await?;
    let scopes = scope_set(&body.scopes)?;
    check_grantable(&caller, &scopes)?;
    let expires_at = match (body.expires_in, body.expires_at) {
        (Some(secs), None) => now.saturating_add(secs),
        (None, Some(at)) => at,
        _ => {
            return Err(HttpError::Api {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                description: "give exactly one of expires_in and expires_at".into(),
                field: Some("expires_at"),
            })
        }
    };
    let issued = state.store.mint_named_token(id, &body.name, scopes, expires_at, TokenSource::Api, now).await?;
    let mut rec = caller.audit(now, keygate::AuditAction::TokenMinted).on_application(id, &app.name);
    rec.details["minted_token_id"] = json!(issued.id.0);
    rec.details["name"] = json!(body.name.trim());
    audit(&state, rec).await;
    let token = state.store.token(issued.id).await?.ok_or_else(|| HttpError::not_found("token"))?;
    let mut r = (StatusCode::CREATED, Json(MintedToken { token, access_token: issued.token.expose().to_owned() }))
        .into_response();
    crate::http_error::no_store(&mut r);
    Ok(r)
}

/// Revoke a token (scope `tokens:write`). Revoking a revoked token is 204 too.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Bearer,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    caller.require_scope("tokens:write")?;
    let id = TokenId(parse_id(&id, "token")?);
    let now = crate::now();
    let token = state.store.token(id).await?.ok_or_else(|| HttpError::not_found("token"))?;
    let app = state.store.require_application(token.application_id, now).await?;
    check_ceiling(&state, &caller, &app, "revoke_token").await?;
    if state.store.revoke_token(id, "revoked_via_api", now).await? {
        let name = app.name.clone();
        let mut rec = caller.audit(now, keygate::AuditAction::TokenRevoked).on_application(token.application_id, &name);
        rec.details["revoked_token_id"] = json!(id.0);
        audit(&state, rec).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Audit events, newest first (scope `audit:read`).
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
async fn list_audit_events(
    State(state): State<AppState>,
    caller: Bearer,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, HttpError> {
    caller.require_scope("audit:read")?;
    let (page, per_page) = paging(p.page, p.per_page, 500)?;
    if let Some(action) = p.action.as_deref().filter(|a| !a.is_empty()) {
        if !keygate::AuditAction::ALL.iter().any(|a| a.matches(action)) {
            let known: Vec<&str> = keygate::AuditAction::ALL.iter().map(|a| a.as_str()).collect();
            return Err(HttpError::Api {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                description: format!("unknown action; use a family or one of: {}", known.join(", ")),
                field: Some("action"),
            });
        }
    }
    let q = AuditQuery {
        application_id: p.application_id.map(ApplicationId),
        action: p.action.filter(|a| !a.is_empty()),
        since: p.since,
        until: p.until,
        page,
        per_page,
    };
    let page = state.store.list_audit_events(&q).await?;
    Ok(Json(AuditPage { items: page.items, total: page.total, page: page.page, per_page: page.per_page }))
}

/// The protected routes and their OpenAPI document, built together.
pub fn protected() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(list_applications, create_application))
        .routes(routes!(get_application, update_application, delete_application))
        .routes(routes!(regenerate_secret))
        .routes(routes!(list_tokens, mint_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_audit_events))
        .split_for_parts();
    // After the routes: the modifier walks the operations they declared.
    CommonResponses.modify(&mut openapi);
    (router, openapi)
}

/// `/api/v1`: the protected routes behind the bearer middleware, and the
/// public OpenAPI document.
pub fn routes(state: &AppState) -> Router<AppState> {
    let (protected, openapi) = protected();
    let document = openapi.to_json().unwrap_or_else(|_| "{}".into());
    protected.route_layer(axum::middleware::from_fn_with_state(state.clone(), require_bearer)).route(
        "/api/v1/openapi.json",
        get(move || {
            let document = document.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], Body::from(document)) }
        }),
    )
}
