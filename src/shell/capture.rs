//! Capture mode: sftp-server runs with `-e`, so its log lines come to the wrapper on its stderr
//! (which sshd would discard anyway). Its stdin and stdout stay inherited, unless hooks need the
//! tap ([`crate::shell::sftp_tap`]) for the names its messages cut.
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
use crate::shell::lock;
use crate::shell::sftp_tap::{self, SFTP_SERVER_MESSAGE_MAX, Tap, TapClose};
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
    /// The tap follows the files of long names (see [`sftp_tap::long_name`]): their messages
    /// are left to it. Set for each message by [`events_of_message`].
    tapped: bool,
    pub totals: Totals,
}

/// A closed file, from its `close` message or from the tap.
struct Closed {
    path: Vec<u8>,
    bytes_read: u64,
    bytes_written: u64,
    forced: bool,
    /// The open's flags and time, and whether a failure answered it, when known.
    opened: Option<(String, Instant, bool)>,
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
        self.apply(parse::parse_sftp_message(message), now)
    }

    /// Applies what one message said (or, for a cut one, what the tap says it said).
    pub fn apply(&mut self, event: SftpEvent, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        let mut last_open = None;
        match event {
            SftpEvent::Open { path, .. } if self.tapped && sftp_tap::long_name(&path) => {}
            SftpEvent::Open { path, flags, .. } => {
                self.next_id += 1;
                last_open = Some(self.next_id);
                self.open.push(OpenFile {
                    id: self.next_id,
                    path,
                    flags,
                    opened: now,
                    failed: false,
                });
            }
            SftpEvent::Close { path, .. } if self.tapped && sftp_tap::long_name(&path) => {}
            SftpEvent::Close {
                path,
                bytes_read,
                bytes_written,
                forced,
            } => {
                let opened = self
                    .open
                    .iter()
                    .position(|f| f.path == path)
                    .map(|i| self.open.remove(i))
                    .map(|f| (f.flags, f.opened, f.failed));
                let closed = Closed {
                    path,
                    bytes_read,
                    bytes_written,
                    forced,
                    opened,
                };
                out.extend(self.close(closed, now));
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

    /// A file of a long name the tap saw closed (or still open at sftp-server's end).
    pub fn on_tap_close(&mut self, file: TapClose, now: Instant) -> Vec<Event> {
        let closed = Closed {
            path: file.path,
            bytes_read: file.bytes_read,
            bytes_written: file.bytes_written,
            forced: file.forced,
            opened: Some((file.flags, file.opened, file.failed)),
        };
        self.close(closed, now).into_iter().collect()
    }

    fn close(&mut self, closed: Closed, now: Instant) -> Option<Event> {
        let Closed {
            path,
            bytes_read,
            bytes_written,
            forced,
            opened,
        } = closed;
        let (direction, flags, failed, elapsed) = match opened {
            Some((flags, opened, failed)) => (
                Some(Direction::from_open_flags(&flags)),
                flags,
                failed,
                now.saturating_duration_since(opened),
            ),
            None => (None, String::new(), false, std::time::Duration::ZERO),
        };
        let closed = classify_close(direction, bytes_read, bytes_written, forced, failed);
        let kind = match closed.counts_as? {
            CountsAs::Upload => {
                self.totals.files_uploaded += 1;
                // Saturating: a session's total is reported, never a panic or a wrap.
                self.totals.bytes_uploaded =
                    self.totals.bytes_uploaded.saturating_add(bytes_written);
                "upload"
            }
            CountsAs::Download => {
                self.totals.files_downloaded += 1;
                self.totals.bytes_downloaded =
                    self.totals.bytes_downloaded.saturating_add(bytes_read);
                "download"
            }
        };
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
            return None;
        }
        Some(event)
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

/// One of sftp-server's messages, as the reader got it.
pub struct Message<'a> {
    /// As sftp-server wrote it on stderr, without `\r\n`.
    pub raw: &'a [u8],
    /// The line forwarded for it (its syslog form).
    pub line: &'a [u8],
    /// sftp-server may have cut it.
    pub cut: bool,
}

/// Reads sftp-server's messages until it exits: forwards each one and hands it to
/// `on_message`. Waits only on the read and on the bounded forwarding queue.
pub fn read_messages(
    socket: OwnedFd,
    forward: &mpsc::SyncSender<Forward>,
    counters: &Counters,
    mut on_message: impl FnMut(Message),
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
        let line = forwarded_form(raw, cut);
        on_message(Message {
            raw,
            line: &line,
            cut,
        });
        if forward.send(Forward::Sftp(line)).is_err() {
            counters.dropped_lines.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An event a message meant but nothing could make: a cut message whose operation the tap
/// cannot complete. The kind, and the name as far as the message shows it.
pub type Unmade = (&'static str, Vec<u8>);

/// Applies one message to `state` and returns the events it completes. A cut message's
/// operation is taken whole from the tap; a cut close is the tap's to report. What neither
/// can complete comes back as unmade.
pub fn events_of_message(
    state: &mut CaptureState,
    tap: Option<&std::sync::Mutex<Tap>>,
    message: &Message,
    now: Instant,
) -> (Vec<Event>, Option<Unmade>) {
    let cut_operation = message.cut.then(|| cut_operation(message.raw)).flatten();
    // One look at the tap per message, released before the message is parsed.
    let (following, whole) = match tap.map(lock) {
        Some(mut tap) => {
            let whole = cut_operation
                .as_ref()
                .and_then(|_| tap.take_predicted(message.raw));
            (tap.following(), whole)
        }
        None => (false, None),
    };
    // Once the tap has stopped following, long names are the log's again, as far as it goes.
    state.tapped = following;
    if !message.cut {
        return (state.on_message(message.line, now), None);
    }
    // Whatever it was, it is no open a `sent status` could answer.
    state.on_message(message.line, now);
    if let Some((kind, name)) = cut_operation {
        return match whole {
            Some(operation) => (state.apply(operation, now), None),
            None => (Vec::new(), Some((kind, name))),
        };
    }
    if let Some(name) = cut_close_name(message.raw)
        && !state.tapped
    {
        return (Vec::new(), Some(("close", name)));
    }
    (Vec::new(), None)
}

/// The kind and (cut) name of a cut message of an operation that is an event.
fn cut_operation(raw: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    const KINDS: [(&[u8], &str); 5] = [
        (b"remove name \"", "remove"),
        (b"mkdir name \"", "mkdir"),
        (b"rmdir name \"", "rmdir"),
        (b"rename old \"", "rename"),
        (b"posix-rename old \"", "rename"),
    ];
    KINDS.iter().find_map(|(prefix, kind)| {
        let rest = raw.strip_prefix(*prefix)?;
        Some((*kind, parse::unvis(rest)))
    })
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

    /// What the session's reader does: every message through [`events_of_message`].
    fn read_all(
        socket: OwnedFd,
        state: &mut CaptureState,
        forward: &mpsc::SyncSender<Forward>,
        counters: &Counters,
        tap: Option<&std::sync::Mutex<Tap>>,
    ) -> (Vec<Event>, Vec<Unmade>) {
        let (mut events, mut unmade) = (Vec::new(), Vec::new());
        read_messages(socket, forward, counters, |message| {
            let (made, lost) = events_of_message(state, tap, &message, Instant::now());
            events.extend(made);
            unmade.extend(lost);
        });
        events.extend(state.finish());
        (events, unmade)
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
        let (events, _) = read_all(ours, &mut st, &tx, &counters, None);
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
        let (events, cut) = read_all(ours, &mut st, &tx, &Counters::default(), None);
        drop(tx);
        let Some(Forward::Sftp(line)) = rx.into_iter().next() else {
            panic!("nothing forwarded");
        };
        assert_eq!(line.len(), parse::SYSLOG_MESSAGE_CUT);
        assert!(events.is_empty());
        assert_eq!(cut.len(), 1);
        assert_eq!(st.totals.bytes_uploaded, 0);
    }

    fn message<'a>(raw: &'a [u8], line: &'a [u8]) -> Message<'a> {
        Message {
            raw,
            line,
            cut: raw.len() >= SFTP_SERVER_MESSAGE_MAX,
        }
    }

    #[test]
    fn with_the_tap_long_names_are_its_own_and_cut_operations_come_whole() {
        let long = [&b"./".repeat(600)[..], b"x"].concat();
        let now = Instant::now();
        let mut st = CaptureState {
            tapped: true,
            ..CaptureState::new(true)
        };
        // A whole close of a long name is the tap's (it has the counters for every length).
        let open = [b"open \"", &long[..], b"\" flags WRITE,CREATE mode 0644"].concat();
        let close = [b"close \"", &long[..], b"\" bytes read 0 written 9"].concat();
        assert!(st.on_message(&open, now).is_empty());
        assert!(st.on_message(&close, now).is_empty());
        assert_eq!(st.totals.files_uploaded, 0);
        let file = TapClose {
            path: long.clone(),
            flags: "WRITE,CREATE".into(),
            bytes_read: 0,
            bytes_written: 9,
            forced: false,
            failed: false,
            opened: now,
        };
        let events = st.on_tap_close(file, now);
        assert!(events.len() == 1 && events[0].path == long && events[0].complete);
        assert_eq!(st.totals.bytes_uploaded, 9);

        // A cut remove: whole from the tap when it saw the request, unmade without it.
        let tap = std::sync::Mutex::new(Tap::default());
        let mut request = vec![13u8, 0, 0, 0, 1];
        request.extend_from_slice(&(long.len() as u32).to_be_bytes());
        request.extend_from_slice(&long);
        tap.lock()
            .unwrap()
            .on_request(&request, request.len() as u32);
        let raw = sftp_tap::stderr_message(&[b"remove name \"", &long[..], b"\""].concat());
        let line = forwarded_form(&raw, true);
        let (made, unmade) = events_of_message(&mut st, None, &message(&raw, &line), now);
        assert!(made.is_empty());
        assert_eq!(unmade.map(|u| u.0), Some("remove"));
        let (made, unmade) = events_of_message(&mut st, Some(&tap), &message(&raw, &line), now);
        assert!(made.len() == 1 && made[0].event == "remove" && made[0].path == long);
        assert!(unmade.is_none());

        // A cut close is left to a tap that follows, and unmade once it stopped following.
        let raw = sftp_tap::stderr_message(&close);
        let line = forwarded_form(&raw, true);
        let (made, unmade) = events_of_message(&mut st, Some(&tap), &message(&raw, &line), now);
        assert!(made.is_empty() && unmade.is_none());
        tap.lock().unwrap().on_reply(&[102, 0, 0, 0, 9], now);
        assert!(!tap.lock().unwrap().following());
        let (_, unmade) = events_of_message(&mut st, Some(&tap), &message(&raw, &line), now);
        assert_eq!(unmade.map(|u| u.0), Some("close"));
    }
}
