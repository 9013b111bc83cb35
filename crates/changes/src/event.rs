//! The change event every hop shares.
//!
//! ```text
//! CDC stage: pgoutput row ─▶ Op + Position + Transaction + Source ─▶ Avro envelope
//!                                                                      │ Kafka
//! sink:      Avro envelope ─▶ ChangeEvent { op, key, before, after, … } ─▶ warehouse rows
//! ```
//!
//! The CDC stage writes its events from these types (the rows it encodes
//! straight from pgoutput's columns, without building them); the sink
//! decodes every envelope into a [`ChangeEvent`], whose rows are JSON (their
//! shape is the table's, known only at run time) and whose metadata is
//! typed. An envelope that lacks what a change event must carry is bad data
//! ([`EnvelopeError`]), never a change with zero positions.
//!
//! The envelope is Debezium's shape (see `pg_avro::envelope`): `before`,
//! `after`, `source` (with `txid`, `lsn`, `commit_lsn`, `ts_us`), `op`.

use serde_json::{Map, Value};

use crate::Lsn;

/// The kind of change, by Debezium's one-letter codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Create,
    Update,
    Delete,
    /// A row read by a snapshot.
    Read,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
        }
    }

    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            _ => return None,
        })
    }
}

/// Where a change sits in its source's order: the commit of its
/// transaction, then its own place in the WAL. `(commit_lsn, lsn)` orders
/// every change of a table, and identifies one with its op and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    pub commit_lsn: Lsn,
    pub lsn: Lsn,
}

/// The source transaction of a change (a snapshot row's: id 0, and the
/// time the snapshot began).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transaction {
    pub txid: u32,
    /// Commit time, µs since the Unix epoch.
    pub commit_us: i64,
}

/// One change of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    /// The key columns (the replica identity), as the key schema has them.
    pub key: Value,
    /// The row before (updates under full replica identity, deletes).
    pub before: Option<Map<String, Value>>,
    /// The row after (creates, updates, snapshot reads).
    pub after: Option<Map<String, Value>>,
    pub position: Position,
    pub transaction: Transaction,
}

impl ChangeEvent {
    /// The row the change leaves, or for a delete the row it removes.
    pub fn row(&self) -> Option<&Map<String, Value>> {
        match self.op {
            Op::Delete => self.before.as_ref(),
            _ => self.after.as_ref(),
        }
    }

    /// From an envelope decoded as JSON, with `source`'s numbers as numbers
    /// (`avro_json::decode_keeping_numbers`), and its key.
    pub fn from_json(key: Value, envelope: Value) -> Result<ChangeEvent, EnvelopeError> {
        let Value::Object(mut env) = envelope else {
            return Err(EnvelopeError("the value is not a record".into()));
        };
        let code = env.get("op").and_then(Value::as_str).unwrap_or_default().to_string();
        let op = Op::from_code(&code).ok_or_else(|| EnvelopeError(format!("op {code:?} is not c, u, d or r")))?;
        let source = env.remove("source");
        let source = source.as_ref().and_then(Value::as_object);
        let number = |name: &str| {
            source
                .and_then(|s| s.get(name))
                .and_then(Value::as_i64)
                .ok_or_else(|| EnvelopeError(format!("source.{name} is missing or not a number")))
        };
        let lsn = |name: &str| {
            let n = number(name)?;
            u64::try_from(n)
                .map(Lsn)
                .map_err(|_| EnvelopeError(format!("source.{name} {n} is negative")))
        };
        let position = Position {
            commit_lsn: lsn("commit_lsn")?,
            lsn: lsn("lsn")?,
        };
        let txid = number("txid")?;
        let transaction = Transaction {
            txid: u32::try_from(txid)
                .map_err(|_| EnvelopeError(format!("source.txid {txid} is not a transaction id")))?,
            commit_us: number("ts_us")?,
        };
        let mut row = |name: &str| match env.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(EnvelopeError(format!("{name} is not a row"))),
        };
        let (before, after) = (row("before")?, row("after")?);
        let event = ChangeEvent {
            op,
            key,
            before,
            after,
            position,
            transaction,
        };
        if event.row().is_none() {
            return Err(EnvelopeError(format!("an op {code} event without its row")));
        }
        Ok(event)
    }
}

/// Why a decoded value is not a change event: bad data for the
/// dead-letter path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError(pub String);

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a change event: {}", self.0)
    }
}

impl std::error::Error for EnvelopeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(op: &str, before: Value, after: Value) -> Value {
        json!({"before": before, "after": after, "op": op, "ts_ms": 1,
               "source": {"txid": 7, "lsn": 300, "commit_lsn": 400, "ts_us": 1_700_000_000_000_000_i64}})
    }

    #[test]
    fn an_envelope_decodes_into_typed_metadata_and_its_rows() {
        let e = ChangeEvent::from_json(json!({"id": 1}), envelope("u", json!(null), json!({"id": 1, "x": 2}))).unwrap();
        assert_eq!(e.op, Op::Update);
        assert_eq!(
            e.position,
            Position {
                commit_lsn: Lsn(400),
                lsn: Lsn(300)
            }
        );
        assert_eq!(e.transaction.txid, 7);
        assert_eq!(e.transaction.commit_us, 1_700_000_000_000_000);
        assert_eq!(e.row().and_then(|r| r.get("x")), Some(&json!(2)));
        let d = ChangeEvent::from_json(json!({"id": 1}), envelope("d", json!({"id": 1}), json!(null))).unwrap();
        assert_eq!(
            d.row().and_then(|r| r.get("id")),
            Some(&json!(1)),
            "a delete's row is its before"
        );
    }

    #[test]
    fn what_is_not_a_change_event_says_why() {
        let bad = [
            (envelope("x", json!(null), json!({})), "op \"x\""),
            (envelope("c", json!(null), json!(null)), "without its row"),
            (
                json!({"op": "c", "after": {}, "source": {"lsn": 1}}),
                "source.commit_lsn",
            ),
            (json!([1]), "not a record"),
            (envelope("c", json!(null), json!(5)), "after is not a row"),
        ];
        for (env, why) in bad {
            let e = ChangeEvent::from_json(json!({}), env).unwrap_err();
            assert!(e.to_string().contains(why), "{e} should say {why}");
        }
    }

    #[test]
    fn positions_order_by_commit_then_lsn() {
        let p = |c, l| Position {
            commit_lsn: Lsn(c),
            lsn: Lsn(l),
        };
        assert!(p(1, 9) < p(2, 1));
        assert!(p(2, 1) < p(2, 3));
        for op in [Op::Create, Op::Update, Op::Delete, Op::Read] {
            assert_eq!(Op::from_code(op.code()), Some(op));
        }
    }
}
