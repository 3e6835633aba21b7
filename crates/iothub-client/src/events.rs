//! What the hub pushes to the client (events) and the state of the connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use iothub_types::Message;
use mqtt_codec::PacketId;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ConnectError;

/// Something the hub sent on its own initiative.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// A desired-properties patch (`$iothub/twin/PATCH/properties/desired/?$version=N`); `patch`
    /// is the JSON body, which includes `"$version"`.
    DesiredPropertiesPatch { version: u64, patch: Value },
    /// A direct method call; answer it with [`crate::IotHubClient::respond`].
    MethodRequest(MethodRequest),
    /// A cloud-to-device message (device clients).
    CloudToDevice(Message),
    /// A cloud-to-device message that stays in the hub's queue until `ack` is used
    /// ([`crate::ClientOptions::manual_cloud_to_device_ack`]).
    CloudToDeviceToAcknowledge {
        message: Message,
        ack: CloudToDeviceAck,
    },
    /// A message on one of the module's inputs (module clients); `message.system.input_name` is
    /// set to `input_name` too.
    ModuleInput {
        input_name: String,
        message: Message,
    },
}

/// Completes one cloud-to-device message in the hub: sends the PUBACK of the delivery on the
/// connection that received it. If that connection has ended, there is nothing to complete: the
/// hub delivers the message again on the next one.
#[derive(Clone)]
pub struct CloudToDeviceAck {
    pub(crate) connection: u64,
    pub(crate) packet_id: PacketId,
    pub(crate) sender: mpsc::WeakSender<(u64, PacketId)>,
}

impl CloudToDeviceAck {
    /// Sends the PUBACK. Never waits: if the client is gone or its acknowledgement queue is full,
    /// the message is simply delivered again later (at least once).
    pub fn acknowledge(self) {
        if let Some(sender) = self.sender.upgrade() {
            let _ = sender.try_send((self.connection, self.packet_id));
        }
    }
}

impl std::fmt::Debug for CloudToDeviceAck {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CloudToDeviceAck")
            .field("connection", &self.connection)
            .field("packet_id", &self.packet_id)
            .finish()
    }
}

impl PartialEq for CloudToDeviceAck {
    fn eq(&self, other: &Self) -> bool {
        (self.connection, self.packet_id) == (other.connection, other.packet_id)
    }
}

/// A direct method request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodRequest {
    /// The method name, percent-decoded.
    pub method_name: String,
    /// The request id to answer with.
    pub rid: String,
    /// The raw request body (JSON, or empty for none).
    pub payload: Bytes,
}

impl MethodRequest {
    /// The payload as JSON, with an empty payload read as `null` (as the SDK does).
    pub fn payload_json(&self) -> Result<Value, serde_json::Error> {
        if self.payload.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.payload)
    }
}

/// The receiving end of a client's events. It ends when the client's connection task ends (after
/// [`crate::IotHubClient::shutdown`] or when every client handle is dropped).
///
/// Events are acknowledged to the hub (PUBACK for QoS 1 deliveries) when they enter this queue.
/// When the queue is full the client stops reading from its socket until there is room, so a slow
/// reader slows the hub down rather than losing messages. Dropping the stream discards later
/// events (they are still acknowledged).
#[derive(Debug)]
pub struct EventStream {
    receiver: mpsc::Receiver<ClientEvent>,
}

impl EventStream {
    pub(crate) fn new(receiver: mpsc::Receiver<ClientEvent>) -> EventStream {
        EventStream { receiver }
    }

    /// The next event, or `None` once the client has shut down.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.receiver.recv().await
    }

    /// The next event if one is ready.
    pub fn try_next(&mut self) -> Option<ClientEvent> {
        self.receiver.try_recv().ok()
    }
}

impl Stream for EventStream {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.receiver.poll_recv(context)
    }
}

/// Whether the client has a connection, as published on [`crate::IotHubClient::connection_state`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// CONNACK 0 received; operations go out now.
    Connected,
    /// No connection; the client is waiting to (re)connect unless the reason is `Shutdown`.
    Disconnected { reason: DisconnectReason },
}

impl ConnectionState {
    /// Whether the state is [`ConnectionState::Connected`].
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected)
    }
}

/// Why the client has no connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The first connection attempt has not finished yet.
    NotYetConnected,
    /// The last connection attempt failed (refused CONNACK, network, TLS, token).
    ConnectFailed(ConnectError),
    /// An established connection broke: the hub closed it, an I/O error, or a malformed packet.
    ConnectionLost { message: String },
    /// The hub stayed silent for a keep-alive period after a PINGREQ.
    KeepAliveTimeout,
    /// The client disconnected on purpose to reconnect with a fresh token.
    TokenRenewal,
    /// The client was shut down; it will not reconnect.
    Shutdown,
}
