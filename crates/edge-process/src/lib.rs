//! The process module runtime: native processes supervised as IoT Edge modules.
//!
//! This crate owns running `"type": "process"` modules (our extension to the deployment manifest)
//! on the host, behind the agent's [`edge_agent::ModuleRuntime`] trait. [`ProcessRuntime`] starts
//! each module as a child process in its own process group, with the `IOTEDGE_*` environment an
//! unmodified Azure IoT SDK module needs plus the module's own `env`; captures its stdout and
//! stderr into size-capped rotating log files; watches it and reports every exit (code, time and
//! cause) through a bounded broadcast channel ([`ProcessRuntime::subscribe_exits`]); stops it with
//! SIGTERM to the whole group and SIGKILL after a grace period; and keeps one record per module
//! on disk so that a new runtime instance finds its modules again.
//!
//! # Data directory
//!
//! ```text
//! <data_dir>/modules/<name>/module.json        the record: spec, config hash, launch settings,
//!                                              the running process (pid, start time) and last exit
//! <data_dir>/modules/<name>/logs/output.log    current log file, then output.log.1 … .N (older)
//! <data_dir>/modules/<name>/work/              the working directory when the spec names none
//! ```
//!
//! Every log line is stored as `<RFC 3339 time> <O|E> <bytes>`, so `logs` can filter by time and
//! print timestamps; lines longer than [`MAX_LOG_LINE_BYTES`] are split.
//!
//! # Processes left by a previous runtime instance
//!
//! They are **stopped, not adopted**. A process started by an earlier instance can no longer be
//! waited for (it is not our child) and its stdout and stderr pipes died with that instance, so
//! its next write would fail with `EPIPE`. [`ProcessRuntime::open`] therefore looks at every
//! recorded run: when a process with the recorded pid *and* the recorded start time (field 22 of
//! `/proc/<pid>/stat`) *and* the same boot id is still alive, its group gets SIGTERM, then SIGKILL
//! after the grace period. Either way the module is reported as exited with
//! [`ExitCause::RuntimeLost`], which the agent treats like a runtime shutdown (restart right away,
//! no back-off). Azure's `aziot-edged` likewise stops every module when it starts.
//!
//! # Environment
//!
//! A module does not inherit the runtime's environment (it could hold the device's credentials).
//! It gets [`ProcessRuntimeConfig::base_environment`] (by default only `PATH`), then the
//! module's `env` from the deployment, then the `IOTEDGE_*` variables, which win over both (see
//! [`module_environment`]). The generation id and workload URI come from a [`ModuleIdentities`]
//! implementation, called at every start.
//!
//! # Users
//!
//! `settings.user` may be a user name, a numeric uid, or `uid:gid`. Names and uids are looked up
//! in `/etc/passwd` (a uid without an entry runs with gid = uid). Switching needs the runtime to
//! run as root; otherwise a module that asks for another user than the runtime's own fails to
//! start with a clear message. When switching, supplementary groups are dropped and `HOME`,
//! `USER` and `LOGNAME` are set from the passwd entry; the default working directory is handed to
//! that user (the data directory above it must stay traversable for that user). Records are
//! written with mode 0600, since a module's `env` may carry secrets.
//!
//! # Limits
//!
//! Stopping kills the whole process group, so a module's helpers go with it; a process that
//! leaves the group (`setsid`) escapes supervision. When the group leader exits on its own, the
//! rest of its group is killed too (as a container's processes die with its PID 1).

#![forbid(unsafe_code)]

mod environment;
mod logs;
mod procfs;
mod record;
mod runtime;
mod user;

pub use environment::{
    DEFAULT_WORKLOAD_API_VERSION, EdgeEnvironment, FixedIdentities, LaunchIdentity,
    ModuleIdentities, module_environment,
};
pub use logs::{LogLimits, MAX_LOG_LINE_BYTES, ModuleLogs};
pub use record::ExitCause;
pub use runtime::{
    DEFAULT_BASE_PATH, ModuleExit, ProcessRuntime, ProcessRuntimeConfig, ProcessRuntimeError,
};
pub use user::{RunAs, UserError, resolve_user};

/// A point in time, in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
