//! OAuth client credentials (Confluent's `bearer.auth.credentials.source=
//! OAUTHBEARER`) against a stand-in for an identity provider and a registry
//! that checks bearer tokens: Contrail's registry takes basic auth only, and
//! the stack has no identity provider, so this double plays both, checking
//! what RFC 6749 §4.4 and Confluent Cloud require of the client and
//! nothing else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use changes::{Class, Classified, Env};
use registry_client::{ClientError, RegistryClient, Security};

#[derive(Default)]
struct Idp {
    /// Tokens issued, in order; the last is the valid one unless revoked.
    issued: Vec<String>,
    revoked: bool,
    /// (path, authorization, target-sr-cluster) of every request.
    requests: Vec<(String, String, String)>,
}

fn serve(state: Arc<Mutex<Idp>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
            let (mut length, mut auth, mut cluster) = (0, String::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or_default();
                let value = value.trim().to_string();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap(),
                    "authorization" => auth = value,
                    "target-sr-cluster" => cluster = value,
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let mut s = state.lock().unwrap();
            s.requests.push((path.clone(), auth.clone(), cluster.clone()));
            let (status, answer) = answer(&mut s, &path, &auth, &cluster, &body);
            let mut out = conn;
            let _ = write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

fn answer(s: &mut Idp, path: &str, auth: &str, cluster: &str, body: &str) -> (&'static str, String) {
    let client = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("app:hunter2")
    );
    if path == "/token" {
        if auth != client || body != "grant_type=client_credentials&scope=schema+registry" {
            return (
                "401 Unauthorized",
                r#"{"error":"invalid_client","error_description":"bad secret"}"#.into(),
            );
        }
        let token = format!("tok-{}", s.issued.len() + 1);
        s.issued.push(token.clone());
        s.revoked = false;
        return (
            "200 OK",
            format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#),
        );
    }
    let valid = s.issued.last().filter(|_| !s.revoked).map(|t| format!("Bearer {t}"));
    if Some(auth) != valid.as_deref() || cluster != "lsrc-1" {
        return (
            "401 Unauthorized",
            r#"{"error_code":401,"message":"Unauthorized"}"#.into(),
        );
    }
    ("200 OK", "[]".into())
}

fn client(url: &str, secret: &str) -> RegistryClient {
    let env = Env::from_vars(
        [
            (
                "SCHEMA_REGISTRY_BEARER_AUTH_ISSUER_ENDPOINT_URL",
                format!("{url}/token"),
            ),
            ("SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_ID", "app".into()),
            ("SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_SECRET", secret.into()),
            ("SCHEMA_REGISTRY_BEARER_AUTH_SCOPE", "schema registry".into()),
            ("SCHEMA_REGISTRY_BEARER_AUTH_LOGICAL_CLUSTER", "lsrc-1".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    RegistryClient::with_security(url, &Security::from_env(&env).unwrap()).unwrap()
}

#[tokio::test]
async fn a_token_is_fetched_once_reused_and_fetched_again_when_refused() {
    let idp = Arc::new(Mutex::new(Idp::default()));
    let url = serve(idp.clone());
    let c = client(&url, "hunter2");
    assert!(c.versions("s-value").await.unwrap().is_empty());
    assert!(c.versions("s-value").await.unwrap().is_empty());
    assert_eq!(idp.lock().unwrap().issued, ["tok-1"], "one token for both calls");

    // The issuer revokes early: the registry's 401 makes the client fetch anew.
    idp.lock().unwrap().revoked = true;
    assert!(c.versions("s-value").await.unwrap().is_empty());
    let s = idp.lock().unwrap();
    assert_eq!(s.issued, ["tok-1", "tok-2"]);
    let last = s.requests.last().unwrap();
    assert_eq!((last.1.as_str(), last.2.as_str()), ("Bearer tok-2", "lsrc-1"));
}

#[tokio::test]
async fn a_wrong_client_secret_is_fatal_and_names_the_issuer() {
    let url = serve(Arc::default());
    let err = client(&url, "wrong").versions("s-value").await.unwrap_err();
    assert!(matches!(&err, ClientError::Token { status: 401, .. }), "{err}");
    let said = err.to_string();
    assert!(
        said.contains(&format!("{url}/token")) && said.contains("invalid_client"),
        "{said}"
    );
    assert!(!said.contains("wrong"), "the secret is echoed: {said}");
    assert_eq!(err.class(), Class::Fatal);
}
