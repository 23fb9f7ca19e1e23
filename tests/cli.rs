//! The admin side of the binary: --check-config and --version, run as a real process.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn wrapper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sftpd-wrapper"))
        .args(args)
        .output()
        .unwrap()
}

fn config_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("sftpd-wrapper.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path.display().to_string()
}

#[test]
fn version_and_help() {
    let out = wrapper(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sftpd-wrapper {}", env!("CARGO_PKG_VERSION"))
    );
    let out = wrapper(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--check-config"));
}

#[test]
fn check_config_shows_the_effective_settings_for_a_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root (the config must be owned by root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        &dir,
        "[sftp_server]\nargs = [\"-f\", \"local5\", \"-l\", \"verbose\"]\n\
         [users.root]\nextra_args = [\"-R\"]\n\
         [hooks]\npost_session = [\"/bin/true\", \"--x\"]\npost_session_mode = \"wait\"\n",
    );
    let out = wrapper(&["--check-config", "--config", &path, "--user", "root"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("args = [\"-f\", \"local5\", \"-l\", \"verbose\", \"-R\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("overrides_applied = [\"users.root\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("post_session = [\"/bin/true\", \"--x\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("post_session_mode = \"wait\""), "{stdout}");

    let out = wrapper(&[
        "--check-config",
        "--config",
        &path,
        "--user",
        "no-such-user-here",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
}

#[test]
fn check_config_rejects_what_the_shell_would_reject() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root (the config must be owned by root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[hooks]\ntimeout = 5\n", "unknown field `timeout`"),
        ("[hooks]\npre_session = [\"check\"]\n", "absolute path"),
        (
            "[hooks]\npre_session = [\"/nonexistent/check\"]\n",
            "hooks.pre_session: /nonexistent/check",
        ),
        (
            "[sftp_server]\npath = \"/nonexistent/sftp-server\"\n",
            "sftp-server: /nonexistent/sftp-server",
        ),
        ("[syslog]\nfacility = \"local8\"\n", "local8"),
    ];
    for (text, needle) in cases {
        let path = config_file(&dir, text);
        let out = wrapper(&["--check-config", "--config", &path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(stderr.contains(needle), "{text}: {stderr}");
    }
    let path = config_file(&dir, "");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
    let out = wrapper(&["--check-config", "--config", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 644"));
}

#[test]
fn check_config_on_a_missing_file_reports_defaults() {
    let out = wrapper(&[
        "--check-config",
        "--config",
        "/nonexistent/sftpd-wrapper.toml",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("does not exist: built-in defaults apply"),
        "{stdout}"
    );
    assert!(
        stdout.contains("args = [\"-f\", \"local5\", \"-l\", \"info\"]"),
        "{stdout}"
    );
}

#[test]
fn run_by_hand_it_refuses_like_over_ssh() {
    // No -c: what a user gets from `su -s` or a mistaken exec. Nothing may reach stdout.
    let out = wrapper(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let out = wrapper(&["-c", "id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("This account is restricted to SFTP."));
}
