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
use weir_functions::FunctionRegistry;

/// Resolves `qualifier.name` (or `name`) at a node to a stream column.
pub(crate) type Resolve<'a> = dyn Fn(&SqlExpr, Option<&str>, &str) -> Result<String, SqlError> + 'a;

/// Functions that would make a run's answer depend on when or how often it
/// runs, so pipelined, batch and replayed output could differ.
const NON_DETERMINISTIC: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "current_row_timestamp",
    "proctime",
    "rand",
    "rand_integer",
    "uuid",
];

/// Aggregate functions: valid only in a grouped SELECT.
const AGGREGATES: &[&str] = &["count", "sum", "avg", "min", "max"];

/// Translates a scalar expression. `column` resolves a (possibly
/// qualified) column name, refusing unknown ones; `functions` resolves
/// function names.
pub(crate) fn scalar(
    e: &SqlExpr,
    column: &Resolve<'_>,
    functions: &FunctionRegistry,
) -> Result<Expr, SqlError> {
    let rec = |x: &SqlExpr| scalar(x, column, functions);
    let call = |name: &str, args: Vec<Expr>| -> Result<Expr, SqlError> {
        let f = functions
            .get(name)
            .expect("the SQL forms map onto built-ins that exist");
        Ok(Expr::call(f.clone(), args))
    };
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
            // `-5` is a negative literal, as the printed form writes one
            UnaryOperator::Minus => match expr.as_ref() {
                SqlExpr::Value(v) if matches!(v.value, Value::Number(..)) => {
                    let Value::Number(n, _) = &v.value else {
                        unreachable!("matched a number")
                    };
                    Expr::Literal(number(e, &format!("-{n}"))?)
                }
                _ => Expr::Negative(Box::new(rec(expr)?)),
            },
            UnaryOperator::Plus => rec(expr)?,
            other => return Err(unsupported(e, &format!("the operator {other}"))),
        },
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::StringConcat,
            right,
        } => call("concat", vec![rec(left)?, rec(right)?])?,
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
        } => match data_type {
            // TIMESTAMP(3) is milliseconds in an Int64: read text and
            // timestamps as instants first, then take their milliseconds
            ast::DataType::Timestamp(..) => Expr::Cast {
                expr: Box::new(Expr::Cast {
                    expr: Box::new(rec(expr)?),
                    to: DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
                }),
                to: arrow_type(e, data_type)?,
            },
            _ => Expr::Cast {
                expr: Box::new(rec(expr)?),
                to: arrow_type(e, data_type)?,
            },
        },
        SqlExpr::TypedString(t) if matches!(t.data_type, ast::DataType::Timestamp(..)) => {
            let text = match &t.value.value {
                Value::SingleQuotedString(s) => s,
                _ => return Err(at_node(e, "TIMESTAMP takes a quoted string")),
            };
            Expr::Literal(ScalarValue::Int64(timestamp_literal(text).ok_or_else(
                || {
                    at_node(
                        e,
                        format!(
                            "TIMESTAMP '{text}' is not a time; write 'yyyy-MM-dd HH:mm:ss[.SSS]'"
                        ),
                    )
                },
            )?))
        }
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
        SqlExpr::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        }
        | SqlExpr::ILike {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        } => Expr::Like {
            expr: Box::new(rec(expr)?),
            pattern: Box::new(rec(pattern)?),
            negated: *negated,
            case_insensitive: matches!(e, SqlExpr::ILike { .. }),
        },
        SqlExpr::Like { .. } | SqlExpr::ILike { .. } => {
            return Err(unsupported(e, "LIKE ANY or LIKE … ESCAPE (`\\` escapes)"))
        }
        SqlExpr::Function(f) => function(e, f, &rec, functions)?,
        SqlExpr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![rec(expr)?];
            args.push(match substring_from {
                Some(x) => rec(x)?,
                None => Expr::Literal(ScalarValue::Int64(1)),
            });
            if let Some(x) = substring_for {
                args.push(rec(x)?);
            }
            call("substring", args)?
        }
        SqlExpr::Trim {
            trim_where,
            trim_what,
            expr,
            trim_characters: None,
        } => {
            let name = match trim_where {
                Some(ast::TrimWhereField::Leading) => "ltrim",
                Some(ast::TrimWhereField::Trailing) => "rtrim",
                Some(ast::TrimWhereField::Both) | None => "trim",
            };
            let mut args = vec![rec(expr)?];
            if let Some(w) = trim_what {
                args.push(rec(w)?);
            }
            call(name, args)?
        }
        SqlExpr::Position { expr, r#in } => call("position", vec![rec(expr)?, rec(r#in)?])?,
        SqlExpr::Extract { field, expr, .. } => {
            let part = match field {
                DateTimeField::Year | DateTimeField::Years => "year",
                DateTimeField::Quarter => "quarter",
                DateTimeField::Month | DateTimeField::Months => "month",
                DateTimeField::Week(_) | DateTimeField::Weeks => "week",
                DateTimeField::Day | DateTimeField::Days => "dayofmonth",
                DateTimeField::DayOfWeek | DateTimeField::Dow => "dayofweek",
                DateTimeField::DayOfYear | DateTimeField::Doy => "dayofyear",
                DateTimeField::Hour | DateTimeField::Hours => "hour",
                DateTimeField::Minute | DateTimeField::Minutes => "minute",
                DateTimeField::Second | DateTimeField::Seconds => "second",
                DateTimeField::Millisecond | DateTimeField::Milliseconds => "millisecond",
                other => return Err(unsupported(e, &format!("EXTRACT({other} FROM …)"))),
            };
            call(part, vec![rec(expr)?])?
        }
        SqlExpr::Floor { expr, field } | SqlExpr::Ceil { expr, field } => {
            let floor = matches!(e, SqlExpr::Floor { .. });
            match field {
                ast::CeilFloorKind::DateTimeField(DateTimeField::NoDateTime) => {
                    call(if floor { "floor" } else { "ceil" }, vec![rec(expr)?])?
                }
                ast::CeilFloorKind::DateTimeField(unit) if floor => {
                    let unit = match unit {
                        DateTimeField::Millisecond | DateTimeField::Milliseconds => "millisecond",
                        DateTimeField::Second | DateTimeField::Seconds => "second",
                        DateTimeField::Minute | DateTimeField::Minutes => "minute",
                        DateTimeField::Hour | DateTimeField::Hours => "hour",
                        DateTimeField::Day | DateTimeField::Days => "day",
                        DateTimeField::Week(_) | DateTimeField::Weeks => "week",
                        DateTimeField::Month | DateTimeField::Months => "month",
                        DateTimeField::Quarter => "quarter",
                        DateTimeField::Year | DateTimeField::Years => "year",
                        other => return Err(unsupported(e, &format!("FLOOR(… TO {other})"))),
                    };
                    call("date_trunc", vec![Expr::Literal(unit.into()), rec(expr)?])?
                }
                ast::CeilFloorKind::DateTimeField(_) => {
                    return Err(unsupported(e, "CEIL(… TO unit) (FLOOR(… TO unit) is)"))
                }
                ast::CeilFloorKind::Scale(_) => {
                    return Err(unsupported(e, "FLOOR/CEIL with a scale (use ROUND(x, d))"))
                }
            }
        }
        // a duration as a value is its milliseconds, so `ts - INTERVAL '5'
        // MINUTE` is arithmetic on TIMESTAMP(3)
        SqlExpr::Interval(_) => {
            let d = interval(e)?;
            Expr::Literal(ScalarValue::Int64(
                i64::try_from(d.as_millis()).map_err(|_| at_node(e, "the INTERVAL is too long"))?,
            ))
        }
        SqlExpr::Subquery(_) | SqlExpr::Exists { .. } => {
            return Err(unsupported(e, "a subquery in an expression"))
        }
        _ => return Err(unsupported(e, "this expression")),
    })
}

/// A function call: the forms SQL defines by name (`COALESCE`, `NULLIF`,
/// `IF`, `MOD`), then the registry (built-ins and UDFs); aggregates and
/// non-deterministic functions are refused with the reason.
fn function(
    e: &SqlExpr,
    f: &ast::Function,
    rec: &dyn Fn(&SqlExpr) -> Result<Expr, SqlError>,
    functions: &FunctionRegistry,
) -> Result<Expr, SqlError> {
    let name = f.name.to_string().to_ascii_lowercase();
    if AGGREGATES.contains(&name.as_str()) || functions.aggregate(&name).is_some() {
        return Err(at_node(
            e,
            format!(
                "the aggregate {}() belongs in a SELECT with GROUP BY (or a window), not here",
                f.name
            ),
        ));
    }
    const GROUP_WINDOWS: &[&str] = &[
        "tumble",
        "hop",
        "session",
        "tumble_start",
        "tumble_end",
        "tumble_rowtime",
        "hop_start",
        "hop_end",
        "hop_rowtime",
        "session_start",
        "session_end",
        "session_rowtime",
    ];
    if GROUP_WINDOWS.contains(&name.as_str()) {
        return Err(at_node(
            e,
            format!(
                "{}() belongs in GROUP BY (TUMBLE, HOP, SESSION: a group window) or in the \
                 select list of a query grouped by that window (its _START, _END, _ROWTIME)",
                f.name
            ),
        ));
    }
    if NON_DETERMINISTIC.contains(&name.as_str()) {
        return Err(at_node(
            e,
            format!(
                "{}() depends on when the job runs, so pipelined, batch and replayed runs would \
                 disagree; use the event-time column",
                f.name
            ),
        ));
    }
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return Err(unsupported(
            e,
            &format!("{}() with OVER, FILTER or WITHIN GROUP here", f.name),
        ));
    }
    let list = match &f.args {
        ast::FunctionArguments::List(list) => {
            if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                return Err(unsupported(
                    e,
                    &format!("DISTINCT or clauses in {}()", f.name),
                ));
            }
            list.args.as_slice()
        }
        ast::FunctionArguments::None => &[],
        ast::FunctionArguments::Subquery(_) => {
            return Err(unsupported(e, "a subquery as a function argument"))
        }
    };
    let mut args = Vec::with_capacity(list.len());
    for a in list {
        match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => args.push(rec(x)?),
            _ => {
                return Err(at_node(
                    e,
                    format!("{}() takes expressions, not `*` or named arguments", f.name),
                ))
            }
        }
    }
    let arity = |n: usize| -> Result<(), SqlError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(at_node(
                e,
                format!("{}() takes {n} arguments, not {}", f.name, args.len()),
            ))
        }
    };
    Ok(match name.as_str() {
        "coalesce" => {
            // the first non-null: CASE WHEN a IS NOT NULL THEN a … ELSE last END
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
        "nullif" => {
            arity(2)?;
            let (a, b) = (args[0].clone(), args[1].clone());
            Expr::Case {
                branches: vec![(a.clone().eq(b), Expr::Literal(ScalarValue::Null))],
                otherwise: Some(Box::new(a)),
            }
        }
        "if" => {
            arity(3)?;
            let mut it = args.into_iter();
            let (c, a, b) = (
                it.next().expect("arity 3"),
                it.next().expect("arity 3"),
                it.next().expect("arity 3"),
            );
            Expr::Case {
                branches: vec![(c, a)],
                otherwise: Some(Box::new(b)),
            }
        }
        "mod" => {
            arity(2)?;
            let b = args.pop().expect("arity 2");
            args.pop().expect("arity 2").modulo(b)
        }
        _ => match functions.get(&name) {
            Some(func) => Expr::call(func.clone(), args),
            None => {
                let hint = crate::query::closest(&name, functions.names())
                    .map(|c| format!(" (did you mean {c}()?)"))
                    .unwrap_or_default();
                return Err(at_node(
                    e,
                    format!(
                        "unknown function {}(){hint}; the functions weir knows are listed in the \
                         README's SQL reference",
                        f.name
                    ),
                ));
            }
        },
    })
}

/// `TIMESTAMP '2024-01-31 12:00:00[.123]'` as epoch milliseconds (UTC).
fn timestamp_literal(text: &str) -> Option<i64> {
    let rows = arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None);
    let a: std::sync::Arc<dyn arrow_array::Array> =
        std::sync::Arc::new(arrow_array::StringArray::from(vec![text]));
    let t = arrow_cast::cast(&a, &rows).ok()?;
    let t = arrow_cast::cast(&t, &DataType::Int64).ok()?;
    let t = t.as_any().downcast_ref::<arrow_array::Int64Array>()?;
    (!arrow_array::Array::is_null(t, 0)).then(|| t.value(0))
}

fn literal(e: &SqlExpr, v: &Value) -> Result<ScalarValue, SqlError> {
    Ok(match v {
        Value::Number(n, _) => number(e, n)?,
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => ScalarValue::Utf8(s.clone()),
        Value::Boolean(b) => ScalarValue::Boolean(*b),
        Value::Null => ScalarValue::Null,
        other => return Err(unsupported(e, &format!("the literal {other}"))),
    })
}

/// A number literal: `Int64` if it is an integer that fits, else
/// `Float64`.
fn number(e: &SqlExpr, n: &str) -> Result<ScalarValue, SqlError> {
    if !n.contains(['.', 'e', 'E']) {
        return n.parse::<i64>().map(ScalarValue::Int64).map_err(|_| {
            at_node(
                e,
                format!("`{n}` does not fit in a 64-bit integer (BIGINT)"),
            )
        });
    }
    n.parse::<f64>()
        .map(ScalarValue::Float64)
        .map_err(|_| at_node(e, format!("`{n}` is not a number")))
}

/// An SQL type as weir stores it. `TIMESTAMP(3)` is epoch milliseconds in
/// an `Int64` column, weir's event-time representation.
pub(crate) fn arrow_type(
    node: &impl ast::Spanned,
    t: &ast::DataType,
) -> Result<DataType, SqlError> {
    use ast::DataType as T;
    Ok(match t {
        T::BigInt(_) | T::Int64 => DataType::Int64,
        T::Int(_) | T::Integer(_) | T::Int32 => DataType::Int32,
        T::SmallInt(_) | T::Int16 => DataType::Int16,
        // Arrow's naming, as int16 … int64: eight bits (not Postgres' bigint)
        T::TinyInt(_) | T::Int8(_) => DataType::Int8,
        T::UInt8 => DataType::UInt8,
        T::UInt16 => DataType::UInt16,
        T::UInt32 => DataType::UInt32,
        T::UInt64 => DataType::UInt64,
        T::Date32 => DataType::Date32,
        T::Binary(None) | T::Bytea | T::Varbinary(None) => DataType::Binary,
        T::Double(_) | T::DoublePrecision | T::Float64 => DataType::Float64,
        T::Float(_) | T::Real | T::Float32 => DataType::Float32,
        T::Boolean | T::Bool => DataType::Boolean,
        T::Varchar(_) | T::String(_) | T::Text | T::Char(_) | T::CharVarying(_) => DataType::Utf8,
        T::Timestamp(Some(3) | None, _) => DataType::Int64,
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => {
            let (p, s) = match info {
                ast::ExactNumberInfo::None => (10, 0),
                ast::ExactNumberInfo::Precision(p) => (*p, 0),
                ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s as u64),
            };
            if !(1..=38).contains(&p) || s > p {
                return Err(at_node(
                    node,
                    format!("DECIMAL({p}, {s}): precision 1 to 38, scale at most the precision"),
                ));
            }
            DataType::Decimal128(p as u8, s as i8)
        }
        T::Custom(name, modifiers) if modifiers.is_empty() => {
            match weir_core::expr::type_from_name(&name.to_string()) {
                Some(t) => t,
                None => {
                    return Err(at_node(
                        node,
                        format!(
                            "unknown type {name}; SQL's types or one of {}",
                            weir_core::expr::type_names()
                        ),
                    ))
                }
            }
        }
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
        let e = scalar(
            &parse("speed * 2 >= 100 AND NOT (v IS NULL)"),
            &any_column,
            &FunctionRegistry::builtin(),
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            crate::parse_expr("speed * 2 >= 100 and not (v is null)")
                .unwrap()
                .to_string()
        );
        let e = scalar(
            &parse("CAST(x AS DOUBLE)"),
            &any_column,
            &FunctionRegistry::builtin(),
        )
        .unwrap();
        assert!(matches!(
            e,
            Expr::Cast {
                to: DataType::Float64,
                ..
            }
        ));
        for (text, says) in [
            ("a IN (SELECT 1)", "IN (subquery) is not supported"),
            ("UPPR(a)", "unknown function UPPR() (did you mean upper()?)"),
            ("a SIMILAR TO 'x'", "this expression is not supported"),
        ] {
            let err = scalar(&parse(text), &any_column, &FunctionRegistry::builtin())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(says) && err.contains("line 1, column 1"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn in_and_between_are_comparisons() {
        let same = |sql: &str, weir: &str| {
            let got = scalar(&parse(sql), &any_column, &FunctionRegistry::builtin())
                .unwrap()
                .to_string();
            let want = crate::parse_expr(weir).unwrap().to_string();
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
