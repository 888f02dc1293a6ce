//! Unit tests of `crates/weir-engine/src/exec/staged/exchange.rs`.

use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, false),
    ]))
}

fn batch(start: i64, rows: i64) -> RecordBatch {
    let ids = Int64Array::from_iter_values(start..start + rows);
    let scores = Float64Array::from_iter(
        (start..start + rows).map(|i| (i % 9 != 0).then_some(i as f64 * 0.5)),
    );
    let names = StringArray::from_iter_values((start..start + rows).map(|i| format!("row-{i}")));
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(ids), Arc::new(scores), Arc::new(names)],
    )
    .unwrap()
}

type Row = (i64, Option<u64>, String);

fn rows_of(batch: &RecordBatch) -> Vec<Row> {
    let ids = batch.column(0).as_primitive::<Int64Type>();
    let scores = batch.column(1).as_primitive::<Float64Type>();
    let names = batch.column(2).as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            let score = scores.is_valid(i).then(|| scores.value(i).to_bits());
            (ids.value(i), score, names.value(i).to_string())
        })
        .collect()
}

fn ids_of(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn spills_under_a_small_pool_and_returns_every_row() {
    for compression in [
        SpillCompression::None,
        SpillCompression::Lz4,
        SpillCompression::Zstd,
    ] {
        spill_and_read_back(compression);
    }
}

fn spill_and_read_back(compression: SpillCompression) {
    const PARTITIONS: usize = 4;
    let budget = 1 << 20;
    let pool = MemoryPool::new(budget);
    let spill = SpillManager::try_with_compression(None, compression).unwrap();
    let mut buffer = PartitionedBuffer::new("shuffle", schema(), PARTITIONS, &pool, &spill);
    let mut pushed: Vec<Vec<Row>> = vec![Vec::new(); PARTITIONS];
    let mut pushed_bytes = 0;
    let mut start = 0;
    let mut i = 0usize;
    while pushed_bytes < 20 << 20 {
        let rows = 2000 + (i * 37 % 3000) as i64;
        let b = batch(start, rows);
        start += rows;
        pushed_bytes += batch_bytes(&b);
        let partition = (i * 7 + i / 3) % PARTITIONS;
        pushed[partition].extend(rows_of(&b));
        buffer.push(partition, b).unwrap();
        assert!(pool.reserved() <= budget);
        i += 1;
    }
    let partitions = buffer.finish().unwrap();
    assert_eq!(partitions.len(), PARTITIONS);
    let metrics = spill.metrics();
    assert!(metrics.files() > 0 && metrics.bytes() > 0 && metrics.rows() > 0);
    assert!(pool.peak() <= budget, "peak {} over budget", pool.peak());
    // One file per (producer, partition).
    assert_eq!(metrics.files(), PARTITIONS as u64);
    assert_eq!(files_in(spill.dir()), PARTITIONS);

    for (partition, want) in partitions.into_iter().zip(pushed) {
        assert_eq!(partition.num_rows(), want.len() as u64);
        assert_eq!(partition.spilled_files(), 1);
        let mut got: Vec<Row> = Vec::new();
        for b in partition.into_batches() {
            got.extend(rows_of(&b.unwrap()));
        }
        let mut want = want;
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
    assert_eq!(pool.reserved(), 0);
    assert_eq!(
        files_in(spill.dir()),
        0,
        "spill files are deleted once read"
    );
}

#[test]
fn unbounded_pool_never_spills_and_keeps_order() {
    let pool = MemoryPool::unbounded();
    let spill = SpillManager::try_new(None).unwrap();
    let mut buffer = PartitionedBuffer::new("shuffle", schema(), 3, &pool, &spill);
    let mut pushed: Vec<Vec<RecordBatch>> = vec![Vec::new(); 3];
    for i in 0..60 {
        let b = batch(i * 1000, 1000);
        pushed[(i % 2) as usize].push(b.clone());
        buffer.push((i % 2) as usize, b).unwrap();
    }
    assert!(pool.reserved() > 0);
    assert_eq!(buffer.memory_size(), pool.reserved());
    let partitions = buffer.finish().unwrap();
    assert_eq!(
        pool.reserved(),
        partitions
            .iter()
            .map(|p| p.reservation.size())
            .sum::<usize>()
    );
    assert_eq!(spill.metrics().files(), 0);
    assert_eq!(files_in(spill.dir()), 0);
    assert_eq!(partitions[2].num_rows(), 0);
    for (partition, want) in partitions.into_iter().zip(pushed) {
        assert_eq!(partition.spilled_files(), 0);
        let got: Vec<RecordBatch> = partition.into_batches().collect::<Result<_>>().unwrap();
        assert_eq!(got, want);
    }
    assert_eq!(pool.reserved(), 0);
}

#[test]
fn batches_come_back_in_arrival_order_with_their_watermarks() {
    let size = batch_bytes(&batch(0, 100));
    // spillable consumers share 3/4 of the pool: room for two batches
    let pool = MemoryPool::new((2 * size + size / 2) * 4 / 3);
    let spill = SpillManager::try_new(None).unwrap();
    let mut buffer = PartitionedBuffer::new("b", schema(), 1, &pool, &spill);
    for i in 0..5 {
        buffer.push(0, batch(i * 100, 100)).unwrap();
        buffer.push_watermark(0, i * 10);
    }
    // not rising: ignored
    buffer.push_watermark(0, 5);
    // b0 b1 | b2 spills b0 b1 | b3 | b4 spills b2 b3 → memory: b4.
    assert_eq!(pool.reserved(), batch_bytes(&batch(400, 100)));
    // b4 is more than the fixed quarter: finishing appends it to the file
    let mut partitions = buffer.finish().unwrap();
    let partition = partitions.pop().unwrap();
    assert_eq!(partition.spilled_files(), 1);
    assert_eq!(spill.metrics().rows(), 500, "every row written once");
    assert_eq!(
        partition.watermarks(),
        &[(1, 0), (2, 10), (3, 20), (4, 30), (5, 40)]
    );
    let reader = partition.into_batches();
    assert_eq!(pool.reserved(), 0);
    let got: Vec<RecordBatch> = reader.collect::<Result<_>>().unwrap();
    let firsts: Vec<i64> = got
        .iter()
        .map(|b| ids_of(std::slice::from_ref(b))[0])
        .collect();
    assert_eq!(firsts, vec![0, 100, 200, 300, 400]);
    assert_eq!(pool.reserved(), 0);
}

#[test]
fn batch_larger_than_the_pool_goes_straight_to_disk() {
    let pool = MemoryPool::new(1024);
    let spill = SpillManager::try_new(None).unwrap();
    let mut buffer = PartitionedBuffer::new("b", schema(), 2, &pool, &spill);
    buffer.push(1, batch(0, 10_000)).unwrap();
    buffer.push(1, RecordBatch::new_empty(schema())).unwrap();
    assert_eq!(pool.reserved(), 0);
    let partitions = buffer.finish().unwrap();
    assert_eq!(partitions[0].spilled_files(), 0);
    assert_eq!(partitions[0].num_rows(), 0);
    assert_eq!(partitions[1].spilled_files(), 1);
    assert_eq!(spill.metrics().rows(), 10_000);
    let mut partitions = partitions.into_iter();
    assert_eq!(partitions.next().unwrap().into_batches().count(), 0);
    let got: Vec<RecordBatch> = partitions
        .next()
        .unwrap()
        .into_batches()
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(ids_of(&got), (0..10_000).collect::<Vec<_>>());
}

#[test]
fn dropping_partitions_unread_frees_memory_and_files() {
    let size = batch_bytes(&batch(0, 100));
    // 12 batches fit; the 13th spills them and stays, within the part
    // of half the fixed quarter a finished partition keeps (about 1.04
    // batches)
    let twelve: usize = (0..12).map(|i| batch_bytes(&batch(i * 100, 100))).sum();
    let pool = MemoryPool::new((twelve + size / 2) * 4 / 3);
    let spill = SpillManager::try_new(None).unwrap();
    let mut buffer = PartitionedBuffer::new("b", schema(), 2, &pool, &spill);
    for i in 0..13 {
        buffer.push((i % 2) as usize, batch(i * 100, 100)).unwrap();
    }
    let partitions = buffer.finish().unwrap();
    assert!(pool.reserved() > 0);
    assert_eq!(files_in(spill.dir()), 2);
    let mut partitions = partitions.into_iter();
    let mut reader = partitions.next().unwrap().into_batches();
    reader.next().unwrap().unwrap(); // a memory batch
    assert!(pool.reserved() > 0);
    drop(reader);
    assert_eq!(
        files_in(spill.dir()),
        1,
        "the first partition's file is gone"
    );
    drop(partitions);
    assert_eq!(
        files_in(spill.dir()),
        0,
        "the second partition's file is gone"
    );
    assert_eq!(pool.reserved(), 0);
}

#[test]
fn bad_pushes_are_rejected() {
    let pool = MemoryPool::unbounded();
    let spill = SpillManager::try_new(None).unwrap();
    let mut buffer = PartitionedBuffer::new("shuffle", schema(), 2, &pool, &spill);
    let err = buffer.push(2, batch(0, 1)).unwrap_err();
    assert!(
        matches!(&err, Error::Plan(m) if m.contains("partition 2")),
        "{err}"
    );
    let other = RecordBatch::try_from_iter([(
        "id",
        Arc::new(Int64Array::from(vec![1])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let err = buffer.push(0, other).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert_eq!(pool.reserved(), 0);
}

#[test]
fn partitions_and_readers_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Partition>();
    assert_send::<PartitionReader>();
    assert_send::<PartitionedBuffer>();
}

/// A budget far smaller than the data: most of it goes to disk, every
/// row comes back, and the pool is back to zero. (Was this type's
/// doctest when it lived in `weir::spill`.)
#[test]
fn most_of_a_partition_over_budget_goes_to_disk() {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = |n: i64| {
        let values = Int64Array::from_iter_values(0..n);
        RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
    };
    // A budget far smaller than the data: most of it goes to disk.
    let pool = MemoryPool::new(16 * 1024);
    let spill = SpillManager::try_new(None).unwrap();
    let mut buffer = PartitionedBuffer::new("shuffle", schema.clone(), 2, &pool, &spill);
    for _ in 0..10 {
        buffer.push(0, batch(1000)).unwrap();
    }
    buffer.push(1, batch(5)).unwrap();

    let partitions = buffer.finish().unwrap();
    assert_eq!(partitions[0].num_rows(), 10_000);
    assert_eq!(partitions[0].spilled_files(), 1);
    assert_eq!(partitions[1].num_rows(), 5);

    let mut rows = 0;
    for batch in partitions.into_iter().flat_map(|p| p.into_batches()) {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 10_005);
    assert_eq!(pool.reserved(), 0);
    assert!(spill.metrics().files() >= 1);
}
