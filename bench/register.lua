-- wrk script for bench/register_bench.py: every request registers a new device,
-- PUT /v1/devices/{id} with a token of its own, on wrk's keep-alive connections.
-- The bench sets PUSHRELAY_BENCH_KEY, _PREFIX and _APP in wrk's environment.

local key = os.getenv("PUSHRELAY_BENCH_KEY")
local prefix = os.getenv("PUSHRELAY_BENCH_PREFIX")
local app = os.getenv("PUSHRELAY_BENCH_APP")
-- Several wrk processes at once (bench/scale_bench.py) give each its own salt, so
-- that their tokens differ too.
local salt = tonumber(os.getenv("PUSHRELAY_BENCH_SALT") or "0")
-- Globals, so that done() can read each thread's with thread:get().
counter = 0
thread_id = 0
created = 0
other = 0
local threads = {}

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   wrk.headers["Authorization"] = "Bearer " .. key
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local id = string.format("%s-w%d-%d", prefix, thread_id, counter)
   local token = string.format("%032x%08x%016x%08x", thread_id, counter, 0, salt)
   local body = string.format(
      '{"client_id":"%s-w%d","platform":"apns","app_id":"%s","token":"%s"}',
      prefix, thread_id, app, token)
   return wrk.format("PUT", "/v1/devices/" .. id, nil, body)
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local c, o = 0, 0
   for _, t in ipairs(threads) do
      c = c + t:get("created")
      o = o + t:get("other")
   end
   io.write(string.format("wrk: created %d other %d p50_us %d p99_us %d\n", c, o,
      latency:percentile(50), latency:percentile(99)))
end
