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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

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

/// Errors that say the broker is unreachable for now, not that a request
/// was wrong: librdkafka recovers from them itself.
fn is_connectivity(code: RDKafkaErrorCode) -> bool {
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
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
}

/// A topic to create when missing.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Topic-level settings given at creation (`min.insync.replicas`, …).
    pub config: Vec<(String, String)>,
}

/// Creates the topics that do not exist yet; existing ones are left alone.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), KafkaIoError> {
    let admin: AdminClient<DefaultClientContext> = cfg.client_config().create().map_err(KafkaIoError::Config)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.config.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(KafkaIoError::Admin)?
    {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaIoError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// What a stage needs to know of a topic's settings before it writes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub name: String,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `max.message.bytes`: the largest record batch the topic accepts.
    pub max_message_bytes: usize,
}

/// Kafka's default `max.message.bytes`, for a topic that does not report it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// Reads the settings of `topics` with DescribeConfigs.
pub async fn describe_topics(cfg: &KafkaConfig, topics: &[&str]) -> Result<Vec<TopicSettings>, KafkaIoError> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = cfg.client_config().create().map_err(KafkaIoError::Config)?;
    let specs: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let described = admin
        .describe_configs(specs.iter(), &opts)
        .await
        .map_err(KafkaIoError::Admin)?;
    topics
        .iter()
        .zip(described)
        .map(|(topic, result)| {
            let resource = result.map_err(|code| KafkaIoError::CreateTopic {
                topic: topic.to_string(),
                reason: format!("describing its settings failed: {code}"),
            })?;
            let value = |name: &str| resource.get(name).and_then(|e| e.value.as_deref());
            Ok(TopicSettings {
                name: topic.to_string(),
                unclean_leader_election: value("unclean.leader.election.enable") == Some("true"),
                max_message_bytes: value("max.message.bytes")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            })
        })
        .collect()
}

/// Refuses topics whose settings would lose acknowledged records: with
/// `unclean.leader.election.enable=true` a replica that missed writes can
/// become leader after a failure, and the records only the old leader had
/// are gone, though the producer was told they were written.
pub fn check_durability(topics: &[TopicSettings]) -> Result<(), KafkaIoError> {
    match topics.iter().find(|t| t.unclean_leader_election) {
        Some(t) => Err(KafkaIoError::Unsafe {
            topic: t.name.clone(),
            reason: "unclean.leader.election.enable=true lets a replica that missed writes become leader, \
                     losing records Kafka had acknowledged; set it to false on the topic \
                     (kafka-configs --alter --entity-type topics --entity-name TOPIC \
                     --add-config unclean.leader.election.enable=false)"
                .into(),
        }),
        None => Ok(()),
    }
}

/// Owned headers as a [`Record`] takes them.
pub fn header_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a [u8])> {
    headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
}

/// An upper bound on the bytes `record` takes in a record batch of its own,
/// uncompressed: what a broker compares with the topic's `max.message.bytes`
/// (and librdkafka with `message.max.bytes`). The batch header is 61 bytes;
/// each varint of a record is at most 10.
pub fn record_size(record: &Record<'_>) -> usize {
    const BATCH_HEADER: usize = 61;
    const RECORD_FIXED: usize = 1 + 4 * 10;
    let headers: usize = record.headers.iter().map(|(k, v)| 20 + k.len() + v.len()).sum();
    BATCH_HEADER + RECORD_FIXED + 10 + record.key.len() + 10 + record.value.map_or(0, <[u8]>::len) + headers
}

/// Delivery accounting shared with librdkafka's callback thread.
#[derive(Debug, Default)]
pub struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Tracked producers only: numbers sent and not yet acknowledged.
    pending: Option<Mutex<changes::InFlight>>,
}

impl Deliveries {
    /// The highest record number (from [`Producer::send`] on a tracked
    /// producer) such that it and every record before it were acknowledged;
    /// 0 before the first. A failed record stays unacknowledged for good.
    pub fn acked_through(&self) -> u64 {
        let Some(p) = &self.pending else { return 0 };
        p.lock().unwrap_or_else(|e| e.into_inner()).durable_through()
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

struct Context(Arc<Deliveries>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    /// The record's number on a tracked producer, 0 otherwise.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = &self.0.pending {
                    p.lock().unwrap_or_else(|e| e.into_inner()).done(seq as u64);
                }
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.0.first_error.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// An idempotent producer; see the crate docs.
pub struct Producer {
    inner: ThreadedProducer<Context>,
    deliveries: Arc<Deliveries>,
    /// librdkafka's `message.max.bytes`: larger records are refused before sending.
    max_message_bytes: usize,
}

/// librdkafka's default `message.max.bytes`.
const CLIENT_MAX_MESSAGE_BYTES: usize = 1_000_000;

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("deliveries", &self.deliveries)
            .finish()
    }
}

/// One record to send.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    /// `None` is a tombstone (a delete, for compacted topics).
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl Producer {
    /// An idempotent producer. `linger` trades latency for batching.
    pub fn new(cfg: &KafkaConfig, linger: Duration) -> Result<Producer, KafkaIoError> {
        Self::build(cfg, linger, Deliveries::default())
    }

    /// An idempotent producer that numbers its records (1, 2, …) and tracks
    /// [`Deliveries::acked_through`].
    pub fn tracked(cfg: &KafkaConfig, linger: Duration) -> Result<Producer, KafkaIoError> {
        Self::build(
            cfg,
            linger,
            Deliveries {
                pending: Some(Mutex::default()),
                ..Deliveries::default()
            },
        )
    }

    fn build(cfg: &KafkaConfig, linger: Duration, deliveries: Deliveries) -> Result<Producer, KafkaIoError> {
        let deliveries = Arc::new(deliveries);
        let mut c = cfg.client_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", linger.as_millis().to_string())
            .set("compression.type", "none")
            .set("message.timeout.ms", "120000");
        // Backpressure early: a slow broker makes `send` wait instead of
        // queueing librdkafka's default 100,000 records, which would sit
        // in memory and time out there (the source keeps the backlog, durably).
        if !cfg.extra.contains_key("queue.buffering.max.messages") {
            c.set("queue.buffering.max.messages", "20000");
        }
        let inner: ThreadedProducer<Context> = c
            .create_with_context(Context(deliveries.clone()))
            .map_err(KafkaIoError::Config)?;
        let max_message_bytes = cfg
            .extra
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(CLIENT_MAX_MESSAGE_BYTES);
        Ok(Producer {
            inner,
            deliveries,
            max_message_bytes,
        })
    }

    /// The largest record (by [`record_size`]) this producer can write to
    /// `topic`: the smaller of the topic's limit and the client's.
    pub fn limit_for(&self, topic: &TopicSettings) -> usize {
        topic.max_message_bytes.min(self.max_message_bytes)
    }

    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// Queues a record and returns its number (0 on an untracked producer).
    /// Waits while librdkafka's queue is full.
    pub fn send(&self, record: Record<'_>) -> Result<u64, KafkaIoError> {
        // Numbered before it is handed over, so its acknowledgement cannot
        // arrive before it is known to be in flight.
        let seq = match &self.deliveries.pending {
            Some(p) => p.lock().unwrap_or_else(|e| e.into_inner()).start(),
            None => 0,
        };
        let mut base = BaseRecord::<[u8], [u8], usize>::with_opaque_to(record.topic, seq as usize).key(record.key);
        // A headers object is a librdkafka allocation: only make one when needed.
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            base = base.headers(headers);
        }
        if let Some(value) = record.value {
            base = base.payload(value);
        }
        loop {
            match self.inner.send(base) {
                Ok(()) => return Ok(seq),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    base = returned;
                    self.inner.poll(Duration::from_millis(10));
                }
                // The number stays in flight: the watermark must not pass a
                // record that never reached Kafka.
                Err((e, _)) => return Err(KafkaIoError::Send(e)),
            }
        }
    }

    /// Waits until every queued record is acknowledged or failed; an error if
    /// any failed since the last flush.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaIoError> {
        self.inner
            .flush(timeout)
            .map_err(|_| KafkaIoError::FlushTimeout(timeout))?;
        let failed = self.deliveries.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .deliveries
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_default();
            return Err(KafkaIoError::Delivery { failed, first });
        }
        Ok(())
    }

    /// Sends a dead letter to `topic`: `key` and `value` with the
    /// headers of `why` (see [`changes::DeadLetter`]). Returns its number.
    pub fn dead_letter(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
        why: &changes::DeadLetter,
    ) -> Result<u64, KafkaIoError> {
        let headers = why.headers();
        self.send(Record {
            topic,
            key,
            value,
            headers: &header_refs(&headers),
        })
    }

    /// Records handed over but not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }
}

/// Each partition of `topic` with its end offset (high watermark): the
/// offset its next record will get.
pub fn high_watermarks(cfg: &KafkaConfig, topic: &str) -> Result<Vec<(i32, i64)>, KafkaIoError> {
    let consumer: rdkafka::consumer::BaseConsumer = cfg.client_config().create().map_err(KafkaIoError::Config)?;
    Ok(watermarks(&consumer, topic)?
        .into_iter()
        .map(|(p, _, high)| (p, high))
        .collect())
}

/// Each partition of `topic` with its low and high watermarks. A topic
/// another stage created a moment ago may not be in the metadata yet: it
/// is asked for again for up to 30 s before it counts as missing.
fn watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl rdkafka::consumer::Consumer<C>,
    topic: &str,
) -> Result<Vec<(i32, i64, i64)>, KafkaIoError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let partitions = loop {
        let md = settled(|| consumer.fetch_metadata(Some(topic), Duration::from_secs(30)))?;
        let found: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !found.is_empty() {
            break found;
        }
        if std::time::Instant::now() >= deadline {
            return Err(KafkaIoError::CreateTopic {
                topic: topic.into(),
                reason: "not in the cluster's metadata after 30 s: check the topic's name and the cluster, \
                         or start the stage that creates it"
                    .into(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    partitions
        .into_iter()
        .map(|p| {
            let (low, high) = settled(|| consumer.fetch_watermarks(topic, p, Duration::from_secs(30)))?;
            Ok((p, low, high))
        })
        .collect()
}

/// Runs an admin request again while the broker answers that it is still
/// settling (a partition of a topic created a moment ago has no leader
/// yet; a broker is restarting), for up to 30 s, classed by error code.
fn settled<T>(mut request: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaIoError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match request() {
            Err(e) if e.rdkafka_error_code().is_some_and(is_connectivity) && std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "the broker is settling; asking again");
                std::thread::sleep(Duration::from_millis(100));
            }
            r => return r.map_err(KafkaIoError::Admin),
        }
    }
}

/// A record's headers, as read back by [`scan_back`].
pub type Headers = Vec<(String, Vec<u8>)>;

/// Reads each partition of `topic` backwards from its end, newest record
/// first, handing `visit` the partition, the record's key and its headers,
/// until `visit` returns false, the partition's start, or `limit` records
/// of that partition. Records are fetched in windows that double (256,
/// 512, …), so a short tail costs one small read. For what a stage needs
/// to know about its own recent output at start-up (the CDC stage: which
/// dead letters a crash had already sent), never per record.
pub fn scan_back(
    cfg: &KafkaConfig,
    topic: &str,
    limit: u64,
    mut visit: impl FnMut(i32, Option<&[u8]>, &Headers) -> bool,
) -> Result<(), KafkaIoError> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Headers as _;
    use rdkafka::Message as _;
    const WAIT: Duration = Duration::from_secs(30);
    let mut c = cfg.client_config();
    c.set("group.id", format!("{}-scan", cfg.client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = c.create().map_err(KafkaIoError::Config)?;
    for (partition, low, high) in watermarks(&consumer, topic)? {
        let (mut end, mut window, mut read) = (high, 256i64, 0u64);
        'partition: while end > low && read < limit {
            let start = (end - window).max(low);
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(start))
                .map_err(KafkaIoError::Admin)?;
            consumer.assign(&tpl).map_err(KafkaIoError::Admin)?;
            let mut batch: Vec<(Option<Vec<u8>>, Headers)> = Vec::new();
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
                    if std::time::Instant::now() > deadline {
                        return Err(KafkaIoError::Receive(KafkaError::MessageConsumption(
                            RDKafkaErrorCode::OperationTimedOut,
                        )));
                    }
                    continue;
                };
                let m = match msg {
                    Ok(m) => m,
                    Err(KafkaError::PartitionEOF(_)) => break,
                    Err(KafkaError::MessageConsumption(code)) if is_connectivity(code) => continue,
                    Err(e) => return Err(KafkaIoError::Receive(e)),
                };
                if m.offset() >= end {
                    break;
                }
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                batch.push((m.key().map(<[u8]>::to_vec), headers));
                if m.offset() + 1 >= end {
                    break;
                }
            }
            for (key, headers) in batch.iter().rev() {
                read += 1;
                if !visit(partition, key.as_deref(), headers) || read >= limit {
                    break 'partition;
                }
            }
            end = start;
            window = window.saturating_mul(2);
        }
    }
    Ok(())
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// A consumer with explicitly assigned partitions and positions: the sink
/// keeps its positions in the warehouse, next to the data, and starts from
/// there; Kafka's group offsets are committed too, for monitoring.
pub struct Consumer {
    inner: rdkafka::consumer::StreamConsumer<LagContext>,
    lag: Arc<std::sync::atomic::AtomicI64>,
}

/// Takes the consumer lag out of librdkafka's statistics (every
/// [`LAG_INTERVAL_MS`]): the sum over assigned partitions of the high
/// watermark minus the position, -1 until the first statistics with an
/// assigned partition whose lag is known. No extra broker request.
struct LagContext(Arc<std::sync::atomic::AtomicI64>);

/// How often librdkafka reports statistics, so how fresh [`Consumer::lag`] is.
pub const LAG_INTERVAL_MS: u64 = 1000;

impl ClientContext for LagContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lags: Vec<i64> = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            // Partition -1 is librdkafka's internal "unassigned" one.
            .filter(|(id, p)| **id >= 0 && p.consumer_lag >= 0)
            .map(|(_, p)| p.consumer_lag)
            .collect();
        let lag = if lags.is_empty() { -1 } else { lags.iter().sum() };
        self.0.store(lag, Ordering::Relaxed);
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl Consumer {
    pub fn new(cfg: &KafkaConfig, group_id: &str) -> Result<Consumer, KafkaIoError> {
        let mut c = cfg.client_config();
        // Positions are always assigned explicitly; one the log no longer
        // holds is an error for the caller, never a silent jump to either
        // end of the log.
        c.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false");
        if !cfg.extra.contains_key("max.partition.fetch.bytes") {
            // A sink's batch is thousands of records: librdkafka's 1 MB per
            // partition took several fetches per batch, each one the
            // broker's work (the local broker's most of all). Memory stays
            // bounded by `queued.max.messages.kbytes`.
            c.set("max.partition.fetch.bytes", "10485760");
        }
        c.set("statistics.interval.ms", LAG_INTERVAL_MS.to_string());
        let lag = Arc::new(std::sync::atomic::AtomicI64::new(-1));
        let inner = c
            .create_with_context(LagContext(lag.clone()))
            .map_err(KafkaIoError::Config)?;
        Ok(Consumer { inner, lag })
    }

    /// Records on the assigned partitions not yet read (high watermark
    /// minus position, summed), as of librdkafka's last statistics; `None`
    /// while unknown.
    pub fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(Ordering::Relaxed)).ok()
    }

    /// Each partition of `topic` with its low and high watermarks: the
    /// first offset the log still holds and the offset of its next record.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>, KafkaIoError> {
        watermarks(&self.inner, topic)
    }

    /// The next offset the consumer will fetch on each assigned partition
    /// (`None` where librdkafka has no position yet).
    pub fn positions(&self) -> Result<Vec<(String, i32, Option<i64>)>, KafkaIoError> {
        use rdkafka::consumer::Consumer as _;
        let tpl = self.inner.position().map_err(KafkaIoError::Admin)?;
        Ok(tpl
            .elements()
            .iter()
            .map(|e| {
                let at = match e.offset() {
                    rdkafka::Offset::Offset(n) => Some(n),
                    _ => None,
                };
                (e.topic().to_string(), e.partition(), at)
            })
            .collect())
    }

    /// Adds these (topic, partition, next offset) positions to what is read.
    pub fn assign_more(&self, positions: &[(String, i32, i64)]) -> Result<(), KafkaIoError> {
        use rdkafka::consumer::Consumer as _;
        self.inner
            .incremental_assign(&partition_list(positions)?)
            .map_err(KafkaIoError::Admin)
    }

    /// Reads these (topic, partition, next offset) positions from now on.
    pub fn assign(&self, positions: &[(String, i32, i64)]) -> Result<(), KafkaIoError> {
        use rdkafka::consumer::Consumer as _;
        self.inner
            .assign(&partition_list(positions)?)
            .map_err(KafkaIoError::Admin)
    }

    /// Up to `max` records: waits up to `wait` for the first, then takes
    /// what is already fetched, and closes the batch as soon as none
    /// arrives for `IDLE` (or `wait` has passed since the first). A busy
    /// topic gives full batches, a quiet one small and prompt ones: a
    /// record never waits for a batch to fill.
    pub async fn poll_batch(&self, max: usize, wait: Duration) -> Result<Vec<Consumed>, KafkaIoError> {
        use rdkafka::Message as _;
        /// Gap that ends a batch: long enough to take a fetch response
        /// whole, short against any sink's write.
        const IDLE: Duration = Duration::from_millis(5);
        let mut out = Vec::new();
        let mut deadline = tokio::time::Instant::now() + wait;
        while out.len() < max {
            let until = if out.is_empty() {
                deadline
            } else {
                deadline.min(tokio::time::Instant::now() + IDLE)
            };
            let Ok(msg) = tokio::time::timeout_at(until, self.inner.recv()).await else {
                break;
            };
            let m = match msg {
                Ok(m) => m,
                // librdkafka reconnects by itself: a broker that is down or
                // restarting delays the batch, it does not end the consumer.
                Err(KafkaError::MessageConsumption(code)) if is_connectivity(code) => {
                    tracing::warn!(error = %code, "Kafka unreachable; the consumer keeps trying");
                    if out.is_empty() {
                        continue;
                    }
                    break;
                }
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)) => {
                    return Err(KafkaIoError::OffsetOutOfRange)
                }
                Err(e) => return Err(KafkaIoError::Receive(e)),
            };
            if out.is_empty() {
                deadline = tokio::time::Instant::now() + wait;
            }
            out.push(Consumed {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
            });
        }
        Ok(out)
    }

    /// Commits these (topic, partition, next offset) positions to the
    /// group, without waiting for the broker's answer.
    pub fn commit(&self, positions: &[(String, i32, i64)]) -> Result<(), KafkaIoError> {
        use rdkafka::consumer::Consumer as _;
        self.inner
            .commit(&partition_list(positions)?, rdkafka::consumer::CommitMode::Async)
            .map_err(KafkaIoError::Admin)
    }
}

/// (topic, partition, offset) triples as librdkafka's list.
fn partition_list(positions: &[(String, i32, i64)]) -> Result<rdkafka::TopicPartitionList, KafkaIoError> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (t, p, o) in positions {
        tpl.add_partition_offset(t, *p, rdkafka::Offset::Offset(*o))
            .map_err(KafkaIoError::Admin)?;
    }
    Ok(tpl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(name: &str, unclean: bool) -> TopicSettings {
        TopicSettings {
            name: name.into(),
            unclean_leader_election: unclean,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    #[test]
    fn unclean_leader_election_is_refused_by_topic_name() {
        assert!(check_durability(&[settings("a", false)]).is_ok());
        let err = check_durability(&[settings("a", false), settings("b", true)]).unwrap_err();
        assert!(err.is_fatal());
        assert!(err.to_string().contains("topic b"), "{err}");
    }

    #[test]
    fn a_record_size_bounds_its_parts() {
        let value = vec![0u8; 1000];
        let record = Record {
            topic: "t",
            key: b"key",
            value: Some(&value),
            headers: &[("h", b"v")],
        };
        let size = record_size(&record);
        assert!(size > 1000 + 3 + 2 + 61, "{size}");
        assert!(size < 1000 + 200, "{size}");
        let tombstone = Record { value: None, ..record };
        assert!(record_size(&tombstone) < 200);
    }
}
