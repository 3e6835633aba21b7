//! A private certificate authority and the certificates it issues.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{TlsError, certificates_from_pem, certificates_to_pem, private_key_to_pem};

/// The period during which a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificateValidity {
    /// The first instant the certificate is valid.
    pub not_before: SystemTime,
    /// The last instant the certificate is valid.
    pub not_after: SystemTime,
}

impl CertificateValidity {
    /// Valid from one hour ago (to tolerate clock skew between hosts) for `days` days from now.
    pub fn days_from_now(days: u32) -> CertificateValidity {
        let now = SystemTime::now();
        CertificateValidity {
            not_before: now.checked_sub(Duration::from_secs(3600)).unwrap_or(now),
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }
}

impl CertificateValidity {
    /// When a certificate with this validity is renewed: see [`renewal_time`].
    pub fn renewal_time(&self) -> SystemTime {
        renewal_time(self.not_before, self.not_after)
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed: once two thirds of its
/// lifetime have passed, so that a third of it (30 days of 90) is left to hand a renewed CA to
/// those who trust it, and to retry if renewing fails. A certificate that ends before it starts
/// is due at once.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime * 2 / 3
}

/// The validity the DER `certificate` states.
fn certificate_validity(certificate: &[u8]) -> Result<CertificateValidity, TlsError> {
    let summary = crate::summarize_certificate(certificate)?;
    Ok(CertificateValidity {
        not_before: unix_instant(summary.not_before_unix_secs),
        not_after: unix_instant(summary.not_after_unix_secs),
    })
}

fn unix_instant(unix_secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_secs).unwrap_or(0))
}

/// When the DER `certificate` is due for renewal ([`renewal_time`] of its own dates).
pub fn certificate_renewal_time(certificate: &[u8]) -> Result<SystemTime, TlsError> {
    Ok(certificate_validity(certificate)?.renewal_time())
}

/// What a server certificate must cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCertificateRequest {
    /// The subject common name; informative only, clients match the alternative names.
    pub common_name: String,
    /// DNS names clients dial (for example `localhost` or the hub host name).
    pub dns_names: Vec<String>,
    /// IP addresses clients dial as literals.
    pub ip_addresses: Vec<IpAddr>,
    /// When the certificate is valid.
    pub validity: CertificateValidity,
}

/// What a client certificate must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificateRequest {
    /// The subject common name; for IoT Hub X.509 CA authentication this is the device id.
    pub common_name: String,
    /// When the certificate is valid.
    pub validity: CertificateValidity,
}

/// A certificate chain (end entity first) with the end entity's private key.
#[derive(Debug)]
pub struct IssuedCertificate {
    /// The end-entity certificate followed by any intermediates; never empty.
    pub chain: Vec<CertificateDer<'static>>,
    /// The end entity's private key (PKCS#8).
    pub private_key: PrivateKeyDer<'static>,
}

impl IssuedCertificate {
    /// The end-entity certificate.
    pub fn end_entity(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The chain as PEM text, end entity first.
    pub fn chain_pem(&self) -> String {
        certificates_to_pem(&self.chain)
    }

    /// The private key as PEM text.
    pub fn private_key_pem(&self) -> String {
        private_key_to_pem(&self.private_key)
    }
}

impl Clone for IssuedCertificate {
    fn clone(&self) -> IssuedCertificate {
        IssuedCertificate {
            chain: self.chain.clone(),
            private_key: self.private_key.clone_key(),
        }
    }
}

/// A private, self-signed certificate authority that issues server and client certificates.
///
/// **Invariant:** nothing it issues is valid past its own certificate's end.
pub struct CertificateAuthority {
    certificate: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// The validity its certificate states (to the second).
    validity: CertificateValidity,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CertificateAuthority")
            .field("certificate_len", &self.certificate.len())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new self-signed root CA with an ECDSA P-256 key.
    pub fn generate(
        common_name: &str,
        validity: CertificateValidity,
    ) -> Result<CertificateAuthority, TlsError> {
        CertificateAuthority::self_signed(common_name, validity, KeyPair::generate()?)
    }

    fn self_signed(
        common_name: &str,
        validity: CertificateValidity,
        key_pair: KeyPair,
    ) -> Result<CertificateAuthority, TlsError> {
        let mut params = base_params(common_name, validity)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key_pair)?;
        let certificate = certificate.der().clone();
        Ok(CertificateAuthority {
            validity: certificate_validity(&certificate)?,
            certificate,
            issuer: Issuer::new(params, key_pair),
        })
    }

    /// Loads a CA from its PEM certificate and PEM (PKCS#8) private key.
    pub fn from_pem(
        certificate_pem: &[u8],
        private_key_pem: &[u8],
    ) -> Result<CertificateAuthority, TlsError> {
        let certificate = certificates_from_pem(certificate_pem, "CA certificate")?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::NoCertificate {
                origin: "CA certificate".to_owned(),
            })?;
        let key_text = std::str::from_utf8(private_key_pem).map_err(|error| TlsError::Pem {
            origin: "CA private key".to_owned(),
            detail: error.to_string(),
        })?;
        let key_pair = KeyPair::from_pem(key_text)?;
        let issuer = Issuer::from_ca_cert_der(&certificate, key_pair)?;
        Ok(CertificateAuthority {
            validity: certificate_validity(&certificate)?,
            certificate,
            issuer,
        })
    }

    /// The same CA with a fresh self-signed certificate valid for `validity`: the same subject
    /// and the same key, a new serial number.
    ///
    /// Certificates issued before stay valid under the renewed certificate (their issuer name
    /// and signing key are unchanged), and clients that pinned the subject and key (a rustls trust
    /// anchor) accept certificates issued after. Clients that check the old CA certificate's own
    /// dates need the renewed one before the old one expires.
    pub fn renewed(&self, validity: CertificateValidity) -> Result<CertificateAuthority, TlsError> {
        let subject = |der: &[u8]| -> Result<(Vec<u8>, Option<String>), TlsError> {
            let (_, certificate) = x509_parser::parse_x509_certificate(der)
                .map_err(|error| TlsError::InvalidCertificate(error.to_string()))?;
            let common_name = certificate
                .subject()
                .iter_common_name()
                .next()
                .and_then(|name| name.as_str().ok())
                .map(str::to_owned);
            Ok((certificate.subject().as_raw().to_vec(), common_name))
        };
        let (old_subject, common_name) = subject(&self.certificate)?;
        let common_name = common_name.ok_or_else(|| {
            TlsError::InvalidCertificate("the CA certificate has no common name".to_owned())
        })?;
        let key_pair = KeyPair::from_pem(&self.issuer.key().serialize_pem())?;
        let renewed = CertificateAuthority::self_signed(&common_name, validity, key_pair)?;
        // Only a CA named by its common name alone (as this crate makes them) keeps its name.
        if subject(&renewed.certificate)?.0 != old_subject {
            return Err(TlsError::InvalidCertificate(
                "only a CA whose subject is a common name alone can be renewed".to_owned(),
            ));
        }
        Ok(renewed)
    }

    /// When the CA certificate is valid, as it states it.
    pub fn validity(&self) -> CertificateValidity {
        self.validity
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The CA certificate as PEM text (what `ca.pem` holds).
    pub fn certificate_pem(&self) -> String {
        certificates_to_pem(std::slice::from_ref(&self.certificate))
    }

    /// The CA private key as PKCS#8 PEM text.
    pub fn private_key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a server certificate for the requested names and addresses.
    pub fn issue_server_certificate(
        &self,
        request: &ServerCertificateRequest,
    ) -> Result<IssuedCertificate, TlsError> {
        let mut params = base_params(&request.common_name, self.within_lifetime(request.validity))?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        for dns_name in &request.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns_name.clone().try_into()?));
        }
        for ip_address in &request.ip_addresses {
            params
                .subject_alt_names
                .push(SanType::IpAddress(*ip_address));
        }
        self.sign(&params)
    }

    /// Issues a client certificate (for X.509 CA-signed devices) whose subject common name is the
    /// requested one.
    pub fn issue_client_certificate(
        &self,
        request: &ClientCertificateRequest,
    ) -> Result<IssuedCertificate, TlsError> {
        let mut params = base_params(&request.common_name, self.within_lifetime(request.validity))?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        self.sign(&params)
    }

    /// `validity`, ending no later than this CA's certificate.
    fn within_lifetime(&self, validity: CertificateValidity) -> CertificateValidity {
        CertificateValidity {
            not_after: validity.not_after.min(self.validity.not_after),
            ..validity
        }
    }

    fn sign(&self, params: &CertificateParams) -> Result<IssuedCertificate, TlsError> {
        let key_pair = KeyPair::generate()?;
        let certificate = params.signed_by(&key_pair, &self.issuer)?;
        Ok(IssuedCertificate {
            chain: vec![certificate.der().clone()],
            private_key: pkcs8_private_key(&key_pair),
        })
    }
}

/// Creates a self-signed client certificate, the kind IoT Hub identifies by thumbprint.
pub fn self_signed_client_certificate(
    request: &ClientCertificateRequest,
) -> Result<IssuedCertificate, TlsError> {
    let key_pair = KeyPair::generate()?;
    let mut params = base_params(&request.common_name, request.validity)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let certificate = params.self_signed(&key_pair)?;
    Ok(IssuedCertificate {
        chain: vec![certificate.der().clone()],
        private_key: pkcs8_private_key(&key_pair),
    })
}

fn base_params(
    common_name: &str,
    validity: CertificateValidity,
) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::default();
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name = distinguished_name;
    // rcgen's date type lives in the `time` crate, which rcgen does not re-export; adding whole
    // seconds since the epoch to the epoch itself avoids depending on it.
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + seconds_since_epoch(validity.not_before);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + seconds_since_epoch(validity.not_after);
    params.serial_number = Some(random_serial_number()?);
    Ok(params)
}

/// Whole seconds since the Unix epoch; certificates carry no finer time.
fn seconds_since_epoch(instant: SystemTime) -> Duration {
    let since_epoch = instant
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Duration::from_secs(since_epoch.as_secs())
}

fn random_serial_number() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Generate(rcgen::Error::RingUnspecified))?;
    // A positive serial number: clear the sign bit, and keep the first byte non-zero so that the
    // DER integer has exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn pkcs8_private_key(key_pair: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()))
}
