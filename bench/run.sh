#!/usr/bin/env bash
# Load benchmark of the gateway: publishes it in Release, runs it on 127.0.0.1 on a fresh database, loads a data
# set, runs wrk per scenario and writes the table to bench/results/latest.md. See bench/README.md.
#   bench/run.sh [sqlite|postgres|both]        (default: both)
# Knobs (environment): PATIENTS=2000 DURATION=12 WARMUP=15 THREADS=2 CONNECTIONS=10 LOADERS=8
#   SCENARIOS="read search-ins search-mr transaction create"   (also: metadata metadata-gzip baseline)   RESULTS=bench/results/latest.md
#   ROUNDS=1 (the scenario list is run that many times in a row: ratios to the baseline of the same round)
#   PG_OPTIONS="No Reset On Close=false" (appended to the gateway's Npgsql connection string)
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
MODE="${1:-both}"
case "$MODE" in sqlite|postgres|both) ;; *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;; esac
PATIENTS="${PATIENTS:-2000}"
DURATION="${DURATION:-12}"
WARMUP="${WARMUP:-15}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-10}"
LOADERS="${LOADERS:-8}"
SCENARIOS="${SCENARIOS:-read search-ins search-mr transaction create}"
RESULTS="${RESULTS:-$BENCH/results/latest.md}"
ROUNDS="${ROUNDS:-1}"

WORK="$(mktemp -d /tmp/fhirsortie-bench.XXXXXX)"
SERVER_PID=""
BASELINE_PID=""
BASELINE_RPS=""
BASELINE_CPU=""
PGDATA_DIR=""
PGBIN=""
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
stop_postgres() {
  if [ -n "$PGDATA_DIR" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
    PGDATA_DIR=""
  fi
}
stop_baseline() {
  if [ -n "$BASELINE_PID" ]; then kill "$BASELINE_PID" 2>/dev/null || true; wait "$BASELINE_PID" 2>/dev/null || true; BASELINE_PID=""; fi
}
cleanup() { stop_baseline; stop_server; stop_postgres; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime + stime of a process, in clock ticks; PostgreSQL's: summed over the postmaster's children (backends).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  [ -n "$PGDATA_DIR" ] && [ -f "$PGDATA_DIR/postmaster.pid" ] || { echo 0; return; }
  local total=0 p
  for p in $(pgrep -P "$(head -n 1 "$PGDATA_DIR/postmaster.pid")"); do total=$(( total + $(cpu_ticks "$p") )); done
  echo "$total"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  for _ in $(seq 1 50); do
    local p=$(( 20000 + RANDOM % 20000 ))
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  echo "no free port" >&2; return 1
}

# A fresh machine may have no package lists yet: update them once if the first install cannot find wrk.
command -v wrk >/dev/null || { echo "wrk not found: installing Debian's wrk"; apt-get install -y -qq wrk >/dev/null 2>&1 \
  || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }

echo "== publishing server and bench console (Release)"
dotnet publish "$ROOT/src/FhirSortie.Server/FhirSortie.Server.csproj" -c Release -o "$BENCH/.out/server" -v q --nologo >"$WORK/publish.log" 2>&1 \
  || { cat "$WORK/publish.log"; exit 1; }
dotnet publish "$BENCH/FhirSortie.Bench/FhirSortie.Bench.csproj" -c Release -o "$BENCH/.out/bench" -v q --nologo >>"$WORK/publish.log" 2>&1 \
  || { cat "$WORK/publish.log"; exit 1; }
case " $SCENARIOS " in *" baseline "*)
  dotnet publish "$BENCH/FhirSortie.Baseline/FhirSortie.Baseline.csproj" -c Release -o "$BENCH/.out/baseline" -v q --nologo >>"$WORK/publish.log" 2>&1 \
    || { cat "$WORK/publish.log"; exit 1; } ;;
esac

ROWS="$WORK/rows.tsv"
: >"$ROWS"

# The gateway runs in Production (no demo clients): it knows one bench client, whose client_credentials token
# (five minutes at most) is fetched again before each wrk run.
export FhirSortie__Clients__0__ClientId=bench-usmp
export FhirSortie__Clients__0__Secret=bench-usmp-secret-local-only
export FhirSortie__Clients__0__ActorKind=Usmp
export FhirSortie__Clients__0__OrganizationFiness=750000010
export FhirSortie__Clients__0__AllowedScopes='system/*.cruds'
export FHIRSORTIE_BENCH_CLIENT="bench-usmp:bench-usmp-secret-local-only"

fetch_token() {
  curl -fsS -u "$FHIRSORTIE_BENCH_CLIENT" -d grant_type=client_credentials --data-urlencode 'scope=system/*.cruds' "$BASE/auth/token" \
    | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p'
}

# start_server DIALECT: env for the storage must already be exported by the caller.
start_server() {
  local dialect="$1"
  PORT="$(free_port)"
  BASE="http://127.0.0.1:$PORT"
  (cd "$BENCH/.out/server" && exec env ASPNETCORE_URLS="$BASE" ASPNETCORE_ENVIRONMENT=Production \
      dotnet FhirSortie.Server.dll >"$WORK/server-$dialect.log" 2>&1) &
  SERVER_PID=$!
  for _ in $(seq 1 240); do
    if curl -fsS "$BASE/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.25
  done
  echo "server did not start; last log lines:" >&2; tail -n 30 "$WORK/server-$dialect.log" >&2; return 1
}

# The bare-Kestrel yardstick (bench/FhirSortie.Baseline): serves, at /fhir/Patient/{any id}, the bytes of a Patient
# that the gateway itself answered, so both send bodies of the same size to the same read.lua.
start_baseline() {
  local id; id="$(head -n 1 "$WORK/data/patient-ids.txt")"
  curl -fsS -H "Authorization: Bearer $(fetch_token)" -H 'Accept: application/fhir+json' -H 'Accept-Encoding: identity' \
    "$BASE/fhir/Patient/$id" -o "$WORK/baseline-patient.json"
  BASELINE_PORT="$(free_port)"
  dotnet "$BENCH/.out/baseline/FhirSortie.Baseline.dll" "http://127.0.0.1:$BASELINE_PORT" "$WORK/baseline-patient.json" \
    >"$WORK/baseline.log" 2>&1 &
  BASELINE_PID=$!
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$BASELINE_PORT/health" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  echo "baseline did not start" >&2; cat "$WORK/baseline.log" >&2; return 1
}

# Posts one copy of a template (token 00000000) to see whether the build serves the interaction at all.
probe_post() {
  local template="$1" path="$2" prefix="$3"
  local first13=$((10#${prefix}00000000))
  local key; key=$(printf '%02d' $(( 97 - first13 % 97 )))
  sed -e "s/@K@/$key/g" -e "s/@@@@@@@@/00000000/g" "$WORK/data/$template" >"$WORK/probe.json"
  curl -s -o "$WORK/probe-response.json" -w '%{http_code}' -X POST -H 'Content-Type: application/fhir+json' -H "Authorization: Bearer $(fetch_token)" \
    --data-binary @"$WORK/probe.json" "$BASE$path"
}

run_scenario() {
  local dialect="$1" name="$2"
  local script args=()
  case "$name" in
    read) script=read.lua; args=("$WORK/data") ;;
    search-ins) script=search-ins.lua; args=("$WORK/data") ;;
    search-mr) script=search-mr.lua; args=("$WORK/data") ;;
    transaction) script=post.lua; args=("$WORK/data" transaction.json /fhir 28502) ;;
    create) script=post.lua; args=("$WORK/data" create-patient.json /fhir/Patient 38503) ;;
    metadata) script=metadata.lua; args=(identity) ;;
    metadata-gzip) script=metadata.lua; args=(gzip) ;;
    baseline) script=read.lua; args=("$WORK/data") ;;
    *) echo "unknown scenario $name" >&2; return 1 ;;
  esac
  local load; load="$(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "$name" = transaction ] || [ "$name" = create ]; then
    local code; code="$(probe_post "${args[1]}" "${args[2]}" "${args[3]}")"
    if [ "$code" != 200 ] && [ "$code" != 201 ]; then
      echo "   $name: not served by this build (probe answered HTTP $code), skipped"
      printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\t-\t-\tnot served (HTTP %s)\n' "$dialect" "$name" "$load" "$code" >>"$ROWS"
      return 0
    fi
  fi
  # The baseline runs the same script against bare Kestrel; its CPU column is the baseline process's.
  local target="$BASE" pid="$SERVER_PID"
  if [ "$name" = baseline ]; then
    [ -n "$BASELINE_PID" ] || start_baseline
    target="http://127.0.0.1:$BASELINE_PORT"; pid="$BASELINE_PID"
  fi
  # Warm-up (JIT tiers, caches) with salt 1, then the measured run with salt 2: identifiers never repeat.
  FHIRSORTIE_TOKEN="$(fetch_token)"; export FHIRSORTIE_TOKEN
  (cd "$BENCH/lua" && wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$script" "$target" -- "${args[@]}" 1 >/dev/null)
  local gw0 pg0 gw1 pg1
  FHIRSORTIE_TOKEN="$(fetch_token)"; export FHIRSORTIE_TOKEN
  gw0="$(cpu_ticks "$pid")"; pg0="$(pg_ticks)"
  (cd "$BENCH/lua" && wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$target" -- "${args[@]}" 2 \
      >"$WORK/wrk-$dialect-$name.txt")
  gw1="$(cpu_ticks "$pid")"; pg1="$(pg_ticks)"
  local line; line="$(grep '^BENCHRESULT' "$WORK/wrk-$dialect-$name.txt" || true)"
  [ -n "$line" ] || { cat "$WORK/wrk-$dialect-$name.txt"; return 1; }
  field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  # CPU time per request (µs) of the gateway process and of PostgreSQL: steadier than req/s on a shared machine.
  local req; req="$(field requests)"; [ "$req" -gt 0 ] || req=1
  local tick_us=$(( 1000000 / $(getconf CLK_TCK) ))
  local gw_cpu=$(( (gw1 - gw0) * tick_us / req )) pg_cpu="-"
  [ "$dialect" = postgres ] && pg_cpu=$(( (pg1 - pg0) * tick_us / req ))
  local note=""
  [ "$(field non2xx)" != 0 ] && note="$(field non2xx) non-2xx answers!"
  [ "$(field socket_errors)" != 0 ] && note="$note $(field socket_errors) socket errors!"
  # Ratio to the last baseline measured in this dialect (issue 23 judges the gateway by these).
  # Also the baseline's CPU µs per request over this scenario's: what the req/s ratio would be if both were bound by
  # the server's CPU alone (not by the client, nor by the audit's fdatasync waiting on a disk others share).
  local ratio="-" cpu_ratio="-"
  if [ "$name" = baseline ]; then BASELINE_RPS="$(field rps)"; BASELINE_CPU="$gw_cpu"
  elif [ -n "$BASELINE_RPS" ]; then
    ratio="$(awk -v a="$(field rps)" -v b="$BASELINE_RPS" 'BEGIN { printf "%.1f%%", 100 * a / b }')"
    cpu_ratio="$(awk -v a="$BASELINE_CPU" -v b="$gw_cpu" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else printf "-" }')"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dialect" "$name" "$(field rps)" "$(field p50_ms)" "$(field p90_ms)" \
    "$(field p99_ms)" "$(field requests)" "$gw_cpu" "$pg_cpu" "$load" "$ratio" "$cpu_ratio" "$note" >>"$ROWS"
  echo "   $name: $(field rps) req/s ($ratio of baseline; CPU/req ratio $cpu_ratio), p50 $(field p50_ms) ms, p90 $(field p90_ms) ms, p99 $(field p99_ms) ms, CPU/req gateway $gw_cpu µs, PostgreSQL $pg_cpu µs $note"
}

run_dialect() {
  local dialect="$1"
  echo "== $dialect"
  rm -rf "$WORK/data" "$WORK/db"
  mkdir -p "$WORK/data" "$WORK/db"
  if [ "$dialect" = postgres ]; then
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -x "$PGBIN/initdb" ] || { echo "PostgreSQL binaries not found (apt-get install -y postgresql)" >&2; return 1; }
    local pgroot="$WORK/pg"; mkdir -p "$pgroot"; [ "$(id -u)" -eq 0 ] && chown postgres "$pgroot" && chmod 755 "$WORK"
    local pgport; pgport="$(free_port)"
    as_pg "$PGBIN/initdb" -D "$pgroot/data" -A trust -U postgres >/dev/null
    PGDATA_DIR="$pgroot/data"
    as_pg "$PGBIN/pg_ctl" -D "$pgroot/data" -l "$pgroot/server.log" \
      -o "-p $pgport -k $pgroot -c listen_addresses=127.0.0.1 -c max_connections=200" -w start >/dev/null
    export FhirSortie__Storage__Provider=Postgres
    export FhirSortie__Storage__ConnectionString="Host=127.0.0.1;Port=$pgport;Username=postgres;Database=postgres;Maximum Pool Size=50${PG_OPTIONS:+;$PG_OPTIONS}"
  else
    export FhirSortie__Storage__Provider=Sqlite
    export FhirSortie__DataDirectory="$WORK/db"
  fi
  start_server "$dialect"
  echo "   server on $BASE (pid $SERVER_PID); loading $PATIENTS patients with $LOADERS concurrent clients"
  dotnet "$BENCH/.out/bench/FhirSortie.Bench.dll" load "$BASE/fhir" "$WORK/data" "$PATIENTS" "$LOADERS" | sed 's/^/   /'
  BASELINE_RPS=""; BASELINE_CPU=""
  for round in $(seq 1 "$ROUNDS"); do
    [ "$ROUNDS" -gt 1 ] && echo "   -- round $round of $ROUNDS"
    for s in $SCENARIOS; do run_scenario "$dialect" "$s"; done
  done
  stop_baseline
  stop_server
  stop_postgres
  unset FhirSortie__Storage__Provider FhirSortie__Storage__ConnectionString FhirSortie__DataDirectory
}

case "$MODE" in
  sqlite) run_dialect sqlite ;;
  postgres) run_dialect postgres ;;
  both) run_dialect sqlite; run_dialect postgres ;;
esac

mkdir -p "$(dirname "$RESULTS")"
{
  echo "# FhirSortie load benchmark"
  echo
  echo "- when: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(free -g | awk '/^Mem:/ {print $2}') GB RAM, $(dotnet --version 2>/dev/null | sed 's/^/.NET SDK /')"
  echo "- load: wrk -t$THREADS -c$CONNECTIONS, ${WARMUP} s warm-up then ${DURATION} s measured, on the same machine; $PATIENTS patients loaded"
  echo "- CPU µs/req: CPU time the gateway (and PostgreSQL's backends) spent per request during the measured run"
  echo "- 'load avg' is /proc/loadavg (1, 5, 15 min) just before the scenario: figures taken while others build are noisy"
  echo
  echo "- 'of baseline': req/s over the req/s of the last 'baseline' row above it (bare Kestrel serving the same Patient bytes);"
  echo "  'CPU of baseline': that baseline's server CPU µs/req over this row's (the req/s ratio if only the server's CPU bounded both)"
  echo
  echo "| dialect | scenario | req/s | p50 ms | p90 ms | p99 ms | requests | gateway CPU µs/req | PostgreSQL CPU µs/req | load avg | of baseline | CPU of baseline | note |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }' "$ROWS"
  echo
  echo "Scenarios: read = GET Patient/{id}; search-ins = Patient?identifier={INS} (1 match);"
  echo "search-mr = MedicationRequest?patient={id} (2-3 matches); transaction = 15-resource exit package;"
  echo "create = POST Patient. baseline = bare Kestrel, same read.lua."
  echo "Targets (issue 23, ratios in one run): read >= 25% of baseline, search-ins >= 15%, metadata >= read."
} >"$RESULTS"
echo
cat "$RESULTS"
