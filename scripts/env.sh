# Sourced by the project's scripts: installs the machine packages Contrail
# needs when they are missing (Debian; as root, or with sudo), and sets the
# shared build settings. The Kafka broker's jars (through Maven) and
# fakesnow are fetched by `contrail stack up` itself.

set -euo pipefail

# `timed NAME COMMAND…` runs a step and notes how long it took; `timings`
# prints the notes (the scripts end with them, so a slow first run shows
# where its time went).
contrail_timings=()
timed() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  contrail_timings+=("$(printf '%-28s %4ds' "$name" $((SECONDS - start)))")
}
timings() {
  echo "time spent:"
  local t
  for t in "${contrail_timings[@]}"; do echo "  $t"; done
}

apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "error: missing packages: $*; install them with apt-get (as root)" >&2
      exit 2
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing packages: $* (Debian package names); install them with your package manager" >&2
    exit 2
  fi
  echo "installing: $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
/usr/bin/python3 -c 'import avro' >/dev/null 2>&1 || missing+=(python3-avro)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# The local Kafka broker runs on Java 17 or newer; Maven fetches its jars.
java_major() {
  java -version 2>&1 | awk -F'"' 'NR == 1 { split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]) }'
}
if [ -z "${JAVA_HOME:-}" ] && { ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; }; then
  missing+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# librdkafka's TLS and SASL link the system's OpenSSL (Debian patches it),
# its OIDC token fetch the system's libcurl; openssl makes the secure
# stack's certificates.
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  timed "apt-get install" apt_install "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "error: cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
    exit 2
  fi
fi

# Confluent's own Python client, the referee for registry and wire-format
# compatibility, in a virtualenv shared by every checkout. (2.16.1 needs a
# certifi newer than PyPI serves here.)
CONFLUENT_KAFKA_VERSION=2.16.0
CONFLUENT_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/contrail/confluent-kafka-$CONFLUENT_KAFKA_VERSION"
export CONFLUENT_PYTHON="$CONFLUENT_VENV/bin/python"
if ! "$CONFLUENT_PYTHON" -c 'import confluent_kafka.schema_registry.avro' >/dev/null 2>&1; then
  echo "installing confluent-kafka $CONFLUENT_KAFKA_VERSION into $CONFLUENT_VENV" >&2
  confluent_venv() {
    python3 -m venv "$CONFLUENT_VENV"
    "$CONFLUENT_VENV/bin/pip" install --quiet "confluent-kafka[avro,schemaregistry]==$CONFLUENT_KAFKA_VERSION"
  }
  timed "confluent-kafka venv" confluent_venv
fi

# One target directory shared by every checkout on the machine, so a fresh
# clone (CI) reuses the dependencies already built. Two cores: two jobs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contrail/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
CONTRAIL="$CARGO_TARGET_DIR/debug/contrail"
export CONTRAIL
