//! Routing decisions, configuration validation and notifications: the pure parts of the crate.

use chrono::{TimeZone, Utc};
use expect_test::{Expect, expect};
use hub_routing::{
    LifecycleOperation, NotificationContext, RetryPolicy, RoutingConfig, RoutingDocument,
    RoutingSource, RoutingTable, TwinChangeOperation, device_lifecycle_event, twin_change_body,
    twin_change_event,
};
use iothub_types::{DeviceId, Message, ModuleId};
use proptest::prelude::*;
use serde_json::{Value, json};

// === helpers ===

/// One message to route in a [`check`] table.
struct Case {
    label: &'static str,
    source: RoutingSource,
    message: Message,
    twin: Option<Value>,
}

fn case(label: &'static str, message: Message) -> Case {
    Case {
        label,
        source: RoutingSource::DeviceMessages,
        message,
        twin: None,
    }
}

impl Case {
    fn with_twin(mut self, twin: Value) -> Case {
        self.twin = Some(twin);
        self
    }

    fn with_source(mut self, source: RoutingSource) -> Case {
        self.source = source;
        self
    }
}

/// A telemetry message as the hub stamps it: connection device id and enqueued time set.
fn telemetry(device_id: &str, properties: &[(&str, &str)]) -> Message {
    let mut message = Message::new(&b"raw bytes"[..]);
    for (name, value) in properties {
        message = message.with_application_property(*name, Some(*value));
    }
    message.system.connection_device_id = Some(device_id.to_owned());
    message.system.enqueued_time = Some("2030-01-02T03:04:05.000Z".to_owned());
    message
}

fn with_json_body(mut message: Message, body: &Value, content_type: &str) -> Message {
    message.body = body.to_string().into();
    message.system.content_type = Some(content_type.to_owned());
    message.system.content_encoding = Some("utf-8".to_owned());
    message
}

fn config(json: &str) -> RoutingConfig {
    match RoutingConfig::from_json(json.as_bytes()) {
        Ok(config) => config,
        Err(error) => panic!("test configuration is invalid: {error}"),
    }
}

/// Routes each case with `config_json` and renders the decision and the explanation.
fn check(config_json: &str, cases: &[Case], expected: Expect) {
    let table = RoutingTable::new(&config(config_json));
    let mut rendered = String::new();
    for case in cases {
        let endpoints = table.route(case.source, &case.message, case.twin.as_ref());
        let explanation = table.explain(case.source, &case.message, case.twin.as_ref());
        assert_eq!(explanation.endpoints, endpoints);
        let set = table.route_set(case.source, &case.message, case.twin.as_ref());
        assert_eq!(set.len(), endpoints.len());
        let endpoints: Vec<&str> = endpoints.iter().map(|name| name.as_str()).collect();
        let routes: Vec<&str> = explanation
            .matched_routes
            .iter()
            .map(|name| name.as_str())
            .collect();
        rendered.push_str(&format!(
            "{}: [{}] routes [{}]{}\n",
            case.label,
            endpoints.join(", "),
            routes.join(", "),
            if explanation.fallback_applied {
                " + fallback"
            } else {
                ""
            }
        ));
    }
    expected.assert_eq(&rendered);
}

/// Validates `json` and renders either the normalized document or every error.
fn check_config(json: &str, expected: Expect) {
    let rendered = match RoutingConfig::from_json(json.as_bytes()) {
        Ok(config) => {
            serde_json::to_string_pretty(&config.to_document()).unwrap_or_default() + "\n"
        }
        Err(error) => format!("{error}\n"),
    };
    expected.assert_eq(&rendered);
}

fn weather_body(temperature: i64) -> Value {
    // The sample body of Microsoft's routing query documentation.
    json!({
        "Weather": {
            "Temperature": temperature,
            "Time": "2017-03-09T00:00:00.000Z",
            "PrevTemperatures": [20, 30, 40],
            "IsEnabled": true,
            "Location": {"Street": "One Microsoft Way", "City": "Redmond", "State": "WA"},
            "HistoricalData": [{"Month": "Feb", "Temperature": 40}, {"Month": "Jan", "Temperature": 30}]
        }
    })
}

const DOC_EXAMPLES: &str = r#"{
  "endpoints": {
    "webhooks": [
      {"name": "hot-store", "url": "http://127.0.0.1:9000/hot"},
      {"name": "alerts", "url": "http://alerts.example:8080/in"}
    ],
    "files": [
      {"name": "dev1-archive", "path": "archive/dev1.jsonl"},
      {"name": "prod", "path": "prod.jsonl"}
    ]
  },
  "routes": [
    {"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'",
     "endpointNames": ["hot-store"], "isEnabled": true},
    {"name": "too-warm", "source": "DeviceMessages", "condition": "$body.Weather.Temperature > 50",
     "endpointNames": ["alerts"], "isEnabled": true},
    {"name": "dev1", "source": "DeviceMessages", "condition": "$connectionDeviceId = 'dev1'",
     "endpointNames": ["dev1-archive"], "isEnabled": true},
    {"name": "production", "source": "DeviceMessages", "condition": "$twin.tags.env = 'prod'",
     "endpointNames": ["prod", "events"], "isEnabled": true},
    {"name": "february", "source": "DeviceMessages",
     "condition": "$body.Weather.HistoricalData[0].Month = 'Feb' AND length($body.Weather.Location.State) = 2",
     "endpointNames": ["alerts"], "isEnabled": true},
    {"name": "severe", "source": "DeviceMessages", "condition": "as_number(severity) <= 2",
     "endpointNames": ["alerts", "hot-store"], "isEnabled": true},
    {"name": "disabled", "source": "DeviceMessages", "endpointNames": ["prod"], "isEnabled": false},
    {"name": "twin-changes", "source": "TwinChangeEvents",
     "condition": "$body.properties.reported.temperature > 30", "endpointNames": ["alerts"]}
  ]
}"#;

// === routing decisions ===

#[test]
fn microsoft_documentation_examples() {
    check(
        DOC_EXAMPLES,
        &[
            case("hot path", telemetry("dev2", &[("processingPath", "hot")])),
            case(
                "property names ignore case",
                telemetry("dev2", &[("PROCESSINGPATH", "hot")]),
            ),
            case(
                "values do not",
                telemetry("dev2", &[("processingPath", "HOT")]),
            ),
            case(
                "warm json body",
                with_json_body(
                    telemetry("dev2", &[]),
                    &weather_body(55),
                    "application/json",
                ),
            ),
            case(
                "json with charset",
                with_json_body(
                    telemetry("dev2", &[]),
                    &weather_body(55),
                    "application/json; charset=utf-8",
                ),
            ),
            case(
                "warm body without json content type",
                with_json_body(telemetry("dev2", &[]), &weather_body(55), "text/plain"),
            ),
            case(
                "cool json body still matches february",
                with_json_body(
                    telemetry("dev2", &[]),
                    &weather_body(20),
                    "application/json",
                ),
            ),
            case("device dev1", telemetry("dev1", &[])),
            case(
                "dev1 hot: both, once each",
                telemetry("dev1", &[("processingPath", "hot")]),
            ),
            case("production twin", telemetry("dev4", &[]))
                .with_twin(json!({"deviceId": "dev4", "tags": {"env": "prod"}})),
            case("test twin", telemetry("dev4", &[]))
                .with_twin(json!({"deviceId": "dev4", "tags": {"env": "test"}})),
            case(
                "severity 1 routes to two endpoints",
                telemetry("dev5", &[("severity", "1")]),
            ),
            case(
                "severity and hot overlap",
                telemetry("dev5", &[("severity", "2"), ("processingPath", "hot")]),
            ),
            case(
                "severity not a number",
                telemetry("dev5", &[("severity", "low")]),
            ),
            case(
                "twin change with hot reported temperature",
                with_json_body(
                    telemetry("dev6", &[]),
                    &json!({"version": 3, "properties": {"reported": {"temperature": 35}}}),
                    "application/json",
                ),
            )
            .with_source(RoutingSource::TwinChangeEvents),
            case(
                "twin change that matches nothing never falls back",
                with_json_body(
                    telemetry("dev6", &[]),
                    &json!({"version": 3, "properties": {"reported": {"temperature": 20}}}),
                    "application/json",
                ),
            )
            .with_source(RoutingSource::TwinChangeEvents),
            case(
                "lifecycle events without routes go nowhere",
                telemetry("dev6", &[]),
            )
            .with_source(RoutingSource::DeviceLifecycleEvents),
        ],
        expect![[r#"
            hot path: [hot-store] routes [hot]
            property names ignore case: [hot-store] routes [hot]
            values do not: [events] routes [] + fallback
            warm json body: [alerts] routes [too-warm, february]
            json with charset: [alerts] routes [too-warm, february]
            warm body without json content type: [events] routes [] + fallback
            cool json body still matches february: [alerts] routes [february]
            device dev1: [dev1-archive] routes [dev1]
            dev1 hot: both, once each: [hot-store, dev1-archive] routes [hot, dev1]
            production twin: [events, prod] routes [production]
            test twin: [events] routes [] + fallback
            severity 1 routes to two endpoints: [hot-store, alerts] routes [severe]
            severity and hot overlap: [hot-store, alerts] routes [hot, severe]
            severity not a number: [events] routes [] + fallback
            twin change with hot reported temperature: [alerts] routes [twin-changes]
            twin change that matches nothing never falls back: [] routes []
            lifecycle events without routes go nowhere: [] routes []
        "#]],
    );
}

#[test]
fn twin_is_needed_only_where_a_condition_mentions_it() {
    let render = |json: &str| {
        let table = RoutingTable::new(&config(json));
        RoutingSource::ALL
            .iter()
            .map(|source| {
                format!(
                    "{}: mayRoute={} needsTwin={}",
                    source.as_str(),
                    table.may_route(*source),
                    table.needs_twin(*source)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    expect![[r#"
        DeviceMessages: mayRoute=true needsTwin=false
        TwinChangeEvents: mayRoute=false needsTwin=false
        DeviceLifecycleEvents: mayRoute=false needsTwin=false
    "#]]
    .assert_eq(&render("{}"));
    expect![[r#"
        DeviceMessages: mayRoute=true needsTwin=true
        TwinChangeEvents: mayRoute=true needsTwin=false
        DeviceLifecycleEvents: mayRoute=false needsTwin=false
    "#]]
    .assert_eq(&render(DOC_EXAMPLES));
    // Case is ignored; a disabled route does not count; the fallback route's condition counts.
    expect![[r#"
        DeviceMessages: mayRoute=true needsTwin=true
        TwinChangeEvents: mayRoute=true needsTwin=true
        DeviceLifecycleEvents: mayRoute=false needsTwin=false
    "#]]
    .assert_eq(&render(
        r#"{"routes": [
            {"name": "t", "source": "TwinChangeEvents", "condition": "$TWIN.tags.a = 1", "endpointNames": ["events"]},
            {"name": "l", "source": "DeviceLifecycleEvents", "condition": "$twin.tags.a = 1",
             "endpointNames": ["events"], "isEnabled": false}
        ],
        "fallbackRoute": {"condition": "$twin.tags.env != 'test'", "isEnabled": true}}"#,
    ));
    expect![[r#"
        DeviceMessages: mayRoute=false needsTwin=false
        TwinChangeEvents: mayRoute=false needsTwin=false
        DeviceLifecycleEvents: mayRoute=false needsTwin=false
    "#]]
    .assert_eq(&render(r#"{"fallbackRoute": {"isEnabled": false}}"#));
}

#[test]
fn fallback_route_cases() {
    let messages = || {
        [
            case(
                "matches a route",
                telemetry("dev1", &[("processingPath", "hot")]),
            ),
            case("matches none", telemetry("dev2", &[])),
        ]
    };
    // A new hub: no routes, fallback enabled.
    check(
        "{}",
        &messages(),
        expect![[r#"
            matches a route: [events] routes [] + fallback
            matches none: [events] routes [] + fallback
        "#]],
    );
    // Routes exist: only unmatched messages fall back.
    let with_route = r#"{"endpoints": {"files": [{"name": "hot", "path": "hot.jsonl"}]},
        "routes": [{"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'", "endpointNames": ["hot"]}]}"#;
    check(
        with_route,
        &messages(),
        expect![[r#"
        matches a route: [hot] routes [hot]
        matches none: [events] routes [] + fallback
    "#]],
    );
    // Fallback disabled: unmatched messages are dropped.
    let disabled = r#"{"endpoints": {"files": [{"name": "hot", "path": "hot.jsonl"}]},
        "routes": [{"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'", "endpointNames": ["hot"]}],
        "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": false}}"#;
    check(
        disabled,
        &messages(),
        expect![[r#"
        matches a route: [hot] routes [hot]
        matches none: [] routes []
    "#]],
    );
    // A disabled route does not count as matching, so its messages fall back.
    let disabled_route = r#"{"endpoints": {"files": [{"name": "hot", "path": "hot.jsonl"}]},
        "routes": [{"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'", "endpointNames": ["hot"], "isEnabled": false}]}"#;
    check(
        disabled_route,
        &messages(),
        expect![[r#"
        matches a route: [events] routes [] + fallback
        matches none: [events] routes [] + fallback
    "#]],
    );
    // A fallback condition narrows what falls back.
    let conditional =
        r#"{"fallbackRoute": {"condition": "$connectionDeviceId = 'dev1'", "isEnabled": true}}"#;
    check(
        conditional,
        &messages(),
        expect![[r#"
        matches a route: [events] routes [] + fallback
        matches none: [] routes []
    "#]],
    );
}

#[test]
fn undefined_and_non_boolean_conditions_do_not_match() {
    let json = r#"{"endpoints": {"files": [{"name": "f", "path": "f.jsonl"}]},
        "routes": [
          {"name": "string", "source": "DeviceMessages", "condition": "processingPath", "endpointNames": ["f"]},
          {"name": "missing", "source": "DeviceMessages", "condition": "NOT (level = 'critical')", "endpointNames": ["f"]}
        ],
        "fallbackRoute": {"isEnabled": false}}"#;
    check(
        json,
        &[
            case(
                "string value is not true",
                telemetry("d", &[("processingPath", "hot")]),
            ),
            case("NOT of undefined is undefined", telemetry("d", &[])),
            case("NOT of false is true", telemetry("d", &[("level", "info")])),
            case("key without value reads as empty", {
                telemetry("d", &[]).with_application_property("level", None::<String>)
            }),
        ],
        expect![[r#"
            string value is not true: [] routes []
            NOT of undefined is undefined: [] routes []
            NOT of false is true: [f] routes [missing]
            key without value reads as empty: [f] routes [missing]
        "#]],
    );
}

// === configuration ===

#[test]
fn valid_configuration_normalizes_with_defaults() {
    check_config(
        r#"{"endpoints": {"webhooks": [{"name": "w", "url": "http://[::1]:8080/hook?x=1", "headers": {"X-Api-Key": "secret"}}],
                          "files": [{"name": "f", "path": "a//b.jsonl"}]},
            "routes": [{"name": "r", "source": "devicemessages", "endpointNames": ["w", "f", "w"]}]}"#,
        expect![[r#"
            {
              "endpoints": {
                "webhooks": [
                  {
                    "name": "w",
                    "url": "http://[::1]:8080/hook?x=1",
                    "headers": {
                      "x-api-key": "secret"
                    },
                    "maxAttempts": 5,
                    "initialBackoffMs": 500,
                    "maxBackoffMs": 30000,
                    "timeoutMs": 10000
                  }
                ],
                "files": [
                  {
                    "name": "f",
                    "path": "a/b.jsonl"
                  }
                ]
              },
              "routes": [
                {
                  "name": "r",
                  "source": "DeviceMessages",
                  "condition": "true",
                  "endpointNames": [
                    "w",
                    "f"
                  ],
                  "isEnabled": true
                }
              ],
              "fallbackRoute": {
                "name": "$fallback",
                "source": "DeviceMessages",
                "condition": "true",
                "endpointNames": [
                  "events"
                ],
                "isEnabled": true
              }
            }
        "#]],
    );
}

#[test]
fn every_configuration_error_is_reported() {
    check_config(
        r#"{
          "endpoints": {
            "webhooks": [
              {"name": "secure", "url": "https://example.com/hook"},
              {"name": "relative", "url": "/hook"},
              {"name": "ftp", "url": "ftp://example.com/"},
              {"name": "creds", "url": "http://user:pw@example.com/"},
              {"name": "events", "url": "http://example.com/"},
              {"name": "bad name!", "url": "http://example.com/"},
              {"name": "headers", "url": "http://example.com/", "headers": {"Host": "x", "bad header": "v", "x-ok": "line\nbreak"}},
              {"name": "retry", "url": "http://example.com/", "maxAttempts": 0, "initialBackoffMs": 5000, "maxBackoffMs": 100, "timeoutMs": 0},
              {"name": "dup", "url": "http://example.com/"}
            ],
            "files": [
              {"name": "DUP", "path": "a.jsonl"},
              {"name": "escape", "path": "../etc/passwd"},
              {"name": "absolute", "path": "/var/log/x"},
              {"name": "spaces", "path": "my file.jsonl"},
              {"name": "same-file", "path": "./a.jsonl"},
              {"name": "same-file-2", "path": "a.jsonl"}
            ]
          },
          "routes": [
            {"name": "bad-condition", "source": "DeviceMessages", "condition": "temperature > ", "endpointNames": ["events"]},
            {"name": "bad-function", "source": "DeviceMessages", "condition": "upper(a, b) = 'X'", "endpointNames": ["events"]},
            {"name": "unknown-endpoint", "source": "DeviceMessages", "endpointNames": ["nowhere", "events"]},
            {"name": "no-endpoints", "source": "DeviceMessages", "endpointNames": []},
            {"name": "connection-state", "source": "DeviceConnectionStateEvents", "endpointNames": ["events"]},
            {"name": "Dup-Route", "source": "DeviceMessages", "endpointNames": ["events"]},
            {"name": "dup-route", "source": "DeviceMessages", "endpointNames": ["events"]},
            {"name": "", "source": "DeviceMessages", "endpointNames": ["events"]}
          ],
          "fallbackRoute": {"source": "TwinChangeEvents", "endpointNames": ["dup"], "condition": "a =", "isEnabled": true}
        }"#,
        expect![[r#"
            invalid routing configuration (28 problems)
            - endpoint "secure": url "https://example.com/hook" is invalid: https is not supported, the webhook sender speaks plain http
            - endpoint "relative": url "/hook" is invalid: expected an absolute http:// URL
            - endpoint "ftp": url "ftp://example.com/" is invalid: unsupported scheme "ftp", expected http
            - endpoint "creds": url "http://user:pw@example.com/" is invalid: credentials in the URL are not supported, use headers
            - endpoint name "events" is reserved (events, fileNotifications and $default are)
            - endpoint name "bad name!" is invalid: name contains ' ' at byte 3; only ASCII letters, digits, '.', '_' and '-' are allowed
            - endpoint "headers": header "Host" is invalid: the webhook sender sets this header
            - endpoint "headers": header "bad header" is invalid: not a valid header name
            - endpoint "headers": header "x-ok" is invalid: the value must be visible ASCII, spaces or tabs
            - endpoint "retry": invalid retry policy: maxAttempts is 0, expected 1 to 100
            - endpoint "retry": invalid retry policy: initialBackoffMs (5000) is greater than maxBackoffMs (100)
            - endpoint "retry": invalid retry policy: timeoutMs is 0, expected 1 to 300000
            - endpoint "DUP" is defined more than once (names are compared ignoring case)
            - endpoint "escape": file path "../etc/passwd" is invalid: must not contain '.' or '..' segments
            - endpoint "absolute": file path "/var/log/x" is invalid: must be relative to the router's file directory
            - endpoint "spaces": file path "my file.jsonl" is invalid: contains ' '; segments may only use ASCII letters, digits, '.', '_' and '-'
            - endpoint "same-file": file path "./a.jsonl" is invalid: must not contain '.' or '..' segments
            - endpoint "same-file-2": file path "a.jsonl" is already used by endpoint "DUP"
            - route "bad-condition": condition does not parse
            error: expected expression, found end of input
             --> 1:15
              |
            1 | temperature > 
              |               ^
            - route "bad-function": condition does not parse
            error: function `UPPER` takes 1 arguments, found 2
             --> 1:1
              |
            1 | upper(a, b) = 'X'
              | ^^^^^^^^^^^
            - route "unknown-endpoint": unknown endpoint "nowhere"
            - route "no-endpoints": endpointNames is empty
            - route "connection-state": unknown source "DeviceConnectionStateEvents", expected DeviceMessages, TwinChangeEvents or DeviceLifecycleEvents
            - route "dup-route" is defined more than once (names are compared ignoring case)
            - route name "" is invalid: name must not be empty
            - fallback route: source is "TwinChangeEvents", only DeviceMessages is allowed
            - fallback route: endpointNames is ["dup"], only ["events"] is allowed
            - route "$fallback": condition does not parse
            error: expected expression, found end of input
             --> 1:4
              |
            1 | a =
              |    ^
        "#]],
    );
}

#[test]
fn shape_errors_come_from_serde() {
    check_config(
        r#"{"endpoints": {"eventHubs": []}}"#,
        expect![[r#"
            routing configuration is not valid JSON of the expected shape: unknown field `eventHubs`, expected `webhooks` or `files` at line 1 column 26
        "#]],
    );
    check_config(
        r#"{"routes": [{"name": "r", "source": "DeviceMessages"}]}"#,
        expect![[r#"
            routing configuration is not valid JSON of the expected shape: missing field `endpointNames` at line 1 column 53
        "#]],
    );
}

#[test]
fn document_round_trips() {
    let config = config(DOC_EXAMPLES);
    let document = config.to_document();
    let json = serde_json::to_string(&document).unwrap();
    let reparsed: RoutingDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(reparsed, document);
    assert_eq!(RoutingConfig::from_document(&reparsed).unwrap(), config);
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let policy = RetryPolicy {
        max_attempts: 10,
        initial_backoff: std::time::Duration::from_millis(500),
        max_backoff: std::time::Duration::from_secs(30),
        attempt_timeout: std::time::Duration::from_secs(10),
    };
    let waits: Vec<String> = (1..=9)
        .map(|attempt| format!("{}ms", policy.backoff_after(attempt).as_millis()))
        .collect();
    expect!["500ms 1000ms 2000ms 4000ms 8000ms 16000ms 30000ms 30000ms 30000ms"]
        .assert_eq(&waits.join(" "));
    assert_eq!(policy.backoff_after(u32::MAX), policy.max_backoff);
}

// === notifications ===

fn render_message(message: &Message) -> String {
    let mut rendered = String::new();
    for (property, value) in message.system.iter() {
        rendered.push_str(&format!("system {} = {value}\n", property.routing_name()));
    }
    for (name, value) in &message.application {
        rendered.push_str(&format!(
            "app {name} = {}\n",
            value.as_deref().unwrap_or("")
        ));
    }
    rendered.push_str(&format!(
        "body {}\n",
        String::from_utf8_lossy(&message.body)
    ));
    rendered
}

#[test]
fn twin_change_and_lifecycle_notifications() {
    let device_id = DeviceId::new("thermostat-1").unwrap();
    let module_id = ModuleId::new("sensor").unwrap();
    let context = NotificationContext {
        hub_name: "outpost",
        device_id: &device_id,
        module_id: None,
        operation_time: Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap(),
    };
    let diff = twin_change_body(
        7,
        None,
        None,
        Some(
            &json!({"temperature": 35, "$metadata": {"$lastUpdated": "2030-01-02T03:04:05.000Z"}, "$version": 4}),
        ),
    );
    let twin_change = twin_change_event(&context, TwinChangeOperation::UpdateTwin, &diff);
    let module_context = NotificationContext {
        module_id: Some(&module_id),
        ..context
    };
    let lifecycle = device_lifecycle_event(
        &module_context,
        LifecycleOperation::DeleteDeviceIdentity,
        &json!({"deviceId": "thermostat-1", "moduleId": "sensor", "version": 2}),
    );
    expect![[r#"
        system $contentType = application/json
        system $contentEncoding = utf-8
        system $connectionDeviceId = thermostat-1
        system $enqueuedTime = 2030-01-02T03:04:05.000Z
        system $iothub-message-source = twinChangeEvents
        app hubName = outpost
        app deviceId = thermostat-1
        app operationTimestamp = 2030-01-02T03:04:05.000Z
        app iothub-message-schema = twinChangeNotification
        app opType = updateTwin
        body {"properties":{"reported":{"$metadata":{"$lastUpdated":"2030-01-02T03:04:05.000Z"},"$version":4,"temperature":35}},"version":7}
        ---
        system $contentType = application/json
        system $contentEncoding = utf-8
        system $connectionDeviceId = thermostat-1
        system $connectionModuleId = sensor
        system $enqueuedTime = 2030-01-02T03:04:05.000Z
        system $iothub-message-source = deviceLifecycleEvents
        app hubName = outpost
        app deviceId = thermostat-1
        app moduleId = sensor
        app operationTimestamp = 2030-01-02T03:04:05.000Z
        app iothub-message-schema = deviceLifecycleNotification
        app opType = deleteDeviceIdentity
        body {"deviceId":"thermostat-1","moduleId":"sensor","version":2}
    "#]]
    .assert_eq(&format!(
        "{}---\n{}",
        render_message(&twin_change),
        render_message(&lifecycle)
    ));

    let routes = r#"{"endpoints": {"files": [{"name": "twins", "path": "twins.jsonl"}, {"name": "deletions", "path": "deletions.jsonl"}]},
        "routes": [
          {"name": "hot-twins", "source": "TwinChangeEvents",
           "condition": "$iothub-message-source = 'twinChangeEvents' AND opType = 'updateTwin' AND $body.properties.reported.temperature > 30",
           "endpointNames": ["twins"]},
          {"name": "deletions", "source": "DeviceLifecycleEvents", "condition": "opType = 'deleteDeviceIdentity' AND moduleId = 'sensor'",
           "endpointNames": ["deletions", "events"]}
        ]}"#;
    check(
        routes,
        &[
            case("twin change", twin_change.clone()).with_source(RoutingSource::TwinChangeEvents),
            case("twin change read as telemetry", twin_change),
            case("module deletion", lifecycle).with_source(RoutingSource::DeviceLifecycleEvents),
        ],
        expect![[r#"
            twin change: [twins] routes [hot-twins]
            twin change read as telemetry: [events] routes [] + fallback
            module deletion: [events, deletions] routes [deletions]
        "#]],
    );
}

// === property test against a naive model ===

/// Conditions with an obviously correct model over the generated messages.
const CONDITIONS: [&str; 8] = [
    "true",
    "false",
    "processingPath = 'hot'",
    "$connectionDeviceId = 'dev1'",
    "$body.Weather.Temperature > 50",
    "level = 'critical' OR $connectionDeviceId = 'dev2'",
    "NOT (processingPath = 'cold')",
    "$twin.tags.env = 'prod'",
];

#[derive(Debug, Clone)]
struct GeneratedMessage {
    device: &'static str,
    processing_path: Option<&'static str>,
    level: Option<&'static str>,
    temperature: Option<i64>,
    json_content_type: bool,
    twin_env: Option<&'static str>,
}

impl GeneratedMessage {
    fn message(&self) -> Message {
        let mut message = telemetry(self.device, &[]);
        if let Some(path) = self.processing_path {
            message = message.with_application_property("processingPath", Some(path));
        }
        if let Some(level) = self.level {
            message = message.with_application_property("level", Some(level));
        }
        if let Some(temperature) = self.temperature {
            message = with_json_body(
                message,
                &weather_body(temperature),
                if self.json_content_type {
                    "application/json"
                } else {
                    "application/octet-stream"
                },
            );
        }
        message
    }

    fn twin(&self) -> Option<Value> {
        self.twin_env.map(|env| json!({"tags": {"env": env}}))
    }

    /// The model of `CONDITIONS[index]`.
    fn satisfies(&self, index: usize) -> bool {
        match index {
            0 => true,
            1 => false,
            2 => self.processing_path == Some("hot"),
            3 => self.device == "dev1",
            4 => self.json_content_type && self.temperature.is_some_and(|t| t > 50),
            5 => self.level == Some("critical") || self.device == "dev2",
            6 => self.processing_path.is_some_and(|path| path != "cold"),
            7 => self.twin_env == Some("prod"),
            _ => unreachable!(),
        }
    }
}

fn generated_message() -> impl Strategy<Value = GeneratedMessage> {
    (
        prop::sample::select(vec!["dev1", "dev2", "dev3"]),
        prop::option::of(prop::sample::select(vec!["hot", "cold", "warm"])),
        prop::option::of(prop::sample::select(vec!["critical", "normal"])),
        prop::option::of(0_i64..100),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["prod", "test"])),
    )
        .prop_map(
            |(device, processing_path, level, temperature, json_content_type, twin_env)| {
                GeneratedMessage {
                    device,
                    processing_path,
                    level,
                    temperature,
                    json_content_type,
                    twin_env,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct GeneratedRoute {
    source: RoutingSource,
    condition: usize,
    /// Indexes into `["events", "e1", "e2", "e3", "e4"]`.
    endpoints: Vec<usize>,
    enabled: bool,
}

fn generated_route() -> impl Strategy<Value = GeneratedRoute> {
    (
        prop::sample::select(RoutingSource::ALL.to_vec()),
        0..CONDITIONS.len(),
        prop::collection::vec(0_usize..5, 1..4),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(source, condition, endpoints, enabled)| GeneratedRoute {
            source,
            condition,
            endpoints,
            enabled,
        })
}

const ENDPOINTS: [&str; 5] = ["events", "e1", "e2", "e3", "e4"];

fn document(routes: &[GeneratedRoute], fallback: Option<usize>) -> String {
    let routes: Vec<Value> = routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            json!({
                "name": format!("route-{index}"),
                "source": route.source.as_str(),
                "condition": CONDITIONS[route.condition],
                "endpointNames": route.endpoints.iter().map(|endpoint| ENDPOINTS[*endpoint]).collect::<Vec<_>>(),
                "isEnabled": route.enabled,
            })
        })
        .collect();
    json!({
        "endpoints": {
            "webhooks": [{"name": "e1", "url": "http://127.0.0.1:1/"}, {"name": "e2", "url": "http://127.0.0.1:2/"}],
            "files": [{"name": "e3", "path": "e3.jsonl"}, {"name": "e4", "path": "e4.jsonl"}]
        },
        "routes": routes,
        "fallbackRoute": {"condition": CONDITIONS[fallback.unwrap_or(0)], "isEnabled": fallback.is_some()}
    })
    .to_string()
}

/// The naive model: collect the endpoints of every matching enabled route of the source; if
/// none matched, apply the fallback to device messages; sort by endpoint index, deduplicated.
fn model_route(
    routes: &[GeneratedRoute],
    fallback: Option<usize>,
    source: RoutingSource,
    message: &GeneratedMessage,
) -> Vec<String> {
    let mut selected: Vec<usize> = Vec::new();
    let mut matched = false;
    for route in routes {
        if route.enabled && route.source == source && message.satisfies(route.condition) {
            matched = true;
            selected.extend(&route.endpoints);
        }
    }
    if !matched
        && source == RoutingSource::DeviceMessages
        && fallback.is_some_and(|condition| message.satisfies(condition))
    {
        selected.push(0);
    }
    selected.sort_unstable();
    selected.dedup();
    selected
        .into_iter()
        .map(|index| ENDPOINTS[index].to_owned())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn route_matches_naive_model(
        routes in prop::collection::vec(generated_route(), 0..8),
        fallback in prop::option::of(0..CONDITIONS.len()),
        messages in prop::collection::vec((prop::sample::select(RoutingSource::ALL.to_vec()), generated_message()), 1..8),
    ) {
        let table = RoutingTable::new(&config(&document(&routes, fallback)));
        for (source, generated) in &messages {
            let twin = generated.twin();
            let actual: Vec<String> = table
                .route(*source, &generated.message(), twin.as_ref())
                .iter()
                .map(ToString::to_string)
                .collect();
            prop_assert_eq!(actual, model_route(&routes, fallback, *source, generated), "message {:?}", generated);
        }
    }
}
