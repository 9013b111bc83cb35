//! Row values: pgoutput [`Datum`]s parsed into typed [`Val`]s, checked by
//! the rules through [`FieldAccess`], and written as Avro binary.
//!
//! Values arrive in PostgreSQL's text output form (pgoutput's default, and
//! what a snapshot `SELECT` returns through the simple query protocol), with
//! the session pinned to `DateStyle=ISO`, `TimeZone=UTC`, `bytea_output=hex`
//! and `extra_float_digits=3` so the text is unambiguous and round-trips
//! floats exactly; or in the binary send form (pgoutput's `binary 'true'`,
//! which spares the walsender its text formatting). Both give the same
//! [`Val`]. A value that cannot be represented in its Avro type
//! (`NaN` in a `numeric(p,s)`, an infinite date, too many digits) is a
//! [`ValueError`] naming the column: a data error, for the dead-letter path.

use pgoutput::Datum;
use rules::{FieldAccess, FieldRef};

use crate::PgType;

/// One column's value, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    /// smallint, integer, bigint, and date (days) and timestamps (µs) since the Unix epoch.
    Int(i64),
    Float(f64),
    /// text, uuid, json, unconstrained numeric.
    Str(String),
    /// bytea, and a decimal's two's-complement unscaled value.
    Bytes(Vec<u8>),
    Array(Vec<Val>),
}

/// A value that does not fit its column's Avro type, or is not valid text
/// for its PostgreSQL type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ValueError {
    pub column: String,
    pub message: String,
}

/// A row's values in column order, viewed by the rules as a record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<Val>);

impl FieldAccess for Row {
    fn field(&self, index: usize) -> FieldRef<'_> {
        self.0.get(index).map_or(FieldRef::Null, field_ref)
    }
}

fn field_ref(v: &Val) -> FieldRef<'_> {
    match v {
        Val::Null => FieldRef::Null,
        Val::Bool(b) => FieldRef::Bool(*b),
        Val::Int(i) => FieldRef::Int(*i),
        Val::Float(f) => FieldRef::Float(*f),
        Val::Str(s) => FieldRef::Str(s),
        Val::Bytes(b) => FieldRef::Bytes(b),
        Val::Array(items) => FieldRef::Array(items.iter().map(field_ref).collect()),
    }
}

/// Parses one column's datum. `UnchangedToast` must have been replaced by
/// the old row's value before this is called.
pub fn parse_datum(column: &str, ty: &PgType, datum: &Datum) -> Result<Val, ValueError> {
    let err = |message: String| ValueError {
        column: column.to_string(),
        message,
    };
    match datum {
        Datum::Null => Ok(Val::Null),
        Datum::UnchangedToast => Err(err("an unchanged TOAST value with no old value to take it from".into())),
        Datum::Binary(bytes) => parse_binary(ty, bytes).map_err(err),
        Datum::Text(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|e| err(format!("not UTF-8 text: {e}")))?;
            parse_text(ty, text).map_err(err)
        }
    }
}

/// Parses a value from PostgreSQL's text output form.
pub fn parse_text(ty: &PgType, text: &str) -> Result<Val, String> {
    let bad = |what: &str| format!("{text:?} is not a valid {what}");
    Ok(match ty {
        PgType::Bool => match text {
            "t" => Val::Bool(true),
            "f" => Val::Bool(false),
            _ => return Err(bad("boolean")),
        },
        PgType::Int2 | PgType::Int4 => Val::Int(i64::from(text.parse::<i32>().map_err(|_| bad("integer"))?)),
        PgType::Int8 => Val::Int(text.parse::<i64>().map_err(|_| bad("bigint"))?),
        PgType::Float4 | PgType::Float8 => Val::Float(match text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => text.parse::<f64>().map_err(|_| bad("floating-point number"))?,
        }),
        PgType::Numeric { precision, scale } => Val::Bytes(decimal_bytes(text, *precision, *scale)?),
        PgType::NumericUnconstrained | PgType::Text | PgType::Json | PgType::Jsonb => Val::Str(text.to_string()),
        PgType::Uuid => {
            if text.len() != 36 || !text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                return Err(bad("uuid"));
            }
            Val::Str(text.to_string())
        }
        PgType::Date => Val::Int(parse_date(text).ok_or_else(|| bad("date (ISO, within years 1-9999)"))?),
        PgType::Timestamp => Val::Int(parse_timestamp(text, false).ok_or_else(|| bad("timestamp (ISO)"))?),
        PgType::Timestamptz => Val::Int(parse_timestamp(text, true).ok_or_else(|| bad("timestamptz (ISO)"))?),
        PgType::Bytea => Val::Bytes(parse_bytea(text).ok_or_else(|| bad("bytea in hex form"))?),
        PgType::Array(item) => Val::Array(
            parse_array(text)?
                .into_iter()
                .map(|e| e.map_or(Ok(Val::Null), |s| parse_text(item, &s)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Days between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

/// A bounds-checked reader over a binary value.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "binary value truncated: {} bytes left, {n} needed",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, String> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_be_bytes)
    }

    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected bytes after the value", self.0.len()))
        }
    }
}

/// Parses a value from PostgreSQL's binary send form.
pub fn parse_binary(ty: &PgType, bytes: &[u8]) -> Result<Val, String> {
    let mut b = Bytes(bytes);
    let utf8 = |raw: &[u8]| String::from_utf8(raw.to_vec()).map_err(|e| format!("not UTF-8 text: {e}"));
    let v = match ty {
        PgType::Bool => Val::Bool(b.take(1)?[0] != 0),
        PgType::Int2 => Val::Int(i64::from(b.i16()?)),
        PgType::Int4 => Val::Int(i64::from(b.i32()?)),
        PgType::Int8 => Val::Int(b.i64()?),
        PgType::Float4 => Val::Float(f64::from(f32::from_be_bytes(b.array()?))),
        PgType::Float8 => Val::Float(f64::from_be_bytes(b.array()?)),
        PgType::Numeric { precision, scale } => Val::Bytes(decimal_bytes(&numeric_text(&mut b)?, *precision, *scale)?),
        PgType::NumericUnconstrained => Val::Str(numeric_text(&mut b)?),
        PgType::Text | PgType::Json => return utf8(bytes).map(Val::Str),
        PgType::Jsonb => {
            let version = b.take(1)?[0];
            if version != 1 {
                return Err(format!("jsonb binary version {version} is not 1"));
            }
            return utf8(b.0).map(Val::Str);
        }
        PgType::Bytea => return Ok(Val::Bytes(bytes.to_vec())),
        PgType::Uuid => {
            let u: [u8; 16] = b.array()?;
            let hex: String = u.iter().map(|x| format!("{x:02x}")).collect();
            Val::Str(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        PgType::Date => {
            let d = b.i32()?;
            if d == i32::MAX || d == i32::MIN {
                return Err("an infinite date has no Avro form".into());
            }
            Val::Int(i64::from(d) + PG_EPOCH_DAYS)
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let us = b.i64()?;
            if us == i64::MAX || us == i64::MIN {
                return Err("an infinite timestamp has no Avro form".into());
            }
            Val::Int(us.saturating_add(pgoutput::PG_EPOCH_OFFSET_MICROS))
        }
        PgType::Array(item) => {
            let ndim = b.i32()?;
            let _has_nulls = b.i32()?;
            let _element_oid = b.i32()?;
            let items = match ndim {
                0 => Vec::new(),
                1 => {
                    let len = b.i32()?;
                    let _lower_bound = b.i32()?;
                    let len = usize::try_from(len).map_err(|_| format!("negative array length {len}"))?;
                    let mut items = Vec::with_capacity(len.min(b.0.len() / 4));
                    for _ in 0..len {
                        let n = b.i32()?;
                        items.push(if n < 0 {
                            Val::Null
                        } else {
                            parse_binary(item, b.take(n as usize)?)?
                        });
                    }
                    items
                }
                n => return Err(format!("a {n}-dimensional array is not supported (one dimension only)")),
            };
            Val::Array(items)
        }
    };
    b.end()?;
    Ok(v)
}

/// A binary `numeric` as its text form (digits base 10,000, a weight, a sign, a display scale).
fn numeric_text(b: &mut Bytes<'_>) -> Result<String, String> {
    let ndigits = b.i16()?;
    let weight = i32::from(b.i16()?);
    let sign = b.i16()? as u16;
    let dscale = b.i16()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("numeric sign {other:#x} is invalid")),
    }
    let (ndigits, dscale) = (
        usize::try_from(ndigits).map_err(|_| "negative numeric digit count")?,
        usize::try_from(dscale).map_err(|_| "negative numeric scale")?,
    );
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let d = b.i16()?;
        if !(0..10_000).contains(&d) {
            return Err(format!("numeric digit {d} is out of range"));
        }
        digits.push(d);
    }
    let digit = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    // Integer part: base-10,000 digits 0..=weight.
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for i in 1..=weight {
            out.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

/// `numeric` text to the big-endian two's-complement unscaled value Avro's
/// decimal holds, at exactly `scale` digits after the point.
fn decimal_bytes(text: &str, precision: u32, scale: u32) -> Result<Vec<u8>, String> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !valid(int_part) || !valid(frac_part) {
        return Err(format!(
            "{text:?} cannot be a decimal({precision},{scale}) (NaN and infinities have no Avro decimal form)"
        ));
    }
    if frac_part.len() > scale as usize {
        return Err(format!("{text:?} has more than {scale} digits after the point"));
    }
    let digits = int_part.trim_start_matches('0').len() + scale as usize;
    if digits > precision as usize {
        return Err(format!("{text:?} has more than {precision} significant digits"));
    }
    // Magnitude, little-endian base 256, built digit by digit.
    let mut mag: Vec<u8> = Vec::new();
    let padding = scale as usize - frac_part.len();
    for d in int_part
        .bytes()
        .chain(frac_part.bytes())
        .chain(std::iter::repeat_n(b'0', padding))
    {
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    while mag.last() == Some(&0) {
        mag.pop();
    }
    // One more byte for the sign bit when the top bit is taken.
    if mag.last().is_none_or(|b| b & 0x80 != 0) {
        mag.push(0);
    }
    if negative {
        let mut carry = true;
        for byte in mag.iter_mut() {
            let (v, c) = (!*byte).overflowing_add(u8::from(carry));
            *byte = v;
            carry = c;
        }
    }
    mag.reverse();
    // Minimal form: drop redundant leading sign bytes.
    while mag.len() > 1 && ((mag[0] == 0 && mag[1] & 0x80 == 0) || (mag[0] == 0xff && mag[1] & 0x80 != 0)) {
        mag.remove(0);
    }
    Ok(mag)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// `YYYY-MM-DD` to days since the Unix epoch. BC dates and infinities are refused.
fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let y = num(parts.next()?, 4)?;
    let m = num(parts.next()?, 2)?;
    let d = num(parts.next()?, 2)?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]]` to microseconds since the
/// Unix epoch; the offset is required when `with_zone`, refused otherwise.
fn parse_timestamp(s: &str, with_zone: bool) -> Option<i64> {
    let (date, rest) = s.split_once(' ')?;
    let days = parse_date(date)?;
    if rest.len() < 8 {
        return None;
    }
    let (clock, mut tail) = rest.split_at(8);
    let mut hms = clock.split(':');
    let h = num(hms.next()?, 2)?;
    let mi = num(hms.next()?, 2)?;
    let sec = num(hms.next()?, 2)?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut micros = 0i64;
    if let Some(frac) = tail.strip_prefix('.') {
        let end = frac.find(|c: char| !c.is_ascii_digit()).unwrap_or(frac.len());
        if end == 0 || end > 6 {
            return None;
        }
        micros = frac[..end].parse::<i64>().ok()? * 10i64.pow(6 - end as u32);
        tail = &frac[end..];
    }
    let mut offset_secs = 0i64;
    if with_zone {
        let sign = match tail.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let mut parts = tail[1..].split(':');
        let oh = num(parts.next()?, 2)?;
        let om = parts.next().map_or(Some(0), |p| num(p, 2))?;
        let os = parts.next().map_or(Some(0), |p| num(p, 2))?;
        if parts.next().is_some() {
            return None;
        }
        offset_secs = sign * (oh * 3600 + om * 60 + os);
    } else if !tail.is_empty() {
        return None;
    }
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1_000_000 + micros)
}

/// `\x` followed by hex digit pairs.
fn parse_bytea(s: &str) -> Option<Vec<u8>> {
    let hex = s.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks_exact(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

/// A one-dimensional array literal (`{1,NULL,"a b","q\"uote"}`) into its
/// elements' text, `None` for NULL.
fn parse_array(s: &str) -> Result<Vec<Option<String>>, String> {
    let bad = |why: &str| format!("{s:?} is not a one-dimensional array literal: {why}");
    // Arrays with non-default bounds print as `[2:3]={...}`.
    let body = s
        .split_once('=')
        .filter(|(b, _)| b.starts_with('['))
        .map_or(s, |(_, rest)| rest);
    let inner = body
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| bad("no braces"))?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => item.push(chars.next().ok_or_else(|| bad("dangling escape"))?),
                    Some('"') => break,
                    Some('{') if item.is_empty() => return Err(bad("nested arrays are not supported")),
                    Some(c) => item.push(c),
                    None => return Err(bad("unterminated quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '{' => return Err(bad("nested arrays are not supported")),
                    '\\' => {
                        chars.next();
                        item.push(chars.next().ok_or_else(|| bad("dangling escape"))?);
                        continue;
                    }
                    _ => item.push(c),
                }
                chars.next();
            }
        }
        out.push((quoted || !item.eq_ignore_ascii_case("NULL")).then_some(item));
        match chars.next() {
            None => return Ok(out),
            Some(',') => {}
            Some(c) => return Err(bad(&format!("unexpected {c:?} after an element"))),
        }
    }
}

/// Writes `v` as Avro of type `ty`, as the row schema declares it (`nullable`:
/// inside `["null", T]`).
pub(crate) fn encode_val(buf: &mut Vec<u8>, ty: &PgType, v: &Val, nullable: bool) {
    if nullable {
        if matches!(v, Val::Null) {
            buf.push(0);
            return;
        }
        buf.push(2); // union branch 1, zig-zag encoded
    }
    match (ty, v) {
        (PgType::Float4, Val::Float(f)) => avro_codec::put_float(buf, *f as f32),
        (_, Val::Float(f)) => avro_codec::put_double(buf, *f),
        (PgType::Int2 | PgType::Int4 | PgType::Date, Val::Int(i)) => avro_codec::put_int(buf, *i as i32),
        (_, Val::Int(i)) => avro_codec::put_long(buf, *i),
        (_, Val::Bool(b)) => avro_codec::put_boolean(buf, *b),
        (_, Val::Str(s)) => avro_codec::put_string(buf, s),
        (_, Val::Bytes(b)) => avro_codec::put_bytes(buf, b),
        (PgType::Array(item), Val::Array(items)) => {
            avro_codec::put_block(buf, items.iter(), |buf, v| encode_val(buf, item, v, true));
        }
        // A key column is never null (the schema says so); a null here
        // would be a mapping bug, written as the type's zero is not an
        // option, so the row was refused by `RowCodec` before encoding.
        (_, Val::Array(_) | Val::Null) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str, p: u32, s: u32) -> Vec<u8> {
        decimal_bytes(text, p, s).unwrap()
    }

    #[test]
    fn decimals_are_minimal_twos_complement_at_the_column_scale() {
        assert_eq!(dec("0", 5, 2), vec![0]);
        assert_eq!(dec("1.5", 5, 2), vec![0, 150]); // 150 = 0x96 needs a sign byte
        assert_eq!(dec("1.27", 5, 2), vec![0x7f]);
        assert_eq!(dec("1.28", 5, 2), vec![0x00, 0x80]);
        assert_eq!(dec("-1.28", 5, 2), vec![0x80]);
        assert_eq!(dec("-1.29", 5, 2), vec![0xff, 0x7f]);
        assert_eq!(dec("-0.01", 5, 2), vec![0xff]);
        let as_i128 = |b: Vec<u8>| {
            let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
            let mut full = [fill; 16];
            full[16 - b.len()..].copy_from_slice(&b);
            i128::from_be_bytes(full)
        };
        assert_eq!(
            as_i128(dec("12345678901234567890.123", 40, 3)),
            12_345_678_901_234_567_890_123
        );
        assert_eq!(
            as_i128(dec("-98765432109876543210.5", 40, 1)),
            -987_654_321_098_765_432_105
        );
        assert!(decimal_bytes("NaN", 5, 2).unwrap_err().contains("NaN"));
        assert!(decimal_bytes("1.234", 5, 2).is_err());
        assert!(decimal_bytes("1234.5", 5, 2).is_err());
    }

    #[test]
    fn dates_and_timestamps_count_from_the_unix_epoch() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("infinity"), None);
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5", false), Some(1_500_000));
        assert_eq!(
            parse_timestamp("2024-02-29 12:00:00+00", true),
            Some(1_709_208_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29 17:30:00.000001+05:30", true),
            Some(1_709_208_000_000_001)
        );
        assert_eq!(parse_timestamp("2024-02-29 12:00:00", true), None);
        assert_eq!(parse_timestamp("2024-02-29 12:00:00+00", false), None);
    }

    fn numeric_binary(ndigits: &[i16], weight: i16, sign: u16, dscale: i16) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits.len() as i16, weight, sign as i16, dscale] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for d in ndigits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn binary_values_read_like_their_text() {
        // As PostgreSQL sends them: numeric -1234.500 is digits [1234, 5000], weight 0, dscale 3.
        let n = numeric_binary(&[1234, 5000], 0, 0x4000, 3);
        assert_eq!(
            parse_binary(&PgType::NumericUnconstrained, &n).unwrap(),
            Val::Str("-1234.500".into())
        );
        assert_eq!(
            parse_binary(
                &PgType::Numeric {
                    precision: 12,
                    scale: 3
                },
                &n
            )
            .unwrap(),
            parse_text(
                &PgType::Numeric {
                    precision: 12,
                    scale: 3
                },
                "-1234.500"
            )
            .unwrap()
        );
        // 0.001: weight -1, digit 10 (0.0010), dscale 3; 10000000.5: [1000, 0, 5000], weight 1.
        let small = numeric_binary(&[10], -1, 0, 3);
        assert_eq!(
            parse_binary(&PgType::NumericUnconstrained, &small).unwrap(),
            Val::Str("0.001".into())
        );
        let big = numeric_binary(&[1000, 0, 5000], 1, 0, 1);
        assert_eq!(
            parse_binary(&PgType::NumericUnconstrained, &big).unwrap(),
            Val::Str("10000000.5".into())
        );
        assert_eq!(
            parse_binary(&PgType::NumericUnconstrained, &numeric_binary(&[], 0, 0xC000, 0)).unwrap(),
            Val::Str("NaN".into())
        );
        assert_eq!(
            parse_binary(&PgType::NumericUnconstrained, &numeric_binary(&[], 0, 0, 0)).unwrap(),
            Val::Str("0".into())
        );

        assert_eq!(
            parse_binary(&PgType::Date, &0i32.to_be_bytes()).unwrap(),
            parse_text(&PgType::Date, "2000-01-01").unwrap()
        );
        assert_eq!(
            parse_binary(&PgType::Timestamptz, &1i64.to_be_bytes()).unwrap(),
            parse_text(&PgType::Timestamptz, "2000-01-01 00:00:00.000001+00").unwrap()
        );
        assert!(parse_binary(&PgType::Timestamp, &i64::MAX.to_be_bytes())
            .unwrap_err()
            .contains("infinite"));
        let uuid: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            parse_binary(&PgType::Uuid, &uuid).unwrap(),
            Val::Str("00010203-0405-0607-0809-0a0b0c0d0e0f".into())
        );
        assert_eq!(parse_binary(&PgType::Jsonb, b"\x01{}").unwrap(), Val::Str("{}".into()));
        // int4[] {1,NULL}: ndim 1, has nulls, oid 23, (len 2, lbound 1), 4:1, -1.
        let mut arr = Vec::new();
        for x in [1i32, 1, 23, 2, 1, 4, 1, -1] {
            arr.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(
            parse_binary(&PgType::Array(Box::new(PgType::Int4)), &arr).unwrap(),
            Val::Array(vec![Val::Int(1), Val::Null])
        );
        // Truncated or trailing bytes are errors, never panics.
        assert!(parse_binary(&PgType::Int8, &[0; 7]).unwrap_err().contains("truncated"));
        assert!(parse_binary(&PgType::Int4, &[0; 5]).unwrap_err().contains("unexpected"));
        assert!(parse_binary(&PgType::Array(Box::new(PgType::Int4)), &arr[..20]).is_err());
    }

    #[test]
    fn arrays_bytea_and_floats() {
        assert_eq!(
            parse_array(r#"{1,NULL,"NULL","a \"b\"",c\,d}"#).unwrap(),
            vec![
                Some("1".into()),
                None,
                Some("NULL".into()),
                Some("a \"b\"".into()),
                Some("c,d".into())
            ]
        );
        assert_eq!(
            parse_array("[0:1]={7,8}").unwrap(),
            vec![Some("7".into()), Some("8".into())]
        );
        assert!(parse_array("{{1,2},{3,4}}").unwrap_err().contains("nested"));
        assert_eq!(parse_bytea("\\x00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(parse_bytea("\\x0"), None);
        assert!(matches!(parse_text(&PgType::Float8, "NaN").unwrap(), Val::Float(f) if f.is_nan()));
        assert_eq!(parse_text(&PgType::Int2, "40000").unwrap(), Val::Int(40_000));
        assert!(parse_text(&PgType::Int4, "9999999999").is_err());
    }
}
