//! Uploaded CA certificates against a real SQLite database, and devices authenticating with
//! certificates that chain to them, on a manual clock.

mod support;

use std::time::{Duration, SystemTime};

use expect_test::{Expect, expect};
use hub_core::{
    AuthenticationSpec, CaCertificate, CertificateName, DeviceCredential, IdentitySpec,
};
use iothub_types::Identity;
use support::*;
use tls::{CertificateAuthority, CertificateValidity, ClientCertificateRequest, IssuedCertificate};

fn check(lines: Vec<String>, expected: Expect) {
    expected.assert_eq(&lines.join("\n"));
}

/// Valid from `from` to `until`, in seconds relative to the fixture's start time.
fn validity(from: i64, until: i64) -> CertificateValidity {
    let at = |offset: i64| {
        let seconds = u64::try_from(start_time().timestamp() + offset).expect("after the epoch");
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    };
    CertificateValidity {
        not_before: at(from),
        not_after: at(until),
    }
}

fn authority(name: &str) -> CertificateAuthority {
    CertificateAuthority::generate(name, validity(-86_400, 365 * 86_400)).expect("CA")
}

fn client_certificate(
    authority: &CertificateAuthority,
    common_name: &str,
    days: i64,
) -> IssuedCertificate {
    authority
        .issue_client_certificate(&ClientCertificateRequest {
            common_name: common_name.to_owned(),
            validity: validity(-3600, days * 86_400),
        })
        .expect("client certificate")
}

fn name(text: &str) -> CertificateName {
    CertificateName::new(text).expect("certificate name")
}

fn render(certificate: &CaCertificate) -> String {
    format!(
        "{} etag_len={} subject={} thumbprint_len={} verified={} created={} updated={} expiry={}",
        certificate.name,
        certificate.etag.len(),
        certificate.subject,
        certificate.thumbprint.len(),
        certificate.is_verified,
        certificate.created.timestamp() - start_time().timestamp(),
        certificate.updated.timestamp() - start_time().timestamp(),
        certificate.expiry.to_rfc3339(),
    )
}

#[tokio::test]
async fn ca_certificates_are_stored_with_etags_and_survive_restarts() {
    let mut fixture = Fixture::new().await;
    let root = authority("Contoso Root");
    let other = authority("Fabrikam Root");
    let root_pem = root.certificate_pem();
    let mut lines = Vec::new();

    let hub = fixture.hub.clone();
    let first = hub.put_ca_certificate(&name("root"), &root_pem, None).await;
    lines.push(outcome(&first, render));
    let etag = first.expect("uploaded").etag;
    lines.push(outcome(
        &hub.put_ca_certificate(&name("root"), &root_pem, None).await,
        render,
    ));
    lines.push(outcome(
        &hub.put_ca_certificate(&name("root"), &other.certificate_pem(), Some("\"nope\""))
            .await,
        render,
    ));
    lines.push(outcome(
        &hub.put_ca_certificate(&name("missing"), &root_pem, Some("*"))
            .await,
        render,
    ));
    lines.push(outcome(
        &hub.put_ca_certificate(
            &name("leaf"),
            &client_certificate(&root, "x", 1).chain_pem(),
            None,
        )
        .await,
        render,
    ));
    fixture.clock.advance(chrono::Duration::seconds(60));
    let replaced = hub
        .put_ca_certificate(
            &name("root"),
            &other.certificate_pem(),
            Some(&format!("\"{etag}\"")),
        )
        .await;
    lines.push(outcome(&replaced, render));
    let replaced_etag = replaced.expect("replaced").etag;
    lines.push(format!("etag changed: {}", replaced_etag != etag));
    hub.put_ca_certificate(&name("second"), &root_pem, None)
        .await
        .expect("second");
    lines.push(format!(
        "names: {:?}",
        hub.ca_certificates()
            .await
            .expect("list")
            .iter()
            .map(|certificate| certificate.name.to_string())
            .collect::<Vec<_>>()
    ));

    fixture.restart().await;
    let hub = fixture.hub.clone();
    lines.push(outcome(&hub.ca_certificate(&name("root")).await, render));
    lines.push(outcome(
        &hub.delete_ca_certificate(&name("root"), &format!("\"{etag}\""))
            .await,
        |()| String::new(),
    ));
    lines.push(outcome(
        &hub.delete_ca_certificate(&name("root"), &replaced_etag)
            .await,
        |()| "deleted".to_owned(),
    ));
    lines.push(outcome(&hub.ca_certificate(&name("root")).await, render));
    lines.push(outcome(
        &hub.delete_ca_certificate(&name("root"), "*").await,
        |()| String::new(),
    ));
    lines.push(format!(
        "invalid name: {}",
        CertificateName::new("bad name").expect_err("invalid")
    ));
    // Etags are random: name them by their order of appearance.
    let lines = lines
        .into_iter()
        .map(|line| {
            line.replace(&etag, "<first etag>")
                .replace(&replaced_etag, "<second etag>")
        })
        .collect();
    check(
        lines,
        expect![[r#"
            ok root etag_len=12 subject=CN=Contoso Root thumbprint_len=40 verified=true created=0 updated=0 expiry=2028-01-15T08:00:00+00:00
            error PreconditionFailed 412: a CA certificate named root exists already; send If-Match with its etag (or *) to replace it
            error PreconditionFailed 412: the etag "nope" does not match the current etag <first etag>
            error NotFound 404: there is no CA certificate named missing
            error ArgumentInvalid 400: the certificate is not a CA certificate (its basic constraints lack cA=true)
            ok root etag_len=12 subject=CN=Fabrikam Root thumbprint_len=40 verified=true created=0 updated=60 expiry=2028-01-15T08:00:00+00:00
            etag changed: true
            names: ["root", "second"]
            ok root etag_len=12 subject=CN=Fabrikam Root thumbprint_len=40 verified=true created=0 updated=60 expiry=2028-01-15T08:00:00+00:00
            error PreconditionFailed 412: the etag "<first etag>" does not match the current etag <second etag>
            ok deleted
            error NotFound 404: there is no CA certificate named root
            error NotFound 404: there is no CA certificate named root
            invalid name: invalid certificate name "bad name": expected 1 to 64 ASCII letters, digits, '-', '.' or '_'"#]],
    );
}

#[tokio::test]
async fn devices_authenticate_by_chain_to_an_uploaded_ca() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let root = authority("Contoso Root");
    let other = authority("Fabrikam Root");
    hub.put_ca_certificate(&name("contoso"), &root.certificate_pem(), None)
        .await
        .expect("upload");
    let ca_device = device_identity("ca-dev");
    let sas_device = device_identity("sas-dev");
    let self_signed_device = device_identity("ss-dev");
    let certificate_authority = IdentitySpec {
        authentication: Some(AuthenticationSpec::CertificateAuthority),
        ..IdentitySpec::default()
    };
    hub.put_identity(&ca_device, certificate_authority, None)
        .await
        .expect("CA device");
    hub.put_identity(&sas_device, IdentitySpec::default(), None)
        .await
        .expect("SAS device");
    let self_signed = tls::self_signed_client_certificate(&ClientCertificateRequest {
        common_name: "ss-dev".to_owned(),
        validity: validity(-3600, 86_400),
    })
    .expect("self-signed certificate");
    let thumbprint = tls::thumbprint_sha256_hex(self_signed.end_entity());
    let self_signed_spec = IdentitySpec {
        authentication: Some(AuthenticationSpec::SelfSigned {
            primary_thumbprint: Some(thumbprint.clone()),
            secondary_thumbprint: None,
        }),
        ..IdentitySpec::default()
    };
    hub.put_identity(&self_signed_device, self_signed_spec, None)
        .await
        .expect("self-signed device");

    let valid = client_certificate(&root, "ca-dev", 1);
    let cases: Vec<(&str, &Identity, IssuedCertificate)> = vec![
        ("valid chain", &ca_device, valid.clone()),
        (
            "other CA",
            &ca_device,
            client_certificate(&other, "ca-dev", 1),
        ),
        (
            "wrong CN",
            &ca_device,
            client_certificate(&root, "sas-dev", 1),
        ),
        (
            "SAS device with a CA certificate",
            &sas_device,
            client_certificate(&root, "sas-dev", 1),
        ),
        (
            "self-signed device by chain",
            &self_signed_device,
            self_signed.clone(),
        ),
        (
            "self-signed device with a CA certificate",
            &self_signed_device,
            client_certificate(&root, "ss-dev", 1),
        ),
    ];
    let mut lines = Vec::new();
    let authenticate = |identity: &Identity, certificate: &IssuedCertificate| {
        let identity = identity.clone();
        let chain = certificate.chain.clone();
        async move {
            let credential = DeviceCredential::X509Chain {
                end_entity: &chain[0],
                intermediates: &chain[1..],
            };
            match hub.authenticate_device(&identity, credential).await {
                Ok(device) => format!("ok {} {:?}", device.identity, device.method),
                Err(error) => error.to_string(),
            }
        }
    };
    for (case, identity, certificate) in &cases {
        lines.push(format!(
            "{case}: {}",
            authenticate(identity, certificate).await
        ));
    }
    let sha1 = tls::thumbprint_sha1_hex(valid.end_entity());
    let sha256 = tls::thumbprint_sha256_hex(valid.end_entity());
    let thumbprints_only = DeviceCredential::X509Thumbprints {
        sha1: &sha1,
        sha256: &sha256,
    };
    lines.push(format!(
        "CA device by thumbprints: {}",
        hub.authenticate_device(&ca_device, thumbprints_only)
            .await
            .map_or_else(|error| error.to_string(), |_| "ok".to_owned())
    ));
    let some_key = format!("{}=", "A".repeat(43));
    let token = device_token(&ca_device, &some_key, expiry_in(3600));
    lines.push(format!(
        "CA device by SAS token: {}",
        hub.authenticate_device(&ca_device, DeviceCredential::SasToken(&token))
            .await
            .map_or_else(|error| error.to_string(), |_| "ok".to_owned())
    ));
    fixture.clock.advance(chrono::Duration::days(2));
    lines.push(format!(
        "expired leaf: {}",
        authenticate(&ca_device, &valid).await
    ));
    fixture.clock.advance(chrono::Duration::days(-2));
    hub.delete_ca_certificate(&name("contoso"), "*")
        .await
        .expect("delete");
    lines.push(format!(
        "CA deleted: {}",
        authenticate(&ca_device, &valid).await
    ));
    check(
        lines,
        expect![[r#"
        valid chain: ok ca-dev X509CertificateAuthority
        other CA: not authorized: ca-dev: the client certificate does not verify against an uploaded CA certificate: rustls: invalid peer certificate: UnknownIssuer
        wrong CN: not authorized: ca-dev: the client certificate's subject CN is "sas-dev", expected "ca-dev"
        SAS device with a CA certificate: not authorized: sas-dev is registered for Sas authentication, not a self-signed X.509 certificate
        self-signed device by chain: ok ss-dev X509SelfSigned
        self-signed device with a CA certificate: not authorized: the client certificate's thumbprint is not registered for ss-dev
        CA device by thumbprints: not authorized: ca-dev is registered for CertificateAuthority authentication, not a self-signed X.509 certificate
        CA device by SAS token: not authorized: ca-dev does not use symmetric key authentication
        expired leaf: not authorized: ca-dev: the client certificate does not verify against an uploaded CA certificate: rustls: invalid peer certificate: certificate expired: verification time 1800172800 (UNIX), but certificate is not valid after 1800086400 (86400 seconds ago)
        CA deleted: not authorized: ca-dev: no CA certificate is uploaded"#]],
    );
}
