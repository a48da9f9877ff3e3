-- Benchmark: unbounded GROUP BY auction COUNT/SUM, a changelog into blackhole
-- (issue "Event time and windows"). benches/run.sh substitutes BENCH_DATA.
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/bids', 'format' = 'csv');
CREATE TABLE sink (auction BIGINT, bids BIGINT, total BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT auction, COUNT(*), SUM(price) FROM bids GROUP BY auction;
