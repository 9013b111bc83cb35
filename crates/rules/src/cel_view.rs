//! The CEL view of a record: a `cel::Value` map built from [`FieldAccess`],
//! with field names taken from the schema.

use std::collections::HashMap;
use std::sync::Arc;

use schema::{Named, Schema, Type};

use crate::{FieldAccess, FieldRef};

/// Deeper nesting than this (only reachable through recursive types) is
/// shown to CEL as null.
const MAX_DEPTH: usize = 16;

/// The field names needed to turn nested [`FieldRef::Record`]s into CEL maps.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    Scalar,
    Array(Box<Shape>),
    Map(Box<Shape>),
    Record(Vec<(Arc<String>, Shape)>),
}

pub(crate) fn shape_of(schema: &Schema, ty: &Type, depth: usize) -> Shape {
    if depth > MAX_DEPTH {
        return Shape::Scalar;
    }
    match ty {
        Type::Array(items) => Shape::Array(Box::new(shape_of(schema, items, depth + 1))),
        Type::Map(values) => Shape::Map(Box::new(shape_of(schema, values, depth + 1))),
        Type::Union(_) => match ty.nullable_inner() {
            Some(inner) => shape_of(schema, inner, depth),
            None => Shape::Scalar,
        },
        Type::Named(_) => match schema.resolve(ty) {
            Some(Named::Record(r)) => Shape::Record(
                r.fields
                    .iter()
                    .map(|f| (Arc::new(f.name.clone()), shape_of(schema, &f.ty, depth + 1)))
                    .collect(),
            ),
            _ => Shape::Scalar,
        },
        Type::Primitive { .. } => Shape::Scalar,
    }
}

pub(crate) fn to_cel(record: &dyn FieldAccess, shape: &Shape) -> cel::Value {
    let Shape::Record(fields) = shape else {
        return cel::Value::Null;
    };
    let mut map = HashMap::with_capacity(fields.len());
    for (i, (name, field_shape)) in fields.iter().enumerate() {
        map.insert(
            cel::objects::Key::String(name.clone()),
            value(&record.field(i), field_shape),
        );
    }
    cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
}

fn value(v: &FieldRef<'_>, shape: &Shape) -> cel::Value {
    match v {
        FieldRef::Null => cel::Value::Null,
        FieldRef::Bool(b) => cel::Value::Bool(*b),
        FieldRef::Int(i) => cel::Value::Int(*i),
        FieldRef::Float(f) => cel::Value::Float(*f),
        FieldRef::Str(s) | FieldRef::Enum(s) => cel::Value::String(Arc::new((*s).to_string())),
        FieldRef::Bytes(b) => cel::Value::Bytes(Arc::new(b.to_vec())),
        FieldRef::Array(items) => {
            let inner = match shape {
                Shape::Array(s) => s,
                _ => &Shape::Scalar,
            };
            cel::Value::List(Arc::new(items.iter().map(|x| value(x, inner)).collect()))
        }
        FieldRef::Map(entries) => {
            let inner = match shape {
                Shape::Map(s) => s,
                _ => &Shape::Scalar,
            };
            let map = entries
                .iter()
                .map(|(k, x)| (cel::objects::Key::String(Arc::new((*k).to_string())), value(x, inner)))
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
        FieldRef::Record(r) => to_cel(*r, shape),
    }
}
