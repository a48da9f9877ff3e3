//! Errors that stop a job, each naming the task (and operator) that failed.

use weir_connector::ConnectorError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A source or sink failed, e.g. a malformed record or a missing file.
    #[error("{task}: {source}")]
    Connector {
        task: String,
        #[source]
        source: ConnectorError,
    },
    /// An operator failed, e.g. a division by zero in an expression.
    #[error("{task}: {operator}: {source}")]
    Operator {
        task: String,
        operator: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// The job graph is not one the runtime can deploy.
    #[error("invalid job graph: {0}")]
    InvalidGraph(String),
    /// The job was cancelled before it finished.
    #[error("the job was cancelled")]
    Cancelled,
    /// The job failed elsewhere (on a cluster), with this message.
    #[error("{0}")]
    Failed(String),
    /// A checkpoint could not be taken, written or restored.
    #[error("checkpointing: {0}")]
    Checkpoint(String),
    /// A broken invariant inside the runtime.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A changelog-batch error inside an operator, as DataFusion's error type.
pub(crate) fn batch_error(e: weir_common::CommonError) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

impl RuntimeError {
    /// Whether running the job again may get past this error. A malformed
    /// record, an option or feature the job cannot have, or an operator
    /// that cannot be checkpointed fails every attempt the same way, so a
    /// restart strategy does not retry it (where Flink would, forever).
    pub fn is_recoverable(&self) -> bool {
        match self {
            RuntimeError::Connector { source, .. } => !matches!(
                source,
                ConnectorError::UnknownOption { .. }
                    | ConnectorError::MissingOption { .. }
                    | ConnectorError::InvalidOption { .. }
                    | ConnectorError::Unsupported { .. }
                    | ConnectorError::Format(_)
            ),
            RuntimeError::Operator { source, .. } => !matches!(
                source,
                datafusion::error::DataFusionError::NotImplemented(_)
            ),
            RuntimeError::InvalidGraph(_) | RuntimeError::Cancelled | RuntimeError::Internal(_) => {
                false
            }
            RuntimeError::Failed(_) | RuntimeError::Checkpoint(_) => true,
        }
    }

    pub(crate) fn operator(
        task: &str,
        operator: &str,
        source: datafusion::error::DataFusionError,
    ) -> Self {
        RuntimeError::Operator {
            task: task.to_string(),
            operator: operator.to_string(),
            source,
        }
    }

    pub(crate) fn connector(task: &str, source: ConnectorError) -> Self {
        RuntimeError::Connector {
            task: task.to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_a_rerun_may_get_past_are_recoverable() {
        let missing = RuntimeError::connector(
            "Source: bids",
            ConnectorError::NotFound("cannot read 'bids.csv'".into()),
        );
        assert!(missing.is_recoverable());
        let unsupported = RuntimeError::connector(
            "Sink: out",
            ConnectorError::Unsupported {
                connector: "kafka".into(),
                what: "writes inserts only".into(),
            },
        );
        assert!(!unsupported.is_recoverable());
        let not_checkpointable = RuntimeError::operator(
            "GroupAggregate",
            "GroupAggregate",
            datafusion::error::DataFusionError::NotImplemented(
                "COUNT(DISTINCT v) over an updating input cannot be checkpointed yet".into(),
            ),
        );
        assert!(!not_checkpointable.is_recoverable());
        assert!(!RuntimeError::Cancelled.is_recoverable());
    }
}
