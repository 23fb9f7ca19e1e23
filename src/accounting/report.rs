//! The reports: sessions, transfers and usage, as aligned tables for people or exact CSV and
//! JSON for programs.

use crate::accounting::rollup::{Counted, split_sum, usage_rollup_sql, usage_rows_sql};
pub(crate) use crate::accounting::sql::system_zone;
use crate::accounting::sql::{Dialect, Query, columns};
pub use crate::accounting::sql::{Filter, Kind, Value};
use crate::accounting::storage::{self, ReportStore, RowSink};
use crate::log::parse::{self, Micros};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
    /// One self-contained page (usage and statement only).
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Period {
    Day,
    Month,
}

/// The first instant of `date` in `zone` (storage time): midnight, or the first time the day
/// has where a transition skips midnight.
pub(crate) fn day_start(date: NaiveDate, zone: Tz) -> Option<Micros> {
    local_instant(date.and_hms_opt(0, 0, 0)?, zone)
}

/// The instant of local time `naive` in `zone` (the earlier of two, where a transition repeats it).
fn local_instant(naive: NaiveDateTime, zone: Tz) -> Option<Micros> {
    let local = zone.from_local_datetime(&naive).earliest()?;
    Some(Micros::of(local.with_timezone(&Utc)))
}

/// Reads `--tz`: an IANA zone name such as `Europe/Berlin` or `UTC`.
pub(crate) fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as UTC or Europe/Berlin")
    })
}

/// Reads `--since`/`--until`: a date (`2026-11-26`, midnight in `zone`), a date and time in
/// `zone` (`2026-11-26 14:00`), RFC 3339, or a span back from now (`30m`, `12h`, `7d`, `2w`).
/// For `--until`, a bare date means the end of that day.
pub(crate) fn parse_time_bound(
    text: &str,
    now: DateTime<Utc>,
    until: bool,
    zone: Tz,
) -> Result<Micros, String> {
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
            return Ok(Micros::of(t));
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
            return local_instant(naive, zone).ok_or_else(bad);
        }
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| Micros::of(d.with_timezone(&Utc)))
        .map_err(|_| bad())
}

#[derive(Debug, Clone)]
pub struct Report {
    pub columns: Vec<(&'static str, Kind)>,
    pub rows: Vec<Vec<Value>>,
}

pub(crate) fn sessions_sql(d: Dialect, filter: &Filter) -> Query {
    let sql = format!(
        "SELECT {started}, {ended}, s.host, s.\"user\", s.client_ip, s.client_port, s.duration_ms,
                CAST(COALESCE(SUM(CASE WHEN t.counts_as = 'upload' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN t.counts_as = 'download' THEN 1 ELSE 0 END), 0) AS BIGINT),
                {up}, {down},
                CAST(COALESCE(SUM(CASE WHEN t.counters_cut THEN 1 ELSE 0 END), 0) AS BIGINT),
                s.end_reason, s.exit_status, s.signal, s.source, s.auth_method, s.sid
           FROM sessions s LEFT JOIN transfers t ON t.session_id = s.id
          WHERE {window}
          GROUP BY s.id ORDER BY {started}, s.id",
        started = d.time_col("s.started_at"),
        ended = d.time_col("s.ended_at"),
        window = d.window("s.started_at", filter),
        up = split_sum("t.bytes_written"),
        down = split_sum("t.bytes_read"),
    );
    let columns = columns![
        started: Time, ended: Time, host: Text, user: Text, client_ip: Text, client_port: Int,
        duration: DurationMs, files_up: Int, files_down: Int, bytes_up: Bytes, bytes_up_low: Int,
        bytes_down: Bytes, bytes_down_low: Int, files_bytes_unknown: Int, end: Text,
        exit_status: Int, signal: Text, source: Text, auth: Text, sid: Text,
    ];
    (sql, columns)
}

/// The last column, `raw_path` (the name's bytes), is for `--path` ([`RowsReport::finish_row`]),
/// which removes it; `renamed_to` and `reached` come as hex, which it turns into readable text.
pub(crate) fn transfers_sql(d: Dialect, filter: &Filter) -> Query {
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
          ORDER BY {opened}, t.id",
        opened = d.time_col("t.opened_at"),
        closed = d.time_col("t.closed_at"),
        cut = d.flag("t.counters_cut"),
        complete = d.flag("t.complete"),
        forced = d.flag("t.forced"),
        failed = d.flag("t.failed"),
        window = d.window("t.opened_at", filter),
    );
    let columns = columns![
        opened: Time, closed: Time, host: Text, user: Text, client_ip: Text, direction: Text,
        path: Text, renamed_to: Text, reached: Text, bytes_read: Bytes, bytes_written: Bytes,
        bytes_unknown: Bool, complete: Bool, forced: Bool, failed: Bool, flags: Text, sid: Text,
        raw_path: Text,
    ];
    (sql, columns)
}

/// How a usage report splits its window between the hourly rollups and the rows: whole UTC
/// hours from the rollups, the part hours at either end from the rows.
#[derive(Debug, Clone)]
pub(crate) struct RollupPlan {
    /// Whole hours: read from `usage_hourly`.
    pub hours: Filter,
    /// Part hours at the window's ends: read from the rows.
    pub edges: Vec<Filter>,
}

impl RollupPlan {
    /// `None` when the window lies within one hour (the rows are read; there are few).
    pub fn new(filter: &Filter) -> Option<RollupPlan> {
        let (since, until) = (filter.since, filter.until);
        let whole_from = since.map(|t| match t.hour_floor() {
            floor if floor == t => t,
            floor => Micros(floor.0.saturating_add(Micros::HOUR)),
        });
        let whole_until = until.map(Micros::hour_floor);
        if let (Some(from), Some(to)) = (whole_from, whole_until)
            && from >= to
        {
            return None;
        }
        let window = |since: Option<Micros>, until: Option<Micros>| Filter {
            since,
            until,
            ..filter.clone()
        };
        let edges = [(since, whole_from), (whole_until, until)]
            .into_iter()
            .filter(|(start, end)| start.zip(*end).is_some_and(|(start, end)| start < end))
            .map(|(start, end)| window(start, end))
            .collect();
        Some(RollupPlan {
            hours: window(whole_from, whole_until),
            edges,
        })
    }
}

/// The largest transfers in the window (bytes read and written together), biggest first:
/// opened, host, user, path, direction, bytes read, bytes written, complete.
pub(crate) fn largest_transfers_sql(d: Dialect, filter: &Filter, limit: u32) -> Query {
    let sql = format!(
        "SELECT {opened}, s.host, s.\"user\", t.path_text, t.direction,
                COALESCE(t.bytes_read, 0), COALESCE(t.bytes_written, 0), {complete}
           FROM transfers t JOIN sessions s ON s.id = t.session_id
          WHERE {window}
          -- Halves: two counters near 2^63 cannot overflow the sum the order needs.
          ORDER BY COALESCE(t.bytes_read, 0) / 2 + COALESCE(t.bytes_written, 0) / 2 DESC,
                   {opened}, t.id
          LIMIT {limit}",
        opened = d.time_col("t.opened_at"),
        complete = d.flag("t.complete"),
        window = d.window("t.opened_at", filter),
    );
    let columns = columns![
        opened: Time, host: Text, user: Text, path: Text, direction: Text, bytes_read: Bytes,
        bytes_written: Bytes, complete: Bool,
    ];
    (sql, columns)
}

/// A report with a row per session or per transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsReport {
    Sessions,
    Transfers,
}

impl RowsReport {
    /// The query and the columns it returns.
    pub fn sql(self, d: Dialect, filter: &Filter) -> Query {
        match self {
            RowsReport::Sessions => sessions_sql(d, filter),
            RowsReport::Transfers => transfers_sql(d, filter),
        }
    }

    /// The columns of the finished rows: those of the query but the low halves of split sums and
    /// `raw_path`, which [`RowsReport::finish_row`] folds in and drops.
    pub fn columns(self) -> Vec<(&'static str, Kind)> {
        let (_, mut columns) = self.sql(Dialect::Sqlite, &Filter::default());
        columns.retain(|(name, _)| !name.ends_with("_low") && *name != "raw_path");
        columns
    }

    /// A row of the query (whose columns [`RowsReport::sql`] gave as `raw_columns`) as the
    /// report shows it: split sums joined (sessions); `--path` applied to the name's bytes and
    /// the raw name dropped (transfers). `None`: filtered out.
    pub(crate) fn finish_row(
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
pub(crate) struct UsageGroup {
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
pub(crate) struct UsageSums {
    by: Period,
    zone: Tz,
    groups: BTreeMap<(String, String, String), UsageGroup>,
    /// The UTC minute of the last row's time, and its bucket: rows come about in time order,
    /// and every zone's offset is whole minutes, so most rows skip the time arithmetic.
    last_minute: Option<i64>,
    last_bucket: String,
    /// Rollup hours and their bucket; `None`: the hour is not within one bucket of the zone.
    hour_buckets: std::collections::HashMap<Micros, Option<String>>,
}

impl UsageSums {
    pub fn new(by: Period, zone: Tz) -> UsageSums {
        UsageSums {
            by,
            zone,
            groups: BTreeMap::new(),
            last_minute: None,
            last_bucket: String::new(),
            hour_buckets: Default::default(),
        }
    }

    fn key_format(&self) -> &'static str {
        match self.by {
            Period::Day => "%Y-%m-%d",
            Period::Month => "%Y-%m",
        }
    }

    /// Adds a row of [`usage_rollup_sql`]. `false`: its hour is not within one bucket of the
    /// zone, and nothing was added; the caller reads that hour's rows instead.
    pub(crate) fn add_hour(&mut self, row: &[Value]) -> bool {
        let Value::Time(hour) = row[0] else {
            return false;
        };
        let (zone, format) = (self.zone, self.key_format());
        let bucket = self.hour_buckets.entry(hour);
        let Some(bucket) = bucket.or_insert_with(|| hour_bucket(zone, format, hour)) else {
            return false;
        };
        let key = (
            bucket.clone(),
            row[1].text().to_owned(),
            row[2].text().to_owned(),
        );
        self.add_sums(key, |i| row[3 + i].int());
        true
    }

    /// Adds [`crate::accounting::rollup::ROLLUP_SUMS`] (`sum(i)`: the i-th, as a rollup row or
    /// [`Counted::sums`] holds them) to the group of `key`.
    fn add_sums(&mut self, key: (String, String, String), sum: impl Fn(usize) -> i128) {
        let g = self.groups.entry(key).or_default();
        let joined = |high: usize| sum(high) * 4_294_967_296 + sum(high + 1);
        g.sessions += sum(0);
        g.duration_ms += joined(1);
        g.files_up += sum(3);
        g.files_up_incomplete += sum(4);
        g.files_down += sum(5);
        g.files_down_incomplete += sum(6);
        g.bytes_up += joined(7);
        g.bytes_down += joined(9);
        g.files_bytes_unknown += sum(11);
    }

    /// The day or month in the zone of a time.
    fn bucket(&mut self, at: Micros) -> Option<&str> {
        let minute = at.0.div_euclid(60_000_000);
        if self.last_minute != Some(minute) {
            self.last_bucket = at
                .time()?
                .with_timezone(&self.zone)
                .format(self.key_format())
                .to_string();
            self.last_minute = Some(minute);
        }
        Some(&self.last_bucket)
    }

    /// Adds a row of [`usage_rows_sql`], by the rule the rollups keep ([`Counted`]).
    pub fn add(&mut self, row: &[Value]) {
        let Some((at, host, user, counted)) = Counted::of_usage_row(row) else {
            return;
        };
        let Some(bucket) = self.bucket(at).map(str::to_owned) else {
            return;
        };
        let sums = counted.sums();
        self.add_sums((bucket, host.to_owned(), user.to_owned()), |i| {
            sums[i].into()
        });
    }

    /// The sums by (day or month, host, user), `""` for no user: for the pages and metrics
    /// built on usage.
    pub fn groups(&self) -> &BTreeMap<(String, String, String), UsageGroup> {
        &self.groups
    }

    pub fn finish(self) -> Report {
        let zone_name = self.zone.name().to_owned();
        let mut columns = columns![
            day: Text, zone: Text, host: Text, user: Text, sessions: Int, files_up: Int,
            files_up_incomplete: Int, files_down: Int, files_down_incomplete: Int, bytes_up: Bytes,
            bytes_down: Bytes, files_bytes_unknown: Int, duration: DurationMs,
        ];
        if self.by == Period::Month {
            columns[0].0 = "month";
        }
        Report {
            columns,
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

/// The bucket (`format` in `zone`) a whole UTC hour falls in, when all of it falls in one: no
/// local midnight (or first of the month) inside it and no change of the zone's offset. Zones a
/// whole number of hours from UTC always qualify; others (+05:30, +05:45) have one hour a day
/// that does not.
fn hour_bucket(zone: Tz, format: &str, hour: Micros) -> Option<String> {
    use chrono::Offset;
    let start = hour.time()?;
    let last = start + chrono::Duration::hours(1) - chrono::Duration::microseconds(1);
    let (a, b) = (start.with_timezone(&zone), last.with_timezone(&zone));
    if a.offset().fix() != b.offset().fix() {
        return None;
    }
    let (a, b) = (a.format(format).to_string(), b.format(format).to_string());
    (a == b).then_some(a)
}

/// `1536` → `1.5 KiB`; exact below 1 KiB.
pub(crate) fn human_bytes(n: i128) -> String {
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

pub(crate) fn human_duration(ms: i128) -> String {
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

/// A time as people read it in `zone` (the table's header names the zone); past chrono's
/// range, its microseconds.
pub(crate) fn zone_time(t: Micros, zone: Tz) -> String {
    local_time(t, zone).unwrap_or_else(|| t.to_string())
}

/// An instant as people in `zone` read it; `None` past chrono's range.
pub(crate) fn local_time(t: Micros, zone: Tz) -> Option<String> {
    t.time().map(|t| {
        t.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
}

/// A character no report shows as it is: a control character (a terminal escape, a carriage
/// return that overwrites the line, a NUL) or one that changes how the text around it is
/// ordered or broken on screen (U+202E shows `invoice\u{202e}lmx.exe` as `invoiceexe.xml`).
/// Host, user, address, key and file names are the partner's or the log's text.
pub(crate) fn hidden_char(c: char) -> bool {
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
pub(crate) fn for_people(text: &str) -> Cow<'_, str> {
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
    ) -> io::Result<()> {
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

fn cell_for_people(v: &Value, kind: Kind, zone: Tz) -> Cow<'_, str> {
    match (v, kind) {
        (Value::Null, _) => "-".into(),
        (Value::Int(n), Kind::Bytes) => human_bytes(*n).into(),
        (Value::Int(n), Kind::DurationMs) => human_duration(*n).into(),
        (Value::Int(n), Kind::Bool) => if *n != 0 { "yes" } else { "no" }.into(),
        (Value::Int(n), _) => n.to_string().into(),
        (Value::Time(t), _) => zone_time(*t, zone).into(),
        (Value::Text(t), _) => for_people(t),
    }
}

/// A cell as JSON: written straight from the row, with no copy of its text.
struct JsonCell<'a>(&'a Value, Kind);

impl serde::Serialize for JsonCell<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (Value::Null, _) => s.serialize_unit(),
            (Value::Int(n), Kind::Bool) => s.serialize_bool(*n != 0),
            (Value::Int(n), _) => match (i64::try_from(*n), u64::try_from(*n)) {
                (Ok(n), _) => s.serialize_i64(n),
                (_, Ok(n)) => s.serialize_u64(n),
                // Past what JSON readers take as an exact number: exact as text.
                _ => s.collect_str(n),
            },
            (Value::Text(t), _) => s.serialize_str(t),
            (Value::Time(t), _) => s.collect_str(t),
        }
    }
}

/// A CSV cell that a spreadsheet will not run and a terminal will not obey: text (a file name,
/// a user name) is shown by [`for_people`] (a leading tab or carriage return becomes an
/// escape), and one that starts with `=`, `+`, `-` or `@` gets a leading `'`, as OWASP advises
/// against formula injection. Numbers stay numbers; JSON output stays exact.
fn csv_cell(v: &Value, kind: Kind) -> Cow<'_, str> {
    match (v, kind) {
        (Value::Null, _) => "".into(),
        (Value::Int(n), Kind::Bool) => if *n != 0 { "true" } else { "false" }.into(),
        (Value::Int(n), _) => n.to_string().into(),
        (Value::Time(t), _) => t.to_string().into(),
        (Value::Text(t), _) => match for_people(t) {
            text if text.starts_with(['=', '+', '-', '@']) => format!("'{text}").into(),
            text => text,
        },
    }
}

/// Takes report rows one at a time.
pub(crate) type Sink<'a, E> = dyn FnMut(Vec<Value>) -> Result<(), E> + 'a;
/// Hands every row of a report to a sink, once per call.
pub(crate) type Producer<'a, E> = dyn FnMut(&mut Sink<'_, E>) -> Result<(), E> + 'a;

/// Writes the rows that `produce` hands out, as they come (a table asks for them twice: once for
/// the column widths), so memory stays flat at any number of rows. Tables show times in `zone`,
/// CSV and JSON in UTC. JSON is an array with one object per line.
pub(crate) fn render_stream<E: From<io::Error>>(
    columns: &[(&'static str, Kind)],
    format: Format,
    zone: Tz,
    out: &mut dyn Write,
    produce: &mut Producer<'_, E>,
) -> Result<(), E> {
    match format {
        Format::Table => {
            // Times are the zone's, and the header says which.
            let headers: Vec<Cow<str>> = columns
                .iter()
                .map(|(name, kind)| match kind {
                    Kind::Time => format!("{name} ({})", zone.name()).into(),
                    _ => (*name).into(),
                })
                .collect();
            let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
            let mut count = 0u64;
            produce(&mut |row| {
                count += 1;
                for ((w, v), (_, k)) in widths.iter_mut().zip(&row).zip(columns) {
                    *w = (*w).max(cell_for_people(v, *k, zone).chars().count());
                }
                Ok(())
            })?;
            writeln!(out, "{}", table_line(&headers, &widths, columns))?;
            if count == 0 {
                writeln!(out, "(no rows)")?;
                return Ok(());
            }
            produce(&mut |row| {
                let cells: Vec<Cow<str>> = row
                    .iter()
                    .zip(columns)
                    .map(|(v, (_, k))| cell_for_people(v, *k, zone))
                    .collect();
                writeln!(out, "{}", table_line(&cells, &widths, columns))?;
                Ok(())
            })
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(columns.iter().map(|(n, _)| *n))
                .map_err(io::Error::from)?;
            produce(&mut |row| {
                for (v, (_, k)) in row.iter().zip(columns) {
                    w.write_field(csv_cell(v, *k).as_bytes())
                        .map_err(io::Error::from)?;
                }
                w.write_record(None::<&[u8]>).map_err(io::Error::from)?;
                Ok(())
            })?;
            w.flush()?;
            Ok(())
        }
        Format::Json => {
            use serde::ser::{SerializeMap, Serializer};
            // Keys in name order, the order of a serde_json object.
            let mut keys: Vec<(&str, usize)> = columns.iter().map(|c| c.0).zip(0..).collect();
            keys.sort_unstable();
            write!(out, "[")?;
            let mut first = true;
            produce(&mut |row| {
                out.write_all(if first { b"\n" } else { b",\n" })?;
                first = false;
                let mut json = serde_json::Serializer::with_formatter(&mut *out, JsonForPeople);
                let mut object = json.serialize_map(None).map_err(io::Error::from)?;
                for &(name, i) in keys.iter().filter(|(_, i)| *i < row.len()) {
                    let cell = JsonCell(&row[i], columns[i].1);
                    object
                        .serialize_entry(name, &cell)
                        .map_err(io::Error::from)?;
                }
                object.end().map_err(io::Error::from)?;
                Ok(())
            })?;
            writeln!(out, "{}]", if first { "" } else { "\n" })?;
            Ok(())
        }
        Format::Html => Err(E::from(io::Error::other(
            "--format html is for usage and statement",
        ))),
    }
}

/// One table line: numbers right-aligned, text left-aligned.
fn table_line<S: AsRef<str>>(values: &[S], widths: &[usize], columns: &[(&str, Kind)]) -> String {
    let parts: Vec<String> = values
        .iter()
        .zip(widths)
        .zip(columns)
        .map(|((v, w), (_, k))| {
            let v = v.as_ref();
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
pub(crate) fn render(
    report: &Report,
    format: Format,
    zone: Tz,
    out: &mut dyn Write,
) -> io::Result<()> {
    render_stream(&report.columns, format, zone, out, &mut |sink| {
        report.rows.iter().try_for_each(|row| sink(row.clone()))
    })
}

/// The reports, as every store answers them through [`ReportStore`]'s queries: the store runs
/// SQL and streams cells, and this module decides what to ask and what the rows mean.
pub(crate) trait Reports: ReportStore {
    /// The rows of the sessions or transfers report, one at a time, in the columns of
    /// [`RowsReport::columns`].
    fn stream_report(
        &mut self,
        which: RowsReport,
        filter: &Filter,
        sink: &mut RowSink<'_>,
    ) -> storage::Result<()> {
        let (sql, raw) = which.sql(self.dialect(), filter);
        self.stream_rows(
            &sql,
            &raw,
            filter,
            &mut |row| match which.finish_row(&raw, row, filter) {
                Some(row) => sink(row),
                None => Ok(()),
            },
        )
    }

    /// The usage sums, from the hourly rollups: the whole UTC hours of the window from
    /// `usage_hourly`, the part hours at its ends (and any hour that straddles a day or month of
    /// the zone) from the rows; read from a table a few hundred times smaller than the rows.
    /// `from_rows`: summed from every session and transfer row while they stream by (memory is
    /// the number of groups, not of rows), the reference the rollups must equal.
    fn usage_sums(
        &mut self,
        filter: &Filter,
        by: Period,
        from_rows: bool,
    ) -> storage::Result<UsageSums> {
        let mut sums = UsageSums::new(by, filter.zone());
        let plan = match RollupPlan::new(filter) {
            Some(plan) if !from_rows && !self.rollups_pending()? => plan,
            _ => {
                add_usage_rows(self, filter, &mut sums)?;
                return Ok(sums);
            }
        };
        for edge in &plan.edges {
            add_usage_rows(self, edge, &mut sums)?;
        }
        let (sql, columns) = usage_rollup_sql(self.dialect(), &plan.hours);
        let mut straddling = std::collections::BTreeSet::new();
        self.stream_rows(&sql, &columns, &plan.hours, &mut |row| {
            if !sums.add_hour(&row)
                && let Value::Time(hour) = row[0]
            {
                straddling.insert(hour);
            }
            Ok(())
        })?;
        // Each hour the rollups cannot serve ([`UsageSums::add_hour`]) is read from its rows.
        for hour in straddling {
            if let Some(end) = hour.0.checked_add(Micros::HOUR) {
                let window = Filter {
                    since: Some(hour),
                    until: Some(Micros(end)),
                    ..plan.hours.clone()
                };
                add_usage_rows(self, &window, &mut sums)?;
            }
        }
        Ok(sums)
    }

    /// The `limit` largest transfers of the window, biggest first, for the HTML statement.
    fn largest_transfers(
        &mut self,
        filter: &Filter,
        limit: u32,
    ) -> storage::Result<Vec<crate::accounting::html::LargeTransfer>> {
        let (sql, columns) = largest_transfers_sql(self.dialect(), filter, limit);
        let zone = filter.zone();
        let mut out = Vec::new();
        self.stream_rows(&sql, &columns, filter, &mut |row| {
            out.push(crate::accounting::html::LargeTransfer {
                opened: match row[0] {
                    Value::Time(t) => zone_time(t, zone),
                    _ => String::new(),
                },
                host: row[1].text().to_owned(),
                user: row[2].text().to_owned(),
                path: row[3].text().to_owned(),
                direction: row[4].text().to_owned(),
                bytes: row[5].int() + row[6].int(),
                complete: row[7].int() != 0,
            });
            Ok(())
        })?;
        Ok(out)
    }
}

impl<T: ReportStore + ?Sized> Reports for T {}

fn add_usage_rows<S: ReportStore + ?Sized>(
    store: &mut S,
    filter: &Filter,
    sums: &mut UsageSums,
) -> storage::Result<()> {
    let (sql, columns) = usage_rows_sql(store.dialect(), filter);
    store.stream_rows(&sql, &columns, filter, &mut |row| {
        sums.add(&row);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let at = |text: &str| Micros(parse::storage_micros(text).unwrap());
        assert_eq!(
            parse_time_bound("7d", now, false, Tz::UTC).unwrap(),
            at("2026-11-19T12:00:00.000000Z")
        );
        assert_eq!(
            parse_time_bound("12h", now, false, Tz::UTC).unwrap(),
            at("2026-11-26T00:00:00.000000Z")
        );
        assert_eq!(
            parse_time_bound("2026-11-26T10:00:00+01:00", now, false, Tz::UTC).unwrap(),
            at("2026-11-26T09:00:00.000000Z")
        );
        let day_start = parse_time_bound("2026-11-26", now, false, Tz::UTC).unwrap();
        let day_end = parse_time_bound("2026-11-26", now, true, Tz::UTC).unwrap();
        let span = day_end.0 - day_start.0;
        assert!((23 * Micros::HOUR..=25 * Micros::HOUR).contains(&span));
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
