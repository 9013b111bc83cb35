//! The sink under faults of the warehouse and of its own deployment
//! (issue 16, paths 4 and 7), against the test stack:
//! - the warehouse rejects one record of a batch: the batch is loaded in
//!   halves until that record is found, which goes to the dead-letter
//!   topic with the warehouse's message, and the rest loads;
//! - two sink processes for the same topic: the second refuses to start,
//!   naming the one that holds the topic, and takes over once that one is
//!   gone.

mod common;

use common::*;

async fn count(sf: &snowflake::Client, sql: &str) -> String {
    sf.query(sql, &[])
        .await
        .unwrap()
        .get(0, "N")
        .unwrap_or_default()
        .to_string()
}

/// The test makes the warehouse refuse one value: the current-state
/// table's NAME column becomes a number, so a change whose name is not one
/// fails its MERGE with a data error (SQL state 22…), as a value out of a
/// column's range would on Snowflake.
#[tokio::test]
async fn a_record_the_warehouse_rejects_is_dead_lettered_and_the_rest_of_its_batch_loads() {
    let (db, mut cdc, sf) = TestDb::small_table_captured("sink_poison").await;
    let database = db.name.to_uppercase();
    db.client.batch_execute("UPDATE t SET name = id::text").await.unwrap();
    db.wait_captured(&mut cdc).await;
    let mut sink = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 80, &mut sink).await;
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    sf.query(
        &format!("ALTER TABLE {database}.CDC.T_V1 ALTER COLUMN NAME SET DATA TYPE NUMBER(38,0)"),
        &[],
    )
    .await
    .unwrap();

    // One transaction: one batch, with the bad change in its middle.
    db.client
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT g, g::text FROM generate_series(41, 60) g;
             INSERT INTO t VALUES (61, 'not a number');
             INSERT INTO t SELECT g, g::text FROM generate_series(62, 80) g;
             COMMIT;",
        )
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    let mut sink = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 120, &mut sink).await;
    let log = sink.log();
    assert!(log.contains("loading it in halves"), "{log}");

    assert_eq!(
        count(&sf, &format!("SELECT COUNT(*) AS N FROM {database}.CDC.T")).await,
        "79"
    );
    assert_eq!(
        count(
            &sf,
            &format!("SELECT COUNT(*) AS N FROM {database}.CDC.T WHERE ID = 61")
        )
        .await,
        "0"
    );
    assert_eq!(
        count(
            &sf,
            &format!("SELECT COUNT(*) AS N FROM {database}.CDC.T_CHANGELOG WHERE ID > 40")
        )
        .await,
        "39",
        "every other change of the batch is in the changelog, once"
    );
    let dead = read(&[format!("{}.sink.dlq", db.name)]);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let headers = &dead[0]["headers"];
    assert_eq!(headers["contrail.dlq.rules"], "warehouse");
    assert_eq!(headers["contrail.dlq.stage"], "sink");
    let reason = headers["contrail.dlq.reason"].as_str().unwrap();
    assert!(reason.contains("SQL state 22"), "{reason}");
    assert!(headers["contrail.dlq.source"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}.public.t/", db.name)));
    assert_eq!(dead[0]["value"]["after"]["id"], 61, "the record as it was read");
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    db.finish(cdc).await;
}

/// Two `contrail sink` processes for one topic, at once: the second
/// refuses to start and names the first; once the first stops, or is
/// killed, a second one takes the topic and loads what came meanwhile.
#[tokio::test]
async fn a_second_sink_for_the_same_topic_refuses_to_start() {
    let (db, mut cdc, sf) = TestDb::small_table_captured("sink_two").await;
    let database = db.name.to_uppercase();
    let mut first = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 40, &mut first).await;

    let (ok, log) = Stage::command(&db, "sink", &small_table_sink_config(&db)).wait_exit();
    assert!(!ok, "the second sink must not run:\n{log}");
    assert!(
        log.contains(&format!("another sink is loading topic {}.public.t", db.name)),
        "{log}"
    );
    assert!(
        log.contains(&format!("pid {}", first.child.id())),
        "the message names the holder:\n{log}"
    );
    first.assert_running();
    // Nor may its positions be reset under it: it would store its own over them.
    let file = std::env::temp_dir().join(format!("contrail-two-{}.toml", db.name));
    std::fs::write(&file, small_table_sink_config(&db)).unwrap();
    let reset = common::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_contrail"))
            .args(["--project-dir", project().to_str().unwrap(), "sink", "reset-positions"])
            .args([
                "--config",
                file.to_str().unwrap(),
                "--topic",
                &format!("{}.public.t", db.name),
            ])
            .args(["--to", "earliest"]),
        common::COMMAND_LIMIT,
    );
    let said = String::from_utf8_lossy(&reset.stderr);
    assert!(
        !reset.status.success() && said.contains("another sink is loading topic"),
        "{said}"
    );
    assert_eq!(stored_offsets_sum(&sf, &database, "CDC").await, Some(40));

    // Stopped cleanly, the first gives the topic up at once.
    let (ok, log) = first.stop();
    assert!(ok, "{log}");
    db.client
        .batch_execute("UPDATE t SET name = 'second' WHERE id <= 10")
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    let mut second = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 50, &mut second).await;

    // Killed, it is taken over once its lease stops moving.
    second.kill9();
    db.client
        .batch_execute("UPDATE t SET name = 'third' WHERE id <= 10")
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    let mut third = Stage::command(&db, "sink", &small_table_sink_config(&db));
    wait_stored(&sf, &database, 60, &mut third).await;
    assert!(
        third.log().contains("stopped renewing its lease: taking over"),
        "{}",
        third.log()
    );
    let names = count(
        &sf,
        &format!("SELECT COUNT(*) AS N FROM {database}.CDC.T WHERE NAME = 'third'"),
    )
    .await;
    assert_eq!(names, "10");
    let (ok, log) = third.stop();
    assert!(ok, "{log}");
    db.finish(cdc).await;
}
