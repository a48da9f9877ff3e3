//! The one list of connectors a session can use.

use std::sync::Arc;

use weir_connector::{Connector, ConnectorError, TableSpec};

/// Connectors by their `'connector'` option value.
#[derive(Debug, Clone)]
pub struct ConnectorRegistry {
    connectors: Vec<Arc<dyn Connector>>,
}

impl Default for ConnectorRegistry {
    /// Every connector Weir ships.
    fn default() -> Self {
        Self {
            connectors: vec![
                Arc::new(weir_connector_filesystem::FileSystemConnector),
                Arc::new(weir_connector_datagen::DatagenConnector::default()),
                Arc::new(weir_connector_print::PrintConnector::default()),
                Arc::new(weir_connector_print::BlackholeConnector::default()),
                Arc::new(weir_connector_kafka::KafkaConnector),
                Arc::new(weir_connector_kafka::UpsertKafkaConnector),
                Arc::new(weir_connector_nexmark::NexmarkConnector),
            ],
        }
    }
}

impl ConnectorRegistry {
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.connectors.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names
    }

    /// The connector a table's options select.
    pub fn for_table(&self, table: &TableSpec) -> Result<&Arc<dyn Connector>, ConnectorError> {
        let Some(name) = table.options.get("connector") else {
            return Err(ConnectorError::MissingOption {
                connector: format!("(none: valid connectors are {})", self.names().join(", ")),
                key: "connector".to_string(),
            });
        };
        self.connectors
            .iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| ConnectorError::InvalidOption {
                key: "connector".to_string(),
                value: name.to_string(),
                reason: format!(
                    "no such connector; valid connectors are: {}",
                    self.names().join(", ")
                ),
            })
    }
}
