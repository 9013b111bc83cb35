//! Generated FlightState codec against Apache Avro's Python implementation
//! (Debian's python3-avro): bytes Contrail writes decode there to the same
//! values, and bytes written there decode in Contrail to the same values.

use std::path::Path;
use std::process::Command;

use avro_codec::AvroRecord;
use flight_types::FlightState;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const PYTHON: &str = "/usr/bin/python3";
const RECORDS: usize = 300;

/// Values Python's datetime and JSON can carry: timestamps within 1970–2100,
/// finite doubles.
fn representable(mut s: FlightState) -> FlightState {
    const MAX_MS: i64 = 4_102_444_800_000;
    let finite = |v: Option<f64>| v.map(|x| if x.is_finite() { x } else { 0.0 });
    s.last_contact = s.last_contact.rem_euclid(MAX_MS);
    s.time_position = s.time_position.map(|t| t.rem_euclid(MAX_MS));
    s.longitude = finite(s.longitude);
    s.latitude = finite(s.latitude);
    s.baro_altitude = finite(s.baro_altitude);
    s.velocity = finite(s.velocity);
    s.true_track = finite(s.true_track);
    s.vertical_rate = finite(s.vertical_rate);
    s.geo_altitude = finite(s.geo_altitude);
    s
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

#[test]
fn flight_state_bytes_cross_with_apache_avro_python() {
    // A fixed seed: the same records every run.
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = FlightState::arbitrary().prop_map(representable);
    let mut states: Vec<FlightState> = (0..RECORDS)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    states.push(flight_types::sample_flight_state());

    let records: Vec<serde_json::Value> = states
        .iter()
        .map(|s| serde_json::json!({"json": s, "avro_hex": hex(&s.to_avro())}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.json");
    std::fs::write(
        &input,
        serde_json::json!({"schema": FlightState::SCHEMA, "records": records}).to_string(),
    )
    .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/avro_interop.py");
    let out = Command::new(PYTHON)
        .arg(script)
        .arg(&input)
        .output()
        .expect("running /usr/bin/python3 (install Debian's python3-avro)");
    assert!(
        out.status.success(),
        "Apache Avro (Python) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let mismatches = result["mismatches"].as_array().unwrap();
    assert!(
        mismatches.is_empty(),
        "Apache Avro decoded Contrail's bytes differently: {mismatches:#?}"
    );

    let encoded = result["encoded_hex"].as_array().unwrap();
    assert_eq!(encoded.len(), states.len());
    for (state, hex) in states.iter().zip(encoded) {
        let bytes = unhex(hex.as_str().unwrap());
        assert_eq!(&FlightState::from_avro(&bytes).unwrap(), state);
        assert_eq!(bytes, state.to_avro(), "both implementations write the same bytes");
    }
}
