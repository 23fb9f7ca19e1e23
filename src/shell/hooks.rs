//! Running an admin's hook: an argv array, no shell, a clean environment, stdio away from the SSH
//! channel, and a time limit enforced on the hook's whole process group.

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How much of a hook's stderr is kept for the log line (escaped, at most four times as long).
const STDERR_KEEP: usize = 500;
/// How long a hook gets between SIGTERM and SIGKILL once its time is up.
const KILL_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HookOutcome {
    Exited(i32),
    Signaled(i32),
    /// The time limit passed and the hook's process group was killed.
    TimedOut,
    SpawnFailed(String),
}

impl HookOutcome {
    pub fn succeeded(&self) -> bool {
        *self == HookOutcome::Exited(0)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct HookResult {
    pub outcome: HookOutcome,
    pub elapsed: Duration,
    /// The first bytes the hook wrote to stderr, for the log.
    pub stderr: Vec<u8>,
}

/// Runs `argv` with exactly `env` as its environment, stdout on /dev/null, stderr captured, in a
/// process group of its own, and waits at most `timeout`. stdin is /dev/null, or a pipe that
/// carries `stdin` (a few KiB at most: it is written in full before the wait starts).
pub fn run(
    argv: &[String],
    env: &[(String, OsString)],
    timeout: Duration,
    stdin: Option<&[u8]>,
) -> HookResult {
    let start = Instant::now();
    let Some((program, args)) = argv.split_first() else {
        return HookResult {
            outcome: HookOutcome::SpawnFailed("empty hook command".to_owned()),
            elapsed: start.elapsed(),
            stderr: Vec::new(),
        };
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return HookResult {
                outcome: HookOutcome::SpawnFailed(format!("{program}: {e}")),
                elapsed: start.elapsed(),
                stderr: Vec::new(),
            };
        }
    };
    if let (Some(payload), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        // A hook that exits without reading gets EPIPE here, which is its business.
        let _ = pipe.write_all(payload);
    }
    let mut captured = Vec::new();
    let outcome = wait_with_deadline(&mut child, start + timeout, &mut captured);
    HookResult {
        outcome,
        elapsed: start.elapsed(),
        stderr: captured,
    }
}

fn status_outcome(status: ExitStatus) -> HookOutcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => HookOutcome::Exited(code),
        (None, Some(sig)) => HookOutcome::Signaled(sig),
        (None, None) => HookOutcome::Exited(-1),
    }
}

fn wait_with_deadline(child: &mut Child, deadline: Instant, captured: &mut Vec<u8>) -> HookOutcome {
    let pgid = Pid::from_raw(child.id() as i32);
    let mut stderr = child.stderr.take();
    if let Some(pipe) = &stderr
        && set_nonblocking(pipe, true).is_err()
    {
        stderr = None;
    }
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if let Some(pipe) = &mut stderr {
                    drain(pipe, captured);
                }
                return status_outcome(status);
            }
            Ok(None) => {}
            Err(e) => return HookOutcome::SpawnFailed(format!("waiting for the hook failed: {e}")),
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child, pgid);
            return HookOutcome::TimedOut;
        }
        let wait = pause.min(deadline - now);
        pause = (pause * 2).min(Duration::from_millis(50));
        match &mut stderr {
            Some(pipe) => {
                let ready = {
                    let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
                    let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX).max(1);
                    poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0
                };
                if ready && !drain(pipe, captured) {
                    // EOF: the hook closed stderr; go on waiting without the pipe.
                    stderr = None;
                }
            }
            None => std::thread::sleep(wait),
        }
    }
}

/// SIGTERM to the whole group, SIGKILL after a short grace, then reap the hook itself.
fn kill_group(child: &mut Child, pgid: Pid) {
    let _ = killpg(pgid, Signal::SIGTERM);
    let grace_end = Instant::now() + KILL_GRACE;
    while Instant::now() < grace_end {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Children the hook left in its group die too, even when the hook itself already exited.
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
}

/// Turns O_NONBLOCK on or off for `fd`.
pub fn set_nonblocking(fd: impl AsFd, on: bool) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Reads what is available, keeping at most [`STDERR_KEEP`] bytes. Returns false at EOF.
fn drain(pipe: &mut ChildStderr, captured: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                let room = STDERR_KEEP.saturating_sub(captured.len());
                captured.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()]
    }

    #[test]
    fn exit_status_and_stderr_are_reported() {
        let r = run(
            &sh("echo oops >&2; exit 3"),
            &[],
            Duration::from_secs(10),
            None,
        );
        assert_eq!(r.outcome, HookOutcome::Exited(3));
        assert_eq!(r.stderr, b"oops\n");
        assert!(
            run(&sh("exit 0"), &[], Duration::from_secs(10), None)
                .outcome
                .succeeded()
        );
    }

    #[test]
    fn environment_is_exactly_what_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let env = vec![
            ("SFTPD_USER".to_owned(), OsString::from("a b'\"$(id)")),
            ("OUT".to_owned(), out.clone().into_os_string()),
        ];
        // `env` prints the environment; nothing else may be there.
        let r = run(
            &["/usr/bin/env".to_owned()],
            &env,
            Duration::from_secs(10),
            None,
        );
        assert!(r.outcome.succeeded(), "{:?}", r.outcome);
        let r = run(
            &sh("/usr/bin/env > \"$OUT\""),
            &env,
            Duration::from_secs(10),
            None,
        );
        assert!(r.outcome.succeeded());
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("PWD=")).collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                format!("OUT={}", out.display()).as_str(),
                "SFTPD_USER=a b'\"$(id)"
            ]
        );
    }

    #[test]
    fn a_hook_past_its_limit_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let r = run(&sh(&script), &[], Duration::from_millis(300), None);
        assert_eq!(r.outcome, HookOutcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep was in the hook's group, so it is gone (or a zombie of init).
        std::thread::sleep(Duration::from_millis(100));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "{stat}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_failure() {
        let r = run(
            &["/nonexistent/hook".to_owned()],
            &[],
            Duration::from_secs(1),
            None,
        );
        assert!(
            matches!(r.outcome, HookOutcome::SpawnFailed(ref m) if m.contains("/nonexistent/hook"))
        );
    }

    #[test]
    fn loud_stderr_does_not_block_the_hook() {
        let r = run(
            &sh("head -c 1000000 /dev/zero >&2; exit 0"),
            &[],
            Duration::from_secs(20),
            None,
        );
        assert!(r.outcome.succeeded(), "{:?}", r.outcome);
        assert_eq!(r.stderr.len(), STDERR_KEEP);
    }

    #[test]
    fn stdin_carries_the_payload() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("stdin");
        let r = run(
            &sh(&format!("cat > {}", out.display())),
            &[],
            Duration::from_secs(10),
            Some(b"{\"event\":\"upload\"}\n"),
        );
        assert!(r.outcome.succeeded(), "{:?}", r.outcome);
        assert_eq!(std::fs::read(&out).unwrap(), b"{\"event\":\"upload\"}\n");
        // A hook that ignores its stdin is not disturbed by it.
        assert!(
            run(
                &sh("exit 0"),
                &[],
                Duration::from_secs(10),
                Some(&[b'x'; 100])
            )
            .outcome
            .succeeded()
        );
    }
}
