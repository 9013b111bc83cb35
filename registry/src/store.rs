//! The registry's state in PostgreSQL, and the registration transaction.
//!
//! Registration runs in one transaction that first takes an advisory lock on
//! the subject, so concurrent registrations to a subject, from any number of
//! server instances on the same database, are serialized; ids come from a
//! sequence and a unique index on the schema's identity makes two instances
//! registering the same schema under different subjects agree on one id.
//! Reads by id go through an in-process cache: a schema's content never
//! changes once it has an id, so the cache needs no invalidation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use deadpool_postgres::{GenericClient, Pool};
use schema::{CompatibilityLevel, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{OperationError, StoreError};

const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];
/// Advisory lock namespace for registry transactions ("CSR" in ASCII).
const LOCK_NAMESPACE: i32 = 0x43_53_52;
/// Deepest chain of schema references followed.
const MAX_REFERENCE_DEPTH: usize = 32;

/// A schema reference, as in Confluent's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema with its id, as stored.
#[derive(Debug)]
pub struct StoredSchema {
    pub id: i32,
    pub schema_type: String,
    pub text: String,
    pub references: Vec<Reference>,
    pub metadata: Option<Value>,
    pub rule_set: Option<Value>,
}

/// One version of a subject.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub deleted: bool,
    pub schema: Arc<StoredSchema>,
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    pub fn parse(s: &str) -> Result<Self, OperationError> {
        match s {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            _ => s
                .parse::<i32>()
                .ok()
                .filter(|v| *v > 0)
                .map(VersionSpec::Number)
                .ok_or_else(|| OperationError::InvalidVersion(s.to_string())),
        }
    }
}

/// Registry modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    Import,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self, OperationError> {
        match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::ReadWrite),
            "READONLY" => Ok(Mode::ReadOnly),
            "IMPORT" => Ok(Mode::Import),
            _ => Err(OperationError::InvalidMode),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

/// A schema a client asks to register or look up.
#[derive(Debug, Clone)]
pub struct NewSchema {
    pub schema_type: String,
    pub text: String,
    pub references: Vec<Reference>,
    pub metadata: Option<Value>,
    pub rule_set: Option<Value>,
    /// In IMPORT mode, the id and version to keep.
    pub id: Option<i32>,
    pub version: Option<i32>,
}

/// What registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new version was created with this schema id.
    NewVersion { id: i32, version: i32 },
    /// The subject already had this schema.
    Existing { id: i32, version: i32 },
}

/// A schema checked and ready to store.
struct Prepared {
    text: String,
    identity: String,
    parsed: Schema,
}

fn invalid(e: impl std::fmt::Display) -> OperationError {
    OperationError::InvalidSchema(e.to_string())
}

/// The registry's database.
#[derive(Debug)]
pub struct Store {
    pool: Pool,
    by_id: RwLock<HashMap<i32, Arc<StoredSchema>>>,
}

fn row_to_schema(row: &tokio_postgres::Row) -> Result<StoredSchema, StoreError> {
    let references: Value = row.try_get("references_json")?;
    let references = serde_json::from_value(references)
        .map_err(|e| StoreError::Corrupt(format!("schema references in the database do not parse: {e}")))?;
    Ok(StoredSchema {
        id: row.try_get("id")?,
        schema_type: row.try_get("schema_type")?,
        text: row.try_get("schema_text")?,
        references,
        metadata: row.try_get("metadata")?,
        rule_set: row.try_get("rule_set")?,
    })
}

const SCHEMA_COLUMNS: &str = "s.id, s.schema_type, s.schema_text, s.references_json, s.metadata, s.rule_set";

impl Store {
    /// Connects, applies pending migrations, and returns the store.
    pub async fn open(pool: Pool) -> Result<Store, StoreError> {
        let store = Store {
            pool,
            by_id: RwLock::new(HashMap::new()),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Several instances may start at once: one migrates, the rest wait.
        tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_NAMESPACE])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS registry_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt("SELECT 1 FROM registry_migrations WHERE version = $1", &[version])
                .await?
                .is_some();
            if !done {
                tracing::info!(version, "applying registry migration");
                tx.batch_execute(sql).await?;
                tx.execute("INSERT INTO registry_migrations (version) VALUES ($1)", &[version])
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// True when the database answers.
    pub async fn healthy(&self) -> bool {
        match self.pool.get().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    pub async fn schema_by_id(&self, id: i32) -> Result<Option<Arc<StoredSchema>>, OperationError> {
        if let Some(s) = self.by_id.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(Some(s.clone()));
        }
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SCHEMA_COLUMNS} FROM schemas s WHERE s.id = $1"),
                &[&id],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let schema = Arc::new(row_to_schema(&row).map_err(OperationError::Store)?);
        self.by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, schema.clone());
        Ok(Some(schema))
    }

    pub async fn subjects(&self, deleted: bool, prefix: &str) -> Result<Vec<String>, OperationError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT subject FROM subject_versions WHERE starts_with(subject, $2) GROUP BY subject \
                 HAVING $1 OR bool_or(NOT deleted) ORDER BY subject",
                &[&deleted, &prefix],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn versions_of(
        client: &impl GenericClient,
        subject: &str,
        deleted: bool,
    ) -> Result<Vec<(i32, i32, bool)>, OperationError> {
        let rows = client
            .query(
                "SELECT version, schema_id, deleted FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted) ORDER BY version",
                &[&subject, &deleted],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    pub async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, OperationError> {
        let client = self.pool.get().await?;
        let v = Self::versions_of(&client, subject, deleted).await?;
        if v.is_empty() {
            return Err(OperationError::SubjectNotFound(subject.to_string()));
        }
        Ok(v.into_iter().map(|(v, _, _)| v).collect())
    }

    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, OperationError> {
        let client = self.pool.get().await?;
        let all = Self::versions_of(&client, subject, true).await?;
        if all.is_empty() {
            return Err(OperationError::SubjectNotFound(subject.to_string()));
        }
        let mut visible = all.iter().filter(|(_, _, d)| deleted || !d);
        let found = match spec {
            VersionSpec::Latest => visible.next_back(),
            VersionSpec::Number(n) => visible.find(|(v, _, _)| *v == n),
        };
        let Some(&(version, id, is_deleted)) = found else {
            return Err(match spec {
                // Every version is soft-deleted: the subject is gone, as Confluent says.
                VersionSpec::Latest => OperationError::SubjectNotFound(subject.to_string()),
                VersionSpec::Number(n) => OperationError::VersionNotFound { version: n.to_string() },
            });
        };
        drop(client);
        let schema = self.schema_by_id(id).await?.ok_or_else(|| {
            OperationError::Store(StoreError::Corrupt(format!(
                "version {subject}/{version} names missing schema {id}"
            )))
        })?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            deleted: is_deleted,
            schema,
        })
    }

    /// Subjects (and versions) that use schema `id`.
    pub async fn usages(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>, OperationError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT subject, version FROM subject_versions WHERE schema_id = $1 AND ($2 OR NOT deleted) ORDER BY subject, version",
                &[&id, &deleted],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Ids of schemas (used by live versions) that reference `subject`/`version`.
    pub async fn referenced_by(&self, subject: &str, version: i32) -> Result<Vec<i32>, OperationError> {
        let client = self.pool.get().await?;
        Self::referenced_by_in(&client, subject, version).await
    }

    async fn referenced_by_in(
        client: &impl GenericClient,
        subject: &str,
        version: i32,
    ) -> Result<Vec<i32>, OperationError> {
        let rows = client
            .query(
                "SELECT DISTINCT s.id FROM schemas s JOIN subject_versions sv ON sv.schema_id = s.id AND NOT sv.deleted \
                 WHERE s.references_json @> jsonb_build_array(jsonb_build_object('subject', $1::text, 'version', $2::int)) ORDER BY s.id",
                &[&subject, &version],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    // --- config and mode ------------------------------------------------

    pub async fn compatibility(&self, subject: &str) -> Result<Option<CompatibilityLevel>, OperationError> {
        let client = self.pool.get().await?;
        Self::compatibility_in(&client, subject).await
    }

    async fn compatibility_in(
        client: &impl GenericClient,
        subject: &str,
    ) -> Result<Option<CompatibilityLevel>, OperationError> {
        let row = client
            .query_opt(
                "SELECT compatibility FROM compatibility_config WHERE subject = $1",
                &[&subject],
            )
            .await?;
        row.map(|r| {
            let s: String = r.get(0);
            s.parse().map_err(|_| {
                OperationError::Store(StoreError::Corrupt(format!(
                    "stored compatibility level {s:?} is invalid"
                )))
            })
        })
        .transpose()
    }

    /// The level that applies to `subject`: its own, else the global one, else BACKWARD.
    async fn effective_compatibility(
        client: &impl GenericClient,
        subject: &str,
    ) -> Result<CompatibilityLevel, OperationError> {
        if let Some(l) = Self::compatibility_in(client, subject).await? {
            return Ok(l);
        }
        Ok(Self::compatibility_in(client, "").await?.unwrap_or_default())
    }

    pub async fn effective_compatibility_of(&self, subject: &str) -> Result<CompatibilityLevel, OperationError> {
        let client = self.pool.get().await?;
        Self::effective_compatibility(&client, subject).await
    }

    pub async fn set_compatibility(&self, subject: &str, level: CompatibilityLevel) -> Result<(), OperationError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO compatibility_config (subject, compatibility) VALUES ($1, $2) \
                 ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
                &[&subject, &level.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Removes a level; returns the one removed.
    pub async fn delete_compatibility(&self, subject: &str) -> Result<Option<CompatibilityLevel>, OperationError> {
        let previous = self.compatibility(subject).await?;
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM compatibility_config WHERE subject = $1", &[&subject])
            .await?;
        Ok(previous)
    }

    pub async fn mode(&self, subject: &str) -> Result<Option<Mode>, OperationError> {
        let client = self.pool.get().await?;
        Self::mode_in(&client, subject).await
    }

    async fn mode_in(client: &impl GenericClient, subject: &str) -> Result<Option<Mode>, OperationError> {
        let row = client
            .query_opt("SELECT mode FROM registry_mode WHERE subject = $1", &[&subject])
            .await?;
        row.map(|r| Mode::parse(r.get::<_, &str>(0))).transpose()
    }

    async fn effective_mode(client: &impl GenericClient, subject: &str) -> Result<Mode, OperationError> {
        if let Some(m) = Self::mode_in(client, subject).await? {
            return Ok(m);
        }
        Ok(Self::mode_in(client, "").await?.unwrap_or(Mode::ReadWrite))
    }

    pub async fn set_mode(&self, subject: &str, mode: Mode) -> Result<(), OperationError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO registry_mode (subject, mode) VALUES ($1, $2) ON CONFLICT (subject) DO UPDATE SET mode = EXCLUDED.mode",
                &[&subject, &mode.as_str()],
            )
            .await?;
        Ok(())
    }

    pub async fn delete_mode(&self, subject: &str) -> Result<Option<Mode>, OperationError> {
        let previous = self.mode(subject).await?;
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM registry_mode WHERE subject = $1", &[&subject])
            .await?;
        Ok(previous)
    }

    // --- parsing with references ----------------------------------------

    /// Parses schema text, resolving its references (recursively) from the database.
    async fn parse(
        &self,
        client: &impl GenericClient,
        text: &str,
        references: &[Reference],
        depth: usize,
    ) -> Result<Schema, OperationError> {
        let json: Value = serde_json::from_str(text).map_err(invalid)?;
        let mut resolved = Vec::with_capacity(references.len());
        for r in references {
            if depth >= MAX_REFERENCE_DEPTH {
                return Err(OperationError::InvalidSchema(format!(
                    "references nest deeper than {MAX_REFERENCE_DEPTH}"
                )));
            }
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {SCHEMA_COLUMNS} FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id \
                         WHERE sv.subject = $1 AND sv.version = $2 AND NOT sv.deleted"
                    ),
                    &[&r.subject, &r.version],
                )
                .await?
                .ok_or_else(|| {
                    OperationError::InvalidSchema(format!(
                        "reference {} names subject {} version {}, which does not exist",
                        r.name, r.subject, r.version
                    ))
                })?;
            let referenced = row_to_schema(&row).map_err(OperationError::Store)?;
            let parsed = Box::pin(self.parse(client, &referenced.text, &referenced.references, depth + 1)).await?;
            resolved.push(parsed);
        }
        let refs: Vec<&Schema> = resolved.iter().collect();
        Schema::parse_with_references(&json, &refs).map_err(invalid)
    }

    fn prepare(new: &NewSchema, parsed: Schema, normalize: bool) -> Result<Prepared, OperationError> {
        let normalized = schema::normalized_json(&parsed.json);
        let text = if normalize {
            normalized.clone()
        } else {
            parsed.json.to_string()
        };
        let refs = serde_json::to_string(&new.references).map_err(invalid)?;
        let meta = new.metadata.as_ref().map(schema::normalized_json).unwrap_or_default();
        let rules = new.rule_set.as_ref().map(schema::normalized_json).unwrap_or_default();
        let identity = format!("{}\n{normalized}\n{refs}\n{meta}\n{rules}", new.schema_type);
        Ok(Prepared { text, identity, parsed })
    }

    fn check_type(new: &NewSchema) -> Result<(), OperationError> {
        if new.schema_type != "AVRO" {
            return Err(OperationError::InvalidSchema(format!(
                "schema type {} is not supported; this registry serves AVRO",
                new.schema_type
            )));
        }
        Ok(())
    }

    /// Checks `new` against the subject's live versions at `level`; returns
    /// the problems as Confluent-style messages.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        new: &NewSchema,
        against: Option<VersionSpec>,
        level: Option<CompatibilityLevel>,
    ) -> Result<Vec<String>, OperationError> {
        Self::check_type(new)?;
        let client = self.pool.get().await?;
        let parsed = self.parse(&client, &new.text, &new.references, 0).await?;
        let level = match level {
            Some(l) => l,
            None => Self::effective_compatibility(&client, subject).await?,
        };
        let live = Self::versions_of(&client, subject, false).await?;
        let chosen: Vec<(i32, i32)> = match against {
            None => live.iter().map(|(v, id, _)| (*v, *id)).collect(),
            Some(VersionSpec::Latest) => match live.last() {
                Some((v, id, _)) => vec![(*v, *id)],
                None => return Err(OperationError::SubjectNotFound(subject.to_string())),
            },
            Some(VersionSpec::Number(n)) => match live.iter().find(|(v, _, _)| *v == n) {
                Some((v, id, _)) => vec![(*v, *id)],
                None if live.is_empty() => return Err(OperationError::SubjectNotFound(subject.to_string())),
                None => return Err(OperationError::VersionNotFound { version: n.to_string() }),
            },
        };
        // A single named version is checked as if it were the only earlier one.
        let level = match (against, level) {
            (Some(_), CompatibilityLevel::BackwardTransitive) => CompatibilityLevel::Backward,
            (Some(_), CompatibilityLevel::ForwardTransitive) => CompatibilityLevel::Forward,
            (Some(_), CompatibilityLevel::FullTransitive) => CompatibilityLevel::Full,
            (_, l) => l,
        };
        self.problems(&client, &parsed, &chosen, level).await
    }

    async fn problems(
        &self,
        client: &impl GenericClient,
        new: &Schema,
        previous: &[(i32, i32)],
        level: CompatibilityLevel,
    ) -> Result<Vec<String>, OperationError> {
        if level == CompatibilityLevel::None || previous.is_empty() {
            return Ok(Vec::new());
        }
        let mut parsed = Vec::with_capacity(previous.len());
        for (_, id) in previous {
            let row = client
                .query_one(
                    &format!("SELECT {SCHEMA_COLUMNS} FROM schemas s WHERE s.id = $1"),
                    &[id],
                )
                .await?;
            let stored = row_to_schema(&row).map_err(OperationError::Store)?;
            let schema = self
                .parse(client, &stored.text, &stored.references, 0)
                .await
                .map_err(|e| {
                    OperationError::Store(StoreError::Corrupt(format!("stored schema {id} no longer parses: {e}")))
                })?;
            parsed.push(schema);
        }
        Ok(level
            .check(new, &parsed)
            .into_iter()
            .map(|p| {
                let version = previous.get(p.against_index).map_or(0, |(v, _)| *v);
                format!("{{{}, version: {version}, compatibility: '{level}'}}", describe(&p))
            })
            .collect())
    }

    /// Takes the subject's advisory lock for the rest of the transaction and
    /// returns its mode, refusing READONLY subjects.
    async fn lock_for_writing(tx: &impl GenericClient, subject: &str) -> Result<Mode, OperationError> {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LOCK_NAMESPACE, &subject],
        )
        .await?;
        match Self::effective_mode(tx, subject).await? {
            Mode::ReadOnly => Err(OperationError::OperationNotPermitted(format!(
                "Subject {subject} is in read-only mode"
            ))),
            mode => Ok(mode),
        }
    }

    /// Refuses a schema incompatible with the subject's live versions at
    /// its effective compatibility level, naming every problem.
    async fn check_against_live(
        &self,
        tx: &impl GenericClient,
        subject: &str,
        parsed: &Schema,
    ) -> Result<(), OperationError> {
        let level = Self::effective_compatibility(tx, subject).await?;
        let live: Vec<(i32, i32)> = Self::versions_of(tx, subject, false)
            .await?
            .into_iter()
            .map(|(v, id, _)| (v, id))
            .collect();
        let problems = self.problems(tx, parsed, &live, level).await?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(OperationError::Incompatible(format!(
            "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
            problems.join(", ")
        )))
    }

    /// The version a new registration takes: the one asked for (IMPORT
    /// mode) if free, else the next.
    async fn next_version(
        tx: &impl GenericClient,
        subject: &str,
        requested: Option<i32>,
    ) -> Result<i32, OperationError> {
        Ok(match requested {
            Some(v) if v > 0 => {
                let taken = tx
                    .query_opt(
                        "SELECT 1 FROM subject_versions WHERE subject = $1 AND version = $2",
                        &[&subject, &v],
                    )
                    .await?;
                if taken.is_some() {
                    return Err(OperationError::OperationNotPermitted(format!(
                        "Subject {subject} already has a version {v}"
                    )));
                }
                v
            }
            Some(v) => return Err(OperationError::InvalidVersion(v.to_string())),
            None => tx
                .query_one(
                    "SELECT COALESCE(max(version), 0) + 1 FROM subject_versions WHERE subject = $1",
                    &[&subject],
                )
                .await?
                .get(0),
        })
    }

    /// Registers `new` under `subject` (see the module doc for the locking).
    pub async fn register(
        &self,
        subject: &str,
        new: &NewSchema,
        normalize: bool,
    ) -> Result<Registered, OperationError> {
        Self::check_type(new)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mode = Self::lock_for_writing(&tx, subject).await?;
        match mode {
            Mode::ReadWrite if new.id.is_some() || new.version.is_some() => {
                return Err(OperationError::OperationNotPermitted(
                    "a schema id or version may only be given in IMPORT mode".into(),
                ))
            }
            _ => {}
        }
        let parsed = self.parse(&tx, &new.text, &new.references, 0).await?;
        let prepared = Self::prepare(new, parsed, normalize)?;

        // Already registered under this subject: return it, create nothing.
        let existing = tx
            .query_opt(
                "SELECT sv.version, s.id FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id \
                 WHERE sv.subject = $1 AND NOT sv.deleted AND s.identity_md5 = md5($2) AND s.identity = $2 \
                 ORDER BY sv.version LIMIT 1",
                &[&subject, &prepared.identity],
            )
            .await?;
        if let Some(row) = existing {
            tx.commit().await?;
            return Ok(Registered::Existing {
                id: row.get(1),
                version: row.get(0),
            });
        }

        if mode != Mode::Import {
            self.check_against_live(&tx, subject, &prepared.parsed).await?;
        }
        let id = self.assign_id(&tx, new, &prepared).await?;
        let version = Self::next_version(&tx, subject, new.version).await?;
        tx.execute(
            "INSERT INTO subject_versions (subject, version, schema_id) VALUES ($1, $2, $3)",
            &[&subject, &version, &id],
        )
        .await?;
        tx.commit().await?;
        Ok(Registered::NewVersion { id, version })
    }

    /// The id for a prepared schema: the existing one with the same identity,
    /// the one IMPORT mode asks for, or a new one from the sequence.
    async fn assign_id(&self, tx: &impl GenericClient, new: &NewSchema, p: &Prepared) -> Result<i32, OperationError> {
        let refs = serde_json::to_value(&new.references).map_err(invalid)?;
        if let Some(id) = new.id {
            let clash = tx
                .query_opt("SELECT identity = $2 FROM schemas WHERE id = $1", &[&id, &p.identity])
                .await?;
            match clash {
                Some(row) if row.get::<_, bool>(0) => return Ok(id),
                Some(_) => {
                    return Err(OperationError::OperationNotPermitted(format!(
                        "schema id {id} is already used by a different schema"
                    )))
                }
                None => {}
            }
            tx.execute(
                "INSERT INTO schemas (id, schema_type, schema_text, references_json, metadata, rule_set, identity) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &id,
                    &new.schema_type,
                    &p.text,
                    &refs,
                    &new.metadata,
                    &new.rule_set,
                    &p.identity,
                ],
            )
            .await?;
            // Keep the sequence ahead of imported ids so they are never reissued.
            tx.execute(
                "SELECT setval('schema_id_seq', GREATEST((SELECT max(id) FROM schemas), (SELECT last_value FROM schema_id_seq)))",
                &[],
            )
            .await?;
            return Ok(id);
        }
        // Look first: an INSERT that conflicts would still use up a sequence value.
        if let Some(id) = Self::id_for_identity(tx, &p.identity).await? {
            return Ok(id);
        }
        let inserted = tx
            .query_opt(
                "INSERT INTO schemas (id, schema_type, schema_text, references_json, metadata, rule_set, identity) \
                 VALUES (nextval('schema_id_seq'), $1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (identity_md5) DO NOTHING RETURNING id",
                &[
                    &new.schema_type,
                    &p.text,
                    &refs,
                    &new.metadata,
                    &new.rule_set,
                    &p.identity,
                ],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(row.get(0));
        }
        // Another instance registered the same schema in the meantime.
        Self::id_for_identity(tx, &p.identity).await?.ok_or_else(|| {
            OperationError::Store(StoreError::Corrupt("schema vanished after a conflicting insert".into()))
        })
    }

    async fn id_for_identity(tx: &impl GenericClient, identity: &str) -> Result<Option<i32>, OperationError> {
        let row = tx
            .query_opt(
                "SELECT id, identity = $1 FROM schemas WHERE identity_md5 = md5($1)",
                &[&identity],
            )
            .await?;
        match row {
            None => Ok(None),
            Some(r) if r.get::<_, bool>(1) => Ok(Some(r.get(0))),
            Some(_) => Err(OperationError::Store(StoreError::Corrupt(
                "md5 collision between two schema identities".into(),
            ))),
        }
    }

    /// Finds `new` among the subject's live versions.
    pub async fn lookup(
        &self,
        subject: &str,
        new: &NewSchema,
        normalize: bool,
        deleted: bool,
    ) -> Result<SubjectVersion, OperationError> {
        Self::check_type(new)?;
        let client = self.pool.get().await?;
        if Self::versions_of(&client, subject, true).await?.is_empty() {
            return Err(OperationError::SubjectNotFound(subject.to_string()));
        }
        let parsed = self.parse(&client, &new.text, &new.references, 0).await?;
        let prepared = Self::prepare(new, parsed, normalize)?;
        let row = client
            .query_opt(
                "SELECT sv.version, s.id FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id \
                 WHERE sv.subject = $1 AND ($3 OR NOT sv.deleted) AND s.identity_md5 = md5($2) AND s.identity = $2 \
                 ORDER BY sv.version LIMIT 1",
                &[&subject, &prepared.identity, &deleted],
            )
            .await?
            .ok_or_else(|| OperationError::SchemaNotFound(String::new()))?;
        let version: i32 = row.get(0);
        drop(client);
        self.version(subject, VersionSpec::Number(version), deleted).await
    }

    /// Soft or permanent deletion of a whole subject; returns the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>, OperationError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        Self::lock_for_writing(&tx, subject).await?;
        let all = Self::versions_of(&tx, subject, true).await?;
        if all.is_empty() {
            return Err(OperationError::SubjectNotFound(subject.to_string()));
        }
        let live: Vec<i32> = all.iter().filter(|(_, _, d)| !d).map(|(v, _, _)| *v).collect();
        for v in &live {
            if !Self::referenced_by_in(&tx, subject, *v).await?.is_empty() {
                return Err(OperationError::ReferenceExists {
                    subject: subject.to_string(),
                    version: *v,
                });
            }
        }
        let deleted = if permanent {
            if !live.is_empty() {
                return Err(OperationError::SubjectNotSoftDeleted(subject.to_string()));
            }
            tx.execute("DELETE FROM subject_versions WHERE subject = $1", &[&subject])
                .await?;
            tx.execute("DELETE FROM compatibility_config WHERE subject = $1", &[&subject])
                .await?;
            tx.execute("DELETE FROM registry_mode WHERE subject = $1", &[&subject])
                .await?;
            all.iter().map(|(v, _, _)| *v).collect()
        } else {
            if live.is_empty() {
                return Err(OperationError::SubjectSoftDeleted(subject.to_string()));
            }
            tx.execute(
                "UPDATE subject_versions SET deleted = true WHERE subject = $1",
                &[&subject],
            )
            .await?;
            live
        };
        tx.commit().await?;
        Ok(deleted)
    }

    /// Soft or permanent deletion of one version; returns its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, OperationError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        Self::lock_for_writing(&tx, subject).await?;
        let all = Self::versions_of(&tx, subject, true).await?;
        if all.is_empty() {
            return Err(OperationError::SubjectNotFound(subject.to_string()));
        }
        let target = match spec {
            // "latest" means the latest live version (or, when deleting
            // permanently, the latest soft-deleted one).
            VersionSpec::Latest => all.iter().rev().find(|(_, _, d)| *d == permanent),
            VersionSpec::Number(n) => all.iter().find(|(v, _, _)| *v == n),
        };
        let Some(&(version, _, is_deleted)) = target else {
            return Err(OperationError::VersionNotFound {
                version: match spec {
                    VersionSpec::Latest => "latest".into(),
                    VersionSpec::Number(n) => n.to_string(),
                },
            });
        };
        if !Self::referenced_by_in(&tx, subject, version).await?.is_empty() {
            return Err(OperationError::ReferenceExists {
                subject: subject.to_string(),
                version,
            });
        }
        match (permanent, is_deleted) {
            (false, true) => {
                return Err(OperationError::VersionSoftDeleted {
                    subject: subject.to_string(),
                    version,
                })
            }
            (true, false) => {
                return Err(OperationError::VersionNotSoftDeleted {
                    subject: subject.to_string(),
                    version,
                })
            }
            (false, false) => {
                tx.execute(
                    "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND version = $2",
                    &[&subject, &version],
                )
                .await?;
            }
            (true, true) => {
                tx.execute(
                    "DELETE FROM subject_versions WHERE subject = $1 AND version = $2",
                    &[&subject, &version],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(version)
    }
}

/// One incompatibility in the words Confluent's verbose messages use.
fn describe(p: &schema::compatibility::LevelIncompatibility) -> String {
    let direction = match p.direction {
        schema::compatibility::Direction::Backward => "the new schema cannot read data written with the old",
        schema::compatibility::Direction::Forward => "the old schema cannot read data written with the new",
    };
    format!(
        "errorType:'{}', description:'{}: {}', {direction}",
        p.problem.kind.as_str(),
        p.problem.location,
        p.problem.message
    )
}
