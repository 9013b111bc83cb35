//! One sink per topic: a lease per topic in the warehouse, next to the
//! positions it guards.
//!
//! Two sink processes loading the same topic (a rolling deploy, or a
//! mistake) would overwrite each other's staging table between its
//! statements and move positions past records neither loaded. So a sink
//! holds a lease on each of its topics in `_CONTRAIL_SINK_LEASES`, and a
//! second one refuses to start, naming the holder.
//!
//! ```text
//! start: row per topic (MERGE, so concurrent starts make one)
//!   │ free (HOLDER '')            → take it: UPDATE … WHERE VERSION = seen
//!   │ held, VERSION moves         → another sink is alive: refuse
//!   │ held, VERSION still for     → its holder died (kill -9, lost host):
//!   │   TAKEOVER_AFTER               take it over, same compare-and-set
//!   ▼
//! running: VERSION + 1 every RENEW_EVERY, in a task of its own, only
//!   │ where HOLDER is this sink; a renewal that finds another holder
//!   │ marks the lease lost, and the sink stops before its next statement
//!   ▼
//! stop: HOLDER '' (the next sink starts at once)
//! ```
//!
//! No clocks are compared: liveness is a version that moves, watched on
//! the waiting sink's own monotonic clock, and every change is a
//! compare-and-set on it, which Snowflake's per-statement DML locking
//! makes atomic. The one window left: a sink that cannot reach the
//! warehouse for `TAKEOVER_AFTER` while another can is taken over, and
//! may finish a statement already under way before it learns so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snowflake::{Bind, Client};

use crate::SinkError;

/// How often a holder renews.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How long a lease's version must stand still before another sink takes
/// it over.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(10);

/// Another sink holds a topic: fatal, with what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "another sink is loading topic {topic} (holder {holder}, since {since}): two sinks for one topic would \
     overwrite each other's staging table, so this one does not start. Stop the other sink first; if it is \
     gone, its lease is taken over {takeover} s after its last renewal"
)]
pub struct LeaseHeld {
    pub topic: String,
    pub holder: String,
    pub since: String,
    pub takeover: u64,
}

/// The leases this sink holds; see the module docs.
pub struct Lease {
    sf: Arc<Client>,
    table: String,
    holder: String,
    topics: Vec<String>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("holder", &self.holder)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A lease dropped unreleased (the sink failed) stops renewing, so
        // a sink started after it takes over; `release` is quicker still.
        self.renewer.abort();
    }
}

/// The leases table in `qualifier`.
pub fn leases_table(qualifier: &str) -> String {
    format!("{qualifier}.\"_CONTRAIL_SINK_LEASES\"")
}

/// Who this process is, for the other sink's message.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host} pid {} ({nanos:08x})", std::process::id())
}

/// The rows changed by a DML statement (its answer's first value).
fn changed(r: &snowflake::QueryResult) -> u64 {
    r.rows
        .first()
        .and_then(|row| row.first())
        .and_then(|v| v.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A topic's lease row as read.
struct Row {
    holder: String,
    version: i64,
    since: String,
}

impl Lease {
    /// Takes the lease on every topic, or fails with [`LeaseHeld`] (after
    /// up to [`TAKEOVER_AFTER`] of watching a holder that may be gone).
    pub async fn acquire(sf: Arc<Client>, qualifier: &str, topics: &[String]) -> Result<Lease, SinkError> {
        let table = leases_table(qualifier);
        sf.query(
            &format!(
                "CREATE TABLE IF NOT EXISTS {table} (\"TOPIC\" TEXT, \"HOLDER\" TEXT, \"VERSION\" NUMBER(38,0), \"SINCE\" TEXT)"
            ),
            &[],
        )
        .await?;
        let holder = holder_name();
        for topic in topics {
            take(&sf, &table, topic, &holder).await?;
        }
        tracing::info!(%holder, topics = ?topics, "holding the topics' leases");
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            sf.clone(),
            table.clone(),
            holder.clone(),
            topics.len() as u64,
            lost.clone(),
        ));
        Ok(Lease {
            sf,
            table,
            holder,
            topics: topics.to_vec(),
            lost,
            renewer,
        })
    }

    /// An error once another sink has taken a lease over: nothing more may
    /// be written.
    pub fn check(&self) -> Result<(), SinkError> {
        if self.lost.load(Ordering::Relaxed) {
            return Err(SinkError::LeaseLost {
                holder: self.holder.clone(),
            });
        }
        Ok(())
    }

    /// Gives the leases up, so the next sink starts at once.
    pub async fn release(self) {
        self.renewer.abort();
        let released = self
            .sf
            .query(
                &format!(
                    "UPDATE {} SET \"HOLDER\" = '', \"VERSION\" = \"VERSION\" + 1 WHERE \"HOLDER\" = ?",
                    self.table
                ),
                &[Bind::Text(self.holder.clone())],
            )
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release the topics' leases: the next sink takes them over later");
        }
    }
}

async fn read(sf: &Client, table: &str, topic: &str) -> Result<Row, SinkError> {
    sf.query(
        &format!(
            "MERGE INTO {table} t USING (SELECT ? AS \"TOPIC\") s ON t.\"TOPIC\" = s.\"TOPIC\" \
             WHEN NOT MATCHED THEN INSERT (\"TOPIC\", \"HOLDER\", \"VERSION\", \"SINCE\") VALUES (s.\"TOPIC\", '', 0, '')"
        ),
        &[Bind::Text(topic.into())],
    )
    .await?;
    let r = sf
        .query(
            &format!("SELECT \"HOLDER\", \"VERSION\", \"SINCE\" FROM {table} WHERE \"TOPIC\" = ?"),
            &[Bind::Text(topic.into())],
        )
        .await?;
    Ok(Row {
        holder: r.get(0, "HOLDER").unwrap_or_default().to_string(),
        version: r.get(0, "VERSION").and_then(|v| v.parse().ok()).unwrap_or(0),
        since: r.get(0, "SINCE").unwrap_or_default().to_string(),
    })
}

/// Takes `topic`'s lease (see the module docs).
async fn take(sf: &Client, table: &str, topic: &str, holder: &str) -> Result<(), SinkError> {
    let mut seen = read(sf, table, topic).await?;
    let mut still_since = Instant::now();
    loop {
        let free = seen.holder.is_empty();
        if free || still_since.elapsed() >= TAKEOVER_AFTER {
            if !free {
                tracing::warn!(%topic, previous = %seen.holder, "the topic's previous sink stopped renewing its lease: taking over");
            }
            let since = format!("{:?}", std::time::SystemTime::now());
            let r = sf
                .query(
                    &format!(
                        "UPDATE {table} SET \"HOLDER\" = ?, \"VERSION\" = \"VERSION\" + 1, \"SINCE\" = ? \
                         WHERE \"TOPIC\" = ? AND \"VERSION\" = CAST(? AS NUMBER(38,0))"
                    ),
                    &[
                        Bind::Text(holder.into()),
                        Bind::Text(since),
                        Bind::Text(topic.into()),
                        Bind::Text(seen.version.to_string()),
                    ],
                )
                .await?;
            if changed(&r) >= 1 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read(sf, table, topic).await?;
        if now.version != seen.version {
            if !now.holder.is_empty() && !seen.holder.is_empty() {
                return Err(LeaseHeld {
                    topic: topic.into(),
                    holder: now.holder,
                    since: now.since,
                    takeover: TAKEOVER_AFTER.as_secs(),
                }
                .into());
            }
            still_since = Instant::now();
        }
        seen = now;
    }
}

/// Renews every [`RENEW_EVERY`] until aborted; a renewal that finds fewer
/// leases held than `topics` marks the lease lost. Errors reaching the
/// warehouse are retried at the next tick.
async fn renew(sf: Arc<Client>, table: String, holder: String, topics: u64, lost: Arc<AtomicBool>) {
    let sql = format!("UPDATE {table} SET \"VERSION\" = \"VERSION\" + 1 WHERE \"HOLDER\" = ?");
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        match sf.query(&sql, &[Bind::Text(holder.clone())]).await {
            Ok(r) if changed(&r) < topics => {
                tracing::error!(%holder, "another sink took over this sink's topics: stopping");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "renewing the topics' leases failed; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_says_who_holds_the_topic_and_what_to_do() {
        let e = LeaseHeld {
            topic: "p.public.t".into(),
            holder: "host pid 7 (0000abcd)".into(),
            since: "then".into(),
            takeover: 10,
        };
        let m = e.to_string();
        assert!(m.contains("topic p.public.t") && m.contains("host pid 7"), "{m}");
        assert!(m.contains("Stop the other sink"), "{m}");
    }

    #[test]
    fn dml_answers_give_the_rows_changed() {
        let r = snowflake::QueryResult {
            columns: Vec::new(),
            rows: vec![vec![Some("2".into()), Some("0".into())]],
        };
        assert_eq!(changed(&r), 2);
        assert_eq!(changed(&snowflake::QueryResult::default()), 0);
    }
}
