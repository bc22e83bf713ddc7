-- (b) single-match search: GET /fhir/Patient?identifier={INS system}|{random loaded INS}.
dofile("common.lua")
local values
function init(args)
  values = load_lines(args[1] .. "/ins.txt")
  math.randomseed(os.time() + thread_number * 7919)
end
function request()
  return wrk.format("GET", "/fhir/Patient?identifier=" .. values[math.random(#values)], with_auth({ ["Accept"] = "application/fhir+json" }))
end
