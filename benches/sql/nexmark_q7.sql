-- Nexmark q7 (highest bid per 10 s window), as nexmark_q0.sql: the bids of
-- each window (a window table function's rows) joined with the window's
-- maximum price, as the hand-built query does.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/bid');
CREATE TABLE q7 (auction BIGINT, price BIGINT, bidder BIGINT, date_time BIGINT, window_start BIGINT, window_end BIGINT)
  WITH ('connector' = 'parquet', 'path' = '../../out/sql_q7');
INSERT INTO q7
SELECT B.auction, B.price, B.bidder, B.date_time, B.window_start, B.window_end
FROM (SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))) B
JOIN (SELECT window_start, window_end, MAX(price) AS price
      FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
      GROUP BY window_start, window_end) M
ON B.window_start = M.window_start AND B.window_end = M.window_end AND B.price = M.price;
