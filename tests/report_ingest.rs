//! The shared storage suite: ingest guarantees and reports on generated logs, run against the
//! embedded SQLite store and a real PostgreSQL server alike, through the real sftpd-report
//! binary. Exact totals, idempotence, checkpoints across rotation and compression, stdin, a
//! kill -9 mid-ingest, concurrent runs, report filters and formats, and copy.

mod common;

use common::loggen::{self, UserTotals};
use common::pg::PgServer;
use common::{Follower, ingest, report_json, sftpd_report};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where a test's database lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of `backend`: a path in `dir`, or a new PostgreSQL database.
fn new_db(backend: Backend, dir: &Path, name: &str) -> String {
    match backend {
        Backend::Sqlite => dir.join(format!("{name}.db")).display().to_string(),
        Backend::Postgres => PgServer::shared().create_db(),
    }
}

const DUMP_SQLITE: [&str; 4] = [
    "SELECT host, user, client_ip, client_port, local_ip, local_port, started_at, ended_at, duration_ms,
            exit_status, signal, end_reason, source, sid, pid, sftp_pid, auth_method, auth_key, sftp_closed,
            origin_pid, origin_uid, origin_command
       FROM sessions ORDER BY host, pid, started_at",
    "SELECT s.host, s.pid, s.started_at, hex(t.path), NULLIF(hex(t.renamed_to), ''), NULLIF(hex(t.reached), ''), t.direction, t.counts_as, t.open_flags, t.mode, t.bytes_read,
            t.bytes_written, t.opened_at, t.closed_at, t.forced, t.failed, t.complete, t.counters_cut
       FROM transfers t JOIN sessions s ON s.id = t.session_id
      ORDER BY s.host, s.pid, s.started_at, t.opened_at, hex(t.path), t.closed_at, t.bytes_read, t.bytes_written",
    "SELECT o.host, s.pid, s.started_at, o.user, o.at, o.kind, hex(o.path), hex(o.target), o.detail, o.failed, o.status
       FROM operations o LEFT JOIN sessions s ON s.id = o.session_id
      ORDER BY o.host, s.pid, s.started_at, o.at, o.kind, hex(o.path), o.detail",
    "SELECT hour, host, user, sessions, duration_ms_high, duration_ms_low, files_up, files_up_incomplete,
            files_down, files_down_incomplete, bytes_up_high, bytes_up_low, bytes_down_high, bytes_down_low,
            files_bytes_unknown
       FROM usage_hourly ORDER BY hour, host, user",
];

const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

fn dump_pg() -> [String; 4] {
    let t = |c: &str| format!("to_char({c} AT TIME ZONE 'UTC', {TS})");
    let b = |c: &str| format!("CASE WHEN {c} THEN 1 ELSE 0 END");
    let h = |c: &str| format!("upper(encode({c}, 'hex'))");
    [
        format!(
            "SELECT host, \"user\", client_ip, client_port, local_ip, local_port, {}, {}, duration_ms,
                    exit_status, signal, end_reason, source, sid, pid, sftp_pid, auth_method, auth_key, {},
                    origin_pid, origin_uid, origin_command
               FROM sessions ORDER BY host, pid, started_at",
            t("started_at"),
            t("ended_at"),
            b("sftp_closed")
        ),
        format!(
            "SELECT s.host, s.pid, {}, {}, {}, {}, t.direction, t.counts_as, t.open_flags, t.mode, t.bytes_read, t.bytes_written,
                    {}, {}, {}, {}, {}, {}
               FROM transfers t JOIN sessions s ON s.id = t.session_id
              ORDER BY s.host, s.pid, s.started_at, t.opened_at, {}, t.closed_at NULLS FIRST,
                       t.bytes_read NULLS FIRST, t.bytes_written NULLS FIRST",
            t("s.started_at"),
            h("t.path"),
            h("t.renamed_to"),
            h("t.reached"),
            t("t.opened_at"),
            t("t.closed_at"),
            b("t.forced"),
            b("t.failed"),
            b("t.complete"),
            b("t.counters_cut"),
            h("t.path")
        ),
        format!(
            "SELECT o.host, s.pid, {}, o.\"user\", {}, o.kind, {}, {}, o.detail, {}, o.status
               FROM operations o LEFT JOIN sessions s ON s.id = o.session_id
              ORDER BY o.host, s.pid NULLS FIRST, s.started_at NULLS FIRST, o.at, o.kind, {} NULLS FIRST,
                       o.detail NULLS FIRST",
            t("s.started_at"),
            t("o.at"),
            h("o.path"),
            h("o.target"),
            b("o.failed"),
            h("o.path")
        ),
        format!(
            "SELECT {}, host, \"user\", sessions, duration_ms_high, duration_ms_low, files_up,
                    files_up_incomplete, files_down, files_down_incomplete, bytes_up_high, bytes_up_low,
                    bytes_down_high, bytes_down_low, files_bytes_unknown
               FROM usage_hourly ORDER BY hour, host, \"user\"",
            t("hour")
        ),
    ]
}

/// Everything in the database that a report could show, in a canonical order, without row ids,
/// in the same text for both backends.
fn dump(db: &str) -> String {
    let mut out = String::new();
    if db.starts_with("postgres://") {
        let mut client = postgres::Client::connect(db, postgres::NoTls).unwrap();
        for sql in dump_pg() {
            for row in client.query(sql.as_str(), &[]).unwrap() {
                let cells: Vec<String> = (0..row.len())
                    .map(|i| {
                        if let Ok(v) = row.try_get::<_, Option<i64>>(i) {
                            return v.map_or("NULL".into(), |v| v.to_string());
                        }
                        if let Ok(v) = row.try_get::<_, Option<i32>>(i) {
                            return v.map_or("NULL".into(), |v| v.to_string());
                        }
                        row.try_get::<_, Option<String>>(i)
                            .unwrap()
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect();
                out.push_str(&cells.join("|"));
                out.push('\n');
            }
            out.push_str("--\n");
        }
        return out
            .replace("|\n", "|NULL\n")
            .replace("||", "|NULL|")
            .replace("||", "|NULL|");
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    for sql in DUMP_SQLITE {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                })
                .collect();
            out.push_str(&cells.join("|"));
            out.push('\n');
        }
        out.push_str("--\n");
    }
    out.replace("|\n", "|NULL\n")
        .replace("||", "|NULL|")
        .replace("||", "|NULL|")
}

/// Compares two dumps and names the first line that differs, rather than printing both.
#[track_caller]
fn assert_same(got: &str, want: &str) {
    if got == want {
        return;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let i = g
        .iter()
        .zip(&w)
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(w.len()));
    panic!(
        "databases differ at dump line {i} ({} vs {} lines):\n got: {}\nwant: {}",
        g.len(),
        w.len(),
        g.get(i).unwrap_or(&"<end>"),
        w.get(i).unwrap_or(&"<end>")
    );
}

/// Per host and user, from `sftpd-report usage --by month --format json`.
fn usage_totals(db: &str) -> BTreeMap<(String, String), UserTotals> {
    let out = sftpd_report(db, &["usage", "--by", "month", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut totals: BTreeMap<(String, String), UserTotals> = BTreeMap::new();
    for r in rows.as_array().unwrap() {
        let t = totals
            .entry((
                r["host"].as_str().unwrap().to_owned(),
                r["user"].as_str().unwrap().to_owned(),
            ))
            .or_default();
        t.sessions += r["sessions"].as_i64().unwrap();
        t.files_up += r["files_up"].as_i64().unwrap();
        t.files_down += r["files_down"].as_i64().unwrap();
        t.bytes_up += r["bytes_up"].as_i64().unwrap();
        t.bytes_down += r["bytes_down"].as_i64().unwrap();
    }
    totals
}

/// Declares one test per backend for a check that takes the backend.
macro_rules! on_both_backends {
    ($check:ident) => {
        mod $check {
            use super::*;
            #[test]
            fn sqlite() {
                super::$check(Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                require_pg!();
                super::$check(Backend::Postgres);
            }
        }
    };
}

fn exact_totals_and_a_second_run_adds_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(20_000, 40, 1);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let db = new_db(backend, dir.path(), "db");
    let summary = ingest(&db, &[&path]);
    assert!(
        summary.contains(&format!("lines read {}", log.lines.len())),
        "{summary}"
    );
    assert_eq!(usage_totals(&db), log.totals);
    let sessions = sftpd_report(&db, &["sessions", "--format", "json"]);
    let sessions: serde_json::Value = serde_json::from_slice(&sessions.stdout).unwrap();
    for s in sessions.as_array().unwrap() {
        assert_eq!(s["end"], "closed", "{s}");
        assert_eq!(
            s["auth"], "publickey",
            "every generated session has its sshd Accepted line: {s}"
        );
    }
    let before = dump(&db);
    let again = ingest(&db, &[&path]);
    assert!(
        again.contains("lines read 0") && again.contains("sessions 0"),
        "{again}"
    );
    assert_same(&dump(&db), &before);
}
on_both_backends!(exact_totals_and_a_second_run_adds_nothing);

fn rotation_compression_and_appends_equal_one_clean_run(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(6_000, 25, 2);
    let lines = &log.lines;
    let (a, rest) = lines.split_at(2_000);
    let (b, c) = rest.split_at(1_500);

    let clean_db = new_db(backend, dir.path(), "clean");
    let all = dir.path().join("all.log");
    fs::write(&all, loggen::text(lines)).unwrap();
    ingest(&clean_db, &[&all]);

    // The live file gets part a, is ingested (the logrotate prerotate hook), gets part b and a
    // half-written line, is ingested again, then is rotated; part c goes to a new live file.
    // Sessions run across both files.
    let db = new_db(backend, dir.path(), "rotated");
    let live = dir.path().join("sftpd.log");
    fs::write(&live, loggen::text(a)).unwrap();
    ingest(&db, &[&live]);
    let mut f = fs::OpenOptions::new().append(true).open(&live).unwrap();
    f.write_all(loggen::text(b).as_bytes()).unwrap();
    let (partial_head, partial_tail) = c[0].split_at(20);
    f.write_all(partial_head.as_bytes()).unwrap();
    drop(f);
    ingest(&db, &[&live]);
    let mut f = fs::OpenOptions::new().append(true).open(&live).unwrap();
    f.write_all(partial_tail.as_bytes()).unwrap();
    f.write_all(b"\n").unwrap();
    drop(f);
    let rotated = dir.path().join("sftpd.log.1");
    fs::rename(&live, &rotated).unwrap();
    fs::write(&live, loggen::text(&c[1..])).unwrap();
    // Both at once, newest named first: ingest orders them by their first line.
    ingest(&db, &[&live, &rotated]);
    assert_same(&dump(&db), &dump(&clean_db));

    // The rotated file compressed, and the new file again: already ingested, nothing changes.
    let gz = dir.path().join("sftpd.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&fs::read(&rotated).unwrap()).unwrap();
    enc.finish().unwrap();
    let summary = ingest(&db, &[&gz, &live]);
    assert!(summary.contains("lines read 0"), "{summary}");
    assert_same(&dump(&db), &dump(&clean_db));

    // A gz that was never ingested reads like the plain file.
    let gz_db = new_db(backend, dir.path(), "gz");
    let whole_gz = dir.path().join("all.log.gz");
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(&whole_gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(loggen::text(lines).as_bytes()).unwrap();
    enc.finish().unwrap();
    ingest(&gz_db, &[&whole_gz]);
    assert_same(&dump(&gz_db), &dump(&clean_db));
}
on_both_backends!(rotation_compression_and_appends_equal_one_clean_run);

fn stdin_is_read_and_checkpointed_too(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(3_000, 10, 3);
    let db = new_db(backend, dir.path(), "s");
    for expect_new in [true, false] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
            .args([
                "--db",
                &db,
                "--config",
                "/nonexistent/x.toml",
                "ingest",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(loggen::text(&log.lines).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let summary = String::from_utf8_lossy(&out.stdout);
        assert_eq!(summary.contains("lines read 0"), !expect_new, "{summary}");
    }
    assert_eq!(usage_totals(&db), log.totals);
}
on_both_backends!(stdin_is_read_and_checkpointed_too);

fn kill_9_mid_ingest_then_rerun_equals_a_clean_run(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(60_000, 60, 4);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let clean_db = new_db(backend, dir.path(), "clean");
    ingest(&clean_db, &[&path]);

    // Transactions of 500 lines: killed between two commits, or nearly. Of 20,000 lines: a
    // transaction holds several full batches, so the kill lands while the ingest reads on and a
    // batch is being written in the background.
    for (name, batch_lines) in [("crash", 500), ("crash-mid-batch", 20_000)] {
        let db = new_db(backend, dir.path(), name);
        let mut child = spawn_ingest_in_batches(&db, &path, batch_lines, Stdio::inherit());
        // Kill it once some batches are committed and before it is done.
        let mut killed_mid_way = false;
        if let Some(lines) = wait_for_a_commit(&db) {
            killed_mid_way = (lines as usize) < log.lines.len();
            if batch_lines > 500 {
                // The writing thread is alive: a batch is being written right now.
                killed_mid_way &= wait_for_threads(child.id(), 2);
            }
            child.kill().unwrap();
        }
        let _ = child.wait();
        assert!(
            killed_mid_way,
            "{name}: the ingest finished before it could be killed"
        );
        ingest(&db, &[&path]);
        assert_same(&dump(&db), &dump(&clean_db));
        assert_eq!(usage_totals(&db), log.totals);
    }
}
on_both_backends!(kill_9_mid_ingest_then_rerun_equals_a_clean_run);

/// Polls (about 10 s at most) until process `pid` runs `n` threads or more.
fn wait_for_threads(pid: u32, n: usize) -> bool {
    for _ in 0..100_000 {
        match fs::read_dir(format!("/proc/{pid}/task")).map(Iterator::count) {
            Ok(threads) if threads >= n => return true,
            Ok(_) => std::thread::sleep(Duration::from_micros(100)),
            Err(_) => return false,
        }
    }
    false
}

/// `sftpd-report ingest PATH` in batches of 500 lines, so a test can act between two commits.
fn spawn_ingest_in_small_batches(db: &str, path: &Path, stderr: Stdio) -> std::process::Child {
    spawn_ingest_in_batches(db, path, 500, stderr)
}

/// `sftpd-report ingest PATH` committing every `lines` lines.
fn spawn_ingest_in_batches(
    db: &str,
    path: &Path,
    lines: usize,
    stderr: Stdio,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .args([
            "--db",
            db,
            "--config",
            "/nonexistent/x.toml",
            "ingest",
            "--batch-lines",
            &lines.to_string(),
        ])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Polls (every 2 ms, about 10 s at most) until a batch is committed; the lines committed.
fn wait_for_a_commit(db: &str) -> Option<i64> {
    for _ in 0..5000 {
        if let Some(lines) = committed_lines(db)
            && lines > 0
        {
            return Some(lines);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// How many lines the (single) checkpoint says are committed.
fn committed_lines(db: &str) -> Option<i64> {
    try_query_i64(db, "SELECT lines FROM checkpoints")
        .ok()
        .flatten()
}

fn concurrent_ingests_wait_and_equal_sequential_ones(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let a = loggen::generate(30_000, 30, 5);
    let b = loggen::generate(30_000, 30, 6);
    let pa = dir.path().join("a.log");
    let pb = dir.path().join("b.log");
    // Distinct hosts, as when several servers feed one database.
    fs::write(&pa, loggen::text(&a.lines).replace(" sftp", " east-sftp")).unwrap();
    fs::write(&pb, loggen::text(&b.lines).replace(" sftp", " west-sftp")).unwrap();

    // Hold the lock as another ingest would: a second one says it waits, then finishes.
    let db = new_db(backend, dir.path(), "c");
    let spec = sftpd_wrapper::accounting::storage::DbSpec::parse(&db).unwrap();
    let mut holder = sftpd_wrapper::accounting::storage::open(&spec, None).unwrap();
    holder.lock_for_ingest(false).unwrap();
    let busy = sftpd_report(&db, &["ingest", "--no-wait", pa.to_str().unwrap()]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("another sftpd-report ingest is running")
    );
    let waiting = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .args(["--db", &db, "--config", "/nonexistent/x.toml", "ingest"])
        .arg(&pa)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(holder);
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting"));

    // Several at once.
    let together = new_db(backend, dir.path(), "together");
    let spawn = |p: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
            .args([
                "--db",
                &together,
                "--config",
                "/nonexistent/x.toml",
                "ingest",
            ])
            .arg(p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let children = [spawn(&pa), spawn(&pb), spawn(&pa), spawn(&pb)];
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let sequential = new_db(backend, dir.path(), "seq");
    ingest(&sequential, &[&pa]);
    ingest(&sequential, &[&pb]);
    assert_same(&dump(&together), &dump(&sequential));
}
on_both_backends!(concurrent_ingests_wait_and_equal_sequential_ones);

fn report_commands_filter_and_format(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(5_000, 10, 7);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let db = new_db(backend, dir.path(), "r");
    ingest(&db, &[&path]);

    let out = sftpd_report(
        &db,
        &[
            "usage", "--by", "month", "--user", "acme", "--format", "csv",
        ],
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "month,zone,host,user,sessions,files_up,files_up_incomplete,files_down,\
             files_down_incomplete,bytes_up,bytes_down,files_bytes_unknown,duration"
        )
    );
    let mut bytes_up = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[3], "acme");
        bytes_up += cells[9].parse::<i64>().unwrap();
    }
    let expected: i64 = log
        .totals
        .iter()
        .filter(|((_, u), _)| u == "acme")
        .map(|(_, t)| t.bytes_up)
        .sum();
    assert_eq!(bytes_up, expected);

    let out = sftpd_report(&db, &["sessions", "--host", "sftp2", "--format", "table"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("started"), "{table}");
    assert!(
        table.lines().skip(1).all(|l| l.contains(" sftp2 ")),
        "{table}"
    );
    assert!(table.contains(" MiB") || table.contains(" KiB"));

    let out = sftpd_report(
        &db,
        &["transfers", "--path", "*/batch 3-0.csv", "--format", "json"],
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!rows.as_array().unwrap().is_empty());
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["path"].as_str().unwrap().ends_with("/batch 3-0.csv"))
    );

    // Generated lines are in November; a window after it is empty, one around it is not.
    let out = sftpd_report(&db, &["sessions", "--format", "json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let year = all[0]["started"].as_str().unwrap()[..4].to_owned();
    let out = sftpd_report(
        &db,
        &[
            "sessions",
            "--since",
            &format!("{year}-12-01"),
            "--format",
            "json",
        ],
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    let out = sftpd_report(
        &db,
        &[
            "sessions",
            "--since",
            &format!("{year}-11-01"),
            "--until",
            &format!("{year}-11-30"),
            "--format",
            "json",
        ],
    );
    let window: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions: i64 = log.totals.values().map(|t| t.sessions).sum();
    assert_eq!(window.as_array().unwrap().len() as i64, sessions);

    let bad = sftpd_report(&db, &["sessions", "--since", "last tuesday"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
    let bad = sftpd_report(&db, &["transfers", "--path", "[oops"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid glob"));
}
on_both_backends!(report_commands_filter_and_format);

/// The same log gives the same rows in SQLite and in PostgreSQL, and the same reports. It is
/// long enough for full batches written in the background and for closes, failures and ended
/// sessions of rows that earlier batches wrote.
#[test]
fn both_backends_store_the_same_rows() {
    require_pg!();
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(60_000, 30, 8);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let lite = new_db(Backend::Sqlite, dir.path(), "lite");
    let pg = new_db(Backend::Postgres, dir.path(), "pg");
    ingest(&lite, &[&path]);
    ingest(&pg, &[&path]);
    assert_same(&dump(&pg), &dump(&lite));
    for args in [
        &["usage", "--by", "day", "--format", "csv"][..],
        &["sessions", "--format", "csv"],
        &["transfers", "--format", "csv"],
    ] {
        let a = sftpd_report(&lite, args);
        let b = sftpd_report(&pg, args);
        assert!(
            a.status.success() && b.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&b.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&b.stdout),
            String::from_utf8_lossy(&a.stdout),
            "{args:?}"
        );
    }
}

/// `copy` moves an embedded store into the central one; running it again adds nothing, and
/// it joins what the central store already has from other servers.
#[test]
fn copy_sqlite_into_postgres_without_duplicates() {
    require_pg!();
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(8_000, 20, 9);
    let other = loggen::generate(4_000, 20, 10);
    let path = dir.path().join("sftpd.log");
    let other_path = dir.path().join("other.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    fs::write(
        &other_path,
        loggen::text(&other.lines).replace(" sftp", " remote-sftp"),
    )
    .unwrap();
    let lite = new_db(Backend::Sqlite, dir.path(), "lite");
    ingest(&lite, &[&path]);
    let pg = new_db(Backend::Postgres, dir.path(), "pg");
    ingest(&pg, &[&other_path]);
    let expected = new_db(Backend::Postgres, dir.path(), "expected");
    ingest(&expected, &[&other_path, &path]);

    let from = format!("sqlite://{lite}");
    for run in 0..2 {
        let out = sftpd_report(&pg, &["copy", "--from", &from, "--to", &pg]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if run == 1 {
            assert!(text.contains("sessions copied 0"), "{text}");
        }
        assert_same(&dump(&pg), &dump(&expected));
    }
    // The checkpoints came along: ingesting the copied log into the central store adds nothing.
    let again = ingest(&pg, &[&path]);
    assert!(again.contains("lines read 0"), "{again}");
}

#[test]
fn postgres_connection_errors_are_one_clear_line_and_hide_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sftpd.log");
    fs::write(&log, loggen::text(&loggen::generate(100, 2, 11).lines)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://acct:hunter2@127.0.0.1:{port}/sftp");
    let out = sftpd_report(&url, &["ingest", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("postgres://acct:***@127.0.0.1:{port}/sftp")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.to_lowercase().contains("connect"), "{stderr}");

    // A password file anyone can read is refused before anything is sent.
    let pass = dir.path().join("pass");
    fs::write(&pass, "hunter2\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&pass, fs::Permissions::from_mode(0o644)).unwrap();
    let out = sftpd_report(
        &format!("postgres://acct@127.0.0.1:{port}/sftp"),
        &["--password-file", pass.to_str().unwrap(), "sessions"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

/// A restart of the server in the middle of an ingest: the run fails with a clear error, nothing
/// after the last committed batch is kept, and a re-run equals one clean run.
#[test]
fn a_postgres_restart_mid_ingest_then_rerun_equals_a_clean_run() {
    require_pg!();
    let server = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(60_000, 60, 12);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let clean = server.create_db();
    ingest(&clean, &[&path]);
    let clean_dump = dump(&clean);

    let db = server.create_db();
    let child = spawn_ingest_in_small_batches(&db, &path, Stdio::piped());
    assert!(wait_for_a_commit(&db).is_some(), "no batch was committed");
    server.restart();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the ingest did not notice the restart"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let committed = committed_lines(&db).unwrap_or(0);
    assert!((committed as usize) < log.lines.len());
    ingest(&db, &[&path]);
    assert_same(&dump(&db), &clean_dump);
}

#[test]
fn the_login_shell_links_no_database_code() {
    // The symbol table, not the bytes: debug info names every crate the library depends on.
    let symbols = |bin: &str| -> String {
        let out = Command::new("nm")
            .arg(bin)
            .output()
            .expect("nm (binutils) is needed for this test");
        assert!(
            out.status.success(),
            "nm {bin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wrapper = symbols(env!("CARGO_BIN_EXE_sftpd-wrapper"));
    // mimalloc is sftpd-report's allocator; the shell keeps the system's.
    for needle in ["sqlite3_", "rusqlite", "postgres", "tokio", "mi_malloc"] {
        let hits: Vec<&str> = wrapper
            .lines()
            .filter(|l| l.contains(needle))
            .take(3)
            .collect();
        assert!(
            hits.is_empty(),
            "sftpd-wrapper links accounting code: {hits:?}"
        );
    }
    let report = symbols(env!("CARGO_BIN_EXE_sftpd-report"));
    assert!(
        report.contains("sqlite3_open"),
        "the check itself finds SQLite where it is"
    );
    assert!(
        report.contains("postgres"),
        "the check itself finds the PostgreSQL client where it is"
    );
    assert!(
        report.contains("mi_malloc"),
        "the check itself finds mimalloc where it is"
    );
}

/// The rare paths, on both backends: sftp-server's first line before the wrapper's, a PID reused
/// by a session whose predecessor never ended, a failure between an open and its close, a session
/// refused by its pre-session hook, a forced end, and sshd's Accepted line. Both stores hold the
/// same rows.
#[test]
fn rare_paths_give_the_same_rows_in_both_backends() {
    require_pg!();
    let lines = [
        "Nov  3 10:00:00 h1 sshd[500]: Accepted publickey for acme from 192.0.2.1 port 4000 ssh2: ED25519 SHA256:abc",
        "Nov  3 10:00:00 h1 sftpd-wrapper[500]: session start sid=h1-a-500-1 user=acme client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22",
        "Nov  3 10:00:00 h1 sftp-server[501]: session opened for local user acme from [192.0.2.1]",
        "Nov  3 10:00:01 h1 sftpd-wrapper[500]: sftp-server started sid=h1-a-500-1 user=acme sftp_pid=501 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        "Nov  3 10:00:02 h1 sftp-server[501]: open \"/srv/acme/full.csv\" flags WRITE,CREATE,TRUNCATE mode 0644",
        "Nov  3 10:00:03 h1 sftp-server[501]: sent status Failure",
        "Nov  3 10:00:03 h1 sftp-server[501]: close \"/srv/acme/full.csv\" bytes read 0 written 10",
        "Nov  3 10:00:03 h1 sftp-server[501]: rename old \"/srv/acme/full.csv\" new \"/srv/acme/final.csv\"",
        "Nov  3 10:00:03 h1 sftp-server[501]: symlink old \"../final.csv\" new \"/srv/acme/out/link.csv\"",
        "Nov  3 10:00:03 h1 sftp-server[501]: open \"/srv/acme/out/link.csv\" flags READ mode 0666",
        "Nov  3 10:00:03 h1 sftp-server[501]: close \"/srv/acme/out/link.csv\" bytes read 10 written 0",
        "Nov  3 10:00:03 h1 sftp-server[501]: symlink old \"/srv/acme/secret\" new \"/srv/acme/taken\"",
        "Nov  3 10:00:03 h1 sftp-server[501]: sent status Failure",
        "Nov  3 10:00:03 h1 sftp-server[501]: open \"/srv/acme/taken\" flags READ mode 0666",
        "Nov  3 10:00:03 h1 sftp-server[501]: close \"/srv/acme/taken\" bytes read 3 written 0",
        "Nov  3 10:00:04 h1 sftp-server[501]: remove name \"/srv/acme/x\"",
        "Nov  3 10:00:04 h1 sftp-server[501]: sent status No such file",
        "Nov  3 10:00:05 h1 sftp-server[501]: open \"/srv/acme/big.bin\" flags WRITE,CREATE,TRUNCATE mode 0644",
        "Nov  3 10:00:09 h1 sftpd-wrapper[500]: session end sid=h1-a-500-1 user=acme client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22 sftp_pid=501 duration_ms=9000 signal=SIGKILL",
        "Nov  3 10:01:00 h1 sftp-server[700]: session opened for local user old from [192.0.2.9]",
        "Nov  3 10:01:01 h1 sftp-server[700]: open \"/srv/old/a\" flags READ mode 0666",
        "Nov  3 10:02:00 h1 sftp-server[700]: session opened for local user new from [192.0.2.8]",
        "Nov  3 10:02:01 h1 sftp-server[700]: close \"/srv/new/b\" bytes read 5 written 0",
        "Nov  3 10:02:02 h1 sftp-server[700]: session closed for local user new from [192.0.2.8]",
        "Nov  3 10:03:00 h1 sftpd-wrapper[800]: session start sid=h1-b-800-2 user=blocked client_ip=192.0.2.7 client_port=5000 local_ip=198.51.100.1 local_port=22",
        "Nov  3 10:03:00 h1 sftpd-wrapper[800]: hook sid=h1-b-800-2 user=blocked hook=pre_session elapsed_ms=3 result=exit status=3",
        "Nov  3 10:03:00 h1 sftpd-wrapper[800]: session refused sid=h1-b-800-2 user=blocked client_ip=192.0.2.7 client_port=5000 local_ip=198.51.100.1 local_port=22 reason=pre_session_hook",
        "Nov  3 10:04:00 h1 sftpd-wrapper[900]: session refused sid=h1-c-900-3 user=acme client_ip=192.0.2.1 client_port=5001 local_ip=198.51.100.1 local_port=22 reason=command_not_allowed command=\"id; sh\"",
        "Nov  3 10:05:00 h1 sftp-server[1000]: session opened for local user acme from [192.0.2.1]",
        "Nov  3 10:05:01 h1 sftp-server[1000]: open \"/srv/acme/still-open\" flags READ mode 0666",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rare.log");
    fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
    let lite = new_db(Backend::Sqlite, dir.path(), "lite");
    let pg = new_db(Backend::Postgres, dir.path(), "pg");
    for db in [&lite, &pg] {
        let summary = ingest(db, &[&path]);
        assert!(summary.contains("skipped 0"), "{summary}");
    }
    let dump_lite = dump(&lite);
    assert_same(&dump(&pg), &dump_lite);
    // The name full.csv was renamed to, on both stores, and through `copy`.
    let final_hex: String = "/srv/acme/final.csv"
        .bytes()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(dump_lite.contains(&format!("|{final_hex}|")), "{dump_lite}");
    // The download through a link to final.csv reached it; the link that a failure answered
    // leads nowhere.
    let hex = |s: &str| -> String { s.bytes().map(|b| format!("{b:02X}")).collect() };
    assert!(
        dump_lite.contains(&format!(
            "|{}|NULL|{final_hex}|download|",
            hex("/srv/acme/out/link.csv")
        )),
        "{dump_lite}"
    );
    assert!(
        dump_lite.contains(&format!("|{}|NULL|NULL|download|", hex("/srv/acme/taken"))),
        "{dump_lite}"
    );
    let copied = new_db(Backend::Postgres, dir.path(), "copied");
    let out = sftpd_report(
        &copied,
        &[
            "copy",
            "--from",
            &format!("sqlite://{lite}"),
            "--to",
            &copied,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&dump(&copied), &dump_lite);
    // The same lines in two files, split while big.bin is open: the second run must find the open
    // transfer in the database and force it when the session ends.
    let cut = lines.iter().position(|l| l.contains("big.bin")).unwrap() + 1;
    let (first, second) = (dir.path().join("part1.log"), dir.path().join("part2.log"));
    fs::write(&first, format!("{}\n", lines[..cut].join("\n"))).unwrap();
    fs::write(&second, format!("{}\n", lines[cut..].join("\n"))).unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = new_db(backend, dir.path(), &format!("split-{backend:?}"));
        ingest(&db, &[&first]);
        ingest(&db, &[&second]);
        assert_same(&dump(&db), &dump_lite);
    }
    let sessions: Vec<&str> = dump_lite.split("--\n").next().unwrap().lines().collect();
    assert_eq!(sessions.len(), 5, "{dump_lite}");
    // The merged wrapper session: one row, auth attached, forced by the kill.
    let acme = sessions
        .iter()
        .find(|l| l.contains("|wrapper|h1-a-500-1|"))
        .unwrap();
    assert!(
        acme.contains("|SIGKILL|forced|") && acme.contains("|publickey|"),
        "{acme}"
    );
    assert!(
        sessions
            .iter()
            .any(|l| l.contains("|old|") && l.contains("|missing_end|")),
        "{dump_lite}"
    );
    assert!(
        sessions
            .iter()
            .any(|l| l.contains("|new|") && l.contains("|closed|")),
        "{dump_lite}"
    );
    assert!(
        sessions
            .iter()
            .any(|l| l.contains("|blocked|") && l.contains("|refused|")),
        "{dump_lite}"
    );
    // The kill forced the open upload, the failed remove is marked.
    let transfer = |name: &str| -> String {
        let hex: String = name.bytes().map(|b| format!("{b:02X}")).collect();
        let section = dump_lite.split("--\n").nth(1).unwrap();
        section
            .lines()
            .find(|l| l.contains(&hex))
            .unwrap_or_else(|| panic!("{name}: {section}"))
            // Without the last column, counters_cut.
            .rsplit_once('|')
            .unwrap()
            .0
            .to_owned()
    };
    // A failure status between an open and its close answered some request, not necessarily
    // the file's (issue 27, item 4): the close proves the open worked.
    assert!(
        transfer("/srv/acme/full.csv").ends_with("|0|0|1"),
        "forced|failed|complete: {}",
        transfer("/srv/acme/full.csv")
    );
    assert!(
        transfer("/srv/acme/big.bin").ends_with("|1|0|0"),
        "{}",
        transfer("/srv/acme/big.bin")
    );
    assert!(
        transfer("/srv/new/b").ends_with("|0|0|1"),
        "{}",
        transfer("/srv/new/b")
    );
    assert!(
        dump_lite.contains("|remove|") && dump_lite.contains("|1|No such file"),
        "{dump_lite}"
    );
    assert!(
        dump_lite.contains("|denied|") && dump_lite.contains("id; sh|1|command_not_allowed"),
        "{dump_lite}"
    );
}

/// The wrapper and sftp-server are two processes, and their lines can reach the log out of order
/// (rsyslog's queue workers, relays, a starved wrapper). Each connection must still be one session.
fn lines_out_of_order_between_the_two_processes_make_one_session(backend: Backend) {
    let lines = [
        // A client killed mid-upload: the wrapper's end comes before sftp-server's last lines.
        "Nov  3 11:00:00 h1 sftpd-wrapper[600]: session start sid=h1-late-600 user=acme client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22",
        "Nov  3 11:00:00 h1 sftpd-wrapper[600]: sftp-server started sid=h1-late-600 user=acme sftp_pid=601 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        "Nov  3 11:00:00 h1 sftp-server[601]: session opened for local user acme from [192.0.2.1]",
        "Nov  3 11:00:01 h1 sftp-server[601]: open \"/srv/acme/big.bin\" flags WRITE,CREATE,TRUNCATE mode 0644",
        "Nov  3 11:00:02 h1 sftpd-wrapper[600]: session end sid=h1-late-600 user=acme client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22 sftp_pid=601 duration_ms=2000 exit_status=0",
        "Nov  3 11:00:02 h1 sftp-server[601]: forced close \"/srv/acme/big.bin\" bytes read 0 written 522240",
        "Nov  3 11:00:02 h1 sftp-server[601]: session closed for local user acme from [192.0.2.1]",
        // sftp-server's whole session before the wrapper's `sftp-server started`.
        "Nov  3 11:01:00 h1 sftpd-wrapper[700]: session start sid=h1-slow-700 user=beta client_ip=192.0.2.2 client_port=4001 local_ip=198.51.100.1 local_port=22",
        "Nov  3 11:01:00 h1 sftp-server[701]: session opened for local user beta from [192.0.2.2]",
        "Nov  3 11:01:00 h1 sftp-server[701]: open \"/srv/beta/in.csv\" flags READ mode 0666",
        "Nov  3 11:01:00 h1 sftp-server[701]: close \"/srv/beta/in.csv\" bytes read 77 written 0",
        "Nov  3 11:01:00 h1 sftp-server[701]: session closed for local user beta from [192.0.2.2]",
        "Nov  3 11:01:01 h1 sftpd-wrapper[700]: sftp-server started sid=h1-slow-700 user=beta sftp_pid=701 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        "Nov  3 11:01:01 h1 sftpd-wrapper[700]: session end sid=h1-slow-700 user=beta client_ip=192.0.2.2 client_port=4001 local_ip=198.51.100.1 local_port=22 sftp_pid=701 duration_ms=900 exit_status=0",
        // sftp-server killed (no last lines); its PID soon starts a new plain session.
        "Nov  3 11:02:00 h1 sftpd-wrapper[800]: session start sid=h1-kill-800 user=gamma client_ip=192.0.2.3 client_port=4002 local_ip=198.51.100.1 local_port=22",
        "Nov  3 11:02:00 h1 sftpd-wrapper[800]: sftp-server started sid=h1-kill-800 user=gamma sftp_pid=801 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        "Nov  3 11:02:00 h1 sftp-server[801]: session opened for local user gamma from [192.0.2.3]",
        "Nov  3 11:02:01 h1 sftpd-wrapper[800]: session end sid=h1-kill-800 user=gamma client_ip=192.0.2.3 client_port=4002 local_ip=198.51.100.1 local_port=22 sftp_pid=801 duration_ms=1000 signal=SIGKILL",
        "Nov  3 11:02:05 h1 sftp-server[801]: session opened for local user delta from [192.0.2.4]",
        "Nov  3 11:02:06 h1 sftp-server[801]: session closed for local user delta from [192.0.2.4]",
        // Another killed one; minutes later its PID's first line is not `session opened` (lost).
        "Nov  3 11:03:00 h1 sftpd-wrapper[900]: session start sid=h1-kill-900 user=gamma client_ip=192.0.2.3 client_port=4003 local_ip=198.51.100.1 local_port=22",
        "Nov  3 11:03:00 h1 sftpd-wrapper[900]: sftp-server started sid=h1-kill-900 user=gamma sftp_pid=901 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        "Nov  3 11:03:01 h1 sftpd-wrapper[900]: session end sid=h1-kill-900 user=gamma client_ip=192.0.2.3 client_port=4003 local_ip=198.51.100.1 local_port=22 sftp_pid=901 duration_ms=1000 signal=SIGKILL",
        "Nov  3 11:09:00 h1 sftp-server[901]: close \"/srv/epsilon/x\" bytes read 5 written 0",
        "Nov  3 11:09:01 h1 sftp-server[901]: session closed for local user epsilon from [192.0.2.5]",
        // A plain session that ended before the wrapper's session started is not its child,
        // even with the same PID and user.
        "Nov  3 11:10:00 h1 sftp-server[1001]: session opened for local user zeta from [192.0.2.6]",
        "Nov  3 11:10:01 h1 sftp-server[1001]: session closed for local user zeta from [192.0.2.6]",
        "Nov  3 11:10:30 h1 sftpd-wrapper[1000]: session start sid=h1-reuse-1000 user=zeta client_ip=192.0.2.6 client_port=4006 local_ip=198.51.100.1 local_port=22",
        "Nov  3 11:10:30 h1 sftpd-wrapper[1000]: sftp-server started sid=h1-reuse-1000 user=zeta sftp_pid=1001 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        "Nov  3 11:10:30 h1 sftp-server[1001]: session opened for local user zeta from [192.0.2.6]",
        "Nov  3 11:10:31 h1 sftp-server[1001]: session closed for local user zeta from [192.0.2.6]",
        "Nov  3 11:10:31 h1 sftpd-wrapper[1000]: session end sid=h1-reuse-1000 user=zeta client_ip=192.0.2.6 client_port=4006 local_ip=198.51.100.1 local_port=22 sftp_pid=1001 duration_ms=1000 exit_status=0",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.log");
    fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
    let db = new_db(backend, dir.path(), "order");
    let summary = ingest(&db, &[&path]);
    assert!(
        summary.contains("skipped 0") && summary.contains("sessions 8"),
        "{summary}"
    );
    let sessions = report_json(&db, &["sessions"]);
    let by_user = |user: &str| -> Vec<serde_json::Value> {
        sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["user"] == user)
            .cloned()
            .collect()
    };
    let acme = by_user("acme");
    assert_eq!(acme.len(), 1, "{sessions:#}");
    assert_eq!(acme[0]["end"], "closed", "{sessions:#}");
    assert_eq!(acme[0]["source"], "wrapper");
    let big = report_json(&db, &["transfers", "--user", "acme"]);
    assert_eq!(big.as_array().unwrap().len(), 1, "{big:#}");
    assert_eq!(big[0]["bytes_written"], 522240, "{big:#}");
    assert_eq!(big[0]["forced"], true);
    assert_eq!(big[0]["complete"], false);

    let beta = by_user("beta");
    assert_eq!(beta.len(), 1, "{sessions:#}");
    assert_eq!(beta[0]["end"], "closed", "{sessions:#}");
    assert_eq!(beta[0]["source"], "wrapper");
    let read = report_json(&db, &["transfers", "--user", "beta"]);
    assert_eq!(read.as_array().unwrap().len(), 1, "{read:#}");
    assert_eq!(read[0]["bytes_read"], 77);
    assert_eq!(read[0]["complete"], true);

    let gamma = by_user("gamma");
    assert_eq!(gamma.len(), 2, "{sessions:#}");
    assert!(gamma.iter().all(|s| s["end"] == "forced"), "{sessions:#}");
    for user in ["delta", "epsilon"] {
        let plain = by_user(user);
        assert_eq!(plain.len(), 1, "{user}: {sessions:#}");
        assert_eq!(plain[0]["source"], "sftp-server", "{user}");
        assert_eq!(plain[0]["end"], "closed", "{user}");
    }
    let zeta = by_user("zeta");
    let sources: Vec<&str> = zeta.iter().map(|s| s["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["sftp-server", "wrapper"], "{sessions:#}");
    assert!(zeta.iter().all(|s| s["end"] == "closed"), "{sessions:#}");
}
on_both_backends!(lines_out_of_order_between_the_two_processes_make_one_session);

/// A central database written by 0.1 (schema version 1: no `transfers.counts_as`) is upgraded
/// when a newer sftpd-report opens it: the column is filled in from the rows, and the views and
/// reports count from it. (The SQLite upgrade has a unit test next to its migrations.)
#[test]
fn a_version_1_postgres_database_is_upgraded_on_open() {
    require_pg!();
    let db = PgServer::shared().create_db();
    report_json(&db, &["sessions"]);
    let mut client = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DROP FUNCTION usage_sessions_touched, usage_sessions_changed, usage_transfers_touched,
                           usage_transfer_changed
                  CASCADE;
             DROP TABLE usage_hourly; DROP TABLE usage_dirty; DROP INDEX sessions_host_started;
             DROP TABLE ingest_counters; DROP INDEX operations_failed; DROP INDEX operations_denied;
             DROP INDEX transfers_failed; DROP INDEX sessions_refused;
             DROP VIEW monthly_usage; DROP VIEW daily_usage; DROP VIEW usage_events;
             ALTER TABLE transfers DROP COLUMN counts_as;
             ALTER TABLE transfers DROP COLUMN counters_cut;
             ALTER TABLE checkpoints DROP COLUMN prefix_sha256;
             ALTER TABLE checkpoints ADD PRIMARY KEY (first_line_hash);
             DROP TABLE journal_cursors;
             ALTER TABLE sessions DROP COLUMN origin_pid;
             ALTER TABLE sessions DROP COLUMN origin_uid;
             ALTER TABLE sessions DROP COLUMN origin_command;
             UPDATE schema_version SET version = 1;
             INSERT INTO sessions (id, host, started_at, source, pid, end_reason)
                  VALUES (1, 'h', '2026-11-26T00:00:00Z', 'sftp-server', 7, 'closed');
             INSERT INTO transfers (session_id, path, path_text, direction, open_flags, opened_at,
                                    closed_at, bytes_read, bytes_written)
                  VALUES (1, '\\x2f75', '/u', 'upload', 'WRITE', '2026-11-26T00:00:01Z',
                          '2026-11-26T00:00:02Z', 0, 10),
                         (1, '\\x2f64', '/d', 'download', 'READ', '2026-11-26T00:00:01Z',
                          '2026-11-26T00:00:02Z', 5, 0),
                         (1, '\\x2f70', '/p', 'download', 'READ', '2026-11-26T00:00:01Z',
                          '2026-11-26T00:00:02Z', 0, 0),
                         (1, '\\x2f6f', '/o', 'upload', 'WRITE', '2026-11-26T00:00:01Z',
                          NULL, NULL, NULL);",
        )
        .unwrap();
    let usage = report_json(&db, &["usage", "--by", "month"]);
    // The upgrade computed the rollups of the rows already there.
    common::assert_rollups_exact(&db);
    let row = &usage.as_array().unwrap()[0];
    // Version 1 rows carry no `complete`: they count as incomplete transfers.
    assert_eq!(row["files_up_incomplete"], 1, "{usage}");
    assert_eq!(row["files_down_incomplete"], 1, "{usage}");
    let rows = client
        .query(
            "SELECT path_text, counts_as FROM transfers ORDER BY id",
            &[],
        )
        .unwrap();
    let got: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want = |p: &str, c: Option<&str>| (p.to_owned(), c.map(str::to_owned));
    assert_eq!(
        got,
        [
            want("/u", Some("upload")),
            want("/d", Some("download")),
            want("/p", None),
            want("/o", None)
        ]
    );
    let version: i64 = client
        .query_one("SELECT version FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, sftpd_wrapper::accounting::storage::SCHEMA_VERSION);
}

/// Version 13 replaced PostgreSQL's rollup trigger functions (they only note the cells a change
/// touches; the rule is Rust's): a version 12 database gets them on open, keeps its rollups, and
/// goes on ingesting exactly.
#[test]
fn a_version_12_postgres_database_gets_the_version_13_trigger_functions() {
    require_pg!();
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(20_000, 20, 21);
    let (first, rest) = log.lines.split_at(log.lines.len() / 2);
    let first_path = dir.path().join("first.log");
    let all_path = dir.path().join("all.log");
    fs::write(&first_path, loggen::text(first)).unwrap();
    fs::write(&all_path, loggen::text(&[first, rest].concat())).unwrap();
    let db = new_db(Backend::Postgres, dir.path(), "db");
    ingest(&db, &[&first_path]);
    let old = "SELECT COUNT(*) FROM pg_proc
                WHERE proname IN ('usage_transfers_added', 'usage_transfers_removed')";
    let noting = "SELECT COUNT(*) FROM pg_proc
                   WHERE proname = 'usage_transfers_touched'
                     AND 'enable_hashjoin=off' = ANY(proconfig)";
    assert_eq!((query_i64(&db, old), query_i64(&db, noting)), (0, 1));
    // The functions as versions 7 to 12 had them.
    run_sql(
        &db,
        &format!(
            "DROP FUNCTION usage_sessions_touched, usage_sessions_changed, usage_transfers_touched,
                           usage_transfer_changed CASCADE;
             {}
             UPDATE schema_version SET version = 12;",
            include_str!("data/postgres_rollup_triggers_v7_to_v12.sql")
        ),
    );
    assert_eq!((query_i64(&db, old), query_i64(&db, noting)), (2, 0));
    common::assert_rollups_exact(&db);
    ingest(&db, &[&all_path]);
    assert_eq!((query_i64(&db, old), query_i64(&db, noting)), (0, 1));
    assert_eq!(
        query_i64(&db, "SELECT version FROM schema_version"),
        sftpd_wrapper::accounting::storage::SCHEMA_VERSION
    );
    common::assert_rollups_exact(&db);
    assert_eq!(usage_totals(&db), log.totals);
    let clean = new_db(Backend::Postgres, dir.path(), "clean");
    ingest(&clean, &[&all_path]);
    assert_same(&dump(&db), &dump(&clean));
}

/// Issue 27, item 6: a session's links are followed across ingest runs (a batch ingest between
/// a link and the download through it), and a link whose failure status the next run reads
/// leads nowhere; the same rows as one run, on both stores.
#[test]
fn links_made_in_an_earlier_run_are_followed() {
    require_pg!();
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "Nov  3 10:00:00 h1 sftp-server[501]: session opened for local user acme from [192.0.2.1]",
        "Nov  3 10:00:01 h1 sftp-server[501]: symlink old \"invoice-42.xml\" new \"/srv/acme/l.xml\"",
        "Nov  3 10:00:02 h1 sftp-server[501]: symlink old \"invoice-43.xml\" new \"/srv/acme/taken.xml\"",
        // The first run ends here.
        "Nov  3 10:00:02 h1 sftp-server[501]: sent status Failure",
        "Nov  3 10:00:03 h1 sftp-server[501]: open \"/srv/acme/l.xml\" flags READ mode 0666",
        "Nov  3 10:00:03 h1 sftp-server[501]: close \"/srv/acme/l.xml\" bytes read 42 written 0",
        "Nov  3 10:00:04 h1 sftp-server[501]: open \"/srv/acme/taken.xml\" flags READ mode 0666",
        "Nov  3 10:00:04 h1 sftp-server[501]: close \"/srv/acme/taken.xml\" bytes read 7 written 0",
        "Nov  3 10:00:05 h1 sftp-server[501]: session closed for local user acme from [192.0.2.1]",
    ];
    let first = dir.path().join("first.log");
    let all = dir.path().join("all.log");
    fs::write(&first, format!("{}\n", lines[..3].join("\n"))).unwrap();
    fs::write(&all, format!("{}\n", lines.join("\n"))).unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let split = new_db(backend, dir.path(), &format!("split-{backend:?}"));
        ingest(&split, &[&first]);
        ingest(&split, &[&all]);
        let once = new_db(backend, dir.path(), &format!("once-{backend:?}"));
        ingest(&once, &[&all]);
        let dump_split = dump(&split);
        assert_same(&dump_split, &dump(&once));
        let hex = |s: &str| -> String { s.bytes().map(|b| format!("{b:02X}")).collect() };
        assert!(
            dump_split.contains(&format!(
                "|{}|NULL|{}|download|",
                hex("/srv/acme/l.xml"),
                hex("/srv/acme/invoice-42.xml")
            )),
            "{backend:?}: {dump_split}"
        );
        assert!(
            dump_split.contains(&format!(
                "|{}|NULL|NULL|download|",
                hex("/srv/acme/taken.xml")
            )),
            "{backend:?}: {dump_split}"
        );
        common::assert_rollups_exact(&split);
    }
}

/// Version 11 adds `transfers.reached`: a version 10 PostgreSQL database (without the column)
/// gets it on the next ingest, keeps its rows (which reached no other name), and fills it for a
/// download through a link from then on.
#[test]
fn a_version_10_postgres_database_gains_reached() {
    require_pg!();
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "Nov  3 10:00:00 h1 sftp-server[501]: session opened for local user acme from [192.0.2.1]",
        "Nov  3 10:00:01 h1 sftp-server[501]: open \"/srv/acme/a.csv\" flags READ mode 0666",
        "Nov  3 10:00:01 h1 sftp-server[501]: close \"/srv/acme/a.csv\" bytes read 5 written 0",
        "Nov  3 10:00:02 h1 sftp-server[501]: hardlink old \"/srv/acme/a.csv\" new \"/srv/acme/b.csv\"",
        "Nov  3 10:00:03 h1 sftp-server[501]: open \"/srv/acme/b.csv\" flags READ mode 0666",
        "Nov  3 10:00:03 h1 sftp-server[501]: close \"/srv/acme/b.csv\" bytes read 5 written 0",
        "Nov  3 10:00:04 h1 sftp-server[501]: session closed for local user acme from [192.0.2.1]",
    ];
    let first = dir.path().join("first.log");
    let all = dir.path().join("all.log");
    fs::write(&first, format!("{}\n", lines[..3].join("\n"))).unwrap();
    fs::write(&all, format!("{}\n", lines.join("\n"))).unwrap();
    let db = new_db(Backend::Postgres, dir.path(), "db");
    ingest(&db, &[&first]);
    run_sql(
        &db,
        "ALTER TABLE transfers DROP COLUMN reached;
         UPDATE schema_version SET version = 10;",
    );
    ingest(&db, &[&all]);
    assert_eq!(
        query_i64(&db, "SELECT version FROM schema_version"),
        sftpd_wrapper::accounting::storage::SCHEMA_VERSION
    );
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) FROM transfers WHERE reached IS NULL AND path = '\\x2f7372762f61636d652f612e637376'"
        ),
        1
    );
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) FROM transfers WHERE reached = '\\x2f7372762f61636d652f612e637376'"
        ),
        1
    );
    common::assert_rollups_exact(&db);
    let clean = new_db(Backend::Postgres, dir.path(), "clean");
    ingest(&clean, &[&all]);
    assert_same(&dump(&db), &dump(&clean));
}

/// `ingest --follow` on a log that grows (a line sometimes written in two parts), is rotated by
/// rename and by copytruncate (lines written just before the copy are only in the copy), and
/// whose follower is stopped by SIGTERM and started again: the database equals one clean run
/// over the whole log, and SIGTERM is a clean exit with the summary.
fn follow_mode_through_rotations_equals_one_clean_run(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(12_000, 20, 7);
    let whole = dir.path().join("whole.log");
    fs::write(&whole, loggen::text(&log.lines)).unwrap();
    let clean_db = new_db(backend, dir.path(), "clean");
    ingest(&clean_db, &[&whole]);

    let db = new_db(backend, dir.path(), "follow");
    let path = dir.path().join("sftpd.log");
    let chunks: Vec<&[String]> = log.lines.chunks(log.lines.len() / 6 + 1).collect();
    let mut written = 0i64;
    let append = |text: &str| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    };
    let follow = || Follower::start(&db, &[&path]);
    // Every line written so far is committed, as the files' checkpoints count them.
    let caught_up = |written: i64| {
        for _ in 0..3000 {
            if checkpointed_lines(&db) == written {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "the follower did not catch up: {} of {written} lines",
            checkpointed_lines(&db)
        );
    };

    append(&loggen::text(chunks[0]));
    written += chunks[0].len() as i64;
    let mut follower = follow();
    caught_up(written);
    // A line in two writes: the first half is left until the rest comes.
    let text = loggen::text(chunks[1]);
    let (a, b) = text.split_at(text.len() / 2 + 7);
    append(a);
    std::thread::sleep(Duration::from_millis(600));
    append(b);
    written += chunks[1].len() as i64;
    caught_up(written);

    // logrotate's default: rename, then the daemon creates the file again.
    fs::rename(&path, dir.path().join("sftpd.log.1")).unwrap();
    append(&loggen::text(chunks[2]));
    written += chunks[2].len() as i64;
    caught_up(written);

    // copytruncate: lines written just before the copy reach only the copy.
    let (before_copy, after) = chunks[3].split_at(chunks[3].len() / 2);
    fs::rename(
        dir.path().join("sftpd.log.1"),
        dir.path().join("sftpd.log.2"),
    )
    .unwrap();
    append(&loggen::text(before_copy));
    fs::copy(&path, dir.path().join("sftpd.log.1")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&loggen::text(after));
    written += chunks[3].len() as i64;
    // The copy's checkpoint took the place of the file's before the copy (the same first line):
    // the checkpoints count every line once.
    caught_up(written);

    let out = follower.terminate();
    assert!(out.status.success(), "SIGTERM: {:?}", out.status);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("lines read"), "{summary}");

    // Lines written while no follower ran are read when it starts again.
    for chunk in &chunks[4..] {
        append(&loggen::text(chunk));
        written += chunk.len() as i64;
    }
    let mut follower = follow();
    caught_up(written);
    assert!(follower.terminate().status.success());
    assert_same(&dump(&db), &dump(&clean_db));
    assert_eq!(usage_totals(&db), log.totals);
    common::assert_rollups_exact(&db);
}
on_both_backends!(follow_mode_through_rotations_equals_one_clean_run);

/// Followers of two servers' logs feed one database at the same time (a central store): each
/// holds the ingest lock only while it commits, so neither waits for the other to end, and the
/// result equals ingesting the two logs one after the other.
fn followers_of_two_servers_share_one_database(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let east = loggen::generate(6_000, 10, 11);
    let west: Vec<String> = loggen::generate(6_000, 10, 12)
        .lines
        .iter()
        .map(|l| l.replace(" sftp", " west"))
        .collect();
    let (east_path, west_path) = (dir.path().join("east.log"), dir.path().join("west.log"));
    fs::write(&east_path, loggen::text(&east.lines)).unwrap();
    fs::write(&west_path, loggen::text(&west)).unwrap();
    let clean_db = new_db(backend, dir.path(), "clean");
    ingest(&clean_db, &[&east_path]);
    ingest(&clean_db, &[&west_path]);

    let db = new_db(backend, dir.path(), "live");
    let follow = |path: &Path| Follower::start(&db, &[path]);
    let mut followers = [follow(&east_path), follow(&west_path)];
    let total = (east.lines.len() + west.len()) as i64;
    let mut caught_up = false;
    for _ in 0..3000 {
        if checkpointed_lines(&db) == total {
            caught_up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(caught_up, "{} of {total} lines", checkpointed_lines(&db));
    for f in &mut followers {
        assert!(f.terminate().status.success());
    }
    assert_same(&dump(&db), &dump(&clean_db));
}
on_both_backends!(followers_of_two_servers_share_one_database);

/// `sftpd-report metrics` (stdout, `--textfile`, and follow mode's `/metrics`) passes
/// `promtool check metrics`, its totals equal usage's, and a user name made to break the format
/// (quotes, backslashes, braces, a newline escaped in the log) stays one label value.
fn metrics_are_valid_exact_and_escaped(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(5_000, 10, 21);
    let mut lines = log.lines.clone();
    // sftp-server's own escapes (`\012` for a newline) stay as they are logged.
    let hostile = r#"ev"il\} 1\012sftpd_sessions_total{host="x",user="ceo"#;
    lines.push(format!(
        "Nov  2 23:00:00 sftp9 sftp-server[77]: session opened for local user {hostile} from [192.0.2.9]"
    ));
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&lines)).unwrap();
    let db = new_db(backend, dir.path(), "metrics");
    ingest(&db, &[&path]);

    let out = sftpd_report(&db, &["metrics"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    promtool_check(&text);
    let textfile = dir.path().join("sftpd.prom");
    let out = sftpd_report(
        &db,
        &["metrics", "--textfile", &textfile.display().to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&textfile).unwrap(), text);
    assert!(
        fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")),
        "a temporary file was left"
    );
    let stored_user = report_json(&db, &["sessions", "--host", "sftp9"])[0]["user"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stored_user.contains('"') && stored_user.contains('}'),
        "{stored_user}"
    );

    // Totals per host and user, as usage gives them.
    let mut from_metrics: BTreeMap<(String, String), UserTotals> = BTreeMap::new();
    let mut hostile_samples = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: i64 = value.parse().unwrap();
        let label = |name: &str| {
            let start = series
                .find(&format!("{name}=\""))
                .map(|i| i + name.len() + 2)?;
            let mut out = String::new();
            let mut chars = series[start..].chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => return Some(out),
                    '\\' => match chars.next()? {
                        'n' => out.push('\n'),
                        c => out.push(c),
                    },
                    c => out.push(c),
                }
            }
            None
        };
        let (Some(host), Some(user)) = (label("host"), label("user")) else {
            continue;
        };
        if host == "sftp9" {
            assert_eq!(user, stored_user);
            hostile_samples += 1;
            continue;
        }
        let t = from_metrics.entry((host, user)).or_default();
        let name = series.split('{').next().unwrap();
        let complete = series.contains("complete=\"true\"");
        let up = series.contains("direction=\"up\"");
        match name {
            "sftpd_sessions_total" => t.sessions += value,
            "sftpd_files_total" if complete && up => t.files_up += value,
            "sftpd_files_total" if complete => t.files_down += value,
            "sftpd_bytes_total" if up => t.bytes_up += value,
            "sftpd_bytes_total" => t.bytes_down += value,
            _ => {}
        }
    }
    assert!(hostile_samples > 0, "{text}");
    from_metrics.retain(|_, t| *t != UserTotals::default());
    let mut usage = usage_totals(&db);
    usage.retain(|(host, _), _| host != "sftp9");
    assert_eq!(from_metrics, usage);
    let read: i64 = text
        .lines()
        .filter(|l| l.starts_with("sftpd_ingest_lines_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<i64>().unwrap())
        .sum();
    assert_eq!(read, lines.len() as i64, "{text}");

    // The same, served by a follower.
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut follower = Follower::start(
        &db,
        &[
            std::ffi::OsStr::new("--metrics-listen"),
            listen.as_ref(),
            path.as_ref(),
        ],
    );
    let body = common::wait_until("/metrics", Duration::from_secs(20), || {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    });
    assert_eq!(body, text);
    assert!(follower.terminate().status.success());
}
on_both_backends!(metrics_are_valid_exact_and_escaped);

/// `promtool check metrics` (Debian's prometheus package) accepts `text`.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The HTML statement in a real browser: headless Chromium renders `statement` and `usage
/// --format html` to PNG screenshots without a console error; the pages reference nothing
/// outside themselves, show the partner's totals, and a hostile user or file name is text.
fn html_statement_renders_in_chromium(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(6_000, 12, 31);
    let mut lines = log.lines.clone();
    let hostile = "<img src=x onerror=alert(1)>";
    lines.extend([
        format!("Nov  1 23:00:00 sftp1 sftp-server[91]: session opened for local user {hostile} from [192.0.2.9]"),
        "Nov  1 23:00:01 sftp1 sftp-server[91]: open \"/in/<script>alert(2)</script>.csv\" flags WRITE,CREATE,TRUNCATE mode 0644".to_owned(),
        "Nov  1 23:00:02 sftp1 sftp-server[91]: close \"/in/<script>alert(2)</script>.csv\" bytes read 0 written 987654321".to_owned(),
        format!("Nov  1 23:00:03 sftp1 sftp-server[91]: session closed for local user {hostile} from [192.0.2.9]"),
    ]);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&lines)).unwrap();
    let db = new_db(backend, dir.path(), "html");
    ingest(&db, &[&path]);
    let statement = dir.path().join("statement.html");
    let out = sftpd_report(
        &db,
        &[
            "statement",
            "--user",
            hostile,
            "--month",
            "2026-11",
            "--tz",
            "UTC",
            "--output",
            &statement.display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sftpd_report(&db, &["usage", "--format", "html", "--tz", "Europe/Berlin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let usage = dir.path().join("usage.html");
    fs::write(&usage, &out.stdout).unwrap();

    for page in [&statement, &usage] {
        let html = fs::read_to_string(page).unwrap();
        // Self-contained: nothing to fetch (the SVG namespace is a name, not a fetch).
        for outside in [
            " src=\"", " href=\"", "@import", "url(", "<script", "<link", "<img",
        ] {
            assert!(!html.contains(outside), "{}: {outside}", page.display());
        }
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        let png = page.with_extension("png");
        let out = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1200,1600",
            ])
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium (Debian's chromium package)");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "chromium: {log}");
        for line in log.lines() {
            assert!(
                !line.contains("CONSOLE") && !line.contains("Uncaught"),
                "{}: a console message: {line}",
                page.display()
            );
        }
        let bytes = fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        assert!(
            bytes.len() > 20_000,
            "{} bytes: an empty page?",
            bytes.len()
        );
        // What the browser made of it: the totals and the hostile names as text.
        let dom = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--dump-dom",
            ])
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&dom.stdout);
        assert!(dom.contains("Largest transfers"), "{dom}");
        assert!(!dom.contains("<img"), "the hostile name became an element");
        assert!(
            !dom.contains("<script"),
            "the hostile file name became an element"
        );
    }
    let html = fs::read_to_string(&statement).unwrap();
    assert!(html.contains("SFTP statement for &lt;img"));
    assert!(html.contains("November 2026"));
    assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt;.csv"));
    assert!(html.contains("987654321 bytes"));
}
on_both_backends!(html_statement_renders_in_chromium);

/// Runs `sql` (statements separated by `;`) on either backend.
fn run_sql(db: &str, sql: &str) {
    if db.starts_with("postgres://") {
        let mut c = postgres::Client::connect(db, postgres::NoTls).unwrap();
        c.batch_execute(sql).unwrap();
    } else {
        rusqlite::Connection::open(db)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

/// The one integer `sql` selects, on either backend.
fn query_i64(db: &str, sql: &str) -> i64 {
    try_query_i64(db, sql)
        .unwrap()
        .unwrap_or_else(|| panic!("no row: {sql}"))
}

/// The integer in the first column of the row `sql` selects, if any, on either backend; an
/// error (no database yet, a table not created yet) as its message, for callers that poll.
fn try_query_i64(db: &str, sql: &str) -> Result<Option<i64>, String> {
    if db.starts_with("postgres://") {
        let mut c = postgres::Client::connect(db, postgres::NoTls).map_err(|e| e.to_string())?;
        c.query_opt(sql, &[])
            .map(|row| row.map(|r| r.get(0)))
            .map_err(|e| e.to_string())
    } else {
        use rusqlite::OptionalExtension;
        rusqlite::Connection::open(db)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)).optional())
            .map_err(|e| e.to_string())
    }
}

/// The lines all checkpoints count together.
fn checkpointed_lines(db: &str) -> i64 {
    try_query_i64(
        db,
        "SELECT CAST(COALESCE(SUM(lines), 0) AS BIGINT) FROM checkpoints",
    )
    .ok()
    .flatten()
    .unwrap_or(-1)
}

/// Usage read from the hourly rollups equals usage summed from the rows, whatever the window
/// (part hours at its ends, or all of it inside one hour), the zone (whole hours from UTC,
/// +05:30, +05:45, and St John's, whose offset goes from -02:30 to -03:30 inside the data) and the
/// filters.
fn usage_from_rollups_equals_usage_from_rows(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // About four hours of lines, stretched eightfold: 30 hours of November 1st and 2nd, across
    // every zone's midnight.
    let log = loggen::generate(110_000, 30, 9);
    let stretched: Vec<String> = log.lines.iter().map(|l| stretch_time(l, 8)).collect();
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&stretched)).unwrap();
    let db = new_db(backend, dir.path(), "rollups");
    ingest(&db, &[&path]);
    let windows: [&[&str]; 6] = [
        &[],
        &["--since", "2026-11-01T03:17:23.5Z"],
        &["--until", "2026-11-01T20:45:00Z"],
        &[
            "--since",
            "2026-11-01T03:17:23Z",
            "--until",
            "2026-11-02T02:05:59.999999Z",
        ],
        &[
            "--since",
            "2026-11-01T10:10:00Z",
            "--until",
            "2026-11-01T10:50:00Z",
        ],
        &[
            "--since",
            "2026-11-01T06:00:00Z",
            "--until",
            "2026-11-02T00:00:00Z",
            "--user",
            "acme",
        ],
    ];
    let zones = [
        "UTC",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "America/St_Johns",
        "America/New_York",
    ];
    let mut distinct = std::collections::BTreeSet::new();
    for window in windows {
        for zone in zones {
            for by in ["day", "month"] {
                let mut args = vec!["usage", "--by", by, "--tz", zone, "--format", "csv"];
                args.extend_from_slice(window);
                let rollups = sftpd_report(&db, &args);
                args.push("--from-rows");
                let rows = sftpd_report(&db, &args);
                assert!(
                    rollups.status.success() && rows.status.success(),
                    "{args:?}"
                );
                let (rollups, rows) = (
                    String::from_utf8(rollups.stdout).unwrap(),
                    String::from_utf8(rows.stdout).unwrap(),
                );
                assert_eq!(rollups, rows, "{args:?}");
                assert!(rows.lines().count() > 1, "{args:?}: no usage at all");
                distinct.insert(rows);
            }
        }
    }
    // The windows and zones really change the numbers.
    assert!(distinct.len() > 40, "{}", distinct.len());
}
on_both_backends!(usage_from_rollups_equals_usage_from_rows);

/// A generated line (`Nov  1 03:17:23 …`, November 1st onwards) with its time since November
/// 1st multiplied by `factor`.
fn stretch_time(line: &str, factor: u64) -> String {
    let (stamp, rest) = line.split_at(15);
    let day: u64 = stamp[4..6].trim().parse().unwrap();
    let clock: Vec<u64> = stamp[7..].split(':').map(|n| n.parse().unwrap()).collect();
    let second = ((day - 1) * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2]) * factor;
    let rem = second % 86_400;
    format!(
        "Nov {:>2} {:02}:{:02}:{:02}{rest}",
        1 + second / 86_400,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A version 3 SQLite database (no rollups) gets its hourly rollups, computed from the rows it
/// has, when a version that has them opens it.
#[test]
fn a_version_3_sqlite_database_gets_its_rollups_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(4_000, 12, 5);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let db = new_db(Backend::Sqlite, dir.path(), "v3");
    ingest(&db, &[&path]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Version 3's tables had the columns the views show (and more, which the upgrade ignores).
    let mut to_version_3 = String::from(
        "DROP TABLE usage_hourly; DROP TABLE usage_dirty; DROP TABLE ingest_counters;
         DROP TRIGGER usage_session_added; DROP TRIGGER usage_session_changed;
         DROP TRIGGER usage_session_removed; DROP TRIGGER usage_transfer_added;
         DROP TRIGGER usage_transfer_changed; DROP TRIGGER usage_transfer_removed;",
    );
    for (view, table) in [
        ("operations", "operation_rows"),
        ("transfers", "transfer_rows"),
        ("sessions", "session_rows"),
    ] {
        to_version_3.push_str(&format!(
            "CREATE TABLE v3 AS SELECT * FROM {view}; DROP VIEW {view}; DROP TABLE {table};
             CREATE TABLE {view} AS SELECT * FROM v3; DROP TABLE v3;"
        ));
    }
    to_version_3.push_str(
        "CREATE INDEX transfers_session ON transfers (session_id);
         UPDATE schema_version SET version = 3;",
    );
    conn.execute_batch(&to_version_3).unwrap();
    drop(conn);
    common::assert_rollups_exact(&db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let cells: i64 = conn
        .query_row("SELECT COUNT(*) FROM usage_hourly", [], |r| r.get(0))
        .unwrap();
    assert!(cells > 0);
    assert_eq!(usage_totals(&db), log.totals);
}

/// A report on a database path that does not exist is a one-line error, not an empty report, and
/// creates nothing there.
#[test]
fn a_report_on_a_missing_database_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    for command in ["sessions", "transfers", "usage"] {
        let out = sftpd_report(db.to_str().unwrap(), &[command]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("no database at"), "{stderr}");
        assert!(!db.exists(), "{command} created {}", db.display());
    }
}

/// Issue 11, items 1, 2, 5, 10 and 11 on one small log: a close cut at 500 characters bills
/// nothing and is counted as unknown; counters above i64::MAX are skipped with the reason; two
/// counters of i64::MAX sum exactly; a forced close is an incomplete file; `--since` inside a month
/// cuts at that instant; days are the zone's days.
fn hostile_counters_and_exact_usage(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let max = i64::MAX;
    // The attack: the name's tail is what the cut leaves as counters.
    let mut forged = "/".repeat(459);
    forged.push_str("\" bytes read 0 written 99999999999");
    let cut_close = format!("close \"{forged}\" bytes read 0 written 5000000000");
    let cut_close = &cut_close[..500];
    assert!(cut_close.ends_with("written 99999999999"));
    let s = "h sftp-server[100]:";
    let lines = [
        format!("2026-11-29T23:30:00+00:00 {s} session opened for local user acme from [10.0.0.1]"),
        format!("2026-11-29T23:30:01+00:00 {s} open \"/a\" flags WRITE,CREATE,TRUNCATE mode 0644"),
        format!("2026-11-29T23:30:02+00:00 {s} close \"/a\" bytes read 0 written {max}"),
        format!("2026-11-29T23:30:03+00:00 {s} open \"/b\" flags WRITE,CREATE,TRUNCATE mode 0644"),
        format!("2026-11-29T23:30:04+00:00 {s} close \"/b\" bytes read 0 written {max}"),
        format!("2026-11-29T23:30:05+00:00 {s} {cut_close}"),
        format!("2026-11-29T23:30:06+00:00 {s} close \"/c\" bytes read 0 written 18446744068709551616"),
        format!("2026-11-29T23:30:07+00:00 {s} session closed for local user acme from [10.0.0.1]"),
        // December in UTC, still November 30th in New York; a partial upload cut by the end.
        "2026-12-01T01:00:00+00:00 h sftp-server[200]: session opened for local user acme from [10.0.0.1]".into(),
        "2026-12-01T01:00:01+00:00 h sftp-server[200]: open \"/p\" flags WRITE,CREATE,TRUNCATE mode 0644".into(),
        "2026-12-01T01:00:02+00:00 h sftp-server[200]: forced close \"/p\" bytes read 0 written 7".into(),
        "2026-12-01T01:00:03+00:00 h sftp-server[200]: session closed for local user acme from [10.0.0.1]".into(),
    ];
    let path = dir.path().join("sftpd.log");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let db = new_db(backend, dir.path(), "hostile");
    let summary = ingest(&db, &[&path]);
    assert!(
        summary.contains("skipped 1: byte counter above"),
        "{summary}"
    );
    assert!(
        summary.contains("unknown byte counts (close line cut) 1"),
        "{summary}"
    );

    let usage = report_json(&db, &["usage", "--by", "month", "--tz", "UTC"]);
    let rows = usage.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{usage}");
    let nov = &rows[0];
    assert_eq!(nov["month"], "2026-11");
    assert_eq!(nov["zone"], "UTC");
    assert_eq!(nov["bytes_up"], 2 * (max as u64), "{usage}");
    assert_eq!(nov["files_up"], 2, "{usage}");
    // The cut close matches no open (its name is cut): a file of unknown direction and bytes.
    assert_eq!(nov["files_up_incomplete"], 0, "{usage}");
    assert_eq!(nov["files_bytes_unknown"], 1, "{usage}");
    let dec = &rows[1];
    assert_eq!(dec["month"], "2026-12");
    assert_eq!(
        (&dec["files_up"], &dec["files_up_incomplete"]),
        (&0.into(), &1.into())
    );
    assert_eq!(dec["bytes_up"], 7);

    // New York's November holds both sessions.
    let ny = report_json(&db, &["usage", "--by", "month", "--tz", "America/New_York"]);
    assert_eq!(ny.as_array().unwrap().len(), 1, "{ny}");
    assert_eq!(ny[0]["zone"], "America/New_York");
    assert_eq!(ny[0]["sessions"], 2);

    // --since inside November cuts at that instant, not at the month's start.
    let late = report_json(
        &db,
        &[
            "usage",
            "--by",
            "month",
            "--tz",
            "UTC",
            "--since",
            "2026-11-30",
        ],
    );
    assert_eq!(late.as_array().unwrap().len(), 1, "{late}");
    assert_eq!(late[0]["month"], "2026-12");

    // A table shows times in the zone and names it.
    let out = sftpd_report(
        &db,
        &["sessions", "--format", "table", "--tz", "America/New_York"],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("started (America/New_York)") && table.contains("2026-11-29 18:30:00"),
        "{table}"
    );
    let sessions = report_json(&db, &["sessions"]);
    assert_eq!(sessions[0]["bytes_up"], 2 * (max as u64), "{sessions}");
    assert_eq!(sessions[0]["files_bytes_unknown"], 1, "{sessions}");
    let transfers = report_json(&db, &["transfers"]);
    let cut: Vec<&serde_json::Value> = transfers
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["bytes_unknown"] == true)
        .collect();
    assert_eq!(cut.len(), 1, "{transfers}");
    assert!(cut[0]["bytes_written"].is_null(), "{transfers}");
}
on_both_backends!(hostile_counters_and_exact_usage);

/// Many ingests into one database that does not exist yet: none fails with "database is locked".
fn first_ingests_at_once_all_succeed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(200, 3, 1);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    // Two at a time is the racy case (with more, most wait on the ingest lock).
    for round in 0..20 {
        let db = new_db(backend, dir.path(), &format!("new{round}"));
        let children: Vec<_> = (0..2)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
                    .args(["--db", &db, "--config", "/nonexistent/x.toml", "ingest"])
                    .arg(&path)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
on_both_backends!(first_ingests_at_once_all_succeed);

/// Issue 11, item 8: a file with new lines and none understood (the wrong format or facility) is
/// a warning naming it and its first line, and exit status 1, unless `--allow-empty`.
fn a_file_with_nothing_understood_is_a_warning(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    fs::write(
        &path,
        "2026-11-27 10:00:00 host cron: nothing for us\n{\"a\": 1}\n",
    )
    .unwrap();
    let db = new_db(backend, dir.path(), "empty");
    let out = sftpd_report(&db, &["ingest", &path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("auth.log") && stderr.contains("\"2026-11-27 10:00:00 host cron: nothing"),
        "{stderr}"
    );
    let out = sftpd_report(
        &db,
        &["ingest", "--allow-empty", &path.display().to_string()],
    );
    assert!(out.status.success());
    // Already-read lines and an empty file are not a mistake.
    let empty = dir.path().join("new.log");
    fs::write(&empty, "").unwrap();
    ingest(&db, &[&empty]);
}
on_both_backends!(a_file_with_nothing_understood_is_a_warning);

/// Issue 11, item 12: a rotated .gz's last line counts without its newline; a truncated .gz is a
/// clear error, and the complete file then gives what a clean run gives.
fn gz_last_lines_and_truncated_gz(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(60_000, 20, 5);
    let text = loggen::text(&log.lines);
    let gz = |name: &str, bytes: &[u8]| -> std::path::PathBuf {
        let plain = dir.path().join(name);
        fs::write(&plain, bytes).unwrap();
        assert!(
            Command::new("gzip")
                .arg("-f")
                .arg(&plain)
                .status()
                .unwrap()
                .success()
        );
        dir.path().join(format!("{name}.gz"))
    };
    let no_newline = gz("nonl.log", text.trim_end_matches('\n').as_bytes());
    let db = new_db(backend, dir.path(), "nonl");
    let summary = ingest(&db, &[&no_newline]);
    assert!(
        summary.contains(&format!("lines read {}", log.lines.len())),
        "{summary}"
    );

    let whole = gz("whole.log", text.as_bytes());
    let bytes = fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.log.gz");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let db = new_db(backend, dir.path(), "cut");
    let out = sftpd_report(&db, &["ingest", &cut.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cut.log.gz: the gzip data is truncated"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Issue 27, item 12: the lines before the cut are ingested, as the error says (fewer than
    // one batch), and the complete file goes on from there.
    assert!(
        stderr.contains("the lines before it are ingested"),
        "{stderr}"
    );
    common::assert_rollups_exact(&db);
    let sessions = report_json(&db, &["sessions"]);
    assert!(sessions.as_array().unwrap().len() > 100, "{sessions}");
    fs::copy(&whole, &cut).unwrap();
    let summary = ingest(&db, &[&cut]);
    assert!(!summary.contains("already ingested 0"), "{summary}");
    let clean = new_db(backend, dir.path(), "clean");
    ingest(&clean, &[&whole]);
    assert_same(&dump(&db), &dump(&clean));
}
on_both_backends!(gz_last_lines_and_truncated_gz);

/// `copy --from` a path with no database is an error and leaves nothing there.
#[test]
fn copy_from_a_missing_database_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let to = dir.path().join("to.db");
    let out = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .args(["--config", "/nonexistent/x.toml", "copy", "--from"])
        .arg(&missing)
        .arg("--to")
        .arg(&to)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from: no database at"));
    assert!(!missing.exists() && !to.exists());
}

/// Issue 11, item 3: a different file whose first line is an ingested file's first line is read
/// whole, not skipped to the other file's checkpoint; the ingested file, grown, still goes on
/// from its own checkpoint.
fn files_that_share_a_first_line_are_different_files(backend: Backend) {
    // The two files' times overlap, which the ingest refuses unless told.
    let ingest_any = |db: &str, files: &[&Path]| {
        let mut args = vec!["ingest".to_owned(), "--any-order".to_owned()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sftpd_report(db, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let a = loggen::generate(3_000, 5, 11);
    let b = loggen::generate(3_000, 5, 12);
    let a_text = loggen::text(&a.lines);
    let pa = dir.path().join("a.log");
    let pb = dir.path().join("b.log");
    let half = a_text.len() / 2;
    let half = half + a_text[half..].find('\n').unwrap() + 1;
    // b: a's first half with one character of its second line changed (so that every line
    // ends where a's does, and only the content tells them apart), then b's own lines.
    let second = a_text.find('\n').unwrap() + 1;
    let mut b_text = a_text[..half].to_owned();
    let at = second + b_text[second..].find(|c: char| c.is_ascii_digit()).unwrap();
    let digit = if &b_text[at..=at] == "7" { "8" } else { "7" };
    b_text.replace_range(at..=at, digit);
    b_text.push_str(&loggen::text(&b.lines));
    let b_lines = b_text.lines().count();
    fs::write(&pa, &a_text[..half]).unwrap();
    fs::write(&pb, &b_text).unwrap();
    let db = new_db(backend, dir.path(), "shared");
    ingest(&db, &[&pa]);
    let summary = ingest_any(&db, &[&pb]);
    assert!(
        summary.contains(&format!("lines read {b_lines}, ")),
        "{summary}"
    );
    // a.log grows to its whole: only the new half is read.
    fs::write(&pa, &a_text).unwrap();
    let summary = ingest_any(&db, &[&pa]);
    assert!(summary.contains("already ingested"), "{summary}");
    // The same as ingesting both whole into a new database.
    let clean = new_db(backend, dir.path(), "clean");
    ingest(&clean, &[&pa]);
    ingest_any(&clean, &[&pb]);
    assert_same(&dump(&db), &dump(&clean));
    // And nothing more on a third run.
    let again = ingest_any(&db, &[&pa, &pb]);
    assert!(again.contains("parsed 0"), "{again}");
}
on_both_backends!(files_that_share_a_first_line_are_different_files);

/// Issue 11, item 4, and issue 27, items 1 and 2: a rotated file never read, given after the
/// newer file, is refused with a one-line error that names `--rebuild`, exit status 1 and the
/// `refused` metric, and the refusal does not hold it up for good (a second run takes what
/// follows); the .1 tail of a copytruncate rotation that goes on from its own checkpoint is
/// never refused. `--rebuild` with both files gives exactly what one clean run gives.
fn rotated_files_out_of_order_are_refused_and_rebuilt(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(6_000, 8, 21);
    let text = loggen::text(&log.lines);
    let cut = |at: usize| at + text[at..].find('\n').unwrap() + 1;
    let (a, b) = (cut(text.len() / 3), cut(2 * text.len() / 3));
    let live = dir.path().join("sftpd.log");
    let rotated = dir.path().join("sftpd.log.1");
    let whole = dir.path().join("whole.log");
    fs::write(&whole, &text).unwrap();
    let clean = new_db(backend, dir.path(), "order-clean");
    ingest(&clean, &[&whole]);
    let rebuild = |db: &str| {
        let out = sftpd_report(
            db,
            &[
                "ingest",
                "--rebuild",
                &live.display().to_string(),
                &rotated.display().to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::assert_rollups_exact(db);
        assert_same(&dump(db), &dump(&clean));
    };

    // The .1 of a copytruncate rotation, read after the new file: it goes on from the
    // checkpoint of what was read of it, so its tail is read, not refused.
    let db = new_db(backend, dir.path(), "carry-on");
    fs::write(&live, &text[..a]).unwrap();
    ingest(&db, &[&live]);
    fs::write(&rotated, &text[..b]).unwrap();
    fs::write(&live, &text[b..]).unwrap();
    ingest(&db, &[&live]);
    let summary = ingest(&db, &[&rotated]);
    assert!(!summary.contains("not billed"), "{summary}");
    rebuild(&db);

    // A .1 never read, given after the new file: refused.
    let db = new_db(backend, dir.path(), "order");
    ingest(&db, &[&live]);
    let out = sftpd_report(&db, &["ingest", &rotated.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("older than what is already ingested") && stderr.contains("--rebuild"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("parsed 0") && summary.contains("not billed"),
        "{summary}"
    );
    common::assert_rollups_exact(&db);
    let metrics = sftpd_report(&db, &["metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sftpd_ingest_lines_total{outcome=\"refused\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n > 0), "{metrics}");
    // What is written to it after the refused lines is read by the next run.
    let newer = "Nov 29 12:00:00 sftp1 sftpd-wrapper[9]: session start sid=sftp1-late-9-1 user=late client_ip=192.0.2.9 client_port=4000 local_ip=198.51.100.1 local_port=22\n";
    let mut appended = text[..b].to_owned();
    appended.push_str(newer);
    fs::write(&rotated, &appended).unwrap();
    let again = ingest(&db, &[&rotated]);
    assert!(again.contains("parsed 1"), "{again}");
    assert_eq!(
        report_json(&db, &["sessions", "--user", "late"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    fs::write(&rotated, &text[..b]).unwrap();
    rebuild(&db);
}
on_both_backends!(rotated_files_out_of_order_are_refused_and_rebuilt);

/// Both stores write a full batch of rows in a thread of its own while the ingest goes on: an
/// error there (here an admin's trigger refusing the close of a file a batch wrote) fails the
/// ingest with its message and commits nothing; once the cause is gone, a re-run equals a clean
/// run.
fn an_error_while_a_batch_is_written_in_the_background_fails_the_ingest_and_commits_nothing(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    // Enough rows before the first commit (250,000 lines) for several batches of 5,000.
    let log = loggen::generate(45_000, 30, 17);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let db = new_db(backend, dir.path(), "db");
    let empty = dir.path().join("empty.log");
    fs::write(&empty, "").unwrap();
    ingest(&db, &[&empty]);
    // Only early files: those still open when the first batches were written, whose closes go
    // out with a later batch in the background (a commit's own batch closes later files).
    let (refuse, allow) = match backend {
        Backend::Sqlite => (
            "CREATE TRIGGER refuse_closes BEFORE UPDATE OF closed_at_us ON transfer_rows
                 WHEN NEW.id <= 4000 BEGIN
                 SELECT RAISE(ABORT, 'closes refused by a test trigger');
             END;",
            "DROP TRIGGER refuse_closes",
        ),
        Backend::Postgres => (
            "CREATE FUNCTION refuse_closes() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 RAISE EXCEPTION 'closes refused by a test trigger';
             END $$;
             CREATE TRIGGER refuse_closes BEFORE UPDATE OF closed_at ON transfers
                 FOR EACH ROW WHEN (NEW.id <= 4000) EXECUTE FUNCTION refuse_closes();",
            "DROP TRIGGER refuse_closes ON transfers",
        ),
    };
    run_sql(&db, refuse);
    let out = sftpd_report(&db, &["ingest", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("closes refused by a test trigger"),
        "{stderr}"
    );
    let rows = query_i64(
        &db,
        "SELECT (SELECT COUNT(*) FROM sessions) + (SELECT COUNT(*) FROM transfers)
                + (SELECT COUNT(*) FROM operations) + (SELECT COUNT(*) FROM checkpoints)",
    );
    assert_eq!(rows, 0, "nothing of the failed ingest was committed");
    run_sql(&db, allow);
    ingest(&db, &[&path]);
    assert_eq!(usage_totals(&db), log.totals);
    let clean = new_db(backend, dir.path(), "clean");
    ingest(&clean, &[&path]);
    assert_same(&dump(&db), &dump(&clean));
}
on_both_backends!(
    an_error_while_a_batch_is_written_in_the_background_fails_the_ingest_and_commits_nothing
);

/// One capture-mode session (`transfers=wire`) and one syslog-mode session, as lines keyed by a
/// short name, so that tests can deliver them in other orders.
fn wire_session_lines() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "W0",
            "Nov  3 11:00:00 h1 sftpd-wrapper[600]: session start sid=h1-wire-600 user=acme client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22",
        ),
        (
            "W1",
            "Nov  3 11:00:00 h1 sftpd-wrapper[600]: sftp-server started sid=h1-wire-600 user=acme sftp_pid=601 path=/usr/lib/openssh/sftp-server args=\"-e -l info\" transfers=wire",
        ),
        (
            "S0",
            "Nov  3 11:00:00 h1 sftp-server[601]: session opened for local user acme from [192.0.2.1]",
        ),
        (
            "S1",
            "Nov  3 11:00:01 h1 sftp-server[601]: open \"/srv/acme/up load.bin\" flags WRITE,CREATE,TRUNCATE mode 0644",
        ),
        (
            "S2",
            "Nov  3 11:00:02 h1 sftp-server[601]: close \"/srv/acme/up load.bin\" bytes read 0 written 1000",
        ),
        (
            "W2",
            "Nov  3 11:00:02 h1 sftpd-wrapper[600]: file closed sid=h1-wire-600 user=acme sftp_pid=601 path=\"/srv/acme/up load.bin\" counts_as=upload bytes_read=0 bytes_written=1000 complete=1 failed=0 forced=0 open_flags=WRITE,CREATE,TRUNCATE elapsed_ms=1500",
        ),
        (
            "S3",
            "Nov  3 11:00:03 h1 sftp-server[601]: open \"/srv/acme/down.csv\" flags READ mode 0666",
        ),
        (
            "S4",
            "Nov  3 11:00:03 h1 sftp-server[601]: close \"/srv/acme/down.csv\" bytes read 500 written 0",
        ),
        (
            "W3",
            "Nov  3 11:00:03 h1 sftpd-wrapper[600]: file closed sid=h1-wire-600 user=acme sftp_pid=601 path=/srv/acme/down.csv counts_as=download bytes_read=500 bytes_written=0 complete=1 failed=0 forced=0 open_flags=READ elapsed_ms=20",
        ),
        // A server-side copy: sftp-server's own counters say bytes were written; none crossed
        // the wire.
        (
            "S5",
            "Nov  3 11:00:04 h1 sftp-server[601]: open \"/srv/acme/copy.bin\" flags WRITE,CREATE,TRUNCATE mode 0644",
        ),
        (
            "S6",
            "Nov  3 11:00:04 h1 sftp-server[601]: close \"/srv/acme/copy.bin\" bytes read 0 written 1000",
        ),
        (
            "W4",
            "Nov  3 11:00:04 h1 sftpd-wrapper[600]: file closed sid=h1-wire-600 user=acme sftp_pid=601 path=/srv/acme/copy.bin counts_as=copy bytes_read=0 bytes_written=0 complete=1 failed=0 forced=0 open_flags=WRITE,CREATE,TRUNCATE elapsed_ms=5 copied_from=\"/srv/acme/up load.bin\"",
        ),
        (
            "S7",
            "Nov  3 11:00:05 h1 sftp-server[601]: open \"/srv/acme/peek\" flags READ mode 0666",
        ),
        (
            "S8",
            "Nov  3 11:00:05 h1 sftp-server[601]: close \"/srv/acme/peek\" bytes read 0 written 0",
        ),
        (
            "W5",
            "Nov  3 11:00:05 h1 sftpd-wrapper[600]: file closed sid=h1-wire-600 user=acme sftp_pid=601 path=/srv/acme/peek counts_as=none bytes_read=0 bytes_written=0 complete=1 failed=0 forced=0 open_flags=READ elapsed_ms=1",
        ),
        (
            "S9",
            "Nov  3 11:00:06 h1 sftp-server[601]: remove name \"/srv/acme/old.txt\"",
        ),
        // A failed open: sftp-server logs it; the wire has no file, so no transfer.
        (
            "S10",
            "Nov  3 11:00:06 h1 sftp-server[601]: open \"/srv/acme/denied\" flags WRITE,CREATE,TRUNCATE mode 0644",
        ),
        (
            "S11",
            "Nov  3 11:00:06 h1 sftp-server[601]: sent status Permission denied",
        ),
        (
            "S12",
            "Nov  3 11:00:07 h1 sftp-server[601]: open \"/srv/acme/big.bin\" flags WRITE,CREATE,TRUNCATE mode 0644",
        ),
        (
            "S13",
            "Nov  3 11:00:09 h1 sftp-server[601]: forced close \"/srv/acme/big.bin\" bytes read 0 written 300",
        ),
        (
            "W6",
            "Nov  3 11:00:09 h1 sftpd-wrapper[600]: file closed sid=h1-wire-600 user=acme sftp_pid=601 path=/srv/acme/big.bin counts_as=upload bytes_read=0 bytes_written=300 complete=0 failed=0 forced=1 open_flags=WRITE,CREATE,TRUNCATE elapsed_ms=2000",
        ),
        (
            "S14",
            "Nov  3 11:00:09 h1 sftp-server[601]: session closed for local user acme from [192.0.2.1]",
        ),
        (
            "W7",
            "Nov  3 11:00:09 h1 sftpd-wrapper[600]: session end sid=h1-wire-600 user=acme client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22 sftp_pid=601 duration_ms=9000 exit_status=0 files_uploaded=2 files_downloaded=1 bytes_uploaded=1300 bytes_downloaded=500 failed_operations=1",
        ),
        // Syslog mode: the transfers are sftp-server's lines, as before.
        (
            "P0",
            "Nov  3 11:01:00 h1 sftpd-wrapper[700]: session start sid=h1-log-700 user=beta client_ip=192.0.2.2 client_port=4001 local_ip=198.51.100.1 local_port=22",
        ),
        (
            "P1",
            "Nov  3 11:01:00 h1 sftpd-wrapper[700]: sftp-server started sid=h1-log-700 user=beta sftp_pid=701 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        ),
        (
            "P2",
            "Nov  3 11:01:00 h1 sftp-server[701]: session opened for local user beta from [192.0.2.2]",
        ),
        (
            "P3",
            "Nov  3 11:01:01 h1 sftp-server[701]: open \"/srv/beta/in.csv\" flags READ mode 0666",
        ),
        (
            "P4",
            "Nov  3 11:01:01 h1 sftp-server[701]: close \"/srv/beta/in.csv\" bytes read 77 written 0",
        ),
        (
            "P5",
            "Nov  3 11:01:01 h1 sftp-server[701]: session closed for local user beta from [192.0.2.2]",
        ),
        (
            "P6",
            "Nov  3 11:01:02 h1 sftpd-wrapper[700]: session end sid=h1-log-700 user=beta client_ip=192.0.2.2 client_port=4001 local_ip=198.51.100.1 local_port=22 sftp_pid=701 duration_ms=2000 exit_status=0",
        ),
    ]
}

/// The orders the two processes' lines can reach the log in: as written; each `file closed`
/// before sftp-server's close and sftp-server's last line after the wrapper's end; sftp-server's
/// lines before the wrapper said `transfers=wire`.
fn wire_orders() -> Vec<(&'static str, Vec<&'static str>)> {
    let as_written: Vec<&str> = wire_session_lines().iter().map(|(k, _)| *k).collect();
    let tail = ["P0", "P1", "P2", "P3", "P4", "P5", "P6"];
    let mut wrapper_first = vec![
        "W0", "W1", "S0", "S1", "W2", "S2", "S3", "W3", "S4", "S5", "W4", "S6", "S7", "W5", "S8",
        "S9", "S10", "S11", "S12", "W6", "S13", "W7", "S14",
    ];
    wrapper_first.extend(tail);
    let mut sftp_server_first = vec![
        "W0", "S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S12",
        "W1", "W2", "W3", "W4", "W5", "S13", "W6", "W7", "S14",
    ];
    sftp_server_first.extend(tail);
    vec![
        ("as written", as_written),
        ("file closed first", wrapper_first),
        ("sftp-server first", sftp_server_first),
    ]
}

fn wire_log(order: &[&str]) -> Vec<&'static str> {
    let lines = wire_session_lines();
    assert_eq!(order.len(), lines.len());
    order
        .iter()
        .map(|k| lines.iter().find(|(name, _)| name == k).unwrap().1)
        .collect()
}

/// What the database must hold for [`wire_session_lines`], whatever the order.
#[track_caller]
fn assert_wire_rows(db: &str, what: &str) {
    let acme = report_json(db, &["transfers", "--user", "acme"]);
    let rows: Vec<(String, String, i64, i64, bool, bool)> = acme
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["path"].as_str().unwrap().to_owned(),
                t["direction"].as_str().unwrap().to_owned(),
                t["bytes_read"].as_i64().unwrap(),
                t["bytes_written"].as_i64().unwrap(),
                t["complete"].as_bool().unwrap(),
                t["forced"].as_bool().unwrap(),
            )
        })
        .collect();
    let row = |p: &str, d: &str, r, w, c, f| (p.to_owned(), d.to_owned(), r, w, c, f);
    assert_eq!(
        rows,
        [
            row("/srv/acme/up load.bin", "upload", 0, 1000, true, false),
            row("/srv/acme/down.csv", "download", 500, 0, true, false),
            row("/srv/acme/peek", "download", 0, 0, true, false),
            row("/srv/acme/big.bin", "upload", 0, 300, false, true),
        ],
        "{what}: {acme:#}"
    );
    // Opened at the line's time less elapsed_ms, closed at the line's.
    assert_eq!(
        acme[0]["closed"].as_str().unwrap()[11..19],
        *"11:00:02",
        "{what}"
    );
    let opened = |t: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap());
    assert_eq!(
        (opened(&acme[0]["closed"]).unwrap() - opened(&acme[0]["opened"]).unwrap())
            .num_milliseconds(),
        1500,
        "{what}: {acme:#}"
    );
    let beta = report_json(db, &["transfers", "--user", "beta"]);
    assert_eq!(beta.as_array().unwrap().len(), 1, "{what}: {beta:#}");
    assert_eq!(beta[0]["bytes_read"], 77, "{what}");
    let totals = usage_totals(db);
    let acme_usage = &totals[&("h1".to_owned(), "acme".to_owned())];
    assert_eq!(
        (
            acme_usage.sessions,
            acme_usage.files_up,
            acme_usage.files_down,
            acme_usage.bytes_up,
            acme_usage.bytes_down
        ),
        (1, 1, 1, 1300, 500),
        "{what}: the copy is no traffic, the forced upload is incomplete"
    );
    let count = |sql: &str| query_i64(db, sql);
    assert_eq!(
        count(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM operations WHERE kind = 'copy' AND NOT failed
                AND path IS NOT NULL AND target IS NOT NULL"
        ),
        1,
        "{what}"
    );
    assert_eq!(
        count("SELECT CAST(COUNT(*) AS BIGINT) FROM operations WHERE kind = 'remove'"),
        1,
        "{what}: operations still come from sftp-server's lines"
    );
    assert_eq!(
        count("SELECT CAST(COUNT(*) AS BIGINT) FROM sessions"),
        2,
        "{what}"
    );
    let sessions = report_json(db, &["sessions", "--user", "acme"]);
    assert_eq!(sessions[0]["end"], "closed", "{what}: {sessions:#}");
}

/// Capture mode: a session's transfers are the wrapper's `file closed` lines, never also
/// sftp-server's open and close lines, whatever order the two processes' lines reach the log
/// in, and wherever an ingest run (or a commit) stops within the session; syslog-mode sessions
/// are read from sftp-server's lines as before.
fn a_wire_session_bills_its_file_closed_lines_in_any_order_and_split(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut reference: Option<String> = None;
    for (n, (what, order)) in wire_orders().into_iter().enumerate() {
        let lines = wire_log(&order);
        let path = dir.path().join("wire.log");
        fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
        let db = new_db(backend, dir.path(), &format!("whole-{n}"));
        let summary = ingest(&db, &[&path]);
        assert!(
            summary.contains("skipped 0") && summary.contains("transfers 5"),
            "{what}: {summary}"
        );
        assert_wire_rows(&db, what);
        let whole = dump(&db);
        // The same rows in every order.
        match &reference {
            None => reference = Some(whole.clone()),
            Some(r) => assert_same(&whole, r),
        }
        // Every place a run can stop: the rest read by a second run, in small batches.
        let step = if backend == Backend::Sqlite { 1 } else { 4 };
        for k in (1..lines.len()).step_by(step) {
            if order[k - 1] == "W7" && order[k] == "S14" {
                // sftp-server's `session closed` after the wrapper's end, read by the next run:
                // a session of its own (without transfers), as documented for any session.
                continue;
            }
            let split = dir.path().join(format!("split-{n}-{k}.log"));
            fs::write(&split, format!("{}\n", lines[..k].join("\n"))).unwrap();
            let db = new_db(backend, dir.path(), &format!("split-{n}-{k}"));
            ingest(&db, &[&split]);
            let mut f = fs::OpenOptions::new().append(true).open(&split).unwrap();
            writeln!(f, "{}", lines[k..].join("\n")).unwrap();
            drop(f);
            let out = sftpd_report(
                &db,
                &["ingest", "--batch-lines", "3", split.to_str().unwrap()],
            );
            assert!(out.status.success(), "{what}, split at {k}");
            common::assert_rollups_exact(&db);
            assert_wire_rows(&db, &format!("{what}, split at {k}"));
            assert_same(&dump(&db), &whole);
        }
    }
}
on_both_backends!(a_wire_session_bills_its_file_closed_lines_in_any_order_and_split);

/// `sftpd-report ARGS` on `db` with `TZ` set: the zone of year-less local stamps.
fn sftpd_report_tz(db: &str, tz: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .args(["--db", db, "--config", "/nonexistent/x.toml"])
        .args(args)
        .env("TZ", tz)
        .output()
        .unwrap()
}

/// A NUL in any text field (the syslog host, a user name, sshd's key, a status text, a wrapper
/// `\x00` escape) is stored as U+FFFD by both stores: PostgreSQL's text cannot hold NUL, and
/// one such line refused every later ingest of the file. The log bytes themselves are kept.
fn nul_bytes_in_text_fields_are_stored_as_replacement_characters(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "Nov  3 10:00:00 h\0st sshd[500]: Accepted publickey for ac\0me from 192.0.2.1 port 4000 ssh2: ED25519 SHA256:k\0y",
        "Nov  3 10:00:00 h\0st sftpd-wrapper[500]: session start sid=h-n-500-1 user=\"ac\\x00me\" client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22",
        "Nov  3 10:00:00 h\0st sftp-server[501]: session opened for local user ac\0me from [192.0.2.1]",
        "Nov  3 10:00:01 h\0st sftpd-wrapper[500]: sftp-server started sid=h-n-500-1 user=\"ac\\x00me\" sftp_pid=501 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"",
        "Nov  3 10:00:02 h\0st sftp-server[501]: open \"/srv/ac\\000me/a\" flags WRITE,CREATE,TRUNCATE mode 0644",
        "Nov  3 10:00:03 h\0st sftp-server[501]: close \"/srv/ac\\000me/a\" bytes read 0 written 10",
        "Nov  3 10:00:04 h\0st sftp-server[501]: remove name \"/srv/x\"",
        "Nov  3 10:00:04 h\0st sftp-server[501]: sent status No such\0file",
        "Nov  3 10:00:05 h\0st sftp-server[501]: session closed for local user ac\0me from [192.0.2.1]",
        "Nov  3 10:00:05 h\0st sftpd-wrapper[500]: session end sid=h-n-500-1 user=\"ac\\x00me\" client_ip=192.0.2.1 client_port=4000 local_ip=198.51.100.1 local_port=22 sftp_pid=501 duration_ms=5000 exit_status=0",
        "Nov  3 10:01:00 h1 sftpd-wrapper[900]: session refused sid=h1-c-900-3 user=acme client_ip=192.0.2.1 client_port=5001 local_ip=198.51.100.1 local_port=22 reason=command_not_allowed command=\"id\\x00; sh\"",
        "Nov  3 10:02:00 h1 sftp-server[1000]: session opened for local user acme from [192.0.2.1]",
        "Nov  3 10:02:01 h1 sftp-server[1000]: open \"/srv/acme/b\" flags READ mode 0666",
        "Nov  3 10:02:02 h1 sftp-server[1000]: close \"/srv/acme/b\" bytes read 7 written 0",
        "Nov  3 10:02:03 h1 sftp-server[1000]: session closed for local user acme from [192.0.2.1]",
    ];
    let path = dir.path().join("sftpd.log");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let db = new_db(backend, dir.path(), "nul");
    let summary = ingest(&db, &[&path]);
    assert!(summary.contains("lines read 15"), "{summary}");
    let sessions = report_json(&db, &["sessions"]);
    let rows = sessions.as_array().unwrap();
    let nul = rows
        .iter()
        .find(|s| s["host"] == "h\u{fffd}st")
        .unwrap_or_else(|| panic!("{sessions}"));
    assert_eq!(nul["user"], "ac\u{fffd}me", "{sessions}");
    assert_eq!(nul["bytes_up"], 10, "{sessions}");
    assert_eq!(nul["end"], "closed", "{sessions}");
    assert_eq!(nul["auth"], "publickey", "{sessions}");
    let acme = rows
        .iter()
        .find(|s| s["user"] == "acme" && s["bytes_down"] == 7);
    assert!(acme.is_some(), "{sessions}");
    // The name keeps its bytes; its readable form shows the NUL as an escape.
    let transfers = report_json(&db, &["transfers", "--user", "ac\u{fffd}me"]);
    assert_eq!(transfers[0]["path"], "/srv/ac\\x00me/a", "{transfers}");
    // The file is done: the next run (a follower's restart) reads nothing and fails nothing.
    let again = ingest(&db, &[&path]);
    assert!(again.contains("lines read 0"), "{again}");
    // More lines after it are taken as usual.
    let mut more = fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(
        more,
        "Nov  3 10:03:00 h1 sftp-server[1100]: session opened for local user acme from [192.0.2.1]"
    )
    .unwrap();
    writeln!(more, "Nov  3 10:03:01 h1 sftp-server[1100]: session closed for local user ac\0me from [192.0.2.1]").unwrap();
    drop(more);
    let last = ingest(&db, &[&path]);
    assert!(last.contains("lines read 2"), "{last}");
    let rows = dump(&db);
    assert!(rows.contains(" SHA256:k\u{fffd}y|"), "{rows}");
    assert!(
        rows.contains("|id\u{fffd}; sh|") && !rows.contains('\0'),
        "{rows}"
    );
    if backend == Backend::Postgres {
        let sqlite = new_db(Backend::Sqlite, dir.path(), "nul");
        ingest(&sqlite, &[&path]);
        assert_same(&rows, &dump(&sqlite));
    }
}
on_both_backends!(nul_bytes_in_text_fields_are_stored_as_replacement_characters);

/// Control and bidirectional characters in a host, user, client address, key or file name reach
/// no report as they are: a terminal escape or a carriage return in a table is an injection,
/// and U+202E shows `invoice\u{202e}lmx.exe` as `invoiceexe.xml`. Table, CSV and HTML show them
/// as `\xHH` / `\u{HHHH}`; JSON keeps the exact text with `\uHHHH` escapes.
fn reports_escape_control_and_bidi_characters(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let host = "h\u{1b}]0;owned\u{7}";
    let user = "ac\u{202e}em";
    let ip = "192.0.2.1\u{1b}[2K";
    let lines = [
        format!(
            "Nov  3 10:00:00 {host} sshd[500]: Accepted publickey for {user} from {ip} port 4000 ssh2: ED25519 SHA256:k\u{1b}[31m\u{2066}"
        ),
        format!(
            "Nov  3 10:00:00 {host} sftp-server[501]: session opened for local user {user} from [{ip}]"
        ),
        format!(
            "Nov  3 10:00:02 {host} sftp-server[501]: open \"/srv/invoice\u{202e}lmx.exe\" flags WRITE,CREATE,TRUNCATE mode 0644"
        ),
        format!(
            "Nov  3 10:00:03 {host} sftp-server[501]: close \"/srv/invoice\u{202e}lmx.exe\" bytes read 0 written 10"
        ),
        format!(
            "Nov  3 10:00:05 {host} sftp-server[501]: session closed for local user {user} from [{ip}]"
        ),
    ];
    let path = dir.path().join("sftpd.log");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let db = new_db(backend, dir.path(), "esc");
    ingest(&db, &[&path]);
    let hidden = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    for args in [
        &["sessions", "--format", "table"][..],
        &["sessions", "--format", "csv"],
        &["sessions", "--format", "json"],
        &["transfers", "--format", "table"],
        &["transfers", "--format", "csv"],
        &["transfers", "--format", "json"],
        &["usage", "--format", "table"],
        &["usage", "--format", "csv"],
        &["usage", "--format", "html"],
    ] {
        let out = sftpd_report(&db, args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.chars().any(hidden), "{args:?}: {text:?}");
        if args[2] == "json" {
            continue;
        }
        assert!(
            text.contains("h\\x1b]0;owned\\x07") && text.contains("ac\\u{202e}em"),
            "{args:?}: {text}"
        );
        if args[0] == "sessions" {
            assert!(text.contains("192.0.2.1\\x1b[2K"), "{args:?}: {text}");
        }
        if args[0] == "transfers" {
            assert!(text.contains("invoice\\u{202e}lmx.exe"), "{args:?}: {text}");
        }
    }
    // JSON: the exact values, as escapes.
    let sessions = report_json(&db, &["sessions"]);
    assert_eq!(sessions[0]["user"], user);
    assert_eq!(sessions[0]["host"], host);
    let out = sftpd_report(&db, &["transfers", "--format", "json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("invoice\\u202elmx.exe"), "{text}");
}
on_both_backends!(reports_escape_control_and_bidi_characters);

/// `sftpd-report ARGS` on `db` as the user `nobody`, who may read but not write it.
fn sftpd_report_as_nobody(db: &str, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .args(["--db", db, "--config", "/nonexistent/sftpd-wrapper.toml"])
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap()
}

/// Issue 27, item 2: RFC 3164 stamps (no year, no zone) through the DST fall-back hour, read
/// with TZ=America/New_York by the real binary. 2026-11-01 01:00 to 01:59 comes twice (EDT,
/// then EST): within a file the second 01:xx after the first is the later offset, the first
/// pass is EDT (01:40 is 05:40Z), and a run or a file that starts inside the repeated hour is
/// neither refused nor misplaced: every way of reading the lines stores the same instants.
fn dst_fall_back_hour_is_read_in_order(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let tz = "America/New_York";
    let session = |no: u32, user: &str, hour: u32, minute: u32| -> String {
        let at = |second: u32| format!("Nov  1 {hour:02}:{minute:02}:{second:02} ny1");
        let (w, s) = (100 + 2 * no, 101 + 2 * no);
        let sid = format!("ny1-20261101T000000-{w}-{no:08x}");
        [
            format!("{} sftpd-wrapper[{w}]: session start sid={sid} user={user} client_ip=192.0.2.1 client_port={} local_ip=198.51.100.1 local_port=22", at(0), 40_000 + no),
            format!("{} sftpd-wrapper[{w}]: sftp-server started sid={sid} user={user} sftp_pid={s} path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"", at(1)),
            format!("{} sftp-server[{s}]: session opened for local user {user} from [192.0.2.1]", at(2)),
            format!("{} sftp-server[{s}]: open \"/srv/{user}/in.csv\" flags WRITE,CREATE,TRUNCATE mode 0644", at(3)),
            format!("{} sftp-server[{s}]: close \"/srv/{user}/in.csv\" bytes read 0 written {}", at(4), 1000 + no),
            format!("{} sftp-server[{s}]: session closed for local user {user} from [192.0.2.1]", at(5)),
            format!("{} sftpd-wrapper[{w}]: session end sid={sid} user={user} client_ip=192.0.2.1 client_port={} local_ip=198.51.100.1 local_port=22 sftp_pid={s} duration_ms=5000 exit_status=0", at(6), 40_000 + no),
        ]
        .join("\n")
            + "\n"
    };
    // Before the hour, its first pass (EDT), its second pass (EST), after it.
    let first_pass = [
        session(1, "before", 0, 50),
        session(2, "edt10", 1, 10),
        session(3, "edt40", 1, 40),
        session(4, "edt55", 1, 55),
    ]
    .concat();
    let second_pass = [session(5, "est05", 1, 5), session(6, "est40", 1, 40)].concat();
    let after = session(7, "after", 2, 10);
    let want = [
        ("after", "2026-11-01T07:10:00.000000Z"),
        ("before", "2026-11-01T04:50:00.000000Z"),
        ("edt10", "2026-11-01T05:10:00.000000Z"),
        ("edt40", "2026-11-01T05:40:00.000000Z"),
        ("edt55", "2026-11-01T05:55:00.000000Z"),
        ("est05", "2026-11-01T06:05:00.000000Z"),
        ("est40", "2026-11-01T06:40:00.000000Z"),
    ];
    // The year of the stamps is that of the file's modification time.
    let write = |path: &Path, text: &str| {
        fs::write(path, text).unwrap();
        let when = std::time::UNIX_EPOCH + Duration::from_secs(1_793_620_800); // 2026-11-02T12:00Z
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    let run = |db: &str, files: &[&Path]| {
        let mut args = vec!["ingest".to_owned()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sftpd_report_tz(db, tz, &args);
        assert!(
            out.status.success(),
            "{db} {files:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!summary.contains("not billed"), "{summary}");
        common::assert_rollups_exact(db);
    };
    let starts = |db: &str| -> Vec<(String, String)> {
        let out = sftpd_report_tz(db, tz, &["sessions", "--format", "json"]);
        assert!(out.status.success());
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut got: Vec<(String, String)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["user"].as_str().unwrap().to_owned(),
                    r["started"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        got.sort();
        got
    };
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(u, t)| (u.to_string(), t.to_string()))
        .collect();

    // One file, one run.
    let whole = dir.path().join("whole.log");
    write(
        &whole,
        &[first_pass.as_str(), &second_pass, &after].concat(),
    );
    let db = new_db(backend, dir.path(), "whole");
    run(&db, &[&whole]);
    assert_eq!(starts(&db), want, "one run");
    let clean = dump(&db);

    // The file growing: the second run starts inside the repeated hour's second pass.
    let live = dir.path().join("sftpd.log");
    let db = new_db(backend, dir.path(), "growing");
    write(&live, &first_pass);
    run(&db, &[&live]);
    write(&live, &[first_pass.as_str(), &second_pass].concat());
    run(&db, &[&live]);
    write(&live, &[first_pass.as_str(), &second_pass, &after].concat());
    run(&db, &[&live]);
    assert_eq!(starts(&db), want, "growing");
    assert_same(&dump(&db), &clean);

    // Rotated inside the repeated hour: the new file begins in its second pass.
    let rotated = dir.path().join("sftpd.log.1");
    let db = new_db(backend, dir.path(), "rotated");
    write(&rotated, &first_pass);
    run(&db, &[&rotated]);
    write(&live, &[second_pass.as_str(), &after].concat());
    run(&db, &[&live]);
    assert_eq!(starts(&db), want, "rotated");
    assert_same(&dump(&db), &clean);
}
on_both_backends!(dst_fall_back_hour_is_read_in_order);

/// Every report that only reads: the same output from a database its user cannot write.
const READING_REPORTS: [&[&str]; 8] = [
    &["sessions", "--format", "csv"],
    &["transfers", "--format", "json"],
    &["usage", "--by", "month", "--tz", "UTC", "--format", "csv"],
    &["usage", "--from-rows", "--tz", "UTC", "--format", "csv"],
    &["usage", "--format", "html", "--tz", "UTC"],
    &[
        "statement",
        "--user",
        "u001",
        "--month",
        "2026-11",
        "--tz",
        "UTC",
    ],
    &["metrics"],
    &["rollups", "--check"],
];

/// Issue 27 item 13: finance's read-only copy. Every report runs on a database its user cannot
/// write (a file and directory of root's, read as nobody; a PostgreSQL role with SELECT only),
/// writes nothing, and shows what it shows to the owner. A database older than the program, which
/// a report would upgrade, is a one-line error that says how; a zero-length file is not taken for
/// an empty database.
fn reports_run_on_a_database_they_cannot_write(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let log = loggen::generate(3_000, 10, 27);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let db = new_db(backend, dir.path(), "owner");
    ingest(&db, &[&path]);
    let reader = match backend {
        Backend::Sqlite => {
            let copy = dir.path().join("finance");
            fs::create_dir(&copy).unwrap();
            let file = copy.join("copy.db");
            fs::copy(&db, &file).unwrap();
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o444))
                .unwrap();
            std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o555))
                .unwrap();
            file.display().to_string()
        }
        Backend::Postgres => {
            run_sql(
                &db,
                "DO $$ BEGIN CREATE ROLE finance LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO finance",
            );
            db.replacen("postgres://postgres@", "postgres://finance@", 1)
        }
    };
    let before = match backend {
        Backend::Sqlite => fs::read(&reader).unwrap(),
        Backend::Postgres => dump(&db).into_bytes(),
    };
    for args in READING_REPORTS {
        let owner = sftpd_report(&db, args);
        let read = sftpd_report_as_nobody(&reader, args);
        assert!(
            read.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&read.stderr)
        );
        let page = |o: &std::process::Output| {
            // The page says when it was made.
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines()
                .filter(|l| !l.contains("Generated") && !l.contains("generated"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(page(&read), page(&owner), "{args:?}");
    }
    match backend {
        Backend::Sqlite => {
            assert_eq!(fs::read(&reader).unwrap(), before, "the copy changed");
            let names: Vec<_> = fs::read_dir(dir.path().join("finance"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["copy.db"], "files made beside the copy");
        }
        Backend::Postgres => assert_same(&dump(&db), std::str::from_utf8(&before).unwrap()),
    }

    // A database of an older schema: a report would upgrade it, and says how instead.
    run_sql(&db, "UPDATE schema_version SET version = 8");
    let older = match backend {
        Backend::Sqlite => {
            let file = dir.path().join("older.db");
            fs::copy(&db, &file).unwrap();
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o444))
                .unwrap();
            file.display().to_string()
        }
        Backend::Postgres => reader.clone(),
    };
    let out = sftpd_report_as_nobody(&older, &["sessions"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("schema version 8") && stderr.contains("sftpd-report ingest"),
        "{stderr}"
    );
    if backend == Backend::Postgres {
        assert_eq!(query_i64(&db, "SELECT version FROM schema_version"), 8);
        return;
    }

    // A zero-length file is not a database: reports refuse it and leave it as it is.
    let empty = dir.path().join("empty.db");
    fs::write(&empty, b"").unwrap();
    for command in ["sessions", "usage", "metrics"] {
        let out = sftpd_report(empty.to_str().unwrap(), &[command]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("empty file"), "{stderr}");
        assert_eq!(fs::metadata(&empty).unwrap().len(), 0);
    }
}
on_both_backends!(reports_run_on_a_database_they_cannot_write);

/// Issue 27 item 3: `/metrics` is served beside the follower, not inside its loop. A client
/// that sends its request a byte every 1.5 s and 50 connections that send nothing (opened again
/// and again) neither stop the ingest (sessions written to the log keep arriving in the
/// database) nor delay SIGTERM; each connection has a deadline and their number a cap, so a
/// scrape is answered again once the idle ones are cut off.
fn slow_and_idle_metrics_clients_do_not_stop_the_follower(backend: Backend) {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sftpd.log");
    let session = |n: u32| {
        let s = format!("h sftp-server[{}]:", 1000 + n);
        format!(
            "2026-11-29T10:{m:02}:{s0:02}+00:00 {s} session opened for local user acme from [10.0.0.1]\n\
             2026-11-29T10:{m:02}:{s0:02}+00:00 {s} open \"/f{n}\" flags WRITE,CREATE,TRUNCATE mode 0644\n\
             2026-11-29T10:{m:02}:{s0:02}+00:00 {s} close \"/f{n}\" bytes read 0 written {n}\n\
             2026-11-29T10:{m:02}:{s0:02}+00:00 {s} session closed for local user acme from [10.0.0.1]\n",
            m = n / 60,
            s0 = n % 60
        )
    };
    fs::write(&path, session(0)).unwrap();
    let db = new_db(backend, dir.path(), "metrics");
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut follower = Follower::start(
        &db,
        &[
            std::ffi::OsStr::new("--metrics-listen"),
            listen.as_ref(),
            path.as_ref(),
        ],
    );
    let scrape = || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.starts_with("HTTP/1.1 200").then_some(())
    };
    common::wait_until("/metrics", Duration::from_secs(20), scrape);
    let sessions = || query_i64(&db, "SELECT COUNT(*) FROM sessions");
    common::wait_until("the first session", Duration::from_secs(20), || {
        (sessions() == 1).then_some(())
    });

    let attacking = AtomicBool::new(true);
    /// Ends the attack however the test ends, so that the scope's threads end too.
    struct Ceasefire<'a>(&'a AtomicBool);
    impl Drop for Ceasefire<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    std::thread::scope(|scope| {
        let _ceasefire = Ceasefire(&attacking);
        // A request a byte at a time, every 1.5 s, on a new connection whenever one is cut.
        scope.spawn(|| {
            let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
            while attacking.load(Ordering::SeqCst) {
                let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                };
                for b in request.iter().cycle() {
                    if !attacking.load(Ordering::SeqCst) || stream.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1500));
                }
            }
        });
        // 50 connections that send nothing, opened again every 3 s.
        scope.spawn(|| {
            while attacking.load(Ordering::SeqCst) {
                let idle: Vec<_> = (0..50)
                    .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
                    .collect();
                std::thread::sleep(Duration::from_secs(3));
                drop(idle);
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        // Sessions keep arriving, one a second.
        for n in 1..=8 {
            let mut log = fs::OpenOptions::new().append(true).open(&path).unwrap();
            log.write_all(session(n).as_bytes()).unwrap();
            drop(log);
            let want = i64::from(n) + 1;
            common::wait_until(
                &format!("session {n} in the database while /metrics is attacked"),
                Duration::from_secs(3),
                || (sessions() >= want).then_some(()),
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        // SIGTERM is taken at once, attack or not.
        let asked = std::time::Instant::now();
        let out = follower.terminate();
        assert!(out.status.success(), "{out:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "SIGTERM took {:?}",
            asked.elapsed()
        );
        attacking.store(false, Ordering::SeqCst);
    });
    assert_eq!(sessions(), 9);
    common::assert_rollups_exact(&db);

    // The cap and the deadline: a scrape is answered while idle connections come and go.
    let mut follower = Follower::start(
        &db,
        &[
            std::ffi::OsStr::new("--metrics-listen"),
            listen.as_ref(),
            path.as_ref(),
        ],
    );
    common::wait_until("/metrics again", Duration::from_secs(20), scrape);
    let idle: Vec<_> = (0..50)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    common::wait_until(
        "a scrape past 50 idle connections",
        Duration::from_secs(20),
        scrape,
    );
    drop(idle);
    assert!(follower.terminate().status.success());
}
on_both_backends!(slow_and_idle_metrics_clients_do_not_stop_the_follower);

/// Issue 27 item 7: `copy` from a database that read the whole log into one that read only its
/// first half (the session open there, 1 up/1 down where the log holds 4 up/2 down) is refused
/// with one line naming the session, and leaves the target as it was: it would keep the half
/// session and take the source's further checkpoint, and the next ingest would skip the rest.
/// Once the target has read the rest, the copy adds nothing and goes through.
fn copy_into_a_database_that_saw_part_of_the_log_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = |n: u32, dir: &str, up: bool| {
        let (as_, r, w, flags) = if up {
            ("upload", 0, 1000 + n, "WRITE,CREATE,TRUNCATE")
        } else {
            ("download", 500 + n, 0, "READ")
        };
        format!(
            "Nov  3 11:00:0{n} h1 sftpd-wrapper[600]: file closed sid=h1-copy-600 user=acme sftp_pid=601 path=/srv/acme/{dir}{n} counts_as={as_} bytes_read={r} bytes_written={w} complete=1 failed=0 forced=0 open_flags={flags} elapsed_ms=1\n"
        )
    };
    let mut first = String::from(
        "Nov  3 11:00:00 h1 sftpd-wrapper[600]: session start sid=h1-copy-600 user=acme client_ip=10.0.0.5 client_port=40000 local_ip=10.0.0.1 local_port=22\n\
         Nov  3 11:00:00 h1 sftpd-wrapper[600]: sftp-server started sid=h1-copy-600 user=acme sftp_pid=601 path=/usr/lib/openssh/sftp-server args=\"-e -l info\" transfers=wire\n",
    );
    first.push_str(&file(1, "up", true));
    first.push_str(&file(2, "down", false));
    let mut whole = first.clone();
    for (n, up) in [(3, true), (4, true), (5, false), (6, true)] {
        whole.push_str(&file(n, if up { "up" } else { "down" }, up));
    }
    whole.push_str(
        "Nov  3 11:00:09 h1 sftpd-wrapper[600]: session end sid=h1-copy-600 user=acme client_ip=10.0.0.5 client_port=40000 local_ip=10.0.0.1 local_port=22 sftp_pid=601 duration_ms=9000 exit_status=0\n",
    );
    let log = dir.path().join("sftpd.log");
    fs::write(&log, &first).unwrap();
    let target = new_db(backend, dir.path(), "target");
    ingest(&target, &[&log]);
    fs::write(&log, &whole).unwrap();
    let source = new_db(Backend::Sqlite, dir.path(), "source");
    ingest(&source, &[&log]);
    let files = |db: &str| -> (i64, i64) {
        let usage = report_json(db, &["usage", "--user", "acme"]);
        let sum = |k: &str| -> i64 {
            usage
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[k].as_i64().unwrap())
                .sum()
        };
        (sum("files_up"), sum("files_down"))
    };
    assert_eq!(files(&source), (4, 2));
    assert_eq!(files(&target), (1, 1));
    let before = dump(&target);
    let out = sftpd_report(&target, &["copy", "--from", &source, "--to", &target]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the copy went through: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("h1-copy-600"), "{stderr}");
    assert_same(&dump(&target), &before);
    common::assert_rollups_exact(&target);
    // The target reads the rest of the log itself; then the copy has nothing to add.
    ingest(&target, &[&log]);
    assert_eq!(files(&target), (4, 2));
    let out = sftpd_report(&target, &["copy", "--from", &source, "--to", &target]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(&target), (4, 2));
    common::assert_rollups_exact(&target);
    // A copy the other way, from the half into the whole, keeps the whole.
    let half = new_db(Backend::Sqlite, dir.path(), "half");
    let half_log = dir.path().join("half.log");
    fs::write(&half_log, &first).unwrap();
    ingest(&half, &[&half_log]);
    let whole_db = new_db(backend, dir.path(), "whole");
    ingest(&whole_db, &[&log]);
    let out = sftpd_report(&whole_db, &["copy", "--from", &half, "--to", &whole_db]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(&whole_db), (4, 2));
    common::assert_rollups_exact(&whole_db);
}
on_both_backends!(copy_into_a_database_that_saw_part_of_the_log_loses_nothing);

/// Review of issue 27 item 7: the target read the log up to a transfer's `open`, the source up
/// to its `close`; the session is open in both and both hold one transfer row, so the copy's
/// row count sees nothing missing. The target must not take the source's further checkpoint
/// and then skip the close: the file is billed complete with its bytes once the target reads
/// the whole log (or the copy is refused).
fn copy_of_a_further_close_with_as_many_rows_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let head = "Nov  3 11:00:00 h1 sftpd-wrapper[600]: session start sid=h1-eq-600 user=acme client_ip=10.0.0.5 client_port=40000 local_ip=10.0.0.1 local_port=22\n\
                Nov  3 11:00:00 h1 sftpd-wrapper[600]: sftp-server started sid=h1-eq-600 user=acme sftp_pid=601 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\"\n\
                Nov  3 11:00:00 h1 sftp-server[601]: session opened for local user acme from [10.0.0.5]\n\
                Nov  3 11:00:01 h1 sftp-server[601]: open \"/srv/acme/big.bin\" flags WRITE,CREATE,TRUNCATE mode 0644\n";
    let close = "Nov  3 11:00:05 h1 sftp-server[601]: close \"/srv/acme/big.bin\" bytes read 0 written 987654\n";
    let tail = "Nov  3 11:00:06 h1 sftp-server[601]: session closed for local user acme from [10.0.0.5]\n\
                Nov  3 11:00:06 h1 sftpd-wrapper[600]: session end sid=h1-eq-600 user=acme client_ip=10.0.0.5 client_port=40000 local_ip=10.0.0.1 local_port=22 sftp_pid=601 duration_ms=6000 exit_status=0\n";
    let log = dir.path().join("sftpd.log");
    fs::write(&log, head).unwrap();
    let target = new_db(backend, dir.path(), "target");
    ingest(&target, &[&log]);
    fs::write(&log, format!("{head}{close}")).unwrap();
    let source = new_db(Backend::Sqlite, dir.path(), "source");
    ingest(&source, &[&log]);
    let out = sftpd_report(&target, &["copy", "--from", &source, "--to", &target]);
    let copied = out.status.success();
    fs::write(&log, format!("{head}{close}{tail}")).unwrap();
    ingest(&target, &[&log]);
    let usage = report_json(&target, &["usage", "--user", "acme"]);
    let sum = |k: &str| -> i64 {
        usage
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[k].as_i64().unwrap())
            .sum()
    };
    assert_eq!(
        (sum("files_up"), sum("bytes_up"), sum("files_bytes_unknown")),
        (1, 987_654, 0),
        "copy went through: {copied}; {}\n{usage:#}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::assert_rollups_exact(&target);
}
on_both_backends!(copy_of_a_further_close_with_as_many_rows_loses_nothing);

/// A file open when one run ends and closed in the next, while its session goes on (the close
/// is a change to a row an earlier run wrote, and nothing else of its session changes), and the
/// session's end in a third run: the rollups move with the rows.
fn closes_and_ends_of_rows_an_earlier_run_wrote_keep_the_rollups_exact(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(backend, dir.path(), "later");
    let live = dir.path().join("sftpd.log");
    let sid = "sftp1-20261101T000000-1002-0001";
    let w = "sftp1 sftpd-wrapper[1002]:";
    let s = "sftp1 sftp-server[1003]:";
    let runs = [
        vec![
            "Nov  1 00:00:00 sftp1 sshd[1002]: Accepted publickey for acme from 192.0.2.1 port 40001 ssh2: ED25519 SHA256:k1".to_owned(),
            format!("Nov  1 00:00:00 {w} session start sid={sid} user=acme client_ip=192.0.2.1 client_port=40001 local_ip=198.51.100.1 local_port=22"),
            format!("Nov  1 00:00:00 {w} sftp-server started sid={sid} user=acme sftp_pid=1003 path=/usr/lib/openssh/sftp-server args=\"-f local5 -l info\""),
            format!("Nov  1 00:00:01 {s} session opened for local user acme from [192.0.2.1]"),
            format!("Nov  1 00:00:02 {s} open \"/srv/sftp/acme/in/a.csv\" flags WRITE,CREATE,TRUNCATE mode 0644"),
        ],
        vec![format!("Nov  1 02:10:00 {s} close \"/srv/sftp/acme/in/a.csv\" bytes read 0 written 12345")],
        vec![
            format!("Nov  1 02:10:01 {s} session closed for local user acme from [192.0.2.1]"),
            format!("Nov  1 02:10:01 {w} session end sid={sid} user=acme client_ip=192.0.2.1 client_port=40001 local_ip=198.51.100.1 local_port=22 sftp_pid=1003 duration_ms=7801000 exit_status=0"),
        ],
    ];
    fs::write(&live, "").unwrap();
    for lines in runs {
        let mut f = fs::OpenOptions::new().append(true).open(&live).unwrap();
        f.write_all(loggen::text(&lines).as_bytes()).unwrap();
        drop(f);
        ingest(&db, &[&live]);
        common::assert_rollups_exact(&db);
    }
    let usage = report_json(&db, &["usage", "--by", "month"]);
    let row = &usage.as_array().unwrap()[0];
    assert_eq!(row["bytes_up"].as_i64(), Some(12_345), "{usage}");
    assert_eq!(row["files_up"].as_i64(), Some(1), "{usage}");

    // The same in parts of a long log, each run ending with files open and sessions running,
    // and full batches written in the background within each run.
    let log = loggen::generate(30_000, 60, 12);
    let db = new_db(backend, dir.path(), "parts");
    let parts = dir.path().join("parts.log");
    fs::write(&parts, "").unwrap();
    for part in log.lines.chunks(7_001) {
        let mut f = fs::OpenOptions::new().append(true).open(&parts).unwrap();
        f.write_all(loggen::text(part).as_bytes()).unwrap();
        drop(f);
        ingest(&db, &[&parts]);
        common::assert_rollups_exact(&db);
    }
    assert_eq!(usage_totals(&db), log.totals);
}
on_both_backends!(closes_and_ends_of_rows_an_earlier_run_wrote_keep_the_rollups_exact);
