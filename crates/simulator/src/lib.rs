//! A deterministic flight simulator: the built-in source of the producer.
//!
//! A seeded fleet of up to `fleet` aircraft flies great-circle routes between
//! real airports: each take-off is an [`Op::Insert`] on the ground at the
//! origin, each position report an [`Op::Update`] (climb at 12 m/s to a
//! cruise level, cruise near 230 m/s, descend at 8 m/s), and each landing, or
//! an aircraft that vanishes from coverage, an [`Op::Delete`]. Aircraft are
//! updated round-robin, each update advancing that aircraft by
//! `step_seconds` of flight, so a steady stream mixes inserts, updates and
//! deletes at any rate.
//!
//! With `bad_percent > 0`, that share of changes carries bad data, marked with
//! its [`BadKind`] so tests can check that exactly those rows are caught:
//! out-of-range coordinates, a malformed icao24 (a phantom row, deleted again
//! later), a last contact in the future, or an impossible speed. Good changes
//! satisfy every rule of `schemas/flight.avdl`.
//!
//! Determinism: the same [`SimConfig`] and the same `now_ms` sequence give
//! the same changes, on any platform (the PRNG is SplitMix64, implemented
//! here; no floating-point operation depends on the platform's libm beyond
//! IEEE basics and `sin`/`cos`/`atan2`, which Rust's std takes from the
//! system).

mod airports;

use std::collections::{HashSet, VecDeque};

use airports::{AIRPORTS, COUNTRIES};
use flight_types::{AircraftCategory, FlightState, PositionSource};

const EARTH_RADIUS_M: f64 = 6_371_000.0;
const CLIMB_RATE: f64 = 12.0;
const DESCENT_RATE: f64 = -8.0;
const TAKEOFF_SPEED: f64 = 75.0;
const APPROACH_SPEED: f64 = 80.0;
/// Arrival: closer than this to the destination.
const ARRIVAL_M: f64 = 3_000.0;
/// Chance per update that an aircraft vanishes from coverage.
const VANISH_CHANCE: f64 = 0.0005;
/// How many changes later a phantom (malformed icao24) row is deleted.
const PHANTOM_LIFETIME: u64 = 50;

/// Simulation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    /// Aircraft flying at once, at most.
    pub fleet: usize,
    /// Seconds of flight each position report advances an aircraft by.
    pub step_seconds: f64,
    /// Share of changes, in percent, that carry bad data.
    pub bad_percent: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            fleet: 500,
            step_seconds: 30.0,
            bad_percent: 0.0,
        }
    }
}

/// A configuration the simulator cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("fleet must be between 1 and {max}, got {got}")]
    Fleet { got: usize, max: usize },
    #[error("bad_percent must be between 0 and 100, got {0}")]
    BadPercent(f64),
    #[error("step_seconds must be positive and at most 600, got {0}")]
    Step(f64),
}

/// What a change does to the source table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// The kinds of bad data the simulator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    OutOfRangeCoordinates,
    MalformedIcao24,
    FutureTimestamp,
    ImpossibleSpeed,
}

impl BadKind {
    pub const ALL: [BadKind; 4] = [
        BadKind::OutOfRangeCoordinates,
        BadKind::MalformedIcao24,
        BadKind::FutureTimestamp,
        BadKind::ImpossibleSpeed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::OutOfRangeCoordinates => "out_of_range_coordinates",
            BadKind::MalformedIcao24 => "malformed_icao24",
            BadKind::FutureTimestamp => "future_timestamp",
            BadKind::ImpossibleSpeed => "impossible_speed",
        }
    }
}

/// One change to the flight-state table. For a delete, `state` is the
/// aircraft's final state (its key is what the delete needs).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: Op,
    pub state: FlightState,
    /// Set when this change carries injected bad data.
    pub bad: Option<BadKind>,
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[derive(Debug, Clone)]
struct Flight {
    icao24: String,
    callsign: String,
    country: &'static str,
    squawk: String,
    category: AircraftCategory,
    source: PositionSource,
    /// Origin and destination as (lat, lon) in radians.
    origin: (f64, f64),
    dest: (f64, f64),
    dest_elevation: f64,
    /// Angular distance of the route, radians.
    route: f64,
    flown_m: f64,
    alt_m: f64,
    speed: f64,
    cruise_alt: f64,
    cruise_speed: f64,
}

/// The simulator. See the crate docs.
#[derive(Debug)]
pub struct Simulator {
    cfg: SimConfig,
    rng: Rng,
    flights: Vec<Flight>,
    cursor: usize,
    used_addresses: HashSet<u32>,
    phantoms: VecDeque<(u64, FlightState)>,
    changes: u64,
}

impl Simulator {
    pub const MAX_FLEET: usize = 100_000;

    pub fn new(cfg: SimConfig) -> Result<Simulator, SimError> {
        if cfg.fleet == 0 || cfg.fleet > Self::MAX_FLEET {
            return Err(SimError::Fleet {
                got: cfg.fleet,
                max: Self::MAX_FLEET,
            });
        }
        if !(0.0..=100.0).contains(&cfg.bad_percent) {
            return Err(SimError::BadPercent(cfg.bad_percent));
        }
        if !(cfg.step_seconds > 0.0 && cfg.step_seconds <= 600.0) {
            return Err(SimError::Step(cfg.step_seconds));
        }
        Ok(Simulator {
            rng: Rng(cfg.seed),
            cfg,
            flights: Vec::new(),
            cursor: 0,
            used_addresses: HashSet::new(),
            phantoms: VecDeque::new(),
            changes: 0,
        })
    }

    /// Aircraft currently flying.
    pub fn active(&self) -> usize {
        self.flights.len()
    }

    /// The next change, with `now_ms` as the time of its report.
    pub fn next_change(&mut self, now_ms: i64) -> Change {
        self.changes += 1;
        if self.phantoms.front().is_some_and(|(due, _)| *due <= self.changes) {
            if let Some((_, state)) = self.phantoms.pop_front() {
                return Change {
                    op: Op::Delete,
                    state,
                    bad: None,
                };
            }
        }
        let bad = (self.rng.unit() * 100.0 < self.cfg.bad_percent).then(|| BadKind::ALL[self.rng.below(4)]);
        if bad == Some(BadKind::MalformedIcao24) {
            return self.phantom(now_ms);
        }
        let take_off = self.flights.len() < self.cfg.fleet && (self.flights.is_empty() || self.rng.unit() < 0.5);
        let mut change = if take_off {
            self.take_off(now_ms)
        } else {
            self.report(now_ms)
        };
        if let (Some(kind), Op::Update) = (bad, change.op) {
            self.corrupt(&mut change.state, kind, now_ms);
            change.bad = Some(kind);
        }
        change
    }

    fn new_address(&mut self, country: usize) -> String {
        let c = &COUNTRIES[country];
        loop {
            let addr = c.block_start + (self.rng.next_u64() % u64::from(c.block_len)) as u32;
            if self.used_addresses.insert(addr) {
                return format!("{addr:06x}");
            }
        }
    }

    fn take_off(&mut self, now_ms: i64) -> Change {
        let (o, d) = loop {
            let o = self.rng.below(AIRPORTS.len());
            let d = self.rng.below(AIRPORTS.len());
            if o != d && distance(rad(&AIRPORTS[o]), rad(&AIRPORTS[d])) * EARTH_RADIUS_M > 300_000.0 {
                break (o, d);
            }
        };
        let (origin, dest) = (&AIRPORTS[o], &AIRPORTS[d]);
        let country = origin.country;
        let icao24 = self.new_address(country);
        let airlines = COUNTRIES[country].airlines;
        let callsign = format!(
            "{:<8}",
            format!(
                "{}{}",
                airlines[self.rng.below(airlines.len())],
                1 + self.rng.below(9_999)
            )
        );
        let squawk = format!("{:04o}", self.rng.below(0o7777));
        let category = [
            AircraftCategory::Large,
            AircraftCategory::Heavy,
            AircraftCategory::HighVortexLarge,
            AircraftCategory::Small,
        ][self.rng.below(4)];
        let source = if self.rng.unit() < 0.9 {
            PositionSource::Adsb
        } else {
            PositionSource::Mlat
        };
        let route = distance(rad(origin), rad(dest));
        let flight = Flight {
            icao24,
            callsign,
            country: COUNTRIES[country].name,
            squawk,
            category,
            source,
            origin: rad(origin),
            dest: rad(dest),
            dest_elevation: dest.elevation_m,
            route,
            flown_m: 0.0,
            alt_m: origin.elevation_m,
            speed: TAKEOFF_SPEED,
            cruise_alt: self.rng.range(9_000.0, 12_000.0),
            cruise_speed: self.rng.range(205.0, 255.0),
        };
        let state = self.state_of(&flight, now_ms, true, 0.0);
        self.flights.push(flight);
        Change {
            op: Op::Insert,
            state,
            bad: None,
        }
    }

    /// Advances the next aircraft in turn and reports it, or deletes it when
    /// it has landed or vanished.
    fn report(&mut self, now_ms: i64) -> Change {
        if self.cursor >= self.flights.len() {
            self.cursor = 0;
        }
        let i = self.cursor;
        let dt = self.cfg.step_seconds;
        let vanished = self.rng.unit() < VANISH_CHANCE;
        let f = &mut self.flights[i];
        let route_m = f.route * EARTH_RADIUS_M;
        let remaining = route_m - f.flown_m;
        let descent_m = (f.alt_m - f.dest_elevation).max(0.0) / -DESCENT_RATE * f.speed;
        let vertical_rate = if remaining <= descent_m {
            f.speed = (f.speed - 2.0 * dt).max(APPROACH_SPEED);
            DESCENT_RATE.max((f.dest_elevation - f.alt_m) / dt)
        } else if f.alt_m < f.cruise_alt {
            f.speed = (f.speed + 3.0 * dt).min(f.cruise_speed);
            CLIMB_RATE.min((f.cruise_alt - f.alt_m) / dt)
        } else {
            f.speed = f.cruise_speed;
            0.0
        };
        f.alt_m += vertical_rate * dt;
        f.flown_m = (f.flown_m + f.speed * dt).min(route_m);
        if vanished || route_m - f.flown_m < ARRIVAL_M {
            let flight = self.flights.swap_remove(i);
            let state = self.state_of(&flight, now_ms, false, vertical_rate);
            return Change {
                op: Op::Delete,
                state,
                bad: None,
            };
        }
        let f = &self.flights[i];
        let mut state = self.state_of(f, now_ms, false, vertical_rate);
        // The receiver network's view of the time: the position is up to 2 s old.
        state.time_position = Some(now_ms - (self.rng.unit() * 2_000.0) as i64);
        self.cursor = i + 1;
        Change {
            op: Op::Update,
            state,
            bad: None,
        }
    }

    fn state_of(&self, f: &Flight, now_ms: i64, on_ground: bool, vertical_rate: f64) -> FlightState {
        let frac = if f.route > 0.0 {
            f.flown_m / (f.route * EARTH_RADIUS_M)
        } else {
            1.0
        };
        let (lat, lon) = interpolate(f.origin, f.dest, f.route, frac);
        FlightState {
            icao24: f.icao24.clone(),
            callsign: Some(f.callsign.clone()),
            origin_country: f.country.to_string(),
            time_position: Some(now_ms),
            last_contact: now_ms,
            longitude: Some(round(lon.to_degrees(), 4)),
            latitude: Some(round(lat.to_degrees(), 4)),
            baro_altitude: Some(round(f.alt_m, 2)),
            on_ground,
            velocity: Some(round(f.speed, 2)),
            true_track: Some(round(bearing((lat, lon), f.dest), 2)),
            vertical_rate: Some(round(vertical_rate, 2)),
            sensors: None,
            geo_altitude: Some(round(f.alt_m + 60.0, 2)),
            squawk: Some(f.squawk.clone()),
            spi: false,
            position_source: f.source,
            category: f.category,
        }
    }

    /// A one-off row whose key is not a valid ICAO address.
    fn phantom(&mut self, now_ms: i64) -> Change {
        let n = self.rng.next_u64();
        let icao24 = match n % 3 {
            0 => format!("{:06X}", (n >> 8) as u32 & 0xFFFFFF | 0xA00000),
            1 => format!("{:05x}", (n >> 8) as u32 & 0xFFFFF),
            _ => format!("zz{:04x}", (n >> 8) as u16),
        };
        let mut state = flight_types::sample_flight_state();
        state.icao24 = icao24;
        state.time_position = Some(now_ms);
        state.last_contact = now_ms;
        self.phantoms
            .push_back((self.changes + PHANTOM_LIFETIME, state.clone()));
        Change {
            op: Op::Insert,
            state,
            bad: Some(BadKind::MalformedIcao24),
        }
    }

    fn corrupt(&mut self, s: &mut FlightState, kind: BadKind, now_ms: i64) {
        match kind {
            BadKind::OutOfRangeCoordinates => {
                if self.rng.unit() < 0.5 {
                    s.latitude = Some(self.rng.range(90.5, 180.0) * if self.rng.unit() < 0.5 { -1.0 } else { 1.0 });
                } else {
                    s.longitude = Some(self.rng.range(180.5, 360.0) * if self.rng.unit() < 0.5 { -1.0 } else { 1.0 });
                }
            }
            BadKind::FutureTimestamp => {
                s.last_contact = now_ms + 3_600_000;
                s.time_position = None;
            }
            BadKind::ImpossibleSpeed => s.velocity = Some(self.rng.range(1_500.0, 5_000.0)),
            BadKind::MalformedIcao24 => {}
        }
    }
}

fn rad(a: &airports::Airport) -> (f64, f64) {
    (a.lat.to_radians(), a.lon.to_radians())
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// Great-circle angular distance (haversine), radians.
fn distance((la1, lo1): (f64, f64), (la2, lo2): (f64, f64)) -> f64 {
    let a = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * a.sqrt().min(1.0).asin()
}

/// The point a fraction `f` along the great circle from `a` to `b`.
fn interpolate((la1, lo1): (f64, f64), (la2, lo2): (f64, f64), d: f64, f: f64) -> (f64, f64) {
    if d < 1e-12 {
        return (la1, lo1);
    }
    let (a, b) = (((1.0 - f) * d).sin() / d.sin(), (f * d).sin() / d.sin());
    let x = a * la1.cos() * lo1.cos() + b * la2.cos() * lo2.cos();
    let y = a * la1.cos() * lo1.sin() + b * la2.cos() * lo2.sin();
    let z = a * la1.sin() + b * la2.sin();
    (z.atan2((x * x + y * y).sqrt()), y.atan2(x))
}

/// Initial bearing from `a` to `b`, degrees clockwise from north in [0, 360).
fn bearing((la1, lo1): (f64, f64), (la2, lo2): (f64, f64)) -> f64 {
    let y = (lo2 - lo1).sin() * la2.cos();
    let x = la1.cos() * la2.sin() - la1.sin() * la2.cos() * (lo2 - lo1).cos();
    let deg = y.atan2(x).to_degrees().rem_euclid(360.0);
    // rem_euclid can return 360.0 for tiny negative inputs.
    if deg >= 360.0 {
        0.0
    } else {
        deg
    }
}

#[cfg(test)]
mod tests;
