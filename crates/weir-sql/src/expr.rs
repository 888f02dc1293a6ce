//! Scalar expressions: `sqlparser`'s AST to weir's [`Expr`], SQL types to
//! Arrow types, and `INTERVAL` literals to durations. What weir's
//! expression language cannot evaluate yet is refused by name, with its
//! line and column.
//!
//! May use `weir-core`'s expressions and `super::error`.

use crate::error::{at_node, unsupported, SqlError};
use arrow_schema::DataType;
use sqlparser::ast::{
    self, BinaryOperator, CastKind, DateTimeField, Expr as SqlExpr, UnaryOperator, Value,
};
use std::time::Duration;
use weir_core::expr::{BinaryOp, Expr, ScalarValue};

/// Resolves `qualifier.name` (or `name`) at a node to a stream column.
pub(crate) type Resolve<'a> = dyn Fn(&SqlExpr, Option<&str>, &str) -> Result<String, SqlError> + 'a;

/// Translates a scalar expression. `column` resolves a (possibly
/// qualified) column name, refusing unknown ones.
pub(crate) fn scalar(e: &SqlExpr, column: &Resolve<'_>) -> Result<Expr, SqlError> {
    let rec = |x: &SqlExpr| scalar(x, column);
    Ok(match e {
        SqlExpr::Identifier(id) => Expr::Column(column(e, None, &id.value)?),
        SqlExpr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let (q, name) = (&parts[parts.len() - 2], &parts[parts.len() - 1]);
            Expr::Column(column(e, Some(&q.value), &name.value)?)
        }
        SqlExpr::Value(v) => Expr::Literal(literal(e, &v.value)?),
        SqlExpr::Nested(inner) => rec(inner)?,
        SqlExpr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => Expr::Not(Box::new(rec(expr)?)),
            UnaryOperator::Minus => Expr::Negative(Box::new(rec(expr)?)),
            UnaryOperator::Plus => rec(expr)?,
            other => return Err(unsupported(e, &format!("the operator {other}"))),
        },
        SqlExpr::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::Plus => BinaryOp::Add,
                BinaryOperator::Minus => BinaryOp::Sub,
                BinaryOperator::Multiply => BinaryOp::Mul,
                BinaryOperator::Divide => BinaryOp::Div,
                BinaryOperator::Modulo => BinaryOp::Mod,
                BinaryOperator::Eq => BinaryOp::Eq,
                BinaryOperator::NotEq => BinaryOp::NotEq,
                BinaryOperator::Lt => BinaryOp::Lt,
                BinaryOperator::LtEq => BinaryOp::LtEq,
                BinaryOperator::Gt => BinaryOp::Gt,
                BinaryOperator::GtEq => BinaryOp::GtEq,
                BinaryOperator::And => BinaryOp::And,
                BinaryOperator::Or => BinaryOp::Or,
                other => return Err(unsupported(e, &format!("the operator {other}"))),
            };
            Expr::Binary {
                left: Box::new(rec(left)?),
                op,
                right: Box::new(rec(right)?),
            }
        }
        SqlExpr::IsNull(x) => Expr::IsNull(Box::new(rec(x)?)),
        SqlExpr::IsNotNull(x) => Expr::IsNotNull(Box::new(rec(x)?)),
        SqlExpr::Cast {
            kind: CastKind::Cast,
            expr,
            data_type,
            ..
        } => Expr::Cast {
            expr: Box::new(rec(expr)?),
            to: arrow_type(e, data_type)?,
        },
        SqlExpr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            // CASE x WHEN a THEN … is CASE WHEN x = a THEN …
            let subject = operand.as_deref().map(rec).transpose()?;
            let mut branches = Vec::with_capacity(conditions.len());
            for w in conditions {
                let c = rec(&w.condition)?;
                let c = match &subject {
                    Some(x) => Expr::Binary {
                        left: Box::new(x.clone()),
                        op: BinaryOp::Eq,
                        right: Box::new(c),
                    },
                    None => c,
                };
                branches.push((c, rec(&w.result)?));
            }
            Expr::Case {
                branches,
                otherwise: else_result.as_deref().map(rec).transpose()?.map(Box::new),
            }
        }
        // x IN (a, b) is x = a OR x = b; x BETWEEN lo AND hi is lo <= x AND x <= hi
        SqlExpr::In {
            expr,
            target: ast::InTarget::List(list),
            negated,
            ..
        } => {
            if list.is_empty() {
                return Err(at_node(e, "IN () needs at least one value"));
            }
            let x = rec(expr)?;
            let mut any: Option<Expr> = None;
            for item in list {
                let eq = Expr::Binary {
                    left: Box::new(x.clone()),
                    op: BinaryOp::Eq,
                    right: Box::new(rec(item)?),
                };
                any = Some(match any {
                    None => eq,
                    Some(a) => Expr::Binary {
                        left: Box::new(a),
                        op: BinaryOp::Or,
                        right: Box::new(eq),
                    },
                });
            }
            let any = any.expect("the list is not empty");
            if *negated {
                Expr::Not(Box::new(any))
            } else {
                any
            }
        }
        SqlExpr::In { .. } => return Err(unsupported(e, "IN (subquery)")),
        SqlExpr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = rec(expr)?;
            let within = Expr::Binary {
                left: Box::new(Expr::Binary {
                    left: Box::new(rec(low)?),
                    op: BinaryOp::LtEq,
                    right: Box::new(x.clone()),
                }),
                op: BinaryOp::And,
                right: Box::new(Expr::Binary {
                    left: Box::new(x),
                    op: BinaryOp::LtEq,
                    right: Box::new(rec(high)?),
                }),
            };
            if *negated {
                Expr::Not(Box::new(within))
            } else {
                within
            }
        }
        SqlExpr::Like { .. } | SqlExpr::ILike { .. } => return Err(unsupported(e, "LIKE")),
        SqlExpr::Function(f) if f.name.to_string().eq_ignore_ascii_case("COALESCE") => {
            // the first non-null: CASE WHEN a IS NOT NULL THEN a … ELSE last END
            let ast::FunctionArguments::List(list) = &f.args else {
                return Err(at_node(e, "COALESCE(a, b, …) needs arguments"));
            };
            let mut args = Vec::with_capacity(list.args.len());
            for a in &list.args {
                match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => args.push(rec(x)?),
                    _ => return Err(at_node(e, "COALESCE takes expressions")),
                }
            }
            let Some(last) = args.pop() else {
                return Err(at_node(e, "COALESCE(a, b, …) needs arguments"));
            };
            if args.is_empty() {
                last
            } else {
                Expr::Case {
                    branches: args
                        .into_iter()
                        .map(|a| (Expr::IsNotNull(Box::new(a.clone())), a))
                        .collect(),
                    otherwise: Some(Box::new(last)),
                }
            }
        }
        SqlExpr::Function(f) => {
            return Err(at_node(
                e,
                format!(
                    "the function {}() is not supported in weir SQL yet, or not here (aggregates \
                     belong in a SELECT with GROUP BY)",
                    f.name
                ),
            ))
        }
        SqlExpr::Interval(_) => {
            return Err(at_node(
                e,
                "an INTERVAL is a window's size or a watermark's delay here, not a value",
            ))
        }
        SqlExpr::Subquery(_) | SqlExpr::Exists { .. } => {
            return Err(unsupported(e, "a subquery in an expression"))
        }
        _ => return Err(unsupported(e, "this expression")),
    })
}

fn literal(e: &SqlExpr, v: &Value) -> Result<ScalarValue, SqlError> {
    Ok(match v {
        Value::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => ScalarValue::Int64(i),
            Err(_) => ScalarValue::Float64(
                n.parse::<f64>()
                    .map_err(|_| at_node(e, format!("`{n}` is not a number")))?,
            ),
        },
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => ScalarValue::Utf8(s.clone()),
        Value::Boolean(b) => ScalarValue::Boolean(*b),
        Value::Null => ScalarValue::Null,
        other => return Err(unsupported(e, &format!("the literal {other}"))),
    })
}

/// An SQL type as weir stores it. `TIMESTAMP(3)` is epoch milliseconds in
/// an `Int64` column, weir's event-time representation.
pub(crate) fn arrow_type(
    node: &impl ast::Spanned,
    t: &ast::DataType,
) -> Result<DataType, SqlError> {
    use ast::DataType as T;
    Ok(match t {
        T::BigInt(_) | T::Int8(_) | T::Int64 => DataType::Int64,
        T::Int(_) | T::Integer(_) | T::Int32 => DataType::Int32,
        T::SmallInt(_) | T::Int16 => DataType::Int16,
        T::TinyInt(_) => DataType::Int8,
        T::Double(_) | T::DoublePrecision | T::Float64 => DataType::Float64,
        T::Float(_) | T::Real | T::Float32 => DataType::Float32,
        T::Boolean | T::Bool => DataType::Boolean,
        T::Varchar(_) | T::String(_) | T::Text | T::Char(_) | T::CharVarying(_) => DataType::Utf8,
        T::Timestamp(Some(3) | None, _) => DataType::Int64,
        other => return Err(unsupported(node, &format!("the type {other}"))),
    })
}

/// True if a column of type `have` can be read as SQL type `want`
/// (same Arrow type, or integers of any width for an integer type, or a
/// timestamp in milliseconds for `TIMESTAMP(3)`).
pub(crate) fn fits(want: &DataType, have: &DataType) -> bool {
    want == have
        || (want.is_integer() && have.is_integer())
        || (want.is_floating() && have.is_floating())
        || (*want == DataType::Int64
            && matches!(
                have,
                DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, _)
            ))
        || (*want == DataType::Utf8 && matches!(have, DataType::LargeUtf8 | DataType::Utf8View))
}

/// `INTERVAL '10' SECOND` (and MILLISECOND, MINUTE, HOUR, DAY, plurals) as
/// a duration.
pub(crate) fn interval(e: &SqlExpr) -> Result<Duration, SqlError> {
    let SqlExpr::Interval(i) = e else {
        return Err(at_node(
            e,
            "expected an INTERVAL, e.g. INTERVAL '10' SECOND",
        ));
    };
    let text = match i.value.as_ref() {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.trim().to_string(),
            _ => return Err(at_node(e, "an INTERVAL's amount is a number in quotes")),
        },
        _ => return Err(at_node(e, "an INTERVAL's amount is a number in quotes")),
    };
    let amount: f64 = text
        .parse()
        .map_err(|_| at_node(e, format!("`{text}` is not an amount of time")))?;
    let unit_ms = match &i.leading_field {
        Some(DateTimeField::Millisecond | DateTimeField::Milliseconds) => 1.0,
        Some(DateTimeField::Second | DateTimeField::Seconds) => 1e3,
        Some(DateTimeField::Minute | DateTimeField::Minutes) => 60e3,
        Some(DateTimeField::Hour | DateTimeField::Hours) => 3600e3,
        Some(DateTimeField::Day | DateTimeField::Days) => 86_400e3,
        Some(other) => return Err(unsupported(e, &format!("an INTERVAL in {other}"))),
        None => {
            return Err(at_node(
                e,
                "an INTERVAL needs a unit, e.g. INTERVAL '10' SECOND",
            ))
        }
    };
    if !(amount > 0.0 && amount.is_finite()) {
        return Err(at_node(e, "an INTERVAL must be positive"));
    }
    Ok(Duration::from_millis((amount * unit_ms).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::FlinkDialect;
    use sqlparser::parser::Parser;

    fn parse(text: &str) -> SqlExpr {
        Parser::new(&FlinkDialect)
            .try_with_sql(text)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    fn any_column(_: &SqlExpr, _: Option<&str>, name: &str) -> Result<String, SqlError> {
        Ok(name.to_string())
    }

    #[test]
    fn scalars_translate_and_the_rest_is_named() {
        let e = scalar(&parse("speed * 2 >= 100 AND NOT (v IS NULL)"), &any_column).unwrap();
        assert_eq!(
            e.to_string(),
            weir_core::expr::parse_expr("speed * 2 >= 100 and not (v is null)")
                .unwrap()
                .to_string()
        );
        let e = scalar(&parse("CAST(x AS DOUBLE)"), &any_column).unwrap();
        assert!(matches!(
            e,
            Expr::Cast {
                to: DataType::Float64,
                ..
            }
        ));
        for (text, says) in [
            ("a LIKE 'x%'", "LIKE is not supported"),
            ("a IN (SELECT 1)", "IN (subquery) is not supported"),
            ("UPPER(a)", "the function UPPER() is not supported"),
        ] {
            let err = scalar(&parse(text), &any_column).unwrap_err().to_string();
            assert!(
                err.contains(says) && err.contains("line 1, column 1"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn in_and_between_are_comparisons() {
        let same = |sql: &str, weir: &str| {
            let got = scalar(&parse(sql), &any_column).unwrap().to_string();
            let want = weir_core::expr::parse_expr(weir).unwrap().to_string();
            assert_eq!(got, want, "{sql}");
        };
        same("a IN (1, 2, 3)", "a = 1 or a = 2 or a = 3");
        same("a NOT IN (1)", "not (a = 1)");
        same("a BETWEEN 1 AND b", "1 <= a and a <= b");
        same("a NOT BETWEEN 1 AND 2", "not (1 <= a and a <= 2)");
    }

    #[test]
    fn intervals_are_durations() {
        assert_eq!(
            interval(&parse("INTERVAL '10' SECOND")).unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            interval(&parse("INTERVAL '5' MINUTES")).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            interval(&parse("INTERVAL '1.5' SECOND")).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(interval(&parse("INTERVAL '0' SECOND")).is_err());
        assert!(interval(&parse("10")).is_err());
    }
}
