use std::os::unix::fs::PermissionsExt;

use edge_runtime::{DesiredTracker, DesiredUpdate, StoredDeployment, merge_patch};
use expect_test::{Expect, expect};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// One step fed to the tracker.
enum Step {
    Twin(Value),
    Patch(i64, Value),
}

/// Feeds `steps` to a tracker and renders what each one asked for.
fn check(stored: Option<(i64, Value)>, steps: Vec<Step>, expected: Expect) {
    let stored = stored.map(|(version, value)| {
        (
            version,
            value
                .as_object()
                .cloned()
                .expect("stored document is an object"),
        )
    });
    let mut tracker = DesiredTracker::new(stored);
    let mut lines = Vec::new();
    for step in steps {
        let (label, update) = match step {
            Step::Twin(twin) => ("twin".to_owned(), tracker.on_twin(&twin)),
            Step::Patch(version, patch) => (
                format!("patch v{version}"),
                tracker.on_patch(version, &patch),
            ),
        };
        let outcome = match update {
            DesiredUpdate::Changed { version, desired } => {
                format!("changed v{version} {}", Value::Object(desired))
            }
            DesiredUpdate::Unchanged => "unchanged".to_owned(),
            DesiredUpdate::NeedFullTwin => "need full twin".to_owned(),
        };
        lines.push(format!("{label} -> {outcome}"));
    }
    expected.assert_eq(&lines.join("\n"));
}

#[test]
fn twin_then_patches_in_order() {
    check(
        None,
        vec![
            Step::Patch(2, json!({"a": 1})),
            Step::Twin(
                json!({"desired": {"a": 1, "m": {"x": 1, "y": 2}, "$version": 2}, "reported": {}}),
            ),
            Step::Twin(json!({"desired": {"a": 1, "m": {"x": 1, "y": 2}, "$version": 2}})),
            Step::Patch(3, json!({"m": {"x": null, "z": 3}, "$version": 3})),
            Step::Patch(3, json!({"a": 5})),
            Step::Patch(5, json!({"a": 6})),
            Step::Patch(4, json!({"m": null, "a": "s"})),
        ],
        expect![[r#"
            patch v2 -> need full twin
            twin -> changed v2 {"$version":2,"a":1,"m":{"x":1,"y":2}}
            twin -> unchanged
            patch v3 -> changed v3 {"$version":3,"a":1,"m":{"y":2,"z":3}}
            patch v3 -> unchanged
            patch v5 -> need full twin
            patch v4 -> changed v4 {"$version":4,"a":"s"}"#]],
    );
}

#[test]
fn a_stored_deployment_is_replaced_by_the_hubs_twin() {
    check(
        Some((7, json!({"a": 1, "$version": 7}))),
        vec![
            Step::Twin(json!({"desired": {"a": 1, "$version": 7}})),
            Step::Patch(8, json!({"b": 2})),
            Step::Twin(json!({"desired": {"c": 3, "$version": 2}})),
        ],
        expect![[r#"
            twin -> unchanged
            patch v8 -> changed v8 {"$version":8,"a":1,"b":2}
            twin -> changed v2 {"$version":2,"c":3}"#]],
    );
}

#[test]
fn stored_deployment_round_trips_privately() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("agent/deployment.json");
    assert_eq!(StoredDeployment::load(&path).expect("no file yet"), None);
    let stored = StoredDeployment {
        version: 4,
        desired: json!({"schemaVersion": "1.1", "modules": {}})
            .as_object()
            .cloned()
            .expect("object"),
    };
    stored.save(&path).expect("save");
    stored.save(&path).expect("save again over the first");
    assert_eq!(StoredDeployment::load(&path).expect("load"), Some(stored));
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
        .expect("list")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("deployment.json")]);
    std::fs::write(&path, "not json").expect("corrupt");
    assert!(StoredDeployment::load(&path).is_err());
}

/// JSON values without `null` (a merge patch cannot express a stored null).
fn json_without_null() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-5_i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn object_without_null() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-d]", json_without_null(), 0..5)
        .prop_map(|map| map.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The agent's reported patch (edge-agent) applied with our merge (this crate) turns the
    /// previous document into the next one: what the hub ends up with is what the agent built.
    #[test]
    fn merging_the_reported_patch_gives_the_new_document(
        previous in object_without_null(),
        next in object_without_null(),
    ) {
        let mut merged = previous.clone();
        if let Some(Value::Object(patch)) =
            edge_agent::reported_patch(&Value::Object(previous), &Value::Object(next.clone()))
        {
            merge_patch(&mut merged, &patch);
        }
        prop_assert_eq!(merged, next);
    }
}
