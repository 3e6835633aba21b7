//! Endpoint pumps: one task per endpoint moves stored messages to their destination and
//! acknowledges them in the store only once the destination acknowledged them.
//!
//! - `$upstream`: each message goes up through the link of the identity that sent it, many in
//!   flight at once (the links pipeline); a batch is acknowledged when every message in it was.
//!   On failure the reader rewinds and the pump waits for the hub to be online — the moment the
//!   `$edgeHub` link reconnects, draining resumes (no retry timer).
//! - A module input: messages are pushed to the module's session in order and acknowledged when
//!   the module's PUBACKs arrive; while the module is offline the pump waits for it to connect.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edge_store::{Batch, EndpointId, EndpointReader};
use futures_util::future::join_all;
use iothub_client::{
    ClientError, ConnectError, ConnectReturnCode, ConnectionState, DisconnectReason,
};
use iothub_topics::ClientSubscription;
use iothub_types::{DeviceId, Identity, Message, ModuleId};
use mqtt_frontend::PushError;
use tokio::sync::oneshot;

use crate::hub::{EdgeHub, lock, now_ms};
use crate::record;
use crate::routes::{RouteTable, Sink};

/// Messages per upstream batch (Azure: 10 senders × 10).
const UPSTREAM_BATCH: usize = 500;
/// Messages per module-input batch: a failed delivery sends at most this many again.
const MODULE_BATCH: usize = 64;
/// Module-input deliveries awaiting PUBACK at once (the front end queues 64 per connection).
const MODULE_WINDOW: usize = 32;
/// Bytes per batch, roughly.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Delivered messages acknowledged in memory before the durable cursor commit (a write, an
/// `fsync` and a rename): a crash redelivers at most about this many per endpoint. The reader
/// also commits whenever the endpoint runs dry.
const COMMIT_EVERY: usize = 1024;
/// The longest a delivered message waits for its durable cursor commit while traffic flows.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// Starts a pump for every endpoint the routes name, now and whenever the routes change.
pub(crate) async fn supervise(hub: EdgeHub) {
    let mut routes = hub.inner.routes.subscribe();
    let mut running: HashSet<Sink> = HashSet::new();
    loop {
        let table: Arc<RouteTable> = routes.borrow_and_update().clone();
        for sink in table.sinks() {
            if running.insert(sink.clone()) {
                match EndpointId::new(&sink.endpoint_id()) {
                    Ok(endpoint) => {
                        let reader = hub.inner.store.reader(&endpoint);
                        tokio::spawn(run(hub.clone(), sink, reader));
                    }
                    Err(error) => tracing::warn!(%error, "endpoint id refused by the store"),
                }
            }
        }
        if routes.changed().await.is_err() {
            return;
        }
    }
}

async fn run(hub: EdgeHub, sink: Sink, mut reader: EndpointReader) {
    let endpoint = sink.endpoint_id();
    let mut last_commit = tokio::time::Instant::now();
    loop {
        let limit = match sink {
            Sink::Upstream => UPSTREAM_BATCH,
            Sink::ModuleInput { .. } => MODULE_BATCH,
        };
        let batch = match reader.next_batch(limit, BATCH_BYTES, now_ms()).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, endpoint, "cannot read the store");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let delivered = match &sink {
            Sink::Upstream => deliver_upstream(&hub, &batch).await,
            Sink::ModuleInput { module, input } => {
                deliver_to_module(&hub, module, input, &batch).await
            }
        };
        if delivered {
            let committed = match reader.ack_deferred(&batch) {
                Ok(deferred)
                    if deferred < COMMIT_EVERY && last_commit.elapsed() < COMMIT_INTERVAL =>
                {
                    Ok(())
                }
                Ok(_) => {
                    last_commit = tokio::time::Instant::now();
                    reader.commit().await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = committed {
                tracing::warn!(%error, endpoint, "cannot acknowledge delivered messages");
                reader.rewind();
            }
        } else {
            reader.rewind();
            match &sink {
                Sink::Upstream => hub.inner.upstream.wait_online().await,
                Sink::ModuleInput { .. } => {}
            }
        }
    }
}

/// Outcome of sending one stored message upstream.
enum Sent {
    Delivered,
    /// The hub refuses this sender for good (unknown, disabled): dropped and counted.
    Refused,
    Retry,
}

async fn deliver_upstream(hub: &EdgeHub, batch: &Batch) -> bool {
    let sends = batch.messages.iter().map(|stored| async move {
        let Ok(mut message) = record::decode(&stored.payload) else {
            tracing::warn!(
                sequence = stored.sequence,
                "unreadable stored message dropped"
            );
            return Sent::Refused;
        };
        let Some(identity) = sender(&message) else {
            return Sent::Refused;
        };
        message.system.connection_device_id = None;
        message.system.connection_module_id = None;
        message.system.connection_auth_generation_id = None;
        message.system.connection_auth_method = None;
        message.system.enqueued_time = None;
        let link = hub.inner.upstream.link(&identity);
        let result: Result<(), ClientError> = match message.system.output_name.take() {
            Some(output) => link.send_output(&output, message).await,
            None => link.send_telemetry(message).await,
        };
        match result {
            Ok(()) => Sent::Delivered,
            Err(error) => {
                let refused = hub.inner.upstream.is_online()
                    && matches!(
                        hub.inner.upstream.state(&identity),
                        Some(ConnectionState::Disconnected {
                            reason: DisconnectReason::ConnectFailed(ref failure)
                        }) if refused_for_good(failure)
                    );
                tracing::debug!(%error, %identity, refused, "upstream send failed");
                if refused { Sent::Refused } else { Sent::Retry }
            }
        }
    });
    let outcomes = join_all(sends).await;
    let mut delivered = 0;
    let mut refused = 0;
    for outcome in &outcomes {
        match outcome {
            Sent::Delivered => delivered += 1,
            Sent::Refused => refused += 1,
            Sent::Retry => return false,
        }
    }
    let counters = &hub.inner.counters;
    counters
        .delivered_upstream
        .fetch_add(delivered, Ordering::Relaxed);
    counters
        .dropped_refused_upstream
        .fetch_add(refused, Ordering::Relaxed);
    true
}

fn sender(message: &Message) -> Option<Identity> {
    let device = DeviceId::new(message.system.connection_device_id.as_deref()?).ok()?;
    Some(match message.system.connection_module_id.as_deref() {
        Some(module) => Identity::module(device, ModuleId::new(module).ok()?),
        None => Identity::device(device),
    })
}

async fn deliver_to_module(hub: &EdgeHub, module: &str, input: &str, batch: &Batch) -> bool {
    let Ok(module_id) = ModuleId::new(module) else {
        return true;
    };
    let device = hub.inner.settings.device_id.clone();
    let target = Identity::module(device.clone(), module_id.clone());
    let mut changes = hub.inner.live_changed.subscribe();
    // Wait until the module is connected with an input subscription.
    loop {
        let ready = hub.accepts(&target, |subscription| {
            matches!(
                subscription,
                ClientSubscription::ModuleInputs { .. } | ClientSubscription::ModuleAll { .. }
            )
        });
        if ready {
            break;
        }
        if changes.changed().await.is_err() {
            return false;
        }
    }
    let timeout = hub.inner.settings.message_ack_timeout;
    let mut in_flight: VecDeque<(u64, oneshot::Receiver<bool>)> = VecDeque::new();
    let mut delivered = 0u64;
    let outcome = async {
        for stored in &batch.messages {
            let Ok(mut message) = record::decode(&stored.payload) else {
                continue;
            };
            message.system.input_name = Some(input.to_owned());
            message.system.output_name = None;
            if in_flight.len() >= MODULE_WINDOW {
                confirm_oldest(&mut in_flight, timeout).await?;
                delivered += 1;
            }
            let tag = hub.inner.new_tag();
            let (sender, receiver) = oneshot::channel();
            lock(&hub.inner.deliveries).insert(tag, sender);
            loop {
                let pushed = hub
                    .inner
                    .sessions
                    .send_module_input(
                        &device,
                        &module_id,
                        input,
                        &message,
                        mqtt_frontend::DeliveryTag(tag),
                    )
                    .await;
                match pushed {
                    Ok(()) => break,
                    // The connection's queue is shared with other pushes: wait for room, never
                    // push a message twice.
                    Err(PushError::QueueFull) => match in_flight.is_empty() {
                        true => tokio::time::sleep(Duration::from_millis(5)).await,
                        false => {
                            confirm_oldest(&mut in_flight, timeout).await?;
                            delivered += 1;
                        }
                    },
                    Err(_) => {
                        lock(&hub.inner.deliveries).remove(&tag);
                        return Err(());
                    }
                }
            }
            in_flight.push_back((tag, receiver));
        }
        while !in_flight.is_empty() {
            confirm_oldest(&mut in_flight, timeout).await?;
            delivered += 1;
        }
        Ok(())
    }
    .await;
    hub.inner
        .counters
        .delivered_to_modules
        .fetch_add(delivered, Ordering::Relaxed);
    if outcome.is_err() {
        let mut deliveries = lock(&hub.inner.deliveries);
        for (tag, _) in in_flight {
            deliveries.remove(&tag);
        }
        return false;
    }
    true
}

/// Waits for the module's PUBACK of the oldest delivery in flight.
async fn confirm_oldest(
    in_flight: &mut VecDeque<(u64, oneshot::Receiver<bool>)>,
    timeout: Duration,
) -> Result<(), ()> {
    let Some((_, receiver)) = in_flight.front_mut() else {
        return Ok(());
    };
    match tokio::time::timeout(timeout, receiver).await {
        Ok(Ok(true)) => {
            in_flight.pop_front();
            Ok(())
        }
        _ => Err(()),
    }
}

/// Whether a failed upstream connection was refused for reasons retrying will not fix (bad or
/// unknown identity), as opposed to the hub being busy or unreachable.
fn refused_for_good(failure: &ConnectError) -> bool {
    matches!(failure, ConnectError::Refused { code } if *code != ConnectReturnCode::ServerUnavailable)
}
