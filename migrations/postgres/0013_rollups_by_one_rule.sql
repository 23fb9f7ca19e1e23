-- One rule for the rollups, in Rust (src/accounting/rollup.rs): the trigger functions that
-- added each statement's rows to their cells in SQL are replaced by ones that only note the
-- (hour, host) cells a change touches in usage_dirty, and the commit computes those cells afresh
-- from the rows by that rule. The ingest adds what its writes move to the cells itself: while it
-- writes a batch, its transaction sets sftpd_wrapper.adding_rows, and these functions skip.
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

-- Rows added or removed: one function serves both statement triggers, whose transition table
-- has the same name. A session's transfers that stay behind it count no more.
CREATE FUNCTION usage_sessions_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sftpd_wrapper.adding_rows', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_dirty (hour, host)
        SELECT DISTINCT date_trunc('hour', started_at, 'UTC'), host FROM touched_rows
        UNION
        SELECT DISTINCT date_trunc('hour', t.opened_at, 'UTC'), s.host
          FROM touched_rows s JOIN transfers t ON t.session_id = s.id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_sessions_added AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_touched();
CREATE TRIGGER usage_sessions_removed AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_touched();

-- A batch's session updates are one statement: the transition tables pair each row's old and
-- new values; only those that changed what usage counts note their cells.
CREATE FUNCTION usage_sessions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sftpd_wrapper.adding_rows', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_dirty (hour, host)
        SELECT DISTINCT x.hour, x.host FROM (
            SELECT date_trunc('hour', o.started_at, 'UTC') AS hour, o.host
              FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE (o.host, o."user", o.started_at, o.duration_ms, o.end_reason)
                   IS DISTINCT FROM (n.host, n."user", n.started_at, n.duration_ms, n.end_reason)
            UNION ALL
            SELECT date_trunc('hour', n.started_at, 'UTC'), n.host
              FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE (o.host, o."user", o.started_at, o.duration_ms, o.end_reason)
                   IS DISTINCT FROM (n.host, n."user", n.started_at, n.duration_ms, n.end_reason)
            UNION ALL
            -- A session that changes hands (its user learnt late) moves its transfers too.
            SELECT date_trunc('hour', t.opened_at, 'UTC'), h.host
              FROM old_rows o JOIN new_rows n ON n.id = o.id
                   JOIN transfers t ON t.session_id = n.id
                   CROSS JOIN LATERAL (VALUES (o.host), (n.host)) AS h (host)
             WHERE o."user" IS DISTINCT FROM n."user" OR o.host <> n.host) AS x
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_sessions_changed AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_changed();

-- A transfer's host is its session's: looked up once per distinct (hour, session) of the
-- statement, by key (the planner's other choice, hashing every session for each statement,
-- made the ingest quadratic).
CREATE FUNCTION usage_transfers_touched() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    IF current_setting('sftpd_wrapper.adding_rows', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_dirty (hour, host)
        SELECT DISTINCT x.hour, s.host
          FROM (SELECT DISTINCT date_trunc('hour', opened_at, 'UTC') AS hour, session_id
                  FROM touched_rows) AS x
          JOIN sessions s ON s.id = x.session_id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_transfers_added AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_touched();
CREATE TRIGGER usage_transfers_removed AFTER DELETE ON transfers
    REFERENCING OLD TABLE AS touched_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_touched();

-- A row trigger whose WHEN skips the updates that change nothing usage counts (a transfer
-- marked failed, renamed) without calling a function.
CREATE FUNCTION usage_transfer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sftpd_wrapper.adding_rows', true) = 'on' THEN
        RETURN NULL;
    END IF;
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
