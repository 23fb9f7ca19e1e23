//! The PostgreSQL store: one central database fed by many SFTP servers.
//!
//! Same tables, views and guarantees as SQLite, with `timestamptz` times, `bytea` paths and
//! `boolean` flags. Times cross the interface as storage text and are cast in SQL
//! (`$n::text::timestamptz`, `to_char(… AT TIME ZONE 'UTC', …)`), so nothing here depends on a
//! client-side time type. One ingest at a time holds a session advisory lock; ingests from many
//! servers queue on it, which makes concurrent runs equal to running them one by one.

use super::pending::{
    Batch, Fact, IdTable, Link, PendingOp, PendingTransfer, RowUpdate, SessionPatch, SessionRow,
    Touched, TransferClose, WriteBehind, WritesBatches,
};
use super::{
    Checkpoint, CopyStore, CountsAs, Database, Direction, EndReason, IngestStore, LastOp, Micros,
    NameOperation, OpenSession, OpenTransfer, OperationKind, OperationRecord, ReportStore, Result,
    RowSink, SessionOrigin, SessionRecord, SessionSource, StoreError, TransferRecord, opt_text,
    path_text, stored_counters, text,
};
use crate::accounting::rollup::{self, Counted};
use crate::accounting::sql::{Dialect, Filter, Kind, Value};
use chrono::{DateTime, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::{Client, NoTls, Row, Statement};
use std::collections::HashMap;

/// Serialises schema creation and ingests across every client of the database.
const SCHEMA_LOCK: i64 = 0x5f7c_a11e_0001;
const INGEST_LOCK: i64 = 0x5f7c_a11e_0002;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_initial.sql"),
    include_str!("../../../migrations/postgres/0002_counts_as.sql"),
    include_str!("../../../migrations/postgres/0003_counters_cut.sql"),
    include_str!("../../../migrations/postgres/0004_usage_rollups.sql"),
    include_str!("../../../migrations/postgres/0005_rollup_deltas.sql"),
    include_str!("../../../migrations/postgres/0006_compact_times.sql"),
    include_str!("../../../migrations/postgres/0007_rollup_join.sql"),
    include_str!("../../../migrations/postgres/0008_virtual_columns.sql"),
    include_str!("../../../migrations/postgres/0009_row_views.sql"),
    include_str!("../../../migrations/postgres/0010_renamed_to.sql"),
    include_str!("../../../migrations/postgres/0011_reached.sql"),
    include_str!("../../../migrations/postgres/0012_sid_index.sql"),
    include_str!("../../../migrations/postgres/0013_rollups_by_one_rule.sql"),
];

/// The text enums travel as their words; a word this version does not know is an error.
macro_rules! pg_text {
    ($($t:ty),+) => {$(
        impl ToSql for $t {
            fn to_sql(
                &self,
                ty: &Type,
                out: &mut postgres::types::private::BytesMut,
            ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            postgres::types::to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $t {
            fn from_sql(
                ty: &Type,
                raw: &'a [u8],
            ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let text = <&str as FromSql>::from_sql(ty, raw)?;
                <$t>::parse(text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($t)).into())
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    )+};
}

pg_text!(Direction, CountsAs, SessionSource, OperationKind, EndReason);

const _: () = assert!(MIGRATIONS.len() as i64 == super::SCHEMA_VERSION);

fn checkpoint_from_row(r: &postgres::Row) -> Checkpoint {
    Checkpoint {
        first_line_hash: r.get(0),
        prefix_sha256: r.get(1),
        path: r.get(2),
        inode: r.get(3),
        byte_offset: r.get(4),
        lines: r.get(5),
    }
}

pub struct PgStore {
    link: Link<Conn>,
    shown: String,
    locked: bool,
    /// Reserved ids of sessions, transfers and operations: ids come from the sequences in
    /// blocks, so the ingest gets an id at once and a close right after its open only changes
    /// the held row: two round trips per file become a share of one.
    ids: [std::collections::VecDeque<i64>; 3],
}

/// Ids fetched from a sequence at once; at least a batch's rows, so that a full batch handed to
/// the writing thread leaves enough for the next one (see `PgStore::top_up_ids`).
const ID_BLOCK: i64 = super::pending::FLUSH_ROWS as i64;

/// The client with the statements prepared on it: both belong to the connection, and travel
/// with it to the thread that writes a batch.
struct Conn {
    client: Client,
    shown: String,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// A prepared statement, prepared once per connection.
    fn stmt(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(pg_err(&self.shown))?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn exec(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let s = self.stmt(sql)?;
        self.client.execute(&s, params).map_err(pg_err(&self.shown))
    }

    fn query(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        self.client.query(&s, params).map_err(pg_err(&self.shown))
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let s = self.stmt(sql)?;
        self.client
            .query_opt(&s, params)
            .map_err(pg_err(&self.shown))
    }
}

/// Starts `COPY … FROM STDIN (FORMAT binary)` (`sql`) of rows whose columns have `types`.
fn binary_copy<'a>(
    client: &'a mut Client,
    e: &impl Fn(postgres::Error) -> StoreError,
    sql: &str,
    types: &[Type],
) -> Result<BinaryCopyInWriter<'a>> {
    let sink = client.copy_in(sql).map_err(e)?;
    Ok(BinaryCopyInWriter::new(sink, types))
}

/// A time as the `timestamptz` the client library sends: chrono's range is narrower than
/// `Micros`'s, and PostgreSQL's narrower still (it refuses the rest).
fn pg_time(t: Micros) -> Result<DateTime<Utc>> {
    t.time()
        .ok_or_else(|| StoreError::Postgres(format!("time out of range: {t}")))
}

fn micros_at(r: &postgres::Row, i: usize) -> Micros {
    Micros::of(r.get::<_, DateTime<Utc>>(i))
}

fn opt_micros_at(r: &postgres::Row, i: usize) -> Option<Micros> {
    r.get::<_, Option<DateTime<Utc>>>(i).map(Micros::of)
}

/// The server's own message where there is one ("db error" alone tells the admin nothing), else
/// the client error with its cause (connection refused, …).
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(": {detail}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn pg_err(shown: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Postgres(format!("{shown}: {}", describe(&e)))
}

impl PgStore {
    /// Connects to `url` (with `password` when the URL has none) and migrates the schema.
    pub fn connect(url: &str, password: Option<&str>) -> Result<PgStore> {
        let mut store = PgStore::connect_only(url, password)?;
        store.migrate()?;
        Ok(store)
    }

    fn connect_only(url: &str, password: Option<&str>) -> Result<PgStore> {
        let shown = super::redact_url(url);
        let mut config: postgres::Config = url.parse().map_err(|e| {
            StoreError::Postgres(format!("{shown}: not a valid PostgreSQL URL: {e}"))
        })?;
        if config.get_password().is_none()
            && let Some(p) = password
        {
            config.password(p);
        }
        if config.get_application_name().is_none() {
            config.application_name("sftpd-report");
        }
        let client = config.connect(NoTls).map_err(pg_err(&shown))?;
        let store = PgStore {
            link: Link::new(Conn {
                client,
                shown: shown.clone(),
                statements: HashMap::new(),
            }),
            shown,
            locked: false,
            ids: Default::default(),
        };
        Ok(store)
    }

    /// Connects for reports (see [`super::open_for_reading`]): the schema is only read, so a
    /// role with SELECT alone runs every report; an older schema is upgraded where the role may.
    pub(crate) fn connect_for_reading(url: &str, password: Option<&str>) -> Result<PgStore> {
        let mut store = PgStore::connect_only(url, password)?;
        let shown = store.shown.clone();
        let e = pg_err(&shown);
        let client = &mut store.link.get()?.client;
        // `to_regclass`: no error (and no aborted transaction) where the table is missing.
        let found: i64 = match client
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .map_err(&e)?
            .get(0)
        {
            true => client
                .query_opt("SELECT version FROM schema_version", &[])
                .map_err(&e)?
                .map_or(0, |r| r.get(0)),
            false => 0,
        };
        if found < super::SCHEMA_VERSION {
            store.migrate().map_err(|e| StoreError::TooOld {
                path: shown.clone(),
                found,
                known: super::SCHEMA_VERSION,
                cause: e.to_string().replace(&format!("{shown}: "), ""),
            })?;
        } else if found > super::SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: shown.clone(),
                found,
                known: super::SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        pg_err(&self.shown)
    }

    fn migrate(&mut self) -> Result<()> {
        let shown = self.shown.clone();
        let e = pg_err(&shown);
        let mut tx = self.link.get()?.client.transaction().map_err(&e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(&e)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(&e)?;
        let current: i64 = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(&e)?
            .map_or(0, |r| r.get(0));
        if current > super::SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: shown.clone(),
                found: current,
                known: super::SCHEMA_VERSION,
            });
        }
        for sql in &MIGRATIONS[current as usize..] {
            tx.batch_execute(sql).map_err(&e)?;
        }
        if current == 0 {
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&super::SCHEMA_VERSION],
            )
            .map_err(&e)?;
        } else if current < super::SCHEMA_VERSION {
            tx.execute(
                "UPDATE schema_version SET version = $1",
                &[&super::SCHEMA_VERSION],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        if (1..5).contains(&current) {
            // Rollups older than version 5 were not kept by deltas, nor always exact.
            super::in_transaction(self, |s| s.refresh_rollups(true))?;
        }
        Ok(())
    }

    /// Sends the unclaimed sshd lines.
    fn write_auth(&mut self, held: &mut WriteBehind) -> Result<()> {
        for a in std::mem::take(&mut held.auth) {
            self.exec(
                "INSERT INTO pending_auth (host, \"user\", client_ip, client_port, method, key, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &text(&a.host),
                    &text(&a.user),
                    &text(&a.client_ip),
                    &a.client_port,
                    &text(&a.method),
                    &opt_text(a.key.as_deref()),
                    &pg_time(a.at)?,
                ],
            )?;
        }
        Ok(())
    }

    /// Another block of ids of `table`'s sequence.
    fn fetch_ids(&mut self, table: IdTable) -> Result<()> {
        let sql = [
            "SELECT nextval('sessions_id_seq') FROM generate_series(1, $1::bigint)",
            "SELECT nextval('transfers_id_seq') FROM generate_series(1, $1::bigint)",
            "SELECT nextval('operations_id_seq') FROM generate_series(1, $1::bigint)",
        ][table.index()];
        let rows = self.query(sql, &[&ID_BLOCK])?;
        self.ids[table.index()].extend(rows.iter().map(|r| r.get::<_, i64>(0)));
        Ok(())
    }

    /// Ids for a whole batch of each table, fetched before a batch goes to the writing thread:
    /// filling the next batch then never waits for the connection to come back.
    fn top_up_ids(&mut self) -> Result<()> {
        for table in [IdTable::Sessions, IdTable::Transfers, IdTable::Operations] {
            if self.ids[table.index()].len() < super::pending::FLUSH_ROWS {
                self.fetch_ids(table)?;
            }
        }
        Ok(())
    }

    /// The (hour, host) cells the triggers noted for the next commit to compute afresh.
    fn dirty_cells(&mut self) -> Result<Vec<(Micros, String)>> {
        let rows = self.query("SELECT hour, host FROM usage_dirty", &[])?;
        Ok(rows.iter().map(|r| (micros_at(r, 0), r.get(1))).collect())
    }

    /// The connection, once a batch written in the background is in; that batch's error if it
    /// failed.
    fn conn(&mut self) -> Result<&mut Conn> {
        self.link.get()
    }

    fn exec(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.conn()?.exec(sql, params)
    }

    fn query(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.conn()?.query(sql, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        self.conn()?.query_opt(sql, params)
    }
}

impl WritesBatches for Conn {
    fn write_rows(&mut self, batch: &Batch) -> Result<()> {
        // The rollup triggers, which would note every row's cell for a recompute, skip what
        // this transaction writes while the setting is on.
        self.exec(
            "SELECT set_config('sftpd_wrapper.adding_rows', 'on', true)",
            &[],
        )?;
        copy_rows(batch, self)?;
        apply_updates(self, &batch.row_updates)?;
        if !batch.session_patches.is_empty() {
            update_sessions(self, &batch.session_patches)?;
        }
        self.exec(
            "SELECT set_config('sftpd_wrapper.adding_rows', 'off', true)",
            &[],
        )?;
        Ok(())
    }

    fn facts(&mut self, touched: &Touched) -> Result<Vec<Fact>> {
        let mut found = Vec::new();
        if !touched.sessions.is_empty() {
            let rows = self.query(
                "SELECT id, started_at, host, COALESCE(\"user\", ''), end_reason, duration_ms
                   FROM sessions WHERE id = ANY($1)",
                &[&touched.sessions],
            )?;
            found.extend(rows.iter().filter_map(|r| {
                let refused = r.get::<_, &str>(4) == EndReason::Refused.as_str();
                Some(Fact {
                    transfer: false,
                    id: r.get(0),
                    at: micros_at(r, 1),
                    host: r.get(2),
                    user: r.get(3),
                    counted: Counted::session(refused, r.get(5))?,
                })
            }));
        }
        if !(touched.transfers.is_empty()
            && touched.transfers_of.is_empty()
            && touched.open_of.is_empty())
        {
            let rows = self.query(
                "SELECT t.id, t.opened_at, s.host, COALESCE(s.\"user\", ''), t.counts_as,
                        t.complete, t.bytes_written, t.bytes_read, t.counters_cut
                   FROM transfers t JOIN sessions s ON s.id = t.session_id
                  WHERE t.id = ANY($1) OR t.session_id = ANY($2)
                     OR (t.closed_at IS NULL AND t.session_id = ANY($3))",
                &[&touched.transfers, &touched.transfers_of, &touched.open_of],
            )?;
            found.extend(rows.iter().map(|r| Fact {
                transfer: true,
                id: r.get(0),
                at: micros_at(r, 1),
                host: r.get(2),
                user: r.get(3),
                counted: Counted::transfer(r.get(4), r.get(5), r.get(6), r.get(7), r.get(8)),
            }));
        }
        Ok(found)
    }

    fn sessions(&mut self, ids: &[i64]) -> Result<Vec<(i64, String, String)>> {
        let rows = self.query(
            "SELECT id, host, COALESCE(\"user\", '') FROM sessions WHERE id = ANY($1)",
            &[&ids],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn add_cells(&mut self, cells: &rollup::Cells<'_>) -> Result<()> {
        // One statement however many cells: the columns travel as arrays.
        static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let sums = (4..=3 + rollup::ROLLUP_SUMS.len() + 1).map(|i| format!(", ${i}::bigint[]"));
            rollup::add_to_cells_sql(&format!(
                "SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[]{})",
                sums.collect::<String>()
            ))
        });
        if cells.is_empty() {
            return Ok(());
        }
        let (mut hours, mut hosts, mut users) = (Vec::new(), Vec::new(), Vec::new());
        let mut sums = vec![Vec::with_capacity(cells.len()); rollup::ROLLUP_SUMS.len() + 1];
        for ((hour, host, user), cell) in cells {
            hours.push(pg_time(Micros(*hour))?);
            hosts.push(host.as_ref());
            users.push(user.as_ref());
            for (column, v) in sums
                .iter_mut()
                .zip(cell.sums.iter().chain([&cell.contributors]))
            {
                column.push(*v);
            }
        }
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&hours, &hosts, &users];
        params.extend(sums.iter().map(|c| c as &(dyn ToSql + Sync)));
        self.exec(&UPSERT, &params)?;
        Ok(())
    }
}

/// One column of `rows`, to travel as an array.
fn column<'a, R, T>(rows: &'a [R], value: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// Writes the merged session updates of a batch with one statement: the columns travel as
/// arrays (`unnest`), one round trip however many sessions changed. (Here and in the other
/// updates through `unnest`, `id = ANY` beside the join lets the planner read the rows by
/// key: it cannot see into `unnest`, and hashed the whole table for each batch.)
fn update_sessions(conn: &mut Conn, patches: &[(i64, SessionPatch)]) -> Result<()> {
    let ended_at = (patches.iter())
        .map(|(_, p)| p.end.as_ref().map(|e| pg_time(e.ended_at)).transpose())
        .collect::<Result<Vec<_>>>()?;
    let last = |p: &SessionPatch| LastOp::columns(p.last_op.flatten());
    conn.exec(
        "UPDATE sessions AS s SET
            sftp_pid = COALESCE(p.sftp_pid, s.sftp_pid),
            \"user\" = COALESCE(s.\"user\", p.fill_user),
            client_ip = COALESCE(s.client_ip, p.fill_ip),
            auth_method = CASE WHEN p.auth_set THEN p.method ELSE s.auth_method END,
            auth_key = CASE WHEN p.auth_set THEN p.key ELSE s.auth_key END,
            sftp_closed = s.sftp_closed OR p.sftp_closed,
            ended_at = CASE WHEN p.end_set THEN p.ended_at ELSE s.ended_at END,
            duration_ms = CASE WHEN p.end_set THEN p.duration_ms ELSE s.duration_ms END,
            exit_status = CASE WHEN p.end_set THEN p.exit_status ELSE s.exit_status END,
            signal = CASE WHEN p.end_set THEN p.signal ELSE s.signal END,
            end_reason = COALESCE(p.end_reason, s.end_reason),
            last_op_kind = CASE WHEN p.last_set THEN p.last_kind ELSE s.last_op_kind END,
            last_op_id = CASE WHEN p.last_set THEN p.last_id ELSE s.last_op_id END
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::boolean[],
                       $6::text[], $7::text[], $8::boolean[], $9::boolean[], $10::timestamptz[],
                       $11::bigint[], $12::bigint[], $13::text[], $14::text[], $15::boolean[],
                       $16::text[], $17::bigint[])
                AS p (id, sftp_pid, fill_user, fill_ip, auth_set, method, key, sftp_closed,
                      end_set, ended_at, duration_ms, exit_status, signal, end_reason,
                      last_set, last_kind, last_id)
          WHERE s.id = p.id AND s.id = ANY($1)",
        &[
            &column(patches, |(id, _)| *id),
            &column(patches, |(_, p)| p.sftp_pid),
            &column(patches, |(_, p)| opt_text(p.fill_user.as_deref())),
            &column(patches, |(_, p)| opt_text(p.fill_ip.as_deref())),
            &column(patches, |(_, p)| p.auth.is_some()),
            &column(patches, |(_, p)| p.auth.as_ref().map(|(m, _)| text(m))),
            &column(patches, |(_, p)| {
                p.auth.as_ref().and_then(|(_, k)| opt_text(k.as_deref()))
            }),
            &column(patches, |(_, p)| p.sftp_closed),
            &column(patches, |(_, p)| p.end.is_some()),
            &ended_at,
            &column(patches, |(_, p)| p.end.as_ref().and_then(|e| e.duration_ms)),
            &column(patches, |(_, p)| p.end.as_ref().and_then(|e| e.exit_status)),
            &column(patches, |(_, p)| {
                opt_text(p.end.as_ref().and_then(|e| e.signal.as_deref()))
            }),
            &column(patches, |(_, p)| p.end_reason.map(|r| r.as_str())),
            &column(patches, |(_, p)| p.last_op.is_some()),
            &column(patches, |(_, p)| last(p).0),
            &column(patches, |(_, p)| last(p).1),
        ],
    )?;
    Ok(())
}

/// The rows, sent with binary COPY: no SQL text to parse or plan, no parameter limit,
/// values in PostgreSQL's own binary form.
fn copy_rows(batch: &Batch, conn: &mut Conn) -> Result<()> {
    if !batch.sessions.is_empty() {
        copy_sessions(&batch.sessions, conn)?;
    }
    if !batch.transfers.is_empty() {
        copy_transfers(&batch.transfers, conn)?;
    }
    if !batch.ops.is_empty() {
        copy_operations(&batch.ops, conn)?;
    }
    Ok(())
}

fn copy_sessions(sessions: &[SessionRow], conn: &mut Conn) -> Result<()> {
    let e = pg_err(&conn.shown);
    let mut writer = binary_copy(
        &mut conn.client,
        &e,
        "COPY sessions (id, host, \"user\", client_ip, client_port, local_ip, local_port,
                                started_at, ended_at, duration_ms, exit_status, signal,
                                end_reason, source, sid, pid, sftp_pid, auth_method, auth_key,
                                sftp_closed, last_op_kind, last_op_id, origin_pid, origin_uid,
                                origin_command)
                 FROM STDIN (FORMAT binary)",
        &[
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::INT8,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
        ],
    )?;
    for s in sessions {
        let started = pg_time(s.record.started_at)?;
        let ended = s.record.ended_at.map(pg_time).transpose()?;
        writer
            .write(&[
                &s.record.id,
                &text(&s.record.host),
                &opt_text(s.record.user.as_deref()),
                &opt_text(s.record.client_ip.as_deref()),
                &s.record.client_port,
                &opt_text(s.record.local_ip.as_deref()),
                &s.record.local_port,
                &started,
                &ended,
                &s.record.duration_ms,
                &s.record.exit_status,
                &opt_text(s.record.signal.as_deref()),
                &s.record.end_reason,
                &s.record.source,
                &opt_text(s.record.sid.as_deref()),
                &s.record.pid,
                &s.record.sftp_pid,
                &opt_text(s.record.auth_method.as_deref()),
                &opt_text(s.record.auth_key.as_deref()),
                &s.record.sftp_closed,
                &s.last_op_kind,
                &s.last_op_id,
                &s.record.origin_pid,
                &s.record.origin_uid,
                &opt_text(s.record.origin_command.as_deref()),
            ])
            .map_err(&e)?;
    }
    writer.finish().map_err(&e)?;
    Ok(())
}

fn copy_transfers(transfers: &[PendingTransfer], conn: &mut Conn) -> Result<()> {
    let e = pg_err(&conn.shown);
    let mut writer = binary_copy(
        &mut conn.client,
        &e,
        "COPY transfers (id, session_id, path, path_text, direction, open_flags, mode,
                                 opened_at, closed_at, bytes_read, bytes_written, forced,
                                 failed, complete, counts_as, counters_cut, renamed_to, reached)
                 FROM STDIN (FORMAT binary)",
        &[
            Type::INT8,
            Type::INT8,
            Type::BYTEA,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::INT8,
            Type::INT8,
            Type::BOOL,
            Type::BOOL,
            Type::BOOL,
            Type::TEXT,
            Type::BOOL,
            Type::BYTEA,
            Type::BYTEA,
        ],
    )?;
    for t in transfers {
        let shown = path_text(&t.row.path);
        let opened = pg_time(t.row.opened_at)?;
        let closed = t.row.closed_at.map(pg_time).transpose()?;
        writer
            .write(&[
                &t.id,
                &t.row.session_id,
                &t.row.path,
                &shown,
                &t.row.direction,
                &text(&t.row.open_flags),
                &opt_text(t.row.mode.as_deref()),
                &opened,
                &closed,
                &t.row.bytes_read,
                &t.row.bytes_written,
                &t.row.forced,
                &t.row.failed,
                &t.row.complete,
                &t.row.counts_as,
                &t.row.counters_cut,
                &t.row.renamed_to,
                &t.row.reached,
            ])
            .map_err(&e)?;
    }
    writer.finish().map_err(&e)?;
    Ok(())
}

fn copy_operations(ops: &[PendingOp], conn: &mut Conn) -> Result<()> {
    let e = pg_err(&conn.shown);
    let mut writer = binary_copy(
        &mut conn.client,
        &e,
        "COPY operations (id, session_id, host, \"user\", at, kind, path, path_text,
                                  target, target_text, detail, failed, status)
                 FROM STDIN (FORMAT binary)",
        &[
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TEXT,
            Type::BYTEA,
            Type::TEXT,
            Type::BYTEA,
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
            Type::TEXT,
        ],
    )?;
    for o in ops {
        let (path_shown, target_shown) = (
            o.row.path.as_deref().map(path_text),
            o.row.target.as_deref().map(path_text),
        );
        let at = pg_time(o.row.at)?;
        writer
            .write(&[
                &o.id,
                &o.row.session_id,
                &text(&o.row.host),
                &opt_text(o.row.user.as_deref()),
                &at,
                &o.row.kind,
                &o.row.path,
                &path_shown,
                &o.row.target,
                &target_shown,
                &opt_text(o.row.detail.as_deref()),
                &o.row.failed,
                &opt_text(o.row.status.as_deref()),
            ])
            .map_err(&e)?;
    }
    writer.finish().map_err(&e)?;
    Ok(())
}

/// Applies held changes to rows that earlier batches wrote, with the result of applying them one
/// by one: each run of changes of one kind is one statement (the values travel as arrays through
/// `unnest`), and a run ends where the kind changes or a row comes again.
fn apply_updates(conn: &mut Conn, updates: &[RowUpdate]) -> Result<()> {
    let row_of = |u: &RowUpdate| match u {
        RowUpdate::Close(TransferClose { id, .. })
        | RowUpdate::Failed(id)
        | RowUpdate::Deleted(id)
        | RowUpdate::Renamed { id, .. } => *id,
        RowUpdate::Abandoned { session_id } => *session_id,
        RowUpdate::OperationFailed { id, .. } => *id,
    };
    let mut rest = updates;
    while let Some(first) = rest.first() {
        let kind = std::mem::discriminant(first);
        let mut rows = std::collections::HashSet::new();
        let run = rest
            .iter()
            .take_while(|u| std::mem::discriminant(*u) == kind && rows.insert(row_of(u)))
            .count();
        let (now, later) = rest.split_at(run);
        let ids = || now.iter().map(row_of).collect::<Vec<i64>>();
        match first {
            RowUpdate::Close(_) => close_transfers(conn, now)?,
            RowUpdate::Failed(_) => {
                conn.exec(
                    "UPDATE transfers SET failed = true, complete = false WHERE id = ANY($1)",
                    &[&ids()],
                )?;
            }
            RowUpdate::Deleted(_) => {
                conn.exec("DELETE FROM transfers WHERE id = ANY($1)", &[&ids()])?;
            }
            RowUpdate::Renamed { .. } => {
                let names: Vec<Option<&[u8]>> = now
                    .iter()
                    .filter_map(|u| match u {
                        RowUpdate::Renamed { to, .. } => Some(to.as_deref()),
                        _ => None,
                    })
                    .collect();
                conn.exec(
                    "UPDATE transfers AS t SET renamed_to = u.renamed_to
                       FROM unnest($1::bigint[], $2::bytea[]) AS u (id, renamed_to)
                      WHERE t.id = u.id AND t.id = ANY($1)",
                    &[&ids(), &names],
                )?;
            }
            RowUpdate::Abandoned { .. } => {
                // Counted as what the open asked for (classify_cut_close), bytes unknown.
                conn.exec(
                    "UPDATE transfers
                        SET forced = true, complete = false, counters_cut = true,
                            counts_as = CASE direction WHEN 'upload' THEN 'upload'
                                                       WHEN 'both' THEN 'upload'
                                                       WHEN 'download' THEN 'download' END
                      WHERE session_id = ANY($1) AND closed_at IS NULL",
                    &[&ids()],
                )?;
            }
            RowUpdate::OperationFailed { .. } => {
                let statuses: Vec<std::borrow::Cow<str>> = now
                    .iter()
                    .filter_map(|u| match u {
                        RowUpdate::OperationFailed { status, .. } => Some(text(status)),
                        _ => None,
                    })
                    .collect();
                conn.exec(
                    "UPDATE operations AS o SET failed = true, status = u.status
                       FROM unnest($1::bigint[], $2::text[]) AS u (id, status)
                      WHERE o.id = u.id AND o.id = ANY($1)",
                    &[&ids(), &statuses],
                )?;
            }
        }
        rest = later;
    }
    Ok(())
}

/// The closes of files whose rows earlier batches wrote open: one statement.
fn close_transfers(conn: &mut Conn, closes: &[RowUpdate]) -> Result<()> {
    let closes: Vec<&TransferClose> = (closes.iter())
        .filter_map(|u| match u {
            RowUpdate::Close(c) => Some(c),
            _ => None,
        })
        .collect();
    let closed_at = (closes.iter())
        .map(|c| pg_time(c.closed_at))
        .collect::<Result<Vec<_>>>()?;
    conn.exec(
        "UPDATE transfers AS t
            SET closed_at = u.closed_at, bytes_read = u.bytes_read,
                bytes_written = u.bytes_written, forced = u.forced, complete = u.complete,
                direction = u.direction, counts_as = u.counts_as, counters_cut = u.counters_cut
           FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[],
                       $5::boolean[], $6::boolean[], $7::text[], $8::text[], $9::boolean[])
                AS u (id, closed_at, bytes_read, bytes_written, forced, complete, direction,
                      counts_as, counters_cut)
          WHERE t.id = u.id AND t.id = ANY($1)",
        &[
            &column(&closes, |c| c.id),
            &closed_at,
            &column(&closes, |c| stored_counters(c.counters).0),
            &column(&closes, |c| stored_counters(c.counters).1),
            &column(&closes, |c| c.forced),
            &column(&closes, |c| c.verdict.complete),
            &column(&closes, |c| c.verdict.direction.as_str()),
            &column(&closes, |c| c.verdict.counts_as.map(CountsAs::as_str)),
            &column(&closes, |c| c.counters.is_none()),
        ],
    )?;
    Ok(())
}

impl Database for PgStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn schema_version(&mut self) -> Result<i64> {
        Ok(self
            .query_opt("SELECT version FROM schema_version", &[])?
            .map_or(0, |r| r.get(0)))
    }

    fn lock_for_ingest(&mut self, wait: bool) -> Result<()> {
        if self.locked {
            return Ok(());
        }
        let got: bool = self
            .conn()?
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&INGEST_LOCK])
            .map_err(self.err())?
            .get(0);
        if !got {
            if !wait {
                return Err(StoreError::Busy);
            }
            self.conn()?
                .client
                .execute("SELECT pg_advisory_lock($1)", &[&INGEST_LOCK])
                .map_err(self.err())?;
        }
        self.locked = true;
        Ok(())
    }

    fn add_ingest_counts(&mut self, counts: &[(&str, u64)], at: Micros) -> Result<()> {
        let at = pg_time(at)?;
        for (name, n) in counts {
            self.exec(
                "INSERT INTO ingest_counters (name, value, updated_at)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE
                    SET value = ingest_counters.value + excluded.value,
                        updated_at = excluded.updated_at",
                &[name, &(*n as i64), &at],
            )?;
        }
        Ok(())
    }

    fn unlock_ingest(&mut self) -> Result<()> {
        if self.locked {
            self.conn()?
                .client
                .execute("SELECT pg_advisory_unlock($1)", &[&INGEST_LOCK])
                .map_err(self.err())?;
            self.locked = false;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        self.conn()?
            .client
            .batch_execute("BEGIN")
            .map_err(self.err())
    }

    fn commit(&mut self) -> Result<()> {
        self.refresh_rollups(false)?;
        self.conn()?
            .client
            .batch_execute("COMMIT")
            .map_err(self.err())
    }

    fn refresh_rollups(&mut self, all: bool) -> Result<()> {
        let keys = if all { None } else { Some(self.dirty_cells()?) };
        if keys.as_ref().is_none_or(|k| !k.is_empty()) {
            if !all {
                // Each dirty cell's rows are few, read by index; compiling the query (JIT, for
                // the planner's high guesses) costs more than it runs. (SET LOCAL ends with the
                // transaction.)
                self.exec("SET LOCAL jit = off", &[])?;
            }
            let cells = rollup::recompute(self, keys.as_deref())?;
            self.exec(
                if all {
                    "DELETE FROM usage_hourly"
                } else {
                    "DELETE FROM usage_hourly WHERE (hour, host) IN (SELECT hour, host FROM usage_dirty)"
                },
                &[],
            )?;
            self.conn()?.add_cells(&cells)?;
            self.exec("DELETE FROM usage_dirty", &[])?;
        }
        self.exec(rollup::DROP_EMPTY_CELLS, &[])?;
        Ok(())
    }

    fn rollup_differences(&mut self) -> Result<u64> {
        let pending = self.dirty_cells()?;
        rollup::differences(self, &pending)
    }

    fn rollback(&mut self) -> Result<()> {
        // A batch that failed in the background is undone with the rest of the transaction.
        let _ = self.link.settle();
        self.conn()?
            .client
            .batch_execute("ROLLBACK")
            .map_err(self.err())
    }

    fn checkpoints(&mut self, first_line_hash: &str) -> Result<Vec<Checkpoint>> {
        let rows = self.query(
            "SELECT first_line_hash, prefix_sha256, path, inode, byte_offset, lines FROM checkpoints
              WHERE first_line_hash = $1 ORDER BY byte_offset",
            &[&first_line_hash],
        )?;
        Ok(rows.iter().map(checkpoint_from_row).collect())
    }

    fn put_checkpoint(
        &mut self,
        replaces: Option<&Checkpoint>,
        c: &Checkpoint,
        now: Micros,
    ) -> Result<()> {
        if let Some(old) = replaces {
            self.exec(
                "DELETE FROM checkpoints WHERE first_line_hash = $1 AND prefix_sha256 = $2",
                &[&old.first_line_hash, &old.prefix_sha256],
            )?;
        }
        self.exec(
            "INSERT INTO checkpoints (first_line_hash, prefix_sha256, path, inode, byte_offset, lines, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (first_line_hash, prefix_sha256) DO UPDATE
                SET path = excluded.path, inode = excluded.inode, byte_offset = excluded.byte_offset,
                    lines = excluded.lines, updated_at = excluded.updated_at",
            &[&c.first_line_hash, &c.prefix_sha256, &c.path, &c.inode, &c.byte_offset, &c.lines, &pg_time(now)?],
        )?;
        Ok(())
    }
}

impl IngestStore for PgStore {
    fn write(&mut self, held: &mut WriteBehind, background: bool) -> Result<()> {
        // The rows with binary COPY and the changes to rows already written; the sshd lines no
        // session claimed only where everything is written.
        if background {
            self.top_up_ids()?;
        }
        self.link.flush(held, background)?;
        if !background {
            self.write_auth(held)?;
        }
        Ok(())
    }

    fn latest_start(&mut self, host: &str) -> Result<Option<Micros>> {
        let row = self.query_opt(
            concat!(
                "SELECT MAX(started_at) FROM sessions WHERE ",
                super::same_host_sql!("$1::text")
            ),
            &[&text(super::short_host(host))],
        )?;
        Ok(row.and_then(|r| opt_micros_at(&r, 0)))
    }

    fn find_session(&mut self, host: &str, pid: i64, started_at: Micros) -> Result<Option<i64>> {
        let row = self.query_opt(
            "SELECT id FROM sessions WHERE host = $1 AND pid = $2 AND started_at = $3",
            &[&text(host), &pid, &pg_time(started_at)?],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn find_session_by_sid(&mut self, host: &str, sid: &str) -> Result<Option<(i64, bool)>> {
        let row = self.query_opt(
            concat!(
                "SELECT id, (origin_pid IS NOT NULL OR origin_uid IS NOT NULL OR origin_command IS NOT NULL) FROM sessions WHERE sid = $2::text AND ",
                super::same_host_sql!("$1::text"),
                " ORDER BY id LIMIT 1"
            ),
            &[&text(super::short_host(host)), &text(sid)],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn reserve_id(&mut self, table: IdTable) -> Result<i64> {
        if self.ids[table.index()].is_empty() {
            self.fetch_ids(table)?;
        }
        self.ids[table.index()]
            .pop_front()
            .ok_or_else(|| StoreError::Postgres("the id sequence returned nothing".into()))
    }

    fn session_sftp_pid(&mut self, id: i64) -> Result<Option<i64>> {
        let row = self.query_opt("SELECT sftp_pid FROM sessions WHERE id = $1", &[&id])?;
        Ok(row.and_then(|r| r.get(0)))
    }

    fn open_sessions(&mut self) -> Result<Vec<OpenSession>> {
        let rows = self.query(
            "SELECT id, host, sid, sftp_pid, sftp_closed, started_at, source, last_op_kind, last_op_id, \"user\",
                    EXISTS (SELECT 1 FROM transfers t WHERE t.session_id = sessions.id AND t.mode IS NULL),
                    (origin_pid IS NOT NULL OR origin_uid IS NOT NULL OR origin_command IS NOT NULL)
               FROM sessions WHERE ended_at IS NULL AND end_reason = 'missing_end' ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| OpenSession {
                id: r.get(0),
                host: r.get(1),
                sid: r.get(2),
                sftp_pid: r.get(3),
                sftp_closed: r.get(4),
                started_at: micros_at(r, 5),
                source: r.get(6),
                last_op: LastOp::from_columns(r.get(7), r.get(8)),
                user: r.get(9),
                wire: r.get(10),
                journal: r.get(11),
            })
            .collect())
    }

    fn open_name_operations(&mut self) -> Result<Vec<NameOperation>> {
        let rows = self.query(
            "SELECT o.session_id, o.id, o.kind, o.path, o.target,
                    EXISTS (SELECT 1 FROM transfers t
                             WHERE t.session_id = o.session_id AND t.path = o.path
                               AND t.renamed_to = o.target AND t.counts_as = 'upload'),
                    CASE WHEN o.failed THEN o.status END
               FROM sessions s JOIN operations o ON o.session_id = s.id
              WHERE s.ended_at IS NULL AND s.end_reason = 'missing_end'
                AND o.kind IN ('symlink', 'hardlink', 'rename', 'posix-rename', 'remove', 'rmdir')
              ORDER BY o.id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| NameOperation {
                session_id: r.get(0),
                id: r.get(1),
                kind: r.get(2),
                path: r.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
                target: r.get(4),
                renamed_upload: r.get(5),
                status: r.get(6),
            })
            .collect())
    }

    fn open_transfers(&mut self) -> Result<Vec<OpenTransfer>> {
        let rows = self.query(
            "SELECT id, session_id, path, direction, failed FROM transfers WHERE closed_at IS NULL AND NOT complete AND NOT forced ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| OpenTransfer {
                id: r.get(0),
                session_id: r.get(1),
                path: r.get(2),
                direction: r.get(3),
                failed: r.get(4),
            })
            .collect())
    }

    fn set_session_origin(&mut self, id: i64, origin: &SessionOrigin) -> Result<()> {
        self.exec(
            "UPDATE sessions SET origin_pid = $2, origin_uid = $3, origin_command = $4
              WHERE id = $1 AND origin_pid IS NULL AND origin_uid IS NULL AND origin_command IS NULL",
            &[&id, &origin.pid, &origin.uid, &opt_text(origin.command.as_deref())],
        )?;
        Ok(())
    }

    fn latest_time(&mut self, host: &str) -> Result<Option<Micros>> {
        let row = self.query_opt(
            "SELECT GREATEST(MAX(started_at), MAX(ended_at)) FROM sessions WHERE host = $1",
            &[&text(host)],
        )?;
        Ok(row.and_then(|r| opt_micros_at(&r, 0)))
    }

    fn forget_host(&mut self, host: &str) -> Result<()> {
        for sql in [
            "DELETE FROM operations WHERE host = $1",
            "DELETE FROM transfers WHERE session_id IN (SELECT id FROM sessions WHERE host = $1)",
            "DELETE FROM sessions WHERE host = $1",
            "DELETE FROM pending_auth WHERE host = $1",
        ] {
            self.exec(sql, &[&text(host)])?;
        }
        Ok(())
    }

    fn forget_checkpoints(&mut self, first_line_hash: &str) -> Result<()> {
        self.exec(
            "DELETE FROM checkpoints WHERE first_line_hash = $1",
            &[&first_line_hash],
        )?;
        Ok(())
    }

    fn journal_cursor(&mut self, source: &str) -> Result<Option<String>> {
        let row = self.query_opt(
            "SELECT cursor FROM journal_cursors WHERE source = $1",
            &[&source],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn put_journal_cursor(&mut self, source: &str, cursor: &str, now: Micros) -> Result<()> {
        self.exec(
            "INSERT INTO journal_cursors (source, cursor, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            &[&source, &cursor, &pg_time(now)?],
        )?;
        Ok(())
    }

    fn merge_session(&mut self, from: i64, into: i64) -> Result<()> {
        self.exec(
            "UPDATE transfers SET session_id = $2 WHERE session_id = $1",
            &[&from, &into],
        )?;
        self.exec(
            "UPDATE operations SET session_id = $2 WHERE session_id = $1",
            &[&from, &into],
        )?;
        self.exec(
            "UPDATE sessions SET sftp_closed = sftp_closed OR (SELECT sftp_closed FROM sessions WHERE id = $1) WHERE id = $2",
            &[&from, &into],
        )?;
        self.exec("DELETE FROM sessions WHERE id = $1", &[&from])?;
        Ok(())
    }

    fn discard_session(&mut self, id: i64) -> Result<()> {
        for sql in [
            "DELETE FROM transfers WHERE session_id = $1",
            "DELETE FROM operations WHERE session_id = $1",
            "DELETE FROM sessions WHERE id = $1",
        ] {
            self.exec(sql, &[&id])?;
        }
        Ok(())
    }

    fn forget_log_transfers(&mut self, session_id: i64) -> Result<u64> {
        // Rare: written first, then deleted, as the triggers keep the rollups.
        self.exec(
            "DELETE FROM transfers WHERE session_id = $1 AND mode IS NOT NULL",
            &[&session_id],
        )
    }

    fn take_pending_auth(
        &mut self,
        host: &str,
        user: &str,
        client_ip: &str,
        client_port: Option<i64>,
    ) -> Result<Option<(String, Option<String>)>> {
        let row = self.query_opt(
            "DELETE FROM pending_auth WHERE id = (
                 SELECT id FROM pending_auth
                  WHERE host = $1 AND \"user\" = $2 AND client_ip = $3 AND ($4::bigint IS NULL OR client_port = $4)
                  ORDER BY at DESC, id DESC LIMIT 1)
             RETURNING method, key",
            &[&text(host), &text(user), &text(client_ip), &client_port],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn prune_pending_auth(&mut self, before: Micros) -> Result<()> {
        self.exec(
            "DELETE FROM pending_auth WHERE at < $1",
            &[&pg_time(before)?],
        )?;
        Ok(())
    }
}

impl ReportStore for PgStore {
    fn rollups_pending(&mut self) -> Result<bool> {
        Ok(self
            .query_opt("SELECT EXISTS (SELECT 1 FROM usage_dirty)", &[])?
            .is_some_and(|r| r.get(0)))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn stream_rows(
        &mut self,
        sql: &str,
        columns: &[(&'static str, Kind)],
        filter: &Filter,
        sink: &mut RowSink<'_>,
    ) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let (since, until) = (filter.since.map(|t| t.0), filter.until.map(|t| t.0));
        let params: [&(dyn ToSql + Sync); 4] = [&filter.user, &filter.host, &since, &until];
        let conn = self.link.get()?;
        let e = pg_err(&conn.shown);
        // A portal: rows come as they are read, not all at once.
        let mut rows = conn.client.query_raw(sql, params).map_err(&e)?;
        while let Some(row) = rows.next().map_err(&e)? {
            let mut cells = Vec::with_capacity(columns.len());
            for (i, col) in row.columns().iter().enumerate() {
                let v = match *col.type_() {
                    Type::INT8 => row
                        .try_get::<_, Option<i64>>(i)
                        .map_err(&e)?
                        .map_or(Value::Null, |v| Value::Int(v.into())),
                    Type::INT4 => row
                        .try_get::<_, Option<i32>>(i)
                        .map_err(&e)?
                        .map_or(Value::Null, |v| Value::Int(v.into())),
                    Type::BOOL => row
                        .try_get::<_, Option<bool>>(i)
                        .map_err(&e)?
                        .map_or(Value::Null, |v| Value::Int(v.into())),
                    Type::TIMESTAMPTZ => row
                        .try_get::<_, Option<DateTime<Utc>>>(i)
                        .map_err(&e)?
                        .map_or(Value::Null, |t| Value::Time(Micros::of(t))),
                    _ => row
                        .try_get::<_, Option<String>>(i)
                        .map_err(&e)?
                        .map_or(Value::Null, Value::Text),
                };
                cells.push(v);
            }
            sink(cells)?;
        }
        Ok(())
    }
}

impl super::PruneStore for PgStore {
    fn delete_ended_before(&mut self, before_us: i64, user: Option<&str>) -> Result<super::Pruned> {
        let user = user.map(str::to_owned);
        self.exec(
            "CREATE TEMP TABLE IF NOT EXISTS prune_sessions (id BIGINT PRIMARY KEY) ON COMMIT DELETE ROWS",
            &[],
        )?;
        self.exec("DELETE FROM prune_sessions", &[])?;
        // The cut travels as microseconds: no text in the SQL, and no zone to read it in.
        self.exec(
            "INSERT INTO prune_sessions (id)
                  SELECT id FROM sessions
                   WHERE ended_at < (TIMESTAMPTZ 'epoch' + $1::bigint * INTERVAL '1 microsecond')
                     AND ($2::text IS NULL OR \"user\" = $2)",
            &[&before_us, &user],
        )?;
        let operations = self.exec(
            "DELETE FROM operations
              WHERE session_id IN (SELECT id FROM prune_sessions)
                 OR (session_id IS NULL AND at < (TIMESTAMPTZ 'epoch' + $1::bigint * INTERVAL '1 microsecond')
                     AND ($2::text IS NULL OR \"user\" = $2))",
            &[&before_us, &user],
        )?;
        let transfers = self.exec(
            "DELETE FROM transfers WHERE session_id IN (SELECT id FROM prune_sessions)",
            &[],
        )?;
        let sessions = self.exec(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM prune_sessions)",
            &[],
        )?;
        let kept_open: i64 = self
            .query(
                "SELECT COUNT(*) FROM sessions
                  WHERE ended_at IS NULL AND started_at < (TIMESTAMPTZ 'epoch' + $1::bigint * INTERVAL '1 microsecond')
                    AND ($2::text IS NULL OR \"user\" = $2)",
                &[&before_us, &user],
            )?
            .first()
            .map_or(0, |r| r.get(0));
        Ok(super::Pruned {
            sessions,
            transfers,
            operations,
            kept_open: kept_open.max(0) as u64,
        })
    }
}

impl CopyStore for PgStore {
    fn all_sessions(&mut self) -> Result<Vec<SessionRecord>> {
        let rows = self.query(
            "SELECT id, host, \"user\", client_ip, client_port, local_ip, local_port,
                    started_at, ended_at,
                    duration_ms, exit_status, signal, end_reason, source, sid, pid, sftp_pid, auth_method, auth_key,
                    sftp_closed, origin_pid, origin_uid, origin_command
               FROM sessions ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| SessionRecord {
                id: r.get(0),
                host: r.get(1),
                user: r.get(2),
                client_ip: r.get(3),
                client_port: r.get(4),
                local_ip: r.get(5),
                local_port: r.get(6),
                started_at: micros_at(r, 7),
                ended_at: opt_micros_at(r, 8),
                duration_ms: r.get(9),
                exit_status: r.get(10),
                signal: r.get(11),
                end_reason: r.get(12),
                source: r.get(13),
                sid: r.get(14),
                pid: r.get(15),
                sftp_pid: r.get(16),
                auth_method: r.get(17),
                auth_key: r.get(18),
                sftp_closed: r.get(19),
                origin_pid: r.get(20),
                origin_uid: r.get(21),
                origin_command: r.get(22),
            })
            .collect())
    }

    fn all_transfers(&mut self) -> Result<Vec<TransferRecord>> {
        let rows = self.query(
            "SELECT session_id, path, direction, open_flags, mode, bytes_read, bytes_written,
                    opened_at, closed_at,
                    forced, failed, complete, counts_as, counters_cut, renamed_to, reached
               FROM transfers ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| TransferRecord {
                session_id: r.get(0),
                path: r.get(1),
                direction: r.get(2),
                open_flags: r.get(3),
                mode: r.get(4),
                bytes_read: r.get(5),
                bytes_written: r.get(6),
                opened_at: micros_at(r, 7),
                closed_at: opt_micros_at(r, 8),
                forced: r.get(9),
                failed: r.get(10),
                complete: r.get(11),
                counts_as: r.get(12),
                counters_cut: r.get(13),
                renamed_to: r.get(14),
                reached: r.get(15),
            })
            .collect())
    }

    fn all_operations(&mut self) -> Result<Vec<OperationRecord>> {
        let rows = self.query(
            "SELECT session_id, host, \"user\", at, kind, path, target, detail,
                    failed, status
               FROM operations ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| OperationRecord {
                session_id: r.get(0),
                host: r.get(1),
                user: r.get(2),
                at: micros_at(r, 3),
                kind: r.get(4),
                path: r.get(5),
                target: r.get(6),
                detail: r.get(7),
                failed: r.get(8),
                status: r.get(9),
            })
            .collect())
    }

    fn all_checkpoints(&mut self) -> Result<Vec<Checkpoint>> {
        let rows = self.query(
            "SELECT first_line_hash, prefix_sha256, path, inode, byte_offset, lines FROM checkpoints
              ORDER BY first_line_hash, byte_offset",
            &[],
        )?;
        Ok(rows.iter().map(checkpoint_from_row).collect())
    }

    fn session_rows(&mut self, id: i64) -> Result<(bool, i64)> {
        let row = self.query_opt(
            "SELECT ended_at IS NOT NULL,
                    (SELECT COUNT(*) + COALESCE(SUM((closed_at IS NOT NULL OR forced OR complete)::int
                                                    + failed::int + (renamed_to IS NOT NULL)::int), 0)
                       FROM transfers WHERE session_id = $1)::bigint
                    + (SELECT COUNT(*) + COALESCE(SUM(failed::int), 0) FROM operations WHERE session_id = $1)::bigint
               FROM sessions WHERE id = $1",
            &[&id],
        )?;
        // The session was found in this transaction: the row is there.
        Ok(row.map_or((false, 0), |r| (r.get(0), r.get(1))))
    }

    fn has_refusal(&mut self, o: &OperationRecord) -> Result<bool> {
        let found = self.query_opt(
            "SELECT 1 FROM operations WHERE session_id IS NULL AND host = $1 AND at = $2
               AND kind = $3 AND detail IS NOT DISTINCT FROM $4 AND \"user\" IS NOT DISTINCT FROM $5 LIMIT 1",
            &[&text(&o.host), &pg_time(o.at)?, &o.kind, &opt_text(o.detail.as_deref()), &opt_text(o.user.as_deref())],
        )?;
        Ok(found.is_some())
    }
}
