//! The mapping on the Relation message PostgreSQL's pgoutput sends for a table
//! with every supported type; the resulting schema must parse in Contrail and
//! in Apache Avro's own implementation (python3-avro). A table with an
//! unsupported type is refused with its table and column named.

use std::path::Path;
use std::process::Command;

use pgoutput::{decode, Message, Relation};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the local stack's PostgreSQL (run `contrail stack up`)");
    tokio::spawn(conn);
    client
}

/// Creates `table` (with `ddl`) in a fresh database and returns the Relation
/// message pgoutput sends for it.
async fn relation_of(db: &str, table: &str, ddl: &str, insert: &str) -> Relation {
    let slot = format!("{db}_slot");
    let cfg = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    let admin_url = cfg.env().into_iter().find(|(k, _)| *k == "DATABASE_URL").unwrap().1;
    let admin = connect(&admin_url).await;
    admin
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let url = admin_url.rsplit_once('/').map(|(b, _)| format!("{b}/{db}")).unwrap();
    let c = connect(&url).await;
    c.batch_execute(&format!("{ddl}; CREATE PUBLICATION p FOR TABLE {table}"))
        .await
        .unwrap();
    c.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot])
        .await
        .unwrap();
    c.batch_execute(insert).await.unwrap();
    let rows = c
        .query(
            "SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'p')",
            &[&slot],
        )
        .await
        .unwrap();
    c.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
    rows.iter()
        .find_map(|r| match decode(r.get::<_, &[u8]>(0)).unwrap() {
            Message::Relation(rel) => Some(rel),
            _ => None,
        })
        .expect("a Relation message")
}

#[tokio::test]
async fn every_supported_type_maps_and_the_schema_is_valid_avro() {
    let rel = relation_of(
        "pgavro_types",
        "every_type",
        "CREATE TABLE every_type (
            id bigint PRIMARY KEY, b boolean, i2 smallint, i4 integer, f4 real, f8 double precision,
            amount numeric(12,3), anyn numeric, t text, vc varchar(20), ch char(4), d date, ts timestamp,
            tstz timestamptz, u uuid, j json, jb jsonb, raw bytea, tags text[], nums integer[], \"Odd Name\" text)",
        "INSERT INTO every_type (id) VALUES (1)",
    )
    .await;
    let value = pg_avro::row_schema("contrail.public.t", "Value", &rel, false).unwrap();
    let fields: Vec<(String, String)> = value["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let ty = match &f["type"] {
                serde_json::Value::Array(branches) => branches[1].to_string(),
                other => other.to_string(),
            };
            (f["name"].as_str().unwrap().to_string(), ty)
        })
        .collect();
    let expect = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(expect("id"), "\"long\"");
    assert_eq!(expect("b"), "\"boolean\"");
    assert_eq!(expect("i2"), "\"int\"");
    assert_eq!(expect("f4"), "\"float\"");
    assert_eq!(
        expect("amount"),
        r#"{"type":"bytes","logicalType":"decimal","precision":12,"scale":3}"#
    );
    assert_eq!(expect("anyn"), r#"{"type":"string","pg.type":"numeric"}"#);
    assert_eq!(expect("ch"), "\"string\"");
    assert_eq!(expect("d"), r#"{"type":"int","logicalType":"date"}"#);
    assert_eq!(
        expect("ts"),
        r#"{"type":"long","logicalType":"local-timestamp-micros"}"#
    );
    assert_eq!(expect("tstz"), r#"{"type":"long","logicalType":"timestamp-micros"}"#);
    assert_eq!(expect("u"), r#"{"type":"string","logicalType":"uuid"}"#);
    assert_eq!(expect("jb"), r#"{"type":"string","pg.type":"jsonb"}"#);
    assert_eq!(expect("raw"), "\"bytes\"");
    assert_eq!(expect("nums"), r#"{"type":"array","items":["null","int"]}"#);
    assert_eq!(expect("Odd_Name"), "\"string\"");
    assert_eq!(fields.len(), 21);

    schema::Schema::parse(&value).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, avro.schema; avro.schema.parse(sys.argv[1]); print('ok')",
            &value.to_string(),
        ])
        .output()
        .expect("python3-avro");
    assert!(
        out.status.success(),
        "Apache Avro refused the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_unsupported_type_is_refused_naming_table_and_column() {
    let rel = relation_of(
        "pgavro_unsupported",
        "places",
        "CREATE TABLE places (id integer PRIMARY KEY, spot point)",
        "INSERT INTO places VALUES (1, point(1, 2))",
    )
    .await;
    let err = pg_avro::row_schema("contrail.public.t", "Value", &rel, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("table public.places, column spot: point (oid 600) has no Avro mapping"),
        "{err}"
    );
}
