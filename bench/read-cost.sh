#!/usr/bin/env bash
# bench/read-cost.sh SERVERDIR LABEL: gateway CPU µs per read and syscalls per read of one published build
# (SQLite, 300 patients; builds from before the audit store need materialisation off to compare, which the setting below does). SERVERDIR: a `dotnet publish -c Release` output; the bench
# console must be published in bench/.out/bench (bench/run.sh does it). NOSTRACE=1 skips the syscall count.
# Run a "before" and an "after" build back to back: on a shared machine only the pair compares.
set -uo pipefail
SRV=$1; LABEL=$2; BENCH="$(cd "$(dirname "$0")" && pwd)"
W=/tmp/read-cost-$LABEL; rm -rf $W; mkdir -p $W/db $W/data
export FhirSortie__Clients__0__ClientId=bench-usmp FhirSortie__Clients__0__Secret=bench-usmp-secret-local-only \
 FhirSortie__Clients__0__ActorKind=Usmp FhirSortie__Clients__0__OrganizationFiness=750000010 FhirSortie__Clients__0__AllowedScopes='system/*.cruds'
export FHIRSORTIE_BENCH_CLIENT=bench-usmp:bench-usmp-secret-local-only
export FhirSortie__Storage__Provider=Sqlite FhirSortie__DataDirectory=$W/db FhirSortie__Audit__Materialise=false
PORT=$((30000 + RANDOM % 9000)); BASE=http://127.0.0.1:$PORT
(cd $SRV && exec env ASPNETCORE_URLS=$BASE ASPNETCORE_ENVIRONMENT=Production dotnet FhirSortie.Server.dll > $W/server.log 2>&1) &
PID=$!
trap "kill $PID 2>/dev/null" EXIT
for i in $(seq 1 240); do curl -fsS $BASE/health >/dev/null 2>&1 && break; sleep 0.25; done
dotnet $BENCH/.out/bench/FhirSortie.Bench.dll load $BASE/fhir $W/data ${PATIENTS:-300} 8 | tail -1
tok() { curl -fsS -u bench-usmp:bench-usmp-secret-local-only -d grant_type=client_credentials --data-urlencode 'scope=system/*.cruds' $BASE/auth/token | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p'; }
export FHIRSORTIE_TOKEN=$(tok)
cd $BENCH/lua
wrk -t2 -c10 -d5s -s read.lua $BASE -- $W/data 1 >/dev/null
ticks() { awk '{ print $14 + $15 }' /proc/$PID/stat; }
t0=$(ticks); l0=$(cut -d' ' -f1 /proc/loadavg)
wrk -t2 -c10 -d${DUR:-10}s -s read.lua $BASE -- $W/data 2 > $W/wrk.txt
t1=$(ticks)
req=$(grep -o 'requests=[0-9]*' $W/wrk.txt | cut -d= -f2); rps=$(grep -o 'rps=[0-9]*' $W/wrk.txt | cut -d= -f2)
cpu=$(( (t1 - t0) * (1000000 / $(getconf CLK_TCK)) / req ))
if [ -z "${NOSTRACE:-}" ]; then
  strace -c -f -p $PID -o $W/strace.txt >/dev/null 2>&1 &
  SP=$!; sleep 1
  wrk -t2 -c10 -d5s -s read.lua $BASE -- $W/data 3 > $W/wrk-s.txt
  kill -INT $SP; wait $SP 2>/dev/null
  sreq=$(grep -o 'requests=[0-9]*' $W/wrk-s.txt | cut -d= -f2)
  awk -v n=$sreq 'NR>2 && $NF!="total" && $4 ~ /^[0-9]+$/ { printf "%s=%.1f ", $NF, $4/n } END { print "" }' $W/strace.txt > $W/sys.txt
fi
echo "$LABEL: $rps req/s, $req requests, gateway CPU ${cpu} us/read, load $l0; syscalls/read: $(cat $W/sys.txt 2>/dev/null)"
