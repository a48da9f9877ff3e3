-- Benchmark: scan + filter + project (issue "The spine"), the quickstart's INSERT at scale.
-- benches/run.sh substitutes BENCH_DATA and BENCH_OUT.
SET 'parallelism.default' = '2';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'BENCH_DATA/bids', 'format' = 'csv');
CREATE TABLE picked (auction BIGINT, price BIGINT) WITH ('connector' = 'filesystem', 'path' = 'BENCH_OUT/picked', 'format' = 'csv');
INSERT INTO picked SELECT auction, price FROM bids WHERE MOD(auction, 123) = 0;
