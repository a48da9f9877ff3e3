//! The `datagen` connector: a source of generated rows, as Flink's datagen,
//! for trying queries without external systems.
//!
//! Data flows like this: [`DatagenConnector`] parses a table's WITH options
//! into one generator per column (`options`), the source plans one split per
//! subtask, each owning a share of `number-of-rows` and of every sequence, and
//! each subtask's reader makes Arrow batches of its splits' rows
//! (`generate`), paced to its part of `rows-per-second` (`source`).
//!
//! Options: `rows-per-second` (default 10000, for the whole source),
//! `number-of-rows` (bounded when set), and per column `fields.<c>.kind`
//! (`random` or `sequence`), `fields.<c>.min`/`max` (random numbers),
//! `fields.<c>.max-past` (random timestamps), `fields.<c>.length` and
//! `var-len` (random strings), `fields.<c>.start`/`end` (sequences, which
//! bound the source) and `fields.<c>.null-rate`. Datagen cannot be written to.

mod generate;
mod options;
mod source;

use std::sync::Arc;

use weir_connector::{
    Connector, ConnectorError, OptionRules, SinkFactory, SourceFactory, TableSpec,
};

use crate::options::{CONNECTOR, DatagenConfig};
use crate::source::DatagenSource;

/// The `datagen` connector.
#[derive(Debug, Default)]
pub struct DatagenConnector;

impl Connector for DatagenConnector {
    fn name(&self) -> &'static str {
        CONNECTOR
    }

    fn option_rules(&self, _table: &TableSpec) -> Result<OptionRules, ConnectorError> {
        Ok(options::option_rules())
    }

    /// Checks the option keys and also every value against the columns, so
    /// that a bad bound fails at `CREATE TABLE`.
    fn validate(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        DatagenConfig::parse(table).map(|_| ())
    }

    fn create_source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let config = DatagenConfig::parse(table)?;
        Ok(Arc::new(DatagenSource::new(
            table.name.clone(),
            table.schema.clone(),
            config,
        )))
    }

    fn create_sink(&self, _table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            connector: CONNECTOR.to_string(),
            what: "can only be used as a source; it cannot be written to".to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
