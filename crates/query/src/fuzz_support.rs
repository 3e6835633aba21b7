//! The body of the parser fuzz target, kept in the crate so `cargo test` can replay the corpus.

use serde_json::json;

use crate::message::{SimpleMessage, SystemProperty};
use crate::route::MessageSource;
use crate::{Condition, Query, Route, TwinCondition};

/// Parses `data` as a query, a twin condition, a routing condition and a route, renders any
/// error, and evaluates whatever parsed against fixed sample data. It must never panic.
pub fn fuzz_one_input(data: &[u8]) {
    let source = String::from_utf8_lossy(data);
    let twins = [
        json!({
            "deviceId": "d1", "status": "enabled", "connectionState": "Connected",
            "capabilities": {"iotEdge": true},
            "tags": {"location": {"region": "US"}, "n": 3, "list": [1, "a", null]},
            "properties": {"desired": {"$version": 2}, "reported": {"fw": "1.0", "temp": 21.5, "$version": 4}}
        }),
        json!({"deviceId": "d2", "moduleId": "m", "tags": {"n": -1.5e3}}),
        json!(null),
    ];
    match Query::parse(&source) {
        Ok(query) => {
            let _ = query.execute(twins.iter());
            let _ = query.item_type();
        }
        Err(error) => {
            let _ = error.render(&source);
        }
    }
    match TwinCondition::parse(&source) {
        Ok(condition) => {
            for twin in &twins {
                let _ = condition.matches(twin);
            }
        }
        Err(error) => {
            let _ = error.render(&source);
        }
    }
    let messages = [
        SimpleMessage::new()
            .with_application_property("alert", "high")
            .with_system_property(SystemProperty::ConnectionDeviceId, "dev1")
            .with_json_body(
                &json!({"Weather": {"Temperature": 50, "HistoricalData": [{"Month": "Feb"}]}}),
            )
            .with_twin(twins[0].clone()),
        SimpleMessage::new()
            .with_system_property(SystemProperty::ContentType, "application/json")
            .with_system_property(SystemProperty::ContentEncoding, "utf-16")
            .with_body(data.to_vec()),
    ];
    match Condition::parse(&source) {
        Ok(condition) => {
            for message in &messages {
                let _ = condition.evaluate_to_json(message);
            }
        }
        Err(error) => {
            let _ = error.render(&source);
        }
    }
    match Route::parse(&source) {
        Ok(route) => {
            let sources = [
                MessageSource::DeviceTelemetry { device_id: "d1" },
                MessageSource::ModuleOutput {
                    device_id: "d1",
                    module_id: "m",
                    output_name: Some("o"),
                },
            ];
            for message_source in &sources {
                let _ = route.matches(message_source, &messages[0]);
            }
        }
        Err(error) => {
            let _ = error.render(&source);
        }
    }
}
