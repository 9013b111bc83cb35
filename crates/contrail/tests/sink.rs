//! `contrail cdc` then `contrail sink` against the local stack: PostgreSQL
//! changes reach fakesnow's Snowflake API as a changelog and a current-state
//! table, and replaying the topic from the start changes nothing. Waits are
//! on the warehouse's state, polled.

mod common;

use std::time::{Duration, Instant};

use common::*;
use snowflake::Client as Snowflake;

async fn warehouse(database: &str) -> Snowflake {
    common::warehouse(database, "CDC").await
}

/// Rows of a query as text, sorted.
async fn rows(sf: &Snowflake, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut r = sf.query(sql, &[]).await.unwrap().rows;
    r.sort();
    r
}

/// Waits until the sink has consumed every record of `topic` and loaded
/// every event into the changelog.
async fn wait_loaded(sf: &Snowflake, database: &str, topic: &str, sink: &mut Stage) {
    let records = read(&[topic.to_string()]);
    let events = records.iter().filter(|r| !r["value"].is_null()).count();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count = |sql: String| async move {
            sf.query(&sql, &[])
                .await
                .ok()
                .and_then(|r| r.get(0, "N").and_then(|v| v.parse::<usize>().ok()))
                .unwrap_or(0)
        };
        let loaded = count(format!("SELECT COUNT(*) AS N FROM {database}.CDC.T_CHANGELOG")).await;
        let consumed = count(format!(
            "SELECT SUM(\"NEXT_OFFSET\") AS N FROM {database}.CDC.\"_CONTRAIL_SINK_OFFSETS\""
        ))
        .await;
        if loaded == events && consumed == records.len() {
            return;
        }
        sink.assert_running();
        assert!(
            Instant::now() < deadline,
            "the sink did not load in time ({loaded}/{events} events, {consumed}/{} records):\n{}",
            records.len(),
            sink.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The view equals the source table, and the changelog holds each change once.
async fn assert_warehouse_equals_source(sf: &Snowflake, db: &TestDb, database: &str) {
    let dupes = rows(
        sf,
        &format!(
            "SELECT \"_COMMIT_LSN\", \"_LSN\", \"_OP\", \"ID\" FROM {database}.CDC.T_CHANGELOG GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1"
        ),
    )
    .await;
    assert!(dupes.is_empty(), "{dupes:?}");
    let source = db
        .client
        .query(
            "SELECT id::text, name, amount::text, extract(epoch from at)::bigint::text FROM t",
            &[],
        )
        .await
        .unwrap();
    let mut expected: Vec<Vec<Option<String>>> = source
        .iter()
        .map(|r| (0..4).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect();
    expected.sort();
    let actual = rows(
        sf,
        &format!(
            "SELECT TO_VARCHAR(\"ID\"), \"NAME\", TO_VARCHAR(\"AMOUNT\"), TO_VARCHAR(DATE_PART(EPOCH_SECOND, \"AT\")) FROM {database}.CDC.T"
        ),
    )
    .await;
    assert_eq!(actual.len(), expected.len());
    assert!(
        actual == expected,
        "the warehouse's current state differs from the source table"
    );
}

fn sink_config(db: &TestDb) -> String {
    format!(
        "[source]\ntopics = [\"{n}.public.t\"]\ngroup_id = \"{n}\"\ndead_letter_topic = \"{n}.sink.dlq\"\n\n\
         [snowflake]\ndatabase = \"{N}\"\nschema = \"CDC\"\ncreate_schema = true\n\n[batch]\nmax_rows = 500\nmax_ms = 100\n",
        n = db.name,
        N = db.name.to_uppercase()
    )
}

#[tokio::test]
async fn changes_land_once_in_the_changelog_and_the_current_state_equals_the_source() {
    let db = TestDb::create("sink_e2e").await;
    db.client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(10,2), at timestamptz, tags text[]);
             ALTER TABLE t REPLICA IDENTITY FULL;
             INSERT INTO t SELECT g, 'row ' || g, g * 1.25, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour', ARRAY['a', NULL]
               FROM generate_series(1, 300) g;",
        )
        .await
        .unwrap();
    let mut cdc = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut cdc).await;
    db.client
        .batch_execute(
            "UPDATE t SET name = 'updated' WHERE id % 7 = 0;
             DELETE FROM t WHERE id % 11 = 0;
             UPDATE t SET id = 1000 WHERE id = 1;
             INSERT INTO t VALUES (2000, 'new', NULL, NULL, NULL);
             UPDATE t SET amount = 9.99 WHERE id = 2000;",
        )
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;

    let topic = format!("{}.public.t", db.name);
    let database = db.name.to_uppercase();
    let changelog = format!("{database}.CDC.T_CHANGELOG");
    let sf = warehouse(&database).await;

    // Loads everything, then (replay) loads it all again from offset 0.
    for round in 0..2 {
        let mut sink = Stage::command(&db, "sink", &sink_config(&db));
        wait_loaded(&sf, &database, &topic, &mut sink).await;
        let (ok, log) = sink.stop();
        assert!(ok, "{log}");
        if round == 0 {
            // Forget the positions: the next run replays the whole topic.
            sf.query(&format!("DELETE FROM {database}.CDC.\"_CONTRAIL_SINK_OFFSETS\""), &[])
                .await
                .unwrap();
        }
    }

    assert_warehouse_equals_source(&sf, &db, &database).await;
    let ops = rows(&sf, &format!("SELECT \"_OP\", COUNT(*) FROM {changelog} GROUP BY 1")).await;
    assert_eq!(
        ops,
        [
            vec![Some("c".into()), Some("2".into())],
            vec![Some("d".into()), Some("28".into())],
            vec![Some("r".into()), Some("300".into())],
            vec![Some("u".into()), Some("43".into())]
        ]
    );
    db.finish(cdc).await;
}

#[tokio::test]
async fn killing_the_sink_mid_stream_loses_and_doubles_nothing() {
    let db = TestDb::create("sink_kill").await;
    db.client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(10,2), at timestamptz, tags text[]);
             ALTER TABLE t REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let mut cdc = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut cdc).await;
    let database = db.name.to_uppercase();
    let topic = format!("{}.public.t", db.name);
    let writer_db = connect(&db.url).await;
    let writer = tokio::spawn(async move {
        for i in 0..1_500i64 {
            let id = i * 7919 % 300;
            let sql = if i % 9 == 8 {
                format!("DELETE FROM t WHERE id = {id}")
            } else {
                format!(
                    "INSERT INTO t VALUES ({id}, 'n{i}', {i}.5, now(), NULL) ON CONFLICT (id) DO UPDATE SET name = 'n{i}', amount = {i}.5"
                )
            };
            writer_db.batch_execute(&sql).await.unwrap();
        }
    });
    // Kill the sink three times while changes keep coming.
    let sf = warehouse(&database).await;
    let mut sink = Stage::command(&db, "sink", &sink_config(&db));
    for round in 0..3u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        // Wait until it has stored some positions, then kill it mid-work.
        while sf
            .query(
                &format!("SELECT COUNT(*) AS N FROM {database}.CDC.\"_CONTRAIL_SINK_OFFSETS\""),
                &[],
            )
            .await
            .ok()
            .and_then(|r| r.get(0, "N").map(str::to_string))
            .is_none_or(|n| n == "0")
        {
            sink.assert_running();
            assert!(Instant::now() < deadline, "no positions stored:\n{}", sink.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(150 * (round + 1))).await;
        sink.kill9();
        sink = Stage::command(&db, "sink", &sink_config(&db));
    }
    writer.await.unwrap();
    db.wait_captured(&mut cdc).await;
    wait_loaded(&sf, &database, &topic, &mut sink).await;
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    assert_warehouse_equals_source(&sf, &db, &database).await;
    db.finish(cdc).await;
}

#[tokio::test]
async fn every_postgres_type_reaches_a_typed_snowflake_column() {
    let db = TestDb::create("sink_types").await;
    db.client
        .batch_execute(
            "CREATE TABLE t (
                id bigint PRIMARY KEY, b boolean, i2 smallint, f4 real, f8 double precision,
                amount numeric(12,3), anyn numeric, name text, ch char(4), d date, ts timestamp,
                at timestamptz, u uuid, j jsonb, raw bytea, tags text[]);
             ALTER TABLE t REPLICA IDENTITY FULL;
             INSERT INTO t VALUES (1, true, -7, 1.5, 0.1, -1234.5, 3.14159265358979323846, 'snap', 'ab', '2024-02-29',
                '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                '{\"k\": [1, 2]}', '\\x00ff', '{a,\"b c\",NULL}');",
        )
        .await
        .unwrap();
    let mut cdc = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut cdc).await;
    let database = db.name.to_uppercase();
    let topic = format!("{}.public.t", db.name);
    let sf = warehouse(&database).await;
    let mut sink = Stage::command(&db, "sink", &sink_config(&db));
    wait_loaded(&sf, &database, &topic, &mut sink).await;
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");

    let types = sf
        .query(
            &format!(
                "SELECT COLUMN_NAME, DATA_TYPE FROM {database}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'T_V1' \
                 AND TABLE_SCHEMA = 'CDC' AND COLUMN_NAME NOT LIKE '\\\\_%' ESCAPE '\\\\' ORDER BY ORDINAL_POSITION"
            ),
            &[],
        )
        .await
        .unwrap();
    let types: Vec<(String, String)> = types
        .rows
        .iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default()))
        .collect();
    let expect_types = [
        ("ID", "NUMBER"),
        ("B", "BOOLEAN"),
        ("I2", "NUMBER"),
        ("F4", "FLOAT"),
        ("F8", "FLOAT"),
        ("AMOUNT", "NUMBER"),
        ("ANYN", "TEXT"),
        ("NAME", "TEXT"),
        ("CH", "TEXT"),
        ("D", "DATE"),
        ("TS", "TIMESTAMP_NTZ"),
        ("AT", "TIMESTAMP_TZ"),
        ("U", "TEXT"),
        ("J", "TEXT"),
        ("RAW", "BINARY"),
        ("TAGS", "VARIANT"),
    ];
    let expect_types: Vec<(String, String)> = expect_types
        .iter()
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect();
    assert_eq!(types, expect_types);
    let values = sf
        .query(
            &format!(
                "SELECT TO_VARCHAR(\"B\") AS B, TO_VARCHAR(\"I2\") AS I2, TO_VARCHAR(\"F4\") AS F4, TO_VARCHAR(\"F8\") AS F8,
                 TO_VARCHAR(\"AMOUNT\") AS AMOUNT, \"ANYN\", \"NAME\", \"CH\", TO_VARCHAR(\"D\") AS D, TO_VARCHAR(\"TS\") AS TS,
                 TO_VARCHAR(\"AT\") AS AT, \"U\", TO_VARCHAR(\"J\") AS J, HEX_ENCODE(\"RAW\") AS RAW, TO_VARCHAR(\"TAGS\") AS TAGS
                 FROM {database}.CDC.T"
            ),
            &[],
        )
        .await
        .unwrap();
    let expected = [
        "true",
        "-7",
        "1.5",
        "0.1",
        "-1234.500",
        "3.14159265358979323846",
        "snap",
        "ab  ",
        "2024-02-29",
        "2024-02-29 12:34:56.789012",
        "2024-02-29 10:34:56.789012+00",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "{\"k\": [1, 2]}",
        "00FF",
        "[\"a\",\"b c\",null]",
    ];
    let expected: Vec<Option<String>> = expected.iter().map(|v| Some(v.to_string())).collect();
    assert_eq!(values.rows, vec![expected]);
    db.finish(cdc).await;
}

/// The view `T` as text, sorted, against the source's columns as text.
async fn assert_view_equals(sf: &Snowflake, db: &TestDb, view: &str, columns: &[&str]) {
    let pg_cols: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
    let source = db
        .client
        .query(&format!("SELECT {} FROM t", pg_cols.join(", ")), &[])
        .await
        .unwrap();
    let mut expected: Vec<Vec<Option<String>>> = source
        .iter()
        .map(|r| (0..columns.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect();
    expected.sort();
    let sf_cols: Vec<String> = columns
        .iter()
        .map(|c| format!("TO_VARCHAR(\"{}\")", c.to_uppercase()))
        .collect();
    let actual = rows(sf, &format!("SELECT {} FROM {view}", sf_cols.join(", "))).await;
    assert_eq!(actual, expected, "the view {view} differs from the source table");
}

#[tokio::test]
async fn schema_versions_widen_the_tables_or_start_a_new_generation() {
    let db = TestDb::create("sink_evolve").await;
    db.client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, code text, note text);
             ALTER TABLE t REPLICA IDENTITY FULL;
             INSERT INTO t SELECT g, CASE WHEN g = 5 THEN 'x5' ELSE (g * 10)::text END, 'before' FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    let mut cdc = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut cdc).await;
    let database = db.name.to_uppercase();
    let topic = format!("{}.public.t", db.name);
    let view = format!("{database}.CDC.T");
    let sf = warehouse(&database).await;
    let mut sink = Stage::command(&db, "sink", &sink_config(&db));
    wait_loaded(&sf, &database, &topic, &mut sink).await;

    // Compatible: a nullable column added widens generation 1.
    db.client
        .batch_execute("ALTER TABLE t ADD COLUMN extra int; UPDATE t SET extra = id WHERE id <= 4; INSERT INTO t VALUES (21, '210', 'new', 21);")
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    wait_loaded(&sf, &database, &topic, &mut sink).await;
    assert_view_equals(&sf, &db, &view, &["id", "code", "note", "extra"]).await;

    // Incompatible (the subject allows it): code becomes an integer. The
    // source rewrites every row, but only changed rows are replicated.
    ureq::put(&format!("{}/config/{topic}-value", stack_env("SCHEMA_REGISTRY_URL")))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(r#"{"compatibility": "NONE"}"#)
        .unwrap();
    db.client
        .batch_execute(
            "ALTER TABLE t ALTER COLUMN code TYPE integer USING CASE WHEN code ~ '^[0-9]+$' THEN code::int END;
             UPDATE t SET note = 'after' WHERE id IN (1, 2);
             DELETE FROM t WHERE id = 3;
             INSERT INTO t VALUES (22, 220, 'newest', NULL);",
        )
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    wait_loaded(&sf, &database, &topic, &mut sink).await;
    assert_view_equals(&sf, &db, &view, &["id", "code", "note", "extra"]).await;

    let history = rows(
        &sf,
        &format!(
            "SELECT TO_VARCHAR(\"SEQ\"), TO_VARCHAR(\"VERSION\"), TO_VARCHAR(\"GENERATION\"), \"TABLE_NAME\", \"CHANGE\" \
             FROM {database}.CDC.\"_CONTRAIL_SCHEMA_HISTORY\" WHERE \"TOPIC\" = '{topic}'"
        ),
    )
    .await;
    let t = |n: &str| Some(format!("\"{database}\".\"CDC\".\"{n}\""));
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        history,
        [
            vec![s("1"), s("1"), s("1"), t("T_V1"), s("create")],
            vec![s("2"), s("2"), s("1"), t("T_V1"), s("add columns EXTRA")],
            vec![
                s("3"),
                s("3"),
                s("2"),
                t("T_V2"),
                s("new generation: column CODE changed type from TEXT to NUMBER(38,0)")
            ],
        ]
    );
    let ddl = rows(
        &sf,
        &format!("SELECT \"DDL\" FROM {database}.CDC.\"_CONTRAIL_SCHEMA_HISTORY\" WHERE \"VERSION\" = 2"),
    )
    .await;
    assert!(
        ddl[0][0].as_deref().unwrap().contains(&format!(
            "ALTER TABLE \"{database}\".\"CDC\".\"T_V1\" ADD COLUMN IF NOT EXISTS \"EXTRA\" NUMBER(38,0)"
        )),
        "{ddl:?}"
    );
    // Generation 2 holds only what changed since; the old generation keeps its rows.
    let v2 = rows(
        &sf,
        &format!("SELECT TO_VARCHAR(\"ID\"), \"_OP\" FROM {database}.CDC.T_V2"),
    )
    .await;
    let s2 = |id: &str, op: &str| vec![s(id), s(op)];
    assert_eq!(v2, [s2("1", "u"), s2("2", "u"), s2("22", "c"), s2("3", "d")]);

    // A restart reads the generations back from the history: the next
    // change lands in generation 2, and nothing is placed again.
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    db.client
        .batch_execute("UPDATE t SET code = 999, extra = 9 WHERE id = 6;")
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    let mut sink = Stage::command(&db, "sink", &sink_config(&db));
    wait_loaded(&sf, &database, &topic, &mut sink).await;
    assert_view_equals(&sf, &db, &view, &["id", "code", "note", "extra"]).await;
    let placed = rows(
        &sf,
        &format!("SELECT COUNT(*) FROM {database}.CDC.\"_CONTRAIL_SCHEMA_HISTORY\" WHERE \"TOPIC\" = '{topic}'"),
    )
    .await;
    assert_eq!(placed, [vec![s("3")]]);
    let changelog = rows(
        &sf,
        &format!("SELECT \"_OP\", TO_VARCHAR(\"CODE\"), TO_VARCHAR(\"_SCHEMA_VERSION\") FROM {database}.CDC.T_CHANGELOG WHERE \"ID\" = 6"),
    )
    .await;
    assert_eq!(
        changelog,
        [vec![s("r"), s("60"), s("1")], vec![s("u"), s("999"), s("3")]]
    );
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    db.finish(cdc).await;
}

/// The tables the sink creates for the producer's `flight_state` (through
/// the CDC stage, from the registry's schema) are exactly the committed
/// `snowflake/tables/flight_state/v1.sql`, generated from `schemas/`.
#[tokio::test]
async fn the_sink_creates_the_committed_snowflake_ddl() {
    let db = TestDb::create("sink_ddl").await;
    db.client
        .batch_execute(include_str!("../../flight-db/migrations/0001_flight_state.sql"))
        .await
        .unwrap();
    db.client
        .batch_execute("INSERT INTO flight_state (icao24, origin_country, last_contact, on_ground) VALUES ('abc123', 'Iceland', now(), false)")
        .await
        .unwrap();
    let cdc = Stage::start(&db, &config(&db, &["public.flight_state"], ""));
    let database = db.name.to_uppercase();
    let topic = format!("{}.public.flight_state", db.name);
    let sf = warehouse(&database).await;
    let cfg = sink_config(&db).replace(".public.t\"]", ".public.flight_state\"]");
    let mut sink = Stage::command(&db, "sink", &cfg);
    let deadline = Instant::now() + Duration::from_secs(120);
    let applied = loop {
        let r = sf
            .query(
                &format!("SELECT \"DDL\" FROM {database}.CDC.\"_CONTRAIL_SCHEMA_HISTORY\" WHERE \"TOPIC\" = ?"),
                &[snowflake::Bind::Text(topic.clone())],
            )
            .await;
        if let Some(ddl) = r.ok().and_then(|r| r.rows.first().and_then(|row| row[0].clone())) {
            break ddl;
        }
        sink.assert_running();
        assert!(Instant::now() < deadline, "no table created:\n{}", sink.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let committed = std::fs::read_to_string(project().join("snowflake/tables/flight_state/v1.sql")).unwrap();
    let statements: Vec<&str> = committed
        .lines()
        .filter(|l| !l.starts_with("--") && !l.is_empty())
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert_eq!(
        applied.replace(&format!("\"{database}\".\"CDC\"."), ""),
        statements.join(";\n"),
        "the sink's tables drifted from snowflake/tables/flight_state/v1.sql"
    );
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    db.finish(cdc).await;
}

/// A partitioned table with enum and domain columns lands as one warehouse
/// table equal to the source: rows in every partition, one moved between
/// partitions, one in a partition attached while streaming.
#[tokio::test]
async fn a_partitioned_table_with_enums_and_domains_lands_as_one_table() {
    let db = TestDb::create("sink_partitioned").await;
    db.client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok');
             CREATE DOMAIN price AS numeric(8,2);
             CREATE TABLE t (id int, at date, m mood, p price, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
             CREATE TABLE t_2024_01 PARTITION OF t FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
             CREATE TABLE t_2024_02 PARTITION OF t FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
             ALTER TABLE t REPLICA IDENTITY FULL; ALTER TABLE t_2024_01 REPLICA IDENTITY FULL;
             ALTER TABLE t_2024_02 REPLICA IDENTITY FULL;
             INSERT INTO t SELECT g, DATE '2024-01-01' + g, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'sad' END::mood,
                 g * 1.5, 'snap ' || g FROM generate_series(1, 40) g;",
        )
        .await
        .unwrap();
    let mut cdc = Stage::start(&db, &config(&db, &["public.t"], ""));
    db.wait_captured(&mut cdc).await;
    db.client
        .batch_execute(
            "UPDATE t SET at = '2024-02-20', m = 'ok' WHERE id = 3;
             CREATE TABLE t_2024_03 (LIKE t INCLUDING ALL);
             ALTER TABLE t_2024_03 REPLICA IDENTITY FULL;
             ALTER TABLE t ATTACH PARTITION t_2024_03 FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
             INSERT INTO t VALUES (100, '2024-03-03', 'sad', 0.01, 'march');
             DELETE FROM t WHERE id = 7;",
        )
        .await
        .unwrap();
    db.wait_captured(&mut cdc).await;
    let database = db.name.to_uppercase();
    let sf = warehouse(&database).await;
    let mut sink = Stage::command(&db, "sink", &sink_config(&db));
    wait_loaded(&sf, &database, &format!("{}.public.t", db.name), &mut sink).await;
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    assert_view_equals(&sf, &db, &format!("{database}.CDC.T"), &["id", "at", "m", "p", "v"]).await;
    db.finish(cdc).await;
}
