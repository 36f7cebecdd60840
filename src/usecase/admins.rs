//! Administrators: add, change role, remove, reset a password; the first
//! owner; sign-in and sign-out. Owners manage administrators in the
//! console, the CLI manages them as the system; API tokens never do.

use super::{Caller, Permission};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::model::*;
use crate::password_work::{PasswordBusy, PasswordWork, BUSY_RETRY_AFTER_SECONDS};
use crate::secret::SecretDigest;
use crate::store::{ActorKind, AuditRecord, Store, LOCK_ADMINISTRATORS};
use crate::throttle::{
    admitted, finished, sign_in_keys, wait_for, AttemptOutcome, KeyKind, SignInFailures, ThrottlePolicy,
};
use serde_json::json;

fn busy(_: PasswordBusy) -> CoreError {
    CoreError::Throttled {
        message: "the server is busy checking other passwords; try again in a moment".into(),
        retry_after: BUSY_RETRY_AFTER_SECONDS,
    }
}

async fn hash(work: &PasswordWork, password: &str) -> Result<String, CoreError> {
    validate_password(password)?;
    work.hash(password.to_owned()).await.map_err(busy)?
}

fn on_admin(record: AuditRecord, admin: &AdminView) -> AuditRecord {
    record.on("administrator", Some(admin.id.0), &admin.username).with("role", json!(admin.role))
}

pub async fn add_admin(
    store: &Store,
    work: &PasswordWork,
    caller: &Caller,
    username: &str,
    password: &str,
    role: Role,
) -> Result<AdminView, CoreError> {
    caller.require(Permission::Owner)?;
    let username = validate_username(username)?;
    let hash = hash(work, password).await?;
    let mut tx = store.write().await?;
    // Chosen by whoever adds them: they choose their own at first sign-in.
    let admin = tx.insert_admin(&username, &hash, role, false, caller.now).await?;
    tx.record_audit(&on_admin(caller.record(AuditAction::AdminCreated), &admin)).await?;
    tx.commit().await?;
    Ok(admin)
}

pub async fn set_admin_role(store: &Store, caller: &Caller, id: AdminId, role: Role) -> Result<AdminView, CoreError> {
    caller.require(Permission::Owner)?;
    let mut tx = store.write().await?;
    // Two owners demoting each other at once must not both succeed.
    tx.serialize(LOCK_ADMINISTRATORS).await?;
    let before = tx.admin(id).await?.ok_or(CoreError::NotFound("administrator"))?;
    if !tx.set_admin_role(id, role).await? {
        return Err(CoreError::Refused("the last owner cannot be demoted; make someone else owner first".into()));
    }
    let after = AdminView { role, ..before.clone() };
    if before.role != role {
        tx.record_audit(
            &on_admin(caller.record(AuditAction::AdminRoleChanged), &after).with("previous_role", json!(before.role)),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}

pub async fn remove_admin(store: &Store, caller: &Caller, id: AdminId) -> Result<AdminView, CoreError> {
    caller.require(Permission::Owner)?;
    let mut tx = store.write().await?;
    tx.serialize(LOCK_ADMINISTRATORS).await?;
    let target = tx.admin(id).await?.ok_or(CoreError::NotFound("administrator"))?;
    if !tx.delete_admin(id).await? {
        return Err(CoreError::Refused("the last owner cannot be removed".into()));
    }
    tx.end_admin_sessions(id.0).await?;
    tx.record_audit(&on_admin(caller.record(AuditAction::AdminRemoved), &target)).await?;
    tx.commit().await?;
    Ok(target)
}

pub async fn reset_password(
    store: &Store,
    work: &PasswordWork,
    caller: &Caller,
    id: AdminId,
    password: &str,
) -> Result<AdminView, CoreError> {
    caller.require(Permission::Owner)?;
    let hash = hash(work, password).await?;
    let mut tx = store.write().await?;
    let target = tx.admin(id).await?.ok_or(CoreError::NotFound("administrator"))?;
    // Chosen by the owner, so the administrator chooses their own next.
    tx.set_admin_password(id, &hash).await?;
    // Whoever held the old password may hold a session too.
    let sessions_ended = tx.end_admin_sessions(id.0).await?;
    let event = on_admin(caller.record(AuditAction::AdminPasswordReset), &target);
    tx.record_audit(&event.with("sessions_ended", json!(sessions_ended))).await?;
    tx.commit().await?;
    Ok(target)
}

/// An administrator changes their own password, giving the current one.
/// Every other session of theirs ends (the binding is drawn anew); the
/// returned binding keeps the session they did it from.
pub async fn change_own_password(
    store: &Store,
    work: &PasswordWork,
    caller: &Caller,
    current: &str,
    new: &str,
) -> Result<(AdminView, SessionBinding), CoreError> {
    let super::Actor::Administrator(me) = &caller.actor else {
        return Err(CoreError::forbidden("only an administrator signed in to the console changes their own password"));
    };
    if new == current {
        return Err(CoreError::invalid("new_password", "the new password must differ from the current one"));
    }
    // Guessing the current password from a stolen session is throttled
    // and audited as sign-in guesses are: it is the same secret.
    let keys = sign_in_keys(&me.username, caller.ip.as_deref());
    admit_sign_in(store, &keys, caller.now).await?;
    let stored = store.admin_credentials(&me.username).await?.map(|(_, hash)| hash);
    let right = match work.verify(current.to_owned(), stored.clone()).await {
        Ok(right) => right,
        Err(e) => {
            // Not checked: no guess to count (as at sign-in).
            finish_sign_in(store, &keys, AttemptOutcome::NotChecked, caller.now).await?;
            return Err(busy(e));
        }
    };
    let outcome = if right { AttemptOutcome::Succeeded } else { AttemptOutcome::Failed };
    finish_sign_in(store, &keys, outcome, caller.now).await?;
    if !right {
        let record = caller
            .record(AuditAction::AdminSignInFailed)
            .with("username", json!(me.username))
            .with("via", json!("password_change"));
        store.record_audit(&record).await?;
        return Err(CoreError::invalid("current_password", "the current password is not right"));
    }
    validate_password(new).map_err(|e| match e {
        CoreError::Invalid { message, .. } => CoreError::invalid("new_password", message),
        other => other,
    })?;
    let hash = hash(work, new).await?;
    let mut tx = store.write().await?;
    // Changed meanwhile (a reset, another session): the check above no
    // longer says who this is, and the reset must stand.
    let changed_meanwhile = || CoreError::Refused("the password was changed meanwhile; sign in again".into());
    let checked = stored.ok_or_else(changed_meanwhile)?;
    let binding = tx.replace_own_password(me.id, &checked, &hash).await?.ok_or_else(changed_meanwhile)?;
    tx.record_audit(&caller.record(AuditAction::AdminPasswordChanged)).await?;
    tx.commit().await?;
    Ok((AdminView { must_change_password: false, ..me.clone() }, binding))
}

/// While no administrator exists, makes a one-time setup code for the
/// first owner and keeps its digest; `None` once there is one.
pub async fn open_setup(store: &Store, now: i64) -> Result<Option<String>, CoreError> {
    if store.admin_count().await? > 0 {
        return Ok(None);
    }
    let code = crate::secret::generate_setup_code();
    store.add_setup_code(&SecretDigest::of(&code), now).await?;
    Ok(Some(code))
}

/// Creates the first owner with a one-time setup code (printed by an
/// instance at start while no administrator exists; any instance accepts
/// it for a day), only while no administrator exists: `Refused` when
/// someone got there first. Every code ends with this.
pub async fn create_first_owner(
    store: &Store,
    work: &PasswordWork,
    setup_code: &str,
    username: &str,
    password: &str,
    now: i64,
    ip: Option<String>,
) -> Result<(AdminView, SessionBinding), CoreError> {
    let code = SecretDigest::of(setup_code.trim());
    let invalid_code = || {
        CoreError::Refused(
            "this setup link is not valid (it works once, and only until the first administrator exists)".into(),
        )
    };
    // Checked before the costly hash, and again where it counts.
    let not_before = now - crate::store::SETUP_CODE_TTL_SECONDS;
    if !store.setup_code_exists(&code, not_before).await? {
        return Err(invalid_code());
    }
    let username = validate_username(username)?;
    let hash = hash(work, password).await?;
    let mut tx = store.write().await?;
    // Two setup links used at once (on two instances) make one owner.
    tx.serialize(LOCK_ADMINISTRATORS).await?;
    if !tx.setup_code_exists(&code, not_before).await? {
        return Err(invalid_code());
    }
    let Some(owner) = tx.insert_first_owner(&username, &hash, now).await? else {
        return Err(CoreError::Refused("an administrator already exists; sign in instead".into()));
    };
    tx.clear_setup_codes().await?;
    let binding = tx
        .record_sign_in(owner.id, &hash, now)
        .await?
        .ok_or_else(|| CoreError::Internal("the new owner has no session binding".into()))?;
    let caller = Caller::administrator(owner.clone(), now, ip);
    tx.record_audit(&caller.record(AuditAction::AdminOwnerCreated)).await?;
    tx.commit().await?;
    Ok((AdminView { last_sign_in_at: Some(now), ..owner }, binding))
}

/// How a sign-in ended.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: the session must carry the binding.
    SignedIn(AdminView, SessionBinding),
    /// Wrong username or password (which one is never said).
    Refused,
}

/// Signs in with a password. Repeated failures per username-and-address
/// and per address are throttled (`crate::throttle`), across instances:
/// the attempt is admitted (and counted as failed) before the password is
/// checked, so parallel attempts cannot slip past, and an attempt whose
/// request goes away mid-check stays counted. The password is checked
/// against a dummy hash when there is no such account, so both cost the
/// same. Records the sign-in time and `admin.sign_in`, or
/// `admin.sign_in_failed` with the username tried.
pub async fn sign_in(
    store: &Store,
    work: &PasswordWork,
    username: &str,
    password: &str,
    now: i64,
    ip: Option<String>,
) -> Result<SignIn, CoreError> {
    let keys = sign_in_keys(username, ip.as_deref());
    admit_sign_in(store, &keys, now).await?;
    let result = check_password(store, work, username, password, now, ip).await;
    let outcome = match &result {
        Ok(SignIn::SignedIn(..)) => AttemptOutcome::Succeeded,
        Ok(SignIn::Refused) => AttemptOutcome::Failed,
        Err(CoreError::Throttled { .. }) => AttemptOutcome::NotChecked,
        // Unknown: it stays counted as the failure it was admitted as.
        Err(_) => return result,
    };
    finish_sign_in(store, &keys, outcome, now).await?;
    result
}

type SignInKeys = [(String, ThrottlePolicy, KeyKind); 2];

async fn admit_sign_in(store: &Store, keys: &SignInKeys, now: i64) -> Result<(), CoreError> {
    let throttled = |wait: i64| CoreError::Throttled {
        message: format!("too many failed sign-ins from here; try again in {wait} seconds"),
        retry_after: wait,
    };
    let wait = |current: &[Option<SignInFailures>]| {
        keys.iter().zip(current).filter_map(|((_, policy, _), f)| wait_for(f.as_ref(), *policy, now)).max()
    };
    // A read first: a flood of throttled attempts opens no transaction.
    let mut current = Vec::with_capacity(keys.len());
    for (key, _, _) in keys {
        current.push(store.sign_in_failures(key).await?);
    }
    if let Some(w) = wait(&current) {
        return Err(throttled(w));
    }
    let mut tx = store.write().await?;
    lock_keys(&mut tx, keys).await?;
    current.clear();
    for (key, _, _) in keys {
        current.push(tx.sign_in_failures(key).await?);
    }
    if let Some(w) = wait(&current) {
        return Err(throttled(w));
    }
    for ((key, _, _), f) in keys.iter().zip(&current) {
        tx.set_sign_in_failures(key, Some(admitted(f.as_ref(), now))).await?;
    }
    tx.commit().await
}

/// Serialises attempts on the same keys (across instances), and only
/// those: one lock per key, taken in one order so two attempts never wait
/// on each other crosswise.
async fn lock_keys(tx: &mut crate::store::Tx, keys: &SignInKeys) -> Result<(), CoreError> {
    let mut names: Vec<&str> = keys.iter().map(|(key, _, _)| key.as_str()).collect();
    names.sort_unstable();
    for name in names {
        tx.serialize_on(name).await?;
    }
    Ok(())
}

async fn finish_sign_in(store: &Store, keys: &SignInKeys, outcome: AttemptOutcome, now: i64) -> Result<(), CoreError> {
    let mut tx = store.write().await?;
    lock_keys(&mut tx, keys).await?;
    for (key, _, kind) in keys {
        if let Some(f) = tx.sign_in_failures(key).await? {
            tx.set_sign_in_failures(key, finished(f, *kind, outcome, now)).await?;
        }
    }
    tx.commit().await
}

async fn check_password(
    store: &Store,
    work: &PasswordWork,
    username: &str,
    password: &str,
    now: i64,
    ip: Option<String>,
) -> Result<SignIn, CoreError> {
    // No account has a name this long or odd; skip the lookup, not the hash.
    let found = match validate_username(username) {
        Ok(name) => store.admin_credentials(&name).await?,
        Err(_) => None,
    };
    let (admin, stored) = match found {
        Some((admin, hash)) => (Some(admin), Some(hash)),
        None => (None, None),
    };
    let ok = work.verify(password.to_owned(), stored.clone()).await.map_err(busy)?;
    if let (Some(admin), Some(hash), true) = (admin, stored, ok) {
        let mut tx = store.write().await?;
        // Removed, or given a new password, since the check: nobody to
        // sign in (and no session for an id a later administrator may get).
        if let Some(binding) = tx.record_sign_in(admin.id, &hash, now).await? {
            let caller = Caller::administrator(admin.clone(), now, ip);
            tx.record_audit(&caller.record(AuditAction::AdminSignIn)).await?;
            tx.commit().await?;
            return Ok(SignIn::SignedIn(AdminView { last_sign_in_at: Some(now), ..admin }, binding));
        }
    }
    let record = AuditRecord::new(now, ActorKind::Anonymous, AuditAction::AdminSignInFailed)
        .from_ip(ip)
        .with("username", json!(bounded_text(username.trim(), MAX_AUDIT_TEXT_LEN)))
        .with("via", json!("console"));
    store.record_audit(&record).await?;
    Ok(SignIn::Refused)
}

pub async fn sign_out(store: &Store, caller: &Caller) -> Result<(), CoreError> {
    store.record_audit(&caller.record(AuditAction::AdminSignOut)).await?;
    Ok(())
}
