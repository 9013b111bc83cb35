//! Debezium's PostgreSQL connector in Kafka Connect standalone mode: the
//! design Contrail replaces, run on the same machine for the side-by-side
//! benchmark (`cdc`'s `vs_debezium`) and its smoke test. Never part of
//! `contrail stack up`.
//!
//! ```text
//! jars: mvn copy-dependencies ─▶ <cache>/debezium-<version>/libs
//!       (connect-runtime + connect-json of the broker's Kafka version,
//!        debezium-connector-postgres)
//! DebeziumWorker::start ─▶ worker.properties + connector.properties in its
//!       directory ─▶ java … ConnectStandalone ─▶ PostgreSQL slot ─▶ Kafka
//! ```
//!
//! The settings are Debezium's fastest documented ones (see
//! [`FAST_SETTINGS`]); offsets are kept in a file, as standalone mode does.
//! The worker is stopped, and its directory removed, on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::kafka::{java, maven_jars, KAFKA_VERSION, LOG4J_VERSION};
use crate::{io_err, StackError};

/// The Debezium release, and the Kafka Connect runtime it runs in (the
/// broker's version: Debezium 3.6 is built for Kafka 4.1).
pub const DEBEZIUM_VERSION: &str = "3.6.1.Final";

/// Debezium's and Kafka Connect's settings for throughput, as their
/// documentation gives them, next to what they replace (the defaults).
pub const FAST_SETTINGS: [(&str, &str); 8] = [
    // connector: the plugin PostgreSQL ships, and bigger batches, polled
    // at once (defaults 2048, 8192, 500 ms)
    ("plugin.name", "pgoutput"),
    ("max.batch.size", "10240"),
    ("max.queue.size", "81920"),
    ("poll.interval.ms", "1"),
    // worker's producer: batch more, as Contrail's does (defaults 0 ms
    // before Kafka 4.0's 5 ms, 16 KiB); no compression, as Contrail
    // (the broker is local: compressing only costs CPU)
    ("producer.linger.ms", "5"),
    ("producer.batch.size", "1048576"),
    ("producer.compression.type", "none"),
    // JSON without the schema in every message
    ("value.converter.schemas.enable", "false"),
];

fn pom() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by the Debezium benchmark: Kafka Connect and Debezium's PostgreSQL connector. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.contrail.bench</groupId>
  <artifactId>debezium-connect</artifactId>
  <version>{DEBEZIUM_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-json</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>io.debezium</groupId><artifactId>debezium-connector-postgres</artifactId><version>{DEBEZIUM_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
"#
    )
}

/// The directory holding Kafka Connect's and Debezium's jars, fetched with
/// Maven once per machine.
pub fn jars(cache_dir: &Path) -> Result<PathBuf, StackError> {
    maven_jars(
        &cache_dir.join(format!("debezium-{DEBEZIUM_VERSION}")),
        &pom(),
        &format!("debezium-connector-postgres-{DEBEZIUM_VERSION}.jar"),
        &format!("Kafka Connect {KAFKA_VERSION} and Debezium {DEBEZIUM_VERSION}"),
    )
}

/// What the connector captures, and where to.
#[derive(Debug, Clone)]
pub struct DebeziumConfig {
    pub bootstrap_servers: String,
    /// `postgres://user:password@host:port/db`
    pub database_url: String,
    /// `schema.table`
    pub table: String,
    pub slot: String,
    pub publication: String,
    /// Topics are `<prefix>.<schema>.<table>`, created by Kafka Connect
    /// with this many partitions (replication 1: the local broker) and
    /// `LogAppendTime`, so the broker stamps when it appended each record.
    pub topic_prefix: String,
    pub partitions: i32,
}

/// A running Kafka Connect worker with the connector.
#[derive(Debug)]
pub struct DebeziumWorker {
    child: Child,
    dir: PathBuf,
}

impl DebeziumWorker {
    /// The worker's process (its JVM), for CPU and memory accounting.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a worker in a fresh directory under `dir`; its log is
    /// `<dir>/connect.log`. Returns once the JVM is started (the connector
    /// starts soon after: wait on its output).
    pub fn start(cfg: &DebeziumConfig, dir: &Path) -> Result<DebeziumWorker, StackError> {
        let cache = crate::cache_dir(&crate::process_env).ok_or_else(|| {
            StackError::Config("neither XDG_CACHE_HOME nor HOME is set: no cache for the jars".into())
        })?;
        let libs = jars(&cache)?;
        let java = java()?;
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))
        };
        write("worker.properties", worker_properties(cfg, dir))?;
        write("connector.properties", connector_properties(cfg)?)?;
        write("log4j2.properties", LOG4J2.to_string())?;
        let log = std::fs::File::create(dir.join("connect.log")).map_err(io_err("creating connect.log"))?;
        let err = log.try_clone().map_err(io_err("opening connect.log"))?;
        let child = Command::new(java)
            .args(["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true"])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                dir.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg("org.apache.kafka.connect.cli.ConnectStandalone")
            .arg(dir.join("worker.properties"))
            .arg(dir.join("connector.properties"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io_err("starting Kafka Connect (java)"))?;
        Ok(DebeziumWorker {
            child,
            dir: dir.to_path_buf(),
        })
    }

    /// Stops the worker and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DebeziumWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

const LOG4J2: &str = "status = warn\n\
    appender.out.type = Console\n\
    appender.out.name = out\n\
    appender.out.layout.type = PatternLayout\n\
    appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
    rootLogger.level = info\n\
    rootLogger.appenderRef.out.ref = out\n";

/// The standalone worker: JSON converters, offsets in a file, the
/// producer settings of [`FAST_SETTINGS`].
fn worker_properties(cfg: &DebeziumConfig, dir: &Path) -> String {
    let mut out = format!(
        "bootstrap.servers={}\n\
         key.converter=org.apache.kafka.connect.json.JsonConverter\n\
         value.converter=org.apache.kafka.connect.json.JsonConverter\n\
         key.converter.schemas.enable=false\n\
         offset.storage.file.filename={}\n\
         offset.flush.interval.ms=1000\n",
        cfg.bootstrap_servers,
        dir.join("offsets").display()
    );
    for (k, v) in FAST_SETTINGS
        .iter()
        .filter(|(k, _)| k.starts_with("producer.") || k.contains("converter"))
    {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// The connector: Debezium's PostgreSQL connector on `cfg.table`, no
/// initial snapshot (the benchmark measures the stream), the connector
/// settings of [`FAST_SETTINGS`].
fn connector_properties(cfg: &DebeziumConfig) -> Result<String, StackError> {
    let url = Url::parse(&cfg.database_url)?;
    let mut out = format!(
        "name=contrail-bench-debezium\n\
         connector.class=io.debezium.connector.postgresql.PostgresConnector\n\
         tasks.max=1\n\
         database.hostname={}\n\
         database.port={}\n\
         database.user={}\n\
         database.password={}\n\
         database.dbname={}\n\
         topic.prefix={}\n\
         table.include.list={}\n\
         slot.name={}\n\
         publication.name={}\n\
         publication.autocreate.mode=filtered\n\
         snapshot.mode=no_data\n\
         decimal.handling.mode=double\n\
         topic.creation.default.replication.factor=1\n\
         topic.creation.default.partitions={}\n\
         topic.creation.default.message.timestamp.type=LogAppendTime\n",
        url.host,
        url.port,
        url.user,
        url.password,
        url.db,
        cfg.topic_prefix,
        cfg.table,
        cfg.slot,
        cfg.publication,
        cfg.partitions
    );
    for (k, v) in FAST_SETTINGS
        .iter()
        .filter(|(k, _)| !k.starts_with("producer.") && !k.contains("converter"))
    {
        out.push_str(&format!("{k}={v}\n"));
    }
    Ok(out)
}

/// The parts of a `postgres://user:password@host:port/db` URL.
struct Url {
    user: String,
    password: String,
    host: String,
    port: u16,
    db: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, StackError> {
        let bad = || StackError::Config(format!("not a postgres://user:password@host:port/db URL: {url:?}"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(bad)?;
        let (auth, rest) = rest.split_once('@').ok_or_else(bad)?;
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (hostport, db) = rest.split_once('/').ok_or_else(bad)?;
        let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
        Ok(Url {
            user: user.to_string(),
            password: password.to_string(),
            host: host.to_string(),
            port: port.parse().map_err(|_| bad())?,
            db: db.split('?').next().unwrap_or(db).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DebeziumConfig {
        DebeziumConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            database_url: "postgres://u:p@127.0.0.1:5432/db".into(),
            table: "public.flight_state".into(),
            slot: "debezium".into(),
            publication: "dbz".into(),
            topic_prefix: "dbz".into(),
            partitions: 3,
        }
    }

    #[test]
    fn every_fast_setting_lands_in_the_worker_or_the_connector() {
        let worker = worker_properties(&cfg(), Path::new("/tmp/w"));
        let connector = connector_properties(&cfg()).unwrap();
        for (k, v) in FAST_SETTINGS {
            let line = format!("{k}={v}\n");
            assert!(
                worker.contains(&line) ^ connector.contains(&line),
                "{k} in exactly one of the files"
            );
        }
        assert!(connector.contains("database.hostname=127.0.0.1\ndatabase.port=5432\ndatabase.user=u\n"));
        assert!(connector.contains("snapshot.mode=no_data\n"));
    }

    #[test]
    fn a_url_without_a_port_is_refused() {
        let mut c = cfg();
        c.database_url = "postgres://u:p@host/db".into();
        assert!(connector_properties(&c).is_err());
    }
}
