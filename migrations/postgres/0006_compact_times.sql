
-- Version 6 stores SQLite's times as integers and its readable names only where they differ;
-- PostgreSQL's timestamptz and bytea columns were compact already.
