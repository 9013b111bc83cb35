//! PostgreSQL column types to Avro, the mapping the CDC stage uses for each
//! captured table's row schema.
//!
//! | PostgreSQL | Avro |
//! | --- | --- |
//! | `boolean` | `boolean` |
//! | `smallint`, `integer` | `int` |
//! | `bigint` | `long` |
//! | `real` | `float` |
//! | `double precision` | `double` |
//! | `numeric(p, s)` | `bytes`, logical `decimal(p, s)` |
//! | `numeric` (no precision) | `string`, the exact text (`"pg.type": "numeric"`) |
//! | `text`, `varchar(n)`, `char(n)`, `name` | `string` |
//! | `date` | `int`, logical `date` |
//! | `timestamp` | `long`, logical `local-timestamp-micros` |
//! | `timestamptz` | `long`, logical `timestamp-micros` |
//! | `uuid` | `string`, logical `uuid` |
//! | `json`, `jsonb` | `string` holding the JSON text (`"pg.type"`) |
//! | `bytea` | `bytes` |
//! | one-dimensional arrays of the above | `array` of `["null", item]` |
//! | an enum (and arrays of enums) | `string`, the label |
//! | a domain (and arrays of domains) | its base type's mapping, with the domain's modifier |
//!
//! Enums and domains reach this mapping already resolved: the CDC stage
//! rewrites their OIDs from the catalog (`cdc::catalog::UserTypes`), since
//! pgoutput names a column's declared type.
//!
//! Key columns (the replica identity) are required; every other column is
//! `["null", T]` with default null, since pgoutput does not say which
//! columns are NOT NULL. A column name that is not a valid Avro name is
//! rewritten (invalid characters to `_`, a leading digit prefixed with `_`)
//! and keeps its PostgreSQL name in `"pg.column"`. Any other type is a
//! [`MappingError`] naming the table, the column and the type, raised when
//! the stage starts, not when the first row arrives.

mod envelope;
mod value;

use pgoutput::Relation;
use serde_json::{json, Value};

pub use envelope::{
    encode_transaction, encode_transaction_key, topic_name, EventMeta, Op, TableCodec, SOURCE_SCHEMA,
    TRANSACTION_KEY_SCHEMA, TRANSACTION_VALUE_SCHEMA,
};
pub use value::{parse_binary, parse_datum, parse_text, Row, Val, ValueError};

/// A PostgreSQL type this mapping knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric { precision: u32, scale: u32 },
    NumericUnconstrained,
    Text,
    Date,
    Timestamp,
    Timestamptz,
    Uuid,
    Json,
    Jsonb,
    Bytea,
    Array(Box<PgType>),
}

/// The type for an OID and type modifier, if supported.
pub fn pg_type(oid: u32, typmod: i32) -> Option<PgType> {
    Some(match oid {
        16 => PgType::Bool,
        21 => PgType::Int2,
        23 => PgType::Int4,
        20 => PgType::Int8,
        700 => PgType::Float4,
        701 => PgType::Float8,
        1700 if typmod >= 4 => {
            let t = (typmod - 4) as u32;
            PgType::Numeric {
                precision: (t >> 16) & 0xffff,
                scale: t & 0xffff,
            }
        }
        1700 => PgType::NumericUnconstrained,
        25 | 1043 | 1042 | 18 | 19 => PgType::Text,
        1082 => PgType::Date,
        1114 => PgType::Timestamp,
        1184 => PgType::Timestamptz,
        2950 => PgType::Uuid,
        114 => PgType::Json,
        3802 => PgType::Jsonb,
        17 => PgType::Bytea,
        _ => {
            let element = match oid {
                1000 => 16,
                1005 => 21,
                1007 => 23,
                1016 => 20,
                1021 => 700,
                1022 => 701,
                1231 => 1700,
                1009 | 1015 | 1014 | 1002 | 1003 => 25,
                1182 => 1082,
                1115 => 1114,
                1185 => 1184,
                2951 => 2950,
                199 => 114,
                3807 => 3802,
                1001 => 17,
                _ => return None,
            };
            // An array's typmod applies to its elements.
            PgType::Array(Box::new(pg_type(element, typmod)?))
        }
    })
}

/// Names for the OIDs people most often meet, for error messages.
fn type_name(oid: u32) -> String {
    let known = match oid {
        600 => "point",
        601 => "lseg",
        604 => "polygon",
        718 => "circle",
        790 => "money",
        869 => "inet",
        650 => "cidr",
        829 => "macaddr",
        1083 => "time",
        1266 => "timetz",
        1186 => "interval",
        1560 => "bit",
        1562 => "varbit",
        3614 => "tsvector",
        3904 => "int4range",
        3926 => "int8range",
        3910 => "tstzrange",
        142 => "xml",
        _ => "",
    };
    if known.is_empty() {
        format!("type oid {oid}")
    } else {
        format!("{known} (oid {oid})")
    }
}

/// The Avro type for a PostgreSQL type.
pub fn avro_type(t: &PgType) -> Value {
    match t {
        PgType::Bool => json!("boolean"),
        PgType::Int2 | PgType::Int4 => json!("int"),
        PgType::Int8 => json!("long"),
        PgType::Float4 => json!("float"),
        PgType::Float8 => json!("double"),
        PgType::Numeric { precision, scale } => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
        }
        PgType::NumericUnconstrained => json!({"type": "string", "pg.type": "numeric"}),
        PgType::Text => json!("string"),
        PgType::Date => json!({"type": "int", "logicalType": "date"}),
        PgType::Timestamp => json!({"type": "long", "logicalType": "local-timestamp-micros"}),
        PgType::Timestamptz => json!({"type": "long", "logicalType": "timestamp-micros"}),
        PgType::Uuid => json!({"type": "string", "logicalType": "uuid"}),
        PgType::Json => json!({"type": "string", "pg.type": "json"}),
        PgType::Jsonb => json!({"type": "string", "pg.type": "jsonb"}),
        PgType::Bytea => json!("bytes"),
        PgType::Array(item) => json!({"type": "array", "items": ["null", avro_type(item)]}),
    }
}

/// A table whose columns cannot all be mapped, or whose names clash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "table {table}, column {column}: {type_name} has no Avro mapping; change the column's type, \
         or leave the table out of the publication (supported: boolean, smallint, integer, bigint, real, \
         double precision, numeric, text, varchar, char, date, timestamp, timestamptz, uuid, json, jsonb, bytea, \
         and one-dimensional arrays of these)"
    )]
    Unsupported {
        table: String,
        column: String,
        type_name: String,
    },
    #[error("table {table}: columns {first} and {second} both become Avro field {field}")]
    NameClash {
        table: String,
        first: String,
        second: String,
        field: String,
    },
    #[error("table {table} has no columns")]
    NoColumns { table: String },
    #[error(
        "table {table} has no primary key: Kafka keys and the warehouse's current-state table need one; \
         add a primary key to the table"
    )]
    NoKey { table: String },
    #[error("table {table}: primary key column {column} is not in the replicated columns")]
    KeyNotFound { table: String, column: String },
}

/// An Avro name for a PostgreSQL identifier.
pub fn avro_name(ident: &str) -> String {
    let mut out: String = ident
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The mapped columns of a relation: (column, its type).
pub fn columns(rel: &Relation) -> Result<Vec<(&pgoutput::Column, PgType)>, MappingError> {
    let table = format!("{}.{}", rel.namespace, rel.name);
    if rel.columns.is_empty() {
        return Err(MappingError::NoColumns { table });
    }
    rel.columns
        .iter()
        .map(|c| {
            pg_type(c.type_oid, c.type_modifier)
                .map(|t| (c, t))
                .ok_or_else(|| MappingError::Unsupported {
                    table: table.clone(),
                    column: c.name.clone(),
                    type_name: type_name(c.type_oid),
                })
        })
        .collect()
}

/// The Avro record `<namespace>.<name>` for a row of `rel`; `key_only` keeps
/// the key columns (the record a Kafka key holds).
pub fn row_schema(namespace: &str, name: &str, rel: &Relation, key_only: bool) -> Result<Value, MappingError> {
    let table = format!("{}.{}", rel.namespace, rel.name);
    let mut fields = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for (col, t) in columns(rel)? {
        if key_only && !col.key {
            continue;
        }
        let name = avro_name(&col.name);
        if let Some((_, first)) = seen.iter().find(|(f, _)| *f == name) {
            return Err(MappingError::NameClash {
                table,
                first: first.clone(),
                second: col.name.clone(),
                field: name,
            });
        }
        seen.push((name.clone(), col.name.clone()));
        let mut field = if col.key {
            json!({"name": name, "type": avro_type(&t)})
        } else {
            json!({"name": name, "type": ["null", avro_type(&t)], "default": null})
        };
        if name != col.name {
            field["pg.column"] = json!(col.name);
        }
        fields.push(field);
    }
    Ok(json!({
        "type": "record",
        "name": name,
        "namespace": namespace,
        "doc": format!("A row of PostgreSQL table {table}{}.", if key_only { " (its key columns)" } else { "" }),
        "fields": fields,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgoutput::{Column, ReplicaIdentity};

    fn rel(cols: &[(&str, u32, i32, bool)]) -> Relation {
        Relation {
            id: 1,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: cols
                .iter()
                .map(|(n, oid, m, k)| Column {
                    key: *k,
                    name: (*n).into(),
                    type_oid: *oid,
                    type_modifier: *m,
                })
                .collect(),
        }
    }

    #[test]
    fn numeric_typmods_give_precision_and_scale() {
        // numeric(10,2): typmod = ((10 << 16) | 2) + 4
        assert_eq!(
            pg_type(1700, (10 << 16 | 2) + 4),
            Some(PgType::Numeric {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(pg_type(1700, -1), Some(PgType::NumericUnconstrained));
        assert_eq!(pg_type(1007, -1), Some(PgType::Array(Box::new(PgType::Int4))));
        assert_eq!(pg_type(600, -1), None);
    }

    #[test]
    fn schemas_parse_and_keys_are_required() {
        let r = rel(&[
            ("id", 20, -1, true),
            ("My Col", 25, -1, false),
            ("2nd", 1184, -1, false),
        ]);
        let value = row_schema("cdc.public.t", "Value", &r, false).unwrap();
        let s = schema::Schema::parse(&value).unwrap();
        let rec = s.root_record().unwrap();
        assert_eq!(rec.name.fullname(), "cdc.public.t.Value");
        let names: Vec<&str> = rec.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["id", "My_Col", "_2nd"]);
        assert!(!rec.fields[0].ty.is_nullable() && rec.fields[1].ty.is_nullable());
        assert_eq!(rec.fields[1].props["pg.column"], "My Col");
        let key = row_schema("cdc.public.t", "Key", &r, true).unwrap();
        assert_eq!(key["fields"].as_array().unwrap().len(), 1);
        assert_eq!(key["name"], "Key");
    }

    #[test]
    fn unsupported_types_and_clashes_name_the_column() {
        let e = row_schema(
            "n",
            "V",
            &rel(&[("id", 23, -1, true), ("where", 600, -1, false)]),
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("table public.t, column where: point (oid 600) has no Avro mapping"),
            "{e}"
        );
        let e = row_schema("n", "V", &rel(&[("a-b", 23, -1, true), ("a_b", 23, -1, false)]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "table public.t: columns a-b and a_b both become Avro field a_b"
        );
    }
}
