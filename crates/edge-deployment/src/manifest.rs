//! A whole deployment manifest, as `set-modules` applies it to a device.

use std::collections::BTreeMap;

use iothub_types::ModuleId;
use serde_json::{Map, Value};

use crate::agent::AgentDeployment;
use crate::error::{DeploymentError, Section};
use crate::hub::HubDeployment;
use crate::wire::DeploymentManifestWire;

const EDGE_AGENT_MODULE_ID: &str = "$edgeAgent";
const EDGE_HUB_MODULE_ID: &str = "$edgeHub";

/// A validated `{"modulesContent": …}` document.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentManifest {
    /// The validated `$edgeAgent` desired properties.
    pub edge_agent: AgentDeployment,
    /// The validated `$edgeHub` desired properties.
    pub edge_hub: HubDeployment,
    /// The desired properties to write into each module twin, exactly as given: `$edgeAgent`,
    /// `$edgeHub` and every other `modulesContent` entry.
    pub twin_desired_properties: BTreeMap<ModuleId, Map<String, Value>>,
}

impl DeploymentManifest {
    /// Parses and validates manifest JSON text.
    pub fn from_json(text: &str) -> Result<DeploymentManifest, DeploymentError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let wire: DeploymentManifestWire = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| DeploymentError::Malformed {
                section: Section::Manifest,
                path: crate::error::json_path(error.path()),
                message: error.inner().to_string(),
            })?;
        deserializer
            .end()
            .map_err(|error| DeploymentError::Malformed {
                section: Section::Manifest,
                path: String::new(),
                message: error.to_string(),
            })?;
        DeploymentManifest::from_wire(wire)
    }

    /// Validates an already parsed manifest.
    pub fn from_wire(wire: DeploymentManifestWire) -> Result<DeploymentManifest, DeploymentError> {
        let mut twin_desired_properties = BTreeMap::new();
        for (key, content) in wire.modules_content {
            let module_id =
                ModuleId::new(&key).map_err(|error| DeploymentError::InvalidModuleTwin {
                    key: key.clone(),
                    message: error.to_string(),
                })?;
            if module_id.is_system_module()
                && key != EDGE_AGENT_MODULE_ID
                && key != EDGE_HUB_MODULE_ID
            {
                return Err(DeploymentError::InvalidModuleTwin {
                    key,
                    message: "only $edgeAgent and $edgeHub may start with '$'".to_owned(),
                });
            }
            twin_desired_properties.insert(module_id, content.desired_properties);
        }
        let section_properties = |module_id: &str, section: Section| {
            twin_desired_properties
                .iter()
                .find(|(id, _)| id.as_str() == module_id)
                .map(|(_, desired)| desired)
                .ok_or(DeploymentError::MissingSection { section })
        };
        let edge_agent = AgentDeployment::from_desired_properties(section_properties(
            EDGE_AGENT_MODULE_ID,
            Section::EdgeAgent,
        )?)?;
        let edge_hub = HubDeployment::from_desired_properties(section_properties(
            EDGE_HUB_MODULE_ID,
            Section::EdgeHub,
        )?)?;
        Ok(DeploymentManifest {
            edge_agent,
            edge_hub,
            twin_desired_properties,
        })
    }
}
