//! [`ProcessRuntime`]: starting, watching, stopping and remembering module processes.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use edge_agent::{
    DEFAULT_STOP_GRACE_PERIOD, Health, LogOptions, ModuleDetails, ModuleRuntime, ModuleState,
    RuntimeError, RuntimeOperation,
};
use edge_deployment::{ConfigHash, EnvVarName, ModuleKind, ModuleName, ModuleSpec};
use rustix::process::{Pid, Signal};
use tokio::sync::{broadcast, watch};

use crate::Timestamp;
use crate::environment::{EdgeEnvironment, ModuleIdentities, module_environment};
use crate::logs::{LogLimits, ModuleLog, ModuleLogs, OutputStream, pump_output};
use crate::procfs::{RecordedRunFate, boot_id, read_stat, recorded_run_fate};
use crate::record::{
    ExitCause, ExitRecord, LaunchSettings, ModuleRecord, RECORD_FORMAT, RunRecord, format_time,
    parse_time, read_record, write_record,
};
use crate::user::{RunAs, resolve_user};

/// `PATH` in [`ProcessRuntimeConfig::base_environment`] by default.
pub const DEFAULT_BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How many exits may queue up for a slow [`ProcessRuntime::subscribe_exits`] receiver before it
/// skips some (and should call `list` to catch up).
const EXIT_QUEUE_LENGTH: usize = 256;

/// How long a SIGKILLed process group may take to go away before `stop` reports a failure.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long output still in the pipes may take to reach the log once the process has exited.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How often [`ProcessRuntime::open`] looks whether a process left by an earlier runtime is gone.
const ORPHAN_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How a [`ProcessRuntime`] is set up.
#[derive(Debug, Clone)]
pub struct ProcessRuntimeConfig {
    /// Where module records, logs and default working directories live.
    pub data_dir: PathBuf,
    /// The device facts every module's `IOTEDGE_*` environment is built from.
    pub edge: EdgeEnvironment,
    /// The variables every module starts with, before its own `env` and the `IOTEDGE_*` ones.
    pub base_environment: BTreeMap<String, String>,
    pub log_limits: LogLimits,
    /// The grace period of the stops that `update`, `restart`, [`ProcessRuntime::open`] (for
    /// processes left by an earlier runtime) and [`ProcessRuntime::shutdown`] do on their own.
    pub stop_grace_period: Duration,
}

impl ProcessRuntimeConfig {
    /// Defaults: `PATH` = [`DEFAULT_BASE_PATH`] only, [`LogLimits::default`], and the agent's
    /// [`DEFAULT_STOP_GRACE_PERIOD`].
    pub fn new(data_dir: PathBuf, edge: EdgeEnvironment) -> ProcessRuntimeConfig {
        ProcessRuntimeConfig {
            data_dir,
            edge,
            base_environment: BTreeMap::from([("PATH".to_owned(), DEFAULT_BASE_PATH.to_owned())]),
            log_limits: LogLimits::default(),
            stop_grace_period: DEFAULT_STOP_GRACE_PERIOD,
        }
    }
}

/// Why a [`ProcessRuntime`] cannot open its data directory.
#[derive(Debug, thiserror::Error)]
pub enum ProcessRuntimeError {
    #[error("cannot use the data directory {path}: {source}")]
    DataDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One ended module process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleExit {
    pub name: ModuleName,
    /// The exit code, or 128 + the signal number when a signal ended it (as Docker reports);
    /// -1 when nobody could observe it ([`ExitCause::RuntimeLost`] for a process that was
    /// already gone).
    pub exit_code: i64,
    pub finished_at: Timestamp,
    pub cause: ExitCause,
}

/// Runs process modules (see the crate documentation).
///
/// Cheap to clone; clones share the same modules.
pub struct ProcessRuntime<I> {
    shared: Arc<Shared<I>>,
}

impl<I> Clone for ProcessRuntime<I> {
    fn clone(&self) -> Self {
        ProcessRuntime {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I> std::fmt::Debug for ProcessRuntime<I> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProcessRuntime")
            .field("data_dir", &self.shared.config.data_dir)
            .finish_non_exhaustive()
    }
}

struct Shared<I> {
    config: ProcessRuntimeConfig,
    identities: I,
    modules: Mutex<BTreeMap<ModuleName, Arc<ModuleSlot>>>,
    exits: broadcast::Sender<ModuleExit>,
    boot_id: Option<String>,
}

/// Everything about one module. `operation` serialises the runtime operations on it; `state`
/// is only held for short, await-free moments, so the exit watcher can always update it.
struct ModuleSlot {
    name: ModuleName,
    directory: PathBuf,
    operation: tokio::sync::Mutex<()>,
    persisting: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
    log: Arc<ModuleLog>,
}

struct SlotState {
    record: ModuleRecord,
    run: Option<LiveRun>,
}

struct LiveRun {
    pid: u32,
    started_at: Timestamp,
    /// Set by the watcher once the exit is recorded.
    exited: watch::Receiver<Option<ModuleExit>>,
    /// Set by whoever stops the process, so the watcher records why it ended.
    stop_cause: Option<ExitCause>,
}

impl<I: ModuleIdentities> ProcessRuntime<I> {
    /// Opens the data directory, loads the module records and stops what an earlier runtime
    /// instance left running (see the crate documentation). Unreadable records are skipped with
    /// a warning and left on disk.
    pub async fn open(
        config: ProcessRuntimeConfig,
        identities: I,
    ) -> Result<ProcessRuntime<I>, ProcessRuntimeError> {
        let modules_directory = config.data_dir.join("modules");
        let directory_error = |source| ProcessRuntimeError::DataDirectory {
            path: modules_directory.clone(),
            source,
        };
        tokio::fs::create_dir_all(&modules_directory)
            .await
            .map_err(directory_error)?;
        let runtime = ProcessRuntime {
            shared: Arc::new(Shared {
                config,
                identities,
                modules: Mutex::new(BTreeMap::new()),
                exits: broadcast::channel(EXIT_QUEUE_LENGTH).0,
                boot_id: boot_id(),
            }),
        };
        let mut entries = tokio::fs::read_dir(&modules_directory)
            .await
            .map_err(directory_error)?;
        while let Some(entry) = entries.next_entry().await.map_err(directory_error)? {
            let directory = entry.path();
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|text| ModuleName::new(text).ok())
            else {
                continue;
            };
            let record = match read_record(&directory.join("module.json")) {
                Ok(Some(record)) if record.name == name.as_str() => record,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(
                        message = "Skipping an unreadable module record.",
                        module = %name,
                        %error
                    );
                    continue;
                }
            };
            let slot = runtime.new_slot(name.clone(), record);
            runtime.settle_recorded_run(&slot).await;
            runtime.lock_modules().insert(name, slot);
        }
        Ok(runtime)
    }

    /// Every exit from now on, in order. The channel is bounded: a receiver that falls more than
    /// 256 exits behind gets `RecvError::Lagged` and should `list` the modules to catch up.
    pub fn subscribe_exits(&self) -> broadcast::Receiver<ModuleExit> {
        self.shared.exits.subscribe()
    }

    /// How the module's last process ended, with the cause, which `ModuleState::Exited` lacks.
    pub fn last_exit(&self, name: &ModuleName) -> Option<ModuleExit> {
        let slot = self.slot(name).ok()?;
        let state = lock(&slot.state);
        state
            .record
            .last_exit
            .as_ref()
            .map(|exit| exit_from_record(name, exit))
    }

    /// Waits until the module's current process has ended and returns how; `None` at once if
    /// the module does not exist or is not running.
    pub async fn wait_for_exit(&self, name: &ModuleName) -> Option<ModuleExit> {
        let slot = self.slot(name).ok()?;
        let mut exited = lock(&slot.state).run.as_ref()?.exited.clone();
        exited.wait_for(Option::is_some).await.ok()?.clone()
    }

    /// The module whose process group contains `pid`, for the workload API's caller check.
    /// Reads `/proc/<pid>/stat`; a process that left its module's group is not recognised.
    pub fn module_of_process(&self, pid: u32) -> Option<ModuleName> {
        let stat = read_stat(pid)?;
        if stat.is_zombie() {
            return None;
        }
        let process_group = u32::try_from(stat.process_group).ok()?;
        let modules = self.lock_modules();
        modules.values().find_map(|slot| {
            let state = lock(&slot.state);
            let run = state.run.as_ref()?;
            (run.pid == process_group && run.exited.borrow().is_none()).then(|| slot.name.clone())
        })
    }

    /// Stops every running module (SIGTERM, SIGKILL after `grace_period`) and records
    /// [`ExitCause::RuntimeShutdown`], for a clean runtime exit or host shutdown.
    pub async fn shutdown(&self, grace_period: Duration) {
        let slots: Vec<Arc<ModuleSlot>> = self.lock_modules().values().cloned().collect();
        let mut stops = tokio::task::JoinSet::new();
        for slot in slots {
            stops.spawn(async move {
                let _operation = slot.operation.lock().await;
                if let Err(error) =
                    stop_process(&slot, grace_period, ExitCause::RuntimeShutdown).await
                {
                    tracing::warn!(
                        message = "A module did not stop at shutdown.",
                        module = %slot.name,
                        %error
                    );
                }
            });
        }
        while stops.join_next().await.is_some() {}
    }

    fn lock_modules(&self) -> MutexGuard<'_, BTreeMap<ModuleName, Arc<ModuleSlot>>> {
        lock(&self.shared.modules)
    }

    fn slot(&self, name: &ModuleName) -> Result<Arc<ModuleSlot>, RuntimeError> {
        self.lock_modules()
            .get(name)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(name.clone()))
    }

    fn new_slot(&self, name: ModuleName, record: ModuleRecord) -> Arc<ModuleSlot> {
        let directory = self
            .shared
            .config
            .data_dir
            .join("modules")
            .join(name.as_str());
        Arc::new(ModuleSlot {
            log: Arc::new(ModuleLog::new(
                directory.join("logs"),
                self.shared.config.log_limits,
            )),
            name,
            directory,
            operation: tokio::sync::Mutex::new(()),
            persisting: tokio::sync::Mutex::new(()),
            state: Mutex::new(SlotState { record, run: None }),
        })
    }

    /// Handles a run recorded by an earlier runtime instance: stops the process if it still
    /// lives, and records the exit as [`ExitCause::RuntimeLost`].
    async fn settle_recorded_run(&self, slot: &ModuleSlot) {
        let Some(run) = lock(&slot.state).record.run.clone() else {
            return;
        };
        let fate = recorded_run_fate(
            run.start_ticks,
            run.boot_id.as_deref(),
            read_stat(run.pid),
            self.shared.boot_id.as_deref(),
        );
        let exit_code = match fate {
            RecordedRunFate::Gone => -1,
            RecordedRunFate::StillRunning => {
                tracing::info!(
                    message = "Stopping a module process left by an earlier runtime.",
                    module = %slot.name,
                    pid = run.pid
                );
                self.stop_orphan(&run).await
            }
        };
        let exit = ExitRecord {
            exit_code,
            finished_at: format_time(chrono::Utc::now()),
            cause: ExitCause::RuntimeLost,
        };
        {
            let mut state = lock(&slot.state);
            state.record.run = None;
            state.record.last_exit = Some(exit);
        }
        persist(slot).await;
    }

    /// SIGTERM to the orphan's group, SIGKILL after the grace period; returns the exit code to
    /// report (143 or 137).
    async fn stop_orphan(&self, run: &RunRecord) -> i64 {
        let still_there = || {
            recorded_run_fate(
                run.start_ticks,
                run.boot_id.as_deref(),
                read_stat(run.pid),
                self.shared.boot_id.as_deref(),
            ) == RecordedRunFate::StillRunning
        };
        signal_group(run.pid, Signal::TERM);
        if poll_until_gone(&still_there, self.shared.config.stop_grace_period).await {
            return 143;
        }
        signal_group(run.pid, Signal::KILL);
        poll_until_gone(&still_there, KILL_TIMEOUT).await;
        137
    }

    async fn start_locked(&self, slot: &Arc<ModuleSlot>) -> Result<(), RuntimeError> {
        let failed = |message: String| RuntimeError::Failed {
            operation: RuntimeOperation::Start,
            module: slot.name.to_string(),
            message,
        };
        let launch = {
            let state = lock(&slot.state);
            if state.run.is_some() {
                return Ok(());
            }
            state.record.launch.clone()
        };
        let identity = self
            .shared
            .identities
            .launch_identity(&slot.name)
            .await
            .map_err(|message| failed(format!("no module identity: {message}")))?;
        let module_env: BTreeMap<EnvVarName, String> = launch
            .env
            .iter()
            .filter_map(|(name, value)| Some((EnvVarName::new(name).ok()?, value.clone())))
            .collect();
        let mut environment = module_environment(
            &self.shared.config.edge,
            &slot.name,
            &identity,
            &self.shared.config.base_environment,
            &module_env,
        );
        let run_as = match &launch.user {
            None => None,
            Some(user) => Some(run_as_user(user).await.map_err(failed)?),
        };
        if let Some(run_as) = &run_as {
            if let Some(home) = &run_as.home {
                environment.insert("HOME".to_owned(), home.clone());
            }
            if let Some(name) = &run_as.name {
                environment.insert("USER".to_owned(), name.clone());
                environment.insert("LOGNAME".to_owned(), name.clone());
            }
        }
        let working_dir = match &launch.working_dir {
            Some(directory) => PathBuf::from(directory),
            None => {
                let directory = slot.directory.join("work");
                tokio::fs::create_dir_all(&directory)
                    .await
                    .map_err(|error| {
                        failed(format!("cannot create {}: {error}", directory.display()))
                    })?;
                if let Some(run_as) = &run_as {
                    std::os::unix::fs::chown(&directory, Some(run_as.uid), Some(run_as.gid))
                        .map_err(|error| {
                            failed(format!("cannot hand {} over: {error}", directory.display()))
                        })?;
                }
                directory
            }
        };

        let mut command = tokio::process::Command::new(&launch.path);
        command
            .args(&launch.args)
            .env_clear()
            .envs(&environment)
            .current_dir(&working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(run_as) = &run_as {
            command.uid(run_as.uid).gid(run_as.gid);
        }
        slot.log
            .begin_run()
            .await
            .map_err(|error| failed(format!("cannot open the log directory: {error}")))?;
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                slot.log.end_run().await;
                return Err(failed(format!("cannot run {}: {error}", launch.path)));
            }
        };
        let started_at = chrono::Utc::now();
        let Some(pid) = child.id() else {
            slot.log.end_run().await;
            return Err(failed("the process vanished at once".to_owned()));
        };
        // The child is not reaped before `wait`, so its stat is readable even if it has
        // already exited.
        let start_ticks = read_stat(pid).map_or(0, |stat| stat.start_ticks);
        let stdout_pump = child.stdout.take().map(|stdout| {
            tokio::spawn(pump_output(stdout, OutputStream::Stdout, slot.log.clone()))
        });
        let stderr_pump = child.stderr.take().map(|stderr| {
            tokio::spawn(pump_output(stderr, OutputStream::Stderr, slot.log.clone()))
        });
        let (exit_sender, exit_receiver) = watch::channel(None);
        {
            let mut state = lock(&slot.state);
            state.record.run = Some(RunRecord {
                pid,
                start_ticks,
                boot_id: self.shared.boot_id.clone(),
                started_at: format_time(started_at),
            });
            state.run = Some(LiveRun {
                pid,
                started_at,
                exited: exit_receiver,
                stop_cause: None,
            });
        }
        persist(slot).await;
        let watched_slot = Arc::clone(slot);
        let exits = self.shared.exits.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            // The group's other processes go with its leader, as a container's do with PID 1.
            // The leader is reaped by now; its pid cannot be reused while any member of its
            // group lives, and a new process would only be hit if it reused the pid *and*
            // made itself a group leader in the moment since the group emptied.
            signal_group(pid, Signal::KILL);
            for pump in [stdout_pump, stderr_pump].into_iter().flatten() {
                let _ = tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, pump).await;
            }
            let exit_code = match status {
                Ok(status) => status
                    .code()
                    .map(i64::from)
                    .or_else(|| status.signal().map(|signal| 128 + i64::from(signal)))
                    .unwrap_or(-1),
                Err(_) => -1,
            };
            let finished_at = chrono::Utc::now();
            let exit = {
                let mut state = lock(&watched_slot.state);
                let cause = state
                    .run
                    .take()
                    .and_then(|run| run.stop_cause)
                    .unwrap_or(ExitCause::Exited);
                let exit = ModuleExit {
                    name: watched_slot.name.clone(),
                    exit_code,
                    finished_at,
                    cause,
                };
                state.record.run = None;
                state.record.last_exit = Some(ExitRecord {
                    exit_code,
                    finished_at: format_time(finished_at),
                    cause,
                });
                exit
            };
            watched_slot.log.end_run().await;
            persist(&watched_slot).await;
            let _ = exits.send(exit.clone());
            let _ = exit_sender.send(Some(exit));
        });
        Ok(())
    }
}

impl<I: ModuleIdentities> ModuleRuntime for ProcessRuntime<I> {
    type Logs = ModuleLogs;

    async fn create(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        let record = new_record(spec, RuntimeOperation::Create)?;
        let slot = {
            let mut modules = self.lock_modules();
            if modules.contains_key(&spec.name) {
                return Err(RuntimeError::AlreadyExists(spec.name.clone()));
            }
            let slot = self.new_slot(spec.name.clone(), record);
            modules.insert(spec.name.clone(), Arc::clone(&slot));
            slot
        };
        let _operation = slot.operation.lock().await;
        if let Err(error) = tokio::fs::create_dir_all(&slot.directory).await {
            self.lock_modules().remove(&spec.name);
            return Err(RuntimeError::Failed {
                operation: RuntimeOperation::Create,
                module: spec.name.to_string(),
                message: format!("cannot create {}: {error}", slot.directory.display()),
            });
        }
        persist(&slot).await;
        Ok(())
    }

    async fn update(&self, spec: &ModuleSpec) -> Result<(), RuntimeError> {
        let record = new_record(spec, RuntimeOperation::Update)?;
        let slot = self.slot(&spec.name)?;
        let _operation = slot.operation.lock().await;
        stop_process(
            &slot,
            self.shared.config.stop_grace_period,
            ExitCause::StopRequested,
        )
        .await?;
        lock(&slot.state).record = record;
        persist(&slot).await;
        Ok(())
    }

    async fn start(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        let slot = self.slot(name)?;
        let _operation = slot.operation.lock().await;
        self.start_locked(&slot).await
    }

    async fn stop(&self, name: &ModuleName, grace_period: Duration) -> Result<(), RuntimeError> {
        let slot = self.slot(name)?;
        let _operation = slot.operation.lock().await;
        stop_process(&slot, grace_period, ExitCause::StopRequested).await
    }

    async fn restart(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        let slot = self.slot(name)?;
        let _operation = slot.operation.lock().await;
        stop_process(
            &slot,
            self.shared.config.stop_grace_period,
            ExitCause::StopRequested,
        )
        .await
        .map_err(|error| with_operation(error, RuntimeOperation::Restart))?;
        self.start_locked(&slot)
            .await
            .map_err(|error| with_operation(error, RuntimeOperation::Restart))
    }

    async fn remove(&self, name: &ModuleName) -> Result<(), RuntimeError> {
        let slot = self.slot(name)?;
        let _operation = slot.operation.lock().await;
        if lock(&slot.state).run.is_some() {
            return Err(RuntimeError::Failed {
                operation: RuntimeOperation::Remove,
                module: name.to_string(),
                message: "the module is running; stop it first".to_owned(),
            });
        }
        self.lock_modules().remove(name);
        let _persisting = slot.persisting.lock().await;
        match tokio::fs::remove_dir_all(&slot.directory).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(RuntimeError::Failed {
                operation: RuntimeOperation::Remove,
                module: name.to_string(),
                message: format!("cannot delete {}: {error}", slot.directory.display()),
            }),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<ModuleDetails>, RuntimeError> {
        let slots: Vec<Arc<ModuleSlot>> = self.lock_modules().values().cloned().collect();
        Ok(slots.iter().map(|slot| details(slot)).collect())
    }

    async fn inspect(&self, name: &ModuleName) -> Result<ModuleDetails, RuntimeError> {
        let slot = self.slot(name)?;
        Ok(details(&slot))
    }

    async fn logs(
        &self,
        name: &ModuleName,
        options: &LogOptions,
    ) -> Result<ModuleLogs, RuntimeError> {
        let slot = self.slot(name)?;
        slot.log
            .open_reader(options)
            .await
            .map_err(|error| RuntimeError::Failed {
                operation: RuntimeOperation::Logs,
                module: name.to_string(),
                message: error.to_string(),
            })
    }
}

/// Stops the module's process if it runs: SIGTERM to its group, SIGKILL after `grace_period`,
/// and waits until the watcher has recorded the exit. The caller holds the operation lock.
async fn stop_process(
    slot: &ModuleSlot,
    grace_period: Duration,
    cause: ExitCause,
) -> Result<(), RuntimeError> {
    let (pid, mut exited) = {
        let mut state = lock(&slot.state);
        let Some(run) = state.run.as_mut() else {
            return Ok(());
        };
        run.stop_cause = Some(cause);
        (run.pid, run.exited.clone())
    };
    let failed = |message: &str| RuntimeError::Failed {
        operation: RuntimeOperation::Stop,
        module: slot.name.to_string(),
        message: message.to_owned(),
    };
    if exited.borrow().is_some() {
        return Ok(());
    }
    signal_group(pid, Signal::TERM);
    let polite = tokio::time::timeout(grace_period, exited.wait_for(Option::is_some))
        .await
        .map(|result| result.is_ok());
    match polite {
        Ok(true) => return Ok(()),
        Ok(false) => return Err(failed("the process watcher ended unexpectedly")),
        Err(_) => {}
    }
    signal_group(pid, Signal::KILL);
    let forced = tokio::time::timeout(KILL_TIMEOUT, exited.wait_for(Option::is_some))
        .await
        .map(|result| result.is_ok());
    match forced {
        Ok(true) => Ok(()),
        Ok(false) => Err(failed("the process watcher ended unexpectedly")),
        Err(_) => Err(failed("the process did not end after SIGKILL")),
    }
}

/// Sends `signal` to the process group led by `pid`. A group that is already gone is fine.
fn signal_group(pid: u32, signal: Signal) {
    let Some(group) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(error) = rustix::process::kill_process_group(group, signal)
        && error != rustix::io::Errno::SRCH
    {
        tracing::warn!(message = "Cannot signal a module process group.", pid, %error);
    }
}

/// Polls `still_there` until it turns false (true) or `limit` passes (false).
async fn poll_until_gone(still_there: &impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !still_there() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(ORPHAN_POLL_INTERVAL).await;
    }
}

/// Writes the slot's record; failures are logged (the in-memory state stays authoritative for
/// this runtime instance).
async fn persist(slot: &ModuleSlot) {
    let _persisting = slot.persisting.lock().await;
    let record = lock(&slot.state).record.clone();
    if let Err(error) = write_record(&slot.directory.join("module.json"), &record).await {
        tracing::warn!(
            message = "Cannot write a module record.",
            module = %slot.name,
            %error
        );
    }
}

fn new_record(
    spec: &ModuleSpec,
    operation: RuntimeOperation,
) -> Result<ModuleRecord, RuntimeError> {
    let ModuleKind::Process(process) = &spec.kind else {
        return Err(RuntimeError::Failed {
            operation,
            module: spec.name.to_string(),
            message: format!(
                "the process runtime cannot run {} modules",
                spec.type_name()
            ),
        });
    };
    Ok(ModuleRecord {
        format: RECORD_FORMAT,
        name: spec.name.to_string(),
        config_hash: spec.config_hash().to_string(),
        spec: spec.to_wire(),
        launch: LaunchSettings {
            path: process.path.clone(),
            args: process.args.clone(),
            working_dir: process.working_dir.clone(),
            user: process.user.clone(),
            env: spec
                .env
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                .collect(),
        },
        created_at: format_time(chrono::Utc::now()),
        run: None,
        last_exit: None,
    })
}

fn details(slot: &ModuleSlot) -> ModuleDetails {
    let state = lock(&slot.state);
    let (module_state, description) = match (&state.run, &state.record.last_exit) {
        (Some(run), _) => (
            ModuleState::Running {
                started_at: run.started_at,
                health: Health::None,
            },
            format!("running as process {}", run.pid),
        ),
        (None, Some(exit)) => (
            ModuleState::Exited {
                exit_code: exit.exit_code,
                finished_at: parse_time(&exit.finished_at),
            },
            match exit.cause {
                ExitCause::Exited => format!("exited with code {}", exit.exit_code),
                ExitCause::StopRequested => format!("stopped (exit code {})", exit.exit_code),
                ExitCause::RuntimeShutdown => "stopped by the runtime shutting down".to_owned(),
                ExitCause::RuntimeLost => {
                    "ended while no runtime supervised it (runtime restart or host reboot)"
                        .to_owned()
                }
            },
        ),
        (None, None) => (ModuleState::Created, "created, not started yet".to_owned()),
    };
    ModuleDetails {
        name: slot.name.clone(),
        module_type: "process".to_owned(),
        config_hash: ConfigHash::from_hex(&state.record.config_hash),
        state: module_state,
        image: Some(state.record.launch.path.clone()),
        image_hash: None,
        description: Some(description),
    }
}

fn exit_from_record(name: &ModuleName, exit: &ExitRecord) -> ModuleExit {
    ModuleExit {
        name: name.clone(),
        exit_code: exit.exit_code,
        finished_at: parse_time(&exit.finished_at),
        cause: exit.cause,
    }
}

fn with_operation(error: RuntimeError, operation: RuntimeOperation) -> RuntimeError {
    match error {
        RuntimeError::Failed {
            module, message, ..
        } => RuntimeError::Failed {
            operation,
            module,
            message,
        },
        other => other,
    }
}

/// Resolves `settings.user` and checks that this runtime may switch to it.
async fn run_as_user(user: &str) -> Result<RunAs, String> {
    let passwd = match tokio::fs::read_to_string("/etc/passwd").await {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(format!("cannot read /etc/passwd: {error}")),
    };
    let run_as = resolve_user(user, &passwd).map_err(|error| error.to_string())?;
    let own_uid = rustix::process::getuid().as_raw();
    if own_uid != 0 && run_as.uid != own_uid {
        return Err(format!(
            "cannot run as user {user:?}: switching users needs the runtime to run as root"
        ));
    }
    Ok(run_as)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; if one ever did, the data is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
