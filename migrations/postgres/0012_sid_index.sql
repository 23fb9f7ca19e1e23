-- Wrapper sessions are found by their session id (the same session read from a file and from
-- the journal, or copied between databases).
CREATE INDEX IF NOT EXISTS sessions_sid ON sessions (sid);
