//! The sink against the same SQL issued directly to the warehouse, and its
//! Kafka-to-visible latency at a steady 1,000 changes per second.
//!
//! Kafka is a scratch Apache Kafka broker (`stack::ScratchKafka`, logs on
//! disk in a temporary directory, started here); the registry and
//! the warehouse (fakesnow) are the local stack's. A CDC-shaped topic
//! (3 partitions, envelope and key schemas registered as the CDC stage
//! registers them) is filled with `ROWS` changes over `KEYS` keys.
//!
//! 1. **Direct**: the sink's own statements (`Layout::load`: the staging
//!    insert of a bound JSON array, the changelog insert, the current-state
//!    MERGE) issued with the client for
//!    the same changes in batches of `BATCH`, the JSON built here from the
//!    changes in memory. Tables are created before the clock starts.
//! 2. **Sink**: `sink::run` from offset 0: consume, look schemas up, decode
//!    Avro, build the same statements, store positions. Timed from its
//!    start (login, table creation included) until its `/metrics` count
//!    every change loaded (polled every 20 ms). Both are
//!    also timed from the end of their first batch: the steady rate.
//! 3. **Latency**: while that sink runs, 1,000 changes/s go to the topic
//!    over `LATENCY_KEYS` keys; every `OBSERVE_MS` the current-state table is
//!    queried, and a change counts as visible when its key shows it or a
//!    later change. Latency is from the moment Kafka acknowledged the
//!    record (a watcher stamps the tracked producer's acknowledgements) to
//!    the end of that query.
//!
//! Run: `cargo bench -p sink --bench throughput` (after `contrail stack up`).
//! Figures go to docs/BENCHMARKS.md.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sink::tables::{views, Layout};
use snowflake::{Auth, Bind, Client, SnowflakeConfig};

const ROWS: i64 = 100_000;
const KEYS: i64 = 5_000;
const BATCH: usize = 10_000;
const LATENCY_SECONDS: u64 = 20;
const LATENCY_KEYS: i64 = 500;
/// How often the observer queries the current state.
const OBSERVE_MS: u64 = 25;

fn envelope_schema(ns: &str) -> String {
    json!({"type": "record", "name": "Envelope", "namespace": ns, "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
            {"name": "id", "type": "long"},
            {"name": "seq", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "amount", "type": "double"}]}], "default": null},
        {"name": "after", "type": ["null", "Value"], "default": null},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": "long"},
        {"name": "source", "type": {"type": "record", "name": "Source", "fields": [
            {"name": "lsn", "type": "long"},
            {"name": "commit_lsn", "type": "long"},
            {"name": "txid", "type": "long"},
            {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}}]}}]})
    .to_string()
}

fn key_schema(ns: &str) -> String {
    json!({"type": "record", "name": "Key", "namespace": ns, "fields": [{"name": "id", "type": "long"}]}).to_string()
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Change `seq`: an insert of its key the first time, an update after.
struct Change {
    seq: i64,
    id: i64,
    op: &'static str,
    ts_us: i64,
}

impl Change {
    fn new(seq: i64, keys: i64) -> Change {
        Change {
            seq,
            id: seq % keys,
            op: if seq < keys { "c" } else { "u" },
            ts_us: unix_micros(),
        }
    }

    fn name(&self) -> String {
        format!("aircraft {} report {}", self.id, self.seq)
    }

    fn amount(&self) -> f64 {
        self.seq as f64 * 0.25
    }

    fn encode(&self, key_id: u32, value_id: u32) -> (Vec<u8>, Vec<u8>) {
        let mut k = Vec::new();
        avro_codec::put_long(&mut k, self.id);
        let mut v = Vec::new();
        avro_codec::put_long(&mut v, 0); // before: null
        avro_codec::put_long(&mut v, 1); // after: Value
        avro_codec::put_long(&mut v, self.id);
        avro_codec::put_long(&mut v, self.seq);
        avro_codec::put_string(&mut v, &self.name());
        avro_codec::put_double(&mut v, self.amount());
        avro_codec::put_string(&mut v, self.op);
        avro_codec::put_long(&mut v, self.ts_us / 1000);
        avro_codec::put_long(&mut v, (self.seq + 1) * 100);
        avro_codec::put_long(&mut v, (self.seq + 1) * 100);
        avro_codec::put_long(&mut v, self.seq + 1000);
        avro_codec::put_long(&mut v, self.ts_us);
        let (mut key, mut value) = (Vec::new(), Vec::new());
        wire::encode_into(&mut key, key_id, &k);
        wire::encode_into(&mut value, value_id, &v);
        (key, value)
    }

    fn send(&self, producer: &kafka::Producer, topic: &str, key_id: u32, value_id: u32) {
        let (k, v) = self.encode(key_id, value_id);
        producer
            .send(kafka::Record {
                topic,
                key: &k,
                value: Some(&v),
                headers: &[],
            })
            .unwrap();
    }

    /// The row the sink stages for this change.
    fn staged(&self, value_id: u32) -> Value {
        let secs = self.ts_us.div_euclid(1_000_000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // The row's columns, then the metadata columns, as the sink stages them.
        json!([
            self.id,
            self.seq,
            self.name(),
            self.amount(),
            self.op,
            (self.seq + 1) * 100,
            (self.seq + 1) * 100,
            self.seq + 1000,
            // As avro-json writes timestamp-micros, which the sink passes on.
            format!(
                "{}T{:02}:{:02}:{:02}.{:06}Z",
                civil(days),
                rem / 3600,
                rem % 3600 / 60,
                rem % 60,
                self.ts_us.rem_euclid(1_000_000)
            ),
            value_id,
            1,
            0,
            self.seq,
            false,
        ])
    }
}

/// `YYYY-MM-DD` of days since 1970-01-01.
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

async fn warehouse(url: &str, database: Option<&str>) -> Client {
    let parsed = reqwest_like(url);
    Client::connect(SnowflakeConfig {
        url: parsed.0,
        account: "local".into(),
        user: parsed.1,
        auth: Auth::Password(changes::Secret::new(parsed.2)),
        warehouse: None,
        role: None,
        database: database.map(String::from),
        // fakesnow runs a MERGE only with a current schema.
        schema: database.map(|_| "S".to_string()),
        ca: None,
    })
    .await
    .expect("the local stack's fakesnow (contrail stack up)")
}

/// `scheme://user:password@host:port` → (base, user, password).
fn reqwest_like(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.rsplit_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    (format!("{scheme}://{host}"), user.into(), password.into())
}

/// The sum of a metric's series in the sink's `/metrics`.
fn metric(addr: std::net::SocketAddr, name: &str) -> i64 {
    ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .map(|m| {
            m.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as i64
        })
        .unwrap_or(0)
}

/// Changes the sink has loaded.
fn changes_loaded(addr: std::net::SocketAddr) -> i64 {
    metric(addr, &format!("{}_total{{", sink::metrics::CHANGES))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `RUST_LOG=sink=debug` shows the sink's batches (statement timings).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stack = stack::StackConfig::for_project(&project).unwrap();
    let env: BTreeMap<&str, String> = stack.env().into_iter().collect();
    let broker = stack::ScratchKafka::start()
        .expect("a scratch Apache Kafka broker (Java 17 and Maven: ./scripts/env.sh installs them)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = std::process::id();
    let topic = format!("sinkbench{run}.public.t");
    let kafka = kafka::KafkaConfig {
        bootstrap_servers: broker.bootstrap.clone(),
        client_id: "sink-bench".into(),
        properties: Default::default(),
    };
    rt.block_on(async {
        kafka::ensure_topics(
            &kafka,
            &[kafka::TopicSpec {
                name: topic.clone(),
                partitions: 3,
                replication: 1,
                config: Vec::new(),
            }],
        )
        .await
        .unwrap();
        let registry = registry_client::RegistryClient::new(&env["SCHEMA_REGISTRY_URL"], None).unwrap();
        let (value_schema, key_schema) = (envelope_schema(&topic), key_schema(&topic));
        let value_id = registry.register(&format!("{topic}-value"), &value_schema).await.unwrap();
        let key_id = registry.register(&format!("{topic}-key"), &key_schema).await.unwrap();

        // The backlog.
        let producer = Arc::new(kafka::Producer::tracked(&kafka, Duration::from_millis(5)).unwrap());
        let changes: Vec<Change> = (0..ROWS).map(|s| Change::new(s, KEYS)).collect();
        for c in &changes {
            c.send(&producer, &topic, key_id, value_id);
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        println!("{ROWS} changes over {KEYS} keys in {topic}");

        // 1. Direct.
        let sf_url = &env["SNOWFLAKE_URL"];
        // Fixed names, emptied first: fakesnow keeps every database in
        // memory and cannot drop one, and grows slower as it grows.
        let direct_db = "SINK_BENCH_DIRECT".to_string();
        let sink_db = "SINK_BENCH".to_string();
        let admin = warehouse(sf_url, None).await;
        for db in [&direct_db, &sink_db] {
            admin
                .execute_all(&[
                    &format!("CREATE DATABASE IF NOT EXISTS {db}"),
                    &format!("DROP SCHEMA IF EXISTS {db}.S CASCADE"),
                    &format!("CREATE SCHEMA {db}.S"),
                ])
                .await
                .unwrap();
        }
        let direct = warehouse(sf_url, Some(&direct_db)).await;
        let layout = Layout::new(
            &format!("\"{direct_db}\".\"S\""),
            "t",
            &schema::Schema::parse_str(&value_schema).unwrap(),
            &schema::Schema::parse_str(&key_schema).unwrap(),
        )
        .unwrap();
        for stmt in layout.create().iter().chain(&views(std::slice::from_ref(&layout))) {
            direct.query(stmt, &[]).await.unwrap();
        }
        let statements = layout.load();
        let started = Instant::now();
        let mut after_first: Option<f64> = None;
        // Time in each statement (stage, MERGE, changelog), summed.
        let mut statement_s = [0.0f64; 3];
        for batch in changes.chunks(BATCH) {
            let changelog: Vec<Value> = batch.iter().map(|c| c.staged(value_id)).collect();
            let lowest = changelog.iter().filter_map(|c| c[5].as_i64()).min().unwrap_or(0);
            let binds = [
                vec![Bind::Text(Value::Array(changelog).to_string())],
                vec![],
                vec![Bind::Text(lowest.to_string())],
            ];
            for (i, (stmt, b)) in statements.iter().zip(&binds).enumerate() {
                let t = Instant::now();
                direct.query(stmt, b).await.unwrap();
                statement_s[i] += t.elapsed().as_secs_f64();
            }
            after_first.get_or_insert(started.elapsed().as_secs_f64());
        }
        let direct_s = started.elapsed().as_secs_f64();
        let loaded = direct
            .query(&format!("SELECT COUNT(*) AS N FROM {}", layout.changelog()), &[])
            .await
            .unwrap();
        assert_eq!(loaded.get(0, "N"), Some(ROWS.to_string().as_str()));
        let direct_steady = (ROWS - BATCH as i64) as f64 / (direct_s - after_first.unwrap_or_default());
        let per_batch = |s: f64| s * 1000.0 * BATCH as f64 / ROWS as f64;
        println!(
            "direct SQL: {ROWS} changes in {direct_s:.2} s = {:.0} changes/s; after the first batch {direct_steady:.0} changes/s \
             (per batch: stage {:.0} ms, MERGE {:.0} ms, changelog {:.0} ms)",
            ROWS as f64 / direct_s,
            per_batch(statement_s[0]),
            per_batch(statement_s[1]),
            per_batch(statement_s[2]),
        );

        // 2. The sink, from offset 0.
        let (user, password) = {
            let p = reqwest_like(sf_url);
            (p.1, p.2)
        };
        // Progress comes from the sink's /metrics, not from the warehouse,
        // so watching it adds no load to the server being measured.
        let metrics_addr: std::net::SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let cfg = sink::SinkConfig {
            topics: vec![topic.clone()],
            group_id: format!("sink-bench-{run}"),
            dead_letter_topic: format!("{topic}.dlq"),
            snowflake: SnowflakeConfig {
                url: reqwest_like(sf_url).0,
                account: "local".into(),
                user,
                auth: Auth::Password(changes::Secret::new(password)),
                warehouse: None,
                role: None,
                database: Some(sink_db.clone()),
                schema: Some("S".into()),
                ca: None,
            },
            database: sink_db.clone(),
            schema: "S".into(),
            create_schema: true,
            max_rows: BATCH,
            max_wait: Duration::from_millis(200),
            max_bytes: sink::config::DEFAULT_MAX_BYTES,
            kafka: kafka.clone(),
            registry_url: env["SCHEMA_REGISTRY_URL"].clone(),
            registry: Default::default(),
            metrics_listen: Some(metrics_addr),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let mut sink = tokio::spawn(sink::run(cfg, stopped));
        let observer = warehouse(sf_url, None).await;
        let mut first: Option<(f64, i64)> = None;
        loop {
            if sink.is_finished() {
                panic!("the sink stopped: {:?}", (&mut sink).await);
            }
            let done = changes_loaded(metrics_addr);
            if done > 0 && first.is_none() {
                first = Some((started.elapsed().as_secs_f64(), done));
            }
            if done >= ROWS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sink_s = started.elapsed().as_secs_f64();
        let batches = metric(metrics_addr, &format!("{}_count", sink::metrics::BATCH_SECONDS));
        let (first_s, first_n) = first.unwrap_or_default();
        let sink_steady = (ROWS - first_n) as f64 / (sink_s - first_s);
        println!(
            "sink: {ROWS} changes in {batches} batches, {sink_s:.2} s = {:.0} changes/s, start-up included (ratio {:.2}); \
             after the first batch ({first_n} changes at {first_s:.2} s) {sink_steady:.0} changes/s (ratio {:.2})",
            ROWS as f64 / sink_s,
            direct_s / sink_s,
            sink_steady / direct_steady
        );

        // 3. Latency at 1,000 changes/s.
        // A change is in Kafka when its delivery is acknowledged: a
        // watcher stamps each acknowledgement (the tracked producer numbers
        // records from 1, in send order).
        let sent: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
        let acked_before = producer.deliveries().acked_through();
        let watcher = {
            let (sent, producer) = (sent.clone(), producer.clone());
            std::thread::spawn(move || {
                let mut last = acked_before;
                let end = acked_before + LATENCY_SECONDS * 1000;
                while last < end {
                    let through = producer.deliveries().acked_through();
                    if through > last {
                        let now = Instant::now();
                        let mut sent = sent.lock().unwrap();
                        for n in last + 1..=through {
                            sent.insert(ROWS + (n - acked_before - 1) as i64, now);
                        }
                        last = through;
                    }
                    std::thread::sleep(Duration::from_micros(250));
                }
            })
        };
        let writer = {
            let (producer, topic) = (producer.clone(), topic.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let total = LATENCY_SECONDS as i64 * 1000;
                for i in 0..total {
                    // 10 changes every 10 ms.
                    if i % 10 == 0 {
                        let due = start + Duration::from_millis(i as u64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let seq = ROWS + i;
                    let c = Change::new(seq, LATENCY_KEYS);
                    Change { op: "u", ..c }.send(&producer, &topic, key_id, value_id);
                }
                producer.flush(Duration::from_secs(60)).unwrap();
            })
        };
        let current = format!("{sink_db}.S.\"T_V1\"");
        let mut seen: HashMap<i64, i64> = HashMap::new();
        let mut latencies: Vec<f64> = Vec::new();
        let mut by_second: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        let last = ROWS + LATENCY_SECONDS as i64 * 1000 - 1;
        let deadline = Instant::now() + Duration::from_secs(LATENCY_SECONDS + 60);
        while latencies.len() < (last - ROWS + 1) as usize && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(OBSERVE_MS)).await;
            let r = observer
                .query(
                    &format!("SELECT \"ID\", \"SEQ\" FROM {current} WHERE \"SEQ\" >= ?"),
                    &[Bind::Text(ROWS.to_string())],
                )
                .await
                .unwrap();
            let now = Instant::now();
            let sent = sent.lock().unwrap();
            for row in &r.rows {
                let (Some(id), Some(seq)) = (
                    row[0].as_deref().and_then(|v| v.parse::<i64>().ok()),
                    row[1].as_deref().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    continue;
                };
                let from = seen.get(&id).copied().unwrap_or(ROWS - LATENCY_KEYS + id);
                // Every change of this key up to `seq` is now visible.
                let mut s = from + LATENCY_KEYS;
                while s <= seq {
                    if let Some(t) = sent.get(&s) {
                        latencies.push(now.duration_since(*t).as_secs_f64() * 1000.0);
                        by_second.entry((s - ROWS) / 1000).or_default().push(now.duration_since(*t).as_secs_f64() * 1000.0);
                    }
                    s += LATENCY_KEYS;
                }
                seen.insert(id, seq.max(from));
            }
        }
        writer.join().unwrap();
        watcher.join().unwrap();
        stop.send(true).unwrap();
        let summary = sink.await.unwrap().unwrap();
        latencies.sort_by(f64::total_cmp);
        let per_second: Vec<String> = by_second
            .values_mut()
            .map(|v| {
                v.sort_by(f64::total_cmp);
                format!("{:.0}/{:.0}", percentile(v, 0.5), percentile(v, 0.99))
            })
            .collect();
        println!("p50/p99 ms by second sent: {}", per_second.join(" "));
        assert_eq!(latencies.len() as i64, LATENCY_SECONDS as i64 * 1000, "every change seen");
        println!(
            "Kafka-to-visible at 1,000 changes/s over {LATENCY_SECONDS} s ({} changes, {} batches in all): \
             p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            latencies.len(),
            summary.batches,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99),
            latencies.last().unwrap()
        );
        for db in [&direct_db, &sink_db] {
            admin.query(&format!("DROP SCHEMA IF EXISTS {db}.S CASCADE"), &[]).await.unwrap();
        }
    });
}
