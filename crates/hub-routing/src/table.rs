//! The pure routing core: which endpoints a message goes to.

use iothub_types::{Message, SystemProperty as MessageProperty};
use query::{MessageView, SystemProperty as QueryProperty};
use serde_json::Value;

use crate::config::{MAX_CUSTOM_ENDPOINTS, RouteCondition, RoutingConfig};
use crate::names::{EndpointName, RouteName, RoutingSource};

/// A set of endpoints of one [`RoutingTable`], by index (`0` is always `events`). A bit set, so
/// routing a message allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EndpointSet(u64);

const _: () = assert!(MAX_CUSTOM_ENDPOINTS < 64);

impl EndpointSet {
    /// The index of the built-in `events` endpoint.
    pub const EVENTS_INDEX: usize = 0;

    pub fn empty() -> EndpointSet {
        EndpointSet(0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    /// Whether the set holds the built-in `events` endpoint.
    pub fn contains_events(self) -> bool {
        self.contains(EndpointSet::EVENTS_INDEX)
    }

    pub fn insert(&mut self, index: usize) {
        debug_assert!(index < 64);
        self.0 |= 1 << index;
    }

    fn union(self, other: EndpointSet) -> EndpointSet {
        EndpointSet(self.0 | other.0)
    }

    /// The indexes in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let index = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(index)
        })
    }
}

/// A message as routing conditions see it: an [`iothub_types::Message`] plus the sender's twin.
#[derive(Debug, Clone, Copy)]
pub struct RoutableMessage<'a> {
    pub message: &'a Message,
    pub twin: Option<&'a Value>,
}

impl MessageView for RoutableMessage<'_> {
    fn system_property(&self, property: QueryProperty) -> Option<&str> {
        self.message.system.get(message_property(property))
    }

    /// The first application property with this name ignoring ASCII case. A key sent without a
    /// value (a bare `key` in an MQTT property bag) reads as the empty string.
    fn application_property(&self, lowercase_name: &str) -> Option<&str> {
        self.message
            .application
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(lowercase_name))
            .map(|(_, value)| value.as_deref().unwrap_or(""))
    }

    fn body(&self) -> &[u8] {
        &self.message.body
    }

    fn twin(&self) -> Option<&Value> {
        self.twin
    }
}

/// Maps the query crate's system property names onto the message model's.
fn message_property(property: QueryProperty) -> MessageProperty {
    match property {
        QueryProperty::ContentType => MessageProperty::ContentType,
        QueryProperty::ContentEncoding => MessageProperty::ContentEncoding,
        QueryProperty::ConnectionDeviceId => MessageProperty::ConnectionDeviceId,
        QueryProperty::ConnectionModuleId => MessageProperty::ConnectionModuleId,
        QueryProperty::ConnectionAuthMethod => MessageProperty::ConnectionAuthMethod,
        QueryProperty::ConnectionDeviceGenerationId => MessageProperty::ConnectionAuthGenerationId,
        QueryProperty::MessageId => MessageProperty::MessageId,
        QueryProperty::CorrelationId => MessageProperty::CorrelationId,
        QueryProperty::UserId => MessageProperty::UserId,
        QueryProperty::To => MessageProperty::To,
        QueryProperty::EnqueuedTime => MessageProperty::EnqueuedTime,
        QueryProperty::CreationTimeUtc => MessageProperty::CreationTimeUtc,
        QueryProperty::ExpiryTimeUtc => MessageProperty::ExpiryTimeUtc,
        QueryProperty::MessageSource => MessageProperty::MessageSource,
        QueryProperty::MessageSchema => MessageProperty::MessageSchema,
        // The message model carries the plug-and-play interface as `iothub-interface-id`.
        QueryProperty::InterfaceName => MessageProperty::InterfaceId,
        QueryProperty::DataSchema => MessageProperty::DataSchema,
        QueryProperty::Subject => MessageProperty::ComponentName,
        QueryProperty::OutputName => MessageProperty::OutputName,
        QueryProperty::InputName => MessageProperty::InputName,
    }
}

/// One enabled route, compiled: its condition and its endpoints as a set.
#[derive(Debug, Clone)]
struct CompiledRoute {
    name: RouteName,
    condition: RouteCondition,
    endpoints: EndpointSet,
}

/// Why a message went where it went, for the "test route" API and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteExplanation {
    /// The enabled routes of the message's source whose condition matched, in order.
    pub matched_routes: Vec<RouteName>,
    /// Whether the fallback route sent the message to `events`.
    pub fallback_applied: bool,
    /// Where the message goes, each endpoint once.
    pub endpoints: Vec<EndpointName>,
}

/// The compiled routing table: enabled routes per source plus the fallback route.
///
/// **Invariant:** index 0 of [`RoutingTable::endpoint_names`] is `events`; the other indexes
/// follow [`RoutingConfig::endpoints`].
#[derive(Debug, Clone)]
pub struct RoutingTable {
    endpoint_names: Vec<EndpointName>,
    routes_by_source: [Vec<CompiledRoute>; 3],
    /// The fallback condition when the fallback route is enabled.
    fallback: Option<RouteCondition>,
    /// Per source: whether any condition routing it may read `$twin`.
    twin_needed_by_source: [bool; 3],
}

impl RoutingTable {
    /// Compiles a validated configuration. Disabled routes are left out.
    pub fn new(config: &RoutingConfig) -> RoutingTable {
        let mut endpoint_names = Vec::with_capacity(config.endpoints().len() + 1);
        endpoint_names.push(EndpointName::events());
        endpoint_names.extend(
            config
                .endpoints()
                .iter()
                .map(|endpoint| endpoint.name.clone()),
        );
        let mut routes_by_source: [Vec<CompiledRoute>; 3] = Default::default();
        for route in config.routes().iter().filter(|route| route.enabled) {
            let mut endpoints = EndpointSet::empty();
            for name in &route.endpoint_names {
                // Validation guarantees every name is known.
                if let Some(index) = endpoint_names.iter().position(|known| known == name) {
                    endpoints.insert(index);
                }
            }
            routes_by_source[route.source.index()].push(CompiledRoute {
                name: route.name.clone(),
                condition: route.condition.clone(),
                endpoints,
            });
        }
        let fallback = config
            .fallback()
            .enabled
            .then(|| config.fallback().condition.clone());
        let mut twin_needed_by_source = [false; 3];
        for source in RoutingSource::ALL {
            let routes = &routes_by_source[source.index()];
            let fallback_reads_twin = source == RoutingSource::DeviceMessages
                && fallback
                    .as_ref()
                    .is_some_and(RouteCondition::references_twin);
            twin_needed_by_source[source.index()] =
                fallback_reads_twin || routes.iter().any(|route| route.condition.references_twin());
        }
        RoutingTable {
            endpoint_names,
            routes_by_source,
            fallback,
            twin_needed_by_source,
        }
    }

    /// Whether routing a message of `source` may read the sender's twin: some enabled route of
    /// the source (or the fallback route, for device messages) mentions `$twin`. When false,
    /// the twin can be left out (`None`) without changing any decision, so the caller need not
    /// load it.
    pub fn needs_twin(&self, source: RoutingSource) -> bool {
        self.twin_needed_by_source[source.index()]
    }

    /// Whether a message of `source` can go anywhere at all: some route of the source is
    /// enabled, or (for device messages) the fallback route is. When false the caller can skip
    /// building the message.
    pub fn may_route(&self, source: RoutingSource) -> bool {
        !self.routes_by_source[source.index()].is_empty()
            || (source == RoutingSource::DeviceMessages && self.fallback.is_some())
    }

    /// Every endpoint of the table; the index is the one [`EndpointSet`] uses.
    pub fn endpoint_names(&self) -> &[EndpointName] {
        &self.endpoint_names
    }

    /// The endpoints `message` goes to, in table order, each once: the union over the enabled
    /// routes of `source` whose condition matches; if none matches, `source` is
    /// [`RoutingSource::DeviceMessages`] and the fallback route is enabled (and its condition
    /// matches), `events`.
    pub fn route(
        &self,
        source: RoutingSource,
        message: &Message,
        twin: Option<&Value>,
    ) -> Vec<EndpointName> {
        self.route_set(source, message, twin)
            .iter()
            .map(|index| self.endpoint_names[index].clone())
            .collect()
    }

    /// [`RoutingTable::route`] without allocating: the endpoints as a set of table indexes.
    pub fn route_set(
        &self,
        source: RoutingSource,
        message: &Message,
        twin: Option<&Value>,
    ) -> EndpointSet {
        let view = RoutableMessage { message, twin };
        let mut endpoints = EndpointSet::empty();
        let mut any_route_matched = false;
        for route in &self.routes_by_source[source.index()] {
            // A route whose endpoints are all already selected cannot change the result, but
            // it still counts as matched; only evaluate it when that is still unknown.
            if any_route_matched && endpoints.union(route.endpoints) == endpoints {
                continue;
            }
            if route.condition.matches(&view) {
                endpoints = endpoints.union(route.endpoints);
                any_route_matched = true;
            }
        }
        if !any_route_matched
            && source == RoutingSource::DeviceMessages
            && let Some(condition) = &self.fallback
            && condition.matches(&view)
        {
            endpoints.insert(EndpointSet::EVENTS_INDEX);
        }
        endpoints
    }

    /// Routes `message` and says why: which routes matched and whether the fallback applied.
    pub fn explain(
        &self,
        source: RoutingSource,
        message: &Message,
        twin: Option<&Value>,
    ) -> RouteExplanation {
        let view = RoutableMessage { message, twin };
        let matched: Vec<&CompiledRoute> = self.routes_by_source[source.index()]
            .iter()
            .filter(|route| route.condition.matches(&view))
            .collect();
        let fallback_applied = matched.is_empty()
            && source == RoutingSource::DeviceMessages
            && self
                .fallback
                .as_ref()
                .is_some_and(|condition| condition.matches(&view));
        RouteExplanation {
            matched_routes: matched.iter().map(|route| route.name.clone()).collect(),
            fallback_applied,
            endpoints: self.route(source, message, twin),
        }
    }
}
