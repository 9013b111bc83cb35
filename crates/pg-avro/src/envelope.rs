//! Change events for one captured table: the key and envelope schemas, and
//! their Avro encoding.
//!
//! Names follow Debezium's, so tools written for Debezium topics find what
//! they expect: topic `<prefix>.<schema>.<table>`, key record `<topic>.Key`
//! (the replica identity's columns), value record `<topic>.Envelope` with
//! `before` and `after` (both `["null", <topic>.Value]`), `source`
//! ([`SOURCE_SCHEMA`]), `op` (`c`, `u`, `d`, `r`) and `ts_ms`. A data
//! contract (a record compiled from `schemas/`) can lend the row record its
//! data-quality rules and docs, so the rules travel in the registered
//! envelope and every consumer of that version sees the same ones.

use pgoutput::{Datum, Relation};
use serde_json::{json, Value};

use crate::value::{encode_val, parse_datum, Row, Val, ValueError};
use crate::{avro_name, columns, row_schema, MappingError, PgType};

/// The `source` block of every event, Debezium's fields for PostgreSQL in
/// snake case.
pub const SOURCE_SCHEMA: &str = r#"{"type":"record","name":"Source","namespace":"io.contrail.cdc","fields":[
{"name":"version","type":"string","doc":"Contrail's version."},
{"name":"connector","type":"string","doc":"Always postgresql."},
{"name":"name","type":"string","doc":"The topic prefix: the logical name of the source server."},
{"name":"ts_ms","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"Commit time of the transaction (snapshot: when the snapshot began)."},
{"name":"ts_us","type":{"type":"long","logicalType":"timestamp-micros"},"doc":"The same, in microseconds."},
{"name":"snapshot","type":"boolean","doc":"True for rows read by a snapshot (op r)."},
{"name":"db","type":"string"},
{"name":"schema","type":"string"},
{"name":"table","type":"string"},
{"name":"txid","type":"long","doc":"Transaction id (snapshot: 0)."},
{"name":"lsn","type":"long","doc":"WAL position of this change (snapshot: the slot's consistent point)."},
{"name":"commit_lsn","type":"long","doc":"WAL position of the transaction's commit; (commit_lsn, lsn) orders every change of a table."}
]}"#;

/// Key of the transaction-metadata topic (Debezium's `<prefix>.transaction`).
pub const TRANSACTION_KEY_SCHEMA: &str = r#"{"type":"record","name":"TransactionKey","namespace":"io.contrail.cdc","fields":[
{"name":"id","type":"string","doc":"<txid>:<commit LSN>"}]}"#;

/// Value of the transaction-metadata topic: a BEGIN and an END per source
/// transaction that produced events, the END with counts per table.
pub const TRANSACTION_VALUE_SCHEMA: &str = r#"{"type":"record","name":"TransactionMetadata","namespace":"io.contrail.cdc","fields":[
{"name":"status","type":"string","doc":"BEGIN or END."},
{"name":"id","type":"string","doc":"<txid>:<commit LSN>, as in the key."},
{"name":"event_count","type":["null","long"],"default":null,"doc":"END: events the transaction produced."},
{"name":"data_collections","type":["null",{"type":"array","items":{"type":"record","name":"DataCollection","fields":[
  {"name":"data_collection","type":"string","doc":"schema.table"},
  {"name":"event_count","type":"long"}]}}],"default":null,"doc":"END: events per table."},
{"name":"ts_ms","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"Commit time."}
]}"#;

/// Writes a transaction-metadata key.
pub fn encode_transaction_key(buf: &mut Vec<u8>, id: &str) {
    avro_codec::put_string(buf, id);
}

/// Writes a transaction-metadata value: BEGIN when `counts` is `None`, END otherwise.
pub fn encode_transaction(buf: &mut Vec<u8>, id: &str, commit_ts_ms: i64, counts: Option<&[(String, u64)]>) {
    avro_codec::put_string(buf, if counts.is_some() { "END" } else { "BEGIN" });
    avro_codec::put_string(buf, id);
    match counts {
        None => buf.extend_from_slice(&[0, 0]),
        Some(counts) => {
            buf.push(2);
            avro_codec::put_long(buf, counts.iter().map(|(_, n)| *n as i64).sum());
            buf.push(2);
            avro_codec::put_block(buf, counts.iter(), |buf, (table, n)| {
                avro_codec::put_string(buf, table);
                avro_codec::put_long(buf, *n as i64);
            });
        }
    }
    avro_codec::put_long(buf, commit_ts_ms);
}

/// The kind of change: the pipeline's one type for it.
pub use changes::Op;
use changes::{Position, Transaction};

/// Where and when a change happened.
#[derive(Debug, Clone, Copy)]
pub struct EventMeta<'a> {
    pub op: Op,
    pub server_name: &'a str,
    pub db: &'a str,
    pub position: Position,
    pub transaction: Transaction,
    /// When the stage wrote the event, ms since the Unix epoch.
    pub now_ms: i64,
}

/// The topic of a table: `<prefix>.<schema>.<table>`, each part a valid Avro name.
pub fn topic_name(prefix: &str, rel: &Relation) -> String {
    format!("{prefix}.{}.{}", avro_name(&rel.namespace), avro_name(&rel.name))
}

#[derive(Debug, Clone)]
struct Col {
    name: String,
    ty: PgType,
    key: bool,
}

/// Everything needed to turn one table's rows into events; built once per
/// Relation message (again when the table's shape changes).
#[derive(Debug, Clone)]
pub struct TableCodec {
    pub schema_name: String,
    pub table_name: String,
    pub topic: String,
    pub key_schema: Value,
    pub value_schema: Value,
    /// The row record alone (with the contract's rules), for compiling rules.
    pub row_schema: Value,
    columns: Vec<Col>,
}

impl TableCodec {
    /// The codec for `rel`, keyed by `primary_key` (column names; pgoutput
    /// flags every column as key under REPLICA IDENTITY FULL, so the key
    /// comes from the catalog), its row record carrying the rules and docs
    /// of `contract` (a record schema) where field names match.
    pub fn new(
        prefix: &str,
        rel: &Relation,
        primary_key: &[String],
        contract: Option<&Value>,
    ) -> Result<TableCodec, MappingError> {
        let table = format!("{}.{}", rel.namespace, rel.name);
        if primary_key.is_empty() {
            return Err(MappingError::NoKey { table });
        }
        if let Some(missing) = primary_key.iter().find(|k| !rel.columns.iter().any(|c| &c.name == *k)) {
            return Err(MappingError::KeyNotFound {
                table,
                column: missing.clone(),
            });
        }
        let mut rel = rel.clone();
        for c in &mut rel.columns {
            c.key = primary_key.contains(&c.name);
        }
        let rel = &rel;
        let topic = topic_name(prefix, rel);
        let cols: Vec<Col> = columns(rel)?
            .into_iter()
            .map(|(c, ty)| Col {
                name: c.name.clone(),
                ty,
                key: c.key,
            })
            .collect();
        let key_schema = row_schema(&topic, "Key", rel, true)?;
        let mut row = row_schema(&topic, "Value", rel, false)?;
        if let Some(contract) = contract {
            lend_contract(&mut row, contract);
        }
        let source: Value = serde_json::from_str(SOURCE_SCHEMA).expect("SOURCE_SCHEMA is valid JSON");
        let value_schema = json!({
            "type": "record",
            "name": "Envelope",
            "namespace": topic,
            "doc": format!("A change to PostgreSQL table {}.{}.", rel.namespace, rel.name),
            "fields": [
                {"name": "before", "type": ["null", row.clone()], "default": null,
                 "doc": "The row before the change (null for c and r)."},
                {"name": "after", "type": ["null", format!("{topic}.Value")], "default": null,
                 "doc": "The row after the change (null for d)."},
                {"name": "source", "type": source},
                {"name": "op", "type": "string", "doc": "c (insert), u (update), d (delete) or r (snapshot read)."},
                {"name": "ts_ms", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null,
                 "doc": "When Contrail wrote the event."}
            ]
        });
        Ok(TableCodec {
            schema_name: rel.namespace.clone(),
            table_name: rel.name.clone(),
            topic,
            key_schema,
            value_schema,
            row_schema: row,
            columns: cols,
        })
    }

    /// `schema.table`, for messages.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema_name, self.table_name)
    }

    /// Parses a tuple. An unchanged TOAST value takes its value from `old`
    /// (the old row, complete under REPLICA IDENTITY FULL).
    pub fn row(&self, datums: &[Datum], old: Option<&Row>) -> Result<Row, ValueError> {
        if datums.len() != self.columns.len() {
            return Err(ValueError {
                column: String::new(),
                message: format!("{} values for {} columns", datums.len(), self.columns.len()),
            });
        }
        let mut out = Vec::with_capacity(datums.len());
        for (i, (col, d)) in self.columns.iter().zip(datums).enumerate() {
            let v = match (d, old) {
                (Datum::UnchangedToast, Some(old)) => old.0.get(i).cloned().unwrap_or(Val::Null),
                _ => parse_datum(&col.name, &col.ty, d)?,
            };
            if col.key && v == Val::Null {
                return Err(ValueError {
                    column: col.name.clone(),
                    message: "a key column is null".into(),
                });
            }
            out.push(v);
        }
        Ok(Row(out))
    }

    /// Writes the key record of `row`.
    pub fn encode_key(&self, buf: &mut Vec<u8>, row: &Row) {
        for (col, v) in self.columns.iter().zip(&row.0) {
            if col.key {
                encode_val(buf, &col.ty, v, false);
            }
        }
    }

    fn encode_row(&self, buf: &mut Vec<u8>, row: &Row) {
        for (col, v) in self.columns.iter().zip(&row.0) {
            encode_val(buf, &col.ty, v, !col.key);
        }
    }

    /// Writes the envelope of one change.
    pub fn encode_value(&self, buf: &mut Vec<u8>, meta: &EventMeta<'_>, before: Option<&Row>, after: Option<&Row>) {
        for row in [before, after] {
            match row {
                None => buf.push(0),
                Some(r) => {
                    buf.push(2);
                    self.encode_row(buf, r);
                }
            }
        }
        avro_codec::put_string(buf, env!("CARGO_PKG_VERSION"));
        avro_codec::put_string(buf, "postgresql");
        avro_codec::put_string(buf, meta.server_name);
        let commit_us = meta.transaction.commit_us;
        avro_codec::put_long(buf, commit_us.div_euclid(1000));
        avro_codec::put_long(buf, commit_us);
        avro_codec::put_boolean(buf, meta.op == Op::Read);
        avro_codec::put_string(buf, meta.db);
        avro_codec::put_string(buf, &self.schema_name);
        avro_codec::put_string(buf, &self.table_name);
        avro_codec::put_long(buf, i64::from(meta.transaction.txid));
        avro_codec::put_long(buf, meta.position.lsn.0 as i64);
        avro_codec::put_long(buf, meta.position.commit_lsn.0 as i64);
        avro_codec::put_string(buf, meta.op.code());
        buf.push(2);
        avro_codec::put_long(buf, meta.now_ms);
    }
}

/// Copies the contract record's field rules and docs onto the row record's
/// fields of the same name, and its record rules onto the record.
fn lend_contract(row: &mut Value, contract: &Value) {
    let Some(contract_fields) = contract["fields"].as_array() else {
        return;
    };
    if let Some(fields) = row["fields"].as_array_mut() {
        for field in fields {
            let Some(name) = field["name"].as_str().map(str::to_string) else {
                continue;
            };
            let Some(c) = contract_fields.iter().find(|c| c["name"] == name.as_str()) else {
                continue;
            };
            let Some(props) = c.as_object() else { continue };
            for (k, v) in props {
                if rules::FIELD_RULES.contains(&k.as_str()) || k == "doc" {
                    field[k] = v.clone();
                }
            }
        }
    }
    if let Some(r) = contract.get("rules") {
        row["rules"] = r.clone();
    }
    if let Some(name) = contract["name"].as_str() {
        let ns = contract["namespace"]
            .as_str()
            .map(|n| format!("{n}."))
            .unwrap_or_default();
        row["contract"] = json!(format!("{ns}{name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgoutput::{Column, ReplicaIdentity};

    fn rel() -> Relation {
        let col = |name: &str, type_oid, key| Column {
            key,
            name: name.into(),
            type_oid,
            type_modifier: -1,
        };
        Relation {
            id: 7,
            namespace: "public".into(),
            name: "flight_state".into(),
            replica_identity: ReplicaIdentity::Full,
            columns: vec![
                col("icao24", 25, true),
                col("latitude", 701, false),
                col("last_contact", 1184, false),
            ],
        }
    }

    fn text(s: &str) -> Datum {
        Datum::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn envelopes_parse_carry_the_contract_and_decode_in_avro_terms() {
        let contract = json!({"type": "record", "name": "FlightState", "namespace": "io.contrail.flight",
            "rules": [{"name": "r", "expr": "message.latitude == null || message.latitude < 80.0"}],
            "fields": [{"name": "latitude", "type": ["null", "double"], "range": {"min": -90, "max": 90}, "doc": "deg"}]});
        let codec = TableCodec::new("contrail", &rel(), &["icao24".into()], Some(&contract)).unwrap();
        assert_eq!(codec.topic, "contrail.public.flight_state");
        let value = schema::Schema::parse(&codec.value_schema).unwrap();
        schema::Schema::parse(&codec.key_schema).unwrap();
        let rules = rules::RuleSet::from_schema(&schema::Schema::parse(&codec.row_schema).unwrap()).unwrap();
        assert_eq!(rules.rule_names().collect::<Vec<_>>(), ["latitude.range", "r"]);

        let row = codec
            .row(&[text("abc123"), text("95.5"), text("2024-01-01 00:00:00+00")], None)
            .unwrap();
        let broken: Vec<String> = rules
            .evaluate(&row, &rules::EvalContext { now_ms: i64::MAX / 2 })
            .iter()
            .map(|v| v.rule.to_string())
            .collect();
        assert_eq!(broken, ["latitude.range", "r"]);

        let mut buf = Vec::new();
        let meta = EventMeta {
            op: Op::Create,
            server_name: "contrail",
            db: "contrail",
            position: Position {
                commit_lsn: changes::Lsn(200),
                lsn: changes::Lsn(100),
            },
            transaction: Transaction {
                txid: 9,
                commit_us: pgoutput::PG_EPOCH_OFFSET_MICROS,
            },
            now_ms: 5,
        };
        codec.encode_value(&mut buf, &meta, None, Some(&row));
        // before null, after branch 1, icao24, latitude branch 1 + double.
        assert_eq!(&buf[..3], &[0, 2, 12]);
        assert_eq!(&buf[3..9], b"abc123");
        assert_eq!(buf[9], 2);
        assert_eq!(f64::from_le_bytes(buf[10..18].try_into().unwrap()), 95.5);
        assert!(value.root_record().is_some());
    }

    #[test]
    fn transaction_metadata_schemas_parse() {
        schema::Schema::parse_str(TRANSACTION_KEY_SCHEMA).unwrap();
        schema::Schema::parse_str(TRANSACTION_VALUE_SCHEMA).unwrap();
        let mut buf = Vec::new();
        encode_transaction(&mut buf, "7:0/10", 1, None);
        assert_eq!(
            buf,
            [10, b'B', b'E', b'G', b'I', b'N', 12, b'7', b':', b'0', b'/', b'1', b'0', 0, 0, 2]
        );
    }

    #[test]
    fn the_key_comes_from_the_primary_key() {
        let e = TableCodec::new("p", &rel(), &[], None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("table public.flight_state has no primary key"),
            "{e}"
        );
        let e = TableCodec::new("p", &rel(), &["id".into()], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "table public.flight_state: primary key column id is not in the replicated columns"
        );
        let codec = TableCodec::new("p", &rel(), &["icao24".into()], None).unwrap();
        assert_eq!(codec.key_schema["fields"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn unchanged_toast_takes_the_old_value_and_null_keys_are_refused() {
        let codec = TableCodec::new("p", &rel(), &["icao24".into()], None).unwrap();
        let old = codec.row(&[text("a"), text("1.5"), Datum::Null], None).unwrap();
        let new = codec
            .row(&[text("a"), Datum::UnchangedToast, Datum::Null], Some(&old))
            .unwrap();
        assert_eq!(new.0[1], Val::Float(1.5));
        let e = codec.row(&[Datum::Null, Datum::Null, Datum::Null], None).unwrap_err();
        assert_eq!(e.to_string(), "column icao24: a key column is null");
        let e = codec.row(&[text("a")], None).unwrap_err();
        assert!(e.message.contains("1 values for 3 columns"));
    }
}
