//! The accounting database: the traits [`Database`] (schema, transactions, the writer's lock),
//! [`IngestStore`], [`CopyStore`] and [`PruneStore`] on it, [`ReportStore`], and [`Store`], all
//! of them, which [`open`] returns; an embedded SQLite implementation (the default) and a
//! PostgreSQL one for a central store fed by many servers. Both have the same tables, views and
//! guarantees; the shared test suite runs against both.
//!
//! Times cross this interface as [`crate::log::parse::Micros`] (UTC microseconds), both ways:
//! PostgreSQL stores a `timestamptz`, SQLite (schema 6) the microseconds in `started_at_us` and
//! the like, with `started_at` a column of the view `sessions` (schema 9: the rows are in
//! `session_rows`, …) showing them as text (`2026-11-26T21:15:11.000000Z`) for people's own
//! queries. `path` holds a
//! name's original bytes (names need not be UTF-8), `path_text` a readable form for people and
//! BI tools (in SQLite computed from `path`, stored only for the names whose readable form
//! differs from their bytes).

mod pending;
pub(crate) use pending::Writer;
use pending::{IdTable, WriteBehind};
pub mod postgres;
pub mod sqlite;

use crate::accounting::sql::{Dialect, Filter, Kind, Value};
pub use crate::log::parse::Micros;
pub use crate::log::parse::OperationKind;
pub use crate::log::parse::SessionSource;
pub use crate::log::parse::path_text;
use crate::log::text_enum;
pub(crate) use crate::log::transfer::ClosedFile;
pub use crate::log::transfer::CountsAs;
pub use crate::log::transfer::Direction;
use std::borrow::Cow;
use std::path::PathBuf;
use thiserror::Error;

pub use sqlite::SqliteStore;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Postgres(String),
    #[error(
        "database {path} has schema version {found}, newer than this sftpd-report knows ({known}); upgrade sftpd-report"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "database {path} has schema version {found}, older than this sftpd-report's ({known}), and could not be upgraded ({cause}): run sftpd-report ingest on it, or report from a writable copy"
    )]
    TooOld {
        path: String,
        found: i64,
        known: i64,
        cause: String,
    },
    #[error(
        "database {0} is an empty file, not a database (sftpd-report ingest creates a new database where there is no file)"
    )]
    EmptyFile(String),
    #[error(
        "the thread writing to the database stopped; what was not committed was not saved and is read again next time"
    )]
    WriterLost,
    #[error("another sftpd-report ingest is running on this database")]
    Busy,
    #[error("{0}")]
    Lock(String),
    /// `copy` would keep the target's part of a session the source holds more of.
    #[error(
        "copy refused: session {0} holds more in the source than in the target (which read only part of its log); nothing was copied: ingest the rest of the log into the target, or copy into a database without it"
    )]
    CopyBehind(String),
    /// A `usage_hourly` sum would pass 64 bits (as SQL's `SUM` fails there).
    #[error("integer overflow in usage_hourly")]
    RollupOverflow,
    /// Writing a report out failed (a closed pipe, a full disk).
    #[error("writing the report: {0}")]
    Write(#[source] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Write(e)
    }
}

/// The schema version both backends migrate to.
pub const SCHEMA_VERSION: i64 = 13;

/// Counters as the stores hold them: signed 64-bit, `None` when not known. The parser rejects
/// counters above [`crate::log::parse::MAX_COUNTER`], so the conversion never wraps; one that
/// would is stored as unknown rather than as a wrong number.
pub(crate) fn stored_counters(counters: Option<(u64, u64)>) -> (Option<i64>, Option<i64>) {
    match counters {
        Some((r, w)) => (i64::try_from(r).ok(), i64::try_from(w).ok()),
        None => (None, None),
    }
}

/// Text as both stores keep it. PostgreSQL's `text` cannot hold NUL, so a NUL in any text
/// column (host, user, address, key, status text, a wrapper's `\x00` escape, …) is kept as
/// U+FFFD by both stores alike; names keep their bytes in `path`, and their readable form
/// shows a NUL as `\x00`.
pub fn text(s: &str) -> Cow<'_, str> {
    if memchr::memchr(0, s.as_bytes()).is_none() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    }
}

/// [`text`] of a value that may be missing.
pub(crate) fn opt_text(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(text)
}

text_enum! {
    /// How a session ended, as far as the log tells.
    pub enum EndReason {
        /// sftp-server logged `session closed`: the client ended the session.
        Closed => "closed",
        /// The session ended without sftp-server's `session closed` (killed, connection lost).
        Forced => "forced",
        /// No end seen (yet): still running, or its end is in a log not ingested.
        MissingEnd => "missing_end",
        /// The wrapper refused the session.
        Refused => "refused",
    }
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSpec {
    Sqlite(PathBuf),
    /// A `postgres://` URL; its password, if any, is never shown.
    Postgres(String),
}

impl DbSpec {
    /// Reads `--db` / `[report] database`: `postgres://…` or `postgresql://…`, `sqlite://PATH`, or
    /// a plain path.
    pub fn parse(spec: &str) -> std::result::Result<DbSpec, String> {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(DbSpec::Postgres(spec.to_owned()));
        }
        let path = spec.strip_prefix("sqlite://").unwrap_or(spec);
        if path.is_empty() {
            return Err("the database is empty: give a path or a postgres:// URL".to_owned());
        }
        Ok(DbSpec::Sqlite(PathBuf::from(path)))
    }

    /// For messages: the URL with any password replaced by `***`.
    pub fn display(&self) -> String {
        match self {
            DbSpec::Sqlite(p) => p.display().to_string(),
            DbSpec::Postgres(url) => redact_url(url),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// Opens (creating and migrating as needed) the database `spec` names. For PostgreSQL,
/// `password` (from a file or PGPASSWORD) is used when the URL carries none.
pub fn open(spec: &DbSpec, password: Option<&str>) -> Result<Box<dyn Store>> {
    match spec {
        DbSpec::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
        DbSpec::Postgres(url) => Ok(Box::new(postgres::PgStore::connect(url, password)?)),
    }
}

/// Opens `spec` for reports that only read: nothing is written (no migration, no pragma that
/// writes), so a report runs on a database its user cannot write. A database of an older schema
/// is upgraded as [`open`] does where that can be done, else it is an error that says so; a
/// zero-length file is an error, not an empty database.
pub(crate) fn open_for_reading(spec: &DbSpec, password: Option<&str>) -> Result<Box<dyn Store>> {
    match spec {
        DbSpec::Sqlite(path) => Ok(Box::new(SqliteStore::open_for_reading(path)?)),
        DbSpec::Postgres(url) => Ok(Box::new(postgres::PgStore::connect_for_reading(
            url, password,
        )?)),
    }
}

/// A session as ingest first learns of it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub host: String,
    pub user: Option<String>,
    pub client_ip: Option<String>,
    pub client_port: Option<i64>,
    pub local_ip: Option<String>,
    pub local_port: Option<i64>,
    pub started_at: Micros,
    pub source: SessionSource,
    pub sid: Option<String>,
    /// The PID the session is keyed by: the wrapper's, or sftp-server's without the wrapper.
    pub pid: i64,
    pub sftp_pid: Option<i64>,
}

/// A session that has not ended, as ingest needs it to go on where the last run stopped.
#[derive(Debug, Clone)]
pub struct OpenSession {
    pub id: i64,
    pub host: String,
    pub user: Option<String>,
    pub sid: Option<String>,
    pub sftp_pid: Option<i64>,
    pub sftp_closed: bool,
    pub started_at: Micros,
    pub source: SessionSource,
    /// What a following `sent status` line answers.
    pub last_op: Option<LastOp>,
    /// It has a transfer from the wrapper's `file closed` lines (capture mode): its transfers
    /// come from those, not from sftp-server's open and close lines.
    pub wire: bool,
    /// Its lines came from the journal (it has the journal's origin fields), not a file.
    pub journal: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct SessionEnd<'a> {
    pub ended_at: Micros,
    pub duration_ms: Option<i64>,
    pub exit_status: Option<i64>,
    pub signal: Option<&'a str>,
    pub end_reason: EndReason,
}

#[derive(Debug, Clone)]
pub(crate) struct NewTransfer<'a> {
    pub session_id: i64,
    pub path: &'a [u8],
    pub direction: Direction,
    pub open_flags: &'a str,
    /// sftp-server's `mode` of the open (`""` when the open line is missing); `None` for a
    /// transfer from the wrapper's `file closed` line, which is how such rows are told apart.
    pub mode: Option<&'a str>,
    pub opened_at: Micros,
    /// The file the name reached through the session's links and renames, when another name.
    pub reached: Option<&'a [u8]>,
}

#[derive(Debug, Clone)]
pub(crate) struct NewOperation<'a> {
    pub session_id: Option<i64>,
    pub host: &'a str,
    pub user: Option<&'a str>,
    pub at: Micros,
    pub kind: OperationKind,
    pub path: Option<&'a [u8]>,
    pub target: Option<&'a [u8]>,
    pub detail: Option<&'a str>,
}

/// The row a session's next `sent status` line answers (kept in `sessions.last_op_kind` and
/// `last_op_id` between runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastOp {
    Transfer(i64),
    Operation(i64),
}

impl LastOp {
    /// The two columns it is stored in.
    pub fn columns(op: Option<LastOp>) -> (Option<&'static str>, Option<i64>) {
        match op {
            Some(LastOp::Transfer(id)) => (Some("transfer"), Some(id)),
            Some(LastOp::Operation(id)) => (Some("operation"), Some(id)),
            None => (None, None),
        }
    }

    /// Back from the two columns.
    pub(crate) fn from_columns(kind: Option<&str>, id: Option<i64>) -> Option<LastOp> {
        match (kind, id) {
            (Some("transfer"), Some(id)) => Some(LastOp::Transfer(id)),
            (Some("operation"), Some(id)) => Some(LastOp::Operation(id)),
            _ => None,
        }
    }
}

/// A transfer not closed yet, as ingest needs it to go on where the last run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTransfer {
    pub id: i64,
    pub session_id: i64,
    pub path: Vec<u8>,
    pub direction: Direction,
    /// A failure answered the open.
    pub failed: bool,
}

/// A link, rename or removal of a session still open that no failure answered, as ingest needs
/// it to follow the names the session made (accounting::reach) where the last run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameOperation {
    pub session_id: i64,
    pub id: i64,
    pub kind: OperationKind,
    pub path: Vec<u8>,
    pub target: Option<Vec<u8>>,
    /// A rename of an upload the session closed under `path`, which took `target` as its
    /// `renamed_to`.
    pub renamed_upload: bool,
    /// The failure status that answered it, if one did.
    pub status: Option<String>,
}

/// The journal's own fields about a session's first entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    pub pid: Option<i64>,
    pub uid: Option<i64>,
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub first_line_hash: String,
    /// SHA-256 of the file's bytes before `byte_offset`: a file is taken up again from here only
    /// when its own bytes up to here hash the same. Empty in checkpoints of schema version 2 and
    /// older, which only the first line identified.
    pub prefix_sha256: String,
    pub path: String,
    pub inode: Option<i64>,
    pub byte_offset: i64,
    pub lines: i64,
}

/// Whole rows, for `sftpd-report copy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: i64,
    pub host: String,
    pub user: Option<String>,
    pub client_ip: Option<String>,
    pub client_port: Option<i64>,
    pub local_ip: Option<String>,
    pub local_port: Option<i64>,
    pub started_at: Micros,
    pub ended_at: Option<Micros>,
    pub duration_ms: Option<i64>,
    pub exit_status: Option<i64>,
    pub signal: Option<String>,
    pub end_reason: EndReason,
    pub source: SessionSource,
    pub sid: Option<String>,
    pub pid: i64,
    pub sftp_pid: Option<i64>,
    pub auth_method: Option<String>,
    pub auth_key: Option<String>,
    pub sftp_closed: bool,
    pub origin_pid: Option<i64>,
    pub origin_uid: Option<i64>,
    pub origin_command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    pub session_id: i64,
    pub path: Vec<u8>,
    pub direction: Direction,
    pub counts_as: Option<CountsAs>,
    pub open_flags: String,
    pub mode: Option<String>,
    pub bytes_read: Option<i64>,
    pub bytes_written: Option<i64>,
    pub opened_at: Micros,
    pub closed_at: Option<Micros>,
    pub forced: bool,
    pub failed: bool,
    pub complete: bool,
    pub counters_cut: bool,
    /// The name a rename later in the session gave the file (an upload to `x.filepart`
    /// renamed to `x`).
    pub renamed_to: Option<Vec<u8>>,
    /// The file `path` reached through links and renames the session made before the open
    /// (`invoice-42.xml` for a download through a link to it).
    pub reached: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    pub session_id: Option<i64>,
    pub host: String,
    pub user: Option<String>,
    pub at: Micros,
    pub kind: OperationKind,
    pub path: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
    pub detail: Option<String>,
    pub failed: bool,
    pub status: Option<String>,
}

/// What every use of a database needs: a name, the schema, transactions and the writer's lock.
pub trait Database {
    /// A name for messages (a path, or the URL without its password).
    fn describe(&self) -> String;
    fn schema_version(&mut self) -> Result<i64>;
    /// Takes the lock that lets one writer (an ingest or a copy) at a time write this database;
    /// with `wait` false, fails with [`StoreError::Busy`] instead of waiting. Silent: see
    /// [`lock_for_writing`] for a command that should say why it waits.
    fn lock_for_ingest(&mut self, wait: bool) -> Result<()>;
    /// Adds to the ingest counters (`lines_read`, `lines_skipped`) in the caller's transaction,
    /// so that they count committed lines exactly once.
    fn add_ingest_counts(&mut self, counts: &[(&str, u64)], at: Micros) -> Result<()>;
    /// Lets the next writer in: follow mode holds the lock only while it reads and commits, so
    /// that followers on many servers share one central database.
    fn unlock_ingest(&mut self) -> Result<()>;

    fn begin(&mut self) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self) -> Result<()>;

    /// The checkpoints of the log files whose first line hashes to `first_line_hash` (different
    /// files can share a first line), by offset.
    fn checkpoints(&mut self, first_line_hash: &str) -> Result<Vec<Checkpoint>>;
    /// Recomputes the `usage_hourly` cells that changes since the last refresh touched (listed
    /// in `usage_dirty` by triggers), or every cell with `all`; within the caller's
    /// transaction. Every commit of a store runs it first, so the rollups never lag the rows.
    fn refresh_rollups(&mut self, all: bool) -> Result<()>;
    /// The number of `usage_hourly` rows that differ from the rollups computed afresh from the
    /// rows (missing, extra or different): 0 when they are exact.
    fn rollup_differences(&mut self) -> Result<u64>;
    /// Stores `c`, in place of `replaces` (the same file's earlier checkpoint) if given.
    fn put_checkpoint(
        &mut self,
        replaces: Option<&Checkpoint>,
        c: &Checkpoint,
        now: Micros,
    ) -> Result<()>;
}

/// What the ingest writes and reads back to go on where the last run stopped. The ingest goes
/// through [`Writer`], which holds rows back and writes them first where a read needs them:
/// these methods see only what is written.
pub trait IngestStore: Database {
    /// Writes what `held` holds: with `background`, its rows and row changes in a thread of
    /// the store's own while the ingest goes on (the next use of the connection waits for it);
    /// else everything, here and now.
    fn write(&mut self, held: &mut WriteBehind, background: bool) -> Result<()>;
    /// The latest session start of `host` in the database.
    fn latest_start(&mut self, host: &str) -> Result<Option<Micros>>;
    /// The id of the session in the database with this host, PID and start.
    fn find_session(&mut self, host: &str, pid: i64, started_at: Micros) -> Result<Option<i64>>;
    /// The session in the database with this wrapper session id and host (the same up to the
    /// first dot): its id, and whether its lines came from the journal (it has the journal's
    /// origin fields).
    fn find_session_by_sid(&mut self, host: &str, sid: &str) -> Result<Option<(i64, bool)>>;
    /// An id for a row of `table` held back for a later batch.
    fn reserve_id(&mut self, table: IdTable) -> Result<i64>;
    /// The sftp-server PID stored for session `id`, if known.
    fn session_sftp_pid(&mut self, id: i64) -> Result<Option<i64>>;
    fn open_sessions(&mut self) -> Result<Vec<OpenSession>>;
    fn open_transfers(&mut self) -> Result<Vec<OpenTransfer>>;
    /// The links, renames and removals of the sessions still open, oldest first (whatever
    /// status followed them: see `Ingestor::name_made`).
    fn open_name_operations(&mut self) -> Result<Vec<NameOperation>>;
    /// What the journal itself says wrote the session's lines (not what the lines claim): the
    /// PID, UID and command of the first journal entry of the session. Kept when already set.
    fn set_session_origin(&mut self, id: i64, origin: &SessionOrigin) -> Result<()>;
    /// The latest time (storage text) of anything ingested from `host`: a session's start or end.
    fn latest_time(&mut self, host: &str) -> Result<Option<Micros>>;
    /// Forgets every session, transfer, operation and pending login of `host` (`--rebuild`),
    /// within the caller's transaction.
    fn forget_host(&mut self, host: &str) -> Result<()>;
    /// Forgets the checkpoints of the files whose first line hashes to `first_line_hash`.
    fn forget_checkpoints(&mut self, first_line_hash: &str) -> Result<()>;
    /// Where the last ingest of journal `source` stopped.
    fn journal_cursor(&mut self, source: &str) -> Result<Option<String>>;
    fn put_journal_cursor(&mut self, source: &str, cursor: &str, now: Micros) -> Result<()>;
    /// Moves everything recorded under `from` to `into` and deletes `from`.
    fn merge_session(&mut self, from: i64, into: i64) -> Result<()>;
    /// Deletes a session with its transfers and operations (a copy of one stored already).
    fn discard_session(&mut self, id: i64) -> Result<()>;
    /// Deletes the session's transfers that came from sftp-server's open and close lines (those
    /// with a `mode`) when the session turns out to take its transfers from the
    /// wrapper's `file closed` lines; returns how many were deleted.
    fn forget_log_transfers(&mut self, session_id: i64) -> Result<u64>;
    /// Takes the latest `Accepted` for this host, user and address (and port, when known).
    fn take_pending_auth(
        &mut self,
        host: &str,
        user: &str,
        client_ip: &str,
        client_port: Option<i64>,
    ) -> Result<Option<(String, Option<String>)>>;
    /// Forgets `Accepted` lines that no session claimed.
    fn prune_pending_auth(&mut self, before: Micros) -> Result<()>;
}

/// What the reports read.
pub trait ReportStore {
    /// The SQL dialect of this store's report queries.
    fn dialect(&self) -> Dialect;

    /// Runs a report query (parameters: user, host, since, until) and hands its rows, one at a
    /// time, to `sink`: memory stays flat whatever the number of rows.
    fn stream_rows(
        &mut self,
        sql: &str,
        columns: &[(&'static str, Kind)],
        filter: &Filter,
        sink: &mut RowSink<'_>,
    ) -> Result<()>;

    /// Whether `usage_hourly` lags the rows: cells changed outside a store's commit (by hand,
    /// or by an older sftpd-report) wait in `usage_dirty` until the next commit or
    /// `sftpd-report rollups --rebuild`.
    fn rollups_pending(&mut self) -> Result<bool>;
}

/// Where streamed report rows go.
pub(crate) type RowSink<'a> = dyn FnMut(Vec<Value>) -> Result<()> + 'a;

/// What copying one database into another reads from the source and asks of the target; the
/// rows go into the target as the ingest's do, through [`IngestStore::write`].
pub trait CopyStore: IngestStore {
    fn all_sessions(&mut self) -> Result<Vec<SessionRecord>>;
    fn all_transfers(&mut self) -> Result<Vec<TransferRecord>>;
    fn all_operations(&mut self) -> Result<Vec<OperationRecord>>;
    fn all_checkpoints(&mut self) -> Result<Vec<Checkpoint>>;
    /// Of stored session `id`: whether it ended, and how much of it was read: its transfers
    /// and operations, each once more for a close, a failure and a rename it has.
    fn session_rows(&mut self, id: i64) -> Result<(bool, i64)>;
    /// Whether a refusal of no session with `o`'s host, time, kind, detail and user is stored.
    fn has_refusal(&mut self, o: &OperationRecord) -> Result<bool>;
}

/// What a prune removed (or, rolled back, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: u64,
    pub transfers: u64,
    pub operations: u64,
    /// Sessions that started before the cut but have no end: an ingest may still be following
    /// them, so they stay.
    pub kept_open: u64,
}

/// Retention: deleting what ended before a cut.
pub trait PruneStore: Database {
    /// Within the caller's transaction, deletes the sessions (of `user`, or of everyone) that
    /// ended before `before`, with their transfers and operations, and the operations of no
    /// session (refusals) before it; the rollups follow through the delete triggers.
    fn delete_ended_before(&mut self, before_us: i64, user: Option<&str>) -> Result<Pruned>;
}

/// Deletes what ended before `before_us` (UTC microseconds) in one transaction, with the
/// writer's lock, so that an ingest never sees half of it and a kill leaves all or nothing; with
/// `dry_run`, does the same and rolls it back, so that what it says is exactly what a prune
/// would do.
pub fn prune<S: PruneStore + ?Sized>(
    db: &mut S,
    before_us: i64,
    user: Option<&str>,
    dry_run: bool,
) -> Result<Pruned> {
    lock_for_writing(db, true)?;
    db.begin()?;
    match db.delete_ended_before(before_us, user) {
        Ok(pruned) if dry_run => db.rollback().map(|()| pruned),
        Ok(pruned) => db.commit().map(|()| pruned),
        Err(e) => {
            let _ = db.rollback();
            Err(e)
        }
    }
}

/// A host name up to its first dot: journald records the full name where rsyslogd writes the
/// short one, so a session read from both is matched on this (with its session id).
pub(crate) fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// The key a wrapper session is known by: its session id (unique: it names the host, the start,
/// the PID and 32 random bits) and its host up to the first dot.
pub(crate) fn sid_key(host: &str, sid: &str) -> (String, String) {
    (short_host(host).to_owned(), sid.to_owned())
}

/// SQL: a row's `host` is parameter `$p` (a [`short_host`]) or that followed by a dot and more;
/// a condition an index on `host` serves as two ranges.
macro_rules! same_host_sql {
    ($p:literal) => {
        concat!(
            "(host = ",
            $p,
            " OR (host > ",
            $p,
            " || '.' AND host < ",
            $p,
            " || '/'))"
        )
    };
}
pub(crate) use same_host_sql;

/// A database that serves them all: what [`open`] returns.
pub trait Store: IngestStore + ReportStore + CopyStore + PruneStore {}

impl<T: IngestStore + ReportStore + CopyStore + PruneStore> Store for T {}

/// Takes `db`'s writer lock, saying on stderr that it waits when another writer holds it.
pub(crate) fn lock_for_writing<S: Database + ?Sized>(db: &mut S, wait: bool) -> Result<()> {
    match db.lock_for_ingest(false) {
        Err(StoreError::Busy) if wait => {
            eprintln!(
                "sftpd-report: another ingest is running on this database; waiting for it to finish"
            );
            db.lock_for_ingest(true)
        }
        other => other,
    }
}

/// Runs `work` in one transaction of `db`: committed when it succeeds, rolled back when not.
pub(crate) fn in_transaction<S: Database + ?Sized, T>(
    db: &mut S,
    work: impl FnOnce(&mut S) -> Result<T>,
) -> Result<T> {
    db.begin()?;
    match work(db) {
        Ok(value) => {
            db.commit()?;
            Ok(value)
        }
        Err(e) => {
            let _ = db.rollback();
            Err(e)
        }
    }
}

/// Copies every session (with its transfers and operations) and checkpoint from `from` to `to`
/// in one transaction (`sftpd-report copy`; not to be confused with the schema migrations each
/// backend runs when it opens a database). Sessions `to` already has (same host and wrapper
/// session id, or same host, PID and start) are skipped with their rows, so running it twice,
/// or after the same logs were ingested there (from the file or the journal), adds nothing. Returns (sessions copied, sessions skipped).
pub(crate) fn copy_database(
    from: &mut dyn CopyStore,
    to: &mut dyn CopyStore,
) -> Result<(u64, u64)> {
    let sessions = from.all_sessions()?;
    let transfers = from.all_transfers()?;
    let operations = from.all_operations()?;
    let checkpoints = from.all_checkpoints()?;
    let mut by_session: std::collections::HashMap<i64, Vec<&TransferRecord>> = Default::default();
    for t in &transfers {
        by_session.entry(t.session_id).or_default().push(t);
    }
    let mut ops_by_session: std::collections::HashMap<Option<i64>, Vec<&OperationRecord>> =
        Default::default();
    for o in &operations {
        ops_by_session.entry(o.session_id).or_default().push(o);
    }
    lock_for_writing(to, true)?;
    in_transaction(to, |to| {
        let mut held = WriteBehind::default();
        // The session ids of the sessions held, which the target cannot see before they are
        // written (another spelling of a host may name the same session).
        let mut held_sids = std::collections::HashSet::new();
        let (mut copied, mut skipped) = (0, 0);
        for s in &sessions {
            let sid = s.sid.as_deref().map(|sid| sid_key(&s.host, sid));
            if sid.as_ref().is_some_and(|k| held_sids.contains(k)) {
                to.write(&mut held, false)?;
            }
            let source_transfers = by_session.get(&s.id).map_or(&[][..], Vec::as_slice);
            let source_ops = ops_by_session
                .get(&Some(s.id))
                .map_or(&[][..], Vec::as_slice);
            if already_there(to, s, source_transfers, source_ops)? {
                skipped += 1;
                continue;
            }
            copied += 1;
            hold_copy(to, &mut held, s, source_transfers, source_ops)?;
            held_sids.extend(sid);
            if held.full() {
                to.write(&mut held, false)?;
            }
        }
        // Refusals without a session are copied unless the target has the same one.
        let (mut refusals, mut seen) = (Vec::new(), std::collections::HashSet::new());
        for o in ops_by_session.get(&None).into_iter().flatten() {
            let key = (&o.host, o.at, o.kind, &o.detail, &o.user);
            if !seen.contains(&key) && !to.has_refusal(o)? {
                seen.insert(key);
                refusals.push((to.reserve_id(IdTable::Operations)?, (*o).clone()));
            }
        }
        held.add_copied_rows([], refusals);
        to.write(&mut held, false)?;
        let now = Micros::now();
        for c in &checkpoints {
            let have = to.checkpoints(&c.first_line_hash)?;
            if !have.iter().any(|h| h.prefix_sha256 == c.prefix_sha256) {
                to.put_checkpoint(None, c, now)?;
            }
        }
        Ok((copied, skipped))
    })
}

/// Whether the target holds source session `s` already (by the wrapper's session id, unique
/// whatever the precision of its start as another source read it; else by host, PID and
/// start); an error when it holds less of it than the source does.
fn already_there(
    to: &mut dyn CopyStore,
    s: &SessionRecord,
    transfers: &[&TransferRecord],
    ops: &[&OperationRecord],
) -> Result<bool> {
    let stored = match &s.sid {
        Some(sid) => to.find_session_by_sid(&s.host, sid)?.map(|(id, _)| id),
        None => None,
    };
    let stored = match stored {
        Some(id) => Some(id),
        None => to.find_session(&s.host, s.pid, s.started_at)?,
    };
    let Some(id) = stored else {
        return Ok(false);
    };
    let (ended, have) = to.session_rows(id)?;
    // The target's session is the same one: it must not hold less than the source's, whose
    // checkpoints come along and would make the next ingest skip the rest. Not only the rows:
    // a line read later may settle a row already there (a transfer's close, a failure status,
    // a rename) without adding one, so each row counts once more for each of those it has
    // (session_rows alike).
    let rows: usize = (transfers.iter())
        .map(|t| {
            1 + usize::from(t.closed_at.is_some() || t.forced || t.complete)
                + usize::from(t.failed)
                + usize::from(t.renamed_to.is_some())
        })
        .sum::<usize>()
        + (ops.iter())
            .map(|o| 1 + usize::from(o.failed))
            .sum::<usize>();
    if (s.ended_at.is_some() && !ended) || have < rows as i64 {
        let name = match &s.sid {
            Some(sid) => format!("{sid:?} of host {:?}", s.host),
            None => format!(
                "of host {:?}, PID {}, start {}",
                s.host, s.pid, s.started_at
            ),
        };
        return Err(StoreError::CopyBehind(name));
    }
    Ok(true)
}

/// Holds source session `s` with its rows under ids the target reserves for them.
fn hold_copy(
    to: &mut dyn CopyStore,
    held: &mut WriteBehind,
    s: &SessionRecord,
    transfers: &[&TransferRecord],
    ops: &[&OperationRecord],
) -> Result<()> {
    let id = to.reserve_id(IdTable::Sessions)?;
    held.add_copied_session(SessionRecord { id, ..s.clone() });
    let transfers = (transfers.iter())
        .map(|t| {
            let row = TransferRecord {
                session_id: id,
                ..(*t).clone()
            };
            Ok((to.reserve_id(IdTable::Transfers)?, row))
        })
        .collect::<Result<Vec<_>>>()?;
    let ops = (ops.iter())
        .map(|o| {
            let row = OperationRecord {
                session_id: Some(id),
                ..(*o).clone()
            };
            Ok((to.reserve_id(IdTable::Operations)?, row))
        })
        .collect::<Result<Vec<_>>>()?;
    held.add_copied_rows(transfers, ops);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: i64, host: &str, started: i64) -> SessionRecord {
        SessionRecord {
            id,
            host: host.into(),
            user: Some("acme".into()),
            client_ip: Some("192.0.2.7".into()),
            client_port: None,
            local_ip: None,
            local_port: None,
            started_at: Micros(started),
            ended_at: Some(Micros(started + 60_000_000)),
            duration_ms: Some(60_000),
            exit_status: Some(0),
            signal: None,
            end_reason: EndReason::Closed,
            source: SessionSource::Wrapper,
            sid: Some("s-1".into()),
            pid: id + 100,
            sftp_pid: Some(id + 200),
            auth_method: None,
            auth_key: None,
            sftp_closed: true,
            origin_pid: None,
            origin_uid: None,
            origin_command: None,
        }
    }

    /// `copy` writes through the ingest's batches, which add to the rollups themselves: a
    /// source that names one session under two spellings of its host, and one refusal twice,
    /// gives the target each once, with its transfer, and rollups equal to the rows'.
    #[test]
    fn a_copy_takes_each_session_and_refusal_once_and_keeps_the_rollups_exact() {
        let dir = tempfile::tempdir().unwrap();
        let mut from = SqliteStore::open(&dir.path().join("from.db")).unwrap();
        let start = 1_700_000_000_000_000;
        let transfer = TransferRecord {
            session_id: 1,
            path: b"/in/invoice-42.xml".to_vec(),
            direction: Direction::Upload,
            counts_as: Some(CountsAs::Upload),
            open_flags: "WRITE,CREATE,TRUNCATE".into(),
            mode: Some("0644".into()),
            bytes_read: Some(0),
            bytes_written: Some(4096),
            opened_at: Micros(start + 1_000_000),
            closed_at: Some(Micros(start + 2_000_000)),
            forced: false,
            failed: false,
            complete: true,
            counters_cut: false,
            renamed_to: None,
            reached: None,
        };
        let refusal = OperationRecord {
            session_id: None,
            host: "srv".into(),
            user: Some("acme".into()),
            at: Micros(start + 5_000_000),
            kind: OperationKind::Denied,
            path: None,
            target: None,
            detail: Some("reason=command".into()),
            failed: false,
            status: None,
        };
        let mut held = WriteBehind::default();
        held.add_copied_session(session(1, "srv", start));
        held.add_copied_session(session(2, "srv.example.com", start + 3_000_000));
        held.add_copied_rows([(1, transfer)], [(1, refusal.clone()), (2, refusal)]);
        in_transaction(&mut from, |db| db.write(&mut held, false)).unwrap();

        let mut to = SqliteStore::open(&dir.path().join("to.db")).unwrap();
        assert_eq!(copy_database(&mut from, &mut to).unwrap(), (1, 1));
        assert_eq!(to.all_sessions().unwrap().len(), 1);
        assert_eq!(to.all_transfers().unwrap().len(), 1);
        assert_eq!(to.all_operations().unwrap().len(), 1);
        assert_eq!(to.rollup_differences().unwrap(), 0);
        let (sql, columns) =
            crate::accounting::rollup::usage_rollup_sql(Dialect::Sqlite, &Filter::default());
        let mut cells = Vec::new();
        (to.stream_rows(&sql, &columns, &Filter::default(), &mut |row| {
            cells.push(row);
            Ok(())
        }))
        .unwrap();
        assert_eq!(cells.len(), 1, "{cells:?}");
        // Again: nothing more.
        assert_eq!(copy_database(&mut from, &mut to).unwrap(), (0, 2));
        assert_eq!(to.all_operations().unwrap().len(), 1);
        assert_eq!(to.rollup_differences().unwrap(), 0);
    }

    #[test]
    fn specs_and_redaction() {
        assert_eq!(
            DbSpec::parse("/var/lib/x.db").unwrap(),
            DbSpec::Sqlite("/var/lib/x.db".into())
        );
        assert_eq!(
            DbSpec::parse("sqlite:///var/lib/x.db").unwrap(),
            DbSpec::Sqlite("/var/lib/x.db".into())
        );
        assert!(DbSpec::parse("sqlite://").is_err());
        let pg =
            DbSpec::parse("postgres://acct:s3cret@db.example:5432/sftp?sslmode=require").unwrap();
        assert_eq!(
            pg.display(),
            "postgres://acct:***@db.example:5432/sftp?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://acct@h/db"),
            "postgresql://acct@h/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
