//! The stage's life: start-up checks and registration, the snapshot of a
//! new slot, then the replication loop that emits events and confirms WAL
//! positions as Kafka acknowledges them. See the crate docs for the
//! guarantees.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use changes::Lsn;
use pg_avro::{EventMeta, Op};
use pgoutput::{Datum, Message, OldRow};
use pgwire_replication::{Lsn as WalLsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use registry_client::RegistryClient;
use tokio::sync::watch;
use tokio_postgres::{Client, SimpleQueryMessage};
use tracing::Instrument as _;

use crate::catalog::{self, TableShape};
use crate::config::{quote_ident, CdcConfig};
use crate::confirm::{Committed, Confirmer, SentDeadLetters};
use crate::events::{now_ms, Emitter, EmitterConfig};
use crate::incremental::Incremental;
use crate::metrics::Metrics;
use crate::CdcError;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub snapshot_rows: u64,
    pub transactions: u64,
    /// Records acknowledged by Kafka (events, tombstones, dead letters).
    pub acknowledged: u64,
    /// The last WAL position confirmed to the slot.
    pub confirmed_lsn: Lsn,
}

/// How long a graceful stop waits for Kafka to acknowledge what is in flight.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Rows fetched per round trip while snapshotting.
const SNAPSHOT_FETCH: usize = 5_000;

fn table_of(shape: &TableShape) -> crate::TableName {
    crate::TableName {
        schema: shape.relation.namespace.clone(),
        name: shape.relation.name.clone(),
    }
}

/// A PostgreSQL timestamp (µs since 2000-01-01) as Unix µs.
fn unix_micros(pg_micros: i64) -> i64 {
    pg_micros.saturating_add(pgoutput::PG_EPOCH_OFFSET_MICROS)
}

fn pg_now_micros() -> i64 {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    us - pgoutput::PG_EPOCH_OFFSET_MICROS
}

/// Runs the stage until `shutdown` turns true or a fatal error occurs.
pub async fn run(cfg: CdcConfig, shutdown: watch::Receiver<bool>) -> Result<Summary, CdcError> {
    run_with_metrics(cfg, Arc::new(Metrics::new()), shutdown).await
}

/// [`run`], counting into `metrics`: a caller that restarts the stage
/// keeps its counters across runs, and can read them in process.
pub async fn run_with_metrics(
    cfg: CdcConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary, CdcError> {
    // When the replication loop last went round (0: not streaming yet).
    let alive = Arc::new(changes::Heartbeat::default());
    // Served while this run lasts.
    let _metrics_server = match cfg.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, metrics.clone(), alive.clone()).await?),
        None => None,
    };
    let url = pg_tls::PgUrl::parse("DATABASE_URL", cfg.database_url.expose())?;
    let db = url.config.get_dbname().unwrap_or("postgres").to_string();
    let sql = catalog::connect(cfg.database_url.expose()).await?;

    // Everything that can be wrong with the tables is found before anything is created.
    let shapes = check_tables(&cfg, &sql).await?;
    let mut emitter = build_emitter(&cfg, &shapes, metrics.clone()).await?;
    let partitioned = shapes.iter().any(|s| s.partitioned);
    catalog::ensure_publication(&sql, &cfg.publication, &cfg.tables, partitioned).await?;
    catalog::ensure_state_table(&sql, &cfg.state_table).await?;

    let (position, incremental) = resume_point(&cfg, &sql, &shapes, &metrics).await?;
    let repl_cfg = replication_config(&cfg, &url);
    let mut summary = Summary::default();
    let (mut repl, start) = match position {
        Some(lsn) => {
            tracing::info!(slot = %cfg.slot, %lsn, "resuming from the slot's confirmed position");
            emitter.remember_sent_dead_letters(dead_letters_since(&cfg, lsn).await?);
            metrics.confirmed(lsn);
            let repl = ReplicationClient::connect(repl_cfg.with_start_lsn(WalLsn(lsn.0)).with_ack_lsn(WalLsn(lsn.0)))
                .await
                .map_err(CdcError::Replication)?;
            (repl, lsn)
        }
        None => {
            let setup = Setup {
                cfg: &cfg,
                sql: &sql,
                db: &db,
                metrics: &metrics,
                shapes: &shapes,
            };
            let (repl, consistent, rows) = create_slot_and_snapshot(&setup, repl_cfg, &mut emitter).await?;
            summary.snapshot_rows = rows;
            (repl, consistent)
        }
    };
    repl.wait_started().await.map_err(CdcError::Replication)?;
    if !incremental.is_empty() {
        let names: Vec<String> = incremental.iter().map(|s| table_of(s).to_string()).collect();
        tracing::info!(tables = ?names, "incremental snapshot while streaming");
    }

    let mut state = StreamState {
        cfg: &cfg,
        sql: &sql,
        db: &db,
        metrics: &metrics,
        alive: &alive,
        emitter,
        tx: None,
        confirmer: Confirmer::new(start),
        summary,
        incremental: Incremental::new(&cfg.slot, incremental),
        completed: Vec::new(),
        tx_counts: Vec::new(),
        types: catalog::UserTypes::default(),
    };
    let result = state.stream(&mut repl, &mut shutdown).await;
    state.finish(repl, result).await
}

/// What the start-up steps share.
struct Setup<'a> {
    cfg: &'a CdcConfig,
    sql: &'a Client,
    db: &'a str,
    metrics: &'a Metrics,
    shapes: &'a [TableShape],
}

/// Every captured table's shape, checked for capture (primary key,
/// replica identity, mapped types) before anything is created.
async fn check_tables(cfg: &CdcConfig, sql: &Client) -> Result<Vec<TableShape>, CdcError> {
    let mut shapes: Vec<TableShape> = Vec::new();
    let mut types = catalog::UserTypes::default();
    for t in &cfg.tables {
        let shape = catalog::table_shape(sql, t, &mut types).await?;
        pg_avro::TableCodec::new(&cfg.topic_prefix, &shape.relation, &shape.primary_key, None)
            .map_err(|e| CdcError::Mapping(e.to_string()))?;
        shapes.push(shape);
    }
    Ok(shapes)
}

/// The emitter, with every table's schemas registered and every topic
/// created, checked for durability and measured for size limits.
async fn build_emitter(cfg: &CdcConfig, shapes: &[TableShape], metrics: Arc<Metrics>) -> Result<Emitter, CdcError> {
    let contracts = load_contracts(cfg)?;

    let registry = RegistryClient::with_security(&cfg.registry_url, &cfg.registry).map_err(CdcError::Registry)?;
    let producer = kafka::Producer::tracked(&cfg.kafka, cfg.linger)?;
    let mut emitter = Emitter::new(
        EmitterConfig {
            topic_prefix: cfg.topic_prefix.clone(),
            dead_letter_topic: cfg.dead_letter_topic.clone(),
            tombstones: cfg.tombstones,
        },
        producer,
        registry,
        contracts,
        metrics,
    );
    let durability = vec![("min.insync.replicas".to_string(), cfg.min_insync_replicas.to_string())];
    let mut topics = vec![kafka::TopicSpec {
        name: cfg.dead_letter_topic.clone(),
        partitions: cfg.partitions,
        replication: cfg.replication,
        config: durability.clone(),
    }];
    for shape in shapes {
        emitter.register(&shape.relation, &shape.primary_key).await?;
        topics.push(kafka::TopicSpec {
            name: emitter.topic_for(&shape.relation),
            partitions: cfg.partitions,
            replication: cfg.replication,
            config: durability.clone(),
        });
    }
    if let Some(topic) = &cfg.transaction_topic {
        emitter.enable_transactions(topic).await?;
        // One partition: consumers read BEGIN/END in commit order.
        topics.push(kafka::TopicSpec {
            name: topic.clone(),
            partitions: 1,
            replication: cfg.replication,
            config: durability.clone(),
        });
    }
    kafka::ensure_topics(&cfg.kafka, &topics).await?;
    let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    let settings = kafka::describe_topics(&cfg.kafka, &names).await?;
    kafka::check_durability(&settings)?;
    emitter.set_limits(&settings);
    Ok(emitter)
}

/// The slot's confirmed position (`None`: a new slot and snapshot are
/// needed), and the tables still to snapshot while streaming.
async fn resume_point(
    cfg: &CdcConfig,
    sql: &Client,
    shapes: &[TableShape],
    metrics: &Metrics,
) -> Result<(Option<Lsn>, Vec<TableShape>), CdcError> {
    let mut position = catalog::slot_position(sql, &cfg.slot).await?;
    let mut incremental = Vec::new();
    if position.is_some() {
        let done = catalog::snapshotted(sql, &cfg.state_table, &cfg.slot).await?;
        if done.is_empty() {
            // The stage died during the initial snapshot: take it again from
            // a new slot. Rows already sent are sent again (op r); the sink keeps one.
            tracing::warn!(slot = %cfg.slot, "the initial snapshot never completed: starting over with a new slot");
            catalog::drop_slot(sql, &cfg.slot).await?;
            position = None;
        } else {
            // Tables added since (or whose incremental snapshot did not
            // finish) are read in chunks while the stream runs.
            incremental = shapes
                .iter()
                .filter(|s| !done.contains(&table_of(s).to_string()))
                .cloned()
                .collect();
            metrics.snapshotted(done);
        }
    }
    Ok((position, incremental))
}

/// A new slot with an exported snapshot, every table read in it as op `r`
/// events, and the snapshot recorded once Kafka has all of it. Returns the
/// replication session, the slot's consistent point and the rows read.
async fn create_slot_and_snapshot(
    s: &Setup<'_>,
    repl_cfg: ReplicationConfig,
    emitter: &mut Emitter,
) -> Result<(ReplicationClient, Lsn, u64), CdcError> {
    catalog::forget_snapshots(s.sql, &s.cfg.state_table, &s.cfg.slot).await?;
    let mut repl = ReplicationClient::connect_gated(repl_cfg)
        .await
        .map_err(CdcError::Replication)?;
    let rows = repl
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
            quote_ident(&s.cfg.slot)
        ))
        .await
        .map_err(CdcError::Replication)?;
    let field = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i).cloned().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| CdcError::Protocol("CREATE_REPLICATION_SLOT answered without a row".into()))
    };
    let consistent = Lsn::parse(&field(1)?)
        .ok_or_else(|| CdcError::Protocol("CREATE_REPLICATION_SLOT gave no consistent point".into()))?;
    let snapshot_name = field(2)?;
    tracing::info!(slot = %s.cfg.slot, lsn = %consistent, "created slot; snapshotting");
    // The snapshot is imported before the replication session moves
    // on (starting it ends the export); from then on the import holds it.
    let snap = catalog::connect(s.cfg.database_url.expose()).await?;
    // ACCESS SHARE, as Debezium takes: a table rewrite (ALTER
    // TABLE … TYPE, TRUNCATE) is not MVCC-safe and would show the
    // snapshot an empty table, so it waits until the snapshot ends.
    let locks: Vec<String> = s.cfg.tables.iter().map(|t| t.quoted()).collect();
    snap.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'; \
         LOCK TABLE {} IN ACCESS SHARE MODE",
        snapshot_name.replace('\'', "''"),
        locks.join(", ")
    ))
    .await
    .map_err(CdcError::Postgres)?;
    repl.start().await.map_err(CdcError::Replication)?;
    let rows = snapshot(
        &snap,
        &mut *emitter,
        s.shapes,
        consistent,
        &s.cfg.topic_prefix,
        s.db,
        s.metrics,
    )
    .await?;
    snap.batch_execute("COMMIT").await.map_err(CdcError::Postgres)?;
    // The snapshot counts as done only once Kafka has all of it.
    emitter.producer.flush(FLUSH_TIMEOUT)?;
    catalog::mark_snapshotted(s.sql, &s.cfg.state_table, &s.cfg.slot, &s.cfg.tables, consistent).await?;
    s.metrics.snapshotted(s.cfg.tables.iter().map(ToString::to_string));
    s.metrics.confirmed(consistent);
    tracing::info!(rows, "snapshot complete; streaming");
    Ok((repl, consistent, rows))
}

/// The replication connection's settings, from the database URL: the same
/// host, credentials and TLS as the SQL connections.
fn replication_config(cfg: &CdcConfig, url: &pg_tls::PgUrl) -> ReplicationConfig {
    let pg = &url.config;
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    ReplicationConfig::new(
        host,
        pg.get_user().unwrap_or("postgres"),
        password,
        pg.get_dbname().unwrap_or("postgres"),
        cfg.slot.clone(),
        cfg.publication.clone(),
    )
    .with_port(pg.get_ports().first().copied().unwrap_or(5432))
    .with_options(catalog::SESSION_OPTIONS)
    .with_binary(cfg.binary_values)
    .with_application_name(format!("contrail-cdc-{}", cfg.slot))
    .with_status_interval(Duration::from_secs(1))
    .with_wakeup_interval(Duration::from_secs(5))
    .with_tls(url.replication_tls())
}

/// The contract records named in the configuration, compiled from `schemas/`.
fn load_contracts(cfg: &CdcConfig) -> Result<HashMap<String, serde_json::Value>, CdcError> {
    if cfg.contracts.is_empty() {
        return Ok(HashMap::new());
    }
    let compiled = idl::compile_dir(&cfg.schemas_dir).map_err(|e| CdcError::Config(e.to_string()))?;
    cfg.contracts
        .iter()
        .map(|(table, record)| {
            let c = compiled.get(record).ok_or_else(|| {
                CdcError::Config(format!(
                    "contracts: {table} follows {record}, which {} does not declare",
                    cfg.schemas_dir.display()
                ))
            })?;
            Ok((table.to_string(), c.json.clone()))
        })
        .collect()
}

/// Reads every table in the imported snapshot as op `r` events.
async fn snapshot(
    sql: &Client,
    emitter: &mut Emitter,
    shapes: &[TableShape],
    lsn: Lsn,
    server_name: &str,
    db: &str,
    metrics: &Metrics,
) -> Result<u64, CdcError> {
    let started = pg_now_micros();
    let mut total = 0u64;
    for shape in shapes {
        let rel = &shape.relation;
        let name = format!("{}.{}", rel.namespace, rel.name);
        let cols: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
        sql.batch_execute(&format!(
            "DECLARE contrail_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {}.{}",
            cols.join(", "),
            quote_ident(&rel.namespace),
            quote_ident(&rel.name)
        ))
        .await
        .map_err(CdcError::Postgres)?;
        let mut rows = 0u64;
        let mut datums: Vec<Datum> = Vec::with_capacity(cols.len());
        loop {
            let batch = sql
                .simple_query(&format!("FETCH {SNAPSHOT_FETCH} FROM contrail_snapshot"))
                .await
                .map_err(CdcError::Postgres)?;
            let mut n = 0;
            for m in batch {
                let SimpleQueryMessage::Row(r) = m else { continue };
                datums.clear();
                datums
                    .extend((0..r.len()).map(|i| r.get(i).map_or(Datum::Null, |s| Datum::Text(s.as_bytes().to_vec()))));
                let meta = EventMeta {
                    op: Op::Read,
                    server_name,
                    db,
                    position: changes::Position { commit_lsn: lsn, lsn },
                    transaction: changes::Transaction {
                        txid: 0,
                        commit_us: unix_micros(started),
                    },
                    now_ms: now_ms(),
                };
                emitter.change_by_name(&name, Op::Read, meta, None, Some(&datums))?;
                n += 1;
            }
            rows += n;
            if n == 0 {
                break;
            }
        }
        sql.batch_execute("CLOSE contrail_snapshot")
            .await
            .map_err(CdcError::Postgres)?;
        metrics.snapshot_rows.inc_by(rows);
        tracing::info!(table = %name, rows, "snapshot of table read");
        total += rows;
    }
    Ok(total)
}

/// The transaction being decoded.
#[derive(Debug, Clone, Copy)]
struct Tx {
    xid: u32,
    commit_ts: i64,
    final_lsn: Lsn,
    first_seq: u64,
}

impl Tx {
    /// The position of a change at `lsn` in this transaction.
    fn position(&self, lsn: Lsn) -> changes::Position {
        changes::Position {
            commit_lsn: self.final_lsn,
            lsn,
        }
    }

    fn transaction(&self) -> changes::Transaction {
        changes::Transaction {
            txid: self.xid,
            commit_us: unix_micros(self.commit_ts),
        }
    }
}

/// `<txid>:<commit LSN>`: unique even across txid wraparound.
fn transaction_id(tx: &Tx) -> String {
    format!("{}:{}", tx.xid, tx.final_lsn)
}

/// The most dead letters of its own the stage reads back per partition at
/// start-up; past it, a replayed rejection may be dead-lettered twice (never
/// lost).
const DEAD_LETTER_SCAN_LIMIT: u64 = 100_000;

/// The dead letters this stage sent for transactions committed at or after
/// `resume` (the slot's confirmed position), which the slot is about to
/// replay: read back from the end of the dead-letter topic, by (LSN, key).
/// The change topics need no such care (the sink drops repeats by LSN), but
/// the dead-letter topic is read by people: each rejected change once.
async fn dead_letters_since(cfg: &CdcConfig, resume: Lsn) -> Result<SentDeadLetters, CdcError> {
    let (kafka, topic, prefix) = (
        cfg.kafka.clone(),
        cfg.dead_letter_topic.clone(),
        cfg.topic_prefix.clone(),
    );
    let sent = tokio::task::spawn_blocking(move || {
        let mut sent = SentDeadLetters::default();
        kafka::scan_back(&kafka, &topic, DEAD_LETTER_SCAN_LIMIT, |_, key, headers| {
            sent.read_back(&prefix, resume, key, headers)
        })
        .map(|()| sent)
    })
    .await
    .map_err(|e| CdcError::Protocol(format!("reading back the dead-letter topic: {e}")))??;
    if sent.count() > 0 {
        tracing::info!(
            dead_letters = sent.count(),
            "dead letters already sent past the resume position; their changes will not be dead-lettered again"
        );
    }
    Ok(sent)
}

struct StreamState<'a> {
    cfg: &'a CdcConfig,
    sql: &'a Client,
    db: &'a str,
    metrics: &'a Metrics,
    alive: &'a changes::Heartbeat,
    emitter: Emitter,
    tx: Option<Tx>,
    /// Committed transactions waiting for Kafka, and the position confirmed.
    confirmer: Confirmer,
    summary: Summary,
    incremental: Incremental,
    /// Tables whose incremental snapshot ends with record number `.1`.
    completed: Vec<(crate::TableName, u64)>,
    /// Events per table in the current transaction (transaction metadata only).
    tx_counts: Vec<(String, u64)>,
    /// Domains and enums as what they are carried as.
    types: catalog::UserTypes,
}

impl StreamState<'_> {
    /// Whatever ended the stream, confirms what Kafka has (and only that),
    /// then closes the session.
    async fn finish(mut self, mut repl: ReplicationClient, result: Result<(), CdcError>) -> Result<Summary, CdcError> {
        let flushed = self.emitter.producer.flush(FLUSH_TIMEOUT);
        self.advance(&repl);
        if result.is_ok() && flushed.is_ok() {
            self.wait_confirmed().await;
        }
        let _ = repl.shutdown().await;
        result?;
        flushed?;
        self.summary.acknowledged = self.emitter.producer.deliveries().acked();
        self.summary.confirmed_lsn = self.confirmer.confirmed();
        Ok(self.summary)
    }

    async fn stream(
        &mut self,
        repl: &mut ReplicationClient,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), CdcError> {
        // Acknowledgements are noticed at the next event or tick: a short
        // tick keeps an idle stream's confirmations (and latency) prompt.
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heartbeat = Instant::now();
        let mut last_lag_check = Instant::now() - Duration::from_secs(60);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        tracing::info!("stopping: flushing and confirming what Kafka has");
                        return Ok(());
                    }
                }
                ev = repl.recv() => match ev.map_err(CdcError::Replication)? {
                    None => return Ok(()),
                    Some(ev) => {
                        let span = self.tx.map_or_else(tracing::Span::none, |t| {
                            tracing::debug_span!("transaction", xid = t.xid, commit_lsn = %t.final_lsn)
                        });
                        self.handle(ev).instrument(span).await?
                    }
                },
                _ = tick.tick() => {
                    if let Some(every) = self.cfg.heartbeat {
                        if last_heartbeat.elapsed() >= every {
                            last_heartbeat = Instant::now();
                            self.heartbeat().await?;
                        }
                    }
                    if last_lag_check.elapsed() >= Duration::from_secs(5) {
                        last_lag_check = Instant::now();
                        self.check_lag().await?;
                    }
                    self.record_completed_snapshots().await?;
                }
            }
            if self.incremental.wants_chunk() {
                self.incremental.read_chunk(self.sql).await?;
            }
            self.advance(repl);
            self.alive.beat();
            if self.emitter.producer.deliveries().failed() > 0 {
                // Surface the delivery error; nothing after it is confirmed.
                self.emitter.producer.flush(FLUSH_TIMEOUT)?;
            }
        }
    }

    async fn handle(&mut self, ev: ReplicationEvent) -> Result<(), CdcError> {
        match ev {
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => {
                self.tx = Some(Tx {
                    xid,
                    commit_ts: commit_time_micros,
                    final_lsn: Lsn(final_lsn.as_u64()),
                    first_seq: self.emitter.last_seq,
                });
            }
            ReplicationEvent::XLogData { wal_start, data, .. } => {
                let msg = pgoutput::decode(&data)
                    .map_err(|e| CdcError::Protocol(format!("at WAL position {}: {e}", Lsn(wal_start.as_u64()))))?;
                self.message(msg, Lsn(wal_start.as_u64())).await?;
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let tx = self.tx.take();
                if let (Some(t), false) = (tx, self.tx_counts.is_empty()) {
                    let counts = std::mem::take(&mut self.tx_counts);
                    let id = transaction_id(&t);
                    self.emitter
                        .transaction(&id, pgoutput::pg_micros_to_unix_millis(t.commit_ts), Some(&counts))?;
                }
                let events = tx.map_or(0, |t| self.emitter.last_seq - t.first_seq);
                self.metrics.transactions.inc();
                self.metrics.transaction_events.observe(events as f64);
                self.summary.transactions += 1;
                self.confirmer.committed(
                    self.emitter.last_seq,
                    Committed {
                        end_lsn: Lsn(end_lsn.as_u64()),
                        commit_ts: commit_time_micros,
                    },
                );
            }
            ReplicationEvent::Message {
                prefix, content, lsn, ..
            } => {
                if let Some((chunk, finished)) = self.incremental.watermark(&prefix, &content) {
                    let tx = self
                        .tx
                        .ok_or_else(|| CdcError::Protocol("a watermark outside a transaction".into()))?;
                    let meta = EventMeta {
                        op: Op::Read,
                        server_name: &self.cfg.topic_prefix,
                        db: self.db,
                        position: tx.position(Lsn(lsn.as_u64())),
                        transaction: tx.transaction(),
                        now_ms: now_ms(),
                    };
                    for (_, datums) in &chunk.rows {
                        self.emitter
                            .change_by_name(&chunk.table, Op::Read, meta, None, Some(datums))?;
                    }
                    self.metrics.snapshot_rows.inc_by(chunk.rows.len() as u64);
                    self.summary.snapshot_rows += chunk.rows.len() as u64;
                    if let Some(shape) = finished {
                        tracing::info!(table = %table_of(&shape), "incremental snapshot read; recorded once Kafka has it");
                        self.completed.push((table_of(&shape), self.emitter.last_seq));
                    }
                }
            }
            ReplicationEvent::KeepAlive { .. } => {}
            ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    async fn message(&mut self, msg: Message, lsn: Lsn) -> Result<(), CdcError> {
        let tx = match &msg {
            Message::Insert { .. } | Message::Update { .. } | Message::Delete { .. } => Some(
                self.tx
                    .ok_or_else(|| CdcError::Protocol("a row change outside a transaction".into()))?,
            ),
            _ => None,
        };
        let (server_name, db) = (self.cfg.topic_prefix.as_str(), self.db);
        let event = |op: Op, tx: Tx| EventMeta {
            op,
            server_name,
            db,
            position: tx.position(lsn),
            transaction: tx.transaction(),
            now_ms: now_ms(),
        };
        self.note_for_incremental(&msg);
        let emitted = match (msg, tx) {
            (Message::Relation(mut rel), _) => {
                self.types.resolve(self.sql, &mut rel).await?;
                self.emitter.relation(&rel).await?;
                None
            }
            (Message::Insert { relation, new }, Some(tx)) => {
                let n = self
                    .emitter
                    .change(relation, Op::Create, event(Op::Create, tx), None, Some(&new))?;
                Some((relation, n, tx))
            }
            (Message::Update { relation, old, new }, Some(tx)) => {
                let old = old.map(|o| match o {
                    OldRow::Full(d) | OldRow::Key(d) => d,
                });
                let n = self
                    .emitter
                    .change(relation, Op::Update, event(Op::Update, tx), old.as_deref(), Some(&new))?;
                Some((relation, n, tx))
            }
            (
                Message::Delete {
                    relation,
                    old: OldRow::Full(old) | OldRow::Key(old),
                },
                Some(tx),
            ) => {
                let n = self
                    .emitter
                    .change(relation, Op::Delete, event(Op::Delete, tx), Some(&old), None)?;
                Some((relation, n, tx))
            }
            (Message::Truncate { relations, .. }, _) => {
                let names: Vec<&str> = relations
                    .iter()
                    .filter_map(|r| self.emitter.table_name_of(*r))
                    .collect();
                tracing::warn!(tables = ?names, "TRUNCATE is not captured (the publication publishes row changes only)");
                None
            }
            _ => None,
        };
        if let Some((relation, n, tx)) = emitted {
            if n > 0 && self.emitter.writes_transactions() {
                self.count_for_transaction(relation, n, tx)?;
            }
        }
        Ok(())
    }

    /// Tells a running incremental snapshot of a row change, so that a
    /// chunk read before it does not overwrite it.
    fn note_for_incremental(&mut self, msg: &Message) {
        if self.incremental.is_done() {
            return;
        }
        let (relation, old, new) = match msg {
            Message::Insert { relation, new } => (*relation, None, Some(new.as_slice())),
            Message::Update { relation, old, new } => (
                *relation,
                old.as_ref().map(|o| match o {
                    OldRow::Full(d) | OldRow::Key(d) => d.as_slice(),
                }),
                Some(new.as_slice()),
            ),
            Message::Delete {
                relation,
                old: OldRow::Full(d) | OldRow::Key(d),
            } => (*relation, Some(d.as_slice()), None),
            _ => return,
        };
        if let Some(table) = self.emitter.table_name_of(relation) {
            self.incremental.saw_change(table, old, new);
        }
    }

    /// Confirms the end of every committed transaction whose records are all acknowledged.
    fn advance(&mut self, repl: &ReplicationClient) {
        let now = pg_now_micros();
        let durable = self.confirmer.advance(&self.emitter.producer);
        for c in &durable {
            self.metrics
                .commit_to_ack
                .observe((now - c.commit_ts).max(0) as f64 / 1e6);
        }
        if let Some(c) = durable.last() {
            repl.update_applied_lsn(WalLsn(c.end_lsn.0));
            self.metrics.confirmed(c.end_lsn);
        }
        self.metrics.kafka_acked.set(self.emitter.producer.deliveries().acked());
        let lag = self
            .confirmer
            .oldest()
            .map_or(0.0, |c| ((pg_now_micros() - c.commit_ts) as f64 / 1e6).max(0.0));
        self.metrics.slot_lag_seconds.set(lag);
    }

    /// Transaction metadata: a BEGIN before the transaction's first event,
    /// counts per table for its END.
    fn count_for_transaction(&mut self, relation: u32, n: u64, tx: Tx) -> Result<(), CdcError> {
        if self.tx_counts.is_empty() {
            let id = transaction_id(&tx);
            self.emitter
                .transaction(&id, pgoutput::pg_micros_to_unix_millis(tx.commit_ts), None)?;
        }
        let table = self.emitter.table_name_of(relation).unwrap_or_default();
        match self.tx_counts.iter_mut().find(|(t, _)| t == table) {
            Some((_, count)) => *count += n,
            None => self.tx_counts.push((table.to_string(), n)),
        }
        Ok(())
    }

    /// Records finished incremental snapshots once Kafka has all of them.
    async fn record_completed_snapshots(&mut self) -> Result<(), CdcError> {
        let acked = self.emitter.producer.deliveries().acked_through();
        let (ready, waiting): (Vec<_>, Vec<_>) = self.completed.drain(..).partition(|(_, seq)| *seq <= acked);
        self.completed = waiting;
        for (table, _) in ready {
            catalog::mark_snapshotted(
                self.sql,
                &self.cfg.state_table,
                &self.cfg.slot,
                std::slice::from_ref(&table),
                self.confirmer.confirmed(),
            )
            .await?;
            self.metrics.snapshotted([table.to_string()]);
            tracing::info!(%table, "incremental snapshot complete");
        }
        Ok(())
    }

    /// A transactional logical message: it travels through the slot like a
    /// change, so the slot advances while the captured tables are idle.
    async fn heartbeat(&self) -> Result<(), CdcError> {
        self.sql
            .execute(
                "SELECT pg_logical_emit_message(true, 'contrail.heartbeat', now()::text)",
                &[],
            )
            .await
            .map_err(CdcError::Postgres)?;
        Ok(())
    }

    async fn check_lag(&self) -> Result<(), CdcError> {
        let lag = catalog::slot_lag_bytes(self.sql, &self.cfg.slot).await?;
        self.metrics.slot_lag_bytes.set(lag);
        if lag > self.cfg.lag_warn_bytes {
            tracing::warn!(slot = %self.cfg.slot, lag_bytes = lag, bound = self.cfg.lag_warn_bytes, "the slot holds more WAL than the configured bound");
        }
        Ok(())
    }

    /// Waits (a few seconds at most) until the server has the last confirmed position.
    async fn wait_confirmed(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match catalog::slot_position(self.sql, &self.cfg.slot).await {
                Ok(Some(lsn)) if lsn >= self.confirmer.confirmed() => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the slot's position");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(lsn = %self.confirmer.confirmed(), "the server had not recorded the last confirmed position at exit; the next start replays from the previous one");
    }
}

/// `/metrics`, and `/healthz`: healthy while the replication loop goes
/// round (it ticks every few ms).
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    alive: Arc<changes::Heartbeat>,
) -> Result<metrics_server::Server, CdcError> {
    let health = move || alive.check(Duration::from_secs(10), "starting (checks, snapshot)");
    metrics_server::serve(addr, move || metrics.render(), health)
        .await
        .map_err(|source| CdcError::Metrics { addr, source })
}
