//! The compatibility checker against Apache Avro's own (Debian's
//! python3-avro), on a corpus of schema pairs covering fields added and
//! removed with and without defaults, promotions, enums with and without
//! defaults, union widening and narrowing, aliases, namespaces, nested and
//! recursive records, logical types and fixed sizes. Each pair is checked in
//! both directions, and against the expectation written in the corpus.

use std::path::Path;
use std::process::Command;

use schema::Schema;

const PYTHON: &str = "/usr/bin/python3";

#[test]
fn agrees_with_apache_avro_on_the_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let corpus_path = dir.join("compat_corpus.json");
    let corpus: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&corpus_path).unwrap()).unwrap();
    assert!(corpus.len() >= 30, "the corpus must hold at least 30 pairs");

    let out = Command::new(PYTHON)
        .arg(dir.join("avro_compat.py"))
        .arg(&corpus_path)
        .output()
        .expect("running /usr/bin/python3 (install Debian's python3-avro)");
    assert!(
        out.status.success(),
        "Apache Avro's checker failed (is python3-avro installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let referee: Vec<[bool; 2]> = serde_json::from_slice(&out.stdout).unwrap();

    let mut disagreements = Vec::new();
    for (pair, [avro_rw, avro_wr]) in corpus.iter().zip(referee) {
        let name = pair["name"].as_str().unwrap();
        let reader = Schema::parse(&pair["reader"]).unwrap();
        let writer = Schema::parse(&pair["writer"]).unwrap();
        let ours_rw = schema::check(&reader, &writer).is_empty();
        let ours_wr = schema::check(&writer, &reader).is_empty();
        let expected = pair["compatible"].as_bool().unwrap();
        if ours_rw != avro_rw || ours_wr != avro_wr || ours_rw != expected {
            disagreements.push(format!(
                "{name}: ours (r←w, w←r) = ({ours_rw}, {ours_wr}), Apache Avro = ({avro_rw}, {avro_wr}), expected r←w = {expected}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
