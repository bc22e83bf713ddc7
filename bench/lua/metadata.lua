-- (f) metadata: GET /fhir/metadata (no token needed; clients poll it). Argument 1: the Accept-Encoding to send
-- ("identity" for none, "gzip" as most HTTP clients send). Hard to compare with a read otherwise: the whole
-- CapabilityStatement is some 480 KB of JSON.
dofile("common.lua")
local encoding
function init(args)
  encoding = args[1] or "identity"
end
function request()
  return wrk.format("GET", "/fhir/metadata", { ["Accept"] = "application/fhir+json", ["Accept-Encoding"] = encoding })
end
