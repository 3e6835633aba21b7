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

/// Reads a `kB` field such as `VmRSS` or `VmHWM` from `/proc/self/status` (Linux only).
fn process_memory_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Nanoseconds this thread has spent on a CPU, from `/proc/thread-self/schedstat` (Linux only).
/// Unlike wall time it is not inflated when other processes compete for the cores.
fn thread_cpu_nanoseconds() -> Option<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

/// Reports the mean CPU time of `run` over `iterations` runs, next to criterion's wall times.
fn report_cpu_time(name: &str, iterations: u32, mut run: impl FnMut()) {
    run();
    let (Some(start), wall_start) = (thread_cpu_nanoseconds(), std::time::Instant::now()) else {
        return;
    };
    for _ in 0..iterations {
        run();
    }
    if let Some(end) = thread_cpu_nanoseconds() {
        eprintln!(
            "cpu time: {name}: {:.2} ms per run on CPU, {:.2} ms per run wall",
            (end - start) as f64 / f64::from(iterations) / 1e6,
            wall_start.elapsed().as_secs_f64() * 1e3 / f64::from(iterations)
        );
    }
}

fn twin_query(criterion: &mut Criterion) {
    let resident_before = process_memory_kib("VmRSS:");
    let twins = generate_twins(TWIN_COUNT);
    let resident_with_twins = process_memory_kib("VmRSS:");
    eprintln!(
        "memory: resident before generating twins {resident_before:?} KiB, with {TWIN_COUNT} twins {resident_with_twins:?} KiB"
    );
    let mut group = criterion.benchmark_group("twin_query");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(TWIN_COUNT as u64));
    let select_all = Query::parse(
        "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.temperature > 30",
    )
    .expect("benchmark query parses");
    group.bench_function("select_star_100k", |bencher| {
        bencher.iter(|| black_box(select_all.execute_borrowed(black_box(&twins).iter())).len())
    });
    let count = Query::parse(
        "SELECT COUNT() AS n FROM devices WHERE tags.location.region = 'US' AND properties.reported.temperature > 30",
    )
    .expect("benchmark query parses");
    group.bench_function("select_star_cloned_100k", |bencher| {
        bencher.iter(|| black_box(select_all.execute(black_box(&twins).iter())).len())
    });
    group.bench_function("count_100k", |bencher| {
        bencher.iter(|| black_box(count.execute(black_box(&twins).iter())))
    });
    report_cpu_time("select_star_100k", 10, || {
        black_box(select_all.execute_borrowed(twins.iter()));
    });
    report_cpu_time("count_100k", 10, || {
        black_box(count.execute(twins.iter()));
    });
    let grouped = Query::parse(
        "SELECT tags.location.region AS region, COUNT() AS n, AVG(properties.reported.temperature) AS t FROM devices GROUP BY tags.location.region",
    )
    .expect("benchmark query parses");
    group.bench_function("group_by_100k", |bencher| {
        bencher.iter(|| black_box(grouped.execute(black_box(&twins).iter())))
    });
    group.finish();
    eprintln!(
        "memory: peak resident after the twin query benchmarks {:?} KiB",
        process_memory_kib("VmHWM:")
    );
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
        report_cpu_time(
            &format!(
                "route_condition/{name} x {} messages x 1000",
                messages.len()
            ),
            5,
            || {
                for _ in 0..1000 {
                    for message in &messages {
                        black_box(condition.evaluate(black_box(message)));
                    }
                }
            },
        );
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
