//! The connector API: what a connector (filesystem, datagen, print, Kafka, ...)
//! implements so that SQL tables can read from and write to it.
//!
//! Data flows like this: the SQL front end resolves `'connector' = '...'` in a
//! table's WITH options to a [`Connector`] through the engine's registry, which
//! checks the options and creates a [`SourceFactory`] or a [`SinkFactory`] for
//! the table. When a job starts, the source factory plans [`SourceSplit`]s
//! (files, byte ranges, partitions); the runtime spreads them over the
//! source's subtasks and opens one [`SourceReader`] per subtask, which yields
//! Arrow record batches until a bounded input ends. Each sink subtask opens a
//! [`SinkWriter`] that receives changelog batches and makes them visible when
//! a checkpoint completes or the input ends.
//!
//! This crate knows nothing about the runtime or the SQL planner: connectors
//! depend on it, never on the engine.

mod error;
mod lookup;
mod options;
mod sink;
mod source;

pub use error::ConnectorError;
pub use lookup::{LookupTableFactory, read_all};
pub use options::{OptionRules, TableOptions};
pub use sink::{SinkContext, SinkFactory, SinkWriter};
pub use source::{
    Boundedness, SourceContext, SourceEvent, SourceFactory, SourceMetrics, SourceReader,
    SourceSplit,
};

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

/// A table as a connector sees it: its physical columns and its options.
///
/// Computed columns, watermarks and metadata handling are the planner's
/// business; the connector reads and writes exactly `schema`.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The table's name as written in SQL, for messages.
    pub name: String,
    /// The physical columns, in declaration order.
    pub schema: SchemaRef,
    /// The WITH options, including `connector`.
    pub options: TableOptions,
}

/// A family of tables reachable through one `'connector' = '<name>'` value.
pub trait Connector: Send + Sync + Debug {
    /// The value of the `connector` option that selects this connector.
    fn name(&self) -> &'static str;

    /// The options this connector accepts for `table` (its format's included).
    fn option_rules(&self, table: &TableSpec) -> Result<OptionRules, ConnectorError>;

    /// Checks the options of a table declared with this connector, so that
    /// `CREATE TABLE` fails early rather than the job that first uses it.
    fn validate(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        self.option_rules(table)?.check(self.name(), &table.options)
    }

    /// A source reading `table`; an error if the connector cannot read.
    fn create_source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError>;

    /// A sink writing `table`; an error if the connector cannot write.
    fn create_sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError>;

    /// The table as a lookup join's dimension table; `None` when the
    /// connector cannot serve lookups.
    fn create_lookup(
        &self,
        _table: &TableSpec,
    ) -> Result<Option<Arc<dyn LookupTableFactory>>, ConnectorError> {
        Ok(None)
    }
}
