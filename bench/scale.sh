#!/usr/bin/env bash
# Scale bench (issue 23 §1): measures a data set built by `FhirSortie.Bench scale-load/scale-clone/scale-audit` with the
# published gateway, as bench/run.sh does (wrk on 127.0.0.1), and appends one row per scenario to $RESULTS (TSV).
#   bench/scale.sh sqlite   <sqlite-data-dir>          <out-dir> <label> [scenarios...]
#   bench/scale.sh postgres <npgsql-connection-string> <out-dir> <label> [scenarios...]
# <out-dir> is the loader's (people.tsv). Knobs: DURATION=10 WARMUP=8 CONNECTIONS=10 THREADS=2 SALT=1 (one digit; use
# another for each run on the same database: the transaction scenario's identifiers are salted), SERVER_DIR (a
# published gateway; default bench/.out/server, published when missing), RESULTS (default <out-dir>/results.tsv).
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
DIALECT="$1"; STORAGE="$2"; OUT="$3"; LABEL="$4"; shift 4
SCENARIOS="${*:-read search-ins search-mr patient-context everything csapa-mr csapa-broad task-inbox audit-patient access-report transaction}"
DURATION="${DURATION:-10}"; WARMUP="${WARMUP:-8}"; CONNECTIONS="${CONNECTIONS:-10}"; THREADS="${THREADS:-2}"; SALT="${SALT:-1}"
SERVER_DIR="${SERVER_DIR:-$BENCH/.out/server}"
RESULTS="${RESULTS:-$OUT/results.tsv}"
BENCH_DLL="$BENCH/FhirSortie.Bench/bin/Release/net10.0/FhirSortie.Bench.dll"
SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

[ -f "$SERVER_DIR/FhirSortie.Server.dll" ] || dotnet publish "$ROOT/src/FhirSortie.Server/FhirSortie.Server.csproj" -c Release -o "$SERVER_DIR" -v q --nologo
[ -f "$BENCH_DLL" ] || dotnet build "$BENCH/FhirSortie.Bench" -c Release -v q --nologo
dotnet "$BENCH_DLL" scale-files "$STORAGE" "$OUT"
# shellcheck disable=SC1091
source "$OUT/clients.env"
if [ "$DIALECT" = postgres ]; then
  export FhirSortie__Storage__Provider=Postgres FhirSortie__Storage__ConnectionString="$STORAGE;Maximum Pool Size=50"
  export FhirSortie__DataDirectory="$OUT/gateway-run"
else
  export FhirSortie__Storage__Provider=Sqlite FhirSortie__DataDirectory="$STORAGE"
fi
mkdir -p "$OUT/gateway-run"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=""; for _ in $(seq 1 50); do p=$(( 20000 + RANDOM % 20000 )); if port_free "$p"; then PORT=$p; break; fi; done
BASE="http://127.0.0.1:$PORT"
t0=$(date +%s%N)
(cd "$SERVER_DIR" && exec env ASPNETCORE_URLS="$BASE" ASPNETCORE_ENVIRONMENT=Production Serilog__MinimumLevel__Default=Warning \
   dotnet FhirSortie.Server.dll >"$OUT/server-$LABEL.log" 2>&1) &
SERVER_PID=$!
until curl -fsS "$BASE/health" >/dev/null 2>&1; do
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$OUT/server-$LABEL.log"; exit 1; }
  sleep 0.05
done
startup_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "== $LABEL ($DIALECT): gateway answered /health after $startup_ms ms (load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\t%s\tstartup\t-\t-\t%s\t-\t-\t%s\t\n' "$LABEL" "$DIALECT" "$startup_ms" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"

token() { # client scope
  curl -fsS -u "$1:$1-secret-local-only" -d grant_type=client_credentials --data-urlencode "scope=$2" "$BASE/auth/token" \
    | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p'
}
USMP=(scale-usmp-00 'system/*.cruds'); CSAPA=(scale-csapa-0 'system/*.rs system/Task.u')
AUDITOR=(scale-auditor 'system/AuditEvent.rs system/Provenance.rs system/Patient.rs')

for s in $SCENARIOS; do
  case "$s" in
    read|search-ins|search-mr|patient-context|everything|transaction) who=("${USMP[@]}") ;;
    csapa-mr|csapa-broad|task-inbox) who=("${CSAPA[@]}") ;;
    audit-patient|access-report) who=("${AUDITOR[@]}") ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
  if [ "$s" = transaction ]; then script=post.lua; warm=("$OUT/wrk" transaction.json /fhir 28502 "$SALT"); measured=("$OUT/wrk" transaction.json /fhir 28502 "$((SALT + 1))")
  else script=paths.lua; warm=("$OUT/wrk/paths-$s.txt"); measured=("$OUT/wrk/paths-$s.txt"); fi
  FHIRSORTIE_TOKEN="$(token "${who[0]}" "${who[1]}")"; export FHIRSORTIE_TOKEN
  # One request first: a scenario that answers an error is reported, not timed.
  first="$(head -n 1 "$OUT/wrk/paths-$s.txt" 2>/dev/null || true)"
  if [ -n "$first" ] && [ "$s" != transaction ]; then
    code="$(curl -s -o "$OUT/probe-$s.json" -w '%{http_code}' -H "Authorization: Bearer $FHIRSORTIE_TOKEN" -H 'Accept: application/fhir+json' "$BASE$first")"
    [ "$code" = 200 ] || { echo "   $s: probe answered $code: $(head -c 300 "$OUT/probe-$s.json")"; }
  fi
  (cd "$BENCH/lua" && wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 20s -s "$script" "$BASE" -- "${warm[@]}" >/dev/null)
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  gw0=$(awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat")
  line="$(cd "$BENCH/lua" && wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 20s --latency -s "$script" "$BASE" -- "${measured[@]}" | grep '^BENCHRESULT')"
  gw1=$(awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat")
  field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  req="$(field requests)"; [ "$req" -gt 0 ] || req=1
  cpu=$(( (gw1 - gw0) * (1000000 / $(getconf CLK_TCK)) / req ))
  note=""; [ "$(field non2xx)" != 0 ] && note="$(field non2xx) non-2xx!"
  [ "$(field socket_errors)" != 0 ] && note="$note $(field socket_errors) socket errors/timeouts!"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$LABEL" "$DIALECT" "$s" "$(field rps)" "$(field p50_ms)" "$(field p99_ms)" "$req" "$cpu" "$load" "$note" >>"$RESULTS"
  echo "   $s: $(field rps) req/s, p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, gateway CPU $cpu µs/req, load $load $note"
done
