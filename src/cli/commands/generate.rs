//! `weir generate`: write sample OBD speed readings as Parquet (vehicles ×
//! seconds × 3 rows).
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Vehicles.
    #[arg(long, default_value_t = 1000)]
    pub vehicles: usize,
    /// Seconds of readings.
    #[arg(long, default_value_t = 900)]
    pub seconds: usize,
    /// Files to split the data into.
    #[arg(long, default_value_t = 4)]
    pub files: usize,
    /// `obd` (3 readings/s, up to 30 s out of order) or `app` (~1/s, up to 9 min late).
    #[arg(long, default_value = "obd")]
    pub kind: String,
}

/// Runs `weir generate`.
pub fn run(args: GenerateArgs) -> Result<ExitCode> {
    let GenerateArgs {
        out,
        vehicles,
        seconds,
        files,
        kind,
    } = args;
    let batches = match kind.as_str() {
        "obd" => weir_workloads::vehicles::generate_obd(vehicles, seconds, 42, 65_536),
        "app" => weir_workloads::vehicles::seed::generate_app(vehicles, seconds, 42, 65_536),
        other => {
            return Err(weir_core::error::Error::option(
                "--kind",
                format!("unknown data kind `{other}` (use obd or app)"),
            ))
        }
    };
    weir_workloads::vehicles::write_parquet_dir(&out, &batches, files, 131_072)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    eprintln!(
        "wrote {} rows to {}",
        weir_engine::format::thousands(rows as u64),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
