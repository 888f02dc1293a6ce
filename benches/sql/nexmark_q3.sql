-- Nexmark q3 (local item suggestion: a regular join), as nexmark_q0.sql.
CREATE TABLE person (id BIGINT, name VARCHAR, email VARCHAR, city VARCHAR, state VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/person');
CREATE TABLE auction (id BIGINT, item_name VARCHAR, initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP(3),
  expires BIGINT, seller BIGINT, category BIGINT,
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/auction');
CREATE TABLE q3 (name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT)
  WITH ('connector' = 'parquet', 'path' = '../../out/sql_q3');
INSERT INTO q3
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
