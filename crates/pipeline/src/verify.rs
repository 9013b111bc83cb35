//! Does the warehouse equal the source? Reads the whole source table from
//! PostgreSQL and the current-state view from Snowflake, brings every
//! value to one canonical text per column (driven by the column's
//! Snowflake type), and compares them key by key, with a SHA-256 checksum
//! over all columns of each side.
//!
//! A source row that breaks a rule of its table's contract is held back by
//! the CDC stage (dead-lettered), so the warehouse keeps that key's last
//! valid version, or nothing. Those rows are found by evaluating the rules
//! of the value schema registered for the topic (the rules travel with the
//! schema) on the source row, parsed the way the CDC stage parses it; they
//! are reported and left out of the comparison on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cdc::config::quote_ident as quote_pg;
use pg_avro::{PgType, Row, Val};
use serde_json::Value;
use snowflake::{quote_ident, Client};

use crate::RunError;

/// The outcome, for the report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Verification {
    /// True only when every compared row is equal and neither side has a
    /// row the other lacks.
    pub verified: bool,
    pub source_rows: u64,
    pub warehouse_rows: u64,
    /// Source rows that break a rule, left out of the comparison, by rule.
    pub held_back_by_rule: BTreeMap<String, u64>,
    pub held_back_rows: u64,
    pub compared_rows: u64,
    /// SHA-256 over the compared rows, in key order: equal when verified.
    pub source_checksum: String,
    pub warehouse_checksum: String,
    /// Up to ten differences, each naming the key and what differs.
    pub differences: Vec<String>,
}

/// A source column and how both sides render it canonically.
#[derive(Debug)]
struct Column {
    name: String,
    pg: PgType,
    sf_type: String,
}

/// The table to compare.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The table in PostgreSQL.
    pub source: &'a cdc::TableName,
    /// The current-state view, qualified and quoted.
    pub view: &'a str,
    /// The rules of the registered value schema's row record, if any.
    pub rules: Option<&'a rules::RuleSet>,
}

pub async fn verify(pg: &tokio_postgres::Client, sf: &Client, target: Target<'_>) -> Result<Verification, RunError> {
    let (columns, key) = columns(pg, sf, &target).await?;
    let mut out = Verification::default();
    let (source, held_back) = read_source(pg, &target, &columns, &key, &mut out).await?;
    let warehouse = read_warehouse(sf, &target, &columns, &key, &held_back, &mut out).await?;
    out.held_back_rows = held_back.len() as u64;
    out.compared_rows = source.len() as u64;
    out.source_checksum = checksum(&source);
    out.warehouse_checksum = checksum(&warehouse);
    for (k, row) in &source {
        match warehouse.get(k) {
            None => out
                .differences
                .push(format!("key {k}: in the source, not in the warehouse")),
            Some(w) if w != row => out
                .differences
                .push(format!("key {k}: {}", first_difference(&columns, row, w))),
            Some(_) => {}
        }
    }
    for k in warehouse.keys().filter(|k| !source.contains_key(*k)) {
        out.differences
            .push(format!("key {k}: in the warehouse, not in the source"));
    }
    out.verified = out.differences.is_empty() && out.source_checksum == out.warehouse_checksum;
    out.differences.truncate(10);
    Ok(out)
}

/// The source's rows by key, canonical, in each type's text output form
/// (the simple query protocol's, and pgoutput's without `binary`), parsed
/// as the CDC stage parses it; and the keys of rows the registered rules
/// hold back (dead-lettered, so not in the warehouse).
async fn read_source(
    pg: &tokio_postgres::Client,
    target: &Target<'_>,
    columns: &[Column],
    key: &[usize],
    out: &mut Verification,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>), RunError> {
    let now_ms = crate::unix_micros() / 1000;
    let select: Vec<String> = columns.iter().map(|c| quote_pg(&c.name)).collect();
    let messages = pg
        .simple_query(&format!("SELECT {} FROM {}", select.join(", "), target.source.quoted()))
        .await
        .map_err(|e| RunError::Postgres(format!("reading {}: {e}", target.source)))?;
    let rows = messages.iter().filter_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let mut source: BTreeMap<String, String> = BTreeMap::new();
    let mut held_back: BTreeSet<String> = BTreeSet::new();
    for row in rows {
        let mut vals = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let v = match row.get(i) {
                None => Val::Null,
                Some(t) => pg_avro::parse_text(&c.pg, t)
                    .map_err(|e| RunError::Verify(format!("{}.{}: {e}", target.source, c.name)))?,
            };
            vals.push(v);
        }
        let canon: Vec<String> = vals.iter().zip(columns).map(|(v, c)| canonical_pg(v, c)).collect();
        let k = key.iter().map(|&i| canon[i].as_str()).collect::<Vec<_>>().join("|");
        out.source_rows += 1;
        if let Some(rules) = target.rules {
            let broken = rules.evaluate(&Row(vals), &rules::EvalContext { now_ms });
            if !broken.is_empty() {
                for v in &broken {
                    *out.held_back_by_rule.entry(v.rule.to_string()).or_default() += 1;
                }
                held_back.insert(k);
                continue;
            }
        }
        source.insert(k, canon.join("\u{1f}"));
    }
    Ok((source, held_back))
}

/// The warehouse's rows by key, canonical, through the view analysts
/// query; a key twice is a difference.
async fn read_warehouse(
    sf: &Client,
    target: &Target<'_>,
    columns: &[Column],
    key: &[usize],
    held_back: &BTreeSet<String>,
    out: &mut Verification,
) -> Result<BTreeMap<String, String>, RunError> {
    let select: Vec<String> = columns.iter().map(sf_expr).collect();
    let result = sf
        .query(&format!("SELECT {} FROM {}", select.join(", "), target.view), &[])
        .await?;
    let mut warehouse: BTreeMap<String, String> = BTreeMap::new();
    for row in &result.rows {
        let mut canon = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let text = row.get(i).and_then(Option::as_deref);
            canon
                .push(canonical_sf(text, c).map_err(|e| RunError::Verify(format!("{} {}: {e}", target.view, c.name)))?);
        }
        let k = key.iter().map(|&i| canon[i].as_str()).collect::<Vec<_>>().join("|");
        out.warehouse_rows += 1;
        if held_back.contains(&k) {
            continue;
        }
        if warehouse.insert(k.clone(), canon.join("\u{1f}")).is_some() {
            out.differences
                .push(format!("key {k}: more than one row in the warehouse"));
        }
    }
    Ok(warehouse)
}

/// The source's columns in table order with their Snowflake types, and the
/// positions of the primary key among them.
async fn columns(
    pg: &tokio_postgres::Client,
    sf: &Client,
    target: &Target<'_>,
) -> Result<(Vec<Column>, Vec<usize>), RunError> {
    let pg_err =
        |e: tokio_postgres::Error| RunError::Postgres(format!("reading the columns of {}: {e}", target.source));
    let attrs = pg
        .query(
            "SELECT a.attname::text, a.atttypid::oid, a.atttypmod, \
             COALESCE(a.attnum = ANY(i.indkey), false) \
             FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&target.source.quoted()],
        )
        .await
        .map_err(pg_err)?;
    let sf_columns = sf
        .query(&format!("SELECT * FROM {} LIMIT 0", target.view), &[])
        .await?
        .columns;
    let mut columns = Vec::new();
    let mut key = Vec::new();
    for a in &attrs {
        let name: String = a.get(0);
        let oid: u32 = a.get(1);
        let typmod: i32 = a.get(2);
        let pg = pg_avro::pg_type(oid, typmod)
            .ok_or_else(|| RunError::Verify(format!("{}.{name}: type oid {oid} has no Avro mapping", target.source)))?;
        let sf_type = sf_columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&name))
            .map(|c| c.sf_type.to_ascii_lowercase())
            .ok_or_else(|| RunError::Verify(format!("{} has no column {}", target.view, name.to_uppercase())))?;
        if a.get::<_, bool>(3) {
            key.push(columns.len());
        }
        columns.push(Column { name, pg, sf_type });
    }
    if key.is_empty() {
        return Err(RunError::Verify(format!("{} has no primary key", target.source)));
    }
    Ok((columns, key))
}

/// The canonical text of a NULL, distinct from any value's.
const NULL: &str = "\u{0}";

/// The Snowflake expression that reads a column as text the canonical
/// form can be made from.
fn sf_expr(c: &Column) -> String {
    let q = quote_ident(&c.name.to_uppercase());
    match c.sf_type.as_str() {
        t if t.starts_with("timestamp") => format!("TO_VARCHAR(DATE_PART(EPOCH_MICROSECOND, {q}))"),
        "variant" | "array" | "object" => format!("TO_VARCHAR(TO_JSON({q}))"),
        "binary" => format!("HEX_ENCODE({q})"),
        "date" => format!("TO_VARCHAR(DATEDIFF(day, TO_DATE('1970-01-01'), {q}))"),
        _ => format!("TO_VARCHAR({q})"),
    }
}

fn canonical_pg(v: &Val, c: &Column) -> String {
    match v {
        Val::Null => NULL.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => format!("{f:?}"),
        Val::Str(s) if matches!(c.pg, PgType::Json | PgType::Jsonb) => canonical_json(s).unwrap_or_else(|| s.clone()),
        Val::Str(s) => s.clone(),
        Val::Bytes(b) => b.iter().fold(String::new(), |mut out, x| {
            let _ = write!(out, "{x:02X}");
            out
        }),
        Val::Array(items) => json_of(&Val::Array(items.clone())).to_string(),
    }
}

fn json_of(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Int(i) => Value::from(*i),
        Val::Float(f) => Value::from(*f),
        Val::Str(s) => Value::String(s.clone()),
        Val::Bytes(b) => Value::String(b.iter().map(|x| format!("{x:02X}")).collect()),
        Val::Array(items) => Value::Array(items.iter().map(json_of).collect()),
    }
}

fn canonical_json(s: &str) -> Option<String> {
    serde_json::from_str::<Value>(s).ok().map(|v| v.to_string())
}

fn canonical_sf(text: Option<&str>, c: &Column) -> Result<String, String> {
    let Some(t) = text else { return Ok(NULL.to_string()) };
    Ok(match c.sf_type.as_str() {
        "real" | "float" | "double" => {
            let f: f64 = t.parse().map_err(|_| format!("{t:?} is not a number"))?;
            format!("{f:?}")
        }
        "boolean" => t.to_ascii_lowercase(),
        "variant" | "array" | "object" => canonical_json(t).ok_or_else(|| format!("{t:?} is not JSON"))?,
        "binary" => t.to_ascii_uppercase(),
        "fixed" if matches!(c.pg, PgType::Numeric { .. } | PgType::NumericUnconstrained) => {
            return Err("NUMBER with a scale is not compared yet".into())
        }
        _ => t.to_string(),
    })
}

fn checksum(rows: &BTreeMap<String, String>) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for row in rows.values() {
        ctx.update(row.as_bytes());
        ctx.update(b"\x1e");
    }
    ctx.finish().as_ref().iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn first_difference(columns: &[Column], source: &str, warehouse: &str) -> String {
    let show = |v: &str| {
        if v == NULL {
            "NULL".to_string()
        } else {
            format!("{v:?}")
        }
    };
    for (c, (s, w)) in columns
        .iter()
        .zip(source.split('\u{1f}').zip(warehouse.split('\u{1f}')))
    {
        if s != w {
            return format!(
                "column {} is {} in the source, {} in the warehouse",
                c.name,
                show(s),
                show(w)
            );
        }
    }
    "rows differ".into()
}

/// The rules of the row record in `subject`'s newest value schema (the
/// record inside the change envelope's `before`/`after`), if it has any.
pub async fn registered_rules(
    registry: &registry_client::RegistryClient,
    subject: &str,
) -> Result<Option<rules::RuleSet>, RunError> {
    let Some(latest) = registry.versions(subject).await?.pop() else {
        return Ok(None);
    };
    let envelope: serde_json::Value = serde_json::from_str(&latest.schema)
        .map_err(|e| RunError::Verify(format!("{subject} v{}: not JSON: {e}", latest.version)))?;
    let row = envelope["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["name"] == "before" || f["name"] == "after")
        .flat_map(|f| f["type"].as_array().cloned().unwrap_or_default())
        .find(|t| t["type"] == "record");
    let Some(row) = row else { return Ok(None) };
    let schema = schema::Schema::parse(&row)
        .map_err(|e| RunError::Verify(format!("{subject} v{}: the row record: {e}", latest.version)))?;
    rules::RuleSet::from_schema(&schema)
        .map(Some)
        .map_err(|e| RunError::Verify(format!("{subject} v{}: its rules: {e}", latest.version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(pg: PgType, sf: &str) -> Column {
        Column {
            name: "c".into(),
            pg,
            sf_type: sf.into(),
        }
    }

    #[test]
    fn both_sides_meet_in_one_canonical_form() {
        let f = col(PgType::Float8, "real");
        assert_eq!(
            canonical_pg(&Val::Float(0.1), &f),
            canonical_sf(Some("0.1"), &f).unwrap()
        );
        assert_eq!(
            canonical_pg(&Val::Float(52.0), &f),
            canonical_sf(Some("52"), &f).unwrap()
        );
        assert_eq!(
            canonical_pg(&Val::Float(1.0e-7), &f),
            canonical_sf(Some("1.000000e-07"), &f).unwrap()
        );
        let b = col(PgType::Bool, "boolean");
        assert_eq!(
            canonical_pg(&Val::Bool(true), &b),
            canonical_sf(Some("TRUE"), &b).unwrap()
        );
        let a = col(PgType::Array(Box::new(PgType::Int4)), "variant");
        let arr = Val::Array(vec![Val::Int(1), Val::Null, Val::Int(3)]);
        assert_eq!(canonical_pg(&arr, &a), canonical_sf(Some("[1, null,3]"), &a).unwrap());
        let t = col(PgType::Timestamptz, "timestamp_tz");
        assert_eq!(canonical_pg(&Val::Int(1_700_000_000_123_456), &t), "1700000000123456");
        assert_eq!(canonical_sf(Some("1700000000123456"), &t).unwrap(), "1700000000123456");
        assert_eq!(canonical_pg(&Val::Null, &t), canonical_sf(None, &t).unwrap());
        assert_ne!(canonical_pg(&Val::Str(String::new()), &col(PgType::Text, "text")), NULL);
    }

    #[test]
    fn bad_warehouse_text_is_an_error_not_a_panic() {
        assert!(canonical_sf(Some("abc"), &col(PgType::Float8, "real")).is_err());
        assert!(canonical_sf(Some("{"), &col(PgType::Jsonb, "variant")).is_err());
    }

    #[test]
    fn the_first_differing_column_is_named() {
        let cols = vec![
            Column {
                name: "a".into(),
                pg: PgType::Text,
                sf_type: "text".into(),
            },
            Column {
                name: "b".into(),
                pg: PgType::Text,
                sf_type: "text".into(),
            },
        ];
        assert_eq!(
            first_difference(&cols, "x\u{1f}1", "x\u{1f}\u{0}"),
            "column b is \"1\" in the source, NULL in the warehouse"
        );
    }
}
