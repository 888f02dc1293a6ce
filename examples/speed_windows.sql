-- Per-vehicle 1 s average speed and reading count, as examples/bench_window.toml
-- but in SQL. Run: weir sql examples/speed_windows.sql (after `weir demo`
-- has written data/obd), pipelined by default, or with --mode batch.
CREATE TABLE obd (
  vehicle_id BIGINT,
  event_time TIMESTAMP(3),
  speed      DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND
) WITH ('connector' = 'filesystem', 'path' = '../data/obd', 'format' = 'parquet');

CREATE TABLE speed_windows (
  vehicle_id   BIGINT,
  window_start BIGINT,
  window_end   BIGINT,
  avg_speed    DOUBLE,
  readings     BIGINT
) WITH ('connector' = 'filesystem', 'path' = '../out/speed_windows', 'format' = 'parquet');

INSERT INTO speed_windows
SELECT vehicle_id, window_start, window_end, AVG(speed) AS avg_speed, COUNT(*) AS readings
FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
GROUP BY window_start, window_end, vehicle_id;
