//! The servers a benchmark compares, started fresh, with how a benchmark client connects to each.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use crate::mqtt::ConnectOptions;
use crate::processes::{HubServer, MosquittoServer, MosquittoSettings, Programs, ServerProcess};
use crate::service::{DeviceCredential, ServiceConnection, device_mqtt_credentials};
use crate::transport::{Endpoint, Security};

/// The loopback address the Outpost hub listens on.
pub const HUB_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 21));
/// The loopback address of the plain-TCP Mosquitto.
pub const MOSQUITTO_TCP_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 22));
/// The loopback address of the TLS Mosquitto.
pub const MOSQUITTO_TLS_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 23));

/// Keep-alive the benchmark clients announce: long enough that an idle connection needs no PINGREQ
/// during a run.
pub const KEEP_ALIVE_SECONDS: u16 = 900;

/// One of the servers under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TargetKind {
    /// The Outpost cloud hub (MQTT over TLS, SAS-authenticated devices, durable before PUBACK).
    Hub,
    /// Mosquitto on plain TCP, as the Debian package ships it.
    MosquittoTcp,
    /// Mosquitto with a TLS listener, for a TLS-to-TLS comparison.
    MosquittoTls,
}

impl TargetKind {
    pub fn label(self) -> &'static str {
        match self {
            TargetKind::Hub => "outpost hub (TLS)",
            TargetKind::MosquittoTcp => "mosquitto (TCP)",
            TargetKind::MosquittoTls => "mosquitto (TLS)",
        }
    }
}

/// A started server, ready for benchmark clients.
pub struct RunningTarget {
    pub kind: TargetKind,
    pub endpoint: Endpoint,
    server: Server,
}

enum Server {
    Hub(HubServer),
    Mosquitto(MosquittoServer),
}

impl RunningTarget {
    /// Starts a fresh server of `kind`.
    pub async fn start(
        kind: TargetKind,
        programs: &Programs,
        hub_hostname: &str,
        mosquitto_settings: &MosquittoSettings,
    ) -> anyhow::Result<RunningTarget> {
        match kind {
            TargetKind::Hub => {
                let hub = HubServer::start(programs, HUB_IP, hub_hostname)
                    .await
                    .context("starting the outpost hub")?;
                let endpoint = Endpoint {
                    address: hub.mqtt_address,
                    security: Security::tls_trusting(&hub.ca_pem, hub_hostname)?,
                };
                Ok(RunningTarget {
                    kind,
                    endpoint,
                    server: Server::Hub(hub),
                })
            }
            TargetKind::MosquittoTcp | TargetKind::MosquittoTls => {
                let with_tls = kind == TargetKind::MosquittoTls;
                let ip = if with_tls {
                    MOSQUITTO_TLS_IP
                } else {
                    MOSQUITTO_TCP_IP
                };
                let mosquitto = MosquittoServer::start(programs, ip, with_tls, mosquitto_settings)
                    .await
                    .context("starting mosquitto")?;
                let security = match &mosquitto.ca_pem {
                    Some(ca_pem) => Security::tls_trusting(ca_pem, &ip.to_string())?,
                    None => Security::PlainTcp,
                };
                let endpoint = Endpoint {
                    address: mosquitto.address,
                    security,
                };
                Ok(RunningTarget {
                    kind,
                    endpoint,
                    server: Server::Mosquitto(mosquitto),
                })
            }
        }
    }

    pub fn process(&self) -> &ServerProcess {
        match &self.server {
            Server::Hub(hub) => &hub.process,
            Server::Mosquitto(mosquitto) => &mosquitto.process,
        }
    }

    pub fn process_mut(&mut self) -> &mut ServerProcess {
        match &mut self.server {
            Server::Hub(hub) => &mut hub.process,
            Server::Mosquitto(mosquitto) => &mut mosquitto.process,
        }
    }

    /// The hub, when this target is one.
    pub fn hub(&self) -> Option<&HubServer> {
        match &self.server {
            Server::Hub(hub) => Some(hub),
            Server::Mosquitto(_) => None,
        }
    }

    /// Registers `devices` when the target is the hub (Mosquitto accepts anyone).
    pub async fn register_devices(&self, devices: &[DeviceCredential]) -> anyhow::Result<()> {
        if let Some(hub) = self.hub() {
            let mut service = ServiceConnection::open(
                hub.https_address,
                &hub.ca_pem,
                &hub.owner_connection_string,
            )
            .await?;
            service
                .create_devices(devices)
                .await
                .context("creating the benchmark devices")?;
        }
        Ok(())
    }

    /// How `device` connects: to the hub with its SAS token, to Mosquitto anonymously, with the same
    /// client id and clean-session flag either way.
    pub fn connect_options(&self, device: &DeviceCredential) -> anyhow::Result<ConnectOptions> {
        let (username, password) = match self.hub() {
            Some(hub) => {
                let (username, password) = device_mqtt_credentials(&hub.hostname, device)?;
                (Some(username), Some(password))
            }
            None => (None, None::<Bytes>),
        };
        Ok(ConnectOptions {
            client_id: device.device_id.as_str().to_owned(),
            username,
            password,
            clean_session: false,
            keep_alive_seconds: KEEP_ALIVE_SECONDS,
        })
    }

    /// Stops the server.
    pub async fn stop(self) {
        match self.server {
            Server::Hub(hub) => hub.process.stop().await,
            Server::Mosquitto(mosquitto) => mosquitto.process.stop().await,
        }
    }
}

/// CPU time (user plus system) a process has used so far, from `/proc/PID/stat`.
pub fn process_cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND))
        .with_context(|| format!("{path} does not have the expected fields"))
}

/// `USER_HZ`: Linux reports process times in /proc in hundredths of a second on every architecture.
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// utime + stime from a `/proc/PID/stat` line; the command name may hold spaces and parentheses, so
/// the fields are counted from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 of the line (state) is index 0 here; utime and stime are fields 14 and 15.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_proc_stat() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 100 1000 300";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (short) S 1"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }
}
