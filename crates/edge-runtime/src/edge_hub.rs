//! Hosting the edge hub inside `outpost edge run`: its server certificate from the edge CA
//! (renewed in place, no restart), the device-scope cache, the MQTT over TLS listener and the
//! HTTPS listener (MQTT over WebSocket, module-to-module methods).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use edge_hub::{EdgeHub, EdgeHubSettings, UpstreamSettings};
use edge_scope::{ScopeAuth, ScopeCache, ScopeClient, ScopeIdentity};
use edge_store::{Overflow, StoreOptions};
use iothub_auth::SymmetricKey;
use iothub_types::Identity;
use mqtt_frontend::{Frontend, FrontendConfig, Sessions};
use tls::{
    CertificateAuthority, CertificateValidity, IssuedCertificate, ReloadableCertificateResolver,
    ServerCertificateRequest,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{EdgeHubListen, EdgeSettings};
use crate::identities::ModuleIdentityRecord;

/// How long the edge hub's server certificate is valid (never past the edge CA's own end); it is
/// renewed at two thirds of that.
const SERVER_CERTIFICATE_DAYS: u32 = 90;

/// How soon a failed certificate renewal is tried again.
const CERTIFICATE_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Why the edge hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeHubStartError {
    #[error("edge hub certificate: {0}")]
    Certificate(#[from] tls::TlsError),
    #[error("edge hub scope cache: {0}")]
    Scope(String),
    #[error("edge hub: {0}")]
    Hub(#[from] edge_hub::EdgeHubError),
    #[error("cannot listen on {address}: {source}{}", listen_hint(.source))]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What to do about a listen error that users meet on their first try.
fn listen_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another server holds that port; with the hub on the same machine, give each its own \
             address: `outpost hub serve --mqtt-addr 127.0.0.1:8883 --https-addr 127.0.0.1:443` and \
             `outpost edge init --gateway-hostname 127.0.0.2 ...`, or set `mqtt_addr` and `https_addr` \
             under `[edge_hub]` in the edge configuration)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or set `mqtt_addr` and \
             `https_addr` under `[edge_hub]` in the edge configuration)"
        }
        _ => "",
    }
}

/// The running edge hub and its listener tasks (stopped when dropped).
pub struct EdgeHubHost {
    hub: EdgeHub,
    tasks: Vec<JoinHandle<()>>,
    /// Renewed edge CAs for the certificate task, which issues a server certificate from each at once.
    authorities: mpsc::Sender<CertificateAuthority>,
}

impl Drop for EdgeHubHost {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl EdgeHubHost {
    /// The edge hub.
    pub fn hub(&self) -> &EdgeHub {
        &self.hub
    }

    /// Serves a server certificate from `authority` (a renewed edge CA) to new handshakes from
    /// now on, and renews from it later; connections already open keep theirs.
    pub fn replace_authority(&self, authority: CertificateAuthority) {
        if self.authorities.try_send(authority).is_err() {
            tracing::warn!(message = "An edge CA renewal is still pending; this one is skipped.");
        }
    }

    /// Starts the edge hub with the `$edgeHub` module's key.
    pub async fn start(
        settings: &EdgeSettings,
        listen: &EdgeHubListen,
        hub_roots: Vec<tls::CertificateDer<'static>>,
        authority: CertificateAuthority,
        edge_hub_key: SymmetricKey,
    ) -> Result<EdgeHubHost, EdgeHubStartError> {
        let data_dir = settings.data_dir.join("edgehub");
        std::fs::create_dir_all(&data_dir)
            .map_err(|error| EdgeHubStartError::Scope(error.to_string()))?;
        let scope = ScopeCache::open(data_dir.join("scope.cache"), &settings.device_key)
            .map_err(|error| EdgeHubStartError::Scope(error.to_string()))?;
        let scope_client = ScopeClient::new(
            settings.hub_hostname.clone(),
            settings.hub_hostname.to_string(),
            settings.hub_https_port,
            settings.device_id.clone(),
            settings.device_key.clone(),
            hub_roots.clone(),
        )
        .map_err(|error| EdgeHubStartError::Scope(error.to_string()))?;

        let request = server_certificate_request(settings, listen);
        let (certificate, first_renewal) = issue_server_certificate(&authority, &request)?;
        let resolver = Arc::new(ReloadableCertificateResolver::new(&certificate)?);
        let mqtt_tls = Arc::new(tls::server_config(
            resolver.clone(),
            tls::ClientCertificates::AcceptAnyOptional,
        )?);
        let mut https_tls =
            tls::server_config(resolver.clone(), tls::ClientCertificates::AcceptAnyOptional)?;
        https_tls.alpn_protocols = vec![b"http/1.1".to_vec()];

        let frontend_config = FrontendConfig::default();
        let sessions = Sessions::spawn(frontend_config.registry_queue_capacity);
        let hub_settings = EdgeHubSettings {
            device_id: settings.device_id.clone(),
            hub_host: settings.hub_hostname.to_string(),
            gateway_host: settings.gateway_hostname.to_string(),
            data_dir: data_dir.clone(),
            cache_key: settings.device_key.clone(),
            store: StoreOptions {
                max_bytes: store_bound(listen, &data_dir),
                ..StoreOptions::default()
            },
            overflow: if listen.drop_oldest {
                Overflow::DropOldest
            } else {
                Overflow::RefuseNew
            },
            upstream: UpstreamSettings {
                hub_host: settings.hub_hostname.clone(),
                port: settings.hub_mqtt_port,
                trusted_roots: hub_roots,
                edge_device: settings.device_id.clone(),
                edge_hub_key,
                probe_interval: Duration::from_millis(500),
                operation_timeout: Duration::from_secs(20),
            },
            scope_refresh_interval: Duration::from_secs(3600),
            scope_on_demand_interval: Duration::from_secs(5),
            message_ack_timeout: Duration::from_secs(30),
        };
        let hub = EdgeHub::start(hub_settings, sessions.clone(), scope, Some(scope_client)).await?;
        let frontend = Frontend::new(Arc::new(hub.clone()), sessions, frontend_config);

        let mqtt_listener = tokio::net::TcpListener::bind(listen.mqtt_addr)
            .await
            .map_err(|source| EdgeHubStartError::Listen {
                address: listen.mqtt_addr,
                source,
            })?;
        let https_listener = tokio::net::TcpListener::bind(listen.https_addr)
            .await
            .map_err(|source| EdgeHubStartError::Listen {
                address: listen.https_addr,
                source,
            })?;
        tracing::info!(
            message = "Edge hub listening.",
            mqtt = %listen.mqtt_addr,
            https = %listen.https_addr
        );
        let mut tasks = Vec::new();
        let mqtt_frontend = frontend.clone();
        tasks.push(tokio::spawn(async move {
            mqtt_frontend.serve_tls(mqtt_listener, mqtt_tls).await;
        }));
        let https_hub = hub.clone();
        tasks.push(tokio::spawn(async move {
            edge_hub::http::serve(https_listener, Arc::new(https_tls), https_hub, frontend).await;
        }));
        let renewing = resolver.clone();
        let (authorities, mut renewed_authorities) = mpsc::channel::<CertificateAuthority>(1);
        tasks.push(tokio::spawn(async move {
            let mut authority = authority;
            let mut renew_at = first_renewal;
            loop {
                let wait = renew_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    renewed = renewed_authorities.recv() => match renewed {
                        Some(renewed) => authority = renewed,
                        None => break,
                    },
                }
                let issued = issue_server_certificate(&authority, &request).and_then(
                    |(certificate, next_renewal)| {
                        renewing.replace(&certificate).map(|()| next_renewal)
                    },
                );
                match issued {
                    Ok(next_renewal) => {
                        renew_at = next_renewal;
                        tracing::info!(message = "Edge hub server certificate renewed in place.");
                    }
                    Err(error) => {
                        renew_at = SystemTime::now() + CERTIFICATE_RETRY_DELAY;
                        tracing::warn!(message = "Cannot renew the edge hub certificate.", %error);
                    }
                }
            }
        }));
        Ok(EdgeHubHost {
            hub,
            tasks,
            authorities,
        })
    }

    /// Tells the edge hub the keys of this device's module identities (so modules authenticate
    /// before the first scope sync and while offline).
    pub fn know_modules(&self, settings: &EdgeSettings, records: &[ModuleIdentityRecord]) {
        for record in records {
            let (Some(primary), secondary) =
                (record.primary_key(), record.secondary_key.as_deref())
            else {
                continue;
            };
            let secondary = secondary
                .and_then(|text| SymmetricKey::from_base64(text).ok())
                .unwrap_or_else(|| primary.clone());
            self.hub.know_identity(ScopeIdentity {
                identity: Identity::module(settings.device_id.clone(), record.module_id.clone()),
                generation_id: record.generation_id.clone(),
                enabled: true,
                auth: ScopeAuth::Sas { primary, secondary },
                is_edge: false,
                parent_scopes: Vec::new(),
                device_scope: None,
            });
        }
    }
}

/// The configured store bound, or a share of the disk space free under `data_dir` now.
fn store_bound(listen: &EdgeHubListen, data_dir: &std::path::Path) -> u64 {
    if let Some(bytes) = listen.store_max_bytes {
        return bytes;
    }
    let available = match rustix::fs::statvfs(data_dir) {
        Ok(stats) => stats.f_bavail.saturating_mul(stats.f_frsize),
        Err(error) => {
            tracing::warn!(message = "Cannot read the free disk space; using the least store bound.", %error);
            0
        }
    };
    let bytes = crate::config::automatic_store_bytes(available);
    tracing::info!(
        message = "Edge hub store bound set from the free disk space.",
        bytes,
        available
    );
    bytes
}

fn server_certificate_request(
    settings: &EdgeSettings,
    listen: &EdgeHubListen,
) -> ServerCertificateRequest {
    let gateway = settings.gateway_hostname.to_string();
    let mut dns_names = vec!["localhost".to_owned()];
    let mut ip_addresses: Vec<IpAddr> = Vec::new();
    match gateway.parse::<IpAddr>() {
        Ok(address) => ip_addresses.push(address),
        Err(_) => dns_names.insert(0, gateway.clone()),
    }
    for address in [listen.mqtt_addr.ip(), listen.https_addr.ip()] {
        if !address.is_unspecified() && !ip_addresses.contains(&address) {
            ip_addresses.push(address);
        }
    }
    ServerCertificateRequest {
        common_name: gateway,
        dns_names,
        ip_addresses,
        validity: CertificateValidity::days_from_now(SERVER_CERTIFICATE_DAYS),
    }
}

/// Issues the server certificate `request` asks for, valid [`SERVER_CERTIFICATE_DAYS`] from now
/// (the CA cuts that to its own end), and says when to renew it.
fn issue_server_certificate(
    authority: &CertificateAuthority,
    request: &ServerCertificateRequest,
) -> Result<(IssuedCertificate, SystemTime), tls::TlsError> {
    let mut request = request.clone();
    request.validity = CertificateValidity::days_from_now(SERVER_CERTIFICATE_DAYS);
    let certificate = authority.issue_server_certificate(&request)?;
    let renew_at = tls::certificate_renewal_time(certificate.end_entity())?;
    Ok((certificate, renew_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen_error(address: std::net::SocketAddr, source: std::io::Error) -> String {
        EdgeHubStartError::Listen { address, source }.to_string()
    }

    #[test]
    fn a_taken_port_names_the_way_out() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let address = taken.local_addr().expect("bound address");
        let source = std::net::TcpListener::bind(address).expect_err("the port is taken");
        let message = listen_error(address, source);
        assert!(
            message.starts_with(&format!("cannot listen on {address}: ")),
            "{message}"
        );
        assert!(
            message.contains("another server holds that port"),
            "{message}"
        );
        assert!(
            message.contains("--gateway-hostname 127.0.0.2"),
            "{message}"
        );
    }

    #[test]
    fn other_listen_errors_carry_no_hint() {
        let address = "127.0.0.1:8883".parse().expect("an address");
        let message = listen_error(
            address,
            std::io::Error::from(std::io::ErrorKind::AddrNotAvailable),
        );
        assert!(!message.contains('('), "{message}");
        let denied = listen_error(
            address,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(denied.contains("CAP_NET_BIND_SERVICE"), "{denied}");
    }
}
