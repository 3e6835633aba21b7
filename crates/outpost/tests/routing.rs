//! Message routing and twin queries on the real hub (issue 4, "On the hub"), driven by the
//! official Python SDKs and the `outpost` CLI.
//!
//! Routing: a webhook (an HTTP server in this test), file endpoints and `events`, routes with
//! conditions on application properties, `$body` and `$twin`, twin change and lifecycle events,
//! reconfiguration without restart, and a refused configuration with its caret diagram.
//! Queries: `query_iot_hub` paging and `outpost query` with `COUNT()` and a tag filter.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Hub, next_address};

static ADDRESSES: AtomicU8 = AtomicU8::new(0);

fn hub() -> Hub {
    Hub::start(&next_address(33, &ADDRESSES))
}

/// A plain HTTP/1.1 server on 127.0.0.1 that answers every POST with 200 and keeps the bodies.
struct Webhook {
    port: u16,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve_connection(stream, &sink));
            }
        });
        Webhook { port, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn records(&self) -> Vec<Value> {
        self.received.lock().expect("webhook records").clone()
    }
}

/// Serves keep-alive requests on one connection until the client closes it.
fn serve_connection(stream: TcpStream, sink: &Mutex<Vec<Value>>) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().expect("content length");
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        assert!(
            request_line.starts_with("POST /alerts "),
            "webhook request {request_line:?}"
        );
        sink.lock()
            .expect("webhook records")
            .push(serde_json::from_slice(&body).expect("json record"));
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

fn write_json(hub: &Hub, name: &str, value: &Value) -> PathBuf {
    let path = hub.data_dir.with_file_name(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write config");
    path
}

fn routing_stats(hub: &Hub) -> Value {
    serde_json::from_str(&hub.cli_ok(&["route", "stats", "--output", "json"])).expect("stats json")
}

/// Waits until every custom endpoint has an empty queue and `name` has delivered `count`.
fn wait_delivered(hub: &Hub, expected: &[(&str, u64)]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = routing_stats(hub);
        let endpoints = stats["endpoints"].as_array().expect("endpoints").clone();
        let delivered = |name: &str| {
            endpoints
                .iter()
                .find(|endpoint| endpoint["name"] == name)
                .map_or(0, |endpoint| {
                    endpoint["delivered"].as_u64().unwrap_or(0)
                        + endpoint["deadLettered"].as_u64().unwrap_or(0)
                })
        };
        let drained = endpoints.iter().all(|endpoint| endpoint["queued"] == 0);
        if drained
            && expected
                .iter()
                .all(|(name, count)| delivered(name) >= *count)
        {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "endpoints did not deliver {expected:?}: {stats}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn endpoint_stat(stats: &Value, name: &str, field: &str) -> u64 {
    stats["endpoints"]
        .as_array()
        .and_then(|endpoints| endpoints.iter().find(|endpoint| endpoint["name"] == name))
        .and_then(|endpoint| endpoint[field].as_u64())
        .unwrap_or_else(|| panic!("no {field} for {name}: {stats}"))
}

/// The JSON lines of a file endpoint.
fn file_records(hub: &Hub, relative: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(hub.data_dir.join("routing/files").join(relative))
        .unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect()
}

/// The `index` property of telemetry records of `device`, in order.
fn indexes(records: &[Value], device: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|record| record["SystemProperties"]["connectionDeviceId"] == device)
        .map(|record| {
            assert_eq!(
                record["Body"]["i"].to_string(),
                record["Properties"]["index"].as_str().expect("index")
            );
            record["Properties"]["index"]
                .as_str()
                .expect("index")
                .parse()
                .expect("number")
        })
        .collect()
}

/// Reads the events of `device` from the start of the log; stops after two idle seconds.
fn event_indexes(hub: &Hub, device: &str) -> BTreeSet<u64> {
    let stdout = hub.cli_ok(&[
        "monitor",
        "events",
        "--from",
        "start",
        "--device",
        device,
        "--max-messages",
        "1000",
        "--idle-timeout",
        "2",
        "--output",
        "json",
    ]);
    stdout
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("event json");
            event["applicationProperties"]["index"]
                .as_str()
                .expect("index")
                .parse()
                .expect("number")
        })
        .collect()
}

/// What the `telemetry` scenario sends: message `i` has `temp = 20 + i % 7` and alert
/// `high temp` when `i` is odd.
fn sent(count: u64, filter: impl Fn(u64, u64, bool) -> bool) -> Vec<u64> {
    (0..count)
        .filter(|index| filter(*index, 20 + index % 7, index % 2 == 1))
        .collect()
}

#[test]
fn routes_deliver_to_webhook_files_and_events_and_change_without_restart() {
    let mut hub = hub();
    let webhook = Webhook::start();
    let config = json!({
        "endpoints": {
            "webhooks": [{"name": "alerts", "url": webhook.url("/alerts"), "maxAttempts": 3, "initialBackoffMs": 50}],
            "files": [{"name": "archive", "path": "archive/telemetry.jsonl"},
                      {"name": "changes", "path": "changes.jsonl"}]
        },
        "routes": [
            {"name": "hot", "source": "DeviceMessages", "condition": "alert = 'high temp'", "endpointNames": ["alerts"]},
            {"name": "warm", "source": "DeviceMessages", "condition": "$body.temp >= 25",
             "endpointNames": ["archive", "events"]},
            {"name": "twins", "source": "TwinChangeEvents", "endpointNames": ["changes"]},
            {"name": "lifecycle", "source": "DeviceLifecycleEvents", "condition": "opType = 'createDeviceIdentity'",
             "endpointNames": ["changes"]}
        ]
    });
    let stdout = hub.cli_ok(&[
        "route",
        "set",
        write_json(&hub, "routing-1.json", &config)
            .to_str()
            .expect("path"),
    ]);
    assert_eq!(
        stdout.trim(),
        "routing applied: 4 routes, 1 webhooks, 2 files, fallback route enabled"
    );
    let shown: Value = serde_json::from_str(&hub.cli_ok(&["route", "show"])).expect("document");
    assert_eq!(shown["routes"][1]["condition"], "$body.temp >= 25");
    assert_eq!(shown["fallbackRoute"]["isEnabled"], true);
    let tested = hub.cli_ok(&[
        "route",
        "test",
        "--body",
        r#"{"i": 5, "temp": 25}"#,
        "-p",
        "alert=high temp",
        "--content-type",
        "application/json",
    ]);
    assert_eq!(
        tested,
        "matched routes: hot, warm\nendpoints:      events, alerts, archive\n"
    );
    let tested = hub.cli_ok(&[
        "route",
        "test",
        "--body",
        r#"{"temp": 25}"#,
        "-p",
        "alert=low",
    ]);
    assert_eq!(
        tested, "matched routes: (none)\nfallback route: applied\nendpoints:      events\n",
        "no content type, no $body"
    );

    hub.scenario(&["telemetry", "route-dev", "20"], &[]);
    hub.cli_ok(&["twin", "update", "route-dev", "--tags", r#"{"site": "b1"}"#]);
    let hot = sent(20, |_, _, alert| alert);
    let warm = sent(20, |_, temp, _| temp >= 25);
    let stats = wait_delivered(
        &hub,
        &[
            ("alerts", hot.len() as u64),
            ("archive", warm.len() as u64),
            ("changes", 2),
        ],
    );
    assert_eq!(
        endpoint_stat(&stats, "alerts", "delivered"),
        hot.len() as u64,
        "exactly the hot messages"
    );
    assert_eq!(
        endpoint_stat(&stats, "archive", "delivered"),
        warm.len() as u64,
        "exactly the warm messages"
    );
    assert_eq!(endpoint_stat(&stats, "alerts", "deadLettered"), 0);

    let alerts = webhook.records();
    assert_eq!(indexes(&alerts, "route-dev"), hot);
    assert_eq!(
        alerts[0]["SystemProperties"]["contentType"],
        "application/json"
    );
    assert_eq!(alerts[0]["Properties"]["alert"], "high temp");
    assert_eq!(
        indexes(&file_records(&hub, "archive/telemetry.jsonl"), "route-dev"),
        warm
    );
    // Messages matching a route go only where their routes say; the rest fall back to events.
    let expected_events: BTreeSet<u64> = sent(20, |index, temp, alert| {
        temp >= 25 || (!alert && !warm.contains(&index))
    })
    .into_iter()
    .collect();
    assert_eq!(event_indexes(&hub, "route-dev"), expected_events);

    let changes = file_records(&hub, "changes.jsonl");
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|record| {
            (
                record["SystemProperties"]["messageSource"]
                    .as_str()
                    .expect("source"),
                record["Properties"]["opType"].as_str().expect("opType"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("deviceLifecycleEvents", "createDeviceIdentity"),
            ("twinChangeEvents", "updateTwin")
        ]
    );
    assert_eq!(changes[1]["Body"]["tags"], json!({"site": "b1"}));
    assert_eq!(changes[1]["Properties"]["deviceId"], "route-dev");

    // New routes apply at once: alerts now takes tagged devices' non-alert messages only.
    let mut config = config;
    config["routes"][0]["condition"] = json!("$twin.tags.site = 'b1' AND alert <> 'high temp'");
    hub.cli_ok(&[
        "route",
        "set",
        write_json(&hub, "routing-2.json", &config)
            .to_str()
            .expect("path"),
    ]);
    let connection_string = hub.cli_ok(&["device", "connection-string", "route-dev"]);
    hub.scenario(
        &["telemetry_existing", "route-dev", "10"],
        &[("OUTPOST_DEVICE_CS", connection_string.trim())],
    );
    hub.scenario(&["telemetry", "untagged-dev", "10"], &[]);
    let calm = sent(10, |_, _, alert| !alert);
    wait_delivered(&hub, &[("alerts", (hot.len() + calm.len()) as u64)]);
    let alerts = webhook.records();
    assert_eq!(
        alerts.len(),
        hot.len() + calm.len(),
        "nothing from the untagged device"
    );
    assert_eq!(indexes(&alerts[hot.len()..], "route-dev"), calm);

    // A refused configuration leaves the one in force untouched.
    let mut invalid = config.clone();
    invalid["routes"][1]["condition"] = json!("$body.temp >= = 25");
    invalid["routes"][2]["endpointNames"] = json!(["nowhere"]);
    let refused = hub.cli(&[
        "route",
        "set",
        write_json(&hub, "routing-bad.json", &invalid)
            .to_str()
            .expect("path"),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("400"), "names the status: {stderr}");
    assert!(
        stderr.contains("route \"warm\": condition does not parse"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 | $body.temp >= = 25\n  |               ^"),
        "caret diagram: {stderr}"
    );
    assert!(
        stderr.contains("route \"twins\": unknown endpoint \"nowhere\""),
        "every problem: {stderr}"
    );

    // The configuration in force survives a crash.
    hub.restart();
    let shown: Value = serde_json::from_str(&hub.cli_ok(&["route", "show"])).expect("document");
    assert_eq!(
        shown["routes"][0]["condition"],
        "$twin.tags.site = 'b1' AND alert <> 'high temp'"
    );
}

#[test]
fn service_sdk_pages_through_query_results() {
    let hub = hub();
    let result = hub.scenario(&["query_paging", "20"], &[]);
    assert_eq!(result["seen"], 20);
    assert_eq!(result["pages"], 3, "20 twins in pages of 7");
}

#[test]
fn cli_query_counts_devices_and_filters_on_tags() {
    let hub = hub();
    for (device, env) in [("q-1", "prod"), ("q-2", "test"), ("q-3", "prod")] {
        hub.cli_ok(&["device", "create", device]);
        hub.cli_ok(&[
            "twin",
            "update",
            device,
            "--tags",
            &json!({"env": env}).to_string(),
        ]);
    }
    let count: Value = serde_json::from_str(&hub.cli_ok(&[
        "query",
        "SELECT COUNT() AS n FROM devices",
        "--output",
        "json",
    ]))
    .expect("json");
    assert_eq!(count, json!([{"n": 3}]));
    let rows: Value = serde_json::from_str(&hub.cli_ok(&[
        "query",
        "SELECT * FROM devices WHERE tags.env = 'prod'",
        "--page-size",
        "1",
        "--output",
        "json",
    ]))
    .expect("json");
    let ids: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["deviceId"].as_str().expect("deviceId"))
        .collect();
    assert_eq!(ids, ["q-1", "q-3"]);
    assert_eq!(rows[0]["tags"], json!({"env": "prod"}));
    let table = hub.cli_ok(&[
        "query",
        "SELECT deviceId, tags.env AS env FROM devices WHERE tags.env != 'prod'",
    ]);
    assert_eq!(table, "{\"deviceId\":\"q-2\",\"env\":\"test\"}\n");
}
