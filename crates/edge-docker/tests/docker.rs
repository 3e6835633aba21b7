//! The Docker runtime against the real Docker Engine on this machine, with a locally built image.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use edge_agent::{Health, LogOptions, ModuleDetails, ModuleRuntime, ModuleState, RuntimeError};
use edge_deployment::{ImagePullPolicy, ImageReference, ModuleKind, RegistryCredential};
use edge_docker::{
    CONFIG_HASH_LABEL, DockerRuntime, DockerRuntimeConfig, DockerRuntimeError, MODULE_LABEL,
    ORIGINAL_IMAGE_LABEL, OWNER_LABEL,
};
use edge_process::{EdgeEnvironment, ExitCause};
use expect_test::{Expect, expect};
use iothub_types::DeviceId;
use serde_json::json;
use support::{Harness, TEST_IMAGE, WAIT_LIMIT, create_options_of, next_exit};

/// A module that says it is ready, then waits; SIGTERM makes it print `got-term` and exit 7.
const TRAPPING_SCRIPT: &str = "trap 'echo got-term; exit 7' TERM; echo ready; sleep 600 & wait";

/// One line per interesting fact of a module, with the harness's run id redacted.
fn render_details(harness: &Harness, details: &ModuleDetails) -> String {
    let state = match details.state {
        ModuleState::Created => "created".to_owned(),
        ModuleState::Running { health, .. } => format!("running health={health:?}"),
        ModuleState::Exited { exit_code, .. } => format!("exited code={exit_code}"),
        ModuleState::Dead => "dead".to_owned(),
        ModuleState::Unknown => "unknown".to_owned(),
    };
    harness.redact(&format!(
        "{} type={} image={} hash={} {state}",
        details.name,
        details.module_type,
        details.image.as_deref().unwrap_or("-"),
        details
            .config_hash
            .map_or("-".to_owned(), |hash| hash.short()),
    ))
}

fn check_error(harness: &Harness, error: RuntimeError, expect: Expect) {
    expect.assert_eq(&harness.redact(&error.to_string()));
}

#[tokio::test]
async fn create_merges_create_options_with_env_labels_and_identity() {
    let harness = Harness::new().await;
    let name = harness.module_name("env");
    let spec = harness.spec(
        &name,
        json!({
            "Cmd": ["/usr/bin/env"],
            "Env": ["FROM_OPTIONS=yes", "LOG_LEVEL=from-options", "IOTEDGE_DEVICEID=spoofed"],
            "Labels": {"team": "blue", "io.outpost.owner": "spoofed"},
            "HostConfig": {"Memory": 67108864, "RestartPolicy": {"Name": "always"}}
        }),
        &[("LOG_LEVEL", "debug")],
    );
    harness.runtime.create(&spec).await.unwrap();

    let details = harness.runtime.inspect(&name).await.unwrap();
    assert_eq!(details.config_hash, Some(spec.config_hash()));
    assert!(
        details
            .image_hash
            .as_deref()
            .unwrap()
            .starts_with("sha256:")
    );
    expect!["env-<run> type=docker image=outpost-test-sh:latest hash=… created"]
        .assert_eq(&render_details(&harness, &details).replace(&spec.config_hash().short(), "…"));

    let inspect = harness
        .docker
        .inspect_container(name.as_str(), None)
        .await
        .unwrap();
    let labels = inspect.config.unwrap().labels.unwrap();
    assert_eq!(labels["team"], "blue");
    assert_eq!(labels[OWNER_LABEL], harness.owner);
    assert_eq!(labels[MODULE_LABEL], name.as_str());
    assert_eq!(labels[CONFIG_HASH_LABEL], spec.config_hash().to_string());
    assert_eq!(labels[ORIGINAL_IMAGE_LABEL], TEST_IMAGE);
    let host_config = inspect.host_config.unwrap();
    assert_eq!(host_config.memory, Some(67_108_864));
    assert_eq!(
        host_config
            .restart_policy
            .and_then(|policy| policy.name)
            .map(|name| name.to_string()),
        Some("no".to_owned())
    );

    let mut exits = harness.runtime.subscribe_exits();
    harness.runtime.start(&name).await.unwrap();
    let exit = next_exit(&mut exits, &name).await;
    assert_eq!((exit.exit_code, exit.cause), (0, ExitCause::Exited));
    let output = harness.logs(&name, LogOptions::default()).await;
    let mut interesting: Vec<&str> = output
        .lines()
        .filter(|line| {
            [
                "FROM_OPTIONS",
                "IOTEDGE_",
                "LOG_LEVEL",
                "EdgeDeviceHostName",
            ]
            .iter()
            .any(|prefix| line.starts_with(prefix))
        })
        .collect();
    interesting.sort_unstable();
    let interesting: String = interesting.iter().map(|line| format!("{line}\n")).collect();
    expect![[r#"
        FROM_OPTIONS=yes
        IOTEDGE_APIVERSION=2020-07-07
        IOTEDGE_AUTHSCHEME=sasToken
        IOTEDGE_DEVICEID=edge-1
        IOTEDGE_GATEWAYHOSTNAME=edge-1.local
        IOTEDGE_IOTHUBHOSTNAME=hub.example.net
        IOTEDGE_MODULEGENERATIONID=gen-12
        IOTEDGE_MODULEID=env-<run>
        IOTEDGE_WORKLOADURI=http://127.0.0.1:15580
        LOG_LEVEL=debug
    "#]]
    .assert_eq(
        &harness
            .redact(&interesting)
            .replace(&format!("gen-{}", name.as_str().len()), "gen-12"),
    );
}

#[tokio::test]
async fn a_unix_workload_socket_is_mounted_at_azures_path() {
    let directory = tempfile::tempdir().unwrap();
    let socket_path = directory.path().join("module.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let harness = Harness::with_config(|_| {}, &format!("unix://{}", socket_path.display())).await;
    let name = harness.module_name("mount");
    let spec = harness.shell_spec(
        &name,
        "test -S /var/run/iotedge/workload.sock && echo socket-mounted; echo \"$IOTEDGE_WORKLOADURI\"",
    );
    harness.runtime.create(&spec).await.unwrap();
    let mut exits = harness.runtime.subscribe_exits();
    harness.runtime.start(&name).await.unwrap();
    assert_eq!(next_exit(&mut exits, &name).await.exit_code, 0);
    expect![[r#"
        socket-mounted
        unix:///var/run/iotedge/workload.sock
    "#]]
    .assert_eq(&harness.logs(&name, LogOptions::default()).await);
}

#[tokio::test]
async fn stop_gives_a_trapping_module_its_grace_period() {
    let harness = Harness::new().await;
    let name = harness.module_name("trap");
    harness
        .runtime
        .create(&harness.shell_spec(&name, TRAPPING_SCRIPT))
        .await
        .unwrap();
    let mut exits = harness.runtime.subscribe_exits();
    harness.runtime.start(&name).await.unwrap();
    harness.wait_for_output(&name, "ready").await;
    assert!(matches!(
        harness.runtime.inspect(&name).await.unwrap().state,
        ModuleState::Running {
            health: Health::None,
            ..
        }
    ));

    let began = Instant::now();
    harness
        .runtime
        .stop(&name, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "the module ended on SIGTERM"
    );
    let exit = next_exit(&mut exits, &name).await;
    assert_eq!((exit.exit_code, exit.cause), (7, ExitCause::StopRequested));
    assert!(matches!(
        harness.runtime.inspect(&name).await.unwrap().state,
        ModuleState::Exited { exit_code: 7, .. }
    ));
    let tail = LogOptions {
        tail: Some(1),
        ..LogOptions::default()
    };
    assert_eq!(harness.logs(&name, tail).await, "got-term\n");
    // Stopping a stopped module is not an error.
    harness
        .runtime
        .stop(&name, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_kills_a_module_that_ignores_sigterm_once_the_grace_period_is_over() {
    let harness = Harness::new().await;
    let name = harness.module_name("stubborn");
    harness
        .runtime
        .create(&harness.shell_spec(&name, "echo ready; sleep 600"))
        .await
        .unwrap();
    let mut exits = harness.runtime.subscribe_exits();
    harness.runtime.start(&name).await.unwrap();
    harness.wait_for_output(&name, "ready").await;
    let began = Instant::now();
    harness
        .runtime
        .stop(&name, Duration::from_millis(500))
        .await
        .unwrap();
    // The grace period is rounded up to whole seconds for `docker stop`.
    assert!(began.elapsed() >= Duration::from_secs(1));
    let exit = next_exit(&mut exits, &name).await;
    assert_eq!(
        (exit.exit_code, exit.cause),
        (137, ExitCause::StopRequested)
    );
}

#[tokio::test]
async fn an_own_exit_is_reported_with_its_code_and_restart_runs_the_module_again() {
    let harness = Harness::new().await;
    let name = harness.module_name("fail");
    harness
        .runtime
        .create(&harness.shell_spec(&name, "echo run; exit 3"))
        .await
        .unwrap();
    let mut exits = harness.runtime.subscribe_exits();
    let before_start = chrono::Utc::now() - chrono::Duration::seconds(1);
    harness.runtime.start(&name).await.unwrap();
    let exit = next_exit(&mut exits, &name).await;
    assert_eq!((exit.exit_code, exit.cause), (3, ExitCause::Exited));
    assert!(exit.finished_at >= before_start);
    let ModuleState::Exited {
        exit_code,
        finished_at,
    } = harness.runtime.inspect(&name).await.unwrap().state
    else {
        panic!("the module has exited")
    };
    assert_eq!(exit_code, 3);
    assert!((finished_at - exit.finished_at).num_seconds().abs() < 5);

    harness.runtime.restart(&name).await.unwrap();
    let again = next_exit(&mut exits, &name).await;
    assert_eq!((again.exit_code, again.cause), (3, ExitCause::Exited));
    assert_eq!(
        harness.logs(&name, LogOptions::default()).await,
        "run\nrun\n"
    );
}

#[tokio::test]
async fn logs_tail_timestamps_and_both_streams() {
    let harness = Harness::new().await;
    let name = harness.module_name("logs");
    harness
        .runtime
        .create(&harness.shell_spec(
            &name,
            "echo to-stderr >&2; sleep 0.2; for i in 1 2 3 4 5; do echo line $i; done",
        ))
        .await
        .unwrap();
    let mut exits = harness.runtime.subscribe_exits();
    harness.runtime.start(&name).await.unwrap();
    next_exit(&mut exits, &name).await;

    let all = harness.logs(&name, LogOptions::default()).await;
    expect![[r#"
        to-stderr
        line 1
        line 2
        line 3
        line 4
        line 5
    "#]]
    .assert_eq(&all);
    let tail = LogOptions {
        tail: Some(2),
        ..LogOptions::default()
    };
    expect![[r#"
        line 4
        line 5
    "#]]
    .assert_eq(&harness.logs(&name, tail).await);
    let stamped = LogOptions {
        tail: Some(1),
        timestamps: true,
        ..LogOptions::default()
    };
    let line = harness.logs(&name, stamped).await;
    let (time, text) = line.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{line:?}"
    );
    assert_eq!(text, "line 5\n");
}

#[tokio::test]
async fn list_and_every_operation_see_only_our_containers() {
    let harness = Harness::new().await;
    let first = harness.module_name("alpha");
    let second = harness.module_name("beta");
    for name in [&second, &first] {
        harness
            .runtime
            .create(&harness.shell_spec(name, "exit 0"))
            .await
            .unwrap();
    }
    let foreign = harness.module_name("foreign");
    harness
        .create_foreign_container(foreign.as_str(), &[])
        .await;
    let other_owner = harness.module_name("other-owner");
    harness
        .create_foreign_container(
            other_owner.as_str(),
            &[
                (OWNER_LABEL, "someone-else"),
                (MODULE_LABEL, other_owner.as_str()),
            ],
        )
        .await;

    let listed: Vec<String> = harness
        .runtime
        .list()
        .await
        .unwrap()
        .iter()
        .map(|details| render_details(&harness, details))
        .collect();
    // The hash covers the configuration, not the name: both modules have the same.
    let hash = harness.shell_spec(&first, "exit 0").config_hash().short();
    expect![[r#"
        alpha-<run> type=docker image=outpost-test-sh:latest hash=H created
        beta-<run> type=docker image=outpost-test-sh:latest hash=H created"#]]
    .assert_eq(&listed.join("\n").replace(&hash, "H"));

    for name in [&foreign, &other_owner] {
        assert!(matches!(
            harness.runtime.inspect(name).await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            harness.runtime.start(name).await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            harness.runtime.remove(name).await,
            Err(RuntimeError::NotFound(_))
        ));
    }
    let taken = harness
        .runtime
        .create(&harness.shell_spec(&foreign, "exit 0"))
        .await
        .unwrap_err();
    check_error(
        &harness,
        taken,
        expect![
            "create foreign-<run> failed: a container named foreign-<run> exists but does not belong to this runtime; rename or remove it"
        ],
    );
}

#[tokio::test]
async fn remove_needs_a_stopped_module_and_create_needs_a_free_name() {
    let harness = Harness::new().await;
    let name = harness.module_name("remove");
    let spec = harness.shell_spec(&name, TRAPPING_SCRIPT);
    harness.runtime.create(&spec).await.unwrap();
    check_error(
        &harness,
        harness.runtime.create(&spec).await.unwrap_err(),
        expect!["module remove-<run> already exists"],
    );
    harness.runtime.start(&name).await.unwrap();
    // Starting a running module is not an error.
    harness.runtime.start(&name).await.unwrap();
    check_error(
        &harness,
        harness.runtime.remove(&name).await.unwrap_err(),
        expect!["remove remove-<run> failed: the module is running; stop it first"],
    );
    harness
        .runtime
        .stop(&name, Duration::from_secs(30))
        .await
        .unwrap();
    harness.runtime.remove(&name).await.unwrap();
    assert!(matches!(
        harness.runtime.inspect(&name).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(harness.runtime.list().await.unwrap().is_empty());
    // The name is free again.
    harness.runtime.create(&spec).await.unwrap();
}

#[tokio::test]
async fn update_replaces_the_container_with_the_new_configuration() {
    let harness = Harness::new().await;
    let name = harness.module_name("update");
    let old_spec = harness.spec(
        &name,
        json!({"Cmd": ["/bin/sh", "-c", TRAPPING_SCRIPT]}),
        &[("VERSION", "1")],
    );
    harness.runtime.create(&old_spec).await.unwrap();
    let mut exits = harness.runtime.subscribe_exits();
    harness.runtime.start(&name).await.unwrap();
    harness.wait_for_output(&name, "ready").await;
    let old_id = harness
        .docker
        .inspect_container(name.as_str(), None)
        .await
        .unwrap()
        .id;

    let new_spec = harness.spec(
        &name,
        json!({"Cmd": ["/bin/sh", "-c", "echo \"version $VERSION\""]}),
        &[("VERSION", "2")],
    );
    harness.runtime.update(&new_spec).await.unwrap();
    let exit = next_exit(&mut exits, &name).await;
    assert_eq!((exit.exit_code, exit.cause), (7, ExitCause::StopRequested));
    let details = harness.runtime.inspect(&name).await.unwrap();
    assert_eq!(details.config_hash, Some(new_spec.config_hash()));
    assert_eq!(details.state, ModuleState::Created);
    let new_id = harness
        .docker
        .inspect_container(name.as_str(), None)
        .await
        .unwrap()
        .id;
    assert_ne!(old_id, new_id);
    harness.runtime.start(&name).await.unwrap();
    next_exit(&mut exits, &name).await;
    assert_eq!(
        harness.logs(&name, LogOptions::default()).await,
        "version 2\n"
    );

    let missing = harness.module_name("missing");
    assert!(matches!(
        harness
            .runtime
            .update(&harness.shell_spec(&missing, "exit 0"))
            .await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_failing_health_check_makes_the_module_unhealthy() {
    let harness = Harness::new().await;
    let name = harness.module_name("health");
    let spec = harness.spec(
        &name,
        json!({
            "Cmd": ["/bin/sh", "-c", TRAPPING_SCRIPT],
            "Healthcheck": {
                "Test": ["CMD-SHELL", "exit 1"],
                "Interval": 100_000_000,
                "Timeout": 5_000_000_000_u64,
                "Retries": 1
            }
        }),
        &[],
    );
    harness.runtime.create(&spec).await.unwrap();
    let mut health = harness.runtime.subscribe_health();
    harness.runtime.start(&name).await.unwrap();
    let change = tokio::time::timeout(WAIT_LIMIT, health.recv())
        .await
        .expect("a health change in time")
        .unwrap();
    assert_eq!(
        (change.name, change.health),
        (name.clone(), Health::Unhealthy)
    );
    let details = harness.runtime.inspect(&name).await.unwrap();
    assert!(
        matches!(
            details.state,
            ModuleState::Running {
                health: Health::Unhealthy,
                ..
            }
        ),
        "{details:?}"
    );
    assert!(details.description.unwrap().ends_with(", unhealthy"));
}

#[tokio::test]
async fn image_pull_policies_and_refusals_give_clear_errors() {
    let harness = Harness::new().await;

    let name = harness.module_name("never");
    let mut spec = harness.shell_spec(&name, "exit 0");
    spec.image_pull_policy = ImagePullPolicy::Never;
    let missing_image = format!("outpost-test-missing-{}:1", harness.run);
    if let ModuleKind::Docker(settings) = &mut spec.kind {
        settings.image = ImageReference::parse(&missing_image).unwrap();
    }
    check_error(
        &harness,
        harness.runtime.create(&spec).await.unwrap_err(),
        expect![
            "create never-<run> failed: image outpost-test-missing-<run>:1 is not on this host and imagePullPolicy is never; build or load it here (docker build, docker load) or use imagePullPolicy on-create"
        ],
    );

    // No registry is reachable here: a refused connection shows the pull was tried, with the
    // login whose address names the image's registry.
    harness.runtime.set_registry_credentials(BTreeMap::from([(
        "local".to_owned(),
        RegistryCredential {
            username: "puller".to_owned(),
            password: "secret".to_owned(),
            address: "localhost:1".to_owned(),
        },
    )]));
    let name = harness.module_name("pull");
    let mut spec = harness.shell_spec(&name, "exit 0");
    if let ModuleKind::Docker(settings) = &mut spec.kind {
        settings.image = ImageReference::parse("localhost:1/outpost-missing:1").unwrap();
    }
    let message = harness.runtime.create(&spec).await.unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "create {name} failed: cannot pull image localhost:1/outpost-missing:1 as puller at localhost:1: "
        )),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");

    let name = harness.module_name("misfit");
    let mut spec = harness.shell_spec(&name, "exit 0");
    create_options_of(&mut spec).insert("HostConfig".to_owned(), json!({"Memory": "lots"}));
    check_error(
        &harness,
        harness.runtime.create(&spec).await.unwrap_err(),
        expect![[
            r#"create misfit-<run> failed: createOptions do not fit Docker's container create body at HostConfig.Memory: invalid type: string "lots", expected i64"#
        ]],
    );

    let name = harness.module_name("process");
    let mut spec = harness.shell_spec(&name, "exit 0");
    spec.kind = ModuleKind::Process(edge_deployment::ProcessSettings {
        path: "/bin/true".to_owned(),
        args: Vec::new(),
        working_dir: None,
        user: None,
    });
    check_error(
        &harness,
        harness.runtime.create(&spec).await.unwrap_err(),
        expect!["create process-<run> failed: the Docker runtime cannot run process modules"],
    );
    assert!(harness.runtime.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn modules_join_the_configured_network_which_is_created_when_missing() {
    let network_name = format!(
        "outpost-test-net-{:x}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let configured = network_name.clone();
    let harness = Harness::with_config(
        move |config| config.network = Some(configured),
        "http://127.0.0.1:15580",
    )
    .await;
    let name = harness.module_name("net");
    harness
        .runtime
        .create(&harness.shell_spec(&name, "exit 0"))
        .await
        .unwrap();
    let inspect = harness
        .docker
        .inspect_container(name.as_str(), None)
        .await
        .unwrap();
    assert_eq!(
        inspect.host_config.unwrap().network_mode.as_deref(),
        Some(network_name.as_str())
    );
    let network = harness
        .docker
        .inspect_network(&network_name, None)
        .await
        .unwrap();
    assert_eq!(network.labels.unwrap()[OWNER_LABEL], harness.owner);

    // createOptions that choose a network mode keep it.
    let hosted = harness.module_name("hosted");
    harness
        .runtime
        .create(&harness.spec(
            &hosted,
            json!({"Cmd": ["/bin/sh", "-c", "exit 0"], "HostConfig": {"NetworkMode": "none"}}),
            &[],
        ))
        .await
        .unwrap();
    let inspect = harness
        .docker
        .inspect_container(hosted.as_str(), None)
        .await
        .unwrap();
    assert_eq!(
        inspect.host_config.unwrap().network_mode.as_deref(),
        Some("none")
    );
}

#[tokio::test]
async fn connecting_without_a_docker_socket_is_a_clear_error() {
    let mut config = DockerRuntimeConfig::new(EdgeEnvironment::new(
        DeviceId::new("edge-1").unwrap(),
        "hub.example.net",
        "edge-1.local",
    ));
    config.socket_path = "/nonexistent/docker.sock".into();
    let error = DockerRuntime::connect(
        config,
        support::TestIdentities {
            workload_uri: String::new(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, DockerRuntimeError::SocketMissing { .. }));
    expect![
        "the Docker Engine socket /nonexistent/docker.sock does not exist; is Docker installed and running (or set another socket path)?"
    ]
    .assert_eq(&error.to_string());
}
