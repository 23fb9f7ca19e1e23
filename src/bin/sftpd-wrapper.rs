//! The login shell for SFTP-only accounts. sshd runs it as `sftpd-wrapper -c <command>`; an admin
//! runs it as `sftpd-wrapper --check-config` or `--version`.

use clap::Parser;
use sftpd_wrapper::shell::cli::WrapperAdmin;
use sftpd_wrapper::shell::harden;
use std::ffi::OsString;

/// True for `--check-config`, `--version`, `--help` and friends. A login shell is never run like
/// that by sshd: sshd always passes `-c` or nothing.
fn is_admin_invocation(argv: &[OsString]) -> bool {
    let starts_login_shell = argv
        .first()
        .is_some_and(|a| a.to_string_lossy().starts_with('-'));
    let first = argv.get(1).map(|a| a.to_string_lossy().into_owned());
    !starts_login_shell
        && matches!(first.as_deref(), Some(a) if a.starts_with("--") || a == "-h" || a == "-V")
}

fn main() {
    // Before anything else: the partner's sftp-server runs as the same uid and could otherwise
    // read and write this process's memory through /proc.
    let hardened = harden::make_non_dumpable();
    let argv: Vec<OsString> = std::env::args_os().collect();
    if !is_admin_invocation(&argv) {
        // Still single-threaded: nothing the client put in the environment reaches libc here.
        let vars = harden::take_environment();
        let code = sftpd_wrapper::shell::session::run_shell(&argv, vars, hardened);
        // The shell has nothing to flush (it writes to stderr only, unbuffered), and std's exit
        // would unmap its signal stack and write to pages it shares copy-on-write with the
        // supervisor, while sshd waits for this exit to close the channel.
        // SAFETY: _exit ends the process at once; no other thread is running here.
        unsafe { libc::_exit(code) }
    }
    let admin = WrapperAdmin::parse_from(argv);
    if let Some(user) = admin.check_sshd.as_deref() {
        std::process::exit(check_sshd(&admin, user));
    }
    if let Some(user) = admin
        .check_chroot
        .as_deref()
        .or(admin.setup_chroot.as_deref())
    {
        std::process::exit(chroot(&admin, user));
    }
    if !admin.check_config {
        eprintln!("sftpd-wrapper: nothing to do; try --check-config or --help");
        std::process::exit(2);
    }
    match sftpd_wrapper::shell::admin::check_config(&admin.config, admin.user.as_deref()) {
        Ok(report) => {
            print!("{}", report.text);
            if report.problems.is_empty() {
                std::process::exit(0);
            }
            for p in &report.problems {
                eprintln!("sftpd-wrapper: error: {p}");
            }
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            std::process::exit(1);
        }
    }
}

/// `--check-chroot USER` / `--setup-chroot USER`.
fn chroot(admin: &WrapperAdmin, name: &str) -> i32 {
    use sftpd_wrapper::shell::chroot;
    let user = match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => {
            eprintln!("sftpd-wrapper: no such user: {name:?}");
            return 1;
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: cannot look up {name:?}: {e}");
            return 1;
        }
    };
    let cfg = match sftpd_wrapper::config::load(&admin.config) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            return 1;
        }
    };
    let Some(jail) = admin.jail.clone().or_else(|| chroot::jail_from_sshd(&user)) else {
        eprintln!(
            "sftpd-wrapper: sshd gives {name} no ChrootDirectory; name the jail with --jail DIR"
        );
        return 1;
    };
    if admin.setup_chroot.is_some() {
        let items = chroot::requirements(&user, &cfg, &admin.config, &jail);
        match chroot::setup(&user, &items, &jail) {
            Ok(done) => done.iter().for_each(|d| println!("{d}")),
            Err(e) => {
                eprintln!("sftpd-wrapper: setting up {}: {e}", jail.display());
                return 1;
            }
        }
    }
    let items = chroot::requirements(&user, &cfg, &admin.config, &jail);
    let (text, ok) = chroot::check_report(&items, &jail);
    println!("# jail {} for {name}", jail.display());
    print!("{text}");
    if ok { 0 } else { 1 }
}

/// `--check-sshd USER`.
fn check_sshd(admin: &WrapperAdmin, user: &str) -> i32 {
    use sftpd_wrapper::shell::{isolate, sshd_audit};
    let cfg = match sftpd_wrapper::config::load(&admin.config) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            return 1;
        }
    };
    let groups = match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => sftpd_wrapper::shell::session::group_names(&u),
        Ok(None) => {
            eprintln!("sftpd-wrapper: no such user: {user:?}");
            return 1;
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: cannot look up {user:?}: {e}");
            return 1;
        }
    };
    let effective = cfg.effective_for(user, &groups);
    let fixed = sshd_audit::Fixed {
        addr: admin.addr.clone(),
        host: admin.host.clone(),
        lport: admin.lport.clone(),
    };
    let facts = sshd_audit::WrapperFacts {
        allowed_commands: &effective.allowed_commands,
        hooks: cfg.hooks.any_hook(),
        proc_isolation_off: cfg.sftp_server.proc_isolation
            == sftpd_wrapper::config::ProcIsolation::Off,
        ptrace_scope: isolate::ptrace_scope(),
    };
    match sshd_audit::check(user, admin.sshd_config.as_deref(), &fixed, &facts) {
        Ok((text, error)) => {
            print!("{text}");
            i32::from(error)
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            1
        }
    }
}
