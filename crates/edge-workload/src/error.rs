//! Workload API errors and their HTTP answers.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::wire::ErrorResponse;

/// Why a workload call was refused; answered as `{"message": "…"}` with the matching status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// 400: a malformed body, base64, expiry, name or api-version.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller may not act as the module it names.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such module identity, generation or route.
    #[error("{0}")]
    NotFound(String),
    /// 503: the key store is unavailable, or too many requests are in flight.
    #[error("{0}")]
    Unavailable(String),
    /// 500: issuing a certificate failed.
    #[error("{0}")]
    Internal(String),
}

impl WorkloadError {
    pub fn status(&self) -> StatusCode {
        match self {
            WorkloadError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WorkloadError::Forbidden(_) => StatusCode::FORBIDDEN,
            WorkloadError::NotFound(_) => StatusCode::NOT_FOUND,
            WorkloadError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WorkloadError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WorkloadError {
    fn into_response(self) -> Response {
        let status = self.status();
        (
            status,
            Json(ErrorResponse {
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}
