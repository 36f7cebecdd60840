//! JWT signing keys: the first key, rotation (by hand or on schedule) and
//! the list an operator reads. The schedule's rules are in `crate::jwt`.

use super::{Caller, Permission};
use crate::audit_action::AuditAction;
use crate::error::CoreError;
use crate::jwt::{self, KeyAlgorithm, KeyEncryptionKey, KeyState, KEY_PUBLISH_LEAD_SECONDS};
use crate::store::{ActorKind, AuditRecord, Store, StoredSigningKey, Tx, LOCK_SIGNING_KEYS};
use serde::Serialize;
use serde_json::json;

/// A signing key as `keygate keys list --json` shows it: never its private half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningKeyView {
    pub kid: String,
    pub algorithm: &'static str,
    pub state: KeyState,
    pub published: bool,
    pub created_at: i64,
    pub signs_from: i64,
    /// When the last token it signed expires.
    pub signed_until: Option<i64>,
}

fn views(keys: &[StoredSigningKey], now: i64) -> Vec<SigningKeyView> {
    let schedules: Vec<jwt::KeySchedule> = keys.iter().map(|k| k.schedule.clone()).collect();
    keys.iter()
        .map(|k| {
            let state = jwt::key_state(&k.schedule, &schedules, now);
            SigningKeyView {
                kid: k.schedule.kid.clone(),
                algorithm: k.algorithm.as_str(),
                state,
                published: state != KeyState::Unpublished,
                created_at: k.schedule.created_at,
                signs_from: k.schedule.signs_from,
                signed_until: k.schedule.signed_until,
            }
        })
        .collect()
}

pub async fn list_signing_keys(store: &Store, now: i64) -> Result<Vec<SigningKeyView>, CoreError> {
    Ok(views(&store.signing_keys().await?, now))
}

/// Adds a key in a transaction serialised with every other key change, so
/// instances starting together make one first key, not one each.
async fn add_key(
    tx: &mut Tx,
    kek: &KeyEncryptionKey,
    algorithm: KeyAlgorithm,
    now: i64,
    immediately: bool,
) -> Result<(SigningKeyView, AuditRecord), CoreError> {
    let existing = tx.signing_keys().await?;
    // A key made under another key-encryption key would be published but
    // could never sign: refuse it here.
    let schedules: Vec<jwt::KeySchedule> = existing.iter().map(|k| k.schedule.clone()).collect();
    if let Some(current) = jwt::signing_key_at(&schedules, now) {
        let stored = existing.iter().find(|k| k.schedule.kid == current.kid);
        if stored
            .is_some_and(|k| jwt::OpenedKey::open(k.schedule.clone(), k.algorithm, &k.sealed_private_key, kek).is_err())
        {
            return Err(CoreError::Refused(format!(
                "this key file does not open the signing key {}; use the key file the server uses",
                current.kid
            )));
        }
    }
    // An immediate key replaces any key still waiting to sign, which would
    // otherwise take over from it later.
    if immediately {
        tx.delete_waiting_signing_keys(now).await?;
    }
    // The first key signs at once: nothing can have cached a JWKS yet.
    let signs_from = if immediately || existing.is_empty() { now } else { now + KEY_PUBLISH_LEAD_SECONDS };
    let made = jwt::generate_signing_key(algorithm, kek)?;
    tx.insert_signing_key(&made, now, signs_from).await?;
    let keys = tx.signing_keys().await?;
    let view = views(&keys, now)
        .into_iter()
        .find(|k| k.kid == made.kid)
        .ok_or_else(|| CoreError::Internal("a new signing key was not stored".into()))?;
    let record = AuditRecord::new(now, ActorKind::System, AuditAction::SigningKeyCreated)
        .on("signing_key", None, &made.kid)
        .with("algorithm", json!(algorithm.as_str()))
        .with("signs_from", json!(signs_from))
        .with("signs_from_text", json!(crate::time_fmt::exact_utc(signs_from)));
    Ok((view, record))
}

/// The key-encryption key for this database, from `path`: created only
/// while the database holds no signing key (a fresh install), and checked
/// against the keys that sign now or will, so a wrong or lost key file
/// stops the server at start rather than failing every JWT later.
pub async fn open_key_file(store: &Store, path: &std::path::Path, now: i64) -> Result<KeyEncryptionKey, CoreError> {
    let shown = path.display();
    let stored = store.signing_keys().await?;
    let kek = match KeyEncryptionKey::load(path).map_err(CoreError::Refused)? {
        Some(kek) => kek,
        None if stored.is_empty() => KeyEncryptionKey::load_or_create(path).map_err(CoreError::Refused)?,
        None => {
            return Err(CoreError::Refused(format!(
                "the key file {shown} is missing, but this database holds signing keys sealed under the key it \
                 held: restore that file (every instance of a cluster uses the same one)"
            )))
        }
    };
    let schedules: Vec<jwt::KeySchedule> = stored.iter().map(|k| k.schedule.clone()).collect();
    for key in &stored {
        if matches!(jwt::key_state(&key.schedule, &schedules, now), KeyState::Next | KeyState::Signing)
            && jwt::OpenedKey::open(key.schedule.clone(), key.algorithm, &key.sealed_private_key, &kek).is_err()
        {
            return Err(CoreError::Refused(format!(
                "the key file {shown} does not open the signing key {}: it is not the key file this database's \
                 keys were sealed with",
                key.schedule.kid
            )));
        }
    }
    Ok(kek)
}

/// A 32-byte secret every instance on the database shares (the console's
/// form-error signing key), stored sealed under the key-encryption key:
/// made by the first instance, read by the others. A value stored in clear
/// by an earlier release is sealed in place.
pub async fn shared_secret(store: &Store, kek: &KeyEncryptionKey, name: &str, now: i64) -> Result<[u8; 32], CoreError> {
    use rand::RngCore;
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    let stored = store.shared_key(name, &kek.seal_secret(&fresh)?, now).await?;
    let secret = match kek.open_secret(&stored) {
        Some(plain) => plain,
        None if stored.len() == 32 => {
            store.replace_shared_key(name, &stored, &kek.seal_secret(&stored)?).await?;
            stored
        }
        None => {
            return Err(CoreError::Refused(format!(
                "the shared key {name} cannot be opened with this key file; every instance must use the same one"
            )))
        }
    };
    <[u8; 32]>::try_from(secret.as_slice())
        .map_err(|_| CoreError::Internal(format!("the shared key {name} is not 32 bytes")))
}

/// Makes the first signing key when there is none (at start).
pub async fn ensure_signing_key(store: &Store, kek: &KeyEncryptionKey, now: i64) -> Result<(), CoreError> {
    if !store.signing_keys().await?.is_empty() {
        return Ok(());
    }
    let mut tx = store.write().await?;
    tx.serialize(LOCK_SIGNING_KEYS).await?;
    if !tx.signing_keys().await?.is_empty() {
        return Ok(());
    }
    let (_, record) = add_key(&mut tx, kek, KeyAlgorithm::ES256, now, true).await?;
    tx.record_audit(&record.with("via", json!("start"))).await?;
    tx.commit().await?;
    Ok(())
}

/// `keygate keys rotate`: a new key, published now, signing after
/// [`KEY_PUBLISH_LEAD_SECONDS`] (at once with `immediately`, for a key
/// believed stolen: verifiers that cached the JWKS then refuse new tokens
/// until they fetch it again).
pub async fn rotate_signing_key(
    store: &Store,
    caller: &Caller,
    kek: &KeyEncryptionKey,
    algorithm: KeyAlgorithm,
    immediately: bool,
) -> Result<SigningKeyView, CoreError> {
    caller.require(Permission::Owner)?;
    let mut tx = store.write().await?;
    tx.serialize(LOCK_SIGNING_KEYS).await?;
    let (view, record) = add_key(&mut tx, kek, algorithm, caller.now, immediately).await?;
    let mut by_caller = caller.record(AuditAction::SigningKeyCreated).on("signing_key", None, &view.kid);
    for (key, value) in record.details.as_object().into_iter().flatten() {
        by_caller = by_caller.with(key, value.clone());
    }
    tx.record_audit(&by_caller).await?;
    tx.commit().await?;
    Ok(view)
}

/// Automatic rotation: a new key (of the signing key's algorithm) once the
/// newest is `period_seconds` old. Checked again under the lock, so one
/// instance of several rotates.
pub async fn rotate_if_due(
    store: &Store,
    kek: &KeyEncryptionKey,
    period_seconds: i64,
    now: i64,
) -> Result<Option<SigningKeyView>, CoreError> {
    let due = |keys: &[StoredSigningKey]| {
        let schedules: Vec<jwt::KeySchedule> = keys.iter().map(|k| k.schedule.clone()).collect();
        jwt::rotation_due(&schedules, period_seconds, now)
    };
    if !due(&store.signing_keys().await?) {
        return Ok(None);
    }
    let mut tx = store.write().await?;
    tx.serialize(LOCK_SIGNING_KEYS).await?;
    let keys = tx.signing_keys().await?;
    if !due(&keys) {
        return Ok(None);
    }
    let schedules: Vec<jwt::KeySchedule> = keys.iter().map(|k| k.schedule.clone()).collect();
    let algorithm = jwt::signing_key_at(&schedules, now)
        .and_then(|s| keys.iter().find(|k| k.schedule.kid == s.kid))
        .map(|k| k.algorithm)
        .unwrap_or_default();
    let (view, record) = add_key(&mut tx, kek, algorithm, now, false).await?;
    tx.record_audit(&record.with("via", json!("automatic rotation"))).await?;
    tx.commit().await?;
    Ok(Some(view))
}
