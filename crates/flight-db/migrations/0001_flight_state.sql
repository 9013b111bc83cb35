-- The operational table the producer writes and the CDC stage reads: one row
-- per aircraft currently tracked, keyed by its ICAO 24-bit address. Columns
-- follow io.contrail.flight.FlightState (schemas/flight.avdl); timestamps are
-- timestamptz, enums are their symbols as text.
--
-- No CHECK constraints on purpose: the operational system accepts what the
-- feed delivers, and the data-quality rules of the schema are enforced (and
-- violations dead-lettered) by the pipeline, where they are visible.

CREATE TABLE flight_state (
    icao24          text PRIMARY KEY,
    callsign        text,
    origin_country  text NOT NULL,
    time_position   timestamptz,
    last_contact    timestamptz NOT NULL,
    longitude       double precision,
    latitude        double precision,
    baro_altitude   double precision,
    on_ground       boolean NOT NULL,
    velocity        double precision,
    true_track      double precision,
    vertical_rate   double precision,
    sensors         integer[],
    geo_altitude    double precision,
    squawk          text,
    spi             boolean NOT NULL DEFAULT false,
    position_source text NOT NULL DEFAULT 'UNKNOWN',
    category        text NOT NULL DEFAULT 'NO_INFO'
);

-- Updates and deletes carry the whole old row in the WAL, so CDC can emit a
-- complete `before` image and never sees an unchanged-TOAST placeholder.
ALTER TABLE flight_state REPLICA IDENTITY FULL;
