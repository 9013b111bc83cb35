//! The tests never touch the user's stack. A project of the user's (a
//! directory with its own `.contrail/` and ports, as `./scripts/run.sh`
//! leaves it) runs `contrail run`; then the test suite's kind of work
//! happens on the tests' own stack with the same project, topic names,
//! slot and warehouse names: a `contrail run`, and a broker restart. The
//! user's topics, slot, registry subjects and sink positions are unchanged
//! by it, and a second `contrail run` in the user's project loads and
//! verifies, continuing from where the first left off.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use stack::{Service, Stack, StackConfig};

const TOPIC: &str = "contrail.public.flight_state";

/// A user's project with a stack of its own, stopped when dropped.
struct UserProject {
    dir: tempfile::TempDir,
    ports: Vec<(&'static str, String)>,
}

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl UserProject {
    /// The repository's schemas, subjects and connectors (with no metrics
    /// listeners, which a user's own pipeline may hold) in a new directory.
    fn new() -> UserProject {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::project();
        for sub in ["schemas", "snowflake", "registry/schemas", "connectors"] {
            copy_dir(&repo.join(sub), &dir.path().join(sub));
        }
        std::fs::copy(
            repo.join("registry/subjects.toml"),
            dir.path().join("registry/subjects.toml"),
        )
        .unwrap();
        // The stage configs only; `connectors/examples/` is a directory.
        let files = std::fs::read_dir(dir.path().join("connectors")).unwrap().flatten();
        for entry in files.filter(|e| e.file_type().is_ok_and(|t| t.is_file())) {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let quiet: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with("metrics_listen") {
                        "metrics_listen = \"\"".into()
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            std::fs::write(entry.path(), quiet.join("\n") + "\n").unwrap();
        }
        let names = stack::DEFAULT_PORTS.map(|(var, _)| var);
        let ports = names
            .into_iter()
            .zip(free_ports(names.len()).into_iter().map(|p| p.to_string()))
            .collect();
        UserProject { dir, ports }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The user's environment: this project's stack, none of the test stack's settings.
    fn env(&self, name: &str) -> Option<String> {
        if name == "CONTRAIL_STACK_DIR" {
            return None;
        }
        self.ports
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    }

    fn stack(&self) -> StackConfig {
        StackConfig::from_env(self.path(), &|name| self.env(name)).unwrap()
    }

    fn contrail(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_contrail"));
        cmd.arg("--project-dir").arg(self.path()).args(args);
        cmd.env_remove("CONTRAIL_STACK_DIR");
        for (k, v) in &self.ports {
            cmd.env(k, v);
        }
        common::output_within(&mut cmd, common::COMMAND_LIMIT)
    }
}

impl Drop for UserProject {
    fn drop(&mut self) {
        let _ = self.contrail(&["stack", "down"]);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `contrail run` for a few seconds; its report, which must say verified.
fn run(out: impl FnOnce(&[&str]) -> Output, report: &Path) -> Value {
    let report_arg = report.to_str().unwrap();
    let args = [
        "run",
        "--duration",
        "4",
        "--rate",
        "200",
        "--warmup",
        "1",
        "--report",
        report_arg,
    ];
    let out = out(&args);
    assert!(out.status.success(), "{}", text(&out));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(r["verified"], true, "{}", text(&out));
    assert_eq!(r["captured"], r["produced"], "{r}");
    let (captured, loaded, rejected) = (&r["captured"], &r["loaded"], &r["rejected"]);
    assert_eq!(
        captured.as_u64(),
        Some(loaded.as_u64().unwrap() + rejected.as_u64().unwrap()),
        "{r}"
    );
    assert!(loaded.as_u64().unwrap() > 0, "{r}");
    r
}

/// What the user's pipeline keeps between runs.
#[derive(Debug, PartialEq)]
struct Kept {
    watermarks: Vec<(i32, i64)>,
    positions: HashMap<i32, i64>,
    confirmed_lsn: String,
    subjects: Vec<String>,
}

async fn kept(cfg: &StackConfig) -> Kept {
    let env = |name: &str| cfg.env_value(name).unwrap();
    let kafka = kafka::KafkaConfig {
        bootstrap_servers: env("KAFKA_BOOTSTRAP_SERVERS"),
        client_id: "user-stack-test".into(),
        properties: Default::default(),
    };
    let mut watermarks = kafka::high_watermarks(&kafka, TOPIC).unwrap();
    watermarks.sort();
    let sf_url = reqwest::Url::parse(&env("SNOWFLAKE_URL")).unwrap();
    let sf = snowflake::Client::connect(snowflake::SnowflakeConfig {
        url: format!("http://127.0.0.1:{}", sf_url.port().unwrap()),
        account: "local".into(),
        user: sf_url.username().into(),
        auth: snowflake::Auth::Password(changes::Secret::new(sf_url.password().unwrap_or_default())),
        warehouse: None,
        role: None,
        database: Some("CONTRAIL".into()),
        schema: Some("FLIGHTS".into()),
        ca: None,
    })
    .await
    .unwrap();
    let positions = sink::stored_positions(&sf, "\"CONTRAIL\".\"FLIGHTS\"", TOPIC)
        .await
        .unwrap();
    let pg = common::connect(&env("DATABASE_URL")).await;
    let confirmed_lsn: String = pg
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'contrail'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let subjects = ureq::get(&format!("{}/subjects", env("SCHEMA_REGISTRY_URL")))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let mut subjects: Vec<String> = serde_json::from_str(&subjects).unwrap();
    subjects.sort();
    Kept {
        watermarks,
        positions,
        confirmed_lsn,
        subjects,
    }
}

fn test_stack() -> Stack {
    let mut cfg = StackConfig::for_tests(&common::project()).unwrap();
    cfg.contrail_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_contrail")));
    Stack::new(cfg)
}

#[tokio::test]
async fn the_users_pipeline_continues_after_the_tests_run_on_their_own_stack() {
    let user = UserProject::new();
    let up = user.contrail(&["stack", "up"]);
    assert!(up.status.success(), "{}", text(&up));
    let cfg = user.stack();
    assert_eq!(cfg.data_dir, user.path().join(".contrail"));
    let reports = user.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();

    run(|args| user.contrail(args), &reports.join("first.json"));
    let first = kept(&cfg).await;
    assert!(first.positions.values().sum::<i64>() > 0, "{first:?}");

    // The suite's kind of work, on its own stack, with the same project
    // files and therefore the same topic, slot and warehouse names.
    let on_test_stack = |args: &[&str]| {
        common::output_within(
            Command::new(env!("CARGO_BIN_EXE_contrail"))
                .arg("--project-dir")
                .arg(user.path())
                .args(args),
            common::COMMAND_LIMIT,
        )
    };
    run(on_test_stack, &reports.join("test-stack.json"));
    let tests = test_stack();
    tests.down(&[Service::Kafka]).unwrap();
    tests.up(&[Service::Kafka]).unwrap();
    assert_eq!(
        kept(&cfg).await,
        first,
        "the test stack's work changed the user's stack"
    );

    let second = run(|args| user.contrail(args), &reports.join("second.json"));
    let after = kept(&cfg).await;
    assert_eq!(first.watermarks.len(), after.watermarks.len());
    for ((p, before), (_, now)) in first.watermarks.iter().zip(&after.watermarks) {
        assert!(now >= before, "partition {p}: the topic restarted ({before} → {now})");
        let (stored_before, stored_now) = (first.positions.get(p), after.positions.get(p));
        assert!(
            stored_now >= stored_before,
            "partition {p}: sink position {stored_before:?} → {stored_now:?}"
        );
        assert!(
            stored_now <= Some(now),
            "partition {p}: position {stored_now:?} past the end {now}"
        );
    }
    let total = |k: &Kept| k.watermarks.iter().map(|(_, h)| h).sum::<i64>();
    assert!(total(&after) > total(&first), "{first:?} → {after:?}; {second}");
    assert_ne!(after.confirmed_lsn, first.confirmed_lsn);
    assert!(first.subjects.iter().all(|s| after.subjects.contains(s)), "{after:?}");
}
