//! The producer's Prometheus metrics; every name is here.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const CHANGES: &str = "contrail_producer_changes";
pub const BAD_INJECTED: &str = "contrail_producer_bad_injected";
pub const WRITE_SECONDS: &str = "contrail_producer_batch_write_seconds";
pub const RETRIES: &str = "contrail_producer_write_retries";
pub const REJECTED: &str = "contrail_producer_rejected";
pub const MALFORMED: &str = "contrail_producer_malformed_inputs";
pub const SOURCE_LAG: &str = "contrail_producer_source_lag_seconds";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// A rule name from the schema: a fixed, small set.
    pub rule: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub rejected: Family<RuleLabels, Counter>,
    pub malformed: Counter,
    /// Age of the newest report in the last batch: how far behind the source the producer runs.
    pub source_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    registry: Registry,
    pub changes: Family<OpLabels, Counter>,
    pub bad_injected: Family<KindLabels, Counter>,
    pub write_seconds: Histogram,
    pub retries: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let changes = Family::<OpLabels, Counter>::default();
        let bad_injected = Family::<KindLabels, Counter>::default();
        let write_seconds = Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]);
        let retries = Counter::default();
        let rejected = Family::<RuleLabels, Counter>::default();
        let malformed = Counter::default();
        let source_lag = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            SOURCE_LAG,
            "Age of the newest report in the last batch written",
            source_lag.clone(),
        );
        registry.register(
            MALFORMED,
            "Source rows or lines skipped as malformed",
            malformed.clone(),
        );
        registry.register(REJECTED, "Records dead-lettered, by broken rule", rejected.clone());
        registry.register(CHANGES, "Changes written to the target, by operation", changes.clone());
        registry.register(
            BAD_INJECTED,
            "Changes carrying injected bad data, by kind",
            bad_injected.clone(),
        );
        registry.register(WRITE_SECONDS, "Time to write one batch", write_seconds.clone());
        registry.register(RETRIES, "Batch writes retried after a transient error", retries.clone());
        Metrics {
            rejected,
            malformed,
            source_lag,
            registry,
            changes,
            bad_injected,
            write_seconds,
            retries,
        }
    }

    pub fn render(&self) -> String {
        metrics_server::render(&self.registry)
    }

    /// Changes written to the target, every op: for a caller in this
    /// process.
    pub fn changes_written(&self) -> u64 {
        ["insert", "update", "delete"]
            .into_iter()
            .map(|op| self.changes.get(&OpLabels { op }).map_or(0, |c| c.get()))
            .sum()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
