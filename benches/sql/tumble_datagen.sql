-- Benchmark: memory of window aggregation over an input of any size
-- (issue "Event time and windows"). TUMBLE(1 s) per auction over BENCH_ROWS
-- datagen rows stamped with the current time; peak RSS should depend on the
-- live windows x keys (10k auctions), not on BENCH_ROWS.
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen', 'number-of-rows' = 'BENCH_ROWS', 'rows-per-second' = '1000000000',
  'fields.auction.min' = '1000', 'fields.auction.max' = '10999',
  'fields.price.min' = '100', 'fields.price.max' = '10000000',
  'fields.date_time.max-past' = '0'
);
CREATE TABLE sink (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, max_price BIGINT, total BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT auction, window_start, window_end, COUNT(*), MAX(price), SUM(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '1' SECOND))
GROUP BY auction, window_start, window_end;
