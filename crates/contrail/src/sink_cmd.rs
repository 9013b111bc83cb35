//! `contrail sink`: the Snowflake sink (see the `sink` crate).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::Outcome;

#[derive(Debug, Args)]
pub(crate) struct SinkArgs {
    /// Configuration file (default: connectors/sink.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<SinkCommand>,
}

#[derive(Debug, Subcommand)]
enum SinkCommand {
    /// Move a topic's stored positions on purpose, printing what changes:
    /// after the topic was deleted and created again (positions past the
    /// log's end), or retention deleted records the sink had not loaded
    /// (positions before its start). Stop the sink first.
    ResetPositions {
        /// One of the sink's topics.
        #[arg(long)]
        topic: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(long)]
        partition: Option<i32>,
        /// `earliest`: load everything the log holds now; `latest`: skip to
        /// its end, loading nothing that is there.
        #[arg(long, value_parser = ["earliest", "latest"], required_unless_present = "to_offset")]
        to: Option<String>,
        /// This offset, on every chosen partition.
        #[arg(long, conflicts_with = "to")]
        to_offset: Option<i64>,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
        env: crate::process_env(),
    };
    Ok(sink::SinkConfig::load(&file, defaults)?)
}

pub(crate) fn run(dir: &Path, args: SinkArgs) -> anyhow::Result<Outcome> {
    let config = config(dir, args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(SinkCommand::ResetPositions {
        topic,
        partition,
        to,
        to_offset,
        dry_run,
    }) = args.command
    {
        let to = match (to.as_deref(), to_offset) {
            (_, Some(o)) => sink::ResetTo::Offset(o),
            (Some("latest"), None) => sink::ResetTo::Latest,
            _ => sink::ResetTo::Earliest,
        };
        let changes = runtime.block_on(sink::reset_positions(&config, &topic, partition, to, dry_run))?;
        let verb = if dry_run { "would move" } else { "moved" };
        for c in &changes {
            let from = c.from.map_or("none".to_string(), |o| o.to_string());
            println!(
                "{topic} partition {}: {verb} the sink's position {from} → {} (the log holds {} to {})",
                c.partition, c.to, c.low, c.high
            );
        }
        return Ok(Outcome::Ok);
    }
    // Warehouse, Kafka or registry outages are retried with backoff: the
    // positions in the warehouse were written after the data, so a new run
    // replays at most one batch, which the MERGEs absorb.
    let summary = runtime.block_on(crate::run_with_restarts(|rx| sink::run(config.clone(), rx)))?;
    println!(
        "sink: {} records in {} batches, {} changes loaded, {} dead-lettered",
        summary.records, summary.batches, summary.changes, summary.dead_lettered
    );
    Ok(Outcome::Ok)
}
