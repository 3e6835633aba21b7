//! rustls configurations: the server side with an optional, application-judged client
//! certificate and a swappable certificate, and a client side for tests and the CLI.

use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::{IssuedCertificate, TlsError};

/// The crypto provider used throughout Outpost: rustls' `ring` provider with its default suites,
/// which include the TLS 1.2 ECDHE AES-GCM and ChaCha20 suites the Python SDK negotiates.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which client certificates the server asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCertificates {
    /// The server does not ask for a client certificate.
    NotRequested,
    /// The server asks for an optional client certificate and accepts any well-formed one whose
    /// holder proves possession of the private key; the application decides what it means.
    AcceptAnyOptional,
}

/// Builds a server configuration that offers TLS 1.3 and TLS 1.2, presents the resolver's current
/// certificate, and handles client certificates as `client_certificates` says.
///
/// The result is returned unwrapped so that callers can still set ALPN protocols or other fields.
pub fn server_config(
    resolver: Arc<ReloadableCertificateResolver>,
    client_certificates: ClientCertificates,
) -> Result<ServerConfig, TlsError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let config = match client_certificates {
        ClientCertificates::NotRequested => {
            builder.with_no_client_auth().with_cert_resolver(resolver)
        }
        ClientCertificates::AcceptAnyOptional => builder
            .with_client_cert_verifier(Arc::new(AcceptAnyClientCertificate::new(provider)))
            .with_cert_resolver(resolver),
    };
    Ok(config)
}

/// A client configuration trusting exactly `trusted_roots`, presenting no client certificate.
pub fn client_config(trusted_roots: &[CertificateDer<'static>]) -> Result<ClientConfig, TlsError> {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(root_store(trusted_roots)?)
        .with_no_client_auth();
    Ok(config)
}

/// A client configuration trusting exactly `trusted_roots` and presenting `identity`, as an X.509
/// device does.
pub fn client_config_with_certificate(
    trusted_roots: &[CertificateDer<'static>],
    identity: &IssuedCertificate,
) -> Result<ClientConfig, TlsError> {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(root_store(trusted_roots)?)
        .with_client_auth_cert(identity.chain.clone(), identity.private_key.clone_key())?;
    Ok(config)
}

/// Checks that `end_entity` (with the `intermediates` the client sent) chains to one of
/// `trusted_roots` and is valid for client authentication at `now`.
///
/// This is the check behind IoT Hub's "CA-signed" X.509 authentication; the TLS layer itself
/// accepts any certificate (see [`AcceptAnyClientCertificate`]).
pub fn verify_client_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    trusted_roots: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<(), TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(trusted_roots)?),
        crypto_provider(),
    )
    .build()
    .map_err(|error| TlsError::Verifier(error.to_string()))?;
    verifier.verify_client_cert(end_entity, intermediates, now)?;
    Ok(())
}

fn root_store(trusted_roots: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for root in trusted_roots {
        store.add(root.clone())?;
    }
    Ok(store)
}

/// A client-certificate verifier that asks for an optional certificate and accepts any that
/// parses as X.509, while still checking the handshake signature, so the peer proves it holds the
/// private key. Whether the certificate identifies a device (by thumbprint or by chain) is the
/// application's decision after the handshake.
#[derive(Debug)]
pub struct AcceptAnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyClientCertificate {
    /// A verifier checking handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> AcceptAnyClientCertificate {
        AcceptAnyClientCertificate { provider }
    }
}

// === impl AcceptAnyClientCertificate ===

impl ClientCertVerifier for AcceptAnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        for certificate in std::iter::once(end_entity).chain(intermediates) {
            crate::summarize_certificate(certificate).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A server certificate resolver whose certificate can be replaced while the server runs, so
/// renewals take effect for new handshakes without a restart.
#[derive(Debug)]
pub struct ReloadableCertificateResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCertificateResolver {
    /// A resolver serving `certificate`.
    pub fn new(certificate: &IssuedCertificate) -> Result<ReloadableCertificateResolver, TlsError> {
        Ok(ReloadableCertificateResolver {
            current: RwLock::new(certified_key(
                certificate.chain.clone(),
                certificate.private_key.clone_key(),
            )?),
        })
    }

    /// A resolver serving a chain (end entity first) and its private key, as loaded from files.
    pub fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        private_key: PrivateKeyDer<'static>,
    ) -> Result<ReloadableCertificateResolver, TlsError> {
        Ok(ReloadableCertificateResolver {
            current: RwLock::new(certified_key(chain, private_key)?),
        })
    }

    /// Replaces the served certificate; handshakes already under way keep the old one.
    pub fn replace(&self, certificate: &IssuedCertificate) -> Result<(), TlsError> {
        self.replace_parts(
            certificate.chain.clone(),
            certificate.private_key.clone_key(),
        )
    }

    /// Replaces the served certificate from a chain and key.
    pub fn replace_parts(
        &self,
        chain: Vec<CertificateDer<'static>>,
        private_key: PrivateKeyDer<'static>,
    ) -> Result<(), TlsError> {
        let replacement = certified_key(chain, private_key)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = replacement;
        Ok(())
    }

    /// The end-entity certificate currently served.
    pub fn current_end_entity(&self) -> CertificateDer<'static> {
        self.current_key().cert[0].clone()
    }

    fn current_key(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for ReloadableCertificateResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current_key())
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: "server certificate chain".to_owned(),
        });
    }
    Ok(Arc::new(CertifiedKey::from_der(
        chain,
        private_key,
        &crypto_provider(),
    )?))
}
