use super::*;

fn parse(url: &str) -> Result<PgUrl, String> {
    PgUrl::parse("DATABASE_URL", url).map_err(|e| e.to_string())
}

#[test]
fn prefer_is_the_default_as_in_libpq() {
    let u = parse("postgres://u:p@db.example.com:6432/app").unwrap();
    assert_eq!(u.tls.mode, SslMode::Prefer);
    assert_eq!(u.target(), "db.example.com:6432");
    assert!(!format!("{u:?}").contains(":p@"), "the password is never printed");
}

#[test]
fn verify_full_with_a_ca_file_and_a_client_certificate() {
    let u = parse(
        "postgres://u:p@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/ca%20files/root.pem\
         &sslcert=/c.pem&sslkey=/c.key&application_name=x",
    )
    .unwrap();
    assert_eq!(
        u.tls,
        Tls {
            mode: SslMode::VerifyFull,
            roots: Some(Roots::File("/etc/ca files/root.pem".into())),
            client: Some(("/c.pem".into(), "/c.key".into())),
        }
    );
    assert_eq!(
        u.config.get_application_name(),
        Some("x"),
        "other settings pass through"
    );
    assert_eq!(u.config.get_ssl_mode(), PgSslMode::Require);
}

#[test]
fn key_value_strings_are_read_too() {
    let u = parse("host=db.example.com user=u sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
    assert_eq!(u.tls.mode, SslMode::VerifyCa);
    assert_eq!(u.target(), "db.example.com:5432");
}

#[test]
fn require_with_a_root_certificate_verifies_the_chain() {
    assert_eq!(
        parse("postgres://h/d?sslmode=require").unwrap().tls.mode,
        SslMode::Require
    );
    assert_eq!(
        parse("postgres://h/d?sslmode=require&sslrootcert=/ca.pem")
            .unwrap()
            .tls
            .mode,
        SslMode::VerifyCa
    );
}

#[test]
fn settings_that_cannot_be_honoured_are_refused_with_the_fix() {
    let cases = [
        (
            "postgres://h/d?sslmode=verify-full",
            "sslmode=verify-full needs sslrootcert",
        ),
        (
            "postgres://h/d?sslmode=allow",
            "sslmode=allow (plaintext first) is not supported",
        ),
        ("postgres://h/d?sslmode=tls", "sslmode=tls: expected disable, prefer"),
        (
            "postgres://h/d?sslmode=require&sslcert=/c.pem",
            "sslcert and sslkey go together",
        ),
        (
            "postgres://h/d?sslmode=verify-ca&sslrootcert=system",
            "sslrootcert=system needs sslmode=verify-full",
        ),
        (
            "postgres://h/d?sslmode=disable&sslrootcert=/ca.pem",
            "sslmode=disable with certificates",
        ),
        (
            "postgres://h/d?sslpassword=x&sslmode=require",
            "sslpassword (an encrypted client key) is not supported",
        ),
        ("postgres://h/d?sslrootcert=%zz", "a bad %-escape"),
    ];
    for (url, want) in cases {
        let err = parse(url).unwrap_err();
        assert!(err.starts_with("DATABASE_URL: "), "{err}");
        assert!(err.contains(want), "{url}: {err}");
    }
}

#[test]
fn a_missing_ca_file_is_named() {
    let u = parse("postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").unwrap();
    let err = u.connector().err().unwrap().to_string();
    assert!(err.starts_with("sslrootcert /nonexistent/ca.pem: "), "{err}");
}

#[test]
fn the_replication_stream_gets_the_same_settings() {
    use pgwire_replication::config::SslMode as R;
    let u = parse("postgres://h/d?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/c.key").unwrap();
    let t = u.replication_tls();
    assert_eq!(t.mode, R::VerifyFull);
    assert_eq!(t.ca_pem_path, Some("/ca.pem".into()));
    assert!(t.is_mtls());
    assert_eq!(parse("postgres://h/d").unwrap().replication_tls().mode, R::Prefer);
    assert_eq!(
        parse("postgres://h/d?sslmode=disable").unwrap().replication_tls().mode,
        R::Disable
    );
}
