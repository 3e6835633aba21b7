//! Device-to-cloud telemetry: durable ingest into an append-only log and consumer groups that
//! read it from their committed offset, the start, the end or an explicit offset.
//!
//! [`TelemetryLog`] is the seam for other event stores; [`FileTelemetryLog`] is the single-node
//! implementation on the `store` crate's segment log (group commit, so many concurrent
//! publishers share each fsync) plus its checkpoint file for consumer-group offsets. Each event
//! is stored as a compact, versioned binary record ([`record`]).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use iothub_types::{Identity, Message};
use store::{
    CheckpointName, CheckpointStore, LogHandle, LogOptions, ReadLimits, StartPosition, StoreError,
};

use crate::auth::{AuthMethod, AuthenticatedDevice};
use crate::error::HubError;
use crate::hub::Hub;
use crate::routing::dispatch_error;
use crate::storage::BoxFuture;
use hub_routing::RoutingSource;

pub(crate) mod enqueued_time;
pub(crate) mod record;

/// One record as a [`TelemetryLog`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The record's offset.
    pub offset: u64,
    /// Milliseconds since the Unix epoch given at append time (the enqueued time).
    pub timestamp_ms: u64,
    /// The encoded event.
    pub payload: Bytes,
}

/// An append-only, durable event log with consumer-group offsets.
pub trait TelemetryLog: Send + Sync + 'static {
    /// Appends one record; resolves with its offset once it is durable.
    fn append(&self, payload: Bytes, timestamp_ms: u64) -> BoxFuture<'_, Result<u64, HubError>>;

    /// Reads up to `max_records` records at or after `offset` (from the oldest kept when
    /// `offset` was already reclaimed). Empty when there is nothing yet.
    fn read_from(
        &self,
        offset: u64,
        max_records: usize,
    ) -> BoxFuture<'_, Result<Vec<LogRecord>, HubError>>;

    /// Resolves once a record with offset `offset` or later is durable.
    fn wait_for(&self, offset: u64) -> BoxFuture<'_, Result<(), HubError>>;

    /// The oldest offset still stored.
    fn first_offset(&self) -> u64;

    /// The offset the next record will get.
    fn next_offset(&self) -> u64;

    /// The committed offset of a consumer group: the offset it reads next.
    fn committed_offset(&self, group: &str) -> Result<Option<u64>, HubError>;

    /// Durably commits a consumer group's offset (the offset it reads next).
    fn commit_offset<'a>(
        &'a self,
        group: &'a str,
        offset: u64,
    ) -> BoxFuture<'a, Result<(), HubError>>;

    /// Flushes and closes the log.
    fn close(&self) -> BoxFuture<'_, Result<(), HubError>>;
}

/// [`TelemetryLog`] on the `store` crate: segments under `{dir}/log`, offsets in `{dir}/consumer-groups`.
#[derive(Debug, Clone)]
pub struct FileTelemetryLog {
    log: LogHandle,
    checkpoints: CheckpointStore,
}

fn store_error(error: StoreError) -> HubError {
    match error {
        StoreError::RecordTooLarge { .. } => HubError::TooLarge {
            what: "telemetry record",
            size: 0,
            limit: 0,
        },
        StoreError::StoreFull { .. } => HubError::Throttled(error.to_string()),
        other => HubError::storage(other),
    }
}

fn group_name(group: &str) -> Result<CheckpointName, HubError> {
    CheckpointName::new(group)
        .map_err(|error| HubError::InvalidArgument(format!("invalid consumer group: {error}")))
}

impl FileTelemetryLog {
    /// Opens (creating) the log in `directory`.
    pub async fn open(directory: &Path) -> Result<FileTelemetryLog, HubError> {
        let log = LogHandle::open(directory.join("log"), LogOptions::default())
            .await
            .map_err(store_error)?;
        let checkpoints =
            CheckpointStore::open(directory.join("consumer-groups")).map_err(store_error)?;
        Ok(FileTelemetryLog { log, checkpoints })
    }
}

impl TelemetryLog for FileTelemetryLog {
    fn append(&self, payload: Bytes, timestamp_ms: u64) -> BoxFuture<'_, Result<u64, HubError>> {
        Box::pin(async move {
            self.log
                .append_at(payload, timestamp_ms)
                .await
                .map_err(store_error)
        })
    }

    fn read_from(
        &self,
        offset: u64,
        max_records: usize,
    ) -> BoxFuture<'_, Result<Vec<LogRecord>, HubError>> {
        Box::pin(async move {
            let limits = ReadLimits {
                max_records,
                max_bytes: 4 * 1024 * 1024,
            };
            let records = self
                .log
                .read_from(offset, limits)
                .await
                .map_err(store_error)?;
            Ok(records
                .into_iter()
                .map(|record| LogRecord {
                    offset: record.offset,
                    timestamp_ms: record.timestamp_ms,
                    payload: record.payload,
                })
                .collect())
        })
    }

    fn wait_for(&self, offset: u64) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async move { self.log.wait_for(offset).await.map_err(store_error) })
    }

    fn first_offset(&self) -> u64 {
        self.log.resolve(StartPosition::Start)
    }

    fn next_offset(&self) -> u64 {
        self.log.resolve(StartPosition::End)
    }

    fn committed_offset(&self, group: &str) -> Result<Option<u64>, HubError> {
        Ok(self.checkpoints.get(&group_name(group)?))
    }

    fn commit_offset<'a>(
        &'a self,
        group: &'a str,
        offset: u64,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        Box::pin(async move {
            self.checkpoints
                .commit(group_name(group)?, offset)
                .await
                .map_err(store_error)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async move { self.log.close().await.map_err(store_error) })
    }
}

/// A telemetry message as consumers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryEvent {
    /// Position in the log; commit `offset + 1` to move past it.
    pub offset: u64,
    /// The sending device or module.
    pub identity: Identity,
    /// The message with the hub's system properties stamped
    /// (`connection_device_id`, `connection_module_id`, `connection_auth_method`,
    /// `connection_auth_generation_id`, `enqueued_time`).
    pub message: Message,
    /// When the hub accepted it.
    pub enqueued_time: DateTime<Utc>,
}

/// Where a consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStart {
    /// The group's committed offset, or the oldest stored event when it has none.
    Committed,
    /// The oldest stored event.
    Start,
    /// Only events accepted from now on.
    End,
    /// This offset (the oldest stored event when it was already reclaimed).
    Offset(u64),
}

/// Reads telemetry in order for one consumer group; waits when caught up.
pub struct TelemetryConsumer {
    log: Arc<dyn TelemetryLog>,
    group: String,
    next_offset: u64,
}

impl std::fmt::Debug for TelemetryConsumer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TelemetryConsumer")
            .field("group", &self.group)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl TelemetryConsumer {
    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The offset of the next event this consumer returns (at least).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Returns up to `max_events` events, waiting until at least one is available.
    pub async fn next_batch(&mut self, max_events: usize) -> Result<Vec<TelemetryEvent>, HubError> {
        loop {
            let events = self.try_next_batch(max_events).await?;
            if !events.is_empty() {
                return Ok(events);
            }
            self.log.wait_for(self.next_offset).await?;
        }
    }

    /// Returns up to `max_events` events that are available now, possibly none.
    pub async fn try_next_batch(
        &mut self,
        max_events: usize,
    ) -> Result<Vec<TelemetryEvent>, HubError> {
        let records = self
            .log
            .read_from(self.next_offset, max_events.max(1))
            .await?;
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            self.next_offset = record.offset + 1;
            match decode_event(&record) {
                Ok(event) => events.push(event),
                Err(error) => {
                    tracing::warn!(%error, offset = record.offset, "skipping unreadable telemetry record")
                }
            }
        }
        Ok(events)
    }

    /// Commits this consumer's position for its group.
    pub async fn commit(&self) -> Result<(), HubError> {
        self.log.commit_offset(&self.group, self.next_offset).await
    }
}

fn decode_event(record: &LogRecord) -> Result<TelemetryEvent, HubError> {
    let (identity, message) = record::decode(&record.payload)
        .map_err(|error| HubError::storage(format!("unreadable telemetry record: {error}")))?;
    let enqueued_time =
        DateTime::from_timestamp_millis(i64::try_from(record.timestamp_ms).unwrap_or(0))
            .unwrap_or_default();
    Ok(TelemetryEvent {
        offset: record.offset,
        identity,
        message,
        enqueued_time,
    })
}

impl Hub {
    /// Accepts a device-to-cloud message from an authenticated device or module and routes it
    /// (source `DeviceMessages`). Resolves once the message is durable in the telemetry log when
    /// it is routed there (acknowledge the device only then), with its offset; `None` when the
    /// routes sent it only to custom endpoints, or nowhere.
    pub async fn ingest_telemetry(
        &self,
        sender: &AuthenticatedDevice,
        message: Message,
    ) -> Result<Option<u64>, HubError> {
        self.ingest_telemetry_from(
            &sender.identity,
            sender.method,
            &sender.generation_id,
            message,
        )
        .await
    }

    /// [`Hub::ingest_telemetry`] from the parts of an authenticated sender, so the front end's
    /// per-message path does not build (and clone into) an [`AuthenticatedDevice`].
    pub(crate) async fn ingest_telemetry_from(
        &self,
        identity: &Identity,
        method: AuthMethod,
        generation_id: &str,
        mut message: Message,
    ) -> Result<Option<u64>, HubError> {
        let size = message.iothub_size();
        if size > self.limits.telemetry_max_message_bytes {
            return Err(HubError::TooLarge {
                what: "device-to-cloud message",
                size,
                limit: self.limits.telemetry_max_message_bytes,
            });
        }
        let now = self.clock.now();
        message.system.connection_device_id = Some(identity.device.as_str().to_owned());
        message.system.connection_module_id = identity
            .module
            .as_ref()
            .map(|module| module.as_str().to_owned());
        message.system.connection_auth_method = Some(method.to_wire().to_owned());
        message.system.connection_auth_generation_id = Some(generation_id.to_owned());
        message.system.enqueued_time = Some(enqueued_time::format(now));
        self.device_activity(identity);
        let outcome = self
            .router
            .dispatch_loading_twin(RoutingSource::DeviceMessages, message, || {
                self.routing_twin(&identity.device)
            })
            .await
            .map_err(dispatch_error)?;
        Ok(outcome.events_offset)
    }

    /// Opens a consumer for `group` starting at `start`.
    pub fn telemetry_consumer(
        &self,
        group: &str,
        start: ConsumerStart,
    ) -> Result<TelemetryConsumer, HubError> {
        group_name(group)?;
        let next_offset = match start {
            ConsumerStart::Committed => self
                .telemetry
                .committed_offset(group)?
                .unwrap_or_else(|| self.telemetry.first_offset()),
            ConsumerStart::Start => self.telemetry.first_offset(),
            ConsumerStart::End => self.telemetry.next_offset(),
            ConsumerStart::Offset(offset) => offset,
        };
        Ok(TelemetryConsumer {
            log: Arc::clone(&self.telemetry),
            group: group.to_owned(),
            next_offset,
        })
    }

    /// Commits `next_offset` (the offset the group reads next) for a consumer group.
    pub async fn commit_consumer_offset(
        &self,
        group: &str,
        next_offset: u64,
    ) -> Result<(), HubError> {
        self.telemetry.commit_offset(group, next_offset).await
    }

    /// The committed offset of a consumer group, if any.
    pub fn consumer_offset(&self, group: &str) -> Result<Option<u64>, HubError> {
        self.telemetry.committed_offset(group)
    }

    /// The offsets bounding the stored telemetry: (oldest stored, next to be written).
    pub fn telemetry_bounds(&self) -> (u64, u64) {
        (self.telemetry.first_offset(), self.telemetry.next_offset())
    }
}
