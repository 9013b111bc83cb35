//! The three services and how each is installed, started, probed and stopped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::health::{http_status, kafka_probe, port_free, port_open, port_owner};
use crate::kafka::{Broker, SecureListeners};
use crate::process::{self, is_root, running_pid, spawn_detached, tail, wait_until};
use crate::{
    io_err, StackConfig, StackError, FAKESNOW_VERSION, PG_DATABASE, PG_PASSWORD, PG_USER, POSTGRES_MAJOR,
    REGISTRY_DATABASE,
};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Kafka's controlled shutdown flushes and closes every partition's log:
/// seconds on the local stack, and a kill before the end means log recovery
/// at the next start.
const KAFKA_STOP_GRACE: Duration = Duration::from_secs(60);
const FAKESNOW_SERVER_PY: &str = include_str!("fakesnow_server.py");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Kafka,
    Snowflake,
    /// The schema registry; needs PostgreSQL, so it starts after it.
    Registry,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::Postgres, Service::Kafka, Service::Snowflake, Service::Registry];

    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Kafka => crate::kafka::SERVICE_NAME,
            Service::Snowflake => "snowflake (fakesnow)",
            Service::Registry => "schema registry",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Running and answering its protocol's health check.
    Healthy,
    /// Running but not answering.
    Unhealthy,
    Stopped,
}

#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub service: Service,
    pub state: ServiceState,
    pub port: u16,
    pub detail: String,
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ServiceState::Healthy => "healthy",
            ServiceState::Unhealthy => "UNHEALTHY",
            ServiceState::Stopped => "stopped",
        };
        write!(
            f,
            "{:<22} {:<9} 127.0.0.1:{:<6} {}",
            self.service.name(),
            state,
            self.port,
            self.detail
        )
    }
}

/// The registry is healthy when `/healthz` answers 200 (it checks its database).
fn registry_probe(port: u16) -> Result<(), String> {
    match http_status(port, "GET", "/healthz")? {
        200 => Ok(()),
        code => Err(format!("/healthz answered {code}")),
    }
}

/// The local stack of one project.
#[derive(Debug, Clone)]
pub struct Stack {
    cfg: StackConfig,
}

/// Left in the data directory by `up --secure`: a stack once secure stays
/// secure, so restarting one service (as the fault tests do, or `stack up`
/// without the flag) never drops the TLS and SASL listeners that stages
/// are configured for. Removing the data directory resets it.
const SECURE_MARKER: &str = "secure";

/// The secure stack's database that requires a client certificate.
pub const PG_MTLS_DATABASE: &str = "contrail_mtls";

impl Stack {
    /// A stack whose data directory holds the secure marker runs secure,
    /// whatever `cfg.secure` says.
    pub fn new(mut cfg: StackConfig) -> Self {
        if !cfg.secure && cfg.data_dir.join(SECURE_MARKER).is_file() {
            tracing::debug!(dir = %cfg.data_dir.display(), "the stack was brought up with --secure; it stays secure");
            cfg.secure = true;
        }
        Self { cfg }
    }

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.cfg.data_dir.join(name)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir("logs").join(format!("{name}.log"))
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.dir("run").join(format!("{name}.pid"))
    }

    fn log_name(&self, service: Service) -> &'static str {
        match service {
            Service::Postgres => "postgres",
            Service::Kafka => "kafka",
            Service::Snowflake => "fakesnow",
            Service::Registry => "registry",
        }
    }

    fn port(&self, service: Service) -> u16 {
        match service {
            Service::Postgres => self.cfg.pg_port,
            Service::Kafka => self.cfg.kafka_port,
            Service::Snowflake => self.cfg.snowflake_port,
            Service::Registry => self.cfg.registry_port,
        }
    }

    fn env_var(service: Service) -> &'static str {
        match service {
            Service::Postgres => "CONTRAIL_PG_PORT",
            Service::Kafka => "CONTRAIL_KAFKA_PORT",
            Service::Snowflake => "CONTRAIL_SNOWFLAKE_PORT",
            Service::Registry => "CONTRAIL_REGISTRY_PORT",
        }
    }

    fn prepare_dirs(&self) -> Result<(), StackError> {
        for d in ["logs", "run", "kafka", "fakesnow"] {
            std::fs::create_dir_all(self.dir(d)).map_err(io_err(format!("creating {}", self.dir(d).display())))?;
        }
        Ok(())
    }

    /// Starts every stopped service in `services` and waits until all are healthy.
    pub fn up(&self, services: &[Service]) -> Result<Vec<ServiceStatus>, StackError> {
        self.prepare_dirs()?;
        if self.cfg.secure {
            let marker = self.cfg.data_dir.join(SECURE_MARKER);
            std::fs::write(
                &marker,
                "brought up with `contrail stack up --secure`; it stays secure\n",
            )
            .map_err(io_err(format!("writing {}", marker.display())))?;
        }
        let mut out = Vec::new();
        for &s in services {
            let needs_restart = match s {
                Service::Kafka => self.kafka_needs_secure_restart(),
                Service::Registry => self.needs_secure_restart("registry", self.cfg.registry_https_port),
                Service::Snowflake => self.needs_secure_restart("fakesnow", self.cfg.snowflake_https_port),
                _ => false,
            };
            if needs_restart {
                tracing::info!(service = s.name(), "restarting with the secure listeners");
                self.stop(s)?;
            }
            let status = self.status_of(s);
            match status.state {
                ServiceState::Healthy => tracing::info!(service = s.name(), "already running"),
                ServiceState::Unhealthy => {
                    // It may still be starting; never kill it implicitly.
                    tracing::warn!(service = s.name(), detail = %status.detail, "running but not healthy yet; waiting");
                    let log = self.log(self.log_name(s));
                    wait_until(START_TIMEOUT, None, || match self.status_of(s).state {
                        ServiceState::Healthy => Ok(()),
                        _ => Err(self.status_of(s).detail),
                    })
                    .map_err(|reason| {
                        self.start_failed(
                            s,
                            &log,
                            format!("it is running but {reason}; restart it with `contrail stack down` and `contrail stack up`"),
                        )
                    })?;
                }
                ServiceState::Stopped => {
                    let started = std::time::Instant::now();
                    self.start(s)?;
                    let mut status = self.status_of(s);
                    status.detail = format!("started in {:.1} s", started.elapsed().as_secs_f64());
                    out.push(status);
                    continue;
                }
            }
            out.push(self.status_of(s));
        }
        if self.cfg.secure && services.contains(&Service::Postgres) {
            self.pg_secure()?;
        }
        Ok(out)
    }

    /// Stops the services (in reverse order); stopping a stopped service is a no-op.
    pub fn down(&self, services: &[Service]) -> Result<Vec<ServiceStatus>, StackError> {
        for &s in services.iter().rev() {
            self.stop(s)?;
        }
        Ok(services.iter().map(|&s| self.status_of(s)).collect())
    }

    pub fn status(&self) -> Vec<ServiceStatus> {
        Service::ALL.iter().map(|&s| self.status_of(s)).collect()
    }

    fn status_of(&self, service: Service) -> ServiceStatus {
        let port = self.port(service);
        let (running, probe) = match service {
            Service::Postgres => (self.pg_running(), self.pg_probe()),
            Service::Kafka => (
                running_pid(&self.pid_file("kafka")).is_some(),
                kafka_probe(port).map(|_| ()),
            ),
            Service::Snowflake => (
                running_pid(&self.pid_file("fakesnow")).is_some(),
                http_status(port, "GET", "/").map(|_| ()),
            ),
            Service::Registry => (running_pid(&self.pid_file("registry")).is_some(), registry_probe(port)),
        };
        let (state, detail) = match (running, probe) {
            (true, Ok(())) => (ServiceState::Healthy, String::new()),
            (true, Err(e)) => (ServiceState::Unhealthy, e),
            (false, _) if port_open(port) => (
                ServiceState::Stopped,
                format!("port {port} is taken by {}", Self::owner(port)),
            ),
            (false, _) => (ServiceState::Stopped, String::new()),
        };
        ServiceStatus {
            service,
            state,
            port,
            detail,
        }
    }

    fn owner(port: u16) -> String {
        port_owner(port).unwrap_or_else(|| "another program".into())
    }

    /// Every port the service will bind is free (Kafka binds two).
    fn ensure_port_free(&self, service: Service) -> Result<(), StackError> {
        let mut ports = vec![(self.port(service), Self::env_var(service))];
        if service == Service::Registry && self.cfg.secure {
            ports.push((self.cfg.registry_https_port, "CONTRAIL_REGISTRY_HTTPS_PORT"));
        }
        if service == Service::Snowflake && self.cfg.secure {
            ports.push((self.cfg.snowflake_https_port, "CONTRAIL_SNOWFLAKE_HTTPS_PORT"));
        }
        if service == Service::Kafka {
            ports.push((self.cfg.kafka_controller_port, "CONTRAIL_KAFKA_CONTROLLER_PORT"));
            if self.cfg.secure {
                ports.push((self.cfg.kafka_sasl_port, "CONTRAIL_KAFKA_SASL_PORT"));
                ports.push((self.cfg.kafka_mtls_port, "CONTRAIL_KAFKA_MTLS_PORT"));
            }
        }
        match ports.into_iter().find(|(p, _)| !port_free(*p)) {
            None => Ok(()),
            Some((port, env_var)) => Err(StackError::PortTaken {
                service: service.name(),
                port,
                owner: Self::owner(port),
                env_var,
            }),
        }
    }

    fn start(&self, service: Service) -> Result<(), StackError> {
        self.ensure_port_free(service)?;
        tracing::info!(service = service.name(), port = self.port(service), "starting");
        match service {
            Service::Postgres => self.pg_start(),
            Service::Kafka => self.kafka_start(),
            Service::Snowflake => self.fakesnow_start(),
            Service::Registry => self.registry_start(),
        }
    }

    fn stop(&self, service: Service) -> Result<(), StackError> {
        match service {
            Service::Postgres => {
                if self.pg_running() {
                    tracing::info!(service = service.name(), "stopping");
                    let mut cmd = self.as_pg_user(&self.pg_bin("pg_ctl")?);
                    cmd.arg("-D")
                        .arg(self.dir("postgres"))
                        .args(["-m", "fast", "-w", "stop"]);
                    process::run("pg_ctl stop", &mut cmd)?;
                }
            }
            Service::Kafka | Service::Snowflake | Service::Registry => {
                let name = self.log_name(service);
                if let Some(pid) = running_pid(&self.pid_file(name)) {
                    tracing::info!(service = service.name(), pid, "stopping");
                    let grace = if service == Service::Kafka {
                        KAFKA_STOP_GRACE
                    } else {
                        STOP_GRACE
                    };
                    process::stop(pid, grace);
                }
                let _ = std::fs::remove_file(self.pid_file(name));
            }
        }
        Ok(())
    }

    fn start_failed(&self, service: Service, log: &Path, reason: String) -> StackError {
        StackError::StartFailed {
            service: service.name(),
            reason,
            log: log.display().to_string(),
            tail: tail(log, 30),
        }
    }

    // --- PostgreSQL -------------------------------------------------------

    fn pg_bin_dir() -> PathBuf {
        std::env::var_os("CONTRAIL_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")))
    }

    /// The path of a PostgreSQL tool, installing PostgreSQL when it is
    /// missing and we are root on Debian.
    fn pg_bin(&self, tool: &str) -> Result<PathBuf, StackError> {
        let path = Self::pg_bin_dir().join(tool);
        if path.exists() {
            return Ok(path);
        }
        if is_root() && Path::new("/usr/bin/apt-get").exists() {
            tracing::info!("installing postgresql-{POSTGRES_MAJOR} with apt-get");
            let pkg = format!("postgresql-{POSTGRES_MAJOR}");
            let install = || {
                process::run(
                    "apt-get install",
                    Command::new("apt-get")
                        .args(["install", "-y", "--no-install-recommends", &pkg])
                        .env("DEBIAN_FRONTEND", "noninteractive"),
                )
            };
            if install().is_err() {
                process::run("apt-get update", Command::new("apt-get").arg("update"))?;
                install()?;
            }
            if path.exists() {
                return Ok(path);
            }
        }
        Err(StackError::Missing {
            what: format!("PostgreSQL {POSTGRES_MAJOR} ({})", path.display()),
            hint: format!(
                "install Debian's postgresql-{POSTGRES_MAJOR} package, or set CONTRAIL_PG_BIN to its bin directory"
            ),
        })
    }

    /// A command for a PostgreSQL tool, run as `postgres` when we are root
    /// (the server refuses to run as root).
    fn as_pg_user(&self, tool: &Path) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        }
    }

    fn pg_running(&self) -> bool {
        let Ok(pg_ctl) = self.pg_bin_if_present("pg_ctl") else {
            return false;
        };
        self.as_pg_user(&pg_ctl)
            .arg("status")
            .arg("-D")
            .arg(self.dir("postgres"))
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Like `pg_bin`, without installing anything (for status checks).
    fn pg_bin_if_present(&self, tool: &str) -> Result<PathBuf, ()> {
        let p = Self::pg_bin_dir().join(tool);
        if p.exists() {
            Ok(p)
        } else {
            Err(())
        }
    }

    fn pg_probe(&self) -> Result<(), String> {
        let isready = self
            .pg_bin_if_present("pg_isready")
            .map_err(|()| "pg_isready not installed".to_string())?;
        let out = Command::new(isready)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.cfg.pg_port.to_string(),
                "-d",
                PG_DATABASE,
                "-U",
                PG_USER,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
    }

    fn psql_admin(&self, sql: &str) -> Result<String, StackError> {
        let psql = self.pg_bin("psql")?;
        let mut cmd = self.as_pg_user(&psql);
        cmd.arg("-h")
            .arg(self.dir("postgres"))
            .args(["-p", &self.cfg.pg_port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql]);
        process::run("psql", &mut cmd)
    }

    /// Under root the server runs as `postgres`, which must be able to
    /// reach the cluster's directory: a stack in root's home cannot work.
    fn pg_user_reaches(&self, data: &Path) -> Result<(), StackError> {
        let reaches = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-x"])
            .arg(data.parent().unwrap_or(data))
            .status()
            .is_ok_and(|s| s.success());
        if reaches {
            return Ok(());
        }
        Err(StackError::Config(format!(
            "PostgreSQL runs as the postgres user, which cannot reach {}: put the stack where it can \
             (set CONTRAIL_STACK_DIR, e.g. under /tmp), or open the directories on the way (chmod o+x)",
            data.display()
        )))
    }

    fn pg_start(&self) -> Result<(), StackError> {
        let data = self.dir("postgres");
        let log = self.log("postgres");
        let initdb = self.pg_bin("initdb")?;
        if !data.join("PG_VERSION").exists() {
            tracing::info!(dir = %data.display(), "initialising a PostgreSQL cluster");
            std::fs::create_dir_all(&data).map_err(io_err(format!("creating {}", data.display())))?;
            if is_root() {
                self.pg_user_reaches(&data)?;
                process::run(
                    "chown",
                    Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data),
                )?;
            }
            let mut cmd = self.as_pg_user(&initdb);
            cmd.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ]);
            process::run("initdb", &mut cmd)?;
            let conf = format!(
                "\n# Contrail local stack\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = logical\nmax_replication_slots = 16\nmax_wal_senders = 16\nwal_sender_timeout = 60s\n",
                data.display()
            );
            let conf_path = data.join("postgresql.conf");
            let mut text =
                std::fs::read_to_string(&conf_path).map_err(io_err(format!("reading {}", conf_path.display())))?;
            text.push_str(&conf);
            std::fs::write(&conf_path, text).map_err(io_err(format!("writing {}", conf_path.display())))?;
        }
        // The log must be writable by the server's user.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err(format!("creating {}", log.display())))?;
        if is_root() {
            process::run("chown", Command::new("chown").arg("postgres:postgres").arg(&log))?;
        }
        let mut cmd = self.as_pg_user(&self.pg_bin("pg_ctl")?);
        cmd.arg("-D").arg(&data).arg("-l").arg(&log).args([
            "-o",
            &format!("-p {}", self.cfg.pg_port),
            "-w",
            "-t",
            "60",
            "start",
        ]);
        if let Err(e) = process::run("pg_ctl start", &mut cmd) {
            return Err(self.start_failed(Service::Postgres, &log, e.to_string()));
        }
        // Role and database for the pipeline (idempotent).
        self.psql_admin(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_USER}') THEN \
             CREATE ROLE {PG_USER} LOGIN REPLICATION PASSWORD '{PG_PASSWORD}'; END IF; END $$;"
        ))?;
        // Tests create a database of their own each.
        self.psql_admin(&format!("ALTER ROLE {PG_USER} CREATEDB"))?;
        for db in [PG_DATABASE, REGISTRY_DATABASE] {
            let exists = self.psql_admin(&format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"))?;
            if exists.trim() != "1" {
                self.psql_admin(&format!("CREATE DATABASE {db} OWNER {PG_USER}"))?;
            }
        }
        wait_until(START_TIMEOUT, None, || self.pg_probe()).map_err(|r| self.start_failed(Service::Postgres, &log, r))
    }

    /// The secure stack's PostgreSQL: `ssl=on` with the stack's
    /// certificate, copied into the cluster's directory (the server's user
    /// must own its key), by `ALTER SYSTEM` and a reload, so a running
    /// server turns secure without a restart. Plaintext stays allowed for
    /// the stack's own tools; clients choose with `sslmode`.
    fn pg_secure(&self) -> Result<(), StackError> {
        let tls = self.cfg.tls();
        tls.ensure()?;
        let data = self.dir("postgres");
        self.pg_client_cert_rules(&data)?;
        for (from, to) in [
            (tls.server_cert(), "server.crt"),
            (tls.server_key(), "server.key"),
            (tls.ca(), "root.crt"),
        ] {
            let dest = data.join(to);
            std::fs::copy(&from, &dest).map_err(io_err(format!("copying {} to {}", from.display(), dest.display())))?;
            crate::tls::restrict(&dest)?;
            if is_root() {
                process::run("chown", Command::new("chown").arg("postgres:postgres").arg(&dest))?;
            }
        }
        for sql in [
            "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
            "ALTER SYSTEM SET ssl_key_file = 'server.key'",
            // Client certificates are verified against the stack's CA.
            "ALTER SYSTEM SET ssl_ca_file = 'root.crt'",
            "ALTER SYSTEM SET ssl = on",
            "SELECT pg_reload_conf()",
        ] {
            self.psql_admin(sql)?;
        }
        let exists = self.psql_admin(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{PG_MTLS_DATABASE}'"
        ))?;
        if exists.trim().is_empty() {
            self.psql_admin(&format!("CREATE DATABASE {PG_MTLS_DATABASE} OWNER {}", crate::PG_USER))?;
        }
        // The reload is asynchronous: wait until the server reports it.
        wait_until(START_TIMEOUT, None, || match self.psql_admin("SHOW ssl") {
            Ok(v) if v.trim() == "on" => Ok(()),
            Ok(v) => Err(format!("ssl is {v:?} after the reload")),
            Err(e) => Err(e.to_string()),
        })
        .map_err(|r| self.start_failed(Service::Postgres, &self.log("postgres"), r))
    }

    /// `pg_hba.conf` rules, first, for the database that takes only a
    /// client certificate signed by the stack's CA whose CN is the user
    /// (`cert`), as Cloud SQL and self-managed servers can require.
    fn pg_client_cert_rules(&self, data: &Path) -> Result<(), StackError> {
        let hba = data.join("pg_hba.conf");
        let text = std::fs::read_to_string(&hba).map_err(io_err(format!("reading {}", hba.display())))?;
        if text.contains(PG_MTLS_DATABASE) {
            return Ok(());
        }
        let db = PG_MTLS_DATABASE;
        let rules = format!(
            "# contrail stack up --secure: {db} takes client certificates only\n\
             hostssl {db} all 127.0.0.1/32 cert\n\
             hostssl {db} all ::1/128 cert\n\
             host {db} all all reject\n"
        );
        std::fs::write(&hba, rules + &text).map_err(io_err(format!("writing {}", hba.display())))
    }

    // --- Kafka --------------------------------------------------------------

    fn kafka_broker(&self) -> Result<Broker, StackError> {
        let secure = if self.cfg.secure {
            let tls = self.cfg.tls();
            tls.ensure()?;
            tls.ensure_oauth()?;
            Some(SecureListeners {
                sasl_port: self.cfg.kafka_sasl_port,
                mtls_port: self.cfg.kafka_mtls_port,
                password: tls.kafka_password()?,
                tls,
            })
        } else {
            None
        };
        Ok(Broker {
            dir: self.dir("kafka"),
            port: self.cfg.kafka_port,
            controller_port: self.cfg.kafka_controller_port,
            secure,
        })
    }

    /// Whether a running broker was started with other settings than
    /// `--secure` writes now (older secure listeners, or none): the file
    /// it was started with is compared with the one a start would write.
    /// (A secure broker serves plaintext too, so `up` without `--secure`
    /// leaves it alone.)
    fn kafka_needs_secure_restart(&self) -> bool {
        if !self.cfg.secure {
            return false;
        }
        let running = std::fs::read_to_string(self.dir("kafka").join("server.properties")).ok();
        // Material that cannot be made now fails again, with its reason, at the start.
        self.kafka_broker().map_or(true, |broker| {
            running.as_deref() != Some(broker.server_properties().as_str())
        })
    }

    /// Whether a running service (by its pid file) lacks the HTTPS
    /// listener `--secure` asks for.
    fn needs_secure_restart(&self, pid_name: &str, https_port: u16) -> bool {
        self.cfg.secure && running_pid(&self.pid_file(pid_name)).is_some() && !port_open(https_port)
    }

    fn kafka_start(&self) -> Result<(), StackError> {
        let log = self.log("kafka");
        let broker = self.kafka_broker()?;
        let cmd = broker.prepare(&self.cfg.cache_dir)?;
        let pid = spawn_detached(cmd, &log, &self.pid_file("kafka"))?;
        wait_until(START_TIMEOUT, Some(pid), || {
            kafka_probe(self.cfg.kafka_port).map(|_| ())
        })
        .map_err(|r| self.start_failed(Service::Kafka, &log, r))?;
        broker.add_scram_user(&self.cfg.cache_dir)
    }

    // --- schema registry ----------------------------------------------------

    fn registry_start(&self) -> Result<(), StackError> {
        let exe = self.cfg.contrail_exe.clone().ok_or_else(|| StackError::Missing {
            what: "the contrail executable".into(),
            hint: "start the stack with `contrail stack up`".into(),
        })?;
        let log = self.log("registry");
        let mut cmd = Command::new(exe);
        let plain = format!("127.0.0.1:{}", self.cfg.registry_port);
        cmd.arg("--project-dir")
            .arg(&self.cfg.project_dir)
            .args(["registry", "serve"])
            .env("SCHEMA_REGISTRY_DATABASE_URL", self.cfg.registry_database_url());
        if self.cfg.secure {
            // HTTPS with the stack's users; the plaintext port stays
            // anonymous on loopback, as Kafka keeps its PLAINTEXT listener.
            let tls = self.cfg.tls();
            tls.ensure()?;
            tls.ensure_registry_users()?;
            cmd.args(["--listen", &format!("127.0.0.1:{}", self.cfg.registry_https_port)])
                .args(["--local-listen", &plain])
                .env("CONTRAIL_REGISTRY_TLS_CERT_FILE", tls.server_cert())
                .env("CONTRAIL_REGISTRY_TLS_KEY_FILE", tls.server_key())
                .env("CONTRAIL_REGISTRY_USERS_FILE", tls.registry_users());
        } else {
            cmd.args(["--listen", &plain]);
        }
        let pid = spawn_detached(cmd, &log, &self.pid_file("registry"))?;
        wait_until(START_TIMEOUT, Some(pid), || registry_probe(self.cfg.registry_port))
            .map_err(|r| self.start_failed(Service::Registry, &log, r))
    }

    // --- fakesnow ---------------------------------------------------------

    fn fakesnow_python(&self) -> Result<PathBuf, StackError> {
        let python = self.cfg.fakesnow_python();
        let venv = python
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&self.cfg.cache_dir)
            .to_path_buf();
        let importable = |p: &Path| {
            Command::new(p)
                .args(["-c", "import fakesnow.server, uvicorn"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if python.exists() && importable(&python) {
            return Ok(python);
        }
        tracing::info!(venv = %venv.display(), "installing fakesnow {FAKESNOW_VERSION} into a virtualenv");
        std::fs::create_dir_all(&self.cfg.cache_dir)
            .map_err(io_err(format!("creating {}", self.cfg.cache_dir.display())))?;
        process::run(
            "python3 -m venv",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )
        .map_err(|e| StackError::Missing {
            what: "python3 with venv".into(),
            hint: format!("{e}; install python3 and python3-venv"),
        })?;
        // fakesnow 0.12.1 does not import with snowflake-connector-python 5.
        process::run(
            "pip install fakesnow",
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                &format!("fakesnow[server]=={FAKESNOW_VERSION}"),
                "snowflake-connector-python<5",
            ]),
        )?;
        if importable(&python) {
            Ok(python)
        } else {
            Err(StackError::Missing {
                what: "fakesnow".into(),
                hint: format!("pip installed it into {} but it does not import", venv.display()),
            })
        }
    }

    fn fakesnow_start(&self) -> Result<(), StackError> {
        let python = self.fakesnow_python()?;
        let script = self.dir("run").join("fakesnow_server.py");
        std::fs::write(&script, FAKESNOW_SERVER_PY).map_err(io_err(format!("writing {}", script.display())))?;
        let log = self.log("fakesnow");
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("127.0.0.1")
            .arg(self.cfg.snowflake_port.to_string())
            .arg(self.dir("fakesnow"));
        if self.cfg.secure {
            // The same databases over HTTPS too, with the stack's certificate.
            let tls = self.cfg.tls();
            tls.ensure()?;
            tls.ensure_snowflake_key()?;
            cmd.arg(self.cfg.snowflake_https_port.to_string())
                .arg(tls.server_cert())
                .arg(tls.server_key());
        }
        let pid = spawn_detached(cmd, &log, &self.pid_file("fakesnow"))?;
        wait_until(START_TIMEOUT, Some(pid), || {
            http_status(self.cfg.snowflake_port, "GET", "/").map(|_| ())
        })
        .map_err(|r| self.start_failed(Service::Snowflake, &log, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> StackConfig {
        let env = |name: &str| (name == "CONTRAIL_STACK_DIR").then(|| dir.display().to_string());
        StackConfig::from_env(dir, &env).unwrap()
    }

    #[test]
    fn a_stack_brought_up_secure_stays_secure() {
        let dir = std::env::temp_dir().join(format!("contrail-secure-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!Stack::new(config(&dir)).config().secure, "a fresh stack is plain");
        std::fs::write(dir.join(SECURE_MARKER), "").unwrap();
        assert!(Stack::new(config(&dir)).config().secure, "the marker keeps it secure");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
