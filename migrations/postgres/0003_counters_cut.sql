
-- A transfer whose close line was cut at 500 characters: its counters are not known (NULL).
ALTER TABLE transfers ADD COLUMN counters_cut BOOLEAN NOT NULL DEFAULT false;
-- Files that share a first line are told apart by the hash of everything before the checkpoint.
ALTER TABLE checkpoints ADD COLUMN prefix_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_pkey;
ALTER TABLE checkpoints ADD PRIMARY KEY (first_line_hash, prefix_sha256);
-- The journal: where each source's last ingest stopped, and who really wrote a session's lines.
CREATE TABLE journal_cursors (
    source     TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE sessions ADD COLUMN origin_pid BIGINT;
ALTER TABLE sessions ADD COLUMN origin_uid BIGINT;
ALTER TABLE sessions ADD COLUMN origin_command TEXT;
