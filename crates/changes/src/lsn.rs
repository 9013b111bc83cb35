//! WAL positions.

use std::fmt;

/// A write-ahead log position: PostgreSQL's `pg_lsn`, a byte offset in
/// the WAL, ordered as the log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses the `X/Y` text form PostgreSQL prints (two hexadecimal
    /// halves of at most 32 bits); `None` for anything else.
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.split_once('/')?;
        let hi = u64::from(u32::from_str_radix(hi, 16).ok()?);
        let lo = u64::from(u32::from_str_radix(lo, 16).ok()?);
        Some(Lsn((hi << 32) | lo))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Lsn {
        Lsn(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_rejects_the_rest() {
        for v in [0, 1, 0x16_B374_D848, u64::MAX] {
            assert_eq!(Lsn::parse(&Lsn(v).to_string()), Some(Lsn(v)));
        }
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        for bad in ["", "16", "16/", "/1", "G/1", "100000000/0", "1/2/3", " 1/2"] {
            assert_eq!(Lsn::parse(bad), None, "{bad}");
        }
    }
}
