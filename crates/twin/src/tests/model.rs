//! Property tests: random sequences of writes against a model that is RFC 7386 merge patch on
//! plain `serde_json::Value`s, with no metadata and no validation.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use super::time;
use crate::{MAX_INTEGER, MIN_INTEGER, MetadataNode, SectionWrite, Twin, TwinTimestamp, TwinWrite};

/// The model: three documents and four counters.
#[derive(Clone, Debug)]
struct Model {
    tags: Value,
    desired: Value,
    reported: Value,
    twin_version: u64,
    desired_version: u64,
    reported_version: u64,
    etag_counter: u64,
}

/// One generated operation.
#[derive(Clone, Debug)]
enum Operation {
    /// A write that is valid by construction and must succeed.
    Valid(TwinWrite),
    /// A valid write with one rule-breaking entry added; it must fail and change nothing.
    Invalid(TwinWrite),
}

/// RFC 7386 `MergePatch(Target, Patch)`, transcribed literally.
fn merge_patch(target: Value, patch: &Value) -> Value {
    let Value::Object(patch_object) = patch else {
        return patch.clone();
    };
    let mut target_object = match target {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    for (name, value) in patch_object {
        if value.is_null() {
            target_object.remove(name);
        } else {
            let current = target_object.remove(name).unwrap_or(Value::Null);
            target_object.insert(name.clone(), merge_patch(current, value));
        }
    }
    Value::Object(target_object)
}

fn write_model_section(section: &mut Value, write: &SectionWrite) {
    let patch = Value::Object(write.document().clone());
    *section = match write {
        SectionWrite::Patch(_) => merge_patch(std::mem::take(section), &patch),
        SectionWrite::Replace(_) => merge_patch(Value::Object(Map::new()), &patch),
    };
}

impl Model {
    fn new() -> Model {
        let empty = Value::Object(Map::new());
        Model {
            tags: empty.clone(),
            desired: empty.clone(),
            reported: empty,
            twin_version: 2,
            desired_version: 1,
            reported_version: 1,
            etag_counter: 1,
        }
    }

    fn apply(&mut self, write: &TwinWrite) {
        self.twin_version += 1;
        if let Some(tags) = &write.tags {
            write_model_section(&mut self.tags, tags);
        }
        if let Some(desired) = &write.desired {
            write_model_section(&mut self.desired, desired);
            self.desired_version += 1;
        }
        if let Some(reported) = &write.reported {
            write_model_section(&mut self.reported, reported);
            self.reported_version += 1;
        }
        if write.tags.is_some() || write.desired.is_some() {
            self.etag_counter += 1;
        }
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c"), Just("é-x")].prop_map(str::to_owned)
}

fn primitive() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(Value::from),
        prop_oneof![Just(MIN_INTEGER), Just(MAX_INTEGER)].prop_map(Value::from),
        (-1.0e6f64..1.0e6)
            .prop_map(|float| Number::from_f64(float).map_or(Value::Null, Value::Number)),
        "[a-z ]{0,4}".prop_map(Value::String),
    ]
}

/// A value that may appear in a patch: `null` (delete), primitives, arrays (which may hold
/// `null`s and objects) and nested objects, at most four levels deep.
fn patch_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![1 => Just(Value::Null), 4 => primitive()];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            3 => prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn patch() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), patch_value(), 0..4)
        .prop_map(|entries| entries.into_iter().collect())
}

fn section_write() -> impl Strategy<Value = SectionWrite> {
    prop_oneof![4 => patch().prop_map(SectionWrite::Patch), 1 => patch().prop_map(SectionWrite::Replace)]
}

fn twin_write() -> impl Strategy<Value = TwinWrite> {
    (
        prop::option::weighted(0.3, section_write()),
        prop::option::weighted(0.5, section_write()),
        prop::option::weighted(0.5, section_write()),
    )
        .prop_map(|(tags, desired, reported)| TwinWrite {
            tags,
            desired,
            reported,
        })
}

/// Entries that break one rule each.
fn invalid_entry() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        Just(("a.b".to_owned(), Value::from(1))),
        Just(("$version".to_owned(), Value::from(1))),
        Just(("a b".to_owned(), Value::from(1))),
        Just((String::new(), Value::from(1))),
        Just(("big".to_owned(), Value::from(MAX_INTEGER + 1))),
        Just(("long".to_owned(), Value::String("x".repeat(4097)))),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        5 => twin_write().prop_map(Operation::Valid),
        1 => (twin_write(), invalid_entry(), 0..3usize).prop_map(|(mut write, (bad_key, bad_value), section)| {
            let slot = match section {
                0 => &mut write.tags,
                1 => &mut write.desired,
                _ => &mut write.reported,
            };
            let mut document = slot.take().map(|existing| existing.document().clone()).unwrap_or_default();
            document.insert(bad_key, bad_value);
            *slot = Some(SectionWrite::Patch(document));
            Operation::Invalid(write)
        }),
    ]
}

/// Every node at least as recent as its children, and, in desired properties, carrying a
/// `$lastUpdatedVersion` no newer than the section.
fn check_metadata_tree(node: &MetadataNode, section_version: Option<u64>) {
    if let Some(section_version) = section_version {
        assert!(
            node.last_updated_version()
                .is_none_or(|version| version <= section_version)
        );
    } else {
        assert_eq!(node.last_updated_version(), None);
    }
    for (_, child) in node.children() {
        assert!(
            child.last_updated() <= node.last_updated(),
            "a parent is older than its child"
        );
        check_metadata_tree(child, section_version);
    }
}

/// Every node the write touched (the root and every non-`null` value of the patch, or every
/// node after a replace) is stamped with `now`.
fn check_written_nodes_stamped(
    node: &MetadataNode,
    patch: &Map<String, Value>,
    now: TwinTimestamp,
    replace: bool,
) {
    assert_eq!(node.last_updated(), now);
    if replace {
        for (_, child) in node.children() {
            check_written_nodes_stamped(child, &Map::new(), now, true);
        }
        return;
    }
    for (key, value) in patch {
        match value {
            Value::Null => assert!(
                node.child(key).is_none(),
                "deleted key {key} kept its metadata"
            ),
            Value::Object(inner) => check_written_nodes_stamped(
                node.child(key).expect("written object has metadata"),
                inner,
                now,
                false,
            ),
            _ => assert_eq!(
                node.child(key)
                    .expect("written leaf has metadata")
                    .last_updated(),
                now
            ),
        }
    }
}

fn check_section_stamps(node: &MetadataNode, write: &Option<SectionWrite>, now: TwinTimestamp) {
    if let Some(write) = write {
        check_written_nodes_stamped(
            node,
            write.document(),
            now,
            matches!(write, SectionWrite::Replace(_)),
        );
    }
}

fn check_agreement(twin: &Twin, model: &Model) {
    assert_eq!(Value::Object(twin.tags().clone()), model.tags);
    assert_eq!(
        Value::Object(twin.desired().content().clone()),
        model.desired
    );
    assert_eq!(
        Value::Object(twin.reported().content().clone()),
        model.reported
    );
    assert_eq!(twin.version(), model.twin_version);
    assert_eq!(twin.desired().version(), model.desired_version);
    assert_eq!(twin.reported().version(), model.reported_version);
    assert_eq!(twin.etag().counter(), model.etag_counter);

    // `$metadata` covers exactly the keys present, at every level.
    assert!(twin.desired().metadata().describes(&model.desired));
    assert!(twin.reported().metadata().describes(&model.reported));
    check_metadata_tree(twin.desired().metadata(), Some(twin.desired().version()));
    check_metadata_tree(twin.reported().metadata(), None);

    // Storage round-trips exactly, as a value and as text.
    let stored = twin.to_storage_json();
    let restored = Twin::from_storage_json(&stored).expect("stored twin reads back");
    assert_eq!(&restored, twin);
    assert_eq!(restored.to_storage_json(), stored);

    // The device GET document is the content plus `$version`.
    let device = twin.device_twin_document();
    let mut desired = device["desired"]
        .as_object()
        .expect("desired object")
        .clone();
    assert_eq!(
        desired.remove("$version"),
        Some(Value::from(model.desired_version))
    );
    assert_eq!(Value::Object(desired), model.desired);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn twin_agrees_with_plain_merge_model(operations in prop::collection::vec(operation(), 1..10)) {
        let mut twin = Twin::new(time(0));
        let mut model = Model::new();
        check_agreement(&twin, &model);
        for (index, operation) in operations.into_iter().enumerate() {
            let now = time(index + 1);
            match operation {
                Operation::Valid(write) => {
                    let change = twin.apply(write.clone(), now).expect("generated writes are valid");
                    model.apply(&write);
                    check_agreement(&twin, &model);
                    check_section_stamps(twin.desired().metadata(), &write.desired, now);
                    check_section_stamps(twin.reported().metadata(), &write.reported, now);
                    prop_assert_eq!(change.twin_version, twin.version());
                    prop_assert_eq!(change.etag, twin.etag());
                    match (&write.desired, change.desired_notification_body()) {
                        (None, None) => {}
                        (Some(_), Some(body)) => {
                            prop_assert_eq!(&body["$version"], &Value::from(twin.desired().version()));
                        }
                        (written, notification) => {
                            prop_assert!(false, "desired write {:?} but notification {:?}", written, notification);
                        }
                    }
                }
                Operation::Invalid(write) => {
                    let before = twin.clone();
                    prop_assert!(twin.apply(write, now).is_err());
                    prop_assert_eq!(&twin, &before);
                }
            }
        }
    }

    #[test]
    fn storage_form_of_any_valid_twin_round_trips(writes in prop::collection::vec(twin_write(), 0..6)) {
        let mut twin = Twin::new(time(0));
        for (index, write) in writes.into_iter().enumerate() {
            twin.apply(write, time(index + 1)).expect("generated writes are valid");
        }
        let stored = twin.to_storage_value();
        let restored = Twin::from_storage_value(stored.clone()).expect("reads back");
        prop_assert_eq!(restored.to_storage_value(), stored);
        prop_assert_eq!(restored, twin);
    }
}

/// Any JSON value at all: arbitrary keys (dots, `$`, spaces, control characters, long text),
/// integers of any size and nesting beyond the depth limit.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|float| Number::from_f64(float).map_or(Value::Null, Value::Number)),
        ".{0,8}".prop_map(Value::String),
        (4090usize..4100).prop_map(|length| Value::String("x".repeat(length))),
    ];
    let key = prop_oneof![4 => key(), 1 => ".{0,4}", 1 => (1020usize..1030).prop_map(|length| "k".repeat(length))];
    leaf.prop_recursive(14, 64, 3, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..3)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a client sends, a write either succeeds and keeps every invariant, or fails
    /// and leaves the twin exactly as it was. Nothing panics.
    #[test]
    fn arbitrary_writes_keep_invariants(values in prop::collection::vec(arbitrary_json(), 1..5)) {
        let mut twin = Twin::new(time(0));
        for (index, value) in values.into_iter().enumerate() {
            let before = twin.clone();
            let body = value.to_string();
            let outcome = match index % 3 {
                0 => crate::parse_json_object(body.as_bytes(), "reported patch")
                    .and_then(|patch| twin.apply_reported_patch(patch, time(index + 1))),
                1 => crate::ServiceTwinUpdate::parse(body.as_bytes())
                    .and_then(|update| twin.apply_service_patch(update, time(index + 1))),
                _ => crate::ServiceTwinUpdate::from_json(serde_json::json!({"tags": value, "properties": {"desired": value}}))
                    .and_then(|update| twin.apply_service_replace(update, time(index + 1))),
            };
            match outcome {
                Ok(_) => {
                    prop_assert_eq!(twin.version(), before.version() + 1);
                    let desired = Value::Object(twin.desired().content().clone());
                    let reported = Value::Object(twin.reported().content().clone());
                    prop_assert!(twin.desired().metadata().describes(&desired));
                    prop_assert!(twin.reported().metadata().describes(&reported));
                    let restored = Twin::from_storage_json(&twin.to_storage_json());
                    prop_assert_eq!(restored.as_ref(), Ok(&twin));
                }
                Err(_) => prop_assert_eq!(&twin, &before),
            }
        }
    }

    /// Arbitrary bytes never panic the body parsers.
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = crate::parse_json_object(&body, "patch");
        let _ = crate::ServiceTwinUpdate::parse(&body);
        let _ = Twin::from_storage_json(&String::from_utf8_lossy(&body));
    }

    /// A quoted or bare etag always satisfies `If-Match` for its own twin, and never for
    /// another counter.
    #[test]
    fn etag_matches_only_itself(counter in any::<u64>(), other in any::<u64>()) {
        let etag = crate::TwinEtag::from_counter(counter).to_string();
        let other_etag = crate::TwinEtag::from_counter(other).to_string();
        let quoted = format!("\"{etag}\"");
        prop_assert!(crate::check_if_match(Some(&quoted), &etag).is_ok());
        prop_assert!(crate::check_if_match(Some(&etag), &etag).is_ok());
        prop_assert_eq!(crate::check_if_match(Some(&other_etag), &etag).is_ok(), counter == other);
    }
}
