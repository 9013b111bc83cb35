//! The CDC stage's two resume rules, kept apart from its I/O so that they
//! are tested on the delivery contract's memory doubles:
//!
//! - [`Confirmer`]: a transaction's end is confirmed to the slot only once
//!   Kafka holds every record of it and of every transaction before it
//!   (acknowledgements arrive in any order, across partitions).
//! - [`SentDeadLetters`]: after a restart the slot replays from the
//!   confirmed position, so changes rejected before the crash are rejected
//!   again. Their dead letters are read back from the end of the
//!   dead-letter topic at start, and each is not sent a second time: the
//!   dead-letter topic is read by people. (The change topics need no such
//!   care: the sink drops repeats by position.)

use std::collections::HashMap;

use changes::{Confirmations, Destination, Lsn};

/// A committed transaction waiting for Kafka's acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) end_lsn: Lsn,
    /// PostgreSQL µs.
    pub(crate) commit_ts: i64,
}

/// Committed transactions in commit order, and the position confirmed.
#[derive(Debug)]
pub(crate) struct Confirmer {
    pending: Confirmations<Committed>,
    confirmed: Lsn,
}

impl Confirmer {
    /// Starting at the slot's confirmed position.
    pub(crate) fn new(confirmed: Lsn) -> Confirmer {
        Confirmer {
            pending: Confirmations::default(),
            confirmed,
        }
    }

    /// A transaction committed; its records end with number `last_record`
    /// (from the destination's `send`).
    pub(crate) fn committed(&mut self, last_record: u64, tx: Committed) {
        self.pending.push(last_record, tx);
    }

    /// The transactions now durable in `kafka`, oldest first; the
    /// confirmed position moves to the end of the last.
    pub(crate) fn advance(&mut self, kafka: &impl Destination) -> Vec<Committed> {
        let durable = self.pending.durable(kafka.durable_through());
        if let Some(c) = durable.last() {
            self.confirmed = c.end_lsn;
        }
        durable
    }

    pub(crate) fn confirmed(&self) -> Lsn {
        self.confirmed
    }

    /// The oldest transaction not yet durable.
    pub(crate) fn oldest(&self) -> Option<&Committed> {
        self.pending.oldest()
    }
}

/// Dead letters a previous run sent for changes the slot replays, by (LSN,
/// key), with how many.
#[derive(Debug, Default)]
pub(crate) struct SentDeadLetters {
    sent: HashMap<(Lsn, Vec<u8>), u32>,
}

impl SentDeadLetters {
    /// One record of the dead-letter topic, newest first: counted if this
    /// stage (`topic_prefix`) sent it for a transaction committed at or
    /// after `resume`. Returns false once the scan can stop: transactions
    /// stream in commit order, so past an older one everything is older.
    pub(crate) fn read_back(
        &mut self,
        topic_prefix: &str,
        resume: Lsn,
        key: Option<&[u8]>,
        headers: &kafka::Headers,
    ) -> bool {
        let lsn = |name: &str| changes::find(headers, name).and_then(Lsn::parse);
        let ours = changes::find(headers, changes::header::TOPIC_PREFIX) == Some(topic_prefix);
        let (Some(lsn), Some(commit_lsn), true) = (lsn(changes::header::LSN), lsn(changes::header::COMMIT_LSN), ours)
        else {
            // Another stage's, or from before these headers: look further.
            return true;
        };
        if commit_lsn < resume {
            return false;
        }
        *self.sent.entry((lsn, key.unwrap_or_default().to_vec())).or_default() += 1;
        true
    }

    /// How many were read back.
    pub(crate) fn count(&self) -> u32 {
        self.sent.values().sum()
    }

    /// Whether the dead letter of the change at `lsn` with `key` was sent
    /// already; each one read back answers yes once.
    pub(crate) fn take(&mut self, lsn: Lsn, key: &[u8]) -> bool {
        if self.sent.is_empty() {
            return false;
        }
        let id = (lsn, key.to_vec());
        match self.sent.get_mut(&id) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.sent.remove(&id);
            }
            None => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changes::testing::MemoryDestination;
    use changes::{header, DeadLetter, Stage};

    fn tx(end_lsn: u64) -> Committed {
        Committed {
            end_lsn: Lsn(end_lsn),
            commit_ts: 0,
        }
    }

    /// Transactions A (records 1–2), B (3–5) and C (no records: all
    /// filtered). Acknowledgements come out of order; each transaction is
    /// confirmed only when it and everything before it is in Kafka.
    #[tokio::test]
    async fn a_transaction_is_confirmed_only_after_kafka_has_all_before_it() {
        let kafka = MemoryDestination::default();
        let mut c = Confirmer::new(Lsn(100));
        for _ in 0..2 {
            kafka.send("a").await.unwrap();
        }
        c.committed(2, tx(200));
        for _ in 0..3 {
            kafka.send("b").await.unwrap();
        }
        c.committed(5, tx(300));
        c.committed(5, tx(310));
        for n in [5, 3, 1] {
            kafka.ack(n);
        }
        assert!(c.advance(&kafka).is_empty(), "record 2 is not acknowledged");
        assert_eq!(c.confirmed(), Lsn(100));
        kafka.ack(2);
        assert_eq!(c.advance(&kafka), [tx(200)]);
        assert_eq!((c.confirmed(), c.oldest()), (Lsn(200), Some(&tx(300))));
        kafka.ack(4);
        assert_eq!(c.advance(&kafka), [tx(300), tx(310)]);
        assert_eq!(c.confirmed(), Lsn(310));
    }

    #[tokio::test]
    async fn a_failed_delivery_holds_the_slot_where_it_was() {
        let kafka = MemoryDestination::default();
        let mut c = Confirmer::new(Lsn(100));
        let failed = kafka.send("a").await.unwrap();
        c.committed(failed, tx(200));
        let later = kafka.send("b").await.unwrap();
        c.committed(later, tx(300));
        kafka.fail(failed);
        kafka.ack(later);
        assert!(c.advance(&kafka).is_empty());
        assert_eq!(
            c.confirmed(),
            Lsn(100),
            "the restart replays from before the failed record"
        );
    }

    /// A first run dead-letters three changes (one key twice, at one LSN:
    /// a delete and create of an update's key change) and crashes before
    /// confirming; the restart replays them from the slot.
    #[tokio::test]
    async fn dead_letters_sent_before_a_restart_are_not_sent_again() {
        let dlq: MemoryDestination<(Vec<u8>, kafka::Headers)> = MemoryDestination::default();
        let letter = |commit: u64, lsn: u64, prefix: &str| {
            DeadLetter::new(Stage::Cdc, "t", vec!["r".into()], vec!["why".into()])
                .with(header::TOPIC_PREFIX, prefix.to_string())
                .with(header::LSN, Lsn(lsn).to_string())
                .with(header::COMMIT_LSN, Lsn(commit).to_string())
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_bytes()))
                .collect::<kafka::Headers>()
        };
        for (key, commit, lsn, prefix) in [
            ("old", 90, 80, "p"),
            ("k1", 150, 140, "p"),
            ("other", 160, 155, "another-stage"),
            ("k2", 200, 190, "p"),
            ("k2", 200, 190, "p"),
        ] {
            dlq.send((key.as_bytes().to_vec(), letter(commit, lsn, prefix)))
                .await
                .unwrap();
        }
        let mut sent = SentDeadLetters::default();
        let mut visited = 0;
        for (_, (key, headers)) in dlq.sent().iter().rev() {
            visited += 1;
            if !sent.read_back("p", Lsn(100), Some(key), headers) {
                break;
            }
        }
        assert_eq!(
            visited, 5,
            "the scan stops at the first letter older than the resume position"
        );
        assert_eq!(sent.count(), 3);
        // The replay: each one sent before is recognised once, a new one is not.
        assert!(sent.take(Lsn(140), b"k1"));
        assert!(!sent.take(Lsn(140), b"k1"), "a second rejection of it is new");
        assert!(sent.take(Lsn(190), b"k2") && sent.take(Lsn(190), b"k2"));
        assert!(!sent.take(Lsn(190), b"k2"));
        assert!(
            !sent.take(Lsn(155), b"other"),
            "another stage's letters are not this one's"
        );
    }
}
