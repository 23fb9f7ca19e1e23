
-- Version 7 joins a batch's transfers to their sessions by key in the rollup triggers
-- (storage::rollup_triggers_sql, created again after this until version 13).
