//! The connection task: the single owner of the socket and of the session core. It connects,
//! serves the connection, reconnects with back-off, renews tokens, and executes what the core
//! decides. Client handles talk to it only through bounded channels.
//!
//! Every `select!` below is cancellation-safe: the branches are `recv`/`reserve` on tokio
//! channels, `next` on a framed reader, `flush` on a framed writer (which keeps unflushed bytes in
//! its buffer) and timers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use iothub_auth::{HostName, ResourceScope, SasToken, SasTokenStyle};
use iothub_types::Identity;
use mqtt_codec::{CodecError, ConnectReturnCode, MqttCodec, Packet, PacketId};
use tls::rustls::pki_types::ServerName;
use tls::tokio_rustls::TlsConnector;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::core::{Action, Core, Outcome, Request};
use crate::error::{ClientError, ConnectError, TokenError};
use crate::events::{ClientEvent, CloudToDeviceAck, ConnectionState, DisconnectReason};
use crate::options::{
    ClientOptions, Credentials, DEFAULT_TOKEN_TTL, ReconnectPolicy, TokenRequest, Transport,
};
use crate::wire::{backoff_delay, connect_packet, token_renewal_delay};

/// Encoded bytes waiting for the socket above which the task stops reading (so that PUBACKs for a
/// flood of deliveries cannot grow the buffer without bound while the socket is slow).
const MAX_UNFLUSHED_BYTES: usize = 256 * 1024;

/// The longest a token renewal waits for in-flight operations to finish before it disconnects.
const MAX_RENEWAL_DRAIN: Duration = Duration::from_secs(10);

/// Requests taken from the queue before the packets they produced are written.
const MAX_REQUESTS_PER_WRITE: usize = 64;

/// How long a closing connection may take to flush its DISCONNECT.
const DISCONNECT_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// A message from a client handle to the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Run an operation; the reply carries the caller's slot in the in-flight window.
    Submit {
        request: Request,
        reply: Reply,
        deadline: Instant,
    },
    /// Disconnect cleanly and end the task; `done` fires when it has.
    Shutdown { done: oneshot::Sender<()> },
}

/// Where an operation's result goes, and the in-flight window slot it occupies until then.
#[derive(Debug)]
pub(crate) struct Reply {
    pub sender: oneshot::Sender<Result<Outcome, ClientError>>,
    /// Held, never read: dropping it (with the reply) frees the window slot.
    pub _window_slot: OwnedSemaphorePermit,
}

/// What the connection task needs that never changes: resolved once when the client starts.
pub(crate) struct Settings {
    pub host_name: HostName,
    pub dial_host_name: HostName,
    pub port: u16,
    pub identity: Identity,
    pub credentials: Credentials,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    pub product_info: String,
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    pub max_packet_size: usize,
    pub reconnect: ReconnectPolicy,
    pub token_renewal_margin: Duration,
    pub manual_cloud_to_device_ack: bool,
}

impl Settings {
    /// Resolves `options`, building the TLS configuration; fails on combinations that cannot work.
    pub(crate) fn resolve(options: &ClientOptions) -> Result<Settings, ConnectError> {
        let configuration = |message: String| ConnectError::Configuration { message };
        if options.max_in_flight == 0 || options.event_queue_capacity == 0 {
            return Err(configuration(
                "max_in_flight and event_queue_capacity must be at least 1".to_owned(),
            ));
        }
        let dial_host_name = options.dial_host_name().clone();
        let tls = match &options.transport {
            Transport::Tls { trusted_roots } => {
                let config = match &options.credentials {
                    Credentials::X509(certificate) => {
                        tls::client_config_with_certificate(trusted_roots, certificate)
                    }
                    _ => tls::client_config(trusted_roots),
                }
                .map_err(|error| configuration(format!("tls configuration: {error}")))?;
                let server_name = ServerName::try_from(dial_host_name.as_str().to_owned())
                    .map_err(|error| {
                        configuration(format!(
                            "{dial_host_name} is not a TLS server name: {error}"
                        ))
                    })?;
                Some((TlsConnector::from(Arc::new(config)), server_name))
            }
            Transport::PlainTcp => {
                if matches!(options.credentials, Credentials::X509(_)) {
                    return Err(configuration(
                        "an X.509 credential needs the TLS transport".to_owned(),
                    ));
                }
                None
            }
        };
        Ok(Settings {
            host_name: options.host_name.clone(),
            dial_host_name,
            port: options.port,
            identity: options.identity.clone(),
            credentials: options.credentials.clone(),
            tls,
            product_info: options.product_info.clone(),
            keep_alive: options.keep_alive,
            connect_timeout: options.connect_timeout,
            max_packet_size: options.max_packet_size,
            reconnect: options.reconnect,
            token_renewal_margin: options.token_renewal_margin,
            manual_cloud_to_device_ack: options.manual_cloud_to_device_ack,
        })
    }
}

trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

type Reader = FramedRead<ReadHalf<Box<dyn ByteStream>>, MqttCodec>;
type Writer = FramedWrite<WriteHalf<Box<dyn ByteStream>>, MqttCodec>;

/// An accepted MQTT connection.
struct Connection {
    reader: Reader,
    writer: Writer,
    session_present: bool,
    /// When the token used for this connection expires, if it is to be renewed.
    renewable_token_expiry_unix_secs: Option<u64>,
}

/// How a served connection ended.
enum SessionEnd {
    Lost(DisconnectReason),
    RenewToken,
    Shutdown,
}

/// The connection task's state.
pub(crate) struct Owner {
    pub settings: Arc<Settings>,
    pub core: Core<Reply>,
    pub commands: mpsc::Receiver<Command>,
    pub reconnect_requests: mpsc::Receiver<()>,
    pub events: mpsc::Sender<ClientEvent>,
    /// Acknowledgements of cloud-to-device messages the application completes itself, tagged
    /// with the number of the connection that received them.
    pub acks: mpsc::Receiver<(u64, PacketId)>,
    pub ack_sender: mpsc::Sender<(u64, PacketId)>,
    /// Counts accepted connections; an acknowledgement for an earlier one is void.
    pub connection_number: u64,
    pub state: watch::Sender<ConnectionState>,
    /// Told the outcome of the first connection attempt, for [`crate::IotHubClient::connect`];
    /// the task ends if that attempt fails.
    pub first_outcome: Option<oneshot::Sender<Result<(), ConnectError>>>,
    pub shutdown_waiters: Vec<oneshot::Sender<()>>,
    pub actions: Vec<Action<Reply>>,
}

impl Owner {
    /// Runs until shutdown: connect, serve, back off, reconnect.
    pub(crate) async fn run(mut self) {
        let mut failed_attempts: u32 = 0;
        let mut renewing_token = false;
        loop {
            let attempt = self.connect_phase(renewing_token).await;
            renewing_token = false;
            let Some(attempt) = attempt else {
                self.finish();
                return;
            };
            match attempt {
                Ok(connection) => {
                    failed_attempts = 0;
                    // Publish the state before waking `connect`: its caller may submit at once,
                    // and a fail-fast submit reads this state.
                    self.state.send_replace(ConnectionState::Connected);
                    if let Some(first_outcome) = self.first_outcome.take() {
                        let _ = first_outcome.send(Ok(()));
                    }
                    tracing::debug!(identity = %self.settings.identity, "connected to the hub");
                    match self.serve(connection).await {
                        SessionEnd::Shutdown => {
                            self.finish();
                            return;
                        }
                        SessionEnd::RenewToken => {
                            tracing::debug!(identity = %self.settings.identity, "reconnecting to renew the token");
                            self.set_disconnected(DisconnectReason::TokenRenewal);
                            renewing_token = true;
                            continue;
                        }
                        SessionEnd::Lost(reason) => {
                            tracing::info!(identity = %self.settings.identity, ?reason, "connection to the hub lost");
                            self.set_disconnected(reason);
                        }
                    }
                }
                Err(error) => {
                    tracing::info!(identity = %self.settings.identity, %error, "connecting to the hub failed");
                    if let Some(first_outcome) = self.first_outcome.take() {
                        let _ = first_outcome.send(Err(error));
                        self.finish();
                        return;
                    }
                    self.set_disconnected(DisconnectReason::ConnectFailed(error));
                }
            }
            let delay = backoff_delay(
                &self.settings.reconnect,
                failed_attempts,
                rand::random::<f64>(),
            );
            failed_attempts = failed_attempts.saturating_add(1);
            if !self.back_off(delay).await {
                self.finish();
                return;
            }
        }
    }

    fn set_disconnected(&mut self, reason: DisconnectReason) {
        self.state
            .send_replace(ConnectionState::Disconnected { reason });
    }

    /// Fails what is left, publishes the final state and wakes shutdown callers.
    fn finish(&mut self) {
        self.core.fail_all(ClientError::Closed, &mut self.actions);
        self.complete_actions();
        if let Some(first_outcome) = self.first_outcome.take() {
            let _ = first_outcome.send(Err(ConnectError::Closed));
        }
        self.set_disconnected(DisconnectReason::Shutdown);
        for waiter in self.shutdown_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Handles a command while there is no connection. Returns `false` for shutdown.
    fn handle_command_offline(&mut self, command: Option<Command>) -> bool {
        match command {
            Some(Command::Submit {
                request,
                reply,
                deadline,
            }) => {
                self.core
                    .submit(request, reply, deadline, &mut self.actions);
                self.complete_actions();
                true
            }
            Some(Command::Shutdown { done }) => {
                self.shutdown_waiters.push(done);
                false
            }
            None => false,
        }
    }

    /// Executes the completions the core produced while disconnected (it sends nothing then).
    fn complete_actions(&mut self) {
        for action in self.actions.drain(..) {
            match action {
                Action::Complete(reply, result) => {
                    let _ = reply.sender.send(result);
                }
                Action::Send(packet) => {
                    debug_assert!(false, "core sent {packet:?} while disconnected");
                }
                Action::Deliver { event, .. } => {
                    debug_assert!(false, "core delivered {event:?} while disconnected");
                }
            }
        }
    }

    /// One connection attempt, serving commands meanwhile, except right after a planned token
    /// renewal: then commands wait in their queue for the reconnection (a planned renewal is not a
    /// disconnection that should fail operations). `None` means shutdown.
    async fn connect_phase(
        &mut self,
        renewing_token: bool,
    ) -> Option<Result<Connection, ConnectError>> {
        let attempt = establish(self.settings.clone());
        tokio::pin!(attempt);
        loop {
            let deadline = self.core.next_deadline();
            tokio::select! {
                result = &mut attempt => return Some(result),
                command = self.commands.recv(), if !renewing_token => {
                    if !self.handle_command_offline(command) {
                        return None;
                    }
                }
                // Already connecting: an immediate-reconnect request has nothing to cut short.
                Some(()) = self.reconnect_requests.recv() => {}
                () = sleep_until_or_never(deadline) => {
                    self.core.expire(Instant::now(), &mut self.actions);
                    self.complete_actions();
                }
            }
        }
    }

    /// Waits `delay` before the next attempt, serving commands, and cut short by
    /// [`crate::IotHubClient::reconnect_now`]. Returns `false` for shutdown.
    async fn back_off(&mut self, delay: Duration) -> bool {
        let wake_at = Instant::now() + delay;
        loop {
            let deadline = self
                .core
                .next_deadline()
                .map_or(wake_at, |deadline| deadline.min(wake_at));
            tokio::select! {
                command = self.commands.recv() => {
                    if !self.handle_command_offline(command) {
                        return false;
                    }
                }
                Some(()) = self.reconnect_requests.recv() => return true,
                () = sleep_until(deadline) => {
                    let now = Instant::now();
                    self.core.expire(now, &mut self.actions);
                    self.complete_actions();
                    if now >= wake_at {
                        return true;
                    }
                }
            }
        }
    }

    /// Serves one accepted connection until it ends.
    async fn serve(&mut self, connection: Connection) -> SessionEnd {
        let Connection {
            mut reader,
            mut writer,
            session_present,
            renewable_token_expiry_unix_secs,
        } = connection;
        // Requests for an immediate reconnect made before this connection existed are moot, and
        // so are acknowledgements of deliveries made on earlier connections.
        while self.reconnect_requests.try_recv().is_ok() {}
        while self.acks.try_recv().is_ok() {}
        self.connection_number += 1;

        let keep_alive = Some(self.settings.keep_alive).filter(|interval| !interval.is_zero());
        let mut pending_events: VecDeque<(ClientEvent, Option<PacketId>)> = VecDeque::new();
        let mut last_sent = Instant::now();
        let mut ping_sent_at: Option<Instant> = None;
        let mut renew_at = renewable_token_expiry_unix_secs.map(|expiry_unix_secs| {
            Instant::now()
                + token_renewal_delay(
                    unix_now_secs(),
                    expiry_unix_secs,
                    self.settings.token_renewal_margin,
                )
        });
        let mut renewal_drain_until: Option<Instant> = None;

        self.core.on_connected(session_present, &mut self.actions);
        match self.execute(&mut writer, &mut pending_events) {
            Ok(true) => last_sent = Instant::now(),
            Ok(false) => {}
            Err(reason) => return SessionEnd::Lost(reason),
        }

        loop {
            let now = Instant::now();
            if let Some(drain_until) = renewal_drain_until
                && (self.core.in_flight() == 0 || now >= drain_until)
            {
                self.disconnect(&mut writer).await;
                self.core.on_connection_lost(&mut self.actions);
                self.complete_actions();
                return SessionEnd::RenewToken;
            }

            let reading_paused = !pending_events.is_empty();
            let keep_alive_at = keep_alive.map(|interval| match ping_sent_at {
                Some(sent_at) => sent_at + interval,
                None => last_sent + interval,
            });
            let timer = [
                self.core.next_deadline(),
                keep_alive_at,
                renew_at,
                renewal_drain_until,
            ]
            .into_iter()
            .flatten()
            .min();
            let may_read = !reading_paused && writer.write_buffer().len() < MAX_UNFLUSHED_BYTES;

            tokio::select! {
                biased;
                flushed = SinkExt::<Packet>::flush(&mut writer), if !writer.write_buffer().is_empty() => {
                    if let Err(error) = flushed {
                        return self.lost(DisconnectReason::ConnectionLost { message: error.to_string() });
                    }
                }
                permit = self.events.clone().reserve_owned(), if reading_paused => {
                    let acknowledgements: Vec<PacketId> = match permit {
                        Ok(permit) => {
                            let (event, ack) = pending_events.pop_front().expect("reading is paused only with pending events");
                            permit.send(event);
                            ack.into_iter().collect()
                        }
                        // Nobody listens any more: drop the events but still acknowledge them.
                        Err(_) => pending_events.drain(..).filter_map(|(_, ack)| ack).collect(),
                    };
                    for packet_id in acknowledgements {
                        self.actions.push(Action::Send(Packet::PubAck(packet_id)));
                    }
                }
                packet = reader.next(), if may_read => {
                    let packet = match packet {
                        Some(Ok(packet)) => packet,
                        Some(Err(error)) => {
                            return self.lost(DisconnectReason::ConnectionLost { message: codec_error_text(&error) });
                        }
                        None => {
                            return self.lost(DisconnectReason::ConnectionLost { message: "the hub closed the connection".to_owned() });
                        }
                    };
                    ping_sent_at = None;
                    if let Err(violation) = self.core.on_packet(packet, &mut self.actions) {
                        tracing::warn!(%violation, "closing the connection");
                        self.disconnect(&mut writer).await;
                        return self.lost(DisconnectReason::ConnectionLost { message: violation.to_string() });
                    }
                }
                command = self.commands.recv(), if renewal_drain_until.is_none() => {
                    match command {
                        Some(Command::Submit { request, reply, deadline }) => {
                            self.core.submit(request, reply, deadline, &mut self.actions);
                            // Requests already queued go out in the same write.
                            for _ in 1..MAX_REQUESTS_PER_WRITE {
                                match self.commands.try_recv() {
                                    Ok(Command::Submit { request, reply, deadline }) => {
                                        self.core.submit(request, reply, deadline, &mut self.actions);
                                    }
                                    Ok(Command::Shutdown { done }) => {
                                        self.shutdown_waiters.push(done);
                                        self.disconnect(&mut writer).await;
                                        return SessionEnd::Shutdown;
                                    }
                                    Err(_) => break,
                                }
                            }
                        }
                        Some(Command::Shutdown { done }) => {
                            self.shutdown_waiters.push(done);
                            self.disconnect(&mut writer).await;
                            return SessionEnd::Shutdown;
                        }
                        None => {
                            self.disconnect(&mut writer).await;
                            return SessionEnd::Shutdown;
                        }
                    }
                }
                Some((connection, packet_id)) = self.acks.recv() => {
                    if connection == self.connection_number {
                        self.actions.push(Action::Send(Packet::PubAck(packet_id)));
                    }
                }
                // Already connected: an immediate-reconnect request has nothing to do.
                Some(()) = self.reconnect_requests.recv() => {}
                () = sleep_until_or_never(timer) => {
                    let now = Instant::now();
                    self.core.expire(now, &mut self.actions);
                    if let Some(interval) = keep_alive {
                        match ping_sent_at {
                            Some(sent_at) if now >= sent_at + interval => {
                                if reading_paused {
                                    // The hub may well have answered; we are just not reading.
                                    ping_sent_at = Some(now);
                                } else {
                                    return self.lost(DisconnectReason::KeepAliveTimeout);
                                }
                            }
                            Some(_) => {}
                            None if now >= last_sent + interval => {
                                self.actions.push(Action::Send(Packet::PingReq));
                                ping_sent_at = Some(now);
                            }
                            None => {}
                        }
                    }
                    if renew_at.is_some_and(|renew_at| now >= renew_at) {
                        renew_at = None;
                        renewal_drain_until = Some(now + MAX_RENEWAL_DRAIN);
                    }
                }
            }
            match self.execute(&mut writer, &mut pending_events) {
                Ok(true) => last_sent = Instant::now(),
                Ok(false) => {}
                Err(reason) => return SessionEnd::Lost(reason),
            }
        }
    }

    /// The event the application gets for a delivery, and the packet to acknowledge when it has
    /// it: none for a cloud-to-device message the application acknowledges itself.
    fn hand_over(
        &self,
        event: ClientEvent,
        ack: Option<PacketId>,
    ) -> (ClientEvent, Option<PacketId>) {
        match (event, ack) {
            (ClientEvent::CloudToDevice(message), Some(packet_id))
                if self.settings.manual_cloud_to_device_ack =>
            {
                let ack = CloudToDeviceAck {
                    connection: self.connection_number,
                    packet_id,
                    sender: self.ack_sender.downgrade(),
                };
                (
                    ClientEvent::CloudToDeviceToAcknowledge { message, ack },
                    None,
                )
            }
            other => other,
        }
    }

    /// Ends a connection that broke: the core forgets what was in flight.
    fn lost(&mut self, reason: DisconnectReason) -> SessionEnd {
        self.core.on_connection_lost(&mut self.actions);
        self.complete_actions();
        SessionEnd::Lost(reason)
    }

    /// Sends DISCONNECT and flushes, bounded in time.
    async fn disconnect(&mut self, writer: &mut Writer) {
        // Acknowledgements the application already gave go out before the DISCONNECT: a gateway
        // closes a child's link right after the child's PUBACK.
        while let Ok((connection, packet_id)) = self.acks.try_recv() {
            if connection == self.connection_number {
                let _ = Packet::PubAck(packet_id).encode(writer.write_buffer_mut());
            }
        }
        // Whatever the core wanted to send still goes first (for example PUBACKs).
        let _ = Packet::Disconnect.encode(writer.write_buffer_mut());
        let _ =
            tokio::time::timeout(DISCONNECT_FLUSH_TIMEOUT, SinkExt::<Packet>::close(writer)).await;
    }

    /// Executes the core's actions on a live connection: packets are encoded into the write
    /// buffer (flushed by the serve loop), results go to callers, events to the application.
    /// Returns whether anything was written.
    fn execute(
        &mut self,
        writer: &mut Writer,
        pending_events: &mut VecDeque<(ClientEvent, Option<PacketId>)>,
    ) -> Result<bool, DisconnectReason> {
        let mut wrote = false;
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Send(packet) => {
                    if let Err(error) = packet.encode(writer.write_buffer_mut()) {
                        // The client builds every packet itself and checks topic lengths before
                        // submitting, so this means a bug; drop the connection rather than panic.
                        tracing::error!(%error, ?packet, "cannot encode packet");
                        self.actions.clear();
                        return Err(DisconnectReason::ConnectionLost {
                            message: format!("cannot encode packet: {error}"),
                        });
                    }
                    wrote = true;
                }
                Action::Complete(reply, result) => {
                    let _ = reply.sender.send(result);
                }
                Action::Deliver { event, ack } => {
                    let (event, ack) = self.hand_over(*event, ack);
                    if !pending_events.is_empty() {
                        pending_events.push_back((event, ack));
                        continue;
                    }
                    match self.events.try_send(event) {
                        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {
                            if let Some(packet_id) = ack {
                                Packet::PubAck(packet_id)
                                    .encode(writer.write_buffer_mut())
                                    .map_err(|error| DisconnectReason::ConnectionLost {
                                        message: format!("cannot encode PUBACK: {error}"),
                                    })?;
                                wrote = true;
                            }
                        }
                        Err(mpsc::error::TrySendError::Full(event)) => {
                            pending_events.push_back((event, ack));
                        }
                    }
                }
            }
        }
        // Keep the vector's allocation for the next round.
        self.actions = actions;
        Ok(wrote)
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn codec_error_text(error: &CodecError) -> String {
    match error {
        CodecError::Io(error) => format!("i/o error: {error}"),
        CodecError::Decode(error) => format!("malformed packet from the hub: {error}"),
        CodecError::Encode(error) => format!("cannot encode packet: {error}"),
    }
}

/// The password for the next connection and, for tokens the client renews, their expiry.
async fn password(settings: &Settings) -> Result<(Option<String>, Option<u64>), ConnectError> {
    let scope = ResourceScope::for_identity(settings.host_name.clone(), &settings.identity);
    match &settings.credentials {
        Credentials::SharedAccessKey { key, token_ttl } => {
            let expiry_unix_secs = unix_now_secs() + token_ttl.as_secs().max(1);
            let token = SasToken::sign(
                SasTokenStyle::DeviceSdk,
                &scope,
                key,
                None,
                expiry_unix_secs,
            );
            Ok((Some(token.to_string()), Some(expiry_unix_secs)))
        }
        Credentials::TokenProvider(provider) => {
            let token = provider
                .token(TokenRequest {
                    scope,
                    expiry_unix_secs: unix_now_secs() + DEFAULT_TOKEN_TTL.as_secs(),
                })
                .await?;
            // The token usually covers the client's own identity; an edge hub connecting on
            // behalf of a child presents one signed for its own `$edgeHub` module instead, and the
            // hub decides whether that parent may speak for the child. Only the host must match.
            if !token
                .scope()
                .host()
                .as_str()
                .eq_ignore_ascii_case(settings.host_name.as_str())
            {
                return Err(ConnectError::Token(TokenError::new(format!(
                    "the provided token is for host {}, not {}",
                    token.scope().host(),
                    settings.host_name
                ))));
            }
            let expiry_unix_secs = token.expiry_unix_secs();
            Ok((Some(token.to_string()), Some(expiry_unix_secs)))
        }
        Credentials::FixedToken(token) => Ok((Some(token.to_string()), None)),
        Credentials::X509(_) => Ok((None, None)),
    }
}

/// One connection attempt bounded by the connect timeout.
async fn establish(settings: Arc<Settings>) -> Result<Connection, ConnectError> {
    let timeout = settings.connect_timeout;
    match tokio::time::timeout(timeout, establish_unbounded(&settings)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout {
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

async fn establish_unbounded(settings: &Settings) -> Result<Connection, ConnectError> {
    let (password, renewable_token_expiry_unix_secs) = password(settings).await?;
    let socket = TcpStream::connect((settings.dial_host_name.as_str(), settings.port))
        .await
        .map_err(|error| ConnectError::io(&error))?;
    let _ = socket.set_nodelay(true);
    let stream: Box<dyn ByteStream> = match &settings.tls {
        Some((connector, server_name)) => Box::new(
            connector
                .connect(server_name.clone(), socket)
                .await
                .map_err(|error| ConnectError::Tls {
                    message: error.to_string(),
                })?,
        ),
        None => Box::new(socket),
    };
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read_half, MqttCodec::new(settings.max_packet_size));
    let mut writer = FramedWrite::new(write_half, MqttCodec::new(settings.max_packet_size));
    let connect = connect_packet(
        &settings.host_name,
        &settings.identity,
        &settings.product_info,
        password,
        settings.keep_alive,
    );
    writer
        .send(Packet::Connect(connect))
        .await
        .map_err(|error| connect_codec_error(&error))?;
    match reader.next().await {
        Some(Ok(Packet::ConnAck(connack))) => {
            if connack.return_code == ConnectReturnCode::Accepted {
                Ok(Connection {
                    reader,
                    writer,
                    session_present: connack.session_present,
                    renewable_token_expiry_unix_secs,
                })
            } else {
                Err(ConnectError::Refused {
                    code: connack.return_code,
                })
            }
        }
        Some(Ok(other)) => Err(ConnectError::Protocol {
            message: format!("expected CONNACK, got {}", other.packet_type()),
        }),
        Some(Err(error)) => Err(connect_codec_error(&error)),
        None => Err(ConnectError::Io {
            kind: std::io::ErrorKind::UnexpectedEof,
            message: "the hub closed the connection before CONNACK".to_owned(),
        }),
    }
}

fn connect_codec_error(error: &CodecError) -> ConnectError {
    match error {
        CodecError::Io(error) => ConnectError::io(error),
        CodecError::Decode(_) | CodecError::Encode(_) => ConnectError::Protocol {
            message: codec_error_text(error),
        },
    }
}
