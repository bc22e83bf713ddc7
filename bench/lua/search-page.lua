-- (f) search with 20-40 matches of 12 patients, one page: GET /fhir/MedicationRequest?patient={12 random ids, comma = OR}&_count=50.
-- What an audit row naming every patient of the answer costs (issue 26): the matches are not Patients, so their
-- patients come from the Patient compartment.
dofile("common.lua")
local ids
function init(args)
  ids = load_lines(args[1] .. "/patient-ids.txt")
  math.randomseed(os.time() + thread_number * 7919)
end
function request()
  local picked = {}
  for i = 1, 12 do picked[i] = ids[math.random(#ids)] end
  return wrk.format("GET", "/fhir/MedicationRequest?_count=50&patient=" .. table.concat(picked, ","), with_auth({ ["Accept"] = "application/fhir+json" }))
end
