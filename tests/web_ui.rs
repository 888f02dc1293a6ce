//! The web UI in a real browser: headless Chromium opens the page of a
//! running job; the DOM it renders shows every operator of the plan and
//! figures that change between two snapshots; a screenshot is kept under
//! `target/web-ui/` as an artifact.
//!
//! Without Chromium (`chromium`, `chromium-browser`, `google-chrome`, or
//! `WEIR_CHROMIUM`) the test skips with one line, unless
//! `WEIR_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs it) makes
//! that a failure.

mod common;

use common::watch::{window_job, Watched};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEIR_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn browser_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        let how = "install Chromium (Debian: apt-get install chromium) or set WEIR_CHROMIUM";
        if std::env::var("WEIR_REQUIRE_BROWSER").is_ok_and(|v| v.trim() == "1") {
            panic!("no Chromium, and WEIR_REQUIRE_BROWSER=1 requires it: {how}");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped the web UI test: no Chromium; to run it, {how} \
             (WEIR_REQUIRE_BROWSER=1 makes this a failure)"
        );
    }
    found
}

/// Chromium's headless flags: no sandbox (CI runs as root), no GPU, a
/// profile of its own, and time for the page's first fetches.
fn headless(browser: &PathBuf, profile: &std::path::Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(["--virtual-time-budget=4000", "--window-size=1300,1000"])
    .stderr(Stdio::null());
    c
}

/// The text of the first element carrying `attrs` in a serialized DOM.
fn text_of(dom: &str, attrs: &str) -> Option<String> {
    let at = dom.find(attrs)?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].to_string())
}

#[test]
fn the_web_ui_of_a_running_job_shows_its_operators_and_moving_figures() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 100, 600, 2);
    let out = dir.path().join("out");
    // paced at 50x: 600 s of event time last about 12 s
    let job = window_job(
        dir.path(),
        &data,
        "speed = \"50x\"",
        &format!(
            "[sink]\ntype = \"parquet\"\npath = {:?}",
            out.display().to_string()
        ),
    );
    let w = Watched::start(
        &job,
        &["--parallelism", "2", "--linger", "30s"],
        Stdio::null(),
    );
    let plan = w.wait_for("running with rows at the sink", |j| {
        j["state"] == "running" && j["operators"][2]["rows_in"].as_u64().unwrap_or(0) > 0
    });
    let names: Vec<String> = plan["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["parquet_source", "window", "parquet_sink"]);

    let url = format!("http://{}/", w.address);
    let profile = tempfile::tempdir().unwrap();
    let dump = || {
        let o = headless(&browser, profile.path())
            .arg("--dump-dom")
            .arg(&url)
            .output()
            .unwrap();
        assert!(o.status.success(), "chromium --dump-dom failed");
        String::from_utf8(o.stdout).unwrap()
    };
    let sink_rows = "data-figure=\"rows_in\" data-operator=\"parquet_sink\"";
    let first = dump();
    for name in &names {
        let boxed = format!("class=\"op\" data-operator=\"{name}\"");
        assert!(first.contains(&boxed), "the graph draws {name}:\n{first}");
        assert!(
            first.contains(&format!("<tr data-operator=\"{name}\"")),
            "the table lists {name}"
        );
    }
    assert!(
        first.contains("class=\"edge hash\""),
        "the hash edge is drawn"
    );
    let before = text_of(&first, sink_rows).expect("the sink's rows are shown");
    std::thread::sleep(Duration::from_millis(2000));
    let second = dump();
    let after = text_of(&second, sink_rows).expect("the sink's rows are shown");
    assert_ne!(before, after, "the figures move between two snapshots");
    assert!(second.contains("badge running"), "the state is shown");

    // the picture, kept as a test artifact
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../web-ui");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("running-job.png");
    let _ = std::fs::remove_file(&shot);
    let o = headless(&browser, profile.path())
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium --screenshot failed");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}
