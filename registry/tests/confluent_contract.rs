//! Contract test with Confluent's own Python client (confluent-kafka's
//! SchemaRegistryClient, AvroSerializer and AvroDeserializer) against this
//! registry: registration, lookup, compatibility and config through their
//! client; bytes Contrail frames decode with Confluent's deserializer, bytes
//! Confluent's serializer writes decode with Contrail's generated types; an
//! incompatible schema is refused with 409 and a message naming the field.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use avro_codec::AvroRecord;
use common::*;
use flight_types::FlightState;
use serde_json::{json, Value};

/// The Python of the virtualenv that scripts/env.sh installs confluent-kafka into.
fn confluent_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONFLUENT_PYTHON") {
        return p.into();
    }
    let home = std::env::var("HOME").unwrap();
    Path::new(&home).join(".cache/contrail/confluent-kafka-2.16.0/bin/python")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn samples() -> Vec<FlightState> {
    let base = flight_types::sample_flight_state();
    vec![
        base.clone(),
        FlightState {
            callsign: None,
            time_position: None,
            longitude: None,
            latitude: None,
            sensors: Some(vec![1, -2, 3]),
            squawk: None,
            on_ground: true,
            position_source: flight_types::PositionSource::Mlat,
            category: flight_types::AircraftCategory::Rotorcraft,
            ..base
        },
    ]
}

#[test]
fn confluent_python_client_and_contrail_interoperate() {
    let r = registry("confluent_contract");
    let u = &r.url;
    let avsc = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/flights.state-value.avsc");
    let schema_text = std::fs::read_to_string(&avsc).unwrap();

    // Contrail registers and frames its own records.
    let (status, body) = register(u, "flights-rs-value", &schema_text);
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_u64().unwrap() as u32;
    let records: Vec<Value> = samples()
        .iter()
        .map(|s| {
            let mut frame = Vec::new();
            wire::encode_into(&mut frame, id, &s.to_avro());
            json!({"json": s, "frame_hex": hex(&frame)})
        })
        .collect();
    let dir = tempfile_dir();
    let frames = dir.join("frames.json");
    std::fs::write(
        &frames,
        json!({"subject": "flights-rs-value", "records": records}).to_string(),
    )
    .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/confluent_contract.py");
    let out = Command::new(confluent_python())
        .arg(script)
        .arg(u)
        .arg(&avsc)
        .arg(&frames)
        .output()
        .expect("confluent-kafka's virtualenv (scripts/env.sh installs it)");
    assert!(
        out.status.success(),
        "Confluent's client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(
        report["decoded"],
        json!([true, true]),
        "Confluent's deserializer read Contrail's bytes"
    );
    let reg = &report["registration"];
    // The same schema under a second subject shares the id.
    assert_eq!(reg["id"], json!(id));
    assert_eq!(reg["idempotent"], true);
    assert_eq!(
        (reg["latest_version"].clone(), reg["latest_id"].clone()),
        (json!(1), json!(id))
    );
    assert_eq!(reg["lookup_version"], 1);
    assert_eq!(reg["schema_by_id_matches"], true);
    assert_eq!(reg["subjects"], json!(["flights-py-value", "flights-rs-value"]));
    assert_eq!(reg["versions"], json!([1]));

    let compat = &report["compatibility"];
    assert_eq!(compat["compatible"], true);
    assert_eq!(compat["incompatible"], false);
    assert_eq!(compat["global_level"], "BACKWARD");
    assert_eq!(compat["subject_level"], "FULL");

    let refusal = &report["refusal"];
    assert_eq!(
        (
            refusal["refused"].clone(),
            refusal["status"].clone(),
            refusal["code"].clone()
        ),
        (json!(true), json!(409), json!(409))
    );
    let message = refusal["message"].as_str().unwrap();
    assert!(message.contains("FlightState.registration"), "{message}");

    // Confluent's serializer's bytes, read by Contrail.
    let serialized = report["serialized_hex"].as_array().unwrap();
    for (expected, hex) in samples().iter().zip(serialized) {
        let bytes = unhex(hex.as_str().unwrap());
        let frame = wire::decode(&bytes).unwrap();
        assert_eq!(frame.schema_id, id);
        assert_eq!(&FlightState::from_avro(frame.body).unwrap(), expected);
    }
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("contrail-confluent-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
