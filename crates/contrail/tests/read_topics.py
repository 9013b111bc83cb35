"""Reads Kafka topics to their end with Confluent's own client and decodes
keys and values with its AvroDeserializer against the schema registry.

usage: read_topics.py [--iso] BOOTSTRAP REGISTRY_URL TOPIC [TOPIC ...]
prints: [{"topic", "key", "value" (object or null), "headers": {name: text}}]

Timestamps print as Unix milliseconds, or with --iso every logical type
prints as text: datetimes and dates in ISO 8601, decimals and UUIDs as
their text, bytes as hex. Values that are not Avro (dead letters holding
JSON text) print as that text.
"""

import datetime
import decimal
import json
import sys
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


ISO = False


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        if ISO:
            return value.isoformat()
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if ISO and isinstance(value, (datetime.date, decimal.Decimal, uuid.UUID)):
        return str(value)
    if ISO and isinstance(value, bytes):
        return value.hex()
    return value


def main():
    global ISO
    args = sys.argv[1:]
    if args and args[0] == "--iso":
        ISO, args = True, args[1:]
    bootstrap, registry_url, topics = args[0], args[1], args[2:]
    registry = SchemaRegistryClient({"url": registry_url})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4()}", "enable.auto.commit": False})
    out = []
    for topic in topics:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        remaining = dict(ends)
        while remaining:
            msg = consumer.poll(10)
            if msg is None:
                raise SystemExit(f"timed out reading {topic}: {remaining} left")
            if msg.error():
                raise SystemExit(str(msg.error()))
            raw_key, raw = msg.key(), msg.value()
            if raw_key and raw_key[0] == 0:
                key = plain(deserialize(raw_key, SerializationContext(topic, MessageField.KEY)))
            else:
                key = raw_key.decode() if raw_key else None
            if raw is None:
                value = None
            elif raw[0] == 0:
                value = plain(deserialize(raw, SerializationContext(topic, MessageField.VALUE)))
            else:
                value = raw.decode()
            headers = {k: v.decode() for k, v in (msg.headers() or [])}
            out.append(
                {"topic": topic, "partition": msg.partition(), "offset": msg.offset(), "key": key, "value": value, "headers": headers}
            )
            if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                remaining.pop(msg.partition(), None)
        consumer.unassign()
    consumer.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
