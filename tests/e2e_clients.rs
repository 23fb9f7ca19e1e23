//! Real clients that Debian ships (lftp, curl's sftp:// over libssh2, sshfs, PuTTY's psftp) through
//! the real sshd and the wrapper, in capture mode (hooks record every event) and in syslog mode
//! (the log ingested by `sftpd-report`). Each test checks what the hooks saw and what the reports
//! say against what really crossed the wire: the file sizes the client moved, and only the
//! operations sftp-server answered OK. Every mismatch of a client and mode is collected and
//! printed together, so one run says everything that is wrong.

mod common;

use common::{Harness, field};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Every client command is killed after this long (and SIGKILLed 5 s later): a hung client is a
/// failed test, never a hung suite.
const CLIENT_TIMEOUT_SECS: u32 = 60;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Capture,
    Syslog,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Capture => "capture",
            Mode::Syslog => "syslog",
        }
    }
}

/// A transfer as the truth has it: `path` relative to the home directory, the bytes the client
/// really moved, and whether it had the whole file (`None`: the test does not know, printed only).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Transfer {
    path: String,
    direction: &'static str,
    bytes: u64,
    complete: Option<bool>,
    /// A `.filepart` upload renamed OK: the hooks name the final name, the report the written one.
    renamed_to: Option<String>,
}

fn up(path: &str, bytes: u64) -> Transfer {
    Transfer {
        path: path.to_owned(),
        direction: "upload",
        bytes,
        complete: Some(true),
        renamed_to: None,
    }
}

fn down(path: &str, bytes: u64) -> Transfer {
    Transfer {
        direction: "download",
        ..up(path, bytes)
    }
}

/// An event that is not a transfer: (event, path, target), paths relative to the home.
type Op = (String, String, String);

fn op(event: &str, path: &str, target: &str) -> Op {
    (event.to_owned(), path.to_owned(), target.to_owned())
}

#[derive(Default, Debug)]
struct Expect {
    transfers: Vec<Transfer>,
    ops: Vec<Op>,
    /// Failure replies to requests that change something or move data (never to probes).
    failed_operations: u64,
}

/// Mismatches between the truth and what the hooks or the report said, collected so that one run
/// shows all of them.
#[derive(Default)]
struct Checks {
    label: String,
    failures: Vec<String>,
    notes: String,
}

impl Checks {
    fn new(label: &str) -> Checks {
        Checks {
            label: label.to_owned(),
            ..Checks::default()
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.failures
                .push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// Compares two multisets and names what is missing and what is extra.
    fn same<T: Ord + Clone + std::fmt::Debug>(
        &mut self,
        what: &str,
        mut got: Vec<T>,
        mut want: Vec<T>,
    ) {
        got.sort();
        want.sort();
        if got == want {
            return;
        }
        let mut missing = want.clone();
        let mut extra = Vec::new();
        for g in &got {
            match missing.iter().position(|w| w == g) {
                Some(i) => {
                    missing.remove(i);
                }
                None => extra.push(g.clone()),
            }
        }
        self.failures
            .push(format!("{what}: missing {missing:?}; unexpected {extra:?}"));
    }

    fn note(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.notes, "{}", text.as_ref());
    }

    /// Prints what was observed, then fails with every mismatch.
    fn finish(self) {
        eprintln!("==== {} observed:\n{}", self.label, self.notes);
        if self.failures.is_empty() {
            eprintln!("==== {}: all checks passed", self.label);
            return;
        }
        let text: String = self.failures.iter().map(|f| format!("  - {f}\n")).collect();
        panic!(
            "{}: {} check(s) failed:\n{text}",
            self.label,
            self.failures.len()
        );
    }
}

/// A hook that records each call's environment (NUL-separated, any byte survives).
fn event_hook(h: &Harness) -> PathBuf {
    h.hook_script(
        "event",
        &format!(
            "f=$(mktemp {out}/ev-XXXXXXXX)\n/usr/bin/env -0 > \"$f.env\"\nmv \"$f.env\" \"$f.done\"",
            out = h.out_dir.display()
        ),
    )
}

/// The post-session hook: its environment, one file per session (written aside, then renamed).
fn post_hook(h: &Harness) -> PathBuf {
    h.hook_script(
        "post",
        &format!(
            "/usr/bin/env > {0}/post-$SFTPD_SESSION_ID.tmp && mv {0}/post-$SFTPD_SESSION_ID.tmp {0}/post-$SFTPD_SESSION_ID.env",
            h.out_dir.display()
        ),
    )
}

fn start(mode: Mode) -> Harness {
    let h = Harness::start("");
    match mode {
        Mode::Capture => {
            let e = event_hook(&h).display().to_string();
            let p = post_hook(&h).display().to_string();
            h.write_config(&format!(
                "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{e}\"]\non_download = [\"{e}\"]\n\
                 on_remove = [\"{e}\"]\non_rename = [\"{e}\"]\non_mkdir = [\"{e}\"]\non_rmdir = [\"{e}\"]\n\
                 on_link = [\"{e}\"]\non_copy = [\"{e}\"]\npost_session = [\"{p}\"]\n"
            ));
        }
        Mode::Syslog => h.write_config("[sftp_server]\nlog_mode = \"syslog\"\n"),
    }
    h
}

/// `timeout` around a client command: bounded in time, its output kept.
fn run_client(program: &str, args: &[String], cwd: &Path) -> Output {
    Command::new("timeout")
        .args(["-k", "5", &CLIENT_TIMEOUT_SECS.to_string(), program])
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn describe(out: &Output) -> String {
    format!(
        "{}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips (or fails in CI) when a client is not installed: scripts/test.sh installs them.
macro_rules! require_client {
    ($program:expr, $package:expr) => {
        if !have($program) {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{} missing in CI (apt-get install {})", $program, $package);
            }
            eprintln!(
                "SKIPPED: {} is missing (apt-get install {})",
                $program, $package
            );
            return;
        }
    };
}

/// Bytes that differ from file to file and position to position, so that a misplaced or
/// repeated block shows in the comparison.
fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(u32::from(seed % 31)) as u8
                ^ seed
        })
        .collect()
}

/// Files on the server side, owned by `user` (the test runs as root).
fn server_file(h: &Harness, user: &str, rel: &str, data: &[u8]) {
    let path = h.home(user).join(rel);
    fs::write(&path, data).unwrap();
    common::run_ok(Command::new("chown").arg(format!("{user}:")).arg(&path));
}

/// `ro/locked.txt`: a directory of root's in the partner's home, so that a rename out of it is
/// refused by the server (Permission denied) after every check a client makes first.
fn locked_file(h: &Harness, user: &str) {
    let dir = h.home(user).join("ro");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("locked.txt"), b"root's file").unwrap();
}

/// Waits until every session of `user` has ended in the log (both the wrapper's and
/// sftp-server's lines) and, in capture mode, its post-session hook ran (after its event hooks).
/// Returns the number of sessions.
fn wait_sessions_done(h: &Harness, user: &str, mode: Mode) -> usize {
    let counts = || {
        let text = h.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let count = |needles: &[&str]| {
            lines
                .iter()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count()
        };
        let user_field = format!("user={user} ");
        let started = count(&["sftpd-wrapper[", "session start", &user_field]);
        let ended = count(&["sftpd-wrapper[", "session end", &user_field]);
        let opened = count(&[&format!("session opened for local user {user} from")]);
        let closed = count(&[&format!("session closed for local user {user} from")]);
        let posts = post_envs(h, user).len();
        (started, ended, opened, closed, posts)
    };
    let mut last = None;
    let done = common::wait_until_opt(Duration::from_secs(30), || {
        let c = counts();
        let (started, ended, opened, closed, posts) = c;
        let settled = started > 0
            && started == ended
            && opened == closed
            && (mode == Mode::Syslog || posts == started);
        // The same counts twice in a row, a quarter second apart: no session still starting.
        let stable = settled && last == Some(c);
        last = Some(c);
        std::thread::sleep(Duration::from_millis(250));
        stable.then_some(started)
    });
    done.unwrap_or_else(|| {
        panic!(
            "the sessions of {user} did not all end within 30 s: {:?}\n{}",
            counts(),
            h.log_text()
        )
    })
}

/// The log lines of `user`'s sessions: the wrapper's and those of their sftp-servers.
fn session_log(h: &Harness, user: &str) -> Vec<String> {
    let text = h.log_text();
    let user_field = format!("user={user} ");
    let tags: Vec<String> = text
        .lines()
        .filter(|l| l.contains("sftp-server started") && l.contains(&user_field))
        .filter_map(|l| field(l, "sftp_pid"))
        .map(|pid| format!("sftp-server[{pid}]:"))
        .collect();
    text.lines()
        .filter(|l| l.contains(&user_field) || tags.iter().any(|t| l.contains(t.as_str())))
        .map(common::strip_syslog_prefix)
        .collect()
}

/// The post-session hooks' environments of `user`'s sessions.
fn post_envs(h: &Harness, user: &str) -> Vec<HashMap<String, String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(&h.out_dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("post-")
            || p.extension() != Some(OsStr::new("env"))
        {
            continue;
        }
        let env: HashMap<String, String> = fs::read_to_string(&p)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if env.get("SFTPD_USER").map(String::as_str) == Some(user) {
            out.push(env);
        }
    }
    out
}

/// One recorded event hook call.
#[derive(Debug, Clone)]
struct Event {
    event: String,
    path: String,
    target: String,
    uploaded_as: String,
    bytes_read: u64,
    bytes_written: u64,
    complete: String,
    open_flags: String,
}

/// `path` relative to `home` when it is under it; otherwise as it is (a refused `/tmp` shows).
fn relative(home: &Path, path: &str) -> String {
    let home = format!("{}/", home.display());
    path.strip_prefix(&home)
        .map(str::to_owned)
        .unwrap_or_else(|| path.to_owned())
}

fn events(h: &Harness, user: &str) -> Vec<Event> {
    let home = h.home(user);
    let mut out = Vec::new();
    for entry in fs::read_dir(&h.out_dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.extension() != Some(OsStr::new("done")) {
            continue;
        }
        let raw = fs::read(&p).unwrap();
        let env: HashMap<String, String> = raw
            .split(|&b| b == 0)
            .filter_map(|kv| {
                let eq = kv.iter().position(|&b| b == b'=')?;
                Some((
                    String::from_utf8_lossy(&kv[..eq]).into_owned(),
                    String::from_utf8_lossy(&kv[eq + 1..]).into_owned(),
                ))
            })
            .collect();
        if env.get("SFTPD_USER").map(String::as_str) != Some(user) {
            continue;
        }
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        out.push(Event {
            event: get("SFTPD_EVENT"),
            path: relative(&home, &get("SFTPD_PATH")),
            target: relative(&home, &get("SFTPD_TARGET")),
            uploaded_as: relative(&home, &get("SFTPD_UPLOADED_AS")),
            bytes_read: get("SFTPD_BYTES_READ").parse().unwrap_or(0),
            bytes_written: get("SFTPD_BYTES_WRITTEN").parse().unwrap_or(0),
            complete: get("SFTPD_COMPLETE"),
            open_flags: get("SFTPD_OPEN_FLAGS"),
        });
    }
    out
}

/// The transfers and operations `sftpd-report` stores for `user` from the harness's log.
struct Report {
    transfers: Vec<serde_json::Value>,
    usage: serde_json::Value,
    /// (kind, path, target, failed) of the operations table, paths relative to the home.
    operations: Vec<(String, String, String, bool)>,
    sessions: usize,
}

fn report(h: &Harness, user: &str) -> Report {
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("sftpd.db").display().to_string();
    common::ingest(&db, &[&h.log_path]);
    let transfers = common::report_json(&db, &["transfers", "--user", user]);
    let usage = common::report_json(&db, &["usage", "--by", "month", "--user", user]);
    // Sessions the wrapper refused (rclone's shell probes) moved nothing and are counted apart.
    let sessions = common::report_json(&db, &["sessions", "--user", user])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["end"] != "refused")
        .count();
    let home = h.home(user);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT o.kind, COALESCE(o.path_text, ''), COALESCE(o.target_text, ''), o.failed
               FROM operations o JOIN sessions s ON s.id = o.session_id
              WHERE s.user = ?1 ORDER BY o.id",
        )
        .unwrap();
    let operations = stmt
        .query_map([user], |r| {
            Ok((
                r.get::<_, String>(0)?,
                relative(&home, &r.get::<_, String>(1)?),
                relative(&home, &r.get::<_, String>(2)?),
                r.get::<_, i64>(3)? != 0,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Report {
        transfers: transfers.as_array().unwrap().clone(),
        usage,
        operations,
        sessions,
    }
}

/// Checks what the hooks (capture mode), the session totals and the report say against `want`.
fn check_all(h: &Harness, user: &str, mode: Mode, want: &Expect, checks: &mut Checks) {
    let sessions = wait_sessions_done(h, user, mode);
    let home = h.home(user);
    checks.note(format!("sessions: {sessions}"));
    let uploads: Vec<&Transfer> = want
        .transfers
        .iter()
        .filter(|t| t.direction == "upload")
        .collect();
    let downloads: Vec<&Transfer> = want
        .transfers
        .iter()
        .filter(|t| t.direction == "download")
        .collect();
    let bytes_up: u64 = uploads.iter().map(|t| t.bytes).sum();
    let bytes_down: u64 = downloads.iter().map(|t| t.bytes).sum();

    if mode == Mode::Capture {
        let evs = events(h, user);
        for e in &evs {
            checks.note(format!(
                "hook {} {} target={} uploaded_as={} read={} written={} complete={} flags={}",
                e.event,
                e.path,
                e.target,
                e.uploaded_as,
                e.bytes_read,
                e.bytes_written,
                e.complete,
                e.open_flags
            ));
        }
        // Transfers as the hooks name them: a renamed .filepart under its final name.
        let to_row = |t: &Transfer| match &t.renamed_to {
            Some(final_name) => (
                t.direction.to_owned(),
                final_name.clone(),
                t.path.clone(),
                t.bytes,
            ),
            None => (
                t.direction.to_owned(),
                t.path.clone(),
                String::new(),
                t.bytes,
            ),
        };
        let got: Vec<(String, String, String, u64)> = evs
            .iter()
            .filter(|e| e.event == "upload" || e.event == "download")
            .map(|e| {
                let bytes = if e.event == "upload" {
                    e.bytes_written
                } else {
                    e.bytes_read
                };
                (
                    e.event.clone(),
                    e.path.clone(),
                    e.uploaded_as.clone(),
                    bytes,
                )
            })
            .collect();
        checks.same(
            "hooks: transfers (event, path, uploaded_as, bytes)",
            got,
            want.transfers.iter().map(to_row).collect(),
        );
        for t in &want.transfers {
            let Some(complete) = t.complete else { continue };
            let name = t.renamed_to.as_ref().unwrap_or(&t.path);
            let flags: Vec<&str> = evs
                .iter()
                .filter(|e| e.event == t.direction && &e.path == name)
                .map(|e| e.complete.as_str())
                .collect();
            if !flags.is_empty() {
                let want_flag = if complete { "1" } else { "0" };
                checks.check(
                    flags.iter().all(|f| *f == want_flag),
                    format!(
                        "hooks: {} {name}: SFTPD_COMPLETE {flags:?}, expected {want_flag}",
                        t.direction
                    ),
                );
            }
        }
        checks.same(
            "hooks: other events (event, path, target)",
            evs.iter()
                .filter(|e| e.event != "upload" && e.event != "download")
                .map(|e| (e.event.clone(), e.path.clone(), e.target.clone()))
                .collect(),
            want.ops.clone(),
        );

        // The totals of `session end` and of the post-session hook, summed over the sessions.
        let text = h.log_text();
        let mut ends = [0u64; 5];
        for line in text
            .lines()
            .filter(|l| l.contains("session end") && l.contains(&format!("user={user} ")))
        {
            for (i, key) in [
                "files_uploaded",
                "bytes_uploaded",
                "files_downloaded",
                "bytes_downloaded",
                "failed_operations",
            ]
            .iter()
            .enumerate()
            {
                ends[i] += field(line, key).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
        let mut posts = [0u64; 5];
        for env in post_envs(h, user) {
            for (i, key) in [
                "SFTPD_FILES_UPLOADED",
                "SFTPD_BYTES_UPLOADED",
                "SFTPD_FILES_DOWNLOADED",
                "SFTPD_BYTES_DOWNLOADED",
                "SFTPD_FAILED_OPERATIONS",
            ]
            .iter()
            .enumerate()
            {
                posts[i] += env.get(*key).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
        let want_totals = [
            uploads.len() as u64,
            bytes_up,
            downloads.len() as u64,
            bytes_down,
            want.failed_operations,
        ];
        checks.eq(
            "session end, summed: [files_uploaded, bytes_uploaded, files_downloaded, bytes_downloaded, failed_operations]",
            ends,
            want_totals,
        );
        checks.eq(
            "post-session hook, summed: [FILES_UPLOADED, BYTES_UPLOADED, FILES_DOWNLOADED, BYTES_DOWNLOADED, FAILED_OPERATIONS]",
            posts,
            want_totals,
        );
        // The wrapper's own line per closed file (`counts_as=none`: nothing moved, no transfer),
        // under the name the file was written as.
        let closed: Vec<(String, String, Option<u64>, String)> = text
            .lines()
            .filter(|l| l.contains("file closed") && l.contains(&format!("user={user} ")))
            .filter(|l| field(l, "counts_as") != Some("none"))
            .map(|l| {
                let counts_as = field(l, "counts_as").unwrap_or("").to_owned();
                let key = if counts_as == "upload" {
                    "bytes_written"
                } else {
                    "bytes_read"
                };
                (
                    counts_as,
                    relative(&home, field(l, "path").unwrap_or("")),
                    field(l, key).and_then(|v| v.parse().ok()),
                    field(l, "complete").unwrap_or("").to_owned(),
                )
            })
            .collect();
        checks.same(
            "log: file closed lines (counts_as, path, bytes, complete)",
            closed,
            want.transfers
                .iter()
                .map(|t| {
                    let complete = match t.complete {
                        Some(true) => "1",
                        Some(false) => "0",
                        None => "?",
                    };
                    (
                        t.direction.to_owned(),
                        t.path.clone(),
                        Some(t.bytes),
                        complete.to_owned(),
                    )
                })
                .collect(),
        );
    }

    for line in session_log(h, user) {
        checks.note(format!("log: {line}"));
    }
    let r = report(h, user);
    checks.note(format!("report: sessions {}", r.sessions));
    checks.eq("report: sessions", r.sessions, sessions);
    for t in &r.transfers {
        checks.note(format!(
            "report transfer: {} {} read={} written={} complete={} forced={} failed={} unknown={} flags={}",
            t["direction"], relative(&home, t["path"].as_str().unwrap_or("")), t["bytes_read"],
            t["bytes_written"], t["complete"], t["forced"], t["failed"], t["bytes_unknown"], t["flags"]
        ));
    }
    for o in &r.operations {
        checks.note(format!("report operation: {o:?}"));
    }
    let got: Vec<(String, String, Option<u64>)> = r
        .transfers
        .iter()
        .map(|t| {
            let direction = t["direction"].as_str().unwrap_or("").to_owned();
            let bytes = if direction == "upload" {
                t["bytes_written"].as_u64()
            } else {
                t["bytes_read"].as_u64()
            };
            (
                direction,
                relative(&home, t["path"].as_str().unwrap_or("")),
                bytes,
            )
        })
        .collect();
    checks.same(
        "report: transfers (direction, path, bytes)",
        got,
        want.transfers
            .iter()
            .map(|t| (t.direction.to_owned(), t.path.clone(), Some(t.bytes)))
            .collect(),
    );
    for t in &want.transfers {
        let Some(complete) = t.complete else { continue };
        let flags: Vec<bool> = r
            .transfers
            .iter()
            .filter(|row| {
                row["direction"] == t.direction
                    && relative(&home, row["path"].as_str().unwrap_or("")) == t.path
            })
            .map(|row| row["complete"] == true)
            .collect();
        if !flags.is_empty() {
            checks.check(
                flags.iter().all(|f| *f == complete),
                format!(
                    "report: {} {}: complete {flags:?}, expected {complete}",
                    t.direction, t.path
                ),
            );
        }
    }
    let rows = r.usage.as_array().unwrap();
    let sum = |k: &str| -> u64 { rows.iter().map(|row| row[k].as_u64().unwrap_or(0)).sum() };
    let complete_up = uploads.iter().filter(|t| t.complete == Some(true)).count() as u64;
    let complete_down = downloads
        .iter()
        .filter(|t| t.complete == Some(true))
        .count() as u64;
    checks.note(format!("report usage: {}", r.usage));
    checks.eq(
        "report usage: [bytes_up, bytes_down]",
        [sum("bytes_up"), sum("bytes_down")],
        [bytes_up, bytes_down],
    );
    checks.eq(
        "report usage: [files_up + files_up_incomplete, files_down + files_down_incomplete]",
        [
            sum("files_up") + sum("files_up_incomplete"),
            sum("files_down") + sum("files_down_incomplete"),
        ],
        [uploads.len() as u64, downloads.len() as u64],
    );
    if want.transfers.iter().all(|t| t.complete.is_some()) {
        checks.eq(
            "report usage: [files_up, files_down] (complete)",
            [sum("files_up"), sum("files_down")],
            [complete_up, complete_down],
        );
    }
    // Renames in the operations table: every one the client asked for is there, the refused
    // one failed. Whether one answered OK is marked failed is printed, not asserted: sftp-server
    // logs only failure statuses, and a client's probe that fails right after a rename (psftp's
    // and sshfs's stat of the next target) logs one the ingest ties to that rename.
    let renames: Vec<(String, String, bool)> = r
        .operations
        .iter()
        .filter(|(kind, ..)| kind.contains("rename"))
        .map(|(_, p, t, failed)| (p.clone(), t.clone(), *failed))
        .collect();
    for (_, path, target) in want.ops.iter().filter(|(e, ..)| e == "rename") {
        let rows: Vec<bool> = renames
            .iter()
            .filter(|(p, t, _)| p == path && t == target)
            .map(|(.., f)| *f)
            .collect();
        checks.check(
            !rows.is_empty(),
            format!("report: no rename {path} -> {target} among {renames:?}"),
        );
        if rows.iter().any(|f| *f) {
            checks.note(format!(
                "NOTE (not asserted): the report marks the rename {path} -> {target}, answered OK, failed"
            ));
        }
    }
    for (p, t, failed) in &renames {
        if p == "ro/locked.txt" {
            checks.check(
                *failed,
                format!("report: the refused rename {p} -> {t} is not marked failed"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The common scenario: two uploads, a download, a rename answered OK and one refused.

const UP_SMALL: usize = 123_457;
const UP_BIG: usize = (1 << 20) + 4_099;
const DOWN: usize = 54_321;
const OLD: usize = 777;

struct Scenario {
    local: tempfile::TempDir,
    want: Expect,
}

fn scenario(h: &Harness, user: &str) -> Scenario {
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("up.bin"), content(1, UP_SMALL)).unwrap();
    fs::write(local.path().join("big.bin"), content(2, UP_BIG)).unwrap();
    server_file(h, user, "down.bin", &content(3, DOWN));
    server_file(h, user, "old.txt", &content(4, OLD));
    locked_file(h, user);
    Scenario {
        local,
        want: Expect {
            transfers: vec![
                up("up.bin", UP_SMALL as u64),
                up("big.bin", UP_BIG as u64),
                down("down.bin", DOWN as u64),
            ],
            ops: vec![op("rename", "old.txt", "new.txt")],
            // The refused rename.
            failed_operations: 1,
        },
    }
}

/// What the files on both sides must be after the common scenario.
fn check_files(h: &Harness, user: &str, s: &Scenario, got_down: &Path, checks: &mut Checks) {
    let home = h.home(user);
    checks.check(
        fs::read(home.join("up.bin")).ok() == Some(content(1, UP_SMALL)),
        "up.bin on the server differs from the local file",
    );
    checks.check(
        fs::read(home.join("big.bin")).ok() == Some(content(2, UP_BIG)),
        "big.bin on the server differs from the local file",
    );
    checks.check(
        fs::read(got_down).ok() == Some(content(3, DOWN)),
        format!(
            "the downloaded {} differs from down.bin",
            got_down.display()
        ),
    );
    checks.check(
        home.join("new.txt").exists() && !home.join("old.txt").exists(),
        "old.txt was not renamed to new.txt",
    );
    checks.check(
        home.join("ro/locked.txt").exists() && !home.join("stolen.txt").exists(),
        "the refused rename moved ro/locked.txt",
    );
    let _ = s;
}

// ---------------------------------------------------------------------------------------------
// lftp

/// lftp's sftp runs ssh as its connect program; the user with an empty password (`-u user,`)
/// keeps it from asking for one.
fn lftp(h: &Harness, user: &str, commands: &str, cwd: &Path) -> Output {
    let ssh = format!(
        "ssh -a -x -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
        h.client_key.display()
    );
    let script = format!(
        "set sftp:connect-program \"{ssh}\"\nset net:max-retries 1\nset net:timeout 20\nset net:reconnect-interval-base 1\nset cmd:fail-exit no\n\
         open -u {user}, -p {port} sftp://127.0.0.1\n{commands}",
        port = h.port
    );
    let file = cwd.join(".lftp-script");
    fs::write(&file, script).unwrap();
    let out = run_client("lftp", &["-f".to_owned(), file.display().to_string()], cwd);
    let _ = fs::remove_file(&file);
    out
}

fn lftp_test(mode: Mode) {
    let h = start(mode);
    let user = h.user();
    let mut s = scenario(&h, &user);
    // lftp may end the session without closing a download it read to the end: the wire shows
    // the EOF (capture mode), sftp-server's log only a forced close (syslog mode).
    if mode == Mode::Syslog {
        for t in &mut s.want.transfers {
            if t.direction == "download" {
                t.complete = None;
            }
        }
    }
    let mut checks = Checks::new(&format!("lftp, {} mode", mode.name()));
    let out = lftp(
        &h,
        &user,
        "put up.bin\nput big.bin\nget down.bin -o got-down.bin\nmv old.txt new.txt\nmv ro/locked.txt stolen.txt\n",
        s.local.path(),
    );
    checks.note(format!("lftp: {}", describe(&out)));
    check_files(
        &h,
        &user,
        &s,
        &s.local.path().join("got-down.bin"),
        &mut checks,
    );
    check_all(&h, &user, mode, &s.want, &mut checks);
    checks.finish();
}

#[test]
fn lftp_in_capture_mode() {
    require_e2e!();
    require_client!("lftp", "lftp");
    lftp_test(Mode::Capture);
}

#[test]
fn lftp_in_syslog_mode() {
    require_e2e!();
    require_client!("lftp", "lftp");
    lftp_test(Mode::Syslog);
}

/// A resumed upload (`reput`: the server holds the first part) moves only the rest: one upload
/// of the remaining bytes, not truncated.
fn lftp_resume_test(mode: Mode) {
    const FULL: usize = 1_000_003;
    const HAVE: usize = 400_000;
    let h = start(mode);
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    let data = content(7, FULL);
    fs::write(local.path().join("resume.bin"), &data).unwrap();
    server_file(&h, &user, "resume.bin", &data[..HAVE]);
    let mut checks = Checks::new(&format!(
        "lftp reput (resumed upload), {} mode",
        mode.name()
    ));
    let out = lftp(&h, &user, "reput resume.bin\n", local.path());
    checks.note(format!("lftp: {}", describe(&out)));
    checks.check(
        fs::read(h.home(&user).join("resume.bin")).ok() == Some(data),
        "resume.bin on the server differs from the local file",
    );
    let want = Expect {
        transfers: vec![up("resume.bin", (FULL - HAVE) as u64)],
        ops: vec![],
        failed_operations: 0,
    };
    check_all(&h, &user, mode, &want, &mut checks);
    checks.finish();
}

#[test]
fn lftp_resumed_upload_in_capture_mode() {
    require_e2e!();
    require_client!("lftp", "lftp");
    lftp_resume_test(Mode::Capture);
}

#[test]
fn lftp_resumed_upload_in_syslog_mode() {
    require_e2e!();
    require_client!("lftp", "lftp");
    lftp_resume_test(Mode::Syslog);
}

/// `pget -n 4`: lftp reads one file in up to four segments, each over a connection of its own.
/// Each
/// segment is a download of its part in its own session. A segment's reads run a little past its
/// end (lftp asks ahead), so the wire moves, and the accounting bills, somewhat more than the file:
/// the tests hold the hooks, the session totals and the report to each other and to at least the
/// file's size.
fn lftp_pget_test(mode: Mode) {
    const SIZE: usize = 64 << 20;
    let h = start(mode);
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    let data = content(8, SIZE);
    server_file(&h, &user, "seg.bin", &data);
    let mut checks = Checks::new(&format!(
        "lftp pget -n 4 (segmented download), {} mode",
        mode.name()
    ));
    // A rate per connection, so that the first connection has not read the whole file before
    // lftp has opened the others (over loopback it can, in syslog mode).
    let out = lftp(
        &h,
        &user,
        "set net:limit-rate 16M\npget -n 4 seg.bin -o got-seg.bin\n",
        local.path(),
    );
    checks.note(format!("lftp: {}", describe(&out)));
    checks.check(
        fs::read(local.path().join("got-seg.bin")).ok() == Some(data),
        "the segmented download differs from seg.bin",
    );
    let sessions = wait_sessions_done(&h, &user, mode);
    checks.note(format!("sessions: {sessions}"));
    let mut hooks_total = None;
    let mut hooks_count = None;
    if mode == Mode::Capture {
        let evs = events(&h, &user);
        for e in &evs {
            checks.note(format!(
                "hook {} {} read={} written={} complete={} flags={}",
                e.event, e.path, e.bytes_read, e.bytes_written, e.complete, e.open_flags
            ));
        }
        checks.check(
            evs.iter()
                .all(|e| e.event == "download" && e.path == "seg.bin"),
            "hooks: an event other than a download of seg.bin",
        );
        hooks_count = Some(evs.len());
        let total: u64 = evs.iter().map(|e| e.bytes_read).sum();
        checks.check(
            total >= SIZE as u64,
            format!("hooks: the segments read {total} bytes, less than the file's {SIZE}"),
        );
        let ended: u64 = h
            .log_text()
            .lines()
            .filter(|l| l.contains("session end") && l.contains(&format!("user={user} ")))
            .filter_map(|l| field(l, "bytes_downloaded")?.parse::<u64>().ok())
            .sum();
        checks.eq("session end: bytes_downloaded, summed", ended, total);
        hooks_total = Some(total);
    }
    for line in session_log(&h, &user) {
        checks.note(format!("log: {line}"));
    }
    let r = report(&h, &user);
    for t in &r.transfers {
        checks.note(format!(
            "report transfer: {} read={} written={} complete={} forced={}",
            t["direction"], t["bytes_read"], t["bytes_written"], t["complete"], t["forced"]
        ));
    }
    checks.note(format!("report usage: {}", r.usage));
    // A connection lftp opened after the others had taken every segment reads nothing.
    checks.check(
        r.transfers.len() >= 2 && r.transfers.len() <= sessions,
        format!(
            "lftp did not segment: {} transfer(s) in {sessions} session(s)",
            r.transfers.len()
        ),
    );
    if let Some(n) = hooks_count {
        checks.eq(
            "hooks: downloads, against the report's transfers",
            n,
            r.transfers.len(),
        );
    }
    let total: u64 = r
        .transfers
        .iter()
        .map(|t| t["bytes_read"].as_u64().unwrap_or(0))
        .sum();
    checks.check(
        total >= SIZE as u64,
        format!("report: the segments read {total} bytes, less than the file's {SIZE}"),
    );
    if let Some(hooks_total) = hooks_total {
        checks.eq(
            "report: bytes read, summed, against the hooks'",
            total,
            hooks_total,
        );
    }
    let bytes_down: u64 = r
        .usage
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["bytes_down"].as_u64().unwrap_or(0))
        .sum();
    checks.eq("report usage: bytes_down", bytes_down, total);
    checks.finish();
}

#[test]
fn lftp_segmented_download_in_capture_mode() {
    require_e2e!();
    require_client!("lftp", "lftp");
    lftp_pget_test(Mode::Capture);
}

#[test]
fn lftp_segmented_download_in_syslog_mode() {
    require_e2e!();
    require_client!("lftp", "lftp");
    lftp_pget_test(Mode::Syslog);
}

// ---------------------------------------------------------------------------------------------
// curl (sftp:// through libssh2)

fn curl(h: &Harness, user: &str, args: &[&str], cwd: &Path) -> Output {
    let key = h.client_key.display().to_string();
    let mut all: Vec<String> = vec![
        "-sS".into(),
        "--max-time".into(),
        (CLIENT_TIMEOUT_SECS - 5).to_string(),
        // libssh2 checks ~/.ssh/known_hosts unless told not to; the harness's host key is new.
        "--insecure".into(),
        "--key".into(),
        key.clone(),
        "--pubkey".into(),
        format!("{key}.pub"),
        "-u".into(),
        format!("{user}:"),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_client("curl", &all, cwd)
}

fn curl_test(mode: Mode) {
    let h = start(mode);
    let user = h.user();
    let mut s = scenario(&h, &user);
    let home = h.home(&user).display().to_string();
    let url = |rel: &str| format!("sftp://127.0.0.1:{}/~/{rel}", h.port);
    let local = s.local.path().to_owned();
    let mut checks = Checks::new(&format!("curl, {} mode", mode.name()));
    let step = |checks: &mut Checks, what: &str, args: &[&str]| {
        let out = curl(&h, &user, args, &local);
        checks.note(format!("curl {what}: {}", describe(&out)));
        out
    };
    // Two uploads in one connection, then a download.
    step(
        &mut checks,
        "uploads",
        &[
            "-T",
            "up.bin",
            &url("up.bin"),
            "-T",
            "big.bin",
            &url("big.bin"),
        ],
    );
    step(
        &mut checks,
        "download",
        &["-o", "got-down.bin", &url("down.bin")],
    );
    // Renames as curl's quote commands (after a directory listing, which is no transfer).
    step(
        &mut checks,
        "rename",
        &[
            "-Q",
            &format!("rename {home}/old.txt {home}/new.txt"),
            &url(""),
        ],
    );
    let refused = step(
        &mut checks,
        "refused rename",
        &[
            "-Q",
            &format!("rename {home}/ro/locked.txt {home}/stolen.txt"),
            &url(""),
        ],
    );
    checks.check(
        !refused.status.success(),
        "curl: the refused rename succeeded",
    );

    // --ftp-create-dirs into a missing directory: curl tries every directory of the path from
    // the root; the server refuses those that exist (the home's parents, the home).
    fs::write(local.join("deep.bin"), content(5, 5_000)).unwrap();
    step(
        &mut checks,
        "--ftp-create-dirs",
        &["--ftp-create-dirs", "-T", "deep.bin", &url("a/b/deep.bin")],
    );
    s.want.transfers.push(up("a/b/deep.bin", 5_000));
    s.want.ops.push(op("mkdir", "a", ""));
    s.want.ops.push(op("mkdir", "a/b", ""));

    // A glob of twenty files into a missing directory: the first open fails, curl creates the
    // directory and opens again.
    fs::create_dir(local.join("small")).unwrap();
    for i in 1..=20 {
        let name = format!("f{i:03}");
        let len = 1_000 + i * 17;
        fs::write(local.join("small").join(&name), content(i as u8, len)).unwrap();
        s.want
            .transfers
            .push(up(&format!("many/{name}"), len as u64));
    }
    s.want.ops.push(op("mkdir", "many", ""));
    step(
        &mut checks,
        "-T 'small/f[001-020]'",
        &["--ftp-create-dirs", "-T", "small/f[001-020]", &url("many/")],
    );

    // The .filepart convention done by hand: upload under `.filepart`, rename after the transfer
    // (a `-` quote runs after it). Renamed OK: one upload under the final name. Refused (the
    // target exists, and SFTP v3's rename does not overwrite): the upload stays a .filepart.
    fs::write(local.join("order.xml"), content(6, 2_345)).unwrap();
    step(
        &mut checks,
        "upload .filepart, rename",
        &[
            "-T",
            "order.xml",
            "-Q",
            &format!("-rename {home}/order.xml.filepart {home}/order.xml"),
            &url("order.xml.filepart"),
        ],
    );
    s.want.transfers.push(Transfer {
        renamed_to: Some("order.xml".to_owned()),
        ..up("order.xml.filepart", 2_345)
    });
    s.want
        .ops
        .push(op("rename", "order.xml.filepart", "order.xml"));
    server_file(&h, &user, "exists.xml", b"the old data");
    fs::write(local.join("exists.xml"), content(9, 3_456)).unwrap();
    step(
        &mut checks,
        "upload .filepart, refused rename",
        &[
            "-T",
            "exists.xml",
            "-Q",
            &format!("-rename {home}/exists.xml.filepart {home}/exists.xml"),
            &url("exists.xml.filepart"),
        ],
    );
    s.want.transfers.push(up("exists.xml.filepart", 3_456));
    // Refused: the two renames, the eight MKDIRs of existing directories, the two OPENs into a
    // missing directory.
    s.want.failed_operations = 12;

    check_files(&h, &user, &s, &local.join("got-down.bin"), &mut checks);
    let hm = h.home(&user);
    checks.check(
        fs::read(hm.join("a/b/deep.bin")).ok() == Some(content(5, 5_000)),
        "a/b/deep.bin differs",
    );
    for i in 1..=20usize {
        checks.check(
            fs::read(hm.join(format!("many/f{i:03}"))).ok()
                == Some(content(i as u8, 1_000 + i * 17)),
            format!("many/f{i:03} differs"),
        );
    }
    checks.check(
        fs::read(hm.join("exists.xml")).ok().as_deref() == Some(b"the old data".as_slice()),
        "exists.xml was overwritten",
    );
    check_all(&h, &user, mode, &s.want, &mut checks);
    checks.finish();
}

#[test]
fn curl_in_capture_mode() {
    require_e2e!();
    require_client!("curl", "curl");
    curl_test(Mode::Capture);
}

#[test]
fn curl_in_syslog_mode() {
    require_e2e!();
    require_client!("curl", "curl");
    curl_test(Mode::Syslog);
}

// ---------------------------------------------------------------------------------------------
// PuTTY's psftp

/// psftp with a PuTTY key converted by puttygen and the host key given by its fingerprint;
/// `-batch` answers no to every question, `-be` goes on after a failed command.
fn psftp(h: &Harness, user: &str, commands: &str, cwd: &Path) -> Output {
    let ppk = h.root().join("keys/client.ppk");
    if !ppk.exists() {
        common::run_ok(
            Command::new("puttygen")
                .arg(&h.client_key)
                .args(["-O", "private", "-o"])
                .arg(&ppk),
        );
    }
    let fingerprint = common::run_ok(
        Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(h.root().join("keys/host_ed25519.pub")),
    );
    let fingerprint = String::from_utf8(fingerprint.stdout).unwrap();
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap().to_owned();
    let batch = cwd.join(".psftp-batch");
    fs::write(&batch, commands).unwrap();
    let out = run_client(
        "psftp",
        &[
            "-batch".into(),
            "-be".into(),
            "-b".into(),
            batch.display().to_string(),
            "-P".into(),
            h.port.to_string(),
            "-i".into(),
            ppk.display().to_string(),
            "-hostkey".into(),
            fingerprint,
            format!("{user}@127.0.0.1"),
        ],
        cwd,
    );
    let _ = fs::remove_file(&batch);
    out
}

fn psftp_test(mode: Mode) {
    let h = start(mode);
    let user = h.user();
    let s = scenario(&h, &user);
    let mut checks = Checks::new(&format!("psftp, {} mode", mode.name()));
    let out = psftp(
        &h,
        &user,
        "put up.bin\nput big.bin\nget down.bin got-down.bin\nmv old.txt new.txt\nmv ro/locked.txt stolen.txt\n",
        s.local.path(),
    );
    checks.note(format!("psftp: {}", describe(&out)));
    check_files(
        &h,
        &user,
        &s,
        &s.local.path().join("got-down.bin"),
        &mut checks,
    );
    check_all(&h, &user, mode, &s.want, &mut checks);
    checks.finish();
}

#[test]
fn psftp_in_capture_mode() {
    require_e2e!();
    require_client!("psftp", "putty-tools");
    require_client!("puttygen", "putty-tools");
    psftp_test(Mode::Capture);
}

#[test]
fn psftp_in_syslog_mode() {
    require_e2e!();
    require_client!("psftp", "putty-tools");
    require_client!("puttygen", "putty-tools");
    psftp_test(Mode::Syslog);
}

// ---------------------------------------------------------------------------------------------
// sshfs

/// Why FUSE cannot mount here, if it cannot.
fn fuse_unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse does not exist (no FUSE in this container)".to_owned());
    }
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_err()
    {
        return Some("/dev/fuse cannot be opened".to_owned());
    }
    None
}

/// Unmounts at the end, also when the test fails, so no dead mount is left behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["10", "fusermount3", "-u", "-z"])
            .arg(&self.0)
            .status();
    }
}

fn sshfs_test(mode: Mode) {
    let h = start(mode);
    let user = h.user();
    let s = scenario(&h, &user);
    let mut checks = Checks::new(&format!("sshfs, {} mode", mode.name()));
    let mnt = h.root().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let out = run_client(
        "sshfs",
        &[
            format!("{user}@127.0.0.1:"),
            mnt.display().to_string(),
            "-p".into(),
            h.port.to_string(),
            "-o".into(),
            format!(
                "IdentityFile={},IdentitiesOnly=yes,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR",
                h.client_key.display()
            ),
        ],
        s.local.path(),
    );
    if !out.status.success() {
        let text = describe(&out);
        if text.contains("fuse") || text.contains("mount") {
            // Not a failure of the wrapper: FUSE does not work in this sandbox.
            eprintln!("SKIPPED: sshfs could not mount here: {text}");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("sshfs could not mount in CI: {text}");
            }
            return;
        }
        panic!("sshfs: {text}");
    }
    let mount = Mount(mnt.clone());
    let shell = |what: &str, script: &str| {
        let out = run_client("sh", &["-c".to_owned(), script.to_owned()], s.local.path());
        (what.to_owned(), out)
    };
    let m = mnt.display().to_string();
    for (what, out) in [
        shell("cp up.bin", &format!("cp up.bin {m}/up.bin")),
        shell("cp big.bin", &format!("cp big.bin {m}/big.bin")),
        shell("cat down.bin", &format!("cat {m}/down.bin > got-down.bin")),
        shell("mv old.txt", &format!("mv {m}/old.txt {m}/new.txt")),
    ] {
        checks.note(format!("{what}: {}", describe(&out)));
        checks.check(
            out.status.success(),
            format!("sshfs: {what} failed: {}", describe(&out)),
        );
    }
    let (what, out) = shell(
        "refused mv",
        &format!("mv {m}/ro/locked.txt {m}/stolen.txt"),
    );
    checks.note(format!("{what}: {}", describe(&out)));
    checks.check(!out.status.success(), "sshfs: the refused mv succeeded");
    drop(mount);
    check_files(
        &h,
        &user,
        &s,
        &s.local.path().join("got-down.bin"),
        &mut checks,
    );
    check_all(&h, &user, mode, &s.want, &mut checks);
    checks.finish();
}

#[test]
fn sshfs_in_capture_mode() {
    require_e2e!();
    require_client!("sshfs", "sshfs");
    if let Some(why) = fuse_unavailable() {
        eprintln!("SKIPPED: sshfs needs FUSE: {why}");
        return;
    }
    sshfs_test(Mode::Capture);
}

#[test]
fn sshfs_in_syslog_mode() {
    require_e2e!();
    require_client!("sshfs", "sshfs");
    if let Some(why) = fuse_unavailable() {
        eprintln!("SKIPPED: sshfs needs FUSE: {why}");
        return;
    }
    sshfs_test(Mode::Syslog);
}

// ---------------------------------------------------------------------------------------------
// rclone

/// rclone with an on-the-fly remote (`:sftp,…:`); `quiet` adds the options that keep it from
/// asking the server for a shell.
fn rclone(args: &[&str], cwd: &Path) -> Output {
    let mut all: Vec<String> = vec![
        "--config".into(),
        "/dev/null".into(),
        "--retries".into(),
        "1".into(),
        "--low-level-retries".into(),
        "1".into(),
        "--contimeout".into(),
        "20s".into(),
        "--timeout".into(),
        "30s".into(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_client("rclone", &all, cwd)
}

fn refused_sessions(h: &Harness, user: &str) -> usize {
    h.log_text()
        .lines()
        .filter(|l| l.contains("session refused") && l.contains(&format!("user={user} ")))
        .count()
}

fn rclone_test(mode: Mode) {
    let h = start(mode);
    let user = h.user();
    let s = scenario(&h, &user);
    let mut checks = Checks::new(&format!("rclone, {} mode", mode.name()));
    let remote = |quiet: bool| {
        let mut r = format!(
            ":sftp,host=127.0.0.1,port={},user={user},key_file={}",
            h.port,
            h.client_key.display()
        );
        if quiet {
            r.push_str(",shell_type=none,md5sum_command=none,sha1sum_command=none");
        }
        r.push(':');
        r
    };
    let step = |checks: &mut Checks, quiet: bool, what: &str, args: &[String]| {
        let before = refused_sessions(&h, &user);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rclone(&args, s.local.path());
        // The refused sessions are logged as the client opens them: wait a little for the last.
        std::thread::sleep(Duration::from_millis(300));
        let refused = refused_sessions(&h, &user) - before;
        checks.note(format!(
            "rclone {what} (quiet {quiet}): refused sessions {refused}; {}",
            describe(&out)
        ));
        (out, refused)
    };
    let r = remote(false);
    let (out, probes) = step(
        &mut checks,
        false,
        "copyto up.bin",
        &["copyto".into(), "up.bin".into(), format!("{r}up.bin")],
    );
    checks.check(
        out.status.success(),
        format!("rclone copyto up.bin: {}", describe(&out)),
    );
    checks.check(
        probes > 0,
        "rclone asked for no shell: the README's advice is moot",
    );
    let q = remote(true);
    let mut quiet_probes = 0;
    for (what, args) in [
        (
            "copyto big.bin",
            vec!["copyto".to_owned(), "big.bin".into(), format!("{q}big.bin")],
        ),
        (
            "copyto down.bin",
            vec![
                "copyto".into(),
                format!("{q}down.bin"),
                "got-down.bin".into(),
            ],
        ),
        (
            "moveto old.txt",
            vec![
                "moveto".into(),
                format!("{q}old.txt"),
                format!("{q}new.txt"),
            ],
        ),
    ] {
        let (out, refused) = step(&mut checks, true, what, &args);
        checks.check(
            out.status.success(),
            format!("rclone {what}: {}", describe(&out)),
        );
        quiet_probes += refused;
    }
    let (out, _) = step(
        &mut checks,
        true,
        "moveto ro/locked.txt (refused)",
        &[
            "moveto".into(),
            format!("{q}ro/locked.txt"),
            format!("{q}stolen.txt"),
        ],
    );
    // rclone does not fall back to copy and delete when the server refuses the rename.
    checks.check(
        !out.status.success(),
        "rclone: the refused moveto succeeded",
    );
    checks.eq(
        "refused sessions with shell_type=none, md5sum_command=none, sha1sum_command=none",
        quiet_probes,
        0,
    );
    check_files(
        &h,
        &user,
        &s,
        &s.local.path().join("got-down.bin"),
        &mut checks,
    );
    check_all(&h, &user, mode, &s.want, &mut checks);
    checks.finish();
}

#[test]
fn rclone_in_capture_mode() {
    require_e2e!();
    require_client!("rclone", "rclone");
    rclone_test(Mode::Capture);
}

#[test]
fn rclone_in_syslog_mode() {
    require_e2e!();
    require_client!("rclone", "rclone");
    rclone_test(Mode::Syslog);
}
