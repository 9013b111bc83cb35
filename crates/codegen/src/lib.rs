//! Avro schemas to Rust source.
//!
//! [`generate`] takes the compiled schemas of the `.avdl` files (one per named
//! type, as `contrail schema compile` produces them) and returns one Rust
//! module. For every named type it emits:
//!
//! - a record struct or a plain enum with serde derives, its Avro doc as
//!   rustdoc, and enum symbols kept as serde names;
//! - `avro_codec::AvroRecord` (records): encoding that appends straight to a
//!   byte buffer and decoding from a bounds-checked reader, with no generic
//!   value tree in between, and `SCHEMA`, the record's own `.avsc`;
//! - `rules::FieldAccess` (records), so the data-quality rules declared in
//!   the schema evaluate against the struct without converting it;
//! - a proptest strategy (`arbitrary()`, behind `cfg(any(test, feature =
//!   "arbitrary"))`) for round-trip property tests.
//!
//! The output is deterministic (definition order) but not pretty; the CLI
//! passes it through rustfmt before writing or comparing it.
//!
//! Type mapping: null → `()`, boolean → `bool`, int → `i32` (date: days,
//! time-millis), long → `i64` (timestamp-millis/micros/nanos since the epoch,
//! as the name's unit), float → `f32`, double → `f64`, bytes → `Vec<u8>`
//! (decimal: two's-complement big-endian), string → `String` (uuid in text
//! form), array → `Vec<T>`, map → `BTreeMap<String, T>`, `union { null, T }`
//! → `Option<T>`, fixed → `[u8; N]`. Unions of several non-null types are not
//! supported and are reported as an error naming the field.

use std::collections::BTreeSet;
use std::fmt::Write;

use schema::{Named, Primitive, Schema, Type};

/// A schema that cannot be turned into Rust.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error("{location}: {message}")]
    Unsupported { location: String, message: String },
}

/// A compiled schema to generate from: the named type's full name and its
/// self-contained schema.
#[derive(Debug)]
pub struct Input<'a> {
    pub schema: &'a Schema,
    /// Where the schema came from, for the generated header.
    pub source: &'a str,
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super",
    "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box",
    "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

fn ident(name: &str) -> String {
    if RUST_KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

/// `NO_ADSB_EMITTER` / `noAdsb` / `no_adsb` → `NoAdsbEmitter` / `NoAdsb`.
fn camel(symbol: &str) -> String {
    let mut out = String::new();
    let all_caps = !symbol.chars().any(|c| c.is_ascii_lowercase());
    for part in symbol.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            let rest: String = chars.collect();
            out.push_str(&if all_caps { rest.to_ascii_lowercase() } else { rest });
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}

fn type_ident(full: &str) -> String {
    camel(full.rsplit('.').next().unwrap_or(full))
}

fn doc_comment(out: &mut String, doc: Option<&str>, indent: &str) {
    if let Some(doc) = doc {
        for line in doc.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                let _ = writeln!(out, "{indent}///");
            } else {
                let _ = writeln!(out, "{indent}/// {}", line.trim_start());
            }
        }
    }
}

struct Gen<'a> {
    schema: &'a Schema,
    location: String,
}

impl Gen<'_> {
    fn unsupported(&self, message: impl Into<String>) -> CodegenError {
        CodegenError::Unsupported {
            location: self.location.clone(),
            message: message.into(),
        }
    }

    /// The `T` of `union { null, T }`; other unions are not supported.
    fn optional_inner<'t>(&self, ty: &'t Type) -> Result<&'t Type, CodegenError> {
        ty.nullable_inner()
            .ok_or_else(|| self.unsupported("only unions of null and one other type are supported"))
    }

    fn named(&self, full: &str) -> Result<&Named, CodegenError> {
        self.schema
            .lookup(full)
            .ok_or_else(|| self.unsupported(format!("unknown type {full}")))
    }

    fn rust_type(&self, ty: &Type) -> Result<String, CodegenError> {
        Ok(match ty {
            Type::Primitive { kind, .. } => match kind {
                Primitive::Null => "()".into(),
                Primitive::Boolean => "bool".into(),
                Primitive::Int => "i32".into(),
                Primitive::Long => "i64".into(),
                Primitive::Float => "f32".into(),
                Primitive::Double => "f64".into(),
                Primitive::Bytes => "Vec<u8>".into(),
                Primitive::String => "String".into(),
            },
            Type::Array(items) => format!("Vec<{}>", self.rust_type(items)?),
            Type::Map(values) => format!("std::collections::BTreeMap<String, {}>", self.rust_type(values)?),
            Type::Union(_) => format!("Option<{}>", self.rust_type(self.optional_inner(ty)?)?),
            Type::Named(n) => match self.named(n)? {
                Named::Fixed(f) => format!("[u8; {}]", f.size),
                _ => type_ident(n),
            },
        })
    }

    /// Code that appends `v` (an expression of type `&T`) to `buf`.
    fn encode(&self, ty: &Type, v: &str) -> Result<String, CodegenError> {
        Ok(match ty {
            Type::Primitive { kind, .. } => match kind {
                Primitive::Null => String::new(),
                Primitive::Boolean => format!("avro_codec::put_boolean(buf, *{v});"),
                Primitive::Int => format!("avro_codec::put_int(buf, *{v});"),
                Primitive::Long => format!("avro_codec::put_long(buf, *{v});"),
                Primitive::Float => format!("avro_codec::put_float(buf, *{v});"),
                Primitive::Double => format!("avro_codec::put_double(buf, *{v});"),
                Primitive::Bytes => format!("avro_codec::put_bytes(buf, {v});"),
                Primitive::String => format!("avro_codec::put_string(buf, {v});"),
            },
            Type::Array(items) => format!(
                "avro_codec::put_block(buf, ({v}).iter(), |buf, v| {{ {} }});",
                self.encode(items, "v")?
            ),
            Type::Map(values) => format!(
                "avro_codec::put_block(buf, ({v}).iter(), |buf, (k, v)| {{ avro_codec::put_string(buf, k); {} }});",
                self.encode(values, "v")?
            ),
            Type::Union(branches) => {
                let inner = self.optional_inner(ty)?;
                let null_index = usize::from(!branches[0].is_null());
                let value_index = 1 - null_index;
                format!(
                    "match {v} {{ None => avro_codec::put_long(buf, {null_index}), Some(v) => {{ avro_codec::put_long(buf, {value_index}); {} }} }}",
                    self.encode(inner, "v")?
                )
            }
            Type::Named(n) => match self.named(n)? {
                Named::Record(_) => format!("avro_codec::AvroRecord::encode({v}, buf);"),
                Named::Enum(_) => format!("avro_codec::put_int(buf, ({v}).index() as i32);"),
                Named::Fixed(_) => format!("buf.extend_from_slice({v});"),
            },
        })
    }

    /// An expression that reads a `T` from reader `r`.
    fn decode(&self, ty: &Type) -> Result<String, CodegenError> {
        Ok(match ty {
            Type::Primitive { kind, .. } => match kind {
                Primitive::Null => "()".into(),
                Primitive::Boolean => "r.boolean()?".into(),
                Primitive::Int => "r.int()?".into(),
                Primitive::Long => "r.long()?".into(),
                Primitive::Float => "r.float()?".into(),
                Primitive::Double => "r.double()?".into(),
                Primitive::Bytes => "r.bytes()?.to_vec()".into(),
                Primitive::String => "r.string()?".into(),
            },
            Type::Array(items) => format!("r.array(|r| Ok({}))?", self.decode(items)?),
            Type::Map(values) => format!(
                "{{ let mut m = std::collections::BTreeMap::new(); r.blocks(|r| {{ let k = r.string()?; m.insert(k, {}); Ok(()) }})?; m }}",
                self.decode(values)?
            ),
            Type::Union(branches) => {
                let inner = self.optional_inner(ty)?;
                let null_index = usize::from(!branches[0].is_null());
                format!("match r.union_index(2)? {{ {null_index} => None, _ => Some({}) }}", self.decode(inner)?)
            }
            Type::Named(n) => match self.named(n)? {
                Named::Record(_) => format!("<{} as avro_codec::AvroRecord>::decode(r)?", type_ident(n)),
                Named::Enum(e) => format!("{}::VARIANTS[r.enum_index({})?]", type_ident(n), e.symbols.len()),
                Named::Fixed(f) => format!("r.fixed::<{}>()?", f.size),
            },
        })
    }

    /// An expression giving the `rules::FieldRef` of `v` (of type `&T`).
    fn field_ref(&self, ty: &Type, v: &str) -> Result<String, CodegenError> {
        Ok(match ty {
            Type::Primitive { kind, .. } => match kind {
                Primitive::Null => "rules::FieldRef::Null".into(),
                Primitive::Boolean => format!("rules::FieldRef::Bool(*{v})"),
                Primitive::Int => format!("rules::FieldRef::Int(i64::from(*{v}))"),
                Primitive::Long => format!("rules::FieldRef::Int(*{v})"),
                Primitive::Float => format!("rules::FieldRef::Float(f64::from(*{v}))"),
                Primitive::Double => format!("rules::FieldRef::Float(*{v})"),
                Primitive::Bytes => format!("rules::FieldRef::Bytes({v})"),
                Primitive::String => format!("rules::FieldRef::Str({v})"),
            },
            Type::Array(items) => format!(
                "rules::FieldRef::Array(({v}).iter().map(|v| {}).collect())",
                self.field_ref(items, "v")?
            ),
            Type::Map(values) => format!(
                "rules::FieldRef::Map(({v}).iter().map(|(k, v)| (k.as_str(), {})).collect())",
                self.field_ref(values, "v")?
            ),
            Type::Union(_) => {
                let inner = self.optional_inner(ty)?;
                format!(
                    "match {v} {{ Some(v) => {}, None => rules::FieldRef::Null }}",
                    self.field_ref(inner, "v")?
                )
            }
            Type::Named(n) => match self.named(n)? {
                Named::Record(_) => format!("rules::FieldRef::Record({v})"),
                Named::Enum(_) => format!("rules::FieldRef::Enum(({v}).symbol())"),
                Named::Fixed(_) => format!("rules::FieldRef::Bytes({v})"),
            },
        })
    }

    /// A proptest strategy expression for `T`.
    fn strategy(&self, ty: &Type) -> Result<String, CodegenError> {
        Ok(match ty {
            Type::Primitive { kind, .. } => match kind {
                Primitive::Null => "Just(())".into(),
                Primitive::Boolean => "any::<bool>()".into(),
                Primitive::Int => "any::<i32>()".into(),
                Primitive::Long => "any::<i64>()".into(),
                Primitive::Float => "any::<f32>()".into(),
                Primitive::Double => "any::<f64>()".into(),
                Primitive::Bytes => "proptest::collection::vec(any::<u8>(), 0..16)".into(),
                Primitive::String => "any::<String>()".into(),
            },
            Type::Array(items) => format!("proptest::collection::vec({}, 0..6)", self.strategy(items)?),
            Type::Map(values) => format!(
                "proptest::collection::btree_map(any::<String>(), {}, 0..4)",
                self.strategy(values)?
            ),
            Type::Union(_) => {
                let inner = self.optional_inner(ty)?;
                format!("proptest::option::of({})", self.strategy(inner)?)
            }
            Type::Named(n) => match self.named(n)? {
                Named::Fixed(f) => format!("any::<[u8; {}]>()", f.size),
                _ => format!("{}::arbitrary()", type_ident(n)),
            },
        })
    }
}

/// Generates the Rust module for `inputs`. Each named type is emitted once,
/// from the first input that defines it.
pub fn generate(inputs: &[Input<'_>]) -> Result<String, CodegenError> {
    let mut out = String::new();
    let sources: BTreeSet<&str> = inputs.iter().map(|i| i.source).collect();
    let _ = writeln!(
        out,
        "// @generated by `contrail schema codegen` from {}. Do not edit: change the IDL and regenerate.",
        sources.into_iter().collect::<Vec<_>>().join(", ")
    );
    out.push_str("#![allow(clippy::all, missing_docs)]\n\n");
    let mut emitted = BTreeSet::new();
    for input in inputs {
        for full in &input.schema.definition_order {
            if !emitted.insert(full.clone()) {
                continue;
            }
            let Some(named) = input.schema.lookup(full) else {
                continue;
            };
            let is_root = matches!(&input.schema.root, Type::Named(n) if n == full);
            let mut g = Gen {
                schema: input.schema,
                location: full.clone(),
            };
            match named {
                Named::Record(r) => {
                    // The record's SCHEMA is its own self-contained schema, taken from
                    // the input whose root it is; a record only nested is emitted when
                    // that input comes round (the compiler emits one per named type).
                    if !is_root {
                        emitted.remove(full);
                        continue;
                    }
                    emit_record(&mut out, &mut g, r, &input.schema.json.to_string())?;
                }
                Named::Enum(e) => emit_enum(&mut out, e),
                Named::Fixed(_) => {}
            }
        }
    }
    Ok(out)
}

fn emit_enum(out: &mut String, e: &schema::EnumSchema) {
    let name = type_ident(&e.name.fullname());
    doc_comment(out, e.doc.as_deref(), "");
    out.push_str(
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]\n",
    );
    if e.default.is_some() {
        out.push_str("#[derive(Default)]\n");
    }
    let _ = writeln!(out, "pub enum {name} {{");
    for s in &e.symbols {
        if e.default.as_deref() == Some(s.as_str()) {
            out.push_str("#[default]\n");
        }
        let _ = writeln!(out, "#[serde(rename = \"{s}\")]\n{},", camel(s));
    }
    out.push_str("}\n\n");
    let _ = writeln!(out, "impl {name} {{");
    let _ = writeln!(
        out,
        "/// Symbols in schema order; a value's index is its Avro encoding."
    );
    let _ = writeln!(
        out,
        "pub const SYMBOLS: [&'static str; {}] = [{}];",
        e.symbols.len(),
        e.symbols
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "pub const VARIANTS: [Self; {}] = [{}];",
        e.symbols.len(),
        e.symbols
            .iter()
            .map(|s| format!("Self::{}", camel(s)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str("/// The position of this symbol in the schema.\npub fn index(self) -> usize { self as usize }\n");
    out.push_str("/// The symbol as written in the schema.\npub fn symbol(self) -> &'static str { Self::SYMBOLS[self as usize] }\n");
    out.push_str("/// The value for a schema symbol.\npub fn from_symbol(symbol: &str) -> Option<Self> { Self::SYMBOLS.iter().position(|s| *s == symbol).map(|i| Self::VARIANTS[i]) }\n");
    out.push_str("/// The value at a schema position.\npub fn from_index(index: usize) -> Option<Self> { Self::VARIANTS.get(index).copied() }\n");
    let _ = writeln!(
        out,
        "#[cfg(any(test, feature = \"arbitrary\"))]\npub fn arbitrary() -> impl proptest::strategy::Strategy<Value = Self> {{ use proptest::prelude::*; (0..{}usize).prop_map(|i| Self::VARIANTS[i]) }}",
        e.symbols.len()
    );
    out.push_str("}\n\n");
}

fn emit_record(
    out: &mut String,
    g: &mut Gen<'_>,
    r: &schema::RecordSchema,
    schema_json: &str,
) -> Result<(), CodegenError> {
    let name = type_ident(&r.name.fullname());
    doc_comment(out, r.doc.as_deref(), "");
    out.push_str("#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]\n");
    let _ = writeln!(out, "pub struct {name} {{");
    let mut types = Vec::new();
    for f in &r.fields {
        g.location = format!("{}.{}", r.name.name, f.name);
        doc_comment(out, f.doc.as_deref(), "");
        let ty = g.rust_type(&f.ty)?;
        let _ = writeln!(out, "pub {}: {ty},", ident(&f.name));
        types.push(ty);
    }
    out.push_str("}\n\n");

    let _ = writeln!(out, "impl avro_codec::AvroRecord for {name} {{");
    let _ = writeln!(out, "const SCHEMA: &'static str = {};", rust_str(schema_json));
    out.push_str("#[inline]\nfn encode(&self, buf: &mut Vec<u8>) {\n");
    for f in &r.fields {
        g.location = format!("{}.{}", r.name.name, f.name);
        let _ = writeln!(out, "{}", g.encode(&f.ty, &format!("&self.{}", ident(&f.name)))?);
    }
    out.push_str("}\n#[inline]\nfn decode(r: &mut avro_codec::Reader<'_>) -> Result<Self, avro_codec::DecodeError> {\nOk(Self {\n");
    for f in &r.fields {
        g.location = format!("{}.{}", r.name.name, f.name);
        let _ = writeln!(out, "{}: {},", ident(&f.name), g.decode(&f.ty)?);
    }
    out.push_str("})\n}\n}\n\n");

    let _ = writeln!(out, "impl rules::FieldAccess for {name} {{\nfn field(&self, index: usize) -> rules::FieldRef<'_> {{\nmatch index {{");
    for (i, f) in r.fields.iter().enumerate() {
        g.location = format!("{}.{}", r.name.name, f.name);
        let _ = writeln!(
            out,
            "{i} => {},",
            g.field_ref(&f.ty, &format!("&self.{}", ident(&f.name)))?
        );
    }
    out.push_str("_ => rules::FieldRef::Null,\n}\n}\n}\n\n");

    // Strategy: tuples of at most 10 elements, nested, since proptest's
    // tuple strategies stop at 12.
    let _ = writeln!(out, "impl {name} {{\n#[cfg(any(test, feature = \"arbitrary\"))]\npub fn arbitrary() -> impl proptest::strategy::Strategy<Value = Self> {{\nuse proptest::prelude::*;");
    let mut strategies = Vec::new();
    for f in &r.fields {
        g.location = format!("{}.{}", r.name.name, f.name);
        strategies.push(g.strategy(&f.ty)?);
    }
    let chunks: Vec<Vec<usize>> = (0..r.fields.len())
        .collect::<Vec<_>>()
        .chunks(10)
        .map(<[usize]>::to_vec)
        .collect();
    let tuple = chunks
        .iter()
        .map(|c| {
            format!(
                "({},)",
                c.iter().map(|&i| strategies[i].clone()).collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let pattern = chunks
        .iter()
        .map(|c| {
            format!(
                "({},)",
                c.iter().map(|&i| format!("f{i}")).collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let fields = r
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{}: f{i}", ident(&f.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "({tuple},).prop_map(|({pattern},)| Self {{ {fields} }})\n}}\n}}\n");
    Ok(())
}

/// A Rust string literal for `s`, raw when possible.
fn rust_str(s: &str) -> String {
    let mut hashes = String::from("#");
    while s.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{s}\"{hashes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_cases_symbols() {
        assert_eq!(camel("NO_ADSB_EMITTER_CATEGORY"), "NoAdsbEmitterCategory");
        assert_eq!(camel("ADSB"), "Adsb");
        assert_eq!(camel("flightState"), "FlightState");
        assert_eq!(camel("_1st"), "V1st");
    }

    #[test]
    fn general_unions_are_reported_with_their_field() {
        let s = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"x","type":["int","string"]}]}"#)
            .unwrap();
        let err = generate(&[Input {
            schema: &s,
            source: "t",
        }])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "R.x: only unions of null and one other type are supported"
        );
    }

    #[test]
    fn keywords_become_raw_identifiers() {
        let s = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"type","type":"int"}]}"#).unwrap();
        let code = generate(&[Input {
            schema: &s,
            source: "t",
        }])
        .unwrap();
        assert!(code.contains("pub r#type: i32,"));
    }
}
