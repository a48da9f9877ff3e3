//! The job graph: chained operator vertices and the edges between them.
//!
//! The planner builds it; [`deploy`](crate::deploy) expands each vertex
//! into `parallelism` subtasks and each edge into channels between them.

use std::fmt;
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use weir_connector::{SinkFactory, SourceFactory};

use crate::operator::OperatorFactory;
use crate::operators::{Calc, WatermarkStrategy};

/// Index of a vertex in [`JobGraph::vertices`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VertexId(pub usize);

impl fmt::Display for VertexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a batch leaving one vertex is spread over the next vertex's subtasks.
#[derive(Debug, Clone)]
pub enum Partitioning {
    /// Subtask i sends to subtask i; both sides have the same parallelism.
    Forward,
    /// Rows go to the subtask owning the hash of these key expressions.
    Hash(Vec<Arc<dyn PhysicalExpr>>),
    /// Batches go round-robin over all subtasks.
    Rebalance,
    /// Every subtask receives every batch.
    Broadcast,
    /// Everything goes to subtask 0.
    Global,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioning::Forward => f.write_str("FORWARD"),
            Partitioning::Hash(keys) => {
                let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                write!(f, "HASH[{}]", keys.join(", "))
            }
            Partitioning::Rebalance => f.write_str("REBALANCE"),
            Partitioning::Broadcast => f.write_str("BROADCAST"),
            Partitioning::Global => f.write_str("GLOBAL"),
        }
    }
}

/// An input edge of a vertex.
#[derive(Debug, Clone)]
pub struct JobEdge {
    pub from: VertexId,
    pub partitioning: Partitioning,
    /// Which input of the vertex's first operator the edge feeds (0 for
    /// single-input operators; 0 and 1 for the two sides of a join).
    pub input: usize,
}

/// A table read by a vertex.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The table's name, for plans and errors.
    pub table: String,
    pub factory: Arc<dyn SourceFactory>,
    /// Physical column indices to read; `None` for all.
    pub projection: Option<Vec<usize>>,
    /// Row transformations applied per split before watermarks are taken
    /// (computed columns of the table).
    pub transforms: Vec<Calc>,
    /// The table's watermark, generated per split.
    pub watermark: Option<WatermarkStrategy>,
    /// 'table.exec.source.idle-timeout': a split (or the whole subtask) that
    /// reads nothing for this long stops holding back the watermark.
    pub idle_timeout: Option<std::time::Duration>,
}

/// A table written by a vertex.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub table: String,
    pub factory: Arc<dyn SinkFactory>,
}

/// Where a vertex's subtasks get their input.
#[derive(Debug, Clone)]
pub enum VertexInput {
    Source(SourceSpec),
    Edges(Vec<JobEdge>),
}

/// Where a vertex's subtasks send their output.
#[derive(Debug, Clone)]
pub enum VertexOutput {
    /// To the vertices whose edges name this one.
    Downstream,
    Sink(SinkSpec),
    /// Back to the client that submitted the query.
    Collect,
}

/// One chain of operators, run as `parallelism` subtasks.
#[derive(Debug, Clone)]
pub struct JobVertex {
    pub id: VertexId,
    pub parallelism: usize,
    pub input: VertexInput,
    pub operators: Vec<Arc<dyn OperatorFactory>>,
    pub output: VertexOutput,
}

impl JobVertex {
    /// Flink-style name: `Source: bids -> Calc(...) -> Sink: picked`.
    pub fn name(&self) -> String {
        let mut parts = Vec::new();
        if let VertexInput::Source(source) = &self.input {
            parts.push(format!("Source: {}", source.table));
            for t in &source.transforms {
                parts.push(crate::Operator::name(t).to_string());
            }
            if let Some(w) = &source.watermark {
                parts.push(format!("WatermarkAssigner({})", w.display()));
            }
        }
        parts.extend(self.operators.iter().map(|o| o.name()));
        match &self.output {
            VertexOutput::Sink(sink) => parts.push(format!("Sink: {}", sink.table)),
            VertexOutput::Collect => parts.push("Collect".to_string()),
            VertexOutput::Downstream => {}
        }
        parts.join(" -> ")
    }
}

/// A job: what the planner submits and the cluster runs.
#[derive(Debug, Clone)]
pub struct JobGraph {
    pub name: String,
    /// In topological order: every edge goes from a lower id to a higher one.
    pub vertices: Vec<JobVertex>,
    /// Flink's max parallelism: the number of key groups.
    pub max_parallelism: usize,
    /// How the job takes checkpoints; `None` for none.
    pub checkpointing: Option<weir_common::CheckpointingOptions>,
}

impl JobGraph {
    /// Checks the invariants the runtime relies on.
    pub fn validate(&self) -> Result<(), crate::RuntimeError> {
        let invalid = |m: String| Err(crate::RuntimeError::InvalidGraph(m));
        for (i, v) in self.vertices.iter().enumerate() {
            if v.id.0 != i {
                return invalid(format!("vertex {i} has id {}", v.id));
            }
            if v.parallelism == 0 {
                return invalid(format!("vertex {i} has parallelism 0"));
            }
            if let VertexInput::Edges(edges) = &v.input {
                if edges.is_empty() {
                    return invalid(format!("vertex {i} has no input"));
                }
                for e in edges {
                    let Some(from) = self.vertices.get(e.from.0).filter(|_| e.from.0 < i) else {
                        return invalid(format!(
                            "vertex {i} reads from vertex {} that does not precede it",
                            e.from
                        ));
                    };
                    if !matches!(from.output, VertexOutput::Downstream) {
                        return invalid(format!(
                            "vertex {} feeds vertex {i} but ends in a sink",
                            e.from
                        ));
                    }
                    if matches!(e.partitioning, Partitioning::Forward)
                        && from.parallelism != v.parallelism
                    {
                        return invalid(format!(
                            "forward edge {} -> {i} joins parallelism {} to {}",
                            e.from, from.parallelism, v.parallelism
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The edges leaving `vertex`, with the consuming vertex.
    pub fn downstream(&self, vertex: VertexId) -> Vec<(VertexId, &JobEdge)> {
        self.vertices
            .iter()
            .filter_map(|v| match &v.input {
                VertexInput::Edges(edges) => Some(
                    edges
                        .iter()
                        .filter(move |e| e.from == vertex)
                        .map(move |e| (v.id, e)),
                ),
                VertexInput::Source(_) => None,
            })
            .flatten()
            .collect()
    }
}

impl fmt::Display for JobGraph {
    /// The job graph as EXPLAIN prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.vertices {
            writeln!(
                f,
                "Vertex {} [parallelism={}]: {}",
                v.id,
                v.parallelism,
                v.name()
            )?;
            if let VertexInput::Edges(edges) = &v.input {
                for e in edges {
                    writeln!(
                        f,
                        "  <- vertex {} ({}, input {})",
                        e.from, e.partitioning, e.input
                    )?;
                }
            }
        }
        Ok(())
    }
}
