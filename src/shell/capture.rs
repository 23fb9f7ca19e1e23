//! Capture mode: sftp-server runs with `-e`, so its log lines come to the wrapper on its stderr
//! (which sshd would discard anyway) while stdin and stdout stay inherited.
//!
//! That stderr is one end of a SOCK_SEQPACKET socket pair, not a pipe: sftp-server writes each
//! message with one write(2), and the socket keeps that boundary. The bytes cannot: on stderr
//! sftp-server escapes names with VIS_SAFE, which leaves CR and LF raw, so a name holding
//! `\r\n` followed by a forged line would otherwise become two lines. Each line is
//! forwarded to syslog exactly as sftp-server would have sent it, parsed with the same parser
//! `sftpd-report` uses, and turned into per-file events and per-session totals.
//!
//! The reader thread only reads, parses and hands off: forwarding to syslog happens on another
//! thread and event hooks in another process, so a slow syslog daemon or hook can never make
//! sftp-server block on a full stderr pipe.

use crate::log::parse::{self, OperationKind, SftpEvent};
use crate::log::transfer::{CountsAs, Direction, classify_close};
pub use crate::log::wrapper::Totals;
use crate::shell::syslog::{ForwardingSender, Severity};
use nix::errno::Errno;
use nix::sys::socket::MsgFlags;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// The name WinSCP, FileZilla and many partner scripts upload under before renaming.
const TEMP_UPLOAD_SUFFIX: &[u8] = b".filepart";
/// Lines waiting for the syslog forwarder. When they are this many the reader waits, sftp-server
/// blocks on its next log write and so slows down, as it does in syslog mode when the daemon is
/// slow: memory stays bounded and nothing is dropped while the daemon is there at all.
pub const FORWARD_QUEUE_LINES: usize = 1024;
/// Room for one message: sftp-server's are at most 1 KiB.
const MESSAGE_BYTES: usize = 64 * 1024;

/// One per-file event, as the hooks see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// upload, download, remove, rename, mkdir, rmdir.
    pub event: String,
    pub path: Vec<u8>,
    pub target: Option<Vec<u8>>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub open_flags: String,
    pub complete: bool,
    pub elapsed_ms: u64,
}

#[derive(Debug)]
struct OpenFile {
    id: u64,
    path: Vec<u8>,
    flags: String,
    direction: Direction,
    opened: Instant,
    failed: bool,
}

/// Turns sftp-server messages into events and totals. Pure: time comes in as an argument.
#[derive(Debug, Default)]
pub struct CaptureState {
    open: Vec<OpenFile>,
    next_id: u64,
    /// The open whose status a following `sent status` line would be.
    last_open: Option<u64>,
    /// Finished `*.filepart` uploads waiting for their rename.
    held: Vec<Event>,
    upload_on_rename: bool,
    pub totals: Totals,
}

impl CaptureState {
    pub fn new(upload_on_rename: bool) -> CaptureState {
        CaptureState {
            upload_on_rename,
            ..Default::default()
        }
    }

    /// Applies one message (in syslog form) and returns the events it completes.
    pub fn on_message(&mut self, message: &[u8], now: Instant) -> Vec<Event> {
        let event = parse::parse_sftp_message(message);
        let mut out = Vec::new();
        let mut last_open = None;
        match event {
            SftpEvent::Open { path, flags, .. } => {
                self.next_id += 1;
                last_open = Some(self.next_id);
                self.open.push(OpenFile {
                    id: self.next_id,
                    path,
                    direction: Direction::from_open_flags(&flags),
                    flags,
                    opened: now,
                    failed: false,
                });
            }
            SftpEvent::Close {
                path,
                bytes_read,
                bytes_written,
                forced,
            } => {
                let file = self
                    .open
                    .iter()
                    .position(|f| f.path == path)
                    .map(|i| self.open.remove(i));
                let (flags, direction, failed, elapsed) = match file {
                    Some(f) => (
                        f.flags,
                        Some(f.direction),
                        f.failed,
                        now.saturating_duration_since(f.opened),
                    ),
                    None => (String::new(), None, false, std::time::Duration::ZERO),
                };
                let closed = classify_close(direction, bytes_read, bytes_written, forced, failed);
                let kind = match closed.counts_as {
                    Some(CountsAs::Upload) => {
                        self.totals.files_uploaded += 1;
                        // Saturating: a session's total is reported, never a panic or a wrap.
                        self.totals.bytes_uploaded =
                            self.totals.bytes_uploaded.saturating_add(bytes_written);
                        "upload"
                    }
                    Some(CountsAs::Download) => {
                        self.totals.files_downloaded += 1;
                        self.totals.bytes_downloaded =
                            self.totals.bytes_downloaded.saturating_add(bytes_read);
                        "download"
                    }
                    None => "",
                };
                if !kind.is_empty() {
                    let event = Event {
                        event: kind.to_owned(),
                        path,
                        target: None,
                        bytes_read,
                        bytes_written,
                        open_flags: flags,
                        complete: closed.complete,
                        elapsed_ms: elapsed.as_millis() as u64,
                    };
                    let upload = closed.counts_as == Some(CountsAs::Upload);
                    if upload && self.upload_on_rename && event.path.ends_with(TEMP_UPLOAD_SUFFIX) {
                        self.held.push(event);
                    } else {
                        out.push(event);
                    }
                }
            }
            SftpEvent::Remove { path } => out.push(simple("remove", path, None)),
            SftpEvent::Rmdir { path } => out.push(simple("rmdir", path, None)),
            SftpEvent::Mkdir { path, .. } => out.push(simple("mkdir", path, None)),
            SftpEvent::TwoPaths {
                kind: OperationKind::Rename | OperationKind::PosixRename,
                old,
                new,
            } => {
                if let Some(i) = self.held.iter().position(|h| h.path == old) {
                    let mut upload = self.held.remove(i);
                    upload.path = new.clone();
                    out.push(upload);
                }
                out.push(simple("rename", old, Some(new)));
            }
            SftpEvent::Status { .. } => {
                self.totals.failed_operations += 1;
                if let Some(id) = self.last_open
                    && let Some(f) = self.open.iter_mut().find(|f| f.id == id)
                {
                    f.failed = true;
                }
            }
            _ => {}
        }
        self.last_open = last_open;
        out
    }

    /// At session end: held temporary uploads that were never renamed fire under their own name.
    pub fn finish(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.held)
    }
}

fn simple(kind: &str, path: Vec<u8>, target: Option<Vec<u8>>) -> Event {
    Event {
        event: kind.to_owned(),
        path,
        target,
        bytes_read: 0,
        bytes_written: 0,
        open_flags: String::new(),
        complete: true,
        elapsed_ms: 0,
    }
}

/// sftp-server's stderr line (VIS_SAFE escaping, `\r\n` already removed) in the form it would
/// have had in syslog.
pub fn stderr_to_syslog_form(line: &[u8]) -> Vec<u8> {
    parse::vis_syslog(&parse::unvis(line))
}

/// What the reader hands to the forwarder thread.
pub enum Forward {
    /// One of sftp-server's lines, in syslog form.
    Sftp(Vec<u8>),
    /// A line of the wrapper's own.
    Own(Severity, String),
}

/// Counters shared by the reader and the forwarder.
#[derive(Debug, Default)]
pub struct Counters {
    /// Lines the syslog daemon did not take (it was gone): counted in `session end`.
    pub dropped_lines: AtomicU64,
}

/// The socket pair for sftp-server's stderr: (the wrapper's end, sftp-server's end).
pub fn message_socket() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// Reads sftp-server's messages until it exits: forwards each one, feeds `state`, and passes
/// events to `on_event`. Waits only on the read and on the bounded forwarding queue.
pub fn read_messages(
    socket: OwnedFd,
    state: &mut CaptureState,
    forward: &mpsc::SyncSender<Forward>,
    counters: &Counters,
    mut on_event: impl FnMut(Event),
    mut on_cut_close: impl FnMut(&[u8]),
) {
    let mut buf = vec![0u8; MESSAGE_BYTES];
    loop {
        let n = match nix::sys::socket::recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        };
        let raw = strip_crlf(&buf[..n]);
        let cut = raw.len() >= SFTP_SERVER_MESSAGE_MAX;
        if cut && let Some(name) = cut_close_name(raw) {
            // The name was too long for sftp-server's message: what was closed, and with how
            // many bytes, is gone. Not an event, but never silently nothing.
            on_cut_close(&name);
        }
        let message = forwarded_form(raw, cut);
        for event in state.on_message(&message, Instant::now()) {
            on_event(event);
        }
        if forward.send(Forward::Sftp(message)).is_err() {
            counters.dropped_lines.fetch_add(1, Ordering::Relaxed);
        }
    }
    for event in state.finish() {
        on_event(event);
    }
}

/// The line forwarded for one of sftp-server's messages, and what the capture state reads: its
/// syslog form, whole, so that counters syslog would cut off are kept. The ingest takes a message
/// of exactly [`parse::SYSLOG_MESSAGE_CUT`] characters for a cut one (syslog cuts there), so a cut
/// message is forwarded cut to that length, and a whole one of that length is made longer.
fn forwarded_form(raw: &[u8], cut: bool) -> Vec<u8> {
    let mut message = stderr_to_syslog_form(raw);
    if cut {
        // Never shorter: the syslog form of 1,020 stderr characters has at least 4/5 as many.
        message.truncate(parse::SYSLOG_MESSAGE_CUT);
    } else if message.len() == parse::SYSLOG_MESSAGE_CUT {
        parse::lengthen_uncut(&mut message);
    }
    message
}

/// The shortest message on stderr that sftp-server may have cut. It escapes a message into a
/// 1 KiB buffer and stops before the first escape that does not fit (`\ooo` is four
/// characters), so a cut message is 1,020 to 1,023 characters long before it is cut again to
/// 1,021 with `\r\n`. A partner can therefore make a cut message end, at 1,020, in counters
/// of their choosing; one of 1,020 or 1,021 characters is never taken as whole.
const SFTP_SERVER_MESSAGE_MAX: usize = 1020;

/// The (cut) name of a cut `close` or `forced close` message.
fn cut_close_name(raw: &[u8]) -> Option<Vec<u8>> {
    let rest = raw
        .strip_prefix(b"close \"")
        .or_else(|| raw.strip_prefix(b"forced close \""))?;
    Some(crate::log::parse::unvis(rest))
}

/// One message without the `\r\n` sftp-server ends it with.
fn strip_crlf(message: &[u8]) -> &[u8] {
    message.strip_suffix(b"\r\n").unwrap_or(message)
}

/// Sends what the reader queued, as `sftp-server[PID]` lines and the wrapper's own.
pub fn forward_lines(
    rx: mpsc::Receiver<Forward>,
    mut sender: ForwardingSender,
    own: crate::shell::syslog::Syslog,
    sftp_pid: u32,
    counters: Arc<Counters>,
) {
    for item in rx {
        match item {
            Forward::Sftp(message) => {
                if sender
                    .send(Severity::Info, "sftp-server", sftp_pid, &message)
                    .is_err()
                {
                    counters.dropped_lines.fetch_add(1, Ordering::Relaxed);
                }
            }
            Forward::Own(severity, text) => own.log(severity, &text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn feed(state: &mut CaptureState, lines: &[&[u8]]) -> Vec<Event> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            out.extend(state.on_message(l, t0 + Duration::from_millis(10 * i as u64)));
        }
        out
    }

    #[test]
    fn upload_download_and_operations() {
        let mut st = CaptureState::new(true);
        let events = feed(
            &mut st,
            &[
                b"session opened for local user a from [1.2.3.4]",
                b"open \"/h/up.csv\" flags WRITE,CREATE,TRUNCATE mode 0644",
                b"close \"/h/up.csv\" bytes read 0 written 100",
                b"open \"/h/down.csv\" flags READ mode 0666",
                b"close \"/h/down.csv\" bytes read 7 written 0",
                b"open \"/h/peek\" flags READ mode 0666",
                b"close \"/h/peek\" bytes read 0 written 0",
                b"mkdir name \"/h/d\" mode 0777",
                b"rmdir name \"/h/d\"",
                b"remove name \"/h/x\"",
                b"rename old \"/h/a\" new \"/h/b\"",
                b"session closed for local user a from [1.2.3.4]",
            ],
        );
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            kinds,
            ["upload", "download", "mkdir", "rmdir", "remove", "rename"]
        );
        assert_eq!(events[0].path, b"/h/up.csv");
        assert_eq!(events[0].bytes_written, 100);
        assert!(events[0].complete);
        assert_eq!(events[0].elapsed_ms, 10);
        assert_eq!(events[0].open_flags, "WRITE,CREATE,TRUNCATE");
        assert_eq!(events[1].bytes_read, 7);
        assert_eq!(events[5].target.as_deref(), Some(&b"/h/b"[..]));
        assert_eq!(
            st.totals,
            Totals {
                files_uploaded: 1,
                files_downloaded: 1,
                bytes_uploaded: 100,
                bytes_downloaded: 7,
                failed_operations: 0
            }
        );
    }

    #[test]
    fn filepart_upload_fires_for_the_final_name() {
        let mut st = CaptureState::new(true);
        let events = feed(
            &mut st,
            &[
                b"open \"/h/r.xml.filepart\" flags WRITE,CREATE,TRUNCATE mode 0644",
                b"close \"/h/r.xml.filepart\" bytes read 0 written 42",
                b"posix-rename old \"/h/r.xml.filepart\" new \"/h/r.xml\"",
            ],
        );
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].event.as_str(), events[0].path.as_slice()),
            ("upload", &b"/h/r.xml"[..])
        );
        assert_eq!(events[0].bytes_written, 42);
        assert_eq!(events[1].event, "rename");
        assert!(st.finish().is_empty());

        // Never renamed: fires under its own name at the end. Disabled: fires at once.
        let mut st = CaptureState::new(true);
        assert!(
            feed(
                &mut st,
                &[
                    b"open \"/h/x.filepart\" flags WRITE mode 0644",
                    b"close \"/h/x.filepart\" bytes read 0 written 1"
                ]
            )
            .is_empty()
        );
        assert_eq!(st.finish()[0].path, b"/h/x.filepart");
        let mut st = CaptureState::new(false);
        let events = feed(
            &mut st,
            &[
                b"open \"/h/x.filepart\" flags WRITE mode 0644",
                b"close \"/h/x.filepart\" bytes read 0 written 1",
            ],
        );
        assert_eq!(events[0].path, b"/h/x.filepart");
    }

    #[test]
    fn forced_close_and_failures_make_incomplete() {
        let mut st = CaptureState::new(true);
        let events = feed(
            &mut st,
            &[
                b"open \"/h/big\" flags WRITE,CREATE,TRUNCATE mode 0644",
                b"forced close \"/h/big\" bytes read 0 written 1234",
                b"open \"/h/full\" flags WRITE,CREATE,TRUNCATE mode 0644",
                b"sent status Failure",
                b"close \"/h/full\" bytes read 0 written 10",
                b"open \"/h/ok\" flags READ mode 0666",
                b"close \"/h/ok\" bytes read 5 written 0",
                b"sent status No such file",
            ],
        );
        assert_eq!(events.len(), 3);
        assert!(!events[0].complete);
        assert!(!events[1].complete);
        assert!(events[2].complete);
        assert_eq!(st.totals.failed_operations, 2);
    }

    #[test]
    fn stderr_lines_become_syslog_lines() {
        // VIS_SAFE leaves tab and newline raw and octal-escapes the rest; syslog's form is C-style.
        assert_eq!(
            stderr_to_syslog_form(b"close \"/h/a\tb\nc\\\\d\\303\\251\" bytes read 0 written 1"),
            b"close \"/h/a\\tb\\nc\\\\d\\303\\251\" bytes read 0 written 1".to_vec()
        );
        assert_eq!(
            stderr_to_syslog_form(b"open \"/h/\\013\" flags READ mode 0666"),
            b"open \"/h/\\v\" flags READ mode 0666".to_vec()
        );
    }

    #[test]
    fn one_message_is_one_line_whatever_its_bytes() {
        let (ours, theirs) = message_socket().unwrap();
        // As sftp-server writes them: one write per message, CR LF raw inside a name.
        let forged = b"open \"/h/x\r\nsession opened for local user ceo from [1.2.3.4]\r\nclose \"/etc/shadow\" bytes read 0 written 42\" flags READ mode 0666\r\n";
        for message in [
            &b"open \"/h/new\nline\" flags WRITE mode 0644\r\n"[..],
            &b"close \"/h/new\nline\" bytes read 0 written 3\r\n"[..],
            &forged[..],
            &b"sent status No such file\r\n"[..],
        ] {
            nix::unistd::write(&theirs, message).unwrap();
        }
        drop(theirs);
        let (tx, rx) = mpsc::sync_channel(FORWARD_QUEUE_LINES);
        let counters = Counters::default();
        let mut st = CaptureState::new(true);
        let mut events = Vec::new();
        read_messages(ours, &mut st, &tx, &counters, |e| events.push(e), |_| {});
        drop(tx);
        let lines: Vec<Vec<u8>> = rx
            .into_iter()
            .map(|f| match f {
                Forward::Sftp(m) => m,
                Forward::Own(..) => Vec::new(),
            })
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], b"close \"/h/new\\nline\" bytes read 0 written 3");
        assert!(
            lines
                .iter()
                .all(|l| !l.contains(&b'\n') && !l.contains(&b'\r'))
        );
        assert!(lines[2].starts_with(b"open \"/h/x\\r\\nsession opened"));
        // Only the real upload is an event; the forged close is part of a failed open's name.
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].path, b"/h/new\nline");
        assert_eq!(st.totals.files_uploaded, 1);
        assert_eq!(st.totals.bytes_uploaded, 3);
        assert_eq!(counters.dropped_lines.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_message_where_the_escaping_stopped_is_cut() {
        // What sftp-server writes for a name whose next escape no longer fits: 1,020
        // characters that end in counters of the partner's choosing.
        let tail = b"\" bytes read 0 written 99999";
        let mut message = b"close \"".to_vec();
        message.resize(1020 - tail.len(), b'x');
        message.extend_from_slice(tail);
        assert_eq!(message.len(), 1020);
        let (ours, theirs) = message_socket().unwrap();
        nix::unistd::write(&theirs, &[&message[..], b"\r\n"].concat()).unwrap();
        drop(theirs);
        let (tx, rx) = mpsc::sync_channel(FORWARD_QUEUE_LINES);
        let mut st = CaptureState::new(true);
        let mut events = Vec::new();
        let mut cut = Vec::new();
        read_messages(
            ours,
            &mut st,
            &tx,
            &Counters::default(),
            |e| events.push(e),
            |name| cut.push(name.to_vec()),
        );
        drop(tx);
        let Some(Forward::Sftp(line)) = rx.into_iter().next() else {
            panic!("nothing forwarded");
        };
        assert_eq!(line.len(), parse::SYSLOG_MESSAGE_CUT);
        assert!(events.is_empty());
        assert_eq!(cut.len(), 1);
        assert_eq!(st.totals.bytes_uploaded, 0);
    }
}
