//! Tokens produced by the official Python SDKs, captured once and pasted here.
//!
//! They were made with `azure-iot-device` 2.14.0 (`RenewableSasToken` with a
//! `SymmetricKeySigningMechanism`) and `azure-iot-hub` 2.7.0 (`azure.iot.hub.sastoken.SasToken`),
//! with `time.time` patched to return the expiry and a TTL of zero. The first three signatures are the
//! ones in the protocol reference (section 2.2).

use iothub_auth::{
    HostName, PolicyName, ResourceScope, SasToken, SasTokenStyle, SasTokenVerifyError,
    SymmetricKey, string_to_sign,
};

/// Base64 of the ASCII string `0123456789abcdef0123456789abcdef`, the reference's test key.
const REFERENCE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Base64 of the ASCII string `secret-key-for-outpost-tests-001`.
const SECOND_KEY: &str = "c2VjcmV0LWtleS1mb3Itb3V0cG9zdC10ZXN0cy0wMDE=";

struct SdkVector {
    style: SasTokenStyle,
    resource_uri: &'static str,
    key_base64: &'static str,
    key_name: Option<&'static str>,
    expiry_unix_secs: u64,
    token: &'static str,
}

const SDK_VECTORS: &[SdkVector] = &[
    SdkVector {
        style: SasTokenStyle::DeviceSdk,
        resource_uri: "localhost/devices/dev1",
        key_base64: REFERENCE_KEY,
        key_name: None,
        expiry_unix_secs: 1700000000,
        token: "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=7%2FYBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000",
    },
    SdkVector {
        style: SasTokenStyle::DeviceSdk,
        resource_uri: "localhost/devices/dev1/modules/mod1",
        key_base64: REFERENCE_KEY,
        key_name: None,
        expiry_unix_secs: 1700000000,
        token: "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1%2Fmodules%2Fmod1&sig=5vStNvqioGwZvXFNO95%2B34PozvUtIBZpgXB9uqzMIGA%3D&se=1700000000",
    },
    SdkVector {
        style: SasTokenStyle::DeviceSdk,
        resource_uri: "localhost",
        key_base64: REFERENCE_KEY,
        key_name: Some("iothubowner"),
        expiry_unix_secs: 1700000000,
        token: "SharedAccessSignature sr=localhost&sig=FA1raI0bYcj0af6QxOYdXsw9yFdL%2BpXksiE8usOBDVc%3D&se=1700000000&skn=iothubowner",
    },
    SdkVector {
        style: SasTokenStyle::ServiceSdkRest,
        resource_uri: "localhost/devices/dev1",
        key_base64: REFERENCE_KEY,
        key_name: None,
        expiry_unix_secs: 1700000000,
        token: "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=7/YBn2%2BOH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk%3D&se=1700000000",
    },
    SdkVector {
        style: SasTokenStyle::ServiceSdkRest,
        resource_uri: "localhost/devices/dev1/modules/mod1",
        key_base64: REFERENCE_KEY,
        key_name: None,
        expiry_unix_secs: 1700000000,
        token: "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1%2Fmodules%2Fmod1&sig=5vStNvqioGwZvXFNO95%2B34PozvUtIBZpgXB9uqzMIGA%3D&se=1700000000",
    },
    SdkVector {
        style: SasTokenStyle::ServiceSdkRest,
        resource_uri: "localhost",
        key_base64: REFERENCE_KEY,
        key_name: Some("iothubowner"),
        expiry_unix_secs: 1700000000,
        token: "SharedAccessSignature sr=localhost&sig=FA1raI0bYcj0af6QxOYdXsw9yFdL%2BpXksiE8usOBDVc%3D&se=1700000000&skn=iothubowner",
    },
    SdkVector {
        style: SasTokenStyle::DeviceSdk,
        resource_uri: "myhub.example.net/devices/edge1/modules/$edgeHub",
        key_base64: SECOND_KEY,
        key_name: None,
        expiry_unix_secs: 1795752533,
        token: "SharedAccessSignature sr=myhub.example.net%2Fdevices%2Fedge1%2Fmodules%2F%24edgeHub&sig=XGTWyrnynZbJYywi88wAmDPoogHECQKlKRI%2FSKtBaGU%3D&se=1795752533",
    },
    SdkVector {
        style: SasTokenStyle::DeviceSdk,
        resource_uri: "Hub.Local:8443/devices/dev:1+a=b(x)",
        key_base64: SECOND_KEY,
        key_name: None,
        expiry_unix_secs: 1795752533,
        token: "SharedAccessSignature sr=Hub.Local%3A8443%2Fdevices%2Fdev%3A1%2Ba%3Db%28x%29&sig=uPaPrujzK7wFttvvejGp3lQA31BMX8EGMpPHawGhtS4%3D&se=1795752533",
    },
    SdkVector {
        style: SasTokenStyle::ServiceSdkRest,
        resource_uri: "Hub.Local:8443/devices/dev:1+a=b(x)",
        key_base64: SECOND_KEY,
        key_name: None,
        expiry_unix_secs: 1795752533,
        token: "SharedAccessSignature sr=Hub.Local%3A8443%2Fdevices%2Fdev%3A1%2Ba%3Db%28x%29&sig=uPaPrujzK7wFttvvejGp3lQA31BMX8EGMpPHawGhtS4%3D&se=1795752533",
    },
    SdkVector {
        style: SasTokenStyle::ServiceSdkRest,
        resource_uri: "localhost:8443",
        key_base64: SECOND_KEY,
        key_name: Some("service"),
        expiry_unix_secs: 1795752533,
        token: "SharedAccessSignature sr=localhost%3A8443&sig=tbp/N5m106dhvZNsovEdNah8Rea7W4zw2dutR1VVNis%3D&se=1795752533&skn=service",
    },
];

#[test]
fn building_reproduces_every_sdk_token_byte_for_byte() {
    for vector in SDK_VECTORS {
        let scope = ResourceScope::parse_resource_uri(vector.resource_uri).unwrap();
        let key = SymmetricKey::from_base64(vector.key_base64).unwrap();
        let key_name = vector.key_name.map(|name| PolicyName::new(name).unwrap());
        let token = SasToken::sign(
            vector.style,
            &scope,
            &key,
            key_name.as_ref(),
            vector.expiry_unix_secs,
        );
        assert_eq!(
            token.to_string(),
            vector.token,
            "{:?} token for {}",
            vector.style,
            vector.resource_uri
        );
    }
}

#[test]
fn every_sdk_token_parses_verifies_and_prints_back_unchanged() {
    for vector in SDK_VECTORS {
        let token = SasToken::parse(vector.token).unwrap();
        let key = SymmetricKey::from_base64(vector.key_base64).unwrap();
        assert_eq!(token.to_string(), vector.token);
        assert_eq!(token.scope().resource_uri(), vector.resource_uri);
        assert_eq!(token.key_name().map(PolicyName::as_str), vector.key_name);
        assert_eq!(token.verify(&key, vector.expiry_unix_secs), Ok(()));
        assert_eq!(
            token.verify(&key, vector.expiry_unix_secs + 1),
            Err(SasTokenVerifyError::Expired {
                expiry_unix_secs: vector.expiry_unix_secs,
                now_unix_secs: vector.expiry_unix_secs + 1
            })
        );
        let other_key = SymmetricKey::from_base64("b3RoZXI=").unwrap();
        assert_eq!(
            token.verify(&other_key, 0),
            Err(SasTokenVerifyError::SignatureMismatch)
        );
    }
}

#[test]
fn reference_table_signatures_and_strings_to_sign() {
    // Section 2.2 of the protocol reference: decoded sr, string-to-sign prefix, base64 signature.
    let table = [
        (
            "localhost/devices/dev1",
            "localhost%2Fdevices%2Fdev1",
            "7/YBn2+OH0PpftIzUioKUatXUTqpkyynUgfn1k7i5pk=",
        ),
        (
            "localhost/devices/dev1/modules/mod1",
            "localhost%2Fdevices%2Fdev1%2Fmodules%2Fmod1",
            "5vStNvqioGwZvXFNO95+34PozvUtIBZpgXB9uqzMIGA=",
        ),
        (
            "localhost",
            "localhost",
            "FA1raI0bYcj0af6QxOYdXsw9yFdL+pXksiE8usOBDVc=",
        ),
    ];
    let key = SymmetricKey::from_base64(REFERENCE_KEY).unwrap();
    assert_eq!(key.as_bytes(), b"0123456789abcdef0123456789abcdef");
    for (resource_uri, encoded_resource, signature_base64) in table {
        let scope = ResourceScope::parse_resource_uri(resource_uri).unwrap();
        let token = SasToken::sign(SasTokenStyle::DeviceSdk, &scope, &key, None, 1700000000);
        assert_eq!(token.resource_encoded(), encoded_resource);
        assert_eq!(
            token.string_to_sign(),
            format!("{encoded_resource}\n1700000000")
        );
        assert_eq!(
            key.sign_to_base64(token.string_to_sign().as_bytes()),
            signature_base64
        );
    }
}

#[test]
fn workload_sign_call_produces_the_sdk_signature() {
    // The IoT Edge workload API gets base64(string-to-sign) and answers base64(HMAC); the SDK then
    // percent-encodes that digest into `sig`. Signing the decoded data must give the SDK's signature.
    let key = SymmetricKey::from_base64(SECOND_KEY).unwrap();
    let data = string_to_sign(
        "myhub.example.net%2Fdevices%2Fedge1%2Fmodules%2F%24edgeHub",
        1795752533,
    );
    assert_eq!(
        key.sign_to_base64(data.as_bytes()),
        "XGTWyrnynZbJYywi88wAmDPoogHECQKlKRI/SKtBaGU="
    );
}

#[test]
fn uamqp_tokens_carry_the_host_unencoded() {
    let key = SymmetricKey::from_base64(REFERENCE_KEY).unwrap();
    let scope = ResourceScope::hub(HostName::new("localhost").unwrap());
    let policy = PolicyName::new("iothubowner").unwrap();
    let token = SasToken::sign(
        SasTokenStyle::ServiceSdkAmqp,
        &scope,
        &key,
        Some(&policy),
        1700000000,
    );
    // A bare host needs no encoding, so the uamqp token equals the REST one here.
    assert_eq!(token.to_string(), SDK_VECTORS[5].token);
    let scope = ResourceScope::hub(HostName::new("localhost:5671").unwrap());
    let token = SasToken::sign(
        SasTokenStyle::ServiceSdkAmqp,
        &scope,
        &key,
        Some(&policy),
        1700000000,
    );
    assert_eq!(token.resource_encoded(), "localhost:5671");
    assert_eq!(
        SasToken::parse(&token.to_string())
            .unwrap()
            .verify(&key, 1700000000),
        Ok(())
    );
}
