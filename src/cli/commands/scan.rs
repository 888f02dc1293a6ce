//! `weir scan`: read Parquet files with plain arrow-rs and print rows, time
//! and peak RSS as JSON (bench baseline).
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir scan`.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Files or directories.
    pub paths: Vec<PathBuf>,
}

/// Runs `weir scan`.
pub fn run(args: ScanArgs) -> Result<ExitCode> {
    let ScanArgs { paths } = args;
    let started = std::time::Instant::now();
    let rows = crate::bench::bare_scan(&paths)?;
    let v = serde_json::json!({
        "rows_in": rows,
        "rows_out": 0,
        "seconds": started.elapsed().as_secs_f64(),
        "peak_rss": weir_engine::exec::peak_rss(),
    });
    println!("{v}");
    Ok(ExitCode::SUCCESS)
}
