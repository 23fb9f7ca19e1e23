
-- Version 8 computes SQLite's virtual time columns more cheaply; PostgreSQL has none.
