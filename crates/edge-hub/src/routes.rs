//! The pure routing core of the edge hub: which endpoints a message goes to, at which priority,
//! with which time to live and which policy when the store is full.

use std::time::Duration;

use edge_deployment::{HubDeployment, RouteOverflow};
use hub_routing::RoutableMessage;
use iothub_types::Message;
use query::{MessageSource, Route, RouteSink};

/// Azure's default `storeAndForwardConfiguration.timeToLiveSecs` (two hours).
pub const DEFAULT_TIME_TO_LIVE: Duration = Duration::from_secs(7200);

/// The priority of routes that name none: below every explicit priority (0 is the highest).
pub const DEFAULT_PRIORITY: u8 = 10;

/// One compiled route.
#[derive(Debug, Clone, PartialEq)]
struct CompiledRoute {
    name: String,
    route: Route,
    priority: u8,
    time_to_live: Duration,
    overflow: Option<RouteOverflow>,
}

/// Where a routed message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sink {
    /// `$upstream`: the cloud hub.
    Upstream,
    /// `BrokeredEndpoint("/modules/<m>/inputs/<i>")`: an input of a module on this device.
    ModuleInput { module: String, input: String },
}

impl Sink {
    /// The endpoint id the store queues under: `$upstream`, or `<module>/inputs/<input>`.
    pub fn endpoint_id(&self) -> String {
        match self {
            Sink::Upstream => UPSTREAM_ENDPOINT.to_owned(),
            Sink::ModuleInput { module, input } => format!("{module}/inputs/{input}"),
        }
    }

    /// Reads an endpoint id written by [`Sink::endpoint_id`].
    pub fn from_endpoint_id(endpoint_id: &str) -> Option<Sink> {
        if endpoint_id == UPSTREAM_ENDPOINT {
            return Some(Sink::Upstream);
        }
        let (module, input) = endpoint_id.split_once("/inputs/")?;
        (!module.is_empty() && !input.is_empty() && !module.contains('/')).then(|| {
            Sink::ModuleInput {
                module: module.to_owned(),
                input: input.to_owned(),
            }
        })
    }
}

/// The endpoint id of `$upstream`.
pub const UPSTREAM_ENDPOINT: &str = "$upstream";

/// One destination of a routed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    pub sink: Sink,
    /// 0 (highest) to 9, or [`DEFAULT_PRIORITY`].
    pub priority: u8,
    pub time_to_live: Duration,
    /// The route's policy when the store is full; `None`: the runtime's default.
    pub overflow: Option<RouteOverflow>,
}

/// The routes of one `$edgeHub` deployment, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
}

impl RouteTable {
    /// Compiles the routes of a validated `$edgeHub` deployment.
    pub fn new(deployment: &HubDeployment) -> RouteTable {
        let global_ttl =
            Duration::from_secs(u64::from(deployment.store_and_forward.time_to_live_secs));
        let routes = deployment
            .routes
            .iter()
            .map(|(name, route)| CompiledRoute {
                name: name.as_str().to_owned(),
                route: route.route.clone(),
                priority: route.priority.unwrap_or(DEFAULT_PRIORITY),
                time_to_live: route
                    .time_to_live_secs
                    .map_or(global_ttl, |secs| Duration::from_secs(u64::from(secs))),
                overflow: route.overflow,
            })
            .collect();
        RouteTable { routes }
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes (every message is then dropped, as in Azure).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every sink some route writes to, sorted and without repeats.
    pub fn sinks(&self) -> Vec<Sink> {
        let mut sinks: Vec<Sink> = self
            .routes
            .iter()
            .map(|route| sink_of(&route.route.sink))
            .collect();
        sinks.sort();
        sinks.dedup();
        sinks
    }

    /// The endpoints `message` from `source` goes to. When several routes pick the same sink, the
    /// message is queued there once, at the highest of their priorities (and that route's time to
    /// live), as Azure's edge hub does; it refuses new messages when full if any of those routes
    /// does (an unset policy counts as the default, which the caller resolves).
    pub fn route(&self, message: &Message, source: &MessageSource<'_>) -> Vec<RouteTarget> {
        let view = RoutableMessage {
            message,
            twin: None,
        };
        let mut targets: Vec<RouteTarget> = Vec::new();
        for compiled in &self.routes {
            if !compiled.route.matches(source, &view) {
                continue;
            }
            let sink = sink_of(&compiled.route.sink);
            match targets.iter_mut().find(|target| target.sink == sink) {
                Some(existing) => {
                    if compiled.priority < existing.priority {
                        existing.priority = compiled.priority;
                        existing.time_to_live = compiled.time_to_live;
                    }
                    existing.overflow = stricter(existing.overflow, compiled.overflow);
                }
                None => targets.push(RouteTarget {
                    sink,
                    priority: compiled.priority,
                    time_to_live: compiled.time_to_live,
                    overflow: compiled.overflow,
                }),
            }
        }
        targets
    }
}

/// The policy of two routes to one sink: an explicit `refuseNew` wins, then an unset one (the
/// default may be `refuseNew`), then `dropOldest`.
fn stricter(a: Option<RouteOverflow>, b: Option<RouteOverflow>) -> Option<RouteOverflow> {
    match (a, b) {
        (Some(RouteOverflow::RefuseNew), _) | (_, Some(RouteOverflow::RefuseNew)) => {
            Some(RouteOverflow::RefuseNew)
        }
        (None, _) | (_, None) => None,
        _ => Some(RouteOverflow::DropOldest),
    }
}

fn sink_of(sink: &RouteSink) -> Sink {
    match sink {
        RouteSink::Upstream => Sink::Upstream,
        RouteSink::ModuleInput {
            module_id,
            input_name,
        } => Sink::ModuleInput {
            module: module_id.clone(),
            input: input_name.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use serde_json::json;

    fn table(routes: serde_json::Value) -> RouteTable {
        let desired = json!({
            "schemaVersion": "1.1",
            "routes": routes,
            "storeAndForwardConfiguration": {"timeToLiveSecs": 60}
        });
        let deployment =
            HubDeployment::from_desired_properties(desired.as_object().unwrap()).unwrap();
        RouteTable::new(&deployment)
    }

    /// Routes `message` as the edge hub does: stamped with the sender's connection ids first.
    fn check(table: &RouteTable, message: &Message, source: MessageSource<'_>, expected: Expect) {
        let mut message = message.clone();
        match source {
            MessageSource::ModuleOutput {
                device_id,
                module_id,
                ..
            } => {
                message.system.connection_device_id = Some(device_id.to_owned());
                message.system.connection_module_id = Some(module_id.to_owned());
            }
            MessageSource::DeviceTelemetry { device_id }
            | MessageSource::TwinChangeNotification { device_id } => {
                message.system.connection_device_id = Some(device_id.to_owned());
            }
        }
        let targets = table.route(&message, &source);
        let text: Vec<String> = targets
            .iter()
            .map(|target| {
                let overflow = match target.overflow {
                    None => "",
                    Some(RouteOverflow::DropOldest) => " dropOldest",
                    Some(RouteOverflow::RefuseNew) => " refuseNew",
                };
                format!(
                    "{} p{} ttl{}{overflow}",
                    target.sink.endpoint_id(),
                    target.priority,
                    target.time_to_live.as_secs()
                )
            })
            .collect();
        expected.assert_eq(&text.join("\n"));
    }

    fn output(module: &'static str, output: &'static str) -> MessageSource<'static> {
        MessageSource::ModuleOutput {
            device_id: "edge",
            module_id: module,
            output_name: Some(output),
        }
    }

    #[test]
    fn routes_pick_sinks_by_source_and_condition() {
        let table = table(json!({
            "sensorToFilter": "FROM /messages/modules/sensor/outputs/temp INTO BrokeredEndpoint(\"/modules/filter/inputs/in1\")",
            "alerts": {"route": "FROM /messages/modules/filter/* WHERE level = 'high' INTO $upstream", "priority": 0, "timeToLiveSecs": 5},
            "leaf": "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream",
        }));
        let plain = Message::new("{}");
        check(
            &table,
            &plain,
            output("sensor", "temp"),
            expect!["filter/inputs/in1 p10 ttl60"],
        );
        check(&table, &plain, output("filter", "out"), expect![""]);
        let high = Message::new("{}").with_application_property("level", Some("high"));
        check(
            &table,
            &high,
            output("filter", "out"),
            expect!["$upstream p0 ttl5"],
        );
        check(
            &table,
            &plain,
            MessageSource::DeviceTelemetry { device_id: "leaf1" },
            expect!["$upstream p10 ttl60"],
        );
    }

    #[test]
    fn one_sink_takes_the_highest_priority_of_the_routes_that_pick_it() {
        let table = table(json!({
            "low": {"route": "FROM /messages/* INTO $upstream", "priority": 7},
            "high": {"route": "FROM /messages/modules/* INTO $upstream", "priority": 1, "timeToLiveSecs": 9},
        }));
        check(
            &table,
            &Message::new("x"),
            output("m", "o"),
            expect!["$upstream p1 ttl9"],
        );
        check(
            &table,
            &Message::new("x"),
            MessageSource::DeviceTelemetry { device_id: "d" },
            expect!["$upstream p7 ttl60"],
        );
    }

    #[test]
    fn one_sink_refuses_new_messages_if_any_route_to_it_does() {
        let table = table(json!({
            "lossy": {"route": "FROM /messages/* INTO $upstream", "overflow": "dropOldest"},
            "careful": {"route": "FROM /messages/* WHERE alarm = 'on' INTO $upstream", "overflow": "refuseNew"},
            "plain": "FROM /messages/modules/m/* INTO BrokeredEndpoint(\"/modules/n/inputs/in\")",
            "lossyToo": {"route": "FROM /messages/modules/m/* INTO BrokeredEndpoint(\"/modules/n/inputs/in\")", "overflow": "dropOldest"},
        }));
        let leaf = MessageSource::DeviceTelemetry { device_id: "d" };
        check(
            &table,
            &Message::new("x"),
            leaf,
            expect!["$upstream p10 ttl60 dropOldest"],
        );
        let alarm = Message::new("x").with_application_property("alarm", Some("on"));
        check(
            &table,
            &alarm,
            leaf,
            expect!["$upstream p10 ttl60 refuseNew"],
        );
        // An unset policy is the runtime's default, which may be refuseNew: it beats dropOldest.
        check(
            &table,
            &Message::new("x"),
            output("m", "o"),
            expect![[r#"
                $upstream p10 ttl60 dropOldest
                n/inputs/in p10 ttl60"#]],
        );
    }

    #[test]
    fn endpoint_ids_round_trip() {
        for sink in [
            Sink::Upstream,
            Sink::ModuleInput {
                module: "filter".into(),
                input: "in/1".into(),
            },
        ] {
            assert_eq!(Sink::from_endpoint_id(&sink.endpoint_id()), Some(sink));
        }
        assert_eq!(Sink::from_endpoint_id("nothing"), None);
    }
}
