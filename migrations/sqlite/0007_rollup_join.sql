
-- Version 7 changed PostgreSQL's rollup trigger functions; SQLite's schema is unchanged.
