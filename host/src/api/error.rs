//! The one error type of the HTTP API: renders `{"code", "message"}` with the right status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API failure.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong, for programs: `invalid_hash`, `not_found`, `rate_limited`, ...
    code: &'a str,
    /// What went wrong, for people.
    message: &'a str,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// 400: the request is wrong; `code` says which part.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }

    /// Its HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body, `{"code", "message"}`, for a channel other than an HTTP response.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"code": self.code, "message": self.message})
    }

    /// 503: the server is at a limit; try again later.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code, message: message.into() }
    }

    /// 404: nothing is stored under that name.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into() }
    }
}

/// Any other failure is a 500 whose cause goes to the log, not to the client.
impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(error: E) -> ApiError {
        let error: anyhow::Error = error.into();
        tracing::error!("request failed: {error:#}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the server log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.code, message: &self.message };
        (self.status, Json(body)).into_response()
    }
}

/// Fallback for unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Fallback for a known route asked with another method.
pub async fn wrong_method() -> ApiError {
    wrong_method_error()
}

/// 405: the endpoint takes other methods.
pub fn wrong_method_error() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}
