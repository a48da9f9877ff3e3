-- Benchmark: TUMBLE(10 s) COUNT/MAX/SUM per auction (issue "Event time and windows").
-- benches/run.sh substitutes BENCH_DATA.
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/bids', 'format' = 'csv');
CREATE TABLE sink (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, max_price BIGINT, total BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT auction, window_start, window_end, COUNT(*), MAX(price), SUM(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
