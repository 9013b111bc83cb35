//! The sink's Prometheus metrics; every name is here.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub records: Counter,
    pub changes: Family<TopicLabels, Counter>,
    pub dead_lettered: Counter,
    pub warehouse_rejected: Counter,
    pub batch_seconds: Histogram,
    pub commit_to_visible: Histogram,
    pub kafka_lag: Gauge,
    pub registry_unavailable: Counter,
    pub registry_up: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            records: Counter::default(),
            changes: Family::default(),
            dead_lettered: Counter::default(),
            warehouse_rejected: Counter::default(),
            batch_seconds: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            commit_to_visible: Histogram::new([0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
            kafka_lag: Gauge::default(),
            registry_unavailable: Counter::default(),
            registry_up: Gauge::default(),
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
