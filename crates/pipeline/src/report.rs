//! What a run reports: live progress while it runs, and the final report,
//! for people (text) and for machines (JSON).

use std::collections::BTreeMap;
use std::fmt;

use crate::latency::Percentiles;
use crate::verify::Verification;

/// A moment of a run, for the live view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub elapsed_s: f64,
    /// What the run is doing: "catching up", "producing", "draining".
    pub phase: &'static str,
    pub produced: u64,
    pub captured: u64,
    pub loaded: u64,
    pub rejected: u64,
    /// Records the sink has not read yet (librdkafka's consumer lag).
    pub kafka_lag: Option<u64>,
    /// WAL the slot holds beyond what Kafka has.
    pub slot_lag_bytes: u64,
    pub latency: Option<Percentiles>,
    /// Changes in the changelog, not yet in the current state.
    pub waiting: usize,
    /// Resident memory of the process, MiB.
    pub rss_mib: Option<f64>,
}

impl Progress {
    /// One line: the live view redraws it in place on a terminal, and
    /// prints it every few seconds otherwise.
    pub fn line(&self) -> String {
        let lag = self.kafka_lag.map_or_else(|| "-".to_string(), |l| l.to_string());
        let latency = self.latency.map_or_else(
            || "latency -".to_string(),
            |p| format!("latency p50 {:.0} ms p99 {:.0} ms", p.p50, p.p99),
        );
        let rss = self.rss_mib.map_or_else(String::new, |m| format!(" | rss {m:.0} MiB"));
        format!(
            "{:>6.1}s {:<9} produced {} | captured {} | loaded {} | rejected {} | kafka lag {} | slot lag {} | {}{}",
            self.elapsed_s,
            self.phase,
            self.produced,
            self.captured,
            self.loaded,
            self.rejected,
            lag,
            bytes(self.slot_lag_bytes),
            latency,
            rss
        )
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The final report; serialised as the `--report` JSON.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Report {
    /// Seconds the producer ran.
    pub duration_s: f64,
    /// The requested rate, changes per second (0: as fast as possible).
    pub rate: u64,
    /// Changes written to PostgreSQL.
    pub produced: u64,
    pub produced_by_op: BTreeMap<&'static str, u64>,
    /// Bad rows the simulator injected, by kind.
    pub injected_bad: BTreeMap<String, u64>,
    /// Changes the CDC stage read from the WAL (published or rejected).
    pub captured: u64,
    /// Changes the sink loaded into the changelog.
    pub loaded: u64,
    /// Changes dead-lettered by the CDC stage.
    pub rejected: u64,
    /// Rule violations behind them (a row can break several rules).
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Records the sink could not decode.
    pub sink_dead_lettered: u64,
    /// Changes loaded per second, from the first change produced until
    /// everything was loaded.
    pub throughput_per_s: f64,
    pub produced_per_s: f64,
    /// From the PostgreSQL commit to visible in the current-state table.
    pub latency_ms: Option<Percentiles>,
    /// How many changes the latency covers.
    pub latency_changes: u64,
    /// Changes committed in the first seconds of the run are loaded but
    /// not measured: the stages' start-up is not a steady-state latency.
    pub latency_warmup_s: f64,
    /// How often the warehouse was queried: latencies are late by up to this.
    pub latency_poll_ms: u64,
    /// Where the time goes, by the stages' own clocks (estimated from their
    /// histograms' buckets).
    pub stages: StageLatencies,
    /// Seconds from the producer's stop until the warehouse had everything.
    pub drain_s: f64,
    /// Resident memory of the process (MiB): once the warm-up is over,
    /// when the producer stopped, and the most seen in between.
    pub rss_mib_start: Option<f64>,
    pub rss_mib_end: Option<f64>,
    pub rss_mib_max: Option<f64>,
    /// Resident memory at each full minute of producing (MiB): a soak's
    /// trajectory, growth or plateau.
    pub rss_mib_per_minute: Vec<f64>,
    /// True only when the warehouse's current state equals the source.
    pub verified: bool,
    pub verification: Verification,
    /// Every change of the run in the changelog once or dead-lettered.
    pub accounting: crate::accounting::Accounting,
}

/// p50 and p99 in milliseconds of two stage histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageLatencies {
    /// From a transaction's commit to Kafka acknowledging its last event.
    pub cdc_commit_to_kafka_ack_ms: Option<[f64; 2]>,
    /// From the commit of a batch's newest change to its load completing.
    pub sink_commit_to_loaded_ms: Option<[f64; 2]>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_counts(f)?;
        self.fmt_timing(f)?;
        self.fmt_checks(f)
    }
}

impl Report {
    /// What was produced, captured, rejected and loaded.
    fn fmt_counts(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<String> = self.produced_by_op.iter().map(|(k, v)| format!("{v} {k}")).collect();
        writeln!(
            f,
            "produced   {:>9}  in {:.1} s ({:.0}/s): {}",
            self.produced,
            self.duration_s,
            self.produced_per_s,
            ops.join(", ")
        )?;
        writeln!(f, "captured   {:>9}  by the CDC stage", self.captured)?;
        writeln!(f, "rejected   {:>9}  dead-lettered by rule", self.rejected)?;
        for (rule, n) in &self.rejected_by_rule {
            writeln!(f, "             {n:>7}  {rule}")?;
        }
        if !self.injected_bad.is_empty() {
            let kinds: Vec<String> = self.injected_bad.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "             (injected by the simulator: {})", kinds.join(", "))?;
        }
        writeln!(f, "loaded     {:>9}  into Snowflake", self.loaded)?;
        if self.sink_dead_lettered > 0 {
            writeln!(
                f,
                "           {:>9}  records the sink could not decode",
                self.sink_dead_lettered
            )?;
        }
        Ok(())
    }

    /// Throughput, latency, memory.
    fn fmt_timing(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "throughput {:>9.0}/s end to end (drained {:.1} s after the producer stopped)",
            self.throughput_per_s, self.drain_s
        )?;
        match self.latency_ms {
            Some(p) => writeln!(
                f,
                "latency    p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms  max {:.0} ms  \
                 (commit in PostgreSQL → visible in Snowflake; {} changes, warehouse polled every {} ms)",
                p.p50, p.p95, p.p99, p.max, self.latency_changes, self.latency_poll_ms
            )?,
            None => writeln!(f, "latency    not measured (no change committed after the warm-up)")?,
        }
        let stage = |v: Option<[f64; 2]>| v.map_or("-".to_string(), |[a, b]| format!("p50 {a:.0} ms p99 {b:.0} ms"));
        writeln!(
            f,
            "           by the stages' clocks: commit → Kafka ack {}; commit → batch loaded {}",
            stage(self.stages.cdc_commit_to_kafka_ack_ms),
            stage(self.stages.sink_commit_to_loaded_ms)
        )?;
        if let (Some(a), Some(b), Some(m)) = (self.rss_mib_start, self.rss_mib_end, self.rss_mib_max) {
            writeln!(
                f,
                "memory     {a:.0} MiB resident after the warm-up, {b:.0} MiB at the end, {m:.0} MiB at most"
            )?;
        }
        Ok(())
    }

    /// The verification and the accounting.
    fn fmt_checks(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.verification;
        if v.verified {
            writeln!(
                f,
                "verified   the warehouse equals the source: {} rows, checksum {}{}",
                v.compared_rows,
                &v.source_checksum[..v.source_checksum.len().min(16)],
                if v.held_back_rows > 0 {
                    format!(
                        " ({} source rows whose last change broke a rule are held back)",
                        v.held_back_rows
                    )
                } else {
                    String::new()
                }
            )?;
        } else {
            writeln!(
                f,
                "NOT VERIFIED: source {} rows, warehouse {} rows",
                v.source_rows, v.warehouse_rows
            )?;
            for d in &v.differences {
                writeln!(f, "  {d}")?;
            }
        }
        let (a, c) = (&self.accounting, &self.accounting.counted);
        if a.ok {
            writeln!(
                f,
                "accounted  every change of the run once: {} captured of {} produced, {} in the changelog, {} dead-lettered",
                c.captured,
                c.produced,
                c.changelog_distinct,
                c.rejected + c.sink_dead_lettered
            )?;
        } else {
            writeln!(f, "NOT ACCOUNTED for:")?;
            for p in &a.problems {
                writeln!(f, "  {p}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_report_has_the_documented_fields() {
        let r = Report {
            latency_ms: Some(Percentiles {
                p50: 1.0,
                p95: 2.0,
                p99: 3.0,
                max: 4.0,
            }),
            ..Report::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        for field in [
            "produced",
            "captured",
            "loaded",
            "rejected",
            "throughput_per_s",
            "verified",
            "verification",
            "accounting",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        for p in ["p50", "p95", "p99", "max"] {
            assert!(v["latency_ms"][p].is_number(), "{p}");
        }
        assert!(r.to_string().contains("NOT VERIFIED"));
        assert!(r.to_string().contains("NOT ACCOUNTED"));
    }

    #[test]
    fn the_live_line() {
        let p = Progress {
            elapsed_s: 3.0,
            phase: "producing",
            produced: 10,
            slot_lag_bytes: 2048,
            ..Progress::default()
        };
        assert_eq!(
            p.line(),
            "   3.0s producing produced 10 | captured 0 | loaded 0 | rejected 0 | kafka lag - | slot lag 2.0 KiB | latency -"
        );
        let p = Progress {
            rss_mib: Some(41.6),
            ..p
        };
        assert!(p.line().ends_with("latency - | rss 42 MiB"), "{}", p.line());
    }
}
