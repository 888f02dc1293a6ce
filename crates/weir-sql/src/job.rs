//! `Job::sql`: a job from a SQL script, in the library.
//!
//! Owns [`SqlJob`], the extension trait that gives [`Job`] its `sql`
//! constructor (the graph crate cannot name SQL: layers point one way).
//! May use `super::script`.

use std::path::Path;

use weir_core::error::Result;
use weir_engine::graph::Job;

use crate::script::{Script, ScriptOptions};

/// Builds a [`Job`] from weir SQL (`CREATE TABLE`, `CREATE VIEW`,
/// `INSERT INTO … SELECT …`): `Job::sql(text)` with this trait in scope.
///
/// Relative paths in `WITH ('path' = …)` are relative to the current
/// directory. The run's mode and parallelism are the `ExecConfig`'s: a
/// script's `SET` statements are refused here, as `EXPLAIN` is (plan the
/// script with [`Script`] to read them).
///
/// # Examples
///
/// ```
/// use weir::sql::SqlJob;
/// use weir::{ExecConfig, ExecMode, Job};
///
/// let dir = tempfile::tempdir()?;
/// let readings = weir::workloads::vehicles::generate_obd(5, 10, 1, 100);
/// weir::workloads::vehicles::write_parquet_dir(&dir.path().join("obd"), &readings, 1, 1000)?;
/// let job = Job::sql(&format!(
///     "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,
///        WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND)
///        WITH ('connector' = 'parquet', 'path' = '{dir}/obd');
///      CREATE TABLE fast (vehicle_id BIGINT, n BIGINT)
///        WITH ('connector' = 'parquet', 'path' = '{dir}/fast');
///      INSERT INTO fast
///      SELECT vehicle_id, COUNT(*) FILTER (WHERE speed > 50) AS n
///      FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
///      GROUP BY window_start, window_end, vehicle_id;",
///     dir = dir.path().display()
/// ))?;
/// let metrics = job.run(&ExecConfig::new(ExecMode::Batch))?;
/// assert_eq!(metrics.rows_in, 5 * 10 * 3);
/// assert_eq!(metrics.rows_out, 5); // one minute window per vehicle
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SqlJob: Sized {
    /// The job `text` describes.
    fn sql(text: &str) -> Result<Self>;
}

impl SqlJob for Job {
    fn sql(text: &str) -> Result<Job> {
        let script = Script::try_with(text, Path::new("."), ScriptOptions::default())?;
        let refuse = |what: &str| {
            Err(weir_core::error::Error::option(
                "sql",
                format!("{what} in Job::sql: set it on the ExecConfig (or plan with Script)"),
            ))
        };
        if script.settings() != &crate::Settings::default() {
            return refuse("SET");
        }
        if !script.explained().is_empty() {
            return refuse("EXPLAIN");
        }
        if script.queries() == 0 {
            return Err(weir_core::error::Error::option(
                "sql",
                "the script has no INSERT INTO or SELECT: nothing to run",
            ));
        }
        Ok(script.job().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_explain_and_an_empty_script_are_refused() {
        let table = "CREATE TABLE t (a BIGINT) WITH ('connector' = 'print');";
        for (text, says) in [
            (
                format!("SET 'parallelism.default' = '2';{table}"),
                "SET in Job::sql",
            ),
            (table.to_string(), "nothing to run"),
        ] {
            let Err(err) = Job::sql(&text) else {
                panic!("{text} was accepted")
            };
            let err = err.to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
