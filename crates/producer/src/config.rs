//! `connectors/producer.toml`: raw serde structs with unknown keys refused,
//! environment overrides, and a pure validation into [`ProducerConfig`].
//! The database URL is a secret: it comes from `DATABASE_URL` only and is
//! never printed.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    source: RawSource,
    #[serde(default)]
    target: RawTarget,
    #[serde(default)]
    service: RawService,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Option<String>,
    seed: Option<u64>,
    fleet: Option<usize>,
    step_seconds: Option<f64>,
    bad_percent: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: Option<String>,
    batch_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    rate: Option<u64>,
    duration_seconds: Option<u64>,
    metrics_listen: Option<String>,
}

/// Settings given on the command line; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub source: Option<String>,
    pub target: Option<String>,
    pub rate: Option<u64>,
    pub duration_seconds: Option<u64>,
    pub bad_percent: Option<f64>,
    pub fleet: Option<usize>,
    pub seed: Option<u64>,
    pub metrics_listen: Option<String>,
}

/// The database URL; `Debug` hides it.
#[derive(Clone)]
pub struct DatabaseUrl(pub(crate) String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

/// Validated producer configuration.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub simulator: simulator::SimConfig,
    pub database_url: DatabaseUrl,
    pub batch_size: usize,
    /// Changes per second; `None` runs as fast as the target accepts.
    pub rate: Option<u64>,
    pub duration: Option<Duration>,
    pub metrics_listen: Option<SocketAddr>,
}

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ConfigError(format!("{name}={v:?} is not a valid value"))),
    }
}

impl ProducerConfig {
    /// File (optional) < environment (`CONTRAIL_PRODUCER_*`) < command line.
    /// `default_database_url` applies when `DATABASE_URL` is not set.
    pub fn load(
        file: Option<&Path>,
        overrides: &Overrides,
        default_database_url: Option<String>,
    ) -> Result<ProducerConfig, ConfigError> {
        let raw: RawConfig = match file {
            None => RawConfig::default(),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| ConfigError(format!("cannot read {}: {e}", p.display())))?;
                toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?
            }
        };
        let source = overrides
            .source
            .clone()
            .or(raw.source.kind)
            .unwrap_or_else(|| "simulator".into());
        if source != "simulator" {
            return Err(ConfigError(format!(
                "source {source:?} is not available: this build has the simulator source only (OpenSky and replay are to come)"
            )));
        }
        let target = overrides
            .target
            .clone()
            .or(raw.target.kind)
            .unwrap_or_else(|| "postgres".into());
        if target != "postgres" {
            return Err(ConfigError(format!(
                "target {target:?} is not available: this build writes to PostgreSQL only (the Kafka target is to come)"
            )));
        }
        let defaults = simulator::SimConfig::default();
        let simulator = simulator::SimConfig {
            seed: overrides.seed.or(raw.source.seed).unwrap_or(defaults.seed),
            fleet: overrides.fleet.or(raw.source.fleet).unwrap_or(defaults.fleet),
            step_seconds: raw.source.step_seconds.unwrap_or(defaults.step_seconds),
            bad_percent: overrides
                .bad_percent
                .or(env_parse("CONTRAIL_PRODUCER_BAD_PERCENT")?)
                .or(raw.source.bad_percent)
                .unwrap_or(0.0),
        };
        // Validate the simulator settings now, before anything connects.
        simulator::Simulator::new(simulator.clone()).map_err(|e| ConfigError(format!("source: {e}")))?;
        let batch_size = raw.target.batch_size.unwrap_or(1_000);
        if !(1..=100_000).contains(&batch_size) {
            return Err(ConfigError(format!(
                "target.batch_size = {batch_size}: expected 1 to 100000"
            )));
        }
        let rate = overrides
            .rate
            .or(env_parse("CONTRAIL_PRODUCER_RATE")?)
            .or(raw.service.rate)
            .unwrap_or(1_000);
        let duration = overrides
            .duration_seconds
            .or(env_parse("CONTRAIL_PRODUCER_DURATION_SECONDS")?)
            .or(raw.service.duration_seconds)
            .unwrap_or(0);
        let metrics_listen = match overrides.metrics_listen.clone().or(raw.service.metrics_listen) {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| ConfigError(format!("service.metrics_listen = {s:?} is not host:port")))?,
            ),
        };
        let database_url = std::env::var("DATABASE_URL")
            .ok()
            .or(default_database_url)
            .ok_or_else(|| ConfigError("DATABASE_URL is not set".into()))?;
        database_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError(format!("DATABASE_URL is not a valid PostgreSQL URL: {e}")))?;
        Ok(ProducerConfig {
            simulator,
            database_url: DatabaseUrl(database_url),
            batch_size,
            rate: (rate > 0).then_some(rate),
            duration: (duration > 0).then(|| Duration::from_secs(duration)),
            metrics_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, o: &Overrides) -> Result<ProducerConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!("producer-config-{}-{}", std::process::id(), text.len()));
        std::fs::write(&dir, text).unwrap();
        let r = ProducerConfig::load(Some(&dir), o, Some("postgres://u:p@127.0.0.1:1/db".into()));
        let _ = std::fs::remove_file(&dir);
        r
    }

    #[test]
    fn the_committed_connector_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors/producer.toml");
        let cfg = ProducerConfig::load(Some(&path), &Overrides::default(), Some("postgres://u:p@h/db".into())).unwrap();
        assert_eq!(cfg.simulator.fleet, 500);
        assert!(
            format!("{cfg:?}").contains("<redacted>"),
            "the database URL is never printed"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_setting() {
        let e = load_text("[source]\nflet = 3\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `flet`"), "{e}");
        let e = load_text("[source]\nbad_percent = 150.0\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad_percent must be between 0 and 100"), "{e}");
        let e = load_text("[service]\nmetrics_listen = \"nowhere\"\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics_listen"), "{e}");
        let e = load_text(
            "",
            &Overrides {
                source: Some("opensky".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not available"), "{e}");
    }

    #[test]
    fn command_line_wins() {
        let cfg = load_text(
            "[service]\nrate = 5\n",
            &Overrides {
                rate: Some(0),
                fleet: Some(7),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!((cfg.rate, cfg.simulator.fleet), (None, 7));
    }
}
