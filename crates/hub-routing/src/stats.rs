//! Delivery counters per endpoint and their serializable snapshots.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters of one custom endpoint, shared by its delivery task and the router. They
/// survive a reconfiguration that keeps the endpoint's name.
#[derive(Debug, Default)]
pub(crate) struct EndpointCounters {
    delivered: AtomicU64,
    retries: AtomicU64,
    dead_lettered: AtomicU64,
    dropped_queue_full: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl EndpointCounters {
    pub(crate) fn add_delivered(&self, count: u64) {
        self.delivered.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_dead_lettered(&self, count: u64, reason: String) {
        self.dead_lettered.fetch_add(count, Ordering::Relaxed);
        self.set_last_error(reason);
    }

    pub(crate) fn add_dropped_queue_full(&self) {
        self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_last_error(&self, reason: String) {
        if let Ok(mut last_error) = self.last_error.lock() {
            *last_error = Some(reason);
        }
    }

    pub(crate) fn snapshot(&self, name: &str, kind: &'static str, queued: usize) -> EndpointStats {
        EndpointStats {
            name: name.to_owned(),
            kind,
            delivered: self.delivered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            queued,
            last_error: self
                .last_error
                .lock()
                .ok()
                .and_then(|last_error| last_error.clone()),
        }
    }
}

/// A snapshot of one custom endpoint's delivery counters (JSON in camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    pub name: String,
    /// `webhook` or `file`.
    pub kind: &'static str,
    /// Messages the endpoint accepted (a 2xx answer, or written and synced to the file).
    pub delivered: u64,
    /// Webhook attempts that failed and were tried again.
    pub retries: u64,
    /// Messages given up on: every attempt failed, the webhook answered with a permanent
    /// error, or the file write failed.
    pub dead_lettered: u64,
    /// Messages dropped because the endpoint's queue was full when they were routed.
    pub dropped_queue_full: u64,
    /// Messages waiting in the endpoint's queue.
    pub queued: usize,
    /// The most recent failure, for operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A snapshot of the router's counters (JSON in camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterStats {
    /// Messages appended to the built-in `events` endpoint.
    pub events_appended: u64,
    /// Messages that matched no route and no fallback, so went nowhere.
    pub unrouted: u64,
    /// The custom endpoints of the live configuration.
    pub endpoints: Vec<EndpointStats>,
}
