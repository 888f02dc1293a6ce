-- Nexmark q1 (currency conversion), as nexmark_q0.sql.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/bid');
CREATE TABLE q1 (auction BIGINT, bidder BIGINT, price DOUBLE, channel VARCHAR, date_time BIGINT)
  WITH ('connector' = 'parquet', 'path' = '../../out/sql_q1');
INSERT INTO q1 SELECT auction, bidder, CAST(price AS DOUBLE) * 0.908, channel, date_time FROM bid;
