//! Flink's names for unnamed select items: `SELECT UPPER(name) FROM t` has a
//! column `EXPR$0`, named after its position, as Calcite names it.
//!
//! DataFusion would name such a column after its expression (and a CAST
//! after its operand, so `SELECT a, CAST(a AS STRING)` would have two
//! columns `a` and fail to plan); naming them as Flink does keeps result
//! headers and duplicate checks the same as Flink's.
//!
//! A ROW field read as `person.id` is named after the field (`id`), as in
//! Flink, where DataFusion would say `t.person[id]`. It is told apart from a
//! qualified column `p.id` by its first part, which names no table of the
//! FROM clause (or by having three or more parts).

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
            let relations: Vec<String> = select.from.iter().flat_map(relation_names).collect();
            for (index, item) in select.projection.iter_mut().enumerate() {
                let SelectItem::UnnamedExpr(expr) = item else {
                    continue;
                };
                let alias = match expr {
                    Expr::Identifier(_) => continue,
                    Expr::CompoundIdentifier(parts) => match row_field_name(parts, &relations) {
                        Some(field) => field.clone(),
                        None => continue,
                    },
                    _ => Ident::new(format!("EXPR${index}")),
                };
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias,
                };
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

/// The field a compound identifier reads when it is a ROW field access
/// rather than a qualified column.
fn row_field_name<'a>(parts: &'a [Ident], relations: &[String]) -> Option<&'a Ident> {
    let (first, last) = (parts.first()?, parts.last()?);
    let qualified = parts.len() == 2
        && relations
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&first.value));
    (!qualified).then_some(last)
}

/// The names a FROM item's relations can be referred to by: aliases, and
/// table names (each part, so `db.t` answers to `t`).
fn relation_names(table: &TableWithJoins) -> Vec<String> {
    let mut names = Vec::new();
    collect_relation_names(&table.relation, &mut names);
    for join in &table.joins {
        collect_relation_names(&join.relation, &mut names);
    }
    names
}

fn collect_relation_names(factor: &TableFactor, names: &mut Vec<String>) {
    match factor {
        TableFactor::Table { name, alias, .. } => match alias {
            Some(alias) => names.push(alias.name.value.clone()),
            None => names.extend(
                name.0
                    .iter()
                    .filter_map(|part| part.as_ident())
                    .map(|ident| ident.value.clone()),
            ),
        },
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => names.extend(relation_names(table_with_joins)),
        other => {
            // Derived tables, table functions (TUMBLE(...)) and the rest
            // are named by their alias only.
            if let Some(alias) = factor_alias(other) {
                names.push(alias);
            }
        }
    }
}

fn factor_alias(factor: &TableFactor) -> Option<String> {
    match factor {
        TableFactor::Derived { alias, .. }
        | TableFactor::TableFunction { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::UNNEST { alias, .. } => alias.as_ref().map(|a| a.name.value.clone()),
        _ => None,
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

    #[test]
    fn row_fields_are_named_after_the_field() {
        let mut parsed = parse_script(
            "SELECT person.id, t.b, q.c, t.r.f FROM t JOIN (SELECT 1 AS c) AS q ON TRUE",
        )
        .expect("parses");
        let FlinkStatement::Query(mut query) = parsed.remove(0).statement else {
            panic!("a query")
        };
        name_expressions(&mut query);
        assert_eq!(
            query.to_string(),
            "SELECT person.id AS id, t.b, q.c, t.r.f AS f FROM t JOIN (SELECT 1 AS c) AS q ON true"
        );
    }
}
