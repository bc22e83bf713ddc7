#!/usr/bin/env bash
# Runs every test: starts a throwaway PostgreSQL cluster on a free 127.0.0.1 port in a temp folder
# (the PostgreSQL tests use it), runs `dotnet test` on the solution, stops the cluster.
# Extra arguments go to `dotnet test` (e.g. ./test.sh --filter Sqlite).
set -euo pipefail
cd "$(dirname "$0")"

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  echo "PostgreSQL server binaries not found: installing Debian's postgresql package"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi
fi
PGBIN="$(pg_bin)"

# initdb refuses to run as root: run the cluster as the postgres user then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Browser end-to-end test (SmartBrowserTests): Debian's Chromium and the npm packages of tests/browser.
if [ ! -x /usr/bin/chromium ]; then
  echo "Chromium not found: installing Debian's chromium package (apt-get install -y chromium)"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
fi
if command -v npm >/dev/null && { [ ! -d tests/browser/node_modules/fhirclient ] || [ ! -d tests/browser/node_modules/fhir-kit-client ]; }; then
  echo "Installing tests/browser npm packages (npm ci)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

PGROOT="$(mktemp -d /tmp/fhirsortie-pg.XXXXXX)"
[ "$(id -u)" -eq 0 ] && chown postgres "$PGROOT"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PGPORT=""
for _ in $(seq 1 50); do
  candidate=$(( 20000 + RANDOM % 20000 ))
  if port_free "$candidate"; then PGPORT=$candidate; break; fi
done
[ -n "$PGPORT" ] || { echo "no free port found for PostgreSQL" >&2; exit 1; }

cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGROOT"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$PGROOT/data" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" \
  -o "-p $PGPORT -k $PGROOT -c listen_addresses=127.0.0.1 -c max_connections=1000" -w start >/dev/null
echo "throwaway PostgreSQL on 127.0.0.1:$PGPORT ($PGROOT)"

export FHIRSORTIE_TEST_POSTGRES="Host=127.0.0.1;Port=$PGPORT;Username=postgres;Database=postgres;Maximum Pool Size=40"
export FHIRSORTIE_PG_BIN="$PGBIN"
export FHIRSORTIE_SHARED="${FHIRSORTIE_SHARED:-$(cd .. && pwd)/shared}"

set +e
dotnet test FhirSortie.sln -c Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$PGROOT/test.log"
status=${PIPESTATUS[0]}
set -e
# One closing line that any reader understands, summed over the test projects.
awk '/^ *Total tests:/ { t += $3 } /^ +Passed: [0-9]+$/ { p += $2 } /^ +Failed: [0-9]+$/ { f += $2 } /^ +Skipped: [0-9]+$/ { s += $2 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$PGROOT/test.log"
# The failures again at the very end, with their messages, so that a truncated CI log still names them.
if [ "$status" -ne 0 ]; then
  echo "failed tests:"
  awk '/^ +Failed [A-Za-z]/ { show = 1; n = 0 } show && n < 25 { print; n++ } /^ +(Passed|Skipped) [A-Za-z]/ { show = 0 }' "$PGROOT/test.log" | head -n 200
fi
exit "$status"
