//! A ChrootDirectory jail set up by `--setup-chroot`, used by a real sshd: the session runs inside
//! the jail and its lines reach the log through the jail's own /dev/log socket.

mod common;

use common::Harness;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A jail under a root-owned path (sshd refuses any component writable by others, like /tmp).
struct Jail(PathBuf);

impl Jail {
    fn new() -> Jail {
        let base = Path::new("/srv/sftpd-e2e-jails");
        fs::create_dir_all(base).unwrap();
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("jail-")
            .tempdir_in(base)
            .unwrap()
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Jail(dir)
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn wrapper(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sftpd-wrapper"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_chrooted_partner_is_served_and_audited() {
    require_e2e!();
    let jail = Jail::new();
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
    assert_eq!(out.status.code(), Some(1), "an empty jail is incomplete");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("missing  /usr/lib/openssh/sftp-server"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("missing  {}", h.wrapper.display())),
        "{listing}"
    );
    assert!(listing.contains("missing  /dev/log"), "{listing}");
    assert!(listing.contains("imuxsock"), "{listing}");

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
    assert!(!text.contains("missing"), "{text}");

    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("in.csv"), vec![7u8; 5000]).unwrap();
    let out = h.sftp(
        &user,
        "put in.csv\nls -l\nget in.csv back.csv\npwd\n",
        local.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.log_text()
    );
    assert!(
        stdout.contains(&format!("Remote working directory: {home}")),
        "{stdout}"
    );
    assert_eq!(
        fs::read(jail.0.join(format!("home/{user}/in.csv")))
            .unwrap()
            .len(),
        5000
    );
    assert_eq!(fs::read(local.path().join("back.csv")).unwrap().len(), 5000);

    let start = h.wait_for_log(&["session start", &format!("user={user} ")]);
    let sid = common::field(&start, "sid").unwrap();
    let started = h.wait_for_log(&["sftp-server started", sid]);
    let pid = common::field(&started, "sftp_pid").unwrap();
    h.wait_for_log(&[
        &format!("sftp-server[{pid}]"),
        &format!("close \"{home}/in.csv\" bytes read 0 written 5000"),
    ]);
    h.wait_for_log(&["session end", sid, "exit_status=0"]);

    // A refused command inside the jail is refused and logged too.
    let out = h.ssh(&user, &["id"]);
    assert_eq!(out.status.code(), Some(1));
    h.wait_for_log(&["session refused", &format!("user={user} "), "command=id"]);
}
