//! Client IDs, client secrets, access tokens and administrator passwords.
//!
//! Secrets and tokens are 256-bit random strings with recognisable prefixes
//! (`kgs_` secret, `kgt_` token) so secret scanners can find a leaked one.
//! They are stored as SHA-256 digests: they carry full entropy already, so a
//! slow password hash would add nothing but latency on the token endpoint.
//! Passwords chosen by people get argon2id. Every type that holds a
//! plaintext secret has a redacted `Debug` and no `Display`.

use argon2::password_hash::{rand_core::OsRng as ArgonRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

pub const CLIENT_ID_PREFIX: &str = "kgc_";
pub const CLIENT_SECRET_PREFIX: &str = "kgs_";
pub const ACCESS_TOKEN_PREFIX: &str = "kgt_";
/// 43 base62 characters carry 43 × log2(62) ≈ 256.03 bits.
const SECRET_CHARS: usize = 43;
const CLIENT_ID_CHARS: usize = 22;
/// How much of a token the console shows: the prefix and 8 random characters.
pub const DISPLAY_PREFIX_LEN: usize = ACCESS_TOKEN_PREFIX.len() + 8;

fn random_base62(n: usize) -> String {
    Alphanumeric.sample_string(&mut OsRng, n)
}

/// A SHA-256 digest of a secret or token, as stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    pub fn of(secret: &str) -> Self {
        SecretDigest(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(b).ok().map(SecretDigest)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison, so timing says nothing about how much of a
    /// guessed secret was right.
    pub fn matches(&self, other: &SecretDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

pub type TokenHash = SecretDigest;
pub type SecretHash = SecretDigest;

/// A freshly generated client ID (not secret).
pub fn generate_client_id() -> String {
    format!("{CLIENT_ID_PREFIX}{}", random_base62(CLIENT_ID_CHARS))
}

macro_rules! plaintext_secret {
    ($(#[$m:meta])* $name:ident, $prefix:expr) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                $name(format!("{}{}", $prefix, random_base62(SECRET_CHARS)))
            }
            /// Wraps a value received from a client.
            pub fn from_presented(s: impl Into<String>) -> Self {
                $name(s.into())
            }
            /// The plaintext, for the one response that shows it.
            pub fn expose(&self) -> &str {
                &self.0
            }
            pub fn digest(&self) -> SecretDigest {
                SecretDigest::of(&self.0)
            }
            /// Whether it has the shape we generate (cheap pre-check before a lookup).
            pub fn well_formed(&self) -> bool {
                self.0.len() == $prefix.len() + SECRET_CHARS
                    && self.0.starts_with($prefix)
                    && self.0[$prefix.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    };
}

plaintext_secret!(
    /// A client secret in plaintext.
    ClientSecret,
    CLIENT_SECRET_PREFIX
);
plaintext_secret!(
    /// An access token in plaintext.
    AccessToken,
    ACCESS_TOKEN_PREFIX
);

/// Longest JWT access token Keygate reads (an RS256 token is ~700 bytes).
const MAX_JWT_LEN: usize = 4096;

impl AccessToken {
    /// What the console may show of a token to tell it apart from others:
    /// the start of an opaque token; `jwt_` and the end of a JWT's
    /// signature (every JWT starts alike).
    pub fn display_prefix(&self) -> String {
        if self.is_jwt() {
            let tail: String = self.0.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
            return format!("jwt_{tail}");
        }
        self.0.chars().take(DISPLAY_PREFIX_LEN).collect()
    }

    /// Whether it has the shape of a compact JWS: three base64url parts.
    pub fn is_jwt(&self) -> bool {
        self.0.len() <= MAX_JWT_LEN
            && self.0.split('.').count() == 3
            && self.0.split('.').all(|p| !p.is_empty())
            && self.0.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }

    /// Whether Keygate could have issued it, opaque or JWT (a cheap check
    /// before the lookup by digest).
    pub fn recognisable(&self) -> bool {
        self.well_formed() || self.is_jwt()
    }
}

/// A key for [`seal`], derived from a secret the database never holds
/// (a session ID) and what the sealed value is for, so one secret yields
/// unrelated keys for unrelated purposes.
pub fn derive_key(secret: &str, purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in ["keygate-sealing-key-v1", purpose, secret] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// Encrypts and authenticates `plain` under `key` (XChaCha20-Poly1305, a
/// random 24-byte nonce in front), for values that must wait in the
/// database without being readable there.
pub fn seal(key: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, crate::CoreError> {
    use chacha20poly1305::aead::{Aead, AeadCore, KeyInit};
    use chacha20poly1305::XChaCha20Poly1305;
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher.encrypt(&nonce, plain).map_err(|_| crate::CoreError::Internal("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] made under the same key; `None` for any other key
/// or a changed byte.
pub fn open_sealed(key: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    if sealed.len() < 24 {
        return None;
    }
    let (nonce, body) = sealed.split_at(24);
    XChaCha20Poly1305::new(key.into()).decrypt(XNonce::from_slice(nonce), body).ok()
}

/// A one-time setup code for creating the first owner.
pub fn generate_setup_code() -> String {
    random_base62(SECRET_CHARS)
}

/// argon2id with OWASP's minimum: 19 MiB memory, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> Result<String, crate::CoreError> {
    let salt = SaltString::generate(&mut ArgonRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::CoreError::Internal(format!("password hashing failed: {e}")))
}

pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the username does not exist, so a failed
/// sign-in takes as long whether or not the account exists.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("keygate-dummy-password-for-timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key() {
        let key = derive_key("session-id", "flash");
        let sealed = seal(&key, b"kgs_secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"kgs_secret"), "no clear text in the sealed bytes");
        assert_eq!(open_sealed(&key, &sealed).as_deref(), Some(&b"kgs_secret"[..]));
        assert_eq!(open_sealed(&derive_key("other-session", "flash"), &sealed), None);
        assert_eq!(open_sealed(&derive_key("session-id", "other purpose"), &sealed), None);
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(open_sealed(&key, &changed), None);
        assert_eq!(open_sealed(&key, &sealed[..10]), None);
    }

    #[test]
    fn secrets_have_prefixes_entropy_and_charset() {
        let s = ClientSecret::generate();
        assert!(s.expose().starts_with("kgs_"));
        assert_eq!(s.expose().len(), 4 + 43);
        assert!(s.well_formed());
        let t = AccessToken::generate();
        assert!(t.expose().starts_with("kgt_"));
        assert!(t.well_formed());
        assert_ne!(AccessToken::generate(), t);
        let id = generate_client_id();
        assert!(id.starts_with("kgc_"));
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert_eq!(t.display_prefix().len(), 12);
        assert!(t.expose().starts_with(&t.display_prefix()));
    }

    #[test]
    fn debug_never_shows_plaintext() {
        let s = ClientSecret::generate();
        let t = AccessToken::generate();
        let dbg = format!("{s:?} {t:?} {:?}", t.digest());
        assert!(!dbg.contains(&s.expose()[4..]));
        assert!(!dbg.contains(&t.expose()[4..]));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn digest_comparison() {
        let s = ClientSecret::generate();
        assert!(s.digest().matches(&ClientSecret::from_presented(s.expose()).digest()));
        assert!(!s.digest().matches(&ClientSecret::generate().digest()));
        assert!(!ClientSecret::from_presented("kgs_short").well_formed());
    }

    #[test]
    fn password_hashing_is_argon2id() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("wrong horse battery staple", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
