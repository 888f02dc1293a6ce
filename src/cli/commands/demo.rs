//! `weir demo`: generate sample vehicle data (if absent) and run the speed
//! job in both modes.
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where the sample data lives.
    #[arg(long, default_value = "data/obd")]
    pub data_dir: PathBuf,
    /// Vehicles to generate.
    #[arg(long, default_value_t = 1000)]
    pub vehicles: usize,
    /// Seconds of history to generate.
    #[arg(long, default_value_t = 900)]
    pub seconds: usize,
    /// Parallelism of both runs (default: number of cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Memory budget, e.g. 256MiB.
    #[arg(long, default_value = "512MiB")]
    pub memory: String,
}

/// Runs `weir demo`.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let DemoArgs {
        data_dir,
        vehicles,
        seconds,
        parallelism,
        memory,
    } = args;
    let opts = DemoOptions {
        data_dir,
        vehicles,
        seconds,
        parallelism: parallelism.unwrap_or_else(default_parallelism),
        memory: parse_size("--memory", &memory)?,
    };
    println!(
        "weir demo: per-vehicle 1 s average speed over OBD readings in {} (watermark delay 30 s)",
        opts.data_dir.display()
    );
    let report = run_demo(&opts)?;
    println!(
        "input: {} rows, parallelism {}\n",
        weir_engine::format::thousands(report.input_rows),
        opts.parallelism
    );
    print!("{}", metrics_table(&report.runs));
    let same = |r: &std::result::Result<(), String>, rows: usize| match r {
        Ok(()) => format!("yes ({} rows)", weir_engine::format::thousands(rows as u64)),
        Err(why) => format!("NO: {why}"),
    };
    println!(
        "\nresults identical in both modes: {}",
        same(&report.identical, report.output_rows[0])
    );
    println!(
        "\nthe seed's join: OBD 1 s averages joined with phone-app 1 s averages in {} (watermark delay 9 min)\n",
        weir_workloads::demo::app_dir(&opts.data_dir).display()
    );
    print!("{}", metrics_table(&report.join_runs));
    println!(
        "\nresults identical in both modes: {}",
        same(&report.join_identical, report.join_rows[0])
    );
    println!(
        "\nthe same join as a live replay (pipelined, both inputs paced at {:.0}x real time): {:.2} s, results identical to batch: {}",
        report.live_speed,
        report.live_run.elapsed.as_secs_f64(),
        same(&report.live_identical, report.join_rows[0])
    );
    let d = &report.deviation;
    println!(
        "\nobd - app speed over {} vehicle-seconds: mean {:+.2} km/h, mean |diff| {:.2}, p95 |diff| {:.2}",
        weir_engine::format::thousands(d.seconds as u64),
        d.mean,
        d.mean_abs,
        d.p95_abs
    );
    let worst: Vec<String> = d
        .worst
        .iter()
        .map(|(v, m)| format!("vehicle {v} ({m:.2} km/h)"))
        .collect();
    println!("app speed most off: {}", worst.join(", "));
    if report.identical.is_ok() && report.join_identical.is_ok() && report.live_identical.is_ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
