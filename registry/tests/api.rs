//! The registry's REST API against a real PostgreSQL: Confluent's semantics
//! for ids, versions, compatibility, config, mode, deletion, references and
//! errors. Each test has a database of its own.

mod common;

use common::*;
use serde_json::json;

#[test]
fn ids_are_global_and_registration_is_idempotent() {
    let r = registry("ids");
    let u = &r.url;
    let v1 = record("A", r#"{"name":"x","type":"int"}"#);
    assert_eq!(register(u, "a-value", &v1), (200, json!({"id": 1})));
    // Same schema again: same id, no new version.
    assert_eq!(register(u, "a-value", &v1), (200, json!({"id": 1})));
    // Whitespace and key order do not make a new schema.
    let reordered =
        r#"{ "fields": [ {"type": "int", "name": "x"} ], "namespace": "t", "name": "A", "type": "record" }"#;
    assert_eq!(register(u, "a-value", reordered), (200, json!({"id": 1})));
    assert_eq!(get(&format!("{u}/subjects/a-value/versions")), (200, json!([1])));
    // The same schema under another subject shares the id.
    assert_eq!(register(u, "b-value", &v1), (200, json!({"id": 1})));
    // A rule change is a new schema (rules travel in the schema).
    let ruled = record("A", r#"{"name":"x","type":"int","range":{"min":0}}"#);
    assert_eq!(register(u, "a-value", &ruled), (200, json!({"id": 2})));
    assert_eq!(get(&format!("{u}/subjects/a-value/versions")), (200, json!([1, 2])));

    let (s, latest) = get(&format!("{u}/subjects/a-value/versions/latest"));
    assert_eq!(s, 200);
    assert_eq!(
        (
            latest["subject"].clone(),
            latest["version"].clone(),
            latest["id"].clone()
        ),
        (json!("a-value"), json!(2), json!(2))
    );
    assert!(latest["schema"].as_str().unwrap().contains("\"range\""));
    assert!(
        latest.get("schemaType").is_none(),
        "AVRO is implied, as in Confluent's answers"
    );
    assert_eq!(
        get(&format!("{u}/schemas/ids/1")).1["schema"],
        json!(serde_json::from_str::<serde_json::Value>(&v1).unwrap().to_string())
    );
    let (s, raw) = get(&format!("{u}/subjects/a-value/versions/1/schema"));
    assert_eq!(s, 200);
    assert_eq!(raw["name"], "A", "the raw schema is the schema JSON itself");
    assert_eq!(
        get(&format!("{u}/schemas/ids/1/subjects")),
        (200, json!(["a-value", "b-value"]))
    );
    assert_eq!(
        get(&format!("{u}/schemas/ids/1/versions")),
        (
            200,
            json!([{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}])
        )
    );
    assert_eq!(get(&format!("{u}/subjects")), (200, json!(["a-value", "b-value"])));
    assert_eq!(get(&format!("{u}/subjects?subjectPrefix=a")), (200, json!(["a-value"])));
    assert_eq!(get(&format!("{u}/schemas/types")), (200, json!(["AVRO"])));

    // Looking a schema up in a subject.
    let (s, found) = post(&format!("{u}/subjects/a-value"), json!({"schema": v1}));
    assert_eq!(
        (s, found["version"].clone(), found["id"].clone()),
        (200, json!(1), json!(1))
    );
    let other = record("A", r#"{"name":"y","type":"int"}"#);
    assert_eq!(
        post(&format!("{u}/subjects/a-value"), json!({"schema": other})).1["error_code"],
        40403
    );
    assert_eq!(
        post(&format!("{u}/subjects/nope"), json!({"schema": other})).1["error_code"],
        40401
    );
}

#[test]
fn incompatible_schemas_are_refused_with_the_field_and_rule() {
    let r = registry("compat");
    let u = &r.url;
    register(u, "s", &record("R", r#"{"name":"a","type":"int"}"#));
    let breaking = record("R", r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
    let (s, err) = register(u, "s", &breaking);
    assert_eq!(s, 409);
    assert_eq!(err["error_code"], 409);
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("R.b") && msg.contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{msg}"
    );

    let check = |path: &str| {
        post(
            &format!("{u}/compatibility/subjects/s/versions{path}"),
            json!({"schema": breaking}),
        )
    };
    assert_eq!(check("/latest"), (200, json!({"is_compatible": false})));
    let (_, verbose) = check("/1?verbose=true");
    assert_eq!(verbose["is_compatible"], false);
    assert!(verbose["messages"][0].as_str().unwrap().contains("R.b"), "{verbose}");
    assert_eq!(check("?verbose=true").1["is_compatible"], false);
    assert_eq!(check("/7").1["error_code"], 40402);
    assert_eq!(check("/x").1["error_code"], 42202);

    // Adding it with a default is fine; under NONE anything goes.
    let ok = record(
        "R",
        r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":""}"#,
    );
    assert_eq!(register(u, "s", &ok).0, 200);
    assert_eq!(
        put(&format!("{u}/config/s"), json!({"compatibility": "NONE"})),
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        register(u, "s", &record("R", r#"{"name":"z","type":"boolean"}"#)).0,
        200
    );

    // Transitive levels check every earlier version.
    put(&format!("{u}/config/s"), json!({"compatibility": "FORWARD_TRANSITIVE"}));
    let (s, err) = register(u, "s", &record("R", r#"{"name":"q","type":"long","default":0}"#));
    assert_eq!(s, 409, "{err}");
}

#[test]
fn config_levels_global_and_per_subject() {
    let r = registry("config");
    let u = &r.url;
    assert_eq!(
        get(&format!("{u}/config")),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    for level in [
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] {
        assert_eq!(
            put(&format!("{u}/config"), json!({"compatibility": level})),
            (200, json!({"compatibility": level}))
        );
        assert_eq!(get(&format!("{u}/config")).1["compatibilityLevel"], level);
    }
    assert_eq!(
        put(&format!("{u}/config"), json!({"compatibility": "SIDEWAYS"})).1["error_code"],
        42203
    );
    assert_eq!(get(&format!("{u}/config/s")).1["error_code"], 40408);
    assert_eq!(
        get(&format!("{u}/config/s?defaultToGlobal=true")).1["compatibilityLevel"],
        "FULL_TRANSITIVE"
    );
    put(&format!("{u}/config/s"), json!({"compatibility": "forward"}));
    assert_eq!(
        get(&format!("{u}/config/s")),
        (200, json!({"compatibilityLevel": "FORWARD"}))
    );
    assert_eq!(
        delete(&format!("{u}/config/s")),
        (200, json!({"compatibilityLevel": "FORWARD"}))
    );
    assert_eq!(
        delete(&format!("{u}/config")),
        (200, json!({"compatibilityLevel": "FULL_TRANSITIVE"}))
    );
    assert_eq!(get(&format!("{u}/config")).1["compatibilityLevel"], "BACKWARD");
}

#[test]
fn modes_readonly_and_import() {
    let r = registry("mode");
    let u = &r.url;
    assert_eq!(get(&format!("{u}/mode")), (200, json!({"mode": "READWRITE"})));
    assert_eq!(
        put(&format!("{u}/mode/locked"), json!({"mode": "READONLY"})),
        (200, json!({"mode": "READONLY"}))
    );
    let (s, err) = register(u, "locked", &record("L", r#"{"name":"a","type":"int"}"#));
    assert_eq!((s, err["error_code"].clone()), (422, json!(42205)));
    assert_eq!(
        put(&format!("{u}/mode"), json!({"mode": "WRONG"})).1["error_code"],
        42204
    );

    // IMPORT keeps the ids and versions of a migration.
    put(&format!("{u}/mode/migrated"), json!({"mode": "IMPORT"}));
    let body = json!({"schema": record("M", r#"{"name":"a","type":"int"}"#), "id": 100, "version": 3});
    assert_eq!(
        post(&format!("{u}/subjects/migrated/versions"), body),
        (200, json!({"id": 100}))
    );
    assert_eq!(get(&format!("{u}/subjects/migrated/versions/3")).1["id"], 100);
    // An id given outside IMPORT mode is refused.
    let body = json!({"schema": record("N", r#"{"name":"a","type":"int"}"#), "id": 7});
    assert_eq!(
        post(&format!("{u}/subjects/other/versions"), body).1["error_code"],
        42205
    );
    // New ids never collide with imported ones.
    assert_eq!(
        register(u, "other", &record("N", r#"{"name":"a","type":"int"}"#)),
        (200, json!({"id": 101}))
    );
    assert_eq!(delete(&format!("{u}/mode/migrated")), (200, json!({"mode": "IMPORT"})));
    assert_eq!(get(&format!("{u}/mode/migrated")).1["error_code"], 40409);
}

#[test]
fn soft_then_permanent_deletion() {
    let r = registry("delete");
    let u = &r.url;
    register(u, "d", &record("D", r#"{"name":"a","type":"int"}"#));
    register(
        u,
        "d",
        &record(
            "D",
            r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#,
        ),
    );
    // Permanent first is refused.
    assert_eq!(
        delete(&format!("{u}/subjects/d/versions/1?permanent=true")).1["error_code"],
        40407
    );
    assert_eq!(delete(&format!("{u}/subjects/d/versions/1")), (200, json!(1)));
    assert_eq!(delete(&format!("{u}/subjects/d/versions/1")).1["error_code"], 40406);
    assert_eq!(get(&format!("{u}/subjects/d/versions")), (200, json!([2])));
    assert_eq!(
        get(&format!("{u}/subjects/d/versions?deleted=true")),
        (200, json!([1, 2]))
    );
    assert_eq!(get(&format!("{u}/subjects/d/versions/1")).1["error_code"], 40402);
    assert_eq!(get(&format!("{u}/subjects/d/versions/1?deleted=true")).1["version"], 1);
    assert_eq!(
        delete(&format!("{u}/subjects/d/versions/1?permanent=true")),
        (200, json!(1))
    );
    assert_eq!(get(&format!("{u}/subjects/d/versions?deleted=true")), (200, json!([2])));

    assert_eq!(delete(&format!("{u}/subjects/d?permanent=true")).1["error_code"], 40405);
    assert_eq!(delete(&format!("{u}/subjects/d")), (200, json!([2])));
    assert_eq!(delete(&format!("{u}/subjects/d")).1["error_code"], 40404);
    assert_eq!(get(&format!("{u}/subjects")), (200, json!([])));
    assert_eq!(get(&format!("{u}/subjects?deleted=true")), (200, json!(["d"])));
    assert_eq!(delete(&format!("{u}/subjects/d?permanent=true")), (200, json!([2])));
    assert_eq!(get(&format!("{u}/subjects?deleted=true")), (200, json!([])));
    // The schema id stays resolvable: data written with it can still be read.
    assert_eq!(get(&format!("{u}/schemas/ids/2")).0, 200);
    // Re-registering after deletion starts a new version history entry.
    assert_eq!(
        register(u, "d", &record("D", r#"{"name":"a","type":"int"}"#)),
        (200, json!({"id": 1}))
    );
    assert_eq!(get(&format!("{u}/subjects/d/versions")), (200, json!([1])));
}

#[test]
fn references_metadata_and_rule_sets() {
    let r = registry("refs");
    let u = &r.url;
    let address = r#"{"type":"record","name":"Address","namespace":"t","fields":[{"name":"city","type":"string"}]}"#;
    assert_eq!(register(u, "address", address), (200, json!({"id": 1})));
    let person = r#"{"type":"record","name":"Person","namespace":"t","fields":[{"name":"home","type":"Address"}]}"#;
    // Without the reference the type is unknown.
    assert_eq!(register(u, "person", person).1["error_code"], 42201);
    let refs = json!([{"name": "t.Address", "subject": "address", "version": 1}]);
    let rule_set = json!({"domainRules": [{"name": "city_not_empty", "kind": "CONDITION", "type": "CEL", "mode": "WRITE", "expr": "size(message.home.city) > 0"}]});
    let metadata = json!({"properties": {"owner": "flights-team"}});
    let body = json!({"schema": person, "references": refs, "ruleSet": rule_set, "metadata": metadata});
    assert_eq!(
        post(&format!("{u}/subjects/person/versions"), body),
        (200, json!({"id": 2}))
    );
    let (_, v) = get(&format!("{u}/subjects/person/versions/1"));
    assert_eq!(v["references"], refs);
    assert_eq!(v["ruleSet"], rule_set);
    assert_eq!(v["metadata"], metadata);
    let (_, by_id) = get(&format!("{u}/schemas/ids/2"));
    assert_eq!(
        (by_id["references"].clone(), by_id["ruleSet"].clone()),
        (refs.clone(), rule_set.clone())
    );
    assert_eq!(
        get(&format!("{u}/subjects/address/versions/1/referencedby")),
        (200, json!([2]))
    );
    // A referenced schema cannot be deleted.
    assert_eq!(
        delete(&format!("{u}/subjects/address/versions/1")).1["error_code"],
        42206
    );
    assert_eq!(delete(&format!("{u}/subjects/address")).1["error_code"], 42206);
    // A reference to a missing version is an invalid schema.
    let bad = json!({"schema": person, "references": [{"name": "t.Address", "subject": "address", "version": 9}]});
    assert_eq!(
        post(&format!("{u}/subjects/person2/versions"), bad).1["error_code"],
        42201
    );
}

#[test]
fn bad_input_gets_confluent_error_codes_never_a_500() {
    let r = registry("errors");
    let u = &r.url;
    let cases: Vec<(u16, serde_json::Value)> = vec![
        get(&format!("{u}/schemas/ids/999")),
        get(&format!("{u}/schemas/ids/abc")),
        get(&format!("{u}/subjects/none/versions")),
        get(&format!("{u}/subjects/none/versions/latest")),
        get(&format!("{u}/subjects/none/versions/0")),
        get(&format!("{u}/subjects/none/versions/2147483648")),
        register(u, "s", "{\"type\": \"recor"),
        register(
            u,
            "s",
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":"Unknown"}]}"#,
        ),
        register(u, "s", ""),
        post(
            &format!("{u}/subjects/s/versions"),
            json!({"schema": "\"int\"", "schemaType": "PROTOBUF"}),
        ),
        post(&format!("{u}/subjects/s/versions"), json!({"schema": 5})),
        call("POST", &format!("{u}/subjects/s/versions"), None, None),
        get(&format!("{u}/no/such/path")),
        call("PUT", &format!("{u}/subjects"), Some(&json!({})), None),
    ];
    let codes: Vec<(u16, serde_json::Value)> = cases.into_iter().map(|(s, b)| (s, b["error_code"].clone())).collect();
    assert_eq!(
        codes,
        vec![
            (404, json!(40403)),
            (404, json!(40403)),
            (404, json!(40401)),
            (404, json!(40401)),
            (422, json!(42202)),
            (422, json!(42202)),
            (422, json!(42201)),
            (422, json!(42201)),
            (422, json!(42201)),
            (422, json!(42201)),
            (422, json!(422)),
            (400, json!(400)),
            (404, json!(404)),
            (405, json!(405)),
        ]
    );
    // A body over the limit is refused from its Content-Length, before it is
    // read (so the client learns of it without sending 2 MiB).
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(u.trim_start_matches("http://")).unwrap();
    write!(
        conn,
        "POST /subjects/s/versions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    )
    .unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
}

#[test]
fn basic_auth_when_configured() {
    let mut cfg = config(&fresh_database("auth"));
    cfg.auth = Some(registry::Users::writer("ops:hunter2").unwrap());
    let r = start(cfg);
    let u = &r.url;
    let (s, body) = call("GET", &format!("{u}/subjects"), None, None);
    assert_eq!((s, body["error_code"].clone()), (401, json!(401)));
    let good = format!("Basic {}", base64_encode("ops:hunter2"));
    let bad = format!("Basic {}", base64_encode("ops:hunter3"));
    assert_eq!(
        call("GET", &format!("{u}/subjects"), None, Some(&good)),
        (200, json!([]))
    );
    assert_eq!(call("GET", &format!("{u}/subjects"), None, Some(&bad)).0, 401);
    // Health stays open for probes; metrics need credentials unless public.
    assert_eq!(get(&format!("{u}/healthz")), (200, json!({"status": "ok"})));
    assert_eq!(call("GET", &format!("{u}/metrics"), None, None).0, 401);
    assert_eq!(call("GET", &format!("{u}/metrics"), None, Some(&good)).0, 200);
}

#[test]
fn a_reader_reads_looks_up_and_checks_but_may_not_write() {
    let mut cfg = config(&fresh_database("roles"));
    cfg.auth = Some(registry::Users::parse("owner: o-pw, write\nreader: r-pw, read\n").unwrap());
    cfg.public_metrics = true;
    let r = start(cfg);
    let u = &r.url;
    let owner = format!("Basic {}", base64_encode("owner:o-pw"));
    let reader = format!("Basic {}", base64_encode("reader:r-pw"));
    let schema = json!({"schema": "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}"});
    let (s, _) = call(
        "POST",
        &format!("{u}/subjects/s-value/versions"),
        Some(&schema),
        Some(&owner),
    );
    assert_eq!(s, 200);
    assert_eq!(
        call("GET", &format!("{u}/subjects"), None, Some(&reader)),
        (200, json!(["s-value"]))
    );
    assert_eq!(
        call("POST", &format!("{u}/subjects/s-value"), Some(&schema), Some(&reader)).0,
        200
    );
    let check = format!("{u}/compatibility/subjects/s-value/versions/latest");
    assert_eq!(call("POST", &check, Some(&schema), Some(&reader)).0, 200);
    for (method, path, body) in [
        ("POST", "/subjects/s-value/versions", Some(&schema)),
        ("PUT", "/config/s-value", Some(&json!({"compatibility": "NONE"}))),
        ("PUT", "/mode/s-value", Some(&json!({"mode": "IMPORT"}))),
        ("DELETE", "/subjects/s-value", None),
        ("DELETE", "/subjects/s-value?permanent=true", None),
    ] {
        let (s, body) = call(method, &format!("{u}{path}"), body, Some(&reader));
        assert_eq!(
            (s, body["error_code"].clone()),
            (403, json!(40301)),
            "{method} {path}: {body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("User reader (role read)") && message.contains("needs the write role"),
            "{message}"
        );
    }
    // Nothing the reader tried changed anything.
    assert_eq!(
        call("GET", &format!("{u}/subjects"), None, Some(&owner)),
        (200, json!(["s-value"]))
    );
    assert_eq!(
        call("GET", &format!("{u}/metrics"), None, None).0,
        200,
        "public_metrics"
    );
}

#[test]
fn an_unknown_method_is_refused_and_labels_no_metric() {
    let r = registry("methods");
    let u = &r.url;
    use std::io::{Read, Write};
    let addr = u.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(b"BREW /subjects HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 405");
    assert_eq!(get(&format!("{u}/subjects")).0, 200);
    let (_, text) = call("GET", &format!("{u}/metrics"), None, None);
    let text = text.as_str().unwrap_or_default().to_string();
    assert!(text.contains("contrail_registry_http_requests"), "{text}");
    assert!(!text.contains("BREW"), "the method reached a label:\n{text}");
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn health_and_metrics() {
    let r = registry("metrics");
    let u = &r.url;
    register(u, "m", &record("M", r#"{"name":"a","type":"int"}"#));
    register(u, "m", &record("M", r#"{"name":"a","type":"string"}"#));
    assert_eq!(get(&format!("{u}/healthz")), (200, json!({"status": "ok"})));
    let (s, text) = get(&format!("{u}/metrics"));
    assert_eq!(s, 200);
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains(r#"contrail_registry_registrations_total{outcome="new_version"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"contrail_registry_registrations_total{outcome="incompatible"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="/subjects/{subject}/versions""#), "{text}");
}

#[test]
fn concurrent_registrations_from_two_instances_never_duplicate_ids_or_versions() {
    let db = fresh_database("concurrency");
    let a = start(config(&db));
    let b = start(config(&db));
    put(&format!("{}/config", a.url), json!({"compatibility": "NONE"}));
    let urls = [a.url.clone(), b.url.clone()];
    // 8 clients; each registers 10 schemas to one shared subject (5 distinct
    // schemas, each sent by several clients) and 10 to a subject of its own.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = urls[t % 2].clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..10 {
                    let shared = record("S", &format!(r#"{{"name":"f{}","type":"int"}}"#, i % 5));
                    let (s, body) = register(&url, "shared", &shared);
                    assert_eq!(s, 200, "{body}");
                    ids.push((format!("f{}", i % 5), body["id"].as_i64().unwrap()));
                    let own = record("O", &format!(r#"{{"name":"t{t}_{i}","type":"int"}}"#));
                    let (s, body) = register(&url, &format!("own-{t}"), &own);
                    assert_eq!(s, 200, "{body}");
                    ids.push((format!("t{t}_{i}"), body["id"].as_i64().unwrap()));
                }
                ids
            })
        })
        .collect();
    let mut by_schema = std::collections::HashMap::new();
    for t in threads {
        for (schema, id) in t.join().unwrap() {
            let first = *by_schema.entry(schema.clone()).or_insert(id);
            assert_eq!(first, id, "schema {schema} got two ids");
        }
    }
    // 5 shared + 80 own schemas, 85 distinct ids.
    let mut ids: Vec<i64> = by_schema.values().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 85);
    // The shared subject has exactly one version per distinct schema, numbered 1..=5.
    assert_eq!(
        get(&format!("{}/subjects/shared/versions", a.url)),
        (200, json!([1, 2, 3, 4, 5]))
    );
    for t in 0..8 {
        assert_eq!(
            get(&format!("{}/subjects/own-{t}/versions", b.url)).1,
            json!((1..=10).collect::<Vec<_>>())
        );
    }
}

/// Schemas built to exhaust a parser or a checker: too deep to parse is a
/// 422, too costly to compare a 409, and the registry answers each at once
/// and goes on serving.
#[test]
fn hostile_schemas_get_422_or_409_and_the_registry_keeps_serving() {
    let r = registry("hostile");
    let u = &r.url;
    // Deep anonymous nesting, within and beyond JSON's own limit.
    let nest = |n: usize| format!("{}\"int\"{}", r#"{"type":"array","items":"#.repeat(n), "}".repeat(n));
    for depth in [100, 20_000] {
        let (s, err) = register(u, "deep-value", &nest(depth));
        assert_eq!(
            (s, err["error_code"].clone()),
            (422, json!(42201)),
            "depth {depth}: {err}"
        );
    }
    // Deep through references: each record refers to the one defined before it.
    let chain: Vec<String> = (0..3_000)
        .map(|i| {
            let inner = if i == 0 {
                "\"int\"".to_string()
            } else {
                format!("\"C{}\"", i - 1)
            };
            format!(
                r#"{{"name":"f{i}","type":{{"type":"record","name":"C{i}","fields":[{{"name":"x","type":{inner}}}]}}}}"#
            )
        })
        .collect();
    let (s, err) = register(u, "chain-value", &record("Top", &chain.join(",")));
    assert_eq!((s, err["error_code"].clone()), (422, json!(42201)), "{err}");
    assert!(err["message"].as_str().unwrap().contains("levels deep"), "{err}");

    // Shared types: Tk has two fields of type T(k-1), 2^60 paths to the leaf.
    let shared = |leaf: &str| {
        let fields: Vec<String> = (1..=60)
            .map(|k| {
                let inner = if k == 1 { format!("\"{leaf}\"") } else { format!("\"T{}\"", k - 1) };
                format!(
                    r#"{{"name":"t{k}","type":{{"type":"record","name":"T{k}","fields":[{{"name":"a","type":{inner}}},{{"name":"b","type":{inner}}}]}}}}"#
                )
            })
            .collect();
        record("Top", &fields.join(","))
    };
    assert_eq!(register(u, "shared-value", &shared("int")).0, 200);
    let (s, err) = register(u, "shared-value", &shared("string"));
    assert_eq!((s, err["error_code"].clone()), (409, json!(409)), "{err}");

    // Wide: ten thousand fields, then the same with one field's type changed.
    let wide = |last: &str| {
        let mut fields: Vec<String> = (0..9_999)
            .map(|i| format!(r#"{{"name":"f{i}","type":"int"}}"#))
            .collect();
        fields.push(format!(r#"{{"name":"last","type":"{last}"}}"#));
        record("Wide", &fields.join(","))
    };
    assert_eq!(register(u, "wide-value", &wide("int")).0, 200);
    let (s, err) = register(u, "wide-value", &wide("string"));
    assert_eq!(s, 409, "{err}");
    assert!(err["message"].as_str().unwrap().contains("Wide.last"), "{err}");

    assert_eq!(get(&format!("{u}/subjects")).0, 200);
}
