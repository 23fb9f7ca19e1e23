//! The ingest's writes, held back until the next flush and written as one batch by either
//! store.
//!
//! A file's open and close lines are one row: written once with its final state at the next
//! flush instead of inserted at the open and updated at the close. A session's many small
//! changes (sftp-server's PID, who, how authenticated, sftp-server closed, the end, the row the
//! next `sent status` answers) merge into one update per session and batch. sshd's `Accepted`
//! lines are nearly all claimed by their session within the batch and never reach the database.
//! The ingest reaches its store through [`Writer`], which owns what is held and flushes it
//! before every commit and before every read of these tables, so nothing held is ever missing
//! from what a query or a commit sees. A full batch is written by a thread of the store's own
//! ([`Link`]) while the ingest fills the next one; changes to rows an earlier batch wrote
//! ([`RowUpdate`]) are held for the next batch like the rows.

use super::{
    ClosedFile, EndReason, IngestStore, LastOp, Micros, NewOperation, NewSession, NewTransfer,
    OpenTransfer, OperationRecord, Result, SessionEnd, SessionOrigin, SessionRecord,
    TransferRecord, stored_counters, text,
};
use crate::accounting::rollup::{self, Cells, Counted, HostUser};
use crate::accounting::{IdMap, IdSet};
use std::borrow::Cow;

/// A store's connection, or the thread that has it while it writes a full batch of held rows:
/// the ingest goes on reading, parsing and holding the next rows meanwhile (on two cores the two
/// overlap). At most two batches are in memory: the one being written and the one being filled
/// (in the emptied lists of the one before).
pub(super) struct Link<C: WritesBatches> {
    holder: Holder<C>,
    /// The batch written last, emptied: the next batch's lists are filled in its room, so they
    /// are not grown again from nothing for every batch (copies, and page faults on memory the
    /// allocator had handed back).
    spare: Batch,
}

enum Holder<C> {
    Idle(C),
    Writing(std::thread::JoinHandle<(C, Result<()>, Batch)>),
    /// The writing thread panicked and took the connection with it.
    Lost,
}

impl<C: WritesBatches> Link<C> {
    pub fn new(conn: C) -> Link<C> {
        Link {
            holder: Holder::Idle(conn),
            spare: Batch::default(),
        }
    }

    /// The connection, once a batch being written in the background is in; that batch's error
    /// if it failed.
    pub fn get(&mut self) -> Result<&mut C> {
        self.settle()?;
        match &mut self.holder {
            Holder::Idle(conn) => Ok(conn),
            _ => Err(super::StoreError::WriterLost),
        }
    }

    /// Waits for the batch being written in the background, if any, and takes the connection
    /// back.
    pub(crate) fn settle(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.holder, Holder::Lost) {
            Holder::Writing(writer) => {
                let (conn, written, spare) =
                    writer.join().map_err(|_| super::StoreError::WriterLost)?;
                self.holder = Holder::Idle(conn);
                self.spare = spare;
                written
            }
            idle_or_lost => {
                self.holder = idle_or_lost;
                Ok(())
            }
        }
    }

    /// Writes everything `pending` holds: `background`, in a thread of its own, which the next
    /// use of the connection waits for; else here and now.
    pub fn flush(&mut self, pending: &mut WriteBehind, background: bool) -> Result<()> {
        self.settle()?;
        let batch = pending.take_batch(std::mem::take(&mut self.spare), background);
        if batch.is_empty() {
            self.spare = batch;
            return Ok(());
        }
        let Holder::Idle(mut conn) = std::mem::replace(&mut self.holder, Holder::Lost) else {
            return Err(super::StoreError::WriterLost);
        };
        if background {
            self.holder = Holder::Writing(std::thread::spawn(move || {
                // The rows are freed there, off the ingest's thread.
                let (written, spare) = write_and_empty(&mut conn, batch);
                (conn, written, spare)
            }));
            Ok(())
        } else {
            let (written, spare) = write_and_empty(&mut conn, batch);
            self.holder = Holder::Idle(conn);
            self.spare = spare;
            written
        }
    }
}

/// Writes `batch` with `conn`, then empties it for the next batch to be held in its lists.
fn write_and_empty<C: WritesBatches>(conn: &mut C, mut batch: Batch) -> (Result<()>, Batch) {
    let written = conn.write_batch(&batch);
    batch.clear();
    (written, batch)
}

impl<C: WritesBatches> Drop for Link<C> {
    fn drop(&mut self) {
        // A batch still being written belongs to a transaction never committed: the thread is
        // waited for, so that closing the connection rolls it back before the caller goes on.
        let _ = self.settle();
    }
}

/// A store's connection, which writes what a flush takes.
pub(super) trait WritesBatches: Send + 'static {
    /// Writes the batch's rows, its changes to sessions and to other rows earlier batches
    /// wrote, without the rollup triggers' notes of their cells ([`WritesBatches::write_batch`]
    /// adds what they move itself).
    fn write_rows(&mut self, batch: &Batch) -> Result<()>;

    /// What the rows `touched` names count in the rollups now, and where.
    fn facts(&mut self, touched: &Touched) -> Result<Vec<Fact>>;

    /// The sessions `ids` that are stored: (id, host, user, `''` for none).
    fn sessions(&mut self, ids: &[i64]) -> Result<Vec<(i64, String, String)>>;

    /// Adds `cells` to `usage_hourly`, creating cells as needed.
    fn add_cells(&mut self, cells: &Cells<'_>) -> Result<()>;

    /// Writes the batch and adds to the rollups what it moves: its new rows, and for the rows
    /// of earlier batches it changes, what they count after it less what they counted before.
    fn write_batch(&mut self, batch: &Batch) -> Result<()> {
        let touched = batch.touched();
        let before = self.facts(&touched)?;
        self.write_rows(batch)?;
        let after = self.facts(&touched)?;
        let mut cells = Cells::new();
        batch.add_changes_to_cells(&mut cells, before, after)?;
        batch.add_to_cells(&mut cells, |ids| self.sessions(ids))?;
        self.add_cells(&cells)
    }
}

/// What one flush writes: the held rows with their final state, and the held changes to rows
/// earlier batches wrote.
#[derive(Default)]
pub(super) struct Batch {
    pub sessions: Vec<SessionRow>,
    pub transfers: Vec<PendingTransfer>,
    pub ops: Vec<PendingOp>,
    pub row_updates: Vec<RowUpdate>,
    /// The merged changes to sessions that earlier batches (or transactions) wrote. Applying
    /// each batch's in turn leaves what applying them merged would: every field is either
    /// "the latest value set wins" or "the first value wins" in both.
    pub session_patches: Vec<(i64, SessionPatch)>,
}

impl Batch {
    /// Empties every list, keeping its room.
    fn clear(&mut self) {
        self.sessions.clear();
        self.transfers.clear();
        self.ops.clear();
        self.row_updates.clear();
        self.session_patches.clear();
    }

    /// Adds the new sessions and transfers to `cells` by the rollups' rule: a transfer under
    /// its session's host and user as that session row stands now. A transfer's session is
    /// nearly always in the same batch; `who` reads the others' (id, host, user) at once. No
    /// session row, no cell.
    fn add_to_cells<'a>(
        &'a self,
        cells: &mut Cells<'a>,
        who: impl FnOnce(&[i64]) -> Result<Vec<(i64, String, String)>>,
    ) -> Result<()> {
        let mut sessions: IdMap<i64, HostUser<'a>> = IdMap::default();
        for s in self.sessions.iter().map(|s| &s.record) {
            let (host, user) = (text(&s.host), text(s.user.as_deref().unwrap_or("")));
            let refused = s.end_reason == EndReason::Refused;
            if let Some(counted) = Counted::session(refused, s.duration_ms) {
                rollup::add_row(cells, 1, s.started_at, host.clone(), user.clone(), &counted)?;
            }
            sessions.insert(s.id, (host, user));
        }
        let mut elsewhere: Vec<i64> = (self.transfers.iter())
            .map(|t| t.row.session_id)
            .filter(|id| !sessions.contains_key(id))
            .collect();
        elsewhere.sort_unstable();
        elsewhere.dedup();
        if !elsewhere.is_empty() {
            for (id, host, user) in who(&elsewhere)? {
                sessions.insert(id, (Cow::Owned(host), Cow::Owned(user)));
            }
        }
        for t in self.transfers.iter().map(|t| &t.row) {
            let Some((host, user)) = sessions.get(&t.session_id) else {
                continue;
            };
            let counted = Counted::transfer(
                t.counts_as,
                t.complete,
                t.bytes_written,
                t.bytes_read,
                t.counters_cut,
            );
            rollup::add_row(cells, 1, t.opened_at, host.clone(), user.clone(), &counted)?;
        }
        Ok(())
    }

    /// The rows earlier batches wrote whose part in the rollups this batch may move.
    fn touched(&self) -> Touched {
        let mut touched = Touched::default();
        for (id, p) in &self.session_patches {
            if p.end.is_some() || p.end_reason.is_some() || p.fill_user.is_some() {
                touched.sessions.push(*id);
            }
            if p.fill_user.is_some() {
                touched.transfers_of.push(*id);
            }
        }
        for update in &self.row_updates {
            match update {
                RowUpdate::Close(TransferClose { id, .. })
                | RowUpdate::Failed(id)
                | RowUpdate::Deleted(id) => touched.transfers.push(*id),
                RowUpdate::Abandoned { session_id } => touched.open_of.push(*session_id),
                RowUpdate::Renamed { .. } | RowUpdate::OperationFailed { .. } => {}
            }
        }
        touched
    }

    /// Adds to `cells` what writing the batch moved in the rows it touched: what they counted
    /// `before` is taken away, what they count `after` added (the batch's new rows, which
    /// [`Batch::add_to_cells`] adds, left out). A row named twice counts once.
    fn add_changes_to_cells(
        &self,
        cells: &mut Cells<'_>,
        before: Vec<Fact>,
        after: Vec<Fact>,
    ) -> Result<()> {
        let new: IdSet<i64> = match after.iter().any(|f| f.transfer) {
            true => self.transfers.iter().map(|t| t.id).collect(),
            false => IdSet::default(),
        };
        for (sign, facts) in [(-1, before), (1, after)] {
            let mut seen = IdSet::default();
            for f in facts {
                let first = seen.insert((f.transfer, f.id));
                if first && !(f.transfer && new.contains(&f.id)) {
                    let (host, user) = (Cow::Owned(f.host), Cow::Owned(f.user));
                    rollup::add_row(cells, sign, f.at, host, user, &f.counted)?;
                }
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.transfers.is_empty()
            && self.ops.is_empty()
            && self.row_updates.is_empty()
            && self.session_patches.is_empty()
    }
}

/// The ingest's way to a store: the rows and changes it holds back for the next batch, and the
/// store they go to. Every read of the tables those rows go to writes what is held first, so
/// nothing held is missing from what a query (or a commit) sees.
pub(crate) struct Writer<'a> {
    pub store: &'a mut dyn IngestStore,
    held: WriteBehind,
}

/// A change to rows or sessions held or written goes to what is held, to be written with the
/// next batch: `writer.close_transfer(…)` is [`WriteBehind::close_transfer`].
impl std::ops::Deref for Writer<'_> {
    type Target = WriteBehind;
    fn deref(&self) -> &WriteBehind {
        &self.held
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut WriteBehind {
        &mut self.held
    }
}

impl<'a> Writer<'a> {
    pub fn new(store: &'a mut dyn IngestStore) -> Writer<'a> {
        Writer {
            store,
            held: WriteBehind::default(),
        }
    }

    pub fn begin(&mut self) -> Result<()> {
        // What the database holds may have changed since the last transaction.
        self.held.begin();
        self.store.begin()
    }

    pub fn commit(&mut self) -> Result<()> {
        self.flushed()?.commit()
    }

    pub(crate) fn rollback(&mut self) -> Result<()> {
        self.held.clear();
        self.store.rollback()
    }

    /// The store, once everything held is written: for a read of the rows it holds.
    pub(crate) fn flushed(&mut self) -> Result<&mut dyn IngestStore> {
        self.store.write(&mut self.held, false)?;
        Ok(&mut *self.store)
    }

    /// Writes the held rows in the background when there are enough of them. Every new row asks
    /// first, and the ingest asks after each line for the changes to rows already written, so
    /// what is held stays about one batch whatever one line adds (a session's end can turn
    /// every failed open it had into an operation).
    pub(crate) fn flush_if_full(&mut self) -> Result<()> {
        if self.held.full() {
            self.store.write(&mut self.held, true)?;
        }
        Ok(())
    }

    /// The transfers the database holds open; their sessions' end must reach the database.
    pub(crate) fn open_transfers(&mut self) -> Result<Vec<OpenTransfer>> {
        let open = self.flushed()?.open_transfers()?;
        self.held
            .open_in_db
            .extend(open.iter().map(|t| t.session_id));
        Ok(open)
    }

    /// See [`IngestStore::set_session_origin`]; a held session keeps it until it is written.
    pub(crate) fn set_session_origin(&mut self, id: i64, origin: &SessionOrigin) -> Result<()> {
        if self.held.set_origin(id, origin) {
            return Ok(());
        }
        self.store.set_session_origin(id, origin)
    }

    pub(crate) fn merge_session(&mut self, from: i64, into: i64) -> Result<()> {
        self.flushed()?.merge_session(from, into)?;
        self.held.merged(from, into);
        Ok(())
    }

    /// See [`IngestStore::take_pending_auth`]; the held lines first.
    pub(crate) fn take_pending_auth(
        &mut self,
        host: &str,
        user: &str,
        client_ip: &str,
        client_port: Option<i64>,
    ) -> Result<Option<(String, Option<String>)>> {
        if let Some(found) = self.held.take_auth(host, user, client_ip, client_port) {
            return Ok(Some(found));
        }
        self.store
            .take_pending_auth(host, user, client_ip, client_port)
    }

    pub(crate) fn prune_pending_auth(&mut self, before: Micros) -> Result<()> {
        self.held.prune_auth(before);
        self.store.prune_pending_auth(before)
    }

    /// Whether the database may hold a session of `host` that started at `earliest` or later:
    /// not when the host's latest start, read once per transaction, is before it.
    fn may_hold_from(&mut self, host: &str, earliest: Micros) -> Result<bool> {
        if self.held.watermark(host).is_none() {
            let latest = self.store.latest_start(host)?;
            self.held.set_watermark(host, latest);
        }
        Ok(self.held.may_hold_from(host, earliest))
    }

    /// Inserts a session, or returns the id of the one with the same host, PID and start.
    pub(crate) fn insert_session(&mut self, s: &NewSession) -> Result<i64> {
        if let Some(id) = self.held.known_session(s) {
            return Ok(id);
        }
        if self.may_hold_from(&s.host, s.started_at)?
            && let Some(id) = self.store.find_session(&s.host, s.pid, s.started_at)?
        {
            self.held.remember_session(s, id);
            return Ok(id);
        }
        self.flush_if_full()?;
        let id = self.store.reserve_id(IdTable::Sessions)?;
        self.held.add_session(id, s);
        Ok(id)
    }

    /// The session stored with `s`'s wrapper session id (`s.sid`) and host (up to the first
    /// dot), if the database may hold one: `earliest`, where given, is the earliest start it may
    /// have been stored with (a session's first line: no lookup for a session newer than the
    /// host's latest). With its id comes whether its lines came from the journal, where the
    /// database says.
    pub(crate) fn session_by_sid(
        &mut self,
        s: &NewSession,
        earliest: Option<Micros>,
    ) -> Result<Option<(i64, Option<bool>)>> {
        let Some(sid) = s.sid.as_deref() else {
            return Ok(None);
        };
        if let Some(id) = self.held.known_sid(&s.host, sid) {
            return Ok(Some((id, None)));
        }
        if let Some(earliest) = earliest
            && !self.may_hold_from(&s.host, earliest)?
        {
            return Ok(None);
        }
        let found = self.store.find_session_by_sid(&s.host, sid)?;
        if let Some((id, _)) = found {
            self.held.remember_sid(&s.host, sid, id);
        }
        Ok(found.map(|(id, journal)| (id, Some(journal))))
    }

    pub(crate) fn insert_transfer(&mut self, t: &NewTransfer) -> Result<i64> {
        self.flush_if_full()?;
        let id = self.store.reserve_id(IdTable::Transfers)?;
        self.held.add_transfer(id, t);
        Ok(id)
    }

    pub(crate) fn insert_operation(&mut self, o: &NewOperation) -> Result<i64> {
        self.flush_if_full()?;
        let id = self.store.reserve_id(IdTable::Operations)?;
        self.held.add_operation(id, o);
        Ok(id)
    }
}

/// The rows earlier batches wrote whose part in the rollups a batch may move: what they count
/// is read before and after the batch is written.
#[derive(Debug, Default)]
pub(super) struct Touched {
    /// Sessions whose end, end reason or user the batch changes.
    pub sessions: Vec<i64>,
    /// Transfers the batch closes, fails or deletes.
    pub transfers: Vec<i64>,
    /// Sessions whose every transfer may move: given a user.
    pub transfers_of: Vec<i64>,
    /// Sessions whose open transfers may move: ended with files open.
    pub open_of: Vec<i64>,
}

/// What one stored row counts in the rollups, and where.
pub(super) struct Fact {
    /// A transfer's, not a session's.
    pub transfer: bool,
    /// The session's or the transfer's id.
    pub id: i64,
    pub at: Micros,
    pub host: String,
    pub user: String,
    pub counted: Counted,
}

/// The tables whose ids a store hands out before it writes the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTable {
    Sessions,
    Transfers,
    Operations,
}

impl IdTable {
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Rows held before they are written: each write's fixed cost is shared by many rows, and
/// memory stays bounded.
pub(super) const FLUSH_ROWS: usize = 5000;

/// What a batch changed in one session row; every field is "unchanged" by default.
#[derive(Debug, Clone, Default)]
pub(super) struct SessionPatch {
    pub sftp_pid: Option<i64>,
    /// Filled only where the row has none (COALESCE), so the first value seen wins.
    pub fill_user: Option<String>,
    pub fill_ip: Option<String>,
    pub auth: Option<(String, Option<String>)>,
    pub sftp_closed: bool,
    pub end: Option<EndPatch>,
    pub end_reason: Option<EndReason>,
    /// `Some(None)`: cleared.
    pub last_op: Option<Option<LastOp>>,
    /// Set only on a session held here; one in the database is updated at once.
    pub origin: Option<SessionOrigin>,
}

/// The columns `end_session` sets.
#[derive(Debug, Clone, Default)]
pub(super) struct EndPatch {
    pub ended_at: Micros,
    pub duration_ms: Option<i64>,
    pub exit_status: Option<i64>,
    pub signal: Option<String>,
}

/// A session row as it will be written: as first seen, with every change since folded in.
#[derive(Debug, Clone)]
pub(super) struct SessionRow {
    pub record: SessionRecord,
    pub last_op_kind: Option<&'static str>,
    pub last_op_id: Option<i64>,
}

impl SessionRow {
    /// The row that the insert of `s` followed by the updates in `p` would leave.
    fn folded(id: i64, s: NewSession, p: SessionPatch) -> SessionRow {
        let (auth_method, auth_key) = p.auth.unzip();
        let (last_op_kind, last_op_id) = LastOp::columns(p.last_op.flatten());
        let ended = p.end.is_some();
        let end = p.end.unwrap_or_default();
        let origin = p.origin.unwrap_or_default();
        SessionRow {
            record: SessionRecord {
                id,
                host: s.host,
                user: s.user.or(p.fill_user),
                client_ip: s.client_ip.or(p.fill_ip),
                client_port: s.client_port,
                local_ip: s.local_ip,
                local_port: s.local_port,
                started_at: s.started_at,
                ended_at: ended.then_some(end.ended_at),
                duration_ms: end.duration_ms,
                exit_status: end.exit_status,
                signal: end.signal,
                end_reason: p.end_reason.unwrap_or(EndReason::MissingEnd),
                source: s.source,
                sid: s.sid,
                pid: s.pid,
                sftp_pid: p.sftp_pid.or(s.sftp_pid),
                auth_method,
                auth_key: auth_key.flatten(),
                sftp_closed: p.sftp_closed,
                origin_pid: origin.pid,
                origin_uid: origin.uid,
                origin_command: origin.command,
            },
            last_op_kind,
            last_op_id,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct PendingAuth {
    pub host: String,
    pub user: String,
    pub client_ip: String,
    pub client_port: i64,
    pub method: String,
    pub key: Option<String>,
    pub at: Micros,
}

/// A transfer row as it will be written, with the id reserved for it.
#[derive(Debug, Clone)]
pub(super) struct PendingTransfer {
    pub id: i64,
    pub row: TransferRecord,
}

/// An operation row as it will be written, with the id reserved for it.
#[derive(Debug, Clone)]
pub(super) struct PendingOp {
    pub id: i64,
    pub row: OperationRecord,
}

/// A change to a transfer or operation row that an earlier batch wrote, held for the next batch
/// like the rows: a close or a failure does not wait for the batch being written.
#[derive(Debug, Clone)]
pub(super) enum RowUpdate {
    Close(TransferClose),
    Failed(i64),
    /// A log-only open that turned out to have failed: not a transfer.
    Deleted(i64),
    Renamed {
        id: i64,
        to: Option<Vec<u8>>,
    },
    /// The session ended with these of its files still open: never complete, bytes unknown.
    Abandoned {
        session_id: i64,
    },
    OperationFailed {
        id: i64,
        status: String,
    },
}

/// The close of a transfer an earlier batch wrote open.
#[derive(Debug, Clone)]
pub(super) struct TransferClose {
    pub id: i64,
    pub closed_at: Micros,
    pub counters: Option<(u64, u64)>,
    pub forced: bool,
    pub verdict: ClosedFile,
}

/// The held-back writes of one store: new rows, and changes to rows already written.
#[derive(Debug, Default)]
pub struct WriteBehind {
    /// New sessions not written yet; their changes wait in `session_patches` like any other's.
    sessions: Vec<(i64, NewSession)>,
    /// The sessions this transaction inserted, by their unique key (host, PID, start).
    keys: IdMap<(String, i64, Micros), i64>,
    /// The same sessions by (host, wrapper session id), where they have one.
    sids: IdMap<(String, String), i64>,
    /// Per host (up to its first dot), the latest session start in the database when this
    /// transaction first met the host: a session starting later cannot be there already.
    watermarks: IdMap<String, Option<Micros>>,
    pub(super) transfers: Vec<PendingTransfer>,
    pub(super) ops: Vec<PendingOp>,
    pub(super) session_patches: IdMap<i64, SessionPatch>,
    pub(super) auth: Vec<PendingAuth>,
    /// Sessions that may have open transfers in the database (not only here), for which
    /// `abandon_open_transfers` must reach it.
    pub(super) open_in_db: IdSet<i64>,
    /// How many held transfers of each session are not closed: most sessions end with none,
    /// and their end need not look through the held rows.
    open_held: IdMap<i64, usize>,
    /// Changes to rows already written, in the order they were made.
    row_updates: Vec<RowUpdate>,
    /// Held open transfers a failure answered: nearly always opens that failed, which the
    /// session's end turns into operations. A full batch leaves them held, so that forgetting
    /// them costs no DELETE; every other flush (a commit, a read) writes them.
    answered: IdMap<i64, PendingTransfer>,
    /// Whole session rows that `sftpd-report copy` read from another database.
    copied: Vec<SessionRow>,
}

impl WriteBehind {
    /// A transaction starts: what the database holds may have changed since the last one.
    fn begin(&mut self) {
        self.keys.clear();
        self.sids.clear();
        self.watermarks.clear();
    }

    /// Forgets everything held (the transaction rolled back).
    fn clear(&mut self) {
        self.begin();
        self.sessions.clear();
        self.transfers.clear();
        self.ops.clear();
        self.session_patches.clear();
        self.auth.clear();
        self.open_held.clear();
        self.row_updates.clear();
        self.answered.clear();
        self.copied.clear();
    }

    /// Enough rows or row changes held for a write worth its fixed cost.
    pub(super) fn full(&self) -> bool {
        let sessions = self.sessions.len() + self.copied.len();
        sessions + self.transfers.len() + self.ops.len() >= FLUSH_ROWS
            || self.row_updates.len() >= FLUSH_ROWS
    }

    /// Everything held, to be written now; `spare` (empty) gives its lists' room to what is
    /// held next.
    fn take_batch(&mut self, spare: Batch, keep_answered: bool) -> Batch {
        if !keep_answered {
            self.transfers.extend(self.answered.drain().map(|(_, t)| t));
        }
        let Batch {
            mut sessions,
            transfers,
            ops,
            row_updates,
            mut session_patches,
        } = spare;
        let (transfers, ops) = self.take_rows(transfers, ops);
        // Taking the held sessions folds their own changes into them: what is left changes
        // sessions already written.
        self.take_sessions(&mut sessions);
        sessions.append(&mut self.copied);
        session_patches.extend(self.session_patches.drain());
        session_patches.sort_unstable_by_key(|(id, _)| *id);
        Batch {
            sessions,
            transfers,
            ops,
            row_updates: std::mem::replace(&mut self.row_updates, row_updates),
            session_patches,
        }
    }

    /// The id of a session with `s`'s key that this transaction inserted.
    fn known_session(&self, s: &NewSession) -> Option<i64> {
        self.keys
            .get(&(s.host.clone(), s.pid, s.started_at))
            .copied()
    }

    fn known_sid(&self, host: &str, sid: &str) -> Option<i64> {
        self.sids.get(&super::sid_key(host, sid)).copied()
    }

    /// Notes that the database holds session `id` with this host and wrapper session id.
    fn remember_sid(&mut self, host: &str, sid: &str, id: i64) {
        self.sids.insert(super::sid_key(host, sid), id);
    }

    /// Whether the database may hold a session of `host` that started at `earliest` or later.
    fn may_hold_from(&self, host: &str, earliest: Micros) -> bool {
        match self.watermarks.get(super::short_host(host)) {
            Some(Some(latest)) => earliest <= *latest,
            Some(None) => false,
            None => true,
        }
    }

    /// The host's watermark, once the store has read it (`None` outside: not read yet).
    fn watermark(&self, host: &str) -> Option<&Option<Micros>> {
        self.watermarks.get(super::short_host(host))
    }

    fn set_watermark(&mut self, host: &str, latest: Option<Micros>) {
        self.watermarks
            .insert(super::short_host(host).to_owned(), latest);
    }

    /// Notes a session of this transaction found in (or written to) the database.
    fn remember_session(&mut self, s: &NewSession, id: i64) {
        self.keys.insert((s.host.clone(), s.pid, s.started_at), id);
        if let Some(sid) = &s.sid {
            self.sids.insert(super::sid_key(&s.host, sid), id);
        }
    }

    /// Holds a new session with the id the store reserved for it.
    fn add_session(&mut self, id: i64, s: &NewSession) {
        self.remember_session(s, id);
        self.sessions.push((id, s.clone()));
    }

    /// Holds a whole session row that `sftpd-report copy` read, under the id this store
    /// reserved for it; its rows follow through [`WriteBehind::add_copied_rows`].
    pub(super) fn add_copied_session(&mut self, record: SessionRecord) {
        self.copied.push(SessionRow {
            record,
            last_op_kind: None,
            last_op_id: None,
        });
    }

    /// Holds whole transfer and operation rows that `sftpd-report copy` read, under the ids
    /// this store reserved for them.
    pub(super) fn add_copied_rows(
        &mut self,
        transfers: impl IntoIterator<Item = (i64, TransferRecord)>,
        ops: impl IntoIterator<Item = (i64, OperationRecord)>,
    ) {
        (self.transfers).extend(
            transfers
                .into_iter()
                .map(|(id, row)| PendingTransfer { id, row }),
        );
        (self.ops).extend(ops.into_iter().map(|(id, row)| PendingOp { id, row }));
    }

    /// A session not written yet. (The journal names a session's origin with its first
    /// entry, so the session is nearly always the newest held.)
    fn is_held(&self, session_id: i64) -> bool {
        self.sessions.iter().rev().any(|(id, _)| *id == session_id)
    }

    /// Moves the held sessions into `rows`, their changes folded in.
    fn take_sessions(&mut self, rows: &mut Vec<SessionRow>) {
        rows.extend(self.sessions.drain(..).map(|(id, s)| {
            let patch = self.session_patches.remove(&id).unwrap_or_default();
            SessionRow::folded(id, s, patch)
        }));
    }

    /// Keeps a session's origin until its row is written (only for a held session).
    fn set_origin(&mut self, id: i64, origin: &SessionOrigin) -> bool {
        if !self.is_held(id) {
            return false;
        }
        // As the database's update: the first origin that says something wins.
        let p = self.patch(id);
        if p.origin
            .as_ref()
            .is_none_or(|o| *o == SessionOrigin::default())
        {
            p.origin = Some(origin.clone());
        }
        true
    }

    /// The held rows, to be written now, in exchange for the empty lists given; sessions with
    /// a transfer written open are noted.
    fn take_rows(
        &mut self,
        transfers: Vec<PendingTransfer>,
        ops: Vec<PendingOp>,
    ) -> (Vec<PendingTransfer>, Vec<PendingOp>) {
        let transfers = std::mem::replace(&mut self.transfers, transfers);
        self.open_held.clear();
        self.open_in_db.extend(
            transfers
                .iter()
                .filter(|t| t.row.closed_at.is_none())
                .map(|t| t.row.session_id),
        );
        (transfers, std::mem::replace(&mut self.ops, ops))
    }

    pub(super) fn patch(&mut self, id: i64) -> &mut SessionPatch {
        self.session_patches.entry(id).or_default()
    }

    pub(crate) fn set_session_sftp_pid(&mut self, id: i64, sftp_pid: i64) {
        self.patch(id).sftp_pid = Some(sftp_pid);
    }

    pub(crate) fn set_session_auth(&mut self, id: i64, method: &str, key: Option<&str>) {
        self.patch(id).auth = Some((method.to_owned(), key.map(str::to_owned)));
    }

    /// The row the session's next `sent status` line answers.
    pub(crate) fn set_last_op(&mut self, id: i64, op: Option<LastOp>) {
        self.patch(id).last_op = Some(op);
    }

    pub(crate) fn mark_sftp_closed(&mut self, id: i64) {
        self.patch(id).sftp_closed = true;
    }

    /// Corrects how an ended session ended (sftp-server's own last lines came after the end).
    pub(crate) fn set_end_reason(&mut self, id: i64, reason: EndReason) {
        self.patch(id).end_reason = Some(reason);
    }

    /// Fills in who and from where, where the session does not know yet.
    pub(crate) fn fill_session_identity(&mut self, id: i64, user: &str, client_ip: &str) {
        let p = self.patch(id);
        p.fill_user.get_or_insert_with(|| user.to_owned());
        p.fill_ip.get_or_insert_with(|| client_ip.to_owned());
    }

    pub(crate) fn end_session(&mut self, id: i64, end: &SessionEnd) {
        let p = self.patch(id);
        p.end = Some(EndPatch {
            ended_at: end.ended_at,
            duration_ms: end.duration_ms,
            exit_status: end.exit_status,
            signal: end.signal.map(str::to_owned),
        });
        p.end_reason = Some(end.end_reason);
    }

    /// Gives up on a session whose end never came (its PID started a new one).
    pub(crate) fn abandon_session(&mut self, id: i64) {
        let p = self.patch(id);
        p.end_reason = Some(EndReason::MissingEnd);
        p.sftp_closed = true;
        self.abandon_open_transfers(id);
    }

    /// Notes a merge of `from` into `into` (the held rows were flushed before).
    fn merged(&mut self, from: i64, into: i64) {
        self.keys.retain(|_, id| *id != from);
        if self.open_in_db.remove(&from) {
            self.open_in_db.insert(into);
        }
    }

    fn add_transfer(&mut self, id: i64, t: &NewTransfer) {
        *self.open_held.entry(t.session_id).or_default() += 1;
        self.transfers.push(PendingTransfer {
            id,
            row: TransferRecord {
                session_id: t.session_id,
                path: t.path.to_vec(),
                direction: t.direction,
                counts_as: None,
                open_flags: t.open_flags.to_owned(),
                mode: t.mode.map(str::to_owned),
                bytes_read: None,
                bytes_written: None,
                opened_at: t.opened_at,
                closed_at: None,
                forced: false,
                failed: false,
                complete: false,
                counters_cut: false,
                renamed_to: None,
                reached: t.reached.map(<[u8]>::to_vec),
            },
        });
    }

    fn transfer(&mut self, id: i64) -> Option<&mut PendingTransfer> {
        // A close nearly always follows its open closely: search from the newest.
        match self.transfers.iter_mut().rev().position(|t| t.id == id) {
            Some(back) => {
                let at = self.transfers.len() - 1 - back;
                self.transfers.get_mut(at)
            }
            None => self.answered.get_mut(&id),
        }
    }

    /// Notes that a failure answered open transfer `id` (see `answered`).
    pub(crate) fn mark_transfer_answered(&mut self, id: i64) {
        // The failure nearly always follows its open at once: the newest held row.
        if let Some(back) = self.transfers.iter().rev().take(8).position(|t| t.id == id) {
            let t = self.transfers.remove(self.transfers.len() - 1 - back);
            self.answered.insert(id, t);
        }
    }

    /// Records the close: counters (read, written; `None` when the close line was cut and they
    /// are not known), and the verdict of [`crate::log::transfer::classify_close`].
    pub(crate) fn close_transfer(
        &mut self,
        id: i64,
        closed_at: Micros,
        counters: Option<(u64, u64)>,
        forced: bool,
        verdict: &ClosedFile,
    ) {
        let Some(t) = self.transfer(id) else {
            self.row_updates.push(RowUpdate::Close(TransferClose {
                id,
                closed_at,
                counters,
                forced,
                verdict: *verdict,
            }));
            return;
        };
        let (r, w) = stored_counters(counters);
        let (was_open, session) = (t.row.closed_at.is_none(), t.row.session_id);
        t.row.closed_at = Some(closed_at);
        t.row.bytes_read = r;
        t.row.bytes_written = w;
        t.row.counters_cut = counters.is_none();
        t.row.forced = forced;
        t.row.complete = verdict.complete;
        t.row.direction = verdict.direction;
        t.row.counts_as = verdict.counts_as;
        if was_open {
            self.close_held(session);
        }
    }

    pub(crate) fn mark_transfer_failed(&mut self, id: i64) {
        match self.transfer(id) {
            Some(t) => {
                t.row.failed = true;
                t.row.complete = false;
            }
            None => self.row_updates.push(RowUpdate::Failed(id)),
        }
    }

    /// Records the name a rename gave transfer `id`'s file (`None`: the rename failed).
    pub(crate) fn set_transfer_renamed(&mut self, id: i64, to: Option<&[u8]>) {
        match self.transfer(id) {
            Some(t) => t.row.renamed_to = to.map(<[u8]>::to_vec),
            None => self.row_updates.push(RowUpdate::Renamed {
                id,
                to: to.map(<[u8]>::to_vec),
            }),
        }
    }

    /// Forgets transfer `id`, held or written: a log-only open that failed.
    pub(crate) fn forget_transfer(&mut self, id: i64) {
        if let Some(t) = self.answered.remove(&id) {
            self.close_held(t.row.session_id);
            return;
        }
        // Held in the order their ids were reserved: a session's many failed opens are found
        // without a scan each.
        let Ok(at) = self.transfers.binary_search_by_key(&id, |t| t.id) else {
            self.row_updates.push(RowUpdate::Deleted(id));
            return;
        };
        let t = self.transfers.remove(at);
        if t.row.closed_at.is_none() {
            self.close_held(t.row.session_id);
        }
    }

    /// One held open transfer of `session` less.
    fn close_held(&mut self, session: i64) {
        if let Some(n) = self.open_held.get_mut(&session) {
            *n -= 1;
            if *n == 0 {
                self.open_held.remove(&session);
            }
        }
    }

    /// Marks the session's open transfers forced, not complete, with unknown bytes, and
    /// counted as what their open asked for: held or written.
    pub(crate) fn abandon_open_transfers(&mut self, session_id: i64) {
        if self.open_held.contains_key(&session_id) {
            for t in self
                .transfers
                .iter_mut()
                .chain(self.answered.values_mut())
                .filter(|t| t.row.session_id == session_id && t.row.closed_at.is_none())
            {
                t.row.complete = false;
                t.row.forced = true;
                t.row.counters_cut = true;
                t.row.counts_as =
                    crate::log::transfer::classify_cut_close(t.row.direction).counts_as;
            }
        }
        if self.open_in_db.remove(&session_id) {
            self.row_updates.push(RowUpdate::Abandoned { session_id });
        }
    }

    fn add_operation(&mut self, id: i64, o: &NewOperation) {
        self.ops.push(PendingOp {
            id,
            row: OperationRecord {
                session_id: o.session_id,
                host: o.host.to_owned(),
                user: o.user.map(str::to_owned),
                at: o.at,
                kind: o.kind,
                path: o.path.map(<[u8]>::to_vec),
                target: o.target.map(<[u8]>::to_vec),
                detail: o.detail.map(str::to_owned),
                failed: false,
                status: None,
            },
        });
    }

    pub(crate) fn mark_operation_failed(&mut self, id: i64, status: &str) {
        match self.ops.iter_mut().rev().find(|o| o.id == id) {
            Some(o) => {
                o.row.failed = true;
                o.row.status = Some(status.to_owned());
            }
            None => self.row_updates.push(RowUpdate::OperationFailed {
                id,
                status: status.to_owned(),
            }),
        }
    }

    pub(crate) fn add_pending_auth(
        &mut self,
        host: &str,
        a: &crate::log::parse::Accepted,
        at: Micros,
    ) {
        self.auth.push(PendingAuth {
            host: host.to_owned(),
            user: a.user.clone(),
            client_ip: a.client_ip.clone(),
            client_port: i64::from(a.client_port),
            method: a.method.clone(),
            key: a.key.clone(),
            at,
        });
    }

    /// Takes the latest held `Accepted` for this host, user and address (and port, when
    /// known). This batch's lines are newer than the database's, so one found here wins.
    fn take_auth(
        &mut self,
        host: &str,
        user: &str,
        client_ip: &str,
        client_port: Option<i64>,
    ) -> Option<(String, Option<String>)> {
        let found = self
            .auth
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.host == host
                    && a.user == user
                    && a.client_ip == client_ip
                    && client_port.is_none_or(|p| p == a.client_port)
            })
            .max_by(|(i, a), (j, b)| a.at.cmp(&b.at).then(i.cmp(j)))
            .map(|(i, _)| i)?;
        let a = self.auth.remove(found);
        Some((a.method, a.key))
    }

    fn prune_auth(&mut self, before: Micros) {
        self.auth.retain(|a| a.at >= before);
    }
}
