-- wrk script for every benchmark request. With a file, it POSTs pre-signed Stripe events
-- read from it, one per line as "<Stripe-Signature>\t<JSON body>"; with "-", it GETs the
-- path. Each of wrk's threads walks its own share of the
-- lines (line thread_index + k * threads), so no event is sent twice unless the file
-- runs out for a thread, and then it wraps: done() says so ("wrapped").
-- Arguments (after --): file, path, number of threads, pause per request in ms (0 for
-- none: closed loop; more paces each connection, for the fixed-rate run), and "once"
-- plus a path prefix to send each line exactly once: a thread whose share is sent
-- creates the file <prefix><thread index> and stops (wrk itself sleeps out its duration:
-- bench/wrk.py interrupts it once every thread has stopped). A stopped thread may still
-- send a GET /healthz or two (request() must return something) and does not count the
-- answers to the requests it had in flight: the server got those events, and their
-- latencies are left out.
-- done() prints one JSON line that bench/wrk.py reads.

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

local items = {}
local position = 0
wrapped = 0
local stride = 1
local path = "/"
local pause = 0
local once = false
local discard_first = false
local done_prefix = nil

function init(args)
  local file, threads_count = args[1], tonumber(args[3])
  path = args[2]
  pause = tonumber(args[4] or "0")
  once = args[5] == "once"
  done_prefix = args[6]
  stride = threads_count
  position = index
  -- wrk calls request() once on thread 0 before the run, to check the script, and
  -- throws that request away: it must not use up a line.
  discard_first = index == 0
  if file == "-" then
    return
  end
  for line in io.lines(file) do
    local tab = line:find("\t", 1, true)
    items[#items + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}
  end
end

function request()
  if #items == 0 then
    return wrk.format("GET", path, {["X-Forwarded-Proto"] = "https"})
  end
  if position >= #items then
    if once then
      local marker = io.open(done_prefix .. index, "w")
      marker:close()
      wrk.thread:stop()
      -- request() must return one.
      return wrk.format("GET", "/healthz", {["X-Forwarded-Proto"] = "https"})
    end
    wrapped = 1
  end
  local item = items[(position % #items) + 1]
  if discard_first then
    discard_first = false
  else
    position = position + stride
  end
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Stripe-Signature"] = item[1],
    ["X-Forwarded-Proto"] = "https",
  }, item[2])
end

function delay()
  return pause
end

function done(summary, latency, requests)
  local p = function(q) return latency:percentile(q) / 1000.0 end
  local any_wrapped = 0
  for _, thread in ipairs(threads) do
    if thread:get("wrapped") == 1 then
      any_wrapped = 1
    end
  end
  io.write(string.format(
    '{"wrapped": %d, "requests": %d, "seconds": %.6f, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "non_2xx": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    any_wrapped, summary.requests, summary.duration / 1e6, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status,
    p(50), p(90), p(99), latency.max / 1000.0))
end
