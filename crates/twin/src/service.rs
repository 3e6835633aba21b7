//! The service REST shapes: the full twin JSON (`GET /twins/{id}`) and the bodies of
//! `PATCH /twins/{id}` (update) and `PUT /twins/{id}` (replace).

use serde_json::{Map, Value};

use crate::error::{JsonKind, TwinError};
use crate::timestamp::TwinTimestamp;
use crate::twin::{SectionWrite, Twin, TwinChange, TwinWrite, json_object, parse_json_object};

/// The registry fields a service twin shows next to tags and properties. The registry owns
/// them; the caller copies them in so that this crate stays independent of the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinIdentity {
    pub device_id: String,
    /// Set for module twins only.
    pub module_id: Option<String>,
    /// The etag of the device (or module) identity, shown as `deviceEtag`.
    pub device_etag: String,
    pub status: IdentityStatus,
    pub status_reason: Option<String>,
    /// `None` renders as `0001-01-01T00:00:00Z`, like IoT Hub's never-set times.
    pub status_update_time: Option<TwinTimestamp>,
    pub connection_state: ConnectionState,
    /// `None` renders as `0001-01-01T00:00:00Z`.
    pub last_activity_time: Option<TwinTimestamp>,
    pub cloud_to_device_message_count: u64,
    pub authentication_type: AuthenticationType,
    pub primary_thumbprint: Option<String>,
    pub secondary_thumbprint: Option<String>,
    /// IoT Plug and Play model id; IoT Hub sends `""` when unset.
    pub model_id: String,
    /// `capabilities`; `None` leaves the field out (module twins).
    pub iot_edge: Option<bool>,
    /// `deviceScope`; `None` leaves the field out.
    pub device_scope: Option<String>,
    /// `parentScopes`; `None` leaves the field out.
    pub parent_scopes: Option<Vec<String>>,
}

/// `status` of the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityStatus {
    Enabled,
    Disabled,
}

/// `connectionState` of the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    Connected,
    Disconnected,
}

/// `authenticationType` of the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthenticationType {
    Sas,
    SelfSigned,
    CertificateAuthority,
    None,
}

/// A parsed service-side twin write body. `azure-iot-hub` sends the same `Twin` model for
/// update and replace, often the whole twin it fetched before; only `tags`,
/// `properties.desired` and `etag` matter. `properties.reported` and the registry fields are
/// ignored, since only devices write reported properties. The system keys `$metadata` and
/// `$version` at the top of a section are dropped, so a fetched twin can be written back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTwinUpdate {
    /// `tags`, absent when the body has none (or `null`).
    pub tags: Option<Map<String, Value>>,
    /// `properties.desired`, absent when the body has none (or `null`).
    pub desired: Option<Map<String, Value>>,
    /// `etag` inside the body, which jobs (`updateTwin`) use instead of `If-Match`.
    pub etag: Option<String>,
}

const NEVER: &str = "0001-01-01T00:00:00Z";

// === impl ServiceTwinUpdate ===

impl ServiceTwinUpdate {
    /// Parses a `PATCH` or `PUT /twins/{id}` body.
    pub fn parse(body: &[u8]) -> Result<ServiceTwinUpdate, TwinError> {
        ServiceTwinUpdate::from_json(Value::Object(parse_json_object(body, "twin")?))
    }

    /// Reads a twin write from an already parsed JSON value (for example `updateTwin` of a job).
    pub fn from_json(body: Value) -> Result<ServiceTwinUpdate, TwinError> {
        let mut body = json_object(body, "twin")?;
        let tags = optional_section(body.remove("tags"), "tags")?;
        let desired = match body.remove("properties") {
            None | Some(Value::Null) => None,
            Some(properties) => {
                let mut properties = json_object(properties, "properties")?;
                optional_section(properties.remove("desired"), "properties.desired")?
            }
        };
        let etag = match body.remove("etag") {
            None | Some(Value::Null) => None,
            Some(Value::String(etag)) => Some(etag),
            Some(other) => {
                return Err(TwinError::UnexpectedType {
                    what: "etag".to_owned(),
                    expected: JsonKind::String,
                    found: JsonKind::of(&other),
                });
            }
        };
        Ok(ServiceTwinUpdate {
            tags,
            desired,
            etag,
        })
    }

    /// The write for `PATCH /twins/{id}`: merge-patch tags and desired properties.
    pub fn into_patch_write(self) -> TwinWrite {
        TwinWrite {
            tags: self.tags.map(SectionWrite::Patch),
            desired: self.desired.map(SectionWrite::Patch),
            reported: None,
        }
    }

    /// The write for `PUT /twins/{id}`: replace tags and desired properties. A section missing
    /// from the body is left as it is rather than emptied, so a body that names only desired
    /// properties cannot wipe tags by accident.
    pub fn into_replace_write(self) -> TwinWrite {
        TwinWrite {
            tags: self.tags.map(SectionWrite::Replace),
            desired: self.desired.map(SectionWrite::Replace),
            reported: None,
        }
    }
}

fn optional_section(
    value: Option<Value>,
    what: &str,
) -> Result<Option<Map<String, Value>>, TwinError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let mut section = json_object(value, what)?;
            section.remove("$metadata");
            section.remove("$version");
            Ok(Some(section))
        }
    }
}

// === impl Twin (service shapes) ===

impl Twin {
    /// Applies a `PATCH /twins/{id}` body: JSON merge of tags and desired properties.
    pub fn apply_service_patch(
        &mut self,
        update: ServiceTwinUpdate,
        now: TwinTimestamp,
    ) -> Result<TwinChange, TwinError> {
        self.apply(update.into_patch_write(), now)
    }

    /// Applies a `PUT /twins/{id}` body: replacement of tags and desired properties.
    pub fn apply_service_replace(
        &mut self,
        update: ServiceTwinUpdate,
        now: TwinTimestamp,
    ) -> Result<TwinChange, TwinError> {
        self.apply(update.into_replace_write(), now)
    }

    /// The twin as the service REST API returns it (and as twin queries see it): registry
    /// fields from `identity`, then `etag`, `version`, `tags` and `properties` with `$metadata`
    /// and `$version` in both sections.
    pub fn to_service_json(&self, identity: &TwinIdentity) -> Value {
        let mut twin = Map::new();
        twin.insert(
            "deviceId".to_owned(),
            Value::String(identity.device_id.clone()),
        );
        if let Some(module_id) = &identity.module_id {
            twin.insert("moduleId".to_owned(), Value::String(module_id.clone()));
        }
        twin.insert("etag".to_owned(), Value::String(self.etag().to_string()));
        twin.insert(
            "deviceEtag".to_owned(),
            Value::String(identity.device_etag.clone()),
        );
        twin.insert("version".to_owned(), Value::from(self.version()));
        twin.insert(
            "status".to_owned(),
            Value::String(identity.status.as_str().to_owned()),
        );
        twin.insert(
            "statusReason".to_owned(),
            optional_string(&identity.status_reason),
        );
        twin.insert(
            "statusUpdateTime".to_owned(),
            time_or_never(identity.status_update_time),
        );
        twin.insert(
            "connectionState".to_owned(),
            Value::String(identity.connection_state.as_str().to_owned()),
        );
        twin.insert(
            "lastActivityTime".to_owned(),
            time_or_never(identity.last_activity_time),
        );
        twin.insert(
            "cloudToDeviceMessageCount".to_owned(),
            Value::from(identity.cloud_to_device_message_count),
        );
        twin.insert(
            "authenticationType".to_owned(),
            Value::String(identity.authentication_type.as_str().to_owned()),
        );
        let mut thumbprint = Map::new();
        thumbprint.insert(
            "primaryThumbprint".to_owned(),
            optional_string(&identity.primary_thumbprint),
        );
        thumbprint.insert(
            "secondaryThumbprint".to_owned(),
            optional_string(&identity.secondary_thumbprint),
        );
        twin.insert("x509Thumbprint".to_owned(), Value::Object(thumbprint));
        twin.insert(
            "modelId".to_owned(),
            Value::String(identity.model_id.clone()),
        );
        if let Some(iot_edge) = identity.iot_edge {
            let mut capabilities = Map::new();
            capabilities.insert("iotEdge".to_owned(), Value::Bool(iot_edge));
            twin.insert("capabilities".to_owned(), Value::Object(capabilities));
        }
        if let Some(device_scope) = &identity.device_scope {
            twin.insert(
                "deviceScope".to_owned(),
                Value::String(device_scope.clone()),
            );
        }
        if let Some(parent_scopes) = &identity.parent_scopes {
            twin.insert(
                "parentScopes".to_owned(),
                Value::Array(parent_scopes.iter().cloned().map(Value::String).collect()),
            );
        }
        twin.insert("tags".to_owned(), Value::Object(self.tags().clone()));
        twin.insert("properties".to_owned(), self.properties_json());
        Value::Object(twin)
    }
}

fn optional_string(value: &Option<String>) -> Value {
    value.clone().map_or(Value::Null, Value::String)
}

fn time_or_never(time: Option<TwinTimestamp>) -> Value {
    Value::String(time.map_or_else(|| NEVER.to_owned(), |time| time.to_string()))
}

// === impl IdentityStatus, ConnectionState, AuthenticationType ===

impl IdentityStatus {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Enabled => "enabled",
            IdentityStatus::Disabled => "disabled",
        }
    }
}

impl ConnectionState {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "Connected",
            ConnectionState::Disconnected => "Disconnected",
        }
    }
}

impl AuthenticationType {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationType::Sas => "sas",
            AuthenticationType::SelfSigned => "selfSigned",
            AuthenticationType::CertificateAuthority => "certificateAuthority",
            AuthenticationType::None => "none",
        }
    }
}
