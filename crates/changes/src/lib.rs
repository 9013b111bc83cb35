//! What every hop of the pipeline shares, and nothing that does I/O:
//!
//! - [`ChangeEvent`]: one change of one row, with its [`Op`], [`Position`]
//!   and [`Transaction`]: what the CDC stage writes and the sink reads.
//! - [`Lsn`]: a position in PostgreSQL's write-ahead log, with the one
//!   parser and formatter of its `X/Y` text form. The CDC stage confirms
//!   them, events carry them, the sink orders by them.
//! - [`DeadLetter`]: the one header contract of every dead-letter topic,
//!   whichever stage rejected the record (see its docs): consumers of those
//!   topics read the headers, so they are the same everywhere.
//! - [`InFlight`] and [`Confirmations`]: the delivery contract's
//!   bookkeeping, "durable first, then advance the position".
//! - [`Secret`]: a value that never prints.
//! - [`sqlstate_is_transient`]: PostgreSQL's error codes, classed once.
//! - [`Env`]: the environment as a value, for configuration parsing.
//! - [`check_topic_name`]: Kafka's rules for topic names, for every stage.
//! - [`supervise`], [`Heartbeat`], [`error_chain`]: the one supervisor
//!   (restart with backoff on transient errors, health, how errors are
//!   logged). It is the one part that needs tokio's timer besides its sync
//!   primitives.

mod class;
mod dead_letter;
mod delivery;
mod env;
mod event;
mod host;
mod lsn;
mod secret;
mod supervise;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
mod topic;

pub use class::{sqlstate_is_transient, Class, Classified};
pub use dead_letter::{find, header, DeadLetter, Stage};
pub use delivery::{Confirmations, Destination, InFlight, Located, Source};
pub use env::{metrics_listen, read_secret_file, Env, KAFKA_PROPERTY_PREFIX, SERVICE_VARS};
pub use event::{ChangeEvent, EnvelopeError, Op, Position, Transaction};
pub use host::is_loopback_host;
pub use lsn::Lsn;
pub use secret::{Secret, SecretUrl};
pub use supervise::{error_chain, supervise, Heartbeat, FIRST_BACKOFF, MAX_BACKOFF};
pub use topic::{check_topic_name, MAX_TOPIC_NAME};
