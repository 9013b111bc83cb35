//! Faults under a steady stream, against the real stack: `contrail produce`
//! writes flight changes (inserts, updates, deletes, some of them bad) to
//! PostgreSQL while `contrail cdc` and `contrail sink` run as their own
//! processes. In each phase one fault strikes mid-stream: kill -9 of the CDC
//! stage, kill -9 of the sink, a Kafka broker restart (controlled
//! shutdown and start), a PostgreSQL restart, the
//! registry stopped for 30 s. After each, once the stream is stopped and
//! the pipeline has caught up:
//! - the warehouse's current-state view equals the source table
//!   (`pipeline::verify`, the same check `contrail run` reports);
//! - the changelog holds every change exactly once: no two rows for one
//!   (commit LSN, LSN), and as many rows as the source committed good
//!   changes;
//! - the dead-letter topic holds exactly the injected bad rows, each once:
//!   a CDC stage that resumes reads back the dead letters it sent past its
//!   resume position and does not send them again.
//!
//! The number of committed changes comes from the source itself: a trigger
//! counts every row change of `flight_state` in an audit table, in the
//! changing transaction, so a batch the producer retried after a lost
//! connection is counted as often as PostgreSQL applied it.
//!
//! It is one test function: the phases share one pipeline, and cargo runs
//! the functions of a test binary concurrently.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{stack_env, Stage, TestDb};
use stack::Service;

/// Changes per second the producer writes.
const RATE: u64 = 200;
/// Changelog rows the pipeline must load, before a fault and after it,
/// to count as flowing.
const FLOWING: u64 = 300;
/// The longest a phase may take to catch up once the stream stops.
const SETTLE: Duration = Duration::from_secs(240);

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillCdc,
    KillSink,
    RestartKafka,
    RestartPostgres,
    StopRegistry,
}

struct Pipeline<'a> {
    db: &'a TestDb,
    cdc: Option<Stage>,
    sink: Option<Stage>,
    stack: stack::Stack,
}

impl Pipeline<'_> {
    fn start_cdc(&mut self) {
        self.cdc = Some(Stage::command(self.db, "cdc", &common::flight_cdc_config(self.db)));
    }

    fn start_sink(&mut self) {
        self.sink = Some(Stage::command(self.db, "sink", &common::flight_sink_config(self.db)));
    }

    fn assert_running(&mut self) {
        for stage in [&mut self.cdc, &mut self.sink].into_iter().flatten() {
            stage.assert_running();
        }
    }

    fn logs(&self) -> String {
        let cdc = self.cdc.as_ref().map(Stage::log).unwrap_or_default();
        let sink = self.sink.as_ref().map(Stage::log).unwrap_or_default();
        format!("--- cdc:\n{cdc}\n--- sink:\n{sink}")
    }

    fn strike(&mut self, fault: Fault) {
        match fault {
            Fault::KillCdc => {
                self.cdc.take().unwrap().kill9();
                self.start_cdc();
            }
            Fault::KillSink => {
                self.sink.take().unwrap().kill9();
                self.start_sink();
            }
            Fault::RestartKafka => self.restart(Service::Kafka, Duration::ZERO),
            Fault::RestartPostgres => self.restart(Service::Postgres, Duration::ZERO),
            Fault::StopRegistry => self.restart(Service::Registry, Duration::from_secs(30)),
        }
    }

    fn restart(&self, service: Service, down_for: Duration) {
        self.stack.down(&[service]).unwrap();
        // The fault's length is the point here, not a wait for an event.
        std::thread::sleep(down_for);
        self.stack.up(&[service]).unwrap();
    }
}

/// The producer, as a process of its own, at `RATE` with 3% bad rows.
fn start_producer(db: &TestDb, seed: u64) -> Stage {
    Stage::command(
        db,
        "produce",
        &format!(
            "[source]\nkind = \"simulator\"\nseed = {seed}\nfleet = 150\nbad_percent = 3.0\n\n\
             [target]\nkind = \"postgres\"\nbatch_size = 200\n\n[service]\nrate = {RATE}\nmetrics_listen = \"\"\n"
        ),
    )
}

/// Stops the producer and returns the bad rows it injected, by kind, from
/// its closing line (`…; bad rows injected: kind=n, kind=n`).
fn stop_producer(producer: Stage) -> BTreeMap<String, u64> {
    let (ok, log) = producer.stop();
    assert!(ok, "the producer failed:\n{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("produced "))
        .unwrap_or_else(|| panic!("no summary from the producer:\n{log}"));
    let injected = line.rsplit_once("bad rows injected: ").unwrap().1;
    if injected == "none" {
        return BTreeMap::new();
    }
    injected
        .split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// Rows in the changelog (changes, not snapshot reads): all of them and
/// the distinct (commit LSN, LSN) pairs. Zero before the sink made it.
async fn changelog(sf: &snowflake::Client, database: &str) -> (u64, u64) {
    let sql = format!(
        "SELECT TO_VARCHAR(COUNT(*)), TO_VARCHAR(COUNT(DISTINCT \"_COMMIT_LSN\", \"_LSN\")) \
         FROM {database}.FLIGHTS.FLIGHT_STATE_CHANGELOG WHERE \"_OP\" <> 'r'"
    );
    match sf.query(&sql, &[]).await {
        Ok(r) => {
            let n = |i: usize| r.rows[0][i].as_deref().unwrap_or("0").parse().unwrap();
            (n(0), n(1))
        }
        Err(_) => (0, 0),
    }
}

/// Waits until the changelog holds `by` more rows than it did, with every
/// stage still running.
async fn wait_flowing(p: &mut Pipeline<'_>, sf: &snowflake::Client, database: &str, by: u64, what: &str) {
    let start = changelog(sf, database).await.0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if changelog(sf, database).await.0 >= start + by {
            return;
        }
        p.assert_running();
        assert!(
            Instant::now() < deadline,
            "{what}: the changelog stayed at {start} rows\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a settled pipeline looks like.
#[derive(Debug, PartialEq)]
struct Settled {
    source_changes: u64,
    changelog_rows: u64,
    dead_letters: u64,
}

/// Polls until the pipeline has caught up: the warehouse equals the source,
/// the changelog and the dead-letter topic together hold every committed
/// change, the dead letters being exactly the injected bad rows. Fails at
/// once on a duplicate in the changelog (it never goes away), and at
/// `SETTLE` with the last state seen.
async fn settle(
    p: &mut Pipeline<'_>,
    sf: &snowflake::Client,
    registry: &registry_client::RegistryClient,
    injected: u64,
    phase: &str,
) -> Settled {
    let database = p.db.name.to_uppercase();
    let topic = format!("{}.public.flight_state", p.db.name);
    let (view, _) = sink::tables::view_names(&format!("{}.\"FLIGHTS\"", snowflake::quote_ident(&database)), &topic);
    let source = cdc::TableName {
        schema: "public".into(),
        name: "flight_state".into(),
    };
    let deadline = Instant::now() + SETTLE;
    let mut last = String::new();
    loop {
        p.assert_running();
        assert!(
            Instant::now() < deadline,
            "{phase}: the pipeline did not settle in {SETTLE:?}; last seen: {last}\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pg = common::connect(&p.db.url).await;
        let source_changes: i64 = pg
            .query_one("SELECT count(*) FROM contrail_fault_audit", &[])
            .await
            .unwrap()
            .get(0);
        let source_changes = source_changes as u64;
        let (rows, distinct) = changelog(sf, &database).await;
        assert_eq!(
            rows,
            distinct,
            "{phase}: a change is in the changelog twice\n{}",
            p.logs()
        );
        if rows + injected != source_changes {
            last = format!("{rows} changelog rows + {injected} injected, {source_changes} source changes");
            continue;
        }
        let rules = pipeline::verify::registered_rules(registry, &format!("{topic}-value"))
            .await
            .unwrap();
        let v = pipeline::verify::verify(
            &pg,
            sf,
            pipeline::verify::Target {
                source: &source,
                view: &view,
                rules: rules.as_ref(),
            },
        )
        .await
        .unwrap();
        if !v.verified {
            last = format!("not verified: {:?}", v.differences);
            continue;
        }
        let letters = common::read(&[format!("{}.dlq", p.db.name)]);
        let lsns: std::collections::BTreeSet<&str> = letters
            .iter()
            .map(|r| r["headers"]["contrail.dlq.lsn"].as_str().unwrap())
            .collect();
        if lsns.len() as u64 != injected {
            last = format!("{} dead letters for {injected} injected", lsns.len());
            continue;
        }
        assert_eq!(
            letters.len(),
            lsns.len(),
            "{phase}: a rejected change was dead-lettered twice\n{}",
            p.logs()
        );
        let sink_letters = common::read(&[format!("{}.sink.dlq", p.db.name)]);
        assert!(
            sink_letters.is_empty(),
            "{phase}: the sink dead-lettered {sink_letters:?}"
        );
        return Settled {
            source_changes,
            changelog_rows: rows,
            dead_letters: lsns.len() as u64,
        };
    }
}

#[tokio::test]
async fn under_each_fault_the_warehouse_equals_the_source_with_every_change_once() {
    let db = TestDb::create("faults").await;
    {
        let mut admin = common::connect(&db.url).await;
        flight_db::migrate(&mut admin).await.unwrap();
        admin
            .batch_execute(
                "CREATE TABLE contrail_fault_audit (op text NOT NULL);
                 CREATE FUNCTION contrail_fault_count() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN INSERT INTO contrail_fault_audit VALUES (TG_OP); RETURN NULL; END $$;
                 CREATE TRIGGER contrail_fault_count AFTER INSERT OR UPDATE OR DELETE ON flight_state
                   FOR EACH ROW EXECUTE FUNCTION contrail_fault_count();",
            )
            .await
            .unwrap();
    }
    let mut stack_cfg = stack::StackConfig::for_tests(&common::project()).unwrap();
    // The registry is `contrail registry serve`.
    stack_cfg.contrail_exe = Some(env!("CARGO_BIN_EXE_contrail").into());
    let stack = stack::Stack::new(stack_cfg);
    let mut p = Pipeline {
        db: &db,
        cdc: None,
        sink: None,
        stack,
    };
    p.start_cdc();
    db.wait_captured(p.cdc.as_mut().unwrap()).await;
    p.start_sink();
    let database = db.name.to_uppercase();
    let sf = common::warehouse(&database, "FLIGHTS").await;
    let registry = registry_client::RegistryClient::new(&stack_env("SCHEMA_REGISTRY_URL"), None).unwrap();

    let mut injected = 0;
    for (i, fault) in [
        Fault::KillCdc,
        Fault::KillSink,
        Fault::RestartKafka,
        Fault::RestartPostgres,
        Fault::StopRegistry,
    ]
    .into_iter()
    .enumerate()
    {
        let phase = format!("{fault:?}");
        let producer = start_producer(&db, 100 + i as u64);
        wait_flowing(&mut p, &sf, &database, FLOWING, &format!("{phase}, before")).await;
        let struck = Instant::now();
        p.strike(fault);
        wait_flowing(&mut p, &sf, &database, FLOWING, &format!("{phase}, after")).await;
        let recovered = struck.elapsed();
        let kinds = stop_producer(producer);
        injected += kinds.values().sum::<u64>();
        let s = settle(&mut p, &sf, &registry, injected, &phase).await;
        eprintln!("{phase}: flowing again {recovered:.1?} after the fault; {s:?}");
        assert_eq!(s.changelog_rows + s.dead_letters, s.source_changes, "{phase}");
    }

    for stage in [p.cdc.take(), p.sink.take()].into_iter().flatten() {
        let (ok, log) = stage.stop();
        assert!(ok, "{log}");
    }
    db.drop_slot().await;
}
