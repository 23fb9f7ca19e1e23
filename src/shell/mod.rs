//! The login shell: sshd runs `sftpd-wrapper -c <subsystem command>`, and this wing checks the
//! command, logs the session, runs the hooks and sftp-server, and logs the end. No database code
//! is reachable from here: the `accounting` feature can be off.

pub(crate) mod admin;
pub(crate) mod capture;
pub(crate) mod chroot;
pub mod cli;
pub(crate) mod harden;
pub(crate) mod hooks;
pub(crate) mod invocation;
pub(crate) mod isolate;
pub(crate) mod relay;
pub(crate) mod runner;
pub(crate) mod session;
pub(crate) mod sftp_tap;
pub(crate) mod sshd_audit;
pub(crate) mod syslog;

/// A mutex shared by the session's threads. A thread that panicked holding it left nothing
/// half-done that the others must not read (each holder changes whole values), so its poison
/// is ignored rather than ending the session without its `session end`.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
