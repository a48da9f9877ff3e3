-- Benchmark: a hash exchange (issue "Coordinator and workers"). Nexmark
-- bids, all columns, repartitioned by auction into a cheap per-auction
-- TUMBLE(1 s) count; on a cluster of two workers half of the rows cross
-- between the processes. Run by benches/cluster.sh, embedded and on a cluster.
SET 'parallelism.default' = '2';
SET 'table.dml-sync' = 'true';
CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  `dateTime` TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'table' = 'bid', 'first-event.rate' = '10000000',
  'events.num' = 'BENCH_ROWS');
CREATE TABLE sink (auction BIGINT, window_start TIMESTAMP(3), bids BIGINT, extra_bytes BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT auction, window_start, COUNT(*), SUM(CHAR_LENGTH(extra) + CHAR_LENGTH(url))
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND))
GROUP BY auction, window_start, window_end;
