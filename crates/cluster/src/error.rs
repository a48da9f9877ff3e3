//! The cluster's errors.

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// An option of the cluster's configuration has a bad value.
    #[error("{0}")]
    Config(String),
    /// A coordinator or worker could not be reached.
    #[error("cannot reach {address}: {message}")]
    Connect { address: String, message: String },
    /// A call was refused or failed; the message comes from the other side.
    #[error("{0}")]
    Rpc(String),
    /// Listening on an address failed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] weir_engine::EngineError),
    #[error(transparent)]
    Runtime(#[from] weir_runtime::RuntimeError),
    /// A frame that does not decode.
    #[error("bad frame: {0}")]
    Frame(String),
}

impl From<tonic::Status> for ClusterError {
    fn from(status: tonic::Status) -> Self {
        ClusterError::Rpc(status.message().to_string())
    }
}

impl From<ClusterError> for tonic::Status {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Engine(e) => tonic::Status::invalid_argument(e.to_string()),
            // A failure a retry cannot get past, as a job master tells it
            // from the others.
            ClusterError::Runtime(e) if !e.is_recoverable() => {
                tonic::Status::failed_precondition(e.to_string())
            }
            other => tonic::Status::internal(other.to_string()),
        }
    }
}
