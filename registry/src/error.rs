//! Errors as Confluent's Schema Registry reports them: an HTTP status and a
//! body `{"error_code": N, "message": "..."}` whose codes clients switch on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API error. Every variant maps to Confluent's status and error code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {version} not found.")]
    VersionNotFound { version: String },
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted { subject: String, version: i32 },
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: i32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelCompatibilityNotConfigured(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectLevelModeNotConfigured(String),
    #[error("{0}")]
    Incompatible(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("Invalid mode. Valid values are READWRITE, READONLY, IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("One or more references exist to the schema {{subject={subject},version={version}}}")]
    ReferenceExists { subject: String, version: i32 },
    #[error("{0}")]
    BadRequest(String),
    #[error("Unrecognized field or invalid body: {0}")]
    UnprocessableBody(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("HTTP 404 Not Found")]
    NotFound,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    #[error("Request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The database failed; the message is logged, not returned, so nothing
    /// about the backend leaks to clients.
    #[error("Error in the backend data store")]
    Store(#[source] StoreError),
    #[error("Operation timed out")]
    Timeout,
}

/// A backend failure, classified: transient ones (connection lost, pool
/// exhausted, serialization conflict) may succeed on retry; others are bugs
/// or a broken database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether retrying the operation may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Db(e) => e.is_closed() || e.code().is_some_and(|c| changes::sqlstate_is_transient(c.code())),
            StoreError::Corrupt(_) => false,
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::Store(StoreError::Db(e))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::Store(StoreError::Pool(e))
    }
}

impl ApiError {
    /// HTTP status and Confluent error code.
    pub fn codes(&self) -> (StatusCode, u32) {
        use ApiError::*;
        match self {
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
            InvalidCompatibilityLevel => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            InvalidMode => (StatusCode::UNPROCESSABLE_ENTITY, 42204),
            OperationNotPermitted(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42205),
            ReferenceExists { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
            BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            UnprocessableBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, 422),
            Unauthorized => (StatusCode::UNAUTHORIZED, 401),
            NotFound => (StatusCode::NOT_FOUND, 404),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 413),
            Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
            Timeout => (StatusCode::INTERNAL_SERVER_ERROR, 50002),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        if let ApiError::Store(e) = &self {
            tracing::error!(error = %e, source = ?std::error::Error::source(e), transient = e.is_transient(), "store error");
        }
        let body = serde_json::json!({"error_code": code, "message": self.to_string()});
        let mut resp = (status, crate::api::json_body(&body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"contrail-registry\""),
            );
        }
        resp
    }
}
