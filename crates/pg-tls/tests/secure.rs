//! TLS to the tests' own secure stack's PostgreSQL (`ssl=on`, a certificate
//! for `localhost` from the stack's CA): each `sslmode` does what libpq
//! says, channel binding is used, and a wrong CA or host name fails with an
//! error that names the host and the reason.

use std::path::Path;

use pg_tls::{PgTlsError, PgUrl};

fn stack() -> stack::StackConfig {
    let mut s = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    s.secure = true;
    s
}

/// The stack's database at `host`, with these settings.
fn url(host: &str, settings: &str) -> String {
    let s = stack();
    format!(
        "postgres://{}:{}@{host}:{}/{}?{settings}",
        stack::PG_USER,
        stack::PG_PASSWORD,
        s.pg_port,
        stack::PG_DATABASE
    )
}

fn ca() -> String {
    stack().tls().ca().display().to_string()
}

/// Whether the session is encrypted, by the server's own account.
async fn encrypted(url: &str) -> Result<bool, PgTlsError> {
    let client = PgUrl::parse("DATABASE_URL", url)?.connect().await?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn verify_full_encrypts_with_channel_binding() {
    let u = url("localhost", &format!("sslmode=verify-full&sslrootcert={}", ca()));
    assert!(encrypted(&u).await.unwrap());
    // SCRAM-SHA-256-PLUS: the server must bind the session to the TLS channel.
    assert!(encrypted(&format!("{u}&channel_binding=require")).await.unwrap());
}

#[tokio::test]
async fn each_mode_does_what_libpq_says() {
    let ca = ca();
    assert!(!encrypted(&url("127.0.0.1", "sslmode=disable")).await.unwrap());
    assert!(
        encrypted(&url("127.0.0.1", "sslmode=prefer")).await.unwrap(),
        "prefer takes TLS when offered"
    );
    assert!(encrypted(&url("127.0.0.1", "sslmode=require")).await.unwrap());
    // verify-ca checks the chain, not the name: 127.0.0.1 passes.
    assert!(
        encrypted(&url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")))
            .await
            .unwrap()
    );
}

fn refused(err: PgTlsError, host: &str, reason: &str) {
    let text = err.to_string();
    assert!(!err.is_transient(), "a TLS failure is fatal: {text}");
    assert!(
        text.starts_with(&format!("PostgreSQL at {host}:{}", stack().pg_port)),
        "{text}"
    );
    assert!(text.contains(reason), "{text}");
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_carry_is_refused() {
    let err = encrypted(&url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca())))
        .await
        .unwrap_err();
    refused(err, "127.0.0.1", "certificate not valid for name");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let dir = std::env::temp_dir().join(format!("contrail-pg-other-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("openssl")
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
    assert!(out.status.success(), "{out:?}");
    let other = dir.join("other.pem");
    let err = encrypted(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other.display()),
    ))
    .await
    .unwrap_err();
    refused(err, "localhost", "UnknownIssuer");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The stack's database that takes only a client certificate (`cert` in
/// `pg_hba.conf`): `sslcert` and `sslkey` log in with no password, the
/// server reports the certificate, and without one the server's refusal
/// comes through.
#[tokio::test]
async fn a_client_certificate_logs_in_where_the_server_requires_one() {
    let tls = stack().tls();
    let base = format!(
        "postgres://{}@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        stack::PG_USER,
        stack().pg_port,
        stack::PG_MTLS_DATABASE,
        ca()
    );
    let with_cert = format!(
        "{base}&sslcert={}&sslkey={}",
        tls.client_cert().display(),
        tls.client_key().display()
    );
    let client = PgUrl::parse("DATABASE_URL", &with_cert)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let row = client
        .query_one("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    let dn: Option<String> = row.get(0);
    assert_eq!(dn.as_deref(), Some(format!("/CN={}", stack::PG_USER).as_str()));

    let err = PgUrl::parse("DATABASE_URL", &base)
        .unwrap()
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "the server's reason comes through: {err}");
}
