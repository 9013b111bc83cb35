//! The Avro schema model every other Contrail crate works from.
//!
//! A schema arrives as JSON (an `.avsc` compiled from `schemas/*.avdl`, or the
//! text a registry stores) and is parsed once into a [`Schema`]: a tree of
//! [`Type`]s whose named types (records, enums, fixed) live in a table keyed by
//! full name, so recursive schemas are plain references rather than cycles.
//! Custom properties (`doc`, data-quality rules such as `range` or `pattern`)
//! are kept on the nodes that carried them, because rules travel inside the
//! schema through the registry.
//!
//! From a parsed schema this crate derives:
//! - [`canonical_form`]: Avro's Parsing Canonical Form, the identity the
//!   registry deduplicates on, and its 64-bit Rabin [`fingerprint`].
//! - [`compatibility`]: Avro's schema-resolution rules (can a reader with
//!   schema R read data written with schema W?), the one implementation shared
//!   by `contrail schema check` and the registry server.
//!
//! Nothing here performs I/O; errors are [`SchemaError`] values naming the JSON
//! path at fault.

mod canonical;
pub mod compatibility;
mod model;
mod parse;

pub use canonical::{canonical_form, fingerprint, normalized_json};
pub use compatibility::{check, CompatibilityLevel, Incompatibility, IncompatibilityKind};
pub use model::{EnumSchema, Field, FixedSchema, LogicalType, Name, Named, Primitive, RecordSchema, Schema, Type};
pub use parse::{MAX_DECIMAL_PRECISION, MAX_NESTING};

/// A schema that could not be parsed. `path` is where in the JSON document the
/// problem sits, in the form `FlightState.fields[3].type`.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}
