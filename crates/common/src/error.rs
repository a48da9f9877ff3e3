//! Errors of the shared types: bad configuration values and malformed batches.

/// An error in a configuration value or a changelog batch.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    /// A known option was set to a value it does not accept.
    #[error("invalid value '{value}' for option '{key}': {reason}")]
    InvalidOption {
        key: String,
        value: String,
        reason: String,
    },
    /// A duration string that is not of Flink's form (`500 ms`, `1s`, `1 min`).
    #[error(
        "invalid duration '{0}': expected a number and a unit such as '500 ms', '10 s', '1 min', '2 h' or '1 d'"
    )]
    InvalidDuration(String),
    /// Parameters a window function does not accept.
    #[error("{0}")]
    InvalidWindow(String),
    /// A batch whose row kinds do not line up with its rows.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
