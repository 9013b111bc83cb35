//! A direct evaluator for the simple CEL expressions data-quality rules are
//! made of, over [`FieldAccess`] with no CEL value built per record.
//!
//! [`compile`] accepts a subset of CEL: `message.<field>` (top-level fields),
//! `now_ms`, null/bool/int/double/string literals, `==` `!=` `<` `<=` `>`
//! `>=`, `&&` `||` `!`, and `+` `-` on numbers of one kind. Anything else
//! compiles to `None` and the rule runs on the cel interpreter. At run time
//! any case where CEL would raise an error or where its cross-type rules are
//! subtle (ordering a null, mixing int and double, overflow, a nested
//! value) returns `Err(Fallback)`, and the caller evaluates the expression
//! with the cel interpreter instead: results are CEL's by construction, and
//! a differential property test keeps the two paths equal.

use std::collections::HashMap;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use crate::{FieldAccess, FieldRef};

/// Evaluate this expression with the cel interpreter instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fallback;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fast {
    Field(usize),
    NowMs,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Not(Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Cmp(Cmp, Box<Fast>, Box<Fast>),
    Add(Box<Fast>, Box<Fast>),
    Sub(Box<Fast>, Box<Fast>),
}

/// A value during fast evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// Compiles `expr`, with top-level field names mapped to their positions.
pub(crate) fn compile(expr: &IdedExpr, fields: &HashMap<String, usize>) -> Option<Fast> {
    Some(match &expr.expr {
        Expr::Ident(name) if name == "now_ms" => Fast::NowMs,
        Expr::Select(s) if !s.test => match &s.operand.expr {
            Expr::Ident(m) if m == "message" => Fast::Field(*fields.get(&s.field)?),
            _ => return None,
        },
        Expr::Literal(l) => match l {
            LiteralValue::Null => Fast::Null,
            LiteralValue::Boolean(b) => Fast::Bool(*b.inner()),
            LiteralValue::Int(i) => Fast::Int(*i.inner()),
            LiteralValue::Double(d) => Fast::Float(*d.inner()),
            LiteralValue::String(s) => Fast::Str(s.inner().to_string()),
            _ => return None,
        },
        Expr::Call(call) if call.target.is_none() => {
            let arg = |i: usize| call.args.get(i).and_then(|a| compile(a, fields)).map(Box::new);
            let pair = || -> Option<(Box<Fast>, Box<Fast>)> {
                (call.args.len() == 2).then_some(())?;
                Some((arg(0)?, arg(1)?))
            };
            let binary = |f: fn(Box<Fast>, Box<Fast>) -> Fast| pair().map(|(a, b)| f(a, b));
            let cmp = |op: Cmp| pair().map(|(a, b)| Fast::Cmp(op, a, b));
            match call.func_name.as_str() {
                "_&&_" => binary(Fast::And)?,
                "_||_" => binary(Fast::Or)?,
                "!_" if call.args.len() == 1 => Fast::Not(arg(0)?),
                "_==_" => cmp(Cmp::Eq)?,
                "_!=_" => cmp(Cmp::Ne)?,
                "_<_" => cmp(Cmp::Lt)?,
                "_<=_" => cmp(Cmp::Le)?,
                "_>_" => cmp(Cmp::Gt)?,
                "_>=_" => cmp(Cmp::Ge)?,
                "_+_" => binary(Fast::Add)?,
                "_-_" => binary(Fast::Sub)?,
                _ => return None,
            }
        }
        _ => return None,
    })
}

impl Fast {
    /// The expression's boolean value, or `Fallback`.
    pub(crate) fn truth(&self, rec: &dyn FieldAccess, now_ms: i64) -> Result<bool, Fallback> {
        match self.eval(rec, now_ms)? {
            V::Bool(b) => Ok(b),
            _ => Err(Fallback),
        }
    }

    fn eval<'a>(&'a self, rec: &'a dyn FieldAccess, now_ms: i64) -> Result<V<'a>, Fallback> {
        Ok(match self {
            Fast::Field(i) => match rec.field(*i) {
                FieldRef::Null => V::Null,
                FieldRef::Bool(b) => V::Bool(b),
                FieldRef::Int(i) => V::Int(i),
                FieldRef::Float(f) => V::Float(f),
                FieldRef::Str(s) | FieldRef::Enum(s) => V::Str(s),
                _ => return Err(Fallback),
            },
            Fast::NowMs => V::Int(now_ms),
            Fast::Null => V::Null,
            Fast::Bool(b) => V::Bool(*b),
            Fast::Int(i) => V::Int(*i),
            Fast::Float(f) => V::Float(*f),
            Fast::Str(s) => V::Str(s),
            Fast::Not(a) => match a.eval(rec, now_ms)? {
                V::Bool(b) => V::Bool(!b),
                _ => return Err(Fallback),
            },
            // CEL's && and || are commutative over errors: a false (true) on
            // either side decides, whatever the other side does.
            Fast::And(a, b) => match (a.eval(rec, now_ms), b.eval(rec, now_ms)) {
                (Ok(V::Bool(false)), _) | (_, Ok(V::Bool(false))) => V::Bool(false),
                (Ok(V::Bool(true)), Ok(V::Bool(true))) => V::Bool(true),
                _ => return Err(Fallback),
            },
            Fast::Or(a, b) => match (a.eval(rec, now_ms), b.eval(rec, now_ms)) {
                (Ok(V::Bool(true)), _) | (_, Ok(V::Bool(true))) => V::Bool(true),
                (Ok(V::Bool(false)), Ok(V::Bool(false))) => V::Bool(false),
                _ => return Err(Fallback),
            },
            Fast::Cmp(op, a, b) => V::Bool(compare(*op, a.eval(rec, now_ms)?, b.eval(rec, now_ms)?)?),
            Fast::Add(a, b) => match (a.eval(rec, now_ms)?, b.eval(rec, now_ms)?) {
                (V::Int(x), V::Int(y)) => V::Int(x.checked_add(y).ok_or(Fallback)?),
                (V::Float(x), V::Float(y)) => V::Float(x + y),
                _ => return Err(Fallback),
            },
            Fast::Sub(a, b) => match (a.eval(rec, now_ms)?, b.eval(rec, now_ms)?) {
                (V::Int(x), V::Int(y)) => V::Int(x.checked_sub(y).ok_or(Fallback)?),
                (V::Float(x), V::Float(y)) => V::Float(x - y),
                _ => return Err(Fallback),
            },
        })
    }
}

fn compare(op: Cmp, a: V<'_>, b: V<'_>) -> Result<bool, Fallback> {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(&y)),
        (V::Float(x), V::Float(y)) => x.partial_cmp(&y),
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) if matches!(op, Cmp::Eq | Cmp::Ne) => Some(x.cmp(&y)),
        (V::Null, V::Null) if matches!(op, Cmp::Eq | Cmp::Ne) => Some(Ordering::Equal),
        // Equality across kinds (null against a value): not equal. Ordering
        // across kinds, and int against double: leave it to the interpreter.
        (V::Null, _) | (_, V::Null) if matches!(op, Cmp::Eq | Cmp::Ne) => return Ok(op == Cmp::Ne),
        _ => return Err(Fallback),
    };
    Ok(match (op, ord) {
        (Cmp::Eq, o) => o == Some(Ordering::Equal),
        (Cmp::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => return Err(Fallback), // NaN
        (Cmp::Lt, Some(o)) => o == Ordering::Less,
        (Cmp::Le, Some(o)) => o != Ordering::Greater,
        (Cmp::Gt, Some(o)) => o == Ordering::Greater,
        (Cmp::Ge, Some(o)) => o != Ordering::Less,
    })
}
