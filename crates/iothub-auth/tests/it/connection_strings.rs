//! Connection string parsing and formatting, through one `check` helper.

use expect_test::{Expect, expect};
use iothub_auth::{
    ClientCredential, ConnectionString, ConnectionStringError, ConnectionStringKind,
    DeviceConnectionString, HostName, ModuleConnectionString, ResourceScope, SasToken,
    SasTokenStyle, ServiceConnectionString, SymmetricKey,
};
use iothub_types::{DeviceId, ModuleId};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Parses `text` and snapshots the typed result and its canonical form, or the error.
fn check(text: &str, expected: Expect) {
    let rendered = match ConnectionString::parse(text) {
        Err(error) => format!("error: {error}"),
        Ok(connection_string) => {
            let details = match &connection_string {
                ConnectionString::Device(device) => format!(
                    "device host={} device={} credential={} gateway={:?}",
                    device.host_name(),
                    device.device_id(),
                    describe(device.credential()),
                    device.gateway_host_name().map(HostName::as_str),
                ),
                ConnectionString::Module(module) => format!(
                    "module host={} device={} module={} credential={} gateway={:?}",
                    module.host_name(),
                    module.device_id(),
                    module.module_id(),
                    describe(module.credential()),
                    module.gateway_host_name().map(HostName::as_str),
                ),
                ConnectionString::Service(service) => format!(
                    "service host={} policy={} key={} bytes gateway={:?}",
                    service.host_name(),
                    service.key_name(),
                    service.key().as_bytes().len(),
                    service.gateway_host_name().map(HostName::as_str),
                ),
            };
            let canonical = connection_string.to_string();
            assert_eq!(
                ConnectionString::parse(&canonical),
                Ok(connection_string),
                "canonical form must parse back"
            );
            format!("{details}\ncanonical: {canonical}")
        }
    };
    expected.assert_eq(&rendered);
}

fn describe(credential: &ClientCredential) -> String {
    match credential {
        ClientCredential::SharedAccessKey(key) => format!("key({} bytes)", key.as_bytes().len()),
        ClientCredential::SharedAccessSignature(token) => format!("token({})", token.scope()),
        ClientCredential::X509 => "x509".to_owned(),
    }
}

#[test]
fn device_with_key() {
    check(
        &format!("HostName=hub.local;DeviceId=dev1;SharedAccessKey={KEY}"),
        expect![[r#"
        device host=hub.local device=dev1 credential=key(32 bytes) gateway=None
        canonical: HostName=hub.local;DeviceId=dev1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="#]],
    );
}

#[test]
fn pairs_in_any_order_with_gateway() {
    check(
        &format!(
            "GatewayHostName=localhost;SharedAccessKey={KEY};DeviceId=dev1;HostName=hub.local"
        ),
        expect![[r#"
        device host=hub.local device=dev1 credential=key(32 bytes) gateway=Some("localhost")
        canonical: HostName=hub.local;DeviceId=dev1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=;GatewayHostName=localhost"#]],
    );
}

#[test]
fn module_with_key_and_gateway() {
    check(
        &format!(
            "HostName=hub.local;DeviceId=edge1;ModuleId=$edgeHub;SharedAccessKey={KEY};GatewayHostName=localhost"
        ),
        expect![[r#"
            module host=hub.local device=edge1 module=$edgeHub credential=key(32 bytes) gateway=Some("localhost")
            canonical: HostName=hub.local;DeviceId=edge1;ModuleId=$edgeHub;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=;GatewayHostName=localhost"#]],
    );
}

#[test]
fn device_with_x509() {
    check(
        "HostName=hub.local;DeviceId=dev1;x509=true",
        expect![[r#"
        device host=hub.local device=dev1 credential=x509 gateway=None
        canonical: HostName=hub.local;DeviceId=dev1;x509=true"#]],
    );
    check(
        "HostName=hub.local;DeviceId=dev1;x509=True",
        expect!["error: connection string key `x509` has an invalid value: expected `true`"],
    );
}

#[test]
fn device_with_ready_made_token() {
    let token = "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000";
    check(
        &format!("HostName=localhost;DeviceId=dev1;SharedAccessSignature={token}"),
        expect![[r#"
        device host=localhost device=dev1 credential=token(localhost/devices/dev1) gateway=None
        canonical: HostName=localhost;DeviceId=dev1;SharedAccessSignature=SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000"#]],
    );
    check(
        &format!("HostName=localhost;DeviceId=dev2;SharedAccessSignature={token}"),
        expect![
            "error: connection string key `SharedAccessSignature` has an invalid value: token resource `localhost/devices/dev1` does not cover `dev2` on `localhost`"
        ],
    );
    check(
        "HostName=localhost;DeviceId=dev1;SharedAccessSignature=SharedAccessSignature sr=x",
        expect![
            "error: connection string key `SharedAccessSignature` has an invalid value: SAS token lacks the required field `sig`"
        ],
    );
}

#[test]
fn service_policy() {
    check(
        &format!("HostName=hub.local:8443;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"),
        expect![[r#"
        service host=hub.local:8443 policy=iothubowner key=32 bytes gateway=None
        canonical: HostName=hub.local:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="#]],
    );
    check(
        &format!("HostName=hub.local;SharedAccessKeyName=service;SharedAccessKey={KEY};x509=true"),
        expect!["error: service connection string does not take the key `x509`"],
    );
    check(
        "HostName=hub.local;SharedAccessKeyName=service",
        expect!["error: service connection string lacks the required key `SharedAccessKey`"],
    );
    check(
        &format!("HostName=hub.local;SharedAccessKeyName=bad name;SharedAccessKey={KEY}"),
        expect![
            "error: connection string key `SharedAccessKeyName` has an invalid value: policy name contains the character ' ' at byte 3, expected ASCII letters, digits or `-._`"
        ],
    );
}

#[test]
fn structural_errors() {
    check(
        "",
        expect!["error: connection string is empty, expected `Key=Value` pairs joined by `;`"],
    );
    check(
        &format!("HostName=hub.local;DeviceId=dev1;SharedAccessKey={KEY};"),
        expect!["error: connection string piece `` has no `=`, expected `Key=Value`"],
    );
    check(
        &format!("HostName=hub.local;DeviceId=dev1;SharedAccessKey={KEY};Foo=bar"),
        expect![
            "error: connection string has unknown key `Foo`, expected one of HostName, DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, GatewayHostName, x509"
        ],
    );
    check(
        &format!("hostname=hub.local;DeviceId=dev1;SharedAccessKey={KEY}"),
        expect![
            "error: connection string has unknown key `hostname`, expected one of HostName, DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, GatewayHostName, x509"
        ],
    );
    check(
        &format!("HostName=hub.local;DeviceId=dev1;DeviceId=dev2;SharedAccessKey={KEY}"),
        expect!["error: connection string key `DeviceId` appears more than once"],
    );
    check(
        &format!("HostName=;DeviceId=dev1;SharedAccessKey={KEY}"),
        expect!["error: connection string key `HostName` has an empty value"],
    );
    check(
        &format!("HostName= hub.local;DeviceId=dev1;SharedAccessKey={KEY}"),
        expect![
            "error: connection string key `HostName` has an invalid value: host name contains the character ' ' at byte 0, expected ASCII letters, digits or `-._:[]`"
        ],
    );
}

#[test]
fn missing_and_misplaced_keys() {
    check(
        &format!("DeviceId=dev1;SharedAccessKey={KEY}"),
        expect!["error: device connection string lacks the required key `HostName`"],
    );
    check(
        &format!("HostName=hub.local;SharedAccessKey={KEY}"),
        expect![
            "error: connection string has neither `DeviceId` (device or module) nor `SharedAccessKeyName` (service policy)"
        ],
    );
    check(
        &format!("HostName=hub.local;ModuleId=m1;SharedAccessKey={KEY}"),
        expect!["error: module connection string lacks the required key `DeviceId`"],
    );
    check(
        "HostName=hub.local;DeviceId=dev1",
        expect![
            "error: device connection string needs one of `SharedAccessKey`, `SharedAccessSignature` or `x509=true`"
        ],
    );
    check(
        &format!(
            "HostName=hub.local;DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey={KEY}"
        ),
        expect!["error: device connection string does not take the key `SharedAccessKeyName`"],
    );
}

#[test]
fn bad_values() {
    check(
        "HostName=hub.local;DeviceId=dev1;SharedAccessKey=not-base64!",
        expect![
            "error: connection string key `SharedAccessKey` has an invalid value: symmetric key is not valid base64: Invalid symbol 45, offset 3."
        ],
    );
    check(
        "HostName=hub.local;DeviceId=dev/1;SharedAccessKey=a2V5",
        expect![
            "error: connection string key `DeviceId` has an invalid value: device id contains the character '/' at byte 3, which IoT Hub does not allow"
        ],
    );
    check(
        "HostName=hub.local;DeviceId=dev1;ModuleId=m 1;SharedAccessKey=a2V5",
        expect![
            "error: connection string key `ModuleId` has an invalid value: module id contains the character ' ' at byte 1, which IoT Hub does not allow"
        ],
    );
    check(
        "HostName=hub/local;DeviceId=dev1;SharedAccessKey=a2V5",
        expect![
            "error: connection string key `HostName` has an invalid value: host name contains the character '/' at byte 3, expected ASCII letters, digits or `-._:[]`"
        ],
    );
    check(
        "HostName=hub.local;DeviceId=dev1;SharedAccessKey=a2V5;GatewayHostName=gw host",
        expect![
            "error: connection string key `GatewayHostName` has an invalid value: host name contains the character ' ' at byte 2, expected ASCII letters, digits or `-._:[]`"
        ],
    );
}

#[test]
fn mixed_credentials() {
    check(
        &format!("HostName=hub.local;DeviceId=dev1;SharedAccessKey={KEY};x509=true"),
        expect![
            "error: connection string mixes authentication schemes `SharedAccessKey` and `x509`, expected exactly one"
        ],
    );
    check(
        "HostName=hub.local;DeviceId=dev1;x509=true;SharedAccessSignature=SharedAccessSignature sr=x",
        expect![
            "error: connection string mixes authentication schemes `SharedAccessSignature` and `x509`, expected exactly one"
        ],
    );
}

#[test]
fn value_may_contain_equals_signs() {
    // The split is at the first `=`, so base64 padding survives.
    check(
        "HostName=hub.local;DeviceId=a=b;SharedAccessKey=a2V5MQ==",
        expect![[r#"
        device host=hub.local device=a=b credential=key(4 bytes) gateway=None
        canonical: HostName=hub.local;DeviceId=a=b;SharedAccessKey=a2V5MQ=="#]],
    );
}

#[test]
fn kind_specific_parsers() {
    let device_text = format!("HostName=hub.local;DeviceId=dev1;SharedAccessKey={KEY}");
    assert!(DeviceConnectionString::parse(&device_text).is_ok());
    assert_eq!(
        ModuleConnectionString::parse(&device_text),
        Err(ConnectionStringError::WrongKind {
            expected: ConnectionStringKind::Module,
            found: ConnectionStringKind::Device
        })
    );
    expect!["expected a service connection string, found a device connection string"].assert_eq(
        &ServiceConnectionString::parse(&device_text)
            .unwrap_err()
            .to_string(),
    );
}

#[test]
fn constructors_refuse_what_cannot_be_written() {
    let host = HostName::new("hub.local").unwrap();
    let key = SymmetricKey::from_base64(KEY).unwrap();
    let semicolon_device = DeviceId::new("a;b").unwrap();
    let error = DeviceConnectionString::new(
        host.clone(),
        semicolon_device,
        ClientCredential::SharedAccessKey(key.clone()),
    );
    expect!["connection string key `DeviceId` has an invalid value: contains `;`, which cannot be written into a connection string"].assert_eq(&error.unwrap_err().to_string());

    // A token for module m1 cannot be the credential of module m2.
    let device = DeviceId::new("dev1").unwrap();
    let scope = ResourceScope::module(host.clone(), device.clone(), ModuleId::new("m1").unwrap());
    let token = SasToken::sign(SasTokenStyle::DeviceSdk, &scope, &key, None, 1700000000);
    let error = ModuleConnectionString::new(
        host.clone(),
        device.clone(),
        ModuleId::new("m2").unwrap(),
        ClientCredential::SharedAccessSignature(token.clone()),
    );
    expect!["connection string key `SharedAccessSignature` has an invalid value: token resource `hub.local/devices/dev1/modules/m1` does not cover `dev1/m2` on `hub.local`"].assert_eq(&error.unwrap_err().to_string());

    let module = ModuleConnectionString::new(
        host,
        device,
        ModuleId::new("m1").unwrap(),
        ClientCredential::SharedAccessSignature(token),
    )
    .unwrap()
    .with_gateway_host_name(HostName::new("localhost").unwrap());
    expect!["HostName=hub.local;DeviceId=dev1;ModuleId=m1;SharedAccessSignature=SharedAccessSignature sr=hub.local%2Fdevices%2Fdev1%2Fmodules%2Fm1&sig=hTpK6bKpfJ1Y0irkbr6uIZULy5a8u5HPFWvHUNk6yL8%3D&se=1700000000;GatewayHostName=localhost"].assert_eq(&module.to_string());
}
