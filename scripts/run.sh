#!/usr/bin/env bash
# Runs Contrail end to end on the local stack: installs what is missing,
# starts PostgreSQL, Apache Kafka, fakesnow and the schema registry, runs the
# schema-first workflow on schemas/ (lint, compile to the registry's .avsc,
# codegen drift check), then `contrail run`: the producer, the CDC stage and
# the sink together for 30 s at 1,000 changes/s (flags after the script's
# name go to `contrail run`, e.g. `./scripts/run.sh --duration 600`), ending
# with its report, also written to .contrail/last-run.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

timed "cargo build" cargo build -p contrail
# First start on a machine: Kafka's jars through Maven, fakesnow's venv.
timed "stack up" "$CONTRAIL" stack up
"$CONTRAIL" schema lint
"$CONTRAIL" schema compile
"$CONTRAIL" schema check --against registry/schemas
"$CONTRAIL" schema codegen --check
echo
timed "contrail run" "$CONTRAIL" run --duration 30 --rate 1000 --bad-percent 1 --report .contrail/last-run.json "$@"
echo
timings
echo
echo "The stack is still up. Point tools at it with:"
echo '  eval "$('"$CONTRAIL"' stack env)"'
