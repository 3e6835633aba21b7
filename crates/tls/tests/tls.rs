//! Black-box tests of the TLS crate: issued certificates, PEM files, thumbprints, chain checks and
//! real handshakes over an in-memory duplex stream.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use expect_test::{Expect, expect};
use tls::{
    CertificateAuthority, CertificateValidity, ClientCertificateRequest, ClientCertificates,
    FileAccess, IssuedCertificate, ReloadableCertificateResolver, ServerCertificateRequest, rustls,
    tokio_rustls,
};

fn test_ca() -> CertificateAuthority {
    CertificateAuthority::generate("Outpost Test CA", CertificateValidity::days_from_now(3650))
        .unwrap()
}

fn server_certificate(ca: &CertificateAuthority) -> IssuedCertificate {
    ca.issue_server_certificate(&ServerCertificateRequest {
        common_name: "localhost".to_owned(),
        dns_names: vec!["localhost".to_owned(), "hub.example".to_owned()],
        ip_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        validity: CertificateValidity::days_from_now(365),
    })
    .unwrap()
}

fn client_request(common_name: &str) -> ClientCertificateRequest {
    ClientCertificateRequest {
        common_name: common_name.to_owned(),
        validity: CertificateValidity::days_from_now(30),
    }
}

/// Summarizes a certificate without the fields that change on every run.
fn check(certificate_der: &[u8], expected: Expect) {
    let summary = tls::summarize_certificate(certificate_der).unwrap();
    let validity_days = (summary.not_after_unix_secs - summary.not_before_unix_secs) / 86_400;
    let actual = format!(
        "subject={:?} issuer={:?} self_issued={} is_ca={} validity_days={}",
        summary.subject_common_name,
        summary.issuer_common_name,
        summary.self_issued,
        summary.is_ca,
        validity_days
    );
    expected.assert_eq(&actual);
}

#[test]
fn issued_certificates_have_expected_names_and_roles() {
    let ca = test_ca();
    check(
        ca.certificate(),
        expect![[
            r#"subject=Some("Outpost Test CA") issuer=Some("Outpost Test CA") self_issued=true is_ca=true validity_days=3650"#
        ]],
    );
    check(
        server_certificate(&ca).end_entity(),
        expect![[
            r#"subject=Some("localhost") issuer=Some("Outpost Test CA") self_issued=false is_ca=false validity_days=365"#
        ]],
    );
    check(
        ca.issue_client_certificate(&client_request("device-1"))
            .unwrap()
            .end_entity(),
        expect![[
            r#"subject=Some("device-1") issuer=Some("Outpost Test CA") self_issued=false is_ca=false validity_days=30"#
        ]],
    );
    check(
        tls::self_signed_client_certificate(&client_request("device-2"))
            .unwrap()
            .end_entity(),
        expect![[
            r#"subject=Some("device-2") issuer=Some("device-2") self_issued=true is_ca=false validity_days=30"#
        ]],
    );
}

#[test]
fn thumbprints_are_upper_case_hex_of_the_der_bytes() {
    // Known digests of the empty input.
    expect!["DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"].assert_eq(&tls::thumbprint_sha1_hex(b""));
    expect!["E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"]
        .assert_eq(&tls::thumbprint_sha256_hex(b""));
    let device = tls::self_signed_client_certificate(&client_request("device-3")).unwrap();
    let thumbprint = tls::thumbprint_sha1_hex(device.end_entity());
    assert_eq!(thumbprint.len(), 40);
    assert!(
        thumbprint
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
}

#[test]
fn ca_survives_a_round_trip_through_pem_files() {
    let directory = tempfile::tempdir().unwrap();
    let certificate_path = directory.path().join("ca.pem");
    let key_path = directory.path().join("ca-key.pem");
    let ca = test_ca();
    tls::write_pem_file(
        &certificate_path,
        &ca.certificate_pem(),
        FileAccess::WorldReadable,
    )
    .unwrap();
    tls::write_pem_file(&key_path, &ca.private_key_pem(), FileAccess::OwnerOnly).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let reloaded = CertificateAuthority::from_pem(
        &std::fs::read(&certificate_path).unwrap(),
        &std::fs::read(&key_path).unwrap(),
    )
    .unwrap();
    assert_eq!(reloaded.certificate(), ca.certificate());
    assert_eq!(
        tls::read_certificates_file(&certificate_path).unwrap(),
        vec![ca.certificate().clone()]
    );

    // A certificate issued by the reloaded CA chains to the original CA certificate.
    let device = reloaded
        .issue_client_certificate(&client_request("device-4"))
        .unwrap();
    tls::verify_client_chain(
        device.end_entity(),
        &[],
        &[ca.certificate().clone()],
        tls::UnixTime::now(),
    )
    .unwrap();

    // Issued material also survives PEM encoding.
    let chain = tls::certificates_from_pem(device.chain_pem().as_bytes(), "chain").unwrap();
    assert_eq!(chain, device.chain);
    let key = tls::private_key_from_pem(device.private_key_pem().as_bytes(), "key").unwrap();
    assert_eq!(key.secret_der(), device.private_key.secret_der());
}

#[test]
fn pem_errors_name_their_origin() {
    let missing = tls::read_certificates_file(std::path::Path::new("/nonexistent/ca.pem"));
    expect!["reading /nonexistent/ca.pem: No such file or directory (os error 2)"]
        .assert_eq(&missing.unwrap_err().to_string());
    expect!["no certificate found in empty.pem"].assert_eq(
        &tls::certificates_from_pem(b"", "empty.pem")
            .unwrap_err()
            .to_string(),
    );
    expect!["no private key found in cert-only.pem"].assert_eq(
        &tls::private_key_from_pem(test_ca().certificate_pem().as_bytes(), "cert-only.pem")
            .unwrap_err()
            .to_string(),
    );
}

#[test]
fn client_chain_verification_accepts_only_the_trusted_ca() {
    let ca = test_ca();
    let other_ca = test_ca();
    let now = tls::UnixTime::now();
    let signed = ca
        .issue_client_certificate(&client_request("device-5"))
        .unwrap();
    let self_signed = tls::self_signed_client_certificate(&client_request("device-5")).unwrap();
    let trusted = [ca.certificate().clone()];
    assert!(tls::verify_client_chain(signed.end_entity(), &[], &trusted, now).is_ok());
    assert!(tls::verify_client_chain(self_signed.end_entity(), &[], &trusted, now).is_err());
    assert!(
        tls::verify_client_chain(
            signed.end_entity(),
            &[],
            &[other_ca.certificate().clone()],
            now
        )
        .is_err()
    );
    // A certificate that has expired is refused.
    let far_future = tls::UnixTime::since_unix_epoch(std::time::Duration::from_secs(4_000_000_000));
    assert!(tls::verify_client_chain(signed.end_entity(), &[], &trusted, far_future).is_err());
}

/// A CA valid from `days_before` days ago until `days_after` days from now.
fn ca_around_now(common_name: &str, days_before: u32, days_after: u32) -> CertificateAuthority {
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    CertificateAuthority::generate(
        common_name,
        CertificateValidity {
            not_before: now - days_before * day,
            not_after: now + days_after * day,
        },
    )
    .unwrap()
}

#[test]
fn nothing_issued_outlives_its_ca() {
    let ca = ca_around_now("short-lived CA", 1, 10);
    let ca_end = tls::summarize_certificate(ca.certificate())
        .unwrap()
        .not_after_unix_secs;
    let end = |issued: &IssuedCertificate| {
        tls::summarize_certificate(issued.end_entity())
            .unwrap()
            .not_after_unix_secs
    };
    let long = CertificateValidity::days_from_now(90);
    let server = ca
        .issue_server_certificate(&ServerCertificateRequest {
            common_name: "edge".to_owned(),
            dns_names: vec!["edge".to_owned()],
            ip_addresses: Vec::new(),
            validity: long,
        })
        .unwrap();
    assert_eq!(end(&server), ca_end);
    let client = |ca: &CertificateAuthority, validity| {
        ca.issue_client_certificate(&ClientCertificateRequest {
            validity,
            ..client_request("device")
        })
        .unwrap()
    };
    assert_eq!(end(&client(&ca, long)), ca_end);
    // A shorter request is kept as asked.
    let short = client(&ca, CertificateValidity::days_from_now(2));
    assert!(end(&short) < ca_end - 7 * 86_400);
    // The same holds for a CA loaded from its files.
    let loaded = CertificateAuthority::from_pem(
        ca.certificate_pem().as_bytes(),
        ca.private_key_pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(end(&client(&loaded, long)), ca_end);
}

#[test]
fn renewal_is_due_two_thirds_into_the_lifetime() {
    let day = std::time::Duration::from_secs(86_400);
    let start = std::time::SystemTime::UNIX_EPOCH + 1_000 * day;
    assert_eq!(tls::renewal_time(start, start + 90 * day), start + 60 * day);
    assert_eq!(tls::renewal_time(start, start + 3 * day), start + 2 * day);
    assert_eq!(tls::renewal_time(start, start - day), start);
    let ca = CertificateAuthority::generate(
        "renewal time",
        CertificateValidity {
            not_before: start,
            not_after: start + 90 * day,
        },
    )
    .unwrap();
    assert_eq!(
        tls::certificate_renewal_time(ca.certificate()).unwrap(),
        start + 60 * day
    );
}

#[test]
fn a_renewed_ca_keeps_its_name_and_key_and_both_generations_chain() {
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let old = ca_around_now("Outpost edge CA renewal", 60, 30);
    let renewed = old
        .renewed(CertificateValidity {
            not_before: now,
            not_after: now + 90 * day,
        })
        .unwrap();
    assert_ne!(renewed.certificate(), old.certificate());
    assert_eq!(renewed.private_key_pem(), old.private_key_pem());
    let old_summary = tls::summarize_certificate(old.certificate()).unwrap();
    let new_summary = tls::summarize_certificate(renewed.certificate()).unwrap();
    assert_eq!(
        new_summary.subject_common_name.as_deref(),
        Some("Outpost edge CA renewal")
    );
    assert!(new_summary.is_ca && new_summary.self_issued);
    assert!(new_summary.not_after_unix_secs > old_summary.not_after_unix_secs + 59 * 86_400);

    // What either generation issued verifies against the other's certificate: the issuer name and
    // the signing key did not change.
    let before = old
        .issue_client_certificate(&client_request("device-before"))
        .unwrap();
    let after = renewed
        .issue_client_certificate(&client_request("device-after"))
        .unwrap();
    let at = tls::UnixTime::now();
    for issued in [&before, &after] {
        for root in [old.certificate(), renewed.certificate()] {
            tls::verify_client_chain(issued.end_entity(), &[], std::slice::from_ref(root), at)
                .unwrap();
        }
    }
    // Another CA with the same name but its own key is no substitute.
    let impostor = CertificateAuthority::generate(
        "Outpost edge CA renewal",
        CertificateValidity::days_from_now(90),
    )
    .unwrap();
    assert!(
        tls::verify_client_chain(
            after.end_entity(),
            &[],
            &[impostor.certificate().clone()],
            at
        )
        .is_err()
    );
    // The renewed CA also survives PEM files.
    let reloaded = CertificateAuthority::from_pem(
        renewed.certificate_pem().as_bytes(),
        renewed.private_key_pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(reloaded.certificate(), renewed.certificate());
}

struct Handshake {
    protocol_version: rustls::ProtocolVersion,
    server_certificate: tls::CertificateDer<'static>,
    client_certificate: Option<tls::CertificateDer<'static>>,
}

async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
    server_name: &str,
) -> Result<Handshake, std::io::Error> {
    let (client_stream, server_stream) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let server_name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let (client_result, server_result) = tokio::join!(
        connector.connect(server_name, client_stream),
        acceptor.accept(server_stream)
    );
    let client_connection = client_result?;
    let server_connection = server_result?;
    let (_, client_state) = client_connection.get_ref();
    let (_, server_state) = server_connection.get_ref();
    Ok(Handshake {
        protocol_version: client_state.protocol_version().unwrap(),
        server_certificate: client_state.peer_certificates().unwrap()[0].clone(),
        client_certificate: server_state
            .peer_certificates()
            .map(|certificates| certificates[0].clone()),
    })
}

fn tls12_only_client(
    ca: &CertificateAuthority,
    identity: Option<&IssuedCertificate>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.certificate().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.private_key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

#[tokio::test]
async fn server_speaks_tls12_and_tls13_with_optional_client_certificates() {
    let ca = test_ca();
    let resolver = Arc::new(ReloadableCertificateResolver::new(&server_certificate(&ca)).unwrap());
    let server =
        Arc::new(tls::server_config(resolver, ClientCertificates::AcceptAnyOptional).unwrap());

    // A TLS 1.2-only client without a certificate, as the Python SDK with a SAS token.
    let sas_client = handshake(server.clone(), tls12_only_client(&ca, None), "localhost")
        .await
        .unwrap();
    assert_eq!(
        sas_client.protocol_version,
        rustls::ProtocolVersion::TLSv1_2
    );
    assert_eq!(sas_client.client_certificate, None);

    // A TLS 1.2 client with a self-signed certificate, as an X.509 thumbprint device.
    let device = tls::self_signed_client_certificate(&client_request("device-6")).unwrap();
    let x509_client = handshake(
        server.clone(),
        tls12_only_client(&ca, Some(&device)),
        "localhost",
    )
    .await
    .unwrap();
    assert_eq!(
        x509_client.client_certificate.as_ref(),
        Some(device.end_entity())
    );

    // A default client negotiates TLS 1.3, reaches the server by IP literal, and presents a
    // CA-signed certificate.
    let signed = ca
        .issue_client_certificate(&client_request("device-7"))
        .unwrap();
    let client = tls::client_config_with_certificate(&[ca.certificate().clone()], &signed).unwrap();
    let tls13_client = handshake(server.clone(), client, "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(
        tls13_client.protocol_version,
        rustls::ProtocolVersion::TLSv1_3
    );
    assert_eq!(
        tls13_client.client_certificate.as_ref(),
        Some(signed.end_entity())
    );

    // A name outside the certificate is refused by the client.
    let client = tls::client_config(&[ca.certificate().clone()]).unwrap();
    assert!(
        handshake(server, client, "elsewhere.example")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn server_without_client_auth_never_sees_a_certificate() {
    let ca = test_ca();
    let resolver = Arc::new(ReloadableCertificateResolver::new(&server_certificate(&ca)).unwrap());
    let server = Arc::new(tls::server_config(resolver, ClientCertificates::NotRequested).unwrap());
    let device = tls::self_signed_client_certificate(&client_request("device-8")).unwrap();
    let result = handshake(server, tls12_only_client(&ca, Some(&device)), "localhost")
        .await
        .unwrap();
    assert_eq!(result.client_certificate, None);
}

#[tokio::test]
async fn replaced_certificate_is_served_to_new_handshakes() {
    let ca = test_ca();
    let first = server_certificate(&ca);
    let resolver = Arc::new(ReloadableCertificateResolver::new(&first).unwrap());
    let server =
        Arc::new(tls::server_config(resolver.clone(), ClientCertificates::NotRequested).unwrap());
    let client = || tls::client_config(&[ca.certificate().clone()]).unwrap();

    let before = handshake(server.clone(), client(), "localhost")
        .await
        .unwrap();
    assert_eq!(&before.server_certificate, first.end_entity());

    let renewed = server_certificate(&ca);
    resolver.replace(&renewed).unwrap();
    assert_eq!(&resolver.current_end_entity(), renewed.end_entity());
    let after = handshake(server, client(), "localhost").await.unwrap();
    assert_eq!(&after.server_certificate, renewed.end_entity());

    // A key that does not match the certificate is refused and the old certificate stays.
    let mismatched = server_certificate(&ca);
    assert!(
        resolver
            .replace_parts(renewed.chain.clone(), mismatched.private_key)
            .is_err()
    );
    assert_eq!(&resolver.current_end_entity(), renewed.end_entity());
}
