//! The encrypted scope cache: round trips through the file, refuses other keys and corruption by
//! starting empty, and keeps the file private.

mod support;

use std::os::unix::fs::PermissionsExt;

use edge_scope::{ScopeAuth, ScopeCache, ScopeIdentity};
use expect_test::{Expect, expect};
use iothub_types::Identity;
use support::{identity, key};

fn entry(text: &str, auth: ScopeAuth) -> ScopeIdentity {
    ScopeIdentity {
        identity: identity(text),
        generation_id: format!("gen-{text}"),
        enabled: true,
        auth,
        is_edge: false,
        parent_scopes: vec!["ms-azure-iot-edge://edge1-1".to_owned()],
        device_scope: None,
    }
}

fn sas(byte: u8) -> ScopeAuth {
    ScopeAuth::Sas {
        primary: key(byte),
        secondary: key(byte + 1),
    }
}

fn scope() -> Vec<ScopeIdentity> {
    vec![
        entry("sensor", sas(10)),
        entry(
            "camera",
            ScopeAuth::SelfSigned {
                primary_thumbprint: "AB".repeat(20),
                secondary_thumbprint: String::new(),
            },
        ),
        entry("ca-leaf", ScopeAuth::CertificateAuthority),
        ScopeIdentity {
            enabled: false,
            ..entry("quiet", ScopeAuth::None)
        },
        ScopeIdentity {
            is_edge: true,
            parent_scopes: Vec::new(),
            device_scope: Some("ms-azure-iot-edge://edge1-1".to_owned()),
            ..entry("edge1", sas(20))
        },
        entry("edge1/$edgeHub", sas(30)),
    ]
}

/// Every cached identity (Debug, so no keys) with the first key byte of SAS identities.
fn render(cache: &ScopeCache) -> String {
    let mut lines = vec![format!("{} identities", cache.len())];
    for identity in cache.identities() {
        let entry = cache.get(&identity).expect("listed identities are cached");
        let key_byte = match &entry.auth {
            ScopeAuth::Sas { primary, secondary } => {
                format!(
                    " keys {}/{}",
                    primary.as_bytes()[0],
                    secondary.as_bytes()[0]
                )
            }
            _ => String::new(),
        };
        lines.push(format!("{entry:?}{key_byte}"));
    }
    lines.join("\n")
}

fn check(actual: String, expected: Expect) {
    expected.assert_eq(&actual);
}

#[test]
fn the_scope_round_trips_through_the_encrypted_file() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("state/scope.bin");
    let cache = ScopeCache::open(&path, &key(1)).expect("open");
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.last_sync_ms(), None);
    let diff = cache.replace_all(scope()).expect("replace");
    assert_eq!(diff.added.len(), 6);
    assert!(diff.removed.is_empty() && diff.changed.is_empty());
    let synced = cache.last_sync_ms().expect("sync time");

    // The file holds no key or identity in the clear, and only the owner may read it.
    let bytes = std::fs::read(&path).expect("cache file");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("sensor") && !text.contains(&key(10).to_base64()));
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("directory"))
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("scope.bin")]);

    let reopened = ScopeCache::open(&path, &key(1)).expect("reopen");
    assert_eq!(render(&reopened), render(&cache));
    assert_eq!(reopened.last_sync_ms(), Some(synced));
    check(
        render(&reopened),
        expect![[r#"
            6 identities
            ScopeIdentity { identity: Identity { device: DeviceId("ca-leaf"), module: None }, generation_id: "gen-ca-leaf", enabled: true, auth: CertificateAuthority, is_edge: false, parent_scopes: ["ms-azure-iot-edge://edge1-1"], device_scope: None }
            ScopeIdentity { identity: Identity { device: DeviceId("camera"), module: None }, generation_id: "gen-camera", enabled: true, auth: SelfSigned { primary_thumbprint: "ABABABABABABABABABABABABABABABABABABABAB", secondary_thumbprint: "" }, is_edge: false, parent_scopes: ["ms-azure-iot-edge://edge1-1"], device_scope: None }
            ScopeIdentity { identity: Identity { device: DeviceId("edge1"), module: None }, generation_id: "gen-edge1", enabled: true, auth: Sas { .. }, is_edge: true, parent_scopes: [], device_scope: Some("ms-azure-iot-edge://edge1-1") } keys 20/21
            ScopeIdentity { identity: Identity { device: DeviceId("edge1"), module: Some(ModuleId("$edgeHub")) }, generation_id: "gen-edge1/$edgeHub", enabled: true, auth: Sas { .. }, is_edge: false, parent_scopes: ["ms-azure-iot-edge://edge1-1"], device_scope: None } keys 30/31
            ScopeIdentity { identity: Identity { device: DeviceId("quiet"), module: None }, generation_id: "gen-quiet", enabled: false, auth: None, is_edge: false, parent_scopes: ["ms-azure-iot-edge://edge1-1"], device_scope: None }
            ScopeIdentity { identity: Identity { device: DeviceId("sensor"), module: None }, generation_id: "gen-sensor", enabled: true, auth: Sas { .. }, is_edge: false, parent_scopes: ["ms-azure-iot-edge://edge1-1"], device_scope: None } keys 10/11"#]],
    );
}

#[test]
fn replace_reports_what_changed_and_upsert_adds_one() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("scope.bin");
    let cache = ScopeCache::open(&path, &key(1)).expect("open");
    cache.replace_all(scope()).expect("replace");
    let mut next = scope();
    next.retain(|entry| entry.identity != identity("camera"));
    next[0].auth = sas(40); // sensor's keys were regenerated
    next.push(entry("newcomer", sas(50)));
    let diff = cache.replace_all(next).expect("replace");
    check(
        format!("{diff:?}"),
        expect![[
            r#"ScopeDiff { added: [Identity { device: DeviceId("newcomer"), module: None }], removed: [Identity { device: DeviceId("camera"), module: None }], changed: [Identity { device: DeviceId("sensor"), module: None }] }"#
        ]],
    );

    // The runtime knows its modules' keys before any sync.
    cache
        .upsert(entry("edge1/filter", sas(60)))
        .expect("upsert");
    let clone = cache.clone();
    assert!(
        clone.get(&identity("edge1/filter")).is_some(),
        "clones share the map"
    );
    let reopened = ScopeCache::open(&path, &key(1)).expect("reopen");
    assert_eq!(render(&reopened), render(&cache));
    assert_eq!(reopened.len(), 7);
}

#[test]
fn another_key_or_a_damaged_file_gives_an_empty_cache() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("scope.bin");
    ScopeCache::open(&path, &key(1))
        .expect("open")
        .replace_all(scope())
        .expect("replace");
    let good = std::fs::read(&path).expect("file");

    let other_device = ScopeCache::open(&path, &key(2)).expect("open with another key");
    assert_eq!(other_device.len(), 0);
    assert_eq!(other_device.last_sync_ms(), None);

    let mut outcomes = Vec::new();
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("one bit flipped in the ciphertext", {
            let mut bytes = good.clone();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            bytes
        }),
        ("one bit flipped in the nonce", {
            let mut bytes = good.clone();
            bytes[10] ^= 1;
            bytes
        }),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("only the header", good[..8].to_vec()),
        ("empty", Vec::new()),
        ("plain text", b"{\"identities\": []}".to_vec()),
    ];
    for (name, bytes) in damages {
        std::fs::write(&path, bytes).expect("damage");
        let cache = ScopeCache::open(&path, &key(1)).expect("open a damaged file");
        outcomes.push(format!("{name}: {} identities", cache.len()));
    }
    check(
        outcomes.join("\n"),
        expect![[r#"
        one bit flipped in the ciphertext: 0 identities
        one bit flipped in the nonce: 0 identities
        truncated: 0 identities
        only the header: 0 identities
        empty: 0 identities
        plain text: 0 identities"#]],
    );

    // The next write replaces the damaged file with a good one.
    let cache = ScopeCache::open(&path, &key(1)).expect("open");
    cache.replace_all(scope()).expect("replace");
    assert_eq!(ScopeCache::open(&path, &key(1)).expect("reopen").len(), 6);
}

#[test]
fn an_unwritable_directory_is_an_error_but_memory_follows() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("scope.bin");
    let cache = ScopeCache::open(&path, &key(1)).expect("open");
    // A directory where the temporary file would go makes every write fail.
    std::fs::create_dir(
        directory
            .path()
            .join(format!(".scope.bin.{}.tmp", std::process::id())),
    )
    .expect("blocker");
    let error = cache.replace_all(scope()).expect_err("the write fails");
    assert!(
        matches!(error, edge_scope::ScopeError::Io { .. }),
        "{error}"
    );
    assert_eq!(
        cache.len(),
        6,
        "authentication follows the hub even when the file is stale"
    );
}

/// One step against the cache and the model.
#[derive(Debug, Clone)]
enum Step {
    /// A full sync with these identities (index into a small name pool, key byte).
    Replace(Vec<(usize, u8)>),
    /// One identity known ahead of a sync.
    Upsert(usize, u8),
    /// Close and open the cache file again.
    Reopen,
}

const NAMES: [&str; 5] = ["a", "b", "edge1/$edgeHub", "edge1/m", "c"];

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::collection::vec((0..NAMES.len(), 1..4u8), 0..5).prop_map(Step::Replace),
        (0..NAMES.len(), 1..4u8).prop_map(|(name, byte)| Step::Upsert(name, byte)),
        Just(Step::Reopen),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// The cache (memory and file) always equals a plain map that replace_all overwrites and
    /// upsert inserts into, and replace_all's diff is the difference of the map's keys.
    #[test]
    fn the_cache_behaves_like_a_map(steps in proptest::collection::vec(step(), 1..12)) {
        use std::collections::BTreeMap;
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("scope.bin");
        let mut cache = ScopeCache::open(&path, &key(9)).expect("open");
        let mut model: BTreeMap<Identity, u8> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Replace(entries) => {
                    let mut next = BTreeMap::new();
                    for (name, byte) in entries {
                        next.insert(identity(NAMES[name]), byte);
                    }
                    let diff = cache
                        .replace_all(next.iter().map(|(id, byte)| entry(&id.to_string(), sas(*byte))).collect())
                        .expect("replace");
                    let added: Vec<Identity> = next.keys().filter(|id| !model.contains_key(*id)).cloned().collect();
                    let removed: Vec<Identity> = model.keys().filter(|id| !next.contains_key(*id)).cloned().collect();
                    let changed: Vec<Identity> = next
                        .iter()
                        .filter(|(id, byte)| model.get(*id).is_some_and(|old| old != *byte))
                        .map(|(id, _)| id.clone())
                        .collect();
                    proptest::prop_assert_eq!(diff.added, added);
                    proptest::prop_assert_eq!(diff.removed, removed);
                    proptest::prop_assert_eq!(diff.changed, changed);
                    model = next;
                }
                Step::Upsert(name, byte) => {
                    cache.upsert(entry(NAMES[name], sas(byte))).expect("upsert");
                    model.insert(identity(NAMES[name]), byte);
                }
                Step::Reopen => cache = ScopeCache::open(&path, &key(9)).expect("reopen"),
            }
            let actual: BTreeMap<Identity, u8> = cache
                .identities()
                .into_iter()
                .map(|id| {
                    let ScopeAuth::Sas { primary, .. } = cache.get(&id).expect("cached").auth else {
                        panic!("only SAS identities here");
                    };
                    (id, primary.as_bytes()[0])
                })
                .collect();
            proptest::prop_assert_eq!(&actual, &model);
        }
    }
}
