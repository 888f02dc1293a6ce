#!/usr/bin/env python3
"""memory_goals.py: the memory-and-spill goal table (weir issue "memory and spill").

Runs each job in both modes at each budget as a fresh process, samples its peak
VmRSS and RssAnon every 10 ms, reads weir's --json metrics (time, pool peak,
spilled bytes) and checks the output against the unconstrained run of the same
mode (DuckDB: rows equal after rounding floats to 6 significant digits, or, where
rounding splits two nearly equal floats, paired by their other columns with floats
within a relative 1e-9).

    python3 memory_goals.py --weir target/release/weir --work /tmp/weir-mem \
        [--jobs tumble,session,group,join] [--budgets 32MiB,64MiB] [--modes batch,pipelined] \
        [--duckdb]            # also DuckDB on the join with memory_limit='64MB'

Data (generated under --work if absent): `weir generate --vehicles 1700000 --seconds 1
--files 4` (1.7M keys, 5.1M rows) for tumble/session/group, and the peers' gen_data.py
--rows 10000000 (OBD 10M rows + app 3.3M rows, 10,000 vehicles) for the join.
Needs python3 with duckdb and pyarrow (see benches/peers/README.md).
"""
import argparse, json, os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))

JOB = '''name = "{name}"
[source]
path = "{data}"
time_column = "event_time"
watermark_delay = "30s"
[[steps]]
key_by = ["vehicle_id"]
[[steps]]
{window}
aggregates = [{{ fn = "avg", column = "speed", as = "avg_speed" }}, {{ fn = "count", as = "readings" }}]
[sink]
type = "parquet"
path = "{out}"
'''

JOIN = '''name = "join"
[source]
path = "{data}/obd"
time_column = "event_time"
watermark_delay = "30s"
[[steps]]
key_by = ["vehicle_id"]
[[steps]]
window = {{ kind = "tumbling", size = "1s" }}
aggregates = [{{ fn = "avg", column = "speed_kmh", as = "obd_s" }}]
[[steps]]
[steps.join]
kind = "same_window"
on = ["vehicle_id"]
type = "inner"
[steps.join.right.source]
path = "{data}/app"
time_column = "event_time"
watermark_delay = "9m"
[[steps.join.right.steps]]
key_by = ["vehicle_id"]
[[steps.join.right.steps]]
window = {{ kind = "tumbling", size = "1s" }}
aggregates = [{{ fn = "avg", column = "speed_kmh", as = "app_s" }}]
[[steps]]
with_column = {{ name = "d", expr = "obd_s - app_s" }}
[sink]
type = "parquet"
path = "{out}"
'''

WINDOWS = {
    "tumble": 'window = { kind = "tumbling", size = "1h" }',
    "session": 'window = { kind = "session", gap = "5m" }',
    "group": "",
}


def sample(pid):
    rss = anon = 0
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
    except OSError:
        pass
    return rss, anon


def run_sampled(cmd):
    """Runs cmd; returns (exit code, stdout, stderr, peak VmRSS MiB, peak RssAnon MiB, wall s)."""
    t0 = time.perf_counter()
    out_f, err_f = open("/tmp/.mg.out", "w+"), open("/tmp/.mg.err", "w+")
    child = subprocess.Popen(cmd, stdout=out_f, stderr=err_f)
    peak_rss = peak_anon = 0
    while child.poll() is None:
        r, a = sample(child.pid)
        peak_rss, peak_anon = max(peak_rss, r), max(peak_anon, a)
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    out_f.seek(0), err_f.seek(0)
    return child.returncode, out_f.read(), err_f.read(), peak_rss / 1024, peak_anon / 1024, wall


def ensure_data(args):
    keys = os.path.join(args.work, "keys17")
    if not os.path.isdir(keys):
        subprocess.run([args.weir, "generate", "--out", keys, "--vehicles", "1700000",
                        "--seconds", "1", "--files", "4"], check=True)
    peers = os.path.join(args.work, "peers10m")
    if "join" in args.jobs and not os.path.isdir(os.path.join(peers, "obd")):
        subprocess.run([sys.executable, os.path.join(HERE, "peers", "gen_data.py"), peers,
                        "--rows", "10000000"], check=True)
    return keys, peers


def job_file(args, job, mode, budget, keys, peers):
    out = os.path.join(args.work, "out", f"{job}-{mode}-{budget}")
    subprocess.run(["rm", "-rf", out])
    path = os.path.join(args.work, "jobs", f"{job}.toml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = (JOIN.format(data=peers, out="OUT") if job == "join"
            else JOB.format(name=job, data=keys, window=WINDOWS[job], out="OUT"))
    open(path, "w").write(text)
    return path, out


def same(a, b):
    """True if the Parquet outputs a and b hold the same rows (floats to 6 digits); changelogs fold by key."""
    import duckdb
    con = duckdb.connect()
    def rel(p, rounded=True):
        cols = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{p}/**/*.parquet', union_by_name=true)").fetchall()
        names = [c[0] for c in cols]
        if "op" in names:  # a changelog: the last row per key (insert/update order as written)
            keys = [n for n in names if n not in ("op", "avg_speed", "readings")]
            sel = ", ".join((f"round({c[0]}, 6 - cast(floor(log10(abs({c[0]}) + 1e-300)) as int)) AS {c[0]}"
                             if rounded else c[0])
                            if c[1] == "DOUBLE" else c[0] for c in cols if c[0] != "op")
            return (f"SELECT {sel} FROM (SELECT *, row_number() OVER (PARTITION BY {', '.join(keys)} "
                    f"ORDER BY filename, file_row_number DESC) AS rn FROM read_parquet('{p}/**/*.parquet', "
                    f"filename=true, file_row_number=true)) WHERE rn = 1")
        sel = ", ".join((f"round({c[0]}, 6 - cast(floor(log10(abs({c[0]}) + 1e-300)) as int)) AS {c[0]}"
                         if rounded else c[0])
                        if c[1] == "DOUBLE" else c[0] for c in cols)
        return f"SELECT {sel} FROM read_parquet('{p}/**/*.parquet')"
    ra, rb = rel(a), rel(b)
    n = con.execute(f"SELECT count(*) FROM ({ra})").fetchone()[0]
    d1 = con.execute(f"SELECT count(*) FROM (({ra}) EXCEPT ALL ({rb}))").fetchone()[0]
    d2 = con.execute(f"SELECT count(*) FROM (({rb}) EXCEPT ALL ({ra}))").fetchone()[0]
    if d1 == 0 and d2 == 0:
        return True, n
    # Rounding to 6 digits puts two floats that differ in the last bits on
    # either side of a rounding boundary now and then: pair the rows by their
    # other columns instead and compare floats with a relative tolerance.
    cols = con.execute(f"DESCRIBE SELECT * FROM ({ra})").fetchall()
    keys = [c[0] for c in cols if c[1] != "DOUBLE"]
    floats = [c[0] for c in cols if c[1] == "DOUBLE"]
    if not keys:
        return False, n
    ra, rb = rel(a, rounded=False), rel(b, rounded=False)
    order = ", ".join(floats) or keys[0]
    numbered = lambda r: (f"SELECT *, row_number() OVER (PARTITION BY {', '.join(keys)} "
                          f"ORDER BY {order}) AS rn_ FROM ({r})")
    bad = " OR ".join([f"a.rn_ IS NULL OR b.rn_ IS NULL"] +
                      [f"abs(a.{f} - b.{f}) > 1e-9 * greatest(abs(a.{f}), abs(b.{f}), 1)"
                       for f in floats])
    differ = con.execute(
        f"SELECT count(*) FROM ({numbered(ra)}) a FULL JOIN ({numbered(rb)}) b "
        f"USING ({', '.join(keys)}, rn_) WHERE {bad}").fetchone()[0]
    return differ == 0, n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weir", default="target/release/weir")
    p.add_argument("--work", default="/tmp/weir-mem")
    p.add_argument("--jobs", default="tumble,session,group,join")
    p.add_argument("--modes", default="batch,pipelined")
    p.add_argument("--budgets", default="unlimited,32MiB,64MiB")
    p.add_argument("--parallelism", default="2")
    p.add_argument("--duckdb", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.jobs = args.jobs.split(",")
    keys, peers = ensure_data(args)
    budgets = args.budgets.split(",")
    if "unlimited" in budgets:  # the reference run goes first
        budgets.remove("unlimited")
    budgets = ["unlimited"] + budgets
    rows = []
    print(f"{'job':8} {'mode':9} {'memory':9} {'result':7} {'time s':>7} {'peak RSS':>9} "
          f"{'RssAnon':>8} {'pool peak':>9} {'pool/anon':>9} {'spilled':>9} {'identical':>9}", flush=True)
    for job in args.jobs:
        for mode in args.modes.split(","):
            ref = None
            for budget in budgets:
                path, out = job_file(args, job, mode, budget, keys, peers)
                cmd = [args.weir, "run", path, "--mode", mode, "--parallelism", args.parallelism,
                       "--memory", budget, "--output", out, "--json", "--spill-dir", args.work]
                code, stdout, stderr, rss, anon, wall = run_sampled(cmd)
                row = {"job": job, "mode": mode, "memory": budget, "peak_rss_mib": round(rss),
                       "peak_anon_mib": round(anon)}
                if code == 0:
                    m = json.loads(stdout)
                    row.update(ok=True, time_s=round(m["elapsed"], 2),
                               pool_peak_mib=round(m["peak_memory"] / 2**20, 1),
                               spilled_mib=round(m["spilled_bytes"] / 2**20, 1))
                    if budget == "unlimited":
                        ref = out
                        row["identical"] = "ref"
                    elif ref:
                        ok, n = same(ref, out)
                        row["identical"] = "yes" if ok else "NO"
                else:
                    row.update(ok=False, error=stderr.strip().splitlines()[-1][:200] if stderr.strip() else f"exit {code}")
                rows.append(row)
                if row["ok"]:
                    print(f"{job:8} {mode:9} {budget:9} {'ok':7} {row['time_s']:7.2f} {rss:8.0f}M "
                          f"{anon:7.0f}M {row['pool_peak_mib']:8.1f}M "
                          f"{row['pool_peak_mib'] / max(anon, 1):9.2f} {row['spilled_mib']:8.1f}M "
                          f"{row.get('identical', '-'):>9}", flush=True)
                else:
                    print(f"{job:8} {mode:9} {budget:9} FAILED  {rss:7.0f}M  {row['error']}", flush=True)
                if budget != "unlimited":
                    subprocess.run(["rm", "-rf", out])
    if args.duckdb and "join" in args.jobs:
        out = os.path.join(args.work, "out", "duckdb-join.parquet")
        cmd = [sys.executable, os.path.join(HERE, "peers", "run_duckdb.py"), peers, "w2", out,
               "--memory-limit", "64MB"]
        code, stdout, stderr, rss, anon, wall = run_sampled(cmd)
        if code == 0:
            m = json.loads(stdout)
            print(f"duckdb join memory_limit=64MB: {m['query_s']:.2f} s, peak RSS {rss:.0f}M "
                  f"(RssAnon {anon:.0f}M), rows {m['result'][0]:.0f}", flush=True)
            rows.append({"job": "join", "engine": "duckdb", "memory": "64MB", "time_s": m["query_s"],
                         "peak_rss_mib": round(rss), "peak_anon_mib": round(anon)})
        else:
            print(f"duckdb failed: {stderr[-300:]}")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
