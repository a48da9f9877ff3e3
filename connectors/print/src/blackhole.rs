//! The `blackhole` sink: swallows every row, as Flink's blackhole connector,
//! for measuring a query without the cost of writing its result.

use std::sync::Arc;

use async_trait::async_trait;
use weir_common::StreamBatch;
use weir_connector::{
    Connector, ConnectorError, OptionRules, SinkContext, SinkFactory, SinkWriter, SourceFactory,
    TableSpec,
};

const CONNECTOR: &str = "blackhole";

/// The `blackhole` connector.
#[derive(Debug, Default)]
pub struct BlackholeConnector;

impl Connector for BlackholeConnector {
    fn name(&self) -> &'static str {
        CONNECTOR
    }

    fn option_rules(&self, _table: &TableSpec) -> Result<OptionRules, ConnectorError> {
        Ok(OptionRules::new(std::iter::empty::<&str>()))
    }

    fn create_source(&self, _table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            connector: CONNECTOR.to_string(),
            what: "can only be used as a sink; it cannot be read from".to_string(),
        })
    }

    fn create_sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
        self.validate(table)?;
        Ok(Arc::new(BlackholeSink))
    }
}

/// Creates writers that drop what they receive.
#[derive(Debug)]
struct BlackholeSink;

#[async_trait]
impl SinkFactory for BlackholeSink {
    fn accepts_updates(&self) -> bool {
        true
    }

    fn needs_update_before(&self) -> bool {
        false
    }

    async fn create_writer(
        &self,
        _context: SinkContext,
    ) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        Ok(Box::new(BlackholeWriter))
    }
}

struct BlackholeWriter;

#[async_trait]
impl SinkWriter for BlackholeWriter {
    async fn write(&mut self, _batch: StreamBatch) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Int32Array, UInt8Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use weir_connector::TableOptions;

    use super::*;

    fn table(options: &[(&str, &str)]) -> TableSpec {
        let map: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TableSpec::new(
            "sink",
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, true)])),
            TableOptions::new(map),
        )
    }

    #[tokio::test]
    async fn swallows_updates() {
        let table = table(&[("connector", "blackhole")]);
        let sink = BlackholeConnector.create_sink(&table).expect("sink");
        assert!(sink.accepts_updates());
        assert!(!sink.needs_update_before());
        let mut writer = sink
            .create_writer(SinkContext {
                subtask: 0,
                parallelism: 1,
                job_id: "job".to_string(),
                checkpointing: false,
            })
            .await
            .expect("writer");
        let data = RecordBatch::try_new(
            table.schema.clone(),
            vec![Arc::new(Int32Array::from(vec![1, 2]))],
        )
        .expect("batch");
        let batch =
            StreamBatch::try_new_changelog(data, UInt8Array::from(vec![1, 2])).expect("changelog");
        writer.write(batch).await.expect("write");
        writer.finish().await.expect("finish");
    }

    #[test]
    fn takes_no_options_and_cannot_be_read() {
        let err = BlackholeConnector
            .create_sink(&table(&[("connector", "blackhole"), ("path", "/tmp")]))
            .expect_err("unknown option");
        let text = err.to_string();
        assert!(
            text.contains("'path'") && text.contains("valid options are: connector"),
            "{text}"
        );
        let err = BlackholeConnector
            .create_source(&table(&[("connector", "blackhole")]))
            .expect_err("no source");
        assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err}");
    }
}
