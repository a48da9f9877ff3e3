//! The engine's errors, and how they are shown to users.

use weir_sql::{Position, SqlError, caret_snippet};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("table '{table}': {source}")]
    Table {
        table: String,
        #[source]
        source: weir_connector::ConnectorError,
    },
    #[error(transparent)]
    Config(#[from] weir_common::CommonError),
    #[error("job failed: {0}")]
    Job(#[from] weir_runtime::RuntimeError),
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error("{0}")]
    Session(String),
    /// A query that cannot run as asked, e.g. updates into an append-only sink.
    #[error("{0}")]
    Plan(String),
    /// A remote cluster refused or failed a request.
    #[error("{0}")]
    Cluster(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<arrow::error::ArrowError> for EngineError {
    fn from(e: arrow::error::ArrowError) -> Self {
        EngineError::Sql(SqlError::DataFusion(e.into()))
    }
}

impl From<datafusion::error::DataFusionError> for EngineError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        EngineError::Sql(SqlError::DataFusion(e))
    }
}

impl EngineError {
    pub fn position(&self) -> Option<Position> {
        match self {
            EngineError::Sql(e) => e.position(),
            _ => None,
        }
    }

    /// The message a user sees: the error, and for SQL errors the line of
    /// `sql` it points at with a caret under the column.
    pub fn render(&self, sql: &str) -> String {
        let message = match self {
            EngineError::Sql(e @ SqlError::Parse { .. }) => e.to_string(),
            EngineError::Sql(e) => match e.position() {
                Some(p) => format!("{} (at {p})", e.message()),
                None => e.message(),
            },
            other => other.to_string(),
        };
        match self.position().and_then(|p| caret_snippet(sql, p)) {
            Some(snippet) => format!("{message}\n{snippet}"),
            None => message,
        }
    }
}
