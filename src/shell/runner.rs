//! The event-hook runner: a process of its own that runs event hooks (and, in capture mode, the
//! post-session hook) one at a time, in order, while sftp-server keeps running at full speed.
//!
//! It is forked from the wrapper before any thread exists, in a session of its own with stdio on
//! /dev/null, so it holds nothing of the SSH channel: when sftp-server exits the wrapper can exit
//! at once (releasing the client) and the runner finishes the queued hooks. The queue is a pipe
//! with non-blocking writes: when it is full an event is dropped, and the wrapper counts and logs
//! that; it never waits.

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};

/// Writes up to this size are atomic on a pipe, so a job never arrives half-written.
const PIPE_BUF: usize = 4096;
/// Room for the queue: about a thousand events.
const QUEUE_BYTES: libc::c_int = 1 << 20;

/// One hook to run. Byte strings travel hex-encoded, so any file name fits in the JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The hook's name in the config: `on_upload`, …, `post_session`.
    pub hook: String,
    pub argv: Vec<String>,
    /// Variables added to the session's hook environment, values hex-encoded.
    pub vars: Vec<(String, String)>,
    /// What the hook gets on stdin, hex-encoded.
    pub stdin: Option<String>,
}

/// In a freshly forked child: leaves the SSH session's process group and stdio, so that nothing
/// of the channel stays open and no signal meant for the wrapper reaches it.
pub fn detach_from_channel() {
    let _ = nix::unistd::setsid();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The queue is full: the runner is behind.
    Full,
    /// The runner is gone.
    Closed,
    /// The job does not fit one atomic write (cannot happen with sftp-server's 500-byte lines).
    TooLarge,
}

pub struct Runner {
    pid: Pid,
    queue: File,
}

impl Runner {
    /// Forks the runner, which calls `run_job` for each job until the queue is closed.
    ///
    /// Must be called while the process has a single thread.
    pub fn start(mut run_job: impl FnMut(Job)) -> std::io::Result<Runner> {
        let (read_end, write_end): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // SAFETY: the caller guarantees a single thread, so the child may use std after fork.
        match unsafe { nix::unistd::fork() }? {
            ForkResult::Child => {
                drop(write_end);
                detach_from_channel();
                let reader = BufReader::new(File::from(read_end));
                for line in reader.split(b'\n').map_while(Result::ok) {
                    if let Ok(job) = serde_json::from_slice::<Job>(&line) {
                        run_job(job);
                    }
                }
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                drop(read_end);
                crate::shell::hooks::set_nonblocking(&write_end, true)?;
                // A larger queue where the system allows it; the default 64 KiB works too.
                let _ = nix::fcntl::fcntl(
                    write_end.as_fd(),
                    nix::fcntl::FcntlArg::F_SETPIPE_SZ(QUEUE_BYTES),
                );
                Ok(Runner {
                    pid: child,
                    queue: File::from(write_end),
                })
            }
        }
    }

    /// Queues a job without ever blocking.
    pub fn send(&mut self, job: &Job) -> Result<(), SendError> {
        let mut line = serde_json::to_vec(job).map_err(|_| SendError::TooLarge)?;
        line.push(b'\n');
        if line.len() > PIPE_BUF {
            return Err(SendError::TooLarge);
        }
        match self.queue.write(&line) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(_) => Err(SendError::Full),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(SendError::Full),
            Err(_) => Err(SendError::Closed),
        }
    }

    /// Queues a job, waiting for room if need be: for the last job of a session, which must not
    /// be dropped.
    pub fn send_blocking(&mut self, job: &Job) -> Result<(), SendError> {
        // If this fails the send stays non-blocking and reports Full instead of waiting.
        let _ = crate::shell::hooks::set_nonblocking(&self.queue, false);
        self.send(job)
    }

    /// Closes the queue; with `wait`, also waits until the runner has run everything.
    pub fn finish(self, wait: bool) {
        let Runner { pid, queue } = self;
        drop(queue);
        if wait {
            while let Err(Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
        }
    }
}
