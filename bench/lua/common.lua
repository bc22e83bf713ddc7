-- Shared by the wrk scripts of bench/run.sh. Each wrk thread has its own Lua state: setup() numbers the
-- threads so that generated identifiers never collide between threads; done() prints one machine-readable
-- line that run.sh turns into the results table.
local threads = {}

-- Every /fhir request needs an access token: run.sh fetches a client_credentials token (it lives at most 300 s)
-- before each wrk run and passes it in FHIRSORTIE_TOKEN.
local bearer = os.getenv("FHIRSORTIE_TOKEN")
function with_auth(headers)
  if bearer and #bearer > 0 then headers["Authorization"] = "Bearer " .. bearer end
  return headers
end
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

function load_lines(path)
  local lines = {}
  local file = assert(io.open(path, "r"), "cannot open " .. path)
  for line in file:lines() do
    if #line > 0 then lines[#lines + 1] = line end
  end
  file:close()
  assert(#lines > 0, path .. " is empty")
  return lines
end

function read_file(path)
  local file = assert(io.open(path, "rb"), "cannot open " .. path)
  local text = file:read("*a")
  file:close()
  return text
end

-- Body templates hold "@@@@@@@@" (8 digits per request) and "@K@" (key of the INS prefix .. token).
-- The token is thread number (1 digit) .. counter (7 digits): unique within a run of up to 9 threads.
-- A per-run salt (first argument digit) keeps runs against the same database apart.
function instantiate(template, ins_prefix, salt, thread_no, n)
  local token = string.format("%d%d%06d", salt % 10, thread_no % 10, n % 1000000)
  local first13 = tonumber(ins_prefix .. token)
  local key = 97 - math.fmod(first13, 97)
  local body = template:gsub("@K@", string.format("%02d", key))
  body = body:gsub("@@@@@@@@", token)
  return body
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("BENCHRESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
