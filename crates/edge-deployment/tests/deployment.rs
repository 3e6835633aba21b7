//! Manifest validation snapshots: every accepted manifest is rendered as a summary, every refused
//! one as `lastDesiredStatus` code and description.

use std::fmt::Write as _;

use edge_deployment::{
    AgentDeployment, DeploymentError, DeploymentManifest, HubDeployment, LastDesiredStatus,
    ModuleKind, ModuleSpec,
};
use expect_test::{Expect, expect};
use serde_json::{Value, json};

fn render_error(error: &DeploymentError) -> String {
    let status = LastDesiredStatus::from_error(error);
    format!("{} {}", status.code, status.description.unwrap_or_default())
}

fn render_module(output: &mut String, spec: &ModuleSpec) {
    write!(
        output,
        "{} {} status={} restart={} order={} pull={}",
        spec.name,
        spec.type_name(),
        spec.status.as_str(),
        spec.restart_policy.as_str(),
        spec.startup_order,
        spec.image_pull_policy.as_str(),
    )
    .unwrap();
    if let Some(version) = &spec.version {
        write!(output, " version={version}").unwrap();
    }
    match &spec.kind {
        ModuleKind::Docker(docker) => {
            write!(output, " image={}", docker.image).unwrap();
            if let Some(digest) = &docker.digest {
                write!(output, " digest={digest}").unwrap();
            }
            write!(
                output,
                " createOptions={}",
                spec.create_options_json().unwrap_or_default()
            )
            .unwrap();
        }
        ModuleKind::Process(process) => {
            write!(output, " path={} args={:?}", process.path, process.args).unwrap();
            if let Some(working_dir) = &process.working_dir {
                write!(output, " workingDir={working_dir}").unwrap();
            }
            if let Some(user) = &process.user {
                write!(output, " user={user}").unwrap();
            }
        }
    }
    for (name, value) in &spec.env {
        write!(output, " env.{name}={value:?}").unwrap();
    }
    writeln!(output, " hash={}", spec.config_hash().short()).unwrap();
}

fn render_agent(deployment: &AgentDeployment) -> String {
    let mut output = String::new();
    write!(
        output,
        "schema {} runtime {}",
        deployment.schema_version,
        deployment.runtime.kind.as_str()
    )
    .unwrap();
    if let Some(version) = &deployment.runtime.min_docker_version {
        write!(output, " minDockerVersion={version}").unwrap();
    }
    for (name, credential) in &deployment.runtime.registry_credentials {
        write!(output, " registry.{name}={credential:?}").unwrap();
    }
    output.push('\n');
    render_module(&mut output, &deployment.edge_agent);
    for spec in deployment.supervised_modules() {
        render_module(&mut output, spec);
    }
    output
}

fn render_hub(deployment: &HubDeployment) -> String {
    let mut output = format!(
        "schema {} ttl={} maxSizeBytes={:?} mqttBroker={} integrity={}\n",
        deployment.schema_version,
        deployment.store_and_forward.time_to_live_secs,
        deployment.store_and_forward.max_size_bytes,
        deployment.mqtt_broker.is_some(),
        deployment.integrity.is_some(),
    );
    for (name, route) in &deployment.routes {
        writeln!(
            output,
            "route {name} priority={:?} ttl={:?} overflow={:?} sink={:?} {:?}",
            route.priority,
            route.time_to_live_secs,
            route.overflow,
            route.route.sink,
            route.statement
        )
        .unwrap();
    }
    output
}

/// Validates `$edgeAgent` desired properties and snapshots the summary or the refusal.
fn check_agent(desired: Value, expect: Expect) {
    let rendered = match AgentDeployment::from_json(&desired.to_string()) {
        Ok(deployment) => render_agent(&deployment),
        Err(error) => render_error(&error),
    };
    expect.assert_eq(&rendered);
}

/// Validates `$edgeHub` desired properties and snapshots the summary or the refusal.
fn check_hub(desired: Value, expect: Expect) {
    let rendered = match HubDeployment::from_json(&desired.to_string()) {
        Ok(deployment) => render_hub(&deployment),
        Err(error) => render_error(&error),
    };
    expect.assert_eq(&rendered);
}

/// Validates a whole manifest text and snapshots the twins it writes or the refusal.
fn check_manifest(text: &str, expect: Expect) {
    let rendered = match DeploymentManifest::from_json(text) {
        Ok(manifest) => {
            let mut output = render_agent(&manifest.edge_agent);
            output.push_str(&render_hub(&manifest.edge_hub));
            for (module_id, desired) in &manifest.twin_desired_properties {
                writeln!(output, "twin {module_id}: {} keys", desired.len()).unwrap();
            }
            output
        }
        Err(error) => render_error(&error),
    };
    expect.assert_eq(&rendered);
}

fn agent_with_modules(modules: Value) -> Value {
    json!({
        "schemaVersion": "1.1",
        "runtime": {"type": "docker", "settings": {"minDockerVersion": "v1.25"}},
        "systemModules": {
            "edgeAgent": {"type": "docker", "settings": {"image": "mcr.microsoft.com/azureiotedge-agent:1.5", "createOptions": "{}"}},
            "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always", "startupOrder": 0,
                        "settings": {"image": "mcr.microsoft.com/azureiotedge-hub:1.5", "createOptions": ""}}
        },
        "modules": modules,
        "$version": 4
    })
}

fn agent_with_module(module: Value) -> Value {
    agent_with_modules(json!({ "m": module }))
}

const AZURE_SAMPLE: &str = r#"{
  "modulesContent": {
    "$edgeAgent": {
      "properties.desired": {
        "schemaVersion": "1.1",
        "runtime": {
          "type": "docker",
          "settings": {
            "minDockerVersion": "v1.25",
            "loggingOptions": "",
            "registryCredentials": {
              "myacr": {"username": "u", "password": "secret", "address": "myacr.azurecr.io"}
            }
          }
        },
        "systemModules": {
          "edgeAgent": {
            "type": "docker",
            "settings": {"image": "mcr.microsoft.com/azureiotedge-agent:1.5", "createOptions": "{}"}
          },
          "edgeHub": {
            "type": "docker",
            "status": "running",
            "restartPolicy": "always",
            "startupOrder": 0,
            "settings": {
              "image": "mcr.microsoft.com/azureiotedge-hub:1.5",
              "createOptions": "{\"HostConfig\":{\"PortBindings\":{\"443/tcp\":[{\"HostPort\":\"443\"}],",
              "createOptions01": "\"5671/tcp\":[{\"HostPort\":\"5671\"}],\"8883/tcp\":[{\"HostPort\":\"8883\"}]}}}"
            },
            "env": {"OptimizeForPerformance": {"value": "false"}}
          }
        },
        "modules": {
          "SimulatedTemperatureSensor": {
            "version": "1.0",
            "type": "docker",
            "status": "running",
            "restartPolicy": "always",
            "startupOrder": 2,
            "settings": {"image": "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", "createOptions": "{}"},
            "env": {"SendInterval": {"value": 5}}
          },
          "filter": {
            "type": "process",
            "restartPolicy": "on-failure",
            "startupOrder": 1,
            "settings": {"path": "/opt/filter/bin/filter", "args": ["--threshold", "25"], "workingDir": "/var/lib/filter", "user": "filter"}
          }
        }
      }
    },
    "$edgeHub": {
      "properties.desired": {
        "schemaVersion": "1.2",
        "routes": {
          "sensorToFilter": "FROM /messages/modules/SimulatedTemperatureSensor/outputs/temperatureOutput INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")",
          "filterToIoTHub": {"route": "FROM /messages/modules/filter/outputs/* INTO $upstream", "priority": 0, "timeToLiveSecs": 86400}
        },
        "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}
      }
    },
    "SimulatedTemperatureSensor": {
      "properties.desired": {"SendData": true, "SendInterval": 5}
    }
  }
}"#;

#[test]
fn azure_sample_manifest() {
    check_manifest(
        AZURE_SAMPLE,
        expect![[r#"
            schema 1.1 runtime docker minDockerVersion=v1.25 registry.myacr=RegistryCredential { username: "u", password: "<redacted>", address: "myacr.azurecr.io" }
            edgeAgent docker status=running restart=on-unhealthy order=4294967295 pull=on-create image=mcr.microsoft.com/azureiotedge-agent:1.5 createOptions={} hash=cb5281381f3f
            edgeHub docker status=running restart=always order=0 pull=on-create image=mcr.microsoft.com/azureiotedge-hub:1.5 createOptions={"HostConfig":{"PortBindings":{"443/tcp":[{"HostPort":"443"}],"5671/tcp":[{"HostPort":"5671"}],"8883/tcp":[{"HostPort":"8883"}]}}} env.OptimizeForPerformance="false" hash=572303fcb074
            SimulatedTemperatureSensor docker status=running restart=always order=2 pull=on-create version=1.0 image=mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5 createOptions={} env.SendInterval="5" hash=3ffe5396b053
            filter process status=running restart=on-failure order=1 pull=on-create path=/opt/filter/bin/filter args=["--threshold", "25"] workingDir=/var/lib/filter user=filter hash=1452cc26c73d
            schema 1.2 ttl=7200 maxSizeBytes=None mqttBroker=false integrity=false
            route filterToIoTHub priority=Some(0) ttl=Some(86400) overflow=None sink=Upstream "FROM /messages/modules/filter/outputs/* INTO $upstream"
            route sensorToFilter priority=None ttl=None overflow=None sink=ModuleInput { module_id: "filter", input_name: "input1" } "FROM /messages/modules/SimulatedTemperatureSensor/outputs/temperatureOutput INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")"
            twin $edgeAgent: 4 keys
            twin $edgeHub: 3 keys
            twin SimulatedTemperatureSensor: 2 keys
        "#]],
    );
}

#[test]
fn manifest_refusals() {
    check_manifest(
        "{",
        expect!["400 the deployment manifest: EOF while parsing an object at line 1 column 1"],
    );
    check_manifest(
        r#"{"modulesContent": {"$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}}}}}"#,
        expect!["400 the deployment manifest has no $edgeAgent entry in modulesContent"],
    );
    check_manifest(
        r#"{"modulesContent": {"$other": {"properties.desired": {}}}}"#,
        expect![
            "400 the deployment manifest: modulesContent.$other: only $edgeAgent and $edgeHub may start with '$'"
        ],
    );
    check_manifest(
        r#"{"modulesContent": {"a/b": {"properties.desired": {}}}}"#,
        expect![[
            r#"400 the deployment manifest: modulesContent.a/b: module id contains the character '/' at byte 1, which IoT Hub does not allow"#
        ]],
    );
    check_manifest(
        r#"{"modulesContent": {"m": {"properties.desired": 5}}}"#,
        expect![
            "400 the deployment manifest: modulesContent.m.properties.desired: invalid type: integer `5`, expected a map at line 1 column 49"
        ],
    );
    check_manifest(
        r#"{"modulesContent": {}} trailing"#,
        expect!["400 the deployment manifest: trailing characters at line 1 column 24"],
    );
}

#[test]
fn agent_schema_and_empty_deployments() {
    check_agent(
        json!({"$version": 1}),
        expect!["417 the deployment is empty: $edgeAgent has no desired properties"],
    );
    check_agent(
        json!({"runtime": {}}),
        expect!["412 $edgeAgent: schemaVersion is missing"],
    );
    check_agent(
        json!({"schemaVersion": "2.0"}),
        expect![[
            r#"412 $edgeAgent: schemaVersion "2.0" is not supported; supported versions are 1.0 and 1.1"#
        ]],
    );
    check_agent(
        json!({"schemaVersion": "1.2"}),
        expect![[
            r#"412 $edgeAgent: schemaVersion "1.2" is not supported; supported versions are 1.0 and 1.1"#
        ]],
    );
    check_agent(
        json!({"schemaVersion": "1.1.1"}),
        expect![[
            r#"412 $edgeAgent: schemaVersion "1.1.1" is not supported; supported versions are 1.0 and 1.1"#
        ]],
    );
    check_agent(
        json!({"schemaVersion": "one"}),
        expect![[
            r#"412 $edgeAgent: schemaVersion "one" is not supported; supported versions are 1.0 and 1.1"#
        ]],
    );
    check_agent(
        json!({"schemaVersion": "1.0"}),
        expect!["400 $edgeAgent: missing field `runtime`"],
    );
    let mut numeric_schema = agent_with_modules(json!({}));
    numeric_schema["schemaVersion"] = json!(1.0);
    check_agent(
        numeric_schema,
        expect![[r#"
            schema 1.0 runtime docker minDockerVersion=v1.25
            edgeAgent docker status=running restart=on-unhealthy order=4294967295 pull=on-create image=mcr.microsoft.com/azureiotedge-agent:1.5 createOptions={} hash=cb5281381f3f
            edgeHub docker status=running restart=always order=0 pull=on-create image=mcr.microsoft.com/azureiotedge-hub:1.5 createOptions={} hash=dab013ae5d31
        "#]],
    );
    let mut process_runtime = agent_with_modules(json!({}));
    process_runtime["runtime"]["type"] = json!("kubernetes");
    check_agent(
        process_runtime,
        expect![[
            r#"400 $edgeAgent: runtime.type "kubernetes" is not supported; use "docker" or "process""#
        ]],
    );
}

#[test]
fn module_defaults_and_case_insensitive_values() {
    check_agent(
        agent_with_module(
            json!({"type": "Docker", "status": "STOPPED", "restartPolicy": "On-Failure",
            "imagePullPolicy": "never", "version": 2, "settings": {"image": " alpine ", "digest": "sha256:abc"}}),
        ),
        expect![[r#"
            schema 1.1 runtime docker minDockerVersion=v1.25
            edgeAgent docker status=running restart=on-unhealthy order=4294967295 pull=on-create image=mcr.microsoft.com/azureiotedge-agent:1.5 createOptions={} hash=cb5281381f3f
            edgeHub docker status=running restart=always order=0 pull=on-create image=mcr.microsoft.com/azureiotedge-hub:1.5 createOptions={} hash=dab013ae5d31
            m docker status=stopped restart=on-failure order=4294967295 pull=never version=2 image=alpine:latest digest=sha256:abc createOptions={} hash=882e5129ed73
        "#]],
    );
    check_agent(
        agent_with_module(json!({"type": "process", "settings": {"path": "/bin/true"},
            "env": {"A": {"value": "x"}, "B": null, "C": {"value": true}}})),
        expect![[r#"
            schema 1.1 runtime docker minDockerVersion=v1.25
            edgeAgent docker status=running restart=on-unhealthy order=4294967295 pull=on-create image=mcr.microsoft.com/azureiotedge-agent:1.5 createOptions={} hash=cb5281381f3f
            edgeHub docker status=running restart=always order=0 pull=on-create image=mcr.microsoft.com/azureiotedge-hub:1.5 createOptions={} hash=dab013ae5d31
            m process status=running restart=on-unhealthy order=4294967295 pull=on-create path=/bin/true args=[] env.A="x" env.C="true" hash=be99ec152922
        "#]],
    );
}

#[test]
fn module_refusals() {
    let cases = [
        json!({"type": "lxc", "settings": {"image": "a"}}),
        json!({"type": "docker", "status": "paused", "settings": {"image": "a"}}),
        json!({"type": "docker", "restartPolicy": "sometimes", "settings": {"image": "a"}}),
        json!({"type": "docker", "imagePullPolicy": "always", "settings": {"image": "a"}}),
        json!({"type": "docker", "settings": {}}),
        json!({"type": "docker", "settings": {"image": "a b"}}),
        json!({"type": "docker", "settings": {"image": "a", "createOptions": "{", "createOptions02": "}"}}),
        json!({"type": "docker", "settings": {"image": "a", "createOptions": "[]"}}),
        json!({"type": "docker", "settings": {"image": "a", "digest": " "}}),
        json!({"type": "docker", "settings": {"image": "a", "path": "/bin/x"}}),
        json!({"type": "process", "settings": {}}),
        json!({"type": "process", "settings": {"path": "bin/x"}}),
        json!({"type": "process", "settings": {"path": "/bin/x", "workingDir": "."}}),
        json!({"type": "process", "settings": {"path": "/bin/x", "user": "a b"}}),
        json!({"type": "process", "settings": {"path": "/bin/x", "image": "a"}}),
        json!({"type": "process", "settings": {"path": "/bin/x", "createOptions": "{}"}}),
        json!({"type": "process", "settings": {"path": "/bin/x", "args": ["a\u{0}"]}}),
        json!({"type": "process", "settings": {"path": "/bin/x", "args": "a"}}),
        json!({"type": "process", "settings": {"path": "/bin/x"}, "env": {"A=B": {"value": "x"}}}),
        json!({"type": "process", "settings": {"path": "/bin/x"}, "env": {"A": {"value": {"x": 1}}}}),
        json!({"type": "process", "settings": {"path": "/bin/x"}, "env": {"A": {"val": "x"}}}),
        json!({"type": "process", "settings": {"path": "/bin/x"}, "version": [1]}),
        json!({"type": "process", "settings": {"path": "/bin/x"}, "startupOrder": -1}),
        json!({"settings": {"path": "/bin/x"}}),
    ];
    let rendered: Vec<String> = cases
        .into_iter()
        .map(
            |module| match AgentDeployment::from_json(&agent_with_module(module).to_string()) {
                Ok(_) => "accepted".to_owned(),
                Err(error) => render_error(&error),
            },
        )
        .collect();
    expect![[r#"
        400 $edgeAgent: modules.m: type "lxc" is not supported; use "docker" or "process"
        400 $edgeAgent: modules.m: status "paused" is not supported; use "running" or "stopped"
        400 $edgeAgent: modules.m: restartPolicy "sometimes" is not supported; use "never", "on-failure", "on-unhealthy" or "always"
        400 $edgeAgent: modules.m: imagePullPolicy "always" is not supported; use "on-create" or "never"
        400 $edgeAgent: modules.m: settings.image is required for a docker module
        400 $edgeAgent: modules.m: settings.image: the image "a b" contains whitespace or a control character
        400 $edgeAgent: modules.m: settings.createOptions02 is present but settings.createOptions01 is missing; createOptions chunks must be consecutive
        400 $edgeAgent: modules.m: settings.createOptions must be a JSON object, found an array
        400 $edgeAgent: modules.m: settings.digest must not be empty
        400 $edgeAgent: modules.m: settings.path is only valid for process modules
        400 $edgeAgent: modules.m: settings.path is required for a process module
        400 $edgeAgent: modules.m: settings.path must be an absolute path, found "bin/x"
        400 $edgeAgent: modules.m: settings.workingDir must be an absolute path, found "."
        400 $edgeAgent: modules.m: settings.user must be a non-empty user name or id without whitespace, found "a b"
        400 $edgeAgent: modules.m: settings.image is only valid for docker modules
        400 $edgeAgent: modules.m: settings.createOptions is only valid for docker modules
        400 $edgeAgent: modules.m: settings.args must not contain a NUL character
        400 $edgeAgent: modules.m.settings.args: invalid type: string "a", expected a sequence
        400 $edgeAgent: modules.m: env name "A=B" is not valid: it contains '='
        400 $edgeAgent: modules.m: env A: the value must be a string, number or boolean, found an object
        400 $edgeAgent: modules.m.env.A: missing field `value`
        400 $edgeAgent: modules.m: version must be a string or a number, found an array
        400 $edgeAgent: modules.m.startupOrder: invalid value: integer `-1`, expected u32
        400 $edgeAgent: modules.m: missing field `type`"#]]
    .assert_eq(&rendered.join("\n"));
}

#[test]
fn module_name_refusals() {
    check_agent(
        agent_with_modules(json!({"bad name": {"type": "process", "settings": {"path": "/x"}}})),
        expect![[
            r#"400 $edgeAgent: modules: "bad name" is not a valid module name: a module name may only contain ASCII letters, digits, '_', '.' and '-', found ' ' at byte 3"#
        ]],
    );
    check_agent(
        agent_with_modules(json!({"edgeHub": {"type": "process", "settings": {"path": "/x"}}})),
        expect![[r#"400 $edgeAgent: modules.edgeHub: "edgeHub" is reserved for a system module"#]],
    );
}

fn hub(routes: Value) -> Value {
    json!({"schemaVersion": "1.1", "routes": routes, "storeAndForwardConfiguration": {"timeToLiveSecs": 60, "storeLimits": {"maxSizeBytes": 1000}}})
}

#[test]
fn hub_routes_and_schemas() {
    check_hub(
        hub(json!({
            "all": "FROM /messages/* INTO $upstream",
            "prio": {"route": "FROM /messages/modules/a/outputs/o WHERE $body.temp > 5 INTO $upstream", "priority": 9, "timeToLiveSecs": 4294967295_u64},
            "lossy": {"route": "FROM /messages/* INTO $upstream", "overflow": "dropOldest"},
            "careful": {"route": "FROM /messages/* INTO $upstream", "overflow": "refuseNew"},
            "removed": null
        })),
        expect![[r#"
            schema 1.1 ttl=60 maxSizeBytes=Some(1000) mqttBroker=false integrity=false
            route all priority=None ttl=None overflow=None sink=Upstream "FROM /messages/* INTO $upstream"
            route careful priority=None ttl=None overflow=Some(RefuseNew) sink=Upstream "FROM /messages/* INTO $upstream"
            route lossy priority=None ttl=None overflow=Some(DropOldest) sink=Upstream "FROM /messages/* INTO $upstream"
            route prio priority=Some(9) ttl=Some(4294967295) overflow=None sink=Upstream "FROM /messages/modules/a/outputs/o WHERE $body.temp > 5 INTO $upstream"
        "#]],
    );
    check_hub(
        json!({"schemaVersion": "1.0", "routes": {"r": "FROM /messages/* INTO $upstream", "blank": "  "},
               "mqttBroker": {"authorizations": []}}),
        expect![[r#"
            schema 1.0 ttl=7200 maxSizeBytes=None mqttBroker=false integrity=false
            route r priority=None ttl=None overflow=None sink=Upstream "FROM /messages/* INTO $upstream"
        "#]],
    );
    check_hub(
        json!({"schemaVersion": "1.3", "routes": {}, "mqttBroker": {}, "integrity": {"header": {}}}),
        expect![[r#"
            schema 1.3 ttl=7200 maxSizeBytes=None mqttBroker=true integrity=true
        "#]],
    );
    check_hub(
        json!({"schemaVersion": "1.0", "routes": {"r": {"route": "FROM /messages/* INTO $upstream"}}}),
        expect![
            "400 $edgeHub: routes.r: route objects need schemaVersion 1.1 or later; schema 1.0 routes are strings"
        ],
    );
    check_hub(
        hub(json!({"r": {"route": "FROM /messages/* INTO $upstream", "priority": 10}})),
        expect!["400 $edgeHub: routes.r: priority 10 is out of range 0..=9"],
    );
    check_hub(
        hub(json!({"r": {"route": "FROM /messages/* INTO $upstream", "overflow": "drop_oldest"}})),
        expect![[
            r#"400 $edgeHub: routes.r: overflow "drop_oldest" is not one of "dropOldest" and "refuseNew""#
        ]],
    );
    check_hub(
        hub(
            json!({"r": {"route": "FROM /messages/* INTO $upstream", "timeToLiveSecs": 4294967296_u64}}),
        ),
        expect!["400 $edgeHub: routes.r: timeToLiveSecs 4294967296 is out of range 0..=4294967295"],
    );
    check_hub(
        hub(json!({"r": "FROM /messages/* INTO nowhere"})),
        expect![[
            r#"400 $edgeHub: routes.r: "FROM /messages/* INTO nowhere" is not a valid route: expected `$upstream` or `BrokeredEndpoint("/modules/<m>/inputs/<i>")`, found `nowhere` at byte 22"#
        ]],
    );
    check_hub(
        hub(json!({"r": ""})),
        expect![[
            r#"400 $edgeHub: routes.r: "" is not a valid route: expected `FROM`, found end of input at byte 0"#
        ]],
    );
    check_hub(
        hub(json!({"a.b": "FROM /messages/* INTO $upstream"})),
        expect![[
            r#"400 $edgeHub: routes: "a.b" is not a valid route name: a route name must not contain '.'"#
        ]],
    );
    check_hub(
        hub(json!({"r": 5})),
        expect![
            "400 $edgeHub: routes.r: a route must be a string or an object with route, priority and timeToLiveSecs"
        ],
    );
    check_hub(
        json!({"schemaVersion": "1.4", "routes": {}}),
        expect![[
            r#"412 $edgeHub: schemaVersion "1.4" is not supported; supported versions are 1.0, 1.1, 1.2 and 1.3"#
        ]],
    );
    check_hub(
        json!({"schemaVersion": "1.1", "storeAndForwardConfiguration": {"timeToLiveSecs": 2147483648_u64}}),
        expect![
            "400 $edgeHub: storeAndForwardConfiguration.timeToLiveSecs 2147483648 is out of range 0..=2147483647"
        ],
    );
    check_hub(
        json!({"$version": 3}),
        expect!["417 the deployment is empty: $edgeHub has no desired properties"],
    );
}
