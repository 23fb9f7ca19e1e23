//! The reports: sessions, transfers and usage, as aligned tables for people or exact CSV and
//! JSON for programs.

use crate::log::parse;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::types::ValueRef;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    /// One self-contained page (usage and statement only).
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    Day,
    Month,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub host: Option<String>,
    /// Inclusive lower bound, storage time format.
    pub since: Option<String>,
    /// Exclusive upper bound, storage time format.
    pub until: Option<String>,
    pub path: Option<glob::Pattern>,
    /// The zone of day and month buckets; `None`: the system's.
    pub zone: Option<Tz>,
}

impl Filter {
    /// The zone of day and month buckets.
    pub fn zone(&self) -> Tz {
        self.zone.unwrap_or_else(system_zone)
    }
}

/// The system's zone by its IANA name (`TZ`, else `/etc/localtime`); UTC when it has none.
pub fn system_zone() -> Tz {
    let from_env = std::env::var("TZ")
        .ok()
        .map(|tz| tz.trim_start_matches(':').to_owned());
    from_env
        .or_else(|| iana_time_zone::get_timezone().ok())
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// The first instant of `date` in `zone` (storage time): midnight, or the first time the day
/// has where a transition skips midnight.
pub fn day_start(date: NaiveDate, zone: Tz) -> Option<String> {
    let local = zone
        .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .earliest()?;
    Some(parse::storage_time(local.with_timezone(&Utc)))
}

/// Reads `--tz`: an IANA zone name such as `Europe/Berlin` or `UTC`.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as UTC or Europe/Berlin")
    })
}

/// Reads `--since`/`--until`: a date (`2026-11-26`, midnight in `zone`), a date and time in
/// `zone` (`2026-11-26 14:00`), RFC 3339, or a span back from now (`30m`, `12h`, `7d`, `2w`).
/// For `--until`, a bare date means the end of that day.
pub fn parse_time_bound(
    text: &str,
    now: DateTime<Utc>,
    until: bool,
    zone: Tz,
) -> Result<String, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "cannot read {text:?} as a time: use 2026-11-26, \"2026-11-26 14:00\", 2026-11-26T14:00:00Z or 7d / 12h / 30m / 2w"
        )
    };
    if let Some(unit) = t.chars().last()
        && let Ok(n) = t[..t.len() - unit.len_utf8()].parse::<i64>()
    {
        let span = match unit {
            'm' => chrono::Duration::try_minutes(n),
            'h' => chrono::Duration::try_hours(n),
            'd' => chrono::Duration::try_days(n),
            'w' => chrono::Duration::try_weeks(n),
            _ => None,
        };
        if let Some(span) = span
            && n >= 0
            && let Some(t) = now.checked_sub_signed(span)
        {
            return Ok(parse::storage_time(t));
        }
        return Err(bad());
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let date = if until {
            date.succ_opt().ok_or_else(bad)?
        } else {
            date
        };
        return day_start(date, zone).ok_or_else(bad);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            let local = zone
                .from_local_datetime(&naive)
                .earliest()
                .ok_or_else(bad)?;
            return Ok(parse::storage_time(local.with_timezone(&Utc)));
        }
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| parse::storage_time(d.with_timezone(&Utc)))
        .map_err(|_| bad())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Time,
    Bytes,
    DurationMs,
    Bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Wide enough for any sum of stored counters.
    Int(i128),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Report {
    pub columns: Vec<(&'static str, Kind)>,
    pub rows: Vec<Vec<Value>>,
}

/// Converts one SQLite cell.
pub fn value_from_sqlite(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i.into()),
        ValueRef::Real(f) => Value::Int(f as i128),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

/// SQLite: storage text (`2026-11-26T21:15:11.000000Z`) of the UTC microseconds expression `us`,
/// as [`crate::log::parse::storage_time`] writes it, for years 0 to 9999.
///
/// This is the time columns' expression in the views `sessions`, `transfers` and `operations`
/// (schema 9; virtual columns of the tables in schema 8, where SQLite computed it for every row
/// it wrote): `date` and `time` with the digits of the microseconds cost 0.37 µs where
/// `strftime` and `printf` cost 0.64 µs. Only functions of SQLite 3.40 (Debian 12's
/// `sqlite3`), so that older tools still read the database.
pub fn sqlite_time_text(us: &str) -> String {
    let micros = format!("((({us} % 1000000) + 1000000) % 1000000)");
    let seconds = format!("({us} - {micros}) / 1000000");
    format!(
        "date({seconds}, 'unixepoch') || 'T' || time({seconds}, 'unixepoch') || '.' || substr({micros} + 1000000, 2) || 'Z'"
    )
}

/// The SQL differences between the backends that the reports meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The stored form of timestamp column `col` (`s.started_at`), for comparisons, ordering
    /// and indexes: SQLite (schema 6) keeps UTC microseconds in `started_at_us` and shows
    /// `started_at` as a virtual text column computed from it.
    pub fn time_col(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{col}_us"),
            Dialect::Postgres => col.to_owned(),
        }
    }

    /// A timestamp column as the report reads it: storage text, or in SQLite the microseconds,
    /// which `stream_rows` turns into storage text for the columns of [`Kind::Time`] (in Rust:
    /// cheaper than SQLite's strftime on every row).
    pub fn ts(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => self.time_col(col),
            Dialect::Postgres => {
                format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            }
        }
    }

    /// Text parameter `n` (1: user, 2: host).
    fn text(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}::text"),
        }
    }

    /// Time parameter `n` (3: since, 4: until), compared with a timestamp column (SQLite's
    /// `stream_rows` binds them as microseconds).
    fn time(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}::text::timestamptz"),
        }
    }

    /// A boolean column as 0/1.
    fn flag(self, col: &str) -> String {
        format!("CASE WHEN {col} THEN 1 ELSE 0 END")
    }

    /// How many rows of a group have boolean `col` set.
    fn count_if(self, col: &str) -> String {
        format!("CAST(COALESCE(SUM({}), 0) AS BIGINT)", self.flag(col))
    }

    /// The WHERE clause every report shares: user, host, and a time window on `time_col`. Only
    /// the filters that are set compare columns (`x IS NULL OR col = x` keeps the planner from
    /// the indexes); an unset one is still named, as `x IS NULL`, so that the four parameters
    /// are always bound the same way. Values are parameters, never SQL text.
    fn window(self, time_col: &str, filter: &Filter) -> String {
        let col = self.time_col(time_col);
        self.window_where(filter, |op, param| format!("{col} {op} {param}"))
    }

    /// [`Dialect::window`] on `usage_hourly.hour`, which SQLite keeps as storage text (a row per
    /// hour, host and user: small): the microseconds bound are turned into text once, so the
    /// comparison still reads an index range.
    fn hour_window(self, filter: &Filter) -> String {
        match self {
            Dialect::Sqlite => self.window_where(filter, |op, param| {
                format!("s.hour {op} {}", sqlite_time_text(param))
            }),
            Dialect::Postgres => self.window("s.hour", filter),
        }
    }

    /// A timestamp column that SQLite keeps as storage text (`usage_hourly.hour`, bookkeeping
    /// times), as the reports read it.
    pub fn text_ts(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => col.to_owned(),
            Dialect::Postgres => self.ts(col),
        }
    }

    /// The four parts of a window; `time_test(op, param)` compares the time column.
    fn window_where(self, filter: &Filter, time_test: impl Fn(&str, &str) -> String) -> String {
        let part = |set: bool, param: String, test: String| {
            if set {
                test
            } else {
                format!("{param} IS NULL")
            }
        };
        let (u, h, t3, t4) = (self.text(1), self.text(2), self.time(3), self.time(4));
        [
            part(
                filter.user.is_some(),
                u.clone(),
                format!("s.\"user\" = {u}"),
            ),
            part(filter.host.is_some(), h.clone(), format!("s.host = {h}")),
            part(filter.since.is_some(), t3.clone(), time_test(">=", &t3)),
            part(filter.until.is_some(), t4.clone(), time_test("<", &t4)),
        ]
        .join(" AND ")
    }
}

/// A WHERE condition that holds for every row and names the four report parameters (all
/// unset), for queries run through `stream_rows` that filter nothing.
pub fn always_true(d: Dialect) -> String {
    d.window("", &Filter::default())
}

pub fn sessions_sql(d: Dialect, filter: &Filter) -> (String, Vec<(&'static str, Kind)>) {
    let sql = format!(
        "SELECT {started}, {ended}, s.host, s.\"user\", s.client_ip, s.client_port, s.duration_ms,
                CAST(COALESCE(SUM(CASE WHEN t.counts_as = 'upload' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN t.counts_as = 'download' THEN 1 ELSE 0 END), 0) AS BIGINT),
                {up}, {down}, {unknown},
                s.end_reason, s.exit_status, s.signal, s.source, s.auth_method, s.sid
           FROM sessions s LEFT JOIN transfers t ON t.session_id = s.id
          WHERE {window}
          GROUP BY s.id ORDER BY {started_order}, s.id",
        started_order = d.time_col("s.started_at"),
        started = d.ts("s.started_at"),
        ended = d.ts("s.ended_at"),
        window = d.window("s.started_at", filter),
        up = split_sum("t.bytes_written"),
        down = split_sum("t.bytes_read"),
        unknown = d.count_if("t.counters_cut"),
    );
    let columns = vec![
        ("started", Kind::Time),
        ("ended", Kind::Time),
        ("host", Kind::Text),
        ("user", Kind::Text),
        ("client_ip", Kind::Text),
        ("client_port", Kind::Int),
        ("duration", Kind::DurationMs),
        ("files_up", Kind::Int),
        ("files_down", Kind::Int),
        ("bytes_up", Kind::Bytes),
        ("bytes_up_low", Kind::Int),
        ("bytes_down", Kind::Bytes),
        ("bytes_down_low", Kind::Int),
        ("files_bytes_unknown", Kind::Int),
        ("end", Kind::Text),
        ("exit_status", Kind::Int),
        ("signal", Kind::Text),
        ("source", Kind::Text),
        ("auth", Kind::Text),
        ("sid", Kind::Text),
    ];
    (sql, columns)
}

/// Two sums whose parts cannot overflow 64 bits for fewer than 2^31 rows: of the high and the low
/// 32 bits; [`RowsReport::finish_row`] adds them up without overflow.
fn split_sum(col: &str) -> String {
    format!(
        "CAST(COALESCE(SUM({col} / 4294967296), 0) AS BIGINT), CAST(COALESCE(SUM({col} % 4294967296), 0) AS BIGINT)"
    )
}

/// The last column, `raw_path` (the name's bytes), is for `--path` ([`RowsReport::finish_row`]),
/// which removes it; `renamed_to` and `reached` come as hex, which it turns into readable text.
pub fn transfers_sql(d: Dialect, filter: &Filter) -> (String, Vec<(&'static str, Kind)>) {
    let hex = |col: &str| match d {
        Dialect::Sqlite => format!("hex({col})"),
        Dialect::Postgres => format!("encode({col}, 'hex')"),
    };
    let (raw_path, renamed, reached) = (hex("t.path"), hex("t.renamed_to"), hex("t.reached"));
    let sql = format!(
        "SELECT {opened}, {closed}, s.host, s.\"user\", s.client_ip, t.direction, t.path_text,
                {renamed}, {reached}, t.bytes_read, t.bytes_written, {cut}, {complete}, {forced}, {failed}, t.open_flags, s.sid, {raw_path}
           FROM transfers t JOIN sessions s ON s.id = t.session_id
          WHERE {window}
          ORDER BY {opened_order}, t.id",
        opened_order = d.time_col("t.opened_at"),
        opened = d.ts("t.opened_at"),
        closed = d.ts("t.closed_at"),
        cut = d.flag("t.counters_cut"),
        complete = d.flag("t.complete"),
        forced = d.flag("t.forced"),
        failed = d.flag("t.failed"),
        window = d.window("t.opened_at", filter),
    );
    let columns = vec![
        ("opened", Kind::Time),
        ("closed", Kind::Time),
        ("host", Kind::Text),
        ("user", Kind::Text),
        ("client_ip", Kind::Text),
        ("direction", Kind::Text),
        ("path", Kind::Text),
        ("renamed_to", Kind::Text),
        ("reached", Kind::Text),
        ("bytes_read", Kind::Bytes),
        ("bytes_written", Kind::Bytes),
        ("bytes_unknown", Kind::Bool),
        ("complete", Kind::Bool),
        ("forced", Kind::Bool),
        ("failed", Kind::Bool),
        ("flags", Kind::Text),
        ("sid", Kind::Text),
        ("raw_path", Kind::Text),
    ];
    (sql, columns)
}

/// One row per session and per transfer in the window (exact instants, like the other reports),
/// for [`usage_from_rows`]: at, host, user, is-session, counts_as, bytes up, bytes down,
/// complete, bytes unknown, duration.
pub fn usage_rows_sql(d: Dialect, filter: &Filter) -> (String, Vec<(&'static str, Kind)>) {
    let sql = format!(
        "SELECT {started}, s.host, s.\"user\", 1, NULL, 0, 0, 0, 0, COALESCE(s.duration_ms, 0)
           FROM sessions s
          WHERE (s.end_reason IS NULL OR s.end_reason <> 'refused') AND {session_window}
         UNION ALL
         SELECT {opened}, s.host, s.\"user\", 0, t.counts_as, COALESCE(t.bytes_written, 0),
                COALESCE(t.bytes_read, 0), {complete}, {cut}, 0
           FROM transfers t JOIN sessions s ON s.id = t.session_id
          WHERE {transfer_window}",
        started = d.ts("s.started_at"),
        opened = d.ts("t.opened_at"),
        complete = d.flag("t.complete"),
        cut = d.flag("t.counters_cut"),
        session_window = d.window("s.started_at", filter),
        transfer_window = d.window("t.opened_at", filter),
    );
    let columns = vec![
        ("at", Kind::Time),
        ("host", Kind::Text),
        ("user", Kind::Text),
        ("session", Kind::Int),
        ("counts_as", Kind::Text),
        ("bytes_up", Kind::Bytes),
        ("bytes_down", Kind::Bytes),
        ("complete", Kind::Bool),
        ("bytes_unknown", Kind::Bool),
        ("duration", Kind::DurationMs),
    ];
    (sql, columns)
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
    let sums = ROLLUP_SUMS
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
        .collect::<Vec<_>>()
        .join(", ");
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
    let sums = ROLLUP_SUMS
        .iter()
        .map(|c| {
            if one_row {
                format!("{c} * {sign}")
            } else {
                format!("CAST(SUM({c}) * {sign} AS BIGINT)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
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
    let add = ROLLUP_SUMS
        .iter()
        .chain(std::iter::once(&"contributors"))
        .map(|c| format!("{c} = usage_hourly.{c} + excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO usage_hourly (hour, host, \"user\", {columns}, contributors)
         {source}
         ON CONFLICT (hour, host, \"user\") DO UPDATE SET {add}",
        columns = ROLLUP_SUMS.join(", "),
    )
}

/// The rollup rows a usage report reads: hour, host, user and [`ROLLUP_SUMS`], in the window
/// of `filter` (whose bounds [`RollupPlan`] has put on whole hours).
pub fn usage_rollup_sql(d: Dialect, filter: &Filter) -> (String, Vec<(&'static str, Kind)>) {
    let sql = format!(
        "SELECT {hour}, s.host, s.\"user\", {sums} FROM usage_hourly s WHERE {window}",
        hour = d.text_ts("s.hour"),
        sums = ROLLUP_SUMS.join(", "),
        window = d.hour_window(filter),
    );
    let mut columns = vec![
        ("hour", Kind::Time),
        ("host", Kind::Text),
        ("user", Kind::Text),
    ];
    columns.extend(ROLLUP_SUMS.iter().map(|c| (*c, Kind::Int)));
    (sql, columns)
}

/// How a usage report splits its window between the hourly rollups and the rows: whole UTC
/// hours from the rollups, the part hours at either end from the rows.
#[derive(Debug, Clone)]
pub struct RollupPlan {
    /// Whole hours: read from `usage_hourly`.
    pub hours: Filter,
    /// Part hours at the window's ends: read from the rows.
    pub edges: Vec<Filter>,
}

impl RollupPlan {
    /// `None` when the window lies within one hour (the rows are read; there are few).
    pub fn new(filter: &Filter) -> Option<RollupPlan> {
        let since = filter.since.as_deref().map(parse::parse_storage_time);
        let until = filter.until.as_deref().map(parse::parse_storage_time);
        let (since, until) = match (since, until) {
            (Some(None), _) | (_, Some(None)) => return None,
            (s, u) => (s.flatten(), u.flatten()),
        };
        let whole_from = since.map(|t| {
            let floor = hour_floor(t);
            if floor == t {
                t
            } else {
                floor + chrono::Duration::hours(1)
            }
        });
        let whole_until = until.map(hour_floor);
        if let (Some(from), Some(to)) = (whole_from, whole_until)
            && from >= to
        {
            return None;
        }
        let window = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| Filter {
            since: from.map(parse::storage_time),
            until: to.map(parse::storage_time),
            ..filter.clone()
        };
        let mut edges = Vec::new();
        if let (Some(since), Some(from)) = (since, whole_from)
            && since < from
        {
            edges.push(window(Some(since), Some(from)));
        }
        if let (Some(until), Some(to)) = (until, whole_until)
            && to < until
        {
            edges.push(window(Some(to), Some(until)));
        }
        Some(RollupPlan {
            hours: window(whole_from, whole_until),
            edges,
        })
    }

    /// The rows' window for one hour the rollups cannot serve ([`UsageSums::add_hour`]).
    pub fn one_hour(&self, hour: &str) -> Option<Filter> {
        let start = parse::parse_storage_time(hour)?;
        Some(Filter {
            since: Some(parse::storage_time(start)),
            until: Some(parse::storage_time(start + chrono::Duration::hours(1))),
            ..self.hours.clone()
        })
    }
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// The largest transfers in the window (bytes read and written together), biggest first:
/// opened, host, user, path, direction, bytes read, bytes written, complete.
pub fn largest_transfers_sql(
    d: Dialect,
    filter: &Filter,
    limit: u32,
) -> (String, Vec<(&'static str, Kind)>) {
    let sql = format!(
        "SELECT {opened}, s.host, s.\"user\", t.path_text, t.direction,
                COALESCE(t.bytes_read, 0), COALESCE(t.bytes_written, 0), {complete}
           FROM transfers t JOIN sessions s ON s.id = t.session_id
          WHERE {window}
          -- Halves: two counters near 2^63 cannot overflow the sum the order needs.
          ORDER BY COALESCE(t.bytes_read, 0) / 2 + COALESCE(t.bytes_written, 0) / 2 DESC,
                   {opened_order}, t.id
          LIMIT {limit}",
        opened = d.ts("t.opened_at"),
        opened_order = d.time_col("t.opened_at"),
        complete = d.flag("t.complete"),
        window = d.window("t.opened_at", filter),
    );
    let columns = vec![
        ("opened", Kind::Time),
        ("host", Kind::Text),
        ("user", Kind::Text),
        ("path", Kind::Text),
        ("direction", Kind::Text),
        ("bytes_read", Kind::Bytes),
        ("bytes_written", Kind::Bytes),
        ("complete", Kind::Bool),
    ];
    (sql, columns)
}

/// A report with a row per session or per transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsReport {
    Sessions,
    Transfers,
}

impl RowsReport {
    /// The query and the columns it returns.
    pub fn sql(self, d: Dialect, filter: &Filter) -> (String, Vec<(&'static str, Kind)>) {
        match self {
            RowsReport::Sessions => sessions_sql(d, filter),
            RowsReport::Transfers => transfers_sql(d, filter),
        }
    }

    /// The columns of the finished rows.
    pub fn columns(self) -> Vec<(&'static str, Kind)> {
        let (_, mut columns) = self.sql(Dialect::Sqlite, &Filter::default());
        match self {
            RowsReport::Sessions => columns.retain(|(name, _)| !name.ends_with("_low")),
            RowsReport::Transfers => {
                columns.pop();
            }
        }
        columns
    }

    /// A row of the query (whose columns [`RowsReport::sql`] gave as `raw_columns`) as the
    /// report shows it: split sums joined (sessions); `--path` applied to the name's bytes and
    /// the raw name dropped (transfers). `None`: filtered out.
    pub fn finish_row(
        self,
        raw_columns: &[(&'static str, Kind)],
        mut row: Vec<Value>,
        filter: &Filter,
    ) -> Option<Vec<Value>> {
        match self {
            RowsReport::Sessions => {
                // From the right, so that earlier positions stay put.
                for at in (0..raw_columns.len()).rev() {
                    if raw_columns[at].0.ends_with("_low") {
                        let low = row.remove(at);
                        if let (Value::Int(high), Value::Int(low)) = (&row[at - 1], low) {
                            row[at - 1] = Value::Int(high * 4_294_967_296 + low);
                        }
                    }
                }
                Some(row)
            }
            RowsReport::Transfers => {
                let raw = row.pop()?;
                // The name a rename gave the file, and the file a link or rename made before the
                // open led to: readable like `path`, and found by `--path`.
                let mut other_names = Vec::with_capacity(2);
                for column in ["renamed_to", "reached"] {
                    let at = raw_columns.iter().position(|(n, _)| *n == column)?;
                    let bytes = match &row[at] {
                        Value::Text(hex) if !hex.is_empty() => hex::decode(hex).ok(),
                        _ => None,
                    };
                    other_names.push((at, bytes));
                }
                if let Some(pattern) = &filter.path {
                    let Value::Text(text) = raw else {
                        return None;
                    };
                    let bytes = hex::decode(text).ok()?;
                    let matches = |b: &[u8]| pattern.matches(&String::from_utf8_lossy(b));
                    if !matches(&bytes)
                        && !other_names
                            .iter()
                            .any(|(_, name)| name.as_deref().is_some_and(matches))
                    {
                        return None;
                    }
                }
                for (at, name) in other_names {
                    row[at] = match name {
                        Some(bytes) => Value::Text(parse::path_text(&bytes)),
                        None => Value::Null,
                    };
                }
                Some(row)
            }
        }
    }
}

/// The usage of one day or month, host and user (and their totals, added up).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageGroup {
    pub sessions: i128,
    pub files_up: i128,
    pub files_up_incomplete: i128,
    pub files_down: i128,
    pub files_down_incomplete: i128,
    pub bytes_up: i128,
    pub bytes_down: i128,
    pub files_bytes_unknown: i128,
    pub duration_ms: i128,
}

impl UsageGroup {
    pub fn add(&mut self, other: &UsageGroup) {
        self.sessions += other.sessions;
        self.files_up += other.files_up;
        self.files_up_incomplete += other.files_up_incomplete;
        self.files_down += other.files_down;
        self.files_down_incomplete += other.files_down_incomplete;
        self.bytes_up += other.bytes_up;
        self.bytes_down += other.bytes_down;
        self.files_bytes_unknown += other.files_bytes_unknown;
        self.duration_ms += other.duration_ms;
    }
}

/// Sums the rows of [`usage_rows_sql`] by day or month in a zone, host and user, as they stream
/// by. Files count complete and incomplete transfers apart; bytes include partial transfers.
/// Sums are 128-bit: no number of stored counters overflows them.
pub struct UsageSums {
    by: Period,
    zone: Tz,
    groups: BTreeMap<(String, String, String), UsageGroup>,
    /// The last stored minute (`2026-11-27T10:15`) and its bucket: rows come about in time
    /// order, and every zone's offset is whole minutes, so most rows skip the time arithmetic.
    last_minute: String,
    last_bucket: String,
    /// Rollup hours and their bucket; `None`: the hour is not within one bucket of the zone.
    hour_buckets: std::collections::HashMap<String, Option<String>>,
}

impl UsageSums {
    pub fn new(by: Period, zone: Tz) -> UsageSums {
        UsageSums {
            by,
            zone,
            groups: BTreeMap::new(),
            last_minute: String::new(),
            last_bucket: String::new(),
            hour_buckets: Default::default(),
        }
    }

    fn key_format(&self) -> &'static str {
        if self.by == Period::Day {
            "%Y-%m-%d"
        } else {
            "%Y-%m"
        }
    }

    /// The bucket a whole UTC hour falls in, when all of it falls in one: no local midnight
    /// (or first of the month) inside it and no change of the zone's offset. Zones a whole
    /// number of hours from UTC always qualify; others (+05:30, +05:45) have one hour a day
    /// that does not.
    fn hour_bucket(&self, hour: &str) -> Option<String> {
        let start = parse::parse_storage_time(hour)?;
        let last = start + chrono::Duration::hours(1) - chrono::Duration::microseconds(1);
        let (a, b) = (
            start.with_timezone(&self.zone),
            last.with_timezone(&self.zone),
        );
        use chrono::Offset;
        if a.offset().fix() != b.offset().fix() {
            return None;
        }
        let (a, b) = (
            a.format(self.key_format()).to_string(),
            b.format(self.key_format()).to_string(),
        );
        (a == b).then_some(a)
    }

    /// Adds a row of [`usage_rollup_sql`]. `false`: its hour is not within one bucket of the
    /// zone, and nothing was added; the caller reads that hour's rows instead.
    pub fn add_hour(&mut self, row: &[Value]) -> bool {
        let int = |v: &Value| match v {
            Value::Int(n) => *n,
            _ => 0,
        };
        let text = |v: &Value| match v {
            Value::Text(t) => t.clone(),
            _ => String::new(),
        };
        let hour = text(&row[0]);
        let bucket = match self.hour_buckets.get(&hour) {
            Some(b) => b.clone(),
            None => {
                let b = self.hour_bucket(&hour);
                self.hour_buckets.insert(hour, b.clone());
                b
            }
        };
        let Some(bucket) = bucket else {
            return false;
        };
        let joined = |high: &Value, low: &Value| int(high) * 4_294_967_296 + int(low);
        let g = self
            .groups
            .entry((bucket, text(&row[1]), text(&row[2])))
            .or_default();
        g.sessions += int(&row[3]);
        g.duration_ms += joined(&row[4], &row[5]);
        g.files_up += int(&row[6]);
        g.files_up_incomplete += int(&row[7]);
        g.files_down += int(&row[8]);
        g.files_down_incomplete += int(&row[9]);
        g.bytes_up += joined(&row[10], &row[11]);
        g.bytes_down += joined(&row[12], &row[13]);
        g.files_bytes_unknown += int(&row[14]);
        true
    }

    /// The day or month in the zone of a stored time.
    fn bucket(&mut self, stored: &str) -> Option<&str> {
        let minute = stored.get(..16)?;
        if minute != self.last_minute {
            let at = parse::parse_storage_time(stored)?;
            self.last_bucket = at
                .with_timezone(&self.zone)
                .format(self.key_format())
                .to_string();
            minute.clone_into(&mut self.last_minute);
        }
        Some(&self.last_bucket)
    }

    pub fn add(&mut self, row: &[Value]) {
        let int = |v: &Value| match v {
            Value::Int(n) => *n,
            _ => 0,
        };
        fn text(v: &Value) -> &str {
            match v {
                Value::Text(t) => t,
                _ => "",
            }
        }
        let Some(bucket) = self.bucket(text(&row[0])).map(str::to_owned) else {
            return;
        };
        let g = self
            .groups
            .entry((bucket, text(&row[1]).to_owned(), text(&row[2]).to_owned()))
            .or_default();
        g.sessions += int(&row[3]);
        let complete = int(&row[7]) != 0;
        match text(&row[4]) {
            "upload" if complete => g.files_up += 1,
            "upload" => g.files_up_incomplete += 1,
            "download" if complete => g.files_down += 1,
            "download" => g.files_down_incomplete += 1,
            _ => {}
        }
        g.bytes_up += int(&row[5]);
        g.bytes_down += int(&row[6]);
        g.files_bytes_unknown += int(&row[8]);
        g.duration_ms += int(&row[9]);
    }

    /// The sums by (day or month, host, user), `""` for no user: for the pages and metrics
    /// built on usage.
    pub fn groups(&self) -> &BTreeMap<(String, String, String), UsageGroup> {
        &self.groups
    }

    pub fn finish(self) -> Report {
        let zone_name = self.zone.name().to_owned();
        Report {
            columns: vec![
                (
                    if self.by == Period::Day {
                        "day"
                    } else {
                        "month"
                    },
                    Kind::Text,
                ),
                ("zone", Kind::Text),
                ("host", Kind::Text),
                ("user", Kind::Text),
                ("sessions", Kind::Int),
                ("files_up", Kind::Int),
                ("files_up_incomplete", Kind::Int),
                ("files_down", Kind::Int),
                ("files_down_incomplete", Kind::Int),
                ("bytes_up", Kind::Bytes),
                ("bytes_down", Kind::Bytes),
                ("files_bytes_unknown", Kind::Int),
                ("duration", Kind::DurationMs),
            ],
            rows: self
                .groups
                .into_iter()
                .map(|((bucket, host, user), g)| {
                    let user = if user.is_empty() {
                        Value::Null
                    } else {
                        Value::Text(user)
                    };
                    vec![
                        Value::Text(bucket),
                        Value::Text(zone_name.clone()),
                        Value::Text(host),
                        user,
                        Value::Int(g.sessions),
                        Value::Int(g.files_up),
                        Value::Int(g.files_up_incomplete),
                        Value::Int(g.files_down),
                        Value::Int(g.files_down_incomplete),
                        Value::Int(g.bytes_up),
                        Value::Int(g.bytes_down),
                        Value::Int(g.files_bytes_unknown),
                        Value::Int(g.duration_ms),
                    ]
                })
                .collect(),
        }
    }
}

/// `1536` → `1.5 KiB`; exact below 1 KiB.
pub fn human_bytes(n: i128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n.abs() < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

pub fn human_duration(ms: i128) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    match s {
        0..=59 => format!("{}.{:01}s", s, (ms % 1000) / 100),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60),
    }
}

/// A stored time in `zone`, for people (the table's header names the zone).
/// A stored time as people read it in `zone`.
pub fn zone_time(stored: &str, zone: Tz) -> String {
    parse::parse_storage_time(stored)
        .map(|t| {
            t.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| stored.to_owned())
}

/// A character no report shows as it is: a control character (a terminal escape, a carriage
/// return that overwrites the line, a NUL) or one that changes how the text around it is
/// ordered or broken on screen (U+202E shows `invoice\u{202e}lmx.exe` as `invoiceexe.xml`).
/// Host, user, address, key and file names are the partner's or the log's text.
pub fn hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Text as every format for people shows it (table, CSV, HTML): each [`hidden_char`] as
/// `\xHH` (below U+0100, as `path_text` writes control characters) or `\u{HHHH}`, everything
/// else as it is. JSON keeps the exact text, with these characters as `\uHHHH` escapes.
pub fn for_people(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !hidden_char(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// JSON whose strings carry every [`hidden_char`] as a `\uHHHH` escape (serde_json escapes
/// only those below U+0020): the values are exact, and the bytes of the output reorder or
/// control nothing on a terminal.
struct JsonForPeople;

impl serde_json::ser::Formatter for JsonForPeople {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some((i, c)) = rest.char_indices().find(|(_, c)| hidden_char(*c)) {
            writer.write_all(&rest.as_bytes()[..i])?;
            // Every hidden character is in the Basic Multilingual Plane: one escape.
            write!(writer, "\\u{:04x}", c as u32)?;
            rest = &rest[i + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

fn cell_for_people(v: &Value, kind: Kind, zone: Tz) -> String {
    match (v, kind) {
        (Value::Null, _) => "-".to_owned(),
        (Value::Int(n), Kind::Bytes) => human_bytes(*n),
        (Value::Int(n), Kind::DurationMs) => human_duration(*n),
        (Value::Int(n), Kind::Bool) => if *n != 0 { "yes" } else { "no" }.to_owned(),
        (Value::Int(n), _) => n.to_string(),
        (Value::Text(t), Kind::Time) => zone_time(t, zone),
        (Value::Text(t), _) => for_people(t).into_owned(),
    }
}

fn cell_exact(v: &Value, kind: Kind) -> String {
    match (v, kind) {
        (Value::Null, _) => String::new(),
        (Value::Int(n), Kind::Bool) => (*n != 0).to_string(),
        (Value::Int(n), _) => n.to_string(),
        (Value::Text(t), _) => t.clone(),
    }
}

fn json_value(v: &Value, kind: Kind) -> serde_json::Value {
    match (v, kind) {
        (Value::Null, _) => serde_json::Value::Null,
        (Value::Int(n), Kind::Bool) => serde_json::Value::Bool(*n != 0),
        (Value::Int(n), _) => {
            if let Ok(n) = i64::try_from(*n) {
                serde_json::Value::from(n)
            } else if let Ok(n) = u64::try_from(*n) {
                serde_json::Value::from(n)
            } else {
                // Past what JSON readers take as an exact number: exact as text.
                serde_json::Value::from(n.to_string())
            }
        }
        (Value::Text(t), _) => serde_json::Value::from(t.clone()),
    }
}

/// A CSV cell that a spreadsheet will not run and a terminal will not obey: text (a file name,
/// a user name) is shown by [`for_people`] (a leading tab or carriage return becomes an
/// escape), and one that starts with `=`, `+`, `-` or `@` gets a leading `'`, as OWASP advises
/// against formula injection. Numbers stay numbers; JSON output stays exact.
fn csv_cell(value: &Value, text: String) -> String {
    let text = match for_people(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(shown) => shown,
    };
    match value {
        Value::Text(_) if text.starts_with(['=', '+', '-', '@']) => format!("'{text}"),
        _ => text,
    }
}

/// Takes report rows one at a time.
pub type Sink<'a, E> = dyn FnMut(Vec<Value>) -> Result<(), E> + 'a;
/// Hands every row of a report to a sink, once per call.
pub type Producer<'a, E> = dyn FnMut(&mut Sink<'_, E>) -> Result<(), E> + 'a;

/// Writes the rows that `produce` hands out, as they come (a table asks for them twice: once for
/// the column widths), so memory stays flat at any number of rows. Tables show times in `zone`,
/// CSV and JSON in UTC. JSON is an array with one object per line.
pub fn render_stream<E: From<std::io::Error>>(
    columns: &[(&'static str, Kind)],
    format: Format,
    zone: Tz,
    out: &mut dyn Write,
    produce: &mut Producer<'_, E>,
) -> Result<(), E> {
    match format {
        Format::Table => {
            let headers = table_headers(columns, zone);
            let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
            let mut count = 0u64;
            produce(&mut |row| {
                count += 1;
                for ((w, v), (_, k)) in widths.iter_mut().zip(&row).zip(columns) {
                    *w = (*w).max(cell_for_people(v, *k, zone).chars().count());
                }
                Ok(())
            })?;
            let header: Vec<&str> = headers.iter().map(String::as_str).collect();
            writeln!(out, "{}", table_line(&header, &widths, columns))?;
            if count == 0 {
                writeln!(out, "(no rows)")?;
                return Ok(());
            }
            produce(&mut |row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(columns)
                    .map(|(v, (_, k))| cell_for_people(v, *k, zone))
                    .collect();
                let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
                writeln!(out, "{}", table_line(&cells, &widths, columns))?;
                Ok(())
            })
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(columns.iter().map(|(n, _)| *n))
                .map_err(std::io::Error::from)?;
            produce(&mut |row| {
                w.write_record(
                    row.iter()
                        .zip(columns)
                        .map(|(v, (_, k))| csv_cell(v, cell_exact(v, *k))),
                )
                .map_err(std::io::Error::from)?;
                Ok(())
            })?;
            w.flush()?;
            Ok(())
        }
        Format::Json => {
            write!(out, "[")?;
            let mut first = true;
            produce(&mut |row| {
                let map: serde_json::Map<String, serde_json::Value> = row
                    .iter()
                    .zip(columns)
                    .map(|(v, (n, k))| ((*n).to_owned(), json_value(v, *k)))
                    .collect();
                out.write_all(if first { b"\n" } else { b",\n" })?;
                first = false;
                let mut json = serde_json::Serializer::with_formatter(&mut *out, JsonForPeople);
                serde::Serialize::serialize(&map, &mut json).map_err(std::io::Error::from)?;
                Ok(())
            })?;
            writeln!(out, "{}]", if first { "" } else { "\n" })?;
            Ok(())
        }
        Format::Html => Err(E::from(std::io::Error::other(
            "--format html is for usage and statement",
        ))),
    }
}

/// Column headers for a table: times are the zone's, and the header says which.
fn table_headers(columns: &[(&'static str, Kind)], zone: Tz) -> Vec<String> {
    columns
        .iter()
        .map(|(name, kind)| match kind {
            Kind::Time => format!("{name} ({})", zone.name()),
            _ => (*name).to_owned(),
        })
        .collect()
}

/// One table line: numbers right-aligned, text left-aligned.
fn table_line(values: &[&str], widths: &[usize], columns: &[(&'static str, Kind)]) -> String {
    let parts: Vec<String> = values
        .iter()
        .zip(widths)
        .zip(columns)
        .map(|((v, w), (_, k))| {
            if matches!(k, Kind::Int | Kind::Bytes | Kind::DurationMs) {
                format!("{v:>w$}")
            } else {
                format!("{v:<w$}")
            }
        })
        .collect();
    parts.join("  ").trim_end().to_owned()
}

/// Writes `report`; a table shows its times in `zone`, CSV and JSON in UTC.
pub fn render(
    report: &Report,
    format: Format,
    zone: Tz,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    render_stream(&report.columns, format, zone, out, &mut |sink| {
        for row in &report.rows {
            sink(row.clone())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        assert_eq!(
            parse_time_bound("7d", now, false, Tz::UTC).unwrap(),
            "2026-11-19T12:00:00.000000Z"
        );
        assert_eq!(
            parse_time_bound("12h", now, false, Tz::UTC).unwrap(),
            "2026-11-26T00:00:00.000000Z"
        );
        assert_eq!(
            parse_time_bound("2026-11-26T10:00:00+01:00", now, false, Tz::UTC).unwrap(),
            "2026-11-26T09:00:00.000000Z"
        );
        let day_start = parse_time_bound("2026-11-26", now, false, Tz::UTC).unwrap();
        let day_end = parse_time_bound("2026-11-26", now, true, Tz::UTC).unwrap();
        let span = parse::parse_storage_time(&day_end).unwrap()
            - parse::parse_storage_time(&day_start).unwrap();
        assert!(span >= chrono::Duration::hours(23) && span <= chrono::Duration::hours(25));
        for bad in ["yesterday", "7x", "-3d", "2026-13-01", ""] {
            let err = parse_time_bound(bad, now, false, Tz::UTC).unwrap_err();
            assert!(err.contains("7d"), "{err}");
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3_000_000), "2.9 MiB");
        assert_eq!(human_duration(46), "46 ms");
        assert_eq!(human_duration(1500), "1.5s");
        assert_eq!(human_duration(62_000), "1m02s");
        assert_eq!(human_duration(3_723_000), "1h02m03s");
    }

    #[test]
    fn a_span_past_the_calendar_is_an_error() {
        // `usage --since 99999999d` panicked: 273,000 years before now is out of range.
        let err = parse_time_bound("99999999d", Utc::now(), false, Tz::UTC).unwrap_err();
        assert!(err.contains("99999999d"), "{err}");
    }

    #[test]
    fn control_and_bidi_characters_are_escaped_in_every_format() {
        let hostile = "a\u{1b}[2J\r\0\u{7f}\u{85}\u{202e}lmx.exe\u{2066}\\x\u{e9}";
        let shown = "a\\x1b[2J\\x0d\\x00\\x7f\\x85\\u{202e}lmx.exe\\u{2066}\\x\u{e9}";
        assert_eq!(for_people(hostile), shown);
        assert!(matches!(for_people("plain \u{e9}"), Cow::Borrowed(_)));
        let report = Report {
            columns: vec![("user", Kind::Text)],
            rows: vec![vec![Value::Text(hostile.to_owned())]],
        };
        for format in [Format::Table, Format::Csv, Format::Json] {
            let mut out = Vec::new();
            render(&report, format, Tz::UTC, &mut out).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(
                !out.chars().any(|c| c != '\n' && hidden_char(c)),
                "{format:?}: {out:?}"
            );
            if format == Format::Json {
                let back: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(back[0]["user"], hostile, "JSON stays exact");
            } else {
                assert!(out.contains(shown), "{format:?}: {out:?}");
            }
        }
        assert!(crate::accounting::html::escape(hostile).contains("\\u{202e}lmx.exe"));
    }

    #[test]
    fn csv_cells_cannot_be_formulas() {
        let report = Report {
            columns: vec![("path", Kind::Text), ("bytes", Kind::Int)],
            rows: [
                "=HYPERLINK(\"http://x\")",
                "+1",
                "-2",
                "@SUM(A1)",
                "\tx",
                "\rx",
                "plain=ok",
            ]
            .iter()
            .map(|t| vec![Value::Text((*t).to_owned()), Value::Int(-5)])
            .collect(),
        };
        let mut out = Vec::new();
        render(&report, Format::Csv, Tz::UTC, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let cells: Vec<(String, String)> = rows
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[0].to_owned(), r[1].to_owned())
            })
            .collect();
        for (cell, bytes) in &cells[..4] {
            assert!(cell.starts_with('\''), "{cell:?}");
            assert_eq!(bytes, "-5");
        }
        // A leading tab or carriage return is shown as an escape, which no spreadsheet runs.
        assert_eq!(
            (cells[4].0.as_str(), cells[5].0.as_str()),
            ("\\x09x", "\\x0dx")
        );
        assert_eq!(cells[6].0, "plain=ok");
        // JSON stays exact.
        let mut out = Vec::new();
        render(&report, Format::Json, Tz::UTC, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\"=HYPERLINK("));
    }

    proptest::proptest! {
        #[test]
        fn time_bounds_never_panic(text in ".{0,40}", until: bool) {
            let _ = parse_time_bound(&text, Utc::now(), until, Tz::UTC);
        }

        #[test]
        fn huge_spans_are_errors_not_panics(n in 0i64..200_000_000, unit in "[mhdw]") {
            let _ = parse_time_bound(&format!("{n}{unit}"), Utc::now(), false, Tz::UTC);
        }
    }

    #[test]
    fn rendering() {
        let report = Report {
            columns: vec![
                ("user", Kind::Text),
                ("bytes", Kind::Bytes),
                ("ok", Kind::Bool),
            ],
            rows: vec![
                vec![
                    Value::Text("acme, \"inc\"".into()),
                    Value::Int(2048),
                    Value::Int(1),
                ],
                vec![Value::Null, Value::Int(5), Value::Int(0)],
            ],
        };
        let mut out = Vec::new();
        render(&report, Format::Table, Tz::UTC, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "user           bytes  ok\nacme, \"inc\"  2.0 KiB  yes\n-                5 B  no\n"
        );
        let mut out = Vec::new();
        render(&report, Format::Csv, Tz::UTC, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "user,bytes,ok\n\"acme, \"\"inc\"\"\",2048,true\n,5,false\n"
        );
        let mut out = Vec::new();
        render(&report, Format::Json, Tz::UTC, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["bytes"], 2048);
        assert_eq!(v[1]["user"], serde_json::Value::Null);
        assert_eq!(v[0]["ok"], true);
    }
}
