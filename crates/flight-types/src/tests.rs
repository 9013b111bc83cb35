use avro_codec::AvroRecord;
use proptest::prelude::*;
use rules::EvalContext;

use super::*;

fn now(s: &FlightState) -> EvalContext {
    EvalContext { now_ms: s.last_contact }
}

fn broken_rules(s: &FlightState) -> Vec<String> {
    s.validate(now(s)).iter().map(|v| v.rule.to_string()).collect()
}

/// The same value encoded by apache-avro's generic path.
fn apache_encode(s: &FlightState) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(FlightState::SCHEMA).unwrap();
    let value = apache_avro::to_value(s).unwrap().resolve(&schema).unwrap();
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap();
    writer.write_value_to_vec(value).unwrap()
}

proptest! {
    #[test]
    fn flight_state_round_trips(s in FlightState::arbitrary()) {
        let bytes = s.to_avro();
        prop_assert_eq!(FlightState::from_avro(&bytes).unwrap(), s);
    }

    #[test]
    fn flight_state_bytes_equal_apache_avro(s in FlightState::arbitrary()) {
        prop_assert_eq!(s.to_avro(), apache_encode(&s));
    }

    #[test]
    fn position_source_round_trips(p in PositionSource::arbitrary()) {
        prop_assert_eq!(PositionSource::from_index(p.index()), Some(p));
        prop_assert_eq!(PositionSource::from_symbol(p.symbol()), Some(p));
    }

    #[test]
    fn aircraft_category_round_trips(c in AircraftCategory::arbitrary()) {
        prop_assert_eq!(AircraftCategory::from_index(c.index()), Some(c));
        prop_assert_eq!(AircraftCategory::from_symbol(c.symbol()), Some(c));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes: Vec<u8>) {
        let _ = FlightState::from_avro(&bytes);
    }

    #[test]
    fn truncation_is_an_error_not_a_panic(s in FlightState::arbitrary(), cut in 0usize..64) {
        let bytes = s.to_avro();
        let cut = cut.min(bytes.len().saturating_sub(1));
        prop_assert!(FlightState::from_avro(&bytes[..cut]).is_err());
    }
}

#[test]
fn the_sample_is_valid_and_encodes_like_apache_avro() {
    let s = sample_flight_state();
    assert_eq!(broken_rules(&s), Vec::<String>::new());
    assert_eq!(s.to_avro(), apache_encode(&s));
}

#[test]
fn each_kind_of_bad_data_breaks_its_rule() {
    let base = sample_flight_state();
    let cases: Vec<(&str, FlightState)> = vec![
        (
            "latitude.range",
            FlightState {
                latitude: Some(91.0),
                ..base.clone()
            },
        ),
        (
            "longitude.range",
            FlightState {
                longitude: Some(-180.5),
                ..base.clone()
            },
        ),
        (
            "icao24.pattern",
            FlightState {
                icao24: "4B18Z5".into(),
                ..base.clone()
            },
        ),
        (
            "squawk.pattern",
            FlightState {
                squawk: Some("7800".into()),
                ..base.clone()
            },
        ),
        (
            "velocity.range",
            FlightState {
                velocity: Some(5000.0),
                ..base.clone()
            },
        ),
        (
            "baro_altitude.range",
            FlightState {
                baro_altitude: Some(f64::NAN),
                ..base.clone()
            },
        ),
        (
            "callsign.length",
            FlightState {
                callsign: Some("TOOLONGCALL".into()),
                ..base.clone()
            },
        ),
        (
            "origin_country.length",
            FlightState {
                origin_country: String::new(),
                ..base.clone()
            },
        ),
        (
            "time_position_not_after_last_contact",
            FlightState {
                time_position: Some(base.last_contact + 1),
                ..base.clone()
            },
        ),
        (
            "position_is_complete",
            FlightState {
                latitude: None,
                ..base.clone()
            },
        ),
    ];
    for (rule, state) in cases {
        assert_eq!(broken_rules(&state), vec![rule.to_string()], "{rule}");
    }
    let future = FlightState {
        last_contact: base.last_contact + 3_600_000,
        time_position: None,
        ..base.clone()
    };
    let v = future.validate(EvalContext {
        now_ms: base.last_contact,
    });
    assert_eq!(v.len(), 1);
    assert_eq!(&*v[0].rule, "last_contact.not_future");
    assert_eq!(v[0].value, (base.last_contact + 3_600_000).to_string());
}

#[test]
fn violations_report_every_broken_rule_with_field_and_value() {
    let s = FlightState {
        latitude: Some(123.0),
        icao24: "xyz".into(),
        ..sample_flight_state()
    };
    let v = s.validate(now(&s));
    assert_eq!(v.len(), 2);
    assert_eq!(
        (&*v[0].rule, &*v[0].field, v[0].value.as_str()),
        ("icao24.pattern", "icao24", "\"xyz\"")
    );
    assert_eq!(
        (&*v[1].rule, &*v[1].field, v[1].value.as_str()),
        ("latitude.range", "latitude", "123")
    );
    assert_eq!(v[1].message, "must be between -90 and 90");
}

#[test]
fn nulls_pass_field_rules() {
    let s = FlightState {
        longitude: None,
        latitude: None,
        baro_altitude: None,
        velocity: None,
        squawk: None,
        callsign: None,
        time_position: None,
        ..sample_flight_state()
    };
    assert_eq!(broken_rules(&s), Vec::<String>::new());
}

#[test]
fn serde_json_uses_schema_names() {
    let json = serde_json::to_value(sample_flight_state()).unwrap();
    assert_eq!(json["position_source"], "ADSB");
    assert_eq!(json["category"], "LARGE");
    assert_eq!(json["time_position"], 1_732_435_200_000i64);
}
