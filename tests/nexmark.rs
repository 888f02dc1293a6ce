//! Nexmark q0 to q8 on a small event count, in both modes at
//! parallelism 1 and 3, against brute-force answers computed from the
//! generated events.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use std::collections::{BTreeMap, BTreeSet};
use weir::workloads::nexmark::{generate, query, Events, NexmarkConfig};
use weir::{ExecConfig, ExecMode};

/// Rows as strings (floats to 4 decimals), sorted.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Int64 => c.as_primitive::<Int64Type>().value(i).to_string(),
                    DataType::Float64 => format!("{:.4}", c.as_primitive::<Float64Type>().value(i)),
                    DataType::Utf8 => c.as_string::<i32>().value(i).to_string(),
                    other => panic!("unexpected type {other}"),
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

struct Flat {
    persons: Vec<(i64, String, String, String, i64)>, // id, name, city, state, time
    auctions: Vec<(i64, i64, i64, i64, i64)>,         // id, seller, category, time, expires
    bids: Vec<(i64, i64, i64, String, i64)>,          // auction, bidder, price, channel, time
}

fn flat(e: &Events) -> Flat {
    let int = |b: &RecordBatch, c: &str| {
        b.column_by_name(c)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone()
    };
    let txt = |b: &RecordBatch, c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
    let mut f = Flat {
        persons: vec![],
        auctions: vec![],
        bids: vec![],
    };
    for b in e.persons.iter().flatten() {
        let (id, t, name, city, state) = (
            int(b, "id"),
            int(b, "date_time"),
            txt(b, "name"),
            txt(b, "city"),
            txt(b, "state"),
        );
        for i in 0..b.num_rows() {
            f.persons.push((
                id.value(i),
                name.value(i).into(),
                city.value(i).into(),
                state.value(i).into(),
                t.value(i),
            ));
        }
    }
    for b in e.auctions.iter().flatten() {
        let (id, s, c, t, x) = (
            int(b, "id"),
            int(b, "seller"),
            int(b, "category"),
            int(b, "date_time"),
            int(b, "expires"),
        );
        for i in 0..b.num_rows() {
            f.auctions
                .push((id.value(i), s.value(i), c.value(i), t.value(i), x.value(i)));
        }
    }
    for b in e.bids.iter().flatten() {
        let (a, bd, p, t, ch) = (
            int(b, "auction"),
            int(b, "bidder"),
            int(b, "price"),
            int(b, "date_time"),
            txt(b, "channel"),
        );
        for i in 0..b.num_rows() {
            f.bids.push((
                a.value(i),
                bd.value(i),
                p.value(i),
                ch.value(i).into(),
                t.value(i),
            ));
        }
    }
    f
}

/// (auction, category, seller, final, expires).
type Closed = (i64, i64, i64, i64, i64);

/// Closed auctions, brute force: every auction with a bid between its
/// opening and its expiry.
fn closed(f: &Flat) -> Vec<Closed> {
    let mut out = Vec::new();
    for &(id, seller, category, t, expires) in &f.auctions {
        let best = f
            .bids
            .iter()
            .filter(|b| b.0 == id && t <= b.4 && b.4 <= expires)
            .map(|b| b.2)
            .max();
        if let Some(best) = best {
            out.push((id, category, seller, best, expires));
        }
    }
    out
}

/// A changelog folded to its final rows: per key (the first column), the
/// row with the highest count (column `auctions`), as `key|avg`.
fn fold_q4(batches: &[RecordBatch]) -> Vec<String> {
    let mut last: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for b in batches {
        let k = b
            .column_by_name("category")
            .unwrap()
            .as_primitive::<Int64Type>();
        let n = b
            .column_by_name("auctions")
            .unwrap()
            .as_primitive::<Int64Type>();
        let a = b
            .column_by_name("avg_final")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = last.entry(k.value(i)).or_insert((0, 0.0));
            if n.value(i) >= e.0 {
                *e = (n.value(i), a.value(i));
            }
        }
    }
    last.iter()
        .map(|(k, (_, a))| format!("{k}|{a:.4}"))
        .collect()
}

fn oracle(q: &str, f: &Flat) -> Vec<String> {
    let win = |t: i64| t - t.rem_euclid(10_000);
    let mut out: Vec<String> = match q {
        "q0" => f
            .bids
            .iter()
            .map(|(a, b, p, c, t)| format!("{a}|{b}|{p}|{c}|{t}"))
            .collect(),
        "q1" => f
            .bids
            .iter()
            .map(|(a, b, p, c, t)| format!("{a}|{b}|{:.4}|{c}|{t}", *p as f64 * 0.908))
            .collect(),
        "q2" => f
            .bids
            .iter()
            .filter(|b| b.0 % 123 == 0)
            .map(|b| format!("{}|{}|{}", b.0, b.2, b.4))
            .collect(),
        "q3" => {
            let mut v = Vec::new();
            for p in f
                .persons
                .iter()
                .filter(|p| ["OR", "ID", "CA"].contains(&p.3.as_str()))
            {
                for a in f.auctions.iter().filter(|a| a.2 == 10 && a.1 == p.0) {
                    v.push(format!("{}|{}|{}|{}", p.1, p.2, p.3, a.0));
                }
            }
            v
        }
        "q4" => {
            let mut per: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for (_, category, _, fin, _) in closed(f) {
                let e = per.entry(category).or_default();
                e.0 += fin;
                e.1 += 1;
            }
            per.iter()
                .map(|(c, (sum, n))| format!("{c}|{:.4}", *sum as f64 / *n as f64))
                .collect()
        }
        "q6" => {
            let mut by_seller: BTreeMap<i64, Vec<Closed>> = BTreeMap::new();
            for c in closed(f) {
                by_seller.entry(c.2).or_default().push(c);
            }
            let mut v = Vec::new();
            for (seller, mut list) in by_seller {
                // event-time order; ties by row content (auction id first)
                list.sort_by_key(|c| (c.4, c.0, c.1, c.2, c.3));
                let mut last: std::collections::VecDeque<i64> = Default::default();
                for c in list {
                    if last.len() == 10 {
                        last.pop_front();
                    }
                    last.push_back(c.3);
                    let avg = last.iter().sum::<i64>() as f64 / last.len() as f64;
                    v.push(format!("{seller}|{avg:.4}|{}", c.4));
                }
            }
            v
        }
        "q5" => {
            let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new(); // (window start, auction)
            for b in &f.bids {
                let t = b.4;
                let mut s = t - t.rem_euclid(2_000);
                while s > t - 10_000 {
                    *counts.entry((s, b.0)).or_default() += 1;
                    s -= 2_000;
                }
            }
            let mut max: BTreeMap<i64, i64> = BTreeMap::new();
            for (&(w, _), &n) in &counts {
                let m = max.entry(w).or_insert(0);
                *m = (*m).max(n);
            }
            counts
                .iter()
                .filter(|((w, _), n)| max[w] == **n)
                .map(|((w, a), n)| format!("{a}|{n}|{w}|{}", w + 10_000))
                .collect()
        }
        "q7" => {
            let mut max: BTreeMap<i64, i64> = BTreeMap::new();
            for b in &f.bids {
                let m = max.entry(win(b.4)).or_insert(i64::MIN);
                *m = (*m).max(b.2);
            }
            f.bids
                .iter()
                .filter(|b| max[&win(b.4)] == b.2)
                .map(|b| {
                    format!(
                        "{}|{}|{}|{}|{}|{}",
                        b.0,
                        b.2,
                        b.1,
                        b.4,
                        win(b.4),
                        win(b.4) + 10_000
                    )
                })
                .collect()
        }
        "q8" => {
            let people: BTreeSet<(i64, String, i64)> = f
                .persons
                .iter()
                .map(|p| (p.0, p.1.clone(), win(p.4)))
                .collect();
            let sellers: BTreeSet<(i64, i64)> =
                f.auctions.iter().map(|a| (a.1, win(a.3))).collect();
            people
                .into_iter()
                .filter(|(id, _, w)| sellers.contains(&(*id, *w)))
                .map(|(id, name, w)| format!("{id}|{name}|{w}"))
                .collect()
        }
        other => panic!("{other}"),
    };
    out.sort();
    out
}

#[test]
fn nexmark_queries_match_brute_force_in_both_modes() {
    let config = NexmarkConfig {
        events: 30_000,
        events_per_second: 1_000,
        max_delay_ms: 400,
        splits: 3,
        seed: 11,
    };
    let events = generate(&config);
    let f = flat(&events);
    for q in weir::workloads::nexmark::QUERIES {
        let want = oracle(q, &f);
        assert!(!want.is_empty(), "{q}: the oracle finds rows");
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            for p in [1, 3] {
                let (job, out, _) = query(q, &events, config.max_delay_ms).unwrap();
                let m = job.run(&ExecConfig::new(mode).with_parallelism(p)).unwrap();
                assert_eq!(m.late_rows, 0, "{q} {mode}: the delay covers the disorder");
                let got = if q == "q4" {
                    fold_q4(&out.batches())
                } else {
                    rows(&out.batches())
                };
                assert_eq!(got.len(), want.len(), "{q} {mode} p={p}");
                assert!(
                    got == want,
                    "{q} {mode} p={p}: first difference {:?}",
                    got.iter().zip(&want).find(|(a, b)| a != b)
                );
            }
        }
    }
}

/// Events written to Parquet and replayed from there give the same answers.
#[test]
fn nexmark_replayed_from_parquet_matches_brute_force() {
    let config = NexmarkConfig {
        events: 20_000,
        events_per_second: 1_000,
        max_delay_ms: 400,
        splits: 2,
        seed: 5,
    };
    let events = generate(&config);
    let f = flat(&events);
    let dir = tempfile::tempdir().unwrap();
    weir::workloads::nexmark::write_parquet(&events, dir.path()).unwrap();
    for q in ["q3", "q5", "q8"] {
        let want = oracle(q, &f);
        for mode in [ExecMode::Batch, ExecMode::Pipelined] {
            let (job, out, _) = weir::workloads::nexmark::query_over(
                q,
                weir::workloads::nexmark::Input::Parquet(dir.path()),
                400,
            )
            .unwrap();
            let m = job.run(&ExecConfig::new(mode).with_parallelism(2)).unwrap();
            assert_eq!(m.late_rows, 0, "{q} {mode}");
            assert_eq!(rows(&out.batches()), want, "{q} {mode}");
        }
    }
}
