//! `contrail registry serve`: runs the schema registry until SIGTERM or SIGINT.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Serve the Confluent-compatible REST API. The database comes from
    /// SCHEMA_REGISTRY_DATABASE_URL (default: the local stack's
    /// contrail_registry database); basic auth from CONTRAIL_REGISTRY_BASIC_AUTH.
    Serve {
        /// host:port to listen on (default 127.0.0.1:8081, or CONTRAIL_REGISTRY_LISTEN).
        #[arg(long)]
        listen: Option<String>,
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
        config,
        insecure,
    } = command;
    // Without SCHEMA_REGISTRY_DATABASE_URL, the local stack's registry database.
    let local = stack::StackConfig::for_project(dir)?.registry_database_url();
    let config_path = config.or_else(|| Some(dir.join("registry/server.toml")).filter(|p| p.exists()));
    let config = registry::ServerConfig::load(
        config_path.as_deref(),
        listen.as_deref(),
        Some(local),
        &crate::process_env(),
        insecure,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(registry::serve(config, crate::shutdown_signal()))?;
    tracing::info!("schema registry stopped");
    Ok(Outcome::Ok)
}
