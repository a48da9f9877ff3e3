-- The quickstart's bids at parallelism 4, meant for a cluster:
--   weir coordinator &
--   weir worker --coordinator 127.0.0.1:6123 --slots 2 &
--   weir worker --coordinator 127.0.0.1:6123 --slots 2 &
--   weir run --coordinator 127.0.0.1:6123 examples/cluster.sql
-- Start the workers from the repository root: they read the paths below.
-- (Without --coordinator it runs on the embedded cluster, just the same.)

SET 'parallelism.default' = '4';

CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/bids', 'format' = 'csv');

CREATE TABLE auction_minutes (
  window_start TIMESTAMP(3), auction BIGINT, bids BIGINT, top_price BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'out/auction_minutes', 'format' = 'csv');

-- Bids per auction and minute: the rows are hash-partitioned by auction
-- between the workers.
INSERT INTO auction_minutes
SELECT window_start, auction, COUNT(*), MAX(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, auction;
