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
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, join_all};
use futures_util::stream::FuturesOrdered;
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
/// also commits when the endpoint has stayed dry for 50 ms.
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

async fn run(hub: EdgeHub, sink: Sink, reader: EndpointReader) {
    match sink {
        Sink::Upstream => run_upstream(hub, reader).await,
        Sink::ModuleInput { module, input } => run_module_input(hub, module, input, reader).await,
    }
}

/// Batches being sent upstream at once: the next batch goes out while the previous one still
/// waits for the hub's PUBACKs, so the links never idle at a batch boundary.
const UPSTREAM_BATCHES_IN_FLIGHT: usize = 2;

async fn run_upstream(hub: EdgeHub, mut reader: EndpointReader) {
    let endpoint = reader.endpoint().to_string();
    let mut last_commit = tokio::time::Instant::now();
    let mut in_flight: FuturesOrdered<BoxFuture<'static, (Batch, bool)>> = FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            Some((batch, delivered)) = in_flight.next(), if !in_flight.is_empty() => {
                if !delivered {
                    // Later batches are sent again too: wait for them, then start over at the
                    // first unacknowledged message once the hub is back.
                    while in_flight.next().await.is_some() {}
                    reader.rewind();
                    hub.inner.upstream.wait_online().await;
                    continue;
                }
                if let Err(error) = acknowledge(&mut reader, &batch, &mut last_commit).await {
                    tracing::warn!(%error, endpoint, "cannot acknowledge delivered messages");
                    while in_flight.next().await.is_some() {}
                    reader.rewind();
                }
            }
            batch = reader.next_batch(UPSTREAM_BATCH, BATCH_BYTES, now_ms()), if in_flight.len() < UPSTREAM_BATCHES_IN_FLIGHT => {
                match batch {
                    Ok(batch) => {
                        let hub = hub.clone();
                        in_flight.push_back(Box::pin(async move {
                            let delivered = deliver_upstream(&hub, &batch).await;
                            (batch, delivered)
                        }));
                    }
                    Err(error) => {
                        tracing::warn!(%error, endpoint, "cannot read the store");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

/// Acknowledges a delivered batch in memory, and durably every [`COMMIT_EVERY`] messages or
/// [`COMMIT_INTERVAL`] (the reader also commits once the endpoint stays dry for a moment).
async fn acknowledge(
    reader: &mut EndpointReader,
    batch: &Batch,
    last_commit: &mut tokio::time::Instant,
) -> Result<(), edge_store::EdgeStoreError> {
    let deferred = reader.ack_deferred(batch)?;
    if deferred >= COMMIT_EVERY || last_commit.elapsed() >= COMMIT_INTERVAL {
        *last_commit = tokio::time::Instant::now();
        reader.commit().await?;
    }
    Ok(())
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

/// Whether `module` is connected with a subscription to its inputs; waits until it is.
/// Returns `false` when the hub shuts down.
async fn wait_for_module(hub: &EdgeHub, target: &Identity) -> bool {
    let mut changes = hub.inner.live_changed.subscribe();
    loop {
        let ready = hub.accepts(target, |subscription| {
            matches!(
                subscription,
                ClientSubscription::ModuleInputs { .. } | ClientSubscription::ModuleAll { .. }
            )
        });
        if ready {
            return true;
        }
        if changes.changed().await.is_err() {
            return false;
        }
    }
}

/// Streams an endpoint's stored messages into a module's input: up to [`MODULE_WINDOW`]
/// deliveries await the module's PUBACK at once, the next batch is read while the previous one
/// is still in flight (no pause at batch boundaries), and a batch is acknowledged in the store
/// once every message in it was confirmed. On a failed or timed-out delivery everything not
/// confirmed is sent again from the first unconfirmed message, in order.
async fn run_module_input(hub: EdgeHub, module: String, input: String, mut reader: EndpointReader) {
    let Ok(module_id) = ModuleId::new(&module) else {
        return;
    };
    let target = Identity::module(hub.inner.settings.device_id.clone(), module_id);
    let endpoint = reader.endpoint().to_string();
    let mut last_commit = tokio::time::Instant::now();
    loop {
        if !wait_for_module(&hub, &target).await {
            return;
        }
        let mut flight = ModuleFlight::default();
        let outcome = stream_to_module(
            &hub,
            &target,
            &input,
            &mut reader,
            &mut flight,
            &mut last_commit,
        )
        .await;
        hub.inner
            .counters
            .delivered_to_modules
            .fetch_add(flight.confirmed, Ordering::Relaxed);
        {
            let mut deliveries = lock(&hub.inner.deliveries);
            for delivery in flight.deliveries.drain(..) {
                deliveries.remove(&delivery.tag);
            }
        }
        if let Err(error) = outcome {
            reader.rewind();
            if let Some(error) = error {
                tracing::warn!(%error, endpoint, "store error while delivering to a module");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One delivery awaiting the module's PUBACK.
struct Delivery {
    tag: u64,
    confirmed: oneshot::Receiver<bool>,
    /// The serial number of the batch it belongs to.
    batch: u64,
}

/// The batches and deliveries in flight to one module input.
#[derive(Default)]
struct ModuleFlight {
    /// Read and not yet acknowledged, oldest first; each with its deliveries not yet confirmed.
    batches: VecDeque<(Batch, usize)>,
    /// The serial number of the front batch.
    first_batch: u64,
    deliveries: VecDeque<Delivery>,
    /// Read and decoded, not yet queued into the session, with their batch's serial number.
    unpushed: VecDeque<(u64, Message)>,
    confirmed: u64,
}

impl ModuleFlight {
    /// Counts the oldest delivery as confirmed.
    fn confirm_front(&mut self) {
        if let Some(delivery) = self.deliveries.pop_front() {
            let slot = (delivery.batch - self.first_batch) as usize;
            self.batches[slot].1 -= 1;
            self.confirmed += 1;
        }
    }
}

/// Pushes and confirms until a delivery fails (`Err(None)`) or an acknowledgement cannot be
/// recorded (`Err(Some(_))`).
async fn stream_to_module(
    hub: &EdgeHub,
    target: &Identity,
    input: &str,
    reader: &mut EndpointReader,
    flight: &mut ModuleFlight,
    last_commit: &mut tokio::time::Instant,
) -> Result<(), Option<edge_store::EdgeStoreError>> {
    let timeout = hub.inner.settings.message_ack_timeout;
    loop {
        // Acknowledge, in order, the batches whose deliveries are all confirmed.
        while flight.batches.front().is_some_and(|(_, open)| *open == 0)
            && flight
                .unpushed
                .front()
                .is_none_or(|(serial, _)| *serial != flight.first_batch)
        {
            let (batch, _) = flight.batches.pop_front().expect("checked above");
            flight.first_batch += 1;
            acknowledge(reader, &batch, last_commit)
                .await
                .map_err(Some)?;
        }
        // Refill the window once it is half empty, in one step of the session registry: runs
        // of deliveries instead of one push per confirmation.
        let room = MODULE_WINDOW.saturating_sub(flight.deliveries.len());
        if room >= MODULE_WINDOW / 2 && !flight.unpushed.is_empty() {
            let queued = push_deliveries(hub, target, input, flight, room).await?;
            if queued == 0 && flight.deliveries.is_empty() {
                // The connection's queue is full of other pushes: wait for room.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        }
        let may_read = flight.unpushed.is_empty()
            && flight.deliveries.len() < MODULE_WINDOW
            && flight.batches.len() < 2;
        tokio::select! {
            biased;
            confirmed = confirm_oldest(flight, timeout), if !flight.deliveries.is_empty() => {
                confirmed?;
                // Confirmations that arrived together are taken together.
                while confirm_ready(flight)? {}
            }
            batch = reader.next_batch(MODULE_BATCH, BATCH_BYTES, now_ms()), if may_read => {
                let batch = batch.map_err(Some)?;
                let serial = flight.first_batch + flight.batches.len() as u64;
                for stored in &batch.messages {
                    // An unreadable record cannot be delivered; it is acknowledged with its batch.
                    let Ok(mut message) = record::decode(&stored.payload) else {
                        continue;
                    };
                    message.system.input_name = Some(input.to_owned());
                    message.system.output_name = None;
                    flight.unpushed.push_back((serial, message));
                }
                flight.batches.push_back((batch, 0));
            }
        }
    }
}

/// Queues up to `room` of the unpushed messages into the module's session; returns how many
/// were queued. The rest stay unpushed when the connection's queue is full.
async fn push_deliveries(
    hub: &EdgeHub,
    target: &Identity,
    input: &str,
    flight: &mut ModuleFlight,
    room: usize,
) -> Result<usize, Option<edge_store::EdgeStoreError>> {
    let Some(module) = target.module.as_ref() else {
        return Err(None);
    };
    let count = room.min(flight.unpushed.len());
    let mut tags = Vec::with_capacity(count);
    {
        let mut deliveries = lock(&hub.inner.deliveries);
        for _ in 0..count {
            let tag = hub.inner.new_tag();
            let (sender, receiver) = oneshot::channel();
            deliveries.insert(tag, sender);
            tags.push((tag, receiver));
        }
    }
    let (queued, failure) = hub
        .inner
        .sessions
        .send_module_inputs(
            &target.device,
            module,
            input,
            flight
                .unpushed
                .iter()
                .zip(&tags)
                .map(|((_, message), (tag, _))| (message, mqtt_frontend::DeliveryTag(*tag))),
        )
        .await;
    let mut tags = tags.into_iter();
    for (tag, receiver) in tags.by_ref().take(queued) {
        let (serial, _) = flight.unpushed.pop_front().expect("queued from unpushed");
        let slot = (serial - flight.first_batch) as usize;
        flight.batches[slot].1 += 1;
        flight.deliveries.push_back(Delivery {
            tag,
            confirmed: receiver,
            batch: serial,
        });
    }
    {
        let mut deliveries = lock(&hub.inner.deliveries);
        for (tag, _) in tags {
            deliveries.remove(&tag);
        }
    }
    match failure {
        None | Some(PushError::QueueFull) => Ok(queued),
        Some(_) => Err(None),
    }
}

/// Waits for the module's PUBACK of the oldest delivery in flight.
async fn confirm_oldest(
    flight: &mut ModuleFlight,
    timeout: Duration,
) -> Result<(), Option<edge_store::EdgeStoreError>> {
    let Some(oldest) = flight.deliveries.front_mut() else {
        return Ok(());
    };
    match tokio::time::timeout(timeout, &mut oldest.confirmed).await {
        Ok(Ok(true)) => {
            flight.confirm_front();
            Ok(())
        }
        _ => Err(None),
    }
}

/// Takes the oldest delivery's PUBACK if it has already arrived.
fn confirm_ready(flight: &mut ModuleFlight) -> Result<bool, Option<edge_store::EdgeStoreError>> {
    let Some(oldest) = flight.deliveries.front_mut() else {
        return Ok(false);
    };
    match oldest.confirmed.try_recv() {
        Ok(true) => {
            flight.confirm_front();
            Ok(true)
        }
        Err(oneshot::error::TryRecvError::Empty) => Ok(false),
        Ok(false) | Err(oneshot::error::TryRecvError::Closed) => Err(None),
    }
}

/// Whether a failed upstream connection was refused for reasons retrying will not fix (bad or
/// unknown identity), as opposed to the hub being busy or unreachable.
fn refused_for_good(failure: &ConnectError) -> bool {
    matches!(failure, ConnectError::Refused { code } if *code != ConnectReturnCode::ServerUnavailable)
}
