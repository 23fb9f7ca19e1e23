//! The hourly rollups (`usage_hourly`): what one session or transfer row adds to its cell, in
//! the SQL of both dialects. The one rule that the triggers, a recompute of dirty cells, a
//! rebuild and `rollups --check` all use.

use crate::accounting::sql::Dialect;

/// Two sums whose parts cannot overflow 64 bits for fewer than 2^31 rows: of the high and the low
/// 32 bits; [`RowsReport::finish_row`] adds them up without overflow.
pub(crate) fn split_sum(col: &str) -> String {
    format!(
        "CAST(COALESCE(SUM({col} / 4294967296), 0) AS BIGINT), CAST(COALESCE(SUM({col} % 4294967296), 0) AS BIGINT)"
    )
}

/// The columns of `usage_hourly`, the per-hour rollup usage reads instead of every transfer,
/// after its key (hour, host, user). Sums that could pass 64 bits are kept as the sums of their
/// high and low 32 bits (see [`split_sum`]).
pub const ROLLUP_SUMS: [&str; 12] = [
    "sessions",
    "duration_ms_high",
    "duration_ms_low",
    "files_up",
    "files_up_incomplete",
    "files_down",
    "files_down_incomplete",
    "bytes_up_high",
    "bytes_up_low",
    "bytes_down_high",
    "bytes_down_low",
    "files_bytes_unknown",
];

/// `each` of [`ROLLUP_SUMS`], then of `extra`, joined by commas.
fn each_sum(extra: &[&str], each: impl Fn(&str) -> String) -> String {
    let sums = ROLLUP_SUMS.iter().chain(extra).map(|c| each(c));
    sums.collect::<Vec<_>>().join(", ")
}

/// Which cells [`rollup_cells_sql`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupScope {
    /// The (hour, host) cells listed in `usage_dirty`: what a commit refreshes.
    Dirty,
    /// Every cell: a rebuild, or the reference a check compares with.
    All,
}

impl Dialect {
    /// The UTC hour a timestamp column falls in, as `usage_hourly.hour` holds it.
    pub fn hour_of(self, col: &str) -> String {
        self.hour_of_key(&self.hour_key(col))
    }

    /// The UTC hour a timestamp column falls in, as a key to group rows by: in SQLite the
    /// hour's first microsecond (rounded down, also before 1970), which [`Dialect::hour_of_key`]
    /// turns into `usage_hourly.hour`'s text once per group rather than once per row.
    pub fn hour_key(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => {
                let us = self.time_col(col);
                format!("({us} - (({us} % 3600000000) + 3600000000) % 3600000000)")
            }
            Dialect::Postgres => format!("date_trunc('hour', {col}, 'UTC')"),
        }
    }

    /// An hour key of [`Dialect::hour_key`] as `usage_hourly.hour` holds it.
    pub fn hour_of_key(self, key: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("strftime('%Y-%m-%dT%H:00:00.000000Z', {key} / 1000000, 'unixepoch')")
            }
            Dialect::Postgres => key.to_owned(),
        }
    }

    /// Timestamp column `col` falls in the hour that `usage_hourly.hour`-form column `hour`
    /// starts (an index range on `col`).
    fn in_hour(self, col: &str, hour: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "{us} >= unixepoch({hour}) * 1000000 AND {us} < unixepoch({hour}) * 1000000 + 3600000000",
                us = self.time_col(col)
            ),
            Dialect::Postgres => format!("{col} >= {hour} AND {col} < {hour} + interval '1 hour'"),
        }
    }
}

/// The rows of `usage_hourly` (key, [`ROLLUP_SUMS`], contributors) computed from sessions and transfers,
/// with the same rules as [`usage_rows_sql`] and [`UsageSums::add`]: a session counts at its
/// start unless refused, a transfer at its open, `''` stands for no user.
pub fn rollup_cells_sql(d: Dialect, scope: RollupScope) -> String {
    // Each dirty hour's transfers are found by their time (an index range), once however many
    // hosts' cells of that hour are dirty; then their sessions by id, kept when their host's
    // cell is dirty. Left to themselves, both planners can read every session of the host for
    // each cell instead (PostgreSQL's statistics lag a bulk ingest): SQLite's CROSS JOIN keeps
    // the order written, and PostgreSQL evaluates a LATERAL subquery with OFFSET 0 per row of
    // what comes before it.
    let hour_transfers = d.in_hour("t.opened_at", "d.hour");
    let dirty_host =
        "EXISTS (SELECT 1 FROM usage_dirty c WHERE c.hour = d.hour AND c.host = s.host)";
    let transfers_of_cells = match d {
        Dialect::Sqlite => format!(
            "(SELECT DISTINCT hour FROM usage_dirty) d CROSS JOIN transfers t ON {hour_transfers}
             CROSS JOIN sessions s ON s.id = t.session_id AND {dirty_host}"
        ),
        Dialect::Postgres => format!(
            "(SELECT DISTINCT hour FROM usage_dirty) d
             CROSS JOIN LATERAL (SELECT * FROM transfers t WHERE {hour_transfers} OFFSET 0) AS t
             CROSS JOIN LATERAL (SELECT s.host, s.\"user\" FROM sessions s
                                  WHERE s.id = t.session_id AND {dirty_host} OFFSET 0) AS s"
        ),
    };
    let (session_cells, transfer_cells) = match scope {
        RollupScope::Dirty => (
            format!(
                "JOIN usage_dirty d ON s.host = d.host AND {}",
                d.in_hour("s.started_at", "d.hour")
            ),
            transfers_of_cells,
        ),
        RollupScope::All => (
            String::new(),
            "transfers t JOIN sessions s ON s.id = t.session_id".to_owned(),
        ),
    };
    let sums = each_sum(&[], |c| format!("CAST(SUM({c}) AS BIGINT)"));
    format!(
        "SELECT {hour} AS hour, cells.host, cells.\"user\", {sums},
                CAST(COUNT(*) AS BIGINT) AS contributors
           FROM (SELECT {sessions} FROM sessions s {session_cells} WHERE s.end_reason <> 'refused'
                 UNION ALL
                 SELECT {transfers} FROM {transfer_cells}) AS cells
          GROUP BY cells.hour, cells.host, cells.\"user\"",
        hour = d.hour_of_key("cells.hour"),
        sessions = session_contribution(d, "s"),
        transfers = transfer_contribution(d, "t", "s"),
    )
}

/// What one session row `s` adds to its cell (hour as [`Dialect::hour_key`], host, user, then
/// [`ROLLUP_SUMS`]), when it was not refused: the same expression for a recomputed cell and for a
/// trigger's delta.
pub fn session_contribution(d: Dialect, s: &str) -> String {
    let duration = format!("COALESCE({s}.duration_ms, 0)");
    format!(
        "{hour} AS hour, {s}.host AS host, COALESCE({s}.\"user\", '') AS \"user\", 1 AS sessions,
         {duration} / 4294967296 AS duration_ms_high, {duration} % 4294967296 AS duration_ms_low,
         0 AS files_up, 0 AS files_up_incomplete, 0 AS files_down, 0 AS files_down_incomplete,
         0 AS bytes_up_high, 0 AS bytes_up_low, 0 AS bytes_down_high, 0 AS bytes_down_low,
         0 AS files_bytes_unknown",
        hour = d.hour_key(&format!("{s}.started_at")),
    )
}

/// What one transfer row `t` of session `s` adds to its cell, in [`session_contribution`]'s
/// columns: counted at its open, complete and incomplete files apart.
pub fn transfer_contribution(d: Dialect, t: &str, s: &str) -> String {
    let split = |col: &str, name: &str| {
        format!("{col} / 4294967296 AS {name}_high, {col} % 4294967296 AS {name}_low")
    };
    let counted = |what: &str, complete: bool| {
        format!(
            "CASE WHEN {t}.counts_as = '{what}' AND {} {t}.complete THEN 1 ELSE 0 END",
            if complete { "" } else { "NOT" }
        )
    };
    format!(
        "{hour} AS hour, {s}.host AS host, COALESCE({s}.\"user\", '') AS \"user\", 0 AS sessions,
         0 AS duration_ms_high, 0 AS duration_ms_low, {up} AS files_up,
         {up_incomplete} AS files_up_incomplete, {down} AS files_down,
         {down_incomplete} AS files_down_incomplete, {bytes_up}, {bytes_down},
         {cut} AS files_bytes_unknown",
        hour = d.hour_key(&format!("{t}.opened_at")),
        up = counted("upload", true),
        up_incomplete = counted("upload", false),
        down = counted("download", true),
        down_incomplete = counted("download", false),
        bytes_up = split(&format!("COALESCE({t}.bytes_written, 0)"), "bytes_up"),
        bytes_down = split(&format!("COALESCE({t}.bytes_read, 0)"), "bytes_down"),
        cut = d.flag(&format!("{t}.counters_cut")),
    )
}

/// Adds (`sign` 1) or takes away (-1) the contributions `rows` selects (columns of
/// [`session_contribution`]) to or from their cells of `usage_hourly`, creating cells as
/// needed; `contributors` counts the rows in a cell, so a cell left with none can be dropped.
/// `one_row`: `rows` selects at most one row (a row trigger's own), which needs no grouping.
pub fn rollup_delta_sql(d: Dialect, rows: &str, sign: i64, one_row: bool) -> String {
    let sums = each_sum(&[], |c| match one_row {
        true => format!("{c} * {sign}"),
        false => format!("CAST(SUM({c}) * {sign} AS BIGINT)"),
    });
    let (count, group) = if one_row {
        (sign.to_string(), "")
    } else {
        (
            format!("CAST(COUNT(*) * {sign} AS BIGINT)"),
            " GROUP BY c.hour, c.host, c.\"user\"",
        )
    };
    add_to_cells_sql(&format!(
        "SELECT {hour}, c.host, c.\"user\", {sums}, {count} FROM ({rows}) AS c WHERE true{group}",
        hour = d.hour_of_key("c.hour"),
    ))
}

/// Adds what `source` (a `SELECT` or `VALUES` of hour, host, user, [`ROLLUP_SUMS`] and
/// `contributors`) gives to those cells of `usage_hourly`, creating cells as needed.
pub fn add_to_cells_sql(source: &str) -> String {
    let add = each_sum(&["contributors"], |c| {
        format!("{c} = usage_hourly.{c} + excluded.{c}")
    });
    format!(
        "INSERT INTO usage_hourly (hour, host, \"user\", {columns}, contributors)
         {source}
         ON CONFLICT (hour, host, \"user\") DO UPDATE SET {add}",
        columns = ROLLUP_SUMS.join(", "),
    )
}

/// The statements that recompute the dirty cells of `usage_hourly` (or all of them), in the
/// SQL both backends speak.
pub fn refresh_rollups_sql(d: Dialect, all: bool) -> String {
    let (forget, scope) = if all {
        ("DELETE FROM usage_hourly", RollupScope::All)
    } else {
        (
            "DELETE FROM usage_hourly WHERE (hour, host) IN (SELECT hour, host FROM usage_dirty)",
            RollupScope::Dirty,
        )
    };
    format!(
        "{forget};
         INSERT INTO usage_hourly (hour, host, \"user\", {sums}, contributors) {cells};
         DELETE FROM usage_dirty;",
        sums = ROLLUP_SUMS.join(", "),
        cells = rollup_cells_sql(d, scope),
    )
}

/// Drops the cells whose last row went away (their sums are all zero).
pub const DROP_EMPTY_CELLS: &str = "DELETE FROM usage_hourly WHERE contributors = 0";

/// Drops SQLite's rollup triggers (those [`rollup_triggers_sql`] creates) where they exist: before
/// the tables they are on change, and before they are created again.
const DROP_SQLITE_ROLLUP_TRIGGERS: &str = "DROP TRIGGER IF EXISTS usage_session_added;
DROP TRIGGER IF EXISTS usage_session_changed;
DROP TRIGGER IF EXISTS usage_session_removed;
DROP TRIGGER IF EXISTS usage_transfer_added;
DROP TRIGGER IF EXISTS usage_transfer_changed;
DROP TRIGGER IF EXISTS usage_transfer_removed;";

/// The triggers that keep `usage_hourly` exact as rows change (schema version 5; in SQLite on
/// the tables under the views since version 9). A row added, changed or removed adds or takes
/// away its own contribution to its cell ([`rollup_delta_sql`]), so a commit has
/// nothing to recompute. Where a delta cannot be right, the cells are noted in `usage_dirty`
/// and the commit recomputes them from the rows: a session that changes hands (its user learnt
/// late: its transfers move with it) and a session removed (by hand, transfers may be left
/// behind without it).
pub fn rollup_triggers_sql(d: Dialect) -> String {
    match d {
        Dialect::Sqlite => sqlite_rollup_triggers_sql(),
        // Mostly per statement, over transition tables: one call per batch.
        Dialect::Postgres => [
            DROP_POSTGRES_ROLLUP_TRIGGERS.to_owned(),
            postgres_sessions_added_removed_sql(d),
            postgres_sessions_changed_sql(d),
            postgres_transfer_triggers_sql(d),
        ]
        .join("\n\n                 "),
    }
}

/// The contribution of one session `row` (`NEW` or `OLD`) unless it was refused; `when` adds
/// to the condition.
fn session_row_sql(d: Dialect, row: &str, when: &str) -> String {
    format!(
        "SELECT {} WHERE {row}.end_reason <> 'refused'{when}",
        session_contribution(d, row)
    )
}

/// The contribution of one transfer `row` (`NEW` or `OLD`), with its session's host and user.
fn transfer_row_sql(d: Dialect, row: &str) -> String {
    format!(
        "SELECT {} FROM sessions s WHERE s.id = {row}.session_id",
        transfer_contribution(d, row, "s")
    )
}

/// SQLite's triggers are per row, on the tables under the views.
fn sqlite_rollup_triggers_sql() -> String {
    let d = Dialect::Sqlite;
    let delta = |rows: &str, sign: i64| rollup_delta_sql(d, rows, sign, true);
    let changed = "(OLD.user IS NOT NEW.user OR OLD.host IS NOT NEW.host)";
    format!(
        "{DROP_SQLITE_ROLLUP_TRIGGERS}
                 CREATE TRIGGER usage_session_added AFTER INSERT ON session_rows BEGIN
                     {session_added};
                 END;
                 CREATE TRIGGER usage_session_changed
                     AFTER UPDATE OF host, user, started_at_us, duration_ms, end_reason ON session_rows BEGIN
                     INSERT OR IGNORE INTO usage_dirty (hour, host)
                         SELECT {old_hour}, OLD.host WHERE {changed}
                         UNION SELECT {new_hour}, NEW.host WHERE {changed};
                     INSERT OR IGNORE INTO usage_dirty (hour, host)
                         SELECT DISTINCT {transfer_hour}, h.host
                           FROM transfers t, (SELECT OLD.host AS host UNION SELECT NEW.host) h
                          WHERE t.session_id = NEW.id AND {changed};
                     {session_taken};
                     {session_given};
                 END;
                 CREATE TRIGGER usage_session_removed AFTER DELETE ON session_rows BEGIN
                     INSERT OR IGNORE INTO usage_dirty (hour, host)
                         SELECT {old_hour}, OLD.host
                         UNION SELECT {transfer_hour}, OLD.host FROM transfers t
                                WHERE t.session_id = OLD.id;
                 END;
                 CREATE TRIGGER usage_transfer_added AFTER INSERT ON transfer_rows BEGIN
                     {transfer_added};
                 END;
                 CREATE TRIGGER usage_transfer_changed
                     AFTER UPDATE OF session_id, opened_at_us, counts_as, bytes_read, bytes_written,
                                     complete, counters_cut ON transfer_rows BEGIN
                     {transfer_taken};
                     {transfer_given};
                 END;
                 CREATE TRIGGER usage_transfer_removed AFTER DELETE ON transfer_rows BEGIN
                     {transfer_taken};
                 END;",
        session_added = delta(&session_row_sql(d, "NEW", ""), 1),
        session_taken = delta(&session_row_sql(d, "OLD", &format!(" AND NOT {changed}")), -1),
        session_given = delta(&session_row_sql(d, "NEW", &format!(" AND NOT {changed}")), 1),
        old_hour = d.hour_of("OLD.started_at"),
        new_hour = d.hour_of("NEW.started_at"),
        transfer_hour = d.hour_of("t.opened_at"),
        transfer_added = delta(&transfer_row_sql(d, "NEW"), 1),
        transfer_taken = delta(&transfer_row_sql(d, "OLD"), -1),
        transfer_given = delta(&transfer_row_sql(d, "NEW"), 1),
    )
}

/// Drops PostgreSQL's rollup triggers and their functions, of this and earlier versions.
const DROP_POSTGRES_ROLLUP_TRIGGERS: &str =
    "DROP TRIGGER IF EXISTS usage_sessions_added ON sessions;
                 DROP TRIGGER IF EXISTS usage_sessions_removed ON sessions;
                 DROP TRIGGER IF EXISTS usage_session_changed ON sessions;
                 DROP TRIGGER IF EXISTS usage_sessions_changed ON sessions;
                 DROP TRIGGER IF EXISTS usage_transfers_added ON transfers;
                 DROP TRIGGER IF EXISTS usage_transfers_removed ON transfers;
                 DROP TRIGGER IF EXISTS usage_transfer_changed ON transfers;
                 DROP FUNCTION IF EXISTS usage_sessions_touched();
                 DROP FUNCTION IF EXISTS usage_session_changed();
                 DROP FUNCTION IF EXISTS usage_sessions_changed();
                 DROP FUNCTION IF EXISTS usage_transfers_touched();
                 DROP FUNCTION IF EXISTS usage_transfer_changed();
                 DROP FUNCTION IF EXISTS usage_sessions_added();
                 DROP FUNCTION IF EXISTS usage_sessions_removed();
                 DROP FUNCTION IF EXISTS usage_transfers_added();
                 DROP FUNCTION IF EXISTS usage_transfers_removed();";

/// Sessions added add their contribution; sessions removed leave their cells to recompute, as
/// their transfers may stay behind.
fn postgres_sessions_added_removed_sql(d: Dialect) -> String {
    let statement_sessions = format!(
        "SELECT {} FROM touched_rows s WHERE s.end_reason <> 'refused'",
        session_contribution(d, "s")
    );
    format!(
        "CREATE FUNCTION usage_sessions_added() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     {sessions_added};
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_sessions_added AFTER INSERT ON sessions
                     REFERENCING NEW TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_added();
                 CREATE FUNCTION usage_sessions_removed() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     INSERT INTO usage_dirty (hour, host)
                         SELECT DISTINCT {statement_hour}, host FROM touched_rows
                         ON CONFLICT DO NOTHING;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_sessions_removed AFTER DELETE ON sessions
                     REFERENCING OLD TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_removed();",
        sessions_added = rollup_delta_sql(d, &statement_sessions, 1, false),
        statement_hour = d.hour_of("started_at"),
    )
}

/// A session that changes hands marks its and its transfers' cells dirty; any other change
/// moves its own contribution.
fn postgres_sessions_changed_sql(d: Dialect) -> String {
    // A batch's session updates are one statement: the transition tables pair each
    // row's old and new values, and only those that changed what usage sums count.
    let pairs = "old_rows o JOIN new_rows n ON n.id = o.id";
    let changed = "(o.\"user\" IS DISTINCT FROM n.\"user\" OR o.host <> n.host)";
    let moved = "(o.host, o.\"user\", o.started_at, o.duration_ms, o.end_reason)
                          IS DISTINCT FROM (n.host, n.\"user\", n.started_at, n.duration_ms, n.end_reason)";
    let sessions_moved = |row: &str| {
        format!(
            "SELECT {} FROM {pairs} WHERE {row}.end_reason <> 'refused' AND {moved}
                        AND NOT {changed}",
            session_contribution(d, row)
        )
    };
    format!(
        "CREATE FUNCTION usage_sessions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     INSERT INTO usage_dirty (hour, host)
                         SELECT DISTINCT x.hour, x.host FROM (
                             SELECT {old_hour} AS hour, o.host FROM {pairs} WHERE {changed}
                             UNION ALL
                             SELECT {new_hour}, n.host FROM {pairs} WHERE {changed}
                             UNION ALL
                             SELECT {transfer_hour}, h.host
                               FROM {pairs} JOIN transfers t ON t.session_id = n.id
                                    CROSS JOIN LATERAL (VALUES (o.host), (n.host)) AS h (host)
                              WHERE {changed}) AS x
                         ON CONFLICT DO NOTHING;
                     {session_taken};
                     {session_given};
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_sessions_changed AFTER UPDATE ON sessions
                     REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_sessions_changed();",
        old_hour = d.hour_of("o.started_at"),
        new_hour = d.hour_of("n.started_at"),
        transfer_hour = d.hour_of("t.opened_at"),
        session_taken = rollup_delta_sql(d, &sessions_moved("o"), -1, false),
        session_given = rollup_delta_sql(d, &sessions_moved("n"), 1, false),
    )
}

/// Transfers added, removed or changed move their own contribution.
fn postgres_transfer_triggers_sql(d: Dialect) -> String {
    let statement_transfers = format!(
        "SELECT {} FROM touched_rows t JOIN sessions s ON s.id = t.session_id",
        transfer_contribution(d, "t", "s")
    );
    format!(
        "-- A row trigger whose WHEN skips the updates that change nothing usage sums (a
                 -- transfer marked failed) without calling a function.

                 -- A batch's transfers find their sessions by key: the planner's other choice,
                 -- hashing every session for each batch, made ingest quadratic (a third of its
                 -- time at 65,000 sessions).
                 CREATE FUNCTION usage_transfers_added() RETURNS trigger LANGUAGE plpgsql
                     SET enable_hashjoin = off SET enable_mergejoin = off AS $$
                 BEGIN
                     {transfers_added};
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_transfers_added AFTER INSERT ON transfers
                     REFERENCING NEW TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_added();
                 CREATE FUNCTION usage_transfers_removed() RETURNS trigger LANGUAGE plpgsql
                     SET enable_hashjoin = off SET enable_mergejoin = off AS $$
                 BEGIN
                     {transfers_removed};
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_transfers_removed AFTER DELETE ON transfers
                     REFERENCING OLD TABLE AS touched_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION usage_transfers_removed();
                 CREATE FUNCTION usage_transfer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     {transfer_taken};
                     {transfer_given};
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER usage_transfer_changed AFTER UPDATE ON transfers FOR EACH ROW
                     WHEN ((OLD.session_id, OLD.opened_at, OLD.counts_as, OLD.bytes_read,
                            OLD.bytes_written, OLD.complete, OLD.counters_cut)
                           IS DISTINCT FROM (NEW.session_id, NEW.opened_at, NEW.counts_as,
                            NEW.bytes_read, NEW.bytes_written, NEW.complete, NEW.counters_cut))
                     EXECUTE FUNCTION usage_transfer_changed();",
        transfers_added = rollup_delta_sql(d, &statement_transfers, 1, false),
        transfers_removed = rollup_delta_sql(d, &statement_transfers, -1, false),
        transfer_taken = rollup_delta_sql(d, &transfer_row_sql(d, "OLD"), -1, true),
        transfer_given = rollup_delta_sql(d, &transfer_row_sql(d, "NEW"), 1, true),
    )
}

/// Counts the rows of `usage_hourly` that the rollups computed afresh do not have, and the
/// other way round.
pub fn rollup_differences_sql(d: Dialect) -> String {
    let stored = format!(
        "SELECT hour, host, \"user\", {}, contributors FROM usage_hourly",
        ROLLUP_SUMS.join(", ")
    );
    let fresh = rollup_cells_sql(d, RollupScope::All);
    format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (
             SELECT * FROM ({stored} EXCEPT {fresh}) AS stale
             UNION ALL
             SELECT * FROM ({fresh} EXCEPT {stored}) AS missing) AS differences"
    )
}
