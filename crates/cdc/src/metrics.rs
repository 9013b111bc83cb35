//! The CDC stage's Prometheus metrics (every name is here), their typed
//! [`Snapshot`], and the [`Progress`] the stage publishes for callers in
//! the same process (`contrail run` waits on it instead of polling the
//! slot).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;

use changes::Lsn;
use metrics_server::{Buckets, Tally, Timings};
use tokio::sync::watch;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const EVENTS: &str = "contrail_cdc_events";
pub const DEAD_LETTERED: &str = "contrail_cdc_dead_lettered";
pub const DEAD_LETTERED_ROWS: &str = "contrail_cdc_dead_lettered_rows";
pub const OVERSIZED: &str = "contrail_cdc_oversized";
pub const DEAD_LETTERS_ALREADY_SENT: &str = "contrail_cdc_dead_letters_already_sent";
pub const TRANSACTIONS: &str = "contrail_cdc_transactions";
pub const TRANSACTION_EVENTS: &str = "contrail_cdc_transaction_events";
pub const KAFKA_ACKED: &str = "contrail_cdc_kafka_acknowledged_records";
pub const CONFIRMED_LSN: &str = "contrail_cdc_confirmed_lsn";
pub const SLOT_LAG_BYTES: &str = "contrail_cdc_slot_lag_bytes";
pub const SLOT_LAG_SECONDS: &str = "contrail_cdc_slot_lag_seconds";
pub const SNAPSHOT_ROWS: &str = "contrail_cdc_snapshot_rows";
pub const COMMIT_TO_ACK: &str = "contrail_cdc_commit_to_ack_seconds";

/// Bucket bounds of [`COMMIT_TO_ACK`], fine enough to read a p99 against
/// 100 ms, and reaching a minute so that an overloaded broker's backlog
/// reads as what it is rather than as the top bound.
pub const LATENCY_BUCKETS: [f64; 20] = [
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub table: String,
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct RuleLabels {
    /// A rule name from the schema, `decode` for a value that has no Avro
    /// form, or `size` for an event larger than its topic takes.
    pub rule: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub events: Family<EventLabels, Counter>,
    pub dead_lettered: Tally<RuleLabels>,
    pub dead_lettered_rows: Counter,
    pub dead_letters_already_sent: Counter,
    pub oversized: Counter,
    pub transactions: Counter,
    pub transaction_events: Histogram,
    pub kafka_acked: Gauge<u64, AtomicU64>,
    pub confirmed_lsn: Gauge<u64, AtomicU64>,
    pub slot_lag_bytes: Gauge<u64, AtomicU64>,
    pub slot_lag_seconds: Gauge<f64, AtomicU64>,
    pub snapshot_rows: Counter,
    pub commit_to_ack: Timings,
    /// What the stage has made durable, for followers in this process;
    /// it survives the stage's restarts, as the counters do.
    pub progress: watch::Sender<Progress>,
}

/// How far the stage has got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Everything committed before this position is in Kafka (the slot is
    /// told so at its next status update).
    pub confirmed: Lsn,
    /// Tables (`schema.name`) whose snapshot is done: their changes stream.
    pub snapshotted: BTreeSet<String>,
}

/// The counts a caller reads in process, typed.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Change events of one table by op code (`c`, `u`, `d`, `r`).
    pub events: BTreeMap<&'static str, u64>,
    /// Rows dead-lettered (each once), and by broken rule.
    pub dead_lettered_rows: u64,
    pub dead_lettered: BTreeMap<String, u64>,
    pub slot_lag_bytes: u64,
    pub commit_to_ack: Buckets,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            events: Family::default(),
            dead_lettered: Tally::default(),
            dead_lettered_rows: Counter::default(),
            dead_letters_already_sent: Counter::default(),
            oversized: Counter::default(),
            transactions: Counter::default(),
            transaction_events: Histogram::new([1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0]),
            kafka_acked: Gauge::default(),
            confirmed_lsn: Gauge::default(),
            slot_lag_bytes: Gauge::default(),
            slot_lag_seconds: Gauge::default(),
            snapshot_rows: Counter::default(),
            commit_to_ack: Timings::new(LATENCY_BUCKETS),
            progress: watch::Sender::new(Progress::default()),
            registry: Registry::default(),
        };
        registry.register(EVENTS, "Change events produced, by table and op", m.events.clone());
        registry.register(
            DEAD_LETTERED,
            "Changes dead-lettered, by broken rule",
            m.dead_lettered.clone(),
        );
        registry.register(
            DEAD_LETTERED_ROWS,
            "Changes dead-lettered, each once however many rules it breaks",
            m.dead_lettered_rows.clone(),
        );
        registry.register(
            DEAD_LETTERS_ALREADY_SENT,
            "Rejected changes replayed after a restart whose dead letter was already in the topic, not sent again",
            m.dead_letters_already_sent.clone(),
        );
        registry.register(
            OVERSIZED,
            "Changes larger than their topic takes (max.message.bytes), dead-lettered as a small record",
            m.oversized.clone(),
        );
        registry.register(TRANSACTIONS, "Source transactions captured", m.transactions.clone());
        registry.register(
            TRANSACTION_EVENTS,
            "Change events per source transaction (batch size)",
            m.transaction_events.clone(),
        );
        registry.register(KAFKA_ACKED, "Records acknowledged by Kafka", m.kafka_acked.clone());
        registry.register(
            CONFIRMED_LSN,
            "WAL position confirmed to the slot (everything before it is in Kafka)",
            m.confirmed_lsn.clone(),
        );
        registry.register(
            SLOT_LAG_BYTES,
            "WAL the slot holds beyond the confirmed position",
            m.slot_lag_bytes.clone(),
        );
        registry.register(
            SLOT_LAG_SECONDS,
            "Age of the newest confirmed commit",
            m.slot_lag_seconds.clone(),
        );
        registry.register(SNAPSHOT_ROWS, "Rows read by snapshots", m.snapshot_rows.clone());
        registry.register(
            COMMIT_TO_ACK,
            "From a transaction's commit in PostgreSQL to Kafka acknowledging its last event",
            m.commit_to_ack.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn render(&self) -> String {
        metrics_server::render(&self.registry)
    }

    /// The counts now; `events` are those of `table` (`schema.name`).
    pub fn snapshot(&self, table: &str) -> Snapshot {
        let events = ["c", "u", "d", "r"]
            .into_iter()
            .map(|op| {
                let labels = EventLabels {
                    table: table.to_string(),
                    op,
                };
                (op, self.events.get(&labels).map_or(0, |c| c.get()))
            })
            .collect();
        Snapshot {
            events,
            dead_lettered_rows: self.dead_lettered_rows.get(),
            dead_lettered: self
                .dead_lettered
                .snapshot()
                .into_iter()
                .map(|(l, n)| (l.rule, n))
                .collect(),
            slot_lag_bytes: self.slot_lag_bytes.get(),
            commit_to_ack: self.commit_to_ack.snapshot(),
        }
    }

    /// Publishes a new confirmed position.
    pub(crate) fn confirmed(&self, lsn: Lsn) {
        self.confirmed_lsn.set(lsn.0);
        self.progress.send_modify(|p| p.confirmed = lsn);
    }

    /// Publishes tables whose snapshot is done.
    pub(crate) fn snapshotted(&self, tables: impl IntoIterator<Item = String>) {
        self.progress.send_modify(|p| p.snapshotted.extend(tables));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
