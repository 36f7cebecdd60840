//! API applications: their settings and secrets.

use super::{last_used_of_a, live_tokens_of_a, on_pool, on_tx, split_scopes, Backend, Page, Store, Tx};
use crate::error::CoreError;
use crate::model::*;
use crate::secret::SecretDigest;

/// Paging and filtering of the applications list.
#[derive(Debug, Clone)]
pub struct ApplicationQuery {
    /// Matches name or client ID (substring, case-insensitive).
    pub search: Option<String>,
    pub sort: ApplicationSort,
    pub status: ApplicationStatus,
    pub page: i64,
    pub per_page: i64,
    /// What `ApplicationStatus::Dormant` means: pass the server's setting
    /// (`Default` gives `DEFAULT_DORMANT_AFTER_DAYS`).
    pub dormant_after_days: i64,
}

impl Default for ApplicationQuery {
    fn default() -> Self {
        ApplicationQuery {
            search: None,
            sort: ApplicationSort::default(),
            status: ApplicationStatus::default(),
            page: 1,
            per_page: 50,
            dormant_after_days: DEFAULT_DORMANT_AFTER_DAYS,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ApplicationSort {
    /// Natural order of names ("etl-job-2" before "etl-job-10").
    #[default]
    Name,
    Newest,
    /// Most recently used first, never used last.
    LastUsed,
    /// Most active tokens first.
    ActiveTokens,
}

/// Which applications a list keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ApplicationStatus {
    #[default]
    Any,
    Enabled,
    Disabled,
    /// Neither a token nor a secret of it was ever used (see `last_used_of_a`).
    NeverUsed,
    /// Enabled, and neither created nor used (by a token or a secret)
    /// within the dormancy period: what the overview's panel lists.
    Dormant,
}

impl ApplicationSort {
    pub const ALL: [ApplicationSort; 4] =
        [ApplicationSort::Name, ApplicationSort::Newest, ApplicationSort::LastUsed, ApplicationSort::ActiveTokens];

    /// The name in URLs and the API's `sort` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationSort::Name => "name",
            ApplicationSort::Newest => "newest",
            ApplicationSort::LastUsed => "last_used",
            ApplicationSort::ActiveTokens => "active_tokens",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl ApplicationStatus {
    pub const ALL: [ApplicationStatus; 5] = [
        ApplicationStatus::Any,
        ApplicationStatus::Enabled,
        ApplicationStatus::Disabled,
        ApplicationStatus::NeverUsed,
        ApplicationStatus::Dormant,
    ];

    /// The name in URLs and the API's `status` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationStatus::Any => "any",
            ApplicationStatus::Enabled => "enabled",
            ApplicationStatus::Disabled => "disabled",
            ApplicationStatus::NeverUsed => "never_used",
            ApplicationStatus::Dormant => "dormant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Whether the application `alias` is dormant at the SQL expression
/// `cutoff` (see `crate::model::dormant_cutoff`): the applications list's
/// filter and the overview's panel read the same rule.
pub(super) fn dormant_condition(alias: &str, cutoff: &str) -> String {
    format!(
        "{alias}.enabled = TRUE AND {alias}.created_at <= {cutoff} \
         AND NOT EXISTS (SELECT 1 FROM tokens u WHERE u.application_id = {alias}.id AND u.last_used_at > {cutoff}) \
         AND NOT EXISTS (SELECT 1 FROM client_secrets u WHERE u.application_id = {alias}.id AND u.last_used_at > {cutoff}) \
         AND COALESCE({alias}.removed_credentials_last_used_at, 0) <= {cutoff}"
    )
}

/// The WHERE clause of the list for table alias `t` (`a` for the page,
/// `c` for its count), with the search pattern as parameter `param` and
/// `now` as `$1`.
fn list_filter(alias: &str, search: bool, q: &ApplicationQuery, param: &str) -> String {
    let mut conditions = Vec::new();
    if search {
        // lower() on both sides: PostgreSQL's LIKE is case-sensitive, SQLite's is not.
        conditions.push(format!(
            "(lower({alias}.name) LIKE lower({param}) ESCAPE '\\' OR lower({alias}.client_id) LIKE lower({param}) ESCAPE '\\')"
        ));
    }
    match q.status {
        ApplicationStatus::Any => {}
        ApplicationStatus::Enabled => conditions.push(format!("{alias}.enabled = TRUE")),
        ApplicationStatus::Disabled => conditions.push(format!("{alias}.enabled = FALSE")),
        // Neither a token nor a secret of it ever used (see `last_used_of_a`).
        ApplicationStatus::NeverUsed => conditions.push(format!(
            "NOT EXISTS (SELECT 1 FROM tokens u WHERE u.application_id = {alias}.id AND u.last_used_at IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM client_secrets u WHERE u.application_id = {alias}.id AND u.last_used_at IS NOT NULL) \
             AND {alias}.removed_credentials_last_used_at IS NULL"
        )),
        // The period is the server's setting, not a client's value: written
        // into the statement, it keeps one cached statement per filter.
        ApplicationStatus::Dormant => conditions
            .push(dormant_condition(alias, &format!("($1 - {})", dormant_period_seconds(q.dormant_after_days)))),
    }
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// One application as a query reads it: a database row (one application)
/// or an element of a page's JSON array (see `list_applications`).
#[derive(sqlx::FromRow, serde::Deserialize)]
struct ApplicationRow {
    id: i64,
    name: String,
    notes: String,
    client_id: String,
    scopes: String,
    /// SQLite stores booleans as integers, so its JSON says 1 or 0.
    #[serde(deserialize_with = "super::bool_or_integer")]
    enabled: bool,
    token_ttl_seconds: i64,
    max_tokens: i64,
    rate_per_second: i64,
    rate_per_hour: i64,
    created_at: i64,
    updated_at: i64,
    secret_regenerated_at: Option<i64>,
    active_tokens: i64,
    last_used_at: Option<i64>,
    token_format: String,
    introspects: Option<String>,
    allowed_networks: String,
}

/// A page of the list in one row: its applications as a JSON array, and
/// how many match.
#[derive(sqlx::FromRow)]
struct ApplicationPageRow {
    items: String,
    total: i64,
}

impl From<ApplicationRow> for ApplicationView {
    fn from(r: ApplicationRow) -> Self {
        ApplicationView {
            id: ApplicationId(r.id),
            name: r.name,
            notes: r.notes,
            client_id: r.client_id,
            scopes: split_scopes(&r.scopes),
            enabled: r.enabled,
            token_ttl_seconds: r.token_ttl_seconds,
            max_tokens: r.max_tokens,
            rate_per_second: r.rate_per_second,
            rate_per_hour: r.rate_per_hour,
            created_at: r.created_at,
            updated_at: r.updated_at,
            secret_regenerated_at: r.secret_regenerated_at,
            active_tokens: r.active_tokens,
            last_used_at: r.last_used_at,
            token_format: TokenFormat::parse(&r.token_format).unwrap_or_default(),
            introspects: r.introspects,
            allowed_networks: crate::network::AllowedNetworks::from_stored(&r.allowed_networks).names(),
            secrets: Vec::new(),
        }
    }
}

/// `$1` is `now` (for `active_tokens`, see `live_tokens_of_a`).
const APPLICATION_COLUMNS: &str = concat!(
    "a.id, a.name, a.notes, a.client_id, a.scopes, a.enabled, a.token_ttl_seconds, \
     a.token_format, (SELECT r.identifier FROM resource_servers r WHERE r.id = a.introspects_resource_server_id) \
     AS introspects, a.allowed_networks, a.max_tokens, a.rate_per_second, a.rate_per_hour, a.created_at, a.updated_at, a.secret_regenerated_at, ",
    live_tokens_of_a!(),
    " AS active_tokens, ",
    last_used_of_a!(),
    " AS last_used_at"
);

/// The names of `APPLICATION_COLUMNS`, for the JSON object each
/// application of a page becomes.
const APPLICATION_FIELDS: [&str; 18] = [
    "id",
    "name",
    "notes",
    "client_id",
    "scopes",
    "enabled",
    "token_ttl_seconds",
    "token_format",
    "introspects",
    "allowed_networks",
    "max_tokens",
    "rate_per_second",
    "rate_per_hour",
    "created_at",
    "updated_at",
    "secret_regenerated_at",
    "active_tokens",
    "last_used_at",
];

/// `$1` is `now`, `$2` the id.
fn application_by_id_sql() -> String {
    format!("SELECT {APPLICATION_COLUMNS} FROM applications a WHERE a.id = $2")
}

fn name_taken(name: &str) -> impl FnOnce(sqlx::Error) -> CoreError + '_ {
    move |e| match CoreError::from(e) {
        CoreError::Conflict(_) => CoreError::invalid("name", format!("an application named \"{name}\" already exists")),
        other => other,
    }
}

impl Store {
    /// One application with its live secrets.
    pub async fn application(&self, id: ApplicationId, now: i64) -> Result<Option<ApplicationView>, CoreError> {
        let sql = application_by_id_sql();
        let row: Option<ApplicationRow> =
            on_pool!(self, |p| sqlx::query_as(&sql).bind(now).bind(id.0).fetch_optional(p).await?);
        let Some(mut view) = row.map(ApplicationView::from) else { return Ok(None) };
        view.secrets = self.secrets_of(id, now).await?;
        Ok(Some(view))
    }

    /// The application, or `NotFound`.
    pub async fn require_application(&self, id: ApplicationId, now: i64) -> Result<ApplicationView, CoreError> {
        self.application(id, now).await?.ok_or(CoreError::NotFound("application"))
    }

    pub async fn application_id_by_name(&self, name: &str) -> Result<Option<ApplicationId>, CoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar::<_, i64>(
            "SELECT id FROM applications WHERE lower(name) = lower($1)"
        )
        .bind(name.trim())
        .fetch_optional(p)
        .await?
        .map(ApplicationId)))
    }

    /// Writes the natural sort key of applications that have none (those
    /// from before the key existed); a no-op once every row has one.
    pub(super) async fn fill_name_keys(&self) -> Result<(), CoreError> {
        let missing: Vec<(i64, String)> =
            on_pool!(self, |p| sqlx::query_as("SELECT id, name FROM applications WHERE name_key IS NULL")
                .fetch_all(p)
                .await?);
        if missing.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for (id, name) in missing {
            on_tx!(tx, |c| sqlx::query("UPDATE applications SET name_key = $1 WHERE id = $2")
                .bind(natural_sort_key(&name))
                .bind(id)
                .execute(c)
                .await?
                .rows_affected());
        }
        tx.commit().await
    }

    pub async fn list_applications(&self, q: &ApplicationQuery, now: i64) -> Result<Page<ApplicationView>, CoreError> {
        let per_page = q.per_page.clamp(1, 200);
        let page = q.page.max(1);
        let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let pattern = search.map(|s| {
            let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let searching = pattern.is_some();
        let filter = match list_filter("a", searching, q, "$2") {
            // Every parameter appears in the statement (PostgreSQL types each one).
            f if f.is_empty() => "WHERE $2 IS NULL".to_owned(),
            f if !searching => format!("{f} AND $2 IS NULL"),
            f => f,
        };
        // The page's order, inside (over the table) and outside (over the
        // page's rows, which the JSON array keeps).
        let (order, page_order) = match q.sort {
            ApplicationSort::Name => ("a.name_key ASC, a.id ASC", "p.name_key ASC, p.id ASC"),
            ApplicationSort::Newest => ("a.id DESC", "p.id DESC"),
            ApplicationSort::LastUsed => {
                ("last_used_at DESC NULLS LAST, a.id DESC", "p.last_used_at DESC NULLS LAST, p.id DESC")
            }
            ApplicationSort::ActiveTokens => {
                ("active_tokens DESC, a.name_key ASC, a.id ASC", "p.active_tokens DESC, p.name_key ASC, p.id ASC")
            }
        };
        // The whole page comes back as one row holding a JSON array: on
        // SQLite every row is a hand-off between the connection's thread
        // and the caller's, which cost about as much as the query itself.
        // (An ORDER BY inside an aggregate needs SQLite 3.44; sqlx builds
        // its bundled 3.46.)
        // The total rides along as an uncorrelated subquery (evaluated
        // once), so even a page past the end says how many there are.
        // Without a filter it is a bare COUNT(*), which SQLite answers
        // without evaluating a WHERE clause per row (20 times faster at
        // 10,000).
        let count_filter = list_filter("c", searching, q, "$2");
        let fields = APPLICATION_FIELDS.iter().map(|f| format!("'{f}', p.{f}")).collect::<Vec<_>>().join(", ");
        let items = match self.backend() {
            Backend::Sqlite => format!("json_group_array(json_object({fields}) ORDER BY {page_order})"),
            Backend::Postgres => {
                format!("COALESCE(json_agg(json_build_object({fields}) ORDER BY {page_order}), '[]'::json)::text")
            }
        };
        let sql = format!(
            "SELECT {items} AS items, (SELECT COUNT(*) FROM applications c {count_filter}) AS total FROM \
             (SELECT {APPLICATION_COLUMNS}, a.name_key FROM applications a {filter} ORDER BY {order} LIMIT $3 OFFSET $4) p"
        );
        let row = on_pool!(self, |p| sqlx::query_as::<_, ApplicationPageRow>(&sql)
            .bind(now)
            .bind(&pattern)
            .bind(per_page)
            .bind((page - 1).saturating_mul(per_page))
            .fetch_one(p)
            .await?);
        let rows: Vec<ApplicationRow> = serde_json::from_str(&row.items).map_err(|e| {
            // Not the error's text: it may quote a value.
            tracing::error!(kind = ?e.classify(), column = e.column(), "an applications page did not decode");
            CoreError::Internal("an applications page did not decode".into())
        })?;
        let total = row.total;
        let items = rows.into_iter().map(ApplicationView::from).collect();
        Ok(Page { items, total, page, per_page })
    }
}

impl Tx {
    pub async fn application(&mut self, id: ApplicationId, now: i64) -> Result<Option<ApplicationView>, CoreError> {
        let sql = application_by_id_sql();
        let row: Option<ApplicationRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(now).bind(id.0).fetch_optional(c).await?);
        let Some(mut view) = row.map(ApplicationView::from) else { return Ok(None) };
        view.secrets = self.secrets_of(id, now).await?;
        Ok(Some(view))
    }

    pub async fn require_application(&mut self, id: ApplicationId, now: i64) -> Result<ApplicationView, CoreError> {
        self.application(id, now).await?.ok_or(CoreError::NotFound("application"))
    }

    /// Inserts an application with validated settings; returns its id.
    pub async fn insert_application(
        &mut self,
        s: &ApplicationSettings,
        client_id: &str,
        secret: &SecretDigest,
        now: i64,
    ) -> Result<ApplicationId, CoreError> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query_scalar(
            "INSERT INTO applications (name, notes, client_id, allowed_networks, scopes, enabled, token_ttl_seconds, \
             max_tokens, rate_per_second, rate_per_hour, created_at, updated_at, token_format, \
             introspects_resource_server_id, name_key) \
             VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $8, $9, $10, $10, $11, \
             (SELECT id FROM resource_servers WHERE identifier = $12), $13) RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.notes)
        .bind(client_id)
        .bind(s.allowed_networks.join(" "))
        .bind(s.scopes.to_string())
        .bind(s.token_ttl_seconds)
        .bind(s.max_tokens)
        .bind(s.rate_per_second)
        .bind(s.rate_per_hour)
        .bind(now)
        .bind(s.token_format.as_str())
        .bind(s.introspects.as_deref())
        .bind(natural_sort_key(&s.name))
        .fetch_one(c)
        .await
        .map_err(name_taken(&s.name))?
        });
        let id = ApplicationId(id);
        self.insert_secret(id, secret, now).await?;
        self.clients_changed = true;
        Ok(id)
    }

    /// Writes validated settings and the enabled flag.
    pub async fn update_application(
        &mut self,
        id: ApplicationId,
        s: &ApplicationSettings,
        enabled: bool,
        now: i64,
    ) -> Result<(), CoreError> {
        let updated: Option<i64> = on_tx!(self, |c| sqlx::query_scalar(
            "UPDATE applications SET name = $1, notes = $2, scopes = $3, enabled = $4, token_ttl_seconds = $5, \
             max_tokens = $6, rate_per_second = $7, rate_per_hour = $8, updated_at = $9, token_format = $11, \
             introspects_resource_server_id = (SELECT id FROM resource_servers WHERE identifier = $12), \
             allowed_networks = $13, name_key = $14 WHERE id = $10 RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.notes)
        .bind(s.scopes.to_string())
        .bind(enabled)
        .bind(s.token_ttl_seconds)
        .bind(s.max_tokens)
        .bind(s.rate_per_second)
        .bind(s.rate_per_hour)
        .bind(now)
        .bind(id.0)
        .bind(s.token_format.as_str())
        .bind(s.introspects.as_deref())
        .bind(s.allowed_networks.join(" "))
        .bind(natural_sort_key(&s.name))
        .fetch_optional(c)
        .await
        .map_err(name_taken(&s.name))?);
        self.clients_changed = true;
        updated.map(|_| ()).ok_or(CoreError::NotFound("application"))
    }

    /// Deletes an application and (by cascade) its tokens.
    pub async fn delete_application(&mut self, id: ApplicationId) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM applications WHERE id = $1")
            .bind(id.0)
            .execute(c)
            .await?
            .rows_affected());
        self.clients_changed = true;
        Ok(done == 1)
    }

    /// Sets only the enabled flag, leaving tokens alone (tests build
    /// states older versions could leave behind).
    #[cfg(test)]
    pub async fn set_enabled_only_for_tests(&mut self, id: ApplicationId, enabled: bool) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query("UPDATE applications SET enabled = $1 WHERE id = $2")
            .bind(enabled)
            .bind(id.0)
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Revokes every unrevoked token of an application; returns how many.
    pub async fn revoke_application_tokens(
        &mut self,
        id: ApplicationId,
        reason: &str,
        by: &str,
        now: i64,
    ) -> Result<u64, CoreError> {
        Ok(on_tx!(self, |c| sqlx::query(
            "UPDATE tokens SET revoked_at = $1, revoked_reason = $2, revoked_by = $4 \
             WHERE application_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id.0)
        .bind(by)
        .execute(c)
        .await?
        .rows_affected()))
    }
}
