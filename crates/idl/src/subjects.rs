//! `registry/subjects.toml`: which record each registry subject holds.

use std::path::{Path, PathBuf};

use schema::CompatibilityLevel;
use serde::Deserialize;

use crate::IdlError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubjects {
    #[serde(default)]
    subject: Vec<RawSubject>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    name: String,
    schema: String,
    compatibility: Option<String>,
}

/// One subject: its name, the full name of the record it holds, and the
/// compatibility level it must keep.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectConfig {
    pub name: String,
    pub schema: String,
    pub compatibility: CompatibilityLevel,
}

/// The validated subject list.
#[derive(Debug, Clone, Default)]
pub struct Subjects {
    pub subjects: Vec<SubjectConfig>,
    pub path: PathBuf,
}

impl Subjects {
    /// Reads and validates the file; `compiled` is used to check that every
    /// subject names a compiled record.
    pub fn load(path: &Path, compiled: &crate::Compiled) -> Result<Subjects, IdlError> {
        let text = std::fs::read_to_string(path).map_err(|source| IdlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, compiled)
    }

    pub fn parse(path: &Path, text: &str, compiled: &crate::Compiled) -> Result<Subjects, IdlError> {
        let config = |message: String| IdlError::Config {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawSubjects = toml::from_str(text).map_err(|e| config(e.to_string()))?;
        let mut subjects = Vec::new();
        for s in raw.subject {
            if s.name.trim().is_empty() {
                return Err(config("a subject has an empty name".into()));
            }
            if subjects.iter().any(|x: &SubjectConfig| x.name == s.name) {
                return Err(config(format!("subject \"{}\" is listed twice", s.name)));
            }
            match compiled.get(&s.schema) {
                Some(c) if c.schema.root_record().is_some() => {}
                Some(_) => return Err(config(format!("subject \"{}\": {} is not a record", s.name, s.schema))),
                None => {
                    let known: Vec<&str> = compiled
                        .schemas
                        .iter()
                        .filter(|c| c.schema.root_record().is_some())
                        .map(|c| c.name.as_str())
                        .collect();
                    return Err(config(format!(
                        "subject \"{}\" names schema {}, which schemas/ does not define (records: {})",
                        s.name,
                        s.schema,
                        known.join(", ")
                    )));
                }
            }
            let compatibility = match s.compatibility {
                None => CompatibilityLevel::default(),
                Some(l) => l
                    .parse()
                    .map_err(|e: schema::compatibility::InvalidLevel| config(format!("subject \"{}\": {e}", s.name)))?,
            };
            subjects.push(SubjectConfig {
                name: s.name,
                schema: s.schema,
                compatibility,
            });
        }
        Ok(Subjects {
            subjects,
            path: path.to_path_buf(),
        })
    }
}
