-- Each second's three fastest vehicles (mean speed): per-vehicle averages
-- (keyed by vehicle), then a Top-3 per window (keyed by the window). Run:
-- weir sql examples/top3_windows.sql (after `weir demo` has written
-- data/obd); as three shards that re-key through a Kafka topic, see the
-- README's "Running on several machines".
CREATE TABLE obd (
  vehicle_id BIGINT,
  event_time TIMESTAMP(3),
  speed      DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND
) WITH ('connector' = 'filesystem', 'path' = '../data/obd', 'format' = 'parquet',
        'scan.speed' = 'max');

CREATE TABLE top3 (
  window_start BIGINT,
  vehicle_id   BIGINT,
  avg_speed    DOUBLE,
  rownum       BIGINT
) WITH ('connector' = 'filesystem', 'path' = '../out/top3', 'format' = 'parquet');

INSERT INTO top3
SELECT window_start, vehicle_id, avg_speed, rownum FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY avg_speed DESC) AS rownum
  FROM (SELECT window_start, window_end, vehicle_id, AVG(speed) AS avg_speed
        FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
        GROUP BY window_start, window_end, vehicle_id)
) WHERE rownum <= 3;
