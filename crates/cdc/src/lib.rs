//! The CDC stage: PostgreSQL logical replication to Kafka, schema first.
//!
//! ```text
//!  PostgreSQL ──pgoutput (replication connection, pgwire-replication)──▶ decode (pgoutput crate)
//!      │                                                                  │ Relation: codec + schemas
//!      │ snapshot (exported with the slot, SQL connection)                 ▼ Insert/Update/Delete
//!      └──────────────────────────────────────────────────────▶ Emitter: parse → rules → Avro
//!                                                                   │ topic <prefix>.<schema>.<table>
//!                                                                   │ or the dead-letter topic
//!                                                                   ▼
//!                                        tracked idempotent producer ──acks──▶ confirm WAL position
//! ```
//!
//! **Start.** The configuration is validated, then every table is checked in
//! the catalog (exists, primary key, REPLICA IDENTITY FULL, every column type
//! mapped: see `pg-avro`), its key and envelope schemas are registered (the
//! registry is a start-up cost, never a per-record one), and the topics are
//! created when missing.
//!
//! **Snapshot, then stream.** A new slot is created on the replication
//! connection with an exported snapshot; a SQL transaction imports it and
//! reads every table (op `r`, LSN = the slot's consistent point) before the
//! stream is read, so nothing is missed or doubled between the two. Once the
//! snapshot is acknowledged by Kafka, the state table records it; a stage
//! that dies mid-snapshot finds the record missing and starts over with a
//! new slot.
//!
//! **Tables added later** (to `source.tables`) are added to the publication
//! and read in primary-key chunks while the stream goes on, with DBLog's
//! watermarks (see `incremental`), so the stream never stops for them.
//!
//! **Delivery.** Each transaction's events are sent as they are decoded; its
//! commit's end LSN is confirmed to the slot only once every record up to
//! its last one is acknowledged ([`kafka::Deliveries::acked_through`]). A
//! crash therefore replays at most the unacknowledged tail; every event
//! carries its LSN, so the sink drops what it has. Heartbeats (transactional
//! logical messages) keep the slot advancing while the tables are idle.
//!
//! **Failures.** Bad rows are data errors: dead-lettered and counted, never
//! dropped. So is an event larger than its topic takes (`max.message.bytes`,
//! read from the topic at start): Kafka would refuse it on every retry and
//! hold the slot for good, so a small record with its key, LSN, size and
//! the limit goes to the dead-letter topic in its place (rule `size`). A schema change the registry refuses, a lost connection, or a
//! failed delivery stops the stage with the reason; nothing unacknowledged
//! was confirmed, so a restart resumes without loss.

mod catalog;
pub mod config;
mod confirm;
mod events;
mod incremental;
pub mod metrics;
mod stream;

pub use config::{CdcConfig, ServiceDefaults, TableName};
pub use stream::{run, run_with_metrics, Summary};

/// What can stop the stage, classified.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    /// The configuration is invalid: fix it and restart.
    #[error("configuration: {0}")]
    Config(String),
    /// A captured table cannot be captured as it is.
    #[error("table {table} {problem}")]
    Table { table: String, problem: String },
    /// A column type or contract rule does not map to Avro.
    #[error("{0}")]
    Mapping(String),
    /// The registry refused a schema version under the subject's compatibility level.
    #[error(
        "table {table}: the registry refused the new schema for {subject}: {message}. \
         Fix the table or the subject's compatibility level, then restart: the stage resumes where it stopped"
    )]
    SchemaRefused {
        table: String,
        subject: String,
        message: String,
    },
    #[error("schema registry")]
    Registry(#[source] registry_client::ClientError),
    #[error("PostgreSQL")]
    Postgres(#[source] tokio_postgres::Error),
    /// Connecting to PostgreSQL (TLS included) failed, or its URL is wrong.
    #[error("connecting to PostgreSQL")]
    Connect(#[from] pg_tls::PgTlsError),
    #[error("replication stream")]
    Replication(#[source] pgwire_replication::PgWireError),
    #[error("the replication stream sent something unexpected: {0}")]
    Protocol(String),
    #[error("Kafka")]
    Kafka(#[from] kafka::KafkaIoError),
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl CdcError {
    /// Whether restarting unchanged may succeed (the failure was outside).
    pub fn is_transient(&self) -> bool {
        match self {
            CdcError::Postgres(_) | CdcError::Replication(_) => true,
            CdcError::Kafka(e) => !e.is_fatal(),
            CdcError::Registry(e) => e.is_transient(),
            CdcError::Connect(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl changes::Classified for CdcError {
    /// Bad rows never surface as a `CdcError` (they are dead-lettered where
    /// they are found), so a stage error is transient or fatal.
    fn class(&self) -> changes::Class {
        changes::Class::transient_or_fatal(self.is_transient())
    }
}
