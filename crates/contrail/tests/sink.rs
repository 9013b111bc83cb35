//! `contrail cdc` then `contrail sink` against the local stack: PostgreSQL
//! changes reach fakesnow's Snowflake API as a changelog and a current-state
//! table, and replaying the topic from the start changes nothing. Waits are
//! on the warehouse's state, polled.

mod common;

use std::time::{Duration, Instant};

use common::*;
use snowflake::{Client as Snowflake, SnowflakeConfig};

async fn warehouse(database: &str) -> Snowflake {
    let url = reqwest::Url::parse(&stack_env("SNOWFLAKE_URL")).unwrap();
    Snowflake::connect(SnowflakeConfig {
        url: format!("{}://{}:{}", url.scheme(), url.host_str().unwrap(), url.port().unwrap()),
        account: "local".into(),
        user: url.username().into(),
        password: url.password().unwrap_or_default().into(),
        warehouse: None,
        role: None,
        database: Some(database.into()),
        schema: Some("CDC".into()),
    })
    .await
    .unwrap()
}

/// Rows of a query as text, sorted.
async fn rows(sf: &Snowflake, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut r = sf.query(sql, &[]).await.unwrap().rows;
    r.sort();
    r
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
    let events = read(std::slice::from_ref(&topic))
        .iter()
        .filter(|r| !r["value"].is_null())
        .count();
    let database = db.name.to_uppercase();
    let changelog = format!("{database}.CDC.T_CHANGELOG");
    let sf = warehouse(&database).await;

    // Loads everything, then (replay) loads it all again from offset 0.
    for round in 0..2 {
        let mut sink = Stage::command(&db, "sink", &sink_config(&db));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let loaded = sf.query(&format!("SELECT COUNT(*) AS N FROM {changelog}"), &[]).await;
            let offsets = sf
                .query(
                    &format!("SELECT SUM(\"NEXT_OFFSET\") AS N FROM {database}.CDC.\"_CONTRAIL_SINK_OFFSETS\""),
                    &[],
                )
                .await;
            let n = |r: &Result<snowflake::QueryResult, _>| {
                r.as_ref()
                    .ok()
                    .and_then(|r| r.get(0, "N"))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0)
            };
            // Every record (events and tombstones) consumed, every event loaded.
            let total_records = read(std::slice::from_ref(&topic)).len();
            if n(&loaded) == events && n(&offsets) == total_records {
                break;
            }
            sink.assert_running();
            assert!(
                Instant::now() < deadline,
                "round {round}: the sink did not load in time:\n{}",
                sink.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (ok, log) = sink.stop();
        assert!(ok, "{log}");
        if round == 0 {
            // Forget the positions: the next run replays the whole topic.
            sf.query(&format!("DELETE FROM {database}.CDC.\"_CONTRAIL_SINK_OFFSETS\""), &[])
                .await
                .unwrap();
        }
    }

    // Each change once, even after the replay.
    let dupes = rows(
        &sf,
        &format!("SELECT \"_COMMIT_LSN\", \"_LSN\", \"_OP\", \"ID\" FROM {changelog} GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1"),
    )
    .await;
    assert!(dupes.is_empty(), "{dupes:?}");
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

    // The current state (the view) equals the source table.
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
        &sf,
        &format!(
            "SELECT TO_VARCHAR(\"ID\"), \"NAME\", TO_VARCHAR(\"AMOUNT\"), TO_VARCHAR(DATE_PART(EPOCH_SECOND, \"AT\")) FROM {database}.CDC.T"
        ),
    )
    .await;
    assert_eq!(actual.len(), expected.len());
    assert_eq!(actual, expected);
    db.finish(cdc).await;
}
