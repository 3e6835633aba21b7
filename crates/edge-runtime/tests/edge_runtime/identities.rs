use std::collections::BTreeSet;

use edge_runtime::{IdentityCache, ModuleIdentityRecord, plan_identity_sync};
use edge_workload::ModuleKeys;
use expect_test::{Expect, expect};
use iothub_types::ModuleId;
use proptest::prelude::*;
use serde_json::json;

fn record(module: &str, managed_by: Option<&str>) -> ModuleIdentityRecord {
    ModuleIdentityRecord {
        module_id: ModuleId::new(module).expect("module id"),
        generation_id: format!("gen-{module}"),
        managed_by: managed_by.map(str::to_owned),
        primary_key: Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
        secondary_key: None,
    }
}

fn wanted(modules: &[&str]) -> BTreeSet<ModuleId> {
    modules
        .iter()
        .map(|module| ModuleId::new(module).expect("module id"))
        .collect()
}

fn check(
    existing: &[ModuleIdentityRecord],
    wanted: &BTreeSet<ModuleId>,
    delete_unwanted: bool,
    expected: Expect,
) {
    let plan = plan_identity_sync(existing, wanted, delete_unwanted);
    let names = |ids: &[ModuleId]| {
        ids.iter()
            .map(ModuleId::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    expected.assert_eq(&format!(
        "create [{}] delete [{}]",
        names(&plan.create),
        names(&plan.delete)
    ));
}

#[test]
fn creates_the_missing_and_deletes_only_its_own_leftovers() {
    let existing = [
        record("$edgeAgent", None),
        record("$edgeHub", None),
        record("old", Some("IotEdge")),
        record("other-tool", Some("someone-else")),
        record("manual", None),
        record("kept", Some("iotEdge")),
    ];
    let wanted = wanted(&["$edgeAgent", "$edgeHub", "kept", "new"]);
    check(
        &existing,
        &wanted,
        true,
        expect!["create [new] delete [old]"],
    );
    check(&existing, &wanted, false, expect!["create [new] delete []"]);
    check(
        &[],
        &wanted,
        true,
        expect!["create [$edgeAgent $edgeHub kept new] delete []"],
    );
}

#[test]
fn registry_json_is_read_with_keys_and_the_cache_persists_privately() {
    let value = json!({
        "moduleId": "sensor", "deviceId": "edge-1", "generationId": "638", "managedBy": "IotEdge",
        "authentication": {"type": "sas", "symmetricKey": {
            "primaryKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "secondaryKey": ""}}
    });
    let parsed = ModuleIdentityRecord::from_registry_json(&value).expect("module");
    assert_eq!(parsed.generation_id, "638");
    assert!(parsed.is_managed_by_edge());
    assert!(parsed.primary_key().is_some());
    assert_eq!(parsed.secondary_key, None, "empty keys are no keys");
    assert!(
        !format!("{parsed:?}").contains("MDEy"),
        "keys stay out of debug output"
    );
    assert_eq!(
        ModuleIdentityRecord::from_registry_json(&json!({"deviceId": "x"})),
        None
    );

    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("agent/identities.json");
    let cache = IdentityCache::load(file.clone()).expect("empty cache");
    cache
        .replace_all(vec![parsed.clone(), record("$edgeAgent", None)])
        .expect("write");
    let reloaded = IdentityCache::load(file.clone()).expect("reload");
    assert_eq!(reloaded.all(), cache.all());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let sensor = ModuleId::new("sensor").expect("id");
    runtime.block_on(async {
        assert!(reloaded.module_key(&sensor, "638").await.is_ok());
        assert!(
            reloaded.module_key(&sensor, "").await.is_ok(),
            "no generation given"
        );
        let wrong = reloaded
            .module_key(&sensor, "1")
            .await
            .expect_err("old generation");
        assert_eq!(
            wrong.to_string(),
            "generation 1 is not the current generation of module sensor"
        );
        let unknown = ModuleId::new("ghost").expect("id");
        assert!(reloaded.module_key(&unknown, "1").await.is_err());
    });
}

fn module_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$edgeAgent".to_owned()),
        Just("$edgeHub".to_owned()),
        "[a-e]".prop_map(|name| name),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Against a plain model: create what is wanted and missing; delete (when allowed) what is
    /// unwanted, created by the runtime and not a system module; after the plan, everything
    /// wanted exists and nothing foreign was touched.
    #[test]
    fn plan_matches_the_model(
        existing in prop::collection::btree_map(module_name(), any::<Option<bool>>(), 0..6),
        wanted_names in prop::collection::btree_set(module_name(), 0..6),
        delete_unwanted in any::<bool>(),
    ) {
        let records: Vec<ModuleIdentityRecord> = existing
            .iter()
            .map(|(name, managed)| record(name, managed.map(|ours| if ours { "IotEdge" } else { "other" })))
            .collect();
        let wanted: BTreeSet<ModuleId> = wanted_names
            .iter()
            .map(|name| ModuleId::new(name).expect("id"))
            .collect();
        let plan = plan_identity_sync(&records, &wanted, delete_unwanted);

        let expected_create: Vec<&String> =
            wanted_names.iter().filter(|name| !existing.contains_key(*name)).collect();
        let created: Vec<String> = plan.create.iter().map(ModuleId::to_string).collect();
        prop_assert_eq!(created.iter().collect::<Vec<_>>(), expected_create);

        let expected_delete: Vec<&String> = existing
            .iter()
            .filter(|(name, managed)| {
                delete_unwanted
                    && !wanted_names.contains(*name)
                    && !name.starts_with('$')
                    && **managed == Some(true)
            })
            .map(|(name, _)| name)
            .collect();
        let deleted: Vec<String> = plan.delete.iter().map(ModuleId::to_string).collect();
        prop_assert_eq!(deleted.iter().collect::<Vec<_>>(), expected_delete);
    }
}
