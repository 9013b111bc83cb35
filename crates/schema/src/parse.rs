//! JSON to [`Schema`]: name resolution, validation of names, symbols, sizes
//! and defaults, and the custom properties kept on each node.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::model::{EnumSchema, Field, FixedSchema, LogicalType, Name, Named, Primitive, RecordSchema, Schema, Type};
use crate::SchemaError;

const RECORD_ATTRS: &[&str] = &["type", "name", "namespace", "doc", "aliases", "fields"];
const FIELD_ATTRS: &[&str] = &["name", "type", "doc", "default", "aliases", "order"];
const ENUM_ATTRS: &[&str] = &["type", "name", "namespace", "doc", "aliases", "symbols", "default"];
const FIXED_ATTRS: &[&str] = &[
    "type",
    "name",
    "namespace",
    "doc",
    "aliases",
    "size",
    "logicalType",
    "precision",
    "scale",
];

impl Schema {
    /// Parses schema JSON text.
    pub fn parse_str(text: &str) -> Result<Schema, SchemaError> {
        let json: Value = serde_json::from_str(text)?;
        Schema::parse(&json)
    }

    /// Parses a schema from its JSON value.
    pub fn parse(json: &Value) -> Result<Schema, SchemaError> {
        Schema::parse_with_references(json, &[])
    }

    /// Parses a schema whose named types may refer to those defined by
    /// `references` (the registry's schema references), which are parsed
    /// already.
    pub fn parse_with_references(json: &Value, references: &[&Schema]) -> Result<Schema, SchemaError> {
        let mut parser = Parser {
            named: references
                .iter()
                .flat_map(|r| r.named.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect(),
            order: Vec::new(),
            depth: 0,
            depths: HashMap::new(),
        };
        let root = parser.parse_type(json, None, "$")?;
        Ok(Schema {
            root,
            named: parser.named,
            definition_order: parser.order,
            json: json.clone(),
        })
    }
}

struct Parser {
    named: BTreeMap<String, Named>,
    order: Vec<String>,
    /// How many types enclose the one being parsed.
    depth: usize,
    /// Each record's nesting depth through the named types it refers to.
    depths: HashMap<String, usize>,
}

/// Types nested deeper than this are refused: every walk over a schema
/// (canonical form, compatibility, decoding) recurses along its nesting,
/// and a hostile schema must not overflow their stacks.
pub const MAX_NESTING: usize = 64;

fn invalid(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Avro names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn props_without(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>, SchemaError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(path, format!("\"{key}\" must be a string, got {other}"))),
    }
}

impl Parser {
    fn parse_type(&mut self, json: &Value, ns: Option<&str>, path: &str) -> Result<Type, SchemaError> {
        if self.depth >= MAX_NESTING {
            return Err(invalid(path, format!("types nest more than {MAX_NESTING} levels deep")));
        }
        self.depth += 1;
        let ty = self.parse_nested(json, ns, path);
        self.depth -= 1;
        ty
    }

    fn parse_nested(&mut self, json: &Value, ns: Option<&str>, path: &str) -> Result<Type, SchemaError> {
        match json {
            Value::String(name) => self.reference(name, ns, path),
            Value::Array(branches) => {
                let mut types = Vec::with_capacity(branches.len());
                let mut seen = HashSet::new();
                for (i, b) in branches.iter().enumerate() {
                    let bpath = format!("{path}[{i}]");
                    let ty = self.parse_type(b, ns, &bpath)?;
                    let key = match &ty {
                        Type::Union(_) => {
                            return Err(invalid(&bpath, "a union may not directly contain another union"))
                        }
                        Type::Primitive { kind, .. } => kind.name().to_string(),
                        Type::Array(_) => "array".into(),
                        Type::Map(_) => "map".into(),
                        Type::Named(n) => n.clone(),
                    };
                    if !seen.insert(key.clone()) {
                        return Err(invalid(&bpath, format!("union contains {key} more than once")));
                    }
                    types.push(ty);
                }
                Ok(Type::Union(types))
            }
            Value::Object(obj) => self.parse_object(obj, ns, path),
            other => Err(invalid(
                path,
                format!("expected a type (string, array or object), got {other}"),
            )),
        }
    }

    fn reference(&mut self, name: &str, ns: Option<&str>, path: &str) -> Result<Type, SchemaError> {
        if let Some(p) = Primitive::from_name(name) {
            return Ok(Type::primitive(p));
        }
        let candidates = match ns {
            Some(ns) if !name.contains('.') && !ns.is_empty() => vec![format!("{ns}.{name}"), name.to_string()],
            _ => vec![name.to_string()],
        };
        for c in &candidates {
            if self.named.contains_key(c) {
                return Ok(Type::Named(c.clone()));
            }
        }
        Err(invalid(path, format!("unknown type \"{name}\"")))
    }

    fn name_of(&self, obj: &Map<String, Value>, ns: Option<&str>, path: &str) -> Result<Name, SchemaError> {
        let raw = opt_str(obj, "name", path)?.ok_or_else(|| invalid(path, "named type has no \"name\""))?;
        let (name, namespace) = match raw.rsplit_once('.') {
            Some((space, short)) => (short.to_string(), Some(space.to_string())),
            None => {
                let explicit = opt_str(obj, "namespace", path)?;
                (raw.to_string(), explicit.or(ns).map(str::to_string))
            }
        };
        if !is_valid_name(&name) {
            return Err(invalid(
                path,
                format!("invalid name \"{name}\": names match [A-Za-z_][A-Za-z0-9_]*"),
            ));
        }
        if let Some(space) = namespace.as_deref().filter(|s| !s.is_empty()) {
            if !space.split('.').all(is_valid_name) {
                return Err(invalid(path, format!("invalid namespace \"{space}\"")));
            }
        }
        Ok(Name {
            name,
            namespace: namespace.filter(|s| !s.is_empty()),
        })
    }

    fn aliases(obj: &Map<String, Value>, ns: Option<&str>, path: &str) -> Result<Vec<String>, SchemaError> {
        let Some(v) = obj.get("aliases") else {
            return Ok(Vec::new());
        };
        let arr = v
            .as_array()
            .ok_or_else(|| invalid(path, "\"aliases\" must be an array of strings"))?;
        arr.iter()
            .map(|a| {
                let a = a
                    .as_str()
                    .ok_or_else(|| invalid(path, "\"aliases\" must be an array of strings"))?;
                Ok(match ns {
                    Some(ns) if !a.contains('.') && !ns.is_empty() => format!("{ns}.{a}"),
                    _ => a.to_string(),
                })
            })
            .collect()
    }

    fn define(&mut self, named: Named, path: &str) -> Result<String, SchemaError> {
        let full = named.name().fullname();
        if self.named.contains_key(&full) || Primitive::from_name(&full).is_some() {
            return Err(invalid(path, format!("type \"{full}\" is defined twice")));
        }
        self.order.push(full.clone());
        self.named.insert(full.clone(), named);
        Ok(full)
    }

    fn parse_object(&mut self, obj: &Map<String, Value>, ns: Option<&str>, path: &str) -> Result<Type, SchemaError> {
        let type_name = match obj.get("type") {
            Some(Value::String(s)) => s.as_str(),
            // `{"type": {...}}` or `{"type": [...]}`: the outer object only wraps a type.
            Some(inner @ (Value::Object(_) | Value::Array(_))) => {
                return self.parse_type(inner, ns, &format!("{path}.type"))
            }
            _ => return Err(invalid(path, "object has no \"type\" string")),
        };
        match type_name {
            "record" | "error" => self.parse_record(obj, ns, path, type_name == "error"),
            "enum" => self.parse_enum(obj, ns, path),
            "fixed" => self.parse_fixed(obj, ns, path),
            "array" => {
                let items = obj
                    .get("items")
                    .ok_or_else(|| invalid(path, "array has no \"items\""))?;
                Ok(Type::Array(Box::new(self.parse_type(
                    items,
                    ns,
                    &format!("{path}.items"),
                )?)))
            }
            "map" => {
                let values = obj
                    .get("values")
                    .ok_or_else(|| invalid(path, "map has no \"values\""))?;
                Ok(Type::Map(Box::new(self.parse_type(
                    values,
                    ns,
                    &format!("{path}.values"),
                )?)))
            }
            other => {
                let ty = self.reference(other, ns, path)?;
                if let Type::Primitive { kind, .. } = ty {
                    let logical = obj
                        .get("logicalType")
                        .and_then(Value::as_str)
                        .map(|lt| primitive_logical(kind, lt, obj));
                    return Ok(Type::Primitive { kind, logical });
                }
                Ok(ty)
            }
        }
    }

    fn parse_record(
        &mut self,
        obj: &Map<String, Value>,
        ns: Option<&str>,
        path: &str,
        is_error: bool,
    ) -> Result<Type, SchemaError> {
        let name = self.name_of(obj, ns, path)?;
        let path = name.name.clone();
        let own_ns = name.namespace.clone();
        let aliases = Self::aliases(obj, own_ns.as_deref(), &path)?;
        let doc = opt_str(obj, "doc", &path)?.map(str::to_string);
        let fields_json = obj
            .get("fields")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(&path, "record has no \"fields\" array"))?;
        // Define first (with no fields) so fields can refer to the record itself.
        let full = self.define(
            Named::Record(RecordSchema {
                name: name.clone(),
                aliases: aliases.clone(),
                doc: doc.clone(),
                fields: Vec::new(),
                props: props_without(obj, RECORD_ATTRS),
                is_error,
            }),
            &path,
        )?;
        let mut fields = Vec::with_capacity(fields_json.len());
        let mut seen = HashSet::new();
        for (i, f) in fields_json.iter().enumerate() {
            let fpath = format!("{path}.fields[{i}]");
            let fobj = f
                .as_object()
                .ok_or_else(|| invalid(&fpath, "a field must be an object"))?;
            let fname = opt_str(fobj, "name", &fpath)?.ok_or_else(|| invalid(&fpath, "field has no \"name\""))?;
            let fpath = format!("{path}.{fname}");
            if !is_valid_name(fname) {
                return Err(invalid(&fpath, format!("invalid field name \"{fname}\"")));
            }
            if !seen.insert(fname.to_string()) {
                return Err(invalid(&fpath, "field is declared twice"));
            }
            let ty_json = fobj
                .get("type")
                .ok_or_else(|| invalid(&fpath, "field has no \"type\""))?;
            let ty = self.parse_type(ty_json, own_ns.as_deref(), &fpath)?;
            let default = fobj.get("default").cloned();
            if let Some(d) = &default {
                validate_default(self, &ty, d)
                    .map_err(|m| invalid(&fpath, format!("default {d} does not match the field's type: {m}")))?;
            }
            let aliases = match fobj.get("aliases") {
                None => Vec::new(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                Some(_) => return Err(invalid(&fpath, "\"aliases\" must be an array of strings")),
            };
            fields.push(Field {
                name: fname.to_string(),
                aliases,
                doc: opt_str(fobj, "doc", &fpath)?.map(str::to_string),
                ty,
                default,
                props: props_without(fobj, FIELD_ATTRS),
            });
        }
        // Nesting through references to records defined earlier is nesting
        // too, for whatever walks the schema later: bounded here, once.
        let depth = 1 + fields.iter().map(|f| self.type_depth(&f.ty)).max().unwrap_or(0);
        if depth > MAX_NESTING {
            return Err(invalid(
                &path,
                format!("types nest more than {MAX_NESTING} levels deep (through the records they refer to)"),
            ));
        }
        self.depths.insert(full.clone(), depth);
        if let Some(Named::Record(r)) = self.named.get_mut(&full) {
            r.fields = fields;
        }
        Ok(Type::Named(full))
    }

    /// How deep `ty` nests: a record counts what its fields do; a record
    /// still being parsed (a recursive reference) counts one.
    fn type_depth(&self, ty: &Type) -> usize {
        match ty {
            Type::Primitive { .. } => 1,
            Type::Array(inner) | Type::Map(inner) => 1 + self.type_depth(inner),
            Type::Union(branches) => branches.iter().map(|b| self.type_depth(b)).max().unwrap_or(1),
            Type::Named(name) => self.depths.get(name).copied().unwrap_or(1),
        }
    }

    fn parse_enum(&mut self, obj: &Map<String, Value>, ns: Option<&str>, path: &str) -> Result<Type, SchemaError> {
        let name = self.name_of(obj, ns, path)?;
        let path = name.name.clone();
        let symbols_json = obj
            .get("symbols")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(&path, "enum has no \"symbols\" array"))?;
        let mut symbols = Vec::with_capacity(symbols_json.len());
        for s in symbols_json {
            let s = s
                .as_str()
                .ok_or_else(|| invalid(&path, "enum symbols must be strings"))?;
            if !is_valid_name(s) {
                return Err(invalid(&path, format!("invalid enum symbol \"{s}\"")));
            }
            if symbols.iter().any(|x: &String| x == s) {
                return Err(invalid(&path, format!("enum symbol \"{s}\" appears twice")));
            }
            symbols.push(s.to_string());
        }
        let default = opt_str(obj, "default", &path)?.map(str::to_string);
        if let Some(d) = &default {
            if !symbols.contains(d) {
                return Err(invalid(
                    &path,
                    format!("enum default \"{d}\" is not one of its symbols"),
                ));
            }
        }
        let aliases = Self::aliases(obj, name.namespace.as_deref(), &path)?;
        let full = self.define(
            Named::Enum(EnumSchema {
                name,
                aliases,
                doc: opt_str(obj, "doc", &path)?.map(str::to_string),
                symbols,
                default,
                props: props_without(obj, ENUM_ATTRS),
            }),
            &path,
        )?;
        Ok(Type::Named(full))
    }

    fn parse_fixed(&mut self, obj: &Map<String, Value>, ns: Option<&str>, path: &str) -> Result<Type, SchemaError> {
        let name = self.name_of(obj, ns, path)?;
        let path = name.name.clone();
        let size = obj
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid(&path, "fixed has no non-negative integer \"size\""))?;
        let size = usize::try_from(size).map_err(|_| invalid(&path, "fixed size is too large"))?;
        let logical = obj.get("logicalType").and_then(Value::as_str).map(|lt| match lt {
            "decimal" => decimal(obj, Some(size)).unwrap_or_else(|| LogicalType::Other(lt.into())),
            "duration" if size == 12 => LogicalType::Duration,
            other => LogicalType::Other(other.into()),
        });
        let aliases = Self::aliases(obj, name.namespace.as_deref(), &path)?;
        let full = self.define(
            Named::Fixed(FixedSchema {
                name,
                aliases,
                doc: opt_str(obj, "doc", &path)?.map(str::to_string),
                size,
                logical,
                props: props_without(obj, FIXED_ATTRS),
            }),
            &path,
        )?;
        Ok(Type::Named(full))
    }
}

/// The largest decimal precision taken (PostgreSQL's `numeric` declares at
/// most 1,000 digits): decoders size their work by it.
pub const MAX_DECIMAL_PRECISION: u32 = 1000;

/// A decimal's precision and scale, if valid (0 < precision <=
/// [`MAX_DECIMAL_PRECISION`], scale <= precision, and the precision fits a
/// fixed of `fixed_size` bytes). An invalid one is ignored, as the Avro
/// specification says of logical types: the value reads as its base type.
fn decimal(obj: &Map<String, Value>, fixed_size: Option<usize>) -> Option<LogicalType> {
    let precision = u32::try_from(obj.get("precision")?.as_u64()?).ok()?;
    let scale = match obj.get("scale") {
        None => 0,
        Some(s) => u32::try_from(s.as_u64()?).ok()?,
    };
    if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale > precision {
        return None;
    }
    if let Some(size) = fixed_size {
        // Largest precision a two's complement number of `size` bytes holds.
        let max = ((8.0 * size as f64 - 1.0) * 2f64.log10()).floor();
        if f64::from(precision) > max {
            return None;
        }
    }
    Some(LogicalType::Decimal { precision, scale })
}

fn primitive_logical(kind: Primitive, name: &str, obj: &Map<String, Value>) -> LogicalType {
    use Primitive as P;
    let lt = match (name, kind) {
        ("decimal", P::Bytes) => decimal(obj, None),
        ("uuid", P::String) => Some(LogicalType::Uuid),
        ("date", P::Int) => Some(LogicalType::Date),
        ("time-millis", P::Int) => Some(LogicalType::TimeMillis),
        ("time-micros", P::Long) => Some(LogicalType::TimeMicros),
        ("timestamp-millis", P::Long) => Some(LogicalType::TimestampMillis),
        ("timestamp-micros", P::Long) => Some(LogicalType::TimestampMicros),
        ("timestamp-nanos", P::Long) => Some(LogicalType::TimestampNanos),
        ("local-timestamp-millis", P::Long) => Some(LogicalType::LocalTimestampMillis),
        ("local-timestamp-micros", P::Long) => Some(LogicalType::LocalTimestampMicros),
        ("local-timestamp-nanos", P::Long) => Some(LogicalType::LocalTimestampNanos),
        _ => None,
    };
    lt.unwrap_or_else(|| LogicalType::Other(name.to_string()))
}

/// Checks a field default against its type, as Avro does: a union's default
/// matches its first branch.
fn validate_default(p: &Parser, ty: &Type, d: &Value) -> Result<(), String> {
    let ok = match ty {
        Type::Primitive { kind, .. } => match kind {
            Primitive::Null => d.is_null(),
            Primitive::Boolean => d.is_boolean(),
            Primitive::Int => d.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
            Primitive::Long => d.is_i64(),
            Primitive::Float | Primitive::Double => d.is_number(),
            Primitive::Bytes | Primitive::String => d.is_string(),
        },
        Type::Array(items) => match d.as_array() {
            Some(a) => return a.iter().try_for_each(|x| validate_default(p, items, x)),
            None => false,
        },
        Type::Map(values) => match d.as_object() {
            Some(m) => return m.values().try_for_each(|x| validate_default(p, values, x)),
            None => false,
        },
        Type::Union(branches) => match branches.first() {
            Some(first) => {
                return validate_default(p, first, d)
                    .map_err(|m| format!("a union's default must match its first branch ({m})"))
            }
            None => false,
        },
        Type::Named(n) => match p.named.get(n) {
            Some(Named::Record(r)) => match d.as_object() {
                Some(obj) => {
                    return r.fields.iter().try_for_each(|f| match (obj.get(&f.name), &f.default) {
                        (Some(v), _) => validate_default(p, &f.ty, v),
                        (None, Some(_)) => Ok(()),
                        (None, None) => Err(format!("missing field \"{}\"", f.name)),
                    })
                }
                None => false,
            },
            Some(Named::Enum(e)) => d.as_str().is_some_and(|s| e.symbols.iter().any(|x| x == s)),
            Some(Named::Fixed(_)) => d.is_string(),
            None => true,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {}", describe(ty)))
    }
}

fn describe(ty: &Type) -> String {
    match ty {
        Type::Primitive { kind, .. } => kind.name().to_string(),
        Type::Array(_) => "array".into(),
        Type::Map(_) => "map".into(),
        Type::Union(_) => "union".into(),
        Type::Named(n) => n.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recursive_record_with_namespace() {
        let s = Schema::parse_str(
            r#"{"type":"record","name":"Node","namespace":"a.b","fields":[
                {"name":"value","type":"int","range":{"min":0}},
                {"name":"next","type":["null","Node"],"default":null}]}"#,
        )
        .unwrap();
        let r = s.root_record().unwrap();
        assert_eq!(r.name.fullname(), "a.b.Node");
        assert_eq!(
            r.fields[1].ty,
            Type::Union(vec![Type::primitive(Primitive::Null), Type::Named("a.b.Node".into())])
        );
        assert_eq!(r.fields[0].props.get("range"), Some(&serde_json::json!({"min": 0})));
    }

    #[test]
    fn references_supply_named_types() {
        let address = Schema::parse_str(
            r#"{"type":"record","name":"Address","namespace":"x","fields":[{"name":"city","type":"string"}]}"#,
        )
        .unwrap();
        let json: Value = serde_json::from_str(
            r#"{"type":"record","name":"Person","namespace":"x","fields":[{"name":"home","type":"Address"}]}"#,
        )
        .unwrap();
        assert!(Schema::parse(&json).is_err());
        let person = Schema::parse_with_references(&json, &[&address]).unwrap();
        assert!(person.lookup("x.Address").is_some());
        assert_eq!(person.definition_order, vec!["x.Person".to_string()]);
    }

    #[test]
    fn rejects_unknown_type_with_path() {
        let err =
            Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"x","type":"Nope"}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "R.x: unknown type \"Nope\"");
    }

    #[test]
    fn rejects_default_of_wrong_branch() {
        let err = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":["null","int"],"default":3}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("first branch"), "{err}");
    }

    #[test]
    fn rejects_enum_default_outside_symbols() {
        let err = Schema::parse_str(r#"{"type":"enum","name":"E","symbols":["A"],"default":"B"}"#).unwrap_err();
        assert!(err.to_string().contains("not one of its symbols"));
    }

    #[test]
    fn nesting_is_bounded() {
        let nest = |n: usize| format!("{}\"int\"{}", r#"{"type":"array","items":"#.repeat(n), "}".repeat(n));
        assert!(Schema::parse_str(&nest(MAX_NESTING - 1)).is_ok());
        let err = Schema::parse_str(&nest(MAX_NESTING)).unwrap_err();
        assert!(err.to_string().contains("levels deep"), "{err}");
        // Deeper than serde_json's own limit, through a value built in code.
        let mut json = serde_json::json!("int");
        for _ in 0..1_000 {
            json = serde_json::json!({"type": "array", "items": json});
        }
        assert!(Schema::parse(&json).is_err());
    }

    #[test]
    fn nesting_through_references_is_bounded() {
        // Each record defined at the top level, refering to the one before:
        // shallow JSON, deep types.
        let chain = |n: usize| {
            let fields: Vec<String> = (0..n)
                .map(|i| {
                    let inner = if i == 0 { "\"int\"".to_string() } else { format!("\"R{}\"", i - 1) };
                    format!(
                        r#"{{"name":"f{i}","type":{{"type":"record","name":"R{i}","fields":[{{"name":"x","type":{inner}}}]}}}}"#
                    )
                })
                .collect();
            format!(r#"{{"type":"record","name":"Top","fields":[{}]}}"#, fields.join(","))
        };
        assert!(Schema::parse_str(&chain(MAX_NESTING - 2)).is_ok());
        let err = Schema::parse_str(&chain(5_000)).unwrap_err();
        assert!(err.to_string().contains("levels deep"), "{err}");
    }

    #[test]
    fn decimal_precision_is_bounded() {
        let s = Schema::parse_str(r#"{"type":"bytes","logicalType":"decimal","precision":100000,"scale":2}"#).unwrap();
        assert!(matches!(
            s.root,
            Type::Primitive {
                logical: Some(LogicalType::Other(_)),
                ..
            }
        ));
    }

    #[test]
    fn invalid_decimal_falls_back_to_other() {
        let s = Schema::parse_str(r#"{"type":"bytes","logicalType":"decimal","precision":2,"scale":5}"#).unwrap();
        assert_eq!(
            s.root,
            Type::Primitive {
                kind: Primitive::Bytes,
                logical: Some(LogicalType::Other("decimal".into()))
            }
        );
    }
}
