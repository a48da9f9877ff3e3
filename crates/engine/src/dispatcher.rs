//! Where a session's jobs run: a cluster's coordinator, in this process
//! (`weir-cluster`'s embedded cluster) or reached over the network.
//!
//! A session plans every statement itself, so SQL errors show at once with
//! their line and column. It then hands the dispatcher both the job graph
//! and the [`JobProgram`] the graph was planned from. The graph itself does
//! not travel: it holds compiled expressions and connector factories, which
//! do not cross processes. So the program goes to the coordinator, and the
//! coordinator and each worker plan it again with [`plan_program`].
//! Planning is deterministic, and a cluster only admits processes of the
//! same version, so every process gets the same graph.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_runtime::{JobGraph, JobHandle, JobId, JobSummary};

use crate::EngineError;
use crate::session::Session;

/// The SQL a job is planned from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobProgram {
    pub name: String,
    /// Options set in the session ('parallelism.default', ...).
    pub config: Vec<(String, String)>,
    /// The session's CREATE and DROP statements, in the order they ran.
    pub catalog: Vec<String>,
    /// The query, INSERT, or `EXECUTE STATEMENT SET` the job runs.
    pub statement: String,
}

/// Whether a job returns rows to its client or writes to sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Query,
    Insert,
}

/// A job graph with what the client needs to know about it.
#[derive(Debug)]
pub struct PlannedJob {
    pub graph: JobGraph,
    pub kind: JobKind,
    /// The rows' schema, for a query.
    pub schema: Option<SchemaRef>,
}

/// Accepts a session's jobs and answers for the jobs it runs.
#[async_trait]
pub trait Dispatcher: Send + Sync + fmt::Debug {
    async fn submit(&self, job: PlannedJob, program: JobProgram) -> Result<JobHandle, EngineError>;

    /// Every job this dispatcher runs or ran, for SHOW JOBS.
    async fn list_jobs(&self) -> Result<Vec<JobSummary>, EngineError>;

    /// Cancels a job; false when no job has this id.
    async fn cancel_job(&self, id: JobId) -> Result<bool, EngineError>;

    /// Takes a savepoint into 'execution.checkpointing.savepoint-dir', then
    /// stops the job; returns the savepoint's path.
    async fn stop_with_savepoint(&self, id: JobId) -> Result<String, EngineError>;
}

/// The dispatcher of a session that replays a program to plan it: the
/// catalog statements it replays start no jobs, and it submits none.
#[derive(Debug)]
struct PlanOnly;

#[async_trait]
impl Dispatcher for PlanOnly {
    async fn submit(&self, job: PlannedJob, _: JobProgram) -> Result<JobHandle, EngineError> {
        Err(EngineError::Internal(format!(
            "a planning session cannot run the job '{}'",
            job.graph.name
        )))
    }

    async fn list_jobs(&self) -> Result<Vec<JobSummary>, EngineError> {
        Ok(Vec::new())
    }

    async fn cancel_job(&self, _: JobId) -> Result<bool, EngineError> {
        Ok(false)
    }

    async fn stop_with_savepoint(&self, id: JobId) -> Result<String, EngineError> {
        Err(EngineError::Internal(format!(
            "a planning session runs no job '{id}'"
        )))
    }
}

/// Plans a program as the session that submitted it did: the same options,
/// the same catalog, the same statement.
pub async fn plan_program(program: &JobProgram) -> Result<PlannedJob, EngineError> {
    let mut session = Session::with_dispatcher(Arc::new(PlanOnly))?;
    for (key, value) in &program.config {
        session.set(key, value)?;
    }
    for statement in &program.catalog {
        for parsed in session.parse(statement)? {
            session.execute(parsed).await?;
        }
    }
    let mut statements = session.parse(&program.statement)?;
    let (Some(parsed), None) = (statements.pop(), statements.pop()) else {
        return Err(EngineError::Session(format!(
            "a job program must hold one statement: {}",
            program.statement
        )));
    };
    let mut job = session.plan_job(parsed.statement)?;
    job.graph.name.clone_from(&program.name);
    Ok(job)
}
