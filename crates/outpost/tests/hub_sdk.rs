//! The cloud hub against the official Azure IoT Python SDKs, unchanged (issue 3).
//!
//! Each test starts the real `outpost hub serve` on its own loopback address and drives it with
//! `azure-iot-device` 2.14 / `azure-iot-hub` 2.7 (tests/sdk/scenarios.py) and the `outpost` CLI.

mod support;

use std::collections::HashSet;
use std::sync::atomic::AtomicU8;

use serde_json::Value;
use support::{Hub, next_address};

static ADDRESSES: AtomicU8 = AtomicU8::new(0);

fn hub() -> Hub {
    Hub::start(&next_address(31, &ADDRESSES))
}

/// Reads `count` events of `device` from the start of the log through `outpost monitor events`.
fn read_events(hub: &Hub, device: &str, count: usize) -> Vec<Value> {
    let count_text = count.to_string();
    let stdout = hub.cli_ok(&[
        "monitor",
        "events",
        "--from",
        "start",
        "--device",
        device,
        "--max-messages",
        &count_text,
        "--idle-timeout",
        "30",
        "--output",
        "json",
    ]);
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

fn check_telemetry_events(events: &[Value], device: &str, count: usize) {
    assert_eq!(events.len(), count, "every message must come back");
    let mut seen = HashSet::new();
    for event in events {
        assert_eq!(event["deviceId"], device);
        let index = event["applicationProperties"]["index"]
            .as_str()
            .expect("index property")
            .to_owned();
        let number: usize = index.parse().expect("numeric index");
        let body: Value =
            serde_json::from_str(event["body"].as_str().expect("utf-8 body")).expect("json body");
        assert_eq!(body["i"], number, "body matches its properties");
        let expected_alert = if number % 2 == 1 {
            "high temp"
        } else {
            "ok&=/%"
        };
        assert_eq!(event["applicationProperties"]["alert"], expected_alert);
        assert_eq!(
            event["systemProperties"]["message-id"],
            format!("m-{number}")
        );
        assert_eq!(event["systemProperties"]["correlation-id"], "corr 1");
        assert_eq!(
            event["systemProperties"]["content-type"],
            "application/json"
        );
        assert_eq!(event["systemProperties"]["content-encoding"], "utf-8");
        assert_eq!(
            event["systemProperties"]["iothub-connection-device-id"],
            device
        );
        assert!(
            event["enqueuedTime"].is_string(),
            "enqueued time stamped: {event}"
        );
        assert!(seen.insert(number), "no duplicates");
    }
}

#[test]
fn thousand_messages_over_tls_come_back_with_their_properties() {
    let hub = hub();
    let result = hub.scenario(&["telemetry", "tls-dev", "1000"], &[]);
    assert_eq!(result["sent"], 1000);
    check_telemetry_events(&read_events(&hub, "tls-dev", 1000), "tls-dev", 1000);
}

#[test]
fn telemetry_twins_and_methods_over_websocket() {
    let hub = hub();
    hub.scenario(&["telemetry", "ws-dev", "20", "ws"], &[]);
    check_telemetry_events(&read_events(&hub, "ws-dev", 20), "ws-dev", 20);
    let result = hub.scenario(&["twin_and_methods", "ws"], &[]);
    assert_eq!(result["methodStatus"], 201);
}

#[test]
fn desired_patch_reported_patch_and_method_round_trip_over_tls() {
    let hub = hub();
    let result = hub.scenario(&["twin_and_methods"], &[]);
    assert_eq!(result["reportedVersion"], 3);
    assert_eq!(result["methodStatus"], 201);
}

#[test]
fn module_client_sends_to_outputs_and_serves_twin_and_methods() {
    let hub = hub();
    let result = hub.scenario(&["module"], &[]);
    let device = result["deviceId"].as_str().expect("device id");
    let events = read_events(&hub, device, 1);
    assert_eq!(events[0]["moduleId"], "mod1");
    assert_eq!(events[0]["body"], "hello from module");
    assert_eq!(
        events[0]["systemProperties"]["iothub-outputname"],
        "output1"
    );
}

#[test]
fn wrong_key_unknown_device_and_disabled_device_are_refused() {
    let hub = hub();
    let result = hub.scenario(&["refusals"], &[]);
    for case in ["wrongKey", "unknownDevice", "disabled"] {
        assert!(result[case].is_string(), "{case} refused: {result}");
    }
}

#[test]
fn cloud_to_device_messages_reach_the_device_with_properties() {
    let hub = hub();
    hub.cli_ok(&["device", "create", "c2d-dev"]);
    let connection_string = hub.cli_ok(&["device", "connection-string", "c2d-dev"]);
    for index in 0..3 {
        hub.cli_ok(&[
            "c2d",
            "send",
            "c2d-dev",
            &format!("hello {index}"),
            "-p",
            &format!("index={index}"),
            "-p",
            "kind=a b&c",
            "--message-id",
            &format!("c-{index}"),
        ]);
    }
    let result = hub.scenario(
        &["c2d_receive", "c2d-dev", "3"],
        &[("OUTPOST_DEVICE_CS", connection_string.trim())],
    );
    let received = result["received"].as_array().expect("received list");
    assert_eq!(received.len(), 3);
    for (index, message) in received.iter().enumerate() {
        assert_eq!(message["body"], format!("hello {index}"));
        assert_eq!(message["messageId"], format!("c-{index}"));
        assert_eq!(message["properties"]["index"], index.to_string());
        assert_eq!(message["properties"]["kind"], "a b&c");
    }
}

#[test]
fn acknowledged_telemetry_twins_and_queued_c2d_survive_kill_9() {
    let mut hub = hub();
    hub.scenario(&["telemetry", "crash-dev", "200"], &[]);
    hub.cli_ok(&[
        "twin",
        "update",
        "crash-dev",
        "--desired",
        r#"{"mode":"eco"}"#,
        "--tags",
        r#"{"site":"b1"}"#,
    ]);
    hub.cli_ok(&[
        "c2d",
        "send",
        "crash-dev",
        "queued while offline",
        "--message-id",
        "q-1",
    ]);
    let connection_string = hub.cli_ok(&["device", "connection-string", "crash-dev"]);

    hub.kill_9();
    hub.restart();

    check_telemetry_events(&read_events(&hub, "crash-dev", 200), "crash-dev", 200);
    let twin: Value =
        serde_json::from_str(&hub.cli_ok(&["twin", "show", "crash-dev"])).expect("twin json");
    assert_eq!(twin["properties"]["desired"]["mode"], "eco");
    assert_eq!(twin["tags"]["site"], "b1");
    let result = hub.scenario(
        &["c2d_receive", "crash-dev", "1"],
        &[("OUTPOST_DEVICE_CS", connection_string.trim())],
    );
    assert_eq!(result["received"][0]["messageId"], "q-1");
}

#[test]
fn management_cli_reports_clear_errors() {
    let hub = hub();
    let missing = hub.cli(&["device", "show", "nobody"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("404"), "names the status: {stderr}");

    let bad_json = hub.cli(&["twin", "update", "nobody", "--desired", "{not json"]);
    assert!(String::from_utf8_lossy(&bad_json.stderr).contains("--desired is not valid JSON"));

    let no_connection = std::process::Command::new(support::outpost_binary())
        .args(["device", "list"])
        .env_remove("OUTPOST_HUB_CONNECTION_STRING")
        .output()
        .expect("run outpost");
    assert!(
        String::from_utf8_lossy(&no_connection.stderr).contains("OUTPOST_HUB_CONNECTION_STRING")
    );
}

#[test]
fn expired_tokens_foreign_topics_oversized_malformed_and_qos2_are_refused_while_others_are_served()
{
    let hub = hub();
    let result = hub.scenario(&["bad_clients"], &[]);
    assert_eq!(result["expiredTokenConnack"], 5);
    assert!(
        result["invalidPatchReply"]
            .as_str()
            .is_some_and(|topic| topic.contains("/res/400/")),
        "{result}"
    );
    assert_eq!(result["stillServed"], true);
}

#[test]
fn service_api_answers_bad_requests_with_clear_4xx() {
    let hub = hub();
    let result = hub.scenario(&["bad_rest"], &[]);
    assert_eq!(result["wrongIfMatch"], 412);
    assert_eq!(result["offlineMethod"], 404);
    assert_eq!(result["invalidJson"], 400);
    assert_eq!(result["unknownRoute"], 404);
    assert_eq!(result["badToken"], 401);
}

#[test]
fn self_signed_x509_device_authenticates_by_thumbprint() {
    let hub = hub();
    let certificate = tls::self_signed_client_certificate(&tls::ClientCertificateRequest {
        common_name: "x509-dev".to_owned(),
        validity: tls::CertificateValidity::days_from_now(30),
    })
    .expect("self-signed certificate");
    let directory = tempfile::tempdir().expect("tempdir");
    let cert_file = directory.path().join("device.pem");
    let key_file = directory.path().join("device.key.pem");
    std::fs::write(&cert_file, certificate.chain_pem()).expect("write cert");
    std::fs::write(&key_file, certificate.private_key_pem()).expect("write key");
    let thumbprint = tls::thumbprint_sha1_hex(certificate.end_entity());
    let result = hub.scenario(
        &[
            "x509_device",
            "x509-dev",
            cert_file.to_str().expect("utf-8"),
            key_file.to_str().expect("utf-8"),
            &thumbprint,
        ],
        &[],
    );
    assert_eq!(result["authenticationType"], "selfSigned");
    let events = read_events(&hub, "x509-dev", 1);
    assert_eq!(events[0]["body"], "from an x509 device");
}
