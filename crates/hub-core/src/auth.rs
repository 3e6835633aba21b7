//! Authentication and authorization: service requests signed with a shared access policy, and
//! devices or modules connecting with SAS tokens (their own key, or a policy with
//! `DeviceConnect`) or X.509 certificates (self-signed, by thumbprint; or CA-signed, by chain to an
//! uploaded CA certificate and a subject CN equal to the identity, see `certificates.rs`).

use iothub_auth::{ResourceScope, SasToken, SymmetricKey};
use iothub_types::Identity;
use tls::CertificateDer;
use twin::IdentityStatus;

use crate::error::HubError;
use crate::hub::Hub;
use crate::model::{AccessRight, Authentication, SharedAccessPolicy};

/// A service caller that passed [`Hub::authorize_service`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// The policy the token was signed with.
    pub policy_name: String,
}

/// What a connecting device or module presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCredential<'a> {
    /// The MQTT password: a `SharedAccessSignature sr=...` token.
    SasToken(&'a str),
    /// The TLS client certificate's thumbprints, upper-case hex without separators. Enough for
    /// self-signed identities only; CA-signed ones need [`DeviceCredential::X509Chain`].
    X509Thumbprints {
        /// SHA-1 thumbprint (40 hex digits).
        sha1: &'a str,
        /// SHA-256 thumbprint (64 hex digits).
        sha256: &'a str,
    },
    /// The TLS client certificate chain as presented in the handshake, whose private key the
    /// client proved to hold: a self-signed identity is matched by the end entity's thumbprint, a
    /// `certificateAuthority` one by the chain.
    X509Chain {
        /// The end-entity certificate.
        end_entity: &'a CertificateDer<'static>,
        /// The certificates sent after it.
        intermediates: &'a [CertificateDer<'static>],
    },
}

/// How an identity was authenticated, for `iothub-connection-auth-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A token signed with the device's own key.
    DeviceSas,
    /// A token signed with the module's own key.
    ModuleSas,
    /// A token signed with a shared access policy key (`DeviceConnect`).
    HubPolicySas,
    /// A self-signed X.509 certificate matched by thumbprint.
    X509SelfSigned,
    /// An X.509 certificate chaining to an uploaded CA certificate.
    X509CertificateAuthority,
}

impl AuthMethod {
    /// The JSON IoT Hub stamps as `iothub-connection-auth-method`.
    pub fn to_wire(self) -> &'static str {
        match self {
            AuthMethod::DeviceSas => r#"{"scope":"device","type":"sas","issuer":"iothub"}"#,
            AuthMethod::ModuleSas => r#"{"scope":"module","type":"sas","issuer":"iothub"}"#,
            AuthMethod::HubPolicySas => r#"{"scope":"hub","type":"sas","issuer":"iothub"}"#,
            AuthMethod::X509SelfSigned | AuthMethod::X509CertificateAuthority => {
                r#"{"scope":"device","type":"x509","issuer":"iothub"}"#
            }
        }
    }
}

/// A device or module allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedDevice {
    /// Who connected.
    pub identity: Identity,
    /// How.
    pub method: AuthMethod,
    /// The identity's generation id (`iothub-connection-auth-generation-id`).
    pub generation_id: String,
    /// Unix seconds at which the SAS token expires, when a token was used.
    pub token_expiry_unix_secs: Option<u64>,
}

/// Why a device was refused; the front end maps both to a CONNACK code.
#[derive(Debug, thiserror::Error)]
pub enum DeviceAuthError {
    /// Bad, expired or foreign credentials, unknown or disabled identity: CONNACK 5 (not authorized).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// The hub could not decide (storage failure): CONNACK 3 (server unavailable).
    #[error("server unavailable: {0}")]
    Unavailable(String),
}

/// The host part of a host name, without `:port` (the service SDK signs `HostName` as given,
/// port included, while devices use the bare name).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(address, _)| &host[..=address.len()]);
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

pub(crate) fn same_host(token_host: &str, hub_host: &str) -> bool {
    host_without_port(token_host).eq_ignore_ascii_case(host_without_port(hub_host))
}

pub(crate) fn verify_with_keys(
    token: &SasToken,
    keys: [&str; 2],
    now_unix_secs: u64,
) -> Result<(), String> {
    let mut last_error = "no key".to_owned();
    for key_text in keys {
        let Ok(key) = SymmetricKey::from_base64(key_text) else {
            continue;
        };
        match token.verify(&key, now_unix_secs) {
            Ok(()) => return Ok(()),
            // The signature matched this key, so expiry is the real reason.
            Err(error @ iothub_auth::SasTokenVerifyError::Expired { .. }) => {
                return Err(error.to_string());
            }
            Err(error) => last_error = error.to_string(),
        }
    }
    Err(last_error)
}

/// Matches a self-signed identity's registered thumbprints against the presented certificate's.
fn match_thumbprint(
    identity: &Identity,
    authentication: &Authentication,
    sha1: &str,
    sha256: &str,
) -> Result<AuthMethod, DeviceAuthError> {
    let Authentication::SelfSigned {
        primary_thumbprint,
        secondary_thumbprint,
    } = authentication
    else {
        return Err(DeviceAuthError::NotAuthorized(format!(
            "{identity} is registered for {:?} authentication, not a self-signed X.509 certificate",
            authentication.authentication_type()
        )));
    };
    let matches = [primary_thumbprint, secondary_thumbprint]
        .into_iter()
        .flatten()
        .any(|registered| {
            registered.eq_ignore_ascii_case(sha1) || registered.eq_ignore_ascii_case(sha256)
        });
    if !matches {
        return Err(DeviceAuthError::NotAuthorized(format!(
            "the client certificate's thumbprint is not registered for {identity}"
        )));
    }
    Ok(AuthMethod::X509SelfSigned)
}

impl Hub {
    fn now_unix_secs(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp()).unwrap_or(0)
    }

    /// Checks an `Authorization: SharedAccessSignature ...` header of a service request: the
    /// token must be hub-scoped, name a policy (`skn`) whose key signed it, be unexpired, and the
    /// policy must grant `required`. Failures are 401 `IotHubUnauthorizedAccess`.
    pub fn authorize_service(
        &self,
        authorization: Option<&str>,
        required: AccessRight,
    ) -> Result<ServicePrincipal, HubError> {
        let header = authorization.ok_or_else(|| {
            HubError::Unauthorized("the request has no Authorization header".to_owned())
        })?;
        let token = SasToken::parse(header.trim()).map_err(|error| {
            HubError::Unauthorized(format!(
                "the Authorization header is not a SAS token: {error}"
            ))
        })?;
        let policy_name = token.key_name().ok_or_else(|| {
            HubError::Unauthorized(
                "the token names no shared access policy (skn); service calls need one".to_owned(),
            )
        })?;
        let policy: SharedAccessPolicy = self.policy(policy_name.as_str()).ok_or_else(|| {
            HubError::Unauthorized(format!("there is no shared access policy {policy_name}"))
        })?;
        let ResourceScope::Hub { host } = token.scope() else {
            return Err(HubError::Unauthorized(
                "the token is not scoped to the hub".to_owned(),
            ));
        };
        if !same_host(host.as_str(), self.host_name.as_str()) {
            return Err(HubError::Unauthorized(format!(
                "the token is for host {host}, this hub is {}",
                self.host_name
            )));
        }
        verify_with_keys(
            &token,
            [&policy.primary_key, &policy.secondary_key],
            self.now_unix_secs(),
        )
        .map_err(|reason| HubError::Unauthorized(format!("the token was refused: {reason}")))?;
        if !policy.rights.grants(required) {
            return Err(HubError::Unauthorized(format!(
                "policy {} lacks the {} right ({} granted)",
                policy.name,
                required.name(),
                policy.rights.to_wire()
            )));
        }
        Ok(ServicePrincipal {
            policy_name: policy.name,
        })
    }

    /// Authenticates a connecting device or module.
    pub async fn authenticate_device(
        &self,
        identity: &Identity,
        credential: DeviceCredential<'_>,
    ) -> Result<AuthenticatedDevice, DeviceAuthError> {
        let unavailable = |error: HubError| DeviceAuthError::Unavailable(error.to_string());
        let stored = self
            .store
            .get_identity(&identity.device, identity.module.as_ref())
            .await
            .map_err(unavailable)?;
        let Some(stored) = stored else {
            return Err(DeviceAuthError::NotAuthorized(format!(
                "{identity} is not registered"
            )));
        };
        let device_record = if identity.module.is_some() {
            let device = self
                .store
                .get_identity(&identity.device, None)
                .await
                .map_err(unavailable)?;
            device.map(|device| device.record)
        } else {
            Some(stored.record.clone())
        };
        match device_record {
            Some(device) if device.status == IdentityStatus::Enabled => {}
            Some(_) => {
                return Err(DeviceAuthError::NotAuthorized(format!(
                    "device {} is disabled",
                    identity.device
                )));
            }
            None => {
                return Err(DeviceAuthError::NotAuthorized(format!(
                    "device {} is not registered",
                    identity.device
                )));
            }
        }
        let record = stored.record;
        let (method, token_expiry_unix_secs) = match credential {
            DeviceCredential::SasToken(text) => {
                let token = SasToken::parse(text.trim()).map_err(|error| {
                    DeviceAuthError::NotAuthorized(format!("malformed SAS token: {error}"))
                })?;
                let method = match edge_hub_signer(identity, &token) {
                    Some(edge_device) => {
                        self.verify_on_behalf_of(identity, &record, edge_device, &token)
                            .await?
                    }
                    None => self.verify_device_token(identity, &record.authentication, &token)?,
                };
                (method, Some(token.expiry_unix_secs()))
            }
            DeviceCredential::X509Thumbprints { sha1, sha256 } => (
                match_thumbprint(identity, &record.authentication, sha1, sha256)?,
                None,
            ),
            DeviceCredential::X509Chain {
                end_entity,
                intermediates,
            } => {
                if record.authentication == Authentication::CertificateAuthority {
                    self.verify_certificate_authority_chain(identity, end_entity, intermediates)
                        .await?;
                    (AuthMethod::X509CertificateAuthority, None)
                } else {
                    let sha1 = tls::thumbprint_sha1_hex(end_entity);
                    let sha256 = tls::thumbprint_sha256_hex(end_entity);
                    let method =
                        match_thumbprint(identity, &record.authentication, &sha1, &sha256)?;
                    (method, None)
                }
            }
        };
        Ok(AuthenticatedDevice {
            identity: identity.clone(),
            method,
            generation_id: record.generation_id,
            token_expiry_unix_secs,
        })
    }

    /// Checks a token an edge hub signed with its `$edgeHub` key to connect upstream on behalf of
    /// `identity`: one of its own modules, or a device (or a module of a device) whose
    /// `parentScopes` name the edge device's `deviceScope`. The edge device must be an enabled
    /// IoT Edge device; child keys never leave the edge.
    async fn verify_on_behalf_of(
        &self,
        identity: &Identity,
        record: &crate::model::IdentityRecord,
        edge_device: &iothub_types::DeviceId,
        token: &SasToken,
    ) -> Result<AuthMethod, DeviceAuthError> {
        let refused = |reason: String| DeviceAuthError::NotAuthorized(reason);
        let unavailable = |error: HubError| DeviceAuthError::Unavailable(error.to_string());
        let scope = token.scope();
        if !same_host(scope.host().as_str(), self.host_name.as_str()) {
            return Err(refused(format!(
                "the token is for host {}, this hub is {}",
                scope.host(),
                self.host_name
            )));
        }
        let edge = self
            .store
            .get_identity(edge_device, None)
            .await
            .map_err(unavailable)?
            .map(|stored| stored.record)
            .ok_or_else(|| refused(format!("edge device {edge_device} is not registered")))?;
        if !edge.iot_edge || edge.status != IdentityStatus::Enabled {
            return Err(refused(format!(
                "{edge_device} is not an enabled IoT Edge device"
            )));
        }
        // The signature first, so that a caller without the key learns nothing about scopes.
        let edge_hub_module =
            iothub_types::ModuleId::new(EDGE_HUB_MODULE).expect("$edgeHub is a valid module id");
        let edge_hub = self
            .store
            .get_identity(edge_device, Some(&edge_hub_module))
            .await
            .map_err(unavailable)?
            .map(|stored| stored.record)
            .ok_or_else(|| refused(format!("{edge_device} has no $edgeHub module identity")))?;
        let Authentication::Sas {
            primary_key,
            secondary_key,
        } = &edge_hub.authentication
        else {
            return Err(refused(format!(
                "the $edgeHub module of {edge_device} has no symmetric keys"
            )));
        };
        verify_with_keys(token, [primary_key, secondary_key], self.now_unix_secs())
            .map_err(refused)?;
        let in_scope = if identity.device == *edge_device {
            true
        } else {
            let device_record = if identity.module.is_some() {
                self.store
                    .get_identity(&identity.device, None)
                    .await
                    .map_err(unavailable)?
                    .map(|stored| stored.record)
            } else {
                Some(record.clone())
            };
            match (&edge.device_scope, device_record) {
                (Some(edge_scope), Some(device)) => device.parent_scopes.contains(edge_scope),
                _ => false,
            }
        };
        if !in_scope {
            return Err(refused(format!(
                "{identity} is not in the scope of edge device {edge_device}"
            )));
        }
        Ok(if identity.module.is_some() {
            AuthMethod::ModuleSas
        } else {
            AuthMethod::DeviceSas
        })
    }

    fn verify_device_token(
        &self,
        identity: &Identity,
        authentication: &Authentication,
        token: &SasToken,
    ) -> Result<AuthMethod, DeviceAuthError> {
        let refused = |reason: String| DeviceAuthError::NotAuthorized(reason);
        let scope = token.scope();
        if !same_host(scope.host().as_str(), self.host_name.as_str()) {
            return Err(refused(format!(
                "the token is for host {}, this hub is {}",
                scope.host(),
                self.host_name
            )));
        }
        let covers = match scope {
            ResourceScope::Hub { .. } => true,
            ResourceScope::Device { device_id, .. } => *device_id == identity.device,
            ResourceScope::Module {
                device_id,
                module_id,
                ..
            } => *device_id == identity.device && identity.module.as_ref() == Some(module_id),
        };
        if !covers {
            return Err(refused(format!(
                "the token's resource {} does not cover {identity}",
                scope.resource_uri()
            )));
        }
        let now = self.now_unix_secs();
        if let Some(policy_name) = token.key_name() {
            let policy = self.policy(policy_name.as_str()).ok_or_else(|| {
                refused(format!("there is no shared access policy {policy_name}"))
            })?;
            if !policy.rights.grants(AccessRight::DeviceConnect) {
                return Err(refused(format!(
                    "policy {} lacks the DeviceConnect right",
                    policy.name
                )));
            }
            verify_with_keys(token, [&policy.primary_key, &policy.secondary_key], now)
                .map_err(refused)?;
            return Ok(AuthMethod::HubPolicySas);
        }
        if matches!(scope, ResourceScope::Hub { .. }) {
            return Err(refused(
                "a hub-scoped token must name a shared access policy (skn)".to_owned(),
            ));
        }
        if identity.module.is_some() && !matches!(scope, ResourceScope::Module { .. }) {
            return Err(refused(
                "a module must present a module-scoped token".to_owned(),
            ));
        }
        let Authentication::Sas {
            primary_key,
            secondary_key,
        } = authentication
        else {
            return Err(refused(format!(
                "{identity} does not use symmetric key authentication"
            )));
        };
        verify_with_keys(token, [primary_key, secondary_key], now).map_err(refused)?;
        Ok(if identity.module.is_some() {
            AuthMethod::ModuleSas
        } else {
            AuthMethod::DeviceSas
        })
    }
}

/// The module id of the edge hub, whose key signs tokens on behalf of its children.
const EDGE_HUB_MODULE: &str = "$edgeHub";

/// The edge device whose `$edgeHub` signed `token`, when the token speaks for another identity
/// than `$edgeHub` itself (an on-behalf-of connection from an edge hub).
fn edge_hub_signer<'a>(
    identity: &Identity,
    token: &'a SasToken,
) -> Option<&'a iothub_types::DeviceId> {
    if token.key_name().is_some() {
        return None;
    }
    let ResourceScope::Module {
        device_id,
        module_id,
        ..
    } = token.scope()
    else {
        return None;
    };
    let is_edge_hub = module_id.as_str() == EDGE_HUB_MODULE;
    let speaks_for_itself =
        identity.device == *device_id && identity.module.as_ref() == Some(module_id);
    (is_edge_hub && !speaks_for_itself).then_some(device_id)
}

#[cfg(test)]
mod tests {
    use super::host_without_port;

    #[test]
    fn ports_are_stripped_from_host_names() {
        assert_eq!(host_without_port("localhost:8443"), "localhost");
        assert_eq!(host_without_port("localhost"), "localhost");
        assert_eq!(host_without_port("[::1]:443"), "[::1]");
        assert_eq!(host_without_port("hub.example.net"), "hub.example.net");
    }
}
