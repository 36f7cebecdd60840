//! Storage tests on a real SQLite file, with time passed in.

use super::*;
use crate::grant::{ClientAuthFailure, TokenRejection};
use crate::secret::{AccessToken, ClientSecret};
use crate::usecase::{self, Caller};
use testing::TestOps;

const T0: i64 = 1_800_000_000;

async fn fresh() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database_url(dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

async fn app_with(store: &Store, name: &str, max_tokens: i64) -> (ApplicationView, ClientSecret) {
    let mut s = ApplicationSettings::new(name);
    s.scopes = ScopeSet::parse("applications:read tokens:read").unwrap();
    s.max_tokens = max_tokens;
    store.create_application(s, T0).await.unwrap()
}

#[tokio::test]
async fn application_roundtrip_never_stores_the_secret() {
    let (store, _d) = fresh().await;
    let (view, secret) = app_with(&store, "billing-sync", 30).await;
    assert_eq!(view.name, "billing-sync");
    assert!(view.client_id.starts_with("kgc_"));
    assert_eq!(view.scopes, vec!["applications:read", "tokens:read"]);
    let stored: Vec<u8> =
        on_pool!(store, |p| sqlx::query_scalar("SELECT secret_hash FROM client_secrets").fetch_one(p).await.unwrap());
    assert_eq!(stored, secret.digest().as_bytes());
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    assert!(client.authenticate(&secret, T0, None).is_ok());
    assert_eq!(client.authenticate(&ClientSecret::generate(), T0, None), Err(ClientAuthFailure::WrongSecret));
}

#[tokio::test]
async fn duplicate_name_and_unknown_scope_are_refused_by_field() {
    let (store, _d) = fresh().await;
    app_with(&store, "dup", 30).await;
    match store.create_application(ApplicationSettings::new("DUP"), T0).await {
        Err(CoreError::Invalid { field: "name", message }) => assert!(message.contains("already exists")),
        other => panic!("{other:?}"),
    }
    let mut s = ApplicationSettings::new("x");
    s.scopes = ScopeSet::parse("nope:read").unwrap();
    match store.create_application(s, T0).await {
        Err(CoreError::Invalid { field: "scopes", message }) => assert!(message.contains("nope:read")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn token_expires_at_its_second() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let issued = store.issue_endpoint_token(&client, client.scopes.clone(), T0).await.unwrap();
    assert_eq!(issued.expires_at, T0 + 3600);
    let ok = store.check_token(&issued.token, T0 + 3599).await.unwrap().unwrap();
    assert_eq!(ok.application_id, view.id);
    assert_eq!(ok.scopes.to_string(), "applications:read tokens:read");
    let expired = store.check_token(&issued.token, T0 + 3600).await.unwrap().unwrap_err();
    assert_eq!(expired.rejection, TokenRejection::Expired { expired_at: T0 + 3600 });
    let unknown = store.check_token(&AccessToken::generate(), T0).await.unwrap().unwrap_err();
    assert_eq!(unknown.rejection, TokenRejection::Unknown);
}

#[tokio::test]
async fn cap_revokes_the_oldest() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 3).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let mut issued = Vec::new();
    for i in 0..5 {
        issued.push(store.issue_endpoint_token(&client, ScopeSet::empty(), T0 + i).await.unwrap());
    }
    assert_eq!(issued[3].evicted, 1);
    let now = T0 + 10;
    for (i, t) in issued.iter().enumerate() {
        let r = store.check_token(&t.token, now).await.unwrap();
        if i < 2 {
            assert_eq!(r.unwrap_err().rejection, TokenRejection::Revoked { reason: "token_cap".into() });
        } else {
            assert!(r.is_ok(), "token {i} should be valid");
        }
    }
    // Expired tokens do not count against the cap.
    let later = T0 + 3600 + 100;
    let fresh_token = store.issue_endpoint_token(&client, ScopeSet::empty(), later).await.unwrap();
    assert_eq!(fresh_token.evicted, 0);
    assert_eq!(store.application(view.id, later).await.unwrap().unwrap().active_tokens, 1);
}

#[tokio::test]
async fn named_tokens_do_not_count_against_the_cap() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 1).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let named = store
        .mint_named_token(view.id, "deploy bot", ScopeSet::parse("tokens:read").unwrap(), T0 + 86_400, T0)
        .await
        .unwrap();
    store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    assert!(store.check_token(&named.token, T0 + 1).await.unwrap().is_ok());
    let err =
        store.mint_named_token(view.id, "x", ScopeSet::parse("audit:read").unwrap(), T0 + 10, T0).await.unwrap_err();
    assert!(matches!(err, CoreError::Invalid { field: "scopes", .. }));
    let err = store.mint_named_token(view.id, "x", ScopeSet::empty(), T0, T0).await.unwrap_err();
    assert!(matches!(err, CoreError::Invalid { field: "expires_at", .. }));
}

#[tokio::test]
async fn regenerating_the_secret_revokes_every_token_and_the_old_secret() {
    let (store, _d) = fresh().await;
    let (view, old_secret) = app_with(&store, "a", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let t1 = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    let t2 = store.mint_named_token(view.id, "named", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    let (new_secret, revoked) = store.regenerate_secret(view.id, T0 + 5).await.unwrap();
    assert_eq!(revoked, 2);
    for t in [&t1, &t2] {
        let r = store.check_token(&t.token, T0 + 6).await.unwrap().unwrap_err();
        assert_eq!(r.rejection, TokenRejection::Revoked { reason: "secret_regenerated".into() });
    }
    let fresh_client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    assert_eq!(fresh_client.authenticate(&old_secret, T0, None), Err(ClientAuthFailure::WrongSecret));
    assert!(fresh_client.authenticate(&new_secret, T0, None).is_ok());
    // A client that authenticated with the old secret before the regeneration
    // committed cannot get a token after it.
    assert!(matches!(
        store.issue_endpoint_token(&client, ScopeSet::empty(), T0 + 7).await,
        Err(IssueError::ClientChanged)
    ));
    assert_eq!(store.application(view.id, T0 + 6).await.unwrap().unwrap().secret_regenerated_at, Some(T0 + 5));
}

#[tokio::test]
async fn disabled_application_refuses_clients_and_tokens() {
    let (store, _d) = fresh().await;
    let (view, secret) = app_with(&store, "a", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let t = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    let mut s = ApplicationSettings::new("a");
    s.scopes = client.scopes.clone();
    store.update_application(view.id, s, false, T0 + 1).await.unwrap();
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    assert_eq!(client.authenticate(&secret, T0, None), Err(ClientAuthFailure::ApplicationDisabled));
    // Disabling revoked the token, so re-enabling cannot revive it.
    let r = store.check_token(&t.token, T0 + 2).await.unwrap().unwrap_err();
    assert_eq!(r.rejection, TokenRejection::Revoked { reason: "application_disabled".into() });
    let mut s = ApplicationSettings::new("a");
    s.scopes = client.scopes.clone();
    store.update_application(view.id, s, true, T0 + 3).await.unwrap();
    let r = store.check_token(&t.token, T0 + 4).await.unwrap().unwrap_err();
    assert_eq!(r.rejection, TokenRejection::Revoked { reason: "application_disabled".into() });
    // A disabled application gets no named tokens either.
    let mut s = ApplicationSettings::new("a");
    s.scopes = client.scopes.clone();
    store.update_application(view.id, s, false, T0 + 5).await.unwrap();
    let minted = store.mint_named_token(view.id, "x", ScopeSet::empty(), T0 + 3600, T0 + 6).await;
    assert!(matches!(minted, Err(crate::CoreError::Refused(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cap_holds_under_one_hundred_concurrent_requests() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "busy", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let mut handles = Vec::new();
    for _ in 0..100 {
        let store = store.clone();
        let client = client.clone();
        handles.push(tokio::spawn(async move { store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await }));
    }
    let mut ok = 0;
    for h in handles {
        h.await.unwrap().unwrap();
        ok += 1;
    }
    assert_eq!(ok, 100);
    let valid: i64 = on_pool!(store, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM tokens WHERE application_id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(view.id.0)
    .bind(T0)
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(valid, 30);
}

#[tokio::test]
async fn last_use_batches_only_move_forward() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let t = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    store.record_token_uses(&[(t.id, T0 + 50, Some("10.0.0.1".into()))]).await.unwrap();
    store.record_token_uses(&[(t.id, T0 + 20, Some("10.0.0.2".into()))]).await.unwrap();
    let v = store.token(t.id).await.unwrap().unwrap();
    assert_eq!(v.last_used_at, Some(T0 + 50));
    assert_eq!(v.last_used_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(store.application(view.id, T0).await.unwrap().unwrap().last_used_at, Some(T0 + 50));
}

#[tokio::test]
async fn token_lists_page_newest_first_with_each_pages_addresses() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 30).await;
    let (other, _) = app_with(&store, "a-other", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(store.issue_endpoint_token(&client, ScopeSet::empty(), T0 + i).await.unwrap().id);
    }
    ids.push(store.mint_named_token(view.id, "deploy", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap().id);
    store.mint_named_token(other.id, "elsewhere", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    store.revoke_token(ids[1], T0 + 9).await.unwrap();
    let usage = crate::usage::UsageTracker::new();
    usage.record(ids[2], T0 + 50, Some("10.0.0.9".into()));
    usage.flush(&store).await.unwrap();
    ids.reverse();
    let mut seen = Vec::new();
    for page in 1..=3 {
        let p = store.list_tokens(view.id, page, 2, None).await.unwrap();
        assert_eq!((p.total, p.page, p.per_page), (6, page, 2));
        seen.extend(p.items.iter().map(|t| t.id));
        for t in &p.items {
            let expected: &[&str] = if t.id == ids[3] { &["10.0.0.9"] } else { &[] };
            assert_eq!(t.recent_addresses.iter().map(|a| a.ip.as_str()).collect::<Vec<_>>(), expected, "{}", t.id);
        }
    }
    // Every token once, of every kind and state, newest first.
    assert_eq!(seen, ids);
    let past = store.list_tokens(view.id, 4, 2, None).await.unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.total, 6);
    // After a token: what follows it, however many were issued since.
    store.issue_endpoint_token(&client, ScopeSet::empty(), T0 + 20).await.unwrap();
    let after = store.list_tokens(view.id, 1, 3, Some(ids[1])).await.unwrap();
    assert_eq!(after.items.iter().map(|t| t.id).collect::<Vec<_>>(), ids[2..5]);
    assert_eq!(after.total, 7);
}

#[tokio::test]
async fn first_owner_only_once() {
    let (store, _d) = fresh().await;
    let mut tx = store.write().await.unwrap();
    assert!(tx.insert_first_owner("alice", "h", T0).await.unwrap().is_some());
    assert!(tx.insert_first_owner("bob", "h", T0).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(store.admin_count().await.unwrap(), 1);
    let (a, h) = store.admin_credentials("ALICE").await.unwrap().unwrap();
    assert_eq!(a.role, Role::Owner);
    assert_eq!(h, "h");
}

#[tokio::test]
async fn application_search_and_paging() {
    let (store, _d) = fresh().await;
    for i in 0..25 {
        store.create_application(ApplicationSettings::new(format!("svc-{i:02}")), T0).await.unwrap();
    }
    store.create_application(ApplicationSettings::new("other_100%"), T0).await.unwrap();
    let q = ApplicationQuery { search: Some("svc".into()), page: 2, per_page: 10, ..Default::default() };
    let p = store.list_applications(&q, T0).await.unwrap();
    assert_eq!(p.total, 25);
    assert_eq!(p.items.len(), 10);
    assert_eq!(p.items[0].name, "svc-10");
    let q = ApplicationQuery { search: Some("0%".into()), page: 1, per_page: 10, ..Default::default() };
    assert_eq!(store.list_applications(&q, T0).await.unwrap().total, 1);
    // The total comes with the rows; past the end it is counted alone.
    let q = ApplicationQuery { search: None, page: 3, per_page: 10, ..Default::default() };
    let p = store.list_applications(&q, T0).await.unwrap();
    assert_eq!((p.total, p.items.len()), (26, 6));
    for search in [None, Some("svc".to_owned())] {
        let q = ApplicationQuery { search, page: 9, per_page: 10, ..Default::default() };
        let p = store.list_applications(&q, T0).await.unwrap();
        assert!(p.items.is_empty());
        assert!(p.total == 26 || p.total == 25, "{}", p.total);
    }
    let q = ApplicationQuery { search: Some("nothing like it".into()), page: 1, per_page: 10, ..Default::default() };
    assert_eq!(store.list_applications(&q, T0).await.unwrap().total, 0);
}

#[tokio::test]
async fn the_last_owner_stays() {
    let (store, _d) = fresh().await;
    let cli = Caller::cli(T0);
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_admin("alice", "h", Role::Owner, true, T0).await.unwrap();
    let bob = tx.insert_admin("bob", "h", Role::Admin, true, T0).await.unwrap();
    tx.commit().await.unwrap();
    use usecase::admins::{remove_admin, set_admin_role};
    assert!(matches!(set_admin_role(&store, &cli, alice.id, Role::Admin).await, Err(CoreError::Refused(_))));
    assert!(matches!(remove_admin(&store, &cli, alice.id).await, Err(CoreError::Refused(_))));
    set_admin_role(&store, &cli, bob.id, Role::Owner).await.unwrap();
    assert_eq!(set_admin_role(&store, &cli, alice.id, Role::Viewer).await.unwrap().role, Role::Viewer);
    assert_eq!(remove_admin(&store, &cli, alice.id).await.unwrap().username, "alice");
    assert!(matches!(remove_admin(&store, &cli, AdminId(999)).await, Err(CoreError::NotFound(_))));
}

#[tokio::test]
async fn prune_deletes_only_past_retention() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let old = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    store.record_token_uses(&[(old.id, T0 + 60, None)]).await.unwrap();
    // A named token used until it expired, of an application used no other way.
    let (named_only, _) = app_with(&store, "b", 30).await;
    let named = store.mint_named_token(named_only.id, "deploy", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    store.record_token_uses(&[(named.id, T0 + 86_000, None)]).await.unwrap();
    let recent = store.issue_endpoint_token(&client, ScopeSet::empty(), T0 + 8 * 86_400).await.unwrap();
    let revoked = store.issue_endpoint_token(&client, ScopeSet::empty(), T0 + 8 * 86_400).await.unwrap();
    store.revoke_token(revoked.id, T0 + 8 * 86_400).await.unwrap();
    store.record_audit(&AuditRecord::new(T0, ActorKind::System, crate::AuditAction::ScopeCreated)).await.unwrap();
    store
        .record_audit(&AuditRecord::new(T0 + 80 * 86_400, ActorKind::System, crate::AuditAction::ScopeCreated))
        .await
        .unwrap();
    // At day 9 with 7 days of token retention: the token that expired on
    // day 0 goes; the live one and the one revoked a day ago stay.
    let now = T0 + 9 * 86_400;
    let (tokens, events) = store.prune(now, 7 * 86_400, 90 * 86_400).await.unwrap();
    assert_eq!((tokens, events), (2, 0));
    assert!(store.token(old.id).await.unwrap().is_none());
    assert!(store.token(named.id).await.unwrap().is_none());
    // The pruned tokens' uses are still their applications' last uses.
    assert_eq!(store.application(named_only.id, now).await.unwrap().unwrap().last_used_at, Some(T0 + 86_000));
    let never = ApplicationQuery { status: ApplicationStatus::NeverUsed, ..Default::default() };
    assert_eq!(store.list_applications(&never, now).await.unwrap().total, 0);
    let by_use = ApplicationQuery { sort: ApplicationSort::LastUsed, ..Default::default() };
    let order: Vec<_> =
        store.list_applications(&by_use, now).await.unwrap().items.into_iter().map(|a| a.name).collect();
    assert_eq!(order, ["b", "a"]);
    assert!(store.token(recent.id).await.unwrap().is_some());
    assert!(store.token(revoked.id).await.unwrap().is_some());
    // Day 91: the events of day 0 (both applications' creation, the named
    // token's minting and the one recorded above) go; those of days 8 and
    // 80 stay.
    let (_, events) = store.prune(T0 + 91 * 86_400, 7 * 86_400, 90 * 86_400).await.unwrap();
    assert_eq!(events, 4);
}

#[tokio::test]
async fn a_last_use_batch_skips_rows_another_writer_holds_and_never_waits() {
    let (store, _d) = fresh().await;
    if store.backend() != Backend::Postgres {
        return; // one writer on SQLite: nothing to skip, nothing to deadlock with
    }
    let (view, _) = app_with(&store, "a", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let held = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    let free = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    // A revocation in progress holds its token's row.
    let mut tx = store.write().await.unwrap();
    assert!(tx.revoke_token(held.id, "revoked", "alice", T0 + 1).await.unwrap());
    let uses = [(held.id, T0 + 5, None), (free.id, T0 + 5, None)];
    let busy = tokio::time::timeout(std::time::Duration::from_secs(5), store.record_token_uses(&uses))
        .await
        .expect("the batch never waits for a row lock")
        .unwrap();
    assert_eq!(busy, vec![held.id]);
    assert_eq!(store.token(free.id).await.unwrap().unwrap().last_used_at, Some(T0 + 5));
    tx.commit().await.unwrap();
    // Retried with the next batch, it lands.
    assert!(store.record_token_uses(&uses[..1]).await.unwrap().is_empty());
    assert_eq!(store.token(held.id).await.unwrap().unwrap().last_used_at, Some(T0 + 5));
}

#[tokio::test]
async fn a_periodic_job_runs_on_one_instance_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database_url(dir.path()).await.unwrap();
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    a.migrate().await.unwrap();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn({
        let a = a.clone();
        async move {
            a.exclusively(JOB_PRUNE, async move {
                let _ = started.send(());
                let _ = finished.await;
                Ok(1)
            })
            .await
        }
    });
    running.await.unwrap();
    let second = b.exclusively(JOB_PRUNE, async { Ok(2) }).await.unwrap();
    match b.backend() {
        // Another instance is running it: skipped.
        Backend::Postgres => assert_eq!(second, None),
        // One server process per SQLite file: no cluster to share with.
        Backend::Sqlite => assert_eq!(second, Some(2)),
    }
    finish.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), Some(1));
    // Released once done: the next run goes ahead.
    assert_eq!(b.exclusively(JOB_PRUNE, async { Ok(3) }).await.unwrap(), Some(3));
}

#[tokio::test]
async fn shared_rate_counts_grant_exactly_the_quota_however_requests_batch() {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database_url(dir.path()).await.unwrap();
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    a.migrate().await.unwrap();
    if a.backend() != Backend::Postgres {
        assert_eq!(a.count_shared_request(ApplicationId(1), 10, 10).await.unwrap(), None, "counted in memory");
        return;
    }
    // Sixty requests at once over two instances, an hourly quota of 25:
    // whatever batches form, 25 pass, each told a different remainder.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { store.count_shared_request(ApplicationId(7), 100_000, 25).await }));
    }
    let mut remaining = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let d = t.await.unwrap().unwrap().unwrap();
        assert_eq!(d.limit, 25);
        if d.allowed {
            remaining.push(d.remaining);
        } else {
            refused += 1;
            assert_eq!(d.remaining, 0);
            assert!(d.retry_after >= 1);
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..25).collect::<Vec<i64>>());
    assert_eq!(refused, 35);
    // Another application has its own row.
    assert!(a.count_shared_request(ApplicationId(8), 100_000, 25).await.unwrap().unwrap().allowed);
}

#[tokio::test]
async fn an_ended_session_stays_ended_when_a_late_request_saves_it() {
    let (store, _d) = fresh().await;
    let id = crate::secret::SecretDigest::of("session-id");
    assert!(store.insert_session(&id, Some(1), "{}", T0 + 100).await.unwrap());
    assert!(!store.insert_session(&id, None, "{}", T0 + 100).await.unwrap(), "an ID is taken once");
    let loaded = store.load_session(&id, T0).await.unwrap().unwrap();
    assert_eq!((loaded.data.as_str(), loaded.expires_at), ("{}", T0 + 100));
    assert_eq!(store.load_session(&id, T0 + 100).await.unwrap(), None, "expired");
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.end_admin_sessions(1).await.unwrap(), 1);
    tx.commit().await.unwrap();
    // A request that loaded the session before it ended saves it afterwards.
    store.save_session(&id, Some(1), "{\"admin_id\":1}", T0 + 200).await.unwrap();
    assert_eq!(store.load_session(&id, T0).await.unwrap(), None);
}

#[tokio::test]
async fn a_session_binding_outlives_neither_a_password_reset_nor_its_administrator() {
    let (store, _d) = fresh().await;
    let bob = store.create_admin("bob", "hash-1", Role::Viewer, T0).await.unwrap();
    let session = crate::secret::SecretDigest::of("bob's session");
    store.insert_session(&session, Some(bob.id.0), "{}", T0 + 1000).await.unwrap();
    let admin_for_session = |id: AdminId, binding: String| {
        let store = store.clone();
        async move {
            let stored = store.load_session(&session, T0).await.unwrap()?;
            stored.admin_bound_to(id, &binding).cloned()
        }
    };
    let mut tx = store.write().await.unwrap();
    assert!(tx.record_sign_in(bob.id, "hash-0", T0).await.unwrap().is_none(), "checked against another password");
    let binding = tx.record_sign_in(bob.id, "hash-1", T0).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(admin_for_session(bob.id, binding.0.clone()).await.unwrap().username, "bob");
    assert!(admin_for_session(bob.id, String::new()).await.is_none());
    assert!(admin_for_session(AdminId(bob.id.0 + 1), binding.0.clone()).await.is_none(), "another id");
    // A role change shows on the next load.
    store.create_admin("olga", "hash-o", Role::Owner, T0).await.unwrap();
    let mut tx = store.write().await.unwrap();
    tx.set_admin_role(bob.id, Role::Owner).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(admin_for_session(bob.id, binding.0.clone()).await.unwrap().role, Role::Owner);
    let mut tx = store.write().await.unwrap();
    tx.set_admin_role(bob.id, Role::Viewer).await.unwrap();
    tx.commit().await.unwrap();
    // A password reset draws a new binding: the old sessions end.
    let mut tx = store.write().await.unwrap();
    assert!(tx.set_admin_password(bob.id, "hash-2").await.unwrap().is_some());
    tx.commit().await.unwrap();
    assert!(admin_for_session(bob.id, binding.0.clone()).await.is_none());
    // Removed (a sign-in checked just before is refused), then someone new
    // is added, perhaps under the same id: no old session is theirs.
    let mut tx = store.write().await.unwrap();
    let last = tx.record_sign_in(bob.id, "hash-2", T0).await.unwrap().unwrap();
    assert!(tx.delete_admin(bob.id).await.unwrap());
    assert!(tx.record_sign_in(bob.id, "hash-2", T0).await.unwrap().is_none());
    tx.commit().await.unwrap();
    let carol = store.create_admin("carol", "hash-3", Role::Owner, T0).await.unwrap();
    store.insert_session(&session, Some(carol.id.0), "{}", T0 + 1000).await.unwrap();
    assert!(admin_for_session(carol.id, last.0.clone()).await.is_none());
    assert!(admin_for_session(carol.id, binding.0.clone()).await.is_none());
}

#[tokio::test]
async fn pruning_forgets_short_lived_console_and_throttle_state_and_keeps_the_current() {
    let (store, _d) = fresh().await;
    let now = T0 + 10 * 86_400;
    let digest = crate::secret::SecretDigest::of;
    // Expired and current sessions, flashes, setup codes.
    store.insert_session(&digest("old"), None, "{}", now - 1).await.unwrap();
    store.insert_session(&digest("live"), None, "{}", now + 60).await.unwrap();
    store.put_flash(&digest("old"), 1, b"x", now - FLASH_TTL_SECONDS - 1).await.unwrap();
    store.put_flash(&digest("live"), 1, b"x", now - 5).await.unwrap();
    store.add_setup_code(&digest("old"), now - SETUP_CODE_TTL_SECONDS - 1).await.unwrap();
    store.add_setup_code(&digest("live"), now - 5).await.unwrap();
    // Throttle counts past their windows, and current ones.
    let mut tx = store.write().await.unwrap();
    let f = |last_at| Some(crate::throttle::SignInFailures { failures: 2, last_at });
    tx.set_sign_in_failures("u:old", f(now - crate::throttle::WINDOW_SECONDS - 1)).await.unwrap();
    tx.set_sign_in_failures("u:live", f(now - 5)).await.unwrap();
    tx.commit().await.unwrap();
    let key = |k: &str| vec![(k.to_owned(), 10)];
    assert!(store.count_failed_client_auth(&key("ca:old"), now.div_euclid(60) - 2).await.unwrap());
    assert!(store.count_failed_client_auth(&key("ca:live"), now.div_euclid(60)).await.unwrap());

    store.prune(now, 86_400, 86_400).await.unwrap();

    assert!(store.load_session(&digest("old"), now - 10).await.unwrap().is_none());
    assert!(store.load_session(&digest("live"), now).await.unwrap().is_some());
    assert!(store.take_flash(&digest("old"), 1, 0).await.unwrap().is_none());
    assert!(store.take_flash(&digest("live"), 1, 0).await.unwrap().is_some());
    assert!(!store.setup_code_exists(&digest("old"), 0).await.unwrap());
    assert!(store.setup_code_exists(&digest("live"), 0).await.unwrap());
    assert!(store.sign_in_failures("u:old").await.unwrap().is_none());
    assert!(store.sign_in_failures("u:live").await.unwrap().is_some());
    let left: Vec<String> =
        on_pool!(store, |p| sqlx::query_scalar("SELECT key FROM client_auth_failures").fetch_all(p).await.unwrap());
    assert_eq!(left, ["ca:live"]);
}

/// A database made before resource servers existed migrates as the issue
/// says: Keygate's scopes go to its API, custom scopes stay unattached,
/// and tokens get the audience their scopes had.
#[tokio::test]
async fn a_database_from_before_resource_servers_migrates() {
    const FIRST_NEW: i64 = 20261201000001;
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database_url(dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    let before = |m: &sqlx::migrate::Migrator| sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(m.iter().filter(|x| x.version < FIRST_NEW).cloned().collect()),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    match &store.db {
        Db::Sqlite { writer, .. } => before(&SQLITE_MIGRATOR).run(writer).await.unwrap(),
        Db::Postgres { pool, .. } => before(&POSTGRES_MIGRATOR).run(pool).await.unwrap(),
    }
    // Old rows, written as the old schema had them.
    for sql in [
        "INSERT INTO scopes (name, description, builtin, created_at) VALUES ('billing:read', 'x', FALSE, 0)",
        "INSERT INTO applications (name, client_id, secret_hash, scopes, token_ttl_seconds, max_tokens, \
         rate_per_second, rate_per_hour, created_at, updated_at) VALUES ('old', 'kgc_old', $1, \
         'applications:read billing:read', 3600, 30, 20, 15000, 0, 0)",
    ] {
        on_pool!(store, |p| sqlx::query(sql).bind(vec![0u8; 32]).execute(p).await.unwrap().rows_affected());
    }
    for (hash, scopes) in [(1u8, "applications:read billing:read"), (2, "billing:read")] {
        on_pool!(store, |p| sqlx::query(
            "INSERT INTO tokens (application_id, token_hash, display_prefix, scopes, source, created_at, expires_at) \
             SELECT id, $1, 'kgt_old', $2, 'api', 0, 4000000000 FROM applications WHERE name = 'old'"
        )
        .bind(vec![hash; 32])
        .bind(scopes)
        .execute(p)
        .await
        .unwrap()
        .rows_affected());
    }
    store.migrate().await.unwrap();
    let scopes = store.list_scopes().await.unwrap();
    let server_of = |name: &str| scopes.iter().find(|s| s.name == name).unwrap().resource_server.clone();
    assert_eq!(server_of("tokens:write").as_deref(), Some(BUILTIN_RESOURCE_SERVER));
    assert_eq!(server_of("introspect").as_deref(), Some(BUILTIN_RESOURCE_SERVER));
    assert_eq!(server_of("billing:read"), None, "custom scopes stay unattached");
    let audiences: Vec<String> =
        on_pool!(store, |p| sqlx::query_scalar("SELECT audience FROM tokens ORDER BY id").fetch_all(p).await.unwrap());
    assert_eq!(audiences, vec![BUILTIN_RESOURCE_SERVER.to_string(), String::new()]);
    let app = store.client_by_client_id("kgc_old").await.unwrap().unwrap();
    assert_eq!(app.token_format, TokenFormat::Opaque);
    // A resource server made after the upgrade gets a fresh id (the
    // built-in one took id 1 explicitly).
    let made =
        crate::usecase::resource_servers::add_resource_server(&store, &Caller::cli(T0), "Billing", "urn:acme:billing")
            .await
            .unwrap();
    assert!(made.id.0 > 1);
}

#[tokio::test]
async fn token_lists_separate_named_from_issued_and_hide_the_inactive() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let scopes = ScopeSet::parse("tokens:read").unwrap();
    let deploy = store.mint_named_token(view.id, "deploy", scopes.clone(), T0 + 86_400, T0).await.unwrap();
    let old = store.mint_named_token(view.id, "old job", scopes.clone(), T0 + 86_400, T0).await.unwrap();
    let short = store.mint_named_token(view.id, "short", scopes, T0 + 50, T0).await.unwrap();
    store.revoke_token(old.id, T0 + 10).await.unwrap();
    // Endpoint tokens live an hour: the first two have expired at `now`.
    for at in [T0, T0 + 1, T0 + 3_000, T0 + 3_001, T0 + 3_002] {
        store.issue_endpoint_token(&client, ScopeSet::empty(), at).await.unwrap();
    }
    store.record_token_uses(&[(deploy.id, T0 + 20, None)]).await.unwrap();
    let now = T0 + 3_700;
    let s = store.token_summary(view.id, now).await.unwrap();
    assert_eq!(
        s,
        TokenSummary {
            named_active: 1,
            named_inactive: 2,
            issued_active: 3,
            issued_total: 5,
            issued_last_at: Some(T0 + 3_002),
            issued_last_used_at: None,
        }
    );
    let named = store.list_token_page(view.id, false, false, 1, 50, now).await.unwrap();
    assert_eq!(named.iter().map(|t| t.id).collect::<Vec<_>>(), vec![deploy.id]);
    assert_eq!(named[0].last_used_at, Some(T0 + 20));
    let every_named = store.list_token_page(view.id, false, true, 1, 50, now).await.unwrap();
    assert_eq!(every_named.iter().map(|t| t.id).collect::<Vec<_>>(), vec![short.id, old.id, deploy.id]);
    let issued = store.list_token_page(view.id, true, false, 1, 2, now).await.unwrap();
    assert_eq!(issued.len(), 2);
    assert!(issued.iter().all(|t| t.source == TokenSource::TokenEndpoint && t.state(now) == TokenState::Active));
    let second = store.list_token_page(view.id, true, false, 2, 2, now).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(issued[1].id.0 > second[0].id.0, "newest first");
    assert_eq!(store.list_token_page(view.id, true, true, 1, 50, now).await.unwrap().len(), 5);
    assert_eq!(s.count(true, true), 5);
    assert_eq!(s.count(false, false), 1);
    // An application without tokens counts zeros, not NULLs.
    let (empty, _) = app_with(&store, "b", 30).await;
    assert_eq!(store.token_summary(empty.id, now).await.unwrap(), TokenSummary::default());
    // The names the new-token form warns about: active named tokens only, once each.
    store.mint_named_token(view.id, "deploy", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    store.mint_named_token(view.id, "ci", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    assert_eq!(store.active_named_token_names(view.id, now, 100).await.unwrap(), vec!["ci", "deploy"]);
    assert_eq!(store.active_named_token_names(view.id, now, 1).await.unwrap(), vec!["ci"]);
    assert_eq!(store.active_named_token_names(view.id, T0 + 10, 100).await.unwrap(), vec!["ci", "deploy", "short"]);
    assert!(store.active_named_token_names(empty.id, now, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn applications_sort_naturally_by_use_and_tokens_and_filter_by_status() {
    let (store, _d) = fresh().await;
    let mut ids = std::collections::HashMap::new();
    for name in ["etl-job-10", "etl-job-2", "ETL-job-1", "idle", "off"] {
        let (view, _) = app_with(&store, name, 30).await;
        ids.insert(name, view);
    }
    let names = |p: &Page<ApplicationView>| p.items.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
    let list = |sort, status| ApplicationQuery { sort, status, page: 1, per_page: 50, ..Default::default() };
    let p = store.list_applications(&list(ApplicationSort::Name, ApplicationStatus::Any), T0).await.unwrap();
    assert_eq!(names(&p), ["ETL-job-1", "etl-job-2", "etl-job-10", "idle", "off"]);

    // etl-job-2 has two active tokens and was used last; etl-job-10 one, used earlier.
    for (name, uses) in [("etl-job-2", 2), ("etl-job-10", 1)] {
        let client = store.client_by_client_id(&ids[name].client_id).await.unwrap().unwrap();
        for _ in 0..uses {
            let t = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
            store.record_token_uses(&[(t.id, T0 + uses, None)]).await.unwrap();
        }
    }
    let mut off = ApplicationSettings::new("off");
    off.scopes = ScopeSet::parse("applications:read tokens:read").unwrap();
    store.update_application(ids["off"].id, off, false, T0).await.unwrap();

    let p = store.list_applications(&list(ApplicationSort::LastUsed, ApplicationStatus::Any), T0).await.unwrap();
    assert_eq!(names(&p)[..2], ["etl-job-2", "etl-job-10"], "never used last");
    let p = store.list_applications(&list(ApplicationSort::ActiveTokens, ApplicationStatus::Any), T0).await.unwrap();
    assert_eq!(names(&p), ["etl-job-2", "etl-job-10", "ETL-job-1", "idle", "off"]);
    let p = store.list_applications(&list(ApplicationSort::Name, ApplicationStatus::NeverUsed), T0).await.unwrap();
    assert_eq!((names(&p), p.total), (vec!["ETL-job-1".into(), "idle".into(), "off".into()], 3));

    // A secret's use is the application's use too (its JWTs may be checked
    // offline and never reported): ETL-job-1 got a token after the others'
    // last token use, and none of its tokens was presented.
    let secret = store.secrets_of(ids["ETL-job-1"].id, T0).await.unwrap()[0].id;
    let secret_use =
        CredentialUse { credential: UsedCredential::Secret(secret), at: T0 + 5, ip: None, addresses: vec![] };
    store.record_credential_uses(&[secret_use]).await.unwrap();
    let p = store.list_applications(&list(ApplicationSort::LastUsed, ApplicationStatus::Any), T0).await.unwrap();
    assert_eq!(names(&p)[..3], ["ETL-job-1", "etl-job-2", "etl-job-10"]);
    let used = |p: &Page<ApplicationView>| p.items.iter().map(|a| a.last_used_at).collect::<Vec<_>>();
    assert_eq!(used(&p), [Some(T0 + 5), Some(T0 + 2), Some(T0 + 1), None, None]);
    let p = store.list_applications(&list(ApplicationSort::Name, ApplicationStatus::NeverUsed), T0).await.unwrap();
    assert_eq!((names(&p), p.total), (vec!["idle".into(), "off".into()], 2));
    // The later of a token's and a secret's use: etl-job-2's secret was used before its tokens.
    let secret = store.secrets_of(ids["etl-job-2"].id, T0).await.unwrap()[0].id;
    let secret_use =
        CredentialUse { credential: UsedCredential::Secret(secret), at: T0 + 1, ip: None, addresses: vec![] };
    store.record_credential_uses(&[secret_use]).await.unwrap();
    let view = store.application(ids["etl-job-2"].id, T0).await.unwrap().unwrap();
    assert_eq!(view.last_used_at, Some(T0 + 2));
    let p = store.list_applications(&list(ApplicationSort::Name, ApplicationStatus::Disabled), T0).await.unwrap();
    assert_eq!((names(&p), p.total), (vec!["off".to_owned()], 1));
    let p = store.list_applications(&list(ApplicationSort::Name, ApplicationStatus::Enabled), T0).await.unwrap();
    assert_eq!(p.total, 4);
    // A filter and a search together, and a filtered page past the end still counts.
    let q = ApplicationQuery {
        search: Some("etl".into()),
        status: ApplicationStatus::NeverUsed,
        ..list(ApplicationSort::Name, ApplicationStatus::Any)
    };
    assert!(names(&store.list_applications(&q, T0).await.unwrap()).is_empty(), "ETL-job-1's secret was used");
    let q = ApplicationQuery { search: Some("DL".into()), ..q };
    assert_eq!(names(&store.list_applications(&q, T0).await.unwrap()), ["idle"]);
    let q = ApplicationQuery { page: 5, per_page: 1, ..list(ApplicationSort::Name, ApplicationStatus::Disabled) };
    let p = store.list_applications(&q, T0).await.unwrap();
    assert_eq!((p.items.len(), p.total), (0, 1));

    // A renamed application sorts by its new name; rows from before the
    // key existed get one when the store migrates.
    let mut renamed = ApplicationSettings::new("etl-job-3");
    renamed.scopes = ScopeSet::parse("applications:read tokens:read").unwrap();
    store.update_application(ids["idle"].id, renamed, true, T0).await.unwrap();
    on_pool!(store, |p| sqlx::query("UPDATE applications SET name_key = NULL")
        .execute(p)
        .await
        .unwrap()
        .rows_affected());
    store.migrate().await.unwrap();
    let p = store.list_applications(&list(ApplicationSort::Name, ApplicationStatus::Any), T0).await.unwrap();
    assert_eq!(names(&p), ["ETL-job-1", "etl-job-2", "etl-job-3", "etl-job-10", "off"]);
}

/// A list page comes back as one JSON document the database builds; every
/// application on it reads exactly as it does alone (a row per column),
/// whatever its text holds, on both backends.
#[tokio::test]
async fn a_list_page_reads_each_application_as_it_reads_alone() {
    let (store, _d) = fresh().await;
    let mut tx = store.write().await.unwrap();
    tx.insert_resource_server("Billing API", "https://billing.example", T0).await.unwrap();
    tx.commit().await.unwrap();
    let mut s = ApplicationSettings::new("quote \" back \\ ünï 🦀 <b>");
    s.notes = "line one\nline \"two\"\t</script>\u{1}".into();
    s.scopes = ScopeSet::parse("applications:read tokens:read").unwrap();
    s.token_format = TokenFormat::Jwt;
    s.introspects = Some("https://billing.example".into());
    s.allowed_networks = vec!["10.0.0.0/8".into(), "192.168.1.20/32".into()];
    let (odd, _) = store.create_application(s.clone(), T0).await.unwrap();
    store.update_application(odd.id, s, false, T0 + 5).await.unwrap();
    let (plain, _) = app_with(&store, "plain", 30).await;
    let client = store.client_by_client_id(&plain.client_id).await.unwrap().unwrap();
    let t = store.issue_endpoint_token(&client, ScopeSet::empty(), T0).await.unwrap();
    store.record_token_uses(&[(t.id, T0 + 7, None)]).await.unwrap();

    for sort in ApplicationSort::ALL {
        let q = ApplicationQuery { sort, page: 1, per_page: 25, ..Default::default() };
        let page = store.list_applications(&q, T0 + 10).await.unwrap();
        assert_eq!((page.total, page.items.len()), (2, 2), "{sort:?}");
        for listed in page.items {
            let mut alone = store.application(listed.id, T0 + 10).await.unwrap().unwrap();
            // The list leaves secrets out; everything else matches.
            alone.secrets.clear();
            assert_eq!(listed, alone, "{sort:?}");
        }
    }
    let page = store
        .list_applications(&ApplicationQuery { page: 1, per_page: 25, ..Default::default() }, T0 + 10)
        .await
        .unwrap();
    let odd = &page.items[1];
    assert!(!odd.enabled && odd.active_tokens == 0 && odd.last_used_at.is_none());
    assert_eq!(odd.introspects.as_deref(), Some("https://billing.example"));
    let plain = &page.items[0];
    assert!(plain.enabled && plain.active_tokens == 1 && plain.last_used_at == Some(T0 + 7));
    // A page past the end is empty and still counts.
    let past =
        store.list_applications(&ApplicationQuery { page: 3, per_page: 25, ..Default::default() }, T0).await.unwrap();
    assert_eq!((past.items.len(), past.total), (0, 2));
}

/// What a secret regeneration would revoke: only the tokens valid now,
/// most recently used first and never used last, each with its addresses.
#[tokio::test]
async fn active_tokens_are_the_valid_ones_most_recently_used_first() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "a", 30).await;
    let (other, _) = app_with(&store, "b", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let issue = || store.issue_endpoint_token(&client, ScopeSet::empty(), T0);
    let (used_early, used_late, never) = (issue().await.unwrap(), issue().await.unwrap(), issue().await.unwrap());
    let revoked = issue().await.unwrap();
    store.revoke_token(revoked.id, T0 + 1).await.unwrap();
    let named = store.mint_named_token(view.id, "ci", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    let short = store.mint_named_token(view.id, "short", ScopeSet::empty(), T0 + 60, T0).await.unwrap();
    store.mint_named_token(other.id, "elsewhere", ScopeSet::empty(), T0 + 86_400, T0).await.unwrap();
    store
        .record_token_uses(&[
            (used_early.id, T0 + 5, Some("10.0.0.1".into())),
            (used_late.id, T0 + 9, Some("10.0.0.2".into())),
            (revoked.id, T0 + 20, None),
            (short.id, T0 + 30, None),
        ])
        .await
        .unwrap();
    let seen = |token: TokenId, ip: &str, at: i64| CredentialUse {
        credential: UsedCredential::Token(token),
        at,
        ip: Some(ip.into()),
        addresses: vec![(ip.into(), at)],
    };
    store
        .record_credential_uses(&[seen(used_early.id, "10.0.0.1", T0 + 5), seen(used_late.id, "10.0.0.2", T0 + 9)])
        .await
        .unwrap();

    let ids = |tokens: &[TokenView]| tokens.iter().map(|t| t.id).collect::<Vec<_>>();
    let active = store.active_tokens(view.id, T0 + 100).await.unwrap();
    // Expired (short) and revoked are left out; the unused come last, newest first.
    assert_eq!(ids(&active), vec![used_late.id, used_early.id, named.id, never.id]);
    assert_eq!(active[0].recent_addresses.iter().map(|a| a.ip.as_str()).collect::<Vec<_>>(), ["10.0.0.2"]);
    assert_eq!(active[1].recent_addresses.iter().map(|a| a.ip.as_str()).collect::<Vec<_>>(), ["10.0.0.1"]);
    assert!(active[2].recent_addresses.is_empty());
    // Before the short one expired it counted, by its use.
    assert_eq!(ids(&store.active_tokens(view.id, T0 + 50).await.unwrap())[0], short.id);
    assert!(store.active_tokens(view.id, T0 + 86_400 * 2).await.unwrap().is_empty());
}

/// The live count the database keeps (issuance, the cap's evictions,
/// revocation, expiry before and after the sweep, an extension, pruning)
/// against what the tokens say at each step.
#[tokio::test]
async fn live_token_counts_follow_every_change_and_the_sweep() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "counted", 3).await;
    let (other, _) = app_with(&store, "a-other", 30).await;
    let client = store.client_by_client_id(&view.client_id).await.unwrap().unwrap();
    let active = |at: i64| {
        let store = store.clone();
        async move { store.application(view.id, at).await.unwrap().unwrap().active_tokens }
    };
    let stored = || {
        let store = store.clone();
        async move {
            on_pool!(store, |p| sqlx::query_scalar::<_, i64>(
                "SELECT CAST(live_tokens AS BIGINT) FROM applications WHERE id = $1"
            )
            .bind(view.id.0)
            .fetch_one(p)
            .await
            .unwrap())
        }
    };
    // Four issued under a cap of 3: the first is evicted.
    let mut issued = Vec::new();
    for i in 0..4 {
        issued.push(store.issue_endpoint_token(&client, ScopeSet::empty(), T0 + i).await.unwrap());
    }
    let named = store.mint_named_token(view.id, "deploy", ScopeSet::empty(), T0 + 86_400, T0 + 4).await.unwrap();
    store.mint_named_token(other.id, "elsewhere", ScopeSet::empty(), T0 + 86_400, T0 + 4).await.unwrap();
    assert_eq!(active(T0 + 10).await, 4);
    assert!(store.revoke_token(issued[1].id, T0 + 11).await.unwrap());
    assert!(!store.revoke_token(issued[1].id, T0 + 12).await.unwrap(), "already revoked: counted once");
    assert_eq!(active(T0 + 12).await, 3);
    assert_eq!(stored().await, 3);

    // Issued at T0+2 and T0+3, they expire at T0+3602 and T0+3603: not
    // yet swept, they are subtracted by the reader.
    assert_eq!(active(T0 + 3601).await, 3);
    assert_eq!(active(T0 + 3602).await, 2);
    assert_eq!(active(T0 + 3603).await, 1);
    assert_eq!(store.sweep_expired_tokens(T0 + 3603).await.unwrap(), 0, "within the lag");
    let sweep_at = T0 + 3603 + SWEEP_LAG_SECONDS;
    assert_eq!(store.sweep_expired_tokens(sweep_at).await.unwrap(), 2);
    assert_eq!(store.sweep_expired_tokens(sweep_at).await.unwrap(), 0, "swept once");
    assert_eq!(stored().await, 1);
    assert_eq!(active(sweep_at).await, 1);
    assert_eq!(store.application(other.id, sweep_at).await.unwrap().unwrap().active_tokens, 1);

    // A swept token given a new expiry is counted again.
    let mut tx = store.write().await.unwrap();
    assert!(tx.set_token_expiry(issued[3].id, sweep_at + 600).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!((stored().await, active(sweep_at).await), (2, 2));
    assert_eq!(active(sweep_at + 600).await, 1);
    // Sorting by the count reads the same numbers (name order would put
    // "a-other" first).
    let page = store
        .list_applications(
            &ApplicationQuery { sort: ApplicationSort::ActiveTokens, per_page: 10, page: 1, ..Default::default() },
            sweep_at,
        )
        .await
        .unwrap();
    let order: Vec<(&str, i64)> = page.items.iter().map(|a| (a.name.as_str(), a.active_tokens)).collect();
    assert_eq!(order, [("counted", 2), ("a-other", 1)]);

    let later = sweep_at + 86_400 * 2;
    assert_eq!(active(later).await, 0, "the named token and the extended one have expired");
    assert_eq!(store.sweep_expired_tokens(later).await.unwrap(), 3, "both, and the other application's");
    assert_eq!(stored().await, 0);
    assert!(store.revoke_token(named.id, later).await.unwrap(), "an expired token can still be revoked");
    assert_eq!(stored().await, 0, "a swept token's revocation is not subtracted twice");
    // Pruning deletes only what the count no longer counts.
    let (pruned, _) = store.prune(later, 0, 86_400 * 365).await.unwrap();
    assert_eq!(pruned, 6, "every token has expired or been revoked");
    assert_eq!(stored().await, 0);
}

/// Two instances on one database issue (evicting under a small cap),
/// revoke by the console's and the OAuth endpoint's paths, and sweep, all
/// at once. Every application's kept count then equals a recount of its
/// tokens, and what readers see equals the live tokens at any time. On
/// PostgreSQL this also exercises the lock order the count's trigger
/// relies on (a deadlock would fail a call).
#[tokio::test]
async fn live_counts_stay_exact_with_two_instances_issuing_revoking_and_sweeping() {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database_url(dir.path()).await.unwrap();
    let first = Store::open(&url).await.unwrap();
    first.migrate().await.unwrap();
    let second = Store::open(&url).await.unwrap();
    let mut apps = Vec::new();
    for i in 0..3 {
        let (view, _) = app_with(&first, &format!("busy-{i}"), 4).await;
        apps.push(first.client_by_client_id(&view.client_id).await.unwrap().unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        let apps = apps.clone();
        tasks.spawn(async move {
            for i in 0..60i64 {
                let client = &apps[(i as usize + n) % apps.len()];
                let now = T0 + i;
                let issued = store.issue_endpoint_token(client, ScopeSet::empty(), now).await.unwrap();
                match i % 3 {
                    0 => {
                        // Evicted meanwhile by the other instance's issuance: nothing to revoke.
                        if let Ok(ctx) = store.check_token(&issued.token, now).await.unwrap() {
                            usecase::tokens::revoke_own_token(&store, client, &ctx, now, None).await.unwrap();
                        }
                    }
                    1 => {
                        store.revoke_token(issued.id, now).await.unwrap();
                    }
                    _ => {}
                }
                if i % 10 == 0 {
                    // Ahead of the issuance: everything issued so far is
                    // expired to the sweep and live to the issuer, so the
                    // two reach for the same tokens.
                    store.sweep_expired_tokens(T0 + 3_600 + SWEEP_LAG_SECONDS + i).await.unwrap();
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let kept: Vec<(i64, i64, i64)> = on_pool!(first, |p| sqlx::query_as(
        "SELECT a.id, CAST(a.live_tokens AS BIGINT), (SELECT COUNT(*) FROM tokens t \
         WHERE t.application_id = a.id AND t.revoked_at IS NULL AND NOT t.expiry_swept) FROM applications a"
    )
    .fetch_all(p)
    .await
    .unwrap());
    assert_eq!(kept.len(), 3);
    for (id, count, recount) in kept {
        assert_eq!(count, recount, "application {id}");
    }
    // From the last sweep's cut on (a reader's clock is not a minute
    // behind the sweeper's: that is what the lag allows for).
    for at in [T0 + 3_650, T0 + 3_655, T0 + 3_660] {
        for client in &apps {
            let live: i64 = on_pool!(first, |p| sqlx::query_scalar(
                "SELECT COUNT(*) FROM tokens WHERE application_id = $1 AND revoked_at IS NULL AND expires_at > $2"
            )
            .bind(client.id.0)
            .bind(at)
            .fetch_one(p)
            .await
            .unwrap());
            assert_eq!(first.application(client.id, at).await.unwrap().unwrap().active_tokens, live, "at {at}");
        }
    }
}

/// A backlog larger than one sweep transaction is swept in several, each
/// going on from where the last stopped (many tokens share an expiry
/// second, as after a burst of issuance).
#[tokio::test]
async fn a_backlog_is_swept_in_batches() {
    let (store, _d) = fresh().await;
    let (view, _) = app_with(&store, "backlog", 30).await;
    let random_digest = match store.backend() {
        Backend::Sqlite => "randomblob(32)",
        Backend::Postgres => "decode(md5(random()::text || n.i::text), 'hex')",
    };
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
         INSERT INTO tokens (application_id, token_hash, display_prefix, scopes, source, created_at, expires_at) \
         SELECT $1, {random_digest}, 'kgt_x', '', 'api', $2, $2 + 10 + (n.i % 2) FROM n"
    );
    let mut tx = store.write().await.unwrap();
    on_tx!(tx, |c| sqlx::query(&sql).bind(view.id.0).bind(T0).execute(c).await.unwrap().rows_affected());
    tx.commit().await.unwrap();
    let active = |at: i64| {
        let store = store.clone();
        async move { store.application(view.id, at).await.unwrap().unwrap().active_tokens }
    };
    assert_eq!(active(T0 + 5).await, 2_500);
    assert_eq!(active(T0 + 10).await, 1_250);
    assert_eq!(store.sweep_expired_tokens(T0 + 11 + SWEEP_LAG_SECONDS).await.unwrap(), 2_500);
    assert_eq!(store.sweep_expired_tokens(T0 + 11 + SWEEP_LAG_SECONDS).await.unwrap(), 0);
    let (kept, unswept): (i64, i64) = on_pool!(store, |p| sqlx::query_as(
        "SELECT CAST(live_tokens AS BIGINT), (SELECT COUNT(*) FROM tokens WHERE NOT expiry_swept) \
         FROM applications WHERE id = $1"
    )
    .bind(view.id.0)
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!((kept, unswept), (0, 0));
    assert_eq!(active(T0 + 100).await, 0);
}

/// On PostgreSQL the sweep skips an application whose row another
/// transaction holds (the issuer, a revocation) and sweeps the others; the
/// skipped one's tokens are swept by the next run. (SQLite serialises
/// writers: there is nothing to skip.)
#[tokio::test]
async fn the_sweep_skips_a_held_application_until_the_next_run() {
    let (store, _d) = fresh().await;
    if store.backend() != Backend::Postgres {
        return;
    }
    let (held, _) = app_with(&store, "held", 30).await;
    let (free, _) = app_with(&store, "free", 30).await;
    for app in [&held, &free] {
        for i in 0..3 {
            store.mint_named_token(app.id, &format!("t{i}"), ScopeSet::empty(), T0 + 100, T0).await.unwrap();
        }
    }
    let later = T0 + 100 + SWEEP_LAG_SECONDS;
    let mut holder = store.write().await.unwrap();
    holder.lock_application(held.id).await.unwrap();
    assert_eq!(store.sweep_expired_tokens(later).await.unwrap(), 3, "only the free application's");
    holder.commit().await.unwrap();
    assert_eq!(store.sweep_expired_tokens(later).await.unwrap(), 3, "the held one's, next time");
    for app in [&held, &free] {
        assert_eq!(store.application(app.id, later).await.unwrap().unwrap().active_tokens, 0);
    }
}

/// A use of `secret` at `at`, written, then a regeneration of `app`'s
/// secret at `now` without an overlap (every secret it had is deleted).
async fn use_then_regenerate(store: &Store, app: ApplicationId, secret: SecretId, at: i64, now: i64) {
    let usage = crate::usage::UsageTracker::new();
    usage.record_secret(secret, at, None);
    usage.flush(store).await.unwrap();
    let mut tx = store.write().await.unwrap();
    tx.replace_secret(app, &crate::secret::SecretDigest::of(&format!("kgs_after_{at}")), None, now).await.unwrap();
    tx.commit().await.unwrap();
}

/// The "Needs attention" queries at scale: expiring named tokens are read
/// through their own partial index (not by walking every issued token
/// about to expire), and only dormant applications leave the database.
#[tokio::test]
async fn attention_reads_named_tokens_by_their_index_and_only_dormant_applications() {
    let (store, _d) = fresh().await;
    let day = 86_400;
    let now = T0 + 100 * day;
    let (never, _) = app_with(&store, "never-used", 30).await;
    let (long_ago, _) = app_with(&store, "used-long-ago", 30).await;
    let (recent, _) = app_with(&store, "used-recently", 30).await;
    let (by_secret, secret) = app_with(&store, "secret-used-recently", 30).await;
    let mut newcomer = ApplicationSettings::new("created-recently");
    newcomer.scopes = ScopeSet::empty();
    store.create_application(newcomer, now - day).await.unwrap();
    let old_use = store.mint_named_token(long_ago.id, "t", ScopeSet::empty(), now + 60 * day, T0).await.unwrap();
    let new_use = store.mint_named_token(recent.id, "t", ScopeSet::empty(), now + 60 * day, T0).await.unwrap();
    let stale = store.mint_named_token(by_secret.id, "t", ScopeSet::empty(), now + 60 * day, T0).await.unwrap();
    store
        .record_token_uses(&[(old_use.id, T0 + day, None), (new_use.id, now - day, None), (stale.id, T0 + day, None)])
        .await
        .unwrap();
    let client = store.client_by_client_id(&by_secret.client_id).await.unwrap().unwrap();
    let secret_id = client.authenticate(&secret, now, None).unwrap();
    let usage = crate::usage::UsageTracker::new();
    usage.record_secret(secret_id, now - day, None);
    usage.flush(&store).await.unwrap();
    let attention = store.needs_attention(now, 30, 100).await.unwrap();
    let dormant: Vec<(&str, Option<i64>)> =
        attention.dormant_applications.iter().map(|a| (a.application_name.as_str(), a.last_used_at)).collect();
    // Longest unused first: never used (since T0), then used at T0 + 1 day.
    assert_eq!(dormant, [("never-used", None), ("used-long-ago", Some(T0 + day))]);
    assert_eq!(attention.dormant_applications[0].application_id, never.id);
    assert_eq!(attention.totals.dormant_applications, 2);
    let first = store.needs_attention(now, 30, 1).await.unwrap();
    assert_eq!(first.dormant_applications, attention.dormant_applications[..1]);
    assert_eq!(first.totals, attention.totals, "the first line, and how many there are in all");
    // The applications list's filter reads the same rule.
    let (off, _) = app_with(&store, "disabled-never-used", 30).await;
    let mut tx = store.write().await.unwrap();
    tx.set_enabled_only_for_tests(off.id, false).await.unwrap();
    tx.commit().await.unwrap();
    let q = ApplicationQuery { status: ApplicationStatus::Dormant, dormant_after_days: 30, ..Default::default() };
    let listed = store.list_applications(&q, now).await.unwrap();
    let names: Vec<&str> = listed.items.iter().map(|a| a.name.as_str()).collect();
    assert_eq!((names, listed.total), (vec!["never-used", "used-long-ago"], 2));
    let searched = ApplicationQuery { search: Some("long".into()), ..q.clone() };
    let listed = store.list_applications(&searched, now).await.unwrap();
    assert_eq!((listed.items[0].name.as_str(), listed.total), ("used-long-ago", 1), "with a search");
    // At the cutoff counts as before it, as in the panel.
    for (days, want) in [(99, 2), (100, 1)] {
        let q = ApplicationQuery { dormant_after_days: days, ..q.clone() };
        let listed = store.list_applications(&q, now).await.unwrap().total;
        let panel = store.needs_attention(now, days, 100).await.unwrap().totals.dormant_applications;
        assert_eq!((listed, panel), (want, want), "used (99 days) or created (100) at the cutoff");
    }
    let q = ApplicationQuery { dormant_after_days: 200, ..q };
    assert_eq!(store.list_applications(&q, now).await.unwrap().total, 0, "a longer period: none yet");

    // Deleting a used secret keeps its use: a regeneration with an overlap,
    // then the overlap ended (the used secret is gone) ...
    let next = crate::secret::SecretDigest::of("kgs_next");
    let mut tx = store.write().await.unwrap();
    tx.replace_secret(by_secret.id, &next, Some(now + day), now).await.unwrap();
    assert!(tx.drop_previous_secret(by_secret.id, secret_id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.secrets_of(by_secret.id, now).await.unwrap().iter().all(|s| s.id != secret_id));
    assert_eq!(store.application(by_secret.id, now).await.unwrap().unwrap().last_used_at, Some(now - day));
    assert_eq!(store.needs_attention(now, 30, 100).await.unwrap().totals.dormant_applications, 2, "still in use");
    // ... and a regeneration without one, of an application whose older use
    // was kept already: the later use wins ...
    let current = store.secrets_of(by_secret.id, now).await.unwrap()[0].id;
    use_then_regenerate(&store, by_secret.id, current, now - 2 * day, now).await;
    assert_eq!(store.secrets_of(by_secret.id, now).await.unwrap().len(), 1);
    assert_eq!(store.application(by_secret.id, now).await.unwrap().unwrap().last_used_at, Some(now - day));
    // ... and of one whose only use was its secret's: it is not "never used".
    let (regenerated, _) = app_with(&store, "regenerated", 30).await;
    let only = store.secrets_of(regenerated.id, now).await.unwrap()[0].id;
    use_then_regenerate(&store, regenerated.id, only, now - 3 * day, now).await;
    assert!(store.secrets_of(regenerated.id, now).await.unwrap().iter().all(|s| s.id != only));
    assert_eq!(store.application(regenerated.id, now).await.unwrap().unwrap().last_used_at, Some(now - 3 * day));
    let never = ApplicationQuery { status: ApplicationStatus::NeverUsed, ..Default::default() };
    let never: Vec<String> =
        store.list_applications(&never, now).await.unwrap().items.into_iter().map(|a| a.name).collect();
    assert_eq!(never, ["created-recently", "disabled-never-used", "never-used"]);

    let plan = query_plan(&store, alerts::EXPIRING_TOKENS, &[now, now + 7 * day, 100]).await;
    assert!(plan.iter().any(|line| line.contains("tokens_named_expiring")), "{plan:#?}");
}

/// How the database would run `sql` with `params` (`$1`, `$2`, …). On
/// PostgreSQL, with sequential and bitmap scans off: a test's tables are
/// small enough to read whole, and what is checked is that an index can
/// answer the query's conditions.
async fn query_plan(store: &Store, sql: &str, params: &[i64]) -> Vec<String> {
    match &store.db {
        Db::Sqlite { pool, .. } => {
            let sql = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&sql);
            for p in params {
                query = query.bind(*p);
            }
            query.fetch_all(pool).await.unwrap().into_iter().map(|r| r.3).collect()
        }
        Db::Postgres { pool, .. } => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.unwrap();
            sqlx::query("SET LOCAL enable_bitmapscan = off").execute(&mut *tx).await.unwrap();
            // Highest first: `$1` must not replace the start of `$10`.
            let sql = params
                .iter()
                .enumerate()
                .rev()
                .fold(sql.to_owned(), |sql, (i, p)| sql.replace(&format!("${}", i + 1), &p.to_string()));
            let rows: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}")).fetch_all(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
            rows
        }
    }
}

/// The overview's live-token total is the kept counts' sum less the
/// counted tokens expired since the last sweep, read by expiry from one
/// index rather than per application; it agrees with a count of the
/// tokens before and after a sweep.
#[tokio::test]
async fn the_live_token_total_subtracts_unswept_expiries_by_their_index() {
    let (store, _d) = fresh().await;
    let (a, _) = app_with(&store, "a", 30).await;
    let (b, _) = app_with(&store, "b", 30).await;
    for (app, expires) in [(a.id, T0 + 10), (a.id, T0 + 1_000), (b.id, T0 + 20), (b.id, T0 + 2_000)] {
        store.mint_named_token(app, "t", ScopeSet::empty(), expires, T0).await.unwrap();
    }
    let revoked = store.mint_named_token(b.id, "r", ScopeSet::empty(), T0 + 3_000, T0).await.unwrap();
    store.revoke_token(revoked.id, T0 + 1).await.unwrap();
    app_with(&store, "without-tokens", 30).await;
    let later = T0 + 100 + SWEEP_LAG_SECONDS;
    // The total and each application's count (`live_tokens_of_a`) agree.
    let agree = |now: i64, want: i64| {
        let store = &store;
        async move {
            let total = store.dashboard_stats(now).await.unwrap().active_tokens;
            let q = ApplicationQuery { per_page: 200, ..Default::default() };
            let each: i64 = store.list_applications(&q, now).await.unwrap().items.iter().map(|a| a.active_tokens).sum();
            assert_eq!((total, each), (want, want), "at {now}");
        }
    };
    agree(T0 + 5, 4).await;
    agree(later, 2).await; // two expired, not yet swept
    assert_eq!(store.sweep_expired_tokens(later).await.unwrap(), 2);
    agree(later, 2).await; // the same once swept
    let plan = query_plan(&store, super::DASHBOARD_STATS, &[later]).await;
    assert!(plan.iter().any(|line| line.contains("tokens_counted_by_expiry")), "{plan:#?}");
}
