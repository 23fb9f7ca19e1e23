-- The name a rename later in the session gave a transferred file (x.filepart renamed to x).
ALTER TABLE transfer_rows ADD COLUMN renamed_to BLOB;
