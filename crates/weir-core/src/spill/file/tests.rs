//! Unit tests of `crates/weir-core/src/spill/file.rs`.

use super::*;
use crate::spill::{SpillCompression, SpillManager};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
    ]))
}

fn batch(start: i64, rows: i64) -> RecordBatch {
    let ids = Int64Array::from_iter((start..start + rows).map(|i| (i % 7 != 3).then_some(i)));
    let scores = Float64Array::from_iter(
        (start..start + rows).map(|i| (i % 5 != 0).then_some(i as f64 / 4.0)),
    );
    let names = StringArray::from_iter(
        (start..start + rows).map(|i| (i % 11 != 2).then(|| format!("name-{i}"))),
    );
    let flags =
        BooleanArray::from_iter((start..start + rows).map(|i| (i % 3 != 1).then_some(i % 2 == 0)));
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(ids),
            Arc::new(scores),
            Arc::new(names),
            Arc::new(flags),
        ],
    )
    .unwrap()
}

/// A manager writing uncompressed files (read back zero-copy).
fn plain() -> Arc<SpillManager> {
    SpillManager::try_with_compression(None, SpillCompression::None).unwrap()
}

#[test]
fn compressed_files_round_trip_and_are_smaller() {
    // repetitive rows, as spilled state mostly is
    let batches: Vec<RecordBatch> = (0..8).map(|i| batch(i * 2000, 2000)).collect();
    let plain_bytes = write_file(&plain(), &batches).bytes();
    for compression in [SpillCompression::Lz4, SpillCompression::Zstd] {
        let manager = SpillManager::try_with_compression(None, compression).unwrap();
        assert_eq!(manager.compression(), compression);
        let file = write_file(&manager, &batches);
        assert_eq!(file.rows(), 16_000);
        assert!(
            file.bytes() * 3 < plain_bytes * 2,
            "{compression}: {} bytes, uncompressed {plain_bytes}",
            file.bytes()
        );
        let mut reader = file.read().unwrap();
        let back: Vec<RecordBatch> = reader.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!(back, batches, "{compression}");
        assert_eq!(reader.batch(3).unwrap(), batches[3], "{compression}");
    }
}

#[test]
fn compression_names_parse_and_a_wrong_one_is_named() {
    for (name, want) in [
        ("lz4", SpillCompression::Lz4),
        ("ZSTD", SpillCompression::Zstd),
        ("none", SpillCompression::None),
    ] {
        let got: SpillCompression = name.parse().unwrap();
        assert_eq!(got, want);
        assert_eq!(got.to_string(), name.to_ascii_lowercase());
    }
    assert_eq!(SpillCompression::default(), SpillCompression::None);
    let err = "gzip".parse::<SpillCompression>().unwrap_err().to_string();
    assert!(
        err.contains("spill-compression") && err.contains("gzip"),
        "{err}"
    );
}

fn write_file(manager: &SpillManager, batches: &[RecordBatch]) -> SpillFile {
    let mut writer = manager.create_writer(&schema(), "test").unwrap();
    for b in batches {
        writer.write(b).unwrap();
    }
    writer.finish().unwrap()
}

/// True if `ptr` lies inside `[base, base + len)`.
fn inside(ptr: *const u8, base: *const u8, len: usize) -> bool {
    let (ptr, base) = (ptr as usize, base as usize);
    ptr >= base && ptr < base + len
}

/// Resident kB of the mapping in this process (`/proc/self/smaps`).
fn resident_pages(reader: &SpillReader) -> usize {
    let base = reader.data.as_ptr() as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= base && base < hi;
                continue;
            }
        }
        if inside && line.starts_with("Rss:") {
            return line.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("mapping not found")
}

#[test]
fn released_pages_leave_the_resident_set_and_batches_stay_readable() {
    let manager = plain();
    let batches: Vec<RecordBatch> = (0..8).map(|i| batch(i * 5000, 5000)).collect();
    let file = write_file(&manager, &batches);
    let mut reader = file.read().unwrap();
    let mut back = Vec::new();
    for _ in 0..6 {
        back.push(reader.next().unwrap().unwrap());
    }
    // touch every byte handed out so far
    let sum: f64 = back
        .iter()
        .map(|b| {
            b.column(1)
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>()
        })
        .sum();
    let before = resident_pages(&reader);
    reader.release_consumed();
    let after = resident_pages(&reader);
    assert!(
        after + 80 < before,
        "five batches' pages released (kB): {before} -> {after}"
    );
    reader.release_consumed(); // nothing more to release: a no-op
                               // batches handed out before still read the same values
    assert_eq!(back, batches[..6]);
    let again: f64 = back
        .iter()
        .map(|b| {
            b.column(1)
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>()
        })
        .sum();
    assert_eq!(sum, again);
    let rest: Vec<RecordBatch> = reader.collect::<Result<_>>().unwrap();
    assert_eq!(rest, batches[6..]);
}

#[test]
fn round_trip_is_equal_and_zero_copy() {
    let manager = plain();
    let full = batch(0, 1000);
    let batches = vec![batch(-50, 100), full.slice(317, 45), batch(7, 1), full];
    let file = write_file(&manager, &batches);
    assert_eq!(file.rows(), 1146);
    assert_eq!(file.bytes(), std::fs::metadata(file.path()).unwrap().len());
    let metrics = manager.metrics();
    assert_eq!(
        (metrics.files(), metrics.rows(), metrics.bytes()),
        (1, 1146, file.bytes())
    );

    let mut reader = file.read().unwrap();
    assert_eq!(reader.schema(), schema());
    assert_eq!(reader.num_batches(), 4);
    let (base, len) = (reader.data.as_ptr(), reader.data.len());
    assert_eq!(len as u64, file.bytes());
    let back: Vec<RecordBatch> = reader.by_ref().collect::<Result<_>>().unwrap();
    assert_eq!(back, batches);

    for b in &back {
        for (i, ptr) in buffer_pointers(b).into_iter().enumerate() {
            assert!(
                inside(ptr, base, len),
                "buffer {i} is a copy, not a slice of the map"
            );
            assert_eq!((ptr as usize - base as usize) % ALIGNMENT, 0, "buffer {i}");
        }
    }
}

/// Every buffer of a [`batch`]-shaped batch: values, offsets, nulls.
fn buffer_pointers(b: &RecordBatch) -> Vec<*const u8> {
    let ids = b.column(0).as_primitive::<Int64Type>();
    let scores = b.column(1).as_primitive::<Float64Type>();
    let names = b.column(2).as_string::<i32>();
    let flags = b.column(3).as_boolean();
    let mut pointers = vec![
        ids.values().inner().as_ptr(),
        scores.values().inner().as_ptr(),
        names.offsets().inner().inner().as_ptr(),
        names.values().as_ptr(),
        flags.values().inner().as_ptr(),
    ];
    let columns = [b.column(0), b.column(1), b.column(2), b.column(3)];
    pointers.extend(
        columns
            .iter()
            .filter_map(|c| c.nulls())
            .map(|n| n.buffer().as_ptr()),
    );
    pointers
}

#[test]
fn owned_copy_is_equal_and_shares_nothing_with_the_map() {
    let manager = plain();
    let full = batch(0, 1000);
    // a slice, a single row and whole batches, all with nulls
    let batches = vec![full.slice(317, 45), batch(7, 1), full];
    let file = write_file(&manager, &batches);
    let mut reader = file.read().unwrap();
    let (base, len) = (reader.data.as_ptr(), reader.data.len());
    let back: Vec<RecordBatch> = reader.by_ref().collect::<Result<_>>().unwrap();
    for (b, want) in back.iter().zip(&batches) {
        let copy = owned_copy(b);
        assert_eq!(&copy, want);
        assert_eq!(copy.schema(), schema());
        for (i, ptr) in buffer_pointers(&copy).into_iter().enumerate() {
            assert!(
                !inside(ptr, base, len),
                "buffer {i} still points into the map"
            );
        }
    }
    drop(reader);
    drop(file);
    // the copies outlive the file and its map
    assert_eq!(owned_copy(&back[2]), batches[2]);
}

#[test]
fn reading_forward_gives_consumed_pages_back_and_earlier_batches_stay_valid() {
    let manager = plain();
    // about 5 MiB in 40 batches
    let batches: Vec<RecordBatch> = (0..40).map(|i| batch(i * 4000, 4000)).collect();
    let file = write_file(&manager, &batches);
    let mut reader = file.read().unwrap();
    let mut read = Vec::new();
    for b in reader.by_ref() {
        read.push(b.unwrap());
    }
    let released = reader.released_bytes();
    assert!(released as u64 >= file.bytes() / 2, "released {released}");
    assert!((released as u64) < file.bytes(), "the last blocks are kept");
    // batches in given-back pages read the same (paged in from the file)
    assert_eq!(read, batches);
    drop(reader);
    drop(file);
    assert_eq!(read, batches, "and after the file is gone");
}

#[test]
fn batches_outlive_reader_and_file() {
    let manager = plain();
    let file = write_file(&manager, &[batch(0, 10)]);
    let path = file.path().to_path_buf();
    let back: Vec<RecordBatch> = file.read().unwrap().collect::<Result<_>>().unwrap();
    assert!(path.exists());
    drop(file);
    assert!(!path.exists(), "dropping the SpillFile deletes it");
    assert_eq!(back, vec![batch(0, 10)]);
}

#[test]
fn truncated_file_is_an_error_naming_the_path() {
    let manager = plain();
    let file = write_file(&manager, &[batch(0, 500), batch(500, 500)]);
    let original = std::fs::read(file.path()).unwrap();
    for keep in [0, 5, 17, original.len() / 2, original.len() - 1] {
        std::fs::write(file.path(), &original[..keep]).unwrap();
        let err = file.read().unwrap_err();
        assert!(
            matches!(&err, Error::Io { path, .. } if path == file.path()),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&file.path().display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn file_with_body_cut_out_is_an_error_not_a_panic() {
    // Keep the footer but drop part of the data before it: the blocks the
    // footer lists then point past the end or at the wrong bytes.
    let manager = plain();
    let file = write_file(&manager, &[batch(0, 500), batch(500, 500)]);
    let original = std::fs::read(file.path()).unwrap();
    let mut cut = original[..400].to_vec();
    cut.extend_from_slice(&original[original.len() - 600..]);
    std::fs::write(file.path(), &cut).unwrap();
    let result = file.read().and_then(|r| r.collect::<Result<Vec<_>>>());
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains(&file.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn corrupt_bytes_never_panic() {
    let manager = plain();
    let file = write_file(&manager, &[batch(0, 300), batch(300, 20)]);
    let original = std::fs::read(file.path()).unwrap();
    let mut errors = 0;
    for pos in (0..original.len()).step_by(7) {
        for value in [0x00, 0xFF, 0x7F] {
            let mut corrupt = original.clone();
            corrupt[pos] = value;
            std::fs::write(file.path(), &corrupt).unwrap();
            let result = std::panic::catch_unwind(|| {
                file.read().and_then(|r| r.collect::<Result<Vec<_>>>())
            });
            let result = result.unwrap_or_else(|_| panic!("panicked at byte {pos} = {value:#x}"));
            if let Err(err) = result {
                errors += 1;
                assert!(
                    err.to_string().contains(&file.path().display().to_string()),
                    "{err}"
                );
            }
        }
    }
    assert!(errors > 0);
}

#[test]
fn dropped_writer_removes_partial_file() {
    let manager = plain();
    let mut writer = manager.create_writer(&schema(), "partial").unwrap();
    writer.write(&batch(0, 100)).unwrap();
    assert_eq!(writer.rows(), 100);
    let path = writer.path().to_path_buf();
    assert!(path.exists());
    drop(writer);
    assert!(!path.exists());
    assert_eq!(manager.metrics().files(), 0);
}

#[test]
fn wrong_schema_is_rejected() {
    let manager = plain();
    let mut writer = manager.create_writer(&schema(), "x").unwrap();
    let other = RecordBatch::try_from_iter([(
        "id",
        Arc::new(Int64Array::from(vec![1])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let err = writer.write(&other).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    // The writer is still usable.
    writer.write(&batch(0, 3)).unwrap();
    assert_eq!(writer.finish().unwrap().rows(), 3);
}

#[test]
fn disk_full_is_an_error_and_removes_the_partial_file() {
    let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("no /dev/full on this system; skipping");
        return;
    };
    let manager = plain();
    let path = manager.dir().join("full.arrow");
    std::fs::write(&path, b"").unwrap();
    let metrics = Arc::clone(manager.metrics());
    // The header is small enough to sit in the BufWriter.
    let mut writer = SpillWriter::with_file(path.clone(), full, &schema(), None, metrics).unwrap();
    let err = writer.write(&batch(0, 10_000)).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(!path.exists(), "the partial file is removed at once");
    // Later calls fail too, naming the file.
    let err = writer.write(&batch(0, 1)).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    let err = writer.finish().unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert_eq!(manager.metrics().files(), 0);
}

#[test]
fn disk_full_at_finish_is_an_error() {
    let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let manager = plain();
    let path = manager.dir().join("full.arrow");
    std::fs::write(&path, b"").unwrap();
    let metrics = Arc::clone(manager.metrics());
    let mut writer = SpillWriter::with_file(path.clone(), full, &schema(), None, metrics).unwrap();
    writer.write(&batch(0, 2)).unwrap(); // still buffered
    let err = writer.finish().unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(!path.exists());
}

#[test]
fn empty_file_round_trips() {
    let manager = plain();
    let file = write_file(&manager, &[]);
    assert_eq!(file.rows(), 0);
    let mut reader = file.read().unwrap();
    assert_eq!(reader.num_batches(), 0);
    assert!(reader.next().is_none());
}
