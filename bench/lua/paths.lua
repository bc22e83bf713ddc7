-- GET a random line of a file of request paths (bench/scale.sh: paths-*.txt written by FhirSortie.Bench scale-files).
-- Argument: the file.
dofile("common.lua")
local paths
function init(args)
  paths = load_lines(args[1])
  math.randomseed(os.time() + thread_number * 7919)
end
function request()
  return wrk.format("GET", paths[math.random(#paths)], with_auth({ ["Accept"] = "application/fhir+json" }))
end
