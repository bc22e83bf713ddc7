-- (g) search returning 20 Patients, one page: GET /fhir/Patient?_id={20 random loaded ids}&_count=50 (issue 26: the
-- audit row names each Patient returned).
dofile("common.lua")
local ids
function init(args)
  ids = load_lines(args[1] .. "/patient-ids.txt")
  math.randomseed(os.time() + thread_number * 7919)
end
function request()
  local picked = {}
  for i = 1, 20 do picked[i] = ids[math.random(#ids)] end
  return wrk.format("GET", "/fhir/Patient?_count=50&_id=" .. table.concat(picked, ","), with_auth({ ["Accept"] = "application/fhir+json" }))
end
