//! The schema-first workflow over a project's files.
//!
//! ```text
//! schemas/*.avdl ──compile──▶ named schemas (JSON + parsed) ──▶ codegen, rules
//!        │                              │
//!        └── positions (file:line:col)  └── registry/subjects.toml ──▶ registry/schemas/<subject>.avsc
//! ```
//!
//! [`compile_dir`] compiles every `.avdl` file of a directory with the `avdl`
//! crate (a faithful port of Avro 1.12's IDL compiler that keeps custom
//! properties, so data-quality rules survive), parses each named schema, and
//! records where each type and field is declared so messages can point at the
//! source. [`Subjects`] reads `registry/subjects.toml`, which says which record
//! each registry subject holds and the compatibility level it must keep.
//! [`lint`] checks conventions and rules and reports `file:line:column`.

mod lint;
mod positions;
mod subjects;

use std::path::{Path, PathBuf};

pub use lint::{lint, LintMessage, Severity};
pub use positions::Position;
pub use subjects::{SubjectConfig, Subjects};

/// Errors reading or compiling a project's schemas.
#[derive(Debug, thiserror::Error)]
pub enum IdlError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The IDL compiler's diagnostic, rendered with the source excerpt.
    #[error("{path}: IDL does not compile:\n{report}")]
    Compile { path: PathBuf, report: String },
    #[error("{path}: compiled schema {name} is invalid")]
    Schema {
        path: PathBuf,
        name: String,
        #[source]
        source: schema::SchemaError,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("no .avdl files in {0}")]
    Empty(PathBuf),
}

/// One named type compiled from IDL: its self-contained schema.
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    /// Full name, e.g. `io.contrail.flight.FlightState`.
    pub name: String,
    pub json: serde_json::Value,
    pub schema: schema::Schema,
    /// The `.avdl` file it came from.
    pub file: PathBuf,
}

/// Everything compiled from a directory of `.avdl` files.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// In file order, then declaration order.
    pub schemas: Vec<CompiledSchema>,
    pub positions: positions::Index,
}

impl Compiled {
    pub fn get(&self, name: &str) -> Option<&CompiledSchema> {
        self.schemas.iter().find(|s| s.name == name)
    }

    /// Where a type or field (`Record` or `Record.field`, short names) is declared.
    pub fn position(&self, location: &str) -> Option<&Position> {
        self.positions.find(location)
    }
}

/// Compiles every `.avdl` file directly in `dir`, in name order.
pub fn compile_dir(dir: &Path) -> Result<Compiled, IdlError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| IdlError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "avdl"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(IdlError::Empty(dir.to_path_buf()));
    }
    let mut compiled = Compiled::default();
    for file in files {
        compile_file(&file, dir, &mut compiled)?;
    }
    Ok(compiled)
}

fn compile_file(file: &Path, import_dir: &Path, into: &mut Compiled) -> Result<(), IdlError> {
    let text = std::fs::read_to_string(file).map_err(|source| IdlError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let output = avdl::Idl2Schemata::new()
        .import_dir(import_dir)
        .extract(file)
        .map_err(|report| IdlError::Compile {
            path: file.to_path_buf(),
            report: format!("{report:?}"),
        })?;
    for named in output.schemas {
        let parsed = schema::Schema::parse(&named.schema).map_err(|source| IdlError::Schema {
            path: file.to_path_buf(),
            name: named.name.clone(),
            source,
        })?;
        let full = match &parsed.root {
            schema::Type::Named(n) => n.clone(),
            _ => named.name.clone(),
        };
        if into.schemas.iter().any(|s| s.name == full) {
            continue;
        }
        into.schemas.push(CompiledSchema {
            name: full,
            json: named.schema,
            schema: parsed,
            file: file.to_path_buf(),
        });
    }
    into.positions.index_file(file, &text);
    Ok(())
}

/// Pretty JSON as written to `.avsc` files, with a trailing newline.
pub fn avsc_text(json: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(json).unwrap_or_default();
    s.push('\n');
    s
}
