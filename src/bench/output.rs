//! Reading a bench run's output back and comparing two modes' outputs.

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_core::error::{Error, Result};

/// Every batch of a job's output: one Parquet or JSON-lines file, or a
/// directory of part files.
pub fn read_output(path: &Path) -> Result<Vec<RecordBatch>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        f.sort();
        f
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for file in files {
        let open = || std::fs::File::open(&file).map_err(|e| Error::io(&file, e));
        if file.extension().is_some_and(|e| e == "parquet") {
            let perr = |e: parquet::errors::ParquetError| Error::Parquet {
                path: file.clone(),
                message: e.to_string(),
            };
            let reader = ParquetRecordBatchReaderBuilder::try_new(open()?)
                .map_err(perr)?
                .build()
                .map_err(perr)?;
            for b in reader {
                out.push(b?);
            }
        } else if file.extension().is_some_and(|e| e == "csv") {
            let format = arrow_csv::reader::Format::default().with_header(true);
            let (schema, _) = format.infer_schema(open()?, None)?;
            let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                .with_format(format)
                .build(open()?)?;
            for b in reader {
                out.push(b?);
            }
        } else {
            let mut buf = std::io::BufReader::new(open()?);
            let (schema, _) = arrow_json::reader::infer_json_schema(&mut buf, None)?;
            let reader = arrow_json::ReaderBuilder::new(Arc::new(schema))
                .build(std::io::BufReader::new(open()?))?;
            for b in reader {
                out.push(b?);
            }
        }
    }
    Ok(out)
}

/// How two outputs compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// The same rows (floats within 1e-9).
    Same,
    /// Changelogs (`op` column): their rows may differ between modes.
    Changelog,
    /// Different rows, and where.
    Differ(String),
}

/// Compares two outputs as sets of rows (see [`weir_core::compare::same_rows`]).
pub fn compare_outputs(a: &[RecordBatch], b: &[RecordBatch]) -> Comparison {
    let schema = match a.first().or(b.first()) {
        Some(batch) => batch.schema(),
        None => return Comparison::Same,
    };
    if schema.index_of("op").is_ok() {
        return Comparison::Changelog;
    }
    match weir_core::compare::same_rows(a, b, &schema, 1e-9) {
        Ok(()) => Comparison::Same,
        Err(e) => Comparison::Differ(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, StringArray};

    fn batch(k: Vec<i64>, op: Option<Vec<&str>>) -> RecordBatch {
        let mut cols: Vec<(&str, arrow_array::ArrayRef)> =
            vec![("k", Arc::new(Int64Array::from(k)) as _)];
        if let Some(op) = op {
            cols.push(("op", Arc::new(StringArray::from(op)) as _));
        }
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn csv_outputs_are_read_back_with_their_header() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-00000.csv"), "k,v\n1,x\n2,\n").unwrap();
        std::fs::write(dir.path().join("part-00001.csv"), "k,v\n").unwrap();
        let out = read_output(dir.path()).unwrap();
        let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 2);
        let k = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(k.values().to_vec(), vec![1, 2]);
        assert!(out[0].column(1).is_null(1), "an empty field is null");
        assert_eq!(compare_outputs(&out, &out), Comparison::Same);
    }

    #[test]
    fn outputs_compare_as_row_sets_and_changelogs_are_not_judged() {
        let a = [batch(vec![1, 2, 3], None)];
        let shuffled = [batch(vec![3], None), batch(vec![1, 2], None)];
        assert_eq!(compare_outputs(&a, &shuffled), Comparison::Same);
        // a deliberately different result is flagged
        let other = [batch(vec![1, 2, 4], None)];
        assert!(matches!(compare_outputs(&a, &other), Comparison::Differ(_)));
        let fewer = [batch(vec![1, 2], None)];
        assert!(matches!(compare_outputs(&a, &fewer), Comparison::Differ(_)));
        let log = [batch(vec![1], Some(vec!["insert"]))];
        assert_eq!(compare_outputs(&log, &log), Comparison::Changelog);
    }
}
