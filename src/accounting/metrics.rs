//! `sftpd-report metrics`: the database's totals in the Prometheus text exposition format, for
//! node_exporter's textfile collector or a scrape of follow mode's `/metrics`.
//!
//! Everything comes from the database (the hourly rollups, a few indexed counts, the ingest
//! counters), so every server feeding one store shows the same numbers. User and host names
//! are the partner's bytes: label values are escaped, so no name can add a line or a label.

use crate::accounting::report::{Filter, Kind, Period, Reports, Value};
use crate::accounting::sql::columns;
use crate::accounting::storage::{ReportStore, Result};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its samples by label set.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: BTreeMap<Vec<(&'static str, String)>, i128>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            samples: BTreeMap::new(),
        }
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, value: i128) {
        *self.samples.entry(labels).or_default() += value;
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(out, "{} {value}", self.name);
            } else {
                let _ = writeln!(out, "{}{{{}}} {value}", self.name, labels.join(","));
            }
        }
    }
}

/// Adds to `family` the counts that `sql` selects: rows of label values (named `names`) and a
/// count, each sample with the `extra` label too. `sql`'s WHERE clause ends with the always-true
/// window of the default filter, which names the four report parameters.
fn add_counts<S: ReportStore + ?Sized>(
    store: &mut S,
    family: &mut Family,
    sql: &str,
    names: &[&'static str],
    extra: Option<(&'static str, &str)>,
) -> Result<()> {
    let mut columns: Vec<_> = names.iter().map(|n| (*n, Kind::Text)).collect();
    columns.push(("n", Kind::Int));
    store.stream_rows(sql, &columns, &Filter::default(), &mut |row| {
        let mut labels: Vec<_> = names
            .iter()
            .zip(&row)
            .map(|(n, v)| (*n, v.text().to_owned()))
            .collect();
        labels.extend(extra.map(|(k, v)| (k, v.to_owned())));
        family.add(labels, row[names.len()].int());
        Ok(())
    })
}

/// The whole exposition, from the database.
pub(crate) fn render<S: ReportStore + ?Sized>(store: &mut S) -> Result<String> {
    let [sessions, files, bytes, unknown] = usage_families(store)?;
    // A WHERE condition that holds for every row and names the four report parameters (all
    // unset), which every query run through `stream_rows` binds.
    let always = store.dialect().window("", &Filter::default());
    let [refused, failed, active] = count_families(store, &always)?;
    let [lines, last] = ingest_families(store, &always)?;

    let mut out = String::new();
    for family in [
        &sessions, &refused, &files, &bytes, &unknown, &failed, &active, &lines, &last,
    ] {
        family.write(&mut out);
    }
    Ok(out)
}

/// Sessions, files, bytes and transfers of unknown bytes, from the usage sums.
fn usage_families<S: ReportStore + ?Sized>(store: &mut S) -> Result<[Family; 4]> {
    let all = Filter {
        zone: Some(chrono_tz::Tz::UTC),
        ..Filter::default()
    };
    let usage = store.usage_sums(&all, Period::Month, false)?;
    let mut sessions = Family::new(
        "sftpd_sessions_total",
        "counter",
        "SFTP sessions (refused ones not included) by host and user.",
    );
    let mut files = Family::new(
        "sftpd_files_total",
        "counter",
        "Files transferred by host, user and direction; complete=\"false\" for transfers cut by the session's end or a failure.",
    );
    let mut bytes = Family::new(
        "sftpd_bytes_total",
        "counter",
        "Bytes moved by host, user and direction (up: written by the partner; partial transfers included).",
    );
    let mut unknown = Family::new(
        "sftpd_files_bytes_unknown_total",
        "counter",
        "Transfers whose close line was cut at 500 characters: their bytes are not known.",
    );
    for ((_, host, user), g) in usage.groups() {
        // Host and user, then `more` labels.
        let who = |more: &[(&'static str, &str)]| {
            let mut labels = vec![("host", host.clone()), ("user", user.clone())];
            labels.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
            labels
        };
        sessions.add(who(&[]), g.sessions);
        for (direction, complete, n) in [
            ("up", "true", g.files_up),
            ("up", "false", g.files_up_incomplete),
            ("down", "true", g.files_down),
            ("down", "false", g.files_down_incomplete),
        ] {
            files.add(who(&[("direction", direction), ("complete", complete)]), n);
        }
        for (direction, n) in [("up", g.bytes_up), ("down", g.bytes_down)] {
            bytes.add(who(&[("direction", direction)]), n);
        }
        unknown.add(who(&[]), g.files_bytes_unknown);
    }
    Ok([sessions, files, bytes, unknown])
}

/// Refusals by host and by whom, failures by host and user, and active sessions by host.
fn count_families<S: ReportStore + ?Sized>(store: &mut S, always: &str) -> Result<[Family; 3]> {
    let mut refused = Family::new(
        "sftpd_sessions_refused_total",
        "counter",
        "Sessions refused, by host and by whom: the wrapper (a command other than SFTP, a loader variable, ...) or the pre-session hook.",
    );
    let wrapper = format!(
        "SELECT o.host, CAST(COUNT(*) AS BIGINT) FROM operations o
                  WHERE o.kind = 'denied' AND {always} GROUP BY o.host"
    );
    let hook = format!(
        "SELECT s.host, CAST(COUNT(*) AS BIGINT) FROM sessions s
                  WHERE s.end_reason = 'refused' AND {always} GROUP BY s.host"
    );
    for (by, sql) in [("wrapper", wrapper), ("pre_session_hook", hook)] {
        add_counts(store, &mut refused, &sql, &["host"], Some(("by", by)))?;
    }
    let mut failed = Family::new(
        "sftpd_failed_operations_total",
        "counter",
        "SFTP requests answered with a failure (opens, removes, renames, ...) by host and user.",
    );
    let operations = format!(
        "SELECT o.host, COALESCE(o.\"user\", ''), CAST(COUNT(*) AS BIGINT) FROM operations o
          WHERE o.failed AND o.kind <> 'denied' AND {always} GROUP BY o.host, o.\"user\""
    );
    add_counts(store, &mut failed, &operations, &["host", "user"], None)?;
    let transfers = format!(
        "SELECT s.host, COALESCE(s.\"user\", ''), CAST(COUNT(*) AS BIGINT)
           FROM transfers t JOIN sessions s ON s.id = t.session_id
          WHERE t.failed AND {always} GROUP BY s.host, s.\"user\""
    );
    add_counts(store, &mut failed, &transfers, &["host", "user"], None)?;
    let mut active = Family::new(
        "sftpd_active_sessions",
        "gauge",
        "Sessions whose start is in the log and whose end is not (yet), by host.",
    );
    let open = format!(
        "SELECT s.host, CAST(COUNT(*) AS BIGINT) FROM sessions s
              WHERE {ended} IS NULL AND s.end_reason = 'missing_end' AND {always}
              GROUP BY s.host",
        ended = store.dialect().time_col("s.ended_at"),
    );
    add_counts(store, &mut active, &open, &["host"], None)?;
    Ok([refused, failed, active])
}

/// Lines ingested by outcome, and the newest commit, from the ingest counters.
fn ingest_families<S: ReportStore + ?Sized>(store: &mut S, always: &str) -> Result<[Family; 2]> {
    let mut lines = Family::new(
        "sftpd_ingest_lines_total",
        "counter",
        "Log lines (or journal entries) ingested, by outcome: parsed, skipped (not understood, foreign or not taken), or refused (older than what was already ingested from their host: not billed).",
    );
    let mut last = Family::new(
        "sftpd_ingest_last_commit_timestamp_seconds",
        "gauge",
        "When an ingest last committed new lines (Unix time).",
    );
    let (mut read, mut skipped, mut refused) = (0, 0, 0);
    let sql = format!("SELECT c.name, c.value, c.updated_at FROM ingest_counters c WHERE {always}");
    let columns = columns![name: Text, value: Int, at: Time];
    store.stream_rows(&sql, &columns, &Filter::default(), &mut |row| {
        match row[0].text() {
            "lines_read" => read = row[1].int(),
            "lines_skipped" => skipped = row[1].int(),
            "lines_refused" => refused = row[1].int(),
            _ => {}
        }
        if let Value::Time(at) = row[2] {
            let seconds = i128::from(at.0.div_euclid(1_000_000));
            let newest = last.samples.entry(Vec::new()).or_default();
            *newest = (*newest).max(seconds);
        }
        Ok(())
    })?;
    lines.add(vec![("outcome", "parsed".to_owned())], read - skipped);
    lines.add(vec![("outcome", "skipped".to_owned())], skipped);
    lines.add(vec![("outcome", "refused".to_owned())], refused);
    Ok([lines, last])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_cannot_break_the_format() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut f = Family::new("x_total", "counter", "x");
        f.add(
            vec![("user", "evil\"} 1\nx_total{user=\"ceo".to_owned())],
            5,
        );
        let mut out = String::new();
        f.write(&mut out);
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(
            out.ends_with("x_total{user=\"evil\\\"} 1\\nx_total{user=\\\"ceo\"} 5\n"),
            "{out}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_name_is_one_sample_line(name in "\\PC*|[\\\\\"\n{}=,]{0,12}") {
            let mut f = Family::new("x_total", "counter", "x");
            f.add(vec![("user", name.clone())], 1);
            let mut out = String::new();
            f.write(&mut out);
            let sample = out.lines().nth(2).unwrap();
            proptest::prop_assert_eq!(out.lines().count(), 3);
            // The label value ends at the first unescaped quote: the one before `}`.
            let inner = sample.strip_prefix("x_total{user=\"").unwrap().strip_suffix("\"} 1").unwrap();
            let mut unescaped = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                proptest::prop_assert_ne!(c, '"');
                if c == '\\' {
                    match chars.next() {
                        Some('n') => unescaped.push('\n'),
                        Some(e) => unescaped.push(e),
                        None => proptest::prop_assert!(false, "dangling escape"),
                    }
                } else {
                    unescaped.push(c);
                }
            }
            proptest::prop_assert_eq!(unescaped, name);
        }
    }
}
