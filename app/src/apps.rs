//! Applications: list, create, detail (settings, secret, tokens).

use crate::charts::{ActivityCharts, RangeTabs};
use crate::components::{form_error, url_encode, CopyButton, FieldMessage, FormMessage, FormSaved, RelTime};
use crate::error::AppError;
use crate::layout::{loaded, CopyField, Frame};
use keygate::{
    AdminView, ApplicationId, ApplicationView, ResourceServerView, ScopeView, TokenFormat, TokenState, TokenView,
};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

pub const PER_PAGE: i64 = 25;

/// A secret or token to show once: kept in the database sealed under a key
/// derived from the session ID (which the database never holds, only its
/// digest), found by a random flash ID that the session keeps, and taken
/// out by the next page load on whichever instance serves it, so a reload
/// never shows it again.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    /// The application it belongs to; a webhook's is its ID negated
    /// ([`webhook_flash_subject`]).
    pub application_id: i64,
    pub kind: FlashKind,
    pub value: String,
    pub note: String,
}

impl std::fmt::Debug for Flash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flash")
            .field("application_id", &self.application_id)
            .field("kind", &self.kind)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FlashKind {
    ClientSecret,
    AccessToken,
    WebhookSecret,
}

/// The flash subject of a webhook: its ID negated, apart from applications'.
pub fn webhook_flash_subject(id: i64) -> i64 {
    -id
}

#[cfg(feature = "ssr")]
const FLASH_KEY: &str = "flash_id";

/// The key a flash is sealed under: the session's ID and the flash's own.
#[cfg(feature = "ssr")]
fn flash_key(session: &tower_sessions::Session, flash_id: &str) -> Result<[u8; 32], AppError> {
    let session_id = session.id().ok_or_else(|| {
        tracing::error!("a flash for a session without an ID");
        AppError::Internal
    })?;
    Ok(keygate::secret::derive_key(&session_id.to_string(), &format!("console flash {flash_id}")))
}

#[cfg(feature = "ssr")]
pub(crate) async fn put_flash(flash: Flash) -> Result<(), AppError> {
    use keygate::secret::{generate_setup_code, seal, SecretDigest};
    let session = crate::server::session().await?;
    let flash_id = generate_setup_code();
    let plain = serde_json::to_vec(&flash).map_err(|_| AppError::Internal)?;
    let sealed = seal(&flash_key(&session, &flash_id)?, &plain)?;
    let store = &crate::server::context()?.store;
    store.put_flash(&SecretDigest::of(&flash_id), flash.application_id, &sealed, crate::server::now()).await?;
    session.insert(FLASH_KEY, flash_id).await.map_err(|_| AppError::Internal)
}

#[cfg(feature = "ssr")]
pub(crate) async fn take_flash(application_id: i64) -> Result<Option<Flash>, AppError> {
    use keygate::secret::{open_sealed, SecretDigest};
    let session = crate::server::session().await?;
    let Some(flash_id) = session.get::<String>(FLASH_KEY).await.map_err(|_| AppError::Internal)? else {
        return Ok(None);
    };
    let store = &crate::server::context()?.store;
    let not_before = crate::server::now() - keygate::store::FLASH_TTL_SECONDS;
    let Some(sealed) = store.take_flash(&SecretDigest::of(&flash_id), application_id, not_before).await? else {
        return Ok(None);
    };
    session.remove::<String>(FLASH_KEY).await.map_err(|_| AppError::Internal)?;
    let flash = open_sealed(&flash_key(&session, &flash_id)?, &sealed)
        .and_then(|plain| serde_json::from_slice::<Flash>(&plain).ok())
        .filter(|f| f.application_id == application_id);
    Ok(flash)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplicationsData {
    pub me: AdminView,
    pub items: Vec<ApplicationSummary>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// What a row of the applications list shows: the settings it does not
/// show are neither copied for the page nor sent to a script that calls
/// the function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplicationSummary {
    pub id: ApplicationId,
    pub name: String,
    pub client_id: String,
    pub enabled: bool,
    pub scopes: Vec<String>,
    pub active_tokens: i64,
    pub last_used_at: Option<i64>,
}

impl From<ApplicationView> for ApplicationSummary {
    fn from(a: ApplicationView) -> Self {
        ApplicationSummary {
            id: a.id,
            name: a.name,
            client_id: a.client_id,
            enabled: a.enabled,
            scopes: a.scopes,
            active_tokens: a.active_tokens,
            last_used_at: a.last_used_at,
        }
    }
}

/// The page sizes the applications list offers.
pub const PAGE_SIZES: [i64; 3] = [25, 50, 100];

/// What the applications list shows: `?q=&sort=&status=&page=&per=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationsListing {
    pub q: String,
    /// `name`, `newest`, `last_used` or `active_tokens`.
    pub sort: String,
    /// `any`, `enabled`, `disabled`, `never_used` or `dormant`.
    pub status: String,
    pub page: i64,
    pub per_page: i64,
}

impl ApplicationsListing {
    pub fn from_query(q: &leptos_router::params::ParamsMap) -> Self {
        let per_page = q.get_str("per").and_then(|p| p.parse::<i64>().ok()).filter(|p| PAGE_SIZES.contains(p));
        ApplicationsListing {
            q: q.get("q").unwrap_or_default(),
            sort: q.get("sort").unwrap_or_else(|| "name".into()),
            status: q.get("status").unwrap_or_else(|| "any".into()),
            page: q.get_str("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1),
            per_page: per_page.unwrap_or(PER_PAGE),
        }
    }

    /// This listing's address at another page.
    pub fn href(&self, page: i64) -> String {
        let mut query = Vec::new();
        if !self.q.is_empty() {
            query.push(format!("q={}", url_encode(&self.q)));
        }
        if self.sort != "name" {
            query.push(format!("sort={}", url_encode(&self.sort)));
        }
        if self.status != "any" {
            query.push(format!("status={}", url_encode(&self.status)));
        }
        if self.per_page != PER_PAGE {
            query.push(format!("per={}", self.per_page));
        }
        if page > 1 {
            query.push(format!("page={page}"));
        }
        if query.is_empty() {
            "/applications".to_owned()
        } else {
            format!("/applications?{}", query.join("&"))
        }
    }
}

#[server(prefix = "/console/fn", endpoint = "applications")]
pub async fn applications(listing: ApplicationsListing) -> Result<ApplicationsData, AppError> {
    use keygate::store::{ApplicationQuery, ApplicationSort, ApplicationStatus};
    let me = crate::server::require_admin().await?;
    let ctx = crate::server::context()?;
    let now = crate::server::now();
    let mut query = ApplicationQuery {
        search: Some(listing.q),
        sort: ApplicationSort::parse(&listing.sort).unwrap_or_default(),
        status: ApplicationStatus::parse(&listing.status).unwrap_or_default(),
        page: listing.page,
        // Only the sizes offered: the query string is the client's to write.
        per_page: if PAGE_SIZES.contains(&listing.per_page) { listing.per_page } else { PER_PAGE },
        dormant_after_days: ctx.dormant_after_days,
    };
    let mut p = ctx.store.list_applications(&query, now).await?;
    // A page past the end (a bookmark, a deleted application) shows the last one.
    if p.items.is_empty() && p.total > 0 {
        query.page = (p.total + query.per_page - 1) / query.per_page;
        p = ctx.store.list_applications(&query, now).await?;
    }
    let items = p.items.into_iter().map(ApplicationSummary::from).collect();
    Ok(ApplicationsData { me, items, total: p.total, page: p.page, per_page: p.per_page })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewApplicationData {
    pub me: AdminView,
    pub catalogue: Vec<ScopeView>,
    pub servers: Vec<ResourceServerView>,
}

#[server(prefix = "/console/fn", endpoint = "new_application_data")]
pub async fn load_new_application() -> Result<NewApplicationData, AppError> {
    let me = crate::server::require_admin().await?;
    let store = &crate::server::context()?.store;
    let catalogue = store.list_scopes().await?;
    let servers = store.list_resource_servers().await?;
    Ok(NewApplicationData { me, catalogue, servers })
}

#[cfg(feature = "ssr")]
fn parse_number(field: &'static str, label: &str, raw: &str) -> Result<i64, AppError> {
    raw.trim().parse::<i64>().map_err(|_| AppError::invalid(field, format!("{label} must be a whole number")))
}

/// The settings form's fields, as posted.
#[cfg(feature = "ssr")]
struct SettingsForm {
    name: String,
    notes: String,
    scopes: Option<Vec<String>>,
    token_ttl_seconds: String,
    max_tokens: String,
    rate_per_second: String,
    rate_per_hour: String,
    token_format: Option<String>,
    introspects: Option<String>,
    allowed_networks: Option<String>,
}

#[cfg(feature = "ssr")]
impl SettingsForm {
    fn settings(self) -> Result<keygate::ApplicationSettings, AppError> {
        let token_format = match self.token_format.as_deref() {
            None => keygate::TokenFormat::Opaque,
            Some(f) => keygate::TokenFormat::parse(f)
                .ok_or_else(|| AppError::invalid("token_format", "the token format is opaque or jwt"))?,
        };
        let scopes = keygate::ScopeSet::from_names(self.scopes.unwrap_or_default())
            .map_err(|m| AppError::invalid("scopes", m))?;
        Ok(keygate::ApplicationSettings {
            name: self.name,
            notes: self.notes,
            scopes,
            token_ttl_seconds: parse_number("token_ttl_seconds", "the token lifetime", &self.token_ttl_seconds)?,
            max_tokens: parse_number("max_tokens", "the token cap", &self.max_tokens)?,
            rate_per_second: parse_number("rate_per_second", "requests per second", &self.rate_per_second)?,
            rate_per_hour: parse_number("rate_per_hour", "requests per hour", &self.rate_per_hour)?,
            token_format,
            introspects: self.introspects.filter(|i| !i.trim().is_empty()),
            // One network per line (commas and spaces work too).
            allowed_networks: self.allowed_networks.into_iter().collect(),
        })
    }
}

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/console/fn", endpoint = "create_application")]
pub async fn create_application(
    name: String,
    notes: String,
    scopes: Option<Vec<String>>,
    token_ttl_seconds: String,
    max_tokens: String,
    rate_per_second: String,
    rate_per_hour: String,
    token_format: Option<String>,
    introspects: Option<String>,
    allowed_networks: Option<String>,
) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let settings = SettingsForm {
        name,
        notes,
        scopes,
        token_ttl_seconds,
        max_tokens,
        rate_per_second,
        rate_per_hour,
        token_format,
        introspects,
        allowed_networks,
    }
    .settings()?;
    let (app, secret) = keygate::usecase::applications::create_application(&ctx.store, &caller, settings).await?;
    put_flash(Flash {
        application_id: app.id.0,
        kind: FlashKind::ClientSecret,
        value: secret.expose().to_owned(),
        note: "The application was created.".into(),
    })
    .await?;
    leptos_axum::redirect(&format!("/applications/{}", app.id));
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplicationDetail {
    pub me: AdminView,
    pub app: ApplicationView,
    /// One page of the tokens `listing` asks for.
    pub tokens: Vec<TokenView>,
    pub token_summary: keygate::TokenSummary,
    /// Which tokens are listed (the page past the end is the last page).
    pub listing: TokenListing,
    pub token_pages: i64,
    pub catalogue: Vec<ScopeView>,
    pub servers: Vec<ResourceServerView>,
    pub flash: Option<Flash>,
    pub now: i64,
    /// What regenerating the secret would break, shown before confirming.
    pub impact: keygate::SecretImpact,
    pub activity: keygate::activity::ActivitySeries,
    /// Who the connection snippets are for.
    pub connect: keygate::snippets::SnippetTarget,
    /// Whether the base URL is the configured public one (`--public-url`).
    pub public_url_configured: bool,
    /// The latest refusals (folded as the audit log folds them).
    pub refusals: Vec<keygate::AuditEventView>,
    /// Names of the active named tokens: the new-token form warns of a
    /// namesake as the name is typed.
    pub active_token_names: Vec<String>,
}

/// Names of active tokens the new-token form knows of (beyond, the
/// warning comes after minting).
#[cfg(feature = "ssr")]
const NAMESAKE_NAMES: i64 = 500;

/// Refusals listed on an application's page (the audit log has the rest).
#[cfg(feature = "ssr")]
const RECENT_REFUSALS: i64 = 10;

/// Tokens per page of an application's token lists.
pub const TOKENS_PER_PAGE: i64 = 50;

/// Which of an application's tokens its page lists: named tokens or the
/// token endpoint's (`?tokens=issued`), active ones only or every one
/// (`?inactive=1`), and the page (`?page=N`). Plain links, so it works
/// without JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenListing {
    pub issued: bool,
    pub inactive: bool,
    pub page: i64,
}

impl TokenListing {
    pub fn from_query(tokens: Option<&str>, inactive: Option<&str>, page: Option<&str>) -> Self {
        TokenListing {
            issued: tokens == Some("issued"),
            inactive: matches!(inactive, Some("1" | "true" | "yes")),
            page: page.and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1),
        }
    }

    /// The page's address for this listing, at the tokens heading.
    pub fn href(&self, application: i64) -> String {
        let mut query = Vec::new();
        if self.issued {
            query.push("tokens=issued".to_owned());
        }
        if self.inactive {
            query.push("inactive=1".to_owned());
        }
        if self.page > 1 {
            query.push(format!("page={}", self.page));
        }
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        format!("/applications/{application}{query}#tokens")
    }
}

#[server(prefix = "/console/fn", endpoint = "application_detail")]
pub async fn load_application(
    id: i64,
    range: Option<String>,
    listing: TokenListing,
) -> Result<ApplicationDetail, AppError> {
    let me = crate::server::require_admin().await?;
    let ctx = crate::server::context()?;
    let now = crate::server::now();
    let app = ctx.store.require_application(keygate::ApplicationId(id), now).await?;
    let token_summary = ctx.store.token_summary(app.id, now).await?;
    let listed = token_summary.count(listing.issued, listing.inactive);
    let token_pages = ((listed + TOKENS_PER_PAGE - 1) / TOKENS_PER_PAGE).max(1);
    let listing = TokenListing { page: listing.page.clamp(1, token_pages), ..listing };
    let tokens =
        ctx.store.list_token_page(app.id, listing.issued, listing.inactive, listing.page, TOKENS_PER_PAGE, now).await?;
    let catalogue = ctx.store.list_scopes().await?;
    let servers = ctx.store.list_resource_servers().await?;
    let flash = take_flash(id).await?;
    let caller = keygate::usecase::Caller::administrator(me.clone(), now, None);
    let impact = keygate::usecase::applications::secret_impact(&ctx.store, &caller, app.id).await?;
    let range = range.as_deref().and_then(keygate::activity::ActivityRange::parse).unwrap_or_default();
    let activity = ctx.store.activity_series(Some(app.id), range, now).await?;
    let refusals = ctx
        .store
        .list_audit_events(&keygate::store::AuditQuery {
            application_id: Some(app.id),
            action: Some(keygate::store::REFUSALS_FILTER.into()),
            // Not a deleted application's under a reused id.
            since: Some(app.created_at),
            page: 1,
            per_page: RECENT_REFUSALS,
            ..Default::default()
        })
        .await?
        .items;
    let active_token_names = ctx.store.active_named_token_names(app.id, now, NAMESAKE_NAMES).await?;
    let connect = keygate::snippets::SnippetTarget {
        base_url: ctx.public_url.clone(),
        client_id: app.client_id.clone(),
        scopes: app.scopes.clone(),
    };
    Ok(ApplicationDetail {
        me,
        app,
        tokens,
        token_summary,
        listing,
        token_pages,
        catalogue,
        servers,
        flash,
        now,
        impact,
        activity,
        refusals,
        connect,
        public_url_configured: ctx.public_url_configured,
        active_token_names,
    })
}

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/console/fn", endpoint = "update_application")]
pub async fn update_application(
    id: i64,
    name: String,
    notes: String,
    scopes: Option<Vec<String>>,
    token_ttl_seconds: String,
    max_tokens: String,
    rate_per_second: String,
    rate_per_hour: String,
    token_format: Option<String>,
    introspects: Option<String>,
    allowed_networks: Option<String>,
) -> Result<(), AppError> {
    use keygate::usecase::applications::{update_application, ApplicationChange};
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let settings = SettingsForm {
        name,
        notes,
        scopes,
        token_ttl_seconds,
        max_tokens,
        rate_per_second,
        rate_per_hour,
        token_format,
        introspects,
        allowed_networks,
    }
    .settings()?;
    // Enabling and disabling live in the danger zone, with their warning.
    update_application(&ctx.store, &caller, keygate::ApplicationId(id), ApplicationChange::settings(settings)).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "set_enabled")]
pub async fn set_enabled(id: i64, enabled: bool, confirm: Option<String>) -> Result<(), AppError> {
    use keygate::usecase::applications::{update_application, ApplicationChange};
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let app = ctx.store.require_application(keygate::ApplicationId(id), caller.now).await?;
    if !enabled && app.enabled && app.active_tokens > 0 && confirm.is_none() {
        return Err(AppError::invalid(
            "confirm_disable",
            format!("tick the box to confirm that the {} active token(s) will be revoked", app.active_tokens),
        ));
    }
    update_application(&ctx.store, &caller, app.id, ApplicationChange::enabled(enabled)).await?;
    Ok(())
}

/// The overlaps the console offers, in seconds.
pub const OVERLAP_CHOICES: &[(&str, &str)] =
    &[("3600", "1 hour"), ("21600", "6 hours"), ("86400", "24 hours"), ("604800", "7 days"), ("2592000", "30 days")];

/// How the console replaces a secret: `revoke` (now, every token revoked),
/// `keep_tokens` (now, tokens run to their expiry), `overlap` (the previous
/// secret keeps working for `overlap` seconds; tokens kept).
#[server(prefix = "/console/fn", endpoint = "regenerate_secret")]
pub async fn regenerate_secret(
    id: i64,
    mode: Option<String>,
    overlap: Option<String>,
    confirm: Option<String>,
) -> Result<(), AppError> {
    use keygate::usecase::applications::{regenerate_secret, SecretRegeneration};
    let caller = crate::server::caller().await?;
    let how = match mode.as_deref().unwrap_or("revoke") {
        "revoke" => SecretRegeneration::default(),
        "keep_tokens" => SecretRegeneration { previous_secret_valid_for: None, revoke_tokens: false },
        "overlap" => {
            let seconds = overlap
                .as_deref()
                .and_then(|o| o.trim().parse::<i64>().ok())
                .ok_or_else(|| AppError::invalid("overlap", "choose how long the previous secret keeps working"))?;
            SecretRegeneration { previous_secret_valid_for: Some(seconds), revoke_tokens: false }
        }
        _ => return Err(AppError::invalid("mode", "choose how to replace the secret")),
    };
    if confirm.is_none() {
        return Err(AppError::invalid(
            "confirm",
            if how.revoke_tokens {
                "tick the box to confirm that every token of this application will stop working"
            } else {
                "tick the box to confirm that the current secret will be replaced"
            },
        ));
    }
    let ctx = crate::server::context()?;
    let r = regenerate_secret(&ctx.store, &caller, keygate::ApplicationId(id), how).await?;
    let note = match (r.previous_secret_expires_at, how.revoke_tokens) {
        (Some(until), _) => format!(
            "The secret was regenerated. The previous secret keeps working until {}; existing tokens run to their expiry.",
            keygate::time_fmt::exact_utc(until)
        ),
        (None, false) => {
            "The secret was regenerated. The previous secret no longer works; existing tokens run to their expiry."
                .to_owned()
        }
        (None, true) => format!("The secret was regenerated; {} token(s) were revoked.", r.tokens_revoked),
    };
    put_flash(Flash { application_id: id, kind: FlashKind::ClientSecret, value: r.secret.expose().to_owned(), note })
        .await?;
    Ok(())
}

/// Ends an overlap early: the previous secret stops working now.
#[server(prefix = "/console/fn", endpoint = "end_overlap")]
pub async fn end_overlap(id: i64, secret_id: i64) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::applications::end_previous_secret(
        &ctx.store,
        &caller,
        keygate::ApplicationId(id),
        keygate::SecretId(secret_id),
    )
    .await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "delete_application")]
pub async fn delete_application(id: i64, confirm_name: String) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let app = ctx.store.require_application(keygate::ApplicationId(id), caller.now).await?;
    if confirm_name.trim() != app.name {
        return Err(AppError::invalid("confirm_name", format!("type the name \"{}\" exactly to delete it", app.name)));
    }
    keygate::usecase::applications::delete_application(&ctx.store, &caller, app.id).await?;
    leptos_axum::redirect("/applications");
    Ok(())
}

/// Expiry choices for a new token, in days.
/// A choice of the expiry list with the date it gives, so the date is seen
/// before the form is sent: "30 days (until 2026-12-30)".
fn expiry_label(value: &str, label: &str, now: i64) -> String {
    match value.parse::<i64>() {
        Ok(days) => {
            let date = keygate::time_fmt::exact_utc(now.saturating_add(days.saturating_mul(86_400)));
            format!("{label} (until {})", date.get(..10).unwrap_or(&date))
        }
        Err(_) => label.to_owned(),
    }
}

pub const EXPIRY_CHOICES: &[(&str, &str)] = &[
    ("1", "1 day"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("custom", "On a date…"),
];

/// The expiry a console form chose: days from the list, or a date when
/// the list says "On a date…".
#[cfg(feature = "ssr")]
struct ConsoleExpiry {
    expiry: keygate::TokenExpiry,
    custom: bool,
}

#[cfg(feature = "ssr")]
impl ConsoleExpiry {
    fn parse(choice: &str, expires_on: String) -> Result<Self, AppError> {
        if choice == "custom" {
            if expires_on.trim().is_empty() {
                return Err(AppError::invalid("expires_on", "pick an expiry date"));
            }
            return Ok(ConsoleExpiry { expiry: keygate::TokenExpiry::OnDate(expires_on), custom: true });
        }
        let days = choice.parse().map_err(|_| AppError::invalid("expiry", "choose an expiry"))?;
        Ok(ConsoleExpiry { expiry: keygate::TokenExpiry::Days(days), custom: false })
    }

    /// A refusal of the expiry names the console's date field, not the
    /// API's name for it.
    fn error(&self, e: keygate::CoreError) -> AppError {
        match e {
            keygate::CoreError::Invalid { field: "expires_at", message } if self.custom => {
                AppError::invalid("expires_on", message)
            }
            other => other.into(),
        }
    }
}

#[server(prefix = "/console/fn", endpoint = "mint_token")]
pub async fn mint_token(
    id: i64,
    name: String,
    scopes: Option<Vec<String>>,
    expiry: String,
    expires_on: String,
) -> Result<(), AppError> {
    use keygate::usecase::tokens::{mint_token, MintRequest};
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let expiry = ConsoleExpiry::parse(&expiry, expires_on)?;
    let scopes =
        keygate::ScopeSet::from_names(scopes.unwrap_or_default()).map_err(|m| AppError::invalid("scopes", m))?;
    let request = MintRequest { name, scopes, expiry: expiry.expiry.clone() };
    let minted =
        mint_token(&ctx.store, &caller, keygate::ApplicationId(id), request).await.map_err(|e| expiry.error(e))?;
    let name = minted.view.name.unwrap_or_default();
    let note = match minted.namesakes {
        0 => format!("Token \"{name}\" was created."),
        n => format!(
            "Token \"{name}\" was created. Note: {n} other active token(s) of this application are also called \"{name}\"; \
             once this one is in place, revoke the one it replaces (or give the tokens telling names)."
        ),
    };
    put_flash(Flash {
        application_id: id,
        kind: FlashKind::AccessToken,
        value: minted.token.expose().to_owned(),
        note,
    })
    .await?;
    Ok(())
}

/// A named token's new expiry; its value stays the same.
#[server(prefix = "/console/fn", endpoint = "extend_token")]
pub async fn extend_token(token_id: i64, expiry: String, expires_on: String) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let expiry = ConsoleExpiry::parse(&expiry, expires_on)?;
    keygate::usecase::tokens::extend_token(&ctx.store, &caller, keygate::TokenId(token_id), expiry.expiry.clone())
        .await
        .map_err(|e| expiry.error(e))?;
    Ok(())
}

/// How long a rotated token's previous value keeps working: `0` (revoked
/// at once) or one of these.
pub const ROTATION_OVERLAP_CHOICES: &[(&str, &str)] = &[
    ("0", "Revoke the old value now"),
    ("3600", "Keep the old value for 1 hour"),
    ("86400", "Keep the old value for 24 hours"),
    ("604800", "Keep the old value for 7 days"),
];

/// A named token replaced by a new value (shown once), the old value
/// revoked or kept for the chosen overlap.
#[server(prefix = "/console/fn", endpoint = "rotate_token")]
pub async fn rotate_token(token_id: i64, previous_valid_for: String) -> Result<(), AppError> {
    use keygate::usecase::tokens::{rotate_token, RotateRequest};
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let previous_valid_for = previous_valid_for
        .parse()
        .map_err(|_| AppError::invalid("previous_valid_for", "choose what happens to the old value"))?;
    let request = RotateRequest { expiry: None, previous_valid_for };
    let r = rotate_token(&ctx.store, &caller, keygate::TokenId(token_id), request).await?;
    let previous = match r.previous.revoked_at {
        Some(_) => "The previous value no longer works.".to_owned(),
        None => {
            format!("The previous value keeps working until {}.", keygate::time_fmt::exact_utc(r.previous.expires_at))
        }
    };
    put_flash(Flash {
        application_id: r.minted.view.application_id.0,
        kind: FlashKind::AccessToken,
        value: r.minted.token.expose().to_owned(),
        note: format!("Token \"{}\" was rotated. {previous}", r.minted.view.name.clone().unwrap_or_default()),
    })
    .await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "revoke_token")]
pub async fn revoke_token(token_id: i64) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::tokens::revoke_token(&ctx.store, &caller, keygate::TokenId(token_id)).await?;
    Ok(())
}

// ------------------------------------------------------------------- views

/// A textarea's initial text, escaped: Leptos writes a textarea's
/// children as they are (RCDATA), so `</textarea>` in the text would end
/// the element and let what follows into the form. The browser decodes
/// the entities back into the value.
fn textarea_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

// These render a cell of every row of long lists: concrete views, not
// `AnyView` (boxed, and moved again at every step of rendering).
fn scope_list(scopes: &[String]) -> impl IntoView {
    if scopes.is_empty() {
        Either::Left(view! { <span class="muted">"none"</span> })
    } else {
        Either::Right(
            view! { <span class="scopes">{scopes.iter().map(|s| view! { <code class="scope">{s.clone()}</code> " " }).collect_view()}</span> },
        )
    }
}

fn last_used(at: Option<i64>) -> impl IntoView {
    match at {
        Some(at) => Either::Left(view! { <RelTime at=at/> }),
        None => Either::Right(view! { <span class="muted">"never"</span> }),
    }
}

#[component]
pub fn ApplicationsPage() -> impl IntoView {
    let query = use_query_map();
    let data = Resource::new(move || query.with(ApplicationsListing::from_query), applications);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, |p| view! { <ApplicationsList p=p/> }.into_any()))}
        </Suspense>
    }
}

#[component]
fn ApplicationsList(p: ApplicationsData) -> impl IntoView {
    let query = use_query_map();
    let listing = query.with_untracked(ApplicationsListing::from_query);
    let (q, sort, status) = (listing.q.clone(), listing.sort.clone(), listing.status.clone());
    let pages = ((p.total + p.per_page - 1) / p.per_page).max(1);
    let link = move |page: i64| listing.href(page);
    let can_write = p.me.role.can_write();
    view! {
        <Frame me=p.me.clone()>
            <div class="page-head">
                <h1>"API applications"</h1>
                <FormSaved path={<DeleteApplication as ServerFn>::PATH} message="Application deleted: its secrets and tokens no longer work."/>
                {can_write.then(|| view! { <a class="button" href="/applications/new">"New application"</a> })}
            </div>
            <form method="get" action="/applications" class="filters" role="search">
                <span class="field">
                    <label for="q">"Search"</label>
                    <input id="q" name="q" type="search" placeholder="Name or client ID" value=q.clone()/>
                </span>
                <span class="field">
                    <label for="status">"Show"</label>
                    <select id="status" name="status">
                        {[("any", "All applications"), ("enabled", "Enabled"), ("disabled", "Disabled"), ("never_used", "Never used"), ("dormant", "Dormant")]
                            .into_iter()
                            .map(|(v, l)| view! { <option value=v selected=status == v>{l}</option> })
                            .collect_view()}
                    </select>
                </span>
                <span class="field">
                    <label for="sort">"Sort"</label>
                    <select id="sort" name="sort">
                        {[("name", "Name"), ("newest", "Newest first"), ("last_used", "Last used"), ("active_tokens", "Most active tokens")]
                            .into_iter()
                            .map(|(v, l)| view! { <option value=v selected=sort == v>{l}</option> })
                            .collect_view()}
                    </select>
                </span>
                <span class="field">
                    <label for="per">"Per page"</label>
                    <select id="per" name="per">
                        {PAGE_SIZES.iter().map(|n| view! { <option value=n.to_string() selected=*n == p.per_page>{n.to_string()}</option> }).collect_view()}
                    </select>
                </span>
                <button type="submit">"Apply"</button>
            </form>
            <p class="muted" data-testid="application-total">{format!("{} application(s)", p.total)}</p>
            {if p.items.is_empty() && p.total == 0 && q.is_empty() && status == "any" {
                view! { <GettingStarted can_write=can_write/> }.into_any()
            } else if p.items.is_empty() {
                view! { <p class="empty">"No applications match."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table>
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Client ID"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"Allowed scopes"</th>
                                    <th scope="col">"Active tokens"</th>
                                    <th scope="col">"Last used"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {p.items.into_iter().map(|a| view! {
                                    <tr>
                                        <td data-label="Name"><a href=format!("/applications/{}", a.id)>{a.name.clone()}</a></td>
                                        <td data-label="Client ID"><code>{a.client_id.clone()}</code></td>
                                        <td data-label="Status">{status_badge(a.enabled)}</td>
                                        <td data-label="Scopes">{scope_list(&a.scopes)}</td>
                                        <td data-label="Active tokens">{a.active_tokens}</td>
                                        <td data-label="Last used">{last_used(a.last_used_at)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
            <nav class="pager" aria-label="Pages">
                {(p.page > 1).then(|| view! { <a href=link(p.page - 1) rel="prev">"← Previous"</a> })}
                {page_numbers(p.page, pages).into_iter().map(|n| match n {
                    Some(n) if n == p.page => view! { <a href=link(n) aria-current="page" aria-label=format!("Page {n} of {pages}")>{n.to_string()}</a> }.into_any(),
                    Some(n) => view! { <a href=link(n) aria-label=format!("Page {n}")>{n.to_string()}</a> }.into_any(),
                    None => view! { <span class="muted" aria-hidden="true">"…"</span> }.into_any(),
                }).collect_view()}
                {(p.page < pages).then(|| view! { <a href=link(p.page + 1) rel="next">"Next →"</a> })}
            </nav>
        </Frame>
    }
}

/// What a console without applications shows: how to begin, in three
/// steps, and (for those who may) the first one as a button.
#[component]
pub fn GettingStarted(can_write: bool) -> impl IntoView {
    view! {
        <section class="card getting-started" data-testid="getting-started" aria-labelledby="getting-started-title">
            <h2 id="getting-started-title">"Get started"</h2>
            <ol>
                <li><strong>"Create an application"</strong>" for a service that calls your APIs: it gets a client ID and a secret."</li>
                <li><strong>"Copy the secret"</strong>" when it is shown: it is shown only once, and stored only as a hash."</li>
                <li><strong>"Request a token"</strong>" with them: "<code>"POST /oauth2/token"</code>" (client credentials). The application's page has a ready-to-run example in curl, Python, Node, Go and Rust."</li>
            </ol>
            {if can_write {
                view! { <a class="button" href="/applications/new">"Create your first application"</a> }.into_any()
            } else {
                view! { <p class="muted">"You are a viewer: an owner or admin creates applications."</p> }.into_any()
            }}
        </section>
    }
}

/// The page numbers a pager links to: the first, the last, and two
/// either side of the current one; `None` marks a gap.
pub fn page_numbers(current: i64, pages: i64) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    let mut last = 0;
    for n in 1..=pages {
        if n == 1 || n == pages || (n - current).abs() <= 2 {
            if n > last + 1 {
                out.push(None);
            }
            out.push(Some(n));
            last = n;
        }
    }
    out
}

fn status_badge(enabled: bool) -> impl IntoView {
    let (class, text) = if enabled { ("badge ok", "enabled") } else { ("badge off", "disabled") };
    view! { <span class=class>{text}</span> }
}

/// The settings inputs shared by the create and edit forms.
#[component]
fn SettingsFields(
    error: Signal<Option<AppError>>,
    catalogue: Vec<ScopeView>,
    selected: Vec<String>,
    name: String,
    notes: String,
    ttl: i64,
    cap: i64,
    per_second: i64,
    per_hour: i64,
    servers: Vec<ResourceServerView>,
    token_format: TokenFormat,
    introspects: Option<String>,
    allowed_networks: Vec<String>,
) -> impl IntoView {
    let server_name = {
        let servers = servers.clone();
        move |identifier: &str| {
            servers.iter().find(|r| r.identifier == identifier).map(|r| r.name.clone()).unwrap_or_default()
        }
    };
    view! {
        <label for="name">"Name"</label>
        <input id="name" name="name" type="text" required maxlength="100" value=name/>
        <FieldMessage error=error field="name"/>
        <label for="notes">"Notes"</label>
        <textarea id="notes" name="notes" rows="3" maxlength="4000">{textarea_text(&notes)}</textarea>
        <FieldMessage error=error field="notes"/>
        <fieldset>
            <legend>"Allowed scopes"</legend>
            {catalogue.into_iter().map(|s| {
                let id = format!("scope-{}", s.name.replace([':', '.'], "-"));
                let checked = selected.contains(&s.name);
                view! {
                    <div class="check">
                        <input type="checkbox" id=id.clone() name="scopes[]" value=s.name.clone() checked=checked/>
                        <label for=id><code>{s.name.clone()}</code>" — "{s.description.clone()}
                            {s.resource_server.as_deref().map(|r| view! { <span class="muted">" ("{server_name(r)}")"</span> })}
                        </label>
                    </div>
                }
            }).collect_view()}
        </fieldset>
        <FieldMessage error=error field="scopes"/>
        <div class="grid2">
            <div>
                <label for="token_ttl_seconds">"Token lifetime (seconds)"</label>
                <input id="token_ttl_seconds" name="token_ttl_seconds" type="number" min="60" max="86400" required value=ttl.to_string()/>
                <FieldMessage error=error field="token_ttl_seconds"/>
            </div>
            <div>
                <label for="max_tokens">"Valid tokens at most"</label>
                <input id="max_tokens" name="max_tokens" type="number" min="1" max="1000" required value=cap.to_string()/>
                <FieldMessage error=error field="max_tokens"/>
            </div>
            <div>
                <label for="rate_per_second">"Requests per second"</label>
                <input id="rate_per_second" name="rate_per_second" type="number" min="1" required value=per_second.to_string()/>
                <FieldMessage error=error field="rate_per_second"/>
            </div>
            <div>
                <label for="rate_per_hour">"Requests per hour"</label>
                <input id="rate_per_hour" name="rate_per_hour" type="number" min="1" required value=per_hour.to_string()/>
                <FieldMessage error=error field="rate_per_hour"/>
            </div>
            <div>
                <label for="token_format">"Token format"</label>
                <select id="token_format" name="token_format" aria-describedby="token_format-help">
                    <option value="opaque" selected=token_format == TokenFormat::Opaque>"Opaque (checked by introspection)"</option>
                    <option value="jwt" selected=token_format == TokenFormat::Jwt>"JWT (verifiable offline)"</option>
                </select>
                <p class="muted" id="token_format-help">"A service that verifies a JWT offline sees a revocation only when the token expires: keep JWT lifetimes short."</p>
                <FieldMessage error=error field="token_format"/>
            </div>
            <div>
                <label for="introspects">"Introspection client of"</label>
                <select id="introspects" name="introspects" aria-describedby="introspects-help">
                    <option value="" selected=introspects.is_none()>"No resource server"</option>
                    {servers.iter().map(|r| {
                        let selected = introspects.as_deref() == Some(r.identifier.as_str());
                        view! { <option value=r.identifier.clone() selected=selected>{format!("{} ({})", r.name, r.identifier)}</option> }
                    }).collect_view()}
                </select>
                <p class="muted" id="introspects-help">"It may introspect the tokens meant for this resource server."</p>
                <FieldMessage error=error field="introspects"/>
            </div>
        </div>
        <label for="allowed_networks">"Allowed networks"</label>
        <textarea id="allowed_networks" name="allowed_networks" rows="3" aria-describedby="allowed_networks-help"
            placeholder="e.g. 10.0.0.0/8 or 192.168.1.20">{textarea_text(&allowed_networks.join("\n"))}</textarea>
        <p class="muted" id="allowed_networks-help">"One network per line in CIDR notation (a single address works too). Token requests and token uses from anywhere else are refused and audited. Leave empty to allow any address."</p>
        <FieldMessage error=error field="allowed_networks"/>
    }
}

#[component]
pub fn NewApplicationPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| load_new_application());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, |d| view! { <NewApplicationForm d=d/> }.into_any()))}
        </Suspense>
    }
}

#[component]
fn NewApplicationForm(d: NewApplicationData) -> impl IntoView {
    let action = ServerAction::<CreateApplication>::new();
    let error = form_error(action.value(), <CreateApplication as ServerFn>::PATH);
    let can_write = d.me.role.can_write();
    view! {
        <Frame me=d.me.clone() title="New application">
            <h1>"New API application"</h1>
            {if !can_write {
                view! { <p class="notice">"Viewers cannot create applications."</p> }.into_any()
            } else {
                view! {
                    <ActionForm action=action attr:class="card form wide">
                        <SettingsFields error=error catalogue=d.catalogue.clone() selected=vec![] name=String::new() notes=String::new()
                            ttl=keygate::DEFAULT_TOKEN_TTL_SECONDS cap=keygate::DEFAULT_MAX_TOKENS
                            per_second=keygate::DEFAULT_RATE_PER_SECOND per_hour=keygate::DEFAULT_RATE_PER_HOUR
                            servers=d.servers.clone() token_format=TokenFormat::Opaque introspects=None allowed_networks=vec![]/>
                        <FormMessage error=error/>
                        <button type="submit" disabled=move || action.pending().get()>"Create application"</button>
                    </ActionForm>
                }.into_any()
            }}
        </Frame>
    }
}

#[component]
pub fn ApplicationDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0));
    let query = use_query_map();
    let range = move || query.with(|q| q.get("range"));
    let listing =
        move || query.with(|q| TokenListing::from_query(q.get_str("tokens"), q.get_str("inactive"), q.get_str("page")));
    let update = ServerAction::<UpdateApplication>::new();
    let enable = ServerAction::<SetEnabled>::new();
    let regenerate = ServerAction::<RegenerateSecret>::new();
    let mint = ServerAction::<MintToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let extend = ServerAction::<ExtendToken>::new();
    let rotate = ServerAction::<RotateToken>::new();
    let delete = ServerAction::<DeleteApplication>::new();
    let end_overlap = ServerAction::<EndOverlap>::new();
    let data = Resource::new(
        move || {
            (
                id(),
                range(),
                listing(),
                update.version().get(),
                enable.version().get(),
                regenerate.version().get(),
                mint.version().get(),
                revoke.version().get(),
                extend.version().get(),
                rotate.version().get(),
                end_overlap.version().get(),
            )
        },
        |(id, range, listing, ..)| load_application(id, range, listing),
    );
    let tokens = TokenActions { revoke, extend, rotate };
    let actions = DetailActions { update, enable, regenerate, mint, tokens, delete, end_overlap };
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, move |d| view! { <ApplicationDetailView d=d actions=actions/> }.into_any()))}
        </Suspense>
    }
}

#[derive(Clone, Copy)]
struct DetailActions {
    update: ServerAction<UpdateApplication>,
    enable: ServerAction<SetEnabled>,
    regenerate: ServerAction<RegenerateSecret>,
    mint: ServerAction<MintToken>,
    tokens: TokenActions,
    delete: ServerAction<DeleteApplication>,
    end_overlap: ServerAction<EndOverlap>,
}

/// What a row of the tokens table can do to its token.
#[derive(Clone, Copy)]
struct TokenActions {
    revoke: ServerAction<RevokeToken>,
    extend: ServerAction<ExtendToken>,
    rotate: ServerAction<RotateToken>,
}

#[component]
fn ApplicationDetailView(d: ApplicationDetail, actions: DetailActions) -> impl IntoView {
    let DetailActions { update, enable, regenerate, mint, tokens, delete, end_overlap } = actions;
    let end_overlap_error = form_error(end_overlap.value(), <EndOverlap as ServerFn>::PATH);
    let impact = d.impact.clone();
    let app = d.app.clone();
    let can_write = d.me.role.can_write();
    let update_error = form_error(update.value(), <UpdateApplication as ServerFn>::PATH);
    let regen_error = form_error(regenerate.value(), <RegenerateSecret as ServerFn>::PATH);
    let enable_error = form_error(enable.value(), <SetEnabled as ServerFn>::PATH);
    let mint_error = form_error(mint.value(), <MintToken as ServerFn>::PATH);
    let delete_error = form_error(delete.value(), <DeleteApplication as ServerFn>::PATH);
    let revoke_error = form_error(tokens.revoke.value(), <RevokeToken as ServerFn>::PATH);
    let extend_error = form_error(tokens.extend.value(), <ExtendToken as ServerFn>::PATH);
    let rotate_error = form_error(tokens.rotate.value(), <RotateToken as ServerFn>::PATH);
    let allowed: Vec<ScopeView> = d.catalogue.iter().filter(|s| app.scopes.contains(&s.name)).cloned().collect();
    let now = d.now;
    let confirm_label = format!("Type \"{}\" to confirm", app.name);
    // A JWT names its audience; with no scope on any resource server the
    // token endpoint refuses, so say so where it can be fixed.
    let jwt_without_audience =
        app.token_format == TokenFormat::Jwt && !allowed.iter().any(|s| s.resource_server.is_some());
    view! {
        <Frame me=d.me.clone() title=app.name.clone()>
            <div class="page-head">
                <h1 data-testid="application-name">{app.name.clone()}</h1>
                {status_badge(app.enabled)}
            </div>
            <FormSaved path={<SetEnabled as ServerFn>::PATH} message={if app.enabled {
                "Application enabled: it can obtain tokens again."
            } else {
                "Application disabled: its tokens were revoked and it cannot obtain new ones."
            }}/>
            {d.flash.clone().map(|f| view! { <FlashPanel flash=f connect=d.connect.clone()/> })}
            {jwt_without_audience.then(|| view! {
                <p class="notice" role="status">"This application issues JWT access tokens, but none of its scopes belongs to a resource server, so a JWT would have no audience: the token endpoint refuses it (invalid_target). Attach its scopes to a resource server on the Scopes page, or switch it to opaque tokens."</p>
            })}
            <section class="card">
                <CopyField label="Client ID" value=app.client_id.clone() id="client-id"/>
                <dl class="facts">
                    <dt>"Allowed scopes"</dt><dd>{scope_list(&app.scopes)}</dd>
                    <dt>"Token lifetime"</dt><dd>{format!("{} s", app.token_ttl_seconds)}</dd>
                    <dt>"Valid tokens at most"</dt><dd>{app.max_tokens}</dd>
                    <dt>"Rate limits"</dt><dd>{format!("{}/s, {}/hour", app.rate_per_second, app.rate_per_hour)}</dd>
                    <dt>"Token format"</dt><dd>{match app.token_format { TokenFormat::Jwt => "JWT access tokens (RFC 9068)", TokenFormat::Opaque => "opaque" }}</dd>
                    {app.introspects.clone().map(|i| view! { <dt>"Introspects tokens for"</dt><dd><code>{i}</code></dd> })}
                    <dt>"Created"</dt><dd><RelTime at=app.created_at/></dd>
                    <dt>"Secret last regenerated"</dt><dd>{match app.secret_regenerated_at { Some(t) => view! { <RelTime at=t/> }.into_any(), None => view! { <span class="muted">"never"</span> }.into_any() }}</dd>
                    <dt>"Allowed networks"</dt><dd data-testid="allowed-networks">{if app.allowed_networks.is_empty() {
                        view! { <span class="muted">"any address"</span> }.into_any()
                    } else {
                        view! { <span>{app.allowed_networks.iter().map(|n| view! { <code>{n.clone()}</code>" " }).collect_view()}</span> }.into_any()
                    }}</dd>
                    <dt>"Notes"</dt><dd class="notes">{if app.notes.is_empty() { "—".to_string() } else { app.notes.clone() }}</dd>
                </dl>
            </section>

            <h2>"Client secrets"</h2>
            <FormMessage error=end_overlap_error/>
            <FormSaved path={<EndOverlap as ServerFn>::PATH} message="The overlap ended: only the current secret works now."/>
            <SecretsTable secrets=app.secrets.clone() app_id=app.id.0 can_write=can_write end_overlap=end_overlap/>

            <h2 id="tokens">"Access tokens"</h2>
            <FormMessage error=revoke_error/>
            <FormSaved path={<RevokeToken as ServerFn>::PATH} message="Token revoked: it is refused from now on."/>
            <FormSaved path={<ExtendToken as ServerFn>::PATH} message="Token extended: same value, new expiry (shown in its row)."/>
            <ActionMessage error=extend_error/>
            <ActionMessage error=rotate_error/>
            <TokenLists d=d.clone() can_write=can_write actions=tokens/>

            <ConnectPanel target=d.connect.clone() configured=d.public_url_configured/>

            <section class="activity" id="activity" aria-labelledby="activity-title">
                <h2 id="activity-title">"Activity"</h2>
                <RangeTabs href=format!("/applications/{}", app.id) current=d.activity.range/>
                <ActivityCharts series=d.activity.clone() subject=app.name.clone()/>
            </section>
            <RecentRefusals events=d.refusals.clone() client_id=app.client_id.clone()/>

            {can_write.then(|| view! {
                <details class="card" open=mint_error.get_untracked().is_some()>
                    <summary>"New token"</summary>
                    <ActionForm action=mint attr:class="form">
                        <input type="hidden" name="id" value=app.id.0.to_string()/>
                        <label for="token-name">"Token name"</label>
                        <input id="token-name" name="name" type="text" required maxlength="100" placeholder="e.g. deploy pipeline"
                            data-namesakes=serde_json::to_string(&d.active_token_names).unwrap_or_default()/>
                        <p class="field-warning" role="status" data-namesake-for="token-name"></p>
                        <FieldMessage error=mint_error field="name"/>
                        <fieldset>
                            <legend>"Scopes (from the application's allowed scopes)"</legend>
                            {if allowed.is_empty() {
                                view! { <p class="muted">"The application has no scopes; the token will reach only /api/v1/me."</p> }.into_any()
                            } else {
                                allowed.iter().map(|s| {
                                    let id = format!("mint-scope-{}", s.name.replace([':', '.'], "-"));
                                    view! {
                                        <div class="check">
                                            <input type="checkbox" id=id.clone() name="scopes[]" value=s.name.clone() checked=true/>
                                            <label for=id><code>{s.name.clone()}</code></label>
                                        </div>
                                    }
                                }).collect_view().into_any()
                            }}
                        </fieldset>
                        <FieldMessage error=mint_error field="scopes"/>
                        <label for="expiry">"Expires"</label>
                        <select id="expiry" name="expiry">
                            {EXPIRY_CHOICES.iter().map(|(v, l)| view! { <option value=*v selected=*v == "30">{expiry_label(v, l, now)}</option> }).collect_view()}
                        </select>
                        <label for="expires_on">"Expiry date (when \"On a date…\" is chosen)"</label>
                        <input id="expires_on" name="expires_on" type="date"/>
                        <FieldMessage error=mint_error field="expires_on"/>
                        <FieldMessage error=mint_error field="expires_at"/>
                        <FormMessage error=mint_error/>
                        <button type="submit">"Create token"</button>
                    </ActionForm>
                </details>
            })}

            {can_write.then(|| view! {
                <h2>"Settings"</h2>
                <ActionForm action=update attr:class="card form wide">
                    <input type="hidden" name="id" value=app.id.0.to_string()/>
                    <SettingsFields error=update_error catalogue=d.catalogue.clone() selected=app.scopes.clone()
                        name=app.name.clone() notes=app.notes.clone() ttl=app.token_ttl_seconds cap=app.max_tokens
                        per_second=app.rate_per_second per_hour=app.rate_per_hour
                        servers=d.servers.clone() token_format=app.token_format introspects=app.introspects.clone()
                        allowed_networks=app.allowed_networks.clone()/>
                    <FormMessage error=update_error/>
                    <FormSaved path={<UpdateApplication as ServerFn>::PATH} message="Settings saved."/>
                    <button type="submit">"Save settings"</button>
                </ActionForm>

                <h2>"Danger zone"</h2>
                <div class="card danger">
                    <ActionForm action=enable attr:class="form">
                        <input type="hidden" name="id" value=app.id.0.to_string()/>
                        <input type="hidden" name="enabled" value=(!app.enabled).to_string()/>
                        <h3>{if app.enabled { "Disable application" } else { "Enable application" }}</h3>
                        {if app.enabled {
                            view! {
                                <p>{format!(
                                    "A disabled application cannot obtain tokens. Disabling revokes its {} active token(s) at once; enabling it again does not bring them back.",
                                    app.active_tokens
                                )}</p>
                                {(app.active_tokens > 0).then(|| view! {
                                    <div class="check">
                                        <input type="checkbox" id="confirm-disable" name="confirm" value="yes" required/>
                                        <label for="confirm-disable">{format!("Yes, revoke {} active token(s) and disable", app.active_tokens)}</label>
                                    </div>
                                })}
                            }.into_any()
                        } else {
                            view! { <p>"Enabling lets the application obtain new tokens. Tokens revoked when it was disabled stay revoked."</p> }.into_any()
                        }}
                        <FieldMessage error=enable_error field="confirm_disable"/>
                        <FormMessage error=enable_error/>
                        <button type="submit" class="secondary">{if app.enabled { "Disable application" } else { "Enable application" }}</button>
                    </ActionForm>
                    <ActionForm action=regenerate attr:class="form">
                        <input type="hidden" name="id" value=app.id.0.to_string()/>
                        <h3>"Regenerate secret"</h3>
                        <ImpactPreview impact=impact.clone()/>
                        <fieldset data-testid="regenerate-choices">
                            <legend>"How to replace it"</legend>
                            <div class="check">
                                <input type="radio" id="mode-revoke" name="mode" value="revoke" checked=true/>
                                <label for="mode-revoke">{format!("Replace now and revoke every token ({} active token(s) stop working at once)", impact.active_tokens)}</label>
                            </div>
                            <div class="check">
                                <input type="radio" id="mode-keep" name="mode" value="keep_tokens"/>
                                <label for="mode-keep">"Replace now, but let existing tokens run to their expiry (the old secret stops working)"</label>
                            </div>
                            <div class="check">
                                <input type="radio" id="mode-overlap" name="mode" value="overlap"/>
                                <label for="mode-overlap">"Keep the previous secret working for a while, so clients can switch without downtime (tokens are kept)"</label>
                            </div>
                            <label for="overlap">"Previous secret keeps working for"</label>
                            <select id="overlap" name="overlap">
                                {OVERLAP_CHOICES.iter().map(|(v, l)| view! { <option value=*v selected=*v == "86400">{*l}</option> }).collect_view()}
                            </select>
                            <FieldMessage error=regen_error field="overlap"/>
                            <FieldMessage error=regen_error field="previous_secret_valid_for"/>
                        </fieldset>
                        <div class="check">
                            <input type="checkbox" id="confirm-regenerate" name="confirm" value="yes" required/>
                            <label for="confirm-regenerate">"Yes, replace the secret as chosen above"</label>
                        </div>
                        <FieldMessage error=regen_error field="confirm"/>
                        <FormMessage error=regen_error/>
                        <button type="submit" class="danger">"Regenerate secret"</button>
                    </ActionForm>
                    <ActionForm action=delete attr:class="form">
                        <input type="hidden" name="id" value=app.id.0.to_string()/>
                        <h3>"Delete application"</h3>
                        <p>"Deleting removes the application and all of its tokens. It cannot be undone."</p>
                        <label for="confirm_name">{confirm_label}</label>
                        <input id="confirm_name" name="confirm_name" type="text" required autocomplete="off"/>
                        <FieldMessage error=delete_error field="confirm_name"/>
                        <FormMessage error=delete_error/>
                        <button type="submit" class="danger">"Delete application"</button>
                    </ActionForm>
                </div>
            })}
        </Frame>
    }
}

/// The secrets that work now, current first, each with its last use and
/// addresses; a previous one counts down to the end of its overlap.
#[component]
fn SecretsTable(
    secrets: Vec<keygate::SecretView>,
    app_id: i64,
    can_write: bool,
    end_overlap: ServerAction<EndOverlap>,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table data-testid="secrets">
                <thead>
                    <tr>
                        <th scope="col">"Secret"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Stops working"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col">"Recent addresses"</th>
                        {can_write.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {secrets.into_iter().map(|s| view! {
                        <tr data-secret=if s.current { "current" } else { "previous" }>
                            <td data-label="Secret">{if s.current { "current" } else { "previous" }}</td>
                            <td data-label="Created"><RelTime at=s.created_at/></td>
                            <td data-label="Stops working">{match s.expires_at {
                                Some(at) => view! { <span class="badge warn">"overlap ends "<RelTime at=at/></span> }.into_any(),
                                None => view! { <span class="muted">"when replaced"</span> }.into_any(),
                            }}</td>
                            <td data-label="Last used">{last_used(s.last_used_at)}
                                {s.last_used_ip.clone().map(|ip| view! { <span class="muted small">" from "<code>{ip}</code></span> })}
                            </td>
                            <td data-label="Recent addresses"><AddressList seen=s.recent_addresses.clone()/></td>
                            {can_write.then(|| view! {
                                <td>
                                    {(!s.current).then(|| view! {
                                        <details class="confirm">
                                            <summary>"End overlap now"<span class="sr-only">{format!(" (previous secret, created {})", keygate::time_fmt::exact_utc(s.created_at))}</span></summary>
                                            <ActionForm action=end_overlap attr:class="inline-form">
                                                <input type="hidden" name="id" value=app_id.to_string()/>
                                                <input type="hidden" name="secret_id" value=s.id.0.to_string()/>
                                                <p class="small">"Clients still using the previous secret will be refused at once."</p>
                                                <button type="submit" class="danger">"Confirm: previous secret stops working"</button>
                                            </ActionForm>
                                        </details>
                                    })}
                                </td>
                            })}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// Distinct addresses with when each was last seen.
#[component]
fn AddressList(seen: Vec<keygate::AddressSeen>) -> impl IntoView {
    if seen.is_empty() {
        return view! { <span class="muted">"none yet"</span> }.into_any();
    }
    view! {
        <ul class="addresses">
            {seen.into_iter().map(|a| view! { <li><code>{a.ip}</code>" "<span class="muted small"><RelTime at=a.last_seen_at/></span></li> }).collect_view()}
        </ul>
    }
    .into_any()
}

/// What regenerating the secret would break, before anyone confirms.
#[component]
fn ImpactPreview(impact: keygate::SecretImpact) -> impl IntoView {
    let shown: Vec<TokenView> = impact.tokens.iter().take(10).cloned().collect();
    let more = impact.tokens.len().saturating_sub(shown.len());
    let current = impact.secrets.iter().find(|s| s.current).cloned();
    view! {
        <div class="impact" data-testid="impact">
            <p><strong>{format!("{} active token(s)", impact.active_tokens)}</strong>" would be revoked if tokens are revoked."</p>
            {current.map(|s| match s.last_used_at {
                Some(at) => view! {
                    <p>"The current secret was last used "<RelTime at=at/>
                        {s.last_used_ip.map(|ip| view! { " from "<code>{ip}</code> })}"."</p>
                }.into_any(),
                None => view! { <p>"The current secret has never been used."</p> }.into_any(),
            })}
            {(!shown.is_empty()).then(|| view! {
                <table class="compact">
                    <caption class="sr-only">"Tokens that would be revoked"</caption>
                    <thead><tr><th scope="col">"Token"</th><th scope="col">"Last used"</th><th scope="col">"From"</th><th scope="col">"Expires"</th></tr></thead>
                    <tbody>
                        {shown.into_iter().map(|t| view! {
                            <tr>
                                <td>{t.name.clone().unwrap_or_else(|| "token endpoint".into())}" "<code>{format!("{}…", t.display_prefix)}</code></td>
                                <td>{last_used(t.last_used_at)}</td>
                                <td>{t.last_used_ip.clone().map(|ip| view! { <code>{ip}</code> }.into_any()).unwrap_or_else(|| view! { <span class="muted">"—"</span> }.into_any())}</td>
                                <td><RelTime at=t.expires_at/></td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {(more > 0).then(|| view! { <p class="muted">{format!("and {more} more")}</p> })}
        </div>
    }
}

/// The latest refusals of an application, folded as the audit log folds
/// them, with a link to all of them there.
#[component]
fn RecentRefusals(events: Vec<keygate::AuditEventView>, client_id: String) -> impl IntoView {
    // By client ID: unique, where a name could be part of another's.
    let all = format!("/audit?application={}&action=refusals", url_encode(&client_id));
    view! {
        <section class="card" aria-labelledby="refusals-title" data-testid="recent-refusals">
            <h2 id="refusals-title">"Recent failures"</h2>
            {if events.is_empty() {
                view! { <p class="muted">"No refusals of this application in the audit log: no wrong secrets, refused tokens, rate limits, refused scopes or tokens revoked by its cap."</p> }.into_any()
            } else {
                view! {
                    <ul class="events">
                        {events.into_iter().map(|e| {
                            let reason = refusal_code(&e);
                            view! {
                                <li>
                                    <RelTime at=e.at/>" "
                                    <code class="reason">{reason}</code>" "
                                    <span class="sentence">{keygate::audit_text::describe(&e)}</span>
                                    " "<span class="muted">{e.client_ip.clone().map(|ip| format!("from {ip}")).unwrap_or_else(|| "from an unknown address".into())}</span>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <p><a href=all>"Every refusal of this application in the audit log →"</a></p>
        </section>
    }
}

/// The short code a failure is shown with: its reason, its OAuth error,
/// or what happened.
fn refusal_code(e: &keygate::AuditEventView) -> String {
    let detail = |k: &str| e.details.get(k).and_then(|r| r.as_str()).map(str::to_owned);
    detail("reason").or_else(|| detail("error")).unwrap_or_else(|| match e.action.as_str() {
        "application.rate_limited" => "rate_limited".into(),
        "token.evicted" => "token_cap".into(),
        _ => "refused".into(),
    })
}

/// How to use this application's credentials: the endpoints, the auth
/// method, and ready-to-run snippets (token, then `GET /api/v1/me`).
#[component]
fn ConnectPanel(target: keygate::snippets::SnippetTarget, configured: bool) -> impl IntoView {
    let token_url = format!("{}/oauth2/token", target.base_url);
    let metadata_url = format!("{}/.well-known/oauth-authorization-server", target.base_url);
    view! {
        <section class="card connect" id="connect" aria-labelledby="connect-title" data-testid="connect">
            <h2 id="connect-title">"Connect"</h2>
            {(!configured).then(|| view! {
                <p class="notice" role="note">{format!("These use {}, the address Keygate listens on. If clients reach it by another name, start Keygate with --public-url.", target.base_url)}</p>
            })}
            <dl class="facts">
                <dt>"Token endpoint"</dt><dd><code>{token_url}</code></dd>
                <dt>"Server metadata"</dt><dd><code>{metadata_url}</code></dd>
                <dt>"Authentication"</dt><dd>"HTTP Basic with the client ID and secret ("<code>"client_secret_basic"</code>"), or both in the form body ("<code>"client_secret_post"</code>")"</dd>
                <dt>"Grant"</dt><dd><code>"grant_type=client_credentials"</code>{(!target.scopes.is_empty()).then(|| view! { ", "<code>{format!("scope={}", target.scopes.join(" "))}</code> })}</dd>
            </dl>
            <Snippets target=target prefix="snippet"/>
        </section>
    }
}

/// The five snippets, one open at a time (plain `<details>`, so they work
/// without JavaScript); each with a copy button.
#[component]
fn Snippets(target: keygate::snippets::SnippetTarget, prefix: &'static str) -> impl IntoView {
    view! {
        <p class="muted">{format!("Each obtains a token and calls GET /api/v1/me. Set {} to the client secret first.", keygate::snippets::SECRET_VARIABLE)}</p>
        <div class="snippets">
            {keygate::snippets::snippets(&target)
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let id = format!("{prefix}-{}", s.id);
                    view! {
                        <details class="snippet" open=i == 0 name=prefix>
                            <summary>{s.label}</summary>
                            <p class="muted">{s.how_to_run}</p>
                            <div class="snippet-code">
                                // Focusable: at phone width it scrolls sideways, by keyboard too.
                                <pre tabindex="0" aria-label=format!("{} snippet", s.label)><code id=id.clone() data-testid=id.clone()>{s.code}</code></pre>
                                <CopyButton target=id label=format!("Copy the {} snippet", s.label)/>
                            </div>
                        </details>
                    }
                })
                .collect_view()}
        </div>
    }
}

#[component]
pub fn FlashPanel(flash: Flash, #[prop(optional)] connect: Option<keygate::snippets::SnippetTarget>) -> impl IntoView {
    crate::components::no_store_page();
    let is_secret = flash.kind == FlashKind::ClientSecret;
    let (label, id, what) = match flash.kind {
        FlashKind::ClientSecret => ("Client secret", "new-secret", "secret"),
        FlashKind::AccessToken => ("Access token", "new-token", "token"),
        FlashKind::WebhookSecret => ("Signing secret", "new-webhook-secret", "signing secret"),
    };
    view! {
        <section class="card reveal" role="status">
            <p><strong>{flash.note.clone()}</strong></p>
            <p class="warning">{format!(
                "Copy the {what} now. It is shown only this once: Keygate stores only a hash of it, so nobody can show it to you again."
            )}</p>
            <CopyField label=label value=flash.value.clone() id=id/>
            {connect.clone().filter(|_| is_secret).map(|target| view! {
                <h3>"Try it"</h3>
                <Snippets target=target prefix="new-secret-snippet"/>
            })}
            {connect.filter(|_| flash.kind == FlashKind::AccessToken).map(|target| {
                // The token goes in a variable, not in the command line (and
                // so not in the shell's history).
                let usage = format!(
                    "read -rs KEYGATE_TOKEN   # paste the token, then Enter\n\
                     curl -H \"Authorization: Bearer $KEYGATE_TOKEN\" {}/api/v1/me",
                    target.base_url.trim_end_matches('/')
                );
                view! {
                    <h3>"Use it"</h3>
                    <p>"Send it in the " <code>"Authorization"</code> " header of each request, as " <code>"Bearer <token>"</code> ". For example, Keygate's own API answers who the token belongs to:"</p>
                    <div class="snippet-code"><pre><code id="new-token-usage">{usage}</code></pre></div>
                    <CopyButton target="new-token-usage".to_owned() label="Copy the example request".to_owned()/>
                }
            })}
        </section>
    }
}

fn token_badges(t: &TokenView, now: i64) -> AnyView {
    match t.state(now) {
        TokenState::Revoked => view! { <span class="badge off">"revoked"</span> }.into_any(),
        TokenState::Expired => view! { <span class="badge off">"expired"</span> }.into_any(),
        // Rotated with an overlap: still works, until the overlap ends.
        TokenState::Active if t.replaced_by.is_some() => view! {
            <span class="badge warn" title="Rotated: a new value replaced this one, which works only until the overlap ends">"replaced"</span>
        }
        .into_any(),
        TokenState::Active if t.expires_soon(now) => {
            view! { <span class="badge warn">"expires soon"</span> }.into_any()
        }
        TokenState::Active => view! { <span class="badge ok">"active"</span> }.into_any(),
    }
}

/// Every refusal of a token row's action, above the table: the rows' forms
/// are many, one place says why.
#[component]
fn ActionMessage(error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <p class="form-error" role="alert" tabindex="-1" data-outcome="">{e.to_string()}</p> })
    }
}

/// The named tokens, or (one click away) the token endpoint's, a page at
/// a time, active ones unless asked; the token endpoint's summarised.
#[component]
fn TokenLists(d: ApplicationDetail, can_write: bool, actions: TokenActions) -> impl IntoView {
    let (app, summary, listing, now) = (d.app.id.0, d.token_summary, d.listing, d.now);
    let hidden = summary.count(listing.issued, true) - summary.count(listing.issued, false);
    let (toggle_text, toggle_to) = if listing.inactive {
        (Some("Hide revoked and expired".to_owned()), TokenListing { inactive: false, page: 1, ..listing })
    } else {
        let text = (hidden > 0).then(|| format!("Show {hidden} revoked or expired"));
        (text, TokenListing { inactive: true, page: 1, ..listing })
    };
    let toggle = toggle_text.map(|text| {
        view! { <a class="toggle" href=toggle_to.href(app) data-testid="toggle-inactive">{text}</a> }
    });
    let caption = if listing.issued { "Tokens from the token endpoint" } else { "Named tokens" };
    let empty = match (listing.issued, listing.inactive || hidden == 0) {
        (false, true) => "No named tokens yet.".to_owned(),
        (false, false) => format!("No active named tokens ({hidden} revoked or expired hidden)."),
        (true, true) => "The token endpoint has issued no tokens that are still kept.".to_owned(),
        (true, false) => format!("No active tokens from the token endpoint ({hidden} revoked or expired hidden)."),
    };
    let list_issued = TokenListing { issued: true, inactive: false, page: 1 };
    let back = TokenListing { issued: false, inactive: false, page: 1 };
    let page_link = move |page: i64| TokenListing { page, ..listing }.href(app);
    view! {
        {listing.issued.then(|| view! { <p><a href=back.href(app) data-testid="named-tokens-link">"← Named tokens"</a></p> })}
        {listing.issued.then(|| view! { <IssuedSummary s=summary max_tokens=d.app.max_tokens list=None/> })}
        <div class="list-head">
            <p class="muted" data-testid="token-count">{format!("{caption}: {} active", summary.count(listing.issued, false))}</p>
            {toggle}
        </div>
        {if d.tokens.is_empty() {
            view! { <p class="empty" data-testid="no-tokens">{empty}</p> }.into_any()
        } else {
            view! { <TokensTable tokens=d.tokens.clone() now=now can_write=can_write actions=actions caption=caption issued=listing.issued/> }.into_any()
        }}
        {(d.token_pages > 1).then(|| view! {
            <nav class="pager" aria-label="Token pages">
                {(listing.page > 1).then(|| view! { <a href=page_link(listing.page - 1) rel="prev">"← Previous"</a> })}
                <span>{format!("Page {} of {}", listing.page, d.token_pages)}</span>
                {(listing.page < d.token_pages).then(|| view! { <a href=page_link(listing.page + 1) rel="next">"Next →"</a> })}
            </nav>
        })}
        {(!listing.issued).then(|| view! { <IssuedSummary s=summary max_tokens=d.app.max_tokens list=Some(list_issued.href(app))/> })}
    }
}

/// The token endpoint's tokens in four figures, and a link to their list.
#[component]
fn IssuedSummary(s: keygate::TokenSummary, max_tokens: i64, list: Option<String>) -> impl IntoView {
    let when = |at: Option<i64>| match at {
        Some(at) => view! { <RelTime at=at/> }.into_any(),
        None => view! { <span class="muted">"never"</span> }.into_any(),
    };
    view! {
        <section class="card issued-summary" data-testid="issued-summary" aria-labelledby="issued-title">
            <h3 id="issued-title">"From the token endpoint"</h3>
            <dl class="facts">
                <dt>"Active now"</dt><dd data-testid="issued-active">{format!("{} (at most {max_tokens})", s.issued_active)}</dd>
                <dt>"Issued, still kept"</dt><dd data-testid="issued-total">{s.issued_total}</dd>
                <dt>"Last issued"</dt><dd>{when(s.issued_last_at)}</dd>
                <dt>"Last used"</dt><dd>{when(s.issued_last_used_at)}</dd>
            </dl>
            {list.filter(|_| s.issued_total > 0).map(|href| view! {
                <a href=href data-testid="issued-link">{format!("List the token endpoint's tokens ({} active)", s.issued_active)}</a>
            })}
        </section>
    }
}

#[component]
fn TokensTable(
    tokens: Vec<TokenView>,
    now: i64,
    can_write: bool,
    actions: TokenActions,
    caption: &'static str,
    issued: bool,
) -> impl IntoView {
    let TokenActions { revoke, extend, rotate } = actions;
    view! {
        <div class="table-wrap">
            <table data-testid="tokens">
                <caption class="sr-only">{caption}</caption>
                <thead>
                    <tr>
                        {(!issued).then(|| view! { <th scope="col">"Name"</th> })}
                        <th scope="col">"Token"</th>
                        <th scope="col">"Scopes"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"State"</th>
                        {can_write.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {tokens.into_iter().map(|t| {
                        let state = t.state(now);
                        let label = t.name.clone().unwrap_or_else(|| format!("{}…", t.display_prefix));
                        let ends = match (state, t.revoked_at) {
                            (TokenState::Revoked, Some(at)) => view! {
                                <span data-testid="revoked-at">"revoked "<RelTime at=at/>{t.revoked_by.clone().map(|by| format!(" by {by}"))}</span>
                            }.into_any(),
                            (TokenState::Expired, _) => view! { <span>"expired "<RelTime at=t.expires_at/></span> }.into_any(),
                            _ => view! { <RelTime at=t.expires_at/> }.into_any(),
                        };
                        view! {
                            <tr data-token=t.display_prefix.clone()>
                                {(!issued).then(|| view! { <td data-label="Name">{label.clone()}</td> })}
                                <td data-label="Token"><code>{format!("{}…", t.display_prefix)}</code></td>
                                <td data-label="Scopes">{scope_list(&t.scopes)}</td>
                                <td data-label="Created"><RelTime at=t.created_at/></td>
                                <td data-label="Last used" class="last-used">{last_used(t.last_used_at)}
                                    {t.last_used_ip.clone().map(|ip| view! { <span class="muted small">" from "<code>{ip}</code></span> })}
                                    {(t.recent_addresses.len() > 1).then(|| view! {
                                        <details class="addresses-more">
                                            <summary>{format!("{} addresses", t.recent_addresses.len())}<span class="sr-only">{format!(" of token {label}")}</span></summary>
                                            <AddressList seen=t.recent_addresses.clone()/>
                                        </details>
                                    })}
                                </td>
                                <td data-label="Expires">{ends}</td>
                                <td data-label="State">{token_badges(&t, now)}
                                    {t.revoked_reason.clone().map(|r| view! { <span class="muted small">{format!(" ({})", r.replace('_', " "))}</span> })}
                                </td>
                                {(can_write).then(|| view! {
                                    <td class="row-actions">
                                        {(state == TokenState::Active && t.source != keygate::TokenSource::TokenEndpoint && t.replaced_by.is_none()).then(|| {
                                            let id = t.id.0;
                                            let (extend_name, set_name) = (format!("Extend token {label}"), format!("Set the new expiry of {label}"));
                                            let (rotate_name, confirm_rotate) = (format!("Rotate token {label}"), format!("Confirm rotating {label}"));
                                            view! {
                                                <details class="confirm row-action">
                                                    <summary aria-label=extend_name>"Extend"</summary>
                                                    <ActionForm action=extend attr:class="inline-form stacked">
                                                        <input type="hidden" name="token_id" value=id.to_string()/>
                                                        <label for=format!("extend-expiry-{id}")>"New expiry (same value)"</label>
                                                        <select id=format!("extend-expiry-{id}") name="expiry">
                                                            {EXPIRY_CHOICES.iter().map(|(v, l)| view! { <option value=*v selected=*v == "90">{expiry_label(v, &format!("{l} from now").replace("On a date… from now", "On a date…"), now)}</option> }).collect_view()}
                                                        </select>
                                                        <label for=format!("extend-date-{id}")>"Date (for \"On a date…\")"</label>
                                                        <input id=format!("extend-date-{id}") name="expires_on" type="date"/>
                                                        <button type="submit" aria-label=set_name>"Set expiry"</button>
                                                    </ActionForm>
                                                </details>
                                                <details class="confirm row-action">
                                                    <summary aria-label=rotate_name>"Rotate"</summary>
                                                    <ActionForm action=rotate attr:class="inline-form stacked">
                                                        <input type="hidden" name="token_id" value=id.to_string()/>
                                                        <p class="muted small">"A new value with the same name and scopes, shown once. Whatever holds the old value must switch."</p>
                                                        <label for=format!("rotate-overlap-{id}")>"The old value"</label>
                                                        <select id=format!("rotate-overlap-{id}") name="previous_valid_for">
                                                            {ROTATION_OVERLAP_CHOICES.iter().map(|(v, l)| view! { <option value=*v selected=*v == "3600">{*l}</option> }).collect_view()}
                                                        </select>
                                                        <button type="submit" class="danger" aria-label=confirm_rotate>"Rotate token"</button>
                                                    </ActionForm>
                                                </details>
                                            }
                                        })}
                                        {(state == TokenState::Active).then(|| view! {
                                            <details class="confirm row-action">
                                                <summary aria-label=format!("Revoke token {label}")>"Revoke"</summary>
                                                <ActionForm action=revoke attr:class="inline-form">
                                                    <input type="hidden" name="token_id" value=t.id.0.to_string()/>
                                                    <button type="submit" class="danger" aria-label=format!("Confirm revoking {label}")>"Confirm revoke"</button>
                                                </ActionForm>
                                            </details>
                                        })}
                                    </td>
                                })}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
