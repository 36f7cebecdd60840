//! Webhooks as the Standard Webhooks specification has them: signing
//! secrets (`whsec_` + base64), signatures (`v1,` + base64 HMAC-SHA256 of
//! `id.timestamp.body`), payloads (`{"type","timestamp","data"}`), which
//! events a webhook wants, and when a failed delivery is tried again.

use crate::audit_action::AuditAction;
use crate::error::CoreError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::fmt;

pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;
pub const MAX_URL_LEN: usize = 2000;
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// The event type of "send a test event".
pub const TEST_EVENT: &str = "webhook.test";

/// Seconds to wait after the first, second, … failed attempt (the
/// schedule the Standard Webhooks guide suggests): about 27.6 hours in all.
pub const RETRY_DELAYS: [i64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// When to try again after `attempts` failed attempts, or `None` when the
/// delivery has failed for good.
pub fn next_attempt_at(attempts: i64, now: i64) -> Option<i64> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    RETRY_DELAYS.get(index).map(|delay| now.saturating_add(*delay))
}

/// A webhook's signing secret; shown once, kept sealed under the
/// key-encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    pub fn generate() -> Self {
        let mut key = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        WebhookSecret(format!("{SECRET_PREFIX}{}", B64.encode(key)))
    }

    /// A secret read back from its sealed form.
    pub fn from_stored(text: String) -> Option<Self> {
        text.starts_with(SECRET_PREFIX).then_some(WebhookSecret(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the base64 part, decoded.
    fn key(&self) -> Vec<u8> {
        B64.decode(self.0.trim_start_matches(SECRET_PREFIX)).unwrap_or_default()
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key()) else { return String::new() };
        mac.update(format!("{message_id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

/// A random message ID (`msg_…`), the same for every attempt of a delivery.
pub fn new_message_id() -> String {
    format!("msg_{}", crate::secret::generate_setup_code())
}

/// The body of a delivery.
pub fn payload(event_type: &str, at: i64, data: serde_json::Value) -> String {
    serde_json::json!({ "type": event_type, "timestamp": crate::time_fmt::rfc3339(at), "data": data }).to_string()
}

/// The alert events, which are audit actions too.
pub const ALERT_EVENTS: [AuditAction; 3] =
    [AuditAction::TokenExpiring, AuditAction::SecretExpiring, AuditAction::ApplicationDormant];

/// Checks the events a webhook asks for: audit actions (`token.revoked`),
/// their families (`token`) and the alerts; deduplicated, in order.
pub fn validate_events<S: AsRef<str>>(events: &[S]) -> Result<Vec<String>, CoreError> {
    let mut out: Vec<String> = Vec::new();
    for e in events.iter().flat_map(|e| e.as_ref().split([' ', ',', '\n']).map(str::trim).collect::<Vec<_>>()) {
        if e.is_empty() {
            continue;
        }
        let known = AuditAction::parse(e).is_some() || AuditAction::ALL.iter().any(|a| a.family() == e);
        if !known {
            return Err(CoreError::invalid(
                "events",
                format!(
                    "{} is neither an audit action (such as token.revoked), a family (such as token) nor an alert \
                     (token.expiring, secret.expiring, application.dormant)",
                    crate::model::bounded_text(e, 60)
                ),
            ));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    if out.is_empty() {
        return Err(CoreError::invalid("events", "choose at least one event"));
    }
    if out.len() > 64 {
        return Err(CoreError::invalid("events", "a webhook lists at most 64 events"));
    }
    Ok(out)
}

/// A receiver URL as the audit log names it: without its query, which
/// often carries a receiver's own token (Slack-style hooks).
pub fn shown_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

/// Checks a receiver URL: `https://` or `http://` with a host; a private
/// address is fine (Keygate is an internal tool), other schemes are not.
pub fn validate_url(raw: &str) -> Result<String, CoreError> {
    let raw = raw.trim();
    let wrong = |m: &str| CoreError::invalid("url", m.to_owned());
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return Err(wrong("a webhook URL has 1 to 2000 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| wrong("the URL is not valid, e.g. https://hooks.internal/keygate"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(wrong("a webhook URL starts with https:// or http://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(wrong("a webhook URL names a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(wrong("put no credentials in the URL; verify the signature instead"));
    }
    if url.fragment().is_some() {
        return Err(wrong("a webhook URL has no fragment (#…)"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_differ_and_keep_their_key_private_in_debug() {
        let (a, b) = (WebhookSecret::generate(), WebhookSecret::generate());
        assert_ne!(a, b);
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(a.key().len(), SECRET_BYTES);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn retries_back_off_for_more_than_a_day_then_stop() {
        assert_eq!(next_attempt_at(1, 100), Some(105));
        assert_eq!(next_attempt_at(2, 100), Some(400));
        assert_eq!(next_attempt_at(7, 0), Some(36_000));
        assert_eq!(next_attempt_at(8, 0), None);
        assert_eq!(next_attempt_at(0, 0), None);
        assert!(RETRY_DELAYS.iter().sum::<i64>() >= 24 * 3600);
    }

    #[test]
    fn events_are_actions_families_or_alerts() {
        assert_eq!(
            validate_events(&["token.revoked, token", "application.dormant", "token"]).unwrap(),
            ["token.revoked", "token", "application.dormant"]
        );
        assert!(validate_events(&["token.stolen"]).is_err());
        assert!(validate_events::<&str>(&[]).is_err());
    }

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        assert_eq!(validate_url(" http://10.0.0.5:8080/hook ").unwrap(), "http://10.0.0.5:8080/hook");
        for bad in ["file:///etc/passwd", "ftp://x/", "https://", "javascript:alert(1)", "https://u:p@h/", "x"] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }
}
