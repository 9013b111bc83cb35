//! `contrail schema …` end to end through the binary: golden files (the
//! committed generated code and `.avsc` match what the IDL produces), and the
//! messages and exit codes of lint and check.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn contrail(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_contrail"))
        .args(["--project-dir", dir.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A copy of the project's schema files in a temporary directory.
fn scratch_project() -> tempfile::TempDir {
    let root = project_root();
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "schemas",
        "registry",
        "registry/schemas",
        "snowflake/tables/flight_state",
    ] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for file in [
        "schemas/flight.avdl",
        "registry/subjects.toml",
        "registry/schemas/flights.state-value.avsc",
        "snowflake/tables.toml",
        "snowflake/tables/flight_state/v1.sql",
        "rustfmt.toml",
    ] {
        std::fs::copy(root.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

#[test]
fn generated_rust_matches_the_idl() {
    let out = contrail(&project_root(), &["schema", "codegen", "--check"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn compiled_avsc_matches_the_idl() {
    let out = contrail(&project_root(), &["schema", "compile", "--check"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn snowflake_ddl_matches_the_idl() {
    let out = contrail(&project_root(), &["schema", "ddl", "--check"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn a_changed_record_gets_a_new_ddl_version_and_check_says_so() {
    let dir = scratch_project();
    let idl = dir.path().join("schemas/flight.avdl");
    let text = std::fs::read_to_string(&idl).unwrap();
    let v2 = dir.path().join("snowflake/tables/flight_state/v2.sql");

    // A hand edit is drift.
    let v1 = dir.path().join("snowflake/tables/flight_state/v1.sql");
    let committed = std::fs::read_to_string(&v1).unwrap();
    std::fs::write(&v1, committed.replace("\"SQUAWK\" TEXT", "\"SQUAWK\" NUMBER(4,0)")).unwrap();
    let out = contrail(dir.path(), &["schema", "ddl", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("snowflake/tables/flight_state/v1.sql is out of date"));
    std::fs::write(&v1, &committed).unwrap();

    // An optional field: version 2 adds the column to generation 1.
    let added = text.replace(
        "    /** Aircraft category. */",
        "    /** Registration mark, when known. */\n    union { null, string } registration = null;\n\n    /** Aircraft category. */",
    );
    std::fs::write(&idl, &added).unwrap();
    let out = contrail(dir.path(), &["schema", "ddl", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("snowflake/tables/flight_state/v2.sql is out of date"),
        "{}",
        stdout(&out)
    );
    assert!(!v2.exists());
    let out = contrail(dir.path(), &["schema", "ddl"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let ddl = std::fs::read_to_string(&v2).unwrap();
    assert!(ddl.contains("-- Change: add columns REGISTRATION\n"), "{ddl}");
    assert!(ddl.contains("ALTER TABLE \"FLIGHT_STATE_V1\" ADD COLUMN IF NOT EXISTS \"REGISTRATION\" TEXT;"));
    assert_eq!(std::fs::read_to_string(&v1).unwrap(), committed);
    assert!(contrail(dir.path(), &["schema", "ddl", "--check"]).status.success());

    // A type change: version 3 starts generation 2.
    std::fs::write(
        &idl,
        added.replace(
            "union { null, string } @pattern(\"^[0-7]{4}$\") squawk",
            "union { null, int } squawk",
        ),
    )
    .unwrap();
    let out = contrail(dir.path(), &["schema", "ddl"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let ddl = std::fs::read_to_string(dir.path().join("snowflake/tables/flight_state/v3.sql")).unwrap();
    assert!(
        ddl.contains("-- Change: new generation: column SQUAWK changed type from TEXT to NUMBER(38,0)"),
        "{ddl}"
    );
    assert!(ddl.contains("CREATE TABLE IF NOT EXISTS \"FLIGHT_STATE_V2\""));
}

#[test]
fn committed_schemas_lint_clean() {
    let out = contrail(&project_root(), &["schema", "lint", "--deny-warnings"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn check_accepts_an_optional_field_and_names_the_field_of_a_breaking_change() {
    let dir = scratch_project();
    let idl = dir.path().join("schemas/flight.avdl");
    let text = std::fs::read_to_string(&idl).unwrap();
    let before = dir.path().join("registry/schemas");

    // Adding an optional field with a default keeps BACKWARD compatibility.
    let added = text.replace(
        "    /** Aircraft category. */",
        "    /** Registration mark, when known. */\n    union { null, string } registration = null;\n\n    /** Aircraft category. */",
    );
    std::fs::write(&idl, &added).unwrap();
    let out = contrail(dir.path(), &["schema", "check", "--against", before.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("flights.state-value: compatible (BACKWARD"),
        "{}",
        stdout(&out)
    );

    // A required field without a default breaks it, and the message says where and why.
    let broken = text.replace(
        "    /** Aircraft category. */",
        "    /** Registration mark. */\n    string registration;\n\n    /** Aircraft category. */",
    );
    std::fs::write(&idl, &broken).unwrap();
    let out = contrail(dir.path(), &["schema", "check", "--against", before.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let msg = stdout(&out);
    let line = broken.lines().position(|l| l.contains("string registration;")).unwrap() + 1;
    assert!(
        msg.contains(&format!(
            "schemas/flight.avdl:{line}:12: error: flights.state-value (BACKWARD)"
        )),
        "{msg}"
    );
    assert!(msg.contains("FlightState.registration"), "{msg}");
    assert!(msg.contains("READER_FIELD_MISSING_DEFAULT_VALUE"), "{msg}");

    // The same change is fine when nothing is checked, and FORWARD only.
    let out = contrail(
        dir.path(),
        &[
            "schema",
            "check",
            "--against",
            before.to_str().unwrap(),
            "--level",
            "FORWARD",
        ],
    );
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn check_against_an_older_idl_directory_finds_a_type_change() {
    let dir = scratch_project();
    let old = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("schemas/flight.avdl"), old.path().join("flight.avdl")).unwrap();
    let idl = dir.path().join("schemas/flight.avdl");
    let text = std::fs::read_to_string(&idl).unwrap();
    std::fs::write(&idl, text.replace("boolean on_ground;", "string on_ground;")).unwrap();
    let out = contrail(
        dir.path(),
        &[
            "schema",
            "check",
            "--against",
            old.path().to_str().unwrap(),
            "--level",
            "FULL",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let msg = stdout(&out);
    assert!(
        msg.contains("FlightState.on_ground: reader type string cannot read writer type boolean (TYPE_MISMATCH)"),
        "{msg}"
    );
    assert!(
        msg.contains("FlightState.on_ground: reader type boolean cannot read writer type string (TYPE_MISMATCH)"),
        "{msg}"
    );
}

#[test]
fn lint_reports_file_line_column_and_fails_on_errors() {
    let dir = scratch_project();
    let idl = dir.path().join("schemas/flight.avdl");
    let text = std::fs::read_to_string(&idl).unwrap();
    std::fs::write(
        &idl,
        text.replace(
            "@range({\"min\": -90, \"max\": 90})",
            "@range({\"min\": 90, \"max\": -90})",
        ),
    )
    .unwrap();
    let out = contrail(dir.path(), &["schema", "lint"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = stdout(&out);
    assert!(msg.contains("schemas/flight.avdl:"), "{msg}");
    assert!(
        msg.contains("error[rule]: FlightState.latitude: rule \"range\" is malformed: min 90 is greater than max -90"),
        "{msg}"
    );
}

#[test]
fn broken_idl_is_a_clear_error_with_exit_2() {
    let dir = scratch_project();
    std::fs::write(
        dir.path().join("schemas/flight.avdl"),
        "protocol P { record R { int x } }",
    )
    .unwrap();
    let out = contrail(dir.path(), &["schema", "lint"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flight.avdl: IDL does not compile"), "{err}");
}

/// `--against <registry URL>` with the local stack's registry (the README's
/// test command starts it), on a subject of this test's own.
#[test]
fn check_against_a_live_registry_checks_every_registered_version() {
    let dir = scratch_project();
    let subject = format!("cli-check-{}-value", std::process::id());
    let subjects = std::fs::read_to_string(dir.path().join("registry/subjects.toml"))
        .unwrap()
        .replace("flights.state-value", &subject);
    std::fs::write(dir.path().join("registry/subjects.toml"), subjects).unwrap();
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let url = stack::StackConfig::for_tests(&project)
        .unwrap()
        .env_value("SCHEMA_REGISTRY_URL")
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let avsc = std::fs::read_to_string(dir.path().join("registry/schemas/flights.state-value.avsc")).unwrap();
    let body = serde_json::json!({ "schema": avsc }).to_string();
    let mut resp = agent
        .post(&format!("{url}/subjects/{subject}/versions"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(&body)
        .expect("the local stack's schema registry (run `contrail stack up`)");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );

    let out = contrail(dir.path(), &["schema", "check", "--against", &url]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("compatible (BACKWARD, against 1 earlier version(s))"),
        "{}",
        stdout(&out)
    );

    let idl = dir.path().join("schemas/flight.avdl");
    let text = std::fs::read_to_string(&idl).unwrap();
    std::fs::write(&idl, text.replace("boolean on_ground;", "string on_ground;")).unwrap();
    let out = contrail(dir.path(), &["schema", "check", "--against", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("FlightState.on_ground: reader type string cannot read writer type boolean"),
        "{}",
        stdout(&out)
    );

    let _ = agent.delete(&format!("{url}/subjects/{subject}")).call();
    let _ = agent.delete(&format!("{url}/subjects/{subject}?permanent=true")).call();
}
