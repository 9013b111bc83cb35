//! Bearer tokens by the OAuth 2 client-credentials grant (RFC 6749 §4.4),
//! as Confluent's `bearer.auth.credentials.source=OAUTHBEARER` fetches
//! them: the client id and secret by HTTP basic auth to the issuer's token
//! endpoint, the token cached until shortly before `expires_in` runs out
//! (a fifth of its life, at least 30 s early), and fetched again after the
//! registry refuses it (401), since an issuer may revoke early.
//!
//! An issuer that is unreachable or answers 5xx is
//! [`ClientError::Unavailable`] (retried by the caller); a 4xx is its
//! definite answer (a wrong client secret, an unknown scope) and is
//! [`ClientError::Token`], naming the issuer and its `error`.

use std::time::{Duration, Instant};

use changes::Secret;
use serde::Deserialize;

use crate::security::OAuthSettings;
use crate::ClientError;

#[derive(Debug)]
pub(crate) struct TokenSource {
    settings: OAuthSettings,
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenRefusal {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenSource {
    pub(crate) fn new(settings: OAuthSettings) -> TokenSource {
        TokenSource {
            settings,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token that is still good, fetched when none is.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Secret, ClientError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, good_until)) = cached.as_ref() {
            if Instant::now() < *good_until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.fetch(http).await?;
        let early = (lifetime / 5).max(Duration::from_secs(30));
        *cached = Some((token.clone(), Instant::now() + lifetime.saturating_sub(early)));
        Ok(token)
    }

    /// Drops the cached token (the registry refused it).
    pub(crate) async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(Secret, Duration), ClientError> {
        let s = &self.settings;
        let mut body = String::from("grant_type=client_credentials");
        if let Some(scope) = &s.scope {
            body.push_str("&scope=");
            body.push_str(&form_encode(scope));
        }
        let unavailable = |last: String| ClientError::Unavailable { attempts: 1, last };
        let resp = http
            .post(&s.issuer)
            .basic_auth(&s.client_id, Some(s.client_secret.expose()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(format!("token endpoint {}: {e}", s.issuer)))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status >= 500 || status == 429 || status == 408 {
            return Err(unavailable(format!("token endpoint {}: HTTP {status}", s.issuer)));
        }
        if !(200..300).contains(&status) {
            let refusal: Option<TokenRefusal> = serde_json::from_str(&text).ok();
            let (error, description) = refusal.map_or((None, None), |r| (r.error, r.error_description));
            return Err(ClientError::Token {
                issuer: s.issuer.clone(),
                status,
                error: error.unwrap_or_else(|| "no error code".into()),
                description: description.unwrap_or_default(),
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| {
            ClientError::Protocol(format!(
                "token endpoint {} answered without an access_token: {e}",
                s.issuer
            ))
        })?;
        // RFC 6749 makes expires_in optional; an hour is the common default.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        Ok((Secret::new(answer.access_token), lifetime))
    }
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_values_are_encoded() {
        assert_eq!(super::form_encode("registry read/write"), "registry+read%2Fwrite");
        assert_eq!(super::form_encode("a=b&c"), "a%3Db%26c");
    }
}
