//! Restart policies as a pure state machine with explicit time.
//!
//! One [`RestartTracker`] follows one module. The caller reports what happened (started, exited
//! with a code, stopped for a reason, health changed) together with the time it happened, and
//! asks [`RestartTracker::next_start`] whether and when the module must be started again.
//!
//! The back-off follows Azure's numbers: the delay before restart number `n` of a failure streak
//! is `initial_delay × 2^n` capped at `max_delay` (10 s, 20 s, 40 s, 80 s, 160 s, then 300 s),
//! and the streak is forgotten once the module has run for `healthy_run_resets_after` (10 min).
//! It deliberately differs from Azure where Azure surprises its users:
//!
//! - Only the module's own exits count. A stop by an operator, by a deployment change, or by the
//!   runtime shutting down (host reboot, runtime restart) is not a failure and never delays the
//!   next start (Azure issues #1334, #3702).
//! - There is no restart limit: a module whose policy restarts it is restarted forever, every
//!   `max_delay` at worst (Azure gives up after 20 restarts, issues #4390, #7555).
//! - The phase, the restart count and the next restart time are always queryable through
//!   [`RestartTracker::snapshot`].
//! - A clean exit (code 0) under `on-failure`/`on-unhealthy` stays stopped (Azure restarts it at
//!   the next reconcile without back-off).

use std::time::Duration;

use chrono::TimeDelta;
use edge_deployment::RestartPolicy;

use crate::Timestamp;

/// The back-off numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    /// The delay before the first restart of a failure streak.
    pub initial_delay: Duration,
    /// The longest delay; the doubling stops here.
    pub max_delay: Duration,
    /// A module that has run this long has its failure streak forgotten.
    pub healthy_run_resets_after: Duration,
}

impl BackoffSettings {
    /// Azure's defaults: `CoolOffTimeUnitInSeconds` 10, the 300 s cap and
    /// `IntensiveCareTimeInMinutes` 10.
    pub const AZURE: BackoffSettings = BackoffSettings {
        initial_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(300),
        healthy_run_resets_after: Duration::from_secs(600),
    };

    /// The delay before restarting a module that has already been restarted `restart_count`
    /// times in the current streak: `initial_delay × 2^restart_count`, at most `max_delay`.
    pub fn delay_for(&self, restart_count: u32) -> Duration {
        let factor = 1_u32.checked_shl(restart_count.min(31)).unwrap_or(u32::MAX);
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

impl Default for BackoffSettings {
    fn default() -> BackoffSettings {
        BackoffSettings::AZURE
    }
}

/// Why a module was stopped by someone other than itself. None of these count as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopCause {
    /// An operator stopped it (CLI, management API). It stays stopped until started again or
    /// until a deployment recreates it.
    Operator,
    /// The agent stopped it because the deployment asks for `status: stopped`, or to update or
    /// remove it.
    Deployment,
    /// The runtime stopped it while shutting down (runtime restart, clean host reboot). It is
    /// started again as soon as the runtime is back, without back-off.
    RuntimeShutdown,
}

/// Why a module that is not running stays that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldReason {
    /// It exited with code 0 and its policy does not restart clean exits.
    CleanExit,
    /// It exited with a non-zero code and its policy is `never`.
    FailedWithoutRestart,
    /// An operator stopped it.
    OperatorStop,
    /// The deployment stopped it.
    DeploymentStop,
}

/// Where a module is in its life, as far as restarts are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPhase {
    /// Created (or reset by a new deployment) and waiting for its first start.
    NotStarted,
    /// Running (and not reported unhealthy) since `since`.
    Running { since: Timestamp },
    /// Running since `since` but reported unhealthy since `unhealthy_since`. When its policy
    /// restarts unhealthy modules, `restart_at` is when it will be restarted and `delay` the
    /// back-off that chose that time.
    Unhealthy {
        since: Timestamp,
        unhealthy_since: Timestamp,
        restart: Option<ScheduledRestart>,
    },
    /// It failed and will be started again at `restart.at`.
    Backoff {
        exited_at: Timestamp,
        restart: ScheduledRestart,
    },
    /// It is not running and its policy does not start it again.
    Held {
        since: Timestamp,
        reason: HoldReason,
    },
    /// The runtime stopped it while shutting down; it is started again right away.
    Interrupted { at: Timestamp },
}

/// A restart chosen by the back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledRestart {
    pub at: Timestamp,
    pub delay: Duration,
}

/// What [`RestartTracker::next_start`] advises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStart {
    /// Start the module now (restart it, if it is running but unhealthy).
    Now,
    /// Start it at this time, not before.
    At(Timestamp),
    /// Nothing to do: it is running, or it is held.
    NotScheduled,
}

/// Everything a report or a listing shows about a module's restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSnapshot {
    pub policy: RestartPolicy,
    pub phase: RestartPhase,
    /// Restarts in the current failure streak (Azure's `restartCount`); forgotten after a
    /// healthy run of `healthy_run_resets_after`.
    pub restart_count: u32,
    pub last_start_time: Option<Timestamp>,
    pub last_exit_time: Option<Timestamp>,
    pub last_restart_time: Option<Timestamp>,
    pub last_exit_code: Option<i64>,
    /// When a restart is scheduled (back-off, or an unhealthy module).
    pub next_restart_time: Option<Timestamp>,
    /// The back-off delay that chose `next_restart_time`.
    pub backoff_delay: Option<Duration>,
}

/// The restart state machine of one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartTracker {
    policy: RestartPolicy,
    settings: BackoffSettings,
    phase: RestartPhase,
    restart_count: u32,
    last_start_time: Option<Timestamp>,
    last_exit_time: Option<Timestamp>,
    last_restart_time: Option<Timestamp>,
    last_exit_code: Option<i64>,
}

impl RestartTracker {
    /// A tracker for a module that has just been created and not started yet.
    pub fn new(policy: RestartPolicy, settings: BackoffSettings) -> RestartTracker {
        RestartTracker {
            policy,
            settings,
            phase: RestartPhase::NotStarted,
            restart_count: 0,
            last_start_time: None,
            last_exit_time: None,
            last_restart_time: None,
            last_exit_code: None,
        }
    }

    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    pub fn phase(&self) -> RestartPhase {
        self.phase
    }

    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    /// The module was started at `now`. Starting it out of back-off, out of an unhealthy
    /// restart or out of a policy-driven exit counts as a restart.
    pub fn started(&mut self, now: Timestamp) {
        let is_restart = matches!(
            self.phase,
            RestartPhase::Backoff { .. }
                | RestartPhase::Unhealthy {
                    restart: Some(_),
                    ..
                }
                | RestartPhase::Held {
                    reason: HoldReason::CleanExit | HoldReason::FailedWithoutRestart,
                    ..
                }
        );
        if is_restart {
            self.restart_count = self.restart_count.saturating_add(1);
            self.last_restart_time = Some(now);
        }
        self.last_start_time = Some(now);
        self.phase = RestartPhase::Running { since: now };
    }

    /// The runtime reports the module running since `started_at` although this tracker did not
    /// see it start (it was started outside the agent, or the agent itself restarted). It is
    /// taken as running without counting a restart.
    pub fn observed_running(&mut self, started_at: Timestamp) {
        if !self.is_running() {
            self.last_start_time = Some(started_at);
            self.phase = RestartPhase::Running { since: started_at };
        }
    }

    /// An agent that has just started found the module exited at `finished_at` with
    /// `exit_code`, without having watched it exit. Most likely the shutdown the agent is
    /// recovering from stopped it, so it is started again at once and nothing is counted.
    pub fn found_exited_after_runtime_restart(&mut self, finished_at: Timestamp, exit_code: i64) {
        self.last_exit_time = Some(finished_at);
        self.last_exit_code = Some(exit_code);
        self.phase = RestartPhase::Interrupted { at: finished_at };
    }

    /// The module exited on its own at `now` with `exit_code`. The policy decides: `never`
    /// holds it, `on-failure`/`on-unhealthy` schedule a restart for a non-zero code, `always`
    /// schedules one for any code.
    pub fn exited(&mut self, now: Timestamp, exit_code: i64) {
        self.forget_streak_after_healthy_run(now);
        self.last_exit_time = Some(now);
        self.last_exit_code = Some(exit_code);
        self.phase = self.phase_after_exit(now, exit_code);
    }

    /// The module was stopped at `now` by someone else; this is never counted as a failure.
    pub fn stopped(&mut self, now: Timestamp, cause: StopCause) {
        self.forget_streak_after_healthy_run(now);
        if self.is_running() {
            self.last_exit_time = Some(now);
        }
        self.phase = match cause {
            StopCause::Operator => RestartPhase::Held {
                since: now,
                reason: HoldReason::OperatorStop,
            },
            StopCause::Deployment => RestartPhase::Held {
                since: now,
                reason: HoldReason::DeploymentStop,
            },
            StopCause::RuntimeShutdown => RestartPhase::Interrupted { at: now },
        };
    }

    /// The runtime came back after a restart of its own (or of the host) and found the module
    /// not running at `now`: whatever stopped it was the shutdown, not the module. A module
    /// that was running, or waiting for its first start, is started again without back-off; a
    /// back-off or a hold in progress is kept.
    pub fn runtime_restarted(&mut self, now: Timestamp) {
        self.forget_streak_after_healthy_run(now);
        if self.is_running() {
            self.last_exit_time = Some(now);
            self.phase = RestartPhase::Interrupted { at: now };
        }
    }

    /// The deployment wants the module stopped and it is not running: whatever restart was
    /// pending is dropped and the module is held until the deployment wants it running again.
    pub fn hold_for_deployment(&mut self, now: Timestamp) {
        let already_held = matches!(
            self.phase,
            RestartPhase::Held {
                reason: HoldReason::DeploymentStop,
                ..
            }
        );
        if !self.is_running() && !already_held {
            self.phase = RestartPhase::Held {
                since: now,
                reason: HoldReason::DeploymentStop,
            };
        }
    }

    /// The deployment wants the module running again after holding it stopped: it is started
    /// at once, without back-off.
    pub fn release_deployment_hold(&mut self) {
        if let RestartPhase::Held {
            reason: HoldReason::DeploymentStop,
            ..
        } = self.phase
        {
            self.phase = RestartPhase::NotStarted;
        }
    }

    /// The module's health check reports unhealthy at `now`. Under `on-unhealthy` and `always`
    /// a restart is scheduled with the back-off; otherwise it is only recorded.
    pub fn unhealthy(&mut self, now: Timestamp) {
        self.forget_streak_after_healthy_run(now);
        if let RestartPhase::Running { since } = self.phase {
            let restart = matches!(
                self.policy,
                RestartPolicy::OnUnhealthy | RestartPolicy::Always
            )
            .then(|| self.schedule(now));
            self.phase = RestartPhase::Unhealthy {
                since,
                unhealthy_since: now,
                restart,
            };
        }
    }

    /// The module's health check reports healthy again; a pending unhealthy restart is dropped.
    pub fn healthy(&mut self) {
        if let RestartPhase::Unhealthy { since, .. } = self.phase {
            self.phase = RestartPhase::Running { since };
        }
    }

    /// Lets time pass: a module that has been running for `healthy_run_resets_after` has its
    /// failure streak forgotten.
    pub fn advance(&mut self, now: Timestamp) {
        self.forget_streak_after_healthy_run(now);
    }

    /// The module was recreated for a new configuration (or the deployment changed it): the
    /// failure streak is forgotten and it waits for its first start. Times are kept for reports.
    pub fn reset_for_new_configuration(&mut self, policy: RestartPolicy) {
        self.policy = policy;
        self.restart_count = 0;
        self.phase = RestartPhase::NotStarted;
    }

    /// The deployment changed the policy without recreating the module. A module waiting after
    /// an exit is judged again under the new policy, from `now`.
    pub fn set_policy(&mut self, policy: RestartPolicy, now: Timestamp) {
        if policy == self.policy {
            return;
        }
        self.policy = policy;
        let waiting_after_exit = matches!(
            self.phase,
            RestartPhase::Backoff { .. }
                | RestartPhase::Held {
                    reason: HoldReason::CleanExit | HoldReason::FailedWithoutRestart,
                    ..
                }
        );
        if let (true, Some(exit_code)) = (waiting_after_exit, self.last_exit_code) {
            self.phase = self.phase_after_exit(now, exit_code);
        }
    }

    /// Whether and when the module should be started (or, if unhealthy, restarted).
    ///
    /// A scheduled time further ahead than its own delay means the wall clock went backwards;
    /// the restart is then due at once, as in Azure.
    pub fn next_start(&self, now: Timestamp) -> NextStart {
        let due = |restart: ScheduledRestart| {
            let too_far_ahead = restart.at - now > to_time_delta(restart.delay);
            if now >= restart.at || too_far_ahead {
                NextStart::Now
            } else {
                NextStart::At(restart.at)
            }
        };
        match self.phase {
            RestartPhase::NotStarted | RestartPhase::Interrupted { .. } => NextStart::Now,
            RestartPhase::Backoff { restart, .. } => due(restart),
            RestartPhase::Unhealthy {
                restart: Some(restart),
                ..
            } => due(restart),
            RestartPhase::Running { .. }
            | RestartPhase::Unhealthy { restart: None, .. }
            | RestartPhase::Held { .. } => NextStart::NotScheduled,
        }
    }

    /// The state to report and list.
    pub fn snapshot(&self) -> RestartSnapshot {
        let scheduled = match self.phase {
            RestartPhase::Backoff { restart, .. }
            | RestartPhase::Unhealthy {
                restart: Some(restart),
                ..
            } => Some(restart),
            _ => None,
        };
        RestartSnapshot {
            policy: self.policy,
            phase: self.phase,
            restart_count: self.restart_count,
            last_start_time: self.last_start_time,
            last_exit_time: self.last_exit_time,
            last_restart_time: self.last_restart_time,
            last_exit_code: self.last_exit_code,
            next_restart_time: scheduled.map(|restart| restart.at),
            backoff_delay: scheduled.map(|restart| restart.delay),
        }
    }

    fn is_running(&self) -> bool {
        matches!(
            self.phase,
            RestartPhase::Running { .. } | RestartPhase::Unhealthy { .. }
        )
    }

    fn phase_after_exit(&self, now: Timestamp, exit_code: i64) -> RestartPhase {
        let restarts = match self.policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure | RestartPolicy::OnUnhealthy => exit_code != 0,
            RestartPolicy::Always => true,
        };
        if restarts {
            RestartPhase::Backoff {
                exited_at: now,
                restart: self.schedule(now),
            }
        } else {
            RestartPhase::Held {
                since: now,
                reason: if exit_code == 0 {
                    HoldReason::CleanExit
                } else {
                    HoldReason::FailedWithoutRestart
                },
            }
        }
    }

    fn schedule(&self, now: Timestamp) -> ScheduledRestart {
        let delay = self.settings.delay_for(self.restart_count);
        ScheduledRestart {
            at: now
                .checked_add_signed(to_time_delta(delay))
                .unwrap_or(Timestamp::MAX_UTC),
            delay,
        }
    }

    fn forget_streak_after_healthy_run(&mut self, now: Timestamp) {
        if let RestartPhase::Running { since } = self.phase
            && now - since >= to_time_delta(self.settings.healthy_run_resets_after)
        {
            self.restart_count = 0;
        }
    }
}

/// Converts a delay to chrono's type; delays beyond chrono's range (hundreds of millions of
/// years) saturate.
fn to_time_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}
