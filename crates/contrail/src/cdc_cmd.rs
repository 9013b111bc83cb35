//! `contrail cdc`: the CDC stage (see the `cdc` crate).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::Outcome;

#[derive(Debug, Args)]
pub(crate) struct CdcArgs {
    /// Configuration file (default: connectors/cdc.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The stage's configuration: `file` (default connectors/cdc.toml), with
/// the local stack's addresses where the environment gives none.
pub(crate) fn config(dir: &Path, file: Option<PathBuf>) -> anyhow::Result<cdc::CdcConfig> {
    let file = file.unwrap_or_else(|| dir.join("connectors/cdc.toml"));
    let local = crate::local_stack(dir)?;
    let defaults = cdc::ServiceDefaults {
        database_url: local.get("DATABASE_URL").cloned(),
        kafka_bootstrap_servers: local.get("KAFKA_BOOTSTRAP_SERVERS").cloned(),
        schema_registry_url: local.get("SCHEMA_REGISTRY_URL").cloned(),
        env: crate::process_env(),
    };
    Ok(cdc::CdcConfig::load(&file, dir, defaults)?)
}

pub(crate) fn run(dir: &Path, args: CdcArgs) -> anyhow::Result<Outcome> {
    let config = config(dir, args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // A lost connection (PostgreSQL, Kafka, the registry) is retried with
    // backoff: nothing unacknowledged was confirmed, so a new run resumes
    // exactly where the slot stands. Anything else stops the stage.
    let summary = runtime.block_on(crate::run_with_restarts(|rx| cdc::run(config.clone(), rx)))?;
    println!(
        "cdc: {} snapshot rows, {} transactions, {} records acknowledged by Kafka; confirmed up to {}",
        summary.snapshot_rows, summary.transactions, summary.acknowledged, summary.confirmed_lsn
    );
    Ok(Outcome::Ok)
}
