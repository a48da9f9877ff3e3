-- Benchmark: the 10 highest bids per auction over BENCH_ROWS bids, an
-- updating Top-N into blackhole (issue "Streaming joins, Top-N ...").
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/bids', 'format' = 'csv');
CREATE TABLE sink (auction BIGINT, bidder BIGINT, price BIGINT, rn BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT auction, bidder, price, rn FROM (
  SELECT auction, bidder, price,
    ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn
  FROM bids
) WHERE rn <= 10;
