//! Restart policy snapshots (one `check` helper running a timed script of events) and property
//! tests of the back-off: delays within bounds, doubling until reset, a scheduled restart for
//! every failed module whose policy restarts it, and no give-up.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use edge_agent::{BackoffSettings, NextStart, RestartPhase, RestartTracker, StopCause, Timestamp};
use edge_deployment::RestartPolicy;
use expect_test::{Expect, expect};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Event {
    Start,
    Exit(i64),
    Stop(StopCause),
    Unhealthy,
    Healthy,
    RuntimeRestarted,
    Advance,
    NewConfiguration,
    Policy(RestartPolicy),
}

fn base() -> Timestamp {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn at(seconds: i64) -> Timestamp {
    base() + TimeDelta::seconds(seconds)
}

fn relative(time: Timestamp) -> String {
    format!("+{}s", (time - base()).num_seconds())
}

fn apply(tracker: &mut RestartTracker, now: Timestamp, event: Event) {
    match event {
        Event::Start => tracker.started(now),
        Event::Exit(code) => tracker.exited(now, code),
        Event::Stop(cause) => tracker.stopped(now, cause),
        Event::Unhealthy => tracker.unhealthy(now),
        Event::Healthy => tracker.healthy(),
        Event::RuntimeRestarted => tracker.runtime_restarted(now),
        Event::Advance => tracker.advance(now),
        Event::NewConfiguration => tracker.reset_for_new_configuration(tracker.policy()),
        Event::Policy(policy) => tracker.set_policy(policy, now),
    }
}

fn render_phase(phase: RestartPhase) -> String {
    match phase {
        RestartPhase::NotStarted => "not-started".to_owned(),
        RestartPhase::Running { since } => format!("running since {}", relative(since)),
        RestartPhase::Unhealthy {
            restart: Some(restart),
            ..
        } => format!(
            "unhealthy, restart at {} (delay {}s)",
            relative(restart.at),
            restart.delay.as_secs()
        ),
        RestartPhase::Unhealthy { restart: None, .. } => "unhealthy, no restart".to_owned(),
        RestartPhase::Backoff { restart, .. } => format!(
            "backoff, restart at {} (delay {}s)",
            relative(restart.at),
            restart.delay.as_secs()
        ),
        RestartPhase::Held { reason, .. } => format!("held ({reason:?})"),
        RestartPhase::Interrupted { at } => format!("interrupted at {}", relative(at)),
    }
}

fn render_next(next: NextStart) -> String {
    match next {
        NextStart::Now => "now".to_owned(),
        NextStart::At(time) => relative(time),
        NextStart::NotScheduled => "-".to_owned(),
    }
}

/// Runs `script` (seconds since the start, event) on a fresh tracker for `policy` and renders
/// the state after every event.
fn check(policy: RestartPolicy, script: &[(i64, Event)], expect: Expect) {
    let mut tracker = RestartTracker::new(policy, BackoffSettings::AZURE);
    let mut output = String::new();
    for (seconds, event) in script {
        let now = at(*seconds);
        apply(&mut tracker, now, *event);
        let snapshot = tracker.snapshot();
        writeln!(
            output,
            "+{seconds}s {event:?}: {} | restarts={} next={}",
            render_phase(snapshot.phase),
            snapshot.restart_count,
            render_next(tracker.next_start(now)),
        )
        .unwrap();
    }
    expect.assert_eq(&output);
}

#[test]
fn always_backs_off_doubling_to_five_minutes_and_never_gives_up() {
    let mut script = vec![(0, Event::Start)];
    let mut now = 0;
    for delay in [10, 20, 40, 80, 160, 300, 300, 300] {
        now += 1;
        script.push((now, Event::Exit(1)));
        now += delay;
        script.push((now, Event::Start));
    }
    check(
        RestartPolicy::Always,
        &script,
        expect![[r#"
            +0s Start: running since +0s | restarts=0 next=-
            +1s Exit(1): backoff, restart at +11s (delay 10s) | restarts=0 next=+11s
            +11s Start: running since +11s | restarts=1 next=-
            +12s Exit(1): backoff, restart at +32s (delay 20s) | restarts=1 next=+32s
            +32s Start: running since +32s | restarts=2 next=-
            +33s Exit(1): backoff, restart at +73s (delay 40s) | restarts=2 next=+73s
            +73s Start: running since +73s | restarts=3 next=-
            +74s Exit(1): backoff, restart at +154s (delay 80s) | restarts=3 next=+154s
            +154s Start: running since +154s | restarts=4 next=-
            +155s Exit(1): backoff, restart at +315s (delay 160s) | restarts=4 next=+315s
            +315s Start: running since +315s | restarts=5 next=-
            +316s Exit(1): backoff, restart at +616s (delay 300s) | restarts=5 next=+616s
            +616s Start: running since +616s | restarts=6 next=-
            +617s Exit(1): backoff, restart at +917s (delay 300s) | restarts=6 next=+917s
            +917s Start: running since +917s | restarts=7 next=-
            +918s Exit(1): backoff, restart at +1218s (delay 300s) | restarts=7 next=+1218s
            +1218s Start: running since +1218s | restarts=8 next=-
        "#]],
    );
}

#[test]
fn ten_minutes_of_running_forgets_the_streak() {
    check(
        RestartPolicy::OnFailure,
        &[
            (0, Event::Start),
            (5, Event::Exit(2)),
            (15, Event::Start),
            (20, Event::Exit(2)),
            (40, Event::Start),
            (639, Event::Exit(2)),
            (679, Event::Start),
            (1279, Event::Advance),
            (1300, Event::Exit(2)),
        ],
        expect![[r#"
            +0s Start: running since +0s | restarts=0 next=-
            +5s Exit(2): backoff, restart at +15s (delay 10s) | restarts=0 next=+15s
            +15s Start: running since +15s | restarts=1 next=-
            +20s Exit(2): backoff, restart at +40s (delay 20s) | restarts=1 next=+40s
            +40s Start: running since +40s | restarts=2 next=-
            +639s Exit(2): backoff, restart at +679s (delay 40s) | restarts=2 next=+679s
            +679s Start: running since +679s | restarts=3 next=-
            +1279s Advance: running since +679s | restarts=0 next=-
            +1300s Exit(2): backoff, restart at +1310s (delay 10s) | restarts=0 next=+1310s
        "#]],
    );
}

#[test]
fn clean_exits_follow_the_policy() {
    let script = [(0, Event::Start), (5, Event::Exit(0))];
    let mut rendered = String::new();
    for policy in [
        RestartPolicy::Never,
        RestartPolicy::OnFailure,
        RestartPolicy::OnUnhealthy,
        RestartPolicy::Always,
    ] {
        let mut tracker = RestartTracker::new(policy, BackoffSettings::AZURE);
        for (seconds, event) in script {
            apply(&mut tracker, at(seconds), event);
        }
        writeln!(
            rendered,
            "{}: {} next={}",
            policy.as_str(),
            render_phase(tracker.phase()),
            render_next(tracker.next_start(at(5)))
        )
        .unwrap();
        let mut failing = RestartTracker::new(policy, BackoffSettings::AZURE);
        failing.started(at(0));
        failing.exited(at(5), 137);
        writeln!(
            rendered,
            "{} after 137: {} next={}",
            policy.as_str(),
            render_phase(failing.phase()),
            render_next(failing.next_start(at(5)))
        )
        .unwrap();
    }
    expect![[r#"
        never: held (CleanExit) next=-
        never after 137: held (FailedWithoutRestart) next=-
        on-failure: held (CleanExit) next=-
        on-failure after 137: backoff, restart at +15s (delay 10s) next=+15s
        on-unhealthy: held (CleanExit) next=-
        on-unhealthy after 137: backoff, restart at +15s (delay 10s) next=+15s
        always: backoff, restart at +15s (delay 10s) next=+15s
        always after 137: backoff, restart at +15s (delay 10s) next=+15s
    "#]]
    .assert_eq(&rendered);
}

#[test]
fn reboots_runtime_restarts_and_operator_stops_are_not_failures() {
    check(
        RestartPolicy::Always,
        &[
            (0, Event::Start),
            (5, Event::Exit(1)),
            (15, Event::Start),
            (20, Event::Stop(StopCause::RuntimeShutdown)),
            (80, Event::Start),
            (90, Event::RuntimeRestarted),
            (91, Event::Start),
            (100, Event::Stop(StopCause::Operator)),
            (200, Event::Start),
            (210, Event::Stop(StopCause::Deployment)),
            (220, Event::NewConfiguration),
            (221, Event::Start),
            (230, Event::Exit(1)),
        ],
        expect![[r#"
            +0s Start: running since +0s | restarts=0 next=-
            +5s Exit(1): backoff, restart at +15s (delay 10s) | restarts=0 next=+15s
            +15s Start: running since +15s | restarts=1 next=-
            +20s Stop(RuntimeShutdown): interrupted at +20s | restarts=1 next=now
            +80s Start: running since +80s | restarts=1 next=-
            +90s RuntimeRestarted: interrupted at +90s | restarts=1 next=now
            +91s Start: running since +91s | restarts=1 next=-
            +100s Stop(Operator): held (OperatorStop) | restarts=1 next=-
            +200s Start: running since +200s | restarts=1 next=-
            +210s Stop(Deployment): held (DeploymentStop) | restarts=1 next=-
            +220s NewConfiguration: not-started | restarts=0 next=now
            +221s Start: running since +221s | restarts=0 next=-
            +230s Exit(1): backoff, restart at +240s (delay 10s) | restarts=0 next=+240s
        "#]],
    );
}

#[test]
fn unhealthy_modules_are_restarted_only_by_policies_that_say_so() {
    check(
        RestartPolicy::OnUnhealthy,
        &[
            (0, Event::Start),
            (30, Event::Unhealthy),
            (35, Event::Healthy),
            (50, Event::Unhealthy),
            (60, Event::Start),
        ],
        expect![[r#"
            +0s Start: running since +0s | restarts=0 next=-
            +30s Unhealthy: unhealthy, restart at +40s (delay 10s) | restarts=0 next=+40s
            +35s Healthy: running since +0s | restarts=0 next=-
            +50s Unhealthy: unhealthy, restart at +60s (delay 10s) | restarts=0 next=+60s
            +60s Start: running since +60s | restarts=1 next=-
        "#]],
    );
    check(
        RestartPolicy::OnFailure,
        &[
            (0, Event::Start),
            (30, Event::Unhealthy),
            (40, Event::Exit(1)),
        ],
        expect![[r#"
            +0s Start: running since +0s | restarts=0 next=-
            +30s Unhealthy: unhealthy, no restart | restarts=0 next=-
            +40s Exit(1): backoff, restart at +50s (delay 10s) | restarts=0 next=+50s
        "#]],
    );
}

#[test]
fn policy_changes_rejudge_a_waiting_module() {
    check(
        RestartPolicy::Never,
        &[
            (0, Event::Start),
            (5, Event::Exit(3)),
            (6, Event::Policy(RestartPolicy::OnFailure)),
            (7, Event::Policy(RestartPolicy::Never)),
        ],
        expect![[r#"
            +0s Start: running since +0s | restarts=0 next=-
            +5s Exit(3): held (FailedWithoutRestart) | restarts=0 next=-
            +6s Policy(OnFailure): backoff, restart at +16s (delay 10s) | restarts=0 next=+16s
            +7s Policy(Never): held (FailedWithoutRestart) | restarts=0 next=-
        "#]],
    );
}

#[test]
fn a_clock_that_jumps_back_makes_the_restart_due_at_once() {
    let mut tracker = RestartTracker::new(RestartPolicy::Always, BackoffSettings::AZURE);
    tracker.started(at(1000));
    tracker.exited(at(1000), 1);
    assert_eq!(tracker.next_start(at(1005)), NextStart::At(at(1010)));
    assert_eq!(tracker.next_start(at(1010)), NextStart::Now);
    assert_eq!(tracker.next_start(at(0)), NextStart::Now);
}

// === Properties ===

fn arbitrary_policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Never),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::OnUnhealthy),
        Just(RestartPolicy::Always),
    ]
}

fn arbitrary_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => Just(Event::Start),
        4 => prop_oneof![Just(0_i64), Just(1), Just(137)].prop_map(Event::Exit),
        1 => prop_oneof![
            Just(StopCause::Operator),
            Just(StopCause::Deployment),
            Just(StopCause::RuntimeShutdown)
        ]
        .prop_map(Event::Stop),
        1 => Just(Event::Unhealthy),
        1 => Just(Event::Healthy),
        1 => Just(Event::RuntimeRestarted),
        1 => Just(Event::Advance),
        1 => Just(Event::NewConfiguration),
    ]
}

/// A deliberately simple model of the streak: how many restarts since it was last forgotten.
#[derive(Debug, Default)]
struct StreakModel {
    restarts: u32,
    running_since: Option<Timestamp>,
    restart_pending: bool,
}

impl StreakModel {
    fn forget_after_long_run(&mut self, now: Timestamp) {
        if let Some(since) = self.running_since
            && now - since >= TimeDelta::seconds(600)
        {
            self.restarts = 0;
        }
    }

    fn expected_delay(&self) -> Duration {
        Duration::from_secs((10_u64 << self.restarts.min(10)).min(300))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn back_off_stays_in_bounds_doubles_until_reset_and_never_abandons_a_failed_module(
        policy in arbitrary_policy(),
        script in prop::collection::vec((0_i64..900, arbitrary_event()), 1..60),
    ) {
        let settings = BackoffSettings::AZURE;
        let mut tracker = RestartTracker::new(policy, settings);
        let mut model = StreakModel::default();
        let mut now = base();
        let mut previous_delay: Option<Duration> = None;
        for (step_seconds, event) in script {
            now += TimeDelta::seconds(step_seconds);
            let phase_before = tracker.phase();
            let was_running = matches!(phase_before, RestartPhase::Running { .. } | RestartPhase::Unhealthy { .. });
            let was_healthy_running = matches!(phase_before, RestartPhase::Running { .. });
            match event {
                Event::Start => {
                    let counted = matches!(phase_before,
                        RestartPhase::Backoff { .. }
                        | RestartPhase::Unhealthy { restart: Some(_), .. }
                        | RestartPhase::Held { reason: edge_agent::HoldReason::CleanExit | edge_agent::HoldReason::FailedWithoutRestart, .. });
                    if counted { model.restarts += 1; }
                    model.running_since = Some(now);
                    model.restart_pending = false;
                }
                Event::Exit(_) | Event::Unhealthy | Event::Stop(_) | Event::Advance => {
                    if was_healthy_running { model.forget_after_long_run(now); }
                    if matches!(event, Event::Exit(_) | Event::Stop(_)) { model.running_since = None; }
                }
                Event::RuntimeRestarted => {
                    if was_healthy_running { model.forget_after_long_run(now); }
                    if was_running { model.running_since = None; }
                }
                Event::NewConfiguration => { model.restarts = 0; model.running_since = None; }
                Event::Healthy | Event::Policy(_) => {}
            }
            let expected_delay = model.expected_delay();
            apply(&mut tracker, now, event);
            let snapshot = tracker.snapshot();
            prop_assert_eq!(snapshot.restart_count, model.restarts);

            let newly_scheduled = match (phase_before, snapshot.phase) {
                (RestartPhase::Backoff { .. }, RestartPhase::Backoff { .. }) => None,
                (RestartPhase::Unhealthy { restart: Some(_), .. }, RestartPhase::Unhealthy { .. }) => None,
                (_, RestartPhase::Backoff { restart, .. })
                | (_, RestartPhase::Unhealthy { restart: Some(restart), .. }) => Some(restart),
                _ => None,
            };
            if let Some(restart) = newly_scheduled {
                // Within bounds, exactly the doubling of the model, and after `now`.
                prop_assert!(restart.delay >= settings.initial_delay && restart.delay <= settings.max_delay);
                prop_assert_eq!(restart.delay, expected_delay);
                prop_assert_eq!(restart.at - now, TimeDelta::from_std(restart.delay).unwrap());
                // Monotone until the streak is forgotten.
                if let Some(previous) = previous_delay && model.restarts > 0 {
                    prop_assert!(restart.delay >= previous);
                }
                previous_delay = Some(restart.delay);
                model.restart_pending = true;
            }
            if model.restarts == 0 { previous_delay = None; }

            // A module that failed under a policy that restarts it always has a restart coming.
            if let (Event::Exit(code), true) = (event, was_running) {
                let restarts_it = match policy {
                    RestartPolicy::Never => false,
                    RestartPolicy::OnFailure | RestartPolicy::OnUnhealthy => code != 0,
                    RestartPolicy::Always => true,
                };
                prop_assert_eq!(restarts_it, matches!(snapshot.phase, RestartPhase::Backoff { .. }));
            }
            if matches!(snapshot.phase, RestartPhase::Backoff { .. }) {
                prop_assert_ne!(tracker.next_start(now), NextStart::NotScheduled);
                prop_assert!(snapshot.next_restart_time.is_some());
            }
            if matches!(snapshot.phase, RestartPhase::Interrupted { .. } | RestartPhase::NotStarted) {
                prop_assert_eq!(tracker.next_start(now), NextStart::Now);
            }
        }
    }

    #[test]
    fn a_crash_looping_module_is_restarted_forever(policy in prop_oneof![
        Just(RestartPolicy::OnFailure), Just(RestartPolicy::OnUnhealthy), Just(RestartPolicy::Always)
    ], crashes in 20_usize..200) {
        let mut tracker = RestartTracker::new(policy, BackoffSettings::AZURE);
        let mut now = base();
        tracker.started(now);
        for _ in 0..crashes {
            now += TimeDelta::seconds(1);
            tracker.exited(now, 1);
            let NextStart::At(restart_at) = tracker.next_start(now) else {
                return Err(TestCaseError::fail("no restart scheduled"));
            };
            prop_assert!(restart_at - now <= TimeDelta::seconds(300));
            now = restart_at;
            prop_assert_eq!(tracker.next_start(now), NextStart::Now);
            tracker.started(now);
        }
        prop_assert_eq!(tracker.restart_count(), u32::try_from(crashes).unwrap());
    }
}
