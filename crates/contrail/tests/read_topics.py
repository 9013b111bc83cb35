"""Reads Kafka topics to their end with Confluent's own client and decodes
keys and values with its AvroDeserializer against the schema registry.

usage: read_topics.py BOOTSTRAP REGISTRY_URL TOPIC [TOPIC ...]
prints: [{"topic", "key", "value" (object or null), "headers": {name: text}}]
"""

import datetime
import json
import sys
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    return value


def main():
    bootstrap, registry_url, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
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
            key = deserialize(msg.key(), SerializationContext(topic, MessageField.KEY))
            raw = msg.value()
            value = None if raw is None else plain(deserialize(raw, SerializationContext(topic, MessageField.VALUE)))
            headers = {k: v.decode() for k, v in (msg.headers() or [])}
            out.append({"topic": topic, "partition": msg.partition(), "key": key, "value": value, "headers": headers})
            if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                remaining.pop(msg.partition(), None)
        consumer.unassign()
    consumer.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
