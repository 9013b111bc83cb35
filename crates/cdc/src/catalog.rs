//! The SQL side of the stage: checks of the captured tables, the
//! publication, the slot's state, and the snapshot bookkeeping table.
//!
//! Everything the stage needs from the catalog is read before it streams,
//! so a table that cannot be captured faithfully (no primary key, not
//! REPLICA IDENTITY FULL, a column type without an Avro mapping) stops it
//! at start with the table and column named, not at the first row.

use changes::Lsn;
use pgoutput::{Column, Relation, ReplicaIdentity};
use tokio_postgres::Client;

use crate::config::{quote_ident, TableName};
use crate::CdcError;

/// Session settings that make text values unambiguous: ISO dates in UTC,
/// hex bytea, floats that round-trip. The walsender gets the same ones, so
/// snapshot rows and streamed rows print alike.
pub(crate) const SESSION_OPTIONS: &str =
    "-c datestyle=ISO -c timezone=UTC -c bytea_output=hex -c extra_float_digits=3 -c intervalstyle=iso_8601 \
     -c standard_conforming_strings=on";

/// A SQL connection with [`SESSION_OPTIONS`].
pub(crate) async fn connect(url: &str) -> Result<Client, CdcError> {
    let mut url = pg_tls::PgUrl::parse("DATABASE_URL", url)?;
    url.config.options(SESSION_OPTIONS).application_name("contrail-cdc");
    Ok(url.connect().await?)
}

/// A captured table as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct TableShape {
    pub(crate) relation: Relation,
    pub(crate) primary_key: Vec<String>,
    /// SQL type of each primary key column, for casting chunk bounds.
    pub(crate) key_types: Vec<String>,
    /// Whether it is a partitioned table (captured as its root).
    pub(crate) partitioned: bool,
}

/// Reads `table`'s columns and primary key, and checks it can be captured.
pub(crate) async fn table_shape(
    client: &Client,
    table: &TableName,
    types: &mut UserTypes,
) -> Result<TableShape, CdcError> {
    let row = client
        .query_opt(
            "SELECT c.oid, c.relreplident, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(CdcError::Postgres)?
        .ok_or_else(|| CdcError::Table {
            table: table.to_string(),
            problem: "does not exist".into(),
        })?;
    let oid: u32 = row.get(0);
    let replident: i8 = row.get(1);
    let relkind: i8 = row.get(2);
    let partitioned = relkind as u8 == b'p';
    if partitioned {
        check_partitions(client, table, oid).await?;
    }
    if replident as u8 != b'f' {
        return Err(CdcError::Table {
            table: table.to_string(),
            problem: format!(
                "needs REPLICA IDENTITY FULL so updates and deletes carry the whole old row \
                 (run ALTER TABLE {} REPLICA IDENTITY FULL)",
                table.quoted()
            ),
        });
    }
    let columns = client
        .query(
            "SELECT attname::text, atttypid, atttypmod FROM pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&oid],
        )
        .await
        .map_err(CdcError::Postgres)?;
    let key_rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.pos",
            &[&oid],
        )
        .await
        .map_err(CdcError::Postgres)?;
    let primary_key: Vec<String> = key_rows.iter().map(|r| r.get(0)).collect();
    let key_types: Vec<String> = key_rows.iter().map(|r| r.get(1)).collect();
    let mut relation = Relation {
        id: oid,
        namespace: table.schema.clone(),
        name: table.name.clone(),
        replica_identity: ReplicaIdentity::Full,
        columns: columns
            .iter()
            .map(|r| Column {
                key: true,
                name: r.get(0),
                type_oid: r.get(1),
                type_modifier: r.get(2),
            })
            .collect(),
    };
    types.resolve(client, &mut relation).await?;
    Ok(TableShape {
        relation,
        primary_key,
        key_types,
        partitioned,
    })
}

/// A partitioned table's changes are published as the root's
/// (`publish_via_partition_root`), but each partition's own replica
/// identity decides what an update or delete carries: every partition
/// must have FULL, as the root must. A partition attached later needs it
/// too before its first update (see the README).
async fn check_partitions(client: &Client, table: &TableName, oid: u32) -> Result<(), CdcError> {
    let lacking: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_partition_tree($1::oid) t
             JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE t.relid <> $1::oid AND c.relreplident <> 'f' ORDER BY 1",
            &[&oid],
        )
        .await
        .map_err(CdcError::Postgres)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    let fixes: Vec<String> = lacking
        .iter()
        .map(|p| format!("ALTER TABLE {p} REPLICA IDENTITY FULL;"))
        .collect();
    Err(CdcError::Table {
        table: table.to_string(),
        problem: format!(
            "is partitioned, and its partitions {} need REPLICA IDENTITY FULL too, so updates and deletes \
             carry the whole old row (run {})",
            lacking.join(", "),
            fixes.join(" ")
        ),
    })
}

/// Creates the publication when missing (inserts, updates and deletes, as
/// Debezium captures by default: TRUNCATE is not a row change; a
/// partitioned table's changes as its root's, so one table is one topic
/// and one warehouse table whatever partition a row is in), and adds
/// configured tables it lacks (they then need an incremental snapshot).
/// `partitioned`: whether any of `tables` is a partitioned table.
pub(crate) async fn ensure_publication(
    client: &Client,
    name: &str,
    tables: &[TableName],
    partitioned: bool,
) -> Result<(), CdcError> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(CdcError::Postgres)?
        .is_some();
    if !exists {
        let list: Vec<String> = tables.iter().map(TableName::quoted).collect();
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {} \
                 WITH (publish = 'insert, update, delete', publish_via_partition_root = true)",
                quote_ident(name),
                list.join(", ")
            ))
            .await
            .map_err(CdcError::Postgres)?;
        tracing::info!(publication = name, tables = ?list, "created publication");
        return Ok(());
    }
    if partitioned {
        via_partition_root(client, name).await?;
    }
    for t in tables {
        let listed = client
            .query_opt(
                "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                &[&name, &t.schema, &t.name],
            )
            .await
            .map_err(CdcError::Postgres)?
            .is_some();
        if !listed {
            client
                .batch_execute(&format!(
                    "ALTER PUBLICATION {} ADD TABLE {}",
                    quote_ident(name),
                    t.quoted()
                ))
                .await
                .map_err(CdcError::Postgres)?;
            tracing::info!(publication = name, table = %t, "added table to the publication");
        }
    }
    Ok(())
}

/// An existing publication made without `publish_via_partition_root`
/// would publish a partitioned table's changes under each partition's
/// name, which no topic is for: it is switched on, and said.
async fn via_partition_root(client: &Client, name: &str) -> Result<(), CdcError> {
    let via_root: bool = client
        .query_one("SELECT pubviaroot FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(CdcError::Postgres)?
        .get(0);
    if !via_root {
        client
            .batch_execute(&format!(
                "ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
                quote_ident(name)
            ))
            .await
            .map_err(CdcError::Postgres)?;
        tracing::warn!(
            publication = name,
            "publishing partitioned tables as their root from now on"
        );
    }
    Ok(())
}

/// The slot's confirmed position, if the slot exists in this database.
pub(crate) async fn slot_position(client: &Client, slot: &str) -> Result<Option<Lsn>, CdcError> {
    let row = client
        .query_opt(
            "SELECT plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(CdcError::Postgres)?;
    let Some(row) = row else { return Ok(None) };
    let plugin: Option<String> = row.get(0);
    if plugin.as_deref() != Some("pgoutput") {
        return Err(CdcError::Config(format!(
            "replication slot {slot} exists with plugin {plugin:?}, not pgoutput: choose another source.slot"
        )));
    }
    let lsn: Option<String> = row.get(1);
    Ok(Some(lsn.as_deref().and_then(Lsn::parse).unwrap_or_default()))
}

pub(crate) async fn drop_slot(client: &Client, slot: &str) -> Result<(), CdcError> {
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(CdcError::Postgres)?;
    Ok(())
}

/// The snapshot bookkeeping table, created when missing.
pub(crate) async fn ensure_state_table(client: &Client, table: &TableName) -> Result<(), CdcError> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                slot_name text NOT NULL,
                table_name text NOT NULL,
                snapshot_lsn pg_lsn NOT NULL,
                completed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (slot_name, table_name))",
            table.quoted()
        ))
        .await
        .map_err(CdcError::Postgres)
}

/// Tables whose snapshot for `slot` is complete.
pub(crate) async fn snapshotted(client: &Client, state: &TableName, slot: &str) -> Result<Vec<String>, CdcError> {
    Ok(client
        .query(
            &format!("SELECT table_name FROM {} WHERE slot_name = $1", state.quoted()),
            &[&slot],
        )
        .await
        .map_err(CdcError::Postgres)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(crate) async fn forget_snapshots(client: &Client, state: &TableName, slot: &str) -> Result<(), CdcError> {
    client
        .execute(
            &format!("DELETE FROM {} WHERE slot_name = $1", state.quoted()),
            &[&slot],
        )
        .await
        .map_err(CdcError::Postgres)?;
    Ok(())
}

pub(crate) async fn mark_snapshotted(
    client: &Client,
    state: &TableName,
    slot: &str,
    tables: &[TableName],
    lsn: Lsn,
) -> Result<(), CdcError> {
    let lsn = lsn.to_string();
    for t in tables {
        client
            .execute(
                &format!(
                    "INSERT INTO {} (slot_name, table_name, snapshot_lsn) VALUES ($1, $2, $3::text::pg_lsn)
                     ON CONFLICT (slot_name, table_name) DO NOTHING",
                    state.quoted()
                ),
                &[&slot, &t.to_string(), &lsn],
            )
            .await
            .map_err(CdcError::Postgres)?;
    }
    Ok(())
}

/// Bytes of WAL the slot holds beyond its confirmed position.
pub(crate) async fn slot_lag_bytes(client: &Client, slot: &str) -> Result<u64, CdcError> {
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(CdcError::Postgres)?;
    Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0).max(0) as u64)
}

/// User-defined types, carried as what they are built on: a domain as its
/// base type (with the domain's type modifier when the column has none),
/// an enum as text (its label; a label added later needs no new schema),
/// and an array of either as an array of that. pgoutput names a column's
/// declared type, so both the start-up shapes and every Relation message
/// go through [`UserTypes::resolve`]; lookups are cached, and only OIDs of
/// user-defined types (from 16384, PostgreSQL's first) are looked up.
#[derive(Debug, Default)]
pub(crate) struct UserTypes {
    known: std::collections::HashMap<u32, Option<(u32, i32)>>,
}

/// The first OID PostgreSQL assigns to objects created after initdb.
const FIRST_USER_OID: u32 = 16384;
/// `text` and `text[]`.
const TEXT: u32 = 25;
const TEXT_ARRAY: u32 = 1009;

impl UserTypes {
    /// Rewrites `rel`'s columns of user-defined types as described above;
    /// other types (an extension's, say) are left for the mapping to judge.
    pub(crate) async fn resolve(&mut self, client: &Client, rel: &mut Relation) -> Result<(), CdcError> {
        for c in &mut rel.columns {
            if c.type_oid < FIRST_USER_OID {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = self.known.entry(c.type_oid) {
                e.insert(carried_as(client, c.type_oid).await?);
            }
            if let Some(Some((oid, typmod))) = self.known.get(&c.type_oid) {
                c.type_oid = *oid;
                if c.type_modifier == -1 {
                    c.type_modifier = *typmod;
                }
            }
        }
        Ok(())
    }
}

/// What a user-defined type is carried as, if it is a domain, an enum or
/// an array of one of these.
async fn carried_as(client: &Client, oid: u32) -> Result<Option<(u32, i32)>, CdcError> {
    let (mut oid, mut typmod, mut changed) = (oid, -1, false);
    // A domain may be over a domain; PostgreSQL forbids cycles.
    for _ in 0..32 {
        let row = client
            .query_opt(
                "SELECT t.typtype::text, t.typbasetype, t.typtypmod, t.typelem, e.typtype::text, e.typbasetype, e.typtypmod
                 FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
                 WHERE t.oid = $1",
                &[&oid],
            )
            .await
            .map_err(CdcError::Postgres)?;
        let Some(r) = row else { return Ok(None) };
        let (kind, base, base_mod): (String, u32, i32) = (r.get(0), r.get(1), r.get(2));
        let elem_kind: Option<String> = r.get(4);
        match (kind.as_str(), elem_kind.as_deref()) {
            ("d", _) => {
                if typmod == -1 {
                    typmod = base_mod;
                }
                (oid, changed) = (base, true);
            }
            ("e", _) => return Ok(Some((TEXT, -1))),
            (_, Some("e")) => return Ok(Some((TEXT_ARRAY, -1))),
            (_, Some("d")) => {
                // An array of a domain: an array of its base type.
                let elem: u32 = r.get(3);
                let Some((base, base_mod)) = Box::pin(carried_as(client, elem)).await? else {
                    return Ok(None);
                };
                let array: Option<u32> = client
                    .query_opt(
                        "SELECT typarray FROM pg_type WHERE oid = $1 AND typarray <> 0",
                        &[&base],
                    )
                    .await
                    .map_err(CdcError::Postgres)?
                    .map(|r| r.get(0));
                return Ok(array.map(|a| (a, base_mod)));
            }
            _ => return Ok(changed.then_some((oid, typmod))),
        }
    }
    Ok(None)
}
