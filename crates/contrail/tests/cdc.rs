//! `contrail cdc` against the test stack's PostgreSQL, Apache Kafka and schema
//! registry, read back with Confluent's own Python consumer and
//! AvroDeserializer. Each test has its own database, slot and topic prefix.
//! Waiting is on events: the slot's confirmed position (which the stage
//! advances only after Kafka acknowledged everything before it) reaching
//! the WAL position after the test's writes.
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn every_type_through_snapshot_and_stream_binary() {
    every_type_through_snapshot_and_stream("cdc_types_bin", true).await;
}

#[tokio::test]
async fn every_type_through_snapshot_and_stream_text() {
    every_type_through_snapshot_and_stream("cdc_types_txt", false).await;
}

/// Snapshot rows are always text; streamed ones binary or text: both must
/// give the same values.
async fn every_type_through_snapshot_and_stream(base: &str, binary: bool) {
    let db = TestDb::create(base).await;
    db.client
        .batch_execute(
            "CREATE TABLE every_type (
                id bigint PRIMARY KEY, b boolean, i2 smallint, i4 integer, f4 real, f8 double precision,
                amount numeric(12,3), anyn numeric, t text, vc varchar(20), ch char(4), d date, ts timestamp,
                tstz timestamptz, u uuid, j json, jb jsonb, raw bytea, tags text[], nums integer[], big text);
             ALTER TABLE every_type REPLICA IDENTITY FULL;
             -- Out of line and uncompressed, so an update that leaves it alone sends the unchanged-TOAST marker.
             ALTER TABLE every_type ALTER COLUMN big SET STORAGE EXTERNAL;
             INSERT INTO every_type VALUES (1, true, -7, 2147483647, 1.5, 0.1, -1234.5, 3.14159265358979323846,
                'snap', 'v', 'ab', '2024-02-29', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+02',
                'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2]}', '{\"k\": 1}', '\\x00ff', '{a,\"b c\",NULL}',
                '{1,2}', NULL);
             INSERT INTO every_type (id) VALUES (2);",
        )
        .await
        .unwrap();
    let cfg =
        config(&db, &["public.every_type"], "").replace("[source]\n", &format!("[source]\nbinary_values = {binary}\n"));
    let mut stage = Stage::start(&db, &cfg);
    db.wait_captured(&mut stage).await;
    // Streamed: an insert, an update of a TOAST-sized value, an update that
    // leaves it untouched (pgoutput sends "unchanged"), a key change, a delete.
    let big = "x".repeat(300_000);
    db.client
        .batch_execute(&format!(
            "INSERT INTO every_type VALUES (3, false, 1, 2, -0.25, 1e300, 0.001, 'NaN', 'stream', 'w', 'c', '1969-12-31',
                '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000', 'null', '[]',
                '\\x', '{{}}', '{{NULL}}', NULL);
             UPDATE every_type SET big = '{big}' WHERE id = 2;
             UPDATE every_type SET t = 'touched' WHERE id = 2;
             UPDATE every_type SET id = 10 WHERE id = 3;
             DELETE FROM every_type WHERE id = 1;"
        ))
        .await
        .unwrap();
    db.finish(stage).await;

    let topic = format!("{}.public.every_type", db.name);
    let records = read(std::slice::from_ref(&topic));
    let evs = events(&records);
    let ops: Vec<(&str, i64)> = evs
        .iter()
        .map(|r| (r["value"]["op"].as_str().unwrap(), r["key"]["id"].as_i64().unwrap()))
        .collect::<Vec<_>>();
    let mut sorted = ops.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("c", 3),
            ("c", 10),
            ("d", 1),
            ("d", 3),
            ("r", 1),
            ("r", 2),
            ("u", 2),
            ("u", 2)
        ],
        "{ops:?}"
    );

    let by = |op: &str, id: i64| {
        evs.iter()
            .find(|r| r["value"]["op"] == op && r["key"]["id"] == id)
            .unwrap()["value"]
            .clone()
    };
    let snap = by("r", 1);
    assert_eq!(snap["source"]["snapshot"], true);
    let a = &snap["after"];
    let expected = json!({
        "id": 1, "b": true, "i2": -7, "i4": 2147483647, "f4": 1.5, "f8": 0.1, "amount": "-1234.500",
        "anyn": "3.14159265358979323846", "t": "snap", "vc": "v", "ch": "ab  ", "d": "2024-02-29",
        "ts": "2024-02-29T12:34:56.789012", "tstz": "2024-02-29T10:34:56.789012+00:00",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": "{\"k\": [1, 2]}", "jb": "{\"k\": 1}", "raw": "00ff",
        "tags": ["a", "b c", null], "nums": [1, 2], "big": null
    });
    assert_eq!(a, &expected);

    let ins = by("c", 3);
    assert_eq!(ins["source"]["snapshot"], false);
    assert!(ins["before"].is_null());
    let a = &ins["after"];
    assert_eq!(a["f8"], 1e300);
    assert_eq!(a["anyn"], "NaN");
    assert_eq!(
        (a["d"].as_str(), a["ts"].as_str()),
        (Some("1969-12-31"), Some("1970-01-01T00:00:00"))
    );
    assert_eq!(
        (a["raw"].as_str(), a["tags"].clone(), a["nums"].clone()),
        (Some(""), json!([]), json!([null]))
    );
    assert_eq!(a["j"], "null");

    // The update that did not touch `big` still carries it, taken from the old row.
    let updates: Vec<&Value> = evs
        .iter()
        .filter(|r| r["value"]["op"] == "u")
        .map(|r| &r["value"])
        .collect();
    assert_eq!(updates[0]["after"]["big"].as_str().map(str::len), Some(300_000));
    assert_eq!(updates[1]["after"]["t"], "touched");
    assert_eq!(updates[1]["after"]["big"].as_str().map(str::len), Some(300_000));
    assert_eq!(updates[1]["before"]["t"], Value::Null);

    // A key change is a delete of the old key and a create of the new one.
    assert_eq!(by("d", 3)["before"]["t"], "stream");
    assert_eq!(by("c", 10)["after"]["t"], "stream");
    // Deletes are followed by tombstones; the delete carries the whole old row.
    assert_eq!(by("d", 1)["before"]["t"], "snap");
    assert_eq!(records.iter().filter(|r| r["value"].is_null()).count(), 2);
    // Events of one transaction share its commit LSN and have rising LSNs.
    let streamed: Vec<&Value> = evs
        .iter()
        .filter(|r| r["value"]["op"] != "r")
        .map(|r| &r["value"]["source"])
        .collect();
    assert!(streamed
        .iter()
        .all(|s| s["lsn"].as_i64() <= s["commit_lsn"].as_i64() && s["txid"].as_i64() > Some(0)));
}

#[tokio::test]
async fn rule_breakers_go_to_the_dead_letter_topic_with_their_reasons() {
    let db = TestDb::create("cdc_rules").await;
    let migration =
        std::fs::read_to_string(project().join("crates/flight-db/migrations/0001_flight_state.sql")).unwrap();
    db.client.batch_execute(&migration).await.unwrap();
    let contract = "[contracts]\n\"public.flight_state\" = \"io.contrail.flight.FlightState\"\n";
    let mut stage = Stage::start(&db, &config(&db, &["public.flight_state"], contract));
    db.wait_captured(&mut stage).await;
    db.client
        .batch_execute(
            "INSERT INTO flight_state (icao24, origin_country, last_contact, latitude, longitude, on_ground)
             VALUES ('abc123', 'Switzerland', now(), 46.5, 7.5, false),
                    ('XYZ', 'Switzerland', now(), 95.0, 7.5, false),
                    ('def456', 'France', now() + interval '1 day', 46.0, null, true);",
        )
        .await
        .unwrap();
    db.finish(stage).await;
    let records = read(&[format!("{}.public.flight_state", db.name), format!("{}.dlq", db.name)]);
    let good: Vec<&Value> = records
        .iter()
        .filter(|r| r["topic"] == format!("{}.public.flight_state", db.name).as_str())
        .collect();
    assert_eq!(good.len(), 1);
    assert_eq!(good[0]["value"]["after"]["icao24"], "abc123");
    let mut dead: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["topic"] == format!("{}.dlq", db.name).as_str())
        .map(|r| {
            assert_eq!(r["headers"]["contrail.dlq.stage"], "cdc");
            assert!(r["headers"]["contrail.dlq.lsn"].as_str().unwrap().contains('/'));
            assert!(r["headers"]["contrail.dlq.reason"].as_str().unwrap().contains("rule "));
            (
                r["value"]["after"]["icao24"].as_str().unwrap().to_string(),
                r["headers"]["contrail.dlq.rules"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        [
            ("XYZ".to_string(), "icao24.pattern,latitude.range".to_string()),
            (
                "def456".to_string(),
                "last_contact.not_future,position_is_complete".to_string()
            )
        ]
    );
}

#[tokio::test]
async fn a_column_added_while_streaming_is_a_new_schema_version() {
    let db = TestDb::create("cdc_evolve").await;
    db.client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, a text); ALTER TABLE t REPLICA IDENTITY FULL;")
        .await
        .unwrap();
    let mut stage = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut stage).await;
    db.client
        .batch_execute(
            "INSERT INTO t VALUES (1, 'before');
             ALTER TABLE t ADD COLUMN added numeric(5,2);
             INSERT INTO t VALUES (2, 'after', 12.5);",
        )
        .await
        .unwrap();
    db.finish(stage).await;
    let records = read(&[format!("{}.public.t", db.name)]);
    let mut afters: Vec<&Value> = records.iter().map(|r| &r["value"]["after"]).collect();
    afters.sort_by_key(|a| a["id"].as_i64());
    assert_eq!(
        afters,
        [
            &json!({"id": 1, "a": "before"}),
            &json!({"id": 2, "a": "after", "added": "12.50"})
        ]
    );
    let versions: Value = ureq::get(&format!(
        "{}/subjects/{}.public.t-value/versions",
        stack_env("SCHEMA_REGISTRY_URL"),
        db.name
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_to_string()
    .map(|t| serde_json::from_str(&t).unwrap())
    .unwrap();
    assert_eq!(versions, json!([1, 2]));
}

#[tokio::test]
async fn kill_9_at_any_point_loses_nothing() {
    let db = TestDb::create("cdc_kill").await;
    db.client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, n bigint NOT NULL); ALTER TABLE t REPLICA IDENTITY FULL;")
        .await
        .unwrap();
    let cfg = config(&db, &["public.t"], "");
    let mut stage = Stage::start(&db, &cfg);
    // A writer keeps committing while the stage is killed and restarted:
    // each transaction bumps one row's counter, and every tenth deletes one.
    let writer_db = connect(&db.url).await;
    let writer = tokio::spawn(async move {
        for i in 0..3_000i64 {
            let id = (i * 7919 % 200) as i32;
            let sql = if i % 10 == 9 {
                format!("DELETE FROM t WHERE id = {id}")
            } else {
                format!("INSERT INTO t VALUES ({id}, 1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1")
            };
            writer_db.batch_execute(&sql).await.unwrap();
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // Kill after the stage has confirmed something, three times, at
    // different moments of its work.
    for round in 0..3 {
        db.wait_captured(&mut stage).await;
        tokio::time::sleep(Duration::from_millis(37 * (round + 1))).await;
        stage.kill9();
        stage = Stage::start(&db, &cfg);
    }
    writer.await.unwrap();
    // A 100,000-row transaction on top.
    db.client
        .batch_execute("INSERT INTO t SELECT g, g FROM generate_series(1000, 100999) g ON CONFLICT DO NOTHING")
        .await
        .unwrap();
    db.wait_captured(&mut stage).await;
    let (ok, log) = stage.stop();
    assert!(ok, "{log}");

    // The last event of each key is the row's state; deleted rows end in a delete.
    let records = read(&[format!("{}.public.t", db.name)]);
    let mut last: std::collections::BTreeMap<i64, Option<i64>> = Default::default();
    for r in events(&records) {
        let v = &r["value"];
        let key = r["key"]["id"].as_i64().unwrap();
        last.insert(key, v["after"]["n"].as_i64());
    }
    let rows = db.client.query("SELECT id::bigint, n FROM t", &[]).await.unwrap();
    let table: std::collections::BTreeMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let topic: std::collections::BTreeMap<i64, i64> = last.iter().filter_map(|(k, n)| n.map(|n| (*k, n))).collect();
    assert_eq!(topic.len(), table.len());
    assert!(topic == table, "the topic's last values differ from the table");
    assert!(table.len() > 100_000);
    db.drop_slot().await;
}

#[tokio::test]
async fn a_refused_schema_change_stops_the_stage_which_resumes_once_the_subject_allows_it() {
    let db = TestDb::create("cdc_refuse").await;
    db.client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, a text); ALTER TABLE t REPLICA IDENTITY FULL;")
        .await
        .unwrap();
    // The subject outlives the database: start from the default level.
    let registry = stack_env("SCHEMA_REGISTRY_URL");
    let cfg = config(&db, &["public.t"], "");
    let mut stage = Stage::start(&db, &cfg);
    db.client.batch_execute("INSERT INTO t VALUES (1, 'x')").await.unwrap();
    db.wait_captured(&mut stage).await;
    // string → int cannot be read by the previous version (BACKWARD).
    db.client
        .batch_execute("ALTER TABLE t ALTER COLUMN a TYPE integer USING length(a); INSERT INTO t VALUES (2, 5);")
        .await
        .unwrap();
    let status = stage.child.wait().unwrap();
    let log = stage.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "table public.t: the registry refused the new schema for {}.public.t-value",
            db.name
        )) && log.contains("Envelope.after.a: reader union has no branch that reads writer type string")
            && log.contains("BACKWARD"),
        "the error names the table, the subject and the field:\n{log}"
    );
    ureq::put(&format!("{registry}/config/{}.public.t-value", db.name))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(r#"{"compatibility": "NONE"}"#)
        .unwrap();
    let stage = Stage::start(&db, &cfg);
    db.finish(stage).await;
    let records = read(&[format!("{}.public.t", db.name)]);
    let mut afters: Vec<&Value> = records.iter().map(|r| &r["value"]["after"]).collect();
    afters.sort_by_key(|a| a["id"].as_i64());
    assert_eq!(afters, [&json!({"id": 1, "a": "x"}), &json!({"id": 2, "a": 5})]);
}

#[tokio::test]
async fn a_table_added_later_is_snapshotted_while_the_stream_goes_on() {
    let db = TestDb::create("cdc_added").await;
    db.client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, v bigint); ALTER TABLE a REPLICA IDENTITY FULL;
             CREATE TABLE b (id int PRIMARY KEY, v bigint); ALTER TABLE b REPLICA IDENTITY FULL;
             INSERT INTO b SELECT g, 0 FROM generate_series(1, 5000) g;",
        )
        .await
        .unwrap();
    let mut stage = Stage::start(&db, &config(&db, &["public.a"], ""));
    db.client.batch_execute("INSERT INTO a VALUES (1, 1)").await.unwrap();
    db.wait_captured(&mut stage).await;
    let (ok, log) = stage.stop();
    assert!(ok, "{log}");

    // Now with b too: it is read in chunks while b keeps changing.
    let mut stage = Stage::start(&db, &config(&db, &["public.a", "public.b"], ""));
    let writer_db = connect(&db.url).await;
    let writer = tokio::spawn(async move {
        for i in 0..600i64 {
            let id = (i * 7919 % 6000 + 1) as i32;
            let sql = match i % 6 {
                5 => format!("DELETE FROM b WHERE id = {id}"),
                _ => format!("INSERT INTO b VALUES ({id}, {i}) ON CONFLICT (id) DO UPDATE SET v = {i}"),
            };
            writer_db.batch_execute(&sql).await.unwrap();
        }
    });
    writer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while db
        .client
        .query_opt(
            "SELECT 1 FROM contrail_cdc_state WHERE slot_name = $1 AND table_name = 'public.b'",
            &[&db.name],
        )
        .await
        .unwrap()
        .is_none()
    {
        stage.assert_running();
        assert!(
            Instant::now() < deadline,
            "b's snapshot did not complete:\n{}",
            stage.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.wait_captured(&mut stage).await;
    let (ok, log) = stage.stop();
    assert!(ok, "{log}");
    assert!(log.contains("incremental snapshot while streaming"), "{log}");

    let records = read(&[format!("{}.public.b", db.name)]);
    let reads = records.iter().filter(|r| r["value"]["op"] == "r").count();
    assert!(reads > 4_000, "{reads} rows read by the snapshot");
    let mut last: std::collections::BTreeMap<i64, Option<i64>> = Default::default();
    for r in events(&records) {
        last.insert(r["key"]["id"].as_i64().unwrap(), r["value"]["after"]["v"].as_i64());
    }
    let rows = db.client.query("SELECT id::bigint, v FROM b", &[]).await.unwrap();
    let table: std::collections::BTreeMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let topic: std::collections::BTreeMap<i64, i64> = last.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
    let differing: Vec<_> = table.iter().filter(|(k, v)| topic.get(k) != Some(v)).take(5).collect();
    assert!(
        differing.is_empty() && topic.len() == table.len(),
        "first differences (table): {differing:?}"
    );
    db.drop_slot().await;
}

#[tokio::test]
async fn transaction_metadata_brackets_each_transaction_with_counts() {
    let db = TestDb::create("cdc_tx").await;
    db.client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY); ALTER TABLE a REPLICA IDENTITY FULL;
             CREATE TABLE b (id int PRIMARY KEY); ALTER TABLE b REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let mut stage = Stage::start(
        &db,
        &config(&db, &["public.a", "public.b"], "").replace("[kafka]\n", "[kafka]\ntransaction_metadata = true\n"),
    );
    db.wait_captured(&mut stage).await;
    db.client
        .batch_execute("INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (1); UPDATE a SET id = 3 WHERE id = 2;")
        .await
        .unwrap();
    db.finish(stage).await;
    let records = read(&[format!("{}.transaction", db.name), format!("{}.public.a", db.name)]);
    let meta: Vec<&Value> = records
        .iter()
        .filter(|r| r["topic"] == format!("{}.transaction", db.name).as_str())
        .collect();
    // Heartbeat transactions carry no events and get no metadata.
    assert_eq!(meta.len(), 2, "{meta:?}");
    let (begin, end) = (&meta[0]["value"], &meta[1]["value"]);
    assert_eq!(
        (begin["status"].as_str(), end["status"].as_str()),
        (Some("BEGIN"), Some("END"))
    );
    assert_eq!(begin["id"], end["id"]);
    assert_eq!(meta[0]["key"]["id"], begin["id"]);
    // Two inserts and a key change (a delete and a create) in a, one insert in b.
    assert_eq!(end["event_count"], 5);
    assert_eq!(
        end["data_collections"],
        json!([{"data_collection": "public.a", "event_count": 4}, {"data_collection": "public.b", "event_count": 1}])
    );
    let txid = records.iter().find(|r| r["topic"] != meta[0]["topic"]).unwrap()["value"]["source"]["txid"]
        .as_i64()
        .unwrap();
    assert!(begin["id"].as_str().unwrap().starts_with(&format!("{txid}:")));
}

#[tokio::test]
async fn tables_that_cannot_be_captured_faithfully_stop_the_stage_at_start() {
    let db = TestDb::create("cdc_refusals").await;
    db.client
        .batch_execute(
            "CREATE TABLE spots (id int PRIMARY KEY, spot point); ALTER TABLE spots REPLICA IDENTITY FULL;
             CREATE TABLE plain (id int PRIMARY KEY, v text);
             CREATE TABLE nokey (v text); ALTER TABLE nokey REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let cases = [
        (
            "public.spots",
            "table public.spots, column spot: point (oid 600) has no Avro mapping",
        ),
        ("public.plain", "table public.plain needs REPLICA IDENTITY FULL"),
        ("public.nokey", "table public.nokey has no primary key"),
        ("public.missing", "table public.missing does not exist"),
    ];
    for (table, expected) in cases {
        let mut stage = Stage::start(&db, &config(&db, &[table], ""));
        let status = stage.child.wait().unwrap();
        let log = stage.log();
        assert!(
            !status.success() && log.contains(expected),
            "{table}: expected {expected:?} in\n{log}"
        );
    }
    // Nothing was created for a stage that refused to start.
    let slots = db
        .client
        .query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&db.name])
        .await
        .unwrap();
    assert!(slots.is_empty());
    db.drop_slot().await;
}

/// A database with table `t (columns)`, and its topic created before the
/// stage starts, with one topic setting, as an operator would have made it.
async fn table_with_topic(base: &str, columns: &str, setting: (&str, &str)) -> (TestDb, String) {
    let db = TestDb::create(base).await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE t ({columns}); ALTER TABLE t REPLICA IDENTITY FULL;"
        ))
        .await
        .unwrap();
    let topic = format!("{}.public.t", db.name);
    let kafka = kafka::KafkaConfig {
        bootstrap_servers: stack_env("KAFKA_BOOTSTRAP_SERVERS"),
        client_id: format!("{base}-test"),
        properties: Default::default(),
    };
    let spec = kafka::TopicSpec {
        name: topic.clone(),
        partitions: 2,
        replication: 1,
        config: vec![(setting.0.into(), setting.1.into())],
    };
    kafka::ensure_topics(&kafka, &[spec]).await.unwrap();
    (db, topic)
}

/// A topic whose settings would lose acknowledged records stops the stage
/// before it writes anything (issue 16, path 8).
#[tokio::test]
async fn a_topic_with_unclean_leader_election_is_refused() {
    let (db, topic) = table_with_topic(
        "cdc_unclean",
        "id int PRIMARY KEY",
        ("unclean.leader.election.enable", "true"),
    )
    .await;
    let (ok, log) = Stage::start(&db, &config(&db, &["public.t"], "")).wait_exit();
    assert!(!ok, "{log}");
    assert!(log.contains(&format!("topic {topic} is not safe to write to")), "{log}");
    assert!(log.contains("unclean.leader.election.enable=false"), "{log}");
    db.drop_slot().await;
}

/// A row larger than its topic's `max.message.bytes` would be refused by
/// Kafka on every retry: it is dead-lettered as a small record, and the
/// rows after it, in the same transaction and later, flow on.
#[tokio::test]
async fn a_row_too_large_for_its_topic_is_dead_lettered_small_and_the_slot_moves_on() {
    let (db, topic) = table_with_topic(
        "cdc_oversized",
        "id int PRIMARY KEY, body text",
        ("max.message.bytes", "20000"),
    )
    .await;
    let mut stage = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut stage).await;
    db.client
        .batch_execute(
            "BEGIN;
             INSERT INTO t VALUES (1, 'small');
             INSERT INTO t SELECT 2, string_agg(md5(i::text), '') FROM generate_series(1, 1000) i;
             INSERT INTO t VALUES (3, 'small');
             COMMIT;
             INSERT INTO t VALUES (4, 'after');",
        )
        .await
        .unwrap();
    // The slot's confirmed position passing these writes is the proof that
    // nothing holds it.
    db.finish(stage).await;
    let records = read(&[topic.clone(), format!("{}.dlq", db.name)]);
    let mut captured: Vec<i64> = records
        .iter()
        .filter(|r| r["topic"] == topic.as_str())
        .map(|r| r["key"]["id"].as_i64().unwrap())
        .collect();
    captured.sort();
    assert_eq!(captured, [1, 3, 4]);
    let dead: Vec<&Value> = records.iter().filter(|r| r["topic"] != topic.as_str()).collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let headers = &dead[0]["headers"];
    assert_eq!(headers["contrail.dlq.rules"], "size");
    assert_eq!(headers["contrail.dlq.topic"], topic.as_str());
    assert_eq!(headers["contrail.dlq.position"], headers["contrail.dlq.lsn"]);
    assert!(headers["contrail.dlq.lsn"].as_str().unwrap().contains('/'));
    let reason = headers["contrail.dlq.reason"].as_str().unwrap();
    assert!(reason.contains(&format!("20000 bytes topic {topic} takes")), "{reason}");
    assert_eq!(dead[0]["key"]["id"], 2, "the dead letter keeps the row's key");
    let doc: Value = serde_json::from_str(dead[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        (doc["table"].as_str(), doc["op"].as_str()),
        (Some("public.t"), Some("c"))
    );
    assert!(doc["size_bytes"].as_u64().unwrap() > 32_000, "{doc}");
    assert_eq!(doc["limit_bytes"], 20000);
}

/// A table range-partitioned by month is one topic: the snapshot reads
/// through the root, a row moved between partitions by an update of the
/// partition key arrives as the root's delete and insert, and a partition
/// attached while streaming needs no restart. A partition without FULL
/// identity is refused at start, by name.
#[tokio::test]
async fn a_partitioned_table_streams_as_its_root_across_partitions() {
    let db = TestDb::create("cdc_partitioned").await;
    db.client
        .batch_execute(
            "CREATE TABLE readings (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
             CREATE TABLE readings_2024_01 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
             CREATE TABLE readings_2024_02 PARTITION OF readings FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
             ALTER TABLE readings REPLICA IDENTITY FULL; ALTER TABLE readings_2024_01 REPLICA IDENTITY FULL;
             INSERT INTO readings SELECT g, DATE '2024-01-01' + g, 'snap ' || g FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let cfg = config(&db, &["public.readings"], "");
    let mut refused = Stage::start(&db, &cfg);
    let status = refused.child.wait().unwrap();
    let log = refused.log();
    assert!(
        !status.success() && log.contains("partitions public.readings_2024_02 need REPLICA IDENTITY FULL"),
        "{log}"
    );
    db.client
        .batch_execute("ALTER TABLE readings_2024_02 REPLICA IDENTITY FULL")
        .await
        .unwrap();

    let mut stage = Stage::start(&db, &cfg);
    db.wait_captured(&mut stage).await;
    db.client
        .batch_execute(
            "INSERT INTO readings VALUES (100, '2024-01-20', 'new');
             UPDATE readings SET v = 'touched' WHERE id = 5;
             UPDATE readings SET at = '2024-02-10' WHERE id = 10;  -- January to February
             DELETE FROM readings WHERE id = 40;
             CREATE TABLE readings_2024_03 (LIKE readings INCLUDING ALL);
             ALTER TABLE readings_2024_03 REPLICA IDENTITY FULL;
             ALTER TABLE readings ATTACH PARTITION readings_2024_03 FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
             INSERT INTO readings VALUES (200, '2024-03-15', 'march');
             UPDATE readings SET v = 'moved on' WHERE id = 200;",
        )
        .await
        .unwrap();
    db.wait_captured(&mut stage).await;
    let rows = db
        .client
        .query("SELECT id, v FROM readings ORDER BY id, at", &[])
        .await
        .unwrap();
    let source: Vec<(i64, String)> = rows.iter().map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1))).collect();
    db.finish(stage).await;

    // The topic's events, folded per key, are the table.
    let records = read(&[format!("{}.public.readings", db.name)]);
    let mut state = std::collections::BTreeMap::new();
    for r in events(&records) {
        let key = (r["key"]["id"].as_i64().unwrap(), r["key"]["at"].to_string());
        match r["value"]["op"].as_str().unwrap() {
            "d" => state.remove(&key),
            _ => state.insert(key, r["value"]["after"]["v"].as_str().unwrap().to_string()),
        };
    }
    let captured: Vec<(i64, String)> = state.into_iter().map(|((id, _), v)| (id, v)).collect();
    assert_eq!(captured, source);
    assert!(
        captured.contains(&(200, "moved on".into())),
        "the attached partition streams"
    );
    let moved: Vec<&Value> = events(&records).into_iter().filter(|r| r["key"]["id"] == 10).collect();
    // The old and the new key may be on different Kafka partitions.
    let mut ops: Vec<&str> = moved.iter().map(|r| r["value"]["op"].as_str().unwrap()).collect();
    ops.sort_unstable();
    assert_eq!(
        ops,
        ["c", "d", "r"],
        "a move between partitions is a delete and an insert"
    );
}

#[tokio::test]
async fn enums_and_domains_are_carried_as_text_and_their_base_binary() {
    enums_and_domains("cdc_udt_bin", true).await;
}

#[tokio::test]
async fn enums_and_domains_are_carried_as_text_and_their_base_text() {
    enums_and_domains("cdc_udt_txt", false).await;
}

/// An enum is carried as its label (a label added while streaming needs
/// no new schema), a domain as its base type with the domain's modifier,
/// arrays of either as arrays of that: in the snapshot and the stream.
async fn enums_and_domains(base: &str, binary: bool) {
    let db = TestDb::create(base).await;
    db.client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok');
             CREATE DOMAIN price AS numeric(8,2) CHECK (VALUE >= 0);
             CREATE DOMAIN code AS varchar(3);
             CREATE DOMAIN positive_price AS price;
             CREATE TABLE udt (id int PRIMARY KEY, m mood, p price, c code, pp positive_price,
                               moods mood[], prices price[]);
             ALTER TABLE udt REPLICA IDENTITY FULL;
             INSERT INTO udt VALUES (1, 'sad', 12.5, 'abc', 1.25, '{ok,NULL,sad}', '{1.10,NULL}');",
        )
        .await
        .unwrap();
    let cfg = config(&db, &["public.udt"], "").replace("[source]\n", &format!("[source]\nbinary_values = {binary}\n"));
    let mut stage = Stage::start(&db, &cfg);
    db.wait_captured(&mut stage).await;
    // A label must be committed before it is used.
    db.client
        .batch_execute("ALTER TYPE mood ADD VALUE 'ecstatic'")
        .await
        .unwrap();
    db.client
        .batch_execute(
            "INSERT INTO udt VALUES (2, 'ecstatic', 0, 'x', 99.99, '{ecstatic}', '{}');
             UPDATE udt SET m = 'ok', p = 7 WHERE id = 1;",
        )
        .await
        .unwrap();
    db.finish(stage).await;

    let records = read(&[format!("{}.public.udt", db.name)]);
    let after = |op: &str, id: i64| {
        events(&records)
            .into_iter()
            .find(|r| r["value"]["op"] == op && r["key"]["id"] == id)
            .unwrap_or_else(|| panic!("no {op} of {id} in {records:?}"))["value"]["after"]
            .clone()
    };
    let snap = after("r", 1);
    assert_eq!(
        (&snap["m"], &snap["p"], &snap["c"], &snap["pp"]),
        (&json!("sad"), &json!("12.50"), &json!("abc"), &json!("1.25")),
        "{snap}"
    );
    assert_eq!(snap["moods"], json!(["ok", null, "sad"]), "{snap}");
    assert_eq!(snap["prices"], json!(["1.10", null]), "{snap}");
    let new = after("c", 2);
    assert_eq!(
        (&new["m"], &new["p"], &new["moods"]),
        (&json!("ecstatic"), &json!("0.00"), &json!(["ecstatic"]))
    );
    let upd = after("u", 1);
    assert_eq!((&upd["m"], &upd["p"]), (&json!("ok"), &json!("7.00")));
    // One schema version: a new label is not a new schema.
    let subject = format!("{}.public.udt-value", db.name);
    let versions = reqwest::get(format!(
        "{}/subjects/{subject}/versions",
        stack_env("SCHEMA_REGISTRY_URL")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(versions, "[1]");
}
