//! The workload side of the runtime: the edge CA, one workload socket per module, the caller
//! check, and the identity facts a module is started with.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use edge_deployment::ModuleName;
use edge_process::{LaunchIdentity, ModuleIdentities};
use edge_workload::{CallerCheck, WorkloadApi, WorkloadCertificates, WorkloadListener};
use iothub_types::ModuleId;
use tls::{CertificateAuthority, CertificateValidity};

use crate::files::write_private_file;
use crate::identities::IdentityCache;

/// The edge CA's certificate and key files under the agent directory.
pub fn edge_ca_paths(agent_dir: &Path) -> (PathBuf, PathBuf) {
    (
        agent_dir.join("edge-ca.pem"),
        agent_dir.join("edge-ca.key.pem"),
    )
}

/// When the edge CA certificate ends, and when it is renewed ([`tls::renewal_time`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeCaDates {
    pub not_after: SystemTime,
    pub renew_at: SystemTime,
}

impl EdgeCaDates {
    /// The dates of `authority`'s certificate.
    pub fn of(authority: &CertificateAuthority) -> EdgeCaDates {
        let validity = authority.validity();
        EdgeCaDates {
            not_after: validity.not_after,
            renew_at: validity.renewal_time(),
        }
    }
}

/// Loads the quickstart edge CA from `agent_dir`, or creates it (self-signed, ECDSA P-256, valid
/// `validity_days`; the key file is mode 0600) when it is missing or unreadable.
///
/// A CA past its [`tls::renewal_time`] is renewed in place: a new certificate for the same name and
/// key, valid `validity_days`, so that everything issued before still chains to it.
/// The running runtime calls this again when the renewal time comes ([`crate::agent`]).
pub fn load_or_create_edge_ca(
    agent_dir: &Path,
    device_id: &str,
    validity_days: u32,
) -> Result<CertificateAuthority, tls::TlsError> {
    let (certificate_path, key_path) = edge_ca_paths(agent_dir);
    if let (Ok(certificate), Ok(key)) = (std::fs::read(&certificate_path), std::fs::read(&key_path))
        && let Ok(authority) = CertificateAuthority::from_pem(&certificate, &key)
    {
        if SystemTime::now() < EdgeCaDates::of(&authority).renew_at {
            return Ok(authority);
        }
        match authority.renewed(CertificateValidity::days_from_now(validity_days)) {
            Ok(renewed) => {
                tls::write_pem_file(
                    &certificate_path,
                    &renewed.certificate_pem(),
                    tls::FileAccess::WorldReadable,
                )?;
                tracing::info!(
                    message = "Renewed the edge CA certificate (same name and key).",
                    path = %certificate_path.display()
                );
                return Ok(renewed);
            }
            Err(error) => {
                tracing::warn!(message = "Cannot renew the edge CA; replacing it.", %error);
            }
        }
    }
    let authority = CertificateAuthority::generate(
        &format!("Outpost edge CA {device_id}"),
        CertificateValidity::days_from_now(validity_days),
    )?;
    write_private_file(&key_path, authority.private_key_pem().as_bytes()).map_err(|source| {
        tls::TlsError::Io {
            action: "writing",
            path: key_path.clone(),
            source,
        }
    })?;
    tls::write_pem_file(
        &certificate_path,
        &authority.certificate_pem(),
        tls::FileAccess::WorldReadable,
    )?;
    Ok(authority)
}

/// The workload API's caller check: the calling process must belong to the module whose socket
/// it called. The engine supplies the pid-to-module lookup once it exists; until then, or for an
/// engine without one, the socket binding alone decides (as with `edge_workload::AnyCaller`).
#[derive(Clone, Default)]
pub struct ModuleProcessCheck {
    lookup: Arc<OnceLock<ProcessLookup>>,
}

type ProcessLookup = Box<dyn Fn(u32) -> Option<ModuleName> + Send + Sync>;

impl ModuleProcessCheck {
    /// Installs the lookup (the first call wins).
    pub fn set_lookup(&self, lookup: impl Fn(u32) -> Option<ModuleName> + Send + Sync + 'static) {
        let _ = self.lookup.set(Box::new(lookup));
    }
}

impl CallerCheck for ModuleProcessCheck {
    fn needs_pid(&self) -> bool {
        self.lookup.get().is_some()
    }

    fn allows(&self, module_id: &ModuleId, pid: u32) -> bool {
        match self.lookup.get() {
            None => true,
            Some(lookup) => lookup(pid).is_some_and(|module| module.module_id() == *module_id),
        }
    }
}

/// One workload socket per module, `<dir>/<module>.sock`, opened on demand. Cheap to clone.
#[derive(Clone)]
pub struct WorkloadSockets {
    api: WorkloadApi<IdentityCache, ModuleProcessCheck>,
    directory: PathBuf,
    listeners: Arc<tokio::sync::Mutex<BTreeMap<ModuleName, WorkloadListener>>>,
}

impl WorkloadSockets {
    pub fn new(
        api: WorkloadApi<IdentityCache, ModuleProcessCheck>,
        directory: PathBuf,
    ) -> WorkloadSockets {
        WorkloadSockets {
            api,
            directory,
            listeners: Arc::default(),
        }
    }

    /// The socket path of a module.
    pub fn socket_path(&self, module: &ModuleName) -> PathBuf {
        self.directory.join(format!("{module}.sock"))
    }

    /// Makes sure the module's socket listens and returns its `unix://` URI.
    pub async fn ensure(&self, module: &ModuleName) -> io::Result<String> {
        let mut listeners = self.listeners.lock().await;
        if let Some(listener) = listeners.get(module) {
            return Ok(listener.uri().to_owned());
        }
        let listener = self
            .api
            .listen_unix(module.module_id(), &self.socket_path(module))
            .await?;
        let uri = listener.uri().to_owned();
        listeners.insert(module.clone(), listener);
        Ok(uri)
    }

    /// Closes (and deletes) the sockets of modules not in `keep`.
    pub async fn retain(&self, keep: &BTreeSet<ModuleName>) {
        self.listeners
            .lock()
            .await
            .retain(|module, _| keep.contains(module));
    }

    /// The modules whose socket listens.
    pub async fn modules(&self) -> Vec<ModuleName> {
        self.listeners.lock().await.keys().cloned().collect()
    }

    pub fn api(&self) -> &WorkloadApi<IdentityCache, ModuleProcessCheck> {
        &self.api
    }
}

/// Builds the workload API over the identity cache, with certificates from the edge CA and the
/// hub's CA in the trust bundle (modules may talk to the hub directly while no edge hub runs).
pub fn workload_api(
    keys: IdentityCache,
    authority: CertificateAuthority,
    hub_ca_pem: &str,
    check: ModuleProcessCheck,
) -> Result<WorkloadApi<IdentityCache, ModuleProcessCheck>, tls::TlsError> {
    Ok(WorkloadApi::new(
        keys,
        workload_certificates(authority, hub_ca_pem)?,
        check,
    ))
}

/// What the workload API issues from and hands out: the edge CA, and a trust bundle of the edge CA
/// followed by the hub's CA.
pub fn workload_certificates(
    authority: CertificateAuthority,
    hub_ca_pem: &str,
) -> Result<WorkloadCertificates, tls::TlsError> {
    Ok(WorkloadCertificates::new(authority)?.with_extra_trust(hub_ca_pem))
}

/// What a module is started with: its generation id from the identity cache and its workload
/// socket, opened here if it does not listen yet, so that it exists before the module does.
#[derive(Clone)]
pub struct LaunchIdentities {
    pub cache: IdentityCache,
    pub sockets: WorkloadSockets,
}

impl ModuleIdentities for LaunchIdentities {
    async fn launch_identity(&self, module: &ModuleName) -> Result<LaunchIdentity, String> {
        let module_id = module.module_id();
        let record = self.cache.get(&module_id).ok_or_else(|| {
            format!(
                "module {module} has no identity yet (the hub has not been reachable since it was \
                 deployed)"
            )
        })?;
        let workload_uri = self
            .sockets
            .ensure(module)
            .await
            .map_err(|error| format!("cannot open the workload socket of {module}: {error}"))?;
        Ok(LaunchIdentity {
            generation_id: record.generation_id,
            workload_uri,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn write_ca(agent_dir: &Path, authority: &CertificateAuthority) {
        let (certificate_path, key_path) = edge_ca_paths(agent_dir);
        tls::write_pem_file(
            &certificate_path,
            &authority.certificate_pem(),
            tls::FileAccess::WorldReadable,
        )
        .expect("write the CA certificate");
        write_private_file(&key_path, authority.private_key_pem().as_bytes())
            .expect("write the CA key");
    }

    fn ca_valid(not_before: SystemTime, lifetime: Duration) -> CertificateAuthority {
        CertificateAuthority::generate(
            "Outpost edge CA dev",
            CertificateValidity {
                not_before,
                not_after: not_before + lifetime,
            },
        )
        .expect("a CA")
    }

    #[test]
    fn a_missing_ca_is_created_and_one_not_yet_due_is_kept() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let created = load_or_create_edge_ca(directory.path(), "dev", 90).expect("a new CA");
        let summary = tls::summarize_certificate(created.certificate()).expect("a certificate");
        assert_eq!(
            summary.subject_common_name.as_deref(),
            Some("Outpost edge CA dev")
        );
        let lifetime = summary.not_after_unix_secs - summary.not_before_unix_secs;
        assert_eq!(lifetime, 90 * 86_400 + 3_600);
        let again = load_or_create_edge_ca(directory.path(), "dev", 90).expect("the same CA");
        assert_eq!(again.certificate(), created.certificate());
        assert_eq!(again.private_key_pem(), created.private_key_pem());
    }

    #[test]
    fn a_due_ca_is_renewed_in_place_with_its_key() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let now = SystemTime::now();
        let due = ca_valid(now - 61 * DAY, 90 * DAY);
        write_ca(directory.path(), &due);
        let renewed = load_or_create_edge_ca(directory.path(), "dev", 90).expect("a renewed CA");
        assert_ne!(renewed.certificate(), due.certificate());
        assert_eq!(renewed.private_key_pem(), due.private_key_pem());
        let (certificate_path, key_path) = edge_ca_paths(directory.path());
        assert_eq!(
            tls::read_certificates_file(&certificate_path).expect("the CA file"),
            vec![renewed.certificate().clone()]
        );
        assert_eq!(
            std::fs::read_to_string(key_path).expect("the key file"),
            due.private_key_pem()
        );
        let next = EdgeCaDates::of(&renewed).renew_at;
        assert!(next > now + 59 * DAY && next < now + 61 * DAY, "{next:?}");

        // An expired CA is renewed the same way.
        let expired = ca_valid(now - 100 * DAY, 90 * DAY);
        write_ca(directory.path(), &expired);
        let renewed = load_or_create_edge_ca(directory.path(), "dev", 90).expect("a renewed CA");
        assert_eq!(renewed.private_key_pem(), expired.private_key_pem());
        assert!(EdgeCaDates::of(&renewed).renew_at > now);
    }

    #[test]
    fn an_unreadable_ca_is_replaced_by_a_new_one() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (certificate_path, key_path) = edge_ca_paths(directory.path());
        std::fs::write(&certificate_path, "not a certificate").expect("write");
        std::fs::write(&key_path, "not a key").expect("write");
        let created = load_or_create_edge_ca(directory.path(), "dev", 90).expect("a new CA");
        assert_eq!(
            tls::read_certificates_file(&certificate_path).expect("the CA file"),
            vec![created.certificate().clone()]
        );
    }
}
