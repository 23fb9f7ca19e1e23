//! The embedded SQLite store (rusqlite, bundled): the default.
//!
//! Times are stored as UTC microseconds in `session_rows`, `transfer_rows` and `operation_rows`,
//! and shown as fixed-width UTC text by the views `sessions`, `transfers` and `operations` over
//! them (migration 9). Writes go to the tables, reads may go through the views. One
//! ingest at a time holds `<db>.lock`.

use super::pending::{
    Batch, Fact, IdTable, Link, RowUpdate, SessionPatch, Touched, WriteBehind, WritesBatches,
};
use super::{
    Checkpoint, CopyStore, CountsAs, Database, Direction, EndReason, IngestStore, LastOp, Micros,
    NameOperation, OpenSession, OpenTransfer, OperationKind, OperationRecord, ReportStore, Result,
    RowSink, SessionOrigin, SessionRecord, SessionSource, StoreError, TransferRecord, opt_text,
    path_text, stored_counters, text,
};
use crate::accounting::rollup::{self, Cells, Counted};
use crate::accounting::sql::{self, Dialect, Filter};
use rusqlite::config::DbConfig;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Each entry migrates from the version before it; the index + 1 is the version reached.
const MIGRATIONS: [&str; super::SCHEMA_VERSION as usize] = [
    include_str!("../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../migrations/sqlite/0002_counts_as.sql"),
    include_str!("../../../migrations/sqlite/0003_counters_cut.sql"),
    include_str!("../../../migrations/sqlite/0004_usage_rollups.sql"),
    include_str!("../../../migrations/sqlite/0005_rollup_deltas.sql"),
    include_str!("../../../migrations/sqlite/0006_compact_times.sql"),
    include_str!("../../../migrations/sqlite/0007_rollup_join.sql"),
    include_str!("../../../migrations/sqlite/0008_virtual_columns.sql"),
    include_str!("../../../migrations/sqlite/0009_row_views.sql"),
    include_str!("../../../migrations/sqlite/0010_renamed_to.sql"),
    include_str!("../../../migrations/sqlite/0011_reached.sql"),
    include_str!("../../../migrations/sqlite/0012_sid_index.sql"),
    include_str!("../../../migrations/sqlite/0013_rollups_by_one_rule.sql"),
];

/// The column a migration adds, for the migrations the store has always run only where the
/// column is missing (ADD COLUMN fails on a column that is there).
fn added_column(version: usize) -> Option<&'static str> {
    match version {
        10 => Some("renamed_to"),
        11 => Some("reached"),
        _ => None,
    }
}

/// The functions migration 6 calls, registered on `conn` while it runs.
fn compact_rows_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "sftpd_storage_micros",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let Some(text) = ctx.get::<Option<String>>(0)? else {
                return Ok(None);
            };
            crate::log::parse::storage_micros(&text)
                .map(Some)
                .ok_or_else(|| {
                    rusqlite::Error::UserFunctionError(
                        format!("not a storage time: {text:?}").into(),
                    )
                })
        },
    )?;
    conn.create_scalar_function(
        "sftpd_open_flags_code",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(open_flags_code(&ctx.get::<String>(0)?)),
    )?;
    Ok(())
}

/// A time is stored as its microseconds (schema 6).
impl ToSql for Micros {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0))
    }
}

impl FromSql for Micros {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_i64().map(Micros)
    }
}

/// sftp-server's open flag words, in the order it writes them (`string_from_portable`).
const OPEN_FLAG_WORDS: [&str; 6] = ["READ", "WRITE", "APPEND", "CREATE", "TRUNCATE", "EXCL"];

/// What `open_flags_code` holds for an `open` line's flags: their bits where the text is
/// sftp-server's words in its order (what it always writes), else the text as it is.
fn open_flags_code(flags: &str) -> rusqlite::types::Value {
    let mut code = 0i64;
    let mut last = None;
    for word in flags.split(',').filter(|_| !flags.is_empty()) {
        match OPEN_FLAG_WORDS.iter().position(|w| *w == word) {
            Some(i) if last.is_none_or(|l| l < i) => {
                code |= 1 << i;
                last = Some(i);
            }
            _ => return rusqlite::types::Value::Text(flags.to_owned()),
        }
    }
    rusqlite::types::Value::Integer(code)
}

fn direction_code(direction: Direction) -> i64 {
    match direction {
        Direction::None => 0,
        Direction::Upload => 1,
        Direction::Download => 2,
        Direction::Both => 3,
    }
}

/// `file:PATH?immutable=1`, the path's bytes outside `[A-Za-z0-9/._~-]` percent-encoded.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._~-".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// What `path_escaped` holds for a name: its readable form where that is not the name's bytes.
fn escaped_name(path: &[u8]) -> Option<String> {
    // Nearly every name is printable ASCII without `\`, its own readable form: no need to build
    // that form to find out.
    if path
        .iter()
        .all(|&b| (b' '..=b'~').contains(&b) && b != b'\\')
    {
        return None;
    }
    let text = path_text(path);
    (text.as_bytes() != path).then_some(text)
}

/// The text enums are stored as their words; a word this version does not know is an error
/// rather than a guess.
macro_rules! sqlite_text {
    ($($t:ty),+) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                <$t>::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {text:?}", stringify!($t)).into())
                })
            }
        }
    )+};
}

sqlite_text!(Direction, CountsAs, SessionSource, OperationKind, EndReason);

fn checkpoint_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        first_line_hash: r.get(0)?,
        prefix_sha256: r.get(1)?,
        path: r.get(2)?,
        inode: r.get(3)?,
        byte_offset: r.get(4)?,
        lines: r.get(5)?,
    })
}

/// How long a command waits for another one's lock on the database.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct SqliteStore {
    link: Link<Connection>,
    path: PathBuf,
    /// Held while this process ingests: `<db>.lock`.
    lock: Option<File>,
    /// The next session, transfer and operation ids, from the tables' largest at the first
    /// write of a transaction: the ingest lock and BEGIN IMMEDIATE make this connection the
    /// only writer, so rows get the ids SQLite would have given them.
    next_ids: Option<[i64; 3]>,
}

/// Applies a held change to a row an earlier batch wrote.
fn apply_update(update: &RowUpdate, conn: &Connection) -> Result<()> {
    match update {
        RowUpdate::Close(c) => {
            let (r, w) = stored_counters(c.counters);
            conn.prepare_cached(
                "UPDATE transfer_rows
                        SET closed_at_us = ?2, bytes_read = ?3, bytes_written = ?4, forced = ?5,
                            complete = ?6, direction_code = ?7, counts_as = ?8, counters_cut = ?9
                      WHERE id = ?1",
            )?
            .execute(params![
                c.id,
                c.closed_at,
                r,
                w,
                c.forced,
                c.verdict.complete,
                direction_code(c.verdict.direction),
                c.verdict.counts_as,
                c.counters.is_none()
            ])?;
        }
        RowUpdate::Failed(id) => {
            conn.prepare_cached("UPDATE transfer_rows SET failed = 1, complete = 0 WHERE id = ?1")?
                .execute([id])?;
        }
        RowUpdate::Deleted(id) => {
            conn.prepare_cached("DELETE FROM transfer_rows WHERE id = ?1")?
                .execute([id])?;
        }
        RowUpdate::Renamed { id, to } => {
            conn.prepare_cached("UPDATE transfer_rows SET renamed_to = ?2 WHERE id = ?1")?
                .execute(params![id, to])?;
        }
        RowUpdate::Abandoned { session_id } => {
            // Counted as what the open asked for (classify_cut_close), bytes unknown.
            conn.prepare_cached(
                "UPDATE transfer_rows
                    SET forced = 1, complete = 0, counters_cut = 1,
                        counts_as = CASE direction_code WHEN 1 THEN 'upload' WHEN 3 THEN 'upload'
                                                        WHEN 2 THEN 'download' END
                  WHERE session_id = ?1 AND closed_at_us IS NULL",
            )?
            .execute([session_id])?;
        }
        RowUpdate::OperationFailed { id, status } => {
            conn.prepare_cached("UPDATE operation_rows SET failed = 1, status = ?2 WHERE id = ?1")?
                .execute(params![id, text(status)])?;
        }
    }
    Ok(())
}

/// An hour in `usage_dirty` that is not a storage time (written there by hand).
fn invalid_hour(hour: &str) -> StoreError {
    let what = format!("usage_dirty holds {hour:?}, not an hour");
    StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(what.into()))
}

/// Adds `cells` to `usage_hourly`, creating cells as needed.
fn add_cells(cells: &Cells<'_>, conn: &Connection) -> Result<()> {
    // A cell's delta: `?1` hour, `?2` host, `?3` user, then the sums and `contributors`.
    let params = (1..=3 + rollup::ROLLUP_SUMS.len() + 1)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut upsert =
        conn.prepare_cached(&rollup::add_to_cells_sql(&format!("VALUES ({params})")))?;
    for ((hour, host, user), cell) in cells {
        let hour = *hour;
        let hour = Micros(hour).to_string();
        let (host, user) = (host.as_ref(), user.as_ref());
        let mut values: Vec<&dyn ToSql> = vec![&hour, &host, &user];
        values.extend(cell.sums.iter().map(|v| v as &dyn ToSql));
        values.push(&cell.contributors);
        upsert.execute(values.as_slice())?;
    }
    Ok(())
}

impl WritesBatches for Connection {
    fn write_rows(&mut self, batch: &Batch) -> Result<()> {
        let conn = &*self;
        // The rollup triggers would note every row's cell for a recompute, a large part of the
        // ingest. Only this connection's triggers are off, and not for the changes to rows
        // earlier batches wrote, which an admin's triggers may want to see.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
        let written =
            insert_rows(batch, conn).and_then(|()| update_sessions(&batch.session_patches, conn));
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true)?;
        written?;
        if !batch.row_updates.is_empty() {
            let noted: bool =
                conn.query_row("SELECT EXISTS (SELECT 1 FROM usage_dirty)", [], |r| {
                    r.get(0)
                })?;
            for update in &batch.row_updates {
                apply_update(update, conn)?;
            }
            if !noted {
                // All the cells noted are these changes', which the batch adds itself.
                conn.execute_batch("DELETE FROM usage_dirty")?;
            }
        }
        Ok(())
    }

    fn facts(&mut self, touched: &Touched) -> Result<Vec<Fact>> {
        let mut found = Vec::new();
        let mut session = self.prepare_cached(
            "SELECT started_at_us, host, COALESCE(user, ''), end_reason, duration_ms
               FROM session_rows WHERE id = ?1",
        )?;
        for &id in &touched.sessions {
            let row = session
                .query_row([id], |r| {
                    let refused = r.get_ref(3)?.as_str()? == EndReason::Refused.as_str();
                    let Some(counted) = Counted::session(refused, r.get(4)?) else {
                        return Ok(None);
                    };
                    Ok(Some(Fact {
                        transfer: false,
                        id,
                        at: Micros(r.get(0)?),
                        host: r.get(1)?,
                        user: r.get(2)?,
                        counted,
                    }))
                })
                .optional()?;
            found.extend(row.flatten());
        }
        let transfer = |r: &rusqlite::Row<'_>| {
            Ok(Fact {
                transfer: true,
                id: r.get(0)?,
                at: Micros(r.get(1)?),
                host: r.get(2)?,
                user: r.get(3)?,
                counted: Counted::transfer(r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
            })
        };
        for (which, ids) in [
            ("t.id = ?1", &touched.transfers),
            ("t.session_id = ?1", &touched.transfers_of),
            (
                "t.closed_at_us IS NULL AND t.session_id = ?1",
                &touched.open_of,
            ),
        ] {
            if ids.is_empty() {
                continue;
            }
            let mut stmt = self.prepare_cached(&format!(
                "SELECT t.id, t.opened_at_us, s.host, COALESCE(s.user, ''), t.counts_as,
                        t.complete, t.bytes_written, t.bytes_read, t.counters_cut
                   FROM transfer_rows t JOIN session_rows s ON s.id = t.session_id
                  WHERE {which}"
            ))?;
            for &id in ids {
                for f in stmt.query_map([id], transfer)? {
                    found.push(f?);
                }
            }
        }
        Ok(found)
    }

    fn sessions(&mut self, ids: &[i64]) -> Result<Vec<(i64, String, String)>> {
        let mut lookup =
            self.prepare_cached("SELECT id, host, COALESCE(user, '') FROM sessions WHERE id = ?1")?;
        let mut found = Vec::new();
        for &id in ids {
            let row = lookup.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
            found.extend(row.optional()?);
        }
        Ok(found)
    }

    fn add_cells(&mut self, cells: &Cells<'_>) -> Result<()> {
        add_cells(cells, self)
    }
}

/// Changes to sessions written before, one update each; with the triggers on, each one's
/// rollup trigger adjusts the cells.
fn update_sessions<'a>(
    patches: impl IntoIterator<Item = &'a (i64, SessionPatch)>,
    conn: &Connection,
) -> Result<()> {
    let mut update = conn.prepare_cached(
        "UPDATE session_rows SET
            sftp_pid = COALESCE(?2, sftp_pid),
            user = COALESCE(user, ?3),
            client_ip = COALESCE(client_ip, ?4),
            auth_method = CASE WHEN ?5 THEN ?6 ELSE auth_method END,
            auth_key = CASE WHEN ?5 THEN ?7 ELSE auth_key END,
            sftp_closed = MAX(sftp_closed, ?8),
            ended_at_us = CASE WHEN ?9 THEN ?10 ELSE ended_at_us END,
            duration_ms = CASE WHEN ?9 THEN ?11 ELSE duration_ms END,
            exit_status = CASE WHEN ?9 THEN ?12 ELSE exit_status END,
            signal = CASE WHEN ?9 THEN ?13 ELSE signal END,
            end_reason = COALESCE(?14, end_reason),
            last_op_kind = CASE WHEN ?15 THEN ?16 ELSE last_op_kind END,
            last_op_id = CASE WHEN ?15 THEN ?17 ELSE last_op_id END
          WHERE id = ?1",
    )?;
    for (id, p) in patches {
        let (method, key) = p.auth.clone().unzip();
        let end = p.end.as_ref();
        let (last_kind, last_id) = LastOp::columns(p.last_op.flatten());
        update.execute(params![
            id,
            p.sftp_pid,
            opt_text(p.fill_user.as_deref()),
            opt_text(p.fill_ip.as_deref()),
            p.auth.is_some(),
            opt_text(method.as_deref()),
            opt_text(key.flatten().as_deref()),
            p.sftp_closed,
            end.is_some(),
            end.map(|e| e.ended_at),
            end.and_then(|e| e.duration_ms),
            end.and_then(|e| e.exit_status),
            opt_text(end.and_then(|e| e.signal.as_deref())),
            p.end_reason,
            p.last_op.is_some(),
            last_kind,
            last_id
        ])?;
    }
    Ok(())
}

/// The held rows, with the rollup triggers off (see `write_batch`).
fn insert_rows(batch: &Batch, conn: &Connection) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO session_rows (id, host, user, client_ip, client_port, local_ip, local_port,
                               started_at_us, ended_at_us, duration_ms, exit_status, signal,
                               end_reason, source, sid, pid, sftp_pid, auth_method, auth_key,
                               sftp_closed, last_op_kind, last_op_id, origin_pid, origin_uid,
                               origin_command)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?;
    for s in &batch.sessions {
        insert.execute(params![
            s.record.id,
            text(&s.record.host),
            opt_text(s.record.user.as_deref()),
            opt_text(s.record.client_ip.as_deref()),
            s.record.client_port,
            opt_text(s.record.local_ip.as_deref()),
            s.record.local_port,
            s.record.started_at,
            s.record.ended_at,
            s.record.duration_ms,
            s.record.exit_status,
            opt_text(s.record.signal.as_deref()),
            s.record.end_reason,
            s.record.source,
            opt_text(s.record.sid.as_deref()),
            s.record.pid,
            s.record.sftp_pid,
            opt_text(s.record.auth_method.as_deref()),
            opt_text(s.record.auth_key.as_deref()),
            s.record.sftp_closed,
            s.last_op_kind,
            s.last_op_id,
            s.record.origin_pid,
            s.record.origin_uid,
            opt_text(s.record.origin_command.as_deref())
        ])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO transfer_rows (id, session_id, path, path_escaped, direction_code, open_flags_code, mode,
                                opened_at_us, closed_at_us, bytes_read, bytes_written, forced,
                                failed, complete, counts_as, counters_cut, renamed_to, reached)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    for t in &batch.transfers {
        insert.execute(params![
            t.id,
            t.row.session_id,
            t.row.path,
            escaped_name(&t.row.path),
            direction_code(t.row.direction),
            open_flags_code(&text(&t.row.open_flags)),
            opt_text(t.row.mode.as_deref()),
            t.row.opened_at,
            t.row.closed_at,
            t.row.bytes_read,
            t.row.bytes_written,
            t.row.forced,
            t.row.failed,
            t.row.complete,
            t.row.counts_as,
            t.row.counters_cut,
            t.row.renamed_to,
            t.row.reached
        ])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO operation_rows (id, session_id, host, user, at_us, kind, path, path_escaped,
                                 target, target_escaped, detail, failed, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for o in &batch.ops {
        insert.execute(params![
            o.id,
            o.row.session_id,
            text(&o.row.host),
            opt_text(o.row.user.as_deref()),
            o.row.at,
            o.row.kind,
            o.row.path,
            o.row.path.as_deref().and_then(escaped_name),
            o.row.target,
            o.row.target.as_deref().and_then(escaped_name),
            opt_text(o.row.detail.as_deref()),
            o.row.failed,
            opt_text(o.row.status.as_deref())
        ])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: shown.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mut store = SqliteStore {
            link: Link::new(conn),
            path: path.to_owned(),
            lock: None,
            next_ids: None,
        };
        // Two processes creating the same new database at once: switching it to WAL takes a lock
        // that SQLite does not wait for (no busy handler there), so the loser waits here.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match store.set_up(&shown) {
                Err(StoreError::Sql(e))
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other.map(|()| store),
            }
        }
    }

    /// Opens the database at `path` read-only, for reports (see [`super::open_for_reading`]).
    pub(crate) fn open_for_reading(path: &Path) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        let open_error = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?
            .len();
        if len == 0 {
            return Err(StoreError::EmptyFile(shown));
        }
        let version = |conn: &Connection| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            match conn
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .optional()
            {
                Ok(v) => Ok(v.unwrap_or(0)),
                Err(e) if e.to_string().contains("no such table") => Ok(0),
                Err(e) => Err(e),
            }
        };
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // No SQLITE_OPEN_URI: the path is a file name, whatever characters it holds.
        let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        let (conn, found) = match version(&conn) {
            Ok(found) => (conn, found),
            // A WAL database needs its `-shm` index, which SQLite creates beside the file when
            // no connection has it open: not in a directory the reader cannot write. Then no
            // one has the database open, and it is read as the fixed file it is.
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) => {
                drop(conn);
                let conn = Connection::open_with_flags(
                    immutable_uri(path),
                    flags | rusqlite::OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(open_error)?;
                let found = version(&conn).map_err(open_error)?;
                (conn, found)
            }
            Err(e) => return Err(open_error(e)),
        };
        if found > super::SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: shown,
                found,
                known: super::SCHEMA_VERSION,
            });
        }
        if found < super::SCHEMA_VERSION {
            drop(conn);
            return SqliteStore::open(path).map_err(|e| StoreError::TooOld {
                path: shown.clone(),
                found,
                known: super::SCHEMA_VERSION,
                cause: e.to_string().replace(&format!("database {shown}: "), ""),
            });
        }
        Ok(SqliteStore {
            link: Link::new(conn),
            path: path.to_owned(),
            lock: None,
            next_ids: None,
        })
    }

    /// Journal mode, pragmas and the schema.
    fn set_up(&mut self, shown: &str) -> Result<()> {
        self.conn()?.pragma_update(None, "journal_mode", "WAL")?;
        self.conn()?.pragma_update(None, "synchronous", "NORMAL")?;
        // The write-ahead log is copied into the database every 10,000 pages (40 MiB) instead
        // of SQLite's 1,000: an ingest rewrites the same index pages in every transaction, and
        // each copy writes them again. The log is emptied when the last connection closes.
        self.conn()?
            .pragma_update(None, "wal_autocheckpoint", 10_000)?;
        // Statements that fire the rollup triggers keep a statement journal for their own
        // rollback; in memory, not in a temporary file written page by page.
        self.conn()?.pragma_update(None, "temp_store", "MEMORY")?;
        // Off while the schema changes (SQLite's table rebuilds ask for it), checked before the
        // migration commits, on for everything after.
        self.conn()?.pragma_update(None, "foreign_keys", "OFF")?;
        self.migrate(shown)?;
        self.conn()?.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    fn migrate(&mut self, shown: &str) -> Result<()> {
        let tx = self
            .conn_mut()?
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let current: i64 = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if current > super::SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: shown.to_owned(),
                found: current,
                known: super::SCHEMA_VERSION,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let version = index + 1;
            if let Some(column) = added_column(version) {
                let there: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM pragma_table_info('transfer_rows') WHERE name = ?1)",
                    [column],
                    |r| r.get(0),
                )?;
                if there {
                    continue;
                }
            }
            if version == 6 {
                compact_rows_functions(&tx)?;
            }
            tx.execute_batch(sql)?;
            if version == 6 {
                tx.remove_function("sftpd_storage_micros", 1)?;
                tx.remove_function("sftpd_open_flags_code", 1)?;
                let broken: Option<String> = tx
                    .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                    .optional()?;
                if let Some(table) = broken {
                    return Err(StoreError::Open {
                        path: shown.to_owned(),
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                            Some(format!("rows of {table} refer to no session: not upgraded")),
                        ),
                    });
                }
            }
        }
        if current == 0 {
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [super::SCHEMA_VERSION],
            )?;
        } else {
            tx.execute(
                "UPDATE schema_version SET version = ?1",
                [super::SCHEMA_VERSION],
            )?;
        }
        tx.commit()?;
        if (1..5).contains(&current) {
            // Rollups older than version 5 were not kept by deltas, nor always exact.
            super::in_transaction(self, |s| s.refresh_rollups(true))?;
        }
        Ok(())
    }

    /// The connection, for tests and benches that look at the tables directly.
    pub fn connection(&mut self) -> Result<&Connection> {
        self.conn()
    }

    /// The connection, once a batch written in the background is in; that batch's error if it
    /// failed.
    fn conn(&mut self) -> Result<&Connection> {
        self.link.get().map(|conn| &*conn)
    }

    fn conn_mut(&mut self) -> Result<&mut Connection> {
        self.link.get()
    }

    /// Writes the sshd lines no session claimed.
    fn write_auth(&mut self, held: &mut WriteBehind) -> Result<()> {
        let conn = self.conn()?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO pending_auth (host, user, client_ip, client_port, method, key, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for a in held.auth.drain(..) {
            insert.execute(params![
                text(&a.host),
                text(&a.user),
                text(&a.client_ip),
                a.client_port,
                text(&a.method),
                opt_text(a.key.as_deref()),
                a.at.to_string()
            ])?;
        }
        Ok(())
    }
}

impl Database for SqliteStore {
    fn schema_version(&mut self) -> Result<i64> {
        Ok(self
            .conn()?
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
    }

    fn begin(&mut self) -> Result<()> {
        self.next_ids = None;
        self.conn()?.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.refresh_rollups(false)?;
        self.conn()?.execute_batch("COMMIT")?;
        Ok(())
    }

    fn refresh_rollups(&mut self, all: bool) -> Result<()> {
        let keys = if all { None } else { Some(self.dirty_cells()?) };
        if keys.as_ref().is_none_or(|k| !k.is_empty()) {
            let cells = rollup::recompute(self, keys.as_deref())?;
            let conn = self.conn()?;
            conn.execute_batch(if all {
                "DELETE FROM usage_hourly"
            } else {
                "DELETE FROM usage_hourly WHERE (hour, host) IN (SELECT hour, host FROM usage_dirty)"
            })?;
            add_cells(&cells, conn)?;
            conn.execute_batch("DELETE FROM usage_dirty")?;
        }
        self.conn()?
            .prepare_cached(rollup::DROP_EMPTY_CELLS)?
            .execute([])?;
        Ok(())
    }

    fn rollup_differences(&mut self) -> Result<u64> {
        let pending = self.dirty_cells()?;
        rollup::differences(self, &pending)
    }

    fn rollback(&mut self) -> Result<()> {
        self.next_ids = None;
        // A batch that failed in the background is undone with the rest of the transaction.
        let _ = self.link.settle();
        self.conn()?.execute_batch("ROLLBACK")?;
        Ok(())
    }

    fn checkpoints(&mut self, first_line_hash: &str) -> Result<Vec<Checkpoint>> {
        let mut stmt = self.conn()?.prepare_cached(
            "SELECT first_line_hash, prefix_sha256, path, inode, byte_offset, lines FROM checkpoints
              WHERE first_line_hash = ?1 ORDER BY byte_offset",
        )?;
        let rows = stmt.query_map([first_line_hash], checkpoint_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_checkpoint(
        &mut self,
        replaces: Option<&Checkpoint>,
        c: &Checkpoint,
        now: Micros,
    ) -> Result<()> {
        if let Some(old) = replaces {
            self.conn()?
                .prepare_cached(
                    "DELETE FROM checkpoints WHERE first_line_hash = ?1 AND prefix_sha256 = ?2",
                )?
                .execute([&old.first_line_hash, &old.prefix_sha256])?;
        }
        self.conn()?
            .prepare_cached(
                "INSERT INTO checkpoints (first_line_hash, prefix_sha256, path, inode, byte_offset, lines, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (first_line_hash, prefix_sha256) DO UPDATE
                    SET path = excluded.path, inode = excluded.inode, byte_offset = excluded.byte_offset,
                        lines = excluded.lines, updated_at = excluded.updated_at",
            )?
            .execute(params![
                c.first_line_hash,
                c.prefix_sha256,
                c.path,
                c.inode,
                c.byte_offset,
                c.lines,
                now.to_string()
            ])?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn lock_for_ingest(&mut self, wait: bool) -> Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let path = PathBuf::from(format!("{}.lock", self.path.display()));
        let lock_err = |e: std::io::Error| {
            StoreError::Lock(format!("the ingest lock {}: {e}", path.display()))
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                if !wait {
                    return Err(StoreError::Busy);
                }
                file.lock().map_err(lock_err)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        self.lock = Some(file);
        Ok(())
    }

    fn add_ingest_counts(&mut self, counts: &[(&str, u64)], at: Micros) -> Result<()> {
        let mut stmt = self.conn()?.prepare_cached(
            "INSERT INTO ingest_counters (name, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE
                SET value = value + excluded.value, updated_at = excluded.updated_at",
        )?;
        for (name, n) in counts {
            stmt.execute(params![name, *n as i64, at.to_string()])?;
        }
        Ok(())
    }

    fn unlock_ingest(&mut self) -> Result<()> {
        self.release_lock();
        Ok(())
    }
}

impl SqliteStore {
    /// The (hour, host) cells the triggers noted for the next commit to compute afresh.
    fn dirty_cells(&mut self) -> Result<Vec<(Micros, String)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT hour, host FROM usage_dirty")?;
        let keys: Vec<_> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .map(|k| {
                let (hour, host) = k?;
                let hour =
                    crate::log::parse::storage_micros(&hour).ok_or_else(|| invalid_hour(&hour))?;
                Ok((Micros(hour), host))
            })
            .collect::<Result<_>>()?;
        Ok(keys)
    }

    fn release_lock(&mut self) {
        // Closing the file releases its lock.
        self.lock = None;
    }
}

impl IngestStore for SqliteStore {
    fn write(&mut self, held: &mut WriteBehind, background: bool) -> Result<()> {
        // The rows, sessions and row changes, with what they add to the rollups; the sshd
        // lines no session claimed only where everything is written.
        self.link.flush(held, background)?;
        if !background {
            self.write_auth(held)?;
        }
        Ok(())
    }

    fn latest_start(&mut self, host: &str) -> Result<Option<Micros>> {
        Ok(self.conn()?.query_row(
            concat!(
                "SELECT MAX(started_at_us) FROM sessions WHERE ",
                super::same_host_sql!("?1")
            ),
            [text(super::short_host(host))],
            |r| r.get(0),
        )?)
    }

    fn find_session(&mut self, host: &str, pid: i64, started_at: Micros) -> Result<Option<i64>> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT id FROM sessions WHERE host = ?1 AND pid = ?2 AND started_at_us = ?3",
            )?
            .query_row(params![text(host), pid, started_at], |r| r.get(0))
            .optional()?)
    }

    fn find_session_by_sid(&mut self, host: &str, sid: &str) -> Result<Option<(i64, bool)>> {
        Ok(self
            .conn()?
            .prepare_cached(concat!(
                "SELECT id, (origin_pid IS NOT NULL OR origin_uid IS NOT NULL OR origin_command IS NOT NULL) FROM sessions WHERE sid = ?2 AND ",
                super::same_host_sql!("?1"),
                " ORDER BY id LIMIT 1"
            ))?
            .query_row(params![text(super::short_host(host)), text(sid)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    fn reserve_id(&mut self, table: IdTable) -> Result<i64> {
        let mut next = match self.next_ids {
            Some(next) => next,
            None => self.conn()?.query_row(
                "SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM sessions),
                        (SELECT COALESCE(MAX(id), 0) + 1 FROM transfers),
                        (SELECT COALESCE(MAX(id), 0) + 1 FROM operations)",
                [],
                |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]),
            )?,
        };
        let id = next[table.index()];
        next[table.index()] += 1;
        self.next_ids = Some(next);
        Ok(id)
    }

    fn session_sftp_pid(&mut self, id: i64) -> Result<Option<i64>> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT sftp_pid FROM sessions WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    fn open_sessions(&mut self) -> Result<Vec<OpenSession>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT id, host, sid, sftp_pid, sftp_closed, started_at_us, source, last_op_kind, last_op_id, user,
                    EXISTS (SELECT 1 FROM transfer_rows t WHERE t.session_id = sessions.id AND t.mode IS NULL),
                    (origin_pid IS NOT NULL OR origin_uid IS NOT NULL OR origin_command IS NOT NULL)
               FROM sessions
              WHERE ended_at_us IS NULL AND end_reason = 'missing_end' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OpenSession {
                id: r.get(0)?,
                host: r.get(1)?,
                sid: r.get(2)?,
                sftp_pid: r.get(3)?,
                sftp_closed: r.get::<_, i64>(4)? != 0,
                started_at: r.get(5)?,
                source: r.get(6)?,
                last_op: LastOp::from_columns(r.get::<_, Option<String>>(7)?.as_deref(), r.get(8)?),
                user: r.get(9)?,
                wire: r.get::<_, i64>(10)? != 0,
                journal: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn open_transfers(&mut self) -> Result<Vec<OpenTransfer>> {
        Ok(self
            .conn()?
            .prepare("SELECT id, session_id, path, direction, failed FROM transfers WHERE closed_at_us IS NULL AND complete = 0 AND forced = 0 ORDER BY id")?
            .query_map([], |r| {
                Ok(OpenTransfer {
                    id: r.get(0)?,
                    session_id: r.get(1)?,
                    path: r.get(2)?,
                    direction: r.get(3)?,
                    failed: r.get::<_, i64>(4)? != 0,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn open_name_operations(&mut self) -> Result<Vec<NameOperation>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT o.session_id, o.id, o.kind, o.path, o.target,
                    EXISTS (SELECT 1 FROM transfer_rows t
                             WHERE t.session_id = o.session_id AND t.path = o.path
                               AND t.renamed_to = o.target AND t.counts_as = 'upload'),
                    CASE WHEN o.failed THEN o.status END
               FROM sessions s JOIN operation_rows o ON o.session_id = s.id
              WHERE s.ended_at_us IS NULL AND s.end_reason = 'missing_end'
                AND o.kind IN ('symlink', 'hardlink', 'rename', 'posix-rename', 'remove', 'rmdir')
              ORDER BY o.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(NameOperation {
                session_id: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                path: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                target: r.get(4)?,
                renamed_upload: r.get::<_, i64>(5)? != 0,
                status: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_session_origin(&mut self, id: i64, origin: &SessionOrigin) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "UPDATE session_rows SET origin_pid = ?2, origin_uid = ?3, origin_command = ?4
                  WHERE id = ?1 AND origin_pid IS NULL AND origin_uid IS NULL AND origin_command IS NULL",
            )?
            .execute(params![id, origin.pid, origin.uid, opt_text(origin.command.as_deref())])?;
        Ok(())
    }

    fn latest_time(&mut self, host: &str) -> Result<Option<Micros>> {
        Ok(self.conn()?.query_row(
            "SELECT MAX(t) FROM (SELECT MAX(started_at_us) AS t FROM sessions WHERE host = ?1
                                 UNION ALL SELECT MAX(ended_at_us) FROM sessions WHERE host = ?1)",
            [text(host)],
            |r| r.get(0),
        )?)
    }

    fn forget_host(&mut self, host: &str) -> Result<()> {
        for sql in [
            "DELETE FROM operation_rows WHERE host = ?1",
            "DELETE FROM transfer_rows WHERE session_id IN (SELECT id FROM sessions WHERE host = ?1)",
            "DELETE FROM session_rows WHERE host = ?1",
            "DELETE FROM pending_auth WHERE host = ?1",
        ] {
            self.conn()?.execute(sql, [text(host)])?;
        }
        Ok(())
    }

    fn forget_checkpoints(&mut self, first_line_hash: &str) -> Result<()> {
        self.conn()?.execute(
            "DELETE FROM checkpoints WHERE first_line_hash = ?1",
            [first_line_hash],
        )?;
        Ok(())
    }

    fn journal_cursor(&mut self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT cursor FROM journal_cursors WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn put_journal_cursor(&mut self, source: &str, cursor: &str, now: Micros) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO journal_cursors (source, cursor, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )?
            .execute(params![source, cursor, now.to_string()])?;
        Ok(())
    }

    /// Moves everything recorded under `from` to `into` and deletes `from` (the wrapper's
    /// `sftp-server started` line arrived after sftp-server's own first line).
    fn merge_session(&mut self, from: i64, into: i64) -> Result<()> {
        let conn = self.conn()?;
        conn.prepare_cached("UPDATE transfer_rows SET session_id = ?2 WHERE session_id = ?1")?
            .execute(params![from, into])?;
        conn.prepare_cached("UPDATE operation_rows SET session_id = ?2 WHERE session_id = ?1")?
            .execute(params![from, into])?;
        conn.prepare_cached(
                "UPDATE session_rows SET sftp_closed = MAX(sftp_closed, (SELECT sftp_closed FROM sessions WHERE id = ?1))
                  WHERE id = ?2",
            )?
            .execute(params![from, into])?;
        conn.prepare_cached("DELETE FROM session_rows WHERE id = ?1")?
            .execute([from])?;
        Ok(())
    }

    fn discard_session(&mut self, id: i64) -> Result<()> {
        let conn = self.conn()?;
        for sql in [
            "DELETE FROM transfer_rows WHERE session_id = ?1",
            "DELETE FROM operation_rows WHERE session_id = ?1",
            "DELETE FROM session_rows WHERE id = ?1",
        ] {
            conn.prepare_cached(sql)?.execute([id])?;
        }
        Ok(())
    }

    fn forget_log_transfers(&mut self, session_id: i64) -> Result<u64> {
        // Rare (a session whose sftp-server lines came before the wrapper said where its
        // transfers come from): written first, then deleted, as the triggers keep the rollups.
        let n = self
            .conn()?
            .prepare_cached("DELETE FROM transfer_rows WHERE session_id = ?1 AND mode IS NOT NULL")?
            .execute([session_id])?;
        Ok(n as u64)
    }

    /// Takes the latest `Accepted` for this host, user and address (and port, when known):
    /// returns its method and key and removes it.
    fn take_pending_auth(
        &mut self,
        host: &str,
        user: &str,
        client_ip: &str,
        client_port: Option<i64>,
    ) -> Result<Option<(String, Option<String>)>> {
        let found: Option<(i64, String, Option<String>)> = self
            .conn()?
            .prepare_cached(
                "SELECT id, method, key FROM pending_auth
                  WHERE host = ?1 AND user = ?2 AND client_ip = ?3 AND (?4 IS NULL OR client_port = ?4)
                  ORDER BY at DESC, id DESC LIMIT 1",
            )?
            .query_row(params![text(host), text(user), text(client_ip), client_port], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((id, method, key)) = found else {
            return Ok(None);
        };
        self.conn()?
            .prepare_cached("DELETE FROM pending_auth WHERE id = ?1")?
            .execute([id])?;
        Ok(Some((method, key)))
    }

    /// Forgets `Accepted` lines that no session claimed (a failed or non-SFTP login).
    fn prune_pending_auth(&mut self, before: Micros) -> Result<()> {
        self.conn()?
            .prepare_cached("DELETE FROM pending_auth WHERE at < ?1")?
            .execute([before.to_string()])?;
        Ok(())
    }
}

impl ReportStore for SqliteStore {
    fn rollups_pending(&mut self) -> Result<bool> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM usage_dirty)")?
            .query_row([], |r| r.get(0))?)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn stream_rows(
        &mut self,
        sql: &str,
        columns: &[(&'static str, sql::Kind)],
        filter: &Filter,
        sink: &mut RowSink<'_>,
    ) -> Result<()> {
        let mut stmt = self.conn()?.prepare(sql)?;
        let mut rows = stmt.query(params![
            filter.user,
            filter.host,
            filter.since.map(|t| t.0),
            filter.until.map(|t| t.0)
        ])?;
        while let Some(r) = rows.next()? {
            let row = columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| match (r.get_ref(i)?, kind) {
                    (ValueRef::Integer(us), sql::Kind::Time) => Ok(sql::Value::Time(Micros(us))),
                    // The bookkeeping times and the rollups' hours are kept as text.
                    (ValueRef::Text(t), sql::Kind::Time) => Ok(std::str::from_utf8(t)
                        .ok()
                        .and_then(crate::log::parse::storage_micros)
                        .map_or_else(
                            || sql::value_from_sqlite(ValueRef::Text(t)),
                            |us| sql::Value::Time(Micros(us)),
                        )),
                    (v, _) => Ok(sql::value_from_sqlite(v)),
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            sink(row)?;
        }
        Ok(())
    }
}

impl super::PruneStore for SqliteStore {
    fn delete_ended_before(&mut self, before_us: i64, user: Option<&str>) -> Result<super::Pruned> {
        let conn = self.conn()?;
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune_sessions (id INTEGER PRIMARY KEY);
             DELETE FROM prune_sessions;",
        )?;
        conn.execute(
            "INSERT INTO prune_sessions (id)
                  SELECT id FROM session_rows
                   WHERE ended_at_us < ?1 AND (?2 IS NULL OR user = ?2)",
            params![before_us, user],
        )?;
        let operations = conn.execute(
            "DELETE FROM operation_rows
              WHERE session_id IN (SELECT id FROM prune_sessions)
                 OR (session_id IS NULL AND at_us < ?1 AND (?2 IS NULL OR user = ?2))",
            params![before_us, user],
        )?;
        let transfers = conn.execute(
            "DELETE FROM transfer_rows WHERE session_id IN (SELECT id FROM prune_sessions)",
            [],
        )?;
        let sessions = conn.execute(
            "DELETE FROM session_rows WHERE id IN (SELECT id FROM prune_sessions)",
            [],
        )?;
        let kept_open: i64 = conn.query_row(
            "SELECT COUNT(*) FROM session_rows
              WHERE ended_at_us IS NULL AND started_at_us < ?1 AND (?2 IS NULL OR user = ?2)",
            params![before_us, user],
            |r| r.get(0),
        )?;
        Ok(super::Pruned {
            sessions: sessions as u64,
            transfers: transfers as u64,
            operations: operations as u64,
            kept_open: kept_open as u64,
        })
    }
}

impl CopyStore for SqliteStore {
    fn all_sessions(&mut self) -> Result<Vec<SessionRecord>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT id, host, user, client_ip, client_port, local_ip, local_port, started_at_us, ended_at_us, duration_ms,
                    exit_status, signal, end_reason, source, sid, pid, sftp_pid, auth_method, auth_key, sftp_closed,
                    origin_pid, origin_uid, origin_command
               FROM sessions ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SessionRecord {
                id: r.get(0)?,
                host: r.get(1)?,
                user: r.get(2)?,
                client_ip: r.get(3)?,
                client_port: r.get(4)?,
                local_ip: r.get(5)?,
                local_port: r.get(6)?,
                started_at: r.get(7)?,
                ended_at: r.get(8)?,
                duration_ms: r.get(9)?,
                exit_status: r.get(10)?,
                signal: r.get(11)?,
                end_reason: r.get(12)?,
                source: r.get(13)?,
                sid: r.get(14)?,
                pid: r.get(15)?,
                sftp_pid: r.get(16)?,
                auth_method: r.get(17)?,
                auth_key: r.get(18)?,
                sftp_closed: r.get::<_, i64>(19)? != 0,
                origin_pid: r.get(20)?,
                origin_uid: r.get(21)?,
                origin_command: r.get(22)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn all_transfers(&mut self) -> Result<Vec<TransferRecord>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT session_id, path, direction, open_flags, mode, bytes_read, bytes_written, opened_at_us, closed_at_us,
                    forced, failed, complete, counts_as, counters_cut, renamed_to, reached FROM transfers ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TransferRecord {
                session_id: r.get(0)?,
                path: r.get(1)?,
                direction: r.get(2)?,
                open_flags: r.get(3)?,
                mode: r.get(4)?,
                bytes_read: r.get(5)?,
                bytes_written: r.get(6)?,
                opened_at: r.get(7)?,
                closed_at: r.get(8)?,
                forced: r.get::<_, i64>(9)? != 0,
                failed: r.get::<_, i64>(10)? != 0,
                complete: r.get::<_, i64>(11)? != 0,
                counts_as: r.get(12)?,
                counters_cut: r.get::<_, i64>(13)? != 0,
                renamed_to: r.get(14)?,
                reached: r.get(15)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn all_operations(&mut self) -> Result<Vec<OperationRecord>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT session_id, host, user, at_us, kind, path, target, detail, failed, status FROM operations ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OperationRecord {
                session_id: r.get(0)?,
                host: r.get(1)?,
                user: r.get(2)?,
                at: r.get(3)?,
                kind: r.get(4)?,
                path: r.get(5)?,
                target: r.get(6)?,
                detail: r.get(7)?,
                failed: r.get::<_, i64>(8)? != 0,
                status: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn all_checkpoints(&mut self) -> Result<Vec<Checkpoint>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT first_line_hash, prefix_sha256, path, inode, byte_offset, lines FROM checkpoints
              ORDER BY first_line_hash, byte_offset",
        )?;
        let rows = stmt.query_map([], checkpoint_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn session_rows(&mut self, id: i64) -> Result<(bool, i64)> {
        let conn = self.conn()?;
        Ok(conn.query_row(
            "SELECT ended_at_us IS NOT NULL,
                    (SELECT COUNT(*) + COALESCE(SUM((closed_at_us IS NOT NULL OR forced != 0 OR complete != 0)
                                                    + (failed != 0) + (renamed_to IS NOT NULL)), 0)
                       FROM transfers WHERE session_id = ?1)
                    + (SELECT COUNT(*) + COALESCE(SUM(failed != 0), 0) FROM operations WHERE session_id = ?1)
               FROM sessions WHERE id = ?1",
            [id],
            |r| Ok((r.get::<_, i64>(0)? != 0, r.get(1)?)),
        )?)
    }

    fn has_refusal(&mut self, o: &OperationRecord) -> Result<bool> {
        Ok(self.conn()?.query_row(
            "SELECT EXISTS (SELECT 1 FROM operations WHERE session_id IS NULL AND host = ?1 AND at_us = ?2
                             AND kind = ?3 AND detail IS ?4 AND user IS ?5)",
            params![text(&o.host), o.at, o.kind, opt_text(o.detail.as_deref()), opt_text(o.user.as_deref())],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::storage::{NewSession, NewTransfer};

    #[test]
    fn schema_is_created_and_reopening_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub/sftpd.db");
        {
            let mut s = SqliteStore::open(&db).unwrap();
            assert_eq!(
                s.schema_version().unwrap(),
                crate::accounting::storage::SCHEMA_VERSION
            );
            let session = NewSession {
                host: "h".into(),
                started_at: "2026-11-26T00:00:00.000000Z".parse().unwrap(),
                source: SessionSource::SftpServer,
                pid: 7,
                user: None,
                client_ip: None,
                client_port: None,
                local_ip: None,
                local_port: None,
                sid: None,
                sftp_pid: None,
            };
            let mut s = super::super::Writer::new(&mut s);
            s.begin().unwrap();
            let id = s.insert_session(&session).unwrap();
            // The same host, PID and start is the same session: held in this transaction, and
            // found in the database in the next.
            assert_eq!(s.insert_session(&session).unwrap(), id);
            s.commit().unwrap();
            s.begin().unwrap();
            assert_eq!(s.insert_session(&session).unwrap(), id);
            s.commit().unwrap();
        }
        let mut s = SqliteStore::open(&db).unwrap();
        assert_eq!(s.open_sessions().unwrap().len(), 1);
        for view in ["daily_usage", "monthly_usage"] {
            let n: i64 = s
                .connection()
                .unwrap()
                .query_row(&format!("SELECT COUNT(*) FROM {view}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 1);
        }
    }

    /// Rows written by hand note their cells for the next commit, also a transfer written
    /// before its session (with foreign keys off, as the sqlite3 shell has them): `rollups
    /// --check` leaves the noted cells to that commit, which computes them afresh.
    #[test]
    fn rows_written_by_hand_are_in_the_rollups_after_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("hand.db")).unwrap();
        store
            .connection()
            .unwrap()
            .execute_batch(
                "PRAGMA foreign_keys = OFF;
                 INSERT INTO transfer_rows (id, session_id, path, direction_code, open_flags_code,
                                            opened_at_us, bytes_written, complete, counts_as)
                      VALUES (1, 7, X'2F66', 1, 2, 7200000000, 500, 1, 'upload');
                 INSERT INTO session_rows (id, host, user, started_at_us, end_reason, source, pid)
                      VALUES (7, 'h', 'zed', 0, 'closed', 'wrapper', 42);
                 PRAGMA foreign_keys = ON;",
            )
            .unwrap();
        assert_eq!(store.rollup_differences().unwrap(), 0);
        crate::accounting::storage::in_transaction(&mut store, |s| s.refresh_rollups(false))
            .unwrap();
        let conn = store.connection().unwrap();
        let cells: Vec<(String, i64, i64)> = conn
            .prepare("SELECT hour, sessions, bytes_up_low FROM usage_hourly ORDER BY hour")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            cells,
            [
                ("1970-01-01T00:00:00.000000Z".to_owned(), 1, 0),
                ("1970-01-01T02:00:00.000000Z".to_owned(), 0, 500)
            ]
        );
        assert_eq!(store.rollup_differences().unwrap(), 0);
    }

    /// Schema 11 adds `transfers.reached`: a version 10 database keeps its rows, which reached
    /// no other name, and takes the new column's values from then on.
    #[test]
    fn a_version_10_database_gains_reached() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v10.db");
        {
            let mut store = SqliteStore::open(&db).unwrap();
            let mut s = super::super::Writer::new(&mut store);
            s.begin().unwrap();
            let session = s
                .insert_session(&NewSession {
                    host: "h".into(),
                    started_at: "2026-11-26T00:00:00.000000Z".parse().unwrap(),
                    source: SessionSource::SftpServer,
                    pid: 7,
                    user: None,
                    client_ip: None,
                    client_port: None,
                    local_ip: None,
                    local_port: None,
                    sid: None,
                    sftp_pid: None,
                })
                .unwrap();
            let id = s
                .insert_transfer(&NewTransfer {
                    session_id: session,
                    path: b"/a",
                    direction: Direction::Download,
                    open_flags: "READ",
                    mode: Some("0666"),
                    opened_at: "2026-11-26T00:00:01.000000Z".parse().unwrap(),
                    reached: None,
                })
                .unwrap();
            s.set_transfer_renamed(id, Some(b"/b"));
            s.commit().unwrap();
            store
                .connection()
                .unwrap()
                .execute_batch(
                    "ALTER TABLE transfer_rows DROP COLUMN reached;
                     UPDATE schema_version SET version = 10;",
                )
                .unwrap();
        }
        let mut s = SqliteStore::open(&db).unwrap();
        assert_eq!(s.schema_version().unwrap(), super::super::SCHEMA_VERSION);
        let all = s.all_transfers().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].path, b"/a");
        assert_eq!(all[0].renamed_to.as_deref(), Some(&b"/b"[..]));
        assert_eq!(all[0].reached, None);
        s.connection()
            .unwrap()
            .execute("UPDATE transfer_rows SET reached = X'2F63'", [])
            .unwrap();
        assert_eq!(
            s.all_transfers().unwrap()[0].reached.as_deref(),
            Some(&b"/c"[..])
        );
    }

    #[test]
    fn a_version_1_database_is_upgraded_with_counts_as_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v1.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 INSERT INTO sessions (id, host, started_at, source, pid, end_reason)
                      VALUES (1, 'h', '2026-11-26T00:00:00.000000Z', 'sftp-server', 7, 'closed');
                 INSERT INTO transfers (session_id, path, path_text, direction, open_flags, opened_at,
                                        closed_at, bytes_read, bytes_written)
                      VALUES (1, x'2f75', '/u', 'upload', 'WRITE', '2026-11-26T00:00:01.000000Z',
                              '2026-11-26T00:00:02.000000Z', 0, 10),
                             (1, x'2f64', '/d', 'download', 'READ', '2026-11-26T00:00:01.000000Z',
                              '2026-11-26T00:00:02.000000Z', 5, 0),
                             (1, x'2f70', '/p', 'download', 'READ', '2026-11-26T00:00:01.000000Z',
                              '2026-11-26T00:00:02.000000Z', 0, 0),
                             (1, x'2f6f', '/o', 'upload', 'WRITE', '2026-11-26T00:00:01.000000Z',
                              NULL, NULL, NULL);",
            )
            .unwrap();
        }
        let mut s = SqliteStore::open(&db).unwrap();
        assert_eq!(s.schema_version().unwrap(), super::super::SCHEMA_VERSION);
        let counts: Vec<(String, Option<String>)> = s
            .connection()
            .unwrap()
            .prepare("SELECT path_text, counts_as FROM transfers ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let expect = |p: &str, c: Option<&str>| (p.to_owned(), c.map(str::to_owned));
        assert_eq!(
            counts,
            [
                expect("/u", Some("upload")),
                expect("/d", Some("download")),
                expect("/p", None),
                expect("/o", None)
            ]
        );
        let (up, down): (i64, i64) = s
            .connection()
            .unwrap()
            .query_row("SELECT files_up, files_down FROM daily_usage", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((up, down), (1, 1));
    }

    /// The views' readable columns and the rollups' hour, computed by SQLite, say what Rust
    /// writes.
    #[test]
    fn sqlite_shows_times_names_and_flags_as_rust_writes_them() {
        use proptest::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        let conn = store.connection().unwrap();
        conn.execute_batch(
            "INSERT INTO session_rows (id, host, started_at_us, source, pid) VALUES (1, 'h', 0, 'wrapper', 1)",
        )
        .unwrap();
        // The hour of a transfer as the triggers of migrations/sqlite/0013 note it.
        let hour = "strftime('%Y-%m-%dT%H:00:00.000000Z', (opened_at_us - ((opened_at_us % 3600000000) + 3600000000) % 3600000000) / 1000000, 'unixepoch')";
        // Years 0 to 9999, the range of SQLite's date functions.
        let micros = -62_167_219_200_000_000i64..253_402_300_800_000_000;
        // Any bytes, and printable ASCII (`\` included), which takes escaped_name's short way.
        let name = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "[ -~]{0,40}".prop_map(String::into_bytes),
        ];
        // sftp-server's words in its order (stored as bits), and anything else (stored as text).
        let flags = prop_oneof![
            proptest::sample::subsequence(OPEN_FLAG_WORDS.to_vec(), 0..=6)
                .prop_map(|w| w.join(",")),
            proptest::sample::subsequence(OPEN_FLAG_WORDS.to_vec(), 0..=6)
                .prop_shuffle()
                .prop_map(|w| w.join(",")),
            "[A-Z0-9,]{0,12}",
            ".{0,12}",
        ];
        let direction = proptest::sample::select(vec![
            Direction::None,
            Direction::Upload,
            Direction::Download,
            Direction::Both,
        ]);
        proptest::test_runner::TestRunner::default()
            .run(
                &(micros, name, flags, direction),
                |(micros, name, flags, direction)| {
                    let id: i64 = conn
                        .query_row(
                            "INSERT INTO transfer_rows (session_id, path, path_escaped, direction_code,
                                                        open_flags_code, opened_at_us)
                                  VALUES (1, ?1, ?2, ?3, ?4, ?5)
                               RETURNING id",
                            params![
                                name,
                                escaped_name(&name),
                                direction_code(direction),
                                open_flags_code(&flags),
                                micros
                            ],
                            |r| r.get(0),
                        )
                        .unwrap();
                    let shown: (String, String, String, String, String) = conn
                        .query_row(
                            &format!(
                                "SELECT opened_at, path_text, {hour}, open_flags, direction
                                   FROM transfers WHERE id = ?1"
                            ),
                            [id],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                        )
                        .unwrap();
                    let hour_start = micros.div_euclid(3_600_000_000) * 3_600_000_000;
                    let expected = (
                        Micros(micros).to_string(),
                        path_text(&name),
                        Micros(hour_start).to_string(),
                        flags.clone(),
                        direction.as_str().to_owned(),
                    );
                    prop_assert_eq!(shown, expected);
                    Ok(())
                },
            )
            .unwrap();
        // What sftp-server writes is stored as bits.
        assert_eq!(
            open_flags_code("WRITE,CREATE,TRUNCATE"),
            rusqlite::types::Value::Integer(2 | 8 | 16)
        );
        assert_eq!(open_flags_code(""), rusqlite::types::Value::Integer(0));
    }

    /// What a flush adds to the rollups, from the rows in memory and the changes it makes, is
    /// what computing the cells afresh from the rows it leaves gives: any times (before 1970
    /// too), durations and byte counts of any sign and size below overflow, refused sessions,
    /// no user, counters cut, transfers whose session an earlier batch wrote (read back), and
    /// changes to sessions an earlier batch wrote (an end, a refusal, a user filled in).
    #[test]
    fn a_flush_adds_to_the_rollups_what_the_rows_contribute() {
        use super::super::pending::{PendingTransfer, SessionRow};
        use proptest::prelude::*;
        let hour = 3_600_000_000i64;
        let time = prop_oneof![
            (0i64..4 * hour).prop_map(move |t| 1_795_000_000_000_000 + t),
            (-2 * hour..2 * hour),
            -62_167_219_200_000_000i64..253_402_300_800_000_000,
        ];
        let big = prop_oneof![Just(None), any::<i64>().prop_map(|v| Some(v >> 8))];
        let session = (
            proptest::sample::select(vec!["a", "b"]),
            proptest::sample::select(vec![None, Some("u"), Some("v")]),
            time.clone(),
            big.clone(),
            proptest::sample::select(vec![
                EndReason::Closed,
                EndReason::Forced,
                EndReason::MissingEnd,
                EndReason::Refused,
            ]),
        );
        let transfer = (
            0usize..8,
            time,
            proptest::sample::select(vec![None, Some(CountsAs::Upload), Some(CountsAs::Download)]),
            any::<bool>(),
            big.clone(),
            big.clone(),
            any::<bool>(),
        );
        let reason = proptest::sample::select(vec![
            None,
            Some(EndReason::Closed),
            Some(EndReason::Forced),
            Some(EndReason::Refused),
        ]);
        let patch = (
            0usize..8,
            proptest::sample::select(vec![None, Some("w")]),
            proptest::option::of(big),
            reason,
            any::<bool>(),
        );
        let cases = (
            proptest::collection::vec(session, 1..6),
            proptest::collection::vec(transfer, 0..16),
            proptest::collection::vec(patch, 0..6),
        );
        proptest::test_runner::TestRunner::default()
            .run(&cases, |(sessions, transfers, patches)| {
                let dir = tempfile::tempdir().unwrap();
                let mut store = SqliteStore::open(&dir.path().join("r.db")).unwrap();
                let conn = store.conn_mut().unwrap();
                let at = Micros;
                let sessions: Vec<SessionRow> = sessions
                    .into_iter()
                    .enumerate()
                    .map(
                        |(i, (host, user, start, duration, end_reason))| SessionRow {
                            record: SessionRecord {
                                id: i as i64 + 1,
                                host: host.to_owned(),
                                user: user.map(str::to_owned),
                                client_ip: None,
                                client_port: None,
                                local_ip: None,
                                local_port: None,
                                started_at: at(start),
                                ended_at: None,
                                duration_ms: duration,
                                exit_status: None,
                                signal: None,
                                end_reason,
                                source: SessionSource::Wrapper,
                                sid: None,
                                pid: i as i64,
                                sftp_pid: None,
                                auth_method: None,
                                auth_key: None,
                                sftp_closed: false,
                                origin_pid: None,
                                origin_uid: None,
                                origin_command: None,
                            },
                            last_op_kind: None,
                            last_op_id: None,
                        },
                    )
                    .collect();
                let n_sessions = sessions.len();
                let transfers: Vec<PendingTransfer> = transfers
                    .into_iter()
                    .enumerate()
                    .map(
                        |(i, (session, opened, counts_as, complete, read, written, cut))| {
                            PendingTransfer {
                                id: i as i64 + 1,
                                row: TransferRecord {
                                    session_id: (session % n_sessions) as i64 + 1,
                                    path: b"/f".to_vec(),
                                    direction: Direction::Upload,
                                    counts_as,
                                    open_flags: "WRITE".into(),
                                    mode: None,
                                    bytes_read: read,
                                    bytes_written: written,
                                    opened_at: at(opened),
                                    closed_at: None,
                                    forced: false,
                                    failed: false,
                                    complete,
                                    counters_cut: cut,
                                    renamed_to: None,
                                    reached: None,
                                },
                            }
                        },
                    )
                    .collect();
                // The first batch holds the sessions and every other transfer; the second the
                // rest, whose sessions are read back.
                let (first, second): (Vec<_>, Vec<_>) = transfers
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| i % 2 == 0);
                // Changes to the sessions the first batch wrote go with the second.
                let mut session_patches = std::collections::BTreeMap::new();
                for (session, user, duration, end_reason, closed) in patches {
                    let p: &mut SessionPatch = session_patches
                        .entry((session % n_sessions) as i64 + 1)
                        .or_default();
                    p.fill_user = user.map(str::to_owned);
                    p.end = duration.map(|duration_ms| super::super::pending::EndPatch {
                        ended_at: at(0),
                        duration_ms,
                        exit_status: None,
                        signal: None,
                    });
                    p.end_reason = end_reason;
                    p.sftp_closed = closed;
                }
                let batch =
                    |sessions, transfers: Vec<(usize, PendingTransfer)>, session_patches| Batch {
                        sessions,
                        transfers: transfers.into_iter().map(|(_, t)| t).collect(),
                        ops: Vec::new(),
                        row_updates: Vec::new(),
                        session_patches,
                    };
                conn.execute_batch("BEGIN").unwrap();
                conn.write_batch(&batch(sessions, first, Vec::new()))
                    .unwrap();
                conn.write_batch(&batch(
                    Vec::new(),
                    second,
                    session_patches.into_iter().collect(),
                ))
                .unwrap();
                conn.execute_batch("COMMIT").unwrap();
                // A user filled in marks cells for the commit to recompute, as an ingest's does.
                store.begin().unwrap();
                store.commit().unwrap();
                prop_assert_eq!(store.rollup_differences().unwrap(), 0);
                Ok(())
            })
            .unwrap();
    }

    /// A version 8 database as that version created it: tables with virtual columns, and the
    /// rollup triggers on them.
    fn version_8_database(db: &Path) -> Connection {
        let conn = Connection::open(db).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (8);",
        )
        .unwrap();
        compact_rows_functions(&conn).unwrap();
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        let triggers = include_str!("../../../tests/data/sqlite_rollup_triggers_v5_to_v12.sql")
            .replace("ON session_rows", "ON sessions")
            .replace("ON transfer_rows", "ON transfers");
        conn.execute_batch(&triggers).unwrap();
        conn
    }

    /// Schema 9 stores the rows in tables under views: a version 8 database keeps every value,
    /// its columns in their order, its views and its rollups, and ends up with the schema a new
    /// database has. (The later columns, `renamed_to` and `reached`, are left out of the comparison.)
    #[test]
    fn a_version_8_database_is_stored_in_tables_under_views() {
        fn names(conn: &Connection, table: &str) -> Vec<String> {
            let mut columns = conn
                .prepare(&format!("PRAGMA table_xinfo({table})"))
                .unwrap();
            columns
                .query_map([], |r| r.get(1))
                .unwrap()
                .map(|name| name.unwrap())
                .filter(|name: &String| name != "renamed_to" && name != "reached")
                .collect()
        }
        fn columns(conn: &Connection, table: &str) -> String {
            format!("{table}: {}", names(conn, table).join(", "))
        }
        fn dump(conn: &Connection) -> Vec<String> {
            let mut out = Vec::new();
            for table in [
                "sessions",
                "transfers",
                "operations",
                "usage_hourly",
                "daily_usage",
                "monthly_usage",
            ] {
                out.push(columns(conn, table));
                let listed: Vec<String> = names(conn, table)
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect();
                let mut rows = conn
                    .prepare(&format!(
                        "SELECT {} FROM {table} ORDER BY 1, 2, 3",
                        listed.join(", ")
                    ))
                    .unwrap();
                let n = rows.column_count();
                let values = rows
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| r.get::<_, rusqlite::types::Value>(i))
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .unwrap();
                out.extend(values.map(|v| format!("{:?}", v.unwrap())));
            }
            out
        }
        fn schema(conn: &Connection) -> Vec<String> {
            let mut objects = conn
                .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name")
                .unwrap();
            objects
                .query_map([], |r| {
                    Ok(format!(
                        "{} {} on {}: {:?}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?
                    ))
                })
                .unwrap()
                .map(|o| o.unwrap())
                .collect()
        }
        let dir = tempfile::tempdir().unwrap();
        let fresh = schema(
            SqliteStore::open(&dir.path().join("new.db"))
                .unwrap()
                .connection()
                .unwrap(),
        );
        let db = dir.path().join("v8.db");
        let before = {
            let conn = version_8_database(&db);
            // A microsecond before 1970, the last of a day, year 0, and a name not UTF-8.
            conn.execute_batch(
                "INSERT INTO sessions (id, host, user, started_at_us, ended_at_us, source, pid,
                                       end_reason, duration_ms)
                      VALUES (1, 'h', 'u', -1, 86399999999, 'wrapper', 7, 'closed', 5),
                             (2, 'h', NULL, -62167219200000000, NULL, 'wrapper', 8,
                              'missing_end', NULL);
                 INSERT INTO transfers (session_id, path, path_escaped, direction_code,
                                        open_flags_code, opened_at_us, closed_at_us,
                                        bytes_written, counts_as, complete)
                      VALUES (1, X'2F696E2FFF', '/in/\\xff', 1, 26, 0, 1795000000000001, 9,
                              'upload', 1),
                             (2, X'2F61', NULL, 2, 'READ,READ', 5, NULL, NULL, NULL, 0);
                 INSERT INTO operations (session_id, host, user, at_us, kind, path, target)
                      VALUES (1, 'h', 'u', 1795000000999999, 'rename', X'2F61', X'2F62');",
            )
            .unwrap();
            assert!(schema(&conn).iter().any(|o| o.contains("GENERATED")));
            dump(&conn)
        };
        for expected in [
            "0000-01-01T00:00:00.000000Z",
            "1969-12-31T23:59:59.999999Z",
            "/in/\\\\xff",
            "READ,READ",
            "WRITE,CREATE,TRUNCATE",
        ] {
            assert!(
                before.iter().any(|row| row.contains(expected)),
                "{expected} in {before:#?}"
            );
        }
        let mut store = SqliteStore::open(&db).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            super::super::SCHEMA_VERSION
        );
        let conn = store.connection().unwrap();
        assert_eq!(dump(conn), before);
        assert_eq!(schema(conn), fresh);
        // SQLite computes generated columns and builds IN lists for every row it writes.
        let tables = schema(conn);
        let tables = tables.iter().filter(|o| o.starts_with("table "));
        assert!(
            !tables
                .clone()
                .any(|o| o.contains("GENERATED") || o.contains(" IN (")),
            "{:#?}",
            tables.collect::<Vec<_>>()
        );
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        // The rewritten checks still refuse what the old ones did.
        for bad in [
            "UPDATE session_rows SET end_reason = 'gone' WHERE id = 1",
            "UPDATE session_rows SET source = 'sshd' WHERE id = 1",
            "UPDATE transfer_rows SET counts_as = 'both' WHERE session_id = 1",
        ] {
            assert!(conn.execute(bad, []).is_err(), "{bad}");
        }
        // The triggers moved with the rows: a row written after the upgrade is in the rollups.
        conn.execute_batch(
            "INSERT INTO transfer_rows (session_id, path, direction_code, open_flags_code,
                                        opened_at_us, bytes_read, counts_as, complete)
                  VALUES (1, X'2F63', 2, 1, 3600000000, 70, 'download', 1);
             UPDATE session_rows SET duration_ms = 9 WHERE id = 1;",
        )
        .unwrap();
        assert_eq!(store.rollup_differences().unwrap(), 0);
    }

    /// A version 8 database with a row its checks would refuse (written while a check was
    /// off) is not upgraded, and is left as it was.
    #[test]
    fn a_version_8_database_with_a_row_its_checks_refuse_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v8.db");
        let schema = |conn: &Connection| -> String {
            conn.query_row("SELECT group_concat(sql) FROM sqlite_schema", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let before = {
            let conn = version_8_database(&db);
            conn.execute_batch(
                "INSERT INTO sessions (id, host, started_at_us, source, pid)
                      VALUES (1, 'h', 0, 'wrapper', 7);
                 PRAGMA ignore_check_constraints = ON;
                 INSERT INTO transfers (session_id, path, direction_code, open_flags_code,
                                        opened_at_us, counts_as)
                      VALUES (1, X'2F61', 1, 26, 0, 'both');
                 PRAGMA ignore_check_constraints = OFF;",
            )
            .unwrap();
            schema(&conn)
        };
        let Err(e) = SqliteStore::open(&db) else {
            panic!("upgraded");
        };
        assert!(e.to_string().contains("CHECK constraint failed"), "{e}");
        let conn = Connection::open(&db).unwrap();
        assert_eq!(schema(&conn), before);
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 8);
        let kept: String = conn
            .query_row("SELECT counts_as FROM transfers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "both");
    }

    /// A version 8 database whose admin dropped a usage view is upgraded, and has the view again.
    #[test]
    fn a_version_8_database_without_a_usage_view_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v8.db");
        version_8_database(&db)
            .execute_batch("DROP VIEW monthly_usage")
            .unwrap();
        let mut store = SqliteStore::open(&db).unwrap();
        let months: i64 = store
            .connection()
            .unwrap()
            .query_row("SELECT count(*) FROM monthly_usage", [], |r| r.get(0))
            .unwrap();
        assert_eq!(months, 0);
    }

    /// Schema 6 keeps every value of a version 5 database (times to the microsecond, names of
    /// any bytes) and the rollups it had, which still equal the rows.
    #[test]
    fn a_version_5_database_is_compacted_keeping_rows_and_rollups() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v5.db");
        let sessions = [(
            "2026-11-26T23:59:59.999999Z",
            Some("2026-11-27T00:10:00.000001Z"),
        )];
        let transfers: [(&[u8], &str, Option<&str>); 3] = [
            (b"/in/caf\xc3\xa9", "2026-11-26T23:59:59.999999Z", None),
            (
                b"/in/\xff\n\\",
                "2026-11-27T00:00:00.000000Z",
                Some("2026-11-27T00:09:00.500000Z"),
            ),
            (
                b"",
                "2026-11-27T00:00:01.000000Z",
                Some("2026-11-27T00:00:02.000000Z"),
            ),
        ];
        {
            let conn = Connection::open(&db).unwrap();
            for sql in &MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (5);",
            )
            .unwrap();
            for (started, ended) in sessions {
                conn.execute(
                    "INSERT INTO sessions (id, host, user, started_at, ended_at, duration_ms, source, pid, end_reason)
                          VALUES (1, 'h', 'u', ?1, ?2, 600000, 'wrapper', 7, 'closed')",
                    params![started, ended],
                )
                .unwrap();
            }
            for (path, opened, closed) in transfers {
                conn.execute(
                    "INSERT INTO transfers (session_id, path, path_text, direction, open_flags, opened_at,
                                            closed_at, bytes_read, bytes_written, counts_as, complete)
                          VALUES (1, ?1, ?2, 'upload', 'WRITE', ?3, ?4, 0, 10,
                                  CASE WHEN ?4 IS NULL THEN NULL ELSE 'upload' END, ?4 IS NOT NULL)",
                    params![path, path_text(path), opened, closed],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO operations (session_id, host, user, at, kind, path, path_text, target, target_text)
                      VALUES (1, 'h', 'u', '2026-11-27T00:05:00.000007Z', 'rename', ?1, ?2, ?3, ?4)",
                params![
                    b"/in/a".as_slice(),
                    path_text(b"/in/a"),
                    b"/in/\x01".as_slice(),
                    path_text(b"/in/\x01")
                ],
            )
            .unwrap();
            // The rollups version 5 kept for these rows: the session and the open file (its
            // bytes, not a file) at 23h, the two closed files at 0h.
            conn.execute_batch(
                "INSERT INTO usage_hourly VALUES
                   ('2026-11-26T23:00:00.000000Z', 'h', 'u', 1, 0, 600000, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2),
                   ('2026-11-27T00:00:00.000000Z', 'h', 'u', 0, 0, 0, 2, 0, 0, 0, 0, 20, 0, 0, 0, 2);",
            )
            .unwrap();
        }
        let mut s = SqliteStore::open(&db).unwrap();
        assert_eq!(s.schema_version().unwrap(), super::super::SCHEMA_VERSION);
        assert_eq!(s.rollup_differences().unwrap(), 0);
        let conn = s.connection().unwrap();
        let got: Vec<(String, Option<String>)> = conn
            .prepare("SELECT started_at, ended_at FROM sessions")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want: Vec<(String, Option<String>)> = sessions
            .iter()
            .map(|(a, b)| (a.to_string(), b.map(str::to_owned)))
            .collect();
        assert_eq!(got, want);
        type TransferShown = (Vec<u8>, String, Option<String>, String, Option<String>);
        let got: Vec<TransferShown> = conn
            .prepare("SELECT path, path_text, path_escaped, opened_at, closed_at FROM transfers ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want: Vec<_> = transfers
            .iter()
            .map(|(path, opened, closed)| {
                (
                    path.to_vec(),
                    path_text(path),
                    escaped_name(path),
                    opened.to_string(),
                    closed.map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(got, want);
        let kinds: Vec<(String, String)> = conn
            .prepare("SELECT direction, open_flags FROM transfers ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(kinds, vec![("upload".to_owned(), "WRITE".to_owned()); 3]);
        // Only the name that is not plain UTF-8 keeps a stored readable form.
        assert_eq!(
            want.iter().map(|w| w.2.is_some()).collect::<Vec<_>>(),
            [false, true, false]
        );
        let got: (String, String, String, Option<String>) = conn
            .query_row(
                "SELECT at, path_text, target_text, target_escaped FROM operations",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            got,
            (
                "2026-11-27T00:05:00.000007Z".to_owned(),
                "/in/a".to_owned(),
                "/in/\\x01".to_owned(),
                Some("/in/\\x01".to_owned())
            )
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        drop(SqliteStore::open(&db).unwrap());
        let conn = Connection::open(&db).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(conn);
        let err = SqliteStore::open(&db).err().unwrap();
        assert!(err.to_string().contains("upgrade sftpd-report"), "{err}");
    }
}
