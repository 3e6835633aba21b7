//! Host names and the resource a SAS token grants: a whole hub, one device, or one module.

use std::fmt;
use std::hash::{Hash, Hasher};

use iothub_types::{DeviceId, IdError, Identity, ModuleId};

/// The longest host name accepted, in bytes (a DNS name is at most 253, plus room for `:port`).
pub const MAX_HOST_NAME_LENGTH: usize = 260;

/// The host name of an IoT hub (or of a gateway in front of it), as written in `HostName=` and in `sr`.
///
/// It may carry a `:port` and may be an IPv6 literal in brackets, since the service SDK puts
/// whatever `HostName` holds into `sr`. Allowed characters are ASCII letters, digits and `- . _ : [ ]`.
/// Equality and hashing ignore ASCII case, as DNS does; `Display` keeps the original spelling,
/// which is what gets signed.
#[derive(Clone)]
pub struct HostName(String);

/// Why a string is not a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostNameError {
    /// The host name is empty.
    #[error("host name must not be empty")]
    Empty,
    /// The host name is longer than [`MAX_HOST_NAME_LENGTH`].
    #[error("host name is {length} bytes long, the maximum is {MAX_HOST_NAME_LENGTH}")]
    TooLong {
        /// Length of the rejected host name in bytes.
        length: usize,
    },
    /// The host name holds a character outside ASCII letters, digits and `- . _ : [ ]`.
    #[error(
        "host name contains the character {character:?} at byte {position}, expected ASCII letters, digits or `-._:[]`"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset.
        position: usize,
    },
}

/// What a SAS token grants access to, decoded from its `sr` field.
///
/// A device or module token scopes one identity; a hub-wide token (usually signed with a shared access
/// policy key and carrying `skn`) scopes everything on the hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceScope {
    /// `{host}`: the whole hub.
    Hub {
        /// The hub host name.
        host: HostName,
    },
    /// `{host}/devices/{device_id}`: one device and everything below it.
    Device {
        /// The hub host name.
        host: HostName,
        /// The device.
        device_id: DeviceId,
    },
    /// `{host}/devices/{device_id}/modules/{module_id}`: one module.
    Module {
        /// The hub host name.
        host: HostName,
        /// The device the module belongs to.
        device_id: DeviceId,
        /// The module.
        module_id: ModuleId,
    },
}

/// Why a decoded `sr` names no IoT Hub resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceScopeError {
    /// The host part is not a host name.
    #[error("invalid host: {0}")]
    InvalidHost(#[source] HostNameError),
    /// The path after the host is not `/devices/{id}` or `/devices/{id}/modules/{id}`.
    #[error(
        "path after the host is `{path}`, expected `/devices/{{deviceId}}` or `/devices/{{deviceId}}/modules/{{moduleId}}`"
    )]
    UnexpectedPath {
        /// The path after the host, shortened when long.
        path: String,
    },
    /// The device segment is not a valid device id.
    #[error("invalid device id in resource: {0}")]
    InvalidDeviceId(#[source] IdError),
    /// The module segment is not a valid module id.
    #[error("invalid module id in resource: {0}")]
    InvalidModuleId(#[source] IdError),
}

// === impl HostName ===

impl HostName {
    /// Validates `candidate` and wraps it.
    pub fn new(candidate: &str) -> Result<Self, HostNameError> {
        if candidate.is_empty() {
            return Err(HostNameError::Empty);
        }
        if let Some((position, character)) = candidate
            .char_indices()
            .find(|(_, character)| !is_host_name_character(*character))
        {
            return Err(HostNameError::InvalidCharacter {
                character,
                position,
            });
        }
        if candidate.len() > MAX_HOST_NAME_LENGTH {
            return Err(HostNameError::TooLong {
                length: candidate.len(),
            });
        }
        Ok(HostName(candidate.to_owned()))
    }

    /// The host name as it was written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_host_name_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '-' | '.' | '_' | ':' | '[' | ']')
}

impl PartialEq for HostName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for HostName {}

impl Hash for HostName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for byte in self.0.bytes() {
            state.write_u8(byte.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::str::FromStr for HostName {
    type Err = HostNameError;

    fn from_str(candidate: &str) -> Result<Self, Self::Err> {
        HostName::new(candidate)
    }
}

// === impl ResourceScope ===

impl ResourceScope {
    /// The scope of a hub-wide (shared access policy) token.
    pub fn hub(host: HostName) -> Self {
        ResourceScope::Hub { host }
    }

    /// The scope of a device token.
    pub fn device(host: HostName, device_id: DeviceId) -> Self {
        ResourceScope::Device { host, device_id }
    }

    /// The scope of a module token.
    pub fn module(host: HostName, device_id: DeviceId, module_id: ModuleId) -> Self {
        ResourceScope::Module {
            host,
            device_id,
            module_id,
        }
    }

    /// The scope naming exactly `identity` (a device or a module) on `host`.
    pub fn for_identity(host: HostName, identity: &Identity) -> Self {
        match &identity.module {
            None => ResourceScope::device(host, identity.device.clone()),
            Some(module_id) => {
                ResourceScope::module(host, identity.device.clone(), module_id.clone())
            }
        }
    }

    /// Parses a decoded resource URI: `{host}`, `{host}/devices/{id}` or `{host}/devices/{id}/modules/{id}`.
    ///
    /// Neither ids nor host names may contain `/`, so splitting at `/` is unambiguous.
    pub fn parse_resource_uri(resource_uri: &str) -> Result<Self, ResourceScopeError> {
        let (host_text, path) = match resource_uri.split_once('/') {
            Some((host_text, rest)) => (host_text, Some(rest)),
            None => (resource_uri, None),
        };
        let host = HostName::new(host_text).map_err(ResourceScopeError::InvalidHost)?;
        let Some(path) = path else {
            return Ok(ResourceScope::Hub { host });
        };
        let unexpected_path = || ResourceScopeError::UnexpectedPath {
            path: crate::excerpt(&format!("/{path}")),
        };
        let segments: Vec<&str> = path.splitn(5, '/').collect();
        match segments.as_slice() {
            ["devices", device_text] => {
                let device_id =
                    DeviceId::new(device_text).map_err(ResourceScopeError::InvalidDeviceId)?;
                Ok(ResourceScope::Device { host, device_id })
            }
            ["devices", device_text, "modules", module_text] => {
                let device_id =
                    DeviceId::new(device_text).map_err(ResourceScopeError::InvalidDeviceId)?;
                let module_id =
                    ModuleId::new(module_text).map_err(ResourceScopeError::InvalidModuleId)?;
                Ok(ResourceScope::Module {
                    host,
                    device_id,
                    module_id,
                })
            }
            _ => Err(unexpected_path()),
        }
    }

    /// The decoded resource URI, without scheme: what the SDKs percent-encode into `sr`.
    pub fn resource_uri(&self) -> String {
        self.to_string()
    }

    /// The hub host name.
    pub fn host(&self) -> &HostName {
        match self {
            ResourceScope::Hub { host }
            | ResourceScope::Device { host, .. }
            | ResourceScope::Module { host, .. } => host,
        }
    }

    /// The device, for device and module scopes.
    pub fn device_id(&self) -> Option<&DeviceId> {
        match self {
            ResourceScope::Hub { .. } => None,
            ResourceScope::Device { device_id, .. } | ResourceScope::Module { device_id, .. } => {
                Some(device_id)
            }
        }
    }

    /// The module, for module scopes.
    pub fn module_id(&self) -> Option<&ModuleId> {
        match self {
            ResourceScope::Module { module_id, .. } => Some(module_id),
            ResourceScope::Hub { .. } | ResourceScope::Device { .. } => None,
        }
    }

    /// True when this scope grants access to `requested`.
    ///
    /// This is the segment-prefix rule: the scope's path segments must be a prefix of the requested
    /// resource's segments. The host is compared ignoring ASCII case; device and module ids are
    /// case-sensitive. So a hub scope covers everything on its hub, a device scope covers the device
    /// and its modules, and a module scope covers only that module.
    pub fn covers(&self, requested: &ResourceScope) -> bool {
        if self.host() != requested.host() {
            return false;
        }
        match self {
            ResourceScope::Hub { .. } => true,
            ResourceScope::Device { device_id, .. } => requested.device_id() == Some(device_id),
            ResourceScope::Module {
                device_id,
                module_id,
                ..
            } => {
                requested.device_id() == Some(device_id) && requested.module_id() == Some(module_id)
            }
        }
    }

    /// True when this scope grants access to `identity` on the hub `host`.
    pub fn covers_identity(&self, host: &HostName, identity: &Identity) -> bool {
        self.covers(&ResourceScope::for_identity(host.clone(), identity))
    }
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceScope::Hub { host } => write!(formatter, "{host}"),
            ResourceScope::Device { host, device_id } => {
                write!(formatter, "{host}/devices/{device_id}")
            }
            ResourceScope::Module {
                host,
                device_id,
                module_id,
            } => {
                write!(formatter, "{host}/devices/{device_id}/modules/{module_id}")
            }
        }
    }
}
