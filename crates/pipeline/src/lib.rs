//! `contrail run`: the whole pipeline in one process, watched from the
//! outside.
//!
//! ```text
//! producer ──▶ PostgreSQL ──▶ CDC stage ──▶ Kafka + registry ──▶ sink ──▶ Snowflake
//!    │              │              │                               │          ▲  │
//!    └─ metrics ────┴─ slot lag ───┴─ metrics ─────────────────────┴─ metrics │  │
//!                                                    observer: queries ───────┘  │
//!                                   verify: source table = current-state view ◀──┘
//! ```
//!
//! The three stages run as they do on their own (`contrail produce|cdc|
//! sink`): each is restarted with backoff after a transient error (see
//! [`changes::supervise`]), and counts into its own metrics. The run reads
//! those as typed snapshots (see `meters`) and follows the stages through
//! the progress they publish: the CDC stage's confirmed position and
//! snapshotted tables, the sink's stored positions (see `stages`).
//!
//! A run is four phases, each an async function run by one driver
//! (`drive`: progress every `progress_every`, and a stage's failure ends
//! the run). **Catching up**: once the CDC stage streams, a marker is
//! written through the slot and the run waits until it is loaded, so a
//! backlog is not measured. **Producing**: the producer writes at the
//! requested rate for the requested time (or until interrupted) while the
//! observer polls the warehouse for latency (see `observe`). **Draining**:
//! once the producer stops, another marker, and the run waits until the
//! CDC stage has confirmed it and the sink's stored positions have reached
//! every partition's end, so everything produced is loaded.
//! **Verifying**: the source table and the current-state view are compared
//! row by row (see `verify`), and the changelog between the two markers is
//! accounted for. The stages are then stopped and the [`Report`]
//! returned.
//!
//! Failures: a stage's fatal error ends the run with that error; a drain
//! that does not finish in `drain_timeout` ends the run with
//! [`RunError::Drain`], naming what was still missing. The stages retry
//! transient errors for ever, as services should; a run, which has an
//! end, gives them `start_timeout` to catch up and otherwise stops them
//! and ends with [`RunError::Start`], naming each stage's last error (an
//! unreachable broker, say), instead of waiting silently.

pub mod accounting;
pub mod latency;
mod meters;
mod observe;
pub mod report;
mod stages;
pub mod verify;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use changes::{error_chain, Lsn};
use tokio::sync::watch;

use latency::Tracker;
use meters::{Counts, Meters, StageBuckets};
pub use report::{Progress, Report};
use stages::Stages;

/// What can end a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("producer")]
    Producer(#[from] producer::ProducerError),
    #[error("CDC stage")]
    Cdc(#[from] cdc::CdcError),
    #[error("sink")]
    Sink(#[from] sink::SinkError),
    #[error("Snowflake")]
    Snowflake(#[from] snowflake::SnowflakeError),
    #[error("Kafka")]
    Kafka(#[from] kafka::KafkaIoError),
    #[error("schema registry")]
    Registry(#[from] registry_client::ClientError),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("verification: {0}")]
    Verify(String),
    #[error("the pipeline did not drain within {timeout:?}: {missing}")]
    Drain { timeout: Duration, missing: String },
    #[error(
        "the stages did not catch up within {timeout:?} ({waiting}); {last_errors}; \
         fix what the stages report, or give them longer with --start-timeout"
    )]
    Start {
        timeout: Duration,
        waiting: &'static str,
        last_errors: String,
    },
    #[error("a stage task ended unexpectedly: {0}")]
    Task(String),
}

/// A run's settings: the stages' own configurations, and how to watch them.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub producer: producer::ProducerConfig,
    pub cdc: cdc::CdcConfig,
    pub sink: sink::SinkConfig,
    /// How often the observer queries the warehouse.
    pub poll: Duration,
    /// Changes committed in this first part of the run are not measured.
    pub warmup: Duration,
    /// How long to wait for everything produced to be loaded.
    pub drain_timeout: Duration,
    /// How long the stages may take to catch up at the start.
    pub start_timeout: Duration,
    /// How often progress is reported.
    pub progress_every: Duration,
}

/// The table `contrail run` produces into and follows through.
fn source_table() -> cdc::TableName {
    cdc::TableName {
        schema: "public".into(),
        name: "flight_state".into(),
    }
}

impl RunConfig {
    /// Checks that the three configurations describe one pipeline, before
    /// anything connects.
    pub fn validate(&self) -> Result<(), RunError> {
        if !matches!(self.producer.target, producer::Target::Postgres { .. }) {
            return Err(RunError::Config(
                "connectors/producer.toml: [target] kind must be \"postgres\" for `contrail run` (the CDC stage reads PostgreSQL); \"kafka\" is for `contrail produce`".into(),
            ));
        }
        let source = source_table();
        if !self.cdc.tables.contains(&source) {
            return Err(RunError::Config(format!(
                "connectors/cdc.toml: [source] tables must include {source}, the table the producer writes"
            )));
        }
        let topic = self.topic();
        if !self.sink.topics.contains(&topic) {
            return Err(RunError::Config(format!(
                "connectors/sink.toml: [source] topics {:?} do not include {topic}, where the CDC stage writes {source}",
                self.sink.topics
            )));
        }
        if self.poll.is_zero() {
            return Err(RunError::Config("--poll-ms must be at least 1".into()));
        }
        if self.drain_timeout.is_zero() {
            return Err(RunError::Config("--drain-timeout must be at least 1 second".into()));
        }
        if self.start_timeout.is_zero() {
            return Err(RunError::Config("--start-timeout must be at least 1 second".into()));
        }
        Ok(())
    }

    /// The CDC topic of the source table.
    pub fn topic(&self) -> String {
        format!("{}.{}", self.cdc.topic_prefix, source_table())
    }
}

/// What the phases share once the stages run.
struct Ctx {
    cfg: RunConfig,
    source: cdc::TableName,
    /// The source table as `schema.name`.
    table: String,
    topic: String,
    qualifier: String,
    key_columns: Vec<String>,
    pg: tokio_postgres::Client,
    sf: Arc<snowflake::Client>,
    meters: Meters,
}

/// Runs the pipeline; see the crate docs. `stop` ends the producing phase
/// early (the run still drains and verifies); `progress` is called every
/// `progress_every`.
pub async fn run(
    cfg: RunConfig,
    stop: watch::Receiver<bool>,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, RunError> {
    cfg.validate()?;
    let ctx = Ctx::connect(cfg).await?;
    let mut stages = Stages::spawn(&ctx.cfg.cdc, &ctx.cfg.sink, &ctx.meters);
    let every = ctx.cfg.progress_every;

    let catching_up = drive(&mut stages, every, ctx.catch_up(), || progress(&ctx.catching_up()));
    let from = match tokio::time::timeout(ctx.cfg.start_timeout, catching_up).await {
        Ok(from) => from?,
        Err(_) => return Err(stages.stop_stalled(ctx.cfg.start_timeout, ctx.waiting_for()).await),
    };
    // What the stages counted so far is the backlog's, not this run's.
    let base = ctx.meters.counts(&ctx.table);
    let watching = Watching::start(&ctx, from).await?;
    let live = |phase| watching.progress(&ctx, &base, phase);

    let (summary, memory) = drive(&mut stages, every, ctx.produce(stop, watching.started), || {
        progress(&live("producing"))
    })
    .await?;
    let produced_at = Instant::now();
    let to = drive(&mut stages, every, ctx.drain(&watching.tracker, &base), || {
        progress(&live("draining"))
    })
    .await?;
    let drained_at = Instant::now();
    progress(&live("verifying"));
    let started = watching.started;
    let tracker = watching.stop().await?;

    let verification = ctx.verify().await?;
    stages.stop().await;
    let counts = ctx.meters.counts(&ctx.table).since(&base);
    let changelog_view = sink::tables::view_names(&ctx.qualifier, &ctx.topic).1;
    let (changelog_rows, changelog_distinct) =
        accounting::changelog_between(&ctx.sf, &changelog_view, from, to).await?;
    let accounting = accounting::account(accounting::Counted {
        produced: summary.total(),
        captured: counts.captured,
        rejected: counts.rejected,
        sink_dead_lettered: counts.sink_dead_lettered,
        changelog_rows,
        changelog_distinct,
    });
    let t = tracker.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Finished {
        summary,
        counts,
        tracker: &t,
        stages: ctx.meters.stage_latencies(&memory.stage_base),
        memory,
        timing: [started, produced_at, drained_at],
        verification,
        accounting,
    }
    .report(&ctx.cfg))
}

/// The one driver of every phase: runs `phase` while calling `tick` every
/// `every`, and ends the run with a stage's error if one stops first.
async fn drive<T>(
    stages: &mut Stages,
    every: Duration,
    phase: impl Future<Output = Result<T, RunError>>,
    mut tick: impl FnMut(),
) -> Result<T, RunError> {
    // Boxed: the phases' waits would otherwise make the run's future large.
    let mut phase = Box::pin(phase);
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        tokio::select! {
            r = &mut phase => return r,
            _ = ticks.tick() => tick(),
            e = stages.failure() => return Err(e),
        }
    }
}

impl Ctx {
    /// Creates the source table (the CDC stage inspects it at start) and
    /// connects to PostgreSQL and the warehouse.
    async fn connect(cfg: RunConfig) -> Result<Ctx, RunError> {
        let source = source_table();
        let table = source.to_string();
        let pg = connect(cfg.cdc.database_url.expose()).await?;
        {
            let mut migrating = connect(cfg.cdc.database_url.expose()).await?;
            flight_db::migrate(&mut migrating)
                .await
                .map_err(|e| RunError::Postgres(format!("creating {table}: {e}")))?;
        }
        let key_columns = primary_key(&pg, &table).await?;
        let sf = Arc::new(snowflake::Client::connect(cfg.sink.snowflake.clone()).await?);
        Ok(Ctx {
            topic: cfg.topic(),
            qualifier: cfg.sink.qualifier(),
            cfg,
            source,
            table,
            key_columns,
            pg,
            sf,
            meters: Meters::new(),
        })
    }

    /// Catching up. Changes made before the CDC stage streams would reach
    /// it as snapshot rows, not as changes: the run produces once the
    /// snapshot is done. A slot left idle holds the WAL written since (by
    /// every database of the cluster), and an interrupted run may leave
    /// records unloaded: the run gets through both first, so the latency
    /// measured is the pipeline's, not a backlog's. Returns the marker
    /// every change of the run commits after.
    async fn catch_up(&self) -> Result<Lsn, RunError> {
        stages::wait_streaming(&self.meters, &self.table).await?;
        let now = mark(&self.pg).await?;
        stages::wait_through(&self.meters, &self.cfg.sink.kafka, &self.topic, now).await?;
        Ok(now)
    }

    /// What the catching-up phase still waits for.
    fn waiting_for(&self) -> &'static str {
        if self.meters.cdc.progress.borrow().snapshotted.contains(&self.table) {
            "the CDC stage streams; the sink has not loaded the start marker"
        } else {
            "the CDC stage has not started streaming"
        }
    }

    fn catching_up(&self) -> Progress {
        let c = self.meters.counts(&self.table);
        Progress {
            phase: "catching up",
            slot_lag_bytes: c.slot_lag_bytes,
            kafka_lag: c.kafka_lag,
            ..Progress::default()
        }
    }

    /// Producing, at the requested rate until done or `stop`, sampling
    /// resident memory after the warm-up.
    async fn produce(
        &self,
        stop: watch::Receiver<bool>,
        started: Instant,
    ) -> Result<(producer::Summary, Memory), RunError> {
        let (c, m) = (self.cfg.producer.clone(), self.meters.producer.clone());
        let producing = producer::run_with_metrics(c, m, stop);
        tokio::pin!(producing);
        let mut memory = Memory {
            stage_base: self.meters.stage_buckets(),
            ..Memory::default()
        };
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                s = &mut producing => {
                    memory.finish();
                    return Ok((s?, memory));
                }
                _ = every.tick() => if started.elapsed() >= self.cfg.warmup {
                    memory.sample(started, &self.meters);
                },
            }
        }
    }

    /// Draining: everything written is loaded, and the observer has seen it
    /// (two more changelog reads: the next may have begun before; then its
    /// waiting changes visible). Returns the marker every change of the run
    /// commits before.
    async fn drain(&self, tracker: &Mutex<Tracker>, base: &Counts) -> Result<Lsn, RunError> {
        let end = mark(&self.pg).await?;
        let drained = async {
            stages::wait_through(&self.meters, &self.cfg.sink.kafka, &self.topic, end).await?;
            let reads = lock(tracker).changelog_reads();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let done = {
                    let t = lock(tracker);
                    t.changelog_reads() >= reads + 2 && t.waiting() == 0
                };
                if done {
                    break;
                }
                tokio::time::sleep(self.cfg.poll).await;
            }
            Ok::<_, RunError>(())
        };
        match tokio::time::timeout(self.cfg.drain_timeout, drained).await {
            Ok(r) => r.map(|()| end),
            Err(_) => Err(RunError::Drain {
                timeout: self.cfg.drain_timeout,
                missing: drain_status(&self.cfg.cdc.slot, self.meters.counts(&self.table).since(base)),
            }),
        }
    }

    /// Verifying: the source table against the current-state view, with
    /// the rules registered with the topic's value schema.
    async fn verify(&self) -> Result<verify::Verification, RunError> {
        let registry =
            registry_client::RegistryClient::with_security(&self.cfg.sink.registry_url, &self.cfg.sink.registry)?;
        let rules = verify::registered_rules(&registry, &format!("{}-value", self.topic)).await?;
        verify::verify(
            &self.pg,
            &self.sf,
            verify::Target {
                source: &self.source,
                view: &sink::tables::view_names(&self.qualifier, &self.topic).0,
                rules: rules.as_ref(),
            },
        )
        .await
    }
}

/// The observer, polling the warehouse for latency while the run produces
/// and drains.
struct Watching {
    tracker: Arc<Mutex<Tracker>>,
    started: Instant,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watching {
    /// Starts at the changelog's current end, before anything is produced;
    /// every change the run makes commits after `from`.
    async fn start(ctx: &Ctx, from: Lsn) -> Result<Watching, RunError> {
        let started = Instant::now();
        let since_us = unix_micros() + i64::try_from(ctx.cfg.warmup.as_micros()).unwrap_or(i64::MAX);
        let partitions: Vec<i32> = stages::high_watermarks(&ctx.cfg.sink.kafka, &ctx.topic)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let mut observer = observe::Observer::new(
            ctx.sf.clone(),
            &ctx.qualifier,
            &ctx.topic,
            &ctx.key_columns,
            (since_us, from.0),
            &partitions,
        );
        observer.start().await;
        let (stop, mut stopped) = watch::channel(false);
        let (t, poll) = (tracker.clone(), ctx.cfg.poll);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                if let Err(e) = observer.tick(&t).await {
                    tracing::warn!(error = %error_chain(&e), "observer query failed; retrying");
                }
            }
        });
        Ok(Watching {
            tracker,
            started,
            stop,
            task,
        })
    }

    fn progress(&self, ctx: &Ctx, base: &Counts, phase: &'static str) -> Progress {
        let c = ctx.meters.counts(&ctx.table).since(base);
        let t = lock(&self.tracker);
        Progress {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            phase,
            produced: c.produced,
            captured: c.captured,
            loaded: c.loaded,
            rejected: c.rejected,
            kafka_lag: c.kafka_lag,
            slot_lag_bytes: c.slot_lag_bytes,
            latency: t.percentiles(),
            waiting: t.waiting(),
            rss_mib: rss_mib(),
        }
    }

    /// Stops the observer after its current query.
    async fn stop(self) -> Result<Arc<Mutex<Tracker>>, RunError> {
        let _ = self.stop.send(true);
        self.task.await.map_err(|e| RunError::Task(e.to_string()))?;
        Ok(self.tracker)
    }
}

/// Resident memory once the pipeline runs at rate (after the warm-up:
/// start-up allocations are not growth), then every second, and when
/// producing ends; and the stage
/// histograms' reading at the end of the warm-up, as the latency counts
/// from there.
#[derive(Debug, Default)]
struct Memory {
    start: Option<f64>,
    max: Option<f64>,
    per_minute: Vec<f64>,
    end: Option<f64>,
    stage_base: StageBuckets,
    warmed: bool,
}

impl Memory {
    fn sample(&mut self, started: Instant, meters: &Meters) {
        let now = rss_mib();
        self.start = self.start.or(now);
        if !self.warmed {
            (self.stage_base, self.warmed) = (meters.stage_buckets(), true);
        }
        self.max = larger(self.max, now);
        if started.elapsed().as_secs() / 60 > self.per_minute.len() as u64 {
            self.per_minute.extend(now);
        }
    }

    /// The reading when producing ends, whether or not the warm-up passed.
    fn finish(&mut self) {
        self.end = rss_mib();
        self.max = larger(self.max, self.end);
    }
}

/// Everything the report is made of, once the run is over.
struct Finished<'a> {
    summary: producer::Summary,
    counts: Counts,
    tracker: &'a Tracker,
    stages: report::StageLatencies,
    memory: Memory,
    /// When producing started, when it ended, when the drain ended.
    timing: [Instant; 3],
    verification: verify::Verification,
    accounting: accounting::Accounting,
}

impl Finished<'_> {
    fn report(self, cfg: &RunConfig) -> Report {
        let [started, produced_at, drained_at] = self.timing;
        let (summary, counts, m) = (self.summary, self.counts, self.memory);
        let to_drained = drained_at.duration_since(started).as_secs_f64();
        Report {
            duration_s: summary.elapsed.as_secs_f64(),
            rate: cfg.producer.rate.unwrap_or(0),
            produced: summary.total(),
            produced_by_op: [
                ("inserts", summary.inserts),
                ("updates", summary.updates),
                ("deletes", summary.deletes),
            ]
            .into_iter()
            .collect(),
            injected_bad: summary
                .bad_by_kind
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
            captured: counts.captured,
            loaded: counts.loaded,
            rejected: counts.rejected,
            rejected_by_rule: counts.rejected_by_rule,
            sink_dead_lettered: counts.sink_dead_lettered,
            throughput_per_s: if to_drained > 0.0 {
                counts.loaded as f64 / to_drained
            } else {
                0.0
            },
            produced_per_s: summary.per_second(),
            latency_ms: self.tracker.percentiles(),
            latency_changes: self.tracker.measured(),
            latency_warmup_s: cfg.warmup.as_secs_f64(),
            latency_poll_ms: cfg.poll.as_millis() as u64,
            stages: self.stages,
            drain_s: drained_at.duration_since(produced_at).as_secs_f64(),
            rss_mib_start: m.start,
            rss_mib_end: m.end,
            rss_mib_max: m.max,
            rss_mib_per_minute: m.per_minute,
            verified: self.verification.verified && self.accounting.ok,
            verification: self.verification,
            accounting: self.accounting,
        }
    }
}

fn lock(tracker: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// The larger of two samples, either of which may be missing.
fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Resident memory of this process in MiB (Linux), for the report.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, RunError> {
    let connecting = |e: pg_tls::PgTlsError| RunError::Postgres(format!("connecting: {e}"));
    pg_tls::PgUrl::parse("DATABASE_URL", url)
        .map_err(connecting)?
        .connect()
        .await
        .map_err(connecting)
}

/// The primary key of `table`, as column names in table order.
async fn primary_key(pg: &tokio_postgres::Client, table: &str) -> Result<Vec<String>, RunError> {
    let rows = pg
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY a.attnum",
            &[&table],
        )
        .await
        .map_err(|e| RunError::Postgres(format!("reading the primary key of {table}: {e}")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Writes a marker through the slot (a transactional logical message) and
/// returns its position. Everything committed before it is behind it, and
/// the CDC stage confirms it as soon as it has read that far; the current
/// WAL position could lie past the last commit and be confirmed only at the
/// stage's next heartbeat.
async fn mark(pg: &tokio_postgres::Client) -> Result<Lsn, RunError> {
    let text: String = pg
        .query_one(
            "SELECT pg_logical_emit_message(true, 'contrail.run', 'mark')::text",
            &[],
        )
        .await
        .map_err(|e| RunError::Postgres(format!("marking the WAL: {e}")))?
        .get(0);
    Lsn::parse(&text).ok_or_else(|| RunError::Postgres(format!("the WAL marker's position {text:?} is not an LSN")))
}

/// What a drain that timed out was still waiting for.
fn drain_status(slot: &str, c: Counts) -> String {
    format!(
        "slot {slot} {} bytes behind the WAL (at the last check); {} produced, {} captured, {} loaded; the sink's Kafka lag is {}",
        c.slot_lag_bytes,
        c.produced,
        c.captured,
        c.loaded,
        c.kafka_lag.map_or("unknown".to_string(), |l| l.to_string())
    )
}
