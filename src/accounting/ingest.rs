//! Turning syslog files into rows: the session state machine, per-file checkpoints, batches.
//!
//! All state that must survive between runs (open sessions, open transfers) lives in the
//! database; the maps here are caches of it, rebuilt at start. Each batch of lines is one
//! transaction that also moves the file's checkpoint, so a crash leaves the database as it was
//! before the batch, and a re-run continues from the last committed checkpoint.

use crate::accounting::journal::{self, JournalEntry, JournalSource};
use crate::accounting::storage::{
    Checkpoint, EndReason, IngestStore, LastOp, NewOperation, NewSession, NewTransfer,
    OpenTransfer, OperationKind, SessionEnd, SessionOrigin, SessionSource, StoreError, Writer,
    sid_key,
};
use crate::accounting::{IdMap, IdSet};
use crate::log::parse::{self, Micros, Record, SftpEvent};
use crate::log::reach::{self, Names, RECENT_CLOSES};
use crate::log::transfer::{ClosedFile, CountsAs, Direction, classify_close, classify_cut_close};
use crate::log::wrapper::{ClosedAs, ExitOutcome, FileRecord, OtherFile, WrapperLine};
use chrono::{DateTime, Local};
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// Wraps an I/O error met reading `path`.
    fn reading(path: &str) -> impl Fn(std::io::Error) -> IngestError + Copy {
        move |source| IngestError::Read {
            path: path.to_owned(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, IngestError>;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Host name for lines that carry none.
    pub host_default: String,
    /// The wrapper's syslog ident (`syslog.ident`).
    pub wrapper_ident: String,
    /// Lines per transaction.
    pub batch_lines: usize,
    /// Show a progress bar on a terminal for large inputs.
    pub progress: bool,
    /// Take files whose lines are older than what is already ingested (`--rebuild` reads in
    /// order on a forgotten host; tests of the order logic).
    pub any_order: bool,
}

impl IngestOptions {
    /// Lines per transaction. Each commit stalls the ingest (the last batch written while
    /// nothing is parsed, WAL pages copied into the database), so fewer, larger batches are
    /// faster; a crash costs re-reading one batch, about 30 MB of log at 250,000 lines.
    pub const fn default_batch_lines() -> usize {
        250_000
    }
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            host_default: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".to_owned()),
            wrapper_ident: "sftpd-wrapper".to_owned(),
            batch_lines: IngestOptions::default_batch_lines(),
            progress: false,
            any_order: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub lines_read: u64,
    /// Lines before a file's checkpoint: read by an earlier run.
    pub lines_already_ingested: u64,
    pub parsed: u64,
    pub skipped: u64,
    /// Lines not billed because they are older than what was already ingested from their host
    /// (each run of them said in an error line).
    pub refused: u64,
    pub sessions: u64,
    pub transfers: u64,
    /// Transfers whose close line was cut: recorded with unknown byte counts.
    pub counters_unknown: u64,
    /// Skipped lines of a known program that were not taken, by why (an unknown message is
    /// not counted here).
    pub skipped_because: std::collections::BTreeMap<&'static str, u64>,
    /// Journal entries that claimed to be the wrapper's, sftp-server's or sshd's and were not, or
    /// that the journal cannot tell.
    pub forged: u64,
    /// The first few of them, said in words.
    pub forged_examples: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "files {}, lines read {}, parsed {}, skipped {}, already ingested {}, sessions {}, transfers {}",
            self.files,
            self.lines_read,
            self.parsed,
            self.skipped,
            self.lines_already_ingested,
            self.sessions,
            self.transfers
        )?;
        if self.counters_unknown > 0 {
            write!(
                f,
                ", transfers with unknown byte counts (close line cut) {}",
                self.counters_unknown
            )?;
        }
        if self.refused > 0 {
            write!(
                f,
                "; not billed {}: older than what is already ingested",
                self.refused
            )?;
        }
        for (reason, n) in &self.skipped_because {
            write!(f, "; skipped {n}: {reason}")?;
        }
        if self.forged > 0 {
            write!(
                f,
                "; not billed {}: not written by the program they name ({})",
                self.forged,
                self.forged_examples.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The status text that undoes a link or rename right before it: what sftp-server answers when
/// link(2), symlink(2) or its rename's link(2) find the name taken (EEXIST), and what no
/// request OpenSSH's or other usual clients send after a link answers (a `stat` of a missing
/// name is `No such file`, of a forbidden one `Permission denied`). The log does not say which
/// request a status answered, so this is the one status taken as the link's own: a link that
/// failed otherwise made no name a later open could use, and a partner's `ls missing` right
/// after a link must not hide it. A raw client can still send a request that fails this way
/// (a read on a handle that does not exist); capture mode follows the answers themselves.
const NAME_TAKEN: &str = "Failure";

/// A rename that gave a transfer closed a moment ago its new name (`renamed_to`).
struct RenamedFile {
    op: i64,
    transfer: i64,
}

/// What an operation line says, for [`Ingestor::session_operation`].
struct Op<'a> {
    kind: OperationKind,
    path: Option<&'a [u8]>,
    target: Option<&'a [u8]>,
    detail: Option<&'a str>,
}

impl<'a> Op<'a> {
    /// An operation on one name, with no target or detail.
    fn on(kind: OperationKind, path: &'a [u8]) -> Op<'a> {
        Op {
            kind,
            path: Some(path),
            target: None,
            detail: None,
        }
    }
}

/// A session's open files, by name: a close finds its open at once however many opens are
/// waiting (200,000 failed opens in one session, which are never closed, must not make every
/// close a scan).
#[derive(Debug, Default)]
struct OpenFiles {
    by_path: HashMap<Vec<u8>, VecDeque<OpenTransfer>>,
    /// Open transfers a failure answered since they were put here: its text and time.
    failed: IdMap<i64, (String, Micros)>,
}

impl OpenFiles {
    fn push(&mut self, t: OpenTransfer) {
        self.by_path.entry(t.path.clone()).or_default().push_back(t);
    }

    /// The open of `path` that a close line closes: the latest one a failure did not answer
    /// (a client that retries an open that failed, curl after creating the missing directory,
    /// closes the one that worked), else the latest. At `-l info` a failure status follows every
    /// failed request, logged or not (a `stat` of a missing name): one after an open that is
    /// closed later answered another request, so the close proves the open worked.
    fn take_path(&mut self, path: &[u8]) -> Option<OpenTransfer> {
        let queue = self.by_path.get_mut(path)?;
        let at = queue
            .iter()
            .rposition(|t| !t.failed && !self.failed.contains_key(&t.id))
            .unwrap_or(queue.len().checked_sub(1)?);
        let mut t = queue.remove(at)?;
        if queue.is_empty() {
            self.by_path.remove(path);
        }
        self.failed.remove(&t.id);
        t.failed = false;
        Some(t)
    }

    /// Takes every open not closed, with the failure that answered it: at sftp-server's own
    /// end, which logs a `forced close` for each file still open, these are the opens that
    /// failed.
    fn take_all(&mut self) -> Vec<(OpenTransfer, Option<(String, Micros)>)> {
        let mut failed = std::mem::take(&mut self.failed);
        let mut all: Vec<(OpenTransfer, Option<(String, Micros)>)> = self
            .by_path
            .drain()
            .flat_map(|(_, q)| q)
            .map(|t| {
                let why = failed.remove(&t.id);
                (t, why)
            })
            .collect();
        all.sort_unstable_by_key(|(t, _)| t.id);
        all
    }

    /// The earliest open that `matches` (a scan: for the rare cut close).
    fn take_first(&mut self, matches: impl Fn(&OpenTransfer) -> bool) -> Option<OpenTransfer> {
        let path = self
            .by_path
            .values()
            .flatten()
            .filter(|t| matches(t))
            .min_by_key(|t| t.id)?
            .path
            .clone();
        self.take_path(&path)
    }

    fn mark_failed(&mut self, id: i64, text: &str, at: Micros) {
        self.failed.insert(id, (text.to_owned(), at));
    }

    fn extend(&mut self, other: OpenFiles) {
        for t in other.by_path.into_values().flatten() {
            self.push(t);
        }
        self.failed.extend(other.failed);
    }
}

#[derive(Debug, Clone)]
struct SessionState {
    host: String,
    user: Option<String>,
    wrapper: bool,
    sid: Option<String>,
    sftp_pid: Option<i64>,
    sftp_closed: bool,
    started_at: Micros,
    /// Ended, but kept for [`LATE_LINE_GRACE`]: a wrapper session whose sftp-server lines may
    /// still follow, or a plain session the wrapper's `sftp-server started` may still claim.
    ended: bool,
    /// Capture mode (`transfers=wire`, or a `file closed` line): the session's transfers are
    /// the wrapper's `file closed` lines, and sftp-server's open and close lines make none.
    wire: bool,
    /// Transfers from sftp-server's open and close lines may be stored for it (made before it
    /// was known to be `wire`, or in an earlier run): to be deleted once it is.
    log_rows: bool,
    /// Its lines come from the journal, not a file: the same session's lines from the other
    /// are a copy (local5 reaches both on Debian), not applied.
    journal: bool,
}

/// An input with new lines, none of which was understood: the wrong format or facility.
#[derive(Debug, Clone)]
pub struct NotUnderstood {
    pub name: String,
    pub lines: u64,
    /// Its first line, as read.
    pub first_line: Vec<u8>,
}

/// One input: a path, or `-` for stdin.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
}

/// How often follow mode looks for new lines: well within the second it promises.
pub(crate) const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// A file follow mode reads: the open file (which a rotation may have renamed) and where
/// reading it stands.
struct Followed {
    name: String,
    file: Option<File>,
    pos: Option<FilePosition>,
    /// Files renamed away from `name`, still read until they have been idle for
    /// [`ROTATED_IDLE`]: the writer appends to the renamed file until it reopens the path.
    rotated: Vec<Rotated>,
    /// The files a rotation made of `name` are to be read to their end before the file at
    /// `name` is read on: at the start, and after every change of the file at `name`.
    look_back: bool,
}

struct Rotated {
    name: String,
    file: File,
    pos: FilePosition,
    last_growth: std::time::Instant,
}

/// How long a file renamed away from a followed path is still read after its last new line.
/// rsyslog reopens the path when logrotate's postrotate signals it, moments after the rename;
/// a writer that is slower loses nothing either: the file is read to its end at the next
/// start or rotation while it is the previous file (`NAME.1`, `NAME.1.gz`, the newest dated
/// one).
const ROTATED_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// The files logrotate makes of `name` at its latest rotation: `NAME.1` and `NAME.1.gz`, and the
/// latest of the `dateext` names, `NAME-` (or `NAME.`, `NAME_`) followed by a date of digits,
/// `-`, `_` and `.` (a `dateformat` that sorts by time, as the default `-%Y%m%d` does), with or
/// without `.gz`. (Compressing an older one gives it a newer modification time: the name
/// tells which is the latest.)
fn predecessors(name: &str) -> Vec<String> {
    let path = Path::new(name);
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|b| b.to_str())) else {
        return Vec::new();
    };
    let mut found: Vec<String> = [format!("{name}.1"), format!("{name}.1.gz")]
        .into_iter()
        .filter(|p| Path::new(p).is_file())
        .collect();
    let dir_path = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir_path) else {
        return found;
    };
    // (stem, path) of each dated name.
    let mut dated: Vec<(String, String)> = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(base)) else {
            continue;
        };
        let stem = rest.strip_suffix(".gz").unwrap_or(rest);
        let Some(date) = stem.strip_prefix(['-', '.', '_']) else {
            continue;
        };
        let digits = date.bytes().filter(u8::is_ascii_digit).count();
        if digits < 6
            || !date
                .bytes()
                .all(|b| b.is_ascii_digit() || b"-_.".contains(&b))
        {
            continue;
        }
        if !entry.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let full = dir.join(&file_name).display().to_string();
        dated.push((stem.to_owned(), full));
    }
    dated.sort();
    let latest = dated.last().map(|(stem, _)| stem.clone());
    let of_latest = dated
        .into_iter()
        .filter(|(stem, _)| Some(stem) == latest.as_ref());
    found.extend(of_latest.map(|(_, p)| p));
    found
}

/// Whether the file at `path` still begins with the line whose hash is `hash` (a file
/// truncated and written again does not).
fn starts_with_line(path: &str, hash: &str) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut line = Vec::new();
    match BufReader::new(file).read_until(b'\n', &mut line) {
        Ok(n) if n > 0 && line.ends_with(b"\n") => first_line_hash(&line) == hash,
        _ => false,
    }
}

/// The hash of `file`'s first complete line (read where it is, without moving its offset).
fn first_line_hash_at(file: &File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut line = Vec::new();
    let mut chunk = [0u8; 8192];
    while line.len() < 1 << 20 {
        let n = file.read_at(&mut chunk, line.len() as u64).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..=end]);
            return Some(first_line_hash(&line));
        }
        line.extend_from_slice(&chunk[..n]);
    }
    None
}

/// Where reading a file stands, and what its next checkpoint is made of.
struct FilePosition {
    hash: String,
    /// SHA-256 over every byte before `offset`.
    prefix: Sha256,
    /// Just past the last complete line read.
    offset: u64,
    lines: i64,
    /// The file's checkpoint in the database now.
    saved: Option<Checkpoint>,
    inode: Option<i64>,
    /// Where the check of the input's lines against what is already ingested stands.
    order: Order,
    /// The input goes on from its own checkpoint: its lines are never refused as out of order.
    carries_on: bool,
    /// The latest instant a line of the input named (for local times a fall back repeats).
    last_at: Option<Micros>,
}

/// The order check of an input's new lines, made on its first line with a time.
enum Order {
    Unchecked,
    /// Lines older than what was already ingested from the host, not applied until one is not.
    Refusing(Refusal),
    Checked,
}

struct Refusal {
    host: String,
    latest: Micros,
    first: Micros,
    last: Micros,
    lines: u64,
    /// How many of them an error line has named.
    reported: u64,
}

pub struct Ingestor<'a> {
    /// The store, and the rows held back for its next batch.
    out: Writer<'a>,
    /// The summary's lines read, skipped and refused at the last commit: what the ingest
    /// counters hold.
    committed_counts: (u64, u64, u64),
    opts: IngestOptions,
    sessions: IdMap<i64, SessionState>,
    /// Wrapper sessions by [`sid_key`] (host up to its first dot, session id).
    by_sid: IdMap<(String, String), i64>,
    /// Wrapper sessions (whether read from the journal, host, sid) whose lines are a copy of a
    /// session the other source brought (the journal and a file both get local5), with their
    /// sftp-server's PID once known: their lines are not billed again.
    replayed: IdMap<(bool, String, String), Option<i64>>,
    /// The sftp-server processes of those sessions by (whether read from the journal, host,
    /// PID): their lines are not billed again either, while the session lasts (`None`) and up
    /// to the time given after its end.
    replayed_sftp: IdMap<(bool, String, i64), Option<Micros>>,
    /// The line being applied was read from the journal, not a file.
    reading_journal: bool,
    by_sftp_pid: IdMap<(String, i64), i64>,
    /// Open transfers by session.
    open_transfers: IdMap<i64, OpenFiles>,
    /// What each session's next `sent status` answers; `None`: nothing that is recorded.
    last_op: IdMap<i64, Option<LastOp>>,
    /// Each session's last few closed files (transfer id, name, an upload), for a rename that
    /// follows.
    recent_closes: IdMap<i64, VecDeque<(i64, Vec<u8>, bool)>>,
    /// A rename that named a transfer's new name, by session: to be undone when a failure
    /// answers the rename.
    renamed: IdMap<i64, RenamedFile>,
    /// The names each session's links and renames made, for the file a transfer reached.
    names: IdMap<i64, Names>,
    /// What the session's last link or rename changed in `names`, by session: (the operation,
    /// what to put back if the status that answers it says the name was taken).
    names_undo: IdMap<i64, (i64, reach::Undo)>,
    /// Sessions whose `last_op` changed since the last commit.
    last_op_dirty: IdSet<i64>,
    /// The time of the last `Accepted` line, to prune the unclaimed ones.
    last_line_at: Option<Micros>,
    /// This machine's zone, for the stamps without one, a minute at a time.
    local_minutes: parse::ZoneMinutes<Local>,
    /// Plain sftp-server sessions closed moments ago (and still in `sessions`), by (host, PID).
    closed_plain: IdMap<(String, i64), i64>,
    /// When each ended session is let go of, oldest first.
    expiring: VecDeque<(Micros, i64)>,
    /// The input being read is finished (compressed): its last line needs no newline.
    finished: bool,
    /// A read error met after lines of the input were applied: said once they are committed.
    read_error: Option<IngestError>,
    /// The first line of the current input that was skipped.
    first_skipped: Option<Vec<u8>>,
    /// Inputs with new lines of which none was understood.
    pub not_understood: Vec<NotUnderstood>,
    /// The session the last applied line belonged to (for the journal's origin fields).
    touched: Option<i64>,
    /// Sessions whose origin was recorded in this run.
    origin_set: IdSet<i64>,
    /// The open sessions in memory are the database's: loaded under the ingest lock held since.
    state_fresh: bool,
    pub summary: Summary,
}

/// How long after a session's end its other process's lines are still taken as part of it.
/// Two processes' lines can reach the log file out of order (rsyslog's queue workers, relays), and
/// a wrapper starved by a busy CPU can log `sftp-server started` after sftp-server's whole session.
const LATE_LINE_GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// How long an sshd `Accepted` line waits for its session before it is forgotten.
const PENDING_AUTH_KEEP: chrono::Duration = chrono::Duration::hours(1);

impl<'a> Ingestor<'a> {
    /// Loads what earlier runs left open.
    pub fn new(store: &'a mut dyn IngestStore, opts: IngestOptions) -> Result<Ingestor<'a>> {
        let mut ing = Ingestor {
            sessions: IdMap::default(),
            by_sid: IdMap::default(),
            replayed: IdMap::default(),
            replayed_sftp: IdMap::default(),
            reading_journal: false,
            by_sftp_pid: IdMap::default(),
            open_transfers: IdMap::default(),
            last_op: IdMap::default(),
            recent_closes: IdMap::default(),
            renamed: IdMap::default(),
            names: IdMap::default(),
            names_undo: IdMap::default(),
            last_op_dirty: IdSet::default(),
            last_line_at: None,
            local_minutes: parse::ZoneMinutes::new(Local),
            closed_plain: IdMap::default(),
            expiring: VecDeque::new(),
            finished: false,
            read_error: None,
            first_skipped: None,
            not_understood: Vec::new(),
            touched: None,
            origin_set: IdSet::default(),
            state_fresh: true,
            summary: Summary::default(),
            committed_counts: (0, 0, 0),
            opts,
            out: Writer::new(store),
        };
        ing.load_state()?;
        Ok(ing)
    }

    /// Loads the sessions and transfers the database holds open, beside the ones already in
    /// memory (ended sessions still waiting for late lines).
    fn load_state(&mut self) -> Result<()> {
        let mut loaded = IdSet::default();
        for s in self.out.flushed()?.open_sessions()? {
            if self.sessions.contains_key(&s.id) {
                continue;
            }
            loaded.insert(s.id);
            if let Some(op) = s.last_op {
                self.last_op.insert(s.id, Some(op));
            }
            if let Some(sid) = &s.sid {
                self.by_sid.insert(sid_key(&s.host, sid), s.id);
            }
            if let (Some(pid), false) = (s.sftp_pid, s.sftp_closed) {
                self.by_sftp_pid.insert((s.host.clone(), pid), s.id);
            }
            self.sessions.insert(
                s.id,
                SessionState {
                    host: s.host,
                    user: s.user,
                    wrapper: s.source == SessionSource::Wrapper,
                    sid: s.sid,
                    sftp_pid: s.sftp_pid,
                    sftp_closed: s.sftp_closed,
                    started_at: s.started_at,
                    ended: false,
                    wire: s.wire,
                    // A session not known to be `wire` may be one whose `file closed` lines
                    // are all still to come, after sftp-server lines this run reads first.
                    log_rows: !s.wire,
                    journal: s.journal,
                },
            );
        }
        for t in self.out.open_transfers()? {
            if self.sessions.get(&t.session_id).is_some_and(|s| s.ended) {
                continue;
            }
            self.open_transfers.entry(t.session_id).or_default().push(t);
        }
        // The names the sessions' links and renames made, as the runs that read them left them.
        for op in self.out.flushed()?.open_name_operations()? {
            if !loaded.contains(&op.session_id) {
                continue;
            }
            let names = self.names.entry(op.session_id).or_default();
            let target = op.target.as_deref().unwrap_or_default();
            let undo = match op.kind {
                OperationKind::Remove | OperationKind::Rmdir => {
                    names.forget(&[&op.path]);
                    continue;
                }
                _ if op.status.as_deref() == Some(NAME_TAKEN) => continue,
                OperationKind::Symlink => names.symlink(target, &op.path),
                OperationKind::Hardlink => names.link(target, &op.path, false),
                _ => names.renamed(&op.path, target, op.renamed_upload),
            };
            // Its answer may be in the lines still to read.
            if self.last_op.get(&op.session_id) == Some(&Some(LastOp::Operation(op.id))) {
                self.names_undo.insert(op.session_id, (op.id, undo));
            }
        }
        Ok(())
    }

    /// Another writer (a batch ingest of a followed file, another follower) moved on from where
    /// this one stopped: what it read may have started, changed or ended sessions this one holds
    /// in memory, and the lines after it would otherwise make new sessions of their rest. Takes
    /// the database's open sessions and transfers again; keeps the ended sessions that wait for
    /// late lines (the database holds them as ended).
    fn reload_state(&mut self) -> Result<()> {
        self.sessions.retain(|_, s| s.ended);
        let kept = &self.sessions;
        self.by_sid.retain(|_, id| kept.contains_key(id));
        self.by_sftp_pid.retain(|_, id| kept.contains_key(id));
        self.open_transfers.retain(|id, _| kept.contains_key(id));
        self.last_op.retain(|id, _| kept.contains_key(id));
        self.last_op_dirty.retain(|id| kept.contains_key(id));
        self.recent_closes.retain(|id, _| kept.contains_key(id));
        self.renamed.retain(|id, _| kept.contains_key(id));
        self.names.retain(|id, _| kept.contains_key(id));
        self.names_undo.retain(|id, _| kept.contains_key(id));
        self.state_fresh = true;
        self.load_state()
    }

    /// Ingests the inputs, oldest first (by their first line), each from its checkpoint on.
    pub(crate) fn ingest_inputs(&mut self, inputs: &[Input]) -> Result<()> {
        let mut ordered: Vec<(Option<Micros>, usize, &Input)> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let first = if input.name == "-" {
                None
            } else {
                first_line_time(&input.name)?
            };
            ordered.push((first, i, input));
        }
        // Files with a known first timestamp in time order; the rest (and stdin) after, as given.
        ordered.sort_by_key(|(t, i, _)| (t.is_none(), *t, *i));
        for (_, _, input) in ordered {
            if input.name == "-" {
                self.summary.files += 1;
                let stdin = Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()));
                self.ingest_reader(stdin, None, &input.name, Local::now(), None, None)?;
            } else {
                let file = File::open(&input.name).map_err(IngestError::reading(&input.name))?;
                self.ingest_file(&input.name, &file)?;
            }
        }
        Ok(())
    }

    /// Ingests the open file `file` (named `name`) from its checkpoint on; returns where its
    /// complete lines end, for follow mode to go on from.
    fn ingest_file(&mut self, name: &str, file: &File) -> Result<Option<FilePosition>> {
        let read_err = IngestError::reading(name);
        let meta = file.metadata().map_err(read_err)?;
        let mtime = meta
            .modified()
            .map(DateTime::<Local>::from)
            .unwrap_or_else(|_| Local::now());
        // The same open file, not the path again: a rotation may have put another file there.
        let again = file.try_clone().map_err(read_err)?;
        let (reader, compressed) =
            open_maybe_gz(file.try_clone().map_err(read_err)?).map_err(read_err)?;
        let mut reopen = || -> std::io::Result<Box<dyn BufRead>> {
            let mut file = again.try_clone()?;
            file.seek(SeekFrom::Start(0))?;
            Ok(open_maybe_gz(file)?.0)
        };
        // A compressed file is finished: its last line counts without a newline. A plain file
        // may still be growing, and its last line is left for the next run.
        self.finished = compressed;
        self.summary.files += 1;
        self.ingest_reader_at(
            reader,
            Some(&mut reopen),
            name,
            mtime,
            Some(meta.ino() as i64),
            Some(meta.len()),
        )
    }

    /// Reads complete lines from `reader`. A last line without its newline (the syslog daemon
    /// is still writing it) is left for the next run, unless the input is finished (compressed).
    ///
    /// A file goes on from the checkpoint of an earlier run only when its bytes up to there hash
    /// the same as that run's: files that share a first line are different files. Deciding that
    /// means reading up to the checkpoint first; when it was not this file's, `reopen` gives the
    /// input again from its start (without it, that is an error).
    pub fn ingest_reader(
        &mut self,
        reader: Box<dyn BufRead>,
        reopen: Option<&mut dyn FnMut() -> std::io::Result<Box<dyn BufRead>>>,
        name: &str,
        reference: DateTime<Local>,
        inode: Option<i64>,
        size: Option<u64>,
    ) -> Result<()> {
        self.ingest_reader_at(reader, reopen, name, reference, inode, size)
            .map(drop)
    }

    /// [`Ingestor::ingest_reader`], returning where the input's complete lines end (`None`: it
    /// has none yet), for [`Ingestor::read_on`] to go on from.
    fn ingest_reader_at(
        &mut self,
        mut reader: Box<dyn BufRead>,
        reopen: Option<&mut dyn FnMut() -> std::io::Result<Box<dyn BufRead>>>,
        name: &str,
        reference: DateTime<Local>,
        inode: Option<i64>,
        size: Option<u64>,
    ) -> Result<Option<FilePosition>> {
        let read_err = IngestError::reading(name);
        let finished = std::mem::take(&mut self.finished);
        let mut line = Vec::with_capacity(512);
        let n = reader.read_until(b'\n', &mut line).map_err(read_err)?;
        if !complete_line(&line, n, finished) {
            return Ok(None);
        }
        let first_line = line.clone();
        let hash = first_line_hash(&line);
        let candidates = self.out.store.checkpoints(&hash)?;
        let mut prefix = Sha256::new_with_prefix(&line);
        let mut offset = n as u64;
        let mut lines_done: i64 = 1;
        let resume = read_to_resume_point(
            &mut reader,
            &candidates,
            finished,
            (&mut prefix, &mut offset, &mut lines_done),
        )
        .map_err(read_err)?;
        let skip_to = resume.as_ref().map_or(0, |c| c.byte_offset as u64);
        if !candidates.is_empty() && (resume.is_none() || offset != skip_to) {
            // Read past where this file is to go on from: read it again from the start.
            let Some(reopen) = reopen else {
                return Err(read_err(std::io::Error::other(
                    "its first line is that of an ingested file, but what follows differs; give \
                     it as a file rather than on standard input",
                )));
            };
            reader = reopen().map_err(read_err)?;
            line.clear();
            reader.read_until(b'\n', &mut line).map_err(read_err)?;
            prefix = Sha256::new_with_prefix(&line);
            offset = line.len() as u64;
            lines_done = 1;
        }
        let mut pos = FilePosition {
            hash,
            prefix,
            offset,
            lines: lines_done,
            saved: resume,
            inode,
            order: Order::Unchecked,
            carries_on: skip_to > 0,
            last_at: None,
        };
        let progress = self.progress_bar(size);
        let start = self.start_input();
        self.out.begin()?;
        let result = (|| -> Result<()> {
            if skip_to == 0 {
                if self.check_order(&first_line, reference, name, &mut pos)? {
                    self.process_line(&first_line, reference, &mut pos.last_at)?;
                }
            } else {
                self.summary.lines_already_ingested += pos.lines as u64;
            }
            self.read_lines(
                &mut reader,
                &mut pos,
                skip_to,
                name,
                reference,
                finished,
                &progress,
            )
        })();
        self.end_input(result, name, start)?;
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        Ok(Some(pos))
    }

    /// Reads the complete lines that follow `pos` in `reader` (positioned there), in batches
    /// that each move the file's checkpoint; commits the last one.
    fn read_on(
        &mut self,
        reader: &mut dyn BufRead,
        pos: &mut FilePosition,
        name: &str,
        reference: DateTime<Local>,
    ) -> Result<()> {
        let start = self.start_input();
        self.out.begin()?;
        let result = self.read_lines(reader, pos, 0, name, reference, false, &None);
        self.end_input(result, name, start)
    }

    /// The batch loop of [`Ingestor::ingest_reader_at`] and [`Ingestor::read_on`], within the
    /// caller's transaction: lines up to `skip_to` were read by an earlier run.
    #[allow(clippy::too_many_arguments)]
    fn read_lines(
        &mut self,
        reader: &mut dyn BufRead,
        pos: &mut FilePosition,
        skip_to: u64,
        name: &str,
        reference: DateTime<Local>,
        finished: bool,
        progress: &Option<indicatif::ProgressBar>,
    ) -> Result<()> {
        let read_err = IngestError::reading(name);
        let mut line = Vec::with_capacity(512);
        let mut in_batch = 1usize;
        let applied_from = pos.offset.max(skip_to);
        loop {
            line.clear();
            let n = match reader.read_until(b'\n', &mut line) {
                Ok(n) => n,
                // What was read before the error is committed, with its checkpoint, and then
                // the error is said (a truncated .gz: a run on the complete file goes on from
                // there).
                Err(e) if pos.offset > applied_from => {
                    self.read_error = Some(read_err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "{e}; the lines before it are ingested, and a run on the complete \
                             file goes on from there"
                        ),
                    )));
                    break;
                }
                Err(e) => {
                    return Err(read_err(std::io::Error::new(
                        e.kind(),
                        format!("{e}; nothing of it was ingested in this run"),
                    )));
                }
            };
            if !complete_line(&line, n, finished) {
                break;
            }
            pos.prefix.update(&line);
            pos.offset += n as u64;
            pos.lines += 1;
            if pos.offset <= skip_to {
                self.summary.lines_already_ingested += 1;
                continue;
            }
            if self.check_order(&line, reference, name, pos)? {
                self.process_line(&line, reference, &mut pos.last_at)?;
            }
            in_batch += 1;
            if in_batch >= self.opts.batch_lines {
                self.save_position(pos, name)?;
                self.commit()?;
                self.out.begin()?;
                in_batch = 0;
                if let Some(bar) = progress {
                    bar.set_position(pos.offset);
                }
            }
        }
        if let Order::Refusing(refusal) = &mut pos.order {
            report_refusal(name, refusal);
        }
        // New lines past the earlier run's, not yet in the stored checkpoint.
        let saved_at = pos.saved.as_ref().map(|c| c.byte_offset as u64);
        if pos.offset > skip_to && saved_at != Some(pos.offset) {
            self.save_position(pos, name)?;
        }
        if let Some(last) = self.last_line_at {
            self.out.prune_pending_auth(last.minus(PENDING_AUTH_KEEP))?;
        }
        Ok(())
    }

    /// Stores the checkpoint of `pos` in place of the file's last one.
    fn save_position(&mut self, pos: &mut FilePosition, name: &str) -> Result<()> {
        let c = Checkpoint {
            first_line_hash: pos.hash.clone(),
            prefix_sha256: hex::encode(pos.prefix.clone().finalize()),
            path: name.to_owned(),
            inode: pos.inode,
            byte_offset: pos.offset as i64,
            lines: pos.lines,
        };
        self.flush_last_ops();
        self.out
            .store
            .put_checkpoint(pos.saved.as_ref(), &c, Micros::now())?;
        pos.saved = Some(c);
        Ok(())
    }

    /// Follows growing log files like `tail -F`, and the journal when `journal` is given:
    /// reads what is new, commits it with the files' checkpoints (or the journal's cursor), then
    /// calls `wait`, which sleeps up to the interval and says whether to stop (SIGTERM). A file
    /// renamed away by logrotate is read to its end before the new one at its path; one truncated
    /// in place (copytruncate) has the lines written before the truncation read from its copy
    /// (`FILE.1` or `FILE.1.gz`, through the checkpoint) before the file is read from its start.
    pub fn follow(
        &mut self,
        inputs: &[Input],
        journal: Option<&JournalSource>,
        wait: &mut dyn FnMut(std::time::Duration) -> bool,
    ) -> Result<()> {
        let mut followed: Vec<Followed> = inputs
            .iter()
            .map(|i| Followed {
                name: i.name.clone(),
                file: None,
                pos: None,
                rotated: Vec::new(),
                look_back: true,
            })
            .collect();
        if journal.is_some() {
            self.summary.files += 1;
        }
        // The journal's cursor as this follower left it.
        let mut journal_cursor: Option<String> = None;
        loop {
            // The ingest lock only while reading and committing: followers of other servers'
            // logs write the same central database in between (waiting for one is normal, and
            // short, so it is not announced).
            self.out.store.lock_for_ingest(true)?;
            // Another writer read one of these files while the lock was free: the sessions it
            // wrote are taken from the database again before this follower reads on (from the
            // database's checkpoints, through its open descriptors: see `poll_file`).
            let mut moved = false;
            for f in &followed {
                for pos in f.pos.iter().chain(f.rotated.iter().map(|r| &r.pos)) {
                    moved |= self.moved_elsewhere(pos)?;
                }
            }
            if let Some(source) = journal
                && journal_cursor.is_some()
                && self.out.store.journal_cursor(&source.key())? != journal_cursor
            {
                moved = true;
            }
            if moved {
                self.reload_state()?;
            }
            for f in &mut followed {
                self.poll_file(f)?;
            }
            if let Some(source) = journal {
                self.read_journal(source)?;
                journal_cursor = self.out.store.journal_cursor(&source.key())?;
            }
            self.out.store.unlock_ingest()?;
            self.state_fresh = false;
            if wait(FOLLOW_INTERVAL) {
                return Ok(());
            }
        }
    }

    /// One look at a followed file: what is new in the files renamed away from its path and
    /// in the open one, then whether its path now holds another file (renamed away) or the same
    /// one cut short (truncated).
    fn poll_file(&mut self, f: &mut Followed) -> Result<()> {
        let path = f.name.clone();
        let read_err = IngestError::reading(&path);
        for r in &mut f.rotated {
            let before = r.pos.offset;
            if self.moved_elsewhere(&r.pos)? {
                match self.ingest_file(&r.name, &r.file)? {
                    Some(pos) => r.pos = pos,
                    None => continue,
                }
            } else {
                let mut file = r.file.try_clone().map_err(read_err)?;
                file.seek(SeekFrom::Start(r.pos.offset)).map_err(read_err)?;
                let mut reader = BufReader::with_capacity(1 << 16, file);
                self.read_on(&mut reader, &mut r.pos, &r.name, Local::now())?;
            }
            if r.pos.offset != before {
                r.last_growth = std::time::Instant::now();
            }
        }
        f.rotated.retain(|r| r.last_growth.elapsed() < ROTATED_IDLE);
        // Another writer moved this file's checkpoint while the lock was free (the same log
        // followed twice): go on from the database's checkpoint, not from memory.
        if let (Some(file), Some(pos)) = (&f.file, &f.pos)
            && self.moved_elsewhere(pos)?
        {
            f.pos = self.ingest_file(&f.name, file)?;
            if f.pos.is_none() {
                f.file = None;
            }
        } else if let (Some(file), Some(pos)) = (&f.file, &mut f.pos) {
            let mut file = file.try_clone().map_err(read_err)?;
            file.seek(SeekFrom::Start(pos.offset)).map_err(read_err)?;
            let mut reader = BufReader::with_capacity(1 << 16, file);
            self.read_on(&mut reader, pos, &f.name, Local::now())?;
        }
        if let Some(pos) = &f.pos {
            match std::fs::metadata(&f.name) {
                // Renamed away and not created again yet: keep reading the open one.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(read_err(e)),
                Ok(meta) if Some(meta.ino() as i64) != pos.inode => {
                    eprintln!("sftpd-report: {} was rotated; reading the new file", f.name);
                    let name = predecessors(&f.name)
                        .into_iter()
                        .find(|p| {
                            std::fs::metadata(p).is_ok_and(|m| Some(m.ino() as i64) == pos.inode)
                        })
                        .unwrap_or_else(|| f.name.clone());
                    if let (Some(file), Some(pos)) = (f.file.take(), f.pos.take()) {
                        f.rotated.push(Rotated {
                            name,
                            file,
                            pos,
                            last_growth: std::time::Instant::now(),
                        });
                    }
                    f.look_back = true;
                }
                Ok(meta) if meta.len() < pos.offset || !starts_with_line(&f.name, &pos.hash) => {
                    eprintln!(
                        "sftpd-report: {} was truncated; reading its rotated copy's last lines, then the file from its start",
                        f.name
                    );
                    f.file = None;
                    f.pos = None;
                    f.look_back = true;
                }
                Ok(_) => return Ok(()),
            }
        }
        if std::mem::take(&mut f.look_back) {
            self.finish_predecessors(f)?;
        }
        let file = match File::open(&f.name) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(read_err(e)),
        };
        // A file this follower had no position in, with a checkpoint: another writer read it
        // while the lock was free (a batch ingest before the follower's first line of it).
        if !self.state_fresh
            && let Some(hash) = first_line_hash_at(&file)
            && !self.out.store.checkpoints(&hash)?.is_empty()
        {
            self.reload_state()?;
        }
        f.pos = self.ingest_file(&f.name, &file)?;
        // Without a complete line yet, the file is looked at afresh next time.
        f.file = f.pos.is_some().then_some(file);
        Ok(())
    }

    /// Whether another ingest moved the checkpoint that `pos` was read to (the same log
    /// followed twice, or its rotated file read by a batch run).
    fn moved_elsewhere(&mut self, pos: &FilePosition) -> Result<bool> {
        let Some(saved) = &pos.saved else {
            return Ok(false);
        };
        Ok(!self
            .out
            .store
            .checkpoints(&pos.hash)?
            .iter()
            .any(|c| c.prefix_sha256 == saved.prefix_sha256 && c.byte_offset == saved.byte_offset))
    }

    /// Reads the files the latest rotation made of a followed path to their end, from their
    /// checkpoints (lines written to them while no follower ran, or after it let go of them),
    /// oldest first; those still open in `f` are read through their descriptors instead. An
    /// uncompressed one is then read on like a file renamed away (its writer may not have let
    /// go of it yet). A file that cannot be read is said in a warning and left for the next
    /// time.
    fn finish_predecessors(&mut self, f: &mut Followed) -> Result<()> {
        let held: Vec<i64> = f
            .rotated
            .iter()
            .filter_map(|r| r.pos.inode)
            .chain(f.pos.as_ref().and_then(|p| p.inode))
            .collect();
        let mut inputs: Vec<(Option<Micros>, String)> = predecessors(&f.name)
            .into_iter()
            .filter(|name| std::fs::metadata(name).is_ok_and(|m| !held.contains(&(m.ino() as i64))))
            .map(|name| (first_line_time(&name).ok().flatten(), name))
            .collect();
        inputs.sort_by_key(|(t, _)| (t.is_none(), *t));
        for (_, name) in inputs {
            let read = File::open(&name)
                .map_err(IngestError::reading(&name))
                .and_then(|file| Ok((self.ingest_file(&name, &file)?, file)));
            match read {
                Ok((Some(pos), file)) if !name.ends_with(".gz") => f.rotated.push(Rotated {
                    name,
                    file,
                    pos,
                    last_growth: std::time::Instant::now(),
                }),
                Ok(_) => {}
                Err(e @ IngestError::Read { .. }) => eprintln!("sftpd-report: warning: {e}"),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Where the summary stood when an input began, for [`Ingestor::end_input`].
    fn start_input(&mut self) -> (u64, u64) {
        self.first_skipped = None;
        (self.summary.lines_read, self.summary.parsed)
    }

    /// Commits an input's last batch, or rolls it back on `result`'s error; notes an input that
    /// had new lines and none understood.
    fn end_input(&mut self, result: Result<()>, name: &str, start: (u64, u64)) -> Result<()> {
        let read_error = self.read_error.take();
        if let Err(e) = result {
            let _ = self.out.rollback();
            return Err(e);
        }
        self.commit()?;
        if let Some(e) = read_error {
            return Err(e);
        }
        let (read_before, parsed_before) = start;
        let lines = self.summary.lines_read - read_before;
        if lines > 0 && self.summary.parsed == parsed_before {
            self.not_understood.push(NotUnderstood {
                name: name.to_owned(),
                lines,
                first_line: self.first_skipped.take().unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// The live session `entry` would be applied to: by the wrapper's session id, or
    /// sftp-server's PID.
    fn live_session(&self, entry: &JournalEntry, host: &str) -> Option<i64> {
        if entry.identifier == self.opts.wrapper_ident {
            let line = WrapperLine::parse(&entry.message)?;
            self.by_sid.get(&sid_key(host, line.sid()?)).copied()
        } else {
            let key = (host.to_owned(), i64::from(entry.pid?));
            self.by_sftp_pid.get(&key).copied()
        }
    }

    /// Whether to apply a new line of an input: not while its lines are older than what is
    /// already ingested from its host (by more than the grace for lines out of order), as the
    /// sessions they continue or are continued by were read without them. Such lines are
    /// counted and named in an error line, and the input goes on with the first line that is
    /// not older, so that they never hold up the lines after them. An input that goes on from
    /// its own checkpoint is not checked: what it carries on was read from it. The first line
    /// with a time also sets where the input's local times stand (`pos.last_at`), when nothing
    /// of it was read in this run: at what is already ingested from its host.
    fn check_order(
        &mut self,
        raw: &[u8],
        reference: DateTime<Local>,
        name: &str,
        pos: &mut FilePosition,
    ) -> Result<bool> {
        if matches!(pos.order, Order::Checked) {
            return Ok(true);
        }
        let Some(line) = parse::parse_syslog_line(raw) else {
            return Ok(true);
        };
        if let Order::Refusing(refusal) = &mut pos.order {
            let after = pos.last_at.map(|t| (t, LATE_LINE_GRACE));
            let Some(ts) = line
                .timestamp
                .resolve_after(reference, &mut self.local_minutes, after)
            else {
                return Ok(true);
            };
            if ts.plus(LATE_LINE_GRACE) >= refusal.latest {
                report_refusal(name, refusal);
                pos.order = Order::Checked;
                return Ok(true);
            }
            refusal.last = refusal.last.max(ts);
            refusal.lines += 1;
            self.summary.refused += 1;
            return Ok(false);
        }
        let host = line
            .host
            .map_or_else(|| self.opts.host_default.clone(), str::to_owned);
        let latest = self.out.flushed()?.latest_time(&host)?;
        if pos.last_at.is_none() {
            pos.last_at = latest;
        }
        let after = pos.last_at.map(|t| (t, LATE_LINE_GRACE));
        let Some(ts) = line
            .timestamp
            .resolve_after(reference, &mut self.local_minutes, after)
        else {
            return Ok(true);
        };
        pos.order = match latest {
            Some(latest)
                if ts.plus(LATE_LINE_GRACE) < latest && !pos.carries_on && !self.opts.any_order =>
            {
                self.summary.refused += 1;
                Order::Refusing(Refusal {
                    host,
                    latest,
                    first: ts,
                    last: ts,
                    lines: 1,
                    reported: 0,
                })
            }
            _ => Order::Checked,
        };
        Ok(matches!(pos.order, Order::Checked))
    }

    fn progress_bar(&self, size: Option<u64>) -> Option<indicatif::ProgressBar> {
        let size = size?;
        if !self.opts.progress || size < 16 << 20 || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new(size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    }

    /// Parses one line and applies it to the database. `last_at` is the latest instant the
    /// input's lines named so far: a local time that the zone's fall back repeats names the
    /// earlier instant unless that is before it (by more than the grace for lines out of
    /// order), so the second 01:xx after the first is the later offset.
    fn process_line(
        &mut self,
        raw: &[u8],
        reference: DateTime<Local>,
        last_at: &mut Option<Micros>,
    ) -> Result<()> {
        self.summary.lines_read += 1;
        let Some(line) = parse::parse_syslog_line(raw) else {
            self.skip(raw);
            return Ok(());
        };
        let after = last_at.map(|t| (t, LATE_LINE_GRACE));
        let Some(ts) = line
            .timestamp
            .resolve_after(reference, &mut self.local_minutes, after)
        else {
            self.skip(raw);
            return Ok(());
        };
        if last_at.is_none_or(|t| t < ts) {
            *last_at = Some(ts);
        }
        // Borrowed from the line: only a line without a host field costs a copy.
        let host = match line.host {
            Some(host) => std::borrow::Cow::Borrowed(host),
            None => std::borrow::Cow::Owned(self.opts.host_default.clone()),
        };
        self.reading_journal = false;
        if self.apply_record(ts, &host, line.program, line.pid, line.message)? {
            self.summary.parsed += 1;
        } else {
            self.skip(raw);
        }
        Ok(())
    }

    /// Applies one line's content; says whether it was used.
    fn apply_record(
        &mut self,
        at: Micros,
        host: &str,
        program: &str,
        pid: Option<u32>,
        message: &[u8],
    ) -> Result<bool> {
        self.expire(at);
        self.touched = None;
        let used = match parse::classify(program, message, &self.opts.wrapper_ident) {
            Record::Wrapper(ev) => self.apply_wrapper(host, pid, at, &ev)?,
            Record::Sftp { source, event } => match pid {
                Some(pid) => self.apply_sftp(host, i64::from(pid), source, at, event)?,
                None => false,
            },
            Record::Accepted(a) => {
                self.out.add_pending_auth(host, &a, at);
                self.last_line_at = Some(at);
                true
            }
            Record::Foreign => false,
        };
        self.out.flush_if_full()?;
        Ok(used)
    }

    /// Reads the journal from where the last run on `source` stopped, in batches that each move
    /// the cursor in the same transaction. An entry that claims to be the wrapper's, sftp-server's
    /// or sshd's but that the journal says another program wrote is not applied; it is counted,
    /// and the first few are kept in [`Summary::forged`].
    pub fn ingest_journal(&mut self, source: &JournalSource) -> Result<()> {
        self.summary.files += 1;
        self.read_journal(source)
    }

    /// [`Ingestor::ingest_journal`] without counting the journal as an input (follow mode
    /// reads it again at every poll).
    fn read_journal(&mut self, source: &JournalSource) -> Result<()> {
        let key = source.key();
        let read_err = IngestError::reading(&key);
        let cursor = self.out.store.journal_cursor(&key)?;
        let mut child = std::process::Command::new("journalctl")
            .args(source.journalctl_args(cursor.as_deref()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| read_err(std::io::Error::new(e.kind(), format!("journalctl: {e}"))))?;
        let mut reader = BufReader::with_capacity(1 << 16, child.stdout.take().expect("piped"));
        let start = self.start_input();
        self.out.begin()?;
        let mut result = (|| -> Result<()> {
            let mut line = Vec::with_capacity(1024);
            let mut in_batch = 0usize;
            let mut last_cursor: Option<String> = None;
            // Sender processes whose entries journald named, by PID: their last entry may come
            // without the name (written as they exit).
            let mut verified: HashMap<u32, String> = HashMap::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
                    break;
                }
                let Some(entry) = journal::parse_entry(&line) else {
                    continue;
                };
                self.summary.lines_read += 1;
                last_cursor = Some(entry.cursor.clone());
                self.journal_entry(&entry, &mut verified)?;
                in_batch += 1;
                if in_batch >= self.opts.batch_lines
                    && let Some(c) = &last_cursor
                {
                    self.flush_last_ops();
                    self.out.store.put_journal_cursor(&key, c, Micros::now())?;
                    self.commit()?;
                    self.out.begin()?;
                    in_batch = 0;
                }
            }
            if let Some(c) = &last_cursor {
                self.flush_last_ops();
                self.out.store.put_journal_cursor(&key, c, Micros::now())?;
            }
            Ok(())
        })();
        let status = child.wait().map_err(read_err)?;
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        if result.is_ok() && !status.success() {
            result = Err(read_err(std::io::Error::other(format!(
                "journalctl failed ({status}): {}",
                stderr.trim().replace('\n', " ")
            ))));
        }
        self.end_input(result, &key, start)
    }

    /// One journal entry: applied when its sender checks out, else counted as forged.
    /// `verified` holds the sender processes whose entries journald named, by PID.
    fn journal_entry(
        &mut self,
        entry: &JournalEntry,
        verified: &mut HashMap<u32, String>,
    ) -> Result<()> {
        let host = entry
            .host
            .clone()
            .unwrap_or_else(|| self.opts.host_default.clone());
        let live = self.live_session(entry, &host);
        // An entry without its sender's command that goes on with a session a checked entry
        // started (an earlier run may have read that one): the wrapper's line names a live
        // session's id, sftp-server's comes from the live session's own sftp-server process.
        let continues_live_session = live.is_some()
            && (entry.identifier == self.opts.wrapper_ident || entry.pid == entry.sender_pid);
        let sender_verified = entry
            .sender_pid
            .is_some_and(|pid| verified.get(&pid) == Some(&entry.identifier))
            || continues_live_session;
        let session_user = live.and_then(|id| self.sessions.get(&id)?.user.clone());
        let why = journal::forged(
            entry,
            &self.opts.wrapper_ident,
            sender_verified,
            session_user.as_deref(),
        );
        if why.is_none()
            && entry.command.is_some()
            && let Some(pid) = entry.sender_pid
        {
            verified.insert(pid, entry.identifier.clone());
        }
        if let Some(why) = why {
            self.summary.forged += 1;
            if self.summary.forged_examples.len() < 3 {
                self.summary.forged_examples.push(why);
            }
        } else if let Some(ts) = Micros::checked(entry.realtime_us) {
            self.reading_journal = true;
            if self.apply_record(ts, &host, &entry.identifier, entry.pid, &entry.message)? {
                self.summary.parsed += 1;
                if let Some(id) = self.touched.take()
                    && self.origin_set.insert(id)
                {
                    let origin = SessionOrigin {
                        pid: entry.sender_pid.map(i64::from),
                        uid: entry.uid,
                        command: entry.command.clone(),
                    };
                    self.out.set_session_origin(id, &origin)?;
                }
                return Ok(());
            }
        }
        self.skip(&entry.message);
        Ok(())
    }

    fn skip(&mut self, raw: &[u8]) {
        self.summary.skipped += 1;
        if self.first_skipped.is_none() {
            self.first_skipped = Some(raw.strip_suffix(b"\n").unwrap_or(raw).to_vec());
        }
    }

    fn new_session(&mut self, s: NewSession) -> Result<i64> {
        let id = self.out.insert_session(&s)?;
        if !self.sessions.contains_key(&id) {
            self.summary.sessions += 1;
        }
        if let (Some(user), Some(ip)) = (&s.user, &s.client_ip)
            && let Some((method, key)) =
                self.out
                    .take_pending_auth(&s.host, user, ip, s.client_port)?
        {
            self.out.set_session_auth(id, &method, key.as_deref());
        }
        if let Some(sid) = &s.sid {
            self.by_sid.insert(sid_key(&s.host, sid), id);
        }
        let journal = self
            .sessions
            .get(&id)
            .map_or(self.reading_journal, |s| s.journal);
        self.sessions.insert(
            id,
            SessionState {
                host: s.host,
                user: s.user,
                wrapper: s.source == SessionSource::Wrapper,
                sid: s.sid,
                sftp_pid: s.sftp_pid,
                sftp_closed: false,
                started_at: s.started_at,
                ended: false,
                wire: false,
                log_rows: false,
                journal,
            },
        );
        Ok(id)
    }

    /// Lets go of ended sessions whose grace ended before `now`.
    fn expire(&mut self, now: Micros) {
        while let Some(&(deadline, id)) = self.expiring.front() {
            if deadline >= now {
                break;
            }
            self.expiring.pop_front();
            if self.sessions.get(&id).is_some_and(|s| s.ended) {
                self.forget_session(id);
            }
        }
    }

    /// Keeps an ended session for [`LATE_LINE_GRACE`] after `at`: a wrapper session stays
    /// reachable by its sftp-server PID, so that sftp-server lines that reach the log after the
    /// wrapper's `session end` still count; a plain one stays claimable by its wrapper.
    fn linger(&mut self, id: i64, at: Micros) {
        let Some(state) = self.sessions.get_mut(&id) else {
            return;
        };
        state.ended = true;
        if let Some(sid) = state.sid.take() {
            self.by_sid.remove(&sid_key(&state.host, &sid));
        }
        if !state.wrapper
            && let Some(pid) = state.sftp_pid
        {
            self.closed_plain.insert((state.host.clone(), pid), id);
        }
        self.expiring.push_back((at.plus(LATE_LINE_GRACE), id));
    }

    /// Moves plain session `plain` (sftp-server's own lines, logged before the wrapper's
    /// `sftp-server started`) into wrapper session `into`.
    fn absorb_plain(&mut self, plain: i64, into: i64) -> Result<()> {
        self.out.merge_session(plain, into)?;
        self.summary.sessions = self.summary.sessions.saturating_sub(1);
        // Before forget_session, which drops them.
        if let Some(moved) = self.open_transfers.remove(&plain) {
            self.open_transfers.entry(into).or_default().extend(moved);
        }
        if let Some(op) = self.last_op.remove(&plain) {
            self.set_last_op(into, op);
        }
        if let Some(names) = self.names.remove(&plain) {
            self.names.entry(into).or_default().extend(names);
        }
        if let Some(undo) = self.names_undo.remove(&plain) {
            self.names_undo.insert(into, undo);
        }
        if let Some(p) = self.forget_session(plain) {
            if let Some(state) = self.sessions.get_mut(&into) {
                state.sftp_closed |= p.sftp_closed;
                state.log_rows |= p.log_rows;
            }
            if let (Some(user), Some(state)) = (p.user, self.sessions.get(&into))
                && state.user.is_none()
            {
                self.out.fill_session_identity(into, &user, "");
            }
        }
        self.settle_wire(into)
    }

    /// Turns the opens of log-only session `id` that no close line closed into failed `open`
    /// operations, at sftp-server's own end (at `at`): it logs a `forced close` for every file
    /// still open before `session closed`, so these opens failed, and a failed open is not a
    /// transfer.
    fn drop_failed_opens(&mut self, id: i64, host: &str, at: Micros) -> Result<()> {
        let Some(open) = self.open_transfers.get_mut(&id) else {
            return Ok(());
        };
        for (t, why) in open.take_all() {
            self.out.forget_transfer(t.id);
            self.summary.transfers = self.summary.transfers.saturating_sub(1);
            let (status, when) = why
                .as_ref()
                .map_or(("no close", at), |(text, when)| (text.as_str(), *when));
            let open = Op::on(OperationKind::Open, &t.path);
            let op = self.session_operation(id, host, when, open)?;
            self.out.mark_operation_failed(op, status);
        }
        if let Some(Some(LastOp::Transfer(_))) = self.last_op.get(&id) {
            self.set_last_op(id, None);
        }
        Ok(())
    }

    /// Marks `id` a capture-mode session, whose transfers are its `file closed` lines.
    fn mark_wire(&mut self, id: i64) -> Result<()> {
        if let Some(state) = self.sessions.get_mut(&id) {
            state.wire = true;
        }
        self.settle_wire(id)
    }

    /// Deletes the transfers that sftp-server's lines made for `id` if it is a capture-mode
    /// session: they came before the line that said so (two processes' lines, delivered out of
    /// order, or read by an earlier run), and its `file closed` lines are its transfers.
    fn settle_wire(&mut self, id: i64) -> Result<()> {
        let Some(state) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        if !(state.wire && state.log_rows) {
            return Ok(());
        }
        state.log_rows = false;
        let deleted = self.out.flushed()?.forget_log_transfers(id)?;
        self.summary.transfers = self.summary.transfers.saturating_sub(deleted);
        self.open_transfers.remove(&id);
        self.recent_closes.remove(&id);
        if let Some(Some(LastOp::Transfer(_))) = self.last_op.get(&id) {
            self.set_last_op(id, None);
        }
        Ok(())
    }

    /// Stores what the wrapper's `file closed` line says of one file of capture-mode session
    /// `session`: a transfer (as the hooks saw it), or a server-side copy, which is an
    /// operation and never traffic.
    fn file_closed(
        &mut self,
        session: i64,
        host: &str,
        at: Micros,
        file: &FileRecord,
    ) -> Result<()> {
        let (counts_as, direction) = match file.counts_as {
            ClosedAs::Upload => (Some(CountsAs::Upload), Direction::Upload),
            ClosedAs::Download => (Some(CountsAs::Download), Direction::Download),
            // Nothing moved: what it was opened for, as for sftp-server's lines.
            ClosedAs::Nothing => (None, Direction::from_open_flags(&file.open_flags)),
            ClosedAs::Copy => {
                let from = match &file.other {
                    Some(OtherFile::CopiedFrom(from)) => Some(from.shown()),
                    _ => None,
                };
                let path = file.path.shown();
                let copy = Op {
                    target: from.as_deref(),
                    ..Op::on(OperationKind::Copy, &path)
                };
                let id = self.session_operation(session, host, at, copy)?;
                if !file.complete {
                    let why = if file.failed {
                        "failed"
                    } else {
                        "forced close"
                    };
                    self.out.mark_operation_failed(id, why);
                }
                return Ok(());
            }
        };
        let opened_at = i64::try_from(file.elapsed_ms)
            .ok()
            .and_then(|ms| Micros::checked(at.0.checked_sub(ms.checked_mul(1000)?)?))
            .unwrap_or(at);
        // The tap followed the names itself, from the packets: sftp-server's link lines come
        // to the log by another path, in either order with this line.
        let reached = match &file.other {
            Some(OtherFile::Reached(to)) => Some(to.shown()),
            _ => None,
        };
        let path = file.path.shown().into_owned();
        let id = self.out.insert_transfer(&NewTransfer {
            session_id: session,
            path: &path,
            direction,
            open_flags: &file.open_flags,
            mode: None,
            opened_at,
            reached: reached.as_deref(),
        })?;
        self.summary.transfers += 1;
        if file.failed {
            self.out.mark_transfer_failed(id);
        }
        let verdict = ClosedFile {
            direction,
            counts_as,
            complete: file.complete,
        };
        self.out.close_transfer(
            id,
            at,
            Some((file.bytes_read, file.bytes_written)),
            file.forced,
            &verdict,
        );
        let upload = counts_as == Some(CountsAs::Upload);
        self.note_close(session, id, path, upload);
        Ok(())
    }

    /// Notes a closed file of `session`, for a rename of it that follows.
    fn note_close(&mut self, session: i64, id: i64, path: Vec<u8>, upload: bool) {
        let recent = self.recent_closes.entry(session).or_default();
        if recent.len() == RECENT_CLOSES {
            recent.pop_front();
        }
        recent.push_back((id, path, upload));
    }

    /// A rename of `old` to `new` in `session` (its operation the session's last): a file closed
    /// under `old` a moment ago now has the name `new` (an upload to `x.filepart` renamed to
    /// `x`), which `transfers --path` finds. Says whether that file was an upload.
    fn renamed_file(&mut self, session: i64, old: &[u8], new: &[u8]) -> Result<bool> {
        let Some(recent) = self.recent_closes.get_mut(&session) else {
            return Ok(false);
        };
        let Some(at) = recent.iter().rposition(|(_, p, _)| p == old) else {
            return Ok(false);
        };
        let (transfer, _, upload) = recent.remove(at).unwrap_or_default();
        self.out.set_transfer_renamed(transfer, Some(new));
        if let Some(Some(LastOp::Operation(op))) = self.last_op.get(&session) {
            let renamed = RenamedFile { op: *op, transfer };
            self.renamed.insert(session, renamed);
        }
        Ok(upload)
    }

    /// The file `path` reached through `session`'s links and renames, when another name.
    fn reached(&self, session: i64, path: &[u8]) -> Option<Vec<u8>> {
        self.names.get(&session)?.reached(path)
    }

    /// A link (symlink, hardlink) or rename of `old` to `new` in `session`, its operation the
    /// session's last: `new` now leads to the file `old` named, unless the status that answers
    /// it proves the name was taken (see [`NAME_TAKEN`]).
    fn name_made(
        &mut self,
        session: i64,
        kind: OperationKind,
        old: &[u8],
        new: &[u8],
        uploaded: bool,
    ) {
        if uploaded && self.names.get(&session).is_none_or(Names::is_empty) {
            self.names_undo.remove(&session);
            return;
        }
        let names = self.names.entry(session).or_default();
        let undo = match kind {
            OperationKind::Symlink => names.symlink(new, old),
            OperationKind::Hardlink => names.link(new, old, false),
            OperationKind::Rename | OperationKind::PosixRename => names.renamed(old, new, uploaded),
            _ => return,
        };
        if let Some(Some(LastOp::Operation(op))) = self.last_op.get(&session) {
            self.names_undo.insert(session, (*op, undo));
        }
    }

    /// A remove or rmdir of `path` in `session`: the name leads nowhere any more, whatever
    /// status comes after it (whether the name still leads where it did, the log cannot say).
    fn name_removed(&mut self, session: i64, path: &[u8]) {
        if let Some(names) = self.names.get_mut(&session) {
            names.forget(&[path]);
        }
        self.names_undo.remove(&session);
    }

    /// The wrapper session with the line's `sid`, created from this line if its start was not
    /// seen (it was in a log that is gone).
    fn wrapper_session(
        &mut self,
        host: &str,
        pid: Option<u32>,
        at: Micros,
        line: &WrapperLine,
    ) -> Result<i64> {
        let sid = line.sid().unwrap_or_default().to_owned();
        if let Some(&id) = self.by_sid.get(&sid_key(host, &sid)) {
            return Ok(id);
        }
        let (user, connection) = match line {
            WrapperLine::SessionStart {
                user, connection, ..
            }
            | WrapperLine::SessionEnd {
                user, connection, ..
            } => (Some(user.clone()), Some(connection)),
            WrapperLine::SftpServerStarted { user, .. } | WrapperLine::FileClosed { user, .. } => {
                (Some(user.clone()), None)
            }
            _ => (None, None),
        };
        let port = |p: &Option<String>| {
            p.as_deref()
                .and_then(|p| p.parse::<u16>().ok())
                .map(i64::from)
        };
        self.new_session(NewSession {
            host: host.to_owned(),
            user,
            client_ip: connection.and_then(|c| c.client_ip.clone()),
            client_port: connection.and_then(|c| port(&c.client_port)),
            local_ip: connection.and_then(|c| c.local_ip.clone()),
            local_port: connection.and_then(|c| port(&c.local_port)),
            started_at: at.to_owned(),
            source: SessionSource::Wrapper,
            sid: Some(sid),
            pid: pid.map_or(0, i64::from),
            sftp_pid: None,
        })
    }

    fn set_last_op(&mut self, session: i64, op: Option<LastOp>) {
        self.last_op.insert(session, op);
        self.last_op_dirty.insert(session);
    }

    /// Commits the open transaction with the ingest counters of the lines it holds.
    fn commit(&mut self) -> Result<()> {
        let (read, skipped, refused) = (
            self.summary.lines_read - self.committed_counts.0,
            self.summary.skipped - self.committed_counts.1,
            self.summary.refused - self.committed_counts.2,
        );
        if read > 0 || refused > 0 {
            self.out.store.add_ingest_counts(
                &[
                    ("lines_read", read),
                    ("lines_skipped", skipped),
                    ("lines_refused", refused),
                ],
                Micros::now(),
            )?;
        }
        self.out.commit()?;
        self.committed_counts = (
            self.summary.lines_read,
            self.summary.skipped,
            self.summary.refused,
        );
        Ok(())
    }

    /// Writes the changed `last_op`s, so that a later run attaches a status line the same way.
    fn flush_last_ops(&mut self) {
        for session in std::mem::take(&mut self.last_op_dirty) {
            if self.sessions.contains_key(&session) {
                let op = self.last_op.get(&session).copied().flatten();
                self.out.set_last_op(session, op);
            }
        }
    }

    /// Drops every in-memory trace of a session; returns its state.
    fn forget_session(&mut self, id: i64) -> Option<SessionState> {
        let state = self.sessions.remove(&id);
        if let Some(state) = &state {
            if let Some(sid) = &state.sid {
                self.by_sid.remove(&sid_key(&state.host, sid));
            }
            if let Some(pid) = state.sftp_pid {
                let key = (state.host.clone(), pid);
                if self.by_sftp_pid.get(&key) == Some(&id) {
                    self.by_sftp_pid.remove(&key);
                }
                if self.closed_plain.get(&key) == Some(&id) {
                    self.closed_plain.remove(&key);
                }
            }
        }
        self.open_transfers.remove(&id);
        self.last_op.remove(&id);
        self.recent_closes.remove(&id);
        self.renamed.remove(&id);
        self.names.remove(&id);
        self.names_undo.remove(&id);
        state
    }

    fn apply_wrapper(
        &mut self,
        host: &str,
        pid: Option<u32>,
        at: Micros,
        line: &WrapperLine,
    ) -> Result<bool> {
        if self.replays_stored_session(host, at, line)? {
            return Ok(true);
        }
        match line {
            WrapperLine::SessionStart { .. } => {
                self.touched = Some(self.wrapper_session(host, pid, at, line)?);
            }
            WrapperLine::SftpServerStarted { sftp_pid, wire, .. } => {
                let id = self.wrapper_session(host, pid, at, line)?;
                if let Some(sftp_pid) = sftp_pid {
                    self.link_sftp_pid(id, host, i64::from(*sftp_pid))?;
                }
                if *wire {
                    self.mark_wire(id)?;
                }
                if sftp_pid.is_none() {
                    return Ok(false);
                }
            }
            WrapperLine::FileClosed { sftp_pid, file, .. } => {
                let id = self.wrapper_session(host, pid, at, line)?;
                self.touched = Some(id);
                // Before the wrapper's `sftp-server started` (delivered late): its sftp-server
                // lines so far are claimed the same way.
                if let Some(sftp_pid) = sftp_pid
                    && self.sessions.get(&id).is_some_and(|s| s.sftp_pid.is_none())
                {
                    self.link_sftp_pid(id, host, i64::from(*sftp_pid))?;
                }
                self.mark_wire(id)?;
                self.file_closed(id, host, at, file)?;
            }
            WrapperLine::SessionEnd { .. } => self.wrapper_session_end(host, pid, at, line)?,
            WrapperLine::SessionRefused { .. } => self.wrapper_session_refused(host, at, line)?,
            WrapperLine::Hook { .. }
            | WrapperLine::SignalForwarded { .. }
            | WrapperLine::EventDropped { .. } => {}
        }
        Ok(true)
    }

    /// The wrapper's `session end`: how the session ended, and whether its sftp-server's last
    /// lines may still come.
    fn wrapper_session_end(
        &mut self,
        host: &str,
        pid: Option<u32>,
        at: Micros,
        line: &WrapperLine,
    ) -> Result<()> {
        let WrapperLine::SessionEnd {
            duration_ms,
            exit,
            error,
            ..
        } = line
        else {
            return Ok(());
        };
        let id = self.wrapper_session(host, pid, at, line)?;
        let (closed, sftp_pid) = self
            .sessions
            .get(&id)
            .map_or((false, None), |s| (s.sftp_closed, s.sftp_pid));
        let reason = if closed && error.is_none() {
            EndReason::Closed
        } else {
            EndReason::Forced
        };
        let (exit_status, signal) = match exit {
            Some(ExitOutcome::Status(code)) => (Some(i64::from(*code)), None),
            Some(ExitOutcome::Signal(sig)) => (None, Some(sig.as_str())),
            None => (None, None),
        };
        self.out.abandon_open_transfers(id);
        self.out.end_session(
            id,
            &SessionEnd {
                ended_at: at,
                duration_ms: duration_ms.map(|d| d as i64),
                exit_status,
                signal,
                end_reason: reason,
            },
        );
        if !closed && sftp_pid.is_some() && error.is_none() {
            self.linger(id, at);
        } else {
            self.forget_session(id);
        }
        Ok(())
    }

    /// Ends session `id` at `at`, lasting from its start as this run knows it.
    fn end_session_at(&mut self, id: i64, at: Micros, exit_status: Option<i64>, reason: EndReason) {
        let duration_ms = self
            .sessions
            .get(&id)
            .map(|s| (at.0.saturating_sub(s.started_at.0) / 1000).max(0));
        let end = SessionEnd {
            ended_at: at,
            duration_ms,
            exit_status,
            signal: None,
            end_reason: reason,
        };
        self.out.end_session(id, &end);
    }

    /// The wrapper's `session refused`: a denied operation, and the end of the session it had
    /// started, if any.
    fn wrapper_session_refused(
        &mut self,
        host: &str,
        at: Micros,
        line: &WrapperLine,
    ) -> Result<()> {
        let WrapperLine::SessionRefused {
            sid,
            user,
            reason,
            command,
            ..
        } = line
        else {
            return Ok(());
        };
        let started = sid
            .as_ref()
            .and_then(|sid| self.by_sid.get(&sid_key(host, sid)).copied());
        if let Some(id) = started {
            self.end_session_at(id, at, Some(1), EndReason::Refused);
            self.forget_session(id);
        }
        let command = command
            .as_ref()
            .map(|c| String::from_utf8_lossy(&c.prefix).into_owned());
        let op = self.out.insert_operation(&NewOperation {
            session_id: started,
            host,
            user: user.as_deref(),
            at,
            kind: OperationKind::Denied,
            path: None,
            target: None,
            detail: command.as_deref(),
        })?;
        self.out.mark_operation_failed(op, reason);
        Ok(())
    }

    /// Whether `line` is a copy of a wrapper session that the other source (the journal, or a
    /// file) brought, found by its session id (unique, unlike host, PID and start, whose
    /// precision differs between sources): then it is not applied, nor are its sftp-server's
    /// lines. A session's lines are taken from the source that brought its first line, whether
    /// it has ended or not; the same source's lines read again are the checkpoints' business.
    fn replays_stored_session(
        &mut self,
        host: &str,
        at: Micros,
        line: &WrapperLine,
    ) -> Result<bool> {
        let Some(sid) = line.sid() else {
            return Ok(false);
        };
        if matches!(
            line,
            WrapperLine::Hook { .. }
                | WrapperLine::SignalForwarded { .. }
                | WrapperLine::EventDropped { .. }
        ) {
            return Ok(false);
        }
        let journal = self.reading_journal;
        let key = (journal, host.to_owned(), sid.to_owned());
        if !self.replayed.contains_key(&key) {
            let owner = match self.by_sid.get(&sid_key(host, sid)) {
                Some(&id) => self.sessions.get(&id).map(|s| (id, s.journal)),
                None if matches!(line, WrapperLine::SessionRefused { .. }) => None,
                None => self.stored_session_source(
                    host,
                    at,
                    sid,
                    matches!(line, WrapperLine::SessionStart { .. }),
                )?,
            };
            let Some((owner, owner_journal)) = owner else {
                return Ok(false);
            };
            if owner_journal == journal {
                return Ok(false);
            }
            // sftp-server's first lines may come before the wrapper's `sftp-server started`
            // (two processes): where the source that brought the session knows its
            // sftp-server, this copy's lines of it are known from the start.
            let known = match self.sessions.get(&owner).and_then(|s| s.sftp_pid) {
                Some(p) => Some(p),
                None => self.out.flushed()?.session_sftp_pid(owner)?,
            };
            self.replayed.insert(key.clone(), known);
            if let Some(p) = known {
                self.replayed_sftp
                    .insert((journal, host.to_owned(), p), None);
                self.discard_copied_plain(host, p, at)?;
            }
        }
        match line {
            WrapperLine::SftpServerStarted {
                sftp_pid: Some(p), ..
            }
            | WrapperLine::FileClosed {
                sftp_pid: Some(p), ..
            } => {
                let p = i64::from(*p);
                if self.replayed.insert(key, Some(p)) != Some(Some(p)) {
                    self.discard_copied_plain(host, p, at)?;
                }
                self.replayed_sftp
                    .insert((journal, host.to_owned(), p), None);
            }
            WrapperLine::SessionEnd { .. } | WrapperLine::SessionRefused { .. } => {
                if let Some(Some(p)) = self.replayed.remove(&key) {
                    let until = at.plus(LATE_LINE_GRACE);
                    self.replayed_sftp
                        .insert((journal, host.to_owned(), p), Some(until));
                }
            }
            _ => {}
        }
        Ok(true)
    }

    /// Deletes the session that sftp-server process `sftp_pid`'s lines made from this source
    /// before the wrapper's line (at `at`) showed them a copy of a session the other source
    /// brought: its rows are that session's, already stored.
    fn discard_copied_plain(&mut self, host: &str, sftp_pid: i64, at: Micros) -> Result<()> {
        let key = (host.to_owned(), sftp_pid);
        let earliest = at.minus(LATE_LINE_GRACE);
        let copied = [self.by_sftp_pid.get(&key), self.closed_plain.get(&key)]
            .into_iter()
            .flatten()
            .copied()
            .find(|id| {
                self.sessions.get(id).is_some_and(|s| {
                    !s.wrapper && s.journal == self.reading_journal && s.started_at >= earliest
                })
            });
        if let Some(id) = copied {
            self.out.flushed()?.discard_session(id)?;
            self.summary.sessions = self.summary.sessions.saturating_sub(1);
            self.forget_session(id);
        }
        Ok(())
    }

    /// The stored session of `host` with wrapper session id `sid` that starts near `at`, and
    /// whether it was read from the journal; `None` when there is none.
    fn stored_session_source(
        &mut self,
        host: &str,
        at: Micros,
        sid: &str,
        first_line: bool,
    ) -> Result<Option<(i64, bool)>> {
        // A session's first line is near its start, which the other source may have to the
        // microsecond or the second, and in another order: within the grace for lines out of
        // order. A later line may be any time after the start.
        let earliest = first_line.then(|| at.minus(LATE_LINE_GRACE));
        let probe = NewSession {
            host: host.to_owned(),
            user: None,
            client_ip: None,
            client_port: None,
            local_ip: None,
            local_port: None,
            started_at: at.to_owned(),
            source: SessionSource::Wrapper,
            sid: Some(sid.to_owned()),
            pid: 0,
            sftp_pid: None,
        };
        Ok(self
            .out
            .session_by_sid(&probe, earliest)?
            .map(|(id, stored)| {
                // What this run knows of it is newer than the database's row.
                let journal = self
                    .sessions
                    .get(&id)
                    .map(|s| s.journal)
                    .or(stored)
                    .unwrap_or(self.reading_journal);
                (id, journal)
            }))
    }

    /// Ties wrapper session `id` to its sftp-server process `sftp_pid`.
    fn link_sftp_pid(&mut self, id: i64, host: &str, sftp_pid: i64) -> Result<()> {
        let key = (host.to_owned(), sftp_pid);
        // sftp-server's first lines, or its whole session, beat the wrapper's line to
        // syslog: one session. A closed one only of the same user that started after the
        // wrapper's: the wrapper's own child, not an earlier process with the same PID.
        let open_plain = self
            .by_sftp_pid
            .get(&key)
            .copied()
            .filter(|other| self.sessions.get(other).is_some_and(|s| !s.wrapper));
        let closed_plain = self.closed_plain.get(&key).copied().filter(|plain| {
            let (Some(p), Some(w)) = (self.sessions.get(plain), self.sessions.get(&id)) else {
                return false;
            };
            (w.user.is_none() || p.user.is_none() || w.user == p.user)
                && p.started_at >= w.started_at
        });
        if let Some(plain) = open_plain.or(closed_plain)
            && plain != id
        {
            self.absorb_plain(plain, id)?;
        }
        self.out.set_session_sftp_pid(id, sftp_pid);
        let closed = self.sessions.get(&id).is_some_and(|s| s.sftp_closed);
        if let Some(state) = self.sessions.get_mut(&id) {
            state.sftp_pid = Some(sftp_pid);
        }
        if !closed {
            self.by_sftp_pid.insert(key, id);
        }
        Ok(())
    }

    /// A new session known from sftp-server process `key`'s own lines, with the user and client
    /// IP of its `session opened` line when that is where it starts.
    fn plain_session(
        &mut self,
        key: &(String, i64),
        source: SessionSource,
        at: Micros,
        opened_by: Option<(&str, &str)>,
    ) -> Result<i64> {
        let id = self.new_session(NewSession {
            host: key.0.clone(),
            user: opened_by.map(|(user, _)| user.to_owned()),
            client_ip: opened_by.map(|(_, ip)| ip.to_owned()),
            client_port: None,
            local_ip: None,
            local_port: None,
            started_at: at.to_owned(),
            source,
            sid: None,
            pid: key.1,
            sftp_pid: Some(key.1),
        })?;
        self.by_sftp_pid.insert(key.clone(), id);
        Ok(id)
    }

    /// Stores operation `op` of `session`, under the session's user.
    fn session_operation(&mut self, session: i64, host: &str, at: Micros, op: Op) -> Result<i64> {
        let user = self.sessions.get(&session).and_then(|s| s.user.as_deref());
        Ok(self.out.insert_operation(&NewOperation {
            session_id: Some(session),
            host,
            user,
            at,
            kind: op.kind,
            path: op.path,
            target: op.target,
            detail: op.detail,
        })?)
    }

    /// Stores operation `op` of `session` as the request its next status answers.
    fn operation(&mut self, session: i64, host: &str, at: Micros, op: Op) -> Result<()> {
        let id = self.session_operation(session, host, at, op)?;
        self.set_last_op(session, Some(LastOp::Operation(id)));
        Ok(())
    }

    fn apply_sftp(
        &mut self,
        host: &str,
        pid: i64,
        source: SessionSource,
        at: Micros,
        event: SftpEvent,
    ) -> Result<bool> {
        let key = (host.to_owned(), pid);
        if self.is_other_sources_copy(&key, at, &event) {
            return Ok(true);
        }
        if let SftpEvent::SessionOpened { user, client_ip } = &event {
            return self.sftp_session_opened(&key, source, at, user, client_ip);
        }
        let skip_reason = match &event {
            SftpEvent::Unparsed => Some("unknown sftp-server message"),
            SftpEvent::Cut => Some("sftp-server message cut at 500 characters"),
            SftpEvent::Malformed { reason } => Some(*reason),
            _ => None,
        };
        if let Some(reason) = skip_reason {
            if let Some(&id) = self.by_sftp_pid.get(&key) {
                self.set_last_op(id, None);
            }
            if event != SftpEvent::Unparsed {
                *self.summary.skipped_because.entry(reason).or_default() += 1;
            }
            return Ok(false);
        }
        // A session of its own when its start is not known.
        let session = match self.by_sftp_pid.get(&key) {
            Some(&id) => id,
            None => self.plain_session(&key, source, at, None)?,
        };
        self.touched = Some(session);
        let wire = match self.sessions.get_mut(&session) {
            Some(state) if state.wire => true,
            Some(state) => {
                state.log_rows |= matches!(
                    event,
                    SftpEvent::Open { .. } | SftpEvent::Close { .. } | SftpEvent::CutClose { .. }
                );
                false
            }
            None => false,
        };
        match event {
            // Capture mode: the wrapper's `file closed` lines are this session's transfers;
            // sftp-server's open and close lines stay in the log for audit.
            SftpEvent::Open { .. } | SftpEvent::Close { .. } | SftpEvent::CutClose { .. }
                if wire =>
            {
                self.set_last_op(session, None);
            }
            SftpEvent::SessionOpened { .. } | SftpEvent::Unparsed => {}
            SftpEvent::SessionClosed { user, client_ip } => {
                self.sftp_session_closed(session, &key, at, &user, &client_ip)?;
            }
            SftpEvent::Open { path, flags, mode } => {
                self.sftp_open(session, at, path, &flags, &mode)?;
            }
            SftpEvent::CutClose {
                path_prefix,
                forced,
            } => self.sftp_cut_close(session, at, &path_prefix, forced)?,
            SftpEvent::Cut | SftpEvent::Malformed { .. } => unreachable!("handled above"),
            SftpEvent::Close {
                path,
                bytes_read,
                bytes_written,
                forced,
            } => {
                self.sftp_close(session, at, path, (bytes_read, bytes_written), forced)?;
            }
            SftpEvent::Other { .. } => self.set_last_op(session, None),
            SftpEvent::Remove { .. }
            | SftpEvent::Rmdir { .. }
            | SftpEvent::Mkdir { .. }
            | SftpEvent::TwoPaths { .. }
            | SftpEvent::Set { .. } => self.sftp_operation(session, host, at, event)?,
            SftpEvent::Status { text } => self.sftp_status(session, host, at, &text)?,
        }
        Ok(true)
    }

    /// An operation sftp-server logged (remove, rmdir, mkdir, rename, link, set), with the names
    /// it makes or removes; other events are not operations.
    fn sftp_operation(
        &mut self,
        session: i64,
        host: &str,
        at: Micros,
        event: SftpEvent,
    ) -> Result<()> {
        match event {
            SftpEvent::Remove { path } => {
                let op = Op::on(OperationKind::Remove, &path);
                self.operation(session, host, at, op)?;
                self.name_removed(session, &path);
            }
            SftpEvent::Rmdir { path } => {
                let op = Op::on(OperationKind::Rmdir, &path);
                self.operation(session, host, at, op)?;
                self.name_removed(session, &path);
            }
            SftpEvent::Mkdir { path, mode } => {
                let op = Op {
                    detail: Some(&mode),
                    ..Op::on(OperationKind::Mkdir, &path)
                };
                self.operation(session, host, at, op)?
            }
            SftpEvent::TwoPaths { kind, old, new } => {
                let op = Op {
                    target: Some(&new),
                    ..Op::on(kind, &old)
                };
                self.operation(session, host, at, op)?;
                let uploaded = matches!(kind, OperationKind::Rename | OperationKind::PosixRename)
                    && self.renamed_file(session, &old, &new)?;
                self.name_made(session, kind, &old, &new, uploaded);
            }
            SftpEvent::Set {
                path,
                attribute,
                value,
            } => {
                let detail = format!("{attribute} {value}");
                let op = Op {
                    detail: Some(&detail),
                    ..Op::on(OperationKind::Set, &path)
                };
                self.operation(session, host, at, op)?
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether sftp-server's line is the other source's copy of a session: of a replayed
    /// session, or of a live wrapper session the other source brought.
    fn is_other_sources_copy(
        &mut self,
        key: &(String, i64),
        at: Micros,
        event: &SftpEvent,
    ) -> bool {
        if !self.replayed_sftp.is_empty() {
            let replayed = (self.reading_journal, key.0.clone(), key.1);
            match self.replayed_sftp.get(&replayed) {
                Some(until) if until.is_none_or(|until| at <= until) => return true,
                Some(_) => {
                    self.replayed_sftp.remove(&replayed);
                }
                None => {}
            }
        }
        // A wrapper session the other source brought, read by a run of this source that
        // started inside it (so its start here was not seen to be a copy): its sftp-server's
        // lines here are that copy too. Billed, they would count twice, and the journal's
        // origin fields they set would make the file's end of the session a copy.
        self.by_sftp_pid
            .get(key)
            .and_then(|id| self.sessions.get(id))
            .is_some_and(|state| {
                state.wrapper
                    && state.journal != self.reading_journal
                    && !(state.ended && matches!(event, SftpEvent::SessionOpened { .. }))
            })
    }

    /// sftp-server's `session opened`: the wrapper session waiting for it, or a session of its
    /// own (a plain sftp-server, or the wrapper's line still to come).
    fn sftp_session_opened(
        &mut self,
        key: &(String, i64),
        source: SessionSource,
        at: Micros,
        user: &str,
        client_ip: &str,
    ) -> Result<bool> {
        self.closed_plain.remove(key);
        if let Some(&id) = self.by_sftp_pid.get(key)
            && self.sessions.get(&id).is_some_and(|s| s.ended)
        {
            // A new process with the PID of an ended session's sftp-server.
            self.forget_session(id);
        }
        if let Some(&id) = self.by_sftp_pid.get(key) {
            let state = self.sessions.get(&id);
            let fresh_wrapper =
                state.is_some_and(|s| s.wrapper && s.user.as_deref().is_none_or(|u| u == user));
            if fresh_wrapper {
                self.out.fill_session_identity(id, user, client_ip);
                self.touched = Some(id);
                return Ok(true);
            }
            // The PID's earlier session never logged its end: give up on it.
            self.out.abandon_session(id);
            self.forget_session(id);
        }
        self.touched = Some(self.plain_session(key, source, at, Some((user, client_ip)))?);
        Ok(true)
    }

    /// sftp-server's `session closed`: the end of a plain session, or of a wrapper session
    /// whose own end came first.
    fn sftp_session_closed(
        &mut self,
        session: i64,
        key: &(String, i64),
        at: Micros,
        user: &str,
        client_ip: &str,
    ) -> Result<()> {
        self.drop_failed_opens(session, &key.0, at)?;
        self.out.mark_sftp_closed(session);
        self.out.fill_session_identity(session, user, client_ip);
        self.by_sftp_pid.remove(key);
        let (wrapper, ended) = match self.sessions.get_mut(&session) {
            Some(state) => {
                state.sftp_closed = true;
                (state.wrapper, state.ended)
            }
            None => (false, false),
        };
        if wrapper && ended {
            // The wrapper's end came first and said "forced" for want of this line.
            self.out.set_end_reason(session, EndReason::Closed);
            self.forget_session(session);
        } else if !wrapper {
            self.out.abandon_open_transfers(session);
            self.end_session_at(session, at, None, EndReason::Closed);
            self.linger(session, at);
        }
        Ok(())
    }

    /// A file opened: a transfer, open until its close line.
    fn sftp_open(
        &mut self,
        session: i64,
        at: Micros,
        path: Vec<u8>,
        flags: &str,
        mode: &str,
    ) -> Result<()> {
        let direction = Direction::from_open_flags(flags);
        let reached = self.reached(session, &path);
        let id = self.out.insert_transfer(&NewTransfer {
            session_id: session,
            path: &path,
            direction,
            open_flags: flags,
            mode: Some(mode),
            opened_at: at,
            reached: reached.as_deref(),
        })?;
        self.summary.transfers += 1;
        self.open_transfers
            .entry(session)
            .or_default()
            .push(OpenTransfer {
                id,
                session_id: session,
                path,
                direction,
                failed: false,
            });
        self.set_last_op(session, Some(LastOp::Transfer(id)));
        Ok(())
    }

    /// A close line cut at 500 characters: the transfer its visible name begins, counters unknown.
    fn sftp_cut_close(
        &mut self,
        session: i64,
        at: Micros,
        path_prefix: &[u8],
        forced: bool,
    ) -> Result<()> {
        let open = self.open_transfers.entry(session).or_default();
        // The visible name may be the whole name with text after it, or a part of it.
        let matches = |t: &OpenTransfer| {
            t.path.starts_with(path_prefix)
                || path_prefix
                    .strip_prefix(t.path.as_slice())
                    .is_some_and(|rest| rest.first() == Some(&b'"'))
        };
        let (id, direction) = match open.take_first(matches) {
            Some(t) => (t.id, t.direction),
            // Only a prefix of the name is known: not what it reached.
            None => (
                self.unopened_transfer(session, path_prefix, at, None)?,
                Direction::None,
            ),
        };
        let verdict = classify_cut_close(direction);
        self.summary.counters_unknown += 1;
        self.out.close_transfer(id, at, None, forced, &verdict);
        self.set_last_op(session, None);
        Ok(())
    }

    /// A transfer whose open line is missing (cut at 500 characters, or in a lost file), closed
    /// at `at`.
    fn unopened_transfer(
        &mut self,
        session: i64,
        path: &[u8],
        at: Micros,
        reached: Option<&[u8]>,
    ) -> Result<i64> {
        self.summary.transfers += 1;
        Ok(self.out.insert_transfer(&NewTransfer {
            session_id: session,
            path,
            direction: Direction::None,
            open_flags: "",
            mode: Some(""),
            opened_at: at,
            reached,
        })?)
    }

    /// A close line: the transfer of that name opened last (see `take_path`), or one whose open
    /// line is missing.
    fn sftp_close(
        &mut self,
        session: i64,
        at: Micros,
        path: Vec<u8>,
        (bytes_read, bytes_written): (u64, u64),
        forced: bool,
    ) -> Result<()> {
        let open = self.open_transfers.entry(session).or_default();
        let (id, direction) = match open.take_path(&path) {
            Some(t) => (t.id, t.direction),
            None => {
                let reached = self.reached(session, &path);
                let id = self.unopened_transfer(session, &path, at, reached.as_deref())?;
                (id, Direction::None)
            }
        };
        // No failure status is tied to a closed file: the log does not say which
        // request one answered (see take_path).
        let verdict = classify_close(
            Some(direction),
            bytes_read,
            bytes_written,
            forced,
            false,
            false,
        );
        self.out
            .close_transfer(id, at, Some((bytes_read, bytes_written)), forced, &verdict);
        let upload = verdict.counts_as == Some(CountsAs::Upload);
        self.note_close(session, id, path, upload);
        // sftp-server logs the close before doing it, but stat and realpath, which are not
        // logged at INFO, fail far more often right after a close than close does.
        self.set_last_op(session, None);
        Ok(())
    }

    /// A failure status: an operation of its own, and what it tells of the request before it.
    fn sftp_status(&mut self, session: i64, host: &str, at: Micros, text: &str) -> Result<()> {
        let previous = self.last_op.get(&session).copied().flatten();
        let failure = Op {
            kind: OperationKind::Failure,
            path: None,
            target: None,
            detail: Some(text),
        };
        self.session_operation(session, host, at, failure)?;
        match previous {
            // Only noted: whether the open failed is known at its close (it did not)
            // or at sftp-server's end without one (it did).
            Some(LastOp::Transfer(id)) => {
                if let Some(open) = self.open_transfers.get_mut(&session) {
                    open.mark_failed(id, text, at);
                }
                self.out.mark_transfer_answered(id);
            }
            Some(LastOp::Operation(id)) => {
                self.out.mark_operation_failed(id, text);
                // A rename refused (SFTP v3's rename does not replace an existing file):
                // the file keeps its name. Only a name taken says so (see NAME_TAKEN): a
                // partner's `ls missing` right after the rename must not take its new name
                // away. The names then stay as before the rename (names_undo), as a later
                // run, which skips the rename, has them.
                if let Some(renamed) = self.renamed.remove(&session)
                    && renamed.op == id
                    && text == NAME_TAKEN
                {
                    self.out.set_transfer_renamed(renamed.transfer, None);
                }
                if let Some((op, undo)) = self.names_undo.remove(&session)
                    && op == id
                    && text == NAME_TAKEN
                    && let Some(names) = self.names.get_mut(&session)
                {
                    names.undo(undo);
                }
            }
            None => {}
        }
        self.renamed.remove(&session);
        self.names_undo.remove(&session);
        // One status answers one request.
        self.set_last_op(session, None);
        Ok(())
    }
}

/// Says in an error line which of an input's lines were not billed for being older than what is
/// already ingested (those not said yet).
fn report_refusal(name: &str, r: &mut Refusal) {
    if r.lines == r.reported {
        return;
    }
    eprintln!(
        "sftpd-report: error: {name}: {} lines from {} to {} are older than what is already \
         ingested from host {} (up to {}) and were not billed: read now, sessions that span files \
         would be split and billed twice (the lines after them are read). Ingest rotated files \
         oldest first, or redo host {} in order with `sftpd-report ingest --rebuild FILE...` \
         (giving every log of that host you still have)",
        r.lines - r.reported,
        r.first,
        r.last,
        r.host,
        r.latest,
        r.host,
    );
    r.reported = r.lines;
}

/// `--rebuild`: forgets everything of the hosts whose lines `inputs` hold, and the checkpoints of
/// `inputs`, so that reading them again (oldest first) gives what reading them in order would
/// have. Returns the hosts.
pub(crate) fn forget_for_rebuild(
    store: &mut dyn IngestStore,
    inputs: &[Input],
    host_default: &str,
) -> Result<Vec<String>> {
    let mut hosts = std::collections::BTreeSet::new();
    let mut first_line_hashes = Vec::new();
    for input in inputs {
        let read_err = IngestError::reading(&input.name);
        if input.name == "-" {
            return Err(read_err(std::io::Error::other(
                "--rebuild reads each input twice: give files, not standard input",
            )));
        }
        let file = File::open(&input.name).map_err(read_err)?;
        let (mut reader, _) = open_maybe_gz(file).map_err(read_err)?;
        let mut line = Vec::new();
        let mut first = true;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
                break;
            }
            if std::mem::take(&mut first) {
                first_line_hashes.push(first_line_hash(&line));
            }
            if let Some(l) = parse::parse_syslog_line(&line) {
                hosts.insert(l.host.unwrap_or(host_default).to_owned());
            }
        }
    }
    // All of it or nothing: a failure leaves the database as it was.
    crate::accounting::storage::in_transaction(store, |store| {
        for hash in &first_line_hashes {
            store.forget_checkpoints(hash)?;
        }
        for host in &hosts {
            store.forget_host(host)?;
        }
        Ok(())
    })?;
    Ok(hosts.into_iter().collect())
}

/// Opens a file, decompressing gzip transparently (by its magic bytes, not its name); says
/// whether it was compressed.
fn open_maybe_gz(mut file: File) -> std::io::Result<(Box<dyn BufRead>, bool)> {
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok((
            Box::new(BufReader::with_capacity(
                1 << 16,
                GzReader(MultiGzDecoder::new(file)),
            )),
            true,
        ))
    } else {
        Ok((Box::new(BufReader::with_capacity(1 << 16, file)), false))
    }
}

/// gzip, with errors that say what they mean: flate2 reports a cut file as `unexpected end of
/// file` or `incomplete deflate stream`.
struct GzReader(MultiGzDecoder<File>);

impl Read for GzReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("the gzip data is truncated or corrupt ({e})"),
            )
        })
    }
}

/// A line `read_until` gave `n` bytes of is whole: it ends in a newline, or the file is
/// finished (its writer moved on: its last line will get no more).
fn complete_line(line: &[u8], n: usize, finished: bool) -> bool {
    n > 0 && (finished || line.last() == Some(&b'\n'))
}

/// Reads `reader` (past its first line, which the prefix hash, byte offset and line count given
/// already hold) up to the furthest of a file's `candidates` checkpoints, and returns the
/// furthest one whose prefix is this file's.
fn read_to_resume_point(
    reader: &mut Box<dyn BufRead>,
    candidates: &[Checkpoint],
    finished: bool,
    (prefix, offset, lines_done): (&mut Sha256, &mut u64, &mut i64),
) -> std::io::Result<Option<Checkpoint>> {
    let mut resume = None;
    let Some(furthest) = candidates.last().map(|c| c.byte_offset as u64) else {
        return Ok(None);
    };
    let mut line = Vec::with_capacity(512);
    loop {
        for c in candidates
            .iter()
            .filter(|c| c.byte_offset as u64 == *offset)
        {
            if c.prefix_sha256.is_empty()
                || c.prefix_sha256 == hex::encode(prefix.clone().finalize())
            {
                resume = Some(c.clone());
            }
        }
        if *offset >= furthest {
            break;
        }
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if !complete_line(&line, n, finished) {
            break;
        }
        prefix.update(&line);
        *offset += n as u64;
        *lines_done += 1;
    }
    Ok(resume)
}

/// The key under which a log file's checkpoints are found, across renames and compression: the
/// hash of its first line. Which of them is this file's is decided by their prefix hashes.
pub fn first_line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

fn first_line_time(path: &str) -> Result<Option<Micros>> {
    let read_err = IngestError::reading(path);
    let file = File::open(path).map_err(read_err)?;
    let mtime = file
        .metadata()
        .and_then(|m| m.modified())
        .map(DateTime::<Local>::from)
        .unwrap_or_else(|_| Local::now());
    let (mut reader, _) = open_maybe_gz(file).map_err(read_err)?;
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(read_err)?;
    Ok(parse::parse_syslog_line(&line).and_then(|l| l.timestamp.resolve(mtime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The previous file of each of logrotate's naming schemes, and nothing else beside the log.
    #[test]
    fn predecessors_are_the_latest_rotations_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sftpd.log");
        let name = log.display().to_string();
        for other in [
            "sftpd.log",
            "sftpd.log.2.gz",
            "sftpd.log.rfc3339",
            "sftpd.log-20261123.gz",
            "sftpd.log-20261130.gz",
            "sftpd.log-20261207",
            "sftpd.logx-20261208",
            "other.log-20261208",
        ] {
            std::fs::write(dir.path().join(other), "x\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("sftpd.log-20261209")).unwrap();
        let at = |n: &str| dir.path().join(n).display().to_string();
        assert_eq!(predecessors(&name), vec![at("sftpd.log-20261207")]);
        std::fs::write(dir.path().join("sftpd.log.1"), "x\n").unwrap();
        std::fs::write(dir.path().join("sftpd.log-20261207.gz"), "x\n").unwrap();
        assert_eq!(
            predecessors(&name),
            vec![
                at("sftpd.log.1"),
                at("sftpd.log-20261207"),
                at("sftpd.log-20261207.gz")
            ]
        );
    }
}
