//! The workload side of the runtime: the edge CA, one workload socket per module, the caller
//! check, and the identity facts a module is started with.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use edge_deployment::ModuleName;
use edge_process::{LaunchIdentity, ModuleIdentities};
use edge_workload::{CallerCheck, WorkloadApi, WorkloadCertificates, WorkloadListener};
use iothub_types::ModuleId;
use tls::{CertificateAuthority, CertificateValidity};

use crate::files::write_private_file;
use crate::identities::IdentityCache;

/// How long a quickstart edge CA created by the runtime is valid, as Azure's quickstart CA.
pub const EDGE_CA_VALIDITY_DAYS: u32 = 90;

/// A CA that expires within this time is replaced at start.
const EDGE_CA_RENEW_BEFORE: Duration = Duration::from_secs(86_400);

/// The edge CA's certificate and key files under the agent directory.
pub fn edge_ca_paths(agent_dir: &Path) -> (PathBuf, PathBuf) {
    (
        agent_dir.join("edge-ca.pem"),
        agent_dir.join("edge-ca.key.pem"),
    )
}

/// Loads the quickstart edge CA from `agent_dir`, or creates it (self-signed, ECDSA P-256,
/// [`EDGE_CA_VALIDITY_DAYS`] days; the key file is mode 0600) when it is missing, unreadable or
/// about to expire.
pub fn load_or_create_edge_ca(
    agent_dir: &Path,
    device_id: &str,
) -> Result<CertificateAuthority, tls::TlsError> {
    let (certificate_path, key_path) = edge_ca_paths(agent_dir);
    if let (Ok(certificate), Ok(key)) = (std::fs::read(&certificate_path), std::fs::read(&key_path))
        && let Ok(authority) = CertificateAuthority::from_pem(&certificate, &key)
        && let Ok(summary) = tls::summarize_certificate(authority.certificate())
    {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let renew_at = u64::try_from(summary.not_after_unix_secs)
            .unwrap_or(0)
            .saturating_sub(EDGE_CA_RENEW_BEFORE.as_secs());
        if now < renew_at {
            return Ok(authority);
        }
        tracing::info!(message = "Renewing the edge CA, which expires soon.");
    }
    let authority = CertificateAuthority::generate(
        &format!("Outpost edge CA {device_id}"),
        CertificateValidity::days_from_now(EDGE_CA_VALIDITY_DAYS),
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
    let certificates = WorkloadCertificates::new(authority)?.with_extra_trust(hub_ca_pem);
    Ok(WorkloadApi::new(keys, certificates, check))
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
