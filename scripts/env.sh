# Sourced by the project's scripts: installs the machine packages Contrail
# needs when they are missing (Debian; as root, or with sudo), and sets the
# shared build settings. Tansu and fakesnow are installed by
# `contrail stack up` itself.

set -euo pipefail

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
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "error: cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
    exit 2
  fi
fi

# One target directory shared by every checkout on the machine, so a fresh
# clone (CI) reuses the dependencies already built. Two cores: two jobs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contrail/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
CONTRAIL="$CARGO_TARGET_DIR/debug/contrail"
export CONTRAIL
