#!/bin/bash
# bench/pg-write-cost.sh SERVERDIR LABEL: what one 15-resource exit package writes on PostgreSQL, counted rather than
# timed (the same on a busy machine): WAL bytes, rows and index entries per package, over 50 packages posted one at a
# time after 10 warm-up ones, on a throwaway cluster (port 25433, folder /tmp/pg-write-cost-LABEL). SERVERDIR: a
# `dotnet publish -c Release` output; the bench console must be published in bench/.out/bench (bench/run.sh does it).
# Index entries count every index of a table for each row inserted (a partial index is counted as full).
SRV=$1; LABEL=$2; PGBIN=/usr/lib/postgresql/15/bin; BENCH="$(cd "$(dirname "$0")" && pwd)"; D=/tmp/pg-write-cost-$LABEL; rm -rf $D; mkdir -p $D/w/data; chown -R postgres $D
su postgres -c "$PGBIN/initdb -D $D/pg -A trust -U postgres" >/dev/null 2>&1
su postgres -c "$PGBIN/pg_ctl -D $D/pg -o '-p 25433 -k $D -c listen_addresses=127.0.0.1' -l $D/pg.log start" >/dev/null; sleep 2
export FhirSortie__Clients__0__ClientId=bench-usmp FhirSortie__Clients__0__Secret=bench-usmp-secret-local-only FhirSortie__Clients__0__ActorKind=Usmp FhirSortie__Clients__0__OrganizationFiness=750000010 FhirSortie__Clients__0__AllowedScopes='system/*.cruds' FHIRSORTIE_BENCH_CLIENT=bench-usmp:bench-usmp-secret-local-only FhirSortie__Storage__Provider=Postgres FhirSortie__Storage__ConnectionString="Host=127.0.0.1;Port=25433;Username=postgres;Database=postgres"
BASE=http://127.0.0.1:29912
(cd $SRV && exec env ASPNETCORE_URLS=$BASE ASPNETCORE_ENVIRONMENT=Production dotnet FhirSortie.Server.dll > $D/server.log 2>&1) & PID=$!
for i in $(seq 1 120); do curl -fsS $BASE/health >/dev/null 2>&1 && break; sleep 0.25; done
dotnet $BENCH/.out/bench/FhirSortie.Bench.dll load $BASE/fhir $D/w/data 100 4 > /dev/null
TOK=$(curl -fsS -u bench-usmp:bench-usmp-secret-local-only -d grant_type=client_credentials --data-urlencode 'scope=system/*.cruds' $BASE/auth/token | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
for n in $(seq 1 60); do python3 -c "
t=open('$D/w/data/transaction.json').read(); tok='93%06d'%$n; f=int('28502'+tok); k=97-f%97
print(t.replace('@K@','%02d'%k).replace('@@@@@@@@',tok))" > $D/w/tx$n.json; done
post() { curl -s -o /dev/null -w "%{http_code} " -H "Authorization: Bearer $TOK" -H "Content-Type: application/fhir+json" -H "Prefer: return=minimal" --data-binary @$D/w/tx$1.json $BASE/fhir; }
for n in $(seq 1 10); do post $n >/dev/null; done   # warm-up (the shared Organization/Practitioner exist after the first)
sleep 1
q() { su postgres -c "$PGBIN/psql -h 127.0.0.1 -p 25433 -At -c \"$1\"" ; }
q "SELECT pg_stat_reset();" >/dev/null
L0=$(q "SELECT pg_current_wal_lsn()")
for n in $(seq 11 60); do post $n >/dev/null; done
sleep 2
L1=$(q "SELECT pg_current_wal_lsn()")
WAL=$(q "SELECT pg_wal_lsn_diff('$L1', '$L0')")
# Index tuples inserted = sum over indexes of the relation's inserted tuples (n_tup_ins of the table times its indexes).
IDX=$(q "SELECT SUM(t.n_tup_ins * (SELECT COUNT(*) FROM pg_index i WHERE i.indrelid = t.relid)) FROM pg_stat_user_tables t")
HEAP=$(q "SELECT SUM(n_tup_ins) FROM pg_stat_user_tables")
echo "$LABEL: WAL $((WAL / 50)) bytes, $((HEAP / 50)) rows, $((IDX / 50)) index entries per package (50 packages)"
kill $PID; sleep 1; su postgres -c "$PGBIN/pg_ctl -D $D/pg stop" >/dev/null
