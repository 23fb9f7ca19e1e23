//! Capture mode: sftp-server runs with `-e`, so its log lines come to the wrapper on its stderr
//! (which sshd would discard anyway), and its stdin and stdout pass through the tap
//! ([`crate::shell::sftp_tap`]), which alone decides the events, the totals and the `file closed`
//! lines. Here: sftp-server's messages, forwarded to syslog as they are.
//!
//! That stderr is one end of a SOCK_SEQPACKET socket pair, not a pipe: sftp-server writes each
//! message with one write(2), and the socket keeps that boundary. The bytes cannot: on stderr
//! sftp-server escapes names with VIS_SAFE, which leaves CR and LF raw, so a name holding
//! `\r\n` followed by a forged line would otherwise become two lines. Each message is forwarded
//! to syslog exactly as sftp-server would have sent it.
//!
//! The reader thread only reads and hands off: forwarding to syslog happens on another thread,
//! so a slow syslog daemon can never make sftp-server block on a full stderr pipe beyond the
//! bounded queue.

use crate::log::parse;
use crate::shell::syslog::{ForwardingSender, Severity};
use nix::errno::Errno;
use nix::sys::socket::MsgFlags;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// The shortest message on stderr that sftp-server may have cut. It escapes a message into a
/// 1 KiB buffer and stops before the first escape that does not fit (`\ooo` is four
/// characters), so a cut message is 1,020 to 1,023 characters long before it is cut again to
/// 1,021 with `\r\n`; one of 1,020 or 1,021 characters is never taken as whole.
pub(crate) const SFTP_SERVER_MESSAGE_MAX: usize = 1020;
/// Lines waiting for the syslog forwarder. When they are this many the reader waits, sftp-server
/// blocks on its next log write and so slows down, as it does in syslog mode when the daemon is
/// slow: memory stays bounded and nothing is dropped while the daemon is there at all.
pub(crate) const FORWARD_QUEUE_LINES: usize = 1024;
/// Room for one message: sftp-server's are at most 1 KiB.
const MESSAGE_BYTES: usize = 64 * 1024;

/// sftp-server's stderr line (VIS_SAFE escaping, `\r\n` already removed) in the form it would
/// have had in syslog.
pub(crate) fn stderr_to_syslog_form(line: &[u8]) -> Vec<u8> {
    parse::vis_syslog(&parse::unvis(line))
}

/// What the reader hands to the forwarder thread.
pub(crate) enum Forward {
    /// One of sftp-server's lines, in syslog form.
    Sftp(Vec<u8>),
    /// A line of the wrapper's own.
    Own(Severity, String),
}

/// Counters shared by the reader and the forwarder.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Lines the syslog daemon did not take (it was gone): counted in `session end`.
    pub dropped_lines: AtomicU64,
}

/// The socket pair for sftp-server's stderr: (the wrapper's end, sftp-server's end).
pub(crate) fn message_socket() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// Reads sftp-server's messages until it exits and forwards each one. Waits only on the read
/// and on the bounded forwarding queue.
pub(crate) fn read_messages(
    socket: OwnedFd,
    forward: &mpsc::SyncSender<Forward>,
    counters: &Counters,
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
        if forward.send(Forward::Sftp(line)).is_err() {
            counters.dropped_lines.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The line forwarded for one of sftp-server's messages: its syslog form, whole. The ingest takes a message
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

/// One message without the `\r\n` sftp-server ends it with.
fn strip_crlf(message: &[u8]) -> &[u8] {
    message.strip_suffix(b"\r\n").unwrap_or(message)
}

/// Sends what the reader queued, as `sftp-server[PID]` lines and the wrapper's own.
pub(crate) fn forward_lines(
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

    fn forwarded(messages: &[&[u8]]) -> Vec<Vec<u8>> {
        let (ours, theirs) = message_socket().unwrap();
        for message in messages {
            nix::unistd::write(&theirs, message).unwrap();
        }
        drop(theirs);
        let (tx, rx) = mpsc::sync_channel(FORWARD_QUEUE_LINES);
        let counters = Counters::default();
        read_messages(ours, &tx, &counters);
        drop(tx);
        assert_eq!(counters.dropped_lines.load(Ordering::Relaxed), 0);
        rx.into_iter()
            .map(|f| match f {
                Forward::Sftp(m) => m,
                Forward::Own(..) => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn one_message_is_one_line_whatever_its_bytes() {
        // As sftp-server writes them: one write per message, CR LF raw inside a name.
        let forged = b"open \"/h/x\r\nsession opened for local user ceo from [1.2.3.4]\r\nclose \"/etc/shadow\" bytes read 0 written 42\" flags READ mode 0666\r\n";
        let lines = forwarded(&[
            b"open \"/h/new\nline\" flags WRITE mode 0644\r\n",
            b"close \"/h/new\nline\" bytes read 0 written 3\r\n",
            forged,
            b"sent status No such file\r\n",
        ]);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], b"close \"/h/new\\nline\" bytes read 0 written 3");
        assert!(
            lines
                .iter()
                .all(|l| !l.contains(&b'\n') && !l.contains(&b'\r'))
        );
        assert!(lines[2].starts_with(b"open \"/h/x\\r\\nsession opened"));
    }

    #[test]
    fn a_message_where_the_escaping_stopped_is_forwarded_as_cut() {
        // What sftp-server writes for a name whose next escape no longer fits: 1,020
        // characters that end in counters of the partner's choosing.
        let tail = b"\" bytes read 0 written 99999";
        let mut message = b"close \"".to_vec();
        message.resize(1020 - tail.len(), b'x');
        message.extend_from_slice(tail);
        let lines = forwarded(&[&[&message[..], b"\r\n"].concat()]);
        assert_eq!(lines[0].len(), parse::SYSLOG_MESSAGE_CUT);
    }
}
