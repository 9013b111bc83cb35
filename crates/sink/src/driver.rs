//! The sink's loop over its two sides, and its position rule: a batch's
//! positions are stored only after the batch is written, so a failed batch
//! is read again, never skipped.
//!
//! ```text
//! BatchReader::read ─▶ batch ─▶ BatchWriter::write ─▶ Ok ─▶ positions unstored
//!       ▲  (behind: the next batch is read                      │ due (1 s) or quiet
//!       │   while this one is written)                          ▼
//!       └──────────────────────────────────────── BatchWriter::store(positions)
//! write fails ─▶ the loop ends with the error: nothing of that batch (or
//!                after it) is stored, and the restart reads it again
//! ```
//!
//! The real sides are `Reader` (Kafka, registry, placement) and `Writer`
//! (the warehouse's statements); the tests drive the same loop on the
//! delivery contract's memory doubles.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::{SinkError, Summary};

/// How often, at most, positions are stored while batches keep coming.
/// Storing them is a statement the next batch waits for (a fifth of a
/// small batch's time); storing them later only means a crash replays more,
/// which the idempotent statements absorb. When the topics go quiet, and
/// when the sink stops, they are stored at once.
pub(crate) const POSITIONS_EVERY: Duration = Duration::from_secs(1);

/// A batch as the loop sees it.
pub(crate) trait Batch {
    /// Records read (loaded, dead-lettered or tombstones).
    fn records(&self) -> usize;
    /// Records the read side dead-lettered.
    fn dead_lettered(&self) -> u64;
    /// Next offset per (topic, partition), taken out for the positions.
    fn take_next(&mut self) -> BTreeMap<(String, i32), i64>;
}

pub(crate) trait BatchReader {
    type Batch: Batch;
    /// The next batch; `None` when none came or the sink stops.
    async fn read(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<Option<Self::Batch>, SinkError>;
}

pub(crate) trait BatchWriter<B> {
    /// Writes a batch durably; returns its changes and the records the
    /// warehouse rejected (dead-lettered).
    async fn write(&self, batch: B) -> Result<(u64, u64), SinkError>;
    /// Stores next positions (topic, partition, next offset) of batches
    /// written.
    async fn store(&self, next: Vec<(String, i32, i64)>) -> Result<(), SinkError>;
}

/// Positions of written batches not stored yet, and when positions were
/// last stored (see [`POSITIONS_EVERY`]).
pub(crate) struct Unstored {
    pub(crate) next: BTreeMap<(String, i32), i64>,
    pub(crate) stored_at: Instant,
}

impl Unstored {
    pub(crate) fn new() -> Unstored {
        Unstored {
            next: BTreeMap::new(),
            stored_at: Instant::now(),
        }
    }

    pub(crate) fn add(&mut self, next: BTreeMap<(String, i32), i64>) {
        for (tp, offset) in next {
            let o = self.next.entry(tp).or_insert(offset);
            *o = (*o).max(offset);
        }
    }

    pub(crate) fn due(&self) -> bool {
        self.stored_at.elapsed() >= POSITIONS_EVERY
    }

    async fn store<B>(&mut self, writer: &impl BatchWriter<B>) -> Result<(), SinkError> {
        if self.next.is_empty() {
            return Ok(());
        }
        let next = std::mem::take(&mut self.next)
            .into_iter()
            .map(|((t, p), o)| (t, p, o))
            .collect();
        writer.store(next).await?;
        self.stored_at = Instant::now();
        Ok(())
    }
}

/// Runs until `shutdown` turns true (then stores what is written) or an
/// error. Caught up, reading and writing take turns: records that arrive
/// while a batch is written form the next one, so a batch grows with the
/// load. (Reading ahead there would close the next batch on the first
/// records of each write and double the latency.) Behind, a full batch
/// (`max_rows`) means more are queued: the next one is read while this one
/// is written, so the warehouse does not wait for the sink.
pub(crate) async fn drive<R, W>(
    reader: &mut R,
    writer: &W,
    max_rows: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Summary, SinkError>
where
    R: BatchReader,
    W: BatchWriter<R::Batch>,
{
    let mut summary = Summary::default();
    let mut ahead: Option<R::Batch> = None;
    let mut unstored = Unstored::new();
    loop {
        let stopping = *shutdown.borrow();
        let mut batch = match ahead.take() {
            Some(b) => b,
            None if stopping => break,
            None => match reader.read(shutdown).await? {
                Some(b) => b,
                None => {
                    // Quiet: everything written gets its positions now.
                    unstored.store(writer).await?;
                    continue;
                }
            },
        };
        summary.records += batch.records() as u64;
        summary.dead_lettered += batch.dead_lettered();
        let next = batch.take_next();
        let full = batch.records() >= max_rows && !stopping;
        let (written, rejected) = if full {
            let (written, read) = tokio::join!(writer.write(batch), reader.read(shutdown));
            ahead = read?;
            written?
        } else {
            writer.write(batch).await?
        };
        summary.changes += written;
        summary.dead_lettered += rejected;
        summary.batches += 1;
        unstored.add(next);
        if unstored.due() {
            unstored.store(writer).await?;
        }
    }
    unstored.store(writer).await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use changes::testing::{MemoryRecord, MemorySource};
    use changes::Source as _;

    use super::*;

    struct TestBatch {
        records: Vec<MemoryRecord<u32>>,
        next: BTreeMap<(String, i32), i64>,
    }

    impl Batch for TestBatch {
        fn records(&self) -> usize {
            self.records.len()
        }
        fn dead_lettered(&self) -> u64 {
            0
        }
        fn take_next(&mut self) -> BTreeMap<(String, i32), i64> {
            std::mem::take(&mut self.next)
        }
    }

    /// Batches of `size` from a memory source; once it is drained, the
    /// sink is told to stop.
    struct Reader<'a>(&'a MemorySource<u32>, usize, watch::Sender<bool>);

    impl BatchReader for Reader<'_> {
        type Batch = TestBatch;
        async fn read(&mut self, _: &mut watch::Receiver<bool>) -> Result<Option<TestBatch>, SinkError> {
            let records = self.0.poll(self.1, Duration::ZERO).await.unwrap();
            if records.is_empty() {
                self.2.send_replace(true);
                return Ok(None);
            }
            let mut next = BTreeMap::new();
            for r in &records {
                next.insert((r.topic.clone(), r.partition), r.offset + 1);
            }
            Ok(Some(TestBatch { records, next }))
        }
    }

    /// A warehouse that keeps each change once and fails the write of
    /// batch number `fail_at` (counting from 1).
    struct Warehouse<'a> {
        source: &'a MemorySource<u32>,
        rows: RefCell<BTreeSet<u32>>,
        writes: RefCell<u32>,
        fail_at: Option<u32>,
    }

    impl BatchWriter<TestBatch> for Warehouse<'_> {
        async fn write(&self, batch: TestBatch) -> Result<(u64, u64), SinkError> {
            *self.writes.borrow_mut() += 1;
            if Some(*self.writes.borrow()) == self.fail_at {
                return Err(SinkError::Config("the warehouse failed this batch".into()));
            }
            let mut rows = self.rows.borrow_mut();
            let new = batch.records.iter().filter(|r| rows.insert(r.value)).count();
            Ok((new as u64, 0))
        }

        async fn store(&self, next: Vec<(String, i32, i64)>) -> Result<(), SinkError> {
            self.source.commit(&next).await.map_err(|e| SinkError::Config(e.0))
        }
    }

    /// Three batches of four; the second fails. The positions stored stop
    /// before it, the restart reads it again, and every change lands once.
    #[tokio::test]
    async fn positions_never_pass_a_failed_batch() {
        let source = MemorySource::default();
        for v in 0..12 {
            source.append("t", 0, v);
        }
        let (stop, mut shutdown) = watch::channel(false);
        let failing = Warehouse {
            source: &source,
            rows: RefCell::default(),
            writes: RefCell::new(0),
            fail_at: Some(2),
        };
        let r = drive(&mut Reader(&source, 4, stop.clone()), &failing, 4, &mut shutdown).await;
        assert!(r.is_err(), "the failed write ends the loop");
        assert_eq!(
            source.committed().get(&("t".to_string(), 0)).copied().unwrap_or(0),
            0,
            "the first batch's positions were not stored yet (read ahead), and none past the failure"
        );

        // Stored once due: a first batch written, then a failure.
        let source = MemorySource::default();
        for v in 0..12 {
            source.append("t", 0, v);
        }
        let failing = Warehouse {
            source: &source,
            rows: RefCell::default(),
            writes: RefCell::new(0),
            fail_at: Some(2),
        };
        let mut reader = Reader(&source, 3, stop.clone()); // not full: no read-ahead
        let mut unstored = Unstored::new();
        let mut first = reader.read(&mut shutdown).await.unwrap().unwrap();
        let next = first.take_next();
        failing.write(first).await.unwrap();
        unstored.add(next);
        unstored.store::<TestBatch>(&failing).await.unwrap();
        let r = drive(&mut reader, &failing, 100, &mut shutdown).await;
        assert!(r.is_err());
        assert_eq!(
            source.committed()[&("t".to_string(), 0)],
            3,
            "stored through the written batch only"
        );

        // The restart: from the stored positions, on a healthy warehouse.
        source.reopen();
        let healthy = Warehouse {
            source: &source,
            rows: failing.rows,
            writes: RefCell::new(0),
            fail_at: None,
        };
        let summary = drive(&mut Reader(&source, 3, stop), &healthy, 100, &mut shutdown)
            .await
            .unwrap();
        assert_eq!(
            summary.records, 9,
            "the failed batch and everything after it, read again"
        );
        assert_eq!(healthy.rows.borrow().len(), 12, "every change in the warehouse");
        assert_eq!(source.committed()[&("t".to_string(), 0)], 12);
    }

    #[test]
    fn unstored_positions_keep_the_furthest_per_partition() {
        let mut u = Unstored::new();
        let tp = |p: i32| ("t".to_string(), p);
        u.add([(tp(0), 10), (tp(1), 5)].into());
        u.add([(tp(0), 7), (tp(2), 1)].into());
        assert_eq!(u.next, [(tp(0), 10), (tp(1), 5), (tp(2), 1)].into());
        assert!(!u.due());
    }
}
