-- Benchmark: a processing-time lookup join of BENCH_ROWS bids against the
-- BENCH_TENTH auctions as a dimension table (loaded whole by each join
-- subtask), into blackhole (issue "Streaming joins": temporal joins).
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  pt AS PROCTIME()
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/bids', 'format' = 'csv');
CREATE TABLE auctions (
  id BIGINT, seller BIGINT, category BIGINT, date_time TIMESTAMP(3), expires TIMESTAMP(3)
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/auctions', 'format' = 'csv');
CREATE TABLE sink (auction BIGINT, seller BIGINT, category BIGINT, bidder BIGINT, price BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT b.auction, a.seller, a.category, b.bidder, b.price
FROM bids AS b
JOIN auctions FOR SYSTEM_TIME AS OF b.pt AS a ON b.auction = a.id;
