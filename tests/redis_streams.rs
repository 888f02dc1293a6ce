//! Redis Streams end to end against a real redis-server: the sink writes,
//! the source reads back; entry ids resume exactly; start from a time;
//! malformed entries; a server that dies.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::RecordBatch;
use common::brokers::RedisServer;
use common::Row;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::connectors::live::{OnError, Position, StartFrom};
use weir::connectors::redis::{RedisSinkSpec, RedisSourceConfig};
use weir::{ExecConfig, Job};

/// `n` rows from `first` on; `value` is the row's index, unique.
fn rows(first: usize, n: usize) -> Vec<Row> {
    let mut state = 0x2545_f491_4f6c_dd1du64 ^ first as u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    (first..first + n)
        .map(|i| Row {
            key: (next() % 50) as i64,
            ts: 1_700_000_000_000 + (next() % 100_000) as i64,
            value: i as i64,
            speed: (next() % 1000) as f64 / 4.0,
        })
        .collect()
}

type Key = (i64, i64, i64, u64);

fn keys_of(rows: &[Row]) -> Vec<Key> {
    let mut v: Vec<Key> = rows
        .iter()
        .map(|r| (r.key, r.ts, r.value, r.speed.to_bits()))
        .collect();
    v.sort_unstable();
    v
}

fn keys_of_batches(batches: &[RecordBatch]) -> Vec<Key> {
    let mut v = Vec::new();
    for b in batches {
        let int = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (k, t, x) = (int(0), int(1), int(2));
        let s = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            v.push((k.value(i), t.value(i), x.value(i), s.value(i).to_bits()));
        }
    }
    v.sort_unstable();
    v
}

fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], context: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{context}: {} rows, expected {}; first difference at {at}: {:?} vs {:?}",
            got.len(),
            want.len(),
            got.get(at),
            want.get(at)
        );
    }
}

/// Runs `f` on its own thread; fails the test if it takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("did not finish within {secs} s"),
    }
}

/// Appends `rows` to `keys` through the sink: row i goes to key i % keys.
fn produce(url: &str, keys: &[&str], rows: &[Row]) {
    let job = Job::new();
    for (k, key) in keys.iter().enumerate() {
        let mine: Vec<Row> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % keys.len() == k)
            .map(|(_, r)| r.clone())
            .collect();
        let batches: Vec<RecordBatch> = mine.chunks(1500).map(common::to_batch).collect();
        job.from_batches(common::schema(), vec![batches])
            .unwrap()
            .sink_redis(RedisSinkSpec::new(url, key))
            .unwrap();
    }
    job.run(&ExecConfig::batch().with_parallelism(2)).unwrap();
}

fn source(url: &str, keys: &[&str]) -> RedisSourceConfig {
    RedisSourceConfig::new(url, keys.iter().copied())
        .with_bounded(true)
        .with_timeout(Duration::from_secs(5))
}

fn consume(
    config: RedisSourceConfig,
    parallelism: usize,
) -> (Vec<RecordBatch>, BTreeMap<String, Position>) {
    within(60, move || {
        let spec = config.into_spec(common::schema()).unwrap();
        let positions = spec.positions();
        let job = Job::new();
        let out = job.live_source(spec).collect().unwrap();
        job.run(&ExecConfig::pipelined().with_parallelism(parallelism))
            .unwrap();
        let positions = positions.lock().unwrap().clone();
        (out.batches(), positions)
    })
}

fn last_id(server: &RedisServer, key: &str) -> String {
    let mut c = server.connection();
    let v: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut c)
        .unwrap();
    v[0].0.clone()
}

const KEYS: [&str; 3] = ["s0", "s1", "s2"];

#[test]
fn rows_written_by_the_sink_come_back_as_the_same_multiset() {
    let Some(server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let input = rows(0, 20_000);
    produce(&server.url, &KEYS, &input);
    let mut c = server.connection();
    for key in KEYS {
        let len: usize = redis::cmd("XLEN").arg(key).query(&mut c).unwrap();
        assert!((6_666..=6_667).contains(&len), "{key}: {len}");
    }
    for parallelism in [1, 2, 3] {
        let (got, positions) = consume(source(&server.url, &KEYS), parallelism);
        same(
            &keys_of_batches(&got),
            &keys_of(&input),
            &format!("p={parallelism}"),
        );
        for key in KEYS {
            assert_eq!(positions[key], Position::Id(last_id(&server, key)), "{key}");
        }
    }
}

#[test]
fn a_restart_from_stored_ids_reads_exactly_the_new_entries() {
    let Some(server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let first = rows(0, 10_000);
    produce(&server.url, &KEYS, &first);
    let (got, positions) = consume(source(&server.url, &KEYS), 2);
    same(&keys_of_batches(&got), &keys_of(&first), "first read");

    let second = rows(10_000, 5_000);
    produce(&server.url, &KEYS, &second);
    let (got, after) = consume(
        source(&server.url, &KEYS).with_start(StartFrom::Positions(positions)),
        3,
    );
    same(&keys_of_batches(&got), &keys_of(&second), "resumed read");
    let (got, _) = consume(
        source(&server.url, &KEYS).with_start(StartFrom::Positions(after)),
        1,
    );
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    let (got, _) = consume(source(&server.url, &KEYS).with_start(StartFrom::Latest), 1);
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[test]
fn start_from_a_time_reads_the_entries_from_that_millisecond_on() {
    let Some(server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let mut c = server.connection();
    // explicit ids: 10 per millisecond 1000, 1001, ... 1099
    let mut want = Vec::new();
    for ms in 1000..1100u64 {
        for seq in 0..10u64 {
            let v = (ms * 10 + seq) as i64;
            let json = format!(r#"{{"key":1,"ts":{ms},"value":{v},"speed":0.5}}"#);
            let _: String = redis::cmd("XADD")
                .arg("timed")
                .arg(format!("{ms}-{seq}"))
                .arg("data")
                .arg(json)
                .query(&mut c)
                .unwrap();
            if ms >= 1042 {
                want.push(v);
            }
        }
    }
    let (got, positions) = consume(
        source(&server.url, &["timed"]).with_start(StartFrom::Timestamp(1042)),
        1,
    );
    let got: Vec<i64> = keys_of_batches(&got).iter().map(|k| k.2).collect();
    same(&got, &want, "from 1042");
    assert_eq!(positions["timed"], Position::Id("1099-9".into()));
}

#[test]
fn malformed_entries_go_to_dead_letters_or_fail_naming_key_and_id() {
    let Some(server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let mut c = server.connection();
    let entries: [(&str, &str, &str); 5] = [
        ("5-0", "data", r#"{"key":1,"ts":1,"value":1,"speed":1.0}"#),
        ("5-1", "data", "not json"),
        ("6-0", "other", r#"{"key":2,"ts":2,"value":2,"speed":1.0}"#),
        (
            "7-0",
            "data",
            r#"{"key":"three","ts":3,"value":3,"speed":1.0}"#,
        ),
        ("8-0", "data", r#"{"key":4,"ts":4,"value":4,"speed":1.0}"#),
    ];
    for (id, field, value) in entries {
        let _: String = redis::cmd("XADD")
            .arg("mixed")
            .arg(id)
            .arg(field)
            .arg(value)
            .query(&mut c)
            .unwrap();
    }
    let url = server.url.clone();
    let (bad_records, good, bad) = within(60, move || {
        let spec = source(&url, &["mixed"])
            .into_spec(common::schema())
            .unwrap()
            .with_on_error(OnError::DeadLetter);
        let job = Job::new();
        let rows = job.live_source(spec);
        let bad = rows.dead_letters().unwrap().collect().unwrap();
        let good = rows.collect().unwrap();
        let m = job
            .run(&ExecConfig::pipelined().with_parallelism(1))
            .unwrap();
        (m.bad_records, good, bad)
    });
    assert_eq!(bad_records, 3);
    let values: Vec<i64> = keys_of_batches(&good.batches())
        .iter()
        .map(|k| k.2)
        .collect();
    assert_eq!(values, vec![1, 4]);
    let mut letters = Vec::new();
    for b in bad.batches() {
        for i in 0..b.num_rows() {
            letters.push((
                b.column(1).as_string::<i32>().value(i).to_string(),
                b.column(2).as_string::<i32>().value(i).to_string(),
            ));
        }
    }
    letters.sort();
    let want: Vec<(String, String)> = ["5-1", "6-0", "7-0"]
        .iter()
        .map(|id| ("mixed".to_string(), id.to_string()))
        .collect();
    assert_eq!(letters, want);

    let url = server.url.clone();
    let err = within(60, move || {
        let spec = source(&url, &["mixed"])
            .into_spec(common::schema())
            .unwrap();
        let job = Job::new();
        job.live_source(spec).collect().unwrap();
        job.run(&ExecConfig::pipelined().with_parallelism(1))
            .unwrap_err()
            .to_string()
    });
    assert!(
        err.contains(&format!("source redis {}", server.url))
            && err.contains("partition mixed")
            && err.contains("position 5-1"),
        "{err}"
    );
}

#[test]
fn the_sink_trims_with_maxlen() {
    let Some(server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let job = Job::new();
    let batches: Vec<RecordBatch> = rows(0, 10_000).chunks(1000).map(common::to_batch).collect();
    job.from_batches(common::schema(), vec![batches])
        .unwrap()
        .sink_redis(RedisSinkSpec::new(&server.url, "capped").with_max_len(500))
        .unwrap();
    job.run(&ExecConfig::batch().with_parallelism(1)).unwrap();
    let mut c = server.connection();
    let len: usize = redis::cmd("XLEN").arg("capped").query(&mut c).unwrap();
    // `~` trims whole nodes: at least 500 stay, far fewer than 10 000
    assert!((500..1_000).contains(&len), "{len}");
    // what stays is the newest rows
    let (got, _) = consume(source(&server.url, &["capped"]), 1);
    let values: Vec<i64> = keys_of_batches(&got).iter().map(|k| k.2).collect();
    assert!(values.iter().all(|&v| v >= 9_000), "{:?}", values.first());
}

#[test]
fn a_key_that_is_not_a_stream_is_refused_naming_it() {
    let Some(server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let mut c = server.connection();
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let err = source(&server.url, &["plain"])
        .into_spec(common::schema())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("redis {} plain", server.url)) && err.contains("string"),
        "{err}"
    );
}

#[test]
fn a_server_that_dies_mid_run_fails_the_job_within_the_timeout() {
    let Some(mut server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    produce(&server.url, &["doomed"], &rows(0, 2_000));
    let spec = RedisSourceConfig::new(&server.url, ["doomed"])
        .with_timeout(Duration::from_secs(2))
        .into_spec(common::schema())
        .unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let job = Job::new();
            job.live_source(spec)
                .map_batches(move |b| {
                    seen.fetch_add(b.num_rows(), Ordering::Relaxed);
                    Ok(b)
                })
                .collect()
                .unwrap();
            let _ = tx.send(job.run(&ExecConfig::pipelined().with_parallelism(1)));
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.load(Ordering::Relaxed) < 2_000 {
        assert!(Instant::now() < deadline, "the job read nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = Instant::now();
    server.kill();
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the job hung after the server died");
    let msg = result
        .expect_err("an unbounded job cannot succeed without its server")
        .to_string();
    assert!(
        msg.contains(&format!("redis {} doomed", server.url)),
        "{msg}"
    );
    eprintln!("after {:?}: {msg}", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(30));
}

/// Ingest throughput (release build, run by hand):
/// `cargo test --release --test redis_streams -- --ignored --nocapture ingest`
#[test]
#[ignore]
fn ingest_throughput() {
    let n: usize = std::env::var("WEIR_INGEST_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let Some(server) = RedisServer::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let input = rows(0, n);
    let started = Instant::now();
    produce(&server.url, &KEYS, &input);
    let produced = started.elapsed();
    drop(input);
    for parallelism in [1, 3] {
        let counted = Arc::new(AtomicUsize::new(0));
        let c = counted.clone();
        let spec = source(&server.url, &KEYS)
            .into_spec(common::schema())
            .unwrap();
        let job = Job::new();
        job.live_source(spec)
            .map_batches(move |b| {
                c.fetch_add(b.num_rows(), Ordering::Relaxed);
                Ok(b.slice(0, 0))
            })
            .collect()
            .unwrap();
        let started = Instant::now();
        job.run(&ExecConfig::pipelined().with_parallelism(parallelism))
            .unwrap();
        let read = started.elapsed();
        assert_eq!(counted.load(Ordering::Relaxed), n);
        println!(
            "redis (3 streams): sink {n} rows in {:.2} s = {:.0} rows/s; \
             source p={parallelism}: {:.2} s = {:.0} rows/s",
            produced.as_secs_f64(),
            n as f64 / produced.as_secs_f64(),
            read.as_secs_f64(),
            n as f64 / read.as_secs_f64()
        );
    }
}

#[test]
fn a_sql_window_from_streams_into_a_stream_equals_the_oracle_in_both_modes() {
    let Some(server) = RedisServer::start() else {
        return; // no server: skipped (see tests/common/brokers.rs)
    };
    let url = server.url.clone();
    let input = rows(0, 4_000);
    produce(&url, &["sql-a", "sql-b"], &input);
    // times span 100 s in any order: a 5-minute delay makes no row late
    let mut want: Vec<(i64, i64, i64, i64)> = {
        let mut m: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
        for r in &input {
            let e = m
                .entry((r.key, r.ts - r.ts.rem_euclid(10_000)))
                .or_default();
            e.0 += r.value;
            e.1 += 1;
        }
        m.into_iter().map(|((k, s), (v, n))| (k, s, v, n)).collect()
    };
    want.sort_unstable();
    for (mode, p) in [
        ("batch", "1"),
        ("batch", "3"),
        ("pipelined", "1"),
        ("pipelined", "3"),
    ] {
        let out = format!("sql-sums-{mode}-{p}");
        let text = format!(
            "CREATE TABLE readings (`key` BIGINT, ts TIMESTAMP(3), `value` BIGINT, speed DOUBLE,\n  \
             WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)\n  \
             WITH ('connector' = 'redis', 'url' = '{url}', 'keys' = 'sql-a, sql-b', \
             'scan.bounded.mode' = 'latest-offset');\n\
             CREATE TABLE sums (`key` BIGINT, window_start BIGINT, total BIGINT, n BIGINT)\n  \
             WITH ('connector' = 'redis', 'url' = '{url}', 'key' = '{out}');\n\
             INSERT INTO sums SELECT `key`, window_start, SUM(`value`), COUNT(*)\n\
             FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n\
             GROUP BY window_start, window_end, `key`;"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job.sql");
        std::fs::write(&file, text).unwrap();
        let o = within(60, {
            let (file, mode, p) = (file.clone(), mode.to_string(), p.to_string());
            move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
                    .arg("sql")
                    .arg(&file)
                    .args(["--mode", &mode, "--parallelism", &p])
                    .output()
                    .unwrap()
            }
        });
        assert!(
            o.status.success(),
            "{mode} p={p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut c = server.connection();
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(&out)
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        let mut got: Vec<(i64, i64, i64, i64)> = entries
            .iter()
            .map(|(_, fields)| {
                let data = &fields.iter().find(|(f, _)| f == "data").unwrap().1;
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                (
                    v["key"].as_i64().unwrap(),
                    v["window_start"].as_i64().unwrap(),
                    v["total"].as_i64().unwrap(),
                    v["n"].as_i64().unwrap(),
                )
            })
            .collect();
        got.sort_unstable();
        same(&got, &want, &format!("sql {mode} p={p}"));
    }
}
