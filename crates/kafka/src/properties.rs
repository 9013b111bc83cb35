//! librdkafka properties passed through from the user, the way Kafka
//! Connect passes `producer.*` and `consumer.*` through: a
//! `[kafka.properties]` table in a stage's config file, and
//! `KAFKA_PROPERTY_*` environment variables (`KAFKA_PROPERTY_SASL_MECHANISM`
//! is `sasl.mechanism`; `__` stands for a literal `_`). A variable wins over
//! the file.
//!
//! Secrets ([`SECRET_KEYS`]) never come from a file that may be committed:
//! they are refused there, and read from `KAFKA_PROPERTY_<NAME>` or from the
//! file that `KAFKA_PROPERTY_<NAME>_FILE` names (a mounted Kubernetes or
//! Docker secret). They are held as [`changes::Secret`], so no `Debug` or
//! log line prints them.
//!
//! The keys that carry Contrail's guarantees ([`MANAGED_KEYS`]: idempotence,
//! `acks`, explicit offsets) are refused, so a property can tune a client
//! but never weaken it. Everything is checked before any client exists:
//! the security settings for coherence (a SASL protocol has a mechanism and
//! its credentials, credentials never cross a plaintext link to another
//! host), then every property by librdkafka's own parser, which connects to
//! nothing.

use std::collections::BTreeMap;
use std::path::Path;

use changes::{Env, Secret};
use rdkafka::config::ClientConfig;

/// Properties whose values are credentials.
pub const SECRET_KEYS: [&str; 6] = [
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
];

/// Properties each stage sets itself, and why a user may not.
pub const MANAGED_KEYS: [(&str, &str); 11] = [
    ("bootstrap.servers", "set KAFKA_BOOTSTRAP_SERVERS instead"),
    ("client.id", "each stage names its own client"),
    ("enable.idempotence", "the producer is always idempotent"),
    ("acks", "the producer always waits for all in-sync replicas"),
    (
        "transactional.id",
        "Contrail's producers are idempotent, not transactional",
    ),
    ("group.id", "set the sink's source.group_id instead"),
    (
        "enable.auto.commit",
        "positions are committed only after the data is durable",
    ),
    (
        "enable.auto.offset.store",
        "positions are stored only after the data is durable",
    ),
    (
        "auto.offset.reset",
        "a lost position stops the stage rather than skipping data",
    ),
    ("isolation.level", "the sink reads committed records only"),
    ("statistics.interval.ms", "the consumer-lag metric depends on it"),
];

/// A property value as a TOML file may write it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Text(String),
    Integer(i64),
    Bool(bool),
}

impl PropertyValue {
    fn into_text(self) -> String {
        match self {
            PropertyValue::Text(s) => s,
            PropertyValue::Integer(i) => i.to_string(),
            PropertyValue::Bool(b) => b.to_string(),
        }
    }
}

/// The user's properties, checked: plain ones and secrets apart.
#[derive(Clone, Default, PartialEq)]
pub struct Properties {
    plain: BTreeMap<String, String>,
    secret: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Properties")
            .field("plain", &self.plain)
            .field("redacted", &self.secret.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Properties {
    /// Reads `file` (the config file's `[kafka.properties]`, whose keys the
    /// error names as `kafka.properties.KEY`) and the `KAFKA_PROPERTY_*`
    /// variables of `env`, and checks them against `bootstrap_servers`.
    pub fn parse(
        file: BTreeMap<String, PropertyValue>,
        env: &Env,
        bootstrap_servers: &str,
    ) -> Result<Properties, String> {
        let mut props = Properties::default();
        for (key, value) in file {
            let key = key.to_ascii_lowercase();
            if SECRET_KEYS.contains(&key.as_str()) {
                let var = env_name(&key);
                return Err(format!(
                    "kafka.properties.{key} is a secret and may not be written in a config file: \
                     set {var}, or {var}_FILE to a file holding it"
                ));
            }
            props.insert(&format!("kafka.properties.{key}"), key, value.into_text())?;
        }
        for (name, value) in env.prefixed(ENV_PREFIX) {
            if let Some(base) = name.strip_suffix("_FILE") {
                let key = property_name(base);
                let value = changes::read_secret_file(&format!("{ENV_PREFIX}{name}"), Path::new(&value))?;
                props.insert(&format!("{ENV_PREFIX}{name}"), key, value)?;
            } else {
                props.insert(&format!("{ENV_PREFIX}{name}"), property_name(&name), value)?;
            }
        }
        check_security(&props, bootstrap_servers)?;
        props.check_with_librdkafka()?;
        Ok(props)
    }

    /// Plain properties, for callers that tune by them (message sizes).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.plain.get(key).map(String::as_str)
    }

    /// Whether `key` is set, plain or secret.
    pub fn contains(&self, key: &str) -> bool {
        self.plain.contains_key(key) || self.secret.contains_key(key)
    }

    /// The names of every property set, for logs.
    pub fn names(&self) -> Vec<&str> {
        self.plain
            .keys()
            .chain(self.secret.keys())
            .map(String::as_str)
            .collect()
    }

    /// Sets a plain property (tests and benches tune clients with it).
    pub fn with(mut self, key: &str, value: &str) -> Properties {
        self.plain.insert(key.into(), value.into());
        self
    }

    pub(crate) fn apply(&self, c: &mut ClientConfig) {
        for (k, v) in &self.plain {
            c.set(k, v);
        }
        for (k, v) in &self.secret {
            c.set(k, v.expose());
        }
    }

    fn insert(&mut self, origin: &str, key: String, value: String) -> Result<(), String> {
        if let Some((_, why)) = MANAGED_KEYS.iter().find(|(k, _)| *k == key) {
            return Err(format!("{origin}: {key} is managed by Contrail ({why})"));
        }
        if SECRET_KEYS.contains(&key.as_str()) {
            self.plain.remove(&key);
            self.secret.insert(key, Secret::new(value));
        } else {
            self.plain.insert(key, value);
        }
        Ok(())
    }

    /// librdkafka's own check of every name and value: `rd_kafka_conf_set`
    /// refuses unknown properties, bad values and features this build
    /// lacks, without connecting.
    fn check_with_librdkafka(&self) -> Result<(), String> {
        let mut c = ClientConfig::new();
        self.apply(&mut c);
        match c.create_native_config() {
            Ok(_) => Ok(()),
            // librdkafka's description quotes the value: keep it for plain
            // properties, never for a secret.
            Err(rdkafka::error::KafkaError::ClientConfig(_, desc, key, _)) => {
                if SECRET_KEYS.contains(&key.as_str()) {
                    Err(format!(
                        "Kafka property {key} is not valid for librdkafka (value withheld)"
                    ))
                } else {
                    Err(format!("Kafka property {key} is not valid for librdkafka: {desc}"))
                }
            }
            Err(other) => Err(format!("Kafka properties are not valid for librdkafka: {other}")),
        }
    }

    fn lower(&self, key: &str) -> Option<String> {
        self.plain.get(key).map(|v| v.to_ascii_lowercase())
    }
}

const ENV_PREFIX: &str = "KAFKA_PROPERTY_";

/// `SASL_MECHANISM` → `sasl.mechanism`; `__` is a literal `_`.
fn property_name(env_suffix: &str) -> String {
    env_suffix
        .to_ascii_lowercase()
        .split("__")
        .map(|part| part.replace('_', "."))
        .collect::<Vec<_>>()
        .join("_")
}

/// `sasl.password` → `KAFKA_PROPERTY_SASL_PASSWORD`.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('_', "__").replace('.', "_").to_ascii_uppercase()
    )
}

/// The security settings, checked for coherence before librdkafka sees
/// them, with errors that say what to set.
fn check_security(props: &Properties, bootstrap_servers: &str) -> Result<(), String> {
    let protocol = props.lower("security.protocol").unwrap_or_else(|| "plaintext".into());
    let sasl = match protocol.as_str() {
        "plaintext" | "ssl" => false,
        "sasl_ssl" => true,
        "sasl_plaintext" => {
            if !all_loopback(bootstrap_servers) {
                return Err(format!(
                    "security.protocol=SASL_PLAINTEXT would send credentials unencrypted to {bootstrap_servers}: \
                     use SASL_SSL (SASL_PLAINTEXT is for a broker on this machine only)"
                ));
            }
            true
        }
        other => {
            return Err(format!(
                "security.protocol={other}: expected PLAINTEXT, SSL, SASL_SSL or SASL_PLAINTEXT"
            ))
        }
    };
    if !sasl {
        return Ok(());
    }
    let mechanism = props
        .plain
        .get("sasl.mechanism")
        .or_else(|| props.plain.get("sasl.mechanisms"))
        .map(|m| m.to_ascii_uppercase())
        .ok_or_else(|| {
            format!(
                "security.protocol={} needs sasl.mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
                protocol.to_ascii_uppercase()
            )
        })?;
    let needs = |keys: &[&str]| -> Result<(), String> {
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !props.contains(k))
            .map(|k| format!("{k} ({})", env_name(k)))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("sasl.mechanism={mechanism} needs {}", missing.join(" and ")))
        }
    };
    match mechanism.as_str() {
        "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => needs(&["sasl.username", "sasl.password"]),
        "OAUTHBEARER" => match props.lower("sasl.oauthbearer.method").as_deref() {
            Some("oidc") => needs(&[
                "sasl.oauthbearer.client.id",
                "sasl.oauthbearer.client.secret",
                "sasl.oauthbearer.token.endpoint.url",
            ]),
            _ if props.lower("enable.sasl.oauthbearer.unsecure.jwt").as_deref() == Some("true") => Ok(()),
            _ => Err(
                "sasl.mechanism=OAUTHBEARER needs sasl.oauthbearer.method=oidc with a client id, \
                      secret and token endpoint (unsigned test tokens need enable.sasl.oauthbearer.unsecure.jwt=true)"
                    .into(),
            ),
        },
        "GSSAPI" => Err("sasl.mechanism=GSSAPI (Kerberos) is not supported by this build: \
                         use SCRAM, PLAIN or OAUTHBEARER"
            .into()),
        other => Err(format!(
            "sasl.mechanism={other}: expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
        )),
    }
}

/// Whether every `host:port` in a bootstrap list is this machine.
fn all_loopback(bootstrap_servers: &str) -> bool {
    bootstrap_servers
        .split(',')
        .map(str::trim)
        .all(changes::is_loopback_host)
}

#[cfg(test)]
mod tests;
