
CREATE TABLE sessions (
    id           BIGSERIAL PRIMARY KEY,
    host         TEXT NOT NULL,
    "user"       TEXT,
    client_ip    TEXT,
    client_port  BIGINT,
    local_ip     TEXT,
    local_port   BIGINT,
    started_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ,
    duration_ms  BIGINT,
    exit_status  BIGINT,
    signal       TEXT,
    end_reason   TEXT NOT NULL DEFAULT 'missing_end'
                 CHECK (end_reason IN ('closed', 'forced', 'missing_end', 'refused')),
    source       TEXT NOT NULL CHECK (source IN ('wrapper', 'sftp-server', 'internal-sftp')),
    sid          TEXT,
    pid          BIGINT NOT NULL,
    sftp_pid     BIGINT,
    auth_method  TEXT,
    auth_key     TEXT,
    sftp_closed  BOOLEAN NOT NULL DEFAULT false,
    last_op_kind TEXT,
    last_op_id   BIGINT,
    UNIQUE (host, pid, started_at)
);
CREATE INDEX sessions_user ON sessions ("user", started_at);
CREATE INDEX sessions_open ON sessions (ended_at) WHERE ended_at IS NULL;

CREATE TABLE transfers (
    id            BIGSERIAL PRIMARY KEY,
    session_id    BIGINT NOT NULL REFERENCES sessions (id),
    path          BYTEA NOT NULL,
    path_text     TEXT NOT NULL,
    direction     TEXT NOT NULL CHECK (direction IN ('upload', 'download', 'both', 'none')),
    open_flags    TEXT NOT NULL,
    mode          TEXT,
    bytes_read    BIGINT,
    bytes_written BIGINT,
    opened_at     TIMESTAMPTZ NOT NULL,
    closed_at     TIMESTAMPTZ,
    forced        BOOLEAN NOT NULL DEFAULT false,
    failed        BOOLEAN NOT NULL DEFAULT false,
    complete      BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX transfers_session ON transfers (session_id);
CREATE INDEX transfers_open ON transfers (closed_at) WHERE closed_at IS NULL;
CREATE INDEX transfers_opened ON transfers (opened_at);

CREATE TABLE operations (
    id           BIGSERIAL PRIMARY KEY,
    session_id   BIGINT REFERENCES sessions (id),
    host         TEXT NOT NULL,
    "user"       TEXT,
    at           TIMESTAMPTZ NOT NULL,
    kind         TEXT NOT NULL,
    path         BYTEA,
    path_text    TEXT,
    target       BYTEA,
    target_text  TEXT,
    detail       TEXT,
    failed       BOOLEAN NOT NULL DEFAULT false,
    status       TEXT
);
CREATE INDEX operations_session ON operations (session_id);

CREATE TABLE pending_auth (
    id          BIGSERIAL PRIMARY KEY,
    host        TEXT NOT NULL,
    "user"      TEXT NOT NULL,
    client_ip   TEXT NOT NULL,
    client_port BIGINT NOT NULL,
    method      TEXT NOT NULL,
    key         TEXT,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX pending_auth_key ON pending_auth (host, "user", client_ip);

CREATE TABLE checkpoints (
    first_line_hash TEXT PRIMARY KEY,
    path            TEXT NOT NULL,
    inode           BIGINT,
    byte_offset     BIGINT NOT NULL,
    lines           BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE VIEW usage_events AS
    SELECT host, "user", started_at AS at, 1 AS sessions, 0 AS files_up, 0 AS files_down,
           0::bigint AS bytes_up, 0::bigint AS bytes_down, COALESCE(duration_ms, 0) AS duration_ms
      FROM sessions WHERE end_reason <> 'refused'
    UNION ALL
    SELECT s.host, s."user", t.opened_at, 0,
           CASE WHEN t.direction IN ('upload', 'both') AND t.closed_at IS NOT NULL THEN 1 ELSE 0 END,
           CASE WHEN t.direction = 'download' AND COALESCE(t.bytes_read, 0) > 0 THEN 1 ELSE 0 END,
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
