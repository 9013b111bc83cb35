//! The Snowflake sink: CDC change events from Kafka into Snowflake tables.
//!
//! ```text
//! Kafka (assigned partitions, positions from the warehouse)
//!   │ batch: up to max_rows or max_ms
//!   ▼
//! wire header → writer schema by id (registry, cached) → avro-json
//!   │ bad bytes, unknown id → dead-letter topic, the partition moves on
//!   ▼
//! per topic: changelog rows (each change once), current rows (newest per key)
//!   │ new schema version → placed in a table generation: tables created,
//!   │ widened or a new generation started, recorded in the schema history
//!   │ (see `generations` and `tables`)
//!   ▼
//! Snowflake: stage (bound JSON, FLATTEN) → MERGE changelog, MERGE current
//!   ▼
//! positions MERGEd into _CONTRAIL_SINK_OFFSETS, then committed to Kafka
//! ```
//!
//! **Exactly once, in effect.** The positions live in the warehouse and are
//! written after the data; every statement is idempotent (changes are
//! identified by commit LSN, LSN, op and key; the current state only moves
//! forward in `(commit LSN, LSN)`), so a batch replayed after a crash, or
//! delivered twice by Kafka, or applied out of order, leaves the same
//! tables. No multi-statement transaction is needed.
//!
//! **Failures.** A record that does not decode goes to the dead-letter
//! topic with the reason. A Snowflake error that is not transient stops the
//! sink before its positions are written, so nothing is skipped; a
//! transient one is retried by the client.

pub mod config;
pub mod ddl;
mod generations;
pub mod metrics;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::{dlq, Consumed};
use registry_client::RegistryClient;
use serde_json::{json, Map, Value};
use snowflake::{Bind, Client};
use tokio::sync::watch;

pub use config::{ServiceDefaults, SinkConfig};
use generations::{Schemas, Services, TopicTables};
use tables::Layout;

/// What can stop the sink, classified.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("Snowflake")]
    Snowflake(#[from] snowflake::SnowflakeError),
    #[error("Kafka")]
    Kafka(#[from] kafka::KafkaIoError),
    #[error("topic {topic}: {message}")]
    Layout { topic: String, message: String },
    #[error("schema registry")]
    Registry(#[source] registry_client::ClientError),
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl SinkError {
    /// Whether restarting unchanged may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Snowflake(e) => e.is_transient(),
            SinkError::Kafka(e) => e.is_transient(),
            SinkError::Registry(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub records: u64,
    pub changes: u64,
    pub dead_lettered: u64,
    pub batches: u64,
}

const OFFSETS_TABLE: &str = "_CONTRAIL_SINK_OFFSETS";

struct Decoded {
    key: Value,
    envelope: Value,
    key_id: u32,
    value_id: u32,
}

async fn decode(schemas: &mut Schemas, registry: &RegistryClient, rec: &Consumed) -> Result<Option<Decoded>, String> {
    let Some(value) = &rec.value else { return Ok(None) };
    let key = rec.key.as_deref().ok_or("a change event without a key")?;
    let fk = wire::decode(key).map_err(|e| format!("key: {e}"))?;
    let fv = wire::decode(value).map_err(|e| format!("value: {e}"))?;
    let ks = schemas.get(registry, fk.schema_id).await?;
    let vs = schemas.get(registry, fv.schema_id).await?;
    Ok(Some(Decoded {
        key: avro_json::decode(&ks, fk.body).map_err(|e| format!("key: {e}"))?,
        envelope: avro_json::decode(&vs, fv.body).map_err(|e| format!("value: {e}"))?,
        key_id: fk.schema_id,
        value_id: fv.schema_id,
    }))
}

/// Runs until `shutdown` turns true or a fatal error occurs.
pub async fn run(cfg: SinkConfig, mut shutdown: watch::Receiver<bool>) -> Result<Summary, SinkError> {
    let metrics = Arc::new(metrics::Metrics::new());
    let alive = Arc::new(AtomicI64::new(0));
    let _server = match cfg.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, metrics.clone(), alive.clone()).await?),
        None => None,
    };
    let sf = Client::connect(cfg.snowflake.clone()).await?;
    let qualifier = format!(
        "{}.{}",
        snowflake::quote_ident(&cfg.database),
        snowflake::quote_ident(&cfg.schema)
    );
    if cfg.create_schema {
        sf.execute_all(&[
            &format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                snowflake::quote_ident(&cfg.database)
            ),
            &format!("CREATE SCHEMA IF NOT EXISTS {qualifier}"),
        ])
        .await?;
    }
    let offsets = format!("{qualifier}.{}", snowflake::quote_ident(OFFSETS_TABLE));
    sf.query(
        &format!(
            "CREATE TABLE IF NOT EXISTS {offsets} (\"TOPIC\" TEXT, \"PART\" NUMBER(38,0), \"NEXT_OFFSET\" NUMBER(38,0))"
        ),
        &[],
    )
    .await?;
    sf.query(&generations::history_ddl(&qualifier), &[]).await?;
    let registry = RegistryClient::new(&cfg.registry_url, cfg.registry_auth.as_deref()).map_err(SinkError::Registry)?;
    let consumer = kafka::Consumer::new(&cfg.kafka, &cfg.group_id)?;
    let producer = kafka::Producer::new(&cfg.kafka, Duration::from_millis(5))?;
    kafka::ensure_topics(
        &cfg.kafka,
        &[kafka::TopicSpec {
            name: cfg.dead_letter_topic.clone(),
            partitions: 1,
            replication: 1,
        }],
    )
    .await?;

    // Resume from the positions stored with the data.
    let mut positions = Vec::new();
    for topic in &cfg.topics {
        let stored = sf
            .query(
                &format!("SELECT \"PART\", \"NEXT_OFFSET\" FROM {offsets} WHERE \"TOPIC\" = ?"),
                &[Bind::Text(topic.clone())],
            )
            .await?;
        let stored: HashMap<i32, i64> = stored
            .rows
            .iter()
            .filter_map(|r| {
                Some((
                    r.first()?.as_deref()?.parse().ok()?,
                    r.get(1)?.as_deref()?.parse().ok()?,
                ))
            })
            .collect();
        for p in consumer.partitions(topic)? {
            positions.push((topic.clone(), p, stored.get(&p).copied().unwrap_or(0)));
        }
    }
    tracing::info!(?positions, "resuming from the positions stored in Snowflake");
    consumer.assign(&positions)?;

    let mut schemas = Schemas::default();
    let mut topics: HashMap<String, TopicTables> = HashMap::new();
    let mut summary = Summary::default();
    loop {
        alive.store(unix_micros() / 1000, Ordering::Relaxed);
        if *shutdown.borrow() {
            break;
        }
        let batch = tokio::select! {
            b = consumer.poll_batch(cfg.max_rows, cfg.max_wait) => b?,
            _ = shutdown.changed() => continue,
        };
        if batch.is_empty() {
            continue;
        }
        summary.records += batch.len() as u64;
        metrics.records.inc_by(batch.len() as u64);
        let started = Instant::now();
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut by_topic: BTreeMap<String, Vec<(Consumed, Decoded)>> = BTreeMap::new();
        for rec in batch {
            let pos = next.entry((rec.topic.clone(), rec.partition)).or_insert(0);
            *pos = (*pos).max(rec.offset + 1);
            match decode(&mut schemas, &registry, &rec).await {
                Ok(Some(d)) => by_topic.entry(rec.topic.clone()).or_default().push((rec, d)),
                Ok(None) => {} // a tombstone: for compaction only
                Err(reason) => {
                    tracing::warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %reason, "dead-lettered");
                    let reasons = serde_json::to_string(&[&reason]).unwrap_or_default();
                    let source = format!("{}/{}/{}", rec.topic, rec.partition, rec.offset);
                    producer.send(kafka::Record {
                        topic: &cfg.dead_letter_topic,
                        key: rec.key.as_deref().unwrap_or_default(),
                        value: rec.value.as_deref(),
                        headers: &[
                            (dlq::RULES_HEADER, b"decode"),
                            (dlq::REASON_HEADER, reasons.as_bytes()),
                            (dlq::STAGE_HEADER, b"sink"),
                            ("contrail.dlq.source", source.as_bytes()),
                        ],
                    })?;
                    summary.dead_lettered += 1;
                    metrics.dead_lettered.inc();
                }
            }
        }
        // Dead letters are in Kafka before the positions move past them.
        producer.flush(Duration::from_secs(60))?;
        for (topic, records) in by_topic {
            let mut services = Services {
                sf: &sf,
                registry: &registry,
                schemas: &mut schemas,
            };
            if !topics.contains_key(&topic) {
                let opened = TopicTables::open(&mut services, &qualifier, &topic).await?;
                topics.insert(topic.clone(), opened);
            }
            let Some(tables) = topics.get_mut(&topic) else { continue };
            let (changes, newest_commit_us) = load_topic(&mut services, tables, &records).await?;
            summary.changes += changes;
            metrics
                .changes
                .get_or_create(&metrics::TopicLabels { topic: topic.clone() })
                .inc_by(changes);
            if let Some(ts) = newest_commit_us {
                metrics
                    .commit_to_visible
                    .observe((unix_micros() - ts).max(0) as f64 / 1e6);
            }
        }
        // Positions after the data: a crash before this line replays the
        // batch, which the MERGEs absorb.
        for ((topic, part), next_offset) in &next {
            sf.query(
                &format!(
                    "MERGE INTO {offsets} t USING (SELECT CAST(? AS TEXT) AS \"TOPIC\", CAST(? AS NUMBER(38,0)) AS \"PART\", \
                     CAST(? AS NUMBER(38,0)) AS \"NEXT_OFFSET\") s ON t.\"TOPIC\" = s.\"TOPIC\" AND t.\"PART\" = s.\"PART\" \
                     WHEN MATCHED AND s.\"NEXT_OFFSET\" > t.\"NEXT_OFFSET\" THEN UPDATE SET \"NEXT_OFFSET\" = s.\"NEXT_OFFSET\" \
                     WHEN NOT MATCHED THEN INSERT (\"TOPIC\", \"PART\", \"NEXT_OFFSET\") VALUES (s.\"TOPIC\", s.\"PART\", s.\"NEXT_OFFSET\")"
                ),
                &[Bind::Text(topic.clone()), Bind::Text(part.to_string()), Bind::Text(next_offset.to_string())],
            )
            .await?;
        }
        let committed: Vec<(String, i32, i64)> = next.into_iter().map(|((t, p), o)| (t, p, o)).collect();
        if let Err(e) = consumer.commit(&committed) {
            // Kafka's copy is for monitoring; the warehouse's is the truth.
            tracing::debug!(error = %e, "committing group offsets failed");
        }
        summary.batches += 1;
        metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
    }
    Ok(summary)
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (as avro-json writes timestamp-micros) to Unix µs.
fn iso_micros(s: &str) -> Option<i64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let us: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000) + us)
}

/// `/metrics`, and `/healthz`: healthy while the batch loop goes round.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<metrics::Metrics>,
    alive: Arc<AtomicI64>,
) -> Result<metrics_server::Server, SinkError> {
    let health = move || {
        let age = unix_micros() / 1000 - alive.load(Ordering::Relaxed);
        if age < 60_000 {
            Ok(())
        } else {
            Err(format!("no batch loop for {age} ms"))
        }
    };
    metrics_server::serve(addr, move || metrics.render(), health)
        .await
        .map_err(|source| SinkError::Metrics { addr, source })
}

/// Loads one topic's part of a batch, each record into the generation its
/// schema version is placed in; returns the changes it held and the newest
/// commit time among them (Unix µs).
async fn load_topic(
    s: &mut Services<'_>,
    tables: &mut TopicTables,
    records: &[(Consumed, Decoded)],
) -> Result<(u64, Option<i64>), SinkError> {
    let pairs: Vec<(u32, u32)> = records.iter().map(|(_, d)| (d.value_id, d.key_id)).collect();
    tables.place(s, &pairs).await?;
    let mut by_generation: BTreeMap<usize, Vec<(&Consumed, &Decoded, i64)>> = BTreeMap::new();
    for (rec, d) in records {
        let Some(p) = tables.placement(d.value_id, d.key_id) else {
            return Err(SinkError::Layout {
                topic: rec.topic.clone(),
                message: format!("schema ids {}/{} were not placed", d.value_id, d.key_id),
            });
        };
        by_generation.entry(p.generation).or_default().push((rec, d, p.version));
    }
    let mut changes = 0;
    let mut newest_commit_us: Option<i64> = None;
    for (generation, records) in by_generation {
        let (n, newest) = load_generation(s.sf, &tables.generations[generation], &records).await?;
        changes += n;
        newest_commit_us = newest_commit_us.max(newest);
    }
    Ok((changes, newest_commit_us))
}

/// Loads records of one generation.
async fn load_generation(
    sf: &Client,
    layout: &Layout,
    records: &[(&Consumed, &Decoded, i64)],
) -> Result<(u64, Option<i64>), SinkError> {
    let mut newest_commit_us: Option<i64> = None;

    let mut changelog: BTreeMap<String, Value> = BTreeMap::new();
    let mut current: BTreeMap<String, (i64, i64, Value)> = BTreeMap::new();
    for (rec, d, version) in records {
        let env = &d.envelope;
        let op = env["op"].as_str().unwrap_or_default();
        let row = if op == "d" { &env["before"] } else { &env["after"] };
        let src = &env["source"];
        let (commit_lsn, lsn) = (
            src["commit_lsn"].as_i64().unwrap_or(0),
            src["lsn"].as_i64().unwrap_or(0),
        );
        if let Some(ts) = src["ts_us"].as_str().and_then(iso_micros) {
            newest_commit_us = Some(newest_commit_us.map_or(ts, |n| n.max(ts)));
        }
        let mut obj: Map<String, Value> = row.as_object().cloned().unwrap_or_default();
        for (k, v) in [
            ("_op", json!(op)),
            ("_lsn", json!(lsn)),
            ("_commit_lsn", json!(commit_lsn)),
            ("_txid", src["txid"].clone()),
            ("_commit_ts", src["ts_us"].clone()),
            ("_schema_id", json!(d.value_id)),
            ("_schema_version", json!(version)),
            ("_kafka_partition", json!(rec.partition)),
            ("_kafka_offset", json!(rec.offset)),
            ("_deleted", json!(op == "d")),
        ] {
            obj.insert(k.to_string(), v);
        }
        let key = d.key.to_string();
        let identity = format!("{commit_lsn}/{lsn}/{op}/{key}");
        let obj = Value::Object(obj);
        changelog.entry(identity).or_insert_with(|| obj.clone());
        match current.get(&key) {
            Some((c, l, _)) if (*c, *l) >= (commit_lsn, lsn) => {}
            _ => {
                current.insert(key, (commit_lsn, lsn, obj));
            }
        }
    }
    let changes = changelog.len() as u64;
    let cl = Value::Array(changelog.into_values().collect()).to_string();
    let cur = Value::Array(current.into_values().map(|(_, _, v)| v).collect()).to_string();
    let [clear_cl, clear_cur, stage_cl, stage_cur, merge_cl, merge_cur] = layout.load();
    sf.query(&clear_cl, &[]).await?;
    sf.query(&clear_cur, &[]).await?;
    sf.query(&stage_cl, &[Bind::Text(cl)]).await?;
    sf.query(&stage_cur, &[Bind::Text(cur)]).await?;
    sf.query(&merge_cl, &[]).await?;
    sf.query(&merge_cur, &[]).await?;
    Ok((changes, newest_commit_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_json_timestamps_read_back() {
        assert_eq!(iso_micros("1970-01-01T00:00:00.000001Z"), Some(1));
        assert_eq!(iso_micros("2024-02-29T10:34:56.789012Z"), Some(1_709_202_896_789_012));
        assert_eq!(iso_micros("2024-02-29T10:34:56"), None);
    }
}
