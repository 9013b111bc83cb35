//! Errors as Confluent's Schema Registry reports them over HTTP: a status
//! and a body `{"error_code": N, "message": "..."}` whose codes clients
//! switch on. The store's domain errors ([`OperationError`]) are mapped
//! here, once; the rest are the HTTP layer's own (a body that does not
//! parse, a missing credential, a route that does not exist).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::OperationError;

/// The registry's content type, as Confluent's serves it.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// An API error: a domain error, or one of the HTTP layer's.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Registry(#[from] OperationError),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("{0}")]
    BadRequest(String),
    #[error("Unrecognized field or invalid body: {0}")]
    UnprocessableBody(String),
    #[error("Unauthorized")]
    Unauthorized,
    /// Confluent's RBAC answer: the user is known, the role too small.
    #[error("User {user} (role {role}) is denied {method} {route}: it needs the {needs} role")]
    Forbidden {
        user: String,
        role: &'static str,
        needs: &'static str,
        method: String,
        route: String,
    },
    #[error("HTTP 404 Not Found")]
    NotFound,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    #[error("Request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("Operation timed out")]
    Timeout,
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::Registry(e.into())
    }
}

impl ApiError {
    /// HTTP status and Confluent error code.
    pub fn codes(&self) -> (StatusCode, u32) {
        match self {
            ApiError::Registry(e) => registry_codes(e),
            ApiError::InvalidCompatibilityLevel => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            ApiError::UnprocessableBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, 422),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, 401),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, 40301),
            ApiError::NotFound => (StatusCode::NOT_FOUND, 404),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 413),
            ApiError::Timeout => (StatusCode::INTERNAL_SERVER_ERROR, 50002),
        }
    }
}

fn registry_codes(e: &OperationError) -> (StatusCode, u32) {
    use OperationError::*;
    match e {
        SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
        VersionNotFound { .. } => (StatusCode::NOT_FOUND, 40402),
        SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
        SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
        SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
        VersionSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40406),
        VersionNotSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40407),
        SubjectLevelCompatibilityNotConfigured(_) => (StatusCode::NOT_FOUND, 40408),
        SubjectLevelModeNotConfigured(_) => (StatusCode::NOT_FOUND, 40409),
        Incompatible(_) => (StatusCode::CONFLICT, 409),
        InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
        InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
        InvalidMode => (StatusCode::UNPROCESSABLE_ENTITY, 42204),
        OperationNotPermitted(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42205),
        ReferenceExists { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
        Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
    }
}

/// A JSON response body with the registry's content type.
pub(crate) fn json_body(v: &Value) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        v.to_string(),
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        if let ApiError::Registry(OperationError::Store(e)) = &self {
            tracing::error!(error = %e, source = ?std::error::Error::source(e), transient = e.is_transient(), "store error");
        }
        let body = serde_json::json!({"error_code": code, "message": self.to_string()});
        let mut resp = (status, json_body(&body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"contrail-registry\""),
            );
        }
        resp
    }
}
