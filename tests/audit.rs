//! The admin checks against the real components: `--check-sshd` through the real `sshd -T` (and
//! the mistakes it must name performed through a real sshd), `--check-config` and
//! `--check-chroot` on the real binary.

mod common;

use common::Harness;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The Match block shipped in packaging/ for every user (the harness has its own Subsystem line).
fn shipped_match_block() -> String {
    let snippet = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/sshd_config.snippet"
    ))
    .unwrap();
    snippet
        .lines()
        .filter(|l| !l.starts_with("Subsystem"))
        .map(|l| l.replace("Match Group sftp-partners", "Match User *"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The harness's sshd_config with `global` among its global lines and `first_match` as the
/// first Match block (sshd takes the first value it obtains), written next to it as `name`.
fn variant(h: &Harness, name: &str, global: &str, first_match: &str) -> PathBuf {
    // Without the block the harness itself was started with, if any.
    let base = fs::read_to_string(h.root().join("sshd_config"))
        .unwrap()
        .replace(&format!("Match Address 127.0.0.0/8\n{REENABLE}"), "");
    let at = base.find("PermitUserEnvironment no").unwrap();
    let block = base.find("Match User *").unwrap();
    let text = format!(
        "{}{global}\n{}{first_match}{}",
        &base[..at],
        &base[at..block],
        &base[block..]
    );
    let path = h.root().join(name);
    fs::write(&path, text).unwrap();
    path
}

fn check_sshd(
    h: &Harness,
    user: &str,
    sshd_config: &Path,
    extra: &[&str],
) -> (Option<i32>, String) {
    let out = Command::new(&h.wrapper)
        .args(["--check-sshd", user, "--config"])
        .arg(&h.config_path)
        .arg("--sshd-config")
        .arg(sshd_config)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const REENABLE: &str = "    DisableForwarding no\n    AllowTcpForwarding yes\n    PermitOpen any\n";

#[test]
fn check_sshd_names_a_second_subsystem_that_bypasses_the_wrapper() {
    require_e2e!();
    let h = Harness::start_with(
        "",
        &format!("Subsystem backup internal-sftp\n{}", shipped_match_block()),
    );
    let user = h.user();
    // The attack: subsystem `backup` is full SFTP served by sshd itself; the wrapper never runs.
    let local = tempfile::tempdir().unwrap();
    let batch = h.out_dir.join("backup-batch");
    fs::write(&batch, "ls /etc/passwd\n").unwrap();
    let full = h.sftp_command(&user, batch.to_str().unwrap(), local.path());
    let out = Command::new("/usr/bin/sftp")
        .args(["-s", "backup"])
        .args(full.get_args())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("/etc/passwd"),
        "subsystem backup served nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !h.log_text().contains(&format!("user={user} ")),
        "the wrapper ran for subsystem backup:\n{}",
        h.log_text()
    );

    let (code, text) = check_sshd(&h, &user, &h.root().join("sshd_config"), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("error: Subsystem backup is internal-sftp"),
        "{text}"
    );
    assert!(!text.contains("error: Subsystem sftp"), "{text}");

    for (name, global, expect_ok, needle) in [
        ("clean", "", true, ""),
        (
            "other-command",
            "Subsystem backup /bin/sh -c id",
            false,
            "error: Subsystem backup is \"/bin/sh -c id\"",
        ),
        (
            "same-command",
            "Subsystem sftp2 /usr/lib/openssh/sftp-server",
            true,
            "",
        ),
    ] {
        let base = fs::read_to_string(h.root().join("sshd_config"))
            .unwrap()
            .replace("Subsystem backup internal-sftp\n", "");
        let at = base.find("PermitUserEnvironment no").unwrap();
        let path = h.root().join(name);
        fs::write(&path, format!("{}{global}\n{}", &base[..at], &base[at..])).unwrap();
        let (code, text) = check_sshd(&h, &user, &path, &[]);
        assert_eq!(code == Some(0), expect_ok, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
    }
}

#[test]
fn check_sshd_evaluates_every_match_block_without_being_told_the_address() {
    require_e2e!();
    // The attack: an "internal network" block that re-enables forwarding, placed before the
    // partners' block; the harness's clients connect from 127.0.0.1.
    let h = Harness::start_with(
        "",
        &shipped_match_block().replacen(
            "Match User *",
            &format!("Match Address 127.0.0.0/8\n{REENABLE}Match User *"),
            1,
        ),
    );
    let user = h.user();
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = target.local_addr().unwrap().port();
    let lport = common::free_port();
    let mut ssh = Command::new("/usr/bin/ssh")
        .args(h.ssh_options())
        .args(["-N", "-L", &format!("{lport}:127.0.0.1:{tport}")])
        .arg(format!("{user}@127.0.0.1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let opened = common::wait_until_opt(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", lport)).ok()
    });
    target.set_nonblocking(true).unwrap();
    let reached = opened.is_some()
        && common::wait_until_opt(Duration::from_secs(2), || target.accept().ok()).is_some();
    let _ = ssh.kill();
    let _ = ssh.wait();
    assert!(
        reached,
        "the forwarding from 127.0.0.1 did not work: the attack is not shown"
    );

    let (code, text) = check_sshd(&h, &user, &h.root().join("sshd_config"), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("error: AllowTcpForwarding is yes") && text.contains("addr=127.0.0.0"),
        "{text}"
    );
    // Told one address, it audits that one only, as before.
    let (code, text) = check_sshd(
        &h,
        &user,
        &h.root().join("sshd_config"),
        &["--addr", "192.0.2.7"],
    );
    assert_eq!(code, Some(0), "{text}");

    let group = String::from_utf8(common::run_ok(Command::new("id").args(["-gn", &user])).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let include = h.root().join("included.conf");
    fs::write(&include, format!("Match Address 10.20.0.0/16\n{REENABLE}")).unwrap();
    // (name, global lines, first Match block, whether the check passes, what it must say)
    let cases: Vec<(&str, String, String, bool, &str)> = vec![
        ("clean", String::new(), String::new(), true, ""),
        (
            "localport-harmless",
            String::new(),
            "Match LocalPort 2222\n    PermitTTY no\n".to_owned(),
            true,
            "",
        ),
        (
            "localport",
            String::new(),
            format!("Match LocalPort 2222\n{REENABLE}"),
            false,
            "lport=2222",
        ),
        (
            "address-list",
            String::new(),
            format!("Match Address 10.0.0.0/8,!10.1.0.0/16\n{REENABLE}"),
            false,
            "addr=10.0.0.0",
        ),
        (
            "address-wildcard",
            String::new(),
            format!("Match Address 172.16.*\n{REENABLE}"),
            false,
            "addr=172.16.",
        ),
        (
            "ipv6",
            String::new(),
            format!("Match Address 2001:db8:5::/48\n{REENABLE}"),
            false,
            "addr=2001:db8:5::",
        ),
        (
            "host-by-address",
            String::new(),
            format!("Match Host 10.9.*\n{REENABLE}"),
            false,
            "addr=10.9.",
        ),
        (
            "host-by-name",
            "UseDNS yes".to_owned(),
            format!("Match Host *.corp.example\n{REENABLE}"),
            false,
            "host=x.corp.example",
        ),
        (
            "local-address",
            String::new(),
            format!("Match LocalAddress 10.99.0.1\n{REENABLE}"),
            false,
            "laddr=10.99.0.1",
        ),
        (
            "rdomain",
            String::new(),
            format!("Match RDomain vrf1\n{REENABLE}"),
            false,
            "rdomain=vrf1",
        ),
        (
            "group",
            String::new(),
            format!("Match Group {group} Address 10.5.0.0/16\n{REENABLE}"),
            false,
            "addr=10.5.0.0",
        ),
        (
            "other-user",
            String::new(),
            format!("Match User someone-else Address 10.5.0.0/16\n{REENABLE}"),
            true,
            "",
        ),
        (
            "include",
            format!("Include {}", include.display()),
            String::new(),
            false,
            "addr=10.20.0.0",
        ),
    ];
    for (name, global, first_match, passes, needle) in cases {
        let path = variant(&h, name, &global, &first_match);
        let (code, text) = check_sshd(&h, &user, &path, &[]);
        assert_eq!(code == Some(0), passes, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
        assert!(!text.contains("failed"), "{name}: {text}");
        if !passes {
            assert!(text.contains("AllowTcpForwarding"), "{name}: {text}");
        }
    }
}

fn wrapper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sftpd-wrapper"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_config_needs_e_in_every_capture_mode_argument_list() {
    require_e2e!();
    let user = Harness::new_user_name();
    let h = Harness::start("");
    h.add_user(&user);
    let marker = h.out_dir.join("uploaded");
    let hook = h.hook_script(
        "on-upload",
        &format!("echo \"$SFTPD_PATH\" >> {}", marker.display()),
    );
    let config = |overrides: &str| {
        format!(
            "[sftp_server]\nlog_mode = \"capture\"\n[hooks]\non_upload = [\"{}\"]\n{overrides}",
            hook.display()
        )
    };
    // The attack on the accounting: the partner's own args send sftp-server's log elsewhere, so
    // the upload fires no hook.
    let broken = config(&format!(
        "[users.{user}]\nargs = [\"-l\", \"info\", \"-f\", \"local5\"]\n"
    ));
    h.write_config(&broken);
    let out = wrapper(&[
        "--check-config",
        "--config",
        h.config_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("users.{user}.args")), "{stderr}");
    assert!(stderr.contains("-e"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // The shell refuses it as the check does, instead of a session without events.
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("f.csv"), "x").unwrap();
    let out = h.sftp(&user, "put f.csv\n", local.path());
    assert!(!out.status.success());
    h.wait_for_log(&["session refused", &format!("user={user} "), "config_error"]);
    assert!(!marker.exists());

    for (overrides, ok, needle) in [
        (
            "[groups.partners]\nargs = [\"-l\", \"info\"]\n",
            false,
            "groups.partners.args",
        ),
        (
            "[groups.partners]\nargs = [\"-l\", \"-e\"]\n",
            false,
            "groups.partners.args",
        ),
        (
            "[groups.partners]\nargs = [\"-l\", \"info\"]\nextra_args = [\"-e\"]\n",
            true,
            "",
        ),
        ("[users.x]\nargs = [\"-el\", \"info\"]\n", true, ""),
        ("[users.x]\nextra_args = [\"-R\"]\n", true, ""),
    ] {
        h.write_config(&config(overrides));
        let out = wrapper(&[
            "--check-config",
            "--config",
            h.config_path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{overrides}: {stderr}");
        assert!(stderr.contains(needle), "{overrides}: {stderr}");
    }
    // With a valid config the same upload fires its hook.
    h.write_config(&config(""));
    h.sftp_ok(&user, "put f.csv\n", local.path());
    common::wait_until("the upload hook", Duration::from_secs(10), || {
        marker.exists().then_some(())
    });
}

/// A jail under a root-owned path (sshd refuses any component writable by others, like /tmp).
struct Jail(PathBuf);

impl Drop for Jail {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn check_chroot_lists_the_interpreter_of_a_script_hook() {
    require_e2e!();
    let base = Path::new("/srv/sftpd-e2e-jails");
    fs::create_dir_all(base).unwrap();
    fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
    let jail = Jail(
        tempfile::Builder::new()
            .prefix("jail-")
            .tempdir_in(base)
            .unwrap()
            .keep(),
    );
    fs::set_permissions(&jail.0, fs::Permissions::from_mode(0o755)).unwrap();
    let user = Harness::new_user_name();
    let h = Harness::start_with(
        "",
        &format!(
            "Match User {user}\n    ChrootDirectory {}\n",
            jail.0.display()
        ),
    );
    let home = format!("/home/{user}");
    h.add_user_full(&user, &h.wrapper.clone(), Path::new(&home), false);
    // A pre-session hook that is a script: inside the jail the kernel needs its interpreter, and
    // without it the hook fails and (pre_session_failure = "deny") the session is refused.
    let hook = h.hook_script("check-partner", "exit 0");
    h.write_config(&format!(
        "[hooks]\npre_session = [\"{}\"]\n",
        hook.display()
    ));
    let jail_s = jail.0.display().to_string();
    let config = h.config_path.display().to_string();
    let out = wrapper(&[
        "--check-chroot",
        &user,
        "--jail",
        &jail_s,
        "--config",
        &config,
    ]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&format!("missing  {}", hook.display())),
        "{listing}"
    );
    assert!(listing.contains("missing  /bin/sh"), "{listing}");

    h.add_log_socket(&jail.0.join("dev/log"));
    let out = wrapper(&[
        "--setup-chroot",
        &user,
        "--jail",
        &jail_s,
        "--config",
        &config,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = tempfile::tempdir().unwrap();
    let out = h.sftp(&user, "pwd\n", local.path());
    assert!(
        out.status.success(),
        "{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.log_text()
    );
}
