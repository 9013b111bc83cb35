//! The idempotent, optionally tracked producer, its records and their sizes
//! (see the crate docs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::{KafkaConfig, KafkaIoError, TopicSettings};

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

/// Records librdkafka may hold before `send` waits.
const QUEUE_MAX_RECORDS: usize = 5_000;
/// Bytes it may hold, when that is more than two of the largest records.
const QUEUE_MAX_BYTES: usize = 16 << 20;

/// The producer queue's bounds, unless the configuration sets them.
/// Backpressure early: a slow broker makes `send` wait instead of queueing
/// librdkafka's defaults (100,000 records, 1 GiB), which would sit in memory
/// and time out there; the source keeps the backlog, durably. The queue was
/// the largest part of the CDC stage's peak memory in a backlog drain
/// (docs/BENCHMARKS.md), and 5,000 records are still about 80 ms of the
/// fastest drain, so batches stay full. The byte bound admits at least two
/// of the largest records, or one could never be queued at all.
fn queue_bounds(max_message_bytes: usize) -> [(&'static str, String); 2] {
    let kbytes = QUEUE_MAX_BYTES.max(2 * max_message_bytes).div_ceil(1024);
    [
        ("queue.buffering.max.messages", QUEUE_MAX_RECORDS.to_string()),
        ("queue.buffering.max.kbytes", kbytes.to_string()),
    ]
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
        let max_message_bytes = cfg
            .properties
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(CLIENT_MAX_MESSAGE_BYTES);
        let mut tuning = vec![
            ("linger.ms", linger.as_millis().to_string()),
            ("compression.type", "none".to_string()),
            ("message.timeout.ms", "120000".to_string()),
        ];
        tuning.extend(queue_bounds(max_message_bytes));
        let mut c = cfg.client_config(&tuning);
        c.set("enable.idempotence", "true").set("acks", "all");
        let inner: ThreadedProducer<Context> = c
            .create_with_context(Context(deliveries.clone()))
            .map_err(KafkaIoError::Config)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_queue_always_admits_the_largest_record() {
        let kbytes = |max: usize| queue_bounds(max)[1].1.parse::<usize>().unwrap();
        assert_eq!(kbytes(CLIENT_MAX_MESSAGE_BYTES), 16 * 1024);
        assert!(kbytes(100 << 20) * 1024 >= 2 * (100 << 20));
        assert_eq!(queue_bounds(1)[0].1, "5000");
    }
}
