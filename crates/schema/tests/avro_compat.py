"""Apache Avro's own compatibility checker as a referee.

Reads the corpus (a JSON list of {name, reader, writer}) and prints, for each
pair, [reader reads writer, writer reads reader] as Apache Avro's Python
implementation (Debian's python3-avro) decides it.
"""

import json
import sys

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType


def compatible(reader, writer):
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    return result.compatibility is SchemaCompatibilityType.compatible


def main():
    corpus = json.load(open(sys.argv[1]))
    out = []
    for pair in corpus:
        r = avro.schema.parse(json.dumps(pair["reader"]))
        w = avro.schema.parse(json.dumps(pair["writer"]))
        out.append([compatible(r, w), compatible(w, r)])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
