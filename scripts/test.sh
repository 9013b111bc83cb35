#!/usr/bin/env bash
# The project's tests: lints, schema drift checks, then every unit,
# property, interoperability and integration test, the last against the
# real services of the local stack (started here if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build -p contrail
"$CONTRAIL" schema lint --deny-warnings
"$CONTRAIL" schema compile --check
"$CONTRAIL" schema codegen --check
"$CONTRAIL" stack up
cargo test --workspace
