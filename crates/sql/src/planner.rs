//! Turns statements into DataFusion logical plans.
//!
//! [`SqlPlanner`] owns a DataFusion `SessionState` (functions, the optimizer,
//! configuration) and plans against the session's [`Catalog`] through
//! [`PlanningContext`], a `ContextProvider` that resolves names straight from
//! the catalog:
//!
//! - a table of physical columns only is a [`ConnectorTableSource`];
//! - a table with computed columns or a watermark is a
//!   [`DerivedTableSource`] whose plan is `scan -> projection (computed
//!   columns) -> WatermarkNode`, inlined by DataFusion where it is used;
//! - a view is a [`DerivedTableSource`] over its planned query;
//! - a window table function (`TABLE(TUMBLE(...))`) is a
//!   [`DerivedTableSource`] whose plan is a [`WindowTvfNode`] over its table.
//!
//! The optimized logical plan then goes to the engine's streaming planner.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::metadata::FieldMetadata;
use datafusion::common::{Column, DFSchema, DFSchemaRef, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner};
use datafusion::logical_expr::{
    AggregateUDF, Expr, Extension, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableSource,
    UserDefinedLogicalNodeCore, WindowUDF,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::{LoweredAggregate, LoweredAggregateBuilder};
use datafusion::prelude::SessionConfig;
use datafusion::sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use sqlparser::ast::{Query, Statement};
use weir_common::Configuration;

use crate::SqlError;
use crate::catalog::{Catalog, CatalogTable, CatalogView};
use crate::error::Position;
use crate::parser::ColumnKind;
use crate::temporal::{TemporalReference, TemporalTableNode};
use crate::window_tvf::{WindowCall, WindowTvfNode};

/// Plans SQL against a catalog; built from the session's configuration.
pub struct SqlPlanner {
    state: SessionState,
}

impl fmt::Debug for SqlPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlPlanner").finish_non_exhaustive()
    }
}

impl SqlPlanner {
    pub fn new(configuration: &Configuration) -> Result<Self, SqlError> {
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
            .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
            .set_bool("datafusion.sql_parser.collect_spans", true)
            // Flink reads 2.5 as DECIMAL(2, 1), not DOUBLE.
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
            .set_bool(
                "datafusion.execution.parquet.schema_force_view_types",
                false,
            );
        config = config.set_str(
            "datafusion.execution.time_zone",
            configuration.local_time_zone(),
        );
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        // Splitting COUNT(DISTINCT x) into two aggregations would turn a
        // window aggregation into an unbounded one; streaming keeps DISTINCT
        // inside the accumulator.
        let rules = state
            .optimizer()
            .rules
            .iter()
            .filter(|r| r.name() != "single_distinct_aggregation_to_group_by")
            .cloned()
            .collect();
        state = SessionStateBuilder::new_from_existing(state)
            .with_optimizer_rules(rules)
            .build();
        state.add_analyzer_rule(Arc::new(crate::temporal::TemporalJoinConditionRule));
        for udf in weir_functions::flink_scalar_functions() {
            datafusion::execution::FunctionRegistry::register_udf(&mut state, Arc::new(udf))?;
        }
        for udaf in weir_functions::flink_aggregate_functions() {
            datafusion::execution::FunctionRegistry::register_udaf(&mut state, Arc::new(udaf))?;
        }
        Ok(Self { state })
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    fn context<'a>(&'a self, catalog: &'a Catalog) -> PlanningContext<'a> {
        PlanningContext {
            state: &self.state,
            catalog,
            insert_target: None,
        }
    }

    fn sql_to_rel<'a>(context: &'a PlanningContext<'a>) -> SqlToRel<'a, PlanningContext<'a>> {
        SqlToRel::new_with_options(context, parser_options(context.options()))
    }

    /// Plans a query or an INSERT; the plan is analyzed and optimized.
    pub fn plan_statement(
        &self,
        catalog: &Catalog,
        statement: &Statement,
    ) -> Result<LogicalPlan, SqlError> {
        let mut statement = statement.clone();
        prepare(&mut statement)?;
        let mut context = self.context(catalog);
        if let Statement::Insert(insert) = &statement
            && let sqlparser::ast::TableObject::TableName(name) = &insert.table
            && let Some(last) = name.0.last().and_then(|part| part.as_ident())
        {
            context.insert_target = Some(last.value.clone());
        }
        let plan = Self::sql_to_rel(&context)
            .sql_statement_to_plan(statement)
            .map_err(plan_error)?;
        // Before the optimizer folds constant casts with Arrow's rules.
        let plan = crate::cast::plan_flink_casts(plan).map_err(plan_error)?;
        self.state.optimize(&plan).map_err(plan_error)
    }

    pub fn plan_query(&self, catalog: &Catalog, query: &Query) -> Result<LogicalPlan, SqlError> {
        self.plan_statement(catalog, &Statement::Query(Box::new(query.clone())))
    }

    /// Compiles a planned expression over `schema` for the runtime.
    pub fn physical_expr(
        &self,
        expr: &Expr,
        schema: &DFSchema,
    ) -> Result<Arc<dyn PhysicalExpr>, SqlError> {
        let expr = crate::cast::flink_casts(expr.clone(), schema)?;
        Ok(self.state.create_physical_expr(expr, schema)?)
    }

    /// An aggregate call (`SUM(x) FILTER (WHERE ...)`) over `schema`, as
    /// DataFusion's physical aggregate with its filter.
    pub fn aggregate_expr(
        &self,
        expr: &Expr,
        schema: &DFSchema,
    ) -> Result<LoweredAggregate, SqlError> {
        let expr = crate::cast::flink_casts(expr.clone(), schema)?;
        let context = PhysicalPlanningContext::default();
        Ok(LoweredAggregateBuilder::new(
            &expr,
            schema,
            schema.as_arrow(),
            self.state.execution_props(),
            &context,
        )
        .build()?)
    }
}

fn is_proctime_call(expr: &sqlparser::ast::Expr) -> bool {
    matches!(expr, sqlparser::ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("PROCTIME"))
}

/// Applies Flink's syntax and naming rules before DataFusion plans a statement.
fn prepare(statement: &mut Statement) -> Result<(), SqlError> {
    match statement {
        Statement::Query(query) => crate::naming::name_expressions(query),
        Statement::Insert(insert) => {
            if let Some(source) = &mut insert.source {
                crate::naming::name_expressions(source);
            }
        }
        _ => {}
    }
    crate::window_tvf::rewrite_window_functions(statement)?;
    Ok(weir_functions::rewrite_flink_syntax(statement)?)
}

fn parser_options(options: &ConfigOptions) -> ParserOptions {
    ParserOptions::from(&options.sql_parser)
}

/// A planning error with the position DataFusion's diagnostics give, if any.
fn plan_error(e: DataFusionError) -> SqlError {
    let position = e.diagnostic().and_then(|d| d.span).map(|s| Position {
        line: s.start.line,
        column: s.start.column,
    });
    let message = SqlError::DataFusion(e).message();
    SqlError::Plan { message, position }
}

/// Resolves tables, views and functions for DataFusion's SQL planner.
pub struct PlanningContext<'a> {
    state: &'a SessionState,
    catalog: &'a Catalog,
    /// The table an INSERT writes: it resolves to its physical columns,
    /// which are what a sink writes (computed and metadata columns are
    /// only read).
    insert_target: Option<String>,
}

impl PlanningContext<'_> {
    fn table_source(&self, table: &Arc<CatalogTable>) -> DFResult<Arc<dyn TableSource>> {
        let physical: Arc<dyn TableSource> = Arc::new(ConnectorTableSource {
            table: Arc::clone(table),
            schema: table.read_schema(),
        });
        if !table.has_computed_columns() && table.watermark.is_none() {
            return Ok(physical);
        }
        let scan = LogicalPlanBuilder::scan(table.name.as_str(), physical, None)?.build()?;
        let sql_to_rel = SqlToRel::new_with_options(self, parser_options(self.options()));
        let mut exprs = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let expr = match &column.kind {
                ColumnKind::Physical(_) | ColumnKind::Metadata { .. } => {
                    Expr::Column(Column::new(Some(table.name.as_str()), &column.name.value))
                }
                ColumnKind::Computed(sql) => {
                    let proctime = is_proctime_call(sql);
                    let mut sql = sql.clone();
                    weir_functions::rewrite_flink_syntax(&mut sql)
                        .map_err(|e| DataFusionError::Plan(e.to_string()))?;
                    let expr =
                        sql_to_rel.sql_to_expr(sql, scan.schema(), &mut PlannerContext::new())?;
                    // `pt AS PROCTIME()` is the table's processing-time attribute.
                    let metadata = proctime.then(|| {
                        FieldMetadata::from(std::collections::BTreeMap::from([(
                            crate::window_tvf::TIME_ATTRIBUTE.to_string(),
                            crate::window_tvf::PROCTIME.to_string(),
                        )]))
                    });
                    expr.alias_with_metadata(&column.name.value, metadata)
                }
            };
            exprs.push(expr);
        }
        let mut plan = LogicalPlanBuilder::from(scan).project(exprs)?.build()?;
        if let Some(watermark) = &table.watermark {
            let mut sql = watermark.expr.clone();
            weir_functions::rewrite_flink_syntax(&mut sql)
                .map_err(|e| DataFusionError::Plan(e.to_string()))?;
            let expr = sql_to_rel.sql_to_expr(sql, plan.schema(), &mut PlannerContext::new())?;
            plan = LogicalPlan::Extension(Extension {
                node: Arc::new(WatermarkNode::try_new(
                    plan,
                    watermark.column.value.clone(),
                    expr,
                )?),
            });
        }
        Ok(Arc::new(DerivedTableSource { plan }))
    }

    /// `t FOR SYSTEM_TIME AS OF time`: the table under a [`TemporalTableNode`].
    fn temporal_source(
        &self,
        name: &TableReference,
        temporal: TemporalReference,
    ) -> DFResult<Arc<dyn TableSource>> {
        let base = match (name.schema(), name.catalog()) {
            (Some(schema), Some(catalog)) => {
                TableReference::full(catalog, schema, temporal.table.as_str())
            }
            (Some(schema), None) => TableReference::partial(schema, temporal.table.as_str()),
            _ => TableReference::bare(temporal.table.as_str()),
        };
        let source = self.get_table_source(base)?;
        let input = LogicalPlanBuilder::scan(temporal.table.as_str(), source, None)?.build()?;
        let primary_key = self
            .catalog
            .table(&temporal.table)
            .map(|t| t.primary_key.clone())
            .unwrap_or_default();
        let node = TemporalTableNode {
            input,
            table: temporal.table,
            time: temporal.time,
            primary_key,
        };
        Ok(Arc::new(DerivedTableSource {
            plan: LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            }),
        }))
    }

    fn view_source(&self, view: &CatalogView) -> DFResult<Arc<dyn TableSource>> {
        let sql_to_rel = SqlToRel::new_with_options(self, parser_options(self.options()));
        let mut statement = Statement::Query(view.query.clone());
        prepare(&mut statement).map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let mut plan = sql_to_rel.sql_statement_to_plan(statement)?;
        if !view.columns.is_empty() {
            let fields = plan.schema().columns();
            if fields.len() != view.columns.len() {
                return Err(DataFusionError::Plan(format!(
                    "view '{}' names {} columns but its query returns {}",
                    view.name,
                    view.columns.len(),
                    fields.len()
                )));
            }
            let exprs: Vec<Expr> = fields
                .into_iter()
                .zip(&view.columns)
                .map(|(c, name)| Expr::Column(c).alias(&name.value))
                .collect();
            plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        }
        Ok(Arc::new(DerivedTableSource { plan }))
    }
}

impl ContextProvider for PlanningContext<'_> {
    fn get_table_source(&self, name: TableReference) -> DFResult<Arc<dyn TableSource>> {
        if let Some(temporal) = TemporalReference::parse(name.table()) {
            return self.temporal_source(&name, temporal);
        }
        let key = match (&name, name.schema(), name.catalog()) {
            (_, None, None) => name.table().to_string(),
            (
                _,
                Some(crate::catalog::DEFAULT_DATABASE),
                None | Some(crate::catalog::DEFAULT_CATALOG),
            ) => name.table().to_string(),
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "'{name}' is not in default_catalog.default_database, the only catalog and database Weir has"
                )));
            }
        };
        if let Some(table) = self.catalog.table(&key) {
            if self.insert_target.as_deref() == Some(key.as_str()) {
                return Ok(Arc::new(ConnectorTableSource {
                    table: Arc::clone(table),
                    schema: table.write_schema(),
                }));
            }
            return self.table_source(table);
        }
        if let Some(view) = self.catalog.view(&key) {
            return self.view_source(view);
        }
        Err(DataFusionError::Plan(
            self.catalog.missing("table or view", &key),
        ))
    }

    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<Expr>,
    ) -> DFResult<Arc<dyn TableSource>> {
        let call = WindowCall::from_args(name, &args)?;
        // Names keep their case, as everywhere else in Flink SQL.
        let table = TableReference::parse_str_normalized(&call.table, true);
        let source = self.get_table_source(table.clone())?;
        let input = LogicalPlanBuilder::scan(table, source, None)?.build()?;
        let node =
            WindowTvfNode::try_new(input, call.function, call.time_column, call.partition_by)?;
        Ok(Arc::new(DerivedTableSource {
            plan: LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            }),
        }))
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.state.scalar_functions().get(name).cloned()
    }

    fn get_higher_order_meta(
        &self,
        name: &str,
    ) -> Option<Arc<datafusion::logical_expr::HigherOrderUDF>> {
        self.state.higher_order_functions().get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state.aggregate_functions().get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state.window_functions().get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state
            .higher_order_functions()
            .keys()
            .cloned()
            .collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}

/// A catalog table as its connector sees it: the physical and metadata
/// columns a scan reads, or the physical columns an INSERT writes.
#[derive(Debug)]
pub struct ConnectorTableSource {
    pub table: Arc<CatalogTable>,
    pub schema: SchemaRef,
}

impl TableSource for ConnectorTableSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// A table defined by a plan: a view, or a table with computed columns.
#[derive(Debug)]
pub struct DerivedTableSource {
    plan: LogicalPlan,
}

impl TableSource for DerivedTableSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.plan.schema().inner())
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(&self.plan))
    }
}

/// `WATERMARK FOR rowtime AS expr`: marks where a table's watermarks are
/// generated. It passes rows through unchanged; the streaming planner turns
/// it into per-split watermark generation in the source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatermarkNode {
    pub input: LogicalPlan,
    /// The rowtime column the watermark is declared for.
    pub rowtime: String,
    /// The watermark expression over the input's columns.
    pub expr: Expr,
    schema: DFSchemaRef,
}

impl WatermarkNode {
    pub fn try_new(input: LogicalPlan, rowtime: String, expr: Expr) -> DFResult<Self> {
        let input_schema = input.schema();
        if !input_schema.fields().iter().any(|f| f.name() == &rowtime) {
            return Err(DataFusionError::Plan(format!(
                "the watermark column '{rowtime}' is not a column of the table"
            )));
        }
        // The rowtime column becomes an event-time attribute: joins and
        // OVER aggregations recognise it by this mark.
        let fields = input_schema
            .iter()
            .map(|(qualifier, field)| {
                let field = if field.name() == &rowtime {
                    let mut metadata = field.metadata().clone();
                    metadata.insert(
                        crate::window_tvf::TIME_ATTRIBUTE.to_string(),
                        crate::window_tvf::ROWTIME.to_string(),
                    );
                    Arc::new(field.as_ref().clone().with_metadata(metadata))
                } else {
                    Arc::clone(field)
                };
                (qualifier.cloned(), field)
            })
            .collect();
        let schema = Arc::new(DFSchema::new_with_metadata(
            fields,
            input_schema.metadata().clone(),
        )?);
        Ok(Self {
            input,
            rowtime,
            expr,
            schema,
        })
    }
}

impl PartialOrd for WatermarkNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(Ordering::Equal) => match self.rowtime.partial_cmp(&other.rowtime) {
                Some(Ordering::Equal) => self.expr.partial_cmp(&other.expr),
                o => o,
            },
            o => o,
        }
    }
}

impl UserDefinedLogicalNodeCore for WatermarkNode {
    fn name(&self) -> &str {
        "WatermarkAssigner"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![self.expr.clone()]
    }

    /// Filters must not move below the watermark: rows they drop still advance time.
    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WatermarkAssigner: rowtime={}, watermark={}",
            self.rowtime, self.expr
        )
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DFResult<Self> {
        let (Some(expr), Some(input)) = (exprs.pop(), inputs.pop()) else {
            return Err(DataFusionError::Internal(
                "WatermarkAssigner takes one input and one expression".into(),
            ));
        };
        Self::try_new(input, self.rowtime.clone(), expr)
    }

    /// The watermark's own columns stay even when nothing above needs them.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let mut needed: Vec<usize> = output_columns.to_vec();
        for column in self.expr.column_refs() {
            needed.push(self.schema.index_of_column(column).ok()?);
        }
        needed.push(self.schema.index_of_column_by_name(None, &self.rowtime)?);
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }
}
