//! The session registry: one task that owns every session (see [`crate::session_table`]) and the
//! [`Sessions`] handle through which connections and the backend talk to it.

use bytes::Bytes;
use iothub_topics::{ClientSubscription, HubPublish};
use iothub_types::{DeviceId, Identity, Message, ModuleId};
use mqtt_codec::QoS;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{ConnectionId, DeliveryTag, DisconnectReason};
use crate::session_table::{Route, SessionTable, SubscriptionChanges};

/// Why a push to a client did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The identity has no live connection. Direct methods answer 404; C2D stays queued.
    #[error("identity is not connected")]
    NotConnected,
    /// The identity is connected but has not subscribed to the topic the push needs (for example,
    /// no method handler is registered).
    #[error("identity is not subscribed to this kind of message")]
    NotSubscribed,
    /// The connection's outbound queue is full (a slow or stalled client); try again later.
    #[error("connection's outbound queue is full")]
    QueueFull,
    /// The front end has shut down.
    #[error("MQTT front end has shut down")]
    FrontendClosed,
}

/// A handle to the session registry, cheap to clone. The backend uses it to push messages to
/// connected clients and to disconnect them; connections use it to register themselves.
///
/// Pushes never wait for the client: a push is accepted when it is placed on the connection's
/// bounded outbound queue, and refused with [`PushError::QueueFull`] when that queue is full.
///
/// QoS 1 deliveries (cloud-to-device messages, module inputs) are tracked by the connection until
/// the client's PUBACK, which reaches the backend as
/// [`Backend::delivery_acknowledged`](crate::Backend::delivery_acknowledged). The front end does
/// not redeliver: deliveries that were not acknowledged when a connection ends are listed in
/// [`Disconnection::undelivered`](crate::Disconnection::undelivered), and redelivery on the next
/// connection is the backend queue's job.
#[derive(Clone, Debug)]
pub struct Sessions {
    commands: mpsc::Sender<Command>,
}

/// A publish on its way to one connection.
#[derive(Debug)]
pub(crate) struct OutboundPublish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    /// Present for cloud-to-device messages and module inputs.
    pub tag: Option<DeliveryTag>,
}

/// What the registry keeps to reach a live connection.
#[derive(Debug)]
pub(crate) struct ConnectionHandle {
    /// Boxed so that the channel's eagerly allocated slot block stays small: idle connections
    /// are many, pushes are few.
    pub outbound: mpsc::Sender<Box<OutboundPublish>>,
    pub kick: oneshot::Sender<DisconnectReason>,
}

/// What a connection learns when it attaches.
#[derive(Debug)]
pub(crate) struct AttachReply {
    pub session_present: bool,
    pub subscriptions: Vec<(ClientSubscription, QoS)>,
}

#[derive(Debug)]
enum Command {
    Attach {
        identity: Identity,
        connection_id: ConnectionId,
        clean_session: bool,
        handle: ConnectionHandle,
        reply: oneshot::Sender<AttachReply>,
    },
    UpdateSubscriptions {
        identity: Identity,
        connection_id: ConnectionId,
        changes: SubscriptionChanges,
        reply: oneshot::Sender<Option<Vec<(ClientSubscription, QoS)>>>,
    },
    Detach {
        identity: Identity,
        connection_id: ConnectionId,
        reply: oneshot::Sender<()>,
    },
    Push {
        identity: Identity,
        publish: HubPublish,
        payload: Bytes,
        kind: PushKind,
        reply: oneshot::Sender<Result<(), PushError>>,
    },
    PushMany {
        identity: Identity,
        publishes: Vec<(HubPublish, Bytes, PushKind)>,
        reply: oneshot::Sender<(usize, Option<PushError>)>,
    },
    Disconnect {
        target: DisconnectTarget,
        reason: DisconnectReason,
        reply: oneshot::Sender<usize>,
    },
    IsConnected {
        identity: Identity,
        reply: oneshot::Sender<bool>,
    },
    ConnectedCount {
        reply: oneshot::Sender<usize>,
    },
}

#[derive(Debug)]
enum PushKind {
    /// Sent at QoS 0 whatever the subscription granted (method requests, desired patches).
    Notification,
    /// Sent at the granted QoS and tracked with this tag (C2D, module inputs).
    Delivery(DeliveryTag),
}

#[derive(Debug)]
enum DisconnectTarget {
    Identity(Identity),
    DeviceAndModules(DeviceId),
    Everyone,
}

impl Sessions {
    /// Starts the registry task on the current tokio runtime (so it must be called from inside
    /// one). `command_queue_capacity` bounds the registry's inbox; senders wait when it is full.
    /// The task ends when the last handle is dropped.
    pub fn spawn(command_queue_capacity: usize) -> Sessions {
        let (commands, inbox) = mpsc::channel(command_queue_capacity.max(1));
        tokio::spawn(run_registry(inbox));
        Sessions { commands }
    }

    /// Sends a desired-properties notification on `$iothub/twin/PATCH/properties/desired/?$version={version}`
    /// at QoS 0. `body` must be the JSON patch including `"$version"`. Needs a subscription to
    /// `$iothub/twin/PATCH/properties/desired/#`; nothing is queued for offline clients.
    pub async fn send_desired_properties_patch(
        &self,
        identity: &Identity,
        version: u64,
        body: Bytes,
    ) -> Result<(), PushError> {
        let publish = HubPublish::DesiredPropertiesPatch { version };
        self.push(identity, publish, body, PushKind::Notification)
            .await
    }

    /// Sends a direct method request on `$iothub/methods/POST/{method_name}/?$rid={rid}` at QoS 0.
    /// The backend chooses `rid` (it must not contain `&`, `/` or `?`) and receives the answer as
    /// [`Backend::method_response`](crate::Backend::method_response). Needs a subscription to
    /// `$iothub/methods/POST/#`.
    pub async fn send_method_request(
        &self,
        identity: &Identity,
        method_name: &str,
        rid: &str,
        payload: Bytes,
    ) -> Result<(), PushError> {
        let publish = HubPublish::MethodRequest {
            method_name: method_name.to_owned(),
            rid: rid.to_owned(),
        };
        self.push(identity, publish, payload, PushKind::Notification)
            .await
    }

    /// Delivers a cloud-to-device message on `devices/{device}/messages/devicebound/{bag}` at the
    /// QoS the subscription granted (1 for the SDKs), tracked with `tag`. Needs a subscription to
    /// `devices/{device}/messages/devicebound/#`.
    pub async fn send_cloud_to_device(
        &self,
        device: &DeviceId,
        message: &Message,
        tag: DeliveryTag,
    ) -> Result<(), PushError> {
        let publish = HubPublish::cloud_to_device(device.clone(), message);
        let identity = Identity::device(device.clone());
        self.push(
            &identity,
            publish,
            message.body.clone(),
            PushKind::Delivery(tag),
        )
        .await
    }

    /// Delivers a message to input `input_name` of a module on
    /// `devices/{device}/modules/{module}/inputs/{input_name}/{bag}`, tracked with `tag`. Needs a
    /// subscription to `devices/{device}/modules/{module}/inputs/#` (or `.../modules/{module}/#`).
    pub async fn send_module_input(
        &self,
        device: &DeviceId,
        module: &ModuleId,
        input_name: &str,
        message: &Message,
        tag: DeliveryTag,
    ) -> Result<(), PushError> {
        let publish = HubPublish::module_input(device.clone(), module.clone(), input_name, message);
        let identity = Identity::module(device.clone(), module.clone());
        self.push(
            &identity,
            publish,
            message.body.clone(),
            PushKind::Delivery(tag),
        )
        .await
    }

    /// Delivers several messages to input `input_name` of a module, in order, in one step of the
    /// registry (a pump with room in its window queues them all at once), each tracked with its
    /// tag. Stops at the first message that cannot be queued: returns how many were queued and,
    /// if not all, why the next one was not ([`PushError::QueueFull`] when the connection's
    /// queue is full). The same conditions as [`Sessions::send_module_input`] apply.
    pub async fn send_module_inputs(
        &self,
        device: &DeviceId,
        module: &ModuleId,
        input_name: &str,
        messages: impl IntoIterator<Item = (&Message, DeliveryTag)>,
    ) -> (usize, Option<PushError>) {
        let publishes: Vec<_> = messages
            .into_iter()
            .map(|(message, tag)| {
                (
                    HubPublish::module_input(device.clone(), module.clone(), input_name, message),
                    message.body.clone(),
                    PushKind::Delivery(tag),
                )
            })
            .collect();
        if publishes.is_empty() {
            return (0, None);
        }
        let identity = Identity::module(device.clone(), module.clone());
        self.request(|reply| Command::PushMany {
            identity,
            publishes,
            reply,
        })
        .await
        .unwrap_or_else(|error| (0, Some(error)))
    }

    /// Closes the live connection of `identity`, if any (for example, after it was disabled or
    /// deleted). Its persistent session, if any, is kept. Fails with
    /// [`PushError::NotConnected`] when there was no live connection.
    pub async fn disconnect(&self, identity: &Identity) -> Result<(), PushError> {
        let closed = self
            .disconnect_target(
                DisconnectTarget::Identity(identity.clone()),
                DisconnectReason::DisconnectedByBackend,
            )
            .await?;
        if closed == 0 {
            Err(PushError::NotConnected)
        } else {
            Ok(())
        }
    }

    /// Closes the live connections of `device` and of all its modules, returning how many were
    /// closed.
    pub async fn disconnect_device_and_modules(
        &self,
        device: &DeviceId,
    ) -> Result<usize, PushError> {
        self.disconnect_target(
            DisconnectTarget::DeviceAndModules(device.clone()),
            DisconnectReason::DisconnectedByBackend,
        )
        .await
    }

    /// Closes every live connection (for shutdown), returning how many were closed.
    pub async fn disconnect_everyone(&self) -> Result<usize, PushError> {
        self.disconnect_target(DisconnectTarget::Everyone, DisconnectReason::Shutdown)
            .await
    }

    /// Whether `identity` has a live connection.
    pub async fn is_connected(&self, identity: &Identity) -> Result<bool, PushError> {
        self.request(|reply| Command::IsConnected {
            identity: identity.clone(),
            reply,
        })
        .await
    }

    /// The number of live connections.
    pub async fn connected_count(&self) -> Result<usize, PushError> {
        self.request(|reply| Command::ConnectedCount { reply })
            .await
    }

    pub(crate) async fn attach(
        &self,
        identity: &Identity,
        connection_id: ConnectionId,
        clean_session: bool,
        handle: ConnectionHandle,
    ) -> Result<AttachReply, PushError> {
        self.request(|reply| Command::Attach {
            identity: identity.clone(),
            connection_id,
            clean_session,
            handle,
            reply,
        })
        .await
    }

    pub(crate) async fn update_subscriptions(
        &self,
        identity: &Identity,
        connection_id: ConnectionId,
        changes: SubscriptionChanges,
    ) -> Result<Option<Vec<(ClientSubscription, QoS)>>, PushError> {
        self.request(|reply| Command::UpdateSubscriptions {
            identity: identity.clone(),
            connection_id,
            changes,
            reply,
        })
        .await
    }

    pub(crate) async fn detach(
        &self,
        identity: &Identity,
        connection_id: ConnectionId,
    ) -> Result<(), PushError> {
        self.request(|reply| Command::Detach {
            identity: identity.clone(),
            connection_id,
            reply,
        })
        .await
    }

    async fn push(
        &self,
        identity: &Identity,
        publish: HubPublish,
        payload: Bytes,
        kind: PushKind,
    ) -> Result<(), PushError> {
        self.request(|reply| Command::Push {
            identity: identity.clone(),
            publish,
            payload,
            kind,
            reply,
        })
        .await?
    }

    async fn disconnect_target(
        &self,
        target: DisconnectTarget,
        reason: DisconnectReason,
    ) -> Result<usize, PushError> {
        self.request(|reply| Command::Disconnect {
            target,
            reason,
            reply,
        })
        .await
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, PushError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| PushError::FrontendClosed)?;
        answer.await.map_err(|_| PushError::FrontendClosed)
    }
}

/// The registry task: applies commands to the session table, one at a time. It never waits on a
/// connection (it only uses `try_send` and one-shot kicks), so a stalled client cannot stall it.
async fn run_registry(mut inbox: mpsc::Receiver<Command>) {
    let mut table: SessionTable<ConnectionHandle> = SessionTable::default();
    while let Some(command) = inbox.recv().await {
        match command {
            Command::Attach {
                identity,
                connection_id,
                clean_session,
                handle,
                reply,
            } => {
                let attached = table.attach(&identity, connection_id, clean_session, handle);
                if let Some(replaced) = attached.replaced {
                    let _ = replaced.kick.send(DisconnectReason::SessionTakenOver);
                }
                let _ = reply.send(AttachReply {
                    session_present: attached.session_present,
                    subscriptions: attached.subscriptions,
                });
            }
            Command::UpdateSubscriptions {
                identity,
                connection_id,
                changes,
                reply,
            } => {
                let _ = reply.send(table.update_subscriptions(&identity, connection_id, changes));
            }
            Command::Detach {
                identity,
                connection_id,
                reply,
            } => {
                table.detach(&identity, connection_id);
                let _ = reply.send(());
            }
            Command::Push {
                identity,
                publish,
                payload,
                kind,
                reply,
            } => {
                let _ = reply.send(route_push(&table, &identity, &publish, payload, kind));
            }
            Command::PushMany {
                identity,
                publishes,
                reply,
            } => {
                let mut queued = 0;
                let mut failure = None;
                for (publish, payload, kind) in publishes {
                    match route_push(&table, &identity, &publish, payload, kind) {
                        Ok(()) => queued += 1,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
                let _ = reply.send((queued, failure));
            }
            Command::Disconnect {
                target,
                reason,
                reply,
            } => {
                let identities = match target {
                    DisconnectTarget::Identity(identity) => vec![identity],
                    DisconnectTarget::DeviceAndModules(device) => {
                        table.live_identities_of_device(&device)
                    }
                    DisconnectTarget::Everyone => table.live_identities(),
                };
                let mut closed = 0;
                for identity in identities {
                    if let Some(handle) = table.take_live(&identity) {
                        let _ = handle.kick.send(reason.clone());
                        closed += 1;
                    }
                }
                let _ = reply.send(closed);
            }
            Command::IsConnected { identity, reply } => {
                let _ = reply.send(table.is_connected(&identity));
            }
            Command::ConnectedCount { reply } => {
                let _ = reply.send(table.live_connection_count());
            }
        }
    }
}

fn route_push(
    table: &SessionTable<ConnectionHandle>,
    identity: &Identity,
    publish: &HubPublish,
    payload: Bytes,
    kind: PushKind,
) -> Result<(), PushError> {
    let (handle, granted) = match table.route(identity, publish) {
        Route::NotConnected => return Err(PushError::NotConnected),
        Route::NotSubscribed => return Err(PushError::NotSubscribed),
        Route::Deliver { handle, granted } => (handle, granted),
    };
    let (qos, tag) = match kind {
        PushKind::Notification => (QoS::AtMostOnce, None),
        PushKind::Delivery(tag) => (granted.min(QoS::AtLeastOnce), Some(tag)),
    };
    let outbound = OutboundPublish {
        topic: publish.to_topic(),
        payload,
        qos,
        tag,
    };
    handle
        .outbound
        .try_send(Box::new(outbound))
        .map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => PushError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => PushError::NotConnected,
        })
}
