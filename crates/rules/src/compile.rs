//! Compiling rules from a schema and evaluating them.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use schema::{LogicalType, Named, Primitive, RecordSchema, Schema, Type};
use serde_json::Value;

use crate::cel_view::{self, Shape};
use crate::{render, EvalContext, FieldAccess, FieldRef, Violation};

/// The field properties that are rules. Anything else on a field is left alone.
pub const FIELD_RULES: &[&str] = &["range", "pattern", "length", "allowed", "required_when", "not_future"];

/// A rule that cannot be compiled, with the field or record it sits on.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("the schema's root is not a record, so it has no rules to compile")]
    NotARecord,
    #[error("{location}: rule \"{rule}\" is malformed: {message}")]
    Malformed {
        location: String,
        rule: String,
        message: String,
    },
    #[error("{location}: rule \"{rule}\" has an invalid regular expression")]
    Regex {
        location: String,
        rule: String,
        #[source]
        source: regex::Error,
    },
    #[error("{location}: rule \"{rule}\" is not valid CEL: {message}")]
    Cel {
        location: String,
        rule: String,
        message: String,
    },
}

#[derive(Debug)]
enum Check {
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
    Pattern(Regex),
    Length {
        min: Option<u64>,
        max: Option<u64>,
    },
    Allowed(Vec<Value>),
    RequiredWhen(Cel),
    /// `per_ms`: the field's units per millisecond (1000 for `*-micros`).
    NotFuture {
        tolerance_ms: i64,
        per_ms: i64,
    },
}

#[derive(Debug)]
struct FieldRule {
    index: usize,
    field: Arc<str>,
    rule: Arc<str>,
    check: Check,
}

/// A compiled CEL expression: the direct evaluator when the expression is in
/// its subset, always the interpreter's program for the rest.
#[derive(Debug)]
struct Cel {
    program: cel::Program,
    fast: Option<crate::fast::Fast>,
}

#[derive(Debug)]
struct RecordRule {
    name: Arc<str>,
    cel: Cel,
    expr: String,
}

/// What a CEL expression gave.
enum CelOutcome {
    Bool(bool),
    NotBool(String),
    Failed(String),
}

/// Runs CEL expressions for one record: the direct evaluator when it can,
/// else the interpreter, whose context (a CEL map of the whole record) is
/// built at most once, and only when needed.
struct LazyCel<'r> {
    set: &'r RuleSet,
    record: &'r dyn FieldAccess,
    now_ms: i64,
    context: Option<cel::Context<'static, 'static>>,
    interpreted: bool,
}

impl LazyCel<'_> {
    fn run(&mut self, cel: &Cel) -> CelOutcome {
        if !self.interpreted {
            if let Some(Ok(b)) = cel.fast.as_ref().map(|f| f.truth(self.record, self.now_ms)) {
                return CelOutcome::Bool(b);
            }
        }
        let context = match &mut self.context {
            Some(c) => c,
            slot => {
                let Some(env) = self.set.cel_env.as_ref() else {
                    return CelOutcome::Failed("no CEL environment".into());
                };
                let mut c = cel::Context::with_env(env.clone());
                c.add_variable_from_value("message", cel_view::to_cel(self.record, &self.set.shape));
                c.add_variable_from_value("now_ms", self.now_ms);
                slot.insert(c)
            }
        };
        match cel.program.execute(context) {
            Ok(cel::Value::Bool(b)) => CelOutcome::Bool(b),
            Ok(other) => CelOutcome::NotBool(format!("{other:?}")),
            Err(e) => CelOutcome::Failed(e.to_string()),
        }
    }
}

/// The compiled rules of one record schema.
pub struct RuleSet {
    field_rules: Vec<FieldRule>,
    record_rules: Vec<RecordRule>,
    /// How to build the CEL view of a record; only used when some rule is CEL.
    shape: Shape,
    /// CEL's standard environment, built once: building it per record costs
    /// more than all the field rules together.
    cel_env: Option<Arc<cel::Env>>,
}

fn malformed(location: &str, rule: &str, message: impl Into<String>) -> RuleError {
    RuleError::Malformed {
        location: location.to_string(),
        rule: rule.to_string(),
        message: message.into(),
    }
}

fn compile_cel(location: &str, rule: &str, expr: &str, fields: &HashMap<String, usize>) -> Result<Cel, RuleError> {
    let program = cel::Program::compile(expr).map_err(|e| RuleError::Cel {
        location: location.to_string(),
        rule: rule.to_string(),
        message: e.to_string(),
    })?;
    let fast = crate::fast::compile(program.expression(), fields);
    Ok(Cel { program, fast })
}

/// The type under an optional wrapper: `union { null, T }` gives `T`.
fn value_type(ty: &Type) -> &Type {
    ty.nullable_inner().unwrap_or(ty)
}

/// Reads `{"min": .., "max": ..}`: at least one bound, and min <= max.
fn bounds<T: PartialOrd + std::fmt::Display + Copy>(
    location: &str,
    rule: &str,
    v: &Value,
    get: impl Fn(&Value) -> Option<T>,
) -> Result<(Option<T>, Option<T>), RuleError> {
    let obj = v.as_object().ok_or_else(|| {
        malformed(
            location,
            rule,
            format!("expected an object like {{\"min\": ..., \"max\": ...}}, got {v}"),
        )
    })?;
    if let Some(k) = obj.keys().find(|k| *k != "min" && *k != "max") {
        return Err(malformed(
            location,
            rule,
            format!("unknown key \"{k}\" (expected \"min\" and/or \"max\")"),
        ));
    }
    let read = |k: &str| match obj.get(k) {
        None => Ok(None),
        Some(x) => get(x).map(Some).ok_or_else(|| {
            malformed(
                location,
                rule,
                format!("\"{k}\" must be a number of the right kind, got {x}"),
            )
        }),
    };
    let (min, max) = (read("min")?, read("max")?);
    match (min, max) {
        (None, None) => Err(malformed(location, rule, "needs \"min\", \"max\" or both")),
        (Some(a), Some(b)) if a > b => Err(malformed(location, rule, format!("min {a} is greater than max {b}"))),
        _ => Ok((min, max)),
    }
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("field_rules", &self.field_rules)
            .field("record_rules", &self.record_rules)
            .finish_non_exhaustive()
    }
}

impl RuleSet {
    /// Compiles the rules of `schema`'s root record.
    pub fn from_schema(schema: &Schema) -> Result<RuleSet, RuleError> {
        let record = schema.root_record().ok_or(RuleError::NotARecord)?;
        let fields: HashMap<String, usize> = record
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let mut field_rules = Vec::new();
        for (index, field) in record.fields.iter().enumerate() {
            let location = format!("{}.{}", record.name.name, field.name);
            let vty = value_type(&field.ty);
            for (key, v) in &field.props {
                if !FIELD_RULES.contains(&key.as_str()) {
                    continue;
                }
                let applies = check_applies(schema, key, vty);
                if let Err(wanted) = applies {
                    return Err(malformed(&location, key, format!("applies to {wanted} fields only")));
                }
                let Some(check) = field_check(&location, key, v, field, &fields)? else {
                    continue;
                };
                field_rules.push(FieldRule {
                    index,
                    field: field.name.as_str().into(),
                    rule: format!("{}.{key}", field.name).into(),
                    check,
                });
            }
        }
        let record_rules = record_rules(record, &fields)?;
        let needs_cel =
            !record_rules.is_empty() || field_rules.iter().any(|r| matches!(r.check, Check::RequiredWhen(_)));
        Ok(RuleSet {
            field_rules,
            record_rules,
            shape: cel_view::shape_of(schema, &schema.root, 0),
            cel_env: needs_cel.then(|| Arc::new(cel::Env::stdlib())),
        })
    }

    /// Number of compiled rules.
    pub fn len(&self) -> usize {
        self.field_rules.len() + self.record_rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of all rules, field rules first.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.field_rules
            .iter()
            .map(|r| &*r.rule)
            .chain(self.record_rules.iter().map(|r| &*r.name))
    }

    /// Checks a record against every rule and returns all violations.
    pub fn evaluate(&self, record: &dyn FieldAccess, ctx: &EvalContext) -> Vec<Violation> {
        let mut out = Vec::new();
        self.evaluate_into(record, ctx, &mut out);
        out
    }

    /// As [`RuleSet::evaluate`], appending to `out` (which can be reused).
    pub fn evaluate_into(&self, record: &dyn FieldAccess, ctx: &EvalContext, out: &mut Vec<Violation>) {
        self.evaluate_with(record, ctx, out, false);
    }

    /// As [`RuleSet::evaluate`], running every CEL expression on the cel
    /// interpreter. The results are the same; this exists so tests can prove
    /// it, and to rule the fast evaluator out when debugging.
    pub fn evaluate_interpreted(&self, record: &dyn FieldAccess, ctx: &EvalContext) -> Vec<Violation> {
        let mut out = Vec::new();
        self.evaluate_with(record, ctx, &mut out, true);
        out
    }

    fn evaluate_with(&self, record: &dyn FieldAccess, ctx: &EvalContext, out: &mut Vec<Violation>, interpreted: bool) {
        let mut cel = LazyCel {
            set: self,
            record,
            now_ms: ctx.now_ms,
            context: None,
            interpreted,
        };
        for rule in &self.field_rules {
            let value = record.field(rule.index);
            if let Some(message) = self.check_field(rule, &value, ctx, &mut cel) {
                out.push(Violation {
                    rule: rule.rule.clone(),
                    field: rule.field.clone(),
                    value: render(&value),
                    message,
                });
            }
        }
        for rule in &self.record_rules {
            let message = match cel.run(&rule.cel) {
                CelOutcome::Bool(true) => continue,
                CelOutcome::Bool(false) => format!("expected {}", rule.expr),
                CelOutcome::NotBool(v) => format!("expression {} gave {v}, not a boolean", rule.expr),
                CelOutcome::Failed(e) => format!("expression {} failed: {e}", rule.expr),
            };
            out.push(Violation {
                rule: rule.name.clone(),
                field: "".into(),
                value: String::new(),
                message,
            });
        }
    }

    fn check_field(
        &self,
        rule: &FieldRule,
        value: &FieldRef<'_>,
        ctx: &EvalContext,
        cel: &mut LazyCel<'_>,
    ) -> Option<String> {
        if let Check::RequiredWhen(condition) = &rule.check {
            if !matches!(value, FieldRef::Null) {
                return None;
            }
            return match cel.run(condition) {
                CelOutcome::Bool(false) => None,
                CelOutcome::Bool(true) => Some("required under this condition, but null".into()),
                CelOutcome::NotBool(v) => Some(format!("condition gave {v}, not a boolean")),
                CelOutcome::Failed(e) => Some(format!("condition failed: {e}")),
            };
        }
        if matches!(value, FieldRef::Null) {
            return None;
        }
        match (&rule.check, value) {
            (Check::Range { min, max }, v) => {
                let x = match v {
                    FieldRef::Int(i) => *i as f64,
                    FieldRef::Float(f) => *f,
                    _ => return None,
                };
                // NaN is outside every range.
                let ok = !x.is_nan() && min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m);
                (!ok).then(|| match (min, max) {
                    (Some(a), Some(b)) => format!("must be between {a} and {b}"),
                    (Some(a), None) => format!("must be at least {a}"),
                    (None, Some(b)) => format!("must be at most {b}"),
                    (None, None) => unreachable!("compile rejects a range with no bounds"),
                })
            }
            (Check::Pattern(re), FieldRef::Str(s) | FieldRef::Enum(s)) => {
                (!re.is_match(s)).then(|| format!("must match {}", re.as_str()))
            }
            (Check::Length { min, max }, v) => {
                let n = match v {
                    FieldRef::Str(s) => s.chars().count() as u64,
                    FieldRef::Bytes(b) => b.len() as u64,
                    FieldRef::Array(a) => a.len() as u64,
                    FieldRef::Map(m) => m.len() as u64,
                    _ => return None,
                };
                let ok = min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
                (!ok).then(|| match (min, max) {
                    (Some(a), Some(b)) => format!("length must be between {a} and {b}, is {n}"),
                    (Some(a), None) => format!("length must be at least {a}, is {n}"),
                    (None, Some(b)) => format!("length must be at most {b}, is {n}"),
                    (None, None) => unreachable!("compile rejects a length with no bounds"),
                })
            }
            (Check::Allowed(list), v) => {
                let found = list.iter().any(|a| match (a, v) {
                    (Value::String(a), FieldRef::Str(s) | FieldRef::Enum(s)) => a == s,
                    (Value::Number(a), FieldRef::Int(i)) => a.as_i64() == Some(*i),
                    (Value::Number(a), FieldRef::Float(f)) => a.as_f64() == Some(*f),
                    (Value::Bool(a), FieldRef::Bool(b)) => a == b,
                    _ => false,
                });
                (!found).then(|| format!("must be one of {}", Value::Array(list.clone())))
            }
            (Check::NotFuture { tolerance_ms, per_ms }, FieldRef::Int(t)) => {
                let t_ms = t.div_euclid(*per_ms);
                (t_ms > ctx.now_ms.saturating_add(*tolerance_ms)).then(|| {
                    format!(
                        "is {} ms in the future (tolerance {tolerance_ms} ms)",
                        t_ms - ctx.now_ms
                    )
                })
            }
            _ => None,
        }
    }
}

/// Which values a rule applies to; Err names what it needs.
fn check_applies(schema: &Schema, rule: &str, ty: &Type) -> Result<(), &'static str> {
    let prim = match ty {
        Type::Primitive { kind, .. } => Some(*kind),
        _ => None,
    };
    let is_enum = matches!(schema.resolve(ty), Some(Named::Enum(_)));
    let ok = match rule {
        "range" => matches!(
            prim,
            Some(Primitive::Int | Primitive::Long | Primitive::Float | Primitive::Double)
        ),
        "pattern" => matches!(prim, Some(Primitive::String)) || is_enum,
        "length" => {
            matches!(prim, Some(Primitive::String | Primitive::Bytes)) || matches!(ty, Type::Array(_) | Type::Map(_))
        }
        "not_future" => matches!(prim, Some(Primitive::Long | Primitive::Int)),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(match rule {
            "range" => "numeric",
            "pattern" => "string or enum",
            "length" => "string, bytes, array or map",
            _ => "timestamp (long)",
        })
    }
}

fn record_rules(record: &RecordSchema, fields: &HashMap<String, usize>) -> Result<Vec<RecordRule>, RuleError> {
    let location = record.name.name.as_str();
    let Some(v) = record.props.get("rules") else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| malformed(location, "rules", "expected a list of {\"name\", \"expr\"} objects"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let obj = r.as_object().ok_or_else(|| {
            malformed(
                location,
                &format!("rules[{i}]"),
                "expected an object with \"name\" and \"expr\"",
            )
        })?;
        if let Some(k) = obj.keys().find(|k| !["name", "expr", "doc"].contains(&k.as_str())) {
            return Err(malformed(
                location,
                &format!("rules[{i}]"),
                format!("unknown key \"{k}\" (expected name, expr, doc)"),
            ));
        }
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed(location, &format!("rules[{i}]"), "needs a non-empty \"name\""))?;
        if out.iter().any(|x: &RecordRule| &*x.name == name) {
            return Err(malformed(location, name, "a rule with this name is declared twice"));
        }
        let expr = obj
            .get("expr")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(location, name, "needs an \"expr\" string"))?;
        out.push(RecordRule {
            name: name.into(),
            cel: compile_cel(location, name, expr, fields)?,
            expr: expr.to_string(),
        });
    }
    Ok(out)
}

/// The check of one rule property of a field; `None` for a property that
/// is not a field rule.
fn field_check(
    location: &str,
    key: &str,
    v: &Value,
    field: &schema::Field,
    fields: &HashMap<String, usize>,
) -> Result<Option<Check>, RuleError> {
    Ok(Some(match key {
        "range" => {
            let (min, max) = bounds(location, key, v, Value::as_f64)?;
            Check::Range { min, max }
        }
        "length" => {
            let (min, max) = bounds(location, key, v, Value::as_u64)?;
            Check::Length { min, max }
        }
        "pattern" => {
            let p = v
                .as_str()
                .ok_or_else(|| malformed(location, key, "expected a regular expression string"))?;
            Check::Pattern(Regex::new(p).map_err(|source| RuleError::Regex {
                location: location.to_string(),
                rule: key.to_string(),
                source,
            })?)
        }
        "allowed" => {
            let list = v
                .as_array()
                .ok_or_else(|| malformed(location, key, "expected a list of values"))?;
            if list.is_empty() {
                return Err(malformed(location, key, "the list of allowed values is empty"));
            }
            Check::Allowed(list.clone())
        }
        "required_when" => {
            let expr = v
                .as_str()
                .ok_or_else(|| malformed(location, key, "expected a CEL expression string"))?;
            if !field.ty.is_nullable() {
                return Err(malformed(
                    location,
                    key,
                    "the field is not nullable, so it is always required",
                ));
            }
            Check::RequiredWhen(compile_cel(location, key, expr, fields)?)
        }
        "not_future" => not_future(location, key, v, value_type(&field.ty))?,
        _ => return Ok(None),
    }))
}

/// `not_future`: `true` or `{"tolerance_ms": N}`, in the timestamp's unit.
fn not_future(location: &str, key: &str, v: &Value, value_type: &Type) -> Result<Check, RuleError> {
    let tolerance_ms = match v {
        Value::Bool(true) => 0,
        Value::Object(o) => match o.get("tolerance_ms") {
            None => 0,
            Some(t) => t
                .as_i64()
                .filter(|t| *t >= 0)
                .ok_or_else(|| malformed(location, key, "\"tolerance_ms\" must be a non-negative integer"))?,
        },
        _ => return Err(malformed(location, key, "expected true or {\"tolerance_ms\": N}")),
    };
    // Timestamps may count microseconds or nanoseconds
    // (PostgreSQL's are micros); the rule is in ms.
    let per_ms = match value_type {
        Type::Primitive { logical: Some(l), .. } => match l {
            LogicalType::TimestampMicros | LogicalType::LocalTimestampMicros => 1_000,
            LogicalType::TimestampNanos | LogicalType::LocalTimestampNanos => 1_000_000,
            _ => 1,
        },
        _ => 1,
    };
    Ok(Check::NotFuture { tolerance_ms, per_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EvalContext, FieldAccess, FieldRef};

    /// A record as a list of field values, in schema order.
    struct Row(Vec<FieldRef<'static>>);

    impl FieldAccess for Row {
        fn field(&self, index: usize) -> FieldRef<'_> {
            self.0.get(index).cloned().unwrap_or(FieldRef::Null)
        }
    }

    fn rules(fields: &str, record_props: &str) -> Result<RuleSet, RuleError> {
        let json = format!(r#"{{"type":"record","name":"R","fields":[{fields}]{record_props}}}"#);
        RuleSet::from_schema(&Schema::parse_str(&json).unwrap())
    }

    fn broken(set: &RuleSet, row: Vec<FieldRef<'static>>) -> Vec<String> {
        set.evaluate(&Row(row), &EvalContext { now_ms: 0 })
            .iter()
            .map(|v| v.rule.to_string())
            .collect()
    }

    #[test]
    fn allowed_values_and_lengths_of_arrays() {
        let set = rules(
            r#"{"name":"kind","type":"string","allowed":["a","b"]},
               {"name":"ids","type":{"type":"array","items":"int"},"length":{"min":1,"max":2}}"#,
            "",
        )
        .unwrap();
        assert!(broken(&set, vec![FieldRef::Str("a"), FieldRef::Array(vec![FieldRef::Int(1)])]).is_empty());
        assert_eq!(
            broken(&set, vec![FieldRef::Str("c"), FieldRef::Array(vec![])]),
            ["kind.allowed", "ids.length"]
        );
    }

    #[test]
    fn not_future_reads_the_timestamp_unit() {
        let set = rules(
            r#"{"name":"ms","type":{"type":"long","logicalType":"timestamp-millis"},"not_future":{"tolerance_ms":10}},
               {"name":"us","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null,"not_future":true}"#,
            "",
        )
        .unwrap();
        // now = 0: 10 ms (or 10,000 µs) is within the tolerance of the first field only.
        assert!(broken(&set, vec![FieldRef::Int(10), FieldRef::Int(0)]).is_empty());
        assert_eq!(
            broken(&set, vec![FieldRef::Int(11), FieldRef::Int(999)]),
            ["ms.not_future"]
        );
        assert_eq!(
            broken(&set, vec![FieldRef::Int(0), FieldRef::Int(1_000)]),
            ["us.not_future"]
        );
    }

    #[test]
    fn required_when_uses_the_rest_of_the_record() {
        let set = rules(
            r#"{"name":"on_ground","type":"boolean"},
               {"name":"altitude","type":["null","double"],"default":null,"required_when":"message.on_ground == false"}"#,
            "",
        )
        .unwrap();
        assert!(broken(&set, vec![FieldRef::Bool(true), FieldRef::Null]).is_empty());
        assert!(broken(&set, vec![FieldRef::Bool(false), FieldRef::Float(1.0)]).is_empty());
        assert_eq!(
            broken(&set, vec![FieldRef::Bool(false), FieldRef::Null]),
            ["altitude.required_when"]
        );
    }

    #[test]
    fn a_record_rule_that_errors_is_a_violation_not_a_pass() {
        let set = rules(
            r#"{"name":"a","type":"int"}"#,
            r#","rules":[{"name":"bad","expr":"message.nope > 1"}]"#,
        )
        .unwrap();
        let v = set.evaluate(&Row(vec![FieldRef::Int(1)]), &EvalContext { now_ms: 0 });
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("failed"), "{}", v[0].message);
    }

    #[test]
    fn malformed_rules_name_their_field() {
        let cases = [
            (
                r#"{"name":"a","type":"string","range":{"min":0}}"#,
                "",
                "R.a: rule \"range\" is malformed: applies to numeric fields only",
            ),
            (
                r#"{"name":"a","type":"int","range":{}}"#,
                "",
                "R.a: rule \"range\" is malformed: needs \"min\", \"max\" or both",
            ),
            (
                r#"{"name":"a","type":"int","range":{"mn":1}}"#,
                "",
                "R.a: rule \"range\" is malformed: unknown key \"mn\" (expected \"min\" and/or \"max\")",
            ),
            (
                r#"{"name":"a","type":"string","pattern":"("}"#,
                "",
                "R.a: rule \"pattern\" has an invalid regular expression",
            ),
            (
                r#"{"name":"a","type":"int","required_when":"true"}"#,
                "",
                "R.a: rule \"required_when\" is malformed: the field is not nullable, so it is always required",
            ),
            (
                r#"{"name":"a","type":"int"}"#,
                r#","rules":[{"name":"x","expr":"1 +"}]"#,
                "R: rule \"x\" is not valid CEL",
            ),
            (
                r#"{"name":"a","type":"int"}"#,
                r#","rules":[{"expr":"true"}]"#,
                "R: rule \"rules[0]\" is malformed: needs a non-empty \"name\"",
            ),
        ];
        for (fields, props, expected) in cases {
            let err = rules(fields, props).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}\n  does not start with\n{expected}");
        }
    }
}

/// The direct evaluator against the cel interpreter, on random records.
#[cfg(test)]
mod differential {
    use proptest::prelude::*;

    use super::*;
    use crate::{EvalContext, FieldAccess, FieldRef};

    #[derive(Debug)]
    struct Row(Vec<FieldRef<'static>>);

    impl FieldAccess for Row {
        fn field(&self, index: usize) -> FieldRef<'_> {
            self.0.get(index).cloned().unwrap_or(FieldRef::Null)
        }
    }

    const EXPRESSIONS: &[&str] = &[
        "message.a == null || message.a <= message.e",
        "(message.b == null) == (message.c == null)",
        "message.a < now_ms + 1000",
        "message.b > 1.5 && message.d",
        "!(message.c == 'x') || message.a != 3",
        "message.a - message.e >= -5",
        "message.b <= message.a",
        "message.c < 'm'",
        "message.d == true || message.b != message.b",
        "message.a + 9223372036854775800 > 0",
        "message.e >= 0 && message.c != null",
        "message.d",
    ];

    fn rule_set() -> RuleSet {
        let rules: Vec<String> = EXPRESSIONS
            .iter()
            .enumerate()
            .map(|(i, e)| {
                format!(
                    r#"{{"name":"r{i}","expr":{}}}"#,
                    serde_json::Value::String(e.to_string())
                )
            })
            .collect();
        let json = format!(
            r#"{{"type":"record","name":"R","fields":[
                {{"name":"a","type":["null","long"],"default":null}},
                {{"name":"b","type":["null","double"],"default":null}},
                {{"name":"c","type":["null","string"],"default":null,"required_when":"message.a > 10"}},
                {{"name":"d","type":"boolean"}},
                {{"name":"e","type":["null","long"],"default":null}}],
              "rules":[{}]}}"#,
            rules.join(",")
        );
        RuleSet::from_schema(&Schema::parse_str(&json).unwrap()).unwrap()
    }

    fn int() -> impl Strategy<Value = FieldRef<'static>> {
        prop_oneof![
            Just(FieldRef::Null),
            (-20i64..20).prop_map(FieldRef::Int),
            prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(1_764_000_000_000i64)].prop_map(FieldRef::Int),
        ]
    }

    fn row() -> impl Strategy<Value = Row> {
        let double = prop_oneof![
            Just(FieldRef::Null),
            (-4.0f64..4.0).prop_map(FieldRef::Float),
            Just(FieldRef::Float(f64::NAN)),
        ];
        let string = prop_oneof![
            Just(FieldRef::Null),
            prop_oneof![Just("x"), Just("a"), Just("z"), Just("")].prop_map(FieldRef::Str),
        ];
        (int(), double, string, any::<bool>(), int())
            .prop_map(|(a, b, c, d, e)| Row(vec![a, b, c, FieldRef::Bool(d), e]))
    }

    #[test]
    fn every_expression_of_the_subset_compiles_to_the_fast_path() {
        let set = rule_set();
        let fast = set.record_rules.iter().filter(|r| r.cel.fast.is_some()).count();
        assert_eq!(fast, EXPRESSIONS.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn fast_and_interpreted_evaluation_agree(r in row(), now in prop_oneof![Just(0i64), Just(1_764_000_000_000i64)]) {
            let set = rule_set();
            let ctx = EvalContext { now_ms: now };
            prop_assert_eq!(set.evaluate(&r, &ctx), set.evaluate_interpreted(&r, &ctx));
        }
    }
}
