//! The local stack of real services, run from a project-local directory.
//!
//! ```text
//! .contrail/                       (StackConfig::data_dir; CONTRAIL_STACK_DIR moves it)
//!   postgres/        PostgreSQL 15 cluster, wal_level=logical, own port
//!   kafka/           Apache Kafka (KRaft, one broker/controller node):
//!                    server.properties, log4j2.properties, data/ (log.dirs)
//!   fakesnow/        fakesnow databases (the local Snowflake)
//!                    the schema registry (`contrail registry serve`) keeps its
//!                    state in the cluster's contrail_registry database
//!   run/*.pid, logs/*.log
//! ~/.cache/contrail/kafka-<version>/libs/   the broker's jars, from Maven Central
//! ~/.cache/contrail/fakesnow-<version>/     the fakesnow virtualenv (shared by clones)
//! ```
//!
//! [`Stack::up`] is idempotent: a service that is already healthy is left
//! alone, one that is stopped is started and then health-checked (PostgreSQL
//! with `pg_isready` and a query, Kafka with ApiVersions and Metadata
//! round trips, fakesnow with an HTTP request). Failures are [`StackError`]s
//! that say what to do: the port that is taken (and by whom), the package
//! that is missing, or the service that did not start, with the tail of its
//! log. When run as root, PostgreSQL runs as the `postgres` user, as its
//! packaging expects.
//!
//! Tools that are missing are installed where that is safe to do without
//! asking: the broker's jars with Maven (once per machine), fakesnow into
//! its virtualenv with pip, and PostgreSQL 15 with apt-get when running as
//! root. A missing Java or Maven is an error naming the Debian package
//! (`scripts/env.sh` installs both).
//!
//! The tests run on a stack of their own: `scripts/test.sh` points
//! `CONTRAIL_STACK_DIR` and every port variable elsewhere, and
//! [`StackConfig::for_tests`] refuses a configuration that would reach the
//! user's stack.

pub mod debezium;
mod health;
mod kafka;
mod process;
mod scratch;
mod services;
pub mod stand_in;
pub mod tls;

use std::path::{Path, PathBuf};

pub use kafka::KAFKA_VERSION;
pub use scratch::ScratchKafka;
pub use services::{Service, ServiceState, ServiceStatus, Stack, PG_MTLS_DATABASE};

/// Pinned tool versions.
pub const FAKESNOW_VERSION: &str = "0.12.1";
pub const POSTGRES_MAJOR: u32 = 15;

/// Where the stack lives and which ports it uses.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The project the stack serves (the registry runs with it).
    pub project_dir: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub pg_port: u16,
    pub kafka_port: u16,
    /// The KRaft controller listener of the one-node cluster.
    pub kafka_controller_port: u16,
    pub snowflake_port: u16,
    pub registry_port: u16,
    /// The secure stack's Kafka listeners: SASL_SSL, and SSL with client
    /// certificates (mTLS).
    pub kafka_sasl_port: u16,
    pub kafka_mtls_port: u16,
    /// The secure stack's registry over HTTPS with authentication (the
    /// plaintext `registry_port` stays, anonymous, on loopback).
    pub registry_https_port: u16,
    /// The secure stack's fakesnow over HTTPS (the plaintext
    /// `snowflake_port` stays).
    pub snowflake_https_port: u16,
    /// Whether the services run with TLS and authentication
    /// (`contrail stack up --secure`); see [`tls`].
    pub secure: bool,
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

/// The user's stack's default ports, by the variable that overrides each.
pub const DEFAULT_PORTS: [(&str, u16); 9] = [
    ("CONTRAIL_PG_PORT", 15432),
    ("CONTRAIL_KAFKA_PORT", 19092),
    ("CONTRAIL_KAFKA_CONTROLLER_PORT", 19093),
    ("CONTRAIL_SNOWFLAKE_PORT", 18085),
    ("CONTRAIL_REGISTRY_PORT", 8081),
    ("CONTRAIL_KAFKA_SASL_PORT", 19094),
    ("CONTRAIL_KAFKA_MTLS_PORT", 19095),
    ("CONTRAIL_REGISTRY_HTTPS_PORT", 8082),
    ("CONTRAIL_SNOWFLAKE_HTTPS_PORT", 18086),
];

/// The shared cache (`$XDG_CACHE_HOME/contrail` or `~/.cache/contrail`).
pub(crate) fn cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("contrail"))
}

pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl StackConfig {
    /// The defaults for a project directory, with this process's
    /// environment overrides (see [`StackConfig::from_env`]).
    pub fn for_project(project_dir: &Path) -> Result<StackConfig, StackError> {
        Self::from_env(project_dir, &process_env)
    }

    /// The configuration for a project given an environment: the ports
    /// from `CONTRAIL_PG_PORT`, `CONTRAIL_KAFKA_PORT`,
    /// `CONTRAIL_KAFKA_CONTROLLER_PORT`, `CONTRAIL_SNOWFLAKE_PORT` and
    /// `CONTRAIL_REGISTRY_PORT`, the data directory from
    /// `CONTRAIL_STACK_DIR` (default `<project>/.contrail`).
    pub fn from_env(project_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<StackConfig, StackError> {
        let port = |var: &str| -> Result<u16, StackError> {
            let default = DEFAULT_PORTS.iter().find(|(v, _)| *v == var).map_or(0, |(_, p)| *p);
            match env(var) {
                None => Ok(default),
                Some(v) => match v.parse() {
                    Ok(p) if p > 0 => Ok(p),
                    _ => Err(StackError::Config(format!("{var}={v:?} is not a port number"))),
                },
            }
        };
        let data_dir = match env("CONTRAIL_STACK_DIR") {
            Some(d) if d.is_empty() => return Err(StackError::Config("CONTRAIL_STACK_DIR is empty".into())),
            Some(d) => PathBuf::from(d),
            None => project_dir.join(".contrail"),
        };
        let cfg = StackConfig {
            project_dir: project_dir.to_path_buf(),
            cache_dir: cache_dir(env).unwrap_or_else(|| data_dir.join("cache")),
            data_dir,
            pg_port: port("CONTRAIL_PG_PORT")?,
            kafka_port: port("CONTRAIL_KAFKA_PORT")?,
            kafka_controller_port: port("CONTRAIL_KAFKA_CONTROLLER_PORT")?,
            snowflake_port: port("CONTRAIL_SNOWFLAKE_PORT")?,
            registry_port: port("CONTRAIL_REGISTRY_PORT")?,
            kafka_sasl_port: port("CONTRAIL_KAFKA_SASL_PORT")?,
            kafka_mtls_port: port("CONTRAIL_KAFKA_MTLS_PORT")?,
            registry_https_port: port("CONTRAIL_REGISTRY_HTTPS_PORT")?,
            snowflake_https_port: port("CONTRAIL_SNOWFLAKE_HTTPS_PORT")?,
            secure: false,
            contrail_exe: None,
        };
        cfg.check_distinct_ports()?;
        Ok(cfg)
    }

    /// The tests' own stack, as `scripts/test.sh` sets it up. Refuses
    /// (with what to do) a configuration that would reach the user's
    /// stack: its data directory or any of its default ports.
    pub fn for_tests(project_dir: &Path) -> Result<StackConfig, StackError> {
        Self::tests_from_env(project_dir, &process_env)
    }

    fn tests_from_env(project_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<StackConfig, StackError> {
        let refuse = |why: String| {
            StackError::Config(format!(
                "the tests run on a stack of their own, never the user's: {why}; \
                 run them with ./scripts/test.sh, which starts that stack"
            ))
        };
        if env("CONTRAIL_STACK_DIR").is_none() {
            return Err(refuse("CONTRAIL_STACK_DIR is not set".into()));
        }
        let cfg = Self::from_env(project_dir, env)?;
        if cfg.data_dir == project_dir.join(".contrail") {
            return Err(refuse(format!("{} is the project's own stack", cfg.data_dir.display())));
        }
        for (var, default) in DEFAULT_PORTS {
            if cfg.ports().iter().any(|(v, p)| *v == var && *p == default) {
                return Err(refuse(format!("{var} is the user's stack's default port {default}")));
            }
        }
        Ok(cfg)
    }

    fn ports(&self) -> [(&'static str, u16); 9] {
        [
            ("CONTRAIL_PG_PORT", self.pg_port),
            ("CONTRAIL_KAFKA_PORT", self.kafka_port),
            ("CONTRAIL_KAFKA_CONTROLLER_PORT", self.kafka_controller_port),
            ("CONTRAIL_SNOWFLAKE_PORT", self.snowflake_port),
            ("CONTRAIL_REGISTRY_PORT", self.registry_port),
            ("CONTRAIL_KAFKA_SASL_PORT", self.kafka_sasl_port),
            ("CONTRAIL_KAFKA_MTLS_PORT", self.kafka_mtls_port),
            ("CONTRAIL_REGISTRY_HTTPS_PORT", self.registry_https_port),
            ("CONTRAIL_SNOWFLAKE_HTTPS_PORT", self.snowflake_https_port),
        ]
    }

    /// The secure stack's certificates and credentials.
    pub fn tls(&self) -> tls::TlsMaterial {
        tls::TlsMaterial::new(&self.data_dir)
    }

    /// What a stage needs in its environment to reach the secure stack:
    /// PostgreSQL with `sslmode=verify-full`, Kafka over SASL_SSL with
    /// SCRAM-SHA-512, verifying the broker's certificate and name
    /// (`KAFKA_PROPERTY_*` settings, the password by file), and the
    /// registry over HTTPS as its writer (credentials by file, the stack's
    /// CA), and fakesnow over HTTPS with an encrypted key pair (fakesnow
    /// accepts any credentials; the key is decrypted and signs the login
    /// all the same). Every other address is [`StackConfig::env`]'s.
    pub fn secure_env(&self) -> Vec<(String, String)> {
        let tls = self.tls();
        [
            (
                "DATABASE_URL",
                format!(
                    "postgres://{PG_USER}:{PG_PASSWORD}@localhost:{}/{PG_DATABASE}?sslmode=verify-full&sslrootcert={}",
                    self.pg_port,
                    tls.ca().display()
                ),
            ),
            ("KAFKA_BOOTSTRAP_SERVERS", format!("localhost:{}", self.kafka_sasl_port)),
            ("KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL".into()),
            ("KAFKA_PROPERTY_SASL_MECHANISM", "SCRAM-SHA-512".into()),
            ("KAFKA_PROPERTY_SASL_USERNAME", tls::KAFKA_USER.into()),
            (
                "KAFKA_PROPERTY_SASL_PASSWORD_FILE",
                tls.kafka_password_file().display().to_string(),
            ),
            ("KAFKA_PROPERTY_SSL_CA_LOCATION", tls.ca().display().to_string()),
            // The broker listens on 127.0.0.1 only; `localhost` may
            // resolve to ::1 first.
            ("KAFKA_PROPERTY_BROKER_ADDRESS_FAMILY", "v4".into()),
            (
                "SCHEMA_REGISTRY_URL",
                format!("https://localhost:{}", self.registry_https_port),
            ),
            (
                "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE",
                tls.registry_user_info(tls::RegistryUser::Writer).display().to_string(),
            ),
            ("SCHEMA_REGISTRY_SSL_CA_LOCATION", tls.ca().display().to_string()),
            (
                "SNOWFLAKE_URL",
                format!("https://{SNOWFLAKE_USER}@localhost:{}", self.snowflake_https_port),
            ),
            ("SNOWFLAKE_SSL_CA_LOCATION", tls.ca().display().to_string()),
            ("SNOWFLAKE_PRIVATE_KEY_PATH", tls.snowflake_key().display().to_string()),
            (
                "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE_FILE",
                tls.snowflake_passphrase_file().display().to_string(),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec()
    }

    fn check_distinct_ports(&self) -> Result<(), StackError> {
        let ports = self.ports();
        for (i, (a, pa)) in ports.iter().enumerate() {
            if let Some((b, _)) = ports[i + 1..].iter().find(|(_, pb)| pb == pa) {
                return Err(StackError::Config(format!(
                    "{a} and {b} are both {pa}: give each service its own port"
                )));
            }
        }
        Ok(())
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

    /// One address of [`StackConfig::env`] by its variable's name.
    pub fn env_value(&self, name: &str) -> Option<String> {
        self.env().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v)
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
    #[error("{service}: port {port} is already in use by {owner}; stop it or set {env_var} to a free port")]
    PortTaken {
        service: &'static str,
        port: u16,
        /// `pid 1234 (java …)` when /proc tells, else "another program".
        owner: String,
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

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s); NaN when unreadable. For
/// the benchmarks' accounting of the processes they start.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(f64::NAN);
    ticks / 100.0
}

/// A process's peak resident memory (`VmHWM` in `/proc/PID/status`), MiB;
/// NaN when unreadable.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_are_the_users_stack_in_the_project() {
        let cfg = StackConfig::from_env(Path::new("/p"), &env_of(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/p/.contrail"));
        assert_eq!(cfg.cache_dir, Path::new("/home/u/.cache/contrail"));
        assert_eq!(
            (
                cfg.pg_port,
                cfg.kafka_port,
                cfg.kafka_controller_port,
                cfg.snowflake_port,
                cfg.registry_port
            ),
            (15432, 19092, 19093, 18085, 8081)
        );
        assert_eq!(cfg.env_value("KAFKA_BOOTSTRAP_SERVERS").unwrap(), "127.0.0.1:19092");
    }

    #[test]
    fn overrides_move_the_directory_and_ports() {
        let env = env_of(&[
            ("CONTRAIL_STACK_DIR", "/t/stack"),
            ("CONTRAIL_PG_PORT", "25432"),
            ("XDG_CACHE_HOME", "/c"),
        ]);
        let cfg = StackConfig::from_env(Path::new("/p"), &env).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/t/stack"));
        assert_eq!(cfg.cache_dir, Path::new("/c/contrail"));
        assert_eq!(cfg.pg_port, 25432);
    }

    #[test]
    fn bad_or_clashing_ports_are_refused_naming_the_variable() {
        let err = StackConfig::from_env(Path::new("/p"), &env_of(&[("CONTRAIL_PG_PORT", "x")])).unwrap_err();
        assert!(err.to_string().contains("CONTRAIL_PG_PORT=\"x\""), "{err}");
        let err = StackConfig::from_env(Path::new("/p"), &env_of(&[("CONTRAIL_REGISTRY_PORT", "19092")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("CONTRAIL_KAFKA_PORT and CONTRAIL_REGISTRY_PORT"),
            "{err}"
        );
    }

    #[test]
    fn the_tests_refuse_the_users_stack() {
        let p = Path::new("/p");
        let ports = [
            ("CONTRAIL_PG_PORT", "41001"),
            ("CONTRAIL_KAFKA_PORT", "41002"),
            ("CONTRAIL_KAFKA_CONTROLLER_PORT", "41003"),
            ("CONTRAIL_SNOWFLAKE_PORT", "41004"),
            ("CONTRAIL_REGISTRY_PORT", "41005"),
            ("CONTRAIL_KAFKA_SASL_PORT", "41006"),
            ("CONTRAIL_KAFKA_MTLS_PORT", "41007"),
            ("CONTRAIL_REGISTRY_HTTPS_PORT", "41008"),
            ("CONTRAIL_SNOWFLAKE_HTTPS_PORT", "41009"),
        ];
        let err = StackConfig::tests_from_env(p, &env_of(&ports)).unwrap_err();
        assert!(err.to_string().contains("CONTRAIL_STACK_DIR is not set"), "{err}");
        let mut own = ports.to_vec();
        own.push(("CONTRAIL_STACK_DIR", "/p/.contrail"));
        let err = StackConfig::tests_from_env(p, &env_of(&own)).unwrap_err();
        assert!(err.to_string().contains("project's own stack"), "{err}");
        let mut default_port = vec![("CONTRAIL_STACK_DIR", "/t"), ("CONTRAIL_PG_PORT", "41001")];
        default_port.extend_from_slice(&ports[1..4]);
        let err = StackConfig::tests_from_env(p, &env_of(&default_port)).unwrap_err();
        assert!(
            err.to_string()
                .contains("CONTRAIL_REGISTRY_PORT is the user's stack's default port 8081"),
            "{err}"
        );
        let mut good = ports.to_vec();
        good.push(("CONTRAIL_STACK_DIR", "/t"));
        assert_eq!(
            StackConfig::tests_from_env(p, &env_of(&good)).unwrap().data_dir,
            Path::new("/t")
        );
    }
}
