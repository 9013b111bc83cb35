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
//! id 40403): retrying cannot help, except for 401 and 403 (credentials
//! being rotated, a proxy), 408 and 429, which [`ClientError::is_transient`]
//! counts as the registry being unavailable: none of them says anything
//! about the data. [`ClientError::Unavailable`] (connection refused,
//! timeout, 408, 429, 5xx) is retried here with exponential backoff before
//! it is returned. Credentials come from the URL's user info
//! or from `basic_auth` (`user:password`) and are never logged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
}

impl ClientError {
    /// Whether the request may succeed later unchanged: the registry is
    /// unreachable or overloaded, or refuses the credentials for now. A
    /// record whose schema lookup fails this way is not bad data.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unavailable { .. } => true,
            ClientError::Rejected { status, .. } => matches!(status, 401 | 403 | 408 | 429),
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
    /// Transient: unreachable, or 401/403/408/429 and 5xx; data: 40403 (the
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

#[derive(Clone)]
pub struct RegistryClient {
    base: reqwest::Url,
    http: reqwest::Client,
    auth: Option<(String, String)>,
    by_id: Arc<RwLock<HashMap<u32, Arc<str>>>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RegistryClient {
    /// `url` like `http://127.0.0.1:8081` or `https://user:secret@host`.
    pub fn new(url: &str, basic_auth: Option<&str>) -> Result<RegistryClient, ClientError> {
        let bad = |reason: String| ClientError::Url {
            url: url.split('@').next_back().unwrap_or(url).to_string(),
            reason,
        };
        let mut base = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https".into()));
        }
        let from_url = (!base.username().is_empty()).then(|| {
            (
                base.username().to_string(),
                base.password().unwrap_or_default().to_string(),
            )
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let auth = from_url.or_else(|| {
            basic_auth
                .and_then(|a| a.split_once(':'))
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(RegistryClient {
            base,
            http,
            auth,
            by_id: Arc::default(),
        })
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
        for attempt in 1..=ATTEMPTS {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header("Accept", CONTENT_TYPE);
            if let Some((u, p)) = &self.auth {
                req = req.basic_auth(u, Some(p));
            }
            if let Some(b) = body {
                req = req.header("Content-Type", CONTENT_TYPE).body(b.to_string());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
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
                Err(e) => last = e.to_string(),
            }
            if attempt < ATTEMPTS {
                tracing::warn!(attempt, error = %last, "schema registry unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(ClientError::Unavailable {
            attempts: ATTEMPTS,
            last,
        })
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
        assert_eq!(rejected(401, 401).class(), Class::Transient);
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
        assert_eq!(c.auth, Some(("alice".into(), "s3cret".into())));
        let printed = format!("{c:?}");
        assert!(!printed.contains("s3cret") && !printed.contains("alice"), "{printed}");
        assert_eq!(
            c.url(&["subjects", "a/b value", "versions"]).as_str(),
            "https://registry.example.com/base/subjects/a%2Fb%20value/versions"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_credentials() {
        let e = RegistryClient::new("ftp://u:pw@host", None).unwrap_err().to_string();
        assert!(e.contains("http or https") && !e.contains("pw"), "{e}");
    }
}
