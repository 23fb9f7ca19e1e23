//! What `sftpd-wrapper` runs ([`main`]), and its admin command line (`--check-config`,
//! `--check-chroot`, ...), in the library so that the man page and shell completions are
//! generated from the same definition.
//!
//! The login shell's own invocation (`-c COMMAND`) never reaches clap: [`main`] hands it to
//! [`crate::shell::session::run_shell`], and it is checked by hand, byte for byte, in
//! [`crate::shell::invocation`].

use crate::shell::harden;
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Admin commands. The shell invocation (`-c COMMAND`) never reaches clap: it is checked by hand,
/// byte for byte, in `sftpd_wrapper::shell::invocation`.
#[derive(Parser)]
#[command(
    name = "sftpd-wrapper",
    version,
    about = "SFTP-only login shell with audit logging and hooks",
    long_about = "SFTP-only login shell with audit logging and hooks.\n\n\
        Set it as an SFTP partner's login shell (usermod -s /usr/sbin/sftpd-wrapper USER). sshd \
        runs it as `sftpd-wrapper -c COMMAND`; it accepts only a COMMAND listed in \
        sftp_server.allowed_commands of /etc/sftpd-wrapper.toml (by default the sftp-server path \
        of `Subsystem sftp /usr/lib/openssh/sftp-server`), runs sftp-server with its own arguments, \
        logs session start and end to syslog (local5) and runs the configured hooks. Everything \
        else (interactive logins, commands, scp, rsync) is refused with exit status 1 and logged.\n\n\
        The options below are for the admin."
)]
pub(crate) struct WrapperAdmin {
    /// Validate the config (ownership, mode, syntax, paths) and print the effective settings.
    #[arg(long)]
    pub check_config: bool,
    /// The config file to check (or, with --setup-chroot, to copy into the jail).
    #[arg(long, default_value = crate::config::CONFIG_PATH)]
    pub config: PathBuf,
    /// Show the settings that apply to this user (per-user and per-group overrides).
    #[arg(long, requires = "check_config")]
    pub user: Option<String>,
    /// List what USER's ChrootDirectory jail lacks for the wrapper and sftp-server to run in it.
    #[arg(long, value_name = "USER", conflicts_with_all = ["check_config", "setup_chroot"])]
    pub check_chroot: Option<String>,
    /// Copy into USER's jail what --check-chroot lists as missing.
    #[arg(long, value_name = "USER", conflicts_with = "check_config")]
    pub setup_chroot: Option<String>,
    /// The jail, when it is not the one sshd_config's ChrootDirectory gives for the user.
    #[arg(long, value_name = "DIR")]
    pub jail: Option<PathBuf>,
    /// Audit sshd's settings for USER's connections (`sshd -T -C user=USER,...` for every client
    /// address, host name, local address and port the Match blocks set apart): every setting that
    /// undermines an SFTP-only account, with the fix. Exit status 1 on errors.
    #[arg(long, value_name = "USER", conflicts_with_all = ["check_config", "check_chroot", "setup_chroot"])]
    pub check_sshd: Option<String>,
    /// With --check-sshd: audit only connections with this host name (Match Host); by default
    /// every name the Match blocks set apart.
    #[arg(long, requires = "check_sshd")]
    pub host: Option<String>,
    /// With --check-sshd: audit only connections from this client address (Match Address); by
    /// default every address range the Match blocks set apart.
    #[arg(long, requires = "check_sshd")]
    pub addr: Option<String>,
    /// With --check-sshd: audit only connections to this local port (Match LocalPort); by default
    /// sshd's ports and every port a Match block names.
    #[arg(long, value_name = "PORT", requires = "check_sshd")]
    pub lport: Option<String>,
    /// With --check-sshd: sshd's config file, when not /etc/ssh/sshd_config.
    #[arg(long, value_name = "PATH", requires = "check_sshd")]
    pub sshd_config: Option<PathBuf>,
}

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

/// sftpd-wrapper's `main`: the login shell, or an admin command.
pub fn main() -> ExitCode {
    // Before anything else: the partner's sftp-server runs as the same uid and could otherwise
    // read and write this process's memory through /proc.
    let hardened = harden::make_non_dumpable();
    let argv: Vec<OsString> = std::env::args_os().collect();
    if !is_admin_invocation(&argv) {
        // Still single-threaded: nothing the client put in the environment reaches libc here.
        let vars = harden::take_environment();
        let code = crate::shell::session::run_shell(&argv, vars, hardened);
        // The shell has nothing to flush (it writes to stderr only, unbuffered), and std's exit
        // would unmap its signal stack and write to pages it shares copy-on-write with the
        // supervisor, while sshd waits for this exit to close the channel.
        // SAFETY: _exit ends the process at once; no other thread is running here.
        unsafe { libc::_exit(code) }
    }
    let admin = WrapperAdmin::parse_from(argv);
    if let Some(user) = admin.check_sshd.as_deref() {
        return check_sshd(&admin, user);
    }
    if let Some(user) = admin
        .check_chroot
        .as_deref()
        .or(admin.setup_chroot.as_deref())
    {
        return chroot(&admin, user);
    }
    if !admin.check_config {
        eprintln!("sftpd-wrapper: nothing to do; try --check-config or --help");
        return ExitCode::from(2);
    }
    match crate::shell::admin::check_config(&admin.config, admin.user.as_deref()) {
        Ok(report) => {
            print!("{}", report.text);
            if report.problems.is_empty() {
                return ExitCode::SUCCESS;
            }
            for p in &report.problems {
                eprintln!("sftpd-wrapper: error: {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-chroot USER` / `--setup-chroot USER`.
fn chroot(admin: &WrapperAdmin, name: &str) -> ExitCode {
    use crate::shell::chroot;
    let user = match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => {
            eprintln!("sftpd-wrapper: no such user: {name:?}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: cannot look up {name:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = match crate::config::load(&admin.config) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(jail) = admin.jail.clone().or_else(|| chroot::jail_from_sshd(&user)) else {
        eprintln!(
            "sftpd-wrapper: sshd gives {name} no ChrootDirectory; name the jail with --jail DIR"
        );
        return ExitCode::FAILURE;
    };
    if admin.setup_chroot.is_some() {
        let items = chroot::requirements(&user, &cfg, &admin.config, &jail);
        match chroot::setup(&user, &items, &jail) {
            Ok(done) => done.iter().for_each(|d| println!("{d}")),
            Err(e) => {
                eprintln!("sftpd-wrapper: setting up {}: {e}", jail.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let items = chroot::requirements(&user, &cfg, &admin.config, &jail);
    let (text, ok) = chroot::check_report(&items, &jail);
    println!("# jail {} for {name}", jail.display());
    print!("{text}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--check-sshd USER`.
fn check_sshd(admin: &WrapperAdmin, user: &str) -> ExitCode {
    use crate::shell::{isolate, sshd_audit};
    let cfg = match crate::config::load(&admin.config) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            return ExitCode::FAILURE;
        }
    };
    let groups = match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => crate::shell::session::group_names(&u),
        Ok(None) => {
            eprintln!("sftpd-wrapper: no such user: {user:?}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: cannot look up {user:?}: {e}");
            return ExitCode::FAILURE;
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
        proc_isolation_off: cfg.sftp_server.proc_isolation == crate::config::ProcIsolation::Off,
        ptrace_scope: isolate::ptrace_scope(),
    };
    match sshd_audit::check(user, admin.sshd_config.as_deref(), &fixed, &facts) {
        Ok((text, error)) => {
            print!("{text}");
            ExitCode::from(u8::from(error))
        }
        Err(e) => {
            eprintln!("sftpd-wrapper: {e}");
            ExitCode::FAILURE
        }
    }
}
