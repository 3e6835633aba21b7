//! Uploaded CA certificates for X.509 CA authentication, in the shape of IoT Hub's certificates
//! API: `GET /certificates`, `GET`/`PUT`/`DELETE /certificates/{name}` (see the crate docs).
//! Every route needs every right ([`HUB_CONFIGURATION_RIGHTS`]): a CA lets any device it signs
//! for connect.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use hub_core::{CaCertificate, CertificateName, ErrorCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::{ApiResult, ApiState};
use crate::routing::{HUB_CONFIGURATION_RIGHTS, authorize_all};

/// The `type` IoT Hub gives certificate descriptions.
const CERTIFICATE_RESOURCE_TYPE: &str = "Microsoft.Devices/IotHubs/Certificates";

/// The body of `PUT /certificates/{name}`. Other properties (such as `isVerified`) are ignored:
/// uploads are always marked verified.
#[derive(Debug, Deserialize)]
struct CertificateBody {
    properties: CertificateBodyProperties,
}

#[derive(Debug, Deserialize)]
struct CertificateBodyProperties {
    /// PEM, or base64 DER.
    certificate: String,
}

/// IoT Hub writes certificate times in RFC 1123 form, e.g. `Thu, 27 Nov 2026 05:10:16 GMT`.
fn rfc1123(time: DateTime<Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The certificate description IoT Hub answers with.
pub(crate) fn certificate_json(certificate: &CaCertificate) -> Value {
    json!({
        "name": certificate.name.as_str(),
        "etag": certificate.etag,
        "type": CERTIFICATE_RESOURCE_TYPE,
        "properties": {
            "subject": certificate.subject,
            "expiry": rfc1123(certificate.expiry),
            "thumbprint": certificate.thumbprint,
            "isVerified": certificate.is_verified,
            "created": rfc1123(certificate.created),
            "updated": rfc1123(certificate.updated),
            "certificate": certificate.certificate_pem,
        },
    })
}

fn with_etag(certificate: &CaCertificate) -> axum::response::Response {
    let mut response = Json(certificate_json(certificate)).into_response();
    if let Ok(header) = HeaderValue::from_str(&format!("\"{}\"", certificate.etag)) {
        response.headers_mut().insert("etag", header);
    }
    response
}

fn certificate_name(text: &str) -> Result<CertificateName, ApiError> {
    CertificateName::new(text).map_err(ApiError::from)
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("if-match")
        .and_then(|value| value.to_str().ok())
}

/// `GET /certificates`: `{"value": [description, ...]}`, by name.
pub(crate) async fn list_certificates(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult {
    authorize_all(&state, &headers, &HUB_CONFIGURATION_RIGHTS)?;
    let certificates = state.hub.ca_certificates().await?;
    let value: Vec<Value> = certificates.iter().map(certificate_json).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `GET /certificates/{name}`.
pub(crate) async fn get_certificate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize_all(&state, &headers, &HUB_CONFIGURATION_RIGHTS)?;
    let certificate = state.hub.ca_certificate(&certificate_name(&name)?).await?;
    Ok(with_etag(&certificate))
}

/// `PUT /certificates/{name}`: uploads (no `If-Match`) or replaces (`If-Match`) a CA certificate.
pub(crate) async fn put_certificate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    authorize_all(&state, &headers, &HUB_CONFIGURATION_RIGHTS)?;
    let name = certificate_name(&name)?;
    let body: CertificateBody = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!(
            "expected {{\"properties\": {{\"certificate\": \"<PEM or base64 DER>\"}}}}: {error}"
        ))
    })?;
    let certificate = state
        .hub
        .put_ca_certificate(&name, &body.properties.certificate, if_match(&headers))
        .await?;
    Ok(with_etag(&certificate))
}

/// `DELETE /certificates/{name}`: needs `If-Match` (the etag, or `*`).
pub(crate) async fn delete_certificate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize_all(&state, &headers, &HUB_CONFIGURATION_RIGHTS)?;
    let name = certificate_name(&name)?;
    let if_match = if_match(&headers).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ArgumentNull,
            "deleting a certificate needs If-Match: its etag, or *",
        )
    })?;
    state.hub.delete_ca_certificate(&name, if_match).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
