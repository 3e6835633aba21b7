//! The `$edgeHub` desired properties: routes and store-and-forward settings.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::agent::{check_schema_version, deserialize_section, parse_object};
use crate::error::{DeploymentError, Section};
use crate::schema::SchemaVersion;
use crate::wire::{EdgeHubDesiredWire, RouteWire};

/// `storeAndForwardConfiguration.timeToLiveSecs` when omitted: two hours.
pub const DEFAULT_TIME_TO_LIVE_SECS: u32 = 7200;

/// The largest global time to live Azure accepts (it is an int32 there).
const MAX_GLOBAL_TIME_TO_LIVE_SECS: u64 = i32::MAX as u64;

/// The highest route priority number (the lowest priority); 0 is the highest priority.
const LOWEST_ROUTE_PRIORITY: u64 = 9;

/// Why a route name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteNameError {
    #[error("a route name must not be empty")]
    Empty,
    #[error("a route name must not contain {character:?}")]
    InvalidCharacter { character: char },
}

/// A route name: non-empty, without `.`, `$`, `#` or space (Azure's `^[^\.\$# ]+$`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteName(String);

impl RouteName {
    pub fn new(candidate: &str) -> Result<RouteName, RouteNameError> {
        if candidate.is_empty() {
            return Err(RouteNameError::Empty);
        }
        if let Some(character) = candidate
            .chars()
            .find(|character| matches!(character, '.' | '$' | '#' | ' '))
        {
            return Err(RouteNameError::InvalidCharacter { character });
        }
        Ok(RouteName(candidate.to_owned()))
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

/// What is wrong with one route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteProblem {
    #[error("route objects need schemaVersion 1.1 or later; schema 1.0 routes are strings")]
    ObjectNeedsSchema11,
    #[error("priority {found} is out of range 0..=9")]
    PriorityOutOfRange { found: u64 },
    #[error("timeToLiveSecs {found} is out of range 0..=4294967295")]
    TimeToLiveOutOfRange { found: u64 },
    #[error("overflow {found:?} is not one of \"dropOldest\" and \"refuseNew\"")]
    UnknownOverflow { found: String },
    #[error("{statement:?} is not a valid route: {message}")]
    Syntax { statement: String, message: String },
}

/// One validated route.
#[derive(Debug, Clone, PartialEq)]
pub struct HubRoute {
    /// The statement as written.
    pub statement: String,
    /// The parsed statement.
    pub route: query::Route,
    /// 0 (highest) to 9; `None` means the lowest priority, below 9.
    pub priority: Option<u8>,
    /// Overrides the global time to live when set.
    pub time_to_live_secs: Option<u32>,
    /// What this route's messages do when the store is full; `None` takes the runtime's
    /// default (`edge_hub.overflow`).
    pub overflow: Option<RouteOverflow>,
}

/// A route's policy at the store's byte bound (Outpost's `overflow` in a route object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOverflow {
    /// `"dropOldest"`: delete the oldest stored messages to make room (and count them).
    DropOldest,
    /// `"refuseNew"`: withhold the sender's PUBACK until there is room (back-pressure); never
    /// lose a stored message of this route to make room for another.
    RefuseNew,
}

impl RouteOverflow {
    /// Reads the wire name.
    pub fn from_wire(name: &str) -> Option<RouteOverflow> {
        match name {
            "dropOldest" => Some(RouteOverflow::DropOldest),
            "refuseNew" => Some(RouteOverflow::RefuseNew),
            _ => None,
        }
    }
}

/// `storeAndForwardConfiguration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreAndForwardSettings {
    pub time_to_live_secs: u32,
    /// `storeLimits.maxSizeBytes`.
    pub max_size_bytes: Option<u64>,
}

/// The validated `$edgeHub` desired properties.
#[derive(Debug, Clone, PartialEq)]
pub struct HubDeployment {
    pub schema_version: SchemaVersion,
    pub routes: BTreeMap<RouteName, HubRoute>,
    pub store_and_forward: StoreAndForwardSettings,
    /// `mqttBroker` (schema 1.2 and later), kept as JSON; ignored in older schemas as in Azure.
    pub mqtt_broker: Option<Value>,
    /// `integrity` (schema 1.3), kept as JSON; ignored in older schemas as in Azure.
    pub integrity: Option<Value>,
}

impl HubDeployment {
    /// Validates the `$edgeHub` desired properties as found in the twin.
    ///
    /// Schema 1.0 takes routes as strings (empty ones are skipped, as in Azure); 1.1 to 1.3 also
    /// take `{route, priority, timeToLiveSecs}` objects, plus Outpost's `overflow`. Every route
    /// statement is parsed.
    pub fn from_desired_properties(
        desired: &Map<String, Value>,
    ) -> Result<HubDeployment, DeploymentError> {
        if desired.keys().all(|key| key.starts_with('$')) {
            return Err(DeploymentError::Empty {
                section: Section::EdgeHub,
            });
        }
        let schema_version = check_schema_version(
            desired,
            Section::EdgeHub,
            "1.0, 1.1, 1.2 and 1.3",
            |version| version.major() == 1 && version.minor() <= 3,
        )?;
        let wire: EdgeHubDesiredWire = deserialize_section(desired, Section::EdgeHub)?;
        let objects_allowed = schema_version.minor() >= 1;

        let mut routes = BTreeMap::new();
        for (key, route) in &wire.routes {
            let Some(route) = route else { continue };
            let name =
                RouteName::new(key).map_err(|problem| DeploymentError::InvalidRouteName {
                    name: key.clone(),
                    problem,
                })?;
            let invalid = |problem: RouteProblem| DeploymentError::InvalidRoute {
                name: key.clone(),
                problem,
            };
            let (statement, priority, time_to_live_secs, overflow) = match route {
                RouteWire::Statement(statement) => {
                    if !objects_allowed && statement.trim().is_empty() {
                        continue;
                    }
                    (statement.clone(), None, None, None)
                }
                RouteWire::Object(_) if !objects_allowed => {
                    return Err(invalid(RouteProblem::ObjectNeedsSchema11));
                }
                RouteWire::Object(object) => {
                    let priority = match object.priority {
                        None => None,
                        Some(found) if found > LOWEST_ROUTE_PRIORITY => {
                            return Err(invalid(RouteProblem::PriorityOutOfRange { found }));
                        }
                        Some(found) => u8::try_from(found).ok(),
                    };
                    let time_to_live_secs =
                        match object.time_to_live_secs {
                            None => None,
                            Some(found) => Some(u32::try_from(found).map_err(|_| {
                                invalid(RouteProblem::TimeToLiveOutOfRange { found })
                            })?),
                        };
                    let overflow = match object.overflow.as_deref() {
                        None => None,
                        Some(found) => Some(RouteOverflow::from_wire(found).ok_or_else(|| {
                            invalid(RouteProblem::UnknownOverflow {
                                found: found.to_owned(),
                            })
                        })?),
                    };
                    (object.route.clone(), priority, time_to_live_secs, overflow)
                }
            };
            let parsed = query::Route::parse(&statement).map_err(|error| {
                invalid(RouteProblem::Syntax {
                    statement: statement.clone(),
                    message: error.to_string(),
                })
            })?;
            routes.insert(
                name,
                HubRoute {
                    statement,
                    route: parsed,
                    priority,
                    time_to_live_secs,
                    overflow,
                },
            );
        }

        let store_and_forward_wire = wire.store_and_forward_configuration.unwrap_or_default();
        let time_to_live_secs = match store_and_forward_wire.time_to_live_secs {
            None => DEFAULT_TIME_TO_LIVE_SECS,
            Some(found) if found > MAX_GLOBAL_TIME_TO_LIVE_SECS => {
                return Err(DeploymentError::TimeToLiveOutOfRange { found });
            }
            Some(found) => u32::try_from(found).unwrap_or(DEFAULT_TIME_TO_LIVE_SECS),
        };
        let store_and_forward = StoreAndForwardSettings {
            time_to_live_secs,
            max_size_bytes: store_and_forward_wire
                .store_limits
                .and_then(|limits| limits.max_size_bytes),
        };

        Ok(HubDeployment {
            schema_version,
            routes,
            store_and_forward,
            mqtt_broker: wire.mqtt_broker.filter(|_| schema_version.minor() >= 2),
            integrity: wire.integrity.filter(|_| schema_version.minor() >= 3),
        })
    }

    /// Parses JSON text holding the `$edgeHub` desired properties object.
    pub fn from_json(text: &str) -> Result<HubDeployment, DeploymentError> {
        HubDeployment::from_desired_properties(&parse_object(text, Section::EdgeHub)?)
    }
}
