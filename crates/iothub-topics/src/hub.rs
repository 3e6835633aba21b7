//! Topics the hub publishes to a device or module client.

use std::fmt;

use iothub_types::{DeviceId, Message, ModuleId};

use crate::bag::{BagDirection, MessageProperties, encode_segment, percent_decode_utf8};
use crate::client::parse_version;
use crate::error::TopicError;
use crate::query::{bag_after, parse_query, split_path_and_query};

/// Every topic the hub sends to clients, parsed. The edge hub's upstream client parses these too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HubPublish {
    /// `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]`; the version is the new reported version
    /// after a successful reported PATCH.
    TwinResponse {
        status: u16,
        rid: String,
        version: Option<u64>,
    },
    /// `$iothub/twin/PATCH/properties/desired/?$version={N}`.
    DesiredPropertiesPatch { version: u64 },
    /// `$iothub/methods/POST/{name}/?$rid={rid}`; the name is percent-encoded on the wire.
    MethodRequest { method_name: String, rid: String },
    /// `devices/{d}/messages/devicebound/{bag}`.
    CloudToDevice {
        device: DeviceId,
        properties: Box<MessageProperties>,
    },
    /// `devices/{d}/modules/{m}/inputs/{input}/{bag}`; the input name is percent-encoded on the wire.
    ModuleInput {
        device: DeviceId,
        module: ModuleId,
        input_name: String,
        properties: Box<MessageProperties>,
    },
}

impl HubPublish {
    /// Parses a topic the hub published. Anything that is not one of the hub-to-client shapes is
    /// [`TopicError::UnknownTopic`].
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let unknown = || TopicError::UnknownTopic {
            topic: topic.to_owned(),
        };
        if let Some(rest) = topic.strip_prefix("devices/") {
            let (raw_device, rest) = rest.split_once('/').ok_or_else(unknown)?;
            if let Some(raw_bag) = rest
                .strip_prefix("messages/devicebound")
                .and_then(bag_after)
            {
                let device = DeviceId::new(raw_device).map_err(TopicError::InvalidDeviceId)?;
                let properties = Box::new(MessageProperties::parse(
                    raw_bag,
                    BagDirection::CloudToDevice,
                )?);
                return Ok(HubPublish::CloudToDevice { device, properties });
            }
            let rest = rest.strip_prefix("modules/").ok_or_else(unknown)?;
            let (raw_module, rest) = rest.split_once('/').ok_or_else(unknown)?;
            let rest = rest.strip_prefix("inputs/").ok_or_else(unknown)?;
            let (raw_input, raw_bag) = rest.split_once('/').unwrap_or((rest, ""));
            let device = DeviceId::new(raw_device).map_err(TopicError::InvalidDeviceId)?;
            let module = ModuleId::new(raw_module).map_err(TopicError::InvalidModuleId)?;
            let input_name = percent_decode_utf8(raw_input, "input name")?;
            if input_name.is_empty() {
                return Err(TopicError::EmptyInputName {
                    topic: topic.to_owned(),
                });
            }
            let properties = Box::new(MessageProperties::parse(
                raw_bag,
                BagDirection::CloudToDevice,
            )?);
            return Ok(HubPublish::ModuleInput {
                device,
                module,
                input_name,
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
            ["$iothub", "twin", "res", status] => {
                let status = status
                    .parse::<u16>()
                    .map_err(|_| TopicError::InvalidStatus {
                        value: (*status).to_owned(),
                    })?;
                let version = query.version.map(parse_version).transpose()?;
                Ok(HubPublish::TwinResponse {
                    status,
                    rid: request_id()?,
                    version,
                })
            }
            ["$iothub", "twin", "PATCH", "properties", "desired"] => {
                let version = query.version.ok_or_else(|| TopicError::MissingVersion {
                    topic: topic.to_owned(),
                })?;
                Ok(HubPublish::DesiredPropertiesPatch {
                    version: parse_version(version)?,
                })
            }
            ["$iothub", "methods", "POST", raw_method_name] => {
                let method_name = percent_decode_utf8(raw_method_name, "method name")?;
                if method_name.is_empty() {
                    return Err(TopicError::EmptyMethodName {
                        topic: topic.to_owned(),
                    });
                }
                Ok(HubPublish::MethodRequest {
                    method_name,
                    rid: request_id()?,
                })
            }
            _ => Err(unknown()),
        }
    }

    /// The cloud-to-device topic delivering `message` to `device`.
    pub fn cloud_to_device(device: DeviceId, message: &Message) -> Self {
        HubPublish::CloudToDevice {
            device,
            properties: Box::new(MessageProperties::from_message(message)),
        }
    }

    /// The module input topic delivering `message` to `input_name` of `module`.
    pub fn module_input(
        device: DeviceId,
        module: ModuleId,
        input_name: impl Into<String>,
        message: &Message,
    ) -> Self {
        HubPublish::ModuleInput {
            device,
            module,
            input_name: input_name.into(),
            properties: Box::new(MessageProperties::from_message(message)),
        }
    }

    /// The exact wire topic.
    pub fn to_topic(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for HubPublish {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubPublish::TwinResponse {
                status,
                rid,
                version: None,
            } => {
                write!(formatter, "$iothub/twin/res/{status}/?$rid={rid}")
            }
            HubPublish::TwinResponse {
                status,
                rid,
                version: Some(version),
            } => {
                write!(
                    formatter,
                    "$iothub/twin/res/{status}/?$rid={rid}&$version={version}"
                )
            }
            HubPublish::DesiredPropertiesPatch { version } => {
                write!(
                    formatter,
                    "$iothub/twin/PATCH/properties/desired/?$version={version}"
                )
            }
            HubPublish::MethodRequest { method_name, rid } => {
                write!(
                    formatter,
                    "$iothub/methods/POST/{}/?$rid={rid}",
                    encode_segment(method_name)
                )
            }
            HubPublish::CloudToDevice { device, properties } => write!(
                formatter,
                "devices/{device}/messages/devicebound/{}",
                properties.format(BagDirection::CloudToDevice)
            ),
            HubPublish::ModuleInput {
                device,
                module,
                input_name,
                properties,
            } => write!(
                formatter,
                "devices/{device}/modules/{module}/inputs/{}/{}",
                encode_segment(input_name),
                properties.format(BagDirection::CloudToDevice)
            ),
        }
    }
}
