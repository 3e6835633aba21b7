//! One client connection, from CONNECT to close: the IoT Hub dialect of MQTT 3.1.1 over any byte
//! stream. Everything a connection owns lives in the one task that runs [`serve`].

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use iothub_topics::{ClientPublish, ClientSubscription, HubPublish};
use iothub_types::{Identity, Message};
use mqtt_codec::{
    CodecError, ConnAck, Connect, ConnectReturnCode, MqttCodec, Packet, PacketId, Publish, QoS,
    SubAck, Subscribe, SubscribeReturnCode, Unsubscribe,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use crate::backend::{
    Backend, ConnectRefusal, ConnectRequest, DeliveryTag, DisconnectReason, Disconnection,
    MethodResponse, Principal, SessionInfo, TwinReply,
};
use crate::session_table::SubscriptionChanges;
use crate::sessions::{ConnectionHandle, OutboundPublish};
use crate::username::ConnectUsername;
use crate::{FrontendShared, TransportInfo};

/// The application property IoT Hub adds to telemetry published with the RETAIN flag.
const RETAIN_PROPERTY: &str = "mqtt-retain";
/// The application property IoT Hub adds to a will message it publishes as telemetry.
const MESSAGE_TYPE_PROPERTY: &str = "iothub-MessageType";
/// The longest piece of a client-supplied topic quoted in a log line or disconnect reason.
const MAX_QUOTED_TOPIC_CHARACTERS: usize = 96;

/// The initial size of the read and write buffers. Small, because idle connections are many;
/// the buffers grow for large packets.
const IDLE_BUFFER_CAPACITY: usize = 256;
/// A read or write buffer grown beyond this by a large packet is released once it is empty again.
const LARGE_BUFFER_CAPACITY: usize = 64 * 1024;
/// Bytes of packets gathered before the write buffer is flushed on its own (about one TLS record):
/// the packets of one step go out in one write. (`Framed::with_capacity` would otherwise flush
/// before every packet bigger than the idle capacity, one system call per delivery.)
const WRITE_BATCH_BYTES: usize = 16 * 1024;

fn shrink_if_large(buffer: &mut bytes::BytesMut) {
    if buffer.is_empty() && buffer.capacity() > LARGE_BUFFER_CAPACITY {
        *buffer = bytes::BytesMut::with_capacity(IDLE_BUFFER_CAPACITY);
    }
}

/// A stand-in deadline for connections without keep-alive; its branch is disabled anyway.
const NO_KEEP_ALIVE: Duration = Duration::from_secs(365 * 86_400);

type Transport<S> = Framed<S, MqttCodec>;

/// A backend operation started for an inbound packet, resolved in packet order.
type PendingOperation<'a> = Pin<Box<dyn Future<Output = Completion> + Send + 'a>>;

/// Packets already buffered from the client that are handled before the answers to them are
/// written (one write instead of one per packet); bounds the work between two writes.
const MAX_PACKETS_PER_WRITE: usize = 64;

/// How long a closing connection waits for its started backend operations to finish.
const CLOSING_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do when a pending backend operation finishes.
enum Completion {
    /// Acknowledge the publish (if it was QoS 1).
    Acknowledge(Option<PacketId>),
    /// Acknowledge the publish and answer on the twin response topic.
    TwinResponse {
        acknowledge: Option<PacketId>,
        rid: String,
        reply: TwinReply,
    },
    /// Close the connection without acknowledging.
    Close(DisconnectReason),
    /// Nothing to send.
    Nothing,
}

/// Serves one connection until it ends. Never panics on client input; every error closes only
/// this connection.
pub(crate) async fn serve<B: Backend, S>(
    shared: &FrontendShared<B>,
    stream: S,
    transport_info: TransportInfo,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let config = &shared.config;
    let mut transport = Framed::with_capacity(
        stream,
        MqttCodec::new(config.max_packet_size),
        IDLE_BUFFER_CAPACITY,
    );
    transport.set_backpressure_boundary(WRITE_BATCH_BYTES);

    let connect = match tokio::time::timeout(config.connect_timeout, transport.next()).await {
        Err(_) => {
            tracing::debug!("no CONNECT before the connect timeout");
            return;
        }
        Ok(None) => return,
        Ok(Some(Ok(Packet::Connect(connect)))) => connect,
        Ok(Some(Ok(other))) => {
            tracing::debug!(packet = %other.packet_type(), "first packet is not CONNECT");
            return;
        }
        Ok(Some(Err(CodecError::Decode(error)))) => {
            tracing::debug!(%error, "malformed CONNECT");
            if let Some(code) = error.connack_return_code() {
                let _ = send_connack(&mut transport, false, code).await;
            }
            return;
        }
        Ok(Some(Err(error))) => {
            tracing::debug!(%error, "connection failed before CONNECT");
            return;
        }
    };

    let (request, will) = match validate_connect(connect, &transport_info) {
        Ok(validated) => validated,
        Err(refusal) => {
            let _ = send_connack(&mut transport, false, refusal.return_code()).await;
            return;
        }
    };
    let principal = match Box::pin(shared.backend.authenticate(&request)).await {
        Ok(principal) if principal.identity == request.identity => principal,
        Ok(principal) => {
            tracing::error!(
                requested = %request.identity,
                authenticated = %principal.identity,
                "backend authenticated a different identity; refusing"
            );
            let _ = send_connack(&mut transport, false, ConnectReturnCode::NotAuthorized).await;
            return;
        }
        Err(refusal) => {
            tracing::info!(identity = %request.identity, ?refusal, "connection refused");
            let _ = send_connack(&mut transport, false, refusal.return_code()).await;
            return;
        }
    };

    let connection_id = shared.next_connection_id();
    let (outbound_sender, outbound) = mpsc::channel(config.outbound_queue_capacity.max(1));
    let (kick_sender, kick) = oneshot::channel();
    let handle = ConnectionHandle {
        outbound: outbound_sender,
        kick: kick_sender,
    };
    let attached = match shared
        .sessions
        .attach(
            &principal.identity,
            connection_id,
            request.clean_session,
            handle,
        )
        .await
    {
        Ok(attached) => attached,
        Err(_) => {
            let _ = send_connack(&mut transport, false, ConnectReturnCode::ServerUnavailable).await;
            return;
        }
    };
    let session = SessionInfo {
        principal,
        connection_id,
        transport: transport_info.transport,
        clean_session: request.clean_session,
        session_present: attached.session_present,
        subscriptions: attached
            .subscriptions
            .iter()
            .map(|(subscription, _)| subscription.clone())
            .collect(),
        model_id: request.username.model_id.clone(),
    };
    if send_connack(
        &mut transport,
        attached.session_present,
        ConnectReturnCode::Accepted,
    )
    .await
    .is_err()
    {
        let _ = shared
            .sessions
            .detach(&session.principal.identity, connection_id)
            .await;
        return;
    }
    tracing::info!(
        identity = %session.principal.identity,
        connection = %connection_id,
        session_present = session.session_present,
        "client connected"
    );
    Box::pin(shared.backend.connected(&session)).await;

    let mut connection = Connection {
        shared,
        transport,
        session: &session,
        subscriptions: session.subscriptions.clone(),
        inflight: Vec::new(),
        window_full: false,
        next_packet_id: PacketId::new(1).unwrap_or_else(|| unreachable!("1 is non-zero")),
        keep_alive_timeout: keep_alive_timeout(
            request.keep_alive_secs,
            config.max_keep_alive_timeout,
        ),
    };
    let mut outbound = outbound;
    let reason = connection.run(&mut outbound, kick).await;

    tracing::info!(
        identity = %session.principal.identity,
        connection = %connection_id,
        ?reason,
        "client disconnected"
    );
    if let Some(will) = will
        && publishes_will(&reason)
        && Box::pin(shared.backend.telemetry(&session.principal, will))
            .await
            .is_err()
    {
        tracing::debug!(identity = %session.principal.identity, "will message refused");
    }
    let _ = shared
        .sessions
        .detach(&session.principal.identity, connection_id)
        .await;
    // The registry no longer holds the sender, so draining the queue now sees every push that
    // made it in.
    outbound.close();
    let mut undelivered: Vec<DeliveryTag> =
        connection.inflight.iter().map(|(_, tag)| *tag).collect();
    while let Ok(publish) = outbound.try_recv() {
        undelivered.extend(publish.tag);
    }
    Box::pin(shared.backend.disconnected(
        &session,
        Disconnection {
            reason,
            undelivered,
        },
    ))
    .await;
}

struct Connection<'a, B, S> {
    shared: &'a FrontendShared<B>,
    transport: Transport<S>,
    session: &'a SessionInfo,
    /// The session's subscriptions, mirrored from the registry (which owns them).
    subscriptions: Vec<ClientSubscription>,
    /// QoS 1 deliveries sent and not yet acknowledged, in send order.
    inflight: Vec<(PacketId, DeliveryTag)>,
    /// Set when the in-flight window filled up, cleared when it is half empty again: a busy
    /// client gets its deliveries in runs of half a window per write instead of one per PUBACK.
    window_full: bool,
    next_packet_id: PacketId,
    keep_alive_timeout: Option<Duration>,
}

impl<'a, B: Backend, S: AsyncRead + AsyncWrite + Unpin + Send> Connection<'a, B, S> {
    /// The connection's event loop. Every branch of the `select!` is cancellation-safe: the
    /// framed reader, the channel receivers, the ordered futures and the timer all keep their
    /// state when another branch wins.
    async fn run(
        &mut self,
        outbound: &mut mpsc::Receiver<Box<OutboundPublish>>,
        mut kick: oneshot::Receiver<DisconnectReason>,
    ) -> DisconnectReason {
        let shared: &'a FrontendShared<B> = self.shared;
        let session: &'a SessionInfo = self.session;
        let config = &shared.config;
        let backend = &shared.backend;
        let principal = &session.principal;
        let mut pending: FuturesOrdered<PendingOperation<'a>> = FuturesOrdered::new();
        let keep_alive_deadline =
            tokio::time::sleep(self.keep_alive_timeout.unwrap_or(NO_KEEP_ALIVE));
        tokio::pin!(keep_alive_deadline);

        let reason = 'serve: loop {
            let may_read = pending.len() < config.max_inbound_pending.max(1);
            let may_send = self.may_send();
            // Branch order matters (`biased`): a kick wins over everything; a packet that is
            // already waiting is read before the keep-alive deadline is considered; and the
            // deadline is not enforced while reading is paused for backpressure, because then
            // the silence is ours, not the client's.
            let step = tokio::select! {
                biased;
                reason = &mut kick => ControlFlow::Break(reason.unwrap_or(DisconnectReason::Shutdown)),
                Some(completion) = pending.next(), if !pending.is_empty() => {
                    Box::pin(self.complete(completion)).await
                }
                Some(publish) = outbound.recv(), if may_send => {
                    Box::pin(self.deliver(publish, backend, principal, &mut pending)).await
                }
                packet = self.transport.next(), if may_read => {
                    if let Some(timeout) = self.keep_alive_timeout {
                        keep_alive_deadline.as_mut().reset(Instant::now() + timeout);
                    }
                    Box::pin(self.on_packet(packet, backend, principal, &mut pending)).await
                }
                () = &mut keep_alive_deadline, if self.keep_alive_timeout.is_some() && may_read => {
                    ControlFlow::Break(DisconnectReason::KeepAliveTimeout)
                }
            };
            if let ControlFlow::Break(reason) = step {
                break 'serve reason;
            }
            // Packets the client has already sent (still in the read buffer) are handled before
            // anything is written, so that one write answers them all.
            let mut buffered_packets = 0;
            while buffered_packets < MAX_PACKETS_PER_WRITE
                && !self.transport.read_buffer().is_empty()
                && pending.len() < config.max_inbound_pending.max(1)
            {
                let Some(packet) = self.transport.next().now_or_never() else {
                    break;
                };
                buffered_packets += 1;
                if let Some(timeout) = self.keep_alive_timeout {
                    keep_alive_deadline.as_mut().reset(Instant::now() + timeout);
                }
                let handled =
                    Box::pin(self.on_packet(packet, backend, principal, &mut pending)).await;
                if let ControlFlow::Break(reason) = handled {
                    break 'serve reason;
                }
            }
            // Backend operations that have already finished (a group commit acknowledges many
            // publishes at once) are answered in the same write as this step's packets: one
            // TLS record and one system call per burst instead of one per PUBACK.
            while !pending.is_empty() {
                let Some(Some(completion)) = pending.next().now_or_never() else {
                    break;
                };
                if let ControlFlow::Break(reason) = Box::pin(self.complete(completion)).await {
                    break 'serve reason;
                }
            }
            // Deliveries already queued (a pump pushes a window of module inputs at once) go out
            // in the same write, as far as the in-flight window allows.
            while self.may_send() {
                let Ok(publish) = outbound.try_recv() else {
                    break;
                };
                let delivered =
                    Box::pin(self.deliver(publish, backend, principal, &mut pending)).await;
                if let ControlFlow::Break(reason) = delivered {
                    break 'serve reason;
                }
            }
            if SinkExt::<Packet>::flush(&mut self.transport).await.is_err() {
                break 'serve DisconnectReason::ConnectionLost;
            }
        };
        // Operations already started finish even though the connection is over: the client's
        // PUBACKs read in the last step still acknowledge their deliveries, and its accepted
        // messages are still stored. Nothing more is written to the client.
        let _ = tokio::time::timeout(CLOSING_DRAIN_TIMEOUT, async {
            while pending.next().await.is_some() {}
        })
        .await;
        reason
    }

    /// Whether another QoS 1 delivery may go out now (see `window_full`).
    fn may_send(&mut self) -> bool {
        let window = self.shared.config.max_outbound_inflight.max(1);
        if self.inflight.len() >= window {
            self.window_full = true;
        } else if self.inflight.len() <= window / 2 {
            self.window_full = false;
        }
        !self.window_full
    }

    /// Handles the outcome of reading one packet from the client.
    async fn on_packet(
        &mut self,
        packet: Option<Result<Packet, CodecError>>,
        backend: &'a B,
        principal: &'a Principal,
        pending: &mut FuturesOrdered<PendingOperation<'a>>,
    ) -> ControlFlow<DisconnectReason> {
        match packet {
            None => ControlFlow::Break(DisconnectReason::ConnectionLost),
            Some(Err(CodecError::Io(_))) => ControlFlow::Break(DisconnectReason::ConnectionLost),
            Some(Err(error)) => {
                ControlFlow::Break(DisconnectReason::ProtocolViolation(error.to_string()))
            }
            Some(Ok(packet)) => {
                self.release_large_buffers();
                Box::pin(self.receive(packet, backend, principal, pending)).await
            }
        }
    }

    /// Handles one packet from the client.
    async fn receive(
        &mut self,
        packet: Packet,
        backend: &'a B,
        principal: &'a Principal,
        pending: &mut FuturesOrdered<PendingOperation<'a>>,
    ) -> ControlFlow<DisconnectReason> {
        match packet {
            Packet::Publish(publish) => {
                let operation = self.start_publish(publish, backend, principal)?;
                pending.push_back(operation);
                ControlFlow::Continue(())
            }
            Packet::PubAck(packet_id) => {
                if let Some(index) = self.inflight.iter().position(|(id, _)| *id == packet_id) {
                    let (_, tag) = self.inflight.remove(index);
                    pending.push_back(Box::pin(async move {
                        backend.delivery_acknowledged(principal, tag).await;
                        Completion::Nothing
                    }));
                }
                ControlFlow::Continue(())
            }
            Packet::Subscribe(subscribe) => self.subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(unsubscribe).await,
            Packet::PingReq => self.feed(Packet::PingResp).await,
            Packet::Disconnect => ControlFlow::Break(DisconnectReason::ClientDisconnected),
            other => ControlFlow::Break(DisconnectReason::ProtocolViolation(format!(
                "unexpected {} from client",
                other.packet_type()
            ))),
        }
    }

    /// Checks a PUBLISH and starts the backend operation it asks for.
    fn start_publish(
        &self,
        publish: Publish,
        backend: &'a B,
        principal: &'a Principal,
    ) -> ControlFlow<DisconnectReason, PendingOperation<'a>> {
        if publish.qos == QoS::ExactlyOnce {
            return ControlFlow::Break(DisconnectReason::ProtocolViolation(
                "QoS 2 publish is not supported".to_owned(),
            ));
        }
        let acknowledge = publish.packet_id;
        let parsed = match ClientPublish::parse_for(&principal.identity, &publish.topic) {
            Ok(parsed) => parsed,
            Err(error) => {
                return ControlFlow::Break(DisconnectReason::ProtocolViolation(format!(
                    "publish to {:?} refused: {error}",
                    quote_topic(&publish.topic)
                )));
            }
        };
        let operation: PendingOperation<'a> = match parsed {
            ClientPublish::Telemetry { properties, .. } => {
                let mut message = properties.into_message(publish.payload);
                if publish.retain {
                    message
                        .application
                        .push((RETAIN_PROPERTY.to_owned(), Some("true".to_owned())));
                }
                if let Err(error) = message.check_limits(self.shared.config.max_message_size) {
                    return ControlFlow::Break(DisconnectReason::ProtocolViolation(format!(
                        "telemetry refused: {error}"
                    )));
                }
                Box::pin(async move {
                    match backend.telemetry(principal, message).await {
                        Ok(()) => Completion::Acknowledge(acknowledge),
                        Err(error) => Completion::Close(DisconnectReason::TelemetryRejected(
                            error.to_string(),
                        )),
                    }
                })
            }
            ClientPublish::TwinGet { rid } => Box::pin(async move {
                let reply = backend.twin_get(principal).await;
                Completion::TwinResponse {
                    acknowledge,
                    rid,
                    reply,
                }
            }),
            ClientPublish::TwinPatchReported { rid, version } => Box::pin(async move {
                let reply = backend
                    .twin_patch_reported(principal, publish.payload, version)
                    .await;
                Completion::TwinResponse {
                    acknowledge,
                    rid,
                    reply,
                }
            }),
            ClientPublish::MethodResponse { status, rid } => Box::pin(async move {
                let response = MethodResponse {
                    rid,
                    status,
                    payload: publish.payload,
                };
                backend.method_response(principal, response).await;
                Completion::Acknowledge(acknowledge)
            }),
        };
        ControlFlow::Continue(operation)
    }

    /// Sends what a finished backend operation produced.
    async fn complete(&mut self, completion: Completion) -> ControlFlow<DisconnectReason> {
        match completion {
            Completion::Nothing | Completion::Acknowledge(None) => ControlFlow::Continue(()),
            Completion::Acknowledge(Some(packet_id)) => self.feed(Packet::PubAck(packet_id)).await,
            Completion::TwinResponse {
                acknowledge,
                rid,
                reply,
            } => {
                if let Some(packet_id) = acknowledge {
                    self.feed(Packet::PubAck(packet_id)).await?;
                }
                let topic = HubPublish::TwinResponse {
                    status: reply.status,
                    rid,
                    version: reply.version,
                }
                .to_topic();
                self.feed(Packet::Publish(Publish::at_most_once(topic, reply.body)))
                    .await
            }
            Completion::Close(reason) => ControlFlow::Break(reason),
        }
    }

    /// Sends one push from the registry.
    async fn deliver(
        &mut self,
        publish: Box<OutboundPublish>,
        backend: &'a B,
        principal: &'a Principal,
        pending: &mut FuturesOrdered<PendingOperation<'a>>,
    ) -> ControlFlow<DisconnectReason> {
        let OutboundPublish {
            topic,
            payload,
            qos,
            tag,
        } = *publish;
        match (qos, tag) {
            (QoS::AtMostOnce, tag) => {
                self.feed(Packet::Publish(Publish::at_most_once(topic, payload)))
                    .await?;
                // A delivery that went out at QoS 0 (the client subscribed at QoS 0) is complete
                // once written.
                if let Some(tag) = tag {
                    pending.push_back(Box::pin(async move {
                        backend.delivery_acknowledged(principal, tag).await;
                        Completion::Nothing
                    }));
                }
                ControlFlow::Continue(())
            }
            (_, tag) => {
                let packet_id = self.allocate_packet_id();
                if let Some(tag) = tag {
                    self.inflight.push((packet_id, tag));
                }
                self.feed(Packet::Publish(Publish::with_packet_id(
                    topic,
                    QoS::AtLeastOnce,
                    packet_id,
                    payload,
                )))
                .await
            }
        }
    }

    async fn subscribe(&mut self, subscribe: Subscribe) -> ControlFlow<DisconnectReason> {
        let identity = &self.session.principal.identity;
        let mut changes = SubscriptionChanges::default();
        let mut return_codes = Vec::with_capacity(subscribe.filters.len());
        let mut prospective = self.subscriptions.clone();
        for filter in &subscribe.filters {
            let subscription = match ClientSubscription::parse_for(identity, &filter.filter) {
                Ok(subscription) => subscription,
                Err(error) => {
                    return ControlFlow::Break(DisconnectReason::ProtocolViolation(format!(
                        "subscription to {:?} refused: {error}",
                        quote_topic(&filter.filter)
                    )));
                }
            };
            if !prospective.contains(&subscription) {
                if prospective.len() >= self.shared.config.max_subscriptions {
                    return_codes.push(SubscribeReturnCode::Failure);
                    continue;
                }
                prospective.push(subscription.clone());
            }
            // IoT Hub does not support QoS 2: a QoS 2 request is granted QoS 1.
            let granted = filter.requested_qos.min(QoS::AtLeastOnce);
            return_codes.push(SubscribeReturnCode::Granted(granted));
            changes.add.push((subscription, granted));
        }
        let changed = !changes.add.is_empty();
        self.apply_subscription_changes(changes).await?;
        self.feed(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            return_codes,
        }))
        .await?;
        if changed {
            self.transport_flush().await?;
            self.shared
                .backend
                .subscriptions_changed(self.session, &self.subscriptions)
                .await;
        }
        ControlFlow::Continue(())
    }

    async fn unsubscribe(&mut self, unsubscribe: Unsubscribe) -> ControlFlow<DisconnectReason> {
        let identity = &self.session.principal.identity;
        // Filters that are not IoT Hub subscriptions cannot be held, so removing them is a no-op.
        let remove: Vec<ClientSubscription> = unsubscribe
            .filters
            .iter()
            .filter_map(|filter| ClientSubscription::parse_for(identity, filter).ok())
            .filter(|subscription| self.subscriptions.contains(subscription))
            .collect();
        let changed = !remove.is_empty();
        self.apply_subscription_changes(SubscriptionChanges {
            add: Vec::new(),
            remove,
        })
        .await?;
        self.feed(Packet::UnsubAck(unsubscribe.packet_id)).await?;
        if changed {
            self.transport_flush().await?;
            self.shared
                .backend
                .subscriptions_changed(self.session, &self.subscriptions)
                .await;
        }
        ControlFlow::Continue(())
    }

    async fn apply_subscription_changes(
        &mut self,
        changes: SubscriptionChanges,
    ) -> ControlFlow<DisconnectReason> {
        if changes.add.is_empty() && changes.remove.is_empty() {
            return ControlFlow::Continue(());
        }
        let updated = self
            .shared
            .sessions
            .update_subscriptions(
                &self.session.principal.identity,
                self.session.connection_id,
                changes,
            )
            .await;
        match updated {
            Ok(Some(subscriptions)) => {
                self.subscriptions = subscriptions
                    .into_iter()
                    .map(|(subscription, _)| subscription)
                    .collect();
                ControlFlow::Continue(())
            }
            // This connection is no longer the session's live one: it is being replaced or
            // disconnected, and the kick is on its way.
            Ok(None) => ControlFlow::Break(DisconnectReason::SessionTakenOver),
            Err(_) => ControlFlow::Break(DisconnectReason::Shutdown),
        }
    }

    /// Gives back the memory a large packet made the read or write buffer grow to, once nothing is
    /// left in it, so that a connection that once carried 256 KB does not keep 256 KB while idle.
    fn release_large_buffers(&mut self) {
        shrink_if_large(self.transport.read_buffer_mut());
        shrink_if_large(self.transport.write_buffer_mut());
    }

    fn allocate_packet_id(&mut self) -> PacketId {
        // The in-flight window is far smaller than the identifier space, so this terminates.
        let mut candidate = self.next_packet_id;
        while self.inflight.iter().any(|(id, _)| *id == candidate) {
            candidate = candidate.next();
        }
        self.next_packet_id = candidate.next();
        candidate
    }

    async fn feed(&mut self, packet: Packet) -> ControlFlow<DisconnectReason> {
        match self.transport.feed(packet).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(DisconnectReason::ConnectionLost),
        }
    }

    async fn transport_flush(&mut self) -> ControlFlow<DisconnectReason> {
        match SinkExt::<Packet>::flush(&mut self.transport).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(DisconnectReason::ConnectionLost),
        }
    }
}

/// Checks the CONNECT against IoT Hub's rules and builds the authentication request, plus the
/// will message (as telemetry) if the client set one.
fn validate_connect(
    connect: Connect,
    transport_info: &TransportInfo,
) -> Result<(ConnectRequest, Option<Message>), ConnectRefusal> {
    let identity: Identity = connect
        .client_id
        .parse()
        .map_err(|_| ConnectRefusal::IdentifierRejected)?;
    let username = connect
        .username
        .as_deref()
        .ok_or(ConnectRefusal::BadUserNameOrPassword)?;
    let username =
        ConnectUsername::parse(username).map_err(|_| ConnectRefusal::BadUserNameOrPassword)?;
    if username.identity != identity {
        return Err(ConnectRefusal::BadUserNameOrPassword);
    }
    let will = match connect.will {
        None => None,
        Some(will) => match ClientPublish::parse_for(&identity, &will.topic) {
            Ok(ClientPublish::Telemetry { properties, .. }) if will.qos != QoS::ExactlyOnce => {
                let mut message = properties.into_message(will.payload);
                message
                    .application
                    .push((MESSAGE_TYPE_PROPERTY.to_owned(), Some("Will".to_owned())));
                Some(message)
            }
            _ => return Err(ConnectRefusal::NotAuthorized),
        },
    };
    let request = ConnectRequest {
        client_id: connect.client_id,
        identity,
        username,
        password: connect.password,
        client_certificate: transport_info.client_certificate.clone(),
        transport: transport_info.transport,
        clean_session: connect.clean_session,
        keep_alive_secs: connect.keep_alive,
    };
    Ok((request, will))
}

/// IoT Hub closes a connection after 1.5 times the client's keep-alive without traffic, capped.
fn keep_alive_timeout(keep_alive_secs: u16, cap: Duration) -> Option<Duration> {
    if keep_alive_secs == 0 {
        return None;
    }
    Some(Duration::from_millis(u64::from(keep_alive_secs) * 1500).min(cap))
}

/// Whether the will message is published when a connection ends for `reason`: only when it ends
/// without DISCONNECT through the client's or the network's doing.
fn publishes_will(reason: &DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::ConnectionLost
            | DisconnectReason::KeepAliveTimeout
            | DisconnectReason::ProtocolViolation(_)
            | DisconnectReason::SessionTakenOver
    )
}

async fn send_connack<S: AsyncRead + AsyncWrite + Unpin>(
    transport: &mut Transport<S>,
    session_present: bool,
    return_code: ConnectReturnCode,
) -> Result<(), CodecError> {
    transport
        .send(Packet::ConnAck(ConnAck {
            session_present: session_present && return_code == ConnectReturnCode::Accepted,
            return_code,
        }))
        .await
}

fn quote_topic(topic: &str) -> String {
    match topic.char_indices().nth(MAX_QUOTED_TOPIC_CHARACTERS) {
        None => topic.to_owned(),
        Some((cut_at, _)) => format!("{}…", &topic[..cut_at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_timeout_is_one_and_a_half_times_capped() {
        let cap = Duration::from_secs(1767);
        assert_eq!(keep_alive_timeout(0, cap), None);
        assert_eq!(keep_alive_timeout(60, cap), Some(Duration::from_secs(90)));
        assert_eq!(keep_alive_timeout(1740, cap), Some(cap));
        assert_eq!(keep_alive_timeout(u16::MAX, cap), Some(cap));
    }
}
