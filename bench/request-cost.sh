#!/usr/bin/env bash
# bench/request-cost.sh SERVERDIR LABEL [SCENARIO]: what one request costs the gateway under wrk -t2 -c10 (SQLite,
# PATIENTS=500): CPU µs, context switches, page faults, fsync + fdatasync, pwrite and pread calls per request, from
# `perf stat` on the gateway process (counts, not samples: they move far less than req/s when the machine is shared).
# SCENARIO: read (default), search-ins, search-mr, transaction, create. CONN (10): wrk connections. WARM (10) and DUR (12): seconds of warm-up and
# of measured run. Extra environment (e.g. DOTNET_gcServer=0) reaches the gateway. SERVERDIR: a `dotnet publish -c Release` output; the bench console
# must be published in bench/.out/bench (bench/run.sh does it). Needs perf (Debian package linux-perf).
# Run a "before" and an "after" build back to back: on a shared machine only the pair compares.
set -uo pipefail
SRV=$1; LABEL=$2; SC=${3:-read}; BENCH="$(cd "$(dirname "$0")" && pwd)"
W=/tmp/request-cost-$LABEL-$SC; rm -rf $W; mkdir -p $W/db $W/data
export FhirSortie__Clients__0__ClientId=bench-usmp FhirSortie__Clients__0__Secret=bench-usmp-secret-local-only \
 FhirSortie__Clients__0__ActorKind=Usmp FhirSortie__Clients__0__OrganizationFiness=750000010 FhirSortie__Clients__0__AllowedScopes='system/*.cruds'
export FHIRSORTIE_BENCH_CLIENT=bench-usmp:bench-usmp-secret-local-only
export FhirSortie__Storage__Provider=Sqlite FhirSortie__DataDirectory=$W/db
PORT=$((30000 + RANDOM % 9000)); BASE=http://127.0.0.1:$PORT
(cd $SRV && exec env ASPNETCORE_URLS=$BASE ASPNETCORE_ENVIRONMENT=Production dotnet FhirSortie.Server.dll > $W/server.log 2>&1) &
PID=$!
trap "kill $PID 2>/dev/null" EXIT
for i in $(seq 1 240); do curl -fsS $BASE/health >/dev/null 2>&1 && break; sleep 0.25; done
dotnet $BENCH/.out/bench/FhirSortie.Bench.dll load $BASE/fhir $W/data ${PATIENTS:-500} 8 > /dev/null
tok() { curl -fsS -u bench-usmp:bench-usmp-secret-local-only -d grant_type=client_credentials --data-urlencode 'scope=system/*.cruds' $BASE/auth/token | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p'; }
export FHIRSORTIE_TOKEN=$(tok)
cd $BENCH/lua
case $SC in
  transaction) S=post.lua; A=("$W/data" transaction.json /fhir 28502) ;;
  create) S=post.lua; A=("$W/data" create-patient.json /fhir/Patient 38503) ;;
  *) S=$SC.lua; A=("$W/data") ;;
esac
wrk -t2 -c${CONN:-10} -d${WARM:-10}s -s $S $BASE -- "${A[@]}" 1 >/dev/null
DUR=${DUR:-12}
wrk -t2 -c${CONN:-10} -d${DUR}s -s $S $BASE -- "${A[@]}" 2 > $W/wrk.txt &
WRK=$!
sleep 1
perf stat -x, -e task-clock,context-switches,page-faults,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64 \
  -p $PID -o $W/stat.txt -- sleep $((DUR - 2)) >/dev/null 2>&1
wait $WRK
rps=$(grep -o 'rps=[0-9]*' $W/wrk.txt | cut -d= -f2); l0=$(cut -d' ' -f1 /proc/loadavg)
# Requests during the perf window, from the run's average rate.
awk -F, -v n=$((rps * (DUR - 2))) -v label="$LABEL $SC" -v rps=$rps -v load=$l0 '
  /task-clock/ { cpu = $1 * 1000 / n } /context-switches/ { cs = $1 / n } /page-faults/ { pf = $1 / n }
  /sys_enter_fsync/ { fs += $1 / n } /sys_enter_fdatasync/ { fs += $1 / n } /sys_enter_pwrite64/ { pw = $1 / n } /sys_enter_pread64/ { pr = $1 / n }
  END { printf "%s: %d req/s, gateway CPU %.0f us/req, context switches %.2f, page faults %.2f, fsync+fdatasync %.2f, pwrite %.2f, pread %.2f per request (load %s)\n", label, rps, cpu, cs, pf, fs, pw, pr, load }' $W/stat.txt
grep -o 'p50_ms=[0-9.]* p90_ms=[0-9.]* p99_ms=[0-9.]*' $W/wrk.txt
