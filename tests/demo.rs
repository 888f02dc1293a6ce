//! `weir demo` on a small size: generates data, runs both modes, and they agree.

use std::process::Command;

#[test]
fn demo_generates_data_and_both_modes_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "demo",
            "--vehicles",
            "20",
            "--seconds",
            "120",
            "--parallelism",
            "3",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .matches("results identical in both modes: yes")
            .count(),
        2,
        "the speed job and the seed's join agree in both modes: {stdout}"
    );
    assert!(stdout.contains("the seed's join"), "{stdout}");
    assert!(
        stdout.contains("as a live replay") && stdout.contains("results identical to batch: yes"),
        "the paced live replay agrees with batch: {stdout}"
    );
    assert!(dir.path().join("app").is_dir(), "app readings were written");
    // deviation statistics: the app reads the same true speed with ±2 km/h
    // noise, the OBD ±1 km/h averaged over 3 readings: |diff| is about 1
    let line = stdout
        .lines()
        .find(|l| l.starts_with("obd - app speed over"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let mean_abs: f64 = line
        .split("mean |diff| ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(mean_abs > 0.3 && mean_abs < 2.5, "{line}");
    assert!(stdout.contains("app speed most off: vehicle "), "{stdout}");
    // 20 vehicles x 120 s x 3 readings
    assert!(stdout.contains("input: 7,200 rows"), "{stdout}");
    assert!(
        stdout.contains("batch") && stdout.contains("pipelined"),
        "{stdout}"
    );
    let files = std::fs::read_dir(&data).unwrap().count();
    assert!(files >= 1, "sample data was written");

    // A second run reuses the data instead of regenerating it.
    let before = std::fs::metadata(data.join("part-00000.parquet"))
        .unwrap()
        .modified()
        .unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["demo", "--vehicles", "99", "--seconds", "1", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("input: 7,200 rows"));
    let after = std::fs::metadata(data.join("part-00000.parquet"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}
