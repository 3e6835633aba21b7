//! The `$edgeAgent` desired properties: what the edge agent must run.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{DeploymentError, Section};
use crate::module::ModuleSpec;
use crate::names::ModuleName;
use crate::schema::SchemaVersion;
use crate::wire::{
    EdgeAgentDesiredWire, RegistryCredentialWire, RuntimeSettingsWire, RuntimeWire,
    SystemModulesWire,
};

/// The highest `$edgeAgent` schema version understood (with major 1).
const HIGHEST_AGENT_SCHEMA: SchemaVersion = SchemaVersion::new(1, 1);

/// `runtime.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    Docker,
    /// Our extension: `runtime.settings` describe the native process runtime.
    Process,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Process => "process",
        }
    }
}

/// One private registry login from `runtime.settings.registryCredentials`.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    pub username: String,
    pub password: String,
    /// The registry host, e.g. `myregistry.azurecr.io`.
    pub address: String,
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RegistryCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("address", &self.address)
            .finish()
    }
}

/// `runtime`: the engine and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    pub kind: RuntimeKind,
    /// Informational, e.g. `v1.25`.
    pub min_docker_version: Option<String>,
    /// Stringified Docker log configuration for the agent.
    pub logging_options: Option<String>,
    /// Keyed by the name the manifest gives each login.
    pub registry_credentials: BTreeMap<String, RegistryCredential>,
}

/// The validated `$edgeAgent` desired properties.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDeployment {
    pub schema_version: SchemaVersion,
    pub runtime: RuntimeSettings,
    /// `systemModules.edgeAgent`; echoed in reports, never planned (the agent does not
    /// recreate itself).
    pub edge_agent: ModuleSpec,
    /// `systemModules.edgeHub`.
    pub edge_hub: ModuleSpec,
    /// `modules`, keyed by name.
    pub modules: BTreeMap<ModuleName, ModuleSpec>,
}

impl AgentDeployment {
    /// Validates the `$edgeAgent` desired properties as found in the twin (`$version` and
    /// `$metadata` are ignored).
    ///
    /// Refusals: 417 when there are no properties, 412 when `schemaVersion` is missing or is not
    /// 1.x up to 1.1.0, 400 for everything else.
    pub fn from_desired_properties(
        desired: &Map<String, Value>,
    ) -> Result<AgentDeployment, DeploymentError> {
        if desired.keys().all(|key| key.starts_with('$')) {
            return Err(DeploymentError::Empty {
                section: Section::EdgeAgent,
            });
        }
        let schema_version =
            check_schema_version(desired, Section::EdgeAgent, "1.0 and 1.1", |version| {
                version.major() == 1 && version <= HIGHEST_AGENT_SCHEMA
            })?;
        let wire: EdgeAgentDesiredWire = deserialize_section(desired, Section::EdgeAgent)?;
        AgentDeployment::from_wire(schema_version, &wire)
    }

    /// Parses JSON text holding the `$edgeAgent` desired properties object.
    pub fn from_json(text: &str) -> Result<AgentDeployment, DeploymentError> {
        AgentDeployment::from_desired_properties(&parse_object(text, Section::EdgeAgent)?)
    }

    fn from_wire(
        schema_version: SchemaVersion,
        wire: &EdgeAgentDesiredWire,
    ) -> Result<AgentDeployment, DeploymentError> {
        let kind = if wire.runtime.runtime_type.eq_ignore_ascii_case("docker") {
            RuntimeKind::Docker
        } else if wire.runtime.runtime_type.eq_ignore_ascii_case("process") {
            RuntimeKind::Process
        } else {
            return Err(DeploymentError::UnknownRuntimeType {
                found: wire.runtime.runtime_type.clone(),
            });
        };
        let runtime = RuntimeSettings {
            kind,
            min_docker_version: wire.runtime.settings.min_docker_version.clone(),
            logging_options: wire.runtime.settings.logging_options.clone(),
            registry_credentials: wire
                .runtime
                .settings
                .registry_credentials
                .iter()
                .map(|(name, credential)| {
                    (
                        name.clone(),
                        RegistryCredential {
                            username: credential.username.clone(),
                            password: credential.password.clone(),
                            address: credential.address.clone(),
                        },
                    )
                })
                .collect(),
        };
        let edge_agent = ModuleSpec::from_wire(
            ModuleName::edge_agent(),
            &wire.system_modules.edge_agent,
            "systemModules.edgeAgent",
        )?;
        let edge_hub = ModuleSpec::from_wire(
            ModuleName::edge_hub(),
            &wire.system_modules.edge_hub,
            "systemModules.edgeHub",
        )?;
        let mut modules = BTreeMap::new();
        for (key, module) in &wire.modules {
            let name =
                ModuleName::new(key).map_err(|problem| DeploymentError::InvalidModuleName {
                    section: Section::EdgeAgent,
                    path: "modules".to_owned(),
                    name: key.clone(),
                    problem,
                })?;
            if name.is_system_module() {
                return Err(DeploymentError::ReservedModuleName { name: key.clone() });
            }
            let spec = ModuleSpec::from_wire(name.clone(), module, &format!("modules.{key}"))?;
            modules.insert(name, spec);
        }
        Ok(AgentDeployment {
            schema_version,
            runtime,
            edge_agent,
            edge_hub,
            modules,
        })
    }

    /// The modules the agent supervises: `edgeHub` first, then `modules` by name. `edgeAgent`
    /// is not among them.
    pub fn supervised_modules(&self) -> impl Iterator<Item = &ModuleSpec> {
        std::iter::once(&self.edge_hub).chain(self.modules.values())
    }

    /// Any module of the deployment by name, the system modules included.
    pub fn module(&self, name: &ModuleName) -> Option<&ModuleSpec> {
        if *name == self.edge_agent.name {
            Some(&self.edge_agent)
        } else if *name == self.edge_hub.name {
            Some(&self.edge_hub)
        } else {
            self.modules.get(name)
        }
    }

    /// The deployment as `$edgeAgent` desired properties JSON, defaults written out.
    pub fn to_wire(&self) -> EdgeAgentDesiredWire {
        EdgeAgentDesiredWire {
            schema_version: self.schema_version.to_string(),
            runtime: RuntimeWire {
                runtime_type: self.runtime.kind.as_str().to_owned(),
                settings: RuntimeSettingsWire {
                    min_docker_version: self.runtime.min_docker_version.clone(),
                    logging_options: self.runtime.logging_options.clone(),
                    registry_credentials: self
                        .runtime
                        .registry_credentials
                        .iter()
                        .map(|(name, credential)| {
                            (
                                name.clone(),
                                RegistryCredentialWire {
                                    username: credential.username.clone(),
                                    password: credential.password.clone(),
                                    address: credential.address.clone(),
                                },
                            )
                        })
                        .collect(),
                },
            },
            system_modules: SystemModulesWire {
                edge_agent: self.edge_agent.to_wire(),
                edge_hub: self.edge_hub.to_wire(),
            },
            modules: self
                .modules
                .iter()
                .map(|(name, spec)| (name.as_str().to_owned(), spec.to_wire()))
                .collect(),
        }
    }
}

/// Reads `schemaVersion` before anything else so that a wrong version is reported as such
/// (412) rather than as whatever field the newer schema added.
pub(crate) fn check_schema_version(
    desired: &Map<String, Value>,
    section: Section,
    supported: &'static str,
    is_supported: impl Fn(SchemaVersion) -> bool,
) -> Result<SchemaVersion, DeploymentError> {
    let text = match desired.get("schemaVersion") {
        None | Some(Value::Null) => {
            return Err(DeploymentError::MissingSchemaVersion { section });
        }
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => {
            return Err(DeploymentError::Malformed {
                section,
                path: "schemaVersion".to_owned(),
                message: "schemaVersion must be a string such as \"1.1\"".to_owned(),
            });
        }
    };
    match SchemaVersion::parse(&text) {
        Ok(version) if is_supported(version) => Ok(version),
        _ => Err(DeploymentError::UnsupportedSchemaVersion {
            section,
            found: text,
            supported,
        }),
    }
}

/// Deserializes a desired-properties object into its wire type, naming the JSON path of the
/// first offending value in the error.
pub(crate) fn deserialize_section<T: serde::de::DeserializeOwned>(
    desired: &Map<String, Value>,
    section: Section,
) -> Result<T, DeploymentError> {
    let value = Value::Object(desired.clone());
    serde_path_to_error::deserialize(value).map_err(|error| DeploymentError::Malformed {
        section,
        path: crate::error::json_path(error.path()),
        message: error.inner().to_string(),
    })
}

/// Parses JSON text that must hold an object.
pub(crate) fn parse_object(
    text: &str,
    section: Section,
) -> Result<Map<String, Value>, DeploymentError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(DeploymentError::Malformed {
            section,
            path: String::new(),
            message: "the desired properties must be a JSON object".to_owned(),
        }),
        Err(error) => Err(DeploymentError::Malformed {
            section,
            path: String::new(),
            message: error.to_string(),
        }),
    }
}
