//! The sink's Prometheus metrics (every name is here), their typed
//! [`Snapshot`], and the [`Progress`] the sink publishes for callers in the
//! same process (`contrail run` waits on it instead of polling the
//! positions table).

use std::collections::BTreeMap;

use metrics_server::{Buckets, Tally, Timings};
use tokio::sync::watch;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const RECORDS: &str = "contrail_sink_records";
pub const CHANGES: &str = "contrail_sink_changes_loaded";
pub const DEAD_LETTERED: &str = "contrail_sink_dead_lettered";
pub const WAREHOUSE_REJECTED: &str = "contrail_sink_warehouse_rejected";
pub const BATCH_SECONDS: &str = "contrail_sink_batch_seconds";
pub const COMMIT_TO_VISIBLE: &str = "contrail_sink_commit_to_visible_seconds";
pub const KAFKA_LAG: &str = "contrail_sink_kafka_lag_records";
pub const REGISTRY_UNAVAILABLE: &str = "contrail_sink_registry_unavailable";
pub const REGISTRY_UP: &str = "contrail_sink_registry_up";

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub records: Counter,
    pub changes: Tally<TopicLabels>,
    pub dead_lettered: Counter,
    pub warehouse_rejected: Counter,
    pub batch_seconds: Histogram,
    pub commit_to_visible: Timings,
    pub kafka_lag: Gauge,
    pub registry_unavailable: Counter,
    pub registry_up: Gauge,
    /// What the sink has made durable, for followers in this process; it
    /// survives the sink's restarts, as the counters do.
    pub progress: watch::Sender<Progress>,
}

/// How far the sink has got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Next offset per (topic, partition) stored in the warehouse: every
    /// record before it is loaded (or dead-lettered).
    pub stored: BTreeMap<(String, i32), i64>,
}

/// The counts a caller reads in process, typed.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub records: u64,
    /// Changes loaded, every topic.
    pub changes: u64,
    pub dead_lettered: u64,
    pub kafka_lag: u64,
    pub commit_to_visible: Buckets,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            records: Counter::default(),
            changes: Tally::default(),
            dead_lettered: Counter::default(),
            warehouse_rejected: Counter::default(),
            batch_seconds: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            commit_to_visible: Timings::new([0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
            kafka_lag: Gauge::default(),
            registry_unavailable: Counter::default(),
            registry_up: Gauge::default(),
            progress: watch::Sender::new(Progress::default()),
            registry: Registry::default(),
        };
        m.registry_up.set(1);
        registry.register(
            RECORDS,
            "Kafka records consumed (events, tombstones, dead letters)",
            m.records.clone(),
        );
        registry.register(
            CHANGES,
            "Changes loaded into the changelog, by topic",
            m.changes.clone(),
        );
        registry.register(
            DEAD_LETTERED,
            "Records sent to the dead-letter topic: they did not decode, or the warehouse rejected them",
            m.dead_lettered.clone(),
        );
        registry.register(
            WAREHOUSE_REJECTED,
            "Records the warehouse rejected (a data error on their values alone), sent to the dead-letter topic",
            m.warehouse_rejected.clone(),
        );
        registry.register(
            BATCH_SECONDS,
            "Time to load one batch into the warehouse",
            m.batch_seconds.clone(),
        );
        registry.register(
            COMMIT_TO_VISIBLE,
            "From the PostgreSQL commit of a batch's newest change to its load completing in the warehouse",
            m.commit_to_visible.clone(),
        );
        registry.register(
            KAFKA_LAG,
            "Records on the assigned partitions not yet read (librdkafka's consumer lag, refreshed every second)",
            m.kafka_lag.clone(),
        );
        registry.register(
            REGISTRY_UNAVAILABLE,
            "Schema lookups that failed because the registry was unavailable (retried; the records waited)",
            m.registry_unavailable.clone(),
        );
        registry.register(
            REGISTRY_UP,
            "1 while schema lookups succeed, 0 while the sink waits for the registry",
            m.registry_up.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn render(&self) -> String {
        metrics_server::render(&self.registry)
    }

    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            records: self.records.get(),
            changes: self.changes.total(),
            dead_lettered: self.dead_lettered.get(),
            kafka_lag: u64::try_from(self.kafka_lag.get()).unwrap_or(0),
            commit_to_visible: self.commit_to_visible.snapshot(),
        }
    }

    /// Publishes positions now stored (they only move forward).
    pub(crate) fn stored(&self, positions: impl IntoIterator<Item = (String, i32, i64)>) {
        self.progress.send_modify(|p| {
            for (t, part, next) in positions {
                let at = p.stored.entry((t, part)).or_insert(next);
                *at = (*at).max(next);
            }
        });
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
