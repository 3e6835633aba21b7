//! Encode and decode throughput of the MQTT 3.1.1 codec for IoT Hub telemetry: one QoS 1 PUBLISH
//! with a typical device-to-cloud topic and a 256-byte payload, and a buffer of 1000 of them.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::{Packet, PacketId, Publish, QoS};

const PACKETS_PER_BATCH: usize = 1000;
const MAX_PACKET_SIZE: usize = 256 * 1024;

/// A QoS 1 telemetry PUBLISH as the Azure IoT device SDKs send it: content type, content encoding
/// and one application property in the topic's property bag, and a 256-byte JSON-like body.
fn telemetry_publish(packet_id: u16) -> Packet {
    let payload: Vec<u8> = br#"{"deviceId":"thermostat-0042","temperature":21.5,"humidity":40.2,"#
        .iter()
        .copied()
        .chain(std::iter::repeat(b'x'))
        .take(256)
        .collect();
    Packet::Publish(Publish::with_packet_id(
        "devices/thermostat-0042/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&alert=high",
        QoS::AtLeastOnce,
        PacketId::new(packet_id).expect("non-zero packet identifier"),
        Bytes::from(payload),
    ))
}

fn encode_all(packets: &[Packet], buffer: &mut BytesMut) {
    for packet in packets {
        packet.encode(buffer).expect("benchmark packets encode");
    }
}

fn single_publish(criterion: &mut Criterion) {
    let packet = telemetry_publish(1);
    let mut encoded = BytesMut::new();
    encode_all(std::slice::from_ref(&packet), &mut encoded);
    let mut group = criterion.benchmark_group("publish_qos1_256b");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode", |bencher| {
        let mut buffer = BytesMut::with_capacity(1024);
        bencher.iter(|| {
            buffer.clear();
            black_box(&packet).encode(&mut buffer).expect("encodes");
            black_box(&buffer);
        });
    });
    group.bench_function("decode", |bencher| {
        bencher.iter_batched(
            || encoded.clone(),
            |mut buffer| Packet::decode(black_box(&mut buffer), MAX_PACKET_SIZE).expect("decodes"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn batch_of_publishes(criterion: &mut Criterion) {
    let packets: Vec<Packet> = (1..=PACKETS_PER_BATCH)
        .map(|index| telemetry_publish(u16::try_from(index).expect("fits")))
        .collect();
    let mut encoded = BytesMut::new();
    encode_all(&packets, &mut encoded);
    let mut group = criterion.benchmark_group("publish_qos1_256b_batch_1000");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode", |bencher| {
        let mut buffer = BytesMut::with_capacity(encoded.len());
        bencher.iter(|| {
            buffer.clear();
            encode_all(black_box(&packets), &mut buffer);
            black_box(&buffer);
        });
    });
    group.bench_function("decode", |bencher| {
        bencher.iter_batched(
            || encoded.clone(),
            |mut buffer| {
                let mut count = 0;
                while let Some(packet) =
                    Packet::decode(black_box(&mut buffer), MAX_PACKET_SIZE).expect("decodes")
                {
                    black_box(packet);
                    count += 1;
                }
                assert_eq!(count, PACKETS_PER_BATCH);
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, single_publish, batch_of_publishes);
criterion_main!(benches);
