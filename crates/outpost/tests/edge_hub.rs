//! The edge hub end to end (issue 6), black box: a real hub, an edge device running
//! `outpost edge run` with its edge hub, two modules written with the official Python SDK
//! (`IoTHubModuleClient.create_from_edge_environment()`, unchanged), a leaf device on
//! `IoTHubDeviceClient` through the gateway, routes with conditions, a module-to-module method,
//! and the extended offline scenario: the hub is killed, the leaf keeps sending, the edge runtime
//! is killed and restarted mid-outage, the hub returns and every stored message arrives.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU8;

use serde_json::{Value, json};
use support::edge::{Edge, init_edge, set_modules, tail, wait_for};
use support::{Hub, next_address, python, workspace_root};

static ADDRESSES: AtomicU8 = AtomicU8::new(0);

const EDGE: &str = "edge-gw";
const LEAF: &str = "leaf-1";

/// A module process running tests/sdk/edge_scenarios.py as an SDK module.
fn sdk_module(state_dir: &Path, call: Option<&str>) -> Value {
    let script = workspace_root().join("tests/sdk/edge_scenarios.py");
    let mut env = json!({"STATE_DIR": {"value": state_dir.display().to_string()}});
    if let Some(target) = call {
        env["CALL_MODULE"] = json!({"value": target});
    }
    json!({
        "type": "process",
        "status": "running",
        "restartPolicy": "always",
        "env": env,
        "settings": {"path": python().display().to_string(), "args": [script.display().to_string(), "module"]}
    })
}

fn deployment(state_dir: &Path) -> Value {
    json!({"modulesContent": {
        "$edgeAgent": {"properties.desired": {
            "schemaVersion": "1.1",
            "runtime": {"type": "process", "settings": {}},
            "systemModules": {
                "edgeAgent": {"type": "docker", "settings": {"image": "mcr.microsoft.com/azureiotedge-agent:1.5"}},
                "edgeHub": {"type": "docker", "status": "running", "restartPolicy": "always",
                            "settings": {"image": "mcr.microsoft.com/azureiotedge-hub:1.5"}}
            },
            "modules": {
                "filter": sdk_module(state_dir, None),
                "caller": sdk_module(state_dir, Some("filter")),
            }
        }},
        "$edgeHub": {"properties.desired": {
            "schemaVersion": "1.1",
            "routes": {
                "leafToFilter": "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")",
                "filterToCloud": {"route": "FROM /messages/modules/filter/outputs/output1 WHERE filtered = 'yes' INTO $upstream", "priority": 1}
            },
            "storeAndForwardConfiguration": {"timeToLiveSecs": 86400}
        }},
        "filter": {"properties.desired": {"threshold": 24}}
    }})
}

/// Runs one leaf scenario of tests/sdk/edge_scenarios.py and returns its JSON result.
fn leaf(edge_ca: &Path, args: &[&str]) -> Value {
    let output = Command::new(python())
        .arg(workspace_root().join("tests/sdk/edge_scenarios.py"))
        .args(args)
        .env("EDGE_CA_FILE", edge_ca)
        .output()
        .expect("run the leaf scenario");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "leaf scenario {:?} failed:\n{stdout}\n{}",
        args.first(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("leaf JSON")
}

/// Waits until the filter module reported `seen` = `threshold` (its answer to a desired patch).
fn wait_for_filter_seen(hub: &Hub, edge: &Edge, threshold: u64, what: &str) {
    wait_for(what, || {
        let twin: Value =
            serde_json::from_str(&hub.cli_ok(&["twin", "show", EDGE, "--module", "filter"]))
                .expect("twin JSON");
        match twin.pointer("/properties/reported/seen") {
            Some(seen) if seen == threshold => Ok(()),
            _ => Err(format!("{twin}\nedge log:\n{}", tail(&edge.log(), 10))),
        }
    });
}

fn update_edge_hub(hub: &Hub, desired: &str) {
    hub.cli_ok(&[
        "twin",
        "update",
        EDGE,
        "--module",
        "$edgeHub",
        "--desired",
        desired,
    ]);
}

fn edge_hub_twin(hub: &Hub) -> Value {
    serde_json::from_str(&hub.cli_ok(&["twin", "show", EDGE, "--module", "$edgeHub"]))
        .expect("twin JSON")
}

fn module_state(state_dir: &Path, module: &str) -> Option<Value> {
    let text = std::fs::read_to_string(state_dir.join(format!("{module}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every event the hub holds from the edge device's `filter` module, by `index` property, with the
/// number of copies of each (duplicates are allowed: delivery is at least once).
fn filter_events(hub: &Hub, expected: usize) -> BTreeMap<u64, usize> {
    let stdout = hub.cli_ok(&[
        "monitor",
        "events",
        "--from",
        "start",
        "--device",
        EDGE,
        "--max-messages",
        &expected.to_string(),
        "--idle-timeout",
        "5",
        "--output",
        "json",
    ]);
    let mut seen = BTreeMap::new();
    for line in stdout.lines() {
        let event: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(
            event["moduleId"], "filter",
            "only the filter's output goes upstream: {event}"
        );
        assert_eq!(event["applicationProperties"]["filtered"], "yes");
        let index: u64 = event["applicationProperties"]["index"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .expect("index property");
        *seen.entry(index).or_insert(0) += 1;
    }
    seen
}

/// The indexes of the leaf messages the filter forwards: temp = 20 + i % 8 >= 24.
fn forwarded(range: std::ops::Range<u64>) -> Vec<u64> {
    range.filter(|i| i % 8 >= 4).collect()
}

#[test]
fn modules_and_a_leaf_device_work_through_the_edge_hub_online_and_through_an_outage() {
    let mut hub = Hub::start(&next_address(39, &ADDRESSES));
    let gateway = next_address(39, &ADDRESSES);
    hub.cli_ok(&["device", "create", EDGE, "--edge"]);
    let edge_json: Value =
        serde_json::from_str(&hub.cli_ok(&["device", "show", EDGE, "--output", "json"]))
            .expect("device JSON");
    let scope = edge_json["deviceScope"]
        .as_str()
        .expect("edge deviceScope")
        .to_owned();
    let leaf_json: Value = serde_json::from_str(&hub.cli_ok(&[
        "device", "create", LEAF, "--parent", EDGE, "--output", "json",
    ]))
    .expect("device JSON");
    assert_eq!(leaf_json["parentScopes"], serde_json::json!([scope]));
    hub.cli_ok(&["device", "create", "stranger"]);
    let leaf_cs = format!(
        "{};GatewayHostName={gateway}",
        hub.cli_ok(&["device", "connection-string", LEAF]).trim()
    );
    let stranger_cs = format!(
        "{};GatewayHostName={gateway}",
        hub.cli_ok(&["device", "connection-string", "stranger"])
            .trim()
    );
    let edge_cs = hub
        .cli_ok(&["device", "connection-string", EDGE])
        .trim()
        .to_owned();

    let temp = tempfile::tempdir().expect("temporary directory");
    let directory = temp.path().to_path_buf();
    let state_dir = directory.join("state");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let data_dir = directory.join("edge");
    let mut edge = init_edge(
        &hub,
        &edge_cs,
        &directory,
        &["--gateway-hostname", &gateway],
    );
    edge.start();
    set_modules(&hub, &directory, EDGE, &deployment(&state_dir), &[]);

    // The SDK modules bootstrap from the edge environment and connect to the edge hub.
    let caller = wait_for(
        "the caller module's method call to filter",
        || match module_state(&state_dir, "caller") {
            Some(state) if !state["method_result"].is_null() => Ok(state),
            other => Err(format!("{other:?}\nedge log:\n{}", tail(&edge.log(), 20))),
        },
    );
    assert_eq!(
        caller["method_result"],
        json!({"status": 200, "payload": {"pong": {"from": "caller"}, "module": "filter"}}),
        "module-to-module method through the edge hub"
    );
    let edge_ca = data_dir.join("agent/edge-ca.pem");
    wait_for(
        "the $edgeHub routes applied and its clients reported",
        || {
            let twin = edge_hub_twin(&hub);
            let reported = &twin["properties"]["reported"];
            let applied = reported.pointer("/lastDesiredStatus/code") == Some(&json!(200));
            let filter_listed =
                reported.pointer("/clients/edge-gw~1filter/status") == Some(&json!("connected"));
            if applied && filter_listed {
                Ok(())
            } else {
                Err(twin.to_string())
            }
        },
    );

    // Cloud to module through the edge hub: a direct method, and a desired patch the module
    // reports back (its reported patch travels up through the twin cache).
    let answer: Value = serde_json::from_str(&hub.cli_ok(&[
        "method",
        "invoke",
        EDGE,
        "ping",
        "--module",
        "filter",
        "--payload",
        r#"{"from":"cloud"}"#,
        "--connect-timeout",
        "10",
        "--output",
        "json",
    ]))
    .expect("method JSON");
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["payload"]["pong"], json!({"from": "cloud"}));
    hub.cli_ok(&[
        "twin",
        "update",
        EDGE,
        "--module",
        "filter",
        "--desired",
        r#"{"threshold":30}"#,
    ]);
    wait_for_filter_seen(
        &hub,
        &edge,
        30,
        "the filter module to report the new desired threshold",
    );

    // A device outside the edge device's scope is refused.
    assert_eq!(
        leaf(&edge_ca, &["leaf_refused", &stranger_cs])["refused"],
        true
    );

    // Online: leaf → filter (condition on the body) → $upstream (condition on a property),
    // from a SAS leaf and from an X.509 (self-signed, by thumbprint) leaf.
    assert_eq!(
        leaf(&edge_ca, &["leaf_send", &leaf_cs, "40", "0"])["sent"],
        40
    );
    let certificate = tls::self_signed_client_certificate(&tls::ClientCertificateRequest {
        common_name: "leaf-x509".to_owned(),
        validity: tls::CertificateValidity::days_from_now(30),
    })
    .expect("self-signed certificate");
    let cert_file = directory.join("leaf-x509.pem");
    let key_file = directory.join("leaf-x509.key.pem");
    std::fs::write(&cert_file, certificate.chain_pem()).expect("write cert");
    std::fs::write(&key_file, certificate.private_key_pem()).expect("write key");
    let thumbprint = tls::thumbprint_sha1_hex(certificate.end_entity());
    hub.cli_ok(&[
        "device",
        "create",
        "leaf-x509",
        "--x509-thumbprint",
        &thumbprint,
        "--parent",
        EDGE,
    ]);
    let x509_sent = leaf(
        &edge_ca,
        &[
            "leaf_x509_send",
            "leaf-x509",
            &hub.address,
            &gateway,
            cert_file.to_str().expect("utf-8"),
            key_file.to_str().expect("utf-8"),
            "8",
            "300",
        ],
    );
    assert_eq!(x509_sent["sent"], 8);
    let mut expected_online = forwarded(0..40);
    expected_online.extend(forwarded(300..308));
    wait_for("the online messages upstream", || {
        let seen = filter_events(&hub, expected_online.len());
        let indexes: Vec<u64> = seen.keys().copied().collect();
        if indexes == expected_online {
            Ok(())
        } else {
            Err(format!("{indexes:?}\nedge log:\n{}", tail(&edge.log(), 20)))
        }
    });
    // Leaf twin through the edge hub: the reported patch reaches the cloud twin.
    leaf(&edge_ca, &["leaf_twin", &leaf_cs]);
    wait_for("the leaf's reported patch in the hub", || {
        let twin: Value = serde_json::from_str(&hub.cli_ok(&["twin", "show", LEAF])).expect("twin");
        match twin.pointer("/properties/reported/leaf") {
            Some(value) if value == "patched" => Ok(()),
            _ => Err(twin.to_string()),
        }
    });

    // A route that does not parse is refused with a clear status; the previous routes stay.
    update_edge_hub(
        &hub,
        r#"{"routes":{"broken":"FROM /messages/* INTO nowhere"}}"#,
    );
    let refused = wait_for("the $edgeHub refusal of the broken route", || {
        let twin = edge_hub_twin(&hub);
        let status = twin["properties"]["reported"]["lastDesiredStatus"].clone();
        if status["code"] == 400 {
            Ok(status)
        } else {
            Err(twin.to_string())
        }
    });
    let description = refused["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("broken"),
        "names the route: {description}"
    );
    assert_eq!(
        leaf(&edge_ca, &["leaf_send", &leaf_cs, "8", "200"])["sent"],
        8
    );
    let mut expected_kept = expected_online.clone();
    expected_kept.extend(forwarded(200..208));
    expected_kept.sort_unstable();
    wait_for("messages routed by the previous routes", || {
        let indexes: Vec<u64> = filter_events(&hub, expected_kept.len())
            .into_keys()
            .collect();
        if indexes == expected_kept {
            Ok(())
        } else {
            Err(format!("{indexes:?}"))
        }
    });
    update_edge_hub(&hub, r#"{"routes":{"broken":null}}"#);
    wait_for("the $edgeHub to accept the repaired routes", || {
        let twin = edge_hub_twin(&hub);
        match twin.pointer("/properties/reported/lastDesiredStatus/code") {
            Some(code) if code == 200 => Ok(()),
            _ => Err(twin.to_string()),
        }
    });

    // Cloud-to-device messages queued in the hub reach the leaf through the edge hub.
    hub.cli_ok(&["c2d", "send", LEAF, "first", "-p", "n=1"]);
    hub.cli_ok(&["c2d", "send", LEAF, "second", "-p", "n=2"]);
    let c2d = leaf(&edge_ca, &["leaf_c2d", &leaf_cs, "2"]);
    assert_eq!(
        c2d["received"],
        json!([{"body": "first", "properties": {"n": "1"}}, {"body": "second", "properties": {"n": "2"}}])
    );
    // The edge hub completes them in the hub only once the leaf acknowledged them.
    let queued_in_hub = |expected: u64, what: &str| {
        wait_for(what, || {
            let device: Value =
                serde_json::from_str(&hub.cli_ok(&["device", "show", LEAF, "--output", "json"]))
                    .unwrap();
            match device.get("cloudToDeviceMessageCount") {
                Some(count) if *count == expected => Ok(()),
                _ => Err(device.to_string()),
            }
        })
    };
    queued_in_hub(0, "the hub to see both messages completed");
    // A leaf that takes a message and leaves without PUBACK: the hub keeps it, and the leaf gets
    // it again on its next connection.
    hub.cli_ok(&["c2d", "send", LEAF, "third"]);
    assert_eq!(
        leaf(&edge_ca, &["leaf_c2d_no_ack", &leaf_cs])["body"],
        "third"
    );
    queued_in_hub(1, "the unacknowledged message to stay queued in the hub");
    let again = leaf(&edge_ca, &["leaf_c2d", &leaf_cs, "1"]);
    assert_eq!(again["received"][0]["body"], "third");
    queued_in_hub(0, "the redelivered message to be completed");

    // Outage: the hub dies; the leaf and the modules keep working; upstream messages are stored.
    hub.kill_9();
    assert_eq!(
        leaf(&edge_ca, &["leaf_send", &leaf_cs, "40", "40"])["sent"],
        40
    );
    // Wait until the filter has stored its outputs for them: a module acknowledges an input when
    // it receives it, so killing everything before its output is acknowledged would lose it in
    // the module, not in the edge hub.
    wait_for("the filter to forward the offline messages", || {
        let state = module_state(&state_dir, "filter").unwrap_or_default();
        let done: Vec<u64> = state["forwarded_indexes"]
            .as_array()
            .map(|indexes| indexes.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if forwarded(40..80).iter().all(|index| done.contains(index)) {
            Ok(())
        } else {
            Err(state.to_string())
        }
    });
    // The runtime itself is killed and restarted while the hub is still down: the deployment,
    // the routes, the scope (for the leaf's authentication) and the store come from disk.
    if let Some(mut child) = edge.child.take() {
        child.kill().expect("kill -9 the edge runtime");
        child.wait().expect("reap");
    }
    edge.start();
    wait_for(
        "the leaf to send through the restarted, offline edge hub",
        || {
            let output = Command::new(python())
                .arg(workspace_root().join("tests/sdk/edge_scenarios.py"))
                .args(["leaf_send", &leaf_cs, "40", "80"])
                .env("EDGE_CA_FILE", &edge_ca)
                .output()
                .expect("leaf");
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{}\nedge log:\n{}",
                    String::from_utf8_lossy(&output.stderr),
                    tail(&edge.log(), 20)
                ))
            }
        },
    );

    // The hub returns: everything stored arrives.
    hub.start_again();
    let mut expected_all = forwarded(0..120);
    expected_all.extend(forwarded(200..208));
    expected_all.extend(forwarded(300..308));
    let seen = wait_for("every stored message upstream", || {
        let seen = filter_events(&hub, expected_all.len() + 40);
        let indexes: Vec<u64> = seen.keys().copied().collect();
        if indexes == expected_all {
            Ok(seen)
        } else {
            let missing: Vec<u64> = expected_all
                .iter()
                .filter(|index| !seen.contains_key(index))
                .copied()
                .collect();
            Err(format!(
                "missing {missing:?}\nfilter: {:?}\nfilter errors: {}\nedge log:\n{}",
                module_state(&state_dir, "filter"),
                std::fs::read_to_string(state_dir.join("filter.errors")).unwrap_or_default(),
                tail(&edge.log(), 40)
            ))
        }
    });
    let duplicates: usize = seen.values().map(|copies| copies - 1).sum();
    eprintln!(
        "offline scenario: {} distinct messages upstream, {duplicates} duplicates",
        seen.len()
    );

    // A desired change made while the edge device was away reaches the module when it is back.
    edge.stop();
    hub.cli_ok(&[
        "twin",
        "update",
        EDGE,
        "--module",
        "filter",
        "--desired",
        r#"{"threshold":40}"#,
    ]);
    edge.start();
    wait_for_filter_seen(
        &hub,
        &edge,
        40,
        "the filter module to get the desired change it missed",
    );
    edge.stop();
}
