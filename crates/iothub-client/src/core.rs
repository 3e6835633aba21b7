//! The pure session core: which operations are waiting for what, packet ids, request ids and
//! subscriptions. No sockets, no clock, no channels: the connection task feeds it packets, commands
//! and the current time, and executes the [`Action`]s it returns.
//!
//! Every submitted operation carries an opaque reply value `R` and is completed exactly once,
//! through [`Action::Complete`]: on its answer (PUBACK, SUBACK, twin response), on its deadline, on
//! connection loss in fail-fast mode, or on shutdown.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use iothub_topics::{ClientPublish, ClientSubscription, HubPublish};
use iothub_types::Identity;
use mqtt_codec::{
    Packet, PacketId, Publish, QoS, SubAck, Subscribe, SubscribeFilter, SubscribeReturnCode,
};
use serde_json::Value;
use tokio::time::Instant;

use crate::error::ClientError;
use crate::events::{ClientEvent, MethodRequest};
use crate::options::WhileDisconnected;

/// The payload of a twin GET, a single space exactly as the Python SDK sends it.
const TWIN_GET_PAYLOAD: &[u8] = b" ";

/// What an operation asks of the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A QoS 1 PUBLISH that completes on PUBACK (telemetry, module output, method response).
    Publish { topic: String, payload: Bytes },
    /// A twin request that completes on the matching `$iothub/twin/res/...`.
    Twin(TwinRequest),
    /// A subscription that completes on SUBACK (at once if it is already active).
    Subscribe(ClientSubscription),
}

/// A twin request and its `$rid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TwinRequest {
    Get { rid: String },
    PatchReported { rid: String, patch: Bytes },
}

impl TwinRequest {
    fn rid(&self) -> &str {
        match self {
            TwinRequest::Get { rid } | TwinRequest::PatchReported { rid, .. } => rid,
        }
    }

    fn publish(&self, packet_id: PacketId) -> Publish {
        let (topic, payload) = match self {
            TwinRequest::Get { rid } => (
                ClientPublish::TwinGet { rid: rid.clone() },
                Bytes::from_static(TWIN_GET_PAYLOAD),
            ),
            TwinRequest::PatchReported { rid, patch } => (
                ClientPublish::TwinPatchReported {
                    rid: rid.clone(),
                    version: None,
                },
                patch.clone(),
            ),
        };
        Publish::with_packet_id(topic.to_topic(), QoS::AtLeastOnce, packet_id, payload)
    }
}

/// A successful operation's result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// PUBACK or SUBACK received.
    Done,
    /// The twin document of a twin GET.
    Twin(Value),
    /// The new reported-properties version after a reported PATCH.
    ReportedVersion(u64),
}

/// Something the connection task must do.
#[derive(Debug)]
pub(crate) enum Action<R> {
    /// Write this packet.
    Send(Packet),
    /// Hand this result to the operation's caller.
    Complete(R, Result<Outcome, ClientError>),
    /// Hand this event to the application, then send PUBACK with `ack` if there is one.
    Deliver {
        /// Boxed because events (messages with all their properties) are much larger than the
        /// other actions.
        event: Box<ClientEvent>,
        ack: Option<PacketId>,
    },
}

/// The hub broke the protocol; the connection must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("protocol violation by the hub: {0}")]
pub(crate) struct ProtocolViolation(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// Not sent: waiting for a connection (queueing mode only).
    Queued,
    /// Waiting for this subscription's SUBACK before it can go out (or complete).
    AwaitingSubscription(ClientSubscription),
    /// PUBLISH sent, waiting for its PUBACK (twin requests may get their response first).
    AwaitingPubAck(PacketId),
    /// Twin request acknowledged, waiting for its response.
    AwaitingTwinResponse,
}

#[derive(Debug)]
struct Operation<R> {
    request: Request,
    reply: R,
    deadline: Instant,
    stage: Stage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubscriptionState {
    /// Wanted but not (or no longer known to be) in force.
    Inactive,
    /// SUBSCRIBE sent with this packet id.
    Requested(PacketId),
    /// SUBACK granted it (or the hub resumed the session holding it).
    Active,
}

/// The session core. See the module documentation.
#[derive(Debug)]
pub(crate) struct Core<R> {
    identity: Identity,
    mode: WhileDisconnected,
    operation_timeout: Duration,
    connected: bool,
    next_packet_id: PacketId,
    next_sequence: u64,
    /// Every uncompleted operation, by submission order.
    operations: BTreeMap<u64, Operation<R>>,
    /// PUBLISHes awaiting PUBACK.
    publishes: HashMap<PacketId, u64>,
    /// Twin requests awaiting their response, by `$rid`.
    twin_requests: HashMap<String, u64>,
    /// Every subscription the application wants, in the SDK's order.
    subscriptions: BTreeMap<ClientSubscription, SubscriptionState>,
    /// SUBSCRIBEs awaiting SUBACK.
    subscribe_packets: HashMap<PacketId, ClientSubscription>,
}

impl<R> Core<R> {
    /// A disconnected core for `identity` that will subscribe to `initial_subscriptions` on connect.
    pub(crate) fn new(
        identity: Identity,
        mode: WhileDisconnected,
        operation_timeout: Duration,
        initial_subscriptions: impl IntoIterator<Item = ClientSubscription>,
    ) -> Core<R> {
        Core {
            identity,
            mode,
            operation_timeout,
            connected: false,
            next_packet_id: PacketId::new(1).expect("1 is a valid packet id"),
            next_sequence: 0,
            operations: BTreeMap::new(),
            publishes: HashMap::new(),
            twin_requests: HashMap::new(),
            subscriptions: initial_subscriptions
                .into_iter()
                .map(|subscription| (subscription, SubscriptionState::Inactive))
                .collect(),
            subscribe_packets: HashMap::new(),
        }
    }

    /// Uncompleted operations that were sent (or wait on a subscription that was sent).
    pub(crate) fn in_flight(&self) -> usize {
        self.operations
            .values()
            .filter(|operation| operation.stage != Stage::Queued)
            .count()
    }

    /// The earliest operation deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.operations
            .values()
            .map(|operation| operation.deadline)
            .min()
    }

    /// Accepts a new operation. While disconnected it fails at once (fail-fast mode) or waits for
    /// the next connection (queueing mode).
    pub(crate) fn submit(
        &mut self,
        request: Request,
        reply: R,
        deadline: Instant,
        out: &mut Vec<Action<R>>,
    ) {
        if !self.connected && self.mode == WhileDisconnected::FailFast {
            out.push(Action::Complete(reply, Err(ClientError::NotConnected)));
            return;
        }
        if let Request::Subscribe(subscription) = &request {
            self.subscriptions
                .entry(subscription.clone())
                .or_insert(SubscriptionState::Inactive);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.operations.insert(
            sequence,
            Operation {
                request,
                reply,
                deadline,
                stage: Stage::Queued,
            },
        );
        if self.connected {
            self.drive(sequence, out);
        }
    }

    /// The hub accepted a CONNECT. Without a resumed session every wanted subscription is sent
    /// again; then every waiting operation goes out in submission order.
    pub(crate) fn on_connected(&mut self, session_present: bool, out: &mut Vec<Action<R>>) {
        self.connected = true;
        if !session_present {
            for state in self.subscriptions.values_mut() {
                *state = SubscriptionState::Inactive;
            }
        }
        let inactive: Vec<ClientSubscription> = self
            .subscriptions
            .iter()
            .filter(|(_, state)| **state == SubscriptionState::Inactive)
            .map(|(subscription, _)| subscription.clone())
            .collect();
        for subscription in inactive {
            self.request_subscription(subscription, out);
        }
        let queued: Vec<u64> = self
            .operations
            .iter()
            .filter(|(_, operation)| operation.stage == Stage::Queued)
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in queued {
            self.drive(sequence, out);
        }
    }

    /// The connection ended. Fail-fast mode fails every operation with
    /// [`ClientError::ConnectionLost`]; queueing mode keeps them to send again.
    pub(crate) fn on_connection_lost(&mut self, out: &mut Vec<Action<R>>) {
        self.connected = false;
        self.publishes.clear();
        self.twin_requests.clear();
        self.subscribe_packets.clear();
        for state in self.subscriptions.values_mut() {
            if let SubscriptionState::Requested(_) = state {
                *state = SubscriptionState::Inactive;
            }
        }
        match self.mode {
            WhileDisconnected::FailFast => {
                for (_, operation) in std::mem::take(&mut self.operations) {
                    out.push(Action::Complete(
                        operation.reply,
                        Err(ClientError::ConnectionLost),
                    ));
                }
            }
            WhileDisconnected::Queue => {
                for operation in self.operations.values_mut() {
                    operation.stage = Stage::Queued;
                }
            }
        }
    }

    /// Completes every operation with `error` (shutdown).
    pub(crate) fn fail_all(&mut self, error: ClientError, out: &mut Vec<Action<R>>) {
        self.publishes.clear();
        self.twin_requests.clear();
        for (_, operation) in std::mem::take(&mut self.operations) {
            out.push(Action::Complete(operation.reply, Err(error.clone())));
        }
    }

    /// Fails every operation whose deadline is not after `now` with [`ClientError::Timeout`].
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Action<R>>) {
        let expired: Vec<u64> = self
            .operations
            .iter()
            .filter(|(_, operation)| operation.deadline <= now)
            .map(|(sequence, _)| *sequence)
            .collect();
        let timeout_ms = u64::try_from(self.operation_timeout.as_millis()).unwrap_or(u64::MAX);
        for sequence in expired {
            if let Some(operation) = self.remove(sequence) {
                out.push(Action::Complete(
                    operation.reply,
                    Err(ClientError::Timeout { timeout_ms }),
                ));
            }
        }
    }

    /// Handles one packet from the hub.
    pub(crate) fn on_packet(
        &mut self,
        packet: Packet,
        out: &mut Vec<Action<R>>,
    ) -> Result<(), ProtocolViolation> {
        match packet {
            Packet::PubAck(packet_id) => {
                self.on_puback(packet_id, out);
                Ok(())
            }
            Packet::SubAck(suback) => {
                self.on_suback(suback, out);
                Ok(())
            }
            Packet::Publish(publish) => self.on_publish(publish, out),
            Packet::PingResp | Packet::UnsubAck(_) => Ok(()),
            other => Err(ProtocolViolation(format!(
                "unexpected {} from the hub",
                other.packet_type()
            ))),
        }
    }

    fn on_puback(&mut self, packet_id: PacketId, out: &mut Vec<Action<R>>) {
        let Some(sequence) = self.publishes.remove(&packet_id) else {
            // A late acknowledgement of an operation that already timed out.
            return;
        };
        let is_twin = matches!(
            self.operations
                .get(&sequence)
                .map(|operation| &operation.request),
            Some(Request::Twin(_))
        );
        if is_twin {
            if let Some(operation) = self.operations.get_mut(&sequence) {
                operation.stage = Stage::AwaitingTwinResponse;
            }
        } else if let Some(operation) = self.operations.remove(&sequence) {
            out.push(Action::Complete(operation.reply, Ok(Outcome::Done)));
        }
    }

    fn on_suback(&mut self, suback: SubAck, out: &mut Vec<Action<R>>) {
        let Some(subscription) = self.subscribe_packets.remove(&suback.packet_id) else {
            return;
        };
        let granted = matches!(
            suback.return_codes.first(),
            Some(SubscribeReturnCode::Granted(_))
        );
        let waiting: Vec<u64> = self
            .operations
            .iter()
            .filter(|(_, operation)| {
                operation.stage == Stage::AwaitingSubscription(subscription.clone())
            })
            .map(|(sequence, _)| *sequence)
            .collect();
        if granted {
            self.subscriptions
                .insert(subscription, SubscriptionState::Active);
            for sequence in waiting {
                self.drive(sequence, out);
            }
        } else {
            tracing::warn!(filter = %subscription, "hub refused subscription");
            let filter = subscription.to_filter();
            self.subscriptions.remove(&subscription);
            for sequence in waiting {
                if let Some(operation) = self.operations.remove(&sequence) {
                    out.push(Action::Complete(
                        operation.reply,
                        Err(ClientError::SubscriptionRefused {
                            filter: filter.clone(),
                        }),
                    ));
                }
            }
        }
    }

    fn on_publish(
        &mut self,
        publish: Publish,
        out: &mut Vec<Action<R>>,
    ) -> Result<(), ProtocolViolation> {
        let ack = match publish.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => publish.packet_id,
            QoS::ExactlyOnce => {
                return Err(ProtocolViolation(format!(
                    "QoS 2 publish on {} although every subscription asked for QoS 1",
                    publish.topic
                )));
            }
        };
        let acknowledge = |out: &mut Vec<Action<R>>| {
            if let Some(packet_id) = ack {
                out.push(Action::Send(Packet::PubAck(packet_id)));
            }
        };
        let parsed = match HubPublish::parse(&publish.topic) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(topic = %publish.topic, %error, "ignoring publish on an unknown topic");
                acknowledge(out);
                return Ok(());
            }
        };
        let event = match parsed {
            HubPublish::TwinResponse {
                status,
                rid,
                version,
            } => {
                acknowledge(out);
                self.on_twin_response(&rid, status, version, &publish.payload, out);
                return Ok(());
            }
            HubPublish::DesiredPropertiesPatch { version } => {
                match serde_json::from_slice(&publish.payload) {
                    Ok(patch) => ClientEvent::DesiredPropertiesPatch { version, patch },
                    Err(error) => {
                        tracing::warn!(version, %error, "ignoring desired-properties patch that is not JSON");
                        acknowledge(out);
                        return Ok(());
                    }
                }
            }
            HubPublish::MethodRequest { method_name, rid } => {
                ClientEvent::MethodRequest(MethodRequest {
                    method_name,
                    rid,
                    payload: publish.payload,
                })
            }
            HubPublish::CloudToDevice { device, properties }
                if device == self.identity.device && self.identity.module.is_none() =>
            {
                ClientEvent::CloudToDevice(properties.into_message(publish.payload))
            }
            HubPublish::ModuleInput {
                device,
                module,
                input_name,
                properties,
            } if device == self.identity.device
                && Some(&module) == self.identity.module.as_ref() =>
            {
                let mut message = properties.into_message(publish.payload);
                message.system.input_name = Some(input_name.clone());
                ClientEvent::ModuleInput {
                    input_name,
                    message,
                }
            }
            HubPublish::CloudToDevice { .. } | HubPublish::ModuleInput { .. } => {
                tracing::warn!(topic = %publish.topic, "ignoring a message addressed to another identity");
                acknowledge(out);
                return Ok(());
            }
        };
        out.push(Action::Deliver {
            event: Box::new(event),
            ack,
        });
        Ok(())
    }

    fn on_twin_response(
        &mut self,
        rid: &str,
        status: u16,
        version: Option<u64>,
        body: &Bytes,
        out: &mut Vec<Action<R>>,
    ) {
        let Some(sequence) = self.twin_requests.get(rid).copied() else {
            // The answer to a request that already timed out, or to another client's request.
            return;
        };
        let Some(operation) = self.remove(sequence) else {
            return;
        };
        let Request::Twin(twin_request) = &operation.request else {
            return;
        };
        let result = twin_result(twin_request, status, version, body);
        out.push(Action::Complete(operation.reply, result));
    }

    /// Sends the operation at `sequence` as far as it can go now. The core must be connected.
    fn drive(&mut self, sequence: u64, out: &mut Vec<Action<R>>) {
        let Some(operation) = self.operations.get(&sequence) else {
            return;
        };
        let needed_subscription = match &operation.request {
            Request::Publish { .. } => None,
            Request::Twin(_) => Some(ClientSubscription::TwinResponses),
            Request::Subscribe(subscription) => Some(subscription.clone()),
        };
        if let Some(subscription) = needed_subscription {
            let state = *self
                .subscriptions
                .entry(subscription.clone())
                .or_insert(SubscriptionState::Inactive);
            match state {
                SubscriptionState::Active => {}
                SubscriptionState::Inactive | SubscriptionState::Requested(_) => {
                    if state == SubscriptionState::Inactive {
                        self.request_subscription(subscription.clone(), out);
                    }
                    if let Some(operation) = self.operations.get_mut(&sequence) {
                        operation.stage = Stage::AwaitingSubscription(subscription);
                    }
                    return;
                }
            }
        }
        if matches!(
            self.operations
                .get(&sequence)
                .map(|operation| &operation.request),
            Some(Request::Subscribe(_))
        ) {
            if let Some(operation) = self.operations.remove(&sequence) {
                out.push(Action::Complete(operation.reply, Ok(Outcome::Done)));
            }
            return;
        }
        let packet_id = self.allocate_packet_id();
        let Some(operation) = self.operations.get_mut(&sequence) else {
            return;
        };
        let publish = match &operation.request {
            // Handled above: an active subscription completes its operation without a packet.
            Request::Subscribe(_) => return,
            Request::Publish { topic, payload } => {
                Publish::with_packet_id(topic.clone(), QoS::AtLeastOnce, packet_id, payload.clone())
            }
            Request::Twin(twin_request) => {
                self.twin_requests
                    .insert(twin_request.rid().to_owned(), sequence);
                twin_request.publish(packet_id)
            }
        };
        operation.stage = Stage::AwaitingPubAck(packet_id);
        self.publishes.insert(packet_id, sequence);
        out.push(Action::Send(Packet::Publish(publish)));
    }

    fn request_subscription(&mut self, subscription: ClientSubscription, out: &mut Vec<Action<R>>) {
        let packet_id = self.allocate_packet_id();
        out.push(Action::Send(Packet::Subscribe(Subscribe {
            packet_id,
            filters: vec![SubscribeFilter {
                filter: subscription.to_filter(),
                requested_qos: QoS::AtLeastOnce,
            }],
        })));
        self.subscribe_packets
            .insert(packet_id, subscription.clone());
        self.subscriptions
            .insert(subscription, SubscriptionState::Requested(packet_id));
    }

    /// The next packet id not used by an outstanding PUBLISH or SUBSCRIBE. The in-flight window
    /// keeps far fewer than 65535 outstanding, so the search ends quickly.
    fn allocate_packet_id(&mut self) -> PacketId {
        loop {
            let candidate = self.next_packet_id;
            self.next_packet_id = candidate.next();
            if !self.publishes.contains_key(&candidate)
                && !self.subscribe_packets.contains_key(&candidate)
            {
                return candidate;
            }
        }
    }

    /// Removes an operation with its packet-id and request-id index entries.
    fn remove(&mut self, sequence: u64) -> Option<Operation<R>> {
        let operation = self.operations.remove(&sequence)?;
        if let Stage::AwaitingPubAck(packet_id) = operation.stage {
            self.publishes.remove(&packet_id);
        }
        if let Request::Twin(twin_request) = &operation.request
            && self.twin_requests.get(twin_request.rid()) == Some(&sequence)
        {
            self.twin_requests.remove(twin_request.rid());
        }
        Some(operation)
    }
}

/// Interprets a twin response: status 300 and above is an error; a GET answers the twin document, a
/// reported PATCH the new version.
fn twin_result(
    request: &TwinRequest,
    status: u16,
    version: Option<u64>,
    body: &Bytes,
) -> Result<Outcome, ClientError> {
    if status >= 300 {
        return Err(ClientError::TwinStatus {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
    match request {
        TwinRequest::Get { .. } => {
            serde_json::from_slice(body)
                .map(Outcome::Twin)
                .map_err(|error| ClientError::InvalidTwinResponse {
                    reason: format!("twin document is not JSON: {error}"),
                })
        }
        TwinRequest::PatchReported { .. } => {
            version
                .map(Outcome::ReportedVersion)
                .ok_or_else(|| ClientError::InvalidTwinResponse {
                    reason: "reported-properties response has no $version".to_owned(),
                })
        }
    }
}

#[cfg(test)]
mod tests;
