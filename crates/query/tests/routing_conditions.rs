//! Data-driven routing-condition tests over messages: system and application properties,
//! `$body` with every supported encoding, `$twin`, and the examples from Microsoft's routing
//! query documentation.

use expect_test::{Expect, expect};
use query::{Condition, SimpleMessage, SystemProperty};
use serde_json::{Value, json};

fn weather_body() -> Value {
    json!({
        "Weather": {
            "Temperature": 50,
            "Time": "2017-03-09T00:00:00.000Z",
            "PrevTemperatures": [20, 30, 40],
            "IsEnabled": true,
            "Location": {"Street": "One Microsoft Way", "City": "Redmond", "State": "WA"},
            "HistoricalData": [
                {"Month": "Feb", "Temperature": 40},
                {"Month": "Jan", "Temperature": 30}
            ]
        }
    })
}

fn device_twin() -> Value {
    json!({
        "deviceId": "dev1",
        "tags": {"deploymentLocation": {"building": "43", "floor": "1"}},
        "properties": {
            "desired": {"telemetryConfig": {"sendFrequency": "5m"}, "$metadata": {}, "$version": 1},
            "reported": {"telemetryConfig": {"sendFrequency": "5m", "status": "success"}, "batteryLevel": 55, "$version": 4}
        }
    })
}

/// The message from the routing documentation: system properties, application properties
/// `processingPath`, `verbose`, `severity`, `testDevice`, a JSON body and the sender's twin.
fn documented_message() -> SimpleMessage {
    SimpleMessage::new()
        .with_system_property(SystemProperty::ConnectionDeviceId, "dev1")
        .with_system_property(SystemProperty::MessageId, "msg-1")
        .with_system_property(SystemProperty::CorrelationId, "corr-1")
        .with_system_property(SystemProperty::UserId, "user-1")
        .with_system_property(SystemProperty::EnqueuedTime, "2026-11-27T10:00:00.000Z")
        .with_system_property(SystemProperty::MessageSource, "Telemetry")
        .with_application_property("processingPath", "hot")
        .with_application_property("verbose", "true")
        .with_application_property("Severity", "1")
        .with_application_property("testDevice", "false")
        .with_application_property("$messageId", "shadowed")
        .with_application_property("$custom", "app-dollar")
        .with_json_body(&weather_body())
        .with_twin(device_twin())
}

/// Evaluates each condition against `message`, one line each: the value (or `undefined`) and
/// whether the message is routed, or the parse error.
fn check(message: &SimpleMessage, conditions: &[&str], expect: Expect) {
    let mut rendered = String::new();
    for source in conditions {
        let line = match Condition::parse(source) {
            Ok(condition) => {
                let value = condition
                    .evaluate_to_json(message)
                    .map_or_else(|| "undefined".to_string(), |value| value.to_string());
                let routed = if condition.evaluate(message) {
                    "routed"
                } else {
                    "dropped"
                };
                format!("{value} ({routed})")
            }
            Err(error) => format!("error: {error}"),
        };
        rendered.push_str(&format!("{source} => {line}\n"));
    }
    expect.assert_eq(&rendered);
}

#[test]
fn documented_routing_examples() {
    check(
        &documented_message(),
        &[
            "true",
            "processingPath = 'hot'",
            "processingPath = 'hot' AND verbose = 'true'",
            "as_number(severity) <= 2",
            "$body.Weather.HistoricalData[0].Month = 'Feb'",
            "length($body.Weather.Location.State) = 2",
            "$body.Weather.Temperature = 50 AND $body.Weather.IsEnabled",
            "$body.Weather.Temperature = 50 AND processingPath = 'hot'",
            "$body.Weather.Temperature = 50 AND $body.Weather.PrevTemperatures[2] = 40",
            "$twin.properties.desired.telemetryConfig.sendFrequency = '5m'",
            "$twin.properties.reported.telemetryConfig.status = 'success'",
            "$twin.tags.deploymentLocation.building = '43'",
            "$twin.properties.desired.telemetryConfig.sendFrequency = '5m' AND $body.Weather.Temperature = 50 AND processingPath = 'hot'",
            "$connectionDeviceId = 'dev1'",
            "NOT IS_DEFINED($connectionModuleId)",
            "$iothub-message-source = 'Telemetry'",
            "$enqueuedTime > '2026-01-01' AND $iothub-enqueuedtime < '2027'",
        ],
        expect![[r#"
            true => true (routed)
            processingPath = 'hot' => true (routed)
            processingPath = 'hot' AND verbose = 'true' => true (routed)
            as_number(severity) <= 2 => true (routed)
            $body.Weather.HistoricalData[0].Month = 'Feb' => true (routed)
            length($body.Weather.Location.State) = 2 => true (routed)
            $body.Weather.Temperature = 50 AND $body.Weather.IsEnabled => true (routed)
            $body.Weather.Temperature = 50 AND processingPath = 'hot' => true (routed)
            $body.Weather.Temperature = 50 AND $body.Weather.PrevTemperatures[2] = 40 => true (routed)
            $twin.properties.desired.telemetryConfig.sendFrequency = '5m' => true (routed)
            $twin.properties.reported.telemetryConfig.status = 'success' => true (routed)
            $twin.tags.deploymentLocation.building = '43' => true (routed)
            $twin.properties.desired.telemetryConfig.sendFrequency = '5m' AND $body.Weather.Temperature = 50 AND processingPath = 'hot' => true (routed)
            $connectionDeviceId = 'dev1' => true (routed)
            NOT IS_DEFINED($connectionModuleId) => true (routed)
            $iothub-message-source = 'Telemetry' => true (routed)
            $enqueuedTime > '2026-01-01' AND $iothub-enqueuedtime < '2027' => true (routed)
        "#]],
    );
}

#[test]
fn property_lookup_rules() {
    check(
        &documented_message(),
        &[
            "PROCESSINGPATH",
            "severity",
            "SEVERITY = '1'",
            "severity = 1",
            "missing",
            "$messageId",
            "$MESSAGEID",
            "$message-id",
            "$correlationId",
            "$userId",
            "$iothub-connection-device-id",
            "$custom",
            "$unknownSystemName",
            "$contentType",
            "$content-encoding",
            "$body.Weather.Location",
            "$body.Weather.Missing",
            "$body.Weather.PrevTemperatures[9]",
            "$BODY.Weather['Location'].City",
            "$twin.deviceId",
            "$twin.tags.missing",
            "missing = 'x' OR processingPath = 'hot'",
            "missing = 'x'",
            "NOT (missing = 'x')",
        ],
        expect![[r#"
            PROCESSINGPATH => "hot" (dropped)
            severity => "1" (dropped)
            SEVERITY = '1' => true (routed)
            severity = 1 => false (dropped)
            missing => undefined (dropped)
            $messageId => "msg-1" (dropped)
            $MESSAGEID => "msg-1" (dropped)
            $message-id => "msg-1" (dropped)
            $correlationId => "corr-1" (dropped)
            $userId => "user-1" (dropped)
            $iothub-connection-device-id => "dev1" (dropped)
            $custom => "app-dollar" (dropped)
            $unknownSystemName => undefined (dropped)
            $contentType => "application/json" (dropped)
            $content-encoding => "utf-8" (dropped)
            $body.Weather.Location => {"City":"Redmond","State":"WA","Street":"One Microsoft Way"} (dropped)
            $body.Weather.Missing => undefined (dropped)
            $body.Weather.PrevTemperatures[9] => undefined (dropped)
            $BODY.Weather['Location'].City => "Redmond" (dropped)
            $twin.deviceId => "dev1" (dropped)
            $twin.tags.missing => undefined (dropped)
            missing = 'x' OR processingPath = 'hot' => true (routed)
            missing = 'x' => undefined (dropped)
            NOT (missing = 'x') => undefined (dropped)
        "#]],
    );
}

#[test]
fn body_requires_json_content_type_and_supported_encoding() {
    let body_text = r#"{"Weather":{"Temperature":50}}"#;
    let with_headers =
        |content_type: Option<&str>, content_encoding: Option<&str>, body: Vec<u8>| {
            let mut message = SimpleMessage::new().with_body(body);
            if let Some(content_type) = content_type {
                message = message.with_system_property(SystemProperty::ContentType, content_type);
            }
            if let Some(content_encoding) = content_encoding {
                message =
                    message.with_system_property(SystemProperty::ContentEncoding, content_encoding);
            }
            message
        };
    let utf16_le: Vec<u8> = body_text
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let utf16_be_with_bom: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(body_text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let utf32_le: Vec<u8> = body_text
        .chars()
        .flat_map(|character| (character as u32).to_le_bytes())
        .collect();
    let utf32_be_with_bom: Vec<u8> = [0x00, 0x00, 0xFE, 0xFF]
        .into_iter()
        .chain(
            body_text
                .chars()
                .flat_map(|character| (character as u32).to_be_bytes()),
        )
        .collect();
    let utf8_with_bom: Vec<u8> = b"\xEF\xBB\xBF"
        .iter()
        .copied()
        .chain(body_text.bytes())
        .collect();
    let cases: Vec<(&str, SimpleMessage)> = vec![
        (
            "json utf-8",
            with_headers(Some("application/json"), Some("utf-8"), body_text.into()),
        ),
        (
            "json UTF-8 with BOM",
            with_headers(Some("application/json"), Some("UTF-8"), utf8_with_bom),
        ),
        (
            "charset suffix",
            with_headers(
                Some("Application/JSON; charset=utf-8"),
                Some("utf-8"),
                body_text.into(),
            ),
        ),
        (
            "utf-16 little-endian",
            with_headers(Some("application/json"), Some("utf-16"), utf16_le),
        ),
        (
            "utf-16 big-endian with BOM",
            with_headers(Some("application/json"), Some("UTF-16"), utf16_be_with_bom),
        ),
        (
            "utf-32 little-endian",
            with_headers(Some("application/json"), Some("utf-32"), utf32_le),
        ),
        (
            "utf-32 big-endian with BOM",
            with_headers(Some("application/json"), Some("Utf-32"), utf32_be_with_bom),
        ),
        (
            "no encoding",
            with_headers(Some("application/json"), None, body_text.into()),
        ),
        (
            "ascii encoding",
            with_headers(Some("application/json"), Some("ascii"), body_text.into()),
        ),
        (
            "text content type",
            with_headers(Some("text/plain"), Some("utf-8"), body_text.into()),
        ),
        (
            "no content type",
            with_headers(None, Some("utf-8"), body_text.into()),
        ),
        (
            "invalid json",
            with_headers(
                Some("application/json"),
                Some("utf-8"),
                b"{not json".to_vec(),
            ),
        ),
        (
            "odd utf-16",
            with_headers(
                Some("application/json"),
                Some("utf-16"),
                vec![b'{', 0, b'}'],
            ),
        ),
    ];
    let condition = Condition::parse("$body.Weather.Temperature = 50").expect("condition parses");
    assert!(condition.references_body());
    let mut rendered = String::new();
    for (name, message) in &cases {
        rendered.push_str(&format!("{name}: {:?}\n", condition.outcome(message)));
    }
    expect![[r#"
        json utf-8: Matched
        json UTF-8 with BOM: Matched
        charset suffix: Matched
        utf-16 little-endian: Matched
        utf-16 big-endian with BOM: Matched
        utf-32 little-endian: Matched
        utf-32 big-endian with BOM: Matched
        no encoding: NotBoolean
        ascii encoding: NotBoolean
        text content type: NotBoolean
        no content type: NotBoolean
        invalid json: NotBoolean
        odd utf-16: NotBoolean
    "#]]
    .assert_eq(&rendered);
    let property_only = Condition::parse("processingPath = 'hot'").expect("condition parses");
    assert!(!property_only.references_body());
}

#[test]
fn message_condition_errors() {
    check(
        &documented_message(),
        &[
            "properties.reported.x = 1",
            "$messageId.part = 1",
            "count() > 1",
            "nosuch(1)",
            "processingPath = ",
        ],
        expect![[r#"
            properties.reported.x = 1 => error: message property `properties` has no sub-properties; use `$body.` or `$twin.` paths at byte 0
            $messageId.part = 1 => error: message property `$messageId` has no sub-properties; use `$body.` or `$twin.` paths at byte 0
            count() > 1 => error: aggregate `COUNT` is only allowed in a SELECT list at byte 0
            nosuch(1) => error: unknown function `nosuch` at byte 0
            processingPath =  => error: expected expression, found end of input at byte 17
        "#]],
    );
}
