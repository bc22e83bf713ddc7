#!/usr/bin/env bash
# The README walkthrough, runnable: against a gateway in DEMO MODE loaded with `seed-demo`.
#   docs/walkthrough.sh [FHIR server origin, default http://127.0.0.1:8080]
# Needs curl and jq. Exits non-zero at the first answer that is not the expected one
# (tests/FhirSortie.IntegrationTests/DemoWalkthroughTests.cs runs it against the real server process).
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

token() { curl -sf -u "$1:$1-secret" -d grant_type=client_credentials --data-urlencode "scope=$2" "$BASE/auth/token" | jq -r .access_token; }
get() { curl -sf -H "Authorization: Bearer $1" "$BASE/fhir/$2"; }
status() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$BASE/fhir/$2"; }
expect() { if [ "$1" != "$2" ]; then echo "FAILED: $3: expected $2, got $1" >&2; exit 1; fi; echo "ok: $3 ($1)"; }

echo "== 1. The USMP gets a token and posts an exit package (a transaction; posting it again creates nothing)"
USMP=$(token usmp-demo 'system/*.cruds')
curl -sf -H "Authorization: Bearer $USMP" -H 'Content-Type: application/fhir+json' \
  --data-binary @"$ROOT/conformance/scenarios/exit-package-transaction.json" "$BASE/fhir" \
  | jq -r '.entry[].response.status' | sort | uniq -c

echo "== 2. The seeded person leaving in two days (demo INS), CSAPA A named by consent for 6 months"
P=$(get "$USMP" 'Patient?identifier=urn:oid:1.2.250.1.213.1.4.11|186037505612307' | jq -r '.entry[0].resource.id')
expect "$([ -n "$P" ] && [ "$P" != null ] && echo found)" found "demo patient Patient/$P"

echo "== 3. CSAPA A pulls the active prescriptions (dose, prescriber); CSAPA B, not named, sees nothing"
CSAPA=$(token csapa-demo 'system/*.rs')
get "$CSAPA" "MedicationRequest?patient=$P&status=active&_include=MedicationRequest:requester" \
  | jq -r '.entry[].resource | select(.resourceType == "MedicationRequest")
           | "\(.medicationCodeableConcept.coding[0].display): \(.dosageInstruction[0].text) (\(.dispenseRequest.expectedSupplyDuration.value // "-") days)"'
expect "$(get "$CSAPA" "MedicationRequest?patient=$P&status=active" | jq .total)" 4 "CSAPA A sees the 4 active prescriptions"
CSAPA2=$(token csapa2-demo 'system/*.rs')
expect "$(get "$CSAPA2" "MedicationRequest?patient=$P" | jq .total)" 0 "CSAPA B sees none"

echo "== 4. The telemedicine context in one call (the launched app makes the same call with its launch token)"
get "$USMP" "Patient/$P/\$patient-context" \
  | jq -r '.entry[] | "\(.search.mode)\t\(.resource.resourceType)/\(.resource.id)"'
expect "$(get "$USMP" "Patient/$P/\$patient-context" | jq '[.entry[] | select(.resource.resourceType == "MedicationRequest")] | length')" 4 "context holds the active prescriptions"

echo "== 5. The SPIP sees the appointment (date, place, status), never the letter nor a prescription"
SPIP=$(token spip-demo 'system/Patient.rs system/Appointment.rs system/DocumentReference.rs')
get "$SPIP" "Appointment?patient=$P" | jq -r '.entry[].resource | "\(.start) \(.status) \(.description)"'
LETTER=$(get "$USMP" "DocumentReference?patient=$P&type=http://loinc.org|11490-0" | jq -r '.entry[0].resource.id')
expect "$(status "$SPIP" "DocumentReference/$LETTER")" 404 "SPIP reads the liaison letter"
expect "$(status "$SPIP" "MedicationRequest?patient=$P")" 403 "SPIP searches prescriptions"

echo "== 6. The auditor (DPO) lists who saw the person, refusals included"
AUDIT=$(token audit-demo 'system/AuditEvent.rs system/Provenance.rs')
# Each request's audit record is committed before its answer, so the AuditEvents are there already; the loop only
# tolerates a slow machine.
for _ in $(seq 1 30); do
  SEEN=$(get "$AUDIT" "AuditEvent?patient=$P&_count=200" | jq -r '[.entry[]?.resource.agent[0].who.identifier.value] | unique | join(" ")')
  case "$SEEN" in *csapa2-demo*spip-demo*) break ;; esac
  sleep 0.5
done
get "$AUDIT" "AuditEvent?patient=$P&_sort=-date&_count=200" \
  | jq -r '.entry[].resource | "\(.recorded)\t\(.agent[0].who.identifier.value)\t\(.subtype[0].code // .action)\toutcome \(.outcome)"'
expect "$(case "$SEEN" in *csapa-demo*csapa2-demo*spip-demo*) echo listed ;; *) echo "$SEEN" ;; esac)" listed "CSAPA A, CSAPA B and SPIP are in the audit trail"
