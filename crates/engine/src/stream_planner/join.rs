//! Planning joins: which streaming join a logical `Join` becomes.
//!
//! - Both inputs windowed by the same window function and joined on
//!   window_start and window_end: a window join (insert-only).
//! - Event-time bounds between a rowtime attribute of each side
//!   (`r.ts BETWEEN l.ts - INTERVAL .. AND l.ts + INTERVAL ..`, or `<`, `>`
//!   forms) over insert-only inputs: an interval join (insert-only).
//! - Anything else: a regular join, whose output is a changelog.
//! - In batch runtime mode, over insert-only inputs: a hash join of the
//!   whole inputs, run once they end (final, insert-only).
//! - The right input joined `FOR SYSTEM_TIME AS OF` a time attribute of the
//!   left: an event-time temporal join against a versioned table (its
//!   primary key, declared or that of a deduplicating view, must be among
//!   the join keys) when the time is the left rowtime; a lookup join
//!   against the connector's lookup table when it is the left PROCTIME().
//!   Either keeps the left input's changelog mode.
//!
//! RIGHT SEMI/ANTI joins are planned as LEFT ones with the inputs swapped,
//! so the runtime's semi and anti joins always filter their left input.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use datafusion::common::NullEquality;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DFSchemaRef};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Cast, Expr, ExprSchemable, Join, JoinType, LogicalPlan, Operator, Projection,
    SubqueryAlias,
};
use weir_common::{WindowFunction, ZoneShift};
use weir_connector::{ConnectorError, LookupTableFactory};
use weir_runtime::operators::{JoinCondition, JoinKind, RankNumber};
use weir_sql::temporal::{TemporalCondition, is_temporal_marker, temporal_condition};
use weir_sql::window_tvf::{
    PROCTIME, TIME_ATTRIBUTE, WINDOW_END, WINDOW_START, interval_literal_millis, is_rowtime,
};
use weir_sql::{CatalogTable, ConnectorTableSource, TemporalTableNode, temporal_table};

use super::{
    ChangelogMode, StreamNode, StreamPlanner, rowtime_order, table_spec, window_proctime,
    window_zone,
};
use crate::EngineError;

/// How a join runs.
#[derive(Debug, Clone)]
pub enum JoinStrategy {
    /// Both inputs kept in state; the output is a changelog.
    Regular,
    /// `right_time - left_time` within `[lower, upper]` milliseconds.
    Interval {
        left_time: Expr,
        right_time: Expr,
        lower: i64,
        upper: i64,
    },
    /// Rows joined per window, when it fires.
    Window {
        function: WindowFunction,
        left_end: Expr,
        right_end: Expr,
        zone: Option<ZoneShift>,
        proctime: bool,
    },
    /// Batch runtime mode: all rows joined once, when the inputs end.
    Final,
    /// Each left row joins the right version current at its rowtime; the
    /// keys are the versioned table's primary key.
    Temporal { left_time: Expr, right_time: Expr },
    /// Each left row looks its key up in the right table, loaded whole
    /// from its connector; the right node only describes how its rows are
    /// derived from the table and never runs.
    Lookup {
        table: String,
        lookup: Arc<dyn LookupTableFactory>,
    },
}

/// A join as the streaming plan holds it.
#[derive(Debug)]
pub struct JoinNode {
    pub left: Box<StreamNode>,
    pub right: Box<StreamNode>,
    pub kind: JoinKind,
    pub on: Vec<(Expr, Expr)>,
    /// The non-equi condition, applied to candidate pairs (for interval
    /// joins it includes the time bounds).
    pub residual: Option<Expr>,
    pub nulls_equal: bool,
    /// NOT IN.
    pub null_aware: bool,
    pub strategy: JoinStrategy,
    pub schema: DFSchemaRef,
}

impl JoinNode {
    pub fn changelog_mode(&self) -> ChangelogMode {
        let (left, right) = (self.left.changelog_mode(), self.right.changelog_mode());
        match self.strategy {
            JoinStrategy::Regular => {}
            JoinStrategy::Temporal { .. } | JoinStrategy::Lookup { .. } => return left,
            _ => return ChangelogMode::InsertOnly,
        }
        match self.kind {
            JoinKind::Inner => left.max(right),
            JoinKind::Semi if right == ChangelogMode::InsertOnly => left,
            _ => ChangelogMode::UpdatesAndDeletes,
        }
    }

    pub fn title(&self) -> String {
        let mut condition: Vec<String> =
            self.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
        condition.extend(self.residual.iter().map(|r| r.to_string()));
        let condition = condition.join(" AND ");
        let kind = self.kind.flink_name();
        match &self.strategy {
            JoinStrategy::Regular => format!("Join(joinType=[{kind}], where=[{condition}])"),
            JoinStrategy::Interval {
                left_time,
                right_time,
                lower,
                upper,
            } => format!(
                "IntervalJoin(joinType=[{kind}], windowBounds=[isRowTime=true, leftLowerBound={}, leftUpperBound={}, leftTime={left_time}, rightTime={right_time}], where=[{condition}])",
                upper.saturating_neg(),
                lower.saturating_neg()
            ),
            JoinStrategy::Window { function, .. } => format!(
                "WindowJoin(leftWindow=[{function}], rightWindow=[{function}], joinType=[{kind}], where=[{condition}])"
            ),
            JoinStrategy::Final => format!("HashJoin(joinType=[{kind}], where=[{condition}])"),
            JoinStrategy::Temporal {
                left_time,
                right_time,
            } => format!(
                "TemporalJoin(joinType=[{kind}], where=[{condition} AND __TEMPORAL_JOIN_CONDITION({left_time}, {right_time})])"
            ),
            JoinStrategy::Lookup { table, .. } => {
                format!("LookupJoin(table=[{table}], joinType=[{kind}], where=[{condition}])")
            }
        }
    }
}

impl StreamPlanner<'_> {
    pub(super) fn join(&self, join: &Join) -> Result<StreamNode, EngineError> {
        let (kind, swap) = match join.join_type {
            JoinType::Inner => (JoinKind::Inner, false),
            JoinType::Left => (JoinKind::LeftOuter, false),
            JoinType::Right => (JoinKind::RightOuter, false),
            JoinType::Full => (JoinKind::FullOuter, false),
            JoinType::LeftSemi => (JoinKind::Semi, false),
            JoinType::RightSemi => (JoinKind::Semi, true),
            JoinType::LeftAnti => (JoinKind::Anti, false),
            JoinType::RightAnti => (JoinKind::Anti, true),
            JoinType::LeftMark | JoinType::RightMark => {
                return Err(EngineError::Unsupported(
                    "a subquery inside OR or in the SELECT list (a mark join)".into(),
                ));
            }
        };
        let (left_plan, right_plan) = if swap {
            (&join.right, &join.left)
        } else {
            (&join.left, &join.right)
        };
        if let Some(temporal) = temporal_table(right_plan) {
            return self.temporal_join(join, kind, temporal);
        }
        let on: Vec<(Expr, Expr)> = if swap {
            join.on
                .iter()
                .map(|(l, r)| (r.clone(), l.clone()))
                .collect()
        } else {
            join.on.clone()
        };
        if join.null_aware && (on.len() > 1 || join.filter.is_some()) {
            // Its NULL and emptiness checks would have to be per correlation group.
            return Err(EngineError::Unsupported(
                "a correlated NOT IN subquery (use NOT EXISTS)".into(),
            ));
        }
        let left = self.translate(left_plan)?;
        let right = self.translate(right_plan)?;
        let insert_only = left.changelog_mode() == ChangelogMode::InsertOnly
            && right.changelog_mode() == ChangelogMode::InsertOnly;
        let strategy = if self.batch_mode && insert_only {
            JoinStrategy::Final
        } else if let Some(window) = window_join(&left, &right, &on).filter(|_| insert_only) {
            window
        } else if let Some(interval) = join
            .filter
            .as_ref()
            .and_then(|f| interval_bounds(f, left.schema(), right.schema()))
            .filter(|_| {
                insert_only
                    && !matches!(kind, JoinKind::Semi | JoinKind::Anti)
                    && left.keeps_rowtime()
                    && right.keeps_rowtime()
            })
        {
            interval
        } else {
            JoinStrategy::Regular
        };
        Ok(StreamNode::Join(Box::new(JoinNode {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            on,
            residual: join.filter.clone(),
            nulls_equal: join.null_equality == NullEquality::NullEqualsNull,
            null_aware: join.null_aware,
            strategy,
            schema: Arc::clone(&join.schema),
        })))
    }

    /// `JOIN right FOR SYSTEM_TIME AS OF left.time`: an event-time
    /// temporal join or a lookup join, by the kind of time.
    fn temporal_join(
        &self,
        join: &Join,
        kind: JoinKind,
        temporal: &TemporalTableNode,
    ) -> Result<StreamNode, EngineError> {
        if !matches!(join.join_type, JoinType::Inner | JoinType::Left) {
            return Err(EngineError::Unsupported(format!(
                "a temporal join of type {} (FOR SYSTEM_TIME AS OF takes INNER and LEFT joins)",
                join.join_type
            )));
        }
        let left = self.translate(&join.left)?;
        let (time, right_time, mut residual) =
            match join.filter.as_ref().and_then(temporal_condition) {
                Some(TemporalCondition {
                    time: Expr::Column(time),
                    right_time,
                    residual,
                }) => (time, right_time, residual),
                _ => {
                    return Err(EngineError::Internal(format!(
                        "the temporal join against '{}' lost its time condition",
                        temporal.table
                    )));
                }
            };
        let (_, time_field) = left.schema().qualified_field_from_column(&time)?;
        let proctime = time_field
            .metadata()
            .get(TIME_ATTRIBUTE)
            .is_some_and(|v| v == PROCTIME);
        let rowtime = is_rowtime(time_field) && left.keeps_rowtime();
        let mut right = if rowtime {
            // Conditions the optimizer pushed (from ON or WHERE) onto the
            // versioned table apply to the version found, not to which
            // version is current: they go back into the join.
            let (plan, lifted) = lift_filters(&join.right)?;
            let right_schema = join.right.schema();
            for predicate in lifted {
                let predicate = predicate
                    .transform(|e| match e {
                        Expr::Column(c) => {
                            let (q, f) = right_schema
                                .qualified_field_with_unqualified_name(&c.name)?;
                            Ok(Transformed::yes(Expr::Column(Column::new(q.cloned(), f.name()))))
                        }
                        other => Ok(Transformed::no(other)),
                    })
                    .map_err(|_| {
                        EngineError::Unsupported(format!(
                            "a condition on a column of the versioned table '{}' that the join does not output",
                            temporal.table
                        ))
                    })?
                    .data;
                residual = Some(match residual {
                    Some(r) => r.and(predicate),
                    None => predicate,
                });
            }
            self.translate(&plan)?
        } else {
            self.translate(&join.right)?
        };
        let mut on = join.on.clone();
        let strategy = if proctime {
            let table = scanned_table(&temporal.input).ok_or_else(|| {
                EngineError::Unsupported(format!(
                    "a processing-time temporal join against '{}', which is not a table (a lookup join needs a table whose connector supports lookups)",
                    temporal.table
                ))
            })?;
            let spec = table_spec(table);
            let lookup = self
                .registry
                .for_table(&spec)
                .and_then(|c| {
                    c.create_lookup(&spec)?
                        .ok_or_else(|| ConnectorError::Unsupported {
                            connector: c.name().to_string(),
                            what: "cannot serve lookups, so its tables cannot be joined FOR SYSTEM_TIME AS OF a processing time (connectors with lookups: filesystem)".to_string(),
                        })
                })
                .map_err(|source| EngineError::Table {
                    table: table.name.clone(),
                    source,
                })?;
            if on.is_empty() {
                return Err(EngineError::Plan(format!(
                    "the lookup join against '{}' needs an equality condition on its columns",
                    table.name
                )));
            }
            JoinStrategy::Lookup {
                table: table.name.clone(),
                lookup,
            }
        } else if rowtime {
            let versioned_rowtime = matches!(&right_time, Expr::Column(c)
                if right.schema().qualified_field_from_column(c).is_ok_and(|(_, f)| is_rowtime(f)));
            if !versioned_rowtime {
                return Err(EngineError::Plan(format!(
                    "Event-Time Temporal Table Join requires both primary key and row time attribute in versioned table, but no row time attribute can be found in '{}'",
                    temporal.table
                )));
            }
            let primary_key = if temporal.primary_key.is_empty() {
                unique_key(&right).unwrap_or_default()
            } else {
                temporal.primary_key.clone()
            };
            if primary_key.is_empty() {
                return Err(EngineError::Plan(format!(
                    "Temporal Table Join requires primary key in versioned table, but no primary key can be found in '{}' (declare PRIMARY KEY (...) NOT ENFORCED, or deduplicate it with ROW_NUMBER() ... = 1)",
                    temporal.table
                )));
            }
            // The primary key pairs are the state's keys; other equalities
            // are checked on the version found.
            let (keys, others): (Vec<_>, Vec<_>) = on
                .into_iter()
                .partition(|(_, r)| matches!(r, Expr::Column(c) if primary_key.contains(&c.name)));
            let missing: Vec<&String> = primary_key
                .iter()
                .filter(|k| {
                    !keys
                        .iter()
                        .any(|(_, r)| matches!(r, Expr::Column(c) if &c.name == *k))
                })
                .collect();
            if !missing.is_empty() {
                return Err(EngineError::Plan(format!(
                    "Temporal table's primary key [{}] must be included in the equivalence condition of temporal join, but the condition has no {}",
                    primary_key.join(", "),
                    missing
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            on = keys;
            right = versions_of(right);
            residual = others
                .into_iter()
                .map(|(l, r)| l.eq(r))
                .chain(residual)
                .reduce(Expr::and);
            JoinStrategy::Temporal {
                left_time: Expr::Column(time),
                right_time,
            }
        } else {
            return Err(EngineError::Plan(format!(
                "FOR SYSTEM_TIME AS OF {} must name a time attribute of the left table: its rowtime (the column of its WATERMARK, unchanged by joins or aggregations) or a PROCTIME() column",
                temporal.time
            )));
        };
        Ok(StreamNode::Join(Box::new(JoinNode {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            on,
            residual,
            nulls_equal: join.null_equality == NullEquality::NullEqualsNull,
            null_aware: false,
            strategy,
            schema: Arc::clone(&join.schema),
        })))
    }

    /// Compiles a join's keys and residual over its inputs' schemas.
    pub(super) fn join_condition(&self, node: &JoinNode) -> Result<JoinCondition, EngineError> {
        let (left, right) = (node.left.schema(), node.right.schema());
        let planner = self.planner;
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        let mut key_fields = Vec::new();
        for (i, (l, r)) in node.on.iter().enumerate() {
            let (lt, rt) = (l.get_type(left)?, r.get_type(right)?);
            let common = if lt == rt {
                lt.clone()
            } else {
                comparison_coercion(&lt, &rt).ok_or_else(|| {
                    EngineError::Plan(format!("cannot join {l} ({lt}) with {r} ({rt})"))
                })?
            };
            let cast = |e: &Expr, t: &arrow::datatypes::DataType| {
                if *t == common {
                    e.clone()
                } else {
                    Expr::Cast(Cast::new(Box::new(e.clone()), common.clone()))
                }
            };
            left_keys.push(planner.physical_expr(&cast(l, &lt), left)?);
            right_keys.push(planner.physical_expr(&cast(r, &rt), right)?);
            key_fields.push(Field::new(format!("key{i}"), common.clone(), true));
        }
        let joined = left.join(right)?;
        let residual = node
            .residual
            .as_ref()
            .map(|r| planner.physical_expr(r, &joined))
            .transpose()?;
        let nullable = |schema: &DFSchema| -> Vec<Field> {
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect()
        };
        let mut joined_fields = nullable(left);
        joined_fields.extend(nullable(right));
        Ok(JoinCondition {
            kind: node.kind,
            left_keys,
            right_keys,
            key_schema: Arc::new(Schema::new(key_fields)),
            nulls_equal: node.nulls_equal,
            residual,
            left_schema: Arc::clone(left.inner()),
            right_schema: Arc::clone(right.inner()),
            joined_schema: Arc::new(Schema::new(joined_fields)),
            output_schema: Arc::clone(node.schema.inner()),
        })
    }
}

/// A temporal join's right input without the filters above its temporal
/// table, and those filters' predicates (temporal markers left out).
fn lift_filters(plan: &LogicalPlan) -> Result<(LogicalPlan, Vec<Expr>), EngineError> {
    Ok(match plan {
        LogicalPlan::SubqueryAlias(a) => {
            let (input, lifted) = lift_filters(&a.input)?;
            let alias = SubqueryAlias::try_new(Arc::new(input), a.alias.clone())?;
            (LogicalPlan::SubqueryAlias(alias), lifted)
        }
        LogicalPlan::Projection(p) => {
            let (input, lifted) = lift_filters(&p.input)?;
            let projection = Projection::try_new(p.expr.clone(), Arc::new(input))?;
            (LogicalPlan::Projection(projection), lifted)
        }
        LogicalPlan::Filter(f) => {
            let (input, mut lifted) = lift_filters(&f.input)?;
            lifted.extend(
                split_conjunction(&f.predicate)
                    .into_iter()
                    .filter(|e| !is_temporal_marker(e))
                    .cloned(),
            );
            (input, lifted)
        }
        other => (other.clone(), Vec::new()),
    })
}

/// The catalog table a plan reads, through projections, filters and the
/// computed columns of the table itself.
fn scanned_table(plan: &LogicalPlan) -> Option<&CatalogTable> {
    match plan {
        LogicalPlan::TableScan(scan) => scan
            .source
            .downcast_ref::<ConnectorTableSource>()
            .map(|s| s.table.as_ref()),
        LogicalPlan::SubqueryAlias(a) => scanned_table(&a.input),
        LogicalPlan::Projection(p) => scanned_table(&p.input),
        LogicalPlan::Filter(f) => scanned_table(&f.input),
        _ => None,
    }
}

/// The columns (by name) that identify a row of `node`'s output, when its
/// plan guarantees one row per key: a deduplication's partition keys,
/// through projections that keep them.
fn unique_key(node: &StreamNode) -> Option<Vec<String>> {
    match node {
        StreamNode::Rank {
            partition_by,
            rank_start: 1,
            rank_end: 1,
            ..
        } => partition_by
            .iter()
            .map(|e| match e {
                Expr::Column(c) => Some(c.name.clone()),
                _ => None,
            })
            .collect(),
        StreamNode::Calc {
            input,
            projection: None,
            ..
        } => unique_key(input),
        StreamNode::Calc {
            input,
            projection: Some(exprs),
            schema,
            ..
        } => unique_key(input)?
            .into_iter()
            .map(|key| {
                exprs.iter().enumerate().find_map(|(i, e)| {
                    let column = match e {
                        Expr::Alias(a) => a.expr.as_ref(),
                        other => other,
                    };
                    matches!(column, Expr::Column(c) if c.name == key)
                        .then(|| schema.field(i).name().clone())
                })
            })
            .collect(),
        _ => None,
    }
}

/// A versioned view's changelog as the temporal join wants it. A view
/// keeping the last row per key by rowtime (`ROW_NUMBER() OVER (PARTITION
/// BY k ORDER BY rowtime DESC) = 1`) over an append-only input is that
/// input: every row is the key's next version, which the join keeps in
/// time order itself. The deduplication would pass on only the net change
/// of each batch, skipping versions earlier rows must see.
fn versions_of(node: StreamNode) -> StreamNode {
    match node {
        StreamNode::Rank {
            input,
            order_by,
            arrival: None,
            rank_start: 1,
            rank_end: 1,
            rank_number: RankNumber::Absent | RankNumber::Unused,
            ..
        } if input.changelog_mode() == ChangelogMode::InsertOnly
            && rowtime_order(&order_by, input.schema()) == Some(true) =>
        {
            *input
        }
        StreamNode::Calc {
            input,
            predicate,
            projection,
            schema,
        } => StreamNode::Calc {
            input: Box::new(versions_of(*input)),
            predicate,
            projection,
            schema,
        },
        other => other,
    }
}

/// The window function an input's rows are windowed by, if any: a window
/// table function or window aggregation, through projections and filters.
fn window_origin(node: &StreamNode) -> Option<WindowFunction> {
    match node {
        StreamNode::WindowTvf {
            function,
            slices_only: false,
            ..
        }
        | StreamNode::WindowAggregate { function, .. } => Some(*function),
        StreamNode::Calc { input, .. } | StreamNode::WindowRank { input, .. } => {
            window_origin(input)
        }
        _ => None,
    }
}

/// A window join when both inputs come from the same window function and
/// the keys pair window_start with window_start and window_end with window_end.
fn window_join(left: &StreamNode, right: &StreamNode, on: &[(Expr, Expr)]) -> Option<JoinStrategy> {
    let function = window_origin(left)?;
    if window_origin(right)? != function {
        return None;
    }
    let paired = |name: &str| {
        on.iter().find_map(|(l, r)| match (l, r) {
            (Expr::Column(a), Expr::Column(b)) if a.name == name && b.name == name => {
                Some((l.clone(), r.clone()))
            }
            _ => None,
        })
    };
    paired(WINDOW_START)?;
    let (left_end, right_end) = paired(WINDOW_END)?;
    Some(JoinStrategy::Window {
        function,
        left_end,
        right_end,
        zone: window_zone(left),
        proctime: window_proctime(left) || window_proctime(right),
    })
}

/// A rowtime column plus a constant: `ts`, `ts + INTERVAL ..`, `ts - INTERVAL ..`.
fn time_term(expr: &Expr) -> Option<(&Column, i64)> {
    match expr {
        Expr::Column(c) => Some((c, 0)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            match (left.as_ref(), op, right.as_ref()) {
                (Expr::Column(c), Operator::Plus, i) | (i, Operator::Plus, Expr::Column(c)) => {
                    Some((c, interval_literal_millis(i)?))
                }
                (Expr::Column(c), Operator::Minus, i) => {
                    Some((c, interval_literal_millis(i)?.checked_neg()?))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Which side's rowtime attribute a column is, if it is one.
fn rowtime_side(column: &Column, left: &DFSchema, right: &DFSchema) -> Option<bool> {
    let is_rowtime_in = |schema: &DFSchema| {
        schema
            .qualified_field_from_column(column)
            .is_ok_and(|(_, f)| is_rowtime(f))
    };
    match (is_rowtime_in(left), is_rowtime_in(right)) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// The bounds of an interval join in a join's non-equi condition: each
/// conjunct comparing a rowtime attribute of one side (plus a constant)
/// with one of the other side narrows `right_time - left_time`.
fn interval_bounds(filter: &Expr, left: &DFSchema, right: &DFSchema) -> Option<JoinStrategy> {
    let mut comparisons: Vec<(&Expr, Operator, &Expr)> = Vec::new();
    for conjunct in split_conjunction(filter) {
        match conjunct {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                comparisons.push((left, *op, right));
            }
            Expr::Between(between) if !between.negated => {
                comparisons.push((&between.expr, Operator::GtEq, &between.low));
                comparisons.push((&between.expr, Operator::LtEq, &between.high));
            }
            _ => {}
        }
    }
    let mut times: Option<(Column, Column)> = None;
    let (mut lower, mut upper) = (None::<i64>, None::<i64>);
    for (a, op, b) in comparisons {
        let (Some((ca, oa)), Some((cb, ob))) = (time_term(a), time_term(b)) else {
            continue;
        };
        // Normalise to `l + ol  op  r + or`.
        let (l, ol, op, r, or) =
            match (rowtime_side(ca, left, right), rowtime_side(cb, left, right)) {
                (Some(true), Some(false)) => (ca, oa, op, cb, ob),
                (Some(false), Some(true)) => (cb, ob, op.swap()?, ca, oa),
                _ => continue,
            };
        match &times {
            Some((tl, tr)) if tl != l || tr != r => continue,
            None => times = Some((l.clone(), r.clone())),
            _ => {}
        }
        // l + ol op r + or  <=>  r - l  op'  ol - or. Strict comparisons
        // keep the bound: in milliseconds it is a safe (inclusive) range for
        // finer timestamps too, and the residual predicate decides exactly.
        let bound = ol.checked_sub(or)?;
        match op {
            Operator::LtEq | Operator::Lt => {
                lower = Some(lower.map_or(bound, |v| v.max(bound)));
            }
            Operator::GtEq | Operator::Gt => {
                upper = Some(upper.map_or(bound, |v| v.min(bound)));
            }
            _ => continue,
        }
    }
    let (left_time, right_time) = times?;
    Some(JoinStrategy::Interval {
        left_time: Expr::Column(left_time),
        right_time: Expr::Column(right_time),
        lower: lower?,
        upper: upper?,
    })
}
