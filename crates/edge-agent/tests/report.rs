//! Reported properties snapshots and the patch computation.

use chrono::{DateTime, TimeDelta, Utc};
use edge_agent::{
    AgentReport, AgentVersion, BackoffSettings, Health, ModuleDetails, ModuleReport, ModuleState,
    PlatformInfo, RestartTracker, RuntimeStatus, Timestamp, build_reported_properties,
    format_timestamp, reported_patch,
};
use edge_deployment::{
    AgentDeployment, DeploymentError, DeploymentStatusCode, LastDesiredStatus, ModuleName,
    RestartPolicy,
};
use expect_test::{Expect, expect};
use serde_json::{Value, json};

fn at(seconds: i64) -> Timestamp {
    DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap()
        + TimeDelta::seconds(seconds)
}

fn deployment() -> AgentDeployment {
    AgentDeployment::from_json(
        &json!({
            "schemaVersion": "1.1",
            "runtime": {"type": "docker", "settings": {"minDockerVersion": "v1.25",
                "registryCredentials": {"acr": {"username": "u", "password": "p", "address": "acr.io"}}}},
            "systemModules": {
                "edgeAgent": {"type": "docker", "settings": {"image": "outpost/agent:1"}},
                "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always", "startupOrder": 0,
                            "settings": {"image": "outpost/hub:1", "createOptions": "{\"HostConfig\":{}}"}}
            },
            "modules": {
                "sensor": {"version": "1.0", "type": "docker", "restartPolicy": "always", "startupOrder": 1,
                           "settings": {"image": "sensor:2"}, "env": {"INTERVAL": {"value": "5"}}},
                "filter": {"type": "process", "restartPolicy": "never",
                           "settings": {"path": "/usr/bin/filter", "args": ["-v"]}}
            }
        })
        .to_string(),
    )
    .unwrap()
}

fn details(name: &str, state: ModuleState) -> ModuleDetails {
    ModuleDetails {
        name: ModuleName::new(name).unwrap(),
        module_type: "docker".to_owned(),
        config_hash: None,
        state,
        image: None,
        image_hash: None,
        description: None,
    }
}

fn check(report: &AgentReport<'_>, expect: Expect) {
    let document = build_reported_properties(report);
    expect.assert_eq(&serde_json::to_string_pretty(&document).unwrap());
}

#[test]
fn reported_properties_use_azure_field_names() {
    let deployment = deployment();
    let version = AgentVersion {
        version: "0.1.0".to_owned(),
        build: "42".to_owned(),
        commit: "abc123".to_owned(),
    };
    let platform = PlatformInfo {
        os: "linux".to_owned(),
        architecture: "x86_64".to_owned(),
        version: "0.1.0".to_owned(),
    };
    let edge_agent = ModuleReport::new(
        ModuleName::edge_agent(),
        Some(&details(
            "edgeAgent",
            ModuleState::Running {
                started_at: at(0),
                health: Health::None,
            },
        )),
        None,
    );

    let mut hub_tracker = RestartTracker::new(RestartPolicy::Always, BackoffSettings::AZURE);
    hub_tracker.started(at(1));
    let mut hub_details = details(
        "edgeHub",
        ModuleState::Running {
            started_at: at(1),
            health: Health::Healthy,
        },
    );
    hub_details.image = Some("outpost/hub:1".to_owned());
    hub_details.image_hash = Some("sha256:0123".to_owned());
    let edge_hub = ModuleReport::new(
        ModuleName::edge_hub(),
        Some(&hub_details),
        Some(&hub_tracker.snapshot()),
    );

    let mut sensor_tracker = RestartTracker::new(RestartPolicy::Always, BackoffSettings::AZURE);
    sensor_tracker.started(at(2));
    sensor_tracker.exited(at(3), 1);
    sensor_tracker.started(at(13));
    sensor_tracker.exited(at(20), 139);
    let sensor = ModuleReport::new(
        ModuleName::new("sensor").unwrap(),
        Some(&details(
            "sensor",
            ModuleState::Exited {
                exit_code: 139,
                finished_at: at(20),
            },
        )),
        Some(&sensor_tracker.snapshot()),
    );

    let mut filter_tracker = RestartTracker::new(RestartPolicy::Never, BackoffSettings::AZURE);
    filter_tracker.started(at(2));
    filter_tracker.exited(at(4), 2);
    let filter = ModuleReport::new(
        ModuleName::new("filter").unwrap(),
        Some(&details(
            "filter",
            ModuleState::Exited {
                exit_code: 2,
                finished_at: at(4),
            },
        )),
        Some(&filter_tracker.snapshot()),
    );
    let status = LastDesiredStatus::ok();
    let modules = [filter, sensor];
    check(
        &AgentReport {
            version: &version,
            platform: &platform,
            runtime_kind: edge_deployment::RuntimeKind::Docker,
            last_desired_version: Some(7),
            last_desired_status: &status,
            deployment: Some(&deployment),
            edge_agent: &edge_agent,
            edge_hub: Some(&edge_hub),
            modules: &modules,
        },
        expect![[r#"
            {
              "lastDesiredStatus": {
                "code": 200
              },
              "lastDesiredVersion": 7,
              "modules": {
                "filter": {
                  "env": {},
                  "exitCode": 2,
                  "imagePullPolicy": "on-create",
                  "lastExitTimeUtc": "2023-11-14T22:13:24.1234567Z",
                  "lastStartTimeUtc": "2023-11-14T22:13:22.1234567Z",
                  "restartCount": 0,
                  "restartPolicy": "never",
                  "runtimeStatus": "failed",
                  "settings": {
                    "args": [
                      "-v"
                    ],
                    "path": "/usr/bin/filter"
                  },
                  "startupOrder": 4294967295,
                  "status": "running",
                  "statusDescription": "exited with code 2; the restart policy does not restart it",
                  "type": "process"
                },
                "sensor": {
                  "env": {
                    "INTERVAL": {
                      "value": "5"
                    }
                  },
                  "exitCode": 139,
                  "imagePullPolicy": "on-create",
                  "lastExitTimeUtc": "2023-11-14T22:13:40.1234567Z",
                  "lastRestartTimeUtc": "2023-11-14T22:13:33.1234567Z",
                  "lastStartTimeUtc": "2023-11-14T22:13:33.1234567Z",
                  "nextRestartTimeUtc": "2023-11-14T22:14:00.1234567Z",
                  "restartBackoffSecs": 20,
                  "restartCount": 1,
                  "restartPolicy": "always",
                  "runtimeStatus": "backoff",
                  "settings": {
                    "createOptions": "{}",
                    "image": "sensor:2"
                  },
                  "startupOrder": 1,
                  "status": "running",
                  "statusDescription": "exited with code 139; restarting at 2023-11-14T22:14:00.1234567Z after a back-off of 20 s",
                  "type": "docker",
                  "version": "1.0"
                }
              },
              "runtime": {
                "platform": {
                  "architecture": "x86_64",
                  "os": "linux",
                  "version": "0.1.0"
                },
                "settings": {
                  "minDockerVersion": "v1.25",
                  "registryCredentials": {
                    "acr": {
                      "address": "acr.io",
                      "username": "u"
                    }
                  }
                },
                "type": "docker"
              },
              "schemaVersion": "1.0",
              "systemModules": {
                "edgeAgent": {
                  "env": {},
                  "imagePullPolicy": "on-create",
                  "lastStartTimeUtc": "2023-11-14T22:13:20.1234567Z",
                  "restartCount": 0,
                  "restartPolicy": "on-unhealthy",
                  "runtimeStatus": "running",
                  "settings": {
                    "createOptions": "{}",
                    "image": "outpost/agent:1"
                  },
                  "startupOrder": 4294967295,
                  "status": "running",
                  "statusDescription": "running",
                  "type": "docker"
                },
                "edgeHub": {
                  "env": {},
                  "imagePullPolicy": "on-create",
                  "lastStartTimeUtc": "2023-11-14T22:13:21.1234567Z",
                  "restartCount": 0,
                  "restartPolicy": "always",
                  "runtimeStatus": "running",
                  "settings": {
                    "createOptions": "{\"HostConfig\":{}}",
                    "image": "outpost/hub:1",
                    "imageHash": "sha256:0123"
                  },
                  "startupOrder": 0,
                  "status": "running",
                  "statusDescription": "running",
                  "type": "docker"
                }
              },
              "version": {
                "build": "42",
                "commit": "abc123",
                "version": "0.1.0"
              }
            }"#]],
    );
}

#[test]
fn refused_deployments_report_their_code_and_description() {
    let error: DeploymentError =
        AgentDeployment::from_json(r#"{"schemaVersion": "3.0"}"#).unwrap_err();
    let status = LastDesiredStatus::from_error(&error);
    assert_eq!(status.code, DeploymentStatusCode::InvalidSchemaVersion);
    let version = AgentVersion {
        version: "0.1.0".to_owned(),
        build: "1".to_owned(),
        commit: "c".to_owned(),
    };
    let platform = PlatformInfo {
        os: "linux".to_owned(),
        architecture: "aarch64".to_owned(),
        version: "0.1.0".to_owned(),
    };
    let edge_agent = ModuleReport::new(ModuleName::edge_agent(), None, None);
    check(
        &AgentReport {
            version: &version,
            platform: &platform,
            runtime_kind: edge_deployment::RuntimeKind::Process,
            last_desired_version: Some(3),
            last_desired_status: &status,
            deployment: None,
            edge_agent: &edge_agent,
            edge_hub: None,
            modules: &[],
        },
        expect![[r#"
            {
              "lastDesiredStatus": {
                "code": 412,
                "description": "$edgeAgent: schemaVersion \"3.0\" is not supported; supported versions are 1.0 and 1.1"
              },
              "lastDesiredVersion": 3,
              "modules": {},
              "runtime": {
                "platform": {
                  "architecture": "aarch64",
                  "os": "linux",
                  "version": "0.1.0"
                },
                "settings": {},
                "type": "process"
              },
              "schemaVersion": "1.0",
              "systemModules": {
                "edgeAgent": {
                  "restartCount": 0,
                  "runtimeStatus": "unknown",
                  "statusDescription": "unknown"
                }
              },
              "version": {
                "build": "1",
                "commit": "c",
                "version": "0.1.0"
              }
            }"#]],
    );
}

#[test]
fn runtime_status_combines_runtime_and_restart_state() {
    let mut rendered = Vec::new();
    let running = details(
        "m",
        ModuleState::Running {
            started_at: at(0),
            health: Health::Unhealthy,
        },
    );
    rendered.push(RuntimeStatus::of(Some(&running), None));
    rendered.push(RuntimeStatus::of(
        Some(&details("m", ModuleState::Dead)),
        None,
    ));
    rendered.push(RuntimeStatus::of(None, None));
    let exited = details(
        "m",
        ModuleState::Exited {
            exit_code: 143,
            finished_at: at(5),
        },
    );
    let mut tracker = RestartTracker::new(RestartPolicy::OnFailure, BackoffSettings::AZURE);
    tracker.started(at(0));
    tracker.stopped(at(5), edge_agent::StopCause::Operator);
    rendered.push(RuntimeStatus::of(Some(&exited), Some(&tracker.snapshot())));
    tracker.started(at(6));
    tracker.exited(at(7), 143);
    rendered.push(RuntimeStatus::of(Some(&exited), Some(&tracker.snapshot())));
    let text: Vec<&str> = rendered.iter().map(|status| status.as_str()).collect();
    assert_eq!(text, ["unhealthy", "dead", "unknown", "stopped", "backoff"]);
}

#[test]
fn patches_carry_only_changes() {
    let previous = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1], "gone": {"x": 1}});
    let next = json!({"a": 1, "b": {"c": 2, "d": 4, "new": true}, "e": [1, 2]});
    assert_eq!(
        reported_patch(&previous, &next),
        Some(json!({"b": {"d": 4, "new": true}, "e": [1, 2], "gone": null}))
    );
    assert_eq!(reported_patch(&next, &next), None);
    assert_eq!(
        reported_patch(&json!({"a": 1}), &json!({"a": {"b": 1}})),
        Some(json!({"a": {"b": 1}}))
    );
}

#[test]
fn timestamps_have_seven_fractional_digits() {
    assert_eq!(format_timestamp(at(0)), "2023-11-14T22:13:20.1234567Z");
    let whole = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
    assert_eq!(format_timestamp(whole), "1970-01-01T00:00:00.0000000Z");
}

/// Applying a merge patch the way the hub does, to check `reported_patch` round trips.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arbitrary_document() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (0_i64..5).prop_map(|number| json!(number)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 20, 4, |inner| {
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect()))
        })
        .prop_map(|value| match value {
            Value::Object(_) => value,
            other => json!({ "root": other }),
        })
    }

    proptest! {
        #[test]
        fn applying_the_patch_gives_the_new_document(
            previous in arbitrary_document(),
            next in arbitrary_document(),
        ) {
            let mut patched = previous.clone();
            if let Some(patch) = reported_patch(&previous, &next) {
                merge(&mut patched, &patch);
            }
            prop_assert_eq!(patched, next);
        }
    }
}
