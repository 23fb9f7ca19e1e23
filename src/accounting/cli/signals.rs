//! How `ingest --follow` stops: on SIGTERM or SIGINT, after a commit.

use anyhow::{Context, Result};

/// SIGTERM and SIGINT for follow mode: blocked, and read from a signalfd between two polls, so
/// that they end the loop after a commit instead of killing it mid-batch.
pub(super) struct StopSignals {
    fd: nix::sys::signalfd::SignalFd,
}

impl StopSignals {
    pub(super) fn new() -> Result<StopSignals> {
        use nix::sys::signal::{SigSet, Signal};
        let set: SigSet = [Signal::SIGTERM, Signal::SIGINT].into_iter().collect();
        set.thread_block().context("blocking SIGTERM")?;
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &set,
            nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
        )
        .context("signalfd")?;
        Ok(StopSignals { fd })
    }

    /// Sleeps up to `interval`; true when SIGTERM or SIGINT came.
    pub(super) fn wait(&self, interval: std::time::Duration) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let deadline = std::time::Instant::now() + interval;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
            );
            if matches!(self.fd.read_signal(), Ok(Some(_))) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
        }
    }
}
