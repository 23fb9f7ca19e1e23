//! Logging through libc's syslog(3), behind one small safe wrapper (as sudo-rs does).
//!
//! glibc's syslog(3) is chosen over the `syslog` crate because it already does the two things an
//! audit trail needs: it reconnects when a send fails (so a session that spans an rsyslogd restart
//! still logs its end) and it stamps local time. It reports nothing back, so reachability is
//! checked separately with [`probe`].

use crate::config::Facility;
use std::ffi::CString;
use std::io;
use std::os::unix::net::UnixDatagram;

/// The socket glibc's syslog(3) writes to (_PATH_LOG).
pub(crate) const SYSLOG_SOCKET: &str = "/dev/log";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Err,
    Warning,
    Notice,
    Info,
}

impl Severity {
    fn to_libc(self) -> libc::c_int {
        match self {
            Severity::Err => libc::LOG_ERR,
            Severity::Warning => libc::LOG_WARNING,
            Severity::Notice => libc::LOG_NOTICE,
            Severity::Info => libc::LOG_INFO,
        }
    }
}

/// An open syslog connection. There is one per process: openlog(3) state is global.
#[derive(Debug, Clone, Copy)]
pub struct Syslog {
    facility: libc::c_int,
}

impl Syslog {
    /// Opens syslog with the given ident, the PID in every line and the given facility.
    pub fn open(ident: &str, facility: Facility) -> Syslog {
        let ident = CString::new(ident.replace('\0', "")).unwrap_or_default();
        // openlog(3) keeps the pointer, so the string must live until the process ends.
        let ident: &'static std::ffi::CStr = Box::leak(ident.into_boxed_c_str());
        // SAFETY: `ident` is a NUL-terminated string that lives for the rest of the process, as
        // openlog requires; the flags and facility are valid constants.
        unsafe {
            libc::openlog(
                ident.as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY,
                facility.to_libc(),
            )
        };
        Syslog {
            facility: facility.to_libc(),
        }
    }

    /// Sends one message. NUL bytes, which would cut the message short, are replaced.
    pub fn log(&self, severity: Severity, message: &str) {
        let message = CString::new(message.replace('\0', "\\x00")).unwrap_or_default();
        // SAFETY: the format is the constant "%s" and its one argument is a NUL-terminated string,
        // so no user-controlled text is ever interpreted as a format.
        unsafe {
            libc::syslog(
                self.facility | severity.to_libc(),
                c"%s".as_ptr(),
                message.as_ptr(),
            )
        };
    }
}

/// Checks that a syslog daemon is listening on `path`, as syslog(3) gives no such answer itself.
pub fn probe(path: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)
}

/// Sends lines on behalf of another program (capture mode forwards sftp-server's lines as
/// `sftp-server[PID]`, which syslog(3), with its one process-wide ident, cannot do).
///
/// The `syslog` crate would fit, but its RFC 3164 formatter stamps UTC (upstream #95), which
/// syslog-ng keeps; this writes the same header as glibc's syslog(3), in local time, and
/// reconnects once when a send fails (the daemon restarted).
pub(crate) struct ForwardingSender {
    path: String,
    socket: Option<UnixDatagram>,
    facility: libc::c_int,
}

impl ForwardingSender {
    pub fn new(path: &str, facility: Facility) -> ForwardingSender {
        ForwardingSender {
            path: path.to_owned(),
            socket: None,
            facility: facility.to_libc(),
        }
    }

    fn connect(&mut self) -> io::Result<&UnixDatagram> {
        if self.socket.is_none() {
            let s = UnixDatagram::unbound()?;
            s.connect(&self.path)?;
            self.socket = Some(s);
        }
        self.socket
            .as_ref()
            .ok_or_else(|| io::Error::other("not connected"))
    }

    /// Sends `message` as `tag[pid]` at `severity`.
    pub fn send(
        &mut self,
        severity: Severity,
        tag: &str,
        pid: u32,
        message: &[u8],
    ) -> io::Result<()> {
        let mut packet = format!(
            "<{}>{} {tag}[{pid}]: ",
            self.facility | severity.to_libc(),
            chrono::Local::now().format("%b %e %H:%M:%S")
        )
        .into_bytes();
        packet.extend_from_slice(message);
        let first = self.connect().and_then(|s| s.send(&packet));
        if first.is_ok() {
            return Ok(());
        }
        self.socket = None;
        self.connect()?.send(&packet)?;
        Ok(())
    }
}
