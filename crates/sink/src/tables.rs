//! Warehouse tables for one CDC topic, derived from its registered key and
//! value schemas, and the SQL that keeps them. Pure: builds text only.
//!
//! For a source table `T` (topic `<prefix>.<schema>.t`):
//!
//! - `T_CHANGELOG`: every change once, the row's columns plus `_OP`, `_LSN`,
//!   `_COMMIT_LSN`, `_TXID`, `_COMMIT_TS`, `_SCHEMA_ID`, `_SCHEMA_VERSION`,
//!   `_KAFKA_PARTITION`, `_KAFKA_OFFSET`, `_INGESTED_AT`. A change is
//!   identified by (commit LSN, LSN, op, key): a replayed one matches and is
//!   not inserted again.
//! - `T_V1`: the current state, merged by primary key. A delete keeps the
//!   row with `_DELETED = TRUE` and its position, so an older change
//!   replayed later (lower `(_COMMIT_LSN, _LSN)`) can neither overwrite a
//!   newer one nor resurrect a deleted row.
//! - `T`: a view of the live rows of `T_V1`, the name analysts query.
//!
//! Batches arrive through two staging tables (bound as one JSON array and
//! flattened), then MERGE: statements that are idempotent on their own, so
//! no multi-statement transaction is needed.
//!
//! Avro to Snowflake: `int`/`long` → `NUMBER(38,0)`, `float`/`double` →
//! `FLOAT`, `boolean` → `BOOLEAN`, `string` (and `uuid`, enums) → `TEXT`,
//! `bytes`/`fixed` → `BINARY`, `decimal(p,s)` → `NUMBER(p,s)`, `date` →
//! `DATE`, `timestamp-*` → `TIMESTAMP_TZ`, `local-timestamp-*` →
//! `TIMESTAMP_NTZ`, `time-*` → `TIME`, arrays, maps and records → `VARIANT`.

use schema::{LogicalType, Named, Primitive, Schema, Type};

/// A warehouse column fed from a JSON field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The JSON field (the Avro field name, or a `_meta` name).
    pub field: String,
    /// The column name, upper case (quoted in SQL).
    pub name: String,
    pub sql_type: String,
}

impl Column {
    fn new(field: &str, sql_type: &str) -> Column {
        Column {
            field: field.to_string(),
            name: field.to_uppercase(),
            sql_type: sql_type.to_string(),
        }
    }

    fn quoted(&self) -> String {
        snowflake::quote_ident(&self.name)
    }

    /// The expression that reads this column from a flattened JSON `value`.
    fn read_from_json(&self) -> String {
        let v = format!("value['{}']", self.field.replace('\'', "''"));
        match self.sql_type.as_str() {
            "VARIANT" => v,
            "BINARY" => format!("TO_BINARY({v}::TEXT, 'HEX')"),
            t => format!("{v}::{t}"),
        }
    }
}

/// The Snowflake type for an Avro type (unions with null: their other branch).
pub fn sql_type(schema: &Schema, ty: &Type) -> String {
    let ty = ty.nullable_inner().unwrap_or(ty);
    match ty {
        Type::Primitive { kind, logical } => match (kind, logical) {
            (_, Some(LogicalType::Decimal { precision, scale })) => format!("NUMBER({precision},{scale})"),
            (_, Some(LogicalType::Date)) => "DATE".into(),
            (_, Some(LogicalType::TimestampMillis | LogicalType::TimestampMicros | LogicalType::TimestampNanos)) => {
                "TIMESTAMP_TZ".into()
            }
            (
                _,
                Some(
                    LogicalType::LocalTimestampMillis
                    | LogicalType::LocalTimestampMicros
                    | LogicalType::LocalTimestampNanos,
                ),
            ) => "TIMESTAMP_NTZ".into(),
            (_, Some(LogicalType::TimeMillis | LogicalType::TimeMicros)) => "TIME".into(),
            (Primitive::Int | Primitive::Long, _) => "NUMBER(38,0)".into(),
            (Primitive::Float | Primitive::Double, _) => "FLOAT".into(),
            (Primitive::Boolean, _) => "BOOLEAN".into(),
            (Primitive::Bytes, _) => "BINARY".into(),
            (Primitive::String, _) => "TEXT".into(),
            (Primitive::Null, _) => "TEXT".into(),
        },
        Type::Named(n) => match schema.lookup(n) {
            Some(Named::Enum(_)) => "TEXT".into(),
            Some(Named::Fixed(f)) => match &f.logical {
                Some(LogicalType::Decimal { precision, scale }) => format!("NUMBER({precision},{scale})"),
                _ => "BINARY".into(),
            },
            _ => "VARIANT".into(),
        },
        Type::Array(_) | Type::Map(_) | Type::Union(_) => "VARIANT".into(),
    }
}

/// Metadata columns of both tables, fed by the sink.
const META: [(&str, &str); 10] = [
    ("_op", "TEXT"),
    ("_lsn", "NUMBER(38,0)"),
    ("_commit_lsn", "NUMBER(38,0)"),
    ("_txid", "NUMBER(38,0)"),
    ("_commit_ts", "TIMESTAMP_TZ"),
    ("_schema_id", "NUMBER(38,0)"),
    ("_schema_version", "NUMBER(38,0)"),
    ("_kafka_partition", "NUMBER(38,0)"),
    ("_kafka_offset", "NUMBER(38,0)"),
    ("_deleted", "BOOLEAN"),
];

/// Why a schema cannot be a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LayoutError(pub String);

/// The tables of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// `"DB"."SCHEMA"` prefix.
    pub qualifier: String,
    /// The source table's name, upper case.
    pub base: String,
    pub key: Vec<Column>,
    /// Every row column, the key's included, in schema order.
    pub row: Vec<Column>,
}

impl Layout {
    /// From the envelope (value) schema and the key schema of a topic.
    pub fn new(qualifier: &str, base: &str, envelope: &Schema, key: &Schema) -> Result<Layout, LayoutError> {
        let env = envelope
            .root_record()
            .ok_or_else(|| LayoutError(format!("{base}: the value schema is not a record")))?;
        let after = env.fields.iter().find(|f| f.name == "after").ok_or_else(|| {
            LayoutError(format!(
                "{base}: the value schema has no `after` field (not a CDC envelope)"
            ))
        })?;
        let Some(Type::Named(row_name)) = after.ty.nullable_inner() else {
            return Err(LayoutError(format!("{base}: `after` is not a nullable record")));
        };
        let Some(Named::Record(row)) = envelope.lookup(row_name) else {
            return Err(LayoutError(format!("{base}: `after` is not a record")));
        };
        let key_rec = key
            .root_record()
            .ok_or_else(|| LayoutError(format!("{base}: the key schema is not a record")))?;
        let row_cols: Vec<Column> = row
            .fields
            .iter()
            .map(|f| Column::new(&f.name, &sql_type(envelope, &f.ty)))
            .collect();
        if let Some(f) = row_cols
            .iter()
            .find(|c| c.field.starts_with('_') && META.iter().any(|(m, _)| *m == c.field))
        {
            return Err(LayoutError(format!(
                "{base}: column {} clashes with the sink's metadata",
                f.name
            )));
        }
        let key_cols = key_rec
            .fields
            .iter()
            .map(|f| {
                row_cols
                    .iter()
                    .find(|c| c.field == f.name)
                    .cloned()
                    .ok_or_else(|| LayoutError(format!("{base}: key field {} is not a row field", f.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Layout {
            qualifier: qualifier.to_string(),
            base: base.to_uppercase(),
            key: key_cols,
            row: row_cols,
        })
    }

    fn table(&self, suffix: &str) -> String {
        format!(
            "{}.{}",
            self.qualifier,
            snowflake::quote_ident(&format!("{}{suffix}", self.base))
        )
    }

    pub fn changelog(&self) -> String {
        self.table("_CHANGELOG")
    }

    pub fn current(&self) -> String {
        self.table("_V1")
    }

    pub fn view(&self) -> String {
        self.table("")
    }

    fn stage(&self, which: &str) -> String {
        self.table(&format!("_STAGE_{which}"))
    }

    /// Row columns then metadata.
    fn all(&self) -> Vec<Column> {
        self.row
            .iter()
            .cloned()
            .chain(META.iter().map(|(f, t)| Column::new(f, t)))
            .collect()
    }

    fn column_defs(&self) -> String {
        self.all()
            .iter()
            .map(|c| format!("{} {}", c.quoted(), c.sql_type))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Creates the tables and the view when missing, and adds columns a
    /// newer schema version brought.
    pub fn ensure(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, \"_INGESTED_AT\" TIMESTAMP_TZ DEFAULT CURRENT_TIMESTAMP())",
                self.changelog(),
                self.column_defs()
            ),
            format!("CREATE TABLE IF NOT EXISTS {} ({})", self.current(), self.column_defs()),
            format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                self.stage("CL"),
                self.column_defs()
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                self.stage("CUR"),
                self.column_defs()
            ),
        ];
        for t in [self.changelog(), self.current(), self.stage("CL"), self.stage("CUR")] {
            for c in &self.row {
                out.push(format!(
                    "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {} {}",
                    c.quoted(),
                    c.sql_type
                ));
            }
        }
        let cols: Vec<String> = self.row.iter().map(Column::quoted).collect();
        out.push(format!(
            "CREATE OR REPLACE VIEW {} AS SELECT {} FROM {} WHERE NOT \"_DELETED\"",
            self.view(),
            cols.join(", "),
            self.current()
        ));
        out
    }

    /// Statements for one batch: `changelog_json` (every change, once) and
    /// `current_json` (the newest change per key) are bound in order.
    pub fn load(&self) -> [String; 6] {
        let all = self.all();
        let names: Vec<String> = all.iter().map(Column::quoted).collect();
        let reads: Vec<String> = all.iter().map(Column::read_from_json).collect();
        let stage_insert = |stage: &str| {
            format!(
                "INSERT INTO {stage} ({}) SELECT {} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))",
                names.join(", "),
                reads.join(", ")
            )
        };
        let s_cols: Vec<String> = names.iter().map(|n| format!("s.{n}")).collect();
        let key_match: Vec<String> = self.key.iter().map(|k| format!("t.{0} = s.{0}", k.quoted())).collect();
        let changelog_merge = format!(
            "MERGE INTO {} t USING {} s ON t.\"_COMMIT_LSN\" = s.\"_COMMIT_LSN\" AND t.\"_LSN\" = s.\"_LSN\" AND t.\"_OP\" = s.\"_OP\" AND {} \
             WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
            self.changelog(),
            self.stage("CL"),
            key_match.join(" AND "),
            names.join(", "),
            s_cols.join(", ")
        );
        let sets: Vec<String> = names.iter().map(|n| format!("{n} = s.{n}")).collect();
        let current_merge = format!(
            "MERGE INTO {} t USING {} s ON {} \
             WHEN MATCHED AND (s.\"_COMMIT_LSN\" > t.\"_COMMIT_LSN\" OR (s.\"_COMMIT_LSN\" = t.\"_COMMIT_LSN\" AND s.\"_LSN\" > t.\"_LSN\")) \
             THEN UPDATE SET {} WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
            self.current(),
            self.stage("CUR"),
            key_match.join(" AND "),
            sets.join(", "),
            names.join(", "),
            s_cols.join(", ")
        );
        [
            format!("DELETE FROM {}", self.stage("CL")),
            format!("DELETE FROM {}", self.stage("CUR")),
            stage_insert(&self.stage("CL")),
            stage_insert(&self.stage("CUR")),
            changelog_merge,
            current_merge,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas() -> (Schema, Schema) {
        let value = Schema::parse_str(
            r#"{"type":"record","name":"Envelope","namespace":"p.public.t","fields":[
              {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
                {"name":"id","type":"long"},
                {"name":"amount","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":3}],"default":null},
                {"name":"at","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},
                {"name":"tags","type":["null",{"type":"array","items":["null","string"]}],"default":null}]}],"default":null},
              {"name":"after","type":["null","Value"],"default":null},
              {"name":"op","type":"string"}]}"#,
        )
        .unwrap();
        let key =
            Schema::parse_str(r#"{"type":"record","name":"Key","fields":[{"name":"id","type":"long"}]}"#).unwrap();
        (value, key)
    }

    #[test]
    fn layout_types_and_statements() {
        let (v, k) = schemas();
        let l = Layout::new("\"DB\".\"S\"", "t", &v, &k).unwrap();
        let types: Vec<&str> = l.row.iter().map(|c| c.sql_type.as_str()).collect();
        assert_eq!(types, ["NUMBER(38,0)", "NUMBER(12,3)", "TIMESTAMP_TZ", "VARIANT"]);
        assert_eq!(l.changelog(), "\"DB\".\"S\".\"T_CHANGELOG\"");
        let ddl = l.ensure();
        assert!(ddl
            .last()
            .unwrap()
            .starts_with("CREATE OR REPLACE VIEW \"DB\".\"S\".\"T\" AS SELECT \"ID\", \"AMOUNT\""));
        let load = l.load();
        assert!(load[2].contains("value['amount']::NUMBER(12,3)") && load[2].contains("PARSE_JSON(?)"));
        assert!(load[5].contains("WHEN MATCHED AND (s.\"_COMMIT_LSN\" > t.\"_COMMIT_LSN\""));
        assert!(load[4].contains("t.\"ID\" = s.\"ID\""));
    }

    #[test]
    fn schemas_that_are_not_envelopes_are_refused() {
        let (_, k) = schemas();
        let e = Layout::new("q", "t", &k, &k).unwrap_err();
        assert_eq!(e.0, "t: the value schema has no `after` field (not a CDC envelope)");
    }
}
