//! The hourly rollups (`usage_hourly`) and the one rule behind them and every usage figure:
//! what one session or transfer row counts ([`Counted`]). A cell adds up the rows of one UTC
//! hour, host and user. A batch (the ingest's, or `copy`'s) adds what its rows count and what
//! its changes to rows earlier batches wrote move ([`Cells`]); any other change to the rows (a
//! prune, an edit by hand, a session the ingest merges or deletes outside its batches) marks its
//! cells in `usage_dirty` by trigger (the migrations' `usage_*` triggers), and the commit
//! computes those cells afresh from the rows ([`recompute`]), as `rollups --rebuild` does for
//! every cell.

use crate::accounting::sql::{Dialect, Filter, Kind, Query, Value, columns};
use crate::accounting::storage::{CountsAs, Micros, ReportStore, Result, StoreError};
use std::borrow::Cow;
use std::collections::BTreeMap;

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
pub(crate) const ROLLUP_SUMS: [&str; 12] = [
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

/// What one row counts in usage: the rule the rollups, their recompute and the usage read
/// from rows share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counted {
    pub sessions: i64,
    pub duration_ms: i64,
    pub files_up: i64,
    pub files_up_incomplete: i64,
    pub files_down: i64,
    pub files_down_incomplete: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub files_bytes_unknown: i64,
}

impl Counted {
    /// A session counts once, with its duration, at its start; a refused one not at all.
    pub fn session(refused: bool, duration_ms: Option<i64>) -> Option<Counted> {
        (!refused).then(|| Counted {
            sessions: 1,
            duration_ms: duration_ms.unwrap_or(0),
            ..Counted::default()
        })
    }

    /// A transfer counts at its open, under its session's host and user: a file up or down
    /// (complete or not) by what its close counted it as, and its bytes whatever it counts as.
    pub fn transfer(
        counts_as: Option<CountsAs>,
        complete: bool,
        bytes_written: Option<i64>,
        bytes_read: Option<i64>,
        counters_cut: bool,
    ) -> Counted {
        let file =
            |what: CountsAs, done: bool| i64::from(counts_as == Some(what) && complete == done);
        Counted {
            files_up: file(CountsAs::Upload, true),
            files_up_incomplete: file(CountsAs::Upload, false),
            files_down: file(CountsAs::Download, true),
            files_down_incomplete: file(CountsAs::Download, false),
            bytes_up: bytes_written.unwrap_or(0),
            bytes_down: bytes_read.unwrap_or(0),
            files_bytes_unknown: counters_cut.into(),
            ..Counted::default()
        }
    }

    /// A row of [`usage_rows_sql`]: its time, host, user (`""` for none) and what it counts.
    pub(crate) fn of_usage_row(row: &[Value]) -> Option<(Micros, &str, &str, Counted)> {
        let Value::Time(at) = row[0] else {
            return None;
        };
        let int = |i: usize| i64::try_from(row[i].int()).ok();
        let counted = if row[3].int() == 1 {
            Counted::session(row[10].int() != 0, int(9))?
        } else {
            let counts_as = CountsAs::parse(row[4].text());
            Counted::transfer(
                counts_as,
                row[7].int() != 0,
                int(5),
                int(6),
                row[8].int() != 0,
            )
        };
        Some((at, row[1].text(), row[2].text(), counted))
    }

    /// As `usage_hourly` keeps it, in [`ROLLUP_SUMS`]'s order: the sums that could pass 64
    /// bits split into their high and low 32 bits, truncated as SQL's integer `/` and `%` are.
    pub(crate) fn sums(&self) -> [i64; ROLLUP_SUMS.len()] {
        let split = |v: i64| (v / 4_294_967_296, v % 4_294_967_296);
        let (duration_high, duration_low) = split(self.duration_ms);
        let (up_high, up_low) = split(self.bytes_up);
        let (down_high, down_low) = split(self.bytes_down);
        [
            self.sessions,
            duration_high,
            duration_low,
            self.files_up,
            self.files_up_incomplete,
            self.files_down,
            self.files_down_incomplete,
            up_high,
            up_low,
            down_high,
            down_low,
            self.files_bytes_unknown,
        ]
    }
}

/// One `usage_hourly` cell, or what a batch adds to one: [`ROLLUP_SUMS`] and the rows summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cell {
    pub sums: [i64; ROLLUP_SUMS.len()],
    pub contributors: i64,
}

impl Cell {
    /// Adds (`sign` 1) or takes away (-1) one row; fails on overflow, as SQL's `SUM` does.
    pub fn add(&mut self, sign: i64, row: &Counted) -> Result<()> {
        for (sum, v) in self.sums.iter_mut().zip(row.sums()) {
            let v = v.checked_mul(sign).ok_or(StoreError::RollupOverflow)?;
            *sum = sum.checked_add(v).ok_or(StoreError::RollupOverflow)?;
        }
        self.contributors += sign;
        Ok(())
    }
}

/// A session's host and user (`''` for none), as a cell's key holds them.
pub(crate) type HostUser<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Cells by (the hour's first microsecond, host, user: `''` for none).
pub(crate) type Cells<'a> = BTreeMap<(i64, Cow<'a, str>, Cow<'a, str>), Cell>;

/// Adds (`sign` 1) or takes away (-1) one row at `at` of `host` and `user` to its cell.
pub(crate) fn add_row<'a>(
    cells: &mut Cells<'a>,
    sign: i64,
    at: Micros,
    host: Cow<'a, str>,
    user: Cow<'a, str>,
    row: &Counted,
) -> Result<()> {
    cells
        .entry((at.hour_floor().0, host, user))
        .or_default()
        .add(sign, row)
}

/// More cells to compute afresh than are worth a query each.
const MANY_CELLS: usize = 64;

/// The cells computed afresh from the rows: every cell, or (`keys`) those of these hours and
/// hosts.
pub fn recompute(
    store: &mut dyn ReportStore,
    keys: Option<&[(Micros, String)]>,
) -> Result<Cells<'static>> {
    // Many cells (a prune, a bulk edit by hand) are read as one window from the first hour to
    // the last, keeping the rows of those cells: one range scan instead of a query per cell.
    let wanted = keys.filter(|k| k.len() > MANY_CELLS).map(hour_hosts);
    let windows: Vec<Filter> = match keys {
        None => vec![Filter::default()],
        Some(keys) if wanted.is_some() => {
            let first = keys.iter().map(|k| k.0).min();
            let last = keys.iter().map(|k| k.0).max();
            vec![Filter {
                since: first,
                until: last.map(|h| Micros(h.0.saturating_add(Micros::HOUR))),
                ..Filter::default()
            }]
        }
        Some(keys) => keys
            .iter()
            .map(|(hour, host)| Filter {
                host: Some(host.clone()),
                since: Some(*hour),
                until: Some(Micros(hour.0.saturating_add(Micros::HOUR))),
                ..Filter::default()
            })
            .collect(),
    };
    let mut cells = Cells::new();
    let Some(first) = windows.first() else {
        return Ok(cells);
    };
    let (sql, columns) = usage_rows_sql(store.dialect(), first);
    for window in &windows {
        store.stream_rows(&sql, &columns, window, &mut |row| {
            let Some((at, host, user, counted)) = Counted::of_usage_row(&row) else {
                return Ok(());
            };
            if wanted
                .as_ref()
                .is_some_and(|w| !w.contains(&(at.hour_floor().0, host)))
            {
                return Ok(());
            }
            let (host, user) = (Cow::Owned(host.to_owned()), Cow::Owned(user.to_owned()));
            add_row(&mut cells, 1, at, host, user, &counted)
        })?;
    }
    Ok(cells)
}

/// Cell keys (hour, host) as a set to look rows up in.
fn hour_hosts(keys: &[(Micros, String)]) -> std::collections::HashSet<(i64, &str)> {
    keys.iter()
        .map(|(hour, host)| (hour.0, host.as_str()))
        .collect()
}

/// The number of `usage_hourly` rows that differ from the cells computed afresh (missing,
/// extra, or different: counted once as stale and once as missing), but for the cells of
/// `pending` (hour, host), which the next commit computes afresh and reports read from the
/// rows until then.
pub(crate) fn differences(
    store: &mut dyn ReportStore,
    pending: &[(Micros, String)],
) -> Result<u64> {
    let pending = hour_hosts(pending);
    let mut fresh = recompute(store, None)?;
    fresh.retain(|(hour, host, _), _| !pending.contains(&(*hour, host.as_ref())));
    let (sql, columns) = usage_rollup_sql(store.dialect(), &Filter::default());
    let mut differing = 0;
    store.stream_rows(&sql, &columns, &Filter::default(), &mut |row| {
        let values = row[3..].iter().map(|v| i64::try_from(v.int()).ok());
        let (Value::Time(hour), Some(values)) = (&row[0], values.collect::<Option<Vec<_>>>())
        else {
            differing += 1;
            return Ok(());
        };
        let (host, user) = (row[1].text(), row[2].text());
        if pending.contains(&(hour.0, host)) {
            return Ok(());
        }
        let key = (
            hour.0,
            Cow::Owned(host.to_owned()),
            Cow::Owned(user.to_owned()),
        );
        let stored = Cell {
            sums: values[..ROLLUP_SUMS.len()].try_into().unwrap_or_default(),
            contributors: values[ROLLUP_SUMS.len()],
        };
        match fresh.remove(&key) {
            Some(cell) if cell == stored => {}
            Some(_) => differing += 2,
            None => differing += 1,
        }
        Ok(())
    })?;
    Ok(differing + fresh.len() as u64)
}

/// One row per session and per transfer in the window (exact instants, like the other reports),
/// for the usage report and [`recompute`]: at, host, user, is-session, counts_as, bytes up, bytes down,
/// complete, bytes unknown, duration, refused ([`Counted`] decides what each counts).
pub(crate) fn usage_rows_sql(d: Dialect, filter: &Filter) -> Query {
    // A window with no user to narrow it (a cell to compute afresh, a part hour of a usage
    // report) is read transfers first, by time (an index range), each finding its session by
    // key. Left to themselves, both planners can read every session of the host instead
    // (PostgreSQL's statistics lag a bulk ingest): SQLite's CROSS JOIN keeps the order written,
    // and PostgreSQL evaluates a LATERAL subquery with OFFSET 0 per transfer.
    let transfers = match (d, filter.user.is_some()) {
        (_, true) => "transfers t JOIN sessions s ON s.id = t.session_id",
        (Dialect::Sqlite, false) => "transfers t CROSS JOIN sessions s ON s.id = t.session_id",
        (Dialect::Postgres, false) => {
            "transfers t CROSS JOIN LATERAL (SELECT s.host, s.\"user\" FROM sessions s
                                              WHERE s.id = t.session_id OFFSET 0) AS s"
        }
    };
    let sql = format!(
        "SELECT {started}, s.host, s.\"user\", 1, NULL, 0, 0, 0, 0, COALESCE(s.duration_ms, 0),
                {refused}
           FROM sessions s
          WHERE {session_window}
         UNION ALL
         SELECT {opened}, s.host, s.\"user\", 0, t.counts_as, COALESCE(t.bytes_written, 0),
                COALESCE(t.bytes_read, 0), {complete}, {cut}, 0, 0
           FROM {transfers}
          WHERE {transfer_window}",
        refused = d.flag("s.end_reason = 'refused'"),
        started = d.time_col("s.started_at"),
        opened = d.time_col("t.opened_at"),
        complete = d.flag("t.complete"),
        cut = d.flag("t.counters_cut"),
        session_window = d.window("s.started_at", filter),
        transfer_window = d.window("t.opened_at", filter),
    );
    let columns = columns![
        at: Time, host: Text, user: Text, session: Int, counts_as: Text, bytes_up: Bytes,
        bytes_down: Bytes, complete: Bool, bytes_unknown: Bool, duration: DurationMs,
        refused: Bool,
    ];
    (sql, columns)
}

/// The rows of `usage_hourly` in the window of `filter` (whose bounds a usage report has put
/// on whole hours): hour, host, user, [`ROLLUP_SUMS`] and `contributors`.
pub(crate) fn usage_rollup_sql(d: Dialect, filter: &Filter) -> Query {
    let sql = format!(
        "SELECT s.hour, s.host, s.\"user\", {sums}, s.contributors FROM usage_hourly s
          WHERE {window}",
        sums = ROLLUP_SUMS.join(", "),
        window = d.hour_window(filter),
    );
    let mut columns = columns![hour: Time, host: Text, user: Text];
    columns.extend(ROLLUP_SUMS.iter().map(|c| (*c, Kind::Int)));
    columns.push(("contributors", Kind::Int));
    (sql, columns)
}

/// Adds what `source` (a `SELECT` or `VALUES` of hour, host, user, [`ROLLUP_SUMS`] and
/// `contributors`) gives to those cells of `usage_hourly`, creating cells as needed.
pub(crate) fn add_to_cells_sql(source: &str) -> String {
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

/// Drops the cells whose last row went away (their sums are all zero).
pub(crate) const DROP_EMPTY_CELLS: &str = "DELETE FROM usage_hourly WHERE contributors = 0";
