use proptest::prelude::*;

use super::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,10}"
}

fn datum() -> impl Strategy<Value = Datum> {
    prop_oneof![
        Just(Datum::Null),
        Just(Datum::UnchangedToast),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Datum::Text),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Datum::Binary),
    ]
}

fn row() -> impl Strategy<Value = Vec<Datum>> {
    proptest::collection::vec(datum(), 0..6)
}

fn old_row() -> impl Strategy<Value = OldRow> {
    prop_oneof![row().prop_map(OldRow::Key), row().prop_map(OldRow::Full)]
}

fn message() -> impl Strategy<Value = Message> {
    let lsn = any::<u64>().prop_map(Lsn);
    let identity = prop_oneof![
        Just(ReplicaIdentity::Default),
        Just(ReplicaIdentity::Nothing),
        Just(ReplicaIdentity::Full),
        Just(ReplicaIdentity::Index)
    ];
    let column =
        (any::<bool>(), name(), any::<u32>(), any::<i32>()).prop_map(|(key, name, type_oid, type_modifier)| Column {
            key,
            name,
            type_oid,
            type_modifier,
        });
    prop_oneof![
        (lsn.clone(), any::<i64>(), any::<u32>()).prop_map(|(final_lsn, commit_time, xid)| Message::Begin {
            final_lsn,
            commit_time,
            xid
        }),
        (lsn.clone(), lsn.clone(), any::<i64>()).prop_map(|(commit_lsn, end_lsn, commit_time)| Message::Commit {
            flags: 0,
            commit_lsn,
            end_lsn,
            commit_time
        }),
        (lsn.clone(), name()).prop_map(|(commit_lsn, name)| Message::Origin { commit_lsn, name }),
        (
            any::<u32>(),
            name(),
            name(),
            identity,
            proptest::collection::vec(column, 0..5)
        )
            .prop_map(
                |(id, namespace, name, replica_identity, columns)| Message::Relation(Relation {
                    id,
                    namespace,
                    name,
                    replica_identity,
                    columns
                })
            ),
        (any::<u32>(), name(), name()).prop_map(|(oid, namespace, name)| Message::Type { oid, namespace, name }),
        (any::<u32>(), row()).prop_map(|(relation, new)| Message::Insert { relation, new }),
        (any::<u32>(), proptest::option::of(old_row()), row()).prop_map(|(relation, old, new)| Message::Update {
            relation,
            old,
            new
        }),
        (any::<u32>(), old_row()).prop_map(|(relation, old)| Message::Delete { relation, old }),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(any::<u32>(), 0..4)
        )
            .prop_map(|(cascade, restart_identity, relations)| Message::Truncate {
                cascade,
                restart_identity,
                relations
            }),
        (
            any::<bool>(),
            lsn,
            name(),
            proptest::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(transactional, lsn, prefix, content)| Message::Message {
                transactional,
                lsn,
                prefix,
                content
            }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(m in message()) {
        prop_assert_eq!(decode(&encode(&m)).unwrap(), m);
    }

    #[test]
    fn every_truncation_is_an_error(m in message(), cut in 0usize..64) {
        let bytes = encode(&m);
        let cut = cut % bytes.len();
        prop_assert!(decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
        let _ = decode(&bytes);
    }
}

#[test]
fn malformed_input_names_the_problem_and_the_offset() {
    assert_eq!(decode(&[]).unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(decode(b"Z").unwrap_err().kind, ErrorKind::UnknownType('Z'));
    assert_eq!(decode(b"S\0\0\0\x01").unwrap_err().kind, ErrorKind::Streaming('S'));
    // An insert whose row marker is not 'N'.
    let e = decode(b"I\0\0\0\x01X\0\0").unwrap_err();
    assert_eq!(
        (e.offset, e.kind),
        (
            5,
            ErrorKind::Unexpected {
                expected: "N (new row)",
                found: 'X'
            }
        )
    );
    // A text value claiming 2^31-1 bytes.
    let e = decode(b"I\0\0\0\x01N\0\x01t\x7f\xff\xff\xff").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated { .. }), "{e}");
    // A negative column count.
    assert_eq!(
        decode(b"I\0\0\0\x01N\xff\xff").unwrap_err().kind,
        ErrorKind::Negative("column count")
    );
    // A relation name without its terminating NUL.
    assert_eq!(
        decode(b"R\0\0\0\x01public").unwrap_err().kind,
        ErrorKind::UnterminatedString
    );
    let mut begin = encode(&Message::Begin {
        final_lsn: Lsn(1),
        commit_time: 2,
        xid: 3,
    });
    begin.push(0);
    assert_eq!(decode(&begin).unwrap_err().kind, ErrorKind::Trailing(1));
}

#[test]
fn lsns_print_as_postgres_does_and_timestamps_convert() {
    assert_eq!(Lsn(0x1_6B37_4D48).to_string(), "1/6B374D48");
    assert_eq!(Lsn::parse("1/6B374D48"), Some(Lsn(0x1_6B37_4D48)));
    assert_eq!(Lsn::parse(&Lsn(u64::MAX).to_string()), Some(Lsn(u64::MAX)));
    for bad in ["", "1", "1/", "/1", "x/1", "1/2/3", "100000000/0"] {
        assert_eq!(Lsn::parse(bad), None, "{bad:?}");
    }
    // 2024-11-24T08:00:00Z is 785,750,400 s after 2000-01-01.
    assert_eq!(pg_micros_to_unix_millis(785_750_400_000_000), 1_732_435_200_000);
}
