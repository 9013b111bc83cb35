//! The local stack against independent clients: `psql` for PostgreSQL,
//! Confluent's Python client for Kafka topics, Snowflake's Python connector for
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

/// Confluent's Python client (librdkafka, not the pipeline's rdkafka
/// build) as the independent Kafka client: `create TOPIC`, `list`,
/// `delete TOPIC`.
fn kafka_admin(cfg: &StackConfig, args: &[&str]) -> String {
    let script = r#"
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
op = sys.argv[2]
if op == "create":
    for f in admin.create_topics([NewTopic(sys.argv[3], 1, 1)]).values():
        f.result(30)
elif op == "delete":
    for f in admin.delete_topics([sys.argv[3]]).values():
        f.result(30)
elif op == "missing":
    # A metadata request for a topic that does not exist must not create it.
    t = admin.list_topics(topic=sys.argv[3], timeout=30).topics[sys.argv[3]]
    print(t.error.name() if t.error else "exists")
    sys.exit(0)
print("\n".join(sorted(admin.list_topics(timeout=30).topics)))
"#;
    let python = std::env::var_os("CONFLUENT_PYTHON").expect("CONFLUENT_PYTHON (scripts/env.sh sets it)");
    run(Command::new(python)
        .args(["-c", script, &env_value(cfg, "KAFKA_BOOTSTRAP_SERVERS")])
        .args(args))
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
    let mut cfg = StackConfig::for_tests(&project).unwrap();
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

    // Kafka: the broker the stack names, and topics only when created.
    let kafka = stack
        .status()
        .into_iter()
        .find(|s| s.service == Service::Kafka)
        .unwrap();
    assert!(kafka.to_string().starts_with("kafka (apache 4."), "{kafka}");
    let topic = format!("stack-probe-{}", std::process::id());
    assert_eq!(kafka_admin(&cfg, &["missing", &topic]), "UNKNOWN_TOPIC_OR_PART");
    assert_eq!(kafka_admin(&cfg, &["missing", &topic]), "UNKNOWN_TOPIC_OR_PART");
    assert!(kafka_admin(&cfg, &["create", &topic]).lines().any(|t| t == topic));

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
    assert!(kafka_admin(&cfg, &["list"]).lines().any(|t| t == topic));
    assert_eq!(snowflake(&cfg, &["SELECT X FROM STACK_PROBE.PUBLIC.T"]), "[(42,)]");
    let (status, latest) = registry(&cfg, "GET", &format!("/subjects/{subject}/versions/latest"), None);
    assert_eq!((status, latest["id"].clone()), (200, id));
    registry(&cfg, "DELETE", &format!("/subjects/{subject}"), None);
    registry(&cfg, "DELETE", &format!("/subjects/{subject}?permanent=true"), None);
    psql(&cfg, "DROP TABLE stack_probe");
    kafka_admin(&cfg, &["delete", &topic]);
}
