//! Capture mode against the real thing: per-file event hooks, session totals, and a log that
//! reads the same as syslog mode.

mod common;

use common::{Harness, field};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A hook that records each call in its own file: the environment (NUL-separated, so any byte
/// survives) and stdin.
fn event_hook(h: &Harness) -> PathBuf {
    h.hook_script(
        "event",
        &format!(
            "f=$(mktemp {out}/ev-XXXXXXXX)\n/usr/bin/env -0 > \"$f.env\"\ncat > \"$f.stdin\"\nmv \"$f.env\" \"$f.done\"",
            out = h.out_dir.display()
        ),
    )
}

fn config(hook: &Path, extra: &str) -> String {
    let h = hook.display();
    format!(
        "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{h}\"]\non_download = [\"{h}\"]\non_remove = [\"{h}\"]\n\
         on_rename = [\"{h}\"]\non_mkdir = [\"{h}\"]\non_rmdir = [\"{h}\"]\n{extra}"
    )
}

/// Every recorded hook call so far, as environment maps with raw values.
fn calls(h: &Harness) -> Vec<HashMap<String, Vec<u8>>> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(&h.out_dir) else {
        return out;
    };
    for entry in dir.flatten() {
        let p = entry.path();
        if p.extension() != Some(OsStr::new("done")) {
            continue;
        }
        let raw = fs::read(&p).unwrap();
        let mut env: HashMap<String, Vec<u8>> = raw
            .split(|&b| b == 0)
            .filter_map(|kv| {
                let eq = kv.iter().position(|&b| b == b'=')?;
                Some((
                    String::from_utf8_lossy(&kv[..eq]).into_owned(),
                    kv[eq + 1..].to_vec(),
                ))
            })
            .collect();
        let stdin = fs::read(p.with_extension("stdin")).unwrap_or_default();
        env.insert("STDIN".to_owned(), stdin);
        out.push(env);
    }
    out
}

fn calls_for(h: &Harness, user: &str, event: &str) -> Vec<HashMap<String, Vec<u8>>> {
    calls(h)
        .into_iter()
        .filter(|c| c.get("SFTPD_USER").map(Vec::as_slice) == Some(user.as_bytes()))
        .filter(|c| c.get("SFTPD_EVENT").map(Vec::as_slice) == Some(event.as_bytes()))
        .collect()
}

fn s(v: &[u8]) -> &str {
    std::str::from_utf8(v).unwrap()
}

fn wait_for_calls(h: &Harness, user: &str, event: &str, n: usize) -> Vec<HashMap<String, Vec<u8>>> {
    common::wait_until(
        &format!("{n} {event} hook calls for {user}"),
        Duration::from_secs(15),
        || {
            let c = calls_for(h, user, event);
            (c.len() >= n).then_some(c)
        },
    )
}

#[test]
fn uploads_downloads_and_operations_fire_their_hooks_once() {
    require_e2e!();
    let h = Harness::start("");
    let hook = event_hook(&h);
    h.write_config(&config(&hook, "event_format = \"json\"\n"));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    let nasty: &[u8] = b"sp ace \"q\" new\nline \xc3\xa9\xff.bin";
    fs::write(local.path().join(OsStr::from_bytes(nasty)), vec![1u8; 3333]).unwrap();
    fs::write(h.home(&user).join("offer.txt"), vec![2u8; 777]).unwrap();
    h.sftp_ok(
        &user,
        "put *\nget offer.txt\nmkdir d\nrmdir d\nrename offer.txt offer2.txt\nrm offer2.txt\n",
        local.path(),
    );
    let home = h.home(&user);

    let ups = wait_for_calls(&h, &user, "upload", 1);
    assert_eq!(ups.len(), 1, "upload fired more than once");
    let up = &ups[0];
    let mut expected_path = home.as_os_str().as_bytes().to_vec();
    expected_path.push(b'/');
    expected_path.extend_from_slice(nasty);
    assert_eq!(up["SFTPD_PATH"], expected_path);
    assert_eq!(s(&up["SFTPD_BYTES_WRITTEN"]), "3333");
    assert_eq!(s(&up["SFTPD_COMPLETE"]), "1");
    assert_eq!(s(&up["SFTPD_HOOK"]), "on_upload");
    assert!(s(&up["SFTPD_OPEN_FLAGS"]).contains("WRITE"));
    assert!(s(&up["SFTPD_ELAPSED_MS"]).parse::<u64>().is_ok());
    assert_eq!(s(&up["SFTPD_CLIENT_IP"]), "127.0.0.1");
    let json: serde_json::Value = serde_json::from_slice(&up["STDIN"]).unwrap();
    assert_eq!(json["event"], "upload");
    assert_eq!(json["bytes_written"], 3333);
    assert_eq!(
        json["path_hex"],
        expected_path
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert_eq!(
        json["session_id"].as_str().unwrap().as_bytes(),
        up["SFTPD_SESSION_ID"].as_slice()
    );

    let downs = wait_for_calls(&h, &user, "download", 1);
    assert_eq!(downs.len(), 1);
    assert_eq!(s(&downs[0]["SFTPD_BYTES_READ"]), "777");
    assert_eq!(s(&downs[0]["SFTPD_COMPLETE"]), "1");
    for event in ["mkdir", "rmdir", "remove"] {
        assert_eq!(wait_for_calls(&h, &user, event, 1).len(), 1, "{event}");
    }
    let renames = wait_for_calls(&h, &user, "rename", 1);
    assert!(s(&renames[0]["SFTPD_PATH"]).ends_with("/offer.txt"));
    assert!(s(&renames[0]["SFTPD_TARGET"]).ends_with("/offer2.txt"));

    // The totals in `session end` are what the client moved; the lines carry sftp-server's own
    // tag and read as in syslog mode.
    let end = h.wait_for_log(&["session end", &format!("user={user} ")]);
    assert_eq!(field(&end, "files_uploaded"), Some("1"));
    assert_eq!(field(&end, "bytes_uploaded"), Some("3333"));
    assert_eq!(field(&end, "files_downloaded"), Some("1"));
    assert_eq!(field(&end, "bytes_downloaded"), Some("777"));
    let sftp_pid = field(&end, "sftp_pid").unwrap();
    let close = h.wait_for_log(&[&format!("sftp-server[{sftp_pid}]: close \"")]);
    assert!(
        close.contains("new\\nline \\303\\251\\377.bin\" bytes read 0 written 3333"),
        "{close}"
    );
}

fn ups_final(h: &Harness, user: &str) -> HashMap<String, Vec<u8>> {
    wait_for_calls(h, user, "upload", 1).remove(0)
}

#[test]
fn a_filepart_upload_fires_for_the_final_name_and_a_killed_upload_is_incomplete() {
    require_e2e!();
    let h = Harness::start("");
    let hook = event_hook(&h);
    let post = h.hook_script(
        "post",
        &format!(
            // Written aside and renamed, so the test never reads a half-written file.
            "/usr/bin/env > {0}/post-$SFTPD_USER.tmp && mv {0}/post-$SFTPD_USER.tmp {0}/post-$SFTPD_USER.env",
            h.out_dir.display()
        ),
    );
    h.write_config(&config(
        &hook,
        &format!("post_session = [\"{}\"]\n", post.display()),
    ));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("report.xml"), vec![9u8; 4096]).unwrap();
    h.sftp_ok(
        &user,
        "put report.xml report.xml.filepart\nrename report.xml.filepart report.xml\n",
        local.path(),
    );
    let ups = wait_for_calls(&h, &user, "upload", 1);
    assert_eq!(ups.len(), 1);
    assert!(
        s(&ups[0]["SFTPD_PATH"]).ends_with("/report.xml"),
        "{}",
        s(&ups[0]["SFTPD_PATH"])
    );
    assert_eq!(s(&ups[0]["SFTPD_BYTES_WRITTEN"]), "4096");
    assert_eq!(wait_for_calls(&h, &user, "rename", 1).len(), 1);

    // The post-session hook ran after the event hooks, with the totals.
    let post_env = h.out_dir.join(format!("post-{user}.env"));
    common::wait_until("the post hook", Duration::from_secs(15), || {
        post_env.exists().then_some(())
    });
    let text = fs::read_to_string(&post_env).unwrap();
    assert!(text.contains("SFTPD_FILES_UPLOADED=1\n"), "{text}");
    assert!(text.contains("SFTPD_BYTES_UPLOADED=4096\n"), "{text}");
    // The client's own stat of the not-yet-existing target fails (sftp-server logs the status),
    // but a probe changes nothing: failed operations count only what changes or moves data.
    let sftp_pid = text
        .lines()
        .find_map(|l| l.strip_prefix("SFTPD_SFTP_PID="))
        .unwrap();
    let statuses = h
        .log_text()
        .matches(&format!("sftp-server[{sftp_pid}]: sent status"))
        .count();
    assert!(
        statuses > 0,
        "the client probed nothing: the check proves nothing"
    );
    assert!(text.contains("SFTPD_FAILED_OPERATIONS=0\n"), "{text}");
    // The rename fired once, naming both names, and the upload named the final name and the one
    // it was written under.
    assert!(s(&ups_final(&h, &user)["SFTPD_UPLOADED_AS"]).ends_with("/report.xml.filepart"),);

    let killed = h.user();
    fs::write(local.path().join("big.bin"), vec![3u8; 20 << 20]).unwrap();
    h.kill_client_mid_upload(&killed, local.path(), "big.bin");
    let ups = wait_for_calls(&h, &killed, "upload", 1);
    assert_eq!(s(&ups[0]["SFTPD_COMPLETE"]), "0");
    let written: u64 = s(&ups[0]["SFTPD_BYTES_WRITTEN"]).parse().unwrap();
    assert!(written > 0 && written < 20 << 20);
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_the_session_is_unaffected() {
    require_e2e!();
    let h = Harness::start("");
    let slow = h.hook_script(
        "slow",
        &format!("echo started > {}/slow-$$\nsleep 60", h.out_dir.display()),
    );
    h.write_config(&format!(
        "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{}\"]\ntimeout_secs = 2\n",
        slow.display()
    ));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    for i in 0..3 {
        fs::write(local.path().join(format!("f{i}")), vec![i as u8; 1000]).unwrap();
    }
    let t = std::time::Instant::now();
    h.sftp_ok(&user, "put f0\nput f1\nput f2\n", local.path());
    // The client is not held by the hooks: three 60-second hooks are far from done.
    assert!(t.elapsed() < Duration::from_secs(20));
    for i in 0..3 {
        assert_eq!(
            fs::read(h.home(&user).join(format!("f{i}"))).unwrap().len(),
            1000
        );
    }
    // One at a time, each killed at its limit: three in a row take three limits.
    common::wait_until("three timeouts", Duration::from_secs(20), || {
        let timeouts = h
            .log_text()
            .lines()
            .filter(|l| l.contains("hook=on_upload") && l.contains("result=timeout"))
            .count();
        (timeouts == 3).then_some(())
    });
    assert!(
        t.elapsed() >= Duration::from_secs(6),
        "the hooks ran side by side"
    );
}

/// The same client actions in syslog mode and in capture mode give the same sftp-server lines
/// and the same database rows.
#[test]
fn capture_mode_logs_and_ingests_like_syslog_mode() {
    require_e2e!();
    let mut dumps = Vec::new();
    for mode in ["syslog", "capture"] {
        let h = Harness::start(&format!("[sftp_server]\nlog_mode = \"{mode}\"\n"));
        let user = h.user();
        let local = tempfile::tempdir().unwrap();
        fs::write(local.path().join("tab\there \"q\".csv"), vec![4u8; 2500]).unwrap();
        fs::write(h.home(&user).join("out.txt"), vec![5u8; 1234]).unwrap();
        let out = h.sftp(
            &user,
            "put \"tab\there \\\"q\\\".csv\" up.csv\nget out.txt\nmkdir dir\nrename up.csv dir/up.csv\n-get missing\nrm out.txt\n",
            local.path(),
        );
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        h.wait_for_log(&["session end", &format!("user={user} ")]);
        h.wait_for_log(&[&format!("session closed for local user {user} from")]);
        let home = h.home(&user).display().to_string();
        let sftp_lines: Vec<String> = h
            .log_messages()
            .into_iter()
            .filter(|m| m.starts_with("sftp-server: "))
            .map(|m| m.replace(&home, "HOME").replace(&user, "USER"))
            .collect();
        let db_dir = tempfile::tempdir().unwrap();
        let db = db_dir.path().join("x.db");
        common::ingest(db.to_str().unwrap(), &[&h.log_path]);
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT replace(t.path_text, ?1, 'HOME'), t.direction, t.open_flags, t.bytes_read, t.bytes_written,
                        t.forced, t.failed, t.complete, s.end_reason, s.source
                   FROM transfers t JOIN sessions s ON s.id = t.session_id ORDER BY t.id",
            )
            .unwrap();
        let rows: Vec<String> = stmt
            .query_map([&home], |r| {
                Ok((0..10)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut ops = conn
            .prepare("SELECT kind, replace(COALESCE(path_text, ''), ?1, 'HOME'), replace(COALESCE(target_text, ''), ?1, 'HOME'), detail, failed FROM operations ORDER BY id")
            .unwrap();
        let ops: Vec<String> = ops
            .query_map([&home], |r| {
                Ok((0..5)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(rows.len() >= 2, "{mode}: {rows:?}");
        dumps.push((mode, sftp_lines, rows, ops));
    }
    let (_, lines_a, rows_a, ops_a) = &dumps[0];
    let (_, lines_b, rows_b, ops_b) = &dumps[1];
    assert_eq!(
        lines_a, lines_b,
        "sftp-server lines differ between syslog and capture mode"
    );
    assert_eq!(rows_a, rows_b);
    assert_eq!(ops_a, ops_b);
}

/// A hook far slower than the client fills the queue: events are dropped, counted and logged,
/// and the session itself runs and ends normally.
#[test]
fn a_full_event_queue_drops_and_counts_never_blocks() {
    require_e2e!();
    let h = Harness::start("");
    let stuck = h.hook_script("stuck", "sleep 60");
    h.write_config(&format!(
        "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_mkdir = [\"{}\"]\ntimeout_secs = 60\n",
        stuck.display()
    ));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    let dirs = 4000;
    let batch: String = (0..dirs)
        .map(|i| format!("mkdir directory-with-a-longish-name-{i:05}\n"))
        .collect();
    h.sftp_ok(&user, &batch, local.path());
    assert_eq!(fs::read_dir(h.home(&user)).unwrap().count(), dirs);
    let end = h.wait_for_log(&["session end", &format!("user={user} ")]);
    let dropped: usize = field(&end, "dropped_events")
        .expect("dropped_events in session end")
        .parse()
        .unwrap();
    assert!(dropped > 0 && dropped < dirs, "{end}");
    let logged = h
        .log_text()
        .lines()
        .filter(|l| l.contains("event dropped") && l.contains("event=mkdir"))
        .count();
    assert_eq!(logged, dropped);
}
