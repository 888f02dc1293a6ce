//! Math built-ins. `abs`, `ceil`, `floor` and `sign` keep an integer
//! argument's type; `round` keeps it too; everything else computes in
//! `Float64`. A result that is not a real number (`sqrt(-1)`, `ln(0)`) is
//! NaN or infinite, as in IEEE arithmetic, never an error.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array};
use arrow_cast::cast;
use arrow_schema::{ArrowError, DataType};
use weir_core::expr::ColumnarValue;

use super::{floats, ints, signature, Builtin, Kind};

const N: Kind = Kind::Num;
const I: Kind = Kind::Int;

pub(super) const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "abs",
        ret: same_number,
        run: abs,
    },
    Builtin {
        name: "ceil",
        ret: same_number,
        run: |a, n| rounded(a, n, f64::ceil),
    },
    Builtin {
        name: "ceiling",
        ret: same_number,
        run: |a, n| rounded(a, n, f64::ceil),
    },
    Builtin {
        name: "floor",
        ret: same_number,
        run: |a, n| rounded(a, n, f64::floor),
    },
    Builtin {
        name: "sign",
        ret: same_number,
        run: sign,
    },
    Builtin {
        name: "round",
        ret: |a| signature(a, &[N], &[I]).map(|_| number_type(&a[0])),
        run: round,
    },
    Builtin {
        name: "power",
        ret: |a| signature(a, &[N, N], &[]).map(|_| DataType::Float64),
        run: |a, n| float2(a, n, f64::powf),
    },
    Builtin {
        name: "pow",
        ret: |a| signature(a, &[N, N], &[]).map(|_| DataType::Float64),
        run: |a, n| float2(a, n, f64::powf),
    },
    Builtin {
        name: "sqrt",
        ret: float1_type,
        run: |a, n| float1(a, n, f64::sqrt),
    },
    Builtin {
        name: "exp",
        ret: float1_type,
        run: |a, n| float1(a, n, f64::exp),
    },
    Builtin {
        name: "ln",
        ret: float1_type,
        run: |a, n| float1(a, n, f64::ln),
    },
    Builtin {
        name: "log10",
        ret: float1_type,
        run: |a, n| float1(a, n, f64::log10),
    },
    Builtin {
        name: "log2",
        ret: float1_type,
        run: |a, n| float1(a, n, f64::log2),
    },
    Builtin {
        // log(x) is ln(x); log(base, x) as in Flink
        name: "log",
        ret: |a| signature(a, &[N], &[N]).map(|_| DataType::Float64),
        run: |a, n| match a.len() {
            1 => float1(a, n, f64::ln),
            _ => float2(a, n, |base, x| x.ln() / base.ln()),
        },
    },
    Builtin {
        name: "pi",
        ret: |a| signature(a, &[], &[]).map(|_| DataType::Float64),
        run: |_, n| Ok(Arc::new(Float64Array::from_value(std::f64::consts::PI, n))),
    },
];

fn number_type(t: &DataType) -> DataType {
    if t == &DataType::Null {
        DataType::Float64
    } else {
        t.clone()
    }
}

fn same_number(a: &[DataType]) -> Result<DataType, String> {
    signature(a, &[N], &[]).map(|_| number_type(&a[0]))
}

fn float1_type(a: &[DataType]) -> Result<DataType, String> {
    signature(a, &[N], &[]).map(|_| DataType::Float64)
}

fn float1(a: &[ColumnarValue], n: usize, f: fn(f64) -> f64) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(
        floats(&a[0], n)?.unary::<_, arrow_array::types::Float64Type>(f),
    ))
}

fn float2(
    a: &[ColumnarValue],
    n: usize,
    f: impl Fn(f64, f64) -> f64,
) -> Result<ArrayRef, ArrowError> {
    let (x, y) = (floats(&a[0], n)?, floats(&a[1], n)?);
    let out: Float64Array = x
        .iter()
        .zip(y.iter())
        .map(|(x, y)| Some(f(x?, y?)))
        .collect();
    Ok(Arc::new(out))
}

/// Computes in `Float64` (or `Int64` for integers) and casts back to the
/// argument's type.
fn in_own_type(
    a: &[ColumnarValue],
    n: usize,
    on_float: impl Fn(f64) -> f64,
    on_int: impl Fn(&Int64Array) -> Result<Int64Array, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    let t = number_type(a[0].data_type());
    let out: ArrayRef = if t.is_integer() {
        Arc::new(on_int(&ints(&a[0], n)?)?)
    } else {
        Arc::new(floats(&a[0], n)?.unary::<_, arrow_array::types::Float64Type>(on_float))
    };
    cast(&out, &t)
}

fn abs(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    in_own_type(a, n, f64::abs, |x| {
        x.try_unary(|v| {
            v.checked_abs().ok_or_else(|| {
                ArrowError::ArithmeticOverflow(format!("abs({v}) does not fit in 64 bits"))
            })
        })
    })
}

fn rounded(a: &[ColumnarValue], n: usize, f: fn(f64) -> f64) -> Result<ArrayRef, ArrowError> {
    in_own_type(a, n, f, |x| Ok(x.clone()))
}

fn sign(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    in_own_type(
        a,
        n,
        |v| {
            if v == 0.0 || v.is_nan() {
                v
            } else {
                v.signum()
            }
        },
        |x| Ok(x.unary(i64::signum)),
    )
}

/// `round(x [, digits])`: half away from zero at `digits` after the point
/// (negative: before it).
fn round(a: &[ColumnarValue], n: usize) -> Result<ArrayRef, ArrowError> {
    let digits = match a.get(1) {
        Some(d) => ints(d, n)?,
        None => Int64Array::from_value(0, n),
    };
    let t = number_type(a[0].data_type());
    if t.is_integer() {
        let x = ints(&a[0], n)?;
        let out: Int64Array = x
            .iter()
            .zip(digits.iter())
            .map(|(x, d)| {
                let (x, d) = (x?, d?);
                if d >= 0 {
                    return Some(x);
                }
                let p = 10i64.checked_pow(u32::try_from(-d).ok()?)?;
                let r = x.rem_euclid(p);
                let down = x - r;
                Some(if r * 2 >= p && x >= 0 || r * 2 > p {
                    down.checked_add(p)?
                } else {
                    down
                })
            })
            .collect();
        return cast(&(Arc::new(out) as ArrayRef), &t);
    }
    let x = floats(&a[0], n)?;
    let out: Float64Array = x
        .iter()
        .zip(digits.iter())
        .map(|(x, d)| {
            let (x, d) = (x?, d?);
            let p = 10f64.powi(d.clamp(-400, 400) as i32);
            Some((x * p).round() / p)
        })
        .collect();
    cast(&(Arc::new(out) as ArrayRef), &t)
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use weir_core::expr::{col, lit};

    fn f(name: &str, args: Vec<weir_core::expr::Expr>) -> Vec<Option<f64>> {
        let a = call(name, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        a.as_primitive::<Float64Type>().iter().collect()
    }

    fn i(name: &str, args: Vec<weir_core::expr::Expr>) -> Vec<Option<i64>> {
        let a = call(name, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        a.as_primitive::<Int64Type>().iter().collect()
    }

    #[test]
    fn integer_functions_keep_the_type() {
        assert_eq!(i("abs", vec![col("i")]), vec![Some(7), Some(3)]);
        assert_eq!(i("sign", vec![col("i")]), vec![Some(-1), Some(1)]);
        assert_eq!(i("floor", vec![col("i")]), vec![Some(-7), Some(3)]);
        assert_eq!(
            i("round", vec![lit(1250), lit(-2)]),
            vec![Some(1300), Some(1300)]
        );
        assert_eq!(
            i("round", vec![lit(-1250), lit(-2)]),
            vec![Some(-1300), Some(-1300)]
        );
        assert_eq!(
            i("round", vec![lit(-1249), lit(-2)]),
            vec![Some(-1200), Some(-1200)]
        );
        assert!(call("abs", vec![lit(i64::MIN)]).is_err());
    }

    #[test]
    fn float_functions() {
        assert_eq!(f("ceil", vec![col("f")]), vec![Some(3.0), None]);
        assert_eq!(f("floor", vec![col("f")]), vec![Some(2.0), None]);
        assert_eq!(f("round", vec![col("f")]), vec![Some(3.0), None]);
        assert_eq!(f("round", vec![lit(-2.5)])[0], Some(-3.0));
        assert_eq!(f("round", vec![lit(1.23456), lit(2)])[0], Some(1.23));
        assert_eq!(f("power", vec![lit(2), lit(10)])[0], Some(1024.0));
        assert_eq!(f("sqrt", vec![col("i")])[1], Some(3f64.sqrt()));
        assert!(f("sqrt", vec![col("i")])[0].is_some_and(f64::is_nan));
        assert_eq!(f("log", vec![lit(2), lit(8)])[0], Some(3.0));
        assert_eq!(f("log10", vec![lit(1000)])[0], Some(3.0));
        assert_eq!(f("ln", vec![lit(1)])[0], Some(0.0));
        assert_eq!(f("exp", vec![lit(0)])[0], Some(1.0));
        assert_eq!(f("pi", vec![])[0], Some(std::f64::consts::PI));
        assert_eq!(f("abs", vec![lit(-0.5)])[0], Some(0.5));
    }
}
