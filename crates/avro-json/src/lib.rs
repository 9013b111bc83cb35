//! Avro binary, decoded by its writer schema, as JSON.
//!
//! The Snowflake sink reads records of any registered schema: it looks the
//! writer schema up by the id in the wire-format header and decodes the
//! body with [`decode`], then binds the JSON as one batch. Logical types
//! come out as text Snowflake casts exactly:
//!
//! | Avro | JSON |
//! | --- | --- |
//! | `decimal(p, s)` (bytes or fixed) | `"-1234.500"` |
//! | `date` | `"2024-02-29"` |
//! | `timestamp-millis`, `timestamp-micros` | `"2024-02-29T10:34:56.789012Z"` |
//! | `local-timestamp-millis`, `local-timestamp-micros` | `"2024-02-29T12:34:56.789012"` |
//! | `time-millis`, `time-micros` | `"12:34:56.789000"` |
//! | `bytes`, `fixed` | hex text |
//! | `float`, `double` NaN and infinities | `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | enum | its symbol |
//! | union | the branch's value |
//!
//! Everything else maps as JSON does. Malformed bytes are a [`DecodeError`]
//! naming the field path; nothing panics on untrusted input.
//!
//! **Bounds.** The bytes and the schema both come from outside (a topic, a
//! registry), so nothing here lets either exhaust memory, time or the
//! stack. Values nest at most [`MAX_DEPTH`] deep. Array and map block
//! counts are checked against the bytes left, and every item decoded is
//! taken from one budget for the whole datum, the input's length plus
//! [`MAX_ZERO_WIDTH_ITEMS`]: an item takes at least a byte, except a
//! zero-width one (`null`, an empty record), so a few bytes of nested
//! counts cannot stand for billions of values. A decimal may take no more
//! bytes than its precision needs, and the schema parser bounds precision.

use avro_codec::Reader;
use schema::{LogicalType, Named, Primitive, Schema, Type};
use serde_json::{Map, Number, Value};

/// Why bytes do not decode with a schema, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

/// Decodes `bytes` (a whole datum) with the writer schema `schema`.
pub fn decode(schema: &Schema, bytes: &[u8]) -> Result<Value, DecodeError> {
    decode_keeping_numbers(schema, bytes, &[])
}

/// [`decode`], except that inside the root record's fields named in
/// `numeric`, logical types are ignored: dates, times and timestamps come
/// out as the numbers they are written as (a `timestamp-micros` as its
/// long; a bytes decimal as hex). For metadata a reader computes with, such
/// as a change event's `source`, while the rows stay text a warehouse
/// casts.
pub fn decode_keeping_numbers(schema: &Schema, bytes: &[u8], numeric: &[&str]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut d = Decoder {
        schema,
        items_left: bytes.len().saturating_add(MAX_ZERO_WIDTH_ITEMS),
        numeric,
        raw: false,
    };
    let v = d.value(&schema.root, &mut r, "$", 0)?;
    r.finish().map_err(|e| DecodeError {
        path: "$".into(),
        message: e.to_string(),
    })?;
    Ok(v)
}

/// Deeper than this is a malformed or hostile schema/value pair.
pub const MAX_DEPTH: usize = 64;

/// Items beyond one per input byte a datum may hold, all arrays and maps
/// together: room for arrays of nulls, not for a forged count.
pub const MAX_ZERO_WIDTH_ITEMS: usize = 1 << 16;

fn err(path: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// One datum's decoding: the schema and what is left of the item budget.
struct Decoder<'s> {
    schema: &'s Schema,
    items_left: usize,
    /// Root fields whose logical types decode as their numbers.
    numeric: &'s [&'s str],
    /// Inside one of those.
    raw: bool,
}

impl Decoder<'_> {
    fn value(&mut self, ty: &Type, r: &mut Reader<'_>, path: &str, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(err(path, format!("nested more than {MAX_DEPTH} levels deep")));
        }
        let e = |x: avro_codec::DecodeError| err(path, x);
        Ok(match ty {
            Type::Primitive { kind, logical } => {
                let logical = if self.raw { None } else { logical.as_ref() };
                primitive(*kind, logical, r, path)?
            }
            Type::Array(item) => {
                let mut items = Vec::new();
                self.blocks(r, path, |d, r, i| {
                    items.push(d.value(item, r, &format!("{path}[{i}]"), depth + 1)?);
                    Ok(())
                })?;
                Value::Array(items)
            }
            Type::Map(v) => {
                let mut map = Map::new();
                self.blocks(r, path, |d, r, _| {
                    let k = r.str().map_err(|x| err(path, x))?.to_string();
                    let val = d.value(v, r, &format!("{path}.{k}"), depth + 1)?;
                    map.insert(k, val);
                    Ok(())
                })?;
                Value::Object(map)
            }
            Type::Union(branches) => {
                // Not a level of its own: a union holds no union directly.
                let i = r.union_index(branches.len()).map_err(e)?;
                self.value(&branches[i], r, path, depth)?
            }
            Type::Named(name) => match self.schema.lookup(name) {
                None => return Err(err(path, format!("the schema does not define {name}"))),
                Some(Named::Record(rec)) => {
                    let mut obj = Map::new();
                    for f in &rec.fields {
                        let p = format!("{path}.{}", f.name);
                        let outer = self.raw;
                        self.raw |= depth == 0 && self.numeric.contains(&f.name.as_str());
                        let v = self.value(&f.ty, r, &p, depth + 1);
                        self.raw = outer;
                        obj.insert(f.name.clone(), v?);
                    }
                    Value::Object(obj)
                }
                Some(Named::Enum(en)) => {
                    let i = r.enum_index(en.symbols.len()).map_err(e)?;
                    Value::String(en.symbols[i].clone())
                }
                Some(Named::Fixed(fx)) => {
                    let bytes = r.fixed_bytes(fx.size).map_err(e)?;
                    match &fx.logical {
                        Some(LogicalType::Decimal { precision, scale }) => {
                            Value::String(decimal(bytes, *precision, *scale).map_err(|m| err(path, m))?)
                        }
                        _ => Value::String(hex(bytes)),
                    }
                }
            },
        })
    }

    /// Items of an array or map: blocks of a count (negative: followed by
    /// the block's byte size) until a zero count. Each block's count is
    /// checked against the bytes left and taken from the datum's item
    /// budget before any item is read (see the crate docs).
    fn blocks(
        &mut self,
        r: &mut Reader<'_>,
        path: &str,
        mut item: impl FnMut(&mut Self, &mut Reader<'_>, usize) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut seen = 0usize;
        loop {
            let count = r.long().map_err(|x| err(path, x))?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                r.long().map_err(|x| err(path, x))?;
            }
            let count = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
            let plausible = r.remaining().saturating_add(MAX_ZERO_WIDTH_ITEMS);
            if count > plausible || count > self.items_left {
                return Err(err(
                    path,
                    format!(
                        "a block of {count} items, more than {} bytes left can hold",
                        r.remaining()
                    ),
                ));
            }
            self.items_left -= count;
            for _ in 0..count {
                item(self, r, seen)?;
                seen += 1;
            }
        }
    }
}

/// A primitive value, with its logical type's rendering.
fn primitive(
    kind: Primitive,
    logical: Option<&LogicalType>,
    r: &mut Reader<'_>,
    path: &str,
) -> Result<Value, DecodeError> {
    let e = |x: avro_codec::DecodeError| err(path, x);
    Ok(match (kind, logical) {
        (Primitive::Null, _) => Value::Null,
        (Primitive::Boolean, _) => Value::Bool(r.boolean().map_err(e)?),
        (Primitive::Int, Some(LogicalType::Date)) => Value::String(date(i64::from(r.int().map_err(e)?))),
        (Primitive::Int, Some(LogicalType::TimeMillis)) => {
            Value::String(time_of_day(i64::from(r.int().map_err(e)?) * 1000))
        }
        (Primitive::Int, _) => Value::from(r.int().map_err(e)?),
        (Primitive::Long, Some(LogicalType::TimestampMillis)) => {
            Value::String(timestamp(r.long().map_err(e)?.saturating_mul(1000), true))
        }
        (Primitive::Long, Some(LogicalType::TimestampMicros)) => Value::String(timestamp(r.long().map_err(e)?, true)),
        (Primitive::Long, Some(LogicalType::LocalTimestampMillis)) => {
            Value::String(timestamp(r.long().map_err(e)?.saturating_mul(1000), false))
        }
        (Primitive::Long, Some(LogicalType::LocalTimestampMicros)) => {
            Value::String(timestamp(r.long().map_err(e)?, false))
        }
        (Primitive::Long, Some(LogicalType::TimeMicros)) => Value::String(time_of_day(r.long().map_err(e)?)),
        (Primitive::Long, _) => Value::from(r.long().map_err(e)?),
        (Primitive::Float, _) => float(f64::from(r.float().map_err(e)?)),
        (Primitive::Double, _) => float(r.double().map_err(e)?),
        (Primitive::Bytes, Some(LogicalType::Decimal { precision, scale })) => {
            Value::String(decimal(r.bytes().map_err(e)?, *precision, *scale).map_err(|m| err(path, m))?)
        }
        (Primitive::Bytes, _) => Value::String(hex(r.bytes().map_err(e)?)),
        (Primitive::String, _) => Value::String(r.str().map_err(e)?.to_string()),
    })
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The most bytes a two's complement number of `precision` digits takes.
fn decimal_bytes(precision: u32) -> usize {
    // log2(10) < 3.33 bits a digit, and a sign bit.
    (precision as usize * 333 / 100 + 2) / 8 + 1
}

/// Big-endian two's complement unscaled value at `scale`, as decimal text.
/// The conversion is quadratic in the length, which the precision bounds.
fn decimal(bytes: &[u8], precision: u32, scale: u32) -> Result<String, String> {
    if bytes.len() > decimal_bytes(precision) {
        return Err(format!(
            "a decimal of {} bytes, more than precision {precision} needs",
            bytes.len()
        ));
    }
    if bytes.is_empty() {
        return Ok(if scale == 0 {
            "0".into()
        } else {
            format!("0.{}", "0".repeat(scale as usize))
        });
    }
    let negative = bytes[0] & 0x80 != 0;
    // Magnitude as base-256 digits, big-endian.
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        // Two's complement negation: invert and add one.
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    // Base 256 to base 10 by repeated division.
    let mut digits = Vec::new();
    let mut num = mag;
    while num.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    let scale = scale as usize;
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let text = String::from_utf8(digits).map_err(|e| e.to_string())?;
    let (int, frac) = text.split_at(text.len() - scale);
    let sign = if negative { "-" } else { "" };
    Ok(if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (Howard Hinnant's civil_from_days).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_of_day(micros: i64) -> String {
    let s = micros.div_euclid(1_000_000);
    let us = micros.rem_euclid(1_000_000);
    format!("{:02}:{:02}:{:02}.{us:06}", s / 3600, s / 60 % 60, s % 60)
}

/// Microseconds since the epoch as ISO 8601, `Z` when `utc`.
/// Unix µs as the UTC text [`decode`] writes for `timestamp-micros`.
pub fn timestamp_text(micros: i64) -> String {
    timestamp(micros, true)
}

fn timestamp(micros: i64, utc: bool) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    format!("{}T{}{}", date(days), time_of_day(rest), if utc { "Z" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_root_fields_keep_their_numbers_and_the_rest_is_text() {
        let s = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[
                {"name":"row","type":{"type":"record","name":"Row","fields":[
                    {"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}}]}},
                {"name":"source","type":{"type":"record","name":"Source","fields":[
                    {"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}}]}}]}"#,
        )
        .unwrap();
        let mut body = Vec::new();
        avro_codec::put_long(&mut body, 1_709_202_896_789_012);
        avro_codec::put_long(&mut body, 1_709_202_896_789_012);
        let text = "2024-02-29T10:34:56.789012Z";
        assert_eq!(
            decode_keeping_numbers(&s, &body, &["source"]).unwrap(),
            json!({"row": {"t": text}, "source": {"t": 1_709_202_896_789_012_i64}})
        );
        assert_eq!(decode(&s, &body).unwrap()["source"]["t"], json!(text));
        assert_eq!(timestamp_text(1_709_202_896_789_012), text);
    }

    proptest::proptest! {
        /// Untrusted bytes never panic, whatever the schema.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let s = Schema::parse_str(
                r#"{"type":"record","name":"R","fields":[
                    {"name":"a","type":{"type":"array","items":["null","string",{"type":"map","values":"double"}]}},
                    {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":4}},
                    {"name":"f","type":{"type":"fixed","name":"F","size":3}},
                    {"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#,
            )
            .unwrap();
            let _ = decode(&s, &bytes);
        }
    }

    /// Nested block counts: a few bytes that claim arrays of millions of
    /// nulls each are refused before anything is built.
    #[test]
    fn forged_counts_cannot_multiply_into_memory() {
        let s = Schema::parse_str(r#"{"type":"array","items":{"type":"array","items":"null"}}"#).unwrap();
        let mut b = Vec::new();
        avro_codec::put_long(&mut b, 1000);
        for _ in 0..1000 {
            avro_codec::put_long(&mut b, 60_000);
            avro_codec::put_long(&mut b, 0);
        }
        avro_codec::put_long(&mut b, 0);
        let e = decode(&s, &b).unwrap_err();
        assert!(e.message.contains("items"), "{e}");
        // One count beyond the bytes left, on its own.
        let mut b = Vec::new();
        avro_codec::put_long(&mut b, 1);
        avro_codec::put_long(&mut b, i64::MAX);
        assert!(decode(&s, &b).is_err());
        // Arrays of nulls within the budget still decode.
        let b = [2u8, 200, 1, 0, 0];
        assert_eq!(decode(&s, &b).unwrap()[0].as_array().map(Vec::len), Some(100));
    }

    #[test]
    fn a_recursive_schema_bounds_the_value_depth() {
        let s = Schema::parse_str(r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#)
            .unwrap();
        let deep = [vec![2u8; 40], vec![0]].concat();
        assert!(decode(&s, &deep).is_ok());
        let deeper = [vec![2u8; 1000], vec![0]].concat();
        let e = decode(&s, &deeper).unwrap_err();
        assert!(e.message.contains("levels deep"), "{e}");
    }

    #[test]
    fn logical_types_render_as_warehouse_text() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_782), "2024-02-29");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(timestamp(1_709_202_896_789_012, true), "2024-02-29T10:34:56.789012Z");
        assert_eq!(timestamp(-1, false), "1969-12-31T23:59:59.999999");
        assert_eq!(decimal(&[0x00, 0x80], 10, 2).unwrap(), "1.28");
        assert_eq!(decimal(&[0xff, 0x7f], 10, 2).unwrap(), "-1.29");
        assert_eq!(decimal(&[0xff], 10, 3).unwrap(), "-0.001");
        assert_eq!(decimal(&[0x7f], 3, 0).unwrap(), "127");
        // 38 digits (Snowflake's NUMBER(38)) take 16 bytes; one of slack
        // is allowed for encoders that pad, more is refused.
        assert!(decimal(&[0x7f; 17], 38, 0).is_ok());
        assert!(decimal(&[0x7f; 18], 38, 0).unwrap_err().contains("precision 38"));
        assert_eq!(float(f64::NAN), json!("NaN"));
    }

    #[test]
    fn records_unions_arrays_and_maps_decode_and_errors_name_the_path() {
        let s = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"id","type":"long"},
                {"name":"tags","type":{"type":"array","items":["null","string"]}},
                {"name":"m","type":{"type":"map","values":"int"}},
                {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}},
                {"name":"when","type":["null",{"type":"long","logicalType":"timestamp-micros"}]}]}"#,
        )
        .unwrap();
        let mut b = Vec::new();
        avro_codec::put_long(&mut b, 7);
        b.extend_from_slice(&[4, 0, 2, 2, b'x', 0]); // [null, "x"]
        b.extend_from_slice(&[2, 2, b'k', 6, 0]); // {"k": 3}
        b.push(2); // B
        b.push(2);
        avro_codec::put_long(&mut b, 0);
        assert_eq!(
            decode(&s, &b).unwrap(),
            json!({"id": 7, "tags": [null, "x"], "m": {"k": 3}, "kind": "B", "when": "1970-01-01T00:00:00.000000Z"})
        );
        let e = decode(&s, &b[..b.len() - 1]).unwrap_err();
        assert_eq!(e.path, "$.when");
        let mut bad = b.clone();
        bad[2] = 9; // an array item's union index out of range
        let e = decode(&s, &bad).unwrap_err();
        assert_eq!(e.path, "$.tags[0]", "{e}");
        assert!(decode(&s, &[b.as_slice(), &[0]].concat())
            .unwrap_err()
            .message
            .contains("trailing"));
    }
}
