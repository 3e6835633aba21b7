//! The twin domain type and the write operations IoT Hub offers on it.

use serde_json::{Map, Value};

use crate::error::{JsonKind, TwinError, TwinSection};
use crate::etag::{TwinEtag, check_if_match};
use crate::metadata::{MetadataNode, UpdateStamp, merge_patch, metadata_for_patch};
use crate::timestamp::TwinTimestamp;
use crate::validate::{check_section_size, section_size_bytes, validate_section_write};

/// A device or module twin: tags plus desired and reported properties with their versions and
/// metadata, the twin `version` and the etag counter. Registry fields (status, connection
/// state, `deviceEtag`, ...) are not part of it; the caller passes them to
/// [`Twin::to_service_json`].
///
/// Invariants: every section is a JSON object that passes IoT Hub's key and value rules and its
/// size limit; the metadata trees have exactly the shape of their content; versions only grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Twin {
    pub(crate) version: u64,
    pub(crate) etag_counter: u64,
    pub(crate) tags: Map<String, Value>,
    pub(crate) desired: PropertySection,
    pub(crate) reported: PropertySection,
}

/// Desired or reported properties: content, `$version` and `$metadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertySection {
    pub(crate) content: Map<String, Value>,
    pub(crate) version: u64,
    pub(crate) metadata: MetadataNode,
}

/// How one section is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionWrite {
    /// JSON merge patch: `null` deletes, objects merge, everything else replaces.
    Patch(Map<String, Value>),
    /// The whole section is replaced by this document (`null`s in it are dropped).
    Replace(Map<String, Value>),
}

/// One atomic write to a twin: every present section is written, or none is. An applied write
/// bumps the twin `version` by exactly one, the `$version` of each written property section by
/// exactly one, and the etag counter by one when tags or desired properties are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TwinWrite {
    pub tags: Option<SectionWrite>,
    pub desired: Option<SectionWrite>,
    pub reported: Option<SectionWrite>,
}

/// What an applied [`TwinWrite`] changed: the input for desired-property notifications and for
/// twin change events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinChange {
    /// The twin `version` after the write.
    pub twin_version: u64,
    /// The twin etag after the write.
    pub etag: TwinEtag,
    /// The tags write, if any.
    pub tags: Option<TagsChange>,
    /// The desired-properties write, if any.
    pub desired: Option<PropertiesChange>,
    /// The reported-properties write, if any.
    pub reported: Option<PropertiesChange>,
    /// For writes that replaced a section: the whole twin after the write, as IoT Hub puts it
    /// into a `replaceTwin` change event (without device and module id).
    replaced_twin: Option<Map<String, Value>>,
}

/// A tags write as applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagsChange {
    pub kind: ChangeKind,
    /// The patch as given, or the new tags document after a replace.
    pub document: Map<String, Value>,
}

/// A desired or reported write as applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertiesChange {
    pub kind: ChangeKind,
    /// The patch as given (its `null`s included), or the new section content after a replace.
    pub document: Map<String, Value>,
    /// The metadata of `document`: the root plus every non-`null` value, stamped with this write.
    pub metadata: MetadataNode,
    /// The section `$version` after the write.
    pub version: u64,
}

/// Whether a section was merge-patched or replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Patch,
    Replace,
}

/// Parses a request body that must be a JSON object, such as a reported-properties patch from
/// MQTT. `what` names the body in error messages.
pub fn parse_json_object(body: &[u8], what: &str) -> Result<Map<String, Value>, TwinError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| TwinError::MalformedJson {
        what: what.to_owned(),
        reason: error.to_string(),
    })?;
    json_object(value, what)
}

/// Unwraps a JSON object or reports what was found instead.
pub(crate) fn json_object(value: Value, what: &str) -> Result<Map<String, Value>, TwinError> {
    match value {
        Value::Object(object) => Ok(object),
        other => Err(TwinError::UnexpectedType {
            what: what.to_owned(),
            expected: JsonKind::Object,
            found: JsonKind::of(&other),
        }),
    }
}

// === impl Twin ===

impl Twin {
    /// A twin as IoT Hub creates it along with its identity: empty sections at `$version` 1,
    /// twin `version` 2 and etag `AAAAAAAAAAE=` (counter 1), which is what Azure shows for a
    /// freshly created device, with both metadata roots stamped `created_at`.
    pub fn new(created_at: TwinTimestamp) -> Twin {
        let stamp = UpdateStamp {
            at: created_at,
            version: None,
        };
        Twin {
            version: 2,
            etag_counter: 1,
            tags: Map::new(),
            desired: PropertySection::empty(stamp),
            reported: PropertySection::empty(stamp),
        }
    }

    /// The twin `version`, bumped by every applied write.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The twin etag, changed by every write to tags or desired properties.
    pub fn etag(&self) -> TwinEtag {
        TwinEtag::from_counter(self.etag_counter)
    }

    /// The tags document.
    pub fn tags(&self) -> &Map<String, Value> {
        &self.tags
    }

    /// The desired properties.
    pub fn desired(&self) -> &PropertySection {
        &self.desired
    }

    /// The reported properties.
    pub fn reported(&self) -> &PropertySection {
        &self.reported
    }

    /// Checks an `If-Match` header against the twin etag (HTTP 412 on mismatch).
    pub fn check_if_match(&self, if_match: Option<&str>) -> Result<(), TwinError> {
        Ok(check_if_match(if_match, &self.etag().to_string())?)
    }

    /// Checks a caller's expected `$version` of a property section, as SDKs that send
    /// `$version` with a reported patch expect (412 on mismatch).
    pub fn check_section_version(
        &self,
        section: TwinSection,
        expected: u64,
    ) -> Result<(), TwinError> {
        let current = match section {
            TwinSection::Tags => self.version,
            TwinSection::Desired => self.desired.version,
            TwinSection::Reported => self.reported.version,
        };
        if current == expected {
            Ok(())
        } else {
            Err(TwinError::VersionMismatch {
                section,
                expected,
                current,
            })
        }
    }

    /// Applies a reported-properties patch from a device (MQTT `PATCH properties/reported`).
    pub fn apply_reported_patch(
        &mut self,
        patch: Map<String, Value>,
        now: TwinTimestamp,
    ) -> Result<TwinChange, TwinError> {
        self.apply(
            TwinWrite {
                reported: Some(SectionWrite::Patch(patch)),
                ..TwinWrite::default()
            },
            now,
        )
    }

    /// Applies a desired-properties patch from the back end (jobs, configurations).
    pub fn apply_desired_patch(
        &mut self,
        patch: Map<String, Value>,
        now: TwinTimestamp,
    ) -> Result<TwinChange, TwinError> {
        self.apply(
            TwinWrite {
                desired: Some(SectionWrite::Patch(patch)),
                ..TwinWrite::default()
            },
            now,
        )
    }

    /// Replaces the whole desired document (edge deployments, `applyConfigurationContent`).
    pub fn replace_desired(
        &mut self,
        document: Map<String, Value>,
        now: TwinTimestamp,
    ) -> Result<TwinChange, TwinError> {
        self.apply(
            TwinWrite {
                desired: Some(SectionWrite::Replace(document)),
                ..TwinWrite::default()
            },
            now,
        )
    }

    /// Applies one atomic write. All sections are validated and sized before anything changes,
    /// so on error the twin is untouched.
    pub fn apply(&mut self, write: TwinWrite, now: TwinTimestamp) -> Result<TwinChange, TwinError> {
        let sections = [
            (TwinSection::Tags, &write.tags),
            (TwinSection::Desired, &write.desired),
            (TwinSection::Reported, &write.reported),
        ];
        for (section, section_write) in sections {
            if let Some(section_write) = section_write {
                validate_section_write(section, section_write.document())?;
            }
        }

        let new_tags = match &write.tags {
            Some(section_write) => {
                // Tags carry no metadata; the merge still needs a node to keep in step.
                let mut scratch_metadata = MetadataNode::leaf(UpdateStamp {
                    at: now,
                    version: None,
                });
                let mut tags = match section_write {
                    SectionWrite::Patch(_) => self.tags.clone(),
                    SectionWrite::Replace(_) => Map::new(),
                };
                merge_patch(
                    &mut tags,
                    &mut scratch_metadata,
                    section_write.document(),
                    UpdateStamp {
                        at: now,
                        version: None,
                    },
                );
                check_section_size(
                    TwinSection::Tags,
                    section_size_bytes(&self.tags),
                    section_size_bytes(&tags),
                )?;
                Some(tags)
            }
            None => None,
        };
        let new_desired = match &write.desired {
            Some(section_write) => {
                let stamp = UpdateStamp {
                    at: now,
                    version: Some(self.desired.version.saturating_add(1)),
                };
                let section = self.desired.written(section_write, stamp);
                check_section_size(
                    TwinSection::Desired,
                    section_size_bytes(&self.desired.content),
                    section_size_bytes(&section.content),
                )?;
                Some((section, stamp))
            }
            None => None,
        };
        let new_reported = match &write.reported {
            Some(section_write) => {
                let stamp = UpdateStamp {
                    at: now,
                    version: None,
                };
                let section = self.reported.written(section_write, stamp);
                check_section_size(
                    TwinSection::Reported,
                    section_size_bytes(&self.reported.content),
                    section_size_bytes(&section.content),
                )?;
                Some((section, stamp))
            }
            None => None,
        };

        // Everything is valid: commit.
        self.version = self.version.saturating_add(1);
        if new_tags.is_some() || new_desired.is_some() {
            self.etag_counter = self.etag_counter.saturating_add(1);
        }
        if let Some(tags) = new_tags {
            self.tags = tags;
        }
        let mut desired_stamp = None;
        if let Some((section, stamp)) = new_desired {
            self.desired = section;
            desired_stamp = Some(stamp);
        }
        let mut reported_stamp = None;
        if let Some((section, stamp)) = new_reported {
            self.reported = section;
            reported_stamp = Some(stamp);
        }

        let any_replace = [&write.tags, &write.desired, &write.reported]
            .into_iter()
            .any(|section_write| matches!(section_write, Some(SectionWrite::Replace(_))));
        let replaced_twin = any_replace.then(|| self.replaced_twin_snapshot());
        Ok(TwinChange {
            twin_version: self.version,
            etag: self.etag(),
            tags: write.tags.map(|section_write| {
                let kind = section_write.kind();
                let document = match section_write {
                    SectionWrite::Patch(patch) => patch,
                    SectionWrite::Replace(_) => self.tags.clone(),
                };
                TagsChange { kind, document }
            }),
            desired: write
                .desired
                .zip(desired_stamp)
                .map(|(section_write, stamp)| {
                    PropertiesChange::new(section_write, &self.desired, stamp)
                }),
            reported: write
                .reported
                .zip(reported_stamp)
                .map(|(section_write, stamp)| {
                    PropertiesChange::new(section_write, &self.reported, stamp)
                }),
            replaced_twin,
        })
    }

    /// The document the device SDKs expect in answer to a twin GET
    /// (`$iothub/twin/res/200/?$rid=...`): `{"desired":{...,"$version":N},"reported":{...,"$version":M}}`.
    ///
    /// `$metadata` is left out: IoT Hub's documented responses omit it, the SDKs ignore it, and it
    /// roughly doubles the payload of every reconnect.
    pub fn device_twin_document(&self) -> Value {
        let mut document = Map::new();
        document.insert(
            "desired".to_owned(),
            self.desired.to_json_without_metadata(),
        );
        document.insert(
            "reported".to_owned(),
            self.reported.to_json_without_metadata(),
        );
        Value::Object(document)
    }

    /// `{"desired": {...}, "reported": {...}}` with metadata and versions, as the service shapes
    /// show under `properties`.
    pub fn properties_json(&self) -> Value {
        let mut properties = Map::new();
        properties.insert("desired".to_owned(), self.desired.to_json());
        properties.insert("reported".to_owned(), self.reported.to_json());
        Value::Object(properties)
    }

    fn replaced_twin_snapshot(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("etag".to_owned(), Value::String(self.etag().to_string()));
        body.insert("version".to_owned(), Value::from(self.version));
        body.insert("tags".to_owned(), Value::Object(self.tags.clone()));
        body.insert("properties".to_owned(), self.properties_json());
        body
    }
}

// === impl PropertySection ===

impl PropertySection {
    fn empty(stamp: UpdateStamp) -> PropertySection {
        PropertySection {
            content: Map::new(),
            version: 1,
            metadata: MetadataNode::leaf(stamp),
        }
    }

    /// The properties, without system keys.
    pub fn content(&self) -> &Map<String, Value> {
        &self.content
    }

    /// The section `$version`.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The section `$metadata` tree.
    pub fn metadata(&self) -> &MetadataNode {
        &self.metadata
    }

    /// The content plus `$metadata` and `$version`, as in the service twin and in storage.
    pub fn to_json(&self) -> Value {
        let mut object = self.content.clone();
        object.insert("$metadata".to_owned(), self.metadata.to_json());
        object.insert("$version".to_owned(), Value::from(self.version));
        Value::Object(object)
    }

    /// The content plus `$version`, as in the device twin GET response.
    pub fn to_json_without_metadata(&self) -> Value {
        let mut object = self.content.clone();
        object.insert("$version".to_owned(), Value::from(self.version));
        Value::Object(object)
    }

    /// This section after `write`, stamped with `stamp`; the version comes from the stamp for
    /// desired properties and is bumped by one for reported properties.
    fn written(&self, write: &SectionWrite, stamp: UpdateStamp) -> PropertySection {
        let (mut content, mut metadata) = match write {
            SectionWrite::Patch(_) => (self.content.clone(), self.metadata.clone()),
            SectionWrite::Replace(_) => (Map::new(), MetadataNode::leaf(stamp)),
        };
        merge_patch(&mut content, &mut metadata, write.document(), stamp);
        PropertySection {
            content,
            version: self.version.saturating_add(1),
            metadata,
        }
    }
}

// === impl SectionWrite ===

impl SectionWrite {
    /// The patch or replacement document.
    pub fn document(&self) -> &Map<String, Value> {
        match self {
            SectionWrite::Patch(document) | SectionWrite::Replace(document) => document,
        }
    }

    /// Whether this is a patch or a replace.
    pub fn kind(&self) -> ChangeKind {
        match self {
            SectionWrite::Patch(_) => ChangeKind::Patch,
            SectionWrite::Replace(_) => ChangeKind::Replace,
        }
    }
}

// === impl PropertiesChange ===

impl PropertiesChange {
    fn new(
        write: SectionWrite,
        section_after: &PropertySection,
        stamp: UpdateStamp,
    ) -> PropertiesChange {
        match write {
            SectionWrite::Patch(patch) => PropertiesChange {
                kind: ChangeKind::Patch,
                metadata: metadata_for_patch(&patch, stamp),
                document: patch,
                version: section_after.version,
            },
            SectionWrite::Replace(_) => PropertiesChange {
                kind: ChangeKind::Replace,
                document: section_after.content.clone(),
                metadata: section_after.metadata.clone(),
                version: section_after.version,
            },
        }
    }

    /// The document plus `$metadata` and `$version`, as in twin change events.
    pub fn to_json(&self) -> Value {
        let mut object = self.document.clone();
        object.insert("$metadata".to_owned(), self.metadata.to_json());
        object.insert("$version".to_owned(), Value::from(self.version));
        Value::Object(object)
    }
}

// === impl TwinChange ===

impl TwinChange {
    /// `replaceTwin` when any section was replaced, else `updateTwin`: the `opType`
    /// application property of twin change events.
    pub fn op_type(&self) -> &'static str {
        if self.replaced_twin.is_some() {
            "replaceTwin"
        } else {
            "updateTwin"
        }
    }

    /// The body of the desired-property notification to a connected device
    /// (`$iothub/twin/PATCH/properties/desired/?$version=N`): the applied patch, or the whole
    /// desired document after a replace, plus `"$version": N`. `None` when desired properties
    /// were not written.
    pub fn desired_notification_body(&self) -> Option<Value> {
        self.desired.as_ref().map(|desired| {
            let mut body = desired.document.clone();
            body.insert("$version".to_owned(), Value::from(desired.version));
            Value::Object(body)
        })
    }

    /// The body of the twin change event IoT Hub routes as `twinChangeEvents`. After an update
    /// it holds the twin `version` and the written tags and properties with their metadata; after
    /// a replace it holds the device and module id, the etag, the version and the whole twin.
    pub fn change_event_body(&self, device_id: &str, module_id: Option<&str>) -> Value {
        if let Some(replaced) = &self.replaced_twin {
            let mut body = replaced.clone();
            body.insert("deviceId".to_owned(), Value::String(device_id.to_owned()));
            if let Some(module_id) = module_id {
                body.insert("moduleId".to_owned(), Value::String(module_id.to_owned()));
            }
            return Value::Object(body);
        }
        let mut body = Map::new();
        body.insert("version".to_owned(), Value::from(self.twin_version));
        if let Some(tags) = &self.tags {
            body.insert("tags".to_owned(), Value::Object(tags.document.clone()));
        }
        let mut properties = Map::new();
        if let Some(desired) = &self.desired {
            properties.insert("desired".to_owned(), desired.to_json());
        }
        if let Some(reported) = &self.reported {
            properties.insert("reported".to_owned(), reported.to_json());
        }
        if !properties.is_empty() {
            body.insert("properties".to_owned(), Value::Object(properties));
        }
        Value::Object(body)
    }
}
