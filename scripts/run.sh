#!/usr/bin/env bash
# Runs Contrail end to end on the local stack: installs what is missing,
# starts PostgreSQL, Tansu, fakesnow and the schema registry, runs the
# schema-first workflow on schemas/ (lint, compile to the registry's .avsc,
# codegen drift check), then `contrail run`: the producer, the CDC stage and
# the sink together for 30 s at 1,000 changes/s (flags after the script's
# name go to `contrail run`, e.g. `./scripts/run.sh --duration 600`), ending
# with its report, also written to .contrail/last-run.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build -p contrail
"$CONTRAIL" stack up
"$CONTRAIL" schema lint
"$CONTRAIL" schema compile
"$CONTRAIL" schema check --against registry/schemas
"$CONTRAIL" schema codegen --check
echo
"$CONTRAIL" run --duration 30 --rate 1000 --bad-percent 1 --report .contrail/last-run.json "$@"
echo
echo "The stack is still up. Point tools at it with:"
echo '  eval "$('"$CONTRAIL"' stack env)"'
