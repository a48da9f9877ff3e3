-- Benchmark: interval join of BENCH_ROWS bids with BENCH_TENTH auctions,
-- each bid joined to the auction it falls in the lifetime of (issue
-- "Streaming joins"). Input rows/s counts both tables' rows.
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/bids', 'format' = 'csv');
CREATE TABLE auctions (
  id BIGINT, seller BIGINT, category BIGINT, date_time TIMESTAMP(3), expires TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/auctions', 'format' = 'csv');
CREATE TABLE sink (auction BIGINT, seller BIGINT, bidder BIGINT, price BIGINT, bid_time TIMESTAMP(3))
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT a.id, a.seller, b.bidder, b.price, b.date_time
FROM auctions a JOIN bids b
ON a.id = b.auction
AND b.date_time BETWEEN a.date_time AND a.date_time + INTERVAL '10' SECOND
AND b.date_time <= a.expires;
