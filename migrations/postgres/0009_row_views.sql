
-- Version 9 moves SQLite's rows into tables under views, computing the readable columns only
-- when read; PostgreSQL's tables are unchanged.
