//! The JSON record a custom endpoint receives for one message.
//!
//! The shape is the one IoT Hub writes to storage-container endpoints with JSON encoding:
//!
//! ```json
//! {"EnqueuedTimeUtc": "2030-01-02T03:04:05.000Z",
//!  "Properties": {"processingPath": "hot"},
//!  "SystemProperties": {"connectionDeviceId": "dev1", "contentType": "application/json", ...},
//!  "Body": {"Weather": {"Temperature": 55}}}
//! ```
//!
//! `Body` is the parsed JSON when the message says `application/json` with a UTF encoding and
//! the body parses; otherwise it is the body in standard base64. Webhooks receive one record as
//! the request body; file endpoints append one record per line.

use base64::Engine;
use iothub_types::{Message, SystemProperties};
use serde::Serialize;
use serde_json::{Map, Value};

/// One routed message in the endpoint record shape.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointRecord<'a> {
    enqueued_time_utc: Option<&'a str>,
    properties: Map<String, Value>,
    system_properties: &'a SystemProperties,
    body: Value,
}

/// Encodes `message` as an endpoint record (compact JSON, no trailing newline).
pub fn encode_endpoint_record(message: &Message) -> Vec<u8> {
    let mut properties = Map::new();
    for (name, value) in &message.application {
        // The first of several properties with exactly the same name wins.
        properties
            .entry(name.clone())
            .or_insert_with(|| value.clone().map_or(Value::Null, Value::String));
    }
    let body = query::decode_json_body(
        message.system.content_type.as_deref(),
        message.system.content_encoding.as_deref(),
        &message.body,
    )
    .unwrap_or_else(|| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(&message.body))
    });
    let record = EndpointRecord {
        enqueued_time_utc: message.system.enqueued_time.as_deref(),
        properties,
        system_properties: &message.system,
        body,
    };
    // Serializing plain maps, strings and JSON values cannot fail.
    serde_json::to_vec(&record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn json_bodies_are_inlined_and_others_are_base64() {
        let mut message = Message::new(&br#"{"Weather":{"Temperature":55}}"#[..])
            .with_application_property("processingPath", Some("hot"))
            .with_application_property("flag", None::<String>)
            .with_application_property("PROCESSINGPATH", Some("ignored"));
        message.system.content_type = Some("application/json".to_owned());
        message.system.content_encoding = Some("utf-8".to_owned());
        message.system.connection_device_id = Some("dev1".to_owned());
        message.system.enqueued_time = Some("2030-01-02T03:04:05.000Z".to_owned());
        let json = String::from_utf8(encode_endpoint_record(&message)).unwrap();
        expect![[r#"{"EnqueuedTimeUtc":"2030-01-02T03:04:05.000Z","Properties":{"PROCESSINGPATH":"ignored","flag":null,"processingPath":"hot"},"SystemProperties":{"contentType":"application/json","contentEncoding":"utf-8","connectionDeviceId":"dev1","enqueuedTime":"2030-01-02T03:04:05.000Z"},"Body":{"Weather":{"Temperature":55}}}"#]].assert_eq(&json);

        message.system.content_encoding = None;
        let json = String::from_utf8(encode_endpoint_record(&message)).unwrap();
        expect![[r#"{"EnqueuedTimeUtc":"2030-01-02T03:04:05.000Z","Properties":{"PROCESSINGPATH":"ignored","flag":null,"processingPath":"hot"},"SystemProperties":{"contentType":"application/json","connectionDeviceId":"dev1","enqueuedTime":"2030-01-02T03:04:05.000Z"},"Body":"eyJXZWF0aGVyIjp7IlRlbXBlcmF0dXJlIjo1NX19"}"#]].assert_eq(&json);
    }
}
