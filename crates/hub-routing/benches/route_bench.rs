//! Routing throughput: whole routing decisions (`RoutingTable::route_set`) per second on
//! realistic telemetry, for a single property condition and for a table of several routes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hub_routing::{RoutingConfig, RoutingSource, RoutingTable};
use iothub_types::Message;

fn table(json: &str) -> RoutingTable {
    RoutingTable::new(&RoutingConfig::from_json(json.as_bytes()).expect("valid benchmark config"))
}

fn telemetry() -> Message {
    let mut message =
        Message::new(&br#"{"Weather":{"Temperature":55,"Location":{"State":"WA"}}}"#[..])
            .with_application_property("processingPath", Some("hot"))
            .with_application_property("severity", Some("3"))
            .with_application_property("firmware", Some("1.4.2"));
    message.system.content_type = Some("application/json".to_owned());
    message.system.content_encoding = Some("utf-8".to_owned());
    message.system.connection_device_id = Some("thermostat-0042".to_owned());
    message.system.message_id = Some("5c5d0c50-4a2b-4b1b-9f0e-2f3c6bd2a001".to_owned());
    message.system.enqueued_time = Some("2030-01-02T03:04:05.000Z".to_owned());
    message
}

fn routing(criterion: &mut Criterion) {
    let message = telemetry();
    let mut group = criterion.benchmark_group("route_set");
    group.throughput(Throughput::Elements(1));

    let single = table(
        r#"{"endpoints": {"files": [{"name": "hot", "path": "hot.jsonl"}]},
            "routes": [{"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'", "endpointNames": ["hot"]}]}"#,
    );
    group.bench_function("one property condition", |bencher| {
        bencher.iter(|| single.route_set(RoutingSource::DeviceMessages, black_box(&message), None))
    });

    let several = table(
        r#"{"endpoints": {"files": [{"name": "hot", "path": "hot.jsonl"}, {"name": "dev", "path": "dev.jsonl"}, {"name": "severe", "path": "severe.jsonl"}]},
            "routes": [
              {"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'", "endpointNames": ["hot"]},
              {"name": "dev", "source": "DeviceMessages", "condition": "$connectionDeviceId = 'thermostat-0001'", "endpointNames": ["dev"]},
              {"name": "severe", "source": "DeviceMessages", "condition": "as_number(severity) <= 2", "endpointNames": ["severe", "events"]},
              {"name": "firmware", "source": "DeviceMessages", "condition": "firmware IN ['1.4.1', '1.4.2'] AND $contentType = 'application/json'", "endpointNames": ["events"]},
              {"name": "twins", "source": "TwinChangeEvents", "endpointNames": ["events"]}
            ]}"#,
    );
    group.bench_function("four property routes", |bencher| {
        bencher.iter(|| several.route_set(RoutingSource::DeviceMessages, black_box(&message), None))
    });

    let body = table(
        r#"{"endpoints": {"files": [{"name": "warm", "path": "warm.jsonl"}]},
            "routes": [{"name": "warm", "source": "DeviceMessages", "condition": "$body.Weather.Temperature > 50", "endpointNames": ["warm"]}]}"#,
    );
    group.bench_function("one body condition", |bencher| {
        bencher.iter(|| body.route_set(RoutingSource::DeviceMessages, black_box(&message), None))
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
