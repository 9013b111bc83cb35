//! The Confluent wire format, the framing every Schema Registry client uses
//! for a Kafka record's key or value:
//!
//! ```text
//! byte 0      magic byte, always 0
//! bytes 1..5  schema id, 32-bit big-endian, as the registry assigned it
//! bytes 5..   the Avro binary body, written with that schema
//! ```
//!
//! [`encode_into`] frames a body; [`decode`] splits a frame and refuses short,
//! foreign or empty input with a [`WireError`], never a panic (a fuzz target
//! in `fuzz/` exercises it).

/// The magic byte that starts every framed record.
pub const MAGIC_BYTE: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a Confluent-framed record. All are data errors: the
/// record belongs on a dead-letter path, retrying cannot fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("record is {len} bytes, shorter than the {HEADER_LEN}-byte Confluent header")]
    TooShort { len: usize },
    #[error("record starts with byte {found:#04x}, not the Confluent magic byte 0x00 (not registry-framed data)")]
    BadMagic { found: u8 },
    #[error("schema id {0} is negative; registry ids are positive")]
    NegativeId(i32),
}

/// A registry schema id.
pub type SchemaId = u32;

/// Appends the header for `schema_id` and then `body` to `buf`.
pub fn encode_into(buf: &mut Vec<u8>, schema_id: SchemaId, body: &[u8]) {
    buf.reserve(HEADER_LEN + body.len());
    write_header(buf, schema_id);
    buf.extend_from_slice(body);
}

/// Appends only the header, so a caller can encode the body in place after it.
pub fn write_header(buf: &mut Vec<u8>, schema_id: SchemaId) {
    buf.push(MAGIC_BYTE);
    buf.extend_from_slice(&schema_id.to_be_bytes());
}

/// A framed record split into its schema id and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    pub schema_id: SchemaId,
    pub body: &'a [u8],
}

/// Splits a framed record.
pub fn decode(bytes: &[u8]) -> Result<Framed<'_>, WireError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(WireError::TooShort { len: bytes.len() });
    };
    let [magic, id @ ..] = *header;
    if magic != MAGIC_BYTE {
        return Err(WireError::BadMagic { found: magic });
    }
    let signed = i32::from_be_bytes(id);
    if signed < 0 {
        return Err(WireError::NegativeId(signed));
    }
    Ok(Framed {
        schema_id: signed as u32,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_frame() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 258, &[0xaa]);
        assert_eq!(buf, [0, 0, 0, 1, 2, 0xaa]);
        assert_eq!(
            decode(&buf).unwrap(),
            Framed {
                schema_id: 258,
                body: &[0xaa]
            }
        );
    }

    #[test]
    fn short_and_foreign_bytes_are_typed_errors() {
        assert_eq!(decode(&[]), Err(WireError::TooShort { len: 0 }));
        assert_eq!(decode(&[0, 0, 0, 1]), Err(WireError::TooShort { len: 4 }));
        assert_eq!(decode(b"{\"json\":1}"), Err(WireError::BadMagic { found: b'{' }));
        assert_eq!(decode(&[0, 0xff, 0xff, 0xff, 0xff]), Err(WireError::NegativeId(-1)));
        assert!(
            decode(&[0, 0, 0, 0, 7]).is_ok(),
            "an empty body is the body's problem, not the frame's"
        );
    }

    proptest! {
        #[test]
        fn round_trips(id in 0u32..=i32::MAX as u32, body: Vec<u8>) {
            let mut buf = Vec::new();
            encode_into(&mut buf, id, &body);
            let f = decode(&buf).unwrap();
            prop_assert_eq!(f.schema_id, id);
            prop_assert_eq!(f.body, body.as_slice());
        }

        #[test]
        fn never_panics(bytes: Vec<u8>) {
            let _ = decode(&bytes);
        }
    }
}
