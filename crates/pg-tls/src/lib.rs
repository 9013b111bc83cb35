//! PostgreSQL connection URLs as libpq reads them, and the TLS that every
//! Contrail connection to PostgreSQL uses: the producer's, the CDC stage's
//! SQL and replication connections, the registry's storage and
//! `contrail run`'s verification.
//!
//! [`PgUrl::parse`] (pure) takes a URL (`postgres://…?sslmode=verify-full&
//! sslrootcert=/ca.pem`) or a key-value string (`host=… sslmode=…`), takes
//! out the TLS settings tokio-postgres does not know (`sslmode` beyond
//! `require`, `sslrootcert`, `sslcert`, `sslkey`) and hands the rest to
//! tokio-postgres. The modes mean what libpq says:
//!
//! | `sslmode` | TLS | certificate checked | host name checked |
//! | --- | --- | --- | --- |
//! | `disable` | never | | |
//! | `prefer` (default) | if the server offers it, else plaintext | no | no |
//! | `require` | always | only with `sslrootcert` (then as `verify-ca`) | no |
//! | `verify-ca` | always | yes | no |
//! | `verify-full` | always | yes | yes |
//!
//! A verifying mode never falls back to plaintext: a server without TLS, an
//! untrusted certificate or a name the certificate does not carry fails
//! with an error naming the host and the reason. `sslrootcert=system` uses
//! the Mozilla roots (webpki-roots). SCRAM uses channel binding
//! (`tls-server-end-point`) when the server offers it, as libpq does
//! (`channel_binding=prefer`; `require` refuses a server without it).
//!
//! The replication stream ([`PgUrl::replication_tls`]) takes the same
//! settings, so both connections of the CDC stage are secured alike.

mod verify;

use std::path::PathBuf;

use tokio_postgres::config::SslMode as PgSslMode;

/// libpq's `sslmode`, less `allow` (plaintext first, then TLS), which
/// Contrail refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
}

/// The TLS settings of one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub roots: Option<Roots>,
    /// `sslcert` and `sslkey`: a client certificate.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Errors, each fatal to a stage unless [`PgTlsError::is_transient`] says so.
#[derive(Debug, thiserror::Error)]
pub enum PgTlsError {
    #[error("{0}")]
    Url(String),
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    /// Connecting failed; the reason includes every cause (the TLS
    /// verifier's, for a certificate the client refused).
    #[error("PostgreSQL at {target}: {reason}")]
    Connect {
        target: String,
        reason: String,
        /// A TLS failure, which retrying cannot mend.
        tls: bool,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl PgTlsError {
    /// Connection failures other than TLS ones (the server down, a
    /// transient SQLSTATE) may pass.
    pub fn is_transient(&self) -> bool {
        match self {
            PgTlsError::Connect { tls: true, .. } | PgTlsError::Url(_) | PgTlsError::File { .. } => false,
            PgTlsError::Connect { source, .. } => {
                source.code().is_none_or(|c| changes::sqlstate_is_transient(c.code()))
            }
        }
    }
}

impl changes::Classified for PgTlsError {
    fn class(&self) -> changes::Class {
        changes::Class::transient_or_fatal(self.is_transient())
    }
}

/// A parsed connection string.
#[derive(Clone)]
pub struct PgUrl {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password; print where it points only.
        f.debug_struct("PgUrl")
            .field("target", &self.target())
            .field("tls", &self.tls)
            .finish()
    }
}

const TLS_KEYS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"];

impl PgUrl {
    /// Parses `url` (what the error calls `name`, e.g. `DATABASE_URL`).
    pub fn parse(name: &str, url: &str) -> Result<PgUrl, PgTlsError> {
        let bad = |m: String| PgTlsError::Url(format!("{name}: {m}"));
        let (rest, settings) = split_tls_settings(url).map_err(bad)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| bad(format!("not a valid PostgreSQL URL: {e}")))?;
        let tls = tls_settings(&settings).map_err(bad)?;
        config.ssl_mode(match tls.mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        Ok(PgUrl { config, tls })
    }

    /// `host:port` of the first host, for messages.
    pub fn target(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// The connector for tokio-postgres (reads the certificate files).
    pub fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgTlsError> {
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(verify::client_config(
            &self.tls,
        )?))
    }

    /// Connects, and runs the connection on a task of its own.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgTlsError> {
        let (client, conn) = self
            .config
            .connect(self.connector()?)
            .await
            .map_err(|e| self.connect_error(e))?;
        let target = self.target();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(target = %target, error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }

    fn connect_error(&self, source: tokio_postgres::Error) -> PgTlsError {
        let mut reason = source.to_string();
        let mut tls = false;
        let mut cause = std::error::Error::source(&source);
        while let Some(c) = cause {
            tls |= c.downcast_ref::<rustls::Error>().is_some();
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                tls |= io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
            }
            reason = format!("{reason}: {c}");
            cause = c.source();
        }
        PgTlsError::Connect {
            target: self.target(),
            reason,
            tls,
            source,
        }
    }

    /// The same settings for pgwire-replication's stream.
    pub fn replication_tls(&self) -> pgwire_replication::TlsConfig {
        use pgwire_replication::config::SslMode as R;
        let ca = match &self.tls.roots {
            Some(Roots::File(p)) => Some(p.clone()),
            // pgwire-replication's own default is the Mozilla roots.
            Some(Roots::System) | None => None,
        };
        let mut tls = pgwire_replication::TlsConfig {
            mode: match self.tls.mode {
                SslMode::Disable => R::Disable,
                SslMode::Prefer => R::Prefer,
                SslMode::Require => R::Require,
                SslMode::VerifyCa => R::VerifyCa,
                SslMode::VerifyFull => R::VerifyFull,
            },
            ca_pem_path: ca,
            ..Default::default()
        };
        if let Some((cert, key)) = &self.tls.client {
            tls = tls.with_client_cert(cert, key);
        }
        tls
    }
}

/// The URL without its TLS settings, and those settings (`key`, value).
fn split_tls_settings(url: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut settings = Vec::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), settings));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if TLS_KEYS.contains(&k) {
                settings.push((k.to_string(), percent_decode(v)?));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, settings));
    }
    // Key-value form: `key=value` words (quoted values with spaces are not
    // TLS settings, and pass through untouched).
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some((k, v)) if TLS_KEYS.contains(&k.trim()) => settings.push((k.trim().to_string(), v.to_string())),
            _ => kept.push(word),
        }
    }
    Ok((kept.join(" "), settings))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("a bad %-escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("a bad %-escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

fn tls_settings(settings: &[(String, String)]) -> Result<Tls, String> {
    let get = |k: &str| settings.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if get("sslpassword").is_some() {
        return Err(
            "sslpassword (an encrypted client key) is not supported: decrypt the key into a file \
                    readable by Contrail's user only"
                .into(),
        );
    }
    let roots = get("sslrootcert").map(|r| {
        if r == "system" {
            Roots::System
        } else {
            Roots::File(r.into())
        }
    });
    let mode = match get("sslmode").unwrap_or("prefer") {
        "disable" => SslMode::Disable,
        "allow" => {
            return Err("sslmode=allow (plaintext first) is not supported: use prefer, require or verify-full".into())
        }
        "prefer" => SslMode::Prefer,
        // libpq: with a root certificate, require verifies the chain.
        "require" if roots.is_some() => SslMode::VerifyCa,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(format!(
                "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
            ))
        }
    };
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert: the CA's certificate file, or sslrootcert=system for the Mozilla roots",
            if mode == SslMode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        ));
    }
    if roots == Some(Roots::System) && mode != SslMode::VerifyFull {
        return Err("sslrootcert=system needs sslmode=verify-full, as libpq requires".into());
    }
    let client = match (get("sslcert"), get("sslkey")) {
        (Some(c), Some(k)) => Some((c.into(), k.into())),
        (None, None) => None,
        _ => return Err("sslcert and sslkey go together: give both or neither".into()),
    };
    if mode == SslMode::Disable && (roots.is_some() || client.is_some()) {
        return Err("sslmode=disable with certificates: remove them, or choose a TLS mode".into());
    }
    Ok(Tls { mode, roots, client })
}

#[cfg(test)]
mod tests;
