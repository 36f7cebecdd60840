//! JWT access tokens (RFC 9068) and their signing keys.
//!
//! Keys: ES256 by default, RS256 on request, made here and stored sealed
//! (XChaCha20-Poly1305) under the key-encryption key, which lives in a file
//! outside the database. A key is published in the JWKS from its creation,
//! signs from `signs_from` on (a rotation publishes the next key before it
//! signs, so verifiers that cache the JWKS already hold it), is retired
//! once a newer key signs, and stays published until the last token it
//! signed has expired. The schedule is pure ([`signing_key_at`],
//! [`published`]) and takes `now`.
//!
//! Signing and verifying are the `jsonwebtoken` crate's; key generation is
//! the `p256` and `rsa` crates'.

use crate::error::CoreError;
use crate::secret::{open_sealed, seal};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// How long verifiers may cache the JWKS (its `Cache-Control: max-age`).
pub const JWKS_MAX_AGE_SECONDS: i64 = 300;
/// A rotated-in key is published this long before it signs: twice the
/// JWKS cache lifetime, so every cache has fetched it first.
pub const KEY_PUBLISH_LEAD_SECONDS: i64 = 2 * JWKS_MAX_AGE_SECONDS;
/// Default period of automatic rotation.
pub const DEFAULT_ROTATION_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    #[default]
    ES256,
    RS256,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::ES256 => "ES256",
            KeyAlgorithm::RS256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ES256" => Some(KeyAlgorithm::ES256),
            "RS256" => Some(KeyAlgorithm::RS256),
            _ => None,
        }
    }

    fn jose(self) -> jsonwebtoken::Algorithm {
        match self {
            KeyAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            KeyAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

/// The key-encryption key: 32 random bytes in a file only the server's
/// user may read. Never in the database, never printed.
#[derive(Clone)]
pub struct KeyEncryptionKey([u8; 32]);

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

impl KeyEncryptionKey {
    /// Reads the key file, creating it (mode 0600, with its directory) when
    /// missing. Refuses a file that the group or others may read or write:
    /// anyone who reads it and a copy of the database can sign tokens.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match Self::load(path)? {
            Some(kek) => Ok(kek),
            None => Self::create(path),
        }
    }

    /// Reads the key file; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        let shown = path.display();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read the key file {shown}: {e}")),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "the key file {shown} has mode {mode:04o}: the group or others may read it; \
                     run `chmod 600 {shown}` and start again"
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the key file {shown}: {e}"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| format!("the key file {shown} does not hold a Keygate key (43 base64url characters)"))?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Some(KeyEncryptionKey(key)))
    }

    /// Writes a new key to a private temporary file, then links it into
    /// place, which never replaces an existing file: two instances starting
    /// at once end up with the same key, and none reads a half-written one.
    fn create(path: &Path) -> Result<Self, String> {
        use rand::RngCore;
        use std::io::Write;
        let shown = path.display();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let mut suffix = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let temp = dir.join(format!(".keygate-key-{}", URL_SAFE_NO_PAD.encode(suffix)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = options
            .open(&temp)
            .and_then(|mut file| {
                writeln!(file, "{}", URL_SAFE_NO_PAD.encode(key))?;
                file.sync_all()
            })
            .and_then(|_| std::fs::hard_link(&temp, path));
        let _ = std::fs::remove_file(&temp);
        match written {
            Ok(()) => Ok(KeyEncryptionKey(key)),
            // Another instance created it meanwhile: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load(path)?.ok_or_else(|| format!("the key file {shown} vanished"))
            }
            Err(e) => Err(format!("cannot create the key file {shown}: {e}")),
        }
    }

    #[doc(hidden)]
    pub fn for_tests(byte: u8) -> Self {
        KeyEncryptionKey([byte; 32])
    }

    /// Seals a server secret (a signing key of the console, say) for the
    /// database.
    pub fn seal_secret(&self, plain: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.seal(plain)
    }

    /// Opens what [`KeyEncryptionKey::seal_secret`] sealed with this key.
    pub fn open_secret(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.open(sealed)
    }

    /// Opens a sealed private key, for tests that look for it in clear.
    #[doc(hidden)]
    pub fn open_for_tests(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.open(sealed)
    }

    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, CoreError> {
        seal(&self.0, plain)
    }

    fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        open_sealed(&self.0, sealed)
    }
}

/// A new signing key, its private half sealed, ready to be stored.
pub struct NewSigningKey {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub public_jwk: String,
    pub sealed_private_key: Vec<u8>,
}

impl fmt::Debug for NewSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSigningKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish()
    }
}

/// Makes a key pair; the private key (PKCS#8 for ES256, PKCS#1 for RS256,
/// DER) is sealed under `kek` at once.
pub fn generate_signing_key(algorithm: KeyAlgorithm, kek: &KeyEncryptionKey) -> Result<NewSigningKey, CoreError> {
    use rand::RngCore;
    let mut id = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let kid = URL_SAFE_NO_PAD.encode(id);
    let fail = |what: &str| CoreError::Internal(format!("cannot make a signing key: {what}"));
    let (mut jwk, private_der): (serde_json::Value, Vec<u8>) = match algorithm {
        KeyAlgorithm::ES256 => {
            use p256::pkcs8::EncodePrivateKey;
            let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let der = secret.to_pkcs8_der().map_err(|_| fail("PKCS#8 encoding"))?;
            let jwk = serde_json::from_str(&secret.public_key().to_jwk_string()).map_err(|_| fail("JWK"))?;
            (jwk, der.as_bytes().to_vec())
        }
        KeyAlgorithm::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|_| fail("RSA"))?;
            let der = private.to_pkcs1_der().map_err(|_| fail("PKCS#1 encoding"))?;
            let jwk = serde_json::json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            });
            (jwk, der.as_bytes().to_vec())
        }
    };
    if let Some(map) = jwk.as_object_mut() {
        map.insert("kid".into(), kid.clone().into());
        map.insert("alg".into(), algorithm.as_str().into());
        map.insert("use".into(), "sig".into());
    }
    Ok(NewSigningKey { kid, algorithm, public_jwk: jwk.to_string(), sealed_private_key: kek.seal(&private_der)? })
}

/// A key as its schedule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchedule {
    pub kid: String,
    pub created_at: i64,
    pub signs_from: i64,
    /// When the last token it signed expires (`None`: it signed none).
    pub signed_until: Option<i64>,
}

/// Orders keys by when they start signing, newest last (kid breaks ties,
/// so every instance picks the same key).
fn order(k: &KeySchedule) -> (i64, &str) {
    (k.signs_from, k.kid.as_str())
}

/// The key that signs at `now`: the latest whose `signs_from` has come.
pub fn signing_key_at(keys: &[KeySchedule], now: i64) -> Option<&KeySchedule> {
    keys.iter().filter(|k| k.signs_from <= now).max_by(|a, b| order(a).cmp(&order(b)))
}

/// What a key is at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    Signing,
    /// A newer key signs; published while tokens it signed live.
    Retired,
    /// Retired and every token it signed has expired.
    Unpublished,
}

pub fn key_state(key: &KeySchedule, keys: &[KeySchedule], now: i64) -> KeyState {
    if key.signs_from > now {
        return KeyState::Next;
    }
    if signing_key_at(keys, now).is_some_and(|k| k.kid == key.kid) {
        return KeyState::Signing;
    }
    if key.signed_until.is_some_and(|until| until > now) {
        KeyState::Retired
    } else {
        KeyState::Unpublished
    }
}

/// Whether the JWKS lists `key` at `now`.
pub fn published(key: &KeySchedule, keys: &[KeySchedule], now: i64) -> bool {
    key_state(key, keys, now) != KeyState::Unpublished
}

/// Whether automatic rotation is due: the newest key was made `period`
/// ago or more (a key already waiting to sign counts as the newest).
pub fn rotation_due(keys: &[KeySchedule], period_seconds: i64, now: i64) -> bool {
    match keys.iter().map(|k| k.created_at).max() {
        None => true,
        Some(newest) => now.saturating_sub(newest) >= period_seconds,
    }
}

/// The claims of a JWT access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The client ID, for the client credentials grant.
    pub sub: String,
    /// One identifier as a string, several as an array (RFC 7519 §4.1.3).
    #[serde(with = "audience_claim")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
}

mod audience_claim {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(a) => a,
        })
    }
}

impl AccessTokenClaims {
    /// A fresh token ID: 128 random bits.
    pub fn new_jti() -> String {
        use rand::RngCore;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        URL_SAFE_NO_PAD.encode(id)
    }
}

/// A signing key opened for use.
#[derive(Clone)]
pub struct OpenedKey {
    pub schedule: KeySchedule,
    pub algorithm: KeyAlgorithm,
    encoding: jsonwebtoken::EncodingKey,
}

impl fmt::Debug for OpenedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedKey").field("kid", &self.schedule.kid).field("algorithm", &self.algorithm).finish()
    }
}

/// Signing through `jsonwebtoken` with `ring` underneath.
///
/// `jsonwebtoken`'s RustCrypto backend parses the private key again for
/// every token and signs with pure-Rust P-256 arithmetic: measured here,
/// 315 µs per ES256 token (199 µs of it parsing), which would hold JWT
/// issuance under half of opaque issuance. Its documented extension point,
/// a process-wide `CryptoProvider`, lets the keys be parsed once (by
/// `ring`, kept by the digest of their DER) and signed by `ring`'s
/// assembly (tens of µs). Verification stays with the default provider.
mod ring_signing {
    use jsonwebtoken::crypto::{CryptoProvider, JwtSigner};
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    enum ParsedKey {
        Es256(EcdsaKeyPair),
        Rs256(RsaKeyPair),
    }

    struct RingSigner {
        key: Arc<ParsedKey>,
        algorithm: Algorithm,
    }

    impl signature::Signer<Vec<u8>> for RingSigner {
        fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
            let rng = SystemRandom::new();
            match self.key.as_ref() {
                ParsedKey::Es256(pair) => {
                    Ok(pair.sign(&rng, message).map_err(|_| signature::Error::new())?.as_ref().to_vec())
                }
                ParsedKey::Rs256(pair) => {
                    let mut out = vec![0u8; pair.public().modulus_len()];
                    pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut out).map_err(|_| signature::Error::new())?;
                    Ok(out)
                }
            }
        }
    }

    impl JwtSigner for RingSigner {
        fn algorithm(&self) -> Algorithm {
            self.algorithm
        }
    }

    /// Parsed keys by the SHA-256 of their DER; a handful live at a time.
    fn parsed(der: &[u8], algorithm: Algorithm) -> jsonwebtoken::errors::Result<Arc<ParsedKey>> {
        static KEYS: OnceLock<Mutex<HashMap<[u8; 32], Arc<ParsedKey>>>> = OnceLock::new();
        let keys = KEYS.get_or_init(Default::default);
        let id: [u8; 32] = Sha256::digest(der).into();
        if let Some(found) = keys.lock().ok().and_then(|k| k.get(&id).cloned()) {
            return Ok(found);
        }
        let key = Arc::new(match algorithm {
            Algorithm::ES256 => ParsedKey::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                    .map_err(|_| ErrorKind::InvalidEcdsaKey)?,
            ),
            _ => ParsedKey::Rs256(RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?),
        });
        if let Ok(mut k) = keys.lock() {
            if k.len() >= 64 {
                k.clear();
            }
            k.insert(id, key.clone());
        }
        Ok(key)
    }

    pub(super) fn signer_factory(
        algorithm: &Algorithm,
        key: &EncodingKey,
    ) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
        match algorithm {
            Algorithm::ES256 | Algorithm::RS256 => {
                Ok(Box::new(RingSigner { key: parsed(key.inner(), *algorithm)?, algorithm: *algorithm }))
            }
            other => (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.signer_factory)(other, key),
        }
    }

    /// Installs the provider once per process. If something used
    /// `jsonwebtoken` before (a test verifying first), the default stays
    /// and signing is only slower.
    pub fn install() {
        static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
        let provider = PROVIDER.get_or_init(|| CryptoProvider {
            signer_factory,
            ..jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.clone()
        });
        let _ = provider.install_default();
    }
}

impl OpenedKey {
    /// Opens a stored key with the key-encryption key; fails for another
    /// key-encryption key (the wrong `--key-file`) or a changed byte.
    pub fn open(
        schedule: KeySchedule,
        algorithm: KeyAlgorithm,
        sealed: &[u8],
        kek: &KeyEncryptionKey,
    ) -> Result<Self, CoreError> {
        let der = kek.open(sealed).ok_or_else(|| {
            CoreError::Unavailable(format!(
                "the signing key {} cannot be opened with this key file; every instance must use the key file \
                 that was in place when the key was made",
                schedule.kid
            ))
        })?;
        ring_signing::install();
        let encoding = match algorithm {
            KeyAlgorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_der(&der),
            KeyAlgorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_der(&der),
        };
        Ok(OpenedKey { schedule, algorithm, encoding })
    }

    /// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`, `kid`).
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, CoreError> {
        let mut header = jsonwebtoken::Header::new(self.algorithm.jose());
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.schedule.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| CoreError::Internal(format!("signing an access token failed: {e}")))
    }
}

/// The JWKS document for the published keys' public JWKs.
pub fn jwks<'a>(public_jwks: impl Iterator<Item = &'a str>) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = public_jwks.filter_map(|k| serde_json::from_str(k).ok()).collect();
    serde_json::json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, created: i64, from: i64, until: Option<i64>) -> KeySchedule {
        KeySchedule { kid: kid.into(), created_at: created, signs_from: from, signed_until: until }
    }

    #[test]
    fn the_next_key_is_published_before_it_signs() {
        let keys = vec![key("a", 0, 0, Some(5000)), key("b", 1000, 1600, None)];
        assert_eq!(signing_key_at(&keys, 1599).map(|k| k.kid.as_str()), Some("a"));
        assert_eq!(key_state(&keys[1], &keys, 1000), KeyState::Next);
        assert!(published(&keys[1], &keys, 1000));
        assert_eq!(signing_key_at(&keys, 1600).map(|k| k.kid.as_str()), Some("b"));
        assert_eq!(key_state(&keys[0], &keys, 1600), KeyState::Retired);
    }

    #[test]
    fn a_retired_key_leaves_the_jwks_when_its_last_token_expires() {
        let keys = vec![key("a", 0, 0, Some(5000)), key("b", 1000, 1600, Some(9000))];
        assert!(published(&keys[0], &keys, 4999));
        assert!(!published(&keys[0], &keys, 5000));
        assert_eq!(key_state(&keys[0], &keys, 5000), KeyState::Unpublished);
        // The signing key stays published whether or not it signed anything.
        let fresh = vec![key("a", 0, 0, None)];
        assert!(published(&fresh[0], &fresh, 10));
        // A retired key that never signed is gone at once.
        let unused = vec![key("a", 0, 0, None), key("b", 10, 20, None)];
        assert!(!published(&unused[0], &unused, 20));
    }

    #[test]
    fn rotation_is_due_after_the_period_since_the_newest_key() {
        assert!(rotation_due(&[], 90, 0));
        let keys = vec![key("a", 0, 0, None)];
        assert!(!rotation_due(&keys, 90, 89));
        assert!(rotation_due(&keys, 90, 90));
        let pending = vec![key("a", 0, 0, None), key("b", 90, 700, None)];
        assert!(!rotation_due(&pending, 90, 100), "the waiting key is the newest");
    }

    #[test]
    fn kek_debug_is_redacted_and_sealing_needs_the_same_kek() {
        let kek = KeyEncryptionKey::for_tests(7);
        assert!(!format!("{kek:?}").contains('7'));
        let made = generate_signing_key(KeyAlgorithm::ES256, &kek).unwrap();
        let schedule = key(&made.kid, 0, 0, None);
        assert!(OpenedKey::open(schedule.clone(), made.algorithm, &made.sealed_private_key, &kek).is_ok());
        let other = KeyEncryptionKey::for_tests(8);
        assert!(OpenedKey::open(schedule, made.algorithm, &made.sealed_private_key, &other).is_err());
    }

    #[test]
    fn ring_signatures_verify_with_the_independent_verifier() {
        let kek = KeyEncryptionKey::for_tests(2);
        for alg in [KeyAlgorithm::ES256, KeyAlgorithm::RS256] {
            let made = generate_signing_key(alg, &kek).unwrap();
            let der = kek.open_for_tests(&made.sealed_private_key).unwrap();
            let encoding = match alg {
                KeyAlgorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_der(&der),
                KeyAlgorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_der(&der),
            };
            let signer = ring_signing::signer_factory(&alg.jose(), &encoding).unwrap();
            let message = b"header.payload";
            let signature = URL_SAFE_NO_PAD.encode(signature::Signer::try_sign(signer.as_ref(), message).unwrap());
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&made.public_jwk).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            assert!(jsonwebtoken::crypto::verify(&signature, message, &decoding, alg.jose()).unwrap(), "{alg:?}");
            assert!(!jsonwebtoken::crypto::verify(&signature, b"header.other", &decoding, alg.jose()).unwrap());
        }
    }

    #[test]
    fn signed_tokens_verify_against_the_published_jwk() {
        let kek = KeyEncryptionKey::for_tests(1);
        for alg in [KeyAlgorithm::ES256, KeyAlgorithm::RS256] {
            let made = generate_signing_key(alg, &kek).unwrap();
            let opened = OpenedKey::open(key(&made.kid, 0, 0, None), alg, &made.sealed_private_key, &kek).unwrap();
            let claims = AccessTokenClaims {
                iss: "http://issuer".into(),
                sub: "kgc_x".into(),
                aud: vec!["urn:keygate:api".into()],
                exp: 4_000_000_000,
                iat: 1,
                jti: AccessTokenClaims::new_jti(),
                client_id: "kgc_x".into(),
                scope: "a b".into(),
            };
            let token = opened.sign(&claims).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&made.public_jwk).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg.jose());
            validation.set_audience(&["urn:keygate:api"]);
            let data = jsonwebtoken::decode::<AccessTokenClaims>(&token, &decoding, &validation).unwrap();
            assert_eq!(data.claims, claims);
            assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(data.header.kid.as_deref(), Some(made.kid.as_str()));
            // The single audience is a string, as most verifiers expect.
            let payload = token.split('.').nth(1).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            assert_eq!(json["aud"], "urn:keygate:api");
        }
    }
}
