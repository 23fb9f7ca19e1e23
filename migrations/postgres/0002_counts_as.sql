
-- What a closed file counts as is decided once, by the ingest (crate::log::transfer), and stored.
ALTER TABLE transfers ADD COLUMN counts_as TEXT CHECK (counts_as IN ('upload', 'download'));
UPDATE transfers SET counts_as = CASE
    WHEN direction IN ('upload', 'both') AND closed_at IS NOT NULL THEN 'upload'
    WHEN direction = 'download' AND COALESCE(bytes_read, 0) > 0 THEN 'download' END;
DROP VIEW IF EXISTS monthly_usage;
DROP VIEW IF EXISTS daily_usage;
DROP VIEW IF EXISTS usage_events;
CREATE VIEW usage_events AS
    SELECT host, "user", started_at AS at, 1 AS sessions, 0 AS files_up, 0 AS files_down,
           0::bigint AS bytes_up, 0::bigint AS bytes_down, COALESCE(duration_ms, 0) AS duration_ms
      FROM sessions WHERE end_reason <> 'refused'
    UNION ALL
    SELECT s.host, s."user", t.opened_at, 0,
           CASE WHEN t.counts_as = 'upload' THEN 1 ELSE 0 END,
           CASE WHEN t.counts_as = 'download' THEN 1 ELSE 0 END,
           COALESCE(t.bytes_written, 0), COALESCE(t.bytes_read, 0), 0
      FROM transfers t JOIN sessions s ON s.id = t.session_id;

CREATE VIEW daily_usage AS
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, host, "user",
           SUM(sessions)::bigint AS sessions, SUM(files_up)::bigint AS files_up,
           SUM(files_down)::bigint AS files_down, SUM(bytes_up)::bigint AS bytes_up,
           SUM(bytes_down)::bigint AS bytes_down, SUM(duration_ms)::bigint AS duration_ms
      FROM usage_events GROUP BY 1, 2, 3;

CREATE VIEW monthly_usage AS
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, host, "user",
           SUM(sessions)::bigint AS sessions, SUM(files_up)::bigint AS files_up,
           SUM(files_down)::bigint AS files_down, SUM(bytes_up)::bigint AS bytes_up,
           SUM(bytes_down)::bigint AS bytes_down, SUM(duration_ms)::bigint AS duration_ms
      FROM usage_events GROUP BY 1, 2, 3;
