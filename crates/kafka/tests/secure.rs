//! Kafka over TLS and SASL, against the tests' own secure stack
//! (`contrail stack up --secure`, which `scripts/test.sh` runs): SCRAM over
//! SASL_SSL and mutual TLS work, and each way of getting security wrong
//! ends in an error that names the cluster and the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kafka::{KafkaConfig, KafkaIoError, Properties, PropertyValue, TopicSpec};

fn stack() -> stack::StackConfig {
    let mut s = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    s.secure = true;
    s
}

/// A client configured as a user would configure one: `KAFKA_PROPERTY_*`
/// variables, parsed and checked by [`Properties::parse`].
fn client(vars: &[(String, String)], file: &[(&str, &str)]) -> KafkaConfig {
    let env = changes::Env::from_vars(vars.iter().cloned());
    let bootstrap = env.var("KAFKA_BOOTSTRAP_SERVERS").unwrap();
    let file = file
        .iter()
        .map(|(k, v)| (k.to_string(), PropertyValue::Text(v.to_string())))
        .collect();
    KafkaConfig {
        properties: Properties::parse(file, &env, &bootstrap).unwrap(),
        bootstrap_servers: bootstrap,
        client_id: "secure-test".into(),
    }
}

fn scram_env() -> Vec<(String, String)> {
    stack().secure_env()
}

fn with(mut vars: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    vars.retain(|(k, _)| k != name);
    vars.push((name.into(), value.into()));
    vars
}

async fn create(cfg: &KafkaConfig, name: &str) -> Result<String, KafkaIoError> {
    let name = format!("{name}-{}", std::process::id());
    kafka::ensure_topics(
        cfg,
        &[TopicSpec {
            name: name.clone(),
            partitions: 1,
            replication: 1,
            config: Vec::new(),
        }],
    )
    .await
    .map(|()| name)
}

async fn write_and_count(cfg: &KafkaConfig, topic: &str) -> i64 {
    let producer = kafka::Producer::new(cfg, Duration::from_millis(1)).unwrap();
    for i in 0..10 {
        let value = format!("v{i}");
        producer
            .send(kafka::Record {
                topic,
                key: b"k",
                value: Some(value.as_bytes()),
                headers: &[],
            })
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    kafka::high_watermarks(cfg, topic)
        .unwrap()
        .iter()
        .map(|(_, high)| high)
        .sum()
}

#[tokio::test]
async fn scram_over_sasl_ssl_writes_and_reads() {
    let cfg = client(&scram_env(), &[]);
    let topic = create(&cfg, "secure-scram").await.unwrap();
    assert_eq!(write_and_count(&cfg, &topic).await, 10);
    // SCRAM-SHA-256 and PLAIN (Confluent Cloud's API keys) on the same listener.
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let cfg = client(&with(scram_env(), "KAFKA_PROPERTY_SASL_MECHANISM", mechanism), &[]);
        kafka::check_connection(&cfg, Duration::from_secs(30)).await.unwrap();
    }
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let s = stack();
    let tls = s.tls();
    let vars = vec![(
        "KAFKA_BOOTSTRAP_SERVERS".to_string(),
        format!("localhost:{}", s.kafka_mtls_port),
    )];
    let path = |p: PathBuf| p.display().to_string();
    let (ca, cert, key) = (path(tls.ca()), path(tls.client_cert()), path(tls.client_key()));
    let file = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
        ("broker.address.family", "v4"),
    ];
    let cfg = client(&vars, &file);
    let topic = create(&cfg, "secure-mtls").await.unwrap();
    assert_eq!(write_and_count(&cfg, &topic).await, 10);
    // Without the certificate the broker refuses the handshake. (librdkafka
    // reports the broker's alert as a transport failure, so it is not
    // classed as a security error; its reason still says what happened.)
    let cfg = client(&vars, &[file[0], file[1], file[4]]);
    let err = kafka::check_connection(&cfg, Duration::from_secs(5)).await.unwrap_err();
    assert!(err.to_string().contains("bad certificate"), "{err}");
}

fn security_error(err: KafkaIoError, servers: &str, reason: &str) {
    let text = err.to_string();
    assert!(matches!(err, KafkaIoError::Security { .. }), "{text}");
    assert!(err.is_fatal());
    assert!(
        text.contains(&format!("Kafka at {servers} refused the connection")),
        "{text}"
    );
    assert!(text.contains(reason), "{text}");
}

#[tokio::test]
async fn a_wrong_password_is_named_and_never_shown() {
    let vars = with(scram_env(), "KAFKA_PROPERTY_SASL_PASSWORD", "not-the-password-42");
    let vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k != "KAFKA_PROPERTY_SASL_PASSWORD_FILE")
        .collect();
    let cfg = client(&vars, &[]);
    let err = create(&cfg, "secure-wrong").await.unwrap_err();
    assert!(!err.to_string().contains("not-the-password-42"));
    assert!(!format!("{cfg:?}").contains("not-the-password-42"));
    security_error(
        err,
        &cfg.bootstrap_servers,
        "invalid credentials with SASL mechanism SCRAM-SHA-512",
    );
}

#[tokio::test]
async fn an_untrusted_ca_is_refused() {
    let dir = std::env::temp_dir().join(format!("contrail-other-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("openssl")
        .current_dir(&dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Some other CA",
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let vars = with(
        scram_env(),
        "KAFKA_PROPERTY_SSL_CA_LOCATION",
        dir.join("other.pem").to_str().unwrap(),
    );
    let cfg = client(&vars, &[]);
    let err = kafka::check_connection(&cfg, Duration::from_secs(30))
        .await
        .unwrap_err();
    security_error(err, &cfg.bootstrap_servers, "certificate verify failed");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_hostname_the_certificate_does_not_name_is_refused() {
    // The stack's certificate names `localhost` only; 127.0.0.1 reaches the
    // same listener under a name the certificate does not carry.
    let s = stack();
    let vars = with(
        scram_env(),
        "KAFKA_BOOTSTRAP_SERVERS",
        &format!("127.0.0.1:{}", s.kafka_sasl_port),
    );
    let cfg = client(&vars, &[]);
    let err = kafka::check_connection(&cfg, Duration::from_secs(30))
        .await
        .unwrap_err();
    security_error(err, &cfg.bootstrap_servers, "certificate verify failed");
}

#[tokio::test]
async fn plaintext_at_a_tls_listener_says_to_check_the_protocol() {
    let s = stack();
    let vars = vec![(
        "KAFKA_BOOTSTRAP_SERVERS".to_string(),
        format!("127.0.0.1:{}", s.kafka_sasl_port),
    )];
    let cfg = client(&vars, &[]);
    let err = kafka::check_connection(&cfg, Duration::from_secs(5)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KafkaIoError::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&format!("Kafka at 127.0.0.1:{} did not answer", s.kafka_sasl_port)),
        "{text}"
    );
    assert!(text.contains("security.protocol"), "{text}");
}

/// A stand-in for an OIDC provider's token endpoint: the client-credentials
/// grant (the client's id and secret by basic auth, as librdkafka sends
/// them), answered with an RS256 JWT signed by `key` (`openssl dgst`). The
/// broker, real Kafka, checks the signature against the stack's JWKS, the
/// issuer, the audience and the expiry.
fn token_endpoint(key: PathBuf, client: &'static str, secret: &'static str) -> String {
    let expected = format!("Basic {}", base64_std(format!("{client}:{secret}").as_bytes()));
    let url = stack::stand_in::serve(move |request| {
        if request.header("authorization") != Some(expected.as_str()) {
            return (401, r#"{"error":"invalid_client"}"#.to_string());
        }
        let token = jwt(&key, client);
        (
            200,
            format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":3600}}"#),
        )
    });
    format!("{url}/token")
}

fn base64_std(bytes: &[u8]) -> String {
    let url = stack::tls::base64url(bytes).replace('-', "+").replace('_', "/");
    let pad = (4 - url.len() % 4) % 4;
    url + &"=".repeat(pad)
}

/// An RS256 JWT for `subject`, as the broker expects (issuer, audience).
fn jwt(key: &Path, subject: &str) -> String {
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, stack::tls::OAUTH_KEY_ID);
    let claims = format!(
        r#"{{"sub":"{subject}","iss":"{}","aud":"{}","iat":{now},"exp":{},"scope":"kafka"}}"#,
        stack::tls::OAUTH_ISSUER,
        stack::tls::OAUTH_AUDIENCE,
        now + 3600
    );
    let input = format!(
        "{}.{}",
        stack::tls::base64url(header.as_bytes()),
        stack::tls::base64url(claims.as_bytes())
    );
    let mut sign = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sign.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = sign.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{input}.{}", stack::tls::base64url(&out.stdout))
}

fn oidc_env(token_url: &str) -> Vec<(String, String)> {
    let s = stack();
    [
        ("KAFKA_BOOTSTRAP_SERVERS", format!("localhost:{}", s.kafka_sasl_port)),
        ("KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL".into()),
        ("KAFKA_PROPERTY_SASL_MECHANISM", "OAUTHBEARER".into()),
        ("KAFKA_PROPERTY_SASL_OAUTHBEARER_METHOD", "oidc".into()),
        ("KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_ID", "contrail-app".into()),
        ("KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET", "app-secret-7".into()),
        ("KAFKA_PROPERTY_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL", token_url.into()),
        ("KAFKA_PROPERTY_SSL_CA_LOCATION", s.tls().ca().display().to_string()),
        ("KAFKA_PROPERTY_BROKER_ADDRESS_FAMILY", "v4".into()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

#[tokio::test]
async fn oidc_client_credentials_write_and_read() {
    let url = token_endpoint(stack().tls().oauth_key(), "contrail-app", "app-secret-7");
    let cfg = client(&oidc_env(&url), &[]);
    let topic = create(&cfg, "secure-oidc").await.unwrap();
    assert_eq!(write_and_count(&cfg, &topic).await, 10);
    assert!(!format!("{cfg:?}").contains("app-secret-7"));
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    stack::tls::make_rsa_key(&other, None).unwrap();
    let url = token_endpoint(other, "contrail-app", "app-secret-7");
    let cfg = client(&oidc_env(&url), &[]);
    let err = kafka::check_connection(&cfg, Duration::from_secs(30))
        .await
        .unwrap_err();
    security_error(err, &cfg.bootstrap_servers, "invalid_token");
}
