//! A minimal blocking client for the Confluent Schema Registry REST API, for
//! `contrail schema check --against <url>`. Credentials come from the URL's
//! user info or from `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO` (`user:password`,
//! as Confluent's clients name it) and are never printed.

use anyhow::{bail, Context};
use base64::Engine as _;
use schema::Schema;

pub(crate) struct RegistryClient {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl RegistryClient {
    pub(crate) fn new(url: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = url.split_once("://").context("registry URL has no scheme")?;
        let (userinfo, host) = match rest.split_once('@') {
            Some((u, h)) if !u.contains('/') => (Some(u.to_string()), h),
            _ => (None, rest),
        };
        let auth = userinfo
            .or_else(|| std::env::var("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO").ok())
            .map(|u| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(u)));
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            base: format!("{scheme}://{}", host.trim_end_matches('/')),
            auth,
            agent,
        })
    }

    fn get(&self, path: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .get(&url)
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading GET {url}"))?;
        match status {
            200 => Ok(Some(
                serde_json::from_str(&body).with_context(|| format!("GET {url}: body is not JSON"))?,
            )),
            404 => Ok(None),
            401 | 403 => bail!("GET {url}: {status} (check SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO)"),
            _ => bail!("GET {url}: HTTP {status}: {body}"),
        }
    }

    /// Every version of `subject`, oldest first; empty when the subject does not exist.
    pub(crate) fn all_versions(&self, subject: &str) -> anyhow::Result<Vec<Schema>> {
        let s = percent_encode(subject);
        let Some(versions) = self.get(&format!("/subjects/{s}/versions"))? else {
            return Ok(Vec::new());
        };
        let mut numbers: Vec<i64> = versions
            .as_array()
            .context("versions list is not an array")?
            .iter()
            .filter_map(serde_json::Value::as_i64)
            .collect();
        numbers.sort_unstable();
        let mut out = Vec::with_capacity(numbers.len());
        for v in numbers {
            let Some(body) = self.get(&format!("/subjects/{s}/versions/{v}"))? else {
                continue;
            };
            let text = body
                .get("schema")
                .and_then(serde_json::Value::as_str)
                .with_context(|| format!("subject {subject} version {v} has no schema"))?;
            out.push(Schema::parse_str(text).with_context(|| format!("subject {subject} version {v}"))?);
        }
        Ok(out)
    }
}
