//! A Confluent-compatible Schema Registry, storing its state in PostgreSQL.
//!
//! ```text
//! client ──HTTP──▶ axum router ──▶ observe (metrics, timeout) ──▶ authenticate ──▶ handler
//!                                                                                  │
//!                        schema crate (parse, normalize, compatibility) ◀──────────┤
//!                                                                                  ▼
//!                               Store ── deadpool ──▶ PostgreSQL (schemas, subject_versions,
//!                               (id cache)                        compatibility_config, registry_mode)
//! ```
//!
//! Every standard client (Confluent's serializers, `schema_registry_converter`)
//! works against it: the paths, bodies, content type and error codes are
//! Confluent's (see [`api`]). Compatibility uses the same checker as
//! `contrail schema check`. State lives in the database, so several instances
//! can serve one registry; registration is serialized per subject by an
//! advisory lock inside its transaction (see [`store`]).
//!
//! Failure modes: a database that is down makes requests fail with 50001
//! (and `/healthz` with 503) until it is back; nothing is cached that could
//! go stale except schemas by id, which never change. Bad input is a 4xx with
//! Confluent's error code, never a 500.

pub mod api;
pub mod auth;
pub mod error;
pub mod http;
pub mod metrics;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use auth::{Role, Users};
pub use error::{OperationError, StoreError};
pub use http::ApiError;
pub use tls::TlsFiles;

/// Configuration file keys (`registry/server.toml`). Secrets are not here:
/// the database URL and the basic-auth credentials come from the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    /// A plaintext listener on loopback that serves without authentication.
    local_listen: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    /// `name: password, role` lines (the file is a secret; its path is not).
    users_file: Option<PathBuf>,
    public_metrics: Option<bool>,
    body_limit_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    pool_size: Option<usize>,
}

/// The database URL: printed without its password.
pub type DatabaseUrl = changes::SecretUrl;

/// Validated server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// HTTPS on `listen` when set.
    pub tls: Option<TlsFiles>,
    /// A second, plaintext listener on loopback that needs no credentials
    /// (local tools beside a secured listener, as Kafka keeps PLAINTEXT
    /// beside SASL_SSL).
    pub local_listen: Option<SocketAddr>,
    pub database_url: DatabaseUrl,
    pub auth: Option<Users>,
    /// `/metrics` without credentials even when `auth` is set.
    pub public_metrics: bool,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub pool_size: usize,
}

pub const DATABASE_URL_ENV: &str = "SCHEMA_REGISTRY_DATABASE_URL";
pub const BASIC_AUTH_ENV: &str = "CONTRAIL_REGISTRY_BASIC_AUTH";
pub const LISTEN_ENV: &str = "CONTRAIL_REGISTRY_LISTEN";
pub const LOCAL_LISTEN_ENV: &str = "CONTRAIL_REGISTRY_LOCAL_LISTEN";
pub const USERS_FILE_ENV: &str = "CONTRAIL_REGISTRY_USERS_FILE";
pub const TLS_CERT_ENV: &str = "CONTRAIL_REGISTRY_TLS_CERT_FILE";
pub const TLS_KEY_ENV: &str = "CONTRAIL_REGISTRY_TLS_KEY_FILE";

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the registry database")]
    Store(#[from] StoreError),
    #[error("server failed")]
    Serve(#[source] std::io::Error),
}

impl ServerConfig {
    /// Reads the optional file, applies overrides from `env` (the process
    /// environment, given as a value), validates. `default_database_url` is
    /// used when the environment names none.
    ///
    /// A registry on an address other than loopback must require
    /// authentication: without it, `load` refuses unless `insecure` (the
    /// `--insecure` flag) says the operator means it, and then warns.
    pub fn load(
        file: Option<&Path>,
        listen_override: Option<&str>,
        default_database_url: Option<String>,
        env: &changes::Env,
        insecure: bool,
    ) -> Result<ServerConfig, RegistryError> {
        let cfg = |m: String| RegistryError::Config(m);
        let env = &env.for_stage("REGISTRY");
        let raw: RawConfig = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| cfg(format!("cannot read {}: {e}", p.display())))?;
                toml::from_str(&text).map_err(|e| cfg(format!("{}: {e}", p.display())))?
            }
            None => RawConfig::default(),
        };
        let listen_text = listen_override
            .map(str::to_string)
            .or_else(|| env.var(LISTEN_ENV))
            .or(raw.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8081".into());
        let listen = listen_text
            .parse()
            .map_err(|_| cfg(format!("listen address {listen_text:?} is not host:port")))?;
        let database_url = env.var(DATABASE_URL_ENV).or(default_database_url).ok_or_else(|| {
            cfg(format!(
                "{DATABASE_URL_ENV} is not set (postgres://user:password@host:port/database)"
            ))
        })?;
        pg_tls::PgUrl::parse(DATABASE_URL_ENV, &database_url).map_err(|e| cfg(e.to_string()))?;
        let auth = users(env, raw.users_file.clone()).map_err(cfg)?;
        let tls = tls_files(env, &raw).map_err(cfg)?;
        if let Some(t) = &tls {
            t.server_config().map_err(cfg)?;
        }
        let local_listen = local_listen(env, raw.local_listen.as_deref(), &listen).map_err(cfg)?;
        check_exposure(&listen, auth.is_some(), tls.is_some(), insecure).map_err(cfg)?;
        let body_limit = raw.body_limit_bytes.unwrap_or(16 << 20);
        if body_limit < 1024 {
            return Err(cfg(format!(
                "body_limit_bytes = {body_limit} is too small (at least 1024)"
            )));
        }
        let timeout_ms = raw.request_timeout_ms.unwrap_or(30_000);
        if timeout_ms == 0 {
            return Err(cfg("request_timeout_ms must be positive".into()));
        }
        let pool_size = raw.pool_size.unwrap_or(16);
        if pool_size == 0 {
            return Err(cfg("pool_size must be positive".into()));
        }
        Ok(ServerConfig {
            listen,
            tls,
            local_listen,
            database_url: DatabaseUrl::new(database_url),
            auth,
            public_metrics: raw.public_metrics.unwrap_or(false),
            body_limit,
            request_timeout: Duration::from_millis(timeout_ms),
            pool_size,
        })
    }
}

/// The users: a writer from `CONTRAIL_REGISTRY_BASIC_AUTH` (or its
/// `_FILE`), and those of the users file; `None` when there are none.
fn users(env: &changes::Env, file: Option<PathBuf>) -> Result<Option<Users>, String> {
    let mut users = Users::default();
    if let Some(info) = env.secret(BASIC_AUTH_ENV)? {
        users = Users::writer(info.expose()).map_err(|e| format!("{BASIC_AUTH_ENV} {e}"))?;
    }
    if let Some(path) = env.var(USERS_FILE_ENV).map(PathBuf::from).or(file) {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("users file {}: {e}", path.display()))?;
        let listed = Users::parse(&text).map_err(|e| format!("users file {}: {e}", path.display()))?;
        if listed.is_empty() {
            return Err(format!("users file {} lists no user", path.display()));
        }
        users.extend(listed)?;
    }
    Ok((!users.is_empty()).then_some(users))
}

/// The certificate and key, both or neither.
fn tls_files(env: &changes::Env, raw: &RawConfig) -> Result<Option<TlsFiles>, String> {
    let cert = env.var(TLS_CERT_ENV).map(PathBuf::from).or(raw.tls_cert_file.clone());
    let key = env.var(TLS_KEY_ENV).map(PathBuf::from).or(raw.tls_key_file.clone());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        _ => Err("HTTPS needs both tls_cert_file and tls_key_file (or their CONTRAIL_REGISTRY_TLS_* variables)".into()),
    }
}

/// The anonymous plaintext listener: loopback only, never `listen` itself.
fn local_listen(env: &changes::Env, raw: Option<&str>, listen: &SocketAddr) -> Result<Option<SocketAddr>, String> {
    let Some(text) = env.var(LOCAL_LISTEN_ENV).or(raw.map(str::to_string)) else {
        return Ok(None);
    };
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("local_listen {text:?} is not host:port"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "local_listen {addr} serves without authentication, so it must be a loopback address"
        ));
    }
    if addr == *listen {
        return Err(format!("local_listen {addr} is the main listener's address"));
    }
    Ok(Some(addr))
}

/// Refuses an unauthenticated registry on a non-loopback address, unless
/// the operator insists; warns when passwords would cross it in clear.
fn check_exposure(listen: &SocketAddr, authenticated: bool, tls: bool, insecure: bool) -> Result<(), String> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    if authenticated {
        if !tls {
            tracing::warn!(%listen, "the registry checks passwords over plain HTTP; set tls_cert_file and tls_key_file unless TLS ends in front of it");
        }
        return Ok(());
    }
    if insecure {
        tracing::warn!(%listen, "serving the registry without authentication on a non-loopback address (--insecure)");
        return Ok(());
    }
    Err(format!(
        "the registry would serve {listen} without authentication: anyone who reaches it could change or \
         delete schemas. Set {BASIC_AUTH_ENV}=user:password or {USERS_FILE_ENV}, listen on 127.0.0.1, or pass --insecure"
    ))
}

/// A connection pool for `url`.
pub fn pool(url: &DatabaseUrl, size: usize) -> Result<deadpool_postgres::Pool, RegistryError> {
    let pg = pg_tls::PgUrl::parse(DATABASE_URL_ENV, url.expose()).map_err(|e| RegistryError::Config(e.to_string()))?;
    let manager = deadpool_postgres::Manager::from_config(
        pg.config.clone(),
        pg.connector().map_err(|e| RegistryError::Config(e.to_string()))?,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| RegistryError::Config(format!("connection pool: {e}")))
}

/// Builds the application state (migrating the database).
pub async fn app_state(config: &ServerConfig) -> Result<Arc<api::AppState>, RegistryError> {
    let store = store::Store::open(pool(&config.database_url, config.pool_size)?).await?;
    Ok(Arc::new(api::AppState {
        store,
        metrics: metrics::Metrics::new(),
        auth: config.auth.clone(),
        public_metrics: config.public_metrics,
        body_limit: config.body_limit,
        request_timeout: config.request_timeout,
    }))
}

/// Serves until `shutdown` resolves, then finishes in-flight requests:
/// `listen` (HTTPS when [`ServerConfig::tls`] is set) and, when set, the
/// anonymous plaintext `local_listen`.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RegistryError> {
    let state = app_state(&config).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let main = bind(config.listen).await?;
    tracing::info!(
        listen = %config.listen,
        https = config.tls.is_some(),
        auth = config.auth.is_some(),
        "schema registry listening"
    );
    let local = match config.local_listen {
        Some(addr) => {
            let app = api::router(state.clone()).layer(axum::Extension(api::Anonymous));
            let server = axum::serve(bind(addr).await?, app).with_graceful_shutdown(stopped());
            tracing::info!(listen = %addr, "schema registry listening on loopback without authentication");
            Some(tokio::spawn(async move { server.await }))
        }
        None => None,
    };
    let app = api::router(state);
    let served = match &config.tls {
        Some(files) => {
            let tls = files.server_config().map_err(RegistryError::Config)?;
            let listener = tls::TlsListener::new(main, tls).map_err(RegistryError::Serve)?;
            axum::serve(listener, app).with_graceful_shutdown(stopped()).await
        }
        None => axum::serve(main, app).with_graceful_shutdown(stopped()).await,
    };
    if let Some(local) = local {
        local
            .await
            .map_err(|e| RegistryError::Serve(std::io::Error::other(e)))?
            .map_err(RegistryError::Serve)?;
    }
    served.map_err(RegistryError::Serve)
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, RegistryError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RegistryError::Bind { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(listen: &str, env: &[(&str, &str)], insecure: bool) -> Result<ServerConfig, String> {
        let env = changes::Env::from_vars(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ServerConfig::load(
            None,
            Some(listen),
            Some("postgres://u:p@127.0.0.1:1/r".into()),
            &env,
            insecure,
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_public_address_needs_authentication_or_an_explicit_insecure() {
        let err = load("0.0.0.0:8081", &[], false).unwrap_err();
        assert!(err.contains("would serve 0.0.0.0:8081 without authentication"), "{err}");
        assert!(err.contains("CONTRAIL_REGISTRY_BASIC_AUTH=user:password"), "{err}");
        assert!(err.contains("CONTRAIL_REGISTRY_USERS_FILE"), "{err}");
        assert!(load("0.0.0.0:8081", &[(BASIC_AUTH_ENV, "admin:pw")], false).is_ok());
        assert!(load("0.0.0.0:8081", &[], true).is_ok());
        assert!(load("127.0.0.1:8081", &[], false).is_ok());
        assert!(load("[::1]:8081", &[], false).is_ok());
    }
}
