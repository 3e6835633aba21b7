//! Benchmarks: a twin query over 100,000 generated twins, and routing-condition throughput on
//! realistic messages.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use query::{Condition, Query, SimpleMessage, SystemProperty};
use serde_json::{Value, json};

const TWIN_COUNT: usize = 100_000;
const REGIONS: [&str; 4] = ["US", "EU", "APAC", "LATAM"];

/// A small deterministic pseudo-random generator so every run sees the same twins.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn generate_twins(count: usize) -> Vec<Value> {
    let mut random = Lcg(42);
    (0..count)
        .map(|index| {
            let region = REGIONS[(random.next() % 4) as usize];
            let temperature = (random.next() % 600) as f64 / 10.0;
            json!({
                "deviceId": format!("device-{index:06}"),
                "etag": "AAAAAAAAAAc=",
                "deviceEtag": "NzQ2",
                "version": 7,
                "status": "enabled",
                "statusReason": null,
                "connectionState": if index % 3 == 0 { "Connected" } else { "Disconnected" },
                "lastActivityTime": "2026-11-27T10:00:00Z",
                "cloudToDeviceMessageCount": 0,
                "authenticationType": "sas",
                "capabilities": {"iotEdge": index % 50 == 0},
                "tags": {"location": {"region": region, "plant": format!("plant-{}", index % 17)}, "env": "prod"},
                "properties": {
                    "desired": {"telemetryInterval": 30, "$metadata": {"$lastUpdated": "2026-11-27T10:00:00Z"}, "$version": 4},
                    "reported": {
                        "temperature": temperature,
                        "firmware": {"version": format!("1.{}.0", index % 5)},
                        "$metadata": {"$lastUpdated": "2026-11-27T10:00:00Z"},
                        "$version": 9
                    }
                }
            })
        })
        .collect()
}

fn twin_query(criterion: &mut Criterion) {
    let twins = generate_twins(TWIN_COUNT);
    let mut group = criterion.benchmark_group("twin_query");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(TWIN_COUNT as u64));
    let select_all = Query::parse(
        "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.temperature > 30",
    )
    .expect("benchmark query parses");
    group.bench_function("select_star_100k", |bencher| {
        bencher.iter(|| black_box(select_all.execute(black_box(&twins).iter())).len())
    });
    let count = Query::parse(
        "SELECT COUNT() AS n FROM devices WHERE tags.location.region = 'US' AND properties.reported.temperature > 30",
    )
    .expect("benchmark query parses");
    group.bench_function("count_100k", |bencher| {
        bencher.iter(|| black_box(count.execute(black_box(&twins).iter())))
    });
    let grouped = Query::parse(
        "SELECT tags.location.region AS region, COUNT() AS n, AVG(properties.reported.temperature) AS t FROM devices GROUP BY tags.location.region",
    )
    .expect("benchmark query parses");
    group.bench_function("group_by_100k", |bencher| {
        bencher.iter(|| black_box(grouped.execute(black_box(&twins).iter())))
    });
    group.finish();
}

fn realistic_messages() -> Vec<SimpleMessage> {
    (0..64)
        .map(|index| {
            SimpleMessage::new()
                .with_system_property(SystemProperty::ConnectionDeviceId, format!("dev{}", index % 4))
                .with_system_property(SystemProperty::MessageId, format!("msg-{index}"))
                .with_system_property(SystemProperty::EnqueuedTime, "2026-11-27T10:00:00.000Z")
                .with_system_property(SystemProperty::MessageSource, "Telemetry")
                .with_application_property("alert", if index % 3 == 0 { "high" } else { "low" })
                .with_application_property("severity", (index % 5).to_string())
                .with_application_property("processingPath", if index % 2 == 0 { "hot" } else { "cold" })
                .with_json_body(&json!({
                    "Weather": {
                        "Temperature": 20 + index % 40,
                        "Location": {"State": "WA", "City": "Redmond"},
                        "HistoricalData": [{"Month": "Feb", "Temperature": 40}, {"Month": "Jan", "Temperature": 30}]
                    }
                }))
        })
        .collect()
}

fn route_conditions(criterion: &mut Criterion) {
    let messages = realistic_messages();
    let mut group = criterion.benchmark_group("route_condition");
    group.throughput(Throughput::Elements(messages.len() as u64));
    let cases = [
        (
            "property",
            "alert = 'high' AND $connectionDeviceId = 'dev1'",
        ),
        (
            "as_number",
            "as_number(severity) <= 2 OR processingPath = 'hot'",
        ),
        (
            "body",
            "$body.Weather.HistoricalData[0].Month = 'Feb' AND $body.Weather.Temperature > 30",
        ),
    ];
    for (name, source) in cases {
        let condition = Condition::parse(source).expect("benchmark condition parses");
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                let mut matched = 0_usize;
                for message in black_box(&messages) {
                    matched += usize::from(condition.evaluate(message));
                }
                matched
            })
        });
    }
    group.finish();
}

criterion_group!(benches, twin_query, route_conditions);
criterion_main!(benches);
