//! Avro schema resolution as a compatibility check.
//!
//! [`check`] answers "can a reader using schema R read everything written with
//! schema W?" by walking both schemas as the Avro specification's resolution
//! rules do (and as Apache Avro's `SchemaCompatibility` does): names must match
//! (or the reader must alias the writer's name), a reader field missing from
//! the writer needs a default, writer enum symbols must exist in the reader
//! unless the reader enum has a default, numeric types may be promoted
//! (int → long → float → double), `string` and `bytes` interchange, and each
//! writer union branch must be readable. Every problem found is reported, each
//! naming where it is (`FlightState.latitude`) and which rule it breaks.
//!
//! **Bounded.** Schemas come from outside (a registry client may post
//! anything), so the walk is bounded in time and depth. The outcome for a
//! pair of named types is computed once and reused wherever the pair meets
//! again (memoised on the pair, its problems' locations kept relative), so
//! shared types cost nothing more, and at most [`MAX_PROBLEMS`] problems
//! are kept, so neither does the report; a result that leaned on the
//! assumption of a recursive pair further up is not memoised, since that
//! pair may still fail. The walk also stops after [`MAX_STEPS`] steps or
//! [`MAX_DEPTH`] levels and then reports the pair as incompatible
//! ([`IncompatibilityKind::TooComplex`]): refusing is safe, hanging is not.
//! The parser bounds nesting as well (see [`crate::MAX_NESTING`]).
//!
//! [`CompatibilityLevel`] lifts that to the registry's levels: BACKWARD (the new
//! schema reads the latest), FORWARD (the latest reads the new), FULL (both),
//! their transitive forms (against every earlier version), and NONE.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::model::{Named, Primitive, Schema, Type};

/// Which rule of schema resolution an incompatibility breaks. The names match
/// Apache Avro's `SchemaIncompatibilityType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncompatibilityKind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
    /// Not a resolution rule: the schemas were too large or deep to compare
    /// within the checker's bounds, so they count as incompatible.
    TooComplex,
}

/// Steps (type pairs visited) one [`check`] may take.
pub const MAX_STEPS: usize = 1_000_000;
/// Levels of nesting one [`check`] follows.
pub const MAX_DEPTH: usize = 256;

impl IncompatibilityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NameMismatch => "NAME_MISMATCH",
            Self::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            Self::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            Self::ReaderFieldMissingDefaultValue => "READER_FIELD_MISSING_DEFAULT_VALUE",
            Self::TypeMismatch => "TYPE_MISMATCH",
            Self::MissingUnionBranch => "MISSING_UNION_BRANCH",
            Self::TooComplex => "TOO_COMPLEX_TO_CHECK",
        }
    }
}

/// One reason a reader cannot read a writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub kind: IncompatibilityKind,
    /// Where, as `Record.field.nested` (the reader's names).
    pub location: String,
    pub message: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.location, self.message, self.kind.as_str())
    }
}

/// Checks whether `reader` can read data written with `writer`. Returns every
/// incompatibility found; an empty list means compatible.
pub fn check(reader: &Schema, writer: &Schema) -> Vec<Incompatibility> {
    check_within(reader, writer, MAX_STEPS)
}

fn check_within(reader: &Schema, writer: &Schema, max_steps: usize) -> Vec<Incompatibility> {
    let mut c = Checker {
        max_steps,
        reader,
        writer,
        in_progress: HashMap::new(),
        assumed: usize::MAX,
        memo: HashMap::new(),
        steps: 0,
        depth: 0,
        exhausted: false,
        found: Vec::new(),
        dropped: 0,
    };
    let location = root_location(reader);
    c.check(&reader.root, &writer.root, &location);
    c.found
}

fn root_location(s: &Schema) -> String {
    match &s.root {
        Type::Named(n) => short(n).to_string(),
        _ => "<root>".to_string(),
    }
}

fn short(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

/// A pair of named types: (reader's full name, writer's).
type Pair = (String, String);

/// A memoised pair's outcome: whether it is compatible, and its problems,
/// each with its location after the pair's own, replayed wherever the
/// pair meets again.
struct Memo {
    incompatible: bool,
    problems: Vec<(IncompatibilityKind, String, String)>,
}

/// Problems kept for one check: replaying memoised ones at every path to
/// a shared type could otherwise make the report itself exponential.
pub const MAX_PROBLEMS: usize = 100;

/// A point in the problems found, to tell whether a walk found any and to
/// undo a trial walk: (problems kept, problems beyond [`MAX_PROBLEMS`]).
type Mark = (usize, usize);

struct Checker<'a> {
    reader: &'a Schema,
    writer: &'a Schema,
    /// Pairs of named types being compared higher up the stack, with how
    /// deep (0: outermost): recursion assumes they are compatible, the rest
    /// of the walk decides.
    in_progress: HashMap<Pair, usize>,
    /// The outermost in-progress pair the current walk assumed compatible
    /// (`usize::MAX`: none): a result that leans on it is not memoised.
    assumed: usize,
    memo: HashMap<Pair, Memo>,
    max_steps: usize,
    steps: usize,
    depth: usize,
    /// Whether a bound was hit (reported once).
    exhausted: bool,
    found: Vec<Incompatibility>,
    /// Problems found beyond [`MAX_PROBLEMS`]: counted, not kept.
    dropped: usize,
}

fn type_name(schema: &Schema, ty: &Type) -> String {
    match ty {
        Type::Primitive { kind, .. } => kind.name().to_string(),
        Type::Array(_) => "array".into(),
        Type::Map(_) => "map".into(),
        Type::Union(_) => "union".into(),
        Type::Named(n) => match schema.lookup(n) {
            Some(named) => format!("{} {}", named.kind(), n),
            None => n.clone(),
        },
    }
}

impl Checker<'_> {
    fn report(&mut self, kind: IncompatibilityKind, location: &str, message: String) {
        if self.found.len() >= MAX_PROBLEMS {
            self.dropped += 1;
            return;
        }
        self.found.push(Incompatibility {
            kind,
            location: location.to_string(),
            message,
        });
    }

    fn mark(&self) -> Mark {
        (self.found.len(), self.dropped)
    }

    /// Whether any problem was found since `mark`.
    fn found_since(&self, mark: Mark) -> bool {
        self.mark() != mark
    }

    fn rewind(&mut self, mark: Mark) {
        self.found.truncate(mark.0);
        self.dropped = mark.1;
    }

    /// Whether the pair is compatible, without recording anything.
    fn compatible(&mut self, r: &Type, w: &Type, location: &str) -> bool {
        let before = self.mark();
        let was_exhausted = self.exhausted;
        self.check(r, w, location);
        let ok = !self.found_since(before);
        if !was_exhausted && self.exhausted {
            // Keep the bound's report: the trial's answer is not to be trusted.
            return false;
        }
        self.rewind(before);
        ok
    }

    /// [`Checker::walk`] within the bounds of the module docs.
    fn check(&mut self, r: &Type, w: &Type, location: &str) {
        self.steps += 1;
        if self.steps > self.max_steps || self.depth >= MAX_DEPTH {
            if !self.exhausted {
                self.exhausted = true;
                self.report(
                    IncompatibilityKind::TooComplex,
                    location,
                    format!(
                        "the schemas are too large or deep to compare (over {} steps or {MAX_DEPTH} levels)",
                        self.max_steps
                    ),
                );
            }
            return;
        }
        self.depth += 1;
        self.walk(r, w, location);
        self.depth -= 1;
    }

    fn walk(&mut self, r: &Type, w: &Type, location: &str) {
        // A writer union: every branch the writer may have used must be readable.
        if let Type::Union(wb) = w {
            for (i, branch) in wb.iter().enumerate() {
                if let Type::Union(_) = r {
                    if !self.compatible(r, branch, location) {
                        let before = self.mark();
                        self.check_into_union(r, branch, location);
                        if !self.found_since(before) {
                            self.report(
                                IncompatibilityKind::MissingUnionBranch,
                                location,
                                format!(
                                    "reader union lacks a branch for writer branch {i} ({})",
                                    type_name(self.writer, branch)
                                ),
                            );
                        }
                    }
                } else {
                    let before = self.mark();
                    self.check(r, branch, location);
                    if self.found_since(before) && !matches!(branch, Type::Named(_)) {
                        // Rephrase a plain mismatch as the union rule it really is.
                        if self.found[before.0..]
                            .iter()
                            .all(|x| x.kind == IncompatibilityKind::TypeMismatch)
                        {
                            self.rewind(before);
                            self.report(
                                IncompatibilityKind::MissingUnionBranch,
                                location,
                                format!(
                                    "reader type {} cannot read writer union branch {i} ({})",
                                    type_name(self.reader, r),
                                    type_name(self.writer, branch)
                                ),
                            );
                        }
                    }
                }
            }
            return;
        }
        if let Type::Union(_) = r {
            self.check_into_union(r, w, location);
            return;
        }
        match (r, w) {
            (Type::Primitive { kind: rk, .. }, Type::Primitive { kind: wk, .. }) => {
                if !promotes(*wk, *rk) {
                    self.report(
                        IncompatibilityKind::TypeMismatch,
                        location,
                        format!("reader type {} cannot read writer type {}", rk.name(), wk.name()),
                    );
                }
            }
            (Type::Array(ri), Type::Array(wi)) => self.check(ri, wi, &format!("{location}[]")),
            (Type::Map(rv), Type::Map(wv)) => self.check(rv, wv, &format!("{location}{{}}")),
            (Type::Named(rn), Type::Named(wn)) => self.check_named(rn, wn, location),
            _ => self.report(
                IncompatibilityKind::TypeMismatch,
                location,
                format!(
                    "reader type {} cannot read writer type {}",
                    type_name(self.reader, r),
                    type_name(self.writer, w)
                ),
            ),
        }
    }

    /// A reader union reading a non-union writer type: some branch must match.
    fn check_into_union(&mut self, r: &Type, w: &Type, location: &str) {
        let Type::Union(rb) = r else { return };
        if rb.iter().any(|b| self.compatible(b, w, location)) {
            return;
        }
        // A branch of the writer's name is the one a reader resolves to
        // (Avro matches named branches by name first): say what inside it
        // does not read, down to the field, rather than only "no branch".
        if let Type::Named(wn) = w {
            let short = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
            let same_name = rb
                .iter()
                .find(|b| matches!(b, Type::Named(rn) if short(rn) == short(wn)));
            if let Some(branch) = same_name {
                let before = self.mark();
                self.check(branch, w, location);
                if self.found_since(before) {
                    return;
                }
            }
        }
        self.report(
            IncompatibilityKind::MissingUnionBranch,
            location,
            format!(
                "reader union has no branch that reads writer type {}",
                type_name(self.writer, w)
            ),
        );
    }

    fn check_named(&mut self, rn: &str, wn: &str, location: &str) {
        let (Some(r), Some(w)) = (self.reader.lookup(rn), self.writer.lookup(wn)) else {
            return;
        };
        let key = (rn.to_string(), wn.to_string());
        if let Some(memo) = self.memo.get(&key) {
            let again: Vec<(IncompatibilityKind, String, String)> = memo
                .problems
                .iter()
                .map(|(kind, rest, message)| (*kind, format!("{location}{rest}"), message.clone()))
                .collect();
            let lost = memo.incompatible && again.is_empty();
            for (kind, at, message) in again {
                self.report(kind, &at, message);
            }
            if lost {
                // Its problems were beyond the cap when it was checked.
                self.dropped += 1;
            }
            return;
        }
        if let Some(&at) = self.in_progress.get(&key) {
            self.assumed = self.assumed.min(at);
            return;
        }
        let (outer_assumed, at) = (self.assumed, self.in_progress.len());
        self.in_progress.insert(key.clone(), at);
        self.assumed = usize::MAX;
        let before = self.mark();
        self.compare_named(r, w, rn, wn, location);
        self.in_progress.remove(&key);
        // Sound to reuse only if it assumed nothing about pairs further out.
        if self.assumed >= at && !self.exhausted {
            let problems = self.found[before.0..]
                .iter()
                .map(|p| {
                    let rest = p.location.get(location.len()..).unwrap_or_default();
                    (p.kind, rest.to_string(), p.message.clone())
                })
                .collect();
            let incompatible = self.found_since(before);
            self.memo.insert(key, Memo { incompatible, problems });
        }
        let inner = if self.assumed >= at { usize::MAX } else { self.assumed };
        self.assumed = outer_assumed.min(inner);
    }

    /// The pair's own rules: names, then fields, symbols or size.
    fn compare_named(&mut self, r: &Named, w: &Named, rn: &str, wn: &str, location: &str) {
        let names_match = r.name().name == w.name().name || r.aliases().iter().any(|a| a == wn);
        match (r, w) {
            _ if !names_match && r.kind() == w.kind() => self.report(
                IncompatibilityKind::NameMismatch,
                location,
                format!(
                    "reader {} {rn} does not match writer name {wn} (and has no alias for it)",
                    r.kind()
                ),
            ),
            (Named::Record(rr), Named::Record(wr)) => {
                for rf in &rr.fields {
                    let floc = format!("{location}.{}", rf.name);
                    let wf = wr
                        .field(&rf.name)
                        .or_else(|| rf.aliases.iter().find_map(|a| wr.field(a)));
                    match wf {
                        Some((_, wf)) => self.check(&rf.ty, &wf.ty, &floc),
                        None if rf.default.is_some() => {}
                        None => self.report(
                            IncompatibilityKind::ReaderFieldMissingDefaultValue,
                            &floc,
                            format!(
                                "reader field \"{}\" is not in the writer's schema and has no default",
                                rf.name
                            ),
                        ),
                    }
                }
            }
            (Named::Enum(re), Named::Enum(we)) => {
                let missing: Vec<&str> = we
                    .symbols
                    .iter()
                    .filter(|s| !re.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() && re.default.is_none() {
                    self.report(
                        IncompatibilityKind::MissingEnumSymbols,
                        location,
                        format!(
                            "reader enum {rn} lacks writer symbols [{}] and has no default",
                            missing.join(", ")
                        ),
                    );
                }
            }
            (Named::Fixed(rf), Named::Fixed(wf)) => {
                if rf.size != wf.size {
                    self.report(
                        IncompatibilityKind::FixedSizeMismatch,
                        location,
                        format!(
                            "reader fixed {rn} has size {} but writer fixed {wn} has size {}",
                            rf.size, wf.size
                        ),
                    );
                }
            }
            _ => self.report(
                IncompatibilityKind::TypeMismatch,
                location,
                format!(
                    "reader type {} {rn} cannot read writer type {} {wn}",
                    r.kind(),
                    w.kind()
                ),
            ),
        }
    }
}

/// Avro's promotions: may data written as `writer` be read as `reader`?
fn promotes(writer: Primitive, reader: Primitive) -> bool {
    use Primitive::*;
    writer == reader
        || matches!(
            (writer, reader),
            (Int, Long | Float | Double) | (Long, Float | Double) | (Float, Double) | (String, Bytes) | (Bytes, String)
        )
}

/// The registry's compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityLevel {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub const ALL: [CompatibilityLevel; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Checks `new` against earlier versions, `previous` ordered oldest first.
    /// Non-transitive levels look at the latest only. Each problem names the
    /// direction and the version index it fails against.
    pub fn check(self, new: &Schema, previous: &[Schema]) -> Vec<LevelIncompatibility> {
        let against: Vec<(usize, &Schema)> = if self.transitive() {
            previous.iter().enumerate().collect()
        } else {
            previous.iter().enumerate().next_back().into_iter().collect()
        };
        let (backward, forward) = match self {
            Self::None => (false, false),
            Self::Backward | Self::BackwardTransitive => (true, false),
            Self::Forward | Self::ForwardTransitive => (false, true),
            Self::Full | Self::FullTransitive => (true, true),
        };
        let mut out = Vec::new();
        for (index, old) in against {
            if backward {
                out.extend(check(new, old).into_iter().map(|problem| LevelIncompatibility {
                    direction: Direction::Backward,
                    against_index: index,
                    problem,
                }));
            }
            if forward {
                out.extend(check(old, new).into_iter().map(|problem| LevelIncompatibility {
                    direction: Direction::Forward,
                    against_index: index,
                    problem,
                }));
            }
        }
        out
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compatibility level name that is not one of the seven.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid compatibility level \"{0}\": expected one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE")]
pub struct InvalidLevel(pub String);

impl FromStr for CompatibilityLevel {
    type Err = InvalidLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| InvalidLevel(s.to_string()))
    }
}

/// Which way a level check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The new schema cannot read data written with an earlier one.
    Backward,
    /// An earlier schema cannot read data written with the new one.
    Forward,
}

/// An incompatibility found by a level check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelIncompatibility {
    pub direction: Direction,
    /// Index into the `previous` slice that was checked against.
    pub against_index: usize,
    pub problem: Incompatibility,
}

impl fmt::Display for LevelIncompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.direction {
            Direction::Backward => "new schema cannot read old data",
            Direction::Forward => "old schema cannot read new data",
        };
        write!(f, "{} [{dir}]", self.problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(json: &str) -> Schema {
        Schema::parse_str(json).unwrap()
    }

    fn rec(fields: &str) -> Schema {
        s(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#))
    }

    #[test]
    fn added_field_without_default_breaks_backward() {
        let old = rec(r#"{"name":"a","type":"int"}"#);
        let new = rec(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        let problems = check(&new, &old);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, IncompatibilityKind::ReaderFieldMissingDefaultValue);
        assert_eq!(problems[0].location, "R.b");
        assert!(check(&old, &new).is_empty(), "old reader ignores the extra field");
    }

    #[test]
    fn promotions_go_one_way() {
        let int = rec(r#"{"name":"a","type":"int"}"#);
        let long = rec(r#"{"name":"a","type":"long"}"#);
        assert!(check(&long, &int).is_empty());
        let p = check(&int, &long);
        assert_eq!(p[0].kind, IncompatibilityKind::TypeMismatch);
        assert_eq!(p[0].location, "R.a");
    }

    #[test]
    fn enum_default_absorbs_new_symbols() {
        let r = s(r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#);
        let w = s(r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#);
        assert!(check(&r, &w).is_empty());
        let r2 = s(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#);
        assert_eq!(check(&r2, &w)[0].kind, IncompatibilityKind::MissingEnumSymbols);
    }

    #[test]
    fn recursive_records_terminate() {
        let a = s(r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#);
        assert!(check(&a, &a).is_empty());
    }

    /// `T0` is an int; each `Tk` has two fields of type `T(k-1)`: a walk
    /// that is not memoised visits 2^depth pairs.
    fn shared_chain(depth: usize, leaf: &str) -> Schema {
        let mut fields = Vec::new();
        for k in 1..=depth {
            let inner = if k == 1 {
                format!("\"{leaf}\"")
            } else {
                format!("\"T{}\"", k - 1)
            };
            fields.push(format!(
                r#"{{"name":"t{k}","type":{{"type":"record","name":"T{k}","fields":[{{"name":"a","type":{inner}}},{{"name":"b","type":{inner}}}]}}}}"#
            ));
        }
        s(&format!(
            r#"{{"type":"record","name":"Top","fields":[{}]}}"#,
            fields.join(",")
        ))
    }

    #[test]
    fn shared_named_types_are_compared_once() {
        let a = shared_chain(60, "int");
        assert!(check(&a, &shared_chain(60, "int")).is_empty());
        // A change at the bottom is found, in few steps, and the report is
        // capped: every path to it is a problem.
        let b = shared_chain(60, "string");
        let problems = check_within(&b, &a, 10_000);
        assert!(!problems.is_empty());
        assert!(
            problems.iter().all(|p| p.kind == IncompatibilityKind::TypeMismatch),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.location == "Top.t1.a"), "{problems:?}");
        assert_eq!(problems.len(), MAX_PROBLEMS);
        assert!(problems.iter().any(|p| p.location == "Top.t2.b.a"), "{problems:?}");
    }

    #[test]
    fn wide_schemas_check_in_linear_steps() {
        let fields: Vec<String> = (0..5_000)
            .map(|i| format!(r#"{{"name":"f{i}","type":["null","int","string"],"default":null}}"#))
            .collect();
        let wide = rec(&fields.join(","));
        assert!(check_within(&wide, &wide, 100_000).is_empty());
    }

    #[test]
    fn beyond_the_bounds_the_pair_is_incompatible() {
        let fields: Vec<String> = (0..100).map(|i| format!(r#"{{"name":"f{i}","type":"int"}}"#)).collect();
        let wide = rec(&fields.join(","));
        let problems = check_within(&wide, &wide, 50);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].kind, IncompatibilityKind::TooComplex);
        // A recursive pair still terminates and stays compatible.
        let list = s(
            r#"{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}"#,
        );
        assert!(check(&list, &list).is_empty());
    }

    #[test]
    fn levels() {
        let v1 = rec(r#"{"name":"a","type":"int"}"#);
        let v2 = rec(r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#);
        let v3 = rec(r#"{"name":"b","type":"int","default":0}"#);
        assert!(CompatibilityLevel::Full
            .check(&v2, std::slice::from_ref(&v1))
            .is_empty());
        // v3 drops `a` (no default in v1/v2): forward-incompatible.
        assert!(!CompatibilityLevel::Forward
            .check(&v3, &[v1.clone(), v2.clone()])
            .is_empty());
        assert!(CompatibilityLevel::Backward
            .check(&v3, &[v1.clone(), v2.clone()])
            .is_empty());
        assert!(CompatibilityLevel::None
            .check(&v3, std::slice::from_ref(&v1))
            .is_empty());
        assert_eq!(
            "full_transitive".parse::<CompatibilityLevel>().unwrap(),
            CompatibilityLevel::FullTransitive
        );
        assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
    }
}
