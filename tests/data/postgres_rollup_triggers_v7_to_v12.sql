-- The rollup trigger functions PostgreSQL databases of schema versions 7 to 12 have
-- (rollup_triggers_sql before version 13), for the test that builds such a database and
-- upgrades it.
DROP TRIGGER IF EXISTS usage_sessions_added ON sessions;
                 DROP TRIGGER IF EXISTS usage_sessions_removed ON sessions;
                 DROP TRIGGER IF EXISTS usage_session_changed ON sessions;
                 DROP TRIGGER IF EXISTS usage_sessions_changed ON sessions;
                 DROP TRIGGER IF EXISTS usage_transfers_added ON transfers;
                 DROP TRIGGER IF EXISTS usage_transfers_removed ON transfers;
                 DROP TRIGGER IF EXISTS usage_transfer_changed ON transfers;
                 DROP FUNCTION IF EXISTS usage_sessions_touched();
                 DROP FUNCTION IF EXISTS usage_session_changed();
                 DROP FUNCTION IF EXISTS usage_sessions_changed();
                 DROP FUNCTION IF EXISTS usage_transfers_touched();
                 DROP FUNCTION IF EXISTS usage_transfer_changed();
                 DROP FUNCTION IF EXISTS usage_sessions_added();
                 DROP FUNCTION IF EXISTS usage_sessions_removed();
                 DROP FUNCTION IF EXISTS usage_transfers_added();
                 DROP FUNCTION IF EXISTS usage_transfers_removed();

                 CREATE FUNCTION usage_sessions_added() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     INSERT INTO usage_hourly (hour, host, "user", sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low, files_bytes_unknown, contributors)
         SELECT c.hour, c.host, c."user", CAST(SUM(sessions) * 1 AS BIGINT), CAST(SUM(duration_ms_high) * 1 AS BIGINT), CAST(SUM(duration_ms_low) * 1 AS BIGINT), CAST(SUM(files_up) * 1 AS BIGINT), CAST(SUM(files_up_incomplete) * 1 AS BIGINT), CAST(SUM(files_down) * 1 AS BIGINT), CAST(SUM(files_down_incomplete) * 1 AS BIGINT), CAST(SUM(bytes_up_high) * 1 AS BIGINT), CAST(SUM(bytes_up_low) * 1 AS BIGINT), CAST(SUM(bytes_down_high) * 1 AS BIGINT), CAST(SUM(bytes_down_low) * 1 AS BIGINT), CAST(SUM(files_bytes_unknown) * 1 AS BIGINT), CAST(COUNT(*) * 1 AS BIGINT) FROM (SELECT date_trunc('hour', s.started_at, 'UTC') AS hour, s.host AS host, COALESCE(s."user", '') AS "user", 1 AS sessions,
         COALESCE(s.duration_ms, 0) / 4294967296 AS duration_ms_high, COALESCE(s.duration_ms, 0) % 4294967296 AS duration_ms_low,
         0 AS files_up, 0 AS files_up_incomplete, 0 AS files_down, 0 AS files_down_incomplete,
         0 AS bytes_up_high, 0 AS bytes_up_low, 0 AS bytes_down_high, 0 AS bytes_down_low,
         0 AS files_bytes_unknown FROM touched_rows s WHERE s.end_reason <> 'refused') AS c WHERE true GROUP BY c.hour, c.host, c."user"
         ON CONFLICT (hour, host, "user") DO UPDATE SET sessions = usage_hourly.sessions + excluded.sessions, duration_ms_high = usage_hourly.duration_ms_high + excluded.duration_ms_high, duration_ms_low = usage_hourly.duration_ms_low + excluded.duration_ms_low, files_up = usage_hourly.files_up + excluded.files_up, files_up_incomplete = usage_hourly.files_up_incomplete + excluded.files_up_incomplete, files_down = usage_hourly.files_down + excluded.files_down, files_down_incomplete = usage_hourly.files_down_incomplete + excluded.files_down_incomplete, bytes_up_high = usage_hourly.bytes_up_high + excluded.bytes_up_high, bytes_up_low = usage_hourly.bytes_up_low + excluded.bytes_up_low, bytes_down_high = usage_hourly.bytes_down_high + excluded.bytes_down_high, bytes_down_low = usage_hourly.bytes_down_low + excluded.bytes_down_low, files_bytes_unknown = usage_hourly.files_bytes_unknown + excluded.files_bytes_unknown, contributors = usage_hourly.contributors + excluded.contributors;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_sessions_added AFTER INSERT ON sessions
                     REFERENCING NEW TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_added();
                 CREATE FUNCTION usage_sessions_removed() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     INSERT INTO usage_dirty (hour, host)
                         SELECT DISTINCT date_trunc('hour', started_at, 'UTC'), host FROM touched_rows
                         ON CONFLICT DO NOTHING;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_sessions_removed AFTER DELETE ON sessions
                     REFERENCING OLD TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_removed();

                 CREATE FUNCTION usage_sessions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     INSERT INTO usage_dirty (hour, host)
                         SELECT DISTINCT x.hour, x.host FROM (
                             SELECT date_trunc('hour', o.started_at, 'UTC') AS hour, o.host FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o."user" IS DISTINCT FROM n."user" OR o.host <> n.host)
                             UNION ALL
                             SELECT date_trunc('hour', n.started_at, 'UTC'), n.host FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE (o."user" IS DISTINCT FROM n."user" OR o.host <> n.host)
                             UNION ALL
                             SELECT date_trunc('hour', t.opened_at, 'UTC'), h.host
                               FROM old_rows o JOIN new_rows n ON n.id = o.id JOIN transfers t ON t.session_id = n.id
                                    CROSS JOIN LATERAL (VALUES (o.host), (n.host)) AS h (host)
                              WHERE (o."user" IS DISTINCT FROM n."user" OR o.host <> n.host)) AS x
                         ON CONFLICT DO NOTHING;
                     INSERT INTO usage_hourly (hour, host, "user", sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low, files_bytes_unknown, contributors)
         SELECT c.hour, c.host, c."user", CAST(SUM(sessions) * -1 AS BIGINT), CAST(SUM(duration_ms_high) * -1 AS BIGINT), CAST(SUM(duration_ms_low) * -1 AS BIGINT), CAST(SUM(files_up) * -1 AS BIGINT), CAST(SUM(files_up_incomplete) * -1 AS BIGINT), CAST(SUM(files_down) * -1 AS BIGINT), CAST(SUM(files_down_incomplete) * -1 AS BIGINT), CAST(SUM(bytes_up_high) * -1 AS BIGINT), CAST(SUM(bytes_up_low) * -1 AS BIGINT), CAST(SUM(bytes_down_high) * -1 AS BIGINT), CAST(SUM(bytes_down_low) * -1 AS BIGINT), CAST(SUM(files_bytes_unknown) * -1 AS BIGINT), CAST(COUNT(*) * -1 AS BIGINT) FROM (SELECT date_trunc('hour', o.started_at, 'UTC') AS hour, o.host AS host, COALESCE(o."user", '') AS "user", 1 AS sessions,
         COALESCE(o.duration_ms, 0) / 4294967296 AS duration_ms_high, COALESCE(o.duration_ms, 0) % 4294967296 AS duration_ms_low,
         0 AS files_up, 0 AS files_up_incomplete, 0 AS files_down, 0 AS files_down_incomplete,
         0 AS bytes_up_high, 0 AS bytes_up_low, 0 AS bytes_down_high, 0 AS bytes_down_low,
         0 AS files_bytes_unknown FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.end_reason <> 'refused' AND (o.host, o."user", o.started_at, o.duration_ms, o.end_reason)
                          IS DISTINCT FROM (n.host, n."user", n.started_at, n.duration_ms, n.end_reason)
                        AND NOT (o."user" IS DISTINCT FROM n."user" OR o.host <> n.host)) AS c WHERE true GROUP BY c.hour, c.host, c."user"
         ON CONFLICT (hour, host, "user") DO UPDATE SET sessions = usage_hourly.sessions + excluded.sessions, duration_ms_high = usage_hourly.duration_ms_high + excluded.duration_ms_high, duration_ms_low = usage_hourly.duration_ms_low + excluded.duration_ms_low, files_up = usage_hourly.files_up + excluded.files_up, files_up_incomplete = usage_hourly.files_up_incomplete + excluded.files_up_incomplete, files_down = usage_hourly.files_down + excluded.files_down, files_down_incomplete = usage_hourly.files_down_incomplete + excluded.files_down_incomplete, bytes_up_high = usage_hourly.bytes_up_high + excluded.bytes_up_high, bytes_up_low = usage_hourly.bytes_up_low + excluded.bytes_up_low, bytes_down_high = usage_hourly.bytes_down_high + excluded.bytes_down_high, bytes_down_low = usage_hourly.bytes_down_low + excluded.bytes_down_low, files_bytes_unknown = usage_hourly.files_bytes_unknown + excluded.files_bytes_unknown, contributors = usage_hourly.contributors + excluded.contributors;
                     INSERT INTO usage_hourly (hour, host, "user", sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low, files_bytes_unknown, contributors)
         SELECT c.hour, c.host, c."user", CAST(SUM(sessions) * 1 AS BIGINT), CAST(SUM(duration_ms_high) * 1 AS BIGINT), CAST(SUM(duration_ms_low) * 1 AS BIGINT), CAST(SUM(files_up) * 1 AS BIGINT), CAST(SUM(files_up_incomplete) * 1 AS BIGINT), CAST(SUM(files_down) * 1 AS BIGINT), CAST(SUM(files_down_incomplete) * 1 AS BIGINT), CAST(SUM(bytes_up_high) * 1 AS BIGINT), CAST(SUM(bytes_up_low) * 1 AS BIGINT), CAST(SUM(bytes_down_high) * 1 AS BIGINT), CAST(SUM(bytes_down_low) * 1 AS BIGINT), CAST(SUM(files_bytes_unknown) * 1 AS BIGINT), CAST(COUNT(*) * 1 AS BIGINT) FROM (SELECT date_trunc('hour', n.started_at, 'UTC') AS hour, n.host AS host, COALESCE(n."user", '') AS "user", 1 AS sessions,
         COALESCE(n.duration_ms, 0) / 4294967296 AS duration_ms_high, COALESCE(n.duration_ms, 0) % 4294967296 AS duration_ms_low,
         0 AS files_up, 0 AS files_up_incomplete, 0 AS files_down, 0 AS files_down_incomplete,
         0 AS bytes_up_high, 0 AS bytes_up_low, 0 AS bytes_down_high, 0 AS bytes_down_low,
         0 AS files_bytes_unknown FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.end_reason <> 'refused' AND (o.host, o."user", o.started_at, o.duration_ms, o.end_reason)
                          IS DISTINCT FROM (n.host, n."user", n.started_at, n.duration_ms, n.end_reason)
                        AND NOT (o."user" IS DISTINCT FROM n."user" OR o.host <> n.host)) AS c WHERE true GROUP BY c.hour, c.host, c."user"
         ON CONFLICT (hour, host, "user") DO UPDATE SET sessions = usage_hourly.sessions + excluded.sessions, duration_ms_high = usage_hourly.duration_ms_high + excluded.duration_ms_high, duration_ms_low = usage_hourly.duration_ms_low + excluded.duration_ms_low, files_up = usage_hourly.files_up + excluded.files_up, files_up_incomplete = usage_hourly.files_up_incomplete + excluded.files_up_incomplete, files_down = usage_hourly.files_down + excluded.files_down, files_down_incomplete = usage_hourly.files_down_incomplete + excluded.files_down_incomplete, bytes_up_high = usage_hourly.bytes_up_high + excluded.bytes_up_high, bytes_up_low = usage_hourly.bytes_up_low + excluded.bytes_up_low, bytes_down_high = usage_hourly.bytes_down_high + excluded.bytes_down_high, bytes_down_low = usage_hourly.bytes_down_low + excluded.bytes_down_low, files_bytes_unknown = usage_hourly.files_bytes_unknown + excluded.files_bytes_unknown, contributors = usage_hourly.contributors + excluded.contributors;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_sessions_changed AFTER UPDATE ON sessions
                     REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_changed();

                 -- A row trigger whose WHEN skips the updates that change nothing usage sums (a
                 -- transfer marked failed) without calling a function.

                 -- A batch's transfers find their sessions by key: the planner's other choice,
                 -- hashing every session for each batch, made ingest quadratic (a third of its
                 -- time at 65,000 sessions).
                 CREATE FUNCTION usage_transfers_added() RETURNS trigger LANGUAGE plpgsql
                     SET enable_hashjoin = off SET enable_mergejoin = off AS $$
                 BEGIN
                     INSERT INTO usage_hourly (hour, host, "user", sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low, files_bytes_unknown, contributors)
         SELECT c.hour, c.host, c."user", CAST(SUM(sessions) * 1 AS BIGINT), CAST(SUM(duration_ms_high) * 1 AS BIGINT), CAST(SUM(duration_ms_low) * 1 AS BIGINT), CAST(SUM(files_up) * 1 AS BIGINT), CAST(SUM(files_up_incomplete) * 1 AS BIGINT), CAST(SUM(files_down) * 1 AS BIGINT), CAST(SUM(files_down_incomplete) * 1 AS BIGINT), CAST(SUM(bytes_up_high) * 1 AS BIGINT), CAST(SUM(bytes_up_low) * 1 AS BIGINT), CAST(SUM(bytes_down_high) * 1 AS BIGINT), CAST(SUM(bytes_down_low) * 1 AS BIGINT), CAST(SUM(files_bytes_unknown) * 1 AS BIGINT), CAST(COUNT(*) * 1 AS BIGINT) FROM (SELECT date_trunc('hour', t.opened_at, 'UTC') AS hour, s.host AS host, COALESCE(s."user", '') AS "user", 0 AS sessions,
         0 AS duration_ms_high, 0 AS duration_ms_low, CASE WHEN t.counts_as = 'upload' AND  t.complete THEN 1 ELSE 0 END AS files_up,
         CASE WHEN t.counts_as = 'upload' AND NOT t.complete THEN 1 ELSE 0 END AS files_up_incomplete, CASE WHEN t.counts_as = 'download' AND  t.complete THEN 1 ELSE 0 END AS files_down,
         CASE WHEN t.counts_as = 'download' AND NOT t.complete THEN 1 ELSE 0 END AS files_down_incomplete, COALESCE(t.bytes_written, 0) / 4294967296 AS bytes_up_high, COALESCE(t.bytes_written, 0) % 4294967296 AS bytes_up_low, COALESCE(t.bytes_read, 0) / 4294967296 AS bytes_down_high, COALESCE(t.bytes_read, 0) % 4294967296 AS bytes_down_low,
         CASE WHEN t.counters_cut THEN 1 ELSE 0 END AS files_bytes_unknown FROM touched_rows t JOIN sessions s ON s.id = t.session_id) AS c WHERE true GROUP BY c.hour, c.host, c."user"
         ON CONFLICT (hour, host, "user") DO UPDATE SET sessions = usage_hourly.sessions + excluded.sessions, duration_ms_high = usage_hourly.duration_ms_high + excluded.duration_ms_high, duration_ms_low = usage_hourly.duration_ms_low + excluded.duration_ms_low, files_up = usage_hourly.files_up + excluded.files_up, files_up_incomplete = usage_hourly.files_up_incomplete + excluded.files_up_incomplete, files_down = usage_hourly.files_down + excluded.files_down, files_down_incomplete = usage_hourly.files_down_incomplete + excluded.files_down_incomplete, bytes_up_high = usage_hourly.bytes_up_high + excluded.bytes_up_high, bytes_up_low = usage_hourly.bytes_up_low + excluded.bytes_up_low, bytes_down_high = usage_hourly.bytes_down_high + excluded.bytes_down_high, bytes_down_low = usage_hourly.bytes_down_low + excluded.bytes_down_low, files_bytes_unknown = usage_hourly.files_bytes_unknown + excluded.files_bytes_unknown, contributors = usage_hourly.contributors + excluded.contributors;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_transfers_added AFTER INSERT ON transfers
                     REFERENCING NEW TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_added();
                 CREATE FUNCTION usage_transfers_removed() RETURNS trigger LANGUAGE plpgsql
                     SET enable_hashjoin = off SET enable_mergejoin = off AS $$
                 BEGIN
                     INSERT INTO usage_hourly (hour, host, "user", sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low, files_bytes_unknown, contributors)
         SELECT c.hour, c.host, c."user", CAST(SUM(sessions) * -1 AS BIGINT), CAST(SUM(duration_ms_high) * -1 AS BIGINT), CAST(SUM(duration_ms_low) * -1 AS BIGINT), CAST(SUM(files_up) * -1 AS BIGINT), CAST(SUM(files_up_incomplete) * -1 AS BIGINT), CAST(SUM(files_down) * -1 AS BIGINT), CAST(SUM(files_down_incomplete) * -1 AS BIGINT), CAST(SUM(bytes_up_high) * -1 AS BIGINT), CAST(SUM(bytes_up_low) * -1 AS BIGINT), CAST(SUM(bytes_down_high) * -1 AS BIGINT), CAST(SUM(bytes_down_low) * -1 AS BIGINT), CAST(SUM(files_bytes_unknown) * -1 AS BIGINT), CAST(COUNT(*) * -1 AS BIGINT) FROM (SELECT date_trunc('hour', t.opened_at, 'UTC') AS hour, s.host AS host, COALESCE(s."user", '') AS "user", 0 AS sessions,
         0 AS duration_ms_high, 0 AS duration_ms_low, CASE WHEN t.counts_as = 'upload' AND  t.complete THEN 1 ELSE 0 END AS files_up,
         CASE WHEN t.counts_as = 'upload' AND NOT t.complete THEN 1 ELSE 0 END AS files_up_incomplete, CASE WHEN t.counts_as = 'download' AND  t.complete THEN 1 ELSE 0 END AS files_down,
         CASE WHEN t.counts_as = 'download' AND NOT t.complete THEN 1 ELSE 0 END AS files_down_incomplete, COALESCE(t.bytes_written, 0) / 4294967296 AS bytes_up_high, COALESCE(t.bytes_written, 0) % 4294967296 AS bytes_up_low, COALESCE(t.bytes_read, 0) / 4294967296 AS bytes_down_high, COALESCE(t.bytes_read, 0) % 4294967296 AS bytes_down_low,
         CASE WHEN t.counters_cut THEN 1 ELSE 0 END AS files_bytes_unknown FROM touched_rows t JOIN sessions s ON s.id = t.session_id) AS c WHERE true GROUP BY c.hour, c.host, c."user"
         ON CONFLICT (hour, host, "user") DO UPDATE SET sessions = usage_hourly.sessions + excluded.sessions, duration_ms_high = usage_hourly.duration_ms_high + excluded.duration_ms_high, duration_ms_low = usage_hourly.duration_ms_low + excluded.duration_ms_low, files_up = usage_hourly.files_up + excluded.files_up, files_up_incomplete = usage_hourly.files_up_incomplete + excluded.files_up_incomplete, files_down = usage_hourly.files_down + excluded.files_down, files_down_incomplete = usage_hourly.files_down_incomplete + excluded.files_down_incomplete, bytes_up_high = usage_hourly.bytes_up_high + excluded.bytes_up_high, bytes_up_low = usage_hourly.bytes_up_low + excluded.bytes_up_low, bytes_down_high = usage_hourly.bytes_down_high + excluded.bytes_down_high, bytes_down_low = usage_hourly.bytes_down_low + excluded.bytes_down_low, files_bytes_unknown = usage_hourly.files_bytes_unknown + excluded.files_bytes_unknown, contributors = usage_hourly.contributors + excluded.contributors;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_transfers_removed AFTER DELETE ON transfers
                     REFERENCING OLD TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_removed();
                 CREATE FUNCTION usage_transfer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     INSERT INTO usage_hourly (hour, host, "user", sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low, files_bytes_unknown, contributors)
         SELECT c.hour, c.host, c."user", sessions * -1, duration_ms_high * -1, duration_ms_low * -1, files_up * -1, files_up_incomplete * -1, files_down * -1, files_down_incomplete * -1, bytes_up_high * -1, bytes_up_low * -1, bytes_down_high * -1, bytes_down_low * -1, files_bytes_unknown * -1, -1 FROM (SELECT date_trunc('hour', OLD.opened_at, 'UTC') AS hour, s.host AS host, COALESCE(s."user", '') AS "user", 0 AS sessions,
         0 AS duration_ms_high, 0 AS duration_ms_low, CASE WHEN OLD.counts_as = 'upload' AND  OLD.complete THEN 1 ELSE 0 END AS files_up,
         CASE WHEN OLD.counts_as = 'upload' AND NOT OLD.complete THEN 1 ELSE 0 END AS files_up_incomplete, CASE WHEN OLD.counts_as = 'download' AND  OLD.complete THEN 1 ELSE 0 END AS files_down,
         CASE WHEN OLD.counts_as = 'download' AND NOT OLD.complete THEN 1 ELSE 0 END AS files_down_incomplete, COALESCE(OLD.bytes_written, 0) / 4294967296 AS bytes_up_high, COALESCE(OLD.bytes_written, 0) % 4294967296 AS bytes_up_low, COALESCE(OLD.bytes_read, 0) / 4294967296 AS bytes_down_high, COALESCE(OLD.bytes_read, 0) % 4294967296 AS bytes_down_low,
         CASE WHEN OLD.counters_cut THEN 1 ELSE 0 END AS files_bytes_unknown FROM sessions s WHERE s.id = OLD.session_id) AS c WHERE true
         ON CONFLICT (hour, host, "user") DO UPDATE SET sessions = usage_hourly.sessions + excluded.sessions, duration_ms_high = usage_hourly.duration_ms_high + excluded.duration_ms_high, duration_ms_low = usage_hourly.duration_ms_low + excluded.duration_ms_low, files_up = usage_hourly.files_up + excluded.files_up, files_up_incomplete = usage_hourly.files_up_incomplete + excluded.files_up_incomplete, files_down = usage_hourly.files_down + excluded.files_down, files_down_incomplete = usage_hourly.files_down_incomplete + excluded.files_down_incomplete, bytes_up_high = usage_hourly.bytes_up_high + excluded.bytes_up_high, bytes_up_low = usage_hourly.bytes_up_low + excluded.bytes_up_low, bytes_down_high = usage_hourly.bytes_down_high + excluded.bytes_down_high, bytes_down_low = usage_hourly.bytes_down_low + excluded.bytes_down_low, files_bytes_unknown = usage_hourly.files_bytes_unknown + excluded.files_bytes_unknown, contributors = usage_hourly.contributors + excluded.contributors;
                     INSERT INTO usage_hourly (hour, host, "user", sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low, files_bytes_unknown, contributors)
         SELECT c.hour, c.host, c."user", sessions * 1, duration_ms_high * 1, duration_ms_low * 1, files_up * 1, files_up_incomplete * 1, files_down * 1, files_down_incomplete * 1, bytes_up_high * 1, bytes_up_low * 1, bytes_down_high * 1, bytes_down_low * 1, files_bytes_unknown * 1, 1 FROM (SELECT date_trunc('hour', NEW.opened_at, 'UTC') AS hour, s.host AS host, COALESCE(s."user", '') AS "user", 0 AS sessions,
         0 AS duration_ms_high, 0 AS duration_ms_low, CASE WHEN NEW.counts_as = 'upload' AND  NEW.complete THEN 1 ELSE 0 END AS files_up,
         CASE WHEN NEW.counts_as = 'upload' AND NOT NEW.complete THEN 1 ELSE 0 END AS files_up_incomplete, CASE WHEN NEW.counts_as = 'download' AND  NEW.complete THEN 1 ELSE 0 END AS files_down,
         CASE WHEN NEW.counts_as = 'download' AND NOT NEW.complete THEN 1 ELSE 0 END AS files_down_incomplete, COALESCE(NEW.bytes_written, 0) / 4294967296 AS bytes_up_high, COALESCE(NEW.bytes_written, 0) % 4294967296 AS bytes_up_low, COALESCE(NEW.bytes_read, 0) / 4294967296 AS bytes_down_high, COALESCE(NEW.bytes_read, 0) % 4294967296 AS bytes_down_low,
         CASE WHEN NEW.counters_cut THEN 1 ELSE 0 END AS files_bytes_unknown FROM sessions s WHERE s.id = NEW.session_id) AS c WHERE true
         ON CONFLICT (hour, host, "user") DO UPDATE SET sessions = usage_hourly.sessions + excluded.sessions, duration_ms_high = usage_hourly.duration_ms_high + excluded.duration_ms_high, duration_ms_low = usage_hourly.duration_ms_low + excluded.duration_ms_low, files_up = usage_hourly.files_up + excluded.files_up, files_up_incomplete = usage_hourly.files_up_incomplete + excluded.files_up_incomplete, files_down = usage_hourly.files_down + excluded.files_down, files_down_incomplete = usage_hourly.files_down_incomplete + excluded.files_down_incomplete, bytes_up_high = usage_hourly.bytes_up_high + excluded.bytes_up_high, bytes_up_low = usage_hourly.bytes_up_low + excluded.bytes_up_low, bytes_down_high = usage_hourly.bytes_down_high + excluded.bytes_down_high, bytes_down_low = usage_hourly.bytes_down_low + excluded.bytes_down_low, files_bytes_unknown = usage_hourly.files_bytes_unknown + excluded.files_bytes_unknown, contributors = usage_hourly.contributors + excluded.contributors;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_transfer_changed AFTER UPDATE ON transfers FOR EACH ROW
                     WHEN ((OLD.session_id, OLD.opened_at, OLD.counts_as, OLD.bytes_read,
                            OLD.bytes_written, OLD.complete, OLD.counters_cut)
                           IS DISTINCT FROM (NEW.session_id, NEW.opened_at, NEW.counts_as,
                            NEW.bytes_read, NEW.bytes_written, NEW.complete, NEW.counters_cut))
                     EXECUTE FUNCTION usage_transfer_changed();