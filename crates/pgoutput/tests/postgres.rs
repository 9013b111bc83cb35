//! The decoder against bytes PostgreSQL itself produces: the pgoutput plugin
//! read through `pg_logical_slot_get_binary_changes` on the local stack's
//! cluster, for inserts, updates (unchanged TOAST, changed key, REPLICA
//! IDENTITY FULL), deletes, truncate, a logical decoding message, and the
//! binary option.

use std::path::Path;

use pgoutput::{decode, Datum, Message, OldRow, ReplicaIdentity};

const SLOT: &str = "pgoutput_decoder_test";

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the local stack's PostgreSQL (run `contrail stack up`)");
    tokio::spawn(conn);
    client
}

async fn changes(client: &tokio_postgres::Client, binary: bool) -> Vec<Message> {
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, \
             'proto_version', '1', 'publication_names', 'decoder_pub', 'messages', 'true', 'binary', $2)",
            &[&SLOT, &if binary { "true" } else { "false" }],
        )
        .await
        .unwrap();
    rows.iter().map(|r| decode(r.get::<_, &[u8]>(0)).unwrap()).collect()
}

fn text(s: &str) -> Datum {
    Datum::Text(s.as_bytes().to_vec())
}

#[tokio::test]
async fn decodes_what_postgres_writes() {
    let cfg = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    let admin_url = cfg.env().into_iter().find(|(k, _)| *k == "DATABASE_URL").unwrap().1;
    let admin = connect(&admin_url).await;
    admin
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&SLOT],
        )
        .await
        .unwrap();
    admin
        .batch_execute("DROP DATABASE IF EXISTS pgoutput_test WITH (FORCE)")
        .await
        .unwrap();
    admin.batch_execute("CREATE DATABASE pgoutput_test").await.unwrap();
    let url = admin_url
        .rsplit_once('/')
        .map(|(b, _)| format!("{b}/pgoutput_test"))
        .unwrap();
    let c = connect(&url).await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(10,2), big text, flag boolean);
         CREATE TABLE f (id int PRIMARY KEY, v text);
         ALTER TABLE f REPLICA IDENTITY FULL;
         CREATE PUBLICATION decoder_pub FOR TABLE t, f;",
    )
    .await
    .unwrap();
    c.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&SLOT])
        .await
        .unwrap();
    // One statement per transaction. The large value is md5 hex: it barely
    // compresses, so PostgreSQL stores it out of line (TOAST).
    for statement in [
        "INSERT INTO t SELECT 1, 'a', 12.34, string_agg(md5(i::text), ''), true FROM generate_series(1, 3000) i",
        "UPDATE t SET name = 'b' WHERE id = 1",
        "UPDATE t SET id = 2 WHERE id = 1",
        "DELETE FROM t WHERE id = 2",
        "INSERT INTO f VALUES (1, 'x')",
        "UPDATE f SET v = 'y'",
        "DELETE FROM f",
        "TRUNCATE f",
        "SELECT pg_logical_emit_message(true, 'contrail', 'hello')",
    ] {
        c.batch_execute(statement).await.unwrap();
    }

    let msgs = changes(&c, false).await;
    let begins = msgs.iter().filter(|m| matches!(m, Message::Begin { .. })).count();
    let commits: Vec<&Message> = msgs.iter().filter(|m| matches!(m, Message::Commit { .. })).collect();
    assert_eq!((begins, commits.len()), (9, 9), "one transaction per statement");
    let relation = |name: &str| {
        msgs.iter()
            .find_map(|m| match m {
                Message::Relation(r) if r.name == name => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    };
    let (t, f) = (relation("t"), relation("f"));
    assert_eq!(
        (t.namespace.as_str(), t.replica_identity),
        ("public", ReplicaIdentity::Default)
    );
    assert_eq!(f.replica_identity, ReplicaIdentity::Full);
    let cols: Vec<(&str, bool, u32)> = t.columns.iter().map(|c| (c.name.as_str(), c.key, c.type_oid)).collect();
    assert_eq!(
        cols,
        vec![
            ("id", true, 23),
            ("name", false, 25),
            ("amount", false, 1700),
            ("big", false, 25),
            ("flag", false, 16)
        ]
    );

    let data: Vec<&Message> = msgs
        .iter()
        .filter(|m| {
            !matches!(
                m,
                Message::Begin { .. } | Message::Commit { .. } | Message::Relation(_) | Message::Type { .. }
            )
        })
        .collect();
    assert_eq!(data.len(), 9);
    let Message::Insert { relation, new } = data[0] else {
        panic!("{:?}", data[0])
    };
    assert_eq!(*relation, t.id);
    assert_eq!(&new[..3], &[text("1"), text("a"), text("12.34")]);
    assert!(matches!(&new[3], Datum::Text(b) if b.len() == 96_000));
    assert_eq!(new[4], text("t"));
    // An update that leaves the TOASTed value alone does not carry it.
    assert_eq!(
        data[1],
        &Message::Update {
            relation: t.id,
            old: None,
            new: vec![text("1"), text("b"), text("12.34"), Datum::UnchangedToast, text("t")],
        }
    );
    // Changing the key sends the old key.
    let Message::Update {
        old: Some(OldRow::Key(old)),
        ..
    } = data[2]
    else {
        panic!("{:?}", data[2])
    };
    assert_eq!(
        old,
        &vec![text("1"), Datum::Null, Datum::Null, Datum::Null, Datum::Null]
    );
    assert_eq!(
        data[3],
        &Message::Delete {
            relation: t.id,
            old: OldRow::Key(vec![text("2"), Datum::Null, Datum::Null, Datum::Null, Datum::Null]),
        }
    );
    // REPLICA IDENTITY FULL: whole old rows.
    assert_eq!(
        data[4],
        &Message::Insert {
            relation: f.id,
            new: vec![text("1"), text("x")]
        }
    );
    assert_eq!(
        data[5],
        &Message::Update {
            relation: f.id,
            old: Some(OldRow::Full(vec![text("1"), text("x")])),
            new: vec![text("1"), text("y")]
        }
    );
    assert_eq!(
        data[6],
        &Message::Delete {
            relation: f.id,
            old: OldRow::Full(vec![text("1"), text("y")])
        }
    );
    assert_eq!(
        data[7],
        &Message::Truncate {
            cascade: false,
            restart_identity: false,
            relations: vec![f.id]
        }
    );
    let Message::Message {
        transactional,
        prefix,
        content,
        ..
    } = data[8]
    else {
        panic!()
    };
    assert_eq!(
        (*transactional, prefix.as_str(), content.as_slice()),
        (true, "contrail", b"hello".as_slice())
    );
    // Begin and commit agree on the LSN and the time.
    let (
        Message::Begin {
            final_lsn, commit_time, ..
        },
        Message::Commit {
            commit_lsn,
            commit_time: t2,
            ..
        },
    ) = (&msgs[0], commits[0])
    else {
        panic!()
    };
    assert_eq!((final_lsn, commit_time), (commit_lsn, t2));

    // With `binary 'true'`, values come in their send form: int4 as 4 big-endian bytes.
    c.batch_execute("INSERT INTO t (id, name, flag) VALUES (7, 'z', false)")
        .await
        .unwrap();
    let msgs = changes(&c, true).await;
    let insert = msgs.iter().find_map(|m| match m {
        Message::Insert { new, .. } => Some(new.clone()),
        _ => None,
    });
    let new = insert.unwrap();
    assert_eq!(new[0], Datum::Binary(7i32.to_be_bytes().to_vec()));
    assert_eq!(new[1], Datum::Binary(b"z".to_vec()));
    assert_eq!(new[4], Datum::Binary(vec![0]));

    c.execute("SELECT pg_drop_replication_slot($1)", &[&SLOT])
        .await
        .unwrap();
}
