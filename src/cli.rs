//! The command lines of the admin-facing programs, in the library so that the man pages and
//! shell completions are generated from the same definitions (`sftpd-docs`).
//!
//! The login shell's own invocation (`-c COMMAND`) is not here: it never reaches clap and is
//! checked by hand, byte for byte, in [`crate::invocation`].

use crate::report::{Format, Period};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The sftpd-report default database.
pub const DEFAULT_DB: &str = "/var/lib/sftpd-wrapper/sftpd.db";

/// Admin commands. The shell invocation (`-c COMMAND`) never reaches clap: it is checked by hand,
/// byte for byte, in `sftpd_wrapper::invocation`.
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
pub struct WrapperAdmin {
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
}

#[derive(Parser)]
#[command(
    name = "sftpd-report",
    version,
    about = "SFTP sessions, transfers and usage from the sftpd-wrapper audit log"
)]
pub struct ReportCli {
    /// The database: a path, sqlite://PATH or postgres://USER@HOST/DB [default: [report] database
    /// in the config, else /var/lib/sftpd-wrapper/sftpd.db]
    #[arg(long, global = true)]
    pub db: Option<String>,
    /// A file with the PostgreSQL password (mode 0600) [default: [report] password_file, else
    /// the PGPASSWORD environment variable]
    #[arg(long, global = true)]
    pub password_file: Option<PathBuf>,
    /// The sftpd-wrapper config, read for [report] database and [syslog] ident.
    #[arg(long, global = true, default_value = crate::config::CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Read syslog files (`-` for stdin, .gz read transparently) into the database.
    Ingest {
        /// Host name for lines that carry none [default: this machine's name]
        #[arg(long)]
        host_default: Option<String>,
        /// The wrapper's syslog ident [default: [syslog] ident in the config]
        #[arg(long)]
        wrapper_ident: Option<String>,
        /// Fail at once instead of waiting when another ingest holds the database.
        #[arg(long)]
        no_wait: bool,
        /// Lines per transaction.
        #[arg(long, default_value_t = 50_000, hide = true)]
        batch_lines: usize,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// One row per session: who, from where, how long, files and bytes each way.
    Sessions {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One row per file opened: "was invoice-42.xml downloaded, by whom, when, completely?"
    Transfers {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only paths matching this glob (`*` also matches `/`), e.g. '*/invoice-42.xml'.
        #[arg(long)]
        path: Option<String>,
    },
    /// Copy one database into another (e.g. the embedded SQLite file into the central
    /// PostgreSQL store) without duplicates; safe to run again.
    Migrate {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Sessions, files and bytes per host and user, by day or month (UTC).
    Usage {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value = "day")]
        by: Period,
    },
}

#[derive(Args)]
pub struct FilterArgs {
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    /// From: 2026-11-26, "2026-11-26 14:00", RFC 3339, or 7d / 12h / 30m / 2w ago.
    #[arg(long)]
    pub since: Option<String>,
    /// Up to (a bare date includes that day); same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// table (aligned, human sizes, local time), csv or json (exact, UTC) [default: table on a
    /// terminal, csv otherwise]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}
