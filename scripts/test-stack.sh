# Sourced by scripts/test.sh: the tests' own stack. `test_stack_up` picks
# free ports, points CONTRAIL_STACK_DIR at a directory of its own under the
# temporary directory (PostgreSQL runs as `postgres` under root, and may not
# reach a build directory in root's home), starts the stack there, and arranges for it to be stopped
# and removed when the shell exits, however the tests end. A stack left by a
# run that was killed is stopped and removed first.

test_stack_root="${TMPDIR:-/tmp}/contrail-test-stacks"

test_stack_down() {
  local dir="$1"
  CONTRAIL_STACK_DIR="$dir" "$CONTRAIL" stack down >/dev/null 2>&1 || true
  rm -rf "$dir"
}

# On a failed run, the services' last log lines, before the directory goes.
test_stack_exit() {
  local status=$?
  if [ "$status" != 0 ] && [ -d "$CONTRAIL_STACK_DIR/logs" ]; then
    local f
    for f in "$CONTRAIL_STACK_DIR"/logs/*.log; do
      [ -f "$f" ] || continue
      echo "--- test stack: last lines of $(basename "$f") ---" >&2
      tail -n 20 "$f" >&2 || true
    done
  fi
  test_stack_down "$CONTRAIL_STACK_DIR"
  exit "$status"
}

test_stack_up() {
  mkdir -p "$test_stack_root"
  # Leftovers of runs whose shell is gone (their pid is the directory name).
  local old
  for old in "$test_stack_root"/*; do
    [ -d "$old" ] || continue
    kill -0 "$(basename "$old")" 2>/dev/null || test_stack_down "$old"
  done
  export CONTRAIL_STACK_DIR="$test_stack_root/$$"
  local ports
  # Nine ports the kernel hands out as free, held together so they differ.
  ports="$(python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
  read -r CONTRAIL_PG_PORT CONTRAIL_KAFKA_PORT CONTRAIL_KAFKA_CONTROLLER_PORT \
    CONTRAIL_SNOWFLAKE_PORT CONTRAIL_REGISTRY_PORT \
    CONTRAIL_KAFKA_SASL_PORT CONTRAIL_KAFKA_MTLS_PORT CONTRAIL_REGISTRY_HTTPS_PORT CONTRAIL_SNOWFLAKE_HTTPS_PORT <<<"$ports"
  export CONTRAIL_PG_PORT CONTRAIL_KAFKA_PORT CONTRAIL_KAFKA_CONTROLLER_PORT \
    CONTRAIL_SNOWFLAKE_PORT CONTRAIL_REGISTRY_PORT \
    CONTRAIL_KAFKA_SASL_PORT CONTRAIL_KAFKA_MTLS_PORT CONTRAIL_REGISTRY_HTTPS_PORT CONTRAIL_SNOWFLAKE_HTTPS_PORT
  # Service addresses come from the stack, never from the user's shell.
  unset DATABASE_URL KAFKA_BOOTSTRAP_SERVERS SCHEMA_REGISTRY_URL SNOWFLAKE_URL
  trap test_stack_exit EXIT
  echo "test stack: $CONTRAIL_STACK_DIR (ports $ports)"
  # Secure, so the security tests meet real TLS and SASL listeners; the
  # plaintext ones stay for every other test.
  "$CONTRAIL" stack up --secure
}
