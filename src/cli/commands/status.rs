//! `weir status TARGET`: whether an output directory is complete, that is
//! which of the shards writing it committed their parts, and for a
//! partitioned target which partitions are committed (`_SUCCESS`).
//!
//! May use every layer of the library.

use super::*;

/// Arguments of `weir status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The output directory (a file sink's target).
    pub target: PathBuf,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `weir status`: exit code 0 if the target is complete, 1 if not.
pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let status = weir_connectors::target_status(&args.target)?;
    if args.json {
        let text = serde_json::to_string_pretty(&status)
            .map_err(|e| weir_core::error::Error::option("--json", e.to_string()))?;
        println!("{text}");
    } else {
        let path = args.target.display();
        match status.shards {
            None => println!(
                "{path}: complete ({} parts, written by one process)",
                status.parts
            ),
            Some(n) => {
                let adopted = match status.adopted {
                    0 => String::new(),
                    a => format!(", {a} adopted from an earlier shard count"),
                };
                println!(
                    "{path}: {} of {n} shards committed ({} parts{adopted})",
                    status.committed.len(),
                    status.parts
                );
                if !status.missing.is_empty() {
                    let missing: Vec<String> =
                        status.missing.iter().map(|i| format!("{i}/{n}")).collect();
                    println!("missing: shard {}", missing.join(", shard "));
                }
            }
        }
        if !status.partitions.is_empty() {
            let open: Vec<&str> = status
                .partitions
                .iter()
                .filter(|(_, committed)| !*committed)
                .map(|(p, _)| p.as_str())
                .collect();
            println!(
                "partitions: {} ({} committed with _SUCCESS)",
                status.partitions.len(),
                status.partitions.len() - open.len()
            );
            if !open.is_empty() {
                println!("not committed: {}", open.join(", "));
            }
        }
        for p in &status.problems {
            println!("problem: {p}");
        }
    }
    Ok(if status.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
