//! sftp-server without a view of `/proc`.
//!
//! Over SFTP the partner can open any file their uid may open, and `/proc/<pid>/mem` of a
//! dumpable process of the same uid is such a file: writing machine code there takes over the
//! process. The wrapper itself is non-dumpable, but the hooks it runs are programs of their own
//! (dumpable again after exec), and sftp-server can always open its own `/proc/self/mem`. So
//! sftp-server runs in a user and mount namespace of its own, entered between fork and exec,
//! with an empty read-only tmpfs over `/proc`. The uid and gid map onto themselves, so files keep
//! their real owners and every permission check is the one the partner had anyway; only names of
//! other owners show as the overflow id (`nobody`) in listings.

use std::io;

/// What the child needs to enter its namespace, prepared before the fork: nothing is allocated
/// between fork and exec.
pub(crate) struct ProcIsolation {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl ProcIsolation {
    pub fn new() -> ProcIsolation {
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        ProcIsolation {
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }

    /// Enters a new user and mount namespace and hides `/proc`.
    ///
    /// # Safety
    ///
    /// Only for a freshly forked child about to exec: it calls only async-signal-safe functions
    /// and allocates nothing, and it changes the namespaces of the calling process for good.
    pub unsafe fn enter(&self) -> io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        // SAFETY: plain system calls on constant, NUL-terminated strings and on buffers that
        // live as long as `self`.
        unsafe {
            // The id maps live in /proc/self, which belongs to root while the process is
            // non-dumpable (as everything the wrapper forks is). The process is about to exec
            // sftp-server, which exec makes dumpable anyway, and no sftp-server of the partner
            // sees /proc; so the few microseconds until exec expose nothing.
            check(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0))?;
            check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
            // An unprivileged process may map only its own ids, and only after giving up
            // setgroups(2); its supplementary groups stay as they are.
            write_file(c"/proc/self/setgroups", b"deny")?;
            write_file(c"/proc/self/uid_map", &self.uid_map)?;
            write_file(c"/proc/self/gid_map", &self.gid_map)?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                c"sftpd-wrapper".as_ptr(),
                c"/proc".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"size=4k,mode=0555".as_ptr().cast(),
            ))?;
        }
        Ok(())
    }
}

impl Default for ProcIsolation {
    fn default() -> Self {
        ProcIsolation::new()
    }
}

/// Writes `data` to `path` with open/write/close only.
///
/// # Safety
///
/// Async-signal-safe; for use between fork and exec.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and `data` is a valid buffer of its length.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let result = if n == data.len() as isize {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        };
        libc::close(fd);
        result
    }
}

/// Whether `/proc` is visible here: not in a ChrootDirectory jail without it.
///
/// Asked of the file system mounted there rather than by looking up `/proc/self`: a lookup of a
/// new process's `/proc/<pid>` builds dentries that its exit then has to invalidate, work on the
/// path of every session's start and end.
pub(crate) fn proc_visible() -> bool {
    use nix::sys::statfs::{PROC_SUPER_MAGIC, statfs};
    statfs("/proc").is_ok_and(|fs| fs.filesystem_type() == PROC_SUPER_MAGIC)
}

/// kernel.yama.ptrace_scope: 1 or more keeps a process from writing the memory of processes of
/// its uid that are not its descendants. `None` where Yama is not in the kernel.
pub fn ptrace_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()?
        .trim()
        .parse()
        .ok()
}
