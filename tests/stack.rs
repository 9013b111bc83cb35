//! The local stack against independent clients: `psql` for PostgreSQL,
//! Tansu's own client for Kafka topics, Snowflake's Python connector for
//! fakesnow, and plain HTTP for the schema registry. Checks that `up` is idempotent, that every service answers at
//! the address `contrail stack env` gives, and that data survives a restart
//! of the whole stack (the storage is durable, not in memory).
//!
//! One test function: it restarts the services, so nothing else in this
//! binary may use them at the same time.

use std::path::Path;
use std::process::Command;

use stack::{Service, ServiceState, Stack, StackConfig};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn env_value(cfg: &StackConfig, name: &str) -> String {
    cfg.env().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v).unwrap()
}

fn psql(cfg: &StackConfig, sql: &str) -> String {
    run(Command::new("psql")
        .arg(env_value(cfg, "DATABASE_URL"))
        .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql]))
}

fn tansu(cfg: &StackConfig, args: &[&str]) -> String {
    let broker = format!("tcp://{}", env_value(cfg, "KAFKA_BOOTSTRAP_SERVERS"));
    let home = std::env::var("HOME").unwrap();
    let bin = Path::new(&home).join(".cargo/bin/tansu");
    run(Command::new(bin).args(args).args(["--broker", &broker]))
}

/// Runs SQL through Snowflake's own Python connector, logging in with the
/// credentials of SNOWFLAKE_URL. The session names its database, as the sink
/// does (fakesnow only reopens a persisted database that a session names).
fn snowflake(cfg: &StackConfig, sql: &[&str]) -> String {
    let url = env_value(cfg, "SNOWFLAKE_URL");
    let script = r#"
import sys, urllib.parse, snowflake.connector
u = urllib.parse.urlparse(sys.argv[1])
conn = snowflake.connector.connect(user=u.username, password=u.password, account="local",
    database="STACK_PROBE", host=u.hostname, port=u.port, protocol=u.scheme)
cur = conn.cursor()
for stmt in sys.argv[2:]:
    rows = cur.execute(stmt).fetchall()
print(rows)
"#;
    run(Command::new(cfg.fakesnow_python()).args(["-c", script, &url]).args(sql))
}

/// The `contrail` binary next to this test's executable (target/debug/).
fn contrail_exe() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap();
    let bin = debug.join("contrail");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p contrail`",
        bin.display()
    );
    bin
}

fn registry(cfg: &StackConfig, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", env_value(cfg, "SCHEMA_REGISTRY_URL"));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut resp = match method {
        "GET" => agent.get(&url).call().unwrap(),
        "DELETE" => agent.delete(&url).call().unwrap(),
        _ => agent
            .post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send(body.unwrap_or_default())
            .unwrap(),
    };
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap(),
    )
}

fn all_healthy(stack: &Stack) {
    for s in stack.status() {
        assert_eq!(s.state, ServiceState::Healthy, "{s}");
    }
}

#[test]
fn stack_serves_each_service_and_keeps_data_across_restarts() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cfg = StackConfig::for_project(&project).unwrap();
    cfg.contrail_exe = Some(contrail_exe());
    let stack = Stack::new(cfg.clone());
    stack.up(&Service::ALL).unwrap();
    all_healthy(&stack);
    // Idempotent: a second `up` finds everything running.
    stack.up(&Service::ALL).unwrap();
    all_healthy(&stack);

    // PostgreSQL: logical decoding is on and the pipeline role may replicate.
    assert_eq!(psql(&cfg, "SHOW wal_level"), "logical");
    assert_eq!(
        psql(&cfg, "SELECT rolreplication FROM pg_roles WHERE rolname = current_user"),
        "t"
    );
    psql(&cfg, "DROP TABLE IF EXISTS stack_probe; CREATE TABLE stack_probe (id int PRIMARY KEY); INSERT INTO stack_probe VALUES (1), (2)");

    // Kafka: topics are created explicitly (Tansu does not auto-create them).
    let topic = format!("stack-probe-{}", std::process::id());
    tansu(&cfg, &["topic", "create", &topic, "--partitions", "1"]);
    assert!(tansu(&cfg, &["topic", "list"]).contains(&topic));

    // Snowflake: log in and keep a table.
    snowflake(
        &cfg,
        &[
            "CREATE DATABASE IF NOT EXISTS STACK_PROBE",
            // Snowflake creates PUBLIC with the database; fakesnow does not.
            "CREATE SCHEMA IF NOT EXISTS STACK_PROBE.PUBLIC",
            "CREATE OR REPLACE TABLE STACK_PROBE.PUBLIC.T (X INT)",
            "INSERT INTO STACK_PROBE.PUBLIC.T VALUES (42)",
        ],
    );

    // The schema registry keeps its state in PostgreSQL.
    let subject = format!("stack-probe-{}-value", std::process::id());
    let schema =
        serde_json::json!({"schema": r#"{"type":"record","name":"Probe","fields":[{"name":"a","type":"int"}]}"#})
            .to_string();
    let (status, body) = registry(&cfg, "POST", &format!("/subjects/{subject}/versions"), Some(&schema));
    assert_eq!(status, 200, "{body}");
    let id = body["id"].clone();

    // Restart everything: the data is on disk.
    let stopped = stack.down(&Service::ALL).unwrap();
    assert!(stopped.iter().all(|s| s.state == ServiceState::Stopped), "{stopped:?}");
    stack.up(&Service::ALL).unwrap();
    all_healthy(&stack);
    assert_eq!(psql(&cfg, "SELECT count(*) FROM stack_probe"), "2");
    assert!(tansu(&cfg, &["topic", "list"]).contains(&topic));
    assert_eq!(snowflake(&cfg, &["SELECT X FROM STACK_PROBE.PUBLIC.T"]), "[(42,)]");
    let (status, latest) = registry(&cfg, "GET", &format!("/subjects/{subject}/versions/latest"), None);
    assert_eq!((status, latest["id"].clone()), (200, id));
    registry(&cfg, "DELETE", &format!("/subjects/{subject}"), None);
    registry(&cfg, "DELETE", &format!("/subjects/{subject}?permanent=true"), None);
    psql(&cfg, "DROP TABLE stack_probe");
    tansu(&cfg, &["topic", "delete", &topic]);
}
