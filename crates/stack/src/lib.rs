//! The local stack of real services, run from a project-local directory.
//!
//! ```text
//! .contrail/                       (StackConfig::data_dir)
//!   postgres/        PostgreSQL 15 cluster, wal_level=logical, own port
//!   tansu/           Tansu broker, sqlite storage (durable across restarts)
//!   fakesnow/        fakesnow databases (the local Snowflake)
//!                    the schema registry (`contrail registry serve`) keeps its
//!                    state in the cluster's contrail_registry database
//!   run/*.pid, logs/*.log
//! ~/.cache/contrail/fakesnow-<version>/   the fakesnow virtualenv (shared by clones)
//! ```
//!
//! [`Stack::up`] is idempotent: a service that is already healthy is left
//! alone, one that is stopped is started and then health-checked (PostgreSQL
//! with `pg_isready` and a query, Tansu with a Kafka ApiVersions round trip,
//! fakesnow with an HTTP request). Failures are [`StackError`]s that say what
//! to do: the port that is taken, the package that is missing, or the service
//! that did not start, with the tail of its log. When run as root, PostgreSQL
//! runs as the `postgres` user, as its packaging expects.
//!
//! Tools that are missing are installed where that is safe to do without
//! asking: Tansu with `cargo install` (about ten minutes, once per machine),
//! fakesnow into its virtualenv with pip, and PostgreSQL 15 with apt-get when
//! running as root.

mod bench;
mod health;
mod process;
mod services;

use std::path::PathBuf;

pub use bench::MemoryBroker;
pub use services::{Service, ServiceState, ServiceStatus, Stack};

/// Pinned tool versions.
pub const FAKESNOW_VERSION: &str = "0.12.1";
pub const POSTGRES_MAJOR: u32 = 15;

/// Where the stack lives and which ports it uses. Ports can be overridden
/// with `CONTRAIL_PG_PORT`, `CONTRAIL_KAFKA_PORT` and
/// `CONTRAIL_SNOWFLAKE_PORT`, `CONTRAIL_REGISTRY_PORT`.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub pg_port: u16,
    pub kafka_port: u16,
    pub snowflake_port: u16,
    pub registry_port: u16,
    /// The `contrail` executable, which serves the registry
    /// (`contrail registry serve`); without it the registry cannot start.
    pub contrail_exe: Option<PathBuf>,
}

/// Local development credentials (not secrets: the services listen on
/// loopback only). Production credentials come from the environment.
pub const PG_USER: &str = "contrail";
pub const PG_PASSWORD: &str = "contrail";
pub const PG_DATABASE: &str = "contrail";
pub const REGISTRY_DATABASE: &str = "contrail_registry";
pub const SNOWFLAKE_USER: &str = "contrail";
pub const SNOWFLAKE_PASSWORD: &str = "contrail";

impl StackConfig {
    /// The defaults for a project directory, with environment overrides.
    pub fn for_project(project_dir: &std::path::Path) -> Result<StackConfig, StackError> {
        let port = |var: &str, default: u16| -> Result<u16, StackError> {
            match std::env::var(var) {
                Err(_) => Ok(default),
                Ok(v) => v
                    .parse()
                    .map_err(|_| StackError::Config(format!("{var}={v:?} is not a port number"))),
            }
        };
        let cache_dir = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| project_dir.join(".contrail/cache"))
            .join("contrail");
        Ok(StackConfig {
            data_dir: project_dir.join(".contrail"),
            cache_dir,
            pg_port: port("CONTRAIL_PG_PORT", 15432)?,
            kafka_port: port("CONTRAIL_KAFKA_PORT", 19092)?,
            snowflake_port: port("CONTRAIL_SNOWFLAKE_PORT", 18085)?,
            registry_port: port("CONTRAIL_REGISTRY_PORT", 8081)?,
            contrail_exe: None,
        })
    }

    /// The Python of the fakesnow virtualenv, which also carries Snowflake's
    /// own connector (used by tests as an independent client).
    pub fn fakesnow_python(&self) -> PathBuf {
        self.cache_dir.join(format!("fakesnow-{FAKESNOW_VERSION}/bin/python"))
    }

    /// The registry's own database in the stack's cluster.
    pub fn registry_database_url(&self) -> String {
        format!(
            "postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/{REGISTRY_DATABASE}",
            self.pg_port
        )
    }

    /// `export NAME=value` pairs that point clients at the stack.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "DATABASE_URL",
                format!(
                    "postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/{PG_DATABASE}",
                    self.pg_port
                ),
            ),
            ("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{}", self.kafka_port)),
            (
                "SCHEMA_REGISTRY_URL",
                format!("http://127.0.0.1:{}", self.registry_port),
            ),
            (
                "SNOWFLAKE_URL",
                format!(
                    "http://{SNOWFLAKE_USER}:{SNOWFLAKE_PASSWORD}@127.0.0.1:{}",
                    self.snowflake_port
                ),
            ),
        ]
    }
}

/// What went wrong, phrased so the user knows what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{0}")]
    Config(String),
    #[error("{service}: port {port} is already in use by another program; stop it or set {env_var} to a free port")]
    PortTaken {
        service: &'static str,
        port: u16,
        env_var: &'static str,
    },
    #[error("{what} is missing: {hint}")]
    Missing { what: String, hint: String },
    #[error("{service} failed to start: {reason}\n--- last lines of {log} ---\n{tail}")]
    StartFailed {
        service: &'static str,
        reason: String,
        log: String,
        tail: String,
    },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StackError {
    let context = context.into();
    move |source| StackError::Io { context, source }
}
