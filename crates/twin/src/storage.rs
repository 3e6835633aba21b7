//! The storage form of a twin: one JSON text per twin, which round-trips exactly.
//!
//! The layout mirrors the service twin so that stores with JSON functions (SQLite JSON1,
//! PostgreSQL JSONB) can index it: `{"storageFormat":1,"version":N,"etagCounter":E,"tags":{...},
//! "properties":{"desired":{...,"$metadata":{...},"$version":N},"reported":{...}}}`. Content keys
//! can never start with `$`, so the system keys cannot collide with properties.

use serde_json::{Map, Value};

use crate::error::TwinSection;
use crate::metadata::MetadataNode;
use crate::twin::{PropertySection, Twin};
use crate::validate::validate_section_write;

/// The version of the storage layout written by [`Twin::to_storage_json`].
pub const STORAGE_FORMAT: u64 = 1;

/// A stored twin could not be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid stored twin: {reason}")]
pub struct StorageError {
    /// What was wrong, naming the offending field.
    pub reason: String,
}

// === impl Twin (storage) ===

impl Twin {
    /// The storage form as compact JSON text.
    pub fn to_storage_json(&self) -> String {
        self.to_storage_value().to_string()
    }

    /// The storage form as a JSON value.
    pub fn to_storage_value(&self) -> Value {
        let mut stored = Map::new();
        stored.insert("storageFormat".to_owned(), Value::from(STORAGE_FORMAT));
        stored.insert("version".to_owned(), Value::from(self.version));
        stored.insert("etagCounter".to_owned(), Value::from(self.etag_counter));
        stored.insert("tags".to_owned(), Value::Object(self.tags.clone()));
        stored.insert("properties".to_owned(), self.properties_json());
        Value::Object(stored)
    }

    /// Reads a twin written by [`Twin::to_storage_json`], checking every invariant again.
    pub fn from_storage_json(text: &str) -> Result<Twin, StorageError> {
        let value: Value =
            serde_json::from_str(text).map_err(|error| invalid(format!("not json: {error}")))?;
        Twin::from_storage_value(value)
    }

    /// Reads a twin from its storage form as a JSON value.
    pub fn from_storage_value(value: Value) -> Result<Twin, StorageError> {
        let Value::Object(mut stored) = value else {
            return Err(invalid("the top level is not an object".to_owned()));
        };
        let format = take_u64(&mut stored, "storageFormat")?;
        if format != STORAGE_FORMAT {
            return Err(invalid(format!("unsupported storageFormat {format}")));
        }
        let version = take_u64(&mut stored, "version")?;
        let etag_counter = take_u64(&mut stored, "etagCounter")?;
        let tags = take_object(&mut stored, "tags")?;
        validate_section_write(TwinSection::Tags, &tags)
            .map_err(|error| invalid(error.to_string()))?;
        let mut properties = take_object(&mut stored, "properties")?;
        let desired = read_section(&mut properties, TwinSection::Desired)?;
        let reported = read_section(&mut properties, TwinSection::Reported)?;
        reject_leftovers(&properties, "properties")?;
        reject_leftovers(&stored, "the top level")?;
        Ok(Twin {
            version,
            etag_counter,
            tags,
            desired,
            reported,
        })
    }
}

fn read_section(
    properties: &mut Map<String, Value>,
    section: TwinSection,
) -> Result<PropertySection, StorageError> {
    let name = match section {
        TwinSection::Desired => "desired",
        _ => "reported",
    };
    let mut content = take_object(properties, name)?;
    let version = take_u64(&mut content, "$version")
        .map_err(|error| invalid(format!("{}: {}", section.path(), error.reason)))?;
    let metadata_json = content
        .remove("$metadata")
        .ok_or_else(|| invalid(format!("{section} has no $metadata")))?;
    let metadata = MetadataNode::from_json(&metadata_json, &format!("{section}.$metadata"))
        .map_err(invalid)?;
    validate_section_write(section, &content).map_err(|error| invalid(error.to_string()))?;
    let content_value = Value::Object(content);
    if !metadata.describes(&content_value) {
        return Err(invalid(format!(
            "{section}.$metadata does not match the shape of {section}"
        )));
    }
    let Value::Object(content) = content_value else {
        unreachable!("constructed as an object just above")
    };
    Ok(PropertySection {
        content,
        version,
        metadata,
    })
}

fn take_u64(object: &mut Map<String, Value>, key: &str) -> Result<u64, StorageError> {
    object
        .remove(key)
        .and_then(|value| value.as_u64())
        .ok_or_else(|| invalid(format!("{key} is missing or not an unsigned integer")))
}

fn take_object(
    object: &mut Map<String, Value>,
    key: &str,
) -> Result<Map<String, Value>, StorageError> {
    match object.remove(key) {
        Some(Value::Object(inner)) => Ok(inner),
        _ => Err(invalid(format!("{key} is missing or not an object"))),
    }
}

fn reject_leftovers(object: &Map<String, Value>, place: &str) -> Result<(), StorageError> {
    match object.keys().next() {
        Some(key) => Err(invalid(format!("unknown field {key:?} in {place}"))),
        None => Ok(()),
    }
}

fn invalid(reason: String) -> StorageError {
    StorageError { reason }
}
