-- Nexmark q8 (new users: a window join of two windowed groupings), as nexmark_q0.sql.
CREATE TABLE person (id BIGINT, name VARCHAR, email VARCHAR, city VARCHAR, state VARCHAR, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/person');
CREATE TABLE auction (id BIGINT, item_name VARCHAR, initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP(3),
  expires BIGINT, seller BIGINT, category BIGINT,
  WATERMARK FOR date_time AS date_time - INTERVAL '500' MILLISECOND) WITH ('connector' = 'parquet', 'path' = '../../data/nexmark/auction');
CREATE TABLE q8 (id BIGINT, name VARCHAR, starttime BIGINT)
  WITH ('connector' = 'parquet', 'path' = '../../out/sql_q8');
INSERT INTO q8
SELECT P.id, P.name, P.window_start
FROM (SELECT id, name, window_start, window_end FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
      GROUP BY id, name, window_start, window_end) P
JOIN (SELECT seller, window_start, window_end FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
      GROUP BY seller, window_start, window_end) A
ON P.id = A.seller AND P.window_start = A.window_start AND P.window_end = A.window_end;
