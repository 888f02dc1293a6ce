//! Bad input to `weir run` fails cleanly.
//!
//! Every case runs the real binary on a job file in a temporary directory with
//! `--output <tmp>/out.parquet` and checks that it exits with an error (not a
//! panic), that stderr names the offending file, column, line, field or
//! option, and that nothing was published at the output path (and no staging
//! `*.inprogress` file was left beside it). One control test shows a good job
//! does write the output, so the "nothing written" checks mean something.

use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use weir::workloads::vehicles::{generate_obd, write_parquet_dir};

/// Exit code of `weir` for a reported error.
const EXIT_ERROR: i32 = 1;
/// Exit code of a clap usage error.
const EXIT_USAGE: i32 = 2;

/// A temporary directory holding the input data, the job file and the output path.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Where `--output` points.
    fn out(&self) -> PathBuf {
        self.path("out.parquet")
    }

    /// Writes sample OBD readings (`vehicle_id`, `event_time`, `speed`) as
    /// `files` Parquet files in `in/`, earlier event times in earlier files.
    fn obd_input(&self, files: usize) -> PathBuf {
        let dir = self.path("in");
        let batches = generate_obd(4, 60, 7, 120);
        write_parquet_dir(&dir, &batches, files, 120).expect("write sample parquet");
        dir
    }

    /// Writes `text` as `job.toml` and returns its path.
    fn job(&self, text: &str) -> PathBuf {
        let path = self.path("job.toml");
        std::fs::write(&path, text).expect("write job file");
        path
    }

    /// Runs `weir run <job> --output <out> <extra...>`.
    fn run(&self, job: &Path, extra: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.arg("run")
            .arg(job)
            .arg("--output")
            .arg(self.out())
            .args(extra);
        cmd.current_dir(self.dir.path());
        cmd.output().expect("run the weir binary")
    }

    /// Asserts that nothing was published at the output path and no staging
    /// file is left in its directory.
    fn assert_nothing_written(&self) {
        let out = self.out();
        assert!(
            std::fs::symlink_metadata(&out).is_err(),
            "{} exists after a failed run",
            out.display()
        );
        let leftovers: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("list the output directory")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".inprogress"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "staging files left behind: {leftovers:?}"
        );
    }

    /// Runs the job, expects exit code `code`, that stderr contains every
    /// string in `expected`, and that nothing was written. Returns stderr.
    fn assert_fails_with(
        &self,
        job: &Path,
        extra: &[&str],
        code: i32,
        expected: &[&str],
    ) -> String {
        let output = self.run(job, extra);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "expected exit code {code}, got {:?}; stderr:\n{stderr}",
            output.status
        );
        assert!(!stderr.contains("panicked"), "weir panicked:\n{stderr}");
        for e in expected {
            assert!(
                stderr.contains(e),
                "stderr does not mention `{e}`:\n{stderr}"
            );
        }
        self.assert_nothing_written();
        stderr
    }

    /// Like [`Case::assert_fails_with`] for an ordinary error (exit code 1).
    fn assert_fails(&self, job: &Path, extra: &[&str], expected: &[&str]) -> String {
        self.assert_fails_with(job, extra, EXIT_ERROR, expected)
    }
}

/// A job file reading `input` with event time from `time_column`, then `steps`.
fn job_text(input: &Path, time_column: &str, steps: &str) -> String {
    format!(
        "[source]\npath = '{}'\ntime_column = \"{time_column}\"\nwatermark_delay = \"30s\"\n\n{steps}\n[sink]\ntype = \"parquet\"\n",
        input.display()
    )
}

/// The steps of a per-vehicle 1 s average speed.
const WINDOW_STEPS: &str = r#"[[steps]]
filter = "speed >= 0"

[[steps]]
key_by = ["vehicle_id"]

[[steps]]
window = { kind = "tumbling", size = "1s" }
aggregates = [{ fn = "avg", column = "speed", as = "avg_speed" }, { fn = "count", as = "readings" }]
"#;

/// Rows and column names of a Parquet file.
fn read_parquet(path: &Path) -> (usize, Vec<String>) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("output is valid parquet")
        .build()
        .expect("build reader");
    let mut rows = 0;
    let mut names = Vec::new();
    for batch in reader {
        let batch = batch.expect("read output batch");
        rows += batch.num_rows();
        names = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
    }
    (rows, names)
}

/// Writes one batch as a Parquet file with row groups of 1000 rows.
fn write_batch(path: &Path, batch: &RecordBatch) {
    let file = File::create(path).expect("create parquet file");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1000))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("parquet writer");
    writer.write(batch).expect("write batch");
    writer.close().expect("close parquet file");
}

/// `rows` readings of 3 vehicles, one per second from second `first`, in
/// event-time order (`event_time` in epoch ms).
fn readings(first: i64, rows: i64) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("vehicle_id", DataType::Int64, false),
        Field::new("event_time", DataType::Int64, false),
        Field::new("speed", DataType::Float64, false),
    ]);
    let secs = first..first + rows;
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(secs.clone().map(|s| s % 3))),
            Arc::new(Int64Array::from_iter_values(secs.clone().map(|s| s * 1000))),
            Arc::new(Float64Array::from_iter_values(
                secs.map(|s| (s % 100) as f64),
            )),
        ],
    )
    .expect("columns match the schema")
}

/// Overwrites every column chunk (page headers and data) of `path` with
/// garbage, leaving the header magic and the footer intact.
fn corrupt_data_pages(path: &Path) {
    let meta = ArrowReaderMetadata::load(&File::open(path).expect("open"), Default::default())
        .expect("footer of the file to corrupt is valid");
    let mut bytes = std::fs::read(path).expect("read file");
    let mut corrupted = 0;
    for rg in meta.metadata().row_groups() {
        for column in rg.columns() {
            let (start, len) = column.byte_range();
            for b in &mut bytes[start as usize..(start + len) as usize] {
                *b = 0xFF;
            }
            corrupted += len;
        }
    }
    assert!(corrupted > 0, "no data pages found in {}", path.display());
    std::fs::write(path, bytes).expect("write corrupted file");
}

/// Exit 0 for a good job, the output is real Parquet with the window
/// columns, and a second run overwrites it instead of failing.
#[test]
fn good_job_writes_output_and_rerun_overwrites_it() {
    let case = Case::new();
    let input = case.obd_input(2);
    let job = case.job(&job_text(&input, "event_time", WINDOW_STEPS));
    for round in 0..2 {
        let output = case.run(&job, &["--parallelism", "2"]);
        assert!(
            output.status.success(),
            "round {round}: {:?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let (rows, names) = read_parquet(&case.out());
        // 4 vehicles x 60 seconds, a few windows lost to very late rows at most.
        assert!(
            (200..=240).contains(&rows),
            "round {round}: {rows} output rows"
        );
        for c in [
            "vehicle_id",
            "window_start",
            "window_end",
            "avg_speed",
            "readings",
        ] {
            assert!(
                names.iter().any(|n| n == c),
                "round {round}: no column {c} in {names:?}"
            );
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(case.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".inprogress"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn missing_input_file_is_named() {
    let case = Case::new();
    let missing = case.path("in/nope.parquet");
    let job = case.job(&job_text(&missing, "event_time", WINDOW_STEPS));
    case.assert_fails(&job, &[], &[missing.to_str().unwrap()]);
}

#[test]
fn directory_without_parquet_files_is_named() {
    let case = Case::new();
    let dir = case.path("empty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("readme.txt"), "not parquet").unwrap();
    let job = case.job(&job_text(&dir, "event_time", WINDOW_STEPS));
    case.assert_fails(&job, &[], &[dir.to_str().unwrap(), "no .parquet files"]);
}

#[test]
fn missing_time_column_lists_the_available_columns() {
    let case = Case::new();
    let input = case.obd_input(1);
    let job = case.job(&job_text(&input, "ts", WINDOW_STEPS));
    let stderr = case.assert_fails(&job, &[], &["`ts`", "vehicle_id", "event_time", "speed"]);
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn time_column_of_the_wrong_type_is_named_with_its_type() {
    let case = Case::new();
    let input = case.obd_input(1);
    let job = case.job(&job_text(&input, "speed", WINDOW_STEPS));
    case.assert_fails(&job, &[], &["`speed`", "Float64"]);
}

#[test]
fn file_with_garbage_footer_is_named() {
    let case = Case::new();
    let dir = case.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.parquet");
    let mut bytes = b"PAR1".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(&bad, bytes).unwrap();
    let job = case.job(&job_text(&dir, "event_time", WINDOW_STEPS));
    case.assert_fails(&job, &[], &[bad.to_str().unwrap(), "parquet"]);
}

#[test]
fn truncated_file_is_named() {
    let case = Case::new();
    let input = case.obd_input(2);
    let victim = input.join("part-00001.parquet");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 100]).unwrap();
    let job = case.job(&job_text(&input, "event_time", WINDOW_STEPS));
    case.assert_fails(&job, &[], &[victim.to_str().unwrap()]);
}

/// The footer is fine, so the job starts; the first file (earlier event
/// times, so read first) flows to the sink, then reading the second file's
/// pages fails mid-run. The partly written output must not be published.
#[test]
fn corrupt_data_pages_fail_the_running_job_and_publish_nothing() {
    let case = Case::new();
    let dir = case.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    write_batch(&dir.join("part-00000.parquet"), &readings(0, 4000));
    let victim = dir.join("part-00001.parquet");
    write_batch(&victim, &readings(4000, 4000));
    corrupt_data_pages(&victim);
    let steps = "[[steps]]\nfilter = \"speed >= 0\"\n";
    let job = case.job(&job_text(&dir, "event_time", steps));
    for mode in ["pipelined", "batch"] {
        for parallelism in ["1", "2"] {
            let stderr = case.assert_fails(
                &job,
                &["--mode", mode, "--parallelism", parallelism],
                // Named by the running source operator: the job had started.
                &[
                    "operator `parquet_source`",
                    victim.to_str().unwrap(),
                    "row group",
                ],
            );
            assert!(
                !stderr.contains("part-00000"),
                "{mode}/{parallelism}: blames the good file:\n{stderr}"
            );
        }
    }
}

#[test]
fn files_with_different_schemas_name_the_file_and_column() {
    let case = Case::new();
    let dir = case.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    let good = readings(0, 10);
    write_batch(&dir.join("a.parquet"), &good);
    // The same rows, but `speed` as Int64.
    let mut fields: Vec<Field> = good
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[2] = Field::new("speed", DataType::Int64, false);
    let mut columns = good.columns().to_vec();
    columns[2] = Arc::new(Int64Array::from_iter_values(0..10));
    let odd_batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let odd = dir.join("b.parquet");
    write_batch(&odd, &odd_batch);
    let job = case.job(&job_text(&dir, "event_time", WINDOW_STEPS));
    case.assert_fails(
        &job,
        &[],
        &[odd.to_str().unwrap(), "`speed`", "Int64", "Float64"],
    );
}

#[test]
fn unknown_cli_option_is_a_usage_error() {
    let case = Case::new();
    let input = case.obd_input(1);
    let job = case.job(&job_text(&input, "event_time", WINDOW_STEPS));
    case.assert_fails_with(&job, &["--frobnicate"], EXIT_USAGE, &["--frobnicate"]);
}

#[test]
fn bad_memory_value_names_the_option() {
    let case = Case::new();
    let input = case.obd_input(1);
    let job = case.job(&job_text(&input, "event_time", WINDOW_STEPS));
    case.assert_fails(&job, &["--memory", "lots"], &["--memory", "lots"]);
    case.assert_fails(
        &job,
        &["--memory", "12 parsecs"],
        &["--memory", "12 parsecs"],
    );
}

#[test]
fn unknown_mode_names_the_option_and_value() {
    let case = Case::new();
    let input = case.obd_input(1);
    let job = case.job(&job_text(&input, "event_time", WINDOW_STEPS));
    case.assert_fails(&job, &["--mode", "sideways"], &["mode", "sideways"]);
}

#[test]
fn toml_syntax_error_names_the_line() {
    let case = Case::new();
    let input = case.obd_input(1);
    // Line 7: an unterminated string.
    let text = job_text(&input, "event_time", "[[steps]]\nfilter = \"speed >= 0\n");
    assert_eq!(text.lines().nth(6), Some("filter = \"speed >= 0"));
    let job = case.job(&text);
    case.assert_fails(&job, &[], &["job.toml", "line 7"]);
}

#[test]
fn misspelt_field_names_the_field_and_line() {
    let case = Case::new();
    let input = case.obd_input(1);
    let text = job_text(&input, "event_time", "[[steps]]\nfitler = \"speed >= 0\"\n");
    assert_eq!(text.lines().nth(6), Some("fitler = \"speed >= 0\""));
    let job = case.job(&text);
    case.assert_fails(&job, &[], &["job.toml", "fitler", "line 7"]);
}

#[test]
fn unparsable_filter_names_the_step_line_and_position() {
    let case = Case::new();
    let input = case.obd_input(1);
    let text = job_text(
        &input,
        "event_time",
        "[[steps]]\nfilter = \"speed >= 0\"\n\n[[steps]]\nfilter = \"speed > > 3\"\n",
    );
    assert_eq!(text.lines().nth(9), Some("filter = \"speed > > 3\""));
    let job = case.job(&text);
    // The step starts at line 9 (`[[steps]]`).
    case.assert_fails(
        &job,
        &[],
        &["job.toml", "line 9", "steps[1].filter", "column 9"],
    );
}

#[test]
fn filter_on_unknown_column_names_the_column() {
    let case = Case::new();
    let input = case.obd_input(1);
    let text = job_text(&input, "event_time", "[[steps]]\nfilter = \"sped > 3\"\n");
    let job = case.job(&text);
    let stderr = case.assert_fails(
        &job,
        &[],
        &["job.toml", "line 6", "steps[0].filter", "`sped`"],
    );
    assert!(stderr.contains("not found"), "{stderr}");
}
