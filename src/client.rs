//! A client as the token endpoint sees it, and the rule that authenticates it.

use crate::grant::ClientAuthFailure;
use crate::model::{ApplicationId, SecretId, TokenFormat};
use crate::network::AllowedNetworks;
use crate::scope::ScopeSet;
use crate::secret::{ClientSecret, SecretDigest};
use std::net::IpAddr;

/// A secret that proves the client: the current one, or the previous one
/// until its overlap ends.
#[derive(Clone, Debug)]
pub struct LiveSecret {
    pub id: SecretId,
    pub digest: SecretDigest,
    /// `None` for the current secret.
    pub expires_at: Option<i64>,
}

impl LiveSecret {
    pub fn works_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Everything the token endpoint needs to know about a client.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: ApplicationId,
    pub client_id: String,
    pub name: String,
    /// The current secret first; at most two.
    pub secrets: Vec<LiveSecret>,
    pub allowed_networks: AllowedNetworks,
    pub enabled: bool,
    pub scopes: ScopeSet,
    pub token_ttl_seconds: i64,
    pub max_tokens: i64,
    pub rate_per_second: i64,
    pub rate_per_hour: i64,
    pub token_format: TokenFormat,
    /// `(scope, resource server identifier)` for each allowed scope that
    /// belongs to a resource server.
    pub scope_servers: Vec<(String, String)>,
    /// The resource server whose tokens this application may introspect.
    pub introspects: Option<String>,
}

impl ClientRecord {
    /// Checks a presented secret against every live secret in constant
    /// time and answers which one it is. A disabled application and an
    /// address outside the allowlist fail only after the secret was proven,
    /// so the reason audited for a stranger is never either of them (and
    /// "address not allowed" means a real secret was used from elsewhere).
    pub fn authenticate(
        &self,
        presented: &ClientSecret,
        now: i64,
        from: Option<IpAddr>,
    ) -> Result<SecretId, ClientAuthFailure> {
        let digest = presented.digest();
        let mut proven = None;
        for secret in &self.secrets {
            // No early exit: every live secret is compared.
            if secret.digest.matches(&digest) && secret.works_at(now) {
                proven = Some(secret.id);
            }
        }
        let Some(secret) = proven else { return Err(ClientAuthFailure::WrongSecret) };
        if !self.enabled {
            return Err(ClientAuthFailure::ApplicationDisabled);
        }
        if !self.allowed_networks.admits(from) {
            return Err(ClientAuthFailure::AddressNotAllowed);
        }
        Ok(secret)
    }

    /// The digest of a live secret, for the issuer's re-check.
    pub fn secret_digest(&self, id: SecretId) -> Option<&SecretDigest> {
        self.secrets.iter().find(|s| s.id == id).map(|s| &s.digest)
    }
}
