//! The client handle: the public operations, each a command to the connection task.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iothub_topics::ClientPublish;
use iothub_types::{Identity, MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE, Message};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::connection::{Command, Owner, Reply, Settings};
use crate::core::{Core, Outcome, Request, TwinRequest};
use crate::error::{ClientError, ConnectError};
use crate::events::{ConnectionState, DisconnectReason, EventStream};
use crate::options::{ClientOptions, Feature, WhileDisconnected};

/// Cloud-to-device acknowledgements queued for the connection task at most.
const ACK_QUEUE_CAPACITY: usize = 256;

/// The longest MQTT topic.
const MAX_TOPIC_LENGTH: usize = u16::MAX as usize;

/// A handle to one IoT Hub device or module connection. Cheap to clone; every clone talks to the
/// same connection task, which ends when the last handle is dropped or on
/// [`IotHubClient::shutdown`].
#[derive(Clone, Debug)]
pub struct IotHubClient {
    identity: Identity,
    commands: mpsc::Sender<Command>,
    window: Arc<Semaphore>,
    state: watch::Receiver<ConnectionState>,
    reconnect_requests: mpsc::Sender<()>,
    operation_timeout: Duration,
    while_disconnected: WhileDisconnected,
}

impl IotHubClient {
    /// Starts the client and waits for the first connection. A refused CONNACK, a network or TLS
    /// failure or a timeout of that first attempt is returned as is (nothing is retried); after
    /// it succeeds, the client reconnects by itself whenever the connection drops.
    ///
    /// Must be called from inside a tokio runtime.
    pub async fn connect(
        options: ClientOptions,
    ) -> Result<(IotHubClient, EventStream), ConnectError> {
        let (first_outcome, first_outcome_receiver) = oneshot::channel();
        let (client, events) = IotHubClient::start(options, Some(first_outcome))?;
        match first_outcome_receiver.await {
            Ok(Ok(())) => Ok((client, events)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ConnectError::Closed),
        }
    }

    /// Starts the client without waiting: it connects in the background and keeps retrying with
    /// back-off until it succeeds (watch [`IotHubClient::connection_state`]). This is what a
    /// runtime that must also work offline wants. Fails only on options that cannot work.
    ///
    /// Must be called from inside a tokio runtime.
    pub fn spawn(options: ClientOptions) -> Result<(IotHubClient, EventStream), ConnectError> {
        IotHubClient::start(options, None)
    }

    fn start(
        options: ClientOptions,
        first_outcome: Option<oneshot::Sender<Result<(), ConnectError>>>,
    ) -> Result<(IotHubClient, EventStream), ConnectError> {
        let settings = Arc::new(Settings::resolve(&options)?);
        let identity = options.identity.clone();
        let initial_subscriptions: Vec<_> = options
            .subscribe_at_connect
            .iter()
            .map(|feature| feature.subscription(&identity))
            .collect();
        let core = Core::new(
            identity.clone(),
            options.while_disconnected,
            options.operation_timeout,
            initial_subscriptions,
        );
        // Every submitted operation holds a window permit, so the command queue never needs more
        // room than the window plus a few shutdown requests.
        let (commands, command_receiver) = mpsc::channel(options.max_in_flight + 4);
        let (reconnect_requests, reconnect_receiver) = mpsc::channel(1);
        let (event_sender, event_receiver) = mpsc::channel(options.event_queue_capacity);
        // The hub has at most a window of deliveries unacknowledged per connection; an
        // acknowledgement that does not fit is dropped and the message delivered again.
        let (ack_sender, acks) = mpsc::channel(ACK_QUEUE_CAPACITY);
        let (state_sender, state) = watch::channel(ConnectionState::Disconnected {
            reason: DisconnectReason::NotYetConnected,
        });
        let owner = Owner {
            settings,
            core,
            commands: command_receiver,
            reconnect_requests: reconnect_receiver,
            events: event_sender,
            acks,
            ack_sender,
            connection_number: 0,
            state: state_sender,
            first_outcome,
            shutdown_waiters: Vec::new(),
            actions: Vec::new(),
        };
        let span = tracing::debug_span!("iothub_client", identity = %identity);
        tokio::spawn(tracing::Instrument::instrument(owner.run(), span));
        let client = IotHubClient {
            identity,
            commands,
            window: Arc::new(Semaphore::new(options.max_in_flight)),
            state,
            reconnect_requests,
            operation_timeout: options.operation_timeout,
            while_disconnected: options.while_disconnected,
        };
        Ok((client, EventStream::new(event_receiver)))
    }

    /// The device or module this client acts as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A watch of the connection state: `Connected`, or `Disconnected` with the reason.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Cuts the current back-off wait short so the next connection attempt starts now (for
    /// example when the edge hub learns that the hub is back). Does nothing while connected or
    /// while an attempt is already running.
    pub fn reconnect_now(&self) {
        let _ = self.reconnect_requests.try_send(());
    }

    /// Sends a telemetry message (QoS 1) and resolves when the hub acknowledged it (PUBACK).
    /// Waits for a slot when the in-flight window is full.
    pub async fn send_telemetry(&self, message: Message) -> Result<(), ClientError> {
        message.check_limits(MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE)?;
        let topic = ClientPublish::telemetry(&self.identity, &message).to_topic();
        self.publish(topic, message.body).await
    }

    /// Sends a message to output `output_name` of this module (telemetry with `$.on`), resolving on
    /// PUBACK.
    pub async fn send_output(
        &self,
        output_name: &str,
        mut message: Message,
    ) -> Result<(), ClientError> {
        if output_name.is_empty() {
            return Err(ClientError::InvalidTopicPart {
                what: "output name",
                value: output_name.to_owned(),
            });
        }
        message.system.output_name = Some(output_name.to_owned());
        self.send_telemetry(message).await
    }

    /// Reads the whole twin (`{"desired": {...}, "reported": {...}}`), subscribing to twin
    /// responses first if needed.
    pub async fn get_twin(&self) -> Result<Value, ClientError> {
        let rid = new_request_id();
        match self.submit(Request::Twin(TwinRequest::Get { rid })).await? {
            Outcome::Twin(twin) => Ok(twin),
            other => Err(unexpected_outcome(&other)),
        }
    }

    /// Applies a JSON merge patch to the reported properties (`null` deletes a key) and returns
    /// the new reported version.
    pub async fn patch_reported(&self, patch: &Value) -> Result<u64, ClientError> {
        let rid = new_request_id();
        let patch = Bytes::from(patch.to_string());
        match self
            .submit(Request::Twin(TwinRequest::PatchReported { rid, patch }))
            .await?
        {
            Outcome::ReportedVersion(version) => Ok(version),
            other => Err(unexpected_outcome(&other)),
        }
    }

    /// Answers the direct method request `rid` with `status` and a JSON `payload`, resolving on
    /// PUBACK.
    pub async fn respond(
        &self,
        rid: &str,
        status: i32,
        payload: &Value,
    ) -> Result<(), ClientError> {
        if rid.is_empty() || rid.contains(['&', '/', '?', '#', '+']) {
            return Err(ClientError::InvalidTopicPart {
                what: "method request id",
                value: rid.to_owned(),
            });
        }
        let topic = ClientPublish::MethodResponse {
            status,
            rid: rid.to_owned(),
        }
        .to_topic();
        self.publish(topic, Bytes::from(payload.to_string())).await
    }

    /// Subscribes to `feature` now (resolving on SUBACK) instead of at the next connection; the
    /// subscription is kept and sent again after every reconnection without a session.
    pub async fn enable(&self, feature: Feature) -> Result<(), ClientError> {
        let subscription = feature.subscription(&self.identity);
        self.submit(Request::Subscribe(subscription))
            .await
            .map(drop)
    }

    /// Disconnects cleanly (DISCONNECT), fails every pending operation with
    /// [`ClientError::Closed`] and ends the connection task; other handles then get `Closed` too.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Shutdown { done }).await.is_ok() {
            let _ = finished.await;
        }
    }

    async fn publish(&self, topic: String, payload: Bytes) -> Result<(), ClientError> {
        if topic.len() > MAX_TOPIC_LENGTH {
            return Err(ClientError::TopicTooLong {
                length: topic.len(),
            });
        }
        self.submit(Request::Publish { topic, payload })
            .await
            .map(drop)
    }

    async fn submit(&self, request: Request) -> Result<Outcome, ClientError> {
        if self.while_disconnected == WhileDisconnected::FailFast {
            match &*self.state.borrow() {
                // A planned reconnection with a fresh token: the operation waits for it.
                ConnectionState::Connected
                | ConnectionState::Disconnected {
                    reason: DisconnectReason::TokenRenewal,
                } => {}
                ConnectionState::Disconnected {
                    reason: DisconnectReason::Shutdown,
                } => return Err(ClientError::Closed),
                ConnectionState::Disconnected { .. } => return Err(ClientError::NotConnected),
            }
        }
        let deadline = Instant::now() + self.operation_timeout;
        let timeout = ClientError::Timeout {
            timeout_ms: u64::try_from(self.operation_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let permit = tokio::time::timeout_at(deadline, self.window.clone().acquire_owned())
            .await
            .map_err(|_| timeout)?
            .map_err(|_| ClientError::Closed)?;
        let (sender, receiver) = oneshot::channel();
        let command = Command::Submit {
            request,
            reply: Reply {
                sender,
                _window_slot: permit,
            },
            deadline,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)?;
        receiver.await.map_err(|_| ClientError::Closed)?
    }
}

/// A fresh twin request id: a UUID, as the Python SDK uses.
fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn unexpected_outcome(outcome: &Outcome) -> ClientError {
    ClientError::InvalidTwinResponse {
        reason: format!("unexpected outcome {outcome:?}"),
    }
}
