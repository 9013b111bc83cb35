//! The operational flight-state table: what the producer writes and the CDC
//! stage reads.
//!
//! [`migrate`] applies the migrations in `migrations/` once each, recorded in
//! `contrail_migrations`, under an advisory lock so concurrent starters do not
//! race. [`FlightWriter::write`] applies a batch of simulator or feed changes
//! in order, in one transaction: runs of upserts go in one
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE` statement (one
//! round trip for the whole run, binary parameters), runs of deletes in one
//! `DELETE … WHERE icao24 = ANY(…)`. A run ends where a key repeats, so every
//! change reaches the table, and the write-ahead log, in order.
//!
//! Errors are classified: a lost connection is transient (reconnect and
//! retry the batch: upserts and deletes are idempotent), anything else is
//! fatal for the batch.

use flight_types::FlightState;
use simulator::{Change, Op};
use tokio_postgres::{Client, GenericClient};

const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "flight_state", include_str!("../migrations/0001_flight_state.sql"))];
/// Advisory lock key for migrations ("CFDB").
const MIGRATION_LOCK: i64 = 0x4346_4442;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error")]
    Postgres(#[from] tokio_postgres::Error),
}

impl DbError {
    /// Whether retrying after reconnecting may succeed.
    pub fn is_transient(&self) -> bool {
        let DbError::Postgres(e) = self;
        e.is_closed() || e.code().is_some_and(|c| changes::sqlstate_is_transient(c.code()))
    }
}

/// Applies pending migrations.
pub async fn migrate(client: &mut Client) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS contrail_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    for (version, name, sql) in MIGRATIONS {
        if tx
            .query_opt("SELECT 1 FROM contrail_migrations WHERE version = $1", &[version])
            .await?
            .is_none()
        {
            tracing::info!(version, name, "applying migration");
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO contrail_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

const UPSERT: &str = "INSERT INTO flight_state AS f (icao24, callsign, origin_country, time_position, last_contact, \
     longitude, latitude, baro_altitude, on_ground, velocity, true_track, vertical_rate, sensors, geo_altitude, \
     squawk, spi, position_source, category) \
     SELECT icao24, callsign, origin_country, \
       'epoch'::timestamptz + time_position * interval '1 millisecond', \
       'epoch'::timestamptz + last_contact * interval '1 millisecond', \
       longitude, latitude, baro_altitude, on_ground, velocity, true_track, vertical_rate, sensors::integer[], \
       geo_altitude, squawk, spi, position_source, category \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::float8[], $7::float8[], $8::float8[], \
       $9::bool[], $10::float8[], $11::float8[], $12::float8[], $13::text[], $14::float8[], $15::text[], $16::bool[], \
       $17::text[], $18::text[]) \
       AS t(icao24, callsign, origin_country, time_position, last_contact, longitude, latitude, baro_altitude, \
       on_ground, velocity, true_track, vertical_rate, sensors, geo_altitude, squawk, spi, position_source, category) \
     ON CONFLICT (icao24) DO UPDATE SET callsign = EXCLUDED.callsign, origin_country = EXCLUDED.origin_country, \
       time_position = EXCLUDED.time_position, last_contact = EXCLUDED.last_contact, longitude = EXCLUDED.longitude, \
       latitude = EXCLUDED.latitude, baro_altitude = EXCLUDED.baro_altitude, on_ground = EXCLUDED.on_ground, \
       velocity = EXCLUDED.velocity, true_track = EXCLUDED.true_track, vertical_rate = EXCLUDED.vertical_rate, \
       sensors = EXCLUDED.sensors, geo_altitude = EXCLUDED.geo_altitude, squawk = EXCLUDED.squawk, spi = EXCLUDED.spi, \
       position_source = EXCLUDED.position_source, category = EXCLUDED.category";

/// Column vectors for one upsert statement.
#[derive(Default)]
struct Columns {
    icao24: Vec<String>,
    callsign: Vec<Option<String>>,
    origin_country: Vec<String>,
    time_position: Vec<Option<i64>>,
    last_contact: Vec<i64>,
    longitude: Vec<Option<f64>>,
    latitude: Vec<Option<f64>>,
    baro_altitude: Vec<Option<f64>>,
    on_ground: Vec<bool>,
    velocity: Vec<Option<f64>>,
    true_track: Vec<Option<f64>>,
    vertical_rate: Vec<Option<f64>>,
    /// PostgreSQL array literals (`{1,2}`): unnest cannot take an array of arrays.
    sensors: Vec<Option<String>>,
    geo_altitude: Vec<Option<f64>>,
    squawk: Vec<Option<String>>,
    spi: Vec<bool>,
    position_source: Vec<&'static str>,
    category: Vec<&'static str>,
}

impl Columns {
    fn push(&mut self, s: &FlightState) {
        self.icao24.push(s.icao24.clone());
        self.callsign.push(s.callsign.clone());
        self.origin_country.push(s.origin_country.clone());
        self.time_position.push(s.time_position);
        self.last_contact.push(s.last_contact);
        self.longitude.push(s.longitude);
        self.latitude.push(s.latitude);
        self.baro_altitude.push(s.baro_altitude);
        self.on_ground.push(s.on_ground);
        self.velocity.push(s.velocity);
        self.true_track.push(s.true_track);
        self.vertical_rate.push(s.vertical_rate);
        self.sensors.push(s.sensors.as_ref().map(|v| {
            format!(
                "{{{}}}",
                v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
            )
        }));
        self.geo_altitude.push(s.geo_altitude);
        self.squawk.push(s.squawk.clone());
        self.spi.push(s.spi);
        self.position_source.push(s.position_source.symbol());
        self.category.push(s.category.symbol());
    }

    fn len(&self) -> usize {
        self.icao24.len()
    }

    async fn execute(&mut self, tx: &impl GenericClient) -> Result<(), DbError> {
        if self.len() == 0 {
            return Ok(());
        }
        tx.execute(
            UPSERT,
            &[
                &self.icao24,
                &self.callsign,
                &self.origin_country,
                &self.time_position,
                &self.last_contact,
                &self.longitude,
                &self.latitude,
                &self.baro_altitude,
                &self.on_ground,
                &self.velocity,
                &self.true_track,
                &self.vertical_rate,
                &self.sensors,
                &self.geo_altitude,
                &self.squawk,
                &self.spi,
                &self.position_source,
                &self.category,
            ],
        )
        .await?;
        *self = Columns::default();
        Ok(())
    }
}

/// Counts of what a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub upserts: u64,
    pub deletes: u64,
    pub statements: u64,
}

/// Writes batches of changes to `flight_state`.
#[derive(Debug)]
pub struct FlightWriter {
    client: Client,
}

impl FlightWriter {
    pub fn new(client: Client) -> Self {
        FlightWriter { client }
    }

    /// Applies `changes` in order, in one transaction.
    pub async fn write(&mut self, changes: &[Change]) -> Result<Written, DbError> {
        let tx = self.client.transaction().await?;
        let mut written = Written::default();
        let mut upserts = Columns::default();
        let mut deletes: Vec<String> = Vec::new();
        // Keys in the current run: a repeat starts a new statement, since one
        // statement cannot touch a row twice.
        let mut keys = std::collections::HashSet::new();
        for c in changes {
            let is_delete = c.op == Op::Delete;
            let switch = (is_delete && upserts.len() > 0) || (!is_delete && !deletes.is_empty());
            if switch || !keys.insert(c.state.icao24.as_str()) {
                written.statements += flush(&tx, &mut upserts, &mut deletes).await?;
                keys.clear();
                keys.insert(c.state.icao24.as_str());
            }
            if is_delete {
                deletes.push(c.state.icao24.clone());
                written.deletes += 1;
            } else {
                upserts.push(&c.state);
                written.upserts += 1;
            }
        }
        written.statements += flush(&tx, &mut upserts, &mut deletes).await?;
        tx.commit().await?;
        Ok(written)
    }
}

async fn flush(tx: &impl GenericClient, upserts: &mut Columns, deletes: &mut Vec<String>) -> Result<u64, DbError> {
    let mut n = 0;
    if upserts.len() > 0 {
        upserts.execute(tx).await?;
        n += 1;
    }
    if !deletes.is_empty() {
        tx.execute("DELETE FROM flight_state WHERE icao24 = ANY($1)", &[&*deletes])
            .await?;
        deletes.clear();
        n += 1;
    }
    Ok(n)
}
