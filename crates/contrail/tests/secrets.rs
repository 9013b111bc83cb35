//! No configuration prints a secret: every stage's configuration, the
//! registry server's and `contrail run`'s, parsed from the committed files
//! with every secret variable set (each way to log in, in turn), shows
//! none of them in its `Debug`, and database URLs show without their
//! passwords. Nothing here connects.

mod common;

use std::time::Duration;

use changes::testing::{assert_no_secret, secret_env, SECRET};
use changes::Env;

fn connectors(name: &str) -> std::path::PathBuf {
    common::project().join("connectors").join(name)
}

/// `secret_env` with other ways to log in: a bearer token for the
/// registry, an OAuth token for Snowflake, each holding the secret.
fn token_env() -> Env {
    let keep = |k: &str| {
        !matches!(
            k,
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO" | "SNOWFLAKE_PASSWORD" | "SNOWFLAKE_URL"
        )
    };
    let base = [
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        "SNOWFLAKE_PASSWORD",
        "SNOWFLAKE_URL",
        "DATABASE_URL",
    ]
    .iter()
    .chain(["OPENSKY_CLIENT_ID", "OPENSKY_CLIENT_SECRET"].iter())
    .chain(["KAFKA_PROPERTY_SASL_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"].iter())
    .chain(
        [
            "KAFKA_PROPERTY_SSL_KEY_PASSWORD",
            "KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET",
        ]
        .iter(),
    )
    .filter(|k| keep(k))
    .filter_map(|k| secret_env().var(k).map(|v| (k.to_string(), v)));
    Env::from_vars(base.chain([
        ("SCHEMA_REGISTRY_BEARER_AUTH_TOKEN".to_string(), SECRET.to_string()),
        ("SNOWFLAKE_TOKEN".to_string(), SECRET.to_string()),
        (
            "SNOWFLAKE_URL".to_string(),
            "https://u@xy12345.snowflakecomputing.com".to_string(),
        ),
    ]))
}

fn stage_configs(env: &Env) -> (cdc::CdcConfig, sink::SinkConfig, producer::ProducerConfig) {
    let cdc = cdc::CdcConfig::load(
        &connectors("cdc.toml"),
        &common::project(),
        cdc::ServiceDefaults {
            env: env.clone(),
            kafka_bootstrap_servers: Some("127.0.0.1:1".into()),
            schema_registry_url: Some("https://127.0.0.1:1".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let sink = sink::SinkConfig::load(
        &connectors("sink.toml"),
        sink::ServiceDefaults {
            env: env.clone(),
            kafka_bootstrap_servers: Some("127.0.0.1:1".into()),
            schema_registry_url: Some("https://127.0.0.1:1".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let producer = producer::ProducerConfig::load(
        Some(&connectors("producer.toml")),
        &producer::Overrides {
            target: Some("kafka".into()),
            ..Default::default()
        },
        producer::ServiceDefaults {
            env: env.clone(),
            kafka_bootstrap_servers: Some("127.0.0.1:1".into()),
            schema_registry_url: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        },
    )
    .unwrap();
    (cdc, sink, producer)
}

#[test]
fn no_configuration_prints_a_secret_whichever_way_it_logs_in() {
    for env in [secret_env(), token_env()] {
        let (cdc, sink, producer) = stage_configs(&env);
        assert_no_secret(&cdc);
        assert_no_secret(&sink);
        assert_no_secret(&producer);
        let run = pipeline::RunConfig {
            producer,
            cdc: cdc.clone(),
            sink,
            poll: Duration::from_millis(50),
            warmup: Duration::ZERO,
            drain_timeout: Duration::from_secs(1),
            start_timeout: Duration::from_secs(1),
            progress_every: Duration::from_secs(1),
        };
        assert_no_secret(&run);
        // The database URL shows, without its password.
        assert!(
            format!("{cdc:?}").contains("postgres://u:<redacted>@127.0.0.1:1/db"),
            "{cdc:?}"
        );
    }
}

#[test]
fn the_registry_servers_configuration_prints_no_secret() {
    let users = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(users.path(), format!("reader: {SECRET}, read\n")).unwrap();
    let env = Env::from_vars(
        [
            ("CONTRAIL_REGISTRY_BASIC_AUTH", format!("admin:{SECRET}")),
            ("CONTRAIL_REGISTRY_USERS_FILE", users.path().display().to_string()),
            (
                "SCHEMA_REGISTRY_DATABASE_URL",
                format!("postgres://registry:{SECRET}@127.0.0.1:1/r"),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let cfg = registry::ServerConfig::load(None, Some("0.0.0.0:8081"), None, &env, false).unwrap();
    assert!(cfg.auth.is_some());
    assert_no_secret(&cfg);
}
