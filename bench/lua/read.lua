-- (a) read: GET /fhir/Patient/{random loaded id}. Argument: the data folder written by the loader.
dofile("common.lua")
local ids
function init(args)
  ids = load_lines(args[1] .. "/patient-ids.txt")
  math.randomseed(os.time() + thread_number * 7919)
end
function request()
  return wrk.format("GET", "/fhir/Patient/" .. ids[math.random(#ids)], with_auth({ ["Accept"] = "application/fhir+json" }))
end
