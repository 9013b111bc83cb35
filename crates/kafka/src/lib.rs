//! Kafka I/O for the pipeline, on rdkafka with its bundled librdkafka (a
//! current librdkafka, not the system's 2.0.2, speaks to Apache Kafka 4,
//! Confluent Cloud, MSK, Redpanda and Aiven alike).
//!
//! - [`ensure_topics`] creates missing topics with the admin API:
//!   production clusters (and the local stack) forbid auto-creation.
//! - [`Producer`] is an idempotent producer (`enable.idempotence`, `acks=all`,
//!   per-partition order kept across retries) on rdkafka's `ThreadedProducer`:
//!   `send` hands a record to librdkafka and returns at once, a background
//!   thread polls, and the delivery callback counts acknowledgements and
//!   failures. Callers learn the outcome from [`Producer::flush`], which
//!   waits for every record in flight and reports any failed delivery, so
//!   "written" means acknowledged by the broker. When librdkafka's queue is
//!   full, `send` waits for it to drain: backpressure, not unbounded memory.
//! - A producer made with [`Producer::tracked`] numbers its records and
//!   keeps [`Deliveries::acked_through`], the highest number up to which
//!   every record is acknowledged. Acknowledgements arrive out of order
//!   across partitions, so a count would not do: the CDC stage confirms a
//!   WAL position only once every record before it is in Kafka.
//!
//! Nothing here depends on one broker's behaviour beyond the Kafka protocol.
//!
//! By job: `admin` (topics and their settings), `producer` (writing, with
//! delivery tracking), `consumer` (reading, watermarks, reading a tail
//! backwards); this file holds the configuration and the error classes.

mod admin;
mod consumer;
mod delivery;
mod producer;

pub use admin::{
    check_durability, describe_topics, ensure_topics, TopicSettings, TopicSpec, DEFAULT_MAX_MESSAGE_BYTES,
};
pub use consumer::{high_watermarks, scan_back, Consumed, Consumer, Headers, LAG_INTERVAL_MS};
pub use delivery::GroupSource;
pub use producer::{header_refs, record_size, Deliveries, Producer, Record};

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Kafka errors, classified.
#[derive(Debug, thiserror::Error)]
pub enum KafkaIoError {
    #[error("invalid Kafka client configuration")]
    Config(#[source] KafkaError),
    #[error("creating topic {topic} failed: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("admin request failed")]
    Admin(#[source] KafkaError),
    /// Fatal: the topic's settings would lose acknowledged records.
    #[error("topic {topic} is not safe to write to: {reason}")]
    Unsafe { topic: String, reason: String },
    #[error("{failed} record(s) were not delivered; first error: {first}")]
    Delivery { failed: u64, first: String },
    #[error("records still in flight after {0:?}")]
    FlushTimeout(Duration),
    #[error("sending a record failed")]
    Send(#[source] KafkaError),
    #[error("reading records failed")]
    Receive(#[source] KafkaError),
    /// A fetch position outside the partition's log: the broker answered
    /// OFFSET_OUT_OF_RANGE, and the consumer never resets by itself
    /// (`auto.offset.reset=error`), so nothing is skipped silently.
    #[error("a fetch position is outside its partition's log (OFFSET_OUT_OF_RANGE)")]
    OffsetOutOfRange,
}

impl KafkaIoError {
    /// Whether restarting unchanged cannot help: the topic's settings are
    /// unsafe, or the client's configuration is invalid. Stages that retry
    /// every other Kafka error stop on these, with their message.
    pub fn is_fatal(&self) -> bool {
        matches!(self, KafkaIoError::Unsafe { .. } | KafkaIoError::Config(_))
    }

    /// Whether retrying may help (the broker was unreachable or slow).
    pub fn is_transient(&self) -> bool {
        match self {
            KafkaIoError::FlushTimeout(_) | KafkaIoError::Delivery { .. } => true,
            // An admin request the broker could not answer yet (no leader,
            // unreachable), by its error code.
            KafkaIoError::Admin(e) | KafkaIoError::Receive(e) => e.rdkafka_error_code().is_some_and(is_connectivity),
            _ => false,
        }
    }
}

impl changes::Classified for KafkaIoError {
    /// Transient: the broker unreachable or slow, by error code, or a flush
    /// or delivery that timed out or failed. Anything else is fatal to a
    /// stage that knows no better; the CDC stage retries all but
    /// [`KafkaIoError::is_fatal`] ones, because its slot replays.
    fn class(&self) -> changes::Class {
        changes::Class::transient_or_fatal(self.is_transient())
    }
}

/// Errors that say the broker is unreachable for now, not that a request
/// was wrong: librdkafka recovers from them itself.
pub(crate) fn is_connectivity(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::NetworkException
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::BrokerNotAvailable
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::CoordinatorNotAvailable
            | C::Resolve
    )
}

/// Connection settings. `extra` carries any librdkafka property (security
/// settings for a production cluster, for instance).
#[derive(Clone, Default)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub client_id: String,
    pub extra: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Extra properties may hold SASL passwords: print their names only.
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KafkaConfig {
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
}
