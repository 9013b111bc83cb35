"""Confluent's own Python client against Contrail's registry.

usage: confluent_contract.py REGISTRY_URL AVSC_PATH CONTRAIL_FRAMES_JSON

CONTRAIL_FRAMES_JSON holds {"subject", "records": [{"json", "frame_hex"}]}:
records Contrail encoded (Confluent wire format) with the schema it
registered. This script decodes them with AvroDeserializer, registers and
serializes with SchemaRegistryClient and AvroSerializer, checks
compatibility and config, and prints a JSON report on stdout.
"""

import datetime
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(value):
    """Apache Avro datetimes back to epoch milliseconds."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    return value


def main():
    url, avsc_path, frames_path = sys.argv[1:4]
    schema_str = open(avsc_path).read()
    frames = json.load(open(frames_path))
    client = SchemaRegistryClient({"url": url})
    report = {}

    # Contrail's bytes through Confluent's deserializer.
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext("flights-rs", MessageField.VALUE)
    report["decoded"] = [
        to_json(deserializer(bytes.fromhex(r["frame_hex"]), ctx)) == r["json"] for r in frames["records"]
    ]

    # Registration, lookup, latest version, schema by id.
    subject = "flights-py-value"
    schema_id = client.register_schema(subject, Schema(schema_str, "AVRO"))
    again = client.register_schema(subject, Schema(schema_str, "AVRO"))
    latest = client.get_latest_version(subject)
    looked_up = client.lookup_schema(subject, Schema(schema_str, "AVRO"))
    by_id = client.get_schema(schema_id)
    report["registration"] = {
        "id": schema_id,
        "idempotent": again == schema_id,
        "latest_version": latest.version,
        "latest_id": latest.schema_id,
        "lookup_version": looked_up.version,
        "schema_by_id_matches": json.loads(by_id.schema_str) == json.loads(schema_str),
        "subjects": client.get_subjects(),
        "versions": client.get_versions(subject),
    }

    # Compatibility checks and config.
    parsed = json.loads(schema_str)
    compatible = dict(parsed, fields=parsed["fields"] + [{"name": "registration", "type": ["null", "string"], "default": None}])
    incompatible = dict(parsed, fields=parsed["fields"] + [{"name": "registration", "type": "string"}])
    report["compatibility"] = {
        "compatible": client.test_compatibility(subject, Schema(json.dumps(compatible), "AVRO")),
        "incompatible": client.test_compatibility(subject, Schema(json.dumps(incompatible), "AVRO")),
        "global_level": client.get_compatibility(),
    }
    client.set_compatibility(subject_name=subject, level="FULL")
    report["compatibility"]["subject_level"] = client.get_compatibility(subject)
    try:
        client.register_schema(subject, Schema(json.dumps(incompatible), "AVRO"))
        report["refusal"] = {"refused": False}
    except SchemaRegistryError as e:
        report["refusal"] = {"refused": True, "status": e.http_status_code, "code": e.error_code, "message": e.error_message}

    # Confluent's serializer; Contrail decodes these bytes.
    serializer = AvroSerializer(client, schema_str, conf={"auto.register.schemas": False, "use.latest.version": True})
    ctx = SerializationContext("flights-py", MessageField.VALUE)
    report["serialized_hex"] = [serializer(r["json"], ctx).hex() for r in frames["records"]]
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
