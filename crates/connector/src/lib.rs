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

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// A table as a connector sees it: its physical columns, the metadata it is
/// asked for, and its options.
///
/// Computed columns and watermarks are the planner's business. A source
/// produces [`TableSpec::read_schema`]: the physical columns followed by the
/// metadata columns; a sink writes [`TableSpec::write_schema`]: the physical
/// columns followed by the persisted (not `VIRTUAL`) metadata columns.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The table's name as written in SQL, for messages.
    pub name: String,
    /// The physical columns, in declaration order.
    pub schema: SchemaRef,
    /// `col TYPE METADATA [FROM 'key']` columns, in declaration order.
    pub metadata: Vec<MetadataColumn>,
    /// The PRIMARY KEY columns, empty when the table has none.
    pub primary_key: Vec<String>,
    /// The `PARTITIONED BY` columns (physical ones), empty when the table
    /// is not partitioned; only connectors that say
    /// [`Connector::supports_partitioning`] get such tables.
    pub partition_keys: Vec<String>,
    /// The WITH options, including `connector`.
    pub options: TableOptions,
}

impl TableSpec {
    /// A table with only physical columns and no key.
    pub fn new(name: impl Into<String>, schema: SchemaRef, options: TableOptions) -> Self {
        Self {
            name: name.into(),
            schema,
            metadata: Vec::new(),
            primary_key: Vec::new(),
            partition_keys: Vec::new(),
            options,
        }
    }

    /// What a source of this table produces: the physical columns, then
    /// one column per metadata column (named after the column, typed as declared).
    pub fn read_schema(&self) -> SchemaRef {
        self.with_metadata(self.metadata.iter())
    }

    /// What a sink of this table receives: the physical columns, then one
    /// column per persisted metadata column.
    pub fn write_schema(&self) -> SchemaRef {
        self.with_metadata(self.persisted_metadata())
    }

    /// The metadata columns an INSERT writes, in declaration order.
    pub fn persisted_metadata(&self) -> impl Iterator<Item = &MetadataColumn> {
        self.metadata.iter().filter(|m| !m.is_virtual)
    }

    fn with_metadata<'a>(&self, metadata: impl Iterator<Item = &'a MetadataColumn>) -> SchemaRef {
        let mut metadata = metadata.peekable();
        if metadata.peek().is_none() {
            return Arc::clone(&self.schema);
        }
        let fields = self
            .schema
            .fields()
            .iter()
            .cloned()
            .chain(metadata.map(|m| Arc::new(Field::new(&m.name, m.data_type.clone(), true))));
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    }
}

/// A column filled from the connector's metadata about each record.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataColumn {
    /// The column's name in the table.
    pub name: String,
    /// The metadata key (`FROM 'key'`, else the column's name).
    pub key: String,
    /// The declared type; the connector casts its value to it.
    pub data_type: DataType,
    /// `VIRTUAL`: read only. Otherwise an INSERT writes it too.
    pub is_virtual: bool,
}

/// A metadata key a connector can read, with the type it produces.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataKey {
    pub key: &'static str,
    pub data_type: DataType,
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

    /// Whether the connector lays out a `PARTITIONED BY` table's rows by
    /// their partition values (Flink's `SupportsPartitioning`).
    fn supports_partitioning(&self) -> bool {
        false
    }

    /// The metadata keys this connector's sources can fill.
    fn readable_metadata(&self) -> Vec<MetadataKey> {
        Vec::new()
    }

    /// The metadata keys this connector's sinks can write, with the type
    /// they take.
    fn writable_metadata(&self) -> Vec<MetadataKey> {
        Vec::new()
    }

    /// Checks that the connector can write each of a table's persisted
    /// metadata columns, before an INSERT into it is planned.
    fn check_writable_metadata(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        let writable = self.writable_metadata();
        for column in table.persisted_metadata() {
            let Some(known) = writable.iter().find(|k| k.key == column.key) else {
                let valid: Vec<&str> = writable.iter().map(|k| k.key).collect();
                return Err(ConnectorError::Unsupported {
                    connector: self.name().to_string(),
                    what: format!(
                        "cannot write metadata '{}' (column '{}'); {}. Declare the column \
                         VIRTUAL to only read it",
                        column.key,
                        column.name,
                        if valid.is_empty() {
                            "it writes no metadata".to_string()
                        } else {
                            format!("it writes: {}", valid.join(", "))
                        }
                    ),
                });
            };
            if !arrow::compute::can_cast_types(&column.data_type, &known.data_type) {
                return Err(ConnectorError::Unsupported {
                    connector: self.name().to_string(),
                    what: format!(
                        "writes metadata '{}' as {}, which column '{}' of type {} cannot be cast to",
                        column.key, known.data_type, column.name, column.data_type
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks a table's metadata columns: each key must be one the
    /// connector reads, and its value must cast to the declared type.
    fn check_metadata(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        let readable = self.readable_metadata();
        for column in &table.metadata {
            let Some(known) = readable.iter().find(|k| k.key == column.key) else {
                let valid: Vec<&str> = readable.iter().map(|k| k.key).collect();
                return Err(ConnectorError::Unsupported {
                    connector: self.name().to_string(),
                    what: if valid.is_empty() {
                        format!(
                            "provides no metadata, so column '{}' cannot read '{}'",
                            column.name, column.key
                        )
                    } else {
                        format!(
                            "has no metadata key '{}' (column '{}'); valid keys are: {}",
                            column.key,
                            column.name,
                            valid.join(", ")
                        )
                    },
                });
            };
            if !arrow::compute::can_cast_types(&known.data_type, &column.data_type) {
                return Err(ConnectorError::Unsupported {
                    connector: self.name().to_string(),
                    what: format!(
                        "provides metadata '{}' as {}, which cannot be read into column '{}' of type {}",
                        column.key, known.data_type, column.name, column.data_type
                    ),
                });
            }
        }
        Ok(())
    }

    /// The table as a lookup join's dimension table; `None` when the
    /// connector cannot serve lookups.
    fn create_lookup(
        &self,
        _table: &TableSpec,
    ) -> Result<Option<Arc<dyn LookupTableFactory>>, ConnectorError> {
        Ok(None)
    }
}
