//! Flink's names for unnamed select items: `SELECT UPPER(name) FROM t` has a
//! column `EXPR$0`, named after its position, as Calcite names it.
//!
//! DataFusion would name such a column after its expression (and a CAST
//! after its operand, so `SELECT a, CAST(a AS STRING)` would have two
//! columns `a` and fail to plan); naming them as Flink does keeps result
//! headers and duplicate checks the same as Flink's.

use sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, TableFactor, TableWithJoins};

/// Names every unnamed, non-column select item of `query` and its subqueries.
pub fn name_expressions(query: &mut Query) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            name_expressions(&mut cte.query);
        }
    }
    name_set_expr(&mut query.body);
}

fn name_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for (index, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(expr) = item
                    && !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new(format!("EXPR${index}")),
                    };
                }
            }
            for table in &mut select.from {
                name_tables(table);
            }
        }
        SetExpr::Query(query) => name_expressions(query),
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left);
            name_set_expr(right);
        }
        _ => {}
    }
}

fn name_tables(table: &mut TableWithJoins) {
    name_factor(&mut table.relation);
    for join in &mut table.joins {
        name_factor(&mut join.relation);
    }
}

fn name_factor(factor: &mut TableFactor) {
    match factor {
        TableFactor::Derived { subquery, .. } => name_expressions(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => name_tables(table_with_joins),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{FlinkStatement, parse_script};

    #[test]
    fn unnamed_expressions_get_positional_names() {
        let mut parsed =
            parse_script("SELECT a, UPPER(b), c AS d, CAST(a AS INT) FROM (SELECT 1 + 1 FROM t)")
                .expect("parses");
        let FlinkStatement::Query(mut query) = parsed.remove(0).statement else {
            panic!("a query")
        };
        name_expressions(&mut query);
        assert_eq!(
            query.to_string(),
            "SELECT a, UPPER(b) AS EXPR$1, c AS d, CAST(a AS INT) AS EXPR$3 FROM (SELECT 1 + 1 AS EXPR$0 FROM t)"
        );
    }
}
