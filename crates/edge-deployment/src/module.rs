//! One module of a deployment: its validated spec and configuration hash.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::canonical::canonical_json;
use crate::create_options::{assemble_create_options, chunk_create_options, json_type_name};
use crate::error::{DeploymentError, ModuleProblem};
use crate::image::ImageReference;
use crate::names::ModuleName;
use crate::wire::{EnvValueWire, ModuleSettingsWire, ModuleWire};

/// `startupOrder` when the manifest omits it: last.
pub const DEFAULT_STARTUP_ORDER: u32 = u32::MAX;

/// The version tag mixed into every configuration hash; bump it when the hashed document changes.
const CONFIG_HASH_SCHEMA: &str = "outpost-module-config/1";

/// `status`: whether the module should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DesiredStatus {
    Running,
    Stopped,
}

impl DesiredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredStatus::Running => "running",
            DesiredStatus::Stopped => "stopped",
        }
    }

    fn parse(text: &str) -> Option<DesiredStatus> {
        [DesiredStatus::Running, DesiredStatus::Stopped]
            .into_iter()
            .find(|candidate| candidate.as_str().eq_ignore_ascii_case(text))
    }
}

/// `restartPolicy`: what to do when a running module exits or turns unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestartPolicy {
    /// Never restart.
    Never,
    /// Restart after a non-zero exit.
    OnFailure,
    /// Restart after a non-zero exit or when the health check reports unhealthy.
    OnUnhealthy,
    /// Restart after any exit, and when unhealthy.
    Always,
}

impl RestartPolicy {
    /// Azure's default when `restartPolicy` is omitted.
    pub const DEFAULT: RestartPolicy = RestartPolicy::OnUnhealthy;

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::OnUnhealthy => "on-unhealthy",
            RestartPolicy::Always => "always",
        }
    }

    fn parse(text: &str) -> Option<RestartPolicy> {
        [
            RestartPolicy::Never,
            RestartPolicy::OnFailure,
            RestartPolicy::OnUnhealthy,
            RestartPolicy::Always,
        ]
        .into_iter()
        .find(|candidate| candidate.as_str().eq_ignore_ascii_case(text))
    }
}

/// `imagePullPolicy`: whether creating a Docker module pulls its image first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImagePullPolicy {
    /// Pull when the module is created (Azure's default).
    OnCreate,
    /// Never pull; the image must already be present.
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::OnCreate => "on-create",
            ImagePullPolicy::Never => "never",
        }
    }

    fn parse(text: &str) -> Option<ImagePullPolicy> {
        [ImagePullPolicy::OnCreate, ImagePullPolicy::Never]
            .into_iter()
            .find(|candidate| candidate.as_str().eq_ignore_ascii_case(text))
    }
}

/// Why a string is not a usable environment variable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvVarNameError {
    #[error("it is empty")]
    Empty,
    #[error("it contains '='")]
    ContainsEquals,
    #[error("it contains a NUL character")]
    ContainsNul,
}

/// An environment variable name: non-empty, without `=` or NUL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvVarName(String);

impl EnvVarName {
    pub fn new(candidate: &str) -> Result<EnvVarName, EnvVarNameError> {
        if candidate.is_empty() {
            return Err(EnvVarNameError::Empty);
        }
        if candidate.contains('=') {
            return Err(EnvVarNameError::ContainsEquals);
        }
        if candidate.contains('\0') {
            return Err(EnvVarNameError::ContainsNul);
        }
        Ok(EnvVarName(candidate.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvVarName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The settings of a `"type": "docker"` module.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    pub image: ImageReference,
    /// The parsed Docker `ContainerCreate` body; empty when the manifest gives none.
    pub create_options: Map<String, Value>,
    /// `settings.digest`, an optional image digest pin.
    pub digest: Option<String>,
}

/// The settings of a `"type": "process"` module (our extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSettings {
    /// The absolute path of the executable.
    pub path: String,
    /// The arguments, without the executable itself.
    pub args: Vec<String>,
    /// The absolute working directory; the runtime's module directory when `None`.
    pub working_dir: Option<String>,
    /// The user name or numeric id to run as; the runtime's own user when `None`.
    pub user: Option<String>,
}

/// What kind of module this is, with the settings of that kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleKind {
    Docker(DockerSettings),
    Process(ProcessSettings),
}

impl ModuleKind {
    /// The `type` string: `docker` or `process`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ModuleKind::Docker(_) => "docker",
            ModuleKind::Process(_) => "process",
        }
    }
}

/// One validated module of a deployment.
///
/// Every field holds a validated value, so any `ModuleSpec` that can be built is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSpec {
    pub name: ModuleName,
    /// `version`, a user string; any change recreates the module.
    pub version: Option<String>,
    pub status: DesiredStatus,
    pub restart_policy: RestartPolicy,
    /// Lower numbers start first; ties have no order between them.
    pub startup_order: u32,
    pub image_pull_policy: ImagePullPolicy,
    pub kind: ModuleKind,
    pub env: BTreeMap<EnvVarName, String>,
}

/// The SHA-256 of a module's canonical configuration document (see [`ModuleSpec::config_hash`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigHash([u8; 32]);

impl ConfigHash {
    pub fn from_bytes(bytes: [u8; 32]) -> ConfigHash {
        ConfigHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads the 64 lowercase or uppercase hex digits that `Display` writes.
    pub fn from_hex(text: &str) -> Option<ConfigHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut hash = [0_u8; 32];
        for (index, pair) in bytes.chunks(2).enumerate() {
            let high = hex_digit_value(pair[0])?;
            let low = hex_digit_value(pair[1])?;
            hash[index] = (high << 4) | low;
        }
        Some(ConfigHash(hash))
    }

    /// The first 12 hex digits, for logs and listings.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

fn hex_digit_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ConfigHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(formatter, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConfigHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ConfigHash({})", self.short())
    }
}

impl ModuleSpec {
    /// The `type` string: `docker` or `process`.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// The document the configuration hash is computed over: the module type, `version`, the
    /// kind's settings (image, digest and parsed createOptions, or path, args, workingDir and
    /// user) and `env`. `status`, `restartPolicy`, `startupOrder` and `imagePullPolicy` are left
    /// out: changing them never needs a new container or process.
    pub fn config_document(&self) -> Value {
        let env: Map<String, Value> = self
            .env
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
            .collect();
        let mut document = json!({
            "schema": CONFIG_HASH_SCHEMA,
            "type": self.type_name(),
            "version": self.version,
            "env": env,
        });
        let settings = match &self.kind {
            ModuleKind::Docker(docker) => json!({
                "image": docker.image.as_str(),
                "digest": docker.digest,
                "createOptions": Value::Object(docker.create_options.clone()),
            }),
            ModuleKind::Process(process) => json!({
                "path": process.path,
                "args": process.args,
                "workingDir": process.working_dir,
                "user": process.user,
            }),
        };
        document["settings"] = settings;
        document
    }

    /// A deterministic hash of [`ModuleSpec::config_document`] in canonical JSON form. Two specs
    /// with the same hash run the same container or process; a different hash means the module
    /// must be recreated. Key order, whitespace and createOptions chunking do not change it.
    pub fn config_hash(&self) -> ConfigHash {
        let digest = Sha256::digest(canonical_json(&self.config_document()).as_bytes());
        let mut bytes = [0_u8; 32];
        bytes.copy_from_slice(&digest);
        ConfigHash(bytes)
    }

    /// The createOptions of a Docker module as compact JSON with sorted keys; `None` for
    /// process modules.
    pub fn create_options_json(&self) -> Option<String> {
        match &self.kind {
            ModuleKind::Docker(docker) => Some(canonical_json(&Value::Object(
                docker.create_options.clone(),
            ))),
            ModuleKind::Process(_) => None,
        }
    }

    /// The module as manifest JSON, with every default written out and createOptions chunked.
    pub fn to_wire(&self) -> ModuleWire {
        let mut settings = ModuleSettingsWire::default();
        match &self.kind {
            ModuleKind::Docker(docker) => {
                settings.image = Some(docker.image.as_str().to_owned());
                settings.digest = docker.digest.clone();
                let options_text = canonical_json(&Value::Object(docker.create_options.clone()));
                for (key, chunk) in chunk_create_options(&options_text) {
                    settings.other.insert(key, Value::String(chunk));
                }
            }
            ModuleKind::Process(process) => {
                settings.path = Some(process.path.clone());
                settings.args = Some(process.args.clone());
                settings.working_dir = process.working_dir.clone();
                settings.user = process.user.clone();
            }
        }
        ModuleWire {
            version: self.version.clone().map(Value::String),
            module_type: self.type_name().to_owned(),
            status: Some(self.status.as_str().to_owned()),
            restart_policy: Some(self.restart_policy.as_str().to_owned()),
            startup_order: Some(self.startup_order),
            image_pull_policy: Some(self.image_pull_policy.as_str().to_owned()),
            settings,
            env: self
                .env
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        Some(EnvValueWire {
                            value: Value::String(value.clone()),
                        }),
                    )
                })
                .collect(),
        }
    }

    /// Validates one module read from the manifest; `path` (`modules.x`, `systemModules.edgeHub`)
    /// prefixes error messages.
    pub(crate) fn from_wire(
        name: ModuleName,
        wire: &ModuleWire,
        path: &str,
    ) -> Result<ModuleSpec, DeploymentError> {
        let invalid = |problem: ModuleProblem| DeploymentError::InvalidModule {
            path: path.to_owned(),
            problem,
        };
        let version = match &wire.version {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            Some(other) => {
                return Err(invalid(ModuleProblem::InvalidVersion {
                    found: json_type_name(other),
                }));
            }
        };
        let status = match &wire.status {
            None => DesiredStatus::Running,
            Some(text) => DesiredStatus::parse(text).ok_or_else(|| {
                invalid(ModuleProblem::UnknownStatus {
                    found: text.clone(),
                })
            })?,
        };
        let restart_policy = match &wire.restart_policy {
            None => RestartPolicy::DEFAULT,
            Some(text) => RestartPolicy::parse(text).ok_or_else(|| {
                invalid(ModuleProblem::UnknownRestartPolicy {
                    found: text.clone(),
                })
            })?,
        };
        let image_pull_policy = match &wire.image_pull_policy {
            None => ImagePullPolicy::OnCreate,
            Some(text) => ImagePullPolicy::parse(text).ok_or_else(|| {
                invalid(ModuleProblem::UnknownImagePullPolicy {
                    found: text.clone(),
                })
            })?,
        };
        let kind = if wire.module_type.eq_ignore_ascii_case("docker") {
            ModuleKind::Docker(docker_settings(&wire.settings).map_err(invalid)?)
        } else if wire.module_type.eq_ignore_ascii_case("process") {
            ModuleKind::Process(process_settings(&wire.settings).map_err(invalid)?)
        } else {
            return Err(invalid(ModuleProblem::UnknownType {
                found: wire.module_type.clone(),
            }));
        };
        let mut env = BTreeMap::new();
        for (variable, entry) in &wire.env {
            let Some(entry) = entry else { continue };
            let variable_name = EnvVarName::new(variable).map_err(|problem| {
                invalid(ModuleProblem::InvalidEnvName {
                    name: variable.clone(),
                    problem,
                })
            })?;
            let value = match &entry.value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => {
                    return Err(invalid(ModuleProblem::InvalidEnvValue {
                        name: variable.clone(),
                        found: json_type_name(other),
                    }));
                }
            };
            if value.contains('\0') {
                return Err(invalid(ModuleProblem::EnvValueNul {
                    name: variable.clone(),
                }));
            }
            env.insert(variable_name, value);
        }
        Ok(ModuleSpec {
            name,
            version,
            status,
            restart_policy,
            startup_order: wire.startup_order.unwrap_or(DEFAULT_STARTUP_ORDER),
            image_pull_policy,
            kind,
            env,
        })
    }
}

fn docker_settings(settings: &ModuleSettingsWire) -> Result<DockerSettings, ModuleProblem> {
    let process_only = [
        ("path", settings.path.is_some()),
        ("args", settings.args.is_some()),
        ("workingDir", settings.working_dir.is_some()),
        ("user", settings.user.is_some()),
    ];
    if let Some((setting, _)) = process_only.iter().find(|(_, present)| *present) {
        return Err(ModuleProblem::SettingNotAllowed {
            setting: (*setting).to_owned(),
            valid_for: "process",
        });
    }
    let image = match &settings.image {
        None => return Err(ModuleProblem::MissingImage),
        Some(image) => ImageReference::parse(image)?,
    };
    let create_options = assemble_create_options(&settings.other)?;
    let digest = match &settings.digest {
        None => None,
        Some(digest) if digest.trim().is_empty() => return Err(ModuleProblem::EmptyDigest),
        Some(digest) => Some(digest.trim().to_owned()),
    };
    Ok(DockerSettings {
        image,
        create_options,
        digest,
    })
}

fn process_settings(settings: &ModuleSettingsWire) -> Result<ProcessSettings, ModuleProblem> {
    let docker_only = settings
        .image
        .as_ref()
        .map(|_| "image".to_owned())
        .or_else(|| settings.digest.as_ref().map(|_| "digest".to_owned()))
        .or_else(|| {
            settings
                .other
                .keys()
                .find(|key| key.starts_with("createOptions"))
                .cloned()
        });
    if let Some(setting) = docker_only {
        return Err(ModuleProblem::SettingNotAllowed {
            setting,
            valid_for: "docker",
        });
    }
    let path = settings.path.clone().ok_or(ModuleProblem::MissingPath)?;
    check_absolute("path", &path)?;
    let args = settings.args.clone().unwrap_or_default();
    if args.iter().any(|argument| argument.contains('\0')) {
        return Err(ModuleProblem::NulCharacter { setting: "args" });
    }
    if let Some(working_dir) = &settings.working_dir {
        check_absolute("workingDir", working_dir)?;
    }
    if let Some(user) = &settings.user {
        let valid = !user.is_empty()
            && !user
                .chars()
                .any(|character| character.is_whitespace() || character.is_control());
        if !valid {
            return Err(ModuleProblem::InvalidUser {
                found: user.clone(),
            });
        }
    }
    Ok(ProcessSettings {
        path,
        args,
        working_dir: settings.working_dir.clone(),
        user: settings.user.clone(),
    })
}

fn check_absolute(setting: &'static str, path: &str) -> Result<(), ModuleProblem> {
    if path.contains('\0') {
        return Err(ModuleProblem::NulCharacter { setting });
    }
    if !path.starts_with('/') {
        return Err(ModuleProblem::RelativePath {
            setting,
            found: path.to_owned(),
        });
    }
    Ok(())
}
