//! Spill throughput: writing Arrow IPC spill files and reading them back
//! through mmap, 64 MiB of (Int64, Float64, Utf8) rows per iteration.
//! Compare with the raw disk: `dd if=/dev/zero of=F bs=1M count=256 oflag=direct`.
//!
//! `cargo bench --bench spill_io`

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use divan::counter::BytesCount;
use std::sync::{Arc, OnceLock};
use weir::spill::{batch_bytes, SpillFile, SpillManager};

fn main() {
    divan::main();
}

fn batches() -> &'static (Vec<RecordBatch>, usize) {
    static DATA: OnceLock<(Vec<RecordBatch>, usize)> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut i = 0i64;
        while bytes < 64 << 20 {
            let ids: Vec<i64> = (i..i + 65_536).collect();
            i += 65_536;
            let b = RecordBatch::try_from_iter([
                ("k", Arc::new(Int64Array::from(ids.clone())) as _),
                (
                    "v",
                    Arc::new(Float64Array::from_iter_values(
                        ids.iter().map(|&x| x as f64 * 0.5),
                    )) as _,
                ),
                (
                    "s",
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|x| format!("vehicle-{}", x % 1000)),
                    )) as _,
                ),
            ])
            .expect("batch");
            bytes += batch_bytes(&b);
            out.push(b);
        }
        (out, bytes)
    })
}

fn write(spill: &SpillManager) -> SpillFile {
    let (data, _) = batches();
    let mut w = spill
        .create_writer(&data[0].schema(), "bench")
        .expect("writer");
    for b in data {
        w.write(b).expect("write");
    }
    w.finish().expect("finish")
}

#[divan::bench(sample_count = 5)]
fn write_ipc(bencher: divan::Bencher) {
    let spill = SpillManager::try_new(None).expect("spill dir");
    bencher
        .counter(BytesCount::new(batches().1))
        .bench_local(|| divan::black_box(write(&spill)));
}

#[divan::bench(sample_count = 5)]
fn read_mmap(bencher: divan::Bencher) {
    let spill = SpillManager::try_new(None).expect("spill dir");
    let file = write(&spill);
    bencher
        .counter(BytesCount::new(batches().1))
        .bench_local(|| {
            let mut rows = 0;
            for b in file.read().expect("reader") {
                rows += b.expect("batch").num_rows();
            }
            divan::black_box(rows)
        });
}
