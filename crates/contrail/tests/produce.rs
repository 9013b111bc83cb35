//! `contrail produce` end to end against the local stack's PostgreSQL, in a
//! database of its own: it runs until SIGTERM, finishes the batch in hand,
//! reports what it wrote, and the table holds exactly the rows the report
//! implies (inserts minus deletes).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn admin_url() -> String {
    common::stack_env("DATABASE_URL")
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn http_ok(port: u16, path: &str) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

#[test]
fn produce_runs_until_sigterm_and_reports_what_it_wrote() {
    let admin = admin_url();
    psql(&admin, "DROP DATABASE IF EXISTS produce_test WITH (FORCE)");
    psql(&admin, "CREATE DATABASE produce_test");
    let db = admin
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/produce_test"))
        .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_contrail"))
        .args([
            "--project-dir",
            project.to_str().unwrap(),
            "produce",
            "--rate",
            "2000",
            "--bad-percent",
            "10",
        ])
        .args(["--fleet", "100", "--metrics-listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until batches are landing: the metrics count updates.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = http_ok(port, "/metrics").unwrap_or_default();
        if metrics.contains("contrail_producer_changes_total{op=\"update\"}") {
            assert!(http_ok(port, "/healthz").is_some());
            break;
        }
        assert!(Instant::now() < deadline, "the producer wrote nothing in 60 s");
        assert!(child.try_wait().unwrap().is_none(), "the producer exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // "produced N changes in …: I inserts, U updates, D deletes; bad rows injected: …"
    let number_before = |word: &str| -> u64 {
        let idx = stdout.find(word).unwrap_or_else(|| panic!("no {word:?} in {stdout}"));
        stdout[..idx].split_whitespace().last().unwrap().parse().unwrap()
    };
    let (inserts, updates, deletes) = (
        number_before(" inserts"),
        number_before(" updates"),
        number_before(" deletes"),
    );
    assert!(updates > 0 && inserts > 0, "{stdout}");
    assert!(
        stdout.contains("bad rows injected: ") && !stdout.contains("injected: none"),
        "{stdout}"
    );
    let rows: u64 = psql(&db, "SELECT count(*) FROM flight_state").parse().unwrap();
    assert_eq!(rows, inserts - deletes, "{stdout}");
}

fn fresh_db(name: &str) -> String {
    let admin = admin_url();
    psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    psql(&admin, &format!("CREATE DATABASE {name}"));
    admin
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{name}"))
        .unwrap()
}

fn produce_with(config: &str, db: &str) -> String {
    let dir = std::env::temp_dir().join(format!("contrail-produce-{}-{}", std::process::id(), config.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("producer.toml");
    std::fs::write(&path, config).unwrap();
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_contrail"))
            .args([
                "--project-dir",
                project.to_str().unwrap(),
                "produce",
                "--config",
                path.to_str().unwrap(),
            ])
            .env("DATABASE_URL", db),
        common::COMMAND_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn row(icao: &str, velocity: f64) -> String {
    format!(
        r#"["{icao}","TST1    ","Germany",1732435200,1732435201,8.5,50.0,1000.0,false,{velocity},90.0,0.0,null,1050.0,"1234",false,0,4]"#
    )
}

#[test]
fn replay_turns_recorded_snapshots_into_inserts_updates_and_deletes() {
    let db = fresh_db("produce_replay");
    let recording = std::env::temp_dir().join(format!("contrail-replay-{}.jsonl", std::process::id()));
    std::fs::write(
        &recording,
        format!(
            "{{\"time\":1732435201,\"states\":[{},{}]}}\nthis line is garbage\n{{\"time\":1732435211,\"states\":[{},{},[\"short\"]]}}\n{{\"time\":1732435221,\"states\":[{}]}}\n",
            row("aaaaa1", 100.0),
            row("bbbbb2", 100.0),
            row("aaaaa1", 120.0),
            row("ccccc3", 100.0),
            row("ccccc3", 100.0),
        ),
    )
    .unwrap();
    let stdout = produce_with(
        &format!(
            "[source]\nkind = \"replay\"\npath = \"{}\"\nspeed = 0.0\n\n[target]\nkind = \"postgres\"\n\n[service]\nmetrics_listen = \"\"\n",
            recording.display()
        ),
        &db,
    );
    assert!(stdout.contains("3 inserts, 1 updates, 2 deletes"), "{stdout}");
    assert!(stdout.contains("2 malformed inputs skipped"), "{stdout}");
    assert_eq!(psql(&db, "SELECT string_agg(icao24, ',') FROM flight_state"), "ccccc3");
}

#[test]
fn opensky_source_polls_a_local_server_standing_in_for_opensky() {
    let db = fresh_db("produce_opensky");
    let answer = include_str!("../../opensky/tests/data/states_all.json");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}", answer.len()).as_bytes(),
            );
        }
    });
    let stdout = produce_with(
        &format!(
            "[source]\nkind = \"opensky\"\nbase_url = \"http://127.0.0.1:{port}/api\"\npoll_seconds = 1\n\n[target]\nkind = \"postgres\"\n\n[service]\nduration_seconds = 2\nmetrics_listen = \"\"\n"
        ),
        &db,
    );
    // Every poll sees the same snapshot: three inserts, then nothing changes.
    assert!(stdout.contains("3 inserts, 0 updates, 0 deletes"), "{stdout}");
    assert!(stdout.contains("malformed inputs skipped"), "{stdout}");
    assert_eq!(psql(&db, "SELECT count(*) FROM flight_state"), "3");
}
