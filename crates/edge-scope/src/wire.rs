//! The hub's `devicesAndModulesInDeviceScope` answer:
//! `{"devices": [Device...], "modules": [Module...], "continuationLink": "<path?query>" | null}`,
//! with the registry's `Device` and `Module` JSON (the shape Azure's edge hub reads).

use iothub_auth::SymmetricKey;
use iothub_types::{DeviceId, Identity, ModuleId};
use serde_json::Value;

use crate::error::ScopeError;
use crate::identity::{ScopeAuth, ScopeIdentity};

/// One parsed page of the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePage {
    /// The devices, then the modules, of this page.
    pub identities: Vec<ScopeIdentity>,
    /// The relative URL (path and query) of the next page, if any.
    pub continuation_link: Option<String>,
    /// Entries that could not be read, each with the reason (no secrets); they stay out of the
    /// scope, so such clients are refused.
    pub skipped: Vec<String>,
}

/// Parses one page of the hub's answer. The body must be a JSON object whose `devices` and
/// `modules` are arrays (or null); a malformed entry is skipped and reported in
/// [`ScopePage::skipped`] rather than failing the page.
pub fn parse_scope_page(body: &[u8]) -> Result<ScopePage, ScopeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ScopeError::InvalidAnswer(format!("not JSON: {error}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| ScopeError::InvalidAnswer("not a JSON object".to_owned()))?;
    let list = |name: &str| -> Result<Vec<Value>, ScopeError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(ScopeError::InvalidAnswer(format!("{name} is not an array"))),
        }
    };
    let continuation_link = match object.get("continuationLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) if link.is_empty() => None,
        Some(Value::String(link)) => Some(link.clone()),
        Some(_) => {
            return Err(ScopeError::InvalidAnswer(
                "continuationLink is not a string".to_owned(),
            ));
        }
    };
    let mut page = ScopePage {
        identities: Vec::new(),
        continuation_link,
        skipped: Vec::new(),
    };
    for (entries, is_module) in [(list("devices")?, false), (list("modules")?, true)] {
        for entry in entries {
            match scope_identity(&entry, is_module) {
                Ok(identity) => page.identities.push(identity),
                Err(reason) => page.skipped.push(reason),
            }
        }
    }
    Ok(page)
}

fn text<'a>(entry: &'a Value, field: &str) -> Option<&'a str> {
    entry.get(field).and_then(Value::as_str)
}

fn scope_identity(entry: &Value, is_module: bool) -> Result<ScopeIdentity, String> {
    let device_text = text(entry, "deviceId").ok_or("an entry without deviceId")?;
    let device = DeviceId::new(device_text)
        .map_err(|error| format!("invalid deviceId {device_text:?}: {error}"))?;
    let identity = if is_module {
        let module_text = text(entry, "moduleId")
            .ok_or_else(|| format!("a module of {device} without moduleId"))?;
        let module = ModuleId::new(module_text)
            .map_err(|error| format!("invalid moduleId {module_text:?}: {error}"))?;
        Identity::module(device, module)
    } else {
        Identity::device(device)
    };
    let auth = authentication(entry.get("authentication"))
        .map_err(|reason| format!("{identity}: {reason}"))?;
    let enabled = if is_module {
        true
    } else {
        match text(entry, "status") {
            Some(status) if status.eq_ignore_ascii_case("enabled") => true,
            Some(status) if status.eq_ignore_ascii_case("disabled") => false,
            other => {
                return Err(format!(
                    "{identity}: status {other:?} is not enabled/disabled"
                ));
            }
        }
    };
    let parent_scopes = match entry.get("parentScopes") {
        Some(Value::Array(scopes)) if !is_module => scopes
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ScopeIdentity {
        identity,
        generation_id: text(entry, "generationId").unwrap_or_default().to_owned(),
        enabled,
        auth,
        is_edge: !is_module
            && entry
                .pointer("/capabilities/iotEdge")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        parent_scopes,
        device_scope: if is_module {
            None
        } else {
            text(entry, "deviceScope")
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
        },
    })
}

fn authentication(value: Option<&Value>) -> Result<ScopeAuth, String> {
    let value = value.ok_or("no authentication")?;
    let kind = text(value, "type").unwrap_or("sas");
    match kind.to_ascii_lowercase().as_str() {
        "sas" => {
            let key = |field: &str| {
                let pointer = format!("/symmetricKey/{field}");
                let text = value
                    .pointer(&pointer)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("sas authentication without {field}"))?;
                SymmetricKey::from_base64(text).map_err(|_| format!("{field} is not a base64 key"))
            };
            Ok(ScopeAuth::Sas {
                primary: key("primaryKey")?,
                secondary: key("secondaryKey")?,
            })
        }
        "selfsigned" => {
            let thumbprint = |field: &str| {
                value
                    .pointer(&format!("/x509Thumbprint/{field}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_uppercase()
            };
            Ok(ScopeAuth::SelfSigned {
                primary_thumbprint: thumbprint("primaryThumbprint"),
                secondary_thumbprint: thumbprint("secondaryThumbprint"),
            })
        }
        "certificateauthority" => Ok(ScopeAuth::CertificateAuthority),
        "none" => Ok(ScopeAuth::None),
        other => Err(format!("unknown authentication type {other:?}")),
    }
}
