//! A client as the token endpoint sees it, and the rule that authenticates it.

use crate::grant::ClientAuthFailure;
use crate::model::{ApplicationId, TokenFormat};
use crate::scope::ScopeSet;
use crate::secret::{ClientSecret, SecretDigest};

/// Everything the token endpoint needs to know about a client.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: ApplicationId,
    pub client_id: String,
    pub name: String,
    pub secret_hash: SecretDigest,
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
    /// Checks a presented secret in constant time; a disabled application
    /// fails only after its secret was proven, so the reason audited for a
    /// stranger is never "disabled".
    pub fn authenticate(&self, presented: &ClientSecret) -> Result<(), ClientAuthFailure> {
        if !self.secret_hash.matches(&presented.digest()) {
            return Err(ClientAuthFailure::WrongSecret);
        }
        if !self.enabled {
            return Err(ClientAuthFailure::ApplicationDisabled);
        }
        Ok(())
    }
}
