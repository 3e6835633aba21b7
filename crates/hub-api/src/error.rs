//! Errors as IoT Hub returns them: the status of the error code, an `iothub-errorcode` header,
//! and a body `{"Message":"ErrorCode:<name>;<text>","ExceptionMessage":"Tracking ID:..."}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hub_core::{ErrorCode, HubError};
use serde_json::json;

/// An error answer of the service API.
#[derive(Debug)]
pub struct ApiError {
    /// The IoT Hub error code (decides the HTTP status).
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// 400 `ArgumentInvalid`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::ArgumentInvalid, message)
    }
}

impl From<HubError> for ApiError {
    fn from(error: HubError) -> ApiError {
        ApiError {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        if status.is_server_error() {
            tracing::warn!(code = %self.code, message = %self.message, "service request failed");
        }
        let tracking_id = uuid::Uuid::new_v4().simple().to_string();
        let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ");
        let body = json!({
            "Message": format!("ErrorCode:{};{}", self.code.name(), self.message),
            "ExceptionMessage": format!("Tracking ID:{tracking_id}-G:0-TimeStamp:{timestamp}"),
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(self.code.name()) {
            response.headers_mut().insert("iothub-errorcode", value);
        }
        response
    }
}
