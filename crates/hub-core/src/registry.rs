//! Identity registry operations: create, update, read, list and delete devices and modules, with
//! generated keys, etags, edge scopes and the automatic `$edgeAgent` / `$edgeHub` modules.

use base64::Engine;
use chrono::{DateTime, Utc};
use hub_routing::LifecycleOperation;
use iothub_auth::SymmetricKey;
use iothub_types::{DeviceId, Identity, ModuleId};
use twin::{ConnectionState, IdentityStatus, IfMatch, Twin, TwinIdentity, TwinTimestamp};

use crate::error::HubError;
use crate::hub::Hub;
use crate::model::{Authentication, IdentityRecord};
use crate::storage::{DeviceCounts, IdentityKey, IdentityScope, StoredIdentity};

/// The modules every IoT Edge device gets on creation.
pub const EDGE_SYSTEM_MODULES: [&str; 2] = ["$edgeAgent", "$edgeHub"];

/// Credentials as a caller asks for them; absent keys are generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationSpec {
    /// Symmetric keys; `None` keys are generated.
    Sas {
        /// `primaryKey`, base64.
        primary_key: Option<String>,
        /// `secondaryKey`, base64.
        secondary_key: Option<String>,
    },
    /// Self-signed X.509 by thumbprint.
    SelfSigned {
        /// `primaryThumbprint`.
        primary_thumbprint: Option<String>,
        /// `secondaryThumbprint`.
        secondary_thumbprint: Option<String>,
    },
    /// X.509 signed by an uploaded CA.
    CertificateAuthority,
    /// No credentials.
    None,
}

/// The writable fields of a device or module, as a create or update request gives them. `None`
/// means "not provided": a create uses the default, an update keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentitySpec {
    /// `status` (devices).
    pub status: Option<IdentityStatus>,
    /// `statusReason` (devices).
    pub status_reason: Option<String>,
    /// `authentication`.
    pub authentication: Option<AuthenticationSpec>,
    /// `capabilities.iotEdge` (devices).
    pub iot_edge: Option<bool>,
    /// `deviceScope` (devices).
    pub device_scope: Option<String>,
    /// `parentScopes` (devices).
    pub parent_scopes: Option<Vec<String>>,
    /// `managedBy` (modules).
    pub managed_by: Option<String>,
}

/// An identity as the service API shows it: the stored record and twin plus live state.
#[derive(Debug, Clone)]
pub struct IdentityView {
    /// The registry record.
    pub record: IdentityRecord,
    /// The twin.
    pub twin: Twin,
    /// `Connected` while a connection is live.
    pub connection_state: ConnectionState,
    /// When the connection state last changed (the connect time while connected).
    pub connection_state_updated_time: Option<DateTime<Utc>>,
    /// Last connect or publish.
    pub last_activity_time: Option<DateTime<Utc>>,
    /// Messages waiting in the device's C2D queue (devices only; 0 for modules).
    pub cloud_to_device_message_count: u64,
}

impl IdentityView {
    /// The registry fields of the service twin.
    pub fn twin_identity(&self) -> TwinIdentity {
        let record = &self.record;
        let (primary_thumbprint, secondary_thumbprint) = match &record.authentication {
            Authentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => (primary_thumbprint.clone(), secondary_thumbprint.clone()),
            _ => (None, None),
        };
        let is_device = record.module_id.is_none();
        TwinIdentity {
            device_id: record.device_id.to_string(),
            module_id: record.module_id.as_ref().map(ToString::to_string),
            device_etag: record.etag.clone(),
            status: record.status,
            status_reason: record.status_reason.clone(),
            status_update_time: record.status_updated_time.map(TwinTimestamp::from_datetime),
            connection_state: self.connection_state,
            last_activity_time: self.last_activity_time.map(TwinTimestamp::from_datetime),
            cloud_to_device_message_count: self.cloud_to_device_message_count,
            authentication_type: record.authentication.authentication_type(),
            primary_thumbprint,
            secondary_thumbprint,
            model_id: record.model_id.clone(),
            iot_edge: is_device.then_some(record.iot_edge),
            device_scope: if is_device {
                record.device_scope.clone()
            } else {
                None
            },
            parent_scopes: is_device.then(|| record.parent_scopes.clone()),
        }
    }

    /// The twin as `GET /twins/{id}` returns it.
    pub fn service_twin_json(&self) -> serde_json::Value {
        self.twin.to_service_json(&self.twin_identity())
    }
}

/// The etag after `previous`: IoT Hub identity etags are the base64 of a decimal counter (`MQ==` is 1).
fn next_identity_etag(previous: Option<&str>) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let previous_counter = previous
        .and_then(|etag| engine.decode(etag).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    engine.encode((previous_counter + 1).to_string())
}

fn check_identity_if_match(if_match: &str, current_etag: &str) -> Result<(), HubError> {
    if IfMatch::parse(if_match).matches(current_etag) {
        Ok(())
    } else {
        Err(HubError::PreconditionFailed {
            given: if_match.to_owned(),
            current: current_etag.to_owned(),
        })
    }
}

fn validated_key(key: Option<String>, field: &str) -> Result<String, HubError> {
    match key {
        None => Ok(SymmetricKey::generate_random().to_base64()),
        Some(text) => {
            SymmetricKey::from_base64(&text).map_err(|error| {
                HubError::InvalidArgument(format!("{field} is not a valid key: {error}"))
            })?;
            Ok(text)
        }
    }
}

fn normalize_thumbprint(
    thumbprint: Option<String>,
    field: &str,
) -> Result<Option<String>, HubError> {
    match thumbprint {
        None => Ok(None),
        Some(text) => {
            let cleaned: String = text.chars().filter(|character| *character != ':').collect();
            let valid_length = cleaned.len() == 40 || cleaned.len() == 64;
            if !valid_length
                || !cleaned
                    .chars()
                    .all(|character| character.is_ascii_hexdigit())
            {
                return Err(HubError::InvalidArgument(format!(
                    "{field} must be a SHA-1 (40) or SHA-256 (64) hex thumbprint"
                )));
            }
            Ok(Some(cleaned.to_ascii_uppercase()))
        }
    }
}

fn build_authentication(spec: Option<AuthenticationSpec>) -> Result<Authentication, HubError> {
    match spec.unwrap_or(AuthenticationSpec::Sas {
        primary_key: None,
        secondary_key: None,
    }) {
        AuthenticationSpec::Sas {
            primary_key,
            secondary_key,
        } => Ok(Authentication::Sas {
            primary_key: validated_key(primary_key, "authentication.symmetricKey.primaryKey")?,
            secondary_key: validated_key(
                secondary_key,
                "authentication.symmetricKey.secondaryKey",
            )?,
        }),
        AuthenticationSpec::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } => {
            let primary_thumbprint = normalize_thumbprint(
                primary_thumbprint,
                "authentication.x509Thumbprint.primaryThumbprint",
            )?;
            let secondary_thumbprint = normalize_thumbprint(
                secondary_thumbprint,
                "authentication.x509Thumbprint.secondaryThumbprint",
            )?;
            if primary_thumbprint.is_none() && secondary_thumbprint.is_none() {
                return Err(HubError::InvalidArgument(
                    "selfSigned authentication needs a primary or secondary thumbprint".to_owned(),
                ));
            }
            Ok(Authentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            })
        }
        AuthenticationSpec::CertificateAuthority => Ok(Authentication::CertificateAuthority),
        AuthenticationSpec::None => Ok(Authentication::None),
    }
}

fn edge_device_scope(device_id: &DeviceId, generation_id: &str) -> String {
    format!("ms-azure-iot-edge://{device_id}-{generation_id}")
}

impl Hub {
    fn generation_id(&self) -> String {
        self.clock.now().timestamp_micros().to_string()
    }

    /// Reads a device or module with its live state.
    pub async fn get_identity(&self, identity: &Identity) -> Result<IdentityView, HubError> {
        let stored = self
            .store
            .get_identity(&identity.device, identity.module.as_ref())
            .await?;
        let stored = stored.ok_or_else(|| not_found(identity))?;
        self.view(stored).await
    }

    pub(crate) async fn view(&self, stored: StoredIdentity) -> Result<IdentityView, HubError> {
        let identity = stored.record.identity();
        let connected_since = self.connected_since(&identity);
        let cloud_to_device_message_count = match identity.module {
            None => self.store.c2d_count(&identity.device).await?,
            Some(_) => 0,
        };
        let last_activity_time = self
            .last_activity_of(&identity)
            .or(stored.record.last_activity_time);
        Ok(IdentityView {
            record: stored.record,
            twin: stored.twin,
            connection_state: if connected_since.is_some() {
                ConnectionState::Connected
            } else {
                ConnectionState::Disconnected
            },
            connection_state_updated_time: connected_since,
            last_activity_time,
            cloud_to_device_message_count,
        })
    }

    /// `PUT /devices/{id}` and `PUT /devices/{id}/modules/{mid}`: creates the identity when
    /// `if_match` is `None` (409 when it exists), otherwise updates it when the etag matches
    /// (`*` matches any; 404 when it does not exist, 412 on mismatch). Creating an IoT Edge
    /// device also creates its `$edgeAgent` and `$edgeHub` modules. Disabling a device drops its
    /// live connections. Creating routes a `createDeviceIdentity` lifecycle event per identity.
    pub async fn put_identity(
        &self,
        identity: &Identity,
        spec: IdentitySpec,
        if_match: Option<&str>,
    ) -> Result<IdentityView, HubError> {
        match if_match {
            None => self.create_identity(identity, spec).await,
            Some(if_match) => self.update_identity(identity, spec, if_match).await,
        }
    }

    async fn create_identity(
        &self,
        identity: &Identity,
        spec: IdentitySpec,
    ) -> Result<IdentityView, HubError> {
        if identity.module.is_some()
            && self
                .store
                .get_identity(&identity.device, None)
                .await?
                .is_none()
        {
            return Err(HubError::DeviceNotFound {
                device_id: identity.device.to_string(),
            });
        }
        let now = self.clock.now();
        let generation_id = self.generation_id();
        let is_device = identity.module.is_none();
        let iot_edge = is_device && spec.iot_edge.unwrap_or(false);
        let device_scope = if iot_edge {
            Some(edge_device_scope(&identity.device, &generation_id))
        } else if is_device {
            spec.device_scope.clone()
        } else {
            None
        };
        let parent_scopes = match (&spec.parent_scopes, is_device, iot_edge, &spec.device_scope) {
            (Some(scopes), true, _, _) => scopes.clone(),
            (None, true, false, Some(scope)) => vec![scope.clone()],
            _ => Vec::new(),
        };
        let status = if is_device {
            spec.status.unwrap_or(IdentityStatus::Enabled)
        } else {
            IdentityStatus::Enabled
        };
        let record = IdentityRecord {
            device_id: identity.device.clone(),
            module_id: identity.module.clone(),
            generation_id,
            etag: next_identity_etag(None),
            status,
            status_reason: spec.status_reason.clone(),
            status_updated_time: Some(now),
            authentication: build_authentication(spec.authentication)?,
            iot_edge,
            device_scope,
            parent_scopes,
            managed_by: spec.managed_by.clone(),
            last_activity_time: None,
            model_id: String::new(),
        };
        let stored = StoredIdentity {
            record,
            twin: Twin::new(TwinTimestamp::from_datetime(now)),
        };
        if !self.store.insert_identity(&stored).await? {
            return Err(already_exists(identity));
        }
        let view = self.view(stored).await?;
        self.emit_lifecycle(&view, LifecycleOperation::CreateDeviceIdentity)
            .await;
        if iot_edge {
            for module_name in EDGE_SYSTEM_MODULES {
                let module_id = ModuleId::new(module_name).map_err(HubError::storage)?;
                let module_identity = Identity::module(identity.device.clone(), module_id);
                let module_spec = IdentitySpec::default();
                match Box::pin(self.create_identity(&module_identity, module_spec)).await {
                    Ok(_) | Err(HubError::ModuleAlreadyExists { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(view)
    }

    async fn update_identity(
        &self,
        identity: &Identity,
        spec: IdentitySpec,
        if_match: &str,
    ) -> Result<IdentityView, HubError> {
        let stored = self
            .store
            .get_identity(&identity.device, identity.module.as_ref())
            .await?;
        let mut stored = stored.ok_or_else(|| not_found(identity))?;
        check_identity_if_match(if_match, &stored.record.etag)?;
        let previous_etag = stored.record.etag.clone();
        let record = &mut stored.record;
        let is_device = record.module_id.is_none();
        let was_enabled = record.status == IdentityStatus::Enabled;
        if let Some(status) = spec.status
            && is_device
            && status != record.status
        {
            record.status = status;
            record.status_updated_time = Some(self.clock.now());
        }
        if spec.status_reason.is_some() {
            record.status_reason = spec.status_reason;
        }
        if let Some(authentication) = spec.authentication {
            record.authentication = merge_authentication(&record.authentication, authentication)?;
        }
        if is_device {
            if let Some(iot_edge) = spec.iot_edge {
                if iot_edge && !record.iot_edge && record.device_scope.is_none() {
                    record.device_scope =
                        Some(edge_device_scope(&record.device_id, &record.generation_id));
                }
                record.iot_edge = iot_edge;
            }
            if !record.iot_edge && spec.device_scope.is_some() {
                record.device_scope = spec.device_scope;
            }
            if let Some(parent_scopes) = spec.parent_scopes {
                record.parent_scopes = parent_scopes;
            }
        }
        if spec.managed_by.is_some() {
            record.managed_by = spec.managed_by;
        }
        record.etag = next_identity_etag(Some(&previous_etag));
        let now_disabled = record.status == IdentityStatus::Disabled;
        if !self
            .store
            .update_identity(&stored.record, &previous_etag)
            .await?
        {
            // Someone else wrote in between: the caller's etag no longer holds.
            return Err(HubError::PreconditionFailed {
                given: if_match.to_owned(),
                current: "changed".to_owned(),
            });
        }
        if was_enabled
            && now_disabled
            && let Some(connections) = self.connections()
        {
            connections.disconnect(identity).await;
        }
        self.view(stored).await
    }

    /// `DELETE /devices/{id}` and `DELETE /devices/{id}/modules/{mid}` with `If-Match`
    /// (`None` or `*` deletes unconditionally). A deleted device loses its modules, queued
    /// messages and live connections. Routes one `deleteDeviceIdentity` lifecycle event for the
    /// deleted identity (not one per module of a deleted device).
    pub async fn delete_identity(
        &self,
        identity: &Identity,
        if_match: Option<&str>,
    ) -> Result<(), HubError> {
        let stored = self
            .store
            .get_identity(&identity.device, identity.module.as_ref())
            .await?;
        let stored = stored.ok_or_else(|| not_found(identity))?;
        if let Some(if_match) = if_match {
            check_identity_if_match(if_match, &stored.record.etag)?;
        }
        // The lifecycle notification carries the twin as it was before the delete.
        let deleted_view = if self.lifecycle_routed() {
            Some(self.view(stored).await?)
        } else {
            None
        };
        if !self
            .store
            .delete_identity(&identity.device, identity.module.as_ref())
            .await?
        {
            return Err(not_found(identity));
        }
        if let Some(connections) = self.connections() {
            connections.disconnect(identity).await;
        }
        if let Some(view) = deleted_view {
            self.emit_lifecycle(&view, LifecycleOperation::DeleteDeviceIdentity)
                .await;
        }
        Ok(())
    }

    /// Lists identities in `scope` after `after`, at most `limit`, with live state.
    pub async fn list_identities(
        &self,
        scope: IdentityScope<'_>,
        after: Option<&IdentityKey>,
        limit: usize,
    ) -> Result<Vec<IdentityView>, HubError> {
        if let IdentityScope::ModulesOf(device_id) = scope
            && self.store.get_identity(device_id, None).await?.is_none()
        {
            return Err(HubError::DeviceNotFound {
                device_id: device_id.to_string(),
            });
        }
        let stored = self.store.list_identities(scope, after, limit).await?;
        let mut views = Vec::with_capacity(stored.len());
        for stored in stored {
            views.push(self.view(stored).await?);
        }
        Ok(views)
    }

    /// Device counts for `GET /statistics/devices`.
    pub async fn device_statistics(&self) -> Result<DeviceCounts, HubError> {
        self.store.count_devices().await
    }
}

fn merge_authentication(
    current: &Authentication,
    requested: AuthenticationSpec,
) -> Result<Authentication, HubError> {
    // Keys left out of an update keep their current values rather than being regenerated.
    let requested = match (current, requested) {
        (
            Authentication::Sas {
                primary_key,
                secondary_key,
            },
            AuthenticationSpec::Sas {
                primary_key: new_primary,
                secondary_key: new_secondary,
            },
        ) => AuthenticationSpec::Sas {
            primary_key: new_primary.or_else(|| Some(primary_key.clone())),
            secondary_key: new_secondary.or_else(|| Some(secondary_key.clone())),
        },
        (_, requested) => requested,
    };
    build_authentication(Some(requested))
}

pub(crate) fn not_found(identity: &Identity) -> HubError {
    match &identity.module {
        None => HubError::DeviceNotFound {
            device_id: identity.device.to_string(),
        },
        Some(module_id) => HubError::ModuleNotFound {
            device_id: identity.device.to_string(),
            module_id: module_id.to_string(),
        },
    }
}

fn already_exists(identity: &Identity) -> HubError {
    match &identity.module {
        None => HubError::DeviceAlreadyExists {
            device_id: identity.device.to_string(),
        },
        Some(module_id) => HubError::ModuleAlreadyExists {
            device_id: identity.device.to_string(),
            module_id: module_id.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::next_identity_etag;

    #[test]
    fn identity_etags_count_in_base64_decimal() {
        assert_eq!(next_identity_etag(None), "MQ==");
        assert_eq!(next_identity_etag(Some("MQ==")), "Mg==");
        assert_eq!(next_identity_etag(Some("NzQ2")), "NzQ3");
        assert_eq!(next_identity_etag(Some("garbage!")), "MQ==");
    }
}
