//! `contrail sink`: the Snowflake sink (see the `sink` crate).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::Outcome;

#[derive(Debug, Args)]
pub(crate) struct SinkArgs {
    /// Configuration file (default: connectors/sink.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The sink's configuration: `file` (default connectors/sink.toml), with
/// the local stack's addresses where the environment gives none.
pub(crate) fn config(dir: &Path, file: Option<PathBuf>) -> anyhow::Result<sink::SinkConfig> {
    let file = file.unwrap_or_else(|| dir.join("connectors/sink.toml"));
    let local = crate::local_stack(dir)?;
    let defaults = sink::ServiceDefaults {
        snowflake_url: local.get("SNOWFLAKE_URL").cloned(),
        kafka_bootstrap_servers: local.get("KAFKA_BOOTSTRAP_SERVERS").cloned(),
        schema_registry_url: local.get("SCHEMA_REGISTRY_URL").cloned(),
    };
    Ok(sink::SinkConfig::load(&file, defaults)?)
}

pub(crate) fn run(dir: &Path, args: SinkArgs) -> anyhow::Result<Outcome> {
    let config = config(dir, args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Warehouse, Kafka or registry outages are retried with backoff: the
    // positions in the warehouse were written after the data, so a new run
    // replays at most one batch, which the MERGEs absorb.
    let summary = runtime.block_on(crate::run_with_restarts(
        |rx| sink::run(config.clone(), rx),
        sink::SinkError::is_transient,
    ))?;
    println!(
        "sink: {} records in {} batches, {} changes loaded, {} dead-lettered",
        summary.records, summary.batches, summary.changes, summary.dead_lettered
    );
    Ok(Outcome::Ok)
}
