#!/usr/bin/env bash
# Contrail's CDC stage and Debezium (Kafka Connect standalone) side by side
# on this machine: installs what is missing, starts the local stack
# (PostgreSQL and the registry; the bench starts its own scratch broker),
# fetches Kafka Connect and Debezium from Maven Central once, then runs
# `cargo bench -p cdc --bench vs_debezium` (about 8 minutes) and prints
# both rows. Arguments go to the bench, e.g. `--only contrail --drain-only`
# when profiling one side. Figures: docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

timed "cargo build" cargo build -p contrail
timed "stack up" "$CONTRAIL" stack up
timed "vs_debezium" cargo bench -p cdc --bench vs_debezium -- "$@"
echo
timings
