//! The login shell for SFTP-only accounts. sshd runs it as `sftpd-wrapper -c <command>`; an admin
//! runs it as `sftpd-wrapper --check-config` or `--version`.

use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;

/// Admin commands. The shell invocation (`-c COMMAND`) never reaches clap: it is checked by hand,
/// byte for byte, in `sftpd_wrapper::invocation`.
#[derive(Parser)]
#[command(
    name = "sftpd-wrapper",
    version,
    about = "SFTP-only login shell with audit logging and hooks"
)]
struct Admin {
    /// Validate the config (ownership, mode, syntax, paths) and print the effective settings.
    #[arg(long)]
    check_config: bool,
    /// The config file to check.
    #[arg(long, requires = "check_config", default_value = sftpd_wrapper::config::CONFIG_PATH)]
    config: PathBuf,
    /// Show the settings that apply to this user (per-user and per-group overrides).
    #[arg(long, requires = "check_config")]
    user: Option<String>,
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

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if !is_admin_invocation(&argv) {
        std::process::exit(sftpd_wrapper::session::run_shell(&argv));
    }
    let admin = Admin::parse_from(argv);
    if !admin.check_config {
        eprintln!("sftpd-wrapper: nothing to do; try --check-config or --help");
        std::process::exit(2);
    }
    match sftpd_wrapper::admin::check_config(&admin.config, admin.user.as_deref()) {
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
