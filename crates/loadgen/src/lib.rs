//! `outpost-loadgen`: bounded, loopback-only benchmarks of the Outpost hub against Mosquitto.
//!
//! This crate owns the numbers in BENCHMARKS.md that need running servers: telemetry throughput at
//! QoS 1 ([`telemetry`]), memory per idle TLS connection and idle RSS ([`idle`]), and direct-method
//! round-trip latency ([`method_rtt`]); and for the edge (issues 5 and 6), the edge hub's QoS 1
//! throughput against Mosquitto ([`edge_throughput`]), the runtime's memory idle and with 1,000 leaf
//! devices ([`edge_memory`]), store-and-forward recovery after a hub outage ([`edge_recovery`]) and
//! the runtime's cold start ([`edge_cold_start`]), all on an [`edge`] lab of a hub and
//! `outpost edge run` processes. It starts every server itself as a child process on its own
//! 127.0.0.x address (an `outpost hub serve` on a fresh temporary data directory, Mosquitto with a
//! generated configuration), drives it with its own small MQTT client built on `mqtt-codec`
//! ([`mqtt`]) and the hub's service REST API ([`service`]), and stops it afterwards. All load is
//! bounded in count and in time. The pure parts (statistics, report rendering, `/proc` parsing,
//! Mosquitto configuration) are tested without servers; the benchmarks themselves are the end-to-end
//! check.

#![forbid(unsafe_code)]

pub mod edge;
pub mod edge_cold_start;
pub mod edge_memory;
pub mod edge_recovery;
pub mod edge_throughput;
pub mod events;
pub mod idle;
pub mod method_rtt;
pub mod mqtt;
pub mod processes;
pub mod service;
pub mod stats;
pub mod targets;
pub mod telemetry;
pub mod transport;
