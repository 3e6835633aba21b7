//! Black-box test of X.509 CA authentication: a CA uploaded with `outpost ca upload`, a device
//! created with `outpost device create --x509-ca`, and the official Python device SDK connecting
//! with a certificate the CA signed. Certificates from another CA, with another subject CN, for a
//! SAS device, or after the CA is deleted are refused.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU8;

use serde_json::Value;
use support::{Hub, next_address};
use tls::{CertificateAuthority, CertificateValidity, ClientCertificateRequest};

static ADDRESSES: AtomicU8 = AtomicU8::new(0);

/// Writes a device certificate signed by `authority` (subject CN `common_name`) and its key;
/// returns the certificate and key file paths as text.
fn device_files(
    directory: &Path,
    authority: &CertificateAuthority,
    file_stem: &str,
    common_name: &str,
) -> (String, String) {
    let certificate = authority
        .issue_client_certificate(&ClientCertificateRequest {
            common_name: common_name.to_owned(),
            validity: CertificateValidity::days_from_now(30),
        })
        .expect("device certificate");
    let cert_file = directory.join(format!("{file_stem}.pem"));
    let key_file = directory.join(format!("{file_stem}.key.pem"));
    std::fs::write(&cert_file, certificate.chain_pem()).expect("write certificate");
    std::fs::write(&key_file, certificate.private_key_pem()).expect("write key");
    let text = |path: PathBuf| path.to_str().expect("utf-8 path").to_owned();
    (text(cert_file), text(key_file))
}

fn connect(hub: &Hub, device_id: &str, files: &(String, String), outcome: &str) -> Value {
    hub.scenario(
        &["x509_ca_device", device_id, &files.0, &files.1, outcome],
        &[],
    )
}

fn listed_certificates(hub: &Hub) -> Vec<Value> {
    let stdout = hub.cli_ok(&["ca", "list", "--output", "json"]);
    serde_json::from_str::<Value>(&stdout)
        .expect("ca list prints JSON")
        .as_array()
        .cloned()
        .expect("a JSON array")
}

#[test]
fn devices_connect_with_certificates_signed_by_an_uploaded_ca() {
    let hub = Hub::start(&next_address(37, &ADDRESSES));
    let directory = tempfile::tempdir().expect("tempdir");
    let validity = CertificateValidity::days_from_now(365);
    let root = CertificateAuthority::generate("Outpost Test Root", validity).expect("CA");
    let stranger = CertificateAuthority::generate("Stranger Root", validity).expect("CA");
    let root_file = directory.path().join("root.pem");
    std::fs::write(&root_file, root.certificate_pem()).expect("write CA");
    let root_path = root_file.to_str().expect("utf-8 path");

    // Upload and list the CA through the CLI; a second upload under the same name needs --replace.
    let uploaded = hub.cli_ok(&["ca", "upload", "test-root", root_path]);
    assert!(uploaded.contains("test-root"), "{uploaded}");
    let again = hub.cli(&["ca", "upload", "test-root", root_path]);
    assert!(!again.status.success(), "a second upload must be refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("412"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    hub.cli_ok(&["ca", "upload", "test-root", root_path, "--replace"]);
    let listed = listed_certificates(&hub);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "test-root");
    assert_eq!(listed[0]["properties"]["subject"], "CN=Outpost Test Root");
    assert_eq!(listed[0]["properties"]["isVerified"], true);
    assert_eq!(
        listed[0]["properties"]["thumbprint"],
        tls::thumbprint_sha1_hex(root.certificate())
    );

    hub.cli_ok(&["device", "create", "ca-dev", "--x509-ca"]);
    hub.cli_ok(&["device", "create", "sas-dev"]);

    // A certificate the uploaded CA signed for this device: connect, send, report.
    let valid = device_files(directory.path(), &root, "ca-dev", "ca-dev");
    let accepted = connect(&hub, "ca-dev", &valid, "accepted");
    assert_eq!(accepted["authenticationType"], "certificateAuthority");
    let events = hub.cli_ok(&[
        "monitor",
        "events",
        "--from",
        "start",
        "--device",
        "ca-dev",
        "--max-messages",
        "1",
        "--idle-timeout",
        "30",
        "--output",
        "json",
    ]);
    let event: Value =
        serde_json::from_str(events.lines().next().unwrap_or_default()).expect("one JSON event");
    assert_eq!(event["body"], "from an x509 CA device");

    // Refused: another CA, another subject CN, a SAS device presenting a CA-signed certificate.
    let foreign = device_files(directory.path(), &stranger, "foreign", "ca-dev");
    let misnamed = device_files(directory.path(), &root, "misnamed", "someone-else");
    let for_sas = device_files(directory.path(), &root, "sas-dev", "sas-dev");
    for (device_id, files) in [
        ("ca-dev", &foreign),
        ("ca-dev", &misnamed),
        ("sas-dev", &for_sas),
    ] {
        let refused = connect(&hub, device_id, files, "refused");
        assert!(refused["refused"].is_string(), "{refused}");
    }

    // Once the CA is deleted, its devices can no longer connect.
    hub.cli_ok(&["ca", "delete", "test-root"]);
    assert!(listed_certificates(&hub).is_empty());
    let refused = connect(&hub, "ca-dev", &valid, "refused");
    assert!(refused["refused"].is_string(), "{refused}");
    let log = hub.log();
    for reason in [
        "does not verify against an uploaded CA certificate",
        "subject CN is \"someone-else\"",
        "sas-dev is registered for Sas authentication",
        "no CA certificate is uploaded",
    ] {
        assert!(log.contains(reason), "the hub log lacks {reason:?}:\n{log}");
    }
}
