//! [`WorkloadApi`]: the router, its handlers and the per-module listeners.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, extract::Path as UrlPath};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use iothub_auth::SymmetricKey;
use iothub_types::ModuleId;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

use crate::caller::{AnyCaller, CallerCheck, PeerAddress, loopback_peer_pid};
use crate::certificates::{WorkloadCertificates, excerpt};
use crate::error::WorkloadError;
use crate::wire::{
    IdentityCertificateRequest, ServerCertificateRequest, SignRequest, SignResponse,
    TrustBundleResponse,
};

/// Every workload API version Azure's edged has served; `?api-version=` must be one of them.
pub const SUPPORTED_API_VERSIONS: &[&str] = &[
    "2018-06-28",
    "2019-01-30",
    "2019-10-22",
    "2019-11-05",
    "2020-07-07",
    "2021-12-07",
    "2022-08-03",
];

/// How many requests one listener serves at once, as in Azure's edged; more get `503`.
pub const MAX_CONCURRENT_REQUESTS: usize = 10;

/// The largest request body read, in bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Supplies module keys for signing. The keys stay inside the runtime: the workload API only
/// ever returns digests.
pub trait ModuleKeys: Send + Sync + 'static {
    /// The primary key of `module_id` at generation `generation_id`.
    fn module_key(
        &self,
        module_id: &ModuleId,
        generation_id: &str,
    ) -> impl Future<Output = Result<SymmetricKey, ModuleKeyError>> + Send;
}

/// Why no key is available for a module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleKeyError {
    /// Answered with 404.
    #[error("module {0} has no identity on this device")]
    UnknownModule(String),
    /// Answered with 404: the module identity was recreated since the module started.
    #[error("generation {generation_id} is not the current generation of module {module}")]
    WrongGeneration {
        module: String,
        generation_id: String,
    },
    /// Answered with 503.
    #[error("the module keys are unavailable: {0}")]
    Unavailable(String),
}

/// How many calls the workload API has answered, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkloadCounters {
    pub trust_bundle: u64,
    pub sign: u64,
    pub server_certificates: u64,
    pub identity_certificates: u64,
    /// Calls refused with 403.
    pub refused: u64,
}

/// The workload API for all modules of the device (see the crate documentation).
///
/// Cheap to clone; clones share keys, certificates and counters.
pub struct WorkloadApi<K, C = AnyCaller> {
    shared: Arc<Shared<K, C>>,
}

impl<K, C> Clone for WorkloadApi<K, C> {
    fn clone(&self) -> Self {
        WorkloadApi {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, C> std::fmt::Debug for WorkloadApi<K, C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WorkloadApi")
            .finish_non_exhaustive()
    }
}

struct Shared<K, C> {
    keys: K,
    caller_check: C,
    certificates: RwLock<Arc<WorkloadCertificates>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    trust_bundle: AtomicU64,
    sign: AtomicU64,
    server_certificates: AtomicU64,
    identity_certificates: AtomicU64,
    refused: AtomicU64,
}

/// The state of one module's router.
struct ModuleRoutes<K, C> {
    shared: Arc<Shared<K, C>>,
    module_id: ModuleId,
}

impl<K, C> Clone for ModuleRoutes<K, C> {
    fn clone(&self) -> Self {
        ModuleRoutes {
            shared: Arc::clone(&self.shared),
            module_id: self.module_id.clone(),
        }
    }
}

impl<K: ModuleKeys, C: CallerCheck> WorkloadApi<K, C> {
    pub fn new(keys: K, certificates: WorkloadCertificates, caller_check: C) -> WorkloadApi<K, C> {
        WorkloadApi {
            shared: Arc::new(Shared {
                keys,
                caller_check,
                certificates: RwLock::new(Arc::new(certificates)),
                counters: Counters::default(),
            }),
        }
    }

    /// Swaps in new certificates (a renewed edge CA); later calls use them.
    pub fn replace_certificates(&self, certificates: WorkloadCertificates) {
        let mut current = self
            .shared
            .certificates
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(certificates);
    }

    pub fn counters(&self) -> WorkloadCounters {
        let counters = &self.shared.counters;
        WorkloadCounters {
            trust_bundle: counters.trust_bundle.load(Ordering::Relaxed),
            sign: counters.sign.load(Ordering::Relaxed),
            server_certificates: counters.server_certificates.load(Ordering::Relaxed),
            identity_certificates: counters.identity_certificates.load(Ordering::Relaxed),
            refused: counters.refused.load(Ordering::Relaxed),
        }
    }

    /// The routes as seen by `module_id`, with the concurrency limit. Serve it with
    /// `into_make_service_with_connect_info` from a listener of this crate's kind (as
    /// [`WorkloadApi::listen_unix`] does) for the caller check to see the peer; without
    /// connection info, a configured [`CallerCheck`] refuses every module-scoped call.
    pub fn router(&self, module_id: ModuleId) -> Router {
        let routes = ModuleRoutes {
            shared: Arc::clone(&self.shared),
            module_id,
        };
        Router::new()
            .route("/trust-bundle", get(trust_bundle::<K, C>))
            .route("/manifest-trust-bundle", get(manifest_trust_bundle::<K, C>))
            .route(
                "/modules/{module}/genid/{generation}/sign",
                post(sign::<K, C>),
            )
            .route(
                "/modules/{module}/genid/{generation}/certificate/server",
                post(server_certificate::<K, C>),
            )
            .route(
                "/modules/{module}/certificate/identity",
                post(identity_certificate::<K, C>),
            )
            .fallback(no_such_route)
            .with_state(routes)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(from_fn_with_state(
                Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS)),
                limit_concurrency,
            ))
    }

    /// Serves `module_id`'s workload API on a Unix socket at `path` (a stale socket file is
    /// replaced, the parent directory created). The socket is made world-connectable (mode
    /// 0666, as Azure's workload socket): the binding to one module, and the caller check,
    /// protect it, not the file mode.
    pub async fn listen_unix(
        &self,
        module_id: ModuleId,
        path: &Path,
    ) -> io::Result<WorkloadListener> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        match tokio::fs::remove_file(path).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).await?;
        let service = self
            .router(module_id.clone())
            .into_make_service_with_connect_info::<PeerAddress>();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, service).await {
                tracing::warn!(message = "The workload socket stopped.", %error);
            }
        });
        Ok(WorkloadListener {
            uri: format!("unix://{}", path.display()),
            module_id,
            socket_path: Some(path.to_path_buf()),
            local_address: None,
            task,
        })
    }

    /// Serves `module_id`'s workload API on loopback TCP at `address` (port 0 picks a free
    /// port). Refuses addresses that are not loopback.
    pub async fn listen_loopback(
        &self,
        module_id: ModuleId,
        address: SocketAddr,
    ) -> io::Result<WorkloadListener> {
        if !address.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the workload API only listens on loopback addresses, not {address}"),
            ));
        }
        let listener = TcpListener::bind(address).await?;
        let local_address = listener.local_addr()?;
        let service = self
            .router(module_id.clone())
            .into_make_service_with_connect_info::<PeerAddress>();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, service).await {
                tracing::warn!(message = "The workload TCP listener stopped.", %error);
            }
        });
        Ok(WorkloadListener {
            uri: format!("http://{local_address}"),
            module_id,
            socket_path: None,
            local_address: Some(local_address),
            task,
        })
    }
}

/// A running per-module listener. Dropping it stops serving and deletes the socket file.
#[derive(Debug)]
pub struct WorkloadListener {
    uri: String,
    module_id: ModuleId,
    socket_path: Option<PathBuf>,
    local_address: Option<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkloadListener {
    /// What to put in the module's `IOTEDGE_WORKLOADURI`: `unix:///…/x.sock` or
    /// `http://127.0.0.1:port`.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn module_id(&self) -> &ModuleId {
        &self.module_id
    }

    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_path.as_deref()
    }

    pub fn local_address(&self) -> Option<SocketAddr> {
        self.local_address
    }
}

impl Drop for WorkloadListener {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The peer of the request's connection, when the server recorded it.
struct Caller(Option<PeerAddress>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Self::Rejection> {
        Ok(Caller(
            parts
                .extensions
                .get::<ConnectInfo<PeerAddress>>()
                .map(|info| info.0),
        ))
    }
}

impl<K: ModuleKeys, C: CallerCheck> ModuleRoutes<K, C> {
    fn certificates(&self) -> Arc<WorkloadCertificates> {
        Arc::clone(
            &self
                .shared
                .certificates
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Checks that the caller may act as `requested_module`; counts refusals.
    async fn authorize(
        &self,
        caller: &Caller,
        requested_module: &str,
    ) -> Result<(), WorkloadError> {
        let result = self.check_caller(caller, requested_module).await;
        if let Err(error) = &result {
            self.shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                message = "Refused a workload call.",
                module = %self.module_id,
                %error
            );
        }
        result
    }

    async fn check_caller(
        &self,
        caller: &Caller,
        requested_module: &str,
    ) -> Result<(), WorkloadError> {
        if !same_module(requested_module, self.module_id.as_str()) {
            return Err(WorkloadError::Forbidden(format!(
                "this workload endpoint belongs to module {}; it cannot act as module {}",
                self.module_id,
                excerpt(requested_module)
            )));
        }
        if !self.shared.caller_check.needs_pid() {
            return Ok(());
        }
        let pid = match caller.0 {
            None => None,
            Some(PeerAddress::Unix { pid }) => pid,
            Some(PeerAddress::Tcp { local, remote }) => {
                tokio::task::spawn_blocking(move || loopback_peer_pid(local, remote))
                    .await
                    .ok()
                    .flatten()
            }
        };
        match pid {
            Some(pid) if self.shared.caller_check.allows(&self.module_id, pid) => Ok(()),
            Some(pid) => Err(WorkloadError::Forbidden(format!(
                "process {pid} is not part of module {}",
                self.module_id
            ))),
            None => Err(WorkloadError::Forbidden(
                "the calling process cannot be identified".to_owned(),
            )),
        }
    }
}

/// Module names in paths are compared without a leading `$`, as Azure does.
fn same_module(requested: &str, bound: &str) -> bool {
    requested.strip_prefix('$').unwrap_or(requested) == bound.strip_prefix('$').unwrap_or(bound)
}

/// Accepts a missing `api-version` and any of [`SUPPORTED_API_VERSIONS`], pure.
pub(crate) fn check_api_version(raw_query: Option<&str>) -> Result<(), WorkloadError> {
    let Some(query) = raw_query else {
        return Ok(());
    };
    for pair in query.split('&') {
        if let Some(version) = pair.strip_prefix("api-version=")
            && !SUPPORTED_API_VERSIONS.contains(&version)
        {
            return Err(WorkloadError::BadRequest(format!(
                "api-version {:?} is not supported; use one of {}",
                excerpt(version),
                SUPPORTED_API_VERSIONS.join(", ")
            )));
        }
    }
    Ok(())
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, WorkloadError> {
    serde_json::from_slice(body)
        .map_err(|error| WorkloadError::BadRequest(format!("malformed request body: {error}")))
}

async fn trust_bundle<K: ModuleKeys, C: CallerCheck>(
    State(routes): State<ModuleRoutes<K, C>>,
    RawQuery(query): RawQuery,
) -> Result<Json<TrustBundleResponse>, WorkloadError> {
    check_api_version(query.as_deref())?;
    routes
        .shared
        .counters
        .trust_bundle
        .fetch_add(1, Ordering::Relaxed);
    Ok(Json(TrustBundleResponse {
        certificate: routes.certificates().trust_bundle_pem().to_owned(),
    }))
}

async fn manifest_trust_bundle<K: ModuleKeys, C: CallerCheck>(
    State(routes): State<ModuleRoutes<K, C>>,
    RawQuery(query): RawQuery,
) -> Result<Json<TrustBundleResponse>, WorkloadError> {
    check_api_version(query.as_deref())?;
    Ok(Json(TrustBundleResponse {
        certificate: routes.certificates().manifest_trust_bundle_pem().to_owned(),
    }))
}

async fn sign<K: ModuleKeys, C: CallerCheck>(
    State(routes): State<ModuleRoutes<K, C>>,
    caller: Caller,
    UrlPath((module, generation)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<SignResponse>, WorkloadError> {
    check_api_version(query.as_deref())?;
    routes.authorize(&caller, &module).await?;
    let request: SignRequest = parse_body(&body)?;
    if let Some(algorithm) = &request.algo
        && !algorithm.eq_ignore_ascii_case("HMACSHA256")
    {
        return Err(WorkloadError::BadRequest(format!(
            "algo {:?} is not supported; only HMACSHA256 is",
            excerpt(algorithm)
        )));
    }
    let data = BASE64
        .decode(request.data.as_bytes())
        .map_err(|error| WorkloadError::BadRequest(format!("data is not base64: {error}")))?;
    let key = routes
        .shared
        .keys
        .module_key(&routes.module_id, &generation)
        .await
        .map_err(|error| match error {
            ModuleKeyError::Unavailable(_) => WorkloadError::Unavailable(error.to_string()),
            ModuleKeyError::UnknownModule(_) | ModuleKeyError::WrongGeneration { .. } => {
                WorkloadError::NotFound(error.to_string())
            }
        })?;
    routes.shared.counters.sign.fetch_add(1, Ordering::Relaxed);
    Ok(Json(SignResponse {
        digest: key.sign_to_base64(&data),
    }))
}

async fn server_certificate<K: ModuleKeys, C: CallerCheck>(
    State(routes): State<ModuleRoutes<K, C>>,
    caller: Caller,
    UrlPath((module, _generation)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, WorkloadError> {
    check_api_version(query.as_deref())?;
    routes.authorize(&caller, &module).await?;
    let request: ServerCertificateRequest = parse_body(&body)?;
    let certificates = routes.certificates();
    let module_id = routes.module_id.clone();
    let response = tokio::task::spawn_blocking(move || {
        certificates.issue_server_certificate(
            &module_id,
            &request.common_name,
            &request.expiration,
            chrono::Utc::now(),
        )
    })
    .await
    .map_err(|error| WorkloadError::Internal(error.to_string()))??;
    routes
        .shared
        .counters
        .server_certificates
        .fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

async fn identity_certificate<K: ModuleKeys, C: CallerCheck>(
    State(routes): State<ModuleRoutes<K, C>>,
    caller: Caller,
    UrlPath(module): UrlPath<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, WorkloadError> {
    check_api_version(query.as_deref())?;
    routes.authorize(&caller, &module).await?;
    let request: IdentityCertificateRequest = parse_body(&body)?;
    let certificates = routes.certificates();
    let module_id = routes.module_id.clone();
    let response = tokio::task::spawn_blocking(move || {
        certificates.issue_identity_certificate(&module_id, &request.expiration, chrono::Utc::now())
    })
    .await
    .map_err(|error| WorkloadError::Internal(error.to_string()))??;
    routes
        .shared
        .counters
        .identity_certificates
        .fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

async fn no_such_route() -> WorkloadError {
    WorkloadError::NotFound("no such workload API route".to_owned())
}

async fn limit_concurrency(
    State(in_flight): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match in_flight.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => WorkloadError::Unavailable(format!(
            "more than {MAX_CONCURRENT_REQUESTS} workload requests at once"
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn api_versions() {
        let rendered: Vec<String> = [
            None,
            Some("api-version=2020-07-07"),
            Some("x=1&api-version=2018-06-28"),
            Some("api-version=2099-01-01"),
            Some("other=value"),
        ]
        .into_iter()
        .map(|query| match check_api_version(query) {
            Ok(()) => "ok".to_owned(),
            Err(error) => error.to_string(),
        })
        .collect();
        expect![[r#"
            [
                "ok",
                "ok",
                "ok",
                "api-version \"2099-01-01\" is not supported; use one of 2018-06-28, 2019-01-30, 2019-10-22, 2019-11-05, 2020-07-07, 2021-12-07, 2022-08-03",
                "ok",
            ]
        "#]]
        .assert_debug_eq(&rendered);
    }

    #[test]
    fn module_names_compare_without_dollar() {
        assert!(same_module("$edgeHub", "$edgeHub"));
        assert!(same_module("edgeHub", "$edgeHub"));
        assert!(!same_module("sensor", "$edgeHub"));
        assert!(!same_module("Sensor", "sensor"));
    }
}
