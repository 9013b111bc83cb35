#!/usr/bin/env bash
# The project's tests: lints, schema drift checks, a short fuzz run of
# every decoder of untrusted input (scripts/fuzz.sh), then every unit,
# property, interoperability and integration test, the last against real
# services on a stack of the tests' own: its own data directory (under
# $TMPDIR/contrail-test-stacks/) and free ports, started here and always stopped at the
# end, so the tests never touch the user's stack (`.contrail/`, ports 15432,
# 19092, 19093, 18085, 8081). Arguments go to `cargo test`
# (e.g. `./scripts/test.sh -p cdc`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo fmt --all --check
timed "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
timed "cargo build" cargo build -p contrail
"$CONTRAIL" schema lint --deny-warnings
"$CONTRAIL" schema compile --check
"$CONTRAIL" schema codegen --check
# The decoders of untrusted input, fuzzed for a fixed time from the committed corpora.
timed "fuzz (20 s a target)" scripts/fuzz.sh 20 --seed 1

source scripts/test-stack.sh
timed "test stack up" test_stack_up

log="$(mktemp)"
start=$SECONDS
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e
contrail_timings+=("$(printf '%-28s %4ds' "cargo test (build and run)" $((SECONDS - start)))")
timings
# One closing line for the whole run: cargo prints one summary per test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
rm -f "$log"
exit "$status"
