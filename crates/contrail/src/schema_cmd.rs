//! `contrail schema …`: lint, compile, check, codegen and Snowflake DDL over `schemas/`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use clap::Subcommand;
use idl::{Compiled, Severity, Subjects};
use schema::{CompatibilityLevel, Schema};

use crate::Outcome;

/// Where generated Rust goes, relative to the project directory.
const GENERATED_RS: &str = "crates/flight-types/src/generated.rs";
/// Where compiled per-subject schemas go.
const SUBJECT_SCHEMAS: &str = "registry/schemas";
const SUBJECTS_TOML: &str = "registry/subjects.toml";
/// Which warehouse tables follow which record, and where their DDL goes.
const SNOWFLAKE_TABLES_TOML: &str = "snowflake/tables.toml";
const SNOWFLAKE_TABLES_DIR: &str = "snowflake/tables";

#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Check naming, docs, defaults and rules; exits 1 on errors (and on warnings with --deny-warnings).
    Lint {
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Write registry/schemas/<subject>.avsc for every subject in registry/subjects.toml.
    Compile {
        /// Fail (exit 1) if the committed files differ instead of writing them.
        #[arg(long)]
        check: bool,
    },
    /// Check the working schemas against an earlier set: a directory (of .avdl
    /// files, or of <subject>.avsc files) or a schema registry URL.
    Check {
        #[arg(long)]
        against: String,
        /// Overrides each subject's level from registry/subjects.toml.
        #[arg(long)]
        level: Option<CompatibilityLevel>,
    },
    /// Generate the Rust types into crates/flight-types/src/generated.rs.
    Codegen {
        /// Fail (exit 1) if the committed file differs instead of writing it.
        #[arg(long)]
        check: bool,
    },
    /// Generate the Snowflake table DDL of snowflake/tables.toml into
    /// snowflake/tables/<table>/v<N>.sql, a new version when a record changed.
    Ddl {
        /// Fail (exit 1) if a committed file differs or a version is missing.
        #[arg(long)]
        check: bool,
    },
}

pub(crate) fn run(dir: &Path, command: SchemaCommand) -> anyhow::Result<Outcome> {
    let compiled = idl::compile_dir(&dir.join("schemas"))?;
    match command {
        SchemaCommand::Lint { deny_warnings } => lint(&compiled, deny_warnings),
        SchemaCommand::Compile { check } => compile(dir, &compiled, check),
        SchemaCommand::Check { against, level } => check_against(dir, &compiled, &against, level),
        SchemaCommand::Codegen { check } => codegen(dir, &compiled, check),
        SchemaCommand::Ddl { check } => ddl(dir, &compiled, check),
    }
}

fn relative(dir: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

fn lint(compiled: &Compiled, deny_warnings: bool) -> anyhow::Result<Outcome> {
    let messages = idl::lint(compiled);
    for m in &messages {
        println!("{m}");
    }
    let errors = messages.iter().filter(|m| m.severity == Severity::Error).count();
    let warnings = messages.len() - errors;
    println!(
        "{} schemas linted: {errors} errors, {warnings} warnings",
        compiled.schemas.len()
    );
    Ok(if errors > 0 || (deny_warnings && warnings > 0) {
        Outcome::CheckFailed
    } else {
        Outcome::Ok
    })
}

/// The `.avsc` text of every subject.
fn subject_files(dir: &Path, compiled: &Compiled) -> anyhow::Result<(Subjects, BTreeMap<String, String>)> {
    let subjects = Subjects::load(&dir.join(SUBJECTS_TOML), compiled)?;
    let files = subjects
        .subjects
        .iter()
        .filter_map(|s| {
            compiled
                .get(&s.schema)
                .map(|c| (s.name.clone(), idl::avsc_text(&c.json)))
        })
        .collect();
    Ok((subjects, files))
}

/// Writes `content` to `path`, or with `check` reports whether it differs.
fn write_or_check(dir: &Path, path: &Path, content: &str, check: bool) -> anyhow::Result<bool> {
    let current = std::fs::read_to_string(path).ok();
    if current.as_deref() == Some(content) {
        return Ok(true);
    }
    if check {
        println!(
            "{} is out of date: regenerate it with `contrail schema {}` and commit the result",
            relative(dir, path).display(),
            match path.extension().and_then(|e| e.to_str()) {
                Some("rs") => "codegen",
                Some("sql") => "ddl",
                _ => "compile",
            }
        );
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", relative(dir, path).display());
    Ok(true)
}

fn compile(dir: &Path, compiled: &Compiled, check: bool) -> anyhow::Result<Outcome> {
    let (_, files) = subject_files(dir, compiled)?;
    let out_dir = dir.join(SUBJECT_SCHEMAS);
    let mut clean = true;
    for (subject, text) in &files {
        clean &= write_or_check(dir, &out_dir.join(format!("{subject}.avsc")), text, check)?;
    }
    // A subject removed from subjects.toml leaves a stale file behind.
    if let Ok(entries) = std::fs::read_dir(&out_dir) {
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().is_some_and(|x| x == "avsc") && !files.contains_key(stem) {
                if check {
                    println!(
                        "{} belongs to no subject in {SUBJECTS_TOML}",
                        relative(dir, &path).display()
                    );
                    clean = false;
                } else {
                    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                    println!("removed {}", relative(dir, &path).display());
                }
            }
        }
    }
    if check && clean {
        println!("{} subject schemas are up to date", files.len());
    }
    Ok(if clean { Outcome::Ok } else { Outcome::CheckFailed })
}

/// Earlier versions of each subject, oldest first.
type History = BTreeMap<String, Vec<Schema>>;

fn history_from_dir(path: &Path, subjects: &Subjects) -> anyhow::Result<History> {
    let has_avdl = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(Result::ok)
        .any(|e| e.path().extension().is_some_and(|x| x == "avdl"));
    let mut history = History::new();
    if has_avdl {
        // An older schemas/ directory: the same subjects map to the same record names.
        let old =
            idl::compile_dir(path).with_context(|| format!("compiling the earlier schemas in {}", path.display()))?;
        for s in &subjects.subjects {
            if let Some(c) = old.get(&s.schema) {
                history.insert(s.name.clone(), vec![c.schema.clone()]);
            }
        }
    } else {
        for s in &subjects.subjects {
            let file = path.join(format!("{}.avsc", s.name));
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let schema = Schema::parse_str(&text).with_context(|| format!("parsing {}", file.display()))?;
            history.insert(s.name.clone(), vec![schema]);
        }
    }
    Ok(history)
}

fn check_against(
    dir: &Path,
    compiled: &Compiled,
    against: &str,
    level: Option<CompatibilityLevel>,
) -> anyhow::Result<Outcome> {
    let subjects = Subjects::load(&dir.join(SUBJECTS_TOML), compiled)?;
    let history = if against.starts_with("http://") || against.starts_with("https://") {
        // Credentials and TLS: the URL's user info, or the settings Confluent's clients use.
        let security = registry_client::Security::from_env(&crate::process_env()).map_err(anyhow::Error::msg)?;
        let client = registry_client::RegistryClient::with_security(against, &security)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut h = History::new();
        for s in &subjects.subjects {
            let versions = runtime.block_on(client.versions(&s.name))?;
            let parsed = versions
                .iter()
                .map(|v| {
                    Schema::parse_str(&v.schema).with_context(|| format!("subject {} version {}", s.name, v.version))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if !parsed.is_empty() {
                h.insert(s.name.clone(), parsed);
            }
        }
        h
    } else {
        let path = PathBuf::from(against);
        if !path.is_dir() {
            bail!("--against {against}: not a directory nor an http(s) registry URL");
        }
        history_from_dir(&path, &subjects)?
    };
    let mut problems = 0;
    for s in &subjects.subjects {
        let Some(current) = compiled.get(&s.schema) else {
            continue;
        };
        let level = level.unwrap_or(s.compatibility);
        let Some(previous) = history.get(&s.name) else {
            println!("{}: new subject, nothing to check against", s.name);
            continue;
        };
        let found = level.check(&current.schema, previous);
        if found.is_empty() {
            println!(
                "{}: compatible ({level}, against {} earlier version(s))",
                s.name,
                previous.len()
            );
            continue;
        }
        for f in &found {
            problems += 1;
            let position = compiled
                .position(&f.problem.location)
                .or_else(|| compiled.position(f.problem.location.split('.').next().unwrap_or_default()))
                .map(|p| {
                    format!(
                        "{}: ",
                        relative(dir, &p.file).display().to_string() + &format!(":{}:{}", p.line, p.column)
                    )
                })
                .unwrap_or_default();
            let version = if previous.len() > 1 {
                format!(", earlier version #{}", f.against_index + 1)
            } else {
                String::new()
            };
            println!("{position}error: {} ({level}{version}): {f}", s.name);
        }
    }
    if problems > 0 {
        println!("{problems} compatibility problem(s)");
        Ok(Outcome::CheckFailed)
    } else {
        Ok(Outcome::Ok)
    }
}

/// Formats Rust source with rustfmt and the project's rustfmt.toml.
fn rustfmt(dir: &Path, source: &str) -> anyhow::Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--config-path"])
        .arg(dir.join("rustfmt.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt (install it with `rustup component add rustfmt`)")?;
    child
        .stdin
        .take()
        .context("rustfmt stdin")?
        .write_all(source.as_bytes())
        .context("writing to rustfmt")?;
    let out = child.wait_with_output().context("waiting for rustfmt")?;
    if !out.status.success() {
        bail!(
            "rustfmt rejected the generated code (a codegen bug):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn codegen(dir: &Path, compiled: &Compiled, check: bool) -> anyhow::Result<Outcome> {
    let sources: Vec<String> = compiled
        .schemas
        .iter()
        .map(|c| relative(dir, &c.file).display().to_string())
        .collect();
    let inputs: Vec<codegen::Input<'_>> = compiled
        .schemas
        .iter()
        .zip(&sources)
        .map(|(c, source)| codegen::Input {
            schema: &c.schema,
            source,
        })
        .collect();
    let code = rustfmt(dir, &codegen::generate(&inputs)?)?;
    let clean = write_or_check(dir, &dir.join(GENERATED_RS), &code, check)?;
    if check && clean {
        println!("{GENERATED_RS} is up to date");
    }
    Ok(if clean { Outcome::Ok } else { Outcome::CheckFailed })
}

fn ddl(dir: &Path, compiled: &Compiled, check: bool) -> anyhow::Result<Outcome> {
    let path = dir.join(SNOWFLAKE_TABLES_TOML);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let spec = sink::ddl::TablesFile::parse(&text)?;
    let mut clean = true;
    let mut count = 0;
    for table in &spec.tables {
        let record = compiled.get(&table.record).with_context(|| {
            format!(
                "{SNOWFLAKE_TABLES_TOML}: table {}: no record {} in schemas/",
                table.name, table.record
            )
        })?;
        let key: Vec<&str> = table.key.iter().map(String::as_str).collect();
        let layout = sink::tables::Layout::for_row("", &table.name, &record.schema, &table.record, &key)
            .map_err(|e| anyhow::anyhow!("{SNOWFLAKE_TABLES_TOML}: table {}: {e}", table.name))?;
        let table_dir = dir.join(SNOWFLAKE_TABLES_DIR).join(&table.name);
        let mut committed = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&table_dir) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(number) = name
                    .strip_prefix('v')
                    .and_then(|n| n.strip_suffix(".sql"))
                    .and_then(|n| n.parse().ok())
                else {
                    bail!("{}: not a version file (v<N>.sql)", relative(dir, &e.path()).display());
                };
                let text = std::fs::read_to_string(e.path())?;
                committed.push(sink::ddl::Version { number, text });
            }
        }
        for v in sink::ddl::versions(table, &layout, &committed)? {
            clean &= write_or_check(dir, &table_dir.join(format!("v{}.sql", v.number)), &v.text, check)?;
            count += 1;
        }
    }
    if check && clean {
        println!("{count} Snowflake table DDL versions are up to date");
    }
    Ok(if clean { Outcome::Ok } else { Outcome::CheckFailed })
}
