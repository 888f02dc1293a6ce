//! Job files' `[source]` and sink tables are tagged by `type`: each
//! connector takes only its own keys. A key of another connector, a value
//! of the wrong type or an unknown type is refused when the file is loaded,
//! naming the file, the key's line and the key, and nothing is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use weir::workloads::vehicles::{generate_obd, write_parquet_dir};

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    /// Sample OBD readings in `in/`, for sources that must exist.
    fn input(&self) -> PathBuf {
        let dir = self.dir.path().join("in");
        let batches = generate_obd(3, 20, 7, 60);
        write_parquet_dir(&dir, &batches, 1, 60).expect("write sample parquet");
        dir
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out.parquet")
    }

    fn run(&self, text: &str, extra: &[&str]) -> (Output, String) {
        let job = self.dir.path().join("job.toml");
        std::fs::write(&job, text).expect("write job");
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&job)
            .args(extra)
            .output()
            .expect("run weir");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output, stderr)
    }

    /// Runs `text`, expects a failure whose message holds every `expected`,
    /// and that no output was written.
    fn assert_refused(&self, text: &str, extra: &[&str], expected: &[&str]) -> String {
        let (output, stderr) = self.run(text, extra);
        assert!(!output.status.success(), "expected a failure:\n{stderr}");
        assert!(!stderr.contains("panicked"), "weir panicked:\n{stderr}");
        for e in expected {
            assert!(
                stderr.contains(e),
                "stderr does not mention `{e}`:\n{stderr}"
            );
        }
        assert!(!self.out().exists(), "nothing is written");
        stderr
    }
}

fn parquet_job(input: &Path, source_extra: &str, out: &Path) -> String {
    format!(
        "[source]\npath = \"{}\"\ntime_column = \"event_time\"\n{source_extra}\n\
         [sink]\ntype = \"parquet\"\npath = \"{}\"\n",
        input.display(),
        out.display()
    )
}

#[test]
fn a_key_of_another_connector_is_refused_with_its_line_and_the_keys_taken() {
    let case = Case::new();
    let text = parquet_job(&case.input(), "topic = \"obd\"", &case.out());
    assert_eq!(text.lines().nth(3), Some("topic = \"obd\""));
    let stderr = case.assert_refused(
        &text,
        &[],
        &[
            "job.toml",
            "line 4",
            "source.topic",
            "a `parquet` source takes",
        ],
    );
    // the list names the connector's keys and the event-time ones, not Kafka's
    for key in [
        "`path`",
        "`columns`",
        "`from`",
        "`time_column`",
        "`watermark_delay`",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
    assert!(!stderr.contains("`brokers`"), "{stderr}");
}

#[test]
fn a_value_of_the_wrong_type_names_its_key_and_line() {
    let case = Case::new();
    let text = parquet_job(
        &case.input(),
        "watermark_delay = \"1s\"\nbatch_size = \"big\"",
        &case.out(),
    );
    assert_eq!(text.lines().nth(4), Some("batch_size = \"big\""));
    case.assert_refused(&text, &[], &["line 5", "source.batch_size", "invalid type"]);
}

#[test]
fn an_unknown_type_lists_the_connectors() {
    let case = Case::new();
    let text = format!(
        "[source]\ntype = \"ftp\"\npath = \"x\"\n\n[sink]\npath = \"{}\"\n",
        case.out().display()
    );
    case.assert_refused(
        &text,
        &[],
        &[
            "line 2",
            "source.type",
            "`ftp`",
            "parquet, csv, stdin",
            "generator",
        ],
    );
}

#[test]
fn time_travel_on_a_csv_source_is_refused_naming_the_key_or_the_flag() {
    let case = Case::new();
    let csv = case.dir.path().join("obd.csv");
    std::fs::write(&csv, "vehicle_id,event_time,speed\n1,1000,3.5\n").unwrap();
    let job = |extra: &str| {
        format!(
            "[source]\ntype = \"csv\"\npath = \"{}\"\ntime_column = \"event_time\"\n{extra}\n\
             [sink]\npath = \"{}\"\n",
            csv.display(),
            case.out().display()
        )
    };
    case.assert_refused(
        &job("from = \"0\""),
        &[],
        &["line 5", "source.from", "apply to Parquet sources", "`csv`"],
    );
    let stderr = case.assert_refused(&job(""), &["--until", "5000"], &["--until", "`csv`"]);
    assert!(
        !stderr.contains("source.until"),
        "names the flag:\n{stderr}"
    );
}

#[test]
fn sink_tables_take_only_their_connectors_keys() {
    let case = Case::new();
    let input = case.input();
    let sink = |table: &str| {
        format!(
            "[source]\npath = \"{}\"\ntime_column = \"event_time\"\n\n[sink]\n{table}\n",
            input.display()
        )
    };
    // a stdout sink has nowhere to put a path: refused, not ignored
    let path = case.out().display().to_string();
    case.assert_refused(
        &sink(&format!("type = \"stdout\"\npath = \"{path}\"")),
        &[],
        &["line 7", "sink.path", "a `stdout` sink takes only `type`"],
    );
    // a file sink does not take a Kafka key; a Kafka sink does not take a path
    case.assert_refused(
        &sink(&format!("path = \"{path}\"\ntopic = \"t\"")),
        &[],
        &["line 7", "sink.topic", "a `file` sink takes `type`, `partition_by`, `partition_commit_delay`, `partition_commit`, `partition_time_pattern`, `path`"],
    );
    let stderr = case.assert_refused(
        &sink(&format!(
            "type = \"kafka\"\ntopic = \"t\"\npath = \"{path}\""
        )),
        &[],
        &[
            "line 8",
            "sink.path",
            "a `kafka` sink takes",
            "`brokers`",
            "`topic`",
        ],
    );
    assert!(!stderr.contains("`max_len`"), "{stderr}");
}

#[test]
fn a_joins_right_source_is_checked_when_the_file_is_loaded() {
    let case = Case::new();
    let input = case.input();
    let text = format!(
        "[source]\npath = \"{0}\"\ntime_column = \"event_time\"\n\n\
         [[steps]]\nkey_by = [\"vehicle_id\"]\n\n\
         [[steps]]\n[steps.join]\nkind = \"window\"\non = [\"vehicle_id\"]\nwindow = {{ kind = \"tumbling\", size = \"1s\" }}\n\
         [steps.join.right.source]\npath = \"{0}\"\ntime_column = \"event_time\"\nkeys = [\"a\"]\n\n\
         [sink]\npath = \"{1}\"\n",
        input.display(),
        case.out().display()
    );
    assert_eq!(text.lines().nth(15), Some("keys = [\"a\"]"));
    case.assert_refused(
        &text,
        &[],
        &[
            "line 16",
            "steps[1].join.right.source.keys",
            "a `parquet` source",
        ],
    );
}

#[test]
fn a_generator_takes_a_speed_and_refuses_watermark_keys_it_would_ignore() {
    let case = Case::new();
    let job = |extra: &str| {
        format!(
            "[source]\ntype = \"generator\"\ngenerator = \"vehicles\"\nvehicles = 5\n\
             events = 300\n{extra}\n\n[sink]\npath = \"{}\"\n",
            case.out().display()
        )
    };
    case.assert_refused(
        &job("allowed_lateness = \"1s\""),
        &[],
        &["source.allowed_lateness", "sets its own watermarks"],
    );
    let (output, stderr) = case.run(&job("speed = \"max\""), &["--json"]);
    assert!(output.status.success(), "{stderr}");
    let metrics: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON metrics");
    assert_eq!(metrics["rows_in"].as_u64(), Some(300), "{metrics}");
    assert!(case.out().exists());
}
