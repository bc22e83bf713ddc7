#!/usr/bin/env bash
# bench/portal-timings.sh: issue 22's page timings on the embedded default (SQLite). Publishes the gateway and the bench
# console, starts the gateway in demo mode (portal users and clients) on a fresh data folder, loads EXITS people leaving
# the demo USMP within 14 days (the first HANDOFFS with a hand-off to CSAPA A) through the API, signs in to the portal
# as csapa-referent and usmp-medecin and times the inbox and the Sorties board: server time from the gateway's request
# log (p50/p95 over REQUESTS requests after WARM warm-up ones), client time, and the API calls each page made.
#   HANDOFFS=200 EXITS=500 REQUESTS=30 WARM=5 bench/portal-timings.sh
# SERVERDIR=<a dotnet publish output> skips the publish of the gateway (compare two builds); BENCHDIR the same for the
# bench console (e.g. bench/FhirSortie.Bench/bin/Release/net10.0 after a solution build).
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
W="$(mktemp -d /tmp/fhirsortie-portal-timings.XXXXXX)"
if [ -z "${SERVERDIR:-}" ]; then
  dotnet publish "$ROOT/src/FhirSortie.Server/FhirSortie.Server.csproj" -c Release -o "$BENCH/.out/server" --nologo -v q >/dev/null
  SERVERDIR="$BENCH/.out/server"
fi
if [ -z "${BENCHDIR:-}" ]; then
  dotnet publish "$BENCH/FhirSortie.Bench/FhirSortie.Bench.csproj" -c Release -o "$BENCH/.out/bench" --nologo -v q >/dev/null
  BENCHDIR="$BENCH/.out/bench"
fi
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=""; for _ in $(seq 1 50); do c=$((30000 + RANDOM % 9000)); if port_free $c; then PORT=$c; break; fi; done
BASE="http://127.0.0.1:$PORT"
# Demo mode outside Production (Staging): the portal's demo users and the usmp-demo client that loads the data.
(cd "$SERVERDIR" && exec env ASPNETCORE_URLS=$BASE ASPNETCORE_ENVIRONMENT=Staging FhirSortie__DemoMode=true \
  FhirSortie__Storage__Provider=Sqlite FhirSortie__DataDirectory="$W/db" dotnet FhirSortie.Server.dll > "$W/server.log" 2>&1) &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 1 240); do curl -fsS "$BASE/health" >/dev/null 2>&1 && break; sleep 0.25; done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git -C "$ROOT" rev-parse --short HEAD)"
GATEWAY_PID=$PID FHIRSORTIE_BENCH_CLIENT=usmp-demo:usmp-demo-secret dotnet "$BENCHDIR/FhirSortie.Bench.dll" portal-timings "$BASE" "$W/server.log" \
  "${HANDOFFS:-200}" "${EXITS:-500}" "${REQUESTS:-30}" "${WARM:-5}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
