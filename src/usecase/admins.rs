//! Administrators: add, change role, remove, reset a password; the first
//! owner; sign-in and sign-out. Owners manage administrators in the
//! console, the CLI manages them as the system; API tokens never do.

use super::{Caller, Permission};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::model::*;
use crate::password_work::{PasswordBusy, PasswordWork, BUSY_RETRY_AFTER_SECONDS};
use crate::store::{ActorKind, AuditRecord, Store, LOCK_ADMINISTRATORS};
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
    let admin = tx.insert_admin(&username, &hash, role, caller.now).await?;
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
    tx.set_admin_password(id, &hash).await?;
    tx.record_audit(&on_admin(caller.record(AuditAction::AdminPasswordReset), &target)).await?;
    tx.commit().await?;
    Ok(target)
}

/// Creates the first owner through the setup link, only while no
/// administrator exists; `Refused` when someone got there first.
pub async fn create_first_owner(
    store: &Store,
    work: &PasswordWork,
    username: &str,
    password: &str,
    now: i64,
    ip: Option<String>,
) -> Result<AdminView, CoreError> {
    let username = validate_username(username)?;
    let hash = hash(work, password).await?;
    let mut tx = store.write().await?;
    // Two setup links used at once (each instance has its own) make one owner.
    tx.serialize(LOCK_ADMINISTRATORS).await?;
    let Some(owner) = tx.insert_first_owner(&username, &hash, now).await? else {
        return Err(CoreError::Refused("an administrator already exists; sign in instead".into()));
    };
    tx.record_sign_in(owner.id, now).await?;
    let caller = Caller::administrator(owner.clone(), now, ip);
    tx.record_audit(&caller.record(AuditAction::AdminOwnerCreated)).await?;
    tx.commit().await?;
    Ok(AdminView { last_sign_in_at: Some(now), ..owner })
}

/// How a sign-in ended.
#[derive(Debug)]
pub enum SignIn {
    SignedIn(AdminView),
    /// Wrong username or password (which one is never said).
    Refused,
}

/// Checks a password (against a dummy hash when there is no such account,
/// so both cost the same) and records the outcome: the sign-in time and
/// `admin.sign_in`, or `admin.sign_in_failed` with the username tried.
/// Throttling repeated failures is the caller's part, around this call.
pub async fn sign_in(
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
    let ok = work.verify(password.to_owned(), stored).await.map_err(busy)?;
    match (admin, ok) {
        (Some(admin), true) => {
            let mut tx = store.write().await?;
            tx.record_sign_in(admin.id, now).await?;
            let caller = Caller::administrator(admin.clone(), now, ip);
            tx.record_audit(&caller.record(AuditAction::AdminSignIn)).await?;
            tx.commit().await?;
            Ok(SignIn::SignedIn(AdminView { last_sign_in_at: Some(now), ..admin }))
        }
        _ => {
            let record = AuditRecord::new(now, ActorKind::Anonymous, AuditAction::AdminSignInFailed)
                .from_ip(ip)
                .with("username", json!(bounded_text(username.trim(), MAX_AUDIT_TEXT_LEN)))
                .with("via", json!("console"));
            store.record_audit(&record).await?;
            Ok(SignIn::Refused)
        }
    }
}

pub async fn sign_out(store: &Store, caller: &Caller) -> Result<(), CoreError> {
    store.record_audit(&caller.record(AuditAction::AdminSignOut)).await?;
    Ok(())
}
