//! The audit log's one vocabulary: every action an event can record, with
//! its wire name (`token.revoked`) and its family (`token`). Writers name
//! actions through this enum, so a typo cannot create an action that the
//! filters and sentences do not know.

use std::fmt;

macro_rules! audit_actions {
    ($($variant:ident => $wire:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($variant,)*
        }

        impl AuditAction {
            /// Every action, in the order the log's filters list them.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The name stored and shown: `family.event`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $wire,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some(AuditAction::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

audit_actions! {
    ApplicationCreated => "application.created",
    ApplicationUpdated => "application.updated",
    ApplicationEnabled => "application.enabled",
    ApplicationDisabled => "application.disabled",
    ApplicationDeleted => "application.deleted",
    ApplicationSecretRegenerated => "application.secret_regenerated",
    ApplicationAccessRefused => "application.access_refused",
    ApplicationPreviousSecretRevoked => "application.previous_secret_revoked",
    ApplicationDormant => "application.dormant",
    ApplicationRateLimited => "application.rate_limited",
    ApplicationScopeRefused => "application.scope_refused",
    TokenMinted => "token.minted",
    TokenRevoked => "token.revoked",
    TokenExtended => "token.extended",
    TokenRotated => "token.rotated",
    TokenRefused => "token.refused",
    TokenEvicted => "token.evicted",
    TokenExpiring => "token.expiring",
    SecretExpiring => "secret.expiring",
    ClientAuthenticationFailed => "client.authentication_failed",
    AdminSignIn => "admin.sign_in",
    AdminSignInFailed => "admin.sign_in_failed",
    AdminSignOut => "admin.sign_out",
    AdminOwnerCreated => "admin.owner_created",
    AdminCreated => "admin.created",
    AdminRoleChanged => "admin.role_changed",
    AdminRemoved => "admin.removed",
    AdminPasswordReset => "admin.password_reset",
    AdminPasswordChanged => "admin.password_changed",
    ScopeCreated => "scope.created",
    ScopeDeleted => "scope.deleted",
    ScopeAttached => "scope.attached",
    ResourceServerCreated => "resource_server.created",
    ResourceServerUpdated => "resource_server.updated",
    ResourceServerDeleted => "resource_server.deleted",
    SigningKeyCreated => "signing_key.created",
    WebhookCreated => "webhook.created",
    WebhookUpdated => "webhook.updated",
    WebhookDeleted => "webhook.deleted",
}

impl AuditAction {
    /// The part before the dot, which the filters also accept.
    pub fn family(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or("")
    }

    /// The failures an application's callers meet, which the `refusals`
    /// filter and an application's "Recent failures" show.
    pub const REFUSALS: &'static [AuditAction] = &[
        AuditAction::TokenRefused,
        AuditAction::ClientAuthenticationFailed,
        AuditAction::ApplicationRateLimited,
        AuditAction::ApplicationScopeRefused,
        AuditAction::TokenEvicted,
    ];

    /// Whether `filter` (an action or a family) selects this action.
    pub fn matches(self, filter: &str) -> bool {
        filter == self.as_str() || filter == self.family()
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_have_families() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
            assert!(a.as_str().starts_with(a.family()) && !a.family().is_empty());
            assert!(a.matches(a.family()));
        }
        assert_eq!(AuditAction::TokenRevoked.family(), "token");
        assert_eq!(AuditAction::parse("token.stolen"), None);
    }
}
