//! The login shell for SFTP-only accounts. sshd runs it as `sftpd-wrapper -c <command>`; an admin
//! runs it as `sftpd-wrapper --check-config` or `--version`.

fn main() -> std::process::ExitCode {
    sftpd_wrapper::shell::cli::main()
}
