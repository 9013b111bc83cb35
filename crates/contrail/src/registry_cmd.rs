//! `contrail registry serve`: runs the schema registry until SIGTERM or SIGINT.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Serve the Confluent-compatible REST API. The database comes from
    /// SCHEMA_REGISTRY_DATABASE_URL (default: the local stack's
    /// contrail_registry database); users from CONTRAIL_REGISTRY_BASIC_AUTH
    /// (a writer, user:password) and CONTRAIL_REGISTRY_USERS_FILE
    /// (`name: password, role` lines, role read or write); HTTPS from
    /// CONTRAIL_REGISTRY_TLS_CERT_FILE and CONTRAIL_REGISTRY_TLS_KEY_FILE.
    /// See docs/SECURITY.md.
    Serve {
        /// host:port to listen on (default 127.0.0.1:8081, or CONTRAIL_REGISTRY_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        /// A second, plaintext loopback host:port that serves without
        /// authentication, beside a secured --listen.
        #[arg(long)]
        local_listen: Option<String>,
        /// Server settings (default: registry/server.toml when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve a non-loopback address without authentication (refused
        /// otherwise).
        #[arg(long)]
        insecure: bool,
    },
}

pub(crate) fn run(dir: &Path, command: RegistryCommand) -> anyhow::Result<Outcome> {
    let RegistryCommand::Serve {
        listen,
        local_listen,
        config,
        insecure,
    } = command;
    // Without SCHEMA_REGISTRY_DATABASE_URL, the local stack's registry database.
    let local = stack::StackConfig::for_project(dir)?.registry_database_url();
    let config_path = config.or_else(|| Some(dir.join("registry/server.toml")).filter(|p| p.exists()));
    let mut env = crate::process_env();
    if let Some(l) = local_listen {
        env = env.with(registry::LOCAL_LISTEN_ENV, l);
    }
    let config = registry::ServerConfig::load(config_path.as_deref(), listen.as_deref(), Some(local), &env, insecure)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(registry::serve(config, crate::shutdown_signal()))?;
    tracing::info!("schema registry stopped");
    Ok(Outcome::Ok)
}
