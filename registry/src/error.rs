//! What the registry's operations can answer besides success, as domain
//! errors: the store returns them, and the HTTP layer (`http`) maps each to
//! Confluent's status and error code. Nothing here knows about HTTP.

/// Why an operation on the registry did not succeed. Each variant has its
/// Confluent error code (see `http::ApiError::codes`); the messages are
/// Confluent's, which clients show.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
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
    #[error("Invalid mode. Valid values are READWRITE, READONLY, IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("One or more references exist to the schema {{subject={subject},version={version}}}")]
    ReferenceExists { subject: String, version: i32 },
    /// The database failed; the message is logged, not returned, so nothing
    /// about the backend leaks to clients.
    #[error("Error in the backend data store")]
    Store(#[source] StoreError),
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

impl changes::Classified for StoreError {
    fn class(&self) -> changes::Class {
        changes::Class::transient_or_fatal(self.is_transient())
    }
}

impl From<tokio_postgres::Error> for OperationError {
    fn from(e: tokio_postgres::Error) -> Self {
        OperationError::Store(StoreError::Db(e))
    }
}

impl From<deadpool_postgres::PoolError> for OperationError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        OperationError::Store(StoreError::Pool(e))
    }
}
