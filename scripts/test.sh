#!/usr/bin/env bash
# The project's tests: lints, schema drift checks, then every unit,
# property, interoperability and integration test, the last against the
# real services of the local stack (started here if needed, and stopped
# again at the end if this script started it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build -p contrail
"$CONTRAIL" schema lint --deny-warnings
"$CONTRAIL" schema compile --check
"$CONTRAIL" schema codegen --check

if ! "$CONTRAIL" stack status >/dev/null 2>&1; then
  trap '"$CONTRAIL" stack down >/dev/null 2>&1 || true' EXIT
fi
"$CONTRAIL" stack up

log="$(mktemp)"
set +e
cargo test --workspace 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e
# One closing line for the whole run: cargo prints one summary per test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
rm -f "$log"
exit "$status"
