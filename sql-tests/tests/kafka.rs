//! Kafka pipelines in SQL against a broker.
//!
//! The broker is the one `.ci/run` starts (tansu, a Kafka-compatible broker,
//! address in `WEIR_KAFKA_BOOTSTRAP`); without that variable each test runs
//! against librdkafka's in-process mock cluster, which speaks the same
//! protocol. Tests that inject broker failures always use the mock cluster,
//! the only one that can fail on demand. Every test uses topics of its own,
//! so tests can share a broker and run in parallel.
//!
//! Expected results are computed here from the generated records, not
//! taken from Weir's output.
//!
//! tansu 0.6 answers a "latest offset" request with the first offset of a
//! partition's last record batch plus one, and a by-time request with the
//! time batches were stored; so records are written one batch each (see
//! [`ONE_RECORD_PER_BATCH`]) and by-time tests use wall-clock times.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use weir_sql_tests::WeirDb;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Producer options for Weir's sink tables in these tests: one record per
/// batch, so tansu reports the latest offset right.
const ONE_RECORD_PER_BATCH: &str = "'properties.batch.num.messages' = '1'";

/// A broker for one test: the shared one, or a mock cluster of its own.
struct Broker {
    bootstrap: String,
    /// Kept alive for the test's duration.
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    /// Makes topic names unique per test run.
    prefix: String,
}

impl Broker {
    fn new(test: &str) -> Self {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let prefix = format!("{test}-{nonce}");
        match std::env::var("WEIR_KAFKA_BOOTSTRAP") {
            Ok(bootstrap) if !bootstrap.is_empty() => Self {
                bootstrap,
                mock: None,
                prefix,
            },
            _ => Self::mock(test),
        }
    }

    fn mock(test: &str) -> Self {
        let mock = MockCluster::new(3).expect("mock cluster");
        Self {
            bootstrap: mock.bootstrap_servers(),
            mock: Some(mock),
            prefix: test.to_string(),
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    async fn create_topic(&self, name: &str, partitions: i32) -> String {
        let topic = self.topic(name);
        if let Some(mock) = &self.mock {
            mock.create_topic(&topic, partitions, 1)
                .expect("mock topic");
            return topic;
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client");
        let results = admin
            .create_topics(
                &[NewTopic::new(
                    &topic,
                    partitions,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
            .expect("create topic");
        for result in results {
            result.expect("topic created");
        }
        topic
    }

    fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("linger.ms", "0")
            // Java's partitioner, which Weir's sink also uses.
            .set("partitioner", "murmur2_random")
            .create()
            .expect("producer")
    }

    /// Writes `records` (partition, key, value, timestamp), one batch each.
    async fn produce(&self, topic: &str, records: &[TestRecord]) {
        let producer = self.producer();
        for record in records {
            let mut message: FutureRecord<'_, str, str> =
                FutureRecord::to(topic).partition(record.partition);
            if let Some(key) = &record.key {
                message = message.key(key);
            }
            if let Some(value) = &record.value {
                message = message.payload(value);
            }
            if let Some(ts) = record.timestamp {
                message = message.timestamp(ts);
            }
            if let Some((name, value)) = &record.header {
                message = message.headers(OwnedHeaders::new().insert(Header {
                    key: name,
                    value: Some(value),
                }));
            }
            producer
                .send_result(message)
                .expect("enqueue")
                .await
                .expect("delivered")
                .expect("acknowledged");
        }
    }

    /// Every record in `topic` as (key, value), in offset order per partition.
    ///
    /// Reads up to each partition's high watermark, then asks for the
    /// watermarks again and goes on until they stand still: a broker may
    /// acknowledge a record a moment before its watermark moves past it.
    fn consume_all(&self, topic: &str) -> Vec<(Option<String>, Option<String>)> {
        let client = || -> BaseConsumer {
            ClientConfig::new()
                .set("bootstrap.servers", &self.bootstrap)
                .set("group.id", "test-reader")
                .create()
                .expect("consumer")
        };
        // Offsets are asked for on a client of their own: the reading one
        // answers only between its long-polling fetches.
        let offsets = client();
        let consumer = client();
        let metadata = offsets
            .fetch_metadata(Some(topic), TIMEOUT)
            .expect("metadata");
        let partitions: Vec<i32> = metadata.topics()[0]
            .partitions()
            .iter()
            .map(|p| p.id())
            .collect();
        drop(metadata);
        let high_watermarks = || -> Vec<i64> {
            partitions
                .iter()
                .map(|&p| {
                    offsets
                        .fetch_watermarks(topic, p, TIMEOUT)
                        .expect("watermarks")
                        .1
                })
                .collect()
        };
        // The next offset to read, per partition (indexed like `partitions`).
        let mut next: Vec<i64> = partitions
            .iter()
            .map(|&p| {
                offsets
                    .fetch_watermarks(topic, p, TIMEOUT)
                    .expect("watermarks")
                    .0
            })
            .collect();
        let mut high = high_watermarks();
        let mut list = TopicPartitionList::new();
        for &p in &partitions {
            list.add_partition_offset(topic, p, Offset::Beginning)
                .expect("offset");
        }
        consumer.assign(&list).expect("assign");
        drop(list);
        let mut records = Vec::new();
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            while next.iter().zip(&high).any(|(n, h)| n < h) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "topic '{topic}': read up to {next:?} of {high:?} within {TIMEOUT:?}"
                );
                if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                    let message = message.expect("message");
                    let index = partitions
                        .iter()
                        .position(|&p| p == message.partition())
                        .expect("an assigned partition");
                    next[index] = message.offset() + 1;
                    records.push((
                        message
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned()),
                        message
                            .payload()
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            let again = high_watermarks();
            if again == high {
                return records;
            }
            high = again;
        }
    }

    /// Commits `offset` for `group` on partition 0 of `topic`.
    fn commit(&self, topic: &str, group: &str, offset: i64) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, Offset::Offset(offset))
            .expect("offset");
        consumer.commit(&list, CommitMode::Sync).expect("commit");
    }
}

#[derive(Default, Clone)]
struct TestRecord {
    partition: i32,
    key: Option<String>,
    value: Option<String>,
    timestamp: Option<i64>,
    header: Option<(String, String)>,
}

fn value(partition: i32, value: &str) -> TestRecord {
    TestRecord {
        partition,
        value: Some(value.to_string()),
        ..TestRecord::default()
    }
}

async fn session() -> WeirDb {
    WeirDb::new(2).await.expect("session")
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect()
}

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

/// Bids as JSON: auction `i % 5`, price `i`, one second apart from
/// 2024-01-01 00:00:00, spread over three partitions.
fn bids(count: i64) -> Vec<TestRecord> {
    (0..count)
        .map(|i| {
            let json = format!(
                r#"{{"auction": {}, "price": {i}, "date_time": "2024-01-01 00:{:02}:{:02}"}}"#,
                i % 5,
                i / 60,
                i % 60
            );
            value((i % 3) as i32, &json)
        })
        .collect()
}

fn bids_table(broker: &Broker, topic: &str) -> String {
    format!(
        "CREATE TABLE bids (
           auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
           WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
         ) WITH (
           'connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{}',
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
           'format' = 'json');",
        broker.bootstrap
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_window_aggregation_to_kafka_and_files() {
    let broker = Broker::new("window");
    let input = broker.create_topic("bids", 3).await;
    let output = broker.create_topic("counts", 2).await;
    broker.produce(&input, &bids(300)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut db = session().await;
    let script = format!(
        "{bids}
         CREATE TABLE counts (window_start TIMESTAMP(3), auction BIGINT, n BIGINT, total BIGINT)
         WITH ('connector' = 'kafka', 'topic' = '{output}',
               'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json', {ONE_RECORD_PER_BATCH});
         CREATE TABLE counts_file (window_start TIMESTAMP(3), auction BIGINT, n BIGINT, total BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv');
         CREATE VIEW windowed AS
           SELECT window_start, auction, COUNT(*) AS n, SUM(price) AS total
           FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
           GROUP BY window_start, window_end, auction;
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO counts SELECT * FROM windowed;
           INSERT INTO counts_file SELECT * FROM windowed;
         END;",
        bids = bids_table(&broker, &input),
        bootstrap = broker.bootstrap,
        path = dir.path().display(),
    );
    db.rows(&script).await.expect("pipeline");

    // Window w holds bids 10w..10w+9; auction a gets the two with i % 5 == a.
    let mut expected = Vec::new();
    for w in 0..30i64 {
        for a in 0..5i64 {
            let prices: Vec<i64> = (10 * w..10 * w + 10).filter(|i| i % 5 == a).collect();
            let start = format!(
                "2024-01-01 00:{:02}:{:02}.000",
                (10 * w) / 60,
                (10 * w) % 60
            );
            expected.push(vec![
                start,
                a.to_string(),
                prices.len().to_string(),
                prices.iter().sum::<i64>().to_string(),
            ]);
        }
    }
    let expected = sorted(expected);

    // The file sink first: if it is right, the query was, and a wrong topic
    // points at the Kafka sink.
    let files = db.rows("SELECT * FROM counts_file").await.expect("files");
    assert_eq!(sorted(files), expected);
    let written = broker.consume_all(&output);
    assert_eq!(written.len(), expected.len(), "records in the output topic");
    assert!(written.iter().all(|(key, _)| key.is_none()));

    let read_back = format!(
        "CREATE TABLE counts_in (window_start TIMESTAMP(3), auction BIGINT, n BIGINT, total BIGINT)
         WITH ('connector' = 'kafka', 'topic' = '{output}',
               'properties.bootstrap.servers' = '{}',
               'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
               'format' = 'json');
         SELECT * FROM counts_in;",
        broker.bootstrap
    );
    assert_eq!(
        sorted(db.rows(&read_back).await.expect("read back")),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_and_bounded_modes_and_metadata() {
    let broker = Broker::new("modes");
    let topic = broker.create_topic("events", 1).await;
    let records: Vec<TestRecord> = (0..10)
        .map(|i| TestRecord {
            timestamp: Some(1_700_000_000_000 + 1000 * i),
            header: Some(("source".to_string(), format!("h{i}"))),
            ..value(0, &format!(r#"{{"id": {i}}}"#))
        })
        .collect();
    broker.produce(&topic, &records).await;
    // Reading commits the read offsets to the group, so each case that
    // uses a group has its own.
    broker.commit(&topic, "start-group", 7);
    broker.commit(&topic, "stop-group", 7);
    let mut db = session().await;
    let ids = |rows: Vec<Vec<String>>| -> Vec<i64> {
        let mut ids: Vec<i64> = rows.iter().map(|r| r[0].parse().expect("id")).collect();
        ids.sort();
        ids
    };
    // Records 0-4, then a moment, then 5-9, all stamped with the wall
    // clock, for the by-time modes.
    let timed = broker.create_topic("timed", 1).await;
    let json = |i: i64| value(0, &format!(r#"{{"id": {i}}}"#));
    broker
        .produce(&timed, &(0..5).map(json).collect::<Vec<_>>())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker
        .produce(&timed, &(5..10).map(json).collect::<Vec<_>>())
        .await;

    let mut cases: Vec<(&str, String, Vec<i64>)> = vec![
        (
            &topic,
            "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'".into(),
            (0..10).collect(),
        ),
        (
            &topic,
            "'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = 'partition:0,offset:4',
             'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = 'partition:0,offset:6'"
                .into(),
            vec![4, 5],
        ),
        (
            &topic,
            "'properties.group.id' = 'start-group', 'scan.startup.mode' = 'group-offsets',
             'scan.bounded.mode' = 'latest-offset'"
                .into(),
            vec![7, 8, 9],
        ),
        (
            &topic,
            "'scan.startup.mode' = 'latest-offset', 'scan.bounded.mode' = 'latest-offset'".into(),
            vec![],
        ),
        (
            &topic,
            "'properties.group.id' = 'stop-group', 'scan.startup.mode' = 'earliest-offset',
             'scan.bounded.mode' = 'group-offsets'"
                .into(),
            (0..7).collect(),
        ),
    ];
    // librdkafka's mock cluster answers by-time lookups with "no offset".
    if broker.mock.is_none() {
        cases.push((
            &timed,
            format!(
                "'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{between}',
                 'scan.bounded.mode' = 'latest-offset'"
            ),
            (5..10).collect(),
        ));
        cases.push((
            &timed,
            format!(
                "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'timestamp',
                 'scan.bounded.timestamp-millis' = '{between}'"
            ),
            (0..5).collect(),
        ));
    }
    for (n, (topic, options, expected)) in cases.into_iter().enumerate() {
        let sql = format!(
            "CREATE TABLE t{n} (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{}', 'format' = 'json', {options});
             SELECT * FROM t{n};",
            broker.bootstrap
        );
        let rows = db
            .rows(&sql)
            .await
            .unwrap_or_else(|e| panic!("{options}: {e}"));
        assert_eq!(ids(rows), expected, "{options}");
    }

    let sql = format!(
        "CREATE TABLE meta (
           id BIGINT,
           `partition` INT METADATA VIRTUAL,
           `offset` BIGINT METADATA VIRTUAL,
           ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
           src STRING METADATA FROM 'topic' VIRTUAL,
           kind STRING METADATA FROM 'timestamp-type' VIRTUAL,
           headers MAP<STRING, BYTES> METADATA
         ) WITH ('connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{}', 'format' = 'json',
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
         SELECT id, `partition`, `offset`, CAST(ts AS TIMESTAMP(3)), src = '{topic}', kind,
                headers['source']
         FROM meta WHERE id IN (0, 9);",
        broker.bootstrap
    );
    let rows = sorted(db.rows(&sql).await.expect("metadata"));
    assert_eq!(
        rows,
        strings(&[
            &[
                "0",
                "0",
                "0",
                "2023-11-14 22:13:20.000",
                "TRUE",
                "CreateTime",
                "x'6830'"
            ],
            &[
                "9",
                "0",
                "9",
                "2023-11-14 22:13:29.000",
                "TRUE",
                "CreateTime",
                "x'6839'"
            ],
        ])
    );
    let error = db
        .rows(&format!(
            "CREATE TABLE bad (id BIGINT, x STRING METADATA FROM 'nope') WITH (
               'connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{}', 'format' = 'json')",
            broker.bootstrap
        ))
        .await
        .expect_err("unknown metadata key");
    assert!(
        error.0.contains("no metadata key 'nope'") && error.0.contains("headers"),
        "{error}"
    );
}

/// Persisted metadata columns are written: an INSERT sets each record's
/// timestamp and headers, which the topic then holds. VIRTUAL ones are only
/// read, and a key the connector cannot write is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_write_the_timestamp_and_headers_metadata() {
    let broker = Broker::new("write-meta");
    let input = broker.create_topic("input", 1).await;
    let topic = broker.create_topic("events", 1).await;
    let record = |id: i64, name: &str, timestamp: i64, header: Option<(&str, &str)>| TestRecord {
        value: Some(format!(r#"{{"id": {id}, "name": "{name}"}}"#)),
        timestamp: Some(timestamp),
        header: header.map(|(k, v)| (k.to_string(), v.to_string())),
        ..TestRecord::default()
    };
    broker
        .produce(
            &input,
            &[
                record(1, "a", 1_700_000_000_123, Some(("trace", "t1"))),
                record(2, "b", 1_700_000_005_000, None),
            ],
        )
        .await;
    let mut db = session().await;
    // The metadata columns come first, so the INSERT's order (the
    // declaration's) differs from the sink's (physical columns first).
    let sql = format!(
        "CREATE TABLE input (
           id BIGINT, name STRING,
           ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
           hs MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL
         ) WITH ('connector' = 'kafka', 'topic' = '{input}',
           'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json',
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
         CREATE TABLE events (
           ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
           id BIGINT,
           `offset` BIGINT METADATA VIRTUAL,
           hs MAP<STRING, BYTES> METADATA FROM 'headers',
           name STRING
         ) WITH ('connector' = 'kafka', 'topic' = '{topic}', {ONE_RECORD_PER_BATCH},
           'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json',
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
         INSERT INTO events SELECT ts + INTERVAL '1' HOUR, id, hs, UPPER(name) FROM input;",
        bootstrap = broker.bootstrap
    );
    db.rows(&sql).await.expect("insert with metadata");
    let rows = db
        .rows("SELECT id, name, CAST(ts AS TIMESTAMP(3)), `offset`, hs['trace'] FROM events")
        .await
        .expect("read back");
    assert_eq!(
        sorted(rows),
        strings(&[
            &["1", "A", "2023-11-14 23:13:20.123", "0", "x'7431'"],
            &["2", "B", "2023-11-14 23:13:25.000", "1", "NULL"],
        ])
    );
    let values = broker.consume_all(&topic);
    assert_eq!(
        values
            .into_iter()
            .filter_map(|(_, v)| v)
            .collect::<Vec<_>>(),
        [r#"{"id":1,"name":"A"}"#, r#"{"id":2,"name":"B"}"#]
    );
    let error = db
        .rows(&format!(
            "CREATE TABLE offsets (id BIGINT, off BIGINT METADATA FROM 'offset')
             WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{}', 'format' = 'json');
             INSERT INTO offsets VALUES (1, 2);",
            broker.bootstrap
        ))
        .await
        .expect_err("a read-only metadata key");
    assert!(
        error.0.contains(
            "cannot write metadata 'offset' (column 'off'); it writes: headers, timestamp. \
             Declare the column VIRTUAL to only read it"
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_round_trip_through_a_topic() {
    let broker = Broker::new("formats");
    let mut db = session().await;
    let cases = [
        (
            "csv",
            "id INT, name STRING",
            "(1, 'plain'), (2, 'with, comma'), (3, 'with \"quote\"')",
            strings(&[
                &["1", "plain"],
                &["2", "with, comma"],
                &["3", "with \"quote\""],
            ]),
        ),
        (
            "json",
            "id INT, name STRING",
            "(1, 'a'), (2, CAST(NULL AS STRING)), (3, 'line' || CHR(10) || 'break')",
            strings(&[&["1", "a"], &["2", "NULL"], &["3", "line\nbreak"]]),
        ),
        (
            "raw",
            "line STRING",
            "('first'), ('two' || CHR(10) || 'lines'), ('')",
            strings(&[&["(empty)"], &["first"], &["two\nlines"]]),
        ),
        (
            "avro",
            "id INT NOT NULL, name STRING, price DECIMAL(10, 2), ts TIMESTAMP(3)",
            "(1, 'a', 1.5, TIMESTAMP '2024-01-01 00:00:01.250'),
             (2, CAST(NULL AS STRING), CAST(NULL AS DECIMAL(10, 2)), CAST(NULL AS TIMESTAMP(3)))",
            strings(&[
                &["1", "a", "1.50", "2024-01-01 00:00:01.250"],
                &["2", "NULL", "NULL", "NULL"],
            ]),
        ),
    ];
    for (format, columns, values, expected) in cases {
        let topic = broker.create_topic(format, 1).await;
        let sql = format!(
            "CREATE TABLE {format}_t ({columns}) WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{}', 'format' = '{format}', {ONE_RECORD_PER_BATCH},
               'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
             INSERT INTO {format}_t VALUES {values};
             SELECT * FROM {format}_t;",
            broker.bootstrap
        );
        let rows = db
            .rows(&sql)
            .await
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(sorted(rows), expected, "{format}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_read_and_written_with_their_own_format() {
    let broker = Broker::new("keys");
    let topic = broker.create_topic("keyed", 4).await;
    let mut db = session().await;
    let sql = format!(
        "CREATE TABLE keyed (k STRING, id INT, name STRING) WITH (
           'connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{}',
           'key.format' = 'raw', 'key.fields' = 'k', {ONE_RECORD_PER_BATCH},
           'value.format' = 'json', 'value.fields-include' = 'EXCEPT_KEY',
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
         INSERT INTO keyed VALUES ('a', 1, 'x'), ('b', 2, 'y'), ('a', 3, 'z');
         SELECT * FROM keyed;",
        broker.bootstrap
    );
    let rows = sorted(db.rows(&sql).await.expect("keyed"));
    assert_eq!(
        rows,
        strings(&[&["a", "1", "x"], &["a", "3", "z"], &["b", "2", "y"]])
    );
    let mut written = broker.consume_all(&topic);
    written.sort();
    assert_eq!(
        written,
        vec![
            (Some("a".into()), Some(r#"{"id":1,"name":"x"}"#.into())),
            (Some("a".into()), Some(r#"{"id":3,"name":"z"}"#.into())),
            (Some("b".into()), Some(r#"{"id":2,"name":"y"}"#.into())),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_fail_naming_the_offset_or_are_skipped() {
    let broker = Broker::new("malformed");
    let topic = broker.create_topic("dirty", 1).await;
    let records = [
        value(0, r#"{"id": 1}"#),
        value(0, "not json"),
        value(0, r#"{"id": 3}"#),
    ];
    broker.produce(&topic, &records).await;
    let mut db = session().await;
    let table = |name: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{}', 'format' = 'json',
               'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'{extra});
             SELECT * FROM {name};",
            broker.bootstrap
        )
    };
    let error = db
        .rows(&table("strict", ""))
        .await
        .expect_err("malformed record");
    assert!(
        error.0.contains(&format!(
            "malformed JSON record in topic '{topic}' partition 0 at offset 1"
        )),
        "{error}"
    );
    let rows = db
        .rows(&table("lenient", ", 'json.ignore-parse-errors' = 'true'"))
        .await
        .expect("skipped");
    assert_eq!(sorted(rows), strings(&[&["1"], &["3"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_kafka_writes_upserts_and_reads_a_changelog() {
    let broker = Broker::new("upsert");
    let input = broker.create_topic("bids", 3).await;
    let totals = broker.create_topic("totals", 2).await;
    broker.produce(&input, &bids(100)).await;
    let mut db = session().await;
    let sql = format!(
        "{bids}
         CREATE TABLE totals (auction BIGINT, n BIGINT, top BIGINT, PRIMARY KEY (auction) NOT ENFORCED)
         WITH ('connector' = 'upsert-kafka', 'topic' = '{totals}', {ONE_RECORD_PER_BATCH},
               'properties.bootstrap.servers' = '{bootstrap}',
               'key.format' = 'json', 'value.format' = 'json',
               'scan.bounded.mode' = 'latest-offset');
         INSERT INTO totals SELECT auction, COUNT(*), MAX(price) FROM bids GROUP BY auction;",
        bids = bids_table(&broker, &input),
        bootstrap = broker.bootstrap,
    );
    db.rows(&sql).await.expect("upsert pipeline");
    // Each record is keyed by its auction; none is a tombstone (no deletes).
    let written = broker.consume_all(&totals);
    assert!(written.len() >= 5);
    assert!(written.iter().all(|(k, v)| k.is_some() && v.is_some()));

    // A tombstone deletes auction 4.
    let producer = broker.producer();
    let record: FutureRecord<'_, str, str> = FutureRecord::to(&totals).key(r#"{"auction":4}"#);
    producer
        .send(record, TIMEOUT)
        .await
        .expect("tombstone delivered");
    producer.flush(TIMEOUT).expect("flush");
    let expected: Vec<Vec<String>> = (0..4)
        .map(|a| {
            let prices: Vec<i64> = (0..100).filter(|i| i % 5 == a).collect();
            vec![
                a.to_string(),
                prices.len().to_string(),
                prices.iter().max().copied().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    let rows = db.rows("SELECT * FROM totals").await.expect("changelog");
    assert_eq!(sorted(rows), expected);
    let error = db
        .rows(&format!(
            "CREATE TABLE append_only (auction BIGINT, n BIGINT) WITH ('connector' = 'kafka',
               'topic' = '{totals}', 'properties.bootstrap.servers' = '{}', 'format' = 'json');
             INSERT INTO append_only SELECT auction, COUNT(*) FROM bids GROUP BY auction;",
            broker.bootstrap
        ))
        .await
        .expect_err("updates into an append-only sink");
    assert!(
        error.0.contains("doesn't support consuming update changes"),
        "{error}"
    );
}

/// A topic of Debezium change events is read as a changelog, and an
/// updating query's result is written as change events and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_json_carries_a_changelog_through_a_topic() {
    let broker = Broker::new("debezium");
    let events = broker.create_topic("orders", 1).await;
    let totals = broker.create_topic("totals", 2).await;
    let event = |op: &str, before: &str, after: &str| {
        value(
            0,
            &format!(r#"{{"before":{before},"after":{after},"op":"{op}","ts_ms":1}}"#),
        )
    };
    broker
        .produce(
            &events,
            &[
                event("r", "null", r#"{"id":1,"status":"new","amount":10}"#),
                event("c", "null", r#"{"id":2,"status":"new","amount":5}"#),
                event(
                    "u",
                    r#"{"id":1,"status":"new","amount":10}"#,
                    r#"{"id":1,"status":"paid","amount":12}"#,
                ),
                event("d", r#"{"id":2,"status":"new","amount":5}"#, "null"),
                event("c", "null", r#"{"id":3,"status":"new","amount":7}"#),
            ],
        )
        .await;
    let mut db = session().await;
    let table = |name: &str, topic: &str, columns: &str| {
        format!(
            "CREATE TABLE {name} ({columns}) WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{}', 'format' = 'debezium-json', {ONE_RECORD_PER_BATCH},
               'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');",
            broker.bootstrap
        )
    };
    let sql = format!(
        "{}
         {}
         INSERT INTO totals SELECT status, COUNT(*), SUM(amount) FROM orders GROUP BY status;",
        table("orders", &events, "id BIGINT, status STRING, amount BIGINT"),
        table("totals", &totals, "status STRING, n BIGINT, total BIGINT"),
    );
    db.rows(&sql).await.expect("debezium pipeline");
    // Orders 1 (paid, 12) and 3 (new, 7) remain.
    let rows = db.rows("SELECT * FROM orders").await.expect("orders");
    assert_eq!(
        sorted(rows),
        strings(&[&["1", "paid", "12"], &["3", "new", "7"]])
    );
    let rows = db.rows("SELECT * FROM totals").await.expect("totals");
    assert_eq!(
        sorted(rows),
        strings(&[&["new", "1", "7"], &["paid", "1", "12"]])
    );
    // Every record written is one event: an insert or a retraction.
    let written = broker.consume_all(&totals);
    assert!(!written.is_empty());
    for (_, value) in written {
        let value = value.expect("no tombstones");
        assert!(
            (value.starts_with(r#"{"before":null,"after":{"#) && value.ends_with(r#""op":"c"}"#))
                || (value.starts_with(r#"{"before":{"#)
                    && value.ends_with(r#""after":null,"op":"d"}"#)),
            "{value}"
        );
    }
    let error = db
        .rows(&format!(
            "CREATE TABLE keyed (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{events}',
               'properties.bootstrap.servers' = '{}', 'key.format' = 'debezium-json',
               'key.fields' = 'id', 'value.format' = 'json');",
            broker.bootstrap
        ))
        .await
        .expect_err("a changelog key format");
    assert!(
        error
            .0
            .contains("a key format writes and reads inserts only"),
        "{error}"
    );
}

/// At-least-once survives a broker outage in the middle of a job: the
/// producer retries until the broker is back and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_sink_survives_a_broker_restart() {
    let broker = Broker::mock("outage");
    let topic = broker.create_topic("out", 1).await;
    let mock = broker.mock.as_ref().expect("mock cluster");
    let leader = 1;
    mock.partition_leader(&topic, 0, Some(leader))
        .expect("leader");
    let mut db = session().await;
    let sql = format!(
        "SET 'table.dml-sync' = 'false';
         CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen',
           'rows-per-second' = '1000', 'number-of-rows' = '3000',
           'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '3000');
         CREATE TABLE out_t (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{}', 'format' = 'json',
           'sink.delivery-guarantee' = 'at-least-once');
         INSERT INTO out_t SELECT id FROM gen;",
        broker.bootstrap
    );
    db.rows(&sql).await.expect("job submitted");
    tokio::time::sleep(Duration::from_millis(800)).await;
    mock.broker_down(leader).expect("broker down");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mock.broker_up(leader).expect("broker up");
    db.wait_for_jobs().await.expect("job finished");
    let ids: BTreeSet<i64> = broker
        .consume_all(&topic)
        .iter()
        .filter_map(|(_, v)| v.as_deref())
        .map(|v| {
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            digits.parse().expect("id")
        })
        .collect();
    assert_eq!(ids.len(), 3000, "every id arrived at least once");
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&3000));
}

/// Exactly-once writes go through Kafka transactions, committed when the
/// input ends (and, with checkpoints, when each checkpoint completes). The
/// mock cluster lets transactions run but cannot hide uncommitted records
/// from readers, so this checks that the transactional sink delivers
/// everything and commits, not read_committed filtering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_sink_commits_its_transaction() {
    let broker = Broker::mock("transactions");
    let topic = broker.create_topic("out", 2).await;
    let mut db = session().await;
    let sql = format!(
        "CREATE TABLE out_t (id INT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{}', 'format' = 'json',
           'sink.delivery-guarantee' = 'exactly-once',
           'sink.transactional-id-prefix' = 'weir-test', 'sink.partitioner' = 'round-robin');
         INSERT INTO out_t VALUES (1), (2), (3), (4);",
        broker.bootstrap
    );
    db.rows(&sql).await.expect("transactional job");
    // With checkpoints, each checkpoint's records go out in a transaction
    // of their own when it completes (the last one when the input ends).
    let checkpoints = tempfile::tempdir().expect("dir");
    db.rows(&format!(
        "SET 'execution.checkpointing.interval' = '100 ms';
         SET 'execution.checkpointing.dir' = '{}';
         INSERT INTO out_t SELECT CAST(id AS INT) FROM (VALUES (5), (6)) AS v(id);",
        checkpoints.path().display()
    ))
    .await
    .expect("checkpointed transactional job");
    let mut values: Vec<String> = broker
        .consume_all(&topic)
        .into_iter()
        .filter_map(|(_, v)| v)
        .collect();
    values.sort();
    assert_eq!(
        values,
        (1..=6)
            .map(|i| format!(r#"{{"id":{i}}}"#))
            .collect::<Vec<_>>()
    );
    let missing = db
        .rows(&format!(
            "CREATE TABLE no_prefix (id INT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{}', 'format' = 'json',
               'sink.delivery-guarantee' = 'exactly-once')",
            broker.bootstrap
        ))
        .await
        .expect_err("exactly-once needs a prefix");
    assert!(
        missing.0.contains("sink.transactional-id-prefix"),
        "{missing}"
    );
}
