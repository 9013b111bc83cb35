//! From row changes to Kafka records: one [`Emitter`] owns the producer, the
//! per-table codecs, their registered schema ids and compiled rules.
//!
//! For each change it parses the tuple, checks the rules of the table's
//! registered value schema against the new row, and sends either the event
//! (to the table's topic, keyed by the primary key, plus a tombstone after
//! a delete) or the dead-letter record (same key and envelope, with the
//! broken rules, the reasons and the LSN in headers). A value that has no
//! Avro form is dead-lettered as JSON text with rule `decode`; one larger
//! than its topic takes, as a small JSON record with rule `size`. The record
//! numbers the tracked producer hands out let the stage confirm a WAL
//! position only once everything before it is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;

use changes::{header, DeadLetter, Stage};
use pg_avro::{EventMeta, Op, Row, TableCodec, ValueError};
use pgoutput::{Datum, Relation};
use registry_client::RegistryClient;
use rules::{EvalContext, RuleSet, Violation};

use crate::metrics::{EventLabels, Metrics, RuleLabels};
use crate::CdcError;

/// One captured table.
#[derive(Debug)]
struct Capture {
    relation: Relation,
    codec: TableCodec,
    rules: RuleSet,
    key_id: u32,
    value_id: u32,
    name: String,
    /// `contrail_cdc_events_total` for this table, by op (c, u, d, r):
    /// looked up once, since a label lookup per event costs an allocation.
    events: [prometheus_client::metrics::counter::Counter; 4],
}

/// Settings the emitter needs.
#[derive(Debug, Clone)]
pub(crate) struct EmitterConfig {
    pub(crate) topic_prefix: String,
    pub(crate) dead_letter_topic: String,
    pub(crate) tombstones: bool,
}

/// See the module docs.
pub(crate) struct Emitter {
    cfg: EmitterConfig,
    pub(crate) producer: kafka::Producer,
    registry: RegistryClient,
    tables: HashMap<String, Capture>,
    by_relation: HashMap<u32, String>,
    /// Relations announced but not configured: a partition's own, which
    /// PostgreSQL sends beside its root's under `publish_via_partition_root`.
    /// A row change for one of them is an error (see [`Self::capture`]).
    unconfigured: HashMap<u32, String>,
    primary_keys: HashMap<String, Vec<String>>,
    contracts: HashMap<String, serde_json::Value>,
    metrics: Arc<Metrics>,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    violations: Vec<Violation>,
    /// Number of the last record sent.
    pub(crate) last_seq: u64,
    /// The transaction-metadata topic and its key and value schema ids.
    transactions: Option<(String, u32, u32)>,
    /// Dead letters a previous run sent after the resume position, by
    /// (LSN, key), with how many: a replayed change finds its own here and
    /// is not dead-lettered twice.
    sent_before: crate::confirm::SentDeadLetters,
    /// The largest record each topic takes (see [`kafka::record_size`]);
    /// a topic not listed takes what the producer can send.
    limits: HashMap<String, usize>,
}

/// An event too large for the topic it was meant for.
#[derive(Debug)]
struct Oversized {
    topic: String,
    size: usize,
    limit: usize,
    /// The event's key.
    key: Vec<u8>,
    /// Rules the event broke as well, with their reasons.
    broken: Vec<(String, String)>,
}

/// A key longer than this is not repeated in the small dead letter that
/// stands for an oversized event; the table's name keys it instead.
const MAX_DEAD_LETTER_KEY: usize = 1024;

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("tables", &self.tables.keys())
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Emitter {
    pub(crate) fn new(
        cfg: EmitterConfig,
        producer: kafka::Producer,
        registry: RegistryClient,
        contracts: HashMap<String, serde_json::Value>,
        metrics: Arc<Metrics>,
    ) -> Emitter {
        Emitter {
            cfg,
            producer,
            registry,
            tables: HashMap::new(),
            by_relation: HashMap::new(),
            unconfigured: HashMap::new(),
            primary_keys: HashMap::new(),
            contracts,
            metrics,
            key_buf: Vec::with_capacity(64),
            value_buf: Vec::with_capacity(512),
            violations: Vec::new(),
            last_seq: 0,
            transactions: None,
            sent_before: crate::confirm::SentDeadLetters::default(),
            limits: HashMap::new(),
        }
    }

    /// The size limits of the topics written to, as Kafka reported them.
    pub(crate) fn set_limits(&mut self, topics: &[kafka::TopicSettings]) {
        self.limits = topics
            .iter()
            .map(|t| (t.name.clone(), self.producer.limit_for(t)))
            .collect();
    }

    /// Why a change of table `name` is dead-lettered, with this stage's
    /// headers (see [`changes::DeadLetter`]).
    fn why(&self, name: &str, meta: &EventMeta<'_>, rules: Vec<String>, reasons: Vec<String>) -> DeadLetter {
        let topic = self.tables.get(name).map_or(String::new(), |c| c.codec.topic.clone());
        let lsn = meta.position.lsn.to_string();
        DeadLetter::new(Stage::Cdc, &topic, rules, reasons)
            .at(lsn.clone())
            .with(header::LSN, lsn)
            .with(header::COMMIT_LSN, meta.position.commit_lsn.to_string())
            .with(header::TOPIC_PREFIX, self.cfg.topic_prefix.clone())
    }

    /// `Some` when `record` is larger than its topic takes.
    fn oversized(&self, record: &kafka::Record<'_>) -> Option<Oversized> {
        let limit = self.limits.get(record.topic).copied()?;
        let size = kafka::record_size(record);
        (size > limit).then(|| Oversized {
            topic: record.topic.to_string(),
            size,
            limit,
            key: record.key.to_vec(),
            broken: Vec::new(),
        })
    }

    /// The dead letters already in the topic past the resume position
    /// (see [`crate::confirm`]).
    pub(crate) fn remember_sent_dead_letters(&mut self, sent: crate::confirm::SentDeadLetters) {
        self.sent_before = sent;
    }

    /// Whether this dead letter is already in the topic (and is then not
    /// sent again).
    fn sent_before(&mut self, lsn: changes::Lsn, key: &[u8]) -> bool {
        let sent = self.sent_before.take(lsn, key);
        if sent {
            self.metrics.dead_letters_already_sent.inc();
        }
        sent
    }

    /// Registers the transaction-metadata schemas; from then on
    /// [`Emitter::transaction`] writes to `topic`.
    pub(crate) async fn enable_transactions(&mut self, topic: &str) -> Result<(), CdcError> {
        let key_id = self
            .registry
            .register(&format!("{topic}-key"), pg_avro::TRANSACTION_KEY_SCHEMA)
            .await
            .map_err(CdcError::Registry)?;
        let value_id = self
            .registry
            .register(&format!("{topic}-value"), pg_avro::TRANSACTION_VALUE_SCHEMA)
            .await
            .map_err(CdcError::Registry)?;
        self.transactions = Some((topic.to_string(), key_id, value_id));
        Ok(())
    }

    /// Writes a transaction's BEGIN (`counts` None) or END record.
    pub(crate) fn transaction(
        &mut self,
        id: &str,
        ts_ms: i64,
        counts: Option<&[(String, u64)]>,
    ) -> Result<(), CdcError> {
        let Some((topic, key_id, value_id)) = &self.transactions else {
            return Ok(());
        };
        self.key_buf.clear();
        wire::write_header(&mut self.key_buf, *key_id);
        pg_avro::encode_transaction_key(&mut self.key_buf, id);
        self.value_buf.clear();
        wire::write_header(&mut self.value_buf, *value_id);
        pg_avro::encode_transaction(&mut self.value_buf, id, ts_ms, counts);
        self.last_seq = self.producer.send(kafka::Record {
            topic,
            key: &self.key_buf,
            value: Some(&self.value_buf),
            headers: &[],
        })?;
        Ok(())
    }

    /// Whether transaction metadata is written.
    pub(crate) fn writes_transactions(&self) -> bool {
        self.transactions.is_some()
    }

    /// The topics events of `rel` go to, before it is registered.
    pub(crate) fn topic_for(&self, rel: &Relation) -> String {
        pg_avro::topic_name(&self.cfg.topic_prefix, rel)
    }

    /// Builds the codec for `rel` (keyed by `primary_key`), registers its key
    /// and value schemas, and compiles the rules of the registered value
    /// schema. Called at start for every table and again when a Relation
    /// message shows the table's columns changed.
    pub(crate) async fn register(&mut self, rel: &Relation, primary_key: &[String]) -> Result<(), CdcError> {
        let name = format!("{}.{}", rel.namespace, rel.name);
        let codec = TableCodec::new(&self.cfg.topic_prefix, rel, primary_key, self.contracts.get(&name))
            .map_err(|e| CdcError::Mapping(e.to_string()))?;
        let row = schema::Schema::parse(&codec.row_schema)
            .map_err(|e| CdcError::Mapping(format!("table {name}: the row schema is invalid: {e}")))?;
        let rules = RuleSet::from_schema(&row)
            .map_err(|e| CdcError::Mapping(format!("table {name}: the contract's rules do not apply: {e}")))?;
        let register = |subject: String, schema: String| {
            let registry = self.registry.clone();
            let table = name.clone();
            async move {
                registry.register(&subject, &schema).await.map_err(|e| match e {
                    registry_client::ClientError::Rejected {
                        status: 409, message, ..
                    } => CdcError::SchemaRefused {
                        table,
                        subject,
                        message,
                    },
                    other => CdcError::Registry(other),
                })
            }
        };
        let key_id = register(format!("{}-key", codec.topic), codec.key_schema.to_string()).await?;
        let value_id = register(format!("{}-value", codec.topic), codec.value_schema.to_string()).await?;
        tracing::info!(table = %name, topic = %codec.topic, key_id, value_id, rules = rules.len(), "table registered");
        self.by_relation.insert(rel.id, name.clone());
        self.primary_keys.insert(name.clone(), primary_key.to_vec());
        self.tables.insert(
            name.clone(),
            Capture {
                relation: rel.clone(),
                codec,
                rules,
                key_id,
                value_id,
                events: [Op::Create, Op::Update, Op::Delete, Op::Read].map(|op| {
                    self.metrics
                        .events
                        .get_or_create(&EventLabels {
                            table: name.clone(),
                            op: op.code(),
                        })
                        .clone()
                }),
                name,
            },
        );
        Ok(())
    }

    /// Handles a Relation message: maps its id, and re-registers when the
    /// table's columns differ from the ones known.
    pub(crate) async fn relation(&mut self, rel: &Relation) -> Result<(), CdcError> {
        let name = format!("{}.{}", rel.namespace, rel.name);
        let Some(known) = self.tables.get(&name) else {
            // pgoutput announces a partition after its root, though its
            // changes come as the root's: only a change makes this wrong.
            tracing::debug!(table = %name, "a relation that is not configured (a partition's, or unused)");
            self.unconfigured.insert(rel.id, name);
            return Ok(());
        };
        let same = known.relation.columns.len() == rel.columns.len()
            && known
                .relation
                .columns
                .iter()
                .zip(&rel.columns)
                .all(|(a, b)| a.name == b.name && a.type_oid == b.type_oid && a.type_modifier == b.type_modifier);
        if same {
            self.by_relation.insert(rel.id, name);
            return Ok(());
        }
        let describe = |r: &Relation| {
            r.columns
                .iter()
                .map(|c| format!("{} {}({})", c.name, c.type_oid, c.type_modifier))
                .collect::<Vec<_>>()
                .join(", ")
        };
        tracing::info!(
            table = %name,
            was = %describe(&known.relation),
            now = %describe(rel),
            "the table's columns changed: registering a new schema version"
        );
        let pk = self.primary_keys.get(&name).cloned().unwrap_or_default();
        self.register(rel, &pk).await
    }

    fn capture(&self, relation: u32) -> Result<&Capture, CdcError> {
        if let Some(name) = self.unconfigured.get(&relation) {
            return Err(CdcError::Table {
                table: name.clone(),
                problem: "sent row changes from the publication but is not configured in source.tables".into(),
            });
        }
        self.by_relation
            .get(&relation)
            .and_then(|n| self.tables.get(n))
            .ok_or(CdcError::Protocol(format!(
                "a row change for relation {relation} before its Relation message"
            )))
    }

    /// The registered table names.
    pub(crate) fn table_name_of(&self, relation: u32) -> Option<&str> {
        self.by_relation.get(&relation).map(String::as_str)
    }

    /// Emits one change given as pgoutput tuples; returns how many events
    /// went to the table's topic (0 when dead-lettered, 2 for a key change).
    pub(crate) fn change(
        &mut self,
        relation: u32,
        op: Op,
        meta: EventMeta<'_>,
        old: Option<&[Datum]>,
        new: Option<&[Datum]>,
    ) -> Result<u64, CdcError> {
        let name = self.capture(relation)?.name.clone();
        self.change_by_name(&name, op, meta, old, new)
    }

    /// Emits one change of the table `name` (`schema.table`).
    pub(crate) fn change_by_name(
        &mut self,
        name: &str,
        op: Op,
        meta: EventMeta<'_>,
        old: Option<&[Datum]>,
        new: Option<&[Datum]>,
    ) -> Result<u64, CdcError> {
        let cap = self
            .tables
            .get(name)
            .ok_or_else(|| CdcError::Protocol(format!("unknown table {name}")))?;
        let parse = |d: Option<&[Datum]>, old: Option<&Row>| d.map(|d| cap.codec.row(d, old)).transpose();
        let rows = parse(old, None).and_then(|before| {
            let after = parse(new, before.as_ref())?;
            Ok((before, after))
        });
        let (before, after) = match rows {
            Ok(rows) => rows,
            Err(e) => return self.dead_letter_undecodable(name, &meta, op, old, new, &e).map(|()| 0),
        };
        // An update that changes the primary key is a delete of the old key
        // and a create of the new one, as Debezium emits it: each key's
        // history stays on its own partition.
        let key_changed = match (op, &before, &after) {
            (Op::Update, Some(b), Some(a)) => {
                let (mut kb, mut ka) = (Vec::new(), Vec::new());
                cap.codec.encode_key(&mut kb, b);
                cap.codec.encode_key(&mut ka, a);
                kb != ka
            }
            _ => false,
        };
        if key_changed {
            let deleted = self.emit(name, EventMeta { op: Op::Delete, ..meta }, before.as_ref(), None)?;
            let created = self.emit(name, EventMeta { op: Op::Create, ..meta }, None, after.as_ref())?;
            return Ok(u64::from(deleted) + u64::from(created));
        }
        self.emit(name, meta, before.as_ref(), after.as_ref()).map(u64::from)
    }

    /// Sends one event; `false` when it was dead-lettered.
    fn emit(
        &mut self,
        name: &str,
        meta: EventMeta<'_>,
        before: Option<&Row>,
        after: Option<&Row>,
    ) -> Result<bool, CdcError> {
        let Some(cap) = self.tables.get(name) else {
            return Ok(false);
        };
        let keyed = after
            .or(before)
            .ok_or(CdcError::Protocol("a change with neither old nor new row".into()))?;
        self.key_buf.clear();
        wire::write_header(&mut self.key_buf, cap.key_id);
        cap.codec.encode_key(&mut self.key_buf, keyed);
        self.value_buf.clear();
        wire::write_header(&mut self.value_buf, cap.value_id);
        cap.codec.encode_value(&mut self.value_buf, &meta, before, after);
        self.violations.clear();
        if let Some(after) = after {
            cap.rules
                .evaluate_into(after, &EvalContext { now_ms: meta.now_ms }, &mut self.violations);
        }
        if !self.violations.is_empty() {
            self.dead_letter_rule_breaker(name, &meta)?;
            return Ok(false);
        }
        let event = kafka::Record {
            topic: &cap.codec.topic,
            key: &self.key_buf,
            value: Some(&self.value_buf),
            headers: &[],
        };
        if let Some(too_big) = self.oversized(&event) {
            self.dead_letter_oversized(name, &meta, too_big)?;
            return Ok(false);
        }
        self.last_seq = self.producer.send(event)?;
        if meta.op == Op::Delete && self.cfg.tombstones {
            self.last_seq = self.producer.send(kafka::Record { value: None, ..event })?;
        }
        let op = match meta.op {
            Op::Create => 0,
            Op::Update => 1,
            Op::Delete => 2,
            Op::Read => 3,
        };
        cap.events[op].inc();
        Ok(true)
    }

    /// The encoded event in `key_buf` and `value_buf` broke the rules in
    /// `violations`: it goes to the dead-letter topic with them.
    fn dead_letter_rule_breaker(&mut self, name: &str, meta: &EventMeta<'_>) -> Result<(), CdcError> {
        if self.sent_before(meta.position.lsn, &self.key_buf.clone()) {
            return Ok(());
        }
        let rules: Vec<String> = self.violations.iter().map(|v| v.rule.to_string()).collect();
        let reasons: Vec<String> = self.violations.iter().map(ToString::to_string).collect();
        tracing::debug!(table = name, lsn = %meta.position.lsn, ?reasons, "dead-lettered");
        let headers = self.why(name, meta, rules.clone(), reasons.clone()).headers();
        let headers = kafka::header_refs(&headers);
        let record = kafka::Record {
            topic: &self.cfg.dead_letter_topic,
            key: &self.key_buf,
            value: Some(&self.value_buf),
            headers: &headers,
        };
        if let Some(too_big) = self.oversized(&record) {
            let broken = rules.into_iter().zip(reasons).collect();
            return self.dead_letter_oversized(name, meta, Oversized { broken, ..too_big });
        }
        self.last_seq = self.producer.send(record)?;
        self.count_dead_letter(rules.iter().map(String::as_str));
        Ok(())
    }

    /// An event larger than its topic takes (`max.message.bytes`): Kafka
    /// would refuse it on every retry and the slot could never move past
    /// it. A small record stands in for it in the dead-letter topic: its
    /// key, table, op, positions, size and the limit, as JSON text, with
    /// rule `size` (and any rules it broke as well).
    fn dead_letter_oversized(&mut self, name: &str, meta: &EventMeta<'_>, too_big: Oversized) -> Result<(), CdcError> {
        let key = if too_big.key.len() <= MAX_DEAD_LETTER_KEY {
            too_big.key
        } else {
            name.as_bytes().to_vec()
        };
        if self.sent_before(meta.position.lsn, &key) {
            return Ok(());
        }
        let reason = format!(
            "the event is {} bytes, more than the {} bytes topic {} takes \
             (the topic's max.message.bytes, or the producer's message.max.bytes)",
            too_big.size, too_big.limit, too_big.topic
        );
        tracing::warn!(table = name, lsn = %meta.position.lsn, %reason, "an oversized event was dead-lettered");
        let mut rules = vec!["size".to_string()];
        let mut reasons = vec![reason];
        for (rule, why) in too_big.broken {
            rules.push(rule);
            reasons.push(why);
        }
        let doc = serde_json::json!({
            "table": name, "op": meta.op.code(), "lsn": meta.position.lsn.0, "commit_lsn": meta.position.commit_lsn.0, "txid": meta.transaction.txid,
            "topic": too_big.topic, "size_bytes": too_big.size, "limit_bytes": too_big.limit,
        })
        .to_string();
        let why = self.why(name, meta, rules.clone(), reasons);
        self.last_seq = self
            .producer
            .dead_letter(&self.cfg.dead_letter_topic, &key, Some(doc.as_bytes()), &why)?;
        self.metrics.oversized.inc();
        self.count_dead_letter(rules.iter().map(String::as_str));
        Ok(())
    }

    /// Counts one dead-lettered row, and each rule it broke.
    fn count_dead_letter<'r>(&self, rules: impl Iterator<Item = &'r str>) {
        for rule in rules {
            self.metrics.dead_lettered.inc(&RuleLabels { rule: rule.to_string() });
        }
        self.metrics.dead_lettered_rows.inc();
    }

    /// A row with a value that has no Avro form: its columns as JSON text go
    /// to the dead-letter topic, keyed by the table name.
    fn dead_letter_undecodable(
        &mut self,
        name: &str,
        meta: &EventMeta<'_>,
        op: Op,
        old: Option<&[Datum]>,
        new: Option<&[Datum]>,
        error: &ValueError,
    ) -> Result<(), CdcError> {
        if self.sent_before(meta.position.lsn, name.as_bytes()) {
            return Ok(());
        }
        let Some(cap) = self.tables.get(name) else {
            return Ok(());
        };
        let as_json = |d: Option<&[Datum]>| match d {
            None => serde_json::Value::Null,
            Some(d) => serde_json::Value::Object(
                cap.relation
                    .columns
                    .iter()
                    .zip(d)
                    .map(|(c, d)| {
                        let v = match d {
                            Datum::Null => serde_json::Value::Null,
                            Datum::UnchangedToast => serde_json::json!({"unchanged_toast": true}),
                            Datum::Text(t) => serde_json::Value::String(String::from_utf8_lossy(t).into_owned()),
                            Datum::Binary(b) => serde_json::Value::String(format!("<{} binary bytes>", b.len())),
                        };
                        (c.name.clone(), v)
                    })
                    .collect(),
            ),
        };
        let doc = serde_json::json!({
            "table": name, "op": op.code(), "lsn": meta.position.lsn.0, "commit_lsn": meta.position.commit_lsn.0, "txid": meta.transaction.txid,
            "before": as_json(old), "after": as_json(new),
        });
        tracing::warn!(table = name, lsn = %meta.position.lsn, %error, "a row that has no Avro form was dead-lettered");
        let value = doc.to_string();
        let headers = self
            .why(name, meta, vec!["decode".into()], vec![error.to_string()])
            .headers();
        let headers = kafka::header_refs(&headers);
        let record = kafka::Record {
            topic: &self.cfg.dead_letter_topic,
            key: name.as_bytes(),
            value: Some(value.as_bytes()),
            headers: &headers,
        };
        if let Some(too_big) = self.oversized(&record) {
            let broken = vec![("decode".to_string(), error.to_string())];
            return self.dead_letter_oversized(name, meta, Oversized { broken, ..too_big });
        }
        self.last_seq = self.producer.send(record)?;
        self.count_dead_letter(std::iter::once("decode"));
        Ok(())
    }
}
