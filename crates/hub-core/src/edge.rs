//! IoT Edge support in the hub: applying a deployment's module twin content to an edge device
//! (`applyConfigurationContent`), the device-scoped registry access an edge runtime uses with
//! its own device key, so that it never needs a shared access policy, and the edge device's
//! identity scope (`devicesAndModulesInDeviceScope`) its edge hub caches to authenticate modules
//! and child devices offline.

use base64::Engine;
use iothub_auth::{ResourceScope, SasToken};
use iothub_types::{DeviceId, Identity, ModuleId};
use serde_json::{Map, Value};
use twin::IdentityStatus;

use crate::auth::{same_host, verify_with_keys};
use crate::error::HubError;
use crate::hub::Hub;
use crate::model::{Authentication, IdentityRecord};
use crate::registry::{IdentitySpec, IdentityView};
use crate::storage::{IdentityKey, IdentityScope};
use crate::twins::TwinWriteMode;

/// The page size of the device scope listing when the caller gives no `deviceCount`.
pub const DEFAULT_DEVICE_SCOPE_PAGE_SIZE: usize = 100;
/// The largest `deviceCount` honoured; larger requests are served this many devices.
pub const MAX_DEVICE_SCOPE_PAGE_SIZE: usize = 1000;
/// The module an edge device's scope is requested for (Azure's path names the calling module).
pub const EDGE_HUB_MODULE: &str = "$edgeHub";
/// How many devices one registry read scans while looking for the devices of a scope.
const SCOPE_SCAN_BATCH: usize = 500;
/// How many modules one registry read returns while listing a device's modules.
const MODULE_LIST_BATCH: usize = 1000;

/// One page of an edge device's identity scope.
#[derive(Debug, Clone)]
pub struct DeviceScopePage {
    /// The devices of this page, by device id: the edge device itself and every device whose
    /// `parentScopes` holds the edge device's `deviceScope`.
    pub devices: Vec<IdentityView>,
    /// Every module of the devices of this page.
    pub modules: Vec<IdentityView>,
    /// Where the next page starts (opaque), or `None` on the last page.
    pub continuation_token: Option<String>,
}

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
        let record = self
            .verify_own_key_token(&token, host, &Identity::device(device_id.clone()))
            .await?;
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

    /// Checks a caller of the device scope of `edge_device`: a SAS token of the edge device itself
    /// (see [`Hub::authorize_edge_device`]) or of its `$edgeHub` module, signed with that
    /// module's key. Returns the identity the token speaks for.
    ///
    /// Bad, expired, foreign-host or policy tokens are [`HubError::Unauthorized`] (401); a valid
    /// token of any other identity, or of a device that is not an IoT Edge device, is
    /// [`HubError::Forbidden`] (403).
    pub async fn authorize_device_scope_caller(
        &self,
        authorization: Option<&str>,
        edge_device: &DeviceId,
    ) -> Result<Identity, HubError> {
        let token = authorization
            .and_then(|header| SasToken::parse(header.trim()).ok())
            .ok_or_else(|| {
                HubError::Unauthorized(
                    "the device scope needs a SAS token of the edge device or its $edgeHub module"
                        .to_owned(),
                )
            })?;
        let forbidden = |caller: &dyn std::fmt::Display| {
            HubError::Forbidden(format!(
                "{caller} may not read the device scope of {edge_device}; only {edge_device} and \
                 {edge_device}/$edgeHub may"
            ))
        };
        match token.scope() {
            ResourceScope::Device { .. } if token.key_name().is_none() => {
                let device = self.authorize_edge_device(authorization).await?;
                if &device != edge_device {
                    return Err(forbidden(&device));
                }
                Ok(Identity::device(device))
            }
            ResourceScope::Module {
                host,
                device_id,
                module_id,
            } if token.key_name().is_none() => {
                let identity = Identity::module(device_id.clone(), module_id.clone());
                self.verify_own_key_token(&token, host, &identity).await?;
                if device_id != edge_device || module_id.as_str() != EDGE_HUB_MODULE {
                    return Err(forbidden(&identity));
                }
                let device = self
                    .store
                    .get_identity(device_id, None)
                    .await?
                    .ok_or_else(|| {
                        HubError::Unauthorized(format!("device {device_id} is not registered"))
                    })?;
                if device.record.status != IdentityStatus::Enabled {
                    return Err(HubError::Unauthorized(format!(
                        "device {device_id} is disabled"
                    )));
                }
                if !device.record.iot_edge {
                    return Err(HubError::Forbidden(format!(
                        "device {device_id} is not an IoT Edge device"
                    )));
                }
                Ok(identity)
            }
            _ => Err(HubError::Unauthorized(
                "the device scope needs a token scoped to the edge device or its $edgeHub \
                 module, without skn"
                    .to_owned(),
            )),
        }
    }

    /// Checks that `token` (for `host`) is signed with one of `identity`'s own symmetric keys
    /// and unexpired, and returns the identity's record. Every refusal is
    /// [`HubError::Unauthorized`].
    async fn verify_own_key_token(
        &self,
        token: &SasToken,
        host: &iothub_auth::HostName,
        identity: &Identity,
    ) -> Result<IdentityRecord, HubError> {
        if !same_host(host.as_str(), self.host_name.as_str()) {
            return Err(HubError::Unauthorized(format!(
                "the token is for host {host}, this hub is {}",
                self.host_name
            )));
        }
        let kind = if identity.is_module() {
            "module"
        } else {
            "device"
        };
        let record = self
            .store
            .get_identity(&identity.device, identity.module.as_ref())
            .await?
            .ok_or_else(|| HubError::Unauthorized(format!("{kind} {identity} is not registered")))?
            .record;
        let Authentication::Sas {
            primary_key,
            secondary_key,
        } = &record.authentication
        else {
            return Err(HubError::Unauthorized(format!(
                "{kind} {identity} does not use symmetric key authentication"
            )));
        };
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        verify_with_keys(token, [primary_key, secondary_key], now)
            .map_err(|reason| HubError::Unauthorized(format!("the token was refused: {reason}")))?;
        Ok(record)
    }

    /// One page of the identity scope of IoT Edge device `edge_device`, as its edge hub syncs
    /// it: the edge device itself, every device whose `parentScopes` contains the edge device's
    /// `deviceScope` (so a device whose parent is another edge device is not included), and the
    /// modules of those devices, with their credentials. Devices come in device id order, at most
    /// `device_count` (clamped to 1..=[`MAX_DEVICE_SCOPE_PAGE_SIZE`]) per page;
    /// `continuation_token` is the token of the previous page.
    ///
    /// The caller must have been checked with [`Hub::authorize_device_scope_caller`]. A device
    /// that is not an IoT Edge device is [`HubError::Forbidden`]; a token that is not one this
    /// method issued is [`HubError::InvalidArgument`].
    pub async fn device_scope_page(
        &self,
        edge_device: &DeviceId,
        device_count: usize,
        continuation_token: Option<&str>,
    ) -> Result<DeviceScopePage, HubError> {
        let device_count = device_count.clamp(1, MAX_DEVICE_SCOPE_PAGE_SIZE);
        let edge = self
            .store
            .get_identity(edge_device, None)
            .await?
            .ok_or_else(|| HubError::DeviceNotFound {
                device_id: edge_device.to_string(),
            })?;
        if !edge.record.iot_edge {
            return Err(HubError::Forbidden(format!(
                "device {edge_device} is not an IoT Edge device and has no device scope"
            )));
        }
        let scope = edge.record.device_scope.clone();
        let in_scope = |record: &IdentityRecord| {
            &record.device_id == edge_device
                || scope
                    .as_ref()
                    .is_some_and(|scope| record.parent_scopes.contains(scope))
        };
        let mut scan_after = continuation_token
            .map(|token| {
                decode_scope_token(token).map(|device_id| IdentityKey {
                    device_id,
                    module_id: String::new(),
                })
            })
            .transpose()?;
        // One device more than the page holds tells whether another page follows.
        let mut found = Vec::with_capacity(device_count + 1);
        'scan: loop {
            let batch = self
                .store
                .list_identities(
                    IdentityScope::Devices,
                    scan_after.as_ref(),
                    SCOPE_SCAN_BATCH,
                )
                .await?;
            let exhausted = batch.len() < SCOPE_SCAN_BATCH;
            for stored in batch {
                scan_after = Some(IdentityKey {
                    device_id: stored.record.device_id.to_string(),
                    module_id: String::new(),
                });
                if in_scope(&stored.record) {
                    found.push(stored);
                    if found.len() > device_count {
                        break 'scan;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        let continuation_token = if found.len() > device_count {
            found.truncate(device_count);
            found
                .last()
                .map(|last| encode_scope_token(last.record.device_id.as_str()))
        } else {
            None
        };
        let mut devices = Vec::with_capacity(found.len());
        let mut modules = Vec::new();
        for stored in found {
            let device_id = stored.record.device_id.clone();
            devices.push(self.view(stored).await?);
            let mut after = None;
            loop {
                let batch = self
                    .store
                    .list_identities(
                        IdentityScope::ModulesOf(&device_id),
                        after.as_ref(),
                        MODULE_LIST_BATCH,
                    )
                    .await?;
                let exhausted = batch.len() < MODULE_LIST_BATCH;
                for module in batch {
                    after = Some(IdentityKey {
                        device_id: device_id.to_string(),
                        module_id: module
                            .record
                            .module_id
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                    });
                    modules.push(self.view(module).await?);
                }
                if exhausted {
                    break;
                }
            }
        }
        Ok(DeviceScopePage {
            devices,
            modules,
            continuation_token,
        })
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

/// The continuation token after `device_id`: URL-safe base64 so it needs no quoting in a query.
fn encode_scope_token(device_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(device_id)
}

fn decode_scope_token(token: &str) -> Result<String, HubError> {
    let invalid = || HubError::InvalidArgument(format!("invalid continuationToken {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let device_id = String::from_utf8(bytes).map_err(|_| invalid())?;
    DeviceId::new(&device_id).map_err(|_| invalid())?;
    Ok(device_id)
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
