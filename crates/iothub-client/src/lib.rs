//! An async IoT Hub device and module client speaking MQTT 3.1.1, as azure-iot-device 2.14 does
//! on the wire.
//!
//! This crate owns the client side of the IoT Hub MQTT surface, for the edge agent (which reads
//! its `$edgeAgent` twin from the hub) and the edge hub (which forwards upstream for its modules
//! and child devices): connecting over TLS (or plain TCP for loopback tests) with a SAS key, a
//! token provider callback or an X.509 certificate; telemetry and module outputs acknowledged by
//! PUBACK; twin reads and reported-property patches correlated by `$rid`; desired-property
//! patches, direct method requests, cloud-to-device messages and module inputs as [`ClientEvent`]s;
//! and the connection's life: keep-alive, token renewal by reconnecting, automatic reconnection
//! with exponential back-off and jitter, and an explicit [`ConnectionState`] watch.
//!
//! Wire behaviour: client id `{device}` or `{device}/{module}`; user name
//! `{hub}/{device}[/{module}]/?api-version=2021-04-12&DeviceClientType=outpost%2F0.1`; the SAS
//! token (device-SDK spelling) as password, none for X.509; clean session 0; keep-alive 60 s; QoS 1
//! for every PUBLISH and SUBSCRIBE, one filter per SUBSCRIBE. Subscriptions are sent at connect
//! for the features in [`ClientOptions::subscribe_at_connect`] and on first use otherwise (twin
//! responses before the first twin call, others through [`IotHubClient::enable`]); they are sent
//! again after a reconnection unless the hub resumed the session.
//!
//! Architecture: one connection task owns the socket and a pure session core (`core`), fed by
//! bounded channels; [`IotHubClient`] handles only send commands and await replies. Operations
//! occupy a slot of a bounded in-flight window until answered (back-pressure when full) and each
//! is bounded by the operation timeout. While disconnected, operations fail fast with
//! [`ClientError::NotConnected`] by default, or wait for the connection with
//! [`WhileDisconnected::Queue`]; see [`WhileDisconnected`] for the trade-off.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use iothub_client::{ClientEvent, ClientOptions, Feature, IotHubClient, Transport};
//! use iothub_types::Message;
//!
//! let roots = tls::read_certificates_file("ca.pem".as_ref())?;
//! let mut options = ClientOptions::from_connection_string(
//!     "HostName=hub.local;DeviceId=dev1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
//!     Transport::Tls { trusted_roots: roots },
//! )?;
//! options.subscribe_at_connect = vec![Feature::MethodRequests, Feature::DesiredPropertiesPatches];
//! let (client, mut events) = IotHubClient::connect(options).await?;
//! client.send_telemetry(Message::new("hello")).await?;
//! let version = client.patch_reported(&serde_json::json!({"temperature": 21})).await?;
//! while let Some(event) = events.next().await {
//!     if let ClientEvent::MethodRequest(request) = event {
//!         client.respond(&request.rid, 200, &serde_json::json!({"version": version})).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod client;
mod connection;
mod core;
mod error;
mod events;
mod options;
mod wire;

pub use client::IotHubClient;
pub use error::{ClientError, ConnectError, TokenError};
pub use events::{
    ClientEvent, CloudToDeviceAck, ConnectionState, DisconnectReason, EventStream, MethodRequest,
};
pub use mqtt_codec::ConnectReturnCode;
pub use options::{
    ClientOptions, Credentials, DEFAULT_MQTT_TLS_PORT, DEFAULT_PRODUCT_INFO,
    DEFAULT_TOKEN_RENEWAL_MARGIN, DEFAULT_TOKEN_TTL, Feature, ReconnectPolicy, TokenFuture,
    TokenProvider, TokenRequest, Transport, WhileDisconnected,
};
pub use wire::{API_VERSION, client_id, username};
