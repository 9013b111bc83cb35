//! Key rotation and OAuth at login, against a stand-in for Snowflake's
//! `/session/v1/login-request` that checks credentials the way Snowflake
//! documents: a key-pair token's `iss` must name the fingerprint of one of
//! the user's registered public keys (else 390144, "JWT token is
//! invalid"), an OAuth token must be the one issued. fakesnow accepts any
//! credentials, so it cannot show either; this double checks nothing else.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use snowflake::keypair::KeyPair;
use snowflake::{Auth, Client, OAuthToken, SnowflakeConfig, SnowflakeError};

/// What a login request carried: the authenticator and, for key pairs, the
/// fingerprint its token names.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Serves logins on a free port: `accept` decides from (authenticator,
/// credential) whether the login succeeds.
fn login_server(accept: impl Fn(&str, &str) -> bool + Send + 'static) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let url = stack::stand_in::serve(move |request| {
        let data = serde_json::from_slice::<Value>(&request.body).unwrap()["data"].clone();
        let how = data["AUTHENTICATOR"].as_str().unwrap_or("PASSWORD").to_string();
        let credential = match how.as_str() {
            "SNOWFLAKE_JWT" => issuer_fingerprint(data["TOKEN"].as_str().unwrap()),
            _ => data["TOKEN"].as_str().unwrap_or_default().to_string(),
        };
        let answer = if accept(&how, &credential) {
            json!({"success": true, "data": {"token": "session-token"}})
        } else if how == "SNOWFLAKE_JWT" {
            json!({"success": false, "code": "390144", "message": "JWT token is invalid."})
        } else {
            json!({"success": false, "code": "390303", "message": "Invalid OAuth access token."})
        };
        log.lock().unwrap().push((how, credential));
        // Snowflake answers refused logins with 200 and `success: false`.
        (200, answer.to_string())
    });
    (url, seen)
}

/// The `SHA256:…` fingerprint at the end of a key-pair token's `iss`.
fn issuer_fingerprint(jwt: &str) -> String {
    let claims = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let iss = claims["iss"].as_str().unwrap();
    iss[iss.find("SHA256:").unwrap()..].to_string()
}

fn new_key(dir: &Path, name: &str) -> KeyPair {
    stack::tls::make_rsa_key(&dir.join(name), None).unwrap();
    KeyPair::from_pem(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

fn config(url: &str, auth: Auth) -> SnowflakeConfig {
    SnowflakeConfig {
        url: url.into(),
        account: "xy12345".into(),
        user: "contrail_sink".into(),
        auth,
        warehouse: None,
        role: None,
        database: None,
        schema: None,
        ca: None,
    }
}

#[tokio::test]
async fn a_rotated_key_logs_in_with_the_second_key_and_neither_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (new_key(dir.path(), "old.pem"), new_key(dir.path(), "new.pem"));
    let (old_fp, new_fp) = (old.fingerprint().to_string(), new.fingerprint().to_string());
    // The user's RSA_PUBLIC_KEY was replaced by the new key's: only it works.
    let accepted = new_fp.clone();
    let (url, seen) = login_server(move |_, fp| fp == accepted);
    let keys = Auth::KeyPair(vec![Arc::new(old), Arc::new(new)]);
    Client::connect(config(&url, keys.clone())).await.unwrap();
    let tried: Vec<String> = seen.lock().unwrap().iter().map(|(_, fp)| fp.clone()).collect();
    assert_eq!(tried, [old_fp, new_fp], "the first key, then the second");

    let (url, _) = login_server(|_, _| false);
    match Client::connect(config(&url, keys)).await {
        Err(SnowflakeError::Login { code, .. }) => assert_eq!(code, "390144"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn an_oauth_token_file_is_read_again_at_each_login() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "token-1\n").unwrap();
    let (url, seen) = login_server(|how, token| how == "OAUTH" && token.starts_with("token-"));
    let auth = Auth::OAuth(OAuthToken::File(file.clone()));
    Client::connect(config(&url, auth.clone())).await.unwrap();
    std::fs::write(&file, "token-2\n").unwrap();
    Client::connect(config(&url, auth)).await.unwrap();
    let tokens: Vec<String> = seen.lock().unwrap().iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(tokens, ["token-1", "token-2"]);

    let (url, _) = login_server(|_, _| false);
    let refused = Client::connect(config(&url, Auth::OAuth(OAuthToken::Static(changes::Secret::new("x"))))).await;
    assert!(matches!(refused, Err(SnowflakeError::Login { code, .. }) if code == "390303"));
}
