-- The file a transfer's name reached through the session's links and renames before its open.
ALTER TABLE transfers ADD COLUMN IF NOT EXISTS reached BYTEA;
