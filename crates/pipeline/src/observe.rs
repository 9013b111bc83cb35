//! The latency observer: watches the warehouse the way an analyst would,
//! by querying it, and feeds a [`Tracker`].
//!
//! Two reads, each one statement against Snowflake:
//!
//! - every tick, the current-state table's rows that can show a waiting or
//!   a new change (commit LSN at or past the lowest of them); the end of
//!   the statement is the moment those rows are known to be visible;
//! - every [`CHANGELOG_EVERY`] (or every tick, if ticks are slower), new
//!   changelog rows since its cursor (per Kafka partition, the highest
//!   offset and commit LSN seen): each change's key, `(commit LSN, LSN)`
//!   and PostgreSQL commit time. It says which changes exist; the
//!   [`Tracker`] matches them with what the current-state reads saw,
//!   whichever came first.
//!
//! The changelog read is the costly one, and the warehouse serves the sink
//! at the same time, so it runs less often than the cheap read that times
//! visibility. It is bounded by commit LSN (a partition's commit LSNs only
//! grow with its offsets), which lets the warehouse skip all but the
//! newest part of a changelog that grows without end; for that the cursor
//! covers every partition of the topic from the start (partitions added
//! during a run are not observed).
//!
//! Now and then it reads the schema history, to find the newest
//! generation's current-state table.
//!
//! Latency is therefore measured to within one tick (plus a query) late,
//! never early; the tick is in the report. Snapshot rows and changes
//! committed before the run started are not measured.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snowflake::{quote_ident, Bind, Client, SnowflakeError};

use crate::latency::Tracker;

/// How often the changelog is read (see the module docs).
pub(crate) const CHANGELOG_EVERY: Duration = Duration::from_millis(500);

/// How long a sight of a key waits for its change to show in the changelog
/// (see [`Tracker::forget_seen_before`]).
const SIGHTS_KEPT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Observer {
    sf: Arc<Client>,
    qualifier: String,
    topic: String,
    changelog_view: String,
    key_expr: String,
    since_us: i64,
    /// A WAL position before the run's first change.
    since_lsn: i64,
    partitions: Vec<i64>,
    /// Per partition, the highest changelog offset and commit LSN seen;
    /// `None` before the first read.
    cursor: Option<BTreeMap<i64, (i64, i64)>>,
    current: Option<String>,
    ticks: u64,
    changelog_read: Option<Instant>,
}

impl Observer {
    /// `key_columns` are the source table's primary key, as column names;
    /// changes committed before `since_us` (Unix µs) are not measured, and
    /// none of the run's is before `since_lsn`; `partitions` are the
    /// topic's.
    pub(crate) fn new(
        sf: Arc<Client>,
        qualifier: &str,
        topic: &str,
        key_columns: &[String],
        (since_us, since_lsn): (i64, u64),
        partitions: &[i32],
    ) -> Observer {
        let (_, changelog_view) = sink::tables::view_names(qualifier, topic);
        let key_expr = key_columns
            .iter()
            .map(|k| format!("TO_VARCHAR({})", quote_ident(&k.to_uppercase())))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        Observer {
            sf,
            qualifier: qualifier.to_string(),
            topic: topic.to_string(),
            changelog_view,
            key_expr,
            since_us,
            since_lsn: i64::try_from(since_lsn).unwrap_or(i64::MAX),
            partitions: partitions.iter().map(|p| i64::from(*p)).collect(),
            cursor: None,
            current: None,
            ticks: 0,
            changelog_read: None,
        }
    }

    /// Starts the cursor at the changelog's end, so history written before
    /// the run is not read. Call before the changes to measure are made.
    pub(crate) async fn start(&mut self) {
        let sql = format!(
            "SELECT TO_VARCHAR(\"_KAFKA_PARTITION\"), TO_VARCHAR(MAX(\"_KAFKA_OFFSET\")), \
             TO_VARCHAR(MAX(\"_COMMIT_LSN\")) FROM {} GROUP BY 1",
            self.changelog_view
        );
        // Before the sink's first load the view does not exist: then every
        // row it will hold is new.
        let rows = match self.sf.query(&sql, &[]).await {
            Ok(r) => r.rows,
            Err(e) => {
                tracing::debug!(error = %e, "no changelog yet; observing from its start");
                Vec::new()
            }
        };
        let mut cursor: BTreeMap<i64, (i64, i64)> = rows
            .iter()
            .filter_map(|r| Some((num(r.first()?)?, (num(r.get(1)?)?, num(r.get(2)?)?))))
            .collect();
        // A partition with nothing loaded yet: its first row is the run's.
        for p in &self.partitions {
            cursor.entry(*p).or_insert((-1, self.since_lsn));
        }
        self.cursor = Some(cursor);
    }

    /// One round; see the module docs.
    pub(crate) async fn tick(&mut self, tracker: &Mutex<Tracker>) -> Result<(), SnowflakeError> {
        if self.cursor.is_none() {
            self.start().await;
        }
        if self.current.is_none() || self.ticks.is_multiple_of(50) {
            self.current = self.current_table().await?.or(self.current.take());
        }
        self.ticks += 1;
        let Some(current) = self.current.clone() else {
            return Ok(());
        };
        if self.changelog_read.is_none_or(|at| at.elapsed() >= CHANGELOG_EVERY) {
            self.changelog_read = Some(Instant::now());
            self.read_changelog(tracker).await?;
        }
        self.read_current(&current, tracker).await
    }

    /// New changelog rows: past the cursor in every partition.
    async fn read_changelog(&mut self, tracker: &Mutex<Tracker>) -> Result<(), SnowflakeError> {
        let cursor = self.cursor.get_or_insert_with(BTreeMap::new);
        if cursor.is_empty() {
            return Ok(());
        }
        let floor = newest_floor(cursor);
        let mut cond = Vec::new();
        let mut binds = vec![Bind::Text(floor.to_string())];
        for (p, (o, _)) in cursor.iter() {
            cond.push(
                "(\"_KAFKA_PARTITION\" = CAST(? AS NUMBER(38,0)) AND \"_KAFKA_OFFSET\" > CAST(? AS NUMBER(38,0)))"
                    .to_string(),
            );
            binds.push(Bind::Text(p.to_string()));
            binds.push(Bind::Text(o.to_string()));
        }
        let sql = format!(
            "SELECT {k}, TO_VARCHAR(\"_COMMIT_LSN\"), TO_VARCHAR(\"_LSN\"), \
             TO_VARCHAR(DATE_PART(EPOCH_MICROSECOND, \"_COMMIT_TS\")), TO_VARCHAR(\"_KAFKA_PARTITION\"), \
             TO_VARCHAR(\"_KAFKA_OFFSET\") FROM {view} WHERE \"_COMMIT_LSN\" >= CAST(? AS NUMBER(38,0)) \
             AND \"_OP\" <> 'r' AND ({cond})",
            k = self.key_expr,
            view = self.changelog_view,
            cond = cond.join(" OR "),
        );
        let mut rows = self.sf.query(&sql, &binds).await?.rows;
        // Per key in partition order (one partition per key).
        rows.sort_by_key(|r| (r.get(4).and_then(num), r.get(5).and_then(num)));
        let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
        for r in &rows {
            let (Some(Some(key)), Some(c), Some(l), Some(ts), Some(p), Some(o)) = (
                r.first(),
                r.get(1).and_then(num),
                r.get(2).and_then(num),
                r.get(3).and_then(num),
                r.get(4).and_then(num),
                r.get(5).and_then(num),
            ) else {
                continue;
            };
            // Only the partitions of the start are read (see the module docs).
            if let Some(seen) = cursor.get_mut(&p) {
                *seen = (seen.0.max(o), seen.1.max(c));
            }
            if ts >= self.since_us {
                t.change(key.clone(), (c as u64, l as u64), ts);
            }
        }
        t.forget_seen_before(crate::unix_micros() - SIGHTS_KEPT.as_micros() as i64);
        t.changelog_read();
        Ok(())
    }

    /// Current-state rows that can show a waiting or a new change: a
    /// partition's commit LSNs only grow, so a change not read yet is at or
    /// past the lowest of the partitions' newest.
    async fn read_current(&self, current: &str, tracker: &Mutex<Tracker>) -> Result<(), SnowflakeError> {
        let floor = {
            let waiting = tracker.lock().unwrap_or_else(|p| p.into_inner()).lowest_waiting();
            let newest = u64::try_from(self.cursor.as_ref().map_or(0, newest_floor)).unwrap_or(0);
            waiting.map_or(newest, |w| w.min(newest))
        };
        let sql = format!(
            "SELECT {k}, TO_VARCHAR(\"_COMMIT_LSN\"), TO_VARCHAR(\"_LSN\") FROM {current} \
             WHERE \"_COMMIT_LSN\" >= CAST(? AS NUMBER(38,0))",
            k = self.key_expr,
        );
        let rows = self.sf.query(&sql, &[Bind::Text(floor.to_string())]).await?.rows;
        let at = crate::unix_micros();
        let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
        for r in &rows {
            if let (Some(Some(key)), Some(c), Some(l)) = (r.first(), r.get(1).and_then(num), r.get(2).and_then(num)) {
                t.seen(key, (c as u64, l as u64), at);
            }
        }
        Ok(())
    }

    /// The newest generation's current-state table, from the schema history.
    async fn current_table(&self) -> Result<Option<String>, SnowflakeError> {
        let sql = format!(
            "SELECT \"TABLE_NAME\" FROM {}.{} WHERE \"TOPIC\" = ? ORDER BY \"SEQ\" DESC LIMIT 1",
            self.qualifier,
            quote_ident(sink::HISTORY_TABLE)
        );
        match self.sf.query(&sql, &[Bind::Text(self.topic.clone())]).await {
            Ok(r) => Ok(r.rows.first().and_then(|r| r.first().cloned().flatten())),
            Err(e) if e.is_transient() => Err(e),
            // The sink creates the history at start; until then, nothing.
            Err(_) => Ok(None),
        }
    }
}

/// The lowest of the partitions' newest commit LSNs in `cursor`: a
/// partition's commit LSNs only grow with its offsets, so every changelog
/// row not read yet is at or past it.
fn newest_floor(cursor: &BTreeMap<i64, (i64, i64)>) -> i64 {
    cursor.values().map(|(_, c)| *c).min().unwrap_or(0)
}

fn num(v: &Option<String>) -> Option<i64> {
    v.as_deref()?.trim().parse().ok()
}
