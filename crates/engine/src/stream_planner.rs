//! The streaming planner: DataFusion's optimized logical plan in, a
//! [`JobGraph`] out.
//!
//! It works in two steps. [`StreamPlanner::translate`] maps each logical node
//! onto a [`StreamNode`] (the streaming physical plan EXPLAIN shows):
//! scans become connector sources, filters and projections merge into
//! `Calc`s, a table's watermark folds into its source so watermarks are
//! generated per split. [`JobGraphBuilder`] then chains nodes of equal
//! parallelism into vertices and connects the rest with exchanges.
//! Logical operators that need state (aggregations, joins, sorts) are
//! refused with a clear message until their streaming operators exist.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatchOptions;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::logical_expr::logical_plan::dml::WriteOp;
use datafusion::logical_expr::{Expr, FetchType, LogicalPlan, SkipType};
use weir_connector::{SinkFactory, SourceFactory, TableSpec};
use weir_runtime::operators::{
    Calc, CalcFactory, Limit, LimitFactory, ValuesSource, WatermarkStrategy,
};
use weir_runtime::{
    JobEdge, JobGraph, JobVertex, OperatorFactory, Partitioning, SinkSpec, SourceSpec, VertexId,
    VertexInput, VertexOutput,
};
use weir_sql::{CatalogTable, ConnectorTableSource, SqlPlanner, WatermarkNode};

use crate::EngineError;
use crate::registry::ConnectorRegistry;

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
    Limit {
        input: Box<StreamNode>,
        skip: usize,
        fetch: Option<usize>,
        schema: DFSchemaRef,
    },
}

impl StreamNode {
    pub fn schema(&self) -> &DFSchemaRef {
        match self {
            StreamNode::Source { schema, .. }
            | StreamNode::Calc { schema, .. }
            | StreamNode::Union { schema, .. }
            | StreamNode::Limit { schema, .. } => schema,
        }
    }

    /// Gives the node the qualifiers its parent refers to it by.
    fn with_schema(mut self, new_schema: DFSchemaRef) -> Self {
        match &mut self {
            StreamNode::Source { schema, .. }
            | StreamNode::Calc { schema, .. }
            | StreamNode::Union { schema, .. }
            | StreamNode::Limit { schema, .. } => *schema = new_schema,
        }
        self
    }

    fn fmt_indent(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
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
                write!(
                    f,
                    "{pad}TableSourceScan(table=[{table}], fields=[{}], parallelism={parallelism}",
                    columns.join(", ")
                )?;
                if !transforms.is_empty() {
                    let names: Vec<&str> = transforms
                        .iter()
                        .map(|t| weir_runtime::Operator::name(t))
                        .collect();
                    write!(f, ", computed=[{}]", names.join(" -> "))?;
                }
                if let Some(w) = watermark {
                    write!(f, ", watermark=[{}]", w.display())?;
                }
                writeln!(f, ")")
            }
            StreamNode::Calc {
                input,
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
                writeln!(f, "{pad}Calc({})", parts.join(", "))?;
                input.fmt_indent(f, depth + 1)
            }
            StreamNode::Union { inputs, .. } => {
                writeln!(f, "{pad}Union(all=[true])")?;
                inputs.iter().try_for_each(|i| i.fmt_indent(f, depth + 1))
            }
            StreamNode::Limit {
                input, skip, fetch, ..
            } => {
                writeln!(
                    f,
                    "{pad}Limit(offset={skip}, fetch={})",
                    fetch.map_or("unlimited".to_string(), |n| n.to_string())
                )?;
                input.fmt_indent(f, depth + 1)
            }
        }
    }
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
}

impl StreamPlanner<'_> {
    /// Plans a query (rows to the client) or an INSERT (rows to a table).
    pub fn plan(&self, plan: &LogicalPlan) -> Result<StreamPlan, EngineError> {
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
                .and_then(|c| c.create_sink(&spec))
                .map_err(|source| EngineError::Table {
                    table: table.name.clone(),
                    source,
                })?;
            return Ok(StreamPlan {
                root: self.translate(&dml.input)?,
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
                let input = self.translate(&p.input)?;
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
                let input = self.translate(&filter.input)?;
                let schema = Arc::clone(input.schema());
                Ok(StreamNode::Calc {
                    input: Box::new(input),
                    predicate: Some(filter.predicate.clone()),
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
                let input = self.translate(&limit.input)?;
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
                let Some(node) = extension.node.as_any().downcast_ref::<WatermarkNode>() else {
                    return Err(EngineError::Unsupported(format!(
                        "the plan node {}",
                        extension.node.name()
                    )));
                };
                self.fold_watermark(node)
            }
            LogicalPlan::Aggregate(_) => Err(EngineError::Unsupported(
                "GROUP BY aggregation and DISTINCT".into(),
            )),
            LogicalPlan::Distinct(_) => Err(EngineError::Unsupported("SELECT DISTINCT".into())),
            LogicalPlan::Join(_) => Err(EngineError::Unsupported("JOIN".into())),
            LogicalPlan::Sort(_) => Err(EngineError::Unsupported("ORDER BY on a stream".into())),
            LogicalPlan::Window(_) => Err(EngineError::Unsupported("OVER windows".into())),
            other => Err(EngineError::Unsupported(format!(
                "the plan node {}",
                other.display()
            ))),
        }
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
        })
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

pub(crate) fn table_spec(table: &CatalogTable) -> TableSpec {
    TableSpec {
        name: table.name.clone(),
        schema: Arc::clone(&table.physical_schema),
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
                let calc = self.planner.compile_calc(
                    predicate.as_ref(),
                    projection.as_deref(),
                    &schema,
                    &input_schema,
                )?;
                let mut open = self.build(*input)?;
                open.operators.push(Arc::new(CalcFactory(calc)));
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
                    .push(Arc::new(LimitFactory(Limit::new(skip, fetch))));
                Ok(open)
            }
        }
    }
}
