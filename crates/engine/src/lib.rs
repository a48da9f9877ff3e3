//! The engine: a SQL [`Session`] that parses Flink SQL, keeps the catalog
//! and configuration, plans statements into streaming job graphs
//! ([`stream_planner`]) and hands them to a [`Dispatcher`]: a cluster's
//! client (`weir-cluster`: the embedded cluster, or a remote one).
//!
//! ```text
//! SQL text ─ weir-sql ─> logical plan ─ stream_planner ─> JobGraph ─ weir-runtime ─> rows / sink files
//!                                     (connectors from the registry)
//! ```

pub mod dispatcher;
pub mod error;
pub mod registry;
pub mod session;
pub mod stream_planner;

pub use dispatcher::{Dispatcher, JobKind, JobProgram, PlannedJob, plan_program};
pub use error::EngineError;
pub use registry::ConnectorRegistry;
pub use session::{JobSubmission, QueryResult, ResultTable, Session, StatementResult};
pub use weir_runtime::JobProgress;
