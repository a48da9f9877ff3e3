//! The `nexmark` connector: the Nexmark benchmark's event generator as a
//! source of people, auctions and bids.
//!
//! Data flows like this: [`NexmarkConnector`] checks a table's options and
//! binds its columns to event fields (`columns`); the source (`source`)
//! splits the event sequence over the subtasks, and each reader turns its
//! events (`model`, deterministic by event id and 'seed') into Arrow
//! batches, on vectors that return to the reader when downstream drops
//! the batch (`recycle`).
//!
//! A table is either one kind of event, flat:
//!
//! ```sql
//! CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING,
//!   url STRING, dateTime TIMESTAMP(3), extra STRING,
//!   WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
//! WITH ('connector' = 'nexmark', 'table' = 'bid', 'events.num' = '10000000');
//! ```
//!
//! or nexmark-flink's union table (`event_type INT, person ROW<...>,
//! auction ROW<...>, bid ROW<...>`, without 'table'), so its DDL runs
//! unchanged. Tables with the same options agree: the bid table's bids
//! are the union table's bids.
//!
//! Options (nexmark-flink's names): 'events.num' (0, the default, is
//! endless), 'first-event.rate' (events per second of event time, default
//! 10000; 'next-event.rate' must equal it), 'rate.limited' (emit no faster
//! than event time advances; default false, full speed),
//! 'person.proportion' / 'auction.proportion' / 'bid.proportion' (1/3/46),
//! 'bid.hot-ratio.auctions' (2), 'bid.hot-ratio.bidders' (4),
//! 'auction.hot-ratio.sellers' (4), 'person.avg-size' / 'auction.avg-size'
//! / 'bid.avg-size' (200b/500b/100b), and Weir's 'table' and 'seed'.

mod columns;
mod model;
mod options;
mod recycle;
mod source;

use std::sync::Arc;

use weir_connector::{
    Connector, ConnectorError, OptionRules, SinkFactory, SourceFactory, TableSpec,
};

use crate::options::NexmarkConfig;
use crate::source::NexmarkSource;

/// The value of `'connector'` that selects the generator.
pub(crate) const CONNECTOR: &str = "nexmark";

/// The `nexmark` connector.
#[derive(Debug, Default)]
pub struct NexmarkConnector;

impl Connector for NexmarkConnector {
    fn name(&self) -> &'static str {
        CONNECTOR
    }

    fn option_rules(&self, _table: &TableSpec) -> Result<OptionRules, ConnectorError> {
        Ok(options::option_rules())
    }

    /// Checks the values and binds the columns, so that a column Nexmark
    /// cannot fill fails at `CREATE TABLE`.
    fn validate(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        NexmarkConfig::parse(table).map(|_| ())
    }

    fn create_source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let config = NexmarkConfig::parse(table)?;
        Ok(Arc::new(NexmarkSource::new(
            config,
            Arc::clone(&table.schema),
        )))
    }

    fn create_sink(&self, _table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            connector: CONNECTOR.to_string(),
            what: "can only be used as a source; it cannot be written to".to_string(),
        })
    }
}
