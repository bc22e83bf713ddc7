-- (d) transactions and (e) creates: POST a template with fresh identifiers each time.
-- Arguments: data folder, template file name, path to post to, INS prefix (5 digits), salt (one digit).
dofile("common.lua")
local template, path, prefix, salt
local n = 0
function init(args)
  template = read_file(args[1] .. "/" .. args[2])
  path = args[3]
  prefix = args[4]
  salt = tonumber(args[5])
end
function request()
  n = n + 1
  return wrk.format("POST", path, with_auth({
    ["Content-Type"] = "application/fhir+json",
    ["Accept"] = "application/fhir+json",
    ["Prefer"] = "return=minimal",
  }), instantiate(template, prefix, salt, thread_number, n))
end
