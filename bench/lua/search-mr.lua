-- (c) search with 2-3 matches: GET /fhir/MedicationRequest?patient={random loaded patient id}.
dofile("common.lua")
local ids
function init(args)
  ids = load_lines(args[1] .. "/patient-ids.txt")
  math.randomseed(os.time() + thread_number * 7919)
end
function request()
  return wrk.format("GET", "/fhir/MedicationRequest?patient=" .. ids[math.random(#ids)], with_auth({ ["Accept"] = "application/fhir+json" }))
end
