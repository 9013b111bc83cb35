//! OpenSky Network state vectors as a source of flight data.
//!
//! ```text
//! OpenSky /api/states/all ──▶ client (OAuth2, 429, retries) ──▶ parse ──▶ Snapshot
//! recorded answers / JSON lines ──▶ replay (recorded speed × factor) ─┘        │
//!                                                                               ▼
//!                                      Differ: insert / update / delete per icao24
//! ```
//!
//! [`parse`] reads OpenSky's positional arrays into the generated
//! `FlightState`, counting malformed rows instead of failing. [`client`]
//! polls the API. [`replay`] plays recorded answers (one JSON answer per
//! line) or JSON lines of state vectors. [`diff::Differ`] turns successive
//! snapshots into the changes a table keyed by icao24 sees.

pub mod client;
pub mod diff;
pub mod parse;
pub mod replay;

pub use client::{BoundingBox, Credentials, OpenSkyClient, OpenSkyConfig, OpenSkyError};
pub use diff::Differ;
pub use parse::{parse_answer, Malformed, ParseError, Snapshot};
