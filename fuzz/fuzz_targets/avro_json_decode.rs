#![no_main]
//! Bytes decoded by a writer schema, as the sink decodes any topic's
//! records: an error or a value, never a panic, and never more memory than
//! the input can stand for. The first byte picks one of the schemas below
//! (each exercising a bound: forged block counts, nulls, recursion,
//! decimals, unions, maps); with a byte past them, the input carries its
//! own schema, a length byte then JSON, so the parser is fuzzed too.

use libfuzzer_sys::fuzz_target;

const SCHEMAS: &[&str] = &[
    r#"{"type":"array","items":{"type":"array","items":"null"}}"#,
    r#"{"type":"record","name":"L","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","L"]}]}"#,
    r#"{"type":"record","name":"D","fields":[
        {"name":"b","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":9}},
        {"name":"f","type":{"type":"fixed","name":"F","size":16,"logicalType":"decimal","precision":38,"scale":2}}]}"#,
    r#"{"type":"map","values":["null","string",{"type":"array","items":"double"}]}"#,
    r#"{"type":"record","name":"T","fields":[
        {"name":"d","type":{"type":"int","logicalType":"date"}},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"t","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
        {"name":"f","type":"float"}]}"#,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (schema, bytes) = match SCHEMAS.get(pick as usize) {
        Some(text) => (schema::Schema::parse_str(text).expect("a fixed schema parses"), rest),
        None => {
            let Some((&len, rest)) = rest.split_first() else { return };
            let (text, bytes) = rest.split_at((len as usize).min(rest.len()));
            let Ok(text) = std::str::from_utf8(text) else { return };
            let Ok(schema) = schema::Schema::parse_str(text) else {
                return;
            };
            (schema, bytes)
        }
    };
    let _ = avro_json::decode(&schema, bytes);
});
