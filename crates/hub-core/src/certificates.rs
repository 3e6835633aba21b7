//! Uploaded CA certificates (IoT Hub's `certificates` of X.509 CA authentication) and the chain
//! check of devices registered with `authentication.type = certificateAuthority`.
//!
//! A device of that type connects with a TLS client certificate whose chain verifies, at the
//! hub's current time, to one of the uploaded CA certificates, and whose subject common name is
//! its device id (`deviceId/moduleId` for a module). Uploaded certificates are marked verified at
//! once: IoT Hub's proof-of-possession flow (a verification code signed into a certificate by the
//! CA's key) is not implemented, so whoever holds a policy with every right vouches for a CA by
//! uploading it. Revocation (CRL, OCSP) is not checked.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use iothub_types::Identity;
use serde::{Deserialize, Serialize};
use tls::{CertificateDer, UnixTime};
use twin::IfMatch;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::auth::DeviceAuthError;
use crate::error::HubError;
use crate::hub::Hub;

/// The longest certificate name, as in IoT Hub.
const MAX_CERTIFICATE_NAME_LENGTH: usize = 64;

/// The name of an uploaded CA certificate: 1 to 64 ASCII letters, digits, `-`, `.` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertificateName(String);

impl CertificateName {
    /// Validates a certificate name.
    pub fn new(candidate: &str) -> Result<CertificateName, HubError> {
        let valid_character =
            |character: char| character.is_ascii_alphanumeric() || "-._".contains(character);
        if candidate.is_empty()
            || candidate.len() > MAX_CERTIFICATE_NAME_LENGTH
            || !candidate.chars().all(valid_character)
        {
            return Err(HubError::InvalidArgument(format!(
                "invalid certificate name {candidate:?}: expected 1 to {MAX_CERTIFICATE_NAME_LENGTH} \
                 ASCII letters, digits, '-', '.' or '_'"
            )));
        }
        Ok(CertificateName(candidate.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CertificateName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl TryFrom<String> for CertificateName {
    type Error = HubError;

    fn try_from(text: String) -> Result<CertificateName, HubError> {
        CertificateName::new(&text)
    }
}

impl From<CertificateName> for String {
    fn from(name: CertificateName) -> String {
        name.0
    }
}

/// An uploaded CA certificate as the hub stores it (serialized as JSON in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaCertificate {
    /// The name it was uploaded under.
    pub name: CertificateName,
    /// Changes on every write.
    pub etag: String,
    /// The certificate as one PEM block.
    pub certificate_pem: String,
    /// The subject distinguished name, e.g. `CN=Contoso Root CA, O=Contoso`.
    pub subject: String,
    /// The SHA-1 thumbprint, upper-case hex.
    pub thumbprint: String,
    /// Whether devices may chain to it. Always `true`: uploads are trusted (see the module docs).
    pub is_verified: bool,
    /// When it was first uploaded.
    #[serde(with = "time_serde")]
    pub created: DateTime<Utc>,
    /// When it was last uploaded.
    #[serde(with = "time_serde")]
    pub updated: DateTime<Utc>,
    /// The end of its validity (`notAfter`).
    #[serde(with = "time_serde")]
    pub expiry: DateTime<Utc>,
}

impl CaCertificate {
    /// The certificate in DER.
    pub fn certificate_der(&self) -> Result<CertificateDer<'static>, HubError> {
        tls::certificates_from_pem(self.certificate_pem.as_bytes(), "a stored CA certificate")
            .map_err(HubError::storage)?
            .into_iter()
            .next()
            .ok_or_else(|| HubError::storage("a stored CA certificate holds no certificate"))
    }
}

/// What an upload says about the certificate, before it gets a name, an etag and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedCaCertificate {
    pub(crate) certificate_pem: String,
    pub(crate) subject: String,
    pub(crate) thumbprint: String,
    pub(crate) expiry: DateTime<Utc>,
}

/// Parses an uploaded CA certificate: one PEM `CERTIFICATE` block, or base64 DER. It must be a
/// CA (basic constraints `cA`) and valid at `now`.
pub(crate) fn parse_ca_certificate(
    text: &str,
    now: DateTime<Utc>,
) -> Result<ParsedCaCertificate, HubError> {
    let invalid = |reason: String| HubError::InvalidArgument(reason);
    let der = if text.contains("-----BEGIN") {
        let mut certificates = tls::certificates_from_pem(text.as_bytes(), "the certificate")
            .map_err(|error| invalid(error.to_string()))?;
        if certificates.len() != 1 {
            return Err(invalid(format!(
                "the certificate text holds {} certificates; upload one CA certificate per name",
                certificates.len()
            )));
        }
        certificates.remove(0)
    } else {
        let compact: String = text.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|error| {
                invalid(format!(
                    "the certificate is neither PEM nor base64 DER: {error}"
                ))
            })?;
        CertificateDer::from(bytes)
    };
    let summary = tls::summarize_certificate(&der).map_err(|error| invalid(error.to_string()))?;
    if !summary.is_ca {
        return Err(invalid(
            "the certificate is not a CA certificate (its basic constraints lack cA=true)"
                .to_owned(),
        ));
    }
    let expiry = DateTime::from_timestamp(summary.not_after_unix_secs, 0)
        .ok_or_else(|| invalid("the certificate's notAfter is out of range".to_owned()))?;
    if expiry <= now {
        return Err(invalid(format!(
            "the certificate expired at {}",
            expiry.to_rfc3339()
        )));
    }
    let (_remainder, parsed) =
        X509Certificate::from_der(&der).map_err(|error| invalid(error.to_string()))?;
    Ok(ParsedCaCertificate {
        certificate_pem: tls::certificates_to_pem(std::slice::from_ref(&der)),
        subject: parsed.subject().to_string(),
        thumbprint: tls::thumbprint_sha1_hex(&der),
        expiry,
    })
}

/// Checks a device's presented chain against the uploaded CA certificates `roots` at `now`, and
/// its subject common name against the identity. Returns why it is refused.
pub(crate) fn verify_device_chain(
    identity: &Identity,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &[CertificateDer<'static>],
    now: DateTime<Utc>,
) -> Result<(), String> {
    if roots.is_empty() {
        return Err("no CA certificate is uploaded".to_owned());
    }
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    tls::verify_client_chain(
        end_entity,
        intermediates,
        roots,
        UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
    )
    .map_err(|error| {
        format!(
            "the client certificate does not verify against an uploaded CA certificate: {error}"
        )
    })?;
    let summary = tls::summarize_certificate(end_entity).map_err(|error| error.to_string())?;
    let expected = identity.to_string();
    match summary.subject_common_name {
        Some(common_name) if common_name == expected => Ok(()),
        Some(common_name) => Err(format!(
            "the client certificate's subject CN is {common_name:?}, expected {expected:?}"
        )),
        None => Err(format!(
            "the client certificate has no subject CN, expected {expected:?}"
        )),
    }
}

/// A fresh etag: base64 of 8 random bytes, the length IoT Hub's certificate etags have.
fn new_certificate_etag() -> String {
    let random = uuid::Uuid::new_v4();
    base64::engine::general_purpose::STANDARD.encode(&random.as_bytes()[..8])
}

impl Hub {
    /// Every uploaded CA certificate, by name.
    pub async fn ca_certificates(&self) -> Result<Vec<CaCertificate>, HubError> {
        self.store.list_ca_certificates().await
    }

    /// One uploaded CA certificate.
    pub async fn ca_certificate(&self, name: &CertificateName) -> Result<CaCertificate, HubError> {
        self.store
            .get_ca_certificate(name)
            .await?
            .ok_or_else(|| HubError::CertificateNotFound {
                name: name.to_string(),
            })
    }

    /// Uploads a CA certificate (`certificate_text`: PEM or base64 DER). Without `if_match` it
    /// creates the name (412 when it exists); with `if_match` (an etag or `*`) it replaces the
    /// certificate of an existing name (404 when missing, 412 when the etag differs).
    pub async fn put_ca_certificate(
        &self,
        name: &CertificateName,
        certificate_text: &str,
        if_match: Option<&str>,
    ) -> Result<CaCertificate, HubError> {
        let now = self.clock.now();
        let parsed = parse_ca_certificate(certificate_text, now)?;
        let current = self.store.get_ca_certificate(name).await?;
        let (created, expected_etag) = match (&current, if_match) {
            (None, None) => (now, None),
            (Some(_), None) => {
                return Err(HubError::CertificateAlreadyExists {
                    name: name.to_string(),
                });
            }
            (None, Some(_)) => {
                return Err(HubError::CertificateNotFound {
                    name: name.to_string(),
                });
            }
            (Some(current), Some(if_match)) => {
                check_if_match(if_match, &current.etag)?;
                (current.created, Some(current.etag.as_str()))
            }
        };
        let certificate = CaCertificate {
            name: name.clone(),
            etag: new_certificate_etag(),
            certificate_pem: parsed.certificate_pem,
            subject: parsed.subject,
            thumbprint: parsed.thumbprint,
            is_verified: true,
            created,
            updated: now,
            expiry: parsed.expiry,
        };
        if self
            .store
            .put_ca_certificate(&certificate, expected_etag)
            .await?
        {
            return Ok(certificate);
        }
        // Someone else wrote in between.
        match expected_etag {
            None => Err(HubError::CertificateAlreadyExists {
                name: name.to_string(),
            }),
            Some(etag) => Err(HubError::PreconditionFailed {
                given: if_match.unwrap_or(etag).to_owned(),
                current: "(changed meanwhile)".to_owned(),
            }),
        }
    }

    /// Deletes an uploaded CA certificate when `if_match` (an etag or `*`) matches. Devices
    /// chaining only to it can no longer connect; live connections are not dropped.
    pub async fn delete_ca_certificate(
        &self,
        name: &CertificateName,
        if_match: &str,
    ) -> Result<(), HubError> {
        let current = self.ca_certificate(name).await?;
        check_if_match(if_match, &current.etag)?;
        if self
            .store
            .delete_ca_certificate(name, &current.etag)
            .await?
        {
            Ok(())
        } else {
            Err(HubError::PreconditionFailed {
                given: if_match.to_owned(),
                current: "(changed meanwhile)".to_owned(),
            })
        }
    }

    /// Authenticates a `certificateAuthority` identity by its presented chain.
    pub(crate) async fn verify_certificate_authority_chain(
        &self,
        identity: &Identity,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), DeviceAuthError> {
        let unavailable = |error: HubError| DeviceAuthError::Unavailable(error.to_string());
        let roots = self
            .store
            .list_ca_certificates()
            .await
            .map_err(unavailable)?
            .iter()
            .filter(|certificate| certificate.is_verified)
            .map(CaCertificate::certificate_der)
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        verify_device_chain(
            identity,
            end_entity,
            intermediates,
            &roots,
            self.clock.now(),
        )
        .map_err(|reason| DeviceAuthError::NotAuthorized(format!("{identity}: {reason}")))
    }
}

/// Timestamps as microseconds since the epoch in the stored JSON (chrono has no serde here).
mod time_serde {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(time.timestamp_micros())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        DateTime::from_timestamp_micros(i64::deserialize(deserializer)?)
            .ok_or_else(|| serde::de::Error::custom("timestamp out of range"))
    }
}

fn check_if_match(if_match: &str, current_etag: &str) -> Result<(), HubError> {
    if IfMatch::parse(if_match).matches(current_etag) {
        Ok(())
    } else {
        Err(HubError::PreconditionFailed {
            given: if_match.to_owned(),
            current: current_etag.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use expect_test::{Expect, expect};
    use tls::{CertificateAuthority, CertificateValidity, ClientCertificateRequest};

    use super::*;

    /// The instant the tests check at.
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
    }

    fn system_time(offset_secs: i64) -> SystemTime {
        let seconds = u64::try_from(now().timestamp() + offset_secs).expect("after the epoch");
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// Valid from `from` to `until`, in seconds relative to [`now`].
    fn validity(from: i64, until: i64) -> CertificateValidity {
        CertificateValidity {
            not_before: system_time(from),
            not_after: system_time(until),
        }
    }

    fn authority(name: &str) -> CertificateAuthority {
        CertificateAuthority::generate(name, validity(-86_400, 86_400 * 365)).expect("CA")
    }

    fn device_certificate(
        authority: &CertificateAuthority,
        common_name: &str,
        from: i64,
        until: i64,
    ) -> CertificateDer<'static> {
        let request = ClientCertificateRequest {
            common_name: common_name.to_owned(),
            validity: validity(from, until),
        };
        authority
            .issue_client_certificate(&request)
            .expect("client certificate")
            .chain
            .remove(0)
    }

    fn check(cases: Vec<(&str, Result<(), String>)>, expected: Expect) {
        let lines: Vec<String> = cases
            .into_iter()
            .map(|(name, outcome)| match outcome {
                Ok(()) => format!("{name}: ok"),
                Err(reason) => format!("{name}: {reason}"),
            })
            .collect();
        expected.assert_eq(&lines.join("\n"));
    }

    #[test]
    fn device_chains_verify_against_uploaded_authorities_and_device_ids() {
        let uploaded = authority("Uploaded Root");
        let other = authority("Other Root");
        let roots = vec![uploaded.certificate().clone()];
        let device: Identity = "dev1".parse().expect("identity");
        let module: Identity = "dev1/m1".parse().expect("identity");
        let verify =
            |identity: &Identity, leaf: &CertificateDer<'_>, roots: &[CertificateDer<'static>]| {
                verify_device_chain(identity, leaf, &[], roots, now())
            };
        let valid = device_certificate(&uploaded, "dev1", -3600, 86_400);
        check(
            vec![
                ("valid chain", verify(&device, &valid, &roots)),
                (
                    "module CN",
                    verify(
                        &module,
                        &device_certificate(&uploaded, "dev1/m1", -3600, 86_400),
                        &roots,
                    ),
                ),
                (
                    "other CA",
                    verify(
                        &device,
                        &device_certificate(&other, "dev1", -3600, 86_400),
                        &roots,
                    ),
                ),
                (
                    "wrong CN",
                    verify(
                        &device,
                        &device_certificate(&uploaded, "dev2", -3600, 86_400),
                        &roots,
                    ),
                ),
                (
                    "expired leaf",
                    verify(
                        &device,
                        &device_certificate(&uploaded, "dev1", -7200, -60),
                        &roots,
                    ),
                ),
                (
                    "not yet valid leaf",
                    verify(
                        &device,
                        &device_certificate(&uploaded, "dev1", 600, 86_400),
                        &roots,
                    ),
                ),
                (
                    "CA as leaf",
                    verify(&device, uploaded.certificate(), &roots),
                ),
                ("nothing uploaded", verify(&device, &valid, &[])),
            ],
            expect![[r#"
                valid chain: ok
                module CN: ok
                other CA: the client certificate does not verify against an uploaded CA certificate: rustls: invalid peer certificate: UnknownIssuer
                wrong CN: the client certificate's subject CN is "dev2", expected "dev1"
                expired leaf: the client certificate does not verify against an uploaded CA certificate: rustls: invalid peer certificate: certificate expired: verification time 1800000000 (UNIX), but certificate is not valid after 1799999940 (60 seconds ago)
                not yet valid leaf: the client certificate does not verify against an uploaded CA certificate: rustls: invalid peer certificate: certificate not valid yet: verification time 1800000000 (UNIX), but certificate is not valid before 1800000600 (600 seconds in future)
                CA as leaf: the client certificate does not verify against an uploaded CA certificate: rustls: invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))
                nothing uploaded: no CA certificate is uploaded"#]],
        );
    }

    #[test]
    fn uploads_must_be_one_valid_ca_certificate() {
        let root = authority("Contoso Root");
        let pem = root.certificate_pem();
        let base64_der = base64::engine::general_purpose::STANDARD.encode(root.certificate());
        let leaf = root
            .issue_client_certificate(&ClientCertificateRequest {
                common_name: "leaf".to_owned(),
                validity: validity(-60, 3600),
            })
            .expect("leaf");
        let expired = CertificateAuthority::generate("Old Root", validity(-7200, -60)).expect("CA");
        let render = |text: &str| match parse_ca_certificate(text, now()) {
            Ok(parsed) => format!(
                "ok subject={} thumbprint_len={} expiry={} same_pem={}",
                parsed.subject,
                parsed.thumbprint.len(),
                parsed.expiry.to_rfc3339(),
                parsed.certificate_pem == pem
            ),
            Err(error) => error.to_string(),
        };
        let lines = [
            ("pem", render(&pem)),
            ("base64 der", render(&base64_der)),
            ("two certificates", render(&format!("{pem}{pem}"))),
            ("leaf", render(&leaf.chain_pem())),
            ("expired", render(&expired.certificate_pem())),
            ("garbage", render("not a certificate")),
        ]
        .map(|(name, line)| format!("{name}: {line}"));
        expect![[r#"
            pem: ok subject=CN=Contoso Root thumbprint_len=40 expiry=2028-01-15T08:00:00+00:00 same_pem=true
            base64 der: ok subject=CN=Contoso Root thumbprint_len=40 expiry=2028-01-15T08:00:00+00:00 same_pem=true
            two certificates: the certificate text holds 2 certificates; upload one CA certificate per name
            leaf: the certificate is not a CA certificate (its basic constraints lack cA=true)
            expired: the certificate expired at 2027-01-15T07:59:00+00:00
            garbage: the certificate is neither PEM nor base64 DER: Invalid padding"#]]
        .assert_eq(&lines.join("\n"));
    }

    #[test]
    fn certificate_names_follow_iot_hub_rules() {
        let names = [
            "root-ca_1.v2",
            "",
            "has space",
            "slash/name",
            &"x".repeat(65),
        ]
        .map(|name| format!("{name:?}: {}", CertificateName::new(name).is_ok()));
        expect![[r#"
            "root-ca_1.v2": true
            "": false
            "has space": false
            "slash/name": false
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": false"#]]
        .assert_eq(&names.join("\n"));
    }
}
