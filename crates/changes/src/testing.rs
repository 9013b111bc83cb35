//! Helpers for other crates' tests (feature `test-utils`).

use crate::Env;

/// The secret [`secret_env`] hides in every variable that holds one.
pub const SECRET: &str = "hunter2";

/// An environment where every variable a stage reads a secret from is set,
/// each holding [`SECRET`]: a config's `Debug` must not contain it.
pub fn secret_env() -> Env {
    Env::from_vars(
        [
            ("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "reg:hunter2"),
            ("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db"),
            ("SNOWFLAKE_URL", "http://u:hunter2@127.0.0.1:1"),
            ("SNOWFLAKE_PASSWORD", "hunter2"),
            ("OPENSKY_CLIENT_ID", "id"),
            ("OPENSKY_CLIENT_SECRET", "hunter2"),
            ("KAFKA_PROPERTY_SASL_PASSWORD", "hunter2"),
            ("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "hunter2"),
            ("KAFKA_PROPERTY_SSL_KEY_PASSWORD", "hunter2"),
            ("KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET", "hunter2"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

/// Fails, printing it, if `config`'s `Debug` shows [`SECRET`].
pub fn assert_no_secret(config: &impl std::fmt::Debug) {
    let printed = format!("{config:?}");
    assert!(!printed.contains(SECRET), "a secret is printed: {printed}");
}

pub use memory::{Failed, MemoryDestination, MemoryRecord, MemorySource};

/// In-memory doubles of the delivery contract's two sides, for fast tests
/// of the logic built on them.
mod memory {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use crate::delivery::{Destination, Located, Source};
    use crate::InFlight;

    /// Why a memory double failed a call.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Failed(pub String);

    /// A destination that keeps what it is sent. Records are durable only
    /// when the test acknowledges them ([`MemoryDestination::ack`], in any
    /// order) or flushes; [`MemoryDestination::fail`] makes one never
    /// durable, as a failed delivery is.
    #[derive(Debug, Default)]
    pub struct MemoryDestination<R> {
        state: Mutex<DestState<R>>,
    }

    #[derive(Debug)]
    struct DestState<R> {
        sent: Vec<(u64, R)>,
        in_flight: InFlight,
        failed: Vec<u64>,
        unflushed_failures: usize,
    }

    impl<R> Default for DestState<R> {
        fn default() -> Self {
            DestState {
                sent: Vec::new(),
                in_flight: InFlight::default(),
                failed: Vec::new(),
                unflushed_failures: 0,
            }
        }
    }

    impl<R: Clone> MemoryDestination<R> {
        fn state(&self) -> std::sync::MutexGuard<'_, DestState<R>> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Record `n` is durable.
        pub fn ack(&self, n: u64) {
            self.state().in_flight.done(n);
        }

        /// Record `n`'s delivery failed: it never becomes durable.
        pub fn fail(&self, n: u64) {
            let mut s = self.state();
            s.failed.push(n);
            s.unflushed_failures += 1;
        }

        /// Everything sent, with its number, in send order.
        pub fn sent(&self) -> Vec<(u64, R)> {
            self.state().sent.clone()
        }
    }

    impl<R: Clone> Destination for MemoryDestination<R> {
        type Record<'a> = R;
        type Error = Failed;

        async fn send(&self, record: Self::Record<'_>) -> Result<u64, Failed> {
            let mut s = self.state();
            let n = s.in_flight.start();
            s.sent.push((n, record));
            Ok(n)
        }

        fn durable_through(&self) -> u64 {
            self.state().in_flight.durable_through()
        }

        /// Acknowledges everything sent except the failed records.
        async fn flush(&self, _timeout: Duration) -> Result<(), Failed> {
            let mut s = self.state();
            let durable: Vec<u64> = s
                .sent
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| !s.failed.contains(n))
                .collect();
            for n in durable {
                s.in_flight.done(n);
            }
            match std::mem::take(&mut s.unflushed_failures) {
                0 => Ok(()),
                k => Err(Failed(format!("{k} records failed"))),
            }
        }
    }

    /// A record of a [`MemorySource`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MemoryRecord<R> {
        pub topic: String,
        pub partition: i32,
        pub offset: i64,
        pub value: R,
    }

    impl<R> Located for MemoryRecord<R> {
        fn located(&self) -> (&str, i32, i64) {
            (&self.topic, self.partition, self.offset)
        }
    }

    /// A log per (topic, partition), read from committed positions.
    /// [`MemorySource::reopen`] is a restart: reading starts again at the
    /// committed positions.
    #[derive(Debug, Default)]
    pub struct MemorySource<R> {
        state: Mutex<SourceState<R>>,
    }

    #[derive(Debug)]
    struct SourceState<R> {
        logs: BTreeMap<(String, i32), Vec<R>>,
        read: BTreeMap<(String, i32), i64>,
        committed: BTreeMap<(String, i32), i64>,
    }

    impl<R> Default for SourceState<R> {
        fn default() -> Self {
            SourceState {
                logs: BTreeMap::new(),
                read: BTreeMap::new(),
                committed: BTreeMap::new(),
            }
        }
    }

    impl<R: Clone> MemorySource<R> {
        fn state(&self) -> std::sync::MutexGuard<'_, SourceState<R>> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Appends a record to a partition's log.
        pub fn append(&self, topic: &str, partition: i32, value: R) {
            self.state()
                .logs
                .entry((topic.to_string(), partition))
                .or_default()
                .push(value);
        }

        /// A restart: reading resumes at the committed positions.
        pub fn reopen(&self) {
            let mut s = self.state();
            s.read = s.committed.clone();
        }

        pub fn committed(&self) -> BTreeMap<(String, i32), i64> {
            self.state().committed.clone()
        }
    }

    impl<R: Clone> Source for MemorySource<R> {
        type Record = MemoryRecord<R>;
        type Error = Failed;

        async fn poll(&self, max: usize, _wait: Duration) -> Result<Vec<MemoryRecord<R>>, Failed> {
            let mut s = self.state();
            let SourceState { logs, read, .. } = &mut *s;
            let mut out = Vec::new();
            for ((topic, partition), log) in logs.iter() {
                let at = read.entry((topic.clone(), *partition)).or_insert(0);
                while out.len() < max {
                    let Some(value) = usize::try_from(*at).ok().and_then(|i| log.get(i)) else {
                        break;
                    };
                    out.push(MemoryRecord {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: *at,
                        value: value.clone(),
                    });
                    *at += 1;
                }
            }
            Ok(out)
        }

        async fn commit(&self, next: &[(String, i32, i64)]) -> Result<(), Failed> {
            let mut s = self.state();
            for (t, p, o) in next {
                s.committed.insert((t.clone(), *p), *o);
            }
            Ok(())
        }
    }
}

/// The delivery contract, as checks any implementation must pass: the same
/// functions run against the memory doubles (here) and the real Kafka
/// (the kafka crate's tests).
pub mod contract {
    use std::collections::BTreeMap;
    use std::fmt::Debug;
    use std::time::Duration;

    use crate::delivery::{Destination, Located, Source};

    /// A fresh destination numbers in send order, and a flush makes
    /// everything durable.
    pub async fn numbers_rise_and_a_flush_makes_all_durable<'r, D>(dest: &D, records: Vec<D::Record<'r>>)
    where
        D: Destination,
        D::Error: Debug,
    {
        assert_eq!(dest.durable_through(), 0, "nothing is durable before the first send");
        let mut last = 0;
        for r in records {
            let n = dest.send(r).await.expect("send");
            assert!(n > last, "record numbers rise in send order ({n} after {last})");
            last = n;
        }
        dest.flush(Duration::from_secs(30)).await.expect("flush");
        assert_eq!(
            dest.durable_through(),
            last,
            "after a flush, everything sent is durable"
        );
    }

    /// A record that fails holds back everything sent after it, and the
    /// flush says so. `fail` makes the record numbered `n` fail, for a
    /// destination whose failures are not in its records. (The first
    /// record is flushed on its own: Kafka fails a whole batch.)
    pub async fn a_failed_record_holds_back_what_follows<'r, D>(
        dest: &D,
        [ok, failing, after]: [D::Record<'r>; 3],
        fail: impl Fn(u64),
    ) where
        D: Destination,
        D::Error: Debug,
    {
        let first = dest.send(ok).await.expect("send");
        dest.flush(Duration::from_secs(30)).await.expect("flush");
        let bad = dest.send(failing).await.expect("send");
        fail(bad);
        let last = dest.send(after).await.expect("send");
        assert!(
            dest.flush(Duration::from_secs(30)).await.is_err(),
            "the flush reports the failure"
        );
        assert!(last > bad && bad > first);
        assert_eq!(
            dest.durable_through(),
            first,
            "durable through the record before the failed one, never past it"
        );
    }

    /// Reads `expect` records (in log order per partition, each once),
    /// commits after the first `keep`, reopens (`reopen` gives a source at
    /// the committed positions) and reads the rest again from there.
    pub async fn a_reopened_source_reads_from_its_commit<S, R>(source: S, expect: usize, keep: usize, reopen: R)
    where
        S: Source,
        S::Record: Located,
        S::Error: Debug,
        R: AsyncFnOnce() -> S,
    {
        let first = read(&source, expect).await;
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (t, p, o) in &first {
            let at = next.entry((t.clone(), *p)).or_insert(*o);
            assert_eq!(*at, *o, "records come in log order, each once");
            *at = o + 1;
        }
        let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (t, p, o) in first.iter().take(keep) {
            committed.insert((t.clone(), *p), o + 1);
        }
        let positions: Vec<(String, i32, i64)> = committed.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect();
        source.commit(&positions).await.expect("commit");
        drop(source);
        let again = reopen().await;
        let rest = read(&again, expect - keep).await;
        let mut want: Vec<_> = first[keep..].to_vec();
        let mut got = rest;
        want.sort();
        got.sort();
        assert_eq!(
            got, want,
            "after a reopen, what was not committed is read again, and only that"
        );
    }

    async fn read<S>(source: &S, n: usize) -> Vec<(String, i32, i64)>
    where
        S: Source,
        S::Record: Located,
        S::Error: Debug,
    {
        let mut out = Vec::new();
        for _ in 0..100 {
            if out.len() >= n {
                break;
            }
            let batch = source
                .poll(n - out.len(), Duration::from_millis(500))
                .await
                .expect("poll");
            out.extend(batch.iter().map(|r| {
                let (t, p, o) = r.located();
                (t.to_string(), p, o)
            }));
        }
        assert_eq!(out.len(), n, "the source gave {} of {n} records", out.len());
        out
    }
}
