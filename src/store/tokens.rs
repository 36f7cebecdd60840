//! Tokens: the bearer check on the hot path, lists, named tokens,
//! revocation and last-use batches.

use super::{on_pool, on_tx, scope_set, split_scopes, Db, Page, Store, Tx};
use crate::error::CoreError;
use crate::grant::{judge_token, StoredTokenState, TokenRejection};
use crate::model::*;
use crate::scope::ScopeSet;
use crate::secret::{AccessToken, SecretDigest};
use serde::Serialize;

/// Who a valid bearer token speaks for.
#[derive(Debug, Clone, Serialize)]
pub struct TokenContext {
    pub token_id: TokenId,
    pub application_id: ApplicationId,
    pub client_id: String,
    pub application_name: String,
    pub scopes: ScopeSet,
    /// Identifiers of the resource servers the token is for.
    pub audience: Vec<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub token_name: Option<String>,
    pub rate_per_second: i64,
    pub rate_per_hour: i64,
    /// Where the application's tokens may be used from.
    #[serde(skip)]
    pub allowed_networks: crate::network::AllowedNetworks,
}

impl TokenContext {
    /// Whether the token may be used from `from` (the application's
    /// allowlist); the refusal is audited like any other.
    pub fn check_origin(&self, from: Option<std::net::IpAddr>) -> Result<(), TokenRejection> {
        if self.allowed_networks.admits(from) {
            Ok(())
        } else {
            Err(TokenRejection::AddressNotAllowed)
        }
    }
}

/// A token that was refused, with enough to audit it.
#[derive(Debug, Clone)]
pub struct RejectedToken {
    pub rejection: TokenRejection,
    pub token_id: Option<TokenId>,
    pub application_id: Option<ApplicationId>,
    pub application_name: Option<String>,
    /// A named token's name, for the audit log.
    pub token_name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    application_id: i64,
    name: Option<String>,
    display_prefix: String,
    scopes: String,
    audience: String,
    source: String,
    created_at: i64,
    expires_at: i64,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
    revoked_by: Option<String>,
    replaced_by: Option<i64>,
}

impl From<TokenRow> for TokenView {
    fn from(r: TokenRow) -> Self {
        TokenView {
            id: TokenId(r.id),
            application_id: ApplicationId(r.application_id),
            name: r.name,
            display_prefix: r.display_prefix,
            scopes: split_scopes(&r.scopes),
            audience: split_scopes(&r.audience),
            source: TokenSource::parse(&r.source).unwrap_or(TokenSource::Api),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            last_used_ip: r.last_used_ip,
            revoked_at: r.revoked_at,
            revoked_reason: r.revoked_reason,
            revoked_by: r.revoked_by,
            replaced_by: r.replaced_by.map(TokenId),
            recent_addresses: Vec::new(),
        }
    }
}

const TOKEN_COLUMNS: &str =
    "id, application_id, name, display_prefix, scopes, audience, source, created_at, expires_at, \
     last_used_at, last_used_ip, revoked_at, revoked_reason, revoked_by, replaced_by";

const TOKEN_BY_ID: &str =
    "SELECT id, application_id, name, display_prefix, scopes, audience, source, created_at, expires_at, \
     last_used_at, last_used_ip, revoked_at, revoked_reason, revoked_by, replaced_by FROM tokens WHERE id = $1";

/// What the bearer check reads: the token joined to its application.
#[derive(sqlx::FromRow)]
struct CheckRow {
    id: i64,
    application_id: i64,
    token_hash: Vec<u8>,
    name: Option<String>,
    scopes: String,
    audience: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
    client_id: String,
    app_name: String,
    enabled: bool,
    app_scopes: String,
    rate_per_second: i64,
    rate_per_hour: i64,
    allowed_networks: String,
}

/// How long after its expiry a token is swept: the issuer's evictions
/// only touch tokens that have not expired at the batch's time, so the
/// two never change the same token (nor wait for each other's locks).
pub const SWEEP_LAG_SECONDS: i64 = 60;
/// Tokens swept per transaction, and the pause between transactions: a
/// sweep over a large backlog (the first after a restart, say) holds the
/// writer about 15 ms at a time, and issuance, other processes' writes
/// and checkpoints get in between (5,000 at a time held it 75–140 ms, and
/// a CLI command waited seconds behind the whole backlog).
const SWEEP_BATCH: i64 = 1_000;
const SWEEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

impl Store {
    /// Takes tokens that expired at least [`SWEEP_LAG_SECONDS`] before
    /// `now` off their applications' live counts (`expiry_swept`; the
    /// database's trigger updates the count). Readers subtract the counted
    /// tokens that expired since the last sweep, so the count is exact
    /// between sweeps; sweeping keeps that correction short. Returns how
    /// many tokens it swept.
    pub async fn sweep_expired_tokens(&self, now: i64) -> Result<u64, CoreError> {
        use std::sync::atomic::Ordering;
        let cut = now - SWEEP_LAG_SECONDS;
        // Tokens expired before this were swept by an earlier run, unless
        // written since with a past expiry (readers still subtract those).
        let from = self.swept_before.load(Ordering::Relaxed);
        // Each batch goes on from the last one's (expiry, id), in index
        // order, instead of reading past the tokens it already swept.
        let mut after = (from, 0_i64);
        let mut swept = 0;
        // An application another transaction holds is left for the next run.
        let mut skipped: Vec<i64> = Vec::new();
        loop {
            let (sampled, n) = match &self.db {
                Db::Sqlite { writer, .. } => {
                    let done: Vec<(i64, i64)> = sqlx::query_as(
                        "UPDATE tokens SET expiry_swept = TRUE WHERE id IN (SELECT id FROM tokens \
                         WHERE (expires_at, id) > ($1, $2) AND expires_at <= $3 AND revoked_at IS NULL \
                         AND NOT expiry_swept ORDER BY expires_at, id LIMIT $4) RETURNING expires_at, id",
                    )
                    .bind(after.0)
                    .bind(after.1)
                    .bind(cut)
                    .bind(SWEEP_BATCH)
                    .fetch_all(writer)
                    .await?;
                    if let Some(last) = done.iter().max() {
                        after = *last;
                    }
                    (done.len(), done.len() as u64)
                }
                Db::Postgres { pool, .. } => {
                    let mut tx = pool.begin().await?;
                    let due: Vec<(i64, i64, i64)> = sqlx::query_as(
                        "SELECT expires_at, id, application_id FROM tokens WHERE (expires_at, id) > ($1, $2) \
                         AND expires_at <= $3 AND revoked_at IS NULL AND NOT expiry_swept \
                         AND application_id <> ALL($5) ORDER BY expires_at, id LIMIT $4",
                    )
                    .bind(after.0)
                    .bind(after.1)
                    .bind(cut)
                    .bind(SWEEP_BATCH)
                    .bind(&skipped)
                    .fetch_all(&mut *tx)
                    .await?;
                    if let Some(&(expires_at, id, _)) = due.last() {
                        after = (expires_at, id);
                    }
                    let mut apps: Vec<i64> = due.iter().map(|d| d.2).collect();
                    apps.sort_unstable();
                    apps.dedup();
                    // The trigger updates the applications' rows: hold them
                    // first, as every writer does, skipping any another
                    // transaction holds.
                    let held: Vec<i64> = sqlx::query_scalar(
                        "SELECT id FROM applications WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED",
                    )
                    .bind(&apps)
                    .fetch_all(&mut *tx)
                    .await?;
                    skipped.extend(apps.iter().filter(|a| !held.contains(a)));
                    let ids: Vec<i64> = due.iter().filter(|d| held.contains(&d.2)).map(|d| d.1).collect();
                    let n = sqlx::query(
                        "UPDATE tokens SET expiry_swept = TRUE WHERE id = ANY($1) \
                         AND revoked_at IS NULL AND NOT expiry_swept",
                    )
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tx.commit().await?;
                    (due.len(), n)
                }
            };
            swept += n;
            if sampled < SWEEP_BATCH as usize {
                break;
            }
            tokio::time::sleep(SWEEP_PAUSE).await;
        }
        if !skipped.is_empty() {
            // Their tokens stay above the mark for the next run.
            return Ok(swept);
        }
        self.swept_before.fetch_max(cut, Ordering::Relaxed);
        Ok(swept)
    }

    /// Checks a bearer token with one indexed lookup (by digest) joined to
    /// its application; the verdict is the core's rule ([`judge_token`]).
    pub async fn check_token(
        &self,
        token: &AccessToken,
        now: i64,
    ) -> Result<Result<TokenContext, RejectedToken>, CoreError> {
        let unknown = RejectedToken {
            rejection: TokenRejection::Unknown,
            token_id: None,
            application_id: None,
            application_name: None,
            token_name: None,
        };
        if !token.recognisable() {
            return Ok(Err(unknown));
        }
        let digest = token.digest();
        let row: Option<CheckRow> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT t.id, t.application_id, t.token_hash, t.name, t.scopes, t.audience, t.created_at, t.expires_at, t.revoked_at, \
             t.revoked_reason, a.client_id, a.name AS app_name, a.enabled, a.scopes AS app_scopes, \
             a.rate_per_second, a.rate_per_hour, a.allowed_networks FROM tokens t JOIN applications a ON a.id = t.application_id \
             WHERE t.token_hash = $1",
        )
        .bind(digest.as_bytes().to_vec())
        .fetch_optional(p)
        .await?
        });
        let Some(r) = row else { return Ok(Err(unknown)) };
        if !SecretDigest::from_slice(&r.token_hash).is_some_and(|h| h.matches(&digest)) {
            return Ok(Err(unknown));
        }
        let token_id = TokenId(r.id);
        let application_id = ApplicationId(r.application_id);
        let state = StoredTokenState {
            revoked_at: r.revoked_at,
            revoked_reason: r.revoked_reason,
            expires_at: r.expires_at,
            application_enabled: r.enabled,
        };
        if let Err(rejection) = judge_token(&state, now) {
            return Ok(Err(RejectedToken {
                rejection,
                token_id: Some(token_id),
                application_id: Some(application_id),
                application_name: Some(r.app_name),
                token_name: r.name,
            }));
        }
        // A scope the application has lost since the token was issued is
        // gone from the token too, from this request on; and so is a
        // resource server none of the remaining scopes belongs to.
        let scopes = scope_set(&r.scopes).intersection(&scope_set(&r.app_scopes));
        let mut audience = split_scopes(&r.audience);
        if !audience.is_empty() {
            let owners = self.scope_servers_cached().await?;
            audience.retain(|server| owners.iter().any(|(scope, owner)| owner == server && scopes.contains(scope)));
        }
        Ok(Ok(TokenContext {
            token_id,
            application_id,
            client_id: r.client_id,
            application_name: r.app_name,
            scopes,
            audience,
            issued_at: r.created_at,
            expires_at: state.expires_at,
            token_name: r.name,
            rate_per_second: r.rate_per_second,
            rate_per_hour: r.rate_per_hour,
            allowed_networks: crate::network::AllowedNetworks::from_stored(&r.allowed_networks),
        }))
    }

    /// One page of an application's tokens (every kind and state), newest
    /// first, with recent addresses, and how many it has in all. A page
    /// past the end is empty and still counts them. With `before`, the page
    /// starts after that token instead of at an offset, so reading page
    /// after page while tokens are issued or pruned neither repeats nor
    /// skips one (the CLI's listing).
    pub async fn list_tokens(
        &self,
        application: ApplicationId,
        page: i64,
        per_page: i64,
        before: Option<TokenId>,
    ) -> Result<Page<TokenView>, CoreError> {
        let per_page = per_page.clamp(1, 200);
        let page = page.max(1);
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE application_id = $1 AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let mut items: Vec<TokenView> = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(&sql)
            .bind(application.0)
            .bind(per_page)
            .bind((page - 1).saturating_mul(per_page))
            .bind(before.map(|t| t.0))
            .fetch_all(p)
            .await?
            .into_iter()
            .map(Into::into)
            .collect());
        let total: i64 =
            on_pool!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE application_id = $1")
                .bind(application.0)
                .fetch_one(p)
                .await?);
        self.attach_addresses(&mut items).await?;
        Ok(Page { items, total, page, per_page })
    }

    /// Fills in each token's recent addresses (one query for them all).
    async fn attach_addresses(&self, tokens: &mut [TokenView]) -> Result<(), CoreError> {
        let ids: Vec<TokenId> = tokens.iter().map(|t| t.id).collect();
        let mut addresses = self.token_addresses_for(&ids).await?;
        for t in tokens {
            t.recent_addresses = addresses.remove(&t.id.0).unwrap_or_default();
        }
        Ok(())
    }

    /// An application's active tokens (valid at `now`), most recently used
    /// first (never used last), each with its recent addresses: what a
    /// regeneration would revoke. Revoked and expired ones are not read.
    pub async fn active_tokens(&self, application: ApplicationId, now: i64) -> Result<Vec<TokenView>, CoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE application_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY last_used_at IS NULL, last_used_at DESC, id DESC"
        );
        let mut tokens: Vec<TokenView> = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(&sql)
            .bind(application.0)
            .bind(now)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(Into::into)
            .collect());
        self.attach_addresses(&mut tokens).await?;
        Ok(tokens)
    }

    /// Counts an application's named and token-endpoint tokens, active
    /// and not, in one pass over its index entries.
    pub async fn token_summary(&self, application: ApplicationId, now: i64) -> Result<TokenSummary, CoreError> {
        const SQL: &str = "SELECT \
             COUNT(*) FILTER (WHERE source <> 'token_endpoint' AND revoked_at IS NULL AND expires_at > $2), \
             COUNT(*) FILTER (WHERE source <> 'token_endpoint'), \
             COUNT(*) FILTER (WHERE source = 'token_endpoint' AND revoked_at IS NULL AND expires_at > $2), \
             COUNT(*) FILTER (WHERE source = 'token_endpoint'), \
             MAX(created_at) FILTER (WHERE source = 'token_endpoint'), \
             MAX(last_used_at) FILTER (WHERE source = 'token_endpoint') \
             FROM tokens WHERE application_id = $1";
        let (named_active, named_all, issued_active, issued_total, issued_last_at, issued_last_used_at): (
            i64,
            i64,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
        ) = on_pool!(self, |p| sqlx::query_as(SQL).bind(application.0).bind(now).fetch_one(p).await?);
        Ok(TokenSummary {
            named_active,
            named_inactive: named_all - named_active,
            issued_active,
            issued_total,
            issued_last_at,
            issued_last_used_at,
        })
    }

    /// The names of an application's active named tokens (distinct, at
    /// most `limit`), so the new-token form can warn of a namesake before
    /// anyone submits it.
    pub async fn active_named_token_names(
        &self,
        application: ApplicationId,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, CoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT name FROM tokens WHERE application_id = $1 AND source <> 'token_endpoint' \
             AND revoked_at IS NULL AND expires_at > $2 ORDER BY name LIMIT $3"
        )
        .bind(application.0)
        .bind(now)
        .bind(limit)
        .fetch_all(p)
        .await?))
    }

    /// One page of an application's named tokens (`issued: false`) or of
    /// the token endpoint's (`issued: true`), newest first, active ones
    /// only unless `include_inactive`, each with its recent addresses. The
    /// page's total is [`TokenSummary::count`].
    pub async fn list_token_page(
        &self,
        application: ApplicationId,
        issued: bool,
        include_inactive: bool,
        page: i64,
        per_page: i64,
        now: i64,
    ) -> Result<Vec<TokenView>, CoreError> {
        let kind = if issued { "source = 'token_endpoint'" } else { "source <> 'token_endpoint'" };
        // `$4 IS NULL` keeps every parameter in the statement (PostgreSQL
        // wants each one typed) while asking for all states.
        let state = if include_inactive { "($4 IS NULL OR TRUE)" } else { "revoked_at IS NULL AND expires_at > $4" };
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE application_id = $1 AND {kind} AND {state} \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let per_page = per_page.clamp(1, 500);
        let offset = (page.max(1) - 1).saturating_mul(per_page);
        let mut tokens: Vec<TokenView> = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(&sql)
            .bind(application.0)
            .bind(per_page)
            .bind(offset)
            .bind(now)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(Into::into)
            .collect());
        self.attach_addresses(&mut tokens).await?;
        Ok(tokens)
    }

    pub async fn token(&self, id: TokenId) -> Result<Option<TokenView>, CoreError> {
        let row: Option<TokenRow> =
            on_pool!(self, |p| sqlx::query_as(TOKEN_BY_ID).bind(id.0).fetch_optional(p).await?);
        Ok(row.map(Into::into))
    }

    /// Writes a batch of last-use records in one transaction. A later use
    /// never goes backwards: the stored time only moves forward. Returns
    /// the tokens whose rows were locked by another writer at that moment
    /// (PostgreSQL): they are skipped, never waited for, so a flush can
    /// never deadlock with a revocation or another instance's flush; the
    /// caller retries them with the next batch.
    pub async fn record_token_uses(&self, uses: &[(TokenId, i64, Option<String>)]) -> Result<Vec<TokenId>, CoreError> {
        if uses.is_empty() {
            return Ok(Vec::new());
        }
        const SQL: &str = "UPDATE tokens SET last_used_at = $1, last_used_ip = COALESCE($2, last_used_ip) \
                           WHERE id = $3 AND (last_used_at IS NULL OR last_used_at <= $1)";
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let mut tx = writer.begin().await?;
                for (id, at, ip) in uses {
                    sqlx::query(SQL).bind(at).bind(ip).bind(id.0).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(Vec::new())
            }
            Db::Postgres { pool, .. } => {
                let ids: Vec<i64> = uses.iter().map(|u| u.0 .0).collect();
                let ats: Vec<i64> = uses.iter().map(|u| u.1).collect();
                let ips: Vec<Option<String>> = uses.iter().map(|u| u.2.clone()).collect();
                let busy: Vec<i64> = sqlx::query_scalar(
                    "WITH free AS (SELECT id FROM tokens WHERE id = ANY($1) FOR UPDATE SKIP LOCKED), \
                     written AS ( \
                       UPDATE tokens t SET last_used_at = u.at, last_used_ip = COALESCE(u.ip, t.last_used_ip) \
                       FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS u(id, at, ip) \
                       WHERE t.id = u.id AND t.id IN (SELECT id FROM free) \
                         AND (t.last_used_at IS NULL OR t.last_used_at <= u.at) \
                       RETURNING t.id) \
                     SELECT id FROM tokens WHERE id = ANY($1) AND id NOT IN (SELECT id FROM free)",
                )
                .bind(&ids)
                .bind(&ats)
                .bind(&ips)
                .fetch_all(pool)
                .await?;
                Ok(busy.into_iter().map(TokenId).collect())
            }
        }
    }
}

impl Tx {
    pub async fn token(&mut self, id: TokenId) -> Result<Option<TokenView>, CoreError> {
        let row: Option<TokenRow> = on_tx!(self, |c| sqlx::query_as(TOKEN_BY_ID).bind(id.0).fetch_optional(c).await?);
        Ok(row.map(Into::into))
    }

    /// Inserts a named token (console or API); returns its id.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_named_token(
        &mut self,
        application: ApplicationId,
        token: &AccessToken,
        name: &str,
        scopes: &ScopeSet,
        audience: &[String],
        source: TokenSource,
        now: i64,
        expires_at: i64,
    ) -> Result<TokenId, CoreError> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query_scalar(
            "INSERT INTO tokens (application_id, token_hash, display_prefix, name, scopes, source, created_at, expires_at, \
             audience) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(application.0)
        .bind(token.digest().as_bytes().to_vec())
        .bind(token.display_prefix())
        .bind(name)
        .bind(scopes.to_string())
        .bind(source.as_str())
        .bind(now)
        .bind(expires_at)
        .bind(audience.join(" "))
        .fetch_one(c)
        .await?
        });
        Ok(TokenId(id))
    }

    /// How many active named tokens of an application have this name
    /// (whatever its case).
    pub async fn active_named_tokens_called(
        &mut self,
        application: ApplicationId,
        name: &str,
        now: i64,
    ) -> Result<i64, CoreError> {
        Ok(on_tx!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE application_id = $1 AND source <> 'token_endpoint' \
             AND lower(name) = lower($2) AND revoked_at IS NULL AND expires_at > $3"
        )
        .bind(application.0)
        .bind(name)
        .bind(now)
        .fetch_one(c)
        .await?))
    }

    /// A new expiry for a token that is not revoked; `false` otherwise.
    pub async fn set_token_expiry(&mut self, id: TokenId, expires_at: i64) -> Result<bool, CoreError> {
        let done =
            // Counted again if a sweep had taken it off for its old expiry.
            on_tx!(self, |c| sqlx::query(
                "UPDATE tokens SET expires_at = $1, expiry_swept = FALSE WHERE id = $2 AND revoked_at IS NULL"
            )
                .bind(expires_at)
                .bind(id.0)
                .execute(c)
                .await?
                .rows_affected());
        Ok(done == 1)
    }

    /// Records the token a rotation put in this one's place.
    pub async fn set_token_replaced_by(&mut self, id: TokenId, successor: TokenId) -> Result<(), CoreError> {
        on_tx!(self, |c| sqlx::query("UPDATE tokens SET replaced_by = $1 WHERE id = $2")
            .bind(successor.0)
            .bind(id.0)
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Revokes one token, saying who did; `false` when it was already
    /// revoked or does not exist.
    pub async fn revoke_token(&mut self, id: TokenId, reason: &str, by: &str, now: i64) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| {
            sqlx::query(
            "UPDATE tokens SET revoked_at = $1, revoked_reason = $2, revoked_by = $4 WHERE id = $3 AND revoked_at IS NULL"
        )
        .bind(now)
        .bind(reason)
        .bind(id.0)
        .bind(by)
        .execute(c)
        .await?
        .rows_affected()
        });
        Ok(done == 1)
    }
}
