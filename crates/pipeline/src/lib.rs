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
//! [`supervise`]), and counts into its own metrics, which the run reads
//! in the Prometheus text form each stage serves.
//!
//! A run has three phases. **Producing**: the producer writes at the
//! requested rate for the requested time (or until interrupted) while the
//! observer polls the warehouse for latency (see `observe`). **Draining**:
//! once the producer stops, the run writes a marker through the slot and
//! waits until the slot has confirmed it and the sink's positions in the
//! warehouse have reached every partition's end, so everything produced is
//! loaded (the same wait, before producing, gets through any backlog).
//! **Verifying**: the source table and the current-state view are compared
//! row by row (see `verify`). The stages are then stopped and the
//! [`Report`] returned.
//!
//! Failures: a stage's fatal error ends the run with that error; a drain
//! that does not finish in `drain_timeout` ends the run with
//! [`RunError::Drain`], naming what was still missing.

pub mod accounting;
pub mod latency;
mod observe;
pub mod prom;
pub mod report;
pub mod verify;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use latency::Tracker;
pub use report::{Progress, Report};

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
        Ok(())
    }

    /// The CDC topic of the source table.
    pub fn topic(&self) -> String {
        format!("{}.{}", self.cdc.topic_prefix, source_table())
    }
}

/// Runs `run` again after each error `transient` accepts, with backoff
/// (1 s doubling to 30 s), until it succeeds, fails otherwise, or `stop`
/// turns true (then the last error is returned).
pub async fn supervise<T, E, Fut>(
    stage: &str,
    run: impl Fn(watch::Receiver<bool>) -> Fut,
    transient: impl Fn(&E) -> bool,
    stop: watch::Receiver<bool>,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error,
{
    let mut backoff = Duration::from_secs(1);
    loop {
        match run(stop.clone()).await {
            Err(e) if transient(&e) && !*stop.borrow() => {
                tracing::warn!(stage, error = %error_chain(&e), retry_in = ?backoff, "stopped on a transient error; restarting");
                let mut s = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = s.changed() => {}
                }
                if *stop.borrow() {
                    return Err(e);
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
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

/// The stages' metrics, read in process.
#[derive(Debug, Clone)]
struct Meters {
    producer: Arc<producer::metrics::Metrics>,
    cdc: Arc<cdc::metrics::Metrics>,
    sink: Arc<sink::metrics::Metrics>,
}

/// Counts read from the stages' metrics.
#[derive(Debug, Default)]
struct Counts {
    produced: u64,
    captured: u64,
    loaded: u64,
    rejected: u64,
    rejected_by_rule: std::collections::BTreeMap<String, u64>,
    sink_dead_lettered: u64,
    kafka_lag: Option<u64>,
    slot_lag_bytes: u64,
}

impl Counts {
    /// The counts since `base` was read (the stages count from their
    /// start, which includes any backlog the run caught up on); the lags
    /// are as they are now.
    fn since(self, base: &Counts) -> Counts {
        let rejected_by_rule = self
            .rejected_by_rule
            .into_iter()
            .map(|(rule, n)| {
                let before = base.rejected_by_rule.get(&rule).copied().unwrap_or(0);
                (rule, n.saturating_sub(before))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Counts {
            produced: self.produced.saturating_sub(base.produced),
            captured: self.captured.saturating_sub(base.captured),
            loaded: self.loaded.saturating_sub(base.loaded),
            rejected: self.rejected.saturating_sub(base.rejected),
            rejected_by_rule,
            sink_dead_lettered: self.sink_dead_lettered.saturating_sub(base.sink_dead_lettered),
            ..self
        }
    }
}

/// The CDC stage's and the sink's metrics at one moment, for
/// [`Meters::stage_latencies`] since then.
#[derive(Debug, Default)]
struct StageScrape {
    cdc: Vec<prom::Sample>,
    sink: Vec<prom::Sample>,
}

impl Meters {
    fn stage_scrape(&self) -> StageScrape {
        StageScrape {
            cdc: prom::parse(&self.cdc.render()),
            sink: prom::parse(&self.sink.render()),
        }
    }

    /// The stages' latencies from their own histograms, counting only what
    /// they observed after `base` (a catch-up's backlog and the warm-up
    /// would otherwise weigh in).
    fn stage_latencies(&self, base: &StageScrape) -> report::StageLatencies {
        let now = self.stage_scrape();
        let pair = |now: &[prom::Sample], before: &[prom::Sample], name: &str| {
            Some([
                prom::histogram_quantile_since(now, before, name, 0.5)? * 1000.0,
                prom::histogram_quantile_since(now, before, name, 0.99)? * 1000.0,
            ])
        };
        report::StageLatencies {
            cdc_commit_to_kafka_ack_ms: pair(&now.cdc, &base.cdc, cdc::metrics::COMMIT_TO_ACK),
            sink_commit_to_loaded_ms: pair(&now.sink, &base.sink, sink::metrics::COMMIT_TO_VISIBLE),
        }
    }

    fn counts(&self, table: &str) -> Counts {
        let p = prom::parse(&self.producer.render());
        let c = prom::parse(&self.cdc.render());
        let s = prom::parse(&self.sink.render());
        let total = |samples: &[prom::Sample], name: &str, filter: &[(&str, &str)]| {
            prom::sum(samples, &format!("{name}_total"), filter) as u64
        };
        let rejected = total(&c, cdc::metrics::DEAD_LETTERED_ROWS, &[]);
        let captured = ["c", "u", "d"]
            .iter()
            .map(|op| total(&c, cdc::metrics::EVENTS, &[("table", table), ("op", op)]))
            .sum::<u64>()
            + rejected;
        let rejected_by_rule = c
            .iter()
            .filter(|x| x.name == format!("{}_total", cdc::metrics::DEAD_LETTERED))
            .filter_map(|x| Some((x.label("rule")?.to_string(), x.value as u64)))
            .collect();
        let lag = prom::sum(&s, sink::metrics::KAFKA_LAG, &[]);
        Counts {
            produced: total(&p, producer::metrics::CHANGES, &[]),
            captured,
            loaded: total(&s, sink::metrics::CHANGES, &[]),
            rejected,
            rejected_by_rule,
            sink_dead_lettered: total(&s, sink::metrics::DEAD_LETTERED, &[]),
            // The gauge is 0 before the sink's first statistics.
            kafka_lag: (s.iter().any(|x| x.name == sink::metrics::KAFKA_LAG)).then_some(lag.max(0.0) as u64),
            slot_lag_bytes: prom::sum(&c, cdc::metrics::SLOT_LAG_BYTES, &[]) as u64,
        }
    }
}

type StageTask<T> = tokio::task::JoinHandle<Result<T, RunError>>;

/// Runs the pipeline; see the crate docs. `stop` ends the producing phase
/// early (the run still drains and verifies); `progress` is called every
/// `progress_every`.
pub async fn run(
    cfg: RunConfig,
    stop: watch::Receiver<bool>,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, RunError> {
    cfg.validate()?;
    let source = source_table();
    let table = source.to_string();
    let topic = cfg.topic();
    let meters = Meters {
        producer: Arc::new(producer::metrics::Metrics::new()),
        cdc: Arc::new(cdc::metrics::Metrics::new()),
        sink: Arc::new(sink::metrics::Metrics::new()),
    };

    // The source table must exist before the CDC stage inspects it.
    let pg = connect(&cfg.cdc.database_url.0).await?;
    {
        let mut migrating = connect(&cfg.cdc.database_url.0).await?;
        flight_db::migrate(&mut migrating)
            .await
            .map_err(|e| RunError::Postgres(format!("creating {table}: {e}")))?;
    }
    let key_columns: Vec<String> = pg
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY a.attnum",
            &[&table],
        )
        .await
        .map_err(|e| RunError::Postgres(format!("reading the primary key of {table}: {e}")))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sf = Arc::new(snowflake::Client::connect(cfg.sink.snowflake.clone()).await?);
    let qualifier = cfg.sink.qualifier();

    // The CDC stage and the sink run until the end of the run.
    let (stages_tx, stages_rx) = watch::channel(false);
    let mut cdc_task: StageTask<cdc::Summary> = {
        let (c, m, rx) = (cfg.cdc.clone(), meters.cdc.clone(), stages_rx.clone());
        tokio::spawn(async move {
            supervise(
                "cdc",
                |s| cdc::run_with_metrics(c.clone(), m.clone(), s),
                cdc::CdcError::is_transient,
                rx,
            )
            .await
            .map_err(RunError::from)
        })
    };
    let mut sink_task: StageTask<sink::Summary> = {
        let (c, m, rx) = (cfg.sink.clone(), meters.sink.clone(), stages_rx.clone());
        tokio::spawn(async move {
            supervise(
                "sink",
                |s| sink::run_with_metrics(c.clone(), m.clone(), s),
                sink::SinkError::is_transient,
                rx,
            )
            .await
            .map_err(RunError::from)
        })
    };

    // Changes made before the CDC stage streams would reach it as snapshot
    // rows, not as changes: produce once its snapshot is done.
    let ready = wait_streaming(&pg, &cfg.cdc, &table);
    tokio::pin!(ready);
    tokio::select! {
        r = &mut ready => r?,
        e = stage_failure(&mut cdc_task, &mut sink_task) => return Err(e),
    }
    // A slot left idle holds the WAL written since (by every database of
    // the cluster), and an interrupted run may leave records unloaded: get
    // through both first, so the latency measured is the pipeline's, not a
    // backlog's.
    let now = mark(&pg).await?;
    // Boxed, like the drain's: the waits would otherwise make the run's
    // own future large.
    let mut caught_up = Box::pin(wait_through(&pg, &sf, &cfg, &qualifier, now));
    let mut every = tokio::time::interval(cfg.progress_every);
    every.tick().await;
    loop {
        tokio::select! {
            r = &mut caught_up => break r?,
            _ = every.tick() => {
                let c = meters.counts(&table);
                progress(&Progress {
                    phase: "catching up",
                    slot_lag_bytes: c.slot_lag_bytes,
                    kafka_lag: c.kafka_lag,
                    ..Progress::default()
                })
            }
            e = stage_failure(&mut cdc_task, &mut sink_task) => return Err(e),
        }
    }

    // What the stages counted so far is the backlog's, not this run's.
    let base = meters.counts(&table);
    let stage_base = meters.stage_scrape();

    // The observer starts at the changelog's current end, before anything is produced.
    let started = Instant::now();
    let since_us = unix_micros() + i64::try_from(cfg.warmup.as_micros()).unwrap_or(i64::MAX);
    let partitions: Vec<i32> = high_watermarks(&cfg.sink.kafka, &topic)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let mut observer = observe::Observer::new(
        sf.clone(),
        &qualifier,
        &topic,
        &key_columns,
        // Every change the run makes commits after the catch-up's mark.
        (since_us, now.0),
        &partitions,
    );
    observer.start().await;
    let (observer_tx, mut observer_rx) = watch::channel(false);
    let observer_task = {
        let (tracker, poll) = (tracker.clone(), cfg.poll);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = observer_rx.changed() => break,
                }
                if let Err(e) = observer.tick(&tracker).await {
                    tracing::warn!(error = %error_chain(&e), "observer query failed; retrying");
                }
            }
            observer
        })
    };

    let live = |phase: &'static str| {
        let c = meters.counts(&table).since(&base);
        let t = tracker.lock().unwrap_or_else(|p| p.into_inner());
        Progress {
            elapsed_s: started.elapsed().as_secs_f64(),
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
    };

    // Producing.
    let producing = {
        let (c, m) = (cfg.producer.clone(), meters.producer.clone());
        producer::run_with_metrics(c, m, stop.clone())
    };
    tokio::pin!(producing);
    let mut every = tokio::time::interval(cfg.progress_every);
    every.tick().await;
    // Resident memory once the pipeline runs at rate (after the warm-up:
    // start-up allocations are not growth), then every second.
    let mut memory = tokio::time::interval(Duration::from_secs(1));
    let (mut rss_start, mut rss_max) = (None, None::<f64>);
    // The stages' histograms count from the end of the catch-up, then
    // from the end of the warm-up, as the latency does.
    let (mut stage_base, mut warmed) = (stage_base, false);
    let mut rss_per_minute = Vec::new();
    let summary = loop {
        tokio::select! {
            s = &mut producing => break s?,
            _ = every.tick() => progress(&live("producing")),
            _ = memory.tick() => if started.elapsed() >= cfg.warmup {
                let now = rss_mib();
                rss_start = rss_start.or(now);
                if !warmed {
                    (stage_base, warmed) = (meters.stage_scrape(), true);
                }
                rss_max = larger(rss_max, now);
                if started.elapsed().as_secs() / 60 > rss_per_minute.len() as u64 {
                    rss_per_minute.extend(now);
                }
            },
            e = stage_failure(&mut cdc_task, &mut sink_task) => return Err(e),
        }
    };
    let rss_end = rss_mib();
    let produced_at = Instant::now();

    // Draining: everything written is loaded.
    let end = mark(&pg).await?;
    let drain = async {
        Box::pin(wait_through(&pg, &sf, &cfg, &qualifier, end)).await?;
        // The observer reads the changelog past everything loaded (two more
        // reads: the next may have begun before), then sees its waiting
        // changes visible.
        let reads = tracker.lock().unwrap_or_else(|p| p.into_inner()).changelog_reads();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let done = {
                let t = tracker.lock().unwrap_or_else(|p| p.into_inner());
                t.changelog_reads() >= reads + 2 && t.waiting() == 0
            };
            if done {
                break;
            }
            tokio::time::sleep(cfg.poll).await;
        }
        Ok::<_, RunError>(())
    };
    let drain = tokio::time::timeout(cfg.drain_timeout, drain);
    tokio::pin!(drain);
    loop {
        tokio::select! {
            d = &mut drain => match d {
                Ok(r) => { r?; break }
                Err(_) => return Err(RunError::Drain {
                    timeout: cfg.drain_timeout,
                    missing: drain_status(&pg, &cfg.cdc.slot, meters.counts(&table).since(&base)).await,
                }),
            },
            _ = every.tick() => progress(&live("draining")),
            e = stage_failure(&mut cdc_task, &mut sink_task) => return Err(e),
        }
    }
    let drained_at = Instant::now();
    progress(&live("verifying"));
    let _ = observer_tx.send(true);
    let _observer = observer_task.await.map_err(|e| RunError::Task(e.to_string()))?;

    // Verifying, against the rules registered with the topic's value schema.
    let registry = registry_client::RegistryClient::new(
        &cfg.sink.registry_url,
        cfg.sink.registry_auth.as_ref().map(changes::Secret::expose),
    )?;
    let rules = verify::registered_rules(&registry, &format!("{topic}-value")).await?;
    let verification = verify::verify(
        &pg,
        &sf,
        verify::Target {
            source: &source,
            view: &sink::tables::view_names(&qualifier, &topic).0,
            rules: rules.as_ref(),
        },
    )
    .await?;

    // A graceful stop: the CDC stage confirms its last position, the sink
    // finishes its batch.
    let _ = stages_tx.send(true);
    for (name, ended) in [
        (
            "CDC stage",
            tokio::time::timeout(Duration::from_secs(30), &mut cdc_task)
                .await
                .map(|r| r.map(|r| r.map(drop))),
        ),
        (
            "sink",
            tokio::time::timeout(Duration::from_secs(30), &mut sink_task)
                .await
                .map(|r| r.map(|r| r.map(drop))),
        ),
    ] {
        match ended {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(stage = name, error = %error_chain(&e), "stopped with an error after the run")
            }
            Ok(Err(e)) => tracing::warn!(stage = name, error = %e, "task failed after the run"),
            Err(_) => tracing::warn!(stage = name, "did not stop within 30 s"),
        }
    }
    let counts = meters.counts(&table).since(&base);
    let changelog_view = sink::tables::view_names(&qualifier, &topic).1;
    let (changelog_rows, changelog_distinct) = accounting::changelog_between(&sf, &changelog_view, now, end).await?;
    let accounting = accounting::account(accounting::Counted {
        produced: summary.total(),
        captured: counts.captured,
        rejected: counts.rejected,
        sink_dead_lettered: counts.sink_dead_lettered,
        changelog_rows,
        changelog_distinct,
    });
    let t = tracker.lock().unwrap_or_else(|p| p.into_inner());
    let producing_s = summary.elapsed.as_secs_f64();
    let to_drained = drained_at.duration_since(started).as_secs_f64();
    Ok(Report {
        duration_s: producing_s,
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
        latency_ms: t.percentiles(),
        latency_changes: t.measured(),
        latency_warmup_s: cfg.warmup.as_secs_f64(),
        latency_poll_ms: cfg.poll.as_millis() as u64,
        stages: meters.stage_latencies(&stage_base),
        drain_s: drained_at.duration_since(produced_at).as_secs_f64(),
        rss_mib_start: rss_start,
        rss_mib_end: rss_end,
        rss_mib_max: larger(rss_max, rss_end),
        rss_mib_per_minute: rss_per_minute,
        verified: verification.verified && accounting.ok,
        verification,
        accounting,
    })
}

/// Resolves with the error of whichever stage ends first; a stage never
/// ends on its own while the run needs it.
async fn stage_failure(cdc: &mut StageTask<cdc::Summary>, sink: &mut StageTask<sink::Summary>) -> RunError {
    let ended = |name: &str, r: Result<Result<(), RunError>, tokio::task::JoinError>| match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => RunError::Task(format!("the {name} stopped")),
        Err(e) => RunError::Task(format!("the {name}: {e}")),
    };
    tokio::select! {
        r = cdc => ended("CDC stage", r.map(|r| r.map(drop))),
        r = sink => ended("sink", r.map(|r| r.map(drop))),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, RunError> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| RunError::Postgres(format!("connecting: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Waits until the CDC stage has snapshotted `table` for its slot (at
/// once when an earlier run did): from then on, changes stream.
async fn wait_streaming(pg: &tokio_postgres::Client, cdc: &cdc::CdcConfig, table: &str) -> Result<(), RunError> {
    let sql = format!(
        "SELECT 1 FROM {} WHERE slot_name = $1 AND table_name = $2",
        cdc.state_table.quoted()
    );
    loop {
        // Until the stage creates the state table, the query fails: not ready.
        if pg
            .query_opt(&sql, &[&cdc.slot, &table])
            .await
            .is_ok_and(|r| r.is_some())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes a marker through the slot (a transactional logical message) and
/// returns its position. Everything committed before it is behind it, and
/// the CDC stage confirms it as soon as it has read that far; the current
/// WAL position could lie past the last commit and be confirmed only at the
/// stage's next heartbeat.
async fn mark(pg: &tokio_postgres::Client) -> Result<pgoutput::Lsn, RunError> {
    let text: String = pg
        .query_one(
            "SELECT pg_logical_emit_message(true, 'contrail.run', 'mark')::text",
            &[],
        )
        .await
        .map_err(|e| RunError::Postgres(format!("marking the WAL: {e}")))?
        .get(0);
    pgoutput::Lsn::parse(&text)
        .ok_or_else(|| RunError::Postgres(format!("the WAL marker's position {text:?} is not an LSN")))
}

/// Waits until everything committed before `lsn` is loaded: the slot has
/// confirmed it (so Kafka has it), then the sink's positions in the
/// warehouse reach every partition's end.
async fn wait_through(
    pg: &tokio_postgres::Client,
    sf: &snowflake::Client,
    cfg: &RunConfig,
    qualifier: &str,
    lsn: pgoutput::Lsn,
) -> Result<(), RunError> {
    let topic = cfg.topic();
    wait_slot(pg, &cfg.cdc.slot, lsn).await?;
    let ends = high_watermarks(&cfg.sink.kafka, &topic).await?;
    wait_loaded(sf, qualifier, &topic, &ends).await
}

/// Waits until `slot` has confirmed `lsn`: everything written is in Kafka.
async fn wait_slot(pg: &tokio_postgres::Client, slot: &str, lsn: pgoutput::Lsn) -> Result<(), RunError> {
    let lsn = lsn.to_string();
    loop {
        let done: Option<bool> = pg
            .query_opt(
                "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
                &[&lsn, &slot],
            )
            .await
            .map_err(|e| RunError::Postgres(e.to_string()))?
            .and_then(|r| r.get(0));
        if done == Some(true) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each partition's end offset.
async fn high_watermarks(kafka: &kafka::KafkaConfig, topic: &str) -> Result<Vec<(i32, i64)>, RunError> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || kafka::high_watermarks(&kafka, &topic))
        .await
        .map_err(|e| RunError::Task(e.to_string()))?
        .map_err(RunError::from)
}

/// Waits until the sink's positions in the warehouse reach `ends`.
async fn wait_loaded(
    sf: &snowflake::Client,
    qualifier: &str,
    topic: &str,
    ends: &[(i32, i64)],
) -> Result<(), RunError> {
    loop {
        let at = match sink::stored_positions(sf, qualifier, topic).await {
            Ok(at) => at,
            Err(e) if e.is_transient() => return Err(e.into()),
            // Not created yet.
            Err(_) => Default::default(),
        };
        if ends
            .iter()
            .all(|(p, end)| *end == 0 || at.get(p).is_some_and(|o| o >= end))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a drain that timed out was still waiting for.
async fn drain_status(pg: &tokio_postgres::Client, slot: &str, c: Counts) -> String {
    let lag = pg
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .ok()
        .flatten()
        .and_then(|r| r.get::<_, Option<i64>>(0));
    format!(
        "slot {slot} {} behind the WAL; {} produced, {} captured, {} loaded; the sink's Kafka lag is {}",
        lag.map_or("(missing)".to_string(), |b| format!("{b} bytes")),
        c.produced,
        c.captured,
        c.loaded,
        c.kafka_lag.map_or("unknown".to_string(), |l| l.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_since_a_base_leave_out_the_backlog_and_keep_the_lags() {
        let base = Counts {
            produced: 0,
            captured: 900,
            loaded: 880,
            rejected: 20,
            rejected_by_rule: [("a".to_string(), 15), ("b".to_string(), 5)].into(),
            sink_dead_lettered: 1,
            kafka_lag: Some(7),
            slot_lag_bytes: 100,
        };
        let now = Counts {
            produced: 50,
            captured: 950,
            loaded: 925,
            rejected: 25,
            rejected_by_rule: [("a".to_string(), 15), ("b".to_string(), 8), ("c".to_string(), 2)].into(),
            sink_dead_lettered: 1,
            kafka_lag: Some(3),
            slot_lag_bytes: 40,
        };
        let c = now.since(&base);
        assert_eq!(
            (c.produced, c.captured, c.loaded, c.rejected, c.sink_dead_lettered),
            (50, 50, 45, 5, 0)
        );
        assert_eq!(c.rejected_by_rule, [("b".to_string(), 3), ("c".to_string(), 2)].into());
        assert_eq!((c.kafka_lag, c.slot_lag_bytes), (Some(3), 40));
    }
}
