//! `ORDER BY ts[, keys…]` without `LIMIT` (a temporal sort): every row,
//! in event-time order, then by the other keys, ties by the remaining
//! columns; written to one file, the rows' order equals an oracle sorted
//! here, pipelined and in batch at parallelism 1 and 3, over input whose
//! rows arrive out of order. A sort that does not start with the event
//! time ascending is refused by name.

mod common;

use common::sql::{data, input_rows, obd_table, refused, sql};
use std::path::Path;

/// The rows of one Parquet file, in file order.
fn file_rows(path: &Path) -> Vec<Vec<String>> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        out.extend((0..b.num_rows()).map(|i| common::sql::row(&b, i)));
    }
    out
}

#[test]
fn rows_come_out_in_event_time_then_key_order_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let input = input_rows(&data);
    assert!(
        input.windows(2).any(|w| w[1].1 < w[0].1),
        "the input's rows arrive out of time order"
    );
    let mut want = input;
    // event time ascending, speed descending, then vehicle (the other column)
    want.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)).then(a.0.cmp(&b.0)));
    let want: Vec<Vec<String>> = want
        .into_iter()
        .map(|(v, t, s)| vec![v.to_string(), t.to_string(), format!("{s:?}")])
        .collect();
    let times: Vec<&String> = want.iter().map(|r| &r[1]).collect();
    assert!(
        times.windows(2).any(|w| w[0] == w[1]),
        "ties in time to order"
    );
    for mode in ["batch", "pipelined"] {
        for p in ["1", "3"] {
            let out = dir.path().join(format!("sorted-{mode}-{p}.parquet"));
            let text = format!(
                "{}CREATE TABLE o (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE) \
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
                 INSERT INTO o SELECT vehicle_id, event_time, speed FROM obd \
                 ORDER BY event_time, speed DESC;\n",
                obd_table(&data, "'10' MINUTE"),
                out.display()
            );
            sql(dir.path(), &text, &["--mode", mode, "--parallelism", p]);
            let got = file_rows(&out);
            let first = got.iter().zip(&want).position(|(g, w)| g != w);
            assert!(
                first.is_none() && got.len() == want.len(),
                "{mode} p={p}: {} rows, want {}; first difference at {first:?}",
                got.len(),
                want.len()
            );
        }
    }
}

#[test]
fn a_sort_that_does_not_start_with_event_time_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let table = obd_table(&data, "'10' MINUTE");
    for (order, says) in [
        (
            "speed",
            "must start with the event-time column ascending (ORDER BY event_time",
        ),
        (
            "event_time DESC",
            "must start with the event-time column ascending",
        ),
        ("kmh", "ORDER BY names a column of the result"),
    ] {
        refused(
            dir.path(),
            &format!("{table}SELECT vehicle_id, event_time, speed FROM obd ORDER BY {order};"),
            says,
        );
    }
    refused(
        dir.path(),
        &format!(
            "{table}SELECT vehicle_id, COUNT(*) AS n FROM obd GROUP BY vehicle_id \
             ORDER BY vehicle_id;"
        ),
        "ORDER BY over a changelog",
    );
}
