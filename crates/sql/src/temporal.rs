//! Temporal table joins: `JOIN t FOR SYSTEM_TIME AS OF o.time AS r ON ...`.
//!
//! sqlparser's generic dialect has no `FOR SYSTEM_TIME AS OF`, so the
//! script's tokens are rewritten before parsing ([`mark_temporal_tables`]):
//! the clause is removed and the table's name carries it instead, as
//! `` `t FOR SYSTEM_TIME AS OF o.time` `` (with `AS t` added when the table
//! had no alias, so `t.col` still resolves). When DataFusion resolves that
//! name, the planner reads the mark back ([`TemporalReference`]) and plans
//! the table under a [`TemporalTableNode`]. An analyzer rule
//! ([`TemporalJoinConditionRule`]) then adds Flink's
//! `__TEMPORAL_JOIN_CONDITION(left_time, right_column)` to the join's
//! condition, which resolves the time column against the left input and
//! keeps it from being pruned. The streaming planner takes the marker out
//! again and turns the join into a temporal join: event time when the time
//! is the left side's rowtime, a lookup join when it is its PROCTIME().

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchemaRef, ScalarValue, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::{split_conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use sqlparser::ast::Expr as SqlExpr;
use sqlparser::keywords::{Keyword, RESERVED_FOR_TABLE_ALIAS};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Word};

use crate::error::{Position, SqlError, from_parser_error};
use crate::parser::FlinkDialect;

/// Joins a table's name and its `AS OF` time in the rewritten name.
const MARK: &str = " FOR SYSTEM_TIME AS OF ";

/// A table named as `t FOR SYSTEM_TIME AS OF <time>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporalReference {
    pub table: String,
    /// The time column of the other side: `o.order_time`.
    pub time: Column,
}

impl TemporalReference {
    /// Reads the mark [`mark_temporal_tables`] put in a table name.
    pub fn parse(name: &str) -> Option<Self> {
        let (table, time) = name.split_once(MARK)?;
        let time = match Parser::new(&FlinkDialect {})
            .try_with_sql(time)
            .and_then(|mut p| p.parse_expr())
            .ok()?
        {
            SqlExpr::Identifier(name) => Column::new_unqualified(name.value),
            SqlExpr::CompoundIdentifier(parts) => {
                let (name, qualifier) = parts.split_last()?;
                let qualifier = match qualifier {
                    [table] => TableReference::bare(table.value.clone()),
                    [schema, table] => {
                        TableReference::partial(schema.value.clone(), table.value.clone())
                    }
                    [catalog, schema, table] => TableReference::full(
                        catalog.value.clone(),
                        schema.value.clone(),
                        table.value.clone(),
                    ),
                    _ => return None,
                };
                // Bare parts keep their case: `B.p_time` is not `b.p_time`.
                Column::new(Some(qualifier), name.value.clone())
            }
            _ => return None,
        };
        Some(Self {
            table: table.to_string(),
            time,
        })
    }
}

/// Rewrites `name FOR SYSTEM_TIME AS OF <column> [[AS] alias]` into
/// `` `name FOR SYSTEM_TIME AS OF <column>` AS alias `` (see the module docs).
pub(crate) fn mark_temporal_tables(
    tokens: Vec<TokenWithSpan>,
) -> Result<Vec<TokenWithSpan>, SqlError> {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let word_at = |s: usize| match significant.get(s).map(|&t| &tokens[t].token) {
        Some(Token::Word(w)) => Some(w),
        _ => None,
    };
    let is = |s: usize, keyword: Keyword| word_at(s).is_some_and(|w| w.keyword == keyword);
    let mut out = tokens.clone();
    // Token ranges to drop and names to rewrite, applied back to front.
    let mut edits: Vec<(usize, usize, Vec<Token>)> = Vec::new();
    for s in 1..significant.len() {
        let clause = is(s, Keyword::FOR)
            && word_at(s + 1).is_some_and(|w| w.value.eq_ignore_ascii_case("SYSTEM_TIME"))
            && is(s + 2, Keyword::AS)
            && is(s + 3, Keyword::OF);
        if !clause {
            continue;
        }
        let at = Position::from(tokens[significant[s]].span.start);
        let Some(table) = word_at(s - 1) else {
            return Err(SqlError::parse(
                "FOR SYSTEM_TIME AS OF must follow a table name",
                at,
            ));
        };
        let Some(&time_start) = significant.get(s + 4) else {
            return Err(SqlError::parse(
                "expected a time column after FOR SYSTEM_TIME AS OF",
                at,
            ));
        };
        let mut parser =
            Parser::new(&FlinkDialect {}).with_tokens_with_locations(tokens[time_start..].to_vec());
        let time_position = Position::from(tokens[time_start].span.start);
        let time = parser
            .parse_expr()
            .map_err(|e| from_parser_error(e, time_position))?;
        if !matches!(
            time,
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)
        ) {
            return Err(SqlError::Plan {
                message: format!(
                    "FOR SYSTEM_TIME AS OF takes a time attribute of the left table (a rowtime or PROCTIME() column), not {time}"
                ),
                position: Some(time_position),
            });
        }
        let time_end = time_start + parser.index();
        let mut replacement = vec![Token::Word(Word {
            value: format!("{}{MARK}{time}", table.value),
            quote_style: Some('`'),
            keyword: Keyword::NoKeyword,
        })];
        let next = significant.iter().position(|&t| t >= time_end);
        let has_alias = next.and_then(word_at).is_some_and(|w| {
            w.keyword == Keyword::AS
                || w.quote_style.is_some()
                || !RESERVED_FOR_TABLE_ALIAS.contains(&w.keyword)
        });
        if !has_alias {
            replacement.push(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space));
            replacement.push(Token::make_keyword("AS"));
            replacement.push(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space));
            replacement.push(Token::Word(table.clone()));
        }
        edits.push((significant[s - 1], time_end, replacement));
    }
    for (from, to, replacement) in edits.into_iter().rev() {
        let span = out[from].span;
        out.splice(
            from..to,
            replacement
                .into_iter()
                .map(|token| TokenWithSpan { token, span }),
        );
    }
    Ok(out)
}

/// The temporal table (`FOR SYSTEM_TIME AS OF`) a join input is, through
/// aliases, projections and filters.
pub fn temporal_table(plan: &LogicalPlan) -> Option<&TemporalTableNode> {
    match plan {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<TemporalTableNode>(),
        LogicalPlan::SubqueryAlias(a) => temporal_table(&a.input),
        LogicalPlan::Projection(p) => temporal_table(&p.input),
        LogicalPlan::Filter(f) => temporal_table(&f.input),
        _ => None,
    }
}

/// The name of the marker in a temporal join's condition, as in Flink's plans.
pub const TEMPORAL_JOIN_CONDITION: &str = "__TEMPORAL_JOIN_CONDITION";

/// `__TEMPORAL_JOIN_CONDITION(left_time, right_column)`: always true. It
/// reads a column of each side so the optimizer leaves it in the join.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TemporalJoinCondition {
    signature: Signature,
}

impl ScalarUDFImpl for TemporalJoinCondition {
    fn name(&self) -> &str {
        TEMPORAL_JOIN_CONDITION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
            true;
            args.number_rows
        ]))))
    }
}

/// Adds the temporal join condition to joins whose right input is a
/// temporal table; see the module docs.
#[derive(Debug, Default)]
pub struct TemporalJoinConditionRule;

impl AnalyzerRule for TemporalJoinConditionRule {
    fn name(&self) -> &str {
        "temporal_join_condition"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let LogicalPlan::Join(mut join) = plan else {
                return Ok(Transformed::no(plan));
            };
            let Some(temporal) = temporal_table(&join.right) else {
                return Ok(Transformed::no(LogicalPlan::Join(join)));
            };
            if join
                .filter
                .as_ref()
                .is_some_and(|f| temporal_condition(f).is_some())
            {
                return Ok(Transformed::no(LogicalPlan::Join(join)));
            }
            let (qualifier, field) = join
                .left
                .schema()
                .qualified_field_from_column(&temporal.time)
                .map_err(|_| {
                    DataFusionError::Plan(format!(
                        "FOR SYSTEM_TIME AS OF {}: not a column of the left side of the join",
                        temporal.time
                    ))
                })?;
            let time = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            // The versioned table's rowtime, which must not be pruned either.
            let right_schema = Arc::clone(join.right.schema());
            let (qualifier, field) = right_schema
                .iter()
                .find(|(_, f)| crate::window_tvf::is_rowtime(f))
                .unwrap_or_else(|| right_schema.qualified_field(0));
            let right = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            // Conditions on the versioned table alone apply to the version
            // found, not to which version is current: carried inside the
            // marker, the optimizer cannot push them below the join.
            let mut args = vec![time, right];
            let mut kept = Vec::new();
            for conjunct in join
                .filter
                .take()
                .map(split_conjunction_owned)
                .unwrap_or_default()
            {
                let columns = conjunct.column_refs();
                if !columns.is_empty() && columns.iter().all(|c| right_schema.has_column(c)) {
                    args.push(conjunct);
                } else {
                    kept.push(conjunct);
                }
            }
            let udf = ScalarUDF::new_from_impl(TemporalJoinCondition {
                signature: Signature::variadic_any(Volatility::Volatile),
            });
            kept.push(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(udf),
                args,
            )));
            join.filter = kept.into_iter().reduce(Expr::and);
            Ok(Transformed::yes(LogicalPlan::Join(join)))
        })
        .map(|t| t.data)
    }
}

/// Whether `expr` is a temporal join's marker.
pub fn is_temporal_marker(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.name() == TEMPORAL_JOIN_CONDITION)
}

/// A temporal join's condition taken apart.
#[derive(Debug, Clone)]
pub struct TemporalCondition {
    /// The left time column the join is as of.
    pub time: Expr,
    /// The right rowtime (or, without one, some right column).
    pub right_time: Expr,
    /// The rest of the join condition, if any.
    pub residual: Option<Expr>,
}

/// Takes a join condition with a temporal marker apart.
pub fn temporal_condition(filter: &Expr) -> Option<TemporalCondition> {
    let mut marker = None;
    let mut rest = Vec::new();
    for conjunct in split_conjunction(filter) {
        match conjunct {
            Expr::ScalarFunction(f) if is_temporal_marker(conjunct) => marker = Some(f),
            Expr::Literal(ScalarValue::Boolean(Some(true)), _) => {}
            other => rest.push(other.clone()),
        }
    }
    let marker = marker?;
    let (time, right_time) = (marker.args.first()?.clone(), marker.args.get(1)?.clone());
    rest.extend(marker.args.iter().skip(2).cloned());
    Some(TemporalCondition {
        time,
        right_time,
        residual: rest.into_iter().reduce(Expr::and),
    })
}

/// A table joined `FOR SYSTEM_TIME AS OF time`; passes its rows through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemporalTableNode {
    pub input: LogicalPlan,
    pub table: String,
    /// The left side's time column the join is as of.
    pub time: Column,
    /// The table's declared primary key (empty for views).
    pub primary_key: Vec<String>,
}

impl PartialOrd for TemporalTableNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.table.partial_cmp(&other.table) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            o => o,
        }
    }
}

impl UserDefinedLogicalNodeCore for TemporalTableNode {
    fn name(&self) -> &str {
        "TemporalTable"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    /// Filters stay above: a version filtered away would let an older one
    /// look current.
    fn prevent_predicate_push_down_columns(&self) -> std::collections::HashSet<String> {
        self.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TemporalTable: {}{MARK}{}", self.table, self.time)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DFResult<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("TemporalTable takes one input".into()))?;
        Ok(Self {
            input,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let tokens = Tokenizer::new(&FlinkDialect {}, sql)
            .tokenize_with_location()
            .expect("tokens");
        mark_temporal_tables(tokens)
            .expect("rewrite")
            .into_iter()
            .map(|t| t.token.to_string())
            .collect()
    }

    #[test]
    fn the_clause_moves_into_the_table_name() {
        assert_eq!(
            rewritten("SELECT * FROM o JOIN r FOR SYSTEM_TIME AS OF o.ts AS x ON o.k = x.k"),
            "SELECT * FROM o JOIN `r FOR SYSTEM_TIME AS OF o.ts` AS x ON o.k = x.k"
        );
        assert_eq!(
            rewritten("SELECT * FROM o LEFT JOIN r FOR SYSTEM_TIME AS OF o.pt ON o.k = r.k"),
            "SELECT * FROM o LEFT JOIN `r FOR SYSTEM_TIME AS OF o.pt` AS r ON o.k = r.k"
        );
        assert_eq!(
            rewritten("SELECT * FROM o, db.r FOR SYSTEM_TIME AS OF ts r2 WHERE true"),
            "SELECT * FROM o, db.`r FOR SYSTEM_TIME AS OF ts` r2 WHERE true"
        );
        let marked = TemporalReference::parse("r FOR SYSTEM_TIME AS OF o.ts").expect("marked");
        assert_eq!(marked.table, "r");
        assert_eq!(marked.time, Column::new(Some("o"), "ts"));
    }

    #[test]
    fn the_time_must_be_a_column() {
        let tokens = Tokenizer::new(
            &FlinkDialect {},
            "SELECT * FROM o JOIN r FOR SYSTEM_TIME AS OF NOW() ON true",
        )
        .tokenize_with_location()
        .expect("tokens");
        let e = mark_temporal_tables(tokens).expect_err("not a column");
        assert!(e.to_string().contains("time attribute"), "{e}");
    }
}
