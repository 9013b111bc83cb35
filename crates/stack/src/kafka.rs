//! Apache Kafka for the local stack: one KRaft node that is both broker and
//! controller, run from the jars Maven Central serves.
//!
//! - [`jars`] fetches `org.apache.kafka:kafka_2.13` and its runtime
//!   dependencies once per machine into `<cache>/kafka-<version>/libs`, by
//!   `mvn dependency:copy-dependencies` on a small pom written next to them.
//!   Maven downloads into its own repository first, and the copy lands in a
//!   temporary directory renamed into place, so an interrupted fetch is
//!   never taken for a complete one.
//! - [`Broker`] lays out one node's directory (`server.properties`,
//!   `log4j2.properties`, `data/`), formats the storage on first start and
//!   builds the `java` command. The quorum is static
//!   (`controller.quorum.voters`), so a node keeps working when its ports
//!   are changed between starts.
//!
//! Topics are never auto-created, as on production clusters: the stages
//! create theirs through the admin API. Replication factors of the
//! internal topics are 1, which only a one-node cluster may use.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;
use crate::{io_err, StackError};

/// The broker's version, pinned (a macro, so names can be built from it).
macro_rules! kafka_version {
    () => {
        "4.1.1"
    };
}
pub const KAFKA_VERSION: &str = kafka_version!();
/// How `contrail stack status` names the broker.
pub(crate) const SERVICE_NAME: &str = concat!("kafka (apache ", kafka_version!(), ")");
/// Kafka 4.x logs through SLF4J 1.7 into Log4j 2; this is the binding its
/// own distribution ships.
pub(crate) const LOG4J_VERSION: &str = "2.24.3";
const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies";
/// The JVM's heap: Kafka's own default is 1 GiB; the local stack's traffic
/// needs far less, and the machine runs two of them when tests run.
const HEAP: [&str; 2] = ["-Xms256m", "-Xmx768m"];
const MIN_JAVA: u32 = 17;

fn pom() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `contrail stack up`: the jars of the local stack's Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.contrail.stack</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"#
    )
}

/// The directory holding the broker's jars, fetched with Maven when missing.
pub(crate) fn jars(cache_dir: &Path) -> Result<PathBuf, StackError> {
    let home = cache_dir.join(format!("kafka-{KAFKA_VERSION}"));
    maven_jars(
        &home,
        &pom(),
        &format!("kafka_2.13-{KAFKA_VERSION}.jar"),
        &format!("Apache Kafka {KAFKA_VERSION}"),
    )
}

/// `<home>/libs`, holding the runtime dependencies of `pom` (written to
/// `<home>/pom.xml`), fetched by Maven once: `marker` is a jar that is
/// there only when a fetch completed.
pub(crate) fn maven_jars(home: &Path, pom: &str, marker: &str, what: &str) -> Result<PathBuf, StackError> {
    let libs = home.join("libs");
    if libs.join(marker).is_file() {
        return Ok(libs);
    }
    let mvn = which("mvn").ok_or_else(|| StackError::Missing {
        what: format!("Maven (mvn), which fetches the jars of {what}"),
        hint: "install Debian's maven package (`apt-get install maven`), or run ./scripts/env.sh".into(),
    })?;
    std::fs::create_dir_all(home).map_err(io_err(format!("creating {}", home.display())))?;
    std::fs::write(home.join("pom.xml"), pom).map_err(io_err(format!("writing {}/pom.xml", home.display())))?;
    let partial = home.join("libs.partial");
    let _ = std::fs::remove_dir_all(&partial);
    tracing::info!(dir = %libs.display(), "fetching {what} from Maven Central (once per machine)");
    process::run(
        &format!("mvn dependency:copy-dependencies (the jars of {what})"),
        Command::new(mvn)
            .current_dir(home)
            .args(["-q", "-B", DEPENDENCY_PLUGIN, "-DincludeScope=runtime"])
            .arg(format!("-DoutputDirectory={}", partial.display())),
    )?;
    let _ = std::fs::remove_dir_all(&libs);
    std::fs::rename(&partial, &libs).map_err(io_err(format!("moving the jars into {}", libs.display())))?;
    Ok(libs)
}

/// `java` from `JAVA_HOME` or the `PATH`, checked to be Java 17 or newer.
pub(crate) fn java() -> Result<PathBuf, StackError> {
    let missing = |found: String| StackError::Missing {
        what: format!("Java {MIN_JAVA} or newer, which runs the Kafka broker ({found})"),
        hint: "install Debian's openjdk-17-jre-headless package, or run ./scripts/env.sh; or set JAVA_HOME".into(),
    };
    let java = std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .filter(|j| j.is_file())
        .or_else(|| which("java"))
        .ok_or_else(|| missing("none found".into()))?;
    let out = Command::new(&java)
        .arg("-version")
        .output()
        .map_err(|e| missing(format!("{}: {e}", java.display())))?;
    let text = String::from_utf8_lossy(&out.stderr);
    match java_major(&text) {
        Some(major) if major >= MIN_JAVA => Ok(java),
        Some(major) => Err(missing(format!("{} is Java {major}", java.display()))),
        None => Err(missing(format!("{} printed no version", java.display()))),
    }
}

/// The major version in `java -version`'s first line (`… version "17.0.15" …`,
/// or `"1.8.0_392"` for Java 8).
fn java_major(version_output: &str) -> Option<u32> {
    let quoted = version_output.lines().next()?.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// One node's directory and ports.
#[derive(Debug, Clone)]
pub(crate) struct Broker {
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) controller_port: u16,
    /// The secure stack's listeners, when it runs secure.
    pub(crate) secure: Option<SecureListeners>,
}

/// A SASL_SSL listener (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, as MSK,
/// Aiven and Confluent Cloud offer them, and OAUTHBEARER with tokens
/// signed by the stack's key, checked against its JWKS file) and an SSL listener that requires
/// a client certificate (Aiven's mTLS). Both are advertised as `localhost`,
/// the one name the stack's certificate carries; the PLAINTEXT listener
/// stays for the stack's own health checks and admin.
#[derive(Debug, Clone)]
pub(crate) struct SecureListeners {
    pub(crate) sasl_port: u16,
    pub(crate) mtls_port: u16,
    pub(crate) tls: crate::tls::TlsMaterial,
    pub(crate) password: String,
}

/// The broker validates OAUTHBEARER tokens against this JWKS file; Kafka
/// 4 refuses OAuth URLs not allowed by this system property.
fn oauth_allowed_urls(tls: &crate::tls::TlsMaterial) -> String {
    format!(
        "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=file://{}",
        tls.oauth_jwks().display()
    )
}

impl SecureListeners {
    fn properties(&self) -> String {
        let (sasl, mtls) = (self.sasl_port, self.mtls_port);
        let password = &self.password;
        let user = crate::tls::KAFKA_USER;
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        format!(
            "# The secure stack (`contrail stack up --secure`).\n\
             listeners=PLAINTEXT://127.0.0.1:{{port}},CONTROLLER://127.0.0.1:{{cport}},SASL_SSL://127.0.0.1:{sasl},MTLS://127.0.0.1:{mtls}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{{port}},SASL_SSL://localhost:{sasl},MTLS://localhost:{mtls}\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL\n\
             listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN,OAUTHBEARER\n\
             listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}\n\
             listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}\n\
             listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}=\"{password}\";\n\
             listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;\n\
             listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler\n\
             # Kafka 4.1's default validator checked only the claims here, not the\n\
             # signature or audience: the broker's validator is named outright.\n\
             sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator\n\
             sasl.oauthbearer.jwks.endpoint.url=file://{jwks}\n\
             sasl.oauthbearer.expected.issuer={issuer}\n\
             sasl.oauthbearer.expected.audience={audience}\n\
             listener.name.mtls.ssl.client.auth=required\n\
             ssl.keystore.type=PEM\n\
             ssl.keystore.location={keystore}\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location={ca}\n",
            keystore = self.tls.server_keystore().display(),
            ca = self.tls.ca().display(),
            jwks = self.tls.oauth_jwks().display(),
            issuer = crate::tls::OAUTH_ISSUER,
            audience = crate::tls::OAUTH_AUDIENCE,
        )
    }
}

impl Broker {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn properties(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    /// `server.properties` for this node.
    pub(crate) fn server_properties(&self) -> String {
        let (port, cport) = (self.port, self.controller_port);
        let listeners = match &self.secure {
            None => format!(
                "listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            ),
            Some(secure) => secure
                .properties()
                .replace("{port}", &port.to_string())
                .replace("{cport}", &cport.to_string()),
        };
        format!(
            "# Written by `contrail stack up` at every start: edits are lost.\n\
             process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{cport}\n\
             {listeners}\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={data}\n\
             # As production clusters: topics are created on purpose, not by a typo.\n\
             auto.create.topics.enable=false\n\
             num.partitions=1\n\
             # One node: the internal topics cannot have more replicas.\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=10\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             # A consumer group of one need not wait for others to join.\n\
             group.initial.rebalance.delay.ms=0\n",
            data = self.data().display()
        )
    }

    fn log4j2_properties() -> &'static str {
        "# Written by `contrail stack up`: the broker logs to stdout, which the stack's log file keeps.\n\
         status = warn\n\
         appender.out.type = Console\n\
         appender.out.name = out\n\
         appender.out.layout.type = PatternLayout\n\
         appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
         rootLogger.level = info\n\
         rootLogger.appenderRef.out.ref = out\n\
         logger.state.name = state.change.logger\n\
         logger.state.level = warn\n"
    }

    fn java_command(&self, java: &Path, libs: &Path, main: &str) -> Command {
        let mut cmd = Command::new(java);
        cmd.args(HEAP)
            .args(["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError"])
            .arg("-Djava.awt.headless=true")
            .args(self.secure.as_ref().map(|s| oauth_allowed_urls(&s.tls)))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg("-cp")
            // The JVM expands `dir/*` itself.
            .arg(format!("{}/*", libs.display()))
            .arg(main)
            .current_dir(&self.dir);
        cmd
    }

    /// Writes the configuration, formats the storage on first start, and
    /// returns the command that runs the node.
    pub(crate) fn prepare(&self, cache_dir: &Path) -> Result<Command, StackError> {
        let java = java()?;
        let libs = jars(cache_dir)?;
        std::fs::create_dir_all(self.data()).map_err(io_err(format!("creating {}", self.data().display())))?;
        // In secure mode the file holds the PLAIN user's password.
        crate::tls::write_private(&self.properties(), &self.server_properties())?;
        let log4j = self.dir.join("log4j2.properties");
        std::fs::write(&log4j, Self::log4j2_properties()).map_err(io_err(format!("writing {}", log4j.display())))?;
        if !self.data().join("meta.properties").exists() {
            tracing::info!(dir = %self.data().display(), "formatting Kafka's storage");
            let cluster_id = cluster_id()?;
            let mut format = self.java_command(&java, &libs, "kafka.tools.StorageTool");
            format
                .args(["format", &format!("--cluster-id={cluster_id}"), "--config"])
                .arg(self.properties());
            process::run("formatting Kafka's storage (kafka-storage format)", &mut format)?;
        }
        let mut cmd = self.java_command(&java, &libs, "kafka.Kafka");
        cmd.arg(self.properties());
        Ok(cmd)
    }
}

impl Broker {
    /// Gives the secure stack's user its SCRAM credentials (both hash
    /// sizes), through the PLAINTEXT listener: KRaft keeps them in the
    /// cluster's metadata, and setting them again is harmless.
    pub(crate) fn add_scram_user(&self, cache_dir: &Path) -> Result<(), StackError> {
        let Some(secure) = &self.secure else { return Ok(()) };
        let (java, libs) = (java()?, jars(cache_dir)?);
        // One request may alter a user's credential only once.
        for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
            let mut cmd = self.java_command(&java, &libs, "kafka.admin.ConfigCommand");
            cmd.args(["--bootstrap-server", &format!("127.0.0.1:{}", self.port), "--alter"])
                .args(["--entity-type", "users", "--entity-name", crate::tls::KAFKA_USER])
                .arg("--add-config")
                .arg(format!("{mechanism}=[password={}]", secure.password));
            process::run(
                &format!("creating the {mechanism} user (kafka-configs --alter)"),
                &mut cmd,
            )?;
        }
        Ok(())
    }
}

/// A new cluster id: Kafka's form, a random UUID in URL-safe base64
/// without padding (22 characters), from the kernel's generator. Like
/// Kafka's own `Uuid.randomUuid`, never one that starts with `-`, which
/// command-line parsers take for an option.
fn cluster_id() -> Result<String, StackError> {
    loop {
        let id = random_id()?;
        if !id.starts_with('-') {
            return Ok(id);
        }
    }
}

pub(crate) fn random_id() -> Result<String, StackError> {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map_err(io_err("reading /proc/sys/kernel/random/uuid"))?;
    let hex: String = uuid.trim().chars().filter(|c| *c != '-').collect();
    match crate::tls::hex_bytes(&hex) {
        Some(b) if b.len() == 16 => Ok(crate::tls::base64url(&b)),
        _ => Err(StackError::Config(format!(
            "the kernel gave a malformed UUID: {uuid:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_are_read_in_both_styles() {
        assert_eq!(
            java_major("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("no version here"), None);
    }

    #[test]
    fn cluster_ids_are_kafkas_22_character_form() {
        assert_eq!(crate::tls::base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert_eq!(crate::tls::base64url(b"\x00\x01"), "AAE");
        let id = cluster_id().unwrap();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{id}"
        );
        assert_ne!(id, cluster_id().unwrap());
        // One in 64 random ids starts with '-': none of a few hundred may.
        assert!((0..500).all(|_| !cluster_id().unwrap().starts_with('-')));
    }

    #[test]
    fn the_secure_node_adds_sasl_ssl_and_mtls_listeners_on_loopback() {
        let b = Broker {
            dir: "/s/kafka".into(),
            port: 41000,
            controller_port: 41001,
            secure: Some(SecureListeners {
                sasl_port: 41002,
                mtls_port: 41003,
                tls: crate::tls::TlsMaterial::new(Path::new("/s")),
                password: "pw".into(),
            }),
        };
        let p = b.server_properties();
        for line in [
            "listeners=PLAINTEXT://127.0.0.1:41000,CONTROLLER://127.0.0.1:41001,SASL_SSL://127.0.0.1:41002,MTLS://127.0.0.1:41003",
            "advertised.listeners=PLAINTEXT://127.0.0.1:41000,SASL_SSL://localhost:41002,MTLS://localhost:41003",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL",
            "listener.name.mtls.ssl.client.auth=required",
            "ssl.truststore.location=/s/tls/ca.pem",
            "ssl.keystore.location=/s/tls/server-keystore.pem",
            "controller.quorum.voters=1@127.0.0.1:41001",
        ] {
            assert!(p.lines().any(|l| l == line), "{line} missing from\n{p}");
        }
        assert_eq!(p.matches("listeners=").count(), 2, "{p}");
    }

    #[test]
    fn the_node_listens_on_loopback_and_never_auto_creates_topics() {
        let b = Broker {
            dir: "/s/kafka".into(),
            port: 41000,
            controller_port: 41001,
            secure: None,
        };
        let p = b.server_properties();
        for line in [
            "listeners=PLAINTEXT://127.0.0.1:41000,CONTROLLER://127.0.0.1:41001",
            "controller.quorum.voters=1@127.0.0.1:41001",
            "auto.create.topics.enable=false",
            "log.dirs=/s/kafka/data",
        ] {
            assert!(p.lines().any(|l| l == line), "{line} missing from\n{p}");
        }
    }
}
