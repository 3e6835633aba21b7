//! Validated names for endpoints and routes, and the routing data sources.

use std::fmt;
use std::sync::Arc;

/// The longest endpoint or route name IoT Hub accepts, in characters.
pub const MAX_NAME_LENGTH: usize = 64;

/// Why a text is not a valid endpoint or route name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must not be empty")]
    Empty,
    #[error("name is {length} characters long, the maximum is {MAX_NAME_LENGTH}")]
    TooLong { length: usize },
    #[error(
        "name contains {character:?} at byte {position}; only ASCII letters, digits, '.', '_' and '-' are allowed"
    )]
    InvalidCharacter { character: char, position: usize },
}

/// Checks the IoT Hub rule shared by endpoint and route names: 1 to 64 characters from ASCII
/// alphanumerics, `.`, `_` and `-`.
fn validate_name(text: &str) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((position, character)) = text
        .char_indices()
        .find(|(_, character)| !(character.is_ascii_alphanumeric() || ".-_".contains(*character)))
    {
        return Err(NameError::InvalidCharacter {
            character,
            position,
        });
    }
    if text.len() > MAX_NAME_LENGTH {
        return Err(NameError::TooLong { length: text.len() });
    }
    Ok(())
}

/// The name of a routing endpoint, such as the built-in `events` or a configured webhook.
///
/// Backed by an `Arc<str>`, so cloning one (for example into a routing decision) never
/// allocates.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointName(Arc<str>);

impl EndpointName {
    /// The built-in endpoint: the hub's telemetry log, read through the Event Hub-compatible
    /// consumer API.
    pub const EVENTS: &'static str = "events";

    /// Names a custom endpoint may not take, compared ignoring ASCII case, as in IoT Hub.
    pub const RESERVED: [&'static str; 3] = ["events", "fileNotifications", "$default"];

    /// Validates `text` as an endpoint name (1 to 64 characters from `[A-Za-z0-9._-]`).
    pub fn new(text: &str) -> Result<EndpointName, NameError> {
        validate_name(text)?;
        Ok(EndpointName(Arc::from(text)))
    }

    /// The built-in `events` endpoint.
    pub fn events() -> EndpointName {
        EndpointName(Arc::from(EndpointName::EVENTS))
    }

    /// Whether this names the built-in `events` endpoint.
    pub fn is_events(&self) -> bool {
        &*self.0 == EndpointName::EVENTS
    }

    /// Whether a custom endpoint may not use this name.
    pub fn is_reserved(&self) -> bool {
        EndpointName::RESERVED
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(&self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EndpointName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for EndpointName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, formatter)
    }
}

/// The name of a route (1 to 64 characters from `[A-Za-z0-9._-]`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(Arc<str>);

impl RouteName {
    pub fn new(text: &str) -> Result<RouteName, NameError> {
        validate_name(text)?;
        Ok(RouteName(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, formatter)
    }
}

/// The kind of message a route reads. IoT Hub also has `DeviceConnectionStateEvents` and
/// `DigitalTwinChangeEvents`; Outpost produces neither, so routes cannot name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoutingSource {
    /// Device-to-cloud telemetry from devices and modules.
    DeviceMessages,
    /// Twin change notifications (see [`crate::twin_change_event`]).
    TwinChangeEvents,
    /// Device identity creation and deletion notifications (see
    /// [`crate::device_lifecycle_event`]).
    DeviceLifecycleEvents,
}

impl RoutingSource {
    pub const ALL: [RoutingSource; 3] = [
        RoutingSource::DeviceMessages,
        RoutingSource::TwinChangeEvents,
        RoutingSource::DeviceLifecycleEvents,
    ];

    /// The ARM spelling, e.g. `DeviceMessages`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingSource::DeviceMessages => "DeviceMessages",
            RoutingSource::TwinChangeEvents => "TwinChangeEvents",
            RoutingSource::DeviceLifecycleEvents => "DeviceLifecycleEvents",
        }
    }

    /// Parses the ARM spelling, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<RoutingSource> {
        RoutingSource::ALL
            .into_iter()
            .find(|source| source.as_str().eq_ignore_ascii_case(text))
    }

    /// A dense index (0, 1, 2) for per-source tables.
    pub(crate) fn index(self) -> usize {
        match self {
            RoutingSource::DeviceMessages => 0,
            RoutingSource::TwinChangeEvents => 1,
            RoutingSource::DeviceLifecycleEvents => 2,
        }
    }
}

impl fmt::Display for RoutingSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn name_rules() {
        let rendered: Vec<String> = [
            "events",
            "hot-path_1.v2",
            "",
            "has space",
            "$default",
            &"n".repeat(65),
        ]
        .iter()
        .map(|text| match EndpointName::new(text) {
            Ok(name) => format!("{name:?} ok reserved={}", name.is_reserved()),
            Err(error) => format!("{:?}: {error}", text.chars().take(10).collect::<String>()),
        })
        .collect();
        expect![[r#"
            "events" ok reserved=true
            "hot-path_1.v2" ok reserved=false
            "": name must not be empty
            "has space": name contains ' ' at byte 3; only ASCII letters, digits, '.', '_' and '-' are allowed
            "$default": name contains '$' at byte 0; only ASCII letters, digits, '.', '_' and '-' are allowed
            "nnnnnnnnnn": name is 65 characters long, the maximum is 64"#]]
        .assert_eq(&rendered.join("\n"));
        assert!(EndpointName::new("EVENTS").unwrap().is_reserved());
        assert!(!EndpointName::new("EVENTS").unwrap().is_events());
        assert!(EndpointName::events().is_events());
    }

    #[test]
    fn sources_parse_ignoring_case() {
        for source in RoutingSource::ALL {
            assert_eq!(RoutingSource::parse(source.as_str()), Some(source));
            assert_eq!(
                RoutingSource::parse(&source.as_str().to_lowercase()),
                Some(source)
            );
        }
        assert_eq!(RoutingSource::parse("DeviceConnectionStateEvents"), None);
    }
}
