//! The Debezium setup the side-by-side benchmark uses (`cdc`'s
//! `vs_debezium`, see docs/BENCHMARKS.md) still starts and emits a change,
//! so the benchmark cannot rot while the test command does not run it:
//! Kafka Connect standalone with Debezium's PostgreSQL connector, its jars
//! from Maven Central, against the tests' own PostgreSQL and Kafka.

mod common;

use std::time::{Duration, Instant};

use changes::Source as _;
use common::{stack_env, TestDb};
use stack::debezium::{DebeziumConfig, DebeziumWorker};

#[tokio::test]
async fn debezium_as_the_benchmark_runs_it_starts_and_emits_a_change() {
    let db = TestDb::create("dbz_smoke").await;
    db.client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text); ALTER TABLE t REPLICA IDENTITY FULL;")
        .await
        .unwrap();
    let cfg = DebeziumConfig {
        bootstrap_servers: stack_env("KAFKA_BOOTSTRAP_SERVERS"),
        database_url: db.url.clone(),
        table: "public.t".into(),
        slot: db.name.clone(),
        publication: db.name.clone(),
        topic_prefix: db.name.clone(),
        partitions: 1,
    };
    let dir = tempfile::tempdir().unwrap();
    let worker = DebeziumWorker::start(&cfg, dir.path()).unwrap();
    let log = || std::fs::read_to_string(dir.path().join("connect.log")).unwrap_or_default();

    // Streaming once its slot is active (no initial snapshot).
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let active: Option<bool> = db
            .client
            .query_opt(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&db.name],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        if active == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Debezium did not start streaming:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.client.execute("INSERT INTO t VALUES (1, 'one')", &[]).await.unwrap();

    let topic = format!("{}.public.t", db.name);
    let kafka = kafka::KafkaConfig {
        bootstrap_servers: cfg.bootstrap_servers.clone(),
        client_id: "debezium-smoke".into(),
        ..kafka::KafkaConfig::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kafka::high_watermarks(&kafka, &topic).is_ok_and(|w| w.iter().any(|(_, end)| *end > 0)) {
        assert!(Instant::now() < deadline, "no change on {topic}:\n{}", log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let source = kafka::GroupSource::open(&kafka, &format!("{}-smoke", db.name), &topic).unwrap();
    let records = source.poll(10, Duration::from_secs(10)).await.unwrap();
    let value: serde_json::Value = serde_json::from_slice(records[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(value["op"], "c", "{value}");
    assert_eq!(value["after"], serde_json::json!({"id": 1, "name": "one"}));
    assert!(value["source"]["lsn"].as_u64().is_some_and(|l| l > 0), "{value}");
    worker.stop();
    db.drop_slot().await;
}
