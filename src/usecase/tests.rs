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
    let view = AdminView {
        id: AdminId(1),
        username: format!("{role}-person"),
        role,
        created_at: T0,
        last_sign_in_at: None,
        must_change_password: false,
    };
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
    let taken = applications::regenerate_secret(&store, &writer, strong.id, Default::default()).await;
    assert!(matches!(taken, Err(CoreError::Forbidden { missing_scopes, .. }) if missing_scopes == ["audit:read"]));
    let e = events(&store).await;
    assert_eq!(e[0].action, "application.access_refused");
    assert_eq!(e[0].details["operation"], "regenerate_secret");
    assert_eq!(e[0].details["via"], "api");
    // Within its scopes it may act.
    let (weak, _) =
        applications::create_application(&store, &writer, settings("weak", "applications:read")).await.unwrap();
    applications::regenerate_secret(&store, &writer, weak.id, Default::default()).await.unwrap();
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
    scopes::add_scope(&store, &cli, "billing:read", "Read invoices", None).await.unwrap();
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

/// A wrong current password on the account page counts as a sign-in
/// guess; a check the busy server never made counts as nothing.
#[tokio::test]
async fn own_password_guesses_are_throttled_and_a_busy_server_counts_none() {
    use crate::store::testing::TestOps;
    let (store, _d) = fresh().await;
    let hash = crate::secret::hash_password("a long enough password").unwrap();
    let bob = store.create_admin("bob", &hash, Role::Admin, T0).await.unwrap();
    let caller = Caller::administrator(bob, T0 + 10, Some("10.1.2.3".into()));
    let (stopped, work) = (PasswordWork::stopped(), PasswordWork::new(1, 4));
    for _ in 0..5 {
        let busy =
            admins::change_own_password(&store, &stopped, &caller, "a long enough password", "bobs new password");
        assert!(matches!(busy.await, Err(CoreError::Throttled { .. })));
    }
    for _ in 0..3 {
        let wrong = admins::change_own_password(&store, &work, &caller, "a wrong guess here", "bobs new password");
        assert!(matches!(wrong.await, Err(CoreError::Invalid { field: "current_password", .. })));
    }
    let right = admins::change_own_password(&store, &work, &caller, "a long enough password", "bobs new password");
    assert!(matches!(right.await, Err(CoreError::Throttled { .. })), "three guesses: even the right one waits");
    // The same counters guard sign-in from that address.
    assert!(matches!(
        admins::sign_in(&store, &work, "bob", "a long enough password", T0 + 11, Some("10.1.2.3".into())).await,
        Err(CoreError::Throttled { .. })
    ));
    let failed = events(&store).await.into_iter().filter(|e| e.action == "admin.sign_in_failed").count();
    assert_eq!(failed, 3, "the busy attempts were not audited as guesses");
    // Later, the right one works.
    let later = Caller { now: T0 + 400, ..caller };
    admins::change_own_password(&store, &work, &later, "a long enough password", "bobs new password").await.unwrap();
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

// ------------------------------------------------ resource servers and keys

async fn client_of(store: &Store, id: ApplicationId) -> crate::client::ClientRecord {
    store.client_by_id(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn resource_servers_own_scopes_and_give_tokens_their_audience() {
    use super::resource_servers as rs;
    let (store, _d) = fresh().await;
    let cli = Caller::cli(T0);
    // Existing catalogues migrate: Keygate's scopes belong to its API.
    let catalogue = store.list_scopes().await.unwrap();
    assert!(catalogue.iter().all(|s| s.resource_server.as_deref() == Some(BUILTIN_RESOURCE_SERVER)));
    let billing = rs::add_resource_server(&store, &cli, "Billing", "https://billing.internal/").await.unwrap();
    assert!(matches!(
        rs::add_resource_server(&store, &cli, "Other", "https://billing.internal/").await,
        Err(CoreError::Invalid { field: "identifier", .. })
    ));
    assert!(matches!(
        rs::add_resource_server(&store, &cli, "Bad", "billing.internal").await,
        Err(CoreError::Invalid { field: "identifier", .. })
    ));
    scopes::add_scope(&store, &cli, "billing:read", "Read invoices", Some("https://billing.internal/")).await.unwrap();
    scopes::add_scope(&store, &cli, "loose", "Not attached", None).await.unwrap();
    assert!(matches!(
        rs::attach_scope(&store, &cli, "tokens:read", Some("https://billing.internal/")).await,
        Err(CoreError::Refused(_))
    ));
    let (app, _) =
        applications::create_application(&store, &cli, settings("reporting", "applications:read billing:read loose"))
            .await
            .unwrap();
    let client = client_of(&store, app.id).await;
    let issued = store.issue_endpoint_token(&client, client.scopes.clone(), T0).await.unwrap();
    let token = store.token(issued.id).await.unwrap().unwrap();
    assert_eq!(token.audience, vec!["https://billing.internal/".to_string(), BUILTIN_RESOURCE_SERVER.to_string()]);
    // A server with scopes cannot be deleted; once they move, it can, and
    // the tokens already issued keep their audience.
    assert!(
        matches!(rs::delete_resource_server(&store, &cli, billing.id).await, Err(CoreError::Refused(m)) if m.contains("billing:read"))
    );
    rs::attach_scope(&store, &cli, "billing:read", None).await.unwrap();
    rs::delete_resource_server(&store, &cli, billing.id).await.unwrap();
    assert_eq!(store.token(issued.id).await.unwrap().unwrap().audience.len(), 2);
    let builtin = store.list_resource_servers().await.unwrap().remove(0);
    assert!(builtin.builtin);
    assert!(matches!(rs::delete_resource_server(&store, &cli, builtin.id).await, Err(CoreError::Refused(_))));
    let actions: Vec<String> = events(&store).await.into_iter().map(|e| e.action).collect();
    for a in ["resource_server.created", "scope.attached", "resource_server.deleted"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}

#[tokio::test]
async fn an_introspection_client_names_an_existing_resource_server() {
    let (store, _d) = fresh().await;
    let cli = Caller::cli(T0);
    let mut s = settings("gateway", "");
    s.introspects = Some("https://nowhere.internal/".into());
    assert!(matches!(
        applications::create_application(&store, &cli, s.clone()).await,
        Err(CoreError::Invalid { field: "introspects", .. })
    ));
    s.introspects = Some(BUILTIN_RESOURCE_SERVER.into());
    let (app, _) = applications::create_application(&store, &cli, s).await.unwrap();
    assert_eq!(app.introspects.as_deref(), Some(BUILTIN_RESOURCE_SERVER));
    assert_eq!(client_of(&store, app.id).await.introspects.as_deref(), Some(BUILTIN_RESOURCE_SERVER));
    let change = ApplicationChange { introspects: Some(None), ..Default::default() };
    let app = applications::update_application(&store, &cli, app.id, change).await.unwrap();
    assert_eq!(app.introspects, None);
}

/// The JWKS at `now` as kids.
async fn published_kids(store: &Store, now: i64) -> Vec<String> {
    let jwks = crate::keyring::jwks(store, now).await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

fn verify(token: &str, jwks: &serde_json::Value) -> crate::jwt::AccessTokenClaims {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("the signing key is published");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.validate_exp = false;
    v.set_audience(&[BUILTIN_RESOURCE_SERVER]);
    jsonwebtoken::decode(token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap().claims
}

#[tokio::test]
async fn rotation_publishes_before_signing_and_unpublishes_after_the_last_token() {
    use crate::jwt::{KeyAlgorithm, KeyEncryptionKey, KeyState, KEY_PUBLISH_LEAD_SECONDS};
    let (store, _d) = fresh().await;
    let kek = KeyEncryptionKey::for_tests(3);
    keys::ensure_signing_key(&store, &kek, T0).await.unwrap();
    keys::ensure_signing_key(&store, &kek, T0).await.unwrap();
    let first = keys::list_signing_keys(&store, T0).await.unwrap();
    assert_eq!(first.len(), 1, "one first key, however often asked");
    assert_eq!(first[0].state, KeyState::Signing);
    let mut s = settings("jwt-app", "applications:read");
    s.token_format = TokenFormat::Jwt;
    let (app, _) = applications::create_application(&store, &Caller::cli(T0), s).await.unwrap();
    let client = client_of(&store, app.id).await;
    let aud = vec![BUILTIN_RESOURCE_SERVER.to_string()];

    // A token signed by the first key, recorded by its digest.
    let ring = crate::keyring::Keyring::new(store.clone(), kek.clone(), "https://kg.example".into());
    let before = ring.sign_access_token(&client, client.scopes.clone(), aud.clone(), T0 + 10).await.unwrap();
    let before_token = before.token.expose().to_owned();
    store.issue_prepared_token(&client, before, T0 + 10).await.unwrap();

    // Rotation at T1: the new key is published at once, signs only later.
    let t1 = T0 + 100;
    let next = keys::rotate_signing_key(&store, &Caller::cli(t1), &kek, KeyAlgorithm::RS256, false).await.unwrap();
    assert_eq!(next.state, KeyState::Next);
    assert_eq!(next.signs_from, t1 + KEY_PUBLISH_LEAD_SECONDS);
    assert_eq!(published_kids(&store, t1).await, vec![first[0].kid.clone(), next.kid.clone()]);
    let ring = crate::keyring::Keyring::new(store.clone(), kek.clone(), "https://kg.example".into());
    let still_old = ring.sign_access_token(&client, client.scopes.clone(), aud.clone(), t1 + 1).await.unwrap();
    assert_eq!(still_old.signing_key_id.as_deref(), Some(first[0].kid.as_str()));

    // Once it signs, tokens from before and after both verify.
    let t2 = next.signs_from;
    let ring = crate::keyring::Keyring::new(store.clone(), kek.clone(), "https://kg.example".into());
    let after = ring.sign_access_token(&client, client.scopes.clone(), aud.clone(), t2).await.unwrap();
    assert_eq!(after.signing_key_id.as_deref(), Some(next.kid.as_str()));
    let after_token = after.token.expose().to_owned();
    store.issue_prepared_token(&client, after, t2).await.unwrap();
    let jwks = crate::keyring::jwks(&store, t2).await.unwrap();
    let old_claims = verify(&before_token, &jwks);
    let new_claims = verify(&after_token, &jwks);
    assert_eq!((old_claims.iat, new_claims.iat), (T0 + 10, t2));
    assert_eq!(new_claims.sub, client.client_id);
    assert_eq!(new_claims.scope, "applications:read");
    assert_ne!(old_claims.jti, new_claims.jti);

    // The retired key stays while its last token lives, then leaves.
    let last_expiry = T0 + 10 + client.token_ttl_seconds;
    let states = keys::list_signing_keys(&store, last_expiry - 1).await.unwrap();
    assert_eq!(states[0].state, KeyState::Retired);
    assert!(published_kids(&store, last_expiry - 1).await.contains(&first[0].kid));
    assert_eq!(published_kids(&store, last_expiry).await, vec![next.kid.clone()]);
    assert_eq!(keys::list_signing_keys(&store, last_expiry).await.unwrap()[0].state, KeyState::Unpublished);

    // Automatic rotation: due once the newest key is a period old, once.
    let period = 90 * 86_400;
    assert!(keys::rotate_if_due(&store, &kek, period, t1 + period - 1).await.unwrap().is_none());
    let rotated = keys::rotate_if_due(&store, &kek, period, t1 + period).await.unwrap().expect("due");
    assert_eq!(rotated.algorithm, "RS256", "keeps the signing key's algorithm");
    assert!(keys::rotate_if_due(&store, &kek, period, t1 + period).await.unwrap().is_none());
    let actions: Vec<String> = events(&store).await.into_iter().map(|e| e.action).collect();
    assert_eq!(actions.iter().filter(|a| *a == "signing_key.created").count(), 3);
}

#[tokio::test]
async fn private_keys_are_sealed_under_the_key_file_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keygate.db");
    let store = Store::open(&format!("sqlite:{}", path.display())).await.unwrap();
    store.migrate().await.unwrap();
    let kek = crate::jwt::KeyEncryptionKey::for_tests(9);
    keys::ensure_signing_key(&store, &kek, T0).await.unwrap();
    keys::rotate_signing_key(&store, &Caller::cli(T0), &kek, crate::jwt::KeyAlgorithm::RS256, false).await.unwrap();
    let stored = store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    // Everything on disk: the database file and its write-ahead log.
    let mut disk = std::fs::read(&path).unwrap();
    disk.extend(std::fs::read(dir.path().join("keygate.db-wal")).unwrap_or_default());
    let on_disk: std::collections::HashSet<&[u8]> = disk.windows(24).collect();
    for key in &stored {
        let private = kek.open_for_tests(&key.sealed_private_key).expect("the KEK opens it");
        assert!(private.len() > 100);
        assert!(
            !private.windows(24).any(|w| on_disk.contains(w)),
            "no 24-byte run of the private key is on disk in clear"
        );
        assert!(crate::jwt::KeyEncryptionKey::for_tests(8).open_for_tests(&key.sealed_private_key).is_none());
        assert!(!format!("{key:?}").contains("sealed"), "Debug shows no key material");
    }
}

#[tokio::test]
async fn an_immediate_rotation_replaces_a_waiting_key_and_a_wrong_key_file_is_refused() {
    use crate::jwt::{KeyAlgorithm, KeyEncryptionKey, KeyState};
    let (store, dir) = fresh().await;
    let kek = KeyEncryptionKey::for_tests(4);
    keys::ensure_signing_key(&store, &kek, T0).await.unwrap();
    let waiting = keys::rotate_signing_key(&store, &Caller::cli(T0), &kek, KeyAlgorithm::ES256, false).await.unwrap();
    assert_eq!(waiting.state, KeyState::Next);
    let now = keys::rotate_signing_key(&store, &Caller::cli(T0 + 1), &kek, KeyAlgorithm::ES256, true).await.unwrap();
    assert_eq!(now.state, KeyState::Signing);
    let listed = keys::list_signing_keys(&store, T0 + 10_000).await.unwrap();
    assert!(listed.iter().all(|k| k.kid != waiting.kid), "the waiting key can no longer take over");
    assert_eq!(listed.iter().filter(|k| k.state == KeyState::Signing).count(), 1);
    assert_eq!(listed.iter().find(|k| k.state == KeyState::Signing).unwrap().kid, now.kid);

    // Another key-encryption key cannot seal a key beside these.
    let other = KeyEncryptionKey::for_tests(5);
    assert!(matches!(
        keys::rotate_signing_key(&store, &Caller::cli(T0 + 2), &other, KeyAlgorithm::ES256, false).await,
        Err(CoreError::Refused(_))
    ));
    // A key file: created only for a database without keys, checked at start.
    let path = dir.path().join("elsewhere").join("keygate.key");
    let refused = keys::open_key_file(&store, &path, T0 + 3).await.unwrap_err().to_string();
    assert!(refused.contains("is missing"), "{refused}");
    assert!(!path.exists(), "no new key file beside keys it cannot open");
    let (empty, _d2) = fresh().await;
    let created = keys::open_key_file(&empty, &path, T0).await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    keys::ensure_signing_key(&empty, &created, T0).await.unwrap();
    assert!(keys::open_key_file(&empty, &path, T0).await.is_ok(), "the same file opens its keys");
    let refused = keys::open_key_file(&store, &path, T0 + 3).await.unwrap_err().to_string();
    assert!(refused.contains("does not open"), "{refused}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = keys::open_key_file(&empty, &path, T0).await.unwrap_err().to_string();
        assert!(refused.contains("0644") && refused.contains("chmod 600"), "{refused}");
    }
}

#[tokio::test]
async fn shared_secrets_are_sealed_and_clear_ones_from_before_are_sealed_in_place() {
    use crate::jwt::KeyEncryptionKey;
    let (store, _d) = fresh().await;
    let kek = KeyEncryptionKey::for_tests(6);
    let first = keys::shared_secret(&store, &kek, "form_error_signing", T0).await.unwrap();
    let again = keys::shared_secret(&store, &kek, "form_error_signing", T0).await.unwrap();
    assert_eq!(first, again, "every instance reads the same secret");
    let stored = store.shared_key("form_error_signing", b"unused", T0).await.unwrap();
    assert_ne!(stored.as_slice(), first.as_slice(), "not stored in clear");
    assert_eq!(kek.open_secret(&stored).unwrap(), first.to_vec());
    // A clear value written by an earlier release is kept, and sealed.
    store.shared_key("legacy", &[7u8; 32], T0).await.unwrap();
    assert_eq!(keys::shared_secret(&store, &kek, "legacy", T0).await.unwrap(), [7u8; 32]);
    let stored = store.shared_key("legacy", b"unused", T0).await.unwrap();
    assert_eq!(kek.open_secret(&stored).unwrap(), vec![7u8; 32]);
    // Another key file cannot open it.
    let other = KeyEncryptionKey::for_tests(7);
    assert!(matches!(keys::shared_secret(&store, &other, "legacy", T0).await, Err(CoreError::Refused(_))));
}
