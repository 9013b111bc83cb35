//! Incremental snapshots: a table added to a running capture is read in
//! primary-key chunks while the stream goes on, with the watermark method
//! of Netflix's DBLog (the one Debezium's signal-based snapshots use).
//!
//! For each chunk the stage commits a *low* watermark (a transactional
//! logical message), selects the next rows by primary key, and commits a
//! *high* watermark. When the stream reaches the low watermark the window
//! opens; every streamed change to a key of the chunk drops that row from
//! the chunk, because the stream's version is at least as new. At the high
//! watermark the rows left are emitted as `r` events at the high
//! watermark's position, and the next chunk is read. A row is therefore
//! never emitted older than a change already sent for its key, and a key
//! no change touched is emitted as it was at the high watermark.
//!
//! A table counts as snapshotted once Kafka acknowledged its last chunk; a
//! stage that stops before then takes the table's snapshot again from the
//! start on its next run (duplicate `r` events; the sink keeps one).

use std::collections::VecDeque;

use pgoutput::Datum;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::catalog::TableShape;
use crate::config::quote_ident;
use crate::CdcError;

/// Rows per chunk.
pub(crate) const CHUNK_ROWS: usize = 2_048;
pub(crate) const LOW: &str = "contrail.snapshot.low";
pub(crate) const HIGH: &str = "contrail.snapshot.high";

/// A row's primary key values, parsed: a chunk's rows arrive as text and
/// streamed changes may arrive binary, so raw bytes would not compare.
type Key = Vec<pg_avro::Val>;

#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) id: String,
    /// `schema.table`.
    pub(crate) table: String,
    pub(crate) rows: Vec<(Key, Vec<Datum>)>,
    /// The low watermark has been seen in the stream.
    pub(crate) open: bool,
    /// Fewer rows than asked for: the table's last chunk.
    pub(crate) last: bool,
}

/// Tables waiting for or going through an incremental snapshot.
#[derive(Debug)]
pub(crate) struct Incremental {
    slot: String,
    queue: VecDeque<TableShape>,
    /// The primary key (as SQL text) after which the next chunk of the head table starts.
    after: Option<Vec<Option<String>>>,
    pub(crate) chunk: Option<Chunk>,
    next_id: u64,
}

fn key_of(shape: &TableShape, datums: &[Datum]) -> Key {
    shape
        .primary_key
        .iter()
        .map(|k| {
            let column = shape.relation.columns.iter().position(|c| &c.name == k);
            column
                .and_then(|i| {
                    let c = &shape.relation.columns[i];
                    let ty = pg_avro::pg_type(c.type_oid, c.type_modifier)?;
                    pg_avro::parse_datum(k, &ty, datums.get(i)?).ok()
                })
                .unwrap_or(pg_avro::Val::Null)
        })
        .collect()
}

/// A SQL literal (standard_conforming_strings is on for the session).
fn literal(bytes: &[u8]) -> String {
    format!("'{}'", String::from_utf8_lossy(bytes).replace('\'', "''"))
}

impl Incremental {
    pub(crate) fn new(slot: &str, tables: Vec<TableShape>) -> Incremental {
        Incremental {
            slot: slot.to_string(),
            queue: tables.into(),
            after: None,
            chunk: None,
            next_id: 0,
        }
    }

    /// Nothing left to snapshot.
    pub(crate) fn is_done(&self) -> bool {
        self.queue.is_empty() && self.chunk.is_none()
    }

    /// Whether the next chunk should be read now.
    pub(crate) fn wants_chunk(&self) -> bool {
        self.chunk.is_none() && !self.queue.is_empty()
    }

    /// Low watermark, the chunk's rows, high watermark.
    pub(crate) async fn read_chunk(&mut self, sql: &Client) -> Result<(), CdcError> {
        let Some(shape) = self.queue.front() else { return Ok(()) };
        let rel = &shape.relation;
        self.next_id += 1;
        let id = format!("{}:{}:{}", self.slot, std::process::id(), self.next_id);
        let cols: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let keys: Vec<String> = shape.primary_key.iter().map(|k| quote_ident(k)).collect();
        let bound = match &self.after {
            None => String::new(),
            Some(after) => {
                let values: Vec<String> = after
                    .iter()
                    .zip(&shape.key_types)
                    .map(|(v, ty)| {
                        format!(
                            "{}::{ty}",
                            v.as_deref().map_or("NULL".into(), |t| literal(t.as_bytes()))
                        )
                    })
                    .collect();
                format!("WHERE ({}) > ({})", keys.join(", "), values.join(", "))
            }
        };
        let query = format!(
            "SELECT {} FROM {}.{} {bound} ORDER BY {} LIMIT {CHUNK_ROWS}",
            cols.join(", "),
            quote_ident(&rel.namespace),
            quote_ident(&rel.name),
            keys.join(", ")
        );
        let emit = |prefix: &'static str| {
            let id = id.clone();
            async move {
                sql.execute("SELECT pg_logical_emit_message(true, $1, $2)", &[&prefix, &id])
                    .await
                    .map_err(CdcError::Postgres)
            }
        };
        emit(LOW).await?;
        let mut rows = Vec::new();
        for m in sql.simple_query(&query).await.map_err(CdcError::Postgres)? {
            let SimpleQueryMessage::Row(r) = m else { continue };
            let datums: Vec<Datum> = (0..r.len())
                .map(|i| r.get(i).map_or(Datum::Null, |s| Datum::Text(s.as_bytes().to_vec())))
                .collect();
            rows.push((key_of(shape, &datums), datums));
        }
        emit(HIGH).await?;
        // The bound is the last row's key as PostgreSQL printed it.
        let bound_of = |datums: &Vec<Datum>| -> Vec<Option<String>> {
            shape
                .primary_key
                .iter()
                .map(|k| {
                    let i = rel.columns.iter().position(|c| &c.name == k)?;
                    match datums.get(i)? {
                        Datum::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                        _ => None,
                    }
                })
                .collect()
        };
        self.after = rows.last().map(|(_, d)| bound_of(d)).or(self.after.take());
        self.chunk = Some(Chunk {
            id,
            table: format!("{}.{}", rel.namespace, rel.name),
            last: rows.len() < CHUNK_ROWS,
            rows,
            open: false,
        });
        Ok(())
    }

    /// A streamed change to `table`: drops the chunk's rows for its keys.
    pub(crate) fn saw_change(&mut self, table: &str, old: Option<&[Datum]>, new: Option<&[Datum]>) {
        let (Some(chunk), Some(shape)) = (&mut self.chunk, self.queue.front()) else {
            return;
        };
        if !chunk.open || chunk.table != table {
            return;
        }
        for d in [old, new].into_iter().flatten() {
            let key = key_of(shape, d);
            chunk.rows.retain(|(k, _)| *k != key);
        }
    }

    /// A watermark message. At the high one, returns the chunk to emit
    /// and whether it finished its table.
    pub(crate) fn watermark(&mut self, prefix: &str, content: &[u8]) -> Option<(Chunk, Option<TableShape>)> {
        let chunk = self.chunk.as_mut()?;
        if content != chunk.id.as_bytes() {
            return None;
        }
        match prefix {
            LOW => {
                chunk.open = true;
                None
            }
            HIGH => {
                let chunk = self.chunk.take()?;
                let finished = if chunk.last {
                    self.after = None;
                    self.queue.pop_front()
                } else {
                    None
                };
                Some((chunk, finished))
            }
            _ => None,
        }
    }
}
