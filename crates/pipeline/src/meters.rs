//! The stages' counts, read in process as typed snapshots of the metrics
//! they serve: the run's live view and report take the same numbers an
//! operator scrapes from `/metrics`, without rendering and parsing them.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics_server::Buckets;

use crate::report;

/// The stages' metrics, shared with the stages (and kept across their
/// restarts).
#[derive(Debug, Clone)]
pub(crate) struct Meters {
    pub producer: Arc<producer::metrics::Metrics>,
    pub cdc: Arc<cdc::metrics::Metrics>,
    pub sink: Arc<sink::metrics::Metrics>,
}

/// Counts read from the stages' metrics.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub produced: u64,
    pub captured: u64,
    pub loaded: u64,
    pub rejected: u64,
    pub rejected_by_rule: BTreeMap<String, u64>,
    pub sink_dead_lettered: u64,
    pub kafka_lag: Option<u64>,
    pub slot_lag_bytes: u64,
}

impl Counts {
    /// The counts since `base` was read (the stages count from their
    /// start, which includes any backlog the run caught up on); the lags
    /// are as they are now.
    pub(crate) fn since(self, base: &Counts) -> Counts {
        let rejected_by_rule = self
            .rejected_by_rule
            .into_iter()
            .map(|(rule, n)| {
                let before = base.rejected_by_rule.get(&rule).copied().unwrap_or(0);
                (rule, n.saturating_sub(before))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Counts {
            produced: self.produced.saturating_sub(base.produced),
            captured: self.captured.saturating_sub(base.captured),
            loaded: self.loaded.saturating_sub(base.loaded),
            rejected: self.rejected.saturating_sub(base.rejected),
            rejected_by_rule,
            sink_dead_lettered: self.sink_dead_lettered.saturating_sub(base.sink_dead_lettered),
            ..self
        }
    }
}

/// The CDC stage's and the sink's latency histograms at one moment, for
/// [`Meters::stage_latencies`] since then.
#[derive(Debug, Default)]
pub(crate) struct StageBuckets {
    cdc: Buckets,
    sink: Buckets,
}

impl Meters {
    pub(crate) fn new() -> Meters {
        Meters {
            producer: Arc::new(producer::metrics::Metrics::new()),
            cdc: Arc::new(cdc::metrics::Metrics::new()),
            sink: Arc::new(sink::metrics::Metrics::new()),
        }
    }

    pub(crate) fn stage_buckets(&self) -> StageBuckets {
        StageBuckets {
            cdc: self.cdc.commit_to_ack.snapshot(),
            sink: self.sink.commit_to_visible.snapshot(),
        }
    }

    /// The stages' latencies from their own histograms, counting only what
    /// they observed after `base` (a catch-up's backlog and the warm-up
    /// would otherwise weigh in).
    pub(crate) fn stage_latencies(&self, base: &StageBuckets) -> report::StageLatencies {
        let now = self.stage_buckets();
        let pair = |now: &Buckets, before: &Buckets| {
            let since = now.since(before);
            Some([since.quantile(0.5)? * 1000.0, since.quantile(0.99)? * 1000.0])
        };
        report::StageLatencies {
            cdc_commit_to_kafka_ack_ms: pair(&now.cdc, &base.cdc),
            sink_commit_to_loaded_ms: pair(&now.sink, &base.sink),
        }
    }

    /// The counts now; `table` is the source table (`schema.name`).
    pub(crate) fn counts(&self, table: &str) -> Counts {
        let c = self.cdc.snapshot(table);
        let s = self.sink.snapshot();
        let changes: u64 = ["c", "u", "d"].iter().filter_map(|op| c.events.get(op)).sum();
        Counts {
            produced: self.producer.changes_written(),
            captured: changes + c.dead_lettered_rows,
            loaded: s.changes,
            rejected: c.dead_lettered_rows,
            rejected_by_rule: c.dead_lettered,
            sink_dead_lettered: s.dead_lettered,
            kafka_lag: Some(s.kafka_lag),
            slot_lag_bytes: c.slot_lag_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_since_a_base_leave_out_the_backlog_and_keep_the_lags() {
        let base = Counts {
            produced: 0,
            captured: 900,
            loaded: 880,
            rejected: 20,
            rejected_by_rule: [("a".to_string(), 15), ("b".to_string(), 5)].into(),
            sink_dead_lettered: 1,
            kafka_lag: Some(7),
            slot_lag_bytes: 100,
        };
        let now = Counts {
            produced: 50,
            captured: 950,
            loaded: 925,
            rejected: 25,
            rejected_by_rule: [("a".to_string(), 15), ("b".to_string(), 8), ("c".to_string(), 2)].into(),
            sink_dead_lettered: 1,
            kafka_lag: Some(3),
            slot_lag_bytes: 40,
        };
        let c = now.since(&base);
        assert_eq!(
            (c.produced, c.captured, c.loaded, c.rejected, c.sink_dead_lettered),
            (50, 50, 45, 5, 0)
        );
        assert_eq!(c.rejected_by_rule, [("b".to_string(), 3), ("c".to_string(), 2)].into());
        assert_eq!((c.kafka_lag, c.slot_lag_bytes), (Some(3), 40));
    }

    /// The typed reading and the text an operator scrapes agree.
    #[test]
    fn counts_read_what_the_stages_count() {
        let m = Meters::new();
        let table = "public.flight_state";
        m.cdc
            .events
            .get_or_create(&cdc::metrics::EventLabels {
                table: table.into(),
                op: "u",
            })
            .inc_by(7);
        m.cdc.dead_lettered_rows.inc_by(2);
        m.cdc
            .dead_lettered
            .inc_by(&cdc::metrics::RuleLabels { rule: "r".into() }, 2);
        m.sink
            .changes
            .inc_by(&sink::metrics::TopicLabels { topic: "t".into() }, 5);
        m.producer
            .changes
            .get_or_create(&producer::metrics::OpLabels { op: "insert" })
            .inc_by(9);
        let c = m.counts(table);
        assert_eq!((c.produced, c.captured, c.loaded, c.rejected), (9, 9, 5, 2));
        assert_eq!(c.rejected_by_rule, [("r".to_string(), 2)].into());
        assert!(m
            .cdc
            .render()
            .contains("contrail_cdc_dead_lettered_total{rule=\"r\"} 2"));
    }
}
