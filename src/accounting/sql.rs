//! The SQL both the stores and the reports are written in: the two dialects, the report
//! parameters every query binds the same way ([`Filter`]), and the cells that come back.

use crate::log::parse::Micros;
use chrono_tz::Tz;
use rusqlite::types::ValueRef;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub host: Option<String>,
    /// Inclusive lower bound.
    pub since: Option<Micros>,
    /// Exclusive upper bound.
    pub until: Option<Micros>,
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
pub(crate) fn system_zone() -> Tz {
    let from_env = std::env::var("TZ")
        .ok()
        .map(|tz| tz.trim_start_matches(':').to_owned());
    from_env
        .or_else(|| iana_time_zone::get_timezone().ok())
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
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

/// A report's columns from `name: Kind` pairs: `columns![host: Text, n: Int]`.
macro_rules! columns {
    ($($name:ident: $kind:ident),* $(,)?) => {
        vec![$((stringify!($name), $crate::accounting::sql::Kind::$kind)),*]
    };
}
pub(crate) use columns;

/// A report query and the columns its rows come in.
pub(crate) type Query = (String, Vec<(&'static str, Kind)>);

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Wide enough for any sum of stored counters.
    Int(i128),
    Text(String),
    /// A column of [`Kind::Time`]: turned into text only where it is shown.
    Time(Micros),
}

impl Value {
    /// The number; 0 for a cell that holds none (NULL).
    pub fn int(&self) -> i128 {
        match self {
            Value::Int(n) => *n,
            _ => 0,
        }
    }

    /// The text; `""` for a cell that holds none (NULL).
    pub fn text(&self) -> &str {
        match self {
            Value::Text(t) => t,
            _ => "",
        }
    }
}

/// Converts one SQLite cell.
pub(crate) fn value_from_sqlite(v: ValueRef<'_>) -> Value {
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
/// as [`crate::log::parse::Micros`] shows it, for years 0 to 9999.
///
/// This is the time columns' expression in the views `sessions`, `transfers` and `operations`:
/// `date` and `time` with the digits of the microseconds, cheaper per row than `strftime` and
/// `printf`. Only functions of SQLite 3.40 (Debian 12's `sqlite3`), so that older tools still
/// read the database.
pub(crate) fn sqlite_time_text(us: &str) -> String {
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
    pub(crate) fn time_col(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{col}_us"),
            Dialect::Postgres => col.to_owned(),
        }
    }

    /// Text parameter `n` (1: user, 2: host).
    pub(crate) fn text(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}::text"),
        }
    }

    /// Time parameter `n` (3: since, 4: until), bound as [`Micros`], compared with a timestamp
    /// column.
    pub(crate) fn time(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            // Exact: interval arithmetic is in whole microseconds.
            Dialect::Postgres => {
                format!("('epoch'::timestamptz + ${n}::bigint * interval '1 microsecond')")
            }
        }
    }

    /// A boolean column as 0/1.
    pub(crate) fn flag(self, col: &str) -> String {
        format!("CASE WHEN {col} THEN 1 ELSE 0 END")
    }

    /// The WHERE clause every report shares: user, host, and a time window on `time_col`. Only
    /// the filters that are set compare columns (`x IS NULL OR col = x` keeps the planner from
    /// the indexes); an unset one is still named, as `x IS NULL`, so that the four parameters
    /// are always bound the same way. Values are parameters, never SQL text.
    pub(crate) fn window(self, time_col: &str, filter: &Filter) -> String {
        let col = self.time_col(time_col);
        self.window_where(filter, |op, param| format!("{col} {op} {param}"))
    }

    /// [`Dialect::window`] on `usage_hourly.hour`, which SQLite keeps as storage text (a row per
    /// hour, host and user: small): the microseconds bound are turned into text once, so the
    /// comparison still reads an index range.
    pub(crate) fn hour_window(self, filter: &Filter) -> String {
        match self {
            Dialect::Sqlite => self.window_where(filter, |op, param| {
                format!("s.hour {op} {}", sqlite_time_text(param))
            }),
            Dialect::Postgres => self.window("s.hour", filter),
        }
    }

    /// The four parts of a window; `time_test(op, param)` compares the time column.
    pub(crate) fn window_where(
        self,
        filter: &Filter,
        time_test: impl Fn(&str, &str) -> String,
    ) -> String {
        let part = |set: bool, param: &str, test: String| match set {
            true => test,
            false => format!("{param} IS NULL"),
        };
        let (u, h, t3, t4) = (self.text(1), self.text(2), self.time(3), self.time(4));
        [
            part(filter.user.is_some(), &u, format!("s.\"user\" = {u}")),
            part(filter.host.is_some(), &h, format!("s.host = {h}")),
            part(filter.since.is_some(), &t3, time_test(">=", &t3)),
            part(filter.until.is_some(), &t4, time_test("<", &t4)),
        ]
        .join(" AND ")
    }
}
