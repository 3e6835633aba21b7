//! Deployment refusals and the `lastDesiredStatus` codes they map to.

use std::fmt;

use crate::create_options::CreateOptionsError;
use crate::hub::{RouteNameError, RouteProblem};
use crate::image::ImageReferenceError;
use crate::module::EnvVarNameError;
use crate::names::ModuleNameError;

/// The `lastDesiredStatus.code` values Azure's edgeAgent reports, with their Azure names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentStatusCode {
    /// 200: the deployment was applied.
    Ok,
    /// 400: the deployment could not be read (`ConfigFormatError`).
    ConfigFormatError,
    /// 406: unknown; the agent is not connected, or is shutting down.
    Unknown,
    /// 412: the schema version is not supported (`InvalidSchemaVersion`).
    InvalidSchemaVersion,
    /// 417: no deployment has been received yet (`ConfigEmptyError`).
    ConfigEmptyError,
    /// 500: applying the deployment failed.
    Failed,
}

impl DeploymentStatusCode {
    /// The numeric code as reported.
    pub fn as_u16(self) -> u16 {
        match self {
            DeploymentStatusCode::Ok => 200,
            DeploymentStatusCode::ConfigFormatError => 400,
            DeploymentStatusCode::Unknown => 406,
            DeploymentStatusCode::InvalidSchemaVersion => 412,
            DeploymentStatusCode::ConfigEmptyError => 417,
            DeploymentStatusCode::Failed => 500,
        }
    }
}

impl fmt::Display for DeploymentStatusCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.as_u16())
    }
}

/// The `lastDesiredStatus` object of the `$edgeAgent` reported properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDesiredStatus {
    pub code: DeploymentStatusCode,
    /// Omitted from the report when `None`, as Azure does for 200.
    pub description: Option<String>,
}

impl LastDesiredStatus {
    /// 200 without a description.
    pub fn ok() -> LastDesiredStatus {
        LastDesiredStatus {
            code: DeploymentStatusCode::Ok,
            description: None,
        }
    }

    /// The status for a refused deployment: its code and its message as the description.
    pub fn from_error(error: &DeploymentError) -> LastDesiredStatus {
        LastDesiredStatus {
            code: error.status_code(),
            description: Some(error.to_string()),
        }
    }
}

/// Which part of a manifest an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The whole `modulesContent` document.
    Manifest,
    /// The `$edgeAgent` desired properties.
    EdgeAgent,
    /// The `$edgeHub` desired properties.
    EdgeHub,
}

impl fmt::Display for Section {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Section::Manifest => "the deployment manifest",
            Section::EdgeAgent => "$edgeAgent",
            Section::EdgeHub => "$edgeHub",
        })
    }
}

/// What is wrong with one module of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleProblem {
    #[error("type {found:?} is not supported; use \"docker\" or \"process\"")]
    UnknownType { found: String },
    #[error("status {found:?} is not supported; use \"running\" or \"stopped\"")]
    UnknownStatus { found: String },
    #[error(
        "restartPolicy {found:?} is not supported; use \"never\", \"on-failure\", \"on-unhealthy\" or \"always\""
    )]
    UnknownRestartPolicy { found: String },
    #[error("imagePullPolicy {found:?} is not supported; use \"on-create\" or \"never\"")]
    UnknownImagePullPolicy { found: String },
    #[error("settings.image is required for a docker module")]
    MissingImage,
    #[error("settings.image: {0}")]
    InvalidImage(#[from] ImageReferenceError),
    #[error(transparent)]
    CreateOptions(#[from] CreateOptionsError),
    #[error("settings.digest must not be empty")]
    EmptyDigest,
    #[error("settings.path is required for a process module")]
    MissingPath,
    #[error("settings.{setting} must be an absolute path, found {found:?}")]
    RelativePath {
        setting: &'static str,
        found: String,
    },
    #[error(
        "settings.user must be a non-empty user name or id without whitespace, found {found:?}"
    )]
    InvalidUser { found: String },
    #[error("settings.{setting} must not contain a NUL character")]
    NulCharacter { setting: &'static str },
    #[error("settings.{setting} is only valid for {valid_for} modules")]
    SettingNotAllowed {
        setting: String,
        valid_for: &'static str,
    },
    #[error("env name {name:?} is not valid: {problem}")]
    InvalidEnvName {
        name: String,
        problem: EnvVarNameError,
    },
    #[error("env {name}: the value must be a string, number or boolean, found {found}")]
    InvalidEnvValue { name: String, found: &'static str },
    #[error("env {name}: the value must not contain a NUL character")]
    EnvValueNul { name: String },
    #[error("version must be a string or a number, found {found}")]
    InvalidVersion { found: &'static str },
}

/// Why a deployment (or part of one) was refused.
///
/// [`DeploymentError::status_code`] is the `lastDesiredStatus.code` to report and the `Display`
/// text is the description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    #[error("the deployment is empty: {section} has no desired properties")]
    Empty { section: Section },
    #[error("{section}: schemaVersion is missing")]
    MissingSchemaVersion { section: Section },
    #[error(
        "{section}: schemaVersion {found:?} is not supported; supported versions are {supported}"
    )]
    UnsupportedSchemaVersion {
        section: Section,
        found: String,
        supported: &'static str,
    },
    #[error("{section}: {}{message}", path_prefix(path))]
    Malformed {
        section: Section,
        /// The JSON path of the offending value; empty for the document itself.
        path: String,
        message: String,
    },
    #[error("{section}: {path}: {name:?} is not a valid module name: {problem}")]
    InvalidModuleName {
        section: Section,
        path: String,
        name: String,
        problem: ModuleNameError,
    },
    #[error("$edgeAgent: modules.{name}: {name:?} is reserved for a system module")]
    ReservedModuleName { name: String },
    #[error("$edgeAgent: {path}: {problem}")]
    InvalidModule {
        path: String,
        problem: ModuleProblem,
    },
    #[error("$edgeAgent: runtime.type {found:?} is not supported; use \"docker\" or \"process\"")]
    UnknownRuntimeType { found: String },
    #[error("$edgeHub: routes: {name:?} is not a valid route name: {problem}")]
    InvalidRouteName {
        name: String,
        problem: RouteNameError,
    },
    #[error("$edgeHub: routes.{name}: {problem}")]
    InvalidRoute { name: String, problem: RouteProblem },
    #[error(
        "$edgeHub: storeAndForwardConfiguration.timeToLiveSecs {found} is out of range 0..=2147483647"
    )]
    TimeToLiveOutOfRange { found: u64 },
    #[error("the deployment manifest has no {section} entry in modulesContent")]
    MissingSection { section: Section },
    #[error("the deployment manifest: modulesContent.{key}: {message}")]
    InvalidModuleTwin { key: String, message: String },
}

/// `path: ` for a non-empty JSON path, nothing for the document itself.
fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// The JSON path `serde_path_to_error` found, empty for the document itself.
pub(crate) fn json_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "?" || text == "." {
        String::new()
    } else {
        text
    }
}

impl DeploymentError {
    /// The `lastDesiredStatus.code` Azure's edgeAgent reports for this refusal: 417 for an empty
    /// deployment, 412 for a missing or unsupported schema version, 400 for everything else.
    pub fn status_code(&self) -> DeploymentStatusCode {
        match self {
            DeploymentError::Empty { .. } => DeploymentStatusCode::ConfigEmptyError,
            DeploymentError::MissingSchemaVersion { .. }
            | DeploymentError::UnsupportedSchemaVersion { .. } => {
                DeploymentStatusCode::InvalidSchemaVersion
            }
            _ => DeploymentStatusCode::ConfigFormatError,
        }
    }
}
