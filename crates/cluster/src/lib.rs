//! One job across processes and machines: a coordinator, workers, and the
//! clients that submit jobs to them, modelled on Flink's JobManager and
//! TaskManagers.
//!
//! ```text
//!   weir sql / weir run --coordinator ─ SubmitJob(program) ─> Coordinator
//!                                                             ├ dispatcher: job ids, status, results
//!                                                             ├ resource manager: workers, slots, heartbeats
//!                                                             └ job master per job: plan, splits, placement, restarts
//!                                      DeployTasks(program, slots, splits) ─┤
//!                                    ┌─────────────────────────────────────┴─────┐
//!                                  Worker A ─ Exchange(stream of frames) ─> Worker B
//! ```
//!
//! - A client plans its statement itself, then submits the SQL program the
//!   job graph came from ([`weir_engine::JobProgram`]). The coordinator plans
//!   it again, plans the sources' splits once, places the job's subtasks in
//!   free slots across workers, and sends every worker the program, the
//!   placement and the splits.
//! - Each worker plans the same graph and runs its share with the runtime's
//!   task executor ([`weir_runtime::deploy`]), the one the embedded cluster
//!   uses. Channels between subtasks on one worker stay in memory; a channel
//!   to a subtask on another worker becomes one gRPC stream of [`exchange`]
//!   frames (Arrow IPC batches, watermarks, barriers, end of input, in
//!   order). HTTP/2 flow control and bounded channels carry backpressure
//!   from a slow consumer back to its producers.
//! - A query's rows go from the workers to the coordinator, which streams
//!   them to the client.
//! - Workers heartbeat; a worker that misses 'heartbeat.timeout' is lost,
//!   and its jobs restart by 'restart-strategy.type'.
//! - The embedded cluster of `weir run` and `weir sql` is a coordinator and
//!   one worker in the client's process ([`embedded`]): the same parts over
//!   the same RPC, not a second way to run jobs.
//! - Every call carries the caller's Weir version and, when the cluster has
//!   one, its token ([`auth`]). The REST API ([`rest`]) shows jobs, their
//!   graphs with per-operator metrics, workers and slots, and serves
//!   Prometheus metrics.

pub mod auth;
pub mod checkpoints;
pub mod client;
pub mod config;
pub mod coordinator;
pub mod embedded;
pub mod error;
pub mod exchange;
mod progress;
pub mod rest;
pub mod worker;

/// The messages and services of `proto/weir.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("weir.cluster.v1");
}

pub use client::ClusterClient;
pub use config::ClusterConfig;
pub use coordinator::Coordinator;
pub use embedded::EmbeddedCluster;
pub use error::ClusterError;
pub use worker::Worker;
