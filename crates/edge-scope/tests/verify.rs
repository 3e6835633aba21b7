//! What the edge hub accepts from a connecting client: SAS tokens and self-signed thumbprints
//! checked against the cached scope identity.

mod support;

use edge_scope::{ScopeAuth, ScopeIdentity};
use expect_test::{Expect, expect};
use iothub_auth::{HostName, PolicyName, ResourceScope, SasToken, SasTokenStyle, SymmetricKey};
use support::{identity, key};

const HUB: &str = "hub.example.net";
const GATEWAY: &str = "edge1.local";
const NOW: u64 = 1_800_000_000;

fn sas_identity(text: &str, enabled: bool) -> ScopeIdentity {
    ScopeIdentity {
        identity: identity(text),
        generation_id: "g".to_owned(),
        enabled,
        auth: ScopeAuth::Sas {
            primary: key(1),
            secondary: key(2),
        },
        is_edge: false,
        parent_scopes: vec!["ms-azure-iot-edge://edge1-1".to_owned()],
        device_scope: None,
    }
}

/// A device-SDK token for `who` on `host`, signed with `signing_key`, expiring at `expiry`.
fn token(host: &str, who: &str, signing_key: &SymmetricKey, expiry: u64) -> String {
    let scope = ResourceScope::for_identity(HostName::new(host).expect("host"), &identity(who));
    SasToken::sign(SasTokenStyle::DeviceSdk, &scope, signing_key, None, expiry).to_string()
}

/// One line per case: its name and the outcome.
fn check(cases: Vec<(&str, Result<(), edge_scope::ScopeRefusal>)>, expected: Expect) {
    let lines: Vec<String> = cases
        .into_iter()
        .map(|(name, outcome)| match outcome {
            Ok(()) => format!("{name}: accepted"),
            Err(refusal) => format!("{name}: {refusal:?} ({refusal})"),
        })
        .collect();
    expected.assert_eq(&lines.join("\n"));
}

#[test]
fn sas_tokens() {
    let sensor = sas_identity("sensor", true);
    let module = sas_identity("edge1/filter", true);
    let disabled = sas_identity("sensor", false);
    let hosts = [HUB, GATEWAY];
    let later = NOW + 600;
    let policy_token = SasToken::sign(
        SasTokenStyle::ServiceSdkRest,
        &ResourceScope::for_identity(HostName::new(HUB).expect("host"), &identity("sensor")),
        &key(1),
        Some(&PolicyName::new("device").expect("name")),
        later,
    )
    .to_string();
    let cases = vec![
        (
            "good primary",
            sensor.verify_sas(&token(HUB, "sensor", &key(1), later), &hosts, NOW),
        ),
        (
            "good secondary",
            sensor.verify_sas(&token(HUB, "sensor", &key(2), later), &hosts, NOW),
        ),
        (
            "gateway host",
            sensor.verify_sas(&token(GATEWAY, "sensor", &key(1), later), &hosts, NOW),
        ),
        (
            "host in other case with port",
            sensor.verify_sas(
                &token("EDGE1.local:8883", "sensor", &key(1), later),
                &hosts,
                NOW,
            ),
        ),
        (
            "expires this second",
            sensor.verify_sas(&token(HUB, "sensor", &key(1), NOW), &hosts, NOW),
        ),
        (
            "wrong key",
            sensor.verify_sas(&token(HUB, "sensor", &key(3), later), &hosts, NOW),
        ),
        (
            "expired",
            sensor.verify_sas(&token(HUB, "sensor", &key(1), NOW - 1), &hosts, NOW),
        ),
        (
            "expired, wrong key",
            sensor.verify_sas(&token(HUB, "sensor", &key(3), NOW - 1), &hosts, NOW),
        ),
        (
            "other identity's token",
            sensor.verify_sas(&token(HUB, "camera", &key(1), later), &hosts, NOW),
        ),
        (
            "module token for the device",
            sensor.verify_sas(&token(HUB, "sensor/telemetry", &key(1), later), &hosts, NOW),
        ),
        (
            "device token for a module",
            module.verify_sas(&token(HUB, "edge1", &key(1), later), &hosts, NOW),
        ),
        (
            "module's own token",
            module.verify_sas(&token(GATEWAY, "edge1/filter", &key(2), later), &hosts, NOW),
        ),
        (
            "unknown host",
            sensor.verify_sas(
                &token("evil.example.net", "sensor", &key(1), later),
                &hosts,
                NOW,
            ),
        ),
        (
            "disabled",
            disabled.verify_sas(&token(HUB, "sensor", &key(1), later), &hosts, NOW),
        ),
        (
            "disabled, wrong key",
            disabled.verify_sas(&token(HUB, "sensor", &key(3), later), &hosts, NOW),
        ),
        (
            "policy token",
            sensor.verify_sas(&policy_token, &hosts, NOW),
        ),
        ("not a token", sensor.verify_sas("password", &hosts, NOW)),
    ];
    check(
        cases,
        expect![[r#"
        good primary: accepted
        good secondary: accepted
        gateway host: accepted
        host in other case with port: accepted
        expires this second: accepted
        wrong key: BadToken("the signature matches neither key") (the credential was refused: the signature matches neither key)
        expired: Expired (the SAS token has expired)
        expired, wrong key: BadToken("the signature matches neither key") (the credential was refused: the signature matches neither key)
        other identity's token: BadToken("the token is for camera, not for sensor") (the credential was refused: the token is for camera, not for sensor)
        module token for the device: BadToken("the token is for sensor/telemetry, not for sensor") (the credential was refused: the token is for sensor/telemetry, not for sensor)
        device token for a module: BadToken("the token is for edge1, not for edge1/filter") (the credential was refused: the token is for edge1, not for edge1/filter)
        module's own token: accepted
        unknown host: BadToken("the token is for host evil.example.net, which this edge hub does not serve") (the credential was refused: the token is for host evil.example.net, which this edge hub does not serve)
        disabled: Disabled (the identity is disabled)
        disabled, wrong key: BadToken("the signature matches neither key") (the credential was refused: the signature matches neither key)
        policy token: BadToken("a token signed with a shared access policy (skn) cannot be checked at the edge") (the credential was refused: a token signed with a shared access policy (skn) cannot be checked at the edge)
        not a token: BadToken("SAS token must start with `SharedAccessSignature ` (exact case, one space)") (the credential was refused: SAS token must start with `SharedAccessSignature ` (exact case, one space))"#]],
    );
}

#[test]
fn credential_types() {
    let thumbprint_sha1 = "AB".repeat(20);
    let thumbprint_sha256 = "CD".repeat(32);
    let camera = ScopeIdentity {
        auth: ScopeAuth::SelfSigned {
            primary_thumbprint: thumbprint_sha1.clone(),
            secondary_thumbprint: thumbprint_sha256.clone(),
        },
        ..sas_identity("camera", true)
    };
    let primary_only = ScopeIdentity {
        auth: ScopeAuth::SelfSigned {
            primary_thumbprint: thumbprint_sha1.clone(),
            secondary_thumbprint: String::new(),
        },
        ..sas_identity("camera", true)
    };
    let disabled = ScopeIdentity {
        enabled: false,
        ..camera.clone()
    };
    let sensor = sas_identity("sensor", true);
    let ca_leaf = ScopeIdentity {
        auth: ScopeAuth::CertificateAuthority,
        ..sas_identity("ca-leaf", true)
    };
    let other_sha1 = "EF".repeat(20);
    let other_sha256 = "01".repeat(32);
    let cases = vec![
        (
            "sha1 matches primary",
            camera.verify_thumbprint(&thumbprint_sha1, &other_sha256),
        ),
        (
            "sha256 matches secondary",
            camera.verify_thumbprint(&other_sha1, &thumbprint_sha256),
        ),
        (
            "lower case",
            camera.verify_thumbprint(&thumbprint_sha1.to_lowercase(), &other_sha256),
        ),
        (
            "neither",
            camera.verify_thumbprint(&other_sha1, &other_sha256),
        ),
        ("empty thumbprints", primary_only.verify_thumbprint("", "")),
        (
            "disabled",
            disabled.verify_thumbprint(&thumbprint_sha1, &other_sha256),
        ),
        (
            "certificate for a SAS identity",
            sensor.verify_thumbprint(&thumbprint_sha1, &thumbprint_sha256),
        ),
        (
            "token for a thumbprint identity",
            camera.verify_sas(&token(HUB, "camera", &key(1), NOW + 60), &[HUB], NOW),
        ),
        (
            "token for a CA identity",
            ca_leaf.verify_sas(&token(HUB, "ca-leaf", &key(1), NOW + 60), &[HUB], NOW),
        ),
    ];
    check(
        cases,
        expect![[r#"
        sha1 matches primary: accepted
        sha256 matches secondary: accepted
        lower case: accepted
        neither: BadToken("the certificate thumbprint matches neither registered thumbprint") (the credential was refused: the certificate thumbprint matches neither registered thumbprint)
        empty thumbprints: BadToken("the certificate thumbprint matches neither registered thumbprint") (the credential was refused: the certificate thumbprint matches neither registered thumbprint)
        disabled: Disabled (the identity is disabled)
        certificate for a SAS identity: WrongCredentialType (the identity does not authenticate with this kind of credential)
        token for a thumbprint identity: WrongCredentialType (the identity does not authenticate with this kind of credential)
        token for a CA identity: WrongCredentialType (the identity does not authenticate with this kind of credential)"#]],
    );
    // Keys never show in Debug output.
    let debug = format!("{sensor:?}");
    assert!(debug.contains("Sas { .. }"), "{debug}");
    assert!(!debug.contains(&key(1).to_base64()), "{debug}");
}
