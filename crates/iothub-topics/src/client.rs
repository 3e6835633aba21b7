//! Topics a device or module client publishes to the hub.

use std::fmt;

use iothub_types::{DeviceId, Identity, Message, ModuleId};

use crate::bag::{BagDirection, MessageProperties};
use crate::error::{AuthorizationError, ParseForError, TopicError};
use crate::query::{bag_after, parse_query, split_path_and_query};

/// Every topic the device SDKs publish, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientPublish {
    /// `devices/{d}/messages/events/{bag}` or `devices/{d}/modules/{m}/messages/events/{bag}`. A module
    /// output is module telemetry whose bag carries `$.on` (in `properties.system.output_name`).
    Telemetry {
        device: DeviceId,
        module: Option<ModuleId>,
        properties: Box<MessageProperties>,
    },
    /// `$iothub/twin/GET/?$rid={rid}`.
    TwinGet { rid: String },
    /// `$iothub/twin/PATCH/properties/reported/?$rid={rid}[&$version={v}]`; the optional version is an
    /// optimistic-concurrency precondition some SDKs send.
    TwinPatchReported { rid: String, version: Option<u64> },
    /// `$iothub/methods/res/{status}/?$rid={rid}`; the status is whatever integer the device app chose.
    MethodResponse { status: i32, rid: String },
}

impl ClientPublish {
    /// Parses a topic a client published. Anything that is not one of the client-to-hub shapes is
    /// [`TopicError::UnknownTopic`].
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let unknown = || TopicError::UnknownTopic {
            topic: topic.to_owned(),
        };
        if let Some(rest) = topic.strip_prefix("devices/") {
            let (raw_device, rest) = rest.split_once('/').ok_or_else(unknown)?;
            let (module, rest) = match rest.strip_prefix("modules/") {
                Some(rest) => {
                    let (raw_module, rest) = rest.split_once('/').ok_or_else(unknown)?;
                    (Some(raw_module), rest)
                }
                None => (None, rest),
            };
            let raw_bag = rest
                .strip_prefix("messages/events")
                .and_then(bag_after)
                .ok_or_else(unknown)?;
            let device = DeviceId::new(raw_device).map_err(TopicError::InvalidDeviceId)?;
            let module = module
                .map(ModuleId::new)
                .transpose()
                .map_err(TopicError::InvalidModuleId)?;
            let properties = Box::new(MessageProperties::parse(
                raw_bag,
                BagDirection::DeviceToCloud,
            )?);
            return Ok(ClientPublish::Telemetry {
                device,
                module,
                properties,
            });
        }

        let (path, query) = split_path_and_query(topic);
        let query = parse_query(query);
        let request_id = || {
            query
                .request_id
                .map(str::to_owned)
                .ok_or_else(|| TopicError::MissingRequestId {
                    topic: topic.to_owned(),
                })
        };
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["$iothub", "twin", "GET"] => Ok(ClientPublish::TwinGet { rid: request_id()? }),
            ["$iothub", "twin", "PATCH", "properties", "reported"] => {
                let version = query.version.map(parse_version).transpose()?;
                Ok(ClientPublish::TwinPatchReported {
                    rid: request_id()?,
                    version,
                })
            }
            ["$iothub", "methods", "res", status] => {
                let status = status
                    .parse::<i32>()
                    .map_err(|_| TopicError::InvalidStatus {
                        value: (*status).to_owned(),
                    })?;
                Ok(ClientPublish::MethodResponse {
                    status,
                    rid: request_id()?,
                })
            }
            _ => Err(unknown()),
        }
    }

    /// Parses `topic` and checks that it belongs to `connected`, for the MQTT front end's PUBLISH path.
    pub fn parse_for(connected: &Identity, topic: &str) -> Result<Self, ParseForError> {
        let publish = ClientPublish::parse(topic)?;
        publish.authorize(connected)?;
        Ok(publish)
    }

    /// The telemetry topic `identity` publishes `message` on (module outputs set `system.output_name`).
    pub fn telemetry(identity: &Identity, message: &Message) -> Self {
        ClientPublish::Telemetry {
            device: identity.device.clone(),
            module: identity.module.clone(),
            properties: Box::new(MessageProperties::from_message(message)),
        }
    }

    /// Decides whether a client connected as `connected` may publish this topic. Twin and method topics
    /// carry no identity and always address the connection's own twin; telemetry must name exactly the
    /// connected device, and the connected module for module connections.
    pub fn authorize(&self, connected: &Identity) -> Result<(), AuthorizationError> {
        match self {
            ClientPublish::Telemetry { device, module, .. } => {
                authorize_identity_topic(connected, device, module.as_ref())
            }
            ClientPublish::TwinGet { .. }
            | ClientPublish::TwinPatchReported { .. }
            | ClientPublish::MethodResponse { .. } => Ok(()),
        }
    }

    /// The exact wire topic.
    pub fn to_topic(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ClientPublish {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientPublish::Telemetry {
                device,
                module: None,
                properties,
            } => write!(
                formatter,
                "devices/{device}/messages/events/{}",
                properties.format(BagDirection::DeviceToCloud)
            ),
            ClientPublish::Telemetry {
                device,
                module: Some(module),
                properties,
            } => write!(
                formatter,
                "devices/{device}/modules/{module}/messages/events/{}",
                properties.format(BagDirection::DeviceToCloud)
            ),
            ClientPublish::TwinGet { rid } => write!(formatter, "$iothub/twin/GET/?$rid={rid}"),
            ClientPublish::TwinPatchReported { rid, version: None } => {
                write!(
                    formatter,
                    "$iothub/twin/PATCH/properties/reported/?$rid={rid}"
                )
            }
            ClientPublish::TwinPatchReported {
                rid,
                version: Some(version),
            } => write!(
                formatter,
                "$iothub/twin/PATCH/properties/reported/?$rid={rid}&$version={version}"
            ),
            ClientPublish::MethodResponse { status, rid } => {
                write!(formatter, "$iothub/methods/res/{status}/?$rid={rid}")
            }
        }
    }
}

pub(crate) fn parse_version(value: &str) -> Result<u64, TopicError> {
    value
        .parse::<u64>()
        .map_err(|_| TopicError::InvalidVersion {
            value: value.to_owned(),
        })
}

/// A topic naming `device` (and `module` for module topics) belongs to `connected` only when both match:
/// devices may not use module topics, and modules may not use device topics.
pub(crate) fn authorize_identity_topic(
    connected: &Identity,
    device: &DeviceId,
    module: Option<&ModuleId>,
) -> Result<(), AuthorizationError> {
    if device != &connected.device {
        return Err(AuthorizationError::ForeignDevice {
            connected: connected.clone(),
            topic_device: device.to_string(),
        });
    }
    match (connected.module.as_ref(), module) {
        (None, None) => Ok(()),
        (Some(connected_module), Some(module)) if connected_module == module => Ok(()),
        (Some(_), Some(module)) => Err(AuthorizationError::ForeignModule {
            connected: connected.clone(),
            topic_module: module.to_string(),
        }),
        (None, Some(module)) => Err(AuthorizationError::ModuleTopicOnDeviceConnection {
            connected: connected.clone(),
            topic_module: module.to_string(),
        }),
        (Some(_), None) => Err(AuthorizationError::DeviceTopicOnModuleConnection {
            connected: connected.clone(),
        }),
    }
}
