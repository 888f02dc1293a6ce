#!/usr/bin/env python3
"""DuckDB peer: run_duckdb.py DATA_DIR {w1,w2} [OUT.parquet] [--memory-limit 64MB]
-> one JSON line with checksum.
With OUT, the windows (w1) or joined rows (w2) are also written to OUT as Parquet
(the same work as a dataflow job with a Parquet sink); the checksum is then read back.
--memory-limit sets DuckDB's memory_limit (it spills to a temporary directory beyond it).
(A copy of ../shared/bench/peers/run_duckdb.py with the memory-limit option.)"""
import argparse, json, time
import duckdb

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("workload", choices=["w1", "w2"])
ap.add_argument("out", nargs="?")
ap.add_argument("--memory-limit")
a = ap.parse_args()
d, w = a.data, a.workload
con = duckdb.connect()
con.execute("SET threads = 2")
if a.memory_limit:
    con.execute(f"SET memory_limit = '{a.memory_limit}'")

WIN = """SELECT vehicle_id, time_bucket(INTERVAL 1 SECOND, event_time) AS ws,
                count(*) AS cnt, avg(speed_kmh) AS avg_s, max(speed_kmh) AS max_s
         FROM read_parquet('{d}/{t}/*.parquet') GROUP BY vehicle_id, ws"""
Q = {
    # W1: 1 s tumbling windows per vehicle over obd
    "w1": f"""SELECT count(*), sum(cnt), sum(avg_s), sum(max_s)
              FROM ({WIN.format(d=d, t='obd')})""",
    # W2: join 1 s per-vehicle averages of obd and app, avg |diff|
    "w2": f"""SELECT count(*), avg(abs(o.avg_s - a.avg_s))
              FROM ({WIN.format(d=d, t='obd')}) o
              JOIN ({WIN.format(d=d, t='app')}) a USING (vehicle_id, ws)""",
}
ROWS = {
    "w1": WIN.format(d=d, t="obd"),
    "w2": f"""SELECT vehicle_id, ws, o.avg_s AS obd_s, a.avg_s AS app_s, o.avg_s - a.avg_s AS d
              FROM ({WIN.format(d=d, t='obd')}) o
              JOIN ({WIN.format(d=d, t='app')}) a USING (vehicle_id, ws)""",
}
out = a.out
t0 = time.perf_counter()
if out:
    con.execute(f"COPY ({ROWS[w]}) TO '{out}' (FORMAT parquet)")
dt = time.perf_counter() - t0
if out:
    chk = {"w1": "SELECT count(*), sum(cnt), sum(avg_s), sum(max_s) FROM read_parquet('{o}')",
           "w2": "SELECT count(*), avg(abs(d)) FROM read_parquet('{o}')"}[w]
    row = con.execute(chk.format(o=out)).fetchone()
else:
    row = con.execute(Q[w]).fetchone()
    dt = time.perf_counter() - t0
print(json.dumps({"engine": "duckdb", "workload": w, "mode": "batch" + ("+write" if out else ""),
                  "memory_limit": a.memory_limit,
                  "result": [float(x) for x in row], "query_s": round(dt, 3)}))
