-- wrk script for bench/compare: optional POST body and Connection: close,
-- and a machine-readable summary line (latencies in microseconds).
--   BENCH_BODY=<bytes>  send POST with a body of that many bytes
--   BENCH_CLOSE=1       send "Connection: close" (a new connection per request;
--                       wrk reconnects when the server closes)
local body_size = tonumber(os.getenv("BENCH_BODY") or "0") or 0
if body_size > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("x", body_size)
  wrk.headers["Content-Type"] = "application/octet-stream"
end
if os.getenv("BENCH_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
