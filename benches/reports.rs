//! Report times and memory: `cargo bench --bench reports`.
//!
//! Builds an SQLite database of a year of transfers (10,000,000 across 500 partners; 20,000 when
//! run by `cargo test`), then times the real `sftpd-report` binary on it and reads its peak
//! memory (RSS) from the kernel. Baselines from the same run: a bare `SELECT` over every
//! transfer row, usage summed from every row (`--from-rows`, what the hourly rollups save), and
//! the peak memory of the same JSON report over a tenth of the rows (flat memory means a ratio
//! near 1).

use sftpd_wrapper::accounting::storage::SqliteStore;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs sftpd-report with `args`, output to /dev/null; returns (seconds, peak RSS in MiB).
// The child is reaped by wait4, which also gives its own peak memory.
#[allow(clippy::zombie_processes)]
fn run(db: &str, args: &[&str]) -> (f64, f64) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
        .args(["--db", db, "--config", "/nonexistent/sftpd-wrapper.toml"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sftpd-report");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // wait4 for the child's own rusage (its peak RSS).
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write into, `status` a valid int; `pid` is our child.
    let rc = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut usage) };
    let elapsed = t.elapsed().as_secs_f64();
    assert_eq!(rc, pid.as_raw(), "wait4");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{args:?}: {err}"
    );
    (elapsed, usage.ru_maxrss as f64 / 1024.0)
}

/// A year of sessions (one per partner and day) and `transfers` transfers spread over them.
fn build(path: &std::path::Path, transfers: u64, partners: u64) {
    drop(SqliteStore::open(path).expect("schema"));
    let conn = rusqlite::Connection::open(path).expect("db");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")
        .expect("pragmas");
    let sessions = partners * 365;
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {sessions})
         INSERT INTO session_rows (id, host, user, client_ip, started_at_us, ended_at_us, duration_ms,
                               end_reason, source, pid, sftp_closed)
         SELECT i + 1, 'sftp' || (i % 3), 'partner' || (i % {partners}), '10.0.0.1',
                (unixepoch('2026-01-01') + (i / {partners}) * 86400 + i % 86000) * 1000000,
                (unixepoch('2026-01-01') + (i / {partners}) * 86400 + i % 86000 + 60) * 1000000,
                60000, 'closed', 'wrapper', 1000 + i, 1
           FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {transfers})
         INSERT INTO transfer_rows (session_id, path, direction_code, open_flags_code, bytes_read,
                                bytes_written, opened_at_us, closed_at_us, complete, counts_as)
         SELECT s.id, CAST('/in/file-' || i AS BLOB),
                -- download or upload; READ or WRITE,CREATE,TRUNCATE (schema 6's codes)
                CASE WHEN i % 3 = 0 THEN 2 ELSE 1 END,
                CASE WHEN i % 3 = 0 THEN 1 ELSE 26 END,
                CASE WHEN i % 3 = 0 THEN 1000 + i % 100000 ELSE 0 END,
                CASE WHEN i % 3 = 0 THEN 0 ELSE 2000 + i % 300000 END,
                s.started_at_us, s.ended_at_us, i % 50 <> 0,
                CASE WHEN i % 3 = 0 THEN 'download' ELSE 'upload' END
           FROM n JOIN sessions s ON s.id = 1 + (i % {sessions});
         COMMIT;"
    ))
    .expect("generate");
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (transfers, partners) = if full {
        (10_000_000, 500)
    } else {
        (20_000, 50)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut dbs = Vec::new();
    for (name, n) in [("tenth", transfers / 10), ("year", transfers)] {
        let path = dir.path().join(format!("{name}.db"));
        let t = Instant::now();
        build(&path, n, partners);
        println!(
            "{name}: {n} transfers, {:.1} MiB, built in {:.1} s",
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0,
            t.elapsed().as_secs_f64()
        );
        dbs.push(path.display().to_string());
    }
    let (tenth, year) = (&dbs[0], &dbs[1]);
    // The rows were written by hand, not by an ingest (the triggers kept the rollups as they
    // went); a rebuild is timed as an admin would run it after changing the tables by hand.
    for db in [tenth, year] {
        let (secs, _) = run(db, &["rollups", "--rebuild"]);
        let cells: i64 = rusqlite::Connection::open(db)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM usage_hourly", [], |r| r.get(0)))
            .expect("rollups");
        println!("{db}: rollups --rebuild {secs:.1} s, {cells} hourly rows");
    }

    let conn = rusqlite::Connection::open(year).expect("db");
    let t = Instant::now();
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(*), SUM(opened_at_us / 1000000 + bytes_written + bytes_read) FROM transfers",
            [],
            |r| r.get(0),
        )
        .expect("scan");
    let scan = t.elapsed().as_secs_f64();
    assert_eq!(rows as u64, transfers);
    println!("a bare scan reading every transfer's time and counters (baseline)  {scan:.3} s");
    let (from_rows, _) = run(
        year,
        &["usage", "--by", "month", "--tz", "UTC", "--from-rows"],
    );
    println!(
        "{:<42} {from_rows:>8.3} s   {:.2} x the bare scan (baseline)",
        "usage --by month, everything, from rows",
        from_rows / scan
    );
    for (what, args) in [
        (
            "usage --by month, everything",
            vec!["usage", "--by", "month", "--tz", "UTC"],
        ),
        (
            "usage --by day, everything, Europe/Berlin",
            vec!["usage", "--by", "day", "--tz", "Europe/Berlin"],
        ),
        (
            "usage --by month, everything, Asia/Kolkata",
            vec!["usage", "--by", "month", "--tz", "Asia/Kolkata"],
        ),
        (
            "usage, one partner's month",
            vec![
                "usage",
                "--user",
                "partner7",
                "--since",
                "2026-06-01",
                "--until",
                "2026-06-30",
                "--tz",
                "UTC",
            ],
        ),
    ] {
        let (secs, rss) = run(year, &args);
        println!(
            "{what:<42} {secs:>8.3} s   {:.3} x the bare scan, {:.3} x from rows   peak RSS {rss:.1} MiB",
            secs / scan,
            secs / from_rows
        );
    }
    let (secs_tenth, rss_tenth) = run(tenth, &["transfers", "--format", "json"]);
    for format in ["json", "csv", "table"] {
        let (secs, rss) = run(year, &["transfers", "--format", format]);
        println!(
            "transfers --format {format:<5} ({transfers} rows)  {secs:>8.3} s   peak RSS {rss:.1} MiB   \
             {:.2} x the RSS for a tenth of the rows",
            rss / rss_tenth
        );
    }
    let _ = secs_tenth;
}
