-- Nexmark q0 (pass-through) over the Parquet events `weir bench nexmark:q0 --data data/nexmark`
-- writes; compare: weir bench benches/sql/nexmark_q0.sql vs weir bench nexmark:q0.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/bid');
CREATE TABLE q0 (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, date_time BIGINT)
  WITH ('connector' = 'parquet', 'path' = '../../out/sql_q0');
INSERT INTO q0 SELECT * FROM bid;
