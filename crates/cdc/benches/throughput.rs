//! The CDC stage against the raw decoding limit, in one run, and its
//! commit-to-acknowledged latency at a steady 1,000 changes per second.
//!
//! 1. A backlog: the producer writes simulated flight changes into
//!    `flight_state` (batches of 1,000 per transaction) while two slots
//!    hold the WAL: the stage's and a raw one.
//! 2. `pg_recvlogical` reads the raw slot to the backlog's end (pgoutput,
//!    text values, written to /dev/null): the walsender's decoding limit.
//! 3. The stage reads its slot to the same end: decode, parse, validate,
//!    encode, produce to Kafka (a scratch Apache Kafka broker, logs on
//!    disk in a temporary directory, started here),
//!    and confirm once acknowledged. Timed until the slot's confirmed
//!    position reaches the end, start-up included.
//! 4. Latency: the producer writes 1,000 changes/s (50 per transaction),
//!    and the stage's commit-to-acknowledged histogram gives the
//!    percentiles (interpolated within buckets, as Prometheus does).
//!
//! Run: `cargo bench -p cdc --bench throughput` (after `contrail stack up`).
//! Figures go to docs/BENCHMARKS.md.

mod common;

use common::connect;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cdc::config::{DatabaseUrl, TableName};
use cdc::CdcConfig;
use tokio_postgres::Client;

const DB: &str = "cdc_bench";
const BACKLOG_SECONDS: u64 = 8;
const LATENCY_SECONDS: u64 = 20;

async fn lsn(client: &Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

type Stage = tokio::task::JoinHandle<Result<cdc::Summary, cdc::CdcError>>;

/// Commits a marker transaction after everything written so far and returns
/// a position between the last write and the marker's commit: a reader has
/// processed everything once it confirmed (or reached) this position.
async fn marker(client: &Client) -> String {
    let before = lsn(client, "SELECT pg_current_wal_insert_lsn()::text").await;
    client
        .execute("SELECT pg_logical_emit_message(true, 'contrail.bench', 'end')", &[])
        .await
        .unwrap();
    before
}

/// Waits until the stage's own confirmed position (everything before it
/// acknowledged by Kafka) passes `target`; panics with the stage's error if it stopped.
async fn wait_confirmed(metrics_url: &str, target: &str, stage: &mut Stage) {
    let target = pgoutput::Lsn::parse(target).unwrap().0;
    loop {
        if stage.is_finished() {
            match stage.await.unwrap() {
                Ok(s) => panic!("the stage stopped early: {s:?}"),
                Err(e) => panic!("the stage failed: {:?}", anyhow_chain(&e)),
            }
        }
        let confirmed = ureq::get(metrics_url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with(&format!("{} ", cdc::metrics::CONFIRMED_LSN)))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            })
            .unwrap_or(0);
        if confirmed >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn anyhow_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(&format!(": {s}"));
        src = s.source();
    }
    out
}

fn producer_config(url: &str, rate: Option<u64>, seconds: u64) -> producer::ProducerConfig {
    let defaults = producer::ServiceDefaults {
        database_url: Some(url.into()),
        ..Default::default()
    };
    let overrides = producer::Overrides {
        rate: Some(rate.unwrap_or(0)),
        duration_seconds: Some(seconds),
        metrics_listen: Some(String::new()),
        seed: Some(11),
        ..Default::default()
    };
    producer::ProducerConfig::load(None, &overrides, defaults).unwrap()
}

/// p-quantile from Prometheus histogram text (`<name>_bucket{le="…"} n` lines).
fn quantile(metrics: &str, name: &str, q: f64) -> f64 {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .map(|l| {
            let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, l.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().unwrap().1;
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            return prev.0 + (le - prev.0) * (rank - prev.1) / (count - prev.1).max(1.0);
        }
        prev = (le, count);
    }
    prev.0
}

fn main() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stack = stack::StackConfig::for_project(&project).unwrap();
    let env: BTreeMap<&str, String> = stack.env().into_iter().collect();
    let broker = stack::ScratchKafka::start()
        .expect("a scratch Apache Kafka broker (Java 17 and Maven: ./scripts/env.sh installs them)");
    let admin_url = env["DATABASE_URL"].clone();
    let url = admin_url.rsplit_once('/').map(|(b, _)| format!("{b}/{DB}")).unwrap();
    // The producer takes DATABASE_URL over its defaults: point it here,
    // before any thread starts.
    std::env::set_var("DATABASE_URL", &url);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = CdcConfig {
        database_url: DatabaseUrl::new(url.clone()),
        tables: vec![TableName {
            schema: "public".into(),
            name: "flight_state".into(),
        }],
        slot: DB.into(),
        publication: DB.into(),
        state_table: TableName {
            schema: "public".into(),
            name: "contrail_cdc_state".into(),
        },
        heartbeat: None,
        lag_warn_bytes: u64::MAX,
        binary_values: std::env::var("CDC_BENCH_TEXT").is_err(),
        kafka: kafka::KafkaConfig {
            bootstrap_servers: broker.bootstrap.clone(),
            client_id: "cdc-bench".into(),
            properties: Default::default(),
        },
        registry_url: env["SCHEMA_REGISTRY_URL"].clone(),
        registry: Default::default(),
        topic_prefix: DB.into(),
        partitions: 3,
        replication: 1,
        min_insync_replicas: 1,
        dead_letter_topic: format!("{DB}.dlq"),
        tombstones: true,
        transaction_topic: None,
        linger: Duration::from_millis(5),
        contracts: [(
            TableName {
                schema: "public".into(),
                name: "flight_state".into(),
            },
            "io.contrail.flight.FlightState".to_string(),
        )]
        .into(),
        schemas_dir: project.join("schemas"),
        metrics_listen: Some(format!("127.0.0.1:{metrics_port}").parse().unwrap()),
    };

    rt.block_on(async {
        let admin = connect(&admin_url).await;
        for slot in [DB, "cdc_bench_raw"] {
            admin
                .execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
                .await
                .unwrap();
        }
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)")).await.unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {DB}")).await.unwrap();
        let mut client = connect(&url).await;
        flight_db::migrate(&mut client).await.unwrap();

        // The stage's slot and publication (empty snapshot), then the raw slot.
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stage = tokio::spawn(cdc::run(cfg.clone(), rx));
        while client
            .query_opt("SELECT 1 FROM contrail_cdc_state WHERE slot_name = $1", &[&DB])
            .await
            .map_or(true, |r| r.is_none())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        stage.await.unwrap().unwrap();
        client
            .execute("SELECT pg_create_logical_replication_slot('cdc_bench_raw', 'pgoutput')", &[])
            .await
            .unwrap();

        // 1. The backlog.
        let summary = producer::run(producer_config(&url, None, BACKLOG_SECONDS), tokio::sync::watch::channel(false).1)
            .await
            .unwrap();
        let changes = summary.total();
        let end = marker(&client).await;
        println!("backlog: {changes} changes ({:.0}/s into PostgreSQL), WAL end {end}", summary.per_second());

        // 2. pg_recvlogical.
        let t = Instant::now();
        let status = Command::new(format!("/usr/lib/postgresql/{}/bin/pg_recvlogical", stack::POSTGRES_MAJOR))
            .args(["-d", &url, "--slot", "cdc_bench_raw", "--start", "--no-loop", "--endpos", &end, "-f", "/dev/null"])
            .args(["-o", "proto_version=1", "-o", &format!("publication_names={DB}")])
            .status()
            .unwrap();
        assert!(status.success());
        let raw = t.elapsed();
        let raw_rate = changes as f64 / raw.as_secs_f64();
        println!("pg_recvlogical: {:.2} s = {raw_rate:.0} changes/s", raw.as_secs_f64());

        // 3. The stage.
        let (self_cpu, broker_cpu) = (stack::cpu_seconds(std::process::id()), stack::cpu_seconds(broker.pid()));
        let t = Instant::now();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut stage = tokio::spawn(cdc::run(cfg.clone(), rx));
        let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
        wait_confirmed(&metrics_url, &end, &mut stage).await;
        let took = t.elapsed();
        let rate = changes as f64 / took.as_secs_f64();
        println!(
            "contrail cdc: {:.2} s = {rate:.0} changes/s acknowledged by Kafka and confirmed (start-up included); ratio {:.2}",
            took.as_secs_f64(),
            rate / raw_rate
        );
        // Where the two cores went while the stage drained: the stage (this
        // process), the broker's JVM, and the walsender (which started
        // with the stage, so its whole CPU time counts).
        let walsender: Option<i32> = client
            .query_one("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", &[&DB])
            .await
            .unwrap()
            .get(0);
        println!(
            "CPU during the drain ({:.2} s): stage {:.2} s, Kafka broker {:.2} s, walsender {:.2} s",
            took.as_secs_f64(),
            stack::cpu_seconds(std::process::id()) - self_cpu,
            stack::cpu_seconds(broker.pid()) - broker_cpu,
            walsender.map_or(f64::NAN, |p| stack::cpu_seconds(p as u32)),
        );

        // 4. Latency at 1,000 changes/s, on the running stage.
        let before = ureq::get(&metrics_url).call().unwrap().body_mut().read_to_string().unwrap();
        let count_before: f64 = before
            .lines()
            .find(|l| l.starts_with(&format!("{}_count", cdc::metrics::COMMIT_TO_ACK)))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0);
        let steady = producer::run(producer_config(&url, Some(1_000), LATENCY_SECONDS), tokio::sync::watch::channel(false).1)
            .await
            .unwrap();
        let end = marker(&client).await;
        wait_confirmed(&metrics_url, &end, &mut stage).await;
        let after = ureq::get(&metrics_url).call().unwrap().body_mut().read_to_string().unwrap();
        // Subtract the backlog's observations bucket by bucket.
        let diff = subtract(&after, &before, cdc::metrics::COMMIT_TO_ACK);
        println!(
            "latency at {:.0} changes/s ({} transactions): commit to acknowledged p50 {:.1} ms, p99 {:.1} ms (histogram of {} before)",
            steady.per_second(),
            steady.total() / 50,
            quantile(&diff, cdc::metrics::COMMIT_TO_ACK, 0.5) * 1e3,
            quantile(&diff, cdc::metrics::COMMIT_TO_ACK, 0.99) * 1e3,
            count_before
        );
        stop.send(true).unwrap();
        stage.await.unwrap().unwrap();
        // Slots hold WAL: leave none behind.
        for slot in [DB, "cdc_bench_raw"] {
            client.execute("SELECT pg_drop_replication_slot($1)", &[&slot]).await.unwrap();
        }
    });
    drop(broker);
}

/// `after - before` for every bucket line of `name`.
fn subtract(after: &str, before: &str, name: &str) -> String {
    let prefix = format!("{name}_bucket{{");
    let counts = |text: &str| -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    };
    let b = counts(before);
    counts(after)
        .into_iter()
        .map(|(k, v)| format!("{k} {}\n", v - b.get(&k).copied().unwrap_or(0.0)))
        .collect()
}
