//! The WITH options of `kafka` and `upsert-kafka` tables, as Flink's Kafka
//! SQL connector names them, parsed once into a [`KafkaConfig`].

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use rdkafka::ClientConfig;
use regex::Regex;
use weir_connector::{ConnectorError, OptionRules, TableSpec};
use weir_format::{FormatConfig, FormatKind};

pub(crate) const TOPIC: &str = "topic";
pub(crate) const TOPIC_PATTERN: &str = "topic-pattern";
pub(crate) const BOOTSTRAP: &str = "properties.bootstrap.servers";
pub(crate) const GROUP_ID: &str = "properties.group.id";
const PROPERTIES: &str = "properties.";
const FORMAT: &str = "format";
const VALUE_FORMAT: &str = "value.format";
const KEY_FORMAT: &str = "key.format";
const KEY_FIELDS: &str = "key.fields";
const KEY_FIELDS_PREFIX: &str = "key.fields-prefix";
const VALUE_FIELDS_INCLUDE: &str = "value.fields-include";
const STARTUP_MODE: &str = "scan.startup.mode";
const STARTUP_OFFSETS: &str = "scan.startup.specific-offsets";
const STARTUP_TIMESTAMP: &str = "scan.startup.timestamp-millis";
const BOUNDED_MODE: &str = "scan.bounded.mode";
const BOUNDED_OFFSETS: &str = "scan.bounded.specific-offsets";
const BOUNDED_TIMESTAMP: &str = "scan.bounded.timestamp-millis";
const DISCOVERY_INTERVAL: &str = "scan.topic-partition-discovery.interval";
const SINK_PARTITIONER: &str = "sink.partitioner";
const SINK_DELIVERY: &str = "sink.delivery-guarantee";
const SINK_SEMANTIC: &str = "sink.semantic";
const SINK_TRANSACTIONAL_PREFIX: &str = "sink.transactional-id-prefix";
const SINK_PARALLELISM: &str = "sink.parallelism";
const SINK_FLUSH_ROWS: &str = "sink.buffer-flush.max-rows";
const SINK_FLUSH_INTERVAL: &str = "sink.buffer-flush.interval";

/// Which topics a table reads.
#[derive(Debug, Clone)]
pub(crate) enum Topics {
    /// 'topic': one name or a `;`-separated list.
    Names(Vec<String>),
    /// 'topic-pattern': every topic whose whole name matches.
    Pattern(Regex),
}

/// Where reading starts in each partition ('scan.startup.mode').
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StartupMode {
    Earliest,
    Latest,
    GroupOffsets,
    Timestamp(i64),
    Specific(BTreeMap<i32, i64>),
}

/// Where reading stops in each partition ('scan.bounded.mode').
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BoundedMode {
    Unbounded,
    Latest,
    GroupOffsets,
    Timestamp(i64),
    Specific(BTreeMap<i32, i64>),
}

/// 'sink.partitioner'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Partitioner {
    /// Kafka's: by the key's murmur2 hash, else spread by the client.
    Default,
    /// Each sink subtask writes to one partition.
    Fixed,
    /// Rows go to the partitions in turn.
    RoundRobin,
}

/// 'sink.delivery-guarantee'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryGuarantee {
    None,
    AtLeastOnce,
    ExactlyOnce,
}

/// The key part of a record: which columns, in which format.
#[derive(Debug, Clone)]
pub(crate) struct KeySpec {
    pub format: FormatConfig,
    /// Physical column indices, in 'key.fields' order.
    pub fields: Vec<usize>,
    /// The key format's schema: the key columns without 'key.fields-prefix'.
    pub schema: SchemaRef,
}

/// Everything a Kafka table's options say, checked.
#[derive(Debug, Clone)]
pub(crate) struct KafkaConfig {
    pub connector: &'static str,
    pub table: String,
    pub topics: Topics,
    /// 'properties.*' without the prefix, for librdkafka.
    pub properties: BTreeMap<String, String>,
    pub startup: StartupMode,
    pub bounded: BoundedMode,
    pub key: Option<KeySpec>,
    pub value_format: FormatConfig,
    /// Physical column indices the value holds, in table order.
    pub value_fields: Vec<usize>,
    pub value_schema: SchemaRef,
    pub partitioner: Partitioner,
    pub delivery: DeliveryGuarantee,
    pub transactional_prefix: Option<String>,
    /// upsert-kafka: the key is the primary key, a null value deletes it.
    pub upsert: bool,
}

/// The option keys of a table, its formats' keys included.
pub(crate) fn option_rules(table: &TableSpec, upsert: bool) -> Result<OptionRules, ConnectorError> {
    let mut rules = OptionRules::new([
        TOPIC,
        "properties.*",
        VALUE_FORMAT,
        KEY_FORMAT,
        KEY_FIELDS_PREFIX,
        VALUE_FIELDS_INCLUDE,
        BOUNDED_MODE,
        BOUNDED_OFFSETS,
        BOUNDED_TIMESTAMP,
        SINK_PARALLELISM,
        SINK_DELIVERY,
        SINK_TRANSACTIONAL_PREFIX,
    ]);
    if upsert {
        rules.extend([SINK_FLUSH_ROWS, SINK_FLUSH_INTERVAL]);
    } else {
        rules.extend([
            TOPIC_PATTERN,
            FORMAT,
            KEY_FIELDS,
            STARTUP_MODE,
            STARTUP_OFFSETS,
            STARTUP_TIMESTAMP,
            DISCOVERY_INTERVAL,
            SINK_PARTITIONER,
            SINK_SEMANTIC,
        ]);
    }
    for (prefix, key) in [("", FORMAT), ("value.", VALUE_FORMAT), ("key.", KEY_FORMAT)] {
        if let Some(name) = table.options.get(key) {
            let config = format_config(table, prefix, name)?;
            rules.extend(
                FormatConfig::option_keys(config.kind())
                    .iter()
                    .map(|k| format!("{prefix}{k}")),
            );
        }
    }
    Ok(rules)
}

/// The format `name` with its options, read from keys under `prefix`.
fn format_config(
    table: &TableSpec,
    prefix: &str,
    name: &str,
) -> Result<FormatConfig, ConnectorError> {
    let own: BTreeMap<String, String> = table
        .options
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.to_string())))
        .collect();
    let config = FormatConfig::from_options(name, &own)?;
    if config.kind() == FormatKind::Parquet {
        return Err(invalid(
            &format!("{prefix}format"),
            name,
            "parquet is a file format; Kafka records use csv, json, raw or debezium-json",
        ));
    }
    Ok(config)
}

fn invalid(key: &str, value: &str, reason: &str) -> ConnectorError {
    ConnectorError::InvalidOption {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn choice<'a>(
    table: &'a TableSpec,
    key: &str,
    choices: &[&'static str],
    default: &'static str,
) -> Result<&'static str, ConnectorError> {
    match table.options.get(key) {
        None => Ok(default),
        Some(value) => choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(value.trim()))
            .copied()
            .ok_or_else(|| {
                let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
                invalid(key, value, &format!("expected one of {}", list.join(", ")))
            }),
    }
}

fn millis(table: &TableSpec, key: &str, mode_key: &str) -> Result<i64, ConnectorError> {
    table
        .options
        .parse::<i64>(key, "milliseconds since the epoch")?
        .ok_or_else(|| {
            invalid(
                mode_key,
                "timestamp",
                &format!("the 'timestamp' mode needs the option '{key}'"),
            )
        })
}

/// `partition:0,offset:42;partition:1,offset:300`, as Flink writes it.
fn specific_offsets(
    table: &TableSpec,
    key: &str,
    mode_key: &str,
) -> Result<BTreeMap<i32, i64>, ConnectorError> {
    let text = table.options.get(key).ok_or_else(|| {
        invalid(
            mode_key,
            "specific-offsets",
            &format!("the 'specific-offsets' mode needs the option '{key}'"),
        )
    })?;
    let bad = || {
        invalid(
            key,
            text,
            "expected 'partition:0,offset:42;partition:1,offset:300'",
        )
    };
    let mut offsets = BTreeMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (partition, offset) = entry.split_once(',').ok_or_else(bad)?;
        let partition = partition
            .trim()
            .strip_prefix("partition:")
            .and_then(|p| p.trim().parse::<i32>().ok())
            .ok_or_else(bad)?;
        let offset = offset
            .trim()
            .strip_prefix("offset:")
            .and_then(|o| o.trim().parse::<i64>().ok())
            .filter(|o| *o >= 0)
            .ok_or_else(bad)?;
        offsets.insert(partition, offset);
    }
    if offsets.is_empty() {
        return Err(bad());
    }
    Ok(offsets)
}

impl KafkaConfig {
    pub(crate) fn parse(table: &TableSpec, upsert: bool) -> Result<Self, ConnectorError> {
        let connector = if upsert { "upsert-kafka" } else { "kafka" };
        option_rules(table, upsert)?.check(connector, &table.options)?;
        let topics = match (table.options.get(TOPIC), table.options.get(TOPIC_PATTERN)) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    TOPIC_PATTERN,
                    table.options.get(TOPIC_PATTERN).unwrap_or_default(),
                    "set either 'topic' or 'topic-pattern', not both",
                ));
            }
            (Some(names), None) => {
                let names: Vec<String> = names
                    .split(';')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect();
                if names.is_empty() {
                    return Err(invalid(TOPIC, "", "expected a topic name"));
                }
                if upsert && names.len() > 1 {
                    return Err(invalid(
                        TOPIC,
                        &names.join(";"),
                        "upsert-kafka reads and writes exactly one topic",
                    ));
                }
                Topics::Names(names)
            }
            (None, Some(pattern)) => Topics::Pattern(
                Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| invalid(TOPIC_PATTERN, pattern, &e.to_string()))?,
            ),
            (None, None) => {
                return Err(ConnectorError::MissingOption {
                    connector: connector.to_string(),
                    key: if upsert {
                        TOPIC.to_string()
                    } else {
                        "topic' or 'topic-pattern".to_string()
                    },
                });
            }
        };
        table.options.required(connector, BOOTSTRAP)?;
        let properties: BTreeMap<String, String> = table
            .options
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(PROPERTIES)?.to_string(), v.to_string())))
            .collect();
        let mut client = ClientConfig::new();
        for (key, value) in &properties {
            client.set(key, value);
        }
        client.create_native_config().map_err(|e| {
            ConnectorError::external("invalid 'properties.*' option for the Kafka client", e)
        })?;

        let startup = if upsert {
            StartupMode::Earliest
        } else {
            match choice(
                table,
                STARTUP_MODE,
                &[
                    "earliest-offset",
                    "latest-offset",
                    "group-offsets",
                    "timestamp",
                    "specific-offsets",
                ],
                "group-offsets",
            )? {
                "earliest-offset" => StartupMode::Earliest,
                "latest-offset" => StartupMode::Latest,
                "timestamp" => {
                    StartupMode::Timestamp(millis(table, STARTUP_TIMESTAMP, STARTUP_MODE)?)
                }
                "specific-offsets" => {
                    StartupMode::Specific(specific_offsets(table, STARTUP_OFFSETS, STARTUP_MODE)?)
                }
                _ => StartupMode::GroupOffsets,
            }
        };
        let bounded = match choice(
            table,
            BOUNDED_MODE,
            &[
                "unbounded",
                "latest-offset",
                "group-offsets",
                "timestamp",
                "specific-offsets",
            ],
            "unbounded",
        )? {
            "latest-offset" => BoundedMode::Latest,
            "group-offsets" => BoundedMode::GroupOffsets,
            "timestamp" => BoundedMode::Timestamp(millis(table, BOUNDED_TIMESTAMP, BOUNDED_MODE)?),
            "specific-offsets" => {
                BoundedMode::Specific(specific_offsets(table, BOUNDED_OFFSETS, BOUNDED_MODE)?)
            }
            _ => BoundedMode::Unbounded,
        };
        if let Some(text) = table.options.get(DISCOVERY_INTERVAL) {
            weir_common::duration::parse_duration(text).map_err(|_| {
                invalid(
                    DISCOVERY_INTERVAL,
                    text,
                    "expected a duration such as '5 min' or '30 s'",
                )
            })?;
        }

        let value_format_name = match (table.options.get(FORMAT), table.options.get(VALUE_FORMAT)) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    VALUE_FORMAT,
                    table.options.get(VALUE_FORMAT).unwrap_or_default(),
                    "set either 'format' or 'value.format', not both",
                ));
            }
            (Some(name), None) => ("", name),
            (None, Some(name)) => ("value.", name),
            (None, None) => {
                return Err(ConnectorError::MissingOption {
                    connector: connector.to_string(),
                    key: if upsert {
                        VALUE_FORMAT.to_string()
                    } else {
                        "format' or 'value.format".to_string()
                    },
                });
            }
        };
        let value_format = format_config(table, value_format_name.0, value_format_name.1)?;
        if upsert && value_format.is_changelog() {
            // The topic's keys already make it a changelog, as in Flink.
            return Err(invalid(
                VALUE_FORMAT,
                value_format_name.1,
                "'upsert-kafka' reads and writes insert-only value formats (csv, json, raw); \
                 for a topic of change events use 'connector' = 'kafka'",
            ));
        }
        let prefix = table.options.get(KEY_FIELDS_PREFIX).unwrap_or_default();
        let key_names: Vec<String> = if upsert {
            if table.primary_key.is_empty() {
                return Err(ConnectorError::Unsupported {
                    connector: connector.to_string(),
                    what: format!(
                        "needs a PRIMARY KEY on table '{}': add PRIMARY KEY (...) NOT ENFORCED",
                        table.name
                    ),
                });
            }
            table.primary_key.clone()
        } else {
            table
                .options
                .get(KEY_FIELDS)
                .map(|f| {
                    f.split(';')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let key = match (table.options.get(KEY_FORMAT), key_names.is_empty()) {
            (None, true) => None,
            (None, false) => {
                return Err(ConnectorError::MissingOption {
                    connector: connector.to_string(),
                    key: KEY_FORMAT.to_string(),
                });
            }
            (Some(name), true) => {
                return Err(invalid(
                    KEY_FORMAT,
                    name,
                    "a key format needs the key columns in 'key.fields'",
                ));
            }
            (Some(name), false) => {
                let mut fields = Vec::new();
                let mut key_fields = Vec::new();
                for column in &key_names {
                    let index = table.schema.index_of(column).map_err(|_| {
                        invalid(
                            KEY_FIELDS,
                            &key_names.join(";"),
                            &format!("'{column}' is not a physical column of the table"),
                        )
                    })?;
                    let field = table.schema.field(index);
                    let stripped = field.name().strip_prefix(prefix).ok_or_else(|| {
                        invalid(
                            KEY_FIELDS_PREFIX,
                            prefix,
                            &format!("key column '{column}' does not start with the prefix"),
                        )
                    })?;
                    fields.push(index);
                    key_fields.push(field.as_ref().clone().with_name(stripped));
                }
                let format = format_config(table, "key.", name)?;
                if format.is_changelog() {
                    return Err(invalid(
                        KEY_FORMAT,
                        name,
                        "a key format writes and reads inserts only (csv, json, raw)",
                    ));
                }
                Some(KeySpec {
                    format,
                    fields,
                    schema: Arc::new(Schema::new(key_fields)),
                })
            }
        };
        let except_key =
            choice(table, VALUE_FIELDS_INCLUDE, &["ALL", "EXCEPT_KEY"], "ALL")? == "EXCEPT_KEY";
        if !prefix.is_empty() && !except_key {
            return Err(invalid(
                KEY_FIELDS_PREFIX,
                prefix,
                "a key prefix needs 'value.fields-include' = 'EXCEPT_KEY'",
            ));
        }
        let value_fields: Vec<usize> = (0..table.schema.fields().len())
            .filter(|i| !except_key || !key.as_ref().is_some_and(|k| k.fields.contains(i)))
            .collect();
        let value_schema = Arc::new(table.schema.project(&value_fields)?);

        let partitioner = match choice(
            table,
            SINK_PARTITIONER,
            &["default", "fixed", "round-robin"],
            "default",
        )? {
            "fixed" => Partitioner::Fixed,
            "round-robin" => Partitioner::RoundRobin,
            _ => Partitioner::Default,
        };
        let delivery_key = if table.options.get(SINK_DELIVERY).is_none()
            && table.options.get(SINK_SEMANTIC).is_some()
        {
            SINK_SEMANTIC
        } else {
            SINK_DELIVERY
        };
        let delivery = match choice(
            table,
            delivery_key,
            &[
                "at-least-once",
                "exactly-once",
                "none",
                "at_least_once",
                "exactly_once",
            ],
            "at-least-once",
        )? {
            "exactly-once" | "exactly_once" => DeliveryGuarantee::ExactlyOnce,
            "none" => DeliveryGuarantee::None,
            _ => DeliveryGuarantee::AtLeastOnce,
        };
        let transactional_prefix = table
            .options
            .get(SINK_TRANSACTIONAL_PREFIX)
            .map(String::from);
        if delivery == DeliveryGuarantee::ExactlyOnce && transactional_prefix.is_none() {
            return Err(ConnectorError::MissingOption {
                connector: format!("{connector}' with 'exactly-once"),
                key: SINK_TRANSACTIONAL_PREFIX.to_string(),
            });
        }
        Ok(Self {
            connector,
            table: table.name.clone(),
            topics,
            properties,
            startup,
            bounded,
            key,
            value_format,
            value_fields,
            value_schema,
            partitioner,
            delivery,
            transactional_prefix,
            upsert,
        })
    }

    /// Checks what only reading needs: a group to take offsets from.
    pub(crate) fn check_source(&self) -> Result<(), ConnectorError> {
        let needs_group = matches!(self.startup, StartupMode::GroupOffsets)
            || matches!(self.bounded, BoundedMode::GroupOffsets);
        if needs_group && !self.properties.contains_key("group.id") {
            return Err(ConnectorError::MissingOption {
                connector: format!(
                    "{}' reading with 'group-offsets' (the default 'scan.startup.mode')",
                    self.connector
                ),
                key: GROUP_ID.to_string(),
            });
        }
        Ok(())
    }

    /// A librdkafka configuration with the table's properties.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The single topic a sink writes to.
    pub(crate) fn sink_topic(&self) -> Result<&str, ConnectorError> {
        match &self.topics {
            Topics::Names(names) if names.len() == 1 => Ok(&names[0]),
            Topics::Names(names) => Err(invalid(
                TOPIC,
                &names.join(";"),
                "a sink writes to exactly one topic",
            )),
            Topics::Pattern(pattern) => Err(invalid(
                TOPIC_PATTERN,
                pattern.as_str(),
                "a sink writes to one 'topic', not a pattern",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field};
    use weir_connector::TableOptions;

    use super::*;

    fn table(options: &[(&str, &str)]) -> TableSpec {
        let map = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TableSpec::new(
            "t",
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new("v", DataType::Int64, true),
            ])),
            TableOptions::new(map),
        )
    }

    const BASE: [(&str, &str); 4] = [
        ("connector", "kafka"),
        ("topic", "a; b"),
        ("properties.bootstrap.servers", "127.0.0.1:1"),
        ("format", "json"),
    ];

    fn with(extra: &[(&str, &str)]) -> TableSpec {
        let mut options = BASE.to_vec();
        options.extend_from_slice(extra);
        table(&options)
    }

    fn error(extra: &[(&str, &str)]) -> String {
        KafkaConfig::parse(&with(extra), false)
            .expect_err("invalid options")
            .to_string()
    }

    #[test]
    fn defaults_follow_flink() {
        let config = KafkaConfig::parse(
            &with(&[
                ("properties.group.id", "g"),
                ("json.ignore-parse-errors", "true"),
            ]),
            false,
        )
        .unwrap();
        assert!(matches!(&config.topics, Topics::Names(n) if n == &["a", "b"]));
        assert_eq!(config.startup, StartupMode::GroupOffsets);
        assert_eq!(config.bounded, BoundedMode::Unbounded);
        assert_eq!(config.delivery, DeliveryGuarantee::AtLeastOnce);
        assert_eq!(config.partitioner, Partitioner::Default);
        assert!(config.value_format.ignore_parse_errors());
        assert_eq!(config.value_fields, vec![0, 1]);
    }

    #[test]
    fn startup_and_bounded_modes() {
        let config = KafkaConfig::parse(
            &with(&[
                ("scan.startup.mode", "specific-offsets"),
                (
                    "scan.startup.specific-offsets",
                    "partition:0,offset:42;partition:1,offset:300",
                ),
                ("scan.bounded.mode", "timestamp"),
                ("scan.bounded.timestamp-millis", "1700000000000"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(
            config.startup,
            StartupMode::Specific(BTreeMap::from([(0, 42), (1, 300)]))
        );
        assert_eq!(config.bounded, BoundedMode::Timestamp(1_700_000_000_000));
        let grouped = KafkaConfig::parse(&with(&[("scan.startup.mode", "group-offsets")]), false)
            .unwrap()
            .check_source()
            .unwrap_err()
            .to_string();
        assert!(grouped.contains("properties.group.id"), "{grouped}");
        assert!(
            error(&[("scan.startup.mode", "timestamp")]).contains("scan.startup.timestamp-millis")
        );
        assert!(
            error(&[
                ("scan.startup.mode", "specific-offsets"),
                ("scan.startup.specific-offsets", "0:42")
            ])
            .contains("partition:0,offset:42")
        );
        assert!(error(&[("scan.startup.mode", "first")]).contains("'earliest-offset'"));
    }

    #[test]
    fn keys_and_value_fields() {
        let config = KafkaConfig::parse(
            &with(&[
                ("scan.startup.mode", "earliest-offset"),
                ("key.format", "raw"),
                ("key.fields", "k"),
                ("value.fields-include", "EXCEPT_KEY"),
            ]),
            false,
        )
        .unwrap();
        let key = config.key.unwrap();
        assert_eq!(key.fields, vec![0]);
        assert_eq!(config.value_fields, vec![1]);
        assert!(error(&[("key.fields", "k")]).contains("key.format"));
        assert!(error(&[("key.format", "raw"), ("key.fields", "x")]).contains("'x'"));
    }

    #[test]
    fn unknown_options_and_properties_are_named() {
        assert!(error(&[("scan.startup.mod", "x")]).contains("'scan.startup.mod'"));
        assert!(error(&[("json.bogus", "1")]).contains("json.bogus"));
        let message = error(&[("properties.no.such.property", "1")]);
        assert!(message.contains("no.such.property"), "{message}");
    }

    #[test]
    fn upsert_needs_a_primary_key() {
        let spec = table(&[
            ("connector", "upsert-kafka"),
            ("topic", "t"),
            ("properties.bootstrap.servers", "127.0.0.1:1"),
            ("key.format", "json"),
            ("value.format", "json"),
        ]);
        let message = KafkaConfig::parse(&spec, true).unwrap_err().to_string();
        assert!(message.contains("PRIMARY KEY"), "{message}");
        let mut keyed = spec.clone();
        keyed.primary_key = vec!["k".to_string()];
        let config = KafkaConfig::parse(&keyed, true).unwrap();
        assert_eq!(config.key.unwrap().fields, vec![0]);
        assert_eq!(config.startup, StartupMode::Earliest);
        // The topic's keys make the changelog; the values must be plain rows.
        let mut events = keyed.clone();
        let mut options = keyed.options.as_map().clone();
        options.insert("value.format".to_string(), "debezium-json".to_string());
        events.options = TableOptions::new(options);
        let message = KafkaConfig::parse(&events, true).unwrap_err().to_string();
        assert!(message.contains("insert-only value formats"), "{message}");
    }
}
