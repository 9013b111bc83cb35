//! The client against the local stack's fakesnow server: login, bound
//! values, the FLATTEN(PARSE_JSON(?)) bulk path the sink uses, Arrow and
//! JSON results, and SQL errors.

use std::path::Path;

use snowflake::{Auth, Bind, Client, SnowflakeConfig, SnowflakeError};

async fn client(database: &str) -> Client {
    client_with(database, None).await
}

/// A session as `auth`, or as the stack's URL says.
async fn client_with(database: &str, auth: Option<Auth>) -> Client {
    let cfg = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    let url = cfg.env().into_iter().find(|(k, _)| *k == "SNOWFLAKE_URL").unwrap().1;
    let parsed = reqwest::Url::parse(&url).unwrap();
    let c = Client::connect(SnowflakeConfig {
        url: format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap(),
            parsed.port().unwrap()
        ),
        account: "local".into(),
        user: parsed.username().into(),
        auth: auth.unwrap_or_else(|| Auth::Password(changes::Secret::new(parsed.password().unwrap_or_default()))),
        warehouse: None,
        role: None,
        database: Some(database.into()),
        schema: Some("PUBLIC".into()),
        ca: None,
    })
    .await
    .expect("the local stack's fakesnow (run `contrail stack up`)");
    // Snowflake creates PUBLIC with a database; fakesnow does not.
    c.execute_all(&[
        &format!("CREATE DATABASE IF NOT EXISTS {database}"),
        &format!("CREATE SCHEMA IF NOT EXISTS {database}.PUBLIC"),
    ])
    .await
    .unwrap();
    c
}

#[tokio::test]
async fn bound_values_round_trip_through_both_result_formats() {
    let c = client("SF_CLIENT_TEST").await;
    c.query(
        "CREATE OR REPLACE TABLE SF_CLIENT_TEST.PUBLIC.T (ID NUMBER(38,0), NAME TEXT, AMOUNT NUMBER(10,2), TS TIMESTAMP_NTZ, OK BOOLEAN, F FLOAT)",
        &[],
    )
    .await
    .unwrap();
    let inserted = c
        .query(
            "INSERT INTO SF_CLIENT_TEST.PUBLIC.T (ID, NAME, AMOUNT, TS, OK, F) VALUES (?, ?, ?, ?, ?, ?)",
            &[
                Bind::Int(1),
                Bind::Text("it's \"quoted\"; DROP TABLE T".into()),
                Bind::Text("12.50".into()),
                Bind::Text("2024-02-29 12:34:56.789".into()),
                Bind::Bool(true),
                Bind::Real(0.25),
            ],
        )
        .await
        .unwrap();
    // DML answers in JSON: the row count.
    assert_eq!(inserted.rows, vec![vec![Some("1".to_string())]]);
    // The sink's bulk path: a whole batch bound as one JSON array.
    let batch = serde_json::json!([{"id": 2, "name": "b"}, {"id": 3, "name": null}]).to_string();
    c.query(
        "INSERT INTO SF_CLIENT_TEST.PUBLIC.T (ID, NAME) SELECT value:id::NUMBER, value:name::TEXT FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))",
        &[Bind::Text(batch)],
    )
    .await
    .unwrap();
    // Queries answer in Arrow.
    let r = c
        .query(
            "SELECT ID, NAME, AMOUNT, OK, F FROM SF_CLIENT_TEST.PUBLIC.T ORDER BY ID",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 3);
    assert_eq!(r.get(0, "id"), Some("1"));
    assert_eq!(r.get(0, "NAME"), Some("it's \"quoted\"; DROP TABLE T"));
    assert_eq!(r.get(0, "AMOUNT"), Some("12.50"));
    assert_eq!(r.get(0, "OK"), Some("true"));
    assert_eq!(r.get(0, "F"), Some("0.25"));
    assert_eq!((r.get(2, "ID"), r.get(2, "NAME")), (Some("3"), None));
    // Timestamps arrive as (epoch, fraction) structs. fakesnow 0.12.1 marks
    // the struct's children non-nullable yet leaves NULL rows in them, which
    // Arrow validation refuses, so this reads the non-null ones.
    let r = c
        .query("SELECT TS FROM SF_CLIENT_TEST.PUBLIC.T WHERE TS IS NOT NULL", &[])
        .await
        .unwrap();
    assert_eq!(r.get(0, "TS"), Some("1709210096.789000000"));
}

#[tokio::test]
async fn a_sql_error_is_not_transient_and_names_the_statement() {
    let c = client("SF_CLIENT_TEST").await;
    let e = c
        .query("SELECT * FROM SF_CLIENT_TEST.PUBLIC.NO_SUCH_TABLE", &[])
        .await
        .unwrap_err();
    assert!(matches!(e, SnowflakeError::Sql { .. }), "{e}");
    assert!(!e.is_transient());
    let text = e.to_string();
    assert!(text.contains("NO_SUCH_TABLE") && text.contains("in: SELECT"), "{text}");
}

/// fakesnow does not check credentials; this shows the key-pair login
/// request (AUTHENTICATOR = SNOWFLAKE_JWT, TOKEN) is one a Snowflake server
/// accepts in form. The token itself is checked by OpenSSL in `keypair.rs`.
#[tokio::test]
async fn a_key_pair_login_opens_a_session() {
    let dir = std::env::temp_dir().join(format!("contrail-fakesnow-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("rsa_key.p8");
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out {}",
            key.display()
        ))
        .status()
        .unwrap();
    assert!(ok.success());
    let pair = snowflake::keypair::KeyPair::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let c = client_with("KEYPAIR_LOGIN", Some(Auth::key_pair(pair))).await;
    let r = c
        .query("SELECT ? AS X", &[Bind::Text("signed in".into())])
        .await
        .unwrap();
    assert_eq!(r.get(0, "X"), Some("signed in"));
}
