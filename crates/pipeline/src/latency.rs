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

use std::collections::{HashMap, VecDeque};

/// A change's position in the WAL: (commit LSN, LSN), the order the
/// current-state table moves forward in.
pub type Position = (u64, u64);

#[derive(Debug, Default)]
pub struct Tracker {
    pending: HashMap<String, VecDeque<(Position, i64)>>,
    waiting: usize,
    /// Latencies in microseconds, in the order they were observed.
    samples: Vec<i64>,
}

impl Tracker {
    /// A change of `key` at `pos`, committed at `commit_us` (Unix µs).
    /// Changes of one key arrive in position order (one partition per key).
    pub fn change(&mut self, key: String, pos: Position, commit_us: i64) {
        self.pending.entry(key).or_default().push_back((pos, commit_us));
        self.waiting += 1;
    }

    /// `key`'s current-state row stood at `pos` at `at_us`: every change of
    /// it up to `pos` is visible.
    pub fn seen(&mut self, key: &str, pos: Position, at_us: i64) {
        let Some(queue) = self.pending.get_mut(key) else { return };
        while queue.front().is_some_and(|(p, _)| *p <= pos) {
            if let Some((_, commit_us)) = queue.pop_front() {
                self.samples.push((at_us - commit_us).max(0));
                self.waiting -= 1;
            }
        }
        if queue.is_empty() {
            self.pending.remove(key);
        }
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

    pub fn measured(&self) -> usize {
        self.samples.len()
    }

    pub fn percentiles(&self) -> Option<Percentiles> {
        Percentiles::of(&self.samples)
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

impl Percentiles {
    /// Nearest-rank percentiles of samples in µs; `None` when empty.
    pub fn of(samples_us: &[i64]) -> Option<Percentiles> {
        if samples_us.is_empty() {
            return None;
        }
        let mut s = samples_us.to_vec();
        s.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
            s[i] as f64 / 1000.0
        };
        Some(Percentiles {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: rank(1.0),
        })
    }
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
        assert_eq!((p.p50, p.max), (7.0, 7.0));
        assert_eq!(t.measured(), 3);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let us: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        let p = Percentiles::of(&us).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[]), None);
        assert_eq!(Percentiles::of(&[3000]).unwrap().p99, 3.0);
    }
}
