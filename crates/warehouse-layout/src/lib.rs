//! The warehouse's tables for a CDC topic, derived from its registered key
//! and value schemas, and the SQL that creates, evolves and loads them.
//! Pure: schemas in, SQL text out; the sink runs the statements, and
//! `contrail schema ddl` writes them under `snowflake/`.
//!
//! - [`tables`]: a topic's [`tables::Layout`] per generation, how a new
//!   schema version is placed (widen, or a new generation), and the
//!   staging, MERGE and changelog statements of a load.
//! - [`ddl`]: the committed DDL files, one per table version, regenerated
//!   from themselves and checked against `schemas/`.

pub mod ddl;
pub mod tables;

/// An identifier quoted for Snowflake SQL, exactly as written (quotes
/// doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
