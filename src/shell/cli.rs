//! The login shell's admin command line (`--check-config`, `--check-chroot`, ...), in the library
//! so that the man page and shell completions are generated from the same definition.
//!
//! The login shell's own invocation (`-c COMMAND`) is not here: it never reaches clap and is
//! checked by hand, byte for byte, in [`crate::shell::invocation`].

use clap::Parser;
use std::path::PathBuf;

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
