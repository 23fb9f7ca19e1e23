//! The SFTP packets between the client and sftp-server, read on their way through the wrapper:
//! in capture mode the one source of the per-file events, of the session's totals and of the
//! `file closed` lines. sftp-server's own log lines are forwarded as they are and decide nothing:
//! they carry no request id and no handle, rename/remove/mkdir/rmdir are logged before they are
//! tried, and a failure status cannot be tied to a request by log order.
//!
//! sftp-server answers its requests one at a time, in order, each once, so the n-th answer is
//! the n-th request's. The tap parses each request as sftp-server will (within the packet: a
//! field that runs past it makes sftp-server read the next packet's bytes and exit), keeps what
//! the answer will decide, and acts on the answer: an event fires when, and only when,
//! sftp-server answered the operation OK; a file's bytes are those of the writes it answered OK
//! and of the data it sent back.
//!
//! Memory is bounded whatever the client sends: a handle that is not the 4 bytes sftp-server
//! issues is an invalid handle to it and is never stored; requests waiting for their answer are
//! capped in number and in the bytes of the names they hold, and the relay stops reading the
//! client at the cap until answers drain ([`Tap::full`]); finished `.filepart` uploads waiting
//! for their rename are capped too. Open files are sftp-server's own (one per descriptor it
//! holds, each named by a path `open(2)` took).

use crate::log::reach::{Names, RECENT_CLOSES, normalize, under};
use crate::log::transfer::{CountsAs, Direction, classify_close};
use crate::log::wrapper::{
    ClosedAs, DropReason, EventKind, FileRecord, LoggedPath, OtherFile, Totals,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// sftp-server refuses (and exits on) a request longer than this (SFTP_MAX_MSG_LENGTH).
pub(crate) const MAX_REQUEST: u32 = 256 * 1024;
/// Requests waiting for their answer, at most (beyond them the client is not read).
pub(crate) const PENDING_MAX: usize = 1024;
/// The bytes of names the waiting requests hold, at most (beyond them the client is not read).
pub(crate) const PENDING_NAME_BYTES_MAX: usize = 1 << 20;
/// Finished `.filepart` uploads waiting for their rename, at most: beyond it the oldest fires
/// under its own name.
pub(crate) const HELD_MAX: usize = 256;

/// The name WinSCP, FileZilla, curl and many partner scripts upload under before renaming.
const TEMP_UPLOAD_SUFFIX: &[u8] = b".filepart";

// SFTP packet types (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it).
const INIT: u8 = 1;
const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const LSTAT: u8 = 7;
const FSTAT: u8 = 8;
const SETSTAT: u8 = 9;
const FSETSTAT: u8 = 10;
const OPENDIR: u8 = 11;
const READDIR: u8 = 12;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const REALPATH: u8 = 16;
const STAT: u8 = 17;
const RENAME: u8 = 18;
const READLINK: u8 = 19;
const SYMLINK: u8 = 20;
const EXTENDED: u8 = 200;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;

const FX_OK: u32 = 0;
const FX_EOF: u32 = 1;

const ATTR_SIZE: u32 = 0x1;
const ATTR_UIDGID: u32 = 0x2;
const ATTR_PERMISSIONS: u32 = 0x4;
const ATTR_ACMODTIME: u32 = 0x8;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// One per-file event, as the hooks see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "event_kind")]
    pub kind: EventKind,
    pub path: Vec<u8>,
    /// rename: the new name; link: what the link points to (symlink) or names (hardlink);
    /// copy: the file copied from.
    pub target: Option<Vec<u8>>,
    /// An upload renamed into place: the name it was written under (`NAME.filepart`).
    pub uploaded_as: Option<Vec<u8>>,
    /// link: `symlink` or `hardlink`.
    pub link_kind: Option<String>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub open_flags: String,
    pub complete: bool,
    pub elapsed_ms: u64,
}

mod event_kind {
    use crate::log::wrapper::EventKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(kind: &EventKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
        let word = String::deserialize(d)?;
        EventKind::parse(&word).ok_or_else(|| serde::de::Error::custom("unknown event"))
    }
}

impl Event {
    fn operation(kind: EventKind, path: Vec<u8>, target: Option<Vec<u8>>) -> Event {
        Event {
            kind,
            path,
            target,
            uploaded_as: None,
            link_kind: None,
            bytes_read: 0,
            bytes_written: 0,
            open_flags: String::new(),
            complete: true,
            elapsed_ms: 0,
        }
    }
}

/// What an answer made known, in the order it is to be acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A closed file, for its `file closed` line.
    File(FileRecord),
    /// An event, for its hook.
    Event(Event),
    /// Something the tap cannot vouch for: the event word (or `close`), the name, and why.
    Dropped(&'static str, Vec<u8>, DropReason),
}

/// Splits a byte stream into SFTP packets (a 32-bit length, then that many bytes), keeping of
/// each only the first bytes its parser asks for, so a 256 KiB write costs no copy.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    length: [u8; 4],
    length_have: usize,
    /// The current packet's length, and its bytes still to come (0 between packets).
    packet: u32,
    remaining: u32,
    kept: Vec<u8>,
    /// The parser has all it wants of the current packet.
    enough: bool,
}

impl Framer {
    /// Feeds bytes; `need(kept)` says how many of the packet's first bytes its parser wants,
    /// given those kept so far (it is asked again each time that many are kept), and
    /// `on_packet` gets each packet's kept bytes (its type first) and its length.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        need: impl Fn(&[u8]) -> usize,
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
                    self.packet = u32::from_be_bytes(self.length);
                    self.remaining = self.packet;
                    self.kept.clear();
                    self.enough = false;
                    if self.remaining == 0 {
                        on_packet(&[], 0);
                    }
                }
                continue;
            }
            let mut take = data.len().min(self.remaining as usize);
            if !self.enough {
                let limit = (self.packet.min(MAX_REQUEST)) as usize;
                let want = need(&self.kept).min(limit);
                if want > self.kept.len() {
                    take = take.min(want - self.kept.len());
                    self.kept.extend_from_slice(&data[..take]);
                } else {
                    self.enough = true;
                    continue;
                }
            }
            self.remaining -= take as u32;
            data = &data[take..];
            if self.remaining == 0 {
                on_packet(&self.kept, self.packet);
            }
        }
    }
}

/// How much of a request the tap reads: a write's header, anything else whole.
pub(crate) fn request_need(kept: &[u8]) -> usize {
    match kept.first() {
        None => 1,
        Some(&WRITE) => match kept.get(5..9) {
            // Type, id, the handle's length; then the handle, the offset and the data's length.
            None => 9,
            Some(len) => 9 + u32::from_be_bytes(len.try_into().unwrap()) as usize + 12,
        },
        Some(_) => MAX_REQUEST as usize,
    }
}

/// How much of a reply the tap reads: the type, the id and a handle, status or data length.
pub(crate) fn reply_need(kept: &[u8]) -> usize {
    match kept.first() {
        None => 1,
        Some(&HANDLE) => 1 + 4 + 4 + 4,
        Some(&STATUS | &DATA) => 1 + 4 + 4,
        Some(_) => 1 + 4,
    }
}

/// A reader over one packet's fields: `None` where sftp-server would read past the packet.
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
    /// A handle: sftp-server's are 4 bytes, anything else is invalid to it (`None` inside).
    fn handle(&mut self) -> Option<Option<u32>> {
        let h = self.string()?;
        Some(<[u8; 4]>::try_from(h).ok().map(u32::from_be_bytes))
    }
    /// An attribute block, as sftp-server's `decode_attrib` reads it.
    fn attrs(&mut self) -> Option<()> {
        let flags = self.u32()?;
        if flags & ATTR_SIZE != 0 {
            self.u64()?;
        }
        if flags & ATTR_UIDGID != 0 {
            self.u64()?;
        }
        if flags & ATTR_PERMISSIONS != 0 {
            self.u32()?;
        }
        if flags & ATTR_ACMODTIME != 0 {
            self.u64()?;
        }
        if flags & ATTR_EXTENDED != 0 {
            let count = self.u32()?;
            if count > 0x10_0000 {
                return None;
            }
            for _ in 0..count {
                self.name()?;
                self.string()?;
            }
        }
        Some(())
    }
}

/// What a request will have done once answered.
#[derive(Debug)]
enum Request {
    Init,
    Open {
        name: Vec<u8>,
        pflags: u32,
    },
    Read(Option<u32>),
    Write(Option<u32>, u64),
    Close(Option<u32>),
    /// remove, mkdir, rmdir.
    OnePath(EventKind, Vec<u8>),
    Rename {
        old: Vec<u8>,
        new: Vec<u8>,
    },
    Link {
        target: Vec<u8>,
        link: Vec<u8>,
        kind: &'static str,
    },
    Copy {
        from: Option<u32>,
        to: Option<u32>,
    },
    /// Changes something but is no event (setstat, fsync, …): only a failure counts.
    Change,
    /// Changes nothing (stat, realpath, opendir, …).
    Look,
    /// sftp-server reads it past its end or into a NUL and exits, after answering it or not:
    /// what it did, the packets cannot say.
    Unreadable,
}

impl Request {
    fn name_bytes(&self) -> usize {
        match self {
            Request::Open { name, .. } | Request::OnePath(_, name) => name.len(),
            Request::Rename { old, new } => old.len() + new.len(),
            Request::Link { target, link, .. } => target.len() + link.len(),
            _ => 0,
        }
    }
}

#[derive(Debug)]
struct Pending {
    /// `None` for INIT, answered by VERSION.
    id: Option<u32>,
    request: Request,
}

#[derive(Debug)]
struct OpenFile {
    name: Vec<u8>,
    pflags: u32,
    opened: Instant,
    read: u64,
    written: u64,
    /// A read was answered EOF: the client had the file to its end.
    eof: bool,
    failed: bool,
    /// The file a server-side copy into this one read from.
    copied_from: Option<Vec<u8>>,
    /// The file its name led to through the session's links and renames, when another name.
    reached: Option<Vec<u8>>,
}

/// What the tap knows: the requests waiting for their answer, the open files, the uploads held
/// for their rename, and the session's totals.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    pending: VecDeque<Pending>,
    pending_name_bytes: usize,
    /// By sftp-server's handle, in handle order (as sftp-server logs its forced closes).
    files: BTreeMap<u32, OpenFile>,
    held: VecDeque<Event>,
    upload_on_rename: bool,
    /// The names the session's links and renames made (each answered OK), every one absolute
    /// where `dir` is known.
    names: Names,
    /// sftp-server's working directory, which its relative names are taken from: a partner's
    /// `x` and `/home/p/x` are one name.
    dir: Option<Vec<u8>>,
    /// The last files closed, oldest first: their names, and whether each was an upload.
    recent: VecDeque<(Vec<u8>, bool)>,
    /// An INIT was sent: sftp-server exits on any other request before it.
    init: bool,
    /// Set once an answer shows the tap no longer knows what sftp-server does.
    lost: bool,
    pub totals: Totals,
}

impl Tap {
    /// `dir`: sftp-server's working directory, when known, and another name it has (a home
    /// directory that is a symlink to it).
    pub fn new(upload_on_rename: bool, dir: Option<(Vec<u8>, Option<Vec<u8>>)>) -> Tap {
        let mut tap = Tap {
            upload_on_rename,
            ..Tap::default()
        };
        if let Some((dir, alias)) = dir.filter(|(d, _)| d.starts_with(b"/")) {
            if let Some(alias) = alias.filter(|a| a.starts_with(b"/")) {
                tap.names.alias(&alias, &dir);
            }
            tap.dir = Some(dir);
        }
        tap
    }

    /// `name` as sftp-server takes it: a relative name within its working directory.
    fn absolute<'n>(&self, name: &'n [u8]) -> std::borrow::Cow<'n, [u8]> {
        match &self.dir {
            Some(dir) if !name.starts_with(b"/") => [dir, &b"/"[..], name].concat().into(),
            _ => name.into(),
        }
    }

    /// Whether the tap still knows what sftp-server does.
    #[cfg(test)]
    pub fn following(&self) -> bool {
        !self.lost
    }

    /// Whether requests are waiting for their answer.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty() && !self.lost
    }

    /// Whether the client is to wait until answers drain.
    pub fn full(&self) -> bool {
        self.pending.len() >= PENDING_MAX || self.pending_name_bytes >= PENDING_NAME_BYTES_MAX
    }

    /// A request on its way to sftp-server (before sftp-server can read it): `packet` is its
    /// kept bytes, `length` its whole length.
    pub(crate) fn on_request(&mut self, packet: &[u8], length: u32) {
        if self.lost {
            return;
        }
        let mut f = Fields(packet);
        let unreadable = Pending {
            id: None,
            request: Request::Unreadable,
        };
        let pending = match f.u8() {
            // Longer than sftp-server takes: it exits on it. Empty: it reads the next packet's
            // first byte as the type, and exits after that request.
            _ if length > MAX_REQUEST => unreadable,
            None => unreadable,
            Some(INIT) => match f.u32() {
                Some(_) => {
                    self.init = true;
                    Pending {
                        id: None,
                        request: Request::Init,
                    }
                }
                None => unreadable,
            },
            // sftp-server exits on any other request before INIT, answering nothing.
            Some(_) if !self.init => return,
            Some(kind @ (OPEN..=SYMLINK | EXTENDED)) => match f.u32() {
                Some(id) => Pending {
                    id: Some(id),
                    request: read_request(kind, &mut f, packet.len(), length)
                        .unwrap_or(Request::Unreadable),
                },
                None => unreadable,
            },
            // sftp-server answers no other type, and goes on.
            Some(_) => return,
        };
        self.pending_name_bytes += pending.request.name_bytes();
        self.pending.push_back(pending);
    }

    /// A reply on its way to the client: `packet` is its kept bytes. Returns what it made known.
    pub(crate) fn on_reply(&mut self, packet: &[u8], now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.lost {
            return out;
        }
        let mut f = Fields(packet);
        let kind = f.u8();
        let id = if kind == Some(VERSION) { None } else { f.u32() };
        let Some(pending) = self.pending.pop_front() else {
            self.lose(&mut out);
            return out;
        };
        self.pending_name_bytes -= pending.request.name_bytes();
        let answers = match pending.request {
            Request::Init => kind == Some(VERSION),
            _ => kind != Some(VERSION) && id.is_some() && pending.id.is_none_or(|p| Some(p) == id),
        };
        if !answers {
            self.lose(&mut out);
            return out;
        }
        let status = if kind == Some(STATUS) { f.u32() } else { None };
        let ok = status == Some(FX_OK);
        let failed = kind == Some(STATUS) && !ok;
        match pending.request {
            Request::Init | Request::Look => {}
            Request::Unreadable => {
                if ok || kind == Some(HANDLE) {
                    out.push(Output::Dropped(
                        "request",
                        Vec::new(),
                        DropReason::UnreadableRequest,
                    ));
                }
            }
            Request::Open { name, pflags } => match (kind, f.handle()) {
                (Some(HANDLE), Some(Some(handle))) => {
                    self.opened(handle, name, pflags, now, &mut out)
                }
                _ if failed => self.totals.failed_operations += 1,
                _ => self.lose(&mut out),
            },
            Request::Read(handle) => self.read_answered(handle, kind, status, &mut f),
            Request::Write(handle, len) => self.write_answered(handle, len, ok),
            Request::Close(handle) => {
                if failed {
                    self.totals.failed_operations += 1;
                }
                // sftp-server frees the handle whatever close(2) said.
                if let Some(file) = handle.and_then(|h| self.files.remove(&h)) {
                    self.closed(file, ok, false, now, &mut out);
                }
            }
            Request::OnePath(kind, path) if ok => {
                if kind != EventKind::Mkdir {
                    let name = self.absolute(&path).into_owned();
                    self.names.forget(&[&name]);
                }
                out.push(Output::Event(Event::operation(kind, path, None)));
            }
            Request::Rename { old, new } if ok => self.renamed(old, new, &mut out),
            Request::Link { target, link, kind } if ok => {
                let name = self.absolute(&link).into_owned();
                // A symlink's target is a name of its own, taken from the link's directory;
                // a hardlink's is a file, named as the request names files.
                let _ = match kind {
                    "symlink" => self.names.symlink(&name, &target),
                    _ => {
                        let existing = self.absolute(&target).into_owned();
                        self.names.link(&name, &existing, false)
                    }
                };
                let mut event = Event::operation(EventKind::Link, link, Some(target));
                event.link_kind = Some(kind.to_owned());
                out.push(Output::Event(event));
            }
            Request::Copy { from, to } => self.copy_answered(from, to, ok),
            Request::OnePath(..)
            | Request::Rename { .. }
            | Request::Link { .. }
            | Request::Change => {
                if failed {
                    self.totals.failed_operations += 1;
                }
            }
        }
        out
    }

    /// A handle sftp-server gave for an open: a file followed from now on.
    fn opened(
        &mut self,
        handle: u32,
        name: Vec<u8>,
        pflags: u32,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let file = OpenFile {
            reached: self.names.reached(&self.absolute(&name)),
            name,
            pflags,
            opened: now,
            read: 0,
            written: 0,
            eof: false,
            failed: false,
            copied_from: None,
        };
        if let Some(old) = self.files.insert(handle, file) {
            // sftp-server gives out a handle only once it is free: the tap missed a close, so
            // it no longer follows.
            self.files.insert(handle, old);
            self.lose(out);
        }
    }

    /// The answer to a read: the bytes its DATA carries, the file's end, or a failure.
    fn read_answered(
        &mut self,
        handle: Option<u32>,
        kind: Option<u8>,
        status: Option<u32>,
        f: &mut Fields<'_>,
    ) {
        let file = handle.and_then(|h| self.files.get_mut(&h));
        match (kind, file) {
            (Some(DATA), Some(file)) => {
                let len = f.u32().unwrap_or(0);
                file.read = file.read.saturating_add(u64::from(len));
            }
            (Some(DATA), None) => {}
            (_, file) if status == Some(FX_EOF) => {
                if let Some(file) = file {
                    file.eof = true;
                }
            }
            (_, file) => {
                if let Some(file) = file {
                    file.failed = true;
                }
                self.totals.failed_operations += 1;
            }
        }
    }

    /// The answer to a write of `len` bytes: written, or a failure.
    fn write_answered(&mut self, handle: Option<u32>, len: u64, ok: bool) {
        let file = handle.and_then(|h| self.files.get_mut(&h));
        if ok {
            if let Some(file) = file {
                file.written = file.written.saturating_add(len);
            }
        } else {
            if let Some(file) = file {
                file.failed = true;
            }
            self.totals.failed_operations += 1;
        }
    }

    /// A rename answered OK: its event, after the held upload it names under its new name.
    fn renamed(&mut self, old: Vec<u8>, new: Vec<u8>, out: &mut Vec<Output>) {
        let uploaded = match self.recent.iter().rposition(|(name, _)| *name == old) {
            Some(at) => self.recent.remove(at).is_some_and(|(_, upload)| upload),
            None => false,
        };
        let (from, to) = (self.absolute(&old).into_owned(), self.absolute(&new));
        self.names.renamed(&from, &to, uploaded);
        // sftp-server's directory is a directory, not a name: renamed, it is where it went.
        if let Some(dir) = &self.dir {
            let (from, to) = (normalize(&from), normalize(&to));
            if let Some(rest) = under(dir, &from) {
                self.dir = Some([&to[..], rest].concat());
            }
        }
        if self.upload_on_rename
            && let Some(i) = self.held.iter().rposition(|e| e.path == old)
            && let Some(mut upload) = self.held.remove(i)
        {
            upload.uploaded_as = Some(std::mem::replace(&mut upload.path, new.clone()));
            out.push(Output::Event(upload));
        }
        out.push(Output::Event(Event::operation(
            EventKind::Rename,
            old,
            Some(new),
        )));
    }

    /// The answer to a copy-data: the destination notes its source, or failed.
    fn copy_answered(&mut self, from: Option<u32>, to: Option<u32>, ok: bool) {
        let source = from
            .and_then(|h| self.files.get(&h))
            .map(|f| f.name.clone());
        if let Some(file) = to.and_then(|h| self.files.get_mut(&h)) {
            if ok {
                if file.copied_from.is_none() {
                    file.copied_from = source;
                }
            } else {
                file.failed = true;
            }
        }
        if !ok {
            self.totals.failed_operations += 1;
        }
    }

    /// A file's end: its `file closed` record, its totals and its event.
    fn closed(
        &mut self,
        file: OpenFile,
        close_ok: bool,
        forced: bool,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let flags = open_flags(file.pflags);
        let failed = file.failed || (!forced && !close_ok);
        let verdict = classify_close(
            Some(Direction::from_open_flags(&flags)),
            file.read,
            file.written,
            forced,
            failed,
            file.eof,
        );
        // Written by copy-data alone and never read: what moved never crossed the wire.
        let copy = file.copied_from.is_some() && file.written == 0 && file.read == 0;
        let counts_as = match verdict.counts_as {
            _ if copy => ClosedAs::Copy,
            Some(CountsAs::Upload) => ClosedAs::Upload,
            Some(CountsAs::Download) => ClosedAs::Download,
            None => ClosedAs::Nothing,
        };
        let elapsed_ms = now.saturating_duration_since(file.opened).as_millis() as u64;
        out.push(Output::File(FileRecord {
            path: LoggedPath::of(&file.name),
            counts_as,
            bytes_read: file.read,
            bytes_written: file.written,
            complete: verdict.complete,
            failed,
            forced,
            open_flags: flags.clone(),
            elapsed_ms,
            other: match (&file.copied_from, &file.reached) {
                (Some(from), _) if copy => Some(OtherFile::copied_from(from)),
                (_, Some(to)) => Some(OtherFile::reached(to)),
                _ => None,
            },
        }));
        if counts_as != ClosedAs::Copy {
            if self.recent.len() == RECENT_CLOSES {
                self.recent.pop_front();
            }
            let upload = counts_as == ClosedAs::Upload;
            self.recent.push_back((file.name.clone(), upload));
        }
        // Saturating: a session's total is reported, never a panic or a wrap.
        let t = &mut self.totals;
        let kind = match counts_as {
            ClosedAs::Upload => {
                t.files_uploaded += 1;
                t.bytes_uploaded = t.bytes_uploaded.saturating_add(file.written);
                EventKind::Upload
            }
            ClosedAs::Download => {
                t.files_downloaded += 1;
                t.bytes_downloaded = t.bytes_downloaded.saturating_add(file.read);
                EventKind::Download
            }
            ClosedAs::Copy => EventKind::Copy,
            ClosedAs::Nothing => return,
        };
        let event = Event {
            kind,
            target: file.copied_from,
            path: file.name,
            uploaded_as: None,
            link_kind: None,
            bytes_read: file.read,
            bytes_written: file.written,
            open_flags: flags,
            complete: verdict.complete,
            elapsed_ms,
        };
        if kind == EventKind::Upload
            && self.upload_on_rename
            && event.path.ends_with(TEMP_UPLOAD_SUFFIX)
        {
            self.held.push_back(event);
            if self.held.len() > HELD_MAX
                && let Some(oldest) = self.held.pop_front()
            {
                out.push(Output::Event(oldest));
            }
            return;
        }
        out.push(Output::Event(event));
    }

    fn lose(&mut self, out: &mut Vec<Output>) {
        self.lost = true;
        self.pending.clear();
        self.pending_name_bytes = 0;
        for file in std::mem::take(&mut self.files).into_values() {
            out.push(Output::Dropped("close", file.name, DropReason::TapLost));
        }
    }

    /// At sftp-server's end: the files still open, as its `forced close`s (in handle order, as
    /// sftp-server logs them), then the held uploads never renamed, under their own names.
    pub fn finish(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for file in std::mem::take(&mut self.files).into_values() {
            self.closed(file, false, true, now, &mut out);
        }
        out.extend(self.held.drain(..).map(Output::Event));
        out
    }
}

/// The request as sftp-server will read it; `None` where sftp-server would read past the packet
/// (or into a NUL) and exit. `kept` is how many of the packet's `length` bytes `f` started with.
fn read_request(kind: u8, f: &mut Fields, kept: usize, length: u32) -> Option<Request> {
    let name = |f: &mut Fields| f.name().map(<[u8]>::to_vec);
    Some(match kind {
        OPEN => {
            let name = name(f)?;
            let pflags = f.u32()?;
            f.attrs()?;
            Request::Open { name, pflags }
        }
        CLOSE => Request::Close(f.handle()?),
        READ => {
            let handle = f.handle()?;
            f.u64()?;
            f.u32()?;
            Request::Read(handle)
        }
        WRITE => {
            let handle = f.handle()?;
            f.u64()?;
            let len = f.u32()?;
            // Only the header was kept: the data must fit in the packet.
            let header = kept - f.0.len();
            (header as u64 + u64::from(len) <= u64::from(length)).then_some(())?;
            Request::Write(handle, u64::from(len))
        }
        REMOVE => Request::OnePath(EventKind::Remove, name(f)?),
        RMDIR => Request::OnePath(EventKind::Rmdir, name(f)?),
        MKDIR => {
            let path = name(f)?;
            f.attrs()?;
            Request::OnePath(EventKind::Mkdir, path)
        }
        RENAME => Request::Rename {
            old: name(f)?,
            new: name(f)?,
        },
        // sftp-server calls symlink(first, second): the second is the link.
        SYMLINK => Request::Link {
            target: name(f)?,
            link: name(f)?,
            kind: "symlink",
        },
        SETSTAT | FSETSTAT => Request::Change,
        LSTAT | FSTAT | OPENDIR | READDIR | REALPATH | STAT | READLINK => Request::Look,
        EXTENDED => match f.name()? {
            b"posix-rename@openssh.com" => Request::Rename {
                old: name(f)?,
                new: name(f)?,
            },
            b"hardlink@openssh.com" => Request::Link {
                target: name(f)?,
                link: name(f)?,
                kind: "hardlink",
            },
            b"copy-data" => {
                let from = f.handle()?;
                f.u64()?;
                f.u64()?;
                let to = f.handle()?;
                f.u64()?;
                Request::Copy { from, to }
            }
            b"fsync@openssh.com" | b"lsetstat@openssh.com" => Request::Change,
            _ => Request::Look,
        },
        _ => return None,
    })
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

    fn u32b(n: u32) -> [u8; 4] {
        n.to_be_bytes()
    }

    fn handle(n: u32) -> Vec<u8> {
        string(&n.to_be_bytes())
    }

    fn init() -> Vec<u8> {
        packet(INIT, &[&u32b(3)])
    }

    fn version() -> Vec<u8> {
        packet(VERSION, &[&u32b(3)])
    }

    fn open(id: u32, name: &[u8], pflags: u32) -> Vec<u8> {
        packet(OPEN, &[&u32b(id), &string(name), &u32b(pflags), &u32b(0)])
    }

    fn write(id: u32, h: &[u8], data: &[u8]) -> Vec<u8> {
        packet(WRITE, &[&u32b(id), h, &0u64.to_be_bytes(), &string(data)])
    }

    fn read(id: u32, h: u32) -> Vec<u8> {
        packet(
            READ,
            &[&u32b(id), &handle(h), &0u64.to_be_bytes(), &u32b(32768)],
        )
    }

    fn close(id: u32, h: u32) -> Vec<u8> {
        packet(CLOSE, &[&u32b(id), &handle(h)])
    }

    fn status(id: u32, code: u32) -> Vec<u8> {
        packet(
            STATUS,
            &[&u32b(id), &u32b(code), &string(b""), &string(b"")],
        )
    }

    fn handle_reply(id: u32, h: u32) -> Vec<u8> {
        packet(HANDLE, &[&u32b(id), &handle(h)])
    }

    fn data(id: u32, len: usize) -> Vec<u8> {
        packet(DATA, &[&u32b(id), &string(&vec![7; len])])
    }

    const WRITE_CREATE: u32 = 0x1a;

    /// Feeds a request stream and a reply stream through framers into a tap, the way the two
    /// threads do, the requests first, then the tap's end.
    fn run(tap: &mut Tap, requests: &[u8], replies: &[u8], chunk: usize) -> Vec<Output> {
        let mut framer = Framer::default();
        for part in requests.chunks(chunk.max(1)) {
            framer.feed(part, request_need, |p, len| tap.on_request(p, len));
        }
        let mut framer = Framer::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for part in replies.chunks(chunk.max(1)) {
            framer.feed(part, reply_need, |p, _| out.extend(tap.on_reply(p, now)));
        }
        out.extend(tap.finish(now));
        out
    }

    fn events(out: &[Output]) -> Vec<&Event> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn files(out: &[Output]) -> Vec<&FileRecord> {
        out.iter()
            .filter_map(|o| match o {
                Output::File(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_upload_and_a_download_from_open_to_close_in_any_split() {
        let requests = [
            init(),
            open(1, b"/h/up", WRITE_CREATE),
            open(2, b"/h/down", 0x01),
            write(3, &handle(0), &[1; 1000]),
            write(4, &handle(0), &[1; 24]),
            read(5, 1),
            read(6, 1),
            close(7, 0),
        ]
        .concat();
        let replies = [
            version(),
            handle_reply(1, 0),
            handle_reply(2, 1),
            status(3, FX_OK),
            status(4, FX_OK),
            data(5, 300),
            status(6, FX_EOF),
            status(7, FX_OK),
        ]
        .concat();
        for chunk in [1, 7, 4096] {
            let mut tap = Tap::new(true, None);
            let out = run(&mut tap, &requests, &replies, chunk);
            let files = files(&out);
            assert_eq!(files.len(), 2, "chunk {chunk}");
            assert_eq!(files[0].path.bytes, b"/h/up");
            assert_eq!(
                (files[0].counts_as, files[0].bytes_written),
                (ClosedAs::Upload, 1024)
            );
            assert!(files[0].complete && !files[0].forced);
            // Never closed, but read to its end: a complete download.
            assert_eq!(
                (files[1].counts_as, files[1].bytes_read),
                (ClosedAs::Download, 300)
            );
            assert!(files[1].forced && files[1].complete);
            let events = events(&out);
            assert_eq!(events.len(), 2);
            assert_eq!(events[0].kind, EventKind::Upload);
            assert_eq!(events[0].open_flags, "WRITE,CREATE,TRUNCATE");
            assert_eq!(
                tap.totals,
                Totals {
                    files_uploaded: 1,
                    files_downloaded: 1,
                    bytes_uploaded: 1024,
                    bytes_downloaded: 300,
                    failed_operations: 0,
                }
            );
            assert!(tap.following());
        }
    }

    #[test]
    fn refused_operations_fire_nothing_and_count_as_failed() {
        let requests = [
            init(),
            packet(REMOVE, &[&u32b(1), &string(b"/etc/passwd")]),
            packet(RMDIR, &[&u32b(2), &string(b"/etc")]),
            packet(MKDIR, &[&u32b(3), &string(b"/tmp"), &u32b(0)]),
            packet(
                RENAME,
                &[&u32b(4), &string(b"a.filepart"), &string(b"/home/o/p.csv")],
            ),
            packet(LSTAT, &[&u32b(5), &string(b"/missing")]),
            packet(REMOVE, &[&u32b(6), &string(b"/h/ok")]),
        ]
        .concat();
        let replies = [
            version(),
            status(1, 3),
            status(2, 3),
            status(3, 4),
            status(4, 3),
            status(5, 2),
            status(6, FX_OK),
        ]
        .concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 5);
        let events = events(&out);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind, events[0].path.as_slice()),
            (EventKind::Remove, &b"/h/ok"[..])
        );
        // The refused four count; the lstat probe does not.
        assert_eq!(tap.totals.failed_operations, 4);
    }

    #[test]
    fn a_close_is_its_own_handles_whatever_the_order() {
        // The same name open twice: read on one, write on the other, the writer closed first.
        let requests = [
            init(),
            open(1, b"/h/p", 0x01),
            open(2, b"/h/p", WRITE_CREATE),
            write(3, &handle(1), &[0; 5000]),
            close(4, 1),
            close(5, 0),
        ]
        .concat();
        let replies = [
            version(),
            handle_reply(1, 0),
            handle_reply(2, 1),
            status(3, FX_OK),
            status(4, FX_OK),
            status(5, FX_OK),
        ]
        .concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 64);
        let events = events(&out);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind, events[0].bytes_written),
            (EventKind::Upload, 5000)
        );
        assert!(events[0].complete);
        // The reader closed unread is no event, but it is a closed file.
        assert_eq!(files(&out)[1].counts_as, ClosedAs::Nothing);
    }

    #[test]
    fn a_failed_write_or_close_makes_the_upload_incomplete() {
        for (write_status, close_status) in [(4, FX_OK), (FX_OK, 4)] {
            let requests = [
                init(),
                open(1, b"/h/f", WRITE_CREATE),
                write(2, &handle(0), b"abc"),
                close(3, 0),
            ]
            .concat();
            let replies = [
                version(),
                handle_reply(1, 0),
                status(2, write_status),
                status(3, close_status),
            ]
            .concat();
            let mut tap = Tap::new(true, None);
            let out = run(&mut tap, &requests, &replies, 9);
            let events = events(&out);
            assert_eq!(events.len(), 1);
            assert!(!events[0].complete);
            assert!(files(&out)[0].failed);
            assert_eq!(tap.totals.failed_operations, 1);
        }
    }

    /// copy-data of `len` bytes (0: to the source's end) from handle `from` into `to`.
    fn copy_data(id: u32, from: u32, len: u64, to: u32) -> Vec<u8> {
        packet(
            EXTENDED,
            &[
                &u32b(id),
                &string(b"copy-data"),
                &handle(from),
                &0u64.to_be_bytes(),
                &len.to_be_bytes(),
                &handle(to),
                &0u64.to_be_bytes(),
            ],
        )
    }

    #[test]
    fn a_copy_is_a_copy_never_traffic() {
        let copy = copy_data(3, 0, 65536, 1);
        let requests = [
            init(),
            open(1, b"/h/src", 0x01),
            open(2, b"/h/dst", WRITE_CREATE),
            copy.clone(),
            copy,
            close(4, 1),
            close(5, 0),
        ]
        .concat();
        let replies = [
            version(),
            handle_reply(1, 0),
            handle_reply(2, 1),
            status(3, FX_OK),
            status(3, FX_OK),
            status(4, FX_OK),
            status(5, FX_OK),
        ]
        .concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 13);
        let events = events(&out);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Copy);
        assert_eq!(events[0].path, b"/h/dst");
        assert_eq!(events[0].target.as_deref(), Some(&b"/h/src"[..]));
        assert_eq!((events[0].bytes_read, events[0].bytes_written), (0, 0));
        assert_eq!(files(&out)[0].counts_as, ClosedAs::Copy);
        assert_eq!(tap.totals, Totals::default());
    }

    #[test]
    fn a_file_copied_into_and_then_read_is_a_download() {
        let requests = [
            init(),
            open(1, b"/h/empty", 0x01),
            open(2, b"/h/invoice-42.xml", 0x03),
            copy_data(3, 0, 0, 1),
            read(4, 1),
            read(5, 1),
            close(6, 1),
        ]
        .concat();
        let replies = [
            version(),
            handle_reply(1, 0),
            handle_reply(2, 1),
            status(3, FX_OK),
            data(4, 500),
            status(5, FX_EOF),
            status(6, FX_OK),
        ]
        .concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 11);
        let file = files(&out)[0];
        assert_eq!((file.counts_as, file.bytes_read), (ClosedAs::Download, 500));
        assert_eq!(file.other, None);
        assert_eq!(events(&out)[0].kind, EventKind::Download);
        assert_eq!(tap.totals.bytes_downloaded, 500);
    }

    #[test]
    fn relative_and_absolute_names_are_one_name_in_sftp_servers_directory() {
        let requests = [
            init(),
            packet(
                SYMLINK,
                &[&u32b(1), &string(b"invoice-42.xml"), &string(b"x")],
            ),
            packet(
                EXTENDED,
                &[
                    &u32b(2),
                    &string(b"hardlink@openssh.com"),
                    &string(b"/h/invoice-7.xml"),
                    &string(b"out/y"),
                ],
            ),
            open(3, b"/h/x", 0x01),
            open(4, b"x", 0x01),
            open(5, b"/h/out/y", 0x01),
            read(6, 0),
            read(7, 1),
            read(8, 2),
        ]
        .concat();
        let replies = [
            version(),
            status(1, FX_OK),
            status(2, FX_OK),
            handle_reply(3, 0),
            handle_reply(4, 1),
            handle_reply(5, 2),
            data(6, 1),
            data(7, 1),
            data(8, 1),
        ]
        .concat();
        let mut tap = Tap::new(true, Some((b"/h".to_vec(), None)));
        let out = run(&mut tap, &requests, &replies, 5);
        let reached: Vec<Option<&[u8]>> = files(&out)
            .iter()
            .map(|f| match &f.other {
                Some(OtherFile::Reached(to)) => Some(to.bytes.as_slice()),
                _ => None,
            })
            .collect();
        assert_eq!(
            reached,
            [
                Some(&b"/h/invoice-42.xml"[..]),
                Some(b"/h/invoice-42.xml"),
                Some(b"/h/invoice-7.xml"),
            ]
        );
    }

    #[test]
    fn a_file_opened_through_a_link_that_worked_names_the_file_it_reached() {
        let symlink = |id: u32, target: &[u8], link: &[u8]| {
            packet(SYMLINK, &[&u32b(id), &string(target), &string(link)])
        };
        let stat = packet(STAT, &[&u32b(4), &string(b"/h/missing")]);
        let remove = packet(REMOVE, &[&u32b(6), &string(b"/h/l")]);
        let rename = |id: u32, old: &[u8], new: &[u8]| {
            packet(RENAME, &[&u32b(id), &string(old), &string(new)])
        };
        let requests = [
            init(),
            symlink(1, b"invoice-42.xml", b"/h/l"),
            // Refused: no name made.
            symlink(2, b"/etc/shadow", b"/h/x"),
            rename(3, b"/h/invoice-7.xml", b"/h/seven"),
            // A failure right after a link that worked answers another request.
            stat,
            open(5, b"/h/l", 0x01),
            // Removed while open: the open file is still the one it reached.
            remove,
            open(7, b"/h/x", 0x01),
            open(8, b"/h/seven", 0x01),
            read(9, 0),
            read(10, 1),
            read(11, 2),
            close(12, 0),
            close(13, 1),
            close(14, 2),
            open(15, b"/h/up.filepart", WRITE_CREATE),
            write(16, &handle(0), &[1; 9]),
            close(17, 0),
            rename(18, b"/h/up.filepart", b"/h/l"),
            open(19, b"/h/l", 0x01),
            read(20, 0),
            close(21, 0),
        ]
        .concat();
        let replies = [
            version(),
            status(1, FX_OK),
            status(2, 3),
            status(3, FX_OK),
            status(4, 2),
            handle_reply(5, 0),
            status(6, FX_OK),
            handle_reply(7, 1),
            handle_reply(8, 2),
            data(9, 10),
            data(10, 20),
            data(11, 30),
            status(12, FX_OK),
            status(13, FX_OK),
            status(14, FX_OK),
            handle_reply(15, 0),
            status(16, FX_OK),
            status(17, FX_OK),
            status(18, FX_OK),
            handle_reply(19, 0),
            data(20, 9),
            status(21, FX_OK),
        ]
        .concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 9);
        let reached: Vec<(&[u8], Option<&[u8]>)> = files(&out)
            .iter()
            .map(|f| {
                let reached = match &f.other {
                    Some(OtherFile::Reached(to)) => Some(to.bytes.as_slice()),
                    _ => None,
                };
                (f.path.bytes.as_slice(), reached)
            })
            .collect();
        assert_eq!(
            reached,
            [
                (&b"/h/l"[..], Some(&b"/h/invoice-42.xml"[..])),
                (b"/h/x", None),
                (b"/h/seven", Some(b"/h/invoice-7.xml")),
                (b"/h/up.filepart", None),
                // An upload renamed right after its close is a file of its new name.
                (b"/h/l", None),
            ]
        );
    }

    #[test]
    fn links_fire_with_both_names() {
        let requests = [
            init(),
            packet(
                SYMLINK,
                &[&u32b(1), &string(b"/etc/passwd"), &string(b"/h/pw")],
            ),
            packet(
                EXTENDED,
                &[
                    &u32b(2),
                    &string(b"hardlink@openssh.com"),
                    &string(b"/h/invoice-42.xml"),
                    &string(b"/h/inbox/order.xml"),
                ],
            ),
        ]
        .concat();
        let replies = [version(), status(1, FX_OK), status(2, FX_OK)].concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 100);
        let events = events(&out);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, EventKind::Link);
        assert_eq!(events[0].path, b"/h/pw");
        assert_eq!(events[0].target.as_deref(), Some(&b"/etc/passwd"[..]));
        assert_eq!(events[0].link_kind.as_deref(), Some("symlink"));
        assert_eq!(events[1].path, b"/h/inbox/order.xml");
        assert_eq!(events[1].link_kind.as_deref(), Some("hardlink"));
    }

    #[test]
    fn a_filepart_upload_fires_once_renamed_and_only_if_the_rename_worked() {
        let requests = [
            init(),
            open(1, b"/h/r.xml.filepart", WRITE_CREATE),
            write(2, &handle(0), &[1; 42]),
            close(3, 0),
            packet(
                RENAME,
                &[
                    &u32b(4),
                    &string(b"/h/r.xml.filepart"),
                    &string(b"/h/r.xml"),
                ],
            ),
            open(5, b"/h/s.xml.filepart", WRITE_CREATE),
            close(6, 0),
            packet(
                EXTENDED,
                &[
                    &u32b(7),
                    &string(b"posix-rename@openssh.com"),
                    &string(b"/h/s.xml.filepart"),
                    &string(b"/other/s.xml"),
                ],
            ),
        ]
        .concat();
        let replies = [
            version(),
            handle_reply(1, 0),
            status(2, FX_OK),
            status(3, FX_OK),
            status(4, FX_OK),
            handle_reply(5, 0),
            status(6, FX_OK),
            status(7, 3),
        ]
        .concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 17);
        let events = events(&out);
        let seen: Vec<(EventKind, &[u8])> =
            events.iter().map(|e| (e.kind, e.path.as_slice())).collect();
        assert_eq!(
            seen,
            [
                (EventKind::Upload, &b"/h/r.xml"[..]),
                (EventKind::Rename, b"/h/r.xml.filepart"),
                // Its rename was refused: it fires under its own name at the end.
                (EventKind::Upload, b"/h/s.xml.filepart"),
            ]
        );
        assert_eq!(
            events[0].uploaded_as.as_deref(),
            Some(&b"/h/r.xml.filepart"[..])
        );
        assert_eq!(events[0].bytes_written, 42);
    }

    #[test]
    fn handles_sftp_server_does_not_issue_are_never_stored_and_never_blind_the_tap() {
        let big = string(&vec![0xaa; 250_000]);
        let mut requests = init();
        for id in 1..=20 {
            requests.extend(write(id, &big, b"x"));
        }
        requests.extend(open(21, b"/h/after", WRITE_CREATE));
        requests.extend(write(22, &handle(0), &[0; 10]));
        requests.extend(close(23, 0));
        let mut replies = version();
        for id in 1..=20 {
            replies.extend(status(id, 4));
        }
        replies.extend(handle_reply(21, 0));
        replies.extend(status(22, FX_OK));
        replies.extend(status(23, FX_OK));
        let mut tap = Tap::new(true, None);
        let mut framer = Framer::default();
        for part in requests.chunks(65536) {
            framer.feed(part, request_need, |p, len| tap.on_request(p, len));
        }
        // Twenty requests wait, holding nothing of their handles.
        assert_eq!(tap.pending.len(), 24);
        assert_eq!(tap.pending_name_bytes, b"/h/after".len());
        let mut framer = Framer::default();
        let mut out = Vec::new();
        framer.feed(&replies, reply_need, |p, _| {
            out.extend(tap.on_reply(p, Instant::now()))
        });
        assert!(tap.following());
        let events = events(&out);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].bytes_written, 10);
    }

    #[test]
    fn the_cap_is_reached_by_count_and_by_name_bytes() {
        let mut tap = Tap::new(true, None);
        tap.on_request(&init()[4..], 5);
        for id in 0..PENDING_MAX as u32 - 1 {
            assert!(!tap.full());
            let p = read(id, 0);
            tap.on_request(&p[4..], p.len() as u32 - 4);
        }
        assert!(tap.full());
        let mut tap = Tap::new(true, None);
        tap.on_request(&init()[4..], 5);
        let name = vec![b'a'; 200_000];
        for id in 0..6 {
            let p = packet(REMOVE, &[&u32b(id), &string(&name)]);
            tap.on_request(&p[4..], p.len() as u32 - 4);
        }
        assert!(tap.full());
    }

    #[test]
    fn an_answer_out_of_order_stops_the_tap_and_drops_what_it_followed() {
        let requests = [init(), open(1, b"/h/a", WRITE_CREATE), close(2, 0)].concat();
        let replies = [version(), handle_reply(1, 0), status(9, FX_OK)].concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 64);
        assert!(!tap.following());
        assert_eq!(
            out,
            [Output::Dropped(
                "close",
                b"/h/a".to_vec(),
                DropReason::TapLost
            )]
        );
    }

    #[test]
    fn unanswered_types_and_requests_before_init_wait_for_nothing() {
        let requests = [
            open(1, b"/h/early", WRITE_CREATE),
            init(),
            packet(42, &[&u32b(1)]),
            packet(VERSION, &[&u32b(1)]),
            open(2, b"/h/f", WRITE_CREATE),
            close(3, 0),
        ]
        .concat();
        let replies = [version(), handle_reply(2, 0), status(3, FX_OK)].concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 3);
        assert!(tap.following());
        assert_eq!(events(&out).len(), 1);
    }

    #[test]
    fn a_request_read_past_its_end_is_never_taken_as_what_it_seems() {
        // A remove whose name runs into the next packet: sftp-server reads on, answers, exits.
        let mut cut = packet(REMOVE, &[&u32b(1), &string(b"/h/victim")]);
        let len = cut.len() as u32 - 4 - 3;
        cut[..4].copy_from_slice(&len.to_be_bytes());
        cut.truncate(cut.len() - 3);
        let requests = [init(), cut, b"\0\0\0".to_vec()].concat();
        let replies = [version(), status(1, FX_OK)].concat();
        let mut tap = Tap::new(true, None);
        let out = run(&mut tap, &requests, &replies, 4);
        assert!(events(&out).is_empty());
        assert_eq!(
            out,
            [Output::Dropped(
                "request",
                Vec::new(),
                DropReason::UnreadableRequest
            )]
        );
    }

    proptest! {
        /// Whatever the bytes and however they are split, the framer and the tap never panic,
        /// the framer finds the same packets in any split, and the waiting requests hold no
        /// more than the cap and one read's worth.
        #[test]
        fn any_bytes_in_any_split(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            chunk in 1usize..64,
        ) {
            let collect = |chunk: usize| {
                let mut framer = Framer::default();
                let mut packets = Vec::new();
                for part in bytes.chunks(chunk) {
                    framer.feed(part, request_need, |p, len| packets.push((p.to_vec(), len)));
                }
                packets
            };
            prop_assert_eq!(collect(chunk), collect(bytes.len().max(1)));
            let mut tap = Tap::new(true, None);
            let requests = [init(), bytes.clone()].concat();
            run(&mut tap, &requests, &bytes, chunk);
            prop_assert!(tap.pending_name_bytes <= PENDING_NAME_BYTES_MAX + requests.len());
        }

        /// A well-formed exchange of uploads, whatever the sizes and the split, totals exactly
        /// the bytes of the writes answered OK.
        #[test]
        fn totals_are_the_writes_answered_ok(
            writes in proptest::collection::vec((1usize..3000, any::<bool>()), 1..20),
            chunk in 1usize..200,
        ) {
            let mut requests = [init(), open(1, b"/h/f", WRITE_CREATE)].concat();
            let mut replies = [version(), handle_reply(1, 0)].concat();
            let mut expected = 0u64;
            for (i, (len, ok)) in writes.iter().enumerate() {
                requests.extend(write(2 + i as u32, &handle(0), &vec![0; *len]));
                replies.extend(status(2 + i as u32, if *ok { FX_OK } else { 4 }));
                if *ok {
                    expected += *len as u64;
                }
            }
            requests.extend(close(100, 0));
            replies.extend(status(100, FX_OK));
            let mut tap = Tap::new(true, None);
            let out = run(&mut tap, &requests, &replies, chunk);
            let all_ok = writes.iter().all(|(_, ok)| *ok);
            prop_assert_eq!(tap.totals.bytes_uploaded, expected);
            prop_assert_eq!(files(&out)[0].complete, all_ok);
        }
    }
}
