//! The streaming runtime: job graphs of operators exchanging Arrow batches
//! and control messages, run as tokio tasks.
//!
//! # How data flows
//!
//! A [`JobGraph`] is a list of [`JobVertex`]es. Each vertex is one chain of
//! operators that runs as `parallelism` subtasks; the chain starts at a
//! source (a connector's [`SourceReader`](weir_connector::SourceReader)) or
//! at the [`JobEdge`]s from upstream vertices, and ends in a sink, in edges
//! to downstream vertices, or in the channel that returns a query's rows to
//! the client.
//!
//! Between subtasks flow [`Message`]s over bounded channels, so a slow
//! consumer slows its producers and memory stays bounded: record batches
//! ([`StreamBatch`](weir_common::StreamBatch), with row kinds when the stream
//! is a changelog), watermarks, checkpoint barriers and the end of input. A
//! subtask's [`InputGate`](exchange::InputGate) merges its input channels and
//! keeps the minimum watermark over them; its output partitions batches by
//! the edge's [`Partitioning`] and broadcasts control messages.
//!
//! Inside a subtask, [`Operator`]s are plain synchronous functions from
//! batches to batches; the task's run loop calls them through one metrics
//! helper, so every operator reports rows in/out and busy time the same way.
//! Bounded inputs are finite streams through the same operators (Kappa): at
//! the end of input a source emits the final watermark and `EndOfInput`,
//! every operator flushes, sinks finish their files, and the job ends.
//!
//! [`deploy`] is the task executor: it runs the share of a job's subtasks
//! placed in one worker's slots and hands back the channels that cross to
//! other workers. Scheduling, failover and the job's clients live in
//! `weir-cluster`, whose embedded cluster runs a coordinator and a worker
//! in one process; a client follows a job through a [`JobHandle`].

pub mod checkpoint;
pub mod deploy;
pub mod error;
pub mod exchange;
pub mod graph;
pub mod job;
pub mod message;
pub mod metrics;
pub mod operator;
pub mod operators;
pub mod restart;
mod source_task;
mod task;

pub use error::RuntimeError;
pub use graph::{
    JobEdge, JobGraph, JobVertex, Partitioning, SinkSpec, SourceSpec, VertexId, VertexInput,
    VertexOutput,
};
pub use job::{CancelHook, JobHandle, JobId, JobStatus, JobSummary, SubmittedJob};
pub use message::{CheckpointBarrier, Message};
pub use metrics::{InputPlan, JobMetrics, JobProgress, OperatorMetrics};
pub use operator::{
    CloningFactory, Collector, Operator, OperatorContext, OperatorFactory, OperatorState,
};
