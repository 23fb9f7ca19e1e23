
-- A transfer whose close line was cut at 500 characters: its counters are not known (NULL).
ALTER TABLE transfers ADD COLUMN counters_cut INTEGER NOT NULL DEFAULT 0;
-- Files that share a first line are told apart by the hash of everything before the checkpoint.
CREATE TABLE checkpoints_v3 (
    first_line_hash TEXT NOT NULL,
    prefix_sha256   TEXT NOT NULL,
    path            TEXT NOT NULL,
    inode           INTEGER,
    byte_offset     INTEGER NOT NULL,
    lines           INTEGER NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (first_line_hash, prefix_sha256)
);
INSERT INTO checkpoints_v3
     SELECT first_line_hash, '', path, inode, byte_offset, lines, updated_at FROM checkpoints;
DROP TABLE checkpoints;
ALTER TABLE checkpoints_v3 RENAME TO checkpoints;
-- The journal: where each source's last ingest stopped, and who really wrote a session's lines.
CREATE TABLE journal_cursors (
    source     TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
ALTER TABLE sessions ADD COLUMN origin_pid INTEGER;
ALTER TABLE sessions ADD COLUMN origin_uid INTEGER;
ALTER TABLE sessions ADD COLUMN origin_command TEXT;
