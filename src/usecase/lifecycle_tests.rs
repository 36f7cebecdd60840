//! The credential lifecycle on a real database (SQLite, or PostgreSQL
//! when `KEYGATE_TEST_POSTGRES_URL` is set), time passed in: rotation with
//! an overlap, the impact preview, address history, allowlists, webhook
//! deliveries with retries, and alerts that fire once.

use super::applications::{self, ApplicationChange, SecretRegeneration};
use super::webhooks::{self, WebhookSettings};
use super::*;
use crate::grant::{ClientAuthFailure, TokenRejection};
use crate::jwt::KeyEncryptionKey;
use crate::secret::ClientSecret;
use crate::store::testing::TestOps;
use crate::store::{AuditQuery, IssueError};
use crate::usage::UsageTracker;
use base64::Engine;
use hmac::Mac;

const T0: i64 = 1_800_000_000;
const HOUR: i64 = 3600;

async fn fresh() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::store::testing::fresh_database_url(dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

async fn app(store: &Store, name: &str) -> (ApplicationView, ClientSecret) {
    store.create_application(ApplicationSettings::new(name), T0).await.unwrap()
}

async fn client(store: &Store, id: ApplicationId) -> crate::client::ClientRecord {
    store.client_by_id(id).await.unwrap().unwrap()
}

fn ip(s: &str) -> Option<std::net::IpAddr> {
    Some(s.parse().unwrap())
}

async fn actions(store: &Store) -> Vec<String> {
    let q = AuditQuery { page: 1, per_page: 500, ..Default::default() };
    store.list_audit_events(&q).await.unwrap().items.into_iter().map(|e| e.action).collect()
}

#[tokio::test]
async fn both_secrets_work_inside_the_overlap_and_only_the_new_one_after() {
    let (store, _d) = fresh().await;
    let (a, old) = app(&store, "rotating").await;
    let c = client(&store, a.id).await;
    let kept = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0).await.unwrap();
    let how = SecretRegeneration { previous_secret_valid_for: Some(HOUR), revoke_tokens: false };
    let r = applications::regenerate_secret(&store, &Caller::cli(T0 + 10), a.id, how).await.unwrap();
    assert_eq!(r.previous_secret_expires_at, Some(T0 + 10 + HOUR));
    assert_eq!(r.tokens_revoked, 0);
    let c = client(&store, a.id).await;
    assert_eq!(c.secrets.len(), 2);
    let old_id = c.authenticate(&old, T0 + 20, None).unwrap();
    let new_id = c.authenticate(&r.secret, T0 + 20, None).unwrap();
    assert_ne!(old_id, new_id);
    assert_eq!(new_id, r.secret_id);
    // The old secret still gets tokens inside the overlap …
    let mut during = crate::store::TokenToIssue::opaque(crate::ScopeSet::empty(), vec![]);
    during.proven_by = Some(old_id);
    store.issue_prepared_token(&c, during, T0 + 20).await.unwrap();
    // … and the token from before the rotation still works.
    assert!(store.check_token(&kept.token, T0 + 30).await.unwrap().is_ok());
    // From the end of the overlap only the new secret works, even with a
    // client record read before it ended.
    let end = T0 + 10 + HOUR;
    assert_eq!(c.authenticate(&old, end, None), Err(ClientAuthFailure::WrongSecret));
    assert!(c.authenticate(&r.secret, end, None).is_ok());
    let mut after = crate::store::TokenToIssue::opaque(crate::ScopeSet::empty(), vec![]);
    after.proven_by = Some(old_id);
    assert!(matches!(store.issue_prepared_token(&c, after, end).await, Err(IssueError::ClientChanged)));
    // The view lists only the secret that still works.
    let view = store.require_application(a.id, end).await.unwrap();
    assert_eq!(view.secrets.len(), 1);
    assert!(view.secrets[0].current);
    let view = store.require_application(a.id, end - 1).await.unwrap();
    assert_eq!(
        view.secrets.iter().map(|s| (s.current, s.expires_at)).collect::<Vec<_>>(),
        [(true, None), (false, Some(end))]
    );
}

#[tokio::test]
async fn tokens_are_revoked_or_kept_as_chosen() {
    let (store, _d) = fresh().await;
    for (revoke_tokens, overlap) in [(true, None), (false, None), (true, Some(HOUR)), (false, Some(HOUR))] {
        let (a, old) = app(&store, &format!("app-{revoke_tokens}-{overlap:?}")).await;
        let c = client(&store, a.id).await;
        let t = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0).await.unwrap();
        let how = SecretRegeneration { previous_secret_valid_for: overlap, revoke_tokens };
        let r = applications::regenerate_secret(&store, &Caller::cli(T0 + 1), a.id, how).await.unwrap();
        let checked = store.check_token(&t.token, T0 + 2).await.unwrap();
        assert_eq!(checked.is_ok(), !revoke_tokens, "{revoke_tokens} {overlap:?}");
        assert_eq!(r.tokens_revoked, u64::from(revoke_tokens));
        let old_works = client(&store, a.id).await.authenticate(&old, T0 + 2, None).is_ok();
        assert_eq!(old_works, overlap.is_some());
    }
    // The default is today's: the secret and every token at once.
    assert_eq!(
        SecretRegeneration::default(),
        SecretRegeneration { previous_secret_valid_for: None, revoke_tokens: true }
    );
    // Overlaps are 1 hour to 30 days.
    let (a, _) = app(&store, "bounds").await;
    for bad in [HOUR - 1, 30 * 86_400 + 1] {
        let how = SecretRegeneration { previous_secret_valid_for: Some(bad), revoke_tokens: false };
        let e = applications::regenerate_secret(&store, &Caller::cli(T0), a.id, how).await.unwrap_err();
        assert!(matches!(e, CoreError::Invalid { field: "previous_secret_valid_for", .. }), "{e}");
    }
}

#[tokio::test]
async fn at_most_two_secrets_live_and_an_overlap_can_end_early() {
    let (store, _d) = fresh().await;
    let (a, first) = app(&store, "twice").await;
    let how = SecretRegeneration { previous_secret_valid_for: Some(24 * HOUR), revoke_tokens: false };
    let second = applications::regenerate_secret(&store, &Caller::cli(T0 + 1), a.id, how).await.unwrap();
    let third = applications::regenerate_secret(&store, &Caller::cli(T0 + 2), a.id, how).await.unwrap();
    let c = client(&store, a.id).await;
    assert_eq!(c.secrets.len(), 2);
    assert!(c.authenticate(&first, T0 + 3, None).is_err(), "the oldest secret is dropped");
    assert!(c.authenticate(&second.secret, T0 + 3, None).is_ok());
    // The current secret cannot be ended this way.
    let refused = applications::end_previous_secret(&store, &Caller::cli(T0 + 4), a.id, third.secret_id).await;
    assert!(matches!(refused, Err(CoreError::Refused(_))));
    let view = applications::end_previous_secret(&store, &Caller::cli(T0 + 4), a.id, second.secret_id).await.unwrap();
    assert_eq!(view.secrets.len(), 1);
    let c = client(&store, a.id).await;
    assert!(c.authenticate(&second.secret, T0 + 5, None).is_err());
    assert!(c.authenticate(&third.secret, T0 + 5, None).is_ok());
    let again = applications::end_previous_secret(&store, &Caller::cli(T0 + 6), a.id, second.secret_id).await;
    assert!(matches!(again, Err(CoreError::NotFound("secret"))));
    assert!(actions(&store).await.contains(&"application.previous_secret_revoked".to_string()));
}

#[tokio::test]
async fn the_impact_preview_counts_tokens_with_their_last_use_and_address() {
    let (store, _d) = fresh().await;
    let (a, secret) = app(&store, "impact").await;
    let c = client(&store, a.id).await;
    let used = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0).await.unwrap();
    let idle = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0 + 1).await.unwrap();
    let gone = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0 + 2).await.unwrap();
    store.revoke_token(gone.id, T0 + 3).await.unwrap();
    let usage = UsageTracker::new();
    let proven = c.authenticate(&secret, T0 + 5, None).unwrap();
    usage.record_secret(proven, T0 + 5, Some("10.1.1.1".into()));
    usage.record(used.id, T0 + 50, Some("10.2.2.2".into()));
    usage.flush(&store).await.unwrap();
    let impact = applications::secret_impact(&store, &Caller::cli(T0 + 60), a.id).await.unwrap();
    assert_eq!(impact.active_tokens, 2);
    assert_eq!(impact.tokens.iter().map(|t| t.id).collect::<Vec<_>>(), [used.id, idle.id], "most recently used first");
    assert_eq!(impact.tokens[0].last_used_at, Some(T0 + 50));
    assert_eq!(impact.tokens[0].last_used_ip.as_deref(), Some("10.2.2.2"));
    assert_eq!(impact.tokens[1].last_used_at, None);
    assert_eq!(impact.secrets.len(), 1);
    assert_eq!(impact.secrets[0].last_used_at, Some(T0 + 5));
    assert_eq!(impact.secrets[0].last_used_ip.as_deref(), Some("10.1.1.1"));
}

#[tokio::test]
async fn the_last_five_distinct_addresses_are_kept_per_token_and_secret() {
    let (store, _d) = fresh().await;
    let (a, secret) = app(&store, "addresses").await;
    let c = client(&store, a.id).await;
    let t = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0).await.unwrap();
    let proven = c.authenticate(&secret, T0, None).unwrap();
    let usage = UsageTracker::new();
    // Seven addresses over three flushes, a minute apart; 10.0.0.1 comes back last.
    for (i, last) in [1, 2, 3, 4, 5, 6, 1].iter().enumerate() {
        let at = T0 + 60 * i as i64;
        usage.record(t.id, at, Some(format!("10.0.0.{last}")));
        usage.record_secret(proven, at, Some(format!("10.0.0.{last}")));
        if i % 3 == 2 {
            usage.flush(&store).await.unwrap();
        }
    }
    usage.flush(&store).await.unwrap();
    let tokens = store.list_tokens(a.id, 1, 200, None).await.unwrap().items;
    let seen: Vec<&str> = tokens[0].recent_addresses.iter().map(|a| a.ip.as_str()).collect();
    assert_eq!(seen, ["10.0.0.1", "10.0.0.6", "10.0.0.5", "10.0.0.4", "10.0.0.3"]);
    assert_eq!(tokens[0].recent_addresses[0].last_seen_at, T0 + 360);
    // A repeat within the minute writes nothing; a new address always does.
    usage.record(t.id, T0 + 370, Some("10.0.0.1".into()));
    usage.record(t.id, T0 + 370, Some("10.0.0.7".into()));
    usage.flush(&store).await.unwrap();
    let tokens = store.list_tokens(a.id, 1, 200, None).await.unwrap().items;
    let seen: Vec<(&str, i64)> = tokens[0].recent_addresses.iter().map(|a| (a.ip.as_str(), a.last_seen_at)).collect();
    assert_eq!(&seen[..2], [("10.0.0.7", T0 + 370), ("10.0.0.1", T0 + 360)]);
    let secrets = store.secrets_of(a.id, T0 + 10).await.unwrap();
    let seen: Vec<&str> = secrets[0].recent_addresses.iter().map(|a| a.ip.as_str()).collect();
    assert_eq!(seen, ["10.0.0.1", "10.0.0.6", "10.0.0.5", "10.0.0.4", "10.0.0.3"]);
}

#[tokio::test]
async fn allowlists_refuse_secrets_and_tokens_from_elsewhere() {
    let (store, _d) = fresh().await;
    let (a, secret) = app(&store, "fenced").await;
    let c = client(&store, a.id).await;
    let t = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0).await.unwrap();
    let change =
        ApplicationChange { allowed_networks: Some(vec!["10.0.0.0/8\n192.168.1.7".into()]), ..Default::default() };
    let view = applications::update_application(&store, &Caller::cli(T0), a.id, change).await.unwrap();
    assert_eq!(view.allowed_networks, ["10.0.0.0/8", "192.168.1.7/32"]);
    let c = client(&store, a.id).await;
    assert!(c.authenticate(&secret, T0, ip("10.9.9.9")).is_ok());
    assert_eq!(c.authenticate(&secret, T0, ip("203.0.113.5")), Err(ClientAuthFailure::AddressNotAllowed));
    // A wrong secret from elsewhere is still just a wrong secret.
    assert_eq!(c.authenticate(&ClientSecret::generate(), T0, ip("203.0.113.5")), Err(ClientAuthFailure::WrongSecret));
    let ctx = store.check_token(&t.token, T0 + 1).await.unwrap().unwrap();
    assert!(ctx.check_origin(ip("192.168.1.7")).is_ok());
    assert_eq!(ctx.check_origin(ip("192.168.1.8")), Err(TokenRejection::AddressNotAllowed));
    assert_eq!(TokenRejection::AddressNotAllowed.audit_reason().as_deref(), Some("address_not_allowed"));
    // Invalid networks are refused with the field named.
    let bad = ApplicationChange { allowed_networks: Some(vec!["10.0.0.0/40".into()]), ..Default::default() };
    let e = applications::update_application(&store, &Caller::cli(T0), a.id, bad).await.unwrap_err();
    assert!(matches!(e, CoreError::Invalid { field: "allowed_networks", .. }), "{e}");
    // An application shutting out its own caller is warned, not refused.
    let own = Caller {
        actor: Actor::Application {
            id: a.id,
            name: "fenced".into(),
            token_id: t.id,
            scopes: crate::ScopeSet::parse("applications:write").unwrap(),
        },
        now: T0,
        ip: Some("203.0.113.5".into()),
    };
    let view = store.require_application(a.id, T0).await.unwrap();
    assert!(applications::own_lockout_warning(&own, a.id, &view).unwrap().contains("203.0.113.5"));
    let inside = Caller { ip: Some("10.1.1.1".into()), ..own };
    assert_eq!(applications::own_lockout_warning(&inside, a.id, &view), None);
}

/// A Standard Webhooks signature computed here, apart from the code under test.
fn expected_signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn attempt(at: i64, status: Option<i64>) -> AttemptView {
    AttemptView {
        at,
        duration_ms: 3,
        status,
        error: status.is_none().then(|| "could not connect".into()),
        response_excerpt: String::new(),
    }
}

#[tokio::test]
async fn events_are_queued_with_their_change_signed_and_retried_with_backoff() {
    let (store, _d) = fresh().await;
    let kek = KeyEncryptionKey::for_tests(7);
    let settings = WebhookSettings {
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["application".into(), "token.expiring".into()],
        description: "ops".into(),
    };
    let (hook, secret) = webhooks::create_webhook(&store, &Caller::cli(T0), &kek, settings).await.unwrap();
    assert!(secret.expose().starts_with("whsec_"));
    // Its own creation (webhook.created) is not an event it wants.
    assert!(store.deliveries(hook.id, 10).await.unwrap().is_empty());
    let (a, _) = app(&store, "watched").await;
    store.mint_named_token(a.id, "deploy", crate::ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    let queued = store.deliveries(hook.id, 10).await.unwrap();
    assert_eq!(queued.iter().map(|d| d.event_type.as_str()).collect::<Vec<_>>(), ["application.created"]);

    let due = webhooks::claim_due(&store, &kek, T0 + 1, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let d = &due[0];
    assert_eq!(d.signature, expected_signature(secret.expose(), &d.message_id, T0 + 1, &d.body));
    let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(body["type"], "application.created");
    assert_eq!(body["data"]["target"]["name"], "watched");
    assert!(!d.body.contains("kgs_") && !d.body.contains("kgt_"), "no secret or token in a delivery");
    // Claimed: nobody else takes it meanwhile.
    assert!(webhooks::claim_due(&store, &kek, T0 + 1, 10).await.unwrap().is_empty());

    let state = webhooks::record_attempt(&store, d, attempt(T0 + 1, Some(500)), false).await.unwrap();
    assert_eq!(state, Some(DeliveryState::Pending));
    // A sender whose claim lapsed records nothing over the next one's work.
    assert_eq!(webhooks::record_attempt(&store, d, attempt(T0 + 2, Some(204)), true).await.unwrap(), None);
    assert!(webhooks::claim_due(&store, &kek, T0 + 5, 10).await.unwrap().is_empty(), "not before the back-off");
    let again = webhooks::claim_due(&store, &kek, T0 + 6, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, d.message_id, "the same webhook-id on every attempt");
    let state = webhooks::record_attempt(&store, &again[0], attempt(T0 + 6, Some(204)), true).await.unwrap();
    assert_eq!(state, Some(DeliveryState::Delivered));
    let log = store.deliveries(hook.id, 10).await.unwrap();
    assert_eq!(log[0].state, DeliveryState::Delivered);
    assert_eq!(log[0].attempts.iter().map(|a| a.status).collect::<Vec<_>>(), [Some(500), Some(204)]);
    assert_eq!(store.require_webhook(hook.id).await.unwrap().last_delivered_at, Some(T0 + 6));
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_gives_up_after_more_than_a_day() {
    let (store, _d) = fresh().await;
    let kek = KeyEncryptionKey::for_tests(7);
    let settings = WebhookSettings {
        url: "http://127.0.0.1:9/".into(),
        events: vec!["token.revoked".into()],
        description: String::new(),
    };
    let (hook, _) = webhooks::create_webhook(&store, &Caller::cli(T0), &kek, settings).await.unwrap();
    let delivery = webhooks::send_test_event(&store, &Caller::cli(T0), hook.id).await.unwrap();
    let mut now = T0;
    let mut attempts = 0;
    loop {
        let due = webhooks::claim_due(&store, &kek, now, 10).await.unwrap();
        assert_eq!(due.len(), 1, "attempt {attempts} at +{}", now - T0);
        let state = webhooks::record_attempt(&store, &due[0], attempt(now, None), false).await.unwrap();
        attempts += 1;
        if state == Some(DeliveryState::Failed) {
            break;
        }
        now = store.deliveries(hook.id, 1).await.unwrap()[0].next_attempt_at.unwrap();
    }
    assert_eq!(attempts, 8);
    assert!(now - T0 >= 24 * HOUR, "retried for {} s", now - T0);
    // "Retry now" brings it back.
    webhooks::retry_delivery(&store, &Caller::cli(now + 10), hook.id, delivery).await.unwrap();
    assert_eq!(webhooks::claim_due(&store, &kek, now + 10, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn alerts_fire_once_per_thing_and_threshold() {
    let (store, _d) = fresh().await;
    let kek = KeyEncryptionKey::for_tests(7);
    let settings = WebhookSettings {
        url: "http://127.0.0.1:9/".into(),
        events: vec!["token.expiring".into(), "secret.expiring".into(), "application.dormant".into()],
        description: String::new(),
    };
    let (hook, _) = webhooks::create_webhook(&store, &Caller::cli(T0), &kek, settings).await.unwrap();
    let (old, _) = app(&store, "old").await;
    let day = 86_400;
    // Used once, long ago; a named token of 30 days expiring in 3 days
    // (and one of 4 days, in its first day: not yet "soon"); an overlap.
    let now = T0 + 100 * day;
    store.mint_named_token(old.id, "deploy", crate::ScopeSet::empty(), now + 3 * day, now - 27 * day).await.unwrap();
    store.mint_named_token(old.id, "young", crate::ScopeSet::empty(), now + 3 * day, now - day).await.unwrap();
    let how = SecretRegeneration { previous_secret_valid_for: Some(12 * HOUR), revoke_tokens: false };
    applications::regenerate_secret(&store, &Caller::cli(now), old.id, how).await.unwrap();
    let attention = store.needs_attention(now, 90, 100).await.unwrap();
    assert_eq!(attention.expiring_tokens.len(), 1);
    assert_eq!(attention.ending_overlaps.len(), 1);
    let totals = crate::AttentionTotals {
        expiring_tokens: 1,
        ending_overlaps: 1,
        dormant_applications: 1,
        disabled_with_tokens: 0,
    };
    assert_eq!(attention.totals, totals);
    assert_eq!(attention.dormant_applications.iter().map(|a| a.application_name.as_str()).collect::<Vec<_>>(), ["old"]);
    assert_eq!(alerts::fire_due_alerts(&store, now, 90).await.unwrap(), 3);
    assert_eq!(alerts::fire_due_alerts(&store, now + 60, 90).await.unwrap(), 0, "once, not on every run");
    let due = store.due_alerts(now + 60, 90, 100).await.unwrap();
    assert!(
        due.expiring_tokens.is_empty() && due.ending_overlaps.is_empty() && due.dormant_applications.is_empty(),
        "what fired is not read again: {due:?}"
    );
    // Pruned history (an older last use) does not re-arm the dormancy alert;
    // a use after the warning does.
    assert_eq!(alerts::fire_due_alerts(&store, now + 30 * day, 90).await.unwrap(), 0);
    let secret_id = store.require_application(old.id, now).await.unwrap().secrets[0].id;
    let usage = UsageTracker::new();
    usage.record_secret(secret_id, now + day, Some("10.0.0.1".into()));
    usage.flush(&store).await.unwrap();
    assert_eq!(alerts::fire_due_alerts(&store, now + 30 * day, 90).await.unwrap(), 0, "used since: not dormant");
    assert_eq!(alerts::fire_due_alerts(&store, now + 92 * day, 90).await.unwrap(), 1, "dormant again");
    assert_eq!(alerts::fire_due_alerts(&store, now + 93 * day, 90).await.unwrap(), 0);
    let kinds: Vec<String> = store.deliveries(hook.id, 10).await.unwrap().into_iter().map(|d| d.event_type).collect();
    assert_eq!(kinds.len(), 4, "three alerts, the dormancy one twice: {kinds:?}");
    for k in ["token.expiring", "secret.expiring", "application.dormant"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        assert!(actions(&store).await.iter().any(|a| a == k), "{k} audited");
    }
    // A disabled application holding tokens shows in the panel.
    let (held, _) = app(&store, "held").await;
    store.mint_named_token(held.id, "n", crate::ScopeSet::empty(), now + 30 * day, now).await.unwrap();
    let mut tx = store.write().await.unwrap();
    on_tx_disable(&mut tx, held.id).await;
    tx.commit().await.unwrap();
    let attention = store.needs_attention(now, 90, 100).await.unwrap();
    assert_eq!(attention.disabled_with_tokens.iter().map(|a| a.active_tokens).collect::<Vec<_>>(), [1]);
}

/// Each kind lists its first lines and counts them all; a run fires at
/// most its share of each kind and the next run the rest; the marks of
/// ended expiries are forgotten, those of dormancy kept.
#[tokio::test]
async fn attention_counts_every_kind_and_alerts_fire_over_runs() {
    let (store, _d) = fresh().await;
    let day = 86_400;
    let now = T0 + 100 * day;
    for name in ["held-1", "held-2"] {
        let (a, _) = app(&store, name).await;
        store.mint_named_token(a.id, "deploy", crate::ScopeSet::empty(), now + 2 * day, now - 27 * day).await.unwrap();
        let how = SecretRegeneration { previous_secret_valid_for: Some(12 * HOUR), revoke_tokens: false };
        applications::regenerate_secret(&store, &Caller::cli(now), a.id, how).await.unwrap();
        let mut tx = store.write().await.unwrap();
        on_tx_disable(&mut tx, a.id).await;
        tx.commit().await.unwrap();
    }
    app(&store, "idle-1").await;
    app(&store, "idle-2").await;
    let first = store.needs_attention(now, 90, 1).await.unwrap();
    let totals = crate::AttentionTotals {
        expiring_tokens: 2,
        ending_overlaps: 2,
        dormant_applications: 2,
        disabled_with_tokens: 2,
    };
    assert_eq!(first.totals, totals);
    let lines = [
        first.expiring_tokens.len(),
        first.ending_overlaps.len(),
        first.dormant_applications.len(),
        first.disabled_with_tokens.len(),
    ];
    assert_eq!(lines, [1, 1, 1, 1]);
    assert_eq!(store.needs_attention(now, 90, 0).await.unwrap().totals, totals, "a line is always read");

    assert_eq!(alerts::fire_due_alerts_up_to(&store, now, 90, 1).await.unwrap(), 3, "one of each kind");
    assert_eq!(alerts::fire_due_alerts_up_to(&store, now, 90, 1).await.unwrap(), 3, "the others on the next run");
    assert_eq!(alerts::fire_due_alerts(&store, now + 60, 90).await.unwrap(), 0);
    assert_eq!(store.forget_expiry_alerts(now + 1).await.unwrap(), 4, "the tokens' and overlaps' marks");
    assert_eq!(alerts::fire_due_alerts(&store, now + 60, 90).await.unwrap(), 4, "forgotten too soon: they fire again");
    // Eight days on, the run itself forgets them; still dormant, the idle
    // applications are not warned about again.
    assert_eq!(alerts::fire_due_alerts(&store, now + 9 * day, 90).await.unwrap(), 0);
    assert_eq!(store.forget_expiry_alerts(now + 9 * day).await.unwrap(), 0, "forgotten by the run");
}

/// Disables an application without revoking its tokens (as a database
/// from before "disable revokes" could hold).
async fn on_tx_disable(tx: &mut crate::store::Tx, id: ApplicationId) {
    tx.set_enabled_only_for_tests(id, false).await.unwrap();
}

#[tokio::test]
async fn two_instances_send_each_delivery_and_fire_each_alert_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::store::testing::fresh_database_url(dir.path()).await.unwrap();
    let one = Store::open(&url).await.unwrap();
    one.migrate().await.unwrap();
    let two = Store::open(&url).await.unwrap();
    let kek = KeyEncryptionKey::for_tests(7);
    // Twenty receivers: a sender takes one delivery per receiver at a time.
    for i in 0..20 {
        let settings = WebhookSettings {
            url: format!("http://127.0.0.1:9/{i}"),
            events: vec!["application".into(), "token.expiring".into()],
            description: String::new(),
        };
        webhooks::create_webhook(&one, &Caller::cli(T0), &kek, settings).await.unwrap();
    }
    for i in 0..20 {
        let (a, _) = one.create_application(ApplicationSettings::new(format!("app-{i}")), T0).await.unwrap();
        one.mint_named_token(a.id, "n", crate::ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    }
    let (a, b) =
        tokio::join!(webhooks::claim_due(&one, &kek, T0 + 1, 100), webhooks::claim_due(&two, &kek, T0 + 1, 100));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 20, "one delivery per receiver, each claimed once");
    let mut hooks: Vec<i64> = a.iter().chain(&b).map(|d| d.webhook_id.0).collect();
    hooks.sort_unstable();
    hooks.dedup();
    assert_eq!(hooks.len(), 20, "never two in flight for one receiver");
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    // In the tokens' last quarter: "expires soon".
    let late = T0 + 20 * 3600;
    let (x, y) = tokio::join!(alerts::fire_due_alerts(&one, late, 90), alerts::fire_due_alerts(&two, late, 90));
    assert_eq!(x.unwrap() + y.unwrap(), 20, "each alert fired once across instances");
    one.close().await;
    two.close().await;
}

fn owner(now: i64) -> Caller {
    let view = AdminView {
        id: AdminId(1),
        username: "olive".into(),
        role: Role::Owner,
        created_at: T0,
        last_sign_in_at: None,
        must_change_password: false,
    };
    Caller::administrator(view, now, Some("10.0.0.7".into()))
}

async fn named_token(store: &Store, app: ApplicationId, name: &str, ttl: i64) -> tokens::MintedToken {
    let request =
        tokens::MintRequest { name: name.into(), scopes: ScopeSet::default(), expiry: TokenExpiry::InSeconds(ttl) };
    tokens::mint_token(store, &owner(T0), app, request).await.unwrap()
}

async fn valid(store: &Store, token: &crate::secret::AccessToken, now: i64) -> bool {
    store.check_token(token, now).await.unwrap().is_ok()
}

#[tokio::test]
async fn an_extended_token_keeps_its_value_and_lives_until_the_new_expiry() {
    let (store, _d) = fresh().await;
    let (a, _) = app(&store, "deployer").await;
    let minted = named_token(&store, a.id, "deploy pipeline", 7 * 86_400).await;
    let later = T0 + 86_400;
    let view = tokens::extend_token(&store, &owner(later), minted.view.id, TokenExpiry::Days(90)).await.unwrap();
    assert_eq!(view.expires_at, later + 90 * 86_400);
    // The same value works past the old expiry, and stops at the new one.
    assert!(valid(&store, &minted.token, T0 + 30 * 86_400).await);
    assert!(!valid(&store, &minted.token, later + 90 * 86_400).await);
    let events =
        store.list_audit_events(&AuditQuery { page: 1, per_page: 10, ..Default::default() }).await.unwrap().items;
    let e = events.iter().find(|e| e.action == "token.extended").unwrap();
    assert_eq!(e.details["previous_expires_at"], serde_json::json!(T0 + 7 * 86_400));
    assert_eq!(e.details["expires_at"], serde_json::json!(later + 90 * 86_400));
    let sentence = crate::audit_text::describe(e);
    assert!(sentence.contains("changed the expiry of the token \"deploy pipeline\""), "{sentence}");

    // Refusals say why.
    let err = |r: Result<TokenView, CoreError>| r.unwrap_err().to_string();
    assert!(err(tokens::extend_token(&store, &owner(later), minted.view.id, TokenExpiry::Days(800)).await)
        .contains("two years"));
    assert!(err(
        tokens::extend_token(&store, &owner(later), minted.view.id, TokenExpiry::At(later + 90 * 86_400)).await
    )
    .contains("already expires then"));
    let viewer = Caller::administrator(
        AdminView {
            id: AdminId(2),
            username: "vic".into(),
            role: Role::Viewer,
            created_at: T0,
            last_sign_in_at: None,
            must_change_password: false,
        },
        later,
        None,
    );
    assert!(matches!(
        tokens::extend_token(&store, &viewer, minted.view.id, TokenExpiry::Days(9)).await,
        Err(CoreError::Forbidden { .. })
    ));
    let short = named_token(&store, a.id, "short", 60).await;
    assert!(err(tokens::extend_token(&store, &owner(T0 + 61), short.view.id, TokenExpiry::Days(1)).await)
        .contains("has expired"));
    tokens::revoke_token(&store, &owner(later), minted.view.id).await.unwrap();
    assert!(err(tokens::extend_token(&store, &owner(later), minted.view.id, TokenExpiry::Days(9)).await)
        .contains("revoked"));
    assert!(matches!(
        tokens::extend_token(&store, &owner(later), TokenId(9_999), TokenExpiry::Days(9)).await,
        Err(CoreError::NotFound(_))
    ));
    // A token from the token endpoint is not extended.
    let (ci, _) = app(&store, "ci").await;
    let c = client(&store, ci.id).await;
    let issued = store.issue_endpoint_token(&c, crate::ScopeSet::empty(), T0).await.unwrap();
    assert!(err(tokens::extend_token(&store, &owner(T0 + 1), issued.id, TokenExpiry::Days(1)).await)
        .contains("only named tokens"));
}

#[tokio::test]
async fn a_rotated_token_has_a_new_value_and_the_old_one_ends_as_chosen() {
    let (store, _d) = fresh().await;
    let (a, _) = app(&store, "deployer").await;
    let first = named_token(&store, a.id, "deploy pipeline", 30 * 86_400).await;
    let now = T0 + 86_400;
    // With an overlap: both values work for an hour, then only the new one.
    let rotated = tokens::rotate_token(
        &store,
        &owner(now),
        first.view.id,
        tokens::RotateRequest { expiry: None, previous_valid_for: HOUR },
    )
    .await
    .unwrap();
    let second = rotated.minted;
    assert_ne!(second.token.expose(), first.token.expose());
    assert_eq!(second.view.name.as_deref(), Some("deploy pipeline"));
    assert_eq!(second.view.scopes, first.view.scopes);
    assert_eq!(second.view.expires_at, now + 30 * 86_400, "as long as the old one was made to live");
    assert_eq!(rotated.previous.expires_at, now + HOUR);
    assert!(valid(&store, &first.token, now + HOUR - 1).await);
    assert!(!valid(&store, &first.token, now + HOUR).await);
    assert!(valid(&store, &second.token, now + HOUR).await);

    // Without an overlap the old value is revoked at once; a chosen expiry.
    let third = tokens::rotate_token(
        &store,
        &owner(now + 10),
        second.view.id,
        tokens::RotateRequest { expiry: Some(TokenExpiry::Days(7)), previous_valid_for: 0 },
    )
    .await
    .unwrap();
    assert_eq!(third.previous.revoked_reason.as_deref(), Some("rotated"));
    assert!(!valid(&store, &second.token, now + 10).await);
    assert_eq!(third.minted.view.expires_at, now + 10 + 7 * 86_400);
    assert!(valid(&store, &third.minted.token, now + 10).await);
    let log = actions(&store).await;
    assert_eq!(log.iter().filter(|a| *a == "token.rotated").count(), 2);

    // Refusals: an overlap out of range, a revoked token.
    let bad = tokens::rotate_token(
        &store,
        &owner(now),
        third.minted.view.id,
        tokens::RotateRequest { expiry: None, previous_valid_for: 31 * 86_400 },
    )
    .await
    .unwrap_err();
    assert!(matches!(bad, CoreError::Invalid { field: "previous_valid_for", .. }), "{bad:?}");
    let revoked = tokens::rotate_token(
        &store,
        &owner(now + 20),
        second.view.id,
        tokens::RotateRequest { expiry: None, previous_valid_for: 0 },
    )
    .await
    .unwrap_err();
    assert!(revoked.to_string().contains("revoked"), "{revoked}");
    // Nothing half-done: once the first overlap ends, one live token.
    let live = store
        .list_tokens(a.id, 1, 200, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|t| t.state(now + HOUR) == TokenState::Active)
        .count();
    assert_eq!(live, 1);
}

#[tokio::test]
async fn a_token_in_its_rotation_overlap_is_neither_extended_nor_rotated_again() {
    let (store, _d) = fresh().await;
    let (a, _) = app(&store, "overlapping").await;
    let first = named_token(&store, a.id, "deploy pipeline", 30 * 86_400).await;
    let now = T0 + 86_400;
    let overlap = tokens::RotateRequest { expiry: None, previous_valid_for: HOUR };
    let rotated = tokens::rotate_token(&store, &owner(now), first.view.id, overlap.clone()).await.unwrap();
    let successor = rotated.minted.view.id;
    assert_eq!(rotated.previous.replaced_by, Some(successor));
    assert_eq!(rotated.minted.view.replaced_by, None);
    assert!(valid(&store, &first.token, now + 1).await, "the overlap works");
    // Its overlap ends by design: no "expires soon" warning or alert.
    assert!(!rotated.previous.expires_soon(now + 1));
    let attention = store.needs_attention(now + 1, 90, 100).await.unwrap();
    assert!(attention.expiring_tokens.iter().all(|t| t.token_id != first.view.id), "{attention:?}");

    // Lengthening the old value, or rotating it again, would undo the rotation.
    fn refusal<T: std::fmt::Debug>(r: Result<T, CoreError>) -> String {
        r.unwrap_err().to_string()
    }
    let extended = refusal(tokens::extend_token(&store, &owner(now + 1), first.view.id, TokenExpiry::Days(90)).await);
    assert!(extended.contains("was rotated") && extended.contains(&successor.0.to_string()), "{extended}");
    let again = refusal(tokens::rotate_token(&store, &owner(now + 1), first.view.id, overlap.clone()).await);
    assert!(again.contains("was rotated"), "{again}");
    let old = store.token(first.view.id).await.unwrap().unwrap();
    assert_eq!(old.expires_at, now + HOUR, "the refusals changed nothing");
    assert_eq!(old.replaced_by, Some(successor));

    // Ending the overlap early is still allowed; the successor rotates on.
    assert!(tokens::revoke_token(&store, &owner(now + 2), first.view.id).await.unwrap());
    assert!(!valid(&store, &first.token, now + 2).await);
    let next = tokens::rotate_token(
        &store,
        &owner(now + 3),
        successor,
        tokens::RotateRequest { expiry: None, previous_valid_for: 0 },
    )
    .await
    .unwrap();
    assert_eq!(next.previous.replaced_by, Some(next.minted.view.id), "an immediate rotation names its successor too");
    assert_eq!(actions(&store).await.iter().filter(|a| *a == "token.rotated").count(), 2);
}

#[tokio::test]
async fn a_token_cannot_lengthen_a_token_with_scopes_it_does_not_hold() {
    let (store, _d) = fresh().await;
    let mut settings = ApplicationSettings::new("narrowed");
    settings.scopes = ScopeSet::parse("tokens:read").unwrap();
    let (a, _) = store.create_application(settings, T0).await.unwrap();
    let request = tokens::MintRequest {
        name: "reader".into(),
        scopes: ScopeSet::parse("tokens:read").unwrap(),
        expiry: TokenExpiry::Days(30),
    };
    let minted = tokens::mint_token(&store, &owner(T0), a.id, request).await.unwrap();
    // The application loses the scope; its token keeps it, dormant.
    store.update_application(a.id, ApplicationSettings::new("narrowed"), true, T0).await.unwrap();
    let robot = Caller {
        actor: Actor::Application {
            id: ApplicationId(999),
            name: "robot".into(),
            token_id: TokenId(5),
            scopes: ScopeSet::parse("tokens:write").unwrap(),
        },
        now: T0,
        ip: None,
    };
    let refused = tokens::extend_token(&store, &robot, minted.view.id, TokenExpiry::Days(700)).await.unwrap_err();
    assert!(matches!(refused, CoreError::Forbidden { .. }), "{refused:?}");
    let rotate = tokens::RotateRequest { expiry: None, previous_valid_for: 0 };
    assert!(tokens::rotate_token(&store, &robot, minted.view.id, rotate).await.is_err());
    assert_eq!(store.token(minted.view.id).await.unwrap().unwrap().expires_at, minted.view.expires_at);
}
