//! End-to-end latency bookkeeping, pure: which changes are waiting to show
//! in the warehouse's current-state table, and how long each one took.
//!
//! The observer (see `observe`) feeds it two kinds of facts read from the
//! warehouse: a change exists (a changelog row: key, commit LSN, LSN,
//! PostgreSQL commit time) and a key's current-state row stands at some
//! `(commit LSN, LSN)` at the end of a query. A change is visible from the
//! first observation of its key at or past its own position: either it, or
//! a later change of the same key that superseded it (a delete leaves a row
//! marked deleted at its position, so deletes count the same way). Its
//! latency is that observation's time minus its commit time.
//!
//! The two facts come in either order: the sink writes the current state
//! before the changelog, and the observer reads the changelog less often
//! than the current state. So observations of keys with no known change are
//! kept (each new position of a key with the time it was first seen) until
//! the change shows up, or until [`Tracker::forget_seen_before`] drops them;
//! a change whose observation was dropped is measured at the next one, late,
//! never early.

use std::collections::{HashMap, VecDeque};

/// A change's position in the WAL: (commit LSN, LSN), the order the
/// current-state table moves forward in.
pub type Position = (u64, u64);

#[derive(Debug, Default)]
pub struct Tracker {
    /// Per key, known changes not visible yet, in position order.
    pending: HashMap<String, VecDeque<(Position, i64)>>,
    /// Per key, each position its current-state row was seen at, with the
    /// time first seen, in position order: for changes not known yet.
    seen_at: HashMap<String, VecDeque<(Position, i64)>>,
    waiting: usize,
    latencies: LogHistogram,
    changelog_reads: u64,
}

impl Tracker {
    /// A change of `key` at `pos`, committed at `commit_us` (Unix µs).
    /// Changes of one key arrive in position order (one partition per key).
    pub fn change(&mut self, key: String, pos: Position, commit_us: i64) {
        if let Some(seen) = self.seen_at.get_mut(&key) {
            // Later changes of the key have later positions: what is
            // before this one cannot make them visible either.
            while seen.front().is_some_and(|(p, _)| *p < pos) {
                seen.pop_front();
            }
            if let Some((_, at_us)) = seen.front() {
                self.latencies.record(at_us - commit_us);
                return;
            }
        }
        self.pending.entry(key).or_default().push_back((pos, commit_us));
        self.waiting += 1;
    }

    /// `key`'s current-state row stood at `pos` at `at_us`: every change of
    /// it up to `pos` is visible.
    pub fn seen(&mut self, key: &str, pos: Position, at_us: i64) {
        if let Some(queue) = self.pending.get_mut(key) {
            while queue.front().is_some_and(|(p, _)| *p <= pos) {
                if let Some((_, commit_us)) = queue.pop_front() {
                    self.latencies.record(at_us - commit_us);
                    self.waiting -= 1;
                }
            }
            if queue.is_empty() {
                self.pending.remove(key);
            }
        }
        // Kept for changes of the key up to `pos` not known yet; a position
        // seen before keeps its first time.
        let seen = self.seen_at.entry(key.to_string()).or_default();
        if seen.back().is_none_or(|(p, _)| *p < pos) {
            seen.push_back((pos, at_us));
        }
    }

    /// Drops observations first made before `at_us` (memory stays bounded
    /// by the rows seen since). Call after a changelog read.
    pub fn forget_seen_before(&mut self, at_us: i64) {
        self.seen_at.retain(|_, seen| {
            seen.retain(|(_, at)| *at >= at_us);
            !seen.is_empty()
        });
    }

    /// Counts a completed read of the changelog.
    pub fn changelog_read(&mut self) {
        self.changelog_reads += 1;
    }

    /// Changelog reads completed so far: a reader waiting for every change
    /// to be known waits for two more (the first may have begun earlier).
    pub fn changelog_reads(&self) -> u64 {
        self.changelog_reads
    }

    /// Changes seen in the changelog, not yet in the current state.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// The lowest commit LSN still waiting: current-state rows below it
    /// cannot make anything visible.
    pub fn lowest_waiting(&self) -> Option<u64> {
        self.pending
            .values()
            .filter_map(|q| q.front())
            .map(|((c, _), _)| *c)
            .min()
    }

    pub fn measured(&self) -> u64 {
        self.latencies.total
    }

    pub fn percentiles(&self) -> Option<Percentiles> {
        self.latencies.percentiles()
    }
}

/// Buckets [`GROWTH`] apart from 1 µs: 2,400 of them reach past six hours.
const BUCKETS: usize = 2_400;
const GROWTH: f64 = 1.01;

/// Latencies in fixed logarithmic buckets 1% apart: constant memory and a
/// quantile in constant time however long a run lasts (a soak records
/// millions), each quantile within 1% of the exact one; the maximum is exact.
#[derive(Debug, Clone)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    max_us: i64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

impl LogHistogram {
    /// One latency in µs (a negative one, from clocks a hair apart, is 0).
    pub fn record(&mut self, us: i64) {
        let us = us.max(0);
        let i = if us <= 1 {
            0
        } else {
            ((us as f64).ln() / GROWTH.ln()) as usize
        };
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The nearest-rank `q` quantile in µs: the geometric middle of its
    /// bucket, never above the maximum.
    fn quantile_us(&self, q: f64) -> f64 {
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return GROWTH.powf(i as f64 + 0.5).min(self.max_us as f64);
            }
        }
        self.max_us as f64
    }

    /// p50, p95, p99 and max in milliseconds; `None` before the first.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.total == 0 {
            return None;
        }
        Some(Percentiles {
            p50: self.quantile_us(0.50) / 1000.0,
            p95: self.quantile_us(0.95) / 1000.0,
            p99: self.quantile_us(0.99) / 1000.0,
            max: self.max_us as f64 / 1000.0,
        })
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_visible_when_its_key_reaches_its_position() {
        let mut t = Tracker::default();
        t.change("a".into(), (10, 1), 1_000);
        t.change("a".into(), (20, 2), 2_000);
        t.change("b".into(), (20, 3), 2_000);
        assert_eq!(t.lowest_waiting(), Some(10));
        // `a` at its first change only.
        t.seen("a", (10, 1), 5_000);
        assert_eq!(t.waiting(), 2);
        // A row before a change makes nothing visible.
        t.seen("b", (15, 9), 6_000);
        assert_eq!(t.waiting(), 2);
        // A later change covers the ones before it.
        t.seen("a", (30, 0), 9_000);
        t.seen("b", (20, 3), 9_000);
        assert_eq!(t.waiting(), 0);
        assert_eq!(t.lowest_waiting(), None);
        let p = t.percentiles().unwrap();
        assert_eq!(p.max, 7.0);
        assert!((p.p50 - 7.0).abs() <= 0.07, "{p:?}");
        assert_eq!(t.measured(), 3);
    }

    #[test]
    fn a_change_seen_before_it_is_known_is_measured_at_the_first_sight() {
        let mut t = Tracker::default();
        // The current state moves before the changelog shows the changes.
        t.seen("a", (10, 1), 5_000);
        t.seen("a", (10, 1), 6_000);
        t.seen("a", (30, 3), 8_000);
        t.change("a".into(), (10, 1), 1_000);
        t.change("a".into(), (20, 2), 2_000);
        assert_eq!(t.waiting(), 0);
        assert_eq!(t.measured(), 2);
        // 4 ms then 6 ms: first sights, not the later repeat.
        assert_eq!(t.percentiles().unwrap().max, 6.0);
        // A change past every sight waits for the next one.
        t.change("a".into(), (40, 4), 9_000);
        assert_eq!(t.waiting(), 1);
        t.seen("a", (40, 4), 12_000);
        assert_eq!(t.waiting(), 0);
        assert_eq!(t.percentiles().unwrap().max, 6.0);
        assert_eq!(t.measured(), 3);
    }

    #[test]
    fn forgotten_sights_only_make_a_change_later() {
        let mut t = Tracker::default();
        t.seen("a", (10, 1), 5_000);
        t.seen("b", (10, 2), 7_000);
        t.forget_seen_before(6_000);
        t.change("a".into(), (10, 1), 1_000);
        t.change("b".into(), (10, 2), 1_000);
        assert_eq!(t.waiting(), 1);
        t.seen("a", (10, 1), 20_000);
        assert_eq!(t.waiting(), 0);
        assert_eq!(t.percentiles().unwrap().max, 19.0);
    }

    fn of(us: &[i64]) -> Option<Percentiles> {
        let mut h = LogHistogram::default();
        for &u in us {
            h.record(u);
        }
        h.percentiles()
    }

    fn within_1_percent(got: f64, exact: f64) -> bool {
        (got - exact).abs() <= exact * 0.01
    }

    #[test]
    fn nearest_rank_percentiles_within_one_percent() {
        let us: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        let p = of(&us).unwrap();
        assert!(within_1_percent(p.p50, 50.0), "{p:?}");
        assert!(within_1_percent(p.p95, 95.0), "{p:?}");
        assert!(within_1_percent(p.p99, 99.0), "{p:?}");
        assert_eq!(p.max, 100.0);
        assert_eq!(of(&[]), None);
        assert!(within_1_percent(of(&[3000]).unwrap().p99, 3.0));
        // Extremes land in the end buckets, not out of bounds.
        let p = of(&[-5, 0, 1, i64::MAX]).unwrap();
        assert_eq!(p.max, i64::MAX as f64 / 1000.0);
    }

    proptest::proptest! {
        #[test]
        fn every_quantile_is_within_one_percent_of_the_exact_one(
            mut us in proptest::collection::vec(1_000i64..100_000_000, 1..500),
        ) {
            let p = of(&us).unwrap();
            us.sort_unstable();
            let exact = |q: f64| us[((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1] as f64 / 1000.0;
            proptest::prop_assert!(within_1_percent(p.p50, exact(0.50)), "{:?} vs {}", p, exact(0.50));
            proptest::prop_assert!(within_1_percent(p.p99, exact(0.99)), "{:?} vs {}", p, exact(0.99));
            proptest::prop_assert_eq!(p.max, exact(1.0));
        }
    }
}
