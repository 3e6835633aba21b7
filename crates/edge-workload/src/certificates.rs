//! The edge CA side of the workload API: trust bundles and issued certificates.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use iothub_types::ModuleId;
use tls::{
    CertificateAuthority, CertificateValidity, ClientCertificateRequest, IssuedCertificate,
    ServerCertificateRequest, TlsError,
};

use crate::error::WorkloadError;
use crate::wire::{CertificateResponse, PrivateKey};

/// The longest lifetime of an issued certificate unless configured otherwise: 90 days, what
/// Azure's edge hub asks for.
pub const DEFAULT_MAX_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(90 * 86_400);

/// How far back an issued certificate's `notBefore` is set, for clocks that lag a little.
const CLOCK_SKEW_ALLOWANCE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The longest common name accepted for a server certificate (a DNS name's limit).
const MAX_COMMON_NAME_LENGTH: usize = 253;

/// The edge CA and what the workload API hands out from it.
pub struct WorkloadCertificates {
    authority: CertificateAuthority,
    authority_not_after: DateTime<Utc>,
    trust_bundle_pem: String,
    manifest_trust_bundle_pem: String,
    max_validity: Duration,
}

impl std::fmt::Debug for WorkloadCertificates {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WorkloadCertificates")
            .field("authority_not_after", &self.authority_not_after)
            .field("max_validity", &self.max_validity)
            .finish_non_exhaustive()
    }
}

impl WorkloadCertificates {
    /// The trust bundle starts as the edge CA certificate alone; no manifest trust bundle;
    /// [`DEFAULT_MAX_CERTIFICATE_VALIDITY`].
    pub fn new(authority: CertificateAuthority) -> Result<WorkloadCertificates, TlsError> {
        let summary = tls::summarize_certificate(authority.certificate())?;
        let authority_not_after =
            DateTime::from_timestamp(summary.not_after_unix_secs, 0).unwrap_or_default();
        Ok(WorkloadCertificates {
            trust_bundle_pem: authority.certificate_pem(),
            authority,
            authority_not_after,
            manifest_trust_bundle_pem: String::new(),
            max_validity: DEFAULT_MAX_CERTIFICATE_VALIDITY,
        })
    }

    /// Adds more trusted roots (PEM) to the trust bundle, such as the hub's CA for modules that
    /// also talk to the hub directly.
    pub fn with_extra_trust(mut self, pem: &str) -> WorkloadCertificates {
        if !self.trust_bundle_pem.ends_with('\n') {
            self.trust_bundle_pem.push('\n');
        }
        self.trust_bundle_pem.push_str(pem);
        self
    }

    /// Sets what `GET /manifest-trust-bundle` returns.
    pub fn with_manifest_trust_bundle(mut self, pem: &str) -> WorkloadCertificates {
        self.manifest_trust_bundle_pem = pem.to_owned();
        self
    }

    /// Sets the longest lifetime of an issued certificate.
    pub fn with_max_validity(mut self, max_validity: Duration) -> WorkloadCertificates {
        self.max_validity = max_validity;
        self
    }

    pub fn authority(&self) -> &CertificateAuthority {
        &self.authority
    }

    pub fn trust_bundle_pem(&self) -> &str {
        &self.trust_bundle_pem
    }

    pub fn manifest_trust_bundle_pem(&self) -> &str {
        &self.manifest_trust_bundle_pem
    }

    pub fn max_validity(&self) -> Duration {
        self.max_validity
    }

    /// Issues a server certificate for `module_id` (see the crate documentation).
    pub(crate) fn issue_server_certificate(
        &self,
        module_id: &ModuleId,
        common_name: &str,
        requested_expiration: &str,
        now: DateTime<Utc>,
    ) -> Result<CertificateResponse, WorkloadError> {
        check_common_name(common_name)?;
        let (not_before, not_after) = self.plan(requested_expiration, now)?;
        let (dns_names, ip_addresses) = server_certificate_names(common_name, module_id);
        let issued = self
            .authority
            .issue_server_certificate(&ServerCertificateRequest {
                common_name: common_name.to_owned(),
                dns_names,
                ip_addresses,
                validity: system_validity(not_before, not_after),
            })
            .map_err(|error| WorkloadError::Internal(format!("cannot issue: {error}")))?;
        Ok(self.response(&issued, not_after))
    }

    /// Issues an identity (client) certificate whose common name is the module id.
    pub(crate) fn issue_identity_certificate(
        &self,
        module_id: &ModuleId,
        requested_expiration: &str,
        now: DateTime<Utc>,
    ) -> Result<CertificateResponse, WorkloadError> {
        let (not_before, not_after) = self.plan(requested_expiration, now)?;
        let issued = self
            .authority
            .issue_client_certificate(&ClientCertificateRequest {
                common_name: module_id.as_str().to_owned(),
                validity: system_validity(not_before, not_after),
            })
            .map_err(|error| WorkloadError::Internal(format!("cannot issue: {error}")))?;
        Ok(self.response(&issued, not_after))
    }

    fn plan(
        &self,
        requested_expiration: &str,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), WorkloadError> {
        let requested = DateTime::parse_from_rfc3339(requested_expiration)
            .map_err(|error| {
                WorkloadError::BadRequest(format!(
                    "expiration {:?} is not an RFC 3339 time: {error}",
                    excerpt(requested_expiration)
                ))
            })?
            .with_timezone(&Utc);
        certificate_validity(now, requested, self.authority_not_after, self.max_validity)
            .map_err(|error| WorkloadError::BadRequest(error.to_string()))
    }

    fn response(
        &self,
        issued: &IssuedCertificate,
        not_after: DateTime<Utc>,
    ) -> CertificateResponse {
        let mut certificate = issued.chain_pem();
        certificate.push_str(&self.authority.certificate_pem());
        CertificateResponse {
            private_key: PrivateKey {
                key_type: "key".to_owned(),
                bytes: issued.private_key_pem(),
            },
            certificate,
            expiration: not_after.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// Why no certificate can be issued for the requested lifetime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificatePlanError {
    #[error("expiration {requested} is not in the future")]
    ExpirationInPast { requested: String },
    #[error("the edge CA expired at {authority_not_after}")]
    AuthorityExpired { authority_not_after: String },
}

/// The `(notBefore, notAfter)` of a certificate requested to expire at `requested`, pure:
/// `notAfter` is the earliest of the request, the CA's expiry and `now + max_validity`, and
/// `notBefore` is an hour before `now`. Whole seconds, as certificates store them.
pub fn certificate_validity(
    now: DateTime<Utc>,
    requested: DateTime<Utc>,
    authority_not_after: DateTime<Utc>,
    max_validity: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), CertificatePlanError> {
    let now = whole_seconds(now);
    let longest = chrono::TimeDelta::from_std(max_validity).unwrap_or(chrono::TimeDelta::MAX);
    let capped = now.checked_add_signed(longest).unwrap_or(requested);
    let not_after = whole_seconds(requested.min(authority_not_after).min(capped));
    if not_after <= now {
        if whole_seconds(requested) <= now {
            return Err(CertificatePlanError::ExpirationInPast {
                requested: requested.to_rfc3339_opts(SecondsFormat::Secs, true),
            });
        }
        return Err(CertificatePlanError::AuthorityExpired {
            authority_not_after: authority_not_after.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
    }
    Ok((now - CLOCK_SKEW_ALLOWANCE, not_after))
}

/// The subject alternative names of a module's server certificate, pure: the common name (as
/// an IP address when it parses as one, else as a DNS name) and the module id made into a DNS
/// label (lower case, letters, digits and `-` only; `$edgeHub` becomes `edgehub`), unless it
/// is empty or the same name.
pub fn server_certificate_names(
    common_name: &str,
    module_id: &ModuleId,
) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    match common_name.parse::<IpAddr>() {
        Ok(address) => ip_addresses.push(address),
        Err(_) => dns_names.push(common_name.to_owned()),
    }
    let label = dns_label(module_id.as_str());
    if !label.is_empty() && !label.eq_ignore_ascii_case(common_name) {
        dns_names.push(label);
    }
    (dns_names, ip_addresses)
}

fn dns_label(text: &str) -> String {
    let label: String = text
        .chars()
        .filter(|character| character.is_ascii_alphanumeric() || *character == '-')
        .map(|character| character.to_ascii_lowercase())
        .collect();
    let trimmed = label.trim_matches('-');
    trimmed
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

fn check_common_name(common_name: &str) -> Result<(), WorkloadError> {
    let valid = !common_name.is_empty()
        && common_name.len() <= MAX_COMMON_NAME_LENGTH
        && common_name.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '.' | '-' | '_' | ':')
        });
    if valid {
        Ok(())
    } else {
        Err(WorkloadError::BadRequest(format!(
            "commonName {:?} is not a host name or IP address",
            excerpt(common_name)
        )))
    }
}

fn whole_seconds(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(time.timestamp(), 0).unwrap_or(time)
}

fn system_validity(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> CertificateValidity {
    let to_system = |time: DateTime<Utc>| {
        let seconds = u64::try_from(time.timestamp()).unwrap_or(0);
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    };
    CertificateValidity {
        not_before: to_system(not_before),
        not_after: to_system(not_after),
    }
}

/// Untrusted text quoted back in an error message, cut to 64 characters.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use expect_test::{Expect, expect};

    use super::*;

    fn check_validity(requested: &str, authority_not_after: &str, max_days: u64, expect: Expect) {
        let parse = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
            + chrono::TimeDelta::milliseconds(250);
        let rendered = match certificate_validity(
            now,
            parse(requested),
            parse(authority_not_after),
            Duration::from_secs(max_days * 86_400),
        ) {
            Ok((not_before, not_after)) => format!("{not_before} .. {not_after}"),
            Err(error) => format!("error: {error}"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn validity_plans() {
        check_validity(
            "2026-12-27T12:00:00Z",
            "2027-11-27T00:00:00Z",
            90,
            expect!["2026-11-27 11:00:00 UTC .. 2026-12-27 12:00:00 UTC"],
        );
        check_validity(
            "2030-01-01T00:00:00+02:00",
            "2027-11-27T00:00:00Z",
            90,
            expect!["2026-11-27 11:00:00 UTC .. 2027-02-25 12:00:00 UTC"],
        );
        check_validity(
            "2030-01-01T00:00:00Z",
            "2026-12-01T00:00:00Z",
            90,
            expect!["2026-11-27 11:00:00 UTC .. 2026-12-01 00:00:00 UTC"],
        );
        check_validity(
            "2026-11-27T12:00:00Z",
            "2027-11-27T00:00:00Z",
            90,
            expect!["error: expiration 2026-11-27T12:00:00Z is not in the future"],
        );
        check_validity(
            "2027-01-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            90,
            expect!["error: the edge CA expired at 2026-11-01T00:00:00Z"],
        );
    }

    fn check_names(common_name: &str, module_id: &str, expect: Expect) {
        let (dns_names, ip_addresses) =
            server_certificate_names(common_name, &ModuleId::new(module_id).unwrap());
        expect.assert_eq(&format!("dns={dns_names:?} ip={ip_addresses:?}"));
    }

    #[test]
    fn subject_alternative_names() {
        check_names(
            "edge-1.local",
            "$edgeHub",
            expect![[r#"dns=["edge-1.local", "edgehub"] ip=[]"#]],
        );
        check_names(
            "127.0.0.1",
            "sensor",
            expect![[r#"dns=["sensor"] ip=[127.0.0.1]"#]],
        );
        check_names("::1", "$$$", expect!["dns=[] ip=[::1]"]);
        check_names("Sensor", "sensor", expect![[r#"dns=["Sensor"] ip=[]"#]]);
        check_names(
            "host",
            "My_Module.v2-",
            expect![[r#"dns=["host", "mymodulev2"] ip=[]"#]],
        );
    }
}
