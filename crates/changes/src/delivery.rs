//! The delivery contract between hops, and its bookkeeping: a source
//! position advances only past what the next hop holds durably.
//!
//! Every hop is a [`Source`] read by a stage that writes to a
//! [`Destination`]: PostgreSQL's slot → CDC stage → Kafka; Kafka → sink →
//! the warehouse; the producer → Kafka. The stage commits a source position
//! only once everything read before it is durable downstream, so a crash
//! anywhere replays, and never skips.
//!
//! ```text
//! send record ──▶ InFlight::start → n        (numbered in send order)
//! ack of n ─────▶ InFlight::done(n)          (acks arrive in any order)
//! source unit ──▶ Confirmations::push(last n of the unit, position)
//! advance ──────▶ Confirmations::durable(InFlight::durable_through())
//!                 → the units whose every record is acknowledged, oldest first
//! ```
//!
//! A record that never gets its acknowledgement (a failed delivery) stays
//! in flight for good, so nothing sent after it is confirmed: the source
//! replays from before it, and the next hop absorbs the duplicates.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::time::Duration;

/// The write side of a hop.
///
/// - **Durable** means the next hop keeps the record through its own
///   crash: Kafka acknowledged it (`acks=all`), or the warehouse statement
///   that holds it returned.
/// - [`Destination::send`] numbers records 1, 2, … in send order and may
///   wait: that is where backpressure happens (a full producer queue, a
///   statement that runs).
/// - [`Destination::durable_through`] is the highest number that is
///   durable together with every number before it. A stage advances its
///   source only past records at or below it ([`Confirmations`]).
/// - A record that fails is never durable, so nothing after it advances:
///   the source replays from before it, and the destination receives
///   duplicates. Every destination absorbs them (idempotent keys and
///   statements), which makes the whole path exactly once in effect.
/// - [`Destination::flush`] waits until everything sent is durable, or
///   fails if something sent since the last flush failed.
pub trait Destination {
    type Record<'a>;
    type Error;
    fn send(&self, record: Self::Record<'_>) -> impl Future<Output = Result<u64, Self::Error>>;
    fn durable_through(&self) -> u64;
    fn flush(&self, timeout: Duration) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Where a record was read: (topic, partition, offset).
pub trait Located {
    fn located(&self) -> (&str, i32, i64);
}

/// The read side of a hop: a log of records per (topic, partition), read
/// from stored positions.
///
/// - [`Source::poll`] returns up to `max` records (waiting up to `wait` for
///   the first; none is not an error), in log order within a partition.
/// - [`Source::commit`] stores next positions, (topic, partition, next
///   offset): the source opened again reads from there. Records after the
///   last commit are read again after a restart (at least once).
pub trait Source {
    type Record;
    type Error;
    fn poll(&self, max: usize, wait: Duration) -> impl Future<Output = Result<Vec<Self::Record>, Self::Error>>;
    fn commit(&self, next: &[(String, i32, i64)]) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Records sent and not yet acknowledged, by number.
#[derive(Debug, Default)]
pub struct InFlight {
    waiting: BTreeSet<u64>,
    last: u64,
}

impl InFlight {
    /// Numbers the next record sent (1, 2, …), in flight until [`InFlight::done`].
    pub fn start(&mut self) -> u64 {
        self.last += 1;
        self.waiting.insert(self.last);
        self.last
    }

    /// Record `n` is durable.
    pub fn done(&mut self, n: u64) {
        self.waiting.remove(&n);
    }

    /// The highest number such that it and every record before it are
    /// durable; 0 before the first.
    pub fn durable_through(&self) -> u64 {
        match self.waiting.first() {
            Some(first) => first - 1,
            None => self.last,
        }
    }
}

/// Units of the source (a transaction, a batch) waiting for their records
/// to be durable, in source order, each with the number of its last record.
#[derive(Debug)]
pub struct Confirmations<T> {
    waiting: VecDeque<(u64, T)>,
}

impl<T> Default for Confirmations<T> {
    fn default() -> Self {
        Confirmations {
            waiting: VecDeque::new(),
        }
    }
}

impl<T> Confirmations<T> {
    /// A unit whose records end with number `last` (from [`InFlight::start`]).
    pub fn push(&mut self, last: u64, unit: T) {
        self.waiting.push_back((last, unit));
    }

    /// The units now durable, oldest first, removed from the queue: those
    /// whose last record is at or below `durable_through`.
    pub fn durable(&mut self, durable_through: u64) -> Vec<T> {
        let mut ready = Vec::new();
        while self.waiting.front().is_some_and(|(last, _)| *last <= durable_through) {
            if let Some((_, unit)) = self.waiting.pop_front() {
                ready.push(unit);
            }
        }
        ready
    }

    /// The oldest unit still waiting.
    pub fn oldest(&self) -> Option<&T> {
        self.waiting.front().map(|(_, unit)| unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{contract, MemoryDestination, MemoryRecord, MemorySource};

    #[tokio::test]
    async fn the_memory_doubles_keep_the_contract() {
        let dest = MemoryDestination::default();
        contract::numbers_rise_and_a_flush_makes_all_durable(&dest, vec!["a", "b", "c"]).await;
        let dest = MemoryDestination::default();
        contract::a_failed_record_holds_back_what_follows(&dest, ["a", "b", "c"], |n| dest.fail(n)).await;

        let source = std::sync::Arc::new(MemorySource::default());
        for i in 0..10 {
            source.append("t", i % 3, i);
        }
        struct Shared(std::sync::Arc<MemorySource<i32>>);
        impl Source for Shared {
            type Record = MemoryRecord<i32>;
            type Error = crate::testing::Failed;
            async fn poll(&self, max: usize, wait: Duration) -> Result<Vec<Self::Record>, Self::Error> {
                self.0.poll(max, wait).await
            }
            async fn commit(&self, next: &[(String, i32, i64)]) -> Result<(), Self::Error> {
                self.0.commit(next).await
            }
        }
        let reopened = source.clone();
        contract::a_reopened_source_reads_from_its_commit(Shared(source), 10, 4, async move || {
            reopened.reopen();
            Shared(reopened)
        })
        .await;
    }

    /// Two transactions of records 1–2 and 3–5; acknowledgements out of
    /// order, across partitions: a transaction is confirmed only once
    /// every record up to its last is, and in source order.
    #[test]
    fn a_position_advances_only_past_records_acknowledged_in_any_order() {
        let (mut sent, mut units) = (InFlight::default(), Confirmations::default());
        let n: Vec<u64> = (0..5).map(|_| sent.start()).collect();
        assert_eq!(n, [1, 2, 3, 4, 5]);
        units.push(2, "tx A");
        units.push(5, "tx B");
        for ack in [5, 3] {
            sent.done(ack);
        }
        assert_eq!(sent.durable_through(), 0);
        assert!(
            units.durable(sent.durable_through()).is_empty(),
            "1 is not acknowledged yet"
        );
        sent.done(2);
        sent.done(1);
        assert_eq!(sent.durable_through(), 3);
        assert_eq!(units.durable(sent.durable_through()), ["tx A"]);
        assert_eq!(units.oldest(), Some(&"tx B"));
        sent.done(4);
        assert_eq!(units.durable(sent.durable_through()), ["tx B"]);
        assert_eq!(units.oldest(), None);
    }

    #[test]
    fn a_failed_record_holds_back_everything_after_it() {
        let (mut sent, mut units) = (InFlight::default(), Confirmations::default());
        let failed = sent.start();
        let later = sent.start();
        units.push(failed, 1);
        units.push(later, 2);
        sent.done(later); // the failed one is never done
        assert_eq!(sent.durable_through(), 0);
        assert!(units.durable(sent.durable_through()).is_empty());
    }

    #[test]
    fn nothing_sent_is_durable_through_zero() {
        let sent = InFlight::default();
        assert_eq!(sent.durable_through(), 0);
        let mut units: Confirmations<()> = Confirmations::default();
        units.push(0, ()); // a unit with no records (all filtered out)
        assert_eq!(units.durable(sent.durable_through()).len(), 1);
    }
}
