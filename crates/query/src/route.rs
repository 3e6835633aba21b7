//! Edge hub route statements: `FROM <source> [WHERE <condition>] INTO <sink>`.

use crate::error::ParseError;
use crate::message::{Condition, MessageView};
use crate::parser::{Dialect, Parser};

/// The message source named after `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSource {
    /// `/*`: every message, including twin change notifications.
    Everything,
    /// `/messages/*`: telemetry from devices and module outputs.
    AllMessages,
    /// `/messages/modules/*`: messages from any module.
    AllModules,
    /// `/messages/modules/<m>/*`: any message from module `m`.
    Module { module_id: String },
    /// `/messages/modules/<m>/outputs/*`: any named output of module `m`.
    ModuleOutputs { module_id: String },
    /// `/messages/modules/<m>/outputs/<o>`: one output of module `m`.
    ModuleOutput {
        module_id: String,
        output_name: String,
    },
    /// `/twinChangeNotifications`.
    TwinChangeNotifications,
}

/// Where a message came from, as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSource<'a> {
    /// Telemetry sent by a (leaf) device.
    DeviceTelemetry { device_id: &'a str },
    /// A message from a module, on a named output or (when `output_name` is `None`) without one.
    ModuleOutput {
        device_id: &'a str,
        module_id: &'a str,
        output_name: Option<&'a str>,
    },
    /// A twin change notification.
    TwinChangeNotification { device_id: &'a str },
}

/// The endpoint named after `INTO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSink {
    /// `$upstream`: IoT Hub, or the parent edge hub.
    Upstream,
    /// `BrokeredEndpoint("/modules/<m>/inputs/<i>")`.
    ModuleInput {
        module_id: String,
        input_name: String,
    },
}

/// A parsed route statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub source: RouteSource,
    pub condition: Option<Condition>,
    pub sink: RouteSink,
}

impl Route {
    /// Parses `[SELECT *] FROM <path> [WHERE <condition>] INTO <sink>`; keywords ignore case.
    pub fn parse(source: &str) -> Result<Route, ParseError> {
        let parsed = Parser::new(source, Dialect::Message)?.parse_route()?;
        Ok(Route {
            source: parsed.source,
            condition: parsed.condition.map(Condition::from_expression),
            sink: parsed.sink,
        })
    }

    /// Whether a message from `source` is selected by this route's `FROM` clause.
    pub fn matches_source(&self, source: &MessageSource<'_>) -> bool {
        self.source.matches(source)
    }

    /// Whether the route takes the message: the source matches and the condition (if any) is true.
    pub fn matches<M: MessageView + ?Sized>(
        &self,
        source: &MessageSource<'_>,
        message: &M,
    ) -> bool {
        self.matches_source(source)
            && self
                .condition
                .as_ref()
                .is_none_or(|condition| condition.evaluate(message))
    }
}

impl RouteSource {
    /// Parses a source path; the fixed words ignore ASCII case, module and output names do not.
    pub(crate) fn parse(path: &str) -> Option<RouteSource> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let word = |index: usize, expected: &str| {
            segments
                .get(index)
                .is_some_and(|segment| segment.eq_ignore_ascii_case(expected))
        };
        let name = |index: usize| {
            segments
                .get(index)
                .filter(|segment| !segment.is_empty() && **segment != "*")
                .map(|segment| segment.to_string())
        };
        match segments.len() {
            1 if word(0, "*") => Some(RouteSource::Everything),
            1 if word(0, "twinChangeNotifications") => Some(RouteSource::TwinChangeNotifications),
            1 if word(0, "messages") => Some(RouteSource::AllMessages),
            2 if word(0, "messages") && word(1, "*") => Some(RouteSource::AllMessages),
            3 if word(0, "messages") && word(1, "modules") && word(2, "*") => {
                Some(RouteSource::AllModules)
            }
            3 if word(0, "messages") && word(1, "modules") => Some(RouteSource::Module {
                module_id: name(2)?,
            }),
            4 if word(0, "messages") && word(1, "modules") && word(3, "*") => {
                Some(RouteSource::Module {
                    module_id: name(2)?,
                })
            }
            5 if word(0, "messages")
                && word(1, "modules")
                && word(3, "outputs")
                && word(4, "*") =>
            {
                Some(RouteSource::ModuleOutputs {
                    module_id: name(2)?,
                })
            }
            5 if word(0, "messages") && word(1, "modules") && word(3, "outputs") => {
                Some(RouteSource::ModuleOutput {
                    module_id: name(2)?,
                    output_name: name(4)?,
                })
            }
            _ => None,
        }
    }

    pub fn matches(&self, source: &MessageSource<'_>) -> bool {
        match (self, source) {
            (RouteSource::Everything, _) => true,
            (
                RouteSource::AllMessages,
                MessageSource::DeviceTelemetry { .. } | MessageSource::ModuleOutput { .. },
            ) => true,
            (RouteSource::AllModules, MessageSource::ModuleOutput { .. }) => true,
            (
                RouteSource::Module { module_id },
                MessageSource::ModuleOutput {
                    module_id: actual, ..
                },
            ) => module_id == actual,
            (
                RouteSource::ModuleOutputs { module_id },
                MessageSource::ModuleOutput {
                    module_id: actual,
                    output_name: Some(_),
                    ..
                },
            ) => module_id == actual,
            (
                RouteSource::ModuleOutput {
                    module_id,
                    output_name,
                },
                MessageSource::ModuleOutput {
                    module_id: actual_module,
                    output_name: Some(actual_output),
                    ..
                },
            ) => module_id == actual_module && output_name == actual_output,
            (
                RouteSource::TwinChangeNotifications,
                MessageSource::TwinChangeNotification { .. },
            ) => true,
            _ => false,
        }
    }
}

impl RouteSink {
    /// Parses the quoted address of `BrokeredEndpoint("/modules/<m>/inputs/<i>")`.
    pub(crate) fn parse_brokered_address(address: &str) -> Option<RouteSink> {
        let segments: Vec<&str> = address.trim().strip_prefix('/')?.split('/').collect();
        let valid_name = |segment: &&str| !segment.is_empty() && !segment.contains('*');
        match segments.as_slice() {
            [modules, module_id, inputs, input_name]
                if modules.eq_ignore_ascii_case("modules")
                    && inputs.eq_ignore_ascii_case("inputs")
                    && valid_name(module_id)
                    && valid_name(input_name) =>
            {
                Some(RouteSink::ModuleInput {
                    module_id: module_id.to_string(),
                    input_name: input_name.to_string(),
                })
            }
            _ => None,
        }
    }

    /// The edge hub endpoint id: `iothub` for upstream, `<edgeDeviceId>/<m>/<i>` for a module input.
    pub fn endpoint_id(&self, edge_device_id: &str) -> String {
        match self {
            RouteSink::Upstream => "iothub".to_string(),
            RouteSink::ModuleInput {
                module_id,
                input_name,
            } => format!("{edge_device_id}/{module_id}/{input_name}"),
        }
    }
}
