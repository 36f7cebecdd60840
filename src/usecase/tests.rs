//! Use-case rules on a real SQLite file, time passed in.

use super::applications::{self, ApplicationChange};
use super::*;
use crate::password_work::PasswordWork;
use crate::store::AuditQuery;

const T0: i64 = 1_800_000_000;

async fn fresh() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::store::testing::fresh_database_url(dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

fn admin(role: Role) -> Caller {
    let view =
        AdminView { id: AdminId(1), username: format!("{role}-person"), role, created_at: T0, last_sign_in_at: None };
    Caller::administrator(view, T0, Some("10.0.0.7".into()))
}

fn token_caller(scopes: &str) -> Caller {
    Caller {
        actor: Actor::Application {
            id: ApplicationId(999),
            name: "robot".into(),
            token_id: TokenId(5),
            scopes: ScopeSet::parse(scopes).unwrap(),
        },
        now: T0,
        ip: None,
    }
}

async fn events(store: &Store) -> Vec<AuditEventView> {
    let q = AuditQuery { page: 1, per_page: 500, ..Default::default() };
    store.list_audit_events(&q).await.unwrap().items
}

fn settings(name: &str, scopes: &str) -> ApplicationSettings {
    let mut s = ApplicationSettings::new(name);
    s.scopes = ScopeSet::parse(scopes).unwrap();
    s
}

#[tokio::test]
async fn a_change_and_its_audit_event_commit_together() {
    let (store, _d) = fresh().await;
    let (app, _) = applications::create_application(&store, &admin(Role::Admin), settings("a", "")).await.unwrap();
    let e = events(&store).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].action, "application.created");
    assert_eq!(e[0].actor, "admin-person");
    assert_eq!(e[0].client_ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(e[0].details["via"], "console");
    // A refused change writes nothing at all.
    let dup = applications::create_application(&store, &admin(Role::Admin), settings("A", "")).await;
    assert!(matches!(dup, Err(CoreError::Invalid { field: "name", .. })));
    let bad = applications::update_application(
        &store,
        &admin(Role::Admin),
        app.id,
        ApplicationChange { scopes: Some(ScopeSet::parse("nope:x").unwrap()), ..Default::default() },
    )
    .await;
    assert!(matches!(bad, Err(CoreError::Invalid { field: "scopes", .. })));
    assert_eq!(events(&store).await.len(), 1);
}

#[tokio::test]
async fn viewers_change_nothing_and_only_owners_manage_administrators() {
    let (store, _d) = fresh().await;
    let viewer = admin(Role::Viewer);
    let refused = applications::create_application(&store, &viewer, settings("a", "")).await;
    assert!(matches!(refused, Err(CoreError::Forbidden { .. })));
    let work = PasswordWork::new(1, 4);
    let by_admin =
        admins::add_admin(&store, &work, &admin(Role::Admin), "bob", "a long enough password", Role::Viewer).await;
    assert!(matches!(by_admin, Err(CoreError::Forbidden { .. })));
    let by_token =
        admins::add_admin(&store, &work, &token_caller("applications:write"), "bob", "x", Role::Viewer).await;
    assert!(matches!(by_token, Err(CoreError::Forbidden { .. })));
    let bob = admins::add_admin(&store, &work, &admin(Role::Owner), "bob", "a long enough password", Role::Viewer)
        .await
        .unwrap();
    assert_eq!(bob.role, Role::Viewer);
    assert!(events(&store).await.iter().all(|e| e.action == "admin.created"));
}

#[tokio::test]
async fn a_token_acts_only_within_its_scopes() {
    let (store, _d) = fresh().await;
    let cli = Caller::cli(T0);
    let (strong, _) = applications::create_application(&store, &cli, settings("strong", "audit:read")).await.unwrap();
    let writer = token_caller("applications:write applications:read");
    // The route's scope, the scopes it may grant, the ceiling.
    let no_scope = token_caller("applications:read");
    assert!(matches!(
        applications::create_application(&store, &no_scope, settings("x", "")).await,
        Err(CoreError::Forbidden { missing_scopes, .. }) if missing_scopes == ["applications:write"]
    ));
    assert!(matches!(
        applications::create_application(&store, &writer, settings("x", "audit:read")).await,
        Err(CoreError::Forbidden { missing_scopes, .. }) if missing_scopes == ["audit:read"]
    ));
    let taken = applications::regenerate_secret(&store, &writer, strong.id).await;
    assert!(matches!(taken, Err(CoreError::Forbidden { missing_scopes, .. }) if missing_scopes == ["audit:read"]));
    let e = events(&store).await;
    assert_eq!(e[0].action, "application.access_refused");
    assert_eq!(e[0].details["operation"], "regenerate_secret");
    assert_eq!(e[0].details["via"], "api");
    // Within its scopes it may act.
    let (weak, _) =
        applications::create_application(&store, &writer, settings("weak", "applications:read")).await.unwrap();
    applications::regenerate_secret(&store, &writer, weak.id).await.unwrap();
}

#[tokio::test]
async fn an_update_names_what_changed_and_disabling_is_its_own_event() {
    let (store, _d) = fresh().await;
    let cli = Caller::cli(T0);
    let (app, _) = applications::create_application(&store, &cli, settings("a", "")).await.unwrap();
    let change = ApplicationChange {
        notes: Some("hello".into()),
        max_tokens: Some(5),
        enabled: Some(false),
        ..Default::default()
    };
    let after = applications::update_application(&store, &cli, app.id, change).await.unwrap();
    assert!(!after.enabled);
    let e = events(&store).await;
    assert_eq!(e[0].action, "application.disabled");
    assert_eq!(e[0].details["tokens_revoked"], 0);
    assert_eq!(e[1].action, "application.updated");
    assert_eq!(e[1].details["changed"], serde_json::json!(["notes", "max_tokens"]));
    // Nothing changed, nothing written.
    applications::update_application(&store, &cli, app.id, ApplicationChange::enabled(false)).await.unwrap();
    assert_eq!(events(&store).await.len(), e.len());
}

#[tokio::test]
async fn scopes_in_use_or_built_in_stay() {
    let (store, _d) = fresh().await;
    let cli = Caller::cli(T0);
    scopes::add_scope(&store, &cli, "billing:read", "Read invoices").await.unwrap();
    let (app, _) = applications::create_application(&store, &cli, settings("a", "billing:read")).await.unwrap();
    assert!(
        matches!(scopes::delete_scope(&store, &cli, "billing:read").await, Err(CoreError::Refused(m)) if m.contains("a"))
    );
    assert!(matches!(scopes::delete_scope(&store, &cli, "audit:read").await, Err(CoreError::Refused(_))));
    assert!(matches!(scopes::delete_scope(&store, &cli, "nope:x").await, Err(CoreError::NotFound(_))));
    applications::update_application(
        &store,
        &cli,
        app.id,
        ApplicationChange { scopes: Some(ScopeSet::empty()), ..Default::default() },
    )
    .await
    .unwrap();
    scopes::delete_scope(&store, &cli, "billing:read").await.unwrap();
    assert_eq!(events(&store).await[0].action, "scope.deleted");
}

#[tokio::test]
async fn sign_in_records_success_and_failure() {
    let (store, _d) = fresh().await;
    let work = PasswordWork::new(1, 4);
    let code = admins::open_setup(&store, T0).await.unwrap().expect("a setup code while nobody exists");
    assert!(matches!(
        admins::create_first_owner(&store, &work, "not the code", "alice", "a long enough password", T0, None).await,
        Err(CoreError::Refused(_))
    ));
    let (owner, _) =
        admins::create_first_owner(&store, &work, &code, "alice", "a long enough password", T0, None).await.unwrap();
    assert!(matches!(
        admins::create_first_owner(&store, &work, &code, "bob", "a long enough password", T0, None).await,
        Err(CoreError::Refused(_))
    ));
    assert_eq!(admins::open_setup(&store, T0).await.unwrap(), None, "no setup once an owner exists");
    assert!(matches!(
        admins::sign_in(&store, &work, "alice", "wrong password!", T0, None).await,
        Ok(admins::SignIn::Refused)
    ));
    match admins::sign_in(&store, &work, "ALICE", "a long enough password", T0 + 5, None).await.unwrap() {
        admins::SignIn::SignedIn(a, _) => assert_eq!((a.id, a.last_sign_in_at), (owner.id, Some(T0 + 5))),
        other => panic!("{other:?}"),
    }
    let actions: Vec<String> = events(&store).await.into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["admin.sign_in", "admin.sign_in_failed", "admin.owner_created"]);
}

/// Two stores on one database stand for two instances.
async fn two_instances() -> (Store, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::store::testing::fresh_database_url(dir.path()).await.unwrap();
    let a = Store::open(&url).await.unwrap();
    a.migrate().await.unwrap();
    let b = Store::open(&url).await.unwrap();
    (a, b, dir)
}

#[tokio::test]
async fn the_sign_in_throttle_is_shared_and_parallel_guesses_cannot_slip_past() {
    let (a, b, _d) = two_instances().await;
    let work = PasswordWork::new(2, 64);
    let code = admins::open_setup(&a, T0).await.unwrap().unwrap();
    // The code one instance printed works on the other.
    admins::create_first_owner(&b, &work, &code, "alice", "a long enough password", T0, None).await.unwrap();
    let ip = || Some("10.0.0.1".to_owned());
    for (i, store) in [&a, &b, &a].into_iter().enumerate() {
        let r = admins::sign_in(store, &work, "alice", "wrong password!", T0 + i as i64, ip()).await;
        assert!(matches!(r, Ok(admins::SignIn::Refused)), "{r:?}");
    }
    let refused = admins::sign_in(&b, &work, "alice", "a long enough password", T0 + 2, ip()).await;
    assert!(matches!(refused, Err(CoreError::Throttled { retry_after: 2, .. })), "{refused:?}");
    // Another address is not slowed down by these failures.
    assert!(matches!(
        admins::sign_in(&b, &work, "alice", "a long enough password", T0 + 2, Some("10.0.0.2".into())).await,
        Ok(admins::SignIn::SignedIn(..))
    ));

    // Forty wrong guesses at once from a fresh address, split over both
    // instances: only the three free ones get their password checked.
    let mut guesses = Vec::new();
    for i in 0..40 {
        let (store, work) = (if i % 2 == 0 { a.clone() } else { b.clone() }, work.clone());
        guesses.push(tokio::spawn(async move {
            admins::sign_in(&store, &work, "alice", "wrong password!", T0 + 100, Some("10.0.0.3".into())).await
        }));
    }
    let mut checked = 0;
    for g in guesses {
        match g.await.unwrap() {
            Ok(admins::SignIn::Refused) => checked += 1,
            Err(CoreError::Throttled { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(checked, 3);
    let failed = events(&a).await.iter().filter(|e| e.action == "admin.sign_in_failed").count();
    assert_eq!(failed, 3 + 3);
}

#[tokio::test]
async fn failed_client_authentications_count_together_across_instances() {
    let (a, b, _d) = two_instances().await;
    let now_ms = T0 * 1000;
    let (minute, _) = crate::ratelimit::failed_auth_window(now_ms);
    let keys = crate::ratelimit::failed_auth_keys("kgc_someone", Some("10.0.0.1"));
    let mut counted = 0;
    for i in 0..25 {
        let store = if i % 2 == 0 { &a } else { &b };
        if store.count_failed_client_auth(&keys, minute).await.unwrap() {
            counted += 1;
        }
    }
    assert_eq!(counted, crate::ratelimit::FAILED_AUTH_PER_CLIENT_AND_ADDRESS_PER_MINUTE);
    // The next minute starts afresh; another client ID from another
    // address was never limited.
    assert!(a.count_failed_client_auth(&keys, minute + 1).await.unwrap());
    let other = crate::ratelimit::failed_auth_keys("kgc_other", Some("10.0.0.2"));
    assert!(b.count_failed_client_auth(&other, minute).await.unwrap());
}

#[tokio::test]
async fn a_setup_link_works_for_a_day() {
    let (store, _d) = fresh().await;
    let work = PasswordWork::new(1, 4);
    let code = admins::open_setup(&store, T0).await.unwrap().unwrap();
    let day = crate::store::SETUP_CODE_TTL_SECONDS;
    assert!(matches!(
        admins::create_first_owner(&store, &work, &code, "alice", "a long enough password", T0 + day + 1, None).await,
        Err(CoreError::Refused(_))
    ));
    let fresh_code = admins::open_setup(&store, T0 + day + 1).await.unwrap().unwrap();
    admins::create_first_owner(&store, &work, &fresh_code, "alice", "a long enough password", T0 + day + 2, None)
        .await
        .unwrap();
}
