//! The parsed form of an Avro schema.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A fully qualified Avro name: `io.contrail.flight.FlightState`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    pub name: String,
    pub namespace: Option<String>,
}

impl Name {
    /// The full name, `namespace.name`, or `name` without a namespace.
    pub fn fullname(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}.{}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Avro's primitive types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Primitive {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

impl Primitive {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::Null,
            "boolean" => Self::Boolean,
            "int" => Self::Int,
            "long" => Self::Long,
            "float" => Self::Float,
            "double" => Self::Double,
            "bytes" => Self::Bytes,
            "string" => Self::String,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "boolean",
            Self::Int => "int",
            Self::Long => "long",
            Self::Float => "float",
            Self::Double => "double",
            Self::Bytes => "bytes",
            Self::String => "string",
        }
    }
}

/// Avro logical types. An annotation that is unknown or invalid for its
/// underlying type is kept as [`LogicalType::Other`] and, as the spec asks,
/// otherwise ignored: the data is read as the underlying type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicalType {
    Decimal { precision: u32, scale: u32 },
    Uuid,
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    LocalTimestampMillis,
    LocalTimestampMicros,
    LocalTimestampNanos,
    Duration,
    Other(String),
}

impl LogicalType {
    pub fn name(&self) -> &str {
        match self {
            Self::Decimal { .. } => "decimal",
            Self::Uuid => "uuid",
            Self::Date => "date",
            Self::TimeMillis => "time-millis",
            Self::TimeMicros => "time-micros",
            Self::TimestampMillis => "timestamp-millis",
            Self::TimestampMicros => "timestamp-micros",
            Self::TimestampNanos => "timestamp-nanos",
            Self::LocalTimestampMillis => "local-timestamp-millis",
            Self::LocalTimestampMicros => "local-timestamp-micros",
            Self::LocalTimestampNanos => "local-timestamp-nanos",
            Self::Duration => "duration",
            Self::Other(name) => name,
        }
    }
}

/// A type as it appears in a field, an array, a map or a union.
///
/// Named types are [`Type::Named`] references into [`Schema::named`], so a
/// recursive record is a reference to itself, not a cycle of boxes.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Primitive {
        kind: Primitive,
        logical: Option<LogicalType>,
    },
    Array(Box<Type>),
    Map(Box<Type>),
    Union(Vec<Type>),
    /// Full name of a record, enum or fixed in [`Schema::named`].
    Named(String),
}

impl Type {
    pub fn primitive(kind: Primitive) -> Self {
        Type::Primitive { kind, logical: None }
    }

    /// True for `null` and for unions that have a `null` branch.
    pub fn is_nullable(&self) -> bool {
        match self {
            Type::Primitive {
                kind: Primitive::Null, ..
            } => true,
            Type::Union(branches) => branches.iter().any(Type::is_nullable),
            _ => false,
        }
    }

    /// For `union { null, T }` (either order), the `T`.
    pub fn nullable_inner(&self) -> Option<&Type> {
        let Type::Union(branches) = self else {
            return None;
        };
        match branches.as_slice() {
            [a, b] if a.is_null() => Some(b),
            [a, b] if b.is_null() => Some(a),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Type::Primitive {
                kind: Primitive::Null,
                ..
            }
        )
    }
}

/// A record field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub aliases: Vec<String>,
    pub doc: Option<String>,
    pub ty: Type,
    pub default: Option<Value>,
    /// Every attribute that is not part of Avro's field grammar, such as the
    /// data-quality rules `range`, `pattern` or `length`.
    pub props: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordSchema {
    pub name: Name,
    /// Aliases, as full names.
    pub aliases: Vec<String>,
    pub doc: Option<String>,
    pub fields: Vec<Field>,
    pub props: Map<String, Value>,
    pub is_error: bool,
}

impl RecordSchema {
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnumSchema {
    pub name: Name,
    pub aliases: Vec<String>,
    pub doc: Option<String>,
    pub symbols: Vec<String>,
    pub default: Option<String>,
    pub props: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FixedSchema {
    pub name: Name,
    pub aliases: Vec<String>,
    pub doc: Option<String>,
    pub size: usize,
    pub logical: Option<LogicalType>,
    pub props: Map<String, Value>,
}

/// A named type: record, enum or fixed.
#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    Record(RecordSchema),
    Enum(EnumSchema),
    Fixed(FixedSchema),
}

impl Named {
    pub fn name(&self) -> &Name {
        match self {
            Named::Record(r) => &r.name,
            Named::Enum(e) => &e.name,
            Named::Fixed(f) => &f.name,
        }
    }

    pub fn aliases(&self) -> &[String] {
        match self {
            Named::Record(r) => &r.aliases,
            Named::Enum(e) => &e.aliases,
            Named::Fixed(f) => &f.aliases,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Named::Record(_) => "record",
            Named::Enum(_) => "enum",
            Named::Fixed(_) => "fixed",
        }
    }
}

/// A parsed schema: its root type and the named types it defines, in
/// definition order.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub root: Type,
    pub named: BTreeMap<String, Named>,
    /// Full names in the order they were defined, for deterministic output.
    pub definition_order: Vec<String>,
    /// The JSON the schema was parsed from.
    pub json: Value,
}

impl Schema {
    /// The named type a [`Type::Named`] refers to. Parsing guarantees every
    /// reference resolves.
    pub fn lookup(&self, fullname: &str) -> Option<&Named> {
        self.named.get(fullname)
    }

    /// The root record, when the schema is a record.
    pub fn root_record(&self) -> Option<&RecordSchema> {
        match &self.root {
            Type::Named(n) => match self.named.get(n)? {
                Named::Record(r) => Some(r),
                _ => None,
            },
            _ => None,
        }
    }

    /// Follows a type to its named definition, if it is a named type.
    pub fn resolve<'a>(&'a self, ty: &'a Type) -> Option<&'a Named> {
        match ty {
            Type::Named(n) => self.named.get(n),
            _ => None,
        }
    }
}
