//! The process runtime against real processes (`/bin/sh` scripts).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_agent::{LogOptions, ModuleRuntime, ModuleState, RuntimeError};
use edge_deployment::{
    DesiredStatus, DockerSettings, EnvVarName, ImagePullPolicy, ImageReference, ModuleKind,
    ModuleName, ModuleSpec, ProcessSettings, RestartPolicy,
};
use edge_process::{
    EdgeEnvironment, ExitCause, FixedIdentities, LaunchIdentity, LogLimits, ProcessRuntime,
    ProcessRuntimeConfig,
};
use expect_test::expect;
use iothub_types::DeviceId;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// How long any single wait in these tests may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

fn name(text: &str) -> ModuleName {
    ModuleName::new(text).unwrap()
}

fn script_spec(module: &str, script: &str, env: &[(&str, &str)]) -> ModuleSpec {
    ModuleSpec {
        name: name(module),
        version: Some("1.0".to_owned()),
        status: DesiredStatus::Running,
        restart_policy: RestartPolicy::Always,
        startup_order: 0,
        image_pull_policy: ImagePullPolicy::OnCreate,
        kind: ModuleKind::Process(ProcessSettings {
            path: "/bin/sh".to_owned(),
            args: vec!["-c".to_owned(), script.to_owned()],
            working_dir: None,
            user: None,
        }),
        env: env
            .iter()
            .map(|(key, value)| (EnvVarName::new(key).unwrap(), (*value).to_owned()))
            .collect(),
    }
}

fn identities() -> FixedIdentities {
    [
        "envcheck", "polite", "stubborn", "chatty", "again", "kept", "orphan", "who", "ticker",
    ]
    .into_iter()
    .fold(FixedIdentities::new(), |identities, module| {
        identities.with(
            name(module),
            LaunchIdentity {
                generation_id: format!("gen-{module}"),
                workload_uri: format!("unix:///run/outpost/mnt/{module}.sock"),
            },
        )
    })
}

fn config(data_dir: &Path) -> ProcessRuntimeConfig {
    let mut config = ProcessRuntimeConfig::new(
        data_dir.to_path_buf(),
        EdgeEnvironment::new(
            DeviceId::new("edge-1").unwrap(),
            "hub.example.net",
            "edge-1.local",
        ),
    );
    config.stop_grace_period = Duration::from_secs(5);
    config
}

async fn open(data_dir: &Path) -> ProcessRuntime<FixedIdentities> {
    ProcessRuntime::open(config(data_dir), identities())
        .await
        .expect("open the runtime")
}

async fn read_logs(
    runtime: &ProcessRuntime<FixedIdentities>,
    module: &str,
    options: LogOptions,
) -> String {
    let mut logs = runtime.logs(&name(module), &options).await.expect("logs");
    let mut text = String::new();
    tokio::time::timeout(PATIENCE, logs.read_to_string(&mut text))
        .await
        .expect("logs end")
        .expect("read logs");
    text
}

/// Follows the module's output until a line equal to `wanted` appears.
async fn wait_for_line(runtime: &ProcessRuntime<FixedIdentities>, module: &str, wanted: &str) {
    let options = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let logs = runtime.logs(&name(module), &options).await.expect("logs");
    let mut lines = BufReader::new(logs).lines();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.expect("read a line") {
            if line == wanted {
                return true;
            }
        }
        false
    })
    .await
    .expect("the line comes in time");
    assert!(found, "{module} ended without printing {wanted:?}");
}

async fn wait_for_exit(
    runtime: &ProcessRuntime<FixedIdentities>,
    module: &str,
) -> edge_process::ModuleExit {
    tokio::time::timeout(PATIENCE, runtime.wait_for_exit(&name(module)))
        .await
        .expect("the module exits in time")
        .expect("the module was running")
}

fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state == 'Z' || state == 'X'
        }
    }
}

fn exited_code(state: ModuleState) -> Option<i64> {
    match state {
        ModuleState::Exited { exit_code, .. } => Some(exit_code),
        _ => None,
    }
}

#[tokio::test]
async fn a_module_gets_its_environment_and_its_exit_code_is_observed() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    let mut exits = runtime.subscribe_exits();
    let spec = script_spec(
        "envcheck",
        "env | sort; pwd; echo to-stderr >&2; exit 3",
        &[("LOG_LEVEL", "debug"), ("IOTEDGE_DEVICEID", "spoofed")],
    );
    runtime.create(&spec).await.unwrap();
    let created = runtime.inspect(&name("envcheck")).await.unwrap();
    assert_eq!(created.state, ModuleState::Created);
    assert_eq!(created.config_hash, Some(spec.config_hash()));

    runtime.start(&name("envcheck")).await.unwrap();
    let exit = tokio::time::timeout(PATIENCE, exits.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (exit.name.as_str(), exit.exit_code, exit.cause),
        ("envcheck", 3, ExitCause::Exited)
    );
    let details = runtime.inspect(&name("envcheck")).await.unwrap();
    assert_eq!(exited_code(details.state), Some(3));
    assert_eq!(details.description.as_deref(), Some("exited with code 3"));

    let output = read_logs(&runtime, "envcheck", LogOptions::default()).await;
    let work_dir = data_dir.path().join("modules/envcheck/work");
    // Stdout and stderr are separate pipes, so their relative order is not defined.
    assert!(output.lines().any(|line| line == "to-stderr"), "{output}");
    let shown: String = output
        .lines()
        .filter(|line| {
            !line.starts_with("PWD=")
                && !line.starts_with("SHLVL=")
                && *line != "_=/usr/bin/env"
                && *line != "to-stderr"
        })
        .map(|line| line.replace(work_dir.to_str().unwrap(), "<work>") + "\n")
        .collect();
    expect![[r#"
        IOTEDGE_APIVERSION=2020-07-07
        IOTEDGE_AUTHSCHEME=sasToken
        IOTEDGE_DEVICEID=edge-1
        IOTEDGE_GATEWAYHOSTNAME=edge-1.local
        IOTEDGE_IOTHUBHOSTNAME=hub.example.net
        IOTEDGE_MODULEGENERATIONID=gen-envcheck
        IOTEDGE_MODULEID=envcheck
        IOTEDGE_WORKLOADURI=unix:///run/outpost/mnt/envcheck.sock
        LOG_LEVEL=debug
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        <work>
    "#]]
    .assert_eq(&shown);
}

#[tokio::test]
async fn stop_sends_sigterm_to_the_group_and_a_polite_module_exits_at_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    runtime
        .create(&script_spec(
            "polite",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
            &[],
        ))
        .await
        .unwrap();
    runtime.start(&name("polite")).await.unwrap();
    wait_for_line(&runtime, "polite", "ready").await;

    let before = Instant::now();
    runtime
        .stop(&name("polite"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        before.elapsed() < Duration::from_secs(30),
        "SIGTERM was honoured, no kill needed"
    );
    let exit = runtime.last_exit(&name("polite")).unwrap();
    assert_eq!((exit.exit_code, exit.cause), (7, ExitCause::StopRequested));
    let output = read_logs(&runtime, "polite", LogOptions::default()).await;
    // The shell may also report that its `sleep` died of the same SIGTERM (`Terminated`).
    assert!(
        output.starts_with("ready\n") && output.ends_with("got TERM\n"),
        "{output}"
    );
    // Stopping a stopped module is not an error.
    runtime
        .stop(&name("polite"), Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_kills_the_whole_group_when_sigterm_is_ignored() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    runtime
        .create(&script_spec(
            "stubborn",
            "trap '' TERM; sleep 1000 & echo helper $!; echo ready; while :; do sleep 0.05; done",
            &[],
        ))
        .await
        .unwrap();
    runtime.start(&name("stubborn")).await.unwrap();
    wait_for_line(&runtime, "stubborn", "ready").await;
    let output = read_logs(&runtime, "stubborn", LogOptions::default()).await;
    let helper_pid: u32 = output
        .lines()
        .find_map(|line| line.strip_prefix("helper "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(!process_is_gone(helper_pid));

    runtime
        .stop(&name("stubborn"), Duration::from_millis(300))
        .await
        .unwrap();
    let exit = runtime.last_exit(&name("stubborn")).unwrap();
    assert_eq!(
        (exit.exit_code, exit.cause),
        (137, ExitCause::StopRequested)
    );
    assert!(
        process_is_gone(helper_pid),
        "the helper died with its group"
    );
    let details = runtime.inspect(&name("stubborn")).await.unwrap();
    assert_eq!(
        details.description.as_deref(),
        Some("stopped (exit code 137)")
    );
}

#[tokio::test]
async fn logs_rotate_within_their_cap_and_tail_returns_the_last_lines() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = config(data_dir.path());
    config.log_limits = LogLimits {
        max_file_bytes: 2_000,
        max_rotated_files: 2,
    };
    let runtime = ProcessRuntime::open(config, identities()).await.unwrap();
    runtime
        .create(&script_spec(
            "chatty",
            "i=1; while [ $i -le 400 ]; do echo line $i; i=$((i+1)); done",
            &[],
        ))
        .await
        .unwrap();
    runtime.start(&name("chatty")).await.unwrap();
    assert_eq!(wait_for_exit(&runtime, "chatty").await.exit_code, 0);

    let tail = read_logs(
        &runtime,
        "chatty",
        LogOptions {
            tail: Some(3),
            ..LogOptions::default()
        },
    )
    .await;
    assert_eq!(tail, "line 398\nline 399\nline 400\n");
    let with_time = read_logs(
        &runtime,
        "chatty",
        LogOptions {
            tail: Some(1),
            timestamps: true,
            ..LogOptions::default()
        },
    )
    .await;
    assert!(
        with_time.ends_with("Z line 400\n") && with_time.len() > 30,
        "{with_time}"
    );

    let logs_dir = data_dir.path().join("modules/chatty/logs");
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&logs_dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                entry.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    let names: Vec<&str> = files.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(names, ["output.log", "output.log.1", "output.log.2"]);
    assert!(files.iter().all(|(_, size)| *size <= 2_000), "{files:?}");

    // Only the newest lines survive; they are in order and end with the last one.
    let everything = read_logs(&runtime, "chatty", LogOptions::default()).await;
    let numbers: Vec<u32> = everything
        .lines()
        .map(|line| line.strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    assert!(
        numbers.len() < 400 && numbers.len() > 60,
        "{}",
        numbers.len()
    );
    assert!(numbers.windows(2).all(|pair| pair[1] == pair[0] + 1));
    assert_eq!(numbers.last(), Some(&400));
}

#[tokio::test]
async fn following_logs_ends_when_the_process_ends() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    runtime
        .create(&script_spec("ticker", "echo one; sleep 0.2; echo two", &[]))
        .await
        .unwrap();
    runtime.start(&name("ticker")).await.unwrap();
    let followed = read_logs(
        &runtime,
        "ticker",
        LogOptions {
            follow: true,
            ..LogOptions::default()
        },
    )
    .await;
    assert_eq!(followed, "one\ntwo\n");
}

#[tokio::test]
async fn restart_starts_a_new_process_and_update_replaces_the_spec() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    let script = "echo pid $$; echo ready; while :; do sleep 0.05; done";
    runtime
        .create(&script_spec("again", script, &[]))
        .await
        .unwrap();
    runtime.start(&name("again")).await.unwrap();
    wait_for_line(&runtime, "again", "ready").await;
    // Starting a running module is not an error and starts nothing new.
    runtime.start(&name("again")).await.unwrap();

    runtime.restart(&name("again")).await.unwrap();
    assert_eq!(
        runtime.last_exit(&name("again")).unwrap().cause,
        ExitCause::StopRequested
    );
    assert!(matches!(
        runtime.inspect(&name("again")).await.unwrap().state,
        ModuleState::Running { .. }
    ));
    let options = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let logs = runtime.logs(&name("again"), &options).await.unwrap();
    let mut lines = BufReader::new(logs).lines();
    let mut pids = Vec::new();
    while pids.len() < 2 {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(pid) = line.strip_prefix("pid ") {
            pids.push(pid.to_owned());
        }
    }
    assert_ne!(pids[0], pids[1]);

    let updated = script_spec("again", "exit 0", &[("NEW", "1")]);
    runtime.update(&updated).await.unwrap();
    let details = runtime.inspect(&name("again")).await.unwrap();
    assert_eq!(details.state, ModuleState::Created);
    assert_eq!(details.config_hash, Some(updated.config_hash()));

    let refused = runtime.remove(&name("missing")).await;
    assert_eq!(refused, Err(RuntimeError::NotFound(name("missing"))));
    runtime.remove(&name("again")).await.unwrap();
    assert!(runtime.list().await.unwrap().is_empty());
    assert!(!data_dir.path().join("modules/again").exists());
}

#[tokio::test]
async fn records_survive_a_clean_runtime_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let spec = script_spec("kept", "echo ready; while :; do sleep 0.05; done", &[]);
    {
        let runtime = open(data_dir.path()).await;
        runtime.create(&spec).await.unwrap();
        runtime.start(&name("kept")).await.unwrap();
        wait_for_line(&runtime, "kept", "ready").await;
        runtime.shutdown(Duration::from_secs(5)).await;
        let exit = runtime.last_exit(&name("kept")).unwrap();
        assert_eq!(
            (exit.exit_code, exit.cause),
            (143, ExitCause::RuntimeShutdown)
        );
    }
    let record = std::fs::metadata(data_dir.path().join("modules/kept/module.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&record.permissions()) & 0o777,
        0o600
    );
    let runtime = open(data_dir.path()).await;
    let listed = runtime.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name("kept"));
    assert_eq!(listed[0].module_type, "process");
    assert_eq!(listed[0].config_hash, Some(spec.config_hash()));
    assert_eq!(listed[0].image.as_deref(), Some("/bin/sh"));
    assert_eq!(exited_code(listed[0].state), Some(143));
    assert_eq!(
        runtime.last_exit(&name("kept")).unwrap().cause,
        ExitCause::RuntimeShutdown
    );
    assert_eq!(
        runtime.create(&spec).await,
        Err(RuntimeError::AlreadyExists(name("kept")))
    );
    // The old output is still there, and the module starts again.
    assert_eq!(
        read_logs(&runtime, "kept", LogOptions::default()).await,
        "ready\n"
    );
    runtime.start(&name("kept")).await.unwrap();
    assert!(matches!(
        runtime.inspect(&name("kept")).await.unwrap().state,
        ModuleState::Running { .. }
    ));
    runtime
        .stop(&name("kept"), Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn processes_left_by_a_lost_runtime_are_stopped_at_open() {
    let data_dir = tempfile::tempdir().unwrap();
    let data_path = data_dir.path().to_path_buf();
    // The first runtime lives on its own tokio runtime, which is then torn down without
    // stopping anything: the module process outlives it, as after a crash of the runtime.
    let orphan_pid = std::thread::spawn(move || {
        let tokio_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pid = tokio_runtime.block_on(async {
            let runtime = open(&data_path).await;
            runtime
                .create(&script_spec(
                    "orphan",
                    "echo pid $$; echo ready; while :; do sleep 0.05; done",
                    &[],
                ))
                .await
                .unwrap();
            runtime.start(&name("orphan")).await.unwrap();
            wait_for_line(&runtime, "orphan", "ready").await;
            let output = read_logs(&runtime, "orphan", LogOptions::default()).await;
            output
                .lines()
                .find_map(|line| line.strip_prefix("pid "))
                .unwrap()
                .parse::<u32>()
                .unwrap()
        });
        tokio_runtime.shutdown_background();
        pid
    })
    .join()
    .unwrap();
    assert!(
        !process_is_gone(orphan_pid),
        "the module outlived its runtime"
    );

    let runtime = open(data_dir.path()).await;
    assert!(process_is_gone(orphan_pid), "the new runtime stopped it");
    let exit = runtime.last_exit(&name("orphan")).unwrap();
    assert_eq!((exit.exit_code, exit.cause), (143, ExitCause::RuntimeLost));
    assert!(!exit.cause.is_own_exit());
    assert_eq!(
        exited_code(runtime.inspect(&name("orphan")).await.unwrap().state),
        Some(143)
    );
    // A second open finds nothing left to stop.
    drop(runtime);
    let runtime = open(data_dir.path()).await;
    assert_eq!(runtime.last_exit(&name("orphan")).unwrap().exit_code, 143);
}

#[tokio::test]
async fn the_workload_caller_check_finds_a_module_by_process() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    runtime
        .create(&script_spec(
            "who",
            "echo pid $$; sleep 1000 & echo helper $!; echo ready; wait",
            &[],
        ))
        .await
        .unwrap();
    runtime.start(&name("who")).await.unwrap();
    wait_for_line(&runtime, "who", "ready").await;
    let output = read_logs(&runtime, "who", LogOptions::default()).await;
    let pid_of = |prefix: &str| -> u32 {
        output
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(runtime.module_of_process(pid_of("pid ")), Some(name("who")));
    assert_eq!(
        runtime.module_of_process(pid_of("helper ")),
        Some(name("who"))
    );
    assert_eq!(runtime.module_of_process(std::process::id()), None);
    runtime
        .stop(&name("who"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(runtime.module_of_process(pid_of("pid ")), None);
}

#[tokio::test]
async fn settings_user_switches_users_as_root_and_is_refused_otherwise() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    let mut spec = script_spec("who", "id -u; echo $HOME", &[]);
    if let ModuleKind::Process(process) = &mut spec.kind {
        process.user = Some("65534".to_owned());
    }
    runtime.create(&spec).await.unwrap();
    let started = runtime.start(&name("who")).await;
    if rustix::process::getuid().is_root() {
        started.unwrap();
        assert_eq!(wait_for_exit(&runtime, "who").await.exit_code, 0);
        let output = read_logs(&runtime, "who", LogOptions::default()).await;
        assert!(output.starts_with("65534\n"), "{output}");
    } else {
        let message = started.unwrap_err().to_string();
        assert!(
            message.contains("needs the runtime to run as root"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn what_the_process_runtime_refuses() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = open(data_dir.path()).await;
    let mut docker = script_spec("envcheck", "true", &[]);
    docker.kind = ModuleKind::Docker(DockerSettings {
        image: ImageReference::parse("alpine").unwrap(),
        create_options: serde_json::Map::new(),
        digest: None,
    });
    let mut missing = script_spec("polite", "true", &[]);
    if let ModuleKind::Process(process) = &mut missing.kind {
        process.path = "/nonexistent/binary".to_owned();
    }
    runtime.create(&missing).await.unwrap();
    let mut unknown_identity = script_spec("stranger", "true", &[]);
    unknown_identity.env = BTreeMap::new();
    runtime.create(&unknown_identity).await.unwrap();

    let results = [
        runtime.create(&docker).await,
        runtime.start(&name("polite")).await,
        runtime.start(&name("stranger")).await,
        runtime.start(&name("absent")).await,
    ];
    let rendered: Vec<String> = results
        .iter()
        .map(|result| match result {
            Ok(()) => "ok".to_owned(),
            Err(error) => error.to_string(),
        })
        .collect();
    expect![[r#"
        [
            "create envcheck failed: the process runtime cannot run docker modules",
            "start polite failed: cannot run /nonexistent/binary: No such file or directory (os error 2)",
            "start stranger failed: no module identity: no identity is known for module stranger",
            "module absent does not exist",
        ]
    "#]]
    .assert_debug_eq(&rendered);
    assert_eq!(
        runtime.inspect(&name("polite")).await.unwrap().state,
        ModuleState::Created
    );
}
