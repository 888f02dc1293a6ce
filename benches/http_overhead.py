#!/usr/bin/env python3
"""What watching a job over HTTP costs: alternated pairs of
`weir run JOB --mode MODE --parallelism 2 --json`, one with
`--http 127.0.0.1:18182` while a client GETs /metrics, /api/v1/job and
/api/v1/metrics every second (a Prometheus scrape and an open UI), one
without; compares the runs' own `elapsed`, pair by pair.

    python3 benches/http_overhead.py target/release/weir examples/bench_window.toml pipelined 12

Standard library only.
"""
import json, subprocess, statistics, sys, threading, time, urllib.request
BIN, JOB, MODE, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(http):
    cmd = [BIN, "run", JOB, "--mode", MODE, "--parallelism", "2", "--json"]
    if http:
        cmd += ["--http", "127.0.0.1:18182"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stop = False
    def scrape():
        while not stop:
            for path in ("/metrics", "/api/v1/job", "/api/v1/metrics"):
                try: urllib.request.urlopen("http://127.0.0.1:18182" + path, timeout=1).read()
                except Exception: pass
            time.sleep(1)
    t = threading.Thread(target=scrape)
    if http: t.start()
    out = p.communicate()[0]
    stop = True
    if http: t.join()
    return json.loads(out)["elapsed"]
ratios, a, b = [], [], []
for i in range(N):
    x = run(True); y = run(False)
    a.append(x); b.append(y); ratios.append(x / y)
print(f"{MODE}: with --http (scraped every 1 s) median {statistics.median(a):.3f} s, without {statistics.median(b):.3f} s, "
      f"paired ratio median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, {N} pairs)")
