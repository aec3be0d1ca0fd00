-- load.lua - wrk script for bench/run.sh: POSTs rows of the `judgments` schema.
--
--   ROWS=100 DATASET=bench wrk -t2 -c64 -d10s --latency -s bench/load.lua http://127.0.0.1:18080
--
-- Environment:
--   ROWS       rows per request (default 100). ROWS=100 sends NDJSON
--              (application/x-ndjson); ROWS=1 sends one JSON object
--              (application/json), a "single-row POST".
--   DATASET    dataset name in the URL (default bench).
--   CASE_BASE  first case number (default 0). Every row gets its own case
--              number: thread t of T uses CASE_BASE + t*floor(1e7/T) + counter,
--              so rows stay unique across threads (up to 1e7/T rows a thread,
--              then they wrap; the pattern ^CASE-[0-9]{7}$ allows 1e7 numbers).
--   THREADS    wrk's -t, to split the case-number space (default 2).
--   BAD_EVERY  if N > 0, every Nth row is invalid (a negative amount), to
--              load the rejection path (DLQ); default 0: all rows valid.
--   PACE_MS    if N > 0, each connection waits N ms after an answer before
--              its next request (wrk's delay()): a paced load below what the
--              server can take, so latency is the time a request spends in
--              the server rather than in a queue the load itself keeps full;
--              default 0: each connection sends again as soon as answered.
--
-- Every body is built per request: case numbers, amounts, dates (real
-- calendar dates, leap days included), status and notes vary, and a row is
-- ~200 bytes. Answers are checked: 2xx bodies' "accepted" counts are summed;
-- any other status is counted as bad. done() prints one line
--   WRKJSON {...}
-- with requests, accepted rows, bad answers, socket errors and latency
-- percentiles (microseconds), which run.sh parses.

local ROWS = tonumber(os.getenv("ROWS") or "100")
local DATASET = os.getenv("DATASET") or "bench"
local CASE_BASE = tonumber(os.getenv("CASE_BASE") or "0")
local NTHREADS = tonumber(os.getenv("THREADS") or "2")
local BAD_EVERY = tonumber(os.getenv("BAD_EVERY") or "0")
local PACE_MS = tonumber(os.getenv("PACE_MS") or "0")

if PACE_MS > 0 then
   function delay() return PACE_MS end
end

local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local words = { "appeal", "granted", "denied", "remanded", "hearing", "motion", "filed",
   "counsel", "plaintiff", "defendant", "judgment", "damages", "costs", "order", "stay",
   "review", "district", "circuit", "evidence", "witness", "settled", "dismissed", "trial",
   "verdict", "sentence", "claim", "contract", "tort", "estate", "lien" }
local statuses = { "open", "closed", "pending" }
local mdays = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local NSUF = 997 -- a prime, so suffix choice and case number do not move in step
local suffixes = {}
local counter, stride = 0, 0
local prefix = '{"case_number":"CASE-'

function init(args)
   tid = tid or 0
   math.randomseed(12345 + tid * 7919)
   stride = math.floor(10000000 / NTHREADS)
   for i = 1, NSUF do
      local y = 1990 + math.random(0, 35)
      local m = math.random(1, 12)
      local dmax = mdays[m]
      if m == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then dmax = 29 end
      local d = math.random(1, dmax)
      local notes = {}
      local len = 0
      -- notes of 86 to 106 bytes: a row ends up at ~200 bytes
      local target = math.random(86, 106)
      while len < target do
         local w = words[math.random(#words)]
         notes[#notes + 1] = w
         len = len + #w + 1
      end
      local n = table.concat(notes, " "):sub(1, target)
      suffixes[i] = string.format('","amount":%d.%02d,"filed_date":"%04d-%02d-%02d","status":"%s","notes":"%s"}',
         math.random(0, 2000000), math.random(0, 99), y, m, d, statuses[math.random(3)], n)
   end
   wrk.method = "POST"
   wrk.path = "/api/v1/datasets/" .. DATASET .. "/events"
   if ROWS == 1 then
      wrk.headers["Content-Type"] = "application/json"
   else
      wrk.headers["Content-Type"] = "application/x-ndjson"
   end
   accepted, bad, answered = 0, 0, 0
end

local fmt, concat = string.format, table.concat
local parts = {}

function request()
   local base = CASE_BASE + tid * stride
   for i = 1, ROWS do
      local n = (base + counter) % 10000000
      if BAD_EVERY > 0 and counter % BAD_EVERY == BAD_EVERY - 1 then
         parts[i] = prefix .. fmt("%07d", n) .. '","amount":-1,"filed_date":"2024-01-01"}'
      else
         parts[i] = prefix .. fmt("%07d", n) .. suffixes[(counter % NSUF) + 1]
      end
      counter = counter + 1
   end
   local body
   if ROWS == 1 then
      body = parts[1]
   else
      body = concat(parts, "\n", 1, ROWS) .. "\n"
   end
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   answered = answered + 1
   if status >= 200 and status < 300 then
      local a = body:match('"accepted":(%d+)')
      accepted = accepted + (tonumber(a) or 0)
   else
      bad = bad + 1
      if bad <= 3 then io.stderr:write("load.lua: status " .. status .. ": " .. body:sub(1, 300) .. "\n") end
   end
end

function done(summary, latency, requests)
   local acc, b, ans = 0, 0, 0
   for _, t in ipairs(threads) do
      acc = acc + (t:get("accepted") or 0)
      b = b + (t:get("bad") or 0)
      ans = ans + (t:get("answered") or 0)
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      'WRKJSON {"rows_per_request":%d,"duration_s":%.3f,"requests":%d,"answered":%d,"accepted":%d,' ..
      '"bad_status":%d,"socket_errors":%d,"timeouts":%d,"req_per_s":%.1f,"rows_per_s":%.1f,' ..
      '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d}\n',
      ROWS, secs, summary.requests, ans, acc, b, e.connect + e.read + e.write, e.timeout,
      summary.requests / secs, acc / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
