//! `connectors/producer.toml`: raw serde structs with unknown keys refused,
//! environment overrides, and a pure validation into [`ProducerConfig`].
//! The database URL is a secret: it comes from `DATABASE_URL` only and is
//! never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    kafka: RawKafka,
    #[serde(default)]
    service: RawService,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    /// librdkafka properties passed through (security, tuning).
    #[serde(default)]
    properties: std::collections::BTreeMap<String, kafka::PropertyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Option<String>,
    // simulator
    seed: Option<u64>,
    fleet: Option<usize>,
    step_seconds: Option<f64>,
    bad_percent: Option<f64>,
    // opensky
    base_url: Option<String>,
    token_url: Option<String>,
    poll_seconds: Option<u64>,
    /// [lamin, lomin, lamax, lomax]
    bbox: Option<[f64; 4]>,
    // replay
    path: Option<PathBuf>,
    speed: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: Option<String>,
    batch_size: Option<usize>,
    topic: Option<String>,
    dead_letter_topic: Option<String>,
    partitions: Option<i32>,
    linger_ms: Option<u64>,
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

/// The database URL: printed without its password.
pub type DatabaseUrl = changes::SecretUrl;

/// Where the changes go.
#[derive(Debug, Clone)]
pub enum Target {
    Postgres { database_url: DatabaseUrl },
    Kafka(Box<crate::kafka_target::KafkaTargetConfig>),
}

/// Addresses of the services, used when the environment names none (the
/// binary passes the local stack's).
#[derive(Debug, Clone, Default)]
pub struct ServiceDefaults {
    pub database_url: Option<String>,
    pub kafka_bootstrap_servers: Option<String>,
    pub schema_registry_url: Option<String>,
    /// The process environment, given as a value: parsing never reads it
    /// itself.
    pub env: changes::Env,
}

/// Validated producer configuration.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub source: crate::source::SourceConfig,
    pub target: Target,
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

fn env_parse<T: std::str::FromStr>(env: &changes::Env, name: &str) -> Result<Option<T>, ConfigError> {
    match env.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ConfigError(format!("{name}={v:?} is not a valid value"))),
    }
}

impl ProducerConfig {
    /// File (optional) < environment (`CONTRAIL_PRODUCER_*`) < command line.
    /// Service addresses come from `DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`
    /// and `SCHEMA_REGISTRY_URL`, else from `defaults`.
    pub fn load(
        file: Option<&Path>,
        overrides: &Overrides,
        defaults: ServiceDefaults,
    ) -> Result<ProducerConfig, ConfigError> {
        let defaults = ServiceDefaults {
            env: defaults.env.for_stage("PRODUCER"),
            ..defaults
        };
        let raw: RawConfig = match file {
            None => RawConfig::default(),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| ConfigError(format!("cannot read {}: {e}", p.display())))?;
                toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?
            }
        };
        let source_kind = overrides
            .source
            .clone()
            .or(raw.source.kind.clone())
            .unwrap_or_else(|| "simulator".into());
        let target_kind = overrides
            .target
            .clone()
            .or(raw.target.kind.clone())
            .unwrap_or_else(|| "postgres".into());
        let simulator = simulator_config(&raw.source, overrides, &defaults.env)?;
        let source = source_config(&source_kind, &raw.source, simulator, file, &defaults.env)?;
        let batch_size = raw.target.batch_size.unwrap_or(1_000);
        if !(1..=100_000).contains(&batch_size) {
            return Err(ConfigError(format!(
                "target.batch_size = {batch_size}: expected 1 to 100000"
            )));
        }
        let rate = overrides
            .rate
            .or(env_parse(&defaults.env, "CONTRAIL_PRODUCER_RATE")?)
            .or(raw.service.rate)
            .unwrap_or(1_000);
        let duration = overrides
            .duration_seconds
            .or(env_parse(&defaults.env, "CONTRAIL_PRODUCER_DURATION_SECONDS")?)
            .or(raw.service.duration_seconds)
            .unwrap_or(0);
        let listen = overrides.metrics_listen.clone().or(raw.service.metrics_listen);
        let metrics_listen = changes::metrics_listen(listen.as_deref()).map_err(ConfigError)?;
        let target = target_config(&target_kind, &raw.target, raw.kafka, defaults)?;
        Ok(ProducerConfig {
            source,
            target,
            batch_size,
            rate: (rate > 0).then_some(rate),
            duration: (duration > 0).then(|| Duration::from_secs(duration)),
            metrics_listen,
        })
    }
}

/// The simulator's settings: command line < environment < file < defaults.
fn simulator_config(
    raw: &RawSource,
    overrides: &Overrides,
    env: &changes::Env,
) -> Result<simulator::SimConfig, ConfigError> {
    let sim_defaults = simulator::SimConfig::default();
    Ok(simulator::SimConfig {
        seed: overrides.seed.or(raw.seed).unwrap_or(sim_defaults.seed),
        fleet: overrides.fleet.or(raw.fleet).unwrap_or(sim_defaults.fleet),
        step_seconds: raw.step_seconds.unwrap_or(sim_defaults.step_seconds),
        bad_percent: overrides
            .bad_percent
            .or(env_parse(env, "CONTRAIL_PRODUCER_BAD_PERCENT")?)
            .or(raw.bad_percent)
            .unwrap_or(0.0),
    })
}

fn target_config(
    kind: &str,
    raw: &RawTarget,
    kafka: RawKafka,
    defaults: ServiceDefaults,
) -> Result<Target, ConfigError> {
    Ok(match kind {
        "postgres" => {
            let url = defaults
                .env
                .var("DATABASE_URL")
                .or(defaults.database_url)
                .ok_or_else(|| ConfigError("DATABASE_URL is not set".into()))?;
            pg_tls::PgUrl::parse("DATABASE_URL", &url).map_err(|e| ConfigError(e.to_string()))?;
            Target::Postgres {
                database_url: DatabaseUrl::new(url),
            }
        }
        "kafka" => Target::Kafka(Box::new(kafka_target(raw, kafka, defaults)?)),
        other => {
            return Err(ConfigError(format!(
                "target {other:?} is unknown: expected postgres or kafka"
            )))
        }
    })
}

fn source_config(
    kind: &str,
    raw: &RawSource,
    simulator: simulator::SimConfig,
    file: Option<&Path>,
    env: &changes::Env,
) -> Result<crate::source::SourceConfig, ConfigError> {
    use crate::source::SourceConfig;
    Ok(match kind {
        "simulator" => {
            // Validate the simulator settings now, before anything connects.
            simulator::Simulator::new(simulator.clone()).map_err(|e| ConfigError(format!("source: {e}")))?;
            SourceConfig::Simulator(simulator)
        }
        "opensky" => opensky_config(raw, env)?,
        "replay" => {
            let path = raw
                .path
                .clone()
                .ok_or_else(|| ConfigError("source.path is required for replay".into()))?;
            // A relative path is relative to the configuration file.
            let path = match (path.is_relative(), file.and_then(Path::parent)) {
                (true, Some(dir)) if !path.exists() => dir.join(path),
                _ => path,
            };
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "source.path {} is not a readable file",
                    path.display()
                )));
            }
            let speed = raw.speed.unwrap_or(1.0);
            if !(speed >= 0.0 && speed.is_finite()) {
                return Err(ConfigError(format!(
                    "source.speed = {speed}: expected 0 (no waiting) or a positive factor"
                )));
            }
            SourceConfig::Replay { path, speed }
        }
        other => {
            return Err(ConfigError(format!(
                "source {other:?} is unknown: expected simulator, opensky or replay"
            )))
        }
    })
}

/// OpenSky's client settings, with the credentials from the environment.
fn opensky_config(raw: &RawSource, env: &changes::Env) -> Result<crate::source::SourceConfig, ConfigError> {
    use crate::source::SourceConfig;
    let credentials = match (env.var("OPENSKY_CLIENT_ID"), env.var("OPENSKY_CLIENT_SECRET")) {
        (Some(client_id), Some(client_secret)) => Some(opensky::Credentials {
            client_id,
            client_secret,
        }),
        (None, None) => None,
        _ => {
            return Err(ConfigError(
                "set both OPENSKY_CLIENT_ID and OPENSKY_CLIENT_SECRET, or neither (anonymous)".into(),
            ))
        }
    };
    let defaults = opensky::OpenSkyConfig::default();
    let bbox = raw.bbox.map(|[lamin, lomin, lamax, lomax]| opensky::BoundingBox {
        lamin,
        lomin,
        lamax,
        lomax,
    });
    if let Some(b) = &bbox {
        b.validate().map_err(|e| ConfigError(format!("source.bbox: {e}")))?;
    }
    // OpenSky's resolution: 10 s anonymous, 5 s with an account.
    let poll = raw.poll_seconds.unwrap_or(if credentials.is_some() { 5 } else { 10 });
    if poll == 0 {
        return Err(ConfigError("source.poll_seconds must be positive".into()));
    }
    Ok(SourceConfig::OpenSky {
        client: opensky::OpenSkyConfig {
            base_url: raw.base_url.clone().unwrap_or(defaults.base_url),
            token_url: raw.token_url.clone().unwrap_or(defaults.token_url),
            credentials,
            bbox,
            extended: true,
        },
        poll: std::time::Duration::from_secs(poll),
    })
}

fn kafka_target(
    raw: &RawTarget,
    kafka: RawKafka,
    defaults: ServiceDefaults,
) -> Result<crate::kafka_target::KafkaTargetConfig, ConfigError> {
    let env = &defaults.env;
    let bootstrap = env
        .var("KAFKA_BOOTSTRAP_SERVERS")
        .or(defaults.kafka_bootstrap_servers.clone())
        .ok_or_else(|| ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set".into()))?;
    let registry_url = env
        .var("SCHEMA_REGISTRY_URL")
        .or(defaults.schema_registry_url.clone())
        .ok_or_else(|| ConfigError("SCHEMA_REGISTRY_URL is not set".into()))?;
    let topic = raw.topic.clone().unwrap_or_else(|| "flights.state".into());
    let dead_letter_topic = raw.dead_letter_topic.clone().unwrap_or_else(|| format!("{topic}.dlq"));
    for (name, t) in [("topic", &topic), ("dead_letter_topic", &dead_letter_topic)] {
        changes::check_topic_name(t)
            .map_err(|why| ConfigError(format!("target.{name} = {t:?} is not a legal Kafka topic name: {why}")))?;
    }
    if topic == dead_letter_topic {
        return Err(ConfigError(
            "target.dead_letter_topic must differ from target.topic".into(),
        ));
    }
    let partitions = raw.partitions.unwrap_or(3);
    if !(1..=10_000).contains(&partitions) {
        return Err(ConfigError(format!(
            "target.partitions = {partitions}: expected 1 to 10000"
        )));
    }
    let linger_ms = raw.linger_ms.unwrap_or(5);
    if linger_ms > 10_000 {
        return Err(ConfigError(format!(
            "target.linger_ms = {linger_ms}: expected at most 10000"
        )));
    }
    Ok(crate::kafka_target::KafkaTargetConfig {
        kafka: kafka::KafkaConfig {
            properties: kafka::Properties::parse(kafka.properties, env, &bootstrap).map_err(ConfigError)?,
            bootstrap_servers: bootstrap,
            client_id: "contrail-producer".into(),
        },
        registry_url,
        registry: registry_client::Security::from_env(env).map_err(ConfigError)?,
        topic,
        dead_letter_topic,
        partitions,
        linger: std::time::Duration::from_millis(linger_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ServiceDefaults {
        ServiceDefaults {
            database_url: Some("postgres://u:p@127.0.0.1:1/db".into()),
            kafka_bootstrap_servers: Some("127.0.0.1:1".into()),
            schema_registry_url: Some("http://127.0.0.1:1".into()),
            env: changes::Env::default(),
        }
    }

    fn load_text(text: &str, o: &Overrides) -> Result<ProducerConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!("producer-config-{}-{}", std::process::id(), text.len()));
        std::fs::write(&dir, text).unwrap();
        let r = ProducerConfig::load(Some(&dir), o, defaults());
        let _ = std::fs::remove_file(&dir);
        r
    }

    #[test]
    fn the_committed_connector_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors/producer.toml");
        let cfg = ProducerConfig::load(Some(&path), &Overrides::default(), defaults()).unwrap();
        match &cfg.source {
            crate::source::SourceConfig::Simulator(s) => assert_eq!(s.fleet, 500),
            other => panic!("{other:?}"),
        }
        let kafka = ProducerConfig::load(
            Some(&path),
            &Overrides {
                target: Some("kafka".into()),
                ..Overrides::default()
            },
            defaults(),
        )
        .unwrap();
        match kafka.target {
            Target::Kafka(k) => assert_eq!(
                (k.topic.as_str(), k.dead_letter_topic.as_str()),
                ("flights.state", "flights.state.dlq")
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            format!("{cfg:?}").contains("<redacted>"),
            "the database URL is never printed"
        );
    }

    /// Every secret the environment hands the configuration stays out of
    /// its `Debug`, for each target and the OpenSky source.
    #[test]
    fn no_secret_is_printed() {
        let env = changes::testing::secret_env();
        for (source, target) in [("opensky", "kafka"), ("simulator", "postgres")] {
            let o = Overrides {
                source: Some(source.into()),
                target: Some(target.into()),
                ..Overrides::default()
            };
            let c = ProducerConfig::load(
                None,
                &o,
                ServiceDefaults {
                    env: env.clone(),
                    ..defaults()
                },
            )
            .unwrap();
            changes::testing::assert_no_secret(&c);
        }
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
                source: Some("radar".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("expected simulator, opensky or replay"), "{e}");
        let e = load_text(
            "[source]\nkind = \"replay\"\npath = \"/nonexistent.jsonl\"\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a readable file"), "{e}");
        let e = load_text(
            "[source]\nkind = \"opensky\"\nbbox = [95.0, 0.0, 96.0, 1.0]\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("source.bbox"), "{e}");
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
        let fleet = match &cfg.source {
            crate::source::SourceConfig::Simulator(s) => s.fleet,
            other => panic!("{other:?}"),
        };
        assert_eq!((cfg.rate, fleet), (None, 7));
    }
}
