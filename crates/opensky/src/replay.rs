//! Replay of recorded flight data, one JSON document per line: either an
//! OpenSky `/states/all` answer (`{"time": …, "states": …}`, a snapshot) or
//! a single state vector in FlightState's JSON form (the shape Contrail's
//! records have, as produced by `serde`). Items are played at recorded speed
//! divided by `speed` (0: as fast as possible), timed by the snapshot's
//! `time` or the state's `last_contact`. A line that is neither is reported
//! with its line number and skipped.

use std::io::BufRead;
use std::time::Duration;

use flight_types::FlightState;

use crate::parse::{parse_value, Snapshot};

#[derive(Debug, Clone, PartialEq)]
pub enum ReplayItem {
    Snapshot(Snapshot),
    State(Box<FlightState>),
}

impl ReplayItem {
    fn time_ms(&self) -> i64 {
        match self {
            ReplayItem::Snapshot(s) => s.time.saturating_mul(1000),
            ReplayItem::State(s) => s.last_contact,
        }
    }
}

/// A line that could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

pub struct Replay<R> {
    lines: std::io::Lines<R>,
    line: usize,
    speed: f64,
    previous_ms: Option<i64>,
}

impl<R> std::fmt::Debug for Replay<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("line", &self.line)
            .field("speed", &self.speed)
            .finish()
    }
}

impl<R: BufRead> Replay<R> {
    /// `speed` 1.0 plays at recorded speed, 10.0 ten times faster, 0 without waiting.
    pub fn new(reader: R, speed: f64) -> Self {
        Replay {
            lines: reader.lines(),
            line: 0,
            speed,
            previous_ms: None,
        }
    }

    /// The next item and how long to wait before playing it; `None` at the end.
    pub fn next_item(&mut self) -> Option<Result<(Duration, ReplayItem), BadLine>> {
        loop {
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(e) => {
                    return Some(Err(BadLine {
                        line: self.line + 1,
                        reason: e.to_string(),
                    }))
                }
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| {
                Some(Err(BadLine {
                    line: self.line,
                    reason,
                }))
            };
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => return bad(format!("not JSON: {e}")),
            };
            let item = if value.get("states").is_some() {
                match parse_value(&value) {
                    Ok(s) => ReplayItem::Snapshot(s),
                    Err(e) => return bad(e.to_string()),
                }
            } else {
                match serde_json::from_value::<FlightState>(value) {
                    Ok(s) => ReplayItem::State(Box::new(s)),
                    Err(e) => return bad(format!("neither an OpenSky answer nor a state vector: {e}")),
                }
            };
            let t = item.time_ms();
            let wait = match (self.previous_ms, self.speed > 0.0) {
                (Some(prev), true) if t > prev => Duration::from_secs_f64((t - prev) as f64 / 1000.0 / self.speed),
                _ => Duration::ZERO,
            };
            self.previous_ms = Some(t);
            return Some(Ok((wait, item)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_answers_and_state_lines_with_recorded_gaps() {
        let sample = serde_json::to_string(&flight_types::sample_flight_state()).unwrap();
        let text = format!(
            "{{\"time\": 100, \"states\": null}}\n\n{{\"time\": 110, \"states\": []}}\nnot json\n{sample}\n{{\"time\": 1}}\n"
        );
        let mut r = Replay::new(text.as_bytes(), 2.0);
        let (w1, _) = r.next_item().unwrap().unwrap();
        let (w2, _) = r.next_item().unwrap().unwrap();
        assert_eq!(
            (w1, w2),
            (Duration::ZERO, Duration::from_secs(5)),
            "10 s recorded at speed 2"
        );
        assert_eq!(r.next_item().unwrap().unwrap_err().line, 4);
        let (_, item) = r.next_item().unwrap().unwrap();
        assert_eq!(item, ReplayItem::State(Box::new(flight_types::sample_flight_state())));
        let err = r.next_item().unwrap().unwrap_err();
        assert_eq!(err.line, 6);
        assert!(r.next_item().is_none());
    }
}
