//! Retention through the real sftpd-report binary, on SQLite and a real PostgreSQL: `prune`
//! removes what ended before the cut (sessions with their transfers and operations) and nothing
//! else, keeps the rollups exact, keeps open sessions and checkpoints, says the same with
//! --dry-run without removing anything, forgets one partner with --user, and a kill -9 in the
//! middle leaves all or nothing, so that running it again equals a clean prune.

mod common;

use common::loggen;
use common::pg::PgServer;
use common::{assert_rollups_exact, ingest, report_json, sftpd_report};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn new_db(backend: Backend, dir: &Path, name: &str) -> String {
    match backend {
        Backend::Sqlite => dir.join(format!("{name}.db")).display().to_string(),
        Backend::Postgres => PgServer::shared().create_db(),
    }
}

/// The generated log's stamps are in November of the current year (they carry none); the cut
/// falls inside it, an hour and a half after its start.
fn cut() -> String {
    let year = chrono::Utc::now().format("%Y");
    format!("{year}-11-01 01:30")
}

fn prune(db: &str, args: &[&str]) -> String {
    let mut all = vec!["prune"];
    all.extend(args);
    let out = sftpd_report(db, &all);
    assert!(
        out.status.success(),
        "prune {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `name N` in a prune's summary line.
fn count(summary: &str, name: &str) -> u64 {
    summary
        .split([',', ':', ';'])
        .find_map(|part| part.trim().strip_prefix(&format!("{name} ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {summary:?}"))
}

/// What the reports show of a database: its sessions, transfers and usage.
fn state(db: &str) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    (
        report_json(db, &["sessions"]),
        report_json(db, &["transfers"]),
        report_json(db, &["usage", "--by", "day", "--tz", "UTC"]),
    )
}

fn rows(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v.as_array().expect("a JSON array")
}

fn prune_suite(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log = loggen::generate(60_000, 40, 7);
    // The last lines cut off: the sessions they would have ended stay open.
    let kept_lines = log.lines.len() - 300;
    let path = dir.path().join("sftpd.log");
    std::fs::write(&path, loggen::text(&log.lines[..kept_lines])).unwrap();
    let cut = cut();
    let before_args = ["--before", cut.as_str(), "--tz", "UTC"];

    let clean = new_db(backend, dir.path(), "clean");
    ingest(&clean, &[&path]);
    let (sessions_before, transfers_before, _) = state(&clean);
    let open_before = rows(&sessions_before)
        .iter()
        .filter(|s| s["ended"].is_null())
        .count();
    assert!(open_before > 0, "the cut-off log left no session open");

    // A dry run says what a prune does, and changes nothing.
    let said = prune(&clean, &[&before_args[..], &["--dry-run"]].concat());
    assert!(said.starts_with("would prune"), "{said}");
    assert_eq!(state(&clean).0, sessions_before);

    let done = prune(&clean, &before_args);
    assert!(done.starts_with("pruned"), "{done}");
    for name in ["sessions", "transfers", "operations"] {
        assert_eq!(
            count(&said, name),
            count(&done, name),
            "{name}: {said} / {done}"
        );
    }
    let pruned_sessions = count(&done, "sessions");
    assert!(pruned_sessions > 0, "{done}");
    assert_rollups_exact(&clean);
    let (sessions_after, transfers_after, _) = state(&clean);
    assert_eq!(
        rows(&sessions_after).len() as u64,
        rows(&sessions_before).len() as u64 - pruned_sessions
    );
    assert_eq!(
        rows(&transfers_after).len() as u64,
        rows(&transfers_before).len() as u64 - count(&done, "transfers")
    );
    // Nothing that ended before the cut is left, nothing after it went, open sessions stay.
    let cut_at =
        chrono::DateTime::parse_from_rfc3339(&format!("{}:00Z", cut.replace(' ', "T"))).unwrap();
    let mut kept_ended = 0;
    for s in rows(&sessions_after) {
        if let Some(ended) = s["ended"].as_str() {
            let ended = chrono::DateTime::parse_from_rfc3339(ended).unwrap();
            assert!(ended >= cut_at, "{ended} ended before the cut {cut_at}");
            kept_ended += 1;
        }
    }
    assert!(
        kept_ended > 0,
        "the cut removed every ended session: it proves nothing"
    );
    let kept_open = rows(&sessions_after)
        .iter()
        .filter(|s| s["ended"].is_null())
        .count();
    assert_eq!(kept_open, open_before);
    // The checkpoints stay: the same file again adds nothing.
    let again = ingest(&clean, &[&path]);
    assert!(again.contains("sessions 0"), "{again}");
    assert_eq!(state(&clean).0, sessions_after);

    // A kill -9 in the middle leaves all or nothing; the run after it equals the clean prune.
    let mut interrupted = false;
    for delay_ms in [5u64, 30, 100] {
        let killed = new_db(backend, dir.path(), &format!("killed{delay_ms}"));
        ingest(&killed, &[&path]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sftpd-report"))
            .args([
                "--db",
                &killed,
                "--config",
                "/nonexistent/sftpd-wrapper.toml",
                "prune",
            ])
            .args(before_args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        interrupted |= running;
        let left = rows(&report_json(&killed, &["sessions"])).len();
        assert!(
            left == rows(&sessions_before).len() || left == rows(&sessions_after).len(),
            "after a kill -9 at {delay_ms} ms: {left} sessions, neither all nor the pruned set"
        );
        assert_rollups_exact(&killed);
        prune(&killed, &before_args);
        assert_eq!(
            state(&killed),
            state(&clean),
            "killed at {delay_ms} ms, then pruned"
        );
    }
    assert!(interrupted, "no kill landed while the prune ran");

    // --user alone forgets a partner: every session of theirs that has ended goes, no one
    // else's.
    let users = |v: &serde_json::Value, user: &str| {
        rows(v)
            .iter()
            .filter(|s| s["user"] == user)
            .filter(|s| !s["ended"].is_null())
            .count()
    };
    let before = state(&clean).0;
    let acme = users(&before, "acme");
    assert!(acme > 0);
    let forgot = prune(&clean, &["--user", "acme"]);
    assert_eq!(count(&forgot, "sessions") as usize, acme, "{forgot}");
    let after = state(&clean).0;
    assert_eq!(users(&after, "acme"), 0);
    assert_eq!(rows(&after).len(), rows(&before).len() - acme);
    assert_eq!(users(&after, "globex"), users(&before, "globex"));
    assert_rollups_exact(&clean);
}

#[test]
fn prune_on_sqlite() {
    prune_suite(Backend::Sqlite);
}

#[test]
fn prune_on_postgres() {
    prune_suite(Backend::Postgres);
}

#[test]
fn prune_refuses_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db").display().to_string();
    // No database there: a prune creates none.
    let out = sftpd_report(&db, &["prune", "--older-than", "400d"]);
    assert!(!out.status.success());
    assert!(!Path::new(&db).exists());
    let log = dir.path().join("l.log");
    std::fs::write(&log, loggen::text(&loggen::generate(200, 4, 1).lines)).unwrap();
    ingest(&db, &[&log]);
    for bad in [
        &["prune"][..],
        &["prune", "--older-than", "2025-01-01"],
        &["prune", "--before", "soon"],
        &["prune", "--older-than", "400d", "--before", "2025-01-01"],
    ] {
        let out = sftpd_report(&db, bad);
        assert!(!out.status.success(), "{bad:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error") || err.starts_with("sftpd-report:"),
            "{bad:?}: {err}"
        );
    }
}
