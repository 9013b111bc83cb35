//! Contrail's CDC stage and Debezium (Kafka Connect standalone, see
//! `stack::debezium`) side by side: the same PostgreSQL, the same
//! `flight_state` table, the same Apache Kafka broker (a scratch one,
//! started here), the same backlog, one after the other.
//!
//! 1. Setup: a fresh database; Contrail's slot (its first start, an empty
//!    snapshot) and Debezium's slot (`snapshot.mode=no_data`) both exist
//!    before anything is written, so both see the whole backlog.
//! 2. Backlog: the producer writes simulated changes (inserts, updates,
//!    deletes) unthrottled until at least `BACKLOG` are committed.
//! 3. Drain, each system in turn as its own process (this binary in
//!    `--contrail-cdc` mode, or the Connect JVM), from its start: the drain
//!    ends at the broker's `LogAppendTime` of the last record. CPU seconds
//!    and peak memory come from `/proc` for that process, and separately
//!    for the walsender that serves its slot.
//! 4. Latency, each system in turn: 5 s of warm-up then 60 s at 1,000 and
//!    at 10,000 changes/s; every change event's commit time (in the
//!    event) against its `LogAppendTime`, read by one consumer for both.
//!
//! Run: `cargo bench -p cdc --bench vs_debezium` (after `contrail stack
//! up`; the jars come from Maven Central once). Figures go to
//! docs/BENCHMARKS.md. For profiling one side: `-- --only contrail` (or
//! `debezium`) runs one system, `--drain-only` skips the latencies; the
//! process's memory at the drain's end is printed by kind (`smaps_rollup`).
//! Contrail's side takes `VS_LINGER_MS` (default 5, as shipped),
//! `VS_EXTRA=name=value,…` (librdkafka properties) and `VS_WRAP` (a
//! profiler's command line, e.g. `heaptrack -o FILE`).

mod common;

use common::connect;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cdc::config::{DatabaseUrl, TableName};
use cdc::CdcConfig;
use tokio_postgres::Client;

const DB: &str = "vs_debezium";
const BACKLOG: u64 = 500_000;
const WARMUP: Duration = Duration::from_secs(5);
const MEASURE: Duration = Duration::from_secs(60);
const CONTRAIL_PREFIX: &str = "vsc";
const DEBEZIUM_PREFIX: &str = "vsd";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--contrail-cdc") {
        return contrail_child(&args[i + 1..]);
    }
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stack = stack::StackConfig::for_project(&project).unwrap();
    let env: BTreeMap<&str, String> = stack.env().into_iter().collect();
    let broker = stack::ScratchKafka::start().expect("a scratch Apache Kafka broker (Java 17 and Maven)");
    let admin_url = env["DATABASE_URL"].clone();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).cloned().expect("--only NAME: contrail or debezium"));
    let bench = Bench {
        only,
        drain_only: args.iter().any(|a| a == "--drain-only"),
        url: admin_url.rsplit_once('/').map(|(b, _)| format!("{b}/{DB}")).unwrap(),
        admin_url,
        bootstrap: broker.bootstrap.clone(),
        registry: env["SCHEMA_REGISTRY_URL"].clone(),
        project,
        dir: tempdir(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench.run());
    drop(broker);
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("contrail-vs-debezium-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Bench {
    /// `--only NAME`: run just that system (case-insensitive).
    only: Option<String>,
    drain_only: bool,
    admin_url: String,
    url: String,
    bootstrap: String,
    registry: String,
    project: PathBuf,
    dir: PathBuf,
}

/// One system's figures.
#[derive(Debug, Default)]
struct Figures {
    events: u64,
    drain_s: f64,
    cpu_s: f64,
    walsender_cpu_s: f64,
    peak_rss_mib: f64,
    bytes_per_event: f64,
    /// Per rate: p50, p99, max in ms, and how many events were measured.
    latency: Vec<(u64, [f64; 3], usize)>,
}

impl Bench {
    async fn run(&self) {
        let client = self.fresh_database().await;
        let topics = [
            format!("{CONTRAIL_PREFIX}.public.flight_state"),
            format!("{DEBEZIUM_PREFIX}.public.flight_state"),
        ];
        self.create_contrail_topic(&topics[0]).await;
        // Both slots, before the backlog.
        let mut contrail = self.start_contrail();
        wait_slot_active(&client, "contrail_vs").await;
        stop_child(&mut contrail);
        let debezium = self.start_debezium();
        wait_slot_active(&client, "debezium_vs").await;
        debezium.stop();
        let written = backlog(&self.url).await;
        println!("backlog: {written} changes committed");

        // The drains: the same backlog for each, the other one stopped.
        let systems: Vec<_> = [
            ("Contrail", "contrail_vs", &topics[0]),
            ("Debezium", "debezium_vs", &topics[1]),
        ]
        .into_iter()
        .filter(|(name, ..)| self.only.as_ref().is_none_or(|o| o.eq_ignore_ascii_case(name)))
        .collect();
        assert!(
            !systems.is_empty(),
            "--only {:?}: expected contrail or debezium",
            self.only
        );
        let mut rows = Vec::new();
        for &(name, slot, topic) in &systems {
            let mut f = Figures::default();
            let process = self.start(name);
            self.drain(&client, &process, slot, topic, &mut f).await;
            drop(process);
            rows.push((name, f));
        }
        // The latencies, each system caught up first (its slot holds the
        // other's latency runs).
        for ((name, _, topic), (_, f)) in systems.iter().zip(rows.iter_mut()) {
            if self.drain_only {
                break;
            }
            let process = self.start(name);
            wait_stable(&self.bootstrap, topic).await;
            for rate in [1_000, 10_000] {
                let measured = self.latency(topic, rate).await;
                f.latency.push((rate, percentiles(measured.clone()), measured.len()));
            }
            drop(process);
            println!("{name}: {f:?}");
        }
        print_table(&rows);
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn start(&self, name: &str) -> Running {
        match name {
            "Contrail" => Running::Contrail(self.start_contrail()),
            _ => Running::Debezium(self.start_debezium()),
        }
    }

    async fn fresh_database(&self) -> Client {
        let admin = connect(&self.admin_url).await;
        for slot in ["contrail_vs", "debezium_vs"] {
            admin
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await
                .unwrap();
        }
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
            .await
            .unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {DB}")).await.unwrap();
        let mut client = connect(&self.url).await;
        flight_db::migrate(&mut client).await.unwrap();
        client
    }

    /// Contrail's topic as Debezium's gets it from Connect: same partitions,
    /// `LogAppendTime`.
    async fn create_contrail_topic(&self, topic: &str) {
        kafka::ensure_topics(
            &kafka_config(&self.bootstrap),
            &[kafka::TopicSpec {
                name: topic.to_string(),
                partitions: 3,
                replication: 1,
                config: vec![("message.timestamp.type".into(), "LogAppendTime".into())],
            }],
        )
        .await
        .unwrap();
    }

    fn start_contrail(&self) -> Child {
        // `VS_WRAP="heaptrack -o FILE"` runs the stage under a profiler.
        let wrap = std::env::var("VS_WRAP").unwrap_or_default();
        let mut argv: Vec<String> = wrap.split_whitespace().map(String::from).collect();
        argv.push(std::env::current_exe().unwrap().display().to_string());
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(["--contrail-cdc", &self.url, &self.bootstrap, &self.registry])
            .arg(&self.project)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    fn start_debezium(&self) -> stack::debezium::DebeziumWorker {
        let cfg = stack::debezium::DebeziumConfig {
            bootstrap_servers: self.bootstrap.clone(),
            database_url: self.url.clone(),
            table: "public.flight_state".into(),
            slot: "debezium_vs".into(),
            publication: "debezium_vs".into(),
            topic_prefix: DEBEZIUM_PREFIX.into(),
            partitions: 3,
        };
        // One directory for every start: the offsets file is the worker's
        // position, as in production.
        let dir = self.dir.join("debezium");
        stack::debezium::DebeziumWorker::start(&cfg, &dir).expect("Kafka Connect with Debezium")
    }
}

/// A system running as its own process.
enum Running {
    Contrail(Child),
    Debezium(stack::debezium::DebeziumWorker),
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Contrail(c) => c.id(),
            Running::Debezium(d) => d.pid(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Contrail(c) = self {
            stop_child(c);
        }
    }
}

fn stop_child(c: &mut Child) {
    // The whole group: a profiler's wrapper (`VS_WRAP`) and the stage.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", c.id())])
        .status();
    let _ = c.wait();
}

fn kafka_config(bootstrap: &str) -> kafka::KafkaConfig {
    kafka::KafkaConfig {
        bootstrap_servers: bootstrap.to_string(),
        client_id: "vs-debezium".into(),
        ..kafka::KafkaConfig::default()
    }
}

async fn wait_slot_active(client: &Client, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let active: Option<bool> = client
            .query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
            .await
            .unwrap()
            .map(|r| r.get(0));
        if active == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "slot {slot} never became active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--contrail-cdc URL BOOTSTRAP REGISTRY PROJECT`: the CDC stage as it
/// ships (binary values, the contract's rules, Avro through the registry,
/// the idempotent producer), until SIGTERM.
fn contrail_child(args: &[String]) {
    let [url, bootstrap, registry, project] = args else {
        panic!("--contrail-cdc URL BOOTSTRAP REGISTRY PROJECT");
    };
    let table = |schema: &str, name: &str| TableName {
        schema: schema.into(),
        name: name.into(),
    };
    let cfg = CdcConfig {
        database_url: DatabaseUrl::new(url.clone()),
        tables: vec![table("public", "flight_state")],
        slot: "contrail_vs".into(),
        publication: "contrail_vs".into(),
        state_table: table("public", "contrail_cdc_state"),
        heartbeat: Some(Duration::from_secs(10)),
        lag_warn_bytes: u64::MAX,
        binary_values: true,
        kafka: kafka::KafkaConfig {
            properties: std::env::var("VS_EXTRA")
                .unwrap_or_default()
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| kv.split_once('=').expect("VS_EXTRA: name=value,…"))
                .fold(kafka::Properties::default(), |p, (k, v)| p.with(k, v)),
            ..kafka_config(bootstrap)
        },
        registry_url: registry.clone(),
        registry: Default::default(),
        topic_prefix: CONTRAIL_PREFIX.into(),
        partitions: 3,
        replication: 1,
        min_insync_replicas: 1,
        dead_letter_topic: format!("{CONTRAIL_PREFIX}.dlq"),
        tombstones: true,
        transaction_topic: None,
        linger: Duration::from_millis(
            std::env::var("VS_LINGER_MS")
                .map_or(5, |v| v.parse().expect("VS_LINGER_MS: a whole number of milliseconds")),
        ),
        contracts: [(
            table("public", "flight_state"),
            "io.contrail.flight.FlightState".to_string(),
        )]
        .into(),
        schemas_dir: Path::new(project).join("schemas"),
        metrics_listen: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (stop, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            term.recv().await;
            let _ = stop.send(true);
        });
        cdc::run(cfg, rx).await.expect("the CDC stage");
    });
}

/// Writes simulated changes as fast as PostgreSQL takes them until at
/// least `BACKLOG` are committed; returns how many.
async fn backlog(url: &str) -> u64 {
    let mut sim = simulator::Simulator::new(simulator::SimConfig {
        fleet: 5_000,
        ..simulator::SimConfig::default()
    })
    .unwrap();
    let mut writer = flight_db::FlightWriter::new(connect(url).await);
    let mut written = 0;
    let now = unix_ms();
    while written < BACKLOG {
        let batch: Vec<_> = (0..1_000).map(|_| sim.next_change(now)).collect();
        writer.write(&batch).await.unwrap();
        written += batch.len() as u64;
    }
    written
}

/// Writes at `rate` changes/s for `WARMUP` + `MEASURE`, in transactions
/// of a twentieth of a second's changes.
async fn produce_at(url: &str, rate: u64, seed: u64) {
    let mut sim = simulator::Simulator::new(simulator::SimConfig {
        seed,
        fleet: 5_000,
        ..simulator::SimConfig::default()
    })
    .unwrap();
    let mut writer = flight_db::FlightWriter::new(connect(url).await);
    let start = Instant::now();
    let per_batch = (rate / 20).max(1);
    let mut sent = 0u64;
    while start.elapsed() < WARMUP + MEASURE {
        let batch: Vec<_> = (0..per_batch).map(|_| sim.next_change(unix_ms())).collect();
        writer.write(&batch).await.unwrap();
        sent += per_batch;
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Bench {
    /// The drain of the backlog by the system just started as `process`:
    /// until its topic has not grown for 5 s. The drain ends at the last
    /// record's `LogAppendTime`; CPU is read at that moment (sampled every
    /// 200 ms), for the process and for the walsender of `slot`.
    async fn drain(&self, client: &Client, process: &Running, slot: &str, topic: &str, f: &mut Figures) {
        let started_ms = unix_ms();
        let pid = process.pid();
        let mut samples: Vec<(i64, f64, f64)> = Vec::new();
        let sample = async {
            loop {
                let walsender: Option<i32> = client
                    .query_opt(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .unwrap()
                    .and_then(|r| r.get(0));
                let ws_cpu = walsender.map_or(0.0, |p| stack::cpu_seconds(p as u32));
                samples.push((unix_ms(), stack::cpu_seconds(pid), ws_cpu));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = wait_stable(&self.bootstrap, topic) => {}
            _ = sample => {}
        }
        f.peak_rss_mib = stack::peak_rss_mib(pid);
        print_memory(pid);
        let read = read_range(&self.bootstrap, topic, None).await;
        let last_append = read.iter().filter_map(|r| r.timestamp_ms).max().unwrap_or(started_ms);
        let events: Vec<_> = read.iter().filter(|r| r.value.is_some()).collect();
        f.events = events.len() as u64;
        let bytes: usize = events
            .iter()
            .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
            .sum();
        f.bytes_per_event = bytes as f64 / f.events.max(1) as f64;
        f.drain_s = (last_append - started_ms) as f64 / 1000.0;
        let at = samples.iter().find(|s| s.0 >= last_append).or(samples.last()).copied();
        let (cpu, ws) = at.map_or((0.0, 0.0), |s| (s.1, s.2));
        (f.cpu_s, f.walsender_cpu_s) = (cpu, ws);
    }

    /// Commit-to-append latencies (ms) of the events committed while the
    /// producer writes at `rate`, after the warm-up.
    async fn latency(&self, topic: &str, rate: u64) -> Vec<f64> {
        let url = self.url.clone();
        let producing = tokio::spawn(async move { produce_at(&url, rate, rate).await });
        tokio::time::sleep(WARMUP).await;
        let from = ends(&self.bootstrap, topic).await;
        producing.await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let read = read_range(&self.bootstrap, topic, Some(from)).await;
        let registry = registry_client::RegistryClient::new(&self.registry, None).unwrap();
        let mut schemas: BTreeMap<u32, schema::Schema> = BTreeMap::new();
        let mut out = Vec::with_capacity(read.len());
        for r in &read {
            let (Some(value), Some(append)) = (&r.value, r.timestamp_ms) else {
                continue;
            };
            if let Some(commit_us) = commit_us(value, &registry, &mut schemas).await {
                out.push((append * 1000 - commit_us) as f64 / 1000.0);
            }
        }
        out
    }
}

/// An event's commit time (Unix µs): Contrail's Avro envelope (by its
/// registered schema) or Debezium's JSON, both at `source.ts_us`.
async fn commit_us(
    value: &[u8],
    registry: &registry_client::RegistryClient,
    schemas: &mut BTreeMap<u32, schema::Schema>,
) -> Option<i64> {
    if value.first() == Some(&b'{') {
        let v: serde_json::Value = serde_json::from_slice(value).ok()?;
        let src = &v["source"];
        return src["ts_us"]
            .as_i64()
            .or_else(|| src["ts_ms"].as_i64().map(|ms| ms * 1000));
    }
    let framed = wire::decode(value).ok()?;
    let schema = match schemas.entry(framed.schema_id) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let text = registry.schema_by_id(framed.schema_id).await.ok()?;
            e.insert(schema::Schema::parse_str(&text).ok()?)
        }
    };
    let envelope = avro_json::decode_keeping_numbers(schema, framed.body, &["source"]).ok()?;
    envelope["source"]["ts_us"].as_i64()
}

/// Waits until `topic` has grown and then not grown for 5 s, or has not
/// grown at all for 30 s (nothing was pending: a JVM's start-up takes
/// less).
async fn wait_stable(bootstrap: &str, topic: &str) {
    let first = records_in(bootstrap, topic).await;
    let (mut last_total, mut last_change, started) = (first, Instant::now(), Instant::now());
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let total = records_in(bootstrap, topic).await;
        if total != last_total {
            (last_total, last_change) = (total, Instant::now());
        } else {
            let settled = total > first && last_change.elapsed() > Duration::from_secs(5);
            let nothing_pending = total == first && started.elapsed() > Duration::from_secs(30);
            if settled || nothing_pending {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{topic} did not drain within 15 minutes");
    }
}

/// Records on `topic` now (the sum of its partitions' ends; 0 while the
/// topic does not exist).
async fn records_in(bootstrap: &str, topic: &str) -> i64 {
    ends(bootstrap, topic).await.values().sum()
}

async fn ends(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let (cfg, topic) = (kafka_config(bootstrap), topic.to_string());
    tokio::task::spawn_blocking(move || kafka::high_watermarks(&cfg, &topic).unwrap_or_default())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Every record of `topic` from `from` (each partition's start when
/// `None`) to its end now.
async fn read_range(bootstrap: &str, topic: &str, from: Option<BTreeMap<i32, i64>>) -> Vec<kafka::Consumed> {
    let to = ends(bootstrap, topic).await;
    let start = |p: &i32| from.as_ref().and_then(|f| f.get(p).copied()).unwrap_or(0);
    let positions: Vec<(String, i32, i64)> = to.keys().map(|p| (topic.to_string(), *p, start(p))).collect();
    let wanted: i64 = to.iter().map(|(p, end)| end - start(p)).sum();
    let consumer = kafka::Consumer::new(&kafka_config(bootstrap), &format!("vs-{}", unix_ms())).unwrap();
    consumer.assign(&positions).unwrap();
    let mut out = Vec::with_capacity(usize::try_from(wanted).unwrap_or(0));
    while (out.len() as i64) < wanted {
        let batch = consumer.poll_batch(50_000, Duration::from_secs(10)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        out.extend(
            batch
                .into_iter()
                .filter(|r| r.offset < to.get(&r.partition).copied().unwrap_or(0)),
        );
    }
    out
}

/// The process's resident memory now, by kind: anonymous (heaps,
/// buffers) against file-backed (code).
fn print_memory(pid: u32) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kinds: Vec<&str> = rollup
        .lines()
        .filter(|l| {
            ["Rss:", "Anonymous:", "Pss_File:", "Pss_Anon:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect();
    println!("memory of {pid} at the drain's end: {}", kinds.join("; "));
}

/// p50, p99 and max of `v`.
fn percentiles(mut v: Vec<f64>) -> [f64; 3] {
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.99), v[v.len() - 1]]
}

fn print_table(rows: &[(&str, Figures)]) {
    println!("| system | events | drain rate | CPU s / M changes | walsender CPU s / M | peak RSS | bytes/event | p50 / p99 / max at 1,000/s | at 10,000/s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, f) in rows {
        let per_m = |s: f64| s / f.events.max(1) as f64 * 1e6;
        let lat = |i: usize| {
            f.latency.get(i).map_or("-".to_string(), |(_, [a, b, c], n)| {
                format!("{a:.0} / {b:.0} / {c:.0} ms ({n})")
            })
        };
        println!(
            "| {name} | {} | {:.0}/s | {:.1} | {:.1} | {:.0} MiB | {:.0} | {} | {} |",
            f.events,
            f.events as f64 / f.drain_s.max(1e-9),
            per_m(f.cpu_s),
            per_m(f.walsender_cpu_s),
            f.peak_rss_mib,
            f.bytes_per_event,
            lat(0),
            lat(1)
        );
    }
}
