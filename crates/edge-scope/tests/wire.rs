//! Parsing the hub's `devicesAndModulesInDeviceScope` answer into scope identities.

use edge_scope::{ScopeAuth, parse_scope_page};
use expect_test::{Expect, expect};

/// Parses `body` and renders every identity (through `Debug`, which must not show keys), the
/// key lengths, the skipped entries and the continuation link.
fn check(body: &str, expected: Expect) {
    let rendered = match parse_scope_page(body.as_bytes()) {
        Ok(page) => {
            let mut lines = Vec::new();
            for identity in &page.identities {
                lines.push(format!("{identity:?}"));
                if let ScopeAuth::Sas { primary, secondary } = &identity.auth {
                    lines.push(format!(
                        "  keys: {} and {} bytes",
                        primary.as_bytes().len(),
                        secondary.as_bytes().len()
                    ));
                }
            }
            for reason in &page.skipped {
                lines.push(format!("skipped: {reason}"));
            }
            lines.push(format!("next: {:?}", page.continuation_link));
            lines.join("\n")
        }
        Err(error) => format!("error: {error}"),
    };
    expected.assert_eq(&rendered);
}

const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

#[test]
fn devices_and_modules_of_every_authentication_type() {
    let body = format!(
        r#"{{
        "devices": [
            {{"deviceId": "edge1", "generationId": "g1", "etag": "MQ==", "status": "enabled",
              "authentication": {{"symmetricKey": {{"primaryKey": "{KEY_A}", "secondaryKey": "{KEY_B}"}},
                                 "x509Thumbprint": {{"primaryThumbprint": null, "secondaryThumbprint": null}}, "type": "sas"}},
              "capabilities": {{"iotEdge": true}}, "deviceScope": "ms-azure-iot-edge://edge1-1", "parentScopes": []}},
            {{"deviceId": "camera", "generationId": "g2", "status": "disabled",
              "authentication": {{"symmetricKey": {{"primaryKey": null, "secondaryKey": null}},
                                 "x509Thumbprint": {{"primaryThumbprint": "ab12", "secondaryThumbprint": null}}, "type": "selfSigned"}},
              "capabilities": {{"iotEdge": false}}, "deviceScope": null, "parentScopes": ["ms-azure-iot-edge://edge1-1"]}},
            {{"deviceId": "ca-leaf", "generationId": "g3", "status": "enabled",
              "authentication": {{"type": "certificateAuthority"}}, "capabilities": {{"iotEdge": false}},
              "parentScopes": ["ms-azure-iot-edge://edge1-1"]}},
            {{"deviceId": "quiet", "generationId": "g4", "status": "enabled", "authentication": {{"type": "none"}}}}
        ],
        "modules": [
            {{"moduleId": "$edgeHub", "deviceId": "edge1", "generationId": "g5", "managedBy": null,
              "authentication": {{"symmetricKey": {{"primaryKey": "{KEY_B}", "secondaryKey": "{KEY_A}"}}, "type": "sas"}}}}
        ],
        "continuationLink": "/devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope?deviceCount=4&continuationToken=cXVpZXQ&api-version=2018-08-30-preview"
    }}"#
    );
    check(
        &body,
        expect![[r#"
            ScopeIdentity { identity: Identity { device: DeviceId("edge1"), module: None }, generation_id: "g1", enabled: true, auth: Sas { .. }, is_edge: true, parent_scopes: [], device_scope: Some("ms-azure-iot-edge://edge1-1") }
              keys: 32 and 32 bytes
            ScopeIdentity { identity: Identity { device: DeviceId("camera"), module: None }, generation_id: "g2", enabled: false, auth: SelfSigned { primary_thumbprint: "AB12", secondary_thumbprint: "" }, is_edge: false, parent_scopes: ["ms-azure-iot-edge://edge1-1"], device_scope: None }
            ScopeIdentity { identity: Identity { device: DeviceId("ca-leaf"), module: None }, generation_id: "g3", enabled: true, auth: CertificateAuthority, is_edge: false, parent_scopes: ["ms-azure-iot-edge://edge1-1"], device_scope: None }
            ScopeIdentity { identity: Identity { device: DeviceId("quiet"), module: None }, generation_id: "g4", enabled: true, auth: None, is_edge: false, parent_scopes: [], device_scope: None }
            ScopeIdentity { identity: Identity { device: DeviceId("edge1"), module: Some(ModuleId("$edgeHub")) }, generation_id: "g5", enabled: true, auth: Sas { .. }, is_edge: false, parent_scopes: [], device_scope: None }
              keys: 32 and 32 bytes
            next: Some("/devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope?deviceCount=4&continuationToken=cXVpZXQ&api-version=2018-08-30-preview")"#]],
    );
}

#[test]
fn malformed_entries_are_skipped_and_malformed_pages_refused() {
    let body = format!(
        r#"{{"devices": [
            {{"generationId": "g"}},
            {{"deviceId": "bad id with spaces", "status": "enabled", "authentication": {{"type": "none"}}}},
            {{"deviceId": "nokey", "status": "enabled", "authentication": {{"type": "sas", "symmetricKey": {{"primaryKey": "{KEY_A}"}}}}}},
            {{"deviceId": "notbase64", "status": "enabled", "authentication": {{"type": "sas", "symmetricKey": {{"primaryKey": "%%%", "secondaryKey": "{KEY_A}"}}}}}},
            {{"deviceId": "odd", "status": "enabled", "authentication": {{"type": "magic"}}}},
            {{"deviceId": "nostatus", "authentication": {{"type": "none"}}}}
        ],
        "modules": [{{"deviceId": "edge1", "authentication": {{"type": "none"}}}}],
        "continuationLink": null}}"#
    );
    check(
        &body,
        expect![[r#"
        skipped: an entry without deviceId
        skipped: invalid deviceId "bad id with spaces": device id contains the character ' ' at byte 3, which IoT Hub does not allow
        skipped: nokey: sas authentication without secondaryKey
        skipped: notbase64: primaryKey is not a base64 key
        skipped: odd: unknown authentication type "magic"
        skipped: nostatus: status None is not enabled/disabled
        skipped: a module of edge1 without moduleId
        next: None"#]],
    );
    check(
        r#"{"devices": {}, "modules": []}"#,
        expect!["error: the hub's device scope answer is invalid: devices is not an array"],
    );
    check(
        r#"[]"#,
        expect!["error: the hub's device scope answer is invalid: not a JSON object"],
    );
    check(
        r#"{"devices": null, "continuationLink": 5}"#,
        expect![
            "error: the hub's device scope answer is invalid: continuationLink is not a string"
        ],
    );
    check(r#"{}"#, expect!["next: None"]);
    check(
        "not json",
        expect![
            "error: the hub's device scope answer is invalid: not JSON: expected ident at line 1 column 2"
        ],
    );
}
