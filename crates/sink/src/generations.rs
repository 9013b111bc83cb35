//! Which tables each schema version of a topic loads into, and the
//! warehouse's record of it: the schema-history table.
//!
//! ```text
//! record with (value schema id, key schema id) not placed yet
//!   │ the subject's versions from the registry: place them in version
//!   │ order, so partitions read out of step still give the same tables
//!   ▼
//! newest generation's layout .evolve(version's layout)   (see `tables`)
//!   │ Unchanged / AddColumns → ALTER TABLE … ADD COLUMN IF NOT EXISTS
//!   │ NewGeneration          → CREATE TABLE T_V<n+1>, …
//!   ▼
//! views T and T_CHANGELOG recreated → history row MERGEd (once per pair)
//! ```
//!
//! `_CONTRAIL_SCHEMA_HISTORY` holds, per topic and schema pair: the
//! subject, its version, both schema ids, the generation and its table, the
//! change (`create`, `add columns`, `unchanged`, `new generation: <why>`),
//! the DDL applied and when. On start the sink rebuilds each topic's
//! generations from it, so a restart loads every version into the tables
//! it was placed in before.
//!
//! **Crash safety.** The DDL is idempotent (IF NOT EXISTS, OR REPLACE) and
//! the history row is written after it: a crash in between re-decides the
//! same placement from the same history and re-applies the same DDL.

use std::collections::HashMap;
use std::sync::Arc;

use registry_client::RegistryClient;
use snowflake::{Bind, Client};

use crate::tables::{place, Layout};
use crate::SinkError;

/// The schema history table, in the sink's schema.
pub const HISTORY_TABLE: &str = "_CONTRAIL_SCHEMA_HISTORY";

/// The history table's DDL.
pub(crate) fn history_ddl(qualifier: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {qualifier}.{} (\"TOPIC\" TEXT, \"SEQ\" NUMBER(38,0), \"SUBJECT\" TEXT, \
         \"VERSION\" NUMBER(38,0), \"SCHEMA_ID\" NUMBER(38,0), \"KEY_SCHEMA_ID\" NUMBER(38,0), \
         \"GENERATION\" NUMBER(38,0), \"TABLE_NAME\" TEXT, \"CHANGE\" TEXT, \"DDL\" TEXT, \"APPLIED_AT\" TIMESTAMP_TZ)",
        snowflake::quote_ident(HISTORY_TABLE)
    )
}

/// Where one (value schema, key schema) pair loads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    /// Index into [`TopicTables::generations`].
    pub(crate) generation: usize,
    /// The value subject's version (0 when the id is not one of its versions).
    pub(crate) version: i64,
}

/// Schemas by id, parsed once.
#[derive(Default)]
pub(crate) struct Schemas {
    by_id: HashMap<u32, Arc<schema::Schema>>,
}

/// Why a writer schema could not be had.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A definite answer: the id does not exist, or its schema does not
    /// parse. A record that names it is bad data.
    Bad(String),
    /// The registry is unreachable, overloaded or refusing credentials for
    /// now: says nothing about the record, which must wait.
    Unavailable(registry_client::ClientError),
}

impl Schemas {
    pub(crate) async fn get(&mut self, registry: &RegistryClient, id: u32) -> Result<Arc<schema::Schema>, Lookup> {
        if let Some(s) = self.by_id.get(&id) {
            return Ok(s.clone());
        }
        let text = registry.schema_by_id(id).await.map_err(|e| {
            if e.is_transient() {
                Lookup::Unavailable(e)
            } else {
                Lookup::Bad(format!("schema id {id}: {e}"))
            }
        })?;
        let parsed =
            Arc::new(schema::Schema::parse_str(&text).map_err(|e| Lookup::Bad(format!("schema id {id}: {e}")))?);
        self.by_id.insert(id, parsed.clone());
        Ok(parsed)
    }
}

/// One topic's generations and what loads where.
pub(crate) struct TopicTables {
    topic: String,
    subject: String,
    qualifier: String,
    /// Oldest first; the last is the newest, the one the views show.
    pub(crate) generations: Vec<Layout>,
    placed: HashMap<(u32, u32), Placement>,
}

/// Everything [`TopicTables`] talks to.
pub(crate) struct Services<'a> {
    pub(crate) sf: &'a Client,
    pub(crate) registry: &'a RegistryClient,
    pub(crate) schemas: &'a mut Schemas,
}

impl TopicTables {
    /// The topic's generations as the history table records them.
    pub(crate) async fn open(s: &mut Services<'_>, qualifier: &str, topic: &str) -> Result<TopicTables, SinkError> {
        let mut t = TopicTables {
            topic: topic.to_string(),
            subject: format!("{topic}-value"),
            qualifier: qualifier.to_string(),
            generations: Vec::new(),
            placed: HashMap::new(),
        };
        let rows =
            s.sf.query(
                &format!(
                    "SELECT \"SCHEMA_ID\", \"KEY_SCHEMA_ID\", \"VERSION\", \"GENERATION\" FROM {qualifier}.{} \
                     WHERE \"TOPIC\" = ? ORDER BY \"SEQ\"",
                    snowflake::quote_ident(HISTORY_TABLE)
                ),
                &[Bind::Text(topic.to_string())],
            )
            .await?;
        for r in &rows.rows {
            let num = |i: usize| -> Result<i64, SinkError> {
                r.get(i)
                    .and_then(|v| v.as_deref())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| t.error(format!("the schema history has a malformed row: {r:?}")))
            };
            let (value_id, key_id, version, generation) = (num(0)? as u32, num(1)? as u32, num(2)?, num(3)?);
            // The same placement the sink made when it wrote this row: the
            // history keeps which generation, the schemas give the columns.
            let layout = t.layout(s, value_id, key_id).await?;
            place(&mut t.generations, layout);
            let index = t.generations.len() - 1;
            if i64::from(t.generations[index].generation) != generation {
                return Err(t.error(format!(
                    "the schema history puts schema {value_id} in generation {generation}, \
                     but its versions give generation {}",
                    t.generations[index].generation
                )));
            }
            t.placed.insert(
                (value_id, key_id),
                Placement {
                    generation: index,
                    version,
                },
            );
        }
        if let Some(newest) = t.generations.last() {
            tracing::info!(topic, generation = newest.generation, tables = %newest.current(), "tables from the schema history");
        }
        Ok(t)
    }

    fn error(&self, message: String) -> SinkError {
        SinkError::Layout {
            topic: self.topic.clone(),
            message,
        }
    }

    fn lookup_error(&self, e: Lookup) -> SinkError {
        match e {
            Lookup::Bad(message) => self.error(message),
            Lookup::Unavailable(e) => SinkError::Registry(e),
        }
    }

    async fn layout(&self, s: &mut Services<'_>, value_id: u32, key_id: u32) -> Result<Layout, SinkError> {
        let value = s
            .schemas
            .get(s.registry, value_id)
            .await
            .map_err(|e| self.lookup_error(e))?;
        let key = s
            .schemas
            .get(s.registry, key_id)
            .await
            .map_err(|e| self.lookup_error(e))?;
        let base = crate::tables::base_name(&self.topic);
        Layout::new(&self.qualifier, &base, &value, &key).map_err(|e| self.error(e.0))
    }

    pub(crate) fn placement(&self, value_id: u32, key_id: u32) -> Option<Placement> {
        self.placed.get(&(value_id, key_id)).copied()
    }

    /// Places every pair of `pairs` not placed yet, with the subject's
    /// earlier versions first.
    pub(crate) async fn place(&mut self, s: &mut Services<'_>, pairs: &[(u32, u32)]) -> Result<(), SinkError> {
        let pending: Vec<(u32, u32)> = pairs.iter().copied().filter(|p| !self.placed.contains_key(p)).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let versions = s.registry.versions(&self.subject).await.map_err(SinkError::Registry)?;
        let version_of = |id: u32| versions.iter().find(|v| v.id == id).map_or(0, |v| i64::from(v.version));
        let mut todo: Vec<(i64, u32, u32)> = pending.iter().map(|&(v, k)| (version_of(v), v, k)).collect();
        // Earlier versions never seen (their records may sit in a partition
        // read later) are placed first, so the order is the registry's.
        if let Some(&(newest, _, key_id)) = todo.iter().max() {
            for v in versions.iter().filter(|v| i64::from(v.version) < newest) {
                let seen = self.placed.keys().any(|(id, _)| *id == v.id) || todo.iter().any(|t| t.1 == v.id);
                if !seen {
                    todo.push((i64::from(v.version), v.id, key_id));
                }
            }
        }
        todo.sort_unstable();
        todo.dedup();
        for (version, value_id, key_id) in todo {
            self.place_one(s, version, value_id, key_id).await?;
        }
        Ok(())
    }

    async fn place_one(
        &mut self,
        s: &mut Services<'_>,
        version: i64,
        value_id: u32,
        key_id: u32,
    ) -> Result<(), SinkError> {
        let layout = self.layout(s, value_id, key_id).await?;
        let (change, ddl) = place(&mut self.generations, layout);
        for stmt in &ddl {
            s.sf.query(stmt, &[]).await?;
        }
        let index = self.generations.len() - 1;
        let newest = &self.generations[index];
        let seq = self.placed.len() as i64 + 1;
        s.sf
            .query(
                &format!(
                    "MERGE INTO {q}.{h} t USING (SELECT CAST(? AS TEXT) AS \"TOPIC\", CAST(? AS NUMBER(38,0)) AS \"SEQ\", \
                     CAST(? AS TEXT) AS \"SUBJECT\", CAST(? AS NUMBER(38,0)) AS \"VERSION\", \
                     CAST(? AS NUMBER(38,0)) AS \"SCHEMA_ID\", CAST(? AS NUMBER(38,0)) AS \"KEY_SCHEMA_ID\", \
                     CAST(? AS NUMBER(38,0)) AS \"GENERATION\", CAST(? AS TEXT) AS \"TABLE_NAME\", \
                     CAST(? AS TEXT) AS \"CHANGE\", CAST(? AS TEXT) AS \"DDL\") s \
                     ON t.\"TOPIC\" = s.\"TOPIC\" AND t.\"SCHEMA_ID\" = s.\"SCHEMA_ID\" AND t.\"KEY_SCHEMA_ID\" = s.\"KEY_SCHEMA_ID\" \
                     WHEN NOT MATCHED THEN INSERT (\"TOPIC\", \"SEQ\", \"SUBJECT\", \"VERSION\", \"SCHEMA_ID\", \"KEY_SCHEMA_ID\", \
                     \"GENERATION\", \"TABLE_NAME\", \"CHANGE\", \"DDL\", \"APPLIED_AT\") VALUES (s.\"TOPIC\", s.\"SEQ\", s.\"SUBJECT\", \
                     s.\"VERSION\", s.\"SCHEMA_ID\", s.\"KEY_SCHEMA_ID\", s.\"GENERATION\", s.\"TABLE_NAME\", s.\"CHANGE\", s.\"DDL\", \
                     CURRENT_TIMESTAMP())",
                    q = self.qualifier,
                    h = snowflake::quote_ident(HISTORY_TABLE)
                ),
                &[
                    Bind::Text(self.topic.clone()),
                    Bind::Text(seq.to_string()),
                    Bind::Text(self.subject.clone()),
                    Bind::Text(version.to_string()),
                    Bind::Text(value_id.to_string()),
                    Bind::Text(key_id.to_string()),
                    Bind::Text(newest.generation.to_string()),
                    Bind::Text(newest.current()),
                    Bind::Text(change.clone()),
                    Bind::Text(ddl.join(";\n")),
                ],
            )
            .await?;
        tracing::info!(
            topic = %self.topic,
            version,
            schema_id = value_id,
            generation = newest.generation,
            %change,
            "schema version placed"
        );
        self.placed.insert(
            (value_id, key_id),
            Placement {
                generation: index,
                version,
            },
        );
        Ok(())
    }
}
