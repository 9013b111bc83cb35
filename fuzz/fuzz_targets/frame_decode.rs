#![no_main]
//! Arbitrary bytes through the frame decoder and then the generated
//! FlightState decoder: both must return errors, never panic.

use avro_codec::AvroRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = wire::decode(data) {
        let _ = flight_types::FlightState::from_avro(frame.body);
    }
});
