#![no_main]
//! Arbitrary bytes through the pgoutput decoder: an error or a message that
//! encodes back to the same bytes, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = pgoutput::decode(data) {
        // Flags bytes the decoder reads as booleans (Commit's unused flags
        // excepted) can differ, so only check that re-encoding decodes the same.
        let again = pgoutput::encode(&message);
        assert_eq!(pgoutput::decode(&again).unwrap(), message);
    }
});
