
-- Rollups kept by deltas: each cell counts the rows it sums, so the one whose last row went away
-- is dropped; the triggers were storage::rollup_triggers_sql, created after this (until version 13).
ALTER TABLE usage_hourly ADD COLUMN contributors INTEGER NOT NULL DEFAULT 0;
CREATE INDEX usage_hourly_empty ON usage_hourly (hour) WHERE contributors = 0;
