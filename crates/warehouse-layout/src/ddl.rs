//! The table DDL committed under `snowflake/`, generated from `schemas/`
//! (`contrail schema ddl`), one file per table version. Pure: text in, text
//! out.
//!
//! `snowflake/tables.toml` names each table, the `schemas/` record its rows
//! follow and its key. `snowflake/tables/<table>/v<N>.sql` is version N of
//! that table's DDL: `v1.sql` creates generation 1 (changelog, current
//! state, staging tables, views); each later version holds what the sink
//! applies when the record changes that way: ADD COLUMNs, or the tables of
//! a new generation and repointed views (see `tables`). The statements are
//! the sink's own, unqualified: run them in the sink's schema.
//!
//! Each file records its version's layout on a `-- layout:` line, so the
//! files are regenerated from themselves and `--check` catches both a
//! hand-edited file and a `schemas/` change with no new version written.

use serde::Deserialize;

use crate::tables::{place, Evolution, Layout};

/// `snowflake/tables.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesFile {
    #[serde(rename = "table", default)]
    pub tables: Vec<TableSpec>,
}

impl TablesFile {
    pub fn parse(text: &str) -> Result<TablesFile, DdlError> {
        toml::from_str(text).map_err(|e| DdlError {
            file: "snowflake/tables.toml".into(),
            message: e.to_string(),
        })
    }
}

/// One source table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The source table's name: the tables are `<NAME>_V<n>`, ….
    pub name: String,
    /// The full name of the record in `schemas/` its rows follow.
    pub record: String,
    /// The record's fields that form the primary key.
    pub key: Vec<String>,
}

/// What is wrong with the committed files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct DdlError {
    pub file: String,
    pub message: String,
}

/// A DDL file's version number and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub number: u32,
    pub text: String,
}

const LAYOUT_PREFIX: &str = "-- layout: ";

/// The versions `spec`'s directory should hold: every committed one
/// regenerated from its own layout line, then a new one when `current`
/// (the layout `schemas/` gives now) changes the newest.
pub fn versions(spec: &TableSpec, current: &Layout, committed: &[Version]) -> Result<Vec<Version>, DdlError> {
    let mut committed = committed.to_vec();
    committed.sort_by_key(|v| v.number);
    let mut generations: Vec<Layout> = Vec::new();
    let mut out = Vec::new();
    for (i, v) in committed.iter().enumerate() {
        let file = format!("snowflake/tables/{}/v{}.sql", spec.name, v.number);
        let err = |message: String| DdlError {
            file: file.clone(),
            message,
        };
        if v.number as usize != i + 1 {
            return Err(err(format!("expected v{}.sql: versions go 1, 2, 3, …", i + 1)));
        }
        let line = v
            .text
            .lines()
            .find_map(|l| l.strip_prefix(LAYOUT_PREFIX))
            .ok_or_else(|| err(format!("no `{}` line: regenerate the file", LAYOUT_PREFIX.trim())))?;
        let layout: Layout =
            serde_json::from_str(line).map_err(|e| err(format!("the layout line does not parse: {e}")))?;
        out.push(render(spec, v.number, &mut generations, layout));
    }
    let changed = match generations.last() {
        None => true,
        Some(newest) => newest.evolve(current) != Evolution::Unchanged,
    };
    if changed {
        out.push(render(spec, out.len() as u32 + 1, &mut generations, current.clone()));
    }
    Ok(out)
}

fn render(spec: &TableSpec, number: u32, generations: &mut Vec<Layout>, layout: Layout) -> Version {
    let layout_line = serde_json::to_string(&layout).unwrap_or_default();
    let (change, ddl) = place(generations, layout);
    let mut text = format!(
        "-- {name}: table DDL version {number}, generated from schemas/ by `contrail schema ddl`; do not edit.\n\
         -- Rows follow {record}, key ({key}). Run in the sink's schema\n\
         -- (USE SCHEMA CONTRAIL.FLIGHTS); the sink applies the same statements itself.\n\
         -- Change: {change}\n\
         {LAYOUT_PREFIX}{layout_line}\n",
        name = spec.name.to_uppercase(),
        record = spec.record,
        key = spec.key.join(", "),
    );
    for stmt in ddl {
        text.push('\n');
        text.push_str(&stmt);
        text.push_str(";\n");
    }
    Version { number, text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schema::Schema;

    fn layout(fields: &str) -> Layout {
        let s = Schema::parse_str(&format!(
            r#"{{"type":"record","name":"Row","namespace":"n","fields":[{fields}]}}"#
        ))
        .unwrap();
        Layout::for_row("", "t", &s, "n.Row", &["id"]).unwrap()
    }

    fn spec() -> TableSpec {
        TableSpec {
            name: "t".into(),
            record: "n.Row".into(),
            key: vec!["id".into()],
        }
    }

    #[test]
    fn versions_follow_the_schema_and_regenerate_from_themselves() {
        let v1 = layout(r#"{"name":"id","type":"long"},{"name":"code","type":"string"}"#);
        let first = versions(&spec(), &v1, &[]).unwrap();
        assert_eq!(first.len(), 1);
        assert!(first[0].text.contains("-- Change: create\n"));
        assert!(first[0]
            .text
            .contains("\nCREATE TABLE IF NOT EXISTS \"T_V1\" (\"ID\" NUMBER(38,0), \"CODE\" TEXT, "));
        assert!(first[0]
            .text
            .contains("\nCREATE OR REPLACE VIEW \"T\" AS SELECT o.\"ID\" AS \"ID\""));
        // Up to date: the same files again.
        assert_eq!(versions(&spec(), &v1, &first).unwrap(), first);

        let added = layout(
            r#"{"name":"id","type":"long"},{"name":"code","type":"string"},{"name":"n","type":["null","double"]}"#,
        );
        let second = versions(&spec(), &added, &first).unwrap();
        assert_eq!(second.len(), 2);
        assert!(second[1].text.contains("-- Change: add columns N\n"));
        assert!(second[1]
            .text
            .contains("\nALTER TABLE \"T_V1\" ADD COLUMN IF NOT EXISTS \"N\" FLOAT;\n"));

        let retyped = layout(r#"{"name":"id","type":"long"},{"name":"code","type":"long"}"#);
        let third = versions(&spec(), &retyped, &second).unwrap();
        assert!(third[2]
            .text
            .contains("-- Change: new generation: column CODE changed type from TEXT to NUMBER(38,0)\n"));
        assert!(third[2].text.contains("\nCREATE TABLE IF NOT EXISTS \"T_V2\" "));
    }

    #[test]
    fn hand_edits_and_gaps_are_caught() {
        let v1 = layout(r#"{"name":"id","type":"long"}"#);
        let mut files = versions(&spec(), &v1, &[]).unwrap();
        files[0].text = files[0].text.replace("\"_TXID\" NUMBER(38,0)", "\"_TXID\" TEXT");
        assert_ne!(versions(&spec(), &v1, &files).unwrap()[0], files[0]);
        let gap = Version {
            number: 2,
            text: String::new(),
        };
        let e = versions(&spec(), &v1, &[gap]).unwrap_err();
        assert_eq!(e.file, "snowflake/tables/t/v2.sql");
        assert!(e.message.contains("expected v1.sql"));
        let bare = Version {
            number: 1,
            text: "CREATE TABLE x (a int);".into(),
        };
        assert!(versions(&spec(), &v1, &[bare])
            .unwrap_err()
            .message
            .contains("no `-- layout:` line"));
    }
}
