//! FlightState through the generated codec against apache-avro's generic
//! `Value` path, and data-quality rule evaluation.
//!
//! Run: `cargo bench -p flight-types --bench codec`. Figures go to
//! docs/BENCHMARKS.md.

use std::hint::black_box;

use avro_codec::AvroRecord;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flight_types::{sample_flight_state, FlightState, Validate};
use rules::EvalContext;

fn encode(c: &mut Criterion) {
    let state = sample_flight_state();
    let schema = apache_avro::Schema::parse_str(FlightState::SCHEMA).unwrap();
    let mut g = c.benchmark_group("flight_state_encode");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(256);
    g.bench_function("generated", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&state).encode(&mut buf);
            black_box(buf.len())
        })
    });
    // The writer (and its schema resolution) is built once, outside the loop.
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap();
    g.bench_function("apache_avro_value", |b| {
        b.iter(|| {
            let value = apache_avro::to_value(black_box(&state))
                .unwrap()
                .resolve(&schema)
                .unwrap();
            black_box(writer.write_value_to_vec(value).unwrap())
        })
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let bytes = sample_flight_state().to_avro();
    let schema = apache_avro::Schema::parse_str(FlightState::SCHEMA).unwrap();
    let mut g = c.benchmark_group("flight_state_decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("generated", |b| {
        b.iter(|| black_box(FlightState::from_avro(black_box(&bytes)).unwrap()))
    });
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap();
    g.bench_function("apache_avro_value", |b| {
        b.iter(|| {
            let value = reader.read_value(&mut black_box(bytes.as_slice())).unwrap();
            black_box(apache_avro::from_value::<FlightState>(&value).unwrap())
        })
    });
    g.finish();
}

fn rules(c: &mut Criterion) {
    let state = sample_flight_state();
    let ctx = EvalContext {
        now_ms: state.last_contact,
    };
    // The same schema without its record-level (CEL) rules: field rules alone.
    let mut json: serde_json::Value = serde_json::from_str(FlightState::SCHEMA).unwrap();
    json.as_object_mut().unwrap().remove("rules");
    let field_only = rules::RuleSet::from_schema(&schema::Schema::parse(&json).unwrap()).unwrap();
    let all = FlightState::rule_set();
    let mut out = Vec::new();
    let mut g = c.benchmark_group("flight_state_rules");
    g.throughput(Throughput::Elements(1));
    g.bench_function("field_rules", |b| {
        b.iter(|| {
            out.clear();
            field_only.evaluate_into(black_box(&state), &ctx, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("field_and_cel_record_rules", |b| {
        b.iter(|| {
            out.clear();
            all.evaluate_into(black_box(&state), &ctx, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, encode, decode, rules);
criterion_main!(benches);
