//! The container create body of a module: createOptions merged with what the runtime adds (pure).

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::ContainerCreateBody;
use serde_json::{Map, Value, json};

/// The container label that marks containers this runtime owns; its value is the owner name.
pub const OWNER_LABEL: &str = "io.outpost.owner";
/// The container label holding the module name.
pub const MODULE_LABEL: &str = "io.outpost.module";
/// The container label holding the module's [`edge_deployment::ConfigHash`] in hex.
pub const CONFIG_HASH_LABEL: &str = "io.outpost.config-hash";
/// The container label holding `settings.image` as the deployment wrote it (`$upstream` kept).
pub const ORIGINAL_IMAGE_LABEL: &str = "io.outpost.original-image";

/// What the runtime adds to a module's createOptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerAdditions {
    /// The image to run, `$upstream` already resolved; replaces any `Image` in createOptions.
    pub image: String,
    /// The module's environment (deployment `env` and `IOTEDGE_*`); wins over createOptions `Env`.
    pub environment: BTreeMap<String, String>,
    /// Ownership labels; win over createOptions `Labels`.
    pub labels: BTreeMap<String, String>,
    /// A bind mount of the module's workload socket: (host path, path in the container).
    pub workload_mount: Option<(String, String)>,
    /// The network to attach to when createOptions name no `HostConfig.NetworkMode`.
    pub network: Option<NetworkAttachment>,
}

/// A network the container joins, with its aliases there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkAttachment {
    pub name: String,
    pub aliases: Vec<String>,
}

/// Why createOptions cannot be merged into a container create body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateOptionsProblem {
    #[error("createOptions.{path} must be {expected}")]
    WrongType {
        path: &'static str,
        expected: &'static str,
    },
    #[error("createOptions do not fit Docker's container create body at {path}: {message}")]
    NotAContainerBody { path: String, message: String },
}

/// Merges createOptions with the runtime's additions into the JSON body of Docker's
/// `POST /containers/create`.
///
/// - `Image` is the module's image.
/// - `Env`: createOptions entries first, minus the names the module environment sets; then the
///   module environment sorted by name. So deployment `env` and `IOTEDGE_*` win.
/// - `Labels`: createOptions labels, then the ownership labels over them.
/// - `HostConfig.RestartPolicy` is always `no` and `HostConfig.AutoRemove` always false: the
///   agent restarts modules (with back-off and visible state), not Docker, and a container must
///   outlive its exit so that its exit code can be read.
/// - The workload socket is bind-mounted through `HostConfig.Mounts` (a missing socket fails the
///   create instead of Docker creating a directory in its place); any other mount or bind at the
///   same container path is dropped.
/// - The network, when set and createOptions name no `NetworkMode`, becomes `NetworkMode` with an
///   endpoint carrying the aliases (unless createOptions configure that endpoint themselves).
pub(crate) fn container_create_document(
    create_options: &Map<String, Value>,
    additions: &ContainerAdditions,
) -> Result<Map<String, Value>, CreateOptionsProblem> {
    let mut document = create_options.clone();
    document.insert("Image".to_owned(), Value::String(additions.image.clone()));

    let option_env = string_array(&document, "Env", "Env", "an array of strings")?;
    let mut env: Vec<Value> = option_env
        .into_iter()
        .filter(|entry| {
            let name = entry
                .split_once('=')
                .map_or(entry.as_str(), |(name, _)| name);
            !additions.environment.contains_key(name)
        })
        .map(Value::String)
        .collect();
    env.extend(
        additions
            .environment
            .iter()
            .map(|(name, value)| Value::String(format!("{name}={value}"))),
    );
    document.insert("Env".to_owned(), Value::Array(env));

    let mut labels = match document.remove("Labels") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(labels)) if labels.values().all(Value::is_string) => labels,
        Some(_) => {
            return Err(CreateOptionsProblem::WrongType {
                path: "Labels",
                expected: "an object of strings",
            });
        }
    };
    for (name, value) in &additions.labels {
        labels.insert(name.clone(), Value::String(value.clone()));
    }
    document.insert("Labels".to_owned(), Value::Object(labels));

    let mut host_config = match document.remove("HostConfig") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(host_config)) => host_config,
        Some(_) => {
            return Err(CreateOptionsProblem::WrongType {
                path: "HostConfig",
                expected: "an object",
            });
        }
    };
    host_config.insert("RestartPolicy".to_owned(), json!({"Name": "no"}));
    host_config.insert("AutoRemove".to_owned(), Value::Bool(false));

    if let Some((source, target)) = &additions.workload_mount {
        let binds = string_array(
            &host_config,
            "Binds",
            "HostConfig.Binds",
            "an array of strings",
        )?;
        let binds: Vec<Value> = binds
            .into_iter()
            .filter(|bind| bind.split(':').nth(1) != Some(target.as_str()))
            .map(Value::String)
            .collect();
        if binds.is_empty() {
            host_config.remove("Binds");
        } else {
            host_config.insert("Binds".to_owned(), Value::Array(binds));
        }
        let mut mounts = match host_config.remove("Mounts") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(mounts)) => mounts,
            Some(_) => {
                return Err(CreateOptionsProblem::WrongType {
                    path: "HostConfig.Mounts",
                    expected: "an array",
                });
            }
        };
        mounts.retain(|mount| mount.get("Target").and_then(Value::as_str) != Some(target));
        mounts.push(json!({
            "Type": "bind",
            "Source": source,
            "Target": target,
            "ReadOnly": false,
        }));
        host_config.insert("Mounts".to_owned(), Value::Array(mounts));
    }

    if let Some(network) = &additions.network
        && !host_config.contains_key("NetworkMode")
    {
        host_config.insert(
            "NetworkMode".to_owned(),
            Value::String(network.name.clone()),
        );
        let networking = document
            .entry("NetworkingConfig")
            .or_insert_with(|| json!({}));
        let Value::Object(networking) = networking else {
            return Err(CreateOptionsProblem::WrongType {
                path: "NetworkingConfig",
                expected: "an object",
            });
        };
        let endpoints = networking
            .entry("EndpointsConfig")
            .or_insert_with(|| json!({}));
        let Value::Object(endpoints) = endpoints else {
            return Err(CreateOptionsProblem::WrongType {
                path: "NetworkingConfig.EndpointsConfig",
                expected: "an object",
            });
        };
        if !endpoints.contains_key(&network.name) {
            let aliases: BTreeSet<&String> = network.aliases.iter().collect();
            endpoints.insert(network.name.clone(), json!({ "Aliases": aliases }));
        }
    }
    document.insert("HostConfig".to_owned(), Value::Object(host_config));
    Ok(document)
}

/// Reads the merged document into bollard's typed body, naming the path of a misfit value.
pub(crate) fn container_create_body(
    document: Map<String, Value>,
) -> Result<ContainerCreateBody, CreateOptionsProblem> {
    serde_path_to_error::deserialize(Value::Object(document)).map_err(|error| {
        CreateOptionsProblem::NotAContainerBody {
            path: error.path().to_string(),
            message: error.inner().to_string(),
        }
    })
}

fn string_array(
    object: &Map<String, Value>,
    key: &str,
    path: &'static str,
    expected: &'static str,
) -> Result<Vec<String>, CreateOptionsProblem> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or(CreateOptionsProblem::WrongType { path, expected }),
        Some(_) => Err(CreateOptionsProblem::WrongType { path, expected }),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn additions() -> ContainerAdditions {
        ContainerAdditions {
            image: "registry.local/sensor:1.0".to_owned(),
            environment: BTreeMap::from([
                ("IOTEDGE_MODULEID".to_owned(), "sensor".to_owned()),
                ("LOG_LEVEL".to_owned(), "debug".to_owned()),
            ]),
            labels: BTreeMap::from([
                (OWNER_LABEL.to_owned(), "outpost".to_owned()),
                (MODULE_LABEL.to_owned(), "sensor".to_owned()),
            ]),
            workload_mount: Some((
                "/var/lib/outpost/mnt/sensor.sock".to_owned(),
                "/var/run/iotedge/workload.sock".to_owned(),
            )),
            network: Some(NetworkAttachment {
                name: "outpost".to_owned(),
                aliases: vec!["edge-1.local".to_owned()],
            }),
        }
    }

    fn check(create_options: Value, additions: &ContainerAdditions, expect: Expect) {
        let Value::Object(create_options) = create_options else {
            panic!("createOptions must be an object")
        };
        let rendered =
            match container_create_document(&create_options, additions).and_then(|document| {
                let body = container_create_body(document.clone())?;
                // The typed body must carry what the document says (nothing known is lost).
                assert!(body.image.is_some());
                Ok(document)
            }) {
                Ok(document) => serde_json::to_string_pretty(&Value::Object(document)).unwrap(),
                Err(error) => format!("error: {error}"),
            };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn empty_create_options_get_the_runtime_additions() {
        check(
            json!({}),
            &additions(),
            expect![[r#"
                {
                  "Env": [
                    "IOTEDGE_MODULEID=sensor",
                    "LOG_LEVEL=debug"
                  ],
                  "HostConfig": {
                    "AutoRemove": false,
                    "Mounts": [
                      {
                        "ReadOnly": false,
                        "Source": "/var/lib/outpost/mnt/sensor.sock",
                        "Target": "/var/run/iotedge/workload.sock",
                        "Type": "bind"
                      }
                    ],
                    "NetworkMode": "outpost",
                    "RestartPolicy": {
                      "Name": "no"
                    }
                  },
                  "Image": "registry.local/sensor:1.0",
                  "Labels": {
                    "io.outpost.module": "sensor",
                    "io.outpost.owner": "outpost"
                  },
                  "NetworkingConfig": {
                    "EndpointsConfig": {
                      "outpost": {
                        "Aliases": [
                          "edge-1.local"
                        ]
                      }
                    }
                  }
                }"#]],
        );
    }

    #[test]
    fn create_options_are_kept_and_the_runtime_wins_on_conflicts() {
        check(
            json!({
                "Image": "ignored:1",
                "Cmd": ["/bin/sh", "-c", "env"],
                "Env": ["A=1", "LOG_LEVEL=info", "IOTEDGE_MODULEID=spoofed", "BARE"],
                "Labels": {"team": "blue", "io.outpost.owner": "someone-else"},
                "ExposedPorts": {"8883/tcp": {}},
                "HostConfig": {
                    "RestartPolicy": {"Name": "always"},
                    "AutoRemove": true,
                    "NetworkMode": "host",
                    "PortBindings": {"8883/tcp": [{"HostPort": "8883"}]},
                    "Binds": ["/data:/data", "/tmp/old.sock:/var/run/iotedge/workload.sock"],
                    "Mounts": [{"Type": "bind", "Source": "/x", "Target": "/var/run/iotedge/workload.sock"}]
                },
                "Healthcheck": {"Test": ["CMD-SHELL", "exit 0"], "Interval": 1000000000}
            }),
            &additions(),
            expect![[r#"
                {
                  "Cmd": [
                    "/bin/sh",
                    "-c",
                    "env"
                  ],
                  "Env": [
                    "A=1",
                    "BARE",
                    "IOTEDGE_MODULEID=sensor",
                    "LOG_LEVEL=debug"
                  ],
                  "ExposedPorts": {
                    "8883/tcp": {}
                  },
                  "Healthcheck": {
                    "Interval": 1000000000,
                    "Test": [
                      "CMD-SHELL",
                      "exit 0"
                    ]
                  },
                  "HostConfig": {
                    "AutoRemove": false,
                    "Binds": [
                      "/data:/data"
                    ],
                    "Mounts": [
                      {
                        "ReadOnly": false,
                        "Source": "/var/lib/outpost/mnt/sensor.sock",
                        "Target": "/var/run/iotedge/workload.sock",
                        "Type": "bind"
                      }
                    ],
                    "NetworkMode": "host",
                    "PortBindings": {
                      "8883/tcp": [
                        {
                          "HostPort": "8883"
                        }
                      ]
                    },
                    "RestartPolicy": {
                      "Name": "no"
                    }
                  },
                  "Image": "registry.local/sensor:1.0",
                  "Labels": {
                    "io.outpost.module": "sensor",
                    "io.outpost.owner": "outpost",
                    "team": "blue"
                  }
                }"#]],
        );
    }

    #[test]
    fn without_mount_or_network_nothing_is_added_there() {
        let mut bare = additions();
        bare.workload_mount = None;
        bare.network = None;
        check(
            json!({"NetworkingConfig": {"EndpointsConfig": {"other": {}}}}),
            &bare,
            expect![[r#"
                {
                  "Env": [
                    "IOTEDGE_MODULEID=sensor",
                    "LOG_LEVEL=debug"
                  ],
                  "HostConfig": {
                    "AutoRemove": false,
                    "RestartPolicy": {
                      "Name": "no"
                    }
                  },
                  "Image": "registry.local/sensor:1.0",
                  "Labels": {
                    "io.outpost.module": "sensor",
                    "io.outpost.owner": "outpost"
                  },
                  "NetworkingConfig": {
                    "EndpointsConfig": {
                      "other": {}
                    }
                  }
                }"#]],
        );
    }

    proptest::proptest! {
        /// Whatever createOptions say, the module environment and our labels win, every other
        /// createOptions entry survives in order, and Docker's restart policy stays off.
        #[test]
        fn the_runtime_wins_and_nothing_else_is_lost(
            option_env in proptest::collection::vec(("[A-D]{1,2}", "[a-z]{0,3}"), 0..8),
            module_env in proptest::collection::btree_map("[A-D]{1,2}", "[a-z]{0,3}", 0..5),
            option_labels in proptest::collection::btree_map("[a-c.]{1,3}", "[a-z]{0,3}", 0..5),
            our_labels in proptest::collection::btree_map("[a-c.]{1,3}", "[a-z]{0,3}", 0..3),
        ) {
            let option_env: Vec<String> =
                option_env.iter().map(|(name, value)| format!("{name}={value}")).collect();
            let create_options = json!({
                "Env": option_env,
                "Labels": option_labels,
                "HostConfig": {"RestartPolicy": {"Name": "always"}},
            });
            let Value::Object(create_options) = create_options else { unreachable!() };
            let mut additions = additions();
            additions.environment = module_env.clone();
            additions.labels = our_labels.clone();
            let document = container_create_document(&create_options, &additions).unwrap();
            let body = container_create_body(document).unwrap();

            let expected_env: Vec<String> = option_env
                .iter()
                .filter(|entry| !module_env.contains_key(entry.split_once('=').unwrap().0))
                .cloned()
                .chain(module_env.iter().map(|(name, value)| format!("{name}={value}")))
                .collect();
            proptest::prop_assert_eq!(body.env.unwrap(), expected_env);
            let mut expected_labels = option_labels.clone();
            expected_labels.extend(our_labels);
            let labels: BTreeMap<String, String> = body.labels.unwrap().into_iter().collect();
            proptest::prop_assert_eq!(labels, expected_labels);
            let host_config = body.host_config.unwrap();
            proptest::prop_assert_eq!(
                host_config.restart_policy.and_then(|policy| policy.name).map(|name| name.to_string()),
                Some("no".to_owned())
            );
            proptest::prop_assert_eq!(host_config.auto_remove, Some(false));
            proptest::prop_assert_eq!(body.image.as_deref(), Some("registry.local/sensor:1.0"));
        }
    }

    #[test]
    fn misfit_create_options_are_refused_with_their_path() {
        check(
            json!({"Env": "A=1"}),
            &additions(),
            expect!["error: createOptions.Env must be an array of strings"],
        );
        check(
            json!({"Labels": {"a": 1}}),
            &additions(),
            expect!["error: createOptions.Labels must be an object of strings"],
        );
        check(
            json!({"HostConfig": []}),
            &additions(),
            expect!["error: createOptions.HostConfig must be an object"],
        );
        check(
            json!({"HostConfig": {"Mounts": {}}}),
            &additions(),
            expect!["error: createOptions.HostConfig.Mounts must be an array"],
        );
        check(
            json!({"HostConfig": {"Memory": "lots"}}),
            &additions(),
            expect![
                "error: createOptions do not fit Docker's container create body at HostConfig.Memory: invalid type: string \"lots\", expected i64"
            ],
        );
    }
}
