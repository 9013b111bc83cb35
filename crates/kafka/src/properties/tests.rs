use super::*;

fn env(vars: &[(&str, &str)]) -> Env {
    Env::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn file(pairs: &[(&str, PropertyValue)]) -> BTreeMap<String, PropertyValue> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn text(s: &str) -> PropertyValue {
    PropertyValue::Text(s.into())
}

const REMOTE: &str = "broker-1.example.com:9096,broker-2.example.com:9096";

#[test]
fn env_names_map_to_properties_both_ways() {
    assert_eq!(property_name("SASL_MECHANISM"), "sasl.mechanism");
    assert_eq!(property_name("SSL_CA_LOCATION"), "ssl.ca.location");
    assert_eq!(property_name("A__B_C"), "a_b.c");
    assert_eq!(
        env_name("sasl.oauthbearer.client.secret"),
        "KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET"
    );
    assert_eq!(
        property_name(env_name("a_b.c").strip_prefix(ENV_PREFIX).unwrap()),
        "a_b.c"
    );
}

#[test]
fn scram_over_tls_from_file_and_environment() {
    let props = Properties::parse(
        file(&[
            ("security.protocol", text("SASL_SSL")),
            ("sasl.mechanism", text("SCRAM-SHA-512")),
            ("sasl.username", text("contrail")),
            ("socket.keepalive.enable", PropertyValue::Bool(true)),
            ("fetch.wait.max.ms", PropertyValue::Integer(50)),
        ]),
        &env(&[("KAFKA_PROPERTY_SASL_PASSWORD", "hunter2"), ("UNRELATED", "x")]),
        REMOTE,
    )
    .unwrap();
    assert_eq!(props.get("fetch.wait.max.ms"), Some("50"));
    assert_eq!(props.get("socket.keepalive.enable"), Some("true"));
    // The password is held, but as a secret: never in `get`, never printed.
    assert!(props.contains("sasl.password"));
    assert_eq!(props.get("sasl.password"), None);
    assert!(!format!("{props:?}").contains("hunter2"));
}

#[test]
fn a_secret_in_the_file_is_refused_with_the_variable_to_use() {
    let err = Properties::parse(file(&[("sasl.password", text("hunter2"))]), &Env::default(), REMOTE).unwrap_err();
    assert!(err.contains("kafka.properties.sasl.password is a secret"), "{err}");
    assert!(err.contains("KAFKA_PROPERTY_SASL_PASSWORD_FILE"), "{err}");
    assert!(!err.contains("hunter2"));
}

#[test]
fn a_secret_file_is_read_and_its_newline_dropped() {
    let dir = std::env::temp_dir().join(format!("contrail-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("password");
    std::fs::write(&path, "s3cret\n").unwrap();
    let props = Properties::parse(
        file(&[
            ("security.protocol", text("sasl_ssl")),
            ("sasl.mechanism", text("PLAIN")),
            ("sasl.username", text("API_KEY")),
        ]),
        &env(&[("KAFKA_PROPERTY_SASL_PASSWORD_FILE", path.to_str().unwrap())]),
        REMOTE,
    )
    .unwrap();
    assert_eq!(props.secret.get("sasl.password").map(Secret::expose), Some("s3cret"));
    let missing = Properties::parse(
        BTreeMap::new(),
        &env(&[("KAFKA_PROPERTY_SSL_KEY_PASSWORD_FILE", "/nonexistent/key-pass")]),
        REMOTE,
    )
    .unwrap_err();
    assert!(
        missing.contains("KAFKA_PROPERTY_SSL_KEY_PASSWORD_FILE: cannot read /nonexistent/key-pass"),
        "{missing}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_environment_wins_over_the_file() {
    let props = Properties::parse(
        file(&[("linger.ms", PropertyValue::Integer(5))]),
        &env(&[("KAFKA_PROPERTY_LINGER_MS", "20")]),
        REMOTE,
    )
    .unwrap();
    assert_eq!(props.get("linger.ms"), Some("20"));
}

#[test]
fn guarantees_cannot_be_weakened() {
    for (key, value) in [
        ("enable.idempotence", "false"),
        ("acks", "1"),
        ("auto.offset.reset", "latest"),
    ] {
        let err = Properties::parse(file(&[(key, text(value))]), &Env::default(), REMOTE).unwrap_err();
        assert!(
            err.contains(&format!("kafka.properties.{key}: {key} is managed by Contrail")),
            "{err}"
        );
    }
    let err = Properties::parse(
        BTreeMap::new(),
        &env(&[("KAFKA_PROPERTY_BOOTSTRAP_SERVERS", "x:1")]),
        REMOTE,
    )
    .unwrap_err();
    assert!(
        err.contains("KAFKA_PROPERTY_BOOTSTRAP_SERVERS: bootstrap.servers is managed"),
        "{err}"
    );
}

#[test]
fn sasl_needs_a_mechanism_and_its_credentials() {
    let proto = |m: Option<&str>| {
        let mut f = vec![("security.protocol", text("SASL_SSL"))];
        if let Some(m) = m {
            f.push(("sasl.mechanism", text(m)));
        }
        Properties::parse(file(&f), &Env::default(), REMOTE).unwrap_err()
    };
    assert!(proto(None).contains("security.protocol=SASL_SSL needs sasl.mechanism"));
    let scram = proto(Some("SCRAM-SHA-256"));
    assert!(
        scram.contains(
            "needs sasl.username (KAFKA_PROPERTY_SASL_USERNAME) and sasl.password (KAFKA_PROPERTY_SASL_PASSWORD)"
        ),
        "{scram}"
    );
    assert!(proto(Some("OAUTHBEARER")).contains("sasl.oauthbearer.method=oidc"));
    assert!(proto(Some("GSSAPI")).contains("not supported by this build"));
    assert!(proto(Some("DIGEST-MD5")).contains("expected PLAIN, SCRAM-SHA-256"));
}

#[test]
fn oidc_client_credentials_are_accepted_by_this_build() {
    // librdkafka refuses `sasl.oauthbearer.method=oidc` unless it was built
    // with libcurl: this checks the build as much as the parser.
    let props = Properties::parse(
        file(&[
            ("security.protocol", text("SASL_SSL")),
            ("sasl.mechanism", text("OAUTHBEARER")),
            ("sasl.oauthbearer.method", text("oidc")),
            ("sasl.oauthbearer.client.id", text("contrail")),
            (
                "sasl.oauthbearer.token.endpoint.url",
                text("https://idp.example.com/oauth2/token"),
            ),
            ("sasl.oauthbearer.scope", text("kafka")),
        ]),
        &env(&[("KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET", "idp-secret")]),
        REMOTE,
    );
    assert!(props.is_ok(), "{props:?}");
}

#[test]
fn tls_and_mtls_settings_are_accepted_by_this_build() {
    // `security.protocol=SSL` fails in librdkafka built without OpenSSL.
    let props = Properties::parse(
        file(&[
            ("security.protocol", text("SSL")),
            ("ssl.ca.location", text("/etc/ssl/certs/ca.pem")),
            ("ssl.certificate.location", text("/etc/contrail/client.pem")),
            ("ssl.key.location", text("/etc/contrail/client.key")),
        ]),
        &env(&[("KAFKA_PROPERTY_SSL_KEY_PASSWORD", "keypass")]),
        REMOTE,
    );
    assert!(props.is_ok(), "{props:?}");
}

#[test]
fn sasl_plaintext_is_for_this_machine_only() {
    let f = file(&[
        ("security.protocol", text("SASL_PLAINTEXT")),
        ("sasl.mechanism", text("PLAIN")),
        ("sasl.username", text("u")),
    ]);
    let e = env(&[("KAFKA_PROPERTY_SASL_PASSWORD", "p")]);
    let err = Properties::parse(f.clone(), &e, REMOTE).unwrap_err();
    assert!(
        err.contains("would send credentials unencrypted to broker-1.example.com"),
        "{err}"
    );
    for local in ["localhost:9092", "127.0.0.1:9092,[::1]:9093"] {
        assert!(Properties::parse(f.clone(), &e, local).is_ok(), "{local}");
    }
}

#[test]
fn librdkafka_names_a_bad_property_and_withholds_secret_values() {
    let err = Properties::parse(file(&[("no.such.property", text("1"))]), &Env::default(), REMOTE).unwrap_err();
    assert!(err.contains("no.such.property"), "{err}");
    let err = Properties::parse(file(&[("linger.ms", text("soon"))]), &Env::default(), REMOTE).unwrap_err();
    assert!(err.contains("linger.ms"), "{err}");
    let err = Properties::parse(file(&[("security.protocol", text("TLS"))]), &Env::default(), REMOTE).unwrap_err();
    assert!(err.contains("security.protocol=tls: expected PLAINTEXT, SSL"), "{err}");
}

#[test]
fn stage_overrides_reach_kafka_properties() {
    let e = env(&[
        ("KAFKA_PROPERTY_SASL_USERNAME", "shared"),
        ("CONTRAIL_SINK_KAFKA_PROPERTY_SASL_USERNAME", "sink-only"),
    ]);
    let sink = Properties::parse(BTreeMap::new(), &e.for_stage("SINK"), REMOTE).unwrap();
    let cdc = Properties::parse(BTreeMap::new(), &e.for_stage("CDC"), REMOTE).unwrap();
    assert_eq!(sink.get("sasl.username"), Some("sink-only"));
    assert_eq!(cdc.get("sasl.username"), Some("shared"));
}
