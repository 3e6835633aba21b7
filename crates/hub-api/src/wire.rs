//! The JSON shapes of the service API (`api-version=2021-04-12`), kept apart from the hub's
//! domain types: request bodies parse into [`hub_core::IdentitySpec`], views render into the
//! `Device` and `Module` models of `azure-iot-hub`.

use chrono::{DateTime, Utc};
use hub_core::{Authentication, AuthenticationSpec, IdentitySpec, IdentityStatus, IdentityView};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;

/// IoT Hub's rendering of a time that was never set.
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// A time as IoT Hub writes it (`...Z`), or [`NEVER`].
pub fn time_json(time: Option<DateTime<Utc>>) -> Value {
    Value::String(time.map_or_else(
        || NEVER.to_owned(),
        |time| twin::TwinTimestamp::from_datetime(time).to_string(),
    ))
}

/// `authentication.symmetricKey`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyBody {
    pub primary_key: Option<String>,
    pub secondary_key: Option<String>,
}

/// `authentication.x509Thumbprint`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThumbprintBody {
    pub primary_thumbprint: Option<String>,
    pub secondary_thumbprint: Option<String>,
}

/// `authentication` (AuthenticationMechanism).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationBody {
    pub symmetric_key: Option<SymmetricKeyBody>,
    pub x509_thumbprint: Option<ThumbprintBody>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `capabilities`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesBody {
    pub iot_edge: Option<bool>,
}

/// A `Device` or `Module` request body; every field optional, unknown fields ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityBody {
    pub device_id: Option<String>,
    pub module_id: Option<String>,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub authentication: Option<AuthenticationBody>,
    pub capabilities: Option<CapabilitiesBody>,
    pub device_scope: Option<String>,
    pub parent_scopes: Option<Vec<String>>,
    pub managed_by: Option<String>,
}

/// Parses `enabled` / `disabled`.
pub fn parse_status(status: &str) -> Result<IdentityStatus, ApiError> {
    match status {
        "enabled" => Ok(IdentityStatus::Enabled),
        "disabled" => Ok(IdentityStatus::Disabled),
        other => Err(ApiError::invalid(format!(
            "status must be enabled or disabled, not {other:?}"
        ))),
    }
}

/// Turns an `authentication` body into the hub's request form. Without `type`, thumbprints mean
/// `selfSigned` and anything else `sas`.
pub fn authentication_spec(body: AuthenticationBody) -> Result<AuthenticationSpec, ApiError> {
    let has_thumbprint = body.x509_thumbprint.as_ref().is_some_and(|thumbprint| {
        thumbprint.primary_thumbprint.is_some() || thumbprint.secondary_thumbprint.is_some()
    });
    let kind = body
        .kind
        .clone()
        .unwrap_or_else(|| if has_thumbprint { "selfSigned" } else { "sas" }.to_owned());
    match kind.as_str() {
        "sas" => {
            let keys = body.symmetric_key.unwrap_or_default();
            Ok(AuthenticationSpec::Sas {
                primary_key: keys.primary_key,
                secondary_key: keys.secondary_key,
            })
        }
        "selfSigned" => {
            let thumbprints = body.x509_thumbprint.unwrap_or_default();
            Ok(AuthenticationSpec::SelfSigned {
                primary_thumbprint: thumbprints.primary_thumbprint,
                secondary_thumbprint: thumbprints.secondary_thumbprint,
            })
        }
        "certificateAuthority" => Ok(AuthenticationSpec::CertificateAuthority),
        "none" => Ok(AuthenticationSpec::None),
        other => Err(ApiError::invalid(format!(
            "authentication.type must be sas, selfSigned, certificateAuthority or none, not {other:?}"
        ))),
    }
}

impl IdentityBody {
    /// Parses a request body (an empty body is an empty object).
    pub fn parse(body: &[u8]) -> Result<IdentityBody, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(IdentityBody::default());
        }
        serde_json::from_slice(body)
            .map_err(|error| ApiError::invalid(format!("invalid request body: {error}")))
    }

    /// The writable fields as the hub takes them.
    pub fn into_spec(self) -> Result<IdentitySpec, ApiError> {
        Ok(IdentitySpec {
            status: self.status.as_deref().map(parse_status).transpose()?,
            status_reason: self.status_reason,
            authentication: self.authentication.map(authentication_spec).transpose()?,
            iot_edge: self
                .capabilities
                .and_then(|capabilities| capabilities.iot_edge),
            device_scope: self.device_scope,
            parent_scopes: self.parent_scopes,
            managed_by: self.managed_by,
        })
    }
}

fn authentication_json(authentication: &Authentication) -> Value {
    let (primary_key, secondary_key) = match authentication {
        Authentication::Sas {
            primary_key,
            secondary_key,
        } => (json!(primary_key), json!(secondary_key)),
        _ => (Value::Null, Value::Null),
    };
    let (primary_thumbprint, secondary_thumbprint) = match authentication {
        Authentication::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } => (json!(primary_thumbprint), json!(secondary_thumbprint)),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "symmetricKey": {"primaryKey": primary_key, "secondaryKey": secondary_key},
        "x509Thumbprint": {"primaryThumbprint": primary_thumbprint, "secondaryThumbprint": secondary_thumbprint},
        "type": authentication.authentication_type().as_str(),
    })
}

/// The `Device` model.
pub fn device_json(view: &IdentityView) -> Value {
    let record = &view.record;
    json!({
        "deviceId": record.device_id.as_str(),
        "generationId": record.generation_id,
        "etag": record.etag,
        "connectionState": view.connection_state.as_str(),
        "status": record.status.as_str(),
        "statusReason": record.status_reason,
        "connectionStateUpdatedTime": time_json(view.connection_state_updated_time),
        "statusUpdatedTime": time_json(record.status_updated_time),
        "lastActivityTime": time_json(view.last_activity_time),
        "cloudToDeviceMessageCount": view.cloud_to_device_message_count,
        "authentication": authentication_json(&record.authentication),
        "capabilities": {"iotEdge": record.iot_edge},
        "deviceScope": record.device_scope,
        "parentScopes": record.parent_scopes,
    })
}

/// The `Module` model.
pub fn module_json(view: &IdentityView) -> Value {
    let record = &view.record;
    json!({
        "moduleId": record.module_id.as_ref().map(|module_id| module_id.as_str()),
        "managedBy": record.managed_by,
        "deviceId": record.device_id.as_str(),
        "generationId": record.generation_id,
        "etag": record.etag,
        "connectionState": view.connection_state.as_str(),
        "connectionStateUpdatedTime": time_json(view.connection_state_updated_time),
        "lastActivityTime": time_json(view.last_activity_time),
        "cloudToDeviceMessageCount": view.cloud_to_device_message_count,
        "authentication": authentication_json(&record.authentication),
    })
}

/// The `CloudToDeviceMethod` request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodBody {
    pub method_name: Option<String>,
    #[serde(default)]
    pub payload: Value,
    pub response_timeout_in_seconds: Option<u64>,
    pub connect_timeout_in_seconds: Option<u64>,
}

/// The `QuerySpecification` request body.
#[derive(Debug, Deserialize)]
pub struct QueryBody {
    pub query: Option<String>,
}

/// One `ExportImportDevice` entry of a bulk request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkEntry {
    pub id: Option<String>,
    pub module_id: Option<String>,
    #[serde(rename = "eTag")]
    pub etag: Option<String>,
    pub import_mode: Option<String>,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub authentication: Option<AuthenticationBody>,
    #[serde(rename = "twinETag")]
    pub twin_etag: Option<String>,
    pub tags: Option<serde_json::Map<String, Value>>,
    pub properties: Option<BulkProperties>,
    pub capabilities: Option<CapabilitiesBody>,
    pub device_scope: Option<String>,
    pub parent_scopes: Option<Vec<String>>,
}

/// `properties` of a bulk entry (only `desired` is written).
#[derive(Debug, Deserialize)]
pub struct BulkProperties {
    pub desired: Option<serde_json::Map<String, Value>>,
}
