//! The sink never skips silently past records it did not load (issue 16,
//! path 1), against the test stack's Apache Kafka, with Confluent's Python
//! admin client doing to the topic what an operator or retention would:
//! - the topic deleted and created again under stored positions: the sink
//!   stops, naming the topic, the partition, the stored offset and the
//!   log's range; `contrail sink reset-positions` moves the positions on
//!   purpose, printing what it changed, and the sink then loads what the
//!   new topic holds;
//! - records deleted below a stored position (as retention does): the sink
//!   stops and says so;
//! - a partition added while the sink runs is read without a restart.

mod common;

use std::process::Command;

use common::*;

/// Confluent's admin client on the test stack's broker: `delete TOPIC`,
/// `create TOPIC PARTITIONS`, `partitions TOPIC N` (grow to N),
/// `truncate TOPIC` (delete every record, as retention would), `garbage
/// TOPIC PARTITION` (one record no decoder accepts).
fn kafka(args: &[&str]) -> String {
    let script = r#"
import sys, time
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions
bootstrap, op, topic = sys.argv[1], sys.argv[2], sys.argv[3]
admin = AdminClient({"bootstrap.servers": bootstrap})
def partitions():
    return admin.list_topics(topic=topic, timeout=30).topics[topic].partitions
if op == "delete":
    admin.delete_topics([topic])[topic].result(30)
    while topic in admin.list_topics(timeout=30).topics:
        time.sleep(0.2)
elif op == "create":
    for _ in range(100):
        try:
            admin.create_topics([NewTopic(topic, int(sys.argv[4]), 1)])[topic].result(30)
            break
        except Exception as e:  # the deletion may still be under way
            if "TOPIC_ALREADY_EXISTS" not in str(e) and "marked for deletion" not in str(e):
                raise
            time.sleep(0.2)
elif op == "partitions":
    admin.create_partitions([NewPartitions(topic, int(sys.argv[4]))])[topic].result(30)
elif op == "truncate":
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "truncate"})
    ends = [TopicPartition(topic, p, c.get_watermark_offsets(TopicPartition(topic, p), 30)[1]) for p in partitions()]
    for f in admin.delete_records(ends).values():
        f.result(30)
elif op == "garbage":
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, b"not a change event", partition=int(sys.argv[4]))
    p.flush(30)
"#;
    run_ok(
        Command::new(confluent_python())
            .args(["-c", script, &stack_env("KAFKA_BOOTSTRAP_SERVERS")])
            .args(args),
    )
}

fn reset(db: &TestDb, topic: &str, to: &[&str]) -> String {
    let file = std::env::temp_dir().join(format!("contrail-reset-{}.toml", db.name));
    std::fs::write(&file, small_table_sink_config(db)).unwrap();
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_contrail"))
            .args(["--project-dir", project().to_str().unwrap(), "sink", "reset-positions"])
            .args(["--config", file.to_str().unwrap(), "--topic", topic])
            .args(to),
    )
}

async fn setup(base: &str) -> (TestDb, Stage, snowflake::Client, String, String) {
    let (db, cdc, sf) = TestDb::small_table_captured(base).await;
    let database = db.name.to_uppercase();
    let topic = format!("{}.public.t", db.name);
    (db, cdc, sf, database, topic)
}

#[tokio::test]
async fn a_recreated_topic_stops_the_sink_until_its_positions_are_reset() {
    let (db, cdc, sf, database, topic) = setup("sink_recreated").await;
    let mut sink = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 40, &mut sink).await;
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");

    // The topic goes and comes back empty; the CDC stage writes new changes into it.
    let (ok, log) = cdc.stop();
    assert!(ok, "{log}");
    kafka(&["delete", &topic]);
    kafka(&["create", &topic, "2"]);
    db.client
        .batch_execute("INSERT INTO t SELECT g, 'new ' || g FROM generate_series(41, 45) g")
        .await
        .unwrap();
    let mut cdc = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut cdc).await;

    let (ok, log) = Stage::command(&db, "sink", &small_table_sink_config(&db)).wait_exit();
    assert!(!ok, "the sink must stop:\n{log}");
    for part in [
        format!("topic {topic} partition"),
        "past the end of the log".to_string(),
        format!("reset-positions --topic {topic}"),
    ] {
        assert!(log.contains(&part), "{part:?} missing from:\n{log}");
    }
    assert_eq!(
        stored_offsets_sum(&sf, &database, "CDC").await,
        Some(40),
        "nothing moved by itself"
    );

    let printed = reset(&db, &topic, &["--to", "earliest"]);
    assert!(printed.contains("partition 0: moved the sink's position"), "{printed}");
    assert!(printed.contains("→ 0 (the log holds 0 to"), "{printed}");
    let mut sink = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 5, &mut sink).await;
    let view = sf
        .query(&format!("SELECT COUNT(*) AS N FROM {database}.CDC.T"), &[])
        .await
        .unwrap();
    assert_eq!(view.get(0, "N"), Some("45"));
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    db.finish(cdc).await;
}

#[tokio::test]
async fn records_deleted_below_a_stored_position_stop_the_sink() {
    let (db, mut cdc, sf, database, topic) = setup("sink_retention").await;
    let mut sink = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 40, &mut sink).await;
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");

    // Changes the sink never loaded, then deleted from the log.
    db.client
        .batch_execute("UPDATE t SET name = 'unloaded' WHERE id <= 20")
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    kafka(&["truncate", &topic]);

    let (ok, log) = Stage::command(&db, "sink", &small_table_sink_config(&db)).wait_exit();
    assert!(!ok, "the sink must stop:\n{log}");
    assert!(log.contains("before the start of the log"), "{log}");
    assert!(log.contains("retention deleted records"), "{log}");
    assert_eq!(
        stored_offsets_sum(&sf, &database, "CDC").await,
        Some(40),
        "nothing moved by itself"
    );
    let printed = reset(&db, &topic, &["--to", "latest", "--dry-run"]);
    assert!(printed.contains("would move"), "{printed}");
    assert_eq!(
        stored_offsets_sum(&sf, &database, "CDC").await,
        Some(40),
        "a dry run changes nothing"
    );
    db.finish(cdc).await;
}

#[tokio::test]
async fn a_partition_added_while_the_sink_runs_is_read_without_a_restart() {
    let (db, cdc, sf, database, topic) = setup("sink_partitions").await;
    let mut sink = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 40, &mut sink).await;
    kafka(&["partitions", &topic, "3"]);
    kafka(&["garbage", &topic, "2"]);
    // The new partition's one record is read (and dead-lettered: it is not a change event).
    wait_stored(&sf, &database, 41, &mut sink).await;
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    assert!(log.contains("partitions added to the topic"), "{log}");
    db.finish(cdc).await;
}
