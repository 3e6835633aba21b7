//! The edge hub: a local IoT Hub for the modules and leaf devices of one edge device, in the same
//! process as the edge agent.
//!
//! This crate owns what Azure's edgeHub does, on the same MQTT front end as the cloud hub
//! (`mqtt-frontend`): authenticating modules and child devices against the device scope
//! (`edge-scope`, cached encrypted so children authenticate offline); routing every message with
//! the routes of the `$edgeHub` twin ([`routes`], evaluated with the `query` crate); writing it
//! once, durably, to the byte-bounded store (`edge-store`) before PUBACK; and one pump per
//! endpoint ([`pumps`]) that delivers to module inputs or to the cloud and acknowledges in the
//! store only what the destination acknowledged. Upstream, one IoT Hub MQTT link per active
//! identity ([`upstream`]) authenticates on the child's behalf with a token signed by the
//! `$edgeHub` key; the `$edgeHub` link's state is the online/offline switch, and its reconnection
//! immediately restarts draining. Twins are cached per identity ([`twins`]): GET is answered from
//! the cache while offline, reported patches are acknowledged locally and synced in order, and
//! desired changes missed offline are sent as a patch on reconnect. Cloud methods and C2D are
//! relayed down; module-to-module methods are invoked locally ([`EdgeHub::invoke_local_method`]).
//!
//! Not here: binding the listeners (the runtime does, handing MQTT connections to a
//! `mqtt_frontend::Frontend<EdgeHub>` and HTTPS ones to [`http::serve`]), and AMQP.

#![forbid(unsafe_code)]

pub mod http;
mod hub;
pub mod pumps;
pub mod record;
pub mod routes;
pub mod twins;
pub mod upstream;

pub use hub::{EdgeHub, EdgeHubError, EdgeHubSettings, EdgeHubStats, LocalMethodError};
pub use routes::{RouteTable, RouteTarget, Sink};
pub use upstream::{EDGE_HUB_MODULE, UpstreamSettings};
