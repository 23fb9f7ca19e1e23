//! sftp-server's stdin and stdout through the wrapper, so that the tap
//! ([`crate::shell::sftp_tap`]) can read the packets: two threads, one each way, that pass on
//! every byte as it comes, unchanged and in order, and wait on nothing but the two ends and,
//! when the requests waiting for their answer reach the tap's cap, on those answers.
//!
//! Only sftp-server's bytes reach the client. When sftp-server is gone the requests stop at
//! once, and its last replies get a short while to reach a client that has stopped reading.

use crate::shell::lock;
use crate::shell::sftp_tap::{self, Framer, Output, Tap};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, MutexGuard};
use std::time::{Duration, Instant};

/// What one read takes: a few of sftp-server's largest packets.
const CHUNK: usize = 256 * 1024;
/// How long sftp-server's last replies may wait for the client once sftp-server has ended.
const LAST_REPLIES_WAIT: Duration = Duration::from_secs(2);
/// The size asked for sftp-server's pipes and the client's (sshd's, when they are pipes): fewer
/// wake-ups per megabyte for every process on the way. Four times Linux's default, so that a
/// partner's many parallel sessions stay within the per-user allowance (pipe-user-pages-soft,
/// 64 MiB), past which new pipes get a single page.
const PIPE_BYTES: i32 = 256 << 10;

/// sftp-server's stdin and stdout, for sftp-server, and the relay's ends of them.
pub(crate) struct Pipes {
    pub sftp_server_stdin: OwnedFd,
    pub sftp_server_stdout: OwnedFd,
    pub ends: Ends,
}

/// The relay's ends.
pub struct Ends {
    pub to_sftp_server: OwnedFd,
    pub from_sftp_server: OwnedFd,
    /// Polled by both threads; ready once `stop_writer` is dropped, when sftp-server has ended.
    pub stop: OwnedFd,
    pub stop_writer: OwnedFd,
}

pub(crate) fn pipes() -> nix::Result<Pipes> {
    let (sftp_server_stdin, to_sftp_server) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (from_sftp_server, sftp_server_stdout) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (stop, stop_writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    for fd in [&to_sftp_server, &from_sftp_server] {
        // Best effort here and on the client's side: the default works, with more wake-ups.
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
    }
    Ok(Pipes {
        sftp_server_stdin,
        sftp_server_stdout,
        ends: Ends {
            to_sftp_server,
            from_sftp_server,
            stop,
            stop_writer,
        },
    })
}

/// Whether `stop` (the read end of a pipe whose write end is dropped when sftp-server has
/// ended) says so.
fn stopped(stop: BorrowedFd) -> bool {
    let mut fds = [PollFd::new(stop, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// The tap, shared by the two threads, and the signal that answers drained it.
pub(crate) struct SharedTap {
    pub tap: Mutex<Tap>,
    drained: Condvar,
    /// The requests' thread waits on `drained`: only then do answers signal it (a signal is a
    /// system call, and answers come thousands of times a second).
    held: AtomicBool,
}

impl SharedTap {
    pub fn new(tap: Tap) -> SharedTap {
        SharedTap {
            tap: Mutex::new(tap),
            drained: Condvar::new(),
            held: AtomicBool::new(false),
        }
    }

    /// Waits (with the tap's lock) until answers have come or `timeout` has passed.
    fn wait<'a>(&self, tap: MutexGuard<'a, Tap>, timeout: Duration) -> MutexGuard<'a, Tap> {
        // Set under the lock, so an answer handled after it sees it.
        self.held.store(true, Ordering::Release);
        let tap = match self.drained.wait_timeout(tap, timeout) {
            Ok((tap, _)) => tap,
            Err(poisoned) => poisoned.into_inner().0,
        };
        self.held.store(false, Ordering::Release);
        tap
    }
}

/// How often a client held back at the tap's cap looks at `stop` while it waits.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The client's requests to sftp-server, each seen by the tap before sftp-server can read it,
/// until the client's end, sftp-server's, or `stop`. Dropping `to` then gives sftp-server its
/// end of input, as the client's disconnect would have. While the tap holds as many requests
/// waiting for their answer as it takes, the client is not read: back-pressure, as a slow
/// sftp-server exerts. At the client's end, sftp-server's end of input waits (up to
/// [`LAST_REPLIES_WAIT`]) until it has answered what it was sent: it exits at end of input
/// without sending the answers it still holds, so a write it carried out would otherwise be on
/// disk and never answered, and the tap could not count it.
pub(crate) fn pass_requests(client: BorrowedFd, to: OwnedFd, shared: &SharedTap, stop: BorrowedFd) {
    let mut to = std::fs::File::from(to);
    // Non-blocking: a read that finds nothing waits in poll, where `stop` can end it, and a
    // client that keeps sending costs no poll per read.
    let _ = fcntl(client, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let _ = fcntl(client, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
    let mut framer = Framer::default();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match nix::unistd::read(client, &mut buf) {
            Ok(0) => return wait_for_answers(shared, stop),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                let mut fds = [
                    PollFd::new(client, PollFlags::POLLIN),
                    PollFd::new(stop, PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => return,
                }
                if fds[1].any().unwrap_or(true) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        {
            let mut tap = lock(&shared.tap);
            framer.feed(&buf[..n], sftp_tap::request_need, |packet, length| {
                tap.on_request(packet, length)
            });
        }
        // A blocking write: sftp-server not reading holds the client back, as it would
        // without the wrapper; sftp-server's end ends it (EPIPE).
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
        let mut tap = lock(&shared.tap);
        while tap.full() {
            if stopped(stop) {
                return;
            }
            tap = shared.wait(tap, STOP_CHECK);
        }
    }
}

/// Waits until sftp-server has answered every request the tap saw, it has ended, or
/// [`LAST_REPLIES_WAIT`] has passed (a request it answers without an answer the tap expects).
fn wait_for_answers(shared: &SharedTap, stop: BorrowedFd) {
    let give_up_at = Instant::now() + LAST_REPLIES_WAIT;
    let mut tap = lock(&shared.tap);
    while tap.waiting() && !stopped(stop) {
        let left = give_up_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        tap = shared.wait(tap, left.min(STOP_CHECK));
    }
}

/// sftp-server's replies to the client, each seen by the tap, until sftp-server's end; hands
/// what each made known to `on_output` before the reply goes on to the client. A client that
/// is gone, or that has not read for a while after sftp-server ended, gets nothing more;
/// sftp-server's output is still read to its end, so sftp-server never blocks on it.
pub(crate) fn pass_replies(
    from: OwnedFd,
    client: BorrowedFd,
    shared: &SharedTap,
    stop: BorrowedFd,
    mut on_output: impl FnMut(Vec<Output>),
) {
    // Non-blocking, so that a client that stopped reading cannot hold this thread once
    // sftp-server has ended.
    let _ = fcntl(client, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let _ = fcntl(client, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
    let mut framer = Framer::default();
    let mut buf = vec![0u8; CHUNK];
    let mut client_gone = false;
    let mut give_up_at: Option<Instant> = None;
    loop {
        let n = match nix::unistd::read(&from, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        let mut made = Vec::new();
        {
            let mut tap = lock(&shared.tap);
            let now = Instant::now();
            framer.feed(&buf[..n], sftp_tap::reply_need, |packet, _| {
                made.extend(tap.on_reply(packet, now))
            });
        }
        if shared.held.load(Ordering::Acquire) {
            shared.drained.notify_one();
        }
        if !made.is_empty() {
            on_output(made);
        }
        if !client_gone {
            client_gone = send_to_client(client, &buf[..n], stop, &mut give_up_at).is_err();
        }
    }
}

/// Writes all of `data` to the client, waiting for it while sftp-server runs, and at most
/// [`LAST_REPLIES_WAIT`] once it has ended.
fn send_to_client(
    client: BorrowedFd,
    mut data: &[u8],
    stop: BorrowedFd,
    give_up_at: &mut Option<Instant>,
) -> Result<(), ()> {
    while !data.is_empty() {
        match nix::unistd::write(client, data) {
            Ok(n) => {
                data = &data[n..];
                continue;
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {}
            Err(_) => return Err(()),
        }
        if give_up_at.is_none() && stopped(stop) {
            *give_up_at = Some(Instant::now() + LAST_REPLIES_WAIT);
        }
        let timeout = match give_up_at {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(());
                }
                PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO)
            }
            None => PollTimeout::NONE,
        };
        let mut both = [
            PollFd::new(client, PollFlags::POLLOUT),
            PollFd::new(stop, PollFlags::POLLIN),
        ];
        // Once sftp-server has ended, `stop` is always ready: wait on the client alone.
        let fds = if give_up_at.is_some() {
            &mut both[..1]
        } else {
            &mut both[..]
        };
        match poll(fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return Err(()),
        }
    }
    Ok(())
}
