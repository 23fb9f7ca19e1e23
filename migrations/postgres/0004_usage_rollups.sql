
-- Usage per UTC hour, host and user ('' for none), so that usage reports read this instead of
-- every transfer. Kept exact in the transaction that changes what it sums: the statement
-- triggers below note the (hour, host) cells a change touches in usage_dirty, and every commit
-- recomputes those cells from the rows (storage::refresh_rollups_sql). Sums that could pass
-- 64 bits are kept as the sums of their high and low 32 bits.
CREATE TABLE usage_hourly (
    hour                  TIMESTAMPTZ NOT NULL,
    host                  TEXT NOT NULL,
    "user"                TEXT NOT NULL,
    sessions              BIGINT NOT NULL,
    duration_ms_high      BIGINT NOT NULL,
    duration_ms_low       BIGINT NOT NULL,
    files_up              BIGINT NOT NULL,
    files_up_incomplete   BIGINT NOT NULL,
    files_down            BIGINT NOT NULL,
    files_down_incomplete BIGINT NOT NULL,
    bytes_up_high         BIGINT NOT NULL,
    bytes_up_low          BIGINT NOT NULL,
    bytes_down_high       BIGINT NOT NULL,
    bytes_down_low        BIGINT NOT NULL,
    files_bytes_unknown   BIGINT NOT NULL,
    PRIMARY KEY (hour, host, "user")
);
CREATE INDEX usage_hourly_user ON usage_hourly ("user", hour);
CREATE TABLE usage_dirty (
    hour TIMESTAMPTZ NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (hour, host)
);
CREATE INDEX sessions_host_started ON sessions (host, started_at);

-- What `sftpd-report metrics` reads besides the rollups: ingest counters (moved in each
-- commit), and the few rows it counts.
CREATE TABLE ingest_counters (
    name       TEXT PRIMARY KEY,
    value      BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX operations_failed ON operations (host) WHERE failed;
CREATE INDEX operations_denied ON operations (host) WHERE kind = 'denied';
CREATE INDEX transfers_failed ON transfers (session_id) WHERE failed;
CREATE INDEX sessions_refused ON sessions (host) WHERE end_reason = 'refused';

-- Rows added or removed: one function serves both statement triggers, whose transition table
-- has the same name.
CREATE FUNCTION usage_sessions_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_dirty (hour, host)
        SELECT DISTINCT date_trunc('hour', started_at, 'UTC'), host FROM touched_rows
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_sessions_added AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_touched();
CREATE TRIGGER usage_sessions_removed AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_touched();

-- Row triggers whose WHEN skips the many updates that change nothing usage sums (a session's
-- last operation, its sftp-server PID, a transfer marked failed) without calling a function.
CREATE FUNCTION usage_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_dirty (hour, host)
        VALUES (date_trunc('hour', OLD.started_at, 'UTC'), OLD.host),
               (date_trunc('hour', NEW.started_at, 'UTC'), NEW.host)
        ON CONFLICT DO NOTHING;
    -- A session that changes hands (its user learnt late) moves its transfers too.
    IF OLD."user" IS DISTINCT FROM NEW."user" OR OLD.host <> NEW.host THEN
        INSERT INTO usage_dirty (hour, host)
            SELECT DISTINCT date_trunc('hour', t.opened_at, 'UTC'), h.host
              FROM transfers t CROSS JOIN (VALUES (OLD.host), (NEW.host)) AS h (host)
             WHERE t.session_id = NEW.id
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_session_changed AFTER UPDATE ON sessions FOR EACH ROW
    WHEN ((OLD.host, OLD."user", OLD.started_at, OLD.duration_ms, OLD.end_reason)
          IS DISTINCT FROM (NEW.host, NEW."user", NEW.started_at, NEW.duration_ms, NEW.end_reason))
    EXECUTE FUNCTION usage_session_changed();

-- A transfer's host is its session's: looked up once per distinct (hour, session) of the
-- statement, by primary key.
CREATE FUNCTION usage_transfers_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_dirty (hour, host)
        SELECT DISTINCT x.hour, (SELECT s.host FROM sessions s WHERE s.id = x.session_id)
          FROM (SELECT DISTINCT date_trunc('hour', opened_at, 'UTC') AS hour, session_id
                  FROM touched_rows) AS x
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_transfers_added AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_touched();
CREATE TRIGGER usage_transfers_removed AFTER DELETE ON transfers
    REFERENCING OLD TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_touched();

CREATE FUNCTION usage_transfer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_dirty (hour, host)
        SELECT date_trunc('hour', OLD.opened_at, 'UTC'), s.host FROM sessions s
         WHERE s.id = OLD.session_id
        UNION
        SELECT date_trunc('hour', NEW.opened_at, 'UTC'), s.host FROM sessions s
         WHERE s.id = NEW.session_id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_transfer_changed AFTER UPDATE ON transfers FOR EACH ROW
    WHEN ((OLD.session_id, OLD.opened_at, OLD.counts_as, OLD.bytes_read, OLD.bytes_written,
           OLD.complete, OLD.counters_cut)
          IS DISTINCT FROM (NEW.session_id, NEW.opened_at, NEW.counts_as, NEW.bytes_read,
                            NEW.bytes_written, NEW.complete, NEW.counters_cut))
    EXECUTE FUNCTION usage_transfer_changed();
