//! `contrail run` against the local stack: producer, CDC stage and sink in
//! one process, its report checked against what it claims, and its
//! verification shown to catch a warehouse that differs from the source.

mod common;

use std::process::Command;

use common::{project, TestDb};
use serde_json::Value;

/// Configuration files naming everything after the test database, so runs
/// never share a slot, a topic, a consumer group or a Snowflake database.
fn configs(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        (
            "--producer-config",
            "[source]\nkind = \"simulator\"\nseed = 7\nfleet = 100\n\n[target]\nkind = \"postgres\"\nbatch_size = 200\n\n\
             [service]\nmetrics_listen = \"\"\n"
                .to_string(),
        ),
        ("--cdc-config", common::flight_cdc_config(db)),
        ("--sink-config", common::flight_sink_config(db)),
    ]
}

/// `contrail run` with these flags; its exit code, stdout and stderr, and the JSON report.
fn run(db: &TestDb, flags: &[&str]) -> (i32, String, String, Value) {
    run_with(db, flags, &[])
}

/// [`run`] with more environment variables.
fn run_with(db: &TestDb, flags: &[&str], env: &[(String, String)]) -> (i32, String, String, Value) {
    let dir = std::env::temp_dir().join(format!("contrail-run-{}", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_contrail"));
    cmd.args(["--project-dir", project().to_str().unwrap(), "run"])
        .args(flags)
        .arg("--report")
        .arg(&report)
        .env("DATABASE_URL", &db.url)
        .envs(env.iter().map(|(k, v)| (k, v)));
    for (flag, text) in configs(db) {
        let file = dir.join(format!("{}.toml", flag.trim_start_matches("--")));
        std::fs::write(&file, text).unwrap();
        cmd.arg(flag).arg(file);
    }
    let out = common::output_within(&mut cmd, common::COMMAND_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), stdout, stderr, json)
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

#[tokio::test]
async fn a_run_loads_every_change_rejects_exactly_the_bad_ones_and_verifies() {
    let db = TestDb::create("run_e2e").await;
    let (code, stdout, stderr, r) = run(
        &db,
        &[
            "--duration",
            "8",
            "--rate",
            "300",
            "--bad-percent",
            "3",
            "--warmup",
            "1",
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(r["verified"], true, "{stdout}");
    assert!(
        stdout.contains("verified   the warehouse equals the source"),
        "{stdout}"
    );
    // Both checks: the current state, and every change of the run counted.
    assert!(stdout.contains("accounted  every change of the run once"), "{stdout}");
    assert_eq!(r["accounting"]["ok"], true, "{stdout}");
    assert_eq!(
        r["accounting"]["changelog_rows"], r["accounting"]["changelog_distinct"],
        "{stdout}"
    );

    // Counts agree from stage to stage.
    let produced = n(&r["produced"]);
    assert!(produced >= 2000, "{r}");
    assert_eq!(
        n(&r["captured"]),
        produced,
        "every change written reached the CDC stage: {r}"
    );
    let injected: u64 = r["injected_bad"].as_object().unwrap().values().map(n).sum();
    assert!(injected > 0, "{r}");
    assert_eq!(
        n(&r["rejected"]),
        injected,
        "exactly the injected bad rows are rejected: {r}"
    );
    assert_eq!(
        n(&r["loaded"]),
        produced - injected,
        "every good change is loaded once: {r}"
    );
    assert!(n(&r["rejected_by_rule"]["icao24.pattern"]) > 0, "{r}");

    // Latency measured by querying the warehouse.
    assert!(n(&r["latency_changes"]) > 1000, "{r}");
    let l = &r["latency_ms"];
    let (p50, p99, max) = (
        l["p50"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{l}");
    assert!(r["throughput_per_s"].as_f64().unwrap() > 0.0);

    // The verification compared real rows, and the changelog holds each change once.
    let v = &r["verification"];
    assert!(n(&v["compared_rows"]) > 50, "{v}");
    assert_eq!(v["source_checksum"], v["warehouse_checksum"]);
    let database = db.name.to_uppercase();
    let sf = common::warehouse(&database, "FLIGHTS").await;
    let q = |sql: String| {
        let sf = &sf;
        async move { sf.query(&sql, &[]).await.unwrap() }
    };
    let counted = q(format!(
        "SELECT TO_VARCHAR(COUNT(*)), TO_VARCHAR(COUNT(DISTINCT \"_COMMIT_LSN\", \"_LSN\")) FROM {database}.FLIGHTS.FLIGHT_STATE_CHANGELOG WHERE \"_OP\" <> 'r'"
    ))
    .await;
    assert_eq!(
        counted.rows[0][0].as_deref(),
        Some((produced - injected).to_string().as_str())
    );
    assert_eq!(counted.rows[0][0], counted.rows[0][1]);

    // A warehouse that differs from the source is caught, and named.
    let key = q(format!(
        "SELECT \"ICAO24\" FROM {database}.FLIGHTS.FLIGHT_STATE ORDER BY \"ICAO24\" LIMIT 1"
    ))
    .await
    .rows[0][0]
        .clone()
        .unwrap();
    q(format!(
        "UPDATE {database}.FLIGHTS.FLIGHT_STATE_V1 SET \"ORIGIN_COUNTRY\" = 'Atlantis' WHERE \"ICAO24\" = '{key}'"
    ))
    .await;
    // One change at one per second: the tampered aircraft is not touched again.
    let (code, stdout, _, r) = run(
        &db,
        &["--duration", "1", "--rate", "1", "--warmup", "0", "--fleet", "100"],
    );
    assert_eq!(code, 1, "a failed verification exits 1:\n{stdout}");
    assert_eq!(r["verified"], false);
    assert!(stdout.contains("NOT VERIFIED"), "{stdout}");
    let differences = r["verification"]["differences"].to_string();
    assert!(
        differences.contains(&format!("key {key}: column origin_country is"))
            && differences.contains("\\\"Atlantis\\\" in the warehouse"),
        "{differences}"
    );

    // A run that cannot start still leaves a report that says so.
    let (code, _, stderr, r) = run(&db, &["--duration", "1", "--poll-ms", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(r["verified"], false);
    assert!(r["error"].as_str().unwrap().contains("--poll-ms"), "{r}");
    assert!(stderr.contains("--poll-ms"), "{stderr}");
    db.drop_slot().await;
}

/// The same pipeline on the secure stack: every Kafka client on the SASL_SSL
/// listener (SCRAM-SHA-512, the broker's certificate and name verified),
/// configured only through `KAFKA_PROPERTY_*` with the password by file,
/// every PostgreSQL connection (replication included) with
/// `sslmode=verify-full`, the registry over HTTPS as its writer (by file,
/// the stack's CA), and fakesnow over HTTPS with an encrypted key pair: it
/// loads and verifies, and no output holds a password.
#[tokio::test]
async fn a_secure_run_loads_verifies_and_logs_no_secret() {
    let db = TestDb::create("run_sasl").await;
    let mut secure = stack::StackConfig::for_tests(&project()).unwrap();
    secure.secure = true;
    let password = secure.tls().kafka_password().unwrap();
    let registry_user = secure.tls().registry_user_info(stack::tls::RegistryUser::Writer);
    let registry_password = std::fs::read_to_string(registry_user).unwrap();
    let registry_password = registry_password.trim().split_once(':').unwrap().1.to_string();
    // This test's own database, over TLS with the host name verified.
    let tls_url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url.replace("@127.0.0.1:", "@localhost:"),
        secure.tls().ca().display()
    );
    let mut env: Vec<_> = secure
        .secure_env()
        .into_iter()
        .filter(|(k, _)| k != "DATABASE_URL")
        .collect();
    env.push(("DATABASE_URL".into(), tls_url));
    env.push((
        "RUST_LOG".into(),
        "debug,hyper=info,h2=info,reqwest=info,tokio_postgres=info".into(),
    ));
    let (code, stdout, stderr, r) = run_with(&db, &["--duration", "4", "--rate", "200", "--warmup", "1"], &env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(r["verified"], true, "{stdout}");
    assert!(n(&r["loaded"]) > 0, "{r}");
    // The bootstrap address is the SASL_SSL listener, which speaks nothing
    // else: a run that loaded went through it.
    assert!(env
        .iter()
        .any(|(k, v)| k == "KAFKA_BOOTSTRAP_SERVERS" && v.ends_with(&secure.kafka_sasl_port.to_string())));
    // And the registry is its HTTPS listener, which requires the writer.
    let https = format!("https://localhost:{}", secure.registry_https_port);
    assert!(env.iter().any(|(k, v)| k == "SCHEMA_REGISTRY_URL" && *v == https));
    // fakesnow over HTTPS, logged into with the encrypted key.
    let https = format!("https://contrail@localhost:{}", secure.snowflake_https_port);
    assert!(env.iter().any(|(k, v)| k == "SNOWFLAKE_URL" && *v == https));
    let passphrase = std::fs::read_to_string(secure.tls().snowflake_passphrase_file()).unwrap();
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("report", &r.to_string())] {
        assert!(!text.contains(&password), "the Kafka password appears in {what}");
        assert!(
            !text.contains(&registry_password),
            "the registry password appears in {what}"
        );
        assert!(
            !text.contains(passphrase.trim()),
            "the key's passphrase appears in {what}"
        );
    }
    db.drop_slot().await;
}

/// Stages retry an unreachable broker for ever, as services should; a run
/// has an end, so it stops once its start timeout passes, and says why.
#[tokio::test]
async fn a_run_that_cannot_reach_kafka_stops_and_names_the_broker() {
    let db = TestDb::create("run_nokafka").await;
    // A port nothing listens on: the kernel handed it out and it was freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [("KAFKA_BOOTSTRAP_SERVERS".to_string(), format!("127.0.0.1:{port}"))];
    let (code, _, stderr, r) = run_with(&db, &["--duration", "1", "--start-timeout", "5"], &env);
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(r["verified"], false);
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("did not catch up within 5s"), "{error}");
    assert!(
        error.contains(&format!("127.0.0.1:{port}")),
        "the broker is named: {error}"
    );
    assert!(stderr.contains("--start-timeout"), "{stderr}");
    db.drop_slot().await;
}
