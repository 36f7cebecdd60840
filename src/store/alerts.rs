//! What needs attention (expiring tokens, ending overlaps, dormant
//! applications, disabled applications still holding tokens) and which
//! lifecycle alerts have fired.

use super::{last_used_of_a, live_tokens_of_a, on_pool, on_tx, on_writer, Store, Tx};
use crate::error::CoreError;
use crate::model::*;

/// Named tokens expiring between `$1` and `$2` and within the last quarter
/// of their lifetime (as `crate::model::TokenView::expires_soon`; a rotated
/// token's overlap ends by design, and is no reason for an alert), soonest
/// first, at most `$3`, with how many there are in all; `$unfired` adds a
/// condition. Its first conditions are those of the partial index
/// `tokens_named_expiring`, which keeps it from walking every issued token
/// about to expire (157 ms at 1 M tokens; now 0.01 ms).
macro_rules! expiring_tokens {
    ($unfired:literal) => {
        concat!(
            "SELECT t.id AS token_id, COALESCE(t.name, '') AS name, t.application_id, \
             a.name AS application_name, t.expires_at, COUNT(*) OVER () AS total \
             FROM tokens t JOIN applications a ON a.id = t.application_id \
             WHERE t.source <> 'token_endpoint' AND t.revoked_at IS NULL AND t.replaced_by IS NULL \
             AND t.expires_at > $1 AND t.expires_at <= $2 \
             AND (t.expires_at - $1) * 4 <= t.expires_at - t.created_at",
            $unfired,
            " ORDER BY t.expires_at, t.id LIMIT $3"
        )
    };
}

pub(super) const EXPIRING_TOKENS: &str = expiring_tokens!("");
/// Those whose alert has not fired: the key is `crate::usecase::alerts`'.
const EXPIRING_TOKENS_UNFIRED: &str = expiring_tokens!(
    " AND NOT EXISTS (SELECT 1 FROM alerts_fired f WHERE f.kind = 'token.expiring' \
     AND f.subject_id = t.id AND f.threshold = '7d:' || t.expires_at)"
);

/// Previous secrets whose overlap ends between `$1` and `$2`, as above.
macro_rules! ending_overlaps {
    ($unfired:literal) => {
        concat!(
            "SELECT s.id AS secret_id, s.application_id, a.name AS application_name, s.expires_at, \
             COUNT(*) OVER () AS total FROM client_secrets s JOIN applications a ON a.id = s.application_id \
             WHERE s.expires_at > $1 AND s.expires_at <= $2",
            $unfired,
            " ORDER BY s.expires_at, s.id LIMIT $3"
        )
    };
}

const ENDING_OVERLAPS: &str = ending_overlaps!("");
const ENDING_OVERLAPS_UNFIRED: &str = ending_overlaps!(
    " AND NOT EXISTS (SELECT 1 FROM alerts_fired f WHERE f.kind = 'secret.expiring' \
     AND f.subject_id = s.id AND f.threshold = '24h:' || s.expires_at)"
);

/// How long before its end an overlap is reported.
const OVERLAP_ENDING_SECONDS: i64 = 86_400;

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_id: i64,
    name: String,
    application_id: i64,
    application_name: String,
    expires_at: i64,
    total: i64,
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    secret_id: i64,
    application_id: i64,
    application_name: String,
    expires_at: i64,
    total: i64,
}

#[derive(sqlx::FromRow)]
struct ApplicationRow {
    application_id: i64,
    application_name: String,
    created_at: i64,
    last_used_at: Option<i64>,
    active_tokens: i64,
    total: i64,
}

impl From<TokenRow> for AttentionToken {
    fn from(t: TokenRow) -> Self {
        AttentionToken {
            token_id: TokenId(t.token_id),
            name: t.name,
            application_id: ApplicationId(t.application_id),
            application_name: t.application_name,
            expires_at: t.expires_at,
        }
    }
}

impl From<SecretRow> for AttentionSecret {
    fn from(s: SecretRow) -> Self {
        AttentionSecret {
            secret_id: SecretId(s.secret_id),
            application_id: ApplicationId(s.application_id),
            application_name: s.application_name,
            expires_at: s.expires_at,
        }
    }
}

/// The lines, and the total every row carries (none when there are none).
fn lines_and_total<R: Into<L>, L>(rows: Vec<R>, total: impl Fn(&R) -> i64) -> (Vec<L>, i64) {
    let total = rows.first().map_or(0, total);
    (rows.into_iter().map(Into::into).collect(), total)
}

impl From<ApplicationRow> for AttentionApplication {
    fn from(a: ApplicationRow) -> Self {
        AttentionApplication {
            application_id: ApplicationId(a.application_id),
            application_name: a.application_name,
            created_at: a.created_at,
            last_used_at: a.last_used_at,
            active_tokens: a.active_tokens,
        }
    }
}

/// The lifecycle alerts due at a moment that have not fired yet.
#[derive(Debug, Default)]
pub struct DueAlerts {
    pub expiring_tokens: Vec<AttentionToken>,
    pub ending_overlaps: Vec<AttentionSecret>,
    /// Dormant applications not warned about since their last use.
    pub dormant_applications: Vec<AttentionApplication>,
}

/// Which lines of the two dated kinds to read.
#[derive(Clone, Copy)]
struct Lines {
    limit: usize,
    unfired_only: bool,
}

impl Store {
    /// What needs attention at `now`: the first `limit` lines of each kind
    /// (at least one; the overview's panel, `GET /api/v1/attention`) and
    /// how many there are of each.
    pub async fn needs_attention(
        &self,
        now: i64,
        dormant_after_days: i64,
        limit: usize,
    ) -> Result<NeedsAttention, CoreError> {
        // The totals come with the lines: a line is read to read them.
        let limit = limit.max(1);
        let lines = Lines { limit, unfired_only: false };
        let (expiring_tokens, expiring_total) = self.expiring_tokens(now, lines).await?;
        let (ending_overlaps, overlaps_total) = self.ending_overlaps(now, lines).await?;
        let mut dormant_applications = self.dormant_applications(now, dormant_after_days).await?;
        let dormant_total = dormant_applications.len();
        dormant_applications.truncate(limit);
        let disabled: Vec<ApplicationRow> = on_pool!(self, |p| sqlx::query_as(concat!(
            "SELECT d.*, COUNT(*) OVER () AS total FROM (SELECT a.id AS application_id, \
             a.name AS application_name, a.created_at, ",
            last_used_of_a!(),
            " AS last_used_at, ",
            live_tokens_of_a!(),
            " AS active_tokens FROM applications a WHERE a.enabled = FALSE) d \
             WHERE active_tokens > 0 ORDER BY application_id LIMIT $2"
        ))
        .bind(now)
        .bind(as_limit(limit))
        .fetch_all(p)
        .await?);
        let (disabled_with_tokens, disabled_total) = lines_and_total(disabled, |d| d.total);
        Ok(NeedsAttention {
            expiring_tokens,
            ending_overlaps,
            dormant_applications,
            disabled_with_tokens,
            dormant_after_days,
            totals: AttentionTotals {
                expiring_tokens: expiring_total,
                ending_overlaps: overlaps_total,
                dormant_applications: i64::try_from(dormant_total).unwrap_or(i64::MAX),
                disabled_with_tokens: disabled_total,
            },
        })
    }

    /// The lifecycle alerts due at `now` that have not fired yet, at most
    /// `limit` of each kind (the rest are due on the next run): what has
    /// fired is left out here rather than tried again, so a run over
    /// thousands of expiring tokens writes nothing when nothing is new.
    pub async fn due_alerts(&self, now: i64, dormant_after_days: i64, limit: usize) -> Result<DueAlerts, CoreError> {
        let lines = Lines { limit, unfired_only: true };
        let (expiring_tokens, _) = self.expiring_tokens(now, lines).await?;
        let (ending_overlaps, _) = self.ending_overlaps(now, lines).await?;
        let dormant = self.dormant_applications(now, dormant_after_days).await?;
        let warned: Vec<(i64, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT subject_id, MAX(fired_at) FROM alerts_fired WHERE kind = 'application.dormant' GROUP BY subject_id"
        )
        .fetch_all(p)
        .await?
        });
        let warned: std::collections::HashMap<i64, i64> = warned.into_iter().collect();
        // Once per dormancy: not again until the application is used after
        // the last warning (a last use that moves back, as when old tokens
        // are pruned, does not count as new).
        let dormant_applications = dormant
            .into_iter()
            .filter(|a| {
                let last_active = a.last_used_at.unwrap_or(a.created_at);
                warned.get(&a.application_id.0).is_none_or(|&fired| fired < last_active)
            })
            .take(limit)
            .collect();
        Ok(DueAlerts { expiring_tokens, ending_overlaps, dormant_applications })
    }

    async fn expiring_tokens(&self, now: i64, lines: Lines) -> Result<(Vec<AttentionToken>, i64), CoreError> {
        let sql = if lines.unfired_only { EXPIRING_TOKENS_UNFIRED } else { EXPIRING_TOKENS };
        let rows: Vec<TokenRow> = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(now)
            .bind(now + EXPIRES_SOON_SECONDS)
            .bind(as_limit(lines.limit))
            .fetch_all(p)
            .await?);
        Ok(lines_and_total(rows, |r| r.total))
    }

    async fn ending_overlaps(&self, now: i64, lines: Lines) -> Result<(Vec<AttentionSecret>, i64), CoreError> {
        let sql = if lines.unfired_only { ENDING_OVERLAPS_UNFIRED } else { ENDING_OVERLAPS };
        let rows: Vec<SecretRow> = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(now)
            .bind(now + OVERLAP_ENDING_SECONDS)
            .bind(as_limit(lines.limit))
            .fetch_all(p)
            .await?);
        Ok(lines_and_total(rows, |r| r.total))
    }

    /// Every enabled application unused since `dormant_after_days` before
    /// `now` (created before then, too), longest unused first.
    async fn dormant_applications(
        &self,
        now: i64,
        dormant_after_days: i64,
    ) -> Result<Vec<AttentionApplication>, CoreError> {
        let sql = format!(
            concat!(
                "SELECT a.id AS application_id, a.name AS application_name, a.created_at, ",
                last_used_of_a!(),
                " AS last_used_at, CAST(0 AS BIGINT) AS active_tokens, CAST(0 AS BIGINT) AS total \
                 FROM applications a WHERE {}"
            ),
            super::applications::dormant_condition("a", "$1")
        );
        let rows: Vec<ApplicationRow> =
            on_pool!(self, |p| sqlx::query_as(&sql).bind(dormant_cutoff(now, dormant_after_days)).fetch_all(p).await?);
        let mut dormant: Vec<AttentionApplication> = rows.into_iter().map(AttentionApplication::from).collect();
        dormant.sort_by_key(|a| (a.last_used_at.unwrap_or(a.created_at), a.application_id));
        Ok(dormant)
    }
}

/// A line count as SQL's `LIMIT` takes it.
fn as_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Store {
    /// Forgets expiry alerts (`token.expiring`, `secret.expiring`) that
    /// fired before `before`; dormancy alerts are kept, as each is compared
    /// with the application's last use.
    pub async fn forget_expiry_alerts(&self, before: i64) -> Result<u64, CoreError> {
        Ok(on_writer!(self, |w| sqlx::query(
            "DELETE FROM alerts_fired WHERE kind IN ('token.expiring', 'secret.expiring') AND fired_at < $1"
        )
        .bind(before)
        .execute(w)
        .await?
        .rows_affected()))
    }
}

impl Tx {
    /// Notes that an alert fired for a thing at a threshold; `false` when
    /// it had fired already (by this instance or another).
    pub async fn mark_alert_fired(
        &mut self,
        kind: &str,
        subject_id: i64,
        threshold: &str,
        now: i64,
    ) -> Result<bool, CoreError> {
        let done = on_tx!(self, |c| sqlx::query(
            "INSERT INTO alerts_fired (kind, subject_id, threshold, fired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kind, subject_id, threshold) DO NOTHING"
        )
        .bind(kind)
        .bind(subject_id)
        .bind(threshold)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }
}
