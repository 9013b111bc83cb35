//! Helpers shared by the tests that run `contrail` stages against the local
//! stack: a database per test, a stage as a child process, and Confluent's
//! Python consumer to read topics back.
#![allow(dead_code)] // each test binary uses some of them

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_postgres::Client;

pub(crate) fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn stack_env(name: &str) -> String {
    let cfg = stack::StackConfig::for_tests(&project()).unwrap();
    cfg.env().into_iter().find(|(k, _)| *k == name).unwrap().1
}

pub(crate) fn confluent_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONFLUENT_PYTHON") {
        return p.into();
    }
    Path::new(&std::env::var("HOME").unwrap()).join(".cache/contrail/confluent-kafka-2.16.0/bin/python")
}

pub(crate) async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the local stack's PostgreSQL (run `contrail stack up`)");
    tokio::spawn(conn);
    client
}

/// A fresh database, slot, publication and topic prefix named `<base>_<pid>`:
/// topics and registry subjects outlive a database, so every run gets new ones.
pub(crate) struct TestDb {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) client: Client,
}

impl TestDb {
    pub(crate) async fn create(base: &str) -> TestDb {
        let name = format!("{base}_{}", std::process::id());
        let admin_url = stack_env("DATABASE_URL");
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let url = admin_url.rsplit_once('/').map(|(b, _)| format!("{b}/{name}")).unwrap();
        let client = connect(&url).await;
        TestDb { name, url, client }
    }

    /// A database whose table `t (id, name)` holds 40 rows, captured by a
    /// running `contrail cdc` (topic `<name>.public.t`), and a warehouse
    /// session in its Snowflake database, schema `CDC`.
    pub(crate) async fn small_table_captured(base: &str) -> (TestDb, Stage, snowflake::Client) {
        let db = TestDb::create(base).await;
        db.client
            .batch_execute(
                "CREATE TABLE t (id int PRIMARY KEY, name text);
                 ALTER TABLE t REPLICA IDENTITY FULL;
                 INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 40) g;",
            )
            .await
            .unwrap();
        let mut cdc = Stage::start(&db, &config(&db, &["public.t"], ""));
        db.wait_captured(&mut cdc).await;
        let sf = warehouse(&db.name.to_uppercase(), "CDC").await;
        (db, cdc, sf)
    }

    /// Waits until everything written is captured, stops the stage
    /// (which must exit cleanly), and drops the slot and the database.
    pub(crate) async fn finish(&self, mut stage: Stage) {
        self.wait_captured(&mut stage).await;
        let (ok, log) = stage.stop();
        assert!(ok, "{log}");
        self.drop_slot().await;
    }

    /// Drops the slot (it would hold WAL) and the database. On a
    /// connection of its own: the test's may not have survived a restart.
    pub(crate) async fn drop_slot(&self) {
        connect(&self.url)
            .await
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .await
            .unwrap();
        let admin = connect(&stack_env("DATABASE_URL")).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }

    /// Waits until the stage has finished its snapshot and the slot has
    /// confirmed everything written so far. (A new slot starts past earlier
    /// writes: those travel in the snapshot.)
    pub(crate) async fn wait_captured(&self, stage: &mut Stage) {
        let target: String = self
            .client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let row = self
                .client
                .query_opt(
                    "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
                    &[&target, &self.name],
                )
                .await
                .unwrap();
            if row.is_some_and(|r| r.get::<_, Option<bool>>(0) == Some(true)) {
                let snapshotted = self
                    .client
                    .query_opt(
                        "SELECT 1 FROM pg_tables WHERE tablename = 'contrail_cdc_state'
                         AND EXISTS (SELECT 1 FROM contrail_cdc_state WHERE slot_name = $1)",
                        &[&self.name],
                    )
                    .await;
                if snapshotted.is_ok_and(|r| r.is_some()) {
                    return;
                }
            }
            stage.assert_running();
            assert!(
                Instant::now() < deadline,
                "the stage did not confirm {target} in time:\n{}",
                stage.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A running `contrail cdc`.
pub(crate) struct Stage {
    pub(crate) child: Child,
    log: PathBuf,
}

impl Stage {
    /// `contrail cdc` with this configuration.
    pub(crate) fn start(db: &TestDb, config: &str) -> Stage {
        Stage::command(db, "cdc", config)
    }

    /// `contrail <command> --config <file holding config>`.
    pub(crate) fn command(db: &TestDb, command: &str, config: &str) -> Stage {
        let dir = std::env::temp_dir().join(format!("contrail-{command}-{}", db.name));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{command}.toml"));
        std::fs::write(&file, config).unwrap();
        // One log per start, numbered.
        let log = dir.join(format!("stage-{}.log", std::fs::read_dir(&dir).unwrap().count()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_contrail"))
            .args([
                "--project-dir",
                project().to_str().unwrap(),
                command,
                "--config",
                file.to_str().unwrap(),
            ])
            .env("DATABASE_URL", &db.url)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Stage { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the stage exited ({status}):\n{}", self.log());
        }
    }

    /// Waits (up to 60 s) for the stage to exit on its own: whether it
    /// succeeded, and its log.
    pub(crate) fn wait_exit(mut self) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.success(), self.log());
            }
            assert!(Instant::now() < deadline, "the stage kept running:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, then (within 60 s) the exit status and the log.
    pub(crate) fn stop(self) -> (bool, String) {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.wait_exit()
    }

    pub(crate) fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A stage outlives nothing: a test that fails (panics) must not leave it
/// running against the shared stack.
impl Drop for Stage {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn config(db: &TestDb, tables: &[&str], extra: &str) -> String {
    let tables: Vec<String> = tables.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[source]\ntables = [{}]\nslot = \"{n}\"\npublication = \"{n}\"\nheartbeat_seconds = 1\n\n\
         [kafka]\ntopic_prefix = \"{n}\"\ndead_letter_topic = \"{n}.dlq\"\npartitions = 2\n\n{extra}\n\
         [service]\nmetrics_listen = \"\"\n",
        tables.join(", "),
        n = db.name
    )
}

/// `contrail cdc` for `public.flight_state` under the FlightState contract,
/// named after the test database.
pub(crate) fn flight_cdc_config(db: &TestDb) -> String {
    config(
        db,
        &["public.flight_state"],
        "[contracts]\n\"public.flight_state\" = \"io.contrail.flight.FlightState\"\n",
    )
}

/// `contrail sink` for the topic of [`flight_cdc_config`], into the
/// Snowflake database named after the test database, schema `FLIGHTS`.
pub(crate) fn flight_sink_config(db: &TestDb) -> String {
    let n = &db.name;
    format!(
        "[source]\ntopics = [\"{n}.public.flight_state\"]\ngroup_id = \"{n}\"\ndead_letter_topic = \"{n}.sink.dlq\"\n\n\
         [snowflake]\ndatabase = \"{N}\"\nschema = \"FLIGHTS\"\ncreate_schema = true\n\n\
         [batch]\nmax_rows = 2000\nmax_ms = 100\n\n[service]\nmetrics_listen = \"\"\n",
        N = n.to_uppercase()
    )
}

/// The longest a command a test runs to completion may take: a hang fails
/// the test with what the command printed, instead of stalling the run.
pub(crate) const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// Runs `cmd` to completion, killing it (and failing the test with its
/// output so far) when it outlives `limit`.
pub(crate) fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "{cmd:?} ran for over {} s and was killed:\n{}{}",
                limit.as_secs(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Runs `cmd` to completion; it must succeed. Its stdout and stderr.
pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let out = output_within(cmd, COMMAND_LIMIT);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The sink's stored next offsets in `database`.`schema`, summed: the
/// records it has consumed (`None` while it has no positions table or rows).
pub(crate) async fn stored_offsets_sum(sf: &snowflake::Client, database: &str, schema: &str) -> Option<i64> {
    sf.query(
        &format!("SELECT SUM(\"NEXT_OFFSET\") AS N FROM {database}.{schema}.\"_CONTRAIL_SINK_OFFSETS\""),
        &[],
    )
    .await
    .ok()?
    .get(0, "N")?
    .parse()
    .ok()
}

/// `contrail sink` for the topic of [`TestDb::small_table_captured`],
/// into the test database's `CDC` schema, in small batches.
pub(crate) fn small_table_sink_config(db: &TestDb) -> String {
    format!(
        "[source]\ntopics = [\"{n}.public.t\"]\ngroup_id = \"{n}\"\ndead_letter_topic = \"{n}.sink.dlq\"\n\n\
         [snowflake]\ndatabase = \"{N}\"\nschema = \"CDC\"\ncreate_schema = true\n\n[batch]\nmax_rows = 500\nmax_ms = 100\n\n\
         [service]\nmetrics_listen = \"\"\n",
        n = db.name,
        N = db.name.to_uppercase()
    )
}

/// Waits until the sink's stored positions in `database`.`CDC` sum to `n`
/// records, with the sink still running.
pub(crate) async fn wait_stored(sf: &snowflake::Client, database: &str, n: i64, sink: &mut Stage) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while stored_offsets_sum(sf, database, "CDC").await != Some(n) {
        sink.assert_running();
        assert!(
            Instant::now() < deadline,
            "positions never reached {n}:\n{}",
            sink.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A session on the local stack's Snowflake, in `database`.`schema`.
pub(crate) async fn warehouse(database: &str, schema: &str) -> snowflake::Client {
    let url = reqwest::Url::parse(&stack_env("SNOWFLAKE_URL")).unwrap();
    snowflake::Client::connect(snowflake::SnowflakeConfig {
        url: format!("{}://{}:{}", url.scheme(), url.host_str().unwrap(), url.port().unwrap()),
        account: "local".into(),
        user: url.username().into(),
        auth: snowflake::Auth::Password(changes::Secret::new(url.password().unwrap_or_default())),
        warehouse: None,
        role: None,
        database: Some(database.into()),
        schema: Some(schema.into()),
        ca: None,
    })
    .await
    .unwrap()
}

/// Every record of `topics`, decoded by Confluent's deserializer.
pub(crate) fn read(topics: &[String]) -> Vec<Value> {
    let script = project().join("crates/contrail/tests/read_topics.py");
    let out = Command::new(confluent_python())
        .arg(script)
        .arg("--iso")
        .arg(stack_env("KAFKA_BOOTSTRAP_SERVERS"))
        .arg(stack_env("SCHEMA_REGISTRY_URL"))
        .args(topics)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Values (not tombstones) in (partition, offset) order per key: the order a consumer sees per key.
pub(crate) fn events(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| !r["value"].is_null()).collect()
}
