-- The seed's job in SQL (examples/seed_join.toml as a job file): OBD speed
-- (3/s per vehicle, up to 30 s out of order) and phone-app speed (~1/s, up
-- to 9 minutes late), averaged per vehicle and second on each side, joined
-- on (vehicle, window): how far apart they are.
-- Data: `cargo run --release -- demo` writes data/obd and data/app.
-- Run:  cargo run --release -- sql examples/seed_join.sql --mode batch
CREATE TABLE obd (
  vehicle_id BIGINT,
  event_time TIMESTAMP(3),
  speed      DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND
) WITH ('connector' = 'filesystem', 'path' = '../data/obd', 'format' = 'parquet');

CREATE TABLE app (
  vehicle_id BIGINT,
  event_time TIMESTAMP(3),
  speed      DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '9' MINUTE
) WITH ('connector' = 'filesystem', 'path' = '../data/app', 'format' = 'parquet');

CREATE TABLE obd_vs_app (
  vehicle_id   BIGINT,
  window_start BIGINT,
  window_end   BIGINT,
  obd_speed    DOUBLE,
  app_speed    DOUBLE,
  speed_diff   DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '../out/obd_vs_app_sql', 'format' = 'parquet');

INSERT INTO obd_vs_app
WITH o AS (
  SELECT vehicle_id, window_start, window_end, AVG(speed) AS obd_speed
  FROM TABLE(TUMBLE(TABLE obd, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
  GROUP BY window_start, window_end, vehicle_id
), a AS (
  SELECT vehicle_id, window_start, window_end, AVG(speed) AS app_speed
  FROM TABLE(TUMBLE(TABLE app, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
  GROUP BY window_start, window_end, vehicle_id
)
SELECT o.vehicle_id, window_start, window_end, obd_speed, app_speed, obd_speed - app_speed
FROM o JOIN a
  ON o.vehicle_id = a.vehicle_id AND o.window_start = a.window_start AND o.window_end = a.window_end;
