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
mod connect;
mod consumer;
mod delivery;
mod producer;
mod properties;

pub use admin::{
    check_durability, describe_topics, ensure_topics, TopicSettings, TopicSpec, DEFAULT_MAX_MESSAGE_BYTES,
};
pub use connect::check_connection;
pub use consumer::{high_watermarks, scan_back, Consumed, Consumer, Headers, LAG_INTERVAL_MS};
pub use delivery::GroupSource;
pub use producer::{header_refs, record_size, Deliveries, Producer, Record};
pub use properties::{env_name, Properties, PropertyValue, MANAGED_KEYS, SECRET_KEYS};

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
    /// Fatal: the cluster refused the client's credentials or certificate,
    /// or the client could not verify the cluster's.
    #[error(
        "Kafka at {servers} refused the connection: {reason}; check security.protocol, \
         sasl.mechanism and the credentials, and ssl.ca.location (docs/SECURITY.md)"
    )]
    Security { servers: String, reason: String },
    /// The cluster did not answer in time; librdkafka's last complaint says why.
    #[error("Kafka at {servers} did not answer within {waited:?}: {reason}")]
    Unreachable {
        servers: String,
        waited: Duration,
        reason: String,
    },
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
        matches!(
            self,
            KafkaIoError::Unsafe { .. } | KafkaIoError::Config(_) | KafkaIoError::Security { .. }
        )
    }

    /// Whether retrying may help (the broker was unreachable or slow).
    pub fn is_transient(&self) -> bool {
        match self {
            KafkaIoError::FlushTimeout(_) | KafkaIoError::Delivery { .. } | KafkaIoError::Unreachable { .. } => true,
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

/// Connection settings. `properties` carries the user's librdkafka
/// properties (security settings for a production cluster, tuning), checked
/// by [`Properties::parse`].
#[derive(Clone, Debug, Default)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub client_id: String,
    pub properties: Properties,
}

impl KafkaConfig {
    /// A client's configuration: the address and name, then `tuning` (a
    /// client kind's defaults), then the user's properties over them.
    /// Callers set the properties that carry guarantees after this, and
    /// [`Properties::parse`] refuses those keys anyway.
    pub(crate) fn client_config(&self, tuning: &[(&str, String)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (k, v) in tuning {
            c.set(*k, v);
        }
        self.properties.apply(&mut c);
        c
    }
}
