//! Topic filters the device SDKs subscribe to.

use std::fmt;

use iothub_types::{DeviceId, Identity, ModuleId};

use crate::client::authorize_identity_topic;
use crate::error::{AuthorizationError, ParseForError, TopicError};
use crate::hub::HubPublish;

/// Every filter the SDKs subscribe to, parsed. Only the documented `#` tails are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientSubscription {
    /// `$iothub/methods/POST/#`.
    MethodRequests,
    /// `$iothub/twin/PATCH/properties/desired/#`.
    DesiredPropertiesPatches,
    /// `$iothub/twin/res/#`.
    TwinResponses,
    /// `devices/{d}/messages/devicebound/#` (devices only).
    CloudToDevice { device: DeviceId },
    /// `devices/{d}/modules/{m}/inputs/#`.
    ModuleInputs { device: DeviceId, module: ModuleId },
    /// `devices/{d}/modules/{m}/#`, which the IoT Edge hub documents for module input delivery.
    ModuleAll { device: DeviceId, module: ModuleId },
}

impl ClientSubscription {
    /// Parses a SUBSCRIBE or UNSUBSCRIBE filter. Other filters, including other wildcards, are
    /// [`TopicError::UnknownTopic`].
    pub fn parse(filter: &str) -> Result<Self, TopicError> {
        let segments: Vec<&str> = filter.split('/').collect();
        // `+` and `#` are legal in IoT Hub ids but are MQTT wildcards inside a filter, so an id position
        // holding one would subscribe to other devices' topics: refuse it.
        let reject_wildcard = |raw: &str| {
            if raw.contains(['+', '#']) {
                Err(TopicError::WildcardNotAllowed {
                    filter: filter.to_owned(),
                })
            } else {
                Ok(())
            }
        };
        let device = |raw: &str| {
            reject_wildcard(raw)?;
            DeviceId::new(raw).map_err(TopicError::InvalidDeviceId)
        };
        let module = |raw: &str| {
            reject_wildcard(raw)?;
            ModuleId::new(raw).map_err(TopicError::InvalidModuleId)
        };
        match segments.as_slice() {
            ["$iothub", "methods", "POST", "#"] => Ok(ClientSubscription::MethodRequests),
            ["$iothub", "twin", "PATCH", "properties", "desired", "#"] => {
                Ok(ClientSubscription::DesiredPropertiesPatches)
            }
            ["$iothub", "twin", "res", "#"] => Ok(ClientSubscription::TwinResponses),
            ["devices", raw_device, "messages", "devicebound", "#"] => {
                Ok(ClientSubscription::CloudToDevice {
                    device: device(raw_device)?,
                })
            }
            ["devices", raw_device, "modules", raw_module, "inputs", "#"] => {
                Ok(ClientSubscription::ModuleInputs {
                    device: device(raw_device)?,
                    module: module(raw_module)?,
                })
            }
            ["devices", raw_device, "modules", raw_module, "#"] => {
                Ok(ClientSubscription::ModuleAll {
                    device: device(raw_device)?,
                    module: module(raw_module)?,
                })
            }
            _ => Err(TopicError::UnknownTopic {
                topic: filter.to_owned(),
            }),
        }
    }

    /// Parses `filter` and checks that `connected` may subscribe to it.
    pub fn parse_for(connected: &Identity, filter: &str) -> Result<Self, ParseForError> {
        let subscription = ClientSubscription::parse(filter)?;
        subscription.authorize(connected)?;
        Ok(subscription)
    }

    /// Decides whether `connected` may hold this subscription: the identity-free `$iothub/...` filters
    /// always address the connection itself; C2D is for the connected device only (not modules); module
    /// filters are for the connected module only.
    pub fn authorize(&self, connected: &Identity) -> Result<(), AuthorizationError> {
        match self {
            ClientSubscription::MethodRequests
            | ClientSubscription::DesiredPropertiesPatches
            | ClientSubscription::TwinResponses => Ok(()),
            ClientSubscription::CloudToDevice { device } => {
                authorize_identity_topic(connected, device, None)
            }
            ClientSubscription::ModuleInputs { device, module }
            | ClientSubscription::ModuleAll { device, module } => {
                authorize_identity_topic(connected, device, Some(module))
            }
        }
    }

    /// Whether a hub publish would be delivered through this subscription.
    pub fn covers(&self, publish: &HubPublish) -> bool {
        match (self, publish) {
            (ClientSubscription::MethodRequests, HubPublish::MethodRequest { .. })
            | (
                ClientSubscription::DesiredPropertiesPatches,
                HubPublish::DesiredPropertiesPatch { .. },
            )
            | (ClientSubscription::TwinResponses, HubPublish::TwinResponse { .. }) => true,
            (
                ClientSubscription::CloudToDevice { device },
                HubPublish::CloudToDevice {
                    device: publish_device,
                    ..
                },
            ) => device == publish_device,
            (
                ClientSubscription::ModuleInputs { device, module }
                | ClientSubscription::ModuleAll { device, module },
                HubPublish::ModuleInput {
                    device: publish_device,
                    module: publish_module,
                    ..
                },
            ) => device == publish_device && module == publish_module,
            _ => false,
        }
    }

    /// The exact filter text.
    pub fn to_filter(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ClientSubscription {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSubscription::MethodRequests => formatter.write_str("$iothub/methods/POST/#"),
            ClientSubscription::DesiredPropertiesPatches => {
                formatter.write_str("$iothub/twin/PATCH/properties/desired/#")
            }
            ClientSubscription::TwinResponses => formatter.write_str("$iothub/twin/res/#"),
            ClientSubscription::CloudToDevice { device } => {
                write!(formatter, "devices/{device}/messages/devicebound/#")
            }
            ClientSubscription::ModuleInputs { device, module } => {
                write!(formatter, "devices/{device}/modules/{module}/inputs/#")
            }
            ClientSubscription::ModuleAll { device, module } => {
                write!(formatter, "devices/{device}/modules/{module}/#")
            }
        }
    }
}
