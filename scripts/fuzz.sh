#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a fixed time each (default 20 s:
# `./scripts/fuzz.sh 300` for a longer hunt; `--seed N` repeats a run, as
# the test command does with seed 1), starting from its corpus in
# fuzz/corpus/<target>. Built with libFuzzer's coverage instrumentation on
# stable Rust (the flags cargo-fuzz passes, without needing cargo-fuzz), in a
# target directory of its own. New inputs go to a scratch copy, so a run
# never changes the committed corpus; `--merge` folds them back in,
# minimised. A crash fails the run and leaves its input in
# $CONTRAIL_FUZZ_ARTIFACTS (default: a temporary directory), named in the output.
# libFuzzer refuses any single allocation over 512 MB: the decoders bound
# what a length prefix may make them allocate, and this checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seconds=20
merge=false
seed=0 # libFuzzer's 0: a new seed each run
while [ "$#" -gt 0 ]; do
  case "$1" in
    --merge) merge=true ;;
    --seed) seed="$2"; shift ;;
    *) seconds="$1" ;;
  esac
  shift
done

fuzz_target_dir="${CARGO_TARGET_DIR%/}-fuzz"
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# An explicit --target keeps the flags off build scripts and proc macros,
# which run on the host without libFuzzer.
host="$(rustc -vV | sed -n 's/^host: //p')"
(cd fuzz && CARGO_TARGET_DIR="$fuzz_target_dir" RUSTFLAGS="$flags" \
  cargo build --release --bins --quiet --target "$host")
bin="$fuzz_target_dir/$host/release"

artifacts="${CONTRAIL_FUZZ_ARTIFACTS:-$(mktemp -d)}"
mkdir -p "$artifacts"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
for src in fuzz/fuzz_targets/*.rs; do
  target="$(basename "$src" .rs)"
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus" "$scratch/$target"
  log="$scratch/$target.log"
  if "$bin/$target" "$scratch/$target" "$corpus" \
      -max_total_time="$seconds" -seed="$seed" -timeout=10 -malloc_limit_mb=512 -rss_limit_mb=2048 \
      -max_len=65536 -artifact_prefix="$artifacts/$target-" >"$log" 2>&1; then
    printf 'fuzz %-18s %s\n' "$target" "$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
  else
    status=1
    echo "fuzz $target FAILED; the last lines of its log:" >&2
    tail -n 40 "$log" >&2
    echo "the failing input is in $artifacts (run the target with it as its argument)" >&2
  fi
  if $merge; then
    "$bin/$target" -merge=1 "$corpus" "$scratch/$target" >/dev/null 2>&1
  fi
done
exit "$status"
