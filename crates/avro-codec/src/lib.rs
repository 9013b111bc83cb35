//! Avro's binary encoding, written straight from and to Rust values.
//!
//! Generated types (see the `codegen` crate) implement [`AvroRecord`] by
//! calling the `put_*` functions to append to a `Vec<u8>` and the [`Reader`]
//! methods to decode, so a record is encoded without building a generic value
//! tree or resolving a schema per call. The writer's schema is assumed to be
//! the reader's own (the type's [`AvroRecord::SCHEMA`]); reading data written
//! with another version needs schema resolution and goes through the registry.
//!
//! Decoding is defensive: every read checks the remaining length, lengths and
//! block counts are bounded by the bytes left, and malformed input becomes a
//! [`DecodeError`] with the byte offset, never a panic.

/// Why bytes could not be decoded, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Avro data at byte {offset}: {kind}")]
pub struct DecodeError {
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("unexpected end of input (needed {needed} more bytes)")]
    UnexpectedEof { needed: usize },
    #[error("variable-length integer is longer than 10 bytes")]
    VarintOverflow,
    #[error("int value {0} does not fit in 32 bits")]
    IntOverflow(i64),
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("boolean byte {0} is neither 0 nor 1")]
    InvalidBoolean(u8),
    #[error("union branch {index} is out of range (the union has {branches})")]
    UnionBranch { index: i64, branches: usize },
    #[error("enum index {index} is out of range (the enum has {symbols} symbols)")]
    EnumIndex { index: i64, symbols: usize },
    #[error("block of {0} items is larger than the bytes left")]
    BlockCount(u64),
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

/// A type that encodes to and decodes from Avro binary with a fixed schema.
pub trait AvroRecord: Sized {
    /// The type's schema as `.avsc` JSON.
    const SCHEMA: &'static str;

    /// Appends the Avro binary encoding of `self` to `buf`.
    fn encode(&self, buf: &mut Vec<u8>);

    /// Reads one value from `reader`.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Encodes into a new buffer.
    fn to_avro(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(128);
        self.encode(&mut buf);
        buf
    }

    /// Decodes a value that must span all of `bytes`.
    fn from_avro(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = Self::decode(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

/// Appends a zig-zag varint `long`.
#[inline]
pub fn put_long(buf: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

#[inline]
pub fn put_int(buf: &mut Vec<u8>, v: i32) {
    put_long(buf, i64::from(v));
}

#[inline]
pub fn put_boolean(buf: &mut Vec<u8>, v: bool) {
    buf.push(u8::from(v));
}

#[inline]
pub fn put_float(buf: &mut Vec<u8>, v: f32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

#[inline]
pub fn put_double(buf: &mut Vec<u8>, v: f64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

#[inline]
pub fn put_bytes(buf: &mut Vec<u8>, v: &[u8]) {
    put_long(buf, v.len() as i64);
    buf.extend_from_slice(v);
}

#[inline]
pub fn put_string(buf: &mut Vec<u8>, v: &str) {
    put_bytes(buf, v.as_bytes());
}

/// Appends an array or map as one block followed by the end marker.
#[inline]
pub fn put_block<T>(buf: &mut Vec<u8>, items: impl ExactSizeIterator<Item = T>, mut put: impl FnMut(&mut Vec<u8>, T)) {
    if items.len() > 0 {
        put_long(buf, items.len() as i64);
        for item in items {
            put(buf, item);
        }
    }
    buf.push(0);
}

/// Most zero-size items (nulls, empty records) one block may hold.
const MAX_ZERO_SIZE_ITEMS: u64 = 1 << 16;

/// A bounds-checked cursor over Avro binary data.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset: self.pos, kind }
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(DecodeErrorKind::TrailingBytes(n))),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                self.error(DecodeErrorKind::UnexpectedEof {
                    needed: n - self.remaining(),
                })
            })?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    #[inline]
    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let mut n: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.error(DecodeErrorKind::UnexpectedEof { needed: 1 }));
            };
            self.pos += 1;
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        Err(self.error(DecodeErrorKind::VarintOverflow))
    }

    #[inline]
    pub fn int(&mut self) -> Result<i32, DecodeError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.error(DecodeErrorKind::IntOverflow(v)))
    }

    #[inline]
    pub fn boolean(&mut self) -> Result<bool, DecodeError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError {
                offset: self.pos - 1,
                kind: DecodeErrorKind::InvalidBoolean(b),
            }),
        }
    }

    #[inline]
    pub fn float(&mut self) -> Result<f32, DecodeError> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub fn double(&mut self) -> Result<f64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        let len = self.long()?;
        usize::try_from(len).map_err(|_| self.error(DecodeErrorKind::NegativeLength(len)))
    }

    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.length()?;
        self.take(len)
    }

    #[inline]
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError {
            offset: start,
            kind: DecodeErrorKind::InvalidUtf8,
        })
    }

    #[inline]
    pub fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// Reads `n` raw bytes (a `fixed` whose size is known at run time).
    pub fn fixed_bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take(n)
    }

    /// Reads `size` raw bytes (a `fixed`).
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// Reads a union branch index and checks it against the branch count.
    #[inline]
    pub fn union_index(&mut self, branches: usize) -> Result<usize, DecodeError> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .filter(|&i| i < branches)
            .ok_or_else(|| self.error(DecodeErrorKind::UnionBranch { index, branches }))
    }

    /// Reads an enum index and checks it against the symbol count.
    #[inline]
    pub fn enum_index(&mut self, symbols: usize) -> Result<usize, DecodeError> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .filter(|&i| i < symbols)
            .ok_or_else(|| self.error(DecodeErrorKind::EnumIndex { index, symbols }))
    }

    /// Reads the blocks of an array or map, calling `item` once per element.
    /// A negative block count is followed by the block's size in bytes, which
    /// is read and ignored.
    pub fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), DecodeError>) -> Result<(), DecodeError> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            let count = count.unsigned_abs();
            // Elements take at least one byte each, except zero-size ones
            // (null, empty records); a count beyond the bytes left is only
            // plausible for those, and is capped so it cannot spin forever.
            if count > self.remaining() as u64 && count > MAX_ZERO_SIZE_ITEMS {
                return Err(self.error(DecodeErrorKind::BlockCount(count)));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    /// Reads an array of elements decoded by `item`.
    pub fn array<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        self.blocks(|r| {
            out.push(item(r)?);
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zigzag_matches_the_spec_table() {
        for (v, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-2, vec![3]),
            (2, vec![4]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
        ] {
            let mut buf = Vec::new();
            put_long(&mut buf, v);
            assert_eq!(buf, bytes, "{v}");
        }
    }

    #[test]
    fn truncated_and_hostile_input_is_an_error() {
        assert_eq!(
            Reader::new(&[]).long().unwrap_err().kind,
            DecodeErrorKind::UnexpectedEof { needed: 1 }
        );
        assert_eq!(
            Reader::new(&[0xff; 11]).long().unwrap_err().kind,
            DecodeErrorKind::VarintOverflow
        );
        // A string claiming 2^62 bytes.
        let mut buf = Vec::new();
        put_long(&mut buf, 1 << 62);
        assert!(matches!(
            Reader::new(&buf).str().unwrap_err().kind,
            DecodeErrorKind::UnexpectedEof { .. }
        ));
        assert_eq!(
            Reader::new(&[3]).bytes().unwrap_err().kind,
            DecodeErrorKind::NegativeLength(-2)
        );
        assert_eq!(
            Reader::new(&[2]).boolean().unwrap_err().kind,
            DecodeErrorKind::InvalidBoolean(2)
        );
        assert_eq!(
            Reader::new(&[4]).union_index(2).unwrap_err().kind,
            DecodeErrorKind::UnionBranch { index: 2, branches: 2 }
        );
        assert_eq!(
            Reader::new(&[2, 0xc3, 0x28]).str().unwrap_err().kind,
            DecodeErrorKind::InvalidUtf8
        );
    }

    #[test]
    fn negative_block_counts_carry_a_size() {
        // -2 items, 2 bytes of size, then items 1 and 2, then end.
        let mut buf = Vec::new();
        put_long(&mut buf, -2);
        put_long(&mut buf, 2);
        put_int(&mut buf, 1);
        put_int(&mut buf, 2);
        buf.push(0);
        assert_eq!(Reader::new(&buf).array(Reader::int).unwrap(), vec![1, 2]);
    }

    proptest! {
        #[test]
        fn long_round_trips(v: i64) {
            let mut buf = Vec::new();
            put_long(&mut buf, v);
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.long().unwrap(), v);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn strings_and_arrays_round_trip(s: String, items: Vec<i32>, d: f64) {
            let mut buf = Vec::new();
            put_string(&mut buf, &s);
            put_block(&mut buf, items.iter(), |b, v| put_int(b, *v));
            put_double(&mut buf, d);
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.str().unwrap(), s.as_str());
            prop_assert_eq!(r.array(Reader::int).unwrap(), items);
            prop_assert_eq!(r.double().unwrap().to_bits(), d.to_bits());
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let mut r = Reader::new(&bytes);
            let _ = r.str();
            let _ = r.array(Reader::long);
            let _ = r.double();
        }
    }
}
