//! Kafka as both sides of the delivery contract ([`changes::Destination`],
//! [`changes::Source`]).
//!
//! - [`Producer`] is a destination: durable is acknowledged by every
//!   in-sync replica (`acks=all`); a tracked producer numbers its records
//!   and reports [`Deliveries::acked_through`](crate::Deliveries::acked_through).
//!   Its backpressure is librdkafka's queue: `send` waits while it is full.
//! - [`GroupSource`] is a source whose positions are the consumer group's
//!   committed offsets, Kafka's own way. The sink keeps its positions in
//!   the warehouse instead, next to the data (see the sink crate), and
//!   builds on [`Consumer`] directly.

use std::time::Duration;

use crate::{Consumed, Consumer, KafkaConfig, KafkaIoError, Producer, Record};

impl changes::Destination for Producer {
    type Record<'a> = Record<'a>;
    type Error = KafkaIoError;

    async fn send(&self, record: Self::Record<'_>) -> Result<u64, KafkaIoError> {
        Producer::send(self, record)
    }

    fn durable_through(&self) -> u64 {
        self.deliveries().acked_through()
    }

    async fn flush(&self, timeout: Duration) -> Result<(), KafkaIoError> {
        Producer::flush(self, timeout)
    }
}

impl changes::Located for Consumed {
    fn located(&self) -> (&str, i32, i64) {
        (&self.topic, self.partition, self.offset)
    }
}

/// Every partition of a topic, read from the group's committed offsets
/// (from the log's start where the group has none).
#[derive(Debug)]
pub struct GroupSource {
    consumer: Consumer,
}

impl GroupSource {
    pub fn open(cfg: &KafkaConfig, group_id: &str, topic: &str) -> Result<GroupSource, KafkaIoError> {
        let consumer = Consumer::new(cfg, group_id)?;
        let logs = consumer.watermarks(topic)?;
        let committed = consumer.committed(topic, logs.iter().map(|(p, _, _)| *p))?;
        let start: Vec<(String, i32, i64)> = logs
            .iter()
            .map(|&(p, low, _)| {
                let at = committed.iter().find(|(cp, _)| *cp == p).map_or(low, |(_, o)| *o);
                (topic.to_string(), p, at)
            })
            .collect();
        consumer.assign(&start)?;
        Ok(GroupSource { consumer })
    }
}

impl changes::Source for GroupSource {
    type Record = Consumed;
    type Error = KafkaIoError;

    async fn poll(&self, max: usize, wait: Duration) -> Result<Vec<Consumed>, KafkaIoError> {
        self.consumer.poll_batch(max, wait).await
    }

    /// Waits for the broker: once this returns, a source opened again
    /// reads from these positions.
    async fn commit(&self, next: &[(String, i32, i64)]) -> Result<(), KafkaIoError> {
        self.consumer.commit_sync(next)
    }
}
