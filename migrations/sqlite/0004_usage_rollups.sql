
-- Usage per UTC hour, host and user ('' for none), so that usage reports read this instead of
-- every transfer. Kept exact in the transaction that changes what it sums: the triggers below
-- note the (hour, host) cells a change touches in usage_dirty, and every commit recomputes
-- those cells from the rows (storage::refresh_rollups_sql). Sums that could pass 64 bits are
-- kept as the sums of their high and low 32 bits.
CREATE TABLE usage_hourly (
    hour                  TEXT NOT NULL,
    host                  TEXT NOT NULL,
    user                  TEXT NOT NULL,
    sessions              INTEGER NOT NULL,
    duration_ms_high      INTEGER NOT NULL,
    duration_ms_low       INTEGER NOT NULL,
    files_up              INTEGER NOT NULL,
    files_up_incomplete   INTEGER NOT NULL,
    files_down            INTEGER NOT NULL,
    files_down_incomplete INTEGER NOT NULL,
    bytes_up_high         INTEGER NOT NULL,
    bytes_up_low          INTEGER NOT NULL,
    bytes_down_high       INTEGER NOT NULL,
    bytes_down_low        INTEGER NOT NULL,
    files_bytes_unknown   INTEGER NOT NULL,
    PRIMARY KEY (hour, host, user)
) WITHOUT ROWID;
CREATE INDEX usage_hourly_user ON usage_hourly (user, hour);
CREATE TABLE usage_dirty (
    hour TEXT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (hour, host)
) WITHOUT ROWID;
CREATE INDEX sessions_host_started ON sessions (host, started_at);

-- What `sftpd-report metrics` reads besides the rollups: ingest counters (moved in each
-- commit), and the few rows it counts.
CREATE TABLE ingest_counters (
    name       TEXT PRIMARY KEY,
    value      INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX operations_failed ON operations (host) WHERE failed;
CREATE INDEX operations_denied ON operations (host) WHERE kind = 'denied';
CREATE INDEX transfers_failed ON transfers (session_id) WHERE failed;
CREATE INDEX sessions_refused ON sessions (host) WHERE end_reason = 'refused';

CREATE TRIGGER usage_session_added AFTER INSERT ON sessions BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        VALUES (substr(NEW.started_at, 1, 13) || ':00:00.000000Z', NEW.host);
END;
CREATE TRIGGER usage_session_changed
    AFTER UPDATE OF host, user, started_at, duration_ms, end_reason ON sessions BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        VALUES (substr(OLD.started_at, 1, 13) || ':00:00.000000Z', OLD.host),
               (substr(NEW.started_at, 1, 13) || ':00:00.000000Z', NEW.host);
    -- A session that changes hands (its user learnt late) moves its transfers too.
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT DISTINCT substr(t.opened_at, 1, 13) || ':00:00.000000Z', h.host
          FROM transfers t, (SELECT OLD.host AS host UNION SELECT NEW.host) h
         WHERE t.session_id = NEW.id AND (OLD.user IS NOT NEW.user OR OLD.host IS NOT NEW.host);
END;
CREATE TRIGGER usage_session_removed AFTER DELETE ON sessions BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        VALUES (substr(OLD.started_at, 1, 13) || ':00:00.000000Z', OLD.host);
END;
CREATE TRIGGER usage_transfer_added AFTER INSERT ON transfers BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT substr(NEW.opened_at, 1, 13) || ':00:00.000000Z', host FROM sessions
         WHERE id = NEW.session_id;
END;
CREATE TRIGGER usage_transfer_changed
    AFTER UPDATE OF session_id, opened_at, counts_as, bytes_read, bytes_written, complete, counters_cut
    ON transfers BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT substr(OLD.opened_at, 1, 13) || ':00:00.000000Z', host FROM sessions
         WHERE id = OLD.session_id
        UNION
        SELECT substr(NEW.opened_at, 1, 13) || ':00:00.000000Z', host FROM sessions
         WHERE id = NEW.session_id;
END;
CREATE TRIGGER usage_transfer_removed AFTER DELETE ON transfers BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT substr(OLD.opened_at, 1, 13) || ':00:00.000000Z', host FROM sessions
         WHERE id = OLD.session_id;
END;
