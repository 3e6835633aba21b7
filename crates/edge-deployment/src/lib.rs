//! IoT Edge deployment manifests: Azure's wire format, validation and the domain model (pure, no I/O).
//!
//! This crate owns what an edge device is asked to run. It reads the `modulesContent` manifest
//! (`$edgeAgent` desired properties schema 1.0/1.1, `$edgeHub` desired properties schema 1.0–1.3,
//! and the desired properties of every other module twin) exactly as Azure IoT Edge spells it,
//! validates it, and turns it into domain types the edge agent can plan with: [`AgentDeployment`]
//! with one [`ModuleSpec`] per module, [`HubDeployment`] with parsed routes, and
//! [`DeploymentManifest`] for the whole document. Every refusal is a [`DeploymentError`] whose
//! [`DeploymentError::status_code`] is the code Azure's edgeAgent reports in `lastDesiredStatus`
//! (400 format error, 412 schema version, 417 empty) and whose `Display` is the description.
//!
//! Each module spec has a deterministic [`ConfigHash`] over the settings that need a new container
//! or process when they change (type, version, image, digest, createOptions, env and the process
//! settings), and over nothing else: a change of `status`, `restartPolicy`, `startupOrder` or
//! `imagePullPolicy` is applied without recreating the module.
//!
//! # Wire format notes
//!
//! - `settings.createOptions` may be split into `createOptions`, `createOptions01` …
//!   `createOptions07` (at most [`MAX_CREATE_OPTIONS_CHUNKS`] strings). The chunks are joined in
//!   order and the result is parsed as a JSON object. Unlike Azure, which silently stops at a gap,
//!   a missing chunk, a malformed chunk key or a ninth chunk is refused. An empty string or `"null"`
//!   means no options; a JSON object given directly instead of a string is accepted too.
//! - Images without a tag get `:latest`, as in Azure. `$upstream:<port>/…` is kept as written and
//!   resolved by the runtime with [`ImageReference::resolve_upstream`].
//! - Enumerated values (`status`, `restartPolicy`, `imagePullPolicy`, `type`) are matched without
//!   regard to ASCII case, as Azure's JSON reader does. Unknown fields are ignored (twins carry
//!   `$version` and `$metadata`, and tools add their own keys).
//! - Omitted fields take Azure's defaults: `status` running, `restartPolicy` on-unhealthy,
//!   `imagePullPolicy` on-create, `startupOrder` 4294967295 (last).
//!
//! # Our extension: process modules
//!
//! A module may have `"type": "process"` instead of `"docker"`. It then runs as a native process
//! supervised by the edge runtime, and its `settings` are:
//!
//! ```json
//! {
//!   "type": "process",
//!   "status": "running",
//!   "restartPolicy": "always",
//!   "settings": {
//!     "path": "/usr/local/bin/sensor",
//!     "args": ["--interval", "5"],
//!     "workingDir": "/var/lib/sensor",
//!     "user": "sensor"
//!   },
//!   "env": { "LOG_LEVEL": { "value": "debug" } }
//! }
//! ```
//!
//! `path` is required and absolute; `args` (an array of strings), `workingDir` (absolute) and
//! `user` (a user name or numeric id) are optional. The environment comes from the ordinary
//! module `env` map. Docker-only settings (`image`, `createOptions`, `digest`) are refused on a
//! process module and process settings are refused on a Docker module, so a typo in `type` cannot
//! go unnoticed. `runtime.type` may be `docker` or `process`; it only says which engine the
//! `runtime.settings` describe.
//!
//! # Module names
//!
//! Module names become container names, socket file names and directory names, so they are
//! stricter than IoT Hub module ids: 1 to 128 characters, an ASCII letter or digit first, then
//! ASCII letters, digits, `_`, `.` or `-` (Docker's container-name rule). `edgeAgent` and `edgeHub`
//! are reserved for the system modules; their module ids are `$edgeAgent` and `$edgeHub`.

#![forbid(unsafe_code)]

mod agent;
mod canonical;
mod create_options;
mod error;
mod hub;
mod image;
mod manifest;
mod module;
mod names;
mod schema;
pub mod wire;

pub use agent::{AgentDeployment, RegistryCredential, RuntimeKind, RuntimeSettings};
pub use canonical::canonical_json;
pub use create_options::{
    CREATE_OPTIONS_CHUNK_LENGTH, CreateOptionsError, MAX_CREATE_OPTIONS_CHUNKS,
    assemble_create_options, chunk_create_options,
};
pub use error::{DeploymentError, DeploymentStatusCode, LastDesiredStatus, ModuleProblem, Section};
pub use hub::{
    DEFAULT_TIME_TO_LIVE_SECS, HubDeployment, HubRoute, RouteName, RouteNameError, RouteOverflow,
    RouteProblem, StoreAndForwardSettings,
};
pub use image::{ImageReference, ImageReferenceError};
pub use manifest::DeploymentManifest;
pub use module::{
    ConfigHash, DEFAULT_STARTUP_ORDER, DesiredStatus, DockerSettings, EnvVarName, EnvVarNameError,
    ImagePullPolicy, ModuleKind, ModuleSpec, ProcessSettings, RestartPolicy,
};
pub use names::{EDGE_AGENT_MODULE_NAME, EDGE_HUB_MODULE_NAME, ModuleName, ModuleNameError};
pub use schema::{SchemaVersion, SchemaVersionError};
