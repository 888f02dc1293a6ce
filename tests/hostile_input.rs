//! Hostile input cannot poison a job: JSON event times out of range,
//! repeated fields, non-finite floats and null keys, over-long lines, corrupt
//! or incompatible files in a watched directory, Parquet files with other
//! codecs or a corrupt page. Each case ends either in a dead letter naming
//! the record, or in an error naming the file, never in a silently wrong
//! result.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use weir::{ExecConfig, Job};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// What a `weir` run gave: success, stderr, peak RSS in bytes.
struct Run {
    ok: bool,
    stderr: String,
    peak_rss: u64,
}

/// Runs `weir args…` with `input` written to its stdin by a thread (which
/// may be large), measuring the child's own peak RSS.
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also gives its rusage
fn run_with_stdin(args: &[&str], cwd: &Path, input: impl FnOnce(&mut dyn Write) + Send) -> Run {
    let mut child = weir()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (_out, err) = std::thread::scope(|s| {
        s.spawn(move || {
            input(&mut stdin);
            drop(stdin);
        });
        let out = s.spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
            text
        });
        let err = s.spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
            text
        });
        (out.join().unwrap(), err.join().unwrap())
    });
    // wait4 gives this child's own rusage (ru_maxrss in KiB)
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    // (a failure message must not repeat a huge record)
    let mut stderr = err;
    if stderr.len() > 4000 {
        let cut = (0..=4000)
            .rev()
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(0);
        stderr.truncate(cut);
        stderr.push('…');
    }
    Run {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stderr,
        peak_rss: usage.ru_maxrss as u64 * 1024,
    }
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A stdin job: per-sensor 1 s counts and sums, dead letters to `dead.jsonl`.
fn stdin_job(dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[source]
type = "stdin"
schema = ["sensor: int64", "t: timestamp", "v: int64"]
time_column = "t"
watermark_delay = "0s"
on_error = "dead_letter"
{extra}

[[steps]]
key_by = ["sensor"]

[[steps]]
window = {{ kind = "tumbling", size = "1s" }}
aggregates = [{{ fn = "count", as = "n" }}, {{ fn = "sum", column = "v", as = "total" }}]

[sink]
path = "out.jsonl"

[dead_letter_sink]
path = "dead.jsonl"
"#
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// (sensor, window start ms, n, total) of a window output.
fn windows(rows: &[serde_json::Value]) -> Vec<(i64, i64, i64, i64)> {
    let mut w: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["sensor"].as_i64().unwrap(),
                r["window_start"].as_i64().unwrap(),
                r["n"].as_i64().unwrap(),
                r["total"].as_i64().unwrap(),
            )
        })
        .collect();
    w.sort();
    w
}

#[test]
fn a_json_event_time_out_of_range_is_a_dead_letter_not_the_end_of_time() {
    let dir = tempfile::tempdir().unwrap();
    stdin_job(dir.path(), "");
    let input = [
        r#"{"sensor": 1, "t": 1000, "v": 1}"#,
        // beyond i64: decoded as i64::MAX it would close every window
        r#"{"sensor": 1, "t": 100000000000000000000000, "v": 100}"#,
        r#"{"sensor": 1, "t": 1500, "v": 2}"#,
        // microseconds where milliseconds were meant: the year 55,800
        r#"{"sensor": 2, "t": 1700000000000000, "v": 100}"#,
        r#"{"sensor": 1, "t": 2500, "v": 4}"#,
        r#"{"sensor": 2, "t": 2600, "v": 8}"#,
    ]
    .join("\n");
    let run = run_with_stdin(
        &["run", "job.toml", "--parallelism", "1"],
        dir.path(),
        |w| w.write_all(input.as_bytes()).unwrap(),
    );
    assert!(run.ok, "{}", run.stderr);
    // every in-range record reached its window (none dropped as late)
    assert_eq!(
        windows(&json_lines(&dir.path().join("out.jsonl"))),
        vec![(1, 1000, 2, 3), (1, 2000, 1, 4), (2, 2000, 1, 8)]
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let positions: Vec<&str> = dead
        .iter()
        .map(|d| d["position"].as_str().unwrap())
        .collect();
    assert_eq!(positions, vec!["1", "3"]);
    for d in &dead {
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.contains("event time `t` out of range"), "{reason}");
    }
}

#[test]
fn the_json_sink_refuses_a_time_it_cannot_write_instead_of_writing_error_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let t =
        TimestampMillisecondArray::from(vec![1_000, 92_233_720_368_547_758]).with_timezone("UTC");
    let batch = RecordBatch::try_from_iter([("t", Arc::new(t) as ArrayRef)]).unwrap();
    let job = Job::new();
    job.from_batches(batch.schema(), vec![vec![batch]])
        .unwrap()
        .sink_json(&out)
        .unwrap();
    let err = job
        .run(&ExecConfig::batch().with_parallelism(1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`t`") && err.contains("92233720368547758"),
        "{err}"
    );
    assert!(
        err.contains(&out.display().to_string()),
        "names the sink: {err}"
    );
    assert!(!out.exists(), "nothing published");
}

#[test]
fn nan_infinity_and_null_keys_round_trip_through_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, true),
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("v", DataType::Float64, true),
    ]));
    let keys = Int64Array::from(vec![None, Some(1), None, Some(2), Some(3)]);
    let times = TimestampMillisecondArray::from(vec![1, 2, 3, 4, 5]).with_timezone("UTC");
    let values = Float64Array::from(vec![
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        None,
        Some(-0.25),
    ]);
    let input = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(keys), Arc::new(times), Arc::new(values)],
    )
    .unwrap();
    let job = Job::new();
    job.from_batches(schema.clone(), vec![vec![input.clone()]])
        .unwrap()
        .sink_json(files.join("rows.jsonl"))
        .unwrap();
    job.run(&ExecConfig::batch().with_parallelism(1)).unwrap();
    let text = std::fs::read_to_string(files.join("rows.jsonl")).unwrap();
    assert!(text.contains(r#""key":null"#), "nulls are written: {text}");
    assert!(
        text.contains(r#""v":"NaN""#) && text.contains(r#""v":"-Infinity""#),
        "{text}"
    );

    // read back with weir's own JSON reader (a watched directory, bounded)
    let path = files.clone();
    let s = schema.clone();
    let factory: weir::connectors::live::ConnectorFactory = Arc::new(move |info| {
        let d = weir::connectors::live::dir::WatchedDir::try_new(
            &path,
            s.clone(),
            info,
            true,
            std::time::Duration::ZERO,
            None,
        )?;
        Ok(Box::new(d) as _)
    });
    let job = Job::new();
    let back = job
        .live_source(weir::connectors::live::LiveSourceSpec::new(
            "files", schema, factory, true,
        ))
        .collect()
        .unwrap();
    job.run(&ExecConfig::batch().with_parallelism(1)).unwrap();
    let got = arrow_select::concat::concat_batches(&input.schema(), &back.batches()).unwrap();
    assert_eq!(got.num_rows(), 5);
    assert_eq!(
        got.column(0).as_ref(),
        input.column(0).as_ref(),
        "keys, nulls included"
    );
    assert_eq!(
        got.column(1)
            .as_primitive::<TimestampMillisecondType>()
            .values(),
        input
            .column(1)
            .as_primitive::<TimestampMillisecondType>()
            .values()
    );
    let (a, b) = (
        got.column(2).as_primitive::<Float64Type>(),
        input.column(2).as_primitive::<Float64Type>(),
    );
    for i in 0..5 {
        assert_eq!(a.is_null(i), b.is_null(i), "row {i}");
        if b.is_valid(i) {
            assert_eq!(a.value(i).to_bits(), b.value(i).to_bits(), "row {i}");
        }
    }
}

#[test]
fn a_column_named_twice_is_an_error_and_a_field_given_twice_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let job = stdin_job(dir.path(), "");
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(
        &job,
        text.replace(r#""v: int64"]"#, r#""v: int64", "v: string"]"#),
    )
    .unwrap();
    let run = run_with_stdin(
        &["run", "job.toml", "--parallelism", "1"],
        dir.path(),
        |_| {},
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("`v` is listed twice") && run.stderr.contains("schema"),
        "{}",
        run.stderr
    );

    std::fs::write(&job, text).unwrap();
    let input = "{\"sensor\": 1, \"t\": 1000, \"v\": 1}\n\
                 {\"sensor\": 1, \"t\": 1100, \"v\": 5, \"v\": 7}\n\
                 {\"sensor\": 1, \"t\": 1200, \"v\": 2, \"note\": 1, \"note\": 2}\n";
    let run = run_with_stdin(
        &["run", "job.toml", "--parallelism", "1"],
        dir.path(),
        |w| w.write_all(input.as_bytes()).unwrap(),
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        windows(&json_lines(&dir.path().join("out.jsonl"))),
        vec![(1, 1000, 2, 3)],
        "a repeated field outside the schema is ignored"
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["position"], "1");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("`v` is given more than once"),
        "{}",
        dead[0]["reason"]
    );
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/golden/parquet")
        .join(name)
}

/// Rows of a Parquet file read by weir: (vehicle_id, event_time, speed).
fn read_parquet(path: &Path) -> weir::Result<Vec<(i64, i64, f64)>> {
    let job = Job::new();
    let rows = job.parquet(path)?.collect()?;
    job.run(&ExecConfig::batch().with_parallelism(1))?;
    let mut out = Vec::new();
    for b in rows.batches() {
        let id = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<TimestampMillisecondType>();
        let v = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((id.value(i), t.value(i), v.value(i)));
        }
    }
    out.sort_by_key(|r| r.1);
    Ok(out)
}

#[test]
fn parquet_files_with_every_codec_real_files_use_are_read() {
    // written by pyarrow (data/golden/make_parquet.py), page checksums on
    let expected: Vec<(i64, i64, f64)> = (0..1000i64)
        .map(|i| {
            (
                i % 7,
                1_700_000_000_000 + i * 100,
                (i * 37 % 1000) as f64 / 10.0,
            )
        })
        .collect();
    for codec in ["gzip", "lz4", "brotli", "snappy", "zstd"] {
        let path = golden(&format!("codec_{codec}.parquet"));
        let rows = read_parquet(&path).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert!(rows == expected, "{codec}: rows differ");
    }
}

#[test]
fn a_parquet_page_whose_checksum_does_not_match_is_an_error_naming_the_file() {
    // one byte of row 500's speed was flipped after pyarrow wrote the page CRCs
    let path = golden("crc_corrupt.parquet");
    let err = read_parquet(&path).err().map(|e| e.to_string());
    let err = err.unwrap_or_else(|| panic!("a corrupt page was read silently"));
    assert!(err.to_lowercase().contains("checksum"), "{err}");
    assert!(
        err.contains("crc_corrupt.parquet") && err.contains("row group 0"),
        "{err}"
    );
}

#[test]
fn an_over_long_line_is_a_truncated_dead_letter_and_is_never_held_whole() {
    let dir = tempfile::tempdir().unwrap();
    stdin_job(dir.path(), "");
    const HUGE: usize = 256 << 20;
    let head = b"{\"sensor\": 1, \"t\": 1100, \"v\": \"";
    let run = run_with_stdin(
        &["run", "job.toml", "--parallelism", "1"],
        dir.path(),
        |w| {
            w.write_all(b"{\"sensor\": 1, \"t\": 1000, \"v\": 1}\n")
                .unwrap();
            w.write_all(head).unwrap();
            let block = vec![b'x'; 1 << 20];
            for _ in 0..HUGE >> 20 {
                w.write_all(&block).unwrap();
            }
            w.write_all(b"\"}\n{\"sensor\": 1, \"t\": 1200, \"v\": 2}\n")
                .unwrap();
        },
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        windows(&json_lines(&dir.path().join("out.jsonl"))),
        vec![(1, 1000, 2, 3)]
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["position"], "1");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{} bytes", head.len() + HUGE + 2))
            && reason.contains("max_record_bytes (1048576)"),
        "{reason}"
    );
    let record = dead[0]["record"].as_str().unwrap();
    assert!(
        record.starts_with("{\"sensor\": 1, \"t\": 1100") && record.len() < 2048,
        "{}",
        record.len()
    );
    eprintln!("peak RSS with a 256 MiB line: {} MiB", run.peak_rss >> 20);
    // the line was skipped, not buffered: far below its 256 MiB
    assert!(
        run.peak_rss < 128 << 20,
        "peak RSS {} MiB",
        run.peak_rss >> 20
    );
}

#[test]
fn max_record_bytes_is_set_in_the_job_file() {
    let dir = tempfile::tempdir().unwrap();
    stdin_job(dir.path(), "max_record_bytes = \"40B\"");
    let input = "{\"sensor\": 1, \"t\": 1000, \"v\": 1}\n\
                 {\"sensor\": 1, \"t\": 1100, \"v\": 1, \"pad\": \"......\"}\n";
    let run = run_with_stdin(
        &["run", "job.toml", "--parallelism", "1"],
        dir.path(),
        |w| w.write_all(input.as_bytes()).unwrap(),
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        windows(&json_lines(&dir.path().join("out.jsonl"))),
        vec![(1, 1000, 1, 1)]
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["reason"]
        .as_str()
        .unwrap()
        .contains("max_record_bytes (40)"));
}

/// A Parquet file of `(sensor, t, v)` columns as given.
fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn a_corrupt_or_incompatible_file_in_a_watched_directory_is_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("in");
    std::fs::create_dir(&watched).unwrap();
    let int = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    // read in name order: good rows before and after every bad file
    std::fs::write(
        watched.join("a_good.jsonl"),
        "{\"sensor\": 1, \"t\": 1000, \"v\": 1}\n{\"sensor\": 2, \"t\": 1100, \"v\": 10}\n",
    )
    .unwrap();
    std::fs::write(
        watched.join("b_garbage.parquet"),
        b"PAR1 this is not parquet PAR1",
    )
    .unwrap();
    write_parquet(
        &watched.join("c_text_values.parquet"),
        vec![
            ("sensor", int(vec![1])),
            ("t", int(vec![1200])),
            (
                "v",
                Arc::new(arrow_array::StringArray::from(vec!["fast"])) as ArrayRef,
            ),
        ],
    );
    write_parquet(
        &watched.join("d_no_time.parquet"),
        vec![("sensor", int(vec![1])), ("v", int(vec![1000]))],
    );
    write_parquet(
        &watched.join("e_good.parquet"),
        vec![
            ("sensor", int(vec![1, 2])),
            ("t", int(vec![1300, 2500])),
            ("v", int(vec![2, 20])),
        ],
    );
    std::fs::write(
        watched.join("f_bad_utf8.jsonl"),
        b"{\"sensor\": 1, \"t\": 2550, \"v\": \"\xff\"}\n{\"sensor\": 1, \"t\": 2600, \"v\": 4}\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(stdin_job(dir.path(), "")).unwrap();
    let text = text.replace("type = \"stdin\"", "type = \"dir\"").replace(
        "on_error = \"dead_letter\"",
        &format!(
            "on_error = \"dead_letter\"\npath = \"{}\"\nbounded = true",
            watched.display()
        ),
    );
    std::fs::write(dir.path().join("job.toml"), text).unwrap();
    let run = run_with_stdin(
        &["run", "job.toml", "--parallelism", "1"],
        dir.path(),
        |_| {},
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        windows(&json_lines(&dir.path().join("out.jsonl"))),
        vec![
            (1, 1000, 2, 3),
            (1, 2000, 1, 4),
            (2, 1000, 1, 10),
            (2, 2000, 1, 20)
        ]
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let mut got: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            (
                d["position"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let positions: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        positions,
        vec![
            "b_garbage.parquet:0",
            "c_text_values.parquet:0",
            "d_no_time.parquet:0",
            "f_bad_utf8.jsonl:0"
        ]
    );
    assert!(
        got[0].1.contains("b_garbage.parquet") && got[0].1.contains("Parquet"),
        "{}",
        got[0].1
    );
    assert!(got[1].1.contains("column `v`"), "{}", got[1].1);
    assert!(got[2].1.contains("column `t` is missing"), "{}", got[2].1);
}

#[test]
fn a_parquet_codec_weir_cannot_read_is_named_with_file_and_column() {
    // an uncompressed file whose footer then says `speed` is LZO-compressed
    // (the one codec with no Rust decoder): thrift compact `codec = 0` -> `3`
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lzo.parquet");
    let int = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    write_parquet(
        &path,
        vec![
            ("vehicle_id", int(vec![1, 2])),
            ("event_time", int(vec![1000, 2000])),
            (
                "speed",
                Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
            ),
        ],
    );
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"speed\x15\x00";
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .expect("the footer names `speed`, then its codec");
    bytes[at + needle.len() - 1] = 0x06; // zigzag(3) = LZO
    std::fs::write(&path, bytes).unwrap();
    let job = Job::new();
    let rows = job.parquet(&path).unwrap().collect().unwrap();
    let err = job
        .run(&ExecConfig::batch().with_parallelism(1))
        .map(|_| rows.num_rows())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lzo.parquet") && err.contains("row group 0"),
        "{err}"
    );
    assert!(err.contains("`speed`") && err.contains("LZO"), "{err}");
}
