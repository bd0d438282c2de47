//! The one error shape every endpoint answers with: `{"error": {"code", "message"}}`.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Error response body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`, `not_found`, `forbidden`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// What is wrong, for a person.
    #[schema(example = "limit must be between 1 and 50")]
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_secs: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// The homeserver could not take a write that has to happen before we accept the request.
    pub fn homeserver_unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "homeserver_unavailable", message)
        }
    }
    /// The caller spent their allowance; `retry_after` says when the next request may pass.
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        // Whole seconds, rounded up: a client that waits exactly this long is let through.
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self {
            retry_after_secs: Some(secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {} s", secs.max(1)),
            )
        }
    }
    /// The same error under a more specific code.
    pub fn with_code(self, code: &'static str) -> Self {
        Self { code, ..self }
    }
    pub fn internal(err: impl std::fmt::Display) -> Self {
        // The cause goes to the log; the caller learns only that it was our fault.
        tracing::error!(error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(format_args!("database: {err}"))
    }
}

/// Unreachable or overloaded: `503` with `Retry-After`. A refusal: `502` naming the Matrix
/// `errcode`. Our own token refused: `500`, a configuration fault of ours. The homeserver's
/// address never appears in the message.
impl From<crate::matrix::HomeserverError> for ApiError {
    fn from(err: crate::matrix::HomeserverError) -> Self {
        use crate::matrix::{FailureKind, HomeserverError};
        match (err.kind(), &err) {
            (FailureKind::Transient, _) => {
                tracing::warn!(error = %err, "homeserver unavailable");
                let retry_after_secs = err.retry_after().map_or(5, |hint| hint.as_secs().clamp(1, 3600));
                Self {
                    retry_after_secs: Some(retry_after_secs),
                    ..Self::homeserver_unavailable(format!(
                        "the homeserver is unavailable; try again later ({err})"
                    ))
                }
            }
            (FailureKind::Configuration, _) => {
                tracing::error!(error = %err, "the homeserver refuses the service's own token: fix the configuration");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "homeserver_credentials_refused",
                    "the homeserver refuses this service's credentials; an operator must fix its configuration",
                )
            }
            (FailureKind::Refused, HomeserverError::Matrix { .. }) => {
                // The message names the Matrix errcode: "homeserver refused ...: HTTP 403 M_FORBIDDEN: ...".
                tracing::warn!(error = %err, "homeserver refused");
                Self::new(StatusCode::BAD_GATEWAY, "homeserver_refused", err.to_string())
            }
            (FailureKind::Refused, _) => {
                tracing::warn!(error = %err, "unexpected homeserver answer");
                Self::new(StatusCode::BAD_GATEWAY, "homeserver_error", err.to_string())
            }
        }
    }
}

impl From<crate::sync::SyncError> for ApiError {
    fn from(err: crate::sync::SyncError) -> Self {
        match err {
            crate::sync::SyncError::Homeserver(e) => e.into(),
            crate::sync::SyncError::Database(e) => e.into(),
            // Data of ours the homeserver could never take, or a panic: our fault.
            other => Self::internal(other),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(format_args!("{err:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
