-- Nexmark q2 (selection), as nexmark_q0.sql.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/bid');
CREATE TABLE q2 (auction BIGINT, price BIGINT, date_time BIGINT)
  WITH ('connector' = 'parquet', 'path' = '../../out/sql_q2');
INSERT INTO q2 SELECT auction, price, date_time FROM bid WHERE MOD(auction, 123) = 0;
