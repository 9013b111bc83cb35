//! The `/api/states/all` client.
//!
//! Authentication is OAuth2 client credentials (OpenSky's scheme since March
//! 2026): a token is fetched from the token endpoint, cached until shortly
//! before it expires, and refreshed once if the API answers 401. Without
//! credentials the client is anonymous. HTTP 429 is returned as
//! [`OpenSkyError::RateLimited`] with the wait OpenSky asks for
//! (`X-Rate-Limit-Retry-After-Seconds`, or `Retry-After`), so the caller
//! waits instead of hammering; connection failures and 5xx are retried here
//! with exponential backoff. Base and token URLs are configurable, so tests
//! serve recorded answers from a local server.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::parse::{parse_answer, ParseError, Snapshot};

pub const DEFAULT_BASE_URL: &str = "https://opensky-network.org/api";
pub const DEFAULT_TOKEN_URL: &str =
    "https://auth.opensky-network.org/auth/realms/opensky-network/protocol/openid-connect/token";
const ATTEMPTS: u32 = 4;

/// OAuth2 client credentials; `Debug` hides the secret.
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// A WGS-84 bounding box in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub lamin: f64,
    pub lomin: f64,
    pub lamax: f64,
    pub lomax: f64,
}

impl BoundingBox {
    pub fn validate(&self) -> Result<(), String> {
        let lat = |x: f64| (-90.0..=90.0).contains(&x);
        let lon = |x: f64| (-180.0..=180.0).contains(&x);
        if !(lat(self.lamin) && lat(self.lamax) && lon(self.lomin) && lon(self.lomax)) {
            return Err(format!("bounding box {self:?} is outside [-90, 90] × [-180, 180]"));
        }
        if self.lamin > self.lamax || self.lomin > self.lomax {
            return Err(format!("bounding box {self:?} has a minimum above its maximum"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct OpenSkyConfig {
    pub base_url: String,
    pub token_url: String,
    pub credentials: Option<Credentials>,
    pub bbox: Option<BoundingBox>,
    /// Ask for the aircraft category (`extended=1`).
    pub extended: bool,
}

impl Default for OpenSkyConfig {
    fn default() -> Self {
        OpenSkyConfig {
            base_url: DEFAULT_BASE_URL.into(),
            token_url: DEFAULT_TOKEN_URL.into(),
            credentials: None,
            bbox: None,
            extended: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenSkyError {
    #[error("rate limited by OpenSky; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("OpenSky is unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("OpenSky answered HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("OpenSky's answer could not be read")]
    Parse(#[from] ParseError),
}

impl OpenSkyError {
    /// Whether polling again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            OpenSkyError::RateLimited { .. } | OpenSkyError::Unavailable { .. } | OpenSkyError::Parse(_)
        )
    }
}

#[derive(Debug)]
pub struct OpenSkyClient {
    cfg: OpenSkyConfig,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl OpenSkyClient {
    pub fn new(cfg: OpenSkyConfig) -> Result<OpenSkyClient, String> {
        if let Some(b) = &cfg.bbox {
            b.validate()?;
        }
        reqwest::Url::parse(&cfg.base_url).map_err(|e| format!("base URL {:?}: {e}", cfg.base_url))?;
        reqwest::Url::parse(&cfg.token_url).map_err(|e| format!("token URL {:?}: {e}", cfg.token_url))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(OpenSkyClient {
            cfg,
            http,
            token: Mutex::new(None),
        })
    }

    async fn bearer(&self, refresh: bool) -> Result<Option<String>, OpenSkyError> {
        let Some(creds) = &self.cfg.credentials else {
            return Ok(None);
        };
        let mut token = self.token.lock().await;
        if let Some((t, valid_until)) = token.as_ref() {
            if !refresh && Instant::now() < *valid_until {
                return Ok(Some(t.clone()));
            }
        }
        let body = form_encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
        ]);
        let resp = self
            .http
            .post(&self.cfg.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| OpenSkyError::Unavailable {
                attempts: 1,
                last: format!("token endpoint: {e}"),
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != 200 {
            return Err(OpenSkyError::Auth(format!("token endpoint answered HTTP {status}")));
        }
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| OpenSkyError::Auth(format!("token answer is not JSON: {e}")))?;
        let access = v["access_token"]
            .as_str()
            .ok_or_else(|| OpenSkyError::Auth("token answer has no access_token".into()))?;
        let lifetime = v["expires_in"].as_u64().unwrap_or(300);
        // Refresh a minute early so a token never expires mid-request.
        let valid_until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
        *token = Some((access.to_string(), valid_until));
        Ok(Some(access.to_string()))
    }

    fn url(&self) -> String {
        let mut url = format!("{}/states/all", self.cfg.base_url.trim_end_matches('/'));
        let mut params = Vec::new();
        if self.cfg.extended {
            params.push("extended=1".to_string());
        }
        if let Some(b) = &self.cfg.bbox {
            params.push(format!(
                "lamin={}&lomin={}&lamax={}&lomax={}",
                b.lamin, b.lomin, b.lamax, b.lomax
            ));
        }
        if !params.is_empty() {
            url.push('?');
            url.push_str(&params.join("&"));
        }
        url
    }

    /// The current snapshot of the airspace (or of the bounding box).
    pub async fn states(&self) -> Result<Snapshot, OpenSkyError> {
        let mut backoff = Duration::from_millis(500);
        let mut last = String::new();
        let mut refreshed = false;
        let mut attempt = 0;
        while attempt < ATTEMPTS {
            attempt += 1;
            let mut req = self.http.get(self.url());
            if let Some(token) = self.bearer(false).await? {
                req = req.bearer_auth(token);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let header = |name: &str| {
                        resp.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    };
                    if status == 429 {
                        let wait = header("X-Rate-Limit-Retry-After-Seconds")
                            .or_else(|| header("Retry-After"))
                            .unwrap_or(60);
                        return Err(OpenSkyError::RateLimited {
                            retry_after: Duration::from_secs(wait),
                        });
                    }
                    let text = resp.text().await.unwrap_or_default();
                    match status {
                        200 => return Ok(parse_answer(&text)?),
                        401 if self.cfg.credentials.is_some() && !refreshed => {
                            // The token may have been revoked early: refresh once.
                            refreshed = true;
                            attempt -= 1;
                            self.bearer(true).await?;
                            continue;
                        }
                        500..=599 => last = format!("HTTP {status}"),
                        _ => {
                            return Err(OpenSkyError::Rejected {
                                status,
                                body: text.chars().take(200).collect(),
                            })
                        }
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if attempt < ATTEMPTS {
                tracing::warn!(attempt, error = %last, "OpenSky request failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(OpenSkyError::Unavailable {
            attempts: ATTEMPTS,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_and_secret_hiding() {
        assert_eq!(form_encode(&[("a b", "x&y=z/é")]), "a+b=x%26y%3Dz%2F%C3%A9");
        let c = Credentials {
            client_id: "me".into(),
            client_secret: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bounding_boxes_are_checked() {
        let ok = BoundingBox {
            lamin: 45.8,
            lomin: 5.9,
            lamax: 47.8,
            lomax: 10.5,
        };
        assert!(ok.validate().is_ok());
        assert!(BoundingBox { lamin: 95.0, ..ok }.validate().is_err());
        assert!(BoundingBox { lamin: 48.0, ..ok }.validate().is_err());
    }
}
