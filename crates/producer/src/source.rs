//! Where the producer's changes come from.
//!
//! - the simulator: as many changes as asked for, at once (the run loop
//!   paces them to the configured rate);
//! - OpenSky: a snapshot every `poll` (10 s is OpenSky's anonymous
//!   resolution), diffed against the previous one. A rate limit waits as long
//!   as OpenSky asks; an outage or a garbled answer is logged and counted and
//!   the next poll tries again, so the service rides through them; bad
//!   credentials or a refused request stop it with the reason;
//! - replay: recorded answers or state lines, played at their recorded pace
//!   divided by `speed`; the run ends when the file does.
//!
//! Malformed rows and lines are counted, reported and skipped.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use opensky::replay::{Replay, ReplayItem};
use opensky::{Differ, OpenSkyClient, OpenSkyConfig, OpenSkyError};
use simulator::{Change, Op, SimConfig, Simulator};
use tokio::sync::watch;

use crate::ProducerError;

/// Source settings, validated.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Simulator(SimConfig),
    OpenSky { client: OpenSkyConfig, poll: Duration },
    Replay { path: PathBuf, speed: f64 },
}

pub(crate) enum Source {
    Simulator(Box<Simulator>),
    OpenSky {
        client: Box<OpenSkyClient>,
        poll: Duration,
        next: Instant,
        differ: Differ,
    },
    Replay {
        replay: Box<Replay<std::io::BufReader<std::fs::File>>>,
        differ: Differ,
        seen: HashSet<String>,
    },
}

/// One step of a source.
pub(crate) struct Step {
    pub changes: Vec<Change>,
    /// Rows or lines that could not be read, with the reason.
    pub malformed: Vec<String>,
}

/// Sleeps, or returns early (false) when shutdown is asked for.
async fn wait(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if d.is_zero() {
        return !*shutdown.borrow();
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}

impl Source {
    pub(crate) fn open(cfg: &SourceConfig) -> Result<Source, ProducerError> {
        Ok(match cfg {
            SourceConfig::Simulator(s) => Source::Simulator(Box::new(
                Simulator::new(s.clone()).expect("validated when the configuration was loaded"),
            )),
            SourceConfig::OpenSky { client, poll } => Source::OpenSky {
                client: Box::new(OpenSkyClient::new(client.clone()).map_err(ProducerError::Source)?),
                poll: *poll,
                next: Instant::now(),
                differ: Differ::default(),
            },
            SourceConfig::Replay { path, speed } => {
                let file = std::fs::File::open(path)
                    .map_err(|e| ProducerError::Source(format!("cannot open {}: {e}", path.display())))?;
                Source::Replay {
                    replay: Box::new(Replay::new(std::io::BufReader::new(file), *speed)),
                    differ: Differ::default(),
                    seen: HashSet::new(),
                }
            }
        })
    }

    pub(crate) fn is_simulator(&self) -> bool {
        matches!(self, Source::Simulator(_))
    }

    /// The next changes; `None` when the source is exhausted or shutdown was asked for.
    pub(crate) async fn next(
        &mut self,
        max: usize,
        now_ms: i64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Step>, ProducerError> {
        match self {
            Source::Simulator(sim) => Ok(Some(Step {
                changes: (0..max).map(|_| sim.next_change(now_ms)).collect(),
                malformed: Vec::new(),
            })),
            Source::OpenSky {
                client,
                poll,
                next,
                differ,
            } => {
                if !wait(next.saturating_duration_since(Instant::now()), shutdown).await {
                    return Ok(None);
                }
                *next = Instant::now() + *poll;
                poll_opensky(client, *poll, next, differ).await.map(Some)
            }
            Source::Replay { replay, differ, seen } => next_replayed(replay, differ, seen, shutdown).await,
        }
    }
}

/// One poll of OpenSky, as changes since the last; `next` is when to poll
/// again (later after a rate limit). A transient failure is a step with no
/// changes, noted as malformed input.
async fn poll_opensky(
    client: &OpenSkyClient,
    poll: Duration,
    next: &mut Instant,
    differ: &mut Differ,
) -> Result<Step, ProducerError> {
    match client.states().await {
        Ok(snapshot) => Ok(Step {
            malformed: snapshot
                .malformed
                .iter()
                .map(|m| format!("row {}: {}", m.index, m.reason))
                .collect(),
            changes: differ.apply(snapshot.states),
        }),
        Err(OpenSkyError::RateLimited { retry_after }) => {
            tracing::warn!(retry_after_s = retry_after.as_secs(), "OpenSky rate limit; waiting");
            *next = Instant::now() + retry_after.max(poll);
            Ok(Step {
                changes: Vec::new(),
                malformed: Vec::new(),
            })
        }
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "OpenSky poll failed; trying again next poll");
            Ok(Step {
                changes: Vec::new(),
                malformed: vec![format!("poll failed: {e}")],
            })
        }
        Err(e) => Err(ProducerError::Source(e.to_string())),
    }
}

/// The next item of a recording, at its time; `None` at its end or on
/// shutdown.
async fn next_replayed(
    replay: &mut Replay<std::io::BufReader<std::fs::File>>,
    differ: &mut Differ,
    seen: &mut HashSet<String>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Step>, ProducerError> {
    let Some(item) = replay.next_item() else {
        return Ok(None);
    };
    let (delay, item) = match item {
        Ok(x) => x,
        Err(bad) => {
            return Ok(Some(Step {
                changes: Vec::new(),
                malformed: vec![format!("line {}: {}", bad.line, bad.reason)],
            }))
        }
    };
    if !wait(delay, shutdown).await {
        return Ok(None);
    }
    Ok(Some(match item {
        ReplayItem::Snapshot(s) => Step {
            malformed: s
                .malformed
                .iter()
                .map(|m| format!("row {}: {}", m.index, m.reason))
                .collect(),
            changes: differ.apply(s.states),
        },
        ReplayItem::State(state) => {
            let op = if seen.insert(state.icao24.clone()) {
                Op::Insert
            } else {
                Op::Update
            };
            Step {
                changes: vec![Change {
                    op,
                    state: *state,
                    bad: None,
                }],
                malformed: Vec::new(),
            }
        }
    }))
}
