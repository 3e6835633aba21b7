//! Fixtures for the Docker runtime tests: a tiny local image built from the host's shell (no
//! registry), one runtime per test with its own owner label, and cleanup of every container and
//! network a test made.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    CreateImageOptions, ListContainersOptions, RemoveContainerOptions,
};
use edge_agent::{LogOptions, ModuleRuntime};
use edge_deployment::{
    DesiredStatus, DockerSettings, EnvVarName, ImagePullPolicy, ImageReference, ModuleKind,
    ModuleName, ModuleSpec, RestartPolicy,
};
use edge_docker::{DockerRuntime, DockerRuntimeConfig, OWNER_LABEL};
use edge_process::{EdgeEnvironment, LaunchIdentity, ModuleExit, ModuleIdentities};
use futures_util::StreamExt;
use iothub_types::DeviceId;
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

/// The image every test module runs: the host's `/bin/sh`, `sleep` and `env` with their
/// shared libraries, imported as a one-layer image.
pub const TEST_IMAGE: &str = "outpost-test-sh:latest";

/// The label on containers a test creates behind the runtime's back, for cleanup.
const TEST_RUN_LABEL: &str = "io.outpost.test-run";

/// How long any single wait in these tests may take before the test fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

static IMAGE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static HARNESS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A module identity for every module, with a fixed workload URI.
#[derive(Debug, Clone)]
pub struct TestIdentities {
    pub workload_uri: String,
}

impl ModuleIdentities for TestIdentities {
    async fn launch_identity(&self, module: &ModuleName) -> Result<LaunchIdentity, String> {
        Ok(LaunchIdentity {
            generation_id: format!("gen-{}", module.as_str().len()),
            workload_uri: self.workload_uri.clone(),
        })
    }
}

/// One test's runtime, with an owner label of its own so that tests running at the same time
/// never see each other's containers.
pub struct Harness {
    pub runtime: DockerRuntime<TestIdentities>,
    /// A plain client for checks behind the runtime's back.
    pub docker: Docker,
    /// Unique per harness; part of module names, the owner and network names.
    pub run: String,
    pub owner: String,
    network: Option<String>,
}

/// Connects a plain client, failing the test loudly when Docker is not there.
pub async fn docker_client() -> Docker {
    assert!(
        Path::new(DOCKER_SOCKET).exists(),
        "the edge-docker tests need the Docker Engine at {DOCKER_SOCKET}, which does not exist; \
         install and start Docker (the tests build their own image, no registry is needed)"
    );
    Docker::connect_with_socket(DOCKER_SOCKET, 120, bollard::API_DEFAULT_VERSION)
        .expect("a Docker client")
        .negotiate_version()
        .await
        .expect("the Docker Engine answers on its socket")
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_config(|_| {}, "http://127.0.0.1:15580").await
    }

    /// A harness whose runtime config is adjusted by `adjust` and whose modules get
    /// `workload_uri`.
    pub async fn with_config(
        adjust: impl FnOnce(&mut DockerRuntimeConfig),
        workload_uri: &str,
    ) -> Harness {
        let docker = docker_client().await;
        IMAGE_READY.get_or_init(|| ensure_test_image(&docker)).await;
        let nanos = chrono::Utc::now().timestamp_subsec_nanos();
        let run = format!(
            "{:x}{:x}{}",
            std::process::id(),
            nanos & 0xfffff,
            HARNESS_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let owner = format!("outpost-test-{run}");
        let mut edge = EdgeEnvironment::new(
            DeviceId::new("edge-1").unwrap(),
            "hub.example.net",
            "edge-1.local",
        );
        edge.parent_hostname = None;
        let mut config = DockerRuntimeConfig::new(edge);
        config.owner = owner.clone();
        adjust(&mut config);
        let network = config.network.clone();
        let runtime = DockerRuntime::connect(
            config,
            TestIdentities {
                workload_uri: workload_uri.to_owned(),
            },
        )
        .await
        .expect("the Docker runtime connects");
        Harness {
            runtime,
            docker,
            run,
            owner,
            network,
        }
    }

    /// A module name unique to this harness: `<short>-<run>`.
    pub fn module_name(&self, short: &str) -> ModuleName {
        ModuleName::new(&format!("{short}-{}", self.run)).unwrap()
    }

    /// A running, `always` Docker module of [`TEST_IMAGE`] with these createOptions and env.
    pub fn spec(
        &self,
        name: &ModuleName,
        create_options: Value,
        env: &[(&str, &str)],
    ) -> ModuleSpec {
        let Value::Object(create_options) = create_options else {
            panic!("createOptions must be an object")
        };
        ModuleSpec {
            name: name.clone(),
            version: None,
            status: DesiredStatus::Running,
            restart_policy: RestartPolicy::Always,
            startup_order: 0,
            image_pull_policy: ImagePullPolicy::OnCreate,
            kind: ModuleKind::Docker(DockerSettings {
                image: ImageReference::parse(TEST_IMAGE).unwrap(),
                create_options,
                digest: None,
            }),
            env: env
                .iter()
                .map(|(name, value)| (EnvVarName::new(name).unwrap(), (*value).to_owned()))
                .collect(),
        }
    }

    /// A spec running `script` with `/bin/sh -c`.
    pub fn shell_spec(&self, name: &ModuleName, script: &str) -> ModuleSpec {
        self.spec(
            name,
            serde_json::json!({"Cmd": ["/bin/sh", "-c", script]}),
            &[],
        )
    }

    /// Creates a container behind the runtime's back (cleaned up with the harness).
    pub async fn create_foreign_container(&self, name: &str, labels: &[(&str, &str)]) {
        let mut all_labels: HashMap<String, String> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        all_labels.insert(TEST_RUN_LABEL.to_owned(), self.owner.clone());
        let body = bollard::models::ContainerCreateBody {
            image: Some(TEST_IMAGE.to_owned()),
            cmd: Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                "exit 0".to_owned(),
            ]),
            labels: Some(all_labels),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .expect("a foreign container");
    }

    /// Replaces this harness's run id with `<run>` so that texts can be compared.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.run, "<run>")
    }

    /// The module's whole log as text (the container must have ended, or this waits).
    pub async fn logs(&self, name: &ModuleName, options: LogOptions) -> String {
        let mut logs = self.runtime.logs(name, &options).await.expect("logs");
        let mut text = String::new();
        tokio::time::timeout(WAIT_LIMIT, logs.read_to_string(&mut text))
            .await
            .expect("the log ends in time")
            .expect("the log reads");
        text
    }

    /// Follows the module's log until `needle` appears.
    pub async fn wait_for_output(&self, name: &ModuleName, needle: &str) {
        let options = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let mut logs = self.runtime.logs(name, &options).await.expect("logs");
        let mut seen = Vec::new();
        let mut buffer = [0_u8; 1024];
        tokio::time::timeout(WAIT_LIMIT, async {
            while !String::from_utf8_lossy(&seen).contains(needle) {
                let read = logs.read(&mut buffer).await.expect("the log reads");
                assert!(read > 0, "the log ended without {needle:?}");
                seen.extend_from_slice(&buffer[..read]);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{needle:?} did not appear in the log of {name}"));
    }
}

/// The next exit of module `name` from `exits`.
pub async fn next_exit(
    exits: &mut broadcast::Receiver<ModuleExit>,
    name: &ModuleName,
) -> ModuleExit {
    tokio::time::timeout(WAIT_LIMIT, async {
        loop {
            let exit = exits.recv().await.expect("the exit channel is open");
            if exit.name == *name {
                return exit;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("module {name} did not exit in time"))
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Drop cannot await, and may run while a test panics: clean up on a thread of its own.
        let owner = self.owner.clone();
        let network = self.network.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(remove_everything_of(&owner, network.as_deref()));
        });
        let _ = cleanup.join();
    }
}

async fn remove_everything_of(owner: &str, network: Option<&str>) {
    let Ok(docker) = Docker::connect_with_socket(DOCKER_SOCKET, 120, bollard::API_DEFAULT_VERSION)
    else {
        return;
    };
    let Ok(docker) = docker.negotiate_version().await else {
        return;
    };
    let mut ids = BTreeSet::new();
    for label in [OWNER_LABEL, TEST_RUN_LABEL] {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={owner}")])]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        if let Ok(containers) = docker.list_containers(Some(options)).await {
            ids.extend(containers.into_iter().filter_map(|container| container.id));
        }
    }
    for id in ids {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        let _ = docker.remove_container(&id, Some(options)).await;
    }
    if let Some(network) = network {
        let _ = docker.remove_network(network).await;
    }
}

/// Imports [`TEST_IMAGE`] unless it is there already.
async fn ensure_test_image(docker: &Docker) {
    if docker.inspect_image(TEST_IMAGE).await.is_ok() {
        return;
    }
    let archive = root_filesystem_archive(&["/bin/sh", "/bin/sleep", "/usr/bin/env"]);
    let (repository, tag) = TEST_IMAGE.split_once(':').unwrap();
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repository.to_owned()),
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    let mut progress = docker.create_image(
        Some(options),
        Some(bollard::body_full(archive.into())),
        None,
    );
    while let Some(item) = progress.next().await {
        item.expect("the test image imports");
    }
}

/// A tar archive holding `programs` and the shared libraries `ldd` lists for them, at the same
/// paths as on this host (symbolic links followed).
fn root_filesystem_archive(programs: &[&str]) -> Vec<u8> {
    let mut files: BTreeSet<String> = programs.iter().map(|path| (*path).to_owned()).collect();
    for program in programs {
        let output = std::process::Command::new("ldd")
            .arg(program)
            .output()
            .expect("ldd runs");
        let listing = String::from_utf8_lossy(&output.stdout);
        for line in listing.lines() {
            // `libc.so.6 => /lib/…/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
            let path = match line.split_once("=>") {
                Some((_, target)) => target.trim(),
                None => line.trim(),
            };
            let path = path.split_whitespace().next().unwrap_or("");
            if path.starts_with('/') {
                files.insert(path.to_owned());
            }
        }
    }
    let mut directories = BTreeSet::new();
    for file in &files {
        let mut parent = Path::new(file).parent();
        while let Some(directory) = parent {
            if directory != Path::new("/") {
                directories.insert(directory.to_string_lossy().into_owned());
            }
            parent = directory.parent();
        }
    }
    let mut archive = Vec::new();
    for directory in &directories {
        append_entry(
            &mut archive,
            &format!("{}/", &directory[1..]),
            0o755,
            b'5',
            &[],
        );
    }
    let mut entries: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for file in &files {
        let contents =
            std::fs::read(file).unwrap_or_else(|error| panic!("reading {file}: {error}"));
        entries.insert(file, contents);
    }
    for (file, contents) in entries {
        append_entry(&mut archive, &file[1..], 0o755, b'0', &contents);
    }
    // Two zero blocks end the archive.
    archive.extend_from_slice(&[0_u8; 1024]);
    archive
}

/// Appends one ustar entry (a regular file `0` or a directory `5`).
fn append_entry(archive: &mut Vec<u8>, path: &str, mode: u32, kind: u8, contents: &[u8]) {
    assert!(
        path.len() < 100,
        "{path} is too long for a plain ustar name"
    );
    let mut header = [0_u8; 512];
    header[..path.len()].copy_from_slice(path.as_bytes());
    let mut octal = |offset: usize, width: usize, value: u64| {
        let text = format!("{value:0width$o}\0", width = width - 1);
        header[offset..offset + width].copy_from_slice(text.as_bytes());
    };
    octal(100, 8, u64::from(mode));
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, contents.len() as u64);
    octal(136, 12, 0);
    header[156] = kind;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let checksum: u32 = header.iter().map(|byte| u32::from(*byte)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    archive.extend_from_slice(&header);
    archive.extend_from_slice(contents);
    let padding = (512 - contents.len() % 512) % 512;
    archive.extend(std::iter::repeat_n(0_u8, padding));
}

/// The createOptions map of a spec, for tests that change it.
pub fn create_options_of(spec: &mut ModuleSpec) -> &mut Map<String, Value> {
    match &mut spec.kind {
        ModuleKind::Docker(settings) => &mut settings.create_options,
        ModuleKind::Process(_) => panic!("not a Docker module"),
    }
}
