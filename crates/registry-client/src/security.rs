//! How the client proves who it is and whom it trusts, configured the way
//! Confluent's clients are (`basic.auth.user.info`, `bearer.auth.*`,
//! `ssl.*`), from the environment only:
//!
//! | variable | Confluent setting |
//! | --- | --- |
//! | `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO` (or `_FILE`) | `basic.auth.user.info` (Confluent Cloud: API key `:` secret) |
//! | `SCHEMA_REGISTRY_BEARER_AUTH_TOKEN` (or `_FILE`) | `bearer.auth.token` (STATIC_TOKEN) |
//! | `SCHEMA_REGISTRY_BEARER_AUTH_ISSUER_ENDPOINT_URL` | `bearer.auth.issuer.endpoint.url` (OAUTHBEARER) |
//! | `SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_ID` | `bearer.auth.client.id` |
//! | `SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_SECRET` (or `_FILE`) | `bearer.auth.client.secret` |
//! | `SCHEMA_REGISTRY_BEARER_AUTH_SCOPE` | `bearer.auth.scope` |
//! | `SCHEMA_REGISTRY_BEARER_AUTH_LOGICAL_CLUSTER` | `bearer.auth.logical.cluster` (header `target-sr-cluster`) |
//! | `SCHEMA_REGISTRY_BEARER_AUTH_IDENTITY_POOL_ID` | `bearer.auth.identity.pool.id` (header `Confluent-Identity-Pool-Id`) |
//! | `SCHEMA_REGISTRY_SSL_CA_LOCATION` | `ssl.ca.location`: trust this CA (PEM) only |
//! | `SCHEMA_REGISTRY_SSL_CERTIFICATE_LOCATION`, `SCHEMA_REGISTRY_SSL_KEY_LOCATION` | `ssl.certificate.location`, `ssl.key.location` (mTLS) |
//!
//! One way to authenticate at a time: more than one is refused, so which
//! credentials are sent is never a guess. Credentials in the URL's user
//! info count as basic auth.

use std::path::PathBuf;

use changes::{Env, Secret};

/// The client's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// `user:password`.
    Basic(Secret),
    /// A token sent as is.
    Bearer(Secret),
    /// Tokens fetched by the OAuth 2 client-credentials grant.
    OAuth(OAuthSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
}

/// Everything but the URL: credentials, Confluent Cloud's routing headers
/// for bearer tokens, and TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub auth: Auth,
    pub logical_cluster: Option<String>,
    pub identity_pool: Option<String>,
    /// Trust only this CA bundle (PEM) instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// A client certificate and key (PEM), for mTLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

const P: &str = "SCHEMA_REGISTRY_";

impl Security {
    /// Reads the variables in the module docs; errors name the variable.
    pub fn from_env(env: &Env) -> Result<Security, String> {
        let var = |name: &str| env.var(&format!("{P}{name}")).filter(|v| !v.is_empty());
        let secret = |name: &str| env.secret(&format!("{P}{name}"));
        let mut ways = Vec::new();
        if let Some(info) = secret("BASIC_AUTH_USER_INFO")? {
            if !info.expose().contains(':') {
                return Err(format!(
                    "{P}BASIC_AUTH_USER_INFO must be user:password (for Confluent Cloud, key:secret)"
                ));
            }
            ways.push(("BASIC_AUTH_USER_INFO", Auth::Basic(info)));
        }
        if let Some(token) = secret("BEARER_AUTH_TOKEN")? {
            ways.push(("BEARER_AUTH_TOKEN", Auth::Bearer(token)));
        }
        if let Some(issuer) = var("BEARER_AUTH_ISSUER_ENDPOINT_URL") {
            let need = |what: &str| format!("{P}BEARER_AUTH_ISSUER_ENDPOINT_URL is set, so {P}{what} must be too");
            let client_id = var("BEARER_AUTH_CLIENT_ID").ok_or_else(|| need("BEARER_AUTH_CLIENT_ID"))?;
            let client_secret =
                secret("BEARER_AUTH_CLIENT_SECRET")?.ok_or_else(|| need("BEARER_AUTH_CLIENT_SECRET"))?;
            check_https(&format!("{P}BEARER_AUTH_ISSUER_ENDPOINT_URL"), &issuer)?;
            let scope = var("BEARER_AUTH_SCOPE");
            let oauth = OAuthSettings {
                issuer,
                client_id,
                client_secret,
                scope,
            };
            ways.push(("BEARER_AUTH_ISSUER_ENDPOINT_URL", Auth::OAuth(oauth)));
        }
        if ways.len() > 1 {
            let names: Vec<String> = ways.iter().map(|(n, _)| format!("{P}{n}")).collect();
            return Err(format!(
                "{} are all set: choose one way to authenticate",
                names.join(" and ")
            ));
        }
        let identity = match (var("SSL_CERTIFICATE_LOCATION"), var("SSL_KEY_LOCATION")) {
            (Some(c), Some(k)) => Some((c.into(), k.into())),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{P}SSL_CERTIFICATE_LOCATION and {P}SSL_KEY_LOCATION go together (a client certificate and its key)"
                ))
            }
        };
        Ok(Security {
            auth: ways.pop().map(|(_, a)| a).unwrap_or_default(),
            logical_cluster: var("BEARER_AUTH_LOGICAL_CLUSTER"),
            identity_pool: var("BEARER_AUTH_IDENTITY_POOL_ID"),
            ca: var("SSL_CA_LOCATION").map(PathBuf::from),
            identity,
        })
    }

    /// Whether requests carry credentials.
    pub fn authenticates(&self) -> bool {
        self.auth != Auth::None
    }
}

/// Credentials go to loopback over plain HTTP, never to another host.
pub(crate) fn check_https(what: &str, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{what}: {e}"))?;
    let loopback = changes::is_loopback_host(parsed.host_str().unwrap_or_default());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{what}: credentials would cross the network in clear to {}: use https://",
            parsed.host_str().unwrap_or_default()
        )),
        other => Err(format!("{what}: the scheme must be https, not {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn each_way_to_authenticate_reads_confluents_settings() {
        let basic = Security::from_env(&env(&[("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "KEY:SECRET")])).unwrap();
        assert_eq!(basic.auth, Auth::Basic(Secret::new("KEY:SECRET")));
        let bearer = Security::from_env(&env(&[
            ("SCHEMA_REGISTRY_BEARER_AUTH_TOKEN", "tok"),
            ("SCHEMA_REGISTRY_BEARER_AUTH_LOGICAL_CLUSTER", "lsrc-123"),
            ("SCHEMA_REGISTRY_BEARER_AUTH_IDENTITY_POOL_ID", "pool-9"),
        ]))
        .unwrap();
        assert_eq!(bearer.auth, Auth::Bearer(Secret::new("tok")));
        assert_eq!(bearer.logical_cluster.as_deref(), Some("lsrc-123"));
        let oauth = Security::from_env(&env(&[
            (
                "SCHEMA_REGISTRY_BEARER_AUTH_ISSUER_ENDPOINT_URL",
                "https://idp.example.com/token",
            ),
            ("SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_ID", "app"),
            ("SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_SECRET", "hunter2"),
            ("SCHEMA_REGISTRY_BEARER_AUTH_SCOPE", "registry"),
        ]))
        .unwrap();
        let Auth::OAuth(o) = &oauth.auth else {
            panic!("{oauth:?}")
        };
        assert_eq!((o.client_id.as_str(), o.scope.as_deref()), ("app", Some("registry")));
        assert!(!format!("{oauth:?}").contains("hunter2"));
    }

    #[test]
    fn ambiguous_or_incomplete_settings_say_what_is_wrong() {
        for (vars, says) in [
            (
                &[
                    ("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "a:b"),
                    ("SCHEMA_REGISTRY_BEARER_AUTH_TOKEN", "t"),
                ][..],
                "choose one way to authenticate",
            ),
            (
                &[("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "nocolon")][..],
                "must be user:password",
            ),
            (
                &[("SCHEMA_REGISTRY_BEARER_AUTH_ISSUER_ENDPOINT_URL", "https://idp/token")][..],
                "SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_ID must be too",
            ),
            (
                &[
                    (
                        "SCHEMA_REGISTRY_BEARER_AUTH_ISSUER_ENDPOINT_URL",
                        "http://idp.example.com/token",
                    ),
                    ("SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_ID", "app"),
                    ("SCHEMA_REGISTRY_BEARER_AUTH_CLIENT_SECRET", "s"),
                ][..],
                "in clear to idp.example.com",
            ),
            (&[("SCHEMA_REGISTRY_SSL_KEY_LOCATION", "/k.pem")][..], "go together"),
        ] {
            let err = Security::from_env(&env(vars)).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
