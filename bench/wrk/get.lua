-- wrk script: GETs the URL's path; done() prints the same JSON line as post_events.lua.
local pause = 0

function init(args)
  pause = tonumber(args[1] or "0")
end

function delay()
  return pause
end

function done(summary, latency, requests)
  local p = function(q) return latency:percentile(q) / 1000.0 end
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "non_2xx": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status,
    p(50), p(90), p(99), latency.max / 1000.0))
end
