//! Data-quality rules that travel inside the schema.
//!
//! Rules are schema properties, so every schema version in the registry
//! carries its own rules and every consumer of that version enforces the same
//! ones. Two kinds exist:
//!
//! - **Field rules**, properties placed on a field in the IDL
//!   (`union { null, double } @range({"min": -90, "max": 90}) latitude = null;`):
//!   `range` (`min`/`max`, inclusive), `pattern` (a regular expression the
//!   whole value must match), `length` (`min`/`max` characters, bytes or
//!   items), `allowed` (a list of permitted values), `required_when` (a CEL
//!   condition under which the field must not be null), and `not_future`
//!   (`tolerance_ms`: a timestamp no later than now plus the tolerance).
//!   Field rules other than `required_when` pass on null.
//! - **Record rules**, a `rules` list on the record, each
//!   `{"name", "expr", "doc"}` where `expr` is a CEL expression over `message`
//!   that must be true, the form Confluent's data contracts use for CEL
//!   conditions.
//!
//! [`RuleSet::from_schema`] compiles the rules of a schema's root record once
//! (regexes and CEL programs included) and rejects malformed ones with the
//! field they sit on. [`RuleSet::evaluate`] then checks one record through the
//! [`FieldAccess`] trait, which generated types and generic values implement,
//! and returns every [`Violation`], each naming the rule, the field and the
//! offending value. Evaluation allocates only for violations and, when a CEL
//! rule exists, for the CEL view of the record.

mod cel_view;
mod compile;
mod fast;

use std::fmt;
use std::sync::Arc;

pub use compile::{RuleError, RuleSet, FIELD_RULES};

/// A borrowed view of one field's value.
#[derive(Clone)]
pub enum FieldRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    /// An enum value, as its symbol.
    Enum(&'a str),
    Array(Vec<FieldRef<'a>>),
    Map(Vec<(&'a str, FieldRef<'a>)>),
    Record(&'a dyn FieldAccess),
}

impl fmt::Debug for FieldRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(self))
    }
}

/// Field access by position in the record's schema. Generated types
/// implement it with a `match` on the index.
pub trait FieldAccess {
    /// The value of the field at `index` (schema order). Indexes past the end
    /// return [`FieldRef::Null`].
    fn field(&self, index: usize) -> FieldRef<'_>;
}

/// What evaluation needs from the outside world, passed in to keep the crate pure.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext {
    /// The current time in milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The rule's name: `<field>.<kind>` for field rules (`latitude.range`),
    /// the declared name for record rules.
    pub rule: Arc<str>,
    /// The field path, or empty for a record rule.
    pub field: Arc<str>,
    /// The offending value, rendered as JSON-like text.
    pub value: String,
    /// What the rule asks for.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "rule {} failed: {}", self.rule, self.message)
        } else {
            write!(
                f,
                "rule {} failed on {} = {}: {}",
                self.rule, self.field, self.value, self.message
            )
        }
    }
}

/// Renders a value for a violation message.
pub(crate) fn render(v: &FieldRef<'_>) -> String {
    match v {
        FieldRef::Null => "null".into(),
        FieldRef::Bool(b) => b.to_string(),
        FieldRef::Int(i) => i.to_string(),
        FieldRef::Float(x) => x.to_string(),
        FieldRef::Str(s) | FieldRef::Enum(s) => serde_json::Value::String((*s).to_string()).to_string(),
        FieldRef::Bytes(b) => format!("<{} bytes>", b.len()),
        FieldRef::Array(items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(", ")),
        FieldRef::Map(entries) => format!("<map of {}>", entries.len()),
        FieldRef::Record(_) => "<record>".into(),
    }
}
