//! OAuth client credentials (Confluent's `bearer.auth.credentials.source=
//! OAUTHBEARER`) against a stand-in for an identity provider and a registry
//! that checks bearer tokens: Contrail's registry takes basic auth only, and
//! the stack has no identity provider, so this double plays both, checking
//! what RFC 6749 §4.4 and Confluent Cloud require of the client and
//! nothing else.

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
    stack::stand_in::serve(move |request| {
        let header = |name| request.header(name).unwrap_or_default().to_string();
        let (auth, cluster) = (header("authorization"), header("target-sr-cluster"));
        let body = String::from_utf8(request.body.clone()).unwrap();
        let mut s = state.lock().unwrap();
        s.requests.push((request.path.clone(), auth.clone(), cluster.clone()));
        answer(&mut s, &request.path, &auth, &cluster, &body)
    })
}

fn answer(s: &mut Idp, path: &str, auth: &str, cluster: &str, body: &str) -> (u16, String) {
    let client = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("app:hunter2")
    );
    if path == "/token" {
        if auth != client || body != "grant_type=client_credentials&scope=schema+registry" {
            return (
                401,
                r#"{"error":"invalid_client","error_description":"bad secret"}"#.into(),
            );
        }
        let token = format!("tok-{}", s.issued.len() + 1);
        s.issued.push(token.clone());
        s.revoked = false;
        return (
            200,
            format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#),
        );
    }
    let valid = s.issued.last().filter(|_| !s.revoked).map(|t| format!("Bearer {t}"));
    if Some(auth) != valid.as_deref() || cluster != "lsrc-1" {
        return (401, r#"{"error_code":401,"message":"Unauthorized"}"#.into());
    }
    (200, "[]".into())
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
