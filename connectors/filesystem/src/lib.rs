//! The `filesystem` connector: tables over files in a local directory or an
//! object store, in csv, json, raw or parquet.
//!
//! ```sql
//! CREATE TABLE bids (...) WITH (
//!   'connector' = 'filesystem',
//!   'path' = 'data/bids',          -- a file, a directory, a glob, or s3://, gs://, az://, file://, memory:// URL
//!   'format' = 'csv',              -- csv | json | raw | parquet, with the format's own options
//!   'sink.rolling-policy.file-size' = '128MB'
//! );
//! ```
//!
//! A table `PARTITIONED BY (...)` keeps its rows in one directory per
//! partition, `<path>/k1=v1/k2=v2/` ([`partition`]).
//!
//! As a source the table is bounded: its files are listed when the job
//! starts and read as splits ([`source`]). As a sink each subtask writes part
//! files that appear when complete ([`sink`]). As the dimension table of a
//! lookup join (`JOIN t FOR SYSTEM_TIME AS OF o.proc_time`) its files are
//! read whole into memory and read again after 'lookup.join.cache.ttl'
//! (60 min by default), as Flink's filesystem connector does.

mod location;
mod parquet_read;
pub mod partition;
pub mod sink;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use weir_connector::{
    Connector, ConnectorError, LookupTableFactory, OptionRules, SinkFactory, SourceFactory,
    TableSpec,
};
use weir_format::FormatConfig;

pub use location::Location;

const PATH: &str = "path";
const FORMAT: &str = "format";
const ROLLING_FILE_SIZE: &str = "sink.rolling-policy.file-size";
const LOOKUP_CACHE_TTL: &str = "lookup.join.cache.ttl";
const PARTITION_DEFAULT_NAME: &str = "partition.default-name";
const DEFAULT_LOOKUP_CACHE_TTL: Duration = Duration::from_secs(60 * 60);

/// Tables over files.
#[derive(Debug, Default)]
pub struct FileSystemConnector;

impl FileSystemConnector {
    fn format(table: &TableSpec) -> Result<FormatConfig, ConnectorError> {
        let format = table.options.required("filesystem", FORMAT)?;
        Ok(FormatConfig::from_options(format, table.options.as_map())?)
    }

    fn location(table: &TableSpec) -> Result<Location, ConnectorError> {
        Location::parse(table.options.required("filesystem", PATH)?)
    }

    fn file_source(table: &TableSpec) -> Result<source::FileSource, ConnectorError> {
        Ok(source::FileSource {
            location: Self::location(table)?,
            format: Self::format(table)?,
            schema: Arc::clone(&table.schema),
            split_bytes: source::SPLIT_BYTES,
            read_sizes: source::ReadSizes::DEFAULT,
            partitioning: Self::partitioning(table)?,
        })
    }

    fn partitioning(
        table: &TableSpec,
    ) -> Result<Option<Arc<partition::Partitioning>>, ConnectorError> {
        let default_name = table
            .options
            .get(PARTITION_DEFAULT_NAME)
            .unwrap_or(partition::DEFAULT_PARTITION_NAME);
        Ok(
            partition::Partitioning::new(&table.schema, &table.partition_keys, default_name)?
                .map(Arc::new),
        )
    }
}

/// The files of a table, read whole for a lookup join.
#[derive(Debug)]
struct FileLookup {
    source: source::FileSource,
    ttl: Duration,
}

#[async_trait]
impl LookupTableFactory for FileLookup {
    fn cache_ttl(&self) -> Duration {
        self.ttl
    }

    async fn load(&self) -> Result<Vec<arrow::record_batch::RecordBatch>, ConnectorError> {
        weir_connector::read_all(&self.source).await
    }
}

fn lookup_cache_ttl(table: &TableSpec) -> Result<Duration, ConnectorError> {
    let Some(text) = table.options.get(LOOKUP_CACHE_TTL) else {
        return Ok(DEFAULT_LOOKUP_CACHE_TTL);
    };
    weir_common::duration::parse_duration(text).map_err(|_| ConnectorError::InvalidOption {
        key: LOOKUP_CACHE_TTL.to_string(),
        value: text.to_string(),
        reason: "expected a duration such as '10 min', '30s' or '500 ms'".to_string(),
    })
}

impl Connector for FileSystemConnector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn option_rules(&self, table: &TableSpec) -> Result<OptionRules, ConnectorError> {
        let mut rules = OptionRules::new([
            PATH,
            FORMAT,
            ROLLING_FILE_SIZE,
            LOOKUP_CACHE_TTL,
            PARTITION_DEFAULT_NAME,
        ]);
        if let Some(format) = table.options.get(FORMAT) {
            let config = FormatConfig::from_options(format, table.options.as_map())?;
            rules.extend(FormatConfig::option_keys(config.kind()).iter().copied());
        }
        Ok(rules)
    }

    fn validate(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        self.option_rules(table)?
            .check(self.name(), &table.options)?;
        Self::format(table)?;
        Self::location(table)?;
        Self::partitioning(table)?;
        rolling_bytes(table)?;
        lookup_cache_ttl(table)?;
        sink::parquet_properties(&Self::format(table)?)?;
        Ok(())
    }

    fn supports_partitioning(&self) -> bool {
        true
    }

    fn create_source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        Ok(Arc::new(Self::file_source(table)?))
    }

    fn create_lookup(
        &self,
        table: &TableSpec,
    ) -> Result<Option<Arc<dyn LookupTableFactory>>, ConnectorError> {
        Ok(Some(Arc::new(FileLookup {
            source: Self::file_source(table)?,
            ttl: lookup_cache_ttl(table)?,
        })))
    }

    fn create_sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
        let location = Self::location(table)?;
        if location.glob.is_some() {
            return Err(ConnectorError::InvalidOption {
                key: PATH.to_string(),
                value: location.display,
                reason: "a sink writes into a directory; remove the glob characters".to_string(),
            });
        }
        Ok(Arc::new(sink::FileSink {
            location,
            format: Self::format(table)?,
            schema: Arc::clone(&table.schema),
            rolling_bytes: rolling_bytes(table)?,
            partitioning: Self::partitioning(table)?,
        }))
    }
}

/// 'sink.rolling-policy.file-size' as Flink writes memory sizes: `128MB`, `1 gb`, `4096`.
fn rolling_bytes(table: &TableSpec) -> Result<u64, ConnectorError> {
    let Some(text) = table.options.get(ROLLING_FILE_SIZE) else {
        return Ok(sink::DEFAULT_ROLLING_BYTES);
    };
    parse_memory_size(text).ok_or_else(|| ConnectorError::InvalidOption {
        key: ROLLING_FILE_SIZE.to_string(),
        value: text.to_string(),
        reason: "expected a size such as '128MB', '1gb' or '4096' (bytes)".to_string(),
    })
}

fn parse_memory_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..split].parse().ok()?;
    let multiplier: u64 = match text[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(multiplier).filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_follow_flink() {
        assert_eq!(parse_memory_size("128MB"), Some(128 << 20));
        assert_eq!(parse_memory_size("1 gb"), Some(1 << 30));
        assert_eq!(parse_memory_size("4096"), Some(4096));
        assert_eq!(parse_memory_size("lots"), None);
        assert_eq!(parse_memory_size("0"), None);
    }
}
