//! The producer service: flight data into the operational PostgreSQL table.
//!
//! ```text
//! Simulator ──batch of changes──▶ FlightWriter (one transaction per batch) ──▶ flight_state
//!     ▲                                   │
//!     └──── paced to `rate` changes/s ◀───┘  (the next batch is generated only
//!                                             after the previous one is written:
//!                                             backpressure, no unbounded buffer)
//! ```
//!
//! Batches are sized to about 50 ms of the target rate (at most
//! `batch_size`), so a trickle is written promptly and a flood in large
//! statements. A transient database error (connection lost) reconnects and
//! retries the same batch with exponential backoff; upserts and deletes are
//! idempotent, so a batch retried after an unknown outcome is still applied
//! once in effect. On SIGTERM or SIGINT the batch in hand is finished, then
//! the service stops and reports what it wrote. `/metrics` and `/healthz` are
//! served when `metrics_listen` is set.

pub mod config;
pub mod kafka_target;
pub mod metrics;
pub mod source;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flight_db::{migrate, FlightWriter};
use simulator::Op;
use tokio::sync::watch;

pub use config::{ConfigError, Overrides, ProducerConfig, ServiceDefaults, Target};
use kafka_target::KafkaTarget;
use metrics::{KindLabels, Metrics, OpLabels, RuleLabels};

/// Attempts for one batch before giving up.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] pg_tls::PgTlsError),
    #[error("writing to PostgreSQL failed")]
    Write(#[source] flight_db::DbError),
    #[error("writing to PostgreSQL failed {attempts} times in a row; giving up")]
    Exhausted {
        attempts: u32,
        #[source]
        last: flight_db::DbError,
    },
    #[error("source: {0}")]
    Source(String),
    #[error("Kafka")]
    Kafka(#[source] kafka::KafkaIoError),
    #[error("schema registry")]
    Registry(#[source] registry_client::ClientError),
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub bad_by_kind: BTreeMap<&'static str, u64>,
    /// Source rows or lines that could not be read (skipped and counted).
    pub malformed: u64,
    /// Records the Kafka target sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records the broker acknowledged (Kafka target).
    pub acknowledged: u64,
    pub elapsed: Duration,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }

    pub fn per_second(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, pg_tls::PgTlsError> {
    pg_tls::PgUrl::parse("DATABASE_URL", url)?.connect().await
}

/// Runs until the configured duration passes or `shutdown` turns true.
pub async fn run(cfg: ProducerConfig, shutdown: watch::Receiver<bool>) -> Result<Summary, ProducerError> {
    run_with_metrics(cfg, Arc::new(Metrics::new()), shutdown).await
}

/// [`run`], counting into `metrics`, which the caller can read in process.
pub async fn run_with_metrics(
    cfg: ProducerConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary, ProducerError> {
    let last_success = Arc::new(AtomicI64::new(now_ms()));
    // Served while this run lasts.
    let mut _server = None;
    if let Some(addr) = cfg.metrics_listen {
        _server = Some(serve_metrics(addr, metrics.clone(), last_success.clone()).await?);
    }
    let mut sink = Sink::open(&cfg.target).await?;
    let mut source = source::Source::open(&cfg.source)?;
    let batch_size = match cfg.rate {
        Some(rate) => (rate / 20).clamp(1, cfg.batch_size as u64) as usize,
        None => cfg.batch_size,
    };
    tracing::info!(rate = ?cfg.rate, batch_size, source = ?cfg.source, "producing");
    let start = Instant::now();
    let mut summary = Summary::default();
    loop {
        if *shutdown.borrow() || cfg.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let now = now_ms();
        let Some(step) = source.next(batch_size, now, &mut shutdown).await? else {
            break;
        };
        for m in &step.malformed {
            tracing::warn!(problem = %m, "malformed input skipped");
        }
        summary.malformed += step.malformed.len() as u64;
        metrics.malformed.inc_by(step.malformed.len() as u64);
        let batch = step.changes;
        if batch.is_empty() {
            continue;
        }
        let timer = Instant::now();
        summary.dead_lettered += sink.write(&batch, now, &metrics).await?;
        metrics.write_seconds.observe(timer.elapsed().as_secs_f64());
        if let Some(newest) = batch.iter().map(|c| c.state.last_contact).max() {
            metrics.source_lag.set((now_ms() - newest) as f64 / 1000.0);
        }
        last_success.store(now_ms(), Ordering::Relaxed);
        count_written(&batch, &metrics, &mut summary);
        if let (Some(rate), true) = (cfg.rate, source.is_simulator()) {
            let due = Duration::from_secs_f64(summary.total() as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    if let Sink::Kafka(target) = &sink {
        // "Written" means acknowledged: wait for every delivery report.
        summary.acknowledged = target.finish()?;
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Counts a written batch by op and injected fault: per batch, because a
/// metrics family lookup per record would cost more than the record's
/// encoding.
fn count_written(batch: &[simulator::Change], metrics: &Metrics, summary: &mut Summary) {
    let (mut inserts, mut updates, mut deletes) = (0u64, 0u64, 0u64);
    for c in batch {
        match c.op {
            Op::Insert => inserts += 1,
            Op::Update => updates += 1,
            Op::Delete => deletes += 1,
        }
        if let Some(kind) = c.bad {
            *summary.bad_by_kind.entry(kind.as_str()).or_default() += 1;
            metrics
                .bad_injected
                .get_or_create(&KindLabels { kind: kind.as_str() })
                .inc();
        }
    }
    for (op, n) in [("insert", inserts), ("update", updates), ("delete", deletes)] {
        if n > 0 {
            metrics.changes.get_or_create(&OpLabels { op }).inc_by(n);
        }
    }
    summary.inserts += inserts;
    summary.updates += updates;
    summary.deletes += deletes;
}

/// The target a run writes to.
enum Sink {
    Postgres { writer: FlightWriter, url: String },
    Kafka(Box<KafkaTarget>),
}

impl Sink {
    async fn open(target: &Target) -> Result<Sink, ProducerError> {
        Ok(match target {
            Target::Postgres { database_url } => {
                let mut client = connect(database_url.expose()).await.map_err(ProducerError::Connect)?;
                migrate(&mut client).await.map_err(ProducerError::Write)?;
                Sink::Postgres {
                    writer: FlightWriter::new(client),
                    url: database_url.expose().to_string(),
                }
            }
            Target::Kafka(k) => Sink::Kafka(Box::new(KafkaTarget::connect(k).await?)),
        })
    }

    /// Writes a batch; returns how many records were dead-lettered.
    async fn write(&mut self, batch: &[simulator::Change], now: i64, metrics: &Metrics) -> Result<u64, ProducerError> {
        match self {
            Sink::Postgres { writer, url } => {
                write_with_retry(writer, batch, url, metrics).await?;
                Ok(0)
            }
            Sink::Kafka(target) => {
                let sent = target.send(batch, now)?;
                for (rule, n) in target.take_rejections() {
                    metrics.rejected.get_or_create(&RuleLabels { rule }).inc_by(n);
                }
                Ok(sent.dead_lettered)
            }
        }
    }
}

async fn write_with_retry(
    writer: &mut FlightWriter,
    batch: &[simulator::Change],
    url: &str,
    metrics: &Metrics,
) -> Result<(), ProducerError> {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=MAX_ATTEMPTS {
        match writer.write(batch).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                metrics.retries.inc();
                tracing::warn!(error = %e, attempt, backoff_ms = backoff.as_millis() as u64, "transient write error; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                if let Ok(client) = connect(url).await {
                    *writer = FlightWriter::new(client);
                }
            }
            Err(e) if e.is_transient() => {
                return Err(ProducerError::Exhausted {
                    attempts: attempt,
                    last: e,
                })
            }
            Err(e) => return Err(ProducerError::Write(e)),
        }
    }
    unreachable!("the last attempt returns")
}

async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    last_success: Arc<AtomicI64>,
) -> Result<metrics_server::Server, ProducerError> {
    // Healthy while batches keep landing.
    let health = move || {
        let age = now_ms() - last_success.load(Ordering::Relaxed);
        if age < 30_000 {
            Ok(())
        } else {
            Err(format!("no successful write for {age} ms"))
        }
    };
    metrics_server::serve(addr, move || metrics.render(), health)
        .await
        .map_err(|source| ProducerError::Metrics { addr, source })
}
