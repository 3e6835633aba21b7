//! The routing shell: the live table behind a swappable pointer, the stored configuration file,
//! and one delivery task per custom endpoint fed through a bounded queue.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use iothub_types::Message;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

use crate::config::{ConfigErrors, ConfigLoadError, EndpointKind, RoutingConfig};
use crate::file_sink::run_file_worker;
use crate::names::{EndpointName, RoutingSource};
use crate::stats::{EndpointCounters, RouterStats};
use crate::table::{EndpointSet, RouteExplanation, RoutingTable};
use crate::webhook::run_webhook_worker;
use crate::wire::RoutingDocument;

/// The file, inside [`RouterOptions::config_directory`], that holds the routing configuration.
pub const CONFIG_FILE_NAME: &str = "routing.json";

/// A boxed, sendable future, as the [`EventsEndpoint`] trait returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The error an [`EventsEndpoint`] reports; the hub can downcast it back to its own type.
pub type EventsAppendError = Box<dyn std::error::Error + Send + Sync>;

/// A message on its way to endpoints, with the source it was routed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedMessage {
    pub source: RoutingSource,
    pub message: Message,
}

/// The built-in `events` endpoint: the hub's durable telemetry log, implemented by the hub.
pub trait EventsEndpoint: Send + Sync + 'static {
    /// Appends the message durably; resolves with its offset once it is durable.
    fn append<'a>(
        &'a self,
        message: &'a RoutedMessage,
    ) -> BoxFuture<'a, Result<u64, EventsAppendError>>;
}

/// Where the router keeps its files and how big its queues are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterOptions {
    /// Holds [`CONFIG_FILE_NAME`].
    pub config_directory: PathBuf,
    /// File endpoints write under this directory.
    pub file_directory: PathBuf,
    /// The bound on each custom endpoint's queue; a message routed to a full queue is dropped
    /// and counted.
    pub endpoint_queue_capacity: usize,
    /// The most messages a file endpoint writes per `fdatasync`.
    pub file_batch_max: usize,
}

impl RouterOptions {
    pub const DEFAULT_ENDPOINT_QUEUE_CAPACITY: usize = 1024;
    pub const DEFAULT_FILE_BATCH_MAX: usize = 256;

    pub fn new(config_directory: impl Into<PathBuf>, file_directory: impl Into<PathBuf>) -> Self {
        RouterOptions {
            config_directory: config_directory.into(),
            file_directory: file_directory.into(),
            endpoint_queue_capacity: RouterOptions::DEFAULT_ENDPOINT_QUEUE_CAPACITY,
            file_batch_max: RouterOptions::DEFAULT_FILE_BATCH_MAX,
        }
    }
}

/// Why the router could not start or take a new configuration.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
    #[error("cannot read the routing configuration {}: {error}", path.display())]
    ReadConfig {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the stored routing configuration {} is unusable: {error}", path.display())]
    StoredConfig {
        path: PathBuf,
        error: ConfigLoadError,
    },
    #[error("cannot store the routing configuration in {}: {error}", path.display())]
    Persist {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the router is shut down")]
    ShutDown,
}

/// Why a message could not be dispatched.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The `events` append failed; nothing was queued for other endpoints, so the sender may
    /// retry without duplicating deliveries.
    #[error("appending to the events endpoint failed: {0}")]
    Events(#[source] EventsAppendError),
    #[error("the router is shut down")]
    ShutDown,
}

/// What [`Router::dispatch`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchOutcome {
    /// The endpoints the message was routed to (indexes into the table live at the time).
    pub endpoints: EndpointSet,
    /// The `events` offset, when the message was routed there (it is durable then).
    pub events_offset: Option<u64>,
    /// Custom endpoints whose queue took the message.
    pub queued: usize,
    /// Custom endpoints whose queue was full, so the message was dropped for them.
    pub dropped_queue_full: usize,
}

impl DispatchOutcome {
    /// Whether the message matched no route and no fallback, so went nowhere.
    pub fn is_unrouted(&self) -> bool {
        self.endpoints.is_empty()
    }
}

/// Routes messages to endpoints with a configuration that can be replaced at run time.
///
/// Cloning is cheap and clones share everything. Must be created and used inside a tokio
/// runtime: each custom endpoint has a delivery task.
#[derive(Clone)]
pub struct Router {
    inner: Arc<RouterInner>,
}

struct RouterInner {
    options: RouterOptions,
    events: Arc<dyn EventsEndpoint>,
    /// The live table; readers clone the `Arc` and never hold the lock across an await.
    live: RwLock<Arc<LiveRouting>>,
    /// Serializes configuration changes (validate, persist, reconcile, swap).
    apply_lock: tokio::sync::Mutex<()>,
    counters_by_name: Mutex<HashMap<EndpointName, Arc<EndpointCounters>>>,
    /// Delivery tasks of endpoints that a reconfiguration removed or redefined; they finish
    /// once their queue is drained.
    retired_tasks: Mutex<Vec<JoinHandle<()>>>,
    events_appended: AtomicU64,
    unrouted: AtomicU64,
    shut_down: AtomicBool,
}

/// One configuration in force: the table and the delivery queues of its custom endpoints.
struct LiveRouting {
    config: Arc<RoutingConfig>,
    table: RoutingTable,
    /// Aligned with `table.endpoint_names()`; `None` for `events` (and after shutdown).
    workers: Vec<Option<Arc<EndpointWorker>>>,
}

struct EndpointWorker {
    name: EndpointName,
    kind: EndpointKind,
    queue: mpsc::Sender<Arc<RoutedMessage>>,
    counters: Arc<EndpointCounters>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Router")
            .field("options", &self.inner.options)
            .field("config", &self.snapshot().config)
            .finish_non_exhaustive()
    }
}

// === impl Router ===

impl Router {
    /// Starts a router with the stored configuration of `options.config_directory`, or the
    /// default configuration (everything to `events`) when none is stored yet.
    pub async fn open(
        options: RouterOptions,
        events: Arc<dyn EventsEndpoint>,
    ) -> Result<Router, RouterError> {
        let path = options.config_directory.join(CONFIG_FILE_NAME);
        let stored = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|error| std::io::Error::other(error.to_string()))
                .and_then(|result| result)
        };
        let config = match stored {
            Ok(bytes) => {
                RoutingConfig::from_json(&bytes).map_err(|error| RouterError::StoredConfig {
                    path: path.clone(),
                    error,
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => RoutingConfig::default(),
            Err(error) => return Err(RouterError::ReadConfig { path, error }),
        };
        let inner = Arc::new(RouterInner {
            options,
            events,
            live: RwLock::new(Arc::new(LiveRouting::empty(Arc::new(
                RoutingConfig::default(),
            )))),
            apply_lock: tokio::sync::Mutex::new(()),
            counters_by_name: Mutex::new(HashMap::new()),
            retired_tasks: Mutex::new(Vec::new()),
            events_appended: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        });
        let router = Router { inner };
        router.install(Arc::new(config));
        Ok(router)
    }

    /// Validates `document`, stores it and puts it in force; messages dispatched from then on
    /// use it. Endpoints whose definition is unchanged keep their queue and task.
    pub async fn apply(
        &self,
        document: &RoutingDocument,
    ) -> Result<Arc<RoutingConfig>, RouterError> {
        let config = RoutingConfig::from_document(document)?;
        self.apply_config(config).await
    }

    /// [`Router::apply`] for an already validated configuration.
    pub async fn apply_config(
        &self,
        config: RoutingConfig,
    ) -> Result<Arc<RoutingConfig>, RouterError> {
        let _guard = self.inner.apply_lock.lock().await;
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(RouterError::ShutDown);
        }
        let directory = self.inner.options.config_directory.clone();
        let mut json = serde_json::to_vec_pretty(&config.to_document()).map_err(|error| {
            RouterError::Persist {
                path: directory.clone(),
                error: std::io::Error::other(error),
            }
        })?;
        json.push(b'\n');
        let write_directory = directory.clone();
        tokio::task::spawn_blocking(move || write_config_atomically(&write_directory, &json))
            .await
            .map_err(|error| std::io::Error::other(error.to_string()))
            .and_then(|result| result)
            .map_err(|error| RouterError::Persist {
                path: directory,
                error,
            })?;
        let config = Arc::new(config);
        self.install(Arc::clone(&config));
        Ok(config)
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<RoutingConfig> {
        Arc::clone(&self.snapshot().config)
    }

    /// The configuration in force as a document, defaults spelt out.
    pub fn document(&self) -> RoutingDocument {
        self.snapshot().config.to_document()
    }

    /// Where `message` would go with the configuration in force, and why. Nothing is sent.
    pub fn explain(
        &self,
        source: RoutingSource,
        message: &Message,
        twin: Option<&Value>,
    ) -> RouteExplanation {
        self.snapshot().table.explain(source, message, twin)
    }

    /// Routes one message: appends it to `events` (durably, before returning) when it is routed
    /// there, then queues it for every other endpoint it is routed to. `twin` is the sending
    /// device's twin for `$twin` conditions. Acknowledge the sender only after this returns
    /// `Ok`. Delivery to custom endpoints is asynchronous; see [`Router::stats`].
    pub async fn dispatch(
        &self,
        source: RoutingSource,
        message: Message,
        twin: Option<&Value>,
    ) -> Result<DispatchOutcome, DispatchError> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(DispatchError::ShutDown);
        }
        let live = self.snapshot();
        let endpoints = live.table.route_set(source, &message, twin);
        self.deliver(&live, source, message, endpoints).await
    }

    /// [`Router::dispatch`] that obtains the twin only when the configuration in force needs
    /// it: `load_twin` runs (once) only if a route of `source` mentions `$twin` (see
    /// [`RoutingTable::needs_twin`]). The table is read once, so a reconfiguration racing with
    /// this call cannot leave a `$twin` condition without its twin.
    pub async fn dispatch_loading_twin<LoadTwin, TwinFuture>(
        &self,
        source: RoutingSource,
        message: Message,
        load_twin: LoadTwin,
    ) -> Result<DispatchOutcome, DispatchError>
    where
        LoadTwin: FnOnce() -> TwinFuture,
        TwinFuture: Future<Output = Option<Value>>,
    {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(DispatchError::ShutDown);
        }
        let live = self.snapshot();
        let twin = if live.table.needs_twin(source) {
            load_twin().await
        } else {
            None
        };
        let endpoints = live.table.route_set(source, &message, twin.as_ref());
        self.deliver(&live, source, message, endpoints).await
    }

    /// Whether a message of `source` can go anywhere with the configuration in force (see
    /// [`RoutingTable::may_route`]); notification producers skip building messages otherwise.
    pub fn may_route(&self, source: RoutingSource) -> bool {
        self.snapshot().table.may_route(source)
    }

    /// Whether the configuration in force reads `$twin` for `source` (see
    /// [`RoutingTable::needs_twin`]).
    pub fn needs_twin(&self, source: RoutingSource) -> bool {
        self.snapshot().table.needs_twin(source)
    }

    /// Appends to `events` and queues for custom endpoints, as the routing decision says.
    async fn deliver(
        &self,
        live: &LiveRouting,
        source: RoutingSource,
        message: Message,
        endpoints: EndpointSet,
    ) -> Result<DispatchOutcome, DispatchError> {
        let mut outcome = DispatchOutcome {
            endpoints,
            events_offset: None,
            queued: 0,
            dropped_queue_full: 0,
        };
        if endpoints.is_empty() {
            self.inner.unrouted.fetch_add(1, Ordering::Relaxed);
            return Ok(outcome);
        }
        let routed = Arc::new(RoutedMessage { source, message });
        if endpoints.contains_events() {
            let offset = self
                .inner
                .events
                .append(&routed)
                .await
                .map_err(DispatchError::Events)?;
            self.inner.events_appended.fetch_add(1, Ordering::Relaxed);
            outcome.events_offset = Some(offset);
        }
        for index in endpoints
            .iter()
            .filter(|index| *index != EndpointSet::EVENTS_INDEX)
        {
            let Some(Some(worker)) = live.workers.get(index) else {
                continue;
            };
            match worker.queue.try_send(Arc::clone(&routed)) {
                Ok(()) => outcome.queued += 1,
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                    worker.counters.add_dropped_queue_full();
                    outcome.dropped_queue_full += 1;
                    tracing::warn!(endpoint = %worker.name, "endpoint queue is full, dropping message");
                }
            }
        }
        Ok(outcome)
    }

    /// The counters of the router and of every custom endpoint in force.
    pub fn stats(&self) -> RouterStats {
        let live = self.snapshot();
        let counters_by_name = self
            .inner
            .counters_by_name
            .lock()
            .map(|counters| counters.clone())
            .unwrap_or_default();
        let endpoints = live
            .config
            .endpoints()
            .iter()
            .zip(live.workers.iter().skip(1))
            .map(|(definition, worker)| {
                let queued = worker.as_ref().map_or(0, |worker| {
                    worker.queue.max_capacity() - worker.queue.capacity()
                });
                match counters_by_name.get(&definition.name) {
                    Some(counters) => counters.snapshot(
                        definition.name.as_str(),
                        definition.kind.kind_name(),
                        queued,
                    ),
                    None => EndpointCounters::default().snapshot(
                        definition.name.as_str(),
                        definition.kind.kind_name(),
                        queued,
                    ),
                }
            })
            .collect();
        RouterStats {
            events_appended: self.inner.events_appended.load(Ordering::Relaxed),
            unrouted: self.inner.unrouted.load(Ordering::Relaxed),
            endpoints,
        }
    }

    /// Stops taking messages and configurations, then waits up to `grace` for every delivery
    /// task to drain its queue (webhook retries included). Tasks still running then are
    /// aborted and their queued messages lost. Returns whether everything drained. Counters
    /// stay readable through [`Router::stats`].
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let _guard = self.inner.apply_lock.lock().await;
        self.inner.shut_down.store(true, Ordering::Release);
        let previous = {
            let mut live = self
                .inner
                .live
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            let config = Arc::clone(&live.config);
            let stopped = LiveRouting {
                table: RoutingTable::new(&config),
                workers: vec![None; live.workers.len()],
                config,
            };
            std::mem::replace(&mut *live, Arc::new(stopped))
        };
        let mut tasks: Vec<JoinHandle<()>> = previous
            .workers
            .iter()
            .flatten()
            .filter_map(|worker| take_task(worker))
            .collect();
        // Dropping the last live table drops the queue senders, which lets each task finish
        // once its queue is empty. Dispatches still in flight hold their own reference.
        drop(previous);
        tasks.extend(
            self.inner
                .retired_tasks
                .lock()
                .map(|mut retired| std::mem::take(&mut *retired))
                .unwrap_or_default(),
        );
        let drained = tokio::time::timeout(grace, async {
            for task in tasks.iter_mut() {
                let _ = task.await;
            }
        })
        .await
        .is_ok();
        if !drained {
            for task in &tasks {
                task.abort();
            }
        }
        drained
    }

    fn snapshot(&self) -> Arc<LiveRouting> {
        Arc::clone(
            &self
                .inner
                .live
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Builds the live state for `config`, reusing the workers of unchanged endpoints, and
    /// swaps it in. Callers hold the apply lock (or are `open`).
    fn install(&self, config: Arc<RoutingConfig>) {
        let previous = self.snapshot();
        let table = RoutingTable::new(&config);
        let mut workers: Vec<Option<Arc<EndpointWorker>>> =
            Vec::with_capacity(table.endpoint_names().len());
        workers.push(None);
        for definition in config.endpoints() {
            let reused =
                previous.workers.iter().flatten().find(|worker| {
                    worker.name == definition.name && worker.kind == definition.kind
                });
            let worker = match reused {
                Some(worker) => Arc::clone(worker),
                None => self.spawn_worker(&definition.name, &definition.kind),
            };
            workers.push(Some(worker));
        }
        let retired: Vec<JoinHandle<()>> = previous
            .workers
            .iter()
            .flatten()
            .filter(|old| !workers.iter().flatten().any(|new| Arc::ptr_eq(old, new)))
            .filter_map(|old| take_task(old))
            .collect();
        if let Ok(mut counters) = self.inner.counters_by_name.lock() {
            counters.retain(|name, _| config.endpoint(name.as_str()).is_some());
        }
        if let Ok(mut retired_tasks) = self.inner.retired_tasks.lock() {
            retired_tasks.retain(|task| !task.is_finished());
            retired_tasks.extend(retired);
        }
        let next = Arc::new(LiveRouting {
            config,
            table,
            workers,
        });
        *self
            .inner
            .live
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = next;
    }

    fn spawn_worker(&self, name: &EndpointName, kind: &EndpointKind) -> Arc<EndpointWorker> {
        let counters = self
            .inner
            .counters_by_name
            .lock()
            .map(|mut counters| Arc::clone(counters.entry(name.clone()).or_default()))
            .unwrap_or_default();
        let (queue, receiver) = mpsc::channel(self.inner.options.endpoint_queue_capacity.max(1));
        let task = match kind {
            EndpointKind::Webhook(webhook) => tokio::spawn(run_webhook_worker(
                name.clone(),
                webhook.clone(),
                receiver,
                Arc::clone(&counters),
            )),
            EndpointKind::File(file) => tokio::spawn(run_file_worker(
                name.clone(),
                self.inner.options.file_directory.join(&file.relative_path),
                receiver,
                Arc::clone(&counters),
                self.inner.options.file_batch_max.max(1),
            )),
        };
        Arc::new(EndpointWorker {
            name: name.clone(),
            kind: kind.clone(),
            queue,
            counters,
            task: Mutex::new(Some(task)),
        })
    }
}

impl LiveRouting {
    fn empty(config: Arc<RoutingConfig>) -> LiveRouting {
        LiveRouting {
            table: RoutingTable::new(&config),
            workers: vec![None; config.endpoints().len() + 1],
            config,
        }
    }
}

fn take_task(worker: &EndpointWorker) -> Option<JoinHandle<()>> {
    worker.task.lock().ok().and_then(|mut task| task.take())
}

/// Replaces `directory/routing.json` atomically: write a temporary file, `fsync` it, rename it
/// over the old file and `fsync` the directory, so a crash leaves the old or the new file.
fn write_config_atomically(directory: &Path, json: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(directory)?;
    let temporary = directory.join(format!("{CONFIG_FILE_NAME}.tmp"));
    {
        let mut file = File::create(&temporary)?;
        file.write_all(json)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, directory.join(CONFIG_FILE_NAME))?;
    File::open(directory)?.sync_all()
}
