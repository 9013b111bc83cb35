#!/usr/bin/env bash
# Runs Contrail on the local stack: installs what is missing, starts
# PostgreSQL, Tansu and fakesnow, and runs the schema-first workflow on
# schemas/ (lint, compile to the registry's .avsc, codegen drift check).
# The pipeline stages (producer, CDC, sink) join this script as they land.
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
echo "The stack is up. Point tools at it with:"
echo '  eval "$('"$CONTRAIL"' stack env)"'
"$CONTRAIL" stack env
