//! `connectors/sink.toml`: which topics, which warehouse, what batches.
//! Unknown keys are refused and values checked before anything connects.
//! The Snowflake URL and credentials come from the environment, as do
//! `KAFKA_BOOTSTRAP_SERVERS` and `SCHEMA_REGISTRY_URL`; secrets are never
//! printed:
//!
//! - `SNOWFLAKE_URL`: `https://<user>@<account>.snowflakecomputing.com`;
//! - key-pair authentication (production): `SNOWFLAKE_PRIVATE_KEY_PATH`, a
//!   PEM file, or `SNOWFLAKE_PRIVATE_KEY`, the PEM itself; an encrypted
//!   PKCS#8 key with `SNOWFLAKE_PRIVATE_KEY_PASSPHRASE` (or `_FILE`). The
//!   key is read, decrypted and checked here, before anything connects;
//! - otherwise a password: `SNOWFLAKE_PASSWORD`, or the URL's
//!   (`https://<user>:<password>@…`).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::SinkError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: RawSource,
    #[serde(default)]
    snowflake: RawSnowflake,
    #[serde(default)]
    batch: RawBatch,
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
struct RawService {
    metrics_listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    topics: Vec<String>,
    group_id: Option<String>,
    dead_letter_topic: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnowflake {
    account: Option<String>,
    warehouse: Option<String>,
    role: Option<String>,
    database: Option<String>,
    schema: Option<String>,
    create_schema: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    max_rows: Option<usize>,
    max_ms: Option<u64>,
    max_bytes: Option<usize>,
}

/// Service addresses when the environment names none (the local stack's).
#[derive(Debug, Clone, Default)]
pub struct ServiceDefaults {
    pub snowflake_url: Option<String>,
    pub kafka_bootstrap_servers: Option<String>,
    pub schema_registry_url: Option<String>,
    /// The process environment, given as a value: parsing never reads it
    /// itself.
    pub env: changes::Env,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub topics: Vec<String>,
    pub group_id: String,
    pub dead_letter_topic: String,
    pub snowflake: snowflake::SnowflakeConfig,
    pub database: String,
    pub schema: String,
    /// Create the database and schema when missing (local use; in production
    /// `snowflake/setup.sql` does it with the right grants).
    pub create_schema: bool,
    pub max_rows: usize,
    pub max_wait: Duration,
    /// The most staged JSON one load binds: a batch larger than this is
    /// loaded in parts. Snowflake takes a bound value of at most 16 MB.
    pub max_bytes: usize,
    pub kafka: kafka::KafkaConfig,
    pub registry_url: String,
    /// The registry's credentials and TLS (Confluent's settings).
    pub registry: registry_client::Security,
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Snowflake's limit on one bound value (16 MB): the staged JSON is one.
pub const MAX_BIND_BYTES: usize = 16 * 1024 * 1024;
/// Half of it by default, leaving room for the JSON's growth in transit.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

fn bad(m: impl Into<String>) -> SinkError {
    SinkError::Config(m.into())
}

/// An unquoted Snowflake identifier (it is upper-cased and quoted in SQL).
fn identifier(key: &str, s: &str) -> Result<String, SinkError> {
    if s.is_empty() || s.len() > 255 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(format!("{key} = {s:?}: use letters, digits and underscores")));
    }
    Ok(s.to_uppercase())
}

impl SinkConfig {
    /// The sink's schema, quoted: `"DATABASE"."SCHEMA"`.
    pub fn qualifier(&self) -> String {
        format!(
            "{}.{}",
            snowflake::quote_ident(&self.database),
            snowflake::quote_ident(&self.schema)
        )
    }

    pub fn load(file: &Path, defaults: ServiceDefaults) -> Result<SinkConfig, SinkError> {
        let text = std::fs::read_to_string(file).map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
        Self::parse(&text, defaults).map_err(|e| match e {
            SinkError::Config(m) => bad(format!("{}: {m}", file.display())),
            other => other,
        })
    }

    fn parse(text: &str, defaults: ServiceDefaults) -> Result<SinkConfig, SinkError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let dead_letter_topic = raw.source.checked_topics()?;
        let env = &defaults.env.for_stage("SINK");
        let env_or = |name: &str, default: Option<String>| {
            env.var(name)
                .or(default)
                .ok_or_else(|| bad(format!("{name} is not set")))
        };
        let url = env_or("SNOWFLAKE_URL", defaults.snowflake_url.clone())?;
        let parsed = reqwest_url(&url)?;
        let auth = auth_from(env, parsed.password.clone())?;
        let user = parsed
            .user
            .ok_or_else(|| bad("SNOWFLAKE_URL names no user (https://<user>@<account>…)"))?;
        let database = identifier(
            "snowflake.database",
            raw.snowflake.database.as_deref().unwrap_or("CONTRAIL"),
        )?;
        let schema = identifier("snowflake.schema", raw.snowflake.schema.as_deref().unwrap_or("FLIGHTS"))?;
        let (max_rows, max_wait, max_bytes) = raw.batch.checked()?;
        let metrics_listen = changes::metrics_listen(raw.service.metrics_listen.as_deref()).map_err(bad)?;
        let bootstrap_servers = env_or("KAFKA_BOOTSTRAP_SERVERS", defaults.kafka_bootstrap_servers)?;
        Ok(SinkConfig {
            topics: raw.source.topics,
            group_id: raw.source.group_id.unwrap_or_else(|| "contrail-sink".into()),
            dead_letter_topic,
            snowflake: snowflake::SnowflakeConfig {
                ca: env
                    .var("SNOWFLAKE_SSL_CA_LOCATION")
                    .filter(|v| !v.is_empty())
                    .map(Into::into),
                url: parsed.base,
                account: raw.snowflake.account.unwrap_or_else(|| "local".into()),
                user,
                auth,
                warehouse: raw.snowflake.warehouse,
                role: raw.snowflake.role,
                database: Some(database.clone()),
                schema: Some(schema.clone()),
            },
            database,
            schema,
            create_schema: raw.snowflake.create_schema.unwrap_or(false),
            max_rows,
            max_wait,
            max_bytes,
            kafka: kafka::KafkaConfig {
                properties: kafka::Properties::parse(raw.kafka.properties, env, &bootstrap_servers).map_err(bad)?,
                bootstrap_servers,
                client_id: "contrail-sink".into(),
            },
            registry_url: env_or("SCHEMA_REGISTRY_URL", defaults.schema_registry_url)?,
            registry: registry_client::Security::from_env(env).map_err(bad)?,
            metrics_listen,
        })
    }
}

impl RawSource {
    /// Checks the topics read, and returns the dead-letter topic.
    fn checked_topics(&self) -> Result<String, SinkError> {
        if self.topics.is_empty() {
            return Err(bad("source.topics is empty: name the CDC topics to load"));
        }
        for t in &self.topics {
            changes::check_topic_name(t).map_err(|why| bad(format!("source.topics: {t:?}: {why}")))?;
            if t.split('.').count() < 2 {
                return Err(bad(format!(
                    "source.topics: {t:?} is not a CDC topic (<prefix>.<schema>.<table>)"
                )));
            }
        }
        let dead_letter_topic = self
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| "contrail.sink.dlq".into());
        changes::check_topic_name(&dead_letter_topic)
            .map_err(|why| bad(format!("source.dead_letter_topic = {dead_letter_topic:?}: {why}")))?;
        if self.topics.contains(&dead_letter_topic) {
            return Err(bad(format!(
                "source.dead_letter_topic = {dead_letter_topic:?} is also in source.topics"
            )));
        }
        Ok(dead_letter_topic)
    }
}

impl RawBatch {
    /// Rows, wait and bytes of a batch, within their bounds.
    fn checked(&self) -> Result<(usize, Duration, usize), SinkError> {
        let max_rows = self.max_rows.unwrap_or(10_000);
        if !(1..=1_000_000).contains(&max_rows) {
            return Err(bad(format!("batch.max_rows = {max_rows}: expected 1 to 1000000")));
        }
        let max_ms = self.max_ms.unwrap_or(200);
        if !(1..=60_000).contains(&max_ms) {
            return Err(bad(format!("batch.max_ms = {max_ms}: expected 1 to 60000")));
        }
        let max_bytes = self.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if !(1024..=MAX_BIND_BYTES).contains(&max_bytes) {
            return Err(bad(format!(
                "batch.max_bytes = {max_bytes}: expected 1024 to {MAX_BIND_BYTES} (Snowflake's limit on a bound value)"
            )));
        }
        Ok((max_rows, Duration::from_millis(max_ms), max_bytes))
    }
}

/// One key pair from `<prefix>_PATH` (a PEM file) or `<prefix>` (the PEM
/// itself), decrypted with `<prefix>_PASSPHRASE` (or its `_FILE`).
fn key_pair(env: &changes::Env, prefix: &str) -> Result<Option<snowflake::keypair::KeyPair>, SinkError> {
    let path_var = format!("{prefix}_PATH");
    let pem = match (
        env.var(&path_var).filter(|p| !p.is_empty()),
        env.var(prefix).filter(|p| !p.is_empty()),
    ) {
        (Some(_), Some(_)) => return Err(bad(format!("both {path_var} and {prefix} are set: keep one"))),
        (Some(path), None) => std::fs::read_to_string(&path).map_err(|e| bad(format!("{path_var}={path}: {e}")))?,
        (None, Some(pem)) => pem,
        (None, None) => return Ok(None),
    };
    let passphrase = env.secret(&format!("{prefix}_PASSPHRASE")).map_err(bad)?;
    snowflake::keypair::KeyPair::from_pem_with(&pem, passphrase.as_ref())
        .map(Some)
        .map_err(|e| bad(format!("Snowflake key-pair authentication ({prefix}): {e}")))
}

/// Key pairs (the first, and a second during a rotation), else an OAuth
/// token, else the password; two of them at once is refused.
fn auth_from(env: &changes::Env, url_password: Option<String>) -> Result<snowflake::Auth, SinkError> {
    let first = key_pair(env, "SNOWFLAKE_PRIVATE_KEY")?;
    let second = key_pair(env, "SNOWFLAKE_PRIVATE_KEY_2")?;
    // Not `Env::secret`: the file is read again at each login, not once here.
    let token = match (env.var("SNOWFLAKE_TOKEN"), env.var("SNOWFLAKE_TOKEN_FILE")) {
        (Some(_), Some(_)) => return Err(bad("both SNOWFLAKE_TOKEN and SNOWFLAKE_TOKEN_FILE are set: keep one")),
        (Some(t), None) => Some(snowflake::OAuthToken::Static(changes::Secret::new(t))),
        (None, Some(path)) => {
            std::fs::metadata(&path).map_err(|e| bad(format!("SNOWFLAKE_TOKEN_FILE={path}: {e}")))?;
            Some(snowflake::OAuthToken::File(path.into()))
        }
        (None, None) => None,
    };
    let password = env.var("SNOWFLAKE_PASSWORD").or(url_password);
    match (first, second, token) {
        (None, Some(_), _) => Err(bad(
            "SNOWFLAKE_PRIVATE_KEY_2 is a rotation's second key: set SNOWFLAKE_PRIVATE_KEY(_PATH) too",
        )),
        (Some(_), _, Some(_)) => Err(bad(
            "both a key pair and SNOWFLAKE_TOKEN are set: choose one way to log in",
        )),
        (Some(a), b, None) => Ok(snowflake::Auth::KeyPair(
            std::iter::once(a).chain(b).map(std::sync::Arc::new).collect(),
        )),
        (None, None, Some(_)) if password.is_some() => Err(bad(
            "both SNOWFLAKE_TOKEN and a password (SNOWFLAKE_PASSWORD or the URL's) are set: choose one way to log in",
        )),
        (None, None, Some(t)) => Ok(snowflake::Auth::OAuth(t)),
        (None, None, None) => Ok(snowflake::Auth::Password(changes::Secret::new(
            password.unwrap_or_default(),
        ))),
    }
}

struct UrlParts {
    base: String,
    user: Option<String>,
    password: Option<String>,
}

/// Splits `scheme://user:password@host:port` into the base URL and credentials.
fn reqwest_url(url: &str) -> Result<UrlParts, SinkError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("SNOWFLAKE_URL is not a URL (scheme://…)"))?;
    let (userinfo, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(user.to_string()), Some(pw.to_string())),
            None => (Some(u.to_string()), None),
        },
    };
    let host = host.trim_end_matches('/');
    match scheme {
        "https" => {}
        "http" if changes::is_loopback_host(host) => {}
        "http" => {
            return Err(bad(format!(
                "SNOWFLAKE_URL is http:// to {host}: credentials would cross the network unencrypted; use https://"
            )))
        }
        other => {
            return Err(bad(format!(
                "SNOWFLAKE_URL scheme {other}: expected https (or http to this machine)"
            )))
        }
    }
    Ok(UrlParts {
        base: format!("{scheme}://{host}"),
        user,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `connectors/examples/snowflake-keypair.env`, with the mounted
    /// secrets it names made here: an encrypted key and its passphrase.
    #[test]
    fn the_example_key_pair_configuration_is_valid() {
        let dir = std::env::temp_dir().join(format!("contrail-sink-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        openssl(&["genrsa", "-out", "k.pem", "2048"]);
        openssl(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes256",
            "-in",
            "k.pem",
            "-out",
            "k.p8",
            "-passout",
            "pass:example pass",
        ]);
        std::fs::write(dir.join("pass"), "example pass\n").unwrap();
        let text = include_str!("../../../connectors/examples/snowflake-keypair.env");
        let env = changes::Env::from_vars(
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| l.split_once('=').unwrap())
                .map(|(k, v)| {
                    let v = match k {
                        "SNOWFLAKE_PRIVATE_KEY_PATH" => dir.join("k.p8").display().to_string(),
                        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE_FILE" => dir.join("pass").display().to_string(),
                        _ => v.to_string(),
                    };
                    (k.to_string(), v)
                }),
        );
        let c = SinkConfig::parse(
            include_str!("../../../connectors/sink.toml"),
            ServiceDefaults { env, ..defaults() },
        )
        .unwrap();
        assert!(matches!(c.snowflake.auth, snowflake::Auth::KeyPair(_)));
        assert_eq!(c.snowflake.user, "CONTRAIL_SINK");
        assert!(!format!("{c:?}").contains("example pass"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn credentials_go_over_https_unless_the_warehouse_is_this_machine() {
        for ok in [
            "https://u@xy12345.snowflakecomputing.com",
            "http://u:p@127.0.0.1:8085",
            "http://u@localhost",
            "http://u@[::1]:1",
        ] {
            assert!(reqwest_url(ok).is_ok(), "{ok}");
        }
        let err = reqwest_url("http://u:p@xy12345.snowflakecomputing.com")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("http:// to xy12345.snowflakecomputing.com"), "{err}");
        assert!(!err.contains(":p@"), "{err}");
        assert!(reqwest_url("ftp://u@h").is_err());
    }

    fn defaults() -> ServiceDefaults {
        ServiceDefaults {
            snowflake_url: Some("http://u:secret@127.0.0.1:1".into()),
            kafka_bootstrap_servers: Some("127.0.0.1:2".into()),
            schema_registry_url: Some("http://127.0.0.1:3".into()),
            env: changes::Env::default(),
        }
    }

    #[test]
    fn the_committed_connector_config_is_valid_and_hides_the_password() {
        let c = SinkConfig::parse(include_str!("../../../connectors/sink.toml"), defaults()).unwrap();
        assert_eq!(c.topics, ["contrail.public.flight_state"]);
        assert!(!format!("{c:?}").contains("secret"));
    }

    /// Every secret the environment hands the configuration stays out of
    /// its `Debug`.
    #[test]
    fn no_secret_is_printed() {
        let env = changes::testing::secret_env();
        let c = SinkConfig::parse(
            "[source]\ntopics = [\"p.public.t\"]\n",
            ServiceDefaults { env, ..defaults() },
        )
        .unwrap();
        let auth = registry_client::Auth::Basic(changes::Secret::new("reg:hunter2"));
        assert_eq!(c.registry.auth, auth, "the registry's credentials are read");
        changes::testing::assert_no_secret(&c);
    }

    #[test]
    fn a_sink_override_beats_the_shared_variable() {
        let env = changes::Env::from_vars(
            [
                ("SCHEMA_REGISTRY_URL", "http://shared:8081"),
                ("CONTRAIL_SINK_SCHEMA_REGISTRY_URL", "http://sink:8081"),
                ("CONTRAIL_CDC_KAFKA_BOOTSTRAP_SERVERS", "cdc:9092"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let c = SinkConfig::parse(
            "[source]\ntopics = [\"p.public.t\"]\n",
            ServiceDefaults { env, ..defaults() },
        )
        .unwrap();
        assert_eq!(c.registry_url, "http://sink:8081");
        assert_eq!(
            c.kafka.bootstrap_servers, "127.0.0.1:2",
            "another stage's override does not apply"
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = |t: &str| SinkConfig::parse(t, defaults()).unwrap_err().to_string();
        assert!(e("[source]\ntopics = []").contains("source.topics is empty"));
        assert!(e("[source]\ntopics = [\"x\"]").contains("not a CDC topic"));
        assert!(e("[source]\ntopics = [\"a.b\"]\n[batch]\nmax_rows = 0").contains("batch.max_rows = 0"));
        assert!(e("[source]\ntopics = [\"a.b\"]\n[batch]\nmax_bytes = 99999999").contains("batch.max_bytes"));
        assert!(e("[source]\ntopics = [\"a.b c\"]").contains("may not be in a topic name"));
        assert!(e("[source]\ntopics = [\"a.b\"]\ndead_letter_topic = \"a.b\"").contains("also in source.topics"));
        assert!(e("[source]\ntopics = [\"a.b\"]\n[snowflake]\ndatabase = \"x y\"").contains("snowflake.database"));
        assert!(e("[source]\ntopics = [\"a.b\"]\nextra = 1").contains("unknown field"));
    }

    fn vars(pairs: &[(&str, &str)]) -> changes::Env {
        changes::Env::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn credentials_prefer_the_key_and_say_what_is_wrong_with_it() {
        assert!(matches!(
            auth_from(&vars(&[]), Some("pw".into())).unwrap(),
            snowflake::Auth::Password(p) if p.expose() == "pw"
        ));
        let e = |pairs: &[(&str, &str)]| auth_from(&vars(pairs), Some("pw".into())).unwrap_err().to_string();
        let path = e(&[("SNOWFLAKE_PRIVATE_KEY_PATH", "/nonexistent/key.p8")]);
        assert!(
            path.contains("SNOWFLAKE_PRIVATE_KEY_PATH=/nonexistent/key.p8"),
            "{path}"
        );
        let pem = e(&[("SNOWFLAKE_PRIVATE_KEY", "not a key")]);
        assert!(
            pem.contains("(SNOWFLAKE_PRIVATE_KEY): private key: no PEM block"),
            "{pem}"
        );
        assert!(e(&[("SNOWFLAKE_PRIVATE_KEY_PATH", "a"), ("SNOWFLAKE_PRIVATE_KEY", "b")]).contains("keep one"));
        let second_alone = e(&[("SNOWFLAKE_PRIVATE_KEY_2", "not a key")]);
        assert!(second_alone.contains("(SNOWFLAKE_PRIVATE_KEY_2)"), "{second_alone}");
    }

    #[test]
    fn an_oauth_token_by_value_or_file_and_never_beside_a_password() {
        let token = vars(&[("SNOWFLAKE_TOKEN", "hunter2")]);
        let auth = auth_from(&token, None).unwrap();
        assert!(matches!(&auth, snowflake::Auth::OAuth(snowflake::OAuthToken::Static(t)) if t.expose() == "hunter2"));
        assert!(!format!("{auth:?}").contains("hunter2"));
        let both = auth_from(&token, Some("pw".into())).unwrap_err().to_string();
        assert!(both.contains("choose one way to log in"), "{both}");
        let missing = auth_from(&vars(&[("SNOWFLAKE_TOKEN_FILE", "/nonexistent/token")]), None)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("SNOWFLAKE_TOKEN_FILE=/nonexistent/token"), "{missing}");
    }
}
