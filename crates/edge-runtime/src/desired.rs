//! Following the `$edgeAgent` desired properties: whole twins and patches in, complete desired
//! documents out (pure), and the last applied deployment kept on disk for offline boots.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::files::write_private_file;

/// What to do after a desired-properties event.
#[derive(Debug, Clone, PartialEq)]
pub enum DesiredUpdate {
    /// A new complete desired document at this `$version`: validate and apply it.
    Changed {
        version: i64,
        desired: Map<String, Value>,
    },
    /// Nothing new (same or older version).
    Unchanged,
    /// A patch does not follow the known version: read the whole twin again.
    NeedFullTwin,
}

/// The agent's view of its desired properties.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredTracker {
    current: Option<(i64, Map<String, Value>)>,
}

impl DesiredTracker {
    /// Starts from a stored document (an offline boot), or from nothing.
    pub fn new(stored: Option<(i64, Map<String, Value>)>) -> DesiredTracker {
        DesiredTracker { current: stored }
    }

    /// The `$version` of the document in force.
    pub fn version(&self) -> Option<i64> {
        self.current.as_ref().map(|(version, _)| *version)
    }

    /// A whole twin read (`{"desired": {...}, "reported": {...}}`): the desired section wins over
    /// whatever was known, unless it is the very version already known.
    pub fn on_twin(&mut self, twin: &Value) -> DesiredUpdate {
        let Some(desired) = twin.get("desired").and_then(Value::as_object) else {
            return DesiredUpdate::Unchanged;
        };
        let version = desired.get("$version").and_then(Value::as_i64).unwrap_or(0);
        if let Some((known, document)) = &self.current
            && *known == version
            && document == desired
        {
            return DesiredUpdate::Unchanged;
        }
        self.current = Some((version, desired.clone()));
        DesiredUpdate::Changed {
            version,
            desired: desired.clone(),
        }
    }

    /// A desired-properties patch at `version`: merged (JSON merge patch) when it follows the
    /// known version directly, ignored when it is old, and a full read is asked for otherwise.
    pub fn on_patch(&mut self, version: i64, patch: &Value) -> DesiredUpdate {
        let Some((known, document)) = &mut self.current else {
            return DesiredUpdate::NeedFullTwin;
        };
        if version <= *known {
            return DesiredUpdate::Unchanged;
        }
        if version != *known + 1 {
            return DesiredUpdate::NeedFullTwin;
        }
        let Some(patch) = patch.as_object() else {
            return DesiredUpdate::NeedFullTwin;
        };
        merge_patch(document, patch);
        document.insert("$version".to_owned(), Value::from(version));
        *known = version;
        DesiredUpdate::Changed {
            version,
            desired: document.clone(),
        }
    }
}

pub use twin::json_merge_patch as merge_patch;

/// The last deployment the agent applied, as stored in `DATA_DIR/agent/deployment.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDeployment {
    /// The `$version` of the desired properties it came from.
    pub version: i64,
    /// The `$edgeAgent` desired properties.
    pub desired: Map<String, Value>,
}

impl StoredDeployment {
    /// Reads the stored deployment; `Ok(None)` when there is none yet.
    pub fn load(path: &Path) -> io::Result<Option<StoredDeployment>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a stored deployment: {error}", path.display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes it atomically, readable by the runtime's user only (module `env` may hold secrets).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_private_file(path, &bytes)
    }
}
