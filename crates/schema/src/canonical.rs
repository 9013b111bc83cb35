//! Avro's Parsing Canonical Form and its CRC-64-AVRO (Rabin) fingerprint.
//!
//! The canonical form drops everything that does not affect how data is read
//! (docs, aliases, defaults, logical types, custom properties), so two schemas
//! with the same canonical form read and write the same bytes.

use std::collections::HashSet;
use std::fmt::Write;

use crate::model::{Named, Schema, Type};

/// The Parsing Canonical Form of `schema`, as the Avro specification defines it.
pub fn canonical_form(schema: &Schema) -> String {
    let mut out = String::new();
    let mut seen = HashSet::new();
    write_type(schema, &schema.root, &mut seen, &mut out);
    out
}

fn write_type(schema: &Schema, ty: &Type, seen: &mut HashSet<String>, out: &mut String) {
    match ty {
        Type::Primitive { kind, .. } => {
            let _ = write!(out, "\"{}\"", kind.name());
        }
        Type::Array(items) => {
            out.push_str("{\"type\":\"array\",\"items\":");
            write_type(schema, items, seen, out);
            out.push('}');
        }
        Type::Map(values) => {
            out.push_str("{\"type\":\"map\",\"values\":");
            write_type(schema, values, seen, out);
            out.push('}');
        }
        Type::Union(branches) => {
            out.push('[');
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_type(schema, b, seen, out);
            }
            out.push(']');
        }
        Type::Named(full) => {
            if !seen.insert(full.clone()) {
                out.push_str(&json_string(full));
                return;
            }
            let Some(named) = schema.lookup(full) else {
                out.push_str(&json_string(full));
                return;
            };
            let _ = write!(out, "{{\"name\":{}", json_string(full));
            match named {
                Named::Record(r) => {
                    let kind = if r.is_error { "error" } else { "record" };
                    let _ = write!(out, ",\"type\":\"{kind}\",\"fields\":[");
                    for (i, f) in r.fields.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{{\"name\":{},\"type\":", json_string(&f.name));
                        write_type(schema, &f.ty, seen, out);
                        out.push('}');
                    }
                    out.push(']');
                }
                Named::Enum(e) => {
                    out.push_str(",\"type\":\"enum\",\"symbols\":[");
                    let symbols: Vec<String> = e.symbols.iter().map(|s| json_string(s)).collect();
                    out.push_str(&symbols.join(","));
                    out.push(']');
                }
                Named::Fixed(f) => {
                    let _ = write!(out, ",\"type\":\"fixed\",\"size\":{}", f.size);
                }
            }
            out.push('}');
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The form the registry deduplicates on: the schema's JSON with object keys
/// sorted and no insignificant whitespace. Unlike the Parsing Canonical Form
/// it keeps docs, defaults, logical types and custom properties: two schemas
/// that differ only in a data-quality rule are different versions, and must
/// not share an id.
pub fn normalized_json(json: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&json_string(k));
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(json, &mut out);
    out
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

fn table() -> [u64; 256] {
    let mut t = [0u64; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut fp = i as u64;
        for _ in 0..8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
        }
        *slot = fp;
    }
    t
}

/// The CRC-64-AVRO fingerprint of the canonical form (Avro's "Rabin" fingerprint).
pub fn fingerprint(schema: &Schema) -> u64 {
    let t = table();
    canonical_form(schema)
        .bytes()
        .fold(EMPTY, |fp, b| (fp >> 8) ^ t[((fp ^ u64::from(b)) & 0xff) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_strips_and_orders() {
        let s = Schema::parse_str(
            r#"{"namespace":"x.y","type":"record","name":"R","doc":"d","fields":[
                {"name":"a","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"t","default":0},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}},
                {"name":"again","type":"E"}]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_form(&s),
            r#"{"name":"x.y.R","type":"record","fields":[{"name":"a","type":"long"},{"name":"e","type":{"name":"x.y.E","type":"enum","symbols":["A","B"]}},{"name":"again","type":"x.y.E"}]}"#
        );
    }

    #[test]
    fn normalized_json_ignores_key_order_and_whitespace_but_keeps_properties() {
        let a: serde_json::Value = serde_json::from_str(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int","range":{"min":0}}]}"#,
        )
        .unwrap();
        let b: serde_json::Value = serde_json::from_str(
            r#"{ "fields": [ {"range": {"min": 0}, "type": "int", "name": "x"} ], "name": "R", "type": "record" }"#,
        )
        .unwrap();
        let c: serde_json::Value = serde_json::from_str(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int","range":{"min":1}}]}"#,
        )
        .unwrap();
        assert_eq!(normalized_json(&a), normalized_json(&b));
        assert_ne!(normalized_json(&a), normalized_json(&c));
    }

    #[test]
    fn fingerprints_match_the_avro_specification() {
        // Values from Avro's own test suite (share/test/data/schema-tests.txt).
        assert_eq!(
            fingerprint(&Schema::parse_str(r#""null""#).unwrap()) as i64,
            7195948357588979594
        );
        assert_eq!(
            fingerprint(&Schema::parse_str(r#""int""#).unwrap()) as i64,
            8247732601305521295
        );
        assert_eq!(
            fingerprint(&Schema::parse_str(r#""string""#).unwrap()) as i64,
            -8142146995180207161
        );
    }
}
