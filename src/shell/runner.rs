//! The event-hook runner: a process of its own that runs event hooks (and, in capture mode, the
//! post-session hook) one at a time, in order, while sftp-server keeps running at full speed.
//!
//! It is forked from the supervisor before any thread exists, in a session of its own with stdio
//! on /dev/null, so it holds nothing of the SSH channel: when sftp-server exits the supervisor
//! can exit at once (releasing the client) and the runner finishes the queued hooks.
//!
//! Two SOCK_SEQPACKET socket pairs connect them, so that every message arrives whole whatever its
//! size (a 4,000-byte name is one message) and is a typed [`Message`]:
//! - the event queue, written without ever blocking: when it is full an event is dropped, and
//!   the supervisor counts and logs that;
//! - the control channel, which carries only the session's end. It is never full, so the end
//!   (and the post-session hook) is never lost and never makes the client wait. From the end on,
//!   queued events may run for `hooks.drain_secs`; what is still queued then is dropped and
//!   logged, so hours of queued hook work cannot pile up behind a partner who left.

use crate::log::wrapper::DropReason;
use crate::shell::sftp_tap::Event;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, recv, send, setsockopt, socketpair, sockopt,
};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// What the supervisor asks the runner to do. Byte strings stay bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Run the hook of this event.
    Event(Event),
    /// The session has ended: with `post_session`, run the post-session hook (after the queued
    /// events) with these `SFTPD_*` variables.
    SessionEnded {
        post_session: Option<PostSessionVars>,
    },
}

/// The post-session hook's `SFTPD_*` variables.
pub(crate) type PostSessionVars = Vec<(String, Vec<u8>)>;

/// What the runner does with each message: the work, and the log line for a dropped event.
pub(crate) trait Handler {
    fn event(&mut self, event: Event);
    fn post_session(&mut self, vars: PostSessionVars);
    fn dropped(&mut self, event: &Event, reason: DropReason);
}

/// Room for the event queue where the system allows it (the kernel caps it at wmem_max).
const QUEUE_BYTES: usize = 1 << 20;
/// The largest message the runner reads: far more than any event (a path is at most 4 KiB).
const MESSAGE_BYTES: usize = 1 << 20;

/// In a freshly forked child: leaves the SSH session's process group and stdio, so that nothing
/// of the channel stays open and no signal meant for the shell reaches it.
pub(crate) fn detach_from_channel() {
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
pub(crate) enum SendError {
    /// The queue is full: the runner is behind.
    Full,
    /// The runner is gone.
    Closed,
    /// The message cannot be sent at all (larger than the socket allows).
    TooLarge,
}

pub(crate) struct Runner {
    pid: Pid,
    events: OwnedFd,
    control: OwnedFd,
}

fn seqpacket_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

impl Runner {
    /// Forks the runner, which hands every message to `handler` until the session has ended
    /// and the queue is empty, then exits.
    ///
    /// # Safety
    ///
    /// The process must have a single thread: the child goes on using the allocator and std
    /// after fork. The child never returns; it ends with `_exit`.
    pub unsafe fn start(handler: impl Handler, drain: Duration) -> std::io::Result<Runner> {
        let (events, events_peer) = seqpacket_pair()?;
        let (control, control_peer) = seqpacket_pair()?;
        // SAFETY: the caller guarantees a single thread, so the child may use std after fork.
        match unsafe { nix::unistd::fork() }? {
            ForkResult::Child => {
                drop(events);
                drop(control);
                detach_from_channel();
                serve(events_peer, control_peer, handler, drain);
                // SAFETY: _exit ends this forked copy without running the parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                drop(events_peer);
                drop(control_peer);
                crate::shell::hooks::set_nonblocking(&events, true)?;
                // A larger queue where the system allows it; the default works too.
                let _ = setsockopt(&events, sockopt::SndBuf, &QUEUE_BYTES);
                Ok(Runner {
                    pid: child,
                    events,
                    control,
                })
            }
        }
    }

    /// Queues an event without ever blocking.
    pub(crate) fn send_event(&mut self, event: &Event) -> Result<(), SendError> {
        let bytes =
            serde_json::to_vec(&Message::Event(event.clone())).map_err(|_| SendError::TooLarge)?;
        match send(self.events.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => Ok(()),
            Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) => Err(SendError::Full),
            Err(Errno::EMSGSIZE) => Err(SendError::TooLarge),
            Err(_) => Err(SendError::Closed),
        }
    }

    /// Tells the runner the session has ended (and what the post-session hook needs), closes
    /// the queue and, with `wait`, waits until the runner has run everything. The control
    /// channel holds nothing else, so this never waits for room: the client is never kept
    /// waiting for hooks in detach mode.
    pub fn finish(
        self,
        post_session: Option<PostSessionVars>,
        wait: bool,
    ) -> Result<(), SendError> {
        let Runner {
            pid,
            events,
            control,
        } = self;
        let message = serde_json::to_vec(&Message::SessionEnded { post_session })
            .map_err(|_| SendError::TooLarge)?;
        let sent = match send(control.as_raw_fd(), &message, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => Ok(()),
            Err(Errno::EMSGSIZE) => Err(SendError::TooLarge),
            Err(_) => Err(SendError::Closed),
        };
        drop(events);
        drop(control);
        if wait {
            while let Err(Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
        }
        sent
    }
}

/// Receives one message; `None` at the end of the stream (or on an error, which ends it too).
fn receive(fd: &OwnedFd, buf: &mut [u8], flags: MsgFlags) -> Option<Result<Message, Errno>> {
    loop {
        match recv(fd.as_raw_fd(), buf, flags) {
            Ok(0) => return None,
            Ok(n) => {
                return Some(serde_json::from_slice(&buf[..n]).map_err(|_| Errno::EBADMSG));
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Some(Err(Errno::EAGAIN)),
            Err(_) => return None,
        }
    }
}

/// The runner's loop: events in order; once the session has ended, only until the drain
/// deadline; then the post-session hook.
fn serve(events: OwnedFd, control: OwnedFd, mut handler: impl Handler, drain: Duration) {
    let mut buf = vec![0u8; MESSAGE_BYTES];
    // When the session ended (the drain deadline), and what the post-session hook needs.
    let mut ended: Option<(Instant, Option<PostSessionVars>)> = None;
    // The control channel stays blocking: MSG_DONTWAIT keeps the look between events from
    // waiting.
    let check_control = |ended: &mut Option<_>, buf: &mut [u8]| {
        if ended.is_none()
            && let Some(Ok(Message::SessionEnded { post_session })) =
                receive(&control, buf, MsgFlags::MSG_DONTWAIT)
        {
            *ended = Some((Instant::now() + drain, post_session));
        }
    };
    while let Some(message) = receive(&events, &mut buf, MsgFlags::empty()) {
        check_control(&mut ended, &mut buf);
        if let Ok(Message::Event(event)) = message {
            match &ended {
                Some((deadline, _)) if Instant::now() >= *deadline => {
                    handler.dropped(&event, DropReason::DrainTimeout)
                }
                _ => handler.event(event),
            }
        }
    }
    if ended.is_none() {
        // The queue is closed; the end was sent before it (or the supervisor died).

        if let Some(Ok(Message::SessionEnded { post_session })) =
            receive(&control, &mut buf, MsgFlags::empty())
        {
            ended = Some((Instant::now(), post_session));
        }
    }
    if let Some((_, Some(vars))) = ended {
        handler.post_session(vars);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<String>>>);

    impl Handler for Record {
        fn event(&mut self, event: Event) {
            std::thread::sleep(Duration::from_millis(20));
            self.0
                .lock()
                .unwrap()
                .push(format!("event {}", event.path.len()));
        }
        fn post_session(&mut self, vars: Vec<(String, Vec<u8>)>) {
            self.0.lock().unwrap().push(format!("post {}", vars.len()));
        }
        fn dropped(&mut self, event: &Event, reason: DropReason) {
            self.0
                .lock()
                .unwrap()
                .push(format!("dropped {} {reason}", event.path.len()));
        }
    }

    fn event(path_len: usize) -> Event {
        Event {
            kind: crate::log::wrapper::EventKind::Upload,
            path: vec![0xff; path_len],
            target: None,
            uploaded_as: None,
            link_kind: None,
            bytes_read: 0,
            bytes_written: 1,
            open_flags: "WRITE".into(),
            complete: true,
            elapsed_ms: 0,
        }
    }

    /// The loop itself, in threads: every size arrives whole, events run in order, those left
    /// at the drain deadline are dropped, the post-session hook runs last.
    #[test]
    fn events_of_any_size_then_the_post_hook() {
        let (events, events_peer) = seqpacket_pair().unwrap();
        let (control, control_peer) = seqpacket_pair().unwrap();
        let record = Record::default();
        let handler = record.clone();
        let server = std::thread::spawn(move || {
            serve(
                events_peer,
                control_peer,
                handler,
                Duration::from_millis(200),
            )
        });
        let mut runner = Runner {
            pid: Pid::from_raw(0),
            events,
            control,
        };
        for len in [10, 460, 1000, 4000] {
            runner.send_event(&event(len)).unwrap();
        }
        for _ in 0..20 {
            runner.send_event(&event(1)).unwrap();
        }
        runner
            .finish(
                Some(vec![("SFTPD_HOOK".into(), b"post_session".to_vec())]),
                false,
            )
            .unwrap();
        server.join().unwrap();
        let seen = record.0.lock().unwrap().clone();
        assert_eq!(
            &seen[..4],
            ["event 10", "event 460", "event 1000", "event 4000"]
        );
        assert_eq!(seen.last().unwrap(), "post 1");
        assert!(
            seen.iter().any(|s| s == "dropped 1 drain_timeout"),
            "{seen:?}"
        );
        assert_eq!(seen.len(), 4 + 20 + 1);
    }
}
