-- Kafka -> SQL -> Kafka. Needs a broker on 127.0.0.1:9092 with the topics
-- 'bids' and 'auction-counts'; from the repository root:
--   .ci/kafka-broker start /tmp/weir-kafka 9092
--   .ci/kafka-broker topic /tmp/weir-kafka bids
--   .ci/kafka-broker topic /tmp/weir-kafka auction-counts
--   weir run examples/kafka_pipeline.sql

SET 'parallelism.default' = '2';
-- Each INSERT finishes before the next statement runs.
SET 'table.dml-sync' = 'true';

-- The bundled bids, as JSON records in the 'bids' topic.
CREATE TABLE bids_file (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/bids', 'format' = 'csv');

CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3),
  `partition` INT METADATA VIRTUAL,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'bids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',   -- read what is there, then end
  'format' = 'json',
  -- tansu 0.6 reports a partition's end as the start of its last record
  -- batch; one record per batch keeps 'latest-offset' exact there.
  'properties.batch.num.messages' = '1'
);

CREATE TABLE auction_counts (
  window_start TIMESTAMP(3), auction BIGINT, bids BIGINT, top_price BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'auction-counts',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json',
  'properties.batch.num.messages' = '1'
);

INSERT INTO bids SELECT auction, bidder, price, date_time FROM bids_file;

-- Bids per auction per 10 seconds, from one topic into another.
INSERT INTO auction_counts
SELECT window_start, auction, COUNT(*), MAX(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, auction;

-- The busiest windows, read back from the output topic.
SELECT window_start, auction, bids, top_price
FROM auction_counts
WHERE bids >= 3;
