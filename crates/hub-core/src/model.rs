//! Registry domain types: device and module identities, shared access policies and their rights.
//!
//! These are the stored form too (serialized as JSON inside the registry table), so field names
//! are stable; the REST wire shapes live in `hub-api`.

use chrono::{DateTime, Utc};
use iothub_types::{DeviceId, Identity, ModuleId};
use serde::{Deserialize, Serialize};

pub use twin::{AuthenticationType, ConnectionState, IdentityStatus};

/// How an identity authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Authentication {
    /// Symmetric keys (SAS tokens). Both keys are standard base64.
    Sas {
        /// `primaryKey`.
        primary_key: String,
        /// `secondaryKey`.
        secondary_key: String,
    },
    /// A self-signed X.509 certificate identified by its thumbprint (hex, upper-case stored).
    SelfSigned {
        /// `primaryThumbprint`.
        primary_thumbprint: Option<String>,
        /// `secondaryThumbprint`.
        secondary_thumbprint: Option<String>,
    },
    /// An X.509 certificate chaining to an uploaded CA.
    CertificateAuthority,
    /// No credentials: the identity cannot connect by itself (e.g. a leaf behind a gateway that authenticates it).
    None,
}

impl Authentication {
    /// The `type` value of the wire shape.
    pub fn authentication_type(&self) -> AuthenticationType {
        match self {
            Authentication::Sas { .. } => AuthenticationType::Sas,
            Authentication::SelfSigned { .. } => AuthenticationType::SelfSigned,
            Authentication::CertificateAuthority => AuthenticationType::CertificateAuthority,
            Authentication::None => AuthenticationType::None,
        }
    }
}

/// A device or module identity as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityRecord {
    /// The device id.
    pub device_id: DeviceId,
    /// The module id, for module identities.
    pub module_id: Option<ModuleId>,
    /// Changes whenever an id is deleted and created again.
    pub generation_id: String,
    /// The identity etag (changes on every registry write of this identity).
    pub etag: String,
    /// `enabled` or `disabled`. Modules are always enabled.
    #[serde(with = "status_serde")]
    pub status: IdentityStatus,
    /// Free text explaining the status.
    pub status_reason: Option<String>,
    /// When the status last changed.
    #[serde(with = "optional_time_serde")]
    pub status_updated_time: Option<DateTime<Utc>>,
    /// How the identity authenticates.
    pub authentication: Authentication,
    /// `capabilities.iotEdge` (devices only).
    pub iot_edge: bool,
    /// `deviceScope` (devices only).
    pub device_scope: Option<String>,
    /// `parentScopes` (devices only).
    pub parent_scopes: Vec<String>,
    /// `managedBy` (modules only), e.g. `iotEdge`.
    pub managed_by: Option<String>,
    /// When the identity last sent something or connected, kept across restarts.
    #[serde(with = "optional_time_serde")]
    pub last_activity_time: Option<DateTime<Utc>>,
    /// IoT Plug and Play model id announced on connect (empty when none).
    #[serde(default)]
    pub model_id: String,
}

impl IdentityRecord {
    /// The identity this record describes.
    pub fn identity(&self) -> Identity {
        Identity {
            device: self.device_id.clone(),
            module: self.module_id.clone(),
        }
    }
}

/// The rights a shared access policy grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccessRights {
    /// Read the identity registry.
    pub registry_read: bool,
    /// Read and write the identity registry.
    pub registry_write: bool,
    /// Service-facing operations: twins, methods, C2D, telemetry, query, statistics.
    pub service_connect: bool,
    /// Act as any device.
    pub device_connect: bool,
}

/// One right, as named in IoT Hub policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessRight {
    /// `RegistryRead`.
    RegistryRead,
    /// `RegistryWrite` (shown as part of `RegistryReadWrite`).
    RegistryWrite,
    /// `ServiceConnect`.
    ServiceConnect,
    /// `DeviceConnect`.
    DeviceConnect,
}

impl AccessRight {
    /// The IoT Hub name of the right.
    pub fn name(self) -> &'static str {
        match self {
            AccessRight::RegistryRead => "RegistryRead",
            AccessRight::RegistryWrite => "RegistryWrite",
            AccessRight::ServiceConnect => "ServiceConnect",
            AccessRight::DeviceConnect => "DeviceConnect",
        }
    }
}

impl AccessRights {
    /// Every right (the `iothubowner` policy).
    pub const ALL: AccessRights = AccessRights {
        registry_read: true,
        registry_write: true,
        service_connect: true,
        device_connect: true,
    };

    /// Whether `right` is granted. Registry write implies registry read.
    pub fn grants(self, right: AccessRight) -> bool {
        match right {
            AccessRight::RegistryRead => self.registry_read || self.registry_write,
            AccessRight::RegistryWrite => self.registry_write,
            AccessRight::ServiceConnect => self.service_connect,
            AccessRight::DeviceConnect => self.device_connect,
        }
    }

    /// The IoT Hub spelling: `RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect`, the granted ones only.
    pub fn to_wire(self) -> String {
        let mut names = Vec::new();
        for (granted, name) in [
            (self.registry_read, "RegistryRead"),
            (self.registry_write, "RegistryWrite"),
            (self.service_connect, "ServiceConnect"),
            (self.device_connect, "DeviceConnect"),
        ] {
            if granted {
                names.push(name);
            }
        }
        names.join(", ")
    }

    /// Parses the spelling of [`AccessRights::to_wire`]; `RegistryReadWrite` is accepted as both registry rights.
    pub fn from_wire(text: &str) -> Option<AccessRights> {
        let mut rights = AccessRights::default();
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "RegistryRead" => rights.registry_read = true,
                "RegistryWrite" => rights.registry_write = true,
                "RegistryReadWrite" => {
                    rights.registry_read = true;
                    rights.registry_write = true;
                }
                "ServiceConnect" => rights.service_connect = true,
                "DeviceConnect" => rights.device_connect = true,
                _ => return None,
            }
        }
        Some(rights)
    }
}

/// A shared access policy: a named pair of keys with rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAccessPolicy {
    /// The policy name (`skn` in tokens).
    pub name: String,
    /// The rights it grants.
    pub rights: AccessRights,
    /// Primary key, base64.
    pub primary_key: String,
    /// Secondary key, base64.
    pub secondary_key: String,
}

/// The policies a hub gets on first start, with IoT Hub's default rights.
pub fn default_policy_rights() -> Vec<(&'static str, AccessRights)> {
    let none = AccessRights::default();
    vec![
        ("iothubowner", AccessRights::ALL),
        (
            "service",
            AccessRights {
                service_connect: true,
                ..none
            },
        ),
        (
            "device",
            AccessRights {
                device_connect: true,
                ..none
            },
        ),
        (
            "registryRead",
            AccessRights {
                registry_read: true,
                ..none
            },
        ),
        (
            "registryReadWrite",
            AccessRights {
                registry_read: true,
                registry_write: true,
                ..none
            },
        ),
    ]
}

mod status_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use twin::IdentityStatus;

    pub(super) fn serialize<S: Serializer>(
        status: &IdentityStatus,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(status.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<IdentityStatus, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "enabled" => Ok(IdentityStatus::Enabled),
            "disabled" => Ok(IdentityStatus::Disabled),
            other => Err(serde::de::Error::custom(format!(
                "unknown status {other:?}"
            ))),
        }
    }
}

mod optional_time_serde {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_some(&time.timestamp_micros()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let micros = Option::<i64>::deserialize(deserializer)?;
        match micros {
            None => Ok(None),
            Some(micros) => DateTime::from_timestamp_micros(micros)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("timestamp out of range")),
        }
    }
}
