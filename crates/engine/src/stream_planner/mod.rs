//! The streaming planner: DataFusion's optimized logical plan in, a
//! [`JobGraph`] out.
//!
//! It works in two steps. [`StreamPlanner::translate`] maps each logical node
//! onto a [`StreamNode`] (the streaming physical plan EXPLAIN shows):
//! scans become connector sources, filters and projections merge into
//! `Calc`s, a table's watermark folds into its source so watermarks are
//! generated per split; GROUP BY becomes a window or group aggregation
//! (GROUPING SETS through an `Expand`), joins one of the join strategies,
//! `ROW_NUMBER()` filters a Top-N. [`JobGraphBuilder`] then chains nodes of
//! equal parallelism into vertices and connects the rest with exchanges,
//! hash-partitioned on the keys of stateful nodes. What has no streaming
//! operator (a global ORDER BY without LIMIT, for one) is refused with a
//! message naming it.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatchOptions;
use datafusion::common::{Column, DFSchema, DFSchemaRef, ScalarValue, TableReference};
use datafusion::logical_expr::expr::WindowFunctionParams;
use datafusion::logical_expr::expr::{GroupingSet, Sort as SortExpr};
use datafusion::logical_expr::logical_plan::dml::WriteOp;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, FetchType, Filter, LogicalPlan, LogicalPlanBuilder, Operator,
    Projection, SkipType, UserDefinedLogicalNodeCore, Window,
};
use datafusion::physical_expr::PhysicalSortExpr;
use weir_common::{WindowFunction, ZoneShift};
use weir_connector::{SinkFactory, SourceFactory, TableSpec};
use weir_runtime::operators::{
    AggregateCall, AggregateOutput, Calc, Expand, GroupAggregateFactory, GroupAggregateSpec,
    Grouping, IntervalJoinFactory, IntervalJoinSpec, Limit, LookupJoinFactory, LookupJoinSpec,
    OverAggregateFactory, OverAggregateSpec, OverFrame, RankFactory, RankNumber, RankOrder,
    RankSpec, SessionAggregateSpec, SessionWindowAggregateFactory, StreamingJoinFactory,
    StreamingJoinSpec, TemporalJoinFactory, TemporalJoinSpec, TimeDomain,
    UpdatingOverAggregateFactory, UpdatingOverSpec, ValuesSource, WatermarkStrategy,
    WindowAggregateFactory, WindowAggregateSpec, WindowAssigner, WindowJoinFactory, WindowJoinSpec,
    WindowRankFactory, WindowRankSpec,
};
use weir_runtime::{
    CloningFactory, JobEdge, JobGraph, JobVertex, OperatorFactory, Partitioning, SinkSpec,
    SourceSpec, VertexId, VertexInput, VertexOutput,
};
use weir_sql::window_tvf::{WINDOW_END, WINDOW_START, WINDOW_TIME};
use weir_sql::{
    CatalogTable, ConnectorTableSource, SqlPlanner, TemporalTableNode, WatermarkNode, WindowTvfNode,
};

use crate::EngineError;
use crate::registry::ConnectorRegistry;

mod join;
mod over;

pub use self::join::{JoinNode, JoinStrategy};
pub use self::over::OverOrder;

/// Flink's default max parallelism: the number of key groups.
pub const MAX_PARALLELISM: usize = 128;

/// A node of the streaming physical plan.
#[derive(Debug)]
pub enum StreamNode {
    Source {
        table: String,
        factory: Arc<dyn SourceFactory>,
        projection: Option<Vec<usize>>,
        transforms: Vec<Calc>,
        watermark: Option<WatermarkStrategy>,
        parallelism: usize,
        schema: DFSchemaRef,
    },
    /// A filter and/or projection, still logical so neighbours can merge.
    Calc {
        input: Box<StreamNode>,
        predicate: Option<Expr>,
        projection: Option<Vec<Expr>>,
        schema: DFSchemaRef,
    },
    Union {
        inputs: Vec<StreamNode>,
        schema: DFSchemaRef,
    },
    /// Each row once per grouping set (GROUPING SETS, ROLLUP, CUBE): the
    /// input's columns, the keys with those outside the set NULL, and
    /// `__grouping_id`.
    Expand {
        input: Box<StreamNode>,
        projections: Vec<Vec<Expr>>,
        /// How many leading columns of each projection are the input's.
        passed_through: usize,
        schema: DFSchemaRef,
    },
    Limit {
        input: Box<StreamNode>,
        skip: usize,
        fetch: Option<usize>,
        schema: DFSchemaRef,
    },
    /// A window table function; `slices_only` under a window aggregation.
    WindowTvf {
        input: Box<StreamNode>,
        function: WindowFunction,
        time_column: String,
        partition_by: Vec<String>,
        /// Over a PROCTIME() column: windows fire by the wall clock.
        proctime: bool,
        slices_only: bool,
        zone: Option<ZoneShift>,
        schema: DFSchemaRef,
    },
    /// GROUP BY window_start, window_end, keys over a window table function.
    WindowAggregate {
        input: Box<StreamNode>,
        function: WindowFunction,
        keys: Vec<Expr>,
        aggregates: Vec<Expr>,
        outputs: Vec<AggregateOutput>,
        /// The input column holding each row's slice end.
        slice_end: Expr,
        zone: Option<ZoneShift>,
        proctime: bool,
        schema: DFSchemaRef,
    },
    /// Window Top-N / deduplication: ROW_NUMBER() per window, first `limit` rows.
    WindowRank {
        input: Box<StreamNode>,
        partition_by: Vec<Expr>,
        order_by: Vec<SortExpr>,
        limit: usize,
        window_end: Expr,
        zone: Option<ZoneShift>,
        proctime: bool,
        schema: DFSchemaRef,
    },
    /// A two-input join.
    Join(Box<JoinNode>),
    /// Aggregates over the rows before each row (`agg(x) OVER (...)`).
    OverAggregate {
        input: Box<StreamNode>,
        partition_by: Vec<Expr>,
        order: OverOrder,
        frame: OverFrame,
        aggregates: Vec<Expr>,
        schema: DFSchemaRef,
    },
    /// Top-N or deduplication per partition, producing a changelog.
    Rank {
        input: Box<StreamNode>,
        partition_by: Vec<Expr>,
        order_by: Vec<SortExpr>,
        /// Ordered by a processing-time attribute: by arrival, the latest
        /// first when `Some(true)`.
        arrival: Option<bool>,
        rank_start: usize,
        rank_end: usize,
        rank_number: RankNumber,
        /// Whether a replaced row is retracted (`-U`) before its successor
        /// comes (`+U`): false under a sink that ignores `-U` rows
        /// ([`StreamNode::drop_update_before`]).
        update_before: bool,
        schema: DFSchemaRef,
    },
    /// Unbounded GROUP BY, producing a changelog.
    GroupAggregate {
        input: Box<StreamNode>,
        keys: Vec<Expr>,
        aggregates: Vec<Expr>,
        outputs: Vec<AggregateOutput>,
        final_only: bool,
        schema: DFSchemaRef,
    },
}

/// Which row kinds a node emits, as Flink's `changelogMode`; ordered from
/// fewest to most kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangelogMode {
    /// `[I]`
    InsertOnly,
    /// `[I,UA]`: updates, each only as its new row (the old one is not
    /// retracted first), and a key once in the result stays. Only a sink
    /// that ignores `-U` rows reads it.
    UpdatesAfterOnly,
    /// `[I,UB,UA]`: updates, but a key once in the result stays.
    Updates,
    /// `[I,UB,UA,D]`
    UpdatesAndDeletes,
}

impl fmt::Display for ChangelogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangelogMode::InsertOnly => "I",
            ChangelogMode::UpdatesAfterOnly => "I,UA",
            ChangelogMode::Updates => "I,UB,UA",
            ChangelogMode::UpdatesAndDeletes => "I,UB,UA,D",
        })
    }
}

impl StreamNode {
    pub fn schema(&self) -> &DFSchemaRef {
        match self {
            StreamNode::Source { schema, .. }
            | StreamNode::Calc { schema, .. }
            | StreamNode::Union { schema, .. }
            | StreamNode::Expand { schema, .. }
            | StreamNode::Limit { schema, .. }
            | StreamNode::WindowTvf { schema, .. }
            | StreamNode::WindowAggregate { schema, .. }
            | StreamNode::WindowRank { schema, .. }
            | StreamNode::GroupAggregate { schema, .. }
            | StreamNode::Rank { schema, .. }
            | StreamNode::OverAggregate { schema, .. } => schema,
            StreamNode::Join(join) => &join.schema,
        }
    }

    /// Gives the node the qualifiers its parent refers to it by.
    fn with_schema(mut self, new_schema: DFSchemaRef) -> Self {
        match &mut self {
            StreamNode::Source { schema, .. }
            | StreamNode::Calc { schema, .. }
            | StreamNode::Union { schema, .. }
            | StreamNode::Expand { schema, .. }
            | StreamNode::Limit { schema, .. }
            | StreamNode::WindowTvf { schema, .. }
            | StreamNode::WindowAggregate { schema, .. }
            | StreamNode::WindowRank { schema, .. }
            | StreamNode::GroupAggregate { schema, .. }
            | StreamNode::Rank { schema, .. }
            | StreamNode::OverAggregate { schema, .. } => *schema = new_schema,
            StreamNode::Join(join) => join.schema = new_schema,
        }
        self
    }

    /// The row kinds this node emits.
    pub fn changelog_mode(&self) -> ChangelogMode {
        match self {
            // A changelog source (upsert-kafka) emits every kind.
            StreamNode::Source { factory, .. } if factory.produces_updates() => {
                ChangelogMode::UpdatesAndDeletes
            }
            StreamNode::Source { .. }
            | StreamNode::OverAggregate {
                order: OverOrder::Time { .. },
                ..
            }
            | StreamNode::WindowAggregate { .. }
            | StreamNode::WindowRank { .. } => ChangelogMode::InsertOnly,
            // Rows whose frames change are updated; retracted rows deleted.
            StreamNode::OverAggregate { input, .. } => match input.changelog_mode() {
                ChangelogMode::InsertOnly => ChangelogMode::Updates,
                _ => ChangelogMode::UpdatesAndDeletes,
            },
            StreamNode::Calc { input, .. }
            | StreamNode::Expand { input, .. }
            | StreamNode::Limit { input, .. }
            | StreamNode::WindowTvf { input, .. } => input.changelog_mode(),
            StreamNode::Union { inputs, .. } => inputs
                .iter()
                .map(StreamNode::changelog_mode)
                .max()
                .unwrap_or(ChangelogMode::InsertOnly),
            StreamNode::Join(join) => join.changelog_mode(),
            StreamNode::Rank {
                input,
                arrival,
                rank_start,
                rank_end,
                update_before,
                ..
            } => {
                let insert_only = input.changelog_mode() == ChangelogMode::InsertOnly;
                match (insert_only, *arrival, *rank_start, *rank_end) {
                    // Deduplication keeping the first row by processing time.
                    (true, Some(false), 1, 1) => ChangelogMode::InsertOnly,
                    // One row per key, replaced but never removed.
                    (true, _, 1, 1) if !update_before => ChangelogMode::UpdatesAfterOnly,
                    (true, _, 1, 1) => ChangelogMode::Updates,
                    _ => ChangelogMode::UpdatesAndDeletes,
                }
            }
            StreamNode::GroupAggregate {
                input, final_only, ..
            } => match (final_only, input.changelog_mode()) {
                (true, _) => ChangelogMode::InsertOnly,
                (false, ChangelogMode::InsertOnly) => ChangelogMode::Updates,
                (false, _) => ChangelogMode::UpdatesAndDeletes,
            },
        }
    }

    /// Whether the rowtime attributes among this node's columns are still
    /// in step with the watermarks: no row comes out behind the watermark
    /// it passed on. Joins (but inner interval joins, which hold the
    /// watermark back), ranks and aggregations break that, as in Flink,
    /// where their time columns become plain timestamps.
    pub fn keeps_rowtime(&self) -> bool {
        match self {
            StreamNode::Source { .. } => true,
            StreamNode::Calc { input, .. }
            | StreamNode::Expand { input, .. }
            | StreamNode::Limit { input, .. }
            | StreamNode::WindowTvf { input, .. }
            | StreamNode::OverAggregate {
                input,
                order: OverOrder::Time { .. },
                ..
            } => input.keeps_rowtime(),
            StreamNode::OverAggregate { .. } => false,
            StreamNode::Union { inputs, .. } => inputs.iter().all(StreamNode::keeps_rowtime),
            // Rows leave a temporal join before the watermark that released
            // them, and a lookup join at once.
            StreamNode::Join(join)
                if matches!(
                    join.strategy,
                    JoinStrategy::Temporal { .. } | JoinStrategy::Lookup { .. }
                ) =>
            {
                join.left.keeps_rowtime()
            }
            StreamNode::Join(join) => {
                matches!(join.strategy, JoinStrategy::Interval { .. })
                    && join.kind == weir_runtime::operators::JoinKind::Inner
                    && join.left.keeps_rowtime()
                    && join.right.keeps_rowtime()
            }
            StreamNode::WindowAggregate { .. }
            | StreamNode::WindowRank { .. }
            | StreamNode::GroupAggregate { .. }
            | StreamNode::Rank { .. } => false,
        }
    }

    /// Lets the nodes under a sink that ignores `-U` rows stop emitting
    /// them, as Flink's planner does when a sink asks for no
    /// `UPDATE_BEFORE` (its blackhole): a Top-1 then keeps each key's sort
    /// key instead of its row. The request passes through projections
    /// only: a filter over updates needs the `-U` of a row that stops
    /// matching, to retract it (FLINK-9528), and stateful nodes read the
    /// `-U` rows of their inputs.
    fn drop_update_before(&mut self) {
        match self {
            StreamNode::Calc {
                input,
                predicate: None,
                ..
            } => input.drop_update_before(),
            StreamNode::Rank {
                input,
                rank_start: 1,
                rank_end: 1,
                update_before,
                ..
            } if input.changelog_mode() == ChangelogMode::InsertOnly => *update_before = false,
            _ => {}
        }
    }

    /// The first node (from the top) that turns an insert-only stream into
    /// updates, for errors that must name it.
    fn update_producer(&self) -> Option<&StreamNode> {
        match self {
            // Only the left input's changes reach a temporal join's output.
            StreamNode::Join(join)
                if matches!(
                    join.strategy,
                    JoinStrategy::Temporal { .. } | JoinStrategy::Lookup { .. }
                ) =>
            {
                join.left.update_producer()
            }
            StreamNode::GroupAggregate { input, .. }
                if input.changelog_mode() == ChangelogMode::InsertOnly
                    && self.changelog_mode() != ChangelogMode::InsertOnly =>
            {
                Some(self)
            }
            StreamNode::Join(join)
                if join.left.changelog_mode() == ChangelogMode::InsertOnly
                    && join.right.changelog_mode() == ChangelogMode::InsertOnly
                    && join.changelog_mode() != ChangelogMode::InsertOnly =>
            {
                Some(self)
            }
            StreamNode::Rank { input, .. } | StreamNode::OverAggregate { input, .. }
                if input.changelog_mode() == ChangelogMode::InsertOnly
                    && self.changelog_mode() != ChangelogMode::InsertOnly =>
            {
                Some(self)
            }
            StreamNode::Rank { input, .. } | StreamNode::OverAggregate { input, .. } => {
                input.update_producer()
            }
            StreamNode::Join(join) => join
                .left
                .update_producer()
                .or_else(|| join.right.update_producer()),
            StreamNode::Source { factory, .. } => factory.produces_updates().then_some(self),
            StreamNode::Calc { input, .. }
            | StreamNode::Expand { input, .. }
            | StreamNode::Limit { input, .. }
            | StreamNode::WindowTvf { input, .. }
            | StreamNode::WindowAggregate { input, .. }
            | StreamNode::WindowRank { input, .. }
            | StreamNode::GroupAggregate { input, .. } => input.update_producer(),
            StreamNode::Union { inputs, .. } => inputs.iter().find_map(StreamNode::update_producer),
        }
    }

    /// The node's first line in EXPLAIN, without its changelog mode.
    fn title(&self) -> String {
        match self {
            StreamNode::Source {
                table,
                transforms,
                watermark,
                parallelism,
                schema,
                ..
            } => {
                let columns: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                let mut text = format!(
                    "TableSourceScan(table=[{table}], fields=[{}], parallelism={parallelism}",
                    columns.join(", ")
                );
                if !transforms.is_empty() {
                    let names: Vec<&str> = transforms
                        .iter()
                        .map(|t| weir_runtime::Operator::name(t))
                        .collect();
                    text.push_str(&format!(", computed=[{}]", names.join(" -> ")));
                }
                if let Some(w) = watermark {
                    text.push_str(&format!(", watermark=[{}]", w.display()));
                }
                text.push(')');
                text
            }
            StreamNode::Calc {
                predicate,
                projection,
                ..
            } => {
                let mut parts = Vec::new();
                if let Some(p) = projection {
                    let exprs: Vec<String> = p.iter().map(|e| e.to_string()).collect();
                    parts.push(format!("select=[{}]", exprs.join(", ")));
                }
                if let Some(p) = predicate {
                    parts.push(format!("where=[{p}]"));
                }
                format!("Calc({})", parts.join(", "))
            }
            StreamNode::Union { .. } => "Union(all=[true])".to_string(),
            StreamNode::Expand {
                projections,
                passed_through,
                ..
            } => {
                let sets: Vec<String> = projections
                    .iter()
                    .map(|p| format!("{{{}}}", join_exprs(&p[*passed_through..])))
                    .collect();
                format!("Expand(projects=[{}])", sets.join(", "))
            }
            StreamNode::Limit { skip, fetch, .. } => format!(
                "Limit(offset={skip}, fetch={})",
                fetch.map_or("unlimited".to_string(), |n| n.to_string())
            ),
            StreamNode::WindowTvf {
                function,
                time_column,
                slices_only,
                ..
            } => format!(
                "WindowTableFunction(window=[{function}], timecol=[{time_column}]{})",
                if *slices_only { ", slices" } else { "" }
            ),
            StreamNode::WindowAggregate {
                function,
                keys,
                aggregates,
                ..
            } => format!(
                "WindowAggregate(groupBy=[{}], window=[{function}], select=[{}])",
                join_exprs(keys),
                join_exprs(aggregates)
            ),
            StreamNode::WindowRank {
                partition_by,
                order_by,
                limit,
                ..
            } => format!(
                "WindowRank(rankType=[ROW_NUMBER], rankRange=[rankStart=1, rankEnd={limit}], partitionBy=[{}], orderBy=[{}])",
                join_exprs(partition_by),
                order_by
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            StreamNode::Join(join) => join.title(),
            StreamNode::OverAggregate {
                partition_by,
                order,
                frame,
                aggregates,
                ..
            } => {
                let order = match order {
                    OverOrder::Time { expr, .. } => format!("{expr} ASC"),
                    OverOrder::Values(sort) => sort
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                format!(
                    "OverAggregate(partitionBy=[{}], orderBy=[{order}], window=[{frame}], select=[{}])",
                    join_exprs(partition_by),
                    join_exprs(aggregates)
                )
            }
            StreamNode::Rank {
                input,
                partition_by,
                order_by,
                arrival,
                rank_start,
                rank_end,
                ..
            } => {
                let order = match arrival {
                    Some(last_first) => {
                        format!("$proctime {}", if *last_first { "DESC" } else { "ASC" })
                    }
                    None => order_by
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let dedup = (*rank_start, *rank_end) == (1, 1)
                    && input.changelog_mode() == ChangelogMode::InsertOnly;
                let rowtime = rowtime_order(order_by, input.schema());
                match (*arrival, rowtime) {
                    (Some(last), _) | (None, Some(last)) if dedup => format!(
                        "Deduplicate(keep=[{}], key=[{}], order=[{}])",
                        if last { "LastRow" } else { "FirstRow" },
                        join_exprs(partition_by),
                        if arrival.is_some() {
                            "PROCTIME"
                        } else {
                            "ROWTIME"
                        }
                    ),
                    _ => format!(
                        "Rank(rankType=[ROW_NUMBER], rankRange=[rankStart={rank_start}, rankEnd={rank_end}], partitionBy=[{}], orderBy=[{order}])",
                        join_exprs(partition_by)
                    ),
                }
            }
            StreamNode::GroupAggregate {
                keys, aggregates, ..
            } => format!(
                "GroupAggregate(groupBy=[{}], select=[{}])",
                join_exprs(keys),
                join_exprs(aggregates)
            ),
        }
    }

    fn inputs(&self) -> Vec<&StreamNode> {
        match self {
            StreamNode::Source { .. } => Vec::new(),
            StreamNode::Union { inputs, .. } => inputs.iter().collect(),
            // A lookup table is read by the join, not as an input stream.
            StreamNode::Join(join) if matches!(join.strategy, JoinStrategy::Lookup { .. }) => {
                vec![&join.left]
            }
            StreamNode::Join(join) => vec![&join.left, &join.right],
            StreamNode::Rank { input, .. } | StreamNode::OverAggregate { input, .. } => {
                vec![input]
            }
            StreamNode::Calc { input, .. }
            | StreamNode::Expand { input, .. }
            | StreamNode::Limit { input, .. }
            | StreamNode::WindowTvf { input, .. }
            | StreamNode::WindowAggregate { input, .. }
            | StreamNode::WindowRank { input, .. }
            | StreamNode::GroupAggregate { input, .. } => vec![input],
        }
    }

    fn fmt_indent(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        let title = self.title();
        // Flink's EXPLAIN puts the changelog mode last inside the parentheses.
        let title = title.strip_suffix(')').unwrap_or(&title);
        writeln!(
            f,
            "{pad}{title}, changelogMode=[{}])",
            self.changelog_mode()
        )?;
        self.inputs()
            .into_iter()
            .try_for_each(|i| i.fmt_indent(f, depth + 1))
    }
}

/// `FOR SYSTEM_TIME AS OF` belongs to the right input of a join only.
fn check_temporal_tables(plan: &LogicalPlan) -> Result<(), EngineError> {
    if let LogicalPlan::Join(join) = plan
        && let Some(temporal) = weir_sql::temporal_table(&join.right)
    {
        check_temporal_tables(&join.left)?;
        return check_temporal_tables(&temporal.input);
    }
    if let LogicalPlan::Extension(e) = plan
        && let Some(temporal) = e.node.as_any().downcast_ref::<TemporalTableNode>()
    {
        return Err(EngineError::Plan(format!(
            "'{} FOR SYSTEM_TIME AS OF {}' is only valid as the right side of a join",
            temporal.table, temporal.time
        )));
    }
    plan.inputs()
        .into_iter()
        .try_for_each(check_temporal_tables)
}

fn join_exprs(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a planned pipeline ends.
#[derive(Debug)]
pub enum StreamSink {
    Table {
        table: String,
        factory: Arc<dyn SinkFactory>,
    },
    Collect,
}

/// One pipeline of a job: a plan and where its rows go.
#[derive(Debug)]
pub struct StreamPlan {
    pub root: StreamNode,
    pub sink: StreamSink,
}

impl fmt::Display for StreamPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sink {
            StreamSink::Table { table, .. } => writeln!(f, "Sink(table=[{table}])")?,
            StreamSink::Collect => writeln!(f, "Collect")?,
        }
        self.root.fmt_indent(f, 1)
    }
}

/// Translates logical plans for one session state.
pub struct StreamPlanner<'a> {
    pub planner: &'a SqlPlanner,
    pub registry: &'a ConnectorRegistry,
    pub parallelism: usize,
    /// 'execution.runtime-mode' = 'batch': aggregations emit final results only.
    pub batch_mode: bool,
    /// 'table.local-time-zone': windows over TIMESTAMP_LTZ follow its wall clock.
    pub time_zone: String,
    /// 'table.exec.state.ttl': idle keys of group aggregations are forgotten.
    pub state_ttl: Option<std::time::Duration>,
    /// 'table.exec.source.idle-timeout'.
    pub idle_timeout: Option<std::time::Duration>,
}

impl StreamPlanner<'_> {
    /// Plans a query (rows to the client) or an INSERT (rows to a table).
    pub fn plan(&self, plan: &LogicalPlan) -> Result<StreamPlan, EngineError> {
        check_temporal_tables(plan)?;
        if let LogicalPlan::Dml(dml) = plan {
            if !matches!(dml.op, WriteOp::Insert(_)) {
                return Err(EngineError::Unsupported(format!("{} statements", dml.op)));
            }
            let table = dml
                .target
                .downcast_ref::<ConnectorTableSource>()
                .map(|s| Arc::clone(&s.table))
                .ok_or_else(|| {
                    EngineError::Unsupported(format!(
                        "INSERT INTO '{}', which is a view or has computed columns,",
                        dml.table_name
                    ))
                })?;
            let spec = table_spec(&table);
            let factory = self
                .registry
                .for_table(&spec)
                .and_then(|c| {
                    c.check_writable_metadata(&spec)?;
                    c.create_sink(&spec)
                })
                .map_err(|source| EngineError::Table {
                    table: table.name.clone(),
                    source,
                })?;
            let mut root = self.translate(&sink_input(&spec, &dml.input)?)?;
            if !factory.needs_update_before() {
                root.drop_update_before();
            }
            if !factory.accepts_updates()
                && let Some(producer) = root.update_producer()
            {
                return Err(EngineError::Plan(format!(
                    "Table sink '{}' doesn't support consuming update changes which is produced by node {}",
                    table.name,
                    producer.title()
                )));
            }
            return Ok(StreamPlan {
                root,
                sink: StreamSink::Table {
                    table: table.name.clone(),
                    factory,
                },
            });
        }
        Ok(StreamPlan {
            root: self.translate(plan)?,
            sink: StreamSink::Collect,
        })
    }

    fn translate(&self, plan: &LogicalPlan) -> Result<StreamNode, EngineError> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let table = scan
                    .source
                    .downcast_ref::<ConnectorTableSource>()
                    .map(|s| Arc::clone(&s.table))
                    .ok_or_else(|| {
                        EngineError::Internal(format!(
                            "scan of '{}' has no connector table",
                            scan.table_name
                        ))
                    })?;
                if !scan.filters.is_empty() {
                    return Err(EngineError::Internal(
                        "filters were pushed into a scan that does not take them".into(),
                    ));
                }
                let spec = table_spec(&table);
                let factory = self
                    .registry
                    .for_table(&spec)
                    .and_then(|c| c.create_source(&spec))
                    .map_err(|source| EngineError::Table {
                        table: table.name.clone(),
                        source,
                    })?;
                let source = StreamNode::Source {
                    table: table.name.clone(),
                    factory,
                    projection: scan.projection.clone(),
                    transforms: Vec::new(),
                    watermark: None,
                    parallelism: self.parallelism,
                    schema: Arc::clone(&scan.projected_schema),
                };
                Ok(match scan.fetch {
                    Some(fetch) => StreamNode::Limit {
                        input: Box::new(source),
                        skip: 0,
                        fetch: Some(fetch),
                        schema: Arc::clone(&scan.projected_schema),
                    },
                    None => source,
                })
            }
            LogicalPlan::Projection(p) => {
                let mut input = self.translate(&p.input)?;
                // A rank nobody reads need not be kept up to date.
                let mut readers: Vec<&Expr> = p.expr.iter().collect();
                let mut below = &mut input;
                while let StreamNode::Calc {
                    input,
                    predicate: Some(predicate),
                    projection: None,
                    ..
                } = below
                {
                    readers.push(predicate);
                    below = input;
                }
                if let StreamNode::Rank {
                    rank_number: rank_number @ RankNumber::Emitted,
                    schema,
                    ..
                } = below
                {
                    let rank = schema.field(schema.fields().len() - 1).name().clone();
                    if !readers
                        .iter()
                        .flat_map(|e| e.column_refs())
                        .any(|c| c.name == rank)
                    {
                        *rank_number = RankNumber::Unused;
                    }
                }
                Ok(match input {
                    StreamNode::Calc {
                        input,
                        predicate,
                        projection: None,
                        ..
                    } => StreamNode::Calc {
                        input,
                        predicate,
                        projection: Some(p.expr.clone()),
                        schema: Arc::clone(&p.schema),
                    },
                    other => StreamNode::Calc {
                        input: Box::new(other),
                        predicate: None,
                        projection: Some(p.expr.clone()),
                        schema: Arc::clone(&p.schema),
                    },
                })
            }
            LogicalPlan::Filter(filter) => {
                if let Some(rank) = self.window_rank(filter)? {
                    return Ok(rank);
                }
                let input = self.translate(&filter.input)?;
                // The optimizer may copy a temporal join's marker (always
                // true) onto the other side of an equality.
                let Some(predicate) = split_conjunction(&filter.predicate)
                    .into_iter()
                    .filter(|e| !weir_sql::temporal::is_temporal_marker(e))
                    .cloned()
                    .reduce(Expr::and)
                else {
                    return Ok(input);
                };
                let schema = Arc::clone(input.schema());
                Ok(StreamNode::Calc {
                    input: Box::new(input),
                    predicate: Some(predicate),
                    projection: None,
                    schema,
                })
            }
            LogicalPlan::SubqueryAlias(alias) => Ok(self
                .translate(&alias.input)?
                .with_schema(Arc::clone(&alias.schema))),
            LogicalPlan::Union(union) => Ok(StreamNode::Union {
                inputs: union
                    .inputs
                    .iter()
                    .map(|i| self.translate(i))
                    .collect::<Result<_, _>>()?,
                schema: Arc::clone(&union.schema),
            }),
            LogicalPlan::Sort(sort) => match sort.fetch {
                Some(fetch) => self.sort_top_n(sort, 0, fetch),
                None => Err(EngineError::Unsupported(
                    "ORDER BY on a stream without LIMIT".into(),
                )),
            },
            LogicalPlan::Limit(limit) => {
                let skip = match limit.get_skip_type()? {
                    SkipType::Literal(n) => n,
                    SkipType::UnsupportedExpr => {
                        return Err(EngineError::Unsupported("a non-constant OFFSET".into()));
                    }
                };
                let fetch = match limit.get_fetch_type()? {
                    FetchType::Literal(n) => n,
                    FetchType::UnsupportedExpr => {
                        return Err(EngineError::Unsupported("a non-constant LIMIT".into()));
                    }
                };
                if let (LogicalPlan::Sort(sort), Some(fetch)) = (limit.input.as_ref(), fetch) {
                    return self.sort_top_n(sort, skip, fetch);
                }
                let input = self.translate(&limit.input)?;
                if input.changelog_mode() != ChangelogMode::InsertOnly {
                    return Err(EngineError::Unsupported(
                        "LIMIT over an updating result".into(),
                    ));
                }
                let schema = Arc::clone(input.schema());
                Ok(StreamNode::Limit {
                    input: Box::new(input),
                    skip,
                    fetch,
                    schema,
                })
            }
            LogicalPlan::EmptyRelation(empty) => {
                let schema = Arc::clone(empty.schema.inner());
                let batches = if empty.produce_one_row {
                    let options = RecordBatchOptions::new().with_row_count(Some(1));
                    vec![RecordBatch::try_new_with_options(
                        Arc::clone(&schema),
                        vec![],
                        &options,
                    )?]
                } else {
                    Vec::new()
                };
                Ok(values_node(batches, Arc::clone(&empty.schema)))
            }
            LogicalPlan::Values(values) => {
                let schema: SchemaRef = Arc::clone(values.schema.inner());
                let empty = DFSchema::empty();
                let one_row = RecordBatch::try_new_with_options(
                    Arc::new(Schema::empty()),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(1)),
                )?;
                let mut batches = Vec::with_capacity(values.values.len());
                for row in &values.values {
                    let columns = row
                        .iter()
                        .zip(schema.fields())
                        .map(|(expr, field)| {
                            let value = self
                                .planner
                                .physical_expr(expr, &empty)?
                                .evaluate(&one_row)?
                                .into_array(1)?;
                            Ok(if value.data_type() == field.data_type() {
                                value
                            } else {
                                arrow::compute::cast(&value, field.data_type())?
                            })
                        })
                        .collect::<Result<Vec<_>, EngineError>>()?;
                    batches.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
                }
                let batch = arrow::compute::concat_batches(&schema, &batches)?;
                Ok(values_node(vec![batch], Arc::clone(&values.schema)))
            }
            LogicalPlan::Extension(extension) => {
                let any = extension.node.as_any();
                if let Some(node) = any.downcast_ref::<WatermarkNode>() {
                    return self.fold_watermark(node);
                }
                // Its join has seen it (`check_temporal_tables`).
                if let Some(node) = any.downcast_ref::<TemporalTableNode>() {
                    return self.translate(&node.input);
                }
                if let Some(node) = any.downcast_ref::<WindowTvfNode>() {
                    let local_time = node
                        .input
                        .schema()
                        .field_with_unqualified_name(&node.time_column)
                        .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(_, Some(_))));
                    let zone = local_time
                        .then(|| ZoneShift::parse(&self.time_zone))
                        .transpose()?;
                    return Ok(StreamNode::WindowTvf {
                        input: Box::new(self.translate(&node.input)?),
                        function: node.function,
                        time_column: node.time_column.clone(),
                        partition_by: node.partition_by.clone(),
                        proctime: node.proctime,
                        slices_only: false,
                        zone,
                        schema: Arc::clone(node.schema()),
                    });
                }
                Err(EngineError::Unsupported(format!(
                    "the plan node {}",
                    extension.node.name()
                )))
            }
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate),
            LogicalPlan::Distinct(_) => Err(EngineError::Unsupported("SELECT DISTINCT".into())),
            LogicalPlan::Join(join) => self.join(join),
            LogicalPlan::Window(window) => self.over_aggregate(window),
            other => Err(EngineError::Unsupported(format!(
                "the plan node {}",
                other.display()
            ))),
        }
    }

    /// GROUP BY: a window aggregation when the keys hold `window_start` and
    /// `window_end` of a window table function below, else an unbounded
    /// group aggregation with a changelog.
    ///
    /// GROUPING SETS, ROLLUP and CUBE group an [`expand_grouping_sets`]
    /// of the input by the keys and `__grouping_id`; window_start and
    /// window_end in every set keep it a window aggregation.
    fn aggregate(&self, aggregate: &Aggregate) -> Result<StreamNode, EngineError> {
        let input = self.translate(&aggregate.input)?;
        let (mut input, group_expr) = match aggregate.group_expr.as_slice() {
            [Expr::GroupingSet(set)] => expand_grouping_sets(set, input)?,
            plain => (input, plain.to_vec()),
        };
        let window_key = |name: &str| {
            group_expr
                .iter()
                .position(|e| matches!(e, Expr::Column(c) if c.name == name))
        };
        // Under slicing the window columns hold slice bounds, so only plain
        // window_start/window_end/window_time keys may use them.
        let slices_safe = aggregate.aggr_expr.iter().all(|e| !uses_window_columns(e))
            && group_expr
                .iter()
                .all(|e| matches!(e, Expr::Column(_)) || !uses_window_columns(e));
        let window = match (window_key(WINDOW_START), window_key(WINDOW_END)) {
            (Some(_), Some(end)) if slices_safe => mark_slices(&mut input).map(|spec| (spec, end)),
            _ => None,
        };
        let mut keys = Vec::new();
        let mut outputs = Vec::new();
        for expr in &group_expr {
            let window_output = match expr {
                Expr::Column(c) if window.is_some() => match c.name.as_str() {
                    WINDOW_START => Some(AggregateOutput::WindowStart),
                    WINDOW_END => Some(AggregateOutput::WindowEnd),
                    WINDOW_TIME => Some(AggregateOutput::WindowTime),
                    _ => None,
                },
                _ => None,
            };
            outputs.push(window_output.unwrap_or_else(|| {
                keys.push(expr.clone());
                AggregateOutput::Key(keys.len() - 1)
            }));
        }
        outputs.extend((0..aggregate.aggr_expr.len()).map(AggregateOutput::Aggregate));
        let schema = Arc::clone(&aggregate.schema);
        let aggregates = aggregate.aggr_expr.clone();
        Ok(match window {
            Some((window, end)) => {
                if input.changelog_mode() != ChangelogMode::InsertOnly {
                    return Err(EngineError::Unsupported(
                        "a window aggregation over an updating input".into(),
                    ));
                }
                // Sessions are kept per grouping key, so the partition must be among the keys.
                if let Some(column) = window.partition_by.iter().find(|p| {
                    !keys
                        .iter()
                        .any(|k| matches!(k, Expr::Column(c) if &c.name == *p))
                }) {
                    return Err(EngineError::Unsupported(format!(
                        "a SESSION window partitioned by '{column}' aggregated without grouping by it"
                    )));
                }
                if window.proctime && matches!(window.function, WindowFunction::Session { .. }) {
                    return Err(EngineError::Unsupported(
                        "SESSION windows over a processing-time attribute".into(),
                    ));
                }
                let zone = window.zone;
                let proctime = window.proctime;
                StreamNode::WindowAggregate {
                    input: Box::new(input),
                    function: window.function,
                    keys,
                    aggregates,
                    outputs,
                    slice_end: group_expr[end].clone(),
                    zone,
                    proctime,
                    schema,
                }
            }
            None => StreamNode::GroupAggregate {
                input: Box::new(input),
                keys,
                aggregates,
                outputs,
                final_only: self.batch_mode,
                schema,
            },
        })
    }

    /// `WHERE rn <= N` over `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY
    /// ...) AS rn`: a Top-N, or with `= 1` a deduplication; partitioned by
    /// window_start and window_end, a window Top-N (insert-only). Further
    /// conditions (`AND v > 0`) filter the ranked rows. `None` when no
    /// condition bounds the row number.
    fn window_rank(&self, filter: &Filter) -> Result<Option<StreamNode>, EngineError> {
        let (projection, window) = match filter.input.as_ref() {
            LogicalPlan::Window(window) => (None, window),
            LogicalPlan::Projection(p) => match p.input.as_ref() {
                LogicalPlan::Window(window) => (Some(p), window),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let [expr] = window.window_expr.as_slice() else {
            return Ok(None);
        };
        let Expr::WindowFunction(function) = expr.clone().unalias_nested().data else {
            return Ok(None);
        };
        if !function.fun.name().eq_ignore_ascii_case("row_number") {
            return Ok(None);
        }
        let number_field = window.input.schema().fields().len();
        let number = Column::from(window.schema.qualified_field(number_field));
        // The row number's name where the filter sees it.
        let seen_as = match projection {
            None => Some(number.name.clone()),
            Some(p) => p.expr.iter().zip(p.schema.fields()).find_map(|(e, f)| {
                match e.clone().unalias_nested().data {
                    Expr::Column(c) if c.name == number.name => Some(f.name().clone()),
                    _ => None,
                }
            }),
        };
        let Some(seen_as) = seen_as else {
            return Ok(None);
        };
        // Other conjuncts filter the ranked rows, as a Calc above the rank.
        let conjuncts = split_conjunction(&filter.predicate);
        let Some(limit) = conjuncts
            .iter()
            .filter_map(|c| row_number_limit(c, &seen_as))
            .min()
        else {
            return Ok(None);
        };
        let rest = conjuncts
            .into_iter()
            .filter(|c| row_number_limit(c, &seen_as).is_none())
            .cloned()
            .reduce(Expr::and);
        let rank = self.rank_of(filter, projection, window, &function.params, limit)?;
        Ok(Some(match rest {
            None => rank,
            Some(predicate) => {
                let schema = Arc::clone(rank.schema());
                StreamNode::Calc {
                    input: Box::new(rank),
                    predicate: Some(predicate),
                    projection: None,
                    schema,
                }
            }
        }))
    }

    /// The rank [`Self::window_rank`] found, keeping `limit` rows.
    fn rank_of(
        &self,
        filter: &Filter,
        projection: Option<&Projection>,
        window: &Window,
        params: &WindowFunctionParams,
        limit: usize,
    ) -> Result<StreamNode, EngineError> {
        if limit == 0 {
            // `rn < 1`: no row ever qualifies.
            return Ok(values_node(Vec::new(), Arc::clone(filter.input.schema())));
        }
        let window_end = params
            .partition_by
            .iter()
            .find(|e| matches!(e, Expr::Column(c) if c.name == WINDOW_END))
            .cloned();
        let has_start = params
            .partition_by
            .iter()
            .any(|e| matches!(e, Expr::Column(c) if c.name == WINDOW_START));
        let input = self.translate(&window.input)?;
        let (Some(window_end), true) = (window_end, has_start) else {
            let arrival = proctime_order(&params.order_by, window.input.schema());
            let rank = StreamNode::Rank {
                input: Box::new(input),
                partition_by: params.partition_by.clone(),
                order_by: params.order_by.clone(),
                arrival,
                rank_start: 1,
                rank_end: limit,
                rank_number: RankNumber::Emitted,
                update_before: true,
                schema: Arc::clone(&window.schema),
            };
            return Ok(match projection {
                None => rank,
                Some(p) => StreamNode::Calc {
                    input: Box::new(rank),
                    predicate: None,
                    projection: Some(p.expr.clone()),
                    schema: Arc::clone(&p.schema),
                },
            });
        };
        if input.changelog_mode() != ChangelogMode::InsertOnly {
            return Err(EngineError::Unsupported(
                "a window Top-N over an updating input".into(),
            ));
        }
        if window_proctime(&input) {
            // Its clock and the upstream window's would race over which rows are late.
            return Err(EngineError::Unsupported(
                "a window Top-N over processing-time windows".into(),
            ));
        }
        let rank = StreamNode::WindowRank {
            zone: window_zone(&input),
            proctime: window_proctime(&input),
            input: Box::new(input),
            partition_by: params.partition_by.clone(),
            order_by: params.order_by.clone(),
            limit,
            window_end,
            schema: Arc::clone(&window.schema),
        };
        Ok(match projection {
            None => rank,
            Some(p) => StreamNode::Calc {
                input: Box::new(rank),
                predicate: None,
                projection: Some(p.expr.clone()),
                schema: Arc::clone(&p.schema),
            },
        })
    }

    /// `ORDER BY ... LIMIT n OFFSET m` over a stream: a global Top-N whose
    /// result is a changelog.
    fn sort_top_n(
        &self,
        sort: &datafusion::logical_expr::Sort,
        skip: usize,
        fetch: usize,
    ) -> Result<StreamNode, EngineError> {
        if fetch == 0 {
            return Ok(values_node(Vec::new(), Arc::clone(sort.input.schema())));
        }
        let rank_end = skip
            .checked_add(fetch)
            .ok_or_else(|| EngineError::Unsupported("OFFSET + LIMIT beyond 2^64".into()))?;
        let input = self.translate(&sort.input)?;
        Ok(StreamNode::Rank {
            arrival: proctime_order(&sort.expr, sort.input.schema()),
            input: Box::new(input),
            partition_by: Vec::new(),
            order_by: sort.expr.clone(),
            rank_start: skip + 1,
            rank_end,
            rank_number: RankNumber::Absent,
            update_before: true,
            schema: Arc::clone(sort.input.schema()),
        })
    }

    /// Moves a table's computed columns and watermark into its source, so
    /// watermarks are generated per split right where rows are read.
    fn fold_watermark(&self, node: &WatermarkNode) -> Result<StreamNode, EngineError> {
        let input = self.translate(&node.input)?;
        let output_schema = Arc::clone(input.schema());
        let mut calcs = Vec::new();
        let mut current = input;
        let source = loop {
            match current {
                StreamNode::Calc {
                    input,
                    predicate,
                    projection,
                    schema,
                } => {
                    calcs.push((predicate, projection, schema, Arc::clone(input.schema())));
                    current = *input;
                }
                source @ StreamNode::Source { .. } => break source,
                _ => {
                    return Err(EngineError::Internal(
                        "a WATERMARK must sit on its table's source; the plan put something else in between".into(),
                    ));
                }
            }
        };
        let StreamNode::Source {
            table,
            factory,
            projection,
            mut transforms,
            parallelism,
            ..
        } = source
        else {
            return Err(EngineError::Internal(
                "expected a source under the watermark".into(),
            ));
        };
        for (predicate, projection, schema, input_schema) in calcs.into_iter().rev() {
            transforms.push(self.compile_calc(
                predicate.as_ref(),
                projection.as_deref(),
                &schema,
                &input_schema,
            )?);
        }
        let expr = self
            .planner
            .physical_expr(&node.expr, node.input.schema())?;
        Ok(StreamNode::Source {
            table,
            factory,
            projection,
            transforms,
            watermark: Some(WatermarkStrategy::new(expr, node.expr.to_string())),
            parallelism,
            schema: output_schema,
        })
    }

    fn compile_calc(
        &self,
        predicate: Option<&Expr>,
        projection: Option<&[Expr]>,
        schema: &DFSchemaRef,
        input_schema: &DFSchema,
    ) -> Result<Calc, EngineError> {
        let predicate = predicate
            .map(|p| self.planner.physical_expr(p, input_schema))
            .transpose()?;
        let projection = match projection {
            Some(exprs) => exprs
                .iter()
                .map(|e| self.planner.physical_expr(e, input_schema))
                .collect::<Result<Vec<_>, _>>()?,
            None => input_schema
                .columns()
                .into_iter()
                .map(|c| self.planner.physical_expr(&Expr::Column(c), input_schema))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(Calc::try_new(
            input_schema.as_arrow(),
            predicate,
            projection,
            Arc::clone(schema.inner()),
        )?)
    }

    /// Builds one job from several pipelines (an INSERT, a statement set, or a query).
    pub fn job_graph(&self, name: String, plans: Vec<StreamPlan>) -> Result<JobGraph, EngineError> {
        let mut builder = JobGraphBuilder {
            planner: self,
            vertices: Vec::new(),
        };
        for plan in plans {
            let open = builder.build(plan.root)?;
            let output = match plan.sink {
                StreamSink::Table { table, factory } => {
                    VertexOutput::Sink(SinkSpec { table, factory })
                }
                StreamSink::Collect => VertexOutput::Collect,
            };
            builder.close(open, output);
        }
        Ok(JobGraph {
            name,
            vertices: builder.vertices,
            max_parallelism: MAX_PARALLELISM,
            checkpointing: None,
        })
    }
}

/// `Some(descending)` when rows are ordered by a processing-time attribute
/// alone: by arrival.
fn proctime_order(order_by: &[SortExpr], schema: &DFSchema) -> Option<bool> {
    let [sort] = order_by else {
        return None;
    };
    let Expr::Column(column) = &sort.expr else {
        return None;
    };
    let (_, field) = schema.qualified_field_from_column(column).ok()?;
    field
        .metadata()
        .get(weir_sql::window_tvf::TIME_ATTRIBUTE)
        .is_some_and(|v| v == weir_sql::window_tvf::PROCTIME)
        .then_some(!sort.asc)
}

/// `Some(descending)` when rows are ordered by an event-time attribute
/// alone.
pub(super) fn rowtime_order(order_by: &[SortExpr], schema: &DFSchema) -> Option<bool> {
    let [sort] = order_by else {
        return None;
    };
    let Expr::Column(column) = &sort.expr else {
        return None;
    };
    let (_, field) = schema.qualified_field_from_column(column).ok()?;
    weir_sql::window_tvf::is_rowtime(field).then_some(!sort.asc)
}

/// N of `rn <= N`, `rn < N + 1` or `rn = 1` (either side).
fn row_number_limit(predicate: &Expr, row_number: &str) -> Option<usize> {
    let Expr::BinaryExpr(binary) = predicate else {
        return None;
    };
    let (column, op, literal) = match (binary.left.as_ref(), binary.right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => (c, binary.op, v),
        (Expr::Literal(v, _), Expr::Column(c)) => (c, binary.op.swap()?, v),
        _ => return None,
    };
    if column.name != row_number {
        return None;
    }
    let ScalarValue::Int64(Some(n)) = literal.cast_to(&DataType::Int64).ok()? else {
        return None;
    };
    let n = usize::try_from(n).ok()?;
    match op {
        Operator::LtEq => Some(n),
        Operator::Lt => n.checked_sub(1),
        Operator::Eq if n == 1 => Some(1),
        _ => None,
    }
}

/// GROUPING SETS, ROLLUP and CUBE as a plain grouping, as Flink plans them:
/// an Expand emits each row once per grouping set, the keys outside the
/// set NULL and `__grouping_id` numbering the set as DataFusion does (a bit
/// per key, set when the key is NULL, the first key highest; repeats of a
/// set counted above those bits), and the aggregation groups by all keys
/// and the id. A key in every set is grouped by as it is, so window_start
/// and window_end stay window keys; the others become columns of the
/// Expand, beside the input's columns the aggregate calls read.
fn expand_grouping_sets(
    set: &GroupingSet,
    input: StreamNode,
) -> Result<(StreamNode, Vec<Expr>), EngineError> {
    let keys: Vec<Expr> = set.distinct_expr().into_iter().cloned().collect();
    // Each row is copied once per set: DataFusion's limit keeps that sane.
    const MAX_SETS: usize = 4096;
    let (set_count, clause) = match set {
        GroupingSet::Rollup(exprs) => (exprs.len() + 1, "ROLLUP"),
        GroupingSet::Cube(_) => (
            1usize.checked_shl(keys.len() as u32).unwrap_or(usize::MAX),
            "CUBE",
        ),
        GroupingSet::GroupingSets(sets) => (sets.len(), "GROUPING SETS"),
    };
    if set_count > MAX_SETS {
        return Err(EngineError::Plan(format!(
            "{clause} over {} keys makes more than {MAX_SETS} grouping sets",
            keys.len()
        )));
    }
    // For each set, which keys it leaves NULL.
    let nulls: Vec<Vec<bool>> = match set {
        GroupingSet::Rollup(exprs) => (0..=exprs.len())
            .rev()
            .map(|len| keys.iter().map(|k| !exprs[..len].contains(k)).collect())
            .collect(),
        GroupingSet::Cube(_) => (0..1usize << keys.len())
            .map(|mask| (0..keys.len()).map(|i| mask & (1 << i) != 0).collect())
            .collect(),
        GroupingSet::GroupingSets(sets) => sets
            .iter()
            .map(|set| keys.iter().map(|k| !set.contains(k)).collect())
            .collect(),
    };
    let mut repeats: std::collections::HashMap<&[bool], usize> = Default::default();
    let ordinals: Vec<usize> = nulls
        .iter()
        .map(|n| {
            let seen = repeats.entry(n.as_slice()).or_default();
            *seen += 1;
            *seen - 1
        })
        .collect();
    let max_ordinal = ordinals.iter().copied().max().unwrap_or(0);
    // A bit per key, then the repeat count: all in one u64, as in DataFusion.
    let ordinal_bits = (usize::BITS - max_ordinal.leading_zeros()) as usize;
    if keys.len() + ordinal_bits > 64 {
        return Err(EngineError::Plan(format!(
            "GROUPING SETS over {} keys with a set repeated {} times do not fit a 64-bit grouping id",
            keys.len(),
            max_ordinal + 1
        )));
    }
    let id_type = Aggregate::grouping_id_type(keys.len(), max_ordinal);
    let input_schema = Arc::clone(input.schema());
    let mut fields: Vec<(Option<TableReference>, Arc<Field>)> = input_schema
        .iter()
        .map(|(q, f)| (q.cloned(), Arc::clone(f)))
        .collect();
    let passed_through: Vec<Expr> = input_schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    // The key each position groups by, and the Expand column of a key some set leaves out.
    let mut group_expr = Vec::with_capacity(keys.len() + 1);
    let mut nullable_keys = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if nulls.iter().all(|n| !n[i]) {
            group_expr.push(key.clone());
            continue;
        }
        let name = format!("__grouping_key_{i}");
        let data_type = key.get_type(&input_schema)?;
        fields.push((None, Arc::new(Field::new(&name, data_type.clone(), true))));
        group_expr.push(Expr::Column(Column::from_name(&name)));
        nullable_keys.push((i, name, ScalarValue::try_from(&data_type)?));
    }
    fields.push((
        None,
        Arc::new(Field::new(
            Aggregate::INTERNAL_GROUPING_ID,
            id_type.clone(),
            false,
        )),
    ));
    group_expr.push(Expr::Column(Column::from_name(
        Aggregate::INTERNAL_GROUPING_ID,
    )));
    let projections = nulls
        .iter()
        .zip(&ordinals)
        .map(|(null, ordinal)| {
            let mut projection = passed_through.clone();
            for (i, name, null_value) in &nullable_keys {
                let value = if null[*i] {
                    Expr::Literal(null_value.clone(), None)
                } else {
                    keys[*i].clone()
                };
                projection.push(value.alias(name));
            }
            let id = null
                .iter()
                .fold(0u64, |id, is_null| (id << 1) | u64::from(*is_null))
                | ((*ordinal as u64) << keys.len());
            let id = ScalarValue::UInt64(Some(id)).cast_to(&id_type)?;
            projection.push(Expr::Literal(id, None).alias(Aggregate::INTERNAL_GROUPING_ID));
            Ok(projection)
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let schema = DFSchema::new_with_metadata(fields, input_schema.metadata().clone())?;
    let expand = StreamNode::Expand {
        input: Box::new(input),
        projections,
        passed_through: passed_through.len(),
        schema: Arc::new(schema),
    };
    Ok((expand, group_expr))
}

/// The session time zone of the windows an input's rows come from, if they
/// are windows over TIMESTAMP_LTZ.
fn window_zone(node: &StreamNode) -> Option<ZoneShift> {
    match node {
        StreamNode::WindowTvf { zone, .. }
        | StreamNode::WindowAggregate { zone, .. }
        | StreamNode::WindowRank { zone, .. } => *zone,
        other => other.inputs().into_iter().find_map(window_zone),
    }
}

/// Whether an input's rows come from processing-time windows.
fn window_proctime(node: &StreamNode) -> bool {
    match node {
        StreamNode::WindowTvf { proctime, .. }
        | StreamNode::WindowAggregate { proctime, .. }
        | StreamNode::WindowRank { proctime, .. } => *proctime,
        other => other.inputs().into_iter().any(window_proctime),
    }
}

fn grouping_partitioning(grouping: &Grouping) -> Partitioning {
    if grouping.keys.is_empty() {
        Partitioning::Global
    } else {
        Partitioning::Hash(grouping.keys.clone())
    }
}

fn values_node(batches: Vec<RecordBatch>, schema: DFSchemaRef) -> StreamNode {
    StreamNode::Source {
        table: "Values".to_string(),
        factory: Arc::new(ValuesSource::new(batches)),
        projection: None,
        transforms: Vec::new(),
        watermark: None,
        parallelism: 1,
        schema,
    }
}

/// The window table function a window aggregation runs over.
struct MarkedWindow {
    function: WindowFunction,
    zone: Option<ZoneShift>,
    partition_by: Vec<String>,
    proctime: bool,
}

/// Finds the window table function under a window aggregation, through
/// filters and projections that pass the window columns on unchanged, and
/// switches it to slice mode. `None` when there is none or when something
/// in between computes with the window columns (then the rows are expanded
/// into their windows and aggregated without the window's help).
fn is_window_column(c: &Column) -> bool {
    [WINDOW_START, WINDOW_END, WINDOW_TIME].contains(&c.name.as_str())
}

fn uses_window_columns(e: &Expr) -> bool {
    e.column_refs().into_iter().any(is_window_column)
}

/// Whether a projected expression leaves the window columns as they are.
fn passes_through(e: &Expr) -> bool {
    match e {
        Expr::Column(_) => true,
        Expr::Alias(alias) => match alias.expr.as_ref() {
            Expr::Column(c) if is_window_column(c) => c.name == alias.name,
            other => !uses_window_columns(other),
        },
        other => !uses_window_columns(other),
    }
}

fn mark_slices(node: &mut StreamNode) -> Option<MarkedWindow> {
    match node {
        StreamNode::WindowTvf {
            function,
            slices_only,
            zone,
            partition_by,
            proctime,
            ..
        } => {
            *slices_only = true;
            Some(MarkedWindow {
                function: *function,
                zone: *zone,
                partition_by: partition_by.clone(),
                proctime: *proctime,
            })
        }
        StreamNode::Calc {
            input,
            predicate,
            projection,
            ..
        } => {
            if predicate.as_ref().is_some_and(|p| uses_window_columns(p)) {
                return None;
            }
            if projection
                .as_ref()
                .is_some_and(|p| !p.iter().all(passes_through))
            {
                return None;
            }
            mark_slices(input)
        }
        StreamNode::Expand {
            input, projections, ..
        } => {
            if !projections.iter().flatten().all(passes_through) {
                return None;
            }
            mark_slices(input)
        }
        _ => None,
    }
}

/// An INSERT's rows in the order its sink takes them
/// ([`TableSpec::write_schema`]): the INSERT lists the persisted metadata
/// columns where they are declared, the sink wants them after the physical ones.
fn sink_input(spec: &TableSpec, input: &LogicalPlan) -> Result<LogicalPlan, EngineError> {
    let wanted = spec.write_schema();
    let given = input.schema();
    let in_order = wanted.fields().len() == given.fields().len()
        && wanted
            .fields()
            .iter()
            .zip(given.fields())
            .all(|(w, g)| w.name() == g.name());
    if in_order {
        return Ok(input.clone());
    }
    let columns = wanted
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::from_name(f.name())));
    Ok(LogicalPlanBuilder::from(input.clone())
        .project(columns)?
        .build()?)
}

pub(crate) fn table_spec(table: &CatalogTable) -> TableSpec {
    TableSpec {
        name: table.name.clone(),
        schema: Arc::clone(&table.physical_schema),
        metadata: table
            .metadata_fields()
            .into_iter()
            .map(|m| weir_connector::MetadataColumn {
                name: m.name,
                key: m.key,
                data_type: m.field.data_type().clone(),
                is_virtual: m.is_virtual,
            })
            .collect(),
        primary_key: table.primary_key.clone(),
        partition_keys: table.partition_keys.clone(),
        options: weir_connector::TableOptions::new(table.options.clone()),
    }
}

/// A vertex still open for chaining.
struct OpenVertex {
    parallelism: usize,
    input: VertexInput,
    operators: Vec<Arc<dyn OperatorFactory>>,
}

struct JobGraphBuilder<'p, 'a> {
    planner: &'p StreamPlanner<'a>,
    vertices: Vec<JobVertex>,
}

impl JobGraphBuilder<'_, '_> {
    fn close(&mut self, open: OpenVertex, output: VertexOutput) -> VertexId {
        let id = VertexId(self.vertices.len());
        self.vertices.push(JobVertex {
            id,
            parallelism: open.parallelism,
            input: open.input,
            operators: open.operators,
            output,
        });
        id
    }

    /// Starts a new vertex of `parallelism` reading from `upstream`.
    fn exchange(
        &mut self,
        upstream: Vec<OpenVertex>,
        parallelism: usize,
        partitioning: impl Fn(usize) -> Partitioning,
    ) -> OpenVertex {
        let edges = upstream
            .into_iter()
            .map(|open| {
                let p = open.parallelism;
                let from = self.close(open, VertexOutput::Downstream);
                let partitioning = match partitioning(p) {
                    Partitioning::Forward if p != parallelism => Partitioning::Rebalance,
                    other => other,
                };
                JobEdge {
                    from,
                    partitioning,
                    input: 0,
                }
            })
            .collect();
        OpenVertex {
            parallelism,
            input: VertexInput::Edges(edges),
            operators: Vec::new(),
        }
    }

    fn sort_exprs(
        &self,
        order_by: &[SortExpr],
        schema: &DFSchema,
    ) -> Result<Vec<PhysicalSortExpr>, EngineError> {
        order_by
            .iter()
            .map(|s| {
                Ok(PhysicalSortExpr {
                    expr: self.planner.planner.physical_expr(&s.expr, schema)?,
                    options: SortOptions {
                        descending: !s.asc,
                        nulls_first: s.nulls_first,
                    },
                })
            })
            .collect()
    }

    /// Starts a vertex whose inputs 0 and 1 are the two given vertices.
    fn join_exchange(
        &mut self,
        inputs: [(OpenVertex, Partitioning); 2],
        parallelism: usize,
    ) -> OpenVertex {
        let edges = inputs
            .into_iter()
            .enumerate()
            .map(|(input, (open, partitioning))| JobEdge {
                from: self.close(open, VertexOutput::Downstream),
                partitioning,
                input,
            })
            .collect();
        OpenVertex {
            parallelism,
            input: VertexInput::Edges(edges),
            operators: Vec::new(),
        }
    }

    /// Compiles grouping keys and aggregate calls over `input_schema`.
    fn aggregation(
        &self,
        keys: &[Expr],
        aggregates: &[Expr],
        input_schema: &DFSchema,
    ) -> Result<(Grouping, Vec<AggregateCall>), EngineError> {
        let planner = self.planner.planner;
        let keys = keys
            .iter()
            .map(|k| planner.physical_expr(k, input_schema))
            .collect::<Result<Vec<_>, _>>()?;
        let key_fields = keys
            .iter()
            .map(|k| k.return_field(input_schema.as_arrow()))
            .collect::<Result<Vec<_>, _>>()?;
        let calls = aggregates
            .iter()
            .map(|a| {
                let lowered = planner.aggregate_expr(a, input_schema)?;
                Ok(AggregateCall::try_new(
                    lowered.aggregate,
                    lowered.filter,
                    input_schema.as_arrow(),
                )?)
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok((
            Grouping {
                keys,
                key_schema: Arc::new(Schema::new(key_fields)),
            },
            calls,
        ))
    }

    /// Starts a vertex at the planner's parallelism fed by `partitioning`;
    /// without keys everything goes to one subtask.
    fn keyed_exchange(&mut self, upstream: OpenVertex, partitioning: Partitioning) -> OpenVertex {
        let parallelism = match partitioning {
            Partitioning::Global => 1,
            _ => self.planner.parallelism,
        };
        self.exchange(vec![upstream], parallelism, move |_| partitioning.clone())
    }

    /// How a lookup join derives its right rows from the table's physical
    /// columns: the scan's projection, then computed columns, filters and
    /// projections.
    fn lookup_rows(
        &self,
        node: StreamNode,
    ) -> Result<(Option<Vec<usize>>, Vec<Calc>), EngineError> {
        match node {
            StreamNode::Source {
                projection,
                transforms,
                ..
            } => Ok((projection, transforms)),
            StreamNode::Calc {
                input,
                predicate,
                projection,
                schema,
            } => {
                let input_schema = Arc::clone(input.schema());
                let (columns, mut calcs) = self.lookup_rows(*input)?;
                calcs.push(self.planner.compile_calc(
                    predicate.as_ref(),
                    projection.as_deref(),
                    &schema,
                    &input_schema,
                )?);
                Ok((columns, calcs))
            }
            other => Err(EngineError::Unsupported(format!(
                "a lookup join against {} (only a table, filtered or projected, can be looked up)",
                other.title()
            ))),
        }
    }

    fn build(&mut self, node: StreamNode) -> Result<OpenVertex, EngineError> {
        match node {
            StreamNode::Source {
                table,
                factory,
                projection,
                transforms,
                watermark,
                parallelism,
                ..
            } => Ok(OpenVertex {
                parallelism,
                input: VertexInput::Source(SourceSpec {
                    table,
                    factory,
                    projection,
                    transforms,
                    watermark,
                    idle_timeout: self.planner.idle_timeout,
                }),
                operators: Vec::new(),
            }),
            StreamNode::Calc {
                input,
                predicate,
                projection,
                schema,
            } => {
                let input_schema = Arc::clone(input.schema());
                let mut calc = self.planner.compile_calc(
                    predicate.as_ref(),
                    projection.as_deref(),
                    &schema,
                    &input_schema,
                )?;
                // A Calc under a Calc is built here, so the lower one can
                // hand the upper one the calls its filter already made.
                let (mut open, lower) = match *input {
                    StreamNode::Calc {
                        input: below,
                        predicate,
                        projection,
                        schema,
                    } => {
                        let below_schema = Arc::clone(below.schema());
                        let mut lower = self.planner.compile_calc(
                            predicate.as_ref(),
                            projection.as_deref(),
                            &schema,
                            &below_schema,
                        )?;
                        lower.share_with(&mut calc)?;
                        (self.build(*below)?, Some(lower))
                    }
                    other => (self.build(other)?, None),
                };
                if let Some(lower) = lower {
                    open.operators.push(Arc::new(CloningFactory(lower)));
                }
                open.operators.push(Arc::new(CloningFactory(calc)));
                Ok(open)
            }
            StreamNode::Expand {
                input,
                projections,
                schema,
                ..
            } => {
                let input_schema = Arc::clone(input.schema());
                let projections = projections
                    .iter()
                    .map(|p| {
                        self.planner
                            .compile_calc(None, Some(p), &schema, &input_schema)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut open = self.build(*input)?;
                open.operators
                    .push(Arc::new(CloningFactory(Expand::try_new(projections)?)));
                Ok(open)
            }
            StreamNode::Union { inputs, .. } => {
                let parallelism = self.planner.parallelism;
                let upstream = inputs
                    .into_iter()
                    .map(|i| self.build(i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(self.exchange(upstream, parallelism, |_| Partitioning::Forward))
            }
            StreamNode::WindowTvf {
                input,
                function,
                time_column,
                slices_only,
                zone,
                proctime,
                schema,
                ..
            } => {
                let input_schema = Arc::clone(input.schema());
                let time = self
                    .planner
                    .planner
                    .physical_expr(&Expr::Column(Column::from_name(time_column)), &input_schema)?;
                let assigner = WindowAssigner::new(
                    function,
                    time,
                    slices_only,
                    Arc::clone(schema.inner()),
                    zone,
                    TimeDomain::processing(proctime),
                )?;
                let mut open = self.build(*input)?;
                open.operators.push(Arc::new(CloningFactory(assigner)));
                Ok(open)
            }
            StreamNode::WindowAggregate {
                input,
                function,
                keys,
                aggregates,
                outputs,
                slice_end,
                zone,
                proctime,
                schema,
            } => {
                let input_schema = Arc::clone(input.schema());
                let (grouping, calls) = self.aggregation(&keys, &aggregates, &input_schema)?;
                let slice_end = self
                    .planner
                    .planner
                    .physical_expr(&slice_end, &input_schema)?;
                let partitioning = grouping_partitioning(&grouping);
                let upstream = self.build(*input)?;
                let mut open = self.keyed_exchange(upstream, partitioning);
                let output_schema = Arc::clone(schema.inner());
                let factory: Arc<dyn OperatorFactory> = match function {
                    WindowFunction::Sliced(window) => {
                        Arc::new(WindowAggregateFactory(Arc::new(WindowAggregateSpec {
                            window,
                            grouping,
                            slice_end,
                            calls,
                            outputs,
                            output_schema,
                            zone,
                            time: TimeDomain::processing(proctime),
                        })))
                    }
                    WindowFunction::Session { gap } => Arc::new(SessionWindowAggregateFactory(
                        Arc::new(SessionAggregateSpec {
                            gap,
                            grouping,
                            window_end: slice_end,
                            calls,
                            outputs,
                            output_schema,
                            zone,
                        }),
                    )),
                };
                open.operators.push(factory);
                Ok(open)
            }
            StreamNode::WindowRank {
                input,
                partition_by,
                order_by,
                limit,
                window_end,
                zone,
                proctime,
                schema,
            } => {
                let input_schema = Arc::clone(input.schema());
                let planner = self.planner.planner;
                let partition_by = partition_by
                    .iter()
                    .map(|e| planner.physical_expr(e, &input_schema))
                    .collect::<Result<Vec<_>, _>>()?;
                let order_by = self.sort_exprs(&order_by, &input_schema)?;
                let window_end = planner.physical_expr(&window_end, &input_schema)?;
                let upstream = self.build(*input)?;
                let mut open =
                    self.keyed_exchange(upstream, Partitioning::Hash(partition_by.clone()));
                let spec = WindowRankSpec {
                    partition_by,
                    order_by,
                    limit,
                    window_end,
                    output_schema: Arc::clone(schema.inner()),
                    zone,
                    time: TimeDomain::processing(proctime),
                };
                open.operators
                    .push(Arc::new(WindowRankFactory(Arc::new(spec))));
                Ok(open)
            }
            StreamNode::GroupAggregate {
                input,
                keys,
                aggregates,
                outputs,
                final_only,
                schema,
            } => {
                let input_schema = Arc::clone(input.schema());
                let retracting_input = input.changelog_mode() != ChangelogMode::InsertOnly;
                let (grouping, calls) = self.aggregation(&keys, &aggregates, &input_schema)?;
                let partitioning = grouping_partitioning(&grouping);
                let upstream = self.build(*input)?;
                let mut open = self.keyed_exchange(upstream, partitioning);
                let spec = GroupAggregateSpec {
                    grouping,
                    calls,
                    outputs,
                    output_schema: Arc::clone(schema.inner()),
                    retracting_input,
                    final_only,
                    state_ttl: self.planner.state_ttl,
                };
                open.operators
                    .push(Arc::new(GroupAggregateFactory(Arc::new(spec))));
                Ok(open)
            }
            StreamNode::Join(join) => {
                let condition = self.planner.join_condition(&join)?;
                if let JoinStrategy::Lookup { table, lookup } = join.strategy {
                    // The dimension table is read by the join itself, in
                    // each subtask of the left input's vertex.
                    let (projection, calcs) = self.lookup_rows(*join.right)?;
                    let mut open = self.build(*join.left)?;
                    open.operators
                        .push(Arc::new(LookupJoinFactory(Arc::new(LookupJoinSpec {
                            condition,
                            table_name: table,
                            table: lookup,
                            projection,
                            calcs,
                        }))));
                    return Ok(open);
                }
                // NOT IN looks at the whole right side (does it hold a NULL?
                // is it empty?), so it runs in one subtask.
                let (left_partitioning, right_partitioning, parallelism) =
                    if condition.left_keys.is_empty() || join.null_aware {
                        (Partitioning::Global, Partitioning::Global, 1)
                    } else {
                        (
                            Partitioning::Hash(condition.left_keys.clone()),
                            Partitioning::Hash(condition.right_keys.clone()),
                            self.planner.parallelism,
                        )
                    };
                let updating = [
                    join.left.changelog_mode() != ChangelogMode::InsertOnly,
                    join.right.changelog_mode() != ChangelogMode::InsertOnly,
                ];
                let planner = self.planner.planner;
                let (left_schema, right_schema) = (
                    Arc::clone(join.left.schema()),
                    Arc::clone(join.right.schema()),
                );
                let factory: Arc<dyn OperatorFactory> = match join.strategy {
                    JoinStrategy::Regular => {
                        Arc::new(StreamingJoinFactory(Arc::new(StreamingJoinSpec {
                            condition,
                            updating,
                            null_aware: join.null_aware,
                            // NOT IN's NULL and emptiness counts must not expire.
                            state_ttl: self.planner.state_ttl.filter(|_| !join.null_aware),
                        })))
                    }
                    JoinStrategy::Interval {
                        left_time,
                        right_time,
                        lower,
                        upper,
                    } => Arc::new(IntervalJoinFactory(Arc::new(IntervalJoinSpec {
                        condition,
                        left_time: planner.physical_expr(&left_time, &left_schema)?,
                        right_time: planner.physical_expr(&right_time, &right_schema)?,
                        lower,
                        upper,
                    }))),
                    JoinStrategy::Window {
                        left_end,
                        right_end,
                        zone,
                        proctime,
                        ..
                    } => Arc::new(WindowJoinFactory(Arc::new(WindowJoinSpec {
                        condition,
                        null_aware: join.null_aware,
                        window_ends: Some([
                            planner.physical_expr(&left_end, &left_schema)?,
                            planner.physical_expr(&right_end, &right_schema)?,
                        ]),
                        zone,
                        time: TimeDomain::processing(proctime),
                    }))),
                    JoinStrategy::Final => Arc::new(WindowJoinFactory(Arc::new(WindowJoinSpec {
                        condition,
                        null_aware: join.null_aware,
                        window_ends: None,
                        zone: None,
                        time: TimeDomain::EventTime,
                    }))),
                    JoinStrategy::Temporal {
                        left_time,
                        right_time,
                    } => Arc::new(TemporalJoinFactory(Arc::new(TemporalJoinSpec {
                        condition,
                        left_time: planner.physical_expr(&left_time, &left_schema)?,
                        right_time: planner.physical_expr(&right_time, &right_schema)?,
                    }))),
                    JoinStrategy::Lookup { .. } => {
                        return Err(EngineError::Internal(
                            "a lookup join reached the two-input join path".into(),
                        ));
                    }
                };
                let left = self.build(*join.left)?;
                let right = self.build(*join.right)?;
                let mut open = self.join_exchange(
                    [(left, left_partitioning), (right, right_partitioning)],
                    parallelism,
                );
                open.operators.push(factory);
                Ok(open)
            }
            StreamNode::OverAggregate {
                input,
                partition_by,
                order,
                frame,
                aggregates,
                schema,
            } => {
                let input_schema = Arc::clone(input.schema());
                let (grouping, calls) =
                    self.aggregation(&partition_by, &aggregates, &input_schema)?;
                let bounded = !matches!(frame, OverFrame::Rows(None) | OverFrame::Range(None));
                for call in &calls {
                    if call.filter.is_some() {
                        return Err(EngineError::Unsupported(
                            "FILTER in an OVER aggregation".into(),
                        ));
                    }
                    // Checked now rather than when the frame first slides, hours in.
                    if bounded && !call.accumulator(true)?.supports_retract_batch() {
                        return Err(EngineError::Unsupported(format!(
                            "{} over a bounded OVER frame (it cannot drop rows leaving the frame; use UNBOUNDED PRECEDING)",
                            call.name()
                        )));
                    }
                }
                let partitioning = grouping_partitioning(&grouping);
                let factory: Arc<dyn OperatorFactory> = match order {
                    OverOrder::Time { expr, proctime } => {
                        let spec = OverAggregateSpec {
                            partition_by: grouping.keys,
                            partition_schema: grouping.key_schema,
                            order_time: self.planner.planner.physical_expr(&expr, &input_schema)?,
                            frame,
                            calls,
                            input_schema: Arc::clone(input_schema.inner()),
                            output_schema: Arc::clone(schema.inner()),
                            time: TimeDomain::processing(proctime),
                        };
                        Arc::new(OverAggregateFactory(Arc::new(spec)))
                    }
                    OverOrder::Values(sort) => {
                        let spec = UpdatingOverSpec {
                            partition_by: grouping.keys,
                            partition_schema: grouping.key_schema,
                            order_by: self.sort_exprs(&sort, &input_schema)?,
                            frame,
                            calls,
                            input_schema: Arc::clone(input_schema.inner()),
                            output_schema: Arc::clone(schema.inner()),
                        };
                        Arc::new(UpdatingOverAggregateFactory(Arc::new(spec)))
                    }
                };
                let upstream = self.build(*input)?;
                let mut open = self.keyed_exchange(upstream, partitioning);
                open.operators.push(factory);
                Ok(open)
            }
            StreamNode::Rank {
                input,
                partition_by,
                order_by,
                arrival,
                rank_start,
                rank_end,
                rank_number,
                update_before,
                schema,
            } => {
                let input_schema = Arc::clone(input.schema());
                let updating_input = input.changelog_mode() != ChangelogMode::InsertOnly;
                let deduplicate_by_rowtime = !updating_input
                    && (rank_start, rank_end) == (1, 1)
                    && rowtime_order(&order_by, &input_schema).is_some();
                let planner = self.planner.planner;
                let partition_by = partition_by
                    .iter()
                    .map(|e| planner.physical_expr(e, &input_schema))
                    .collect::<Result<Vec<_>, _>>()?;
                let partition_fields = partition_by
                    .iter()
                    .map(|k| k.return_field(input_schema.as_arrow()))
                    .collect::<Result<Vec<_>, _>>()?;
                let order = match arrival {
                    Some(last_first) => RankOrder::Arrival { last_first },
                    None => RankOrder::Values(self.sort_exprs(&order_by, &input_schema)?),
                };
                let partitioning = if partition_by.is_empty() {
                    Partitioning::Global
                } else {
                    Partitioning::Hash(partition_by.clone())
                };
                let upstream = self.build(*input)?;
                let mut open = self.keyed_exchange(upstream, partitioning);
                let spec = RankSpec {
                    partition_by,
                    partition_schema: Arc::new(Schema::new(partition_fields)),
                    order,
                    rank_start,
                    rank_end,
                    rank_number,
                    updating_input,
                    deduplicate_by_rowtime,
                    update_before,
                    input_schema: Arc::clone(input_schema.inner()),
                    output_schema: Arc::clone(schema.inner()),
                };
                open.operators.push(Arc::new(RankFactory(Arc::new(spec))));
                Ok(open)
            }
            StreamNode::Limit {
                input, skip, fetch, ..
            } => {
                let upstream = self.build(*input)?;
                let mut open = if upstream.parallelism == 1 {
                    upstream
                } else {
                    self.exchange(vec![upstream], 1, |_| Partitioning::Global)
                };
                open.operators
                    .push(Arc::new(CloningFactory(Limit::new(skip, fetch))));
                Ok(open)
            }
        }
    }
}
