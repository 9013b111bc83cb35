//! `connectors/cdc.toml`: which tables to capture, how, and where to. Unknown
//! keys are refused and every value is checked before anything connects.
//! Service addresses come from the environment (`DATABASE_URL`,
//! `KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`), never from the file:
//! the database URL holds a password and is never printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::CdcError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: RawSource,
    #[serde(default)]
    kafka: RawKafka,
    #[serde(default)]
    contracts: BTreeMap<String, String>,
    #[serde(default)]
    service: RawService,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    tables: Vec<String>,
    slot: Option<String>,
    publication: Option<String>,
    state_table: Option<String>,
    heartbeat_seconds: Option<u64>,
    lag_warn_bytes: Option<u64>,
    binary_values: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    topic_prefix: Option<String>,
    partitions: Option<i32>,
    replication: Option<i32>,
    min_insync_replicas: Option<i32>,
    dead_letter_topic: Option<String>,
    tombstones: Option<bool>,
    transaction_metadata: Option<bool>,
    linger_ms: Option<u64>,
    /// librdkafka properties passed through (security, tuning).
    #[serde(default)]
    properties: BTreeMap<String, kafka::PropertyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    metrics_listen: Option<String>,
    schemas_dir: Option<PathBuf>,
}

/// A table to capture.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl TableName {
    /// The name quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// An identifier quoted for SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The database URL: printed without its password.
pub type DatabaseUrl = changes::SecretUrl;

/// Addresses of the services when the environment names none (the binary
/// passes the local stack's).
#[derive(Debug, Clone, Default)]
pub struct ServiceDefaults {
    pub database_url: Option<String>,
    pub kafka_bootstrap_servers: Option<String>,
    pub schema_registry_url: Option<String>,
    /// The process environment, given as a value: parsing never reads it
    /// itself.
    pub env: changes::Env,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct CdcConfig {
    pub database_url: DatabaseUrl,
    pub tables: Vec<TableName>,
    pub slot: String,
    pub publication: String,
    /// Where the stage records which tables' snapshots are complete.
    pub state_table: TableName,
    pub heartbeat: Option<Duration>,
    pub lag_warn_bytes: u64,
    /// pgoutput's `binary 'true'`: values in their binary send form.
    pub binary_values: bool,
    pub kafka: kafka::KafkaConfig,
    pub registry_url: String,
    /// The registry's credentials and TLS (Confluent's settings).
    pub registry: registry_client::Security,
    pub topic_prefix: String,
    pub partitions: i32,
    pub replication: i32,
    /// `min.insync.replicas` of the topics the stage creates: how many
    /// replicas must have a record before `acks=all` acknowledges it.
    pub min_insync_replicas: i32,
    pub dead_letter_topic: String,
    pub tombstones: bool,
    /// Debezium's transaction metadata: BEGIN and END records on this topic.
    pub transaction_topic: Option<String>,
    pub linger: Duration,
    /// Table → the full name of the record in `schemas/` whose rules it follows.
    pub contracts: BTreeMap<TableName, String>,
    pub schemas_dir: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
}

fn bad(msg: String) -> CdcError {
    CdcError::Config(msg)
}

fn table_name(key: &str, s: &str) -> Result<TableName, CdcError> {
    let (schema, name) = s.split_once('.').unwrap_or(("public", s));
    if schema.is_empty() || name.is_empty() || name.contains('.') {
        return Err(bad(format!("{key}: {s:?} is not a table name (schema.table)")));
    }
    Ok(TableName {
        schema: schema.into(),
        name: name.into(),
    })
}

fn slot_like(key: &str, s: &str) -> Result<(), CdcError> {
    // Replication slot names: lower-case letters, digits and underscores.
    if s.is_empty()
        || s.len() > 63
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad(format!(
            "{key} = {s:?}: use 1 to 63 lower-case letters, digits and underscores"
        )));
    }
    Ok(())
}

fn topic_like(key: &str, t: &str) -> Result<(), CdcError> {
    changes::check_topic_name(t).map_err(|why| bad(format!("{key} = {t:?} is not a legal Kafka topic name: {why}")))
}

impl CdcConfig {
    /// Reads and validates `file`; `project_dir` anchors relative paths.
    pub fn load(file: &Path, project_dir: &Path, defaults: ServiceDefaults) -> Result<CdcConfig, CdcError> {
        let text = std::fs::read_to_string(file).map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
        Self::parse(&text, project_dir, defaults).map_err(|e| match e {
            CdcError::Config(m) => bad(format!("{}: {m}", file.display())),
            other => other,
        })
    }

    fn parse(text: &str, project_dir: &Path, defaults: ServiceDefaults) -> Result<CdcConfig, CdcError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let source = Captured::parse(raw.source)?;
        let mut raw_kafka = raw.kafka;
        let kafka_properties = std::mem::take(&mut raw_kafka.properties);
        let topics = Topics::parse(raw_kafka)?;
        let mut contracts = BTreeMap::new();
        for (table, record) in raw.contracts {
            let t = table_name("contracts", &table)?;
            if !source.tables.contains(&t) {
                return Err(bad(format!("contracts: {t} is not in source.tables")));
            }
            contracts.insert(t, record);
        }
        let metrics_listen = changes::metrics_listen(raw.service.metrics_listen.as_deref()).map_err(bad)?;
        let env = &defaults.env.for_stage("CDC");
        let env_or = |name: &str, default: Option<String>| {
            env.var(name)
                .or(default)
                .ok_or_else(|| bad(format!("{name} is not set")))
        };
        let database_url = env_or("DATABASE_URL", defaults.database_url)?;
        pg_tls::PgUrl::parse("DATABASE_URL", &database_url).map_err(|e| bad(e.to_string()))?;
        let bootstrap_servers = env_or("KAFKA_BOOTSTRAP_SERVERS", defaults.kafka_bootstrap_servers)?;
        Ok(CdcConfig {
            database_url: DatabaseUrl::new(database_url),
            tables: source.tables,
            slot: source.slot,
            publication: source.publication,
            state_table: source.state_table,
            heartbeat: source.heartbeat,
            lag_warn_bytes: source.lag_warn_bytes,
            binary_values: source.binary_values,
            kafka: kafka::KafkaConfig {
                properties: kafka::Properties::parse(kafka_properties, env, &bootstrap_servers).map_err(bad)?,
                bootstrap_servers,
                client_id: "contrail-cdc".into(),
            },
            registry_url: env_or("SCHEMA_REGISTRY_URL", defaults.schema_registry_url)?,
            registry: registry_client::Security::from_env(env).map_err(bad)?,
            topic_prefix: topics.topic_prefix,
            partitions: topics.partitions,
            replication: topics.replication,
            min_insync_replicas: topics.min_insync_replicas,
            dead_letter_topic: topics.dead_letter_topic,
            tombstones: topics.tombstones,
            transaction_topic: topics.transaction_topic,
            linger: topics.linger,
            contracts,
            schemas_dir: project_dir.join(raw.service.schemas_dir.unwrap_or_else(|| "schemas".into())),
            metrics_listen,
        })
    }
}

/// `[source]`, checked.
struct Captured {
    tables: Vec<TableName>,
    slot: String,
    publication: String,
    state_table: TableName,
    heartbeat: Option<Duration>,
    lag_warn_bytes: u64,
    binary_values: bool,
}

impl Captured {
    fn parse(raw: RawSource) -> Result<Captured, CdcError> {
        if raw.tables.is_empty() {
            return Err(bad("source.tables is empty: name at least one table".into()));
        }
        let mut tables = Vec::new();
        for t in &raw.tables {
            let t = table_name("source.tables", t)?;
            if tables.contains(&t) {
                return Err(bad(format!("source.tables names {t} twice")));
            }
            tables.push(t);
        }
        let slot = raw.slot.unwrap_or_else(|| "contrail".into());
        slot_like("source.slot", &slot)?;
        let publication = raw.publication.unwrap_or_else(|| "contrail".into());
        slot_like("source.publication", &publication)?;
        let state_table = table_name(
            "source.state_table",
            raw.state_table.as_deref().unwrap_or("public.contrail_cdc_state"),
        )?;
        if tables.contains(&state_table) {
            return Err(bad(format!(
                "source.state_table {state_table} is also a captured table"
            )));
        }
        let heartbeat = match raw.heartbeat_seconds.unwrap_or(10) {
            0 => None,
            s if s > 3600 => return Err(bad(format!("source.heartbeat_seconds = {s}: expected at most 3600"))),
            s => Some(Duration::from_secs(s)),
        };
        Ok(Captured {
            tables,
            slot,
            publication,
            state_table,
            heartbeat,
            lag_warn_bytes: raw.lag_warn_bytes.unwrap_or(256 * 1024 * 1024),
            binary_values: raw.binary_values.unwrap_or(true),
        })
    }
}

/// `[kafka]`, checked.
struct Topics {
    topic_prefix: String,
    dead_letter_topic: String,
    partitions: i32,
    replication: i32,
    min_insync_replicas: i32,
    tombstones: bool,
    transaction_topic: Option<String>,
    linger: Duration,
}

impl Topics {
    fn parse(raw: RawKafka) -> Result<Topics, CdcError> {
        let topic_prefix = raw.topic_prefix.unwrap_or_else(|| "contrail".into());
        topic_like("kafka.topic_prefix", &topic_prefix)?;
        let dead_letter_topic = raw
            .dead_letter_topic
            .unwrap_or_else(|| format!("{topic_prefix}.cdc.dlq"));
        topic_like("kafka.dead_letter_topic", &dead_letter_topic)?;
        let partitions = raw.partitions.unwrap_or(3);
        if !(1..=10_000).contains(&partitions) {
            return Err(bad(format!("kafka.partitions = {partitions}: expected 1 to 10000")));
        }
        let replication = raw.replication.unwrap_or(1);
        if !(1..=16).contains(&replication) {
            return Err(bad(format!("kafka.replication = {replication}: expected 1 to 16")));
        }
        let min_insync_replicas = raw.min_insync_replicas.unwrap_or(1);
        if !(1..=replication).contains(&min_insync_replicas) {
            return Err(bad(format!(
                "kafka.min_insync_replicas = {min_insync_replicas}: expected 1 to kafka.replication ({replication})"
            )));
        }
        let linger_ms = raw.linger_ms.unwrap_or(5);
        if linger_ms > 10_000 {
            return Err(bad(format!("kafka.linger_ms = {linger_ms}: expected at most 10000")));
        }
        let transaction_topic = raw
            .transaction_metadata
            .unwrap_or(false)
            .then(|| format!("{topic_prefix}.transaction"));
        if transaction_topic.as_ref() == Some(&dead_letter_topic) {
            return Err(bad(
                "kafka.dead_letter_topic must differ from <topic_prefix>.transaction".into(),
            ));
        }
        Ok(Topics {
            topic_prefix,
            dead_letter_topic,
            partitions,
            replication,
            min_insync_replicas,
            tombstones: raw.tombstones.unwrap_or(true),
            transaction_topic,
            linger: Duration::from_millis(linger_ms),
        })
    }
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

    fn parse(text: &str) -> Result<CdcConfig, String> {
        CdcConfig::parse(text, Path::new("/p"), defaults()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_committed_connector_config_is_valid() {
        let text = include_str!("../../../connectors/cdc.toml");
        let c = parse(text).unwrap();
        assert_eq!(
            c.tables,
            vec![TableName {
                schema: "public".into(),
                name: "flight_state".into()
            }]
        );
        assert_eq!(c.contracts.values().next().unwrap(), "io.contrail.flight.FlightState");
        assert!(
            !format!("{c:?}").contains("u:p@"),
            "the database URL must not be printed"
        );
    }

    /// Every secret the environment hands the configuration stays out of
    /// its `Debug`.
    #[test]
    fn no_secret_is_printed() {
        let env = changes::testing::secret_env();
        let c = CdcConfig::parse(
            "[source]\ntables = [\"public.t\"]\n",
            Path::new("/p"),
            ServiceDefaults { env, ..defaults() },
        )
        .unwrap();
        let auth = registry_client::Auth::Basic(changes::Secret::new("reg:hunter2"));
        assert_eq!(c.registry.auth, auth, "the registry's credentials are read");
        changes::testing::assert_no_secret(&c);
    }

    #[test]
    fn kafka_properties_pass_through_but_secrets_stay_out_of_the_file() {
        let base = "[source]\ntables = [\"public.t\"]\n[kafka.properties]\n";
        let c = parse(&format!(
            "{base}\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"/ca.pem\""
        ))
        .unwrap();
        assert_eq!(c.kafka.properties.get("ssl.ca.location"), Some("/ca.pem"));
        let err = parse(&format!("{base}\"sasl.password\" = \"x\"")).unwrap_err();
        assert!(err.contains("kafka.properties.sasl.password is a secret"), "{err}");
        let err = parse(&format!("{base}acks = 1")).unwrap_err();
        assert!(err.contains("acks is managed by Contrail"), "{err}");
    }

    /// The environment an example file sets (`NAME=value` lines), with
    /// each `*_FILE` pointed at a placeholder file, since the real ones are
    /// mounted secrets.
    fn example_env(text: &str, placeholder: &Path) -> changes::Env {
        changes::Env::from_vars(
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| l.split_once('=').expect("NAME=value"))
                .map(|(k, v)| {
                    let v = if k.ends_with("_FILE") {
                        placeholder.display().to_string()
                    } else {
                        v.into()
                    };
                    (k.to_string(), v)
                }),
        )
    }

    #[test]
    fn the_example_cluster_configurations_are_valid() {
        let placeholder = std::env::temp_dir().join(format!("contrail-example-secret-{}", std::process::id()));
        // Shaped like every secret the examples read, user info included.
        std::fs::write(&placeholder, "placeholder-key:placeholder-secret\n").unwrap();
        let cdc = include_str!("../../../connectors/cdc.toml");
        for (name, text, protocol) in [
            (
                "confluent-cloud",
                include_str!("../../../connectors/examples/confluent-cloud.env"),
                "SASL_SSL",
            ),
            (
                "msk-scram",
                include_str!("../../../connectors/examples/msk-scram.env"),
                "SASL_SSL",
            ),
            (
                "aiven-mtls",
                include_str!("../../../connectors/examples/aiven-mtls.env"),
                "SSL",
            ),
            (
                "oidc",
                include_str!("../../../connectors/examples/oidc.env"),
                "SASL_SSL",
            ),
        ] {
            let env = example_env(text, &placeholder);
            let c = CdcConfig::parse(cdc, Path::new("/p"), ServiceDefaults { env, ..defaults() })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.kafka.properties.get("security.protocol"), Some(protocol), "{name}");
            assert!(!c.kafka.bootstrap_servers.starts_with("127.0.0.1"), "{name}");
            if name == "confluent-cloud" {
                assert!(c.registry_url.starts_with("https://psrc-"), "{name}");
                assert!(matches!(c.registry.auth, registry_client::Auth::Basic(_)), "{name}");
            }
        }
        // RDS with verify-full: the URL's TLS settings pass validation.
        let env = example_env(
            include_str!("../../../connectors/examples/rds-verify-full.env"),
            &placeholder,
        );
        let c = CdcConfig::parse(cdc, Path::new("/p"), ServiceDefaults { env, ..defaults() }).unwrap();
        let url = pg_tls::PgUrl::parse("DATABASE_URL", c.database_url.expose()).unwrap();
        assert_eq!(url.tls.mode, pg_tls::SslMode::VerifyFull);
        std::fs::remove_file(placeholder).unwrap();
    }

    #[test]
    fn min_insync_replicas_lies_between_one_and_the_replication() {
        let base = "[source]\ntables = [\"public.t\"]\n";
        let err = parse(&format!("{base}[kafka]\nreplication = 3\nmin_insync_replicas = 4")).unwrap_err();
        assert!(
            err.contains("kafka.min_insync_replicas = 4: expected 1 to kafka.replication (3)"),
            "{err}"
        );
        assert!(parse(&format!("{base}[kafka]\nmin_insync_replicas = 0")).is_err());
        let ok = parse(&format!("{base}[kafka]\nreplication = 3\nmin_insync_replicas = 2")).unwrap();
        assert_eq!((ok.replication, ok.min_insync_replicas), (3, 2));
    }

    #[test]
    fn bad_settings_name_the_key() {
        let base = "[source]\ntables = [\"public.t\"]\n";
        assert!(parse(&format!("{base}nope = 1"))
            .unwrap_err()
            .contains("unknown field `nope`"));
        assert!(parse("[source]\ntables = []")
            .unwrap_err()
            .contains("source.tables is empty"));
        assert!(parse("[source]\ntables = [\"a.b.c\"]")
            .unwrap_err()
            .contains("source.tables: \"a.b.c\""));
        assert!(parse(&format!("{base}slot = \"Bad-Slot\""))
            .unwrap_err()
            .contains("source.slot = \"Bad-Slot\""));
        assert!(parse(&format!("{base}[kafka]\npartitions = 0"))
            .unwrap_err()
            .contains("kafka.partitions = 0"));
        assert!(parse(&format!("{base}[contracts]\n\"public.u\" = \"X\""))
            .unwrap_err()
            .contains("public.u is not in source.tables"));
        assert!(parse(&format!("{base}[service]\nmetrics_listen = \"x\""))
            .unwrap_err()
            .contains("metrics_listen"));
        let c = parse(base).unwrap();
        assert_eq!(
            (c.slot.as_str(), c.dead_letter_topic.as_str()),
            ("contrail", "contrail.cdc.dlq")
        );
    }
}
