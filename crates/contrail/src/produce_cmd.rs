//! `contrail produce`: the producer service (see the `producer` crate).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::Outcome;

/// What flight data to make: the flags `contrail produce` and `contrail run` share.
#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    /// Where the data comes from: simulator, opensky or replay.
    #[arg(long)]
    source: Option<String>,
    /// Share of changes, in percent, carrying bad data for the rules to catch.
    #[arg(long)]
    bad_percent: Option<f64>,
    /// Aircraft flying at once (simulator).
    #[arg(long)]
    fleet: Option<usize>,
    /// Simulator seed.
    #[arg(long)]
    seed: Option<u64>,
}

impl DataArgs {
    /// The producer's overrides: these flags and the command's own.
    pub(crate) fn overrides(
        self,
        target: Option<String>,
        rate: Option<u64>,
        duration_seconds: Option<u64>,
        metrics_listen: Option<String>,
    ) -> producer::Overrides {
        producer::Overrides {
            source: self.source,
            target,
            rate,
            duration_seconds,
            bad_percent: self.bad_percent,
            fleet: self.fleet,
            seed: self.seed,
            metrics_listen,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where it goes: postgres or kafka.
    #[arg(long)]
    target: Option<String>,
    /// Changes per second (0: as fast as the target accepts).
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds to run (0: until SIGTERM or SIGINT).
    #[arg(long)]
    duration: Option<u64>,
    /// host:port for /metrics and /healthz ("" to turn off).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Configuration file (default: connectors/producer.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The producer's configuration: `file` (default connectors/producer.toml)
/// under `overrides`, with the local stack's addresses where the
/// environment gives none.
pub(crate) fn config(
    dir: &Path,
    file: Option<PathBuf>,
    overrides: &producer::Overrides,
) -> anyhow::Result<producer::ProducerConfig> {
    let file = file.unwrap_or_else(|| dir.join("connectors/producer.toml"));
    let local = crate::local_stack(dir)?;
    let defaults = producer::ServiceDefaults {
        database_url: local.get("DATABASE_URL").cloned(),
        kafka_bootstrap_servers: local.get("KAFKA_BOOTSTRAP_SERVERS").cloned(),
        schema_registry_url: local.get("SCHEMA_REGISTRY_URL").cloned(),
        env: crate::process_env(),
    };
    Ok(producer::ProducerConfig::load(Some(&file), overrides, defaults)?)
}

pub(crate) fn run(dir: &Path, args: ProduceArgs) -> anyhow::Result<Outcome> {
    let overrides = args
        .data
        .overrides(args.target, args.rate, args.duration, args.metrics_listen);
    let config = config(dir, args.config, &overrides)?;
    let target = config.target.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            let _ = tx.send(true);
        });
        producer::run(config, rx).await
    })?;
    let bad: Vec<String> = summary.bad_by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!(
        "produced {} changes in {:.1} s ({:.0}/s): {} inserts, {} updates, {} deletes; bad rows injected: {}",
        summary.total(),
        summary.elapsed.as_secs_f64(),
        summary.per_second(),
        summary.inserts,
        summary.updates,
        summary.deletes,
        if bad.is_empty() {
            "none".to_string()
        } else {
            bad.join(", ")
        }
    );
    if summary.malformed > 0 {
        println!(
            "{} malformed inputs skipped (see the warnings above)",
            summary.malformed
        );
    }
    if let producer::Target::Kafka(_) = target {
        println!(
            "kafka: {} records acknowledged by the broker, {} of them dead-lettered",
            summary.acknowledged, summary.dead_lettered
        );
    }
    Ok(Outcome::Ok)
}
