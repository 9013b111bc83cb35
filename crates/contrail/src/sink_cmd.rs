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

pub(crate) fn run(dir: &Path, args: SinkArgs) -> anyhow::Result<Outcome> {
    let file = args.config.unwrap_or_else(|| dir.join("connectors/sink.toml"));
    let local: std::collections::HashMap<&str, String> =
        stack::StackConfig::for_project(dir)?.env().into_iter().collect();
    let defaults = sink::ServiceDefaults {
        snowflake_url: local.get("SNOWFLAKE_URL").cloned(),
        kafka_bootstrap_servers: local.get("KAFKA_BOOTSTRAP_SERVERS").cloned(),
        schema_registry_url: local.get("SCHEMA_REGISTRY_URL").cloned(),
    };
    let config = sink::SinkConfig::load(&file, defaults)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            let _ = tx.send(true);
        });
        sink::run(config, rx).await
    })?;
    println!(
        "sink: {} records in {} batches, {} changes loaded, {} dead-lettered",
        summary.records, summary.batches, summary.changes, summary.dead_lettered
    );
    Ok(Outcome::Ok)
}
