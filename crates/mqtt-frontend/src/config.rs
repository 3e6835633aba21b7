//! Limits and timeouts of the front end, each with IoT Hub's value as the default.

use std::time::Duration;

/// The largest telemetry message IoT Hub accepts, counted as body plus property names and values.
pub const MAX_MESSAGE_SIZE: usize = iothub_types::MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE;

/// The default largest MQTT packet: a maximal message plus room for the longest possible topic and
/// the fixed and variable headers. Anything bigger closes the connection as soon as its header is
/// read, before its body is buffered.
pub const DEFAULT_MAX_PACKET_SIZE: usize = MAX_MESSAGE_SIZE + 65_535 + 16;

/// IoT Hub's cap on the server-side keep-alive timeout (1.5 times the client's keep-alive).
pub const MAX_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(1767);

/// Every limit of the front end. Every queue and window is bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendConfig {
    /// Largest accepted MQTT packet in bytes, fixed header included; bigger closes the connection.
    pub max_packet_size: usize,
    /// Largest accepted telemetry message as IoT Hub counts it; bigger closes the connection.
    pub max_message_size: usize,
    /// Time allowed between accepting a socket and receiving CONNECT (and for the TLS handshake).
    pub connect_timeout: Duration,
    /// Upper bound of the keep-alive timeout (1.5 times the client's keep-alive, capped here).
    pub max_keep_alive_timeout: Duration,
    /// Capacity of each connection's outbound queue (pushes beyond it get `QueueFull`).
    pub outbound_queue_capacity: usize,
    /// QoS 1 deliveries sent to one client and not yet acknowledged; further pushes wait in the
    /// outbound queue.
    pub max_outbound_inflight: usize,
    /// Inbound operations (telemetry, twin, method responses, acknowledgements) one connection may
    /// have pending in the backend at once; the connection stops reading beyond it.
    pub max_inbound_pending: usize,
    /// Subscriptions one session may hold (IoT Hub documents 5); more are refused in SUBACK.
    pub max_subscriptions: usize,
    /// Capacity of the session registry's command queue.
    pub registry_queue_capacity: usize,
}

impl Default for FrontendConfig {
    fn default() -> FrontendConfig {
        FrontendConfig {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_message_size: MAX_MESSAGE_SIZE,
            connect_timeout: Duration::from_secs(30),
            max_keep_alive_timeout: MAX_KEEP_ALIVE_TIMEOUT,
            outbound_queue_capacity: 64,
            max_outbound_inflight: 16,
            max_inbound_pending: 16,
            max_subscriptions: 5,
            registry_queue_capacity: 1024,
        }
    }
}
