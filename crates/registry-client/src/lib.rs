//! A client for the Confluent Schema Registry REST API, the same against
//! Contrail's registry and Confluent's (Platform or Cloud).
//!
//! The registry is a start-up cost, never a per-record one: callers register
//! or look up their schema once and keep the id; [`RegistryClient::schema_by_id`]
//! caches, since a schema's content never changes once it has an id.
//!
//! Errors are classified by status and Confluent error code, never by
//! message. [`ClientError::Rejected`] carries the registry's status, code and
//! message (an incompatible schema is 409, an invalid one 42201, an unknown
//! id 40403): retrying cannot help, except for 408 and 429, which
//! [`ClientError::is_transient`] counts as the registry being unavailable.
//! 401 (wrong credentials) and 403 (a role too small: Confluent's 40301)
//! are fatal, as a Kafka authentication failure is: a stage that retried
//! them would wait for ever on a setting only its operator can fix. An
//! OAuth token refused with 401 is fetched again once first. [`ClientError::Unavailable`] (connection refused,
//! timeout, 408, 429, 5xx) is retried here with exponential backoff before
//! it is returned. Credentials (basic, a static bearer token, or OAuth
//! client credentials) and TLS (a custom CA, a client certificate) are
//! [`Security`], read from Confluent's settings (see [`security`]);
//! credentials in the URL's user info count as basic auth. None of them is
//! ever logged.

mod oauth;
pub mod security;

pub use security::{Auth, OAuthSettings, Security};

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use changes::Secret;
use serde::Deserialize;
use serde_json::json;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid registry URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("the registry refused the request: HTTP {status}, error {code}: {message}")]
    Rejected { status: u16, code: i64, message: String },
    #[error("the registry is unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),
    #[error("registry client settings: {0}")]
    Config(String),
    /// The TLS handshake failed: an untrusted CA, a name the certificate
    /// does not hold, a server that wants a client certificate. Fatal:
    /// only a setting can fix it.
    #[error("TLS with the registry at {url} failed: {reason}")]
    Tls { url: String, reason: String },
    #[error("the OAuth token endpoint {issuer} refused the client credentials: HTTP {status}, {error} {description}")]
    Token {
        issuer: String,
        status: u16,
        error: String,
        description: String,
    },
}

impl ClientError {
    /// Whether the request may succeed later unchanged: the registry is
    /// unreachable or overloaded. A record whose schema lookup fails this
    /// way is not bad data.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unavailable { .. } => true,
            ClientError::Rejected { status, .. } => matches!(status, 408 | 429),
            _ => false,
        }
    }

    /// The registry's definite answer that a schema id does not exist
    /// (Confluent error 40403).
    pub fn is_schema_not_found(&self) -> bool {
        matches!(self, ClientError::Rejected { code: 40403, .. })
    }
}

impl changes::Classified for ClientError {
    /// Transient: unreachable, or 408/429 and 5xx; data: 40403 (the
    /// record names a schema id that does not exist); anything else fatal.
    fn class(&self) -> changes::Class {
        if self.is_transient() {
            changes::Class::Transient
        } else if self.is_schema_not_found() {
            changes::Class::Data
        } else {
            changes::Class::Fatal
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

/// One registered version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: u32,
    pub schema: String,
}

/// How each request authenticates, ready to use.
#[derive(Debug, Clone)]
enum Credentials {
    None,
    Basic(String, Secret),
    Bearer(Secret),
    OAuth(Arc<oauth::TokenSource>),
}

#[derive(Clone)]
pub struct RegistryClient {
    base: reqwest::Url,
    http: reqwest::Client,
    credentials: Credentials,
    /// Confluent Cloud's routing headers for bearer tokens.
    headers: Vec<(&'static str, String)>,
    by_id: Arc<RwLock<HashMap<u32, Arc<str>>>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.credentials {
            Credentials::None => "none",
            Credentials::Basic(..) => "basic <redacted>",
            Credentials::Bearer(_) => "bearer <redacted>",
            Credentials::OAuth(_) => "oauth <redacted>",
        };
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .field("auth", &how)
            .finish()
    }
}

impl RegistryClient {
    /// `url` like `http://127.0.0.1:8081` or `https://user:secret@host`,
    /// with basic auth from `basic_auth` (`user:password`) when the URL has
    /// none.
    pub fn new(url: &str, basic_auth: Option<&str>) -> Result<RegistryClient, ClientError> {
        let security = Security {
            auth: basic_auth.map_or(Auth::None, |a| Auth::Basic(Secret::new(a))),
            ..Security::default()
        };
        Self::with_security(url, &security)
    }

    /// `url` with the credentials and TLS settings of `security`.
    pub fn with_security(url: &str, security: &Security) -> Result<RegistryClient, ClientError> {
        let bad = |reason: String| ClientError::Url {
            url: url.split('@').next_back().unwrap_or(url).to_string(),
            reason,
        };
        let mut base = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https".into()));
        }
        let from_url = (!base.username().is_empty())
            .then(|| Secret::new(format!("{}:{}", base.username(), base.password().unwrap_or_default())));
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let credentials = credentials(from_url, &security.auth).map_err(bad)?;
        if !matches!(credentials, Credentials::None) {
            security::check_https("SCHEMA_REGISTRY_URL", base.as_str()).map_err(ClientError::Config)?;
        }
        let mut headers = Vec::new();
        if let Some(c) = &security.logical_cluster {
            headers.push(("target-sr-cluster", c.clone()));
        }
        if let Some(p) = &security.identity_pool {
            headers.push(("Confluent-Identity-Pool-Id", p.clone()));
        }
        Ok(RegistryClient {
            base,
            http: http_client(security)?,
            credentials,
            headers,
            by_id: Arc::default(),
        })
    }

    /// The request with this client's credentials and headers.
    async fn authorize(&self, mut req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ClientError> {
        req = match &self.credentials {
            Credentials::None => req,
            Credentials::Basic(user, password) => req.basic_auth(user, Some(password.expose())),
            Credentials::Bearer(token) => req.bearer_auth(token.expose()),
            Credentials::OAuth(source) => req.bearer_auth(source.token(&self.http).await?.expose()),
        };
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
        Ok(req)
    }

    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut u = self.base.clone();
        if let Ok(mut path) = u.path_segments_mut() {
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        u
    }

    /// Sends with retries on transient failures; `Ok(None)` on 404 when
    /// `not_found_ok`, and the parsed body otherwise.
    async fn call(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut backoff = Duration::from_millis(200);
        let mut last = String::new();
        let mut refetched = false;
        for attempt in 1..=ATTEMPTS {
            let req = self
                .http
                .request(method.clone(), url.clone())
                .header("Accept", CONTENT_TYPE);
            let mut req = match self.authorize(req).await {
                Ok(r) => r,
                Err(ClientError::Unavailable { last: l, .. }) => {
                    last = l;
                    self.pause(attempt, &last, &mut backoff).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(b) = body {
                req = req.header("Content-Type", CONTENT_TYPE).body(b.to_string());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    if let (401, Credentials::OAuth(source), false) = (status, &self.credentials, refetched) {
                        // Revoked early, perhaps: fetch a token anew, once.
                        source.forget().await;
                        refetched = true;
                        last = format!("HTTP 401 with a cached OAuth token: {text}");
                        continue;
                    }
                    if (200..300).contains(&status) {
                        return serde_json::from_str(&text).map_err(|e| ClientError::Protocol(format!("{e}: {text}")));
                    }
                    // 408 and 429 say "later", like a 5xx.
                    if status < 500 && status != 408 && status != 429 {
                        let err: ErrorBody = serde_json::from_str(&text).unwrap_or(ErrorBody {
                            error_code: None,
                            message: Some(text.clone()),
                        });
                        return Err(ClientError::Rejected {
                            status,
                            code: err.error_code.unwrap_or(i64::from(status)),
                            message: err.message.unwrap_or_default(),
                        });
                    }
                    last = format!("HTTP {status}: {text}");
                }
                Err(e) => match tls_failure(&e) {
                    Some(reason) => {
                        return Err(ClientError::Tls {
                            url: self.base.to_string(),
                            reason,
                        })
                    }
                    None => last = changes::error_chain(&e),
                },
            }
            self.pause(attempt, &last, &mut backoff).await;
        }
        Err(ClientError::Unavailable {
            attempts: ATTEMPTS,
            last,
        })
    }

    async fn pause(&self, attempt: u32, last: &str, backoff: &mut Duration) {
        if attempt < ATTEMPTS {
            tracing::warn!(attempt, error = %last, "schema registry unavailable; retrying");
            tokio::time::sleep(*backoff).await;
            *backoff *= 2;
        }
    }

    /// Registers `schema` under `subject` (a no-op returning the existing id
    /// when it is registered already).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, ClientError> {
        let body = self
            .call(
                reqwest::Method::POST,
                self.url(&["subjects", subject, "versions"]),
                Some(&json!({"schema": schema})),
            )
            .await?;
        body.get("id")
            .and_then(serde_json::Value::as_u64)
            .map(|id| id as u32)
            .ok_or_else(|| ClientError::Protocol(format!("registration answer without an id: {body}")))
    }

    /// Every version of `subject`, oldest first; empty when it does not exist.
    pub async fn versions(&self, subject: &str) -> Result<Vec<SubjectVersion>, ClientError> {
        let list = match self
            .call(reqwest::Method::GET, self.url(&["subjects", subject, "versions"]), None)
            .await
        {
            Ok(v) => v,
            Err(ClientError::Rejected { status: 404, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut numbers: Vec<i64> = list
            .as_array()
            .ok_or_else(|| ClientError::Protocol(format!("versions list is not an array: {list}")))?
            .iter()
            .filter_map(serde_json::Value::as_i64)
            .collect();
        numbers.sort_unstable();
        let mut out = Vec::with_capacity(numbers.len());
        for n in numbers {
            let v = self
                .call(
                    reqwest::Method::GET,
                    self.url(&["subjects", subject, "versions", &n.to_string()]),
                    None,
                )
                .await?;
            out.push(serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))?);
        }
        Ok(out)
    }

    /// The schema text for `id`, cached.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, ClientError> {
        if let Some(s) = self.by_id.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        let body = self
            .call(
                reqwest::Method::GET,
                self.url(&["schemas", "ids", &id.to_string()]),
                None,
            )
            .await?;
        let text: Arc<str> = body
            .get("schema")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ClientError::Protocol(format!("schema answer without a schema: {body}")))?
            .into();
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, text.clone());
        Ok(text)
    }
}

/// rustls's own error, when that is why a request failed: found by type in
/// the error's sources. hyper-rustls wraps it in an `io::Error`, which may
/// itself be wrapped in one, and `io::Error::source` skips what it wraps,
/// so wrapped errors are opened with `get_ref`.
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        source = match s.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    None
}

/// The URL's user info wins over the settings' basic auth, as Confluent's
/// clients do; a URL's user info beside a bearer token is ambiguous.
fn credentials(from_url: Option<Secret>, auth: &Auth) -> Result<Credentials, String> {
    let basic = |info: &Secret| {
        let (u, p) = info
            .expose()
            .split_once(':')
            .ok_or("basic auth must be user:password")?;
        Ok::<_, String>(Credentials::Basic(u.to_string(), Secret::new(p)))
    };
    match (from_url, auth) {
        (Some(info), Auth::None | Auth::Basic(_)) => basic(&info),
        (Some(_), _) => Err("the URL carries user info and a bearer token is set: choose one".into()),
        (None, Auth::None) => Ok(Credentials::None),
        (None, Auth::Basic(info)) => basic(info),
        (None, Auth::Bearer(t)) => Ok(Credentials::Bearer(t.clone())),
        (None, Auth::OAuth(o)) => Ok(Credentials::OAuth(Arc::new(oauth::TokenSource::new(o.clone())))),
    }
}

/// The HTTP client: a custom CA replaces the system's roots, as
/// `ssl.ca.location` does; a client certificate is offered when given.
fn http_client(security: &Security) -> Result<reqwest::Client, ClientError> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ClientError::Config(format!("{what} {}: {e}", path.display())))
    };
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = &security.ca {
        let pem = read("SCHEMA_REGISTRY_SSL_CA_LOCATION", ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "SCHEMA_REGISTRY_SSL_CA_LOCATION {}: no PEM certificate",
                    ca.display()
                ))
            })?;
        builder = builder.tls_certs_only(certs);
    }
    if let Some((cert, key)) = &security.identity {
        let mut pem = read("SCHEMA_REGISTRY_SSL_CERTIFICATE_LOCATION", cert)?;
        pem.push(b'\n');
        pem.extend(read("SCHEMA_REGISTRY_SSL_KEY_LOCATION", key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            ClientError::Config(format!(
                "{} and {} are not a PEM certificate and key: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| ClientError::Config(format!("TLS: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classed_by_status_and_registry_code() {
        use changes::{Class, Classified};
        let rejected = |status: u16, code: i64| ClientError::Rejected {
            status,
            code,
            message: String::new(),
        };
        assert_eq!(
            rejected(404, 40403).class(),
            Class::Data,
            "a schema id that does not exist"
        );
        assert_eq!(rejected(429, 429).class(), Class::Transient);
        assert_eq!(rejected(401, 401).class(), Class::Fatal, "wrong credentials");
        assert_eq!(rejected(403, 40301).class(), Class::Fatal, "a role too small");
        assert_eq!(
            rejected(409, 409).class(),
            Class::Fatal,
            "incompatible: stop and say so"
        );
        let down = ClientError::Unavailable {
            attempts: 4,
            last: "refused".into(),
        };
        assert_eq!(down.class(), Class::Transient);
    }

    #[test]
    fn credentials_in_the_url_are_used_and_never_printed() {
        let c = RegistryClient::new("https://alice:s3cret@registry.example.com/base/", None).unwrap();
        assert!(matches!(&c.credentials, Credentials::Basic(u, p) if u == "alice" && p.expose() == "s3cret"));
        let printed = format!("{c:?}");
        assert!(!printed.contains("s3cret") && !printed.contains("alice"), "{printed}");
        assert_eq!(
            c.url(&["subjects", "a/b value", "versions"]).as_str(),
            "https://registry.example.com/base/subjects/a%2Fb%20value/versions"
        );
    }

    #[test]
    fn credentials_never_go_to_another_host_over_http() {
        let e = RegistryClient::new("http://registry.example.com", Some("u:pw"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("in clear to registry.example.com") && !e.contains("pw"),
            "{e}"
        );
        assert!(RegistryClient::new("http://127.0.0.1:8081", Some("u:pw")).is_ok());
        assert!(RegistryClient::new("http://registry.example.com", None).is_ok());
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_credentials() {
        let e = RegistryClient::new("ftp://u:pw@host", None).unwrap_err().to_string();
        assert!(e.contains("http or https") && !e.contains("pw"), "{e}");
    }
}
