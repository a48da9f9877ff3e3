//! A SQL session: configuration, catalog and jobs, driven statement by
//! statement by the shell, `weir run` and the sqllogictest runner alike.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use tokio::sync::mpsc;
use weir_common::{Configuration, StreamBatch};
use weir_format::display::sql_type_name as flink_type_name;
use weir_runtime::{JobHandle, JobId, JobSummary};
use weir_sql::catalog::table_name;
use weir_sql::parser::{ColumnKind, CreateTable, CreateView, DropObject, ObjectKind};
use weir_sql::{
    Catalog, CatalogTable, CatalogView, FlinkStatement, ParsedStatement, SqlError, SqlPlanner,
    parse_script,
};

use crate::EngineError;
use crate::dispatcher::{Dispatcher, JobKind, JobProgram, PlannedJob};
use crate::registry::ConnectorRegistry;
use crate::stream_planner::{StreamPlan, StreamPlanner, table_spec};

/// What a statement produced.
#[derive(Debug)]
pub enum StatementResult {
    /// A statement that only changed the session: `[INFO] <message>`.
    Ok(String),
    /// Text to print as it is (EXPLAIN).
    Text(String),
    /// A small result known at once (SHOW, DESCRIBE, SET).
    Table(ResultTable),
    /// The rows of a running query, as they arrive.
    Query(QueryResult),
    /// An INSERT (or statement set) job.
    Job(JobSubmission),
}

/// Rows with their schema.
#[derive(Debug, Clone)]
pub struct ResultTable {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl ResultTable {
    /// A table of strings, as SHOW and DESCRIBE return.
    pub fn strings(columns: &[&str], rows: Vec<Vec<String>>) -> Result<Self, EngineError> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let arrays: Vec<ArrayRef> = (0..columns.len())
            .map(|i| {
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r[i].as_str()),
                )) as ArrayRef
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
        Ok(Self {
            schema,
            batches: vec![batch],
        })
    }
}

/// A running query whose rows stream back to the client.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    job: JobHandle,
    rows: mpsc::Receiver<StreamBatch>,
    /// TIMESTAMP_LTZ values are shown in the session's time zone, as Flink shows them.
    time_zone: Arc<str>,
}

impl QueryResult {
    /// The next batch; `None` when the query ended; the job's error if it failed.
    pub async fn next(&mut self) -> Option<Result<StreamBatch, EngineError>> {
        match self.rows.recv().await {
            Some(batch) => Some(self.localize(batch)),
            None => match self.job.wait().await {
                Ok(()) => None,
                Err(e) => Some(Err(EngineError::Job(e))),
            },
        }
    }

    fn localize(&self, batch: StreamBatch) -> Result<StreamBatch, EngineError> {
        let data = batch.data();
        if !data
            .schema()
            .fields()
            .iter()
            .any(|f| matches!(f.data_type(), DataType::Timestamp(_, Some(_))))
        {
            return Ok(batch);
        }
        let mut fields = Vec::with_capacity(data.num_columns());
        let mut columns = Vec::with_capacity(data.num_columns());
        for (field, column) in data.schema().fields().iter().zip(data.columns()) {
            match field.data_type() {
                DataType::Timestamp(unit, Some(_)) => {
                    let local = DataType::Timestamp(*unit, Some(Arc::clone(&self.time_zone)));
                    columns.push(arrow::compute::cast(column, &local)?);
                    fields.push(field.as_ref().clone().with_data_type(local));
                }
                _ => {
                    columns.push(Arc::clone(column));
                    fields.push(field.as_ref().clone());
                }
            }
        }
        let data = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        batch
            .with_data(data)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// Reads every row until the query ends.
    pub async fn collect(mut self) -> Result<Vec<StreamBatch>, EngineError> {
        let mut batches = Vec::new();
        while let Some(batch) = self.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }

    pub fn job(&self) -> &JobHandle {
        &self.job
    }

    /// Rows read, watermark and share done of the query's job so far.
    pub fn progress(&self) -> weir_runtime::JobProgress {
        self.job.progress()
    }

    /// Stops the query's job.
    pub fn cancel(&mut self) {
        self.job.cancel();
    }
}

/// An INSERT job as the client sees it.
#[derive(Debug, Clone)]
pub struct JobSubmission {
    pub id: JobId,
    pub name: String,
    /// Whether the job already ended (with `table.dml-sync`).
    pub finished: bool,
}

/// One user's session.
pub struct Session {
    config: Configuration,
    catalog: Catalog,
    planner: SqlPlanner,
    registry: ConnectorRegistry,
    dispatcher: Arc<dyn Dispatcher>,
    /// The CREATE and DROP statements that ran, in order: the catalog as a
    /// remote cluster rebuilds it.
    catalog_log: Vec<String>,
    /// INSERT jobs started by this session, oldest first.
    jobs: Vec<JobHandle>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session whose jobs run wherever `dispatcher` sends them.
    pub fn with_dispatcher(dispatcher: Arc<dyn Dispatcher>) -> Result<Self, EngineError> {
        let config = Configuration::new();
        Ok(Self {
            planner: SqlPlanner::new(&config)?,
            config,
            catalog: Catalog::default(),
            registry: ConnectorRegistry::default(),
            dispatcher,
            catalog_log: Vec::new(),
            jobs: Vec::new(),
        })
    }

    /// Sets an option, as `SET 'key' = 'value'` does.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), EngineError> {
        self.config.set(key, value)?;
        self.planner = SqlPlanner::new(&self.config)?;
        Ok(())
    }

    pub fn config(&self) -> &Configuration {
        &self.config
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Names of every function SQL can call, for SHOW FUNCTIONS and completion.
    pub fn function_names(&self) -> Vec<String> {
        let state = self.planner.state();
        let mut names: Vec<String> = state
            .scalar_functions()
            .keys()
            .chain(state.aggregate_functions().keys())
            .chain(state.window_functions().keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Names a statement may refer to, for completion: tables, views, their
    /// columns and functions.
    pub fn completion_names(&self) -> Vec<String> {
        let mut names = self.function_names();
        for table in self.catalog.tables() {
            names.push(table.name.clone());
            names.extend(table.columns.iter().map(|c| c.name.value.clone()));
        }
        for view in self.catalog.views() {
            names.push(view.name.clone());
            if let Ok(plan) = self.plan_scan(&view.name) {
                names.extend(plan.schema().fields().iter().map(|f| f.name().clone()));
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Parses a script without running it.
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>, EngineError> {
        Ok(parse_script(sql)?)
    }

    /// Runs every statement of `sql` in order, stopping at the first error.
    pub async fn execute_script(&mut self, sql: &str) -> Result<Vec<StatementResult>, EngineError> {
        let mut results = Vec::new();
        for statement in self.parse(sql)? {
            results.push(self.execute(statement).await?);
        }
        Ok(results)
    }

    pub async fn execute(
        &mut self,
        parsed: ParsedStatement,
    ) -> Result<StatementResult, EngineError> {
        let at = parsed.position;
        let changes_catalog = matches!(
            parsed.statement,
            FlinkStatement::CreateTable(_)
                | FlinkStatement::CreateView(_)
                | FlinkStatement::Drop(_)
        );
        let result = self.execute_statement(parsed.statement, &parsed.text).await;
        if changes_catalog && result.is_ok() {
            self.catalog_log.push(parsed.text);
        }
        result.map_err(|e| match e {
            // Errors without a position of their own point at their statement.
            EngineError::Sql(SqlError::Plan {
                message,
                position: None,
            }) => EngineError::Sql(SqlError::Plan {
                message,
                position: Some(at),
            }),
            other => other,
        })
    }

    async fn execute_statement(
        &mut self,
        statement: FlinkStatement,
        text: &str,
    ) -> Result<StatementResult, EngineError> {
        match statement {
            FlinkStatement::CreateTable(definition) => self.create_table(definition),
            FlinkStatement::CreateView(definition) => self.create_view(definition),
            FlinkStatement::Drop(drop) => self.drop_object(drop),
            FlinkStatement::Set(None) => {
                let rows = self
                    .config
                    .effective_entries()
                    .into_iter()
                    .map(|(k, v)| vec![k.to_string(), v.to_string()])
                    .collect();
                Ok(StatementResult::Table(ResultTable::strings(
                    &["key", "value"],
                    rows,
                )?))
            }
            FlinkStatement::Set(Some((key, value))) => {
                self.set(&key, &value)?;
                Ok(StatementResult::Ok(
                    "Execute statement succeeded.".to_string(),
                ))
            }
            FlinkStatement::Reset(key) => {
                match key {
                    Some(key) => self.config.reset(&key),
                    None => self.config.reset_all(),
                }
                self.planner = SqlPlanner::new(&self.config)?;
                Ok(StatementResult::Ok(
                    "Execute statement succeeded.".to_string(),
                ))
            }
            FlinkStatement::ShowTables => {
                let mut names: Vec<String> = self
                    .catalog
                    .tables()
                    .map(|t| t.name.clone())
                    .chain(self.catalog.views().map(|v| v.name.clone()))
                    .collect();
                names.sort();
                let rows = names.into_iter().map(|n| vec![n]).collect();
                Ok(StatementResult::Table(ResultTable::strings(
                    &["table name"],
                    rows,
                )?))
            }
            FlinkStatement::ShowViews => {
                let rows = self.catalog.views().map(|v| vec![v.name.clone()]).collect();
                Ok(StatementResult::Table(ResultTable::strings(
                    &["view name"],
                    rows,
                )?))
            }
            FlinkStatement::ShowFunctions => {
                let rows = self.function_names().into_iter().map(|n| vec![n]).collect();
                Ok(StatementResult::Table(ResultTable::strings(
                    &["function name"],
                    rows,
                )?))
            }
            FlinkStatement::ShowJobs => {
                let rows = self
                    .dispatcher
                    .list_jobs()
                    .await?
                    .into_iter()
                    .map(|j| vec![j.id.to_string(), j.name, j.status.to_string()])
                    .collect();
                Ok(StatementResult::Table(ResultTable::strings(
                    &["job id", "job name", "status"],
                    rows,
                )?))
            }
            FlinkStatement::ShowCreateTable(name) => {
                let name = table_name(&name)?;
                let table = self
                    .catalog
                    .table(&name)
                    .ok_or_else(|| SqlError::Catalog(self.catalog.missing("table", &name)))?;
                Ok(StatementResult::Text(show_create_table(table)))
            }
            FlinkStatement::Describe(name) => self.describe(&table_name(&name)?),
            statement @ FlinkStatement::Query(_) => {
                let job = self.plan_job(statement)?;
                let schema = job.schema.clone().ok_or_else(|| {
                    EngineError::Internal("a query planned without a schema".into())
                })?;
                let program = self.program(job.graph.name.clone(), text);
                let mut job = self.dispatcher.submit(job, program).await?;
                let rows = job.take_results().ok_or_else(|| {
                    EngineError::Internal("a query job without a result channel".into())
                })?;
                let time_zone = Arc::from(self.config.local_time_zone());
                Ok(StatementResult::Query(QueryResult {
                    schema,
                    job,
                    rows,
                    time_zone,
                }))
            }
            statement @ (FlinkStatement::Insert(_) | FlinkStatement::StatementSet(_)) => {
                self.submit_inserts(statement, text).await
            }
            FlinkStatement::Explain(inner) => self.explain(*inner),
            FlinkStatement::StopJob {
                job_id,
                with_savepoint,
            } => {
                let missing = || {
                    EngineError::Session(format!("no job with id '{job_id}'; SHOW JOBS lists them"))
                };
                let id: JobId = job_id.parse().map_err(|_| missing())?;
                if with_savepoint {
                    let path = self.dispatcher.stop_with_savepoint(id).await?;
                    return Ok(StatementResult::Table(ResultTable::strings(
                        &["savepoint path"],
                        vec![vec![path]],
                    )?));
                }
                if !self.dispatcher.cancel_job(id).await? {
                    return Err(missing());
                }
                Ok(StatementResult::Ok(format!(
                    "The job '{job_id}' is stopped."
                )))
            }
        }
    }

    fn stream_planner(&self) -> StreamPlanner<'_> {
        StreamPlanner {
            planner: &self.planner,
            registry: &self.registry,
            parallelism: self.config.parallelism(),
            batch_mode: self.config.runtime_mode() == weir_common::RuntimeMode::Batch,
            time_zone: self.config.local_time_zone().to_string(),
            state_ttl: self.config.state_ttl(),
            idle_timeout: self.config.source_idle_timeout(),
        }
    }

    fn create_table(&mut self, definition: CreateTable) -> Result<StatementResult, EngineError> {
        let if_not_exists = definition.if_not_exists;
        let table = CatalogTable::try_new(definition)?;
        let spec = table_spec(&table);
        self.registry
            .for_table(&spec)
            .and_then(|connector| {
                if !spec.partition_keys.is_empty() && !connector.supports_partitioning() {
                    return Err(weir_connector::ConnectorError::Unsupported {
                        connector: connector.name().to_string(),
                        what: "does not support PARTITIONED BY (the filesystem connector does)"
                            .to_string(),
                    });
                }
                connector.validate(&spec)?;
                connector.check_metadata(&spec)
            })
            .map_err(|source| EngineError::Table {
                table: table.name.clone(),
                source,
            })?;
        let name = table.name.clone();
        if self.catalog.create_table(table, if_not_exists)? {
            // Plan a scan now, so a bad computed column or watermark fails here.
            if let Err(e) = self.plan_scan(&name) {
                self.catalog.drop_table(&name, true)?;
                return Err(e);
            }
        }
        Ok(StatementResult::Ok(
            "Execute statement succeeded.".to_string(),
        ))
    }

    fn plan_scan(&self, name: &str) -> Result<LogicalPlan, EngineError> {
        let sql = format!("SELECT * FROM `{}`", name.replace('`', "``"));
        let Some(ParsedStatement {
            statement: FlinkStatement::Query(query),
            ..
        }) = parse_script(&sql)?.pop()
        else {
            return Err(EngineError::Internal(
                "a scan did not parse as a query".into(),
            ));
        };
        Ok(self.planner.plan_query(&self.catalog, &query)?)
    }

    fn create_view(&mut self, definition: CreateView) -> Result<StatementResult, EngineError> {
        self.planner.plan_query(&self.catalog, &definition.query)?;
        let view = CatalogView {
            name: table_name(&definition.name)?,
            columns: definition.columns,
            query: definition.query,
        };
        let name = view.name.clone();
        if self.catalog.create_view(view, definition.if_not_exists)?
            && let Err(e) = self.plan_scan(&name)
        {
            self.catalog.drop_view(&name, true)?;
            return Err(e);
        }
        Ok(StatementResult::Ok(
            "Execute statement succeeded.".to_string(),
        ))
    }

    fn drop_object(&mut self, drop: DropObject) -> Result<StatementResult, EngineError> {
        let name = table_name(&drop.name)?;
        match drop.kind {
            ObjectKind::Table => self.catalog.drop_table(&name, drop.if_exists)?,
            ObjectKind::View => self.catalog.drop_view(&name, drop.if_exists)?,
        }
        Ok(StatementResult::Ok(
            "Execute statement succeeded.".to_string(),
        ))
    }

    /// Flink's DESCRIBE: name, type, null, key, extras, watermark.
    fn describe(&self, name: &str) -> Result<StatementResult, EngineError> {
        let columns = ["name", "type", "null", "key", "extras", "watermark"];
        if let Some(table) = self.catalog.table(name) {
            let scan = self.plan_scan(name)?;
            let rows = table
                .columns
                .iter()
                .zip(scan.schema().fields())
                .map(|(column, field)| {
                    let is_rowtime = table
                        .watermark
                        .as_ref()
                        .is_some_and(|w| w.column.value == column.name.value);
                    let mut ty = flink_type_name(field.data_type());
                    if !field.is_nullable() {
                        ty.push_str(" NOT NULL");
                    }
                    if is_rowtime {
                        ty.push_str(" *ROWTIME*");
                    }
                    let key = if table.primary_key.contains(&column.name.value) {
                        format!("PRI({})", table.primary_key.join(", "))
                    } else {
                        String::new()
                    };
                    let extras = match &column.kind {
                        ColumnKind::Computed(expr) => format!("AS {expr}"),
                        ColumnKind::Metadata {
                            key, is_virtual, ..
                        } => {
                            let from = key
                                .as_ref()
                                .map(|k| format!(" FROM '{k}'"))
                                .unwrap_or_default();
                            format!(
                                "METADATA{from}{}",
                                if *is_virtual { " VIRTUAL" } else { "" }
                            )
                        }
                        ColumnKind::Physical(_) => String::new(),
                    };
                    let watermark = match &table.watermark {
                        Some(w) if is_rowtime => w.expr.to_string(),
                        _ => String::new(),
                    };
                    vec![
                        column.name.value.clone(),
                        ty,
                        field.is_nullable().to_string().to_uppercase(),
                        key,
                        extras,
                        watermark,
                    ]
                })
                .collect();
            return Ok(StatementResult::Table(ResultTable::strings(
                &columns, rows,
            )?));
        }
        if self.catalog.view(name).is_some() {
            let scan = self.plan_scan(name)?;
            let rows = scan
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    vec![
                        f.name().clone(),
                        flink_type_name(f.data_type()),
                        f.is_nullable().to_string().to_uppercase(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ]
                })
                .collect();
            return Ok(StatementResult::Table(ResultTable::strings(
                &columns, rows,
            )?));
        }
        Err(SqlError::Catalog(self.catalog.missing("table or view", name)).into())
    }

    fn plan_inserts(
        &self,
        inserts: &[sqlparser::ast::Statement],
    ) -> Result<(Vec<LogicalPlan>, Vec<StreamPlan>), EngineError> {
        let mut logical = Vec::new();
        let mut streams = Vec::new();
        for insert in inserts {
            let plan = self.planner.plan_statement(&self.catalog, insert)?;
            streams.push(self.stream_planner().plan(&plan)?);
            logical.push(plan);
        }
        Ok((logical, streams))
    }

    fn job_name(&self, inserts: &[sqlparser::ast::Statement]) -> String {
        if let Some(name) = self.config.pipeline_name() {
            return name.to_string();
        }
        let targets: Vec<String> = inserts
            .iter()
            .filter_map(|s| match s {
                sqlparser::ast::Statement::Insert(insert) => Some(format!(
                    "{}.{}.{}",
                    weir_sql::catalog::DEFAULT_CATALOG,
                    weir_sql::catalog::DEFAULT_DATABASE,
                    insert.table
                )),
                _ => None,
            })
            .collect();
        format!("insert-into_{}", targets.join(","))
    }

    /// Plans a query or INSERT into the job graph that runs it.
    pub(crate) fn plan_job(&self, statement: FlinkStatement) -> Result<PlannedJob, EngineError> {
        match statement {
            FlinkStatement::Query(query) => {
                let plan = self.planner.plan_query(&self.catalog, &query)?;
                let schema = Arc::clone(plan.schema().inner());
                let stream = self.stream_planner().plan(&plan)?;
                let graph = self
                    .stream_planner()
                    .job_graph("collect".to_string(), vec![stream])?;
                Ok(PlannedJob {
                    graph,
                    kind: JobKind::Query,
                    schema: Some(schema),
                })
            }
            FlinkStatement::Insert(insert) => self.plan_insert_job(vec![*insert]),
            FlinkStatement::StatementSet(inserts) => self.plan_insert_job(inserts),
            _ => Err(EngineError::Internal(
                "only queries and INSERTs become jobs".into(),
            )),
        }
    }

    fn plan_insert_job(
        &self,
        inserts: Vec<sqlparser::ast::Statement>,
    ) -> Result<PlannedJob, EngineError> {
        let (_, streams) = self.plan_inserts(&inserts)?;
        let name = self.job_name(&inserts);
        let mut graph = self.stream_planner().job_graph(name, streams)?;
        // As in Flink, batch mode takes no checkpoints; queries whose rows
        // go to the client take none either.
        if self.config.runtime_mode() == weir_common::RuntimeMode::Streaming {
            graph.checkpointing = self.config.checkpointing();
        }
        if graph.checkpointing.is_none()
            && let Some(path) = self.config.get(weir_common::config::SAVEPOINT_PATH)
        {
            return Err(EngineError::Session(format!(
                "'execution.savepoint.path' = '{path}' restores state through checkpoints: set 'execution.checkpointing.interval' (in streaming mode) too, or RESET 'execution.savepoint.path'"
            )));
        }
        Ok(PlannedJob {
            graph,
            kind: JobKind::Insert,
            schema: None,
        })
    }

    /// What a remote cluster needs to plan `statement` as this session does.
    fn program(&self, name: String, statement: &str) -> JobProgram {
        JobProgram {
            name,
            config: self
                .config
                .entries()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            catalog: self.catalog_log.clone(),
            statement: statement.to_string(),
        }
    }

    async fn submit_inserts(
        &mut self,
        statement: FlinkStatement,
        text: &str,
    ) -> Result<StatementResult, EngineError> {
        let job = self.plan_job(statement)?;
        let name = job.graph.name.clone();
        let program = self.program(name.clone(), text);
        let mut job = self.dispatcher.submit(job, program).await?;
        let id = job.id;
        let finished = self.config.dml_sync();
        if finished {
            job.wait().await?;
        }
        self.jobs.push(job);
        Ok(StatementResult::Job(JobSubmission { id, name, finished }))
    }

    fn explain(&self, statement: FlinkStatement) -> Result<StatementResult, EngineError> {
        let (logical, streams) = match statement {
            FlinkStatement::Query(query) => {
                let plan = self.planner.plan_query(&self.catalog, &query)?;
                let stream = self.stream_planner().plan(&plan)?;
                (vec![plan], vec![stream])
            }
            FlinkStatement::Insert(insert) => self.plan_inserts(&[*insert])?,
            FlinkStatement::StatementSet(inserts) => self.plan_inserts(&inserts)?,
            _ => {
                return Err(EngineError::Unsupported(
                    "EXPLAIN of a statement other than a query or INSERT".into(),
                ));
            }
        };
        let mut text = String::from("== Optimized Logical Plan ==\n");
        for plan in &logical {
            text.push_str(&format!("{}\n", plan.display_indent()));
        }
        text.push_str("\n== Streaming Physical Plan ==\n");
        for stream in &streams {
            text.push_str(&stream.to_string());
        }
        let graph = self
            .stream_planner()
            .job_graph("explain".to_string(), streams)?;
        text.push_str(&format!("\n== Job Graph ==\n{graph}"));
        Ok(StatementResult::Text(text))
    }

    /// Waits for every INSERT job of the session that runs in this process
    /// to end (jobs on a remote cluster run on without the client); the
    /// first failure.
    pub async fn wait_for_jobs(&mut self) -> Result<(), EngineError> {
        let mut failure = None;
        for job in self.jobs.iter_mut().filter(|j| !j.is_detached()) {
            if let Err(e) = job.wait().await
                && failure.is_none()
            {
                failure = Some(EngineError::Job(e));
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// The status of each INSERT job the session started.
    pub fn jobs(&self) -> Vec<JobSummary> {
        self.jobs
            .iter()
            .map(|j| JobSummary {
                id: j.id,
                name: j.name.clone(),
                status: j.status(),
            })
            .collect()
    }
}

fn show_create_table(table: &CatalogTable) -> String {
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|c| match &c.kind {
            ColumnKind::Physical(ty) => format!(
                "  `{}` {}{}",
                c.name.value,
                flink_type_name(&ty.data_type),
                if ty.nullable { "" } else { " NOT NULL" }
            ),
            ColumnKind::Computed(expr) => format!("  `{}` AS {expr}", c.name.value),
            ColumnKind::Metadata {
                data_type,
                key,
                is_virtual,
            } => format!(
                "  `{}` {} METADATA{}{}",
                c.name.value,
                flink_type_name(&data_type.data_type),
                key.as_ref()
                    .map(|k| format!(" FROM '{k}'"))
                    .unwrap_or_default(),
                if *is_virtual { " VIRTUAL" } else { "" }
            ),
        })
        .collect();
    if let Some(w) = &table.watermark {
        lines.push(format!(
            "  WATERMARK FOR `{}` AS {}",
            w.column.value, w.expr
        ));
    }
    if !table.primary_key.is_empty() {
        let keys: Vec<String> = table.primary_key.iter().map(|k| format!("`{k}`")).collect();
        lines.push(format!("  PRIMARY KEY ({}) NOT ENFORCED", keys.join(", ")));
    }
    let options: Vec<String> = table
        .options
        .iter()
        .map(|(k, v)| format!("  '{k}' = '{v}'"))
        .collect();
    // Flink's order after the columns: COMMENT, PARTITIONED BY, WITH.
    let comment = table
        .comment
        .as_ref()
        .map(|c| format!("COMMENT '{}'\n", c.replace('\'', "''")))
        .unwrap_or_default();
    let partitioned = if table.partition_keys.is_empty() {
        String::new()
    } else {
        let keys: Vec<String> = table
            .partition_keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect();
        format!("PARTITIONED BY ({})\n", keys.join(", "))
    };
    format!(
        "CREATE TABLE `{}`.`{}`.`{}` (\n{}\n)\n{comment}{partitioned}WITH (\n{}\n)\n",
        weir_sql::catalog::DEFAULT_CATALOG,
        weir_sql::catalog::DEFAULT_DATABASE,
        table.name,
        lines.join(",\n"),
        options.join(",\n")
    )
}
