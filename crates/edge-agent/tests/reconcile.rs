//! The reconcile loop against the in-memory runtime: deployments, crashes, back-off, reboots,
//! failures. Each step renders what the runtime was asked to do and the modules' states.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use edge_agent::{
    BackoffSettings, DEFAULT_STOP_GRACE_PERIOD, Health, InMemoryRuntime, LogOptions, ModuleReport,
    ModuleRuntime, Reconciler, RuntimeOperation, Timestamp, format_timestamp,
};
use edge_deployment::{AgentDeployment, ModuleName};
use expect_test::{Expect, expect};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

fn at(seconds: i64) -> Timestamp {
    DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn deployment(modules: Value) -> AgentDeployment {
    AgentDeployment::from_json(
        &json!({
            "schemaVersion": "1.1",
            "runtime": {"type": "process"},
            "systemModules": {
                "edgeAgent": {"type": "process", "settings": {"path": "/usr/bin/outpost"}},
                "edgeHub": {"type": "process", "status": "running", "restartPolicy": "always",
                            "startupOrder": 0, "settings": {"path": "/usr/bin/outpost", "args": ["hub"]}}
            },
            "modules": modules
        })
        .to_string(),
    )
    .unwrap()
}

fn name(text: &str) -> ModuleName {
    ModuleName::new(text).unwrap()
}

struct Harness {
    runtime: InMemoryRuntime,
    reconciler: Reconciler,
    output: String,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            runtime: InMemoryRuntime::new(at(0)),
            reconciler: Reconciler::new(BackoffSettings::AZURE, DEFAULT_STOP_GRACE_PERIOD),
            output: String::new(),
        }
    }

    /// Runs one reconcile round at `seconds` and records the commands, failures and states.
    async fn reconcile(&mut self, seconds: i64, label: &str, deployment: &AgentDeployment) {
        let now = at(seconds);
        self.runtime.set_now(now);
        let outcome = self
            .reconciler
            .reconcile(&self.runtime, deployment.supervised_modules(), now)
            .await
            .unwrap();
        let status = outcome.status();
        writeln!(
            self.output,
            "== +{seconds}s {label}: {} {}",
            status.code,
            status.description.unwrap_or_default()
        )
        .unwrap();
        for operation in self.runtime.take_journal() {
            writeln!(self.output, "  {operation}").unwrap();
        }
        for skipped in &outcome.skipped {
            writeln!(self.output, "  skipped {skipped}").unwrap();
        }
        let listed = self.runtime.list().await.unwrap();
        for details in &listed {
            let report = ModuleReport::new(
                details.name.clone(),
                Some(details),
                self.reconciler.snapshot(&details.name).as_ref(),
            );
            write!(
                self.output,
                "  {}: {} restarts={}",
                details.name,
                report.runtime_status.as_str(),
                report.restart_count
            )
            .unwrap();
            if let Some(next) = report.next_restart_time {
                write!(self.output, " next={}", relative(next)).unwrap();
            }
            writeln!(self.output).unwrap();
        }
        if let Some(wakeup) = self.reconciler.next_wakeup(now) {
            writeln!(self.output, "  wake up at {}", relative(wakeup)).unwrap();
        }
    }
}

fn relative(time: Timestamp) -> String {
    format!("+{}s", (time - at(0)).num_seconds())
}

fn check(output: &str, expect: Expect) {
    expect.assert_eq(output);
}

#[tokio::test]
async fn deploy_crash_back_off_update_and_remove() {
    let mut harness = Harness::new();
    let first = deployment(json!({
        "sensor": {"type": "process", "restartPolicy": "always", "startupOrder": 2,
                   "settings": {"path": "/usr/bin/sensor"}},
        "filter": {"type": "process", "restartPolicy": "on-failure", "startupOrder": 1,
                   "settings": {"path": "/usr/bin/filter"}},
        "spare": {"type": "process", "status": "stopped", "settings": {"path": "/usr/bin/spare"}}
    }));
    harness.reconcile(0, "first deployment", &first).await;
    harness.reconcile(5, "nothing changed", &first).await;

    harness.runtime.set_now(at(10));
    harness.runtime.exit_module(&name("sensor"), 1);
    harness.runtime.exit_module(&name("filter"), 0);
    harness
        .reconcile(11, "sensor crashed, filter exited cleanly", &first)
        .await;
    harness.reconcile(15, "still backing off", &first).await;
    harness.reconcile(20, "back-off over", &first).await;

    let second = deployment(json!({
        "sensor": {"type": "process", "restartPolicy": "always", "startupOrder": 2,
                   "settings": {"path": "/usr/bin/sensor", "args": ["--fast"]}},
        "spare": {"type": "process", "status": "running", "settings": {"path": "/usr/bin/spare"}}
    }));
    harness
        .reconcile(30, "sensor changed, filter removed, spare started", &second)
        .await;
    harness.reconcile(40, "spare stopped again", &first).await;
    harness.reconcile(50, "spare running again", &second).await;

    check(
        &harness.output,
        expect![[r#"
            == +0s first deployment: 200 
              create edgeHub
              start edgeHub
              create filter
              start filter
              create sensor
              start sensor
              create spare
              edgeHub: running restarts=0
              filter: running restarts=0
              sensor: running restarts=0
              spare: stopped restarts=0
            == +5s nothing changed: 200 
              edgeHub: running restarts=0
              filter: running restarts=0
              sensor: running restarts=0
              spare: stopped restarts=0
            == +11s sensor crashed, filter exited cleanly: 200 
              edgeHub: running restarts=0
              filter: stopped restarts=0
              sensor: backoff restarts=0 next=+20s
              spare: stopped restarts=0
              wake up at +20s
            == +15s still backing off: 200 
              edgeHub: running restarts=0
              filter: stopped restarts=0
              sensor: backoff restarts=0 next=+20s
              spare: stopped restarts=0
              wake up at +20s
            == +20s back-off over: 200 
              start sensor
              edgeHub: running restarts=0
              filter: stopped restarts=0
              sensor: running restarts=1
              spare: stopped restarts=0
            == +30s sensor changed, filter removed, spare started: 200 
              remove filter
              update sensor
              start sensor
              start spare
              edgeHub: running restarts=0
              sensor: running restarts=0
              spare: running restarts=0
            == +40s spare stopped again: 200 
              stop spare
              create filter
              start filter
              update sensor
              start sensor
              edgeHub: running restarts=0
              filter: running restarts=0
              sensor: running restarts=0
              spare: stopped restarts=0
            == +50s spare running again: 200 
              stop filter
              remove filter
              update sensor
              start sensor
              start spare
              edgeHub: running restarts=0
              sensor: running restarts=0
              spare: running restarts=0
        "#]],
    );
}

#[tokio::test]
async fn reboot_restarts_everything_without_back_off() {
    let mut harness = Harness::new();
    let deployment = deployment(json!({
        "sensor": {"type": "process", "restartPolicy": "always", "settings": {"path": "/usr/bin/sensor"}},
        "once": {"type": "process", "restartPolicy": "never", "settings": {"path": "/usr/bin/once"}}
    }));
    harness.reconcile(0, "deploy", &deployment).await;
    harness.runtime.set_now(at(100));
    harness.runtime.reboot();

    // A new agent process: no restart state survives, modules are found exited.
    harness.reconciler = Reconciler::new(BackoffSettings::AZURE, DEFAULT_STOP_GRACE_PERIOD);
    harness
        .reconcile(130, "agent back after a reboot", &deployment)
        .await;

    // The same agent process sees the runtime shut modules down and come back.
    harness.runtime.set_now(at(200));
    harness.runtime.reboot();
    harness.reconciler.runtime_restarted(at(200));
    harness
        .reconcile(201, "runtime restarted", &deployment)
        .await;

    check(
        &harness.output,
        expect![[r#"
        == +0s deploy: 200 
          create edgeHub
          start edgeHub
          create once
          start once
          create sensor
          start sensor
          edgeHub: running restarts=0
          once: running restarts=0
          sensor: running restarts=0
        == +130s agent back after a reboot: 200 
          start edgeHub
          start once
          start sensor
          edgeHub: running restarts=0
          once: running restarts=0
          sensor: running restarts=0
        == +201s runtime restarted: 200 
          start edgeHub
          start once
          start sensor
          edgeHub: running restarts=0
          once: running restarts=0
          sensor: running restarts=0
    "#]],
    );
}

#[tokio::test]
async fn failures_are_reported_and_retried_and_unhealthy_modules_restarted() {
    let mut harness = Harness::new();
    let deployment = deployment(json!({
        "sensor": {"type": "process", "restartPolicy": "on-unhealthy", "startupOrder": 1,
                   "settings": {"path": "/usr/bin/sensor"}},
        "late": {"type": "process", "startupOrder": 2, "settings": {"path": "/usr/bin/late"}}
    }));
    harness.runtime.fail_next(
        RuntimeOperation::Create,
        &name("sensor"),
        "image pull timed out",
    );
    harness.reconcile(0, "create fails", &deployment).await;
    harness.reconcile(5, "retried", &deployment).await;

    harness
        .runtime
        .set_health(&name("sensor"), Health::Unhealthy);
    harness.reconcile(10, "sensor unhealthy", &deployment).await;
    harness
        .reconcile(20, "unhealthy restart due", &deployment)
        .await;

    harness.runtime.kill_beyond_repair(&name("late"));
    harness
        .runtime
        .fail_next(RuntimeOperation::Start, &name("late"), "no such file");
    harness
        .reconcile(30, "late is dead and its start fails", &deployment)
        .await;
    harness.reconcile(31, "late started", &deployment).await;

    check(
        &harness.output,
        expect![[r#"
        == +0s create fails: 500 create sensor (order 1, config 5eca798f0a07): create sensor failed: image pull timed out
          create edgeHub
          start edgeHub
          create late
          start late
          skipped start sensor
          edgeHub: running restarts=0
          late: running restarts=0
        == +5s retried: 200 
          create sensor
          start sensor
          edgeHub: running restarts=0
          late: running restarts=0
          sensor: running restarts=0
        == +10s sensor unhealthy: 200 
          edgeHub: running restarts=0
          late: running restarts=0
          sensor: unhealthy restarts=0 next=+20s
          wake up at +20s
        == +20s unhealthy restart due: 200 
          restart sensor
          edgeHub: running restarts=0
          late: running restarts=0
          sensor: running restarts=1
        == +30s late is dead and its start fails: 500 start late: start late failed: no such file
          remove late
          create late
          edgeHub: running restarts=0
          late: stopped restarts=0
          sensor: running restarts=1
          wake up at +30s
        == +31s late started: 200 
          start late
          edgeHub: running restarts=0
          late: running restarts=0
          sensor: running restarts=1
    "#]],
    );
}

#[tokio::test]
async fn operator_stops_are_respected_and_logs_are_tailed() {
    let mut harness = Harness::new();
    let deployment = deployment(json!({
        "sensor": {"type": "process", "restartPolicy": "always", "settings": {"path": "/usr/bin/sensor"}}
    }));
    harness.reconcile(0, "deploy", &deployment).await;
    harness
        .runtime
        .stop(&name("sensor"), DEFAULT_STOP_GRACE_PERIOD)
        .await
        .unwrap();
    harness.runtime.take_journal();
    harness.reconciler.operator_stopped(&name("sensor"), at(3));
    harness
        .reconcile(5, "operator stopped sensor", &deployment)
        .await;
    check(
        &harness.output,
        expect![[r#"
        == +0s deploy: 200 
          create edgeHub
          start edgeHub
          create sensor
          start sensor
          edgeHub: running restarts=0
          sensor: running restarts=0
        == +5s operator stopped sensor: 200 
          edgeHub: running restarts=0
          sensor: stopped restarts=0
    "#]],
    );

    harness
        .runtime
        .write_output(&name("sensor"), b"one\ntwo\nthree\n");
    let mut logs = harness
        .runtime
        .logs(
            &name("sensor"),
            &LogOptions {
                tail: Some(2),
                ..LogOptions::default()
            },
        )
        .await
        .unwrap();
    let mut text = String::new();
    logs.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "two\nthree\n");
    assert_eq!(format_timestamp(at(0)), "2023-11-14T22:13:20.0000000Z");
}
