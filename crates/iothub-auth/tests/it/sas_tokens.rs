//! SAS token parsing, verification and scope checks, through one `check` helper each.

use expect_test::{Expect, expect};
use iothub_auth::{HostName, ResourceScope, SasToken, SasTokenStyle, SymmetricKey};

/// The reference test key, base64 of `0123456789abcdef0123456789abcdef`.
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// A moment before every token below expires.
const NOW: u64 = 1_699_999_000;

/// Parses `text`, verifies it with the reference key at [`NOW`], and snapshots what came out.
fn check(text: &str, expected: Expect) {
    let rendered = match SasToken::parse(text) {
        Err(error) => format!("parse error: {error}"),
        Ok(token) => {
            let key = SymmetricKey::from_base64(KEY).unwrap();
            let verified = match token.verify(&key, NOW) {
                Ok(()) => "ok".to_owned(),
                Err(error) => format!("error: {error}"),
            };
            format!(
                "scope: {:?}\nsr: {}\nse: {}\nskn: {:?}\nprinted: {}\nverify: {verified}",
                token.scope(),
                token.resource_encoded(),
                token.expiry_unix_secs(),
                token.key_name().map(|name| name.as_str()),
                token,
            )
        }
    };
    expected.assert_eq(&rendered);
}

#[test]
fn device_sdk_token() {
    check(
        "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000",
        expect![[r#"
            scope: Device { host: "localhost", device_id: DeviceId("dev1") }
            sr: localhost%2Fdevices%2Fdev1
            se: 1700000000
            skn: None
            printed: SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000
            verify: ok"#]],
    );
}

#[test]
fn fields_in_any_order_print_in_sdk_order() {
    check(
        "SharedAccessSignature skn=iothubowner&se=1700000000&sig=FA1raI0bYcj0af6QxOYdXsw9yFdL%2BpXksiE8usOBDVc%3D&sr=localhost",
        expect![[r#"
            scope: Hub { host: "localhost" }
            sr: localhost
            se: 1700000000
            skn: Some("iothubowner")
            printed: SharedAccessSignature sr=localhost&sig=FA1raI0bYcj0af6QxOYdXsw9yFdL%2BpXksiE8usOBDVc%3D&se=1700000000&skn=iothubowner
            verify: ok"#]],
    );
}

#[test]
fn lower_case_hex_in_sr_is_signed_as_written() {
    // The signature was computed over `localhost%2Fdevices%2Fdev1`; the raw `sr` differs, so it fails.
    check(
        "SharedAccessSignature sr=localhost%2fdevices%2fdev1&sig=7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000",
        expect![[r#"
            scope: Device { host: "localhost", device_id: DeviceId("dev1") }
            sr: localhost%2fdevices%2fdev1
            se: 1700000000
            skn: None
            printed: SharedAccessSignature sr=localhost%2fdevices%2fdev1&sig=7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000
            verify: error: SAS token signature does not match the key"#]],
    );
}

#[test]
fn expired_token() {
    // Signed properly, one second before `NOW`; a tampered `se` would fail the signature instead.
    let key = SymmetricKey::from_base64(KEY).unwrap();
    let scope = ResourceScope::parse_resource_uri("localhost/devices/dev1").unwrap();
    let token = SasToken::sign(SasTokenStyle::DeviceSdk, &scope, &key, None, NOW - 1);
    check(
        &token.to_string(),
        expect![[r#"
        scope: Device { host: "localhost", device_id: DeviceId("dev1") }
        sr: localhost%2Fdevices%2Fdev1
        se: 1699998999
        skn: None
        printed: SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=FH4wGphgHqp%2F0UCP5jktp0w5ansFRVyaxeDHn1etQ8E%3D&se=1699998999
        verify: error: SAS token expired at 1699998999, now is 1699999000"#]],
    );
    let token = SasToken::sign(SasTokenStyle::DeviceSdk, &scope, &key, None, NOW);
    check(
        &token.to_string(),
        expect![[r#"
        scope: Device { host: "localhost", device_id: DeviceId("dev1") }
        sr: localhost%2Fdevices%2Fdev1
        se: 1699999000
        skn: None
        printed: SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=sdL6S8JZ9CbEiLSsITyI6Lhb8%2B%2Bg%2FcGox451dwflZN4%3D&se=1699999000
        verify: ok"#]],
    );
}

#[test]
fn prefix_must_be_exact() {
    check(
        "sharedaccesssignature sr=localhost&sig=AA%3D%3D&se=1",
        expect![
            "parse error: SAS token must start with `SharedAccessSignature ` (exact case, one space)"
        ],
    );
    check(
        "SharedAccessSignature  sr=localhost&sig=AA%3D%3D&se=1",
        expect![
            "parse error: SAS token has unknown field ` sr`, expected only sr, sig, se and skn"
        ],
    );
    check(
        "SharedAccessSignature",
        expect![
            "parse error: SAS token must start with `SharedAccessSignature ` (exact case, one space)"
        ],
    );
    check(
        "",
        expect![
            "parse error: SAS token must start with `SharedAccessSignature ` (exact case, one space)"
        ],
    );
}

#[test]
fn unknown_duplicate_missing_and_empty_fields() {
    check(
        "SharedAccessSignature sr=localhost&sig=x&se=1&foo=bar",
        expect![
            "parse error: SAS token has unknown field `foo`, expected only sr, sig, se and skn"
        ],
    );
    check(
        "SharedAccessSignature SR=localhost&sig=x&se=1",
        expect!["parse error: SAS token has unknown field `SR`, expected only sr, sig, se and skn"],
    );
    check(
        "SharedAccessSignature sr=localhost&sr=localhost&sig=x&se=1",
        expect!["parse error: SAS token field `sr` appears more than once"],
    );
    check(
        "SharedAccessSignature sr=localhost&sig=x",
        expect!["parse error: SAS token lacks the required field `se`"],
    );
    check(
        "SharedAccessSignature sig=x&se=1",
        expect!["parse error: SAS token lacks the required field `sr`"],
    );
    check(
        "SharedAccessSignature sr=localhost&sig=&se=1",
        expect!["parse error: SAS token field `sig` is empty"],
    );
    check(
        "SharedAccessSignature sr=localhost&sig=x&se=1&",
        expect!["parse error: SAS token piece `` has no `=`, expected `name=value`"],
    );
    check(
        "SharedAccessSignature sr=localhost&sig=x&se",
        expect!["parse error: SAS token piece `se` has no `=`, expected `name=value`"],
    );
}

#[test]
fn bad_signature_values() {
    check(
        "SharedAccessSignature sr=localhost&sig=not*base64&se=1",
        expect![
            "parse error: SAS token field `sig` is not the base64 of a 32-byte HMAC-SHA256 signature: Invalid symbol 42, offset 3."
        ],
    );
    check(
        "SharedAccessSignature sr=localhost&sig=AAAA&se=1",
        expect![
            "parse error: SAS token field `sig` is not the base64 of a 32-byte HMAC-SHA256 signature: decodes to 3 bytes"
        ],
    );
    check(
        "SharedAccessSignature sr=localhost&sig=%FF&se=1",
        expect![
            "parse error: SAS token field `sig` is not the base64 of a 32-byte HMAC-SHA256 signature: does not percent-decode to UTF-8"
        ],
    );
}

#[test]
fn bad_expiry_values() {
    let signature = "7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D";
    check(
        &format!("SharedAccessSignature sr=localhost&sig={signature}&se=-1"),
        expect![
            "parse error: SAS token field `se` is `-1`, expected whole seconds since the Unix epoch"
        ],
    );
    check(
        &format!("SharedAccessSignature sr=localhost&sig={signature}&se=+1"),
        expect![
            "parse error: SAS token field `se` is `+1`, expected whole seconds since the Unix epoch"
        ],
    );
    check(
        &format!("SharedAccessSignature sr=localhost&sig={signature}&se=1.5"),
        expect![
            "parse error: SAS token field `se` is `1.5`, expected whole seconds since the Unix epoch"
        ],
    );
    check(
        &format!("SharedAccessSignature sr=localhost&sig={signature}&se=99999999999999999999"),
        expect![
            "parse error: SAS token field `se` is `99999999999999999999`, expected whole seconds since the Unix epoch"
        ],
    );
}

#[test]
fn bad_resources_and_key_names() {
    let signature = "7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D";
    let with_resource =
        |resource: &str| format!("SharedAccessSignature sr={resource}&sig={signature}&se=1");
    check(
        &with_resource("localhost%2Fdevices"),
        expect![
            "parse error: SAS token field `sr` names no IoT Hub resource: path after the host is `/devices`, expected `/devices/{deviceId}` or `/devices/{deviceId}/modules/{moduleId}`"
        ],
    );
    check(
        &with_resource("localhost%2Fdevices%2F"),
        expect![
            "parse error: SAS token field `sr` names no IoT Hub resource: invalid device id in resource: device id must not be empty"
        ],
    );
    check(
        &with_resource("localhost%2Fdevices%2Fdev1%2Fmodules"),
        expect![
            "parse error: SAS token field `sr` names no IoT Hub resource: path after the host is `/devices/dev1/modules`, expected `/devices/{deviceId}` or `/devices/{deviceId}/modules/{moduleId}`"
        ],
    );
    check(
        &with_resource("localhost%2Fdevices%2Fdev1%2Fmodules%2Fm%2Fx"),
        expect![
            "parse error: SAS token field `sr` names no IoT Hub resource: path after the host is `/devices/dev1/modules/m/x`, expected `/devices/{deviceId}` or `/devices/{deviceId}/modules/{moduleId}`"
        ],
    );
    check(
        &with_resource("localhost%2Fdevices%2Fa%20b"),
        expect![
            "parse error: SAS token field `sr` names no IoT Hub resource: invalid device id in resource: device id contains the character ' ' at byte 1, which IoT Hub does not allow"
        ],
    );
    check(
        &with_resource("local%20host"),
        expect![
            "parse error: SAS token field `sr` names no IoT Hub resource: invalid host: host name contains the character ' ' at byte 5, expected ASCII letters, digits or `-._:[]`"
        ],
    );
    check(
        &with_resource("%2Fdevices%2Fdev1"),
        expect![
            "parse error: SAS token field `sr` names no IoT Hub resource: invalid host: host name must not be empty"
        ],
    );
    check(
        &with_resource("%FF"),
        expect!["parse error: SAS token field `sr` does not percent-decode to UTF-8 text"],
    );
    check(
        &format!("SharedAccessSignature sr=localhost&sig={signature}&se=1&skn=a%20b"),
        expect![
            "parse error: SAS token field `skn` is not a shared access policy name: policy name contains the character '%' at byte 1, expected ASCII letters, digits or `-._`"
        ],
    );
}

#[test]
fn long_garbage_is_cut_short_in_errors() {
    check(
        &format!("SharedAccessSignature {}=1", "x".repeat(500)),
        expect![
            "parse error: SAS token has unknown field `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…`, expected only sr, sig, se and skn"
        ],
    );
}

/// Snapshots, for each granted scope (rows), which requested resources (columns) it covers.
fn check_covers(granted: &[&str], requested: &[&str], expected: Expect) {
    let parse = |uri: &str| ResourceScope::parse_resource_uri(uri).unwrap();
    let mut rendered = String::new();
    for granted_uri in granted {
        let row: Vec<&str> = requested
            .iter()
            .map(|requested_uri| {
                if parse(granted_uri).covers(&parse(requested_uri)) {
                    "yes"
                } else {
                    "no"
                }
            })
            .collect();
        rendered.push_str(&format!("{granted_uri:<28} {}\n", row.join(" ")));
    }
    expected.assert_eq(&rendered);
}

#[test]
fn scope_coverage_follows_the_segment_prefix_rule() {
    check_covers(
        &[
            "hub",
            "HUB",
            "other",
            "hub/devices/d1",
            "hub/devices/D1",
            "hub/devices/d1/modules/m1",
        ],
        &[
            "hub",
            "hub/devices/d1",
            "Hub/devices/d1",
            "hub/devices/d2",
            "hub/devices/d1/modules/m1",
            "hub/devices/d1/modules/m2",
        ],
        expect![[r#"
            hub                          yes yes yes yes yes yes
            HUB                          yes yes yes yes yes yes
            other                        no no no no no no
            hub/devices/d1               no yes yes no yes yes
            hub/devices/D1               no no no no no no
            hub/devices/d1/modules/m1    no no no no yes no
        "#]],
    );
}

#[test]
fn covers_identity_builds_the_requested_scope() {
    let host = HostName::new("Hub.Example").unwrap();
    let scope = ResourceScope::parse_resource_uri("hub.example/devices/edge1").unwrap();
    let module: iothub_types::Identity = "edge1/$edgeHub".parse().unwrap();
    let other_device: iothub_types::Identity = "edge2".parse().unwrap();
    assert!(scope.covers_identity(&host, &module));
    assert!(!scope.covers_identity(&host, &other_device));
    assert!(!scope.covers_identity(&HostName::new("other").unwrap(), &module));
}
