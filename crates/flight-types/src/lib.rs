//! The flight domain's types, generated from `schemas/flight.avdl`.
//!
//! `generated.rs` is written by `contrail schema codegen` and checked for
//! drift in CI; do not edit it. This file adds what every generated record
//! shares: validation against the data-quality rules its own schema carries.
//!
//! ```
//! use avro_codec::AvroRecord;
//! use flight_types::{FlightState, Validate};
//! # let state = flight_types::sample_flight_state();
//! let bytes = state.to_avro();
//! assert_eq!(FlightState::from_avro(&bytes).unwrap(), state);
//! assert!(state.validate(rules::EvalContext { now_ms: state.last_contact }).is_empty());
//! ```

#[allow(unreachable_pub)]
mod generated;

use std::sync::OnceLock;

pub use generated::*;

/// Data-quality validation with the rules declared in the type's schema.
pub trait Validate: avro_codec::AvroRecord + rules::FieldAccess {
    /// The compiled rules of `Self::SCHEMA`, built once per process.
    fn rule_set() -> &'static rules::RuleSet;

    /// Every rule the value breaks; empty when it is valid.
    fn validate(&self, ctx: rules::EvalContext) -> Vec<rules::Violation> {
        Self::rule_set().evaluate(self, &ctx)
    }
}

fn compile_rules(schema_json: &str) -> rules::RuleSet {
    let schema = schema::Schema::parse_str(schema_json).expect("generated SCHEMA is the compiled .avsc and parses");
    rules::RuleSet::from_schema(&schema).expect("`contrail schema lint` rejects schemas whose rules do not compile")
}

impl Validate for FlightState {
    fn rule_set() -> &'static rules::RuleSet {
        static RULES: OnceLock<rules::RuleSet> = OnceLock::new();
        RULES.get_or_init(|| compile_rules(<Self as avro_codec::AvroRecord>::SCHEMA))
    }
}

/// A valid, realistic state vector (an A320 over the Netherlands), for
/// examples, tests and benchmarks.
pub fn sample_flight_state() -> FlightState {
    FlightState {
        icao24: "4b1805".into(),
        callsign: Some("SWR5KV  ".into()),
        origin_country: "Switzerland".into(),
        time_position: Some(1_732_435_200_000),
        last_contact: 1_732_435_201_000,
        longitude: Some(4.7634),
        latitude: Some(52.3105),
        baro_altitude: Some(10_972.8),
        on_ground: false,
        velocity: Some(231.4),
        true_track: Some(287.5),
        vertical_rate: Some(0.0),
        sensors: None,
        geo_altitude: Some(11_277.6),
        squawk: Some("1000".into()),
        spi: false,
        position_source: PositionSource::Adsb,
        category: AircraftCategory::Large,
    }
}

#[cfg(test)]
mod tests;
