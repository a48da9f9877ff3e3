-- Benchmark: memory of an interval join over an input of any size (issue
-- "Streaming joins"). BENCH_ROWS generated bids and BENCH_TENTH auctions
-- over 1M keys, stamped with the current time, joined within 2 s; state
-- expires with the watermark, so RSS should stay flat however long it runs.
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen', 'number-of-rows' = 'BENCH_ROWS', 'rows-per-second' = '1000000000',
  'fields.auction.min' = '1', 'fields.auction.max' = '1000000',
  'fields.price.min' = '100', 'fields.price.max' = '10000000',
  'fields.date_time.max-past' = '0'
);
CREATE TABLE auctions (
  id BIGINT, seller BIGINT, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen', 'number-of-rows' = 'BENCH_TENTH', 'rows-per-second' = '1000000000',
  'fields.id.min' = '1', 'fields.id.max' = '1000000',
  'fields.seller.min' = '1', 'fields.seller.max' = '10000',
  'fields.date_time.max-past' = '0'
);
CREATE TABLE sink (auction BIGINT, seller BIGINT, price BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT a.id, a.seller, b.price
FROM auctions a JOIN bids b
ON a.id = b.auction AND b.date_time BETWEEN a.date_time - INTERVAL '1' SECOND AND a.date_time + INTERVAL '1' SECOND;
