
-- Version 9 keeps the rows in session_rows, transfer_rows and operation_rows, and makes sessions,
-- transfers and operations views that show them with the readable columns version 6 added as
-- virtual columns (the same columns in the same order, so people's queries and SELECT * keep
-- working). SQLite computes every generated column of a row it writes, read or not; a view
-- computes them only when they are read. The checks are written as comparisons: SQLite builds
-- an IN list's lookup table again for each row it checks. Each table is rebuilt as SQLite asks
-- (https://sqlite.org/lang_altertable.html#otheralter): the views and triggers that read it go
-- first (the rollup triggers, storage::rollup_triggers_sql, were created again after this until
-- version 13).
DROP VIEW IF EXISTS monthly_usage;
DROP VIEW IF EXISTS daily_usage;
DROP VIEW IF EXISTS usage_events;
DROP TRIGGER IF EXISTS usage_session_added;
DROP TRIGGER IF EXISTS usage_session_changed;
DROP TRIGGER IF EXISTS usage_session_removed;
DROP TRIGGER IF EXISTS usage_transfer_added;
DROP TRIGGER IF EXISTS usage_transfer_changed;
DROP TRIGGER IF EXISTS usage_transfer_removed;

CREATE TABLE session_rows (
    id             INTEGER PRIMARY KEY,
    host           TEXT NOT NULL,
    user           TEXT,
    client_ip      TEXT,
    client_port    INTEGER,
    local_ip       TEXT,
    local_port     INTEGER,
    started_at_us  INTEGER NOT NULL,
    ended_at_us    INTEGER,
    duration_ms    INTEGER,
    exit_status    INTEGER,
    signal         TEXT,
    end_reason     TEXT NOT NULL DEFAULT 'missing_end'
                   CHECK (end_reason = 'closed' OR end_reason = 'forced' OR end_reason = 'missing_end' OR end_reason = 'refused'),
    source         TEXT NOT NULL CHECK (source = 'wrapper' OR source = 'sftp-server' OR source = 'internal-sftp'),
    sid            TEXT,
    pid            INTEGER NOT NULL,
    sftp_pid       INTEGER,
    auth_method    TEXT,
    auth_key       TEXT,
    sftp_closed    INTEGER NOT NULL DEFAULT 0,
    -- What a following `sent status` line answers, while the session is open.
    last_op_kind   TEXT,
    last_op_id     INTEGER,
    origin_pid     INTEGER,
    origin_uid     INTEGER,
    origin_command TEXT,
    UNIQUE (host, pid, started_at_us)
);
INSERT INTO session_rows (id, host, user, client_ip, client_port, local_ip, local_port, started_at_us,
    ended_at_us, duration_ms, exit_status, signal, end_reason, source, sid, pid,
    sftp_pid, auth_method, auth_key, sftp_closed, last_op_kind, last_op_id,
    origin_pid, origin_uid, origin_command)
SELECT id, host, user, client_ip, client_port, local_ip, local_port, started_at_us,
       ended_at_us, duration_ms, exit_status, signal, end_reason, source, sid, pid,
       sftp_pid, auth_method, auth_key, sftp_closed, last_op_kind, last_op_id,
       origin_pid, origin_uid, origin_command
  FROM sessions;
DROP TABLE sessions;
CREATE INDEX sessions_user ON session_rows (user, started_at_us);
CREATE INDEX sessions_open ON session_rows (ended_at_us) WHERE ended_at_us IS NULL;
CREATE INDEX sessions_host_started ON session_rows (host, started_at_us);
CREATE INDEX sessions_refused ON session_rows (host) WHERE end_reason = 'refused';
CREATE VIEW sessions AS
SELECT *,
       date((started_at_us - (((started_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || 'T' || time((started_at_us - (((started_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || '.' || substr((((started_at_us % 1000000) + 1000000) % 1000000) + 1000000, 2) || 'Z' AS started_at,
       date((ended_at_us - (((ended_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || 'T' || time((ended_at_us - (((ended_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || '.' || substr((((ended_at_us % 1000000) + 1000000) % 1000000) + 1000000, 2) || 'Z' AS ended_at
  FROM session_rows;

CREATE TABLE transfer_rows (
    id            INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES session_rows (id),
    path          BLOB NOT NULL,
    -- NULL where path_text is the name's bytes as they are.
    path_escaped  TEXT,
    -- 0 none, 1 upload, 2 download, 3 both.
    direction_code INTEGER NOT NULL CHECK (direction_code BETWEEN 0 AND 3),
    -- sftp-server's flag words as bits (READ 1, WRITE 2, APPEND 4, CREATE 8, TRUNCATE 16,
    -- EXCL 32) where the text is those words in its order, else the text itself: no type, so
    -- that SQLite keeps either as it is given.
    open_flags_code NOT NULL,
    mode          TEXT,
    bytes_read    INTEGER,
    bytes_written INTEGER,
    opened_at_us  INTEGER NOT NULL,
    closed_at_us  INTEGER,
    forced        INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    complete      INTEGER NOT NULL DEFAULT 0,
    counts_as     TEXT CHECK (counts_as = 'upload' OR counts_as = 'download'),
    counters_cut  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO transfer_rows (id, session_id, path, path_escaped, direction_code, open_flags_code, mode, bytes_read,
    bytes_written, opened_at_us, closed_at_us, forced, failed, complete, counts_as,
    counters_cut)
SELECT id, session_id, path, path_escaped, direction_code, open_flags_code, mode, bytes_read,
       bytes_written, opened_at_us, closed_at_us, forced, failed, complete, counts_as,
       counters_cut
  FROM transfers;
DROP TABLE transfers;
CREATE INDEX transfers_session ON transfer_rows (session_id);
CREATE INDEX transfers_open ON transfer_rows (closed_at_us) WHERE closed_at_us IS NULL;
CREATE INDEX transfers_opened ON transfer_rows (opened_at_us);
CREATE INDEX transfers_failed ON transfer_rows (session_id) WHERE failed;
CREATE VIEW transfers AS
SELECT *,
       COALESCE(path_escaped, CAST(path AS TEXT)) AS path_text,
       CASE direction_code WHEN 1 THEN 'upload' WHEN 2 THEN 'download' WHEN 3 THEN 'both' ELSE 'none' END AS direction,
       CASE open_flags_code
           WHEN 26 THEN 'WRITE,CREATE,TRUNCATE'
           WHEN 1 THEN 'READ'
           WHEN 0 THEN ''
           WHEN 2 THEN 'WRITE'
           WHEN 3 THEN 'READ,WRITE'
           WHEN 4 THEN 'APPEND'
           WHEN 5 THEN 'READ,APPEND'
           WHEN 6 THEN 'WRITE,APPEND'
           WHEN 7 THEN 'READ,WRITE,APPEND'
           WHEN 8 THEN 'CREATE'
           WHEN 9 THEN 'READ,CREATE'
           WHEN 10 THEN 'WRITE,CREATE'
           WHEN 11 THEN 'READ,WRITE,CREATE'
           WHEN 12 THEN 'APPEND,CREATE'
           WHEN 13 THEN 'READ,APPEND,CREATE'
           WHEN 14 THEN 'WRITE,APPEND,CREATE'
           WHEN 15 THEN 'READ,WRITE,APPEND,CREATE'
           WHEN 16 THEN 'TRUNCATE'
           WHEN 17 THEN 'READ,TRUNCATE'
           WHEN 18 THEN 'WRITE,TRUNCATE'
           WHEN 19 THEN 'READ,WRITE,TRUNCATE'
           WHEN 20 THEN 'APPEND,TRUNCATE'
           WHEN 21 THEN 'READ,APPEND,TRUNCATE'
           WHEN 22 THEN 'WRITE,APPEND,TRUNCATE'
           WHEN 23 THEN 'READ,WRITE,APPEND,TRUNCATE'
           WHEN 24 THEN 'CREATE,TRUNCATE'
           WHEN 25 THEN 'READ,CREATE,TRUNCATE'
           WHEN 27 THEN 'READ,WRITE,CREATE,TRUNCATE'
           WHEN 28 THEN 'APPEND,CREATE,TRUNCATE'
           WHEN 29 THEN 'READ,APPEND,CREATE,TRUNCATE'
           WHEN 30 THEN 'WRITE,APPEND,CREATE,TRUNCATE'
           WHEN 31 THEN 'READ,WRITE,APPEND,CREATE,TRUNCATE'
           WHEN 32 THEN 'EXCL'
           WHEN 33 THEN 'READ,EXCL'
           WHEN 34 THEN 'WRITE,EXCL'
           WHEN 35 THEN 'READ,WRITE,EXCL'
           WHEN 36 THEN 'APPEND,EXCL'
           WHEN 37 THEN 'READ,APPEND,EXCL'
           WHEN 38 THEN 'WRITE,APPEND,EXCL'
           WHEN 39 THEN 'READ,WRITE,APPEND,EXCL'
           WHEN 40 THEN 'CREATE,EXCL'
           WHEN 41 THEN 'READ,CREATE,EXCL'
           WHEN 42 THEN 'WRITE,CREATE,EXCL'
           WHEN 43 THEN 'READ,WRITE,CREATE,EXCL'
           WHEN 44 THEN 'APPEND,CREATE,EXCL'
           WHEN 45 THEN 'READ,APPEND,CREATE,EXCL'
           WHEN 46 THEN 'WRITE,APPEND,CREATE,EXCL'
           WHEN 47 THEN 'READ,WRITE,APPEND,CREATE,EXCL'
           WHEN 48 THEN 'TRUNCATE,EXCL'
           WHEN 49 THEN 'READ,TRUNCATE,EXCL'
           WHEN 50 THEN 'WRITE,TRUNCATE,EXCL'
           WHEN 51 THEN 'READ,WRITE,TRUNCATE,EXCL'
           WHEN 52 THEN 'APPEND,TRUNCATE,EXCL'
           WHEN 53 THEN 'READ,APPEND,TRUNCATE,EXCL'
           WHEN 54 THEN 'WRITE,APPEND,TRUNCATE,EXCL'
           WHEN 55 THEN 'READ,WRITE,APPEND,TRUNCATE,EXCL'
           WHEN 56 THEN 'CREATE,TRUNCATE,EXCL'
           WHEN 57 THEN 'READ,CREATE,TRUNCATE,EXCL'
           WHEN 58 THEN 'WRITE,CREATE,TRUNCATE,EXCL'
           WHEN 59 THEN 'READ,WRITE,CREATE,TRUNCATE,EXCL'
           WHEN 60 THEN 'APPEND,CREATE,TRUNCATE,EXCL'
           WHEN 61 THEN 'READ,APPEND,CREATE,TRUNCATE,EXCL'
           WHEN 62 THEN 'WRITE,APPEND,CREATE,TRUNCATE,EXCL'
           WHEN 63 THEN 'READ,WRITE,APPEND,CREATE,TRUNCATE,EXCL'
           ELSE open_flags_code END AS open_flags,
       date((opened_at_us - (((opened_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || 'T' || time((opened_at_us - (((opened_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || '.' || substr((((opened_at_us % 1000000) + 1000000) % 1000000) + 1000000, 2) || 'Z' AS opened_at,
       date((closed_at_us - (((closed_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || 'T' || time((closed_at_us - (((closed_at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || '.' || substr((((closed_at_us % 1000000) + 1000000) % 1000000) + 1000000, 2) || 'Z' AS closed_at
  FROM transfer_rows;

CREATE TABLE operation_rows (
    id             INTEGER PRIMARY KEY,
    session_id     INTEGER REFERENCES session_rows (id),
    host           TEXT NOT NULL,
    user           TEXT,
    at_us          INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    path           BLOB,
    path_escaped   TEXT,
    target         BLOB,
    target_escaped TEXT,
    detail         TEXT,
    failed         INTEGER NOT NULL DEFAULT 0,
    status         TEXT
);
INSERT INTO operation_rows (id, session_id, host, user, at_us, kind, path, path_escaped, target, target_escaped,
    detail, failed, status)
SELECT id, session_id, host, user, at_us, kind, path, path_escaped, target, target_escaped,
       detail, failed, status
  FROM operations;
DROP TABLE operations;
CREATE INDEX operations_session ON operation_rows (session_id);
CREATE INDEX operations_failed ON operation_rows (host) WHERE failed;
CREATE INDEX operations_denied ON operation_rows (host) WHERE kind = 'denied';
CREATE VIEW operations AS
SELECT *,
       date((at_us - (((at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || 'T' || time((at_us - (((at_us % 1000000) + 1000000) % 1000000)) / 1000000, 'unixepoch') || '.' || substr((((at_us % 1000000) + 1000000) % 1000000) + 1000000, 2) || 'Z' AS at,
       COALESCE(path_escaped, CAST(path AS TEXT)) AS path_text,
       COALESCE(target_escaped, CAST(target AS TEXT)) AS target_text
  FROM operation_rows;

CREATE VIEW usage_events AS
    SELECT host, user, started_at AS at, 1 AS sessions, 0 AS files_up, 0 AS files_down,
           0 AS bytes_up, 0 AS bytes_down, COALESCE(duration_ms, 0) AS duration_ms
      FROM sessions WHERE end_reason <> 'refused'
    UNION ALL
    SELECT s.host, s.user, t.opened_at, 0,
           CASE WHEN t.counts_as = 'upload' THEN 1 ELSE 0 END,
           CASE WHEN t.counts_as = 'download' THEN 1 ELSE 0 END,
           COALESCE(t.bytes_written, 0), COALESCE(t.bytes_read, 0), 0
      FROM transfers t JOIN sessions s ON s.id = t.session_id;
CREATE VIEW daily_usage AS
    SELECT substr(at, 1, 10) AS day, host, user,
           SUM(sessions) AS sessions, SUM(files_up) AS files_up, SUM(files_down) AS files_down,
           SUM(bytes_up) AS bytes_up, SUM(bytes_down) AS bytes_down,
           SUM(duration_ms) AS duration_ms
      FROM usage_events GROUP BY 1, 2, 3;
CREATE VIEW monthly_usage AS
    SELECT substr(at, 1, 7) AS month, host, user,
           SUM(sessions) AS sessions, SUM(files_up) AS files_up, SUM(files_down) AS files_down,
           SUM(bytes_up) AS bytes_up, SUM(bytes_down) AS bytes_down,
           SUM(duration_ms) AS duration_ms
      FROM usage_events GROUP BY 1, 2, 3;
