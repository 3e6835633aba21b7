//! The JSON bodies of the workload API, exactly as Azure's `aziot-edged` spells them.

use serde::{Deserialize, Serialize};

/// `POST /modules/{m}/genid/{g}/sign`. Azure's edged reads only `data`; `algo`, when given,
/// must be `HMACSHA256` here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignRequest {
    /// `primary` or `secondary`; the module's primary key is always used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algo: Option<String>,
    /// The bytes to sign, in standard base64.
    pub data: String,
}

/// The answer to a sign request: the HMAC-SHA256 in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    pub digest: String,
}

/// `GET /trust-bundle` and `GET /manifest-trust-bundle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustBundleResponse {
    /// One or more PEM certificates (empty for a manifest trust bundle that is not configured).
    pub certificate: String,
}

/// `POST /modules/{m}/genid/{g}/certificate/server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerCertificateRequest {
    /// The host name (or IP address) clients dial.
    pub common_name: String,
    /// The requested expiry, RFC 3339 / ISO 8601.
    pub expiration: String,
}

/// `POST /modules/{m}/certificate/identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityCertificateRequest {
    /// The requested expiry, RFC 3339 / ISO 8601.
    pub expiration: String,
}

/// An issued certificate with its private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateResponse {
    pub private_key: PrivateKey,
    /// The certificate followed by the edge CA, PEM.
    pub certificate: String,
    /// When the certificate actually expires, RFC 3339.
    pub expiration: String,
}

/// `{"type": "key", "bytes": "<PEM PKCS#8>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateKey {
    #[serde(rename = "type")]
    pub key_type: String,
    pub bytes: String,
}

/// Every error answer: `{"message": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}
