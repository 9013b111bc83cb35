//! Where the sink resumes, and what happens when the log no longer holds
//! that place.
//!
//! The sink keeps its next offset per (topic, partition) in the warehouse,
//! in `_CONTRAIL_SINK_OFFSETS`, written after the data it covers. A stored
//! position is only good while the partition's log still holds it:
//!
//! - **past the log's end** (stored > high watermark): the topic was
//!   deleted and created again, or the sink now points at another cluster.
//!   The records it would read next are not there, and the ones that are
//!   there were never seen;
//! - **before the log's start** (stored < low watermark): retention deleted
//!   records the sink had not loaded.
//!
//! Both stop the sink with a [`PositionLost`] naming the topic, the
//! partition, the stored offset and the log's range, at start
//! ([`resume_points`]) and while running ([`out_of_range`], from the
//! consumer's OFFSET_OUT_OF_RANGE or the periodic check). Nothing moves on
//! by itself; `contrail sink reset-positions` ([`reset`]) moves a topic's
//! positions on purpose and prints what it changed. A partition with no
//! stored position (a new sink, or a partition added to the topic) starts
//! at the log's start.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use snowflake::{Bind, Client};

use crate::{SinkConfig, SinkError};

/// How often a running sink looks for partitions added to its topics and
/// for positions the logs lost under it.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Where the positions live, in the sink's schema.
const OFFSETS_TABLE: &str = "_CONTRAIL_SINK_OFFSETS";

/// The positions table in the schema `qualifier`, quoted.
pub(crate) fn offsets_table(qualifier: &str) -> String {
    format!("{qualifier}.{}", snowflake::quote_ident(OFFSETS_TABLE))
}

/// `topic`'s partitions → next fetch offset, from [`kafka::Consumer::positions`].
fn fetching_of(fetching: &[(String, i32, Option<i64>)], topic: &str) -> HashMap<i32, i64> {
    fetching
        .iter()
        .filter(|(t, _, _)| t == topic)
        .filter_map(|(_, p, o)| Some((*p, (*o)?)))
        .collect()
}

/// A stored position the partition's log does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.explain())]
pub struct PositionLost {
    pub topic: String,
    pub partition: i32,
    /// The next offset the sink would have read.
    pub stored: i64,
    /// The first offset the log holds.
    pub low: i64,
    /// The offset the log's next record will get.
    pub high: i64,
}

impl PositionLost {
    fn explain(&self) -> String {
        let why = if self.stored > self.high {
            "is past the end of the log: the topic was deleted and created again, or the sink points at \
             another cluster, so what it would read next is not there"
        } else {
            "is before the start of the log: retention deleted records the sink had not loaded"
        };
        format!(
            "topic {t} partition {p}: the sink's stored position, offset {s}, {why} (the log holds offsets \
             {l} to {h}). Nothing more is loaded from this topic until its positions are reset on purpose: \
             stop the sink and run `contrail sink reset-positions --topic {t} --to earliest` (or `--to latest`, \
             or `--to-offset N`), which prints what it changes",
            t = self.topic,
            p = self.partition,
            s = self.stored,
            l = self.low,
            h = self.high,
        )
    }
}

/// Where each partition of `topic` resumes: its stored position, checked
/// against its log `(partition, low, high)`, or the log's start for a
/// partition with none (returned as new, so its row can be created).
pub(crate) fn resume_points(
    topic: &str,
    stored: &HashMap<i32, i64>,
    logs: &[(i32, i64, i64)],
) -> Result<Vec<(i32, i64, bool)>, PositionLost> {
    logs.iter()
        .map(|&(partition, low, high)| match stored.get(&partition) {
            None => {
                if low > 0 {
                    tracing::warn!(topic, partition, low, "no stored position: starting at the log's start");
                }
                Ok((partition, low, true))
            }
            Some(&at) => check(topic, partition, at, low, high).map(|()| (partition, at, false)),
        })
        .collect()
}

/// The first of `positions` (partition → next offset) outside its log.
pub(crate) fn out_of_range(
    topic: &str,
    positions: &HashMap<i32, i64>,
    logs: &[(i32, i64, i64)],
) -> Option<PositionLost> {
    logs.iter().find_map(|&(partition, low, high)| {
        let at = *positions.get(&partition)?;
        check(topic, partition, at, low, high).err()
    })
}

fn check(topic: &str, partition: i32, at: i64, low: i64, high: i64) -> Result<(), PositionLost> {
    if (low..=high).contains(&at) {
        return Ok(());
    }
    Err(PositionLost {
        topic: topic.to_string(),
        partition,
        stored: at,
        low,
        high,
    })
}

/// Where `contrail sink reset-positions` moves a topic's positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first record each partition's log holds (loads all of it).
    Earliest,
    /// The end of each log (skips everything there now).
    Latest,
    /// This offset on every chosen partition.
    Offset(i64),
}

/// One position a reset changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionChange {
    pub partition: i32,
    /// `None`: the partition had no stored position.
    pub from: Option<i64>,
    pub to: i64,
    pub low: i64,
    pub high: i64,
}

/// The positions a reset of `topic` gives (only `partition` when given),
/// checked against the logs; pure, so `--dry-run` shows the same thing.
pub(crate) fn plan_reset(
    topic: &str,
    stored: &HashMap<i32, i64>,
    logs: &[(i32, i64, i64)],
    partition: Option<i32>,
    to: ResetTo,
) -> Result<Vec<PositionChange>, String> {
    if let Some(p) = partition.filter(|p| !logs.iter().any(|(q, _, _)| q == p)) {
        return Err(format!("topic {topic} has no partition {p} (it has {})", logs.len()));
    }
    logs.iter()
        .filter(|(p, _, _)| partition.is_none_or(|want| want == *p))
        .map(|&(p, low, high)| {
            let target = match to {
                ResetTo::Earliest => low,
                ResetTo::Latest => high,
                ResetTo::Offset(o) if (low..=high).contains(&o) => o,
                ResetTo::Offset(o) => {
                    return Err(format!(
                        "offset {o} is outside partition {p} of {topic}, whose log holds {low} to {high}"
                    ))
                }
            };
            Ok(PositionChange {
                partition: p,
                from: stored.get(&p).copied(),
                to: target,
                low,
                high,
            })
        })
        .collect()
}

/// The next offset per partition the sink has stored for `topic` in the
/// schema `qualifier` (`"DB"."SCHEMA"`): everything before it is loaded.
pub async fn stored_positions(
    sf: &Client,
    qualifier: &str,
    topic: &str,
) -> Result<HashMap<i32, i64>, snowflake::SnowflakeError> {
    let stored = sf
        .query(
            &format!(
                "SELECT \"PART\", \"NEXT_OFFSET\" FROM {} WHERE \"TOPIC\" = ?",
                offsets_table(qualifier)
            ),
            &[Bind::Text(topic.to_string())],
        )
        .await?;
    Ok(stored
        .rows
        .iter()
        .filter_map(|r| {
            Some((
                r.first()?.as_deref()?.parse().ok()?,
                r.get(1)?.as_deref()?.parse().ok()?,
            ))
        })
        .collect())
}

/// Writes these positions as they are (a reset may move them back), and
/// creates the rows of partitions that have none.
pub(crate) async fn write(
    sf: &Client,
    offsets: &str,
    positions: &[(String, i32, i64)],
    overwrite: bool,
) -> Result<(), snowflake::SnowflakeError> {
    if positions.is_empty() {
        return Ok(());
    }
    let (source, binds) = source(positions);
    let update = if overwrite {
        "WHEN MATCHED THEN UPDATE SET \"NEXT_OFFSET\" = s.\"NEXT_OFFSET\" "
    } else {
        ""
    };
    sf.query(
        &format!(
            "MERGE INTO {offsets} t USING ({source}) s ON t.\"TOPIC\" = s.\"TOPIC\" AND t.\"PART\" = s.\"PART\" \
             {update}WHEN NOT MATCHED THEN INSERT (\"TOPIC\", \"PART\", \"NEXT_OFFSET\") \
             VALUES (s.\"TOPIC\", s.\"PART\", s.\"NEXT_OFFSET\")"
        ),
        &binds,
    )
    .await?;
    Ok(())
}

/// Every partition of `topics` with the position it resumes from (rows
/// are created for partitions that have none), or the first stored
/// position its log lost.
pub(crate) async fn resume(
    sf: &Client,
    consumer: &kafka::Consumer,
    topics: &[String],
    qualifier: &str,
    offsets: &str,
) -> Result<Vec<(String, i32, i64)>, SinkError> {
    let mut assigned = Vec::new();
    for topic in topics {
        let stored = stored_positions(sf, qualifier, topic).await?;
        let points = resume_points(topic, &stored, &consumer.watermarks(topic)?)?;
        let new: Vec<_> = points
            .iter()
            .filter(|(_, _, new)| *new)
            .map(|&(p, at, _)| (topic.clone(), p, at))
            .collect();
        write(sf, offsets, &new, false).await?;
        assigned.extend(points.into_iter().map(|(p, at, _)| (topic.clone(), p, at)));
    }
    tracing::info!(?assigned, "resuming from the positions stored in Snowflake");
    Ok(assigned)
}

/// The running sink's periodic check: a fetch position the log no longer
/// holds stops it; partitions added to a topic are read from their start.
pub(crate) async fn recheck(
    sf: &Client,
    consumer: &kafka::Consumer,
    topics: &[String],
    offsets: &str,
    assigned: &mut HashSet<(String, i32)>,
) -> Result<(), SinkError> {
    let fetching = consumer.positions()?;
    for topic in topics {
        let logs = consumer.watermarks(topic)?;
        if let Some(lost) = out_of_range(topic, &fetching_of(&fetching, topic), &logs) {
            return Err(lost.into());
        }
        let added: Vec<(String, i32, i64)> = logs
            .iter()
            .filter(|(p, _, _)| !assigned.contains(&(topic.clone(), *p)))
            .map(|&(p, low, _)| (topic.clone(), p, low))
            .collect();
        if !added.is_empty() {
            tracing::info!(topic, partitions = ?added, "partitions added to the topic: reading them from their start");
            write(sf, offsets, &added, false).await?;
            consumer.assign_more(&added)?;
            assigned.extend(added.into_iter().map(|(t, p, _)| (t, p)));
        }
    }
    Ok(())
}

/// Why the consumer met OFFSET_OUT_OF_RANGE: the first fetch position, or
/// else stored position, that its log does not hold.
pub(crate) async fn explain_out_of_range(
    sf: &Client,
    consumer: &kafka::Consumer,
    topics: &[String],
    qualifier: &str,
) -> SinkError {
    let fetching = consumer.positions().unwrap_or_default();
    for topic in topics {
        let Ok(logs) = consumer.watermarks(topic) else { continue };
        let at = fetching_of(&fetching, topic);
        let stored = stored_positions(sf, qualifier, topic).await.unwrap_or_default();
        if let Some(lost) = out_of_range(topic, &at, &logs).or_else(|| out_of_range(topic, &stored, &logs)) {
            return lost.into();
        }
    }
    SinkError::Kafka(kafka::KafkaIoError::OffsetOutOfRange)
}

/// `contrail sink reset-positions`: moves `topic`'s stored positions (one
/// partition's, when given) and returns what changed; with `dry_run`, only
/// what would. Run it with the sink stopped: a running sink would store its
/// own positions over the new ones.
pub async fn reset_positions(
    cfg: &SinkConfig,
    topic: &str,
    partition: Option<i32>,
    to: ResetTo,
    dry_run: bool,
) -> Result<Vec<PositionChange>, SinkError> {
    if !cfg.topics.iter().any(|t| t == topic) {
        return Err(SinkError::Config(format!(
            "{topic} is not one of the sink's topics ({})",
            cfg.topics.join(", ")
        )));
    }
    let sf = std::sync::Arc::new(Client::connect(cfg.snowflake.clone()).await?);
    let qualifier = cfg.qualifier();
    let consumer = kafka::Consumer::new(&cfg.kafka, &cfg.group_id)?;
    // Held while the positions change: a running sink would store its own
    // over them, so with one running this refuses, naming it.
    let lease = crate::lease::Lease::acquire(sf.clone(), &qualifier, &[topic.to_string()]).await?;
    let result = reset_leased(&sf, &qualifier, &consumer, topic, partition, to, dry_run).await;
    lease.release().await;
    result
}

async fn reset_leased(
    sf: &Client,
    qualifier: &str,
    consumer: &kafka::Consumer,
    topic: &str,
    partition: Option<i32>,
    to: ResetTo,
    dry_run: bool,
) -> Result<Vec<PositionChange>, SinkError> {
    let stored = stored_positions(sf, qualifier, topic).await?;
    let plan = plan_reset(topic, &stored, &consumer.watermarks(topic)?, partition, to).map_err(SinkError::Config)?;
    if !dry_run {
        let rows: Vec<_> = plan.iter().map(|c| (topic.to_string(), c.partition, c.to)).collect();
        write(sf, &offsets_table(qualifier), &rows, true).await?;
    }
    Ok(plan)
}

/// `(topic, partition, next offset)` rows as a bound `SELECT … UNION ALL …`
/// with columns `TOPIC`, `PART` and `NEXT_OFFSET`, and its bindings.
pub(crate) fn source(positions: &[(String, i32, i64)]) -> (String, Vec<Bind>) {
    let select = "SELECT CAST(? AS TEXT) AS \"TOPIC\", CAST(? AS NUMBER(38,0)) AS \"PART\", \
                  CAST(? AS NUMBER(38,0)) AS \"NEXT_OFFSET\"";
    let source = vec![select; positions.len()].join(" UNION ALL ");
    let binds = positions
        .iter()
        .flat_map(|(topic, part, offset)| {
            [
                Bind::Text(topic.clone()),
                Bind::Text(part.to_string()),
                Bind::Text(offset.to_string()),
            ]
        })
        .collect();
    (source, binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(pairs: &[(i32, i64)]) -> HashMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn stored_positions_inside_the_log_resume_and_new_partitions_start_at_its_start() {
        let logs = [(0, 0, 100), (1, 40, 90), (2, 7, 7)];
        let got = resume_points("t", &stored(&[(0, 100), (1, 40)]), &logs).unwrap();
        assert_eq!(got, vec![(0, 100, false), (1, 40, false), (2, 7, true)]);
    }

    #[test]
    fn a_position_past_the_end_is_lost_with_the_topic_partition_offset_and_range() {
        // The topic was recreated: the log restarts at 0.
        let err = resume_points("flights", &stored(&[(0, 5044), (1, 12)]), &[(0, 0, 3), (1, 0, 20)]).unwrap_err();
        assert_eq!(
            err,
            PositionLost {
                topic: "flights".into(),
                partition: 0,
                stored: 5044,
                low: 0,
                high: 3
            }
        );
        let text = err.to_string();
        for part in [
            "topic flights partition 0",
            "offset 5044",
            "past the end",
            "0 to 3",
            "reset-positions --topic flights",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
    }

    #[test]
    fn a_position_before_the_start_is_lost_to_retention() {
        let err = resume_points("t", &stored(&[(0, 10)]), &[(0, 50, 80)]).unwrap_err();
        assert!(err.to_string().contains("retention deleted records"), "{err}");
        assert_eq!(
            out_of_range("t", &stored(&[(0, 60), (1, 9)]), &[(0, 50, 80), (1, 10, 12)]).map(|e| e.partition),
            Some(1)
        );
        assert_eq!(out_of_range("t", &stored(&[(0, 80)]), &[(0, 50, 80)]), None);
    }

    #[test]
    fn resets_say_what_they_change_and_refuse_offsets_the_log_lacks() {
        let logs = [(0, 0, 10), (1, 5, 9)];
        let s = stored(&[(0, 99)]);
        let change = |partition, from, to, low, high| PositionChange {
            partition,
            from,
            to,
            low,
            high,
        };
        assert_eq!(
            plan_reset("t", &s, &logs, None, ResetTo::Earliest).unwrap(),
            vec![change(0, Some(99), 0, 0, 10), change(1, None, 5, 5, 9)]
        );
        assert_eq!(
            plan_reset("t", &s, &logs, Some(1), ResetTo::Latest).unwrap(),
            vec![change(1, None, 9, 5, 9)]
        );
        assert!(plan_reset("t", &s, &logs, None, ResetTo::Offset(10))
            .unwrap_err()
            .contains("partition 1"));
        assert!(plan_reset("t", &s, &logs, Some(1), ResetTo::Offset(4))
            .unwrap_err()
            .contains("holds 5 to 9"));
        assert!(plan_reset("t", &s, &logs, Some(3), ResetTo::Latest)
            .unwrap_err()
            .contains("no partition 3"));
    }
}
