//! Successive snapshots into the changes of a table keyed by icao24: an
//! aircraft that appears is an insert, one whose state changed an update,
//! one that is gone a delete.

use std::collections::HashMap;

use flight_types::FlightState;
use simulator::{Change, Op};

#[derive(Debug, Default)]
pub struct Differ {
    current: HashMap<String, FlightState>,
}

impl Differ {
    /// The changes that turn the previous snapshot into `states`. Within a
    /// snapshot a repeated icao24 keeps its last row.
    pub fn apply(&mut self, states: Vec<FlightState>) -> Vec<Change> {
        let mut next: HashMap<String, FlightState> = HashMap::with_capacity(states.len());
        let mut order = Vec::with_capacity(states.len());
        for s in states {
            if next.insert(s.icao24.clone(), s.clone()).is_none() {
                order.push(s.icao24);
            }
        }
        let mut changes = Vec::new();
        for key in &order {
            let state = &next[key];
            match self.current.get(key) {
                None => changes.push(Change {
                    op: Op::Insert,
                    state: state.clone(),
                    bad: None,
                }),
                Some(old) if old != state => changes.push(Change {
                    op: Op::Update,
                    state: state.clone(),
                    bad: None,
                }),
                Some(_) => {}
            }
        }
        let mut gone: Vec<&String> = self.current.keys().filter(|k| !next.contains_key(*k)).collect();
        gone.sort();
        for key in gone {
            changes.push(Change {
                op: Op::Delete,
                state: self.current[key].clone(),
                bad: None,
            });
        }
        self.current = next;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(icao: &str, v: f64) -> FlightState {
        FlightState {
            icao24: icao.into(),
            velocity: Some(v),
            ..flight_types::sample_flight_state()
        }
    }

    #[test]
    fn inserts_updates_and_deletes() {
        let mut d = Differ::default();
        let ops = |c: Vec<Change>| c.into_iter().map(|c| (c.op, c.state.icao24)).collect::<Vec<_>>();
        assert_eq!(
            ops(d.apply(vec![state("a", 1.0), state("b", 1.0)])),
            vec![(Op::Insert, "a".into()), (Op::Insert, "b".into())]
        );
        assert_eq!(
            ops(d.apply(vec![state("a", 1.0), state("b", 2.0), state("c", 1.0)])),
            vec![(Op::Update, "b".into()), (Op::Insert, "c".into())]
        );
        assert_eq!(
            ops(d.apply(vec![state("c", 1.0)])),
            vec![(Op::Delete, "a".into()), (Op::Delete, "b".into())]
        );
    }
}
