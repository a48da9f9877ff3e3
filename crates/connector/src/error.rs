//! Errors raised by connectors, phrased for the user who wrote the table's DDL.

/// An error raised by a connector when it is configured, read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("unsupported option '{key}' for connector '{connector}'; valid options are: {}", valid.join(", "))]
    UnknownOption {
        connector: String,
        key: String,
        valid: Vec<String>,
    },
    #[error("connector '{connector}' requires the option '{key}'")]
    MissingOption { connector: String, key: String },
    #[error("invalid value '{value}' for option '{key}': {reason}")]
    InvalidOption {
        key: String,
        value: String,
        reason: String,
    },
    #[error("connector '{connector}' {what}")]
    Unsupported { connector: String, what: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    External {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Format(#[from] weir_format::FormatError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Common(#[from] weir_common::CommonError),
}

impl ConnectorError {
    /// Wraps an error from a library the connector uses, saying what was being done.
    pub fn external(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ConnectorError::External {
            context: context.into(),
            source: Box::new(source),
        }
    }
}
