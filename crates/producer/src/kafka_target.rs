//! The Kafka target: validated, registry-encoded FlightState records.
//!
//! At start the topics are created when missing and the key (`"string"`) and
//! value (`FlightState`) schemas are registered under `<topic>-key` and
//! `<topic>-value`: the registry is a start-up cost, never a per-record one.
//! Each change is then checked against the rules of the value schema; a
//! record that breaks one goes to the dead-letter topic, same bytes, with the
//! broken rules in headers; a delete is a tombstone. Records are encoded
//! straight from the generated type into the Confluent wire format and keyed
//! by icao24, so each aircraft's changes stay in order on one partition.

use std::time::Duration;

use avro_codec::AvroRecord;
use flight_types::{FlightState, Validate};
use kafka::{KafkaConfig, Producer, Record, TopicSpec};
use registry_client::RegistryClient;
use rules::EvalContext;
use simulator::{Change, Op};

use crate::ProducerError;

/// Kafka target settings.
#[derive(Debug, Clone)]
pub struct KafkaTargetConfig {
    pub kafka: KafkaConfig,
    pub registry_url: String,
    /// The registry's credentials and TLS (Confluent's settings).
    pub registry: registry_client::Security,
    pub topic: String,
    pub dead_letter_topic: String,
    pub partitions: i32,
    pub linger: Duration,
}

/// What one batch sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    pub records: u64,
    pub dead_lettered: u64,
}

pub struct KafkaTarget {
    producer: Producer,
    topic: String,
    dlq: String,
    key_id: u32,
    value_id: u32,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    violations: Vec<rules::Violation>,
    /// Dead-lettered records per broken rule since the last `take_rejections`.
    rejections: std::collections::HashMap<String, u64>,
}

impl std::fmt::Debug for KafkaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTarget")
            .field("topic", &self.topic)
            .field("key_id", &self.key_id)
            .field("value_id", &self.value_id)
            .finish_non_exhaustive()
    }
}

impl KafkaTarget {
    pub async fn connect(cfg: &KafkaTargetConfig) -> Result<KafkaTarget, ProducerError> {
        let topics: Vec<TopicSpec> = [&cfg.topic, &cfg.dead_letter_topic]
            .into_iter()
            .map(|name| TopicSpec {
                name: name.clone(),
                partitions: cfg.partitions,
                replication: 1,
                config: Vec::new(),
            })
            .collect();
        kafka::ensure_topics(&cfg.kafka, &topics)
            .await
            .map_err(ProducerError::Kafka)?;
        let registry =
            RegistryClient::with_security(&cfg.registry_url, &cfg.registry).map_err(ProducerError::Registry)?;
        let key_id = registry
            .register(&format!("{}-key", cfg.topic), "\"string\"")
            .await
            .map_err(ProducerError::Registry)?;
        let value_id = registry
            .register(&format!("{}-value", cfg.topic), FlightState::SCHEMA)
            .await
            .map_err(ProducerError::Registry)?;
        tracing::info!(topic = %cfg.topic, key_id, value_id, "schemas registered");
        Ok(KafkaTarget {
            producer: Producer::new(&cfg.kafka, cfg.linger).map_err(ProducerError::Kafka)?,
            topic: cfg.topic.clone(),
            dlq: cfg.dead_letter_topic.clone(),
            key_id,
            value_id,
            key_buf: Vec::with_capacity(32),
            value_buf: Vec::with_capacity(256),
            violations: Vec::new(),
            rejections: std::collections::HashMap::new(),
        })
    }

    /// Queues a batch; fails if an earlier delivery failed.
    pub fn send(&mut self, batch: &[Change], now_ms: i64) -> Result<Sent, ProducerError> {
        let mut sent = Sent::default();
        let ctx = EvalContext { now_ms };
        for c in batch {
            self.key_buf.clear();
            wire::write_header(&mut self.key_buf, self.key_id);
            avro_codec::put_string(&mut self.key_buf, &c.state.icao24);
            if c.op == Op::Delete {
                self.producer
                    .send(Record {
                        topic: &self.topic,
                        key: &self.key_buf,
                        value: None,
                        headers: &[],
                    })
                    .map_err(ProducerError::Kafka)?;
                sent.records += 1;
                continue;
            }
            self.value_buf.clear();
            wire::write_header(&mut self.value_buf, self.value_id);
            c.state.encode(&mut self.value_buf);
            self.violations.clear();
            FlightState::rule_set().evaluate_into(&c.state, &ctx, &mut self.violations);
            if self.violations.is_empty() {
                self.producer
                    .send(Record {
                        topic: &self.topic,
                        key: &self.key_buf,
                        value: Some(&self.value_buf),
                        headers: &[],
                    })
                    .map_err(ProducerError::Kafka)?;
                sent.records += 1;
            } else {
                for v in &self.violations {
                    *self.rejections.entry(v.rule.to_string()).or_default() += 1;
                }
                let rules: Vec<String> = self.violations.iter().map(|v| v.rule.to_string()).collect();
                let reasons: Vec<String> = self.violations.iter().map(ToString::to_string).collect();
                let why = changes::DeadLetter::new(changes::Stage::Producer, &self.topic, rules, reasons);
                self.producer
                    .dead_letter(&self.dlq, &self.key_buf, Some(&self.value_buf), &why)
                    .map_err(ProducerError::Kafka)?;
                sent.dead_lettered += 1;
            }
        }
        if self.producer.deliveries().failed() > 0 {
            // Surface the failure now rather than at shutdown.
            self.producer
                .flush(Duration::from_secs(60))
                .map_err(ProducerError::Kafka)?;
        }
        Ok(sent)
    }

    /// Waits until the broker acknowledged everything sent.
    pub fn finish(&self) -> Result<u64, ProducerError> {
        self.producer
            .flush(Duration::from_secs(120))
            .map_err(ProducerError::Kafka)?;
        Ok(self.producer.deliveries().acked())
    }

    /// Dead-lettered counts per broken rule since the last call.
    pub fn take_rejections(&mut self) -> Vec<(String, u64)> {
        self.rejections.drain().collect()
    }
}
