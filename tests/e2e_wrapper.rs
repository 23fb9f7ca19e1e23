//! The login shell against a real sshd, real OpenSSH clients, a real sftp-server and a real
//! rsyslogd (see tests/common/mod.rs). Needs root; skips with a printed reason otherwise.

mod common;

use common::{Harness, field, process_alive, syslog_pid, wait_until};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const RESTRICTED: &str = "This account is restricted to SFTP.";

fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A hook that records its environment and arguments in `out/<name>-<user>.env` and whether
/// sftp-server was still alive, then optionally sleeps before writing a `.done` marker.
fn recording_hook(h: &Harness, name: &str, sleep_secs: u32) -> std::path::PathBuf {
    h.hook_script(
        name,
        &format!(
            "out={out}/{name}-$SFTPD_USER\n\
             {{ env; echo \"ARGS=$*\"; \
             if [ -n \"$SFTPD_SFTP_PID\" ] && kill -0 \"$SFTPD_SFTP_PID\" 2>/dev/null; then echo CHILD_ALIVE=yes; else echo CHILD_ALIVE=no; fi; }} > \"$out.tmp\"\n\
             mv \"$out.tmp\" \"$out.env\"\n\
             sleep {sleep_secs}\n\
             touch \"$out.done\"",
            out = h.out_dir.display()
        ),
    )
}

fn read_env_file(path: &Path) -> HashMap<String, String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn wait_for_file(path: &Path) {
    wait_until(
        &format!("{}", path.display()),
        Duration::from_secs(15),
        || path.exists().then_some(()),
    );
}

#[test]
fn sftp_session_works_byte_for_byte_and_is_audited() {
    require_e2e!();
    let h = Harness::start("");
    let hook = recording_hook(&h, "post", 0);
    h.write_config(&format!(
        "[hooks]\npost_session = [\"{}\", \"--from-test\"]\n",
        hook.display()
    ));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    let data = pseudo_random_bytes(1 << 20, 42);
    fs::write(local.path().join("data.bin"), &data).unwrap();
    fs::write(local.path().join("my file.txt"), b"spaces in the name\n").unwrap();

    let out = h.sftp(
        &user,
        "mkdir incoming\n\
         put data.bin incoming/data.bin\n\
         rename incoming/data.bin incoming/renamed.bin\n\
         get incoming/renamed.bin back.bin\n\
         put \"my file.txt\"\n\
         put data.bin scratch.bin\n\
         rm scratch.bin\n\
         ls -l incoming\n",
        local.path(),
    );
    assert!(
        out.status.success(),
        "sftp failed: {}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.log_text()
    );
    let home = h.home(&user);
    assert_eq!(fs::read(local.path().join("back.bin")).unwrap(), data);
    assert_eq!(fs::read(home.join("incoming/renamed.bin")).unwrap(), data);
    assert_eq!(
        fs::read(home.join("my file.txt")).unwrap(),
        b"spaces in the name\n"
    );
    assert!(!home.join("scratch.bin").exists());
    assert!(!home.join("incoming/data.bin").exists());

    let end_line = h.wait_for_log(&["session end", &format!("user={user} ")]);
    let text = h.log_text();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            l.contains("sftpd-wrapper[")
                && l.contains("session start")
                && l.contains(&format!("user={user} "))
        })
        .expect("session start line");
    let start_line = lines[start];
    let sid = field(start_line, "sid").unwrap();
    assert_eq!(field(start_line, "client_ip"), Some("127.0.0.1"));
    assert_eq!(field(start_line, "local_ip"), Some("127.0.0.1"));
    assert_eq!(
        field(start_line, "local_port"),
        Some(h.port.to_string().as_str())
    );
    let client_port = field(start_line, "client_port").unwrap();
    assert!(client_port.parse::<u16>().is_ok());

    let started = lines
        .iter()
        .find(|l| l.contains("sftp-server started") && l.contains(sid))
        .expect("sftp-server started line");
    let sftp_pid = field(started, "sftp_pid").unwrap();
    let server_tag = format!("sftp-server[{sftp_pid}]: ");
    let server_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(&server_tag))
        .collect();
    let has = |needle: &str| server_lines.iter().any(|l| l.contains(needle));
    assert!(has(&format!(
        "session opened for local user {user} from [127.0.0.1]"
    )));
    let inc = home.join("incoming");
    assert!(has(&format!("mkdir name \"{}\" mode 0777", inc.display())));
    assert!(has(&format!(
        "open \"{}/data.bin\" flags WRITE,CREATE,TRUNCATE",
        inc.display()
    )));
    assert!(has(&format!(
        "close \"{}/data.bin\" bytes read 0 written {}",
        inc.display(),
        data.len()
    )));
    assert!(has(&format!(
        "rename old \"{0}/data.bin\" new \"{0}/renamed.bin\"",
        inc.display()
    )));
    assert!(has(&format!(
        "close \"{}/renamed.bin\" bytes read {} written 0",
        inc.display(),
        data.len()
    )));
    assert!(has(&format!(
        "close \"{}/my file.txt\" bytes read 0 written 19",
        home.display()
    )));
    assert!(has(&format!(
        "remove name \"{}/scratch.bin\"",
        home.display()
    )));

    let closed = lines
        .iter()
        .position(|l| l.contains(&server_tag) && l.contains("session closed for local user"))
        .expect("sftp-server's session closed");
    let end = lines.iter().position(|l| *l == end_line).unwrap();
    assert!(
        start < closed && closed < end,
        "order: start {start}, closed {closed}, end {end}"
    );
    assert_eq!(field(&end_line, "sid"), Some(sid));
    assert_eq!(field(&end_line, "sftp_pid"), Some(sftp_pid));
    assert_eq!(field(&end_line, "exit_status"), Some("0"));
    assert_eq!(field(&end_line, "client_port"), Some(client_port));
    assert!(
        field(&end_line, "duration_ms")
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    // The same wrapper process logs the start, the child's PID and the end.
    assert_eq!(syslog_pid(start_line), syslog_pid(started));
    assert_eq!(syslog_pid(start_line), syslog_pid(&end_line));
    let severities = h.severity_log();
    assert!(
        severities.contains(&format!(
            "local5.info sftpd-wrapper: session start sid={sid} "
        )),
        "{severities}"
    );
    assert!(severities.contains(&format!(
        "local5.info sftpd-wrapper: session end sid={sid} "
    )));

    let env_file = h.out_dir.join(format!("post-{user}.env"));
    wait_for_file(&env_file);
    let env = read_env_file(&env_file);
    assert_eq!(env["SFTPD_HOOK"], "post_session");
    assert_eq!(env["SFTPD_SESSION_ID"], sid);
    assert_eq!(env["SFTPD_USER"], user);
    assert_eq!(env["SFTPD_CLIENT_IP"], "127.0.0.1");
    assert_eq!(env["SFTPD_CLIENT_PORT"], client_port);
    assert_eq!(env["SFTPD_LOCAL_IP"], "127.0.0.1");
    assert_eq!(env["SFTPD_LOCAL_PORT"], h.port.to_string());
    assert_eq!(env["SFTPD_EXIT_STATUS"], "0");
    assert_eq!(env["SFTPD_SFTP_PID"], sftp_pid);
    let t0 = chrono::DateTime::parse_from_rfc3339(&env["SFTPD_START_TIME"]).unwrap();
    let t1 = chrono::DateTime::parse_from_rfc3339(&env["SFTPD_END_TIME"]).unwrap();
    assert!(t1 >= t0);
    assert!(env["SFTPD_DURATION_MS"].parse::<u64>().is_ok());
    assert_eq!(env["ARGS"], "--from-test");
    assert_eq!(
        env["CHILD_ALIVE"], "no",
        "the post hook ran while sftp-server was alive"
    );
    assert!(!env.contains_key("LD_PRELOAD"));
    h.wait_for_log(&["hook", sid, "hook=post_session", "result=exit", "status=0"]);
}

#[test]
fn post_hook_detaches_by_default_and_waits_when_asked() {
    require_e2e!();
    let h = Harness::start("");
    let hook = recording_hook(&h, "slow", 4);
    let local = tempfile::tempdir().unwrap();

    h.write_config(&format!(
        "[hooks]\npost_session = [\"{}\"]\n",
        hook.display()
    ));
    let user = h.user();
    h.sftp_ok(&user, "pwd\n", local.path());
    let done = h.out_dir.join(format!("slow-{user}.done"));
    // The hook sleeps 4 s before writing its marker; a detached hook has not finished when the
    // client is already back.
    assert!(!done.exists(), "the client waited for a detached post hook");
    wait_for_file(&done);
    let env = read_env_file(&h.out_dir.join(format!("slow-{user}.env")));
    assert_eq!(env["CHILD_ALIVE"], "no");

    h.write_config(&format!(
        "[hooks]\npost_session = [\"{}\"]\npost_session_mode = \"wait\"\n",
        hook.display()
    ));
    let user = h.user();
    h.sftp_ok(&user, "pwd\n", local.path());
    assert!(
        h.out_dir.join(format!("slow-{user}.done")).exists(),
        "post_session_mode = \"wait\" returned before the hook finished"
    );
}

#[test]
fn a_failing_pre_hook_refuses_the_session_unless_allowed() {
    require_e2e!();
    let h = Harness::start("");
    let env_dump = h.out_dir.join("pre.env");
    let hook = h.hook_script(
        "pre",
        &format!(
            "env > {}\necho 'partner account suspended' >&2\nexit 3",
            env_dump.display()
        ),
    );
    h.write_config(&format!(
        "[hooks]\npre_session = [\"{}\"]\n",
        hook.display()
    ));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("a.txt"), b"a").unwrap();
    let out = h.sftp(&user, "put a.txt\n", local.path());
    assert!(!out.status.success());
    assert!(!h.home(&user).join("a.txt").exists());
    let refused = h.wait_for_log(&[
        "session refused",
        &format!("user={user} "),
        "reason=pre_session_hook",
    ]);
    let sid = field(&refused, "sid").unwrap();
    let hook_line = h.wait_for_log(&["hook", sid, "hook=pre_session", "result=exit", "status=3"]);
    assert!(
        hook_line.contains("stderr=\"partner account suspended\\n\""),
        "{hook_line}"
    );
    assert!(
        !h.log_text()
            .contains(&format!("sftp-server started sid={sid}"))
    );
    let env = read_env_file(&env_dump);
    assert_eq!(env["SFTPD_HOOK"], "pre_session");
    assert_eq!(env["SFTPD_SESSION_ID"], sid);
    assert_eq!(env["SFTPD_CLIENT_IP"], "127.0.0.1");
    assert!(!env.contains_key("SFTPD_END_TIME"));

    h.write_config(&format!(
        "[hooks]\npre_session = [\"{}\"]\npre_session_failure = \"allow\"\n",
        hook.display()
    ));
    h.sftp_ok(&user, "put a.txt\n", local.path());
    assert!(h.home(&user).join("a.txt").exists());
}

#[test]
fn a_pre_hook_past_its_timeout_is_killed_and_refuses_the_session() {
    require_e2e!();
    let h = Harness::start("");
    let hook = h.hook_script("hang", "sleep 60");
    h.write_config(&format!(
        "[hooks]\npre_session = [\"{}\"]\ntimeout_secs = 1\n",
        hook.display()
    ));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    let out = h.sftp(&user, "pwd\n", local.path());
    assert!(!out.status.success());
    let line = h.wait_for_log(&[
        "hook",
        &format!("user={user} "),
        "hook=pre_session",
        "result=timeout",
    ]);
    let sid = field(&line, "sid").unwrap();
    h.wait_for_log(&["session refused", sid, "reason=pre_session_hook"]);
    // The hook's process group is gone: no `sleep 60` of this user is left.
    wait_until(
        "the hook's sleep to be killed",
        Duration::from_secs(5),
        || {
            let out = Command::new("pgrep")
                .args(["-u", &user, "sleep"])
                .output()
                .unwrap();
            (!out.status.success()).then_some(())
        },
    );
}

#[test]
fn everything_but_the_sftp_subsystem_is_refused_and_logged() {
    require_e2e!();
    let h = Harness::start("");
    let user = h.user();
    let marker = h.out_dir.join("pwned");
    let marker_s = marker.display().to_string();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![], "interactive_login", "command=\"\""),
        (vec!["id"], "command_not_allowed", "command=id"),
        (
            vec!["touch", &marker_s],
            "command_not_allowed",
            "command=\"touch ",
        ),
        (
            vec!["/usr/lib/openssh/sftp-server; sh"],
            "command_not_allowed",
            "command=\"/usr/lib/openssh/sftp-server; sh\"",
        ),
        (
            vec!["/usr/lib/openssh/sftp-server -d /"],
            "command_not_allowed",
            "command=\"/usr/lib/openssh/sftp-server -d /\"",
        ),
        (
            vec!["/usr/lib/openssh/sftp-server", "&&", "id"],
            "command_not_allowed",
            "command=\"/usr/lib/openssh/sftp-server && id\"",
        ),
        (
            vec!["echo 'x\" user=root'\n id"],
            "command_not_allowed",
            "command=\"echo 'x\\\" user=root'\\n id\"",
        ),
        (
            vec!["internal-sftp"],
            "command_not_allowed",
            "command=internal-sftp",
        ),
        (vec!["/bin/sh"], "command_not_allowed", "command=/bin/sh"),
    ];
    for (remote, reason, logged) in &cases {
        let out = h.ssh(&user, remote);
        assert_eq!(out.status.code(), Some(1), "{remote:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(RESTRICTED), "{remote:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{remote:?} wrote to stdout");
        let line = h.wait_for_log(&["session refused", &format!("reason={reason}"), logged]);
        assert!(line.contains(&format!("user={user} ")));
        assert!(line.contains(" client_ip=127.0.0.1 "));
        assert!(line.contains("sftpd-wrapper[") && line.contains("session refused"));
    }
    assert!(!marker.exists());
    let severities = h.severity_log();
    let refusals: Vec<&str> = severities
        .lines()
        .filter(|l| l.contains("session refused"))
        .collect();
    assert_eq!(refusals.len(), cases.len());
    assert!(
        refusals
            .iter()
            .all(|l| l.starts_with("local5.warning sftpd-wrapper: ")),
        "{refusals:?}"
    );

    // Legacy scp runs `scp -t` through the shell, rsync runs `rsync --server`.
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("f.txt"), b"x").unwrap();
    let mut scp = Command::new("/usr/bin/scp");
    scp.arg("-O").args(h.scp_options()).arg("f.txt");
    let mut rsync = Command::new("rsync");
    rsync.arg("-e").arg(h.ssh_e_option()).arg("f.txt");
    for (mut client, logged) in [
        (scp, "command=\"scp -t f.txt\""),
        (rsync, "command=\"rsync --server"),
    ] {
        let out = client
            .arg(format!("{user}@127.0.0.1:f.txt"))
            .current_dir(local.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{logged}");
        h.wait_for_log(&["session refused", &format!("user={user} "), logged]);
        assert!(!h.home(&user).join("f.txt").exists());
    }

    // ~/.ssh/rc is run by sshd through the login shell for commands, never for subsystems.
    let ssh_dir = h.home(&user).join(".ssh");
    fs::create_dir(&ssh_dir).unwrap();
    fs::write(ssh_dir.join("rc"), format!("touch {marker_s}\n")).unwrap();
    let out = h.ssh(&user, &["id"]);
    assert_eq!(out.status.code(), Some(1));
    h.wait_for_log(&[
        "session refused",
        &format!("user={user} "),
        "command=\"/bin/sh ",
        ".ssh/rc\"",
    ]);
    assert!(!marker.exists());
    let out = h.sftp(&user, "pwd\n", local.path());
    assert!(
        out.status.success(),
        "sftp with ~/.ssh/rc present: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists());
}

#[test]
fn a_killed_client_still_gets_session_end_and_post_hook() {
    require_e2e!();
    let h = Harness::start("");
    let hook = recording_hook(&h, "post", 0);
    h.write_config(&format!(
        "[hooks]\npost_session = [\"{}\"]\n",
        hook.display()
    ));
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    fs::write(
        local.path().join("big.bin"),
        pseudo_random_bytes(20 << 20, 7),
    )
    .unwrap();
    // 20 MiB at 4 Mbit/s: the upload is still running when the client is killed.
    let sftp_pid = h.kill_client_mid_upload(&user, local.path(), "big.bin");

    let end = h.wait_for_log(&[
        "session end",
        &format!("user={user} "),
        &format!("sftp_pid={sftp_pid} "),
    ]);
    h.wait_for_log(&[&format!("sftp-server[{sftp_pid}]: forced close")]);
    let env_file = h.out_dir.join(format!("post-{user}.env"));
    wait_for_file(&env_file);
    let env = read_env_file(&env_file);
    assert_eq!(env["SFTPD_SESSION_ID"], field(&end, "sid").unwrap());
    assert_eq!(env["CHILD_ALIVE"], "no");
    assert!(!process_alive(sftp_pid));
    wait_until(
        "no process of the user to be left",
        Duration::from_secs(10),
        || {
            let out = Command::new("pgrep").args(["-u", &user]).output().unwrap();
            (!out.status.success()).then_some(())
        },
    );
}

#[test]
fn session_end_is_logged_across_an_rsyslogd_restart() {
    require_e2e!();
    let h = Harness::start("");
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("after.txt"), b"written after the restart").unwrap();
    let (mut child, _, sftp_pid) = h.open_session(&user, local.path(), &[]);
    h.restart_rsyslogd();
    {
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"put after.txt\nbye\n").unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let end = h.wait_for_log(&["session end", &format!("user={user} "), "exit_status=0"]);
    assert_eq!(field(&end, "sftp_pid"), Some(sftp_pid.to_string().as_str()));
    h.wait_for_log(&[
        &format!("sftp-server[{sftp_pid}]"),
        "after.txt\" bytes read 0 written 25",
    ]);
}

#[test]
fn sigterm_is_forwarded_and_a_killed_wrapper_takes_sftp_server_along() {
    require_e2e!();
    let h = Harness::start("");
    let user = h.user();
    let local = tempfile::tempdir().unwrap();

    let (mut child, wrapper_pid, sftp_pid) = h.open_session(&user, local.path(), &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let end = h.wait_for_log(&["session end", &format!("sftp_pid={sftp_pid} ")]);
    assert_eq!(field(&end, "signal"), Some("SIGTERM"), "{end}");
    h.wait_for_log(&[
        "signal forwarded",
        &format!("user={user} "),
        "signal=SIGTERM",
    ]);
    assert!(!process_alive(sftp_pid));
    let _ = child.kill();
    let _ = child.wait();

    let (mut child, wrapper_pid, sftp_pid) = h.open_session(&user, local.path(), &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until(
        "sftp-server to die with the wrapper",
        Duration::from_secs(10),
        || (!process_alive(sftp_pid)).then_some(()),
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_unsafe_or_broken_config_refuses_every_session() {
    require_e2e!();
    let h = Harness::start("");
    let user = h.user();
    let local = tempfile::tempdir().unwrap();

    std::os::unix::fs::chown(&h.config_path, Some(1), None).unwrap();
    let out = h.sftp(&user, "pwd\n", local.path());
    assert!(!out.status.success());
    h.wait_for_log(&[
        "session refused",
        &format!("user={user} "),
        "reason=config_error",
        "owned by uid 1, not root",
    ]);
    std::os::unix::fs::chown(&h.config_path, Some(0), None).unwrap();

    fs::set_permissions(&h.config_path, fs::Permissions::from_mode(0o666)).unwrap();
    let out = h.ssh(&user, &["id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--check-config"));
    h.wait_for_log(&["session refused", "reason=config_error", "mode 0666"]);
    fs::set_permissions(&h.config_path, fs::Permissions::from_mode(0o644)).unwrap();

    h.write_config("[hooks]\npost_sesion = []\n");
    let out = h.sftp(&user, "pwd\n", local.path());
    assert!(!out.status.success());
    h.wait_for_log(&["session refused", "reason=config_error", "post_sesion"]);

    h.write_config("");
    h.sftp_ok(&user, "pwd\n", local.path());
}

#[test]
fn an_unreachable_syslog_is_allowed_or_denied_by_policy() {
    require_e2e!();
    let h = Harness::start("");
    let user = h.user();
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("a.txt"), b"a").unwrap();
    h.stop_rsyslogd();

    h.sftp_ok(&user, "put a.txt\n", local.path());
    assert!(h.home(&user).join("a.txt").exists());
    let out = h.ssh(&user, &["id"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("syslog is not reachable at /dev/log"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().filter(|l| l.contains("syslog")).count(), 1);

    h.write_config("[syslog]\non_failure = \"deny\"\n");
    fs::remove_file(h.home(&user).join("a.txt")).unwrap();
    let out = h.sftp(&user, "put a.txt\n", local.path());
    assert!(!out.status.success());
    assert!(!h.home(&user).join("a.txt").exists());
    let out = h.ssh(&user, &["id"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("syslog.on_failure = \"deny\""));
}

#[test]
fn per_user_and_per_group_overrides_reach_sftp_server() {
    require_e2e!();
    let h = Harness::start("");
    let reader = Harness::new_user_name();
    let grouped = Harness::new_user_name();
    let group = format!("{grouped}g");
    assert!(
        Command::new("groupadd")
            .arg(&group)
            .status()
            .unwrap()
            .success()
    );
    h.write_config(&format!(
        "[users.{reader}]\nextra_args = [\"-R\"]\n\n[groups.{group}]\nextra_args = [\"-u\", \"077\"]\n"
    ));
    h.add_user(&reader);
    h.add_user(&grouped);
    assert!(
        Command::new("usermod")
            .args(["-a", "-G", &group, &grouped])
            .status()
            .unwrap()
            .success()
    );

    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("a.txt"), b"a").unwrap();
    fs::write(h.home(&reader).join("offer.txt"), b"for download").unwrap();
    h.sftp_ok(&reader, "get offer.txt\n", local.path());
    assert_eq!(
        fs::read(local.path().join("offer.txt")).unwrap(),
        b"for download"
    );
    let out = h.sftp(&reader, "put a.txt\n", local.path());
    assert!(!out.status.success(), "a read-only user could upload");
    assert!(!h.home(&reader).join("a.txt").exists());
    h.wait_for_log(&[
        "sftp-server started",
        &format!("user={reader} "),
        "args=\"-f local5 -l info -R\"",
    ]);

    h.sftp_ok(&grouped, "put a.txt\n", local.path());
    let mode = fs::metadata(h.home(&grouped).join("a.txt")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "umask 077 from the group override");
    h.wait_for_log(&[
        "sftp-server started",
        &format!("user={grouped} "),
        "args=\"-f local5 -l info -u 077\"",
    ]);
    let _ = Command::new("pkill")
        .args(["-KILL", "-u", &grouped])
        .status();
    drop(h);
    let _ = Command::new("groupdel").arg(&group).status();
}

#[test]
fn sftp_server_gets_an_allow_listed_environment() {
    require_e2e!();
    let h = Harness::start_with("", "PermitUserEnvironment yes");
    let user = h.user();
    let ssh_dir = h.home(&user).join(".ssh");
    fs::create_dir(&ssh_dir).unwrap();
    fs::write(
        ssh_dir.join("environment"),
        "BASH_ENV=/tmp/evil\nUSER=root\nLANG=C.UTF-8\nPATH=/tmp/evil\nTZ=Pacific/Kiritimati\n",
    )
    .unwrap();
    let local = tempfile::tempdir().unwrap();
    let (mut child, _, sftp_pid) = h.open_session(&user, local.path(), &[]);
    let environ = fs::read(format!("/proc/{sftp_pid}/environ")).unwrap();
    let vars: HashMap<String, String> = environ
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv).into_owned();
            s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    assert!(!vars.contains_key("BASH_ENV"), "{vars:?}");
    assert!(!vars.contains_key("TZ"), "{vars:?}");
    assert_eq!(
        vars["PATH"],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(vars["USER"], user);
    assert_eq!(vars["LOGNAME"], user);
    assert_eq!(vars["LANG"], "C.UTF-8");
    assert!(vars["SSH_CONNECTION"].starts_with("127.0.0.1 "));
    let mut keys: Vec<&str> = vars.keys().map(String::as_str).collect();
    keys.sort();
    for k in &keys {
        assert!(
            [
                "HOME",
                "LANG",
                "LOGNAME",
                "PATH",
                "SSH_CLIENT",
                "SSH_CONNECTION",
                "USER"
            ]
            .contains(k)
                || k.starts_with("LC_"),
            "unexpected variable {k} in sftp-server's environment"
        );
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
