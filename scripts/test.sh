#!/usr/bin/env bash
# Runs every check and test of meshgate, installing what it needs on a fresh Debian machine:
# format and lint checks, Rust unit and integration tests, and the client conformance tests
# with real Flight SQL clients (ADBC, flightsql-dbapi/SQLAlchemy) in a Python virtualenv.
#
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: ./target)
#   MESHGATE_VENV      the Python virtualenv for client tests (default: ./.venv)
#   MESHGATE_AZURITE   where the Azurite blob emulator (npm) is installed for the Azure test
#                      (default: ./.azurite)
#   MESHGATE_TEST_PG_URL, MESHGATE_TEST_MYSQL_URL
#                      existing servers for the SQL-source tests (postgres://user:pw@host:port/db,
#                      mysql://...); without them PostgreSQL and MariaDB are started here from
#                      the Debian packages (installed when missing) for the length of the run
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv=${MESHGATE_VENV:-$root/.venv}
azurite=${MESHGATE_AZURITE:-$root/.azurite}
export MESHGATE_AZURITE=$azurite
started=$SECONDS

step() { printf '\n==> %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "toolchain"
if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

step "database servers for the SQL-source tests (Debian packages)"
if command -v apt-get >/dev/null; then
  missing=()
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

step "python virtualenv for client tests"
if ! python3 -m venv --help >/dev/null 2>&1; then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
req=tests/clients/requirements.txt
if ! cmp -s "$req" "$venv/.meshgate-requirements" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.meshgate-requirements"
fi

step "Azurite (Azure Blob Storage emulator, npm) for the Azure files test"
azurite_version=3.37.0
if [ "$(cat "$azurite/.meshgate-version" 2>/dev/null)" != "$azurite_version" ]; then
  if ! command -v npm >/dev/null && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p "$azurite"
  npm install --prefix "$azurite" --no-audit --no-fund --silent "azurite@$azurite_version"
  echo "$azurite_version" > "$azurite/.meshgate-version"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "each connector crate builds on its own"
for crate in meshgate-connector meshgate-connector-sql meshgate-connector-files meshgate-connector-sqlite \
  meshgate-connector-postgres meshgate-connector-mysql meshgate-connector-flightsql meshgate-config meshgate-proto; do
  cargo check -q --locked -p "$crate"
done

step "start PostgreSQL and MariaDB with TPC-H for the whole test run"
if [ -z "${MESHGATE_TEST_PG_URL:-}" ] || [ -z "${MESHGATE_TEST_MYSQL_URL:-}" ]; then
  cargo build -q --locked -p meshgate-tests --bin meshgate-testdbs
  dbenv=$(mktemp -d)/dbs.env
  # The servers stop when this script exits and closes fd 3.
  exec 3> >("$target/debug/meshgate-testdbs" "$dbenv")
  for _ in $(seq 1 900); do
    [ -f "$dbenv" ] && break
    sleep 0.2
  done
  [ -f "$dbenv" ] || { echo "test databases did not start" >&2; exit 1; }
  set -a
  # shellcheck disable=SC1090
  . "$dbenv"
  set +a
fi

step "Rust tests (unit, integration)"
cargo nextest run --workspace --locked --no-fail-fast

step "doc tests"
cargo test --workspace --locked --doc -q

step "meshgate validate on the checked-in examples"
cargo build -q --locked -p meshgate --bin meshgate
"$target/debug/meshgate" validate config/examples/demo
CRM_PG_PASSWORD=unused SUPPLY_PASSWORD=unused "$target/debug/meshgate" validate config/examples/sql
SALES_GW_PASSWORD=unused "$target/debug/meshgate" validate config/examples/two-gateways/hub
LAKE_ACCESS_KEY_ID=unused LAKE_SECRET_ACCESS_KEY=unused "$target/debug/meshgate" validate config/examples/s3-lake

step "client conformance tests (ADBC, flightsql-dbapi, SQLAlchemy) against the meshgate binary"
MESHGATE_BIN="$target/debug/meshgate" "$venv/bin/python" -m pytest -q tests/clients

step "all checks passed"
