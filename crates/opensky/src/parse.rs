//! OpenSky's `/states/all` answer into FlightState values.
//!
//! The answer is `{"time": <s>, "states": [[...], ...] | null}`; each state
//! is a positional array (icao24, callsign, origin_country, time_position,
//! last_contact, longitude, latitude, baro_altitude, on_ground, velocity,
//! true_track, vertical_rate, sensors, geo_altitude, squawk, spi,
//! position_source[, category with `extended=1`]). Times are seconds and
//! become milliseconds. A row that does not fit is reported as
//! [`Malformed`] with its index and the reason, and the others are kept:
//! one bad row never loses a snapshot.

use flight_types::{AircraftCategory, FlightState, PositionSource};
use serde_json::Value;

/// A row that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub index: usize,
    pub reason: String,
}

/// One snapshot of the airspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Seconds since the epoch of the snapshot, as OpenSky reports it.
    pub time: i64,
    pub states: Vec<FlightState>,
    pub malformed: Vec<Malformed>,
}

/// Why a whole answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("answer is not JSON: {0}")]
    Json(String),
    #[error("answer is not an object with \"time\" and \"states\": {0}")]
    Shape(String),
}

pub fn parse_answer(text: &str) -> Result<Snapshot, ParseError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    parse_value(&v)
}

pub fn parse_value(v: &Value) -> Result<Snapshot, ParseError> {
    let shape = |m: &str| ParseError::Shape(m.to_string());
    let obj = v.as_object().ok_or_else(|| shape("not an object"))?;
    let time = obj
        .get("time")
        .and_then(Value::as_i64)
        .ok_or_else(|| shape("\"time\" is missing or not an integer"))?;
    let rows = match obj.get("states") {
        None | Some(Value::Null) => {
            return Ok(Snapshot {
                time,
                states: Vec::new(),
                malformed: Vec::new(),
            })
        }
        Some(Value::Array(rows)) => rows,
        Some(_) => return Err(shape("\"states\" is neither a list nor null")),
    };
    let mut states = Vec::with_capacity(rows.len());
    let mut malformed = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        match parse_row(row) {
            Ok(s) => states.push(s),
            Err(reason) => malformed.push(Malformed { index, reason }),
        }
    }
    Ok(Snapshot {
        time,
        states,
        malformed,
    })
}

fn opt_f64(row: &[Value], i: usize, name: &str) -> Result<Option<f64>, String> {
    match row.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{name} is not a number: {v}")),
    }
}

fn opt_secs(row: &[Value], i: usize, name: &str) -> Result<Option<i64>, String> {
    match row.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .and_then(|s| s.checked_mul(1000))
            .map(Some)
            .ok_or_else(|| format!("{name} is not a time in seconds: {v}")),
    }
}

fn opt_str(row: &[Value], i: usize, name: &str) -> Result<Option<String>, String> {
    match row.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("{name} is not a string: {v}")),
    }
}

fn parse_row(row: &Value) -> Result<FlightState, String> {
    let row = row.as_array().ok_or_else(|| format!("not a list: {row}"))?;
    if row.len() < 17 {
        return Err(format!("{} fields, expected at least 17", row.len()));
    }
    let icao24 = opt_str(row, 0, "icao24")?.ok_or("icao24 is null")?;
    let origin_country = opt_str(row, 2, "origin_country")?.ok_or("origin_country is null")?;
    let last_contact = opt_secs(row, 4, "last_contact")?.ok_or("last_contact is null")?;
    let on_ground = row[8]
        .as_bool()
        .ok_or_else(|| format!("on_ground is not a boolean: {}", row[8]))?;
    let sensors = match &row[12] {
        Value::Null => None,
        Value::Array(a) => Some(
            a.iter()
                .map(|s| s.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect::<Option<Vec<i32>>>()
                .ok_or("sensors are not all integers")?,
        ),
        v => return Err(format!("sensors is not a list: {v}")),
    };
    let position_source = match row[16].as_i64() {
        Some(0) => PositionSource::Adsb,
        Some(1) => PositionSource::Asterix,
        Some(2) => PositionSource::Mlat,
        Some(3) => PositionSource::Flarm,
        _ => PositionSource::Unknown,
    };
    let category = row
        .get(17)
        .and_then(Value::as_i64)
        .and_then(|c| usize::try_from(c).ok())
        .and_then(AircraftCategory::from_index)
        .unwrap_or_default();
    Ok(FlightState {
        icao24,
        callsign: opt_str(row, 1, "callsign")?,
        origin_country,
        time_position: opt_secs(row, 3, "time_position")?,
        last_contact,
        longitude: opt_f64(row, 5, "longitude")?,
        latitude: opt_f64(row, 6, "latitude")?,
        baro_altitude: opt_f64(row, 7, "baro_altitude")?,
        on_ground,
        velocity: opt_f64(row, 9, "velocity")?,
        true_track: opt_f64(row, 10, "true_track")?,
        vertical_rate: opt_f64(row, 11, "vertical_rate")?,
        sensors,
        geo_altitude: opt_f64(row, 13, "geo_altitude")?,
        squawk: opt_str(row, 14, "squawk")?,
        spi: row[15].as_bool().unwrap_or(false),
        position_source,
        category,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_rows_and_reports_bad_ones() {
        let text = r#"{"time": 1732435201, "states": [
            ["4b1805", "SWR5KV  ", "Switzerland", 1732435200, 1732435201, 4.7634, 52.3105, 10972.8, false, 231.4, 287.5, 0.0, null, 11277.6, "1000", false, 0, 4],
            ["3c6444", null, "Germany", null, 1732435190, null, null, null, true, 0.0, null, null, [12, 34], null, null, false, 2],
            ["bad", "X"],
            "not a row",
            ["aaaaaa", null, "France", null, "yesterday", null, null, null, false, null, null, null, null, null, null, false, 0]
        ]}"#;
        let s = parse_answer(text).unwrap();
        assert_eq!(s.time, 1_732_435_201);
        assert_eq!(s.states.len(), 2);
        assert_eq!(s.states[0], flight_types::sample_flight_state());
        assert_eq!(s.states[1].sensors, Some(vec![12, 34]));
        assert_eq!(s.states[1].position_source, PositionSource::Mlat);
        assert_eq!(
            s.states[1].category,
            AircraftCategory::NoInfo,
            "no category without extended=1"
        );
        let reasons: Vec<(usize, &str)> = s.malformed.iter().map(|m| (m.index, m.reason.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (2, "2 fields, expected at least 17"),
                (3, "not a list: \"not a row\""),
                (4, "last_contact is not a time in seconds: \"yesterday\""),
            ]
        );
    }

    #[test]
    fn empty_and_broken_answers() {
        assert_eq!(parse_answer(r#"{"time": 5, "states": null}"#).unwrap().states, vec![]);
        assert!(matches!(parse_answer("<html>busy</html>"), Err(ParseError::Json(_))));
        assert!(matches!(parse_answer(r#"{"states": []}"#), Err(ParseError::Shape(_))));
    }
}
