//! What the process-level tests share.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// A small deterministic generator for where crash tests kill, seeded from
/// `WEIR_CRASH_SEED` or else the clock, and printed, so a failing run can
/// be repeated.
pub struct CrashRandom(u64);

impl CrashRandom {
    pub fn from_env_or_clock() -> Self {
        let seed = std::env::var("WEIR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(7, |d| d.as_nanos() as u64)
            });
        eprintln!("crash seed {seed} (set WEIR_CRASH_SEED to repeat)");
        Self(seed)
    }

    /// A number below `below` (which is not 0).
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

/// `yyyy-MM-dd HH:mm:ss.SSS` for epoch milliseconds (UTC), without a date crate.
pub fn chrono_like(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{ms:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Bids a Kafka crash test writes per run; the mock cluster keeps at
/// most 5 MB per partition.
pub const KAFKA_BIDS: usize = 240_000;
pub const BID_PARTITIONS: usize = 6;

/// Creates, for each of `outputs`, the topics of the Kafka crash tests'
/// pipeline: `bids-<output>` with [`BID_PARTITIONS`] partitions, and the
/// output topic with two.
pub fn create_bid_topics(
    kafka: &MockCluster<'_, DefaultProducerContext>,
    outputs: &[&str],
) -> Result<(), KafkaError> {
    for output in outputs {
        kafka.create_topic(&format!("bids-{output}"), BID_PARTITIONS as i32, 1)?;
        kafka.create_topic(output, 2, 1)?;
    }
    Ok(())
}

/// The Kafka crash tests' pipeline, after `settings`: one-minute totals
/// per auction of the bids in `bids-<output>`, read up to the
/// [`KAFKA_BIDS`] that [`produce_bids`] writes, written as upserts to
/// topic `output`.
pub fn kafka_totals_script(settings: &str, output: &str, bootstrap: &str) -> String {
    format!(
        "{settings}{bids}\
         CREATE TABLE totals (auction BIGINT, window_start TIMESTAMP(3), bids BIGINT, total BIGINT,\n\
           PRIMARY KEY (auction, window_start) NOT ENFORCED)\n\
           WITH ('connector' = 'upsert-kafka', 'topic' = '{output}',\n\
             'properties.bootstrap.servers' = '{bootstrap}',\n\
             'key.format' = 'json', 'value.format' = 'json');\n\
         INSERT INTO totals\n\
           SELECT auction, window_start, COUNT(*), SUM(price)\n\
           FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' MINUTE))\n\
           GROUP BY auction, window_start, window_end;\n",
        bids = kafka_bids_table(output, bootstrap),
    )
}

/// The Kafka crash tests' source: table `bids` over topic `bids-<output>`,
/// read up to the [`KAFKA_BIDS`] that [`produce_bids`] writes.
pub fn kafka_bids_table(output: &str, bootstrap: &str) -> String {
    let stops: Vec<String> = (0..BID_PARTITIONS)
        .map(|p| format!("partition:{p},offset:{}", KAFKA_BIDS / BID_PARTITIONS))
        .collect();
    format!(
        "CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),\n\
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
           WITH ('connector' = 'kafka', 'topic' = 'bids-{output}',\n\
             'properties.bootstrap.servers' = '{bootstrap}',\n\
             'properties.group.id' = 'weir-{output}',\n\
             'scan.startup.mode' = 'earliest-offset',\n\
             'scan.bounded.mode' = 'specific-offsets',\n\
             'scan.bounded.specific-offsets' = '{stops}',\n\
             'format' = 'json');\n",
        stops = stops.join(";"),
    )
}

/// Writes [`KAFKA_BIDS`] bids to `topic` in 40 chunks with `pause` after
/// each; bid `n` goes to partition `n % BID_PARTITIONS`.
pub fn produce_bids(bootstrap: &str, topic: &str, pause: Duration) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let chunk = KAFKA_BIDS / 40;
    for n in 0..KAFKA_BIDS {
        if n % chunk == 0 {
            producer.flush(Duration::from_secs(30)).expect("flushed");
            std::thread::sleep(pause);
        }
        let value = format!(
            r#"{{"auction": {}, "price": {}, "ts": "{}"}}"#,
            n % 13,
            (n * 7919) % 1000,
            chrono_like(1_704_067_200_000_i64 + (n as i64) * 100)
        );
        let mut record: BaseRecord<'_, (), String> = BaseRecord::to(topic)
            .payload(&value)
            .partition((n % BID_PARTITIONS) as i32);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => panic!("cannot write bids: {error}"),
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
}

/// The upsert topic `topic` read to its end as a table: `key => value` per
/// key whose last record is not a tombstone, sorted.
pub fn topic_as_table(bootstrap: &str, topic: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "recovery-test")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(30);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    drop(metadata);
    let mut list = TopicPartitionList::new();
    let mut remaining = 0;
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .expect("watermarks");
        remaining += high - low;
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&list).expect("assign");
    drop(list);
    let mut table = std::collections::BTreeMap::new();
    let deadline = Instant::now() + timeout;
    while remaining > 0 {
        assert!(
            Instant::now() < deadline,
            "{topic}: {remaining} records not read"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("message");
            let text =
                |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
            let key = text(message.key()).expect("a keyed record");
            match text(message.payload()) {
                Some(value) => table.insert(key, value),
                None => table.remove(&key),
            };
            remaining -= 1;
        }
    }
    table
        .into_iter()
        .map(|(key, value)| format!("{key} => {value}"))
        .collect()
}
