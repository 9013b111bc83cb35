"""Apache Avro's Python implementation (Debian's python3-avro) as a referee
for Contrail's generated codec.

Input (argv[1]): {"schema": <avsc text>, "records": [{"json": ..., "avro_hex": ...}]}
where each record was encoded by Contrail. For each record this decodes the
bytes with Apache Avro and compares the result with the JSON, then encodes
the JSON with Apache Avro. Output: {"mismatches": [...], "encoded_hex": [...]}.
Timestamps are epoch milliseconds in the JSON and datetimes in Apache Avro.
"""

import datetime
import io
import json
import sys

import avro.io
import avro.schema

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
MS = datetime.timedelta(milliseconds=1)


def timestamp_fields(schema):
    out = set()
    for f in schema.fields:
        types = f.type.schemas if isinstance(f.type, avro.schema.UnionSchema) else [f.type]
        if any(t.props.get("logicalType") == "timestamp-millis" for t in types):
            out.add(f.name)
    return out


def main():
    data = json.load(open(sys.argv[1]))
    schema = avro.schema.parse(data["schema"])
    ts = timestamp_fields(schema)
    reader = avro.io.DatumReader(schema)
    writer = avro.io.DatumWriter(schema)
    mismatches, encoded = [], []
    for i, rec in enumerate(data["records"]):
        decoded = reader.read(avro.io.BinaryDecoder(io.BytesIO(bytes.fromhex(rec["avro_hex"]))))
        normalized = {k: ((v - EPOCH) // MS if k in ts and v is not None else v) for k, v in decoded.items()}
        if normalized != rec["json"]:
            mismatches.append({"index": i, "apache_avro": repr(normalized), "contrail": repr(rec["json"])})
        datum = {k: (EPOCH + v * MS if k in ts and v is not None else v) for k, v in rec["json"].items()}
        buf = io.BytesIO()
        writer.write(datum, avro.io.BinaryEncoder(buf))
        encoded.append(buf.getvalue().hex())
    json.dump({"mismatches": mismatches, "encoded_hex": encoded}, sys.stdout)


if __name__ == "__main__":
    main()
