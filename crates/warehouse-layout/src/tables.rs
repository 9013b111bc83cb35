//! Warehouse tables for one CDC topic, derived from its registered key and
//! value schemas, and the SQL that keeps them. Pure: builds text only.
//!
//! For a source table `T` (topic `<prefix>.<schema>.t`), generation `n`
//! (1 at first; see below):
//!
//! - `T_CHANGELOG_V<n>`: every change once, the row's columns plus `_OP`,
//!   `_LSN`, `_COMMIT_LSN`, `_TXID`, `_COMMIT_TS`, `_SCHEMA_ID`,
//!   `_SCHEMA_VERSION`, `_KAFKA_PARTITION`, `_KAFKA_OFFSET`, `_INGESTED_AT`.
//!   A change is identified by (commit LSN, LSN, op, key): a replayed one
//!   matches and is not inserted again.
//! - `T_V<n>`: the current state, merged by primary key. A delete keeps the
//!   row with `_DELETED = TRUE` and its position, so an older change
//!   replayed later (lower `(_COMMIT_LSN, _LSN)`) can neither overwrite a
//!   newer one nor resurrect a deleted row.
//! - Views, the names analysts query: `T`, the live rows, and
//!   `T_CHANGELOG`, every change, both in the newest generation's columns.
//!
//! **Generations.** A new schema version whose columns keep their Snowflake
//! types and whose key is unchanged widens the generation's tables (ADD
//! COLUMN; a dropped field's column stays, NULL from then on). A version
//! that changes a column's Snowflake type or the key cannot share the
//! tables: it starts generation `n + 1` and the views are repointed. As a
//! source table's rewrite (ALTER COLUMN TYPE) is not replicated row by
//! row, the view `T` reads each key from the newest generation that holds
//! it, older generations' values converted to the newest types (`TRY_CAST`,
//! NULL when a value does not convert), so it keeps equalling the source.
//! `T_CHANGELOG` is the union of all generations' changelogs, converted the
//! same way; each generation's tables stay queryable by their own names.
//!
//! A batch arrives through a staging table per generation (bound as one
//! JSON array and flattened), then goes into the changelog (an anti-join
//! insert) and the current state (MERGE): statements that are idempotent
//! on their own, so no multi-statement transaction is needed.
//!
//! Avro to Snowflake: `int`/`long` → `NUMBER(38,0)`, `float`/`double` →
//! `FLOAT`, `boolean` → `BOOLEAN`, `string` (and `uuid`, enums) → `TEXT`,
//! `bytes`/`fixed` → `BINARY`, `decimal(p,s)` → `NUMBER(p,s)`, `date` →
//! `DATE`, `timestamp-*` → `TIMESTAMP_TZ`, `local-timestamp-*` →
//! `TIMESTAMP_NTZ`, `time-*` → `TIME`, arrays, maps and records → `VARIANT`.

use schema::{LogicalType, Named, Primitive, Schema, Type};

/// A warehouse column fed from a JSON field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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
        crate::quote_ident(&self.name)
    }

    /// The expression that reads this column from a flattened JSON array
    /// `value`, where it is element `index`. (Arrays rather than objects:
    /// half the bytes to bind and parse, and fakesnow stages them about
    /// three times as fast.)
    fn read_from_json(&self, index: usize) -> String {
        let v = format!("value[{index}]");
        match self.sql_type.as_str() {
            // A JSON null is a VARIANT null, which is not SQL NULL.
            "VARIANT" => format!("STRIP_NULL_VALUE({v})"),
            "BINARY" => format!("TO_BINARY({v}::TEXT, 'HEX')"),
            t => format!("{v}::{t}"),
        }
    }
}

/// The table name a topic's tables and views start with: its last
/// dot-separated part (`<prefix>.<schema>.<table>` gives `<TABLE>`), upper case.
pub fn base_name(topic: &str) -> String {
    topic.rsplit('.').next().unwrap_or(topic).to_uppercase()
}

/// The views analysts query for `topic`'s tables in `qualifier`
/// (`"DB"."SCHEMA"`): `T`, the live rows, and `T_CHANGELOG`, every change.
pub fn view_names(qualifier: &str, topic: &str) -> (String, String) {
    let base = base_name(topic);
    (
        qualified(qualifier, &base),
        qualified(qualifier, &changelog_view_name(&base)),
    )
}

fn changelog_view_name(base: &str) -> String {
    format!("{base}_CHANGELOG")
}

/// `name` quoted, in `qualifier` when there is one.
fn qualified(qualifier: &str, name: &str) -> String {
    let name = crate::quote_ident(name);
    if qualifier.is_empty() {
        name
    } else {
        format!("{qualifier}.{name}")
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

/// What a new schema version does to a generation's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evolution {
    /// Same columns, same types (a doc or a rule changed, a field was dropped).
    Unchanged,
    /// New columns, every other one keeps its type.
    AddColumns(Vec<Column>),
    /// The tables cannot hold both versions; why.
    NewGeneration(String),
}

/// The tables of one topic's generation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// `"DB"."SCHEMA"` prefix, or empty for unqualified names.
    pub qualifier: String,
    /// The source table's name, upper case.
    pub base: String,
    /// 1, 2, …: bumped by a version the tables cannot hold.
    pub generation: u32,
    pub key: Vec<Column>,
    /// Every row column, the key's included, in schema order (columns of
    /// earlier versions of the generation kept at the end).
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
        let key_rec = key
            .root_record()
            .ok_or_else(|| LayoutError(format!("{base}: the key schema is not a record")))?;
        let key_fields: Vec<&str> = key_rec.fields.iter().map(|f| f.name.as_str()).collect();
        Layout::for_row(qualifier, base, envelope, row_name, &key_fields)
    }

    /// From a row record of `schema` and the names of its key fields: what
    /// `contrail schema ddl` generates from `schemas/`.
    pub fn for_row(
        qualifier: &str,
        base: &str,
        schema: &Schema,
        row_name: &str,
        key_fields: &[&str],
    ) -> Result<Layout, LayoutError> {
        let Some(Named::Record(row)) = schema.lookup(row_name) else {
            return Err(LayoutError(format!("{base}: {row_name} is not a record")));
        };
        let row_cols: Vec<Column> = row
            .fields
            .iter()
            .map(|f| Column::new(&f.name, &sql_type(schema, &f.ty)))
            .collect();
        if let Some(f) = row_cols
            .iter()
            .find(|c| META.iter().any(|(m, _)| *m == c.field) || c.field == "_ingested_at")
        {
            return Err(LayoutError(format!(
                "{base}: column {} clashes with the sink's metadata",
                f.name
            )));
        }
        if key_fields.is_empty() {
            return Err(LayoutError(format!("{base}: the key has no field")));
        }
        let key_cols = key_fields
            .iter()
            .map(|f| {
                row_cols
                    .iter()
                    .find(|c| c.field == *f)
                    .cloned()
                    .ok_or_else(|| LayoutError(format!("{base}: key field {f} is not a row field")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Layout {
            qualifier: qualifier.to_string(),
            base: base.to_uppercase(),
            generation: 1,
            key: key_cols,
            row: row_cols,
        })
    }

    fn table(&self, name: &str) -> String {
        qualified(&self.qualifier, name)
    }

    /// `T_CHANGELOG_V<n>`.
    pub fn changelog(&self) -> String {
        self.table(&format!("{}_CHANGELOG_V{}", self.base, self.generation))
    }

    /// `T_V<n>`, the current state.
    pub fn current(&self) -> String {
        self.table(&format!("{}_V{}", self.base, self.generation))
    }

    /// `T`, the live rows of the newest generation.
    pub fn view(&self) -> String {
        self.table(&self.base)
    }

    /// `T_CHANGELOG`, every generation's changes.
    pub fn changelog_view(&self) -> String {
        self.table(&changelog_view_name(&self.base))
    }

    /// Where a batch is staged.
    fn stage(&self) -> String {
        self.table(&format!("{}_STAGE_V{}", self.base, self.generation))
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

    /// What `new` (a later schema version) does to these tables.
    pub fn evolve(&self, new: &Layout) -> Evolution {
        let key = |l: &Layout| {
            l.key
                .iter()
                .map(|c| (c.name.clone(), c.sql_type.clone()))
                .collect::<Vec<_>>()
        };
        if key(self) != key(new) {
            let names = |l: &Layout| {
                l.key
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.sql_type))
                    .collect::<Vec<_>>()
            };
            return Evolution::NewGeneration(format!(
                "the key changed from ({}) to ({})",
                names(self).join(", "),
                names(new).join(", ")
            ));
        }
        let mut added = Vec::new();
        for c in &new.row {
            match self.row.iter().find(|o| o.name == c.name) {
                Some(o) if o.sql_type != c.sql_type => {
                    return Evolution::NewGeneration(format!(
                        "column {} changed type from {} to {}",
                        c.name, o.sql_type, c.sql_type
                    ))
                }
                Some(_) => {}
                None => added.push(c.clone()),
            }
        }
        if added.is_empty() {
            Evolution::Unchanged
        } else {
            Evolution::AddColumns(added)
        }
    }

    /// Creates the generation's tables when missing.
    pub fn create(&self) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, \"_INGESTED_AT\" TIMESTAMP_TZ DEFAULT CURRENT_TIMESTAMP())",
                self.changelog(),
                self.column_defs()
            ),
            format!("CREATE TABLE IF NOT EXISTS {} ({})", self.current(), self.column_defs()),
            format!("CREATE TABLE IF NOT EXISTS {} ({})", self.stage(), self.column_defs()),
        ]
    }

    /// Adds `columns` to the generation's tables (idempotent).
    pub fn add_columns(&self, columns: &[Column]) -> Vec<String> {
        let mut out = Vec::new();
        for t in [self.changelog(), self.current(), self.stage()] {
            for c in columns {
                out.push(format!(
                    "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {} {}",
                    c.quoted(),
                    c.sql_type
                ));
            }
        }
        out
    }

    /// This generation with `columns` added.
    pub fn widened(&self, columns: &[Column]) -> Layout {
        let mut l = self.clone();
        l.row.extend(columns.iter().cloned());
        l
    }

    /// Statements for one batch, run in order; the first binds the batch's
    /// changes (each once) as a JSON array of arrays, each holding the
    /// [`Layout::row`] columns then the metadata columns, in order.
    ///
    /// 1. `INSERT OVERWRITE` the stage with the flattened array;
    /// 2. MERGE the newest staged change per key into the current state,
    ///    only where it is newer in `(commit LSN, LSN)`: first, so a change
    ///    is visible as soon as possible;
    /// 3. insert into the changelog the staged changes it lacks (an
    ///    anti-join on commit LSN, LSN, op and key), binding the batch's
    ///    lowest commit LSN so the scan of the changelog can be pruned.
    ///
    /// Each is idempotent on its own. (A MERGE for step 3 does the same
    /// and reads as well, but costs twice as much on fakesnow.)
    pub fn load(&self) -> [String; 3] {
        let all = self.all();
        let names: Vec<String> = all.iter().map(Column::quoted).collect();
        let reads: Vec<String> = all.iter().enumerate().map(|(i, c)| c.read_from_json(i)).collect();
        let stage = format!(
            "INSERT OVERWRITE INTO {} ({}) SELECT {} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))",
            self.stage(),
            names.join(", "),
            reads.join(", ")
        );
        let s_cols: Vec<String> = names.iter().map(|n| format!("s.{n}")).collect();
        let key_match: Vec<String> = self.key.iter().map(|k| format!("t.{0} = s.{0}", k.quoted())).collect();
        let changelog_insert = format!(
            "INSERT INTO {} ({}) SELECT {} FROM {} s WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE \
             t.\"_COMMIT_LSN\" >= CAST(? AS NUMBER(38,0)) AND \
             t.\"_COMMIT_LSN\" = s.\"_COMMIT_LSN\" AND t.\"_LSN\" = s.\"_LSN\" AND t.\"_OP\" = s.\"_OP\" AND {})",
            self.changelog(),
            names.join(", "),
            s_cols.join(", "),
            self.stage(),
            self.changelog(),
            key_match.join(" AND ")
        );
        let key_cols: Vec<String> = self.key.iter().map(Column::quoted).collect();
        let sets: Vec<String> = names.iter().map(|n| format!("{n} = s.{n}")).collect();
        let current_merge = format!(
            "MERGE INTO {} t USING (SELECT * FROM {} QUALIFY ROW_NUMBER() OVER (PARTITION BY {} \
             ORDER BY \"_COMMIT_LSN\" DESC, \"_LSN\" DESC) = 1) s ON {} \
             WHEN MATCHED AND (s.\"_COMMIT_LSN\" > t.\"_COMMIT_LSN\" OR (s.\"_COMMIT_LSN\" = t.\"_COMMIT_LSN\" AND s.\"_LSN\" > t.\"_LSN\")) \
             THEN UPDATE SET {} WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
            self.current(),
            self.stage(),
            key_cols.join(", "),
            key_match.join(" AND "),
            sets.join(", "),
            names.join(", "),
            s_cols.join(", ")
        );
        [stage, current_merge, changelog_insert]
    }
}

/// Places `layout` (a new version) after `generations`: widens the newest
/// generation or starts the next. Returns what changed and the DDL that
/// does it (views included), empty when nothing did.
pub fn place(generations: &mut Vec<Layout>, mut layout: Layout) -> (String, Vec<String>) {
    let (change, mut ddl) = match generations.last_mut() {
        None => {
            layout.generation = 1;
            let ddl = layout.create();
            generations.push(layout);
            ("create".to_string(), ddl)
        }
        Some(newest) => match newest.evolve(&layout) {
            Evolution::Unchanged => return ("unchanged".to_string(), Vec::new()),
            Evolution::AddColumns(cols) => {
                let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
                let ddl = newest.add_columns(&cols);
                *newest = newest.widened(&cols);
                (format!("add columns {}", names.join(", ")), ddl)
            }
            Evolution::NewGeneration(why) => {
                layout.generation = newest.generation + 1;
                let ddl = layout.create();
                generations.push(layout);
                (format!("new generation: {why}"), ddl)
            }
        },
    };
    ddl.extend(views(generations));
    (change, ddl)
}

/// `column` of `from` (None: `from` lacks it) read as `to`'s type.
fn converted(alias: &str, from: Option<&Column>, to: &Column) -> String {
    match from {
        None => format!("CAST(NULL AS {})", to.sql_type),
        Some(f) if f.sql_type == to.sql_type => format!("{alias}.{}", f.quoted()),
        Some(f) => {
            let v = format!("TO_VARCHAR({alias}.{})", f.quoted());
            match to.sql_type.as_str() {
                "VARIANT" => format!("TO_VARIANT({alias}.{})", f.quoted()),
                "BINARY" => format!("TRY_TO_BINARY({v}, 'HEX')"),
                t => format!("TRY_CAST({v} AS {t})"),
            }
        }
    }
}

/// The views `T` and `T_CHANGELOG` over `generations` (oldest first, the
/// last one the newest).
pub fn views(generations: &[Layout]) -> Vec<String> {
    let Some(newest) = generations.last() else {
        return Vec::new();
    };
    let select = |g: &Layout, alias: &str, cols: &[Column]| -> Vec<String> {
        let has = g.all();
        cols.iter()
            .map(|c| {
                let from = has.iter().find(|o| o.name == c.name);
                format!("{} AS {}", converted(alias, from, c), c.quoted())
            })
            .collect()
    };
    // Live rows: each key from the newest generation that holds it. Older
    // generations whose key differs cannot be matched and are left out.
    let mut live = vec![format!(
        "SELECT {} FROM {} o WHERE NOT o.\"_DELETED\"",
        select(newest, "o", &newest.row).join(", "),
        newest.current()
    )];
    let comparable: Vec<&Layout> = generations
        .iter()
        .rev()
        .take_while(|g| g.key.iter().map(|c| &c.name).eq(newest.key.iter().map(|c| &c.name)))
        .collect();
    for (i, g) in comparable.iter().enumerate().skip(1) {
        let newer: Vec<String> = comparable[..i]
            .iter()
            .map(|n| {
                let on: Vec<String> = n
                    .key
                    .iter()
                    .map(|k| {
                        let from = g.key.iter().find(|o| o.name == k.name);
                        format!("n.{} = {}", k.quoted(), converted("o", from, k))
                    })
                    .collect();
                format!(
                    " AND NOT EXISTS (SELECT 1 FROM {} n WHERE {})",
                    n.current(),
                    on.join(" AND ")
                )
            })
            .collect();
        live.push(format!(
            "SELECT {} FROM {} o WHERE NOT o.\"_DELETED\"{}",
            select(g, "o", &newest.row).join(", "),
            g.current(),
            newer.concat()
        ));
    }
    let mut changelog_cols = newest.all();
    changelog_cols.push(Column::new("_ingested_at", "TIMESTAMP_TZ"));
    let changes: Vec<String> = generations
        .iter()
        .rev()
        .map(|g| {
            let mut with_ingested = g.clone();
            with_ingested.row.push(Column::new("_ingested_at", "TIMESTAMP_TZ"));
            format!(
                "SELECT {} FROM {} o",
                select(&with_ingested, "o", &changelog_cols).join(", "),
                g.changelog()
            )
        })
        .collect();
    vec![
        format!(
            "CREATE OR REPLACE VIEW {} AS {}",
            newest.view(),
            live.join(" UNION ALL ")
        ),
        format!(
            "CREATE OR REPLACE VIEW {} AS {}",
            newest.changelog_view(),
            changes.join(" UNION ALL ")
        ),
    ]
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
        assert_eq!(l.changelog(), "\"DB\".\"S\".\"T_CHANGELOG_V1\"");
        assert_eq!(l.current(), "\"DB\".\"S\".\"T_V1\"");
        let views = views(std::slice::from_ref(&l));
        assert_eq!(
            views[0],
            "CREATE OR REPLACE VIEW \"DB\".\"S\".\"T\" AS SELECT o.\"ID\" AS \"ID\", o.\"AMOUNT\" AS \"AMOUNT\", \
             o.\"AT\" AS \"AT\", o.\"TAGS\" AS \"TAGS\" FROM \"DB\".\"S\".\"T_V1\" o WHERE NOT o.\"_DELETED\""
        );
        assert!(
            views[1].starts_with("CREATE OR REPLACE VIEW \"DB\".\"S\".\"T_CHANGELOG\" AS SELECT o.\"ID\" AS \"ID\"")
        );
        assert!(views[1].ends_with("o.\"_INGESTED_AT\" AS \"_INGESTED_AT\" FROM \"DB\".\"S\".\"T_CHANGELOG_V1\" o"));
        let [stage, current, changelog] = l.load();
        assert!(stage.starts_with("INSERT OVERWRITE INTO \"DB\".\"S\".\"T_STAGE_V1\""));
        assert!(stage.contains("value[1]::NUMBER(12,3)") && stage.contains("PARSE_JSON(?)"));
        assert!(changelog.contains(
            "WHERE NOT EXISTS (SELECT 1 FROM \"DB\".\"S\".\"T_CHANGELOG_V1\" t WHERE t.\"_COMMIT_LSN\" >= CAST(? AS NUMBER(38,0))"
        ));
        assert!(changelog.ends_with("t.\"ID\" = s.\"ID\")"));
        assert!(current.contains(
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY \"ID\" ORDER BY \"_COMMIT_LSN\" DESC, \"_LSN\" DESC) = 1"
        ));
        assert!(current.contains("WHEN MATCHED AND (s.\"_COMMIT_LSN\" > t.\"_COMMIT_LSN\""));
    }

    fn layout(cols: &[(&str, &str)], key: &[&str]) -> Layout {
        let row: Vec<Column> = cols.iter().map(|(f, t)| Column::new(f, t)).collect();
        Layout {
            qualifier: String::new(),
            base: "T".into(),
            generation: 1,
            key: row
                .iter()
                .filter(|c| key.contains(&c.field.as_str()))
                .cloned()
                .collect(),
            row,
        }
    }

    #[test]
    fn versions_widen_a_generation_or_start_the_next() {
        let v1 = layout(&[("id", "NUMBER(38,0)"), ("code", "TEXT")], &["id"]);
        let same = layout(&[("id", "NUMBER(38,0)")], &["id"]);
        assert_eq!(v1.evolve(&same), Evolution::Unchanged);
        let added = layout(&[("id", "NUMBER(38,0)"), ("code", "TEXT"), ("n", "FLOAT")], &["id"]);
        assert_eq!(
            v1.evolve(&added),
            Evolution::AddColumns(vec![Column::new("n", "FLOAT")])
        );
        assert_eq!(
            v1.add_columns(&[Column::new("n", "FLOAT")])[0],
            "ALTER TABLE \"T_CHANGELOG_V1\" ADD COLUMN IF NOT EXISTS \"N\" FLOAT"
        );
        let retyped = layout(&[("id", "NUMBER(38,0)"), ("code", "NUMBER(38,0)")], &["id"]);
        assert_eq!(
            v1.evolve(&retyped),
            Evolution::NewGeneration("column CODE changed type from TEXT to NUMBER(38,0)".into())
        );
        let rekeyed = layout(&[("id", "NUMBER(38,0)"), ("code", "TEXT")], &["id", "code"]);
        assert_eq!(
            v1.evolve(&rekeyed),
            Evolution::NewGeneration("the key changed from (ID NUMBER(38,0)) to (ID NUMBER(38,0), CODE TEXT)".into())
        );
    }

    #[test]
    fn views_read_each_key_from_the_newest_generation_that_holds_it() {
        let g1 = layout(&[("id", "NUMBER(38,0)"), ("code", "TEXT"), ("gone", "TEXT")], &["id"]);
        let mut g2 = layout(
            &[("id", "NUMBER(38,0)"), ("code", "NUMBER(38,0)"), ("tags", "VARIANT")],
            &["id"],
        );
        g2.generation = 2;
        let v = views(&[g1, g2]);
        assert_eq!(
            v[0],
            "CREATE OR REPLACE VIEW \"T\" AS \
             SELECT o.\"ID\" AS \"ID\", o.\"CODE\" AS \"CODE\", o.\"TAGS\" AS \"TAGS\" FROM \"T_V2\" o WHERE NOT o.\"_DELETED\" \
             UNION ALL SELECT o.\"ID\" AS \"ID\", TRY_CAST(TO_VARCHAR(o.\"CODE\") AS NUMBER(38,0)) AS \"CODE\", \
             CAST(NULL AS VARIANT) AS \"TAGS\" FROM \"T_V1\" o WHERE NOT o.\"_DELETED\" \
             AND NOT EXISTS (SELECT 1 FROM \"T_V2\" n WHERE n.\"ID\" = o.\"ID\")"
        );
        assert!(v[1].contains("FROM \"T_CHANGELOG_V2\" o UNION ALL SELECT"));
        assert!(v[1].ends_with("FROM \"T_CHANGELOG_V1\" o"));
    }

    #[test]
    fn schemas_that_are_not_envelopes_are_refused() {
        let (_, k) = schemas();
        let e = Layout::new("q", "t", &k, &k).unwrap_err();
        assert_eq!(e.0, "t: the value schema has no `after` field (not a CDC envelope)");
    }
}
