//! PostgreSQL's `pgoutput` logical replication messages (protocol version 1),
//! decoded into typed values.
//!
//! The CDC stage receives these bytes from a replication slot, one message
//! per WAL record it cares about: a transaction is `Begin`, then `Relation`
//! (and `Type`) messages describing the tables before their first row, then
//! `Insert`/`Update`/`Delete`/`Truncate` and logical decoding `Message`s,
//! then `Commit`. Row values ([`Datum`]) arrive as text, as binary (with the
//! `binary 'true'` option), as null, or as the "unchanged TOAST" marker an
//! update carries for a large value it did not touch.
//!
//! [`decode`] never panics: every read is bounds-checked and malformed input
//! is a [`DecodeError`] naming the byte offset. Streamed transactions
//! (protocol version 2+) are refused as unsupported rather than misread.
//! [`encode`] writes the same format, for tests.

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A PostgreSQL timestamp (microseconds since 2000-01-01) as Unix milliseconds.
pub fn pg_micros_to_unix_millis(pg_micros: i64) -> i64 {
    pg_micros.saturating_add(PG_EPOCH_OFFSET_MICROS).div_euclid(1000)
}

/// A write-ahead log position (the pipeline's one type for it).
pub use changes::Lsn;

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    Null,
    /// The value is TOASTed and did not change: the update does not carry it.
    UnchangedToast,
    /// The value in its text output form.
    Text(Vec<u8>),
    /// The value in its binary send form.
    Binary(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    Default,
    Nothing,
    Full,
    Index,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Part of the replica identity (the key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<Column>,
}

/// The old row of an update or delete: its key columns only (default
/// replica identity), or the whole row (REPLICA IDENTITY FULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldRow {
    Key(Vec<Datum>),
    Full(Vec<Datum>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: Lsn,
        commit_time: i64,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: i64,
    },
    Origin {
        commit_lsn: Lsn,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<Datum>,
    },
    /// `old` is present when the key changed or the table has REPLICA IDENTITY FULL.
    Update {
        relation: u32,
        old: Option<OldRow>,
        new: Vec<Datum>,
    },
    Delete {
        relation: u32,
        old: OldRow,
    },
    Truncate {
        cascade: bool,
        restart_identity: bool,
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Vec<u8>,
    },
}

/// Why bytes are not a pgoutput message, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pgoutput message at byte {offset}: {kind}")]
pub struct DecodeError {
    pub offset: usize,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("empty message")]
    Empty,
    #[error("unexpected end of message ({needed} more bytes needed)")]
    Truncated { needed: usize },
    #[error("unknown message type {0:?}")]
    UnknownType(char),
    #[error(
        "message type {0:?} belongs to streamed transactions (protocol version 2+), which this decoder does not read"
    )]
    Streaming(char),
    #[error("expected {expected}, found byte {found:?}")]
    Unexpected { expected: &'static str, found: char },
    #[error("string is not NUL-terminated")]
    UnterminatedString,
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("negative {0}")]
    Negative(&'static str),
    #[error("unknown replica identity {0:?}")]
    ReplicaIdentity(char),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, kind: ErrorKind) -> DecodeError {
        DecodeError { offset: self.pos, kind }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(ErrorKind::Truncated {
                needed: n - (self.buf.len() - self.pos),
            }));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn lsn(&mut self) -> Result<Lsn, DecodeError> {
        Ok(Lsn(u64::from_be_bytes(self.array()?)))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos..];
        let Some(nul) = rest.iter().position(|b| *b == 0) else {
            return Err(self.err(ErrorKind::UnterminatedString));
        };
        let s = std::str::from_utf8(&rest[..nul]).map_err(|_| self.err(ErrorKind::InvalidUtf8))?;
        self.pos += nul + 1;
        Ok(s.to_string())
    }

    fn count(&mut self, what: &'static str, n: i64) -> Result<usize, DecodeError> {
        usize::try_from(n).map_err(|_| self.err(ErrorKind::Negative(what)))
    }

    fn tuple(&mut self) -> Result<Vec<Datum>, DecodeError> {
        let n = self.i16()?;
        let n = self.count("column count", i64::from(n))?;
        let mut out = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            let kind = self.u8()?;
            out.push(match kind {
                b'n' => Datum::Null,
                b'u' => Datum::UnchangedToast,
                b't' | b'b' => {
                    let len = self.i32()?;
                    let len = self.count("value length", i64::from(len))?;
                    let bytes = self.take(len)?.to_vec();
                    if kind == b't' {
                        Datum::Text(bytes)
                    } else {
                        Datum::Binary(bytes)
                    }
                }
                other => {
                    self.pos -= 1;
                    return Err(self.err(ErrorKind::Unexpected {
                        expected: "a column kind (n, u, t or b)",
                        found: other as char,
                    }));
                }
            });
        }
        Ok(out)
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), DecodeError> {
        let found = self.u8()?;
        if found != byte {
            self.pos -= 1;
            return Err(self.err(ErrorKind::Unexpected {
                expected,
                found: found as char,
            }));
        }
        Ok(())
    }

    fn old_row(&mut self) -> Result<OldRow, DecodeError> {
        match self.u8()? {
            b'K' => Ok(OldRow::Key(self.tuple()?)),
            b'O' => Ok(OldRow::Full(self.tuple()?)),
            other => {
                self.pos -= 1;
                Err(self.err(ErrorKind::Unexpected {
                    expected: "K or O",
                    found: other as char,
                }))
            }
        }
    }

    /// A Relation message's body: the table's name, replica identity and
    /// columns.
    fn relation(&mut self) -> Result<Relation, DecodeError> {
        let id = self.u32()?;
        let namespace = self.string()?;
        let name = self.string()?;
        let ident = self.u8()?;
        let replica_identity = match ident {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            other => {
                self.pos -= 1;
                return Err(self.err(ErrorKind::ReplicaIdentity(other as char)));
            }
        };
        let n = self.i16()?;
        let n = self.count("column count", i64::from(n))?;
        let mut columns = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            columns.push(Column {
                key: self.u8()? & 1 == 1,
                name: self.string()?,
                type_oid: self.u32()?,
                type_modifier: self.i32()?,
            });
        }
        Ok(Relation {
            id,
            namespace,
            name,
            replica_identity,
            columns,
        })
    }

    /// An Update message's body: the old row when the replica identity
    /// sends one, then the new row.
    fn update(&mut self) -> Result<Message, DecodeError> {
        let relation = self.u32()?;
        let old = match self.buf.get(self.pos) {
            Some(b'K' | b'O') => Some(self.old_row()?),
            _ => None,
        };
        self.expect(b'N', "N (new row)")?;
        Ok(Message::Update {
            relation,
            old,
            new: self.tuple()?,
        })
    }

    fn truncate(&mut self) -> Result<Message, DecodeError> {
        let n = self.i32()?;
        let n = self.count("relation count", i64::from(n))?;
        let options = self.u8()?;
        let mut relations = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            relations.push(self.u32()?);
        }
        Ok(Message::Truncate {
            cascade: options & 1 != 0,
            restart_identity: options & 2 != 0,
            relations,
        })
    }

    /// A logical decoding message (`pg_logical_emit_message`).
    fn logical_message(&mut self) -> Result<Message, DecodeError> {
        let transactional = self.u8()? & 1 == 1;
        let lsn = self.lsn()?;
        let prefix = self.string()?;
        let len = self.i32()?;
        let len = self.count("content length", i64::from(len))?;
        Ok(Message::Message {
            transactional,
            lsn,
            prefix,
            content: self.take(len)?.to_vec(),
        })
    }
}

/// Decodes one message.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let Some(&tag) = buf.first() else {
        return Err(r.err(ErrorKind::Empty));
    };
    r.pos = 1;
    let msg = match tag {
        b'B' => Message::Begin {
            final_lsn: r.lsn()?,
            commit_time: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => Message::Commit {
            flags: r.u8()?,
            commit_lsn: r.lsn()?,
            end_lsn: r.lsn()?,
            commit_time: r.i64()?,
        },
        b'O' => Message::Origin {
            commit_lsn: r.lsn()?,
            name: r.string()?,
        },
        b'R' => Message::Relation(r.relation()?),
        b'Y' => Message::Type {
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            r.expect(b'N', "N (new row)")?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => r.update()?,
        b'D' => Message::Delete {
            relation: r.u32()?,
            old: r.old_row()?,
        },
        b'T' => r.truncate()?,
        b'M' => r.logical_message()?,
        b'S' | b'E' | b'c' | b'A' | b'P' | b'K' | b'r' | b'p' | b'b' => {
            r.pos = 0;
            return Err(r.err(ErrorKind::Streaming(tag as char)));
        }
        other => {
            r.pos = 0;
            return Err(r.err(ErrorKind::UnknownType(other as char)));
        }
    };
    if r.pos != buf.len() {
        return Err(r.err(ErrorKind::Trailing(buf.len() - r.pos)));
    }
    Ok(msg)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn put_tuple(out: &mut Vec<u8>, t: &[Datum]) {
    out.extend_from_slice(&(t.len() as i16).to_be_bytes());
    for d in t {
        match d {
            Datum::Null => out.push(b'n'),
            Datum::UnchangedToast => out.push(b'u'),
            Datum::Text(b) | Datum::Binary(b) => {
                out.push(if matches!(d, Datum::Text(_)) { b't' } else { b'b' });
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

fn put_old(out: &mut Vec<u8>, old: &OldRow) {
    match old {
        OldRow::Key(t) => {
            out.push(b'K');
            put_tuple(out, t);
        }
        OldRow::Full(t) => {
            out.push(b'O');
            put_tuple(out, t);
        }
    }
}

fn put_relation(out: &mut Vec<u8>, r: &Relation) {
    out.push(b'R');
    out.extend_from_slice(&r.id.to_be_bytes());
    put_string(out, &r.namespace);
    put_string(out, &r.name);
    out.push(match r.replica_identity {
        ReplicaIdentity::Default => b'd',
        ReplicaIdentity::Nothing => b'n',
        ReplicaIdentity::Full => b'f',
        ReplicaIdentity::Index => b'i',
    });
    out.extend_from_slice(&(r.columns.len() as i16).to_be_bytes());
    for c in &r.columns {
        out.push(u8::from(c.key));
        put_string(out, &c.name);
        out.extend_from_slice(&c.type_oid.to_be_bytes());
        out.extend_from_slice(&c.type_modifier.to_be_bytes());
    }
}

/// Encodes a message as pgoutput does (for tests and synthetic streams).
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    match m {
        Message::Begin {
            final_lsn,
            commit_time,
            xid,
        } => {
            out.push(b'B');
            out.extend_from_slice(&final_lsn.0.to_be_bytes());
            out.extend_from_slice(&commit_time.to_be_bytes());
            out.extend_from_slice(&xid.to_be_bytes());
        }
        Message::Commit {
            flags,
            commit_lsn,
            end_lsn,
            commit_time,
        } => {
            out.push(b'C');
            out.push(*flags);
            out.extend_from_slice(&commit_lsn.0.to_be_bytes());
            out.extend_from_slice(&end_lsn.0.to_be_bytes());
            out.extend_from_slice(&commit_time.to_be_bytes());
        }
        Message::Origin { commit_lsn, name } => {
            out.push(b'O');
            out.extend_from_slice(&commit_lsn.0.to_be_bytes());
            put_string(&mut out, name);
        }
        Message::Relation(r) => put_relation(&mut out, r),
        Message::Type { oid, namespace, name } => {
            out.push(b'Y');
            out.extend_from_slice(&oid.to_be_bytes());
            put_string(&mut out, namespace);
            put_string(&mut out, name);
        }
        Message::Insert { relation, new } => {
            out.push(b'I');
            out.extend_from_slice(&relation.to_be_bytes());
            out.push(b'N');
            put_tuple(&mut out, new);
        }
        Message::Update { relation, old, new } => {
            out.push(b'U');
            out.extend_from_slice(&relation.to_be_bytes());
            if let Some(o) = old {
                put_old(&mut out, o);
            }
            out.push(b'N');
            put_tuple(&mut out, new);
        }
        Message::Delete { relation, old } => {
            out.push(b'D');
            out.extend_from_slice(&relation.to_be_bytes());
            put_old(&mut out, old);
        }
        Message::Truncate {
            cascade,
            restart_identity,
            relations,
        } => {
            out.push(b'T');
            out.extend_from_slice(&(relations.len() as i32).to_be_bytes());
            out.push(u8::from(*cascade) | (u8::from(*restart_identity) << 1));
            relations.iter().for_each(|r| out.extend_from_slice(&r.to_be_bytes()));
        }
        Message::Message {
            transactional,
            lsn,
            prefix,
            content,
        } => {
            out.push(b'M');
            out.push(u8::from(*transactional));
            out.extend_from_slice(&lsn.0.to_be_bytes());
            put_string(&mut out, prefix);
            out.extend_from_slice(&(content.len() as i32).to_be_bytes());
            out.extend_from_slice(content);
        }
    }
    out
}

#[cfg(test)]
mod tests;
