//! Tests of the aggregate functions: hand-computed values, the merge /
//! partial-state round trip (proptest), reset, memory and error paths, and
//! an example user-defined aggregate (`range = max - min`).

use super::*;
use arrow_array::builder::StringBuilder;
use arrow_array::types::Float64Type;
use arrow_array::{
    BinaryArray, Date32Array, Int32Array, LargeStringArray, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow_schema::{Fields, TimeUnit};
use proptest::prelude::*;
use std::any::Any;
use std::collections::BTreeMap;

// ---------------------------------------------------------------- example UDAF

/// `range(x) = max(x) - min(x)` as Float64; state `{min, max}`.
#[derive(Debug)]
struct Range;

fn range_fields() -> Fields {
    Fields::from(vec![
        Field::new("min", DataType::Float64, true),
        Field::new("max", DataType::Float64, true),
    ])
}

impl AggregateUdf for Range {
    fn name(&self) -> &str {
        "range"
    }
    fn return_type(&self, input: &DataType) -> Result<DataType> {
        if input.is_numeric() {
            Ok(DataType::Float64)
        } else {
            Err(Error::option(
                "range",
                format!("needs numbers, found {input}"),
            ))
        }
    }
    fn state_type(&self, _: &DataType) -> Result<DataType> {
        Ok(DataType::Struct(range_fields()))
    }
    fn create(&self) -> Box<dyn AggregateState> {
        Box::new(RangeState(None))
    }
}

#[derive(Debug)]
struct RangeState(Option<(f64, f64)>);

impl RangeState {
    fn add(&mut self, v: f64) {
        self.0 = Some(match self.0 {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
}

impl AggregateState for RangeState {
    fn update(&mut self, values: &ArrayRef, rows: &[u32], _: &[i64]) -> Result<()> {
        let values = arrow_cast::cast(values, &DataType::Float64)?;
        let values = values.as_primitive::<Float64Type>();
        for &r in rows {
            if values.is_valid(r as usize) {
                self.add(values.value(r as usize));
            }
        }
        Ok(())
    }
    fn merge(&mut self, other: &dyn AggregateState) -> Result<()> {
        let other = other
            .as_any()
            .downcast_ref::<RangeState>()
            .ok_or_else(|| Error::option("range", "merged with another aggregate"))?;
        if let Some((lo, hi)) = other.0 {
            self.add(lo);
            self.add(hi);
        }
        Ok(())
    }
    fn state(&self) -> Result<ScalarValueOrArray> {
        let lo: ArrayRef = Arc::new(Float64Array::from(vec![self.0.map(|r| r.0)]));
        let hi: ArrayRef = Arc::new(Float64Array::from(vec![self.0.map(|r| r.1)]));
        Ok(Arc::new(StructArray::try_new(
            range_fields(),
            vec![lo, hi],
            None,
        )?))
    }
    fn merge_state(&mut self, state: &ArrayRef, row: usize) -> Result<()> {
        let s = state.as_struct();
        let (lo, hi) = (s.column(0).as_primitive::<Float64Type>(), s.column(1));
        if lo.is_valid(row) {
            self.add(lo.value(row));
            self.add(hi.as_primitive::<Float64Type>().value(row));
        }
        Ok(())
    }
    fn finish(&self) -> Result<ArrayRef> {
        Ok(Arc::new(Float64Array::from(vec![self
            .0
            .map(|(lo, hi)| hi - lo)])))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

// ---------------------------------------------------------------- helpers

/// Runs `agg` over `rows` of `columns` (row `r` in group `groups[r]` at
/// `times[r]`) and finishes groups `0..n`.
fn run(
    agg: &Agg,
    schema: &Schema,
    columns: &[ArrayRef],
    groups: &[u32],
    rows: &[u32],
    times: &[i64],
    n: usize,
) -> ArrayRef {
    let bound = agg.bind(schema, "test").unwrap();
    let mut acc = Accumulators::new(&bound);
    acc.resize(n);
    let values = bound.values(columns).unwrap();
    let picked: Vec<u32> = rows.iter().map(|&r| groups[r as usize]).collect();
    acc.update(&picked, rows, &values, times, "t").unwrap();
    let out = acc
        .finish(&(0..n as u32).collect::<Vec<_>>(), &bound)
        .unwrap();
    assert_eq!(out.data_type(), bound.field.data_type(), "{agg:?}");
    out
}

/// Equal arrays, floats within 1e-9 relative (NaN equals NaN).
fn assert_close(a: &ArrayRef, b: &ArrayRef, what: &str) {
    if a.data_type() != &DataType::Float64 || b.data_type() != &DataType::Float64 {
        assert_eq!(a, b, "{what}");
        return;
    }
    let (a, b) = (
        a.as_primitive::<Float64Type>(),
        b.as_primitive::<Float64Type>(),
    );
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b.iter()) {
        let same = match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
            }
            _ => false,
        };
        assert!(same, "{what}: {x:?} != {y:?}");
    }
}

// ---------------------------------------------------------------- hand-computed values

/// Nine rows in three groups; group 1 holds only nulls.
fn hand_data() -> (Schema, Vec<ArrayRef>, Vec<u32>, Vec<i64>) {
    let schema = Schema::new(vec![
        Field::new("i", DataType::Int32, true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![
            Some(4),
            None,
            Some(-2),
            Some(7),
            Some(9),
            Some(4),
            None,
            Some(1),
            Some(1),
        ])),
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            None,
            Some(-0.5),
            Some(2.0),
            Some(-3.0),
            Some(1.5),
            None,
            Some(-0.0),
            Some(0.0),
        ])),
        Arc::new(StringArray::from(vec![
            Some("b"),
            None,
            Some("a"),
            Some("c"),
            Some("d"),
            Some("b"),
            None,
            Some("z"),
            Some("zz"),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            None,
            Some(false),
            Some(true),
            Some(false),
            Some(true),
            None,
            Some(true),
            Some(true),
        ])),
    ];
    let groups = vec![0, 0, 0, 0, 0, 0, 1, 2, 2];
    let times = vec![5, 3, 3, 3, 5, 4, 0, 10, 2];
    (schema, columns, groups, times)
}

#[test]
fn every_function_matches_hand_computed_values_in_any_row_order() {
    let (schema, columns, groups, times) = hand_data();
    let int = |v: [Option<i32>; 3]| -> ArrayRef { Arc::new(Int32Array::from(v.to_vec())) };
    let big = |v: [Option<i64>; 3]| -> ArrayRef { Arc::new(Int64Array::from(v.to_vec())) };
    let float = |v: [Option<f64>; 3]| -> ArrayRef { Arc::new(Float64Array::from(v.to_vec())) };
    let text = |v: [Option<&str>; 3]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
    let flag = |v: [Option<bool>; 3]| -> ArrayRef { Arc::new(BooleanArray::from(v.to_vec())) };
    let range: Arc<dyn AggregateUdf> = Arc::new(Range);
    let expect: Vec<(Agg, ArrayRef)> = vec![
        (Agg::count(), big([Some(6), Some(1), Some(2)])),
        (Agg::count_column("i"), big([Some(5), Some(0), Some(2)])),
        (Agg::sum("i"), big([Some(22), None, Some(2)])),
        (Agg::avg("i"), float([Some(4.4), None, Some(1.0)])),
        (Agg::min("i"), int([Some(-2), None, Some(1)])),
        (Agg::max("i"), int([Some(9), None, Some(1)])),
        (Agg::first("i"), int([Some(-2), None, Some(1)])),
        (Agg::last("i"), int([Some(9), None, Some(1)])),
        (Agg::count_distinct("i"), big([Some(4), Some(0), Some(1)])),
        (Agg::sum_distinct("i"), big([Some(18), None, Some(1)])),
        (Agg::avg_distinct("i"), float([Some(4.5), None, Some(1.0)])),
        (Agg::sum("f"), float([Some(1.5), None, Some(0.0)])),
        (Agg::avg("f"), float([Some(0.3), None, Some(0.0)])),
        (Agg::min("f"), float([Some(-3.0), None, Some(-0.0)])),
        (Agg::max("f"), float([Some(2.0), None, Some(0.0)])),
        (Agg::first("f"), float([Some(-0.5), None, Some(0.0)])),
        (Agg::last("f"), float([Some(1.5), None, Some(-0.0)])),
        (Agg::count_distinct("f"), big([Some(4), Some(0), Some(1)])),
        (Agg::sum_distinct("f"), float([Some(0.0), None, Some(0.0)])),
        (Agg::avg_distinct("f"), float([Some(0.0), None, Some(0.0)])),
        (Agg::min("s"), text([Some("a"), None, Some("z")])),
        (Agg::max("s"), text([Some("d"), None, Some("zz")])),
        (Agg::first("s"), text([Some("a"), None, Some("zz")])),
        (Agg::last("s"), text([Some("d"), None, Some("z")])),
        (Agg::count_distinct("s"), big([Some(4), Some(0), Some(2)])),
        (Agg::min("b"), flag([Some(false), None, Some(true)])),
        (Agg::max("b"), flag([Some(true), None, Some(true)])),
        (Agg::first("b"), flag([Some(false), None, Some(true)])),
        (Agg::last("b"), flag([Some(true), None, Some(true)])),
        (Agg::count_distinct("b"), big([Some(2), Some(0), Some(1)])),
        (Agg::udf(range, "i"), float([Some(11.0), None, Some(0.0)])),
    ];
    let forward: Vec<u32> = (0..9).collect();
    let backward: Vec<u32> = (0..9).rev().collect();
    for rows in [forward, backward] {
        for (agg, want) in &expect {
            let got = run(agg, &schema, &columns, &groups, &rows, &times, 3);
            // Exact: Float64 equality here is bitwise, so -0.0 != 0.0.
            assert_eq!(&got, want, "{} over rows {rows:?}", agg.output_name());
        }
    }
}

#[test]
fn float_distinct_treats_signed_zeros_and_all_nans_as_one_value() {
    let negative_nan = f64::from_bits(f64::NAN.to_bits() | (1 << 63));
    let schema = Schema::new(vec![Field::new("f", DataType::Float64, true)]);
    let col: ArrayRef = Arc::new(Float64Array::from(vec![
        f64::NAN,
        negative_nan,
        0.0,
        -0.0,
        1.0,
        1.0,
    ]));
    let bound = Agg::count_distinct("f").bind(&schema, "t").unwrap();
    let mut acc = Accumulators::new(&bound);
    acc.resize(1);
    let values = bound.values(&[col]).unwrap();
    acc.update(&[0; 6], &[0, 1, 2, 3, 4, 5], &values, &[0; 6], "t")
        .unwrap();
    let count = |acc: &Accumulators| acc.finish(&[0], &bound).unwrap();
    assert_eq!(count(&acc).as_primitive::<Int64Type>().value(0), 3);
    let mut restored = Accumulators::new(&bound);
    restored.resize(1);
    restored
        .merge_state(&[0], &acc.to_state(&[0]).unwrap())
        .unwrap();
    restored
        .merge_state(&[0], &acc.to_state(&[0]).unwrap())
        .unwrap();
    assert_eq!(count(&restored).as_primitive::<Int64Type>().value(0), 3);
}

#[test]
fn uint64_temporal_and_large_strings_keep_their_types_and_values() {
    let schema = Schema::new(vec![
        Field::new("u", DataType::UInt64, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("d", DataType::Date32, true),
        Field::new("ls", DataType::LargeUtf8, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(vec![u64::MAX, 1, u64::MAX - 1])),
        Arc::new(TimestampMillisecondArray::from(vec![30, 10, 20]).with_timezone("UTC")),
        Arc::new(Date32Array::from(vec![3, 1, 2])),
        Arc::new(LargeStringArray::from(vec!["x", "yy", "w"])),
    ];
    let (groups, rows, times) = ([0u32; 3], [0u32, 1, 2], [7i64, 9, 8]);
    let go = |agg: Agg| run(&agg, &schema, &columns, &groups, &rows, &times, 1);
    let u = |v: u64| -> ArrayRef { Arc::new(UInt64Array::from(vec![v])) };
    assert_eq!(&go(Agg::max("u")), &u(u64::MAX));
    assert_eq!(&go(Agg::min("u")), &u(1));
    assert_eq!(&go(Agg::last("u")), &u(1));
    assert_eq!(
        go(Agg::count_distinct("u"))
            .as_primitive::<Int64Type>()
            .value(0),
        3
    );
    let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![10]).with_timezone("UTC"));
    assert_eq!(&go(Agg::min("ts")), &ts);
    let d: ArrayRef = Arc::new(Date32Array::from(vec![3]));
    assert_eq!(&go(Agg::first("d")), &d);
    let ls: ArrayRef = Arc::new(LargeStringArray::from(vec!["yy"]));
    assert_eq!(&go(Agg::last("ls")), &ls);
    assert_eq!(&go(Agg::max("ls")), &ls);
}

// ---------------------------------------------------------------- round trip

/// Every function over every supported kind of column of [`prop_columns`].
fn prop_aggs() -> Vec<Agg> {
    let mut aggs = vec![
        Agg::count(),
        Agg::count_column("i"),
        Agg::sum("i"),
        Agg::sum("f"),
        Agg::avg("i"),
        Agg::avg("f"),
        Agg::udf(Arc::new(Range), "i"),
        Agg::udf(Arc::new(Range), "f"),
        Agg::sum_distinct("i"),
        Agg::sum_distinct("f"),
        Agg::avg_distinct("i"),
        Agg::avg_distinct("f"),
        Agg::avg_distinct("ts"),
    ];
    for c in ["i", "u", "f", "s", "ls", "b", "ts"] {
        aggs.extend([
            Agg::min(c),
            Agg::max(c),
            Agg::first(c),
            Agg::last(c),
            Agg::count_distinct(c),
        ]);
    }
    aggs
}

/// Columns derived from one small value per row, with nulls, duplicates,
/// signed zeros and UInt64 values above `i64::MAX`.
fn prop_columns(values: &[Option<i8>]) -> (Schema, Vec<ArrayRef>) {
    let schema = Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("u", DataType::UInt64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("ls", DataType::LargeUtf8, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]);
    let float = |v: i8| match v {
        -4 => -0.0,
        4 => 0.0,
        v => f64::from(v) * 0.75,
    };
    let text = values.iter().map(|v| v.map(|v| format!("s{v}")));
    let mut s = StringBuilder::new();
    for t in text.clone() {
        s.append_option(t);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            values
                .iter()
                .map(|v| v.map(i64::from))
                .collect::<Int64Array>(),
        ),
        Arc::new(
            values
                .iter()
                .map(|v| v.map(|v| (v + 4) as u64 * (u64::MAX / 8)))
                .collect::<UInt64Array>(),
        ),
        Arc::new(
            values
                .iter()
                .map(|v| v.map(float))
                .collect::<Float64Array>(),
        ),
        Arc::new(s.finish()),
        Arc::new(text.collect::<LargeStringArray>()),
        Arc::new(
            values
                .iter()
                .map(|v| v.map(|v| v > 0))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            values
                .iter()
                .map(|v| v.map(|v| i64::from(v) * 1000))
                .collect::<TimestampMillisecondArray>(),
        ),
    ];
    (schema, columns)
}

const GROUPS: u32 = 4;

/// Rows: (group, event time, value, part).
fn prop_rows() -> impl Strategy<Value = Vec<(u32, i64, Option<i8>, usize)>> {
    prop::collection::vec(
        (
            0..GROUPS,
            0i64..4,
            prop::option::weighted(0.8, -4i8..=4),
            0usize..3,
        ),
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn one_accumulator_equals_merged_parts_equals_state_round_trip(rows in prop_rows()) {
        let values: Vec<Option<i8>> = rows.iter().map(|r| r.2).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let (schema, columns) = prop_columns(&values);
        let all: Vec<u32> = (0..GROUPS).collect();
        for agg in prop_aggs() {
            let bound = agg.bind(&schema, "prop").unwrap();
            let input = bound.values(&columns).unwrap();
            let fresh = || {
                let mut acc = Accumulators::new(&bound);
                acc.resize(GROUPS as usize);
                acc
            };
            let feed = |acc: &mut Accumulators, part: Option<usize>| {
                let picked = rows.iter().enumerate().filter(|(_, r)| part.is_none_or(|p| r.3 == p));
                let (row_ids, groups): (Vec<u32>, Vec<u32>) =
                    picked.map(|(i, r)| (i as u32, r.0)).unzip();
                acc.update(&groups, &row_ids, &input, &times, "prop").unwrap();
            };
            let mut whole = fresh();
            feed(&mut whole, None);
            let mut merged = fresh();
            let mut restored = fresh();
            for part in 0..3 {
                let mut acc = fresh();
                feed(&mut acc, Some(part));
                for g in 0..GROUPS {
                    merged.merge(g, &acc, g).unwrap();
                }
                let state = acc.to_state(&all).unwrap();
                let fields = Accumulators::state_fields(&bound);
                let types: Vec<&DataType> = state.iter().map(|c| c.data_type()).collect();
                let want: Vec<&DataType> = fields.iter().map(|f| f.data_type()).collect();
                prop_assert_eq!(types, want, "{}", agg.output_name());
                restored.merge_state(&all, &state).unwrap();
            }
            let expect = whole.finish(&all, &bound).unwrap();
            let name = agg.output_name();
            assert_close(&merged.finish(&all, &bound).unwrap(), &expect, &format!("merge {name}"));
            assert_close(&restored.finish(&all, &bound).unwrap(), &expect, &format!("state {name}"));
        }
    }
}

// ---------------------------------------------------------------- reset, memory, sessions

#[test]
fn reset_empties_a_group_and_leaves_the_others() {
    let (schema, columns, groups, times) = hand_data();
    let rows: Vec<u32> = (0..9).collect();
    for agg in [
        Agg::count(),
        Agg::sum("i"),
        Agg::avg("f"),
        Agg::min("s"),
        Agg::first("f"),
        Agg::last("b"),
        Agg::count_distinct("s"),
        Agg::udf(Arc::new(Range), "i"),
    ] {
        let bound = agg.bind(&schema, "t").unwrap();
        let values = bound.values(&columns).unwrap();
        let mut acc = Accumulators::new(&bound);
        acc.resize(3);
        acc.update(&groups, &rows, &values, &times, "t").unwrap();
        let before = acc.finish(&[2], &bound).unwrap();
        acc.reset(0);
        let mut empty = Accumulators::new(&bound);
        empty.resize(1);
        let name = agg.output_name();
        let (got, want) = (
            acc.finish(&[0], &bound).unwrap(),
            empty.finish(&[0], &bound).unwrap(),
        );
        assert_eq!(&got, &want, "{name}");
        assert_eq!(&acc.finish(&[2], &bound).unwrap(), &before, "{name}");
        // The reset group accumulates again from scratch.
        acc.update(&groups[..1], &rows[..1], &values, &times, "t")
            .unwrap();
        empty.update(&[0], &[0], &values, &times, "t").unwrap();
        let (got, want) = (
            acc.finish(&[0], &bound).unwrap(),
            empty.finish(&[0], &bound).unwrap(),
        );
        assert_eq!(&got, &want, "{name}");
    }
}

#[test]
fn memory_size_grows_with_distinct_values_and_shrinks_on_reset() {
    let schema = Schema::new(vec![Field::new("s", DataType::Utf8, false)]);
    let strings: Vec<String> = (0..1000).map(|i| format!("value-number-{i:08}")).collect();
    let col: ArrayRef = Arc::new(StringArray::from(strings.clone()));
    let bound = Agg::count_distinct("s").bind(&schema, "t").unwrap();
    let values = bound.values(&[col]).unwrap();
    let mut acc = Accumulators::new(&bound);
    acc.resize(2);
    let empty = acc.memory_size();
    let rows: Vec<u32> = (0..1000).collect();
    acc.update(&[0; 10], &rows[..10], &values, &[], "t")
        .unwrap();
    let ten = acc.memory_size();
    acc.update(&vec![0; 1000], &rows, &values, &[], "t")
        .unwrap();
    let thousand = acc.memory_size();
    assert!(ten > empty, "{ten} > {empty}");
    // At least the string bytes of 1000 keys (20 bytes each) on top.
    assert!(thousand >= ten + 990 * 20, "{thousand} vs {ten}");
    // Duplicates add nothing.
    acc.update(&vec![0; 1000], &rows, &values, &[], "t")
        .unwrap();
    assert_eq!(acc.memory_size(), thousand);
    acc.reset(0);
    assert_eq!(acc.memory_size(), empty);
    // Strings held by min count too.
    let bound = Agg::min("s").bind(&schema, "t").unwrap();
    let mut acc = Accumulators::new(&bound);
    acc.resize(1000);
    let before = acc.memory_size();
    let groups: Vec<u32> = (0..1000).collect();
    acc.update(&groups, &rows, &values, &[], "t").unwrap();
    assert!(acc.memory_size() >= before + 1000 * 20);
}

#[test]
fn merge_groups_joins_two_sessions() {
    let (schema, columns, _, times) = hand_data();
    let rows: Vec<u32> = (0..6).collect();
    // Group 0's rows split over two sessions (groups 0 and 1), then joined.
    let split = [0u32, 1, 0, 1, 0, 1];
    for agg in [
        Agg::count(),
        Agg::sum("i"),
        Agg::first("s"),
        Agg::last("f"),
        Agg::count_distinct("i"),
        Agg::udf(Arc::new(Range), "f"),
    ] {
        let bound = agg.bind(&schema, "t").unwrap();
        let values = bound.values(&columns).unwrap();
        let mut acc = Accumulators::new(&bound);
        acc.resize(2);
        acc.update(&split, &rows, &values, &times, "t").unwrap();
        acc.merge_groups(0, 1).unwrap();
        acc.merge_groups(0, 0).unwrap();
        let whole = run(&agg, &schema, &columns, &[0; 9], &rows, &times, 1);
        assert_eq!(
            &acc.finish(&[0], &bound).unwrap(),
            &whole,
            "{}",
            agg.output_name()
        );
    }
}

// ---------------------------------------------------------------- binding and errors

#[test]
fn binding_checks_columns_and_types() {
    let schema = Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("bin", DataType::Binary, true),
    ]);
    assert!(Agg::sum("s")
        .bind(&schema, "w")
        .unwrap_err()
        .to_string()
        .contains("numeric"));
    assert!(Agg::sum("x").bind(&schema, "w").is_err());
    assert!(Agg::sum_distinct("s")
        .bind(&schema, "w")
        .unwrap_err()
        .to_string()
        .contains("sum_distinct needs a numeric column"));
    assert!(Agg::count_column("s").bind(&schema, "w").is_ok());
    for agg in [
        Agg::first("bin"),
        Agg::count_distinct("bin"),
        Agg::min("bin"),
    ] {
        match agg.bind(&schema, "w") {
            Err(Error::Column {
                column, message, ..
            }) => {
                assert_eq!(column, "bin");
                assert!(message.contains("Binary"), "{message}");
            }
            other => panic!("{agg:?}: {other:?}"),
        }
    }
    let range = Agg::udf(Arc::new(Range), "s")
        .bind(&schema, "w")
        .unwrap_err();
    assert!(
        matches!(&range, Error::Column { column, .. } if column == "s"),
        "{range}"
    );
    assert_eq!(Agg::avg("speed").output_name(), "avg_speed");
    assert_eq!(Agg::first("speed").output_name(), "first_speed");
    assert_eq!(Agg::udf(Arc::new(Range), "x").output_name(), "range_x");
    assert_eq!(AggFn::parse("MEAN").unwrap(), AggFn::Avg);
    assert_eq!(AggFn::parse("first").unwrap(), AggFn::First);
    assert_eq!(AggFn::parse("Last").unwrap(), AggFn::Last);
    assert_eq!(
        AggFn::parse("count_distinct").unwrap(),
        AggFn::CountDistinct
    );
    assert_eq!(AggFn::parse("sum_distinct").unwrap(), AggFn::SumDistinct);
    assert_eq!(AggFn::parse("AVG_DISTINCT").unwrap(), AggFn::AvgDistinct);
    assert_eq!(
        AggFn::parse("distinct_count").unwrap(),
        AggFn::CountDistinct
    );
    assert!(AggFn::parse("median").is_err());
    let udf: Arc<dyn AggregateUdf> = Arc::new(Range);
    assert_eq!(AggFn::Udf(udf.clone()), AggFn::Udf(udf));
    assert_ne!(AggFn::Udf(Arc::new(Range)), AggFn::Udf(Arc::new(Range)));
}

#[test]
fn misuse_and_corrupt_states_are_errors_not_panics() {
    let (schema, columns, _, times) = hand_data();
    let first = Agg::first("i").bind(&schema, "t").unwrap();
    let values = first.values(&columns).unwrap();
    let mut acc = Accumulators::new(&first);
    acc.resize(2);
    // Group 2 is out of range; row 20 outside the batch; times too short.
    assert!(acc.update(&[2], &[0], &values, &times, "t").is_err());
    assert!(acc.update(&[0], &[20], &values, &times, "t").is_err());
    assert!(acc.update(&[0], &[5], &values, &times[..3], "t").is_err());
    assert!(acc.update(&[0, 1], &[0], &values, &times, "t").is_err());
    // Values of another kind.
    let strings = Agg::first("s").bind(&schema, "t").unwrap();
    let text = strings.values(&columns).unwrap();
    assert!(acc.update(&[0], &[0], &text, &times, "t").is_err());
    // Merging another function's state.
    let count = Agg::count().bind(&schema, "t").unwrap();
    let mut counts = Accumulators::new(&count);
    counts.resize(1);
    assert!(acc.merge(0, &counts, 0).is_err());
    assert!(acc.merge(0, &acc_clone_empty(&first), 5).is_err());
    // Partial states of the wrong shape or type.
    let bad: ArrayRef = Arc::new(BinaryArray::from(vec![b"x".as_ref()]));
    let time: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    assert!(acc.merge_state(&[0], std::slice::from_ref(&time)).is_err());
    assert!(acc.merge_state(&[0], &[time.clone(), bad.clone()]).is_err());
    assert!(acc
        .merge_state(&[0, 1], &[time.clone(), time.clone()])
        .is_err());
    let distinct = Agg::count_distinct("s").bind(&schema, "t").unwrap();
    let mut sets = Accumulators::new(&distinct);
    sets.resize(1);
    assert!(sets.merge_state(&[0], std::slice::from_ref(&bad)).is_err());
    let range = Agg::udf(Arc::new(Range), "i").bind(&schema, "t").unwrap();
    let mut udf = Accumulators::new(&range);
    udf.resize(1);
    assert!(udf.merge_state(&[0], &[bad]).is_err());
    // Nothing above changed the state.
    assert_eq!(acc.finish(&[0], &first).unwrap().null_count(), 1);
}

fn acc_clone_empty(agg: &BoundAgg) -> Accumulators {
    let mut acc = Accumulators::new(agg);
    acc.resize(1);
    acc
}

#[test]
fn integer_sum_overflow_depends_only_on_the_final_value() {
    let schema = Schema::new(vec![Field::new("v", DataType::Int64, true)]);
    let bound = Agg::sum("v").bind(&schema, "t").unwrap();
    let sum_of = |values: Vec<i64>| -> Result<ArrayRef> {
        let n = values.len();
        let col: ArrayRef = Arc::new(Int64Array::from(values));
        let mut acc = Accumulators::new(&bound);
        acc.resize(1);
        let v = bound.values(std::slice::from_ref(&col))?;
        let rows: Vec<u32> = (0..n as u32).collect();
        acc.update(&vec![0; n], &rows, &v, &vec![0; n], "v")?;
        acc.finish(&[0], &bound)
    };
    for order in [
        vec![i64::MAX, 1, -1],
        vec![i64::MAX, -1, 1],
        vec![1, i64::MAX, -1],
    ] {
        let got = sum_of(order.clone()).unwrap();
        assert_eq!(
            got.as_primitive::<arrow_array::types::Int64Type>().value(0),
            i64::MAX,
            "{order:?}"
        );
    }
    let err = sum_of(vec![i64::MAX, 1]).unwrap_err();
    assert!(err.to_string().contains("does not fit in Int64"), "{err}");
}

#[test]
fn distinct_sums_are_exact_and_keep_uint64_values_apart() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let schema = Schema::new(vec![
        Field::new("f", DataType::Float64, true),
        Field::new("u", DataType::UInt64, true),
    ]);
    let big = 1u64 << 53;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![0.1, 0.2, 0.3, 0.2])),
        Arc::new(UInt64Array::from(vec![big, big + 1, 0, big + 1])),
    ];
    let (groups, rows, times) = (vec![0; 4], vec![0, 1, 2, 3], vec![0; 4]);
    // rounded once, as SUM is: 0.1 + 0.2 + 0.3 added in order would be 0.6000000000000001
    let sum = run(
        &Agg::sum_distinct("f"),
        &schema,
        &columns,
        &groups,
        &rows,
        &times,
        1,
    );
    assert_eq!(sum.as_primitive::<Float64Type>().value(0), 0.6);
    let plain = run(
        &Agg::sum("f"),
        &schema,
        &columns,
        &groups[..3],
        &[0, 1, 2],
        &times,
        1,
    );
    assert_eq!(plain.as_primitive::<Float64Type>().value(0), 0.6);
    let mean = run(
        &Agg::avg_distinct("u"),
        &schema,
        &columns,
        &groups,
        &rows,
        &times,
        1,
    );
    let want = ((big as u128 + big as u128 + 1) as f64) / 3.0;
    assert_eq!(mean.as_primitive::<Float64Type>().value(0), want);
    let total = run(
        &Agg::sum_distinct("u"),
        &schema,
        &columns,
        &groups,
        &rows,
        &times,
        1,
    );
    assert_eq!(
        total.as_primitive::<Int64Type>().value(0),
        (2 * big + 1) as i64
    );
}

// ------------------------------------------------- min and max over retractions

/// Rows `(group, value, sign)` as a batch: `x` Int64 (null where `None`),
/// `s` (the sign, Int64), and the same values as strings in `t` and as
/// floats in `f`.
fn signed_batch(rows: &[(u32, Option<i8>, i64)]) -> (Schema, Vec<ArrayRef>) {
    let schema = Schema::new(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("t", DataType::Utf8, true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Int64, false),
    ]);
    let x: Int64Array = rows.iter().map(|r| r.1.map(i64::from)).collect();
    let t: StringArray = rows
        .iter()
        .map(|r| r.1.map(|v| format!("v{:+04}", v)))
        .collect();
    let f: Float64Array = rows
        .iter()
        .map(|r| r.1.map(|v| f64::from(v) / 4.0))
        .collect();
    let s = Int64Array::from_iter_values(rows.iter().map(|r| r.2));
    let columns: Vec<ArrayRef> = vec![Arc::new(x), Arc::new(t), Arc::new(f), Arc::new(s)];
    (schema, columns)
}

/// Each group's non-null values left after the changelog `rows` (brute
/// force).
fn left_after(rows: &[(u32, Option<i8>, i64)]) -> BTreeMap<u32, Vec<i8>> {
    let mut left: BTreeMap<u32, Vec<i8>> = BTreeMap::new();
    for &(g, v, sign) in rows {
        let Some(v) = v else { continue };
        let vs = left.entry(g).or_default();
        if sign > 0 {
            vs.push(v);
        } else {
            let i = vs
                .iter()
                .position(|&x| x == v)
                .expect("deleted after inserted");
            vs.swap_remove(i);
        }
    }
    left
}

/// A changelog: inserts of random values, and deletes of values inserted
/// earlier into the same group (so every count stays at or above zero).
fn changelog_rows() -> impl Strategy<Value = Vec<(u32, Option<i8>, i64)>> {
    prop::collection::vec(
        (
            0u32..4,
            prop::option::weighted(0.9, -20i8..20),
            any::<bool>(),
        ),
        1..120,
    )
    .prop_map(|ops| {
        let mut live: Vec<Vec<Option<i8>>> = vec![Vec::new(); 4];
        let mut out = Vec::new();
        for (g, v, delete) in ops {
            let group = &mut live[g as usize];
            if delete && !group.is_empty() {
                let i = (v.unwrap_or(0).unsigned_abs() as usize) % group.len();
                out.push((g, group.swap_remove(i), -1));
            } else {
                group.push(v);
                out.push((g, v, 1));
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Min and max over retractions equal the min and max of what is left
    /// (brute force), in one pass, split in two merged accumulators, and
    /// through a partial state.
    #[test]
    fn retracting_min_and_max_equal_the_extremes_of_what_is_left(
        rows in changelog_rows(),
        cut in 0usize..120,
    ) {
        let (schema, columns) = signed_batch(&rows);
        let left = left_after(&rows);
        let groups: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let all: Vec<u32> = (0..4).collect();
        for (column, max) in [("x", false), ("x", true), ("t", false), ("t", true), ("f", true)] {
            let agg = if max { Agg::max(column) } else { Agg::min(column) }.retracting("s");
            let bound = agg.bind(&schema, "test").unwrap();
            let values = bound.values(&columns).unwrap();
            // one pass
            let mut one = Accumulators::new(&bound);
            one.resize(4);
            let rows_ix: Vec<u32> = (0..rows.len() as u32).collect();
            one.update(&groups, &rows_ix, &values, &[], "m").unwrap();
            // two halves, merged group by group, then through a partial state
            let cut = cut.min(rows.len());
            let (mut a, mut b) = (Accumulators::new(&bound), Accumulators::new(&bound));
            a.resize(4);
            b.resize(4);
            a.update(&groups[..cut], &rows_ix[..cut], &values, &[], "m").unwrap();
            b.update(&groups[cut..], &rows_ix[cut..], &values, &[], "m").unwrap();
            for g in 0..4 {
                a.merge(g, &b, g).unwrap();
            }
            let state = a.to_state(&all).unwrap();
            let mut c = Accumulators::new(&bound);
            c.resize(4);
            c.merge_state(&all, &state).unwrap();
            let want: Vec<Option<String>> = (0..4)
                .map(|g| {
                    let vs = left.get(&g)?;
                    if column == "t" {
                        // strings order as strings ('+' before '-')
                        let ts = vs.iter().map(|v| format!("v{:+04}", v));
                        return if max { ts.max() } else { ts.min() };
                    }
                    let v = if max { vs.iter().max() } else { vs.iter().min() }?;
                    Some(match column {
                        "x" => v.to_string(),
                        _ => format!("{:?}", f64::from(*v) / 4.0),
                    })
                })
                .collect();
            for (what, acc) in [("one pass", &one), ("merged", &a), ("restored", &c)] {
                let out = acc.finish(&all, &bound).unwrap();
                let got: Vec<Option<String>> = (0..4)
                    .map(|i| {
                        (!out.is_null(i)).then(|| match out.data_type() {
                            DataType::Int64 => out.as_primitive::<Int64Type>().value(i).to_string(),
                            DataType::Float64 => format!("{:?}", out.as_primitive::<Float64Type>().value(i)),
                            _ => out.as_string::<i32>().value(i).to_string(),
                        })
                    })
                    .collect();
                prop_assert_eq!(&got, &want, "{} {}({})", what, if max { "max" } else { "min" }, column);
            }
        }
    }
}

#[test]
fn retracting_aggregates_need_an_int64_sign_column_and_signed_values() {
    let (schema, columns) = signed_batch(&[(0, Some(1), 1)]);
    let e = Agg::min("x")
        .retracting("nope")
        .bind(&schema, "test")
        .unwrap_err();
    assert!(e.to_string().contains("sign column"), "{e}");
    let e = Agg::min("x")
        .retracting("t")
        .bind(&schema, "test")
        .unwrap_err();
    assert!(e.to_string().contains("Int64"), "{e}");
    // values without their signs are refused, not misread
    let bound = Agg::max("x").retracting("s").bind(&schema, "test").unwrap();
    let mut acc = Accumulators::new(&bound);
    acc.resize(1);
    let plain = Values::Int(columns[0].as_primitive::<Int64Type>().clone());
    let e = acc.update(&[0], &[0], &plain, &[], "m").unwrap_err();
    assert!(e.to_string().contains("signs"), "{e}");
    // memory is given back on reset
    acc.update(&[0], &[0], &bound.values(&columns).unwrap(), &[], "m")
        .unwrap();
    assert!(acc.memory_size() > 0);
    let before = acc.memory_size();
    acc.reset(0);
    assert!(acc.memory_size() < before);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The distinct aggregates over retractions report on the values left
    /// (brute force): one pass, and merged halves through a partial state.
    #[test]
    fn retracting_distinct_aggregates_report_on_the_values_left(
        rows in changelog_rows(),
        cut in 0usize..120,
    ) {
        let (schema, columns) = signed_batch(&rows);
        let left = left_after(&rows);
        let groups: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let rows_ix: Vec<u32> = (0..rows.len() as u32).collect();
        let all: Vec<u32> = (0..4).collect();
        for agg in [Agg::count_distinct("x"), Agg::sum_distinct("x"), Agg::avg_distinct("f")] {
            let name = agg.func.name().to_string();
            let bound = agg.retracting("s").bind(&schema, "test").unwrap();
            let values = bound.values(&columns).unwrap();
            let mut one = Accumulators::new(&bound);
            one.resize(4);
            one.update(&groups, &rows_ix, &values, &[], "d").unwrap();
            let cut = cut.min(rows.len());
            let (mut a, mut b) = (Accumulators::new(&bound), Accumulators::new(&bound));
            a.resize(4);
            b.resize(4);
            a.update(&groups[..cut], &rows_ix[..cut], &values, &[], "d").unwrap();
            b.update(&groups[cut..], &rows_ix[cut..], &values, &[], "d").unwrap();
            let state = b.to_state(&all).unwrap();
            a.merge_state(&all, &state).unwrap();
            let want: Vec<String> = (0..4)
                .map(|g| {
                    let set: std::collections::BTreeSet<i8> =
                        left.get(&g).map(|vs| vs.iter().copied().collect()).unwrap_or_default();
                    match name.as_str() {
                        "count_distinct" => set.len().to_string(),
                        _ if set.is_empty() => "null".into(),
                        "sum_distinct" => set.iter().map(|&v| i64::from(v)).sum::<i64>().to_string(),
                        _ => {
                            // quarters: exact in f64, so the mean is exact too
                            let sum: f64 = set.iter().map(|&v| f64::from(v) / 4.0).sum();
                            format!("{:?}", sum / set.len() as f64)
                        }
                    }
                })
                .collect();
            for (what, acc) in [("one pass", &one), ("merged", &a)] {
                let out = acc.finish(&all, &bound).unwrap();
                let got: Vec<String> = (0..4)
                    .map(|i| {
                        if out.is_null(i) {
                            return "null".to_string();
                        }
                        match out.data_type() {
                            DataType::Int64 => out.as_primitive::<Int64Type>().value(i).to_string(),
                            _ => format!("{:?}", out.as_primitive::<Float64Type>().value(i)),
                        }
                    })
                    .collect();
                prop_assert_eq!(&got, &want, "{} {}", what, name);
            }
        }
    }
}

// ------------------------------------------- user aggregates over retractions

/// `squares(x)` over Int64: the sum of squares of the values, taking back
/// what is retracted.
#[derive(Debug)]
struct SquaresBack;

#[derive(Debug, Default)]
struct SquaresState(i64);

impl AggregateUdf for SquaresBack {
    fn name(&self) -> &str {
        "squares"
    }
    fn return_type(&self, _: &DataType) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn state_type(&self, _: &DataType) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn create(&self) -> Box<dyn AggregateState> {
        Box::new(SquaresState::default())
    }
    fn retracts(&self) -> bool {
        true
    }
}

impl SquaresState {
    fn add(&mut self, values: &ArrayRef, rows: &[u32], sign: i64) {
        let values = values.as_primitive::<Int64Type>();
        for &r in rows {
            if values.is_valid(r as usize) {
                self.0 += sign * values.value(r as usize).pow(2);
            }
        }
    }
}

impl AggregateState for SquaresState {
    fn update(&mut self, values: &ArrayRef, rows: &[u32], _: &[i64]) -> Result<()> {
        self.add(values, rows, 1);
        Ok(())
    }
    fn retract(&mut self, values: &ArrayRef, rows: &[u32], _: &[i64]) -> Result<()> {
        self.add(values, rows, -1);
        Ok(())
    }
    fn merge(&mut self, other: &dyn AggregateState) -> Result<()> {
        self.0 += other
            .as_any()
            .downcast_ref::<SquaresState>()
            .expect("same UDAF")
            .0;
        Ok(())
    }
    fn state(&self) -> Result<ScalarValueOrArray> {
        Ok(Arc::new(Int64Array::from(vec![self.0])))
    }
    fn merge_state(&mut self, state: &ArrayRef, row: usize) -> Result<()> {
        self.0 += state.as_primitive::<Int64Type>().value(row);
        Ok(())
    }
    fn finish(&self) -> Result<ArrayRef> {
        self.state()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A user aggregate that retracts, over a changelog, equals its value
    /// over what is left (brute force): one pass, merged halves, and
    /// through a partial state.
    #[test]
    fn a_retracting_user_aggregate_equals_its_value_over_what_is_left(
        rows in changelog_rows(),
        cut in 0usize..120,
    ) {
        let (schema, columns) = signed_batch(&rows);
        let left = left_after(&rows);
        let groups: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let rows_ix: Vec<u32> = (0..rows.len() as u32).collect();
        let all: Vec<u32> = (0..4).collect();
        // user aggregates are handed every row's time
        let times = vec![i64::MIN; rows.len()];
        let bound = Agg::udf(Arc::new(SquaresBack), "x")
            .retracting("s")
            .bind(&schema, "test")
            .unwrap();
        let values = bound.values(&columns).unwrap();
        let mut one = Accumulators::new(&bound);
        one.resize(4);
        one.update(&groups, &rows_ix, &values, &times, "u").unwrap();
        let cut = cut.min(rows.len());
        let (mut a, mut b) = (Accumulators::new(&bound), Accumulators::new(&bound));
        a.resize(4);
        b.resize(4);
        a.update(&groups[..cut], &rows_ix[..cut], &values, &times, "u").unwrap();
        b.update(&groups[cut..], &rows_ix[cut..], &values, &times, "u").unwrap();
        let state = b.to_state(&all).unwrap();
        a.merge_state(&all, &state).unwrap();
        let want: Vec<i64> = (0..4)
            .map(|g| {
                left.get(&g)
                    .map_or(0, |vs| vs.iter().map(|&v| i64::from(v).pow(2)).sum())
            })
            .collect();
        for (what, acc) in [("one pass", &one), ("merged", &a)] {
            let out = acc.finish(&all, &bound).unwrap();
            prop_assert_eq!(out.as_primitive::<Int64Type>().values().to_vec(), want.clone(), "{}", what);
        }
    }
}

#[test]
fn a_user_aggregate_that_does_not_retract_is_refused_over_retractions() {
    let (schema, _) = signed_batch(&[(0, Some(1), 1)]);
    let e = Agg::udf(Arc::new(Range), "f")
        .retracting("s")
        .bind(&schema, "test")
        .unwrap_err();
    assert!(e.to_string().contains("takes no rows back"), "{e}");
}

#[test]
fn a_user_aggregate_skips_rows_whose_sign_is_null_or_zero() {
    let schema = Schema::new(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("s", DataType::Int64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![3, 4, 5, 3, 6])),
        Arc::new(Int64Array::from(vec![
            Some(1),
            None,
            Some(0),
            Some(-1),
            Some(1),
        ])),
    ];
    let bound = Agg::udf(Arc::new(SquaresBack), "x")
        .retracting("s")
        .bind(&schema, "test")
        .unwrap();
    let values = bound.values(&columns).unwrap();
    let mut acc = Accumulators::new(&bound);
    acc.resize(1);
    acc.update(&[0; 5], &[0, 1, 2, 3, 4], &values, &[i64::MIN; 5], "u")
        .unwrap();
    // +9, skipped, skipped, -9, +36
    let out = acc.finish(&[0], &bound).unwrap();
    assert_eq!(out.as_primitive::<Int64Type>().value(0), 36);
}

/// `max_held(x)`: the largest value held, over a multiset that refuses to
/// take back a value it does not hold (so a retraction applied before its
/// insertion is an error, not a silent negative count).
#[derive(Debug)]
struct MaxHeld;

#[derive(Debug, Default)]
struct Held(BTreeMap<i64, u32>);

impl AggregateUdf for MaxHeld {
    fn name(&self) -> &str {
        "max_held"
    }
    fn return_type(&self, _: &DataType) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn state_type(&self, _: &DataType) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn create(&self) -> Box<dyn AggregateState> {
        Box::new(Held::default())
    }
    fn retracts(&self) -> bool {
        true
    }
}

impl AggregateState for Held {
    fn update(&mut self, values: &ArrayRef, rows: &[u32], _: &[i64]) -> Result<()> {
        let values = values.as_primitive::<Int64Type>();
        for &r in rows {
            if values.is_valid(r as usize) {
                *self.0.entry(values.value(r as usize)).or_default() += 1;
            }
        }
        Ok(())
    }
    fn retract(&mut self, values: &ArrayRef, rows: &[u32], _: &[i64]) -> Result<()> {
        let values = values.as_primitive::<Int64Type>();
        for &r in rows {
            if !values.is_valid(r as usize) {
                continue;
            }
            let v = values.value(r as usize);
            let n = self
                .0
                .get_mut(&v)
                .ok_or_else(|| Error::option("max_held", format!("{v} taken back, not held")))?;
            *n -= 1;
            if *n == 0 {
                self.0.remove(&v);
            }
        }
        Ok(())
    }
    fn merge(&mut self, _: &dyn AggregateState) -> Result<()> {
        Err(Error::option("max_held", "one pass only"))
    }
    fn state(&self) -> Result<ScalarValueOrArray> {
        Err(Error::option("max_held", "one pass only"))
    }
    fn merge_state(&mut self, _: &ArrayRef, _: usize) -> Result<()> {
        Err(Error::option("max_held", "one pass only"))
    }
    fn finish(&self) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(vec![self
            .0
            .keys()
            .next_back()
            .copied()])))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.0.len() * 32
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A group's rows reach a user aggregate in arrival order, each run of
    /// one sign in turn: a retraction never comes before the insertion it
    /// takes back (`max_held` would refuse it), whatever the groups'
    /// interleaving in the batch.
    #[test]
    fn a_user_aggregate_sees_each_groups_changelog_in_order(rows in changelog_rows()) {
        let (schema, columns) = signed_batch(&rows);
        let left = left_after(&rows);
        let groups: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let rows_ix: Vec<u32> = (0..rows.len() as u32).collect();
        let bound = Agg::udf(Arc::new(MaxHeld), "x").retracting("s").bind(&schema, "test").unwrap();
        let values = bound.values(&columns).unwrap();
        let mut acc = Accumulators::new(&bound);
        acc.resize(4);
        acc.update(&groups, &rows_ix, &values, &vec![i64::MIN; rows.len()], "m").unwrap();
        let out = acc.finish(&[0, 1, 2, 3], &bound).unwrap();
        let got: Vec<Option<i64>> = (0..4)
            .map(|i| (!out.is_null(i)).then(|| out.as_primitive::<Int64Type>().value(i)))
            .collect();
        let want: Vec<Option<i64>> = (0..4u32)
            .map(|g| left.get(&g).and_then(|vs| vs.iter().max()).map(|&v| i64::from(v)))
            .collect();
        prop_assert_eq!(got, want);
    }
}
