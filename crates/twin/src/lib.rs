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
//!
//! Typical use: parse a body ([`parse_json_object`] for MQTT reported patches,
//! [`ServiceTwinUpdate::parse`] for REST), check preconditions ([`Twin::check_if_match`],
//! [`Twin::check_section_version`]), apply it ([`Twin::apply_reported_patch`],
//! [`Twin::apply_service_patch`], [`Twin::apply_service_replace`], [`Twin::apply`]), persist
//! [`Twin::to_storage_json`], then fan out the returned [`TwinChange`]
//! ([`TwinChange::desired_notification_body`], [`TwinChange::change_event_body`]).
//!
//! Decisions where IoT Hub's behaviour is not documented (each is deliberate):
//! - A new twin has `version` 2, etag `AAAAAAAAAAE=` and both sections at `$version` 1 with a
//!   bare `$lastUpdated`, as Azure's published samples of freshly created twins show.
//! - Every applied write bumps `version` once, even an empty patch; a write touching tags and
//!   desired properties together bumps `desired.$version` once and the etag once.
//! - The device twin GET document omits `$metadata` (optional per the wire notes; SDKs ignore it).
//! - `PUT` (replace) leaves a section the body does not mention unchanged instead of emptying it,
//!   and gives every node of a replaced section fresh metadata.
//! - Keys may not be empty and may not contain `$` at any depth; `$metadata` and `$version` at the
//!   top of a service-side section are dropped so a fetched twin can be written back unchanged.
//! - Arrays are leaves for metadata, count as a nesting level for the depth limit, and `null`
//!   (which survives only inside arrays) counts 0 bytes in the size accounting.

mod error;
mod etag;
mod merge;
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
pub use merge::json_merge_patch;
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
