//! The `$edgeAgent` reported properties, with Azure's field names.
//!
//! Per module, besides Azure's fields (`runtimeStatus`, `exitCode`, `statusDescription`,
//! `lastStartTimeUtc`, `lastExitTimeUtc`, `restartCount`, `lastRestartTimeUtc` and the desired
//! fields echoed back), two extension fields show the back-off: `nextRestartTimeUtc` and
//! `restartBackoffSecs`, present only while a restart is scheduled. Times are written as
//! `2021-06-12T00:27:46.3838704Z` (Azure's seven fractional digits, plus the `Z` Azure omits).

use std::time::Duration;

use edge_deployment::{
    AgentDeployment, LastDesiredStatus, ModuleKind, ModuleName, ModuleSpec, RuntimeKind,
    chunk_create_options,
};
use serde_json::{Map, Value, json};

use crate::Timestamp;
use crate::restart::{HoldReason, RestartPhase, RestartSnapshot};
use crate::runtime::{Health, ModuleDetails, ModuleState};

/// The `schemaVersion` of the reported properties.
const REPORTED_SCHEMA_VERSION: &str = "1.0";

/// `runtimeStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeStatus {
    Unknown,
    /// Failed, with a restart scheduled.
    Backoff,
    Running,
    /// Running, but its health check reports unhealthy.
    Unhealthy,
    /// Not running: exited with code 0, stopped on purpose, or never started.
    Stopped,
    /// Exited with a non-zero code and not going to be restarted.
    Failed,
    Dead,
}

impl RuntimeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Unknown => "unknown",
            RuntimeStatus::Backoff => "backoff",
            RuntimeStatus::Running => "running",
            RuntimeStatus::Unhealthy => "unhealthy",
            RuntimeStatus::Stopped => "stopped",
            RuntimeStatus::Failed => "failed",
            RuntimeStatus::Dead => "dead",
        }
    }

    /// Combines what the runtime reports with the restart state: a module the runtime reports
    /// exited is `backoff` while a restart is scheduled, `failed` when its policy gave up on a
    /// non-zero exit, `stopped` otherwise (a stop by an operator, a deployment or a shutdown is
    /// not a failure whatever its exit code).
    pub fn of(details: Option<&ModuleDetails>, restart: Option<&RestartSnapshot>) -> RuntimeStatus {
        let Some(details) = details else {
            return RuntimeStatus::Unknown;
        };
        match details.state {
            ModuleState::Running {
                health: Health::Unhealthy,
                ..
            } => RuntimeStatus::Unhealthy,
            ModuleState::Running { .. } => RuntimeStatus::Running,
            ModuleState::Dead => RuntimeStatus::Dead,
            ModuleState::Unknown => RuntimeStatus::Unknown,
            ModuleState::Created | ModuleState::Exited { .. } => {
                match restart.map(|snapshot| snapshot.phase) {
                    Some(RestartPhase::Backoff { .. }) => RuntimeStatus::Backoff,
                    Some(RestartPhase::Held {
                        reason: HoldReason::FailedWithoutRestart,
                        ..
                    }) => RuntimeStatus::Failed,
                    _ => RuntimeStatus::Stopped,
                }
            }
        }
    }
}

/// The `version` object: this agent's build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentVersion {
    pub version: String,
    pub build: String,
    pub commit: String,
}

/// `runtime.platform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformInfo {
    pub os: String,
    pub architecture: String,
    /// The runtime's version.
    pub version: String,
}

/// The observed state of one module, ready to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleReport {
    pub name: ModuleName,
    pub runtime_status: RuntimeStatus,
    pub exit_code: Option<i64>,
    pub status_description: String,
    pub last_start_time: Option<Timestamp>,
    pub last_exit_time: Option<Timestamp>,
    pub restart_count: u32,
    pub last_restart_time: Option<Timestamp>,
    /// Extension: when the scheduled restart happens.
    pub next_restart_time: Option<Timestamp>,
    /// Extension: the back-off delay that chose `next_restart_time`.
    pub backoff_delay: Option<Duration>,
    /// The image (Docker) or executable (process) in use, as the runtime reports it.
    pub image: Option<String>,
    pub image_hash: Option<String>,
}

impl ModuleReport {
    /// Builds the report of a module from the runtime's details and its restart state; either
    /// may be missing (not created yet, or not tracked).
    pub fn new(
        name: ModuleName,
        details: Option<&ModuleDetails>,
        restart: Option<&RestartSnapshot>,
    ) -> ModuleReport {
        let runtime_status = RuntimeStatus::of(details, restart);
        let runtime_exit = details.and_then(|details| match details.state {
            ModuleState::Exited {
                exit_code,
                finished_at,
            } => Some((exit_code, finished_at)),
            _ => None,
        });
        let exit_code = runtime_exit
            .map(|(exit_code, _)| exit_code)
            .or_else(|| restart.and_then(|snapshot| snapshot.last_exit_code));
        let started_at = details.and_then(|details| match details.state {
            ModuleState::Running { started_at, .. } => Some(started_at),
            _ => None,
        });
        let status_description = details
            .and_then(|details| details.description.clone())
            .unwrap_or_else(|| describe(runtime_status, exit_code, restart));
        ModuleReport {
            name,
            runtime_status,
            exit_code,
            status_description,
            last_start_time: restart
                .and_then(|snapshot| snapshot.last_start_time)
                .or(started_at),
            last_exit_time: restart
                .and_then(|snapshot| snapshot.last_exit_time)
                .or(runtime_exit.map(|(_, finished_at)| finished_at)),
            restart_count: restart.map_or(0, |snapshot| snapshot.restart_count),
            last_restart_time: restart.and_then(|snapshot| snapshot.last_restart_time),
            next_restart_time: restart.and_then(|snapshot| snapshot.next_restart_time),
            backoff_delay: restart.and_then(|snapshot| snapshot.backoff_delay),
            image: details.and_then(|details| details.image.clone()),
            image_hash: details.and_then(|details| details.image_hash.clone()),
        }
    }
}

fn describe(
    status: RuntimeStatus,
    exit_code: Option<i64>,
    restart: Option<&RestartSnapshot>,
) -> String {
    let exit = exit_code.map_or_else(String::new, |code| format!(" with code {code}"));
    match status {
        RuntimeStatus::Running => "running".to_owned(),
        RuntimeStatus::Unhealthy => match restart.and_then(|snapshot| snapshot.next_restart_time) {
            Some(at) => format!("running but unhealthy; restart at {}", format_timestamp(at)),
            None => "running but unhealthy".to_owned(),
        },
        RuntimeStatus::Backoff => {
            match restart
                .and_then(|snapshot| snapshot.next_restart_time.zip(snapshot.backoff_delay))
            {
                Some((at, delay)) => format!(
                    "exited{exit}; restarting at {} after a back-off of {} s",
                    format_timestamp(at),
                    delay.as_secs()
                ),
                None => format!("exited{exit}; restart pending"),
            }
        }
        RuntimeStatus::Stopped => match restart.map(|snapshot| snapshot.phase) {
            Some(RestartPhase::NotStarted) => "created, not started yet".to_owned(),
            Some(RestartPhase::Held {
                reason: HoldReason::OperatorStop,
                ..
            }) => "stopped by an operator".to_owned(),
            Some(RestartPhase::Held {
                reason: HoldReason::DeploymentStop,
                ..
            }) => "stopped by the deployment".to_owned(),
            Some(RestartPhase::Interrupted { .. }) => {
                "stopped by a runtime shutdown; starting again".to_owned()
            }
            _ => format!("exited{exit}"),
        },
        RuntimeStatus::Failed => format!("exited{exit}; the restart policy does not restart it"),
        RuntimeStatus::Dead => "dead; it will be removed and created again".to_owned(),
        RuntimeStatus::Unknown => "unknown".to_owned(),
    }
}

/// Everything the reported properties are built from.
#[derive(Debug, Clone, Copy)]
pub struct AgentReport<'a> {
    pub version: &'a AgentVersion,
    pub platform: &'a PlatformInfo,
    /// The engine that runs the modules.
    pub runtime_kind: RuntimeKind,
    /// The `$version` of the desired properties last acted on.
    pub last_desired_version: Option<i64>,
    pub last_desired_status: &'a LastDesiredStatus,
    /// The deployment in force, whose desired fields are echoed per module.
    pub deployment: Option<&'a AgentDeployment>,
    pub edge_agent: &'a ModuleReport,
    pub edge_hub: Option<&'a ModuleReport>,
    pub modules: &'a [ModuleReport],
}

/// Builds the full `$edgeAgent` reported properties document.
pub fn build_reported_properties(report: &AgentReport<'_>) -> Value {
    let mut status = Map::new();
    status.insert(
        "code".to_owned(),
        json!(report.last_desired_status.code.as_u16()),
    );
    if let Some(description) = &report.last_desired_status.description {
        status.insert("description".to_owned(), json!(description));
    }

    let mut runtime_settings = Map::new();
    if let Some(deployment) = report.deployment {
        if let Some(version) = &deployment.runtime.min_docker_version {
            runtime_settings.insert("minDockerVersion".to_owned(), json!(version));
        }
        if let Some(options) = &deployment.runtime.logging_options {
            runtime_settings.insert("loggingOptions".to_owned(), json!(options));
        }
        // Passwords are never echoed back into the twin.
        let credentials: Map<String, Value> = deployment
            .runtime
            .registry_credentials
            .iter()
            .map(|(name, credential)| {
                (
                    name.clone(),
                    json!({"address": credential.address, "username": credential.username}),
                )
            })
            .collect();
        runtime_settings.insert("registryCredentials".to_owned(), Value::Object(credentials));
    }

    let spec_of = |name: &ModuleName| {
        report
            .deployment
            .and_then(|deployment| deployment.module(name))
    };
    let mut system_modules = Map::new();
    system_modules.insert(
        report.edge_agent.name.to_string(),
        module_json(report.edge_agent, spec_of(&report.edge_agent.name)),
    );
    if let Some(edge_hub) = report.edge_hub {
        system_modules.insert(
            edge_hub.name.to_string(),
            module_json(edge_hub, spec_of(&edge_hub.name)),
        );
    }
    let modules: Map<String, Value> = report
        .modules
        .iter()
        .map(|module| {
            (
                module.name.to_string(),
                module_json(module, spec_of(&module.name)),
            )
        })
        .collect();

    let mut document = json!({
        "schemaVersion": REPORTED_SCHEMA_VERSION,
        "version": {
            "version": report.version.version,
            "build": report.version.build,
            "commit": report.version.commit,
        },
        "lastDesiredStatus": Value::Object(status),
        "runtime": {
            "type": report.runtime_kind.as_str(),
            "platform": {
                "os": report.platform.os,
                "architecture": report.platform.architecture,
                "version": report.platform.version,
            },
            "settings": Value::Object(runtime_settings),
        },
        "systemModules": Value::Object(system_modules),
        "modules": Value::Object(modules),
    });
    if let Some(version) = report.last_desired_version {
        document["lastDesiredVersion"] = json!(version);
    }
    document
}

fn module_json(report: &ModuleReport, spec: Option<&ModuleSpec>) -> Value {
    let mut entry = Map::new();
    let mut put = |key: &str, value: Value| {
        entry.insert(key.to_owned(), value);
    };
    put("runtimeStatus", json!(report.runtime_status.as_str()));
    if let Some(exit_code) = report.exit_code {
        put("exitCode", json!(exit_code));
    }
    put("statusDescription", json!(report.status_description));
    let times = [
        ("lastStartTimeUtc", report.last_start_time),
        ("lastExitTimeUtc", report.last_exit_time),
        ("lastRestartTimeUtc", report.last_restart_time),
        ("nextRestartTimeUtc", report.next_restart_time),
    ];
    for (key, time) in times {
        if let Some(time) = time {
            put(key, json!(format_timestamp(time)));
        }
    }
    put("restartCount", json!(report.restart_count));
    if let Some(delay) = report.backoff_delay {
        put("restartBackoffSecs", json!(delay.as_secs()));
    }

    let mut settings = Map::new();
    if let Some(spec) = spec {
        put("type", json!(spec.type_name()));
        put("status", json!(spec.status.as_str()));
        put("restartPolicy", json!(spec.restart_policy.as_str()));
        put("imagePullPolicy", json!(spec.image_pull_policy.as_str()));
        put("startupOrder", json!(spec.startup_order));
        if let Some(version) = &spec.version {
            put("version", json!(version));
        }
        let env: Map<String, Value> = spec
            .env
            .iter()
            .map(|(name, value)| (name.to_string(), json!({ "value": value })))
            .collect();
        put("env", Value::Object(env));
        match &spec.kind {
            ModuleKind::Docker(docker) => {
                settings.insert("image".to_owned(), json!(docker.image.as_str()));
                let options = spec.create_options_json().unwrap_or_default();
                for (key, chunk) in chunk_create_options(&options) {
                    settings.insert(key, json!(chunk));
                }
            }
            ModuleKind::Process(process) => {
                settings.insert("path".to_owned(), json!(process.path));
                settings.insert("args".to_owned(), json!(process.args));
                if let Some(working_dir) = &process.working_dir {
                    settings.insert("workingDir".to_owned(), json!(working_dir));
                }
                if let Some(user) = &process.user {
                    settings.insert("user".to_owned(), json!(user));
                }
            }
        }
    }
    // What actually runs wins over what was asked for, as in Azure.
    if let Some(image) = &report.image {
        let key = match spec.map(|spec| &spec.kind) {
            Some(ModuleKind::Process(_)) => "path",
            _ => "image",
        };
        settings.insert(key.to_owned(), json!(image));
    }
    if let Some(image_hash) = &report.image_hash {
        settings.insert("imageHash".to_owned(), json!(image_hash));
    }
    if !settings.is_empty() {
        entry.insert("settings".to_owned(), Value::Object(settings));
    }
    Value::Object(entry)
}

/// The JSON merge patch (RFC 7386) that turns `previous` into `next`, or `None` when they are
/// equal: the agent sends only this patch, as Azure's edgeAgent does. Removed keys become
/// `null`; arrays and scalars are replaced whole.
pub fn reported_patch(previous: &Value, next: &Value) -> Option<Value> {
    if previous == next {
        return None;
    }
    let (Value::Object(previous), Value::Object(next)) = (previous, next) else {
        return Some(next.clone());
    };
    let mut patch = Map::new();
    for (key, previous_value) in previous {
        match next.get(key) {
            None => {
                patch.insert(key.clone(), Value::Null);
            }
            Some(next_value) => {
                if let Some(inner) = reported_patch(previous_value, next_value) {
                    patch.insert(key.clone(), inner);
                }
            }
        }
    }
    for (key, next_value) in next {
        if !previous.contains_key(key) {
            patch.insert(key.clone(), next_value.clone());
        }
    }
    Some(Value::Object(patch))
}

/// Formats a time as Azure's reported properties do, with seven fractional digits, plus `Z`:
/// `2021-06-12T00:27:46.3838704Z`.
pub fn format_timestamp(time: Timestamp) -> String {
    format!(
        "{}.{:07}Z",
        time.format("%Y-%m-%dT%H:%M:%S"),
        (time.timestamp_subsec_nanos() / 100).min(9_999_999)
    )
}
