//! One identity of the scope and the checks the edge hub makes against it when a client connects.

use std::fmt;

use iothub_auth::{ResourceScope, SasToken, SasTokenVerifyError, SymmetricKey};
use iothub_types::Identity;
use subtle::ConstantTimeEq;

/// How a scope identity authenticates.
#[derive(Clone)]
pub enum ScopeAuth {
    /// SAS tokens signed with one of two symmetric keys.
    Sas {
        /// `primaryKey`.
        primary: SymmetricKey,
        /// `secondaryKey`.
        secondary: SymmetricKey,
    },
    /// A self-signed X.509 certificate, by SHA-1 or SHA-256 thumbprint (hex, upper case; empty
    /// when the registry has none, which matches nothing).
    SelfSigned {
        /// `primaryThumbprint`.
        primary_thumbprint: String,
        /// `secondaryThumbprint`.
        secondary_thumbprint: String,
    },
    /// An X.509 certificate chaining to a CA (checked by chain, not by this crate).
    CertificateAuthority,
    /// No credentials of its own.
    None,
}

impl ScopeAuth {
    /// The registry's `authentication.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ScopeAuth::Sas { .. } => "sas",
            ScopeAuth::SelfSigned { .. } => "selfSigned",
            ScopeAuth::CertificateAuthority => "certificateAuthority",
            ScopeAuth::None => "none",
        }
    }
}

/// Never prints keys; thumbprints are public (they are in every TLS handshake).
impl fmt::Debug for ScopeAuth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeAuth::Sas { .. } => formatter.write_str("Sas { .. }"),
            ScopeAuth::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => formatter
                .debug_struct("SelfSigned")
                .field("primary_thumbprint", primary_thumbprint)
                .field("secondary_thumbprint", secondary_thumbprint)
                .finish(),
            ScopeAuth::CertificateAuthority => formatter.write_str("CertificateAuthority"),
            ScopeAuth::None => formatter.write_str("None"),
        }
    }
}

/// Key equality compares bytes (not in constant time: it is for cache diffs, not for checks).
impl PartialEq for ScopeAuth {
    fn eq(&self, other: &ScopeAuth) -> bool {
        match (self, other) {
            (
                ScopeAuth::Sas { primary, secondary },
                ScopeAuth::Sas {
                    primary: other_primary,
                    secondary: other_secondary,
                },
            ) => {
                primary.as_bytes() == other_primary.as_bytes()
                    && secondary.as_bytes() == other_secondary.as_bytes()
            }
            (
                ScopeAuth::SelfSigned {
                    primary_thumbprint,
                    secondary_thumbprint,
                },
                ScopeAuth::SelfSigned {
                    primary_thumbprint: other_primary,
                    secondary_thumbprint: other_secondary,
                },
            ) => primary_thumbprint == other_primary && secondary_thumbprint == other_secondary,
            (ScopeAuth::CertificateAuthority, ScopeAuth::CertificateAuthority)
            | (ScopeAuth::None, ScopeAuth::None) => true,
            _ => false,
        }
    }
}

impl Eq for ScopeAuth {}

/// A device or module of the edge device's scope, with what it authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeIdentity {
    /// Which device or module.
    pub identity: Identity,
    /// Changes when the identity is deleted and created again.
    pub generation_id: String,
    /// `status` is `enabled` (modules are always enabled).
    pub enabled: bool,
    /// The credentials.
    pub auth: ScopeAuth,
    /// `capabilities.iotEdge` (devices only; `false` for modules).
    pub is_edge: bool,
    /// `parentScopes` (devices only).
    pub parent_scopes: Vec<String>,
    /// `deviceScope` (devices only).
    pub device_scope: Option<String>,
}

/// Why a client is refused. Messages never hold keys, signatures or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeRefusal {
    /// The identity is not in the scope.
    #[error("the identity is not in this edge device's scope")]
    Unknown,
    /// The identity is disabled in the registry.
    #[error("the identity is disabled")]
    Disabled,
    /// The credential is malformed, for another identity or host, or does not match.
    #[error("the credential was refused: {0}")]
    BadToken(String),
    /// The token's signature matches but its expiry has passed.
    #[error("the SAS token has expired")]
    Expired,
    /// The client presented a kind of credential this identity does not use.
    #[error("the identity does not authenticate with this kind of credential")]
    WrongCredentialType,
}

impl ScopeIdentity {
    /// SAS check: the token parses ([`SasToken`]), names no shared access policy, its resource is
    /// `{host}/devices/{d}[/modules/{m}]` for this very identity where `host` is one of
    /// `accepted_hosts` (the hub host name and the gateway host name, compared without case), its
    /// signature is valid under the primary or the secondary key (constant time), it has not
    /// expired at `now_secs`, and the identity is enabled.
    pub fn verify_sas(
        &self,
        token: &str,
        accepted_hosts: &[&str],
        now_secs: u64,
    ) -> Result<(), ScopeRefusal> {
        let token = SasToken::parse(token.trim())
            .map_err(|error| ScopeRefusal::BadToken(error.to_string()))?;
        if token.key_name().is_some() {
            return Err(ScopeRefusal::BadToken(
                "a token signed with a shared access policy (skn) cannot be checked at the edge"
                    .to_owned(),
            ));
        }
        let (host, token_identity) = match token.scope() {
            ResourceScope::Device { host, device_id } => {
                (host, Identity::device(device_id.clone()))
            }
            ResourceScope::Module {
                host,
                device_id,
                module_id,
            } => (host, Identity::module(device_id.clone(), module_id.clone())),
            ResourceScope::Hub { .. } => {
                return Err(ScopeRefusal::BadToken(
                    "the token is scoped to the whole hub, not to one device or module".to_owned(),
                ));
            }
        };
        if token_identity != self.identity {
            return Err(ScopeRefusal::BadToken(format!(
                "the token is for {token_identity}, not for {}",
                self.identity
            )));
        }
        let host = host_without_port(host.as_str());
        if !accepted_hosts
            .iter()
            .any(|accepted| host_without_port(accepted).eq_ignore_ascii_case(host))
        {
            return Err(ScopeRefusal::BadToken(format!(
                "the token is for host {host}, which this edge hub does not serve"
            )));
        }
        let ScopeAuth::Sas { primary, secondary } = &self.auth else {
            return Err(ScopeRefusal::WrongCredentialType);
        };
        let mut matched = false;
        for key in [primary, secondary] {
            match token.verify(key, now_secs) {
                Ok(()) => {
                    matched = true;
                    break;
                }
                Err(SasTokenVerifyError::Expired { .. }) => return Err(ScopeRefusal::Expired),
                Err(SasTokenVerifyError::SignatureMismatch) => {}
            }
        }
        if !matched {
            return Err(ScopeRefusal::BadToken(
                "the signature matches neither key".to_owned(),
            ));
        }
        if !self.enabled {
            return Err(ScopeRefusal::Disabled);
        }
        Ok(())
    }

    /// X.509 self-signed check: the presented certificate's SHA-1 or SHA-256 thumbprint (hex)
    /// equals the primary or secondary thumbprint, compared without case and in constant time;
    /// the identity must be enabled.
    pub fn verify_thumbprint(&self, sha1_hex: &str, sha256_hex: &str) -> Result<(), ScopeRefusal> {
        let ScopeAuth::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } = &self.auth
        else {
            return Err(ScopeRefusal::WrongCredentialType);
        };
        let mut matched = false;
        for registered in [primary_thumbprint, secondary_thumbprint] {
            for presented in [sha1_hex, sha256_hex] {
                // Evaluate every pair so the time taken does not say which one matched.
                matched |= thumbprints_equal(registered, presented);
            }
        }
        if !matched {
            return Err(ScopeRefusal::BadToken(
                "the certificate thumbprint matches neither registered thumbprint".to_owned(),
            ));
        }
        if !self.enabled {
            return Err(ScopeRefusal::Disabled);
        }
        Ok(())
    }
}

/// Constant-time, case-insensitive comparison of two hex thumbprints; an empty one matches nothing.
fn thumbprints_equal(registered: &str, presented: &str) -> bool {
    if registered.is_empty() || presented.is_empty() || registered.len() != presented.len() {
        return false;
    }
    let registered = registered.to_ascii_uppercase();
    let presented = presented.to_ascii_uppercase();
    registered.as_bytes().ct_eq(presented.as_bytes()).into()
}

fn host_without_port(host: &str) -> &str {
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}
