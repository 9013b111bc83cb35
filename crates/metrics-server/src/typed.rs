//! Metrics that the process serving them also reads back, typed.
//!
//! A stage counts into Prometheus metrics for `/metrics`; a caller in the
//! same process (`contrail run`, a test) reads the same numbers as values
//! instead of rendering them to text and parsing that back. The two kinds
//! prometheus-client cannot read back are wrapped here:
//!
//! - [`Timings`]: a histogram whose buckets can be read ([`Buckets`]), with
//!   quantiles since an earlier reading.
//! - [`Tally`]: a counter per label set whose label sets can be listed.
//!
//! Both encode exactly as the metric they wrap.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;

/// A Prometheus histogram with its bucket counts kept readable. Clones
/// share their counts, as prometheus-client's metrics do.
#[derive(Debug, Clone)]
pub struct Timings {
    histogram: Histogram,
    bounds: Arc<[f64]>,
    /// One count per bound, then one past the last (`+Inf`).
    counts: Arc<[AtomicU64]>,
}

impl Timings {
    /// A histogram with these upper bounds (ascending), as
    /// [`Histogram::new`] takes them.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Timings {
        let bounds: Arc<[f64]> = bounds.into_iter().collect();
        Timings {
            histogram: Histogram::new(bounds.iter().copied()),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
        }
    }

    pub fn observe(&self, v: f64) {
        self.histogram.observe(v);
        // The first bucket whose bound is at or above `v`, as Prometheus'
        // `le` counts; NaN lands past the last.
        let i = if v.is_nan() {
            self.bounds.len()
        } else {
            self.bounds.partition_point(|b| *b < v)
        };
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The bucket counts now.
    pub fn snapshot(&self) -> Buckets {
        Buckets {
            bounds: self.bounds.to_vec(),
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
        }
    }
}

impl EncodeMetric for Timings {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.histogram.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.histogram.metric_type()
    }
}

/// A histogram's bucket counts at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Upper bounds, ascending.
    pub bounds: Vec<f64>,
    /// Observations per bucket (not cumulative), one more than `bounds`:
    /// the last counts those above every bound.
    pub counts: Vec<u64>,
}

impl Buckets {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The observations made after `base` was read (of the same histogram).
    pub fn since(&self, base: &Buckets) -> Buckets {
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(base.counts.get(i).copied().unwrap_or(0)))
            .collect();
        Buckets {
            bounds: self.bounds.clone(),
            counts,
        }
    }

    /// The `q` quantile by linear interpolation within its bucket, as
    /// PromQL's `histogram_quantile` answers (past the last bound: that
    /// bound); `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let (mut lower, mut below) = (0.0, 0.0);
        for (i, n) in self.counts.iter().enumerate() {
            let upto = below + *n as f64;
            if upto >= rank {
                let Some(upper) = self.bounds.get(i) else {
                    return Some(lower);
                };
                let share = if *n > 0 { (rank - below) / *n as f64 } else { 1.0 };
                return Some(lower + (upper - lower) * share);
            }
            lower = self.bounds.get(i).copied().unwrap_or(lower);
            below = upto;
        }
        Some(lower)
    }
}

/// Counters by label set, whose label sets can be listed (a rule's name, a
/// topic): [`Tally::snapshot`] reads every one.
#[derive(Debug, Clone)]
pub struct Tally<L: Clone + Hash + Eq + Ord + EncodeLabelSet + std::fmt::Debug> {
    family: Family<L, Counter>,
    seen: Arc<Mutex<std::collections::BTreeSet<L>>>,
}

impl<L: Clone + Hash + Eq + Ord + EncodeLabelSet + std::fmt::Debug> Default for Tally<L> {
    fn default() -> Self {
        Tally {
            family: Family::default(),
            seen: Arc::default(),
        }
    }
}

impl<L: Clone + Hash + Eq + Ord + EncodeLabelSet + std::fmt::Debug> Tally<L> {
    pub fn inc(&self, labels: &L) {
        self.inc_by(labels, 1);
    }

    pub fn inc_by(&self, labels: &L, n: u64) {
        if self.family.get(labels).is_none() {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(labels.clone());
        }
        self.family.get_or_create(labels).inc_by(n);
    }

    /// The count of one label set (0 if never counted).
    pub fn get(&self, labels: &L) -> u64 {
        self.family.get(labels).map_or(0, |c| c.get())
    }

    /// Every label set counted, with its count.
    pub fn snapshot(&self) -> BTreeMap<L, u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        seen.into_iter()
            .map(|l| {
                let n = self.get(&l);
                (l, n)
            })
            .collect()
    }

    /// The sum over every label set.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

impl<L: Clone + Hash + Eq + Ord + EncodeLabelSet + std::fmt::Debug> EncodeMetric for Tally<L> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.family.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.family.metric_type()
    }

    fn is_empty(&self) -> bool {
        self.family.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_bucket_as_prometheus_and_interpolate_quantiles() {
        let t = Timings::new([0.1, 0.2]);
        for _ in 0..50 {
            t.observe(0.05);
        }
        for _ in 0..40 {
            t.observe(0.2); // on the bound: `le` counts it there
        }
        for _ in 0..10 {
            t.observe(5.0);
        }
        let b = t.snapshot();
        assert_eq!(b.counts, [50, 40, 10]);
        assert_eq!(b.quantile(0.5), Some(0.1));
        assert!((b.quantile(0.7).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(b.quantile(0.99), Some(0.2), "past the last bound: that bound");
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn quantiles_since_an_earlier_reading_leave_its_observations_out() {
        let t = Timings::new([0.1, 1.0]);
        for _ in 0..40 {
            t.observe(9.0);
        }
        let base = t.snapshot();
        for _ in 0..60 {
            t.observe(0.05);
        }
        assert_eq!(t.snapshot().quantile(0.99), Some(1.0));
        assert!(t.snapshot().since(&base).quantile(0.99).unwrap() <= 0.1);
        assert_eq!(base.since(&base).quantile(0.5), None);
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, prometheus_client::encoding::EncodeLabelSet)]
    struct Rule {
        rule: String,
    }

    #[test]
    fn a_tally_lists_its_label_sets_and_renders_as_its_family() {
        let t: Tally<Rule> = Tally::default();
        let (a, b) = (Rule { rule: "a".into() }, Rule { rule: "b".into() });
        t.inc(&a);
        t.inc_by(&b, 3);
        t.inc(&a);
        assert_eq!(t.snapshot(), [(a.clone(), 2), (b, 3)].into());
        assert_eq!((t.get(&a), t.total()), (2, 5));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("contrail_x", "x", t.clone());
        let text = crate::render(&registry);
        assert!(text.contains("contrail_x_total{rule=\"a\"} 2"), "{text}");
    }
}
