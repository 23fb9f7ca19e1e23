-- One rule for the rollups, in Rust (src/accounting/rollup.rs): the triggers that added each
-- row's part to its cell in SQL are replaced by triggers that only note the (hour, host) cells a
-- change touches in usage_dirty, and the commit computes those cells afresh from the rows by that
-- rule. The ingest adds the rows it writes to their cells itself, with the triggers off on its
-- connection while it does. The hour is the UTC hour's first microsecond as storage text.
DROP TRIGGER IF EXISTS usage_session_added;
DROP TRIGGER IF EXISTS usage_session_changed;
DROP TRIGGER IF EXISTS usage_session_removed;
DROP TRIGGER IF EXISTS usage_transfer_added;
DROP TRIGGER IF EXISTS usage_transfer_changed;
DROP TRIGGER IF EXISTS usage_transfer_removed;

-- Transfers written before their session (by hand, with foreign keys off) count from then on.
CREATE TRIGGER usage_session_added AFTER INSERT ON session_rows BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (NEW.started_at_us - ((NEW.started_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), NEW.host
        UNION SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (t.opened_at_us - ((t.opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), NEW.host FROM transfer_rows t
               WHERE t.session_id = NEW.id;
END;
CREATE TRIGGER usage_session_changed
    AFTER UPDATE OF host, user, started_at_us, duration_ms, end_reason ON session_rows
    WHEN OLD.host IS NOT NEW.host OR OLD.user IS NOT NEW.user
         OR OLD.started_at_us IS NOT NEW.started_at_us OR OLD.duration_ms IS NOT NEW.duration_ms
         OR OLD.end_reason IS NOT NEW.end_reason
BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        VALUES (strftime('%Y-%m-%dT%H:00:00.000000Z', (OLD.started_at_us - ((OLD.started_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), OLD.host),
               (strftime('%Y-%m-%dT%H:00:00.000000Z', (NEW.started_at_us - ((NEW.started_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), NEW.host);
    -- A session that changes hands (its user learnt late) moves its transfers too.
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT DISTINCT strftime('%Y-%m-%dT%H:00:00.000000Z', (t.opened_at_us - ((t.opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), h.host
          FROM transfer_rows t, (SELECT OLD.host AS host UNION SELECT NEW.host) h
         WHERE t.session_id = NEW.id AND (OLD.user IS NOT NEW.user OR OLD.host IS NOT NEW.host);
END;
-- Its transfers, where they stay behind, count no more.
CREATE TRIGGER usage_session_removed AFTER DELETE ON session_rows BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (OLD.started_at_us - ((OLD.started_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), OLD.host
        UNION SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (t.opened_at_us - ((t.opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), OLD.host FROM transfer_rows t
               WHERE t.session_id = OLD.id;
END;
CREATE TRIGGER usage_transfer_added AFTER INSERT ON transfer_rows BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (NEW.opened_at_us - ((NEW.opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), s.host FROM session_rows s WHERE s.id = NEW.session_id;
END;
CREATE TRIGGER usage_transfer_changed
    AFTER UPDATE OF session_id, opened_at_us, counts_as, bytes_read, bytes_written, complete,
                    counters_cut ON transfer_rows
    WHEN OLD.session_id IS NOT NEW.session_id OR OLD.opened_at_us IS NOT NEW.opened_at_us
         OR OLD.counts_as IS NOT NEW.counts_as OR OLD.bytes_read IS NOT NEW.bytes_read
         OR OLD.bytes_written IS NOT NEW.bytes_written OR OLD.complete IS NOT NEW.complete
         OR OLD.counters_cut IS NOT NEW.counters_cut
BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (OLD.opened_at_us - ((OLD.opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), s.host FROM session_rows s WHERE s.id = OLD.session_id
        UNION
        SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (NEW.opened_at_us - ((NEW.opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), s.host FROM session_rows s WHERE s.id = NEW.session_id;
END;
CREATE TRIGGER usage_transfer_removed AFTER DELETE ON transfer_rows BEGIN
    INSERT OR IGNORE INTO usage_dirty (hour, host)
        SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', (OLD.opened_at_us - ((OLD.opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch'), s.host FROM session_rows s WHERE s.id = OLD.session_id;
END;
