//! The delivery contract's bookkeeping: a source position advances only
//! past what the next hop holds durably.
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
