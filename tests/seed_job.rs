//! The seed's job end to end: OBD readings (3/s, up to 30 s out of order)
//! and phone-app readings (~1/s, up to 9 min late) averaged per vehicle and
//! second, joined on (vehicle, window), difference reported. Batch and
//! pipelined at parallelism 1 and 3 give the oracle's rows: per-second
//! averages computed by brute force over the admitted rows of each feed.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Float64Array, Int64Array, RecordBatch};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use weir::compare::same_rows;
use weir::workloads::vehicles::seed::{generate_app, seed_job};
use weir::workloads::vehicles::{generate_obd, write_parquet_dir};
use weir::{ExecConfig, ExecMode};

type Reading = (i64, i64, u64); // vehicle, ts, speed bits

fn readings(batches: &[RecordBatch]) -> Vec<Reading> {
    let mut out = Vec::new();
    for b in batches {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<TimestampMillisecondType>();
        let s = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((v.value(i), t.value(i), s.value(i).to_bits()));
        }
    }
    out
}

/// Per (vehicle, second start): (sum, count).
fn per_second(rows: &[Reading]) -> BTreeMap<(i64, i64), (f64, f64)> {
    let mut m: BTreeMap<(i64, i64), (f64, f64)> = BTreeMap::new();
    for &(v, t, s) in rows {
        let e = m.entry((v, t - t.rem_euclid(1000))).or_default();
        e.0 += f64::from_bits(s);
        e.1 += 1.0;
    }
    m
}

#[test]
fn obd_and_app_averages_join_per_vehicle_and_second_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (obd_dir, app_dir) = (dir.path().join("obd"), dir.path().join("app"));
    let obd = generate_obd(30, 240, 7, 997);
    let app = generate_app(30, 240, 7, 389);
    write_parquet_dir(&obd_dir, &obd, 3, 1000).unwrap();
    write_parquet_dir(&app_dir, &app, 2, 1000).unwrap();
    let mut first_late: Option<Vec<Reading>> = None;
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let seed = seed_job(&obd_dir, &app_dir).unwrap();
            let m = seed
                .job
                .run(&ExecConfig::new(mode).with_parallelism(p))
                .unwrap();
            let mut late = readings(&seed.late_obd.batches());
            late.sort_unstable();
            assert_eq!(m.late_rows, late.len() as u64, "{mode} p={p}");
            match &first_late {
                None => first_late = Some(late.clone()),
                Some(f) => assert_eq!(&late, f, "{mode} p={p}: the same rows are late"),
            }
            // oracle: the admitted OBD rows (all but the late ones) and every app row
            let mut late_count: HashMap<Reading, usize> = HashMap::new();
            for r in &late {
                *late_count.entry(*r).or_default() += 1;
            }
            let admitted: Vec<Reading> = readings(&obd)
                .into_iter()
                .filter(|r| match late_count.get_mut(r) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        false
                    }
                    _ => true,
                })
                .collect();
            let (o, a) = (per_second(&admitted), per_second(&readings(&app)));
            let mut cols: [Vec<i64>; 3] = Default::default();
            let mut speeds: [Vec<f64>; 3] = Default::default();
            for (&(v, s), &(osum, on)) in &o {
                if let Some(&(asum, an)) = a.get(&(v, s)) {
                    let (os, as_) = (osum / on, asum / an);
                    cols[0].push(v);
                    cols[1].push(s);
                    cols[2].push(s + 1000);
                    speeds[0].push(os);
                    speeds[1].push(as_);
                    speeds[2].push(os - as_);
                }
            }
            assert!(
                cols[0].len() > 30 * 200,
                "most seconds join: {}",
                cols[0].len()
            );
            let [v, s, e] = cols;
            let [os, as_, d] = speeds;
            let want = RecordBatch::try_new(
                seed.schema.clone(),
                vec![
                    Arc::new(Int64Array::from(v)),
                    Arc::new(Int64Array::from(s)),
                    Arc::new(Int64Array::from(e)),
                    Arc::new(Float64Array::from(os)),
                    Arc::new(Float64Array::from(as_)),
                    Arc::new(Float64Array::from(d)),
                ],
            )
            .unwrap();
            same_rows(&seed.out.batches(), &[want], &seed.schema, 1e-9)
                .unwrap_or_else(|e| panic!("{mode} p={p}: {e}"));
        }
    }
    assert!(!first_late.unwrap().is_empty(), "some OBD rows are late");
}
