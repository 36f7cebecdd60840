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
use keygate::store::{ApplicationQuery, ApplicationSort, ApplicationStatus, AuditQuery};
use keygate::usecase::applications::{self, ApplicationChange};
use keygate::usecase::tokens::{self, MintRequest};
use keygate::usecase::{resource_servers, scopes, Caller};
use keygate::{
    ApplicationId, ApplicationSettings, ApplicationView, AuditEventView, DashboardStats, ResourceServerId,
    ResourceServerView, ScopeSet, ScopeView, TokenExpiry, TokenFormat, TokenId, TokenState, TokenView,
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
        // Every body is an object: serde would also read a struct from an
        // array (`[null, null]`), which no client means.
        if !bytes.trim_ascii_start().starts_with(b"{") {
            return Err(HttpError::bad_request("the request body must be a JSON object"));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| HttpError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// An optional JSON body: none at all is `None`; anything else is read as
/// [`ApiJson`] reads it.
pub struct OptionalApiJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_empty = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
        let untyped = req.headers().get(header::CONTENT_TYPE).is_none();
        if declared_empty || untyped {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_JSON_BYTES)
                .await
                .map_err(|_| HttpError::bad_request("the request body could not be read"))?;
            if bytes.is_empty() {
                return Ok(OptionalApiJson(None));
            }
            let req = Request::from_parts(parts, Body::from(bytes));
            return ApiJson::from_request(req, state).await.map(|ApiJson(v)| OptionalApiJson(Some(v)));
        }
        ApiJson::from_request(req, state).await.map(|ApiJson(v)| OptionalApiJson(Some(v)))
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
    /// `name` (default; natural order, "job-2" before "job-10"), `newest`,
    /// `last_used` (the latest use of any of its tokens or secrets; never
    /// used last) or `active_tokens` (most first).
    #[param(pattern = "^(name|newest|last_used|active_tokens)$")]
    pub sort: Option<String>,
    /// `any` (default), `enabled`, `disabled`, `never_used` (neither a
    /// token nor a secret of it ever used) or `dormant` (enabled, and neither created nor used
    /// within the server's `--dormant-after-days`).
    #[param(pattern = "^(any|enabled|disabled|never_used|dormant)$")]
    pub status: Option<String>,
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
    /// What the token endpoint issues (default `opaque`).
    pub token_format: Option<TokenFormat>,
    /// Identifier of the resource server whose tokens it may introspect.
    pub introspects: Option<String>,
    /// CIDR networks its secret and tokens may be used from (empty: anywhere).
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

/// `null` and absent told apart: `Some(None)` for an explicit null.
fn explicit_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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
    pub token_format: Option<TokenFormat>,
    /// A resource server's identifier, or `null` for none.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<String>)]
    pub introspects: Option<Option<String>>,
    /// CIDR networks; `[]` allows anywhere again.
    pub allowed_networks: Option<Vec<String>>,
}

/// An application after a change, with warnings about what the change
/// will do (such as an allowlist that shuts out the caller itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdatedApplication {
    #[serde(flatten)]
    pub application: ApplicationView,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How to replace the secret; no body at all means now, revoking every token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateSecretBody {
    /// Keep the previous secret working this many seconds (3600 to 2592000).
    #[schema(minimum = 3600, maximum = 2592000)]
    pub previous_secret_valid_for: Option<i64>,
    /// Revoke every token now (default `true`); `false` lets them run to their expiry.
    pub revoke_tokens: Option<bool>,
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
    pub secret_id: keygate::SecretId,
    /// Until when the previous secret keeps working (with an overlap).
    pub previous_secret_expires_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenItem {
    #[serde(flatten)]
    pub token: TokenView,
    pub state: TokenState,
}

/// One page of an application's tokens, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenItem>,
    /// How many tokens the application has (every kind and state).
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTokensParams {
    /// From 1 to 1000000; a page past the end is empty.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<i64>,
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

/// A new expiry for a named token; give `expires_in` or `expires_at`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendToken {
    /// Lifetime from now in seconds.
    pub expires_in: Option<i64>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

/// A rotation: the new token's expiry (default: as long as the old one was
/// made to live), and how long the old value keeps working.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    pub expires_in: Option<i64>,
    pub expires_at: Option<i64>,
    /// Seconds the previous value keeps working (0–2592000, default 0:
    /// revoked at once); never past its own expiry.
    pub previous_valid_for: Option<i64>,
}

/// The new token (shown in this response only) and the one it replaced.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedToken {
    pub token: TokenView,
    pub access_token: String,
    pub previous: TokenView,
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
    /// Part of an application's name or client ID (case-insensitive): its
    /// events, and those of deleted applications whose name matched (as
    /// the console's audit log filters).
    #[param(max_length = 200)]
    pub application: Option<String>,
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
pub struct ScopeList {
    pub items: Vec<ScopeView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScope {
    /// `resource:action` style: lowercase letters, digits and `: _ - .`, at most 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[schema(min_length = 1, max_length = 500)]
    pub description: String,
    /// Identifier of the resource server it belongs to.
    pub resource_server: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateScope {
    /// Identifier of the resource server it belongs to, or `null` for none.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<String>, required = true)]
    pub resource_server: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceServerList {
    pub items: Vec<ResourceServerView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<keygate::WebhookView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://` or `http://` (a private address is fine).
    #[schema(max_length = 2000)]
    pub url: String,
    /// Audit actions (`token.revoked`), families (`token`) and alerts
    /// (`token.expiring`, `secret.expiring`, `application.dormant`).
    pub events: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// The only response that shows a webhook's signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: keygate::WebhookView,
    /// `whsec_…`: verify each delivery's `webhook-signature` with it.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// A disabled webhook receives nothing and keeps its queue waiting.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<keygate::DeliveryView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// 1 to 200, default 50: the latest deliveries.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedDelivery {
    pub delivery_id: keygate::DeliveryId,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceServer {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// An absolute URI without a fragment; the audience of its tokens. Fixed once created.
    #[schema(min_length = 1, max_length = 200)]
    pub identifier: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResourceServer {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// The overview's counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub applications: i64,
    pub enabled_applications: i64,
    pub active_tokens: i64,
    pub audit_events_24h: i64,
}

impl From<DashboardStats> for Stats {
    fn from(s: DashboardStats) -> Self {
        Stats {
            applications: s.applications,
            enabled_applications: s.enabled_applications,
            active_tokens: s.active_tokens,
            audit_events_24h: s.audit_events_24h,
        }
    }
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

// ------------------------------------------------------------ helpers

fn scope_set(names: &[String]) -> Result<ScopeSet, HttpError> {
    ScopeSet::from_names(names).map_err(|m| HttpError::Api {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        description: m,
        field: Some("scopes"),
    })
}

/// The caller of a use case: the token's application, now, its address.
fn caller(bearer: &Bearer, ip: ClientIp) -> Caller {
    Caller::application(&bearer.0, crate::now(), ip.0)
}

/// The client address, for audit events.
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(parts.extensions.get::<keygate::network::ClientAddress>().and_then(|a| a.text())))
    }
}

fn created_no_store<T: Serialize>(status: StatusCode, body: T) -> Response {
    let mut r = (status, Json(body)).into_response();
    crate::http_error::no_store(&mut r);
    r
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
            "audience": ctx.audience,
            "issued_at": ctx.issued_at,
            "expires_at": ctx.expires_at,
        }
    }))
}

/// List applications (scope `applications:read`).
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", params(ListApplicationsParams),
    responses((status = 200, body = ApplicationPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_applications(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiQuery(p): ApiQuery<ListApplicationsParams>,
) -> Result<Json<ApplicationPage>, HttpError> {
    bearer.require_scope("applications:read")?;
    let sort = match p.sort.as_deref() {
        None => ApplicationSort::Name,
        Some(s) => ApplicationSort::parse(s).ok_or_else(|| {
            HttpError::bad_request(format!("sort must be name, newest, last_used or active_tokens, not {s}"))
        })?,
    };
    let status = match p.status.as_deref() {
        None => ApplicationStatus::Any,
        Some(s) => ApplicationStatus::parse(s).ok_or_else(|| {
            HttpError::bad_request(format!("status must be any, enabled, disabled, never_used or dormant, not {s}"))
        })?,
    };
    let (page, per_page) = paging(p.page, p.per_page, 200)?;
    if p.search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(HttpError::bad_request("search has at most 200 characters"));
    }
    let dormant_after_days = state.console.dormant_after_days;
    let q = ApplicationQuery { search: p.search, sort, status, page, per_page, dormant_after_days };
    let page = state.store.list_applications(&q, crate::now()).await?;
    Ok(Json(ApplicationPage { items: page.items, total: page.total, page: page.page, per_page: page.per_page }))
}

/// Create an application; the client secret is in this response only
/// (scope `applications:write`).
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", request_body = CreateApplication,
    responses((status = 201, body = ApplicationWithSecret), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_application(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    ApiJson(body): ApiJson<CreateApplication>,
) -> Result<Response, HttpError> {
    bearer.require_scope("applications:write")?;
    let mut s = ApplicationSettings::new(body.name);
    s.notes = body.notes;
    s.scopes = scope_set(&body.scopes)?;
    s.token_ttl_seconds = body.token_ttl_seconds.unwrap_or(s.token_ttl_seconds);
    s.max_tokens = body.max_tokens.unwrap_or(s.max_tokens);
    s.rate_per_second = body.rate_per_second.unwrap_or(s.rate_per_second);
    s.rate_per_hour = body.rate_per_hour.unwrap_or(s.rate_per_hour);
    s.token_format = body.token_format.unwrap_or_default();
    s.introspects = body.introspects;
    s.allowed_networks = body.allowed_networks;
    let (app, secret) = applications::create_application(&state.store, &caller(&bearer, ip), s).await?;
    Ok(created_no_store(
        StatusCode::CREATED,
        ApplicationWithSecret { application: app, client_secret: secret.expose().to_owned() },
    ))
}

/// One application (scope `applications:read`).
#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications", params(("id" = i64, Path)),
    responses((status = 200, body = ApplicationView), (status = 404, body = ErrorBody)))]
async fn get_application(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(id): Path<String>,
) -> Result<Json<ApplicationView>, HttpError> {
    bearer.require_scope("applications:read")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let app = state.store.require_application(id, crate::now()).await?;
    Ok(Json(app))
}

/// Change an application; absent fields keep their value (scope `applications:write`).
#[utoipa::path(patch, path = "/api/v1/applications/{id}", tag = "applications", params(("id" = i64, Path)), request_body = UpdateApplication,
    responses((status = 200, body = UpdatedApplication), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_application(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateApplication>,
) -> Result<Json<UpdatedApplication>, HttpError> {
    bearer.require_scope("applications:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let change = ApplicationChange {
        name: body.name,
        notes: body.notes,
        scopes: body.scopes.as_deref().map(scope_set).transpose()?,
        token_ttl_seconds: body.token_ttl_seconds,
        max_tokens: body.max_tokens,
        rate_per_second: body.rate_per_second,
        rate_per_hour: body.rate_per_hour,
        token_format: body.token_format,
        introspects: body.introspects,
        allowed_networks: body.allowed_networks,
        enabled: body.enabled,
    };
    let caller = caller(&bearer, ip);
    let app = applications::update_application(&state.store, &caller, id, change).await?;
    let warnings = applications::own_lockout_warning(&caller, id, &app).into_iter().collect();
    Ok(Json(UpdatedApplication { application: app, warnings }))
}

/// Delete an application and its tokens (scope `applications:write`).
#[utoipa::path(delete, path = "/api/v1/applications/{id}", tag = "applications", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_application(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    bearer.require_scope("applications:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    applications::delete_application(&state.store, &caller(&bearer, ip), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Regenerate the client secret; the new secret is in this response only
/// (scope `applications:write`). Without a body the old secret and every
/// token die at once; `previous_secret_valid_for` keeps the old secret
/// working for an overlap, `revoke_tokens: false` keeps the tokens.
#[utoipa::path(post, path = "/api/v1/applications/{id}/secret", tag = "applications", params(("id" = i64, Path)),
    request_body(content = Option<RegenerateSecretBody>, description = "Optional"),
    responses((status = 200, body = RegeneratedSecret), (status = 404, body = ErrorBody)))]
async fn regenerate_secret(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    OptionalApiJson(body): OptionalApiJson<RegenerateSecretBody>,
) -> Result<Response, HttpError> {
    bearer.require_scope("applications:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let how = match body {
        None => applications::SecretRegeneration::default(),
        Some(b) => applications::SecretRegeneration {
            previous_secret_valid_for: b.previous_secret_valid_for,
            revoke_tokens: b.revoke_tokens.unwrap_or(true),
        },
    };
    let r = applications::regenerate_secret(&state.store, &caller(&bearer, ip), id, how).await?;
    Ok(created_no_store(
        StatusCode::OK,
        RegeneratedSecret {
            client_id: r.application.client_id,
            client_secret: r.secret.expose().to_owned(),
            tokens_revoked: r.tokens_revoked,
            secret_id: r.secret_id,
            previous_secret_expires_at: r.previous_secret_expires_at,
        },
    ))
}

/// What regenerating the secret now would break: the valid tokens with
/// their last use and address, and when each secret was last used (scopes
/// `applications:read` and `tokens:read`: it lists tokens).
#[utoipa::path(get, path = "/api/v1/applications/{id}/secret/impact", tag = "applications", params(("id" = i64, Path)),
    responses((status = 200, body = keygate::SecretImpact), (status = 404, body = ErrorBody)))]
async fn secret_impact(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<keygate::SecretImpact>, HttpError> {
    bearer.require_scope("applications:read")?;
    bearer.require_scope("tokens:read")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    Ok(Json(applications::secret_impact(&state.store, &caller(&bearer, ip), id).await?))
}

/// End an overlap early: the previous secret stops working now (scope
/// `applications:write`). The current secret cannot be deleted (409).
#[utoipa::path(delete, path = "/api/v1/applications/{id}/secrets/{secret_id}", tag = "applications",
    params(("id" = i64, Path), ("secret_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end_previous_secret(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path((id, secret_id)): Path<(String, String)>,
) -> Result<StatusCode, HttpError> {
    bearer.require_scope("applications:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let secret = keygate::SecretId(parse_id(&secret_id, "secret")?);
    applications::end_previous_secret(&state.store, &caller(&bearer, ip), id, secret).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tokens of an application, a page at a time, newest first (scope `tokens:read`).
#[utoipa::path(get, path = "/api/v1/applications/{id}/tokens", tag = "tokens", params(("id" = i64, Path), ListTokensParams),
    responses((status = 200, body = TokenList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ListTokensParams>,
) -> Result<Json<TokenList>, HttpError> {
    bearer.require_scope("tokens:read")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let (page, per_page) = paging(p.page, p.per_page, 200)?;
    let caller = caller(&bearer, ip);
    let app = state.store.require_application(id, caller.now).await?;
    caller.check_ceiling(&state.store, &app, "list_tokens").await?;
    let now = caller.now;
    let listed = state.store.list_tokens(id, page, per_page, None).await?;
    let items = listed
        .items
        .into_iter()
        .map(|mut t| {
            // Uses not yet flushed still count as the latest use.
            if let Some(at) = state.usage.pending_for(t.id) {
                t.last_used_at = Some(t.last_used_at.map_or(at, |db| db.max(at)));
            }
            TokenItem { state: t.state(now), token: t }
        })
        .collect();
    Ok(Json(TokenList { items, total: listed.total, page: listed.page, per_page: listed.per_page }))
}

/// Mint a named token; the token is in this response only (scope `tokens:write`).
#[utoipa::path(post, path = "/api/v1/applications/{id}/tokens", tag = "tokens", params(("id" = i64, Path)), request_body = MintToken,
    responses((status = 201, body = MintedToken), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mint_token(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MintToken>,
) -> Result<Response, HttpError> {
    bearer.require_scope("tokens:write")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let expiry = required_expiry(body.expires_in, body.expires_at)?;
    let request = MintRequest { name: body.name, scopes: scope_set(&body.scopes)?, expiry };
    let minted = tokens::mint_token(&state.store, &caller(&bearer, ip), id, request).await?;
    Ok(created_no_store(
        StatusCode::CREATED,
        MintedToken { token: minted.view, access_token: minted.token.expose().to_owned() },
    ))
}

fn expiry_error(description: &str) -> HttpError {
    HttpError::Api {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        description: description.into(),
        field: Some("expires_at"),
    }
}

/// At most one of `expires_in` and `expires_at`.
fn optional_expiry(expires_in: Option<i64>, expires_at: Option<i64>) -> Result<Option<TokenExpiry>, HttpError> {
    match (expires_in, expires_at) {
        (Some(secs), None) => Ok(Some(TokenExpiry::InSeconds(secs))),
        (None, Some(at)) => Ok(Some(TokenExpiry::At(at))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(expiry_error("give at most one of expires_in and expires_at")),
    }
}

/// Exactly one of `expires_in` and `expires_at`.
fn required_expiry(expires_in: Option<i64>, expires_at: Option<i64>) -> Result<TokenExpiry, HttpError> {
    optional_expiry(expires_in, expires_at)
        .ok()
        .flatten()
        .ok_or_else(|| expiry_error("give exactly one of expires_in and expires_at"))
}

/// Give a named token a new expiry; its value stays the same (scope `tokens:write`).
#[utoipa::path(post, path = "/api/v1/tokens/{id}/extend", tag = "tokens", params(("id" = i64, Path)), request_body = ExtendToken,
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn extend_token(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExtendToken>,
) -> Result<Json<TokenView>, HttpError> {
    bearer.require_scope("tokens:write")?;
    let id = TokenId(parse_id(&id, "token")?);
    let expiry = required_expiry(body.expires_in, body.expires_at)?;
    Ok(Json(tokens::extend_token(&state.store, &caller(&bearer, ip), id, expiry).await?))
}

/// Replace a named token's value: a new token with the same name and scopes;
/// the old one is revoked, or works for `previous_valid_for` seconds more
/// (scope `tokens:write`). The new token is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/rotate", tag = "tokens", params(("id" = i64, Path)), request_body = RotateToken,
    responses((status = 201, body = RotatedToken), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rotate_token(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    OptionalApiJson(body): OptionalApiJson<RotateToken>,
) -> Result<Response, HttpError> {
    bearer.require_scope("tokens:write")?;
    let id = TokenId(parse_id(&id, "token")?);
    let body = body.unwrap_or_default();
    let request = tokens::RotateRequest {
        expiry: optional_expiry(body.expires_in, body.expires_at)?,
        previous_valid_for: body.previous_valid_for.unwrap_or(0),
    };
    let r = tokens::rotate_token(&state.store, &caller(&bearer, ip), id, request).await?;
    Ok(created_no_store(
        StatusCode::CREATED,
        RotatedToken { token: r.minted.view, access_token: r.minted.token.expose().to_owned(), previous: r.previous },
    ))
}

/// Revoke a token (scope `tokens:write`). Revoking a revoked token is 204 too.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    bearer.require_scope("tokens:write")?;
    let id = TokenId(parse_id(&id, "token")?);
    tokens::revoke_token(&state.store, &caller(&bearer, ip), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Audit events, newest first (scope `audit:read`).
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
async fn list_audit_events(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, HttpError> {
    bearer.require_scope("audit:read")?;
    let (page, per_page) = paging(p.page, p.per_page, 500)?;
    if let Some(action) = p.action.as_deref().filter(|a| !a.is_empty()) {
        if action != keygate::store::REFUSALS_FILTER && !keygate::AuditAction::ALL.iter().any(|a| a.matches(action)) {
            let known: Vec<&str> = keygate::AuditAction::ALL.iter().map(|a| a.as_str()).collect();
            return Err(HttpError::Api {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                description: format!("unknown action; use a family or one of: {}", known.join(", ")),
                field: Some("action"),
            });
        }
    }
    if p.application.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(HttpError::Api {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: "application has at most 200 characters".into(),
            field: Some("application"),
        });
    }
    let q = AuditQuery {
        application_id: p.application_id.map(ApplicationId),
        application_match: p.application.filter(|a| !a.trim().is_empty()),
        action: p.action.filter(|a| !a.is_empty()),
        since: p.since,
        until: p.until,
        page,
        per_page,
    };
    let page = state.store.list_audit_events(&q).await?;
    Ok(Json(AuditPage { items: page.items, total: page.total, page: page.page, per_page: page.per_page }))
}

/// The scope catalogue (scope `scopes:read`).
#[utoipa::path(get, path = "/api/v1/scopes", tag = "scopes",
    responses((status = 200, body = ScopeList), (status = 403, body = ErrorBody)))]
async fn list_scopes(State(state): State<AppState>, bearer: Bearer) -> Result<Json<ScopeList>, HttpError> {
    bearer.require_scope("scopes:read")?;
    Ok(Json(ScopeList { items: state.store.list_scopes().await? }))
}

/// Add a scope for your own services (scope `scopes:write`).
#[utoipa::path(post, path = "/api/v1/scopes", tag = "scopes", request_body = CreateScope,
    responses((status = 201, body = ScopeView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_scope(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    ApiJson(body): ApiJson<CreateScope>,
) -> Result<(StatusCode, Json<ScopeView>), HttpError> {
    bearer.require_scope("scopes:write")?;
    let server = body.resource_server.as_deref();
    let scope = scopes::add_scope(&state.store, &caller(&bearer, ip), &body.name, &body.description, server).await?;
    Ok((StatusCode::CREATED, Json(scope)))
}

/// Attach a scope of your own to a resource server, or detach it with
/// `null` (scope `scopes:write`); a token moves only scopes it holds.
#[utoipa::path(patch, path = "/api/v1/scopes/{name}", tag = "scopes", params(("name" = String, Path)),
    request_body = UpdateScope,
    responses((status = 200, body = ScopeView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn update_scope(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateScope>,
) -> Result<Json<ScopeView>, HttpError> {
    bearer.require_scope("scopes:write")?;
    let required = || HttpError::bad_request("resource_server is required: an identifier, or null for none");
    let server = match body.resource_server {
        Some(Some(s)) if s.trim().is_empty() => return Err(required()),
        Some(server) => server,
        None => return Err(required()),
    };
    let scope = resource_servers::attach_scope(&state.store, &caller(&bearer, ip), &name, server.as_deref()).await?;
    Ok(Json(scope))
}

/// Resource servers with their scopes and introspection clients (scope `scopes:read`).
#[utoipa::path(get, path = "/api/v1/resource-servers", tag = "resource-servers",
    responses((status = 200, body = ResourceServerList), (status = 403, body = ErrorBody)))]
async fn list_resource_servers(
    State(state): State<AppState>,
    bearer: Bearer,
) -> Result<Json<ResourceServerList>, HttpError> {
    bearer.require_scope("scopes:read")?;
    Ok(Json(ResourceServerList { items: state.store.list_resource_servers().await? }))
}

/// Add a resource server (scope `scopes:write`).
#[utoipa::path(post, path = "/api/v1/resource-servers", tag = "resource-servers", request_body = CreateResourceServer,
    responses((status = 201, body = ResourceServerView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_resource_server(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    ApiJson(body): ApiJson<CreateResourceServer>,
) -> Result<(StatusCode, Json<ResourceServerView>), HttpError> {
    bearer.require_scope("scopes:write")?;
    let server =
        resource_servers::add_resource_server(&state.store, &caller(&bearer, ip), &body.name, &body.identifier).await?;
    Ok((StatusCode::CREATED, Json(server)))
}

/// One resource server (scope `scopes:read`).
#[utoipa::path(get, path = "/api/v1/resource-servers/{id}", tag = "resource-servers", params(("id" = i64, Path)),
    responses((status = 200, body = ResourceServerView), (status = 404, body = ErrorBody)))]
async fn get_resource_server(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(id): Path<String>,
) -> Result<Json<ResourceServerView>, HttpError> {
    bearer.require_scope("scopes:read")?;
    let id = ResourceServerId(parse_id(&id, "resource server")?);
    let server = state.store.resource_server(id).await?.ok_or_else(|| HttpError::not_found("resource server"))?;
    Ok(Json(server))
}

/// Rename a resource server; its identifier never changes (scope `scopes:write`).
#[utoipa::path(patch, path = "/api/v1/resource-servers/{id}", tag = "resource-servers", params(("id" = i64, Path)),
    request_body = UpdateResourceServer,
    responses((status = 200, body = ResourceServerView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_resource_server(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateResourceServer>,
) -> Result<Json<ResourceServerView>, HttpError> {
    bearer.require_scope("scopes:write")?;
    let id = ResourceServerId(parse_id(&id, "resource server")?);
    let server = resource_servers::rename_resource_server(&state.store, &caller(&bearer, ip), id, &body.name).await?;
    Ok(Json(server))
}

/// Delete a resource server of your own; refused (409) while scopes
/// belong to it, and for Keygate's own API (scope `scopes:write`).
#[utoipa::path(delete, path = "/api/v1/resource-servers/{id}", tag = "resource-servers", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_resource_server(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    bearer.require_scope("scopes:write")?;
    let id = ResourceServerId(parse_id(&id, "resource server")?);
    resource_servers::delete_resource_server(&state.store, &caller(&bearer, ip), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a scope of your own; refused (409) for built-in scopes and for a
/// scope some application is still allowed (scope `scopes:write`).
#[utoipa::path(delete, path = "/api/v1/scopes/{name}", tag = "scopes", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_scope(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(name): Path<String>,
) -> Result<StatusCode, HttpError> {
    bearer.require_scope("scopes:write")?;
    scopes::delete_scope(&state.store, &caller(&bearer, ip), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Webhooks (scope `webhooks:read`).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 403, body = ErrorBody)))]
async fn list_webhooks(State(state): State<AppState>, bearer: Bearer) -> Result<Json<WebhookList>, HttpError> {
    bearer.require_scope("webhooks:read")?;
    Ok(Json(WebhookList { items: state.store.list_webhooks().await? }))
}

/// Add a webhook; its signing secret is in this response only (scope `webhooks:write`).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookWithSecret), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<Response, HttpError> {
    bearer.require_scope("webhooks:write")?;
    let settings = keygate::usecase::webhooks::WebhookSettings {
        url: body.url,
        events: body.events,
        description: body.description.unwrap_or_default(),
    };
    let (webhook, secret) =
        keygate::usecase::webhooks::create_webhook(&state.store, &caller(&bearer, ip), &state.console.kek, settings)
            .await?;
    Ok(created_no_store(StatusCode::CREATED, WebhookWithSecret { webhook, secret: secret.expose().to_owned() }))
}

/// One webhook (scope `webhooks:read`).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = keygate::WebhookView), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(id): Path<String>,
) -> Result<Json<keygate::WebhookView>, HttpError> {
    bearer.require_scope("webhooks:read")?;
    let id = keygate::WebhookId(parse_id(&id, "webhook")?);
    Ok(Json(state.store.require_webhook(id).await?))
}

/// Change a webhook; absent fields keep their value (scope `webhooks:write`).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = keygate::WebhookView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_webhook(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<keygate::WebhookView>, HttpError> {
    bearer.require_scope("webhooks:write")?;
    let id = keygate::WebhookId(parse_id(&id, "webhook")?);
    let change = keygate::usecase::webhooks::WebhookChange {
        url: body.url,
        events: body.events,
        description: body.description,
        enabled: body.enabled,
    };
    Ok(Json(keygate::usecase::webhooks::update_webhook(&state.store, &caller(&bearer, ip), id, change).await?))
}

/// Remove a webhook with its queue and log (scope `webhooks:write`).
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    bearer.require_scope("webhooks:write")?;
    let id = keygate::WebhookId(parse_id(&id, "webhook")?);
    keygate::usecase::webhooks::delete_webhook(&state.store, &caller(&bearer, ip), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log: the latest deliveries with every attempt (scopes
/// `webhooks:read` and `audit:read`: it shows which audit events went out).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = i64, Path), DeliveryParams),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> Result<Json<DeliveryList>, HttpError> {
    bearer.require_scope("webhooks:read")?;
    // The log names the audit events sent and may echo them back.
    bearer.require_scope("audit:read")?;
    let id = keygate::WebhookId(parse_id(&id, "webhook")?);
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(HttpError::bad_request("limit is between 1 and 200"));
    }
    state.store.require_webhook(id).await?;
    Ok(Json(DeliveryList { items: state.store.deliveries(id, limit).await? }))
}

/// Send a test event (`webhook.test`) to this webhook now (scope `webhooks:write`).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 202, body = QueuedDelivery), (status = 404, body = ErrorBody)))]
async fn test_webhook(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<QueuedDelivery>), HttpError> {
    bearer.require_scope("webhooks:write")?;
    let id = keygate::WebhookId(parse_id(&id, "webhook")?);
    let delivery_id = keygate::usecase::webhooks::send_test_event(&state.store, &caller(&bearer, ip), id).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedDelivery { delivery_id })))
}

/// Try a delivery again now, whatever its state (scope `webhooks:write`).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("id" = i64, Path), ("delivery_id" = i64, Path)),
    responses((status = 202, body = QueuedDelivery), (status = 404, body = ErrorBody)))]
async fn retry_delivery(
    State(state): State<AppState>,
    bearer: Bearer,
    ip: ClientIp,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<QueuedDelivery>), HttpError> {
    bearer.require_scope("webhooks:write")?;
    let id = keygate::WebhookId(parse_id(&id, "webhook")?);
    let delivery_id = keygate::DeliveryId(parse_id(&delivery, "delivery")?);
    keygate::usecase::webhooks::retry_delivery(&state.store, &caller(&bearer, ip), id, delivery_id).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedDelivery { delivery_id })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttentionParams {
    /// Lines of each kind, 1 to 10,000, default 100; `totals` counts them all.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// What needs attention: named tokens expiring within 7 days, overlaps
/// ending within 24 hours, dormant applications (longest unused first),
/// disabled applications still holding valid tokens, the first `limit` of
/// each and how many there are (scopes `applications:read` and
/// `tokens:read`).
#[utoipa::path(get, path = "/api/v1/attention", tag = "stats", params(AttentionParams),
    responses((status = 200, body = keygate::NeedsAttention), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn attention(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiQuery(p): ApiQuery<AttentionParams>,
) -> Result<Json<keygate::NeedsAttention>, HttpError> {
    bearer.require_scope("applications:read")?;
    bearer.require_scope("tokens:read")?;
    let limit = p.limit.unwrap_or(100);
    let limit = usize::try_from(limit)
        .ok()
        .filter(|l| (1..=10_000).contains(l))
        .ok_or_else(|| HttpError::bad_request("limit is between 1 and 10000"))?;
    Ok(Json(state.store.needs_attention(crate::now(), state.console.dormant_after_days, limit).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ActivityParams {
    /// `24h` (hourly bars), `7d` (six-hour bars) or `30d` (daily bars); default `24h`.
    pub range: Option<String>,
}

fn activity_range(p: &ActivityParams) -> Result<keygate::activity::ActivityRange, HttpError> {
    match p.range.as_deref().filter(|r| !r.is_empty()) {
        None => Ok(Default::default()),
        Some(r) => keygate::activity::ActivityRange::parse(r).ok_or_else(|| HttpError::Api {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: "range is 24h, 7d or 30d".into(),
            field: Some("range"),
        }),
    }
}

/// An application's activity: tokens issued, successful uses and refusals
/// by reason, per bar of the range (UTC-aligned; scope `applications:read`).
/// Counts reach the database every few seconds.
#[utoipa::path(get, path = "/api/v1/applications/{id}/activity", tag = "applications",
    params(("id" = i64, Path), ActivityParams),
    responses((status = 200, body = keygate::activity::ActivitySeries), (status = 404, body = ErrorBody)))]
async fn application_activity(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ActivityParams>,
) -> Result<Json<keygate::activity::ActivitySeries>, HttpError> {
    bearer.require_scope("applications:read")?;
    let id = ApplicationId(parse_id(&id, "application")?);
    let range = activity_range(&p)?;
    let now = crate::now();
    state.store.require_application(id, now).await?;
    Ok(Json(state.store.activity_series(Some(id), range, now).await?))
}

/// Every application's activity over the range, with the five busiest and
/// the five most-refused applications (scope `applications:read`).
#[utoipa::path(get, path = "/api/v1/activity", tag = "stats", params(ActivityParams),
    responses((status = 200, body = keygate::activity::ActivityOverview), (status = 403, body = ErrorBody)))]
async fn activity_overview(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiQuery(p): ApiQuery<ActivityParams>,
) -> Result<Json<keygate::activity::ActivityOverview>, HttpError> {
    bearer.require_scope("applications:read")?;
    let range = activity_range(&p)?;
    Ok(Json(keygate::usecase::activity::overview(&state.store, range, crate::now()).await?))
}

/// The overview's counts (scope `applications:read`).
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats",
    responses((status = 200, body = Stats), (status = 403, body = ErrorBody)))]
async fn stats(State(state): State<AppState>, bearer: Bearer) -> Result<Json<Stats>, HttpError> {
    bearer.require_scope("applications:read")?;
    Ok(Json(state.store.dashboard_stats(crate::now()).await?.into()))
}

/// The protected routes and their OpenAPI document, built together.
pub fn protected() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(list_applications, create_application))
        .routes(routes!(get_application, update_application, delete_application))
        .routes(routes!(regenerate_secret))
        .routes(routes!(secret_impact))
        .routes(routes!(end_previous_secret))
        .routes(routes!(list_tokens, mint_token))
        .routes(routes!(revoke_token))
        .routes(routes!(extend_token))
        .routes(routes!(rotate_token))
        .routes(routes!(list_audit_events))
        .routes(routes!(list_scopes, create_scope))
        .routes(routes!(delete_scope, update_scope))
        .routes(routes!(list_resource_servers, create_resource_server))
        .routes(routes!(get_resource_server, update_resource_server, delete_resource_server))
        .routes(routes!(stats))
        .routes(routes!(application_activity))
        .routes(routes!(activity_overview))
        .routes(routes!(attention))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(test_webhook))
        .routes(routes!(retry_delivery))
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
    protected
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_bearer))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], Body::from(document)) }
            }),
        )
        // Answers are about one caller's credentials: no cache keeps them.
        .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ))
}
