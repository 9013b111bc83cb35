//! `contrail produce --target kafka` against Apache Kafka and the schema
//! registry of the tests' own stack, read back with Confluent's own Python consumer and
//! AvroDeserializer: every record decodes, keys are the icao24, good records
//! pass every rule, and the dead-letter topic holds exactly the injected bad
//! rows, each with the rules it broke in its headers.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use flight_types::{FlightState, Validate};
use serde_json::Value;

fn number_before(text: &str, word: &str) -> u64 {
    let idx = text.find(word).unwrap_or_else(|| panic!("no {word:?} in {text}"));
    text[..idx].split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn kafka_mode_publishes_registry_encoded_records_and_dead_letters_the_bad_ones() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let topic = format!("produce-test-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("contrail-{topic}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("producer.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nseed = 7\nfleet = 50\n\n[target]\nkind = \"kafka\"\ntopic = \"{topic}\"\npartitions = 2\n\n[service]\nrate = 2000\nduration_seconds = 2\nmetrics_listen = \"\"\n"
        ),
    )
    .unwrap();
    let out = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_contrail"))
            .args([
                "--project-dir",
                project.to_str().unwrap(),
                "produce",
                "--config",
                config.to_str().unwrap(),
            ])
            .args(["--bad-percent", "10"]),
        common::COMMAND_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let produced = number_before(&stdout, " changes in");
    let acknowledged = number_before(&stdout, " records acknowledged");
    let dead_lettered = number_before(&stdout, " of them dead-lettered");
    let injected: u64 = stdout
        .split("bad rows injected: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split(", ")
        .map(|kv| kv.rsplit('=').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(acknowledged, produced, "{stdout}");
    assert_eq!(
        dead_lettered, injected,
        "exactly the injected rows are dead-lettered: {stdout}"
    );

    let bootstrap = common::stack_env("KAFKA_BOOTSTRAP_SERVERS");
    let registry = common::stack_env("SCHEMA_REGISTRY_URL");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_topics.py");
    let dlq = format!("{topic}.dlq");
    let read = Command::new(common::confluent_python())
        .arg(script)
        .args([&bootstrap, &registry, &topic, &dlq])
        .output()
        .expect("confluent-kafka's virtualenv (scripts/env.sh installs it)");
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let records: Vec<Value> = serde_json::from_slice(&read.stdout).unwrap();

    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let ctx = rules::EvalContext { now_ms };
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut partitions_by_key: HashMap<String, i64> = HashMap::new();
    for r in &records {
        let t = r["topic"].as_str().unwrap();
        *counts.entry(if t == topic { "main" } else { "dlq" }).or_default() += 1;
        let key = r["key"].as_str().expect("keys are Avro strings").to_string();
        // Per-key order needs one partition per key.
        let p = r["partition"].as_i64().unwrap();
        if t == topic {
            assert_eq!(
                *partitions_by_key.entry(key.clone()).or_insert(p),
                p,
                "key {key} on two partitions"
            );
        }
        if r["value"].is_null() {
            assert_eq!(t, topic, "tombstones only on the main topic");
            continue;
        }
        let state: FlightState = serde_json::from_value(r["value"].clone()).unwrap();
        assert_eq!(state.icao24, key);
        let broken: Vec<String> = state.validate(ctx).iter().map(|v| v.rule.to_string()).collect();
        if t == topic {
            assert!(broken.is_empty(), "{key} broke {broken:?}");
        } else {
            let header: Vec<&str> = r["headers"]["contrail.dlq.rules"]
                .as_str()
                .unwrap()
                .split(',')
                .collect();
            assert_eq!(header, broken, "{key}");
            assert_eq!(r["headers"]["contrail.dlq.stage"], "producer");
            assert!(r["headers"]["contrail.dlq.reason"].as_str().unwrap().contains("failed"));
        }
    }
    assert_eq!(counts.get("dlq").copied().unwrap_or(0), dead_lettered);
    assert_eq!(counts.get("main").copied().unwrap_or(0), produced - dead_lettered);
}
