//! The pure state of MQTT sessions: which identity is connected through which connection, and
//! which subscriptions each session holds, across reconnects (no I/O, no channels).
//!
//! `H` is whatever the owner keeps to reach a live connection; the table only stores and returns
//! it. The registry task in [`crate::sessions`] is the one owner of a table.

use std::collections::{BTreeMap, HashMap};

use iothub_topics::{ClientSubscription, HubPublish};
use iothub_types::{DeviceId, Identity};
use mqtt_codec::QoS;

use crate::backend::ConnectionId;

/// Sessions by identity (the MQTT client id of an IoT Hub client is its identity).
#[derive(Debug)]
pub(crate) struct SessionTable<H> {
    sessions: HashMap<Identity, SessionRecord<H>>,
    live_connections: usize,
}

#[derive(Debug)]
struct SessionRecord<H> {
    /// Granted subscriptions with their granted QoS.
    subscriptions: BTreeMap<ClientSubscription, QoS>,
    /// Whether the session outlives its connection (clean session 0).
    persistent: bool,
    /// The connection currently attached, if any.
    live: Option<LiveConnection<H>>,
}

#[derive(Debug)]
struct LiveConnection<H> {
    connection_id: ConnectionId,
    handle: H,
}

/// The result of attaching a new connection to its session.
#[derive(Debug)]
pub(crate) struct Attached<H> {
    /// Whether stored session state was resumed (CONNACK session present).
    pub session_present: bool,
    /// The subscriptions in force, restored from the stored session.
    pub subscriptions: Vec<(ClientSubscription, QoS)>,
    /// The handle of the connection this one replaces, which the owner must close.
    pub replaced: Option<H>,
}

/// Where a hub publish for an identity goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a, H> {
    /// No live connection for the identity.
    NotConnected,
    /// Connected, but no subscription covers the publish.
    NotSubscribed,
    /// Deliver through `handle`; `granted` is the highest QoS granted by a covering subscription.
    Deliver { handle: &'a H, granted: QoS },
}

/// Subscription changes requested by one SUBSCRIBE or UNSUBSCRIBE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SubscriptionChanges {
    /// Subscriptions to add or replace, with the granted QoS.
    pub add: Vec<(ClientSubscription, QoS)>,
    /// Subscriptions to remove.
    pub remove: Vec<ClientSubscription>,
}

impl<H> Default for SessionTable<H> {
    fn default() -> Self {
        SessionTable {
            sessions: HashMap::new(),
            live_connections: 0,
        }
    }
}

impl<H> SessionTable<H> {
    /// Attaches connection `connection_id` to `identity`'s session, replacing any live connection.
    ///
    /// With clean session 1, or when the stored session was not persistent, the session starts
    /// empty; with clean session 0 an existing persistent session is resumed.
    pub fn attach(
        &mut self,
        identity: &Identity,
        connection_id: ConnectionId,
        clean_session: bool,
        handle: H,
    ) -> Attached<H> {
        let record = self
            .sessions
            .entry(identity.clone())
            .or_insert_with(|| SessionRecord {
                subscriptions: BTreeMap::new(),
                persistent: false,
                live: None,
            });
        let resumable = record.persistent && !clean_session;
        if !resumable {
            record.subscriptions.clear();
        }
        record.persistent = !clean_session;
        let replaced = record.live.replace(LiveConnection {
            connection_id,
            handle,
        });
        if replaced.is_none() {
            self.live_connections += 1;
        }
        Attached {
            session_present: resumable,
            subscriptions: record
                .subscriptions
                .iter()
                .map(|(subscription, qos)| (subscription.clone(), *qos))
                .collect(),
            replaced: replaced.map(|live| live.handle),
        }
    }

    /// Applies subscription changes made on connection `connection_id`, returning the complete new
    /// set, or `None` when that connection is no longer the session's live connection.
    pub fn update_subscriptions(
        &mut self,
        identity: &Identity,
        connection_id: ConnectionId,
        changes: SubscriptionChanges,
    ) -> Option<Vec<(ClientSubscription, QoS)>> {
        let record = self.live_record_mut(identity, connection_id)?;
        for subscription in changes.remove {
            record.subscriptions.remove(&subscription);
        }
        for (subscription, qos) in changes.add {
            record.subscriptions.insert(subscription, qos);
        }
        Some(
            record
                .subscriptions
                .iter()
                .map(|(subscription, qos)| (subscription.clone(), *qos))
                .collect(),
        )
    }

    /// Detaches connection `connection_id` when it ends. A non-persistent session is forgotten; a
    /// persistent one keeps its subscriptions. Returns `false` (and changes nothing) when the
    /// connection was not the live one (it was replaced or disconnected earlier).
    pub fn detach(&mut self, identity: &Identity, connection_id: ConnectionId) -> bool {
        if self.live_record_mut(identity, connection_id).is_none() {
            return false;
        }
        self.end_live_connection(identity);
        true
    }

    /// Removes and returns the live connection of `identity` (for a forced disconnect). The
    /// connection's later [`SessionTable::detach`] is then a no-op.
    pub fn take_live(&mut self, identity: &Identity) -> Option<H> {
        self.end_live_connection(identity)
    }

    /// The identities of `device` and of its modules that have a live connection.
    pub fn live_identities_of_device(&self, device: &DeviceId) -> Vec<Identity> {
        self.sessions
            .iter()
            .filter(|(identity, record)| identity.device == *device && record.live.is_some())
            .map(|(identity, _)| identity.clone())
            .collect()
    }

    /// Every identity with a live connection.
    pub fn live_identities(&self) -> Vec<Identity> {
        self.sessions
            .iter()
            .filter(|(_, record)| record.live.is_some())
            .map(|(identity, _)| identity.clone())
            .collect()
    }

    /// Where `publish` for `identity` should go.
    pub fn route(&self, identity: &Identity, publish: &HubPublish) -> Route<'_, H> {
        let Some(record) = self.sessions.get(identity) else {
            return Route::NotConnected;
        };
        let Some(live) = &record.live else {
            return Route::NotConnected;
        };
        let granted = record
            .subscriptions
            .iter()
            .filter(|(subscription, _)| subscription.covers(publish))
            .map(|(_, qos)| *qos)
            .max();
        match granted {
            Some(granted) => Route::Deliver {
                handle: &live.handle,
                granted,
            },
            None => Route::NotSubscribed,
        }
    }

    /// Whether `identity` has a live connection.
    pub fn is_connected(&self, identity: &Identity) -> bool {
        self.sessions
            .get(identity)
            .is_some_and(|record| record.live.is_some())
    }

    /// The number of live connections.
    pub fn live_connection_count(&self) -> usize {
        self.live_connections
    }

    /// The number of stored sessions, live or not.
    #[cfg(test)]
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn live_record_mut(
        &mut self,
        identity: &Identity,
        connection_id: ConnectionId,
    ) -> Option<&mut SessionRecord<H>> {
        self.sessions.get_mut(identity).filter(|record| {
            record
                .live
                .as_ref()
                .is_some_and(|live| live.connection_id == connection_id)
        })
    }

    fn end_live_connection(&mut self, identity: &Identity) -> Option<H> {
        let record = self.sessions.get_mut(identity)?;
        let live = record.live.take()?;
        self.live_connections -= 1;
        if !record.persistent {
            self.sessions.remove(identity);
        }
        Some(live.handle)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use iothub_types::{DeviceId, ModuleId};
    use proptest::prelude::*;

    use super::*;

    fn identity(index: usize) -> Identity {
        let device = DeviceId::new(&format!("device{}", index % 2)).unwrap();
        if index < 2 {
            Identity::device(device)
        } else {
            Identity::module(device, ModuleId::new("module").unwrap())
        }
    }

    fn subscription(index: usize) -> ClientSubscription {
        [
            ClientSubscription::MethodRequests,
            ClientSubscription::DesiredPropertiesPatches,
            ClientSubscription::TwinResponses,
        ][index % 3]
            .clone()
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Attach {
            identity: usize,
            clean_session: bool,
        },
        Subscribe {
            identity: usize,
            stale: bool,
            subscription: usize,
        },
        Unsubscribe {
            identity: usize,
            subscription: usize,
        },
        Detach {
            identity: usize,
            stale: bool,
        },
        Kick {
            identity: usize,
        },
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            (0..4usize, any::<bool>()).prop_map(|(identity, clean_session)| Operation::Attach {
                identity,
                clean_session
            }),
            (0..4usize, any::<bool>(), 0..3usize).prop_map(|(identity, stale, subscription)| {
                Operation::Subscribe {
                    identity,
                    stale,
                    subscription,
                }
            }),
            (0..4usize, 0..3usize).prop_map(|(identity, subscription)| Operation::Unsubscribe {
                identity,
                subscription
            }),
            (0..4usize, any::<bool>())
                .prop_map(|(identity, stale)| Operation::Detach { identity, stale }),
            (0..4usize).prop_map(|identity| Operation::Kick { identity }),
        ]
    }

    /// The simplest description of MQTT 3.1.1 session rules as IoT Hub applies them.
    #[derive(Default, Clone, Debug)]
    struct ModelSession {
        subscriptions: BTreeSet<ClientSubscription>,
        persistent: bool,
        live: Option<u64>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn table_matches_model(operations in proptest::collection::vec(operation(), 1..60)) {
            let mut table: SessionTable<u64> = SessionTable::default();
            let mut model: HashMap<Identity, ModelSession> = HashMap::new();
            let mut next_connection = 1u64;
            for operation in operations {
                match operation {
                    Operation::Attach { identity: index, clean_session } => {
                        let identity = identity(index);
                        let connection = next_connection;
                        next_connection += 1;
                        let attached = table.attach(&identity, ConnectionId(connection), clean_session, connection);
                        let session = model.entry(identity.clone()).or_default();
                        let resumed = session.persistent && !clean_session;
                        if !resumed {
                            session.subscriptions.clear();
                        }
                        session.persistent = !clean_session;
                        prop_assert_eq!(attached.replaced, session.live);
                        prop_assert_eq!(attached.session_present, resumed);
                        let restored: BTreeSet<_> = attached.subscriptions.into_iter().map(|(s, _)| s).collect();
                        prop_assert_eq!(&restored, &session.subscriptions);
                        session.live = Some(connection);
                    }
                    Operation::Subscribe { identity: index, stale, subscription: which } => {
                        let identity = identity(index);
                        let session = model.entry(identity.clone()).or_default();
                        let connection = match (session.live, stale) {
                            (Some(live), false) => live,
                            _ => 0,
                        };
                        let changes = SubscriptionChanges { add: vec![(subscription(which), QoS::AtLeastOnce)], remove: vec![] };
                        let result = table.update_subscriptions(&identity, ConnectionId(connection), changes);
                        if connection == 0 {
                            prop_assert!(result.is_none());
                        } else {
                            session.subscriptions.insert(subscription(which));
                            let current: BTreeSet<_> = result.unwrap().into_iter().map(|(s, _)| s).collect();
                            prop_assert_eq!(&current, &session.subscriptions);
                        }
                        if session.live.is_none() && !session.persistent {
                            model.remove(&identity);
                        }
                    }
                    Operation::Unsubscribe { identity: index, subscription: which } => {
                        let identity = identity(index);
                        if let Some(live) = model.get(&identity).and_then(|session| session.live) {
                            let changes = SubscriptionChanges { add: vec![], remove: vec![subscription(which)] };
                            table.update_subscriptions(&identity, ConnectionId(live), changes).unwrap();
                            model.get_mut(&identity).unwrap().subscriptions.remove(&subscription(which));
                        }
                    }
                    Operation::Detach { identity: index, stale } => {
                        let identity = identity(index);
                        let live = model.get(&identity).and_then(|session| session.live);
                        let connection = if stale { 0 } else { live.unwrap_or(0) };
                        let detached = table.detach(&identity, ConnectionId(connection));
                        prop_assert_eq!(detached, live.is_some() && connection != 0);
                        if detached {
                            let session = model.get_mut(&identity).unwrap();
                            session.live = None;
                            if !session.persistent {
                                model.remove(&identity);
                            }
                        }
                    }
                    Operation::Kick { identity: index } => {
                        let identity = identity(index);
                        let live = model.get(&identity).and_then(|session| session.live);
                        prop_assert_eq!(table.take_live(&identity), live);
                        if live.is_some() {
                            let session = model.get_mut(&identity).unwrap();
                            session.live = None;
                            if !session.persistent {
                                model.remove(&identity);
                            }
                        }
                    }
                }
                // Invariants after every step.
                let live_in_model = model.values().filter(|session| session.live.is_some()).count();
                prop_assert_eq!(table.live_connection_count(), live_in_model);
                prop_assert_eq!(table.session_count(), model.len());
                for (identity, session) in &model {
                    prop_assert_eq!(table.is_connected(identity), session.live.is_some());
                    let publish = HubPublish::MethodRequest { method_name: "m".to_owned(), rid: "1".to_owned() };
                    let expected = match (session.live, session.subscriptions.contains(&ClientSubscription::MethodRequests)) {
                        (None, _) => "not connected",
                        (Some(_), false) => "not subscribed",
                        (Some(_), true) => "deliver",
                    };
                    let actual = match table.route(identity, &publish) {
                        Route::NotConnected => "not connected",
                        Route::NotSubscribed => "not subscribed",
                        Route::Deliver { .. } => "deliver",
                    };
                    prop_assert_eq!(actual, expected);
                }
            }
        }
    }

    #[test]
    fn routes_use_the_granted_qos_of_the_covering_subscription() {
        let mut table: SessionTable<&str> = SessionTable::default();
        let device = DeviceId::new("d1").unwrap();
        let identity = Identity::device(device.clone());
        table.attach(&identity, ConnectionId(1), false, "first");
        let changes = SubscriptionChanges {
            add: vec![
                (
                    ClientSubscription::CloudToDevice {
                        device: device.clone(),
                    },
                    QoS::AtMostOnce,
                ),
                (ClientSubscription::MethodRequests, QoS::AtLeastOnce),
            ],
            remove: vec![],
        };
        table.update_subscriptions(&identity, ConnectionId(1), changes);
        let cloud_to_device =
            HubPublish::cloud_to_device(device.clone(), &iothub_types::Message::new("x"));
        assert_eq!(
            table.route(&identity, &cloud_to_device),
            Route::Deliver {
                handle: &"first",
                granted: QoS::AtMostOnce
            }
        );
        let desired = HubPublish::DesiredPropertiesPatch { version: 2 };
        assert_eq!(table.route(&identity, &desired), Route::NotSubscribed);
        let other = Identity::device(DeviceId::new("d2").unwrap());
        assert_eq!(table.route(&other, &desired), Route::NotConnected);
        assert_eq!(table.live_identities_of_device(&device), vec![identity]);
    }
}
