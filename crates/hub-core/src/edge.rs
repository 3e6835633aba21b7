//! IoT Edge support in the hub: applying a deployment's module twin content to an edge device
//! (`applyConfigurationContent`), and the device-scoped registry access an edge runtime uses with
//! its own device key, so that it never needs a shared access policy.

use iothub_auth::{ResourceScope, SasToken};
use iothub_types::{DeviceId, Identity, ModuleId};
use serde_json::{Map, Value};
use twin::IdentityStatus;

use crate::auth::{same_host, verify_with_keys};
use crate::error::HubError;
use crate::hub::Hub;
use crate::model::Authentication;
use crate::registry::IdentitySpec;
use crate::twins::TwinWriteMode;

/// The `managedBy` value of module identities created for a deployment, as Azure's edge agent
/// writes it.
pub const EDGE_MANAGED_BY: &str = "IotEdge";

/// The key of a module's desired properties inside `modulesContent.<module>`.
const DESIRED_PROPERTIES_KEY: &str = "properties.desired";

impl Hub {
    /// Checks a request signed by an IoT Edge device with its own key: a `SharedAccessSignature`
    /// without `skn` whose resource is `{host}/devices/{deviceId}`, signed with one of that
    /// device's symmetric keys and unexpired, for an enabled device with `capabilities.iotEdge`.
    /// Returns the device the token speaks for; the caller decides what that device may do.
    ///
    /// Bad, expired or foreign tokens are [`HubError::Unauthorized`] (401); a valid token of a
    /// device that is not an IoT Edge device is [`HubError::Forbidden`] (403).
    pub async fn authorize_edge_device(
        &self,
        authorization: Option<&str>,
    ) -> Result<DeviceId, HubError> {
        let header = authorization.ok_or_else(|| {
            HubError::Unauthorized("the request has no Authorization header".to_owned())
        })?;
        let token = SasToken::parse(header.trim()).map_err(|error| {
            HubError::Unauthorized(format!(
                "the Authorization header is not a SAS token: {error}"
            ))
        })?;
        if token.key_name().is_some() {
            return Err(HubError::Unauthorized(
                "a device-scoped token must not name a shared access policy (skn)".to_owned(),
            ));
        }
        let ResourceScope::Device { host, device_id } = token.scope() else {
            return Err(HubError::Unauthorized(
                "a device-scoped token must be scoped to {host}/devices/{deviceId}".to_owned(),
            ));
        };
        if !same_host(host.as_str(), self.host_name.as_str()) {
            return Err(HubError::Unauthorized(format!(
                "the token is for host {host}, this hub is {}",
                self.host_name
            )));
        }
        let stored = self
            .store
            .get_identity(device_id, None)
            .await?
            .ok_or_else(|| {
                HubError::Unauthorized(format!("device {device_id} is not registered"))
            })?;
        let record = stored.record;
        let Authentication::Sas {
            primary_key,
            secondary_key,
        } = &record.authentication
        else {
            return Err(HubError::Unauthorized(format!(
                "device {device_id} does not use symmetric key authentication"
            )));
        };
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        verify_with_keys(&token, [primary_key, secondary_key], now)
            .map_err(|reason| HubError::Unauthorized(format!("the token was refused: {reason}")))?;
        if record.status != IdentityStatus::Enabled {
            return Err(HubError::Unauthorized(format!(
                "device {device_id} is disabled"
            )));
        }
        if !record.iot_edge {
            return Err(HubError::Forbidden(format!(
                "device {device_id} is not an IoT Edge device; only edge devices may use their own \
                 key for registry calls"
            )));
        }
        Ok(device_id.clone())
    }

    /// `POST /devices/{id}/applyConfigurationContent`: writes a deployment manifest's module
    /// twin content to an IoT Edge device, as `az iot edge set-modules` does.
    ///
    /// `content` is `{"modulesContent": {"<module>": {"properties.desired": {...}}, ...}}`. Every
    /// module given desired properties gets them as its whole desired section (replaced, not
    /// merged); a module without `properties.desired` keeps its twin. Module identities that do
    /// not exist yet are created first (SAS keys, `managedBy` [`EDGE_MANAGED_BY`]) for every
    /// `modulesContent` entry and every module named under the `$edgeAgent` desired `modules`.
    /// Everything is checked before anything is written.
    pub async fn apply_configuration_content(
        &self,
        device_id: &DeviceId,
        content: &Value,
    ) -> Result<(), HubError> {
        let device = self
            .store
            .get_identity(device_id, None)
            .await?
            .ok_or_else(|| HubError::DeviceNotFound {
                device_id: device_id.to_string(),
            })?;
        if !device.record.iot_edge {
            return Err(HubError::InvalidArgument(format!(
                "device {device_id} is not an IoT Edge device"
            )));
        }
        let plan = ConfigurationContent::parse(content)?;
        for module_id in &plan.modules {
            let identity = Identity::module(device_id.clone(), module_id.clone());
            match self.get_identity(&identity).await {
                Ok(_) => {}
                Err(HubError::ModuleNotFound { .. }) => {
                    let spec = IdentitySpec {
                        managed_by: Some(EDGE_MANAGED_BY.to_owned()),
                        ..IdentitySpec::default()
                    };
                    match self.put_identity(&identity, spec, None).await {
                        Ok(_) | Err(HubError::ModuleAlreadyExists { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            }
        }
        for (module_id, desired) in plan.desired {
            let identity = Identity::module(device_id.clone(), module_id);
            self.write_desired(&identity, desired, TwinWriteMode::Replace)
                .await?;
        }
        Ok(())
    }
}

/// A checked `applyConfigurationContent` body.
struct ConfigurationContent {
    /// Every module whose identity must exist, without repeats.
    modules: Vec<ModuleId>,
    /// The desired properties to write, by module.
    desired: Vec<(ModuleId, Map<String, Value>)>,
}

impl ConfigurationContent {
    fn parse(content: &Value) -> Result<ConfigurationContent, HubError> {
        let invalid = |message: String| HubError::InvalidArgument(message);
        let modules_content = content
            .get("modulesContent")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("the body must hold a modulesContent object".to_owned()))?;
        let mut modules: Vec<ModuleId> = Vec::new();
        let mut desired = Vec::new();
        fn add_module(modules: &mut Vec<ModuleId>, module_id: ModuleId) {
            if !modules.contains(&module_id) {
                modules.push(module_id);
            }
        }
        for (key, entry) in modules_content {
            let module_id = module_id(key)?;
            let entry = entry
                .as_object()
                .ok_or_else(|| invalid(format!("modulesContent.{key} must be a JSON object")))?;
            match entry.get(DESIRED_PROPERTIES_KEY) {
                None => {}
                Some(Value::Object(properties)) => {
                    if key == "$edgeAgent"
                        && let Some(Value::Object(agent_modules)) = properties.get("modules")
                    {
                        for name in agent_modules.keys() {
                            add_module(&mut modules, self::module_id(name)?);
                        }
                    }
                    desired.push((module_id.clone(), properties.clone()));
                }
                Some(_) => {
                    return Err(invalid(format!(
                        "modulesContent.{key}.{DESIRED_PROPERTIES_KEY} must be a JSON object"
                    )));
                }
            }
            add_module(&mut modules, module_id);
        }
        Ok(ConfigurationContent { modules, desired })
    }
}

fn module_id(text: &str) -> Result<ModuleId, HubError> {
    let module_id = ModuleId::new(text).map_err(|error| {
        HubError::InvalidArgument(format!("invalid module id {text:?}: {error}"))
    })?;
    if module_id.is_system_module() && text != "$edgeAgent" && text != "$edgeHub" {
        return Err(HubError::InvalidArgument(format!(
            "module id {text:?}: only $edgeAgent and $edgeHub may start with '$'"
        )));
    }
    Ok(module_id)
}
