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
pub const SYSLOG_SOCKET: &str = "/dev/log";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
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
