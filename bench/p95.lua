-- wrk reporter: one line of figures the runner parses.
done = function(summary, latency, requests)
  io.write(string.format("FIGURES rps=%.1f p50=%.3f p95=%.3f p99=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
