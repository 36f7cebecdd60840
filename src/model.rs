//! Model types shared by the server and the browser: newtype IDs, roles,
//! application settings with their validation, and the read-only views the
//! console and API return. Times are Unix seconds (UTC).

use crate::error::CoreError;
use crate::scope::ScopeSet;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// Primary key of an API application.
    ApplicationId
);
id_type!(
    /// Primary key of a token.
    TokenId
);
id_type!(
    /// Primary key of an administrator.
    AdminId
);
id_type!(
    /// Primary key of an audit event.
    AuditEventId
);
id_type!(
    /// Primary key of a resource server.
    ResourceServerId
);
id_type!(
    /// Primary key of one of an application's client secrets.
    SecretId
);
id_type!(
    /// Primary key of a webhook.
    WebhookId
);
id_type!(
    /// Primary key of a queued webhook delivery.
    DeliveryId
);

/// The identifier (audience) of Keygate's own API, the built-in resource
/// server: a URN, so it does not change with the public URL.
pub const BUILTIN_RESOURCE_SERVER: &str = "urn:keygate:api";
pub const MAX_IDENTIFIER_LEN: usize = 200;

/// What the token endpoint hands an application: a random opaque token
/// (the default) or a signed JWT access token (RFC 9068).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum TokenFormat {
    #[default]
    Opaque,
    Jwt,
}

impl TokenFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Opaque => "opaque",
            TokenFormat::Jwt => "jwt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "opaque" => Some(TokenFormat::Opaque),
            "jwt" => Some(TokenFormat::Jwt),
            _ => None,
        }
    }
}

/// Checks a resource server identifier: an absolute URI (a scheme, a colon
/// and more), printable ASCII without spaces, quotes or backslashes, so it is
/// safe in a space-delimited `aud` list, a header and a URL.
pub fn validate_identifier(identifier: &str) -> Result<String, CoreError> {
    let id = identifier.trim();
    let field = "identifier";
    if id.is_empty() || id.len() > MAX_IDENTIFIER_LEN {
        return Err(CoreError::invalid(field, format!("an identifier has 1 to {MAX_IDENTIFIER_LEN} characters")));
    }
    if !id.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '<' | '>' | '`' | '{' | '}' | '|' | '^')) {
        return Err(CoreError::invalid(field, "an identifier is a URI: printable ASCII, no spaces or quotes"));
    }
    let wrong = || {
        CoreError::invalid(
            field,
            "an identifier is an https://, http:// or urn: URI, such as https://billing.internal/ or urn:acme:billing",
        )
    };
    let (scheme, rest) = id.split_once(':').ok_or_else(wrong)?;
    match scheme {
        "https" | "http" => {
            let after = rest.strip_prefix("//").ok_or_else(wrong)?;
            let authority = after.split(['/', '?']).next().unwrap_or("");
            // host[:port], or [IPv6][:port]; no user info.
            let (host, port) = match authority.strip_prefix('[') {
                Some(v6) => {
                    let (inside, after) = v6.split_once(']').ok_or_else(wrong)?;
                    let inside_ok =
                        !inside.is_empty() && inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
                    if !inside_ok {
                        return Err(wrong());
                    }
                    let port = if after.is_empty() { None } else { Some(after.strip_prefix(':').ok_or_else(wrong)?) };
                    ("ipv6", port)
                }
                None => match authority.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (authority, None),
                },
            };
            let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
            let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
            if !host_ok || !port_ok {
                return Err(CoreError::invalid(
                    field,
                    "an https:// or http:// identifier needs a host (and at most a port)",
                ));
            }
        }
        "urn" => {
            let (nid, nss) = rest.split_once(':').ok_or_else(wrong)?;
            let nid_ok = (1..=32).contains(&nid.len())
                && nid.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && nid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !nid_ok || nss.is_empty() {
                return Err(CoreError::invalid(
                    field,
                    "a urn: identifier is urn:NAMESPACE:NAME, such as urn:acme:billing",
                ));
            }
        }
        _ => return Err(wrong()),
    }
    if id.contains('#') {
        return Err(CoreError::invalid(field, "an identifier has no fragment (#…), as RFC 8707 says"));
    }
    Ok(id.to_owned())
}

/// Seeds' defaults (BeyondTrust): 1-hour tokens, 30 valid tokens from the
/// token endpoint, 20 requests/s and 15,000 requests/hour.
pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 3600;
pub const DEFAULT_MAX_TOKENS: i64 = 30;
pub const DEFAULT_RATE_PER_SECOND: i64 = 20;
pub const DEFAULT_RATE_PER_HOUR: i64 = 15_000;

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_NOTES_LEN: usize = 4000;
/// Longest lifetime for a token from the token endpoint: one day.
pub const MAX_ENDPOINT_TTL_SECONDS: i64 = 86_400;
/// Longest lifetime for a named token: two years.
pub const MAX_NAMED_TTL_SECONDS: i64 = 2 * 366 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Role {
    Owner,
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// Owners and admins change things; viewers only look.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum TokenSource {
    /// `POST /oauth2/token`: short-lived, counted against the cap.
    TokenEndpoint,
    /// Minted by an administrator in the console.
    Console,
    /// Minted through the management API.
    Api,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::TokenEndpoint => "token_endpoint",
            TokenSource::Console => "console",
            TokenSource::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "token_endpoint" => Some(TokenSource::TokenEndpoint),
            "console" => Some(TokenSource::Console),
            "api" => Some(TokenSource::Api),
            _ => None,
        }
    }
}

/// What an administrator (or a script) asks for when creating an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationSettings {
    pub name: String,
    pub notes: String,
    pub scopes: ScopeSet,
    pub token_ttl_seconds: i64,
    pub max_tokens: i64,
    pub rate_per_second: i64,
    pub rate_per_hour: i64,
    pub token_format: TokenFormat,
    /// The resource server (by identifier) whose tokens this application
    /// may introspect, as that server's own introspection client.
    pub introspects: Option<String>,
    /// CIDR networks the secret and tokens may be used from (canonical
    /// once validated); empty means anywhere.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

impl ApplicationSettings {
    pub fn new(name: impl Into<String>) -> Self {
        ApplicationSettings {
            name: name.into(),
            notes: String::new(),
            scopes: ScopeSet::empty(),
            token_ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
            max_tokens: DEFAULT_MAX_TOKENS,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            rate_per_hour: DEFAULT_RATE_PER_HOUR,
            token_format: TokenFormat::Opaque,
            introspects: None,
            allowed_networks: Vec::new(),
        }
    }

    /// The current settings of an application, as a starting point for a change.
    pub fn of(view: &ApplicationView) -> Self {
        ApplicationSettings {
            name: view.name.clone(),
            notes: view.notes.clone(),
            // Stored scopes were validated on the way in.
            scopes: ScopeSet::from_names(&view.scopes).unwrap_or_default(),
            token_ttl_seconds: view.token_ttl_seconds,
            max_tokens: view.max_tokens,
            rate_per_second: view.rate_per_second,
            rate_per_hour: view.rate_per_hour,
            token_format: view.token_format,
            introspects: view.introspects.clone(),
            allowed_networks: view.allowed_networks.clone(),
        }
    }

    /// Trims the name and checks every field, naming the first bad one.
    pub fn validated(mut self) -> Result<Self, CoreError> {
        self.name = validate_name(&self.name)?;
        if self.notes.contains('\0') {
            return Err(CoreError::invalid("notes", "notes may not contain NUL characters"));
        }
        if self.notes.chars().count() > MAX_NOTES_LEN {
            return Err(CoreError::invalid("notes", format!("notes have at most {MAX_NOTES_LEN} characters")));
        }
        if !(60..=MAX_ENDPOINT_TTL_SECONDS).contains(&self.token_ttl_seconds) {
            return Err(CoreError::invalid(
                "token_ttl_seconds",
                format!("token lifetime must be between 60 and {MAX_ENDPOINT_TTL_SECONDS} seconds"),
            ));
        }
        if !(1..=1000).contains(&self.max_tokens) {
            return Err(CoreError::invalid("max_tokens", "the token cap must be between 1 and 1000"));
        }
        if !(1..=100_000).contains(&self.rate_per_second) {
            return Err(CoreError::invalid("rate_per_second", "requests per second must be between 1 and 100000"));
        }
        if !(1..=100_000_000).contains(&self.rate_per_hour) {
            return Err(CoreError::invalid("rate_per_hour", "requests per hour must be between 1 and 100000000"));
        }
        self.introspects = match self.introspects.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(id) => Some(validate_identifier(id).map_err(|_| {
                CoreError::invalid("introspects", "name the resource server by its identifier (an absolute URI)")
            })?),
        };
        self.allowed_networks = crate::network::AllowedNetworks::parse_list(&self.allowed_networks)?.names();
        Ok(self)
    }
}

/// When a named token expires, as each entry point lets people say it:
/// a lifetime (API `expires_in`, CLI `--expires-in`), a moment (API
/// `expires_at`), a number of days (console, CLI `--days`) or a date
/// (console, CLI `--expires-on`; the token expires at its start, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenExpiry {
    InSeconds(i64),
    At(i64),
    Days(i64),
    OnDate(String),
}

impl TokenExpiry {
    /// The expiry as Unix seconds, checked: in the future and at most two
    /// years away. Errors name the field `expires_at`.
    pub fn resolve(&self, now: i64) -> Result<i64, CoreError> {
        let at = match self {
            TokenExpiry::InSeconds(s) => now.saturating_add(*s),
            TokenExpiry::At(at) => *at,
            TokenExpiry::Days(d) => now.saturating_add(d.saturating_mul(86_400)),
            TokenExpiry::OnDate(date) => {
                let format = time::macros::format_description!("[year]-[month]-[day]");
                time::Date::parse(date.trim(), &format)
                    .map_err(|_| CoreError::invalid("expires_at", "the expiry date is YYYY-MM-DD"))?
                    .midnight()
                    .assume_utc()
                    .unix_timestamp()
            }
        };
        if at <= now {
            return Err(CoreError::invalid("expires_at", "the expiry must be in the future"));
        }
        if at - now > MAX_NAMED_TTL_SECONDS {
            return Err(CoreError::invalid("expires_at", "a token lives at most two years"));
        }
        Ok(at)
    }
}

/// The longest text an audit event keeps of anything a caller sent
/// (usernames tried, client IDs presented, names): enough to recognise it,
/// too little to fill the database.
pub const MAX_AUDIT_TEXT_LEN: usize = 128;

/// `text` cut to `max` characters, control characters replaced, with an
/// ellipsis when it was cut.
/// The value an administrator's console sessions carry (see
/// `Store::admin_for_session`); drawn anew at every password reset.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionBinding(pub String);

impl std::fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionBinding(<redacted>)")
    }
}

#[cfg(feature = "ssr")]
impl SessionBinding {
    pub fn generate() -> Self {
        SessionBinding(crate::secret::generate_setup_code())
    }
}

pub fn bounded_text(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Every string inside an audit event's details, bounded as [`bounded_text`] does.
pub fn bounded_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(bounded_text(s, MAX_AUDIT_TEXT_LEN)),
        Value::Array(items) => Value::Array(items.iter().take(64).map(bounded_json).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().take(64).map(|(k, v)| (bounded_text(k, 64), bounded_json(v))).collect())
        }
        other => other.clone(),
    }
}

pub fn validate_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CoreError::invalid("name", "a name is required"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(CoreError::invalid("name", format!("a name has at most {MAX_NAME_LEN} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(CoreError::invalid("name", "a name cannot contain control characters"));
    }
    // Zero-width and other invisible characters alone would make a name
    // nobody can see or tell apart.
    let invisible = |c: char| {
        c.is_whitespace() || matches!(c, '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
    };
    if name.chars().all(invisible) {
        return Err(CoreError::invalid("name", "a name needs at least one visible character"));
    }
    Ok(name.to_owned())
}

pub fn validate_username(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(CoreError::invalid("username", "a username has 1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')) {
        return Err(CoreError::invalid("username", "a username uses letters, digits and . _ - @ only"));
    }
    Ok(name.to_owned())
}

/// OWASP ASVS asks for at least 12 characters; we cap at 1024 so hashing
/// stays bounded.
pub fn validate_password(password: &str) -> Result<(), CoreError> {
    let n = password.chars().count();
    if n < 12 {
        return Err(CoreError::invalid("password", "a password needs at least 12 characters"));
    }
    if n > 1024 {
        return Err(CoreError::invalid("password", "a password has at most 1024 characters"));
    }
    Ok(())
}

/// An application as the console and the API show it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApplicationView {
    pub id: ApplicationId,
    pub name: String,
    pub notes: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub enabled: bool,
    pub token_ttl_seconds: i64,
    pub max_tokens: i64,
    pub rate_per_second: i64,
    pub rate_per_hour: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub secret_regenerated_at: Option<i64>,
    pub active_tokens: i64,
    /// The latest use of any of its tokens or secrets.
    pub last_used_at: Option<i64>,
    pub token_format: TokenFormat,
    /// Identifier of the resource server whose tokens it may introspect.
    pub introspects: Option<String>,
    /// CIDR networks its secret and tokens may be used from; empty means anywhere.
    pub allowed_networks: Vec<String>,
    /// Its live secrets, current first (filled when one application is
    /// read; empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretView>,
}

/// One of an application's client secrets (never its value): the current
/// one, or the previous one while an overlap lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SecretView {
    pub id: SecretId,
    pub current: bool,
    pub created_at: i64,
    /// When a previous secret stops working; `None` for the current one.
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<String>,
    /// The last few distinct addresses it was used from, latest first.
    pub recent_addresses: Vec<AddressSeen>,
}

/// What regenerating the secret now would break: the valid tokens (each
/// with its last use and address) and the secrets with their last uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SecretImpact {
    pub application_id: ApplicationId,
    /// Tokens that die if tokens are revoked.
    pub active_tokens: i64,
    /// Those tokens, most recently used first.
    pub tokens: Vec<TokenView>,
    /// The live secrets, current first, with their last use.
    pub secrets: Vec<SecretView>,
}

/// An address a credential was used from, and when last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AddressSeen {
    pub ip: String,
    pub last_seen_at: i64,
}

/// How many distinct addresses are kept per token and per secret.
pub const RECENT_ADDRESSES_KEPT: usize = 5;

/// A token as listed: never the token itself, only its display prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: TokenId,
    pub application_id: ApplicationId,
    pub name: Option<String>,
    pub display_prefix: String,
    pub scopes: Vec<String>,
    /// Identifiers of the resource servers the token is for.
    pub audience: Vec<String>,
    pub source: TokenSource,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// Who revoked it: an administrator, an application, "the CLI"; none
    /// for the token cap (and tokens revoked before this was recorded).
    #[serde(default)]
    pub revoked_by: Option<String>,
    /// The token that replaced it when it was rotated: this one works at
    /// most until its (overlap) expiry, and is not extended or rotated again.
    #[serde(default)]
    pub replaced_by: Option<TokenId>,
    /// The last few distinct addresses it was used from, latest first.
    #[serde(default)]
    pub recent_addresses: Vec<AddressSeen>,
}

/// The key the applications list sorts names by: lower case, with every
/// run of digits written as its length (two digits) and then the digits
/// without leading zeros, so that byte order is natural order
/// ("etl-job-2" before "etl-job-10").
pub fn natural_sort_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len() + 8);
    let mut digits = String::new();
    let flush = |digits: &mut String, key: &mut String| {
        if !digits.is_empty() {
            let trimmed = digits.trim_start_matches('0');
            let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
            key.push_str(&format!("{:02}{trimmed}", trimmed.len().min(99)));
            digits.clear();
        }
    };
    for c in name.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut key);
            key.extend(c.to_lowercase());
        }
    }
    flush(&mut digits, &mut key);
    key
}

/// An application's tokens at a glance: its named tokens, and the
/// token endpoint's, which pile up and are summarised rather than listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSummary {
    pub named_active: i64,
    /// Named tokens revoked or expired (hidden unless asked for).
    pub named_inactive: i64,
    pub issued_active: i64,
    /// Every token the endpoint issued that is still stored.
    pub issued_total: i64,
    pub issued_last_at: Option<i64>,
    pub issued_last_used_at: Option<i64>,
}

impl TokenSummary {
    /// How many tokens a list of one kind holds, with or without the
    /// revoked and expired ones.
    pub fn count(&self, issued: bool, include_inactive: bool) -> i64 {
        match (issued, include_inactive) {
            (false, false) => self.named_active,
            (false, true) => self.named_active + self.named_inactive,
            (true, false) => self.issued_active,
            (true, true) => self.issued_total,
        }
    }
}

/// The state of a token at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenView {
    pub fn state(&self, now: i64) -> TokenState {
        token_state(self.revoked_at, self.expires_at, now)
    }

    /// Whether to warn that this named token expires soon (see
    /// [`expires_soon`]); token-endpoint tokens are short-lived by design,
    /// and a rotated token's overlap is meant to end.
    pub fn expires_soon(&self, now: i64) -> bool {
        self.source != TokenSource::TokenEndpoint
            && self.replaced_by.is_none()
            && self.state(now) == TokenState::Active
            && expires_soon(self.created_at, self.expires_at, now)
    }
}

/// The warning window for a named token's end: its last 7 days.
pub const EXPIRES_SOON_SECONDS: i64 = 7 * 86_400;

/// A token expires soon in the last 7 days of its life *and* the last
/// quarter of its lifetime: a 7-day token is not flagged at birth, a
/// 1-day token only in its last 6 hours. The "Needs attention" query
/// applies the same rule in SQL.
pub fn expires_soon(created_at: i64, expires_at: i64, now: i64) -> bool {
    let left = expires_at - now;
    left > 0 && left <= EXPIRES_SOON_SECONDS && left.saturating_mul(4) <= expires_at - created_at
}

/// A token is revoked from `revoked_at` on, and expired from `expires_at` on
/// (the second it expires it is no longer valid).
pub fn token_state(revoked_at: Option<i64>, expires_at: i64, now: i64) -> TokenState {
    if revoked_at.is_some_and(|r| r <= now) {
        TokenState::Revoked
    } else if now >= expires_at {
        TokenState::Expired
    } else {
        TokenState::Active
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AdminView {
    pub id: AdminId,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    pub last_sign_in_at: Option<i64>,
    /// Their password was chosen by someone else (`admin add`, a reset):
    /// they must choose their own before doing anything else.
    #[serde(default)]
    pub must_change_password: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ScopeView {
    pub name: String,
    pub description: String,
    pub builtin: bool,
    /// Identifier of the resource server the scope belongs to, if any.
    pub resource_server: Option<String>,
}

/// An API that accepts Keygate tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ResourceServerView {
    pub id: ResourceServerId,
    pub name: String,
    /// The audience tokens for it carry; fixed once created.
    pub identifier: String,
    pub builtin: bool,
    pub created_at: i64,
    /// The scopes that belong to it.
    pub scopes: Vec<String>,
    /// Names of the applications that introspect its tokens.
    pub introspection_clients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEventView {
    pub id: AuditEventId,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub client_ip: Option<String>,
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub details: serde_json::Value,
    /// The application the event concerns, while it still exists (not a
    /// later one under a reused id): what the console links to.
    #[serde(default)]
    pub application_id: Option<ApplicationId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardStats {
    pub applications: i64,
    pub enabled_applications: i64,
    pub active_tokens: i64,
    pub audit_events_24h: i64,
}

#[cfg(test)]
mod identifier_tests {
    use super::validate_identifier;

    #[test]
    fn identifiers_are_https_http_or_urn_uris() {
        for ok in [
            "https://billing.internal/",
            "http://localhost:8080/api",
            "https://[::1]:443/x",
            "urn:acme:billing",
            "urn:keygate:api",
        ] {
            assert_eq!(validate_identifier(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "billing",
            "HTTPS://ORDERS.INTERNAL/",
            "URN:KEYGATE:API",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://[::1",
            "https://",
            "https://user@host/",
            "https://host:abc/",
            "https://x/#frag",
            "urn:acme",
            "urn::x",
            "https://bad host/",
        ] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_sort_keys_order_numbers_by_value() {
        let mut names = vec![
            "etl-job-10",
            "etl-job-2",
            "ETL-job-1",
            "etl-job-002b",
            "etl-job",
            "alpha",
            "etl-job-10a",
            "a0",
            "a00001",
        ];
        names.sort_by_key(|n| natural_sort_key(n));
        assert_eq!(
            names,
            vec![
                "a0",
                "a00001",
                "alpha",
                "etl-job",
                "ETL-job-1",
                "etl-job-2",
                "etl-job-002b",
                "etl-job-10",
                "etl-job-10a"
            ]
        );
        assert_eq!(natural_sort_key("Job-7"), "job-017");
        assert_eq!(natural_sort_key("  x  "), "x");
    }

    #[test]
    fn token_state_boundaries() {
        assert_eq!(token_state(None, 100, 99), TokenState::Active);
        assert_eq!(token_state(None, 100, 100), TokenState::Expired);
        assert_eq!(token_state(Some(50), 100, 60), TokenState::Revoked);
        assert_eq!(token_state(Some(50), 100, 200), TokenState::Revoked);
    }

    #[test]
    fn expires_soon_only_near_the_end_of_a_tokens_life() {
        const DAY: i64 = 86_400;
        // A 7-day token: not at birth, from its last 1.75 days.
        assert!(!expires_soon(0, 7 * DAY, 0));
        assert!(!expires_soon(0, 7 * DAY, 5 * DAY));
        assert!(expires_soon(0, 7 * DAY, 7 * DAY - 42 * 3600));
        // A 90-day token: its last 7 days.
        assert!(!expires_soon(0, 90 * DAY, 83 * DAY - 1));
        assert!(expires_soon(0, 90 * DAY, 83 * DAY));
        // A 1-day token: its last 6 hours; never once expired.
        assert!(!expires_soon(0, DAY, 17 * 3600));
        assert!(expires_soon(0, DAY, 18 * 3600));
        assert!(!expires_soon(0, DAY, DAY));
    }

    #[test]
    fn settings_validation_names_the_field() {
        let mut s = ApplicationSettings::new("  billing-sync ");
        assert_eq!(s.clone().validated().unwrap().name, "billing-sync");
        s.token_ttl_seconds = 5;
        match s.validated() {
            Err(CoreError::Invalid { field, .. }) => assert_eq!(field, "token_ttl_seconds"),
            other => panic!("{other:?}"),
        }
        assert!(ApplicationSettings::new("   ").validated().is_err());
        assert!(ApplicationSettings::new("a\u{7}b").validated().is_err());
    }

    #[test]
    fn token_expiry_forms_and_bounds() {
        let now = 1_800_000_000;
        assert_eq!(TokenExpiry::InSeconds(60).resolve(now).unwrap(), now + 60);
        assert_eq!(TokenExpiry::Days(7).resolve(now).unwrap(), now + 7 * 86_400);
        assert_eq!(TokenExpiry::At(now + 5).resolve(now).unwrap(), now + 5);
        assert_eq!(TokenExpiry::OnDate("2027-01-16".into()).resolve(now).unwrap(), 1_800_057_600);
        for bad in
            [TokenExpiry::InSeconds(0), TokenExpiry::At(now), TokenExpiry::Days(800), TokenExpiry::OnDate("x".into())]
        {
            assert!(matches!(bad.resolve(now), Err(CoreError::Invalid { field: "expires_at", .. })), "{bad:?}");
        }
    }

    #[test]
    fn password_and_username_rules() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("correct horse battery").is_ok());
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("al ice").is_err());
    }
}

/// A webhook as listed and shown (never its signing secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    pub description: String,
    /// Audit actions, families and alerts it receives.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Deliveries waiting for a (first or next) attempt.
    pub pending: i64,
    /// Deliveries that failed for good.
    pub failed: i64,
    pub last_delivered_at: Option<i64>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One event sent (or to be sent) to one webhook, with every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    /// The `webhook-id` header, the same on every attempt.
    pub message_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempts: Vec<AttemptView>,
}

/// One attempt to deliver: the answer's status (or why there was none),
/// how long it took and the start of the answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AttemptView {
    pub at: i64,
    pub duration_ms: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub response_excerpt: String,
}

/// Days without a use after which an application counts as dormant, by default.
pub const DEFAULT_DORMANT_AFTER_DAYS: i64 = 90;

/// How long an application goes unused before it counts as dormant.
pub fn dormant_period_seconds(dormant_after_days: i64) -> i64 {
    dormant_after_days.max(1) * 86_400
}

/// An enabled application created and last used (by any token or secret)
/// at or before this moment is dormant at `now`.
pub fn dormant_cutoff(now: i64, dormant_after_days: i64) -> i64 {
    now - dormant_period_seconds(dormant_after_days)
}

/// What needs an administrator's attention, for the overview's panel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NeedsAttention {
    /// Named tokens expiring within 7 days, soonest first.
    pub expiring_tokens: Vec<AttentionToken>,
    /// Previous secrets whose overlap ends within 24 hours, soonest first.
    pub ending_overlaps: Vec<AttentionSecret>,
    /// Enabled applications unused for the dormancy period, longest
    /// unused first.
    pub dormant_applications: Vec<AttentionApplication>,
    /// Disabled applications that still hold valid tokens.
    pub disabled_with_tokens: Vec<AttentionApplication>,
    pub dormant_after_days: i64,
    /// How many there are of each kind; each list holds the first of them.
    pub totals: AttentionTotals,
}

/// How many things of each kind need attention, listed or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AttentionTotals {
    pub expiring_tokens: i64,
    pub ending_overlaps: i64,
    pub dormant_applications: i64,
    pub disabled_with_tokens: i64,
}

impl NeedsAttention {
    pub fn is_empty(&self) -> bool {
        self.expiring_tokens.is_empty()
            && self.ending_overlaps.is_empty()
            && self.dormant_applications.is_empty()
            && self.disabled_with_tokens.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AttentionToken {
    pub token_id: TokenId,
    pub name: String,
    pub application_id: ApplicationId,
    pub application_name: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AttentionSecret {
    pub secret_id: SecretId,
    pub application_id: ApplicationId,
    pub application_name: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AttentionApplication {
    pub application_id: ApplicationId,
    pub application_name: String,
    pub created_at: i64,
    /// The last use of any of its tokens or secrets.
    pub last_used_at: Option<i64>,
    pub active_tokens: i64,
}
