//! The edge agent's pure core: planning, restart policies, reported properties and the runtime seam.
//!
//! This crate owns the decisions of the edge agent, with no Docker, processes, HTTP or clocks
//! inside. [`plan`] turns the modules that exist ([`ObservedModule`]) into the desired ones
//! ([`edge_deployment::ModuleSpec`]) as an ordered [`Plan`] of [`Command`]s; start-up is the same
//! diff from nothing. [`RestartTracker`] is the restart-policy state machine of one module, driven
//! by events stamped with explicit times ([`Timestamp`]), with Azure's back-off numbers but
//! without Azure's surprises (see the [`restart`] module). [`build_reported_properties`] writes the
//! `$edgeAgent` reported properties with Azure's field names, and [`reported_patch`] the patch to
//! send. [`ModuleRuntime`] is the async trait the Docker and process runtimes implement;
//! [`Reconciler`] runs one reconcile round against any of them, and [`InMemoryRuntime`] is a test
//! double for it.
//!
//! **Architecture invariant:** nothing here reads the clock or touches the outside world; time
//! is always an argument and I/O happens only behind [`ModuleRuntime`].

#![forbid(unsafe_code)]

pub mod in_memory;
mod plan;
mod reconcile;
mod report;
pub mod restart;
mod runtime;

pub use in_memory::InMemoryRuntime;
pub use plan::{Command, ObservedModule, ObservedState, Plan, plan};
pub use reconcile::{CommandFailure, DEFAULT_STOP_GRACE_PERIOD, ReconcileOutcome, Reconciler};
pub use report::{
    AgentReport, AgentVersion, ModuleReport, PlatformInfo, RuntimeStatus,
    build_reported_properties, format_timestamp, reported_patch,
};
pub use restart::{
    BackoffSettings, HoldReason, NextStart, RestartPhase, RestartSnapshot, RestartTracker,
    ScheduledRestart, StopCause,
};
pub use runtime::{
    Health, LogOptions, ModuleDetails, ModuleRuntime, ModuleState, RuntimeError, RuntimeOperation,
};

/// A point in time, in UTC. Every time in this crate is passed in by the caller.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
