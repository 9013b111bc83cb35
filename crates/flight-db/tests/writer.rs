//! The writer against the real PostgreSQL of the local stack: a simulator
//! stream with inserts, updates, deletes and bad rows, written in batches,
//! leaves a table equal, column by column, to the changes applied in memory.

use std::collections::HashMap;
use std::path::Path;

use flight_db::{migrate, FlightWriter};
use flight_types::{AircraftCategory, FlightState, PositionSource};
use simulator::{Op, SimConfig, Simulator};

async fn fresh_database(name: &str) -> tokio_postgres::Client {
    let cfg = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    let admin = cfg.env().into_iter().find(|(k, _)| *k == "DATABASE_URL").unwrap().1;
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("the local stack's PostgreSQL (run `contrail stack up`)");
    tokio::spawn(conn);
    let db = format!("flightdb_test_{name}");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let url = admin.rsplit_once('/').map(|(base, _)| format!("{base}/{db}")).unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

const SELECT: &str = "SELECT icao24, callsign, origin_country, \
    (extract(epoch FROM time_position) * 1000)::int8, (extract(epoch FROM last_contact) * 1000)::int8, \
    longitude, latitude, baro_altitude, on_ground, velocity, true_track, vertical_rate, sensors, geo_altitude, \
    squawk, spi, position_source, category FROM flight_state";

fn row_to_state(r: &tokio_postgres::Row) -> FlightState {
    FlightState {
        icao24: r.get(0),
        callsign: r.get(1),
        origin_country: r.get(2),
        time_position: r.get(3),
        last_contact: r.get(4),
        longitude: r.get(5),
        latitude: r.get(6),
        baro_altitude: r.get(7),
        on_ground: r.get(8),
        velocity: r.get(9),
        true_track: r.get(10),
        vertical_rate: r.get(11),
        sensors: r.get(12),
        geo_altitude: r.get(13),
        squawk: r.get(14),
        spi: r.get(15),
        position_source: PositionSource::from_symbol(r.get(16)).unwrap(),
        category: AircraftCategory::from_symbol(r.get(17)).unwrap(),
    }
}

#[tokio::test]
async fn a_simulated_stream_leaves_the_table_equal_to_the_changes() {
    let mut client = fresh_database("stream").await;
    migrate(&mut client).await.unwrap();
    migrate(&mut client).await.unwrap(); // idempotent
    let identity: String = client
        .query_one(
            "SELECT relreplident::text FROM pg_class WHERE relname = 'flight_state'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(identity, "f", "updates and deletes must carry the full old row");

    let mut sim = Simulator::new(SimConfig {
        fleet: 300,
        bad_percent: 5.0,
        ..SimConfig::default()
    })
    .unwrap();
    let mut expected: HashMap<String, FlightState> = HashMap::new();
    let mut writer = FlightWriter::new(client);
    let mut ops = HashMap::new();
    for batch in 0..40 {
        let changes: Vec<_> = (0..500)
            .map(|i| sim.next_change(1_764_000_000_000 + batch * 1000 + i))
            .collect();
        for c in &changes {
            *ops.entry(c.op).or_insert(0) += 1;
            match c.op {
                Op::Delete => {
                    expected.remove(&c.state.icao24);
                }
                _ => {
                    expected.insert(c.state.icao24.clone(), c.state.clone());
                }
            }
        }
        let written = writer.write(&changes).await.unwrap();
        assert_eq!(written.upserts + written.deletes, 500);
    }
    assert!(
        ops[&Op::Delete] > 0 && ops[&Op::Insert] > 0 && ops[&Op::Update] > 0,
        "{ops:?}"
    );

    let url_client = fresh_reader("stream").await;
    let rows = url_client.query(SELECT, &[]).await.unwrap();
    let actual: HashMap<String, FlightState> = rows.iter().map(|r| (r.get(0), row_to_state(r))).collect();
    assert_eq!(actual.len(), expected.len());
    for (key, want) in &expected {
        assert_eq!(actual.get(key), Some(want), "row {key}");
    }
}

async fn fresh_reader(name: &str) -> tokio_postgres::Client {
    let cfg = stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    let admin = cfg.env().into_iter().find(|(k, _)| *k == "DATABASE_URL").unwrap().1;
    let url = admin
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/flightdb_test_{name}"))
        .unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn repeated_keys_in_one_batch_are_applied_in_order() {
    let mut client = fresh_database("order").await;
    migrate(&mut client).await.unwrap();
    let mut writer = FlightWriter::new(client);
    let a = flight_types::sample_flight_state();
    let a2 = FlightState {
        velocity: Some(1.0),
        ..a.clone()
    };
    let b = FlightState {
        icao24: "abcdef".into(),
        ..a.clone()
    };
    let change = |op, state: &FlightState| simulator::Change {
        op,
        state: state.clone(),
        bad: None,
    };
    let written = writer
        .write(&[
            change(Op::Insert, &a),
            change(Op::Insert, &b),
            change(Op::Update, &a2),
            change(Op::Delete, &b),
            change(Op::Insert, &b),
            change(Op::Delete, &a),
        ])
        .await
        .unwrap();
    assert_eq!((written.upserts, written.deletes), (4, 2));
    let reader = fresh_reader("order").await;
    let rows = reader.query(SELECT, &[]).await.unwrap();
    let states: Vec<FlightState> = rows.iter().map(row_to_state).collect();
    assert_eq!(states, vec![b]);
}
