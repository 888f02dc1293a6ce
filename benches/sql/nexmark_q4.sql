-- Nexmark q4 (average winning price per category: a regular join filtered by
-- the auction's lifetime, a running MAX per auction, and an average of that
-- changelog per category), as nexmark_q0.sql: the query text as the Nexmark
-- project publishes it for Flink, over the events as Parquet. The output is
-- a changelog (its `op` column says insert or update).
CREATE TABLE auction (id BIGINT, item_name VARCHAR, initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP(3),
  expires TIMESTAMP(3), seller BIGINT, category BIGINT,
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/auction');
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/bid');
CREATE TABLE q4 (id BIGINT, final DOUBLE)
  WITH ('connector' = 'parquet', 'path' = '../../out/sql_q4', 'changelog' = 'op');
INSERT INTO q4
SELECT
    Q.category,
    AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category;
