//! The SFTP packets between the client and sftp-server, read on their way through the wrapper,
//! for what sftp-server's log cannot say: a name too long for its 1 KiB message buffer.
//!
//! sftp-server logs every operation with its name, but cuts the message at 1 KiB, so a name of
//! about 1,000 bytes (a few hundred when it needs escaping) loses its end, and a `close` its
//! counters. In capture mode with hooks the wrapper therefore passes sftp-server's stdin
//! and stdout through two threads that read the packets as they go by (they never change or
//! hold them back) and, for those names only, say what sftp-server would have logged:
//!
//! - A file whose `close` message could be cut (see [`long_name`]) is followed here from its
//!   `OPEN` to its `CLOSE`: the handle sftp-server gave it, the bytes of its `DATA` replies and
//!   of its `WRITE`s answered OK, a failed write. The log reader leaves such files to the tap.
//! - A remove, mkdir, rmdir, rename or posix-rename whose message will be cut is written here
//!   as sftp-server will write it ([`stderr_message`]); when the log reader meets that cut
//!   message it takes the whole operation from here, so the event fires when, and only when,
//!   sftp-server logged it.
//!
//! sftp-server answers its requests one at a time, in order, each once (types 3 to 20 and
//! extended requests; it answers nothing else), so the n-th answer is the n-th request's. An
//! answer out of that order means the tap no longer follows, and it stops reading.

use crate::log::parse::{OperationKind, SftpEvent};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The shortest message on stderr that sftp-server may have cut. It escapes a message into a
/// 1 KiB buffer and stops before the first escape that does not fit (`\ooo` is four
/// characters), so a cut message is 1,020 to 1,023 characters long before it is cut again to
/// 1,021 with `\r\n`. A partner can therefore make a cut message end, at 1,020, in counters
/// of their choosing; one of 1,020 or 1,021 characters is never taken as whole.
pub const SFTP_SERVER_MESSAGE_MAX: usize = 1020;

/// sftp-server's message buffer, less its terminating NUL.
const BUFFER: usize = 1023;

/// `forced close "` … `" bytes read N written N` with both counters at 20 digits.
const LONGEST_CLOSE_OVERHEAD: usize = 14 + 13 + 20 + 9 + 20;

/// sftp-server refuses (and exits on) a request longer than this (SFTP_MAX_MSG_LENGTH).
const MAX_REQUEST: u32 = 256 * 1024;

/// The whole operations kept for cut messages not yet read, at most: beyond it the oldest go
/// (their cut message, if it ever comes, is logged as a dropped event).
const PREDICTED_BYTES_MAX: usize = 8 << 20;

// SFTP packet types (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it).
const INIT: u8 = 1;
const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const RENAME: u8 = 18;
const SYMLINK: u8 = 20;
const EXTENDED: u8 = 200;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;

const FX_OK: u32 = 0;
const ATTR_SIZE: u32 = 0x1;
const ATTR_UIDGID: u32 = 0x2;
const ATTR_PERMISSIONS: u32 = 0x4;

/// Characters sftp-server writes as they are on stderr (VIS_SAFE|VIS_OCTAL in the C locale);
/// a backslash is doubled, anything else becomes `\ooo`.
fn plain_on_stderr(c: u8) -> bool {
    c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x07 | 0x08)
}

fn escaped_len(c: u8) -> usize {
    match c {
        b'\\' => 2,
        c if plain_on_stderr(c) => 1,
        _ => 4,
    }
}

/// The message sftp-server writes on stderr (without `\r\n`) for the formatted text `raw`:
/// cut to its buffer, escaped until the next escape no longer fits, cut to 1,021 characters.
pub fn stderr_message(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BUFFER);
    for &c in &raw[..raw.len().min(BUFFER)] {
        if out.len() + escaped_len(c) > BUFFER {
            break;
        }
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            c if plain_on_stderr(c) => out.push(c),
            c => out.extend_from_slice(&[
                b'\\',
                b'0' + (c >> 6),
                b'0' + (c >> 3 & 7),
                b'0' + (c & 7),
            ]),
        }
        if out.len() >= BUFFER {
            break;
        }
    }
    out.truncate(BUFFER - 2);
    out
}

/// Whether the `close` (or `forced close`) message of a file of this name could be cut,
/// whatever its counters: such files are followed by the tap, not by their log messages.
pub fn long_name(name: &[u8]) -> bool {
    let mut len = LONGEST_CLOSE_OVERHEAD;
    for &c in name {
        len += escaped_len(c);
        if len >= SFTP_SERVER_MESSAGE_MAX {
            return true;
        }
    }
    false
}

/// sftp-server's words for an open's flags (`string_from_portable`).
fn open_flags(pflags: u32) -> String {
    const NAMES: [(u32, &str); 6] = [
        (0x01, "READ"),
        (0x02, "WRITE"),
        (0x04, "APPEND"),
        (0x08, "CREATE"),
        (0x10, "TRUNCATE"),
        (0x20, "EXCL"),
    ];
    let set: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| pflags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    set.join(",")
}

/// Splits a byte stream into SFTP packets (a 32-bit length, then that many bytes), keeping of
/// each only the first bytes its type needs, so a 256 KiB write costs no copy.
#[derive(Debug, Default)]
pub struct Framer {
    length: [u8; 4],
    length_have: usize,
    /// Bytes of the current packet still to come; 0 between packets.
    remaining: u32,
    kept: Vec<u8>,
    keep: usize,
}

impl Framer {
    /// Feeds bytes; `keep(type)` says how much of a packet of that type to keep, and
    /// `on_packet` gets each packet's kept bytes (its type first) and its length.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        keep: impl Fn(u8) -> usize,
        mut on_packet: impl FnMut(&[u8], u32),
    ) {
        while !data.is_empty() {
            if self.remaining == 0 {
                let take = (4 - self.length_have).min(data.len());
                self.length[self.length_have..self.length_have + take]
                    .copy_from_slice(&data[..take]);
                self.length_have += take;
                data = &data[take..];
                if self.length_have == 4 {
                    self.length_have = 0;
                    self.remaining = u32::from_be_bytes(self.length);
                    self.kept.clear();
                    self.keep = 0;
                    if self.remaining == 0 {
                        on_packet(&[], 0);
                    }
                }
                continue;
            }
            if self.kept.is_empty() && self.keep == 0 {
                self.keep = keep(data[0]).clamp(1, self.remaining as usize);
            }
            let take = data.len().min(self.remaining as usize);
            let wanted = self.keep.saturating_sub(self.kept.len()).min(take);
            self.kept.extend_from_slice(&data[..wanted]);
            self.remaining -= take as u32;
            data = &data[take..];
            if self.remaining == 0 {
                let length = u32::from_be_bytes(self.length);
                on_packet(&self.kept, length);
            }
        }
    }
}

/// How much of a request the tap reads: a write's header, anything else whole.
pub fn request_keep(kind: u8) -> usize {
    match kind {
        // type, id, handle (sftp-server's are 4 bytes; 256 is its limit), offset, data length.
        WRITE => 1 + 4 + 4 + 256 + 8 + 4,
        _ => MAX_REQUEST as usize,
    }
}

/// How much of a reply the tap reads: a handle whole, the id and a number of the others.
pub fn reply_keep(kind: u8) -> usize {
    match kind {
        HANDLE => 1 + 4 + 4 + 256,
        STATUS | DATA => 1 + 4 + 4,
        _ => 1 + 4,
    }
}

/// A reader over one packet's fields.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.bytes(n as usize)
    }
    /// A string sftp-server reads as a C string: one holding a NUL makes it exit.
    fn name(&mut self) -> Option<&'a [u8]> {
        self.string().filter(|s| !s.contains(&0))
    }
    /// The permissions of an attribute block, if it carries them.
    fn permissions(&mut self) -> Option<Option<u32>> {
        let flags = self.u32()?;
        if flags & ATTR_SIZE != 0 {
            self.u64()?;
        }
        if flags & ATTR_UIDGID != 0 {
            self.u64()?;
        }
        Some(if flags & ATTR_PERMISSIONS != 0 {
            Some(self.u32()?)
        } else {
            None
        })
    }
}

/// A request sftp-server will answer, waiting for its answer.
#[derive(Debug)]
enum Pending {
    Init,
    Other(u32),
    Open {
        id: u32,
        name: Vec<u8>,
        flags: String,
    },
    Read {
        id: u32,
        handle: Vec<u8>,
    },
    Write {
        id: u32,
        handle: Vec<u8>,
        len: u64,
    },
    Close {
        id: u32,
        handle: Vec<u8>,
    },
    Copy {
        id: u32,
        from: Vec<u8>,
        to: Vec<u8>,
        len: u64,
    },
}

impl Pending {
    fn id(&self) -> Option<u32> {
        match self {
            Pending::Init => None,
            Pending::Other(id)
            | Pending::Open { id, .. }
            | Pending::Read { id, .. }
            | Pending::Write { id, .. }
            | Pending::Close { id, .. }
            | Pending::Copy { id, .. } => Some(*id),
        }
    }
}

#[derive(Debug)]
struct TapFile {
    name: Vec<u8>,
    flags: String,
    opened: Instant,
    read: u64,
    written: u64,
    failed: bool,
}

/// A closed file of a long name, as its `close` message would have told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapClose {
    pub path: Vec<u8>,
    pub flags: String,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Still open when sftp-server ended (its `forced close`).
    pub forced: bool,
    /// A write to it failed.
    pub failed: bool,
    pub opened: Instant,
}

#[derive(Debug)]
struct Predicted {
    message: Vec<u8>,
    event: SftpEvent,
}

impl Predicted {
    fn size(&self) -> usize {
        let names = match &self.event {
            SftpEvent::TwoPaths { old, new, .. } => old.len() + new.len(),
            SftpEvent::Remove { path }
            | SftpEvent::Rmdir { path }
            | SftpEvent::Mkdir { path, .. } => path.len(),
            _ => 0,
        };
        self.message.len() + names
    }
}

/// What the tap knows: requests waiting for their answer, the open files of long names, and
/// the whole operations behind cut messages still to come.
#[derive(Debug, Default)]
pub struct Tap {
    pending: VecDeque<Pending>,
    files: HashMap<Vec<u8>, TapFile>,
    predicted: VecDeque<Predicted>,
    predicted_bytes: usize,
    /// Set once an answer or a request shows the tap no longer knows what sftp-server does.
    lost: bool,
    /// The names of the files open when the tap stopped following: their closes are unknown.
    abandoned: Vec<Vec<u8>>,
}

impl Tap {
    /// Whether the tap still knows what sftp-server does.
    pub fn following(&self) -> bool {
        !self.lost
    }

    fn lose(&mut self) {
        if !self.lost {
            self.lost = true;
            self.pending.clear();
            self.predicted.clear();
            self.predicted_bytes = 0;
            self.abandoned = self.files.drain().map(|(_, f)| f.name).collect();
        }
    }

    /// The names of the files open when the tap stopped following, once.
    pub fn take_abandoned(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.abandoned)
    }

    /// A request on its way to sftp-server (before sftp-server can read it): `packet` is its
    /// kept bytes, `length` its whole length.
    pub fn on_request(&mut self, packet: &[u8], length: u32) {
        if self.lost {
            return;
        }
        if length > MAX_REQUEST {
            // Longer than sftp-server takes: it exits on it.
            return self.lose();
        }
        let mut f = Fields(packet);
        let Some(kind) = f.u8() else { return };
        if kind == INIT {
            self.pending.push_back(Pending::Init);
            return;
        }
        if !(OPEN..=SYMLINK).contains(&kind) && kind != EXTENDED {
            return; // sftp-server answers no other type.
        }
        let Some(id) = f.u32() else {
            // Cut short: sftp-server reads its id from the next request's bytes.
            return self.lose();
        };
        match self.read_request(kind, id, &mut f, length) {
            Some(pending) => self.pending.push_back(pending),
            // sftp-server reads such a request past its end, or into a NUL, and exits: what
            // it did with it, the packets cannot say.
            None => self.lose(),
        }
    }

    /// The request's wait for its answer; `None` when it is malformed.
    fn read_request(&mut self, kind: u8, id: u32, f: &mut Fields, length: u32) -> Option<Pending> {
        let other = Some(Pending::Other(id));
        match kind {
            OPEN => {
                let name = f.name()?;
                let pflags = f.u32()?;
                f.permissions()?;
                if !long_name(name) {
                    return other;
                }
                Some(Pending::Open {
                    id,
                    name: name.to_vec(),
                    flags: open_flags(pflags),
                })
            }
            CLOSE => Some(Pending::Close {
                id,
                handle: f.string()?.to_vec(),
            }),
            READ => Some(Pending::Read {
                id,
                handle: f.string()?.to_vec(),
            }),
            WRITE => {
                let handle = f.string()?.to_vec();
                f.u64()?;
                let len = f.u32()?;
                // Only the header was kept: the data must fit in the packet.
                let header = 1 + 4 + 4 + handle.len() + 8 + 4;
                (header as u64 + u64::from(len) <= u64::from(length)).then_some(())?;
                Some(Pending::Write {
                    id,
                    handle,
                    len: u64::from(len),
                })
            }
            REMOVE => {
                self.predict_one(f, b"remove name \"", |path| SftpEvent::Remove { path })?;
                other
            }
            RMDIR => {
                self.predict_one(f, b"rmdir name \"", |path| SftpEvent::Rmdir { path })?;
                other
            }
            MKDIR => {
                let name = f.name()?;
                let mode = f.permissions()?.map_or(0o777, |p| p & 0o7777);
                let mode = format!("0{mode:o}");
                let raw = [b"mkdir name \"", name, b"\" mode ", mode.as_bytes()].concat();
                let path = name.to_vec();
                self.predict(&raw, || SftpEvent::Mkdir { path, mode });
                other
            }
            RENAME => {
                self.predict_two(f, b"rename", OperationKind::Rename)?;
                other
            }
            EXTENDED => match f.name()? {
                b"posix-rename@openssh.com" => {
                    self.predict_two(f, b"posix-rename", OperationKind::PosixRename)?;
                    other
                }
                b"copy-data" => {
                    let from = f.string()?.to_vec();
                    f.u64()?;
                    let len = f.u64()?;
                    let to = f.string()?.to_vec();
                    Some(Pending::Copy { id, from, to, len })
                }
                _ => other,
            },
            _ => other,
        }
    }

    fn predict_one(
        &mut self,
        f: &mut Fields,
        prefix: &[u8],
        event: impl FnOnce(Vec<u8>) -> SftpEvent,
    ) -> Option<()> {
        let name = f.name()?;
        let raw = [prefix, name, b"\""].concat();
        self.predict(&raw, || event(name.to_vec()));
        Some(())
    }

    fn predict_two(&mut self, f: &mut Fields, word: &[u8], kind: OperationKind) -> Option<()> {
        let old = f.name()?;
        let new = f.name()?;
        let raw = [word, b" old \"", old, b"\" new \"", new, b"\""].concat();
        self.predict(&raw, || SftpEvent::TwoPaths {
            kind,
            old: old.to_vec(),
            new: new.to_vec(),
        });
        Some(())
    }

    /// Keeps the operation behind `raw` if sftp-server's message for it will be cut.
    fn predict(&mut self, raw: &[u8], event: impl FnOnce() -> SftpEvent) {
        let message = stderr_message(raw);
        if message.len() < SFTP_SERVER_MESSAGE_MAX {
            return;
        }
        let predicted = Predicted {
            message,
            event: event(),
        };
        self.predicted_bytes += predicted.size();
        self.predicted.push_back(predicted);
        while self.predicted_bytes > PREDICTED_BYTES_MAX {
            let Some(old) = self.predicted.pop_front() else {
                break;
            };
            self.predicted_bytes -= old.size();
        }
    }

    /// The operation behind a cut message sftp-server wrote (without `\r\n`), if the tap saw
    /// its request. Operations before it that were never logged (sftp-server refused them)
    /// go with it: sftp-server logs in the order it answers.
    pub fn take_predicted(&mut self, message: &[u8]) -> Option<SftpEvent> {
        let at = self.predicted.iter().position(|p| p.message == message)?;
        for gone in self.predicted.drain(..=at).collect::<Vec<_>>() {
            self.predicted_bytes -= gone.size();
            if gone.message == message {
                return Some(gone.event);
            }
        }
        None
    }

    /// A reply on its way to the client: `packet` is its kept bytes. Returns the file of a
    /// long name this reply closed.
    pub fn on_reply(&mut self, packet: &[u8], now: Instant) -> Option<TapClose> {
        if self.lost {
            return None;
        }
        let mut f = Fields(packet);
        let kind = f.u8()?;
        let id = if kind == VERSION { None } else { f.u32() };
        // An answer to no request, or out of order.
        let Some(request) = self.pending.pop_front().filter(|r| r.id() == id) else {
            self.lose();
            return None;
        };
        match (request, kind) {
            (Pending::Open { name, flags, .. }, HANDLE) => {
                let handle = f.string()?.to_vec();
                let file = TapFile {
                    name,
                    flags,
                    opened: now,
                    read: 0,
                    written: 0,
                    failed: false,
                };
                self.files.insert(handle, file);
            }
            (Pending::Read { handle, .. }, DATA) => {
                let len = u64::from(f.u32()?);
                if let Some(file) = self.files.get_mut(&handle) {
                    file.read = file.read.saturating_add(len);
                }
            }
            (Pending::Write { handle, len, .. }, STATUS) => {
                let ok = f.u32()? == FX_OK;
                if let Some(file) = self.files.get_mut(&handle) {
                    if ok {
                        file.written = file.written.saturating_add(len);
                    } else {
                        file.failed = true;
                    }
                }
            }
            (Pending::Copy { from, to, len, .. }, STATUS) => {
                // With a length and OK, exactly that many bytes went across. Otherwise (a
                // length of 0 is "to the end"; an error stops midway) the packets do not say
                // how many, and none are counted.
                let copied = if f.u32()? == FX_OK { len } else { 0 };
                if let Some(file) = self.files.get_mut(&from) {
                    file.read = file.read.saturating_add(copied);
                }
                if let Some(file) = self.files.get_mut(&to) {
                    file.written = file.written.saturating_add(copied);
                }
            }
            (Pending::Close { handle, .. }, _) => {
                // sftp-server frees the handle whatever close(2) said.
                let file = self.files.remove(&handle)?;
                return Some(file.closed(false));
            }
            _ => {}
        }
        None
    }

    /// At sftp-server's end: its long-named files still open, as its `forced close`s (in
    /// handle order, as sftp-server logs them).
    pub fn finish(&mut self) -> Vec<TapClose> {
        let mut open: Vec<(Vec<u8>, TapFile)> = self.files.drain().collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        open.into_iter().map(|(_, f)| f.closed(true)).collect()
    }
}

impl TapFile {
    fn closed(&self, forced: bool) -> TapClose {
        TapClose {
            path: self.name.clone(),
            flags: self.flags.clone(),
            bytes_read: self.read,
            bytes_written: self.written,
            forced,
            failed: self.failed,
            opened: self.opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(kind: u8, fields: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = std::iter::once(&[kind][..])
            .chain(fields.iter().copied())
            .flatten()
            .copied()
            .collect();
        [&(body.len() as u32).to_be_bytes()[..], &body].concat()
    }

    fn string(s: &[u8]) -> Vec<u8> {
        [&(s.len() as u32).to_be_bytes()[..], s].concat()
    }

    fn id(n: u32) -> [u8; 4] {
        n.to_be_bytes()
    }

    /// Feeds a request stream and a reply stream through framers into a tap, the way the two
    /// threads do, the requests first.
    fn run(tap: &mut Tap, requests: &[u8], replies: &[u8], chunk: usize) -> Vec<TapClose> {
        let mut framer = Framer::default();
        for part in requests.chunks(chunk.max(1)) {
            framer.feed(part, request_keep, |p, len| tap.on_request(p, len));
        }
        let mut framer = Framer::default();
        let mut closed = Vec::new();
        let now = Instant::now();
        for part in replies.chunks(chunk.max(1)) {
            framer.feed(part, reply_keep, |p, _| closed.extend(tap.on_reply(p, now)));
        }
        closed
    }

    fn long(n: usize) -> Vec<u8> {
        let mut name = b"./".repeat(n / 2);
        name.extend_from_slice(b"file");
        name
    }

    #[test]
    fn stderr_message_escapes_and_cuts_like_sftp_server() {
        assert_eq!(
            stderr_message(b"open \"a\\b\xff\""),
            b"open \"a\\\\b\\377\""
        );
        assert_eq!(stderr_message(b"x\r\ny\t\x07"), b"x\r\ny\t\x07");
        // Stops before the escape that does not fit: 1,020 characters.
        let mut raw = vec![b'a'; 1020];
        raw.extend_from_slice(b"\xff\xff");
        assert_eq!(stderr_message(&raw).len(), 1020);
        // A backslash needs two places.
        let mut raw = vec![b'a'; 1022];
        raw.push(b'\\');
        assert_eq!(stderr_message(&raw).len(), 1021);
        assert_eq!(stderr_message(&[b'a'; 5000]).len(), 1021);
        assert_eq!(stderr_message(&[b'a'; 1019]).len(), 1019);
    }

    #[test]
    fn long_names_are_those_whose_close_could_be_cut() {
        assert!(!long_name(&[b'a'; 1020 - LONGEST_CLOSE_OVERHEAD - 1]));
        assert!(long_name(&[b'a'; 1020 - LONGEST_CLOSE_OVERHEAD]));
        assert!(long_name(&[0xff; 240]));
        assert!(!long_name(&[0xff; 200]));
    }

    #[test]
    fn a_long_upload_and_download_are_followed_from_open_to_close() {
        let up = long(1500);
        let down = long(3000);
        let mut requests = packet(INIT, &[&id(3)]);
        requests.extend(packet(OPEN, &[&id(1), &string(&up), &id(0x1a), &id(0)]));
        requests.extend(packet(OPEN, &[&id(2), &string(&down), &id(0x01), &id(0)]));
        for (n, len) in [(3u32, 1000u32), (4, 24)] {
            let data = vec![7u8; len as usize];
            requests.extend(packet(
                WRITE,
                &[
                    &id(n),
                    &string(&[0, 0, 0, 0]),
                    &0u64.to_be_bytes(),
                    &string(&data),
                ],
            ));
        }
        requests.extend(packet(
            READ,
            &[
                &id(5),
                &string(&[0, 0, 0, 1]),
                &0u64.to_be_bytes(),
                &id(4096),
            ],
        ));
        requests.extend(packet(
            READ,
            &[
                &id(6),
                &string(&[0, 0, 0, 1]),
                &0u64.to_be_bytes(),
                &id(4096),
            ],
        ));
        requests.extend(packet(CLOSE, &[&id(7), &string(&[0, 0, 0, 0])]));
        let mut replies = packet(VERSION, &[&id(3)]);
        replies.extend(packet(HANDLE, &[&id(1), &string(&[0, 0, 0, 0])]));
        replies.extend(packet(HANDLE, &[&id(2), &string(&[0, 0, 0, 1])]));
        replies.extend(packet(STATUS, &[&id(3), &id(0)]));
        replies.extend(packet(STATUS, &[&id(4), &id(0)]));
        replies.extend(packet(DATA, &[&id(5), &string(&[1; 300])]));
        replies.extend(packet(STATUS, &[&id(6), &id(1)]));
        replies.extend(packet(STATUS, &[&id(7), &id(0)]));
        for chunk in [1, 7, 4096] {
            let mut tap = Tap::default();
            let closed = run(&mut tap, &requests, &replies, chunk);
            assert_eq!(closed.len(), 1, "chunk {chunk}");
            assert_eq!(closed[0].path, up);
            assert_eq!(closed[0].flags, "WRITE,CREATE,TRUNCATE");
            assert_eq!((closed[0].bytes_read, closed[0].bytes_written), (0, 1024));
            assert!(!closed[0].forced && !closed[0].failed);
            let forced = tap.finish();
            assert_eq!(forced.len(), 1);
            assert_eq!(forced[0].path, down);
            assert_eq!((forced[0].bytes_read, forced[0].forced), (300, true));
            assert!(tap.following());
        }
    }

    #[test]
    fn short_names_are_left_to_the_log() {
        let mut tap = Tap::default();
        let requests = [
            packet(OPEN, &[&id(1), &string(b"/short"), &id(2), &id(0)]),
            packet(CLOSE, &[&id(2), &string(&[0, 0, 0, 0])]),
        ]
        .concat();
        let replies = [
            packet(HANDLE, &[&id(1), &string(&[0, 0, 0, 0])]),
            packet(STATUS, &[&id(2), &id(0)]),
        ]
        .concat();
        assert!(run(&mut tap, &requests, &replies, 5).is_empty());
        assert!(tap.finish().is_empty());
    }

    #[test]
    fn a_cut_operation_is_taken_whole_once_and_skipped_ones_go() {
        let name = long(2000);
        let other = [&b"other/"[..], &long(1800)].concat();
        let mut tap = Tap::default();
        let requests = [
            packet(REMOVE, &[&id(1), &string(&other)]),
            packet(REMOVE, &[&id(2), &string(&name)]),
            packet(RENAME, &[&id(3), &string(&name), &string(b"b")]),
            packet(REMOVE, &[&id(4), &string(b"short")]),
        ]
        .concat();
        run(&mut tap, &requests, &[], 3);
        let logged = stderr_message(&[b"remove name \"", &name[..], b"\""].concat());
        assert!(tap.take_predicted(&logged) == Some(SftpEvent::Remove { path: name.clone() }));
        // The first remove was never logged (refused): it went with the second.
        assert_eq!(tap.predicted.len(), 1);
        assert_eq!(tap.take_predicted(&logged), None);
        let logged = stderr_message(&[b"rename old \"", &name[..], b"\" new \"b\""].concat());
        assert!(matches!(
            tap.take_predicted(&logged),
            Some(SftpEvent::TwoPaths {
                kind: OperationKind::Rename,
                ..
            })
        ));
        assert_eq!(tap.predicted_bytes, 0);
    }

    #[test]
    fn an_answer_out_of_order_stops_the_tap() {
        let mut tap = Tap::default();
        let requests = packet(OPEN, &[&id(1), &string(&long(2000)), &id(2), &id(0)]);
        let replies = packet(HANDLE, &[&id(9), &string(&[0, 0, 0, 0])]);
        run(&mut tap, &requests, &replies, 64);
        assert!(!tap.following());
        assert!(tap.finish().is_empty());
        assert!(tap.take_abandoned().is_empty());
        // A file open when the tap stops following is given up by name, never silently.
        let mut tap = Tap::default();
        let requests = [
            packet(OPEN, &[&id(1), &string(&long(2000)), &id(2), &id(0)]),
            packet(CLOSE, &[&id(2), &string(&[0, 0, 0, 0])]),
        ]
        .concat();
        let replies = [
            packet(HANDLE, &[&id(1), &string(&[0, 0, 0, 0])]),
            packet(STATUS, &[&id(7), &id(0)]),
        ]
        .concat();
        assert!(run(&mut tap, &requests, &replies, 64).is_empty());
        assert!(tap.finish().is_empty());
        assert_eq!(tap.take_abandoned().len(), 1);
    }

    #[test]
    fn a_copy_counts_only_the_bytes_the_packets_give() {
        let name = long(2000);
        let mut tap = Tap::default();
        let requests = [
            packet(OPEN, &[&id(1), &string(&name), &id(0x1a), &id(0)]),
            packet(
                EXTENDED,
                &[
                    &id(2),
                    &string(b"copy-data"),
                    &string(&[0, 0, 0, 1]),
                    &0u64.to_be_bytes(),
                    &0u64.to_be_bytes(),
                    &string(&[0, 0, 0, 0]),
                    &0u64.to_be_bytes(),
                ],
            ),
            packet(CLOSE, &[&id(3), &string(&[0, 0, 0, 0])]),
        ]
        .concat();
        let replies = [
            packet(HANDLE, &[&id(1), &string(&[0, 0, 0, 0])]),
            packet(STATUS, &[&id(2), &id(0)]),
            packet(STATUS, &[&id(3), &id(0)]),
        ]
        .concat();
        let closed = run(&mut tap, &requests, &replies, 11);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].bytes_read, closed[0].bytes_written), (0, 0));
    }

    proptest! {
        /// Whatever the bytes and however they are split, the framer and the tap never panic,
        /// and the framer finds the same packets in any split.
        #[test]
        fn any_bytes_in_any_split(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            chunk in 1usize..64,
        ) {
            let collect = |chunk: usize| {
                let mut framer = Framer::default();
                let mut packets = Vec::new();
                for part in bytes.chunks(chunk) {
                    framer.feed(part, request_keep, |p, len| packets.push((p.to_vec(), len)));
                }
                packets
            };
            prop_assert_eq!(collect(chunk), collect(bytes.len().max(1)));
            let mut tap = Tap::default();
            run(&mut tap, &bytes, &bytes, chunk);
            tap.finish();
        }

        /// The message predicted for any name is sftp-server's form: never longer than 1,021
        /// characters, and a prefix of the whole escaped text.
        #[test]
        fn predicted_messages_are_prefixes(name in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let raw = [b"remove name \"", &name[..], b"\""].concat();
            let message = stderr_message(&raw);
            prop_assert!(message.len() <= 1021);
            let whole: Vec<u8> = raw
                .iter()
                .flat_map(|&c| stderr_message(&[c]))
                .collect();
            prop_assert!(whole.starts_with(&message));
            if raw.len() <= BUFFER && whole.len() < SFTP_SERVER_MESSAGE_MAX {
                prop_assert_eq!(message, whole);
            }
        }
    }
}
