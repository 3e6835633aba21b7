//! The JSON shapes of a deployment manifest, as Azure IoT Edge writes them.
//!
//! These types only describe the JSON; they accept values the domain refuses (unknown enum
//! strings, relative paths, bad images). Validation turns them into the domain types of this
//! crate. Enumerated values are kept as strings here so that a bad value can be reported with a
//! precise message instead of a generic "unknown variant".

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A whole deployment: `{"modulesContent": {"$edgeAgent": …, "$edgeHub": …, "<module>": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentManifestWire {
    pub modules_content: BTreeMap<String, ModuleContentWire>,
}

/// One `modulesContent` entry: the desired properties to write into that module's twin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleContentWire {
    #[serde(rename = "properties.desired")]
    pub desired_properties: Map<String, Value>,
}

/// The `$edgeAgent` desired properties, schema 1.0 and 1.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeAgentDesiredWire {
    #[serde(deserialize_with = "string_or_number")]
    pub schema_version: String,
    pub runtime: RuntimeWire,
    pub system_modules: SystemModulesWire,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, ModuleWire>,
}

/// `runtime`: which engine runs the modules and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeWire {
    #[serde(rename = "type")]
    pub runtime_type: String,
    #[serde(default)]
    pub settings: RuntimeSettingsWire,
}

/// `runtime.settings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSettingsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_docker_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging_options: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registry_credentials: BTreeMap<String, RegistryCredentialWire>,
}

/// One entry of `runtime.settings.registryCredentials`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryCredentialWire {
    pub username: String,
    pub password: String,
    pub address: String,
}

impl std::fmt::Debug for RegistryCredentialWire {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegistryCredentialWire")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("address", &self.address)
            .finish()
    }
}

/// `systemModules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemModulesWire {
    pub edge_agent: ModuleWire,
    pub edge_hub: ModuleWire,
}

/// A module under `modules` or `systemModules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleWire {
    /// A user string (or number); any change recreates the module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Value>,
    /// `docker`, or `process` (our extension).
    #[serde(rename = "type")]
    pub module_type: String,
    /// `running` or `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `never`, `on-failure`, `on-unhealthy` or `always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_order: Option<u32>,
    /// `on-create` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(default)]
    pub settings: ModuleSettingsWire,
    /// `{"NAME": {"value": "…"}}`; a `null` entry is ignored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Option<EnvValueWire>>,
}

/// A module's `settings`: the Docker fields, our process fields, and everything else (the
/// `createOptions` chunks and keys we do not know) in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleSettingsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Process modules: the absolute path of the executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Process modules: the arguments, without the executable itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Process modules: the absolute working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Process modules: the user name or numeric id to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `createOptions`, `createOptions01`…`createOptions07`, and unknown keys.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `{"value": …}` in a module's `env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvValueWire {
    pub value: Value,
}

/// The `$edgeHub` desired properties, schema 1.0 to 1.3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeHubDesiredWire {
    #[serde(deserialize_with = "string_or_number")]
    pub schema_version: String,
    #[serde(default)]
    pub routes: BTreeMap<String, Option<RouteWire>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_and_forward_configuration: Option<StoreAndForwardWire>,
    /// Schema 1.2 and later; kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_broker: Option<Value>,
    /// Schema 1.3 and later (signed manifests); kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Value>,
}

/// A route: a plain statement (all schemas) or, from schema 1.1, an object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RouteWire {
    Statement(String),
    Object(RouteObjectWire),
}

impl<'de> Deserialize<'de> for RouteWire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RouteWire, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(statement) => Ok(RouteWire::Statement(statement)),
            object @ Value::Object(_) => serde_json::from_value(object)
                .map(RouteWire::Object)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "a route must be a string or an object with route, priority and timeToLiveSecs",
            )),
        }
    }
}

/// `{"route": "FROM … INTO …", "priority": 0-9, "timeToLiveSecs": n, "overflow": "…"}`;
/// `overflow` (`dropOldest` or `refuseNew`) is Outpost's own addition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteObjectWire {
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<String>,
}

/// `storeAndForwardConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreAndForwardWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_limits: Option<StoreLimitsWire>,
}

/// `storeAndForwardConfiguration.storeLimits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreLimitsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size_bytes: Option<u64>,
}

/// Accepts `"1.1"` and also `1.1`, as Azure reads the token's text either way.
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        _ => Err(D::Error::custom(
            "schemaVersion must be a string such as \"1.1\"",
        )),
    }
}
