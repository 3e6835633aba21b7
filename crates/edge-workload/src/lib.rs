//! The IoT Edge workload API: what unmodified Azure IoT SDK modules call to sign and to trust.
//!
//! This crate owns the HTTP API that Azure's `aziot-edged` serves to modules, with Azure's routes
//! and JSON (see [`wire`]), as an axum router ([`WorkloadApi::router`]) served on one Unix socket
//! per module ([`WorkloadApi::listen_unix`]) or, where a user asks, one loopback TCP port per
//! module ([`WorkloadApi::listen_loopback`]):
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /trust-bundle` | `200 {"certificate": PEM}`: the edge CA and any extra trusted roots |
//! | `GET /manifest-trust-bundle` | `200 {"certificate": PEM or ""}` |
//! | `POST /modules/{m}/genid/{g}/sign` | `200 {"digest": b64}`: HMAC-SHA256 of `data` with the module's key |
//! | `POST /modules/{m}/genid/{g}/certificate/server` | `201 {"privateKey":{"type":"key","bytes":PEM},"certificate":PEM,"expiration":RFC3339}` |
//! | `POST /modules/{m}/certificate/identity` | `201`, same shape, a client certificate with CN = module id |
//!
//! Every route accepts `?api-version=` with any version Azure's workload API has had
//! ([`SUPPORTED_API_VERSIONS`]); an unknown version is refused with 400, a missing one is
//! accepted. Errors are `{"message": "…"}` as in Azure. Bodies are read as JSON whatever their
//! `Content-Type` (the Python SDK sends none). The encrypt/decrypt routes are not served.
//!
//! # Who may call
//!
//! A module may only act as itself. Each listener is bound to one module id, so the socket a
//! call came in on names the caller; a `{m}` in the path that is not that module (compared
//! without a leading `$`, as Azure does) is refused with `403`. On top of that, a
//! [`CallerCheck`] can vet the calling process: on a Unix socket its pid comes from the socket's
//! peer credentials; on loopback TCP it is found through `/proc/net/tcp{,6}` (the connection's
//! socket inode) and `/proc/<pid>/fd` (which process holds that socket), which needs the runtime
//! to see other processes' descriptors (root, or the same user). A call whose pid cannot be found
//! is refused when a check is configured. [`AnyCaller`] skips the check (the socket binding
//! alone decides); the process runtime offers `module_of_process` to build a real check.
//! Without a check, a loopback TCP port is weaker than a socket file, since any local process
//! can connect to it: prefer sockets. No tokens are involved, as in Azure.
//!
//! Keys never leave the runtime: the module's key comes from [`ModuleKeys`] and only the digest
//! is returned. Like Azure's edged, each listener serves at most
//! [`MAX_CONCURRENT_REQUESTS`] requests at once (more get `503`).
//!
//! # Certificates
//!
//! Certificates are issued by the edge CA ([`WorkloadCertificates`]) with ECDSA P-256 keys
//! (Azure uses RSA-2048; clients do not care). A server certificate covers the requested common
//! name (as an IP address when it parses as one, else as a DNS name) and the module id made into
//! a DNS label. Its lifetime is what was asked, but never past the CA's own expiry nor more than
//! [`WorkloadCertificates::max_validity`] from now, and the answer's `expiration` says what was
//! actually issued. The `certificate` field holds the leaf followed by the edge CA.

#![forbid(unsafe_code)]

mod caller;
mod certificates;
mod error;
mod server;
pub mod wire;

pub use caller::{AnyCaller, CallerCheck, loopback_peer_pid};
pub use certificates::{
    CertificatePlanError, DEFAULT_MAX_CERTIFICATE_VALIDITY, WorkloadCertificates,
    certificate_validity, server_certificate_names,
};
pub use error::WorkloadError;
pub use server::{
    MAX_CONCURRENT_REQUESTS, ModuleKeyError, ModuleKeys, SUPPORTED_API_VERSIONS, WorkloadApi,
    WorkloadCounters, WorkloadListener,
};
