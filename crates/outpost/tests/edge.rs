//! The edge runtime end to end (issue 5), black box: a real hub (`outpost hub serve`), an edge
//! device set up with `outpost edge init`, the runtime as `outpost edge run` with the process
//! engine, deployments applied with `outpost edge set-modules`, and everything observed through
//! the CLI (`outpost twin show … --module '$edgeAgent'`, `outpost edge list/logs/restart`) and
//! the files the modules write. Every wait polls with a deadline.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU8;

use serde_json::{Value, json};
use support::edge::{Edge, agent_twin, init_edge, set_modules, tail, wait_for};
use support::{Hub, next_address, outpost_binary};

static ADDRESSES: AtomicU8 = AtomicU8::new(0);

/// The lines a module appended to its start file (one pid per start).
fn starts(directory: &Path, module: &str) -> Vec<u32> {
    std::fs::read_to_string(directory.join(format!("{module}.starts")))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// A process module: a shell script that says who it is, appends its pid to `<module>.starts`
/// and sleeps.
fn process_module(directory: &Path, module: &str, greeting: &str) -> Value {
    let script = format!(
        "echo \"{greeting} $IOTEDGE_MODULEID $IOTEDGE_DEVICEID $IOTEDGE_GATEWAYHOSTNAME\"; \
         echo $$ >> {}/{module}.starts; exec sleep 600",
        directory.display()
    );
    json!({
        "type": "process",
        "status": "running",
        "restartPolicy": "always",
        "settings": {"path": "/bin/sh", "args": ["-c", script]}
    })
}

/// A process module that calls its workload socket over HTTP, as an SDK module would: the trust
/// bundle, a signature as itself, and a signature as another module (refused); then it sleeps.
/// It is written in Python (the interpreter of the test venv) so that the test needs no curl.
fn workload_module(directory: &Path) -> Value {
    let output = directory.join("gamma.out");
    let program = directory.join("gamma.py");
    std::fs::write(&program, WORKLOAD_CALLER).expect("write the workload caller");
    let script = format!(
        "{} {} > {}; echo done >> {}; exec sleep 600",
        support::python().display(),
        program.display(),
        output.display(),
        output.display()
    );
    json!({
        "type": "process",
        "restartPolicy": "always",
        "settings": {"path": "/bin/sh", "args": ["-c", script]}
    })
}

/// Calls the workload API on the module's Unix socket and prints one answer body per line.
const WORKLOAD_CALLER: &str = r#"
import http.client, os, socket

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("workload")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

def call(method, target, body=None):
    connection = UnixConnection(os.environ["IOTEDGE_WORKLOADURI"][len("unix://"):])
    connection.request(method, target, body=body)
    print(connection.getresponse().read().decode().replace("\n", "\\n"))

version = "api-version=" + os.environ["IOTEDGE_APIVERSION"]
generation = os.environ["IOTEDGE_MODULEGENERATIONID"]
call("GET", "/trust-bundle?" + version)
call("POST", "/modules/" + os.environ["IOTEDGE_MODULEID"] + "/genid/" + generation + "/sign?" + version,
     '{"keyId":"primary","algo":"HMACSHA256","data":"aGVsbG8="}')
call("POST", "/modules/alpha/genid/" + generation + "/sign?" + version, '{"data":"aGVsbG8="}')
"#;

fn deployment(modules: Value) -> Value {
    json!({"modulesContent": {
        "$edgeAgent": {"properties.desired": {
            "schemaVersion": "1.1",
            "runtime": {"type": "process", "settings": {}},
            "systemModules": {
                "edgeAgent": {"type": "docker", "settings": {"image": "mcr.microsoft.com/azureiotedge-agent:1.5"}},
                "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always",
                            "settings": {"image": "mcr.microsoft.com/azureiotedge-hub:1.5"}}
            },
            "modules": modules
        }},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}}},
        "alpha": {"properties.desired": {"greeting": "hello"}}
    }})
}

/// Waits until the hub's `$edgeAgent` twin reports `desired.$version` applied with `code`, and
/// returns the reported properties.
fn wait_for_report(
    hub: &Hub,
    edge: &Edge,
    device: &str,
    code: u64,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    wait_for("the $edgeAgent reported properties", || {
        let twin = agent_twin(hub, device);
        let desired_version = twin.pointer("/properties/desired/$version").cloned();
        let reported = twin["properties"]["reported"].clone();
        let applied = reported.get("lastDesiredVersion").cloned() == desired_version
            && reported.pointer("/lastDesiredStatus/code") == Some(&json!(code));
        if applied && accept(&reported) {
            Ok(reported)
        } else {
            Err(format!(
                "desired version {desired_version:?}, reported {reported}\nedge log tail:\n{}",
                tail(&edge.log(), 15)
            ))
        }
    })
}

fn module_status<'a>(reported: &'a Value, module: &str) -> &'a Value {
    &reported["modules"][module]["runtimeStatus"]
}

#[test]
fn process_modules_are_deployed_updated_restarted_and_survive_an_offline_reboot() {
    let mut hub = Hub::start(&next_address(35, &ADDRESSES));
    let device = "edge-e2e";
    hub.cli_ok(&["device", "create", device, "--edge"]);
    let connection_string = hub
        .cli_ok(&["device", "connection-string", device])
        .trim()
        .to_owned();
    let temp = tempfile::tempdir().expect("temporary directory");
    let directory = temp.path().to_path_buf();
    let data_dir = directory.join("edge");
    let config = data_dir.join("config.toml");
    let init = |force: bool| {
        let mut command = Command::new(outpost_binary());
        command
            .args(["edge", "init", "--connection-string", &connection_string])
            .arg("--ca-file")
            .arg(hub.ca_file())
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--config")
            .arg(&config)
            .args(["--gateway-hostname", "edge-e2e.local", "--no-edge-hub"]);
        if force {
            command.arg("--force");
        }
        command.output().expect("run outpost edge init")
    };
    let first = init(false);
    assert!(
        first.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = init(false);
    assert!(!again.status.success(), "init must not overwrite silently");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(init(true).status.success(), "init --force overwrites");

    let mut edge = Edge {
        config: config.clone(),
        log: directory.join("edge.log"),
        child: None,
    };
    edge.start();

    // Two process modules.
    let modules = json!({
        "alpha": process_module(&directory, "alpha", "hello from"),
        "beta": process_module(&directory, "beta", "beta version 1"),
        "gamma": workload_module(&directory),
    });
    set_modules(&hub, &directory, device, &deployment(modules.clone()), &[]);
    let reported = wait_for_report(&hub, &edge, device, 200, |reported| {
        module_status(reported, "alpha") == "running"
            && module_status(reported, "beta") == "running"
    });
    assert_eq!(
        reported["systemModules"]["edgeHub"]["runtimeStatus"],
        "stopped"
    );
    assert_eq!(
        reported["systemModules"]["edgeAgent"]["runtimeStatus"],
        "running"
    );
    assert_eq!(reported["runtime"]["type"], "process");
    assert_eq!(reported["modules"]["alpha"]["restartCount"], 0);
    assert_eq!(reported["modules"]["alpha"]["settings"]["path"], "/bin/sh");
    assert_eq!(starts(&directory, "alpha").len(), 1);
    assert_eq!(starts(&directory, "beta").len(), 1);
    let alpha_started = reported["modules"]["alpha"]["lastStartTimeUtc"].clone();
    let logs = edge.cli_ok(&["logs", "alpha"]);
    assert!(
        logs.contains("hello from alpha edge-e2e edge-e2e.local"),
        "the module got the IOTEDGE_* environment: {logs}"
    );
    let identities = hub.cli_ok(&["module", "list", device, "--output", "json"]);
    let identities: Value = serde_json::from_str(&identities).expect("module list JSON");
    let module_ids: Vec<&str> = identities
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|module| module["moduleId"].as_str())
        .collect();
    assert!(
        module_ids.contains(&"alpha") && module_ids.contains(&"beta"),
        "{module_ids:?}"
    );
    // The workload socket signs with the module's own key and refuses to act as another module.
    let workload = wait_for("the workload calls of gamma", || {
        let text = std::fs::read_to_string(directory.join("gamma.out")).unwrap_or_default();
        if text.contains("done") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    let lines: Vec<&str> = workload.lines().collect();
    assert!(
        lines[0].contains("BEGIN CERTIFICATE"),
        "trust bundle: {workload}"
    );
    let gamma_module = hub.cli_ok(&["module", "show", device, "gamma", "--output", "json"]);
    let gamma_module: Value = serde_json::from_str(&gamma_module).expect("module JSON");
    let gamma_key = iothub_auth::SymmetricKey::from_base64(
        gamma_module["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .expect("gamma key"),
    )
    .expect("key");
    let digest: Value = serde_json::from_str(lines[1]).expect("sign answer");
    assert_eq!(digest["digest"], gamma_key.sign_to_base64(b"hello"));
    assert!(
        lines[2].contains("cannot act as module alpha"),
        "{workload}"
    );

    let sockets = data_dir.join("mnt");
    assert!(sockets.join("alpha.sock").exists() && sockets.join("beta.sock").exists());

    // Change beta only: beta is recreated, alpha keeps running untouched.
    let mut changed = modules.clone();
    changed["beta"] = process_module(&directory, "beta", "beta version 2");
    set_modules(&hub, &directory, device, &deployment(changed.clone()), &[]);
    wait_for("beta to be recreated", || {
        let beta = starts(&directory, "beta");
        if beta.len() == 2 {
            Ok(())
        } else {
            Err(format!("beta starts {beta:?}"))
        }
    });
    let reported = wait_for_report(&hub, &edge, device, 200, |reported| {
        module_status(reported, "beta") == "running"
    });
    assert_eq!(
        starts(&directory, "alpha").len(),
        1,
        "alpha was not touched"
    );
    assert_eq!(
        reported["modules"]["alpha"]["lastStartTimeUtc"],
        alpha_started
    );
    assert!(
        edge.cli_ok(&["logs", "beta", "--tail", "1"])
            .contains("beta version 2")
    );

    // Kill alpha: restarted after its back-off, and the restart is counted.
    let alpha_pid = starts(&directory, "alpha")[0];
    assert!(process_alive(alpha_pid));
    assert!(
        Command::new("kill")
            .args(["-KILL", &alpha_pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let reported = wait_for_report(&hub, &edge, device, 200, |reported| {
        module_status(reported, "alpha") == "running"
            && reported["modules"]["alpha"]["restartCount"] == 1
    });
    assert_eq!(reported["modules"]["alpha"]["exitCode"], 137);
    assert_eq!(starts(&directory, "alpha").len(), 2);
    let status = edge.status().expect("edge list answers");
    let alpha = status["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .find(|module| module["name"] == "alpha")
        .expect("alpha listed")
        .clone();
    assert_eq!(alpha["restartCount"], 1);
    assert_eq!(alpha["runtimeStatus"], "running");
    let table = edge.cli_ok(&["list"]);
    assert!(
        table.contains("RESTARTS") && table.contains("alpha"),
        "{table}"
    );

    // An operator restart through the management socket.
    edge.cli_ok(&["restart", "beta"]);
    wait_for("beta to restart on request", || {
        let beta = starts(&directory, "beta");
        if beta.len() == 3 {
            Ok(())
        } else {
            Err(format!("beta starts {beta:?}"))
        }
    });

    // An invalid deployment is refused with a 400-class code; the modules stay as they are.
    let mut invalid = changed.clone();
    invalid["beta"]["restartPolicy"] = json!("sometimes");
    set_modules(
        &hub,
        &directory,
        device,
        &deployment(invalid),
        &["--no-validate"],
    );
    let reported = wait_for_report(&hub, &edge, device, 400, |_| true);
    let description = reported["lastDesiredStatus"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(description.contains("restartPolicy"), "{description}");
    assert_eq!(starts(&directory, "alpha").len(), 2);
    assert_eq!(starts(&directory, "beta").len(), 3);

    // The hub goes away, the runtime restarts: the modules come back from the stored deployment.
    let running: Vec<u32> = [
        *starts(&directory, "alpha").last().expect("alpha pid"),
        *starts(&directory, "beta").last().expect("beta pid"),
    ]
    .to_vec();
    hub.kill_9();
    edge.stop();
    for pid in &running {
        assert!(
            !process_alive(*pid),
            "module process {pid} stopped with the runtime"
        );
    }
    edge.start();
    wait_for("the modules to come back offline", || {
        let (alpha, beta) = (starts(&directory, "alpha"), starts(&directory, "beta"));
        let status = edge.status();
        let all_running = status.as_ref().is_some_and(|status| {
            status["modules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|module| module["name"] == "alpha" || module["name"] == "beta")
                .all(|module| module["runtimeStatus"] == "running")
        });
        if alpha.len() == 3 && beta.len() == 4 && all_running {
            Ok(status)
        } else {
            Err(format!(
                "alpha {alpha:?} beta {beta:?} status {status:?}\nedge log tail:\n{}",
                tail(&edge.log(), 15)
            ))
        }
    });
    let status = edge.status().expect("edge list answers");
    assert_eq!(status["hubConnected"], false);
    let beta_logs = edge.cli_ok(&["logs", "beta", "--tail", "1"]);
    assert!(
        beta_logs.contains("beta version 2"),
        "the last valid deployment: {beta_logs}"
    );
    edge.stop();
}

/// The image of the Docker module: the host's `/bin/sh` and `sleep` with their libraries,
/// imported locally (no registry is reachable).
const DOCKER_TEST_IMAGE: &str = "outpost-edge-test-sh:latest";

fn ensure_docker_test_image() {
    assert!(
        Path::new("/var/run/docker.sock").exists(),
        "this test needs the Docker Engine at /var/run/docker.sock; install and start Docker"
    );
    let present = Command::new("docker")
        .args(["image", "inspect", DOCKER_TEST_IMAGE])
        .output()
        .expect("run docker");
    if present.status.success() {
        return;
    }
    let script = format!(
        "set -e; files=\"/bin/sh /bin/sleep $(ldd /bin/sh /bin/sleep | grep -o '/[^ ]*' | sort -u | tr '\\n' ' ')\"; \
         tar -chf - $files 2>/dev/null | docker import - {DOCKER_TEST_IMAGE}"
    );
    let output = Command::new("/bin/sh")
        .args(["-c", &script])
        .output()
        .expect("import the test image");
    assert!(
        output.status.success(),
        "importing {DOCKER_TEST_IMAGE} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes the containers a Docker-runtime edge device left (the runtime stops them at
/// shutdown but keeps them, as Docker keeps exited containers).
struct ContainerCleanup {
    owner: String,
}

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        let filter = format!("label=io.outpost.owner={}", self.owner);
        if let Ok(output) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}

#[test]
fn a_docker_module_and_a_process_module_run_side_by_side() {
    ensure_docker_test_image();
    let hub = Hub::start(&next_address(35, &ADDRESSES));
    let device = format!("edge-docker-{}", std::process::id());
    let _cleanup = ContainerCleanup {
        owner: format!("outpost-{device}"),
    };
    hub.cli_ok(&["device", "create", &device, "--edge"]);
    let connection_string = hub
        .cli_ok(&["device", "connection-string", &device])
        .trim()
        .to_owned();
    let temp = tempfile::tempdir().expect("temporary directory");
    let directory = temp.path().to_path_buf();
    let mut edge = init_edge(
        &hub,
        &connection_string,
        &directory,
        &["--runtime", "docker", "--no-edge-hub"],
    );
    edge.start();

    let create_options = json!({"Cmd": ["/bin/sh", "-c",
        "echo \"delta $IOTEDGE_MODULEID $IOTEDGE_DEVICEID $IOTEDGE_WORKLOADURI\"; exec sleep 600"]});
    let modules = json!({
        "delta": {
            "type": "docker",
            "status": "running",
            "restartPolicy": "always",
            "imagePullPolicy": "never",
            "settings": {"image": DOCKER_TEST_IMAGE, "createOptions": create_options.to_string()}
        },
        "alpha": process_module(&directory, "alpha", "process"),
    });
    set_modules(&hub, &directory, &device, &deployment(modules), &[]);
    let reported = wait_for_report(&hub, &edge, &device, 200, |reported| {
        module_status(reported, "alpha") == "running"
            && module_status(reported, "delta") == "running"
    });
    assert_eq!(reported["runtime"]["type"], "docker");
    assert_eq!(
        reported["modules"]["delta"]["settings"]["image"],
        DOCKER_TEST_IMAGE
    );
    assert!(
        reported["modules"]["delta"]["settings"]["imageHash"]
            .as_str()
            .is_some_and(|hash| hash.starts_with("sha256:"))
    );
    let logs = wait_for("the Docker module's output", || {
        let logs = edge.cli_ok(&["logs", "delta"]);
        if logs.contains("delta") {
            Ok(logs)
        } else {
            Err(logs)
        }
    });
    assert!(
        logs.contains(&format!(
            "delta delta {device} unix:///var/run/iotedge/workload.sock"
        )),
        "the container got the IOTEDGE_* environment and its workload socket: {logs}"
    );
    assert_eq!(starts(&directory, "alpha").len(), 1);
    edge.stop();
}
