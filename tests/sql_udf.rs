//! User-defined functions in weir SQL, registered from Rust: a scalar UDF
//! (Arrow arrays in, an Arrow array out) and an aggregate UDF, called by
//! name in a script planned with `ScriptOptions::with_functions`, give the
//! rows of an oracle computed here in both modes at parallelism 1 and 3;
//! a name that is taken is refused. Implementations registered under a
//! class name are bound by Flink's `CREATE FUNCTION name AS 'class'`.

mod common;

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow_schema::{ArrowError, DataType};
use weir::expr::{ColumnarValue, ScalarFunction};
use weir::functions::aggregate::{AggregateState, AggregateUdf, ScalarValueOrArray};
use weir::functions::FunctionRegistry;
use weir::sql::{Script, ScriptOptions};
use weir::{Error, ExecConfig, ExecMode, Result};

/// `kmh(speed)`: m/s to km/h.
#[derive(Debug)]
struct Kmh;

impl ScalarFunction for Kmh {
    fn name(&self) -> &str {
        "kmh"
    }
    fn return_type(&self, args: &[DataType]) -> std::result::Result<DataType, String> {
        match args {
            [DataType::Float64] => Ok(DataType::Float64),
            other => Err(format!("takes one DOUBLE, not {other:?}")),
        }
    }
    fn invoke(
        &self,
        args: &[ColumnarValue],
        rows: usize,
    ) -> std::result::Result<ArrayRef, ArrowError> {
        let x = args[0].to_array(rows)?;
        let out: Float64Array = x.as_primitive::<Float64Type>().unary(|v| v * 3.6);
        Ok(Arc::new(out))
    }
}

/// `sum_squares(x)` over BIGINT: exact, so every mode agrees to the bit.
#[derive(Debug)]
struct SumSquares;

#[derive(Debug)]
struct Squares(i64);

impl AggregateUdf for SumSquares {
    fn name(&self) -> &str {
        "sum_squares"
    }
    fn return_type(&self, input: &DataType) -> Result<DataType> {
        match input {
            DataType::Int64 => Ok(DataType::Int64),
            other => Err(Error::option(
                "sum_squares",
                format!("needs BIGINT, got {other}"),
            )),
        }
    }
    fn state_type(&self, _input: &DataType) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn create(&self) -> Box<dyn AggregateState> {
        Box::new(Squares(0))
    }
}

impl AggregateState for Squares {
    fn update(&mut self, values: &ArrayRef, rows: &[u32], _times: &[i64]) -> Result<()> {
        let values = values.as_primitive::<Int64Type>();
        for &r in rows {
            if values.is_valid(r as usize) {
                self.0 += values.value(r as usize).pow(2);
            }
        }
        Ok(())
    }
    fn retract(&mut self, values: &ArrayRef, rows: &[u32], _times: &[i64]) -> Result<()> {
        self.retract_rows(values, rows);
        Ok(())
    }
    fn merge(&mut self, other: &dyn AggregateState) -> Result<()> {
        let other = other.as_any().downcast_ref::<Squares>().expect("same UDAF");
        self.0 += other.0;
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
    fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `sum_squares_back(x)`: `sum_squares` that takes rows back, so it can
/// aggregate a changelog (Flink's `retract`).
#[derive(Debug)]
struct SumSquaresBack;

impl AggregateUdf for SumSquaresBack {
    fn name(&self) -> &str {
        "sum_squares_back"
    }
    fn return_type(&self, input: &DataType) -> Result<DataType> {
        SumSquares.return_type(input)
    }
    fn state_type(&self, input: &DataType) -> Result<DataType> {
        SumSquares.state_type(input)
    }
    fn create(&self) -> Box<dyn AggregateState> {
        Box::new(Squares(0))
    }
    fn retracts(&self) -> bool {
        true
    }
}

impl Squares {
    fn retract_rows(&mut self, values: &ArrayRef, rows: &[u32]) {
        let values = values.as_primitive::<Int64Type>();
        for &r in rows {
            if values.is_valid(r as usize) {
                self.0 -= values.value(r as usize).pow(2);
            }
        }
    }
}

fn registry() -> FunctionRegistry {
    FunctionRegistry::builtin()
        .with_udf(Arc::new(Kmh))
        .unwrap()
        .with_aggregate_udf(Arc::new(SumSquares))
        .unwrap()
        .with_aggregate_udf(Arc::new(SumSquaresBack))
        .unwrap()
}

fn script(data: &Path, out: &Path) -> String {
    format!(
        "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
         WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         CREATE TABLE out (vehicle_id BIGINT, window_start BIGINT, squares BIGINT, top DOUBLE)\n  \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         INSERT INTO out SELECT vehicle_id, window_start, SUM_SQUARES(CAST(kmh(speed) AS BIGINT)), MAX(kmh(speed))\n\
         FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n\
         GROUP BY window_start, window_end, vehicle_id;",
        data.display(),
        out.display()
    )
}

#[test]
fn scalar_and_aggregate_udfs_equal_the_oracle_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 8, 60, 2);
    let mut want: BTreeMap<(i64, i64), (i64, f64)> = BTreeMap::new();
    for (v, t, speed) in common::sql::input_rows(&data) {
        let kmh = speed * 3.6;
        let e = want
            .entry((v, t.div_euclid(10_000) * 10_000))
            .or_insert((0, f64::MIN));
        // CAST to BIGINT truncates toward zero
        e.0 += (kmh.trunc() as i64).pow(2);
        e.1 = e.1.max(kmh);
    }
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let out = dir.path().join(format!("out-{mode:?}-{p}"));
            let s = Script::try_with(
                &script(&data, &out),
                dir.path(),
                ScriptOptions::default().with_functions(registry()),
            )
            .unwrap();
            s.job()
                .run(&ExecConfig::new(mode).with_parallelism(p))
                .unwrap();
            let mut got = BTreeMap::new();
            for b in common::read_parquet_parts(&out) {
                let c = |n: &str| b.column_by_name(n).unwrap().clone();
                let (v, w, q, top) = (c("vehicle_id"), c("window_start"), c("squares"), c("top"));
                for i in 0..b.num_rows() {
                    got.insert(
                        (
                            v.as_primitive::<Int64Type>().value(i),
                            w.as_primitive::<Int64Type>().value(i),
                        ),
                        (
                            q.as_primitive::<Int64Type>().value(i),
                            top.as_primitive::<Float64Type>().value(i),
                        ),
                    );
                }
            }
            assert_eq!(got, want, "{mode:?} p={p}");
        }
    }
}

#[test]
fn udfs_need_registering_and_free_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 2, 5, 1);
    let out = dir.path().join("out");
    // without the registry the script names what it does not know
    let err = Script::try_new(&script(&data, &out), dir.path())
        .expect_err("kmh is unknown")
        .to_string();
    assert!(err.contains("unknown function kmh()"), "{err}");
    // taken names are refused: a built-in scalar, a built-in aggregate, a UDF twice
    #[derive(Debug)]
    struct Named(&'static str);
    impl AggregateUdf for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn return_type(&self, input: &DataType) -> Result<DataType> {
            Ok(input.clone())
        }
        fn state_type(&self, input: &DataType) -> Result<DataType> {
            Ok(input.clone())
        }
        fn create(&self) -> Box<dyn AggregateState> {
            Box::new(Squares(0))
        }
    }
    for name in ["upper", "SUM", "sum_squares", "kmh"] {
        let err = registry()
            .with_aggregate_udf(Arc::new(Named(name)))
            .expect_err("a taken name");
        assert!(err.to_string().contains("already exists"), "{name}: {err}");
    }
    // a user aggregate cannot take back a changelog's deleted rows
    let over_changelog = format!(
        "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
         WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         SELECT vehicle_id % 2, SUM_SQUARES(n) FROM \
         (SELECT vehicle_id, COUNT(*) AS n FROM obd GROUP BY vehicle_id) GROUP BY vehicle_id % 2;",
        data.display()
    );
    let err = Script::try_with(
        &over_changelog,
        dir.path(),
        ScriptOptions::default().with_functions(registry()),
    )
    .expect_err("a user aggregate over a changelog")
    .to_string();
    assert!(
        err.contains("SUM_SQUARES(…) over a changelog")
            && err.contains("user aggregates that implement `retract`")
            && err.contains("this one does not"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_user_aggregate_that_retracts_aggregates_a_changelog_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 12, 600, 2);
    // per vehicle_id % 3: the sum over its vehicles of their row count
    // squared (the inner GROUP BY's counts grow, so each update takes the
    // old count's square back)
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for (v, _, _) in common::sql::input_rows(&data) {
        *counts.entry(v).or_default() += 1;
    }
    let mut want: BTreeMap<i64, i64> = BTreeMap::new();
    for (v, n) in &counts {
        *want.entry(v % 3).or_default() += n * n;
    }
    assert_eq!(want.len(), 3);
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let out = dir.path().join(format!("back-{mode:?}-{p}"));
            let text = format!(
                "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
                 WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE)\n  \
                 WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 CREATE TABLE out (g BIGINT, squares BIGINT, op VARCHAR)\n  \
                 WITH ('connector' = 'parquet', 'path' = '{}');\n\
                 INSERT INTO out SELECT vehicle_id % 3, SUM_SQUARES_BACK(n) FROM \
                 (SELECT vehicle_id, COUNT(*) AS n FROM obd GROUP BY vehicle_id) \
                 GROUP BY vehicle_id % 3;",
                data.display(),
                out.display()
            );
            let s = Script::try_with(
                &text,
                dir.path(),
                ScriptOptions::default().with_functions(registry()),
            )
            .unwrap();
            s.job()
                .run(&ExecConfig::new(mode).with_parallelism(p))
                .unwrap();
            // the changelog folded: the last row of each key
            let mut got: BTreeMap<i64, i64> = BTreeMap::new();
            for b in common::read_parquet_parts(&out) {
                let g = b.column(0).as_primitive::<Int64Type>();
                let q = b.column(1).as_primitive::<Int64Type>();
                let op = b.column(2).as_string::<i32>();
                for i in 0..b.num_rows() {
                    match op.value(i) {
                        "delete" => {
                            got.remove(&g.value(i));
                        }
                        _ => {
                            got.insert(g.value(i), q.value(i));
                        }
                    }
                }
            }
            assert_eq!(got, want, "{mode:?} p={p}");
        }
    }
}

/// The UDFs registered under class names, as a program running Flink
/// scripts that `CREATE FUNCTION … AS 'class'` would.
fn classes() -> FunctionRegistry {
    FunctionRegistry::builtin()
        .with_class("com.acme.udf.Kmh", Arc::new(Kmh))
        .unwrap()
        .with_aggregate_class("com.acme.udf.SumSquares", Arc::new(SumSquares))
        .unwrap()
}

#[test]
fn create_function_binds_a_registered_class_and_equals_the_registered_udfs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 6, 60, 2);
    // the same script as registered UDFs, its functions bound by Flink's
    // statements (other names: what runs is what the statements bound)
    let bound = |out: &Path| {
        format!(
            "CREATE TEMPORARY SYSTEM FUNCTION to_kmh AS 'com.acme.udf.Kmh' LANGUAGE JAVA;\n\
             CREATE FUNCTION IF NOT EXISTS squares AS 'com.acme.udf.SumSquares';\n{}",
            script(&data, out)
                .replace("SUM_SQUARES(", "squares(")
                .replace("kmh(", "to_kmh(")
        )
    };
    for mode in [ExecMode::Batch, ExecMode::Pipelined] {
        for p in [1, 3] {
            let run = |text: String, functions: FunctionRegistry| {
                Script::try_with(
                    &text,
                    dir.path(),
                    ScriptOptions::default().with_functions(functions),
                )
                .unwrap()
                .job()
                .run(&ExecConfig::new(mode).with_parallelism(p))
                .unwrap();
            };
            let (want, got) = (
                dir.path().join(format!("want-{mode:?}-{p}")),
                dir.path().join(format!("got-{mode:?}-{p}")),
            );
            run(script(&data, &want), registry());
            run(bound(&got), classes());
            let (want, got) = (common::sql::rows(&want), common::sql::rows(&got));
            assert!(want.len() > 10, "{} rows", want.len());
            assert_eq!(got, want, "{mode:?} p={p}");
        }
    }
}

#[test]
fn create_function_refuses_what_it_cannot_bind_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("obd");
    common::generate_obd(&data, 2, 5, 1);
    let out = dir.path().join("out");
    let table = format!(
        "CREATE TABLE obd (vehicle_id BIGINT, event_time TIMESTAMP(3), speed DOUBLE,\n  \
         WATERMARK FOR event_time AS event_time - INTERVAL '10' SECOND)\n  \
         WITH ('connector' = 'parquet', 'path' = '{}');\n\
         CREATE TABLE out (v BIGINT, x DOUBLE) WITH ('connector' = 'parquet', 'path' = '{}');\n",
        data.display(),
        out.display()
    );
    let cases: &[(&str, &[&str])] = &[
        (
            "CREATE FUNCTION kmh AS 'com.acme.udf.Nope';",
            &[
                "line 5, column 17",
                "no function is registered as 'com.acme.udf.Nope'",
                "registered: com.acme.udf.Kmh, com.acme.udf.SumSquares, com.github.nexmark",
            ],
        ),
        (
            "CREATE FUNCTION upper AS 'com.acme.udf.Kmh';",
            &["a function named upper() already exists"],
        ),
        (
            "CREATE FUNCTION kmh AS 'com.acme.udf.Kmh';\nCREATE FUNCTION KMH AS 'com.acme.udf.Kmh';",
            &["line 6, column 17", "kmh() already exists"],
        ),
        (
            "CREATE FUNCTION kmh AS 'com.acme.udf.Kmh' USING JAR '/tmp/udf.jar';",
            &["USING JAR '/tmp/udf.jar'", "weir loads no jars"],
        ),
        (
            "CREATE FUNCTION db.kmh AS 'com.acme.udf.Kmh';",
            &["a function in a catalog or database"],
        ),
        (
            "CREATE FUNCTION kmh AS 'com.acme.udf.Kmh' LANGUAGE COBOL;",
            &["LANGUAGE COBOL", "JAVA, SCALA and PYTHON"],
        ),
        // IF NOT EXISTS leaves a taken name as it was: upper() of a number
        (
            "CREATE FUNCTION IF NOT EXISTS upper AS 'com.acme.udf.Kmh';\n\
             INSERT INTO out SELECT vehicle_id, upper(speed) FROM obd;",
            &["upper"],
        ),
        // a class is not callable by its implementation's name until bound
        (
            "INSERT INTO out SELECT vehicle_id, kmh(speed) FROM obd;",
            &["unknown function kmh()"],
        ),
    ];
    for (statements, says) in cases {
        let err = Script::try_with(
            &format!("{table}{statements}"),
            dir.path(),
            ScriptOptions::default().with_functions(classes()),
        )
        .expect_err(statements)
        .to_string();
        for s in *says {
            assert!(err.contains(s), "{statements}: wanted `{s}` in {err}");
        }
    }
    assert!(!out.exists());
}
