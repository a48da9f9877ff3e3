-- Weir quickstart: plain Flink SQL over the bundled bids file.
-- Run from the repository root: weir run examples/quickstart.sql

SET 'parallelism.default' = '2';

CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/bids', 'format' = 'csv');

CREATE TABLE picked (auction BIGINT, price BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'out/picked', 'format' = 'csv');

-- A job: every bid on an auction whose id is a multiple of 123, written as CSV part files.
INSERT INTO picked SELECT auction, price FROM bids WHERE MOD(auction, 123) = 0;

-- A query: rows come back to the terminal.
SELECT auction, bidder, price / 100 AS dollars, UPPER(channel) AS channel, date_time
FROM bids
WHERE price > 9990000;
