//! A thin client for Snowflake's HTTP API: the endpoints Snowflake's own
//! connectors use (`/session/v1/login-request`, `/queries/v1/query-request`),
//! so it works against a Snowflake account and, locally, the fakesnow server.
//!
//! - [`Client::connect`] logs in with a password or a key pair (a JWT signed
//!   with the user's RSA key, see [`keypair`]) and keeps the session token.
//!   The warehouse, role, database and schema are session settings.
//! - [`Client::query`] runs one statement with positional `?` bindings, sent
//!   as bound values, never pasted into the SQL text; [`quote_ident`] quotes
//!   identifiers. Results come back as JSON (`rowset`) or as Arrow IPC
//!   (`rowsetBase64`), and both are read into [`QueryResult`], every value as
//!   its text (`None` for NULL), as Snowflake's JSON format gives them.
//! - A statement still running when the request returns (codes 333333 and
//!   333334) is polled at its `getResultUrl`. An expired session logs in
//!   again. Network failures, HTTP 429 and 5xx are retried with backoff;
//!   a SQL error is not, and says the code, the SQL state and the message.
//!
//! Large results that Snowflake splits into chunks stored in cloud storage
//! are refused with a clear error: the sink reads small results only.

mod arrow;
pub mod keypair;
mod pbes2;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::RwLock;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct SnowflakeConfig {
    /// `https://<account>.snowflakecomputing.com`, or a local server's URL.
    pub url: String,
    pub account: String,
    pub user: String,
    pub auth: Auth,
    pub warehouse: Option<String>,
    pub role: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
    /// Trust only this CA bundle (PEM) instead of the system's roots
    /// (`SNOWFLAKE_SSL_CA_LOCATION`: a proxy, or a local emulator behind
    /// TLS; Snowflake's own certificates chain to public roots).
    pub ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for SnowflakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeConfig")
            .field("url", &self.url)
            .field("account", &self.account)
            .field("user", &self.user)
            .field("auth", &self.auth)
            .field("warehouse", &self.warehouse)
            .field("role", &self.role)
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("ca", &self.ca)
            .finish()
    }
}

/// How the client proves who it is.
#[derive(Clone)]
pub enum Auth {
    Password(changes::Secret),
    /// Key-pair authentication (`SNOWFLAKE_JWT`): one key, or two during a
    /// rotation. A login that Snowflake refuses as `JWT token is invalid`
    /// (390144) with one key is tried with the next, and the key that
    /// worked is used first from then on, so a user whose
    /// `RSA_PUBLIC_KEY` and `RSA_PUBLIC_KEY_2` are swapped keeps loading.
    KeyPair(Vec<std::sync::Arc<keypair::KeyPair>>),
    /// An OAuth access token (`AUTHENTICATOR = OAUTH`).
    OAuth(OAuthToken),
}

impl Auth {
    /// One key pair.
    pub fn key_pair(key: keypair::KeyPair) -> Auth {
        Auth::KeyPair(vec![std::sync::Arc::new(key)])
    }
}

/// Where an OAuth access token comes from.
#[derive(Clone, Debug)]
pub enum OAuthToken {
    /// `SNOWFLAKE_TOKEN`: as given, for the process's life.
    Static(changes::Secret),
    /// `SNOWFLAKE_TOKEN_FILE`: read again at every login, since whatever
    /// refreshes the token (Snowpark Container Services'
    /// `/snowflake/session/token`, a sidecar) rewrites the file.
    File(std::path::PathBuf),
}

impl OAuthToken {
    fn read(&self) -> Result<changes::Secret, SnowflakeError> {
        match self {
            OAuthToken::Static(t) => Ok(t.clone()),
            OAuthToken::File(path) => changes::read_secret_file("SNOWFLAKE_TOKEN_FILE", path)
                .map(changes::Secret::new)
                .map_err(|message| SnowflakeError::Login {
                    code: "oauth".into(),
                    message,
                }),
        }
    }
}

/// Snowflake's answer to a key-pair login whose token it cannot verify.
pub const JWT_INVALID: &str = "390144";

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Password(_) => f.write_str("Password(<redacted>)"),
            Auth::KeyPair(keys) => {
                let prints: Vec<&str> = keys.iter().map(|k| k.fingerprint()).collect();
                write!(f, "KeyPair({})", prints.join(", "))
            }
            Auth::OAuth(OAuthToken::Static(_)) => f.write_str("OAuth(<redacted>)"),
            Auth::OAuth(OAuthToken::File(p)) => write!(f, "OAuth(file {})", p.display()),
        }
    }
}

/// What went wrong, classified.
#[derive(Debug, thiserror::Error)]
pub enum SnowflakeError {
    #[error("Snowflake refused the login ({code}): {message}")]
    Login { code: String, message: String },
    /// The statement failed: not retried.
    #[error("Snowflake error {code} (SQL state {sql_state}): {message}\n  in: {sql}")]
    Sql {
        code: String,
        sql_state: String,
        message: String,
        sql: String,
    },
    /// Snowflake or the network did not answer properly after the retries.
    #[error("Snowflake is unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    #[error("unexpected answer from Snowflake: {0}")]
    Protocol(String),
}

impl SnowflakeError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, SnowflakeError::Unavailable { .. })
    }

    /// What went wrong, without the statement's text (for a dead letter).
    pub fn reason(&self) -> String {
        match self {
            SnowflakeError::Sql {
                code,
                sql_state,
                message,
                ..
            } => format!("Snowflake error {code} (SQL state {sql_state}): {message}"),
            other => other.to_string(),
        }
    }

    /// Whether the statement failed on a value it was given, by SQL state:
    /// class 22 (data exception: a value out of range, not recognised, too
    /// long) or 23 (integrity constraint: a NULL where none is allowed).
    /// Such a failure belongs to some rows, not to the statement; anything
    /// else (compilation, privileges, missing objects) belongs to all of them.
    pub fn is_data(&self) -> bool {
        matches!(self, SnowflakeError::Sql { sql_state, .. } if sql_state.starts_with("22") || sql_state.starts_with("23"))
    }
}

impl changes::Classified for SnowflakeError {
    /// Transient: unreachable, or an HTTP status or Snowflake code that
    /// says try again; data: SQL state class 22 or 23; anything else fatal.
    fn class(&self) -> changes::Class {
        if self.is_transient() {
            changes::Class::Transient
        } else if self.is_data() {
            changes::Class::Data
        } else {
            changes::Class::Fatal
        }
    }
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Null,
    Text(String),
    Int(i64),
    Real(f64),
    Bool(bool),
}

impl Bind {
    fn to_json(&self) -> Value {
        match self {
            Bind::Null => json!({"type": "TEXT", "value": null}),
            Bind::Text(s) => json!({"type": "TEXT", "value": s}),
            Bind::Int(i) => json!({"type": "FIXED", "value": i.to_string()}),
            Bind::Real(f) => json!({"type": "REAL", "value": f.to_string()}),
            Bind::Bool(b) => json!({"type": "BOOLEAN", "value": b.to_string()}),
        }
    }
}

/// A result set: column names and types, and rows of text values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<ColumnType>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl QueryResult {
    /// The value at `row`, `column` (by name, case-insensitive).
    pub fn get(&self, row: usize, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(column))?;
        self.rows.get(row)?.get(i)?.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub name: String,
    /// Snowflake's type name: `fixed`, `text`, `real`, `timestamp_ntz`, ….
    pub sf_type: String,
    pub scale: Option<i64>,
}

/// An identifier quoted for Snowflake SQL: upper-cased names stay
/// case-insensitive to users; anything else is quoted exactly.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const ATTEMPTS: u32 = 5;
const QUERY_IN_PROGRESS: [&str; 2] = ["333333", "333334"];
const SESSION_EXPIRED: &str = "390112";

/// A logged-in session; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Client {
    cfg: SnowflakeConfig,
    http: reqwest::Client,
    token: RwLock<String>,
    sequence: AtomicU64,
    /// The key pair that logged in last (see [`Auth::KeyPair`]).
    key: std::sync::atomic::AtomicUsize,
}

fn request_id() -> String {
    // Uniqueness per request is what Snowflake asks for; a UUID v4 layout
    // from the clock and a counter is enough (no retry reuses an id).
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let x = t ^ (u128::from(n) << 64) ^ u128::from(std::process::id());
    let h = format!("{x:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl Client {
    /// Logs in.
    pub async fn connect(cfg: SnowflakeConfig) -> Result<Client, SnowflakeError> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
        if let Some(ca) = &cfg.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| SnowflakeError::Protocol(format!("SNOWFLAKE_SSL_CA_LOCATION {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    SnowflakeError::Protocol(format!(
                        "SNOWFLAKE_SSL_CA_LOCATION {}: no PEM certificate",
                        ca.display()
                    ))
                })?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| SnowflakeError::Protocol(format!("HTTP client: {e}")))?;
        let client = Client {
            cfg,
            http,
            token: RwLock::new(String::new()),
            sequence: AtomicU64::new(0),
            key: std::sync::atomic::AtomicUsize::new(0),
        };
        let token = client.login().await?;
        *client.token.write().await = token;
        Ok(client)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.url.trim_end_matches('/'))
    }

    /// A session token. With key pairs, each is tried, the last one that
    /// worked first, while Snowflake answers [`JWT_INVALID`].
    async fn login(&self) -> Result<String, SnowflakeError> {
        let Auth::KeyPair(keys) = &self.cfg.auth else {
            return self.login_with(None).await;
        };
        let first = self.key.load(Ordering::Relaxed) % keys.len().max(1);
        let mut last = None;
        for i in (0..keys.len()).map(|n| (first + n) % keys.len()) {
            match self.login_with(Some(&keys[i])).await {
                Ok(token) => {
                    if i != first {
                        tracing::info!(
                            fingerprint = keys[i].fingerprint(),
                            "logged in with another key pair than before: the user's public keys were rotated"
                        );
                        self.key.store(i, Ordering::Relaxed);
                    }
                    return Ok(token);
                }
                Err(SnowflakeError::Login { code, message }) if code == JWT_INVALID => {
                    tracing::warn!(fingerprint = keys[i].fingerprint(), %message, "Snowflake refused this key pair");
                    last = Some(SnowflakeError::Login { code, message });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| SnowflakeError::Protocol("no key pair configured".into())))
    }

    fn login_url(&self) -> Result<reqwest::Url, SnowflakeError> {
        let mut url = reqwest::Url::parse(&self.url("/session/v1/login-request"))
            .map_err(|e| SnowflakeError::Protocol(format!("account URL {:?}: {e}", self.cfg.url)))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("request_id", &request_id());
            for (k, v) in [
                ("databaseName", &self.cfg.database),
                ("schemaName", &self.cfg.schema),
                ("warehouse", &self.cfg.warehouse),
                ("roleName", &self.cfg.role),
            ] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
        }
        Ok(url)
    }

    async fn login_with(&self, key: Option<&keypair::KeyPair>) -> Result<String, SnowflakeError> {
        let mut body = json!({"data": {
            "CLIENT_APP_ID": "Contrail",
            "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
            "ACCOUNT_NAME": self.cfg.account,
            "LOGIN_NAME": self.cfg.user,
            "SESSION_PARAMETERS": {"AUTOCOMMIT": true, "TIMEZONE": "UTC"},
        }});
        match (&self.cfg.auth, key) {
            (_, Some(k)) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let token = k
                    .token(&self.cfg.account, &self.cfg.user, now)
                    .map_err(|e| SnowflakeError::Login {
                        code: "key-pair".into(),
                        message: e.to_string(),
                    })?;
                body["data"]["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                body["data"]["TOKEN"] = json!(token);
            }
            (Auth::Password(p), None) => body["data"]["PASSWORD"] = json!(p.expose()),
            (Auth::OAuth(source), None) => {
                body["data"]["AUTHENTICATOR"] = json!("OAUTH");
                body["data"]["TOKEN"] = json!(source.read()?.expose());
            }
            (Auth::KeyPair(_), None) => return Err(SnowflakeError::Protocol("a key-pair login needs a key".into())),
        }
        let answer = self.post(self.login_url()?.as_str(), &body, None).await?;
        if answer["success"] != true {
            return Err(SnowflakeError::Login {
                code: answer["code"].as_str().unwrap_or("?").to_string(),
                message: answer["message"].as_str().unwrap_or("no message").to_string(),
            });
        }
        answer["data"]["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SnowflakeError::Protocol("login answer without a token".into()))
    }

    /// POST with retries on network errors, 429 and 5xx.
    async fn post(&self, url: &str, body: &Value, token: Option<&str>) -> Result<Value, SnowflakeError> {
        self.send(|http| {
            let mut req = http.post(url).json(body);
            if let Some(t) = token {
                req = req.header("Authorization", format!("Snowflake Token=\"{t}\""));
            }
            req
        })
        .await
    }

    async fn send(&self, build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder) -> Result<Value, SnowflakeError> {
        let mut last = String::new();
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let req = build(&self.http).header("Accept", "application/snowflake");
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.as_u16() == 429 || status.is_server_error() {
                        last = format!("HTTP {status}: {}", resp.text().await.unwrap_or_default());
                    } else {
                        let text = resp.text().await.map_err(|e| SnowflakeError::Protocol(e.to_string()))?;
                        return serde_json::from_str(&text).map_err(|e| {
                            SnowflakeError::Protocol(format!("HTTP {status}, not JSON ({e}): {}", truncate(&text)))
                        });
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if attempt < ATTEMPTS {
                tracing::warn!(attempt, error = %last, "Snowflake request failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        Err(SnowflakeError::Unavailable {
            attempts: ATTEMPTS,
            last,
        })
    }

    /// Runs one statement with positional bindings (`?` or `:1`, `:2`, …).
    pub async fn query(&self, sql: &str, binds: &[Bind]) -> Result<QueryResult, SnowflakeError> {
        let mut relogged = false;
        loop {
            let token = self.token.read().await.clone();
            let bindings: serde_json::Map<String, Value> = binds
                .iter()
                .enumerate()
                .map(|(i, b)| ((i + 1).to_string(), b.to_json()))
                .collect();
            let mut body = json!({
                "sqlText": sql,
                "asyncExec": false,
                "sequenceId": self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            });
            if !bindings.is_empty() {
                body["bindings"] = Value::Object(bindings);
            }
            let url = format!("{}?requestId={}", self.url("/queries/v1/query-request"), request_id());
            let mut answer = self.post(&url, &body, Some(&token)).await?;
            // Still running: poll the result URL.
            while answer["code"].as_str().is_some_and(|c| QUERY_IN_PROGRESS.contains(&c)) {
                let path = answer["data"]["getResultUrl"]
                    .as_str()
                    .ok_or_else(|| SnowflakeError::Protocol("in-progress answer without getResultUrl".into()))?
                    .to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let url = self.url(&path);
                answer = self
                    .send(|http| {
                        http.get(&url)
                            .header("Authorization", format!("Snowflake Token=\"{token}\""))
                    })
                    .await?;
            }
            if answer["success"] == true {
                return read_result(&answer["data"]);
            }
            let code = answer["code"].as_str().unwrap_or("?").to_string();
            if code == SESSION_EXPIRED && !relogged {
                relogged = true;
                let token = self.login().await?;
                *self.token.write().await = token;
                continue;
            }
            return Err(SnowflakeError::Sql {
                sql_state: answer["data"]["sqlState"].as_str().unwrap_or("?").to_string(),
                message: answer["message"].as_str().unwrap_or("no message").to_string(),
                code,
                sql: truncate(sql),
            });
        }
    }

    /// Runs statements one after the other (each its own request).
    pub async fn execute_all(&self, statements: &[&str]) -> Result<(), SnowflakeError> {
        for s in statements {
            self.query(s, &[]).await?;
        }
        Ok(())
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 500;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

fn read_result(data: &Value) -> Result<QueryResult, SnowflakeError> {
    if data["chunks"].as_array().is_some_and(|c| !c.is_empty()) {
        return Err(SnowflakeError::Protocol(
            "the result is split into chunks in cloud storage, which this client does not read; select less".into(),
        ));
    }
    let columns: Vec<ColumnType> = data["rowtype"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| ColumnType {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    sf_type: c["type"].as_str().unwrap_or_default().to_lowercase(),
                    scale: c["scale"].as_i64(),
                })
                .collect()
        })
        .unwrap_or_default();
    let rows = match data["queryResultFormat"].as_str() {
        Some("arrow") => {
            let b64 = data["rowsetBase64"].as_str().unwrap_or_default();
            if b64.is_empty() {
                Vec::new()
            } else {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| SnowflakeError::Protocol(format!("rowsetBase64: {e}")))?;
                arrow::rows(&bytes, &columns).map_err(SnowflakeError::Protocol)?
            }
        }
        _ => data["rowset"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        r.as_array()
                            .map(|vals| vals.iter().map(|v| v.as_str().map(str::to_string)).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    Ok(QueryResult { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classed_by_sql_state_and_availability() {
        use changes::{Class, Classified};
        let sql = |state: &str| SnowflakeError::Sql {
            code: "100038".into(),
            sql_state: state.into(),
            message: "m".into(),
            sql: "s".into(),
        };
        assert_eq!(sql("22018").class(), Class::Data);
        assert_eq!(sql("23502").class(), Class::Data);
        assert_eq!(sql("42S02").class(), Class::Fatal);
        let down = SnowflakeError::Unavailable {
            attempts: 5,
            last: "refused".into(),
        };
        assert_eq!(down.class(), Class::Transient);
    }

    #[test]
    fn data_errors_are_told_by_sql_state() {
        let sql = |state: &str| SnowflakeError::Sql {
            code: "100038".into(),
            sql_state: state.into(),
            message: "m".into(),
            sql: "s".into(),
        };
        assert!(sql("22018").is_data() && sql("22003").is_data() && sql("23502").is_data());
        assert!(!sql("42S02").is_data() && !sql("42501").is_data() && !sql("?").is_data());
        assert!(!SnowflakeError::Protocol("x".into()).is_data());
    }

    #[test]
    fn json_results_and_errors_read_as_snowflake_sends_them() {
        let data = json!({
            "rowtype": [{"name": "N", "type": "FIXED", "scale": 0}, {"name": "T", "type": "TEXT"}],
            "queryResultFormat": "json",
            "rowset": [["1", "a"], ["2", null]],
        });
        let r = read_result(&data).unwrap();
        assert_eq!(r.get(1, "n"), Some("2"));
        assert_eq!(r.get(1, "T"), None);
        assert_eq!(r.columns[0].sf_type, "fixed");
        let chunked = json!({"rowtype": [], "chunks": [{"url": "https://x"}]});
        assert!(read_result(&chunked).unwrap_err().to_string().contains("chunks"));
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(request_id().len(), 36);
        let secret = SnowflakeConfig {
            url: "u".into(),
            account: "a".into(),
            user: "u".into(),
            auth: Auth::Password(changes::Secret::new("hunter2")),
            warehouse: None,
            role: None,
            database: None,
            schema: None,
            ca: None,
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
