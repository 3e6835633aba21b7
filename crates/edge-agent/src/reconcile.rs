//! One reconcile round: observe the runtime, update restart trackers, plan, run the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use edge_deployment::{
    DeploymentStatusCode, DesiredStatus, LastDesiredStatus, ModuleName, ModuleSpec, RestartPolicy,
};

use crate::Timestamp;
use crate::plan::{Command, ObservedModule, ObservedState, Plan, plan};
use crate::restart::{
    BackoffSettings, NextStart, RestartPhase, RestartSnapshot, RestartTracker, StopCause,
};
use crate::runtime::{Health, ModuleDetails, ModuleRuntime, ModuleState, RuntimeError};

/// How long a stopped module gets between the polite request and the kill.
pub const DEFAULT_STOP_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// A command that failed, and the error.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandFailure {
    pub command: Command,
    pub error: RuntimeError,
}

/// What one reconcile round did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileOutcome {
    pub plan: Plan,
    /// Commands that failed. Later commands for the same module were skipped.
    pub failures: Vec<CommandFailure>,
    /// Commands not run because an earlier command for the same module failed.
    pub skipped: Vec<Command>,
}

impl ReconcileOutcome {
    /// 200 when every command succeeded, else 500 with the failures as the description (the
    /// deployment itself was valid; applying it failed).
    pub fn status(&self) -> LastDesiredStatus {
        if self.failures.is_empty() {
            return LastDesiredStatus::ok();
        }
        let description = self
            .failures
            .iter()
            .map(|failure| format!("{}: {}", failure.command, failure.error))
            .collect::<Vec<_>>()
            .join("; ");
        LastDesiredStatus {
            code: DeploymentStatusCode::Failed,
            description: Some(description),
        }
    }
}

/// The reconcile loop's memory between rounds: one restart tracker per module.
#[derive(Debug, Clone)]
pub struct Reconciler {
    settings: BackoffSettings,
    stop_grace_period: Duration,
    trackers: BTreeMap<ModuleName, RestartTracker>,
}

impl Reconciler {
    pub fn new(settings: BackoffSettings, stop_grace_period: Duration) -> Reconciler {
        Reconciler {
            settings,
            stop_grace_period,
            trackers: BTreeMap::new(),
        }
    }

    /// The restart state of a module, for reports and listings.
    pub fn snapshot(&self, name: &ModuleName) -> Option<RestartSnapshot> {
        self.trackers.get(name).map(RestartTracker::snapshot)
    }

    /// Every module's restart state.
    pub fn snapshots(&self) -> impl Iterator<Item = (&ModuleName, RestartSnapshot)> {
        self.trackers
            .iter()
            .map(|(name, tracker)| (name, tracker.snapshot()))
    }

    /// The earliest scheduled restart, so the loop can sleep until then.
    pub fn next_wakeup(&self, now: Timestamp) -> Option<Timestamp> {
        self.trackers
            .values()
            .filter_map(|tracker| match tracker.next_start(now) {
                NextStart::At(at) => Some(at),
                NextStart::Now => Some(now),
                NextStart::NotScheduled => None,
            })
            .min()
    }

    /// The runtime (or the host) restarted: modules found stopped were stopped by the shutdown.
    pub fn runtime_restarted(&mut self, now: Timestamp) {
        for tracker in self.trackers.values_mut() {
            tracker.runtime_restarted(now);
        }
    }

    /// An operator stopped a module outside the agent; it stays stopped until started again.
    pub fn operator_stopped(&mut self, name: &ModuleName, now: Timestamp) {
        if let Some(tracker) = self.trackers.get_mut(name) {
            tracker.stopped(now, StopCause::Operator);
        }
    }

    /// Observes the runtime, plans towards `desired` and runs the plan, all at time `now`.
    ///
    /// Fails only when the runtime cannot list its modules; command failures are in the
    /// outcome, and later commands for the failed module are skipped (the next round retries).
    pub async fn reconcile<'a, R: ModuleRuntime>(
        &mut self,
        runtime: &R,
        desired: impl IntoIterator<Item = &'a ModuleSpec>,
        now: Timestamp,
    ) -> Result<ReconcileOutcome, RuntimeError> {
        let desired: BTreeMap<&ModuleName, &ModuleSpec> =
            desired.into_iter().map(|spec| (&spec.name, spec)).collect();
        let listed = runtime.list().await?;
        let observed = self.observe(&listed, &desired, now);
        let plan = plan(&observed, desired.values().copied());

        let mut failures = Vec::new();
        let mut skipped = Vec::new();
        let mut failed_modules: BTreeSet<ModuleName> = BTreeSet::new();
        for command in &plan.commands {
            let name = command.module_name();
            if failed_modules.contains(name) {
                skipped.push(command.clone());
                continue;
            }
            match self.execute(runtime, command, now).await {
                Ok(()) => {}
                Err(error) => {
                    failed_modules.insert(name.clone());
                    failures.push(CommandFailure {
                        command: command.clone(),
                        error,
                    });
                }
            }
        }
        Ok(ReconcileOutcome {
            plan,
            failures,
            skipped,
        })
    }

    /// Brings the trackers up to date with what the runtime reports and builds the planner's
    /// view. Trackers of modules that neither exist nor are desired are dropped.
    fn observe(
        &mut self,
        listed: &[ModuleDetails],
        desired: &BTreeMap<&ModuleName, &ModuleSpec>,
        now: Timestamp,
    ) -> Vec<ObservedModule> {
        let listed_names: BTreeSet<&ModuleName> =
            listed.iter().map(|details| &details.name).collect();
        self.trackers
            .retain(|name, _| listed_names.contains(name) || desired.contains_key(name));

        let mut observed = Vec::with_capacity(listed.len());
        for details in listed {
            let policy = desired
                .get(&details.name)
                .map_or(RestartPolicy::Never, |spec| spec.restart_policy);
            let settings = self.settings;
            let tracker = self
                .trackers
                .entry(details.name.clone())
                .or_insert_with(|| adopt(policy, settings, details.state));
            tracker.set_policy(policy, now);
            let desired_status = desired.get(&details.name).map(|spec| spec.status);
            let state = match details.state {
                ModuleState::Running { started_at, health } => {
                    tracker.observed_running(started_at);
                    if health == Health::Unhealthy {
                        if !matches!(tracker.phase(), RestartPhase::Unhealthy { .. }) {
                            tracker.unhealthy(now);
                        }
                        ObservedState::Unhealthy
                    } else {
                        tracker.healthy();
                        ObservedState::Running
                    }
                }
                ModuleState::Exited {
                    exit_code,
                    finished_at,
                } => {
                    if matches!(
                        tracker.phase(),
                        RestartPhase::Running { .. } | RestartPhase::Unhealthy { .. }
                    ) {
                        tracker.exited(finished_at, exit_code);
                    }
                    ObservedState::NotRunning
                }
                ModuleState::Created => ObservedState::NotRunning,
                ModuleState::Dead | ModuleState::Unknown => ObservedState::Dead,
            };
            tracker.advance(now);
            match desired_status {
                Some(DesiredStatus::Stopped) => tracker.hold_for_deployment(now),
                Some(DesiredStatus::Running) => tracker.release_deployment_hold(),
                None => {}
            }
            observed.push(ObservedModule {
                name: details.name.clone(),
                config_hash: details.config_hash,
                state,
                next_start: tracker.next_start(now),
            });
        }
        observed
    }

    async fn execute<R: ModuleRuntime>(
        &mut self,
        runtime: &R,
        command: &Command,
        now: Timestamp,
    ) -> Result<(), RuntimeError> {
        let settings = self.settings;
        match command {
            Command::Create(spec) => {
                runtime.create(spec).await?;
                let mut tracker = RestartTracker::new(spec.restart_policy, settings);
                if spec.status == DesiredStatus::Stopped {
                    tracker.hold_for_deployment(now);
                }
                self.trackers.insert(spec.name.clone(), tracker);
            }
            Command::Update { spec, .. } => {
                runtime.update(spec).await?;
                let tracker = self
                    .trackers
                    .entry(spec.name.clone())
                    .or_insert_with(|| RestartTracker::new(spec.restart_policy, settings));
                tracker.reset_for_new_configuration(spec.restart_policy);
                if spec.status == DesiredStatus::Stopped {
                    tracker.hold_for_deployment(now);
                }
            }
            Command::Start(name) => {
                runtime.start(name).await?;
                self.tracker_mut(name).started(now);
            }
            Command::Restart(name) => {
                runtime.restart(name).await?;
                self.tracker_mut(name).started(now);
            }
            Command::Stop(name) => {
                runtime.stop(name, self.stop_grace_period).await?;
                self.tracker_mut(name).stopped(now, StopCause::Deployment);
            }
            Command::Remove(name) => {
                runtime.remove(name).await?;
                self.trackers.remove(name);
            }
        }
        Ok(())
    }

    fn tracker_mut(&mut self, name: &ModuleName) -> &mut RestartTracker {
        let settings = self.settings;
        self.trackers
            .entry(name.clone())
            .or_insert_with(|| RestartTracker::new(RestartPolicy::Never, settings))
    }
}

/// A tracker for a module found in the runtime without one (the agent just started). A module
/// found exited was stopped while the agent was away, most likely by the shutdown the agent is
/// recovering from, so it is started again without counting a failure.
fn adopt(policy: RestartPolicy, settings: BackoffSettings, state: ModuleState) -> RestartTracker {
    let mut tracker = RestartTracker::new(policy, settings);
    match state {
        ModuleState::Running { started_at, .. } => tracker.observed_running(started_at),
        ModuleState::Exited {
            exit_code,
            finished_at,
        } => tracker.found_exited_after_runtime_restart(finished_at, exit_code),
        ModuleState::Created | ModuleState::Dead | ModuleState::Unknown => {}
    }
    tracker
}
