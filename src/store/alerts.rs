//! What needs attention (expiring tokens, ending overlaps, dormant
//! applications, disabled applications still holding tokens) and which
//! lifecycle alerts have fired.

use super::{on_pool, on_tx, Store, Tx};
use crate::error::CoreError;
use crate::model::*;

/// At most this many lines per kind in the panel.
const MAX_LINES: i64 = 100;

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_id: i64,
    name: String,
    application_id: i64,
    application_name: String,
    expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    secret_id: i64,
    application_id: i64,
    application_name: String,
    expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct ApplicationRow {
    application_id: i64,
    application_name: String,
    created_at: i64,
    token_used: Option<i64>,
    secret_used: Option<i64>,
    active_tokens: i64,
}

impl ApplicationRow {
    fn into_line(self) -> AttentionApplication {
        AttentionApplication {
            application_id: ApplicationId(self.application_id),
            application_name: self.application_name,
            created_at: self.created_at,
            last_used_at: self.token_used.max(self.secret_used),
            active_tokens: self.active_tokens,
        }
    }
}

impl Store {
    /// Everything the overview's "Needs attention" panel lists at `now`.
    pub async fn needs_attention(&self, now: i64, dormant_after_days: i64) -> Result<NeedsAttention, CoreError> {
        let tokens: Vec<TokenRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT t.id AS token_id, COALESCE(t.name, '') AS name, t.application_id, a.name AS application_name, \
             t.expires_at FROM tokens t JOIN applications a ON a.id = t.application_id \
             WHERE t.source <> 'token_endpoint' AND t.revoked_at IS NULL AND t.replaced_by IS NULL \
             AND t.expires_at > $1 AND t.expires_at <= $2 \
             AND (t.expires_at - $1) * 4 <= t.expires_at - t.created_at \
             ORDER BY t.expires_at, t.id LIMIT $3"
        )
        // As `crate::model::TokenView::expires_soon`: a rotated token's
        // overlap ends by design, and is no reason for an alert.
        .bind(now)
        .bind(now + EXPIRES_SOON_SECONDS)
        .bind(MAX_LINES)
        .fetch_all(p)
        .await?);
        let secrets: Vec<SecretRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT s.id AS secret_id, s.application_id, a.name AS application_name, s.expires_at \
             FROM client_secrets s JOIN applications a ON a.id = s.application_id \
             WHERE s.expires_at > $1 AND s.expires_at <= $2 ORDER BY s.expires_at, s.id LIMIT $3"
        )
        .bind(now)
        .bind(now + 86_400)
        .bind(MAX_LINES)
        .fetch_all(p)
        .await?);
        let cutoff = now - dormant_after_days.max(1) * 86_400;
        let enabled: Vec<ApplicationRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT a.id AS application_id, a.name AS application_name, a.created_at, \
             (SELECT MAX(t.last_used_at) FROM tokens t WHERE t.application_id = a.id) AS token_used, \
             (SELECT MAX(s.last_used_at) FROM client_secrets s WHERE s.application_id = a.id) AS secret_used, \
             CAST(0 AS BIGINT) AS active_tokens \
             FROM applications a WHERE a.enabled = TRUE AND a.created_at <= $1 ORDER BY a.id"
        )
        .bind(cutoff)
        .fetch_all(p)
        .await?);
        let disabled: Vec<ApplicationRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT * FROM (SELECT a.id AS application_id, a.name AS application_name, a.created_at, \
             (SELECT MAX(t.last_used_at) FROM tokens t WHERE t.application_id = a.id) AS token_used, \
             (SELECT MAX(s.last_used_at) FROM client_secrets s WHERE s.application_id = a.id) AS secret_used, \
             a.live_tokens - (SELECT COUNT(*) FROM tokens t WHERE t.application_id = a.id AND t.revoked_at IS NULL \
              AND NOT t.expiry_swept AND t.expires_at <= $1) AS active_tokens \
             FROM applications a WHERE a.enabled = FALSE) d WHERE active_tokens > 0 ORDER BY application_id LIMIT $2"
        )
        .bind(now)
        .bind(MAX_LINES)
        .fetch_all(p)
        .await?);
        let mut dormant: Vec<AttentionApplication> = enabled
            .into_iter()
            .map(ApplicationRow::into_line)
            .filter(|a| a.last_used_at.unwrap_or(a.created_at) <= cutoff)
            .collect();
        // Longest unused first.
        dormant.sort_by_key(|a| (a.last_used_at.unwrap_or(a.created_at), a.application_id));
        Ok(NeedsAttention {
            expiring_tokens: tokens
                .into_iter()
                .map(|t| AttentionToken {
                    token_id: TokenId(t.token_id),
                    name: t.name,
                    application_id: ApplicationId(t.application_id),
                    application_name: t.application_name,
                    expires_at: t.expires_at,
                })
                .collect(),
            ending_overlaps: secrets
                .into_iter()
                .map(|s| AttentionSecret {
                    secret_id: SecretId(s.secret_id),
                    application_id: ApplicationId(s.application_id),
                    application_name: s.application_name,
                    expires_at: s.expires_at,
                })
                .collect(),
            dormant_applications: dormant,
            disabled_with_tokens: disabled.into_iter().map(ApplicationRow::into_line).collect(),
            dormant_after_days,
        })
    }
}

impl Store {
    /// When an alert of this kind last fired for a thing, if ever.
    pub async fn alert_last_fired(&self, kind: &str, subject_id: i64) -> Result<Option<i64>, CoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(fired_at) FROM alerts_fired WHERE kind = $1 AND subject_id = $2"
        )
        .bind(kind)
        .bind(subject_id)
        .fetch_one(p)
        .await?))
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
