//! What Docker says about a container, read as a module (pure).

use bollard::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, HealthStatusEnum,
};
use edge_agent::{Health, ModuleDetails, ModuleState};
use edge_deployment::{ConfigHash, ModuleName};

use crate::Timestamp;
use crate::container::{CONFIG_HASH_LABEL, MODULE_LABEL, OWNER_LABEL};

/// A container this runtime owns, as found by `docker inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedContainer {
    pub id: String,
    pub details: ModuleDetails,
    /// Whether a process runs in it (running, paused or restarting).
    pub running: bool,
}

/// How an inspected container relates to this runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// Ours, and it is the module it was looked up for.
    Owned(Box<OwnedContainer>),
    /// Someone else's container (or ours under another module name).
    Foreign,
}

/// Classifies an inspected container: ours when it carries our owner label and a valid module
/// label equal to `expected_module` (when given).
pub(crate) fn ownership(
    inspect: &ContainerInspectResponse,
    owner: &str,
    expected_module: Option<&ModuleName>,
) -> Ownership {
    let labels = inspect
        .config
        .as_ref()
        .and_then(|config| config.labels.as_ref());
    let label = |name: &str| {
        labels
            .and_then(|labels| labels.get(name))
            .map(String::as_str)
    };
    if label(OWNER_LABEL) != Some(owner) {
        return Ownership::Foreign;
    }
    let Some(name) = label(MODULE_LABEL).and_then(|text| ModuleName::new(text).ok()) else {
        return Ownership::Foreign;
    };
    if expected_module.is_some_and(|expected| *expected != name) {
        return Ownership::Foreign;
    }
    let Some(id) = inspect.id.clone() else {
        return Ownership::Foreign;
    };
    let state = inspect.state.clone().unwrap_or_default();
    let (module_state, description) = module_state(&state);
    let running = matches!(module_state, ModuleState::Running { .. });
    Ownership::Owned(Box::new(OwnedContainer {
        id,
        running,
        details: ModuleDetails {
            name,
            module_type: "docker".to_owned(),
            config_hash: label(CONFIG_HASH_LABEL).and_then(ConfigHash::from_hex),
            state: module_state,
            image: inspect
                .config
                .as_ref()
                .and_then(|config| config.image.clone()),
            image_hash: inspect.image.clone(),
            description: Some(description),
        },
    }))
}

/// Docker's container state as a [`ModuleState`] and a description for people.
fn module_state(state: &ContainerState) -> (ModuleState, String) {
    let started_at = state.started_at.as_deref().and_then(parse_docker_time);
    let finished_at = state.finished_at.as_deref().and_then(parse_docker_time);
    let health = match state.health.as_ref().and_then(|health| health.status) {
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) | None => Health::None,
    };
    let health_suffix = match health {
        Health::None => "",
        Health::Starting => ", health check starting",
        Health::Healthy => ", healthy",
        Health::Unhealthy => ", unhealthy",
    };
    let exit_code = state.exit_code.unwrap_or(-1);
    let error_suffix = match state.error.as_deref() {
        Some(error) if !error.is_empty() => format!(": {error}"),
        _ => String::new(),
    };
    let running = |word: &str| match started_at {
        Some(started_at) => (
            ModuleState::Running { started_at, health },
            format!(
                "{word} since {}{health_suffix}",
                crate::format_time(started_at)
            ),
        ),
        None => (ModuleState::Unknown, format!("{word} (no start time)")),
    };
    match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => running("running"),
        Some(ContainerStateStatusEnum::PAUSED) => running("paused"),
        Some(ContainerStateStatusEnum::RESTARTING) => running("restarting"),
        Some(ContainerStateStatusEnum::STOPPING) => running("stopping"),
        Some(ContainerStateStatusEnum::CREATED) => (
            ModuleState::Created,
            format!("created, not started yet{error_suffix}"),
        ),
        Some(ContainerStateStatusEnum::EXITED) => match finished_at {
            Some(finished_at) => {
                let out_of_memory = if state.oom_killed == Some(true) {
                    " (out of memory)"
                } else {
                    ""
                };
                (
                    ModuleState::Exited {
                        exit_code,
                        finished_at,
                    },
                    format!(
                        "exited with code {exit_code} at {}{out_of_memory}{error_suffix}",
                        crate::format_time(finished_at)
                    ),
                )
            }
            None => (ModuleState::Unknown, "exited (no finish time)".to_owned()),
        },
        Some(ContainerStateStatusEnum::DEAD) => (ModuleState::Dead, format!("dead{error_suffix}")),
        Some(ContainerStateStatusEnum::REMOVING) => {
            (ModuleState::Unknown, "being removed".to_owned())
        }
        Some(ContainerStateStatusEnum::EMPTY) | None => {
            (ModuleState::Unknown, "state unknown".to_owned())
        }
    }
}

/// Parses Docker's RFC 3339 times; Docker's zero time (`0001-01-01T00:00:00Z`, "never") is `None`.
pub(crate) fn parse_docker_time(text: &str) -> Option<Timestamp> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let time = time.with_timezone(&chrono::Utc);
    (chrono::Datelike::year(&time) > 1).then_some(time)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerConfig, Health as DockerHealth};
    use expect_test::{Expect, expect};

    use super::*;

    fn inspect(labels: &[(&str, &str)], state: ContainerState) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("c0ffee".to_owned()),
            image: Some("sha256:1234".to_owned()),
            config: Some(ContainerConfig {
                image: Some("outpost-test-sh:latest".to_owned()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .collect::<HashMap<_, _>>(),
                ),
                ..Default::default()
            }),
            state: Some(state),
            ..Default::default()
        }
    }

    const HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn check(inspect: ContainerInspectResponse, expected_module: Option<&str>, expect: Expect) {
        let expected_module = expected_module.map(|name| ModuleName::new(name).unwrap());
        let rendered = match ownership(&inspect, "outpost", expected_module.as_ref()) {
            Ownership::Foreign => "foreign".to_owned(),
            Ownership::Owned(container) => format!(
                "{} running={} type={} hash={:?} image={:?} image_hash={:?}\n{:?}\n{}",
                container.id,
                container.running,
                container.details.module_type,
                container.details.config_hash,
                container.details.image,
                container.details.image_hash,
                container.details.state,
                container.details.description.unwrap_or_default(),
            ),
        };
        expect.assert_eq(&rendered);
    }

    fn ours() -> Vec<(&'static str, &'static str)> {
        vec![
            (OWNER_LABEL, "outpost"),
            (MODULE_LABEL, "sensor"),
            (CONFIG_HASH_LABEL, HASH),
        ]
    }

    fn state(status: ContainerStateStatusEnum) -> ContainerState {
        ContainerState {
            status: Some(status),
            exit_code: Some(0),
            started_at: Some("2026-11-27T10:00:00.123456789Z".to_owned()),
            finished_at: Some("0001-01-01T00:00:00Z".to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn ownership_needs_our_owner_and_the_right_module() {
        let running = state(ContainerStateStatusEnum::RUNNING);
        check(
            inspect(&[(MODULE_LABEL, "sensor")], running.clone()),
            None,
            expect!["foreign"],
        );
        check(
            inspect(
                &[(OWNER_LABEL, "other"), (MODULE_LABEL, "sensor")],
                running.clone(),
            ),
            None,
            expect!["foreign"],
        );
        check(
            inspect(
                &[(OWNER_LABEL, "outpost"), (MODULE_LABEL, "not a name")],
                running.clone(),
            ),
            None,
            expect!["foreign"],
        );
        check(
            inspect(&ours(), running.clone()),
            Some("other"),
            expect!["foreign"],
        );
        check(
            inspect(
                &[(OWNER_LABEL, "outpost"), (MODULE_LABEL, "sensor")],
                running,
            ),
            Some("sensor"),
            expect![[r#"
                c0ffee running=true type=docker hash=None image=Some("outpost-test-sh:latest") image_hash=Some("sha256:1234")
                Running { started_at: 2026-11-27T10:00:00.123456789Z, health: None }
                running since 2026-11-27T10:00:00.123456789Z"#]],
        );
    }

    #[test]
    fn container_states() {
        let mut unhealthy = state(ContainerStateStatusEnum::RUNNING);
        unhealthy.health = Some(DockerHealth {
            status: Some(HealthStatusEnum::UNHEALTHY),
            ..Default::default()
        });
        check(
            inspect(&ours(), unhealthy),
            None,
            expect![[r#"
                c0ffee running=true type=docker hash=Some(ConfigHash(001122334455)) image=Some("outpost-test-sh:latest") image_hash=Some("sha256:1234")
                Running { started_at: 2026-11-27T10:00:00.123456789Z, health: Unhealthy }
                running since 2026-11-27T10:00:00.123456789Z, unhealthy"#]],
        );
        let mut exited = state(ContainerStateStatusEnum::EXITED);
        exited.exit_code = Some(137);
        exited.oom_killed = Some(true);
        exited.finished_at = Some("2026-11-27T10:05:00Z".to_owned());
        check(
            inspect(&ours(), exited),
            None,
            expect![[r#"
                c0ffee running=false type=docker hash=Some(ConfigHash(001122334455)) image=Some("outpost-test-sh:latest") image_hash=Some("sha256:1234")
                Exited { exit_code: 137, finished_at: 2026-11-27T10:05:00Z }
                exited with code 137 at 2026-11-27T10:05:00Z (out of memory)"#]],
        );
        let mut created = state(ContainerStateStatusEnum::CREATED);
        created.started_at = Some("0001-01-01T00:00:00Z".to_owned());
        created.error = Some("exec: \"/nope\": no such file or directory".to_owned());
        check(
            inspect(&ours(), created),
            None,
            expect![[r#"
                c0ffee running=false type=docker hash=Some(ConfigHash(001122334455)) image=Some("outpost-test-sh:latest") image_hash=Some("sha256:1234")
                Created
                created, not started yet: exec: "/nope": no such file or directory"#]],
        );
        check(
            inspect(&ours(), state(ContainerStateStatusEnum::DEAD)),
            None,
            expect![[r#"
                c0ffee running=false type=docker hash=Some(ConfigHash(001122334455)) image=Some("outpost-test-sh:latest") image_hash=Some("sha256:1234")
                Dead
                dead"#]],
        );
        check(
            inspect(&ours(), state(ContainerStateStatusEnum::PAUSED)),
            None,
            expect![[r#"
                c0ffee running=true type=docker hash=Some(ConfigHash(001122334455)) image=Some("outpost-test-sh:latest") image_hash=Some("sha256:1234")
                Running { started_at: 2026-11-27T10:00:00.123456789Z, health: None }
                paused since 2026-11-27T10:00:00.123456789Z"#]],
        );
        check(
            inspect(&ours(), ContainerState::default()),
            None,
            expect![[r#"
                c0ffee running=false type=docker hash=Some(ConfigHash(001122334455)) image=Some("outpost-test-sh:latest") image_hash=Some("sha256:1234")
                Unknown
                state unknown"#]],
        );
    }
}
