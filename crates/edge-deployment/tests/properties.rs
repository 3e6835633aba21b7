//! Property tests: domain → wire → JSON → domain round trips, and what the configuration hash
//! does and does not depend on.

use std::collections::BTreeMap;

use edge_deployment::{
    AgentDeployment, DesiredStatus, DockerSettings, EnvVarName, ImagePullPolicy, ImageReference,
    ModuleKind, ModuleName, ModuleSpec, ProcessSettings, RestartPolicy, RuntimeKind,
    RuntimeSettings, SchemaVersion,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arbitrary_status() -> impl Strategy<Value = DesiredStatus> {
    prop_oneof![Just(DesiredStatus::Running), Just(DesiredStatus::Stopped)]
}

fn arbitrary_restart_policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Never),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::OnUnhealthy),
        Just(RestartPolicy::Always),
    ]
}

fn arbitrary_pull_policy() -> impl Strategy<Value = ImagePullPolicy> {
    prop_oneof![
        Just(ImagePullPolicy::OnCreate),
        Just(ImagePullPolicy::Never)
    ]
}

fn arbitrary_create_options() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        "[A-Za-z]{1,10}",
        prop_oneof![
            "[ -~]{0,700}".prop_map(Value::String),
            any::<i32>().prop_map(|number| json!(number)),
            prop::collection::vec("[a-z:/0-9]{1,20}", 0..4).prop_map(|items| json!(items)),
        ],
        0..6,
    )
    .prop_map(|map| map.into_iter().collect())
}

fn arbitrary_kind() -> impl Strategy<Value = ModuleKind> {
    let docker = (
        "[a-z]{1,8}(/[a-z]{1,8})?(:[a-z0-9.]{1,5})?",
        arbitrary_create_options(),
        proptest::option::of("sha256:[0-9a-f]{8}"),
    )
        .prop_map(|(image, create_options, digest)| {
            ModuleKind::Docker(DockerSettings {
                image: ImageReference::parse(&image).unwrap(),
                create_options,
                digest,
            })
        });
    let process = (
        "/[a-z]{1,8}(/[a-z]{1,8})?",
        prop::collection::vec("[ -~]{0,8}", 0..4),
        proptest::option::of("/[a-z]{1,8}"),
        proptest::option::of("[a-z0-9]{1,8}"),
    )
        .prop_map(|(path, args, working_dir, user)| {
            ModuleKind::Process(ProcessSettings {
                path,
                args,
                working_dir,
                user,
            })
        });
    prop_oneof![docker, process]
}

fn arbitrary_spec(name: ModuleName) -> impl Strategy<Value = ModuleSpec> {
    (
        proptest::option::of("[0-9.a-z]{1,6}"),
        arbitrary_status(),
        arbitrary_restart_policy(),
        any::<u32>(),
        arbitrary_pull_policy(),
        arbitrary_kind(),
        prop::collection::btree_map("[A-Z_]{1,6}", "[ -~é]{0,10}", 0..4),
    )
        .prop_map(
            move |(
                version,
                status,
                restart_policy,
                startup_order,
                image_pull_policy,
                kind,
                env,
            )| {
                ModuleSpec {
                    name: name.clone(),
                    version,
                    status,
                    restart_policy,
                    startup_order,
                    image_pull_policy,
                    kind,
                    env: env
                        .into_iter()
                        .map(|(variable, value)| (EnvVarName::new(&variable).unwrap(), value))
                        .collect(),
                }
            },
        )
}

fn arbitrary_deployment() -> impl Strategy<Value = AgentDeployment> {
    (
        arbitrary_spec(ModuleName::edge_agent()),
        arbitrary_spec(ModuleName::edge_hub()),
        prop::collection::btree_set("[a-z][a-z0-9_.-]{0,6}", 0..4).prop_flat_map(|names| {
            names
                .into_iter()
                .filter(|name| name != "edgeHub" && name != "edgeAgent")
                .map(|name| arbitrary_spec(ModuleName::new(&name).unwrap()))
                .collect::<Vec<_>>()
        }),
    )
        .prop_map(|(edge_agent, edge_hub, modules)| AgentDeployment {
            schema_version: SchemaVersion::new(1, 1),
            runtime: RuntimeSettings {
                kind: RuntimeKind::Docker,
                min_docker_version: Some("v1.25".to_owned()),
                logging_options: None,
                registry_credentials: BTreeMap::new(),
            },
            edge_agent,
            edge_hub,
            modules: modules
                .into_iter()
                .map(|spec| (spec.name.clone(), spec))
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Writing a deployment out as manifest JSON (with chunked createOptions) and reading it
    /// back gives the same deployment and the same hashes.
    #[test]
    fn deployment_round_trips_through_json(deployment in arbitrary_deployment()) {
        let text = serde_json::to_string(&deployment.to_wire()).unwrap();
        let reparsed = AgentDeployment::from_json(&text).unwrap();
        for (original, read_back) in deployment.supervised_modules().zip(reparsed.supervised_modules()) {
            prop_assert_eq!(original.config_hash(), read_back.config_hash());
        }
        prop_assert_eq!(reparsed, deployment);
    }

    /// Status, restart policy, startup order and pull policy never change the hash; every
    /// hashed field does.
    #[test]
    fn hash_covers_exactly_the_recreate_fields(
        spec in arbitrary_spec(ModuleName::new("m").unwrap()),
        status in arbitrary_status(),
        restart_policy in arbitrary_restart_policy(),
        startup_order in any::<u32>(),
        image_pull_policy in arbitrary_pull_policy(),
    ) {
        let original_hash = spec.config_hash();
        let mut retuned = spec.clone();
        retuned.status = status;
        retuned.restart_policy = restart_policy;
        retuned.startup_order = startup_order;
        retuned.image_pull_policy = image_pull_policy;
        prop_assert_eq!(retuned.config_hash(), original_hash);

        let mut new_version = spec.clone();
        new_version.version = Some(format!("{}-next", spec.version.clone().unwrap_or_default()));
        prop_assert_ne!(new_version.config_hash(), original_hash);

        let mut new_env = spec.clone();
        new_env.env.insert(EnvVarName::new("ADDED_BY_TEST").unwrap(), "1".to_owned());
        prop_assert_ne!(new_env.config_hash(), original_hash);

        let mut new_kind = spec.clone();
        match &mut new_kind.kind {
            ModuleKind::Docker(docker) => {
                docker.create_options.insert("AddedByTest".to_owned(), json!(true));
            }
            ModuleKind::Process(process) => process.args.push("--added-by-test".to_owned()),
        }
        prop_assert_ne!(new_kind.config_hash(), original_hash);
    }

    /// The hash is the same however createOptions were split into chunks.
    #[test]
    fn hash_ignores_create_options_chunking(
        options in arbitrary_create_options(),
        split_points in prop::collection::btree_set(1_usize..400, 0..7),
    ) {
        let text = serde_json::to_string(&options).unwrap();
        let characters: Vec<char> = text.chars().collect();
        let mut settings = json!({"image": "alpine:3"});
        let mut start = 0;
        let mut bounds: Vec<usize> = split_points.into_iter().filter(|point| *point < characters.len()).collect();
        bounds.push(characters.len());
        for (index, end) in bounds.into_iter().enumerate() {
            let chunk: String = characters[start..end].iter().collect();
            let key = if index == 0 { "createOptions".to_owned() } else { format!("createOptions{index:02}") };
            settings[key] = Value::String(chunk);
            start = end;
        }
        let chunked = json!({"schemaVersion": "1.1", "runtime": {"type": "docker"},
            "systemModules": {
                "edgeAgent": {"type": "docker", "settings": {"image": "agent"}},
                "edgeHub": {"type": "docker", "settings": settings}}});
        let whole = json!({"schemaVersion": "1.1", "runtime": {"type": "docker"},
            "systemModules": {
                "edgeAgent": {"type": "docker", "settings": {"image": "agent"}},
                "edgeHub": {"type": "docker", "settings": {"image": "alpine:3", "createOptions": Value::Object(options)}}}});
        let chunked = AgentDeployment::from_json(&chunked.to_string()).unwrap();
        let whole = AgentDeployment::from_json(&whole.to_string()).unwrap();
        prop_assert_eq!(chunked.edge_hub.config_hash(), whole.edge_hub.config_hash());
    }
}
