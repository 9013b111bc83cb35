use std::collections::{HashMap, HashSet};

use flight_types::Validate;
use rules::EvalContext;

use super::*;

const START_MS: i64 = 1_764_000_000_000;

fn run(cfg: SimConfig, n: usize) -> Vec<(i64, Change)> {
    let mut sim = Simulator::new(cfg).unwrap();
    (0..n)
        .map(|i| {
            let now = START_MS + i as i64 * 10;
            (now, sim.next_change(now))
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_changes() {
    let cfg = SimConfig {
        seed: 42,
        bad_percent: 5.0,
        ..SimConfig::default()
    };
    assert_eq!(run(cfg.clone(), 5_000), run(cfg, 5_000));
    let other = SimConfig {
        seed: 43,
        bad_percent: 5.0,
        ..SimConfig::default()
    };
    assert_ne!(
        run(other, 100),
        run(
            SimConfig {
                seed: 42,
                bad_percent: 5.0,
                ..SimConfig::default()
            },
            100
        )
    );
}

#[test]
fn a_stream_mixes_inserts_updates_and_deletes_consistently() {
    let changes = run(
        SimConfig {
            fleet: 200,
            ..SimConfig::default()
        },
        50_000,
    );
    let mut ops: HashMap<Op, usize> = HashMap::new();
    let mut live = HashSet::new();
    for (_, c) in &changes {
        *ops.entry(c.op).or_default() += 1;
        match c.op {
            Op::Insert => assert!(
                live.insert(c.state.icao24.clone()),
                "insert of a live key {}",
                c.state.icao24
            ),
            Op::Update => assert!(live.contains(&c.state.icao24), "update of an absent key"),
            Op::Delete => assert!(live.remove(&c.state.icao24), "delete of an absent key"),
        }
    }
    let (i, u, d) = (ops[&Op::Insert], ops[&Op::Update], ops[&Op::Delete]);
    assert!(u > i && i > 0 && d > 0, "inserts {i}, updates {u}, deletes {d}");
    assert!(live.len() <= 200);
}

#[test]
fn good_changes_pass_every_rule_and_bad_ones_break_one() {
    let changes = run(
        SimConfig {
            bad_percent: 10.0,
            ..SimConfig::default()
        },
        40_000,
    );
    let mut bad_by_kind: HashMap<BadKind, usize> = HashMap::new();
    for (now, c) in &changes {
        if c.op == Op::Delete {
            continue;
        }
        let violations = c.state.validate(EvalContext { now_ms: *now });
        match c.bad {
            None => assert!(violations.is_empty(), "{:?} broke {violations:?}", c.state),
            Some(kind) => {
                *bad_by_kind.entry(kind).or_default() += 1;
                assert!(!violations.is_empty(), "{kind:?} passed the rules: {:?}", c.state);
            }
        }
    }
    let total: usize = bad_by_kind.values().sum();
    // About 10% of 40,000, every kind represented.
    assert!((3_000..5_000).contains(&total), "{total} bad changes");
    assert_eq!(bad_by_kind.len(), 4, "{bad_by_kind:?}");
}

#[test]
fn aircraft_climb_cruise_and_descend_at_plausible_rates() {
    let changes = run(
        SimConfig {
            fleet: 20,
            ..SimConfig::default()
        },
        30_000,
    );
    let mut max_alt: f64 = 0.0;
    for (_, c) in changes.iter().filter(|(_, c)| c.op == Op::Update) {
        let s = &c.state;
        let (v, vr, alt) = (s.velocity.unwrap(), s.vertical_rate.unwrap(), s.baro_altitude.unwrap());
        assert!((APPROACH_SPEED..=255.0).contains(&v), "speed {v}");
        assert!((DESCENT_RATE..=CLIMB_RATE).contains(&vr), "vertical rate {vr}");
        max_alt = max_alt.max(alt);
    }
    assert!((9_000.0..=12_000.0).contains(&max_alt), "cruise altitude {max_alt}");
}

#[test]
fn invalid_settings_are_refused() {
    assert!(matches!(
        Simulator::new(SimConfig {
            fleet: 0,
            ..SimConfig::default()
        }),
        Err(SimError::Fleet { .. })
    ));
    assert_eq!(
        Simulator::new(SimConfig {
            bad_percent: 101.0,
            ..SimConfig::default()
        })
        .unwrap_err(),
        SimError::BadPercent(101.0)
    );
    assert_eq!(
        Simulator::new(SimConfig {
            step_seconds: 0.0,
            ..SimConfig::default()
        })
        .unwrap_err(),
        SimError::Step(0.0)
    );
}
