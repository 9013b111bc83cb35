//! Contract test with the `schema_registry_converter` crate (async Avro
//! encoder and decoder), a client nobody here wrote: it registers, encodes
//! and decodes against this registry, its bytes decode with Contrail's
//! generated types and the reverse, and an incompatible schema is refused
//! with a message naming the field.

mod common;

use std::path::Path;

use avro_codec::AvroRecord;
use common::*;
use flight_types::FlightState;
use schema_registry_converter::async_impl::easy_avro::{EasyAvroDecoder, EasyAvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};

const FULL_NAME: &str = "io.contrail.flight.FlightState";

fn strategy(schema: String) -> SubjectNameStrategy {
    SubjectNameStrategy::TopicNameStrategyWithSchema(
        "flights-conv".into(),
        false,
        SuppliedSchema::new(Some(FULL_NAME.into()), SchemaType::Avro, schema),
    )
}

#[test]
fn schema_registry_converter_registers_encodes_and_decodes() {
    let r = registry("converter_contract");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(exercise(r.url.clone()));
}

async fn exercise(u: String) {
    let avsc = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/flights.state-value.avsc");
    let schema_text = std::fs::read_to_string(&avsc).unwrap();
    let sample = flight_types::sample_flight_state();

    // The converter registers the schema and encodes a record.
    let encoder = EasyAvroEncoder::new(SrSettings::new(u.clone()));
    let bytes = encoder
        .encode_struct(&sample, &strategy(schema_text.clone()))
        .await
        .unwrap();
    let (status, latest) = tokio::task::spawn_blocking({
        let u = u.clone();
        move || get(&format!("{u}/subjects/flights-conv-value/versions/latest"))
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{latest}");
    let id = latest["id"].as_u64().unwrap() as u32;

    // Contrail reads the converter's bytes.
    let frame = wire::decode(&bytes).unwrap();
    assert_eq!(frame.schema_id, id);
    assert_eq!(FlightState::from_avro(frame.body).unwrap(), sample);

    // The converter reads Contrail's bytes.
    let mut ours = Vec::new();
    wire::encode_into(&mut ours, id, &sample.to_avro());
    let decoder = EasyAvroDecoder::new(SrSettings::new(u.clone()));
    let decoded = decoder.decode(Some(&ours)).await.unwrap();
    assert_eq!(decoded.name.map(|n| n.fullname(None)), Some(FULL_NAME.to_string()));
    assert_eq!(apache_avro::from_value::<FlightState>(&decoded.value).unwrap(), sample);

    // An incompatible schema is refused, and the reason names the field.
    let mut json: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "registration", "type": "string"}));
    let fresh = EasyAvroEncoder::new(SrSettings::new(u.clone()));
    let err = fresh
        .encode_struct(&sample, &strategy(json.to_string()))
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("409") || text.contains("incompatible"), "{text}");
    assert!(text.contains("FlightState.registration"), "{text}");
}
