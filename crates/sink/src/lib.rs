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
//! Snowflake: stage (bound JSON, FLATTEN) → current state (MERGE, newest
//!   │ per key) → changelog (anti-join insert)
//!   ▼
//! positions updated in _CONTRAIL_SINK_OFFSETS (at most once a second
//!   while batches keep coming, at once when the topics go quiet), then
//!   committed to Kafka
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
//! topic with the reason. A load the warehouse rejects with a data error
//! is split in halves until the records that fail alone are found: they
//! are dead-lettered with the warehouse's message, the rest loads (see
//! `Writer::execute`). Any other Snowflake error that is not transient
//! stops the sink before its positions are written, so nothing is
//! skipped; a transient one is retried by the client. A load binds at
//! most `batch.max_bytes` of JSON, below Snowflake's 16 MB for a value.

pub mod config;
/// The pure layout and DDL code, where its users have always found it.
pub use warehouse_layout::{ddl, tables};
mod driver;
mod generations;
pub mod lease;
pub mod metrics;
mod positions;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use changes::ChangeEvent;
use kafka::Consumed;
use registry_client::RegistryClient;
use snowflake::{Bind, Client};
use tokio::sync::watch;
use tracing::Instrument as _;

pub use config::{ServiceDefaults, SinkConfig};
pub use generations::HISTORY_TABLE;
use generations::{Lookup, Schemas, Services, TopicTables};
pub use positions::{reset_positions, stored_positions, PositionChange, PositionLost, ResetTo};
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
    /// Fatal: another sink holds one of the topics (see `lease`).
    #[error(transparent)]
    LeaseHeld(#[from] lease::LeaseHeld),
    /// Fatal: another sink took this one's topics over while it ran.
    #[error("another sink took over this sink's topics ({holder} held them): stopping before writing anything more")]
    LeaseLost { holder: String },
    /// Fatal: a stored position the log no longer holds (see `positions`).
    #[error(transparent)]
    PositionLost(#[from] PositionLost),
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

impl changes::Classified for SinkError {
    /// Bad records never surface as a `SinkError` (they are dead-lettered
    /// where they are found), so a stage error is transient or fatal.
    fn class(&self) -> changes::Class {
        changes::Class::transient_or_fatal(self.is_transient())
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

/// A record decoded: its change event, and the schema ids it was written
/// with (which place it in a table generation).
struct Decoded {
    event: ChangeEvent,
    key_id: u32,
    value_id: u32,
}

/// A record decoded, a tombstone (`None`), or why not: [`Lookup::Bad`] is
/// bad data for the dead-letter topic, [`Lookup::Unavailable`] a registry
/// that must be waited for.
async fn decode(schemas: &mut Schemas, registry: &RegistryClient, rec: &Consumed) -> Result<Option<Decoded>, Lookup> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Lookup::Bad(format!("{what}: {e}"));
    let Some(value) = &rec.value else { return Ok(None) };
    let key = rec
        .key
        .as_deref()
        .ok_or_else(|| Lookup::Bad("a change event without a key".into()))?;
    let fk = wire::decode(key).map_err(|e| bad("key", &e))?;
    let fv = wire::decode(value).map_err(|e| bad("value", &e))?;
    let ks = schemas.get(registry, fk.schema_id).await?;
    let vs = schemas.get(registry, fv.schema_id).await?;
    let key = avro_json::decode(&ks, fk.body).map_err(|e| bad("key", &e))?;
    // The source block's numbers stay numbers: positions, commit time.
    let envelope = avro_json::decode_keeping_numbers(&vs, fv.body, &["source"]).map_err(|e| bad("value", &e))?;
    Ok(Some(Decoded {
        event: ChangeEvent::from_json(key, envelope).map_err(|e| bad("value", &e))?,
        key_id: fk.schema_id,
        value_id: fv.schema_id,
    }))
}

/// Runs until `shutdown` turns true or a fatal error occurs.
pub async fn run(cfg: SinkConfig, shutdown: watch::Receiver<bool>) -> Result<Summary, SinkError> {
    run_with_metrics(cfg, Arc::new(metrics::Metrics::new()), shutdown).await
}

/// [`run`], counting into `metrics`: a caller that restarts the sink keeps
/// its counters across runs, and can read them in process.
pub async fn run_with_metrics(
    cfg: SinkConfig,
    metrics: Arc<metrics::Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary, SinkError> {
    let alive = Arc::new(changes::Heartbeat::default());
    let _server = match cfg.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, metrics.clone(), alive.clone()).await?),
        None => None,
    };
    let sf = Arc::new(Client::connect(cfg.snowflake.clone()).await?);
    let qualifier = cfg.qualifier();
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
    let offsets = positions::offsets_table(&qualifier);
    sf.query(
        &format!(
            "CREATE TABLE IF NOT EXISTS {offsets} (\"TOPIC\" TEXT, \"PART\" NUMBER(38,0), \"NEXT_OFFSET\" NUMBER(38,0))"
        ),
        &[],
    )
    .await?;
    sf.query(&generations::history_ddl(&qualifier), &[]).await?;
    kafka::ensure_topics(
        &cfg.kafka,
        &[kafka::TopicSpec {
            name: cfg.dead_letter_topic.clone(),
            partitions: 1,
            replication: 1,
            config: Vec::new(),
        }],
    )
    .await?;

    let lease = lease::Lease::acquire(sf.clone(), &qualifier, &cfg.topics).await?;
    let result = run_leased(&cfg, &sf, &lease, &metrics, &alive, &mut shutdown).await;
    lease.release().await;
    result
}

/// The sink's loop, once it holds its topics' leases.
async fn run_leased(
    cfg: &SinkConfig,
    sf: &Client,
    lease: &lease::Lease,
    metrics: &metrics::Metrics,
    alive: &changes::Heartbeat,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Summary, SinkError> {
    let qualifier = cfg.qualifier();
    let offsets = positions::offsets_table(&qualifier);
    let registry = RegistryClient::with_security(&cfg.registry_url, &cfg.registry).map_err(SinkError::Registry)?;
    let consumer = kafka::Consumer::new(&cfg.kafka, &cfg.group_id)?;
    let producer = kafka::Producer::new(&cfg.kafka, Duration::from_millis(5))?;
    let resumed = positions::resume(sf, &consumer, &cfg.topics, &qualifier, &offsets).await?;
    consumer.assign(&resumed)?;
    metrics.stored(resumed.iter().cloned());
    let writer = Writer {
        sf,
        consumer: &consumer,
        producer: &producer,
        cfg,
        lease,
        registry: &registry,
        metrics,
        qualifier: &qualifier,
        offsets: &offsets,
    };
    // The read side (poll, decode, dead letters) and the write side
    // (placement, staged JSON, SQL, positions) keep their own schema
    // caches.
    let mut reader = SinkReader {
        reader: Reader {
            sf,
            qualifier: &qualifier,
            consumer: &consumer,
            producer: &producer,
            registry: &registry,
            metrics,
            cfg,
        },
        writer: &writer,
        read_schemas: Schemas::default(),
        write_schemas: Schemas::default(),
        topics: HashMap::new(),
        assigned: resumed.into_iter().map(|(t, p, _)| (t, p)).collect(),
        checked: Instant::now(),
        alive,
    };
    driver::drive(&mut reader, &writer, cfg.max_rows, shutdown).await
}

/// The sink's read side for [`driver::drive`]: polled, decoded and
/// dead-lettered by [`Reader`], then placed and built by [`Writer::build`]
/// (behind, that runs beside the previous batch's statements: placement
/// only adds columns, generations and views, and statements name their
/// columns). It also checks the positions against the logs every
/// [`positions::CHECK_EVERY`], and beats the health.
struct SinkReader<'a> {
    reader: Reader<'a>,
    writer: &'a Writer<'a>,
    read_schemas: Schemas,
    write_schemas: Schemas,
    topics: HashMap<String, TopicTables>,
    assigned: HashSet<(String, i32)>,
    checked: Instant,
    alive: &'a changes::Heartbeat,
}

impl driver::BatchReader for SinkReader<'_> {
    type Batch = Built;

    async fn read(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<Option<Built>, SinkError> {
        self.alive.beat();
        if self.checked.elapsed() >= positions::CHECK_EVERY {
            let r = &self.reader;
            positions::recheck(r.sf, r.consumer, &r.cfg.topics, self.writer.offsets, &mut self.assigned).await?;
            self.checked = Instant::now();
        }
        match self.reader.read(&mut self.read_schemas, shutdown).await? {
            Some(p) => {
                let built = self.writer.build(&mut self.topics, &mut self.write_schemas, p).await?;
                Ok(Some(built))
            }
            None => Ok(None),
        }
    }
}

impl driver::Batch for Built {
    fn records(&self) -> usize {
        self.polled.records
    }

    fn dead_lettered(&self) -> u64 {
        self.polled.dead_lettered
    }

    fn take_next(&mut self) -> BTreeMap<(String, i32), i64> {
        std::mem::take(&mut self.polled.next)
    }
}

impl driver::BatchWriter<Built> for Writer<'_> {
    async fn write(&self, batch: Built) -> Result<(u64, u64), SinkError> {
        self.execute(batch).await
    }

    async fn store(&self, next: Vec<(String, i32, i64)>) -> Result<(), SinkError> {
        self.store_positions(next).await
    }
}

/// A polled batch, decoded, its dead letters in Kafka: ready to write.
struct Prepared {
    by_topic: BTreeMap<String, Vec<(Consumed, Decoded)>>,
    polled: Polled,
}

/// What a batch carries from its poll to its positions, whatever form its
/// records take in between ([`Prepared`], then [`Built`]).
struct Polled {
    /// Next offset per (topic, partition), for the positions.
    next: BTreeMap<(String, i32), i64>,
    records: usize,
    dead_lettered: u64,
    at: Instant,
}

struct Reader<'a> {
    sf: &'a Client,
    qualifier: &'a str,
    consumer: &'a kafka::Consumer,
    producer: &'a kafka::Producer,
    registry: &'a RegistryClient,
    metrics: &'a metrics::Metrics,
    cfg: &'a SinkConfig,
}

impl Reader<'_> {
    /// [`decode`], waiting out a registry that is unavailable (backoff 1 s
    /// doubling to 30 s, `/healthz` unhealthy meanwhile): such a record is
    /// never dead-lettered or skipped. `Some(Err(reason))` is bad data;
    /// `None` means the sink is stopping.
    async fn decode_waiting(
        &self,
        schemas: &mut Schemas,
        rec: &Consumed,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Result<Option<Decoded>, String>> {
        let mut backoff = Duration::from_secs(1);
        loop {
            match decode(schemas, self.registry, rec).await {
                Err(Lookup::Unavailable(e)) => {
                    self.metrics.registry_unavailable.inc();
                    self.metrics.registry_up.set(0);
                    tracing::warn!(error = %e, topic = %rec.topic, partition = rec.partition, offset = rec.offset,
                        "schema registry unavailable: the batch waits, nothing is dead-lettered or skipped");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return None,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(Lookup::Bad(reason)) => return Some(Err(reason)),
                Ok(d) => {
                    self.metrics.registry_up.set(1);
                    return Some(Ok(d));
                }
            }
        }
    }

    /// The next batch, decoded; `None` when none came or the sink stops.
    async fn read(
        &self,
        schemas: &mut Schemas,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Prepared>, SinkError> {
        let batch = tokio::select! {
            b = self.consumer.poll_batch(self.cfg.max_rows, self.cfg.max_wait) => match b {
                Err(kafka::KafkaIoError::OffsetOutOfRange) => {
                    return Err(positions::explain_out_of_range(self.sf, self.consumer, &self.cfg.topics, self.qualifier).await)
                }
                b => b?,
            },
            _ = shutdown.changed() => return Ok(None),
        };
        if let Some(lag) = self.consumer.lag() {
            self.metrics.kafka_lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        if batch.is_empty() {
            return Ok(None);
        }
        self.metrics.records.inc_by(batch.len() as u64);
        let mut p = Prepared {
            by_topic: BTreeMap::new(),
            polled: Polled {
                next: BTreeMap::new(),
                records: batch.len(),
                dead_lettered: 0,
                at: Instant::now(),
            },
        };
        for (i, rec) in batch.into_iter().enumerate() {
            // Decoding is CPU work with no await of its own: behind, it runs
            // beside the write of the previous batch (see `run`), which only
            // gets to send its next statement when this yields.
            if i % 256 == 255 {
                tokio::task::yield_now().await;
            }
            let pos = p.polled.next.entry((rec.topic.clone(), rec.partition)).or_insert(0);
            *pos = (*pos).max(rec.offset + 1);
            let Some(decoded) = self.decode_waiting(schemas, &rec, shutdown).await else {
                // Stopping while the registry is down: nothing of this
                // batch is stored, so all of it is read again.
                return Ok(None);
            };
            match decoded {
                Ok(Some(d)) => p.by_topic.entry(rec.topic.clone()).or_default().push((rec, d)),
                Ok(None) => {} // a tombstone: for compaction only
                Err(reason) => {
                    tracing::warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %reason, "dead-lettered");
                    dead_letter(self.producer, &self.cfg.dead_letter_topic, &rec, "decode", &reason)?;
                    p.polled.dead_lettered += 1;
                    self.metrics.dead_lettered.inc();
                }
            }
        }
        // Dead letters are in Kafka before the positions move past them.
        if p.polled.dead_lettered > 0 {
            self.producer.flush(Duration::from_secs(60))?;
        }
        Ok(Some(p))
    }
}

struct Writer<'a> {
    sf: &'a Client,
    consumer: &'a kafka::Consumer,
    producer: &'a kafka::Producer,
    cfg: &'a SinkConfig,
    lease: &'a lease::Lease,
    registry: &'a RegistryClient,
    metrics: &'a metrics::Metrics,
    qualifier: &'a str,
    offsets: &'a str,
}

/// One topic generation's part of a batch (or a part of that, bounded in
/// bytes), built: the staged JSON and the statements that load it, and
/// the records it holds, to split it by if the warehouse rejects it.
struct Load {
    topic: String,
    /// Staging, current-state MERGE, changelog insert (see `tables`).
    statements: Arc<[String; 3]>,
    /// The generation's row fields, in column order.
    fields: Arc<[String]>,
    records: Vec<Staging>,
    staged: String,
    /// The part's lowest commit LSN, which bounds the changelog anti-join.
    lowest_commit_lsn: i64,
    rows: usize,
    changes: u64,
    newest_commit_us: Option<i64>,
    json_ms: u64,
}

/// A record on its way to the warehouse, with its schema version.
type Staging = (Consumed, Decoded, i64);

/// A batch built for the warehouse: its loads, in order, and its positions.
struct Built {
    loads: Vec<Load>,
    polled: Polled,
}

impl Writer<'_> {
    /// Places a batch's schema versions (creating or widening tables as
    /// they need) and writes its staged JSON, one [`Load`] per topic
    /// generation, each record into the generation its version is placed
    /// in.
    async fn build(
        &self,
        topics: &mut HashMap<String, TopicTables>,
        schemas: &mut Schemas,
        p: Prepared,
    ) -> Result<Built, SinkError> {
        let mut loads = Vec::new();
        for (topic, records) in p.by_topic {
            let mut services = Services {
                sf: self.sf,
                registry: self.registry,
                schemas: &mut *schemas,
            };
            if !topics.contains_key(&topic) {
                let opened = TopicTables::open(&mut services, self.qualifier, &topic).await?;
                topics.insert(topic.clone(), opened);
            }
            let Some(tables) = topics.get_mut(&topic) else { continue };
            let pairs: Vec<(u32, u32)> = records.iter().map(|(_, d)| (d.value_id, d.key_id)).collect();
            tables.place(&mut services, &pairs).await?;
            let mut by_generation: BTreeMap<usize, Vec<Staging>> = BTreeMap::new();
            for (rec, d) in records {
                let Some(p) = tables.placement(d.value_id, d.key_id) else {
                    return Err(SinkError::Layout {
                        topic: rec.topic.clone(),
                        message: format!("schema ids {}/{} were not placed", d.value_id, d.key_id),
                    });
                };
                by_generation.entry(p.generation).or_default().push((rec, d, p.version));
            }
            for (generation, records) in by_generation {
                let layout = &tables.generations[generation];
                loads.extend(build_loads(&topic, layout, records, self.cfg.max_bytes));
            }
        }
        Ok(Built {
            loads,
            polled: p.polled,
        })
    }

    /// Runs a built batch's statements; returns its changes and how many
    /// records the warehouse rejected. Its positions are the caller's to
    /// store, afterwards (see [`Writer::store_positions`]).
    ///
    /// A load the warehouse rejects with a data error (see
    /// [`snowflake::SnowflakeError::is_data`]) is split in halves, each
    /// loaded again, until the records that fail on their own are found:
    /// those go to the dead-letter topic with the warehouse's message, the
    /// rest loads. Every statement is idempotent, so running a part again
    /// is safe. Any other error stops the sink before the positions move.
    async fn execute(&self, b: Built) -> Result<(u64, u64), SinkError> {
        let span = tracing::debug_span!("batch", records = b.polled.records, loads = b.loads.len());
        self.execute_loads(b).instrument(span).await
    }

    async fn execute_loads(&self, b: Built) -> Result<(u64, u64), SinkError> {
        let (mut changes, mut rejected) = (0, 0);
        let mut todo: Vec<Load> = b.loads.into_iter().rev().collect();
        while let Some(mut load) = todo.pop() {
            self.lease.check()?;
            match self.run_load(&mut load).await {
                Ok(()) => changes += self.loaded(load),
                Err(SinkError::Snowflake(e)) if e.is_data() => {
                    let reason = e.reason();
                    if let [(rec, _, _)] = load.records.as_slice() {
                        tracing::warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %reason,
                            "the warehouse rejected a record: dead-lettered");
                        dead_letter(self.producer, &self.cfg.dead_letter_topic, rec, "warehouse", &reason)?;
                        self.metrics.dead_lettered.inc();
                        self.metrics.warehouse_rejected.inc();
                        rejected += 1;
                    } else {
                        tracing::warn!(topic = %load.topic, rows = load.rows, %reason,
                            "the warehouse rejected a batch: loading it in halves to find the records at fault");
                        let (first, second) = load.split();
                        todo.push(second);
                        todo.push(first);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        // Dead letters are in Kafka before the positions move past them.
        if rejected > 0 {
            self.producer.flush(Duration::from_secs(60))?;
        }
        self.metrics.batch_seconds.observe(b.polled.at.elapsed().as_secs_f64());
        Ok((changes, rejected))
    }

    /// One load's three statements. Its staged JSON is handed to the
    /// first (a split stages its halves anew, from the records).
    async fn run_load(&self, load: &mut Load) -> Result<(), SinkError> {
        let statements = load.statements.clone();
        let [stage, merge_current, insert_changelog] = &*statements;
        let t0 = Instant::now();
        self.sf
            .query(stage, &[Bind::Text(std::mem::take(&mut load.staged))])
            .await?;
        let t1 = Instant::now();
        // The current state first: a change is visible one statement
        // sooner. A crash before the changelog insert replays the batch
        // (positions are written last), which the MERGE absorbs and the
        // insert completes.
        self.sf.query(merge_current, &[]).await?;
        let t2 = Instant::now();
        self.sf
            .query(insert_changelog, &[Bind::Text(load.lowest_commit_lsn.to_string())])
            .await?;
        tracing::debug!(
            rows = load.rows,
            json_ms = load.json_ms,
            stage_ms = (t1 - t0).as_millis() as u64,
            merge_ms = (t2 - t1).as_millis() as u64,
            changelog_ms = t2.elapsed().as_millis() as u64,
            "batch loaded"
        );
        Ok(())
    }

    /// Counts a load that went in; returns its changes.
    fn loaded(&self, load: Load) -> u64 {
        self.metrics
            .changes
            .inc_by(&metrics::TopicLabels { topic: load.topic }, load.changes);
        if let Some(ts) = load.newest_commit_us {
            self.metrics
                .commit_to_visible
                .observe((unix_micros() - ts).max(0) as f64 / 1e6);
        }
        load.changes
    }

    /// Stores positions (next offset per topic and partition, all loaded).
    /// Positions come after the data: a crash before this statement
    /// replays those batches, which the idempotent statements absorb. One
    /// statement for every partition; positions only move forward.
    async fn store_positions(&self, committed: Vec<(String, i32, i64)>) -> Result<(), SinkError> {
        self.lease.check()?;
        let (source, binds) = positions::source(&committed);
        self.sf
            .query(
                &format!(
                    "UPDATE {} t SET \"NEXT_OFFSET\" = s.\"NEXT_OFFSET\" FROM ({source}) s \
                     WHERE t.\"TOPIC\" = s.\"TOPIC\" AND t.\"PART\" = s.\"PART\" AND s.\"NEXT_OFFSET\" > t.\"NEXT_OFFSET\"",
                    self.offsets,
                ),
                &binds,
            )
            .await?;
        self.metrics.stored(committed.iter().cloned());
        if let Err(e) = self.consumer.commit(&committed) {
            // Kafka's copy is for monitoring; the warehouse's is the truth.
            tracing::debug!(error = %e, "committing group offsets failed");
        }
        Ok(())
    }
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// `/metrics`, and `/healthz`: healthy while the batch loop goes round.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<metrics::Metrics>,
    alive: Arc<changes::Heartbeat>,
) -> Result<metrics_server::Server, SinkError> {
    let registry_up = metrics.registry_up.clone();
    let health = move || {
        if registry_up.get() == 0 {
            return Err("the schema registry is unavailable: records wait for it".to_string());
        }
        alive.check(Duration::from_secs(60), "starting (leases, positions)")
    };
    metrics_server::serve(addr, move || metrics.render(), health)
        .await
        .map_err(|source| SinkError::Metrics { addr, source })
}

/// Part of a batch's JSON: an array written straight from the decoded
/// rows, each change once (a redelivered one has the same commit LSN, LSN,
/// op and key), as an array of the row's `fields` (null where a version
/// lacks one) then the metadata columns.
struct Chunk {
    json: String,
    /// How many of the records (in order) it covers.
    records: usize,
    changes: u64,
    /// The newest commit time (Unix µs).
    newest_commit_us: Option<i64>,
}

/// `records` as JSON arrays of at most `max_bytes` each (a single record
/// larger than that has an array of its own: the warehouse decides).
fn staged_json(records: &[Staging], fields: &[String], max_bytes: usize) -> Vec<Chunk> {
    let mut seen: HashSet<String> = HashSet::with_capacity(records.len());
    let mut chunks = Vec::new();
    let new_chunk = || Chunk {
        json: String::from("["),
        records: 0,
        changes: 0,
        newest_commit_us: None,
    };
    let mut chunk = new_chunk();
    let mut row = String::new();
    for (rec, d, version) in records {
        row.clear();
        if !staged_row(&mut row, rec, d, *version, fields, &mut seen) {
            chunk.records += 1; // the same change again: covered, not staged
            continue;
        }
        if chunk.changes > 0 && chunk.json.len() + row.len() + 2 > max_bytes {
            chunk.json.push(']');
            chunks.push(std::mem::replace(&mut chunk, new_chunk()));
        }
        if chunk.changes > 0 {
            chunk.json.push(',');
        }
        chunk.json.push_str(&row);
        chunk.records += 1;
        chunk.changes += 1;
        let ts = d.event.transaction.commit_us;
        chunk.newest_commit_us = Some(chunk.newest_commit_us.map_or(ts, |n| n.max(ts)));
    }
    chunk.json.push(']');
    chunks.push(chunk);
    chunks
}

/// Writes one change's JSON array into `out`; false when `seen` has it
/// already.
fn staged_row(
    out: &mut String,
    rec: &Consumed,
    d: &Decoded,
    version: i64,
    fields: &[String],
    seen: &mut HashSet<String>,
) -> bool {
    let e = &d.event;
    let (op, commit_lsn, lsn) = (e.op.code(), e.position.commit_lsn.0, e.position.lsn.0);
    if !seen.insert(format!("{commit_lsn}/{lsn}/{op}/{}", e.key)) {
        return false;
    }
    out.push('[');
    let row = e.row();
    for f in fields {
        match row.and_then(|row| row.get(f.as_str())) {
            Some(v) => {
                let _ = write!(out, "{v},");
            }
            None => out.push_str("null,"),
        }
    }
    let _ = write!(
        out,
        "\"{op}\",{lsn},{commit_lsn},{},\"{}\",{},{version},{},{},{}]",
        e.transaction.txid,
        avro_json::timestamp_text(e.transaction.commit_us),
        d.value_id,
        rec.partition,
        rec.offset,
        e.op == changes::Op::Delete
    );
    true
}

/// `records` (one topic generation's part of a batch) staged for `layout`,
/// in loads of at most `max_bytes` of JSON each.
fn build_loads(topic: &str, layout: &Layout, mut records: Vec<Staging>, max_bytes: usize) -> Vec<Load> {
    let started = Instant::now();
    let fields: Arc<[String]> = layout.row.iter().map(|c| c.field.clone()).collect();
    let statements = Arc::new(layout.load());
    let chunks = staged_json(&records, &fields, max_bytes);
    let json_ms = started.elapsed().as_millis() as u64;
    let mut loads = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let rest = records.split_off(chunk.records.min(records.len()));
        let part = std::mem::replace(&mut records, rest);
        loads.push(Load::new(
            topic,
            statements.clone(),
            fields.clone(),
            part,
            chunk,
            json_ms,
        ));
    }
    loads
}

impl Load {
    fn new(
        topic: &str,
        statements: Arc<[String; 3]>,
        fields: Arc<[String]>,
        records: Vec<Staging>,
        chunk: Chunk,
        json_ms: u64,
    ) -> Load {
        // Only changelog rows at or past the part's lowest commit LSN can be
        // the same change: a bound that lets the warehouse prune the scan.
        let lowest_commit_lsn = records
            .iter()
            .map(|(_, d, _)| i64::try_from(d.event.position.commit_lsn.0).unwrap_or(i64::MAX))
            .min()
            .unwrap_or(0);
        Load {
            topic: topic.to_string(),
            statements,
            fields,
            rows: records.len(),
            records,
            staged: chunk.json,
            lowest_commit_lsn,
            changes: chunk.changes,
            newest_commit_us: chunk.newest_commit_us,
            json_ms,
        }
    }

    /// The load in two halves of its records, each staged anew.
    fn split(mut self) -> (Load, Load) {
        let second = self.records.split_off(self.records.len() / 2);
        let half = |records: Vec<Staging>| {
            let started = Instant::now();
            let chunk = staged_json(&records, &self.fields, usize::MAX).pop().unwrap_or(Chunk {
                json: "[]".into(),
                records: 0,
                changes: 0,
                newest_commit_us: None,
            });
            let json_ms = started.elapsed().as_millis() as u64;
            Load::new(
                &self.topic,
                self.statements.clone(),
                self.fields.clone(),
                records,
                chunk,
                json_ms,
            )
        };
        (half(std::mem::take(&mut self.records)), half(second))
    }
}

/// Sends `rec` as it was read to the dead-letter topic, with the reason.
fn dead_letter(
    producer: &kafka::Producer,
    topic: &str,
    rec: &Consumed,
    rule: &str,
    reason: &str,
) -> Result<(), kafka::KafkaIoError> {
    let source = format!("{}/{}/{}", rec.topic, rec.partition, rec.offset);
    let why = changes::DeadLetter::new(changes::Stage::Sink, &rec.topic, vec![rule.into()], vec![reason.into()])
        .at(source.clone())
        .with(changes::header::SOURCE, source);
    producer.dead_letter(
        topic,
        rec.key.as_deref().unwrap_or_default(),
        rec.value.as_deref(),
        &why,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn staged_rows_carry_each_change_once_with_its_metadata() {
        let rec = |offset: i64| Consumed {
            topic: "p.public.t".into(),
            partition: 2,
            offset,
            key: None,
            value: None,
            timestamp_ms: None,
        };
        let change = |op: &str, lsn: i64, row: serde_json::Value| Decoded {
            event: ChangeEvent::from_json(
                serde_json::json!({"id": 1}),
                serde_json::json!({
                    "op": op,
                    "before": if op == "d" { row.clone() } else { Value::Null },
                    "after": if op == "d" { Value::Null } else { row },
                    "source": {"lsn": lsn, "commit_lsn": lsn + 8, "txid": 7, "ts_us": 1_709_202_896_789_012_i64},
                }),
            )
            .unwrap(),
            key_id: 1,
            value_id: 9,
        };
        let update = change("u", 100, serde_json::json!({"id": 1, "name": "a \"quoted\" name"}));
        let again = change("u", 100, serde_json::json!({"id": 1, "name": "a \"quoted\" name"}));
        let delete = change("d", 200, serde_json::json!({"id": 1, "name": null}));
        let records = vec![(rec(10), update, 3), (rec(11), again, 3), (rec(12), delete, 3)];
        let fields: Vec<String> = ["id", "name", "added_later"].map(String::from).into();
        let mut chunks = staged_json(&records, &fields, usize::MAX);
        assert_eq!(chunks.len(), 1);
        let chunk = chunks.pop().unwrap();
        assert_eq!((chunk.records, chunk.changes), (3, 2));
        assert_eq!(chunk.newest_commit_us, Some(1_709_202_896_789_012));
        // Bounded in bytes, the same rows come in parts that cover every record.
        let parts = staged_json(&records, &fields, 100);
        assert_eq!(
            parts.iter().map(|c| (c.records, c.changes)).collect::<Vec<_>>(),
            [(2, 1), (1, 1)]
        );
        assert!(parts.iter().all(|c| serde_json::from_str::<Value>(&c.json).is_ok()));
        let json = chunk.json;
        let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            rows,
            serde_json::json!([
                [
                    1,
                    "a \"quoted\" name",
                    null,
                    "u",
                    100,
                    108,
                    7,
                    "2024-02-29T10:34:56.789012Z",
                    9,
                    3,
                    2,
                    10,
                    false
                ],
                [
                    1,
                    null,
                    null,
                    "d",
                    200,
                    208,
                    7,
                    "2024-02-29T10:34:56.789012Z",
                    9,
                    3,
                    2,
                    12,
                    true
                ]
            ])
        );
    }

    #[test]
    fn a_value_that_is_not_a_change_event_is_bad_data() {
        let schema =
            schema::Schema::parse_str(r#"{"type":"record","name":"E","fields":[{"name":"op","type":"string"}]}"#)
                .unwrap();
        let mut body = Vec::new();
        avro_codec::put_string(&mut body, "c");
        let env = avro_json::decode_keeping_numbers(&schema, &body, &["source"]).unwrap();
        let e = ChangeEvent::from_json(Value::Null, env).unwrap_err();
        assert!(e.to_string().contains("source.commit_lsn"), "{e}");
    }
}
