//! `contrail schema lint`: conventions and rule checks with source positions.
//!
//! Checks, each a stable code so CI output can be grepped:
//! - `naming`: records and enums in UpperCamelCase, fields in snake_case,
//!   enum symbols in UPPER_SNAKE_CASE;
//! - `doc`: every named type and field has a doc comment;
//! - `optional-default`: every nullable field has a default (null first);
//! - `enum-default`: every enum has a default, so readers survive new symbols;
//! - `rule`: the data-quality rules compile (known kinds, well-formed
//!   arguments, valid regexes and CEL, applied to fitting types);
//! - `unknown-property`: a field property that is not a rule (a typo such as
//!   `@rnage` would otherwise silently check nothing).

use std::fmt;

use schema::{Named, Type};

use crate::{Compiled, Position};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintMessage {
    pub severity: Severity,
    pub code: &'static str,
    /// `Record` or `Record.field`.
    pub location: String,
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for LintMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match &self.position {
            Some(p) => write!(f, "{p}: {sev}[{}]: {}: {}", self.code, self.location, self.message),
            None => write!(f, "{sev}[{}]: {}: {}", self.code, self.location, self.message),
        }
    }
}

fn is_upper_camel(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && !s.contains('_')
}

fn is_snake(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn is_upper_snake(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Lints everything in `compiled`, sorted by file position.
pub fn lint(compiled: &Compiled) -> Vec<LintMessage> {
    let mut l = Linter {
        compiled,
        out: Vec::new(),
    };
    for c in &compiled.schemas {
        let Type::Named(root) = &c.schema.root else { continue };
        let Some(named) = c.schema.lookup(root) else { continue };
        let short = named.name().name.clone();
        match named {
            Named::Record(r) => {
                l.named(&short, "record", r.doc.as_deref());
                for f in &r.fields {
                    l.field(&short, f);
                }
                l.rules(&short, &c.schema);
            }
            Named::Enum(e) => l.enumeration(&short, e),
            Named::Fixed(f) => l.doc(&short, "fixed", f.doc.as_deref()),
        }
    }
    let mut out = l.out;
    out.sort_by(|a, b| {
        let key = |m: &LintMessage| m.position.as_ref().map(|p| (p.file.clone(), p.line, p.column));
        key(a).cmp(&key(b))
    });
    out
}

/// The messages found so far, each placed at its source position.
struct Linter<'a> {
    compiled: &'a Compiled,
    out: Vec<LintMessage>,
}

impl Linter<'_> {
    fn push(&mut self, severity: Severity, code: &'static str, location: String, message: String) {
        let position = self
            .compiled
            .position(&location)
            .or_else(|| self.compiled.position(location.split('.').next().unwrap_or_default()))
            .cloned();
        self.out.push(LintMessage {
            severity,
            code,
            location,
            position,
            message,
        });
    }

    fn doc(&mut self, location: &str, what: &str, doc: Option<&str>) {
        if doc.is_none_or(|d| d.trim().is_empty()) {
            self.push(
                Severity::Warning,
                "doc",
                location.into(),
                format!("{what} has no doc comment"),
            );
        }
    }

    /// A record's or enum's name and doc.
    fn named(&mut self, short: &str, what: &str, doc: Option<&str>) {
        if !is_upper_camel(short) {
            self.push(
                Severity::Warning,
                "naming",
                short.into(),
                format!("{what} names are UpperCamelCase"),
            );
        }
        self.doc(short, what, doc);
    }

    fn field(&mut self, short: &str, f: &schema::Field) {
        let loc = format!("{short}.{}", f.name);
        if !is_snake(&f.name) {
            self.push(
                Severity::Warning,
                "naming",
                loc.clone(),
                "field names are snake_case".into(),
            );
        }
        self.doc(&loc, "field", f.doc.as_deref());
        if f.ty.is_nullable() {
            match &f.default {
                None => self.push(
                    Severity::Error,
                    "optional-default",
                    loc.clone(),
                    "optional field has no default; add `= null` so readers of older data can fill it in".into(),
                ),
                Some(d) if !d.is_null() => self.push(
                    Severity::Warning,
                    "optional-default",
                    loc.clone(),
                    format!("optional field defaults to {d}, not null"),
                ),
                Some(_) => {}
            }
        }
        for key in f.props.keys() {
            if !rules::FIELD_RULES.contains(&key.as_str()) {
                self.push(
                    Severity::Warning,
                    "unknown-property",
                    loc.clone(),
                    format!(
                        "property \"{key}\" is not a rule and checks nothing (rules: {})",
                        rules::FIELD_RULES.join(", ")
                    ),
                );
            }
        }
    }

    /// The record's rules compile, or the error at its location.
    fn rules(&mut self, short: &str, schema: &schema::Schema) {
        let Err(e) = rules::RuleSet::from_schema(schema) else {
            return;
        };
        let location = match &e {
            rules::RuleError::Malformed { location, .. }
            | rules::RuleError::Regex { location, .. }
            | rules::RuleError::Cel { location, .. } => location.clone(),
            rules::RuleError::NotARecord => short.to_string(),
        };
        let message = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        let message = message
            .strip_prefix(&format!("{location}: "))
            .unwrap_or(&message)
            .to_string();
        self.push(Severity::Error, "rule", location, message);
    }

    fn enumeration(&mut self, short: &str, e: &schema::EnumSchema) {
        self.named(short, "enum", e.doc.as_deref());
        if let Some(bad) = e.symbols.iter().find(|s| !is_upper_snake(s)) {
            self.push(
                Severity::Warning,
                "naming",
                short.into(),
                format!("enum symbol {bad} is not UPPER_SNAKE_CASE"),
            );
        }
        if e.default.is_none() {
            self.push(
                Severity::Warning,
                "enum-default",
                short.into(),
                "enum has no default; readers fail on symbols added later".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_text(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.avdl"), text).unwrap();
        let compiled = crate::compile_dir(dir.path()).unwrap();
        lint(&compiled)
            .into_iter()
            .map(|m| {
                let s = m.to_string();
                s.rsplit_once("t.avdl:").map_or(s.clone(), |(_, r)| r.to_string())
            })
            .collect()
    }

    #[test]
    fn reports_each_problem_at_its_declaration() {
        let found = lint_text(
            "@namespace(\"x\")\nprotocol P {\n  /** ok */\n  record badName {\n    union { null, int } @range({\"min\": 5, \"max\": 1}) a;\n    /** d */ string @rnage({}) b;\n  }\n}\n",
        );
        assert_eq!(
            found,
            vec![
                "4:10: warning[naming]: badName: record names are UpperCamelCase",
                "5:54: warning[doc]: badName.a: field has no doc comment",
                "5:54: error[optional-default]: badName.a: optional field has no default; add `= null` so readers of older data can fill it in",
                "5:54: error[rule]: badName.a: rule \"range\" is malformed: min 5 is greater than max 1",
                "6:32: warning[unknown-property]: badName.b: property \"rnage\" is not a rule and checks nothing (rules: range, pattern, length, allowed, required_when, not_future)",
            ]
        );
    }

    #[test]
    fn the_flight_schemas_are_clean() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let compiled = crate::compile_dir(&dir).unwrap();
        let found: Vec<String> = lint(&compiled).iter().map(ToString::to_string).collect();
        assert!(found.is_empty(), "{found:#?}");
    }
}
