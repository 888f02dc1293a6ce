//! Shards over a topic: shard I of N reads the partitions P with P mod N ==
//! I, and N shards' windows together equal one process's and a brute-force
//! oracle's (the topic is keyed as the job keys). Skipped with one line
//! when no tansu broker is installed (see tests/common/brokers.rs).

mod common;

use common::brokers::Tansu;
use common::windows::{window_rows, windowed, WindowRow};
use common::Row;
use std::collections::BTreeMap;
use std::time::Duration;
use weir::connectors::kafka::{create_topic, KafkaSinkSpec, KafkaSourceConfig};
use weir::shard::Shard;
use weir::{ExecConfig, ExecMode, Job};

/// 9 000 rows over 30 keys, at most 100 ms out of order (never late at a
/// 200 ms delay, so no answer depends on where the broker cuts batches).
fn rows() -> Vec<Row> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    let mut clock = 1_700_000_000_000i64;
    (0..9_000)
        .map(|i| {
            clock += (next() % 6) as i64;
            Row {
                key: (next() % 30) as i64,
                ts: clock - (next() % 100) as i64,
                value: i,
                speed: (next() % 1000) as f64 / 8.0,
            }
        })
        .collect()
}

/// Creates `topic` with 4 partitions and writes `rows` to it keyed by
/// `key` (Kafka's default partitioner: each key in one partition).
fn produce_keyed(brokers: &[String], topic: &str, rows: &[Row]) {
    create_topic(brokers, topic, 4).unwrap();
    let job = Job::new();
    job.from_batches(
        common::schema(),
        vec![rows.chunks(1000).map(common::to_batch).collect()],
    )
    .unwrap()
    .sink_kafka(
        KafkaSinkSpec::new(brokers.iter().cloned(), topic)
            .with_key("key")
            .with_timestamp_column("ts"),
    )
    .unwrap();
    job.run(&ExecConfig::new(ExecMode::Batch)).unwrap();
}

/// Per-key 1 s windows of the topic, as shard `shard` (or one process).
fn windows(brokers: &[String], shard: Option<Shard>, p: usize) -> (Vec<WindowRow>, u64) {
    let spec = KafkaSourceConfig::new(brokers.iter().cloned(), "readings")
        .with_bounded(true)
        .with_timeout(Duration::from_secs(5))
        .into_spec(common::schema())
        .unwrap();
    let job = Job::new();
    let out = windowed(job.live_source(spec));
    let mut config = ExecConfig::pipelined().with_parallelism(p);
    if let Some(s) = shard {
        config = config.with_shard(s);
    }
    let m = job.run(&config).unwrap();
    (window_rows(&out.batches()), m.rows_in)
}

#[test]
fn three_shards_over_a_keyed_topic_equal_one_process_and_the_oracle() {
    let Some(tansu) = Tansu::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let brokers = tansu.brokers();
    let rows = rows();
    produce_keyed(&brokers, "readings", &rows);

    let mut oracle: BTreeMap<(i64, i64), (i64, i64, f64)> = BTreeMap::new();
    for r in &rows {
        let e = oracle
            .entry((r.key, r.ts - r.ts.rem_euclid(1000)))
            .or_default();
        e.0 += r.value;
        e.1 += 1;
        e.2 += r.speed;
    }
    let oracle: Vec<WindowRow> = oracle
        .into_iter()
        .map(|((k, s), (sum, n, speed))| (k, s, sum, n, (speed / n as f64 * 1e6).round() as i64))
        .collect();

    let (one, _) = windows(&brokers, None, 2);
    assert_eq!(one, oracle, "one process");
    for p in [1, 2] {
        let mut all = Vec::new();
        let mut read = Vec::new();
        for i in 0..3 {
            let (w, rows_in) = windows(&brokers, Some(Shard::try_new(i, 3).unwrap()), p);
            all.extend(w);
            read.push(rows_in);
        }
        all.sort_unstable();
        assert_eq!(all, oracle, "3 shards, p={p}");
        // each record was read by one shard only: partitions 0 and 3 by shard 0
        assert_eq!(read.iter().sum::<u64>(), rows.len() as u64, "{read:?}");
        assert!(read.iter().all(|&n| n > 0), "{read:?}");
    }
}

/// Re-keying over a topic: per-key 1 s sums (keyed as the topic), then each
/// window's three largest (keyed by the window, through a repartition
/// topic), as three `weir sql --shard` processes: the oracle's rows.
#[test]
fn three_shard_processes_rekey_rows_read_from_a_topic() {
    let Some(tansu) = Tansu::start() else {
        return; // no broker: skipped (see tests/common/brokers.rs)
    };
    let brokers = tansu.brokers();
    let rows = rows();
    produce_keyed(&brokers, "sql-readings", &rows);
    // oracle: per (window, key) the sum of value; per window the 3 largest
    let mut sums: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for r in &rows {
        *sums
            .entry((r.ts - r.ts.rem_euclid(1000), r.key))
            .or_default() += r.value;
    }
    let mut by_window: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for ((w, k), s) in sums {
        by_window.entry(w).or_default().push((s, k));
    }
    let mut want: Vec<Vec<String>> = Vec::new();
    for (w, mut v) in by_window {
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (rank, (s, k)) in v.iter().take(3).enumerate() {
            want.push(vec![
                w.to_string(),
                k.to_string(),
                s.to_string(),
                (rank + 1).to_string(),
            ]);
        }
    }
    want.sort();
    let b = brokers.join(",");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("top3");
    let file = dir.path().join("top3.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE TABLE readings (`key` BIGINT, ts TIMESTAMP(3), `value` BIGINT, speed DOUBLE,\n  \
             WATERMARK FOR ts AS ts - INTERVAL '200' MILLISECOND)\n  \
             WITH ('connector' = 'kafka', 'topic' = 'sql-readings', \
             'properties.bootstrap.servers' = '{b}', 'format' = 'json', \
             'scan.bounded.mode' = 'latest-offset');\n\
             CREATE TABLE top3 (window_start BIGINT, `key` BIGINT, total BIGINT, rownum BIGINT) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO top3 SELECT window_start, `key`, total, rownum FROM (\n  \
             SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY total DESC) \
             AS rownum FROM (\n    SELECT window_start, window_end, `key`, SUM(`value`) AS total\n    \
             FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' SECOND))\n    \
             GROUP BY window_start, window_end, `key`)\n) WHERE rownum <= 3;",
            out.display()
        ),
    )
    .unwrap();
    let shards: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
                .arg("sql")
                .arg(&file)
                .args(["--parallelism", "2", "--shard", &format!("{i}/3")])
                .args(["--repartition-brokers", &b, "--run-id", "kafka-in"])
                .env_remove("WEIR_SHARD")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for s in shards {
        let o = s.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(common::sql::rows(&out), want);
}
