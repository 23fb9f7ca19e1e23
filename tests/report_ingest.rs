//! Ingest guarantees on generated logs: exact totals, idempotence, checkpoints across rotation
//! and compression, a kill -9 mid-ingest, and concurrent runs. Runs the real sftpd-report binary.

mod common;

use common::loggen::{self, UserTotals};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn sftpd_report(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .arg("--db")
        .arg(db)
        .args(["--config", "/nonexistent/sftpd-wrapper.toml"])
        .args(args)
        .output()
        .unwrap()
}

fn ingest(db: &Path, files: &[&Path]) -> String {
    let mut args = vec!["ingest"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = sftpd_report(db, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Everything in the database that a report could show, in a canonical order, without row ids.
fn dump(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = String::new();
    for sql in [
        "SELECT host, user, client_ip, client_port, local_ip, local_port, started_at, ended_at, duration_ms,
                exit_status, signal, end_reason, source, sid, pid, sftp_pid, auth_method, auth_key, sftp_closed
           FROM sessions ORDER BY host, pid, started_at",
        "SELECT s.host, s.pid, s.started_at, hex(t.path), t.direction, t.open_flags, t.mode, t.bytes_read,
                t.bytes_written, t.opened_at, t.closed_at, t.forced, t.failed, t.complete
           FROM transfers t JOIN sessions s ON s.id = t.session_id
          ORDER BY s.host, s.pid, s.started_at, t.opened_at, hex(t.path), t.closed_at",
        "SELECT o.host, s.pid, s.started_at, o.user, o.at, o.kind, hex(o.path), hex(o.target), o.detail, o.failed, o.status
           FROM operations o LEFT JOIN sessions s ON s.id = o.session_id
          ORDER BY o.host, s.pid, s.started_at, o.at, o.kind, hex(o.path), o.detail",
    ] {
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
    out
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

fn usage_totals(db: &Path) -> BTreeMap<(String, String), UserTotals> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT host, user, SUM(sessions), SUM(files_up), SUM(files_down), SUM(bytes_up), SUM(bytes_down) FROM monthly_usage GROUP BY host, user")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            (r.get(0)?, r.get(1)?),
            UserTotals {
                sessions: r.get(2)?,
                files_up: r.get(3)?,
                files_down: r.get(4)?,
                bytes_up: r.get(5)?,
                bytes_down: r.get(6)?,
            },
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

#[test]
fn generated_log_gives_exact_totals_and_a_second_run_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(20_000, 40, 1);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let db = dir.path().join("sftpd.db");
    let summary = ingest(&db, &[&path]);
    assert!(
        summary.contains(&format!("lines read {}", log.lines.len())),
        "{summary}"
    );
    assert_eq!(usage_totals(&db), log.totals);
    let open: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE end_reason <> 'closed' OR auth_method IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        open, 0,
        "every generated session ends cleanly and has its sshd Accepted line"
    );

    let before = dump(&db);
    let again = ingest(&db, &[&path]);
    assert!(
        again.contains("lines read 0") && again.contains("sessions 0"),
        "{again}"
    );
    assert_same(&dump(&db), &before);
}

#[test]
fn rotation_compression_and_appends_give_the_same_result_as_one_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(6_000, 25, 2);
    let lines = &log.lines;
    let (a, rest) = lines.split_at(2_000);
    let (b, c) = rest.split_at(1_500);

    let clean_db = dir.path().join("clean.db");
    let all = dir.path().join("all.log");
    fs::write(&all, loggen::text(lines)).unwrap();
    ingest(&clean_db, &[&all]);

    // The live file gets part a, is ingested (the logrotate prerotate hook), gets part b and a
    // half-written line, is ingested again, then is rotated and compressed; part c goes to a new
    // live file. Sessions run across both files.
    let db = dir.path().join("rotated.db");
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
    let gz_db = dir.path().join("gz.db");
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

#[test]
fn stdin_is_read_and_checkpointed_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(3_000, 10, 3);
    let db = dir.path().join("s.db");
    for expect_new in [true, false] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
            .arg("--db")
            .arg(&db)
            .args(["--config", "/nonexistent/x.toml", "ingest", "-"])
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

#[test]
fn kill_9_mid_ingest_then_rerun_equals_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(200_000, 60, 4);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let clean_db = dir.path().join("clean.db");
    ingest(&clean_db, &[&path]);

    let db = dir.path().join("crash.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .arg("--db")
        .arg(&db)
        .args([
            "--config",
            "/nonexistent/x.toml",
            "ingest",
            "--batch-lines",
            "500",
        ])
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some batches are committed and before it is done.
    let mut killed_mid_way = false;
    for _ in 0..2000 {
        let committed: Option<i64> = rusqlite::Connection::open(&db).ok().and_then(|c| {
            c.query_row("SELECT lines FROM checkpoints", [], |r| r.get(0))
                .ok()
        });
        if let Some(lines) = committed
            && lines > 0
        {
            killed_mid_way = (lines as usize) < log.lines.len();
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.wait();
    assert!(
        killed_mid_way,
        "the ingest finished before it could be killed"
    );
    ingest(&db, &[&path]);
    assert_same(&dump(&db), &dump(&clean_db));
    assert_eq!(usage_totals(&db), log.totals);
}

#[test]
fn a_second_ingest_waits_for_the_first_and_both_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let a = loggen::generate(30_000, 30, 5);
    let b = loggen::generate(30_000, 30, 6);
    let pa = dir.path().join("a.log");
    let pb = dir.path().join("b.log");
    // Distinct hosts, as when several servers feed one database.
    fs::write(&pa, loggen::text(&a.lines).replace(" sftp", " east-sftp")).unwrap();
    fs::write(&pb, loggen::text(&b.lines).replace(" sftp", " west-sftp")).unwrap();

    // Hold the lock as another ingest would: the binary must say it waits, then finish.
    let lock = sftpd_wrapper::ingest::IngestLock::acquire(&db, false).unwrap();
    let busy = sftpd_report(&db, &["ingest", "--no-wait", pa.to_str().unwrap()]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("another sftpd-report ingest is running")
    );
    let waiting = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .arg("--db")
        .arg(&db)
        .args(["--config", "/nonexistent/x.toml", "ingest"])
        .arg(&pa)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(lock);
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting"));

    // Two at once.
    let db2 = dir.path().join("c2.db");
    let spawn = |p: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
            .arg("--db")
            .arg(&db2)
            .args(["--config", "/nonexistent/x.toml", "ingest"])
            .arg(p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&pa), spawn(&pb));
    assert!(ca.wait_with_output().unwrap().status.success());
    assert!(cb.wait_with_output().unwrap().status.success());
    let sequential = dir.path().join("seq.db");
    ingest(&sequential, &[&pa]);
    ingest(&sequential, &[&pb]);
    assert_same(&dump(&db2), &dump(&sequential));
}

#[test]
fn report_commands_filter_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(5_000, 10, 7);
    let path = dir.path().join("sftpd.log");
    fs::write(&path, loggen::text(&log.lines)).unwrap();
    let db = dir.path().join("r.db");
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
        Some("month,host,user,sessions,files_up,files_down,bytes_up,bytes_down,duration")
    );
    let mut bytes_up = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[2], "acme");
        bytes_up += cells[6].parse::<i64>().unwrap();
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
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["path"].as_str().unwrap().ends_with("/batch 3-0.csv"))
    );

    // Generated lines are in November; a window after it is empty, one around it is not.
    let year = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let s: String = conn
            .query_row("SELECT MIN(started_at) FROM sessions", [], |r| r.get(0))
            .unwrap();
        s[..4].to_owned()
    };
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
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions: i64 = log.totals.values().map(|t| t.sessions).sum();
    assert_eq!(all.as_array().unwrap().len() as i64, sessions);

    let bad = sftpd_report(&db, &["sessions", "--since", "last tuesday"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
    let bad = sftpd_report(&db, &["transfers", "--path", "[oops"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid glob"));
    let pg = sftpd_report(Path::new("postgres://u@h/db"), &["sessions"]);
    assert!(String::from_utf8_lossy(&pg.stderr).contains("PostgreSQL"));
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
    for needle in ["sqlite3_", "rusqlite", "postgres", "PQconnect"] {
        let hits: Vec<&str> = wrapper
            .lines()
            .filter(|l| l.contains(needle))
            .take(3)
            .collect();
        assert!(
            hits.is_empty(),
            "sftpd-wrapper links database code: {hits:?}"
        );
    }
    let report = symbols(env!("CARGO_BIN_EXE_sftpd-report"));
    assert!(
        report.contains("sqlite3_open"),
        "the check itself finds SQLite where it is"
    );
}
