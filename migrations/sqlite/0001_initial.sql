
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    host         TEXT NOT NULL,
    user         TEXT,
    client_ip    TEXT,
    client_port  INTEGER,
    local_ip     TEXT,
    local_port   INTEGER,
    started_at   TEXT NOT NULL,
    ended_at     TEXT,
    duration_ms  INTEGER,
    exit_status  INTEGER,
    signal       TEXT,
    end_reason   TEXT NOT NULL DEFAULT 'missing_end'
                 CHECK (end_reason IN ('closed', 'forced', 'missing_end', 'refused')),
    source       TEXT NOT NULL CHECK (source IN ('wrapper', 'sftp-server', 'internal-sftp')),
    sid          TEXT,
    pid          INTEGER NOT NULL,
    sftp_pid     INTEGER,
    auth_method  TEXT,
    auth_key     TEXT,
    sftp_closed  INTEGER NOT NULL DEFAULT 0,
    -- What a following `sent status` line answers, while the session is open.
    last_op_kind TEXT,
    last_op_id   INTEGER,
    UNIQUE (host, pid, started_at)
);
CREATE INDEX sessions_user ON sessions (user, started_at);
CREATE INDEX sessions_open ON sessions (ended_at) WHERE ended_at IS NULL;

CREATE TABLE transfers (
    id            INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES sessions (id),
    path          BLOB NOT NULL,
    path_text     TEXT NOT NULL,
    direction     TEXT NOT NULL CHECK (direction IN ('upload', 'download', 'both', 'none')),
    open_flags    TEXT NOT NULL,
    mode          TEXT,
    bytes_read    INTEGER,
    bytes_written INTEGER,
    opened_at     TEXT NOT NULL,
    closed_at     TEXT,
    forced        INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    complete      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX transfers_session ON transfers (session_id);
CREATE INDEX transfers_open ON transfers (closed_at) WHERE closed_at IS NULL;
CREATE INDEX transfers_opened ON transfers (opened_at);

CREATE TABLE operations (
    id           INTEGER PRIMARY KEY,
    session_id   INTEGER REFERENCES sessions (id),
    host         TEXT NOT NULL,
    user         TEXT,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    path         BLOB,
    path_text    TEXT,
    target       BLOB,
    target_text  TEXT,
    detail       TEXT,
    failed       INTEGER NOT NULL DEFAULT 0,
    status       TEXT
);
CREATE INDEX operations_session ON operations (session_id);

-- sshd's `Accepted` lines waiting for the session they authenticate.
CREATE TABLE pending_auth (
    id          INTEGER PRIMARY KEY,
    host        TEXT NOT NULL,
    user        TEXT NOT NULL,
    client_ip   TEXT NOT NULL,
    client_port INTEGER NOT NULL,
    method      TEXT NOT NULL,
    key         TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX pending_auth_key ON pending_auth (host, user, client_ip);

CREATE TABLE checkpoints (
    first_line_hash TEXT PRIMARY KEY,
    path            TEXT NOT NULL,
    inode           INTEGER,
    byte_offset     INTEGER NOT NULL,
    lines           INTEGER NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE VIEW usage_events AS
    SELECT host, user, started_at AS at, 1 AS sessions, 0 AS files_up, 0 AS files_down,
           0 AS bytes_up, 0 AS bytes_down, COALESCE(duration_ms, 0) AS duration_ms
      FROM sessions WHERE end_reason <> 'refused'
    UNION ALL
    SELECT s.host, s.user, t.opened_at, 0,
           CASE WHEN t.direction IN ('upload', 'both') AND t.closed_at IS NOT NULL THEN 1 ELSE 0 END,
           CASE WHEN t.direction = 'download' AND COALESCE(t.bytes_read, 0) > 0 THEN 1 ELSE 0 END,
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
