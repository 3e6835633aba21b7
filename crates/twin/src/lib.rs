//! Twin documents: tags, desired and reported sections, versions, metadata and merge-patch semantics (pure, no I/O).
//!
//! This crate owns the device and module twin as IoT Hub defines it: the [`Twin`] domain type,
//! JSON merge-patch application with `$version` counters and `$metadata` timestamps, IoT Hub's
//! validation rules (key charset and length, string length, integer range, depth 10, section
//! sizes 8 KB / 32 KB / 32 KB), `If-Match` evaluation, and the JSON shapes each party expects:
//! the device SDK's twin GET document, desired-property notifications, the service REST twin,
//! twin change events, and a storage form that round-trips exactly.
//!
//! It knows nothing of the registry, MQTT, HTTP, storage engines or clocks: registry fields
//! come in through [`TwinIdentity`], time through [`TwinTimestamp`] arguments.

mod error;
mod etag;
mod metadata;
mod service;
mod storage;
mod timestamp;
mod twin;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{JsonKind, TwinError, TwinSection};
pub use etag::{EtagMismatch, IfMatch, TwinEtag, check_if_match};
pub use metadata::MetadataNode;
pub use service::{
    AuthenticationType, ConnectionState, IdentityStatus, ServiceTwinUpdate, TwinIdentity,
};
pub use storage::{STORAGE_FORMAT, StorageError};
pub use timestamp::{TimestampParseError, TwinTimestamp};
pub use twin::{
    ChangeKind, PropertiesChange, PropertySection, SectionWrite, TagsChange, Twin, TwinChange,
    TwinWrite, parse_json_object,
};
pub use validate::{
    MAX_DEPTH, MAX_DESIRED_BYTES, MAX_INTEGER, MAX_KEY_BYTES, MAX_REPORTED_BYTES,
    MAX_STRING_VALUE_BYTES, MAX_TAGS_BYTES, MIN_INTEGER, section_size_bytes,
};
