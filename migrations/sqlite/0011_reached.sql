-- The file a transfer's name reached through the session's links and renames before its open.
ALTER TABLE transfer_rows ADD COLUMN reached BLOB;
