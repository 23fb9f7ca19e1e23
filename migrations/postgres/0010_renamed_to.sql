
-- The name a rename later in the session gave a transferred file (x.filepart renamed to x).
ALTER TABLE transfers ADD COLUMN IF NOT EXISTS renamed_to BYTEA;
