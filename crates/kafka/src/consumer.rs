//! Reading: the sink's consumer with explicitly assigned positions,
//! watermarks, and reading a topic's tail backwards at start-up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

use crate::{is_connectivity, KafkaConfig, KafkaIoError};

/// Each partition of `topic` with its end offset (high watermark): the
/// offset its next record will get.
pub fn high_watermarks(cfg: &KafkaConfig, topic: &str) -> Result<Vec<(i32, i64)>, KafkaIoError> {
    let consumer: rdkafka::consumer::BaseConsumer = cfg.client_config(&[]).create().map_err(KafkaIoError::Config)?;
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
    let mut c = cfg.client_config(&[]);
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
    /// The record's timestamp (ms since the Unix epoch): when the producer
    /// made it, or when the broker appended it on a `LogAppendTime` topic.
    pub timestamp_ms: Option<i64>,
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
        // A sink's batch is thousands of records: librdkafka's 1 MB per
        // partition took several fetches per batch, each one the broker's
        // work (the local broker's most of all). Memory stays bounded by
        // `queued.max.messages.kbytes`.
        let mut c = cfg.client_config(&[("max.partition.fetch.bytes", "10485760".to_string())]);
        // Positions are always assigned explicitly; one the log no longer
        // holds is an error for the caller, never a silent jump to either
        // end of the log.
        c.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false");
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
                timestamp_ms: m.timestamp().to_millis(),
            });
        }
        Ok(out)
    }

    /// [`Consumer::commit`], waiting for the broker's answer.
    pub fn commit_sync(&self, positions: &[(String, i32, i64)]) -> Result<(), KafkaIoError> {
        use rdkafka::consumer::Consumer as _;
        self.inner
            .commit(&partition_list(positions)?, rdkafka::consumer::CommitMode::Sync)
            .map_err(KafkaIoError::Admin)
    }

    /// The group's committed next offsets of these partitions of `topic`
    /// (those it has one for).
    pub fn committed(
        &self,
        topic: &str,
        partitions: impl Iterator<Item = i32>,
    ) -> Result<Vec<(i32, i64)>, KafkaIoError> {
        use rdkafka::consumer::Consumer as _;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, p);
        }
        let got = settled(|| self.inner.committed_offsets(tpl.clone(), Duration::from_secs(10)))?;
        Ok(got
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
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
