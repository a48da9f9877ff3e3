//! Rewrites Flink-only syntax in a parsed statement into forms DataFusion plans directly.
//!
//! | Flink | becomes |
//! |---|---|
//! | `MOD(a, b)` | `(a % b)` |
//! | `IF(c, a, b)` | `CASE WHEN c THEN a ELSE b END` |
//! | `CEILING(x)` | `ceil(x)` |
//! | `LOG(x)` (one argument) | `ln(x)` |
//! | `EXTRACT(unit FROM t)` for YEAR, QUARTER, MONTH, WEEK, DAY, DOY, DOW, HOUR, MINUTE, SECOND | `year(t)` ... `second(t)` (UDFs in `datetime.rs`) |
//! | `EXTRACT(MILLISECOND FROM t)`, also `MICROSECOND`, `NANOSECOND` | `(CAST(date_part('millisecond', t) AS BIGINT) % 1000)` |
//! | `EXTRACT(EPOCH FROM t)` | `CAST(date_part('epoch', t) AS BIGINT)` |
//! | `SUBSTRING(s FROM i [FOR n])`, `SUBSTRING(s, i [, n])` | `substring(s, i [, n])` (UDF in `string.rs`) |
//! | `CAST(x AS BYTES)`, also `BINARY(n)`, `VARBINARY(n)` | `CAST(x AS BYTEA)` |
//!
//! Names match case-insensitively. The result never contains what the rewrite looks for,
//! so rewriting a statement twice changes nothing the second time.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, DataType as SqlType, DateTimeField, Expr, Function,
    FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    Value, VisitMut, helpers::attached_token::AttachedToken, visit_expressions_mut,
};

use crate::FunctionError;
use crate::datetime::Field;

/// Rewrites Flink-only syntax in a parsed statement (or expression) in place, before DataFusion plans it.
///
/// Call it on every statement after parsing and before `SessionState::statement_to_plan`.
/// Fails only when a Flink call it rewrites has the wrong arguments, e.g. `IF(a, b)`.
pub fn rewrite_flink_syntax<N: VisitMut>(node: &mut N) -> Result<(), FunctionError> {
    let flow = visit_expressions_mut(node, |expr| match rewrite(expr) {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => ControlFlow::Break(error),
    });
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

/// Rewrites one expression; the visitor has already rewritten its children.
fn rewrite(expr: &mut Expr) -> Result<(), FunctionError> {
    let replacement = match expr {
        Expr::Function(function) => rewrite_function(function)?,
        Expr::Substring {
            expr: text,
            substring_from,
            substring_for,
            ..
        } => {
            let start = substring_from
                .take()
                .map_or_else(|| Expr::value(Value::Number("1".to_owned(), false)), |e| *e);
            let mut args = vec![take(text), start];
            args.extend(substring_for.take().map(|length| *length));
            Some(call("substring", args))
        }
        Expr::Extract {
            field, expr: value, ..
        } => match (flink_field(field), corrected_date_part(field)) {
            (Some(field), _) => Some(call(field.function_name(), vec![take(value)])),
            (None, Some(part)) => Some(part.call(take(value))),
            (None, None) => None,
        },
        Expr::Cast { data_type, .. } => {
            // Flink's BYTES, BINARY(n) and VARBINARY(n) are DataFusion's BYTEA.
            if matches!(
                data_type,
                SqlType::Bytes(_) | SqlType::Binary(_) | SqlType::Varbinary(_)
            ) {
                *data_type = SqlType::Bytea;
            }
            None
        }
        _ => None,
    };
    if let Some(replacement) = replacement {
        *expr = replacement;
    }
    Ok(())
}

fn rewrite_function(function: &mut Function) -> Result<Option<Expr>, FunctionError> {
    let [part] = function.name.0.as_slice() else {
        return Ok(None);
    };
    let Some(name) = part.as_ident() else {
        return Ok(None);
    };
    match name.value.to_ascii_lowercase().as_str() {
        "mod" => {
            let [left, right] = plain_args(function, "MOD", "(numeric, numeric)")?;
            Ok(Some(Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::Modulo,
                right: Box::new(right),
            }))))
        }
        "if" => {
            let expected = "(condition, true_value, false_value)";
            let [condition, then, otherwise] = plain_args(function, "IF", expected)?;
            Ok(Some(Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![CaseWhen {
                    condition,
                    result: then,
                }],
                else_result: Some(Box::new(otherwise)),
            }))
        }
        "ceiling" => {
            function.name = ObjectName::from(vec![Ident::new("ceil")]);
            Ok(None)
        }
        "log" if argument_count(function) == 1 => {
            function.name = ObjectName::from(vec![Ident::new("ln")]);
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn argument_count(function: &Function) -> usize {
    match &function.args {
        FunctionArguments::List(list) => list.args.len(),
        FunctionArguments::None | FunctionArguments::Subquery(_) => 0,
    }
}

/// The `N` positional arguments of a plain call, or an error naming what was wrong.
fn plain_args<const N: usize>(
    function: &mut Function,
    name: &'static str,
    expected: &'static str,
) -> Result<[Expr; N], FunctionError> {
    let wrong = |found: String| FunctionError::WrongArguments {
        function: name,
        expected,
        found,
    };
    let plain =
        function.over.is_none() && function.filter.is_none() && function.within_group.is_empty();
    let FunctionArguments::List(list) = &mut function.args else {
        return Err(wrong("no argument list".to_owned()));
    };
    if !plain || list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(wrong(format!(
            "clauses a scalar function cannot take: {function}"
        )));
    }
    let count = list.args.len();
    let args = std::mem::take(&mut list.args)
        .into_iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
            other => Err(wrong(format!("the argument {other}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    args.try_into()
        .map_err(|_| wrong(format!("{count} argument(s)")))
}

/// The Flink field function an `EXTRACT` unit maps to; `None` leaves it to DataFusion.
fn flink_field(field: &DateTimeField) -> Option<Field> {
    Some(match field {
        DateTimeField::Year | DateTimeField::Years => Field::Year,
        DateTimeField::Quarter => Field::Quarter,
        DateTimeField::Month | DateTimeField::Months => Field::Month,
        DateTimeField::Week(None) | DateTimeField::Weeks => Field::Week,
        DateTimeField::Day | DateTimeField::Days => Field::DayOfMonth,
        DateTimeField::DayOfYear | DateTimeField::Doy => Field::DayOfYear,
        DateTimeField::DayOfWeek | DateTimeField::Dow => Field::DayOfWeek,
        DateTimeField::Hour | DateTimeField::Hours => Field::Hour,
        DateTimeField::Minute | DateTimeField::Minutes => Field::Minute,
        DateTimeField::Second | DateTimeField::Seconds => Field::Second,
        _ => return None,
    })
}

/// An `EXTRACT` unit that DataFusion's `date_part` reads differently from Flink: Flink counts
/// milli-, micro- and nanoseconds within the second, and returns whole epoch seconds.
struct CorrectedDatePart {
    unit: &'static str,
    per_second: Option<i64>,
}

impl CorrectedDatePart {
    /// `CAST(date_part(unit, value) AS BIGINT)`, modulo one second where Flink wants that.
    fn call(&self, value: Expr) -> Expr {
        let unit = Expr::value(Value::SingleQuotedString(self.unit.to_owned()));
        let part = Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(call("date_part", vec![unit, value])),
            data_type: SqlType::BigInt(None),
            array: false,
            format: None,
        };
        match self.per_second {
            Some(per_second) => Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(part),
                op: BinaryOperator::Modulo,
                right: Box::new(Expr::value(Value::Number(per_second.to_string(), false))),
            })),
            None => part,
        }
    }
}

fn corrected_date_part(field: &DateTimeField) -> Option<CorrectedDatePart> {
    let (unit, per_second) = match field {
        DateTimeField::Millisecond | DateTimeField::Milliseconds => ("millisecond", 1_000),
        DateTimeField::Microsecond | DateTimeField::Microseconds => ("microsecond", 1_000_000),
        DateTimeField::Nanosecond | DateTimeField::Nanoseconds => ("nanosecond", 1_000_000_000),
        DateTimeField::Epoch => {
            return Some(CorrectedDatePart {
                unit: "epoch",
                per_second: None,
            });
        }
        _ => return None,
    };
    Some(CorrectedDatePart {
        unit,
        per_second: Some(per_second),
    })
}

fn take(expr: &mut Expr) -> Expr {
    std::mem::replace(expr, Expr::value(Value::Null))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::Statement;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use super::rewrite_flink_syntax;
    use crate::FunctionError;
    use crate::test_support::{error, row, rows};

    fn parse(sql: &str) -> Statement {
        match Parser::parse_sql(&GenericDialect {}, sql).map(|mut s| s.pop()) {
            Ok(Some(statement)) => statement,
            other => panic!("cannot parse {sql}: {other:?}"),
        }
    }

    fn rewritten(sql: &str) -> String {
        let mut statement = parse(sql);
        match rewrite_flink_syntax(&mut statement) {
            Ok(()) => statement.to_string(),
            Err(error) => panic!("{sql}: {error}"),
        }
    }

    #[test]
    fn rewrites_flink_calls_anywhere_in_a_statement() {
        assert_eq!(
            rewritten(
                "SELECT Mod(a, 3), IF(a > 1, 'x', 'y'), CEILING(b), log(b), LOG(2, b), \
                 EXTRACT(DOW FROM ts), EXTRACT(EPOCH FROM ts), SUBSTRING(s FROM 2 FOR 3), \
                 SUBSTRING(s, 2), CAST(s AS BYTES), CAST(s AS VARBINARY(3)) \
                 FROM t WHERE mod(a, 2) = 0 AND a IN (SELECT IF(c, 1, 2) FROM u)"
            ),
            "SELECT (a % 3), CASE WHEN a > 1 THEN 'x' ELSE 'y' END, ceil(b), ln(b), LOG(2, b), \
             dayofweek(ts), CAST(date_part('epoch', ts) AS BIGINT), substring(s, 2, 3), substring(s, 2), \
             CAST(s AS BYTEA), CAST(s AS BYTEA) FROM t \
             WHERE (a % 2) = 0 AND a IN (SELECT CASE WHEN c THEN 1 ELSE 2 END FROM u)"
        );
    }

    #[test]
    fn rewriting_twice_changes_nothing_more() {
        let sql = "SELECT MOD(MOD(a, 7), IF(b, 2, 3)), EXTRACT(DOW FROM ts), SUBSTRING(s FROM 2)";
        let once = rewritten(sql);
        assert_eq!(rewritten(&once), once);
    }

    #[test]
    fn wrong_arguments_are_reported() {
        let mut statement = parse("SELECT IF(a, 1) FROM t");
        match rewrite_flink_syntax(&mut statement) {
            Err(error @ FunctionError::WrongArguments { .. }) => assert_eq!(
                error.to_string(),
                "IF expects (condition, true_value, false_value), but was called with 2 argument(s)"
            ),
            other => panic!("IF(a, 1) should be refused, got {other:?}"),
        }
        let mut statement = parse("SELECT MOD(DISTINCT a, 2) FROM t");
        assert!(rewrite_flink_syntax(&mut statement).is_err());
    }

    #[tokio::test]
    async fn rewritten_calls_have_flink_results() {
        assert_eq!(
            row(
                "SELECT MOD(7, 3), mod(-7, 3), Mod(7, -3), MOD(MOD(17, 10), 4), MOD(NULL, 2), \
                 IF(5 > 3, 5, 3), IF(NULL, 'yes', 'no'), IF(1 < 2, IF(2 < 1, 'a', 'b'), 'c'), \
                 CEILING(1.5), ROUND(LOG(100), 4), LOG(10, 100)"
            )
            .await,
            [
                "1", "-1", "1", "3", "NULL", "5", "no", "b", "2.0", "4.6052", "2.0"
            ]
        );
    }

    #[tokio::test]
    async fn rewrites_reach_where_and_group_by() {
        let sql = "SELECT MOD(a, 2) AS parity, COUNT(*) FROM \
                   (VALUES (1), (2), (3), (5)) AS t(a) WHERE IF(a > 1, TRUE, FALSE) \
                   GROUP BY MOD(a, 2) ORDER BY parity";
        assert_eq!(rows(sql).await, [["0", "1"], ["1", "2"]]);
    }

    #[tokio::test]
    async fn function_names_are_case_insensitive_with_normalization_off() {
        assert_eq!(
            row("SELECT UpPeR('a'), upper('b'), Split_Index('a,b', ',', 1), CONCAT('x', 'y')")
                .await,
            ["A", "B", "b", "xy"]
        );
        // Quoted names are looked up as written, as DataFusion does for all identifiers.
        let error = error("SELECT \"UPPER\"('a')").await;
        assert!(error.contains("UPPER"), "{error}");
    }

    #[tokio::test]
    async fn datafusion_math_matches_flink() {
        assert_eq!(
            row(
                "SELECT ABS(-2), POWER(2, 3), SQRT(4), LN(1), LOG10(100), ROUND(1.25, 1), \
                 ROUND(-2.5), FLOOR(1.5), CEIL(1.5), RAND() < 1, CHAR_LENGTH(UUID()), \
                 COALESCE(NULL, 'd'), TRY_CAST('x' AS INT), CAST('42' AS INT)"
            )
            .await,
            [
                "2", "8.0", "2.0", "0.0", "2.0", "1.3", "-3.0", "1.0", "2.0", "true", "36", "d",
                "NULL", "42"
            ]
        );
    }
}
