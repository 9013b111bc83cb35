//! The client against the tests' own secure registry (`contrail stack up
//! --secure`, which `scripts/test.sh` runs): HTTPS verified against the
//! stack's CA, basic auth with the writer and reader roles, and each way of
//! getting it wrong ending in a fatal error that names the registry and the
//! reason.

use std::path::Path;

use changes::{Class, Classified, Env};
use registry_client::{ClientError, RegistryClient, Security};
use stack::tls::RegistryUser;

fn stack() -> stack::StackConfig {
    let mut s = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    s.secure = true;
    s
}

/// A client configured as a stage is: `SCHEMA_REGISTRY_*` variables.
fn client(url: &str, vars: &[(&str, String)]) -> Result<RegistryClient, ClientError> {
    let env = Env::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let security = Security::from_env(&env).map_err(ClientError::Config)?;
    RegistryClient::with_security(url, &security)
}

fn as_user(user: RegistryUser) -> Vec<(&'static str, String)> {
    let tls = stack().tls();
    vec![
        (
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE",
            tls.registry_user_info(user).display().to_string(),
        ),
        ("SCHEMA_REGISTRY_SSL_CA_LOCATION", tls.ca().display().to_string()),
    ]
}

fn https() -> String {
    format!("https://localhost:{}", stack().registry_https_port)
}

fn schema(name: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","fields":[{{"name":"a","type":"long"}}]}}"#)
}

#[tokio::test]
async fn the_writer_registers_and_the_reader_reads_but_may_not_write() {
    let subject = format!("secure-{}-value", std::process::id());
    let writer = client(&https(), &as_user(RegistryUser::Writer)).unwrap();
    let id = writer.register(&subject, &schema("W")).await.unwrap();

    let reader = client(&https(), &as_user(RegistryUser::Reader)).unwrap();
    assert_eq!(reader.versions(&subject).await.unwrap()[0].id, id);
    let err = reader.register(&subject, &schema("W2")).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Rejected {
                status: 403,
                code: 40301,
                ..
            }
        ),
        "{err}"
    );
    let said = err.to_string();
    assert!(
        said.contains("User reader (role read)") && said.contains("needs the write role"),
        "{said}"
    );
    assert_eq!(err.class(), Class::Fatal, "retrying cannot grant a role");
}

#[tokio::test]
async fn a_wrong_password_or_none_is_refused_fatally() {
    let ca = (
        "SCHEMA_REGISTRY_SSL_CA_LOCATION",
        stack().tls().ca().display().to_string(),
    );
    let wrong = client(
        &https(),
        &[
            ("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "reader:not-it".into()),
            ca.clone(),
        ],
    )
    .unwrap();
    let err = wrong.versions("any-value").await.unwrap_err();
    assert!(matches!(err, ClientError::Rejected { status: 401, .. }), "{err}");
    assert_eq!(err.class(), Class::Fatal);
    let anonymous = client(&https(), &[ca]).unwrap();
    assert!(matches!(
        anonymous.versions("any-value").await.unwrap_err(),
        ClientError::Rejected { status: 401, .. }
    ));
}

#[tokio::test]
async fn an_untrusted_ca_and_a_wrong_host_name_fail_naming_the_reason() {
    // The system's roots do not hold the stack's CA.
    let vars = as_user(RegistryUser::Reader);
    let untrusted = client(&https(), &vars[..1]).unwrap();
    let err = untrusted.versions("any-value").await.unwrap_err();
    assert!(matches!(&err, ClientError::Tls { .. }), "{err}");
    let said = err.to_string();
    assert!(said.contains("localhost") && said.contains("UnknownIssuer"), "{said}");
    assert_eq!(err.class(), Class::Fatal);

    // The certificate names `localhost`, not 127.0.0.1.
    let by_address = format!("https://127.0.0.1:{}", stack().registry_https_port);
    let err = client(&by_address, &vars)
        .unwrap()
        .versions("any-value")
        .await
        .unwrap_err();
    let said = err.to_string();
    assert!(
        matches!(&err, ClientError::Tls { .. }) && said.contains("127.0.0.1") && said.contains("not valid for name"),
        "{said}"
    );
}

#[tokio::test]
async fn credentials_are_never_sent_in_clear_to_another_host() {
    let vars = as_user(RegistryUser::Writer);
    let err = client("http://registry.example.com:8081", &vars)
        .unwrap_err()
        .to_string();
    assert!(err.contains("in clear to registry.example.com"), "{err}");
}
