//! What the login shell does before anything else, and the checks on what it inherited.
//!
//! The partner's own sftp-server runs as the partner's uid, and SFTP can read and write
//! `/proc/<pid>/mem`, `environ` and `syscall` of every dumpable process of that uid. So the
//! wrapper makes itself non-dumpable first (as OpenSSH's sshd and sftp-server do with
//! `platform_disable_tracing`); every process it forks without exec (the supervisor, the hook
//! runner) inherits that. Programs it execs (hooks) are dumpable again, which is why sftp-server
//! also runs without a view of `/proc` (see [`crate::shell::isolate`]).
//!
//! With `PermitUserEnvironment yes` or a broad `AcceptEnv`, the partner chose the environment
//! this process started with. The wrapper takes a copy for the checks and the allow-lists, then
//! empties its own environment, so that nothing the partner set (TZ, LOCPATH, NLSPATH, ...) steers
//! libc inside the wrapper: times come from the system's zone.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Makes this process non-dumpable: its `/proc/<pid>` files become root's, and no process of
/// the same uid can read its memory or environment or write its memory.
pub(crate) fn make_non_dumpable() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// Takes the environment the process started with and removes it from the process.
///
/// Call it while the process has a single thread (first thing in `main`): changing the
/// environment races with any other thread reading it.
pub(crate) fn take_environment() -> Vec<(OsString, OsString)> {
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (key, _) in &vars {
        // SAFETY: called at the start of `main`, before any thread exists, so no other thread
        // can read the environment while it changes.
        unsafe { std::env::remove_var(key) };
    }
    vars
}

/// Variables that make the dynamic loader or glibc load code or data chosen by whoever set them.
/// Their presence means sshd let the client set the environment (PermitUserEnvironment or
/// AcceptEnv); by then a preloaded library has already run, so the session is refused and the
/// admin is told to fix sshd.
pub(crate) const LOADER_VARIABLES: [&str; 9] = [
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCPATH",
    "MALLOC_TRACE",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
];

/// `LD_*`, `MALLOC_*` or one of [`LOADER_VARIABLES`].
pub(crate) fn is_loader_variable(name: &[u8]) -> bool {
    name.starts_with(b"LD_")
        || name.starts_with(b"MALLOC_")
        || LOADER_VARIABLES.iter().any(|v| v.as_bytes() == name)
}

/// The names of the loader variables present, for the refusal line.
pub(crate) fn loader_variables(vars: &[(OsString, OsString)]) -> Vec<Vec<u8>> {
    vars.iter()
        .map(|(k, _)| k.as_bytes())
        .filter(|k| is_loader_variable(k))
        .map(<[u8]>::to_vec)
        .collect()
}

/// True when stdin or stdout is a terminal: sshd gave the session a pty, which no SFTP client
/// asks for. A pty session can be hung up to signal the shell, so it is refused.
pub(crate) fn on_a_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() || std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_variables_are_found() {
        let vars: Vec<(OsString, OsString)> = [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "GCONV_PATH",
            "MALLOC_CHECK_",
            "LANG",
            "PATH",
            "TZ",
            "OLD_PRELOAD",
        ]
        .iter()
        .map(|k| (OsString::from(k), OsString::from("x")))
        .collect();
        let found = loader_variables(&vars);
        assert_eq!(
            found,
            [
                b"LD_PRELOAD".to_vec(),
                b"LD_LIBRARY_PATH".to_vec(),
                b"LD_AUDIT".to_vec(),
                b"GCONV_PATH".to_vec(),
                b"MALLOC_CHECK_".to_vec()
            ]
        );
    }
}
